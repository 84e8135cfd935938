"""The real kubectl's typed commands, whose bodies are protobuf (decoded from upstream's schemas), and the
APIs added for rehearsal: NetworkPolicy, PriorityClass."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]
IDLE_IMAGE = "myacr.azurecr.io/finance/backend:1.0"  # a scenario image the kubelet keeps Running


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"more-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    wait_for(lambda: kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def get(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_kubectl_create_of_each_kind_is_decoded_from_protobuf(kubectl: Kubectl, namespace: str) -> None:
    ns = ("-n", namespace)
    assert kubectl("create", "deployment", "web", f"--image={IDLE_IMAGE}", "--replicas=0", "--port=8080",
                   *ns).stdout.strip() == "deployment.apps/web created"
    deployment = get(kubectl, "deployment", "web", *ns)
    assert deployment["spec"]["replicas"] == 0  # an explicit zero survives the protobuf body
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IDLE_IMAGE and container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]

    kubectl("create", "job", "once", f"--image={IDLE_IMAGE}", *ns, "--", "sleep", "1")
    job = get(kubectl, "job", "once", *ns)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["sleep", "1"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    kubectl("create", "cronjob", "nightly", f"--image={IDLE_IMAGE}", "--schedule=0 1 * * *", *ns)
    assert get(kubectl, "cronjob", "nightly", *ns)["spec"]["schedule"] == "0 1 * * *"

    kubectl("create", "role", "reader", "--verb=get,list", "--resource=pods,secrets", "--resource-name=x", *ns)
    rules = get(kubectl, "role", "reader", *ns)["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["pods", "secrets"], "resourceNames": ["x"],
                      "verbs": ["get", "list"]}]
    kubectl("create", "rolebinding", "reader", "--role=reader", f"--serviceaccount={namespace}:default", *ns)
    binding = get(kubectl, "rolebinding", "reader", *ns)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]

    role = f"more-{namespace}"
    kubectl("create", "clusterrole", role, "--verb=get", "--non-resource-url=/healthz")
    try:
        assert get(kubectl, "clusterrole", role)["rules"] == [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]
    finally:
        kubectl("delete", "clusterrole", role)

    kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", *ns)
    service = get(kubectl, "service", "web", *ns)
    assert service["spec"]["ports"][0]["port"] == 80 and service["spec"]["ports"][0]["targetPort"] == 8080
    kubectl("create", "service", "nodeport", "named", "--tcp=443:https", *ns)
    assert get(kubectl, "service", "named", *ns)["spec"]["ports"][0]["targetPort"] == "https"

    priority = f"more-{namespace}"
    kubectl("create", "priorityclass", priority, "--value=1000", "--description=rehearsal")
    try:
        created = get(kubectl, "priorityclass", priority)
        assert (created["value"], created["description"]) == (1000, "rehearsal")
    finally:
        kubectl("delete", "priorityclass", priority)


def test_debug_copy_to_and_delete_options(kubectl: Kubectl, namespace: str) -> None:
    ns = ("-n", namespace)
    kubectl("run", "orig", f"--image={IDLE_IMAGE}", "--labels=app=orig", *ns)
    wait_for(lambda: get(kubectl, "pod", "orig", *ns)["status"].get("phase") == "Running")
    kubectl("debug", "orig", "--copy-to=orig-copy", f"--image={IDLE_IMAGE}", "--container=debugger",
            "--share-processes", *ns, timeout=60)
    copy = get(kubectl, "pod", "orig-copy", *ns)
    assert [c["name"] for c in copy["spec"]["containers"]] == ["orig", "debugger"]
    assert copy["spec"]["shareProcessNamespace"] is True
    # a volume of the original (the projected ServiceAccount token) comes across with its inline source
    assert any("projected" in volume for volume in copy["spec"]["volumes"])

    deleted = kubectl("delete", "pod", "orig-copy", "--grace-period=0", "--force", *ns)
    assert 'pod "orig-copy" force deleted' in deleted.stdout
    kubectl("delete", "pod", "orig", "--cascade=foreground", "--wait=false", *ns)
    wait_for(lambda: kubectl("get", "pod", "orig", *ns, check=False).returncode != 0)
