"""Lab pods' egress under NetworkPolicy: what each pod's relay may connect, and the ``egress`` fault as policies.

Every lab pod reaches the lab's services through a relay in its own network namespace (``podsandbox``). The
relay reads a manifest of its own, written here: the lab's ports, and those its pod's NetworkPolicies deny
(the relay drops connections to them, as a CNI does). The manifests are rewritten whenever a NetworkPolicy,
a pod's labels or the lab's ports change.

The ``egress`` fault (``lab ctl egress --block entra``, the ``egress-blocked`` scenario) is a NetworkPolicy too,
``deny-egress-to-<services>`` in each namespace that is not a ``kube-*`` one: it isolates every pod for egress and
allows every TCP port but those of the blocked services, so users can read it and ``kubectl delete`` it.
The lab's services are all on 127.0.0.1, so a policy tells them apart by port only.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.kube import netpol
from lab.kube.store import Obj, ResourceType, WatchEvent

if TYPE_CHECKING:
    from lab.runtime import Lab

SERVICE_HOST = "127.0.0.1"
FAULT_LABEL = "lab.wi-harness.io/fault"
FAULT_PREFIX = "deny-egress-to-"
POLICY_TYPE = ResourceType(netpol.GROUP, "v1", netpol.PLURAL, "NetworkPolicy", True)
_WATCHED = {(netpol.GROUP, netpol.PLURAL), ("", "pods"), ("", "namespaces")}


def _policies(lab: Lab) -> list[Obj]:
    return list(lab.kube.store.objects.get((netpol.GROUP, netpol.PLURAL), {}).values())


def enforced(lab: Lab) -> bool:
    """Whether the lab's cluster has a NetworkPolicy engine (ARM's networkProfile.networkPolicy not "none"): without
    one the API server stores policies and nothing enforces them ("Network policies will not be enforced", the
    ContainerService API's NetworkPolicy enum)."""
    own = getattr(lab, "extra", {}).get("cluster") or {}
    clusters = getattr(getattr(lab, "azure", None), "clusters", {}) or {}
    return not any((c.name.lower(), c.resource_group.lower())
                   == (str(own.get("name")).lower(), str(own.get("resource_group")).lower())
                   and c.network_policy == "none" for c in clusters.values())


def denied_ports(lab: Lab, pod: Obj, ports: dict[int, str]) -> list[int]:
    if not enforced(lab):
        return []
    policies = _policies(lab)
    return sorted(port for port in ports if not netpol.egress_allowed(policies, pod, SERVICE_HOST, port))


class PodManifests:
    """The per-pod relay manifests under ``<net_dir>/pods``, kept in step with the store."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.dir = Path(lab.net_dir) / "pods"
        self.written: dict[tuple[str, str], tuple[str, bytes]] = {}  # (namespace, name) -> (uid, content)
        self.labels: dict[tuple[str, str], Any] = {}  # (namespace, name) -> the labels the content was made for
        lab.kube.store.listeners.append(self._changed)

    def path(self, pod: Obj) -> Path:
        """Write ``pod``'s manifest now and return its path (the kubelet hands it to the pod's relay)."""
        self._write(pod, force=True)
        return self.dir / f"{pod['metadata']['uid']}.relay"

    def _content(self, pod: Obj) -> bytes:
        """marshal, which the relay reads without an import (lab.kube.podlauncher._read_manifest)."""
        ports = dict(self.lab._net_ports)
        return marshal.dumps({
            "ports": {str(port): {"service": service, "socket": str(Path(self.lab.net_dir) / f"{port}.sock")}
                      for port, service in sorted(ports.items())},
            "dropped": denied_ports(self.lab, pod, ports),
        })

    def _write(self, pod: Obj, force: bool = False, policies_changed: bool = False) -> None:
        meta = pod["metadata"]
        key, uid = (meta.get("namespace", ""), meta["name"]), meta["uid"]
        labels = meta.get("labels")
        # a pod's own changes (its status, a dozen times as it runs) matter only through its labels
        if not (force or policies_changed) and self.written.get(key, ("",))[0] == uid and self.labels.get(key) == labels:
            return
        self.labels[key] = dict(labels) if isinstance(labels, dict) else labels
        content = self._content(pod)
        if not force and self.written.get(key) == (uid, content):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        temporary = self.dir / f"{uid}.relay.tmp"
        temporary.write_bytes(content)
        os.replace(temporary, self.dir / f"{uid}.relay")
        self.written[key] = (uid, content)

    def refresh(self) -> None:
        pods = self.lab.kube.store.objects.get(("", "pods"), {})
        for key, (uid, _) in list(self.written.items()):
            pod = pods.get(key)
            if pod is None or pod["metadata"].get("uid") != uid:
                self._forget(key)
            else:
                self._write(pod, policies_changed=True)

    def _forget(self, key: tuple[str, str]) -> None:
        uid = self.written.pop(key)[0]
        self.labels.pop(key, None)
        (self.dir / f"{uid}.relay").unlink(missing_ok=True)

    def _changed(self, event: WatchEvent) -> None:
        if event.resource not in _WATCHED:
            return
        if event.resource == ("", "pods"):
            meta = event.object.get("metadata") or {}
            key = (meta.get("namespace", ""), meta.get("name", ""))
            if key not in self.written:
                return
            if event.type != "DELETED":
                self._write(event.object)
                return
            # the lab's services are outside the cluster: one pod going changes no other pod's egress to them
            if self.written[key][0] == meta.get("uid"):
                self._forget(key)
            return
        self.refresh()


# ---------------------------------------------------------------------------- the egress fault


def _allowed_ranges(denied: list[int]) -> list[dict[str, Any]]:
    ranges, start = [], 1
    for port in sorted(set(denied)):
        if port > start:
            ranges.append((start, port - 1))
        start = port + 1
    if start <= 65535:
        ranges.append((start, 65535))
    return [{"protocol": "TCP", "port": low, **({"endPort": high} if high != low else {})} for low, high in ranges]


def fault_policy(namespace: str, services: list[str], ports: dict[int, str]) -> Obj:
    denied = [port for port, service in ports.items() if service in services]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": FAULT_PREFIX + "-".join(services),
            "namespace": namespace,
            "labels": {FAULT_LABEL: "egress"},
            "annotations": {"lab.wi-harness.io/description": (
                f"lab ctl egress: pods in {namespace} may open TCP connections to every port but those of "
                f"{', '.join(services)} ({', '.join(f'{SERVICE_HOST}:{p}' for p in sorted(denied))})")},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [*_allowed_ranges(denied), {"protocol": "UDP"}, {"protocol": "SCTP"}]}],
        },
    }


def sync_fault_policies(lab: Lab) -> None:
    """Make the store's fault policies say what ``lab.faults.egress_blocked`` says (none when it is empty)."""
    store = lab.kube.store
    rt = store.type_for(netpol.GROUP, netpol.PLURAL) or POLICY_TYPE
    for (namespace, name), policy in list(store.objects.get(rt.group_resource, {}).items()):
        if (policy["metadata"].get("labels") or {}).get(FAULT_LABEL) == "egress":
            store.delete(rt, namespace, name)
    services = sorted(lab.faults.egress_blocked)
    if not services:
        return
    for namespace in sorted(name for _, name in store.objects.get(("", "namespaces"), {})):
        if not namespace.startswith("kube-"):
            store.create(rt, fault_policy(namespace, services, dict(lab._net_ports)), namespace)


def blocked_services(lab: Lab) -> list[str]:
    """The services the fault policies still deny (a user may have deleted some of them)."""
    found: set[str] = set()
    for policy in _policies(lab):
        if (policy["metadata"].get("labels") or {}).get(FAULT_LABEL) == "egress":
            found.update(policy["metadata"]["name"].removeprefix(FAULT_PREFIX).split("-"))
    return sorted(found & set(lab.faults.egress_blocked))
