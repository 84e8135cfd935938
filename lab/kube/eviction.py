"""Eviction (``pods/eviction``, what ``kubectl drain`` posts) and PodDisruptionBudget status.

Eviction follows registry/core/pod/storage/eviction.go: the body is a policy/v1 (or v1beta1) Eviction whose name
must be the pod's; a pod that is pending, finished or already being deleted is deleted without looking at
budgets; otherwise the one PodDisruptionBudget selecting it (more than one is a 500) must allow a disruption,
else 429 TooManyRequests with a DisruptionBudget cause; an allowed eviction takes one disruption from the
budget's status and deletes the pod with the Eviction's deleteOptions. The answer is a Success Status, 201.

The disruption controller's arithmetic (pkg/controller/disruption) for each budget: expectedPods (the pods it
selects), currentHealthy (those Ready), desiredHealthy from minAvailable or expectedPods - maxUnavailable (a
percentage of expectedPods, rounded up), disruptionsAllowed = currentHealthy - desiredHealthy (never below 0),
and the DisruptionAllowed condition; kept up to date as pods and budgets change.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.clock import rfc3339
from lab.kube import codec, errors
from lab.kube.authz import Attributes, require
from lab.kube.labelselector import matches as selector_matches
from lab.kube.store import Obj, ResourceType, Store, WatchEvent

if TYPE_CHECKING:
    from lab.kube.apiserver import ApiServer, Target
    from lab.kube.cluster import KubeUser

SUBRESOURCE = "eviction"
PDB = ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",))


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _pods(store: Store, namespace: str) -> list[Obj]:
    return [pod for (ns, _), pod in store.objects.get(("", "pods"), {}).items() if ns == namespace]


def _selects(budget: Obj, pod: Obj) -> bool:
    selector = (budget.get("spec") or {}).get("selector")
    # a budget's null selector selects no pod; an empty one selects every pod of the namespace (policy/v1)
    return selector is not None and selector_matches(selector, pod["metadata"].get("labels") or {})


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        try:
            share = int(value[:-1]) * total / 100
        except ValueError:
            return 0
        return math.ceil(share) if round_up else math.floor(share)
    return int(value) if isinstance(value, int) else 0


def budget_status(store: Store, budget: Obj) -> dict[str, Any]:
    spec, meta = budget.get("spec") or {}, budget["metadata"]
    pods = [pod for pod in _pods(store, meta["namespace"])
            if _selects(budget, pod) and not pod["metadata"].get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    expected, healthy = len(pods), sum(1 for pod in pods if _ready(pod))
    if spec.get("maxUnavailable") is not None:
        desired = max(expected - _scaled(spec["maxUnavailable"], expected, round_up=True), 0)
    else:
        desired = _scaled(spec.get("minAvailable", 1), expected, round_up=True)
    allowed = max(healthy - desired, 0)
    previous = budget.get("status") or {}
    condition = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                 "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
                 "observedGeneration": meta.get("generation", 1)}
    old = next((c for c in previous.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    condition["lastTransitionTime"] = (old["lastTransitionTime"] if old and old.get("status") == condition["status"]
                                       else rfc3339())
    return {"observedGeneration": meta.get("generation", 1), "expectedPods": expected, "currentHealthy": healthy,
            "desiredHealthy": desired, "disruptionsAllowed": allowed,
            **({"disruptedPods": previous["disruptedPods"]} if previous.get("disruptedPods") else {}),
            "conditions": [condition]}


def refresh(store: Store, namespace: str) -> None:
    rt = store.type_for(PDB.group, PDB.plural) or PDB
    for (ns, _), budget in list(store.objects.get(rt.group_resource, {}).items()):
        if ns != namespace:
            continue
        status = budget_status(store, budget)
        if status != budget.get("status"):
            updated = copy.deepcopy(budget)
            updated["status"] = status
            store.replace(rt, updated, check_version=False)


class DisruptionController:
    """A store listener keeping budgets' status as pods and budgets change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.busy = False
        store.listeners.append(self)

    def __call__(self, event: WatchEvent) -> None:
        if self.busy or event.resource not in (("", "pods"), (PDB.group, PDB.plural)):
            return
        self.busy = True
        try:
            refresh(self.store, (event.object.get("metadata") or {}).get("namespace", ""))
        finally:
            self.busy = False


