"""A vault or secret changed by hand with az: the vault deleted (az keyvault delete, or its resource group deleted:
Key Vault keeps it soft-deleted, ARM lists it under Microsoft.KeyVault/deletedVaults only, and the read fails in
whatever way its host answers); a secret's activation date set ahead (Key Vault serves it anyway); an access policy
made for an app registration's own object id, or granting keys where secrets were meant; a secret moved to another
vault."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fakeworld import VAULT
from test_checks import CLIENT, DENIED, PRINCIPAL, _finance_kv_read, context_for

from harness.checks.access import access_outcome
from harness.checks.model import FAIL, PASS, WARN, Outcome
from harness.collect.access_resources import collect_access_resources
from harness.config import KeyVaultSecretAccess
from harness.facts import Fetched, IdentityFacts


def test_a_soft_deleted_vault_is_named_and_recovered_whatever_its_host_answered() -> None:
    """az keyvault delete (or its group deleted): the vault leaves ARM's vault lists and Resource Graph, and is listed
    under Microsoft.KeyVault/deletedVaults (by its old id, no vaultUri). Whatever its host answered (a name that does
    not resolve, a 404 without a challenge), the cause is named with the recovery, and the role the recovery does not
    bring back; a deny target is unproven, not passed. A vault no list names keeps the answer's own diagnosis."""
    deleted_id = "/subscriptions/0b6a4e5c-1f2d-4c3b-9a8e-7d6c5b4a3f21/resourceGroups/myRg/providers/" \
                 "Microsoft.KeyVault/vaults/finance-kv"
    asked: list[str] = []

    def arm(path: str, body: Any = None) -> Fetched:
        asked.append(path)
        if "deletedVaults" in path:
            return Fetched(url=path, status=200, body={"value": [
                {"id": "/subscriptions/x/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/other-kv",
                 "properties": {"vaultId": deleted_id.replace("finance-kv", "other-kv"), "location": "eastus"}},
                {"id": "/subscriptions/x/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/finance-kv",
                 "name": "finance-kv", "type": "Microsoft.KeyVault/deletedVaults",
                 "properties": {"vaultId": deleted_id, "location": "eastus", "deletionDate": "2026-12-05T19:40:38Z",
                                "scheduledPurgeDate": "2027-03-05T19:40:38Z"}}]})
        return Fetched(url=path, status=200, body={"data": []} if body is not None else {"value": []})

    def run(expect: str, evidence: dict[str, Any], error: dict[str, Any]) -> Outcome:
        ctx, check = _finance_kv_read(expect, evidence, None, roles_read=True)
        ctx.cluster.access_resources = collect_access_resources(
            arm, SimpleNamespace(subscription_id="s"),  # type: ignore[arg-type]
            [SimpleNamespace(access=[check])])  # type: ignore[list-item]
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe["steps"][0]["error"] = error
        return access_outcome(ctx, 0, check)

    unresolved = run("allow", {}, {"kind": "dns", "message": "finance-kv.vault.azure.net: Name or service not known"})
    assert "/subscriptions/s/providers/Microsoft.KeyVault/deletedVaults?api-version=2023-07-01" in asked
    assert unresolved.status == FAIL
    [finding] = unresolved.findings
    assert finding.code == "VAULT_DELETED" and finding.severity == "error"
    assert "the vault finance-kv was deleted on 2026-12-05T19:40:38Z (soft-deleted, recoverable until " \
           "2027-03-05T19:40:38Z)" in finding.message
    lines = finding.fix_lines()
    assert lines[0] == ("az keyvault recover --name finance-kv --resource-group myRg --location eastus "
                        "--subscription 0b6a4e5c-1f2d-4c3b-9a8e-7d6c5b4a3f21")
    assert lines[2] == (f"az role assignment create --assignee-object-id {PRINCIPAL} --assignee-principal-type "
                        f"ServicePrincipal --role 'Key Vault Secrets User' --scope {deleted_id}")
    not_served = run("allow", {"http_status": 404, "code": "VaultNotFound"}, {"kind": "challenge_status"})
    assert [f.code for f in not_served.findings] == ["VAULT_DELETED"]
    deny = run("deny", {"http_status": 404}, {"kind": "challenge_status"})
    assert deny.status == WARN and deny.findings[0].code == "DENY_NOT_PROVEN"
    assert "the vault finance-kv was deleted" in deny.findings[0].message
    # no list names it, live or deleted: not a deleted vault, no vault at all (VAULT_NOT_FOUND, below)
    ctx, check = _finance_kv_read("allow", {}, None, roles_read=True)
    ctx.cluster.access_resources = collect_access_resources(
        lambda path, body=None: Fetched(url=path, status=200, body={"value": [], "data": []}),
        SimpleNamespace(subscription_id="s"), [SimpleNamespace(access=[check])])  # type: ignore[arg-type,list-item]
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe["steps"][0]["error"] = {"kind": "dns", "message": "no such host"}
    assert access_outcome(ctx, 0, check).findings[0].code == "VAULT_NOT_FOUND"


