"""The workload's own pods: every live pod in its namespace running under its ServiceAccount, with the
controller that owns it (a ReplicaSet's pods are traced to their Deployment), read too (a Job's CronJob with it)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from harness.checks.podspec import controller_of, is_live, service_account_of
from harness.collect.kube import slim
from harness.collect.kube_api import KubeApi, KubeError
from harness.facts import LivePod, LivePodsFacts, RefusedController
from harness.names import MANAGED_BY, MANAGED_BY_LABEL, USE_LABEL


def collect_live_pods(api: KubeApi, namespace: str, service_account: str) -> LivePodsFacts:
    try:
        pods, _ = api.list_pods(namespace, "")
    except KubeError as exc:
        return LivePodsFacts(error=exc.failure)
    facts = LivePodsFacts()
    controllers: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        if not _is_live_pod_of(pod, service_account):
            if _labelled_without_identity(pod) and len(facts.unannotated) < 10:
                kind, name = owner_of(pod)
                facts.unannotated.append(LivePod(slim(pod) or {}, kind, name))
            continue
        kind, name = owner_of(pod)
        if (kind, name) not in controllers:
            controllers[(kind, name)] = read_controller(api, namespace, kind, name)
        owner, cronjob = controllers[(kind, name)]
        facts.pods.append(LivePod(slim(pod) or {}, kind, name, owner, cronjob))
    facts.cronjobs = idle_cronjobs(api, namespace, service_account,
                                   {str((live.cronjob.get("metadata") or {}).get("name") or "")
                                    for live in facts.pods if live.cronjob})
    facts.template_accounts = template_accounts(api, namespace, service_account, facts.pods)
    if not facts.pods:
        facts.moved_off = moved_off(api, namespace, service_account, facts.unannotated)
    try:
        listed = api.list_deployments(namespace)
    except KubeError:
        listed = []  # the pods' own view stands; the rendered RBAC grants this list
    owners = {p.owner_name for p in facts.pods if p.owner_kind == "Deployment"}
    facts.refused = refused_deployments(listed, service_account, owners) + refused_by_events(api, namespace,
                                                                                              service_account, pods)
    return facts


def template_accounts(api: KubeApi, namespace: str, service_account: str,
                      pods: list[LivePod]) -> dict[str, dict[str, str] | None]:
    """The ServiceAccounts that the pod templates of the live pods' Deployments, StatefulSets and DaemonSets, as
    read now, name instead of ``service_account`` (a change not rolled out yet: a paused Deployment, a rollout in
    progress, an OnDelete or partitioned one), each with its annotations, None where it does not exist. Best effort:
    a read that fails leaves that one out."""
    found: dict[str, dict[str, str] | None] = {}
    for live in pods:
        if live.owner_kind not in ("Deployment", "StatefulSet", "DaemonSet") or not live.owner:
            continue
        spec = ((live.owner.get("spec") or {}).get("template") or {}).get("spec") or {}
        named = service_account_of(spec)
        if not (spec.get("serviceAccountName") or spec.get("serviceAccount")) or named in (service_account, *found):
            continue
        try:
            account = api.service_account(namespace, named)
        except KubeError:
            continue
        found[named] = None if account is None else {
            str(k): str(v) for k, v in ((account.get("metadata") or {}).get("annotations") or {}).items()}
    return found


REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def moved_off(api: KubeApi, namespace: str, service_account: str, strays: list[LivePod]) -> dict[str, str]:
    """The Deployments of ``strays`` whose earlier ReplicaSets ran under ``service_account``: a Deployment keeps
    its old ReplicaSets (revisionHistoryLimit, 10 by default), each with the pod template of its revision, which
    kubectl rollout undo puts back. Best effort: a refused list leaves them unproved."""
    deployments = {live.owner_name for live in strays if live.owner_kind == "Deployment"}
    if not deployments:
        return {}
    try:
        replica_sets = api.list_namespaced("apps", "v1", "replicasets", namespace)
    except KubeError:
        return {}
    found: dict[str, str] = {}
    for replica_set in replica_sets:
        meta = replica_set.get("metadata") or {}
        owner = next((str(r.get("name")) for r in meta.get("ownerReferences") or []
                      if r.get("controller") and r.get("kind") == "Deployment"), None)
        spec = ((replica_set.get("spec") or {}).get("template") or {}).get("spec") or {}
        if owner not in deployments or service_account_of(spec) != service_account:
            continue
        revision = str((meta.get("annotations") or {}).get(REVISION_ANNOTATION) or "?")
        seen = found.get(f"Deployment/{owner}")
        if seen is None or _revision(revision) > _revision(seen.rsplit("revision ", 1)[-1].rstrip(")")):
            found[f"Deployment/{owner}"] = f"ReplicaSet {meta.get('name')} (revision {revision})"
    return found


def _revision(text: str) -> int:
    return int(text) if text.isdigit() else -1


# The workload kinds whose controllers record a refused create only as a FailedCreate event on themselves (their
# status has no ReplicaFailure condition): the StatefulSet controller's "create Pod web-0 in StatefulSet web failed
# error: <refusal>" (stateful_pod_control.go recordPodEvent), the DaemonSet and Job controllers' "Error creating:
# <refusal>" (controller_utils.go RealPodControl, FailedCreatePodReason).
EVENT_KINDS = (("apps", "v1", "statefulsets", "StatefulSet"), ("apps", "v1", "daemonsets", "DaemonSet"),
               ("batch", "v1", "jobs", "Job"))
_EVENT_PREFIX = re.compile(r"^(?:create Pod \S+ in StatefulSet \S+ failed error: |Error creating: )")


# The controllers read by a list by metadata.name, the verb manifests/harness-rbac.yaml.j2 grants (list items
# carry no kind); a Deployment by a GET first (an admin's kubeconfig), which that ClusterRole does not grant
_LISTED_CONTROLLERS = {"Deployment": ("apps", "v1", "deployments"),
                       "StatefulSet": ("apps", "v1", "statefulsets"), "DaemonSet": ("apps", "v1", "daemonsets"),
                       "Job": ("batch", "v1", "jobs"), "CronJob": ("batch", "v1", "cronjobs")}


def read_controller(api: KubeApi, namespace: str, kind: str, name: str
                    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the pod's controller, a Job's CronJob) as read; None where it is no kind read, is gone, or the read was
    refused (the pod alone still tells what the webhook did). Where the use label was put (the controller's own
    metadata, a CronJob's) and what its template says come from them."""
    owner = _read_one(api, namespace, kind, name)
    if kind != "Job" or owner is None:
        return owner, None
    parent = cronjob_of(owner)
    return owner, _read_one(api, namespace, "CronJob", parent) if parent else None


