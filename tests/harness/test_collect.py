"""Collectors at their seams: ARM over requests (token, retries on 429/503 with Retry-After, error bodies,
paging), the issuer's discovery + JWKS, and the kubeconfig token the redactor must know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from harness.collect.arm import collect_identity, list_all
from harness.collect.arm_api import RequestsArm
from harness.collect.http import HttpResponse, HttpUnreachable, fetch_json
from harness.collect.issuer import collect_issuer, discovery_url
from harness.collect.kube_api import kubeconfig_bearer_token
from harness.config import AzureConfig
from harness.facts import Fetched

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"


def azure() -> AzureConfig:
    return AzureConfig.model_validate(
        {
            "cloud": {
                "name": "lab",
                "authority_host": "https://login.test/",
                "resource_manager": "https://arm.test/",
            },
            "tenant_id": TENANT,
            "subscription_id": SUB,
            "resource_group": "rg",
            "cluster_name": "aks",
        }
    )


class Token:
    def __init__(self) -> None:
        self.token, self.expires_on = "arm-token-value", 4_000_000_000


class Credential:
    def __init__(self, fail: bool = False) -> None:
        self.scopes: list[str] = []
        self.fail = fail

    def get_token(self, scope: str) -> Token:
        self.scopes.append(scope)
        if self.fail:
            raise ClientAuthenticationError("AADSTS7000215: Invalid client secret provided.")
        return Token()


class Response:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.content, self.headers = status, json.dumps(body).encode(), headers or {}


class Session:
    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.requests: list[tuple[str, dict[str, str]]] = []

    def get(self, url: str, **kwargs: Any) -> Response:
        self.requests.append((url, kwargs["headers"]))
        return self.responses.pop(0)


def arm_with(*responses: Response, credential: Credential | None = None) -> tuple[RequestsArm, Session, list]:
    sleeps: list[float] = []
    arm = RequestsArm(azure(), credential=credential or Credential(), sleep=sleeps.append)
    session = Session(*responses)
    arm._session = session  # type: ignore[assignment]
    return arm, session, sleeps


def test_arm_get_uses_a_bearer_token_for_the_arm_audience_and_retries_throttling() -> None:
    credential = Credential()
    arm, session, sleeps = arm_with(
        Response(429, {}, {"Retry-After": "2"}),
        Response(503, {}),
        Response(200, {"name": "aks"}),
        credential=credential,
    )
    fetched = arm("/subscriptions/x?api-version=1")
    assert fetched.ok and fetched.body == {"name": "aks"}
    assert credential.scopes == ["https://management.azure.com/.default"]
    assert session.requests[0][0] == "https://arm.test/subscriptions/x?api-version=1"
    assert session.requests[0][1]["Authorization"] == "Bearer arm-token-value"
    assert sleeps[0] == 2.0 and len(sleeps) == 2


def test_arm_errors_keep_code_and_message() -> None:
    arm, _, _ = arm_with(Response(403, {"error": {"code": "AuthorizationFailed", "message": "no read"}}))
    fetched = arm("/x")
    assert (fetched.status, fetched.code, fetched.error) == (403, "AuthorizationFailed", "no read")
    assert "HTTP 403 AuthorizationFailed" in fetched.describe()


def test_a_credential_failure_is_a_fact_not_a_crash() -> None:
    arm, session, _ = arm_with(credential=Credential(fail=True))
    fetched = arm("/x")
    assert (
        fetched.status is None and fetched.code == "CredentialError" and "AADSTS7000215" in str(fetched.error)
    )
    assert session.requests == []


def test_paging_follows_next_link() -> None:
    pages = {
        "/list": Fetched("/list", 200, {"value": [{"id": 1}], "nextLink": "https://arm.test/list?page=2"}),
        "https://arm.test/list?page=2": Fetched("p2", 200, {"value": [{"id": 2}]}),
    }
    items, failed = list_all(pages.__getitem__, "/list")
    assert items == [{"id": 1}, {"id": 2}] and failed is None


def test_identity_found_by_client_id() -> None:
    identity_id = (
        f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    )
    client_id = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"

    def arm(path: str) -> Fetched:
        path = path.split("?")[0]
        if path.endswith("/userAssignedIdentities"):
            return Fetched(
                path, 200, {"value": [{"id": identity_id, "properties": {"clientId": client_id.upper()}}]}
            )
        if path == identity_id:
            return Fetched(path, 200, {"properties": {"clientId": client_id, "principalId": "p"}})
        if path.endswith("/federatedIdentityCredentials"):
            return Fetched(path, 200, {"value": []})
        return Fetched(path, 403, None, "no", "AuthorizationFailed")  # role assignments: evidence only

    facts = collect_identity(arm, azure(), None, client_id)
    assert facts.resource_id == identity_id and facts.resolved_by == "client_id"
    assert facts.federated_credentials == [] and facts.role_assignments is None and facts.error is None
    assert collect_identity(None, None, None, client_id).configured is False


def test_issuer_discovery_then_jwks() -> None:
    issuer = "https://oidc.test/abc/"
    assert discovery_url(issuer) == "https://oidc.test/abc/.well-known/openid-configuration"

    def get(url: str, timeout: float) -> HttpResponse:
        if url.endswith("openid-configuration"):
            return HttpResponse(
                200, json.dumps({"issuer": issuer, "jwks_uri": "https://oidc.test/abc/jwks"}).encode()
            )
        return HttpResponse(200, b'{"keys": []}')

    discovery, jwks = collect_issuer(get, issuer)
    assert discovery.ok and jwks is not None and jwks.body == {"keys": []}


def test_unreachable_and_non_json() -> None:
    def down(url: str, timeout: float) -> HttpResponse:
        raise HttpUnreachable("ConnectionError: refused")

    assert (
        fetch_json(down, "https://x/").describe() == "no response from https://x/: ConnectionError: refused"
    )
    assert (
        fetch_json(lambda u, t: HttpResponse(200, b"<html>"), "https://x/").error
        == "the response is not JSON"
    )


def test_kubeconfig_bearer_token(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "current-context": "a",
                "contexts": [{"name": "a", "context": {"user": "u"}}],
                "users": [{"name": "u", "user": {"token": "kube-token-value"}}],
            }
        )
    )
    assert kubeconfig_bearer_token(path, None) == "kube-token-value"
    assert kubeconfig_bearer_token(path, "other") is None
    assert kubeconfig_bearer_token(tmp_path / "missing", None) is None


@pytest.mark.parametrize(
    "cloud, scope",
    [
        ("AzureChinaCloud", "https://management.chinacloudapi.cn/.default"),
        ("AzureUSGovernment", "https://management.usgovcloudapi.net/.default"),
    ],
)
def test_sovereign_cloud_arm_scope(cloud: str, scope: str) -> None:
    config = AzureConfig.model_validate(
        {
            "cloud": cloud,
            "tenant_id": TENANT,
            "subscription_id": SUB,
            "resource_group": "rg",
            "cluster_name": "aks",
        }
    )
    credential = Credential()
    arm = RequestsArm(config, credential=credential)
    arm._session = Session(Response(200, {}))  # type: ignore[assignment]
    arm("/x")
    assert credential.scopes == [scope]
    assert arm.base_url == config.cloud.endpoints.resource_manager.rstrip("/")
