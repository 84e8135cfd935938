"""What ARM knows: the managed cluster (OIDC issuer, workload identity), the identity behind a workload (a
user-assigned identity in any subscription the harness reads, found with Azure Resource Graph, else an Entra
application through harness.collect.graph), its federated identity credentials, and its role assignments."""

from __future__ import annotations

import urllib.parse
from typing import Any

from harness import values
from harness.checks.roles import READ_DATA_ACTIONS, grants
from harness.collect.arm_api import ArmGet
from harness.collect.graph import (
    collect_application,
    collect_deleted_application,
    foreign_service_principal,
    principal_of_service_principal,
)
from harness.collect.identity_names import identities_named, managed_namesakes
from harness.collect.pages import list_all
from harness.config import AzureConfig
from harness.facts import CREDENTIAL_ERROR, NETWORK_ERROR, SLOW_ERROR, Fetched, IdentityFacts

AKS_API = "2024-09-01"
MSI_API = "2023-01-31"
AUTHORIZATION_API = "2022-04-01"
ARG_API = "2022-10-01"
ARG_PATH = f"/providers/Microsoft.ResourceGraph/resources?api-version={ARG_API}"
IDENTITY_TYPE = "microsoft.managedidentity/userassignedidentities"
MAX_FORMER_PRINCIPALS = 3  # deleted service principals of one application whose role assignments are read
MAX_NAMESAKES = 3  # other managed identities of the identity's name whose role assignments are read


def collect_managed_cluster(arm: ArmGet, azure: AzureConfig) -> Fetched:
    return arm(f"{azure.cluster_resource_id}?api-version={AKS_API}")


def resource_graph_query(client_or_principal_id: str) -> str:
    """The KQL for user-assigned identities whose clientId or principalId is ``client_or_principal_id``.
    Only a GUID is ever put in it (the caller checks), so the value cannot end the string literal."""
    return (
        f"resources | where type =~ '{IDENTITY_TYPE}' "
        f"| where properties.clientId =~ '{client_or_principal_id}' "
        f"or properties.principalId =~ '{client_or_principal_id}' "
        "| project id, name, subscriptionId, resourceGroup, properties"
    )


# client/principal ids per batched Resource Graph query: 100 comparisons in one where, and at most 2 rows each stays
# under the 100 rows Resource Graph answers without paging (rows beyond it would need $skipToken: not primed then)
SEARCH_BATCH = 40
ARG_PAGE = 100


def resource_graph_query_many(guids: list[str]) -> str:
    """One KQL for the user-assigned identities whose clientId or principalId is any of ``guids`` (GUIDs only:
    the caller checks, so no value can end its string literal)."""
    matches = " or ".join(f"properties.clientId =~ '{guid}' or properties.principalId =~ '{guid}'" for guid in guids)
    return (f"resources | where type =~ '{IDENTITY_TYPE}' | where {matches} "
            "| project id, name, subscriptionId, resourceGroup, properties")


def prefetch_identity_searches(arm: ArmGet | None, guids: list[str]) -> None:
    """Ask Resource Graph once per SEARCH_BATCH client ids instead of once per workload, and answer each
    workload's own search (:func:`search_managed_identities`) from it: Resource Graph throttles per user and time
    window (15 queries per 5 seconds in Microsoft's "Guidance for throttled requests in Azure Resource Graph"), so
    50 workloads' searches one by one meet 429s. Only a cache (RunCache) can be primed; a batch that fails or may
    be paged primes nothing, and those searches go out one by one as before."""
    prime = getattr(arm, "prime", None)
    wanted = sorted({guid for guid in guids if values.is_guid(guid)})
    if arm is None or prime is None or len(wanted) < 2:
        return
    for start in range(0, len(wanted), SEARCH_BATCH):
        batch = wanted[start:start + SEARCH_BATCH]
        answer = arm(ARG_PATH, {"query": resource_graph_query_many(batch)})
        body = answer.body if isinstance(answer.body, dict) else {}
        rows = body.get("data")
        if not answer.ok or not isinstance(rows, list) or body.get("$skipToken") or len(rows) >= ARG_PAGE:
            continue
        for guid in batch:
            mine = [row for row in rows if isinstance(row, dict) and guid.lower() in {
                str((row.get("properties") or {}).get(key, "")).lower() for key in ("clientId", "principalId")}]
            prime(ARG_PATH, {"query": resource_graph_query(guid)},
                  Fetched(answer.url, answer.status, {"totalRecords": len(mine), "count": len(mine), "data": mine,
                                                      "facets": [], "resultTruncated": "false"}))


