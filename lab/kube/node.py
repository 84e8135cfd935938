"""The lab's one node as the API shows it: its name, address and the Node object the kubelet registers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lab.clock import rfc3339
from lab.kube import podenv
from lab.kube.errors import ApiError
from lab.kube.store import Store

if TYPE_CHECKING:
    from lab.runtime import Lab

Obj = dict[str, Any]

NODE_NAME = "aks-nodepool1-12345678-vmss000000"
HOST_IP = "127.0.0.1"


def node_object(lab: Lab, name: str) -> Obj:
    version = lab.kube.version.get("gitVersion", "v1.32.6")
    region = getattr(lab, "region", "eastus")
    subscription = getattr(lab, "subscription_id", "00000000-0000-0000-0000-000000000000")
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "agentpool": "nodepool1",
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "Standard_DS2_v2",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.azure.com/agentpool": "nodepool1",
                "kubernetes.azure.com/mode": "system",
                "kubernetes.azure.com/os-sku": "Ubuntu",
                "kubernetes.azure.com/role": "agent",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node.kubernetes.io/instance-type": "Standard_DS2_v2",
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": "0",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {
            "podCIDR": "10.244.0.0/24",
            "podCIDRs": ["10.244.0.0/24"],
            "providerID": (f"azure:///subscriptions/{subscription}/resourceGroups/mc_lab_{region}/providers/"
                           "Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0"),
        },
        "status": {
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": name}],
            "allocatable": {"cpu": podenv.NODE_ALLOCATABLE["cpu"], "memory": podenv.NODE_ALLOCATABLE["memory"],
                            "ephemeral-storage": podenv.NODE_ALLOCATABLE["ephemeral-storage"], "pods": "110"},
            "capacity": {"cpu": "2", "memory": "7097676Ki", "ephemeral-storage": "129886128Ki", "pods": "110"},
            "conditions": [
                {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": rfc3339(),
                 "lastTransitionTime": rfc3339()}
                for t, r, m in (
                    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                )
            ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "kubelet is posting ready status", "lastHeartbeatTime": rfc3339(),
                  "lastTransitionTime": rfc3339()}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": str(uuid.uuid4()),
                "containerRuntimeVersion": "containerd://1.7.27-1",
                "kernelVersion": "5.15.0-1089-azure",
                "kubeProxyVersion": "",
                "kubeletVersion": version,
                "machineID": uuid.uuid4().hex,
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS",
                "systemUUID": str(uuid.uuid4()),
            },
        },
    }


# ---------------------------------------------------------------- the node's Lease (kubelet nodelease controller)

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds default
RENEW_INTERVAL_SECONDS = LEASE_DURATION_SECONDS / 4  # renewIntervalFraction 0.25


def micro_time() -> str:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_lease(node: Obj) -> Obj:
    meta = node["metadata"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": meta["name"], "namespace": LEASE_NAMESPACE,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": meta["name"],
                                          "uid": meta.get("uid", "")}]},
        "spec": {"holderIdentity": meta["name"], "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": micro_time()},
    }


class NodeLease:
    """Creates the node's Lease in kube-node-lease and renews it every 10 s while the kubelet runs."""

    def __init__(self, store: Store, node_name: str) -> None:
        self.store = store
        self.node_name = node_name
        self._task: asyncio.Task | None = None

    def renew(self) -> None:
        leases, nodes = self.store.type_for("coordination.k8s.io", "leases"), self.store.type_for("", "nodes")
        namespaces = self.store.type_for("", "namespaces")
        if leases is None or nodes is None or namespaces is None:
            return
        node = self.store.find(nodes, "", self.node_name)
        if node is None or self.store.find(namespaces, "", LEASE_NAMESPACE) is None:
            return
        current = self.store.find(leases, LEASE_NAMESPACE, self.node_name)
        if current is None:
            self.store.create(leases, node_lease(node), namespace=LEASE_NAMESPACE)
        else:
            current.setdefault("spec", {})["renewTime"] = micro_time()
            current["spec"]["holderIdentity"] = self.node_name
            self.store.replace(leases, current, check_version=False)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(ApiError):
                self.renew()
            await asyncio.sleep(RENEW_INTERVAL_SECONDS)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="node lease")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
