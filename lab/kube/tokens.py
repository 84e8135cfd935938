"""Service account tokens as the AKS API server issues them (TokenRequest and kubelet-projected tokens).

The shape follows kubernetes ``pkg/serviceaccount/claims.go`` (reference §6): header ``{"alg":"RS256",
"kid":...}`` (no ``typ``), claims ``aud`` (a list), ``exp``, ``iat``, ``iss``, ``jti``, ``kubernetes.io``,
``nbf`` (= iat) and ``sub`` = ``system:serviceaccount:<ns>:<sa>``. Go marshals the claims through a map,
so keys come out sorted at every level; we do the same.

Lifetimes:
- TokenRequest defaults ``expirationSeconds`` to 3600 (as does a projected ``serviceAccountToken`` source).
- Validation rejects less than 10 minutes (and more than 2^32 s): :func:`validate_expiration`.
- The API server then shortens anything above ``--service-account-max-token-expiration`` with a warning.
  AKS documents "Maximum token lifetime is 1 day", so the lab caps at 86400 s (:func:`effective_expiration`,
  :func:`expiration_warning`). AKS runs ``--service-account-extend-token-expiration=false`` on k8s >= 1.30,
  so the lab never hands out the extended 1-year kubelet token with ``warnafter``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from lab.kube.issuer import signing_issuer

if TYPE_CHECKING:
    from lab.runtime import Lab

MIN_EXPIRATION_SECONDS = 600  # "may not specify a duration less than 10 minutes"
MAX_VALID_EXPIRATION_SECONDS = 1 << 32  # "may not specify a duration larger than 2^32 seconds"
MAX_EXPIRATION_SECONDS = 86400  # AKS: "Maximum token lifetime is 1 day"
DEFAULT_EXPIRATION_SECONDS = 3600
EXPIRATION_FIELD = "spec.expirationSeconds"


def validate_expiration(seconds: Any) -> str | None:
    """The API server's TokenRequest validation of ``spec.expirationSeconds``; None when valid.

    Returns the field error's message WITHOUT the field path, i.e. what follows ``spec.expirationSeconds: ``,
    so it drops straight into :func:`lab.kube.errors.invalid`::

        problem = validate_expiration(60)
        if problem:
            raise errors.invalid("TokenRequest", "authentication.k8s.io", sa_name,
                                 [("FieldValueInvalid", EXPIRATION_FIELD, problem)])
        # -> 422 'TokenRequest.authentication.k8s.io "default" is invalid: spec.expirationSeconds:
        #         Invalid value: 60: may not specify a duration less than 10 minutes'

    ``None`` means "not given": the caller defaults it to 3600 (validation runs after defaulting in the real
    API server, so None is valid here). The same limits apply to a projected volume's serviceAccountToken
    source, where the pod validation reports the field as
    ``spec.volumes[i].projected.sources[j].serviceAccountToken.expirationSeconds``.
    """
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        # The JSON decoder rejects a non-integer before validation; this is the closest field error.
        return f"Invalid value: {json.dumps(seconds)}: must be an integer"
    if seconds < MIN_EXPIRATION_SECONDS:
        return f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"
    if seconds > MAX_VALID_EXPIRATION_SECONDS:
        return f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
    return None


def effective_expiration(seconds: int | None) -> int:
    """The lifetime a (valid) request actually gets: default 3600, shortened to AKS's one-day maximum."""
    if seconds is None:
        return DEFAULT_EXPIRATION_SECONDS
    return min(int(seconds), MAX_EXPIRATION_SECONDS)


def expiration_warning(seconds: int | None) -> str | None:
    """The API server's ``Warning:`` header text when it shortened a TokenRequest (token REST storage)."""
    if seconds is not None and seconds > MAX_EXPIRATION_SECONDS:
        return f"requested expiration of {seconds} seconds shortened to {MAX_EXPIRATION_SECONDS} seconds"
    return None


def subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def _ref(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or obj
    return {"name": meta.get("name", ""), "uid": meta.get("uid", "")}


def node_identity(lab: Lab, node_name: str) -> dict[str, str]:
    """{name, uid} of the node a pod runs on: the stored Node's uid, else a stable uid derived from the name."""
    store = lab.kube.store
    node_type = store.type_for("", "nodes")
    node = store.find(node_type, "", node_name) if node_type is not None else None
    if node is not None:
        return _ref(node)
    return {"name": node_name, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{lab.issuer_url}node/{node_name}"))}


def _bound_claims(lab: Lab, bound_object: dict[str, Any]) -> dict[str, Any]:
    """The ``kubernetes.io`` entries a boundObjectRef adds.

    ``bound_object`` is either a stored object (a Pod, Secret or Node dict with ``metadata``) or a
    BoundObjectReference-like ``{"kind": "Pod", "name": ..., "uid": ...}``. A pod binding also carries the
    pod's node (ServiceAccountTokenPodNodeInfo, GA in 1.32) when ``spec.nodeName`` is set, or when the
    reference itself has ``"node": {"name", "uid"}``.
    """
    kind = bound_object.get("kind", "Pod")
    claims: dict[str, Any] = {}
    if kind == "Pod":
        claims["pod"] = _ref(bound_object)
        node = bound_object.get("node")
        node_name = (bound_object.get("spec") or {}).get("nodeName")
        if node:
            claims["node"] = {"name": node.get("name", ""), "uid": node.get("uid", "")}
        elif node_name:
            claims["node"] = node_identity(lab, node_name)
    elif kind == "Secret":
        claims["secret"] = _ref(bound_object)
    elif kind == "Node":
        claims["node"] = _ref(bound_object)
    return claims


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    return value


def token_claims(
    lab: Lab,
    namespace: str,
    service_account: dict[str, Any],
    audiences: list[str],
    expiration_seconds: int | None,
    bound_object: dict[str, Any] | None,
    now: float | None = None,
) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    sa_ref = _ref(service_account)
    kubernetes_io: dict[str, Any] = {"namespace": namespace, "serviceaccount": sa_ref}
    if bound_object is not None:
        kubernetes_io.update(_bound_claims(lab, bound_object))
    return _sorted({
        "aud": list(audiences),
        "exp": issued + effective_expiration(expiration_seconds),
        "iat": issued,
        "iss": signing_issuer(lab),
        "jti": str(uuid.uuid4()),
        "kubernetes.io": kubernetes_io,
        "nbf": issued,
        "sub": subject(namespace, sa_ref["name"]),
    })


def issue_service_account_token(
    lab: Lab,
    namespace: str,
    service_account: dict[str, Any],
    audiences: list[str],
    expiration_seconds: int | None,
    bound_object: dict[str, Any] | None,
    now: float | None = None,
) -> tuple[str, int]:
    """Sign a service account token with the cluster issuer's current key; returns (jwt, exp unix time).

    ``service_account`` is the stored ServiceAccount (its ``metadata.name``/``uid`` are used). The caller
    validates ``expiration_seconds`` first (:func:`validate_expiration`); here None means 3600 and anything
    above one day is capped. ``now`` overrides the issue time (tests, clock skew).
    """
    claims = token_claims(lab, namespace, service_account, audiences, expiration_seconds, bound_object, now)
    # typ None: Kubernetes' header is exactly {"alg":"RS256","kid":"..."}; PyJWT would add "typ":"JWT".
    token = lab.kube.issuer_keys.current.sign(claims, headers={"typ": None})
    return token, claims["exp"]
