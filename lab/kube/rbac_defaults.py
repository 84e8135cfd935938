"""The ClusterRoles and ClusterRoleBindings an API server bootstraps, and the ClusterRole aggregation controller.

The roles are those of upstream's bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy, as its
testdata/cluster-roles.yaml and cluster-role-bindings.yaml list them) that users meet: cluster-admin, the
aggregated admin/edit/view and their ``system:aggregate-to-*`` parts, system:basic-user, system:discovery,
system:public-info-viewer, system:service-account-issuer-discovery and system:auth-delegator. A ClusterRole
with an ``aggregationRule`` gets the union of the rules of the ClusterRoles its selectors match, kept up to
date as they change (pkg/controller/clusterroleaggregation), so a CRD's role labelled aggregate-to-view shows in
``view``.
"""

from __future__ import annotations

import copy
from typing import Any

from lab.kube.labelselector import matches as selector_matches
from lab.kube.store import Obj, ResourceType, Store, WatchEvent

GROUP = "rbac.authorization.k8s.io"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _urls(urls: list[str]) -> dict[str, Any]:
    return {"nonResourceURLs": urls, "verbs": ["get"]}


def _aggregated_by(label: str) -> dict[str, Any]:
    return {"clusterRoleSelectors": [{"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{label}": "true"}}]}


def _to(label: str) -> dict[str, str]:
    return {f"rbac.authorization.k8s.io/aggregate-to-{label}": "true"}


AGGREGATE_TO_VIEW = [
    _rule([""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                 "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                 "services/status"], READ),
    _rule([""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                 "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"], READ),
    _rule([""], ["namespaces"], READ),
    _rule(["discovery.k8s.io"], ["endpointslices"], READ),
    _rule(["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                     "deployments/status", "replicasets", "replicasets/scale", "replicasets/status",
                     "statefulsets", "statefulsets/scale", "statefulsets/status"], READ),
    _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
    _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
    _rule(["extensions"], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                           "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets",
                           "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"], READ),
    _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
    _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], READ),
]
AGGREGATE_TO_EDIT = [
    _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], READ),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
    _rule([""], ["pods/eviction"], ["create"]),
    _rule([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                 "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"], WRITE),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                     "replicasets/scale", "statefulsets", "statefulsets/scale"], WRITE),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], WRITE),
    _rule(["batch"], ["cronjobs", "jobs"], WRITE),
    _rule(["extensions"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
                           "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"],
          WRITE),
    _rule(["policy"], ["poddisruptionbudgets"], WRITE),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
    _rule(["coordination.k8s.io"], ["leases"], ALL),
]
AGGREGATE_TO_ADMIN = [
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _rule([GROUP], ["rolebindings", "roles"], ALL),
]

# name -> (extra labels, aggregationRule or None, rules)
CLUSTER_ROLES: dict[str, tuple[dict[str, str], dict[str, Any] | None, list[dict[str, Any]]]] = {
    "cluster-admin": ({}, None, [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
    "admin": ({}, _aggregated_by("admin"), []),
    "edit": (_to("admin"), _aggregated_by("edit"), []),
    "view": (_to("edit"), _aggregated_by("view"), []),
    "system:aggregate-to-admin": (_to("admin"), None, AGGREGATE_TO_ADMIN),
    "system:aggregate-to-edit": (_to("edit"), None, AGGREGATE_TO_EDIT),
    "system:aggregate-to-view": (_to("view"), None, AGGREGATE_TO_VIEW),
    "system:auth-delegator": ({}, None, [_rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
                                         _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"])]),
    "system:basic-user": ({}, None, [
        _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
        _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])]),
    "system:discovery": ({}, None, [_urls(["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                                           "/openapi/*", "/readyz", "/version", "/version/"])]),
    "system:public-info-viewer": ({}, None, [_urls(["/healthz", "/livez", "/readyz", "/version", "/version/"])]),
    "system:service-account-issuer-discovery": ({}, None, [_urls(["/.well-known/openid-configuration",
                                                                  "/openid/v1/jwks"])]),
}
# ClusterRoleBinding (named as its role) -> the groups it binds
CLUSTER_ROLE_BINDINGS: dict[str, list[str]] = {
    "cluster-admin": ["system:masters"],
    "system:basic-user": ["system:authenticated"],
    "system:discovery": ["system:authenticated"],
    "system:public-info-viewer": ["system:authenticated", "system:unauthenticated"],
    "system:service-account-issuer-discovery": ["system:serviceaccounts"],
}


def _types(store: Store) -> tuple[ResourceType, ResourceType]:
    roles = store.type_for(GROUP, "clusterroles") or ResourceType(GROUP, "v1", "clusterroles", "ClusterRole", False)
    bindings = store.type_for(GROUP, "clusterrolebindings") or ResourceType(
        GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding", False)
    return roles, bindings


def bootstrap(store: Store) -> None:
    """Create the default roles and bindings that are missing (as the API server's post-start hook does), and
    keep aggregated ClusterRoles up to date from now on."""
    roles, bindings = _types(store)
    for name, (labels, aggregation, rules) in CLUSTER_ROLES.items():
        if store.find(roles, "", name) is None:
            role: Obj = {"metadata": {"name": name, "labels": {**BOOTSTRAP_LABELS, **labels},
                                      "annotations": dict(AUTOUPDATE)}, "rules": copy.deepcopy(rules)}
            if aggregation is not None:
                role["aggregationRule"] = aggregation
            store.create(roles, role)
    for name, groups in CLUSTER_ROLE_BINDINGS.items():
        if store.find(bindings, "", name) is None:
            store.create(bindings, {
                "metadata": {"name": name, "labels": dict(BOOTSTRAP_LABELS), "annotations": dict(AUTOUPDATE)},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
                "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": group} for group in groups],
            })
    aggregate(store)
    if not any(isinstance(listener, _Aggregator) for listener in store.listeners):
        store.listeners.append(_Aggregator(store))


def _union(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for rule in rules:
        if rule not in merged:
            merged.append(copy.deepcopy(rule))
    return merged


def aggregate(store: Store) -> None:
    """Set each aggregated ClusterRole's rules to the union of those of the ClusterRoles it selects, until
    nothing changes (edit aggregates into admin, view into edit)."""
    roles, _ = _types(store)
    for _ in range(5):
        changed = False
        every = list(store.objects.get(roles.group_resource, {}).values())
        for role in every:
            selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors")
            if not selectors:
                continue
            name = role["metadata"]["name"]
            picked = [other for other in sorted(every, key=lambda r: r["metadata"]["name"])
                      if other["metadata"]["name"] != name and any(
                          selector_matches(selector, other["metadata"].get("labels") or {}) for selector in selectors)]
            rules = _union([rule for other in picked for rule in other.get("rules") or []])
            if rules != (role.get("rules") or []):
                updated = copy.deepcopy(role)
                updated["rules"] = rules
                store.replace(roles, updated, check_version=False)
                changed = True
        if not changed:
            return


class _Aggregator:
    """A store listener: a ClusterRole changed, so aggregate again (once the change has been recorded)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.busy = False

    def __call__(self, event: WatchEvent) -> None:
        if event.resource != (GROUP, "clusterroles") or self.busy:
            return
        self.busy = True
        try:
            aggregate(self.store)
        finally:
            self.busy = False
