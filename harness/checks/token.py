"""Projected token checks, from the claims the probe decoded in the container (never the raw token)."""

from __future__ import annotations

from typing import Any

from harness.checks import remediation as fix
from harness.checks.cluster import slash_hint, webhook_namespace
from harness.checks.common import missing_probe_step
from harness.checks.context import WorkloadContext
from harness.checks.live_pods import restart_workload
from harness.checks.model import ERROR, WARNING, Finding, Outcome, failed, passed, skipped, warned
from harness.checks.podspec import expected_lifetime, token_volumes
from harness.commands import Step, advice
from harness.names import TOKEN_AUDIENCE, WEBHOOK_DEPLOYMENT

LIFETIME_TOLERANCE = 60  # seconds between the annotated lifetime and exp - iat before we call it different


def claims(ctx: WorkloadContext) -> dict[str, Any]:
    step = ctx.step("token") or {}
    return dict((step.get("evidence") or {}).get("claims") or {})


def token_readable(ctx: WorkloadContext) -> Outcome:
    step = ctx.step("token")
    if step is None:
        return missing_probe_step("token")
    evidence = dict(step.get("evidence") or {})
    error = step.get("error") or {}
    if evidence.get("claims"):  # decoded: expiry is token.lifetime's business
        return passed(
            f"token read from {evidence.get('path')} (mode {evidence.get('mode')}, sha256 "
            f"{evidence.get('fingerprint')}) and decoded",
            evidence,
        )
    kind = error.get("kind", "unknown")
    message = error.get("message") or step.get("reason") or "not read"
    pod = ctx.facts.pod
    namespace, pod_name = (pod.namespace, pod.name) if pod else (ctx.namespace, "<pod>")
    remediations: dict[str, tuple[str, list[Step]]] = {
        "file_not_found": (
            "TOKEN_FILE_MISSING",
            [fix.describe_pod(namespace, pod_name, note="has the kubelet projected the token?")],
        ),
        "permission_denied": (
            "TOKEN_FILE_UNREADABLE",
            [
                advice(
                    "set securityContext.fsGroup (e.g. 65534) on the pod, or "
                    "upgrade Kubernetes (0600 token files on 1.18)"
                )
            ],
        ),
    }
    code, remediation = remediations.get(kind, ("TOKEN_MALFORMED" if kind in ("malformed", "empty") else "TOKEN_UNREADABLE", []))
    return failed(
        f"the projected token could not be read: {message}",
        evidence | {"error": error},
        Finding(
            code,
            ERROR,
            "token",
            f"projected token at {evidence.get('path')}: {message}",
            evidence | {"error": error},
            remediation,
        ),
    )


def token_subject(ctx: WorkloadContext) -> Outcome:
    sub = claims(ctx).get("sub")
    evidence = {"sub": sub, "expected": ctx.subject}
    if sub == ctx.subject:
        return passed(f"sub = {sub}", evidence)
    return failed(
        f"sub is {sub!r}, expected {ctx.subject!r}",
        evidence,
        Finding(
            "TOKEN_SUBJECT_MISMATCH",
            ERROR,
            "token",
            f"the token's subject {sub!r} is not {ctx.subject!r}: the pod runs under another ServiceAccount",
            evidence,
            [advice(f"set serviceAccountName: {ctx.service_account} in the pod template")],
        ),
    )


def token_audience(ctx: WorkloadContext) -> Outcome:
    aud = claims(ctx).get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    evidence = {"aud": aud, "expected": TOKEN_AUDIENCE}
    if TOKEN_AUDIENCE in audiences:
        return passed(f"aud contains {TOKEN_AUDIENCE}", evidence)
    return failed(
        f"aud is {aud!r}, it must contain {TOKEN_AUDIENCE}",
        evidence,
        Finding(
            "TOKEN_AUDIENCE_MISMATCH",
            ERROR,
            "token",
            f"the token's audience {aud!r} lacks "
            f"{TOKEN_AUDIENCE} (a custom webhook --audience, or an identity-binding token?)",
            evidence,
            [
                fix.kubectl("-n", fix.namespace_or(webhook_namespace(ctx.cluster)), "get", "deploy",
                            WEBHOOK_DEPLOYMENT, "-o", "yaml", note="look for --audience in the container args")
            ],
        ),
    )


def private_issuer(ctx: WorkloadContext) -> str | None:
    """The token's iss when ARM says the cluster's OIDC issuer is off: then it is the API server's own issuer,
    which publishes no discovery document Entra can read, so no federated credential can be made to match it.
    Enabling the issuer changes the issuer of the tokens issued from then on (AKS's use-oidc-issuer doc: restart
    the pods)."""
    arm = ctx.cluster.arm_cluster
    profile = (((arm.body if arm else None) or {}).get("properties") or {}).get("oidcIssuerProfile")
    iss = claims(ctx).get("iss")
    if isinstance(profile, dict) and profile.get("enabled") is False and isinstance(iss, str) and iss:
        return iss
    return None


