"""Access checks: read a Key Vault secret or a blob with the workload's token; compare with the expectation.

The token goes only to a host the check allows (probe/targets.py) and, for Key Vault, only after the vault's
401 challenge to the same request without a token names the expected resource.
"""

from __future__ import annotations

import email.utils
import re
import urllib.parse

from probe.config import Check
from probe.exchange import excerpt, json_object
from probe.jwtutil import redact
from probe.report import StepOutcome
from probe.retry import RetryPolicy, send_with_retries
from probe.steps import Context
from probe.targets import ChallengeError, HttpsTarget, parse_https_url, verify_challenge
from probe.transport import Response, TransportError

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

BLOB_API_VERSION = "2023-11-03"
_XML_CODE_RE = re.compile(r"<Code>\s*([^<]*?)\s*</Code>", re.IGNORECASE)
_XML_MESSAGE_RE = re.compile(r"<Message>\s*([^<\n]*)", re.IGNORECASE)
_MAX_MESSAGE = 2000
_SECRET_FIELDS = ("contentType", "tags", "managed", "kid")


# 403s that are the service's authorization answer about the caller's rights: only these prove "deny".
AUTHORIZATION_REFUSALS = {
    "keyvault_secret": {"ForbiddenByRbac", "AccessDenied", "ForbiddenByPolicy"},
    "blob": {"AuthorizationPermissionMismatch"},
}
# 403s from network rules (firewall, default action Deny, public access disabled): rights never evaluated.
NETWORK_REFUSALS = {
    "keyvault_secret": {"ForbiddenByFirewall", "ForbiddenByConnection"},
    "blob": {"AuthorizationFailure"},
}


def outcome_of(kind: str, status: int, codes: set[str]) -> str:
    """What an answer means, by the service's own error code (not by its status alone):

    allow (2xx); deny (an authorization refusal: RBAC or access policy); network (a network rule refused the
    caller before its rights were looked at); unauthenticated (401: no, or a wrong-audience/tenant, token);
    refused (another 403); error (not found, throttled, server error)."""
    if 200 <= status < 300:
        return "allow"
    if status == 401:
        return "unauthenticated"
    if status == 403:
        if codes & AUTHORIZATION_REFUSALS.get(kind, set()):
            return "deny"
        if codes & NETWORK_REFUSALS.get(kind, set()):
            return "network"
        return "refused"
    return "error"