def _read_one(api: KubeApi, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    if kind not in _LISTED_CONTROLLERS or not name:
        return None
    if kind == "Deployment":
        with contextlib.suppress(KubeError):  # refused (harness-rbac grants list): the list below
            return slim(api.deployment(namespace, name))
    try:
        listed = api.list_namespaced(*_LISTED_CONTROLLERS[kind], namespace, f"metadata.name={name}")
    except KubeError:
        return None
    return slim(next((o for o in listed if (o.get("metadata") or {}).get("name") == name), None))


def _short(kind: str, obj: dict[str, Any], made: int) -> bool:
    """Fewer of its pods exist than it wants now: a refused create still stands (an old event alone is history)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "StatefulSet":
        return made < int(spec.get("replicas", 1) or 0)
    if kind == "DaemonSet":
        return made < int(status.get("desiredNumberScheduled") or 0)
    done = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in status.get("conditions") or [])
    return not done and made < int(spec.get("parallelism", 1) or 0) - int(status.get("succeeded") or 0)


def refused_by_events(api: KubeApi, namespace: str, service_account: str,
                      pods: list[dict[str, Any]]) -> list[RefusedController]:
    """StatefulSets, DaemonSets and Jobs whose pods would run under ``service_account`` (or whose pod template is
    labelled for Workload ID under another ServiceAccount: :func:`harness.checks.live_pods.meant_for` judges
    those), that have fewer pods than they want, and whose latest event is a refused create (FailedCreate): the
    refusal, as the controller recorded it. Best effort: a list the harness may not make says nothing."""
    owned: dict[str, int] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if not is_live(pod):
            continue
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller"):
                owned[str(ref.get("uid"))] = owned.get(str(ref.get("uid")), 0) + 1
    short: list[tuple[str, dict[str, Any]]] = []
    for group, version, plural, kind in EVENT_KINDS:
        try:
            listed = api.list_namespaced(group, version, plural, namespace)
        except KubeError:
            continue
        for obj in listed:
            template = (obj.get("spec") or {}).get("template") or {}
            spec = template.get("spec") or {}
            asks = ((template.get("metadata") or {}).get("labels") or {}).get(USE_LABEL) == "true"
            if service_account_of(spec) != service_account and not asks:
                continue
            if _short(kind, obj, owned.get(str((obj.get("metadata") or {}).get("uid")), 0)):
                short.append((kind, obj))
    if not short:
        return []
    try:
        events = api.list_namespaced("", "v1", "events", namespace, "reason=FailedCreate")
    except KubeError:
        return []
    found = []
    for kind, obj in short:
        meta = obj.get("metadata") or {}
        mine = [e for e in events if (e.get("involvedObject") or {}).get("uid") == meta.get("uid")
                and (e.get("involvedObject") or {}).get("kind") == kind]
        if not mine:
            continue
        latest = max(mine, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        template = (obj.get("spec") or {}).get("template") or {}
        found.append(RefusedController(
            kind, str(meta.get("name") or ""), "FailedCreate",
            _EVENT_PREFIX.sub("", str(latest.get("message") or "")),
            {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("annotations") or {}).items()},
            cronjob_of(obj) if kind == "Job" else None,
            service_account_of(template.get("spec") or {}),
        ))
    return sorted(found, key=lambda r: (r.kind, r.name))


def idle_cronjobs(api: KubeApi, namespace: str, service_account: str, running: set[str]) -> list[dict[str, Any]]:
    """The CronJobs whose pod template runs under ``service_account`` and that have no live pod (not in
    ``running``): a CronJob's pods are mostly ended (Succeeded, Failed) when the harness looks, so its jobTemplate
    alone says what its next pods will be. Best effort: a list the harness may not make says nothing."""
    try:
        listed = api.list_namespaced("batch", "v1", "cronjobs", namespace)
    except KubeError:
        return []
    found = []
    for cronjob in listed:
        template = (((cronjob.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        name = str((cronjob.get("metadata") or {}).get("name") or "")
        if name and name not in running and service_account_of(template.get("spec") or {}) == service_account:
            found.append(slim(cronjob) or {})
    return sorted(found, key=lambda c: str((c.get("metadata") or {}).get("name")))


def cronjob_of(job: dict[str, Any]) -> str | None:
    """The CronJob that made a Job (its controller reference), if one did."""
    return next((str(r.get("name")) for r in (job.get("metadata") or {}).get("ownerReferences") or []
                 if r.get("controller") and r.get("kind") == "CronJob" and r.get("name")), None)


def refused_deployments(deployments: list[dict[str, Any]], service_account: str,
                        owners: set[str] | None = None) -> list[RefusedController]:
    """Deployments whose pods would run under ``service_account`` (or that own live pods of it, ``owners``: a
    template changed since to name another ServiceAccount) and whose ReplicaSet's pod creation fails: a
    ReplicaFailure condition with status True (kubernetes' deployment controller copies it from the ReplicaSet,
    getReplicaFailures in pkg/controller/deployment/progress.go)."""
    found = []
    for deployment in deployments:
        template = (deployment.get("spec") or {}).get("template") or {}
        spec = template.get("spec") or {}
        name = str((deployment.get("metadata") or {}).get("name") or "")
        if (service_account_of(spec) != service_account
                and name not in (owners or set())):
            continue
        for condition in (deployment.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                found.append(RefusedController(
                    "Deployment", name,
                    str(condition.get("reason") or ""), str(condition.get("message") or ""),
                    {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("annotations") or {}).items()},
                    service_account=service_account_of(spec), owns_workload_pods=name in (owners or set()),
                ))
    return sorted(found, key=lambda r: r.name)


def _labelled_without_identity(pod: dict[str, Any]) -> bool:
    """A live pod of someone else's ServiceAccount, labelled for Workload ID and mutated, whose containers got no
    AZURE_CLIENT_ID: its ServiceAccount named no identity when it was made."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if (meta.get("labels") or {}).get(USE_LABEL) != "true" or (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == \
            MANAGED_BY:
        return False
    if not is_live(pod):
        return False
    names = {env.get("name") for c in spec.get("containers") or [] for env in c.get("env") or []}
    # mutated (the webhook injected the token file) yet no client id; an unmutated pod says nothing of its account
    return "AZURE_FEDERATED_TOKEN_FILE" in names and "AZURE_CLIENT_ID" not in names


def _is_live_pod_of(pod: dict[str, Any], service_account: str) -> bool:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
        return False  # the harness's own probe pods
    if not is_live(pod):
        return False
    return service_account_of(spec) == service_account


def owner_of(pod: dict[str, Any]) -> tuple[str, str]:
    """(kind, name) of the controller to restart or patch (:func:`harness.checks.podspec.controller_of`)."""
    return controller_of(pod)
