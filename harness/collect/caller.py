"""Who runs the harness, as Kubernetes and Azure see it, for the sign-off document's header.

Kubernetes: a SelfSubjectReview (``kubectl auth whoami``'s call). Azure: the identity claims of the harness's
own ARM token, decoded; the token itself never leaves the ARM seam.
"""

from __future__ import annotations

from typing import Any

from harness.collect.kube_api import KubeApi, KubeError
from harness.values import printable

# The claims that say who a caller is (an app: appid/oid/idtyp; a person: upn/oid/name); nothing else is kept.
CALLER_CLAIMS = ("appid", "azp", "oid", "upn", "unique_name", "name", "tid", "idtyp", "xms_mirid")


def kubernetes_user(kube: KubeApi) -> dict[str, Any]:
    """``{username, uid, groups}`` from a SelfSubjectReview, or ``{error}`` when the API server refused it (a
    cluster before Kubernetes 1.28 has no authentication.k8s.io/v1 SelfSubjectReview); with ``credential``, how
    the kubeconfig's user signs in (collect.kube_api credential_source, never the token), when the client says."""
    source = getattr(kube, "credential_source", None)  # the official client's; a test's backend may have none
    credential = source() if callable(source) else None
    found = _reviewed_user(kube)
    return {**found, "credential": credential} if credential else found


def _reviewed_user(kube: KubeApi) -> dict[str, Any]:
    try:
        review = kube.self_subject_review()
    except KubeError as exc:
        failure = exc.failure
        return {
            "error": f"SelfSubjectReview: {failure.status} {failure.reason}: "
            f"{printable(failure.message, 200)}"
        }
    user = (review.get("status") or {}).get("userInfo") or {}
    if not isinstance(user, dict) or not user.get("username"):
        return {"error": "SelfSubjectReview: the API server's answer names no user"}
    groups = user.get("groups") if isinstance(user.get("groups"), list) else []
    return {
        "username": str(user["username"]),
        "uid": str(user.get("uid") or ""),
        "groups": [str(g) for g in groups],
    }


def azure_caller(arm: Any) -> dict[str, Any] | None:
    """The harness's Azure identity from its own ARM token's claims (``{error}`` when it got none); None when
    the seam cannot say (a test's fake)."""
    claims_of = getattr(arm, "caller_claims", None)
    if not callable(claims_of):
        return None
    return claims_of()


def identity_claims(claims: dict[str, Any]) -> dict[str, Any]:
    return {name: claims[name] for name in CALLER_CLAIMS if claims.get(name) not in (None, "")}
