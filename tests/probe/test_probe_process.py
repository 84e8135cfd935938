"""``python -m probe`` as a real process: one JSON document on stdout, exit code, no traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from probe_testkit import CLIENT_ID, TENANT, sa_claims

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "WI_PROBE", "POD_"))}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "probe", *args], env={**base, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def live_token(tmp_path: Path, make_jwt: Callable[..., str]) -> tuple[Path, str]:
    """A token valid now by the real clock (the subprocess cannot use the tests' fixed clock)."""
    now = int(time.time())
    token = make_jwt(sa_claims(iat=now, nbf=now, exp=now + 3600))
    path = tmp_path / "azure-identity-token"
    path.write_text(token)
    return path, token


def test_process_connection_refused(live_token: tuple[Path, str]) -> None:
    token_file = live_token
    port = _closed_port()
    config = {"timeout_seconds": 5, "checks": [
        {"kind": "keyvault_secret", "vault_url": f"https://127.0.0.1:{port}/vaults/kv1", "secret": "s",
         "expect": "allow"}]}
    env = {
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file[0]),
        "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{port}/",
        "POD_NAME": "probe-0",
        "WI_PROBE_CONFIG": json.dumps(config),
    }
    proc = _run([], env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert doc["schema"] == "wi-probe/v1"
    assert doc["ok"] is False
    assert doc["pod"]["name"] == "probe-0"
    steps = {s["name"]: s for s in doc["steps"]}
    assert [s["name"] for s in doc["steps"]] == ["config", "env", "token", "exchange", "access"]
    assert steps["token"]["status"] == "pass"
    exchange = steps["exchange"]
    assert exchange["status"] == "fail"
    assert exchange["error"]["kind"] == "connection_refused"
    assert exchange["error"]["url"] == f"https://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token"
    sdk = exchange["evidence"]["sdk"]
    if sdk["available"]:
        assert sdk["succeeded"] is False and sdk["agrees"] is True
    assert steps["access"]["status"] == "skip"
    assert steps["access"]["reason"] == "because exchange failed"
    assert token_file[1] not in proc.stdout + proc.stderr


def test_process_bad_config_exit_1_one_stderr_line(token_file: tuple[Path, str]) -> None:
    proc = _run(["--config-json", '{"checks": [{"kind": "blob"}]}'],
                {"AZURE_FEDERATED_TOKEN_FILE": str(token_file[0])})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "checks[0]" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["steps"][0]["name"] == "config" and doc["steps"][0]["status"] == "fail"
