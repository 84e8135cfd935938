"""Deployments, ReplicaSets and DaemonSets keep their pods, through the API server's admission chain."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest

from lab.control import set_webhook

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web, azure.workload.identity/use: "true"}}}}
    spec:
      serviceAccountName: default
      containers: [{{name: web, image: "myacr.azurecr.io/finance/backend:1.4.2"}}]
"""


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


@pytest.fixture
def namespace(kubectl) -> str:
    name = f"wl-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


def pods(kubectl, namespace: str) -> list[dict]:
    return json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]


def running(kubectl, namespace: str, count: int) -> Callable[[], bool]:
    return lambda: sum(p["status"].get("phase") == "Running" for p in pods(kubectl, namespace)) == count


def test_a_deployment_gets_mutated_running_pods_scales_and_is_collected(kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=DEPLOYMENT.format(ns=namespace, replicas=2))
    wait_for(running(kubectl, namespace, 2))
    pod = pods(kubectl, namespace)[0]
    assert pod["metadata"]["name"].startswith("web-")
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert {e["name"] for e in pod["spec"]["containers"][0]["env"]} >= {"AZURE_TENANT_ID",
                                                                        "AZURE_FEDERATED_TOKEN_FILE"}
    wait_for(lambda: json.loads(kubectl("get", "deploy", "web", "-n", namespace, "-o", "json").stdout)
             ["status"].get("readyReplicas") == 2)

    kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=1")
    wait_for(running(kubectl, namespace, 1))

    kubectl("delete", "deployment", "web", "-n", namespace)
    wait_for(lambda: not pods(kubectl, namespace))
    assert json.loads(kubectl("get", "rs", "-n", namespace, "-o", "json").stdout)["items"] == []


def test_a_replicaset_reports_the_webhook_refusal_and_recovers(kubectl, lab, lab_thread, namespace: str) -> None:
    lab_thread.call(lambda: set_webhook(lab, {"mode": "down"})).result(10)
    try:
        kubectl("apply", "-f", "-", input=DEPLOYMENT.format(ns=namespace, replicas=1))
        wait_for(lambda: "FailedCreate" in kubectl("get", "events", "-n", namespace).stdout)
        events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        failed = next(e for e in events if e["reason"] == "FailedCreate")
        assert failed["involvedObject"]["kind"] == "ReplicaSet"
        assert failed["message"].startswith('Error creating: Internal error occurred: failed calling webhook '
                                            '"mutation.azure-workload-identity.io"')
        assert pods(kubectl, namespace) == []
        # calculateStatus (replica_set_utils.go): a ReplicaFailure condition, the refusal as its message; the
        # Deployment controller copies it (getReplicaFailures, progress.go): `kubectl describe deploy` shows it
        wait_for(lambda: replica_failure(kubectl, namespace, "deploy") is not None)
        for kind in ("rs", "deploy"):
            condition = replica_failure(kubectl, namespace, kind)
            assert condition is not None and condition["status"] == "True", kind
            assert condition["reason"] == "FailedCreate"
            assert condition["message"] == failed["message"].removeprefix("Error creating: ")
    finally:
        lab_thread.call(lambda: set_webhook(lab, {"mode": "up"})).result(10)
    wait_for(running(kubectl, namespace, 1))
    wait_for(lambda: replica_failure(kubectl, namespace, "deploy") is None)  # pods made: the condition goes
    assert replica_failure(kubectl, namespace, "rs") is None


def replica_failure(kubectl, namespace: str, kind: str) -> dict | None:
    items = json.loads(kubectl("get", kind, "-n", namespace, "-o", "json").stdout)["items"]
    return next((c for item in items for c in (item.get("status") or {}).get("conditions") or []
                 if c["type"] == "ReplicaFailure"), None)


def test_pods_refused_for_a_service_account_not_made_yet_are_made_once_it_is(kubectl, namespace: str) -> None:
    """A bundle applied Deployment before ServiceAccount: the ServiceAccount admission plugin refuses the pods
    ('error looking up service account NS/SA'), and the ReplicaSet controller's rate-limited requeue makes them
    once the ServiceAccount exists. The lab's ReplicaSet never tried again (by hand: no pod 30 s after)."""
    kubectl("apply", "-f", "-", input=DEPLOYMENT.format(ns=namespace, replicas=1).replace(
        "serviceAccountName: default", "serviceAccountName: late-sa"))
    wait_for(lambda: "error looking up service account" in kubectl("get", "events", "-n", namespace).stdout)
    assert pods(kubectl, namespace) == []
    kubectl("create", "serviceaccount", "late-sa", "-n", namespace)
    wait_for(running(kubectl, namespace, 1))



