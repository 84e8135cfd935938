"""The lab's Entra over HTTPS, driven by real clients (requests, azure-identity, msal).

The service runs on its own small lab (``MiniLab``: just what lab.azure.entra needs of lab.runtime.Lab) so
these tests can bend everything (clock, faults, credentials, issuers) without touching the session lab.
Three loopback HTTPS servers: Entra, the cluster's issuer, and "elsewhere" (any other OIDC issuer,
with deliberately broken variants).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import msal
import pytest
import requests
from aiohttp import web
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    ClientAssertionCredential,
    ClientSecretCredential,
    WorkloadIdentityCredential,
)
from cryptography.hazmat.primitives import serialization

from lab.azure import entra
from lab.azure.aadsts import CATALOGUE, describe
from lab.azure.access_tokens import issue_access_token, verify_access_token
from lab.azure.arm_errors import ARM_ALLOWED_AUDIENCES
from lab.azure.federation import JWT_BEARER
from lab.azure.metadata_cache import DEFAULT_SECONDS as DEFAULT_CACHE_SECONDS
from lab.azure.world import KEYVAULT_AUDIENCE, AzureWorld, FederatedCredential
from lab.clock import Clock
from lab.faults import Faults, ServiceFaults
from lab.keys import KeySet, SigningKey
from lab.tls import LabTls

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
VAULT_SCOPE = "https://vault.azure.net/.default"
BACKEND_SUBJECT = "system:serviceaccount:finance:backend-sa"
PROBE_SUBJECT = "system:serviceaccount:probe:probe-sa"
TRAILER = re.compile(r" Trace ID: ([0-9a-f-]{36}) Correlation ID: ([0-9a-f-]{36}) "
                     r"Timestamp: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)$")
ELSEWHERE_MODES = ("ok", "discovery_404", "discovery_garbage", "jwks_404", "jwks_garbage", "jwks_offbox", "slow")


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class MiniLab:
    """The attributes of lab.runtime.Lab that lab.azure.entra (and access_tokens) use."""

    ca_path: Path
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subscription_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    cluster_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    tls: LabTls = field(default_factory=LabTls)
    faults: Faults = field(default_factory=Faults)
    entra_clock: Clock = field(default_factory=Clock)
    entra_keys: KeySet = field(default_factory=KeySet)
    cluster_keys: KeySet = field(default_factory=KeySet)  # what lab.kube.issuer_keys is in the real lab
    elsewhere_keys: KeySet = field(default_factory=KeySet)
    new_issuer_keys: list[dict[str, Any]] = field(default_factory=list)  # what the "new" issuer publishes now
    endpoints: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, Any] = field(default_factory=dict)
    principals: dict[str, Any] = field(default_factory=dict)
    azure: AzureWorld = field(init=False)

    def __post_init__(self) -> None:
        self.azure = AzureWorld(tenant_id=self.tenant_id, subscription_id=self.subscription_id)
        self.azure.add_tenant(self.tenant_id, "Contoso Lab", "contosolab.onmicrosoft.com")
        self.ca_path.write_bytes(self.tls.ca_pem)

    @property
    def authority_host(self) -> str:
        return self.endpoints["entra"] + "/"

    @property
    def issuer_url(self) -> str:
        return f"{self.endpoints['issuer']}/eastus/{self.tenant_id}/{self.cluster_guid}/"

    def elsewhere(self, mode: str) -> str:
        return f"{self.endpoints['elsewhere']}/{mode}/"

    # -- the Azure side of this mini world
    def populate(self) -> None:
        harness = self.azure.add_app("wi-harness")
        self.credentials["harness"] = {"client_id": harness.client_id, "client_secret": harness.add_secret()}
        self.principals["harness"] = harness
        self.principals["no-fic-app"] = self.azure.add_app("no-fic-app")
        self.azure.add_resource_group("myRg")
        backend = self.azure.add_identity("myWorkloadId", "myRg")
        self.principals["backend"] = backend
        self.principals["orphan"] = self.azure.add_identity("orphanId", "myRg")
        fics = [FederatedCredential("fed-cred-backend", self.issuer_url, BACKEND_SUBJECT, [EXCHANGE_AUDIENCE]),
                FederatedCredential("offbox", "https://example.com/issuer/", PROBE_SUBJECT, [EXCHANGE_AUDIENCE])]
        fics += [FederatedCredential(f"elsewhere-{m.replace('_', '-')}", self.elsewhere(m), PROBE_SUBJECT,
                                     [EXCHANGE_AUDIENCE]) for m in ELSEWHERE_MODES]
        for fic in fics:
            fic.created_at -= 3600
            backend.federated_credentials[fic.name] = fic

    # -- assertions
    def sa_token(self, key: SigningKey | None = None, headers: dict | None = None, **overrides: Any) -> str:
        """A projected service account token as the cluster issues it (kid, no typ)."""
        now = int(time.time())
        claims = {"aud": [EXCHANGE_AUDIENCE], "exp": now + 3600, "iat": now, "iss": self.issuer_url,
                  "jti": str(uuid.uuid4()), "nbf": now, "sub": BACKEND_SUBJECT,
                  "kubernetes.io": {"namespace": "finance", "serviceaccount": {"name": "backend-sa",
                                                                               "uid": str(uuid.uuid4())}}}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return (key or self.cluster_keys.current).sign(claims, headers={"typ": None, **(headers or {})})

    def elsewhere_token(self, mode: str, **overrides: Any) -> str:
        return self.sa_token(self.elsewhere_keys.current, iss=self.elsewhere(mode), sub=PROBE_SUBJECT, **overrides)


# ---------------------------------------------------------------------------------------------- servers
def issuer_app(mini: MiniLab) -> web.Application:
    """The cluster issuer (AKS layout: <issuer>.well-known/openid-configuration and <issuer>openid/v1/jwks)."""

    async def handle(request: web.Request) -> web.Response:
        prefix = urlsplit(mini.issuer_url).path
        rest = request.path[len(prefix):] if request.path.startswith(prefix) else None
        if rest == ".well-known/openid-configuration":
            return web.json_response({"issuer": mini.issuer_url, "jwks_uri": mini.issuer_url + "openid/v1/jwks",
                                      "response_types_supported": ["id_token"],
                                      "subject_types_supported": ["public"],
                                      "id_token_signing_alg_values_supported": ["RS256"]})
        if rest == "openid/v1/jwks":
            return web.json_response(mini.cluster_keys.jwks())
        return web.Response(status=404, text="BlobNotFound")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def elsewhere_app(mini: MiniLab) -> web.Application:
    """Any other OIDC issuer on loopback, one per mode: /<mode>/ is the issuer URL."""

    async def handle(request: web.Request) -> web.Response:
        mode, _, rest = request.path.lstrip("/").partition("/")
        issuer = mini.elsewhere(mode)
        if rest == ".well-known/openid-configuration":
            if mode == "discovery_404":
                return web.Response(status=404, text="not found")
            if mode == "discovery_garbage":
                return web.Response(text="<html>hello</html>", content_type="text/html")
            if mode == "slow":
                await asyncio.sleep(3)
            jwks_uri = "https://10.255.255.1/keys" if mode == "jwks_offbox" else issuer + "keys"
            return web.json_response({"issuer": issuer, "jwks_uri": jwks_uri})
        if rest == "keys":
            if mode == "jwks_404":
                return web.Response(status=404, text="not found")
            if mode == "jwks_garbage":
                return web.Response(text="{'keys': oops", content_type="application/json")
            if mode == "new":
                return web.json_response({"keys": mini.new_issuer_keys})
            return web.json_response(mini.elsewhere_keys.jwks())
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


class Servers:
    def __init__(self, mini: MiniLab) -> None:
        self.mini = mini
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="entra-test", daemon=True)
        self.runners: list[web.AppRunner] = []
        self.sockets = {name: _bind() for name in ("entra", "issuer", "elsewhere")}
        for name, sock in self.sockets.items():
            mini.endpoints[name] = f"https://127.0.0.1:{sock.getsockname()[1]}"

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> None:
        apps = {"entra": entra.build_app(self.mini), "issuer": issuer_app(self.mini),
                "elsewhere": elsewhere_app(self.mini)}
        for name, app in apps.items():
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            await web.SockSite(runner, self.sockets[name], ssl_context=self.mini.tls.server_context()).start()
            self.runners.append(runner)

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in self.runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniLab]:
    world = MiniLab(ca_path=tmp_path_factory.mktemp("entra") / "ca.pem")
    servers = Servers(world)
    world.populate()
    servers.start()
    yield world
    servers.stop()


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if "mini" not in request.fixturenames:
        yield
        return
    world: MiniLab = request.getfixturevalue("mini")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(world.ca_path))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
                 "AZURE_CLIENT_SECRET", "AZURE_REGIONAL_AUTHORITY_NAME", "MSAL_FORCE_REGION"):
        monkeypatch.delenv(name, raising=False)
    yield
    world.faults.services["entra"] = ServiceFaults()
    world.faults.issuer_unreachable = False
    world.entra_clock.skew_seconds = 0
    world.azure.fic_propagation_seconds = 0
    world.azure.issuer_metadata.seconds = DEFAULT_CACHE_SECONDS
    world.azure.issuer_metadata.clock = time.monotonic
    world.azure.issuer_metadata.entries.clear()  # entries a test stamped with its fake clock


# ---------------------------------------------------------------------------------------------- helpers
def token_url(mini: MiniLab, tenant: str | None = None, version: int = 2) -> str:
    path = "oauth2/v2.0/token" if version == 2 else "oauth2/token"
    return f"{mini.endpoints['entra']}/{tenant or mini.tenant_id}/{path}"


def post(mini: MiniLab, data: dict | None = None, *, tenant: str | None = None, version: int = 2,
         **kwargs: Any) -> requests.Response:
    return requests.post(token_url(mini, tenant, version), data=data, timeout=15, **kwargs)


def assertion_form(mini: MiniLab, assertion: str, client: str = "backend", scope: str = VAULT_SCOPE) -> dict:
    return {"client_id": mini.principals[client].client_id, "client_assertion": assertion,
            "client_assertion_type": JWT_BEARER, "grant_type": "client_credentials", "scope": scope,
            "claims": '{"access_token": {"xms_cc": {"values": ["CP1"]}}}', "client_info": "1"}


def secret_form(mini: MiniLab, secret: str | None = None, scope: str = VAULT_SCOPE) -> dict:
    harness = mini.credentials["harness"]
    return {"client_id": harness["client_id"], "client_secret": secret or harness["client_secret"],
            "grant_type": "client_credentials", "scope": scope}


def assert_aadsts(resp: requests.Response, code: int, text: str | None = None, *, error: str | None = None,
                  status: int | None = None) -> str:
    entry = CATALOGUE[code]
    body = resp.json()
    assert resp.status_code == (status or entry.status), body
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert body["error"] == (error or entry.error)
    assert body["error_codes"] == [code]
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    match = TRAILER.search(body["error_description"])
    assert match, body["error_description"]
    assert match.groups() == (body["trace_id"], body["correlation_id"], body["timestamp"])
    described = body["error_description"][: match.start()]
    assert described.startswith(f"AADSTS{code}: ")
    if text is not None:
        assert described == text
    return described


def access_claims(mini: MiniLab, resp: requests.Response, audiences=(KEYVAULT_AUDIENCE,)) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] and 3600 <= body["expires_in"] < 5400
    assert resp.headers["Cache-Control"] == "no-store, no-cache"
    return verify_access_token(mini, body["access_token"], audiences)


# ---------------------------------------------------------------------------------------------- discovery
@pytest.mark.parametrize("by", ["id", "domain"])
def test_tenant_discovery_v2(mini: MiniLab, by: str) -> None:
    tenant = mini.tenant_id if by == "id" else "ContosoLab.onmicrosoft.com"
    resp = requests.get(f"{mini.endpoints['entra']}/{tenant}/v2.0/.well-known/openid-configuration", timeout=10)
    doc = resp.json()
    host = mini.endpoints["entra"]
    assert resp.status_code == 200
    assert doc["issuer"] == f"{host}/{mini.tenant_id}/v2.0"
    assert doc["token_endpoint"] == f"{host}/{mini.tenant_id}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{host}/{mini.tenant_id}/oauth2/v2.0/authorize"
    assert doc["jwks_uri"] == f"{host}/{mini.tenant_id}/discovery/v2.0/keys"
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_post", "private_key_jwt",
                                                           "client_secret_basic"]
    assert doc["cloud_instance_name"] == "microsoftonline.com"
    keys = requests.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert [k["kid"] for k in keys] == [mini.entra_keys.current.kid]
    assert keys[0]["issuer"] == doc["issuer"] and keys[0]["x5t"] == keys[0]["kid"]


def test_tenant_discovery_v1_and_common(mini: MiniLab) -> None:
    host = mini.endpoints["entra"]
    v1 = requests.get(f"{host}/{mini.tenant_id}/.well-known/openid-configuration", timeout=10).json()
    assert v1["issuer"] == f"https://sts.windows.net/{mini.tenant_id}/"
    assert v1["token_endpoint"] == f"{host}/{mini.tenant_id}/oauth2/token"
    v1_keys = requests.get(v1["jwks_uri"], timeout=10).json()["keys"]
    assert [k["kid"] for k in v1_keys] == [mini.entra_keys.current.kid]
    assert requests.get(f"{host}/{mini.tenant_id}/discovery/keys", timeout=10).json()["keys"] == v1_keys
    common = requests.get(f"{host}/common/v2.0/.well-known/openid-configuration", timeout=10).json()
    assert common["issuer"] == f"{host}/{{tenantid}}/v2.0"
    assert common["token_endpoint"] == f"{host}/common/oauth2/v2.0/token"


def test_unknown_tenant_is_90002(mini: MiniLab) -> None:
    other = str(uuid.uuid4())
    host = mini.endpoints["entra"]
    expected = describe(90002, tenant=other)
    for path in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration",
                 "discovery/v2.0/keys"):
        resp = requests.get(f"{host}/{other}/{path}", timeout=10)
        assert_aadsts(resp, 90002, expected, error="invalid_tenant")
    assert_aadsts(post(mini, secret_form(mini), tenant=other), 90002, expected, error="invalid_request")
    assert_aadsts(post(mini, secret_form(mini), tenant="fabrikam.onmicrosoft.com"), 90002)


def test_invalid_tenant_identifier_is_900023(mini: MiniLab) -> None:
    resp = post(mini, secret_form(mini), tenant="not_a_tenant")
    assert_aadsts(resp, 900023, describe(900023, tenant="not_a_tenant"))


def test_instance_discovery(mini: MiniLab) -> None:
    host = mini.endpoints["entra"]
    resp = requests.get(f"{host}/common/discovery/instance", timeout=10, params={
        "authorization_endpoint": f"https://127.0.0.1/{mini.tenant_id}/oauth2/v2.0/authorize",
        "api-version": "1.0"})
    body = resp.json()
    assert resp.status_code == 200
    assert body["tenant_discovery_endpoint"] == f"{host}/{mini.tenant_id}/v2.0/.well-known/openid-configuration"
    assert body["api-version"] == "1.1"
    assert "127.0.0.1" in body["metadata"][0]["aliases"]
    assert body["metadata"][0]["preferred_network"] == "127.0.0.1"
    unknown = requests.get(f"{host}/common/discovery/instance", timeout=10, params={
        "authorization_endpoint": "https://idp.example.org/x/oauth2/v2.0/authorize", "api-version": "1.1"})
    assert_aadsts(unknown, 50049, error="invalid_instance")


# ---------------------------------------------------------------------------------------------- secrets
def test_client_secret_success_v2(mini: MiniLab) -> None:
    claims = access_claims(mini, post(mini, secret_form(mini)))
    harness = mini.principals["harness"]
    assert claims["appid"] == harness.client_id and claims["appidacr"] == "1"
    assert claims["oid"] == claims["sub"] == harness.principal_id
    assert claims["aud"] == "https://vault.azure.net" and claims["tid"] == mini.tenant_id
    assert claims["iss"] == f"https://sts.windows.net/{mini.tenant_id}/" and claims["ver"] == "1.0"
    assert "xms_mirid" not in claims


def test_client_secret_basic_and_v1_endpoint(mini: MiniLab) -> None:
    harness = mini.credentials["harness"]
    basic = base64.b64encode(f"{harness['client_id']}:{harness['client_secret']}".encode()).decode()
    resp = post(mini, {"grant_type": "client_credentials", "scope": VAULT_SCOPE},
                headers={"Authorization": f"Basic {basic}"})
    assert access_claims(mini, resp)["appid"] == harness["client_id"]
    v1 = post(mini, {"grant_type": "client_credentials", "client_id": harness["client_id"],
                     "client_secret": harness["client_secret"], "resource": "https://management.azure.com/"},
              version=1)
    body = v1.json()
    assert v1.status_code == 200 and body["resource"] == "https://management.azure.com/"
    assert body["expires_in"].isdigit() and int(body["expires_on"]) > int(body["not_before"])
    assert verify_access_token(mini, body["access_token"], ARM_ALLOWED_AUDIENCES)["aud"] == "https://management.azure.com/"


@pytest.mark.parametrize(("scope", "aud"), [
    ("https://management.azure.com//.default", "https://management.azure.com/"),
    ("https://management.azure.com/.default", "https://management.azure.com"),
    ("https://management.core.windows.net//.default", "https://management.core.windows.net/"),
    ("https://storage.azure.com/.default", "https://storage.azure.com"),
    ("https://graph.microsoft.com/.default", "https://graph.microsoft.com"),
    ("https://VAULT.azure.net/.default", "https://vault.azure.net"),
    ("cfa8b339-82a2-471a-a3c9-0fc0be7a4093/.default", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"),
])
def test_known_resources(mini: MiniLab, scope: str, aud: str) -> None:
    resp = post(mini, secret_form(mini, scope=scope))
    assert resp.status_code == 200, resp.text
    assert jwt.decode(resp.json()["access_token"], options={"verify_signature": False})["aud"] == aud


def test_app_registration_is_a_resource(mini: MiniLab) -> None:
    app_id = mini.principals["no-fic-app"].client_id
    resp = post(mini, secret_form(mini, scope=f"api://{app_id}/.default"))
    assert jwt.decode(resp.json()["access_token"], options={"verify_signature": False})["aud"] == f"api://{app_id}"


def test_wrong_secret_is_7000215(mini: MiniLab) -> None:
    resp = post(mini, secret_form(mini, secret="not-the-secret"))
    assert_aadsts(resp, 7000215, describe(7000215, client_id=mini.credentials["harness"]["client_id"]))


def test_secret_for_a_managed_identity_is_7000215(mini: MiniLab) -> None:
    form = {**secret_form(mini), "client_id": mini.principals["backend"].client_id}
    assert_aadsts(post(mini, form), 7000215)


@pytest.mark.parametrize(("form", "code", "values"), [
    ({}, 900144, {"parameter": "grant_type"}),
    ({"grant_type": "client_credentials", "scope": VAULT_SCOPE}, 900144, {"parameter": "client_id"}),
    ({"grant_type": "password", "client_id": "x", "scope": VAULT_SCOPE}, 70003, {"grant_type": "password"}),
    ({"grant_type": "client_credentials", "client_id": "x"}, 900144, {"parameter": "scope"}),
])
def test_request_shape_errors(mini: MiniLab, form: dict, code: int, values: dict) -> None:
    assert_aadsts(post(mini, form), code, describe(code, **values))


def test_json_body_is_not_a_form(mini: MiniLab) -> None:
    resp = requests.post(token_url(mini), json=secret_form(mini), timeout=10)
    assert_aadsts(resp, 900144, describe(900144, parameter="grant_type"))


def test_get_on_token_endpoint_is_900561(mini: MiniLab) -> None:
    assert_aadsts(requests.get(token_url(mini), timeout=10), 900561)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("version", [1, 2])
def test_any_other_method_on_token_endpoint_is_900561(mini: MiniLab, method: str, version: int) -> None:
    resp = requests.request(method, token_url(mini, version=version), data=secret_form(mini), timeout=10)
    assert_aadsts(resp, 900561, describe(900561, allowed="POST", method=method))


def test_a_lab_bug_is_an_entra_server_error(mini: MiniLab, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.azure import entra

    def boom(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(entra, "scope_resource", boom)
    resp = post(mini, secret_form(mini))
    assert_aadsts(resp, 50000)
    assert "a bug" not in resp.text


def test_scope_without_default_is_1002012(mini: MiniLab) -> None:
    resp = post(mini, secret_form(mini, scope="https://vault.azure.net/user_impersonation"))
    assert_aadsts(resp, 1002012, describe(1002012, scope="https://vault.azure.net/user_impersonation"))
    assert resp.json()["error"] == "invalid_scope"


def test_two_resources_is_70011(mini: MiniLab) -> None:
    scope = "https://vault.azure.net/.default https://storage.azure.com/.default"
    assert_aadsts(post(mini, secret_form(mini, scope=scope)), 70011, describe(70011, scope=scope))


def test_unknown_resource_is_500011_naming_the_tenant(mini: MiniLab) -> None:
    resp = post(mini, secret_form(mini, scope="https://unknown.example.com/.default"))
    text = assert_aadsts(resp, 500011)
    assert text.startswith("AADSTS500011: The resource principal named https://unknown.example.com was not found "
                           "in the tenant named Contoso Lab.")


def test_unknown_client_is_700016(mini: MiniLab) -> None:
    client_id = str(uuid.uuid4())
    form = {**secret_form(mini), "client_id": client_id}
    assert_aadsts(post(mini, form), 700016, describe(700016, client_id=client_id, tenant_name="Contoso Lab"))
    assert post(mini, form).json()["error"] == "unauthorized_client"


def test_no_credential_is_7000216(mini: MiniLab) -> None:
    form = {k: v for k, v in secret_form(mini).items() if k != "client_secret"}
    assert_aadsts(post(mini, form), 7000216)


def test_correlation_id_echoes_client_request_id(mini: MiniLab) -> None:
    request_id = str(uuid.uuid4())
    resp = post(mini, secret_form(mini, secret="wrong"), headers={"client-request-id": request_id})
    assert resp.json()["correlation_id"] == request_id


# ---------------------------------------------------------------------------------------------- assertions
def test_federated_assertion_success(mini: MiniLab) -> None:
    claims = access_claims(mini, post(mini, assertion_form(mini, mini.sa_token())))
    backend = mini.principals["backend"]
    assert claims["appid"] == backend.client_id and claims["appidacr"] == "2"
    assert claims["xms_mirid"] == backend.resource_id and claims["idtyp"] == "app"


def test_assertion_from_any_other_loopback_issuer(mini: MiniLab) -> None:
    claims = access_claims(mini, post(mini, assertion_form(mini, mini.elsewhere_token("ok"))))
    assert claims["appid"] == mini.principals["backend"].client_id


def test_assertion_type_checks(mini: MiniLab) -> None:
    form = assertion_form(mini, mini.sa_token())
    del form["client_assertion_type"]
    assert_aadsts(post(mini, form), 900144, describe(900144, parameter="client_assertion_type"))
    form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    assert_aadsts(post(mini, form), 50027)


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "....."])
def test_malformed_assertion_is_50027(mini: MiniLab, garbage: str) -> None:
    assert_aadsts(post(mini, assertion_form(mini, garbage)), 50027, "AADSTS50027: JWT token is invalid or malformed.")


def test_alg_none_is_5002738(mini: MiniLab) -> None:
    signed = jwt.decode(mini.sa_token(), options={"verify_signature": False})
    forged = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(signed).encode())}."
    assert_aadsts(post(mini, assertion_form(mini, forged)), 5002738, describe(5002738, alg="none"))


def test_hs256_signed_with_the_issuer_public_key_is_5002738(mini: MiniLab) -> None:
    key = mini.cluster_keys.current
    pem = key.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = jwt.decode(mini.sa_token(), options={"verify_signature": False})
    head = b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert_aadsts(post(mini, assertion_form(mini, f"{head}.{body}.{sig}")), 5002738, describe(5002738, alg="HS256"))


def test_missing_iss_is_90014(mini: MiniLab) -> None:
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(iss=None))), 90014,
                  describe(90014, field="iss"))


def test_entra_issued_token_is_700222(mini: MiniLab) -> None:
    access_token, _ = issue_access_token(mini, mini.principals["harness"], EXCHANGE_AUDIENCE, "1")
    assert_aadsts(post(mini, assertion_form(mini, access_token)), 700222, describe(700222))
    sts = mini.sa_token(iss=f"https://sts.windows.net/{mini.tenant_id}/")
    assert_aadsts(post(mini, assertion_form(mini, sts)), 700222)


def test_unknown_client_with_assertion_is_700016(mini: MiniLab) -> None:
    form = {**assertion_form(mini, mini.sa_token()), "client_id": str(uuid.uuid4())}
    assert_aadsts(post(mini, form), 700016)


@pytest.mark.parametrize("client", ["orphan", "no-fic-app"])
def test_principal_without_credentials_is_70025(mini: MiniLab, client: str) -> None:
    principal = mini.principals[client]
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(), client=client)), 70025,
                  f"AADSTS70025: The client '{principal.client_id}'({principal.display_name}) has no configured "
                  "federated identity credentials.")


def test_issuer_without_trailing_slash_is_700211(mini: MiniLab) -> None:
    iss = mini.issuer_url.rstrip("/")
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(iss=iss))), 700211, describe(700211, iss=iss))


def test_subject_mismatch_is_700213(mini: MiniLab) -> None:
    sub = "system:serviceaccount:finance:other-sa"
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(sub=sub))), 700213, describe(700213, sub=sub))


def test_subject_case_mismatch_is_7002138(mini: MiniLab) -> None:
    sub = "system:serviceaccount:Finance:backend-sa"
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(sub=sub))), 7002138, describe(7002138, sub=sub))


def test_audience_mismatch_is_700212(mini: MiniLab) -> None:
    resp = post(mini, assertion_form(mini, mini.sa_token(aud=["api://AKSIdentityBinding"])))
    assert_aadsts(resp, 700212, describe(700212, aud="api://AKSIdentityBinding"))


def test_expired_assertion_is_700024(mini: MiniLab) -> None:
    now = int(time.time())
    text = assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(iat=now - 7200, nbf=now - 7200,
                                                                        exp=now - 3600))), 700024)
    assert re.search(r"Current time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z, assertion valid from "
                     r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.0000000Z, expiry time of assertion", text)


def test_not_yet_valid_assertion_is_700024(mini: MiniLab) -> None:
    now = int(time.time())
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(iat=now + 3600, nbf=now + 3600,
                                                                 exp=now + 7200))), 700024)


def test_entra_clock_skew_expires_a_fresh_token(mini: MiniLab) -> None:
    token = mini.sa_token()
    mini.entra_clock.skew_seconds = 2 * 3600
    text = assert_aadsts(post(mini, assertion_form(mini, token)), 700024)
    shown = re.search(r"Current time: (\d{4})-", text)
    assert shown and mini.entra_clock.utcnow().year == int(shown.group(1))
    mini.entra_clock.skew_seconds = 240  # inside the five minutes of tolerance
    access_claims(mini, post(mini, assertion_form(mini, token)))


def test_lifetime_over_a_day_and_an_hour_is_70023(mini: MiniLab) -> None:
    now = int(time.time())
    token = mini.sa_token(iat=now, nbf=now, exp=now + 365 * 86400)
    assert_aadsts(post(mini, assertion_form(mini, token)), 70023, describe(70023, iat=now, exp=now + 365 * 86400))
    access_claims(mini, post(mini, assertion_form(mini, mini.sa_token(iat=now, nbf=now, exp=now + 86400))))


def test_token_signed_by_another_labs_keys_is_7000272(mini: MiniLab) -> None:
    another_lab = KeySet()
    resp = post(mini, assertion_form(mini, mini.sa_token(key=another_lab.current)))
    assert_aadsts(resp, 7000272, describe(7000272, thumbprint=another_lab.current.kid, issuer=mini.issuer_url))


def test_other_key_presenting_the_published_kid_is_50013(mini: MiniLab) -> None:
    forged = mini.sa_token(key=SigningKey.generate(), headers={"kid": mini.cluster_keys.current.kid})
    assert_aadsts(post(mini, assertion_form(mini, forged)), 50013,
                  describe(50013, thumbprint=mini.cluster_keys.current.kid))


def test_tampered_payload_is_50013(mini: MiniLab) -> None:
    head, _, sig = mini.sa_token(sub="system:serviceaccount:finance:other-sa").split(".")
    real_claims = jwt.decode(mini.sa_token(), options={"verify_signature": False})
    tampered = f"{head}.{b64(json.dumps(real_claims).encode())}.{sig}"
    assert_aadsts(post(mini, assertion_form(mini, tampered)), 50013)


def test_rotated_cluster_keys_keep_old_tokens_valid(mini: MiniLab) -> None:
    """With Entra's metadata cache off, a rotation is seen at once; the retired key keeps old tokens valid."""
    mini.azure.issuer_metadata.seconds = 0
    old_token = mini.sa_token()
    mini.cluster_keys.rotate()
    access_claims(mini, post(mini, assertion_form(mini, old_token)))
    access_claims(mini, post(mini, assertion_form(mini, mini.sa_token())))


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rotation_is_7000272_until_entras_copy_of_the_keys_expires(mini: MiniLab) -> None:
    """Entra keeps the issuer's JWKS (here 60 s): a token signed by the new key is refused with AADSTS7000272
    naming that key while the old copy is fresh, tokens of the old key still pass, and once the copy expires
    Entra fetches again and accepts the new key."""
    clock = FakeClock()
    mini.azure.issuer_metadata.clock = clock
    mini.azure.issuer_metadata.seconds = 60
    mini.azure.issuer_metadata.forget(mini.issuer_url)
    old_token = mini.sa_token()
    access_claims(mini, post(mini, assertion_form(mini, old_token)))  # Entra fetches and keeps the JWKS
    new_key = mini.cluster_keys.rotate()
    new_token = mini.sa_token()
    assert json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))["kid"] == new_key.kid
    clock.now += 59
    assert_aadsts(post(mini, assertion_form(mini, new_token)), 7000272,
                  describe(7000272, thumbprint=new_key.kid, issuer=mini.issuer_url))
    access_claims(mini, post(mini, assertion_form(mini, old_token)))
    clock.now += 1
    access_claims(mini, post(mini, assertion_form(mini, new_token)))