def _refused(fetched: Fetched) -> bool:
    return fetched.status in (401, 403)


def _unusable(fetched: Fetched) -> bool:
    """The harness itself cannot call (its credential, the network): nothing later would fare better."""
    return fetched.code in (CREDENTIAL_ERROR, NETWORK_ERROR, SLOW_ERROR)


def search_managed_identities(
    arm: ArmGet, azure: AzureConfig, guid: str, facts: IdentityFacts
) -> list[dict[str, Any]] | None:
    """User-assigned identities whose clientId or principalId is ``guid``: Azure Resource Graph across every
    subscription the harness can read; when Resource Graph refuses, the configured subscription's list.
    Items carry ``id`` and ``properties``. None: the harness could not call at all (``facts.error``)."""
    answer = arm(ARG_PATH, {"query": resource_graph_query(guid)})
    facts.searched.append("Azure Resource Graph: user-assigned identities in every subscription the harness reads")
    if answer.ok and isinstance(answer.body, dict) and isinstance(answer.body.get("data"), list):
        return [row for row in answer.body["data"] if isinstance(row, dict)]
    if _unusable(answer):
        facts.error = answer
        return None
    if _refused(answer):
        facts.refused.append(answer)
    path = (
        f"/subscriptions/{azure.subscription_id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        f"?api-version={MSI_API}"
    )
    facts.searched.append(f"user-assigned identities of subscription {azure.subscription_id} "
                          f"(Resource Graph answered {answer.describe()})")
    identities, failed = list_all(arm, path)
    if failed is not None:
        if _refused(failed):
            facts.refused.append(failed)
            return []
        facts.error = failed
        return None
    return [
        identity for identity in identities
        if guid.lower() in {str((identity.get("properties") or {}).get(key, "")).lower()
                            for key in ("clientId", "principalId")}
    ]


def collect_identity(
    arm: ArmGet | None,
    azure: AzureConfig | None,
    resource_id: str | None,
    client_id: str | None,
    graph: ArmGet | None = None,
    roles: bool = True,
    subject: str | None = None,
) -> IdentityFacts:
    """The identity behind the workload: the configured resource id, else the managed identity with this
    client id in any readable subscription, else the application with this appId in Microsoft Graph; its
    federated credentials and role assignments (``roles=False``: left for :func:`collect_identity_roles`). When
    nothing has the client id, whether it is some identity's principal (object) id instead. ``subject``: the
    ServiceAccount's token subject, for an application without a credential for it (its namesakes are read)."""
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
        if not values.is_guid(client_id):
            facts.note = "the client id is not a GUID, so no identity can have it (see sa.client_id_annotation)"
            facts.named = identities_named(arm, azure, graph, client_id.strip())
            return facts
        found = search_managed_identities(arm, azure, client_id, facts)
        if found is None:
            return facts
        by_client_id = [i for i in found
                        if str((i.get("properties") or {}).get("clientId", "")).lower() == client_id.lower()]
        if not by_client_id:
            if collect_application(graph, client_id, facts, subject):
                if roles:
                    collect_application_roles(arm, azure, facts)
                return facts
            facts.foreign_service_principal = foreign_service_principal(graph, client_id, azure.tenant_id)
            if facts.foreign_service_principal is not None:
                facts.note = (f"client id {client_id} is an application of tenant "
                              f"{facts.foreign_service_principal['appOwnerOrganizationId']}, installed in this one")
                return facts
            facts.principal_of = _principal_of(found, client_id) or principal_of_service_principal(
                graph, client_id, facts
            )
            if facts.principal_of is None:
                collect_deleted_application(graph, client_id, facts)
            if facts.principal_of is None and facts.deleted_application is None and not facts.refused:
                facts.listed_identities = _identities_in(arm, f"/subscriptions/{azure.subscription_id}")
            facts.note = f"no managed identity or application with client id {client_id} is visible to the harness"
            return facts
        facts.resource_id = str(by_client_id[0].get("id"))
        facts.resolved_by = "subscription_list" if len(facts.searched) > 1 else "resource_graph"
    facts.kind = "managed_identity"
    identity = arm(f"{facts.resource_id}?api-version={MSI_API}")
    if not identity.ok and identity.status == 404 and facts.resolved_by == "config" and client_id \
            and values.is_guid(client_id):
        # harness.yaml's identity_resource_id is not there (az resource move to another group or subscription, or
        # a typo): the identity with the client id, wherever it is now (the check names harness.yaml's stale id)
        moved = _moved_identity(arm, azure, client_id, facts)
        if moved is not None:
            facts.resource_id, identity = moved
    if not identity.ok:
        if identity.status == 404 and identity.code == "ResourceNotFound" and facts.resolved_by == "config":
            facts.listed_identities = _identities_in(arm, _group_of(str(facts.resource_id)))
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
    if roles:
        collect_identity_roles(arm, azure, facts)
    return facts


