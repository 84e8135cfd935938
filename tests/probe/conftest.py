"""Fixtures for the probe's unit tests: JWT-shaped tokens (pyjwt, tests only) and a fake transport."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from probe_testkit import (
    AUTHORITY,
    CLIENT_ID,
    NOW,
    TENANT,
    FakeClock,
    FakeTransport,
    Handler,
    Run,
    access_claims,
    json_response,
    sa_claims,
)

from probe.cli import main
from probe.transport import Response


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def make_jwt(rsa_key: rsa.RSAPrivateKey) -> Callable[..., str]:
    def make(claims: Mapping[str, Any], kid: str = "key-1") -> str:
        return jwt.encode(dict(claims), rsa_key, algorithm="RS256", headers={"kid": kid})

    return make


@pytest.fixture
def token_file(tmp_path: Path, make_jwt: Callable[..., str]) -> tuple[Path, str]:
    token = make_jwt(sa_claims())
    path = tmp_path / "tokens" / "azure-identity-token"
    path.parent.mkdir()
    path.write_text(token)
    os.chmod(path, 0o644)
    return path, token


@pytest.fixture
def environ(token_file: tuple[Path, str]) -> dict[str, str]:
    return {
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file[0]),
        "AZURE_AUTHORITY_HOST": AUTHORITY,
        "POD_NAME": "backend-0",
        "POD_NAMESPACE": "finance",
        "POD_SERVICE_ACCOUNT": "backend-sa",
    }


@pytest.fixture
def entra_ok(make_jwt: Callable[..., str]) -> Handler:
    """A token endpoint that issues a JWT whose aud is the requested scope's resource."""

    def handler(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        form = {k: v[0] for k, v in parse_qs((body or b"").decode()).items()}
        resource = form["scope"].removesuffix("/.default")
        token = make_jwt(access_claims(resource))
        return json_response(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                   "access_token": token})

    return handler


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def run_probe(fake_clock: FakeClock) -> Callable[..., Run]:
    """Runs the probe in-process; its retries wait on ``fake_clock`` (no real sleeping)."""

    def run(argv: list[str], environ: Mapping[str, str], transport: FakeTransport | None = None,
            sdk_check: Any = None, clock: Callable[[], float] = lambda: NOW) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = main(argv, environ=environ, transport=transport or FakeTransport(), sdk_check=sdk_check,
                    clock=clock, stdout=out, stderr=err, monotonic=fake_clock.monotonic, sleep=fake_clock.sleep)
        return Run(code, out.getvalue(), err.getvalue())

    return run
