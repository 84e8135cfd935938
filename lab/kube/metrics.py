"""metrics.k8s.io/v1beta1 as metrics-server serves it on AKS, for ``kubectl top pod|node``.

PodMetrics of the running pods (each container's CPU in nanocores and memory working set), NodeMetrics of the
node; ``get`` and ``list`` only (no watch), label selectors honoured, 404 for a pod with no metrics
(``podmetrics.metrics.k8s.io "x" not found``). The lab reads them from /proc: a container's processes (its
main process and their children), CPU as the rate since the previous read of the same process (or since it
started), memory as resident set size; the node's from /proc/stat and /proc/meminfo. metrics-server scrapes
every 15 s and reports the window it averaged over; here the window is the time between two reads.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.clock import rfc3339
from lab.kube import errors
from lab.kube.authz import Attributes, require
from lab.kube.store import Obj, matches_labels, parse_label_selector

if TYPE_CHECKING:
    from lab.kube.apiserver import ApiServer, Target
    from lab.kube.cluster import KubeUser

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
TICKS = os.sysconf("SC_CLK_TCK")
_last: dict[Any, tuple[float, float]] = {}  # pid or "node" -> (monotonic, cpu seconds) at the previous read


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from the third (state) on


def _tree(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                queue += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _uptime() -> float:
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


def _rate(key: Any, cpu_seconds: float, since_start: float) -> tuple[float, float]:
    """(cores, window seconds): since the previous read of ``key``, else averaged since it started."""
    now = time.monotonic()
    previous = _last.get(key)
    _last[key] = (now, cpu_seconds)
    if previous and now - previous[0] > 0.5:
        window = now - previous[0]
        return max(cpu_seconds - previous[1], 0.0) / window, window
    window = max(since_start, 0.001)
    return cpu_seconds / window, window


def container_usage(pid: int) -> tuple[dict[str, str], float]:
    cpu, memory, started = 0.0, 0, None
    for member in _tree(pid):
        fields = _stat(member)
        if fields is None:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        memory += _rss_bytes(member)
        if member == pid:
            started = int(fields[19]) / TICKS
    cores, window = _rate(pid, cpu, _uptime() - started if started is not None else 0.0)
    return {"cpu": f"{round(cores * 1e9)}n", "memory": f"{memory // 1024}Ki"}, window


def node_usage() -> tuple[dict[str, str], float]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    busy = (sum(values[:8]) - values[3] - values[4]) / TICKS  # all but idle and iowait
    meminfo: dict[str, int] = {}
    with open("/proc/meminfo") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            meminfo[name] = int(rest.split()[0])
    cores, window = _rate("node", busy, _uptime())
    used_kib = meminfo.get("MemTotal", 0) - meminfo.get("MemAvailable", 0)
    return {"cpu": f"{round(cores * 1e9)}n", "memory": f"{used_kib}Ki"}, window


def _window(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def pod_metrics(api: ApiServer, pod: Obj) -> Obj | None:
    kubelet = getattr(api.lab, "kubelet", None)
    meta = pod["metadata"]
    if kubelet is None or (pod.get("status") or {}).get("phase") != "Running":
        return None
    worker = kubelet.workers.get(meta["uid"])
    containers, window = [], 0.0
    for container in (pod.get("spec") or {}).get("containers") or []:
        proc = worker.procs.get(container["name"]) if worker else None
        if proc is not None and proc.returncode is None:
            usage, window = container_usage(proc.pid)
        else:  # an image the lab runs no process for: nothing to measure
            usage = {"cpu": "0", "memory": "0"}
        containers.append({"name": container["name"], "usage": usage})
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "creationTimestamp": rfc3339(),
                         **({"labels": meta["labels"]} if meta.get("labels") else {})},
            "timestamp": rfc3339(), "window": _window(window or 15.0), "containers": containers}


def node_metrics(node: Obj) -> Obj:
    usage, window = node_usage()
    meta = node["metadata"]
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "creationTimestamp": rfc3339(),
                         **({"labels": meta["labels"]} if meta.get("labels") else {})},
            "timestamp": rfc3339(), "window": _window(window), "usage": usage}


async def serve(api: ApiServer, request: web.Request, user: KubeUser, target: Target) -> web.Response:
    from lab.kube.apiserver import json_response, method_not_allowed

    if request.method != "GET" or request.query.get("watch") in ("1", "true"):
        raise method_not_allowed()
    plural, namespace = target.rt.plural, target.namespace_or_empty
    verb = "get" if target.name else "list"
    require(api.lab.kube, user, Attributes(verb=verb, resource=plural, group=GROUP, namespace=namespace,
                                           name=target.name))
    source = api.store.type_for("", plural)
    if source is None:
        raise errors.not_found(plural, GROUP, target.name)
    labels = parse_label_selector(request.query.get("labelSelector"))
    objects, _ = api.store.list(source, namespace or None)
    build = (lambda obj: pod_metrics(api, obj)) if plural == "pods" else node_metrics
    kind = "PodMetrics" if plural == "pods" else "NodeMetrics"
    if target.name:
        found = next((obj for obj in objects if obj["metadata"]["name"] == target.name), None)
        metrics = build(found) if found is not None else None
        if metrics is None:
            raise errors.not_found(f"{kind.lower()}", GROUP, target.name)
        return json_response(metrics)
    items = [m for obj in objects if matches_labels(obj, labels) and (m := build(obj)) is not None]
    return json_response({"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items})
