"""The lab's API server calls mutating webhooks from the stored MutatingWebhookConfigurations, as the generic
dispatcher does: what a troubleshooter does by hand with the real kubectl (delete the configuration, patch its
selectors, failurePolicy or service, scale the webhook away) changes admission as on AKS."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.kube.webhook_dispatch import Attributes, hook_applies, rule_matches

MWC = "azure-wi-webhook-mutating-webhook-configuration"
DEPLOYMENT = "azure-wi-webhook-controller-manager"
SERVICE = "azure-wi-webhook-webhook-service"
SYSTEM = "azure-workload-identity.io/system=true"
CALL = ('Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to call '
        'webhook: Post "https://azure-wi-webhook-webhook-service.kube-system.svc:443/mutate-v1-pod?timeout=10s": ')


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in time")
        time.sleep(0.1)


def as_json(kubectl, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def webhook_ready(kubectl) -> bool:
    pods = as_json(kubectl, "get", "pods", "-n", "kube-system", "-l", SYSTEM)["items"]
    return len(pods) == 2 and all(any(c["type"] == "Ready" and c["status"] == "True"
                                      for c in p["status"].get("conditions", [])) for p in pods)


@pytest.fixture(scope="module")
def namespace(kubectl) -> Iterator[str]:
    name = f"wd-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("create", "serviceaccount", "app-sa", "-n", name)
    kubectl("annotate", "serviceaccount", "app-sa", "-n", name,
            "azure.workload.identity/client-id=00000000-0000-0000-0000-0000000000aa")
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def restore(kubectl) -> Iterator[None]:
    """Put the configuration and the webhook's replicas back as they were, and wait for the webhook to serve."""
    saved = as_json(kubectl, "get", "mutatingwebhookconfiguration", MWC)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        saved["metadata"].pop(key, None)
    yield
    kubectl("delete", "mutatingwebhookconfiguration", MWC, "--ignore-not-found")
    kubectl("create", "-f", "-", input=json.dumps(saved))
    kubectl("scale", "deploy", DEPLOYMENT, "-n", "kube-system", "--replicas=2")
    wait_for(lambda: webhook_ready(kubectl), what="the webhook's pods ready")


def create_pod(kubectl, namespace: str, labels: dict[str, str], check: bool = True) -> Any:
    name = f"p-{uuid.uuid4().hex[:6]}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "spec": {"serviceAccountName": "app-sa", "containers": [{"name": "c", "image": "busybox"}]}}
    made = kubectl("create", "-f", "-", "-o", "json", input=json.dumps(pod), check=check)
    if made.returncode != 0:
        return made
    kubectl("delete", "pod", name, "-n", namespace, "--wait=false")
    return json.loads(made.stdout)


def mutated(pod: Any) -> bool:
    return "AZURE_CLIENT_ID" in {e["name"] for e in pod["spec"]["containers"][0].get("env", [])}


USE = {"azure.workload.identity/use": "true"}


def patch_webhook(kubectl, *ops: dict[str, Any]) -> None:
    kubectl("patch", "mutatingwebhookconfiguration", MWC, "--type=json", "-p", json.dumps(list(ops)))


POD = Attributes("CREATE", "", "v1", "pods", "", "apps")


@pytest.mark.parametrize(("rule", "attrs", "matches"), [
    ({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}, POD, True),
    ({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}, POD, False),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}, POD, True),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]},
     Attributes("CREATE", "", "v1", "pods", "binding", "apps"), False),  # "*" is no subresource
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["pods/*"]},
     Attributes("CREATE", "", "v1", "pods", "binding", "apps"), True),
    ({"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["*"], "resources": ["*"]}, POD, False),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"},
     POD, False),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"},
     POD, True),
])
def test_rules_match_as_upstreams_matcher(rule: dict[str, Any], attrs: Attributes, matches: bool) -> None:
    assert rule_matches(rule, attrs) is matches


