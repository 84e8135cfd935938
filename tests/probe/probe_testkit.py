"""Shared constants and helpers for the probe tests (imported by conftest and the test modules)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from probe.transport import Response, TransportError

NOW = 1_760_000_000.0
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
ISSUER = f"https://eastus.oic.prod-aks.azure.com/{TENANT}/257f8561-5fce-4b05-a41c-edb625656b07/"
AUTHORITY = "https://login.microsoftonline.com/"
TOKEN_URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
VAULT_URL = "https://kv1.vault.azure.net"
ACCOUNT_URL = "https://acct1.blob.core.windows.net"
SECRET_VALUE = "s3cr3t-value-that-must-never-leak"

ENTRA_700213 = {
    "error": "invalid_client",
    "error_description": (
        "AADSTS700213: No matching federated identity record found for presented assertion subject "
        "'system:serviceaccount:finance:backend-sa'. Check your federated identity credential Subject, "
        "Audience and Issuer against the presented assertion. "
        "https://learn.microsoft.com/entra/workload-id/workload-identity-federation "
        "Trace ID: 4ef9c26a-e731-4572-b4d3-f8c0e6362200 Correlation ID: 731cf9a5-5359-45d2-b058-4f8f2570e1fc "
        "Timestamp: 2026-01-18 00:16:16Z"
    ),
    "error_codes": [700213],
    "timestamp": "2026-01-18 00:16:16Z",
    "trace_id": "4ef9c26a-e731-4572-b4d3-f8c0e6362200",
    "correlation_id": "731cf9a5-5359-45d2-b058-4f8f2570e1fc",
    "error_uri": "https://login.microsoftonline.com/error?code=700213",
}

KV_FORBIDDEN = {
    "error": {
        "code": "Forbidden",
        "message": (
            "Caller is not authorized to perform action on resource.\r\n"
            f"Caller: appid={CLIENT_ID};oid=9f0c;iss=https://sts.windows.net/{TENANT}/\r\n"
            "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"
            "Assignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n"
        ),
        "innererror": {"code": "ForbiddenByRbac"},
    }
}

BLOB_DENIED = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code>'
    b"<Message>This request is not authorized to perform this operation using this permission.\n"
    b"RequestId:0f6c2c1e-001e-0042-2a5d-000000000000\nTime:2019-07-25T09:24:38.2773882Z</Message></Error>"
)


def sa_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "aud": ["api://AzureADTokenExchange"],
        "exp": int(NOW) + 3000,
        "iat": int(NOW) - 600,
        "nbf": int(NOW) - 600,
        "iss": ISSUER,
        "jti": "5d0b8c2e-7a0e-4a4b-9c6e-0d8c1f2a3b4c",
        "sub": "system:serviceaccount:finance:backend-sa",
        "kubernetes.io": {
            "namespace": "finance",
            "pod": {"name": "backend-0", "uid": "a1"},
            "serviceaccount": {"name": "backend-sa", "uid": "b2"},
        },
    }
    claims.update(overrides)
    return claims


def access_claims(aud: str) -> dict[str, Any]:
    return {
        "aud": aud, "iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT, "appid": CLIENT_ID,
        "oid": "9f0c", "sub": "9f0c", "idtyp": "app", "ver": "1.0", "iat": int(NOW), "exp": int(NOW) + 3600,
        "uti": "not-in-the-subset",
    }


Handler = Callable[[str, str, Mapping[str, str], bytes | None, float], Response]


@dataclass
class FakeTransport:
    """Routes requests by URL prefix to handlers and records every call."""

    routes: dict[str, Handler] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                 timeout: float) -> Response:
        self.calls.append({"method": method, "url": url, "headers": dict(headers), "body": body,
                           "timeout": timeout})
        for prefix, handler in self.routes.items():
            if url.startswith(prefix):
                return handler(method, url, headers, body, timeout)
        raise AssertionError(f"unexpected request {method} {url}")

    def to(self, prefix: str) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["url"].startswith(prefix)]


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    hdrs = {"content-type": "application/json; charset=utf-8", **(headers or {})}
    return Response(status, hdrs, json.dumps(payload).encode())


KV_CHALLENGE = (f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                'resource="https://vault.azure.net"')


def keyvault(handler: Handler, challenge: str = KV_CHALLENGE) -> Handler:
    """A vault as Key Vault answers: a request without a token gets the 401 challenge, the others ``handler``."""

    def answer(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        if "Authorization" not in headers:
            return json_response(401, {"error": {"code": "Unauthorized",
                                                 "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                                 {"www-authenticate": challenge})
        return handler(method, url, headers, body, timeout)

    return answer


@dataclass
class FakeClock:
    """The probe's ``monotonic`` and ``sleep``: a wait advances the clock at once and is recorded."""

    now: float = 0.0
    waits: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def refuse(*_: Any) -> Response:
    raise TransportError("connection_refused", "ConnectionRefusedError: [Errno 111] Connection refused")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def step(self, name: str, index: int = 0) -> dict[str, Any]:
        return [s for s in self.doc["steps"] if s["name"] == name][index]


def config_json(**config: Any) -> list[str]:
    return ["--config-json", json.dumps(config)]
