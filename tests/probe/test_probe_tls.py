"""The default urllib transport and the real SDK cross-check over HTTPS with a private CA (like the lab's)."""

from __future__ import annotations

import http.server
import io
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import trustme
from probe_testkit import CLIENT_ID, KV_CHALLENGE, NOW, SECRET_VALUE, TENANT, access_claims

from probe.cli import main
from probe.sdk import azure_identity_check


class _Server:
    def __init__(self, make_jwt: Callable[..., str]) -> None:
        self.make_jwt = make_jwt
        self.requests: list[tuple[str, str]] = []


def _handler(state: _Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            state.requests.append(("POST", self.path))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            token = state.make_jwt(access_claims(form["scope"].removesuffix("/.default")))
            self._send(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append(("GET", self.path))
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                self._send(401, {"error": {"code": "Unauthorized", "message": "AKV10000"}},
                           {"WWW-Authenticate": KV_CHALLENGE})
                return
            self._send(200, {"value": SECRET_VALUE, "id": "https://127.0.0.1/vaults/kv1/secrets/s/v1",
                             "attributes": {"enabled": True}})

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@pytest.fixture
def https_server(tmp_path: Path, make_jwt: Callable[..., str]) -> Iterator[tuple[str, Path, _Server]]:
    ca = trustme.CA()
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.cert_pem.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    state = _Server(make_jwt)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", ca_path, state
    finally:
        server.shutdown()
        server.server_close()


def _run(argv: list[str], environ: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=environ, sdk_check=azure_identity_check, clock=lambda: NOW, stdout=out, stderr=err)
    return code, json.loads(out.getvalue()), out.getvalue()


def test_https_with_ca_file_and_sdk_cross_check(
    https_server: tuple[str, Path, _Server], environ: dict[str, str]
) -> None:
    base, ca_path, state = https_server
    config = {"ca_file": str(ca_path), "timeout_seconds": 5,
              "checks": [{"kind": "keyvault_secret", "vault_url": f"{base}vaults/kv1", "secret": "s",
                          "expect": "allow", "allowed_hosts": [base.removeprefix("https://").rstrip("/")],
                          "challenge_resource": "https://vault.azure.net"}]}
    env = dict(environ, AZURE_AUTHORITY_HOST=base)
    code, doc, stdout = _run(["--config-json", json.dumps(config)], env)
    steps = {s["name"]: s for s in doc["steps"]}
    assert code == 0, stdout
    assert steps["config"]["evidence"]["tls_trust"] == {"source": "ca_file", "path": str(ca_path)}
    assert steps["exchange"]["evidence"]["claims"]["appid"] == CLIENT_ID
    sdk = steps["exchange"]["evidence"]["sdk"]
    if sdk["available"]:
        assert sdk == {"available": True, "succeeded": True, "agrees": True, "error": None}
    assert ("GET", "/vaults/kv1/secrets/s?api-version=7.4") in state.requests
    assert ("POST", f"/{TENANT}/oauth2/v2.0/token") in state.requests
    assert SECRET_VALUE not in stdout


def test_https_untrusted_ca_is_a_tls_error(https_server: tuple[str, Path, _Server], environ: dict[str, str]) -> None:
    base, _, _ = https_server
    env = dict(environ, AZURE_AUTHORITY_HOST=base)
    code, doc, _ = _run(["--config-json", json.dumps({"timeout_seconds": 5})], env)
    exchange = {s["name"]: s for s in doc["steps"]}["exchange"]
    assert code == 1
    assert exchange["error"]["kind"] == "tls_verify"
    sdk = exchange["evidence"]["sdk"]
    if sdk["available"]:
        assert sdk["succeeded"] is False and sdk["agrees"] is True


def test_https_trust_from_requests_ca_bundle(
    https_server: tuple[str, Path, _Server], environ: dict[str, str]
) -> None:
    base, ca_path, _ = https_server
    env = dict(environ, AZURE_AUTHORITY_HOST=base, REQUESTS_CA_BUNDLE=str(ca_path))
    code, doc, stdout = _run(["--config-json", json.dumps({"timeout_seconds": 5})], env)
    assert code == 0, stdout
    assert doc["steps"][0]["evidence"]["tls_trust"]["source"] == "REQUESTS_CA_BUNDLE"
    sdk = doc["steps"][3]["evidence"]["sdk"]
    assert sdk.get("agrees", True) is True, sdk
