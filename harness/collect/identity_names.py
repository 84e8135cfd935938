"""The identities a name stands for: a client-id annotation holding a managed identity's or an app registration's
name (``azure.workload.identity/client-id: my-identity``, as people paste it) looked up by that name, so the fix can
name the client id itself. Managed identities through Azure Resource Graph in every subscription the harness
reads (the configured subscription's list when Resource Graph refuses), applications through Microsoft Graph's
displayName filter."""

from __future__ import annotations

import urllib.parse
from typing import Any

from harness import values
from harness.collect.arm_api import ArmGet
from harness.collect.pages import list_all
from harness.config import AzureConfig

ARG_PATH = "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01"
MSI_API = "2023-01-31"
IDENTITY_TYPE = "microsoft.managedidentity/userassignedidentities"
GRAPH_VERSION = "v1.0"
MOST = 10  # names are not unique, but a name shared by more than a few identities is listed in part


def identities_named(arm: ArmGet, azure: AzureConfig, graph: ArmGet | None, name: str) -> list[dict[str, str]] | None:
    """The managed identities and applications called ``name`` (an ARM resource name: no quote can end the KQL or
    OData literal), each {kind, name, client_id, resource_id}; None when neither could be listed (refused or
    failed), so that an empty list means none is there as far as the harness can read."""
    if not values.is_azure_resource_name(name):
        return None
    managed = _managed_identities_named(arm, azure, name)
    applications = _applications_named(graph, name)
    if managed is None and applications is None:
        return None
    return [*(managed or []), *(applications or [])][:MOST]


def _managed_rows(arm: ArmGet, azure: AzureConfig, name: str) -> list[Any] | None:
    """The user-assigned identities called ``name`` as Resource Graph (else the configured subscription's list)
    gives them; None when neither answered."""
    # ARM resource names compare case-insensitively, as =~ does
    query = (f"resources | where type =~ '{IDENTITY_TYPE}' | where name =~ '{name}' "
             "| project id, name, subscriptionId, resourceGroup, properties")
    answer = arm(ARG_PATH, {"query": query})
    if answer.ok and isinstance(answer.body, dict) and isinstance(answer.body.get("data"), list):
        return list(answer.body["data"])
    rows, failed = list_all(arm, f"/subscriptions/{azure.subscription_id}/providers/Microsoft.ManagedIdentity/"
                                 f"userAssignedIdentities?api-version={MSI_API}")
    if failed is not None:
        return None
    return [row for row in rows if str(row.get("name") or "").lower() == name.lower()]


def managed_namesakes(arm: ArmGet, azure: AzureConfig, name: str, resource_id: str) -> list[dict[str, str]]:
    """The other user-assigned identities called ``name`` (az identity create of that name in another resource group
    or subscription), each {name, resource_id, principal_id}; none when they could not be listed."""
    if not values.is_azure_resource_name(name):
        return []
    rows = _managed_rows(arm, azure, name) or []
    return [{"name": str(row.get("name") or ""), "resource_id": str(row.get("id") or ""),
             "principal_id": str((row.get("properties") or {}).get("principalId") or "")}
            for row in rows if isinstance(row, dict) and str(row.get("id") or "").lower() != resource_id.lower()
            and values.is_guid(str((row.get("properties") or {}).get("principalId") or ""))][:MOST]


def _managed_identities_named(arm: ArmGet, azure: AzureConfig, name: str) -> list[dict[str, str]] | None:
    rows = _managed_rows(arm, azure, name)
    if rows is None:
        return None
    return [{"kind": "managed_identity", "name": str(row.get("name") or ""),
             "client_id": str((row.get("properties") or {}).get("clientId") or ""), "resource_id": str(row.get("id"))}
            for row in rows if isinstance(row, dict) and values.is_guid(str((row.get("properties") or {}).get(
                "clientId") or ""))]


def _applications_named(graph: ArmGet | None, name: str) -> list[dict[str, str]] | None:
    if graph is None:
        return None
    query = urllib.parse.quote(f"displayName eq '{name}'")
    listed = graph(f"/{GRAPH_VERSION}/applications?$filter={query}&$top={MOST}")
    items = listed.body.get("value") if listed.ok and isinstance(listed.body, dict) else None
    if not isinstance(items, list):
        return None
    return [{"kind": "application", "name": str(item.get("displayName") or ""), "client_id": str(item["appId"]),
             "resource_id": ""}
            for item in items if isinstance(item, dict) and values.is_guid(str(item.get("appId") or ""))]
