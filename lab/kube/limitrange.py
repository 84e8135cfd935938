"""The LimitRanger admission plugin for pods: defaults from ``type: Container`` items, then min/max/ratio
checks.

Read from kubernetes/kubernetes plugin/pkg/admission/limitranger/admission.go: the mutating step gives every
container and init container the LimitRange's ``default`` limits and ``defaultRequest`` requests it lacks and
records them in the ``kubernetes.io/limit-ranger`` annotation (``LimitRanger plugin set: cpu request for
container app; cpu limit for container app``); the validating step checks each container (``type: Container``)
and the pod's totals (``type: Pod``) and answers 403 ``pods "<name>" is forbidden: maximum cpu usage per
Container is 1, but limit is 2`` (several errors as ``[a, b]``, the first LimitRange that fails). The texts
are the current source's (no trailing period); releases before the error strings were cleaned up ended them
with one, so the 1.32 punctuation is unverified. The LimitRange defaulting (default from max, defaultRequest
from default or min) is in :mod:`lab.kube.defaults`. PersistentVolumeClaim limits are not emulated.
"""

from __future__ import annotations

from lab.kube import errors
from lab.kube.quantity import Quantity, parse_list
from lab.kube.quota import pod_totals
from lab.kube.store import Obj, ResourceType, Store

ANNOTATION = "kubernetes.io/limit-ranger"


def _limit_ranges(store: Store, namespace: str) -> list[Obj]:
    rt = store.type_for("", "limitranges")
    return store.list(rt, namespace)[0] if rt is not None and namespace else []


def _items(limit_range: Obj, kind: str) -> list[Obj]:
    return [item for item in (limit_range.get("spec") or {}).get("limits") or []
            if isinstance(item, dict) and item.get("type") == kind]


def _containers(pod: Obj) -> list[tuple[Obj, str]]:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    return ([(c, "container") for c in (spec or {}).get("containers") or [] if isinstance(c, dict)]
            + [(c, "init container") for c in (spec or {}).get("initContainers") or []
               if isinstance(c, dict)])


def mutate(store: Store, pod: Obj, namespace: str) -> None:
    """PodMutateLimitFunc for each LimitRange of the namespace."""
    for limit_range in _limit_ranges(store, namespace):
        default_limits: dict[str, str] = {}
        default_requests: dict[str, str] = {}
        for item in _items(limit_range, "Container"):
            default_requests.update({k: str(v) for k, v in (item.get("defaultRequest") or {}).items()})
            default_limits.update({k: str(v) for k, v in (item.get("default") or {}).items()})
        notes = []
        for container, prefix in _containers(pod):
            resources = container.setdefault("resources", {})
            limits, requests = resources.setdefault("limits", {}), resources.setdefault("requests", {})
            set_limits = sorted(k for k in default_limits if k not in limits)
            set_requests = sorted(k for k in default_requests if k not in requests)
            limits.update({k: default_limits[k] for k in set_limits})
            requests.update({k: default_requests[k] for k in set_requests})
            for key in ("limits", "requests"):
                if not resources[key]:
                    del resources[key]
            if set_requests:
                notes.append(f"{', '.join(set_requests)} request for {prefix} {container.get('name', '')}")
            if set_limits:
                notes.append(f"{', '.join(set_limits)} limit for {prefix} {container.get('name', '')}")
        if notes:
            pod.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = (
                "LimitRanger plugin set: " + "; ".join(notes))


def _min(kind: str, name: str, enforced: Quantity, requests: dict[str, Quantity],
         limits: dict[str, Quantity]) -> str | None:
    if name not in requests:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if enforced.value > requests[name].value:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    if name in limits and enforced.value > limits[name].value:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    return None


def _max(kind: str, name: str, enforced: Quantity, requests: dict[str, Quantity],
         limits: dict[str, Quantity]) -> str | None:
    if name not in limits:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if limits[name].value > enforced.value:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    if name in requests and requests[name].value > enforced.value:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    return None


def _ratio(kind: str, name: str, enforced: Quantity, requests: dict[str, Quantity],
           limits: dict[str, Quantity]) -> str | None:
    if name not in requests or requests[name].value == 0:
        return (f"{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or "
                "request is 0")
    if name not in limits or limits[name].value == 0:
        return (f"{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or "
                "limit is 0")
    if limits[name].value > requests[name].value * enforced.value:
        ratio = limits[name].value / requests[name].value
        return (f"{name} max limit to request ratio per {kind} is {enforced}, "
                f"but provided ratio is {ratio:.6f}")
    return None


def _check(kind: str, item: Obj, requests: dict[str, Quantity], limits: dict[str, Quantity]) -> list[str]:
    problems = []
    for field, check in (("min", _min), ("max", _max), ("maxLimitRequestRatio", _ratio)):
        for name, enforced in sorted(parse_list(item.get(field)).items()):
            problem = check(kind, name, enforced, requests, limits)
            if problem:
                problems.append(problem)
    return problems


def validate(store: Store, rt: ResourceType, pod: Obj, namespace: str) -> None:
    """PodValidateLimitFunc for each LimitRange of the namespace: the first that fails refuses the pod."""
    for limit_range in _limit_ranges(store, namespace):
        problems: list[str] = []
        for item in _items(limit_range, "Container"):
            for container, _ in _containers(pod):
                resources = container.get("resources") if isinstance(container.get("resources"), dict) else {}
                problems += _check("Container", item, parse_list((resources or {}).get("requests")),
                                   parse_list((resources or {}).get("limits")))
        spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
        for item in _items(limit_range, "Pod"):
            problems += _check("Pod", item, pod_totals(spec or {}, 0), pod_totals(spec or {}, 1))
        unique = list(dict.fromkeys(problems))  # utilerrors.NewAggregate skips repeated messages
        if unique:
            name = (pod.get("metadata") or {}).get("name") or "Unknown"
            text = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
            resource = errors.resource_ref(rt.plural, rt.group)
            raise errors.forbidden(f'{resource} "{name}" is forbidden: {text}', name=name, plural=rt.plural,
                                   group=rt.group)