def test_a_new_issuer_whose_keys_came_late_is_7000272_until_expiry(mini: MiniLab) -> None:
    """A new issuer that Entra first read before its JWKS held the signing key: the empty copy is kept, so the
    key published a moment later is not seen until the copy expires."""
    clock = FakeClock()
    mini.azure.issuer_metadata.clock = clock
    mini.azure.issuer_metadata.seconds = 60
    backend = mini.principals["backend"]
    fic = FederatedCredential("new-issuer", mini.elsewhere("new"), PROBE_SUBJECT, [EXCHANGE_AUDIENCE])
    fic.created_at -= 3600
    backend.federated_credentials[fic.name] = fic
    mini.new_issuer_keys.clear()
    token = mini.elsewhere_token("new")
    kid = mini.elsewhere_keys.current.kid
    try:
        expected = describe(7000272, thumbprint=kid, issuer=mini.elsewhere("new"))
        assert_aadsts(post(mini, assertion_form(mini, token)), 7000272, expected)
        mini.new_issuer_keys.extend(mini.elsewhere_keys.jwks()["keys"])  # the issuer publishes its key
        clock.now += 30
        assert_aadsts(post(mini, assertion_form(mini, token)), 7000272, expected)
        clock.now += 30
        access_claims(mini, post(mini, assertion_form(mini, token)))
    finally:
        del backend.federated_credentials[fic.name]
        mini.new_issuer_keys.clear()
        mini.azure.issuer_metadata.forget(mini.elsewhere("new"))


