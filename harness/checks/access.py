"""Access checks: each configured read (Key Vault secret, blob) met its expectation, allow or deny, so least
privilege is proven too."""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from harness.checks import remediation as fix
from harness.checks.common import missing_probe_step
from harness.checks.context import WorkloadContext
from harness.checks.exchange import (
    EGRESS_KINDS,
    UNVERIFIED_TLS,
    describe_exchange_error,
    egress_fix,
    proxy_ca_steps,
    refused_note,
    service_timeout,
    service_unavailable,
    slow_service,
    unavailable_status,
    untrusted_answer,
)
from harness.checks.federation import principal_id_of
from harness.checks.inventory import PRIVILEGED_ROLES
from harness.checks.model import ERROR, WARNING, Finding, Outcome, failed, passed, warned
from harness.checks.roles import Assignment, diagnose_denial, moved_from, view_assignments
from harness.checks.transient import identity_client_id
from harness.commands import Command, Step, Var, advice
from harness.config import BlobAccess, KeyVaultSecretAccess
from harness.values import endpoint_key

READ_ROLES = {"keyvault_secret": "Key Vault Secrets User", "blob": "Storage Blob Data Reader"}
# The probe kept the token: the host is not one it may go to, or Key Vault's challenge was absent or named
# another resource (what a look-alike host or a typo gets).
UNTRUSTED_TARGET_KINDS = ("target_not_trusted", "challenge_missing", "challenge_mismatch")


MAX_ID_PART = 100  # characters of a blob name (up to 1024 in Azure) kept in a check id
_ID_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._/-]")


def access_check_id(check: KeyVaultSecretAccess | BlobAccess) -> str:
    """What the check reads, as its id: ``access.keyvault:finance-kv/db-password``,
    ``access.blob:ordersdata/reports/daily.csv`` (characters outside ``[A-Za-z0-9._/-]`` become ``_``). The
    vault or account is the entry's ``name``, else the one its URL says, else the URL's host and port."""
    if isinstance(check, KeyVaultSecretAccess):
        kind, path = "keyvault", f"{_target_name(check)}/{check.secret}"
    else:
        kind, path = "blob", f"{_target_name(check)}/{check.container}/{check.blob}"
    return f"access.{kind}:{_ID_UNSAFE_RE.sub('_', path)[:MAX_ID_PART]}"


def _target_name(check: KeyVaultSecretAccess | BlobAccess) -> str:
    if check.name:
        return check.name
    name = fix.resource_name_from_url(check.url)
    return name if name != fix.UNKNOWN_NAME else urllib.parse.urlsplit(check.url).netloc


def access_check_ids(checks: Sequence[KeyVaultSecretAccess | BlobAccess]) -> list[str]:
    """Each check's id, in order; where two would be equal (the same object read twice, say allow from one
    expectation and deny from another), each of them gets its 1-based position: ``...#2``."""
    ids = [access_check_id(check) for check in checks]
    counts = Counter(ids)
    return [f"{check_id}#{index + 1}" if counts[check_id] > 1 else check_id for index, check_id in enumerate(ids)]


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


def resource_of(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess) -> dict[str, str] | None:
    """The vault or storage account behind the check's URL, as ARM listed it (None when it could not tell, or the
    vault is soft-deleted: :func:`deleted_vault_of`)."""
    url = check.vault_url if isinstance(check, KeyVaultSecretAccess) else check.account_url
    found = ctx.cluster.access_resources.get(endpoint_key(url))
    return None if found is None or "true" in (found.get("deleted"), found.get("absent")) else found


def deleted_vault_of(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess) -> dict[str, str] | None:
    """The soft-deleted vault the check's URL names, as ARM's deletedVaults listed it."""
    if not isinstance(check, KeyVaultSecretAccess):
        return None
    found = ctx.cluster.access_resources.get(endpoint_key(check.vault_url))
    return found if found is not None and found.get("deleted") == "true" else None


def _vault_deleted(ctx: WorkloadContext, check: KeyVaultSecretAccess, vault: dict[str, str],
                   evidence: dict[str, Any], principal: str | None) -> Outcome:
    """The vault was deleted (az keyvault delete, or its resource group): whatever its host answered, the read
    cannot work. Recovery restores its secrets and access policies but not its role assignments ("Recovering a
    soft-deleted Key Vault will not restore these services. They will need to be recreated": the Key Vault
    soft-delete overview), so an RBAC read needs its grant again."""
    what = check.describe()
    error = evidence.get("error") if isinstance(evidence.get("error"), dict) else {}
    detail = _detail(evidence) or str(error.get("message") or "no answer")
    evidence["vault_deleted"] = {k: vault[k] for k in ("id", "deletion_date", "scheduled_purge_date") if k in vault}
    when = f" on {vault['deletion_date']}" if vault.get("deletion_date") else ""
    until = f", recoverable until {vault['scheduled_purge_date']}" if vault.get("scheduled_purge_date") else ""
    why = (f"the vault {vault['name']} was deleted{when} (soft-deleted{until}): Key Vault keeps it, and its name, "
           "only to be recovered or purged")
    if check.expect == "deny":
        return warned(
            f"{what}: deny not proven: {why} ({detail})", evidence,
            Finding("DENY_NOT_PROVEN", WARNING, "access",
                    f"deny not proven for {what}: {why} ({detail}); nothing reads it while it is deleted, and "
                    "recovering it brings back none of its role assignments",
                    evidence, [advice("if it was deleted for good, remove this access entry from harness.yaml")]))
    who: str | Var | None = principal
    lookup: list[Step] = []
    if principal is None and ctx.expected_client_id:
        lookup, who = [fix.principal_of_client_id(ctx.expected_client_id)], Var("PRINCIPAL")
    if vault.get("group_deleted") == "true":
        # az group delete takes the vault (soft-deleted) with the rest; the recovery puts it back in that group
        why += f"; its resource group {vault.get('resource_group')} was deleted too (az group delete)"
    regroup = [fix.resource_group_create(vault.get("resource_group", ""), vault.get("location"),
                                         vault.get("subscription_id"))] if vault.get("group_deleted") == "true" else []
    repair: list[Step] = [
        *regroup,
        fix.keyvault_recover(vault["name"], vault.get("resource_group", ""), vault.get("location", ""),
                             vault.get("subscription_id")),
        advice("recovery brings back its secrets and access policies, not its role assignments: under RBAC (the "
               "default) grant the workload's read again, and the other identities' it had"),
        *lookup,
        fix.grant_role(who, READ_ROLES[check.kind], vault["id"]),
        advice("if it was deleted for good, point this access entry at the vault that replaces it"),
    ]
    return failed(f"{what}: expected allow: {why} ({detail})", evidence,
                  Finding("VAULT_DELETED", ERROR, "access", f"{what}: {why} ({detail})", evidence, repair))


def resource_name(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess) -> str:
    """The resource's name as ARM knows it, else the first label of the URL's host (how Azure names them)."""
    found = resource_of(ctx, check)
    if found is not None:
        return found["name"]
    if check.name:
        return check.name
    if isinstance(check, KeyVaultSecretAccess):
        return fix.vault_name(check.vault_url)
    return fix.storage_account_name(check.account_url)


def resource_id(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess) -> str | None:
    """The resource's ARM id when the harness read it: its group and subscription, which a fix naming the resource
    by name must give az (it looks a name up in the current subscription only)."""
    return (resource_of(ctx, check) or {}).get("id")


def _denies_another_secret(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess, vault_id: str) -> bool:
    """Whether the workload must not read another secret of the vault ``check`` reads (a deny target there): a grant
    on the vault would let it, so the read is granted on the secret itself. Microsoft recommends a vault per
    application and per-secret grants only for secrets shared between applications (learn.microsoft.com, Provide
    access to Key Vault keys, certificates, and secrets with Azure RBAC: best practices)."""
    return isinstance(check, KeyVaultSecretAccess) and any(
        isinstance(other, KeyVaultSecretAccess) and other.expect == "deny" and other.secret != check.secret
        and str((resource_of(ctx, other) or {}).get("id") or "").lower() == vault_id.lower()
        for other in ctx.workload.access)


