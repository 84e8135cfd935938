"""A workload that must read one secret of a vault and not another (harness.yaml: db-password allow, api-token deny,
both in finance-kv): a grant on the vault lets it read both, so its read is granted on the secret
(``<vault id>/secrets/<name>``: Key Vault RBAC takes individual secrets as scopes), as the blob fixes keep to a
container.

By hand in the lab with the real az CLI: Key Vault Secrets User on finance-kv, and api-token expected denied. The
fix of ACCESS_ALLOWED_UNEXPECTEDLY deleted the vault's assignment alone; pasted, the next run failed
ROLE_ASSIGNMENT_MISSING for db-password, whose fix granted on the vault again: a loop. Now both grant on
db-password's own scope (pasted in the lab: the next run passed).
"""

from __future__ import annotations

from typing import Any

from fakeworld import VAULT
from test_checks import context_for

from harness.checks.access import access_outcome
from harness.checks.model import Finding
from harness.config import KeyVaultSecretAccess

VAULT_ID = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"
OTHER_VAULT = "https://platform-kv.vault.azure.net/"
OTHER_VAULT_ID = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/platform-kv"
SECRETS_USER_ID = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/4633458b"
PRINCIPAL = "22222222-3333-4444-5555-666666666666"
GRANT = (f"az role assignment create --assignee-object-id {PRINCIPAL} --assignee-principal-type ServicePrincipal "
         "--role 'Key Vault Secrets User' --scope ")
READ = {"http_status": 200}
REFUSED = {"http_status": 403, "code": "Forbidden", "innererror": "ForbiddenByRbac"}


def _secret(secret: str, expect: str, vault: str = VAULT) -> KeyVaultSecretAccess:
    return KeyVaultSecretAccess(kind="keyvault_secret", vault_url=vault, secret=secret, expect=expect)


def _finding(checks: list[KeyVaultSecretAccess], index: int, answers: list[dict[str, Any]],
             scopes: tuple[str, ...]) -> Finding:
    """The probe's answers to ``checks`` (in order); the identity holds Key Vault Secrets User at ``scopes``."""
    ctx = context_for(access=checks)
    assert ctx.facts.pod is not None
    ctx.cluster.access_resources = {
        VAULT.rstrip("/"): {"id": VAULT_ID, "name": "finance-kv", "resource_group": "myRg"},
        OTHER_VAULT.rstrip("/"): {"id": OTHER_VAULT_ID, "name": "platform-kv", "resource_group": "myRg"}}
    identity = ctx.facts.identity
    identity.identity = {"properties": {"principalId": PRINCIPAL, "clientId": "c"}}
    identity.role_assignments = [
        {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/a{i}",
         "properties": {"roleDefinitionId": SECRETS_USER_ID, "scope": scope, "createdOn": "2024-01-01T00:00:00Z"}}
        for i, scope in enumerate(scopes)]
    identity.role_names = {SECRETS_USER_ID.lower(): "Key Vault Secrets User"}
    identity.role_permissions = {SECRETS_USER_ID.lower(): {"dataActions": [
        "Microsoft.KeyVault/vaults/secrets/getSecret/action"]}}
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": i, "status": "pass", "outcome": "allow"
                                      if answer["http_status"] == 200 else "deny", "evidence": answer}
                                     for i, answer in enumerate(answers)]}
    (finding,) = access_outcome(ctx, index, checks[index]).findings
    return finding


def test_revoking_a_vault_wide_read_keeps_the_secrets_the_workload_reads_on_their_own_scope() -> None:
    checks = [_secret("db-password", "allow"), _secret("api-token", "deny")]
    finding = _finding(checks, 1, [READ, READ], (VAULT_ID,))
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY"
    lines = finding.fix_lines()
    assert lines[1:] == [f"{GRANT}{VAULT_ID}/secrets/db-password",
                         f"az role assignment delete --ids {VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/a0"]
    assert lines[0].endswith(": the secrets the workload must read keep a grant on each, made first")
    # the allowed secret in another vault: the vault's grant goes alone, the other vault keeps its own
    checks = [_secret("db-password", "allow", OTHER_VAULT), _secret("api-token", "deny")]
    lines = _finding(checks, 1, [READ, READ], (VAULT_ID, OTHER_VAULT_ID)).fix_lines()
    assert lines[1:] == [f"az role assignment delete --ids {VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/a0"]


def test_a_missing_read_is_granted_on_the_secret_when_another_secret_of_its_vault_is_denied() -> None:
    checks = [_secret("db-password", "allow"), _secret("api-token", "deny")]
    finding = _finding(checks, 0, [REFUSED, REFUSED], ())
    assert finding.code == "ROLE_ASSIGNMENT_MISSING"
    assert finding.fix_lines()[0] == f"{GRANT}{VAULT_ID}/secrets/db-password"
    # no deny target in that vault: the vault, as Microsoft recommends (a vault per application)
    alone = _finding([_secret("db-password", "allow"), _secret("api-token", "deny", OTHER_VAULT)], 0,
                     [REFUSED, REFUSED], ())
    assert alone.fix_lines()[0] == f"{GRANT}{VAULT_ID}"