def test_a_failed_fetch_is_not_kept(mini: MiniLab) -> None:
    """Only a key set Entra could read is kept: the issuer answering again is used at once [unverified]."""
    mini.azure.issuer_metadata.forget(mini.issuer_url)
    mini.faults.issuer_unreachable = True
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token())), 50166)
    mini.faults.issuer_unreachable = False
    access_claims(mini, post(mini, assertion_form(mini, mini.sa_token())))
    assert mini.azure.issuer_metadata.age(mini.issuer_url) is not None


def test_issuer_unreachable_fault_is_50166_for_the_cluster_issuer_only(mini: MiniLab) -> None:
    """The fault stands for an outage longer than Entra's cache: a copy Entra held before does not help."""
    access_claims(mini, post(mini, assertion_form(mini, mini.sa_token())))  # Entra holds a fresh copy
    mini.faults.issuer_unreachable = True
    assert_aadsts(post(mini, assertion_form(mini, mini.sa_token())), 50166,
                  "AADSTS50166: Request to External OIDC endpoint failed.")
    access_claims(mini, post(mini, assertion_form(mini, mini.elsewhere_token("ok"))))


def test_issuer_outside_loopback_is_never_fetched(mini: MiniLab) -> None:
    token = mini.sa_token(key=mini.elsewhere_keys.current, iss="https://example.com/issuer/", sub=PROBE_SUBJECT)
    started = time.monotonic()
    assert_aadsts(post(mini, assertion_form(mini, token)), 50166)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("mode", "code"), [
    ("discovery_404", 50166), ("discovery_garbage", 50166), ("jwks_404", 90061), ("jwks_offbox", 90061),
    ("jwks_garbage", 900612),
])
def test_broken_issuers(mini: MiniLab, mode: str, code: int) -> None:
    assert_aadsts(post(mini, assertion_form(mini, mini.elsewhere_token(mode))), code)


