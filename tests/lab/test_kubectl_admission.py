"""The real kubectl against what refuses or parks pods on real clusters for reasons that are not Workload ID:
an Azure Policy / Gatekeeper webhook (installed with ``lab ctl policy``, since no public API does),
ResourceQuota, LimitRange and node taints, with the exact texts upstream Kubernetes and Gatekeeper give."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.runtime import Lab

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]
REPO = Path(__file__).resolve().parents[2]
IDLE_IMAGE = "myacr.azurecr.io/finance/backend:1.0"  # a scenario image the kubelet keeps Running
NO_PREEMPTION = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
    return result


def pod_manifest(name: str, namespace: str, containers: list[dict[str, Any]] | None = None,
                 init_containers: list[dict[str, Any]] | None = None, **spec: Any) -> str:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"containers": containers or [{"name": "main", "image": IDLE_IMAGE}], **spec}}
    if init_containers:
        pod["spec"]["initContainers"] = init_containers
    return json.dumps(pod)


def with_cpu_limit(name: str, cpu: str) -> dict[str, Any]:
    return {"name": name, "image": IDLE_IMAGE, "resources": {"limits": {"cpu": cpu}}}


def ctl(lab: Lab, *args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "lab", "ctl", "--state-dir", str(lab.state_dir), *args],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


@pytest.fixture()
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    wait_for(lambda: kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---------------------------------------------------------------- Azure Policy / Gatekeeper


def test_policy_deny_refuses_new_pods_as_gatekeeper_does(
    kubectl: Kubectl, lab: Lab, namespace: str, tmp_path: Path
) -> None:
    deployment = json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "api", "image": IDLE_IMAGE}]}}},
    })
    try:
        answer = ctl(lab, "policy", "deny", "--namespace", namespace, "--constraint", "lab-no-limits",
                     "--message", "container <main> has no resource limits")
        assert answer["webhook"] == "validation.gatekeeper.sh"
        assert answer["constraints"] == [{"name": "lab-no-limits", "namespaces": [namespace],
                                          "message": "container <main> has no resource limits",
                                          "enforcementAction": "deny"}]
        configuration = get_json(kubectl, "validatingwebhookconfigurations",
                                 "gatekeeper-validating-webhook-configuration")
        assert [w["name"] for w in configuration["webhooks"]] == ["validation.gatekeeper.sh"]
        assert configuration["webhooks"][0]["clientConfig"]["service"]["namespace"] == "gatekeeper-system"
        constraints = kubectl("get", "constraints", "--cache-dir", str(tmp_path / "cache"), "-o", "name")
        assert constraints.stdout.split() == ["k8slabdenypods.constraints.gatekeeper.sh/lab-no-limits"]

        refused = kubectl("apply", "-f", "-", input=pod_manifest("web", namespace), check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            'Error from server (Forbidden): error when creating "STDIN": admission webhook '
            '"validation.gatekeeper.sh" denied the request: [lab-no-limits] container <main> has no '
            "resource limits")
        elsewhere = kubectl("run", "web", "-n", "default", f"--image={IDLE_IMAGE}", "--dry-run=server")
        assert elsewhere.stdout.strip() == "pod/web created (server dry run)"

        kubectl("apply", "-f", "-", input=deployment)
        events = wait_for(lambda: [e for e in get_json(kubectl, "events", "-n", namespace)["items"]
                                   if e["reason"] == "FailedCreate"])
        assert events[0]["involvedObject"]["kind"] == "ReplicaSet"
        assert events[0]["message"] == (
            'Error creating: admission webhook "validation.gatekeeper.sh" denied the request: '
            "[lab-no-limits] container <main> has no resource limits")
    finally:
        cleared = ctl(lab, "policy", "clear")
    assert cleared == {"webhook": None, "configuration": None, "constraints": []}
    gone = kubectl("get", "validatingwebhookconfigurations", "gatekeeper-validating-webhook-configuration",
                   check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr
    wait_for(lambda: get_json(kubectl, "pods", "-n", namespace, "-l", "app=api")["items"])  # the RS retries
    created = kubectl("apply", "-f", "-", input=pod_manifest("web", namespace))
    assert created.stdout.strip() == "pod/web created"


def test_policy_control_refuses_bad_input_in_one_line(lab: Lab) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lab", "ctl", "--state-dir", str(lab.state_dir), *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    bad_name = run("policy", "deny", "--namespace", "Not_A_Namespace", "--message", "no")
    assert (bad_name.returncode, bad_name.stderr) == (
        1, "error: namespace: 'Not_A_Namespace' is not a valid namespace name\n")
    no_message = run("policy", "deny", "--namespace", "default", "--message", " ")
    assert no_message.stderr == "error: message: a non-empty string is required\n"
    missing = run("policy", "deny", "--namespace", "default")
    assert missing.returncode == 2 and "--message" in missing.stderr
    no_repo = run("policy", "allowed-repos", "--namespace", "default", "--repo", "")
    assert (no_repo.returncode, no_repo.stderr) == (1, "error: repos: a non-empty list of image prefixes is required\n")
    bad_cpu = run("policy", "container-limits", "--namespace", "default", "--cpu", "lots", "--memory", "1Gi")
    assert (bad_cpu.returncode, bad_cpu.stderr) == (1, "error: cpu: 'lots' is not a quantity (e.g. 500m, 1, 512Mi)\n")
    bad_repos_ns = run("policy", "allowed-repos", "--namespace", "Not_A_Namespace", "--repo", "x/")
    assert bad_repos_ns.stderr == "error: namespace: 'Not_A_Namespace' is not a valid namespace name\n"
    assert ctl(lab, "status")["policy"] == {"webhook": None, "configuration": None, "constraints": []}


def validating_configuration(name: str, hook: str, namespace: str, failure_policy: str) -> str:
    return json.dumps({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": hook, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": failure_policy,
            "clientConfig": {"service": {"name": "kyverno-svc", "namespace": "kyverno", "path": "/validate/fail",
                                         "port": 443}},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"],
                       "resources": ["*"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        }],
    })


def test_a_validating_webhook_made_by_hand_that_cannot_be_called_refuses_pods_under_fail(
    kubectl: Kubectl, namespace: str
) -> None:
    """A Kyverno-style ValidatingWebhookConfiguration applied by hand whose Service is gone: under failurePolicy
    Fail every matching pod is refused with the dispatcher's InternalError (kubectl prints its reason), under
    Ignore admitted; deleting it lets a ReplicaSet's refused pods be created."""
    fail = validating_configuration("kyverno-fail", "validate.kyverno.svc-fail", namespace, "Fail")
    kubectl("apply", "-f", "-", input=fail)
    try:
        refused = kubectl("apply", "-f", "-", input=pod_manifest("web", namespace), check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            'Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling '
            'webhook "validate.kyverno.svc-fail": failed to call webhook: Post '
            '"https://kyverno-svc.kyverno.svc:443/validate/fail?timeout=10s": service "kyverno-svc" not found')
        kubectl("create", "deployment", "api", "--image", IDLE_IMAGE, "-n", namespace)
        wait_for(lambda: [e for e in get_json(kubectl, "events", "-n", namespace)["items"]
                          if e["reason"] == "FailedCreate"])
    finally:
        kubectl("delete", "validatingwebhookconfiguration", "kyverno-fail")
    wait_for(lambda: get_json(kubectl, "pods", "-n", namespace, "-l", "app=api")["items"])  # the RS retries
    ignore = validating_configuration("kyverno-ignore", "validate.kyverno.svc-ignore", namespace, "Ignore")
    kubectl("apply", "-f", "-", input=ignore)
    try:
        admitted = kubectl("apply", "-f", "-", input=pod_manifest("web", namespace))
        assert admitted.stdout.strip() == "pod/web created"
    finally:
        kubectl("delete", "validatingwebhookconfiguration", "kyverno-ignore")


