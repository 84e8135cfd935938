"""Probe pods: create one per workload (all at once), await them with a watch, read and parse their logs,
delete them (unless --keep); and sweep the leftovers of earlier runs by label.

probe.mode configmap (the default) first creates, per namespace, the ConfigMap holding the probe's source
(:mod:`harness.collect.probe_source`) and runs ``python3 -m probe`` from it in a stock Python image; the
ConfigMaps go with the pods (deleted after them, swept with them, removed on an interrupt)."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from harness.clouds import CloudEndpoints, resource_domain
from harness.collect.cache import KUBE_WORKERS, read_all
from harness.collect.kube import slim
from harness.collect.kube_api import KubeApi, KubeError
from harness.collect.probe_source import (
    CA_DIRECTORY,
    PROBE_COMMAND,
    SOURCE_ROOT,
    ca_file_in_pod,
    ca_volume,
    probe_bytecode_files,
    probe_source_files,
    source_configmap,
    source_configmap_name,
    source_keys,
    source_volume,
)
from harness.collect.retrying import LEDGER
from harness.collect.sweep import DEADLINE_ANNOTATION, mark_run_ended, sweep_leftovers
from harness.config import ProbeSettings, WorkloadConfig
from harness.facts import KubeFailure, PodFacts
from harness.manifests import render
from harness.names import (
    EVICTED,
    FATAL_WAITING,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAMESPACE_DELETED,
    NAMESPACE_DELETING,
    POD_DELETED,
    PROBE_CA_VOLUME,
    PROBE_CONTAINER,
    PROBE_SCHEMA,
    PROBE_SOURCE_VOLUME,
    RUN_ID_LABEL,
    TERMINAL_PHASES,
    USE_LABEL,
)

WORKLOAD_ANNOTATION = "wi-harness/workload"
GRACE_SECONDS = 15  # beyond activeDeadlineSeconds, for the kubelet to report the pod Failed
_LOG_TAIL_LINES = 20


@dataclass
class ProbeRequest:
    workload_id: str
    namespace: str
    service_account: str
    probe_config: dict[str, Any] = field(default_factory=dict)


def probe_config_for(
    workload: WorkloadConfig,
    settings: ProbeSettings,
    cloud: CloudEndpoints,
    retry_aadsts: list[int] | None = None,
    cloud_configured: bool = True,
) -> dict[str, Any]:
    """The WI_PROBE_CONFIG document for one workload: each check carries its token scope and the only hosts
    of ``cloud`` that may receive the token (and, for Key Vault, the resource its challenge must name). The
    probe waits out transient answers for at most :func:`retry_seconds`; ``retry_aadsts`` are the Entra codes
    it may wait on for this workload (harness.checks.transient; None: the probe's default, all of them). When
    harness.yaml names the cloud (``cloud_configured``: an azure section), the probe exchanges the token at its
    authority host only, whatever the pod's AZURE_AUTHORITY_HOST says; without one, at any https host."""
    config: dict[str, Any] = {
        "timeout_seconds": settings.request_timeout_seconds,
        "sdk_cross_check": settings.sdk_cross_check,
        "retry_seconds": retry_seconds(settings),
        "checks": [check.probe_check(cloud) for check in workload.access],
    }
    if retry_aadsts is not None:
        config["retry_aadsts"] = list(retry_aadsts)
    if cloud_configured and cloud.authority_host:  # the token is exchanged there and nowhere else
        config["authority_hosts"] = [resource_domain(cloud.authority_host)]
    scope = workload.scope or exchange_scope(cloud)
    if scope:
        config["scope"] = scope
    if settings.ca_file:
        config["ca_file"] = settings.ca_file
    if settings.ca_configmap is not None:  # the raw exchange and the SDK cross-check both trust this one bundle
        config["ca_file"] = ca_file_in_pod(settings.ca_configmap.key)
    return config


def retry_seconds(settings: ProbeSettings) -> float:
    """probe.retry_seconds, but at most half the pod's activeDeadlineSeconds (probe.timeout_seconds): the other
    half is for pulling and starting the image, the exchange's last attempt and the access checks."""
    return min(settings.retry_seconds, settings.timeout_seconds / 2)


def exchange_scope(cloud: CloudEndpoints) -> str | None:
    """The scope the probe's exchange step asks for when the workload names none: one the cloud's Entra knows
    (a public-cloud scope in a sovereign cloud is AADSTS500011)."""
    return next((service.scope for service in (*cloud.keyvault, *cloud.storage)), None)


def probe_pod_name(service_account: str) -> str:
    """``wi-probe-<sa>-<random>``: a DNS-1123 label (at most 63 characters)."""
    stem = re.sub(r"[^a-z0-9-]", "-", service_account.lower()).strip("-")[:40].strip("-") or "sa"
    return f"wi-probe-{stem}-{secrets.token_hex(3)}"


def build_probe_pod(
    request: ProbeRequest,
    run_id: str,
    settings: ProbeSettings,
    image: str | None = None,
    name: str | None = None,
    source_files: list[str] | None = None,
) -> dict[str, Any]:
    """The probe pod for one workload; ``image`` (--probe-image) replaces probe.image. In configmap mode
    ``source_files`` are the ConfigMap's keys (default: the installed probe's files)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    extra_env: dict[str, str] = {}
    command: list[str] | None = None
    if settings.mode == "configmap":
        if source_files is None:
            installed = probe_source_files()
            source_files = source_keys(installed, probe_bytecode_files(installed))
        files = source_files
        volumes.append(source_volume(run_id, files))
        mounts.append({"name": PROBE_SOURCE_VOLUME, "mountPath": SOURCE_ROOT, "readOnly": True})
        extra_env["PYTHONPATH"] = SOURCE_ROOT
        command = list(PROBE_COMMAND)
    if settings.ca_configmap is not None:
        volumes.append(ca_volume(settings.ca_configmap.name))
        mounts.append({"name": PROBE_CA_VOLUME, "mountPath": CA_DIRECTORY, "readOnly": True})
    (pod,) = render(
        "probe-pod.yaml.j2",
        name=name or probe_pod_name(request.service_account),
        namespace=request.namespace,
        service_account=request.service_account,
        labels={
            **settings.labels,
            "app.kubernetes.io/name": "wi-probe",
            MANAGED_BY_LABEL: MANAGED_BY,
            RUN_ID_LABEL: run_id,
            USE_LABEL: "true",
        },
        annotations={**settings.annotations, WORKLOAD_ANNOTATION: request.workload_id},
        image=image or settings.resolved_image,
        command=command,
        extra_env=extra_env,
        timeout_seconds=settings.timeout_seconds,
        resources={"requests": settings.resources.requests, "limits": settings.resources.limits},
        node_selector={"kubernetes.io/os": "linux", **settings.node_selector},
        tolerations=[toleration.spec() for toleration in settings.tolerations],
        image_pull_secrets=[{"name": name} for name in dict.fromkeys(settings.image_pull_secrets)],
        volumes=volumes,
        volume_mounts=mounts,
        probe_config=json.dumps(request.probe_config, separators=(",", ":")),
    )
    return pod


# ---------------------------------------------------------------- parsing


def parse_probe_log(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The wi-probe/v1 document in a container log (stderr lines may surround it), or why there is none."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"(?m)^\{", text):
        try:
            doc, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("schema") == PROBE_SCHEMA:
            if not isinstance(doc.get("steps"), list):
                return None, "the wi-probe/v1 document has no steps list"
            return doc, None
    lines = len(text.splitlines())
    return (
        None,
        f"no {PROBE_SCHEMA} JSON document in the probe's log ({lines} line{'s' if lines != 1 else ''})",
    )


def log_tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def observe(facts: PodFacts, pod: dict[str, Any]) -> None:
    """Update facts from a pod object (a list item or a watch event)."""
    facts.pod = slim(pod)
    status = pod.get("status") or {}
    facts.phase = status.get("phase") or facts.phase
    for container in status.get("containerStatuses") or []:
        if container.get("name") != PROBE_CONTAINER:
            continue
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        facts.waiting_reason = (waiting or {}).get("reason")
        facts.waiting_message = (waiting or {}).get("message")
        if terminated:
            facts.exit_code = terminated.get("exitCode")


def unbound(facts: PodFacts) -> bool:
    """Seen, and no node has taken it (no spec.nodeName): no kubelet runs it."""
    return facts.pod is not None and not (facts.pod.get("spec") or {}).get("nodeName")


def settled(facts: PodFacts) -> bool:
    """Done: the pod ended, the probe container will never start, or the probe container itself ended (a mesh
    sidecar that is not a native sidecar keeps the pod Running after the probe exits)."""
    return facts.phase in TERMINAL_PHASES or facts.waiting_reason in FATAL_WAITING or facts.exit_code is not None


# ---------------------------------------------------------------- lifecycle


class ProbeRun:
    """One run's probe pods, made as their workloads' facts come in and awaited together.

    :meth:`create` (from any thread) makes a workload's pod at once, after its namespace's source ConfigMap
    (configmap mode; made by the first create there, which the others in that namespace wait for). :meth:`finish`
    awaits them all, reading each pod's log and deleting it as soon as it settles (not after the last one), then
    deletes the ConfigMaps. Used as a context manager: an exception or interrupt (Ctrl-C, or SIGTERM, which the
    plugin turns into KeyboardInterrupt) before :meth:`finish` returned deletes every pod and ConfigMap of the run
    in the namespaces it touched, found by the run's label, including one whose create was sent but not answered."""

    def __init__(self, api: KubeApi, run_id: str, settings: ProbeSettings, image: str | None = None,
                 keep: bool = False, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api, self.run_id, self.settings, self.image, self.keep = api, run_id, settings, image, keep
        self.monotonic, self.sleep = monotonic, sleep
        self.files = probe_source_files() if settings.mode == "configmap" else {}
        self.bytecode = probe_bytecode_files(self.files)
        self._lock = threading.Lock()
        self._sources: dict[str, Future[KubeFailure | None]] = {}  # namespace -> its ConfigMap's create
        self._touched: list[str] = []  # namespaces a create was sent to (cleaned up on an interrupt)
        self._created: list[PodFacts] = []
        self._scopes: dict[int, str | None] = {}  # id(PodFacts) -> the retry scope its create ran in
        self._pool = ThreadPoolExecutor(max_workers=KUBE_WORKERS, thread_name_prefix="wi-probe")

    def __enter__(self) -> ProbeRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if kind is not None and not self.keep:
            delete_run_pods(self.api, list(self._touched), self.run_id)

    def _touch(self, namespace: str) -> None:
        with self._lock:
            if namespace not in self._touched:
                self._touched.append(namespace)

    def _source(self, namespace: str) -> KubeFailure | None:
        """The namespace's source ConfigMap, made once (the first caller makes it, the others wait); the API
        server's refusal, or None."""
        with self._lock:
            made = self._sources.get(namespace)
            first = made is None
            if made is None:
                made = self._sources[namespace] = Future()
        if first:
            self._touch(namespace)
            body = source_configmap(namespace, self.run_id, self.settings.labels, self.files, self.bytecode)
            # how long this run may need it: --sweep of another run leaves it alone until then
            body["metadata"]["annotations"] = {DEADLINE_ANNOTATION: str(self.settings.timeout_seconds)}
            try:
                self.api.create_config_map(namespace, body)
                made.set_result(None)
            except KubeError as exc:  # 409: this run's own, from an earlier attempt of the same request
                made.set_result(None if exc.failure.status == 409 else exc.failure)
            except BaseException as exc:
                made.set_exception(exc)
                raise
        return made.result()

    def create(self, request: ProbeRequest, scope: str | None = None) -> PodFacts:
        """``scope``: the retry scope (collect/retrying.py) the pod's later reads and delete count for."""
        with LEDGER.scope(scope):
            facts = self._create(request)
        self._scopes[id(facts)] = scope
        return facts

    def _create(self, request: ProbeRequest) -> PodFacts:
        body = build_probe_pod(request, self.run_id, self.settings, self.image,
                               source_files=source_keys(self.files, self.bytecode))
        facts = PodFacts(namespace=request.namespace, name=body["metadata"]["name"])
        refused = self._source(request.namespace) if self.files else None
        if refused is not None:
            facts.create_error, facts.refused_resource = refused, "configmaps"
            return facts
        self._touch(request.namespace)
        try:
            observe(facts, self.api.create_pod(request.namespace, body))
        except KubeError as exc:
            mine = _own_pod_after_retry(self.api, exc, request.namespace, facts.name, self.run_id)
            if mine is None:
                facts.create_error = exc.failure
                return facts
            observe(facts, mine)
        facts.created = True
        with self._lock:
            self._created.append(facts)
        return facts

    def _done_with(self, facts: PodFacts) -> None:
        with LEDGER.scope(self._scopes.get(id(facts))):
            read_probe_output(self.api, facts)
            if not self.keep:
                delete_pod(self.api, facts)

    def finish(self) -> None:
        """Await every created pod; each one's log is read (and the pod deleted) as it settles, the rest at the
        deadline; then the NetworkPolicies that select them are read and the ConfigMaps deleted."""
        created = list(self._created)
        unbound_by = self.monotonic() + self.settings.timeout_seconds
        deadline = unbound_by + GRACE_SECONDS
        pending: dict[int, Future[None]] = {}

        def done_with(facts: PodFacts) -> None:
            pending[id(facts)] = self._pool.submit(self._done_with, facts)

        await_pods(self.api, created, self.run_id, deadline, self.monotonic, self.sleep, on_settled=done_with,
                   unbound_by=unbound_by)
        note_namespace_deletions(self.api, created)
        note_why_not_started(self.api, created)
        for facts in created:  # settled before the wait began, or timed out
            if id(facts) not in pending:
                done_with(facts)
        for future in pending.values():
            future.result()
        read_network_policies(self.api, created)
        sources = [namespace for namespace, made in self._sources.items() if made.done() and made.result() is None]
        if self.keep:  # kept for a look, and done with: the next --sweep may take them at once (collect/sweep.py)
            mark_run_ended(self.api, sorted({f.namespace for f in created} | set(sources)), self.run_id,
                           self.settings.labels)
        else:
            list(self._pool.map(lambda namespace: _delete_config_map(
                self.api, namespace, source_configmap_name(self.run_id)), sources))


def run_probe_pods(
    api: KubeApi,
    requests: list[ProbeRequest],
    run_id: str,
    settings: ProbeSettings,
    image: str | None = None,
    keep: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, PodFacts]:
    """Every probe pod of ``requests`` at once (:class:`ProbeRun`): created KUBE_WORKERS at a time, awaited,
    their logs read; deleted with their ConfigMaps unless ``keep``; results in the requests' order."""
    with ProbeRun(api, run_id, settings, image, keep, monotonic, sleep) as run:
        made = read_all(run.create, requests, KUBE_WORKERS)
        run.finish()
    return {request.workload_id: facts for request, facts in zip(requests, made, strict=True)}


def gone(facts: PodFacts, last: dict[str, Any] | None, removed: bool = True) -> None:
    """Someone else deleted the pod before it finished (not this run: the harness deletes a pod only once it
    settled): ``last`` is its state then (its deletionTimestamp set, or the watch's DELETED object), ``removed``
    when the object is gone. An eviction (kubectl drain, the Eviction API) is named by the DisruptionTarget
    condition the API server adds before it deletes (pod disruption conditions, Kubernetes 1.26+: reason
    EvictionByEvictionAPI, DeletionByTaintManager, ...)."""
    earlier = facts.waiting_message or ""
    if last is not None:
        observe(facts, last)
    if removed:
        facts.phase = "Failed"
    conditions = ((last or {}).get("status") or {}).get("conditions") or []
    disrupted = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "DisruptionTarget"
                      and c.get("status") == "True"), None)
    how = (f": {EVICTED} (DisruptionTarget {disrupted.get('reason')}: {disrupted.get('message')})"
           if disrupted is not None else "")
    if not how and earlier.startswith(POD_DELETED):  # a later status without the condition: what was seen stays
        facts.waiting_message = earlier
        return
    facts.waiting_message = POD_DELETED + how