def test_selectors_and_the_aks_enforcer() -> None:
    hook = {"rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["*"]}],
            "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
            "objectSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}
    config: dict[str, Any] = {"metadata": {"name": "c"}}
    team = {"metadata": {"labels": {"team": "a"}}}
    assert hook_applies(config, hook, POD, team, {})
    assert not hook_applies(config, hook, POD, team, {"env": "dev"})
    assert not hook_applies(config, hook, POD, {"metadata": {}}, {})
    system = Attributes("CREATE", "", "v1", "pods", "", "kube-system")
    assert not hook_applies(config, hook, system, team, {})  # the enforcer keeps kube-system away
    opted_out = {"metadata": {"name": "c", "annotations": {"admissions.enforcer/disabled": "true"}}}
    assert hook_applies(opted_out, hook, system, team, {})
    # a Namespace is matched by its own labels; other cluster-scoped objects skip the namespaceSelector
    namespace = Attributes("CREATE", "", "v1", "namespaces", "", "")
    assert not hook_applies(config, hook, namespace, {"metadata": {"name": "x", "labels": {"env": "dev",
                                                                                           "team": "a"}}}, {})
    assert hook_applies(config, hook, namespace, {"metadata": {"name": "x", "labels": {"team": "a"}}}, {})
    assert hook_applies(config, hook, Attributes("CREATE", "", "v1", "nodes", "", ""), team, {})


def test_deleting_the_configuration_stops_the_mutation_and_restoring_it_brings_it_back(
        kubectl, namespace: str, restore: None) -> None:
    assert mutated(create_pod(kubectl, namespace, USE))
    kubectl("delete", "mutatingwebhookconfiguration", MWC)
    assert not mutated(create_pod(kubectl, namespace, USE))
    saved = as_json(kubectl, "get", "deploy", DEPLOYMENT, "-n", "kube-system")  # the webhook itself still runs
    assert saved["status"]["availableReplicas"] == 2


def test_the_object_selector_decides_which_pods_are_sent(kubectl, namespace: str, restore: None) -> None:
    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/objectSelector", "value": {
        "matchExpressions": [{"key": "team", "operator": "In", "values": ["payments"]}]}})
    assert not mutated(create_pod(kubectl, namespace, USE))
    assert mutated(create_pod(kubectl, namespace, {"team": "payments"}))
    # a namespaceSelector the namespace does not match keeps every pod of it away from the webhook
    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/namespaceSelector",
                            "value": {"matchLabels": {"wi": "on"}}})
    assert not mutated(create_pod(kubectl, namespace, {"team": "payments"}))
    kubectl("label", "namespace", namespace, "wi=on")
    try:
        assert mutated(create_pod(kubectl, namespace, {"team": "payments"}))
    finally:
        kubectl("label", "namespace", namespace, "wi-")


def test_a_webhook_without_endpoints_fails_closed_or_open_by_its_failure_policy(
        kubectl, namespace: str, restore: None) -> None:
    kubectl("scale", "deploy", DEPLOYMENT, "-n", "kube-system", "--replicas=0")
    wait_for(lambda: not as_json(kubectl, "get", "endpoints", SERVICE, "-n", "kube-system").get("subsets"),
             what="the Service without endpoints")
    refused = create_pod(kubectl, namespace, USE, check=False)
    assert refused.returncode == 1
    assert CALL + f'no endpoints available for service "{SERVICE}"' in refused.stderr
    assert "Error from server (InternalError)" in refused.stderr
    assert not mutated(create_pod(kubectl, namespace, {}))  # unlabelled pods are not sent at all

    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"})
    assert not mutated(create_pod(kubectl, namespace, USE))  # admitted, unmutated

    kubectl("scale", "deploy", DEPLOYMENT, "-n", "kube-system", "--replicas=2")
    wait_for(lambda: webhook_ready(kubectl), what="the webhook's pods ready")
    assert mutated(create_pod(kubectl, namespace, USE))


def test_a_service_the_lab_cannot_serve_fails_as_the_api_server_would(kubectl, namespace: str,
                                                                       restore: None) -> None:
    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/clientConfig/service/name", "value": "nope"})
    refused = create_pod(kubectl, namespace, USE, check=False)
    assert CALL.replace("azure-wi-webhook-webhook-service.", "nope.") + 'service "nope" not found' in refused.stderr
    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/clientConfig/service/name", "value": SERVICE},
                  {"op": "replace", "path": "/webhooks/0/clientConfig/service/port", "value": 8443})
    refused = create_pod(kubectl, namespace, USE, check=False)
    assert f'no service port 8443 found for service "{SERVICE}"' in refused.stderr
    # a Service whose pods do not run the webhook: the dial is refused
    kubectl("create", "service", "clusterip", "elsewhere", "-n", namespace, "--tcp=443:8080")
    kubectl("run", "elsewhere", "-n", namespace, "--image=busybox", "--labels=app=elsewhere", "--", "sleep", "3600")
    wait_for(lambda: as_json(kubectl, "get", "endpoints", "elsewhere", "-n", namespace).get("subsets", [{}])[0]
             .get("addresses"), what="the other Service's endpoint")
    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/clientConfig/service",
                            "value": {"name": "elsewhere", "namespace": namespace, "port": 443,
                                      "path": "/mutate-v1-pod"}})
    refused = create_pod(kubectl, namespace, USE, check=False)
    assert refused.returncode == 1 and ":8080: connect: connection refused" in refused.stderr