def test_pods_the_webhook_refused_over_the_service_accounts_annotation_are_made_once_it_is_fixed(
        kubectl, namespace: str) -> None:
    """By hand: kubectl annotate sa ... service-account-token-expiration=24h (a duration, as azwi's flag takes it)
    and a StatefulSet restarted: the webhook refuses its pod (strconv.ParseInt: parsing "24h"); the harness's
    printed fix removes the annotation, and the controller's rate-limited requeue makes the pod; the lab's never
    tried again (no pod 8 s after, the next run failed on workload.live_pods)."""
    kubectl("create", "serviceaccount", "app-sa", "-n", namespace)
    kubectl("annotate", "serviceaccount", "app-sa", "-n", namespace,
            "azure.workload.identity/service-account-token-expiration=24h")
    kubectl("apply", "-f", "-", input=DEPLOYMENT.format(ns=namespace, replicas=1).replace(
        "serviceAccountName: default", "serviceAccountName: app-sa"))
    wait_for(lambda: 'parsing "24h"' in kubectl("get", "events", "-n", namespace).stdout)
    assert pods(kubectl, namespace) == []
    kubectl("annotate", "serviceaccount", "app-sa", "-n", namespace,
            "azure.workload.identity/service-account-token-expiration-")
    wait_for(running(kubectl, namespace, 1))


DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  updateStrategy: {{type: {strategy}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers: [{{name: agent, image: "myacr.azurecr.io/finance/backend:1.4.2"}}]
"""


@pytest.mark.parametrize("strategy", ["RollingUpdate", "OnDelete"])
def test_a_daemonset_replaces_its_pod_when_its_template_changes_unless_on_delete(kubectl, namespace: str,
                                                                                 strategy: str) -> None:
    """Found by hand: kubectl patch daemonset agent (the use label onto its template), as the harness prints for
    POD_NOT_LABELLED, left the old pod running and status.updatedNumberScheduled 1; kubectl rollout restart
    daemonset did nothing either. A RollingUpdate DaemonSet replaces a pod of an older template (kubernetes docs,
    "Perform a Rolling Update on a DaemonSet"); an OnDelete one keeps it until it is deleted."""
    kubectl("apply", "-f", "-", input=DAEMONSET.format(ns=namespace, strategy=strategy))
    wait_for(running(kubectl, namespace, 1))
    (first,) = pods(kubectl, namespace)
    assert first["metadata"]["labels"]["controller-revision-hash"]
    kubectl("rollout", "restart", "daemonset/agent", "-n", namespace)
    if strategy == "OnDelete":
        time.sleep(1)
        assert [p["metadata"]["name"] for p in pods(kubectl, namespace)] == [first["metadata"]["name"]]
        return
    wait_for(lambda: [p["metadata"]["name"] for p in pods(kubectl, namespace)
                      if p["status"].get("phase") == "Running"] not in ([], [first["metadata"]["name"]]))
    (second,) = [p for p in pods(kubectl, namespace) if not p["metadata"].get("deletionTimestamp")]
    assert second["metadata"]["labels"]["controller-revision-hash"] != first["metadata"]["labels"][
        "controller-revision-hash"]
    assert "kubectl.kubernetes.io/restartedAt" in second["metadata"].get("annotations", {})


def test_a_daemonset_runs_no_pod_while_its_node_selector_matches_no_node(kubectl, namespace: str) -> None:
    """Found by hand: kubectl patch daemonset aad-pod-identity-nmi with a nodeSelector no node has (the usual way to
    "scale a DaemonSet to 0") left desiredNumberScheduled 1 and a Pending pod. The DaemonSet controller creates pods
    only on nodes its template's node selector matches (kubernetes docs, DaemonSet "Running Pods on select
    Nodes"): none, and desiredNumberScheduled 0; the selector removed, the pod comes back."""
    kubectl("apply", "-f", "-", input=DAEMONSET.format(ns=namespace, strategy="RollingUpdate"))
    wait_for(running(kubectl, namespace, 1))
    kubectl("patch", "daemonset/agent", "-n", namespace, "-p",
            '{"spec":{"template":{"spec":{"nodeSelector":{"non-existing":"true"}}}}}')

    def status() -> dict:
        return json.loads(kubectl("get", "daemonset/agent", "-n", namespace, "-o", "json").stdout)["status"]

    wait_for(lambda: status().get("desiredNumberScheduled") == 0
             and not [p for p in pods(kubectl, namespace) if not p["metadata"].get("deletionTimestamp")])
    kubectl("patch", "daemonset/agent", "-n", namespace, "--type", "json", "-p",
            '[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]')
    wait_for(running(kubectl, namespace, 1))
    assert status()["desiredNumberScheduled"] == 1


def test_a_jobs_pod_template_cannot_change(kubectl, namespace: str) -> None:
    """Found by hand: kubectl patch job/nightly-manual removing a pod template label (as the harness printed for
    POD_IDENTITY_PODS_LABELLED) was accepted; a real API server refuses it (ValidateJobSpecUpdate:
    ValidateImmutableField on spec.template). Its metadata may still change."""
    kubectl("create", "job", "-n", namespace, "once", "--image=myacr.azurecr.io/finance/backend:1.4.2")
    refused = kubectl("patch", "job/once", "-n", namespace, "--type", "merge", "-p",
                      '{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}',
                      check=False)
    assert refused.returncode == 1 and 'The Job "once" is invalid: spec.template: Invalid value: ' in refused.stderr
    assert "field is immutable" in refused.stderr
    kubectl("label", "job/once", "-n", namespace, "team=reports")