def _too_many(message: str, cause: str, name: str) -> errors.ApiError:
    return errors.ApiError(429, "TooManyRequests", message, {
        "name": name, "kind": "pods", "causes": [{"reason": "DisruptionBudget", "message": cause}]})


def _mark_disruption_target(store: Store, rt: ResourceType, pod: Obj) -> Obj:
    """addConditionAndDeletePod (registry/core/pod/storage/eviction.go; pod disruption conditions, GA in 1.31):
    before the delete, the pod's status gets DisruptionTarget True, reason EvictionByEvictionAPI, message
    'Eviction API: evicting' (the text GitLab runners quote as 'is disrupted: reason "EvictionByEvictionAPI",
    message "Eviction API: evicting"'), so whoever watches the pod sees it was evicted, not deleted."""
    updated = copy.deepcopy(pod)
    conditions = [c for c in (updated.setdefault("status", {}).get("conditions") or [])
                  if c.get("type") != "DisruptionTarget"]
    conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                       "message": "Eviction API: evicting", "lastTransitionTime": rfc3339()})
    updated["status"]["conditions"] = conditions
    return store.replace(rt, updated, check_version=False)


async def serve(api: ApiServer, request: web.Request, user: KubeUser, target: Target) -> web.Response:
    from lab.kube.apiserver import json_response, method_not_allowed

    if request.method != "POST":
        raise method_not_allowed()
    namespace, name = target.namespace_or_empty, target.name
    require(api.lab.kube, user, Attributes(verb="create", resource="pods", group="", namespace=namespace, name=name,
                                           subresource=SUBRESOURCE))
    eviction = codec.decode_object(await request.read(), request.headers.get("Content-Type"))
    if eviction.get("kind") not in (None, "Eviction"):
        raise errors.bad_request(f"the body of the request was not an Eviction: {eviction.get('kind')}")
    if (eviction.get("metadata") or {}).get("name") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    store = api.store
    pod = store.get(target.rt, namespace, name)
    options = eviction.get("deleteOptions") or {}
    dry_run = "All" in (options.get("dryRun") or []) or request.query.get("dryRun") == "All"
    phase = (pod.get("status") or {}).get("phase")
    if not (phase in ("Pending", "Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp")):
        rt = store.type_for(PDB.group, PDB.plural) or PDB
        budgets = [b for (ns, _), b in store.objects.get(rt.group_resource, {}).items()
                   if ns == namespace and _selects(b, pod)]
        if len(budgets) > 1:
            raise errors.ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which "
                                                        "the eviction subresource does not support.")
        if budgets:
            budget = budgets[0]
            status = budget_status(store, budget)
            if status["disruptionsAllowed"] <= 0:
                raise _too_many("Cannot evict pod as it would violate the pod's disruption budget.",
                                f"The disruption budget {budget['metadata']['name']} needs "
                                f"{status['desiredHealthy']} healthy pods and has {status['currentHealthy']} "
                                "currently", name)
            if not dry_run:
                updated = copy.deepcopy(budget)
                status["disruptionsAllowed"] -= 1
                status.setdefault("disruptedPods", {})[name] = rfc3339()
                updated["status"] = status
                store.replace(rt, updated, check_version=False)
    if not dry_run:
        from lab.kube.apiserver import grace_period

        pod = _mark_disruption_target(store, target.rt, pod)
        api.delete_pod(target, pod, grace_period({}, options, pod))
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "code": 201}, status=201)
