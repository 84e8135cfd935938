"""Lab pods reach lab services through their own network namespace; egress a NetworkPolicy denies times out
for real (the relay drops it, as Azure NPM and Cilium drop denied packets)."""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

SCRIPT = """
import socket, sys
for name, port in [("entra", {entra}), ("keyvault", {keyvault}), ("kube", {kube})]:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        print(name, "open")
    except ConnectionRefusedError:
        print(name, "refused")
    except TimeoutError:
        print(name, "timeout")
    except OSError as exc:
        print(name, type(exc).__name__)
"""


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _run_pod(kube_api, lab) -> str:
    core = client.CoreV1Api(kube_api)
    name = f"net-{uuid.uuid4().hex[:6]}"
    script = SCRIPT.format(entra=_port(lab.endpoints["entra"]), keyvault=_port(lab.endpoints["keyvault"]),
                           kube=_port(lab.endpoints["kube"]))
    core.create_namespaced_pod("default", {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "lab/python:3", "args": ["-c", script]}]},
    })
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, "default")
        if pod.status.phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.2)
    assert pod.status.phase == "Succeeded", pod.status
    return core.read_namespaced_pod_log(name, "default")


def _require_network_isolation(lab) -> None:
    if not lab.kubelet.sandbox.network:
        pytest.skip(f"no network namespaces on this machine: {lab.kubelet.sandbox.reason}")


def test_pods_reach_lab_services(kube_api, lab) -> None:
    _require_network_isolation(lab)
    assert _run_pod(kube_api, lab).split("\n")[:3] == ["entra open", "keyvault open", "kube open"]


def test_egress_a_network_policy_denies_times_out_and_deleting_it_lifts_it(kube_api, lab) -> None:
    _require_network_isolation(lab)
    networking = client.NetworkingV1Api(kube_api)
    kube = _port(lab.endpoints["kube"])
    networking.create_namespaced_network_policy("default", {
        "metadata": {"name": "only-the-api-server"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"ipBlock": {"cidr": "127.0.0.0/8"}}], "ports": [{"port": kube}]}]},
    })
    try:
        assert _run_pod(kube_api, lab).split("\n")[:3] == ["entra timeout", "keyvault timeout", "kube open"]
    finally:
        networking.delete_namespaced_network_policy("only-the-api-server", "default")
    assert _run_pod(kube_api, lab).split("\n")[:3] == ["entra open", "keyvault open", "kube open"]


LOOP = """
import socket, sys, time
while True:
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
        print("open", flush=True)
    except OSError as exc:
        print(type(exc).__name__, flush=True)
    time.sleep(0.2)
"""


def test_a_running_pods_egress_follows_policies_as_they_come_and_go(kube_api, lab) -> None:
    _require_network_isolation(lab)
    core, networking = client.CoreV1Api(kube_api), client.NetworkingV1Api(kube_api)
    name = f"loop-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_pod("default", {
        "metadata": {"name": name, "labels": {"role": name}},
        "spec": {"containers": [{"name": "c", "image": "lab/python:3",
                                 "args": ["-c", LOOP.format(port=_port(lab.endpoints["entra"]))]}]},
    })

    def last_line() -> str:
        lines = core.read_namespaced_pod_log(name, "default").split()
        return lines[-1] if lines else ""

    def wait_for(wanted: str) -> None:
        deadline = time.monotonic() + 30
        while last_line() != wanted:
            assert time.monotonic() < deadline, f"still {last_line()!r}, not {wanted!r}"
            time.sleep(0.3)

    try:
        wait_for("open")
        networking.create_namespaced_network_policy("default", {
            "metadata": {"name": name},
            "spec": {"podSelector": {"matchLabels": {"role": name}}, "policyTypes": ["Egress"]}})
        wait_for("TimeoutError")
        networking.delete_namespaced_network_policy(name, "default")
        wait_for("open")
    finally:
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