def test_a_vault_soft_deleted_in_another_subscription_is_found_there_and_recovered_there() -> None:
    """A vault of a shared "secrets" subscription deleted: the cluster's subscription's deletedVaults list does not
    have it (each lists its own) and Resource Graph lists no deleted vault, so the read was named by its host's
    answer (ACCESS_TARGET_NOT_TRUSTED for the 404 without a challenge, seen by hand in the lab). The other
    subscriptions the harness reads (GET /subscriptions) are asked; VAULT_DELETED's recovery, the group's check and
    the grant name the vault's own subscription (az keyvault recover looks in the current subscription only)."""
    home, shared = "6cb095fc-5f4b-4f1e-800e-fa0c3ceedf2a", "c1b450bc-a2bf-43b3-b48e-eaedf8ca9043"
    deleted_id = f"/subscriptions/{shared}/resourceGroups/secretsRg/providers/Microsoft.KeyVault/vaults/finance-kv"
    asked: list[str] = []

    def arm(path: str, body: Any = None) -> Fetched:
        asked.append(path)
        if path.startswith("/subscriptions?"):
            return Fetched(url=path, status=200, body={"value": [
                {"id": f"/subscriptions/{s}", "subscriptionId": s} for s in (home, "not-a-guid", shared)]})
        if path.startswith(f"/subscriptions/{shared}/providers/Microsoft.KeyVault/deletedVaults"):
            return Fetched(url=path, status=200, body={"value": [
                {"id": f"/subscriptions/{shared}/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/"
                       "finance-kv", "name": "finance-kv",
                 "properties": {"vaultId": deleted_id, "location": "eastus", "deletionDate": "2026-12-05T22:30:43Z",
                                "scheduledPurgeDate": "2027-03-05T22:30:43Z"}}]})
        return Fetched(url=path, status=200, body={"data": []} if body is not None else {"value": []})

    ctx, check = _finance_kv_read("allow", {"http_status": 404}, None, roles_read=True)
    ctx.cluster.access_resources = collect_access_resources(
        arm, SimpleNamespace(subscription_id=home),  # type: ignore[arg-type]
        [SimpleNamespace(access=[check])])  # type: ignore[list-item]
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe["steps"][0]["error"] = {"kind": "challenge_status"}
    outcome = access_outcome(ctx, 0, check)
    [finding] = outcome.findings
    assert outcome.status == FAIL and finding.code == "VAULT_DELETED"
    lines = finding.fix_lines()
    assert lines[0] == ("az keyvault recover --name finance-kv --resource-group secretsRg --location eastus "
                        f"--subscription {shared}")
    assert lines[2].endswith(f"--scope {deleted_id}")
    assert f"/subscriptions/{shared}/resourcegroups/secretsRg?api-version=2021-04-01" in asked
    assert not any(path.startswith(f"/subscriptions/{home}/providers/Microsoft.KeyVault/deletedVaults")
                   for path in asked[asked.index("/subscriptions?api-version=2022-12-01"):])  # its own asked once
    assert not any("not-a-guid" in path for path in asked)


