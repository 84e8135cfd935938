"""The API's resource types: the built-in ones the lab serves, and the ones CustomResourceDefinitions add.

``ensure_builtin_types(store)`` registers every built-in type once; call it before putting objects in a
fresh store (scenario code does, and so does ``apiserver.build_app``). A CRD object in the store is the
source of truth for its custom resource: which versions are served, printer columns, subresources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.kube import errors
from lab.kube.store import Obj, ResourceType, Store

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)


def _type(group: str, version: str, plural: str, kind: str, namespaced: bool, **extra: Any) -> ResourceType:
    extra.setdefault("verbs", ALL_VERBS)
    extra.setdefault("singular", kind.lower())
    return ResourceType(
        group=group, version=version, plural=plural, kind=kind, namespaced=namespaced, **extra
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    # core/v1
    _type(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _type("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",), subresources=("token",)),
    _type(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short_names=("po",),
        categories=("all",),
        subresources=("log", "status", "exec", "attach", "portforward", "ephemeralcontainers", "eviction"),
    ),
    _type("", "v1", "events", "Event", True, short_names=("ev",)),
    _type("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    _type("", "v1", "secrets", "Secret", True),
    _type(
        "",
        "v1",
        "services",
        "Service",
        True,
        short_names=("svc",),
        categories=("all",),
        subresources=("status",),
    ),
    _type("", "v1", "nodes", "Node", False, short_names=("no",), subresources=("status",)),
    _type("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
    _type("", "v1", "resourcequotas", "ResourceQuota", True, short_names=("quota",), subresources=("status",)),
    _type("", "v1", "limitranges", "LimitRange", True, short_names=("limits",)),
    # apps/v1
    _type(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _type(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        True,
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
    ),
    # apps/v1 StatefulSets: pods <name>-<ordinal> made in order by lab.kube.statefulsets
    _type(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        short_names=("sts",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _type(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    # batch/v1: Jobs run by lab.kube.jobs; CronJobs stored only (no CronJob controller)
    _type("batch", "v1", "jobs", "Job", True, categories=("all",), subresources=("status",)),
    _type(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        True,
        short_names=("cj",),
        categories=("all",),
        subresources=("status",),
    ),
    _type("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _type("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",),
          subresources=("status",)),
    _type("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",)),
    # events.k8s.io/v1: a view of the core/v1 Events (lab.kube.events_v1)
    _type("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",),
          verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    # metrics.k8s.io/v1beta1: metrics-server's API, computed per request (lab.kube.metrics)
    _type("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True, verbs=("get", "list")),
    _type("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", False, verbs=("get", "list")),
    # networking.k8s.io/v1: enforced for lab pods' egress by their relays (lab.egress)
    _type("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",)),
    # coordination.k8s.io/v1: the kubelet's node Lease in kube-node-lease (lab.kube.node)
    _type("coordination.k8s.io", "v1", "leases", "Lease", True),
    # rbac.authorization.k8s.io/v1 (stored only: the lab authorizes with KubeCluster.policy)
    _type("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _type("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _type("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _type("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # admissionregistration.k8s.io/v1
    _type(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
        categories=("api-extensions",),
    ),
    _type(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
        categories=("api-extensions",),
    ),
    # apiextensions.k8s.io/v1
    _type(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
    ),
    # reviews: create-only, never stored
    _type(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=CREATE_ONLY,
    ),
    _type(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        verbs=CREATE_ONLY,
    ),
    _type("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=CREATE_ONLY),
    _type("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY),
    _type("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=CREATE_ONLY),
)

BUILTIN_GROUPS = tuple(dict.fromkeys(rt.group for rt in BUILTIN_TYPES))
REVIEW_RESOURCES = {(rt.group, rt.plural) for rt in BUILTIN_TYPES if rt.verbs == CREATE_ONLY}
CRD_TYPE = next(rt for rt in BUILTIN_TYPES if rt.plural == "customresourcedefinitions")
NAMESPACE_TYPE = next(rt for rt in BUILTIN_TYPES if rt.plural == "namespaces")


@dataclass(frozen=True)
class Subresource:
    """How a subresource shows in discovery: its kind (and group/version when not the parent's) and verbs."""

    kind: str | None  # None: the parent's kind
    verbs: tuple[str, ...]
    group: str | None = None
    version: str | None = None


SUBRESOURCES: dict[str, Subresource] = {
    "status": Subresource(None, ("get", "patch", "update")),
    "log": Subresource(None, ("get",)),
    "token": Subresource("TokenRequest", ("create",), group="authentication.k8s.io", version="v1"),
    "finalize": Subresource(None, ("update",)),
    "scale": Subresource("Scale", ("get", "patch", "update"), group="autoscaling", version="v1"),
    "exec": Subresource("PodExecOptions", ("create", "get")),
    "attach": Subresource("PodAttachOptions", ("create", "get")),
    "portforward": Subresource("PodPortForwardOptions", ("create", "get")),
    "ephemeralcontainers": Subresource(None, ("get", "patch", "update")),
    "eviction": Subresource("Eviction", ("create",), group="policy", version="v1"),
}


def ensure_builtin_types(store: Store) -> None:
    """Register every built-in resource type not registered yet (idempotent), and the types of stored CRDs."""
    for rt in BUILTIN_TYPES:
        if store.type_for(rt.group, rt.plural) is None:
            store.register(rt)
    for crd in list(store.objects.get(CRD_TYPE.group_resource, {}).values()):
        rt = resource_type_from_crd(crd)
        if rt is not None and store.type_for(rt.group, rt.plural) != rt:
            store.register(rt)


def is_builtin(rt: ResourceType) -> bool:
    return rt in BUILTIN_TYPES


# ---------------------------------------------------------------- custom resources


def storage_version(crd: Obj) -> dict[str, Any] | None:
    versions = crd.get("spec", {}).get("versions") or []
    stored = [v for v in versions if v.get("storage")]
    served = [v for v in versions if v.get("served", True)]
    return (stored or served or [None])[0]


def resource_type_from_crd(crd: Obj) -> ResourceType | None:
    """The ResourceType a CRD defines (served at its storage version), or None when the spec is unusable."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    version = storage_version(crd)
    if not (
        spec.get("group") and names.get("plural") and names.get("kind") and version and version.get("name")
    ):
        return None
    subresources = tuple(name for name in ("status", "scale") if name in (version.get("subresources") or {}))
    return ResourceType(
        group=spec["group"],
        version=version["name"],
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        singular=names.get("singular") or names["kind"].lower(),
        short_names=tuple(names.get("shortNames") or ()),
        subresources=subresources,
        categories=tuple(names.get("categories") or ()),
        verbs=ALL_VERBS,
    )


def crd_for(store: Store, rt: ResourceType) -> Obj | None:
    if is_builtin(rt):
        return None
    return store.find(CRD_TYPE, "", f"{rt.plural}.{rt.group}")


def served_versions(store: Store, rt: ResourceType) -> list[str]:
    """Versions a type is served at, preferred first (built-ins: one)."""
    crd = crd_for(store, rt)
    if crd is None:
        return [rt.version]
    versions = [
        v["name"] for v in crd["spec"].get("versions") or [] if v.get("served", True) and v.get("name")
    ]
    versions.sort(key=lambda name: name != rt.version)
    return versions or [rt.version]


def printer_columns(store: Store, rt: ResourceType) -> list[dict[str, Any]]:
    """A CRD version's additionalPrinterColumns (empty for built-ins and CRDs without any)."""
    crd = crd_for(store, rt)
    if crd is None:
        return []
    version = next((v for v in crd["spec"].get("versions") or [] if v.get("name") == rt.version), None)
    return list((version or {}).get("additionalPrinterColumns") or [])


def all_groups(store: Store) -> dict[str, list[ResourceType]]:
    """Group name -> its types, built-in groups first in the API server's order, then CRD groups by name."""
    grouped: dict[str, list[ResourceType]] = {}
    for group in BUILTIN_GROUPS:
        grouped[group] = []
    for rt in sorted(store.types.values(), key=lambda t: (t.group, t.plural)):
        grouped.setdefault(rt.group, []).append(rt)
    return {group: types for group, types in grouped.items() if types}


_KINDS = {"pods": "Pod", "events": "Event", "configmaps": "ConfigMap", "secrets": "Secret",
          "serviceaccounts": "ServiceAccount", "nodes": "Node"}


def core_type(store: Store, plural: str) -> ResourceType:
    """The registered core/v1 type, or an equivalent one (the store buckets by (group, plural) either way)."""
    return store.type_for("", plural) or ResourceType("", "v1", plural, _KINDS[plural], plural != "nodes")


def pods_controlled_by(store: Store, owner: Obj) -> list[Obj]:
    """The pods of ``owner``'s namespace whose controller ownerReference is ``owner`` (a StatefulSet's, a Job's)."""
    uid = owner["metadata"]["uid"]
    return [pod for pod in store.list(core_type(store, "pods"), owner["metadata"]["namespace"])[0]
            if any(ref.get("uid") == uid and ref.get("controller")
                   for ref in pod["metadata"].get("ownerReferences") or [])]


# ---------------------------------------------------------------- field selectors

# The field labels each built-in resource supports beyond metadata.name / metadata.namespace
# (the registries' GetAttrs / AddFieldLabelConversionFunc lists); anything else is a 400.
FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                             "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                             "status.podIPs", "status.nominatedNodeName"}),
    ("", "events"): frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}),
    ("", "secrets"): frozenset({"type"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
    ("batch", "jobs"): frozenset({"status.successful"}),
}


def check_field_selector(rt: ResourceType, selector: str | None) -> None:
    """400 ``field label not supported: X`` for a field the resource cannot be selected by, as the API server."""
    if not selector:
        return
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(rt.group_resource, frozenset())
    for part in selector.split(","):
        label = part.split("!=")[0].split("==")[0].split("=")[0].strip()
        if label and label not in allowed:
            raise errors.bad_request(f"field label not supported: {label}")
