"""A workload identity webhook configuration edited by hand (its timeoutSeconds, its namespaceSelector): what the
probe pod's refusal or missing injection then says (unit tests of pure checks, no server)."""

from __future__ import annotations

import copy
import time
from typing import Any

from harness.checks.context import WorkloadContext
from harness.checks.model import FAIL
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
        "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]}
DEPLOYMENT = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
              "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}
# the API server's refusal when the call outlives timeoutSeconds under failurePolicy Fail (Azure/azure-workload-
# identity#1608, Azure/AKS#3897 quote it with the add-on's ?timeout=10s)
TIMED_OUT = ('Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to call '
             'webhook: Post "https://azure-wi-webhook-webhook-service.kube-system.svc:443/mutate-v1-pod?timeout=1s": '
             "context deadline exceeded")
UNMUTATED_POD = {"metadata": {"name": "p", "namespace": "finance", "labels": {"azure.workload.identity/use": "true"}},
                 "spec": {"serviceAccountName": "backend-sa", "containers": [{"name": "probe", "image": "python"}]}}


def _ctx(hook: dict[str, Any], pod: PodFacts, namespace_labels: dict[str, str] | None = None) -> WorkloadContext:
    sa = ServiceAccountFacts("finance", "backend-sa", True, True,
                             {"azure.workload.identity/client-id": "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"})
    sa.namespace_labels = namespace_labels
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(), sa, IdentityFacts(), pod)
    cluster = ClusterFacts(time.time(), webhook_configurations=[{"metadata": {"name": MWC}, "webhooks": [hook]}],
                           webhook_deployments=[copy.deepcopy(DEPLOYMENT)])
    return WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"), cluster, None,
                           time.time())


def test_a_refusal_for_a_call_out_of_time_names_a_timeout_shortened_by_hand() -> None:
    """timeoutSeconds: 1 put on the webhook by hand (the chart sets none: the API default 10; the add-on calls with
    ?timeout=10s): now and then a call outlives it and the API server refuses the labelled pod 'context deadline
    exceeded'. WEBHOOK_UNAVAILABLE said only to look at the webhook's pods, which are ready; it now names the
    timeout and patches it back to 10 (tested first). The default timeout, or another cause, says nothing of it."""
    refused = PodFacts("finance", "p", create_error=KubeFailure(500, "InternalError", TIMED_OUT))
    outcome = pod_admitted(_ctx({**HOOK, "timeoutSeconds": 1}, refused))
    finding = outcome.findings[0]
    assert outcome.status == FAIL and finding.code == "WEBHOOK_UNAVAILABLE"
    assert finding.message.endswith(f"context deadline exceeded; the webhook configuration {MWC} gives the call "
                                    "timeoutSeconds 1 (the add-on's and the chart's is 10): a call slower than that "
                                    "fails, intermittently")
    assert finding.evidence["timeoutSeconds"] == 1
    assert finding.fix_lines()[0].startswith(
        f"kubectl patch mutatingwebhookconfiguration {MWC} --type json -p "
        """'[{"op":"test","path":"/webhooks/0/timeoutSeconds","value":1},"""
        """{"op":"replace","path":"/webhooks/0/timeoutSeconds","value":10}]'""")
    assert not any("rollout restart" in line for line in finding.fix_lines())  # its pods serve

    for hook, message in (({**HOOK, "timeoutSeconds": 10}, TIMED_OUT.replace("timeout=1s", "timeout=10s")),
                          (HOOK, TIMED_OUT.replace("timeout=1s", "timeout=10s")),
                          ({**HOOK, "timeoutSeconds": 1}, TIMED_OUT.replace(
                              "context deadline exceeded", 'no endpoints available for service "azure-wi-webhook"'))):
        refused.create_error = KubeFailure(500, "InternalError", message)
        other = pod_admitted(_ctx(hook, refused)).findings[0]
        assert other.code == "WEBHOOK_UNAVAILABLE" and "timeoutSeconds" not in other.message
        assert not any("timeoutSeconds" in line for line in other.fix_lines())


