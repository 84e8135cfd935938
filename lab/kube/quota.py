"""ResourceQuota: the API server's admission plugin and the controller that keeps ``status`` (hard, used).

Read from upstream (kubernetes/kubernetes, 1.32-era sources):
- admission, staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go ``CheckRequest``: a
  quota applies when its ``status.hard`` names a resource the evaluator counts and its scopes match; then the
  evaluator's Constraints (``failed quota: NAME: <err>``), usage stats present (``status unknown for quota:
  NAME, resources: ...``), and ``exceeded quota: NAME, requested: ..., used: ..., limited: ...`` where each
  list is ``name=value`` sorted, masked to the exceeded resources. Errors are admission.NewForbidden: 403
  ``<resource> "<name>" is forbidden: <err>``. A request that fits is charged: ``status.used`` grows at once.
  The plugin runs last among the validating plugins (after ValidatingAdmissionWebhook), CREATE only.
- the pod evaluator, pkg/quota/v1/evaluator/core/pods.go: quota on cpu/memory (plain, requests., limits.)
  makes every container and init container state it: ``must specify limits.cpu for: a,b; requests.memory
  for: a``; usage is pod-level requests/limits (containers summed, init containers maxed, sidecars added),
  ``pods`` only for pods not in a terminal phase, ``count/pods`` for every stored pod.
- other resources: the generic object count evaluator, ``count/<resource>[.<group>]`` (and the legacy names
  ``configmaps``, ``secrets``, ``services``, ``persistentvolumeclaims``, ``replicationcontrollers``,
  ``resourcequotas``) on CREATE.
- the ResourceQuota controller recalculates ``status.used`` from the objects (and sets ``status.hard`` from
  ``spec.hard``); here it runs on the next loop turn after any change in the namespace.
The API server's defaulting of container requests from limits is applied when reading a container's requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lab.kube import errors
from lab.kube.quantity import Quantity, add_lists, parse_list, pretty, render_list
from lab.kube.store import Obj, ResourceType, Store

QUOTA_GROUP_RESOURCE = ("", "resourcequotas")
TERMINAL_PHASES = ("Succeeded", "Failed")
# Resources the pod evaluator counts (podResources); hugepages and extended resources are not emulated.
POD_RESOURCES = frozenset({
    "count/pods", "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods",
})
# "it was a mistake, but if a quota tracks cpu or memory related resources, the incoming pod is required to
# have those values set" (pods.go validationSet)
VALIDATION_SET = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu",
                            "limits.memory"})
LEGACY_COUNT_NAMES = {
    ("", "configmaps"): "configmaps", ("", "secrets"): "secrets", ("", "services"): "services",
    ("", "persistentvolumeclaims"): "persistentvolumeclaims",
    ("", "replicationcontrollers"): "replicationcontrollers", ("", "resourcequotas"): "resourcequotas",
}
NOT_COUNTED = {("", "events")}  # the quota configuration ignores events (and the lab need not count them)


def object_count_name(group_resource: tuple[str, str]) -> str:
    group, plural = group_resource
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def _is_pod(group_resource: tuple[str, str]) -> bool:
    return group_resource == ("", "pods")


def counted_names(group_resource: tuple[str, str]) -> frozenset[str]:
    """The quota resource names an object of this type is counted under."""
    if _is_pod(group_resource):
        return POD_RESOURCES
    legacy = LEGACY_COUNT_NAMES.get(group_resource)
    return frozenset({object_count_name(group_resource), *([legacy] if legacy else [])})


# ---------------------------------------------------------------- pods


def _container_lists(container: Obj) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
    """(requests, limits); requests default to limits, as the API server's defaulting does."""
    resources = container.get("resources") if isinstance(container.get("resources"), dict) else {}
    limits = parse_list((resources or {}).get("limits"))
    requests = {**limits, **parse_list((resources or {}).get("requests"))}
    return requests, limits


def _max_lists(into: dict[str, Quantity], other: dict[str, Quantity]) -> None:
    for name, quantity in other.items():
        if name not in into or quantity.value > into[name].value:
            into[name] = quantity


def pod_totals(spec: Obj, index: int) -> dict[str, Quantity]:
    """resourcehelper.PodRequests (index 0) / PodLimits (index 1)."""
    total: dict[str, Quantity] = {}
    for container in spec.get("containers") or []:
        if isinstance(container, dict):
            total = add_lists(total, _container_lists(container)[index])
    sidecars: dict[str, Quantity] = {}
    init_peak: dict[str, Quantity] = {}
    for container in spec.get("initContainers") or []:
        if not isinstance(container, dict):
            continue
        own = _container_lists(container)[index]
        if container.get("restartPolicy") == "Always":
            total = add_lists(total, own)
            sidecars = add_lists(sidecars, own)
            _max_lists(init_peak, sidecars)
        else:
            _max_lists(init_peak, add_lists(own, sidecars))
    _max_lists(total, init_peak)
    return total


