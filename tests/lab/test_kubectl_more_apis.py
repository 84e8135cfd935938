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


def test_kubernetes_service_and_endpoints_of_a_service_follow_pod_readiness(
    kubectl: Kubectl, lab: Any, namespace: str
) -> None:
    service = get(kubectl, "service", "kubernetes", "-n", "default")
    assert service["spec"]["clusterIP"] == "10.0.0.1" and service["spec"]["ports"][0]["port"] == 443
    kube_port = int(lab.endpoints["kube"].rsplit(":", 1)[1])
    listed = kubectl("get", "endpoints", "kubernetes", "-n", "default").stdout.split("\n")[1].split()
    assert listed[:2] == ["kubernetes", f"127.0.0.1:{kube_port}"]

    ns = ("-n", namespace)
    kubectl("create", "deployment", "api", f"--image={IDLE_IMAGE}", "--port=8080", *ns)
    kubectl("expose", "deployment", "api", "--port=80", "--target-port=8080", *ns)

    def endpoint_ips() -> list[str]:
        subsets = get(kubectl, "endpoints", "api", *ns).get("subsets") or []
        return [a["ip"] for s in subsets for a in s.get("addresses") or []]

    wait_for(lambda: endpoint_ips() == ["127.0.0.1"])
    endpoints = get(kubectl, "endpoints", "api", *ns)
    assert endpoints["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert endpoints["subsets"][0]["addresses"][0]["targetRef"]["kind"] == "Pod"
    slices = get(kubectl, "endpointslices", "-l", "kubernetes.io/service-name=api", *ns)["items"]
    assert len(slices) == 1 and slices[0]["metadata"]["name"].startswith("api-")
    assert [e["conditions"]["ready"] for e in slices[0]["endpoints"]] == [True]
    assert slices[0]["metadata"]["ownerReferences"][0]["kind"] == "Service"

    kubectl("scale", "deployment", "api", "--replicas=0", *ns)
    wait_for(lambda: endpoint_ips() == [])
    kubectl("delete", "service", "api", *ns)
    wait_for(lambda: kubectl("get", "endpoints", "api", *ns, check=False).returncode != 0)
    assert get(kubectl, "endpointslices", "-l", "kubernetes.io/service-name=api", *ns)["items"] == []


def test_default_cluster_roles_are_bootstrapped_and_aggregated(kubectl: Kubectl, namespace: str) -> None:
    names = kubectl("get", "clusterroles", "-o", "name").stdout.split()
    for role in ("admin", "edit", "view", "cluster-admin", "system:basic-user", "system:discovery"):
        assert f"clusterrole.rbac.authorization.k8s.io/{role}" in names
    binding = get(kubectl, "clusterrolebinding", "cluster-admin")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:masters"}]

    account = f"system:serviceaccount:{namespace}:default"
    # non-resource URLs through the bootstrapped bindings: issuer discovery for every ServiceAccount
    assert kubectl("auth", "can-i", "get", "/openid/v1/jwks", f"--as={account}").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "get", "/metrics", f"--as={account}", check=False).stdout.strip() == "no"
    listed = kubectl("auth", "can-i", "--list", f"--as={account}", "-n", namespace).stdout
    assert "[/.well-known/openid-configuration]" in listed and "selfsubjectaccessreviews" in listed
    can_list = ("auth", "can-i", "list", "pods", "-n", namespace, f"--as={account}")
    assert kubectl(*can_list, check=False).stdout.strip() == "no"
    kubectl("create", "rolebinding", "viewers", "--clusterrole=view", f"--serviceaccount={namespace}:default",
            "-n", namespace)
    assert kubectl(*can_list, check=False).stdout.strip() == "yes"  # view = the union of aggregate-to-view
    assert kubectl("auth", "can-i", "get", "secrets", "-n", namespace, f"--as={account}",
                   check=False).stdout.strip() == "no"  # view does not read secrets; edit does

    extra = f"widgets-view-{namespace}"
    kubectl("apply", "-f", "-", input=f"""\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {extra}
  labels: {{rbac.authorization.k8s.io/aggregate-to-view: "true"}}
rules:
- {{apiGroups: [example.com], resources: [widgets], verbs: [get]}}
""")
    try:
        wanted = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}
        wait_for(lambda: wanted in get(kubectl, "clusterrole", "view")["rules"])
        assert wanted in get(kubectl, "clusterrole", "admin")["rules"]  # view -> edit -> admin
    finally:
        kubectl("delete", "clusterrole", extra)
    wait_for(lambda: {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}
             not in get(kubectl, "clusterrole", "view")["rules"])