def test_slow_issuer_times_out_as_50166(mini: MiniLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entra, "FETCH_TIMEOUT_SECONDS", 0.5)
    assert_aadsts(post(mini, assertion_form(mini, mini.elsewhere_token("slow"))), 50166)


def test_new_credential_counts_only_after_propagation(mini: MiniLab) -> None:
    backend = mini.principals["backend"]
    subject = "system:serviceaccount:finance:new-sa"
    mini.azure.fic_propagation_seconds = 60
    fic = FederatedCredential("fed-cred-new", mini.issuer_url, subject, [EXCHANGE_AUDIENCE])
    backend.federated_credentials[fic.name] = fic
    try:
        assert_aadsts(post(mini, assertion_form(mini, mini.sa_token(sub=subject))), 700213)
        fic.created_at -= 61
        access_claims(mini, post(mini, assertion_form(mini, mini.sa_token(sub=subject))))
    finally:
        del backend.federated_credentials[fic.name]


# ---------------------------------------------------------------------------------------------- faults
def test_throttling_fault_is_429_with_retry_after(mini: MiniLab) -> None:
    mini.faults.services["entra"] = ServiceFaults(rate_429=1.0, retry_after_seconds=7)
    resp = post(mini, secret_form(mini))
    assert resp.headers["Retry-After"] == "7"
    assert_aadsts(resp, 90055, error="temporarily_unavailable", status=429)