def access_step(ctx: Context, check: Check) -> StepOutcome:
    """One configured check: host allowed?, Key Vault's challenge, token for the check's scope, one GET,
    outcome vs. expectation."""
    assert ctx.exchanger is not None and ctx.config is not None  # the runner skips this step otherwise
    url = check.target()
    target = parse_https_url(check.base_url)  # validated by the config; the same host as url
    allowed = [pattern.text for pattern in check.allowed_hosts]
    if not any(pattern.matches(target) for pattern in check.allowed_hosts):
        error = {"kind": "target_not_trusted", "host": target.authority, "allowed_hosts": allowed,
                 "message": f"host {target.authority} is not one this check may send a token to "
                            f"({', '.join(allowed)}): no request was sent"}
        return _finish(check, "error", {"url": url, "allowed_hosts": allowed}, error)
    evidence: dict[str, Any] = {"url": url, "allowed_hosts": allowed}
    if check.kind == "keyvault_secret":
        refused = _keyvault_challenge(ctx, check, url, target, evidence)
        if refused is not None:
            return refused
    # Storage: the host check above is all. Its 401 challenge (``Bearer authorization_uri=https://login.../
    # {tenant}/oauth2/authorize resource_id=https://storage.azure.com``, only for x-ms-version >= 2019-12-12)
    # names the same resource in every cloud, never the account's domain, so it cannot vouch for the host.
    result, cached = ctx.exchanger.get(check.scope)
    token_ev: dict[str, Any] = {"scope": check.scope, "cached": cached}
    evidence["token"] = token_ev
    if "retries" in result.evidence and not cached:
        token_ev["retries"] = result.evidence["retries"]
    if not result.ok or not result.access_token:
        error = {"kind": "token_exchange", "scope": check.scope, "detail": result.error,
                 "message": f"could not get a token for {check.scope}"}
        return _finish(check, "error", evidence, error)
    token_ev["fingerprint"] = result.evidence.get("fingerprint")
    token_ev["aud"] = (result.evidence.get("claims") or {}).get("aud")
    headers = _headers(check, result.access_token)
    method = "HEAD" if check.kind == "blob" else "GET"  # a blob's properties prove the read; never its bytes
    resp = _send(ctx, method, url, headers, evidence)
    if isinstance(resp, TransportError):
        return _finish(check, "error", evidence, {**resp.to_dict(), "url": url})
    if check.kind == "keyvault_secret":
        response_ev = _keyvault_evidence(resp, ctx.sensitive)
    else:
        response_ev = _blob_evidence(resp)
    codes = {str(response_ev[k]) for k in ("code", "innererror", "x_ms_error_code") if response_ev.get(k)}
    outcome = outcome_of(check.kind, resp.status, codes)
    if outcome == "allow" and response_ev.get("body_error"):
        outcome = "error"  # a 2xx that is no secret bundle proves no read: not the vault's answer, or cut short
    detail = None
    if outcome == "error":
        detail = {"kind": "http_error", "http_status": resp.status, "code": response_ev.get("code"),
                  "message": f"expected {check.expect}, got {_describe(response_ev)}"}
    elif outcome in ("network", "unauthenticated", "refused") and check.expect == "deny":
        detail = {"kind": "deny_not_proven", "http_status": resp.status, "code": response_ev.get("code"),
                  "message": f"deny not proven: {_describe(response_ev)} is not an authorization answer"}
    return _finish(check, outcome, {**evidence, **response_ev}, detail)


def _keyvault_challenge(
    ctx: Context, check: Check, url: str, target: HttpsTarget, evidence: dict[str, Any]
) -> StepOutcome | None:
    """Ask the vault, without a token, how to authenticate (as azure-keyvault-secrets does first); None when
    its challenge names the expected resource, else the failed step (no token was sent)."""
    assert ctx.config is not None
    resp = _send(ctx, "GET", url, {"Accept": "application/json"}, evidence, "challenge_retries")
    if isinstance(resp, TransportError):
        return _finish(check, "error", evidence, {**resp.to_dict(), "url": url})
    if 200 <= resp.status < 300:  # a vault that serves a secret without a token: the body may hold its value
        body = json_object(resp.body)
        if body is not None and isinstance(body.get("value"), str):
            ctx.sensitive.add(body["value"])
    try:
        evidence["challenge"] = verify_challenge(
            resp.status, resp.headers.get("www-authenticate"), target, check.challenge_resource
        )
    except ChallengeError as refused:
        evidence["challenge"] = refused.evidence
        error = {"kind": refused.kind, "host": target.authority, "message": refused.message}
        return _finish(check, "error", evidence, error)
    return None


