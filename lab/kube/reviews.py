"""Requests that compute an answer instead of storing an object: SelfSubjectAccessReview (``auth can-i``),
SelfSubjectRulesReview (``auth can-i --list``), SelfSubjectReview (``auth whoami``), TokenReview and
SubjectAccessReview (what webhooks and proxies ask the API server), and TokenRequest
(``create token``, the ``serviceaccounts/token`` subresource)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt

from lab.clock import rfc3339
from lab.kube import errors, tokens
from lab.kube.authz import (
    Attributes,
    ImpersonatedUser,
    is_allowed,
    is_unrestricted,
    rbac_rules,
    service_account_user,
)
from lab.kube.cluster import KubeUser
from lab.kube.store import Obj

if TYPE_CHECKING:
    from lab.runtime import Lab

BINDABLE_KINDS = {"Pod": ("", "pods", True), "Secret": ("", "secrets", True), "Node": ("", "nodes", False)}


def _review(kind: str, group: str, body: Obj, status: dict[str, Any]) -> Obj:
    return {
        "kind": kind,
        "apiVersion": f"{group}/v1",
        "metadata": {
            "creationTimestamp": None,
            **{
                k: v
                for k, v in (body.get("metadata") or {}).items()
                if k in ("name", "labels", "annotations")
            },
        },
        "spec": body.get("spec") or {},
        "status": status,
    }


def _non_resource_matches(rule: Obj, path: str, verb: str) -> bool:
    """rbac.NonResourceURLMatches and VerbMatches: "*", a prefix ending in "*", or the exact path."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and verb not in verbs:
        return False
    return any(url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1]))
               for url in rule.get("nonResourceURLs") or [])


def self_subject_access_review(lab: Lab, user: KubeUser, body: Obj, kind: str = "SelfSubjectAccessReview") -> Obj:
    spec = body.get("spec") or {}
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        attributes = Attributes(
            verb=resource.get("verb", ""),
            resource=resource.get("resource", ""),
            group=resource.get("group", ""),
            namespace=resource.get("namespace", ""),
            name=resource.get("name", ""),
            subresource=resource.get("subresource", ""),
        )
        allowed = is_allowed(lab.kube, user, attributes)
    elif isinstance(spec.get("nonResourceAttributes"), dict):
        path, verb = spec["nonResourceAttributes"].get("path", ""), spec["nonResourceAttributes"].get("verb", "")
        allowed = is_unrestricted(lab.kube, user) or any(
            _non_resource_matches(rule, path, verb) for rule in rbac_rules(lab.kube.store, user, ""))
    else:
        raise errors.ApiError(
            422,
            "Invalid",
            f'{kind}.authorization.k8s.io "" is invalid: '
            'spec.resourceAttributes: Invalid value: "null": exactly one of '
            "nonResourceAttributes or resourceAttributes must be specified",
            {"kind": kind, "group": "authorization.k8s.io"},
        )
    return _review(kind, "authorization.k8s.io", body, {"allowed": allowed})


def self_subject_rules_review(lab: Lab, user: KubeUser, body: Obj) -> Obj:
    namespace = (body.get("spec") or {}).get("namespace", "")
    rules = lab.kube.policy.get(user.name)
    if is_unrestricted(lab.kube, user):
        resource_rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        non_resource_rules = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    else:
        resource_rules = [
            {"verbs": list(rule.verbs), "apiGroups": list(rule.groups), "resources": list(rule.resources)}
            for rule in rules or []
            if "*" in rule.namespaces or namespace in rule.namespaces
        ]
        resource_rules += [
            {
                key: list(rule.get(key) or [])
                for key in ("verbs", "apiGroups", "resources", "resourceNames")
                if rule.get(key)
            }
            for rule in rbac_rules(lab.kube.store, user, namespace)
            if rule.get("resources")
        ]
        # from the bound ClusterRoles: system:discovery, system:public-info-viewer, and for ServiceAccounts
        # system:service-account-issuer-discovery (lab.kube.rbac_defaults)
        non_resource_rules = [
            {"verbs": list(rule.get("verbs") or []), "nonResourceURLs": list(rule["nonResourceURLs"])}
            for rule in rbac_rules(lab.kube.store, user, namespace)
            if rule.get("nonResourceURLs")
        ]
    status = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}
    return _review("SelfSubjectRulesReview", "authorization.k8s.io", body, status)


def _user_info(user: KubeUser) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name}
    if isinstance(user, ImpersonatedUser) and user.uid:
        info["uid"] = user.uid
    info["groups"] = list(user.groups)
    if isinstance(user, ImpersonatedUser) and user.extra:
        info["extra"] = {key: list(values) for key, values in user.extra.items()}
    return info


def self_subject_review(user: KubeUser, body: Obj) -> Obj:
    review = _review(
        "SelfSubjectReview",
        "authentication.k8s.io",
        body,
        {"userInfo": _user_info(user)},
    )
    review.pop("spec")
    return review


