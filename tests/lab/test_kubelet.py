"""The lab kubelet: pod lifecycle, status, Events, volumes, env, isolation, tokens, teardown.

Most tests drive a small stand-alone lab (a Store, a KubeCluster, the issuer on a loopback HTTPS port and a
Kubelet on their own event loop) so kubelet settings can be changed freely; the end-to-end token test goes
through the session lab's API server with the official kubernetes client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from lab.faults import Faults
from lab.kube import issuer, podenv, tokens, volumes
from lab.kube.cluster import KubeCluster
from lab.kube.images import go_duration, parse_image
from lab.kube.kubelet import Kubelet
from lab.kube.resources import core_type, ensure_builtin_types
from lab.kube.webhook import WebhookSettings
from lab.tls import LabTls

PY = "lab/python"
IDLE = "mcr.microsoft.com/lab/idle"
WI_MOUNT = "/var/run/secrets/azure/wi"
WI_TOKEN = f"{WI_MOUNT}/token/azure-identity-token"
AUDIENCE = "api://AzureADTokenExchange"


# ---------------------------------------------------------------- a stand-alone lab


class MiniLab:
    """What the kubelet and the issuer use of :class:`lab.runtime.Lab`, on its own loop thread."""

    def __init__(self, state_dir: Path, sandbox: str | None = None) -> None:
        self.state_dir = state_dir
        self.region = "eastus"
        self.tenant_id = str(uuid.uuid4())
        self.cluster_guid = str(uuid.uuid4())
        self.subscription_id = str(uuid.uuid4())
        self.tls = LabTls()
        self.faults = Faults()
        self.endpoints: dict[str, str] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sandbox = sandbox
        self.kube: KubeCluster
        self.kubelet: Kubelet
        self.ca_file = state_dir / "ca.pem"

    @property
    def issuer_url(self) -> str:
        return f"{self.endpoints['issuer']}/{self.region}/{self.tenant_id}/{self.cluster_guid}/"

    def call(self, fn: Any, *args: Any) -> Any:
        async def run() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(60)

    def start(self) -> MiniLab:
        from aiohttp import web

        self.tls.write_ca(self.ca_file)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        self.endpoints["issuer"] = f"https://127.0.0.1:{sock.getsockname()[1]}"
        self.endpoints["kube"] = "https://127.0.0.1:6443"
        self.kube = KubeCluster(name="mini", issuer_url=self.issuer_url, webhook=WebhookSettings())
        ensure_builtin_types(self.kube.store)
        self.kube.runnable_images[PY] = [sys.executable]
        self.kube.idle_images.add(IDLE)
        self.thread.start()

        async def boot() -> None:
            self.runner = web.AppRunner(issuer.build_app(self), access_log=None)
            await self.runner.setup()
            await web.SockSite(self.runner, sock, ssl_context=self.tls.server_context()).start()
            self.kubelet = Kubelet(self, sandbox=self.sandbox)
            self.kubelet.crash_backoff = (0.2, 1.0)
            self.kubelet.image_backoff = (0.5, 1.0)
            self.kubelet.image_pull_error_seconds = 0.3
            self.kubelet.retry_seconds = 0.3
            self.kubelet.kill_grace_seconds = 1.0
            await self.kubelet.start()

        self.call(boot)
        self.add("namespaces", {"metadata": {"name": "default"}})
        self.add("serviceaccounts", {"metadata": {"name": "default", "namespace": "default"}})
        return self

    def stop(self) -> None:
        async def down() -> None:
            await self.kubelet.stop()
            await self.runner.cleanup()

        self.call(down)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # -- store helpers (all on the loop)
    def add(self, plural: str, obj: dict) -> dict:
        store = self.kube.store
        return self.call(lambda: store.create(core_type(store, plural), obj, obj["metadata"].get("namespace")))

    def get(self, plural: str, namespace: str, name: str) -> dict | None:
        store = self.kube.store
        return self.call(lambda: store.find(core_type(store, plural), namespace, name))

    def delete(self, plural: str, namespace: str, name: str) -> None:
        store = self.kube.store
        self.call(lambda: store.delete(core_type(store, plural), namespace, name))

    def events(self, namespace: str, pod: str) -> list[dict]:
        store = self.kube.store
        items, _ = self.call(lambda: store.list(core_type(store, "events"), namespace))
        return [e for e in items if e["involvedObject"]["name"] == pod]

    def pod(self, name: str, containers: list[dict], namespace: str = "default", **spec: Any) -> dict:
        body = {"metadata": {"name": name, "namespace": namespace},
                "spec": {"containers": containers, "restartPolicy": "Never", **spec}}
        return self.add("pods", body)

    def wait(self, name: str, until: Callable[[dict], bool], namespace: str = "default", timeout: float = 20) -> dict:
        deadline = time.time() + timeout
        pod = None
        while time.time() < deadline:
            pod = self.get("pods", namespace, name)
            if pod is not None and until(pod):
                return pod
            time.sleep(0.05)
        raise AssertionError(f"pod {namespace}/{name} never got there: {json.dumps((pod or {}).get('status'))}")

    def logs(self, name: str, container: str, namespace: str = "default") -> str:
        return bytes(self.kube.pod_logs.get((namespace, name, container), b"")).decode()


def phase_is(*phases: str) -> Callable[[dict], bool]:
    return lambda pod: (pod.get("status") or {}).get("phase") in phases


def waiting_reason(reason: str) -> Callable[[dict], bool]:
    def check(pod: dict) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return any((s.get("state", {}).get("waiting") or {}).get("reason") == reason for s in statuses)

    return check


def python(name: str, code: str, **extra: Any) -> dict:
    return {"name": name, "image": PY, "args": ["-c", code], **extra}


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory):
    running = MiniLab(tmp_path_factory.mktemp("mini-lab")).start()
    yield running
    running.stop()


# ---------------------------------------------------------------- pure helpers


def test_image_references_are_normalised_like_containerd() -> None:
    assert parse_image("busybox").reference == "docker.io/library/busybox:latest"
    assert parse_image("lab/python:3.11").name == "lab/python"
    assert parse_image("lab/python:3.11").reference == "docker.io/lab/python:3.11"
    ref = parse_image("localhost:5000/a/b@sha256:" + "0" * 64)
    assert (ref.domain, ref.path, ref.tag) == ("localhost:5000", "a/b", None)
    assert parse_image("mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0").repository == \
        "mcr.microsoft.com/oss/azure/workload-identity/proxy"


def test_go_durations() -> None:
    assert go_duration(0.3121) == "312ms"
    assert go_duration(1.2) == "1.2s"
    assert go_duration(10) == "10s"
    assert go_duration(62.5) == "1m2.5s"


def test_dollar_expansion_follows_kubernetes() -> None:
    mapping = podenv.mapping_for({"A": "x", "B": "y"})
    assert podenv.expand("$(A)-$(B)", mapping) == "x-y"
    assert podenv.expand("$$(A)", mapping) == "$(A)"
    assert podenv.expand("$(MISSING)", mapping) == "$(MISSING)"
    assert podenv.expand("$(A", mapping) == "$(A"
    assert podenv.expand("a$b$", mapping) == "a$b$"


def test_expiration_validation_and_cap() -> None:
    assert tokens.validate_expiration(60) == "Invalid value: 60: may not specify a duration less than 10 minutes"
    assert tokens.validate_expiration(600) is None
    assert tokens.validate_expiration(None) is None
    assert "2^32" in (tokens.validate_expiration(1 << 33) or "")
    assert tokens.effective_expiration(None) == 3600
    assert tokens.effective_expiration(7 * 86400) == 86400
    assert tokens.expiration_warning(172800) == "requested expiration of 172800 seconds shortened to 86400 seconds"


def test_atomic_writer_swaps_data_link(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert volumes.write_atomic(target, {"token/azure-identity-token": volumes.FileSpec(b"one", 0o644)})
    first = os.readlink(target / "..data")
    assert os.readlink(target / "token") == "..data/token"
    assert (target / "token" / "azure-identity-token").read_bytes() == b"one"
    assert not volumes.write_atomic(target, {"token/azure-identity-token": volumes.FileSpec(b"one", 0o644)})
    assert volumes.write_atomic(target, {"token/azure-identity-token": volumes.FileSpec(b"two", 0o644)})
    assert os.readlink(target / "..data") != first
    assert not (target / first).exists()
    assert (target / "token" / "azure-identity-token").read_bytes() == b"two"
    assert oct((target / "token" / "azure-identity-token").stat().st_mode & 0o777) == "0o644"


# ---------------------------------------------------------------- lifecycle and status


def test_exit_zero_succeeds_with_kubelet_status_and_events(mini: MiniLab) -> None:
    mini.pod("ok", [python("main", "print('hello from the pod')")])
    pod = mini.wait("ok", phase_is("Succeeded"))
    status = pod["status"]
    assert pod["spec"]["nodeName"] == mini.kubelet.node_name == "aks-nodepool1-12345678-vmss000000"
    assert status["hostIP"] == status["podIP"] == "127.0.0.1"
    assert status["startTime"].endswith("Z")
    assert status["qosClass"] == "BestEffort"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "PodCompleted"
    assert conditions["Initialized"]["status"] == "True"
    (cs,) = status["containerStatuses"]
    term = cs["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert cs["containerID"].startswith("containerd://") and term["containerID"] == cs["containerID"]
    assert cs["image"] == "docker.io/lab/python:latest"
    assert cs["imageID"].startswith("docker.io/lab/python@sha256:")
    assert (cs["ready"], cs["started"], cs["restartCount"]) == (False, False, 0)
    assert mini.logs("ok", "main") == "hello from the pod\n"
    events = mini.events("default", "ok")
    reasons = [(e["reason"], e["source"]["component"]) for e in events]
    assert reasons[:5] == [("Scheduled", "default-scheduler"), ("Pulling", "kubelet"), ("Pulled", "kubelet"),
                           ("Created", "kubelet"), ("Started", "kubelet")]
    by_reason = {e["reason"]: e for e in events}
    assert by_reason["Scheduled"]["message"] == f"Successfully assigned default/ok to {mini.kubelet.node_name}"
    assert by_reason["Pulling"]["message"] == 'Pulling image "lab/python"'
    assert by_reason["Pulled"]["message"].startswith('Successfully pulled image "lab/python" in ')
    assert "including waiting). Image size: " in by_reason["Pulled"]["message"]
    assert by_reason["Created"]["message"] == "Created container: main"
    assert by_reason["Started"]["message"] == "Started container main"
    started = by_reason["Started"]
    assert started["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert started["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert started["type"] == "Normal" and started["count"] == 1 and started["firstTimestamp"]


def test_nonzero_exit_fails_with_error(mini: MiniLab) -> None:
    mini.pod("bad", [python("main", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)")])
    pod = mini.wait("bad", phase_is("Failed"))
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    assert {c["type"]: c.get("reason") for c in pod["status"]["conditions"]}["Ready"] == "PodFailed"
    assert mini.logs("bad", "main") == "boom\n"


def test_unknown_image_err_image_pull_then_back_off(mini: MiniLab) -> None:
    mini.pod("nope", [{"name": "c", "image": "doesnotexist"}])
    pod = mini.wait("nope", waiting_reason("ErrImagePull"))
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    full = "docker.io/library/doesnotexist:latest"
    assert waiting["message"] == (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{full}": '
        f'failed to resolve reference "{full}": {full}: not found')
    assert pod["status"]["phase"] == "Pending"
    pod = mini.wait("nope", waiting_reason("ImagePullBackOff"))
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"].startswith('Back-off pulling image "doesnotexist": ErrImagePull: rpc error')
    messages = [(e["type"], e["reason"], e["message"]) for e in mini.events("default", "nope")]
    assert ("Warning", "Failed", f'Failed to pull image "doesnotexist": {waiting["message"].split(": ", 2)[2]}') \
        in messages
    assert ("Warning", "Failed", "Error: ErrImagePull") in messages
    assert ("Normal", "BackOff", 'Back-off pulling image "doesnotexist"') in messages
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in messages
    # Retries bump the same Event's count instead of adding new ones.
    deadline = time.time() + 10
    while time.time() < deadline:
        pulling = [e for e in mini.events("default", "nope") if e["reason"] == "Pulling"]
        if pulling and pulling[0]["count"] >= 2:
            break
        time.sleep(0.1)
    assert len(pulling) == 1 and pulling[0]["count"] >= 2
    mini.delete("pods", "default", "nope")


def test_idle_image_stays_running_and_ready(mini: MiniLab) -> None:
    mini.pod("idle", [{"name": "app", "image": IDLE + ":1.0"}])
    pod = mini.wait("idle", phase_is("Running"))
    assert all(c["status"] == "True" for c in pod["status"]["conditions"])
    (cs,) = pod["status"]["containerStatuses"]
    assert cs["ready"] and cs["started"] and "running" in cs["state"]
    time.sleep(0.5)
    assert mini.get("pods", "default", "idle")["status"]["phase"] == "Running"
    mini.delete("pods", "default", "idle")


def test_active_deadline_kills_and_fails_the_pod(mini: MiniLab) -> None:
    mini.pod("slow", [python("main", "import time; print('up', flush=True); time.sleep(120)")],
             activeDeadlineSeconds=1)
    mini.wait("slow", phase_is("Running"))
    worker = mini.kubelet.worker("default", "slow")
    pid = worker.procs["main"].pid
    pod = mini.wait("slow", phase_is("Failed"), timeout=15)
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "Error" and term["exitCode"] in (137, 143)
    assert not _alive(pid)
    assert any(e["reason"] == "DeadlineExceeded" and e["type"] == "Warning" for e in mini.events("default", "slow"))
    assert mini.logs("slow", "main") == "up\n"


def test_pod_deletion_kills_the_process_and_cleans_up(mini: MiniLab) -> None:
    mini.pod("doomed", [python("main", "import time; time.sleep(120)")])
    mini.wait("doomed", phase_is("Running"))
    worker = mini.kubelet.worker("default", "doomed")
    pid = worker.procs["main"].pid
    assert worker.dir.is_dir()
    mini.delete("pods", "default", "doomed")
    deadline = time.time() + 10
    while time.time() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)
    while time.time() < deadline and worker.dir.exists():
        time.sleep(0.05)
    assert not worker.dir.exists()
    assert ("default", "doomed", "main") not in mini.kube.pod_logs


def test_graceful_delete_is_finished_by_the_kubelet(mini: MiniLab) -> None:
    mini.pod("graceful", [python("main", "import time; time.sleep(120)")])
    pod = mini.wait("graceful", phase_is("Running"))
    pid = mini.kubelet.worker("default", "graceful").procs["main"].pid
    pod["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    # (a spec change too: Store.replace currently treats metadata-only updates as no-ops)
    pod["spec"]["terminationGracePeriodSeconds"] = 30
    store = mini.kube.store
    mini.call(lambda: store.replace(core_type(store, "pods"), pod, check_version=False))
    deadline = time.time() + 10
    while time.time() < deadline and mini.get("pods", "default", "graceful") is not None:
        time.sleep(0.05)
    assert mini.get("pods", "default", "graceful") is None
    assert not _alive(pid)
    assert any(e["reason"] == "Killing" and e["message"] == "Stopping container main"
               for e in mini.events("default", "graceful"))


def test_restart_always_goes_into_crash_loop_back_off(mini: MiniLab) -> None:
    mini.pod("crash", [python("main", "raise SystemExit(1)")], restartPolicy="Always")
    pod = mini.wait("crash", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 2)
    assert pod["status"]["phase"] == "Running"
    pod = mini.wait("crash", waiting_reason("CrashLoopBackOff"))
    cs = pod["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["state"]["waiting"]["message"].startswith("back-off ")
    assert f"restarting failed container=main pod=crash_default({pod['metadata']['uid']})" in \
        cs["state"]["waiting"]["message"]
    assert any(e["reason"] == "BackOff" and e["type"] == "Warning" for e in mini.events("default", "crash"))
    mini.delete("pods", "default", "crash")


def test_missing_executable_is_a_start_error(mini: MiniLab) -> None:
    mini.pod("noexec", [{"name": "main", "image": PY, "command": ["no-such-binary"]}])
    pod = mini.wait("noexec", phase_is("Failed"))
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (128, "StartError")
    assert term["message"].endswith('exec: "no-such-binary": executable file not found in $PATH: unknown')
    assert any(e["message"].startswith("Error: failed to create containerd task") for e in mini.events("default",
                                                                                                       "noexec"))


def test_init_containers_run_first_and_share_empty_dir(mini: MiniLab) -> None:
    mount = [{"name": "work", "mountPath": "/work-area"}]
    mini.pod("init", [python("main", "print(open('/work-area/f').read())", volumeMounts=mount)],
             initContainers=[python("prep", "open('/work-area/f','w').write('prepared')", volumeMounts=mount)],
             volumes=[{"name": "work", "emptyDir": {}}])
    pod = mini.wait("init", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert mini.logs("init", "main") == "prepared\n"
    assert not os.path.exists("/work-area")


def test_native_sidecar_runs_alongside_and_stops_after_the_main_container(mini: MiniLab) -> None:
    sidecar = {"name": "proxy", "image": IDLE, "restartPolicy": "Always"}
    mini.pod("sidecar", [python("main", "print('main done')")],
             initContainers=[sidecar, {"name": "setup", "image": IDLE}])
    pod = mini.wait("sidecar", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded"
    proxy, setup = pod["status"]["initContainerStatuses"]
    assert "terminated" in proxy["state"] and setup["state"]["terminated"]["reason"] == "Completed"
    assert mini.logs("sidecar", "main") == "main done\n"


def test_missing_config_map_key_is_create_container_config_error(mini: MiniLab) -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    mini.pod("cfgerr", [python("main", "print(1)", env=env)])
    pod = mini.wait("cfgerr", waiting_reason("CreateContainerConfigError"))
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == 'configmap "absent" not found'
    assert any(e["message"] == 'Error: configmap "absent" not found' for e in mini.events("default", "cfgerr"))
    mini.add("configmaps", {"metadata": {"name": "absent", "namespace": "default"}, "data": {"k": "v"}})
    mini.wait("cfgerr", phase_is("Succeeded"))


def test_missing_config_map_volume_is_failed_mount(mini: MiniLab) -> None:
    mini.pod("mountfail", [python("main", "print(1)")],
             volumes=[{"name": "cfg", "configMap": {"name": "not-there"}}])
    deadline = time.time() + 10
    while time.time() < deadline:
        events = [e for e in mini.events("default", "mountfail") if e["reason"] == "FailedMount"]
        if events:
            break
        time.sleep(0.05)
    assert events[0]["message"] == 'MountVolume.SetUp failed for volume "cfg" : configmap "not-there" not found'
    assert mini.get("pods", "default", "mountfail")["status"]["phase"] == "Pending"
    mini.delete("pods", "default", "mountfail")


# ---------------------------------------------------------------- the process's view


READER = """
import json, os, stat
out = {"env": {k: os.environ.get(k) for k in ("POD_NAME", "POD_NS", "POD_UID", "SA", "NODE", "POD_IP", "APP",
                                               "NOTE", "FROM_CM", "GREETING", "AZURE_FEDERATED_TOKEN_FILE",
                                               "HOSTNAME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT",
                                               "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PFX_k")},
       "uid": os.getuid(), "groups": sorted(os.getgroups()), "argv_tail": __import__("sys").argv[1:]}
