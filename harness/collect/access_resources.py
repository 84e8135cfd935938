"""The Azure resources behind the configured access URLs: each vault and storage account of the subscription,
matched by its own endpoint (``properties.vaultUri``, ``primaryEndpoints.blob``), so a fix names the resource
as ARM knows it (name, resource group, id) rather than a guess from the URL's host."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from harness.collect.arm import ARG_PATH
from harness.collect.arm_api import ArmGet
from harness.collect.pages import list_all
from harness.config import AzureConfig, BlobAccess, KeyVaultSecretAccess, WorkloadConfig
from harness.values import endpoint_key

# a resource's properties -> the endpoint URLs it is reached by (a vault's vaultUri, an account's blob endpoint)
EndpointsOf = Callable[[dict[str, Any]], list[Any]]

VAULT_API = "2023-07-01"
GROUP_API = "2021-04-01"
STORAGE_API = "2023-05-01"
VAULT_TYPE, STORAGE_TYPE = "microsoft.keyvault/vaults", "microsoft.storage/storageaccounts"
_ARG_NAME = re.compile(r"[A-Za-z0-9-]{3,24}")  # a vault's or storage account's name (a subset: no quote, no space)


def collect_access_resources(
    arm: ArmGet | None, azure: AzureConfig | None, workloads: list[WorkloadConfig]
) -> dict[str, dict[str, str]]:
    """endpoint_key(url) -> {id, name, resource_group[, public_network_access]} for every access URL ARM resolves
    (best effort: a list
    the harness may not read leaves the fixes with the name taken from the URL)."""
    if arm is None or azure is None:
        return {}
    kinds = {type(check) for workload in workloads for check in workload.access}
    found: dict[str, dict[str, str]] = {}
    lists: list[tuple[str, EndpointsOf]] = []
    if KeyVaultSecretAccess in kinds:
        lists.append((f"/subscriptions/{azure.subscription_id}/providers/Microsoft.KeyVault/vaults"
                      f"?api-version={VAULT_API}", lambda props: [props.get("vaultUri")]))
    if BlobAccess in kinds:
        lists.append((f"/subscriptions/{azure.subscription_id}/providers/Microsoft.Storage/storageAccounts"
                      f"?api-version={STORAGE_API}", lambda props: [(props.get("primaryEndpoints") or {}).get("blob")]))
    for path, endpoints_of in lists:
        items, _ = list_all(arm, path)
        _add(found, items, endpoints_of)
    _add(found, _elsewhere(arm, workloads, found), lambda props: [
        props.get("vaultUri"), (props.get("primaryEndpoints") or {}).get("blob")], elsewhere=True)
    if KeyVaultSecretAccess in kinds:
        _add_deleted_vaults(arm, azure, workloads, found)
        _mark_absent_vaults(arm, azure, workloads, found)
    if BlobAccess in kinds:
        _mark_absent_accounts(arm, azure, workloads, found)
    return found


SUBSCRIPTIONS_API = "2022-12-01"
_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_DELETED_VAULT_ID = re.compile(r"/subscriptions/([0-9A-Fa-f-]{36})/resourceGroups/([-\w.()]{1,90})/providers/"
                               r"Microsoft\.KeyVault/vaults/([A-Za-z0-9-]{3,24})", re.IGNORECASE)


def _add_deleted_vaults(arm: ArmGet, azure: AzureConfig, workloads: list[WorkloadConfig],
                        found: dict[str, dict[str, str]]) -> None:
    """The vaults no list had that the soft-deleted vaults of the subscription (else of another) name (az keyvault delete, or their
    resource group deleted): Key Vault keeps a deleted vault, its name and its DNS record for its retention days,
    recoverable (az keyvault recover), and with it gone the workload's read fails in a way that says nothing of
    the deletion. Matched by name (a deleted vault lists no vaultUri; a vault's name is unique, deleted or not),
    the name the URL's first label or the entry's name: gives."""
    wanted: dict[str, list[str]] = {}
    for check in (c for workload in workloads for c in workload.access if isinstance(c, KeyVaultSecretAccess)):
        if endpoint_key(check.vault_url) not in found:
            name = check.name or (urllib.parse.urlsplit(check.vault_url).hostname or "").split(".", 1)[0]
            wanted.setdefault(name.lower(), []).append(check.vault_url)
    if not wanted:
        return
    groups_gone: dict[tuple[str, str], bool] = {}
    _match_deleted_vaults(arm, azure.subscription_id, wanted, found, groups_gone)
    if not wanted:
        return
    # a vault soft-deleted in another subscription (a shared "secrets" subscription): each deletedVaults list names
    # its own subscription's only, and Resource Graph lists no deleted vault, so every other subscription the
    # harness can read is asked (GET /subscriptions: those the caller holds a role in); only on this rare path
    subscriptions, _ = list_all(arm, f"/subscriptions?api-version={SUBSCRIPTIONS_API}")
    for subscription in subscriptions:
        other = str(subscription.get("subscriptionId") or "")
        if wanted and _GUID.fullmatch(other) and other.lower() != azure.subscription_id.lower():
            _match_deleted_vaults(arm, other, wanted, found, groups_gone)


def _match_deleted_vaults(arm: ArmGet, subscription_id: str, wanted: dict[str, list[str]],
                          found: dict[str, dict[str, str]], groups_gone: dict[tuple[str, str], bool]) -> None:
    """The wanted vault names that ``subscription_id``'s soft-deleted vaults hold, into ``found`` (and out of
    ``wanted``)."""
    items, _ = list_all(arm, f"/subscriptions/{subscription_id}/providers/Microsoft.KeyVault/deletedVaults"
                             f"?api-version={VAULT_API}")
    for item in items:
        properties = item.get("properties") if isinstance(item.get("properties"), dict) else {}
        match = _DELETED_VAULT_ID.fullmatch(str(properties.get("vaultId") or ""))
        if match is None or match.group(3).lower() not in wanted:
            continue
        resource = {"id": match.group(0), "name": match.group(3), "resource_group": match.group(2),
                    "subscription_id": match.group(1), "deleted": "true"}
        for key, field in (("location", "location"), ("deletion_date", "deletionDate"),
                           ("scheduled_purge_date", "scheduledPurgeDate")):
            if isinstance(properties.get(field), str) and properties[field].isprintable():
                resource[key] = properties[field][:64]
        group = (match.group(1).lower(), match.group(2).lower())
        if group not in groups_gone:
            groups_gone[group] = _group_gone(arm, match.group(1), match.group(2))
        if groups_gone[group]:
            resource["group_deleted"] = "true"
        for url in wanted.pop(match.group(3).lower()):
            found[endpoint_key(url)] = resource


def _group_gone(arm: ArmGet, subscription_id: str, group: str) -> bool:
    """Whether ARM says the resource group is not there (404 ResourceGroupNotFound): a vault deleted with its group
    (az group delete) is recovered into that group, which az keyvault recover (a PUT of the vault) cannot do until it
    is made again. Anything else (the group there, the read refused) leaves the fix as it is."""
    answer = arm(f"/subscriptions/{subscription_id}/resourcegroups/{urllib.parse.quote(group, safe='')}"
                 f"?api-version={GROUP_API}")
    return answer.status == 404 and answer.code == "ResourceGroupNotFound"


def name_in_url(url: str) -> str:
    """A vault's or account's name as its URL gives it: the host's first label (finance-kv.vault.azure.net), or the
    path's first segment when the host is an address (https://127.0.0.1:10000/ordersdata/, the path style of
    Azurite and the lab; the host's first label there is '127')."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            return host.split(".", 1)[0]
    return next((segment for segment in parts.path.split("/") if segment), "")


