"""User impersonation (``kubectl --as``/``--as-group``/``--as-uid``), as the API server's impersonation filter
does it (apiserver pkg/endpoints/filters/impersonation): every ``Impersonate-*`` header is one request the
caller must be allowed to ``impersonate`` (users, groups, serviceaccounts, uids, userextras/<key>), and
then the request runs as the impersonated identity, with only what RBAC grants that identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from lab.kube import errors
from lab.kube.authz import SERVICE_ACCOUNT_PREFIX, Attributes, ImpersonatedUser, forbidden_message, is_allowed
from lab.kube.cluster import KubeCluster, KubeUser

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
ANONYMOUS = "system:anonymous"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"


@dataclass(frozen=True)
class _Request:
    kind: str  # ServiceAccount, User, Group, UserExtra, UID
    name: str
    namespace: str = ""
    extra_key: str = ""

    def describe(self) -> str:
        # Go's %v of a v1.ObjectReference, for the BadRequest that lists what was asked
        api_version = "authentication.k8s.io/v1" if self.kind in ("UserExtra", "UID") else ""
        return f"{{{self.kind} {self.namespace} {self.name}  {api_version}  {self.extra_key}}}"

    def attributes(self) -> Attributes:
        resource = {"ServiceAccount": "serviceaccounts", "User": "users", "Group": "groups",
                    "UserExtra": "userextras", "UID": "uids"}[self.kind]
        group = "authentication.k8s.io" if self.kind in ("UserExtra", "UID") else ""
        return Attributes(verb="impersonate", resource=resource, group=group, namespace=self.namespace,
                          name=self.name, subresource=self.extra_key)


def _split_service_account(username: str) -> tuple[str, str] | None:
    """serviceaccount.SplitUsername: ``system:serviceaccount:NS:NAME`` with both parts non-empty."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_PREFIX):].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def _requests(headers: CIMultiDictProxy[str]) -> list[_Request]:
    requests: list[_Request] = []
    username = headers.get(USER_HEADER, "")
    if username:
        account = _split_service_account(username)
        requests.append(_Request("ServiceAccount", account[1], account[0]) if account
                        else _Request("User", username))
    requests += [_Request("Group", group) for group in headers.getall(GROUP_HEADER, [])]
    for header, value in headers.items():
        if header.lower().startswith(EXTRA_PREFIX.lower()):
            key = unquote(header[len(EXTRA_PREFIX):].lower())
            requests.append(_Request("UserExtra", value, extra_key=key))
    uid = headers.get(UID_HEADER, "")
    if uid:
        requests.append(_Request("UID", uid))
    if len(requests) > (1 if username else 0) and not username:
        listed = " ".join(request.describe() for request in requests)
        raise errors.bad_request(f"requested [{listed}] without impersonating a user")
    return requests


def impersonate(cluster: KubeCluster, caller: KubeUser, headers: CIMultiDictProxy[str]) -> KubeUser:
    """The identity the request runs as: ``caller`` itself without Impersonate-* headers; 403 naming the
    first thing the caller may not impersonate (as the caller), 400 for groups/uid/extra without a user."""
    requests = _requests(headers)
    if not requests:
        return caller
    username, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    groups_given = bool(headers.getall(GROUP_HEADER, []))
    for request in requests:
        if request.kind == "ServiceAccount":
            username = f"{SERVICE_ACCOUNT_PREFIX}{request.namespace}:{request.name}"
            if not groups_given:
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{request.namespace}"]
        elif request.kind == "User":
            username = request.name
        elif request.kind == "Group":
            groups.append(request.name)
        elif request.kind == "UserExtra":
            extra.setdefault(request.extra_key, []).append(request.name)
        else:
            uid = request.name
        attributes = request.attributes()
        if not is_allowed(cluster, caller, attributes):
            raise errors.forbidden(forbidden_message(caller, attributes), name=attributes.name,
                                   plural=attributes.resource, group=attributes.group)
    if username != ANONYMOUS:
        if not {AUTHENTICATED, UNAUTHENTICATED} & set(groups):
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return ImpersonatedUser(name=username, token="", groups=groups, uid=uid, extra=extra)