# ---------------------------------------------------------------- TokenRequest


def _bound_object(lab: Lab, namespace: str, ref: dict[str, Any]) -> Obj:
    kind = ref.get("kind", "")
    if kind not in BINDABLE_KINDS:
        raise errors.bad_request(f"cannot bind token for object of kind {kind!r}: only Pod, Secret and Node")
    group, plural, namespaced = BINDABLE_KINDS[kind]
    rt = lab.kube.store.type_for(group, plural)
    if rt is None:
        raise errors.not_found(plural, group, ref.get("name", ""))
    obj = lab.kube.store.get(rt, namespace if namespaced else "", ref.get("name", ""))
    uid = ref.get("uid")
    if uid and uid != obj["metadata"]["uid"]:
        raise errors.conflict(
            plural,
            group,
            ref.get("name", ""),
            f"the UID in the bound object reference ({uid}) does not match the UID in record. "
            "The object might have been deleted and then recreated",
        )
    return obj


def token_request(lab: Lab, namespace: str, service_account: Obj, body: Obj) -> tuple[Obj, list[str]]:
    """Issue a token for ``service_account``; returns the TokenRequest response and warnings."""
    name = service_account["metadata"]["name"]
    spec = body.get("spec") or {}
    expiration = spec.get("expirationSeconds")
    problem = tokens.validate_expiration(expiration) if expiration is not None else None
    if problem:
        raise errors.invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            [("FieldValueInvalid", tokens.EXPIRATION_FIELD, problem)],
        )
    audiences = list(spec.get("audiences") or default_audiences(lab))
    ref = spec.get("boundObjectRef")
    bound = _bound_object(lab, namespace, ref) if isinstance(ref, dict) and ref.get("name") else None
    token, expires = tokens.issue_service_account_token(
        lab, namespace, service_account, audiences, expiration, bound
    )
    response_spec: dict[str, Any] = {
        "audiences": audiences,
        "expirationSeconds": tokens.effective_expiration(expiration),
    }
    if bound is not None:
        response_spec["boundObjectRef"] = {
            "kind": bound["kind"],
            "apiVersion": bound["apiVersion"],
            "name": bound["metadata"]["name"],
            "uid": bound["metadata"]["uid"],
        }
    response = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339()},
        "spec": response_spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
    }
    warning = tokens.expiration_warning(expiration)
    return response, [warning] if warning else []


def default_audiences(lab: Lab) -> list[str]:
    """The API server's own audiences (--api-audiences): on AKS its URL; here the lab's kube endpoint."""
    return [lab.endpoints.get("kube", "https://kubernetes.default.svc")]


# ---------------------------------------------------------------- TokenReview and SubjectAccessReview


def token_review(lab: Lab, body: Obj) -> Obj:
    """authentication.k8s.io TokenReview (registry/authentication/tokenreview): the API server's authenticators
    run on spec.token for spec.audiences (none: the API server's own); an empty token is a 400, a token the
    authenticators refuse answers authenticated false with an empty user."""
    spec = body.get("spec") or {}
    token = spec.get("token") or ""
    if not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    wanted = list(spec.get("audiences") or []) or default_audiences(lab)
    user = lab.kube.users.get(token)
    audiences = wanted
    if user is None:
        user = service_account_user(lab.kube, token, wanted)
        audiences = [audience for audience in wanted if audience in _token_audiences(token)]
    status: dict[str, Any] = {"user": {}}
    if user is not None:
        status = {"authenticated": True, "user": _user_info(user), "audiences": audiences}
    return _review("TokenReview", "authentication.k8s.io", body, status)


def _token_audiences(token: str) -> list[str]:
    try:
        audiences = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        return []
    return audiences if isinstance(audiences, list) else [audiences]


def subject_access_review(lab: Lab, body: Obj) -> Obj:
    """authorization.k8s.io SubjectAccessReview: the access review for the user and groups the spec names
    (ValidateSubjectAccessReviewSpec wants a user or a group); the lab's own users keep their policy."""
    spec = body.get("spec") or {}
    if not spec.get("user") and not spec.get("groups"):
        message = 'Invalid value: "": at least one of user or group must be specified'
        raise errors.ApiError(
            422, "Invalid", f'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: {message}',
            {"kind": "SubjectAccessReview", "group": "authorization.k8s.io",
             "causes": [{"reason": "FieldValueInvalid", "message": message, "field": "spec.user"}]})
    extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
    subject = ImpersonatedUser(name=spec.get("user") or "", token="", groups=list(spec.get("groups") or []),
                               uid=spec.get("uid") or "", extra={k: list(v) for k, v in extra.items()})
    return self_subject_access_review(lab, subject, body, kind="SubjectAccessReview")
