"""A look-alike host never receives a token: a real HTTPS listener on 127.0.0.1 (trusted through a private CA)
records the Authorization header of every request, and the probe (in-process with its real urllib transport,
and once as a real process) reads a "vault" there that answers without a challenge, with another resource's
challenge, or with the right one. Only the last may ever see a token."""

from __future__ import annotations

import http.server
import io
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import trustme
from probe_testkit import NOW, SECRET_VALUE, TENANT, access_claims, sa_claims

from probe.cli import main

REPO = Path(__file__).resolve().parents[2]
VAULT_RESOURCE = "https://vault.azure.net"
PASSWORD = "pa55-w0rd-in-a-url"


@dataclass
class Listener:
    """What the vault answers a request without a token, and everything it was sent."""

    make_jwt: Callable[..., str]
    answer_without_token: tuple[int, dict[str, str]] = (401, {})
    requests: list[dict[str, Any]] = field(default_factory=list)
    base: str = ""

    @property
    def authority(self) -> str:
        return self.base.removeprefix("https://").rstrip("/")

    def vault_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "GET"]

    def tokens_seen(self) -> list[str]:
        return [r["authorization"] for r in self.requests if r["authorization"]]


def _challenge(resource: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                                f'resource="{resource}"'}


def _handler(state: Listener) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            state.requests.append({"method": self.command, "path": self.path,
                                   "authorization": self.headers.get("Authorization")})

        def do_POST(self) -> None:  # noqa: N802 (http.server API): the Entra token endpoint
            self._record()
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            scope = parse_qs(body)["scope"][0]
            token = state.make_jwt(access_claims(scope.removesuffix("/.default")))
            self._send(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})

        def do_GET(self) -> None:  # noqa: N802 (http.server API): the vault
            self._record()
            if self.headers.get("Authorization"):
                self._send(200, {"value": SECRET_VALUE, "id": f"{state.base}secrets/db-pass/v1",
                                 "attributes": {"enabled": True}})
                return
            status, headers = state.answer_without_token
            payload: dict[str, Any] = {"value": SECRET_VALUE} if status == 200 else {
                "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}
            self._send(status, payload, headers)

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
def listener(tmp_path: Path, make_jwt: Callable[..., str]) -> Iterator[tuple[Listener, Path]]:
    ca = trustme.CA()
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.cert_pem.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    state = Listener(make_jwt)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.base = f"https://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, ca_path
    finally:
        server.shutdown()
        server.server_close()


def _config(state: Listener, ca_path: Path, **check: Any) -> dict[str, Any]:
    vault_check = {"kind": "keyvault_secret", "vault_url": state.base, "secret": "db-pass", "expect": "allow",
                   "allowed_hosts": [state.authority], "challenge_resource": VAULT_RESOURCE, **check}
    return {"ca_file": str(ca_path), "timeout_seconds": 5, "sdk_cross_check": False,
            "checks": [{k: v for k, v in vault_check.items() if v is not None}]}


def _run_in_process(config: dict[str, Any], environ: dict[str, str], base: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    env = dict(environ, AZURE_AUTHORITY_HOST=base)
    code = main(["--config-json", json.dumps(config)], environ=env, sdk_check=None, clock=lambda: NOW,
                stdout=out, stderr=err)
    return code, json.loads(out.getvalue()), out.getvalue() + err.getvalue()


def _access(doc: dict[str, Any]) -> dict[str, Any]:
    return next(step for step in doc["steps"] if step["name"] == "access")


@pytest.mark.parametrize(
    ("answer_without_token", "challenge_resource", "token_sent", "error_kind"),
    [
        pytest.param((200, {}), VAULT_RESOURCE, False, "challenge_missing", id="200-without-a-challenge"),
        pytest.param((404, {}), VAULT_RESOURCE, False, "challenge_missing", id="404-without-a-challenge"),
        pytest.param((401, {}), VAULT_RESOURCE, False, "challenge_missing", id="401-without-www-authenticate"),
        pytest.param((401, {"WWW-Authenticate": 'Basic realm="vault"'}), VAULT_RESOURCE, False,
                     "challenge_missing", id="401-basic-challenge"),
        pytest.param((401, _challenge("https://vault.azure.net.evil.example")), VAULT_RESOURCE, False,
                     "challenge_mismatch", id="challenge-names-a-look-alike-resource"),
        pytest.param((401, _challenge("https://storage.azure.com")), VAULT_RESOURCE, False,
                     "challenge_mismatch", id="challenge-names-another-service"),
        # no resource configured: the SDK's rule, and 127.0.0.1 does not end with ".vault.azure.net"
        pytest.param((401, _challenge(VAULT_RESOURCE)), None, False, "challenge_mismatch",
                     id="sdk-rule-without-a-configured-resource"),
        pytest.param((401, _challenge(VAULT_RESOURCE)), VAULT_RESOURCE, True, None, id="matching-challenge"),
        pytest.param((401, _challenge("https://VAULT.azure.net:443/")), VAULT_RESOURCE, True, None,
                     id="matching-challenge-case-and-default-port"),
    ],
)
def test_a_token_only_after_the_expected_challenge(
    listener: tuple[Listener, Path],
    environ: dict[str, str],
    answer_without_token: tuple[int, dict[str, str]],
    challenge_resource: str | None,
    token_sent: bool,
    error_kind: str | None,
) -> None:
    state, ca_path = listener
    state.answer_without_token = answer_without_token
    code, doc, output = _run_in_process(_config(state, ca_path, challenge_resource=challenge_resource), environ,
                                        state.base)
    access = _access(doc)
    vault_requests = state.vault_requests()
    assert vault_requests[0]["authorization"] is None  # the challenge request: never a token
    if token_sent:
        assert code == 0 and access["status"] == "pass", output
        assert [r["path"] for r in vault_requests] == ["/secrets/db-pass?api-version=7.4"] * 2  # the same URL
        assert len(state.tokens_seen()) == 1 and vault_requests[1]["authorization"].startswith("Bearer ")
    else:
        assert state.tokens_seen() == [], "a host that did not prove to be the vault received a token"
        assert len(vault_requests) == 1
        assert code == 1 and access["outcome"] == "error"
        assert access["error"]["kind"] == error_kind and access["error"]["host"] == state.authority
        assert access["evidence"]["challenge"]["http_status"] == answer_without_token[0]
    assert SECRET_VALUE not in output


def test_a_host_the_check_does_not_allow_gets_no_request_at_all(
    listener: tuple[Listener, Path], environ: dict[str, str]
) -> None:
    state, ca_path = listener
    state.answer_without_token = (401, _challenge(VAULT_RESOURCE))  # it would even answer the right challenge
    config = _config(state, ca_path, allowed_hosts=[".vault.azure.net"])
    code, doc, _ = _run_in_process(config, environ, state.base)
    access = _access(doc)
    assert code == 1 and access["error"]["kind"] == "target_not_trusted"
    assert access["error"]["host"] == state.authority
    assert state.vault_requests() == [] and state.tokens_seen() == []


def test_the_default_allows_only_the_azure_clouds_vault_hosts(
    listener: tuple[Listener, Path], environ: dict[str, str]
) -> None:
    state, ca_path = listener
    state.answer_without_token = (401, _challenge(VAULT_RESOURCE))
    config = _config(state, ca_path, allowed_hosts=None, challenge_resource=None)
    code, doc, _ = _run_in_process(config, environ, state.base)
    error = _access(doc)["error"]
    assert error["kind"] == "target_not_trusted" and ".vault.azure.cn" in error["allowed_hosts"]
    assert state.vault_requests() == []


@pytest.mark.parametrize(
    "vault_url",
    [
        f"https://user:{PASSWORD}@127.0.0.1:1/",
        f"https://127.0.0.1:1@finance-kv.vault.azure.net:{PASSWORD}/",
        "https://finance-kv.vault.azure.net\\@127.0.0.1/",
        "https://finance-kv%2evault.azure.net/",
        "https://finance-kv.vault.azure.net./",
        "https://finance-kv.vаult.azure.net/",  # Cyrillic a
    ],
)
def test_a_url_clients_could_read_two_ways_is_a_config_error(
    listener: tuple[Listener, Path], environ: dict[str, str], vault_url: str
) -> None:
    state, ca_path = listener
    code, doc, output = _run_in_process(_config(state, ca_path, vault_url=vault_url), environ, state.base)
    config_step = doc["steps"][0]
    assert code == 1 and config_step["error"]["field"] == "checks[0].vault_url"
    assert PASSWORD not in output
    assert state.requests == []  # not even the token endpoint: nothing runs after a config error


def test_as_a_real_process_a_mismatching_challenge_gets_no_token(
    listener: tuple[Listener, Path], tmp_path: Path, make_jwt: Callable[..., str]
) -> None:
    state, ca_path = listener
    state.answer_without_token = (401, _challenge("https://attacker.example"))
    now = int(time.time())
    token_path = tmp_path / "azure-identity-token"
    token_path.write_text(make_jwt(sa_claims(iat=now, nbf=now, exp=now + 3600)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "WI_PROBE", "POD_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555", "AZURE_TENANT_ID": TENANT,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_path), "AZURE_AUTHORITY_HOST": state.base,
        "WI_PROBE_CONFIG": json.dumps(_config(state, ca_path)),
    })
    proc = subprocess.run([sys.executable, "-m", "probe"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert _access(doc)["error"]["kind"] == "challenge_mismatch"
    assert _access(doc)["evidence"]["challenge"]["resource_domain"] == "attacker.example"
    assert [r["method"] for r in state.requests] == ["POST", "GET"]  # the exchange, then the challenge only
    assert state.tokens_seen() == []
