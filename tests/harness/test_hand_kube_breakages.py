"""Workload ID broken by hand with kubectl, judged on plain facts. --pod on a pod no controller owns (kubectl run,
a manifest applied by hand), never mutated: the fix makes the same pod again from its own spec (kubectl get -o
yaml | kubectl replace --force -f -), labelled first when the label is missing; it used to be a delete and
"recreate the pods from their manifest", which, pasted, loses a kubectl-run pod for good. A token expiration the
webhook refuses is named on the ServiceAccount that carries it; a ServiceAccount meant for Workload ID under a
misspelled key is verified by a whole-cluster run."""

from __future__ import annotations

import shlex
import time
from typing import Any

from harness.checks import remediation as fix
from harness.checks.context import WorkloadContext
from harness.checks.live_pods import live_pods, restart_workload
from harness.checks.model import FAIL
from harness.checks.pod import pod_admitted, pod_labelled, pod_mutated
from harness.checks.serviceaccount import near_miss_keys, sa_client_id_annotation
from harness.collect.inventory import list_service_accounts
from harness.commands import Command, intended_words, render, render_all
from harness.config import WorkloadConfig
from harness.facts import (
    ClusterFacts,
    IdentityFacts,
    KubeFailure,
    LivePod,
    LivePodsFacts,
    PodFacts,
    ServiceAccountFacts,
    WorkloadFacts,
)

CLIENT = "11111111-2222-3333-4444-555555555555"
USE = "azure.workload.identity/use"
EXPIRATION = "azure.workload.identity/service-account-token-expiration"
TOKEN = {"name": "azure-identity-token", "projected": {"sources": [{"serviceAccountToken": {
    "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"}}]}}
REPLACE = ("kubectl get pod -n finance debug -o yaml | kubectl replace --force -f -   # the same pod created again, "
           "which the webhook then sees (it acts on pod CREATE only)")


def bare_pod(labels: dict[str, str], owned: bool = False, mutated: bool = False) -> dict[str, Any]:
    env = [{"name": "AZURE_CLIENT_ID", "value": CLIENT}, {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/f"}]
    meta: dict[str, Any] = {"name": "debug", "namespace": "finance", "labels": labels}
    if owned:
        meta["ownerReferences"] = [{"kind": "Job", "name": "migrate", "controller": True}]
    return {"metadata": meta,
            "spec": {"serviceAccountName": "backend-sa",
                     "containers": [{"name": "debug", "env": env if mutated else []}],
                     "volumes": [TOKEN] if mutated else []},
            "status": {"phase": "Running"}}


def context(pod: dict[str, Any]) -> WorkloadContext:
    sa = ServiceAccountFacts("finance", "backend-sa", True, True, {"azure.workload.identity/client-id": CLIENT})
    probe = {"metadata": {"name": "wi-probe"}, "spec": {"volumes": [TOKEN]}}  # the webhook works now
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(), sa, IdentityFacts(),
                          PodFacts("finance", "debug", existing=True, created=True, pod=pod),
                          probe_pod=PodFacts("finance", "wi-probe", created=True, pod=probe))
    cluster = ClusterFacts(time.time(), webhook_configurations=[{"metadata": {"name": "azure-wi-webhook"}}])
    return WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"), cluster, None,
                           time.time())


def test_a_kubectl_run_pod_without_the_label_is_labelled_and_made_again_from_its_own_spec() -> None:
    outcome = pod_labelled(context(bare_pod({"run": "debug"})))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_LABELLED"
    assert finding.fix_lines() == ["kubectl label pod -n finance debug azure.workload.identity/use=true --overwrite",
                                   REPLACE]
    wrong = pod_labelled(context(bare_pod({USE: "yes"}))).findings[0]
    assert wrong.fix_lines()[0].endswith("azure.workload.identity/use=true --overwrite")  # 'yes' replaced


def test_a_kubectl_run_pod_labelled_by_hand_is_made_again_from_its_own_spec() -> None:
    outcome = pod_mutated(context(bare_pod({USE: "true"})))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_MUTATED" and "kubectl label pod" in finding.message
    assert finding.fix_lines() == [REPLACE]