def issuer_disabled_finding(ctx: WorkloadContext, iss: str, evidence: dict[str, Any], what: str) -> Finding:
    """OIDC_ISSUER_DISABLED as a workload sees it: its tokens carry the API server's own issuer ``iss``."""
    return Finding(
        "OIDC_ISSUER_DISABLED",
        ERROR,
        "cluster",
        f"{what}: the token's iss {iss!r} is the API server's own issuer, because the cluster's OIDC issuer is off; "
        "Entra cannot discover it, so no federated credential should name it. Enable the OIDC issuer, then restart "
        "the pods: tokens issued from then on carry its URL, the issuer federated credentials must name",
        evidence,
        [fix.enable_oidc_issuer(ctx.azure), fix.show_issuer(ctx.azure), *restart_workload(ctx)],
    )


def token_issuer(ctx: WorkloadContext) -> Outcome:
    iss = claims(ctx).get("iss")
    issuer, source = ctx.cluster.issuer_url, ctx.cluster.issuer_source
    evidence = {"iss": iss, "cluster_issuer": issuer, "cluster_issuer_source": source}
    private = private_issuer(ctx)
    if private is not None:
        return failed(
            f"iss = {private!r}: the API server's own issuer, not a public OIDC issuer (the cluster's OIDC issuer "
            "is off, see cluster.oidc_issuer_enabled)",
            evidence,
            issuer_disabled_finding(ctx, private, evidence, "the workload's tokens cannot be exchanged"),
        )
    if not issuer:
        return skipped(
            f"the cluster's issuer URL is unknown (see cluster.oidc_issuer_enabled); token iss = {iss!r}",
            evidence,
        )
    if iss == issuer:
        return passed(
            f"iss = {iss} (the cluster issuer from {source}, exactly, trailing slash included)", evidence
        )
    hint = slash_hint(str(iss), issuer)
    return failed(
        f"iss is {iss!r} but the cluster's issuer ({source}) is {issuer!r}{hint}",
        evidence,
        Finding(
            "ISSUER_MISMATCH",
            ERROR,
            "token",
            f"token issuer {iss!r} != cluster issuer {issuer!r}{hint}; Entra matches issuers exactly",
            evidence,
            [fix.show_issuer(ctx.azure), fix.kubectl("get", "--raw", "/.well-known/openid-configuration")],
        ),
    )


def token_lifetime(ctx: WorkloadContext) -> Outcome:
    step = ctx.step("token") or {}
    evidence_in = step.get("evidence") or {}
    values = claims(ctx)
    exp, iat, nbf = values.get("exp"), values.get("iat"), values.get("nbf")
    lifetime = evidence_in.get("lifetime") or {}
    remaining = lifetime.get("remaining_seconds")
    if remaining is None and isinstance(exp, int | float):
        remaining = int(exp - ctx.now)
    total = int(exp - iat) if isinstance(exp, int | float) and isinstance(iat, int | float) else None
    volumes = token_volumes(ctx.pod)
    projected = volumes[0].expiration_seconds if volumes else None
    expected = expected_lifetime(ctx.pod, ctx.facts.sa.annotations)
    evidence = {
        "exp": exp,
        "iat": iat,
        "nbf": nbf,
        "remaining_seconds": remaining,
        "lifetime_seconds": total,
        "expirationSeconds": projected,
        "annotated_seconds": expected,
    }
    if exp is None:
        return failed(
            "the token has no exp claim",
            evidence,
            Finding("TOKEN_TIME_INVALID", ERROR, "token", "projected token without exp", evidence, []),
        )
    if remaining is not None and remaining <= 0:
        return failed(
            f"the token expired {-remaining} s before the probe read it (kubelet not refreshing it, or "
            "the node's clock)",
            evidence,
            Finding(
                "TOKEN_EXPIRED",
                ERROR,
                "token",
                "the projected token is expired",
                evidence,
                fix.node_clock(ctx.node_name),
            ),
        )
    if isinstance(nbf, int | float) and nbf - 300 > ctx.now:
        return failed(
            "the token is not valid yet (nbf in the future: clock skew)",
            evidence,
            Finding(
                "TOKEN_TIME_INVALID",
                ERROR,
                "token",
                "nbf in the future: clock skew",
                evidence,
                fix.node_clock(ctx.node_name),
            ),
        )
    if total is not None and abs(total - expected) > LIFETIME_TOLERANCE:
        return warned(
            f"the token lives {total} s, the annotations ask for {expected} s (projected "
            f"expirationSeconds {projected}); the API server may cap or extend it",
            evidence,
            Finding(
                "TOKEN_LIFETIME_UNEXPECTED",
                WARNING,
                "token",
                f"token lifetime {total} s != annotated {expected} s",
                evidence,
                [],
            ),
        )
    return passed(
        f"exp in the future ({remaining} s left), lifetime {total} s as annotated ({expected} s)", evidence
    )
