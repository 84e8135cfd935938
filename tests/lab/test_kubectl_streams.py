"""Pod streams with the real kubectl and the Python client: exec, cp, attach, port-forward against lab pods."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream
from kubernetes.stream.ws_client import RESIZE_CHANNEL

from lab.kube.cluster import AccessRule
from lab.runtime import Lab, LabThread

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]

WEB_POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {namespace}}}
spec:
  containers:
  - name: server
    image: lab/python:3
    workingDir: /data
    env: [{{name: GREETING, value: hello-from-spec}}]
    args:
    - -c
    - |
      import http.server, os
      open('/data/marker', 'w').write('ready')
      os.chdir('/data')
      http.server.ThreadingHTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: idle
    image: myacr.azurecr.io/finance/backend:1.0
  volumes: [{{name: data, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: stuck, namespace: {namespace}}}
spec:
  containers:
  - name: pending
    image: myacr.azurecr.io/does-not-exist:1.0
"""


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def web(kubectl: Kubectl) -> Iterator[tuple[str, int]]:
    """A namespace with pod ``web``: a Python HTTP server on a port of its own serving its emptyDir ``/data``
    (container ``server``) and an idle container; and pod ``stuck``, whose image cannot be pulled."""
    namespace, port = f"streams-{uuid.uuid4().hex[:6]}", free_port()
    kubectl("create", "namespace", namespace)
    kubectl("apply", "-f", "-", input=WEB_POD.format(namespace=namespace, port=port))

    def serving() -> bool:
        pod = json.loads(kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
        statuses = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses", [])}
        return "running" in statuses.get("server", {}).get("state", {})

    wait_for(serving)
    wait_for(lambda: kubectl("exec", "web", "-n", namespace, "-c", "server", "--", "cat", "/data/marker",
                             check=False).stdout == "ready")
    yield namespace, port
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def workload_pod(kubectl: Kubectl) -> dict:
    pods = json.loads(kubectl("get", "pods", "-n", "finance", "-l", "app=backend", "-o", "json").stdout)["items"]
    assert pods, "the healthy scenario runs finance/backend"
    return pods[0]


# ---------------------------------------------------------------- exec


def test_exec_into_workload_pod_prints_injected_env_and_reads_the_token(kubectl: Kubectl, lab: Lab) -> None:
    pod = workload_pod(kubectl)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["AZURE_CLIENT_ID"]  # injected by the webhook at admission
    entra = urlsplit(lab.endpoints["entra"]).port
    reach = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {entra}), 2); print('entra open')\""
    out = kubectl("exec", "-n", "finance", pod["metadata"]["name"], "--", "sh", "-c",
                  f'echo "$AZURE_CLIENT_ID"; cat "$AZURE_FEDERATED_TOKEN_FILE"; echo; {reach}; id -u'
                  ).stdout.split("\n")
    assert out[0] == env["AZURE_CLIENT_ID"]
    assert out[2] == "entra open"  # the pod's network: lab services through its relay
    run_as = (pod["spec"].get("securityContext") or {}).get("runAsUser")
    if lab.kubelet.sandbox.kind == "root" and run_as is not None:  # else the lab runs pods as its own user
        assert out[3] == str(run_as)
    claims = jwt.decode(out[1], options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:finance:backend-sa"
    assert claims["aud"] == ["api://AzureADTokenExchange"]
    assert claims["kubernetes.io"]["pod"]["name"] == pod["metadata"]["name"]


def test_exec_enters_the_running_containers_namespaces_with_its_env_and_workdir(
        kubectl: Kubectl, lab: Lab, web: tuple[str, int]) -> None:
    if not lab.kubelet.sandbox.isolated:
        pytest.skip(f"no mount namespaces on this machine: {lab.kubelet.sandbox.reason}")
    namespace, port = web
    script = ("pwd; echo $GREETING; cat marker; echo; python3 -c \"import socket; "
              f"socket.create_connection(('127.0.0.1', {port}), 2); print('listening')\"")
    out = kubectl("exec", "web", "-n", namespace, "-c", "server", "--", "sh", "-c", script).stdout
    # /data is the container's emptyDir, seen only in its mount namespace; the port is open only in its network
    assert out.split("\n")[:4] == ["/data", "hello-from-spec", "ready", "listening"]


def test_exec_stdin_and_exit_status(kubectl: Kubectl, web: tuple[str, int]) -> None:
    namespace, _ = web
    result = kubectl("exec", "-i", "web", "-n", namespace, "-c", "server", "--", "sh", "-c", "tr a-z A-Z; exit 7",
                     input="quiet please\n", check=False)
    assert result.stdout == "QUIET PLEASE\n"
    assert result.returncode == 7
    assert "command terminated with exit code 7" in result.stderr


def test_exec_errors_are_worded_like_the_api_server(kubectl: Kubectl, web: tuple[str, int]) -> None:
    namespace, _ = web
    missing = kubectl("exec", "nope", "-n", namespace, "--", "true", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr
    wrong = kubectl("exec", "web", "-n", namespace, "-c", "nope", "--", "true", check=False)
    assert "error: container nope is not valid for pod web out of: server, idle" in wrong.stderr  # kubectl's
    unchosen = kubectl("exec", "web", "-n", namespace, "--", "true", check=False)
    assert unchosen.returncode == 0  # kubectl picks the first container and says so
    assert 'Defaulted container "server" out of: server, idle' in unchosen.stderr
    waiting = kubectl("exec", "stuck", "-n", namespace, "--", "true", check=False)
    assert 'unable to upgrade connection: container not found ("pending")' in waiting.stderr
    no_binary = kubectl("exec", "web", "-n", namespace, "-c", "server", "--", "no-such-tool", check=False)
    assert no_binary.returncode == 1
    assert 'exec: "no-such-tool": executable file not found in $PATH' in no_binary.stderr


def test_exec_needs_create_on_pods_exec(kubectl: Kubectl, lab: Lab, lab_thread: LabThread,
                                        web: tuple[str, int]) -> None:
    namespace, _ = web
    name = f"viewer-{uuid.uuid4().hex[:4]}"
    reader = lab_thread.call(lambda: lab.kube.add_user(name, rules=[AccessRule(
        verbs=["get", "list"], resources=["pods"], groups=[""], namespaces=[namespace])])).result(10)
    denied = kubectl("--token", reader.token, "exec", "web", "-n", namespace, "-c", "server", "--", "true",
                     check=False)
    assert denied.returncode == 1
    assert (f'pods "web" is forbidden: User "{name}" cannot create resource "pods/exec" in API group "" '
            f'in the namespace "{namespace}"') in denied.stderr


# ---------------------------------------------------------------- cp


def test_cp_round_trip_through_tar_over_exec(kubectl: Kubectl, web: tuple[str, int], tmp_path: Path) -> None:
    namespace, _ = web
    source = tmp_path / "in.txt"
    source.write_bytes(b"line one\n" + bytes(range(256)) * 1024)  # 256 KiB: many frames each way
    kubectl("cp", str(source), f"{namespace}/web:/data/in.txt", "-c", "server")
    assert kubectl("exec", "web", "-n", namespace, "-c", "server", "--", "wc", "-c", "in.txt").stdout.split()[0] \
        == str(source.stat().st_size)
    kubectl("cp", f"{namespace}/web:/data/in.txt", str(tmp_path / "back.txt"), "-c", "server")
    assert (tmp_path / "back.txt").read_bytes() == source.read_bytes()


def test_cp_of_the_projected_token(kubectl: Kubectl, tmp_path: Path) -> None:
    pod = workload_pod(kubectl)["metadata"]["name"]
    tokens = f"finance/{pod}:/var/run/secrets/azure/tokens"
    # the file is the atomic writer's symlink into ..data, and kubectl cp skips symlinks (as on AKS)
    linked = kubectl("cp", f"{tokens}/azure-identity-token", str(tmp_path / "t"))
    assert 'warning: skipping symlink: "' in linked.stderr and '-> "..data/azure-identity-token"' in linked.stderr
    assert not (tmp_path / "t").exists()
    kubectl("cp", f"{tokens}/..data/azure-identity-token", str(tmp_path / "t"))
    shown = kubectl("exec", "-n", "finance", pod, "--", "cat", "/var/run/secrets/azure/tokens/azure-identity-token")
    assert (tmp_path / "t").read_text() == shown.stdout
    assert jwt.decode(shown.stdout, options={"verify_signature": False})["sub"].endswith(":finance:backend-sa")


# ---------------------------------------------------------------- attach


def test_attach_streams_what_the_container_writes(kubectl: Kubectl, web: tuple[str, int]) -> None:
    namespace, _ = web
    name = f"ticker-{uuid.uuid4().hex[:4]}"
    kubectl("run", name, "-n", namespace, "--image=busybox:1.37", "--restart=Never", "--",
            "sh", "-c", "sleep 1.5; echo tick; sleep 0.3; echo tock")
    wait_for(lambda: kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}").stdout
             == "Running")
    attached = kubectl("attach", name, "-n", namespace, timeout=20)
    assert attached.stdout.split() == ["tick", "tock"]


def test_run_interactive_attaches_stdin_and_removes_the_pod(kubectl: Kubectl, web: tuple[str, int]) -> None:
    namespace, _ = web
    name = f"asker-{uuid.uuid4().hex[:4]}"
    ran = kubectl("run", name, "-n", namespace, "-i", "--rm", "--restart=Never", "--image=busybox:1.37", "--",
                  "sh", "-c", "read line; echo got $line", input="hello\n", timeout=30)
    assert ran.stdout.split("\n")[:2] == ["got hello", f'pod "{name}" deleted from {namespace} namespace'], ran


def test_kubectl_debug_adds_an_ephemeral_container_and_attaches(kubectl: Kubectl, web: tuple[str, int]) -> None:
    namespace, _ = web
    debugged = kubectl("debug", "web", "-n", namespace, "--image=busybox:1.37", "--target=server", "-i",
                       "--container=dbg", "--", "sh", "-c", "read word; echo debug $word; echo env:$GREETING",
                       input="ping\n", timeout=30)
    assert 'Defaulting debug container name' not in debugged.stdout  # --container named it
    assert debugged.stdout.endswith("debug ping\nenv:\n"), debugged  # its own env, not the target's
    pod = json.loads(kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
    assert [(c["name"], c["targetContainerName"]) for c in pod["spec"]["ephemeralContainers"]] == [("dbg", "server")]
    status = wait_for(lambda: json.loads(kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
                      ["status"]["ephemeralContainerStatuses"][0]["state"].get("terminated"))
    assert status["exitCode"] == 0
    assert kubectl("logs", "web", "-n", namespace, "-c", "dbg").stdout == "debug ping\nenv:\n"
    refused = kubectl("debug", "web", "-n", namespace, "--image=busybox:1.37", "--target=nope", "--", "true",
                      check=False)
    assert ('The Pod "web" is invalid: spec.ephemeralContainers[1].targetContainerName: Not found: "nope"'
            in refused.stderr)
    again = kubectl("debug", "web", "-n", namespace, "--image=busybox:1.37", "--container=dbg", "--", "true",
                    check=False)
    # kubectl's strategic merge patch merges into the existing "dbg", which may not change
    assert ('The Pod "web" is invalid: spec.ephemeralContainers[dbg]: Forbidden: existing ephemeral containers '
            '"dbg" may not be changed') in again.stderr


# ---------------------------------------------------------------- port-forward


def test_kubectl_port_forward(kubeconfig: Path, web: tuple[str, int], tmp_path: Path) -> None:
    namespace, port = web
    local, closed = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    proc = subprocess.Popen(["kubectl", "port-forward", "-n", namespace, "pod/web", f"{local}:{port}",
                             f"{closed}:{port + 1}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0] == f"Forwarding from 127.0.0.1:{local} -> {port}\n", lines
        for _ in range(2):  # one connection after another over the same tunnel
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/marker", timeout=10) as response:
                assert response.read() == b"ready"
        with pytest.raises(OSError), urllib.request.urlopen(f"http://127.0.0.1:{closed}/", timeout=10):
            pass
        proc.wait(timeout=10)  # an error in a forwarded connection ends kubectl port-forward
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert f"error forwarding port {port + 1} to pod" in err
    assert f"dial tcp4 127.0.0.1:{port + 1}: connect: connection refused" in err


def test_spdy_for_clients_that_ask_for_it(kubeconfig: Path, web: tuple[str, int], tmp_path: Path) -> None:
    """kubectl before 1.30/1.31 (here: the same kubectl told to) upgrades with SPDY/3.1 instead of WebSockets."""
    namespace, port = web
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path),
           "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}

    def run(*args: str, **kw: Any) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=30, **kw)

    ran = run("exec", "-i", "-v=6", "web", "-n", namespace, "-c", "server", "--", "sh", "-c",
              "tr a-z A-Z; echo oops >&2; exit 5", input="over spdy\n")
    assert ran.stdout == "OVER SPDY\n" and ran.returncode == 5
    assert "oops\ncommand terminated with exit code 5" in ran.stderr
    assert 'verb="POST"' in ran.stderr and 'status="101 Switching Protocols"' in ran.stderr
    local = free_port()
    proc = subprocess.Popen(["kubectl", "port-forward", "-n", namespace, "pod/web", f"{local}:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("Forwarding from")
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/marker", timeout=10) as response:
            assert response.read() == b"ready"
    finally:
        proc.kill()
        proc.communicate()


# ---------------------------------------------------------------- the Python client


def test_python_client_stream_exec_tty_and_portforward(kube_api: Any, web: tuple[str, int]) -> None:
    namespace, port = web
    core = client.CoreV1Api(kube_api)
    resp = stream(core.connect_get_namespaced_pod_exec, "web", namespace, container="server",
                  command=["sh", "-c", "echo out; echo err >&2; exit 3"], stderr=True, stdin=False, stdout=True,
                  tty=False, _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.read_stdout() == "out\n" and resp.read_stderr() == "err\n"
    assert resp.returncode == 3
    answer = stream(core.connect_get_namespaced_pod_exec, "web", namespace, container="server",
                    command=["sh", "-c", "test -t 0 && echo terminal"], stderr=True, stdin=False, stdout=True,
                    tty=True)
    assert answer.strip() == "terminal"
    sized = stream(core.connect_get_namespaced_pod_exec, "web", namespace, container="server",
                   command=["sh", "-c", "sleep 0.5; stty size"], stderr=True, stdin=False, stdout=True, tty=True,
                   _preload_content=False)
    sized.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 123, "Height": 45}))
    sized.run_forever(timeout=10)
    assert sized.read_stdout().strip() == "45 123" and sized.returncode == 0
    with pytest.raises(ApiException) as refused:  # the Python client leaves the container check to the server
        stream(core.connect_get_namespaced_pod_exec, "web", namespace, container="nope", command=["true"],
               stdout=True)
    assert "400 Bad Request" in str(refused.value) and "container nope is not valid for pod web" in str(refused.value)
    container = {"name": "c", "image": "busybox:1.37", "stdin": True, "tty": True,
                 "command": ["sh", "-c", "read line; echo got:$line; test -t 1 && echo on-a-tty; stty size"]}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "term"},
                                           "spec": {"restartPolicy": "Never", "containers": [container]}})
    wait_for(lambda: core.read_namespaced_pod("term", namespace).status.phase == "Running")
    attached = stream(core.connect_get_namespaced_pod_attach, "term", namespace, stdin=True, stdout=True,
                      tty=True, _preload_content=False)
    attached.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 90, "Height": 30}))
    time.sleep(0.2)
    attached.write_stdin("hello\n")
    attached.run_forever(timeout=10)
    shown = attached.read_stdout()
    assert "got:hello\r\non-a-tty\r\n30 90" in shown, shown  # the terminal's line endings, resized
    forward = portforward(core.connect_get_namespaced_pod_portforward, "web", namespace, ports=str(port))
    sock = forward.socket(port)
    sock.settimeout(10)
    sock.sendall(b"GET /marker HTTP/1.0\r\n\r\n")
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    sock.close()
    assert received.startswith(b"HTTP/1.0 200") and received.endswith(b"ready")
    assert forward.error(port) is None
    refused = portforward(core.connect_get_namespaced_pod_portforward, "web", namespace, ports=str(port + 1))
    assert refused.socket(port + 1).recv(1) == b""
    wait_for(lambda: refused.error(port + 1))
    assert f"dial tcp4 127.0.0.1:{port + 1}: connect: connection refused" in refused.error(port + 1)
