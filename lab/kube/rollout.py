"""The Deployment controller (pkg/controller/deployment): ReplicaSets per pod template, revisions, rolling
updates and Recreate, scaling events, history cleanup and the status ``kubectl rollout status`` reads.

- The ReplicaSet of a template is ``<deployment>-<pod-template-hash>``; a new template gets a new ReplicaSet
  with revision ``max + 1`` (``deployment.kubernetes.io/revision`` on it and on the Deployment). Going back to an
  earlier template (``kubectl rollout undo`` patches the template back) reuses its ReplicaSet, which takes the
  next revision and remembers the old one in ``deployment.kubernetes.io/revision-history``.
- The Deployment's annotations are copied onto its new ReplicaSet (``kubernetes.io/change-cause`` is what
  ``rollout history`` prints), except the controller's own and kubectl's last-applied configuration; each
  ReplicaSet also carries ``desired-replicas`` and ``max-replicas``.
- RollingUpdate: maxSurge rounds up, maxUnavailable down (both 0 -> unavailable 1). The new ReplicaSet grows
  while the total stays within ``replicas + maxSurge``; old ReplicaSets shrink only as far as
  ``replicas - maxUnavailable`` available pods allow, so with the defaults an old pod stays until its
  replacement is available; an old ReplicaSet's pods that are not available go first (a template whose pods
  were refused is given up before the last running pods). Recreate scales the old ReplicaSets to 0 and waits
  for their pods to go first.
- Every scale is an Event ``ScalingReplicaSet`` ``Scaled up|down replica set <rs> from <a> to <b>`` from the
  deployment-controller. Old ReplicaSets at 0 beyond ``revisionHistoryLimit`` are deleted, oldest first.
- Status: replicas (pods of all its ReplicaSets), updatedReplicas, ready/available, unavailableReplicas, and the
  Available and Progressing conditions with the controller's reasons and messages.

- A rollout that makes no progress for ``progressDeadlineSeconds`` gets Progressing False
  ``ProgressDeadlineExceeded`` (``kubectl rollout status``: ``exceeded its progress deadline``); the controller
  looks again when the deadline would pass, as requeueStuckDeployment does.

Not modelled: paused Deployments' special cases beyond not rolling, proportional scaling of several active
ReplicaSets, minReadySeconds.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lab.clock import rfc3339
from lab.kube.events import controller_event
from lab.kube.store import Obj, ResourceType, Store

if TYPE_CHECKING:
    from lab.runtime import Lab

log = logging.getLogger("lab.kube.rollout")
_REQUEUES: dict[tuple[int, str, str], asyncio.TimerHandle] = {}  # one pending look per Deployment

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# annotations the controller keeps off the ReplicaSet it copies the Deployment's annotations to
NOT_COPIED = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
              MAX_REPLICAS, "deprecated.deployment.rollback.to"}


def _age_seconds(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    try:
        return time.time() - datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def revision_of(obj: Obj) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, str) and value.endswith("%"):
        share = total * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value or 0)


def fenceposts(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for a RollingUpdate Deployment (deploymentutil.ResolveFenceposts)."""
    spec = deployment.get("spec") or {}
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    desired = int(spec.get("replicas", 1))
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _owner_ref(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _owned_by(obj: Obj, owner: Obj) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences") or [])


def _replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas", 0) or 0)


def _status(rs: Obj, key: str) -> int:
    return int((rs.get("status") or {}).get(key) or 0)


class DeploymentController:
    def __init__(self, lab: Lab, template_hash: Any) -> None:
        self.lab = lab
        self.store: Store = lab.kube.store
        self.template_hash = template_hash

    def _types(self) -> tuple[ResourceType | None, ResourceType | None]:
        return self.store.type_for("apps", "deployments"), self.store.type_for("apps", "replicasets")

    def reconcile(self, namespace: str, name: str) -> None:
        deployments, replicasets = self._types()
        if deployments is None or replicasets is None:
            return
        deployment = self.store.find(deployments, namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        spec = deployment.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        hashed = self.template_hash(template)
        owned = [rs for rs in self.store.list(replicasets, namespace)[0] if _owned_by(rs, deployment)]
        new = next((rs for rs in owned if rs["metadata"]["name"] == f"{name}-{hashed}"), None)
        old = sorted((rs for rs in owned if rs is not new), key=revision_of)
        if spec.get("paused"):
            self.write_status(deployment, new, owned)
            return
        desired = int(spec.get("replicas", 1))
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        surge, unavailable = (0, desired) if recreate else fenceposts(deployment)
        if new is None:
            new = self.create_replicaset(deployment, template, hashed, owned, old, desired, surge, recreate)
        else:
            new = self.adopt_revision(deployment, new, owned)
        if recreate:
            self.recreate(deployment, new, old, desired)
        else:
            self.roll(deployment, new, old, desired, surge, unavailable)
        self.clean_history(deployment, old)
        self.set_deployment_revision(deployment, new)
        owned = [rs for rs in self.store.list(replicasets, namespace)[0] if _owned_by(rs, deployment)]
        self.write_status(self.store.find(deployments, namespace, name) or deployment,
                          next((rs for rs in owned if rs["metadata"]["uid"] == new["metadata"]["uid"]), new), owned)

    # -- the ReplicaSet of the current template

    def create_replicaset(self, deployment: Obj, template: Obj, hashed: str, owned: list[Obj], old: list[Obj],
                          desired: int, surge: int, recreate: bool) -> Obj:
        _, replicasets = self._types()
        assert replicasets is not None
        meta = deployment["metadata"]
        revision = max((revision_of(rs) for rs in owned), default=0) + 1
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hashed
        selector = copy.deepcopy((deployment.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hashed
        active_old = sum(_replicas(rs) for rs in old)
        if recreate:
            replicas = 0 if active_old else desired
        else:
            replicas = max(0, min(desired + surge - active_old, desired))
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in NOT_COPIED}
        annotations.update({DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(desired + surge),
                            REVISION: str(revision)})
        created = self.store.create(replicasets, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{hashed}", "namespace": meta["namespace"],
                         "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                         "ownerReferences": [_owner_ref(deployment)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }, namespace=meta["namespace"])
        if replicas:
            self.scaling_event(deployment, created, 0, replicas)
        return created

    def adopt_revision(self, deployment: Obj, new: Obj, owned: list[Obj]) -> Obj:
        """A template seen before (a rollback): its ReplicaSet takes the next revision."""
        top = max((revision_of(rs) for rs in owned), default=0)
        current = revision_of(new)
        annotations = new["metadata"].setdefault("annotations", {})
        copied = {k: v for k, v in (deployment["metadata"].get("annotations") or {}).items() if k not in NOT_COPIED}
        changed = any(annotations.get(k) != v for k, v in copied.items())
        annotations.update(copied)
        if current < top or current == 0:
            history = [h for h in (annotations.get(REVISION_HISTORY) or "").split(",") if h]
            if current:
                history.append(str(current))
            annotations[REVISION] = str(top + 1)
            if history:
                annotations[REVISION_HISTORY] = ",".join(history)
            changed = True
        if changed:
            _, replicasets = self._types()
            assert replicasets is not None
            return self.store.replace(replicasets, new, check_version=False)
        return new

    # -- strategies

    def roll(self, deployment: Obj, new: Obj, old: list[Obj], desired: int, surge: int, unavailable: int) -> None:
        total = _replicas(new) + sum(_replicas(rs) for rs in old)
        if _replicas(new) < desired:
            grow = min(desired + surge - total, desired - _replicas(new))
            if grow > 0:
                self.scale(deployment, new, _replicas(new) + grow, desired, surge)
        elif _replicas(new) > desired:
            self.scale(deployment, new, desired, desired, surge)
        # rolling.go reconcileOldReplicaSets: first the old ReplicaSets' replicas that are not available
        # (cleanupUnhealthyReplicas: a template whose pods are refused, or never become ready), then available ones
        # only while more than replicas - maxUnavailable stay available (scaleDownOldReplicaSetsForRollingUpdate):
        # a rollout over a failed one keeps the last pods that run
        min_available = desired - unavailable
        total = _replicas(new) + sum(_replicas(rs) for rs in old)
        new_unavailable = max(0, _replicas(new) - _status(new, "availableReplicas"))
        room = total - min_available - new_unavailable
        if room <= 0:
            return
        for rs in old:  # oldest first
            unhealthy = _replicas(rs) - _status(rs, "availableReplicas")
            if room <= 0:
                break
            if _replicas(rs) == 0 or unhealthy <= 0:
                continue
            down = min(room, unhealthy)
            self.scale(deployment, rs, _replicas(rs) - down, desired, surge)
            room -= down
        spare = sum(_status(rs, "availableReplicas") for rs in [new, *old]) - min_available
        for rs in old:
            if spare <= 0:
                break
            if _replicas(rs) == 0:
                continue
            down = min(spare, _replicas(rs))
            self.scale(deployment, rs, _replicas(rs) - down, desired, surge)
            spare -= down

    def recreate(self, deployment: Obj, new: Obj, old: list[Obj], desired: int) -> None:
        for rs in old:
            if _replicas(rs):
                self.scale(deployment, rs, 0, desired, 0)
        if any(_status(rs, "replicas") for rs in old):
            return  # the old pods go first
        if _replicas(new) != desired:
            self.scale(deployment, new, desired, desired, 0)

    def scale(self, deployment: Obj, rs: Obj, replicas: int, desired: int, surge: int) -> None:
        _, replicasets = self._types()
        assert replicasets is not None
        before = _replicas(rs)
        rs.setdefault("spec", {})["replicas"] = replicas
        annotations = rs["metadata"].setdefault("annotations", {})
        annotations.update({DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(desired + surge)})
        self.store.replace(replicasets, rs, check_version=False)
        if before != replicas:
            self.scaling_event(deployment, rs, before, replicas)

    def clean_history(self, deployment: Obj, old: list[Obj]) -> None:
        _, replicasets = self._types()
        assert replicasets is not None
        limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in old if _replicas(rs) == 0 and _status(rs, "replicas") == 0]
        for rs in idle[: max(0, len(idle) - limit)]:
            self.store.delete(replicasets, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def set_deployment_revision(self, deployment: Obj, new: Obj) -> None:
        deployments, _ = self._types()
        assert deployments is not None
        current = self.store.find(deployments, deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        if current is None:
            return
        revision = str(revision_of(new))
        annotations = current["metadata"].setdefault("annotations", {})
        if annotations.get(REVISION) != revision:
            annotations[REVISION] = revision
            self.store.replace(deployments, current, check_version=False)

    # -- status

    def write_status(self, deployment: Obj, new: Obj | None, owned: list[Obj]) -> None:
        deployments, _ = self._types()
        assert deployments is not None
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        actual = sum(_status(rs, "replicas") for rs in owned)
        updated = _status(new, "replicas") if new is not None else 0
        ready = sum(_status(rs, "readyReplicas") for rs in owned)
        available = sum(_status(rs, "availableReplicas") for rs in owned)
        status: Obj = {"observedGeneration": deployment["metadata"].get("generation", 1), "replicas": actual,
                       "updatedReplicas": updated}
        if ready:
            status["readyReplicas"] = ready
        if available:
            status["availableReplicas"] = available
        unavailable = sum(_replicas(rs) for rs in owned) - available
        if unavailable > 0:
            status["unavailableReplicas"] = unavailable
        _, max_unavailable = fenceposts(deployment) if (spec.get("strategy") or {}).get("type") != "Recreate" \
            else (0, desired)
        previous = {c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []}
        conditions = [self.available_condition(previous, available >= desired - max_unavailable)]
        if new is not None:
            old_status = deployment.get("status") or {}
            # deploymentutil.DeploymentProgressing: more updated/ready/available pods or fewer old ones
            progressed = (updated > old_status.get("updatedReplicas", 0)
                          or actual - updated < old_status.get("replicas", 0) - old_status.get("updatedReplicas", 0)
                          or ready > old_status.get("readyReplicas", 0)
                          or available > old_status.get("availableReplicas", 0))
            complete = (updated == desired and actual == updated and available >= updated
                        and _replicas(new) == desired)
            condition = self.progressing_condition(previous, new, complete, progressed,
                                                   int(spec.get("progressDeadlineSeconds", 600)))
            conditions.append(condition)
            if not complete and condition["status"] == "True":
                self.requeue(deployment, condition, int(spec.get("progressDeadlineSeconds", 600)))
        failure = self.replica_failure(previous, new, owned)
        if failure is not None:
            conditions.append(failure)
        status["conditions"] = conditions
        if deployment.get("status") != status:
            self.store.replace(deployments, {**deployment, "status": status}, check_version=False)

    @staticmethod
    def replica_failure(previous: dict[str, Obj], new: Obj | None, owned: list[Obj]) -> Obj | None:
        """syncRolloutStatus moves a ReplicaSet's ReplicaFailure condition to the Deployment (getReplicaFailures:
        the new ReplicaSet's first, else an old one's; util.ReplicaSetToDeploymentCondition), kept as it is while
        its status and reason stay (SetDeploymentCondition), gone once no ReplicaSet has one."""
        for rs in ([new] if new is not None else []) + [rs for rs in owned if rs is not new]:
            for c in (rs.get("status") or {}).get("conditions") or []:
                if c.get("type") != "ReplicaFailure":
                    continue
                before = previous.get("ReplicaFailure")
                if before and before.get("status") == c.get("status") and before.get("reason") == c.get("reason"):
                    return dict(before)
                return {"type": "ReplicaFailure", "status": c.get("status"),
                        "lastUpdateTime": c.get("lastTransitionTime"),
                        "lastTransitionTime": c.get("lastTransitionTime"),
                        "reason": c.get("reason"), "message": c.get("message")}
        return None

    @staticmethod
    def _condition(previous: dict[str, Obj], type_: str, status: str, reason: str, message: str) -> Obj:
        now = rfc3339()
        before = previous.get(type_) or {}
        same = before.get("status") == status
        unchanged = same and before.get("reason") == reason and before.get("message") == message
        return {"type": type_, "status": status,
                "lastUpdateTime": before.get("lastUpdateTime", now) if unchanged else now,
                "lastTransitionTime": before.get("lastTransitionTime", now) if same else now,
                "reason": reason, "message": message}

    def available_condition(self, previous: dict[str, Obj], available: bool) -> Obj:
        if available:
            return self._condition(previous, "Available", "True", "MinimumReplicasAvailable",
                                   "Deployment has minimum availability.")
        return self._condition(previous, "Available", "False", "MinimumReplicasUnavailable",
                               "Deployment does not have minimum availability.")

    def progressing_condition(self, previous: dict[str, Obj], new: Obj, complete: bool, progressed: bool,
                              deadline: int) -> Obj:
        """syncRolloutStatus: complete, just created, progressing (lastUpdateTime moves), or timed out once
        progressDeadlineSeconds pass without progress."""
        name = new["metadata"]["name"]
        before = previous.get("Progressing") or {}
        if complete:
            return self._condition(previous, "Progressing", "True", "NewReplicaSetAvailable",
                                   f'ReplicaSet "{name}" has successfully progressed.')
        if f'"{name}"' not in before.get("message", ""):  # this ReplicaSet was just made
            return self._condition(previous, "Progressing", "True", "NewReplicaSetCreated",
                                   f'Created new replica set "{name}"')
        if progressed:
            now = rfc3339()
            return {**self._condition(previous, "Progressing", "True", "ReplicaSetUpdated",
                                      f'ReplicaSet "{name}" is progressing.'), "lastUpdateTime": now}
        if before.get("reason") == "ProgressDeadlineExceeded" or _age_seconds(before.get("lastUpdateTime")) > deadline:
            return self._condition(previous, "Progressing", "False", "ProgressDeadlineExceeded",
                                   f'ReplicaSet "{name}" has timed out progressing.')
        return dict(before)

    def requeue(self, deployment: Obj, condition: Obj, deadline: int) -> None:
        """requeueStuckDeployment: look again when the deadline would pass without progress."""
        meta = deployment["metadata"]
        delay = max(0.0, deadline - _age_seconds(condition.get("lastUpdateTime"))) + 1.0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def again() -> None:
            try:
                self.reconcile(meta["namespace"], meta["name"])
            except Exception:  # a controller never takes the API server down
                log.exception("deployment controller: requeue of %s/%s", meta["namespace"], meta["name"])

        key = (id(self.store), meta["namespace"], meta["name"])
        if key in _REQUEUES:
            _REQUEUES[key].cancel()
        _REQUEUES[key] = loop.call_later(delay, again)

    # -- events

    def scaling_event(self, deployment: Obj, rs: Obj, before: int, after: int) -> None:
        direction = "up" if after > before else "down"
        controller_event(self.store, deployment, "apps/v1", "Deployment", "ScalingReplicaSet",
                         f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {after}",
                         "Normal", "deployment-controller")