def _compute_usage(requests: dict[str, Quantity], limits: dict[str, Quantity]) -> dict[str, Quantity]:
    """podComputeUsageHelper."""
    usage = {"pods": Quantity.count(1)}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            usage[name] = requests[name]
            usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    return usage


def pod_charged(pod: Obj) -> bool:
    """QuotaV1Pod: compute resources (and ``pods``) are charged until the pod ends or is being deleted.
    (Upstream keeps charging a deleting pod until its grace period has passed; the lab stops at once.)"""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in TERMINAL_PHASES and not (pod.get("metadata") or {}).get("deletionTimestamp")


def pod_usage(pod: Obj) -> dict[str, Quantity]:
    usage = {"count/pods": Quantity.count(1)}
    if not pod_charged(pod):
        return usage
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    return add_lists(usage, _compute_usage(pod_totals(spec or {}, 0), pod_totals(spec or {}, 1)))


def pod_constraints(required: Iterable[str], pod: Obj) -> str | None:
    """podEvaluator.Constraints: the ``must specify ...`` text, or None."""
    required_set = set(required) & VALIDATION_SET
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    for container in [*((spec or {}).get("containers") or []), *((spec or {}).get("initContainers") or [])]:
        if not isinstance(container, dict):
            continue
        present = set(_compute_usage(*_container_lists(container)))
        for resource in required_set - present:
            missing.setdefault(resource, set()).add(str(container.get("name", "")))
    if not missing:
        return None
    parts = [f"{resource} for: {','.join(sorted(missing[resource]))}" for resource in sorted(missing)]
    return "must specify " + "; ".join(parts)


def _best_effort(pod: Obj) -> bool:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    containers = [*((spec or {}).get("containers") or []), *((spec or {}).get("initContainers") or [])]
    for container in containers:
        if not isinstance(container, dict):
            continue
        requests, limits = _container_lists(container)
        if any(name in ("cpu", "memory") for name in (*requests, *limits)):
            return False
    return True