# ---------------------------------------------------------------- ResourceQuota


def quota_status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return get_json(kubectl, "resourcequota", name, "-n", namespace).get("status") or {}


def test_resource_quota_is_enforced_with_the_api_servers_texts(kubectl: Kubectl, namespace: str) -> None:
    created = kubectl("create", "quota", "budget", "-n", namespace, "--hard=pods=2,limits.cpu=1")
    assert created.stdout.strip() == "resourcequota/budget created"
    assert wait_for(lambda: quota_status(kubectl, namespace, "budget").get("used")) == {"limits.cpu": "0",
                                                                                        "pods": "0"}

    def create(name: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return kubectl("apply", "-f", "-", input=pod_manifest(name, namespace, **kwargs), check=False)

    no_limit = create("plain")
    assert no_limit.returncode == 1
    assert no_limit.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "plain" is forbidden: '
        "failed quota: budget: must specify limits.cpu for: main")
    partial = create("partial", containers=[with_cpu_limit("b", "100m"), {"name": "a", "image": IDLE_IMAGE}],
                     init_containers=[{"name": "init", "image": IDLE_IMAGE}])
    assert 'pods "partial" is forbidden: failed quota: budget: must specify limits.cpu for: a,init' in (
        partial.stderr)

    for name in ("one", "two"):
        assert create(name, containers=[with_cpu_limit("main", "400m")]).returncode == 0
    assert wait_for(lambda: quota_status(kubectl, namespace, "budget")["used"] == {"limits.cpu": "800m",
                                                                                   "pods": "2"})
    over = create("three", containers=[with_cpu_limit("main", "400m")])
    assert over.returncode == 1
    assert over.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "three" is forbidden: '
        "exceeded quota: budget, requested: limits.cpu=400m,pods=1, used: limits.cpu=800m,pods=2, "
        "limited: limits.cpu=1,pods=2")
    table = kubectl("get", "quota", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 2/2" in table[1] and "limits.cpu: 800m/1" in table[1]

    kubectl("delete", "pod", "one", "-n", namespace, "--grace-period=0", "--force")
    one_left = {"limits.cpu": "400m", "pods": "1"}
    wait_for(lambda: quota_status(kubectl, namespace, "budget")["used"] == one_left)
    assert create("three", containers=[with_cpu_limit("main", "400m")]).returncode == 0


# ---------------------------------------------------------------- taints and the scheduler


def pod_scheduled(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    pod = get_json(kubectl, "pod", name, "-n", namespace)
    return next((c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"), None)


def test_an_untolerated_taint_leaves_a_pod_pending_until_it_goes(kubectl: Kubectl, namespace: str) -> None:
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout.strip()
    tainted = kubectl("taint", "nodes", node, "dedicated=gpu:NoSchedule")
    assert tainted.stdout.strip() == f"node/{node} tainted"
    try:
        assert get_json(kubectl, "node", node)["spec"]["taints"] == [
            {"effect": "NoSchedule", "key": "dedicated", "value": "gpu"}]
        kubectl("apply", "-f", "-", input=pod_manifest("waiting", namespace))
        message = ("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. "
                   + NO_PREEMPTION)
        condition = wait_for(lambda: pod_scheduled(kubectl, namespace, "waiting"))
        assert {k: condition[k] for k in ("status", "reason", "message")} == {
            "status": "False", "reason": "Unschedulable", "message": message}
        pod = get_json(kubectl, "pod", "waiting", "-n", namespace)
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
        events = wait_for(lambda: [e for e in get_json(kubectl, "events", "-n", namespace)["items"]
                                   if e["reason"] == "FailedScheduling"])
        assert (events[0]["type"], events[0]["message"], events[0]["source"]["component"]) == (
            "Warning", message, "default-scheduler")
        assert "Pending" in kubectl("get", "pod", "waiting", "-n", namespace).stdout

        tolerant = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
        kubectl("apply", "-f", "-", input=pod_manifest("tolerant", namespace, tolerations=tolerant))
        assert wait_for(lambda: (pod_scheduled(kubectl, namespace, "tolerant") or {}).get("status") == "True")

        untainted = kubectl("taint", "nodes", node, "dedicated=gpu:NoSchedule-")
        assert untainted.stdout.strip() == f"node/{node} untainted"
        assert wait_for(lambda: (pod_scheduled(kubectl, namespace, "waiting") or {}).get("status") == "True")
        assert get_json(kubectl, "pod", "waiting", "-n", namespace)["spec"]["nodeName"] == node

        kubectl("cordon", node)
        kubectl("apply", "-f", "-", input=pod_manifest("cordoned", namespace))
        condition = wait_for(lambda: pod_scheduled(kubectl, namespace, "cordoned"))
        assert condition["message"] == (
            "0/1 nodes are available: 1 node(s) were unschedulable. " + NO_PREEMPTION)
        kubectl("uncordon", node)
        assert wait_for(lambda: (pod_scheduled(kubectl, namespace, "cordoned") or {}).get("status") == "True")

        elsewhere = pod_manifest("elsewhere", namespace, nodeSelector={"agentpool": "gpu"})
        kubectl("apply", "-f", "-", input=elsewhere)
        condition = wait_for(lambda: pod_scheduled(kubectl, namespace, "elsewhere"))
        assert condition["message"] == ("0/1 nodes are available: 1 node(s) didn't match Pod's node "
                                        "affinity/selector. " + NO_PREEMPTION)
        kubectl("delete", "pod", "elsewhere", "-n", namespace)  # an unscheduled pod goes at once
    finally:
        kubectl("taint", "nodes", node, "dedicated-", check=False)
        kubectl("uncordon", node, check=False)


def test_a_cordon_taints_the_node_and_daemonset_pods_tolerate_it(kubectl: Kubectl, namespace: str) -> None:
    """kubectl cordon: the node lifecycle controller adds node.kubernetes.io/unschedulable:NoSchedule with its
    timeAdded (doNoScheduleTaintingPass, SwapNodeControllerTaint) and removes it on uncordon; a DaemonSet's pod
    carries AddOrUpdateDaemonPodTolerations' tolerations and runs on the cordoned node, a bare pod does not."""
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout.strip()
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": namespace},
                 "spec": {"selector": {"matchLabels": {"app": "agent"}},
                          "template": {"metadata": {"labels": {"app": "agent"}},
                                       "spec": {"containers": [{"name": "agent", "image": "busybox",
                                                                "command": ["sleep", "3600"]}]}}}}
    kubectl("cordon", node)
    try:
        taints = wait_for(lambda: get_json(kubectl, "node", node)["spec"].get("taints"))
        assert [{k: v for k, v in t.items() if k != "timeAdded"} for t in taints] == [
            {"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable"}]
        assert taints[0]["timeAdded"].endswith("Z")
        assert "Taints:             node.kubernetes.io/unschedulable:NoSchedule" in kubectl(
            "describe", "node", node).stdout
        kubectl("apply", "-f", "-", input=json.dumps(daemonset))
        pods = wait_for(lambda: [p for p in get_json(kubectl, "pods", "-n", namespace, "-l", "app=agent")["items"]
                                 if p["spec"].get("nodeName") == node])
        assert pods[0]["spec"]["tolerations"] == [
            {"key": key, "operator": "Exists", "effect": effect} for key, effect in (
                ("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule"))]
        kubectl("apply", "-f", "-", input=pod_manifest("bare", namespace))
        condition = wait_for(lambda: pod_scheduled(kubectl, namespace, "bare"))
        assert condition["message"] == "0/1 nodes are available: 1 node(s) were unschedulable. " + NO_PREEMPTION
        kubectl("uncordon", node)
        assert wait_for(lambda: not get_json(kubectl, "node", node)["spec"].get("taints"))
        assert wait_for(lambda: (pod_scheduled(kubectl, namespace, "bare") or {}).get("status") == "True")
    finally:
        kubectl("uncordon", node, check=False)
        kubectl("delete", "daemonset", "agent", "-n", namespace, "--ignore-not-found", check=False)


# ---------------------------------------------------------------- LimitRange


def test_limit_range_defaults_and_refuses_with_the_plugins_texts(kubectl: Kubectl, namespace: str) -> None:
    limit_range = json.dumps({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bounds", "namespace": namespace},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "500m"},
                             "defaultRequest": {"cpu": "100m"}}]},
    })
    assert kubectl("apply", "-f", "-", input=limit_range).stdout.strip() == "limitrange/bounds created"
    stored = get_json(kubectl, "limits", "bounds", "-n", namespace)["spec"]["limits"][0]
    # the default limit comes from max
    assert (stored["default"], stored["defaultRequest"]) == ({"cpu": "500m"}, {"cpu": "100m"})

    kubectl("apply", "-f", "-", input=pod_manifest("defaulted", namespace))
    pod = get_json(kubectl, "pod", "defaulted", "-n", namespace)
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container main; cpu limit for container main")

    too_big = pod_manifest("big", namespace, containers=[with_cpu_limit("main", "2")])
    big = kubectl("apply", "-f", "-", input=too_big, check=False)
    assert big.returncode == 1
    assert big.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": pods "big" is '
                                  "forbidden: maximum cpu usage per Container is 500m, but limit is 2")