tok = os.environ["AZURE_FEDERATED_TOKEN_FILE"]
out["token"] = open(tok).read()
out["token_mode"] = oct(stat.S_IMODE(os.stat(tok).st_mode))
out["cm"] = open("/etc/wi-probe/settings.json").read()
out["cm_listing"] = sorted(os.listdir("/etc/wi-probe"))
out["labels"] = open("/config/podinfo/labels").read()
open("/scratch/written", "w").write("x")
out["scratch"] = open("/scratch/written").read()
try:
    open(os.path.join(os.path.dirname(tok), "intruder"), "w")
    out["ro"] = False
except OSError:
    out["ro"] = True
out["ca_has_lab"] = "BEGIN CERTIFICATE" in open(os.environ["SSL_CERT_FILE"]).read()
out["secret"] = open("/etc/secret-data/pw").read()
out["secret_mode"] = oct(stat.S_IMODE(os.stat("/etc/secret-data/pw").st_mode))
print(json.dumps(out))
"""


def _reader_pod(mini: MiniLab, name: str, **security: Any) -> dict:
    mini.add("configmaps", {"metadata": {"name": f"{name}-cm", "namespace": "default"},
                            "data": {"settings.json": '{"a": 1}', "ignored": "x", "greeting": "hi"}})
    mini.add("secrets", {"metadata": {"name": f"{name}-secret", "namespace": "default"},
                         "data": {"password": base64.b64encode(b"s3cret").decode()}})
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NOTE", "value": "$(POD_NAME) in $(POD_NS), $$(POD_NAME)"},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": f"{name}-cm", "key": "greeting"}}},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": WI_TOKEN},
    ]
    container = {
        "name": "main", "image": PY, "command": ["python", "-c", READER, "$(POD_NAME)"], "env": env,
        "envFrom": [{"prefix": "PFX_", "configMapRef": {"name": f"{name}-cm"}}],
        "volumeMounts": [
            {"name": "wi-token", "mountPath": WI_MOUNT, "readOnly": True},
            {"name": "cfg", "mountPath": "/etc/wi-probe", "readOnly": True},
            {"name": "podinfo", "mountPath": "/config/podinfo"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "secret", "mountPath": "/etc/secret-data", "readOnly": True},
        ],
    }
    volumes_ = [
        {"name": "wi-token", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"audience": AUDIENCE, "expirationSeconds": 3600,
                                     "path": "token/azure-identity-token"}}]}},
        {"name": "cfg", "configMap": {"name": f"{name}-cm", "items": [{"key": "settings.json",
                                                                       "path": "settings.json"}]}},
        {"name": "podinfo", "downwardAPI": {"items": [{"path": "labels",
                                                       "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "secret", "secret": {"secretName": f"{name}-secret", "defaultMode": 420,
                                      "items": [{"key": "password", "path": "pw", "mode": 0o400}]}},
    ]
    body = {"metadata": {"name": name, "namespace": "default", "labels": {"app": "reader", "tier": "x"}},
            "spec": {"containers": [container], "volumes": volumes_, "restartPolicy": "Never",
                     "serviceAccountName": "default", **security}}
    mini.add("pods", body)
    pod = mini.wait(name, phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded", (pod["status"], mini.logs(name, "main"))
    return json.loads(mini.logs(name, "main"))


def test_process_sees_env_and_files_at_the_exact_mount_paths(mini: MiniLab) -> None:
    host_had = {p: os.path.lexists(p) for p in ("/var/run/secrets", "/etc/wi-probe", "/config", "/scratch")}
    out = _reader_pod(mini, "reader")
    pod = mini.get("pods", "default", "reader")
    env = out["env"]
    assert env["POD_NAME"] == "reader" and env["POD_NS"] == "default"
    assert env["POD_UID"] == pod["metadata"]["uid"]
    assert env["SA"] == "default" and env["NODE"] == mini.kubelet.node_name and env["POD_IP"] == "127.0.0.1"
    assert env["APP"] == "reader"
    assert env["NOTE"] == "reader in default, $(POD_NAME)"
    assert env["FROM_CM"] == "hi" and env["PFX_k"] is None
    assert env["HOSTNAME"] == "reader"
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "6443")
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == "/etc/ssl/certs/ca-certificates.crt"
    assert out["ca_has_lab"]
    assert out["argv_tail"] == ["reader"]  # $(POD_NAME) expanded in command
    assert out["cm"] == '{"a": 1}'
    assert [name for name in out["cm_listing"] if not name.startswith("..")] == ["settings.json"]
    assert "..data" in out["cm_listing"]
    assert out["labels"] == 'app="reader"\ntier="x"'
    assert out["scratch"] == "x"
    assert out["ro"] is True
    assert out["token_mode"] == "0o644"
    assert (out["secret"], out["secret_mode"]) == ("s3cret", "0o400")
    claims = jwt.decode(out["token"], options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert claims["aud"] == [AUDIENCE] and claims["iss"] == mini.issuer_url
    assert claims["kubernetes.io"]["pod"] == {"name": "reader", "uid": pod["metadata"]["uid"]}
    assert claims["kubernetes.io"]["node"]["name"] == mini.kubelet.node_name
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    # nothing was created on the host for those mount paths
    assert {p: os.path.lexists(p) for p in host_had} == host_had


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to runAsUser needs root")
def test_run_as_user_is_applied_and_token_is_readable(mini: MiniLab) -> None:
    if mini.kubelet.sandbox.kind != "root":
        pytest.skip(f"sandbox mode {mini.kubelet.sandbox.kind}")
    out = _reader_pod(mini, "nonroot", securityContext={"runAsUser": 65534, "runAsGroup": 65534,
                                                        "fsGroup": 2000})
    assert out["uid"] == 65534
    assert 2000 in out["groups"]
    assert out["token_mode"] == "0o640"  # 0600 for a pod with fsGroup, plus group read from SetVolumeOwnership
    assert (out["secret"], out["secret_mode"]) == ("s3cret", "0o440")
    assert jwt.decode(out["token"], options={"verify_signature": False})["sub"] == \
        "system:serviceaccount:default:default"


def test_projected_token_verifies_against_the_issuer_jwks_over_https(mini: MiniLab) -> None:
    out = _reader_pod(mini, "verify")
    discovery = requests.get(mini.issuer_url + ".well-known/openid-configuration", verify=str(mini.ca_file),
                             timeout=10).json()
    assert discovery["issuer"] == mini.issuer_url
    import ssl

    client = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=ssl.create_default_context(cafile=str(mini.ca_file)))
    key = client.get_signing_key_from_jwt(out["token"])
    claims = jwt.decode(out["token"], key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=mini.issuer_url)
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert jwt.get_unverified_header(out["token"]) == {"alg": "RS256", "kid": key.key_id}


def test_token_refresh_at_eighty_percent_of_lifetime(mini: MiniLab) -> None:
    volume = {"name": "wi", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"audience": AUDIENCE, "expirationSeconds": 600, "path": "token"}}]}}
    mini.pod("refresh", [{"name": "app", "image": IDLE, "volumeMounts": [{"name": "wi", "mountPath": "/t"}]}],
             volumes=[volume])
    mini.wait("refresh", phase_is("Running"))
    worker = mini.kubelet.worker("default", "refresh")
    token_file = worker.volume_dir("wi") / "token"
    first = token_file.read_text()
    (state,) = worker.builder.tokens.values()
    assert state.expires_at - state.issued_at == pytest.approx(600, abs=2)
    assert state.refresh_at == pytest.approx(state.issued_at + 480)
    data_link = os.readlink(worker.volume_dir("wi") / "..data")
    mini.call(worker.sync_volumes, state.issued_at + 0.79 * 600)
    assert token_file.read_text() == first
    mini.call(worker.sync_volumes, state.issued_at + 0.81 * 600)
    second = token_file.read_text()
    assert second != first
    assert os.readlink(worker.volume_dir("wi") / "..data") != data_link
    assert jwt.decode(second, options={"verify_signature": False})["jti"] != \
        jwt.decode(first, options={"verify_signature": False})["jti"]
    mini.delete("pods", "default", "refresh")


def test_token_capped_at_one_day() -> None:
    lab = type("L", (), {"issuer_url": "https://issuer.example/x/", "kube": KubeCluster(
        name="n", issuer_url="https://issuer.example/x/", webhook=WebhookSettings())})()
    token, exp = tokens.issue_service_account_token(lab, "ns", {"metadata": {"name": "sa", "uid": "u"}}, ["aud"],
                                                    7 * 86400, None, now=1000)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert exp == claims["exp"] == 1000 + 86400
    assert list(claims) == ["aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"]
    assert claims["kubernetes.io"] == {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u"}}


# ---------------------------------------------------------------- other sandbox modes


def test_user_namespace_mode(tmp_path: Path) -> None:
    """What a non-root lab uses: ``unshare --user --map-root-user``; same files, no host writes."""
    other = MiniLab(tmp_path, sandbox="userns").start()
    try:
        if other.kubelet.sandbox.kind != "userns":
            pytest.skip(f"user namespaces unavailable: {other.kubelet.sandbox.reason}")
        out = _reader_pod(other, "userns")
        assert jwt.decode(out["token"], options={"verify_signature": False})["aud"] == [AUDIENCE]
        assert out["cm"] == '{"a": 1}' and out["labels"] == 'app="reader"\ntier="x"' and out["ro"] is True
        assert not os.path.lexists("/config") and not os.path.lexists("/scratch")
    finally:
        other.stop()




def test_fallback_without_mount_namespace(tmp_path: Path) -> None:
    other = MiniLab(tmp_path, sandbox="none").start()
    try:
        assert other.kubelet.sandbox.kind == "none"
        volume = {"name": "wi", "projected": {"sources": [
            {"serviceAccountToken": {"audience": AUDIENCE, "path": "token/azure-identity-token"}}]}}
        code = "import os; print(os.environ['AZURE_FEDERATED_TOKEN_FILE']); print(open(os.environ['AZURE_FEDERATED_TOKEN_FILE']).read()[:3])"
        other.pod("fb", [python("main", code, env=[{"name": "AZURE_FEDERATED_TOKEN_FILE", "value": WI_TOKEN}],
                                volumeMounts=[{"name": "wi", "mountPath": WI_MOUNT, "readOnly": True}])],
                  volumes=[volume])
        pod = other.wait("fb", phase_is("Succeeded", "Failed"))
        assert pod["status"]["phase"] == "Succeeded", other.logs("fb", "main")
        path, head = other.logs("fb", "main").splitlines()
        assert path.endswith("/rootfs/main" + WI_TOKEN) and path.startswith(str(other.kubelet.pods_dir) + "/")
        assert head == "eyJ"
        fallback = [e for e in other.events("default", "fb") if e["reason"] == "LabSandboxFallback"]
        assert fallback and fallback[0]["type"] == "Warning"
    finally:
        other.stop()


# ---------------------------------------------------------------- the session lab, end to end


def test_lab_pod_token_verifies_via_discovery(lab, kube_api) -> None:
    """Through the API server (admission, webhook) with the official client: the WI token the kubelet wrote
    into the pod verifies against the issuer's JWKS found through its discovery document."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    namespace = f"kubelet-e2e-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        client_id = str(uuid.uuid4())
        core.create_namespaced_service_account(namespace, {"metadata": {
            "name": "wl", "annotations": {"azure.workload.identity/client-id": client_id}}})
        sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
        code = ("import os, json; print(json.dumps({'file': os.environ['AZURE_FEDERATED_TOKEN_FILE'], "
                "'client': os.environ['AZURE_CLIENT_ID'], 'token': open(os.environ['AZURE_FEDERATED_TOKEN_FILE'])"
                f".read(), 'sa_ns': open('{sa_dir}/namespace').read(), 'sa_ca': open('{sa_dir}/ca.crt').read(), "
                f"'sa_token': open('{sa_dir}/token').read()}}))")
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": "wi", "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "wl", "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "lab/python", "args": ["-c", code]}]}})
        deadline = time.time() + 30
        while time.time() < deadline:
            pod = core.read_namespaced_pod("wi", namespace)
            if pod.status.phase in ("Succeeded", "Failed"):
                break
            time.sleep(0.1)
        assert pod.status.phase == "Succeeded", pod.status
        out = json.loads(core.read_namespaced_pod_log("wi", namespace, container="main"))
        assert out["client"] == client_id
        assert out["file"].startswith("/var/run/secrets/azure/")
        ca = str(lab.state_dir / "ca.pem")
        discovery = requests.get(lab.issuer_url + ".well-known/openid-configuration", verify=ca, timeout=10).json()
        jwks = requests.get(discovery["jwks_uri"], verify=ca, timeout=10).json()
        kid = jwt.get_unverified_header(out["token"])["kid"]
        (jwk,) = [k for k in jwks["keys"] if k["kid"] == kid]
        key = jwt.PyJWK(jwk).key
        claims = jwt.decode(out["token"], key, algorithms=["RS256"], audience=AUDIENCE, issuer=lab.issuer_url)
        assert claims["sub"] == f"system:serviceaccount:{namespace}:wl"
        assert claims["kubernetes.io"]["pod"]["name"] == "wi"
        # the API server's automounted kube-api-access volume is there too
        assert out["sa_ns"] == namespace and "BEGIN CERTIFICATE" in out["sa_ca"]
        api_claims = jwt.decode(out["sa_token"], key, algorithms=["RS256"], options={"verify_aud": False})
        assert api_claims["sub"] == claims["sub"] and api_claims["exp"] - api_claims["iat"] == 3607
    finally:
        core.delete_namespace(namespace)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