def test_eviction_respects_the_pod_disruption_budget(kubectl: Kubectl, kube_api: Any, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ns = ("-n", namespace)
    kubectl("create", "deployment", "guarded", f"--image={IDLE_IMAGE}", "--replicas=1", *ns)
    kubectl("create", "poddisruptionbudget", "guarded", "--selector=app=guarded", "--min-available=1", *ns)

    def ready_pods() -> list[str]:
        pods = get(kubectl, "pods", "-l", "app=guarded", *ns)["items"]
        return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []))

    wait_for(lambda: len(ready_pods()) == 1)
    wait_for(lambda: get(kubectl, "pdb", "guarded", *ns).get("status", {}).get("currentHealthy") == 1)
    row = kubectl("get", "pdb", "guarded", *ns).stdout.split("\n")[1].split()
    assert row[:4] == ["guarded", "1", "N/A", "0"]

    core = client.CoreV1Api(kube_api)
    victim = ready_pods()[0]
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=victim, namespace=namespace))
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod_eviction(victim, namespace, body)
    assert refused.value.status == 429
    status = json.loads(refused.value.body)
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"][0]["message"] == (
        "The disruption budget guarded needs 1 healthy pods and has 1 currently")

    kubectl("scale", "deployment", "guarded", "--replicas=2", *ns)
    wait_for(lambda: get(kubectl, "pdb", "guarded", *ns)["status"].get("disruptionsAllowed") == 1)
    core.create_namespaced_pod_eviction(victim, namespace, body)
    wait_for(lambda: victim not in ready_pods())


def test_kubectl_top_pod_and_node(kubectl: Kubectl, namespace: str) -> None:
    ns = ("-n", namespace)
    kubectl("run", "busy", "--image=lab/python:3", *ns, "--", "-c",
            "import time\nwhile True: sum(range(100000)); time.sleep(0.01)")
    wait_for(lambda: get(kubectl, "pod", "busy", *ns)["status"].get("phase") == "Running")
    top = kubectl("top", "pod", "busy", *ns).stdout.split("\n")
    assert top[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, memory = top[1].split()
    assert name == "busy" and cpu.endswith("m") and memory.endswith("Mi") and int(memory[:-2]) > 0
    containers = kubectl("top", "pod", "busy", "--containers", *ns).stdout.split("\n")[1].split()
    assert containers[:2] == ["busy", "busy"]
    missing = kubectl("top", "pod", "nothing-here", *ns, check=False)
    assert 'podmetrics.metrics.k8s.io "nothing-here" not found' in missing.stderr

    node = kubectl("top", "node").stdout.split("\n")
    assert node[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert node[1].split()[2].endswith("%")
    kubectl("delete", "pod", "busy", "--grace-period=0", "--force", *ns)


def test_events_k8s_io_is_the_same_events_in_the_newer_shape(kubectl: Kubectl, namespace: str) -> None:
    ns = ("-n", namespace)
    kubectl("run", "noted", f"--image={IDLE_IMAGE}", *ns)
    wait_for(lambda: any(e["reason"] == "Started" and e["involvedObject"]["name"] == "noted"
                         for e in get(kubectl, "events", *ns)["items"]))
    newer = get(kubectl, "events.v1.events.k8s.io", *ns)
    started = next(e for e in newer["items"] if e["reason"] == "Started" and e["regarding"]["name"] == "noted")
    assert started["apiVersion"] == "events.k8s.io/v1"
    assert started["regarding"]["name"] == "noted" and started["reportingController"] == "kubelet"
    assert started["note"].startswith("Started container") and "message" not in started

    incomplete = kubectl("create", *ns, "-f", "-", check=False, input="""\
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: by-hand}
note: rehearsal
""")
    assert incomplete.returncode != 0
    assert 'The Event "by-hand" is invalid: \n* eventTime: Required value\n* reportingController' in incomplete.stderr
    kubectl("create", *ns, "-f", "-", input="""\
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: by-hand}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: example.com/rehearsal
reportingInstance: rehearsal-1
action: Checked
reason: Rehearsed
note: rehearsal
type: Normal
regarding: {kind: Pod, name: noted, namespace: NAMESPACE}
""".replace("NAMESPACE", namespace))
    core = get(kubectl, "event", "by-hand", *ns)
    assert (core["message"], core["reportingComponent"], core["involvedObject"]["name"]) == (
        "rehearsal", "example.com/rehearsal", "noted")
