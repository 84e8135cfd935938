"""Who is calling and may they, with the API server's own 401/403 wording.

Authentication: bearer tokens of KubeCluster.users, and ServiceAccount tokens the cluster issued (so pods can
use their kube-api-access token). Authorization: KubeCluster.policy for the lab's users (no entry means
cluster-admin), plus RBAC evaluated from the stored Roles/ClusterRoles and their bindings, which is all a
ServiceAccount gets (the harness's in-cluster RBAC manifests work as on AKS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jwt
from aiohttp import web

from lab.kube import errors
from lab.kube.cluster import KubeCluster, KubeUser
from lab.kube.store import Store

# Paths the API server lets anyone read (system:public-info-viewer), even without credentials.
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ANONYMOUS = KubeUser(name="system:anonymous", token="", groups=["system:unauthenticated"])


@dataclass
class ImpersonatedUser(KubeUser):
    """Who a request runs as under ``kubectl --as`` (lab.kube.impersonation): not one of the lab's own
    users, so no implicit cluster-admin; KubeCluster.policy applies if it names them, else only RBAC."""

    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Attributes:
    """One authorization question, like the API server's authorizer.Attributes for a resource request."""

    verb: str
    resource: str  # plural
    group: str
    namespace: str  # "" for cluster-scoped requests and lists across namespaces
    name: str = ""
    subresource: str = ""

    @property
    def rbac_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(
    request: web.Request, cluster: KubeCluster, api_audiences: list[str] | None = None
) -> KubeUser:
    """The caller; 401 for an unknown token, and for no token except on the public info paths."""
    token = bearer_token(request)
    if token is None:
        if any(request.path == p or request.path.startswith(p + "/") for p in PUBLIC_PATHS):
            return ANONYMOUS
        raise errors.unauthorized()
    user = cluster.users.get(token) or service_account_user(cluster, token, api_audiences or [])
    if user is None:
        raise errors.unauthorized()
    return user


def service_account_user(cluster: KubeCluster, token: str, api_audiences: list[str]) -> KubeUser | None:
    """A ServiceAccount token the cluster issued (TokenRequest or a projected volume): signed by a published
    issuer key, issued by the cluster issuer, for one of the API server's audiences, not expired, and its
    ServiceAccount (and bound pod, if any) still there with the same uid."""
    try:
        key = cluster.issuer_keys.find(str(jwt.get_unverified_header(token).get("kid", "")))
        if key is None:
            return None
        claims = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            issuer=[cluster.issuer_url, *sorted(cluster.accepted_issuers)],
            options={"verify_aud": False, "require": ["exp", "iss", "sub"]},
        )
    except jwt.PyJWTError:
        return None
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    if not set(audiences) & set(api_audiences):
        return None
    info = claims.get("kubernetes.io") or {}
    namespace, account = info.get("namespace", ""), info.get("serviceaccount") or {}
    if not _still_there(cluster, "serviceaccounts", namespace, account):
        return None
    if info.get("pod") and not _still_there(cluster, "pods", namespace, info["pod"]):
        return None
    return KubeUser(
        name=f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{account.get('name', '')}",
        token="",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
    )


def _still_there(cluster: KubeCluster, plural: str, namespace: str, ref: dict) -> bool:
    rt = cluster.store.type_for("", plural)
    found = cluster.store.find(rt, namespace, ref.get("name", "")) if rt else None
    return found is not None and found["metadata"].get("uid") == ref.get("uid")


def forbidden_message(user: KubeUser, attributes: Attributes) -> str:
    subject = errors.resource_ref(attributes.resource, attributes.group)
    if attributes.name:
        subject = f'{subject} "{attributes.name}"'
    scope = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {attributes.verb} resource '
        f'"{attributes.rbac_resource}" in API group "{attributes.group}" {scope}'
    )


def is_unrestricted(cluster: KubeCluster, user: KubeUser) -> bool:
    """A lab user with no KubeCluster.policy entry (the kubeconfig's admin), or anyone in system:masters."""
    own_user = not (user.name.startswith(SERVICE_ACCOUNT_PREFIX) or isinstance(user, ImpersonatedUser))
    return "system:masters" in user.groups or (own_user and user.name not in cluster.policy)


def is_allowed(cluster: KubeCluster, user: KubeUser, attributes: Attributes) -> bool:
    """KubeCluster.policy for the lab's own users (no entry: cluster-admin), and RBAC objects from the store
    for ServiceAccounts and for anyone a (Cluster)RoleBinding names."""
    if "system:masters" in user.groups:
        return True
    lab_user = user.name in cluster.policy or not (
        user.name.startswith(SERVICE_ACCOUNT_PREFIX) or isinstance(user, ImpersonatedUser))
    if lab_user and cluster.authorize(
        user, attributes.verb, attributes.rbac_resource, attributes.group, attributes.namespace
    ):
        return True
    return any(
        rule_matches(rule, attributes) for rule in rbac_rules(cluster.store, user, attributes.namespace)
    )


# ---------------------------------------------------------------- RBAC from stored objects

BOOTSTRAP_CLUSTER_ROLES = {"cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}


def _subject_matches(subject: dict, user: KubeUser) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{subject.get('namespace', '')}:{name}"
    return False


def _role_rules(store: Store, ref: dict, namespace: str) -> list[dict]:
    kind, name = ref.get("kind"), ref.get("name", "")
    plural = {"ClusterRole": "clusterroles", "Role": "roles"}.get(kind or "")
    rt = store.type_for("rbac.authorization.k8s.io", plural) if plural else None
    role = store.find(rt, namespace if kind == "Role" else "", name) if rt else None
    if role is None:
        return list(BOOTSTRAP_CLUSTER_ROLES.get(name, [])) if kind == "ClusterRole" else []
    return [rule for rule in role.get("rules") or [] if isinstance(rule, dict)]


def rbac_rules(store: Store, user: KubeUser, namespace: str) -> list[dict]:
    """Rules from the user's ClusterRoleBindings, and from its RoleBindings in ``namespace``."""
    rules: list[dict] = []
    bindings = [("clusterrolebindings", "")] + ([("rolebindings", namespace)] if namespace else [])
    for plural, scope in bindings:
        rt = store.type_for("rbac.authorization.k8s.io", plural)
        if rt is None:
            continue
        for binding in store.list(rt, scope or None)[0]:
            if any(_subject_matches(s, user) for s in binding.get("subjects") or [] if isinstance(s, dict)):
                rules.extend(_role_rules(store, binding.get("roleRef") or {}, scope))
    return rules


def rule_matches(rule: dict, attributes: Attributes) -> bool:
    def has(field: str, value: str) -> bool:
        values = rule.get(field) or []
        return "*" in values or value in values

    resources = rule.get("resources") or []
    resource_hit = has("resources", attributes.rbac_resource) or (
        attributes.subresource
        and (f"{attributes.resource}/*" in resources or f"*/{attributes.subresource}" in resources)
    )
    names = rule.get("resourceNames") or []
    return bool(
        has("verbs", attributes.verb)
        and has("apiGroups", attributes.group)
        and resource_hit
        and (not names or attributes.name in names)
    )


def require(cluster: KubeCluster, user: KubeUser, attributes: Attributes) -> None:
    if not is_allowed(cluster, user, attributes):
        raise errors.forbidden(
            forbidden_message(user, attributes),
            name=attributes.name,
            plural=attributes.resource,
            group=attributes.group,
        )
