"""The Job controller (batch/v1), enough for a Job that runs one pod to completion, like the harness's own Job.

What a cluster does, and the lab does here:

- selector generation: unless ``spec.manualSelector``, the Job gets ``spec.selector`` matching
  ``batch.kubernetes.io/controller-uid=<uid>`` and its pod template the labels ``batch.kubernetes.io/
  controller-uid``, ``batch.kubernetes.io/job-name`` and the legacy ``controller-uid`` and ``job-name``
  (kubernetes pkg/registry/batch/job/strategy.go, generateSelector). The API server does this as it stores the
  Job; the lab's controller does it on its first look, before it creates a pod, so nothing sees a pod without
  them.
- pods: ``<job>-<5 characters>`` (generateName), owned by the Job (controller reference), created through the
  admission chain (the workload identity webhook mutates them), ``spec.parallelism`` at most and no more than
  ``spec.completions`` still to do; a refused create is a ``FailedCreate`` event, retried on the next change.
- status: ``startTime``, ``active``, ``ready``, ``succeeded``, ``failed``, ``terminating``; once the succeeded
  pods reach ``completions``: conditions ``SuccessCriteriaMet`` then ``Complete`` and ``completionTime``
  (Kubernetes 1.31 and later); once more pods failed than ``backoffLimit``: ``FailureTarget`` then ``Failed``,
  reason ``BackoffLimitExceeded``, "Job has reached the specified backoff limit"; events ``SuccessfulCreate``
  and ``Completed`` / ``BackoffLimitExceeded`` from the job-controller.

Not emulated: indexed completions, pod failure and success policies, suspend, activeDeadlineSeconds (the
pods' own deadline works), ttlSecondsAfterFinished, pod replacement policy, back-off delays between retries.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from lab.clock import rfc3339
from lab.kube import admission, errors
from lab.kube.events import controller_event
from lab.kube.resources import core_type, pods_controlled_by
from lab.kube.store import Obj, ResourceType, Store

if TYPE_CHECKING:
    from lab.runtime import Lab

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"


def _finished(job: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def _phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class JobController:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.store: Store = lab.kube.store

    def _jobs(self) -> ResourceType | None:
        return self.store.type_for("batch", "jobs")

    def reconcile(self, namespace: str, name: str) -> None:
        jobs = self._jobs()
        job = self.store.find(jobs, namespace, name) if jobs else None
        if jobs is None or job is None or job["metadata"].get("deletionTimestamp") or _finished(job):
            return
        job = self._generate_selector(jobs, job)
        spec = job.get("spec") or {}
        pods = self._pods_of(job)
        succeeded = sum(1 for pod in pods if _phase(pod) == "Succeeded")
        failed = sum(1 for pod in pods if _phase(pod) == "Failed")
        active = [pod for pod in pods if _phase(pod) not in ("Succeeded", "Failed")
                  and not pod["metadata"].get("deletionTimestamp")]
        completions = int(spec.get("completions", 1) or 1)
        backoff_limit = int(spec.get("backoffLimit", 6))
        done = succeeded >= completions
        exhausted = failed > backoff_limit
        if not done and not exhausted:
            wanted = min(int(spec.get("parallelism", 1) or 1), completions - succeeded) - len(active)
            for _ in range(max(wanted, 0)):
                pod = self._create_pod(job)
                if pod is None:
                    break
                active.append(pod)
        self._status(jobs, job, active, succeeded, failed, done, exhausted)

    def _generate_selector(self, jobs: ResourceType, job: Obj) -> Obj:
        spec = job.setdefault("spec", {})
        if spec.get("manualSelector") or spec.get("selector"):
            return job
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        spec["selector"] = {"matchLabels": {CONTROLLER_UID_LABEL: uid}}
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.update({CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name,
                       LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name})
        return self.store.replace(jobs, job, check_version=False)

    def _pods_of(self, job: Obj) -> list[Obj]:
        return pods_controlled_by(self.store, job)

    def _create_pod(self, job: Obj) -> Obj | None:
        pods_type = core_type(self.store, "pods")
        meta = job["metadata"]
        namespace, prefix = meta["namespace"], f"{meta['name']}-"
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
                 "controller": True, "blockOwnerDeletion": True}
        pod = {"apiVersion": "v1", "kind": "Pod",
               # no name: the API server makes it after mutating admission (the webhook sees generateName)
               "metadata": {**template.get("metadata", {}), "namespace": namespace,
                            "generateName": prefix, "ownerReferences": [owner]},
               "spec": template.get("spec") or {}}
        try:
            admitted, _ = admission.admit_create(self.lab, pods_type, pod, namespace, rfc3339())
            created = self.store.create(pods_type, admitted, namespace=namespace)
        except errors.ApiError as exc:
            self._event(job, "FailedCreate", f"Error creating: {exc.message}", "Warning")
            return None
        self._event(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return created

    def _status(self, jobs: ResourceType, job: Obj, active: list[Obj], succeeded: int, failed: int,
                done: bool, exhausted: bool) -> None:
        previous = job.get("status") or {}
        now = rfc3339()
        status: Obj = {"startTime": previous.get("startTime") or now, "active": len(active) or None,
                       "ready": sum(1 for pod in active if _ready(pod)), "succeeded": succeeded or None,
                       "failed": failed or None, "terminating": 0, "uncountedTerminatedPods": {}}
        conditions = list(previous.get("conditions") or [])
        if done:
            conditions += [_condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of "
                                      "succeeded pods", now), _condition("Complete", "CompletionsReached",
                                                                         "Reached expected number of succeeded "
                                                                         "pods", now)]
            status["completionTime"] = now
            self._event(job, "Completed", "Job completed")
        elif exhausted:
            conditions += [_condition("FailureTarget", "BackoffLimitExceeded", BACKOFF_MESSAGE, now),
                           _condition("Failed", "BackoffLimitExceeded", BACKOFF_MESSAGE, now)]
            self._event(job, "BackoffLimitExceeded", BACKOFF_MESSAGE, "Warning")
        if conditions:
            status["conditions"] = conditions
        status = {key: value for key, value in status.items() if value is not None}
        if previous != status:
            self.store.replace(jobs, {**job, "status": status}, check_version=False)

    def _event(self, job: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        controller_event(self.store, job, "batch/v1", "Job", reason, message, type_, "job-controller")


def _condition(type_: str, reason: str, message: str, now: str) -> Obj:
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}
