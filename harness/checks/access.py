"""Access checks: each configured read (Key Vault secret, blob) met its expectation, allow or deny, so least
privilege is proven too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.checks import remediation as fix
from harness.checks.common import missing_probe_step
from harness.checks.context import WorkloadContext
from harness.checks.exchange import EGRESS_KINDS, describe_exchange_error
from harness.checks.federation import principal_id_of
from harness.checks.model import ERROR, Finding, Outcome, failed, passed
from harness.commands import Command, Step, Var, advice, command
from harness.config import BlobAccess, KeyVaultSecretAccess

READ_ROLES = {"keyvault_secret": "Key Vault Secrets User", "blob": "Storage Blob Data Reader"}
# The probe kept the token: the host is not one it may go to, or Key Vault's challenge was absent or named
# another resource (what a look-alike host or a typo gets).
UNTRUSTED_TARGET_KINDS = ("target_not_trusted", "challenge_missing", "challenge_mismatch")


def access_check_id(index: int) -> str:
    return f"access.{index + 1}"


def _roles(ctx: WorkloadContext) -> list[dict[str, Any]] | None:
    assignments = ctx.facts.identity.role_assignments
    if assignments is None:
        return None
    names = ctx.facts.identity.role_names
    return [
        {
            "role": names.get(str(props.get("roleDefinitionId", "")).lower(), props.get("roleDefinitionId")),
            "scope": props.get("scope"),
        }
        for props in ((a.get("properties") or {}) for a in assignments)
    ]


def _grant_read(check: KeyVaultSecretAccess | BlobAccess, principal: str | None) -> list[Step]:
    """Look the resource's id up into $SCOPE, then grant the read role there (the container, for a blob)."""
    role = READ_ROLES[check.kind]
    if isinstance(check, KeyVaultSecretAccess):
        return [fix.keyvault_id(check.vault_url), fix.grant_role(principal, role, Var("SCOPE"))]
    return [
        fix.storage_account_id(check.account_url),
        fix.grant_role(principal, role, fix.container_scope(check.container)),
    ]


def make_access_check(
    index: int, check: KeyVaultSecretAccess | BlobAccess
) -> Callable[[WorkloadContext], Outcome]:
    def run(ctx: WorkloadContext) -> Outcome:
        return access_outcome(ctx, index, check)

    return run


def access_outcome(ctx: WorkloadContext, index: int, check: KeyVaultSecretAccess | BlobAccess) -> Outcome:
    step = ctx.access_step(index)
    what = check.describe()
    if step is None:
        return missing_probe_step("access", f"access step for {what}")
    evidence = dict(step.get("evidence") or {})
    outcome = step.get("outcome") or evidence.get("outcome")
    evidence["expected"] = check.expect
    detail = _detail(evidence)
    principal = principal_id_of(ctx.facts.identity)
    roles = _roles(ctx)
    if roles is not None:
        evidence["identity_roles"] = roles
    if outcome == check.expect:
        verb = "allowed" if outcome == "allow" else "denied"
        return passed(f"{what}: {verb} as expected ({detail})", evidence)
    if outcome == "deny" and check.expect == "allow":
        return failed(
            f"{what}: denied, expected allow ({detail})",
            evidence,
            Finding(
                "ACCESS_DENIED_UNEXPECTEDLY",
                ERROR,
                "access",
                f"the workload cannot read {what} ({detail}); role assignments take minutes to propagate",
                evidence,
                [*_grant_read(check, principal), fix.list_roles(principal)],
            ),
        )
    if outcome == "allow" and check.expect == "deny":
        return failed(
            f"{what}: ALLOWED, expected deny: the identity has more access than intended ({detail})",
            evidence,
            Finding(
                "ACCESS_ALLOWED_UNEXPECTEDLY",
                ERROR,
                "access",
                f"least privilege violated: the workload can read {what}",
                evidence,
                [fix.list_roles(principal), fix.delete_role_assignment()],
            ),
        )
    error = step.get("error") or {}
    kind = str(error.get("kind") or "")
    if kind == "token_exchange":
        code = "ACCESS_TOKEN_FAILED"
        message = f"no token for {error.get('scope')}: {describe_exchange_error(error.get('detail') or {})}"
        remediation: list[Step] = [
            advice(
                f"set scope: on this access entry in harness.yaml to the token scope of {what} in its cloud "
                "(e.g. https://vault.azure.net/.default, https://storage.azure.com/.default)"
            )
        ]
    elif kind in EGRESS_KINDS or kind.startswith("tls"):
        code, message = "EGRESS_BLOCKED", f"the pod cannot reach {step.get('target')}: {error.get('message')}"
        remediation = fix.egress_test(ctx.namespace, str(step.get("target")))
    elif kind in UNTRUSTED_TARGET_KINDS:
        code, message = "ACCESS_TARGET_NOT_TRUSTED", f"{what}: no token was sent: {error.get('message')}"
        remediation = _real_endpoint(check)
    else:
        code, message = "ACCESS_CHECK_ERROR", f"{what}: {detail or error.get('message')}"
        remediation = [_show(check)]
    evidence["error"] = error
    return failed(
        f"{what}: expected {check.expect}, got {outcome or 'error'} ({message})",
        evidence,
        Finding(code, ERROR, "access", message, evidence, remediation),
    )


def _real_endpoint(check: KeyVaultSecretAccess | BlobAccess) -> list[Step]:
    """The resource's own endpoint, to compare with the URL in harness.yaml."""
    if isinstance(check, KeyVaultSecretAccess):
        lookup = command("az", "keyvault", "show", "--name", fix.vault_name(check.vault_url),
                         "--query", "properties.vaultUri", "-o", "tsv")
        why = "a host that answers without Key Vault's challenge, or names another resource, is not the vault"
    else:
        lookup = command("az", "storage", "account", "show", "--name", fix.storage_account_name(check.account_url),
                         "--query", "primaryEndpoints.blob", "-o", "tsv")
        why = "only the cloud's own blob hosts may receive the token"
    return [lookup, advice(f"set the access entry's URL in harness.yaml to exactly that endpoint: {why}")]


def _show(check: KeyVaultSecretAccess | BlobAccess) -> Command:
    """The az command that shows whether the thing the check reads exists (a 404 is not a denial)."""
    if isinstance(check, KeyVaultSecretAccess):
        return fix.show_secret(check.vault_url, check.secret)
    return fix.show_blob(check.account_url, check.container, check.blob)


def _detail(evidence: dict[str, Any]) -> str:
    parts = [f"HTTP {evidence.get('http_status')}"] if evidence.get("http_status") else []
    parts += [str(evidence[k]) for k in ("code", "innererror") if evidence.get(k)]
    if evidence.get("version"):
        parts.append(f"version {evidence['version']}")
    return " ".join(parts)