def test_a_pod_left_unmutated_under_ignore_with_a_short_timeout_names_the_timeout() -> None:
    """failurePolicy Ignore and timeoutSeconds 1: a call out of time admits the labelled pod with no injection, and
    POD_NOT_MUTATED asked whether the pod was created before the webhook was ready. It now names the timeout and
    its patch, then the restart. Under Fail a short timeout refuses rather than skips: nothing said here."""
    created = PodFacts("finance", "p", created=True, pod=copy.deepcopy(UNMUTATED_POD))
    outcome = pod_mutated(_ctx({**HOOK, "failurePolicy": "Ignore", "timeoutSeconds": 1}, created, {}))
    finding = outcome.findings[0]
    assert finding.code == "POD_NOT_MUTATED"
    assert "the webhook's failurePolicy is Ignore; the webhook configuration" in finding.message
    assert finding.message.endswith("under Ignore the API server admits the pod unmutated when the call fails")
    assert "timeoutSeconds 1 (the add-on's and the chart's is 10)" in finding.message
    assert "created before the webhook was ready" not in finding.message
    assert '"op":"replace","path":"/webhooks/0/timeoutSeconds","value":10' in finding.fix_lines()[0]

    for hook in ({**HOOK, "timeoutSeconds": 1}, {**HOOK, "failurePolicy": "Ignore"}):
        plain = pod_mutated(_ctx(hook, PodFacts("finance", "p", created=True, pod=copy.deepcopy(UNMUTATED_POD)),
                                 {})).findings[0]
        assert "timeoutSeconds" not in plain.message and "timeoutSeconds" not in plain.evidence


ENFORCER = [{"key": "control-plane", "operator": "NotIn", "values": ["true"]},
            {"key": "kubernetes.azure.com/managedby", "operator": "NotIn", "values": ["aks"]}]


def _unmutated(selector: dict[str, Any], namespace_labels: dict[str, str]) -> Any:
    created = PodFacts("finance", "p", created=True, pod=copy.deepcopy(UNMUTATED_POD))
    return pod_mutated(_ctx({**HOOK, "namespaceSelector": selector}, created, namespace_labels)).findings[0]


def test_a_namespace_selector_edited_by_hand_is_named_with_its_restore_and_the_label() -> None:
    """By hand in the lab: kubectl patch added matchLabels team: payments to the webhook's namespaceSelector; every
    workload came back POD_NOT_MUTATED with 'label the namespace' alone, as if the namespace were at fault. The
    selector as installed (the chart's {} and AKS's admissions enforcer's two requirements) has no such
    requirement: the finding says it was edited and prints both ways, its tested removal first (pasted in the lab,
    the next run passed), then the label. A requirement of the installed selector (control-plane=true on the
    namespace) keeps its own fix."""
    edited = _unmutated({"matchExpressions": ENFORCER, "matchLabels": {"team": "payments"}}, {})
    assert "the webhook's namespaceSelector was edited (as installed it selects every namespace but those labelled " \
           "control-plane=true or kubernetes.azure.com/managedby=aks) and excludes namespace finance: it needs " \
           "team in (payments), the namespace has no such label" in edited.message
    lines = edited.fix_lines()
    assert lines[0].startswith("# the webhook's namespaceSelector was edited") and "restore it" in lines[0]
    assert lines[1] == (f"kubectl patch mutatingwebhookconfiguration {MWC} --type json -p "
                        """'[{"op":"test","path":"/webhooks/0/namespaceSelector/matchLabels/team","value":"payments"},"""
                        """{"op":"remove","path":"/webhooks/0/namespaceSelector/matchLabels/team"}]'""")
    assert lines[2].startswith("# or, if the webhook is meant to act only where the selector says, label namespace")
    assert lines[3] == "kubectl label namespace finance team=payments --overwrite"

    expression = {"key": "example.com/tier", "operator": "In", "values": ["gold"]}
    by_expression = _unmutated({"matchExpressions": [*ENFORCER, expression]}, {"example.com/tier": "silver"})
    patch = by_expression.fix_lines()[1]
    assert '{"op":"remove","path":"/webhooks/0/namespaceSelector/matchExpressions/2"}' in patch
    assert "was edited" in by_expression.message

    installed = _unmutated({"matchExpressions": ENFORCER}, {"control-plane": "true"})
    assert "was edited" not in installed.message
    assert installed.fix_lines()[0] == "kubectl label namespace finance control-plane-"


def test_a_refusal_for_a_path_edited_by_hand_names_the_path_and_patches_it_back() -> None:
    """kubectl edit of the configuration's clientConfig.service.path (/mutate-v1-pod -> /mutate): the webhook's
    server answers 404 and the API server refuses labelled pods; the finding said only "the server could not find
    the requested resource" and restarted the webhook's pods, which changes nothing."""
    hook = copy.deepcopy(HOOK)
    hook["clientConfig"] = {"service": {"name": "azure-wi-webhook-webhook-service", "namespace": "kube-system",
                                        "path": "/mutate", "port": 443}}
    refused = ('Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to '
               "call webhook: the server could not find the requested resource")
    ctx = _ctx(hook, PodFacts("finance", "wi-probe", create_error=KubeFailure(500, "InternalError", refused)))
    (finding,) = pod_admitted(ctx).findings
    assert finding.code == "WEBHOOK_UNAVAILABLE" and "calls the path /mutate," in finding.message
    (patch,) = finding.fix_lines()
    assert patch.startswith(f"kubectl patch mutatingwebhookconfiguration {MWC} --type json -p ")
    assert '{"op":"test","path":"/webhooks/0/clientConfig/service/path","value":"/mutate"}' in patch
    assert '"value":"/mutate-v1-pod"' in patch
    hook["clientConfig"]["service"]["path"] = "/mutate-v1-pod"  # a 404 with the shipped path: the path is not it
    (finding,) = pod_admitted(_ctx(hook, ctx.facts.pod)).findings
    assert "calls the path" not in finding.message
    assert not any("/clientConfig/service/path" in line for line in finding.fix_lines())