def test_unavailable_fault_is_503(mini: MiniLab) -> None:
    mini.faults.services["entra"] = ServiceFaults(rate_503=1.0)
    resp = requests.get(f"{mini.endpoints['entra']}/{mini.tenant_id}/v2.0/.well-known/openid-configuration",
                        timeout=10)
    assert_aadsts(resp, 90033, "AADSTS90033: A transient error has occurred. Please try again.",
                  error="temporarily_unavailable", status=503)


# ---------------------------------------------------------------------------------------------- logs
def test_logs_hold_no_secret_and_no_assertion(mini: MiniLab, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lab.entra")
    secret = mini.credentials["harness"]["client_secret"]
    good, forged = mini.sa_token(), mini.sa_token(key=SigningKey.generate())
    post(mini, secret_form(mini))
    post(mini, secret_form(mini, secret=secret + "x"))
    post(mini, assertion_form(mini, good))
    post(mini, assertion_form(mini, forged))
    post(mini, assertion_form(mini, "garbage.garbage.garbage"))
    deadline = time.monotonic() + 5
    while caplog.text.count("entra token") < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    text = caplog.text
    assert text.count("entra token") >= 5
    assert BACKEND_SUBJECT in text and "sha256:" in text and "AADSTS7000272" in text
    for value in (secret, secret + "x", good, forged, *good.split("."), *forged.split(".")):
        assert value not in text


# ---------------------------------------------------------------------------------------------- real clients
def test_azure_identity_client_secret_credential(mini: MiniLab) -> None:
    harness = mini.credentials["harness"]
    credential = ClientSecretCredential(mini.tenant_id, harness["client_id"], harness["client_secret"],
                                        authority=mini.authority_host, disable_instance_discovery=True)
    token = credential.get_token("https://management.azure.com/.default")
    claims = verify_access_token(mini, token.token, ARM_ALLOWED_AUDIENCES)
    assert claims["appid"] == harness["client_id"] and token.expires_on > time.time() + 3000


def test_azure_identity_client_secret_credential_wrong_secret(mini: MiniLab) -> None:
    harness = mini.credentials["harness"]
    credential = ClientSecretCredential(mini.tenant_id, harness["client_id"], "nope",
                                        authority=mini.authority_host, disable_instance_discovery=True)
    with pytest.raises(ClientAuthenticationError) as excinfo:
        credential.get_token(VAULT_SCOPE)
    assert "AADSTS7000215: Invalid client secret provided." in str(excinfo.value)


def _workload_env(mini: MiniLab, monkeypatch: pytest.MonkeyPatch, token_file: Path, token: str) -> None:
    token_file.write_text(token)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", mini.authority_host)  # as the webhook injects it (trailing /)
    monkeypatch.setenv("AZURE_TENANT_ID", mini.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", mini.principals["backend"].client_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))


def test_azure_identity_workload_identity_credential(mini: MiniLab, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    _workload_env(mini, monkeypatch, tmp_path / "azure-identity-token", mini.sa_token())
    token = WorkloadIdentityCredential().get_token(VAULT_SCOPE)
    claims = verify_access_token(mini, token.token, [KEYVAULT_AUDIENCE])
    assert claims["appidacr"] == "2" and claims["xms_mirid"] == mini.principals["backend"].resource_id


def test_azure_identity_workload_identity_credential_error(mini: MiniLab, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    sub = "system:serviceaccount:finance:wrong-sa"
    _workload_env(mini, monkeypatch, tmp_path / "azure-identity-token", mini.sa_token(sub=sub))
    with pytest.raises(ClientAuthenticationError) as excinfo:
        WorkloadIdentityCredential().get_token(VAULT_SCOPE)
    message = str(excinfo.value)
    assert message.startswith(f"Microsoft Entra ID error '(invalid_client) {describe(700213, sub=sub)} Trace ID: ")
    assert '"error_codes": [700213]' in message or '"error_codes":[700213]' in message


def test_azure_identity_client_assertion_credential(mini: MiniLab) -> None:
    calls = []

    def assertion() -> str:
        calls.append(1)
        return mini.sa_token()

    credential = ClientAssertionCredential(mini.tenant_id, mini.principals["backend"].client_id, assertion,
                                           authority=mini.endpoints["entra"])
    token = credential.get_token("https://storage.azure.com/.default")
    assert verify_access_token(mini, token.token, ["https://storage.azure.com"])["appidacr"] == "2"
    assert calls == [1]


def test_msal_with_client_assertion(mini: MiniLab) -> None:
    app = msal.ConfidentialClientApplication(
        mini.principals["backend"].client_id, authority=f"{mini.endpoints['entra']}/{mini.tenant_id}",
        client_credential={"client_assertion": mini.sa_token}, instance_discovery=False)
    result = app.acquire_token_for_client([VAULT_SCOPE])
    assert "access_token" in result, result
    assert result["token_source"] == "identity_provider"
    assert verify_access_token(mini, result["access_token"], [KEYVAULT_AUDIENCE])["appidacr"] == "2"


def test_msal_error_is_returned_as_dict(mini: MiniLab) -> None:
    app = msal.ConfidentialClientApplication(
        mini.principals["backend"].client_id, authority=f"{mini.endpoints['entra']}/{mini.tenant_id}",
        client_credential={"client_assertion": lambda: mini.sa_token(aud=["api://wrong"])},
        instance_discovery=False)
    result = app.acquire_token_for_client([VAULT_SCOPE])
    assert result["error"] == "invalid_client" and result["error_codes"] == [700212]


def test_msal_with_secret_by_tenant_domain(mini: MiniLab) -> None:
    harness = mini.credentials["harness"]
    app = msal.ConfidentialClientApplication(
        harness["client_id"], authority=f"{mini.endpoints['entra']}/contosolab.onmicrosoft.com",
        client_credential=harness["client_secret"], validate_authority=False)
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert "access_token" in result, result


def test_msal_with_the_lab_instance_discovery_endpoint(mini: MiniLab) -> None:
    harness = mini.credentials["harness"]
    app = msal.ConfidentialClientApplication(
        harness["client_id"], authority=f"{mini.endpoints['entra']}/{mini.tenant_id}",
        client_credential=harness["client_secret"],
        instance_discovery=f"{mini.endpoints['entra']}/common/discovery/instance")
    assert "access_token" in app.acquire_token_for_client([VAULT_SCOPE])


class LoopbackOnly(requests.Session):
    """An MSAL http_client that records (and refuses) any request that would leave the machine."""

    def __init__(self) -> None:
        super().__init__()
        self.outside: list[str] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if urlsplit(url).hostname != "127.0.0.1":
            self.outside.append(url)
            raise requests.ConnectionError(f"offline: {url}")
        return super().request(method, url, *args, **kwargs)


def test_msal_defaults_validate_the_authority_at_login_microsoftonline_com(mini: MiniLab) -> None:
    """Why ClientSecretCredential needs disable_instance_discovery=True and MSAL instance_discovery=False."""
    harness = mini.credentials["harness"]
    session = LoopbackOnly()
    with pytest.raises(requests.ConnectionError):
        msal.ConfidentialClientApplication(harness["client_id"],
                                           authority=f"{mini.endpoints['entra']}/{mini.tenant_id}",
                                           client_credential=harness["client_secret"], http_client=session)
    assert session.outside[0].startswith("https://login.microsoftonline.com/common/discovery/instance")
