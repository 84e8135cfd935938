"""Roles that look right by name and grant nothing, found breaking the lab by hand with the real az CLI:

- the read role given to another managed identity of the same name (az identity create myWorkloadId in another
  resource group, then az role assignment create for that one): the portal's Access control lists it by the name;
- a custom role (az role definition create) whose only data action lists secrets' metadata, in place of Key Vault
  Secrets User: it has a data action, just not the one a read needs.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from test_checks import CLIENT, context_for

from harness.checks.access import access_outcome
from harness.checks.roles import Assignment, diagnose_denial
from harness.collect.arm import collect_identity, collect_namesake_roles
from harness.config import AzureConfig, KeyVaultSecretAccess
from harness.facts import Fetched, IdentityFacts

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
VAULT = "https://finance-kv.vault.azure.net/"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"
OWN_ID = f"/subscriptions/{SUB}/resourceGroups/myRg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myId"
OTHER_ID = OWN_ID.replace("/myRg/", "/otherRg/")
OWN_PRINCIPAL, OTHER_PRINCIPAL = "5a87721f-65be-4743-b230-995e0c47250d", "4beab708-7960-439b-bb8a-413361ae02b3"
SECRETS_USER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/4633458b"
LISTER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/5c1e0a7b"
ALL_BUT_GET = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/9d2f1c3e"
GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
READ_METADATA = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"


def _assignment(principal: str, role: str = SECRETS_USER, name: str = "a1") -> dict[str, Any]:
    return {"id": f"{VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/{name}",
            "properties": {"principalId": principal, "roleDefinitionId": role, "scope": VAULT_ID,
                           "createdOn": "2024-01-01T00:00:00Z"}}


class Arm:
    """ARM and Resource Graph of a subscription with two identities named myId; records the queries sent."""

    def __init__(self, held: dict[str, list[dict[str, Any]]]) -> None:
        self.held = held  # principal id -> its role assignments
        self.queries: list[str] = []

    def __call__(self, path: str, body: Any = None) -> Fetched:
        key = path.split("?")[0]
        if key == "/providers/Microsoft.ResourceGraph/resources":
            self.queries.append(body["query"])
            rows = [{"id": i, "name": "myId", "properties": {"clientId": CLIENT, "principalId": p}}
                    for i, p in ((OWN_ID, OWN_PRINCIPAL), (OTHER_ID, OTHER_PRINCIPAL))]
            return Fetched(path, 200, {"data": rows if "name =~ 'myId'" in body["query"] else []})
        if key == OWN_ID:
            return Fetched(path, 200, {"id": OWN_ID, "name": "myId",
                                       "properties": {"clientId": CLIENT, "principalId": OWN_PRINCIPAL}})
        if key == f"{OWN_ID}/federatedIdentityCredentials":
            return Fetched(path, 200, {"value": []})
        if key.endswith("/providers/Microsoft.Authorization/roleAssignments"):
            principal = urllib.parse.unquote(path).split("principalId eq '")[1].split("'")[0]
            return Fetched(path, 200, {"value": self.held.get(principal, [])})
        if key in (SECRETS_USER, LISTER):
            actions = [GET_SECRET, READ_METADATA] if key == SECRETS_USER else [READ_METADATA]
            name = "Key Vault Secrets User" if key == SECRETS_USER else "Secret Lister"
            return Fetched(path, 200, {"properties": {"roleName": name, "permissions": [{"dataActions": actions}]}})
        return Fetched(path, 404, None, "not found", "ResourceNotFound")


def _azure() -> AzureConfig:
    return AzureConfig(tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47", subscription_id=SUB, resource_group="rg",
                       cluster_name="c")


def _collected(arm: Arm) -> IdentityFacts:
    facts = collect_identity(arm, _azure(), OWN_ID, CLIENT)
    collect_namesake_roles(arm, _azure(), facts)
    return facts


def test_an_identity_with_no_read_role_has_its_namesakes_roles_read_and_a_healthy_one_sends_nothing_more() -> None:
    arm = Arm({OTHER_PRINCIPAL: [_assignment(OTHER_PRINCIPAL)]})
    facts = _collected(arm)
    assert facts.role_assignments == []
    assert facts.namesake_identities == [{"name": "myId", "resource_id": OTHER_ID, "principal_id": OTHER_PRINCIPAL}]
    assert [a["properties"]["principalId"] for a in facts.namesake_role_assignments] == [OTHER_PRINCIPAL]
    assert facts.role_names[SECRETS_USER.lower()] == "Key Vault Secrets User"
    assert collect_identity(arm, _azure(), OWN_ID, CLIENT).namesake_identities == []  # only when asked for

    healthy = Arm({OWN_PRINCIPAL: [_assignment(OWN_PRINCIPAL)], OTHER_PRINCIPAL: [_assignment(OTHER_PRINCIPAL)]})
    assert _collected(healthy).namesake_identities == [] and healthy.queries == []  # a read role held: no look-up
    # a role that lists metadata only is no read role: its namesakes are looked at (this one holds none)
    lister = Arm({OWN_PRINCIPAL: [_assignment(OWN_PRINCIPAL, LISTER)]})
    assert _collected(lister).namesake_identities == [] and lister.queries


def _refused(own: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> Any:
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect="allow")
    ctx = context_for(client_id=CLIENT)
    ctx.cluster.access_resources = {VAULT.rstrip("/"): {"id": VAULT_ID, "name": "finance-kv",
                                                        "resource_group": "myRg"}}
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=OWN_ID, resolved_by="config",
        identity={"id": OWN_ID, "name": "myId", "properties": {"clientId": CLIENT, "principalId": OWN_PRINCIPAL}},
        federated_credentials=[], role_assignments=own,
        namesake_identities=[{"name": "myId", "resource_id": OTHER_ID, "principal_id": OTHER_PRINCIPAL}]
        if theirs else [],
        namesake_role_assignments=theirs,
        role_names={SECRETS_USER.lower(): "Key Vault Secrets User", LISTER.lower(): "Secret Lister",
                    ALL_BUT_GET.lower(): "KV secrets no get"},
        role_permissions={SECRETS_USER.lower(): {"dataActions": [GET_SECRET, READ_METADATA]},
                          LISTER.lower(): {"dataActions": [READ_METADATA]},
                          ALL_BUT_GET.lower(): {"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"],
                                                "notDataActions": [GET_SECRET, "Microsoft.KeyVault/vaults/keys/*"]}})
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "fail", "outcome": "deny", "evidence": {
        "http_status": 403, "code": "Forbidden", "innererror": "ForbiddenByRbac"}}]}
    (finding,) = access_outcome(ctx, 0, check).findings
    return finding


def test_the_read_role_given_to_a_namesake_in_another_group_is_named_and_its_assignment_removed_after_the_grant(
) -> None:
    """By hand in the lab: az group create -n otherRg; az identity create -n myWorkloadId -g otherRg; Key Vault
    Secrets User on finance-kv assigned to that one, the workload's removed. The run said only 'the identity holds no
    role assignment that allows the read', while the vault's access control lists myWorkloadId with the role."""
    finding = _refused([], [_assignment(OTHER_PRINCIPAL, name="theirs")])
    assert finding.code == "ROLE_ASSIGNMENT_MISSING"
    assert (f"Key Vault Secrets User on {VAULT_ID} is assigned to myId in resource group otherRg, another managed "
            f"identity of that name (principal id {OTHER_PRINCIPAL}), not to this one in resource group myRg "
            f"(principal id {OWN_PRINCIPAL})") in finding.message
    lines = finding.fix_lines()
    assert lines[0] == (f"az role assignment create --assignee-object-id {OWN_PRINCIPAL} --assignee-principal-type "
                        f"ServicePrincipal --role 'Key Vault Secrets User' --scope {VAULT_ID}")
    assert lines[-1] == f"az role assignment delete --ids {VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/theirs"
    assert finding.evidence["assignments_of_namesakes"][0]["identity"] == OTHER_ID
    # a namesake holding a role that would not grant the read is not this read's cause
    assert "another managed identity" not in _refused([], [_assignment(OTHER_PRINCIPAL, LISTER)]).message
    assert "another managed identity" not in _refused([], []).message


def test_a_custom_role_listing_metadata_only_is_said_to_lack_the_read_not_to_be_control_plane_only() -> None:
    """az role definition create with DataActions [secrets/readMetadata/action] only, assigned in place of Key Vault
    Secrets User: ROLE_INSUFFICIENT said the role 'has no data action to read (control plane only)', which its
    definition contradicts. It now names the data action the read needs and the ones the role grants."""
    finding = _refused([_assignment(OWN_PRINCIPAL, LISTER)], [])
    assert finding.code == "ROLE_INSUFFICIENT"
    assert (f"Secret Lister at the right scope does not grant {GET_SECRET}, which the read needs (Secret Lister: "
            f"data actions {READ_METADATA})") in finding.message
    assert "control plane only" not in finding.message
    assert finding.fix_lines()[0].endswith(f"--role 'Key Vault Secrets User' --scope {VAULT_ID}")
    # a role with no data action at all is control plane only
    contributor = Assignment("a", "Contributor", VAULT_ID, None, grants=False, covers=True)
    detail = diagnose_denial([contributor], VAULT_ID, 0.0, "blob").detail
    assert detail.endswith("which the read needs (Contributor: control plane only)")
    assert "containers/blobs/read" in detail


def test_a_custom_role_whose_not_data_actions_take_the_read_out_of_its_wildcard_says_so() -> None:
    """By hand in the lab: az role definition create with DataActions [Microsoft.KeyVault/vaults/secrets/*] and
    NotDataActions [.../secrets/getSecret/action], assigned on the vault in place of Key Vault Secrets User. The run
    said the role 'does not grant .../getSecret/action, which the read needs (KV secrets no get: data actions
    Microsoft.KeyVault/vaults/secrets/*)': a wildcard that reads as granting it. It now names the exclusion."""
    finding = _refused([_assignment(OWN_PRINCIPAL, ALL_BUT_GET)], [])
    assert finding.code == "ROLE_INSUFFICIENT"
    assert (f"(KV secrets no get: data actions Microsoft.KeyVault/vaults/secrets/*, less its notDataActions "
            f"{GET_SECRET})") in finding.message
    assert "vaults/keys/*" not in finding.message  # an exclusion that is not the read's is not its cause
    assert finding.fix_lines()[0].endswith(f"--role 'Key Vault Secrets User' --scope {VAULT_ID}")
    # a role with no exclusion is shown as before
    assert "notDataActions" not in _refused([_assignment(OWN_PRINCIPAL, LISTER)], []).message
