"""A deny target that network access refused, while what ARM lists grants the identity the read.

Found breaking the lab by hand with the real az CLI: Key Vault Secrets User on platform-kv assigned to the workload's
identity (az role assignment create), then the vault's firewall closed (az keyvault update --default-action Deny).
The run said PASS with the warning "deny not proven ... least privilege is unproven, not violated", though the
harness had read the assignment that grants the read: Key Vault judges network access before the caller's rights
and apart from them, so the grant stands and any request from a network the vault admits reads the secret. It is
now ACCESS_ALLOWED_UNEXPECTEDLY with the revocation; without a grant it stays DENY_NOT_PROVEN.
"""

from __future__ import annotations

from typing import Any

from test_checks import PRINCIPAL, _finance_kv_read

from harness.checks.access import access_outcome
from harness.checks.model import FAIL, WARN, Outcome

VAULT_ID = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"
SECRETS_USER = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/4633458b"
GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
FIREWALL = {"http_status": 403, "code": "Forbidden", "innererror": "ForbiddenByFirewall",
            "message": "Client address is not authorized and caller is not a trusted service."}


def _refused(vault: dict[str, str], scope: str | None = VAULT_ID, condition: str | None = None,
             evidence: dict[str, Any] | None = None) -> Outcome:
    ctx, check = _finance_kv_read("deny", evidence or FIREWALL, vault, roles_read=True)
    identity = ctx.facts.identity
    if scope is not None:
        identity.role_assignments = [{
            "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/a1",
            "properties": {"roleDefinitionId": SECRETS_USER, "scope": scope, "principalId": PRINCIPAL,
                           "createdOn": "2024-01-01T00:00:00Z", "condition": condition}}]
    identity.role_names = {SECRETS_USER.lower(): "Key Vault Secrets User"}
    identity.role_permissions = {SECRETS_USER.lower(): {"dataActions": [GET_SECRET]}}
    return access_outcome(ctx, 0, check)


def test_a_role_that_grants_a_deny_target_behind_a_firewall_is_least_privilege_violated_and_revoked() -> None:
    outcome = _refused({})
    assert outcome.status == FAIL
    [finding] = outcome.findings
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY" and finding.severity == "error"
    assert finding.message.startswith("least privilege violated: the identity may read Key Vault secret")
    assert f"Key Vault Secrets User on {VAULT_ID} grants it" in finding.message
    assert "ForbiddenByFirewall" in finding.message and "not violated" not in finding.message
    assert finding.fix_lines()[-1] == (
        f"az role assignment delete --ids {VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/a1")
    # public network access disabled is network access too
    closed = _refused({}, evidence={**FIREWALL, "innererror": "ForbiddenByConnection"})
    assert closed.findings[0].code == "ACCESS_ALLOWED_UNEXPECTEDLY"


def test_an_access_policy_that_grants_a_deny_target_behind_a_firewall_is_taken_back() -> None:
    policy = {"rbac_authorization": "false", "access_policy_object_ids": PRINCIPAL,
              "access_policy_secret_permissions": f"{PRINCIPAL}=get list"}
    [finding] = _refused(policy, scope=None).findings
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY"
    assert "the vault's access policy for the identity grants secrets get list" in finding.message
    assert finding.fix_lines()[0] == (
        f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions list")


def test_without_a_grant_a_deny_behind_a_firewall_stays_unproven() -> None:
    for outcome in (
        _refused({}, scope=None),  # no role at all
        _refused({}, scope=VAULT_ID.replace("finance-kv", "platform-kv")),  # a role on another vault
        _refused({"rbac_authorization": "false"}),  # a role an access-policy vault does not weigh
        _refused({}, condition="@Resource[name] StringEquals 'x'"),  # a condition the harness does not evaluate
    ):
        assert outcome.status == WARN, outcome.findings
        assert [f.code for f in outcome.findings] == ["DENY_NOT_PROVEN"]
