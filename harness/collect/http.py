"""The ONE plain-HTTPS seam (the OIDC issuer's discovery document and JWKS): ``HttpGet(url, timeout)``.

:func:`requests_get` is the real one; tests pass a function that answers from a dict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.collect.retrying import mount_retries
from harness.facts import Fetched

DEFAULT_TIMEOUT = 10.0


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class HttpUnreachable(Exception):
    """No HTTP response arrived (DNS, refused, TLS, timeout)."""


HttpGet = Callable[[str, float], HttpResponse]


def requests_get(ca_file: Path | None = None) -> HttpGet:
    """GET with ``requests``, trusting ``ca_file`` when given (else the system / REQUESTS_CA_BUNDLE)."""
    import requests

    session = mount_retries(requests.Session(), "issuer")
    verify: bool | str = str(ca_file) if ca_file else True

    def get(url: str, timeout: float) -> HttpResponse:
        try:
            response = session.get(
                url, timeout=timeout, verify=verify, headers={"Accept": "application/json"}
            )
        except requests.RequestException as exc:
            raise HttpUnreachable(f"{type(exc).__name__}: {_short(exc)}") from None
        return HttpResponse(
            response.status_code, response.content, {k.lower(): v for k, v in response.headers.items()}
        )

    return get


def fetch_json(get: HttpGet, url: str, timeout: float = DEFAULT_TIMEOUT) -> Fetched:
    try:
        response = get(url, timeout)
    except HttpUnreachable as exc:
        return Fetched(url, None, None, str(exc))
    try:
        body = json.loads(response.body.decode("utf-8")) if response.body else None
    except (UnicodeDecodeError, ValueError):
        return Fetched(url, response.status, None, "the response is not JSON")
    if not 200 <= response.status < 300:
        return Fetched(url, response.status, body, f"HTTP {response.status}")
    return Fetched(url, response.status, body)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."
