"""``--sweep``: delete what earlier runs left behind, and nothing a run still alive may need.

A probe pod belongs to a run still alive until its own deadline has passed with room to spare: creation +
``activeDeadlineSeconds`` + the owner's grace for the kubelet + :data:`MARGIN_SECONDS` (the owner awaits its
pods exactly that long, then reads their logs and deletes them). A source ConfigMap is a leftover when it is as
old (its run's deadline is in its :data:`DEADLINE_ANNOTATION`) and no pod of its run is still within its own
bound. So two runs against one cluster, both with ``--sweep``, never delete each other's objects, and a run
killed outright (SIGKILL, a node lost) is cleaned up by the first ``--sweep`` after its deadline. Ages are read
from ``metadata.creationTimestamp`` against this machine's clock.

A run that keeps its objects (``--keep``) says it is done with them: a marker ConfigMap per namespace
(:data:`ENDED_LABEL`), made after them. The next ``--sweep`` takes what was made before the marker at once, and
the marker with the last of them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from harness.collect.kube_api import KubeApi, KubeError
from harness.names import MANAGED_BY, MANAGED_BY_LABEL, RUN_ID_LABEL
from harness.values import counted

DEADLINE_ANNOTATION = "wi-harness/probe-deadline-seconds"
MARGIN_SECONDS = 10.0
UNKNOWN_DEADLINE_SECONDS = 3600.0  # probe.timeout_seconds's maximum: a ConfigMap that does not say its deadline
ENDED_LABEL = "wi-harness/run-ended"


def ended_marker_name(run_id: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")[:200] or "run"
    return f"wi-harness-ended-{stem}"


def mark_run_ended(
    api: KubeApi, namespaces: list[str], run_id: str, extra_labels: dict[str, str] | None = None
) -> None:
    """Best effort: a kept run's objects are left for a person, and no live run needs them any more. The marker
    carries probe.labels as the run's other objects do (a policy may require them on every object)."""
    labels = {**(extra_labels or {}), MANAGED_BY_LABEL: MANAGED_BY, RUN_ID_LABEL: run_id, ENDED_LABEL: "true"}
    for namespace in namespaces:
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ended_marker_name(run_id), "namespace": namespace, "labels": dict(labels)}}
        try:
            api.create_config_map(namespace, body)
        except KubeError:
            continue


def created_at(obj: dict[str, Any]) -> float | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_sweepable_at(pod: dict[str, Any], grace: float) -> float | None:
    """When no live run waits for this pod any more (its deadline passed with room to spare); None: no creation
    time to tell by."""
    created = created_at(pod)
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    if created is None:
        return None
    bound = float(deadline) if isinstance(deadline, int | float) else UNKNOWN_DEADLINE_SECONDS
    return created + bound + grace + MARGIN_SECONDS


def pod_expired(pod: dict[str, Any], now: float, grace: float) -> bool:
    """Past its deadline with room to spare: no live run waits for this pod any more."""
    at = pod_sweepable_at(pod, grace)
    return at is not None and now > at


def config_map_sweepable_at(config_map: dict[str, Any], grace: float) -> float | None:
    created = created_at(config_map)
    if created is None:
        return None
    annotations = (config_map.get("metadata") or {}).get("annotations") or {}
    try:
        bound = float(annotations.get(DEADLINE_ANNOTATION, UNKNOWN_DEADLINE_SECONDS))
    except ValueError:
        bound = UNKNOWN_DEADLINE_SECONDS
    return created + bound + grace + MARGIN_SECONDS


def config_map_expired(config_map: dict[str, Any], now: float, grace: float) -> bool:
    at = config_map_sweepable_at(config_map, grace)
    return at is not None and now > at


def kept_note(run: str, objects: list[tuple[str, float | None]], now: float) -> str:
    """One line for an earlier run whose objects --sweep left: how many, where, why, and from when it takes
    them (the latest of their bounds; a run killed outright is cleaned up then)."""
    namespaces = sorted({namespace for namespace, _ in objects})
    times = [at for _, at in objects if at is not None]
    when = ""
    if times:
        at = max(times)
        when = (f"; a --sweep from {datetime.fromtimestamp(at, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} "
                f"(in {_duration(at - now)}) deletes them")
    return (f"kept {counted(len(objects), 'object')} of run {run} (in {', '.join(namespaces)}): younger than their "
            f"probe deadline plus {MARGIN_SECONDS:g} s and the owner's grace, so that run may still be using "
            f"them{when}")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return counted(seconds, "second")
    return counted(round(seconds / 60), "minute")


