"""Who ran the harness, for the sign-off's header: Kubernetes' SelfSubjectReview through the KubeApi seam, and
the identity claims of the harness's own ARM token, decoded (the token itself never leaves the seam)."""

from __future__ import annotations

import json
from typing import Any

import jwt

from harness.collect.arm_api import RequestsArm
from harness.collect.caller import azure_caller, kubernetes_user
from harness.collect.kube_api import KubeError
from harness.config import AzureConfig
from harness.facts import KubeFailure

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def azure() -> AzureConfig:
    return AzureConfig.model_validate(
        {
            "cloud": {
                "name": "lab",
                "authority_host": "https://login.test/",
                "resource_manager": "https://arm.test/",
            },
            "tenant_id": TENANT,
            "subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333",
            "resource_group": "rg",
            "cluster_name": "aks",
        }
    )


CLAIMS = {
    "aud": "https://management.azure.com/",
    "iss": f"https://sts.windows.net/{TENANT}/",
    "appid": "3f0a1c9e-0000-4000-8000-000000000001",
    "oid": "9b1d7c2e-0000-4000-8000-000000000002",
    "upn": "lead@contoso.example",
    "tid": TENANT,
    "idtyp": "user",
    "scp": "user_impersonation",
    "roles": ["x"],
}
ACCESS_TOKEN = jwt.encode(CLAIMS, "k" * 32, algorithm="HS256")


class Token:
    def __init__(self, value: str) -> None:
        self.token, self.expires_on = value, 4_000_000_000


class Credential:
    def __init__(self, value: str = ACCESS_TOKEN) -> None:
        self.value = value

    def get_token(self, scope: str, tenant_id: str | None = None) -> Token:
        return Token(self.value)


class Response:
    status_code, content, headers = 200, b'{"name": "aks"}', {}


class Session:
    def get(self, url: str, **kwargs: Any) -> Response:
        return Response()


def arm(credential: Credential) -> RequestsArm:
    client = RequestsArm(azure(), credential=credential)
    client._session = Session()  # type: ignore[assignment]
    return client


def test_the_harness_azure_identity_is_its_tokens_identity_claims_only() -> None:
    client = arm(Credential())
    assert client.caller_claims() == {"error": "no token was asked for"}
    assert client("/subscriptions/x").ok
    claims = azure_caller(client)
    assert claims == {k: CLAIMS[k] for k in ("appid", "oid", "upn", "tid", "idtyp")}
    assert ACCESS_TOKEN not in json.dumps(claims)


def test_a_token_that_is_not_a_jwt_is_said_so() -> None:
    client = arm(Credential("opaque-token-value"))
    client("/subscriptions/x")
    assert client.caller_claims() == {"error": "the harness's token is not a JWT: its claims cannot be read"}


def test_a_seam_that_cannot_say_gives_none() -> None:
    assert azure_caller(lambda path, body=None: None) is None


class Kube:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def self_subject_review(self) -> dict[str, Any]:
        if isinstance(self.answer, KubeFailure):
            raise KubeError(self.answer)
        return self.answer


def test_the_kubernetes_user_from_a_self_subject_review() -> None:
    review = {
        "kind": "SelfSubjectReview",
        "status": {
            "userInfo": {
                "username": "alice@contoso.example",
                "uid": "u-1",
                "groups": ["platform-admins", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/credential-id": ["JTI=abc"]},
            }
        },
    }
    assert kubernetes_user(Kube(review)) == {  # type: ignore[arg-type]
        "username": "alice@contoso.example",
        "uid": "u-1",
        "groups": ["platform-admins", "system:authenticated"],
    }


def test_a_cluster_without_self_subject_review_is_one_error_line() -> None:
    missing = KubeFailure(404, "NotFound", "the server could not find the requested resource")
    assert kubernetes_user(Kube(missing)) == {  # type: ignore[arg-type]
        "error": "SelfSubjectReview: 404 NotFound: the server could not find the requested resource"
    }
    assert kubernetes_user(Kube({"status": {}})) == {  # type: ignore[arg-type]
        "error": "SelfSubjectReview: the API server's answer names no user"
    }