def test_a_secret_read_before_its_activation_date_is_a_warning() -> None:
    """az keyvault secret set-attributes --not-before <ahead> (a rotation staged early): Key Vault answers 200 with the
    value (nbf "is for informational purposes only", about-secrets), so the read passes; the harness warns
    SECRET_NOT_YET_VALID with the dates, the versions and a new activation date (the owner's: a placeholder). An
    activation date passed, or none, passes quietly."""
    def read(attributes: dict[str, Any]) -> Outcome:
        ctx, check = _finance_kv_read("allow", {"http_status": 200, "attributes": attributes}, None)
        return access_outcome(ctx, 0, check)

    ahead = read({"enabled": True, "nbf": 4102444800, "created": 1500000000})
    assert ahead.status == WARN and "activation date is ahead (2100-01-01T00:00:00Z)" in ahead.message
    [finding] = ahead.findings
    assert finding.code == "SECRET_NOT_YET_VALID" and finding.severity == "warning"
    assert "not valid before 2100-01-01T00:00:00Z" in finding.message
    lines = finding.fix_lines()
    assert lines[1].startswith("az keyvault secret list-versions --id https://finance-kv.vault.azure.net/secrets/"
                               "db-password --query")
    assert lines[-1] == ("az keyvault secret set-attributes --id https://finance-kv.vault.azure.net/secrets/db-password "
                         "--not-before '<activation-utc>'   # e.g. the time now, as 2026-12-05T12:00:00Z")
    assert read({"enabled": True, "nbf": 1500000000}).status == PASS
    assert read({"enabled": True}).status == PASS


def test_an_access_policy_for_the_app_registrations_object_id_is_named_and_replaced() -> None:
    """An app registration's workload: az keyvault set-policy --object-id <the Object ID its app registration page
    shows>. Key Vault takes it, and the token's oid is the service principal's: AccessDenied. The finding names the
    application object id, sets the service principal's policy with the permissions the wrong one held, and deletes
    the wrong one."""
    app_object_id = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
    ctx, check = _finance_kv_read("allow", DENIED, {"rbac_authorization": "false",
                                                    "access_policy_object_ids": f"{app_object_id},other",
                                                    "access_policy_secret_permissions": f"{app_object_id}=get list"})
    ctx.facts.identity = IdentityFacts(configured=True, kind="application", resolved_by="graph",
                                       application={"id": app_object_id, "appId": CLIENT},
                                       service_principal={"id": PRINCIPAL, "appId": CLIENT})
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "KEYVAULT_ACCESS_POLICY_MISSING"
    assert f"names the application object id {app_object_id} as the object id" in finding.message
    assert f"service principal's object id, {PRINCIPAL}" in finding.message
    assert finding.fix_lines()[:2] == [
        f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions get list",
        f"az keyvault delete-policy --name finance-kv --object-id {app_object_id}"]


def test_a_vault_name_that_resolves_nowhere_and_is_no_vault_is_vault_not_found() -> None:
    """A typo in vault_url (or a vault purged): NAME.vault.azure.net does not resolve in the pod, and the
    subscription's vaults, its deleted vaults and Resource Graph have no vault of that name. EGRESS_BLOCKED (the
    cluster's DNS, NetworkPolicies) was the wrong link: VAULT_NOT_FOUND lists the vaults. Any list unread (the vault
    may be where the harness cannot look), or the name resolving, keeps the answer's own diagnosis."""
    asked: list[str] = []

    def arm_with(refused: str | None) -> Any:
        def arm(path: str, body: Any = None) -> Fetched:
            asked.append(path)
            if refused and refused in path:
                return Fetched(url=path, status=403, body=None, error="denied", code="AuthorizationFailed")
            if body is not None:
                return Fetched(url=path, status=200, body={"data": [{"name": "other-kv"}]})
            return Fetched(url=path, status=200, body={"value": [{"id": "/x/vaults/other-kv", "name": "other-kv",
                                                                  "properties": {"vaultUri": "https://other-kv.x/"}}]})
        return arm

    def run(expect: str, error: dict[str, Any], refused: str | None = None) -> Outcome:
        ctx, check = _finance_kv_read(expect, {}, None, roles_read=True)
        ctx.cluster.access_resources = collect_access_resources(
            arm_with(refused), SimpleNamespace(subscription_id="s"),  # type: ignore[arg-type]
            [SimpleNamespace(access=[check])])  # type: ignore[list-item]
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe["steps"][0]["error"] = error
        return access_outcome(ctx, 0, check)

    dns = {"kind": "dns", "message": "finance-kv.vault.azure.net: Name or service not known"}
    typo = run("allow", dns)
    [finding] = typo.findings
    assert finding.code == "VAULT_NOT_FOUND" and typo.status == FAIL
    assert ("finance-kv.vault.azure.net did not resolve, and no subscription the harness reads has a vault named "
            "finance-kv, live or soft-deleted") in finding.message
    assert finding.fix_lines()[:2] == [
        "az keyvault list --query '[].{name: name, resourceGroup: resourceGroup}' -o table",
        "az keyvault list-deleted --resource-type vault --query '[].name' -o tsv"]
    assert run("deny", dns).findings[0].code == "DENY_NOT_PROVEN"
    assert run("allow", dns, refused="deletedVaults").findings[0].code == "EGRESS_BLOCKED"
    assert run("allow", dns, refused="Microsoft.ResourceGraph").findings[0].code == "EGRESS_BLOCKED"
    refused = run("allow", {"kind": "connection_refused", "message": "refused"})
    assert refused.findings[0].code == "EGRESS_BLOCKED"