def held_note(obj: dict[str, Any], kind: str) -> str:
    """What follows a swept object's name when finalizers keep it: the API server only marks an object with
    finalizers (deletionTimestamp) and keeps it, Terminating, until their controllers remove them (the generic
    registry's graceful deletion; a finalizer whose controller is gone holds it for ever)."""
    meta = obj.get("metadata") or {}
    finalizers = [str(f) for f in meta.get("finalizers") or []]
    if not finalizers:
        return ""
    return (f" (not gone: finalizers {', '.join(finalizers)} keep it Terminating until their controller removes "
            f"them; kubectl get {kind} -n {meta.get('namespace')} {meta.get('name')} -o yaml shows them)")


def sweep_leftovers(
    api: KubeApi,
    namespaces: list[str],
    current_run_id: str,
    grace: float,
    now: Callable[[], float] = time.time,
    kept: list[str] | None = None,
) -> list[str]:
    """Delete earlier runs' expired probe pods, then the source ConfigMaps of runs with no pod left within its
    bound (cluster-wide when allowed, else in ``namespaces``). Returns ``NS/POD`` for each pod and
    ``NS/configmap/NAME`` for each ConfigMap deleted; ``kept`` gets one line per earlier run whose objects are
    left because they are still within their bound (:func:`kept_note`)."""
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    swept: list[str] = []
    alive: set[str] = set()  # runs with a pod still within its bound
    left: dict[str, list[tuple[str, float | None]]] = {}  # run -> (namespace, sweepable at) of what stays
    moment = now()
    config_maps = _managed(lambda ns, sel: (api.list_config_maps(ns, sel), None), namespaces, selector)
    ended: dict[str, float] = {}  # run -> when it said it was done (its latest marker)
    for config_map in config_maps:
        labels = (config_map.get("metadata") or {}).get("labels") or {}
        made = created_at(config_map)
        if labels.get(ENDED_LABEL) == "true" and made is not None:
            run = str(labels.get(RUN_ID_LABEL))
            ended[run] = max(made, ended.get(run, made))
    for pod in _managed(api.list_pods, namespaces, selector):
        meta = pod.get("metadata") or {}
        run = (meta.get("labels") or {}).get(RUN_ID_LABEL)
        if run == current_run_id:
            continue
        if meta.get("deletionTimestamp") and meta.get("finalizers"):
            # deleted already (its run or an earlier sweep), kept by its finalizers: no run waits for it, and
            # deleting it again changes nothing; named, not claimed swept
            swept.append(f"{meta.get('namespace')}/{meta.get('name')}{held_note(pod, 'pod')}")
            continue
        made = created_at(pod)
        done = str(run) in ended and made is not None and made <= ended[str(run)]
        if not done and not pod_expired(pod, moment, grace):
            alive.add(str(run))
            left.setdefault(str(run), []).append((str(meta.get("namespace")), pod_sweepable_at(pod, grace)))
            continue
        try:
            api.delete_pod(meta.get("namespace", ""), meta.get("name", ""))
            swept.append(f"{meta.get('namespace')}/{meta.get('name')}{held_note(pod, 'pod')}")
        except KubeError:
            continue
    for config_map in config_maps:
        meta = config_map.get("metadata") or {}
        labels = meta.get("labels") or {}
        run = labels.get(RUN_ID_LABEL)
        # only what a run made: never a ConfigMap a person labelled managed-by wi-harness (the Job's config)
        if run is None or run == current_run_id:
            continue
        if run in alive or (run not in ended and not config_map_expired(config_map, moment, grace)):
            left.setdefault(str(run), []).append((str(meta.get("namespace")),
                                                  config_map_sweepable_at(config_map, grace)))
            continue
        try:
            api.delete_config_map(meta.get("namespace", ""), meta.get("name", ""))
            swept.append(f"{meta.get('namespace')}/configmap/{meta.get('name')}{held_note(config_map, 'configmap')}")
        except KubeError:
            continue
    if kept is not None:
        kept.extend(kept_note(run, objects, moment) for run, objects in sorted(left.items()))
    return swept


def _managed(
    list_call: Callable[[str | None, str], tuple[list[dict[str, Any]], Any]], namespaces: list[str], selector: str
) -> list[dict[str, Any]]:
    """Objects matching ``selector`` cluster-wide, or (not allowed) in each of ``namespaces``."""
    try:
        return list_call(None, selector)[0]
    except KubeError:
        found: list[dict[str, Any]] = []
        for namespace in namespaces:
            try:
                found += list_call(namespace, selector)[0]
            except KubeError:
                continue
        return found