def test_a_pod_with_a_controller_or_being_deleted_is_not_replaced_from_its_spec() -> None:
    owned = pod_mutated(context(bare_pod({USE: "true"}, owned=True))).findings[0]
    assert not any("replace --force" in line for line in owned.fix_lines())
    going = bare_pod({"run": "debug"})
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not any("replace --force" in line for line in pod_labelled(context(going)).findings[0].fix_lines())


def test_a_mutated_bare_pod_is_not_copied_with_its_injected_env() -> None:
    """Its copy would carry the AZURE_* env the webhook injected then, which the webhook never overwrites."""
    mutated = bare_pod({"run": "debug"}, mutated=True)
    assert not any("replace --force" in line for line in pod_labelled(context(mutated)).findings[0].fix_lines())


def test_a_pipe_renders_each_side_word_by_word() -> None:
    step = fix.recreate_pod("fin; rm -rf /", "debug")  # not a namespace name: a placeholder, never the text
    assert shlex.split(render(step), comments=True) == intended_words(step) == [
        "kubectl", "get", "pod", "-n", "<namespace>", "debug", "-o", "yaml", "|", "kubectl", "replace", "--force",
        "-f", "-"]
    nasty = Command(("echo", "a | b", "$(touch P)"), then=("grep", "x; rm -rf /"))
    assert shlex.split(render(nasty)) == intended_words(nasty) == ["echo", "a | b", "$(touch P)", "|", "grep",
                                                                    "x; rm -rf /"]


def refused_probe(expiration: str, message: str) -> WorkloadContext:
    """The probe pod refused by the webhook, over a ServiceAccount annotated with ``expiration``."""
    sa = ServiceAccountFacts("finance", "backend-sa", True, True, {"azure.workload.identity/client-id": CLIENT,
                                                                   EXPIRATION: expiration})
    refused = PodFacts("finance", "wi-probe", created=False, create_error=KubeFailure(
        400, "", f'admission webhook "mutation.azure-workload-identity.io" denied the request: {message}'))
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(), sa, IdentityFacts(), refused)
    return WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                           ClusterFacts(time.time()), None, time.time())


def test_a_token_expiration_written_as_a_duration_is_named_on_the_service_account() -> None:
    """By hand in the lab: kubectl annotate sa backend-sa azure.workload.identity/service-account-token-expiration=24h
    (azwi's flag takes durations): the webhook's denial is Go's 'strconv.ParseInt: parsing "24h": invalid syntax',
    which names neither the annotation nor the ServiceAccount; the finding said only that."""
    (finding,) = pod_admitted(refused_probe("24h", 'strconv.ParseInt: parsing "24h": invalid syntax')).findings
    assert finding.code == "POD_REJECTED_BY_WEBHOOK"
    assert finding.message.endswith(f"(the ServiceAccount's {EXPIRATION} is '24h': whole seconds, not a duration)")
    assert finding.fix_lines()[0] == f"kubectl annotate serviceaccount -n finance backend-sa {EXPIRATION}-"
    (short,) = pod_admitted(refused_probe("600", "token expiration 600 not valid. Expected value to be between 3600 "
                                                 "and 86400")).findings
    assert short.message.endswith(f"(the ServiceAccount's {EXPIRATION} is '600')")


def test_a_tenant_id_annotation_alone_is_no_misspelled_client_id() -> None:
    """By hand in the lab: backend-sa annotated with azure.workload.identity/tenant-id only (its client-id gone),
    a whole-cluster run: SA_ANNOTATION_MISSPELLED said 'found azure.workload.identity/tenant-id instead' and its fix
    annotated client-id=<the tenant id> and removed tenant-id: pasted, Entra knows no application by the tenant's
    id. tenant-id is the webhook's own key (upstream consts.go), within the typo distance of client-id."""
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    ctx = context(bare_pod({USE: "true"}))
    ctx.facts.sa.annotations = {"azure.workload.identity/tenant-id": tenant}
    (finding,) = sa_client_id_annotation(ctx).findings
    assert finding.code == "SA_NOT_ANNOTATED"
    assert not any(tenant in line for line in finding.fix_lines())
    assert near_miss_keys(["azure.workload.identity/tenant-id", EXPIRATION, "azure.workload.identity/skip-containers",
                           "azure.workload.identity/inject-proxy-sidecar", "azure.workload.identity/proxy-sidecar-port",
                           USE, "azure.workload.identity/client_id"]) == ["azure.workload.identity/client_id"]


