"""Probe pods: create one per workload (all at once), await them with a watch, read and parse their logs,
delete them (unless --keep); and sweep the leftovers of earlier runs by label.

probe.mode configmap (the default) first creates, per namespace, the ConfigMap holding the probe's source
(:mod:`harness.collect.probe_source`) and runs ``python3 -m probe`` from it in a stock Python image; the
ConfigMaps go with the pods (deleted after them, swept with them, removed on an interrupt)."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.clouds import CloudEndpoints
from harness.collect.cache import KUBE_WORKERS, read_all
from harness.collect.kube import slim
from harness.collect.kube_api import KubeApi, KubeError
from harness.collect.network_policies import read_egress_policies
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
from harness.collect.sweep import DEADLINE_ANNOTATION, mark_run_ended, sweep_leftovers
from harness.config import ProbeSettings, WorkloadConfig
from harness.facts import KubeFailure, PodFacts
from harness.manifests import render
from harness.names import (
    FATAL_WAITING,
    MANAGED_BY,
    MANAGED_BY_LABEL,
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
) -> dict[str, Any]:
    """The WI_PROBE_CONFIG document for one workload: each check carries its token scope and the only hosts
    of ``cloud`` that may receive the token (and, for Key Vault, the resource its challenge must name). The
    probe waits out transient answers for at most :func:`retry_seconds`; ``retry_aadsts`` are the Entra codes
    it may wait on for this workload (harness.checks.transient; None: the probe's default, all of them)."""
    config: dict[str, Any] = {
        "timeout_seconds": settings.request_timeout_seconds,
        "sdk_cross_check": settings.sdk_cross_check,
        "retry_seconds": retry_seconds(settings),
        "checks": [check.probe_check(cloud) for check in workload.access],
    }
    if retry_aadsts is not None:
        config["retry_aadsts"] = list(retry_aadsts)
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


def settled(facts: PodFacts) -> bool:
    """Done: the pod ended, the probe container will never start, or the probe container itself ended (a mesh
    sidecar that is not a native sidecar keeps the pod Running after the probe exits)."""
    return facts.phase in TERMINAL_PHASES or facts.waiting_reason in FATAL_WAITING or facts.exit_code is not None


# ---------------------------------------------------------------- lifecycle


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
    """Create every probe pod at once (in configmap mode after its namespace's source ConfigMap), await them
    all, read their logs; delete them and the ConfigMaps unless ``keep``.

    Interrupted (Ctrl-C, or SIGTERM, which the plugin turns into KeyboardInterrupt), it still deletes them,
    including one whose create request was sent but not yet answered: found by the run's label."""
    results: dict[str, PodFacts] = {}
    created: list[PodFacts] = []
    namespaces = sorted({r.namespace for r in requests})
    sources: list[str] = []  # namespaces holding this run's source ConfigMap
    try:
        source_refused: dict[str, KubeFailure] = {}
        files = probe_source_files() if settings.mode == "configmap" and requests else {}
        bytecode = probe_bytecode_files(files)
        # Creates, log reads and deletes go KUBE_WORKERS at a time, not a round trip each in a row (an interrupt
        # meanwhile still deletes by the run's label, below).

        def create_source(namespace: str) -> None:
            body = source_configmap(namespace, run_id, settings.labels, files, bytecode)
            # how long this run may need it: --sweep of another run leaves it alone until then
            body["metadata"]["annotations"] = {DEADLINE_ANNOTATION: str(settings.timeout_seconds)}
            try:
                api.create_config_map(namespace, body)
            except KubeError as exc:
                if exc.failure.status != 409:  # 409: this run's own, from an earlier attempt
                    source_refused[namespace] = exc.failure

        if files:
            read_all(create_source, namespaces, KUBE_WORKERS)
            sources.extend(namespace for namespace in namespaces if namespace not in source_refused)

        bodies = {}
        for request in requests:
            bodies[request.workload_id] = body = build_probe_pod(request, run_id, settings, image,
                                                                 source_files=source_keys(files, bytecode))
            results[request.workload_id] = PodFacts(namespace=request.namespace, name=body["metadata"]["name"])

        def create(request: ProbeRequest) -> None:
            facts, body = results[request.workload_id], bodies[request.workload_id]
            refused = source_refused.get(request.namespace)
            if refused is not None:
                facts.create_error, facts.refused_resource = refused, "configmaps"
                return
            try:
                observe(facts, api.create_pod(request.namespace, body))
            except KubeError as exc:
                mine = _own_pod_after_retry(api, exc, request.namespace, facts.name, run_id)
                if mine is None:
                    facts.create_error = exc.failure
                    return
                observe(facts, mine)
            facts.created = True

        read_all(create, requests, KUBE_WORKERS)
        created.extend(results[r.workload_id] for r in requests if results[r.workload_id].created)
        deadline = monotonic() + settings.timeout_seconds + GRACE_SECONDS
        await_pods(api, created, run_id, deadline, monotonic, sleep)
        read_all(lambda facts: read_probe_output(api, facts), created, KUBE_WORKERS)
        read_egress_policies(api, created)
    except BaseException:
        if not keep:
            delete_run_pods(api, namespaces, run_id)
        raise
    finally:
        if not keep:
            read_all(lambda facts: delete_pod(api, facts), created, KUBE_WORKERS)
            read_all(lambda namespace: _delete_config_map(api, namespace, source_configmap_name(run_id)), sources,
                     KUBE_WORKERS)
        else:  # kept for a look, and done with: the next --sweep may take them at once (collect/sweep.py)
            mark_run_ended(api, sorted({f.namespace for f in created} | set(sources)), run_id, settings.labels)
    return results


def delete_run_pods(api: KubeApi, namespaces: list[str], run_id: str) -> None:
    """Delete every pod of this run in ``namespaces`` by its run-id label, then the run's ConfigMaps there
    (best effort: the run is ending)."""
    selector = f"{RUN_ID_LABEL}={run_id}"
    for namespace in namespaces:
        try:
            pods, _ = api.list_pods(namespace, selector)
        except KubeError:
            pods = []
        for pod in pods:
            name = (pod.get("metadata") or {}).get("name")
            if name:
                try:
                    api.delete_pod(namespace, name)
                except KubeError:
                    continue
        try:
            config_maps = api.list_config_maps(namespace, selector)
        except KubeError:
            continue
        for config_map in config_maps:
            name = (config_map.get("metadata") or {}).get("name")
            if name:
                _delete_config_map(api, namespace, name)


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
) -> None:
    """Watch each namespace's probe pods until they settle or the deadline passes (polls if watch fails)."""
    selector = f"{RUN_ID_LABEL}={run_id}"
    by_namespace: dict[str, dict[str, PodFacts]] = {}
    for facts in pods:
        by_namespace.setdefault(facts.namespace, {})[facts.name] = facts
    for namespace, mine in by_namespace.items():
        watch_supported = True
        while any(not settled(f) for f in mine.values()) and monotonic() < deadline:
            try:
                items, version = api.list_pods(namespace, selector)
            except KubeError:
                sleep(1.0)
                continue
            for item in items:
                name = (item.get("metadata") or {}).get("name")
                if name in mine:
                    observe(mine[name], item)
            if all(settled(f) for f in mine.values()):
                break
            if not watch_supported:
                sleep(1.0)
                continue
            remaining = int(deadline - monotonic()) + 1
            try:
                for kind, obj in api.watch_pods(namespace, selector, version, min(remaining, 60)):
                    name = (obj.get("metadata") or {}).get("name")
                    if kind == "ERROR":
                        break  # e.g. 410 Gone: relist
                    if name in mine:
                        if kind == "DELETED" and mine[name].phase not in TERMINAL_PHASES:
                            mine[name].phase = "Failed"
                            mine[name].waiting_message = "the pod was deleted before it finished"
                        elif kind != "DELETED":
                            observe(mine[name], obj)
                    if all(settled(f) for f in mine.values()) or monotonic() >= deadline:
                        break
            except KubeError:
                watch_supported = False
    for facts in pods:
        if not settled(facts):
            facts.timed_out = True


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


def sweep(api: KubeApi, namespaces: list[str], current_run_id: str, now: Callable[[], float] = time.time) -> list[str]:
    """Delete what earlier runs left (harness/collect/sweep.py): their pods past their deadline, then the source
    ConfigMaps of runs with no live pod (cluster-wide when allowed, else in ``namespaces``); never this run's, nor
    another live run's. Returns ``NS/POD`` for each pod and ``NS/configmap/NAME`` for each ConfigMap deleted."""
    return sweep_leftovers(api, namespaces, current_run_id, GRACE_SECONDS, now)
