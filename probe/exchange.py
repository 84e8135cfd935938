"""Token exchange against the Entra v2.0 token endpoint, and Entra error parsing (standard library only)."""

from __future__ import annotations

import json
import re
import urllib.parse

from probe import __version__
from probe.jwtutil import JwtDecodeError, decode_unverified, fingerprint, pick, redact
from probe.retry import RetryPolicy, send_with_retries
from probe.transport import Response, TransportError

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from probe.transport import Transport

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCESS_TOKEN_CLAIMS = ("aud", "iss", "tid", "appid", "azp", "oid", "sub", "idtyp", "xms_mirid", "ver")
_AADSTS_RE = re.compile(r"\bAADSTS(\d+)")
_TRAILER_RE = re.compile(r"\s*Trace ID:.*$", re.DOTALL)
_ENTRA_ERROR_FIELDS = ("timestamp", "trace_id", "correlation_id", "error_uri")
_EXCERPT = 500


def token_url(authority_host: str, tenant_id: str) -> str:
    """``{AZURE_AUTHORITY_HOST}{tenant}/oauth2/v2.0/token``; tolerates a missing slash or scheme."""
    authority = authority_host.strip()
    if "://" not in authority:
        authority = "https://" + authority
    if not authority.endswith("/"):
        authority += "/"
    return f"{authority}{urllib.parse.quote(tenant_id.strip(), safe='')}/oauth2/v2.0/token"


class TokenResult:
    __slots__ = ("ok", "evidence", "error", "access_token")

    def __init__(self, ok: bool, evidence: dict[str, Any], error: dict[str, Any] | None,
                 access_token: str | None = None) -> None:
        self.ok = ok
        self.evidence = evidence
        self.error = error
        self.access_token = access_token  # the raw token: never in a repr, evidence or output


def exchange(
    transport: Transport,
    url: str,
    client_id: str,
    assertion: str,
    scope: str,
    timeout: float,
    retry: RetryPolicy | None = None,
) -> TokenResult:
    """POST the client-credentials grant with the federated assertion, again while the answer is transient and
    ``retry`` allows (probe.retry); never returns the raw token in evidence. When a transient answer came, the
    evidence's ``retries`` counts the attempts, every answer and the seconds waited."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "User-Agent": f"wi-probe/{__version__}",
    }
    body = urllib.parse.urlencode(form).encode("ascii")
    resp, log = send_with_retries(lambda: transport("POST", url, headers, body, timeout), retry)
    result = _result(resp, url, scope)
    if log.transient_seen:
        result.evidence["retries"] = log.to_dict()
    return result


def _result(resp: Response | TransportError, url: str, scope: str) -> TokenResult:
    if isinstance(resp, TransportError):
        return TokenResult(False, {"scope": scope}, {**resp.to_dict(), "url": url})
    if resp.status == 200:
        return _success(resp.body, scope)
    return TokenResult(False, {"scope": scope, "http_status": resp.status}, parse_entra_error(resp.status, resp.body))


def _success(raw: bytes, scope: str) -> TokenResult:
    payload = json_object(raw)
    token = payload.get("access_token") if payload else None
    if not isinstance(token, str) or not token:
        keys = sorted(payload) if payload else []
        error = {"kind": "unexpected_response", "http_status": 200, "keys": keys,
                 "message": "HTTP 200 without an access_token"}
        if payload is None:  # not Entra's JSON at all: a proxy's or gateway's page answered in its place
            error["body_excerpt"] = excerpt(raw)
            error["message"] += (f": the body is not JSON ({excerpt(raw, 80)!r}): something between the pod "
                                 "and Entra answered (a proxy, a gateway, a captive portal)" if raw else
                                 ": the body is empty: something between the pod and Entra answered (a proxy?)")
        return TokenResult(False, {"scope": scope, "http_status": 200}, error)
    evidence: dict[str, Any] = {
        "scope": scope,
        "http_status": 200,
        "token_type": payload.get("token_type"),
        "expires_in": payload.get("expires_in"),
        "fingerprint": fingerprint(token),
    }
    try:
        _, claims = decode_unverified(token)
        evidence["claims"] = pick(claims, ACCESS_TOKEN_CLAIMS)
    except JwtDecodeError as exc:
        evidence["claims"] = None
        evidence["claims_error"] = f"access token is not a decodable JWT: {exc}"
    return TokenResult(True, evidence, None, access_token=token)


def parse_entra_error(status: int, raw: bytes) -> dict[str, Any]:
    """Entra's error body -> error, error_codes, the AADSTS code, description and trace fields."""
    payload = json_object(raw)
    if payload is None or "error" not in payload:
        return {"kind": "http_error", "http_status": status, "body_excerpt": excerpt(raw)}
    description = str(payload.get("error_description") or "")
    match = _AADSTS_RE.search(description)
    codes = payload.get("error_codes")
    if not isinstance(codes, list):
        codes = [int(match.group(1))] if match else []
    error: dict[str, Any] = {
        "kind": "entra_error",
        "http_status": status,
        "error": payload.get("error"),
        "error_codes": codes,
        "aadsts": f"AADSTS{match.group(1)}" if match else None,
        "error_description": redact(description),
        "message": redact(_TRAILER_RE.sub("", description)),
    }
    error.update({name: payload[name] for name in _ENTRA_ERROR_FIELDS if name in payload})
    return error


def json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def excerpt(raw: bytes, limit: int = _EXCERPT) -> str:
    """The first ``limit`` characters of a body, JWTs redacted."""
    return redact(raw[: limit * 4].decode("utf-8", "replace")[:limit])


class Exchanger:
    """Exchanges the service-account token for access tokens, one cached result per scope."""

    def __init__(
        self,
        transport: Transport,
        url: str,
        client_id: str,
        assertion: str,
        timeout: float,
        sensitive: set[str],
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self._transport = transport
        self._assertion = assertion
        self._timeout = timeout
        self._sensitive = sensitive
        self._retry = retry
        self._cache: dict[str, TokenResult] = {}

    def get(self, scope: str) -> tuple[TokenResult, bool]:
        """(result, cached) for ``scope``."""
        if scope in self._cache:
            return self._cache[scope], True
        result = exchange(self._transport, self.url, self.client_id, self._assertion, scope, self._timeout,
                          self._retry)
        if result.access_token:
            self._sensitive.add(result.access_token)
        self._cache[scope] = result
        return result, False
