"""The AADSTS catalogue and Entra's error body, without any server."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

import pytest

from lab.azure import aadsts
from lab.azure.aadsts import CATALOGUE, AadstsError, describe, error_body, precise_time, render, timestamp

TRAILER = re.compile(r" Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} "
                     r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_entry_renders_with_its_fields(code: int) -> None:
    entry = CATALOGUE[code]
    values = {name: f"<{name}>" for name in _fields(entry.template)}
    text = describe(code, **values)
    assert text.startswith(f"AADSTS{code}: ")
    assert "{" not in text.replace("{tenantid}", "")
    assert entry.status in (400, 401, 429, 500, 503)
    assert entry.error in {"invalid_request", "invalid_client", "invalid_scope", "invalid_resource",
                           "unauthorized_client", "unsupported_grant_type", "invalid_instance",
                           "temporarily_unavailable", "server_error"}
    # invalid_client always answers 401, the others 400 (except the availability and server errors)
    if entry.error == "invalid_client":
        assert entry.status == 401
    elif entry.error == "server_error":
        assert entry.status == 500
    elif entry.error != "temporarily_unavailable":
        assert entry.status == 400


def test_error_body_shape_matches_entra() -> None:
    now = datetime(2026, 1, 18, 0, 16, 16, 987654, tzinfo=UTC)
    err = AadstsError(700213, {"sub": "system:serviceaccount:finance:backend-sa"})
    body = error_body(err, now, trace_id="4ef9c26a-e731-4572-b4d3-f8c0e6362200",
                      correlation_id="731cf9a5-5359-45d2-b058-4f8f2570e1fc")
    assert list(body) == ["error", "error_description", "error_codes", "timestamp", "trace_id",
                          "correlation_id", "error_uri"]
    assert body == {
        "error": "invalid_client",
        "error_description": "AADSTS700213: No matching federated identity record found for presented assertion "
                             "subject 'system:serviceaccount:finance:backend-sa'. Check your federated identity "
                             "credential Subject, Audience and Issuer against the presented assertion. "
                             "https://learn.microsoft.com/entra/workload-id/workload-identity-federation "
                             "Trace ID: 4ef9c26a-e731-4572-b4d3-f8c0e6362200 Correlation ID: "
                             "731cf9a5-5359-45d2-b058-4f8f2570e1fc Timestamp: 2026-01-18 00:16:16Z",
        "error_codes": [700213],
        "timestamp": "2026-01-18 00:16:16Z",
        "trace_id": "4ef9c26a-e731-4572-b4d3-f8c0e6362200",
        "correlation_id": "731cf9a5-5359-45d2-b058-4f8f2570e1fc",
        "error_uri": "https://login.microsoftonline.com/error?code=700213",
    }


def test_render_generates_ids_and_honours_overrides() -> None:
    status, body = render(90002, datetime.now(UTC), error="invalid_tenant", tenant="nope.example")
    assert status == 400
    assert body["error"] == "invalid_tenant"
    assert TRAILER.search(body["error_description"])
    assert body["error_description"].startswith("AADSTS90002: Tenant 'nope.example' not found. ")
    assert body["trace_id"] != body["correlation_id"]


@pytest.mark.parametrize(("code", "values", "expected"), [
    (5002738, {"alg": "HS256"}, "AADSTS5002738: Invalid JWT token. 'HS256' is not a supported signature "
                                "algorithm. Supported signing algorithms are: 'RS256,RS384,RS512'"),
    (70025, {"client_id": "abc", "display_name": "myWorkloadId"},
     "AADSTS70025: The client 'abc'(myWorkloadId) has no configured federated identity credentials."),
    (50166, {}, "AADSTS50166: Request to External OIDC endpoint failed."),
    (90061, {}, "AADSTS90061: Request to External OIDC endpoint failed."),
    (900612, {}, "AADSTS900612: Failed to parse provider signing keys."),
    (70023, {"iat": 1643126692, "exp": 1643220292},
     "AADSTS70023: External OIDC Provider token must have a lifetime of less than or equal to 1.01:00:00. "
     "Token issued at 1643126692. Token expires on 1643220292."),
    (700211, {"iss": "https://x/"},
     "AADSTS700211: No matching federated identity record found for presented assertion issuer 'https://x/'. "
     "Please check your federated identity credential Subject, Audience and Issuer against the presented "
     "assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"),
])
def test_observed_texts(code: int, values: dict, expected: str) -> None:
    assert describe(code, **values) == expected


def test_time_formats() -> None:
    assert timestamp(datetime(2023, 12, 11, 23, 52, 19, 622340, tzinfo=UTC)) == "2023-12-11 23:52:19Z"
    assert precise_time(0) == "1970-01-01T00:00:00.0000000Z"
    assert precise_time(1516239022.5) == "2018-01-18T01:30:22.5000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", precise_time(1702338739.6223401))
    assert precise_time(1e20) == "9999-12-31T23:59:59.9999999Z"


def test_is_guid() -> None:
    assert aadsts.is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47")
    assert not aadsts.is_guid("72f988bf86f141af91ab2d7cd011db47")
    assert not aadsts.is_guid("contoso.onmicrosoft.com")
    assert not aadsts.is_guid(None)