def note_namespace_deletions(api: KubeApi, pods: list[PodFacts]) -> None:
    """For each pod deleted before it finished: whether its namespace went (NamespaceLifecycle; the namespace
    controller deletes its content), which is then the cause to name."""
    for namespace in sorted({f.namespace for f in pods if (f.waiting_message or "").startswith(POD_DELETED)}):
        try:
            found = api.namespace(namespace)
        except KubeError:
            continue
        since = ((found or {}).get("metadata") or {}).get("deletionTimestamp")
        note = (f"; {NAMESPACE_DELETED}" if found is None
                else f"; {NAMESPACE_DELETING} (Terminating since {since})" if since else "")
        for facts in pods:
            if facts.namespace == namespace and (facts.waiting_message or "").startswith(POD_DELETED):
                facts.waiting_message = (facts.waiting_message or "") + note


STARTING = ("ContainerCreating", "PodInitializing")


def note_why_not_started(api: KubeApi, pods: list[PodFacts]) -> None:
    """For a pod still starting at the deadline (ContainerCreating: its volumes being mounted, or its image
    pulled): the kubelet's latest failure event about it (FailedMount of a ConfigMap that went, a pull failing)
    as its waiting message, which the kubelet leaves empty there. Nothing when events cannot be listed."""
    for facts in pods:
        ended = facts.timed_out or ((facts.pod or {}).get("status") or {}).get("reason") == "DeadlineExceeded"
        if not ended or facts.waiting_reason not in STARTING or facts.waiting_message:
            continue
        try:
            events = api.list_namespaced("", "v1", "events", facts.namespace, f"involvedObject.name={facts.name}")
        except (KubeError, AttributeError):
            continue
        # the kubelet's failures (FailedMount, FailedAttachVolume, FailedCreatePodSandBox, Failed for a pull), not
        # the scheduler's wait nor the deadline's end
        warnings = [e for e in events if e.get("type") == "Warning" and str(e.get("reason") or "").startswith("Failed")
                    and e.get("reason") != "FailedScheduling"]
        if warnings:
            latest = max(warnings, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
            facts.waiting_message = f"{latest.get('reason')}: {latest.get('message')}"


def read_network_policies(api: KubeApi, pods: list[PodFacts]) -> None:
    """Each pod's namespace's NetworkPolicies (name, namespace, spec), which the checks match against the pod
    (harness.checks.network_policies); left None when the harness may not list them."""
    if not pods:
        return
    try:
        policies = api.list_objects("networking.k8s.io", "v1", "networkpolicies")
    except KubeError:
        return
    for facts in pods:
        facts.network_policies = [
            {"metadata": {"name": (p.get("metadata") or {}).get("name"), "namespace": facts.namespace},
             "spec": p.get("spec") or {}}
            for p in policies if (p.get("metadata") or {}).get("namespace") == facts.namespace]


def delete_run_pods(api: KubeApi, namespaces: list[str], run_id: str) -> list[str]:
    """Delete every pod of this run in ``namespaces`` by its run-id label, then the run's ConfigMaps there
    (best effort: the run is ending); several namespaces at once, as the run made them. Returns the namespaces
    where both lists answered and held nothing of the run (nothing there to make sure is gone)."""
    selector = f"{RUN_ID_LABEL}={run_id}"
    everywhere = _run_pods_everywhere(api, selector) if len(namespaces) > 1 else None

    def clear(namespace: str) -> bool:
        if everywhere is not None:
            pods: list[dict[str, Any]] | None = everywhere.get(namespace, [])
        else:
            try:
                pods, _ = api.list_pods(namespace, selector)
            except KubeError:
                pods = None
        for pod in pods or []:
            name = (pod.get("metadata") or {}).get("name")
            if name:
                try:
                    api.delete_pod(namespace, name)
                except KubeError:
                    continue
        try:
            config_maps = api.list_config_maps(namespace, selector)
        except KubeError:
            return False
        for config_map in config_maps:
            name = (config_map.get("metadata") or {}).get("name")
            if name:
                _delete_config_map(api, namespace, name)
        return pods == [] and not config_maps

    return [namespace for namespace, clean in zip(namespaces, read_all(clear, namespaces, KUBE_WORKERS),
                                                  strict=True) if clean]


def _run_pods_everywhere(api: KubeApi, selector: str) -> dict[str, list[dict[str, Any]]] | None:
    """The run's pods of every namespace, by namespace, from one list (the harness's ClusterRole may list pods
    cluster-wide); None when that list is refused (roles namespaced only) or unanswered: list each namespace."""
    try:
        items, _ = api.list_pods(None, selector)
    except KubeError:
        return None
    return pods_by_namespace(items)


def pods_by_namespace(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        grouped.setdefault((item.get("metadata") or {}).get("namespace") or "", []).append(item)
    return grouped


def _delete_config_map(api: KubeApi, namespace: str, name: str) -> bool:
    try:
        api.delete_config_map(namespace, name)
    except KubeError:
        return False
    return True


def await_pods(
    api: KubeApi,
    pods: list[PodFacts],
    run_id: str,
    deadline: float,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_settled: Callable[[PodFacts], None] | None = None,
    unbound_by: float | None = None,
) -> None:
    """Watch each namespace's probe pods until they settle or the deadline passes (polls if watch fails);
    ``on_settled`` is called once for each pod as it is first seen settled. Past ``unbound_by`` (the pods'
    activeDeadlineSeconds), pods that no node has taken are not awaited to the deadline: its grace is for a
    kubelet to report a pod Failed, and only the kubelet of the node a pod is bound to enforces
    activeDeadlineSeconds (kubernetes/kubernetes#7868), so a pod no node took stays Pending past it
    (buildpacks-community/kpack#1658)."""
    selector = f"{RUN_ID_LABEL}={run_id}"
    told: set[int] = set()
    # the client stopped asking the API server (no connection could be opened: down, or a network rule): every
    # later look fails at once, so polling it to the deadline only delays the run's end and its clean-up
    gave_up: KubeError | None = None

    def giving_up(exc: KubeError) -> None:
        nonlocal gave_up
        if exc.final and gave_up is None:
            gave_up = exc

    def until(mine: dict[str, PodFacts]) -> float:
        waiting = [f for f in mine.values() if not settled(f)]
        if unbound_by is not None and waiting and all(unbound(f) for f in waiting):
            return min(unbound_by, deadline)
        return deadline

    def seen(facts: PodFacts, pod: dict[str, Any]) -> None:
        deleted = (facts.waiting_message or "").startswith(POD_DELETED)
        if deleted or (not settled(facts) and (pod.get("metadata") or {}).get("deletionTimestamp")):
            gone(facts, pod, removed=False)  # deleted gracefully: its container is being stopped
        else:
            observe(facts, pod)
        if on_settled is not None and id(facts) not in told and settled(facts):
            told.add(id(facts))
            on_settled(facts)

    by_namespace: dict[str, dict[str, PodFacts]] = {}
    for facts in pods:
        by_namespace.setdefault(facts.namespace, {})[facts.name] = facts

    def look(namespace: str) -> str | None:
        """One list of the namespace's probe pods, each seen; the list's resourceVersion, None when it failed."""
        try:
            items, version = api.list_pods(namespace, selector)
        except KubeError as exc:
            giving_up(exc)
            return None
        listed_in(namespace, items)
        return version

    def listed_in(namespace: str, items: list[dict[str, Any]]) -> None:
        mine = by_namespace[namespace]
        listed = set()
        for item in items:
            name = (item.get("metadata") or {}).get("name")
            listed.add(name)
            if name in mine:
                seen(mine[name], item)
        for name, facts in mine.items():
            if name not in listed and not settled(facts):  # deleted while no watch was open
                gone(facts, None)

    # the run's pods of every namespace in one list (its run-id label): the harness's ClusterRole may list pods
    # cluster-wide; a user whose roles are namespaced only (403) has each namespace listed instead
    cluster_wide = len(by_namespace) > 1

    def look_at(namespaces: list[str]) -> dict[str, str | None]:
        """Each namespace's pods listed and seen: the lists' resourceVersions, None where one failed."""
        nonlocal cluster_wide
        if cluster_wide:
            try:
                items, version = api.list_pods(None, selector)
            except KubeError as exc:
                if exc.failure.status != 403:
                    giving_up(exc)
                    return dict.fromkeys(namespaces)
                cluster_wide = False
            else:
                grouped = pods_by_namespace(items)
                for namespace in namespaces:
                    listed_in(namespace, grouped.get(namespace, []))
                return dict.fromkeys(namespaces, version)
        return dict(zip(namespaces, read_all(look, namespaces, KUBE_WORKERS), strict=True))

    def await_namespace(namespace: str, listed_at: str | None = None) -> None:
        """Watch the namespace's pods until they settle or the deadline; ``listed_at``: the version of a list
        just made (the first watch starts there)."""
        mine = by_namespace[namespace]
        watch_supported = True
        fruitless = 0  # watches in a row that ended (410, a drop) before any event: relist at once, then pace
        while gave_up is None and any(not settled(f) for f in mine.values()) and monotonic() < until(mine):
            if fruitless > 1:
                sleep(1.0)
            version, listed_at = listed_at or look(namespace), None
            if version is None:
                if gave_up is None:
                    sleep(1.0)
                continue
            if all(settled(f) for f in mine.values()):
                break
            if not watch_supported:
                sleep(1.0)
                continue
            remaining = int(until(mine) - monotonic()) + 1
            fruitless += 1
            try:
                for kind, obj in api.watch_pods(namespace, selector, version, min(remaining, 60)):
                    name = (obj.get("metadata") or {}).get("name")
                    if kind == "ERROR":
                        break  # e.g. 410 Expired ("too old resource version"): relist, then watch from there
                    fruitless = 0
                    if name in mine:
                        if kind == "DELETED" and not settled(mine[name]):
                            gone(mine[name], obj)
                        elif kind != "DELETED":
                            seen(mine[name], obj)
                    if all(settled(f) for f in mine.values()) or monotonic() >= until(mine):
                        break
            except KubeError as exc:
                giving_up(exc)
                # a watch refused for good (405, 403: no watch verb) turns to polling; one answered 410 Gone or
                # Expired (its resourceVersion compacted away), or a stream that broke, is listed and watched again,
                # as client-go's reflector does (isExpiredError / a broken watch: relist, then resume)
                watch_supported = _watch_resumable(exc.failure)

    def unsettled(namespace: str) -> bool:
        return any(not settled(f) for f in by_namespace[namespace].values())

    # The pods of all namespaces start about together: one namespace is watched (here, so an interrupt ends it at
    # once) until its pods settle, then the others are looked at (in one list, or the next few namespaces
    # together), and the first still unsettled is watched. One after another, each namespace's list waited for the
    # one before it (50 namespaces: 50 round trips in a row after the first pod settled).
    waiting = list(by_namespace)
    while waiting and gave_up is None and monotonic() < deadline:
        versions = look_at(waiting if cluster_wide else waiting[:KUBE_WORKERS])
        waiting = [n for n in waiting if unsettled(n)]
        if waiting:
            await_namespace(waiting[0], versions.get(waiting[0]))
            waiting = waiting[1:]
    # pods of a namespace that never settle (no node takes them) hold the watch until the deadline, and the
    # namespaces after it were never read. Their pods ran all the same: each is read once now, so a probe that
    # finished is not taken for a timeout, nor an unschedulable one
    for namespace in sorted({f.namespace for f in pods if not settled(f)}):
        try:
            items, _ = api.list_pods(namespace, selector)
        except KubeError:
            continue
        listed = set()
        for item in items:
            name = (item.get("metadata") or {}).get("name")
            listed.add(name)
            if name in by_namespace[namespace] and not settled(by_namespace[namespace][name]):
                seen(by_namespace[namespace][name], item)
        for name, facts in by_namespace[namespace].items():
            if name not in listed and not settled(facts):  # gone since the last look
                gone(facts, None)
    for facts in pods:
        if settled(facts):
            continue
        if gave_up is not None:  # no timeout: the API server stopped answering about it (read as its log's failure)
            facts.probe_error = f"could not read the probe's log: {gave_up}"
        else:
            facts.timed_out = True


def _watch_resumable(failure: KubeFailure) -> bool:
    """Whether a failed watch is worth opening again after a relist: 410 (Gone, Expired), the stream broken or never
    answered (status 0), or the server busy (429, 5xx); not a refusal that will answer the same (403, 404, 405)."""
    return failure.status in (0, 410, 429) or failure.status >= 500


def read_probe_output(api: KubeApi, facts: PodFacts) -> None:
    if facts.exit_code is None and facts.phase not in TERMINAL_PHASES and facts.waiting_reason is not None:
        return  # the container never started: there is no log
    try:
        text = api.pod_log(facts.namespace, facts.name, PROBE_CONTAINER)
    except KubeError as exc:
        facts.probe_error = f"could not read the probe's log: {exc}"
        return
    facts.probe, facts.probe_error = parse_probe_log(text)
    if facts.probe is None:
        facts.log_tail = log_tail(text)


def delete_pod(api: KubeApi, facts: PodFacts) -> None:
    try:
        api.delete_pod(facts.namespace, facts.name)
        facts.deleted = True
    except KubeError:
        facts.deleted = False


def _own_pod_after_retry(
    api: KubeApi, exc: KubeError, namespace: str, name: str, run_id: str
) -> dict[str, Any] | None:
    """A create retried after a lost answer (collect/retrying.py) meets the pod its first attempt made: 409
    AlreadyExists for a name only this run uses. That pod, when it carries this run's label."""
    if exc.failure.status != 409:
        return None
    try:
        pod = api.pod(namespace, name)
    except KubeError:
        return None
    labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
    return pod if pod is not None and labels.get(RUN_ID_LABEL) == run_id else None


def sweep(api: KubeApi, namespaces: list[str], current_run_id: str, now: Callable[[], float] = time.time,
          kept: list[str] | None = None) -> list[str]:
    """Delete what earlier runs left (harness/collect/sweep.py): their pods past their deadline, then the source
    ConfigMaps of runs with no live pod (cluster-wide when allowed, else in ``namespaces``); never this run's, nor
    another live run's. Returns ``NS/POD`` for each pod and ``NS/configmap/NAME`` for each ConfigMap deleted;
    ``kept`` gets a line for each earlier run whose objects are still within their bound."""
    return sweep_leftovers(api, namespaces, current_run_id, GRACE_SECONDS, now, kept)
