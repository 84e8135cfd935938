"""The workload controllers: Deployment -> ReplicaSet -> Pods, and DaemonSet -> one Pod on the lab's node.

Pods are created through the API server's admission chain (``admission.admit_create``), as the ReplicaSet
controller's requests are on a cluster: the workload identity webhook mutates them, and when it refuses
(webhook down), the ReplicaSet records a ``FailedCreate`` event with the API server's message, which is
what ``kubectl describe rs`` shows on AKS. Status (replicas, ready, available) is derived from the pods.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from typing import TYPE_CHECKING

from lab.clock import rfc3339
from lab.kube import admission, errors
from lab.kube.events import controller_event
from lab.kube.resources import core_type
from lab.kube.rollout import DeploymentController
from lab.kube.store import Obj, ResourceType, Store

if TYPE_CHECKING:
    from lab.runtime import Lab

log = logging.getLogger("lab.kube.workloads")

HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"  # a DaemonSet's pods: its template's revision
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.String alphabet


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


def _owner_ref(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _owned_by(obj: Obj, owner: Obj) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences") or [])


def _pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _active(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


# kubernetes pkg/controller/daemon/util/daemonset_util.go AddOrUpdateDaemonPodTolerations: a DaemonSet's pods
# survive taint-based eviction and, per TaintNodesByCondition, tolerate the condition taints and a cordon
# (node.kubernetes.io/unschedulable), so kubectl cordon leaves them schedulable on the node
_DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


def add_daemon_pod_tolerations(spec: Obj) -> None:
    """AddOrUpdateDaemonPodTolerations on a pod spec: each toleration (operator Exists, no tolerationSeconds)
    replaces those that MatchToleration it (same key, operator, value and effect: one with tolerationSeconds
    loses them), else is appended (v1helper.AddOrUpdateTolerationInPodSpec); network-unavailable only for
    hostNetwork pods."""
    wanted = list(_DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    for key, effect in wanted:
        toleration = {"key": key, "operator": "Exists", "effect": effect}

        def matches(t: Obj, key: str = key, effect: str = effect) -> bool:
            return (t.get("key") == key and t.get("operator") == "Exists" and not t.get("value")
                    and t.get("effect") == effect)
        if any(matches(t) for t in tolerations):
            tolerations = [dict(toleration) if matches(t) else t for t in tolerations]
        else:
            tolerations.append(toleration)
    spec["tolerations"] = tolerations


class WorkloadControllers:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.store: Store = lab.kube.store

    def _type(self, group: str, plural: str) -> ResourceType | None:
        return self.store.type_for(group, plural)

    # -- Deployments: see lab.kube.rollout
    def reconcile_deployment(self, namespace: str, name: str) -> None:
        DeploymentController(self.lab, template_hash).reconcile(namespace, name)

    # -- ReplicaSets
    def reconcile_replicaset(self, namespace: str, name: str) -> None:
        replicasets = self._type("apps", "replicasets")
        replicaset = self.store.find(replicasets, namespace, name) if replicasets else None
        if replicaset is None:
            return
        wanted = int((replicaset.get("spec") or {}).get("replicas", 1))
        refused = self._converge(replicaset, wanted, prefix=f"{name}-")
        self._owned_status(replicaset, replicasets, wanted, refused)

    # -- DaemonSets: the lab has one node
    def reconcile_daemonset(self, namespace: str, name: str) -> None:
        """One pod on the lab's node, labelled with its template's revision (``controller-revision-hash``, the
        hash alone, and ``pod-template-generation``, as pkg/controller/daemon/util CreatePodTemplate labels it).
        Under ``updateStrategy: RollingUpdate`` (the default) a pod of an older template is deleted and made again
        from the current one: a template change, ``kubectl rollout restart daemonset`` among them, replaces it
        (the "Perform a Rolling Update on a DaemonSet" task: "old DaemonSet pods will be killed, and new
        DaemonSet pods will be created automatically"); under ``OnDelete`` it stays until a person deletes it.
        The surge (``maxSurge``) is not emulated: the old pod goes first, as with the default maxSurge 0."""
        daemonsets = self._type("apps", "daemonsets")
        daemonset = self.store.find(daemonsets, namespace, name) if daemonsets else None
        if daemonset is None:
            return
        spec = daemonset.get("spec") or {}
        revision = template_hash(spec.get("template") or {})
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate":
            pods_type = core_type(self.store, "pods")
            for old in self._pods_of(daemonset):
                if (old["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                    self.store.delete(pods_type, namespace, old["metadata"]["name"])
                    self._event(daemonset, "SuccessfulDelete", f"Deleted pod: {old['metadata']['name']}")
        wanted = self._daemon_nodes(spec)
        self._converge(daemonset, wanted, prefix=f"{name}-", labels={
            REVISION_LABEL: revision, "pod-template-generation": str(daemonset["metadata"].get("generation", 1))})
        pods = self._pods_of(daemonset)
        ready = sum(1 for pod in pods if _pod_ready(pod))
        updated = sum(1 for pod in pods if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision)
        status = {"currentNumberScheduled": len(pods), "desiredNumberScheduled": wanted, "numberMisscheduled": 0,
                  "numberReady": ready, "updatedNumberScheduled": updated, "numberAvailable": ready,
                  "observedGeneration": daemonset["metadata"].get("generation", 1)}
        if ready < wanted:
            status["numberUnavailable"] = wanted - ready
        if daemonset.get("status") != status:
            self.store.replace(daemonsets, {**daemonset, "status": status}, check_version=False)

    def _daemon_nodes(self, spec: Obj) -> int:
        """How many nodes the DaemonSet runs a pod on: those its template's nodeSelector and required node affinity
        match (kubernetes docs, DaemonSet "Running Pods on select Nodes": "the DaemonSet controller will create Pods
        on nodes which match that node selector"; pkg/controller/daemon NodeShouldRunDaemonPod). A nodeSelector no
        node matches, the usual way to "scale a DaemonSet to 0", gives desiredNumberScheduled 0 and no pod, not a
        Pending one. Taints the pod does not tolerate are not judged here (the scheduler leaves its pod Pending)."""
        from lab.kube.scheduler import matches_node_affinity

        nodes_type = self._type("", "nodes")
        nodes = self.store.list(nodes_type)[0] if nodes_type else []
        if not nodes:
            return 1  # no Node objects served: the lab's one node, as before
        template_spec = (spec.get("template") or {}).get("spec") or {}
        return sum(1 for node in nodes[:1] if matches_node_affinity(template_spec, node))  # one node runs pods

    # -- shared
    def _pods_of(self, owner: Obj) -> list[Obj]:
        pods = core_type(self.store, "pods")
        return [pod for pod in self.store.list(pods, owner["metadata"]["namespace"])[0]
                if _owned_by(pod, owner) and _active(pod)]

    def _converge(self, owner: Obj, wanted: int, prefix: str, labels: Obj | None = None) -> str | None:
        """Create or delete pods until ``wanted`` run (new ones with ``labels`` added to the template's); the API
        server's message when it refused a pod."""
        pods_type = core_type(self.store, "pods")
        pods = self._pods_of(owner)
        namespace = owner["metadata"]["namespace"]
        for extra in pods[wanted:]:
            self.store.delete(pods_type, namespace, extra["metadata"]["name"])
            self._event(owner, "SuccessfulDelete", f"Deleted pod: {extra['metadata']['name']}")
        for _ in range(wanted - len(pods)):
            refused = self._create_pod(owner, pods_type, prefix, labels)
            if refused is not None:
                return refused
        return None

    def _create_pod(self, owner: Obj, pods_type: ResourceType, prefix: str, labels: Obj | None = None) -> str | None:
        namespace = owner["metadata"]["namespace"]
        template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
        if labels:
            meta = template.setdefault("metadata", {})
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
        if owner.get("kind") == "DaemonSet":
            add_daemon_pod_tolerations(template.setdefault("spec", {}))
        pod = {"apiVersion": "v1", "kind": "Pod",
               # no name: the API server makes it after mutating admission (the webhook sees generateName)
               "metadata": {**template.get("metadata", {}), "namespace": namespace,
                            "generateName": prefix, "ownerReferences": [_owner_ref(owner)]},
               "spec": template.get("spec") or {}}
        try:
            admitted, _ = admission.admit_create(self.lab, pods_type, pod, namespace, rfc3339())
            self.store.create(pods_type, admitted, namespace=namespace)
        except errors.ApiError as exc:
            self._event(owner, "FailedCreate", f"Error creating: {exc.message}", "Warning")
            return exc.message
        self._event(owner, "SuccessfulCreate", f"Created pod: {admitted['metadata']['name']}")
        return None

    def _owned_status(self, owner: Obj, rt: ResourceType, wanted: int, refused: str | None = None) -> None:
        """The ReplicaSet's status as calculateStatus (pkg/controller/replicaset/replica_set_utils.go) makes it:
        counts from its pods, and a ``ReplicaFailure`` condition (reason ``FailedCreate``, the refusal's message)
        added when creating a pod failed and none is there yet, removed once pods are made without error (e.g.
        the webhook denied the template's pods: ``kubectl get rs -o yaml`` shows why none run)."""
        pods = self._pods_of(owner)
        ready = sum(1 for pod in pods if _pod_ready(pod))
        status: Obj = {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                       "observedGeneration": owner["metadata"].get("generation", 1)}
        if ready:
            status.update({"readyReplicas": ready, "availableReplicas": ready})
        conditions = [c for c in (owner.get("status") or {}).get("conditions") or []]
        failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
        if refused is not None and failure is None:
            conditions.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": rfc3339(),
                               "reason": "FailedCreate" if len(pods) < wanted else "FailedDelete",
                               "message": refused})
        elif refused is None and failure is not None:
            conditions.remove(failure)
        if conditions:
            status["conditions"] = conditions
        if owner.get("status") != status:
            self.store.replace(rt, {**owner, "status": status}, check_version=False)

    def _event(self, owner: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        component = "replicaset-controller" if owner["kind"] == "ReplicaSet" else "daemonset-controller"
        controller_event(self.store, owner, owner["apiVersion"], owner["kind"], reason, message, type_, component,
                         reporting_component="")

    def owner_of(self, obj: Obj) -> tuple[str, str] | None:
        """(kind, name) of a pod's or ReplicaSet's controlling owner."""
        for ref in obj.get("metadata", {}).get("ownerReferences") or []:
            if ref.get("controller"):
                return ref.get("kind", ""), ref.get("name", "")
        return None


