"""The ONE Azure Resource Manager seam: ``ArmGet(path_or_url) -> Fetched``.

:class:`RequestsArm` is the real one: ``requests`` plus an azure-identity credential
(``ClientSecretCredential`` for the configured app registration, else ``DefaultAzureCredential``), aimed at
the configured cloud's authority and trusting the configured CA. It retries 429/503 a few times, honouring
``Retry-After`` within bounds. Tests pass a function that answers from a dict.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from harness.config import AzureConfig
from harness.facts import CREDENTIAL_ERROR, Fetched

ArmGet = Callable[[str], Fetched]

_RETRY_STATUSES = (429, 500, 502, 503, 504)
_MAX_ATTEMPTS = 4
_MAX_RETRY_AFTER = 10.0
TIMEOUT = 30.0
_ENTRA_TRAILER_RE = re.compile(r"\s*Trace ID:.*$", re.DOTALL)
_MAX_REASON = 160


def make_credential(azure: AzureConfig) -> Any:
    """The harness's own identity: the configured app registration, else DefaultAzureCredential."""
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    endpoints = azure.cloud.endpoints
    kwargs: dict[str, Any] = {"authority": endpoints.authority_host}
    if not endpoints.known:
        kwargs["disable_instance_discovery"] = True
    if azure.ca_file:
        kwargs["connection_verify"] = str(azure.ca_file)
    if azure.credential is not None:
        return ClientSecretCredential(
            azure.tenant_id, azure.credential.client_id, azure.credential.secret(), **kwargs
        )
    return DefaultAzureCredential(**kwargs)


class RequestsArm:
    """GET ARM resources as JSON with a bearer token for the cloud's ARM audience."""

    def __init__(
        self, azure: AzureConfig, credential: Any | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        import requests

        endpoints = azure.cloud.endpoints
        self.base_url = endpoints.resource_manager.rstrip("/")
        self._scope = endpoints.arm_scope
        self._credential = credential if credential is not None else make_credential(azure)
        self._verify: bool | str = str(azure.ca_file) if azure.ca_file else True
        self._session = requests.Session()
        self._sleep = sleep
        self._token: tuple[str, float] | None = None
        self._credential_failure: str | None = None  # the harness's identity will not fix itself mid-run

    def _bearer(self) -> str:
        if self._token is None or self._token[1] - 120 < time.time():
            access = self._credential.get_token(self._scope)
            self._token = (access.token, float(access.expires_on))
        return self._token[0]

    def __call__(self, path_or_url: str) -> Fetched:
        import requests
        from azure.core.exceptions import AzureError

        url = path_or_url if path_or_url.startswith("https://") else self.base_url + path_or_url
        if self._credential_failure is not None:
            return Fetched(url, None, None, self._credential_failure, CREDENTIAL_ERROR)
        try:
            token = self._bearer()
        except (AzureError, ValueError) as exc:  # MSAL raises ValueError for an unusable authority
            self._credential_failure = (
                f"the harness could not get an ARM token: {credential_failure_text(exc)}"
            )
            return Fetched(url, None, None, self._credential_failure, CREDENTIAL_ERROR)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                response = self._session.get(
                    url,
                    timeout=TIMEOUT,
                    verify=self._verify,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                )
            except requests.RequestException as exc:
                return Fetched(url, None, None, f"{type(exc).__name__}: {str(exc)[:300]}")
            if response.status_code in _RETRY_STATUSES and attempt < _MAX_ATTEMPTS:
                self._sleep(_retry_after(response.headers.get("Retry-After"), attempt))
                continue
            return parse_arm_response(url, response.status_code, response.content)
        raise AssertionError("unreachable")


def credential_failure_text(exc: BaseException) -> str:
    """One line from an azure-identity failure: its first line, plus each credential's reason when
    DefaultAzureCredential tried several (they follow on tab-indented lines); Entra's trace trailer dropped."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    reasons = []
    for line in lines[1:]:
        if not line.startswith("\t") or ": " not in line:
            continue
        name, reason = line.strip().split(": ", 1)
        reason = reason.removeprefix(f"{name} authentication unavailable.").strip() or "unavailable"
        reasons.append(f"{name}: {_shorten(reason.rstrip('.'))}")
    head = _ENTRA_TRAILER_RE.sub("", lines[0]).strip()
    return f"{head.rstrip('.')}: {'; '.join(reasons)}" if reasons else head


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _retry_after(header: str | None, attempt: int) -> float:
    try:
        return (
            min(_MAX_RETRY_AFTER, max(0.0, float(header)))
            if header
            else min(_MAX_RETRY_AFTER, 0.5 * 2**attempt)
        )
    except ValueError:
        return min(_MAX_RETRY_AFTER, 0.5 * 2**attempt)


def parse_arm_response(url: str, status: int, content: bytes) -> Fetched:
    """ARM's JSON, or its ``{"error": {"code", "message"}}`` as code + error."""
    import json

    try:
        body = json.loads(content) if content else None
    except ValueError:
        return Fetched(url, status, None, "the response is not JSON")
    if 200 <= status < 300:
        return Fetched(url, status, body)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return Fetched(
            url, status, None, str(error.get("message") or ""), str(error.get("code") or "") or None
        )
    return Fetched(url, status, None, f"HTTP {status}")