def _scope_matches(selector: Obj, pod: Obj) -> bool:
    """podMatchesScopeFunc for one ScopedResourceSelectorRequirement."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    scope = selector.get("scopeName")
    if scope in ("Terminating", "NotTerminating"):
        deadline = (spec or {}).get("activeDeadlineSeconds")
        terminating = isinstance(deadline, int) and not isinstance(deadline, bool) and deadline >= 0
        return terminating if scope == "Terminating" else not terminating
    if scope in ("BestEffort", "NotBestEffort"):
        return _best_effort(pod) if scope == "BestEffort" else not _best_effort(pod)
    if scope == "PriorityClass":
        name = (spec or {}).get("priorityClassName") or ""
        operator, values = selector.get("operator"), list(selector.get("values") or [])
        if operator == "Exists":
            return bool(name)
        if operator == "DoesNotExist":
            return not name
        if operator == "In":
            return bool(name) and name in values
        if operator == "NotIn":
            return not name or name not in values
    return False  # CrossNamespacePodAffinity and unknown scopes: not emulated


def scope_selectors(quota: Obj) -> list[Obj]:
    spec = quota.get("spec") or {}
    selectors = [{"scopeName": scope, "operator": "Exists"} for scope in spec.get("scopes") or []]
    selectors += list((spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return [s for s in selectors if isinstance(s, dict)]


def _matches(quota: Obj, group_resource: tuple[str, str], obj: Obj, hard: dict[str, Quantity]) -> bool:
    """generic.Matches: a resource the evaluator counts is in status.hard, and every scope matches."""
    if not counted_names(group_resource) & set(hard):
        return False
    selectors = scope_selectors(quota)
    if not _is_pod(group_resource):
        return not selectors
    return all(_scope_matches(selector, obj) for selector in selectors)


def object_usage(group_resource: tuple[str, str], obj: Obj) -> dict[str, Quantity]:
    if _is_pod(group_resource):
        return pod_usage(obj)
    return {name: Quantity.count(1) for name in counted_names(group_resource)}


# ---------------------------------------------------------------- admission


def _quotas(store: Store, namespace: str) -> tuple[ResourceType | None, list[Obj]]:
    rt = store.type_for(*QUOTA_GROUP_RESOURCE)
    return rt, (store.list(rt, namespace)[0] if rt is not None and namespace else [])


def _forbidden(rt: ResourceType, obj: Obj, message: str) -> errors.ApiError:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "Unknown"
    return errors.forbidden(f'{errors.resource_ref(rt.plural, rt.group)} "{name}" is forbidden: {message}',
                            name=name, plural=rt.plural, group=rt.group)


def admit(store: Store, rt: ResourceType, obj: Obj, namespace: str, dry_run: bool = False) -> None:
    """The ResourceQuota admission plugin on a CREATE; raises 403 ApiError, else charges the quotas."""
    if rt.group_resource in NOT_COUNTED or not rt.namespaced:
        return
    quota_type, quotas = _quotas(store, namespace)
    if quota_type is None or not quotas:
        return
    interesting: list[tuple[Obj, dict[str, Quantity], dict[str, Quantity], set[str]]] = []
    for quota in quotas:
        status = quota.get("status") or {}
        hard = parse_list(status.get("hard"))
        if not _matches(quota, rt.group_resource, obj, hard):
            continue
        restricted = set(hard) & counted_names(rt.group_resource)
        if _is_pod(rt.group_resource):
            problem = pod_constraints(restricted, obj)
            if problem:
                raise _forbidden(rt, obj, f"failed quota: {quota['metadata']['name']}: {problem}")
        used = parse_list(status.get("used"))
        unknown = sorted(name for name in restricted if name not in used)
        if unknown:
            raise _forbidden(rt, obj, f"status unknown for quota: {quota['metadata']['name']}, "
                                      f"resources: {','.join(unknown)}")
        interesting.append((quota, hard, used, restricted))
    if not interesting:
        return
    usage = {name: q for name, q in object_usage(rt.group_resource, obj).items() if q.value != 0}
    if not usage:
        return
    charged: list[tuple[Obj, dict[str, Quantity]]] = []
    for quota, hard, used, _ in interesting:
        requested = {name: q for name, q in usage.items() if name in hard}
        if not requested:
            continue
        new_used = add_lists(used, requested)
        exceeded = sorted(name for name in requested if new_used[name].value > hard[name].value)
        if exceeded:
            raise _forbidden(rt, obj, (
                f"exceeded quota: {quota['metadata']['name']}, "
                f"requested: {pretty({n: requested[n] for n in exceeded})}, "
                f"used: {pretty({n: used[n] for n in exceeded if n in used})}, "
                f"limited: {pretty({n: hard[n] for n in exceeded})}"))
        charged.append((quota, new_used))
    if dry_run:
        return
    for quota, new_used in charged:
        quota.setdefault("status", {})["used"] = render_list(new_used)
        store.replace(quota_type, quota, check_version=False)


# ---------------------------------------------------------------- the controller


def _usage_of(store: Store, namespace: str, name: str, quota: Obj) -> Quantity | None:
    """What the namespace uses of one quota resource, or None when no evaluator counts it."""
    if name in POD_RESOURCES:
        pods = store.type_for("", "pods")
        total = Quantity.count(0)
        selectors = scope_selectors(quota)
        for pod in store.list(pods, namespace)[0] if pods else []:
            if all(_scope_matches(selector, pod) for selector in selectors):
                total = total + pod_usage(pod).get(name, Quantity.count(0))
        return total
    for rt in list(store.types.values()):
        counted = rt.namespaced and rt.group_resource not in NOT_COUNTED
        if counted and name in counted_names(rt.group_resource):
            return Quantity.count(len(store.list(rt, namespace)[0]))
    return None


def desired_status(store: Store, quota: Obj) -> dict[str, Any]:
    namespace = quota["metadata"].get("namespace", "")
    hard = parse_list((quota.get("spec") or {}).get("hard"))
    used = {}
    for name in hard:
        quantity = _usage_of(store, namespace, name, quota)
        if quantity is not None:
            used[name] = quantity
    return {"hard": render_list(hard), "used": render_list(used)}


def sync_namespace(store: Store, namespace: str) -> None:
    quota_type, quotas = _quotas(store, namespace)
    for quota in quotas:
        status = desired_status(store, quota)
        if quota.get("status") != status and quota_type is not None:
            quota["status"] = status
            store.replace(quota_type, quota, check_version=False)


def namespace_to_sync(resource: tuple[str, str], obj: Obj) -> str | None:
    """The namespace whose quotas an event may change, or None. Quota status writes do not re-trigger it."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    if not namespace or resource in NOT_COUNTED:
        return None
    if resource == QUOTA_GROUP_RESOURCE and not spec_changed(obj):
        return None
    return namespace


def spec_changed(quota: Obj) -> bool:
    """The quota's spec.hard is not what its status says yet (a new or edited quota)."""
    spec_hard = render_list(parse_list((quota.get("spec") or {}).get("hard")))
    return spec_hard != (quota.get("status") or {}).get("hard")
