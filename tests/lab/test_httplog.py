"""What the lab logs about requests: one line each, and never a token, an assertion or a secret."""

from __future__ import annotations

import logging
import socket
import ssl
import time

import pytest
import requests

from lab.httplog import redacted_query
from lab.runtime import Lab


def wait_for_line(caplog: pytest.LogCaptureFixture, line: str) -> None:
    """aiohttp logs a request once its answer is written, so the client may see the answer first."""
    deadline = time.monotonic() + 5
    while line not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert line in caplog.text


def test_credential_looking_query_values_are_redacted() -> None:
    assert redacted_query("watch=1&labelSelector=app%3Dweb") == "watch=1&labelSelector=app=web"
    assert redacted_query("client_assertion=eyJ.x.y&code=abc&access_token=t&sig=s&api-version=1") == (
        "client_assertion=***&code=***&access_token=***&sig=***&api-version=1"
    )


def test_every_request_is_one_line_without_credentials(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    ca = str(lab.state_dir / "ca.pem")
    secret = lab.credentials["admin"]["client_secret"]
    with caplog.at_level(logging.INFO, logger="lab"):
        requests.get(f"{lab.endpoints['entra']}/common/discovery/instance?client_assertion=eyJhbGciOi.x.y"
                     "&api-version=1.1", verify=ca, timeout=10)
        answer = requests.post(
            f"{lab.endpoints['entra']}/{lab.tenant_id}/oauth2/v2.0/token", verify=ca, timeout=10,
            data={"grant_type": "client_credentials", "client_id": lab.credentials["admin"]["client_id"],
                  "client_secret": secret, "scope": "https://management.azure.com/.default"})
        token = answer.json()["access_token"]
        requests.get(f"{lab.endpoints['arm']}/subscriptions?api-version=2022-12-01", verify=ca, timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
        for line in ("GET /common/discovery/instance?client_assertion=***&api-version=1.1 -> 200",
                     f"POST /{lab.tenant_id}/oauth2/v2.0/token -> 200",
                     "GET /subscriptions?api-version=2022-12-01 -> 200"):
            wait_for_line(caplog, line)
    for leaked in (secret, token, "eyJhbGciOi"):
        assert leaked not in caplog.text


def test_a_request_aiohttp_cannot_parse_is_one_warning(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    host, port = "127.0.0.1", int(lab.endpoints["arm"].rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(lab.state_dir / "ca.pem"))
    with caplog.at_level(logging.INFO, logger="lab"), socket.create_connection((host, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 400 " in tls.recv(100)
        wait_for_line(caplog, "malformed request")
    records = [r for r in caplog.records if r.name == "lab.http"]
    assert records and records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert records[0].getMessage().startswith("malformed request: 400 Got more than 8190 bytes")
