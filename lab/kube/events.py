"""core/v1 Events: about pods, recorded the way the kubelet records them; about a controller's own objects, the
way the workload controllers record them."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from lab.clock import rfc3339
from lab.kube.resources import core_type

if TYPE_CHECKING:
    from lab.kube.kubelet import Kubelet

Obj = dict[str, Any]


def controller_event(store: Any, obj: Obj, api_version: str, kind: str, reason: str, message: str,
                     type_: str, component: str, reporting_component: str | None = None) -> None:
    """A controller's Event about ``obj`` (a Deployment, ReplicaSet, DaemonSet, StatefulSet, Job): a new one each
    time, count 1, ``source.component`` the controller's name (``reporting_component`` when it reports another)."""
    meta = obj["metadata"]
    now = rfc3339()
    store.create(core_type(store, "events"), {
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": api_version, "kind": kind, "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta["uid"],
                           "resourceVersion": meta.get("resourceVersion")},
        "reason": reason, "message": message, "type": type_, "count": 1,
        "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now,
        "reportingComponent": component if reporting_component is None else reporting_component,
        "reportingInstance": "",
    }, namespace=meta["namespace"])


class EventRecorder:
    """core/v1 Events with the kubelet's aggregation: a repeat bumps ``count`` and ``lastTimestamp``."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self.seen: dict[tuple, tuple[str, str]] = {}  # key -> (namespace, event name)

    def record(self, pod: Obj, reason: str, message: str, type_: str = "Normal", field_path: str | None = None,
               component: str = "kubelet") -> None:
        store = self.kubelet.store
        rt = core_type(store, "events")
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace", "default")
        key = (meta.get("uid"), field_path, reason, message, type_, component)
        now = rfc3339()
        if key in self.seen:
            ns, name = self.seen[key]
            existing = store.find(rt, ns, name)
            if existing is not None:
                existing["count"] = int(existing.get("count") or 1) + 1
                existing["lastTimestamp"] = now
                store.replace(rt, existing, check_version=False)
                return
        involved = {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"), "namespace": namespace,
                    "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
        if field_path:
            involved["fieldPath"] = field_path
        kubelet_source = component == "kubelet"
        event = {
            "metadata": {"name": f"{meta.get('name')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": ({"component": "kubelet", "host": self.kubelet.node_name} if kubelet_source
                       else {"component": component}),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": self.kubelet.node_name if kubelet_source else f"{component}-lab",
        }
        created = store.create(rt, event, namespace)
        self.seen[key] = (namespace, created["metadata"]["name"])

    def forget(self, uid: str) -> None:
        self.seen = {key: value for key, value in self.seen.items() if key[0] != uid}
