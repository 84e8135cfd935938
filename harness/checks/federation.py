"""Azure-side checks: the managed identity behind the workload, and a federated identity credential that
matches the token exactly (issuer, subject, audience: exact and case-sensitive)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.checks import remediation as fix
from harness.checks.cluster import slash_hint
from harness.checks.common import arm_failure_finding
from harness.checks.context import WorkloadContext
from harness.checks.model import ERROR, WARNING, Finding, Outcome, failed, passed, skipped, warned
from harness.checks.token import claims
from harness.names import TOKEN_AUDIENCE

MAX_FEDERATED_CREDENTIALS = 20


def identity_matches(ctx: WorkloadContext) -> Outcome:
    facts = ctx.facts.identity
    if not facts.configured:
        return skipped(facts.note or "no Azure access configured")
    if facts.error is not None:
        error = facts.error
        evidence = {"url": error.url, "status": error.status, "code": error.code, "error": error.error}
        return failed(
            f"ARM could not read the identity: {error.describe()}",
            evidence,
            arm_failure_finding(
                error,
                "identity",
                "managed identity lookup failed",
                "IDENTITY_NOT_FOUND",
                fix.show_identity(facts.resource_id),
                ctx.azure,
            ),
        )
    if facts.identity is None:
        if ctx.expected_client_id is None and not ctx.workload.identity_resource_id:
            return skipped(
                "skipped because sa.client_id_annotation failed",
                {"reason": "no client id to look the identity up by"},
                blocked_by="sa.client_id_annotation",
            )
        return failed(
            facts.note or "identity not found",
            {"client_id": ctx.expected_client_id},
            Finding(
                "IDENTITY_NOT_FOUND",
                ERROR,
                "identity",
                facts.note or "identity not found",
                {"client_id": ctx.expected_client_id},
                [fix.find_identity_by_client_id(ctx.expected_client_id)],
            ),
        )
    props = facts.identity.get("properties") or {}
    evidence = {
        "resource_id": facts.resource_id,
        "resolved_by": facts.resolved_by,
        "clientId": props.get("clientId"),
        "principalId": props.get("principalId"),
        "tenantId": props.get("tenantId"),
    }
    expected = ctx.expected_client_id
    if expected and str(props.get("clientId", "")).lower() != expected.lower():
        return failed(
            f"identity {facts.resource_id} has client id {props.get('clientId')}, the workload uses "
            f"{expected}",
            evidence,
            Finding(
                "IDENTITY_CLIENT_ID_MISMATCH",
                ERROR,
                "identity",
                f"the ServiceAccount's client id {expected} is not the identity's {props.get('clientId')}",
                evidence,
                [
                    fix.annotate_sa(ctx.namespace, ctx.service_account, str(props.get("clientId"))),
                    fix.restart_pods(ctx.namespace),
                ],
            ),
        )
    tenant = ctx.expected_tenant_id
    if tenant and props.get("tenantId") and str(props["tenantId"]).lower() != tenant.lower():
        return warned(
            f"identity tenant {props.get('tenantId')} differs from the expected tenant {tenant}",
            evidence,
            Finding(
                "IDENTITY_TENANT_MISMATCH", WARNING, "identity", "identity in another tenant", evidence, []
            ),
        )
    name, _ = fix.identity_name_rg(facts.resource_id)
    return passed(f"identity {name} (client id {props.get('clientId')}) backs the workload", evidence)


@dataclass
class FicMatch:
    exact: dict[str, Any] | None
    issuer_differs: list[dict[str, Any]]  # subject and audience match, issuer does not
    subject_differs: list[dict[str, Any]]  # issuer matches, subject does not
    audience_differs: list[dict[str, Any]]  # issuer and subject match, audiences do not


def _fic(item: dict[str, Any]) -> dict[str, Any]:
    props = item.get("properties") or {}
    return {
        "name": item.get("name"),
        "issuer": props.get("issuer"),
        "subject": props.get("subject"),
        "audiences": props.get("audiences"),
    }


def match_fic(credentials: list[dict[str, Any]], issuer: str, subject: str) -> FicMatch:
    fics = [_fic(item) for item in credentials]
    good_aud = [f for f in fics if f["audiences"] == [TOKEN_AUDIENCE]]
    exact = next((f for f in good_aud if f["issuer"] == issuer and f["subject"] == subject), None)
    return FicMatch(
        exact=exact,
        issuer_differs=[f for f in good_aud if f["subject"] == subject and f["issuer"] != issuer],
        subject_differs=[f for f in good_aud if f["issuer"] == issuer and f["subject"] != subject],
        audience_differs=[
            f
            for f in fics
            if f["issuer"] == issuer and f["subject"] == subject and f["audiences"] != [TOKEN_AUDIENCE]
        ],
    )


def expected_issuer(ctx: WorkloadContext) -> tuple[str | None, str]:
    """The token's iss when the probe read it, else the cluster's issuer."""
    iss = claims(ctx).get("iss")
    if iss:
        return str(iss), "the token's iss"
    return ctx.cluster.issuer_url, f"the cluster issuer ({ctx.cluster.issuer_source})"


def federated_credential(ctx: WorkloadContext) -> Outcome:
    facts = ctx.facts.identity
    credentials = facts.federated_credentials or []
    issuer, issuer_source = expected_issuer(ctx)
    if issuer is None:
        return skipped("neither the token's iss nor the cluster's issuer URL is known")
    match = match_fic(credentials, issuer, ctx.subject)
    evidence: dict[str, Any] = {
        "expected": {
            "issuer": issuer,
            "issuer_source": issuer_source,
            "subject": ctx.subject,
            "audiences": [TOKEN_AUDIENCE],
        },
        "federated_credentials": [_fic(c) for c in credentials],
    }
    name = fix.fic_name(ctx.namespace, ctx.service_account)
    if match.exact is not None:
        if len(credentials) >= MAX_FEDERATED_CREDENTIALS:
            return warned(
                f"federated credential {match.exact['name']} matches; the identity holds "
                f"{len(credentials)} of at most {MAX_FEDERATED_CREDENTIALS}",
                evidence,
                Finding(
                    "FIC_LIMIT_REACHED",
                    WARNING,
                    "federation",
                    "the identity is at the limit of 20 federated credentials",
                    evidence,
                    [],
                ),
            )
        return passed(
            f"federated credential {match.exact['name']} matches issuer, subject and audience exactly",
            evidence,
        )
    if match.issuer_differs:
        fic = match.issuer_differs[0]
        hint = slash_hint(str(fic["issuer"]), issuer)
        return failed(
            f"federated credential {fic['name']} has issuer {fic['issuer']!r}, the token says "
            f"{issuer!r}{hint} (Entra: AADSTS700211)",
            evidence,
            Finding(
                "FIC_ISSUER_MISMATCH",
                ERROR,
                "federation",
                f"FIC {fic['name']} issuer {fic['issuer']!r} != {issuer!r}{hint}",
                evidence,
                [
                    fix.federated_credential(
                        "update", facts.resource_id, str(fic["name"]), issuer, ctx.subject
                    )
                ],
            ),
        )
    if match.subject_differs:
        subjects = [f["subject"] for f in match.subject_differs]
        case = any(str(s).lower() == ctx.subject.lower() for s in subjects)
        note = " (differs only by case; matching is case-sensitive)" if case else ""
        return failed(
            f"no federated credential for subject {ctx.subject!r}; the identity trusts {subjects}{note} "
            "(Entra: AADSTS700213)",
            evidence,
            Finding(
                "FIC_SUBJECT_MISMATCH",
                ERROR,
                "federation",
                f"no FIC for subject {ctx.subject!r} (found {subjects}){note}",
                evidence,
                [fix.federated_credential("create", facts.resource_id, name, issuer, ctx.subject)],
            ),
        )
    if match.audience_differs:
        fic = match.audience_differs[0]
        return failed(
            f"federated credential {fic['name']} has audiences {fic['audiences']}, it must be exactly "
            f"[{TOKEN_AUDIENCE!r}] (Entra: AADSTS700212)",
            evidence,
            Finding(
                "FIC_AUDIENCE_MISMATCH",
                ERROR,
                "federation",
                f"FIC {fic['name']} audiences {fic['audiences']}",
                evidence,
                [
                    fix.federated_credential(
                        "update", facts.resource_id, str(fic["name"]), issuer, ctx.subject
                    )
                ],
            ),
        )
    return failed(
        f"the identity has no federated credential for issuer {issuer!r} and subject {ctx.subject!r} "
        "(Entra: AADSTS70021/700211)",
        evidence,
        Finding(
            "FIC_MISSING",
            ERROR,
            "federation",
            f"no federated identity credential for {ctx.subject}",
            evidence,
            [fix.federated_credential("create", facts.resource_id, name, issuer, ctx.subject)],
        ),
    )
