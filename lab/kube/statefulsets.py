"""The StatefulSet controller: pods ``<set>-<ordinal>``, made and replaced in order.

As kubernetes pkg/controller/statefulset (stateful_set_control.go, stateful_pod_control.go) does it for the
default ``podManagementPolicy: OrderedReady`` and ``updateStrategy: RollingUpdate``: the pod of ordinal i is
created only once every lower ordinal is Running and Ready; pods above ``spec.replicas`` are deleted from the
highest ordinal down, one at a time; a failed or finished pod is deleted and made again; once every pod is ready,
the highest-ordinal pod of an older revision (at or above ``rollingUpdate.partition``) is deleted, and made
again from the current template; a pod below the partition that is deleted is made again from the template of
``status.currentRevision`` (stateful_set_utils.go newVersionedStatefulSetPod: ordinal < partition gets the current
revision; kubernetes.io: "even if they are deleted, they will be recreated at the previous version"), as long as the
lab has seen that template (it keeps each revision's template in memory, not as ControllerRevision objects). Each pod carries its identity: ``statefulset.kubernetes.io/pod-name``,
``apps.kubernetes.io/pod-index``, ``controller-revision-hash`` (the revision's name, ``<set>-<hash>``), and
``spec.hostname`` / ``spec.subdomain`` (the set's serviceName). Pods are created through the admission chain, so
the Workload ID webhook mutates them; a refused create is a ``FailedCreate`` event with the controller's words
("create Pod web-0 in StatefulSet web failed error: ..."), retried on the next change, as upstream requeues
it. StatefulSets carry no status condition for it (upstream sets none). Status: replicas, readyReplicas,
currentReplicas, updatedReplicas, availableReplicas (minReadySeconds not honoured), currentRevision,
updateRevision, collisionCount, observedGeneration, what ``kubectl rollout status statefulset`` reads.
``podManagementPolicy: Parallel``, volumeClaimTemplates (no PersistentVolumeClaims in the lab) and
ControllerRevision objects are not emulated.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from lab.clock import rfc3339
from lab.kube import admission, errors
from lab.kube.events import controller_event
from lab.kube.resources import core_type, pods_controlled_by
from lab.kube.store import Obj, Store

if TYPE_CHECKING:
    from lab.runtime import Lab

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
COMPONENT = "statefulset-controller"


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _ordinal(pod: Obj, name: str) -> int | None:
    suffix = pod["metadata"]["name"].removeprefix(f"{name}-")
    return int(suffix) if suffix.isdigit() and pod["metadata"]["name"] == f"{name}-{suffix}" else None


class StatefulSetController:
    def __init__(self, lab: Lab, template_hash: object) -> None:
        self.lab = lab
        self.store: Store = lab.kube.store
        self.template_hash = template_hash
        # (namespace, set, revision) -> the pod template of that revision, what ControllerRevisions keep upstream
        self.templates: dict[tuple[str, str, str], Obj] = {}

    def reconcile(self, namespace: str, name: str) -> None:
        sets = self.store.type_for("apps", "statefulsets")
        current = self.store.find(sets, namespace, name) if sets else None
        if sets is None or current is None or current["metadata"].get("deletionTimestamp"):
            return
        spec = current.get("spec") or {}
        wanted = int(spec.get("replicas", 1))
        revision = f"{name}-{self.template_hash(spec.get('template') or {})}"  # type: ignore[operator]
        self.templates.setdefault((namespace, name, revision), copy.deepcopy(spec.get("template") or {}))
        pods = {ordinal: pod for pod in self._pods_of(current) if (ordinal := _ordinal(pod, name)) is not None}
        self._step(current, pods, wanted, revision)
        self._status(current, self._pods_of(current), revision)

    def _step(self, sts: Obj, pods: dict[int, Obj], wanted: int, revision: str) -> None:
        """One step of the ordered sync: at most one create or delete, as OrderedReady waits on each."""
        for ordinal in range(wanted):
            pod = pods.get(ordinal)
            if pod is None:
                self._create(sts, ordinal, *self._versioned(sts, ordinal, revision))
                return
            if pod["metadata"].get("deletionTimestamp"):
                return  # waits for it to go, then makes it again
            if _finished(pod):
                self._delete(sts, pod)
                return
            if not _ready(pod):
                return  # OrderedReady: the next ordinal waits for this one
        for ordinal in sorted((o for o in pods if o >= wanted), reverse=True):
            if not pods[ordinal]["metadata"].get("deletionTimestamp"):
                self._delete(sts, pods[ordinal])
            return
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return  # OnDelete: pods change revision when a person deletes them
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        for ordinal in sorted((o for o in pods if partition <= o < wanted), reverse=True):
            labels = pods[ordinal]["metadata"].get("labels") or {}
            if labels.get(REVISION_LABEL) != revision:
                self._delete(sts, pods[ordinal])
                return

    def _pods_of(self, sts: Obj) -> list[Obj]:
        return pods_controlled_by(self.store, sts)

    def _versioned(self, sts: Obj, ordinal: int, revision: str) -> tuple[str, Obj | None]:
        """(revision, template) the pod of ``ordinal`` is made at: below a RollingUpdate partition, the set's
        current revision (its template, when the lab kept it); else the update revision, the template now."""
        spec = sts.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        current = str((sts.get("status") or {}).get("currentRevision") or "")
        kept = self.templates.get((sts["metadata"]["namespace"], sts["metadata"]["name"], current))
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and ordinal < partition and kept is not None:
            return current, kept
        return revision, None

    def _create(self, sts: Obj, ordinal: int, revision: str, at: Obj | None = None) -> None:
        pods_type = core_type(self.store, "pods")
        meta = sts["metadata"]
        namespace, pod_name = meta["namespace"], f"{meta['name']}-{ordinal}"
        template = copy.deepcopy(at if at is not None else (sts.get("spec") or {}).get("template") or {})
        labels = {**(template.get("metadata") or {}).get("labels", {}), REVISION_LABEL: revision,
                  POD_NAME_LABEL: pod_name, POD_INDEX_LABEL: str(ordinal)}
        spec = template.get("spec") or {}
        spec["hostname"] = pod_name
        if (sts.get("spec") or {}).get("serviceName"):
            spec["subdomain"] = sts["spec"]["serviceName"]
        owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": meta["name"], "uid": meta["uid"],
                 "controller": True, "blockOwnerDeletion": True}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {**(template.get("metadata") or {}), "name": pod_name, "namespace": namespace,
                            "labels": labels, "ownerReferences": [owner]},
               "spec": spec}
        try:
            admitted, _ = admission.admit_create(self.lab, pods_type, pod, namespace, rfc3339())
            self.store.create(pods_type, admitted, namespace=namespace)
        except errors.ApiError as exc:
            # stateful_pod_control.go recordPodEvent: "%s Pod %s in StatefulSet %s failed error: %s"
            self._event(sts, "FailedCreate",
                        f"create Pod {pod_name} in StatefulSet {meta['name']} failed error: {exc.message}", "Warning")
            return
        self._event(sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {meta['name']} successful")

    def _delete(self, sts: Obj, pod: Obj) -> None:
        pods_type = core_type(self.store, "pods")
        meta = pod["metadata"]
        try:
            if meta.get("finalizers") or ((pod.get("spec") or {}).get("nodeName") and not _finished(pod)):
                # through the kubelet's graceful path (finalizers keep it), as the controller's DELETE is
                marked = copy.deepcopy(pod)
                marked["metadata"].setdefault("deletionTimestamp", rfc3339())
                marked["metadata"].setdefault("deletionGracePeriodSeconds",
                                              (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                self.store.replace(pods_type, marked, check_version=False)
            else:
                self.store.delete(pods_type, meta["namespace"], meta["name"])
        except errors.ApiError:
            return
        self._event(sts, "SuccessfulDelete",
                    f"delete Pod {meta['name']} in StatefulSet {sts['metadata']['name']} successful")

    def _status(self, sts: Obj, pods: list[Obj], revision: str) -> None:
        sets = self.store.type_for("apps", "statefulsets")
        live = [pod for pod in pods if not _finished(pod) and not pod["metadata"].get("deletionTimestamp")]
        previous = sts.get("status") or {}
        updated = [pod for pod in live if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision]
        wanted = int((sts.get("spec") or {}).get("replicas", 1))
        current_revision = previous.get("currentRevision") or revision
        if len(updated) == wanted == len(live) and all(_ready(pod) for pod in updated):
            current_revision = revision  # the update is complete
        current = [pod for pod in live
                   if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) == current_revision]
        ready = sum(1 for pod in live if _ready(pod))
        status: Obj = {"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(live),
                       "readyReplicas": ready, "currentReplicas": len(current), "updatedReplicas": len(updated),
                       "availableReplicas": ready, "currentRevision": current_revision, "updateRevision": revision,
                       "collisionCount": 0}
        status = {key: value for key, value in status.items() if value != 0 or key in ("replicas",
                                                                                        "availableReplicas",
                                                                                        "collisionCount")}
        if previous != status and sets is not None:
            self.store.replace(sets, {**sts, "status": status}, check_version=False)

    def _event(self, sts: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        controller_event(self.store, sts, "apps/v1", "StatefulSet", reason, message, type_, COMPONENT)