def collect_identity_roles(arm: ArmGet | None, azure: AzureConfig | None, facts: IdentityFacts) -> None:
    """The role assignments of an identity :func:`collect_identity` found (a managed identity whose federated
    credentials were listed, or an application's service principal); nothing for one it did not find."""
    if arm is None or azure is None:
        return
    if facts.kind == "application":
        collect_application_roles(arm, azure, facts)
        return
    if facts.kind != "managed_identity" or facts.error is not None or facts.identity is None:
        return
    principal_id = str((facts.identity.get("properties") or {}).get("principalId") or "")
    if principal_id:
        collect_role_assignments(arm, azure, principal_id, facts)


def _group_of(resource_id: str) -> str:
    """``/subscriptions/S/resourceGroups/RG`` of an ARM resource id."""
    return "/".join(resource_id.split("/")[:5])


def _identities_in(arm: ArmGet, scope: str) -> list[dict[str, Any]] | None:
    """The user-assigned identities of a subscription or resource group as {name, id, clientId}; None when ARM did
    not list them (refused, or the group is not there either)."""
    identities, failed = list_all(arm, f"{scope}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
                                       f"?api-version={MSI_API}")
    if failed is not None:
        return None
    return [{"name": str(identity.get("name") or ""), "id": str(identity.get("id") or ""),
             "clientId": str((identity.get("properties") or {}).get("clientId") or "")} for identity in identities]


def _moved_identity(arm: ArmGet, azure: AzureConfig, client_id: str,
                    facts: IdentityFacts) -> tuple[str, Fetched] | None:
    """The managed identity with ``client_id`` at another resource id than harness.yaml's, and ARM's answer for it;
    None (and the facts as they were) when no other identity has it."""
    searched, refused = list(facts.searched), list(facts.refused)
    found = search_managed_identities(arm, azure, client_id, facts) or []
    facts.error = None
    for candidate in found:
        if str((candidate.get("properties") or {}).get("clientId", "")).lower() == client_id.lower() \
                and str(candidate.get("id") or "").lower() != str(facts.resource_id).lower():
            answer = arm(f"{candidate['id']}?api-version={MSI_API}")
            if answer.ok:
                facts.resolved_by = "subscription_list" if len(facts.searched) > len(searched) + 1 else "resource_graph"
                return str(candidate["id"]), answer
    facts.searched, facts.refused = searched, refused
    return None


def _principal_of(found: list[dict[str, Any]], guid: str) -> dict[str, Any] | None:
    for identity in found:
        properties = identity.get("properties") or {}
        if str(properties.get("principalId", "")).lower() == guid.lower():
            return {"kind": "managed_identity", "client_id": properties.get("clientId"),
                    "name": identity.get("name"), "resource_id": identity.get("id")}
    return None


def collect_application_roles(arm: ArmGet, azure: AzureConfig, facts: IdentityFacts) -> None:
    principal_id = str((facts.service_principal or {}).get("id") or "")
    if principal_id:
        collect_role_assignments(arm, azure, principal_id, facts)