class _Accounts:
    """A cluster's ServiceAccounts, as the kube client lists them."""

    def __init__(self, accounts: list[dict[str, Any]]) -> None:
        self.accounts = accounts

    def list_service_accounts(self, namespace: str | None) -> list[dict[str, Any]]:
        return [a for a in self.accounts if namespace in (None, a["metadata"]["namespace"])]


def _account(name: str, annotations: dict[str, str] | None = None,
             labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "finance", "name": name, "annotations": annotations or {},
                         "labels": labels or {}}}


def test_a_whole_cluster_run_verifies_a_service_account_whose_client_id_key_is_misspelled() -> None:
    """By hand in the lab: backend-sa annotated azure.workload.identity/client_id=<id> and its Deployment's
    template without the use label, a whole-cluster run (no workloads: in harness.yaml): it verified orders-sa
    alone and passed, finance/backend-sa unnamed (the runbook's filter is the exact key or the use label). A
    ServiceAccount meant for Workload ID is verified now (and fails SA_ANNOTATION_MISSPELLED); others are not."""
    kube = _Accounts([
        _account("backend-sa", {"azure.workload.identity/client_id": CLIENT}),
        _account("billing-sa", {"azure.workload.identity/tenant-id": CLIENT}),
        _account("ledger-sa", labels={"azure.workload.identity/client-id": CLIENT}),
        _account("orders-sa", {"azure.workload.identity/client-id": CLIENT}),
        _account("default"),
        _account("web", {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x", "team": "finance"}),
    ])
    chosen, every, error = list_service_accounts(kube, ["finance"], meant=True)  # type: ignore[arg-type]
    assert error is None and len(every) == 6
    assert [s["name"] for s in chosen] == ["backend-sa", "billing-sa", "ledger-sa", "orders-sa"]
    runbook, _, _ = list_service_accounts(kube, ["finance"])  # type: ignore[arg-type]
    assert [s["name"] for s in runbook] == ["orders-sa"]


def workload_run(*pods: dict[str, Any]) -> WorkloadContext:
    """A --workload run (its live pods listed, no --pod pod) over ``pods``, each run by no controller."""
    ctx = context(bare_pod({}))
    ctx.facts.pod = None
    ctx.facts.live_pods = LivePodsFacts([LivePod(pod, "Pod", pod["metadata"]["name"]) for pod in pods])
    return ctx


def test_a_kubectl_run_pod_labelled_by_hand_is_made_again_from_its_own_spec_by_a_workload_run() -> None:
    """By hand in the lab: kubectl run bare (backend-sa), kubectl label pod bare azure.workload.identity/use=true,
    --workload finance/backend-sa: workload.live_pods' POD_NOT_MUTATED printed 'kubectl delete pod -n finance bare'
    and '# recreate the pods from their manifest', which loses a pod made by kubectl run. Without the label
    (POD_NOT_LABELLED), an advice to label its manifest and the same delete."""
    labelled, unlabelled = live_pods(workload_run(bare_pod({USE: "true"}))), live_pods(workload_run(bare_pod({})))
    assert labelled.status == unlabelled.status == FAIL
    (mutated,), (label,) = labelled.findings, unlabelled.findings
    assert mutated.code == "POD_NOT_MUTATED" and label.code == "POD_NOT_LABELLED"
    assert REPLACE in mutated.fix_lines() and not any("delete pod" in line for line in mutated.fix_lines())
    assert label.fix_lines() == ["kubectl label pod -n finance debug azure.workload.identity/use=true --overwrite",
                                 REPLACE]
    assert render_all(restart_workload(workload_run(bare_pod({USE: "true"})))) == [REPLACE]


def test_a_workload_runs_mutated_or_owned_pod_is_not_copied_from_its_spec() -> None:
    """A mutated bare pod's copy keeps its injected env (a stale client id would stay); a Job's pod is made again
    by its Job."""
    mutated = render_all(restart_workload(workload_run(bare_pod({USE: "true"}, mutated=True))))
    assert mutated[0] == "kubectl delete pod -n finance debug" and not any("replace --force" in m for m in mutated)
    ctx = workload_run(bare_pod({USE: "true"}, owned=True))
    ctx.facts.live_pods.pods[0].owner_kind, ctx.facts.live_pods.pods[0].owner_name = "Job", "migrate"
    assert not any("replace --force" in line for line in render_all(restart_workload(ctx)))