def _headers(check: Check, access_token: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if check.kind == "blob":
        headers.update({"x-ms-version": BLOB_API_VERSION, "x-ms-date": email.utils.formatdate(usegmt=True),
                        "Accept": "*/*"})
    return headers


def _send(
    ctx: Context, method: str, url: str, headers: dict[str, str], evidence: dict[str, Any], key: str = "retries"
) -> Response | TransportError:
    """One read of the service, transient answers retried within the run's budget (probe/retry.py); the
    attempts go into ``evidence[key]`` when an answer was transient (an access answer is never an AADSTS code:
    none is waited on here)."""
    assert ctx.config is not None
    policy = ctx.retry
    if policy is not None:
        policy = RetryPolicy(policy.bound_seconds, frozenset(), policy.monotonic, policy.sleep, policy.deadline)
    resp, log = send_with_retries(lambda: ctx.transport(method, url, headers, None, ctx.config.timeout_seconds),
                                  policy)
    if ctx.retry is not None and policy is not None and policy.deadline is not None:
        ctx.retry.deadline = policy.deadline  # one budget for the whole run
    if log.transient_seen:  # also one answer the probe could not wait for (a Retry-After past the bound)
        evidence[key] = log.to_dict()
    return resp


def _finish(check: Check, outcome: str, evidence: dict[str, Any], detail: dict[str, Any] | None) -> StepOutcome:
    evidence["outcome"] = outcome
    extra = {"outcome": outcome}
    if outcome == check.expect:
        return StepOutcome("pass", evidence, None, extra)
    error = detail or {"kind": "expectation_mismatch",
                       "message": f"expected {check.expect}, got {outcome} ({_describe(evidence)})"}
    error.setdefault("expected", check.expect)
    error.setdefault("outcome", outcome)
    return StepOutcome("fail", evidence, error, extra)


def _describe(evidence: dict[str, Any]) -> str:
    """``HTTP 403 Forbidden/ForbiddenByRbac``-style summary of a response."""
    codes = "/".join(str(evidence[k]) for k in ("code", "innererror") if evidence.get(k))
    said = f": {evidence['body_error']}" if evidence.get("body_error") else ""
    return f"HTTP {evidence.get('http_status')}" + (f" {codes}" if codes else "") + said


# ---------------------------------------------------------------- Key Vault


def _keyvault_evidence(resp: Response, sensitive: set[str]) -> dict[str, Any]:
    body = json_object(resp.body)
    evidence: dict[str, Any] = {"http_status": resp.status}
    if 200 <= resp.status < 300:
        if body is None:  # its text is not shown: cut short, it may be the start of the secret's value
            kind = resp.headers.get("content-type") or "no content-type"
            return {**evidence, "body_error": f"the body is no Key Vault secret: not a JSON object ({kind}): a proxy "
                                              "or gateway answered in the vault's place, or the answer was cut short"}
        value = body.get("value")
        if isinstance(value, str):
            sensitive.add(value)
        secret_id = body.get("id")
        evidence.update({
            "id": secret_id,
            "version": secret_version(secret_id) if isinstance(secret_id, str) else None,
            "attributes": body.get("attributes"),
            "value_present": value is not None,
        })
        evidence.update({name: body[name] for name in _SECRET_FIELDS if name in body})
        return evidence
    err = body.get("error") if body else None
    if isinstance(err, dict):
        inner = err.get("innererror")
        evidence.update({
            "code": err.get("code"),
            "innererror": inner.get("code") if isinstance(inner, dict) else None,
            "message": redact(str(err.get("message") or ""))[:_MAX_MESSAGE],
        })
    else:
        evidence["body_excerpt"] = excerpt(resp.body)
    if "www-authenticate" in resp.headers:
        evidence["www_authenticate"] = resp.headers["www-authenticate"]
    return evidence


def secret_version(secret_id: str) -> str | None:
    """The version from ``.../secrets/{name}/{version}``; None when the id carries no version."""
    segments = [s for s in urllib.parse.urlsplit(secret_id).path.split("/") if s]
    if "secrets" not in segments:
        return None
    index = len(segments) - 1 - segments[::-1].index("secrets")  # the last "secrets" segment
    rest = segments[index + 1:]
    return rest[1] if len(rest) >= 2 else None


# ---------------------------------------------------------------- Blob


def _blob_evidence(resp: Response) -> dict[str, Any]:
    evidence: dict[str, Any] = {"http_status": resp.status}
    if 200 <= resp.status < 300:
        evidence.update({
            "content_length": _int(resp.headers.get("content-length")),
            "content_type": resp.headers.get("content-type"),
            "etag": resp.headers.get("etag"),
            "last_modified": resp.headers.get("last-modified"),
        })
        return evidence
    text = resp.body.decode("utf-8", "replace")
    code = _XML_CODE_RE.search(text)
    message = _XML_MESSAGE_RE.search(text)
    evidence.update({
        "code": code.group(1) if code else resp.headers.get("x-ms-error-code"),
        "x_ms_error_code": resp.headers.get("x-ms-error-code"),
        "message": redact(message.group(1).strip())[:_MAX_MESSAGE] if message else None,
    })
    if not code and resp.body:
        evidence["body_excerpt"] = excerpt(resp.body)
    return evidence


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