def collect_role_assignments(
    arm: ArmGet, azure: AzureConfig, principal_id: str, facts: IdentityFacts
) -> None:
    """Role assignments of the principal anywhere in the subscription, with role names; best effort. Also those
    that name the identity's client id as their principal id (az role assignment create --assignee-object-id
    <client id> --assignee-principal-type ServicePrincipal: ARM takes an id it cannot find when the principal
    type is given), and those that name a deleted service principal of the application (az ad sp delete, then az
    ad sp create: Azure removes no role assignment of a deleted principal, per Understand Azure role assignments),
    which grant nothing. The same Reader read as the principal's own (a principalId filter on the subscription)."""
    assignments, failed = _assignments_of(arm, azure, principal_id)
    if failed is not None:
        return  # evidence only: a harness without Microsoft.Authorization/*/read still checks everything else
    facts.role_assignments = assignments
    client_id = str((facts.application or {}).get("appId")
                    or ((facts.identity or {}).get("properties") or {}).get("clientId") or "")
    if values.is_guid(client_id) and client_id.lower() != principal_id.lower():
        misnamed, failed = _assignments_of(arm, azure, client_id)
        facts.client_id_role_assignments = misnamed if failed is None else []
        assignments = [*assignments, *facts.client_id_role_assignments]
    facts.former_principal_role_assignments = []
    for former in facts.former_service_principals[:MAX_FORMER_PRINCIPALS]:
        former_id = str(former.get("id") or "")
        if values.is_guid(former_id) and former_id.lower() != principal_id.lower():
            stale, failed = _assignments_of(arm, azure, former_id)
            facts.former_principal_role_assignments.extend(stale if failed is None else [])
    assignments = [*assignments, *facts.former_principal_role_assignments]
    _read_role_definitions(arm, facts, assignments)


def _grants_a_read(facts: IdentityFacts, assignments: list[dict[str, Any]]) -> bool:
    """Whether any of ``assignments`` holds a role granting a read the harness checks (a secret's, a blob's)."""
    return any(grants(facts.role_permissions.get(str((a.get("properties") or {}).get("roleDefinitionId") or "").lower()),
                      action) for a in assignments for action in READ_DATA_ACTIONS.values())


def collect_namesake_roles(arm: ArmGet | None, azure: AzureConfig | None, facts: IdentityFacts) -> None:
    """The role assignments of other managed identities with this one's name (az identity create of the name in
    another resource group, and the role given to that one: the portal's access control lists both by name). Read
    only for a managed identity whose role assignments were read and hold no read role at all, so that a healthy
    run sends nothing more."""
    if arm is None or azure is None or facts.kind != "managed_identity" or not facts.resource_id \
            or facts.role_assignments is None or _grants_a_read(facts, facts.role_assignments):
        return
    name = str((facts.identity or {}).get("name") or str(facts.resource_id).rsplit("/", 1)[-1])
    facts.namesake_identities, facts.namesake_role_assignments = [], []
    for namesake in managed_namesakes(arm, azure, name, str(facts.resource_id))[:MAX_NAMESAKES]:
        theirs, failed = _assignments_of(arm, azure, namesake["principal_id"])
        if failed is None and theirs:
            facts.namesake_identities.append(namesake)
            facts.namesake_role_assignments.extend(theirs)
    _read_role_definitions(arm, facts, facts.namesake_role_assignments)


def _read_role_definitions(arm: ArmGet, facts: IdentityFacts, assignments: list[dict[str, Any]]) -> None:
    """The name and permissions of each role the assignments name, once per role."""
    for assignment in assignments:
        definition_id = str((assignment.get("properties") or {}).get("roleDefinitionId") or "")
        if definition_id and definition_id.lower() not in facts.role_names:
            definition = arm(f"{definition_id}?api-version={AUTHORIZATION_API}")
            properties = ((definition.body or {}).get("properties") or {}) if definition.ok else {}
            name = properties.get("roleName")
            facts.role_names[definition_id.lower()] = str(name or definition_id.rsplit("/", 1)[-1])
            if definition.ok:
                facts.role_permissions[definition_id.lower()] = role_permissions(properties)


def _assignments_of(arm: ArmGet, azure: AzureConfig, principal_id: str) -> tuple[list[dict[str, Any]], Fetched | None]:
    query = urllib.parse.quote(f"principalId eq '{principal_id}'")
    return list_all(arm, f"/subscriptions/{azure.subscription_id}/providers/Microsoft.Authorization/roleAssignments"
                         f"?api-version={AUTHORIZATION_API}&$filter={query}")


def role_permissions(properties: dict[str, Any]) -> dict[str, list[str]]:
    """A role definition's permissions, merged over its permission blocks: actions and dataActions with their
    exclusions (what decides whether a role lets its holder read a secret or a blob)."""
    merged: dict[str, list[str]] = {"actions": [], "notActions": [], "dataActions": [], "notDataActions": []}
    for block in properties.get("permissions") or []:
        if isinstance(block, dict):
            for key, found in merged.items():
                found.extend(str(item) for item in block.get(key) or [] if isinstance(item, str))
    return merged