def test_lab_ctl_webhook_down_leaves_the_service_without_endpoints(lab: Any, lab_thread: Any, kubectl,
                                                                   namespace: str) -> None:
    from lab.control import set_webhook
    from lab.kube.webhook_pods import settled

    def set_mode(mode: str) -> None:
        lab_thread.call(lambda: set_webhook(lab, {"mode": mode})).result(10)
        assert lab_thread.call(settled(lab)).result(20)

    set_mode("down")
    try:
        wait_for(lambda: not (as_json(kubectl, "get", "endpoints", SERVICE, "-n", "kube-system").get("subsets")
                              or [{}])[0].get("addresses"), what="no ready endpoint")
        refused = create_pod(kubectl, namespace, USE, check=False)
        assert CALL + f'no endpoints available for service "{SERVICE}"' in refused.stderr
    finally:
        set_mode("up")
    wait_for(lambda: webhook_ready(kubectl), what="the webhook's pods ready")
    assert mutated(create_pod(kubectl, namespace, USE))


def test_a_webhook_slower_than_its_timeout_fails_the_call_by_its_failure_policy(
        lab: Any, lab_thread: Any, kubectl, namespace: str, restore: None) -> None:
    """lab ctl webhook --latency-ms 2000 with timeoutSeconds 1 (hand-edited): the API server gives up at the call's
    timeout, "...?timeout=1s": context deadline exceeded (the text Azure/azure-workload-identity#1608 quotes with
    10s); Fail refuses, Ignore admits unmutated; back at 10 s (the add-on's) the same webhook mutates."""
    from lab.control import set_webhook

    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/timeoutSeconds", "value": 1})
    lab_thread.call(lambda: set_webhook(lab, {"latency_ms": 2000})).result(10)
    try:
        refused = create_pod(kubectl, namespace, USE, check=False)
        assert refused.returncode == 1
        assert CALL.replace("timeout=10s", "timeout=1s") + "context deadline exceeded" in refused.stderr
        patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"})
        assert not mutated(create_pod(kubectl, namespace, USE))
        patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/timeoutSeconds", "value": 10})
        assert mutated(create_pod(kubectl, namespace, USE))
    finally:
        lab_thread.call(lambda: set_webhook(lab, {"latency_ms": 0})).result(10)


def test_the_serving_certificate_is_checked_against_ca_bundle_which_the_rotator_puts_back(
        kubectl, namespace: str, restore: None) -> None:
    """cert-controller's rotator (every manager pod) writes its Secret's ca.crt back into caBundle at once; with
    --disable-cert-rotation nothing does, and the API server's handshake fails as on AKS: an empty caBundle leaves
    the system roots, a CA of the same name that did not sign the serving certificate (a rotated Secret) adds Go's
    hint. failurePolicy decides: Fail refuses, Ignore admits unmutated."""
    from lab.kube.webhook_tls import make_ca

    def ca_bundle() -> str:
        return as_json(kubectl, "get", "mutatingwebhookconfiguration", MWC)["webhooks"][0]["clientConfig"].get(
            "caBundle", "")

    injected = ca_bundle()
    assert injected
    patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": ""})
    wait_for(lambda: ca_bundle() == injected, what="the rotator's caBundle back")
    assert mutated(create_pod(kubectl, namespace, USE))

    arg = "/spec/template/spec/containers/0/args"
    kubectl("patch", "deploy", DEPLOYMENT, "-n", "kube-system", "--type=json", "-p",
            json.dumps([{"op": "add", "path": f"{arg}/-", "value": "--disable-cert-rotation"}]))
    try:
        kubectl("rollout", "status", "deploy", DEPLOYMENT, "-n", "kube-system", "--timeout=60s")
        patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": ""})
        time.sleep(0.5)  # no rotator runs: it stays empty
        assert ca_bundle() == ""
        refused = create_pod(kubectl, namespace, USE, check=False)
        assert refused.returncode == 1
        assert (CALL + "tls: failed to verify certificate: x509: certificate signed by unknown authority\n"
                in refused.stderr), refused.stderr
        other = base64.b64encode(make_ca()[0]).decode()
        patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": other})
        refused = create_pod(kubectl, namespace, USE, check=False)
        assert (CALL + 'tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly '
                'because of "crypto/rsa: verification error" while trying to verify candidate authority certificate '
                '"azure-workload-identity-ca")' in refused.stderr), refused.stderr
        patch_webhook(kubectl, {"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"})
        assert not mutated(create_pod(kubectl, namespace, USE))  # admitted, unmutated
    finally:
        template = as_json(kubectl, "get", "deploy", DEPLOYMENT, "-n", "kube-system")["spec"]["template"]
        args = template["spec"]["containers"][0]["args"]
        kubectl("patch", "deploy", DEPLOYMENT, "-n", "kube-system", "--type=json", "-p", json.dumps(
            [{"op": "remove", "path": f"{arg}/{args.index('--disable-cert-rotation')}"}]))
        kubectl("rollout", "status", "deploy", DEPLOYMENT, "-n", "kube-system", "--timeout=60s")
