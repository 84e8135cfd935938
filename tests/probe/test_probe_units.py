"""Unit tests of the probe's building blocks: JWT decoding, config, Entra error parsing, URLs, transport."""

from __future__ import annotations

import errno
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from probe_testkit import ENTRA_700213, TENANT, sa_claims

from probe.access import outcome_of, secret_version
from probe.config import (
    DEFAULT_SCOPE,
    STORAGE_SCOPE,
    ConfigError,
    ProbeConfig,
    blob_url,
    keyvault_secret_url,
    load_raw,
    parse,
    resolve_trust,
)
from probe.exchange import parse_entra_error, token_url
from probe.jwtutil import JwtDecodeError, decode_unverified, fingerprint, redact
from probe.transport import TransportError, classify, http_transport

# ---------------------------------------------------------------- jwt


def test_decode_unverified_returns_header_and_claims(make_jwt: Callable[..., str]) -> None:
    header, claims = decode_unverified(make_jwt(sa_claims(), kid="abc"))
    assert header == {"alg": "RS256", "kid": "abc", "typ": "JWT"}
    assert claims["sub"] == "system:serviceaccount:finance:backend-sa"
    assert claims["kubernetes.io"]["namespace"] == "finance"


@pytest.mark.parametrize("text", ["", "abc", "a.b", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9.!!!.x", "W10.W10.x"])
def test_decode_unverified_rejects_malformed(text: str) -> None:
    with pytest.raises(JwtDecodeError):
        decode_unverified(text)


def test_fingerprint_is_12_hex_of_sha256() -> None:
    assert fingerprint("abc") == "ba7816bf8f01"
    assert fingerprint(b"abc") == "ba7816bf8f01"


def test_redact_replaces_jwt_shaped_text(make_jwt: Callable[..., str]) -> None:
    token = make_jwt({"a": 1})
    text = redact(f"failed with assertion={token}; retry")
    assert token not in text
    assert text == "failed with assertion=[REDACTED-JWT]; retry"


# ---------------------------------------------------------------- config


def test_defaults_when_no_source() -> None:
    raw, source = load_raw(None, None, {})
    config = parse(raw, source)
    assert config == ProbeConfig()
    assert config.scope == DEFAULT_SCOPE and config.timeout_seconds == 10.0 and config.checks == ()


def test_source_precedence(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"scope": "file/.default"}')
    env = {"WI_PROBE_CONFIG": '{"scope": "env/.default"}'}
    assert load_raw('{"scope": "arg/.default"}', str(path), env)[0]["scope"] == "arg/.default"
    assert load_raw(None, str(path), env)[0]["scope"] == "file/.default"
    assert load_raw(None, None, env) == ({"scope": "env/.default"}, "WI_PROBE_CONFIG")


def test_checks_parse_with_default_scopes() -> None:
    config = parse({"checks": [
        {"kind": "keyvault_secret", "vault_url": "https://kv.vault.azure.net/", "secret": "s", "expect": "allow"},
        {"kind": "blob", "account_url": "https://a.blob.core.windows.net", "container": "c", "blob": "b",
         "expect": "deny"},
    ]})
    kv, blob = config.checks
    assert kv.scope == "https://vault.azure.net/.default" and kv.expect == "allow"
    assert blob.scope == STORAGE_SCOPE and blob.params == {"account_url": "https://a.blob.core.windows.net",
                                                           "blob": "b", "container": "c"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "(root)"),
        ({"scop": "x"}, "scop"),
        ({"scope": ""}, "scope"),
        ({"scope": "a b"}, "scope"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": "10"}, "timeout_seconds"),
        ({"timeout_seconds": True}, "timeout_seconds"),
        ({"sdk_cross_check": "yes"}, "sdk_cross_check"),
        ({"checks": {}}, "checks"),
        ({"checks": ["x"]}, "checks[0]"),
        ({"checks": [{"kind": "file"}]}, "checks[0].kind"),
        ({"checks": [{"kind": "blob", "account_url": "https://a", "container": "c", "blob": "b"}]},
         "checks[0].expect"),
        ({"checks": [{"kind": "keyvault_secret", "vault_url": "https://kv", "expect": "allow"}]},
         "checks[0].secret"),
        ({"checks": [{"kind": "keyvault_secret", "vault_url": "kv.vault.azure.net", "secret": "s",
                      "expect": "allow"}]}, "checks[0].vault_url"),
        ({"checks": [{"kind": "keyvault_secret", "vault_url": "https://kv", "secret": "s", "expect": "allow",
                      "secrett": "s"}]}, "checks[0].secrett"),
    ],
)
def test_invalid_config_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("url", ["http://kv.vault.azure.net/?sig=SAS-VALUE", "ftp://kv/?sig=SAS-VALUE"])
def test_a_bearer_token_goes_to_https_only_and_a_bad_url_is_echoed_without_its_query(url: str) -> None:
    check = {"kind": "keyvault_secret", "vault_url": url, "secret": "s", "expect": "allow"}
    with pytest.raises(ConfigError) as info:
        parse({"checks": [check]})
    assert info.value.field == "checks[0].vault_url"
    assert "https" in info.value.message and "SAS-VALUE" not in str(info.value)


def test_invalid_json_names_the_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_raw(None, None, {"WI_PROBE_CONFIG": "{nope"})
    assert info.value.field == "WI_PROBE_CONFIG"
    with pytest.raises(ConfigError) as info:
        load_raw(None, str(tmp_path / "missing.json"), {})
    assert info.value.field == "--config"


def test_tls_trust_order(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {"REQUESTS_CA_BUNDLE": str(ca), "SSL_CERT_FILE": "/nonexistent"}
    assert resolve_trust(ProbeConfig(ca_file=str(ca)), {}).source == "ca_file"
    assert resolve_trust(ProbeConfig(), env).to_dict() == {"source": "REQUESTS_CA_BUNDLE", "path": str(ca)}
    assert resolve_trust(ProbeConfig(), {"SSL_CERT_FILE": str(ca)}).source == "SSL_CERT_FILE"
    assert resolve_trust(ProbeConfig(), {}).to_dict() == {"source": "system", "path": None}
    with pytest.raises(ConfigError) as info:
        resolve_trust(ProbeConfig(ca_file=str(tmp_path / "nope.pem")), {})
    assert info.value.field == "ca_file"


@pytest.mark.parametrize(
    ("vault_url", "expected"),
    [
        ("https://kv1.vault.azure.net", "https://kv1.vault.azure.net/secrets/db-pass?api-version=7.4"),
        ("https://kv1.vault.azure.net/", "https://kv1.vault.azure.net/secrets/db-pass?api-version=7.4"),
        ("https://127.0.0.1:8443/vaults/kv1", "https://127.0.0.1:8443/vaults/kv1/secrets/db-pass?api-version=7.4"),
        ("https://127.0.0.1:8443/vaults/kv1/", "https://127.0.0.1:8443/vaults/kv1/secrets/db-pass?api-version=7.4"),
    ],
)
def test_keyvault_url_join_keeps_path_prefix(vault_url: str, expected: str) -> None:
    assert keyvault_secret_url(vault_url, "db-pass") == expected


def test_blob_url_join() -> None:
    assert blob_url("https://a.blob.core.windows.net/", "c", "dir/b 1.txt") == (
        "https://a.blob.core.windows.net/c/dir/b%201.txt"
    )
    assert blob_url("https://127.0.0.1:9/storage/a", "c", "b") == "https://127.0.0.1:9/storage/a/c/b"


# ---------------------------------------------------------------- exchange helpers


@pytest.mark.parametrize(
    "authority",
    ["https://login.microsoftonline.com/", "https://login.microsoftonline.com", "login.microsoftonline.com"],
)
def test_token_url_tolerates_missing_slash(authority: str) -> None:
    assert token_url(authority, TENANT) == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"


def test_token_url_keeps_lab_path_prefix() -> None:
    assert token_url("https://127.0.0.1:8443/entra/", "t1") == "https://127.0.0.1:8443/entra/t1/oauth2/v2.0/token"


def test_parse_entra_error_real_shape() -> None:
    error = parse_entra_error(401, json.dumps(ENTRA_700213).encode())
    assert error["kind"] == "entra_error"
    assert error["http_status"] == 401
    assert error["error"] == "invalid_client"
    assert error["error_codes"] == [700213]
    assert error["aadsts"] == "AADSTS700213"
    assert error["error_description"] == ENTRA_700213["error_description"]
    assert error["message"].endswith("workload-identity-federation")
    assert "Trace ID" not in error["message"]
    assert error["trace_id"] == "4ef9c26a-e731-4572-b4d3-f8c0e6362200"
    assert error["correlation_id"] == "731cf9a5-5359-45d2-b058-4f8f2570e1fc"
    assert error["timestamp"] == "2026-01-18 00:16:16Z"
    assert error["error_uri"] == "https://login.microsoftonline.com/error?code=700213"


def test_parse_entra_error_old_crlf_trailer_and_missing_codes() -> None:
    body = {"error": "invalid_request",
            "error_description": "AADSTS70021: No matching federated identity record found for presented "
                                 "assertion.\r\nTrace ID: x\r\nCorrelation ID: y\r\nTimestamp: 2022-01-01 00:00:00Z"}
    error = parse_entra_error(400, json.dumps(body).encode())
    assert error["aadsts"] == "AADSTS70021"
    assert error["error_codes"] == [70021]
    assert error["message"] == "AADSTS70021: No matching federated identity record found for presented assertion."


def test_parse_entra_error_non_json_body() -> None:
    error = parse_entra_error(502, b"<html>Bad Gateway</html>")
    assert error == {"kind": "http_error", "http_status": 502, "body_excerpt": "<html>Bad Gateway</html>"}


# ---------------------------------------------------------------- access helpers


def test_secret_version_is_last_segment() -> None:
    assert secret_version("https://kv.vault.azure.net/secrets/db/4387e9f3d6e14c459867679a90fd0f79") == (
        "4387e9f3d6e14c459867679a90fd0f79"
    )
    assert secret_version("https://127.0.0.1:8443/vaults/kv1/secrets/db/v2") == "v2"
    assert secret_version("https://kv.vault.azure.net/secrets/db") is None


@pytest.mark.parametrize(("kind", "status", "codes", "outcome"), [
    ("keyvault_secret", 200, set(), "allow"),
    ("keyvault_secret", 403, {"Forbidden", "ForbiddenByRbac"}, "deny"),
    ("keyvault_secret", 403, {"Forbidden", "AccessDenied"}, "deny"),
    ("keyvault_secret", 403, {"Forbidden", "ForbiddenByPolicy"}, "deny"),
    ("keyvault_secret", 403, {"Forbidden", "ForbiddenByFirewall"}, "network"),
    ("keyvault_secret", 403, {"Forbidden", "ForbiddenByConnection"}, "network"),
    ("keyvault_secret", 403, {"Forbidden", "SecretDisabled"}, "refused"),
    ("keyvault_secret", 401, {"Unauthorized", "AKV10032"}, "unauthenticated"),
    ("blob", 206, set(), "allow"),
    ("blob", 403, {"AuthorizationPermissionMismatch"}, "deny"),
    ("blob", 403, {"AuthorizationFailure"}, "network"),
    ("blob", 401, {"InvalidAuthenticationInfo"}, "unauthenticated"),
    ("blob", 404, {"BlobNotFound"}, "error"),
    ("blob", 429, set(), "error"),
    ("keyvault_secret", 500, set(), "error"),
])
def test_an_answer_means_what_its_error_code_says(kind: str, status: int, codes: set[str], outcome: str) -> None:
    assert outcome_of(kind, status, codes) == outcome


# ---------------------------------------------------------------- transport


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (socket.gaierror(-2, "Name or service not known"), "dns"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection_refused"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "connection_reset"),
        (TimeoutError("timed out"), "timeout"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls_verify"),
        (ssl.SSLError("wrong version number"), "tls"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "network_unreachable"),
        (ValueError("unknown url type"), "invalid_url"),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    import urllib.error

    assert classify(exc).kind == kind
    assert classify(urllib.error.URLError(exc)).kind == kind


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_transport_connection_refused() -> None:
    send = http_transport()
    with pytest.raises(TransportError) as info:
        send("GET", f"http://127.0.0.1:{_closed_port()}/x", {}, None, 2.0)
    assert info.value.kind == "connection_refused"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/steal")
            self.end_headers()
            return
        body = b'{"error":{"code":"Forbidden","innererror":{"code":"ForbiddenByRbac"}}}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Seen-Auth", self.headers.get("Authorization", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_transport_returns_http_errors_as_responses(local_server: str) -> None:
    resp = http_transport()("GET", f"{local_server}/secrets/x", {"Authorization": "Bearer t"}, None, 5.0)
    assert resp.status == 403
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-seen-auth"] == "Bearer t"
    assert json.loads(resp.body)["error"]["innererror"]["code"] == "ForbiddenByRbac"


def test_http_transport_does_not_follow_redirects(local_server: str) -> None:
    resp = http_transport()("GET", f"{local_server}/redirect", {"Authorization": "Bearer t"}, None, 5.0)
    assert resp.status == 302
    assert resp.headers["location"] == "http://example.invalid/steal"