def test_a_secret_not_found_says_a_secret_moved_to_another_vault_is_not_recovered_here() -> None:
    """The secret moved by hand (az keyvault secret backup, restore into another vault, delete here): the old vault
    lists it deleted, and recovering it would bring back the old copy while harness.yaml goes on checking the vault
    the workload left. The fix said only 'recover it'; it now says a moved secret is followed in vault_url instead."""
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect="allow")
    ctx = context_for()
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "fail", "outcome": "error",
                                      "evidence": {"http_status": 404, "code": "SecretNotFound"}}]}
    outcome = access_outcome(ctx, 0, check)
    assert outcome.status == FAIL
    [finding] = outcome.findings
    lines = finding.fix_lines()
    assert finding.code == "SECRET_NOT_FOUND"
    recover = next(i for i, line in enumerate(lines) if line.startswith("az keyvault secret recover "))
    assert "unless it was moved to another vault" in lines[recover - 1]
    assert "point vault_url in harness.yaml at that vault instead" in lines[recover - 1]
    assert "or its vault_url, if the secret is now in another vault" in lines[-1]


def test_a_policy_granting_keys_where_secrets_were_meant_is_named() -> None:
    """az keyvault set-policy --object-id PRINCIPAL --key-permissions get (--secret-permissions meant): found by hand
    in the lab, the finding said only 'its policy grants no secret permission' of a policy its maker saw grant get.
    The collector keeps each policy's key and certificate permissions, and the finding names them; the printed
    set-policy --secret-permissions get keeps them (it replaces only the kinds it is given)."""
    vault = {"id": "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv",
             "name": "finance-kv", "properties": {"vaultUri": VAULT, "enableRbacAuthorization": False, "accessPolicies": [
                 {"tenantId": "t", "objectId": PRINCIPAL, "permissions": {"keys": ["get"], "secrets": None,
                                                                         "certificates": ["get", "list", 3]}},
                 {"tenantId": "t", "objectId": "other", "permissions": {"secrets": ["get"]}}]}}
    azure = SimpleNamespace(subscription_id="s")
    workload = SimpleNamespace(access=[KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT,
                                                            secret="db-password", expect="allow")])
    [resource] = collect_access_resources(lambda path: Fetched(url=path, status=200, body={"value": [vault]}),
                                          azure, [workload]).values()  # type: ignore[arg-type]
    assert resource["access_policy_other_permissions"] == f"{PRINCIPAL}=keys get,certificates get list"
    ctx, check = _finance_kv_read("allow", DENIED, {k: v for k, v in resource.items()
                                                    if k not in ("id", "name", "resource_group")})
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "KEYVAULT_ACCESS_POLICY_MISSING"
    assert ("its policy grants no secret permission (only keys get, certificates get list: key and certificate "
            "permissions read no secret, --secret-permissions grants secrets)") in finding.message
    assert finding.fix_lines()[0] == f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} " \
                                     "--secret-permissions get"
    # another principal's key permissions say nothing of this one's policy
    ctx.cluster.access_resources[VAULT.rstrip("/")]["access_policy_other_permissions"] = "other=keys get"
    [finding] = access_outcome(ctx, 0, check).findings
    assert "its policy grants no secret permission;" in finding.message and "only keys" not in finding.message
