"""The real kubectl against the lab's API server: typed (protobuf) commands, apply, logs, delete, CRDs,
auth and the error messages people see."""

from __future__ import annotations

import base64
import gc
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.kube.cluster import AccessRule
from lab.runtime import Lab, LabThread

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]
IDLE_IMAGE = "myacr.azurecr.io/finance/backend:1.0"  # a scenario image the kubelet keeps Running

POD_MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {namespace}
  labels: {{app: web}}
spec:
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "echo hi"]
"""

AAD_POD_IDENTITY_CRDS = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: azureidentities.aadpodidentity.k8s.io
spec:
  group: aadpodidentity.k8s.io
  names: {kind: AzureIdentity, listKind: AzureIdentityList, plural: azureidentities, singular: azureidentity}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: azureidentitybindings.aadpodidentity.k8s.io
spec:
  group: aadpodidentity.k8s.io
  names: {kind: AzureIdentityBinding, listKind: AzureIdentityBindingList, plural: azureidentitybindings,
          singular: azureidentitybinding}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""

AAD_POD_IDENTITY_OBJECTS = """\
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {{name: legacy-id, namespace: {namespace}}}
spec:
  type: 0
  resourceID: /subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x
  clientID: 00000000-0000-0000-0000-00000000000a
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {{name: legacy-binding, namespace: {namespace}}}
spec: {{azureIdentity: legacy-id, selector: legacy}}
"""


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture(autouse=True, scope="module")
def collect_lab_garbage() -> Iterator[None]:
    """Collect cyclic garbage (e.g. kubelet tasks for pods these tests deleted) here, at a safe point: on
    CPython 3.11 a finalizer that formats a traceback inside another ast.parse (pytest's assertion
    rewriting) fails that parse with "SystemError: AST constructor recursion depth mismatch"."""
    yield
    gc.collect()


@pytest.fixture()
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"kctl-{uuid.uuid4().hex[:8]}"
    assert kubectl("create", "namespace", name).stdout.strip() == f"namespace/{name} created"
    wait_for(lambda: kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def restricted(lab: Lab, lab_thread: LabThread) -> Any:
    rules = [
        AccessRule(verbs=["get", "list", "watch"], resources=["pods"], groups=[""], namespaces=["default"])
    ]
    name = f"carol-{uuid.uuid4().hex[:4]}"
    return lab_thread.call(lambda: lab.kube.add_user(name, rules=rules)).result(10)


# ---------------------------------------------------------------- typed commands (protobuf bodies)


def test_create_namespace_and_service_account(kubectl: Kubectl, namespace: str) -> None:
    assert (
        kubectl("create", "serviceaccount", "bot", "-n", namespace).stdout.strip()
        == "serviceaccount/bot created"
    )
    listed = json.loads(kubectl("get", "sa", "-A", "-o", "json").stdout)
    names = {(item["metadata"]["namespace"], item["metadata"]["name"]) for item in listed["items"]}
    assert {(namespace, "bot"), (namespace, "default"), ("kube-system", "default")} <= names
    labels = json.loads(kubectl("get", "ns", namespace, "-o", "json").stdout)["metadata"]["labels"]
    assert labels == {"kubernetes.io/metadata.name": namespace}
    again = kubectl("create", "serviceaccount", "bot", "-n", namespace, check=False)
    assert again.returncode == 1
    assert 'serviceaccounts "bot" already exists' in again.stderr


def test_annotate_and_label(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", "bot", "-n", namespace)
    client_id = "00000000-0000-0000-0000-000000000001"
    annotated = kubectl(
        "annotate", "sa", "bot", "-n", namespace, f"azure.workload.identity/client-id={client_id}"
    )
    assert annotated.stdout.strip() == "serviceaccount/bot annotated"
    assert (
        kubectl("label", "sa", "bot", "-n", namespace, "tier=gold").stdout.strip()
        == "serviceaccount/bot labeled"
    )
    bot = json.loads(kubectl("get", "sa", "bot", "-n", namespace, "-o", "json").stdout)
    assert bot["metadata"]["annotations"]["azure.workload.identity/client-id"] == client_id
    assert bot["metadata"]["labels"] == {"tier": "gold"}
    selected = kubectl("get", "sa", "-A", "-l", "tier=gold", "-o", "name").stdout.split()
    assert selected == ["serviceaccount/bot"]
    kubectl("label", "sa", "bot", "-n", namespace, "tier-")
    unlabelled = json.loads(kubectl("get", "sa", "bot", "-n", namespace, "-o", "json").stdout)
    assert not unlabelled["metadata"].get("labels")


def test_create_token(kubectl: Kubectl, lab: Lab, namespace: str) -> None:
    kubectl("create", "serviceaccount", "bot", "-n", namespace)
    token = kubectl(
        "create",
        "token",
        "bot",
        "-n",
        namespace,
        "--audience",
        "api://AzureADTokenExchange",
        "--duration",
        "10m",
    ).stdout
    assert token.count(".") == 2 and not token.endswith("\n")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == ["api://AzureADTokenExchange"] and claims["iss"] == lab.issuer_url
    assert claims["sub"] == f"system:serviceaccount:{namespace}:bot" and claims["exp"] - claims["iat"] == 600
    missing = kubectl("create", "token", "ghost", "-n", namespace, check=False)
    assert missing.returncode == 1 and 'serviceaccounts "ghost" not found' in missing.stderr


def test_auth_can_i_and_whoami(kubectl: Kubectl, restricted: Any) -> None:
    assert kubectl("auth", "can-i", "create", "pods", "-n", "default").stdout.strip() == "yes"
    allowed = kubectl(
        "--token", restricted.token, "auth", "can-i", "list", "pods", "-n", "default", check=False
    )
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
    denied = kubectl(
        "--token", restricted.token, "auth", "can-i", "create", "pods", "-n", "default", check=False
    )
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    whoami = kubectl("--token", restricted.token, "auth", "whoami").stdout
    assert restricted.name in whoami and "system:authenticated" in whoami


# ---------------------------------------------------------------- apply, get, logs, delete


def test_apply_pod_from_stdin_get_and_reapply(kubectl: Kubectl, namespace: str) -> None:
    manifest = POD_MANIFEST.format(namespace=namespace, image="busybox:1.35")
    assert kubectl("apply", "-f", "-", input=manifest).stdout.strip() == "pod/web created"
    table = kubectl("get", "pods", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    # READY counts its one container, running or not: by the time kubectl asks, the lab's kubelet may have
    # started "echo hi", seen it exit and restarted it (restartPolicy Always), as a real node's would
    assert table[1].split()[:2] in (["web", "0/1"], ["web", "1/1"])
    everywhere = kubectl("get", "pods", "-A", "-l", "app=web").stdout.splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [namespace, "web"] for line in everywhere[1:])
    assert kubectl("apply", "-f", "-", input=manifest).stdout.strip() == "pod/web unchanged"
    changed = POD_MANIFEST.format(namespace=namespace, image="busybox:1.36")
    assert kubectl("apply", "-f", "-", input=changed).stdout.strip() == "pod/web configured"
    container = json.loads(kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)["spec"][
        "containers"
    ][0]
    assert container["image"] == "busybox:1.36" and container["command"] == ["sh", "-c", "echo hi"]


def test_server_side_apply(kubectl: Kubectl, namespace: str) -> None:
    config_map = (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssa, namespace: {namespace}}}\ndata: {{k: v}}\n"
    )
    assert (
        kubectl("apply", "--server-side", "-f", "-", input=config_map).stdout.strip()
        == "configmap/ssa serverside-applied"
    )
    assert json.loads(kubectl("get", "cm", "ssa", "-n", namespace, "-o", "json").stdout)["data"] == {"k": "v"}


def test_logs(kubectl: Kubectl, lab: Lab, lab_thread: LabThread, namespace: str) -> None:
    # an image that runs no process: the test alone writes this pod's log (busybox would race it with "hi")
    kubectl("apply", "-f", "-", input=POD_MANIFEST.format(namespace=namespace, image=IDLE_IMAGE))
    key = (namespace, "web", "main")
    lab_thread.call(lambda: lab.kube.pod_logs.__setitem__(key, bytearray(b"first\nsecond\n"))).result(10)
    assert kubectl("logs", "web", "-n", namespace).stdout == "first\nsecond\n"
    assert kubectl("logs", "web", "-n", namespace, "--tail=1").stdout == "second\n"
    assert kubectl("logs", "-l", "app=web", "-n", namespace).stdout == "first\nsecond\n"
    wrong = kubectl("logs", "web", "-n", namespace, "-c", "nope", check=False)
    assert wrong.returncode == 1 and "container nope is not valid for pod web" in wrong.stderr


def test_delete_does_not_hang(kubectl: Kubectl, namespace: str) -> None:
    manifest = POD_MANIFEST.format(namespace=namespace, image=IDLE_IMAGE)
    kubectl("apply", "-f", "-", input=manifest)
    kubectl(
        "wait", "--for=condition=Ready", "pod/web", "-n", namespace, "--timeout=20s", check=False, timeout=30
    )
    deleted = kubectl("delete", "pod", "web", "-n", namespace, timeout=60)
    assert deleted.stdout.strip() == f'pod "web" deleted from {namespace} namespace'
    gone = kubectl("get", "pod", "web", "-n", namespace, check=False)
    assert gone.returncode == 1 and 'pods "web" not found' in gone.stderr
    kubectl("create", "configmap", "cm", "-n", namespace, "--from-literal=a=b")
    assert kubectl("delete", "configmap", "cm", "-n", namespace, timeout=30).returncode == 0


def test_delete_namespace(kubectl: Kubectl) -> None:
    name = f"kctl-gone-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("create", "configmap", "cm", "-n", name, "--from-literal=a=b")
    assert kubectl("delete", "namespace", name, timeout=60).returncode == 0
    assert kubectl("get", "configmaps", "-n", name, "-o", "name").stdout == ""


# ---------------------------------------------------------------- custom resources


def test_aad_pod_identity_crds_and_their_resources(kubectl: Kubectl, namespace: str) -> None:
    existed = kubectl("get", "crd", "azureidentities.aadpodidentity.k8s.io", check=False).returncode == 0
    applied = kubectl("apply", "-f", "-", input=AAD_POD_IDENTITY_CRDS).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/azureidentities.aadpodidentity.k8s.io" in applied
    try:
        created = kubectl(
            "apply", "-f", "-", input=AAD_POD_IDENTITY_OBJECTS.format(namespace=namespace)
        ).stdout
        assert created.split("\n")[0] == "azureidentity.aadpodidentity.k8s.io/legacy-id created"
        listed = kubectl("get", "azureidentities", "--all-namespaces").stdout.splitlines()
        assert listed[0].split() == ["NAMESPACE", "NAME", "AGE"]
        assert any(line.split()[:2] == [namespace, "legacy-id"] for line in listed[1:])
        bindings = json.loads(kubectl("get", "azureidentitybindings", "-A", "-o", "json").stdout)["items"]
        assert any(b["spec"] == {"azureIdentity": "legacy-id", "selector": "legacy"} for b in bindings)
        established = json.loads(
            kubectl("get", "crd", "azureidentities.aadpodidentity.k8s.io", "-o", "json").stdout
        )
        assert {c["type"]: c["status"] for c in established["status"]["conditions"]}["Established"] == "True"
    finally:
        if not existed:
            kubectl("delete", "-f", "-", input=AAD_POD_IDENTITY_CRDS, check=False, timeout=60)


# ---------------------------------------------------------------- what people see when it goes wrong


def test_error_messages(kubectl: Kubectl, restricted: Any, namespace: str) -> None:
    unknown = kubectl("get", "gizmos", check=False)
    assert unknown.returncode == 1 and 'the server doesn\'t have a resource type "gizmos"' in unknown.stderr
    invalid = kubectl("create", "namespace", "Bad_Name", check=False)
    assert invalid.returncode == 1
    assert 'The Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' in invalid.stderr
    imageless = kubectl(
        "create",
        "-f",
        "-",
        check=False,
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "x", "namespace": namespace},
                "spec": {"containers": [{"name": "c"}]},
            }
        ),
    )
    assert 'The Pod "x" is invalid: spec.containers[0].image: Required value' in imageless.stderr
    forbidden = kubectl(
        "--token", restricted.token, "create", "configmap", "cm", "-n", "default", check=False
    )
    assert forbidden.returncode == 1
    assert (
        f'configmaps is forbidden: User "{restricted.name}" cannot create resource "configmaps" in API group '
        '"" in the namespace "default"'
    ) in forbidden.stderr
    unauthorized = kubectl("--token", "wrong", "get", "pods", check=False)
    assert "error: You must be logged in to the server (Unauthorized)" in unauthorized.stderr
    malformed = kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/configmaps",
        "-f",
        "-",
        input='{"kind": ',
        check=False,
    )
    assert (
        "Error from server (BadRequest): couldn't get version/kind; json parse error: unexpected end of JSON "
        "input"
    ) in malformed.stderr
    nowhere = kubectl("create", "serviceaccount", "bot", "-n", "no-such-ns", check=False)
    assert 'namespaces "no-such-ns" not found' in nowhere.stderr


def test_unsupported_field_selector_is_a_bad_request(kubectl: Kubectl, namespace: str) -> None:
    refused = kubectl("get", "pods", "-n", namespace, "--field-selector", "spec.foo=bar", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ('Error from server (BadRequest): Unable to find "/v1, Resource=pods" that '
                                      'match label selector "", field selector "spec.foo=bar": field label not '
                                      'supported: spec.foo')
    assert kubectl("get", "pods", "-n", namespace, "--field-selector", "status.phase=Running").returncode == 0
