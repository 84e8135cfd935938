"""``meta.k8s.io/v1 Table`` responses for ``kubectl get`` human output (Accept ``...;as=Table;...``).

kubectl prints cells verbatim, so Age is rendered here the way the API server does (HumanDuration).
Every row carries the object's metadata (PartialObjectMetadata) so ``-A`` shows NAMESPACE and
``--show-labels`` works.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lab.kube import labelselector
from lab.kube.store import Obj, ResourceType

Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m" if whole % 60 == 0 else f"{minutes}m{whole % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def age(obj: Obj) -> str:
    created = _timestamp(obj.get("metadata", {}).get("creationTimestamp"))
    return "<unknown>" if created is None else human_duration(time.time() - created)


def _name(obj: Obj) -> str:
    return obj.get("metadata", {}).get("name", "")


# ---------------------------------------------------------------- per-kind cells


def pod_status(pod: Obj) -> str:
    """The STATUS column of kubectl get pods (a simplified printPod)."""
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("initContainerStatuses") or []:
        state = container.get("state") or {}
        if state.get("terminated", {}).get("exitCode", 0) != 0:
            return f"Init:{state['terminated'].get('reason') or 'Error'}"
        if state.get("waiting", {}).get("reason") not in (None, "PodInitializing"):
            return f"Init:{state['waiting']['reason']}"
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            terminated = state["terminated"]
            reason = terminated.get("reason") or (
                f"Signal:{terminated['signal']}"
                if terminated.get("signal")
                else f"ExitCode:{terminated.get('exitCode', 0)}"
            )
    if meta.get("deletionTimestamp"):
        return "Terminating"
    return reason


def pod_ready(pod: Obj) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def pod_restarts(pod: Obj) -> str:
    return str(sum(s.get("restartCount", 0) for s in pod.get("status", {}).get("containerStatuses") or []))


def _service_ports(svc: Obj) -> str:
    ports = svc.get("spec", {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _selector(selector: dict[str, Any] | None) -> str:
    labels = (selector or {}).get("matchLabels", selector or {})
    return ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str)) or "<none>"


def _event_object(event: Obj) -> str:
    involved = event.get("involvedObject", {})
    return f"{involved.get('kind', '').lower()}/{involved.get('name', '')}"


def _event_last_seen(event: Obj) -> str:
    seen = _timestamp(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("metadata", {}).get("creationTimestamp")
    )
    return "<unknown>" if seen is None else human_duration(time.time() - seen)


def _quota_column(limits: bool) -> Callable[[Obj], str]:
    """printResourceQuota: ``name: used/hard`` for each status.hard resource, limits.* in their own column."""

    def cell(quota: Obj) -> str:
        status = quota.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        return ", ".join(f"{name}: {used.get(name, '0')}/{hard[name]}" for name in sorted(hard)
                         if name.startswith("limits.") == limits)

    return cell


def node_status(node: Obj) -> str:
    """Ready / NotReady / Unknown from the Ready condition, then SchedulingDisabled when cordoned."""
    ready = next((c.get("status") for c in node.get("status", {}).get("conditions") or []
                  if c.get("type") == "Ready"), None)
    status = {"True": "Ready", None: "Unknown"}.get(ready, "NotReady")
    return status + (",SchedulingDisabled" if node.get("spec", {}).get("unschedulable") else "")


def node_roles(node: Obj) -> str:
    """node-role.kubernetes.io/<role> labels and the kubernetes.io/role label; <none> without any."""
    labels = node.get("metadata", {}).get("labels") or {}
    roles = {key.removeprefix("node-role.kubernetes.io/") for key in labels
             if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/"}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    return next((a.get("address") for a in node.get("status", {}).get("addresses") or [] if a.get("type") == kind),
                "<none>")


def _template_containers(obj: Obj, key: str) -> str:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return ",".join(str(c.get(key, "")) for c in containers)


# -o wide of Deployments and ReplicaSets
_TEMPLATE_WIDE: list[Column] = [
    ("Containers", "string", 1, lambda o: _template_containers(o, "name")),
    ("Images", "string", 1, lambda o: _template_containers(o, "image")),
    ("Selector", "string", 1, lambda o: labelselector.format_selector(o.get("spec", {}).get("selector") or {})),
]


def _more(items: list[str]) -> str:
    """printers.formatEndpoints: at most three, then `` + N more...``."""
    if not items:
        return "<none>"
    return ",".join(items[:3]) + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


def _endpoints_column(endpoints: Obj) -> str:
    items = [f"{address.get('ip')}:{port.get('port')}" if port else str(address.get("ip"))
             for subset in endpoints.get("subsets") or []
             for port in (subset.get("ports") or [None])
             for address in subset.get("addresses") or []]
    return _more(items)


def _slice_endpoints_column(endpoint_slice: Obj) -> str:
    return _more([address for endpoint in endpoint_slice.get("endpoints") or []
                  for address in endpoint.get("addresses") or []])


def _status(field: str, default: Any = 0) -> Callable[[Obj], Any]:
    return lambda obj: obj.get("status", {}).get(field, default)


AGE: Column = ("Age", "string", 0, age)
NAME: Column = ("Name", "string", 0, _name)

COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        NAME,
        ("Ready", "string", 0, pod_ready),
        ("Status", "string", 0, pod_status),
        ("Restarts", "string", 0, pod_restarts),
        AGE,
        ("IP", "string", 1, lambda p: p.get("status", {}).get("podIP") or "<none>"),
        ("Node", "string", 1, lambda p: p.get("spec", {}).get("nodeName") or "<none>"),
    ],
    ("", "namespaces"): [NAME, ("Status", "string", 0, lambda n: n.get("status", {}).get("phase", "")), AGE],
    ("", "serviceaccounts"): [NAME, ("Secrets", "integer", 0, lambda sa: len(sa.get("secrets") or [])), AGE],
    ("", "configmaps"): [
        NAME,
        ("Data", "integer", 0, lambda cm: len(cm.get("data") or {}) + len(cm.get("binaryData") or {})),
        AGE,
    ],
    ("", "secrets"): [
        NAME,
        ("Type", "string", 0, lambda s: s.get("type", "")),
        ("Data", "integer", 0, lambda s: len(s.get("data") or {})),
        AGE,
    ],
    ("", "services"): [
        NAME,
        ("Type", "string", 0, lambda s: s.get("spec", {}).get("type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda s: s.get("spec", {}).get("clusterIP") or "<none>"),
        (
            "External-IP",
            "string",
            0,
            lambda s: ",".join(s.get("spec", {}).get("externalIPs") or []) or "<none>",
        ),
        ("Port(s)", "string", 0, _service_ports),
        AGE,
        ("Selector", "string", 1, lambda s: _selector(s.get("spec", {}).get("selector"))),
    ],
    ("", "resourcequotas"): [
        NAME,
        AGE,
        ("Request", "string", 0, _quota_column(limits=False)),
        ("Limit", "string", 0, _quota_column(limits=True)),
    ],
    ("", "events"): [
        ("Last Seen", "string", 0, _event_last_seen),
        ("Type", "string", 0, lambda e: e.get("type", "")),
        ("Reason", "string", 0, lambda e: e.get("reason", "")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, lambda e: e.get("message", "")),
    ],
    ("apps", "deployments"): [
        NAME,
        (
            "Ready",
            "string",
            0,
            lambda d: f"{d.get('status', {}).get('readyReplicas', 0)}/{d.get('spec', {}).get('replicas', 1)}",
        ),
        ("Up-to-date", "integer", 0, _status("updatedReplicas")),
        ("Available", "integer", 0, _status("availableReplicas")),
        AGE,
        *_TEMPLATE_WIDE,
    ],
    ("apps", "daemonsets"): [
        NAME,
        ("Desired", "integer", 0, _status("desiredNumberScheduled")),
        ("Current", "integer", 0, _status("currentNumberScheduled")),
        ("Ready", "integer", 0, _status("numberReady")),
        ("Up-to-date", "integer", 0, _status("updatedNumberScheduled")),
        ("Available", "integer", 0, _status("numberAvailable")),
        (
            "Node Selector",
            "string",
            0,
            lambda d: _selector(d.get("spec", {}).get("template", {}).get("spec", {}).get("nodeSelector")),
        ),
        AGE,
    ],
    # statefulSetColumnDefinitions: Name, Ready (readyReplicas/replicas), Age; wide: Containers, Images
    ("apps", "statefulsets"): [
        NAME,
        (
            "Ready",
            "string",
            0,
            lambda d: f"{d.get('status', {}).get('readyReplicas', 0)}/{d.get('spec', {}).get('replicas', 1)}",
        ),
        AGE,
        *_TEMPLATE_WIDE[:2],
    ],
    ("apps", "replicasets"): [
        NAME,
        ("Desired", "integer", 0, lambda r: r.get("spec", {}).get("replicas", 1)),
        ("Current", "integer", 0, _status("replicas")),
        ("Ready", "integer", 0, _status("readyReplicas")),
        AGE,
        *_TEMPLATE_WIDE,
    ],
    # pkg/printers/internalversion: nodeColumnDefinitions, leaseColumnDefinitions
    ("", "nodes"): [
        NAME,
        ("Status", "string", 0, node_status),
        ("Roles", "string", 0, node_roles),
        AGE,
        ("Version", "string", 0, lambda n: n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")),
        ("Internal-IP", "string", 1, lambda n: _node_address(n, "InternalIP")),
        ("External-IP", "string", 1, lambda n: _node_address(n, "ExternalIP")),
        ("OS-Image", "string", 1, lambda n: n.get("status", {}).get("nodeInfo", {}).get("osImage") or "<unknown>"),
        ("Kernel-Version", "string", 1,
         lambda n: n.get("status", {}).get("nodeInfo", {}).get("kernelVersion") or "<unknown>"),
        ("Container-Runtime", "string", 1,
         lambda n: n.get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion") or "<unknown>"),
    ],
    ("coordination.k8s.io", "leases"): [
        NAME,
        ("Holder", "string", 0, lambda lease: lease.get("spec", {}).get("holderIdentity") or ""),
        AGE,
    ],
    ("", "endpoints"): [NAME, ("Endpoints", "string", 0, _endpoints_column), AGE],
    ("discovery.k8s.io", "endpointslices"): [
        NAME,
        ("AddressType", "string", 0, lambda s: s.get("addressType", "")),
        ("Ports", "string", 0, lambda s: ",".join(str(p.get("port")) for p in s.get("ports") or []) or "<unset>"),
        ("Endpoints", "string", 0, _slice_endpoints_column),
        AGE,
    ],
    ("policy", "poddisruptionbudgets"): [
        NAME,
        ("Min Available", "string", 0, lambda p: str(p.get("spec", {}).get("minAvailable", "N/A"))),
        ("Max Unavailable", "string", 0, lambda p: str(p.get("spec", {}).get("maxUnavailable", "N/A"))),
        ("Allowed Disruptions", "integer", 0, _status("disruptionsAllowed")),
        AGE,
    ],
    ("scheduling.k8s.io", "priorityclasses"): [
        NAME,
        ("Value", "integer", 0, lambda p: p.get("value", 0)),
        ("Global-Default", "boolean", 0, lambda p: bool(p.get("globalDefault", False))),
        AGE,
        ("PreemptionPolicy", "string", 0, lambda p: p.get("preemptionPolicy", "")),
    ],
    ("networking.k8s.io", "networkpolicies"): [
        NAME,
        ("Pod-Selector", "string", 0, lambda n: labelselector.format_selector(n.get("spec", {}).get("podSelector"))),
        AGE,
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        NAME,
        ("Created At", "date", 0, lambda c: c.get("metadata", {}).get("creationTimestamp", "")),
    ],
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): [
        NAME,
        ("Webhooks", "integer", 0, lambda w: len(w.get("webhooks") or [])),
        AGE,
    ],
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): [
        NAME,
        ("Webhooks", "integer", 0, lambda w: len(w.get("webhooks") or [])),
        AGE,
    ],
}


# ---------------------------------------------------------------- custom resource printer columns


def _json_path(obj: Any, path: str) -> Any:
    """The tiny JSONPath subset additionalPrinterColumns use: ``.spec.a.b`` and ``.items[0].x``."""
    current = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        name, _, index = part.partition("[")
        if name:
            current = current.get(name) if isinstance(current, dict) else None
        if index and isinstance(current, list):
            position = index.rstrip("]")
            current = current[int(position)] if position.isdigit() and int(position) < len(current) else None
        if current is None:
            return None
    return current


def _printer_column(spec: dict[str, Any]) -> Column:
    column_type, path = spec.get("type", "string"), spec.get("jsonPath", "")

    def cell(obj: Obj) -> Any:
        value = _json_path(obj, path)
        if column_type == "date" and isinstance(value, str):
            created = _timestamp(value)
            return value if created is None else human_duration(time.time() - created)
        return "" if value is None else value

    return (spec.get("name", ""), column_type, int(spec.get("priority", 0)), cell)


def columns_for(rt: ResourceType, printer_columns: list[dict[str, Any]]) -> list[Column]:
    if printer_columns:
        return [
            NAME,
            *(_printer_column(spec) for spec in printer_columns),
            *(
                []
                if any(c.get("jsonPath") == ".metadata.creationTimestamp" for c in printer_columns)
                else [AGE]
            ),
        ]
    return COLUMNS.get(rt.group_resource, [NAME, AGE])


# ---------------------------------------------------------------- the Table


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def render_table(
    rt: ResourceType,
    objects: list[Obj],
    resource_version: str,
    printer_columns: list[dict[str, Any]] | None = None,
    include_object: str = "Metadata",
    list_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    columns = columns_for(rt, printer_columns or [])
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [cell(obj) for _, _, _, cell in columns]}
        row_object = _row_object(obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version, **(list_metadata or {})},
        "columnDefinitions": [
            {
                "name": name,
                "type": column_type,
                "format": "name" if name == "Name" else "",
                "description": f"{name} of the {rt.kind}",
                "priority": priority,
            }
            for name, column_type, priority, _ in columns
        ],
        "rows": rows,
    }