def _elsewhere(arm: ArmGet, workloads: list[WorkloadConfig], found: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The vaults and storage accounts the subscription's lists did not have (another subscription: a shared
    "secrets" subscription is common), looked up by name through Azure Resource Graph, which spans every
    subscription the harness reads; without them a fix would name a resource az cannot find (az keyvault show
    --name looks in the current subscription only: "The Vault 'X' not found within subscription")."""
    wanted: set[tuple[str, str]] = set()
    for check in (c for workload in workloads for c in workload.access):
        url = check.vault_url if isinstance(check, KeyVaultSecretAccess) else check.account_url
        if endpoint_key(url) in found:
            continue
        name = check.name or name_in_url(url)
        kind = VAULT_TYPE if isinstance(check, KeyVaultSecretAccess) else STORAGE_TYPE
        if _ARG_NAME.fullmatch(name):  # only such names go into the query's string literals
            wanted.add((kind, name.lower()))
    if not wanted:
        return []
    query = "resources | where " + " or ".join(f"type =~ '{kind}' and name =~ '{name}'"
                                               for kind, name in sorted(wanted))
    answer = arm(ARG_PATH, {"query": query})
    rows = answer.body.get("data") if answer.ok and isinstance(answer.body, dict) else None
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _add(found: dict[str, dict[str, str]], items: list[dict[str, Any]], endpoints_of: EndpointsOf,
         elsewhere: bool = False) -> None:
    """Each resource under the endpoints its properties name (``elsewhere``: found through Resource Graph)."""
    for item in items:
        resource = _resource(item)
        if resource is None:
            continue
        if elsewhere:
            resource["found_by"] = "resource_graph"
        properties = item.get("properties") or {}
        public = properties.get("publicNetworkAccess")
        if isinstance(public, str) and public:  # Disabled: no network rule is honoured, the fix differs
            resource["public_network_access"] = public
        rbac = properties.get("enableRbacAuthorization")
        if isinstance(rbac, bool):  # a vault's permission model: false, its access policies authorize data reads
            resource["rbac_authorization"] = str(rbac).lower()
        policies = properties.get("accessPolicies")
        if isinstance(policies, list):  # a vault's: whose object ids its access policies name
            entries = [p for p in policies if isinstance(p, dict) and p.get("objectId")]
            # an entry with an applicationId is a compound identity ("Application ID of the client making request on
            # behalf of a principal", AccessPolicyEntry): it grants the object only through that application, on a
            # user's behalf, never to the object's own token, so it is kept apart, "OID@APPID=get list;..."
            named = [p for p in entries if not p.get("applicationId")]
            resource["access_policy_object_ids"] = ",".join(str(p.get("objectId")) for p in named)
            # and each one's secret permissions, "OID=get list;OID2=...": az keyvault set-policy replaces an
            # existing policy's secret permissions with the ones it is given, so a fix must repeat them
            resource["access_policy_secret_permissions"] = ";".join(
                f"{p.get('objectId')}={' '.join(_secret_permissions(p))}" for p in named)
            # what a policy grants on keys and certificates, "OID=keys get,certificates get;...": a policy made with
            # --key-permissions where --secret-permissions was meant reads no secret (an access policy's permissions
            # are given per object type: "Permissions the identity has for keys, secrets and certificates",
            # KeyVaultAccessPolicy.Permissions in the management SDK)
            other = [f"{p.get('objectId')}={','.join(_other_permissions(p))}" for p in named if _other_permissions(p)]
            if other:
                resource["access_policy_other_permissions"] = ";".join(other)
            compound = [p for p in entries if p.get("applicationId")]
            if compound:
                resource["access_policy_compound"] = ";".join(
                    f"{p.get('objectId')}@{p.get('applicationId')}={' '.join(_secret_permissions(p))}"
                    for p in compound)
        for endpoint in endpoints_of(properties if isinstance(properties, dict) else {}):
            if isinstance(endpoint, str) and endpoint:
                found[endpoint_key(endpoint)] = resource


def _resource(item: dict[str, Any]) -> dict[str, str] | None:
    resource_id, name = item.get("id"), item.get("name")
    if not isinstance(resource_id, str) or not isinstance(name, str):
        return None
    segments = resource_id.split("/")
    lowered = [s.lower() for s in segments]
    group = segments[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered[:-1] else ""
    return {"id": resource_id, "name": name, "resource_group": group}


def _mark_absent_accounts(arm: ArmGet, azure: AzureConfig, workloads: list[WorkloadConfig],
                          found: dict[str, dict[str, str]]) -> None:
    """The account URLs that name no storage account the harness can see ({name, absent}): a typo in harness.yaml,
    or the account deleted (its blob endpoint's DNS name goes with it). Only when the subscription's account list
    and Resource Graph (every subscription the harness reads) both answered; the check names it only if the host
    did not resolve either, as for a vault."""
    names: dict[str, str] = {}
    for check in (c for workload in workloads for c in workload.access if isinstance(c, BlobAccess)):
        key = endpoint_key(check.account_url)
        name = check.name or name_in_url(check.account_url)
        if key not in found and _ARG_NAME.fullmatch(name):
            names[key] = name
    _mark_unseen(arm, found, names, STORAGE_TYPE, [
        (f"/subscriptions/{azure.subscription_id}/providers/Microsoft.Storage/storageAccounts"
         f"?api-version={STORAGE_API}", _item_name)])


def _other_permissions(policy: dict[str, Any]) -> list[str]:
    """A policy's key and certificate permissions, each kind as "keys get list"."""
    permissions = policy.get("permissions") if isinstance(policy.get("permissions"), dict) else {}
    found = []
    for kind in ("keys", "certificates"):
        granted = permissions.get(kind)
        names = [str(p) for p in granted if isinstance(p, str) and p] if isinstance(granted, list) else []
        if names:
            found.append(f"{kind} {' '.join(names)}")
    return found


def _secret_permissions(policy: dict[str, Any]) -> list[str]:
    secrets = (policy.get("permissions") or {}).get("secrets") if isinstance(policy.get("permissions"), dict) else []
    return [str(p) for p in secrets if isinstance(p, str) and p] if isinstance(secrets, list) else []


def _mark_absent_vaults(arm: ArmGet, azure: AzureConfig, workloads: list[WorkloadConfig],
                        found: dict[str, dict[str, str]]) -> None:
    """The vault URLs that name no vault the harness can see, live or soft-deleted ({name, absent}): a typo in
    harness.yaml, or a vault purged. Only when the subscription's vault list, its deleted vaults and Resource Graph
    (every subscription the harness reads) all answered; the check names it only if the host did not resolve
    either. Asked again here, on this rare path, rather than threaded through the lists above."""
    names: dict[str, str] = {}
    for check in (c for workload in workloads for c in workload.access if isinstance(c, KeyVaultSecretAccess)):
        key = endpoint_key(check.vault_url)
        name = check.name or (urllib.parse.urlsplit(check.vault_url).hostname or "").split(".", 1)[0]
        if key not in found and _ARG_NAME.fullmatch(name):
            names[key] = name
    base = f"/subscriptions/{azure.subscription_id}/providers/Microsoft.KeyVault"
    _mark_unseen(arm, found, names, VAULT_TYPE, [(f"{base}/vaults?api-version={VAULT_API}", _item_name),
                                                  (f"{base}/deletedVaults?api-version={VAULT_API}", _deleted_vault_name)])


def _item_name(item: dict[str, Any]) -> str:
    return str(item.get("name") or "")


def _deleted_vault_name(item: dict[str, Any]) -> str:
    properties = item.get("properties")
    return str(properties.get("vaultId") or "").rsplit("/", 1)[-1] if isinstance(properties, dict) else ""


def _mark_unseen(arm: ArmGet, found: dict[str, dict[str, str]], names: dict[str, str], resource_type: str,
                 listings: list[tuple[str, Callable[[dict[str, Any]], str]]]) -> None:
    """Mark absent ({name, absent}) each of ``names`` (endpoint key -> resource name) that none of ``listings``
    (path, the name of an item) and no Resource Graph row of ``resource_type`` names: only when every one of them
    answered, and each asked only while all before it did."""
    if not names:
        return
    seen: set[str] = set()
    for path, name_of in listings:
        items, failed = list_all(arm, path)
        if failed is not None:
            return
        seen |= {name_of(item).lower() for item in items if isinstance(item, dict)}
    query = "resources | where " + " or ".join(f"type =~ '{resource_type}' and name =~ '{name.lower()}'"
                                               for name in sorted(set(names.values())))
    answer = arm(ARG_PATH, {"query": query})
    rows = answer.body.get("data") if answer.ok and isinstance(answer.body, dict) else None
    if not isinstance(rows, list):
        return
    seen |= {_item_name(row).lower() for row in rows if isinstance(row, dict)}
    for key, name in names.items():
        if name.lower() not in seen:
            found[key] = {"name": name, "absent": "true"}