def read_scope_of(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess, resource_id: str) -> str:
    """Where the read role is granted for ``check`` on its resource ``resource_id``: the vault, or the secret when the
    workload must not read another secret of that vault; a blob's container."""
    return fix.read_scope(resource_id, check, per_secret=_denies_another_secret(ctx, check, resource_id))


def _grant_read(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                principal: str | Var | None) -> list[Step]:
    """Grant the read role at the resource (the container, for a blob; the secret, when the workload must not read
    another secret of its vault): its id from ARM when the harness read it, else looked up into $SCOPE first."""
    role = READ_ROLES[check.kind]
    found = resource_of(ctx, check)
    if found is not None:
        return [fix.grant_role(principal, role, read_scope_of(ctx, check, found["id"]))]
    name = resource_name(ctx, check)
    if isinstance(check, KeyVaultSecretAccess):
        return [fix.keyvault_id(name), fix.grant_role(principal, role, Var("SCOPE"))]
    return [fix.storage_account_id(name), fix.grant_role(principal, role, fix.container_scope(check.container))]


def grant_read_if_missing(ctx: WorkloadContext, principal: str | None) -> tuple[list[Step], list[str]]:
    """The grants of each allow target's read role that the identity's role assignments do not cover yet (an RBAC
    vault or a storage account the harness found in ARM; an access-policy vault is left to KEYVAULT_ACCESS_POLICY_
    MISSING), and the scopes granted on."""
    assignments = ctx.facts.identity.role_assignments
    if principal is None or assignments is None:
        return [], []
    steps: list[Step] = []
    scopes: list[str] = []
    for check in ctx.workload.access:
        found, target = resource_of(ctx, check), target_scope(ctx, check)
        if check.expect != "allow" or found is None or target is None or found.get("rbac_authorization") == "false":
            continue
        views = view_assignments(assignments, ctx.facts.identity.role_names, ctx.facts.identity.role_permissions,
                                 check.kind, target)
        if any(a.grants and a.covers for a in views):
            continue
        scope = read_scope_of(ctx, check, found["id"])
        if scope not in scopes:
            steps.append(fix.grant_role(principal, READ_ROLES[check.kind], scope))
            scopes.append(scope)
    return steps, scopes


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
    outcome = answer_meaning(check.kind, evidence) or step.get("outcome") or evidence.get("outcome")
    evidence["expected"] = check.expect
    evidence["meaning"] = outcome
    detail = _detail(evidence)
    principal = principal_id_of(ctx.facts.identity)
    roles = _roles(ctx)
    if roles is not None:
        evidence["identity_roles"] = roles
    if outcome == check.expect:
        verb = "allowed as expected" if outcome == "allow" else "denied as expected, by the service's authorization"
        expired = _expired_at(evidence, ctx.now) if isinstance(check, KeyVaultSecretAccess) else None
        if outcome == "allow" and expired is not None:
            assert isinstance(check, KeyVaultSecretAccess)
            return warned(f"{what}: {verb} ({detail}), but its expiry date passed ({expired})", evidence,
                          _secret_expired(check, expired, evidence))
        early = _not_yet_valid_until(evidence, ctx.now) if isinstance(check, KeyVaultSecretAccess) else None
        if outcome == "allow" and early is not None:
            assert isinstance(check, KeyVaultSecretAccess)
            return warned(f"{what}: {verb} ({detail}), but its activation date is ahead ({early})", evidence,
                          _secret_not_yet_valid(check, early, evidence))
        return passed(f"{what}: {verb} ({detail})", evidence)
    deleted = deleted_vault_of(ctx, check)
    if deleted is not None:
        assert isinstance(check, KeyVaultSecretAccess)
        evidence["error"] = step.get("error") or {}
        return _vault_deleted(ctx, check, deleted, evidence, principal)
    absent = ctx.cluster.access_resources.get(endpoint_key(check.url)) or {}
    if absent.get("absent") == "true" and str((step.get("error") or {}).get("kind")) == "dns":
        evidence["error"] = step.get("error") or {}
        if isinstance(check, BlobAccess):
            return _account_not_found(check, absent["name"], evidence)
        return _vault_not_found(check, absent["name"], evidence)
    missing = _missing_object(check, evidence)
    if missing is not None and check.expect == "deny" and isinstance(check, KeyVaultSecretAccess):
        # Key Vault judges the caller's rights before the secret: a caller it would refuse gets Forbidden
        # (ForbiddenByRbac, AccessDenied) for a disabled or missing secret as for any other, so SecretDisabled or
        # SecretNotFound on a deny target says the identity may read it (unverified beyond the lab, which answers
        # so; SECRET_NOT_FOUND's 'the identity was allowed to look' reads it the same way). Enabling or making the
        # secret is not the fix: the identity's access is
        evidence["answered_to_a_reader"] = missing
        outcome, detail = "allow", (f"{detail}: Key Vault tells the secret's state only to a caller allowed to read "
                                    "it")
    elif missing is not None and check.expect == "deny" and _storage_looked(evidence):
        # Storage authorizes a bearer token's read (the data action at the blob's scope) before it looks the
        # container and the blob up: a caller without the role gets 403 AuthorizationPermissionMismatch for a blob
        # or container that does not exist as for one that does (unverified beyond the lab, which answers so), so
        # BlobNotFound or ContainerNotFound on a deny target says the identity may read there. Uploading the blob is
        # not the fix: it would hand it over
        evidence["answered_to_a_reader"] = missing
        outcome, detail = "allow", (f"{detail}: Storage looks a blob up only for a caller allowed to read it")
    elif missing is not None:
        return missing_object(ctx, check, missing, evidence)
    if outcome in NOT_AN_AUTHORIZATION_ANSWER:
        return _not_an_authorization_answer(ctx, check, outcome, evidence, principal)
    if outcome == "deny" and check.expect == "allow" and _access_policy_refusal(evidence):
        vault, vault_id = resource_name(ctx, check), resource_id(ctx, check)
        client_id = identity_client_id(ctx.facts.identity) or ctx.expected_client_id
        named = {i.lower() for i in str((resource_of(ctx, check) or {}).get("access_policy_object_ids") or "")
                 .split(",") if i}
        # az keyvault set-policy --object-id <client id>, or an app registration's own object id (what its portal
        # page shows as Object ID): Key Vault takes any GUID, and the policy is for an object that never calls it;
        # an access policy names "The object ID of a user, service principal or security group" (AccessPolicyEntry)
        app_object_id = str((ctx.facts.identity.application or {}).get("id") or "") \
            if ctx.facts.identity.kind == "application" else ""
        through = _compound_policy(ctx, check, principal)
        if through is not None and not {p.lower() for p in _policy_secret_permissions(ctx, check, principal)} \
                & {"get", "all"}:
            return _compound_policy_refusal(ctx, check, evidence, principal, client_id, through)
        wrong = next(((i, label) for i, label in ((client_id, "client id"), (app_object_id, "application object id"))
                      if i and i.lower() in named), None)
        if wrong is not None and (principal or "").lower() not in named:
            wrong_id, label = wrong
            evidence["policy_names_client_id" if label == "client id" else "policy_names_application_object_id"] = \
                wrong_id
            keep = [*_policy_secret_permissions(ctx, check, wrong_id), *_policy_secret_permissions(ctx, check,
                                                                                                 principal)]
            whose = "the identity's client" if label == "client id" else "the app registration's (application)"
            return failed(
                f"{what}: denied, expected allow ({detail}): the vault's access policy names {whose} "
                f"{'id' if label == 'client id' else 'object id'} {wrong_id} as its object id, not its service "
                f"principal's object id {principal}",
                evidence,
                Finding(
                    "KEYVAULT_ACCESS_POLICY_MISSING", ERROR, "access",
                    f"the vault of {what} authorizes by access policy, and its policy for the identity names the "
                    f"{label} {wrong_id} as the object id (az keyvault set-policy --object-id takes the service "
                    f"principal's object id, {principal}); no policy lets the identity get secrets ({detail})",
                    evidence,
                    [fix.keyvault_set_secret_policy(vault, principal, keep, vault_id),
                     fix.keyvault_delete_policy(vault, wrong_id, vault_id=vault_id),
                     fix.keyvault_policies(vault, vault_id)],
                ),
            )
        held = _policy_secret_permissions(ctx, check, principal)
        listed = principal is not None and principal.lower() in named
        holds = (f"; its policy grants secrets {' '.join(held)}, yet Key Vault refused (a policy for another tenant, "
                 "or a change not yet in effect)" if {p.lower() for p in held} & {"get", "all"}
                 else f"; its policy grants secrets {' '.join(held)}, not get" if held
                 else f"; its policy grants no secret permission{_other_policy_permissions(ctx, check, principal)}"
                 if listed
                 else f"; no policy names its principal id {principal}" if principal and named else "")
        # a role that would grant the read under RBAC: the vault was likely switched to access policies
        # (enableRbacAuthorization false) after the role was given, and Key Vault no longer weighs it
        roles = granting_assignments(ctx, check)[:2]
        ignored = ("; the identity holds " + " and ".join(f"{a.role} on {a.scope}" for a in roles)
                   + ", which counts only while the vault uses RBAC (switched to access policies?)") if roles else ""
        steps: list[Step] = [fix.keyvault_set_secret_policy(vault, principal, held, vault_id),
                             fix.keyvault_policies(vault, vault_id)]
        if roles:
            steps.append(advice(f"or, if {vault} left RBAC by mistake, give it RBAC back instead "
                                "(its --enable-rbac-authorization true): the role then counts again, and every "
                                "access policy of the vault stops counting, for every caller"))
        return failed(
            f"{what}: denied, expected allow ({detail}): the vault uses access policies, not RBAC{holds}{ignored}",
            evidence,
            Finding(
                "KEYVAULT_ACCESS_POLICY_MISSING",
                ERROR,
                "access",
                f"the vault of {what} authorizes by access policy and none lets the identity get secrets "
                f"({detail}){holds}{ignored}; a role assignment would not help",
                evidence,
                steps,
            ),
        )
    if outcome == "deny" and check.expect == "allow":
        return _rbac_denial(ctx, check, evidence, principal)
    if outcome == "allow" and check.expect == "deny":
        policy = _policy_revocation(ctx, check, principal)
        if policy is not None:
            evidence["access_policy_grants"] = policy[0]
            return failed(
                f"{what}: ALLOWED, expected deny: the identity has more access than intended ({detail}); the vault "
                f"authorizes by access policy, and the identity's grants secrets {' '.join(policy[0])}",
                evidence,
                Finding("ACCESS_ALLOWED_UNEXPECTEDLY", ERROR, "access",
                        f"least privilege violated: the workload can read {what}: the vault's access policy for the "
                        f"identity grants secrets {' '.join(policy[0])} (a role assignment has no part in it)",
                        evidence, policy[1]),
            )
        return failed(
            f"{what}: ALLOWED, expected deny: the identity has more access than intended ({detail})",
            evidence,
            Finding(
                "ACCESS_ALLOWED_UNEXPECTEDLY",
                ERROR,
                "access",
                f"least privilege violated: the workload can read {what}{_granted_by(ctx, check)}",
                evidence,
                _revoke_read(ctx, check, principal),
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
    elif _unavailable_answer(evidence, kind) is not None:
        evidence["error"] = error
        status, retries = _unavailable_answer(evidence, kind)  # type: ignore[misc]  # not None: just checked
        url = str(evidence.get("url") or step.get("target") or "")
        service = "Key Vault" if check.kind == "keyvault_secret" else "Storage"
        finding = service_unavailable(service, url, status, str(evidence.get("code") or ""), retries, "access",
                                      evidence)
        return failed(f"{what}: {finding.message}", evidence, finding)
    elif slow_service(error):
        evidence["error"] = error
        url = str(error.get("url") or step.get("target") or "")
        retries = evidence.get("retries") or evidence.get("challenge_retries")
        service = "Key Vault" if check.kind == "keyvault_secret" else "Storage"
        finding = service_timeout(service, url, error, retries, "access", evidence)
        return failed(f"{what}: {finding.message}", evidence, finding)
    elif kind == UNVERIFIED_TLS:  # it answered: no network rule is at fault, the certificate is
        code, message = "EGRESS_BLOCKED", f"{untrusted_answer(str(step.get('target')))}: {error.get('message')}"
        remediation = [*fix.egress_test(ctx.namespace, str(step.get("target")), None)[:1], *proxy_ca_steps(ctx)]
    elif kind in EGRESS_KINDS or kind.startswith("tls"):
        code, message = "EGRESS_BLOCKED", (f"the pod cannot reach {step.get('target')}: {error.get('message')}"
                                           f"{refused_note(error, evidence.get('retries'))}")
        remediation = egress_fix(ctx, str(step.get("target")), evidence, kind, str(error.get("message") or ""))
        others = _other_unreachable_hosts(ctx, str(step.get("target")))
        if others:  # one finding per code: the rule to add must cover every host, not only this one's
            message += f"; nor {', '.join(others)} (the other access entries' hosts)"
            evidence["unreachable_hosts"] = others
    elif kind in UNTRUSTED_TARGET_KINDS:
        code, message = "ACCESS_TARGET_NOT_TRUSTED", f"{what}: no token was sent: {error.get('message')}"
        remediation = _real_endpoint(check, resource_name(ctx, check), resource_id(ctx, check))
    else:
        code, message = "ACCESS_CHECK_ERROR", f"{what}: {detail or error.get('message')}"
        remediation = [_show(check, resource_name(ctx, check))]
    evidence["error"] = error
    return failed(
        f"{what}: expected {check.expect}, got {outcome or 'error'} ({message})",
        evidence,
        Finding(code, ERROR, "access", message, evidence, remediation),
    )


def _unavailable_answer(evidence: dict[str, Any], kind: str) -> tuple[int, Any] | None:
    """(status, retries) when the service's last answer, after the probe's retries, was 429 or 5xx: to the request
    for the vault's challenge (which then names nothing: no token was sent, yet the host is no impostor) or to
    the read itself; None otherwise."""
    if kind in UNTRUSTED_TARGET_KINDS:
        status, retries = (evidence.get("challenge") or {}).get("http_status"), evidence.get("challenge_retries")
    else:
        status, retries = evidence.get("http_status"), evidence.get("retries")
    return (int(status), retries) if unavailable_status(status) else None


def _other_unreachable_hosts(ctx: WorkloadContext, target: str) -> list[str]:
    """The hosts of the probe's other access steps that could not connect either (a network error, not an answer),
    other than ``target``'s: EGRESS_BLOCKED is reported once, for the first, and its fix must name them all."""
    own = urllib.parse.urlsplit(target).netloc
    hosts = [urllib.parse.urlsplit(str(s.get("target") or "")).netloc
             for s in (ctx.probe or {}).get("steps") or [] if s.get("name") == "access"
             and (str((s.get("error") or {}).get("kind") or "") in EGRESS_KINDS
                  or str((s.get("error") or {}).get("kind") or "").startswith("tls"))]
    return [host for host in dict.fromkeys(hosts) if host and host != own][:5]


def target_scope(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess) -> str | None:
    """The ARM scope of the object the check reads (the secret, the blob), when the resource is known."""
    found = resource_of(ctx, check)
    if found is None:
        return None
    if isinstance(check, KeyVaultSecretAccess):
        return f"{found['id']}/secrets/{check.secret}"
    return f"{found['id']}/blobServices/default/containers/{check.container}/blobs/{check.blob}"


def _granted_by(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess) -> str:
    """``: <role> on <scope> grants it (inherited from ...)`` for the assignments that let the identity read."""
    resource = resource_of(ctx, check)
    granting = [] if resource is None else granting_assignments(ctx, check)
    if not granting:
        return ""
    parts = []
    for a in granting[:3]:
        segments = [x.lower() for x in a.scope.strip("/").split("/")]
        inherited = "" if a.scope.lower().startswith(resource["id"].lower()) else (
            " (inherited from the subscription)" if len(segments) == 2 and segments[0] == "subscriptions"
            else f" (inherited from resource group {a.scope.strip('/').split('/')[3]})"
            if len(segments) == 4 and segments[2] == "resourcegroups" else " (inherited)")
        parts.append(f"{a.role} on {a.scope}{inherited}")
    return ": " + "; ".join(parts) + (" grants it" if len(parts) == 1 else " grant it")


def _revoke_read(
    ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess, principal: str | None
) -> list[Step]:
    """The identity's assignments that grant the read on the deny target (its role's data actions, a scope on the
    target's chain): those on the resource itself (or below) deleted by id; one on a wider scope (a group, the
    subscription) may carry reads the workload needs, so a person narrows it (a ``<placeholder>``), as when the
    assignments could not be read or the right comes from elsewhere (a group, an access policy)."""
    resource = resource_of(ctx, check)
    granting = [] if resource is None else granting_assignments(ctx, check)
    on_resource = [a for a in granting if a.scope.lower().startswith(resource["id"].lower())][:3]
    wider = [a for a in granting if a not in on_resource][:3]
    steps: list[Step] = []
    if on_resource and isinstance(check, BlobAccess):
        steps += _revoke_blob_read(ctx, check, principal, on_resource)
    elif on_resource:
        # a grant on the vault may be what the workload's allowed secrets of that vault are read through too: they
        # are granted on themselves first, then it goes
        keep = _keep_reads(ctx, principal, {a.id for a in on_resource})
        steps += [advice("remove what grants the read, if nothing else the identity does needs it: "
                         + "; ".join(f"{a.role} on {a.scope}" for a in on_resource)
                         + (": the secrets the workload must read keep a grant on each, made first" if keep else "")),
                  *keep, *[fix.delete_role_assignment_id(a.id) for a in on_resource]]
    if wider:
        # an assignment inherited from a resource group or the subscription: the allow targets it alone covers keep
        # their read through a grant at their own resource, then it goes
        steps.append(advice("narrow what grants it on a wider scope, if nothing else the identity does needs it: "
                            + "; ".join(f"{a.role} on {a.scope}" for a in wider)
                            + ": grant the reads the workload needs at their resources, then delete it"))
        steps += _keep_reads(ctx, principal, {a.id for a in wider})
        steps += [fix.delete_role_assignment_id(a.id) for a in wider]
    if not on_resource and not wider and resource is not None and ctx.facts.identity.role_assignments is not None:
        # none of the identity's own assignments grants it: Azure RBAC honours the assignments of the groups a
        # service principal is in (az role assignment list --include-groups asks ARM for assignedTo(), which
        # includes them), or the right comes from outside RBAC
        steps += [advice("none of the identity's own role assignments grants the read: one of a group it is a member "
                         "of may (listed below with --include-groups), or an access policy of a vault not on RBAC; "
                         "delete that one, or take the identity out of the group, if nothing else needs it"),
                  fix.list_roles_with_groups(principal), fix.delete_role_assignment()]
    elif not on_resource and not wider:
        steps += [fix.list_roles(principal), fix.delete_role_assignment()]
    return steps


def _revoke_blob_read(ctx: WorkloadContext, check: BlobAccess, principal: str | None,
                      on_resource: list[Assignment]) -> list[Step]:
    """An assignment on the storage account (or the deny target's container) may be what the workload's allowed
    reads go through too: their containers are granted first, then it goes. A blob the workload must read in the
    deny target's own container cannot be told apart by a role's scope (a container is the narrowest data scope):
    then nothing is deleted, and the person moves one of the blobs."""
    keep = _keep_reads(ctx, principal, {a.id for a in on_resource})
    container = f"/blobServices/default/containers/{check.container}".lower()
    clash = [g for g in keep if str(g.argv[-1]).lower().endswith(container)
             and str(g.argv[-1]).lower().startswith(str((resource_of(ctx, check) or {}).get("id", "")).lower())]
    held = "; ".join(f"{a.role} on {a.scope}" for a in on_resource)
    if clash:
        shared = [f"{o.container}/{o.blob}" for o in ctx.workload.access if isinstance(o, BlobAccess)
                  and o.expect == "allow" and o.container == check.container
                  and resource_of(ctx, o) == resource_of(ctx, check)]
        return [advice(f"{held} grants it"),
                advice(f"the workload must read {', '.join(shared) or 'a blob'} in the same container: a container "
                       "is the narrowest scope of a blob role, so no assignment lets the one be read and not the "
                       "other"),
                advice("move one of the blobs to another container, grant the read on the allowed one's container, "
                       "then delete this assignment (or set the entry's expect to allow if the read is intended)")]
    return [advice("remove what grants the read, if nothing else the identity does needs it: " + held
                   + (": the reads the workload needs keep their containers' grant, made first" if keep else "")),
            *keep, *[fix.delete_role_assignment_id(a.id) for a in on_resource]]


def granting_assignments(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess) -> list[Assignment]:
    """The identity's assignments whose role grants the check's read on a scope on its target's chain (none when
    the assignments or the resource are not known)."""
    return _granting(ctx, check, ctx.facts.identity.role_assignments, target_scope(ctx, check))


def _granting(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess, assignments: list[dict[str, Any]] | None,
              target: str | None) -> list[Assignment]:
    """Those of ``assignments`` whose role grants the check's read on a scope on ``target``'s chain."""
    if not assignments or target is None:
        return []
    facts = ctx.facts.identity
    return [a for a in view_assignments(assignments, facts.role_names, facts.role_permissions, check.kind, target)
            if a.grants and a.covers]


def _keep_reads(ctx: WorkloadContext, principal: str | None, removed: set[str]) -> list[Command]:
    """Grants at their resources of the allow targets that only the ``removed`` assignments let the identity read."""
    grants: list[Command] = []
    for other in ctx.workload.access:
        found = resource_of(ctx, other)
        fitting = granting_assignments(ctx, other) if other.expect == "allow" and found is not None else []
        if fitting and all(a.id in removed for a in fitting) and found is not None:
            grant = fix.grant_role(principal, READ_ROLES[other.kind], read_scope_of(ctx, other, found["id"]))
            if grant not in grants:
                grants.append(grant)
    return grants


def _client_id_assignments(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                           target: str | None) -> list[Assignment]:
    """Assignments that name the identity's client id as their principal id and would grant the read on the
    target had they named its principal (object) id."""
    return _granting(ctx, check, ctx.facts.identity.client_id_role_assignments, target)


def _former_principal_assignments(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                                  target: str | None) -> list[Assignment]:
    """Assignments that name a deleted service principal of the application (az ad sp delete, then az ad sp
    create: a new object id) and would grant the read on the target had they named the live one."""
    return _granting(ctx, check, ctx.facts.identity.former_principal_role_assignments, target)


def _namesake_assignments(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                          target: str | None) -> list[tuple[Assignment, dict[str, str]]]:
    """Assignments of another managed identity of this one's name (in another resource group or subscription)
    that grant the read on the target: given to the namesake, they grant this identity nothing. Each with that
    identity ({name, resource_id, principal_id})."""
    facts = ctx.facts.identity
    if not facts.namesake_role_assignments or target is None:
        return []
    identities = {i["principal_id"].lower(): i for i in facts.namesake_identities}
    views = view_assignments(facts.namesake_role_assignments, facts.role_names, facts.role_permissions, check.kind,
                             target)
    found = []
    for view, raw in zip(views, facts.namesake_role_assignments, strict=True):
        other = identities.get(str((raw.get("properties") or {}).get("principalId") or "").lower())
        if view.grants and view.covers and other is not None:
            found.append((view, other))
    return found


def _group_named(resource_id: str, beside: str) -> str:
    """``resource group RG`` of an ARM id, with its subscription when ``beside`` (another id) is in another one."""
    parts = resource_id.split("/")
    if len(parts) < 5:
        return resource_id
    other = beside.split("/")
    subscription = f" of subscription {parts[2]}" if len(other) < 3 or other[2].lower() != parts[2].lower() else ""
    return f"resource group {parts[4]}{subscription}"


def _rbac_denial(
    ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess, evidence: dict[str, Any], principal: str | None
) -> Outcome:
    """An authorization refusal on an allow target, diagnosed from the identity's role assignments along the
    target's scope chain when the harness could read them (else the plain ACCESS_DENIED_UNEXPECTEDLY)."""
    what, detail = check.describe(), _detail(evidence)
    assignments = ctx.facts.identity.role_assignments
    target = target_scope(ctx, check)
    who: str | Var | None = principal
    lookup: list[Step] = []
    if principal is None and ctx.expected_client_id:  # the harness could not read the identity: the person can
        lookup, who = [fix.principal_of_client_id(ctx.expected_client_id)], Var("PRINCIPAL")
    repair: list[Step] = [*lookup, *_grant_read(ctx, check, who), fix.list_roles(who)]
    found = resource_of(ctx, check) or {}
    if found.get("found_by") == "resource_graph" and assignments is not None:
        # in another subscription (found through Resource Graph): the role assignments the harness read are its own
        # subscription's, so they cannot tell a missing role from one not yet in effect
        code = "ACCESS_DENIED_UNEXPECTEDLY"
        subscription = found["id"].split("/")[2] if found["id"].count("/") > 2 else "?"
        why = (f"the resource is in subscription {subscription}, whose role assignments the harness does not read: "
               "grant the read role on it there (a new assignment takes minutes to take effect)")
        evidence["resource_subscription"] = subscription
    elif assignments is None or target is None:
        code = "ACCESS_DENIED_UNEXPECTEDLY"
        why = "role assignments take minutes to propagate"
    else:
        views = view_assignments(assignments, ctx.facts.identity.role_names, ctx.facts.identity.role_permissions,
                                 check.kind, target)
        diagnosis = diagnose_denial(views, target, ctx.now, check.kind)
        code, why = diagnosis.code, diagnosis.detail
        evidence["role_diagnosis"] = {"target_scope": target,
                                      "assignments": [a.__dict__ for a in diagnosis.assignments]}
        conditional = [a for a in diagnosis.assignments if a.grants and a.covers and a.condition]
        if code == "ACCESS_DENIED_UNEXPECTEDLY" and conditional and all(
                a.condition for a in diagnosis.assignments if a.grants and a.covers):
            # granted only under an ABAC condition the read did not meet: granting the role again at that scope
            # is refused as a duplicate (RoleAssignmentExists), so the assignment is replaced, a person's choice
            evidence["conditional_assignments"] = [a.id for a in conditional]
            repair = [advice("the condition is its owner's choice: if it is not meant to exclude this read, widen it "
                             "(az role assignment update), or replace the assignment by one without a condition:"),
                      *[step for a in conditional[:3]
                        for step in (fix.delete_role_assignment_id(a.id), fix.grant_role(principal, a.role, a.scope))]]
        elif code == "ACCESS_DENIED_UNEXPECTEDLY" and any(a.grants and a.covers for a in diagnosis.assignments):
            # a settled fitting assignment: granting it again is refused as a duplicate (RoleAssignmentExists); what
            # refuses the read is looked for (deny assignments cover data actions only when Azure Blueprints or a
            # managed application made them: az role deny-assignment create supports no data actions)
            repair = [fix.deny_assignments(found.get("id") or target), fix.list_roles(principal)]
        if code == "ROLE_PROPAGATION_PENDING":
            repair = [advice("wait a few minutes and run again: nothing to change"), fix.list_roles(principal)]
        elif code == "ROLE_WRONG_SCOPE":
            misplaced = [a for a in diagnosis.assignments if a.grants and not a.covers]
            # roles given per secret (a scope .../vaults/V/secrets/S; Key Vault honours them): the fix keeps that
            # grain and grants on this secret, not the whole vault
            per_secret = isinstance(check, KeyVaultSecretAccess) and all(
                "/secrets/" in a.scope.lower() for a in misplaced)
            grant = ([fix.grant_role(principal, READ_ROLES[check.kind], target)] if per_secret and target
                     else _grant_read(ctx, check, principal))
            # a resource moved (az resource move) leaves its assignments at its old id, orphaned: nothing else needs them
            orphaned = all(moved_from(a.scope, target) for a in misplaced[:3])
            repair = [*grant,
                      advice("then remove the orphaned assignment left at the old id (Azure removes it eventually):"
                             if orphaned else "then remove the assignment on the wrong scope if nothing else needs it:"),
                      *[fix.delete_role_assignment_id(a.id) for a in misplaced[:3]]]
        elif code == "ROLE_INSUFFICIENT":
            # Key Vault Contributor, Contributor, Owner: no read, and more than a workload should hold (the same as
            # the inventory's ROLE_OVERLY_BROAD, which a --workload run does not print)
            privileged = {name.lower() for name in PRIVILEGED_ROLES.values()}
            broad = [a for a in diagnosis.assignments if a.covers and not a.grants and a.role.lower() in privileged]
            if broad:
                repair = [*repair, advice(f"then remove {broad[0].role}, if nothing else the workload does needs it: "
                                          "it reads no data, yet lets the workload change the resource and reach "
                                          "its data another way (a vault's access policy, a storage account's "
                                          "keys)"),
                          *[fix.delete_role_assignment_id(a.id) for a in broad[:3]]]
    misnamed = _client_id_assignments(ctx, check, target)
    if misnamed and code != "ROLE_PROPAGATION_PENDING":
        # az role assignment create --assignee-object-id <client id> --assignee-principal-type ServicePrincipal:
        # ARM does not look a principal up when its type is given, and the assignment names an object that does
        # not exist (the portal lists it as "Identity not found"); --assignee-object-id takes the principal
        # (object) id, --assignee the client id
        client_id = identity_client_id(ctx.facts.identity)
        evidence["assignments_naming_client_id"] = [a.id for a in misnamed]
        why += (f"; {misnamed[0].role} on {misnamed[0].scope} is assigned to the client id {client_id} as its "
                f"principal id, which names no principal (the service principal's object id is {principal})")
        repair = [*repair, advice("then delete the assignment made for the client id:"),
                  *[fix.delete_role_assignment_id(a.id) for a in misnamed[:3]]]
    stale = _former_principal_assignments(ctx, check, target)
    if stale and code != "ROLE_PROPAGATION_PENDING":
        # ARM keeps a deleted principal's role assignments, and the portal lists them as "Identity not found"
        # (learn.microsoft.com, Understand Azure role assignments: role assignments with identity not found); the
        # re-created service principal has a new object id, which the access token's oid carries and none names
        former = {str(r.get("id")): str((r.get("properties") or {}).get("principalId") or "?")
                  for r in ctx.facts.identity.former_principal_role_assignments}
        evidence["assignments_naming_deleted_service_principal"] = [
            {"id": a.id, "principal_id": former[a.id]} for a in stale]
        why += (f"; {stale[0].role} on {stale[0].scope} is assigned to principal id {former[stale[0].id]}, which is "
                "no longer any principal: the application's service principal was deleted and made again (a new "
                f"object id, {principal}), and the assignment still names the deleted one")
        repair = [*repair, advice("then delete the assignment left for the deleted service principal:"),
                  *[fix.delete_role_assignment_id(a.id) for a in stale[:3]]]
    namesakes = _namesake_assignments(ctx, check, target)
    if namesakes and code in ("ROLE_ASSIGNMENT_MISSING", "ROLE_WRONG_SCOPE", "ROLE_INSUFFICIENT"):
        # az identity create of the same name in another resource group, and the role given to that one: the
        # portal's Access control (IAM) lists both by display name, the identity's name; the access token's oid is
        # this identity's principal id, which the namesake's assignment does not name
        view, other = namesakes[0]
        evidence["assignments_of_namesakes"] = [{"id": a.id, "identity": i["resource_id"],
                                                 "principal_id": i["principal_id"]} for a, i in namesakes]
        own = str(ctx.facts.identity.resource_id or "")
        why += (f"; {view.role} on {view.scope} is assigned to {other['name']} in {_group_named(other['resource_id'], own)}"
                f", another managed identity of that name (principal id {other['principal_id']}), not to this one in "
                f"{_group_named(own, other['resource_id'])} (principal id {principal})")
        repair = [*repair, advice("then remove the other identity's assignment if nothing else needs it (it was "
                                  "given to that identity, not this one):"),
                  *[fix.delete_role_assignment_id(a.id) for a, _ in namesakes[:3]]]
    ignored = _policy_secret_permissions(ctx, check, principal) if evidence.get("innererror") == "ForbiddenByRbac" \
        else []
    if ignored and code != "ROLE_PROPAGATION_PENDING":
        # a vault switched to RBAC (az keyvault update --enable-rbac-authorization true) keeps its access policies
        # in ARM and ignores them: "When true, the key vault will use Role Based Access Control (RBAC) for
        # authorization of data actions, and the access policies specified in vault properties will be ignored"
        # (the management API's enableRbacAuthorization, KeyVaultPatchProperties)
        evidence["ignored_access_policy"] = ignored
        why += (f"; the vault's access policy for the identity (secrets {' '.join(ignored)}) no longer counts: the "
                "vault authorizes by RBAC (enableRbacAuthorization true) and ignores access policies")
    return failed(
        f"{what}: denied, expected allow ({detail}): {why}",
        evidence,
        Finding(code, ERROR, "access", f"the workload cannot read {what} ({detail}): {why}", evidence, repair),
    )


def _expired_at(evidence: dict[str, Any], now: float) -> str | None:
    """The secret version's expiry (attributes.exp, seconds since the epoch), as UTC text, when it has passed."""
    exp = (evidence.get("attributes") or {}).get("exp") if isinstance(evidence.get("attributes"), dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp > now:
        return None
    return datetime.datetime.fromtimestamp(exp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _vault_not_found(check: KeyVaultSecretAccess, name: str, evidence: dict[str, Any]) -> Outcome:
    """The vault's host did not resolve and no vault of that name is visible, live or soft-deleted: the URL names
    no vault (a vault's DNS name exists while the vault does, and while it is soft-deleted)."""
    return _named_nowhere(
        check, "vault", evidence,
        f"no subscription the harness reads has a vault named {name}, live or soft-deleted: the vault URL is wrong (a "
        "typo?) or the vault was purged",
        "VAULT_NOT_FOUND",
        [fix.keyvault_list_uris(), fix.keyvault_list_deleted(),
         advice("set vault_url in harness.yaml to the vault's vaultUri; a purged vault is gone with its secrets: "
                "create it again")])


def _account_not_found(check: BlobAccess, name: str, evidence: dict[str, Any]) -> Outcome:
    """The account's blob host did not resolve and no storage account of that name is visible: the URL names no
    account (an account's blob endpoint resolves while the account exists; deleted, its name goes)."""
    # a deleted account may be recovered (learn.microsoft.com, Recover a deleted storage account: within 14 days,
    # from the portal's Restore, its resource group there and no new account of its name made since; best effort);
    # no az command does it (unverified)
    return _named_nowhere(
        check, "account", evidence,
        f"no subscription the harness reads has a storage account named {name}: the account URL is wrong (a typo?) or "
        "the account was deleted",
        "STORAGE_ACCOUNT_NOT_FOUND",
        [fix.storage_account_list(),
         advice("set account_url in harness.yaml to the account's blob endpoint; a deleted account may be recovered "
                "within 14 days (Azure portal, Storage accounts, Restore; its resource group must exist), else create "
                "it again with its container and blob, and the workload's read role")])


def _named_nowhere(check: KeyVaultSecretAccess | BlobAccess, noun: str, evidence: dict[str, Any], absent: str,
                   code: str, repair: list[Step]) -> Outcome:
    """The URL's host did not resolve and the resource it names exists nowhere the harness can see (``absent`` says
    so): not EGRESS_BLOCKED, as no network rule or DNS server is at fault for a name that exists nowhere. A deny
    target is not proven; an allow target fails with ``code`` and ``repair``."""
    what = check.describe()
    host = urllib.parse.urlsplit(check.url).hostname or check.url
    error = evidence.get("error") if isinstance(evidence.get("error"), dict) else {}
    why = (f"{host} did not resolve, and {absent} (a{'n' if noun[0] in 'aeiou' else ''} {noun} in a subscription the "
           "harness cannot read would resolve, unless its private endpoint's DNS record is missing)")
    if check.expect == "deny":
        return warned(f"{what}: deny not proven: {why}", evidence,
                      Finding("DENY_NOT_PROVEN", WARNING, "access", f"deny not proven for {what}: {why}", evidence,
                              [advice(f"fix {check.url_field} in harness.yaml, or remove this access entry if the "
                                      f"{noun} is gone for good")]))
    return failed(f"{what}: expected allow: {why} ({error.get('message') or 'no answer'})", evidence,
                  Finding(code, ERROR, "access", f"{what}: {why}", evidence, repair))


def _not_yet_valid_until(evidence: dict[str, Any], now: float) -> str | None:
    """The secret version's activation date (attributes.nbf), as UTC text, when it is still ahead."""
    nbf = (evidence.get("attributes") or {}).get("nbf") if isinstance(evidence.get("attributes"), dict) else None
    if isinstance(nbf, bool) or not isinstance(nbf, int | float) or nbf <= now:
        return None
    return datetime.datetime.fromtimestamp(nbf, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret_not_yet_valid(check: KeyVaultSecretAccess, activation: str, evidence: dict[str, Any]) -> Finding:
    """Key Vault serves the latest version before its nbf as it serves one past its exp ("This field is for
    informational purposes only", about-secrets; azure-pipelines-tasks#14469: the task read a version whose
    activation date was ahead): a version staged early for a rotation is what the workload reads now."""
    evidence["not_before"] = activation
    return Finding(
        "SECRET_NOT_YET_VALID", WARNING, "access",
        f"{check.describe()} is not valid before {activation}: Key Vault serves its latest version anyway (it does not "
        "enforce the activation date), so the workload reads a value its owner meant to be used only from then (a "
        "rotation staged early?)",
        evidence,
        [fix.show_secret_dates(check.vault_url, check.secret), fix.list_secret_versions(check.vault_url, check.secret),
         advice("if that value is good now, move its activation date to now; if it is not, a version set now is "
                "what every reader gets: set the value in use again, and the new one when it takes effect"),
         fix.set_secret_not_before(check.vault_url, check.secret)],
    )


def _secret_expired(check: KeyVaultSecretAccess, expired: str, evidence: dict[str, Any]) -> Finding:
    """Key Vault serves a secret past its exp (it records exp and does not enforce it: Azure/AzureKeyVault#19), so
    the read passes while the value is one its owner meant to have rotated by then."""
    evidence["expired_at"] = expired
    return Finding(
        "SECRET_EXPIRED", WARNING, "access",
        f"{check.describe()} expired at {expired}: Key Vault still serves it (it does not enforce the expiry "
        "date), so the workload reads a value its owner meant to have replaced",
        evidence,
        [fix.show_secret_dates(check.vault_url, check.secret),
         advice("rotate it (a new version, with a new expiry), or, if the value is still good, move its expiry:"),
         fix.set_secret_expiry(check.vault_url, check.secret)],
    )


_NOT_FOUND = {"SecretNotFound": "SECRET_NOT_FOUND", "BlobNotFound": "BLOB_NOT_FOUND",
              "ContainerNotFound": "BLOB_NOT_FOUND", "SecretDisabled": "SECRET_DISABLED"}


def _missing_object(check: KeyVaultSecretAccess | BlobAccess, evidence: dict[str, Any]) -> str | None:
    """SECRET_NOT_FOUND / BLOB_NOT_FOUND (the service let the identity look: the object is not there) or
    SECRET_DISABLED, from the service's own codes."""
    codes = {str(evidence.get(k)) for k in ("code", "innererror", "x_ms_error_code") if evidence.get(k)}
    if evidence.get("http_status") == 404 and isinstance(check, BlobAccess) and not codes:
        return "BLOB_NOT_FOUND"  # a HEAD answer carries no body; its x-ms-error-code may be stripped by a proxy
    return next((_NOT_FOUND[c] for c in sorted(codes) if c in _NOT_FOUND), None)


def _storage_looked(evidence: dict[str, Any]) -> bool:
    """Storage's own 404 code (not a bare 404, which a proxy may have given) for a blob or its container."""
    codes = {str(evidence.get(k)) for k in ("code", "innererror", "x_ms_error_code") if evidence.get(k)}
    return evidence.get("http_status") == 404 and bool(codes & {"BlobNotFound", "ContainerNotFound"})


def missing_object(
    ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess, code: str, evidence: dict[str, Any]
) -> Outcome:
    what, detail = check.describe(), _detail(evidence)
    if code == "SECRET_DISABLED":
        assert isinstance(check, KeyVaultSecretAccess)
        message = f"{what} is disabled ({detail})"
        repair: list[Step] = [fix.enable_secret(check.vault_url, check.secret)]
    elif isinstance(check, KeyVaultSecretAccess):
        message = f"{what} does not exist ({detail}); the identity was allowed to look"
        # Key Vault answers a soft-deleted secret's get as it answers a name it never had, and refuses to create a
        # deleted name again (409 ObjectIsDeletedButRecoverable) until it is recovered or purged: the second list
        # tells a deleted secret from a wrong name. A secret moved by hand to another vault (az keyvault secret
        # backup, restore into a vault of the same subscription and geography: the restored secret keeps its name,
        # Restore-AzKeyVaultSecret's help) and deleted here is listed deleted too: recovering it would bring back
        # the old copy, and harness.yaml would go on checking the vault the workload no longer reads
        repair = [fix.list_secrets(check.vault_url), fix.list_deleted_secrets(check.vault_url),
                  advice(f"if the second list names {check.secret}, it was deleted: recover it (creating it again is "
                         "refused while it is deleted), unless it was moved to another vault (a backup restored "
                         "there keeps its name): then point vault_url in harness.yaml at that vault instead:"),
                  fix.recover_secret(check.vault_url, check.secret),
                  advice("else fix the secret's name in harness.yaml (or its vault_url, if the secret is now in "
                         "another vault), or create the secret")]
    elif "ContainerNotFound" in {str(evidence.get(k)) for k in ("code", "innererror", "x_ms_error_code")}:
        # the whole container is missing: a List Blobs on it answers ContainerNotFound as well, so the account's
        # containers are listed instead
        account = resource_name(ctx, check)
        message = (f"{what}: the storage account {account} has no container {check.container} ({detail}); the "
                   "identity was allowed to look")
        repair = [fix.list_containers(check.account_url),
                  advice(f"fix the container's name in harness.yaml (the list names the account's containers), or "
                         f"create {check.container} and upload {check.blob} to it"),
                  # container soft delete (on by default for accounts made in the portal) keeps a deleted container
                  # for its retention days, listed with --include-deleted, brought back whole by restore
                  advice(f"if {check.container} was deleted under container soft delete, the same list with "
                         "--include-deleted names it with its version: az storage container restore --name "
                         f"{check.container} --deleted-version VERSION brings it back with its blobs")]
    else:
        message = f"{what} does not exist ({detail})"
        repair = [fix.list_blobs(check.account_url, check.container),
                  # blob soft delete (1-365 days on the account's blob service) keeps a deleted blob out of a plain
                  # List Blobs; --include d lists it and Undelete Blob brings it back (learn.microsoft.com, Undelete
                  # Blob; the az CLI's help for storage blob list and storage blob undelete)
                  fix.list_deleted_blobs(check.account_url, check.container),
                  fix.undelete_blob_advice(check.account_url, check.container, check.blob),
                  advice("else fix the container/blob in harness.yaml, or upload the blob")]
    return failed(f"{what}: expected {check.expect}: {message}", evidence,
                  Finding(code, ERROR, "access", message, evidence, repair))


# The service's own error codes decide what an answer means (reference: real-cluster-behaviours.md section 1):
# only an authorization refusal proves a deny; network rules and authentication failures never do.
AUTHORIZATION_REFUSALS = {
    "keyvault_secret": {"ForbiddenByRbac", "AccessDenied", "ForbiddenByPolicy"},
    "blob": {"AuthorizationPermissionMismatch"},
}
NETWORK_REFUSALS = {
    "keyvault_secret": {"ForbiddenByFirewall", "ForbiddenByConnection"},
    "blob": {"AuthorizationFailure"},
}
NOT_AN_AUTHORIZATION_ANSWER = ("network", "unauthenticated", "refused")
# Key Vault's ForbiddenByFirewall message names the address the request came from: "Client address: 203.0.113.7"
_CLIENT_ADDRESS_RE = re.compile(r"Client address: ([0-9A-Fa-f:.]{2,45})")


def answer_meaning(kind: str, evidence: dict[str, Any]) -> str | None:
    """allow | deny | network | unauthenticated | refused | error, from the HTTP answer the probe recorded
    (None when it recorded none): the harness judges by the codes itself, whatever probe version ran."""
    status = evidence.get("http_status")
    if not isinstance(status, int):
        return None
    codes = {str(evidence[k]) for k in ("code", "innererror", "x_ms_error_code") if evidence.get(k)}
    if 200 <= status < 300:
        # a 2xx the probe could not read as a secret (a proxy's page, an answer cut short) proves no read
        return "error" if evidence.get("body_error") else "allow"
    if status == 401:
        return "unauthenticated"
    if status == 403:
        if codes & AUTHORIZATION_REFUSALS.get(kind, set()):
            return "deny"
        return "network" if codes & NETWORK_REFUSALS.get(kind, set()) else "refused"
    return "error"


def _granted_behind_network(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                            principal: str | None) -> tuple[str, list[Step]] | None:
    """A deny target that network access refused (a firewall, public access disabled) while what ARM lists grants
    the identity the read: a role whose data action covers it on the target's chain (on a vault that uses RBAC), or
    the vault's access policy with get (on one that does not). The network check comes first and says nothing of
    the identity's rights ("the identity's rights were never evaluated", real-cluster-behaviours.md, section 1): the
    grant stands, and any request from a network the resource admits (its rules changed, a private endpoint, the
    same identity elsewhere) reads it. What grants it and its revocation; None when nothing listed grants it. A
    role under an ABAC condition is left out: the harness does not evaluate conditions."""
    policy = _policy_revocation(ctx, check, principal)
    if policy is not None:
        return f"the vault's access policy for the identity grants secrets {' '.join(policy[0])}", policy[1]
    if (resource_of(ctx, check) or {}).get("rbac_authorization") == "false":
        return None  # an access-policy vault weighs no role
    roles = [a for a in granting_assignments(ctx, check) if not a.condition]
    if not roles:
        return None
    return (" and ".join(f"{a.role} on {a.scope}" for a in roles[:3]) + (" grants it" if len(roles) == 1
                                                                      else " grant it"),
            _revoke_read(ctx, check, principal))


def _policy_revocation(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                       principal: str | None) -> tuple[list[str], list[Step]] | None:
    """A vault under access policies (ARM's enableRbacAuthorization false) whose policy for the identity grants get:
    what it grants, and its policy without get (role revocations would change nothing there)."""
    found = resource_of(ctx, check) or {}
    if not isinstance(check, KeyVaultSecretAccess) or found.get("rbac_authorization") != "false":
        return None
    held = _policy_secret_permissions(ctx, check, principal)
    if not {p.lower() for p in held} & {"get", "all"}:
        return None
    vault, vault_id = resource_name(ctx, check), resource_id(ctx, check)
    return held, [fix.keyvault_revoke_secret_get(vault, principal, held, vault_id),
                  fix.keyvault_policies(vault, vault_id)]


def _compound_policy(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                     principal: str | None) -> tuple[str, list[str]] | None:
    """The identity's compound-identity policy (its object id with an applicationId, az keyvault set-policy
    --application-id), as ARM listed it: the application id and its secret permissions."""
    listed = str((resource_of(ctx, check) or {}).get("access_policy_compound") or "")
    for entry in listed.split(";"):
        ids, _, permissions = entry.partition("=")
        object_id, _, application_id = ids.partition("@")
        if principal and application_id and object_id.lower() == principal.lower():
            return application_id, permissions.split()
    return None


def _compound_policy_refusal(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                             evidence: dict[str, Any], principal: str | None, client_id: str | None,
                             through: tuple[str, list[str]]) -> Outcome:
    """The identity's policy was made with --application-id: Key Vault applies such an entry (a compound identity)
    only to a user signed in through that application ("Application ID of the client making request on behalf of a
    principal", AccessPolicyEntry; az: "Exposed for compound identity using on-behalf-of authentication flow"); an
    application's own policy has the object id alone ("objectid is populated and applicationid is null",
    MicrosoftDocs/azure-docs#66679). The workload's token is the identity's own, so the entry grants it nothing."""
    what, detail, vault = check.describe(), _detail(evidence), resource_name(ctx, check)
    vault_id = resource_id(ctx, check)
    application_id, permissions = through
    evidence["policy_application_id"] = application_id
    whose = " (the identity's own client id)" if client_id and client_id.lower() == application_id.lower() else ""
    keep = [*permissions, *_policy_secret_permissions(ctx, check, principal)]
    cause = (f"the vault's access policy for the identity's principal id {principal} was made with --application-id "
             f"{application_id}{whose}: a compound identity, which Key Vault applies only to a user signed in through "
             "that application, never to the identity's own token")
    return failed(
        f"{what}: denied, expected allow ({detail}): {cause}",
        evidence,
        Finding(
            "KEYVAULT_ACCESS_POLICY_MISSING", ERROR, "access",
            f"the vault of {what} authorizes by access policy, and {cause}; no policy lets the workload get secrets "
            f"({detail}): make the identity's policy with its object id alone, and delete the compound one",
            evidence,
            [fix.keyvault_set_secret_policy(vault, principal, keep, vault_id),
             fix.keyvault_delete_policy(vault, principal or "", application_id, vault_id),
             fix.keyvault_policies(vault, vault_id)],
        ),
    )


def _policy_secret_permissions(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                               object_id: str | None) -> list[str]:
    """The secret permissions the vault's access policy for ``object_id`` grants, as ARM listed them."""
    listed = str((resource_of(ctx, check) or {}).get("access_policy_secret_permissions") or "")
    if not object_id:
        return []
    return [p for entry in listed.split(";") if "=" in entry
            and entry.split("=", 1)[0].lower() == object_id.lower() for p in entry.split("=", 1)[1].split()]


def _other_policy_permissions(ctx: WorkloadContext, check: KeyVaultSecretAccess | BlobAccess,
                              object_id: str | None) -> str:
    """' (only keys get: ...)' when the policy for ``object_id`` grants keys or certificates but no secret: az keyvault
    set-policy --key-permissions where --secret-permissions was meant; Key Vault weighs each object type's
    permissions apart, and a secret is read with the secrets get permission only."""
    listed = str((resource_of(ctx, check) or {}).get("access_policy_other_permissions") or "")
    granted = next((entry.split("=", 1)[1] for entry in listed.split(";") if "=" in entry and object_id
                    and entry.split("=", 1)[0].lower() == object_id.lower()), "")
    if not granted:
        return ""
    return (f" (only {granted.replace(',', ', ')}: key and certificate permissions read no secret, "
            "--secret-permissions grants secrets)")


def _access_policy_refusal(evidence: dict[str, Any]) -> bool:
    return evidence.get("innererror") in ("AccessDenied", "ForbiddenByPolicy")


def _not_an_authorization_answer(
    ctx: WorkloadContext,
    check: KeyVaultSecretAccess | BlobAccess,
    meaning: str,
    evidence: dict[str, Any],
    principal: str | None,
) -> Outcome:
    """A network rule, an unaccepted token or an unexplained 403: the identity's rights were never judged."""
    what, detail = check.describe(), _detail(evidence)
    is_vault = isinstance(check, KeyVaultSecretAccess)
    found = resource_of(ctx, check) or {}
    closed = str(found.get("public_network_access") or "").lower() == "disabled"
    # Key Vault says ForbiddenByConnection; Storage answers AuthorizationFailure either way (ARM tells them apart)
    disabled = closed or (is_vault and evidence.get("innererror") == "ForbiddenByConnection")
    why = {
        "network": f"the {'vault' if is_vault else 'storage account'}'s "
                   f"{'public network access is disabled: it' if disabled else 'network rules'} refused the "
                   "request before the identity's rights were looked at",
        "unauthenticated": "the service did not accept the token (audience or tenant)",
        "refused": "a 403 that is not an authorization answer",
    }[meaning]
    if check.expect == "deny":
        granted = _granted_behind_network(ctx, check, principal) if meaning == "network" else None
        if granted is not None:
            how, steps = granted
            noun = "vault" if is_vault else "storage account"
            return failed(
                f"{what}: {why} ({detail}), but {how}: from a network the {noun} admits, the identity reads it",
                evidence,
                Finding("ACCESS_ALLOWED_UNEXPECTEDLY", ERROR, "access",
                        f"least privilege violated: the identity may read {what}: {how}; only the {noun}'s network "
                        f"access refused this request ({detail}), which it weighs apart from the identity's rights",
                        evidence, steps),
            )
        return warned(
            f"{what}: deny not proven: {why} ({detail})",
            evidence,
            Finding(
                "DENY_NOT_PROVEN",
                WARNING,
                "access",
                f"deny not proven for {what}: {why} ({detail}); least privilege is unproven, not violated",
                evidence,
                [advice("run the harness where the resource's network rules admit the cluster, or read the "
                        "identity's rights directly:"), fix.list_roles(principal)],
            ),
        )
    if meaning == "network":
        code = "KEYVAULT_FIREWALL" if is_vault else "STORAGE_FIREWALL"
        if is_vault and disabled:
            why = ("the vault's public network access is disabled: it refused the request before the identity's "
                   "rights were looked at, and honours no network rule while disabled")
            repair = fix.keyvault_public_access(resource_name(ctx, check), found.get("id"))
        elif closed:  # Storage answers AuthorizationFailure either way: ARM's publicNetworkAccess tells them apart
            why = ("the storage account's public network access is disabled (ARM): it refused the request before the "
                   "identity's rights were looked at, and honours no network rule while disabled")
            repair = fix.storage_public_access(resource_name(ctx, check), found.get("id"))
        elif is_vault:
            seen = _CLIENT_ADDRESS_RE.search(str(evidence.get("message") or ""))
            if seen:
                evidence["client_address"] = seen.group(1)
                why += f" (Key Vault saw the request come from {seen.group(1)})"
            repair = fix.keyvault_network_rules(resource_name(ctx, check), seen.group(1) if seen else None,
                                                found.get("id"))
        else:
            repair = fix.storage_network_rules(resource_name(ctx, check), found.get("id"))
        return failed(f"{what}: {why} ({detail})", evidence,
                      Finding(code, ERROR, "access", f"{what}: {why} ({detail})", evidence, repair))
    if meaning == "unauthenticated":
        return failed(
            f"{what}: {why} ({detail})",
            evidence,
            Finding(
                "ACCESS_UNAUTHENTICATED", ERROR, "access", f"{what}: {why} ({detail})", evidence,
                [advice(f"the token's audience must be the resource's (got {(evidence.get('token') or {}).get('aud')}): "
                        "set scope: on this access entry for the resource's cloud; a token from another tenant "
                        "needs the azure.workload.identity/tenant-id annotation"),
                 fix.annotate_sa_tenant(ctx.namespace, ctx.service_account, ctx.expected_tenant_id)],
            ),
        )
    return failed(
        f"{what}: {why} ({detail})",
        evidence,
        Finding("ACCESS_CHECK_ERROR", ERROR, "access", f"{what}: {why} ({detail})", evidence,
                [_show(check, resource_name(ctx, check))]),
    )


def _real_endpoint(check: KeyVaultSecretAccess | BlobAccess, name: str, arm_id: str | None) -> list[Step]:
    """The resource's own endpoint, to compare with the URL in harness.yaml (``arm_id``: its id, when ARM gave it)."""
    if isinstance(check, KeyVaultSecretAccess):
        lookup = fix.keyvault_uri(name, arm_id)
        why = "a host that answers without Key Vault's challenge, or names another resource, is not the vault"
    else:
        lookup = fix.storage_blob_endpoint(name, arm_id)
        why = "only the cloud's own blob hosts may receive the token"
    return [lookup, advice(f"set the access entry's URL in harness.yaml to exactly that endpoint: {why}")]


def _show(check: KeyVaultSecretAccess | BlobAccess, name: str) -> Command:
    """The az command that shows whether the thing the check reads exists (a 404 is not a denial)."""
    if isinstance(check, KeyVaultSecretAccess):
        return fix.show_secret(check.vault_url, check.secret)
    return fix.show_blob(name, check.container, check.blob)


def _detail(evidence: dict[str, Any]) -> str:
    parts = [f"HTTP {evidence.get('http_status')}"] if evidence.get("http_status") else []
    parts += [str(evidence[k]) for k in ("code", "innererror") if evidence.get(k)]
    if not evidence.get("code") and evidence.get("x_ms_error_code"):
        parts.append(str(evidence["x_ms_error_code"]))
    if evidence.get("version"):
        parts.append(f"version {evidence['version']}")
    if evidence.get("body_error"):
        parts.append(f"({evidence['body_error']})")
    return " ".join(parts)