def test_a_use_label_value_edited_in_the_object_selector_is_named_by_the_value() -> None:
    """kubectl edit of the objectSelector's value ("true" -> "enabled"): the cluster finding said the webhook "does
    not select pods by the azure.workload.identity/use label" (it does, by another value) and the probe's said the
    selector "also requires" azure.workload.identity/use=enabled, as if a label had been added beside it."""
    from harness.checks.cluster import ClusterContext, webhook_object_selector
    from harness.config import ExpectConfig

    hook = copy.deepcopy(HOOK)
    hook["objectSelector"] = {"matchLabels": {"azure.workload.identity/use": "enabled"}}
    pod = PodFacts("finance", "p", created=True, pod=copy.deepcopy(UNMUTATED_POD))
    ctx = _ctx(hook, pod)
    (finding,) = webhook_object_selector(ClusterContext(ctx.cluster, None, ExpectConfig())).findings
    assert finding.message.startswith("the webhook selects pods by azure.workload.identity/use=enabled, not "
                                      'azure.workload.identity/use: "true"')
    (finding,) = pod_mutated(ctx).findings
    assert "objectSelector requires azure.workload.identity/use=enabled, which" in finding.message
    hook["objectSelector"] = {"matchLabels": {"azure.workload.identity/use": "true", "team": "finance"}}
    (finding,) = pod_mutated(_ctx(hook, pod)).findings
    assert "objectSelector also requires team=finance" in finding.message


def test_a_refusal_for_a_service_port_edited_by_hand_patches_the_port_back_not_a_restart() -> None:
    """kubectl edit of clientConfig.service.port (443 -> 8443): the API server finds no such port on the Service
    (util/proxy ResolveEndpoint); the fix restarted the webhook's pods, after which the next run failed the same."""
    hook = copy.deepcopy(HOOK)
    hook["clientConfig"] = {"service": {"name": "azure-wi-webhook-webhook-service", "namespace": "kube-system",
                                        "path": "/mutate-v1-pod", "port": 8443}}
    refused = ('Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to call '
               'webhook: Post "https://azure-wi-webhook-webhook-service.kube-system.svc:8443/mutate-v1-pod?timeout='
               '10s": no service port 8443 found for service "azure-wi-webhook-webhook-service"')
    ctx = _ctx(hook, PodFacts("finance", "wi-probe", create_error=KubeFailure(500, "InternalError", refused)))
    (finding,) = pod_admitted(ctx).findings
    assert "calls the port 8443, which its Service does not have" in finding.message
    (patch,) = finding.fix_lines()
    assert ('[{"op":"test","path":"/webhooks/0/clientConfig/service/port","value":8443},{"op":"replace","path":'
            '"/webhooks/0/clientConfig/service/port","value":443}]') in patch


def test_an_add_on_selector_edited_to_exclude_the_namespace_by_name_is_patched_back_not_reinstalled() -> None:
    """kubectl edit under the add-on: kubernetes.io/metadata.name NotIn [finance] added to the namespaceSelector.
    The fix printed was az aks update --enable-workload-identity (not known to put an edited selector back); now
    the tested removal of that requirement, which, pasted in the lab, let the next run pass."""
    import json
    import shlex

    hook = copy.deepcopy(HOOK)
    by_name = {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["finance"]}
    hook["namespaceSelector"] = {"matchExpressions": [*ENFORCER, by_name]}
    pod = PodFacts("finance", "p", created=True, pod=copy.deepcopy(UNMUTATED_POD))
    finding = pod_mutated(_ctx(hook, pod, {"kubernetes.io/metadata.name": "finance"})).findings[0]
    lines = finding.fix_lines()
    assert not any(line.startswith("az aks update") for line in lines), lines
    (patch,) = [shlex.split(line) for line in lines if line.startswith("kubectl patch")]
    assert patch[3] == MWC
    assert json.loads(patch[patch.index("-p") + 1]) == [
        {"op": "test", "path": "/webhooks/0/namespaceSelector/matchExpressions/2", "value": by_name},
        {"op": "remove", "path": "/webhooks/0/namespaceSelector/matchExpressions/2"}]
