"""A NetworkPolicy that isolates the Workload ID webhook's pods for ingress and opens none of its rules to the
webhook's serving port drops the API server's calls to it (Azure/azure-workload-identity#611; kubernetes/kubernetes
#128162: the call runs to its timeout, "context deadline exceeded"). Under failurePolicy Fail labelled pods are
refused, WEBHOOK_UNAVAILABLE, whose fixes looked at the webhook's pods and restarted them, all ready and none the
cause; under Ignore they start unmutated, POD_NOT_MUTATED asking whether the pod came before the webhook. Both now
name the policy and print the ingress rule that lets the calls in. Pure: facts in, outcome out."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from harness.checks.context import WorkloadContext
from harness.checks.model import FAIL
from harness.checks.network_policies import webhook_ingress_blocks
from harness.checks.pod import pod_admitted, pod_mutated
from harness.config import WorkloadConfig
from harness.facts import (
    ClusterFacts,
    IdentityFacts,
    KubeFailure,
    PodFacts,
    ServiceAccountFacts,
    WorkloadFacts,
)

MWC = "azure-wi-webhook-mutating-webhook-configuration"
HOOK = {"name": "mutation.azure-workload-identity.io", "failurePolicy": "Fail",
        "clientConfig": {"service": {"namespace": "kube-system", "name": "azure-wi-webhook-webhook-service",
                                     "path": "/mutate-v1-pod", "port": 443}},
        "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]}
LABELS = {"app": "workload-identity-webhook", "azure-workload-identity.io/system": "true"}
DEPLOYMENT = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
              "spec": {"replicas": 2, "template": {"metadata": {"labels": LABELS}, "spec": {"containers": [
                  {"name": "manager", "ports": [{"containerPort": 9443, "name": "webhook-server", "protocol": "TCP"},
                                                {"containerPort": 8095, "name": "metrics", "protocol": "TCP"}]}]}}},
              "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}
TIMED_OUT = ('Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to call '
             'webhook: Post "https://azure-wi-webhook-webhook-service.kube-system.svc:443/mutate-v1-pod?timeout=10s": '
             "context deadline exceeded")
REFUSED = TIMED_OUT.replace("context deadline exceeded", "dial tcp 10.0.0.12:9443: connect: connection refused")
DENY_ALL = {"metadata": {"name": "default-deny-ingress", "namespace": "kube-system"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
UNMUTATED_POD = {"metadata": {"name": "p", "namespace": "finance", "labels": {"azure.workload.identity/use": "true"}},
                 "spec": {"serviceAccountName": "backend-sa", "containers": [{"name": "probe", "image": "python"}]}}


def _policy(name: str, namespace: str = "kube-system", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"podSelector": {}, **spec}}


def _cluster(policies: list[dict[str, Any]] | None, hook: dict[str, Any] = HOOK) -> ClusterFacts:
    return ClusterFacts(time.time(), webhook_configurations=[{"metadata": {"name": MWC}, "webhooks": [hook]}],
                        webhook_deployments=[copy.deepcopy(DEPLOYMENT)], webhook_network_policies=policies)


def _ctx(cluster: ClusterFacts, pod: PodFacts) -> WorkloadContext:
    sa = ServiceAccountFacts("finance", "backend-sa", True, True,
                             {"azure.workload.identity/client-id": "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"})
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(), sa, IdentityFacts(), pod)
    return WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"), cluster, None,
                           time.time())


@pytest.mark.parametrize(("policy", "blocks"), [
    (DENY_ALL, True),
    (_policy("deny", podSelector={"matchLabels": {"azure-workload-identity.io/system": "true"}},
             policyTypes=["Ingress"]), True),
    (_policy("metrics-only", ingress=[{"ports": [{"port": 8095}]}]), True),  # policyTypes unset: Ingress
    (_policy("udp", ingress=[{"ports": [{"protocol": "UDP", "port": 9443}]}]), True),
    (_policy("by-number", ingress=[{"ports": [{"port": 9443}]}]), False),
    (_policy("by-name", ingress=[{"ports": [{"port": "webhook-server"}]}]), False),
    (_policy("a-range", ingress=[{"ports": [{"port": 9000, "endPort": 9999}]}]), False),
    (_policy("from-somewhere", ingress=[{"from": [{"namespaceSelector": {}}]}]), False),  # peers not judged
    (_policy("egress-only", policyTypes=["Egress"]), False),
    (_policy("other-pods", podSelector={"matchLabels": {"app": "other"}}, policyTypes=["Ingress"]), False),
    (_policy("elsewhere", namespace="finance", policyTypes=["Ingress"]), False),
])
def test_which_policies_drop_the_api_servers_calls(policy: dict[str, Any], blocks: bool) -> None:
    found = webhook_ingress_blocks(_cluster([policy]))
    assert bool(found) is blocks
    if blocks:
        assert found[0].namespace == "kube-system" and found[0].port == 9443
    assert webhook_ingress_blocks(_cluster(None)) == []  # not read: nothing said


def test_a_refusal_out_of_time_behind_an_ingress_policy_names_it_and_lets_the_calls_in() -> None:
    refused = PodFacts("finance", "p", create_error=KubeFailure(500, "InternalError", TIMED_OUT))
    outcome = pod_admitted(_ctx(_cluster([DENY_ALL]), refused))
    finding = outcome.findings[0]
    assert outcome.status == FAIL and finding.code == "WEBHOOK_UNAVAILABLE"
    assert finding.message.endswith(
        "context deadline exceeded; NetworkPolicy default-deny-ingress in kube-system isolates the webhook's pods "
        "for ingress and none of its rules opens port 9443, so the API server's calls to it are dropped")
    lines = finding.fix_lines()
    assert lines[0] == "kubectl get networkpolicy -n kube-system default-deny-ingress -o yaml"
    patch = json.loads(lines[-1].split(" -p ", 1)[1].strip("'"))
    assert lines[-1].startswith("kubectl patch networkpolicy default-deny-ingress -n kube-system --type json -p ")
    assert patch == [{"op": "add", "path": "/spec/ingress", "value": [{"ports": [{"protocol": "TCP", "port": 9443}]}]}]
    assert not any("rollout restart" in line for line in lines)
    # a policy with rules already: the rule is appended to them
    with_rules = _policy("metrics-only", ingress=[{"ports": [{"port": 8095}]}])
    appended = pod_admitted(_ctx(_cluster([with_rules]), refused)).findings[0].fix_lines()[-1]
    assert '"path":"/spec/ingress/-","value":{"ports":[{"protocol":"TCP","port":9443}]}' in appended
    # a refused connection is not a dropped one; no policy, or none read: the webhook's pods, as before
    for cluster, error in ((_cluster([DENY_ALL]), REFUSED), (_cluster([]), TIMED_OUT), (_cluster(None), TIMED_OUT)):
        other = pod_admitted(_ctx(cluster, PodFacts("finance", "p", create_error=KubeFailure(
            500, "InternalError", error)))).findings[0]
        assert "NetworkPolicy" not in other.message and "networkpolicy" not in " ".join(other.fix_lines())


def test_a_pod_left_unmutated_under_ignore_behind_an_ingress_policy_names_it() -> None:
    created = PodFacts("finance", "p", created=True, pod=copy.deepcopy(UNMUTATED_POD))
    outcome = pod_mutated(_ctx(_cluster([DENY_ALL], {**HOOK, "failurePolicy": "Ignore"}), created))
    finding = outcome.findings[0]
    assert finding.code == "POD_NOT_MUTATED"
    assert ("the webhook's failurePolicy is Ignore; NetworkPolicy default-deny-ingress in kube-system isolates "
            "the webhook's pods for ingress") in finding.message
    assert "created before the webhook was ready" not in finding.message
    assert finding.fix_lines()[2].startswith("kubectl patch networkpolicy default-deny-ingress -n kube-system")
    # under Fail the pod would have been refused, not admitted: nothing said of the policy here
    fail = pod_mutated(_ctx(_cluster([DENY_ALL]), PodFacts("finance", "p", created=True,
                                                             pod=copy.deepcopy(UNMUTATED_POD)))).findings[0]
    assert "NetworkPolicy" not in fail.message