# ---------------------------------------------------------------- a namespace being deleted

GADGETS_CRD = json.dumps({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.termination.example.com"},
    "spec": {"group": "termination.example.com", "scope": "Namespaced",
             "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
})


def test_a_namespace_held_by_a_finalizer_stays_terminating_and_refuses_new_content(
    kubectl: Kubectl, namespace: str
) -> None:
    """kubectl delete namespace with a custom resource holding a finalizer: the namespace is marked Terminating,
    its other content deleted, the namespace controller's conditions say what remains, a create is refused by
    NamespaceLifecycle (403), and removing the finalizer lets the namespace go."""
    kubectl("apply", "-f", "-", input=GADGETS_CRD)
    wait_for(lambda: kubectl("get", "gadgets", "-n", namespace, check=False).returncode == 0)
    gadget = {"apiVersion": "termination.example.com/v1", "kind": "Gadget",
              "metadata": {"name": "held", "namespace": namespace, "finalizers": ["termination.example.com/cleanup"]}}
    kubectl("apply", "-f", "-", input=json.dumps(gadget))
    kubectl("create", "configmap", "settings", "-n", namespace)
    deleted = kubectl("delete", "namespace", namespace, "--wait=false")
    assert deleted.stdout.strip() == f'namespace "{namespace}" deleted'
    shown = wait_for(lambda: (ns := get_json(kubectl, "namespace", namespace))["status"].get("conditions") and ns)
    assert shown["status"]["phase"] == "Terminating" and shown["metadata"]["deletionTimestamp"]
    remaining = {c["type"]: (c["status"], c["reason"], c["message"]) for c in shown["status"]["conditions"]}
    assert remaining["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: gadgets.termination.example.com has 1 resource instances")
    assert remaining["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: termination.example.com/cleanup in 1 resource instances")
    assert kubectl("get", "configmap", "settings", "-n", namespace, check=False).returncode == 1
    assert kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 1
    assert get_json(kubectl, "gadget", "held", "-n", namespace)["metadata"]["deletionTimestamp"]
    refused = kubectl("apply", "-f", "-", input=pod_manifest("web", namespace), check=False)
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): error when creating "STDIN": pods "web" is forbidden: unable to create new '
        f"content in namespace {namespace} because it is being terminated")
    kubectl("patch", "gadget", "held", "-n", namespace, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_for(lambda: kubectl("get", "namespace", namespace, check=False).returncode == 1)
    # a CRD of its own, removed again: the session lab is shared, and another module's Widget kind must stay unambiguous
    kubectl("delete", "crd", "gadgets.termination.example.com", "--wait=false", check=False)


def test_built_in_objects_with_finalizers_stay_until_they_go_and_hold_their_namespace(
    kubectl: Kubectl, namespace: str
) -> None:
    """A ConfigMap, a ServiceAccount and a pod never scheduled, each with a finalizer: kubectl delete marks them
    (deletionTimestamp, deletionGracePeriodSeconds 0) and they stay, as the generic registry keeps any object with
    finalizers; the finalizer removed, the object goes. One left in a deleted namespace holds it Terminating, named
    as upstream names a core resource ("configmaps. has 1 resource instances")."""
    kubectl("create", "configmap", "kept", "-n", namespace)
    kubectl("create", "serviceaccount", "kept", "-n", namespace)
    nowhere = pod_manifest("kept", namespace, nodeSelector={"agentpool": "nowhere"})
    kubectl("apply", "-f", "-", input=nowhere)
    for kind in ("configmap", "serviceaccount", "pod"):
        kubectl("patch", kind, "kept", "-n", namespace, "--type", "merge", "-p",
                '{"metadata":{"finalizers":["example.com/keep"]}}')
        deleted = kubectl("delete", kind, "kept", "-n", namespace, "--wait=false")
        assert deleted.stdout.strip() == f'{kind} "kept" deleted from {namespace} namespace'
        meta = get_json(kubectl, kind, "kept", "-n", namespace)["metadata"]
        assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0, (kind, meta)
        assert meta["finalizers"] == ["example.com/keep"]
    assert "Terminating" in kubectl("get", "pod", "kept", "-n", namespace).stdout
    for kind in ("serviceaccount", "pod"):
        kubectl("patch", kind, "kept", "-n", namespace, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
        wait_for(lambda kind=kind: kubectl("get", kind, "kept", "-n", namespace, check=False).returncode == 1)
    kubectl("delete", "namespace", namespace, "--wait=false")
    shown = wait_for(lambda: (ns := get_json(kubectl, "namespace", namespace))["status"].get("conditions") and ns)
    remaining = {c["type"]: c["message"] for c in shown["status"]["conditions"]}
    assert remaining["NamespaceContentRemaining"] == "Some resources are remaining: configmaps. has 1 resource instances"
    assert remaining["NamespaceFinalizersRemaining"] == (
        "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances")
    kubectl("patch", "configmap", "kept", "-n", namespace, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_for(lambda: kubectl("get", "namespace", namespace, check=False).returncode == 1)


def test_a_delete_collection_keeps_the_objects_finalizers_hold(kubectl: Kubectl, kube_api: Any,
                                                               namespace: str) -> None:
    """DELETE on a collection (what client libraries send: delete_collection_namespaced_config_map) deletes item
    by item as the generic registry does: one with finalizers is marked and stays, the others go."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    for name in ("plain", "kept"):
        kubectl("create", "configmap", name, "-n", namespace)
    kubectl("patch", "configmap", "kept", "-n", namespace, "--type", "merge", "-p",
            '{"metadata":{"finalizers":["example.com/keep"]}}')
    core.delete_collection_namespaced_config_map(namespace, label_selector="")
    left = {c.metadata.name: c.metadata for c in core.list_namespaced_config_map(namespace).items}
    assert "plain" not in left and left["kept"].deletion_timestamp is not None
    kubectl("patch", "configmap", "kept", "-n", namespace, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
    assert kubectl("get", "configmap", "kept", "-n", namespace, check=False).returncode == 1


# ---------------------------------------------------------------- Pod Security labels on a namespace


def test_labelling_a_namespace_restricted_warns_about_its_pods_and_a_bad_level_is_refused(
    kubectl: Kubectl, namespace: str
) -> None:
    """kubectl label namespace ... enforce=restricted over a pod without a securityContext: the API server's
    PodSecurity warnings as kubectl prints them; a level that is not one of the three is refused (422)."""
    kubectl("apply", "-f", "-", input=pod_manifest("web", namespace))
    labelled = kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    assert labelled.stdout.strip() == f"namespace/{namespace} labeled"
    assert labelled.stderr.splitlines() == [
        f'Warning: existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        "Warning: web: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile",
    ]
    created = kubectl("create", "deployment", "api", "--image", IDLE_IMAGE, "-n", namespace)
    assert created.stderr.strip() == (
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container '
        '"backend" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container '
        '"backend" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"backend" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "backend" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    scaled = kubectl("scale", "deployment", "api", "--replicas", "2", "-n", namespace)
    assert scaled.stderr == ""  # the scale subresource is not evaluated
    refused = kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=strict", "--overwrite",
                      check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f'The Namespace "{namespace}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid '
        'value: "strict": must be one of privileged, baseline, restricted')
