"""What ARM knows: the managed cluster (OIDC issuer, workload identity), the user-assigned identity behind a
workload, its federated identity credentials, and its role assignments."""

from __future__ import annotations

import urllib.parse
from typing import Any

from harness.collect.arm_api import ArmGet
from harness.config import AzureConfig
from harness.facts import Fetched, IdentityFacts

AKS_API = "2024-09-01"
MSI_API = "2023-01-31"
AUTHORIZATION_API = "2022-04-01"
_MAX_PAGES = 50


def collect_managed_cluster(arm: ArmGet, azure: AzureConfig) -> Fetched:
    return arm(f"{azure.cluster_resource_id}?api-version={AKS_API}")


def list_all(arm: ArmGet, path: str) -> tuple[list[dict[str, Any]], Fetched | None]:
    """Every item of a paged ARM list (following nextLink), or the failed page."""
    items: list[dict[str, Any]] = []
    url: str | None = path
    for _ in range(_MAX_PAGES):
        if url is None:
            break
        page = arm(url)
        if not page.ok or not isinstance(page.body, dict):
            return items, page
        items.extend(item for item in page.body.get("value") or [] if isinstance(item, dict))
        url = page.body.get("nextLink") or None
    return items, None


def find_identity_by_client_id(
    arm: ArmGet, azure: AzureConfig, client_id: str
) -> tuple[str | None, Fetched | None]:
    path = (
        f"/subscriptions/{azure.subscription_id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        f"?api-version={MSI_API}"
    )
    identities, failed = list_all(arm, path)
    if failed is not None:
        return None, failed
    for identity in identities:
        if str((identity.get("properties") or {}).get("clientId", "")).lower() == client_id.lower():
            return str(identity.get("id")), None
    return None, None


def collect_identity(
    arm: ArmGet | None, azure: AzureConfig | None, resource_id: str | None, client_id: str | None
) -> IdentityFacts:
    """The identity (configured id, else found by client id), its federated credentials, role assignments."""
    if arm is None or azure is None:
        return IdentityFacts(
            configured=False, note="no Azure access configured (the azure: section of harness.yaml)"
        )
    facts = IdentityFacts(
        configured=True, resource_id=resource_id, resolved_by="config" if resource_id else None
    )
    if resource_id is None:
        if not client_id:
            facts.note = "no identity_resource_id configured and no client id to look the identity up by"
            return facts
        found, failed = find_identity_by_client_id(arm, azure, client_id)
        if failed is not None:
            facts.error = failed
            return facts
        if found is None:
            facts.note = (
                f"no user-assigned identity with client id {client_id} in subscription "
                f"{azure.subscription_id}"
            )
            return facts
        facts.resource_id, facts.resolved_by = found, "client_id"
    identity = arm(f"{facts.resource_id}?api-version={MSI_API}")
    if not identity.ok:
        facts.error = identity
        return facts
    facts.identity = identity.body
    credentials, failed = list_all(
        arm, f"{facts.resource_id}/federatedIdentityCredentials?api-version={MSI_API}"
    )
    if failed is not None:
        facts.error = failed
        return facts
    facts.federated_credentials = credentials
    principal_id = str(((identity.body or {}).get("properties") or {}).get("principalId") or "")
    if principal_id:
        collect_role_assignments(arm, azure, principal_id, facts)
    return facts


def collect_role_assignments(
    arm: ArmGet, azure: AzureConfig, principal_id: str, facts: IdentityFacts
) -> None:
    """Role assignments of the principal anywhere in the subscription, with role names; best effort."""
    query = urllib.parse.quote(f"principalId eq '{principal_id}'")
    path = (
        f"/subscriptions/{azure.subscription_id}/providers/Microsoft.Authorization/roleAssignments"
        f"?api-version={AUTHORIZATION_API}&$filter={query}"
    )
    assignments, failed = list_all(arm, path)
    if failed is not None:
        return  # evidence only: a harness without Microsoft.Authorization/*/read still checks everything else
    facts.role_assignments = assignments
    for assignment in assignments:
        definition_id = str((assignment.get("properties") or {}).get("roleDefinitionId") or "")
        if definition_id and definition_id.lower() not in facts.role_names:
            definition = arm(f"{definition_id}?api-version={AUTHORIZATION_API}")
            name = (
                ((definition.body or {}).get("properties") or {}).get("roleName") if definition.ok else None
            )
            facts.role_names[definition_id.lower()] = str(name or definition_id.rsplit("/", 1)[-1])
