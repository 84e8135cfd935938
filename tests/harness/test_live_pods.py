"""The workload's own pods, judged on plain facts: not labelled (and where the label sits instead), labelled
but never mutated, a client id the pod predates, a preset AZURE_CLIENT_ID, a skipped container, no pods."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.checks.context import WorkloadContext
from harness.checks.live_pods import live_pods, restart_workload
from harness.checks.model import FAIL, PASS, WARN
from harness.checks.pod import pod_exists, pod_labelled, pod_mutated
from harness.collect.kube_api import KubeError
from harness.collect.live_pods import collect_live_pods, owner_of
from harness.commands import render_all
from harness.config import WorkloadConfig
from harness.facts import (
    ClusterFacts,
    Fetched,
    IdentityFacts,
    KubeFailure,
    LivePod,
    LivePodsFacts,
    PodFacts,
    ServiceAccountFacts,
    WorkloadFacts,
)

CLIENT = "11111111-2222-3333-4444-555555555555"
OLD_CLIENT = "99999999-2222-3333-4444-555555555555"
USE = "azure.workload.identity/use"


def workload_pod(name: str = "backend-7d9f-abcde", labelled: bool = True, client_id: str | None = CLIENT,
                 mutated: bool = True, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    env = []
    volumes = []
    if mutated:
        env = [{"name": "AZURE_TENANT_ID", "value": "t"}, {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/f"},
               {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}]
        if client_id:
            env.insert(0, {"name": "AZURE_CLIENT_ID", "value": client_id})
        volumes = [{"name": "azure-identity-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"}}]}}]
    return {
        "metadata": {
            "name": name, "namespace": "finance",
            "labels": {USE: "true", "pod-template-hash": "7d9f"} if labelled else {"pod-template-hash": "7d9f"},
            "annotations": annotations or {},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}],
        },
        "spec": {"serviceAccountName": "backend-sa", "containers": [{"name": "app", "env": env}],
                 "volumes": volumes},
        "status": {"phase": "Running"},
    }


def deployment(template_env: list[dict[str, str]] | None = None, labels: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": "backend", "namespace": "finance", "labels": labels or {}},
            "spec": {"template": {"metadata": {"labels": {}},
                                  "spec": {"containers": [{"name": "app", "env": template_env or []}]}}}}


def context(pods: list[LivePod] | None, sa_annotations: dict[str, str] | None = None,
            sa_labels: dict[str, str] | None = None, error: KubeFailure | None = None) -> WorkloadContext:
    sa = ServiceAccountFacts("finance", "backend-sa", True, True,
                             {"azure.workload.identity/client-id": CLIENT} if sa_annotations is None
                             else sa_annotations, sa_labels or {})
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(), sa, IdentityFacts(),
                          live_pods=None if pods is None and error is None
                          else LivePodsFacts(pods or [], error))
    return WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                           ClusterFacts(time.time()), None, time.time())


def live(pod: dict[str, Any], owner: dict[str, Any] | None = None) -> LivePod:
    return LivePod(pod, "Deployment", "backend", owner)


def test_healthy_pods_pass_and_no_pods_is_not_a_failure() -> None:
    assert live_pods(context([live(workload_pod())])).status == PASS
    nothing = live_pods(context([]))
    assert nothing.status == PASS and "no live pods" in nothing.message and not nothing.findings


def test_a_template_that_lost_the_label_names_where_the_label_sits_and_patches_the_template() -> None:
    outcome = live_pods(context([live(workload_pod(labelled=False), deployment(labels={USE: "true"}))],
                                sa_labels={USE: "true"}))
    assert outcome.status == FAIL
    finding = outcome.findings[0]
    assert finding.code == "POD_NOT_LABELLED"
    assert "Deployment's own metadata, not its pod template" in finding.message
    assert "on the ServiceAccount" in finding.message
    assert finding.fix_lines() == [
        "kubectl patch deployment/backend -n finance --type merge -p "
        "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'"
    ]


def test_labelled_but_never_mutated_pods_are_restarted() -> None:
    outcome = live_pods(context([live(workload_pod(mutated=False))]))
    assert [f.code for f in outcome.findings] == ["POD_NOT_MUTATED"]
    assert "kubectl rollout restart deployment/backend -n finance" in outcome.findings[0].fix_lines()[-1]


def test_a_pod_created_before_the_client_id_changed_needs_a_restart() -> None:
    outcome = live_pods(context([live(workload_pod(client_id=OLD_CLIENT), deployment())]))
    finding = outcome.findings[0]
    assert finding.code == "POD_STALE_CLIENT_ID" and OLD_CLIENT in finding.message and CLIENT in finding.message
    assert finding.fix_lines()[0].startswith("kubectl rollout restart deployment/backend -n finance")
    before_annotation = live_pods(context([live(workload_pod(client_id=None), deployment())]))
    assert before_annotation.findings[0].code == "POD_STALE_CLIENT_ID"


def test_a_preset_client_id_is_a_conflict_not_a_stale_pod() -> None:
    owner = deployment(template_env=[{"name": "AZURE_CLIENT_ID", "value": OLD_CLIENT}])
    outcome = live_pods(context([live(workload_pod(client_id=OLD_CLIENT), owner)]))
    finding = outcome.findings[0]
    assert finding.code == "POD_ENV_CONFLICT"
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_CLIENT_ID-"]


def test_a_skipped_container_is_a_warning() -> None:
    pod = workload_pod(annotations={"azure.workload.identity/skip-containers": "sidecar"})
    pod["spec"]["containers"].append({"name": "sidecar", "env": []})
    outcome = live_pods(context([live(pod)]))
    assert outcome.status == WARN and [f.code for f in outcome.findings] == ["POD_CONTAINER_SKIPPED"]


def test_many_pods_of_one_owner_make_one_finding_that_counts_them() -> None:
    pods = [live(workload_pod(name=f"backend-7d9f-{i:05d}", labelled=False)) for i in range(25)]
    outcome = live_pods(context(pods))
    assert len(outcome.findings) == 1
    assert outcome.findings[0].evidence["pod_count"] == 25 and "15 more" in outcome.findings[0].message


def test_a_list_the_harness_may_not_make_is_named() -> None:
    outcome = live_pods(context(None, error=KubeFailure(403, "Forbidden", "pods is forbidden")))
    assert outcome.status == FAIL and outcome.findings[0].code == "KUBE_FORBIDDEN"
    assert outcome.findings[0].fix_lines()[0] == "kubectl auth can-i list pods -n finance"


@pytest.mark.parametrize(("references", "labels", "expected"), [
    ([{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}], {"pod-template-hash": "7d9f"},
     ("Deployment", "backend")),
    ([{"kind": "ReplicaSet", "name": "manual-rs", "controller": True}], {}, ("ReplicaSet", "manual-rs")),
    ([{"kind": "StatefulSet", "name": "db", "controller": True}], {}, ("StatefulSet", "db")),
    ([], {}, ("Pod", "p")),
])
def test_owners_are_traced_to_the_controller_to_restart(references: list, labels: dict, expected: tuple) -> None:
    pod = {"metadata": {"name": "p", "ownerReferences": references, "labels": labels}}
    assert owner_of(pod) == expected


@pytest.mark.parametrize(("references", "labels", "expected"), [
    ([{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}], {"pod-template-hash": "7d9f"},
     ["kubectl rollout restart deployment/backend -n finance"]),
    ([{"kind": "StatefulSet", "name": "db", "controller": True}], {},
     ["kubectl rollout restart statefulset/db -n finance"]),
    ([], {}, ["kubectl get pod -n finance p -o yaml | kubectl replace --force -f -"]),  # no controller, never mutated
])
def test_with_pod_the_restart_names_the_given_pods_own_controller(references: list, labels: dict,
                                                                   expected: list[str]) -> None:
    """--pod lists no live pods, but the pod it names says who owns it: no ``<deployment>`` to fill in."""
    ctx = context(None)
    pod = {"metadata": {"name": "p", "namespace": "finance", "ownerReferences": references, "labels": labels}}
    ctx.facts.pod = PodFacts("finance", "p", existing=True, created=True, pod=pod)
    commands = [line.split("#")[0].strip() for line in render_all(restart_workload(ctx)) if not line.startswith("#")]
    assert commands == expected
    ctx.facts.pod = None  # nothing known: the placeholder, for a person to fill in
    assert "<deployment>" in render_all(restart_workload(ctx))[0]


class ListingKube:
    def __init__(self, pods: list[dict[str, Any]], deployments: list[dict[str, Any]] | None = None) -> None:
        self.pods = pods
        self.deployments = deployments or []
        self.read: list[str] = []
        self.controllers: list[dict[str, Any]] = []  # StatefulSets, DaemonSets, Jobs (with a "plural" key)
        self.events: list[dict[str, Any]] = []

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        return self.pods, "1"

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        self.read.append(name)
        return deployment()

    def list_deployments(self, namespace: str) -> list[dict[str, Any]]:
        return self.deployments

    def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                        field_selector: str = "") -> list[dict[str, Any]]:
        if plural == "events":
            assert field_selector == "reason=FailedCreate"
            return self.events
        return [o for o in self.controllers if o["plural"] == plural]


def test_the_collector_keeps_live_pods_of_the_service_account_only() -> None:
    other_sa = workload_pod(name="other")
    other_sa["spec"]["serviceAccountName"] = "other-sa"
    finished = workload_pod(name="done")
    finished["status"]["phase"] = "Succeeded"
    probe = workload_pod(name="wi-probe")
    probe["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "wi-harness"
    kube = ListingKube([workload_pod(name="b"), other_sa, finished, probe, workload_pod(name="a")])
    facts = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert [p.pod["metadata"]["name"] for p in facts.pods] == ["a", "b"]
    assert kube.read == ["backend"]  # the Deployment read once for both pods


DENIAL = ('admission webhook "mutation.azure-workload-identity.io" denied the request: token expiration 100 not '
          "valid. Expected value to be between 3600 and 86400")


def failing_deployment(name: str, sa: str, message: str, annotations: dict[str, str] | None = None,
                       status: str = "True") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "finance"},
            "spec": {"template": {"metadata": {"annotations": annotations or {}},
                                  "spec": {"serviceAccountName": sa, "containers": [{"name": "app"}]}}},
            "status": {"conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "ReplicaFailure", "status": status, "reason": "FailedCreate", "message": message}]}}


def refused_once(controller: dict[str, Any], kind: str, message: str) -> ListingKube:
    """A namespace with no pod, ``controller`` (of ``kind``) and one FailedCreate event on it saying ``message``."""
    kube = ListingKube([])
    kube.controllers = [controller]
    kube.events = [{"involvedObject": {"kind": kind, "uid": controller["metadata"]["uid"]},
                    "lastTimestamp": "2026-01-01T00:00:01Z", "message": message}]
    return kube


def context_with_failing_deployment(*args: object) -> WorkloadContext:
    """finance/backend-sa's context with no live pod and one Deployment (``failing_deployment(*args)``) whose
    ReplicaSet cannot create its pods, collected as the collector does."""
    ctx = context([])
    ctx.facts.live_pods = collect_live_pods(ListingKube([], [failing_deployment(*args)]),  # type: ignore[arg-type]
                                            "finance", "backend-sa")
    return ctx


def test_the_collector_keeps_the_service_accounts_deployments_whose_pods_are_refused() -> None:
    expiry = {"azure.workload.identity/service-account-token-expiration": "100"}
    kube = ListingKube([], [failing_deployment("backend", "backend-sa", DENIAL, expiry),
                            failing_deployment("other", "other-sa", DENIAL),
                            failing_deployment("healed", "backend-sa", DENIAL, status="False")])
    facts = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert [(r.kind, r.name, r.reason) for r in facts.refused] == [("Deployment", "backend", "FailedCreate")]
    assert facts.refused[0].template_annotations == expiry


def test_a_deployment_whose_pods_the_webhook_denies_fails_although_no_pod_runs() -> None:
    """No live pod to inspect, and the probe pod (which carries no template annotation) is admitted: only the
    Deployment's ReplicaFailure says the webhook refuses every pod of it. The fix removes the template's invalid
    token expiration (the webhook reads the pod's before the ServiceAccount's)."""
    expiry = {"azure.workload.identity/service-account-token-expiration": "100"}
    ctx = context_with_failing_deployment("backend", "backend-sa", DENIAL, expiry)
    outcome = live_pods(ctx)
    assert outcome.status == FAIL
    finding = outcome.findings[0]
    assert finding.code == "POD_REJECTED_BY_WEBHOOK" and "token expiration 100 not valid" in finding.message
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type json -p "
        """'[{"op":"remove","path":"/spec/template/metadata/annotations/"""
        """azure.workload.identity~1service-account-token-expiration"}]'""")


def test_a_probe_refused_for_the_service_accounts_expiration_says_the_apps_own_pods_set_theirs() -> None:
    """By hand in the lab: the pod template sets service-account-token-expiration 3600 and kubectl annotate sa
    backend-sa ...=100: the app's pods run (the webhook reads the pod's annotation before the ServiceAccount's),
    the probe, without one, is denied. The FAIL said only the denial, over an app that works; it now says the
    workload's own pods are admitted and why, and still removes the ServiceAccount's annotation."""
    from harness.checks.pod import pod_admitted

    expiry = "azure.workload.identity/service-account-token-expiration"
    ctx = context([live(workload_pod(annotations={expiry: "3600"}))],
                  sa_annotations={"azure.workload.identity/client-id": CLIENT, expiry: "100"})
    ctx.facts.pod = PodFacts("finance", "wi-probe", create_error=KubeFailure(400, "BadRequest", DENIAL))
    (finding,) = pod_admitted(ctx).findings
    assert finding.code == "POD_REJECTED_BY_WEBHOOK"
    assert finding.message == (
        f"the webhook denied the pod: {DENIAL} (the ServiceAccount's {expiry} is '100'); the workload's own pods "
        "(Deployment/backend) are admitted: each sets "
        f"its own {expiry}, which the webhook reads before the ServiceAccount's; a pod without one (this probe, a new "
        "workload under the ServiceAccount) is refused")
    assert finding.fix_lines()[0] == f"kubectl annotate serviceaccount -n finance backend-sa {expiry}-"
    # pods without their own: nothing added
    ctx = context([live(workload_pod())], sa_annotations={"azure.workload.identity/client-id": CLIENT, expiry: "100"})
    ctx.facts.pod = PodFacts("finance", "wi-probe", create_error=KubeFailure(400, "BadRequest", DENIAL))
    assert pod_admitted(ctx).findings[0].message == (
        f"the webhook denied the pod: {DENIAL} (the ServiceAccount's {expiry} is '100')")


PSA = ('pods "backend-x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != '
       'false (container "app" must set securityContext.allowPrivilegeEscalation=false)')
INJECTOR_DOWN = ('Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": failed to '
                 'call webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": dial tcp '
                 "10.0.0.12:443: connect: connection refused")


@pytest.mark.parametrize(("message", "cause", "look"), [
    ('pods "backend-x" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2',
     "a ResourceQuota or LimitRange", "kubectl describe resourcequota,limitrange -n finance"),
    (PSA, 'Pod Security admission (the namespace enforces "restricted:latest")',
     "kubectl get namespace finance --show-labels"),
    (INJECTOR_DOWN, "namespace.sidecar-injector.istio.io cannot be called",
     "kubectl get endpoints -n istio-system istiod   # no address: no pod serves it"),
    ('admission webhook "validation.gatekeeper.sh" denied the request: [azurepolicy-x] no limits',
     "validation.gatekeeper.sh (a policy engine or another product) denied them",
     "kubectl get constraints -o wide   # which constraint refused it"),
])
def test_a_refusal_that_is_not_the_webhooks_is_named_and_not_blamed_on_workload_identity(
    message: str, cause: str, look: str
) -> None:
    """A Deployment whose ReplicaSet another part of the cluster refuses is a warning naming that part, never a
    Workload ID finding: the probe proves the chain, the template that does not run is the owner's to change."""
    ctx = context_with_failing_deployment("backend", "backend-sa", message)
    outcome = live_pods(ctx)
    assert outcome.status == WARN
    assert [f.code for f in outcome.findings] == ["WORKLOAD_PODS_REFUSED"]
    finding = outcome.findings[0]
    assert cause in finding.message and "not for Workload ID" in finding.message
    lines = finding.fix_lines()
    assert lines[0] == "kubectl describe deployment/backend -n finance"
    assert any(line.startswith(look) for line in lines), lines
    assert lines[-1].startswith("# a person decides")


def test_the_workload_identity_webhook_unreachable_is_not_named_as_another_refusal() -> None:
    down = INJECTOR_DOWN.replace("namespace.sidecar-injector.istio.io", "mutation.azure-workload-identity.io")
    assert live_pods(context_with_failing_deployment("backend", "backend-sa", down)).status == PASS


def test_a_preset_token_file_that_is_not_the_projected_token_is_a_conflict_unset_by_name() -> None:
    """A template that sets AZURE_FEDERATED_TOKEN_FILE itself (copied from a v1.6 manifest) keeps it: the webhook
    appends only the variables a container lacks. The SDK then reads a file that is not there."""
    pod = workload_pod()
    app = pod["spec"]["containers"][0]
    app["volumeMounts"] = [{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens",
                            "readOnly": True}]
    for env in app["env"]:
        if env["name"] == "AZURE_FEDERATED_TOKEN_FILE":
            env["value"] = "/var/run/secrets/azure/wi/token/azure-identity-token"
    outcome = live_pods(context([live(pod)]))
    assert outcome.status == FAIL
    finding = outcome.findings[0]
    assert finding.code == "POD_ENV_CONFLICT" and "/var/run/secrets/azure/tokens/azure-identity-token" in finding.message
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_FEDERATED_TOKEN_FILE-"]
    for env in app["env"]:  # the projected token itself, spelled with a ./ segment: no conflict
        if env["name"] == "AZURE_FEDERATED_TOKEN_FILE":
            env["value"] = "/var/run/secrets/azure/tokens/./azure-identity-token"
    assert live_pods(context([live(pod)])).status == PASS


def test_a_preset_tenant_or_authority_other_than_the_webhooks_is_a_conflict() -> None:
    """AZURE_TENANT_ID / AZURE_AUTHORITY_HOST set in the template (copied from another environment) stay as set;
    what the webhook injects now is the probe pod's. The same values, spelled otherwise, are no conflict."""
    pod = workload_pod()
    pod["spec"]["containers"][0]["env"][1]["value"] = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # AZURE_TENANT_ID
    owner = deployment(template_env=[{"name": "AZURE_TENANT_ID", "value": "72f988bf-86f1-41af-91ab-2d7cd011db47"}])
    ctx = context([live(pod, owner)])
    probe = workload_pod(name="wi-probe-backend-sa-1")
    probe["spec"]["containers"][0]["env"][1]["value"] = "T"  # what the webhook injects for this ServiceAccount
    ctx.facts.pod = PodFacts("finance", "wi-probe-backend-sa-1", created=True, pod=probe)
    outcome = live_pods(ctx)
    assert outcome.status == FAIL and outcome.findings[0].code == "POD_ENV_CONFLICT"
    assert "AZURE_TENANT_ID=72f988bf" in outcome.findings[0].message
    assert outcome.findings[0].fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_TENANT_ID-"]
    pod["spec"]["containers"][0]["env"][1]["value"] = "t"  # the injected tenant in other case
    assert live_pods(ctx).status == PASS
    ctx.facts.pod = None  # no probe pod: nothing to compare with
    pod["spec"]["containers"][0]["env"][1]["value"] = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert live_pods(ctx).status == PASS


def test_a_template_volume_named_like_the_webhooks_makes_every_pod_invalid_and_is_named() -> None:
    """Webhook v1.5 appends its azure-identity-token volume unless one projects its token path: a template volume
    of that name (an emptyDir) makes every mutated pod invalid (422 Duplicate value). Another volume's duplicate
    is not the webhook's doing."""
    clash = 'Pod "backend-x" is invalid: spec.volumes[1].name: Duplicate value: "azure-identity-token"'
    ctx = context_with_failing_deployment("backend", "backend-sa", clash)
    outcome = live_pods(ctx)
    assert outcome.status == FAIL
    finding = outcome.findings[0]
    assert finding.code == "POD_NOT_ADMITTED" and finding.evidence["volume"] == "azure-identity-token"
    assert finding.fix_lines()[0].startswith("kubectl get deployment/backend -n finance -o")
    other = 'Pod "backend-x" is invalid: spec.volumes[1].name: Duplicate value: "data"'
    ctx.facts.live_pods = collect_live_pods(
        ListingKube([], [failing_deployment("backend", "backend-sa", other)]), "finance", "backend-sa")  # type: ignore[arg-type]
    unnamed = live_pods(ctx)  # not the webhook's volume: refused all the same, said as a warning
    assert unnamed.status == WARN and "for a reason the harness does not name" in unnamed.findings[0].message
    assert "volume" not in unnamed.findings[0].evidence


def test_no_pod_under_the_service_account_but_a_labelled_one_under_default_is_a_warning_with_the_patch() -> None:
    """A Deployment whose template lost its serviceAccountName runs under ``default``: labelled, mutated, no
    AZURE_CLIENT_ID. The workload itself has no pod to inspect; the warning names that Deployment and the patch
    moving it to the workload's ServiceAccount. A labelled pod under an annotated ServiceAccount (it has a client
    id) is another workload's, not named."""
    stray = workload_pod(name="backend-7d9f-x", client_id=None)
    stray["spec"]["serviceAccountName"] = "default"
    other = workload_pod(name="batch-1", client_id=OLD_CLIENT)
    other["spec"]["serviceAccountName"] = "batch-sa"
    ctx = context([])
    ctx.facts.live_pods = collect_live_pods(ListingKube([stray, other]), "finance", "backend-sa")  # type: ignore[arg-type]
    outcome = live_pods(ctx)
    assert outcome.status == WARN
    finding = outcome.findings[0]
    assert finding.code == "POD_WRONG_SERVICE_ACCOUNT" and "Deployment/backend" in finding.message
    assert finding.evidence["pods"] == ["backend-7d9f-x"]
    assert finding.fix_lines()[1] == ("kubectl patch deployment/backend -n finance --type merge -p "
                                      """'{"spec":{"template":{"spec":{"serviceAccountName":"backend-sa"}}}}'""")
    ctx.facts.live_pods = collect_live_pods(ListingKube([other]), "finance", "backend-sa")  # type: ignore[arg-type]
    assert live_pods(ctx).status == PASS
    unmutated = workload_pod(name="backend-7d9f-y", mutated=False)  # made while the webhook was down: says nothing
    unmutated["spec"]["serviceAccountName"] = "default"
    ctx.facts.live_pods = collect_live_pods(ListingKube([unmutated]), "finance", "backend-sa")  # type: ignore[arg-type]
    assert live_pods(ctx).status == PASS


def replica_set(name: str, revision: str, service_account: str, owner: str = "backend") -> dict[str, Any]:
    return {"plural": "replicasets",
            "metadata": {"name": name, "annotations": {"deployment.kubernetes.io/revision": revision},
                         "ownerReferences": [{"kind": "Deployment", "name": owner, "controller": True}]},
            "spec": {"template": {"spec": {"serviceAccountName": service_account}}}}


def test_a_deployment_whose_earlier_replicaset_ran_under_the_service_account_is_an_error_naming_it() -> None:
    """kubectl set serviceaccount deployment/backend default (or a chart rendered without the name, or a rollout
    undo to such a revision): the app's pods run labelled with no AZURE_CLIENT_ID, and its old ReplicaSets still
    hold the templates that ran under backend-sa. That proves the Deployment is the workload's: an error naming
    the latest such revision, not a guess left to the owner. Another Deployment's ReplicaSet, or one that ran
    under another ServiceAccount, proves nothing (a warning, as before); a refused list too."""
    stray = workload_pod(name="backend-9c2d-x", client_id=None)
    stray["spec"]["serviceAccountName"] = "default"
    kube = ListingKube([stray])
    kube.controllers = [replica_set("backend-5d8f", "1", "backend-sa"), replica_set("backend-6e1a", "3", "backend-sa"),
                        replica_set("backend-9c2d", "4", "default"), replica_set("batch-1a2b", "7", "backend-sa",
                                                                                 owner="batch")]
    ctx = context([])
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert ctx.facts.live_pods.moved_off == {"Deployment/backend": "ReplicaSet backend-6e1a (revision 3)"}
    outcome = live_pods(ctx)
    (finding,) = outcome.findings
    assert outcome.status == FAIL and finding.severity == "error"
    assert finding.message.endswith("; Deployment/backend ran under backend-sa before (ReplicaSet backend-6e1a "
                                    "(revision 3)): its pod template was moved off the workload's ServiceAccount")
    assert ("kubectl patch deployment/backend -n finance --type merge -p "
            """'{"spec":{"template":{"spec":{"serviceAccountName":"backend-sa"}}}}'""") in finding.fix_lines()
    kube.controllers = [replica_set("backend-9c2d", "4", "default"), replica_set("batch-1a2b", "7", "backend-sa",
                                                                                owner="batch")]
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert live_pods(ctx).status == WARN

    class Refused(ListingKube):
        def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                            field_selector: str = "") -> list[dict[str, Any]]:
            if plural == "replicasets":
                raise KubeError(KubeFailure(403, "Forbidden", "replicasets.apps is forbidden"))
            return super().list_namespaced(group, version, plural, namespace, field_selector)

    ctx.facts.live_pods = collect_live_pods(Refused([stray]), "finance", "backend-sa")  # type: ignore[arg-type]
    assert live_pods(ctx).status == WARN


def test_the_probe_view_of_pod_still_restarts_the_given_pods_own_controller() -> None:
    """--pod judges the later links over the probe pod (WorkloadContext.with_pod); a fix printed there (the probe
    not mutated, the exchange refused) restarts the given pod's Deployment, not a ``<deployment>``."""
    ctx = context(None)
    pod = {"metadata": {"name": "backend-7d9f-x", "namespace": "finance", "labels": {"pod-template-hash": "7d9f"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}]}}
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-x", existing=True, created=True, pod=pod)
    probe = PodFacts("finance", "wi-probe-backend-sa-1", created=True, pod=workload_pod(name="wi-probe-backend-sa-1"))
    ctx.facts.probe_pod = probe
    view = ctx.with_pod(probe)
    assert view.facts.pod is probe
    assert [line.split("#")[0].strip() for line in render_all(restart_workload(view))] == [
        "kubectl rollout restart deployment/backend -n finance"]


@pytest.mark.parametrize(("references", "labels", "expected"), [
    ([{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}], {"pod-template-hash": "7d9f"},
     ["kubectl patch deployment/backend -n finance --type merge -p "
      "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'"]),
    ([{"kind": "Job", "name": "nightly", "controller": True}], {},
     ["# a Job's pod template cannot be changed: add the label azure.workload.identity/use: \"true\" to the pod "
      "template in Job/nightly's manifest (or its CronJob's jobTemplate), then delete the Job and create it again"]),
    ([], {}, ["kubectl label pod -n finance p azure.workload.identity/use=true --overwrite",
              "kubectl get pod -n finance p -o yaml | kubectl replace --force -f -   # the same pod created again, "
              "which the webhook then sees (it acts on pod CREATE only)"]),
])
def test_with_pod_an_unlabelled_pod_is_labelled_where_it_comes_from(references: list, labels: dict,
                                                                    expected: list[str]) -> None:
    """--pod of a pod without the use label: POD_NOT_LABELLED (and POD_NOT_MUTATED, whose only reason it is) put
    the label on the pod's own controller's template, never a ``kubectl patch deployment '<deployment>'`` (nor a
    reinstall of a webhook that is there) for a Job's or a bare pod."""
    ctx = context(None)
    ctx.cluster.webhook_configurations = [{"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"}}]
    pod = {"metadata": {"name": "p", "namespace": "finance", "ownerReferences": references, "labels": labels},
           "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
    ctx.facts.pod = PodFacts("finance", "p", existing=True, created=True, pod=pod)
    (labelled,) = pod_labelled(ctx).findings
    (mutated,) = pod_mutated(ctx).findings
    assert (labelled.code, mutated.code) == ("POD_NOT_LABELLED", "POD_NOT_MUTATED")
    assert labelled.fix_lines() == expected and mutated.fix_lines() == expected


def test_with_pod_a_use_label_written_as_an_annotation_is_named_there() -> None:
    """By hand in the lab: the template's use label moved to its annotations (kubectl patch --type json). --workload
    said 'it sits as an annotation of the pod'; --pod said only 'absent' and '(it belongs on the pod TEMPLATE, not
    on the Deployment ...)'. --pod now says where it sits too, and that it is a label; the fix is the same patch."""
    ctx = context(None, sa_labels={"azure.workload.identity/use": "true"})
    pod = workload_pod(labelled=False, mutated=False, annotations={"azure.workload.identity/use": "true"})
    ctx.facts.pod = PodFacts("finance", "p", existing=True, created=True, pod=pod)
    outcome = pod_labelled(ctx)
    assert outcome.message == ("the pod's azure.workload.identity/use label is absent; it sits as an annotation of the "
                               "pod and on the ServiceAccount: the webhook never sees it")
    (finding,) = outcome.findings
    assert finding.message.endswith("(it belongs on the pod TEMPLATE, as a label, not on the Deployment, the "
                                    "ServiceAccount or a Service; it sits as an annotation of the pod and on the "
                                    "ServiceAccount)")


def test_with_pod_a_bare_pods_wrong_or_missing_label_is_named_on_the_pod_not_a_template() -> None:
    """By hand in the lab: kubectl run debug --labels=azure.workload.identity/use=yes (a bare pod): the finding
    said 'pod lacks ...: "true" (it belongs on the pod TEMPLATE, as a label, not on the Deployment ...)', for a
    pod that has the label (with 'yes') and no Deployment. It now names the value; a bare pod without it is told
    its own metadata.labels."""
    pod = {"metadata": {"name": "debug", "namespace": "finance", "labels": {"azure.workload.identity/use": "yes"}},
           "spec": {"containers": [{"name": "debug", "image": "busybox"}]}}
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "debug", existing=True, created=True, pod=pod)
    (finding,) = pod_labelled(ctx).findings
    assert finding.message == ('pod lacks azure.workload.identity/use: "true" (its label is \'yes\': only the exact '
                               'value "true" selects the pod)')
    pod["metadata"]["labels"] = {}
    (finding,) = pod_labelled(ctx).findings
    assert finding.message == ('pod lacks azure.workload.identity/use: "true" (it belongs in the pod\'s own '
                               "metadata.labels)")


def test_a_statefulset_whose_pod_is_refused_is_named_from_its_failedcreate_event() -> None:
    """A StatefulSet (or DaemonSet, Job) records a refused create only as a FailedCreate event on itself (no
    ReplicaFailure condition): with fewer pods than it wants, its latest such event is read, the controller's
    prefix dropped, and the refusal judged as a Deployment's is (here Pod Security: a warning naming it)."""
    sts = {"plural": "statefulsets", "metadata": {"name": "ledger", "namespace": "finance", "uid": "u-1"},
           "spec": {"replicas": 2, "template": {"spec": {"serviceAccountName": "backend-sa"}}}, "status": {}}
    pod = workload_pod(name="ledger-0")
    pod["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "ledger", "uid": "u-1", "controller": True}]
    kube = ListingKube([pod])
    kube.controllers = [sts]
    kube.events = [
        {"involvedObject": {"kind": "StatefulSet", "uid": "u-1"}, "lastTimestamp": "2026-01-01T00:00:01Z",
         "message": f"create Pod ledger-1 in StatefulSet ledger failed error: {PSA}"},
        {"involvedObject": {"kind": "StatefulSet", "uid": "u-1"}, "lastTimestamp": "2026-01-01T00:00:00Z",
         "message": "create Pod ledger-1 in StatefulSet ledger failed error: an older refusal"},
    ]
    facts = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert [(r.kind, r.name, r.message) for r in facts.refused] == [("StatefulSet", "ledger", PSA)]
    sts["spec"]["replicas"] = 1  # all its pods made: an old event is history
    assert collect_live_pods(kube, "finance", "backend-sa").refused == []  # type: ignore[arg-type]


SKIP = "azure.workload.identity/skip-containers"
UNSKIP = ("kubectl patch deployment/backend -n finance --type json -p "
          "'[{\"op\":\"remove\",\"path\":\"/spec/template/metadata/annotations/azure.workload.identity~1skip-containers\"}]'")


def all_skipped_pod() -> dict[str, Any]:
    """``skip-containers`` naming the app's only container: the webhook adds the token volume, no env or mount."""
    pod = workload_pod(annotations={SKIP: " app "})
    pod["spec"]["containers"][0]["env"] = []
    return pod


def test_every_container_skipped_is_an_error_and_the_printed_patch_removes_the_annotation() -> None:
    """skip-containers naming the container the app runs in (its only one): labelled, the token volume there, but
    nothing in the pod can use the identity. It passed (a warning); now an error, fixed on the template."""
    outcome = live_pods(context([live(all_skipped_pod(), deployment())]))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert (finding.code, finding.severity) == ("POD_CONTAINER_SKIPPED", "error")
    assert "every container of the pod (app)" in finding.message
    assert finding.fix_lines() == [UNSKIP]


def test_every_container_skipped_given_with_pod_names_the_annotation_not_a_webhook_reinstall() -> None:
    """--pod on that pod: it printed "only partly mutated" with az aks update --enable-workload-identity and a
    restart, neither of which repairs it."""
    ctx = context(None)
    ctx.cluster.webhook_configurations = [{"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"}}]
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=all_skipped_pod())
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert (finding.code, finding.severity) == ("POD_CONTAINER_SKIPPED", "error")
    assert finding.fix_lines() == [UNSKIP]


def test_a_skipped_init_container_is_a_warning_too() -> None:
    """The webhook skips the init containers skip-containers names as well (a migration run as an init container
    gets no identity); the app container still gets it."""
    pod = workload_pod(annotations={SKIP: "migrate"})
    pod["spec"]["initContainers"] = [{"name": "migrate"}]
    outcome = live_pods(context([live(pod)]))
    assert outcome.status == WARN
    assert [f.code for f in outcome.findings] == ["POD_CONTAINER_SKIPPED"]
    assert "init container migrate" in outcome.findings[0].message


def test_a_pod_labelled_by_hand_is_fixed_on_its_template_not_by_a_restart() -> None:
    """``kubectl label pod X azure.workload.identity/use=true`` on a running pod whose Deployment's template lacks
    the label: unmutated (the webhook acts on CREATE only). The restart it printed made unlabelled pods again; the
    label on the template rolls pods the webhook sees."""
    outcome = live_pods(context([live(workload_pod(mutated=False), deployment())]))
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_MUTATED" and "labelled by hand" in finding.message
    assert finding.fix_lines() == [
        "kubectl patch deployment/backend -n finance --type merge -p "
        "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'"]
    labelled_template = deployment()
    labelled_template["spec"]["template"]["metadata"]["labels"] = {USE: "true"}
    outcome = live_pods(context([live(workload_pod(mutated=False), labelled_template)]))
    assert outcome.findings[0].fix_lines()[-1].startswith("kubectl rollout restart deployment/backend -n finance")


def test_with_pod_a_pod_the_working_webhook_never_mutated_gets_the_template_label_and_a_restart() -> None:
    """--pod on a labelled, unmutated pod while the probe pod under its ServiceAccount was mutated: the webhook
    works; it was az aks update --enable-workload-identity and a restart (which, for a pod labelled by hand, makes
    unlabelled pods). Now the template label (a no-op when there) and the restart."""
    ctx = context(None)
    ctx.cluster.webhook_configurations = [{"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"}}]
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True,
                             pod=workload_pod(mutated=False))
    ctx.facts.probe_pod = PodFacts("finance", "wi-probe", created=True, pod=workload_pod(name="wi-probe"))
    (finding,) = pod_mutated(ctx).findings
    assert finding.code == "POD_NOT_MUTATED" and "kubectl label pod" in finding.message
    lines = [line.split("#")[0].strip() for line in finding.fix_lines() if not line.startswith("#")]
    assert lines == [
        "kubectl patch deployment/backend -n finance --type merge -p "
        "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'",
        "kubectl rollout restart deployment/backend -n finance"]
    assert not any(line.startswith("az ") for line in lines)


def test_a_webhook_down_under_failure_policy_ignore_is_named_and_brought_back_before_the_restart() -> None:
    """failurePolicy Ignore and the webhook's Deployment scaled to 0: the probe pod is admitted unmutated. It said
    "was it created before the webhook was ready...?" and printed az aks update; now the cause, the scale back
    up, then the restart."""
    ctx = context(None)
    ctx.cluster.webhook_configurations = [{"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"},
                                           "webhooks": [{"name": "mutation.azure-workload-identity.io",
                                                         "failurePolicy": "Ignore"}]}]
    ctx.cluster.webhook_deployments = [{"metadata": {"name": "azure-wi-webhook-controller-manager",
                                                     "namespace": "kube-system"},
                                        "spec": {"replicas": 0}, "status": {}}]
    ctx.facts.pod = PodFacts("finance", "wi-probe", created=True, pod=workload_pod(name="wi-probe", mutated=False))
    (finding,) = pod_mutated(ctx).findings
    assert finding.code == "POD_NOT_MUTATED" and "failurePolicy is Ignore" in finding.message
    lines = [line.split("#")[0].strip() for line in finding.fix_lines()]
    assert lines[0] == "kubectl -n kube-system scale deployment/azure-wi-webhook-controller-manager --replicas=2"
    assert not any(line.startswith("az ") for line in lines)


PROXY_PSA = ('pods "backend-x" is forbidden: violates PodSecurity "restricted:latest": privileged (container '
             '"azwi-proxy-init" must not set securityContext.privileged=true), unrestricted capabilities (container '
             '"azwi-proxy-init" must not include "NET_ADMIN" in securityContext.capabilities.add)')


@pytest.mark.parametrize("value", ["true", "false"])
def test_pod_security_refusing_the_injected_migration_proxy_is_workload_identitys_and_the_annotation_goes(
    value: str
) -> None:
    """inject-proxy-sidecar on the template (``"false"`` too: the webhook reads the key's presence only): the
    webhook injects azwi-proxy-init (privileged, root, NET_ADMIN), which a restricted namespace refuses. It was a
    warning "not for Workload ID" telling the owner to give the template what the refusal names (which no
    template can: the webhook sets it); now an error whose fix removes the annotation."""
    annotations = {"azure.workload.identity/inject-proxy-sidecar": value}
    outcome = live_pods(context_with_failing_deployment("backend", "backend-sa", PROXY_PSA, annotations))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_ADMITTED" and "migration proxy" in finding.message
    assert ('"false" injects too' in finding.message) == (value == "false")
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type json -p "
        """'[{"op":"remove","path":"/spec/template/metadata/annotations/"""
        """azure.workload.identity~1inject-proxy-sidecar"}]'""")
    # the same refusal without the annotation (the app's own privileged container of that name) stays another's
    assert live_pods(context_with_failing_deployment("backend", "backend-sa", PROXY_PSA)).status == WARN


def test_a_client_id_the_template_takes_from_a_secret_is_a_conflict_not_a_stale_pod() -> None:
    """``kubectl set env deployment/backend --from=secret/app-ids``: AZURE_CLIENT_ID with valueFrom. The webhook
    keys on the name (addEnvironmentVariables), so it injects none and the pod spec shows no value: it was called
    stale ("created before the ServiceAccount was annotated") and a restart printed, which changes nothing."""
    preset = {"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "app-ids", "key": "AZURE_CLIENT_ID"}}}
    pod = workload_pod(client_id=None)
    pod["spec"]["containers"][0]["env"].insert(0, preset)
    outcome = live_pods(context([live(pod, deployment(template_env=[preset]))]))
    (finding,) = outcome.findings
    assert finding.code == "POD_ENV_CONFLICT" and "from secret app-ids key AZURE_CLIENT_ID" in finding.message
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_CLIENT_ID-"]


def test_a_deployment_whose_template_now_names_a_missing_service_account_fails_and_is_patched_back() -> None:
    """kubectl patch of backend's template to serviceAccountName backend-sa2 (a typo): the ServiceAccount admission
    plugin refuses every new pod; the old pod runs on under backend-sa, so the run passed ('nothing wrong with the
    live pod'), the Deployment's template matching no ServiceAccount the collector looked for. Now the Deployment
    that owns the live pod is read for its refusal, and the patch back to backend-sa is printed."""
    refusal = ('pods "backend-x-" is forbidden: error looking up service account finance/backend-sa2: '
               'serviceaccount "backend-sa2" not found')
    moved = failing_deployment("backend", "backend-sa2", refusal)
    live_pod = workload_pod()
    kube = ListingKube([live_pod], [moved])
    facts = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert [(r.kind, r.name) for r in facts.refused] == [("Deployment", "backend")]
    ctx = context([])
    ctx.facts.live_pods = facts
    outcome = live_pods(ctx)
    assert outcome.status == FAIL
    (finding,) = [f for f in outcome.findings if f.code == "POD_WRONG_SERVICE_ACCOUNT"]
    assert finding.severity == "error" and "backend-sa2, which does not exist" in finding.message
    assert finding.fix_lines() == [
        "kubectl patch deployment/backend -n finance --type merge -p "
        "'{\"spec\":{\"template\":{\"spec\":{\"serviceAccountName\":\"backend-sa\"}}}}'"]


def test_a_proxy_the_webhook_cannot_inject_under_host_network_is_dropped_by_the_printed_patch() -> None:
    """inject-proxy-sidecar on a hostNetwork template: the webhook denies every pod ('hostNetwork is set to true,
    cannot inject proxy sidecar', #1090). It printed a describe and 'fix what the denial names'; now the patch that
    removes the annotation (the proxy is for old SDKs only), with the hostNetwork alternative as advice."""
    denial = ('admission webhook "mutation.azure-workload-identity.io" denied the request: hostNetwork is set to '
              "true, cannot inject proxy sidecar")
    ctx = context_with_failing_deployment("backend", "backend-sa", denial,
                                          {"azure.workload.identity/inject-proxy-sidecar": "true"})
    (finding,) = live_pods(ctx).findings
    assert finding.code == "POD_REJECTED_BY_WEBHOOK"
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type json -p "
        """'[{"op":"remove","path":"/spec/template/metadata/annotations/"""
        """azure.workload.identity~1inject-proxy-sidecar"}]'""")


def test_the_use_label_written_as_an_annotation_of_the_service_account_is_named() -> None:
    """kubectl annotate sa backend-sa azure.workload.identity/use=true (v0.x's webhook read it there; v1.x reads
    the pod's label only, reference azure-workload-identity.md 1.1): the finding said only 'absent'."""
    outcome = live_pods(context([live(workload_pod(labelled=False), deployment())], sa_annotations={
        "azure.workload.identity/client-id": CLIENT, USE: "true"}))
    assert "as an annotation of the ServiceAccount" in outcome.findings[0].message


def test_each_owner_whose_pods_lack_the_label_gets_its_own_fix_in_run_json() -> None:
    """Found by hand in the lab: a DaemonSet and a StatefulSet under the ServiceAccount, each labelled with kubectl
    label on its own metadata: the check named both, but run.json (and the view) kept one POD_NOT_LABELLED, the
    DaemonSet's, so pasting the printed fix left the StatefulSet failing the next run. The StatefulSet is read
    too (a list by name), the label's place named, and each owner's finding kept."""
    from harness.report.run_json import build_run

    labelled = {"azure.workload.identity/use": "true"}
    pods = []
    for kind, owner, name in (("DaemonSet", "agent", "agent-x7k2p"), ("StatefulSet", "ledger", "ledger-0")):
        pod = workload_pod(name, labelled=False, mutated=False)
        pod["metadata"]["ownerReferences"] = [{"kind": kind, "name": owner, "controller": True}]
        pods.append(pod)
    kube = ListingKube(pods)
    kube.controllers = [{"plural": plural, "metadata": {"name": name, "labels": labelled}, "spec": {}}
                        for plural, name in (("daemonsets", "agent"), ("statefulsets", "ledger"))]
    ctx = context(None)
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    outcome = live_pods(ctx)
    assert [f.code for f in outcome.findings] == ["POD_NOT_LABELLED", "POD_NOT_LABELLED"]
    assert "it sits on the StatefulSet's own metadata, not its pod template" in outcome.findings[1].message
    payload = {"scope": "workload", "order": 0, "target": {},
               "workload": {"id": "finance/backend-sa", "namespace": "finance", "service_account": "backend-sa",
                            "order": 0},
               "check": {"id": "workload.live_pods", "status": "fail", "message": "", "evidence": {}},
               "findings": [{**f.to_json(), "check": "workload.live_pods"} for f in outcome.findings * 2]}
    (workload,) = build_run("r", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", [payload], {})["workloads"]
    assert [f["remediation"][0].split(" -n ")[0] for f in workload["findings"]] == [
        "kubectl patch daemonset/agent", "kubectl patch statefulset/ledger"]


def test_a_jobs_pod_with_a_stale_client_id_is_deleted_for_its_job_to_make_again() -> None:
    """By hand in the lab: the ServiceAccount annotated again while a CronJob's Job ran: the fix deleted the pod
    and said "recreate the pods from their manifest", while the Job controller makes it again (it did; the next
    run passed)."""
    pod = workload_pod("nightly-wi2-hcrv2", client_id="00000000-0000-0000-0000-000000000001")
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "nightly-wi2", "controller": True}]
    job = {"metadata": {"name": "nightly-wi2"}, "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}
    (finding,) = live_pods(context([LivePod(pod, "Job", "nightly-wi2", job)])).findings
    assert finding.code == "POD_STALE_CLIENT_ID"
    assert finding.fix_lines() == [
        "kubectl delete pod -n finance nightly-wi2-hcrv2",
        "# Job/nightly-wi2 makes the deleted pods again (while it has not completed); the webhook acts on pod CREATE "
        "only"]


class _NoDeploymentGet(ListingKube):
    """manifests/harness-rbac.yaml.j2 grants deployments list cluster-wide, get in the webhook's namespace only."""

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        from harness.collect.kube_api import KubeError

        raise KubeError(KubeFailure(403, "Forbidden", f'deployments.apps "{name}" is forbidden'))


def test_under_the_least_privilege_role_a_stale_pod_is_stale_not_an_env_conflict() -> None:
    """The ServiceAccount annotated again (kubectl annotate --overwrite) while the pods ran: with the Deployment
    GET refused (harness-rbac grants list only), the pod's own env stood in for the template, and the client id
    the webhook had appended read as set by the container (POD_ENV_CONFLICT, kubectl set env AZURE_CLIENT_ID-).
    The Deployment is read by a list by name instead."""
    old = "00000000-0000-0000-0000-000000000001"
    kube = _NoDeploymentGet([workload_pod(client_id=old)])
    kube.controllers = [{"plural": "deployments", **deployment()}]
    ctx = context(None)
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert ctx.facts.live_pods.pods[0].owner is not None
    (finding,) = live_pods(ctx).findings
    assert finding.code == "POD_STALE_CLIENT_ID"
    assert finding.fix_lines() == ["kubectl rollout restart deployment/backend -n finance   # the webhook acts on "
                                   "pod CREATE only"]
    kube.controllers = []  # nothing read: the pod alone cannot tell the webhook's from the container's own
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    (conflict,) = live_pods(ctx).findings
    assert conflict.code == "POD_ENV_CONFLICT"  # whose fix (unset it, which rolls the pods) repairs either


def test_a_template_mounting_its_own_volume_where_the_webhook_mounts_the_token_fails() -> None:
    """By hand in the lab: a token volume projected by hand before Workload ID (an emptyDir here) mounted at
    /var/run/secrets/azure/tokens: the webhook appends its mount by name (addProjectedTokenVolumeMount), so the
    new ReplicaSet's pods are invalid (mountPath must be unique) while the old pods keep running, and the run
    PASSED. Removing the template's mount and volume (kubectl patch --type json), the next run passed."""
    refusal = ('Pod "backend-m8n2pvh6ss-gbjf6" is invalid: spec.containers[0].volumeMounts[2].mountPath: Invalid '
               'value: "/var/run/secrets/azure/tokens": must be unique')
    outcome = live_pods(context_with_failing_deployment("backend", "backend-sa", refusal))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_ADMITTED"
    assert "mounts a volume of its own at /var/run/secrets/azure/tokens, where the webhook mounts its token" \
        in finding.message
    assert finding.evidence["mount_path"] == "/var/run/secrets/azure/tokens"
    assert finding.fix_lines()[0] == ("kubectl get deployment/backend -n finance -o "
                                      "'jsonpath={.spec.template.spec.containers[*].volumeMounts}'")
    other = refusal.replace("/var/run/secrets/azure/tokens", "/data")  # not the webhook's: not this finding
    assert all(f.evidence.get("mount_path") is None
               for f in live_pods(context_with_failing_deployment("backend", "backend-sa", other)).findings)


def test_a_bare_replicasets_unlabelled_template_is_patched_and_its_pods_deleted() -> None:
    """By hand in the lab: a ReplicaSet applied on its own (no Deployment), its template unlabelled: the fix was a
    comment to add the label and kubectl delete pod, which made another unlabelled pod. Its template is patched
    (a ReplicaSet's template changes only the pods it makes next), then the pod deleted; pasted, the next run
    passed."""
    pod = workload_pod("worker-57vq8", labelled=False, mutated=False)
    pod["metadata"]["labels"] = {"app": "worker"}
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "worker", "controller": True}]
    (finding,) = live_pods(context([LivePod(pod, "ReplicaSet", "worker")])).findings
    assert finding.code == "POD_NOT_LABELLED"
    assert finding.fix_lines() == [
        "kubectl patch replicaset/worker -n finance --type merge -p "
        "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'",
        "kubectl delete pod -n finance worker-57vq8",
        "# ReplicaSet/worker makes the deleted pods again; the webhook acts on pod CREATE only"]


def test_a_proxy_port_that_is_no_number_is_removed_not_the_proxy() -> None:
    """By hand in the lab: inject-proxy-sidecar "true" with proxy-sidecar-port "8080a" on backend's template: the
    webhook denies every pod ('failed to parse proxy sidecar port'), and the fix removed inject-proxy-sidecar, the
    proxy the app asked for. It removes the port now (the proxy listens on 8000; azwi-proxy-init redirects IMDS
    traffic to it whatever it is); pasted as printed, the refusal was gone. A valid token expiration beside it
    stays (the denial's ParseInt is the port's)."""
    denial = ('admission webhook "mutation.azure-workload-identity.io" denied the request: failed to parse proxy '
              'sidecar port: strconv.ParseInt: parsing "8080a": invalid syntax')
    annotations = {"azure.workload.identity/inject-proxy-sidecar": "true",
                   "azure.workload.identity/proxy-sidecar-port": "8080a",
                   "azure.workload.identity/service-account-token-expiration": "7200"}
    (finding,) = live_pods(context_with_failing_deployment("backend", "backend-sa", denial, annotations)).findings
    assert finding.code == "POD_REJECTED_BY_WEBHOOK"
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type json -p "
        """'[{"op":"remove","path":"/spec/template/metadata/annotations/azure.workload.identity~1proxy-sidecar-port"}]'""")


def test_a_proxy_port_out_of_range_the_api_server_refuses_after_the_webhook_is_named_and_removed() -> None:
    """By hand in the lab: inject-proxy-sidecar "true" with proxy-sidecar-port "70000" on a Deployment's template:
    the webhook parses any int32 and makes it azwi-proxy's containerPort, and the API server refuses the mutated
    pod (422 ...containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive). The run passed with
    a warning ("for a reason the harness does not name"): none of the template's pods ran. It names the port and
    removes it now (the proxy listens on 8000); pasted as printed, the Deployment rolled out. Port 0 is "Required
    value"; a refusal over another container's port is not the proxy's."""
    annotations = {"azure.workload.identity/inject-proxy-sidecar": "true",
                   "azure.workload.identity/proxy-sidecar-port": "70000"}
    refusal = ('Pod "backend-7d9f-abcde" is invalid: spec.initContainers[0].ports[0].containerPort: Invalid value: '
               "70000: must be between 1 and 65535, inclusive")
    outcome = live_pods(context_with_failing_deployment("backend", "backend-sa", refusal, annotations))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_ADMITTED" and finding.severity == "error"
    assert ("azure.workload.identity/proxy-sidecar-port=70000 on the pod template is no port (1-65535), and the "
            "webhook makes it the migration proxy's containerPort") in finding.message
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type json -p "
        """'[{"op":"remove","path":"/spec/template/metadata/annotations/azure.workload.identity~1proxy-sidecar-port"}]'""")
    zero = {**annotations, "azure.workload.identity/proxy-sidecar-port": "0"}
    required = 'Pod "backend-7d9f-abcde" is invalid: spec.containers[0].ports[0].containerPort: Required value'
    (finding,) = live_pods(context_with_failing_deployment("backend", "backend-sa", required, zero)).findings
    assert finding.code == "POD_NOT_ADMITTED" and "proxy-sidecar-port=0" in finding.message
    own = {**annotations, "azure.workload.identity/proxy-sidecar-port": "8080"}
    (finding,) = live_pods(context_with_failing_deployment("backend", "backend-sa", refusal, own)).findings
    assert finding.severity == "warning" and "proxy-sidecar-port" not in finding.message


def _with_init(pod: dict[str, Any], env: list[dict[str, str]], app_env: list[dict[str, str]] | None = None
               ) -> dict[str, Any]:
    """``pod`` with an init container fetch-secrets mutated as the webhook does (its own ``env`` kept first), the
    token mounted in both, and the app's env given its own ``app_env`` first."""
    token = {"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens", "readOnly": True}
    app = pod["spec"]["containers"][0]
    injected = [{**e, "value": "/var/run/secrets/azure/tokens/azure-identity-token"}
                if e["name"] == "AZURE_FEDERATED_TOKEN_FILE" else e for e in app["env"]]
    app["env"], app["volumeMounts"] = [*(app_env or []), *injected], [token]
    named = {e["name"] for e in env}
    pod["spec"]["initContainers"] = [{"name": "fetch-secrets", "volumeMounts": [token],
                                      "env": [*env, *(e for e in injected if e["name"] not in named)]}]
    return pod


def test_an_init_container_that_sets_an_azure_variable_itself_is_a_conflict_for_pod_and_workload() -> None:
    """By hand in the lab: an init container (fetch-secrets, which reads Key Vault before the app starts) setting
    AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/tokens/azure-identity-token itself: the webhook mutates init
    containers too and never overwrites a variable one names, so its SDK reads a file that is not there. Both
    --workload (live_pods looked at app containers only) and --pod (pod.mutated judges the first mutated app
    container) passed; so did --pod for a pod whose second app container (worker) sets its own AZURE_CLIENT_ID,
    which --workload called POD_ENV_CONFLICT. Both say POD_ENV_CONFLICT now, naming the container, with the
    template's variable unset (kubectl set env unsets it in init containers too); pasted, the next run passed."""
    from harness.checks.workload import existing_pod_mutated
    preset = [{"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/tokens/azure-identity-token"}]
    template = deployment()
    template["spec"]["template"]["spec"]["initContainers"] = [{"name": "fetch-secrets", "env": preset}]
    pod = _with_init(workload_pod(), preset)
    outcome = live_pods(context([live(pod, template)]))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_ENV_CONFLICT"
    assert ("init container fetch-secrets sets AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/tokens/azure-identity-"
            "token itself, but its projected token is /var/run/secrets/azure/tokens/azure-identity-token") in finding.message
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_FEDERATED_TOKEN_FILE-"]
    client = [{"name": "AZURE_CLIENT_ID", "value": OLD_CLIENT}]  # preset in the init container's template: not stale
    template["spec"]["template"]["spec"]["initContainers"][0]["env"] = client
    (finding,) = live_pods(context([live(_with_init(workload_pod(), client), template)])).findings
    assert finding.code == "POD_ENV_CONFLICT" and "init container fetch-secrets sets AZURE_CLIENT_ID=" in finding.message

    def given(pod: dict[str, Any]) -> WorkloadContext:
        ctx = context(None)
        ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=pod)
        return ctx

    outcome = existing_pod_mutated(given(_with_init(workload_pod(), preset)))
    assert outcome.status == FAIL, outcome.message
    assert "; yet init container fetch-secrets sets AZURE_FEDERATED_TOKEN_FILE=" in outcome.message
    (finding,) = outcome.findings
    assert finding.code == "POD_ENV_CONFLICT"
    worker = _with_init(workload_pod(), [])
    worker["spec"]["containers"].append({"name": "worker", "volumeMounts": [], "env": [
        {"name": "AZURE_CLIENT_ID", "value": OLD_CLIENT}, *worker["spec"]["containers"][0]["env"][1:]]})
    outcome = existing_pod_mutated(given(worker))
    assert outcome.status == FAIL and f"container worker sets AZURE_CLIENT_ID={OLD_CLIENT} itself" in outcome.message
    assert existing_pod_mutated(given(_with_init(workload_pod(), []))).status == PASS


def test_an_on_delete_statefulsets_pods_are_deleted_where_a_rollout_restart_replaces_none() -> None:
    """By hand in the lab: a StatefulSet with updateStrategy OnDelete whose pod predates the ServiceAccount's new
    client id: the fix was kubectl rollout restart statefulset/ledger, which changes its template and replaces no
    pod under OnDelete (the next run failed the same). Its pods are deleted now (the controller makes them again
    from the template); pasted as printed, the next run passed. A template patch (the use label) is followed by
    the same deletes."""
    on_delete = {"metadata": {"name": "ledger", "labels": {}},
                 "spec": {"updateStrategy": {"type": "OnDelete"},
                          "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "app"}]}}}}
    stale = workload_pod("ledger-0", client_id="00000000-0000-0000-0000-000000000001")
    stale["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "ledger", "controller": True}]
    (finding,) = live_pods(context([LivePod(stale, "StatefulSet", "ledger", on_delete)])).findings
    assert finding.code == "POD_STALE_CLIENT_ID"
    assert finding.fix_lines()[0] == "kubectl delete pod -n finance ledger-0"
    assert "updateStrategy OnDelete" in finding.fix_lines()[1]
    unlabelled = workload_pod("ledger-0", labelled=False, mutated=False)
    unlabelled["metadata"]["ownerReferences"] = stale["metadata"]["ownerReferences"]
    (finding,) = live_pods(context([LivePod(unlabelled, "StatefulSet", "ledger", on_delete)])).findings
    assert [line.split(" -p ")[0] for line in finding.fix_lines()[:2]] == [
        "kubectl patch statefulset/ledger -n finance --type merge", "kubectl delete pod -n finance ledger-0"]


def _labelled_template(kind_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}},
            "spec": {**kind_spec, "template": {"metadata": {"labels": {USE: "true"}},
                                               "spec": {"containers": [{"name": "app"}]}}}}


def _sts_pod(name: str, **kwargs: Any) -> dict[str, Any]:
    pod = workload_pod(name, **kwargs)
    pod["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "ledger", "controller": True}]
    return pod


def test_a_partitioned_statefulsets_old_pods_are_named_with_the_partition_and_the_patch_that_lowers_it() -> None:
    """By hand in the lab: StatefulSet ledger (3 replicas, rollingUpdate.partition 2) labelled on its template
    after its pods were made: ledger-2 was replaced, ledger-0 and ledger-1 kept the old template, and the fix
    printed was the template patch the StatefulSet already carried. The partition is now the reason named, and
    the fix lowers it (deleting them would make them again from the earlier template: kubernetes.io StatefulSet
    'Partitioned rolling updates'); pasted as printed, ledger-0 and ledger-1 were made again, labelled."""
    ledger = _labelled_template({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
                                "ledger")
    pods = [LivePod(_sts_pod(f"ledger-{n}", labelled=False, mutated=False), "StatefulSet", "ledger", ledger)
            for n in (0, 1)]
    outcome = live_pods(context(pods))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_LABELLED"
    assert finding.message.endswith(
        "StatefulSet/ledger's pod template carries it: the pod was made from an earlier template and its ordinal is "
        "below StatefulSet/ledger's rollingUpdate.partition 2: a template change does not reach it, and deleted it "
        "is made again from the earlier template, until the partition is lowered")
    assert finding.fix_lines()[0] == ("kubectl patch statefulset/ledger -n finance --type merge -p "
                                      """'{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}'""")
    assert "(ledger-0, ledger-1) keep the earlier template, even deleted" in finding.fix_lines()[1]
    assert not any("template" in line and "labels" in line for line in finding.fix_lines())
    # a pod at or above the partition is not held back by it: its rollout has not replaced it yet
    (finding,) = live_pods(context([LivePod(_sts_pod("ledger-2", labelled=False, mutated=False), "StatefulSet",
                                            "ledger", ledger)])).findings
    assert "its rollout has not replaced it yet" in finding.message
    assert finding.fix_lines() == ["kubectl rollout status statefulset/ledger -n finance --timeout=120s"]
    # the template not labelled: the label patched in, then the partition lowered
    unlabelled = {**ledger, "spec": {**ledger["spec"], "template": {"metadata": {"labels": {}}, "spec": {}}}}
    (finding,) = live_pods(context([LivePod(_sts_pod("ledger-0", labelled=False, mutated=False), "StatefulSet",
                                            "ledger", unlabelled)])).findings
    assert [line.split(" -p ")[1] for line in finding.fix_lines()[:2]] == [
        """'{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}'""",
        """'{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}'"""]
    # a restart (a client id the pod predates): below the partition rollout restart reaches nothing, the pods go
    stale = LivePod(_sts_pod("ledger-0", client_id=OLD_CLIENT), "StatefulSet", "ledger", ledger)
    (finding,) = live_pods(context([stale])).findings
    assert finding.code == "POD_STALE_CLIENT_ID"
    assert finding.fix_lines()[0] == "kubectl delete pod -n finance ledger-0"
    assert "rollingUpdate.partition 2" in finding.fix_lines()[1]
    assert render_all(restart_workload(context([stale])))[0] == "kubectl delete pod -n finance ledger-0"


def test_pod_option_on_a_pod_below_the_partition_names_the_partition_and_lowers_it() -> None:
    """--pod finance/ledger-0, its StatefulSet's template labelled but the pod below rollingUpdate.partition 2:
    pod.labelled said to put the label on the pod template (it is there) and patched it in again. Now it names
    the partition and the patch that lowers it."""
    ledger = _labelled_template({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
                                "ledger")
    pod = _sts_pod("ledger-0", labelled=False, mutated=False)
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "ledger-0", existing=True, created=True, pod=pod, owner=ledger)
    outcome = pod_labelled(ctx)
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.message == (
        'pod lacks azure.workload.identity/use: "true"; StatefulSet/ledger\'s pod template carries it: the pod was '
        "made from an earlier template and its ordinal is below StatefulSet/ledger's rollingUpdate.partition 2: a "
        "template change does not reach it, and deleted it is made again from the earlier template, until the "
        "partition is lowered")
    assert finding.fix_lines()[0] == ("kubectl patch statefulset/ledger -n finance --type merge -p "
                                      """'{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}'""")


def test_a_paused_deployments_old_pods_are_named_with_the_pause_and_resumed() -> None:
    """By hand in the lab: Deployment api paused (kubectl rollout pause), then its template labelled: its pods
    stayed unlabelled and the fix printed was the template patch it already carried; kubectl rollout restart
    refuses it ('can't restart paused deployment (run rollout resume first)', seen with the real kubectl). The
    pause is now the reason named, with kubectl rollout resume; a restart resumes it first."""
    paused_api = _labelled_template({"paused": True}, "backend")
    pod = workload_pod(labelled=False, mutated=False)
    (finding,) = live_pods(context([live(pod, paused_api)])).findings
    assert finding.code == "POD_NOT_LABELLED"
    assert ("the pod was made from an earlier template and Deployment/backend is paused (kubectl rollout pause): it "
            "makes no pod from a changed template, and kubectl rollout restart refuses it, until kubectl rollout "
            "resume") in finding.message
    assert finding.fix_lines()[0] == "kubectl rollout resume deployment/backend -n finance"
    stale = live(workload_pod(client_id=OLD_CLIENT), paused_api)
    (finding,) = live_pods(context([stale])).findings
    assert finding.code == "POD_STALE_CLIENT_ID"
    assert [" ".join(line.split()) for line in finding.fix_lines()[:2]] == [
        "kubectl rollout resume deployment/backend -n finance # a paused Deployment refuses kubectl rollout restart",
        "kubectl rollout restart deployment/backend -n finance # the webhook acts on pod CREATE only"]
    assert render_all(restart_workload(context([stale])))[0].startswith("kubectl rollout resume deployment/backend")
    # labelled, never mutated, under a paused Deployment: the pause is named beside the usual causes
    (finding,) = live_pods(context([live(workload_pod(mutated=False), paused_api)])).findings
    assert finding.code == "POD_NOT_MUTATED" and "Deployment/backend is paused" in finding.message
    assert finding.fix_lines()[1].startswith("kubectl rollout resume deployment/backend")
    # not paused: as before
    running = _labelled_template({}, "backend")
    (finding,) = live_pods(context([live(workload_pod(client_id=OLD_CLIENT), running)])).findings
    assert [" ".join(line.split()) for line in finding.fix_lines()] == [
        "kubectl rollout restart deployment/backend -n finance # the webhook acts on pod CREATE only"]


ISSUER_NOW = "https://westeurope.oic.prod-aks.azure.com/tenant/cluster-guid/"


def _stamp(moment: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _updated_cluster(updated: float, enabled: bool = True) -> Fetched:
    return Fetched("https://arm/cluster", 200, {
        "properties": {"oidcIssuerProfile": {"enabled": enabled, "issuerURL": ISSUER_NOW}},
        "systemData": {"createdAt": _stamp(updated - 86400), "lastModifiedAt": _stamp(updated)}})


def _federated_at(made: float, issuer: str = ISSUER_NOW) -> dict[str, Any]:
    return {"name": "backend-fic", "properties": {"issuer": issuer, "subject": "system:serviceaccount:finance:backend-sa",
                                                  "audiences": ["api://AzureADTokenExchange"]},
            "systemData": {"createdAt": _stamp(made), "lastModifiedAt": _stamp(made)}}


def test_a_pod_made_before_the_oidc_issuer_was_enabled_is_told_to_restart() -> None:
    """By hand in the lab: lab ctl cluster --oidc-issuer off, Deployment api made (its pods' tokens say iss
    https://<fqdn>), then az aks update --enable-oidc-issuer and the identity's federated credential made for the
    new issuer: the pods kept that token (read with kubectl exec) and --pod / --workload PASSED, the probe's fresh
    token being right. A mutated pod older than the managed cluster's last update (systemData.lastModifiedAt),
    while its token may predate it (80% of its lifetime), whose identity was first federated with the issuer after
    that update, is now a warning naming the restart; past that window, or a pod made after the update, passes as
    before."""
    now = time.time()
    stamp = _stamp
    updated = now - 600

    def run(made: float, at: float = now, enabled: bool = True, expiration: int = 3600) -> Any:
        pod = workload_pod()
        pod["metadata"]["creationTimestamp"] = stamp(made)
        pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] = expiration
        ctx = context([live(pod, deployment())])
        ctx.now = at
        ctx.cluster.arm_cluster = _updated_cluster(updated, enabled)
        ctx.facts.identity.federated_credentials = [_federated_at(updated + 120)]
        return live_pods(ctx)

    outcome = run(made=now - 3000)
    assert outcome.status == WARN
    (finding,) = outcome.findings
    assert finding.code == "POD_TOKEN_PREDATES_ISSUER" and finding.severity == "warning"
    assert finding.message == (
        f"Deployment/backend (backend-7d9f-abcde): the workload's pods may hold a token from an earlier issuer: the "
        f"pod was created {stamp(now - 3000)}, before the managed cluster's last update ({stamp(updated)}), and the "
        f"identity's first federated credential for the issuer was made after it ({stamp(updated + 120)}), as when "
        "the update enabled the issuer: if that update enabled or changed the cluster's OIDC issuer, the pod's "
        "projected token still carries the earlier iss and its exchange fails (AADSTS700211) until the kubelet "
        f"replaces it (3600 s lifetime: by {stamp(updated + 2880)} at the latest) or the pod is made again")
    assert [" ".join(line.split()) for line in finding.fix_lines()] == [
        "kubectl rollout restart deployment/backend -n finance # the webhook acts on pod CREATE only"]
    assert run(made=now - 300).status == PASS  # made after the update
    assert run(made=now - 3000, at=updated + 2881).status == PASS  # the kubelet has replaced the token since
    assert run(made=now - 3000, at=updated + 2881, expiration=86400).status == WARN  # a day's token: 80% of it
    assert run(made=now - 3000, enabled=False).status == PASS  # no issuer on: cluster.oidc_issuer_enabled says so
    # --pod (seen by hand: --pod finance/api-... PASSED): its pod.mutated says so beside the mutation
    from harness.checks.workload import existing_pod_mutated

    pod = workload_pod()
    pod["metadata"]["creationTimestamp"] = stamp(now - 3000)
    app = pod["spec"]["containers"][0]
    app["volumeMounts"] = [{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens",
                            "readOnly": True}]
    app["env"] = [{**e, "value": "/var/run/secrets/azure/tokens/azure-identity-token"}
                  if e["name"] == "AZURE_FEDERATED_TOKEN_FILE" else e for e in app["env"]]
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=pod)
    ctx.cluster.arm_cluster = _updated_cluster(updated)
    ctx.facts.identity.federated_credentials = [_federated_at(updated + 120)]
    outcome = existing_pod_mutated(ctx)
    assert outcome.status == WARN and outcome.message.startswith("mutated (v1.5 layout)")
    assert [f.code for f in outcome.findings] == ["POD_TOKEN_PREDATES_ISSUER"]
    assert outcome.findings[0].fix_lines()[0].startswith("kubectl rollout restart deployment/backend -n finance")
    pod["metadata"]["creationTimestamp"] = stamp(now - 60)
    assert existing_pod_mutated(ctx).status == PASS


def test_an_update_of_the_cluster_unrelated_to_its_issuer_is_no_warning() -> None:
    """az aks update --tags (or a node count, an upgrade, an autoscaler profile) stamps the managed cluster's
    systemData.lastModifiedAt like enabling the issuer does. Pods made before it, whose identity was federated
    with the cluster's issuer before they were made (an AKS issuer URL has a random per-cluster GUID and cannot
    exist before the issuer is enabled), or with nothing else to go on (no credential time: Microsoft Graph's; the
    credentials not readable) and running untroubled, pass."""
    now = time.time()
    updated = now - 600

    def run(credentials: list[dict[str, Any]] | None, status: dict[str, Any] | None = None) -> Any:
        pod = workload_pod()
        pod["metadata"]["creationTimestamp"] = _stamp(now - 3000)
        pod["status"] = status or {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": _stamp(now - 2990)}],
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": _stamp(now - 2995)}}}]}
        ctx = context([live(pod, deployment())])
        ctx.cluster.arm_cluster = _updated_cluster(updated)
        ctx.facts.identity.federated_credentials = credentials
        return live_pods(ctx)

    assert run([_federated_at(now - 86000)]).status == PASS  # federated long before the pod and the tags update
    assert run(None).status == PASS  # the credentials could not be read
    graph = {"name": "backend-fic", "issuer": ISSUER_NOW, "subject": "system:serviceaccount:finance:backend-sa",
             "audiences": ["api://AzureADTokenExchange"]}
    assert run([graph]).status == PASS  # an application's credentials carry no time
    # an older credential of another issuer (the cluster before it was made again) says nothing of this one
    assert run([_federated_at(now - 86000, "https://oidc.prod-aks.azure.com/other/")]).status == PASS
    # federated before the pod: the issuer was there when the pod got its token, whatever the pod shows since
    crashing = {"phase": "Running", "containerStatuses": [
        {"name": "app", "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": _stamp(now - 30)}}}]}
    assert run([_federated_at(now - 86000)], crashing).status == PASS


def test_pods_in_trouble_since_the_update_are_warned_without_a_credential_time() -> None:
    """Nothing tells when the issuer came (an application's credentials, or none readable), but the pods made
    before the update crash-loop, restarted or turned unready since it: the warning, naming what the pods show.
    Trouble that ended before the update says nothing of it, nor a crash loop whose last run ended before it."""
    now = time.time()
    updated = now - 600

    def run(status: dict[str, Any]) -> Any:
        pod = workload_pod()
        pod["metadata"]["creationTimestamp"] = _stamp(now - 3000)
        pod["status"] = {"phase": "Running", **status}
        ctx = context([live(pod, deployment())])
        ctx.cluster.arm_cluster = _updated_cluster(updated)
        return live_pods(ctx)

    crashing = run({"containerStatuses": [
        {"name": "app", "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": _stamp(now - 30)}}}]})
    assert crashing.status == WARN
    (finding,) = crashing.findings
    assert finding.code == "POD_TOKEN_PREDATES_ISSUER"
    assert f"({_stamp(updated)}), and its containers have been in CrashLoopBackOff (app) since:" in finding.message
    restarted = run({"containerStatuses": [
        {"name": "app", "restartCount": 2, "state": {"running": {"startedAt": _stamp(now - 100)}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": _stamp(now - 101)}}}]})
    assert "its containers have restarted (app: 2 restarts) since" in restarted.findings[0].message
    unready = run({"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": _stamp(now - 500)}]})
    assert "its containers have been unready since" in unready.findings[0].message
    before = run({"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": _stamp(now - 900)}],
                  "containerStatuses": [{"name": "app", "restartCount": 1, "state": {"running": {}},
                                         "lastState": {"terminated": {"finishedAt": _stamp(now - 2000)}}}]})
    assert before.status == PASS
    looped_before = run({"containerStatuses": [
        {"name": "app", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": _stamp(now - 700)}}}]})
    assert looped_before.status == PASS


def test_a_statefulset_rolled_onto_a_mistyped_service_account_is_found_under_the_one_it_left() -> None:
    """By hand in the lab: kubectl patch statefulset ledger serviceAccountName backend-sa-v2 (no such account):
    its rolling update deleted ledger-0, the new one is refused ('error looking up service account
    finance/backend-sa-v2'), and no live pod ties the StatefulSet to backend-sa any more: --workload
    finance/backend-sa PASSED. A template labelled for Workload ID naming a close name that does not exist is
    kept: POD_WRONG_SERVICE_ACCOUNT puts the name back; pasted as printed, ledger-0 ran and the next run passed.
    Another ServiceAccount's workload refused for another reason stays out."""
    refusal = ('pods "ledger-0" is forbidden: error looking up service account finance/backend-sa-v2: '
               'serviceaccount "backend-sa-v2" not found')
    sts = {"plural": "statefulsets", "metadata": {"name": "ledger", "namespace": "finance", "uid": "u-1"},
           "spec": {"replicas": 1, "template": {
               "metadata": {"labels": {"azure.workload.identity/use": "true"}},
               "spec": {"serviceAccountName": "backend-sa-v2"}}}, "status": {}}
    kube = refused_once(sts, "StatefulSet", f"create Pod ledger-0 in StatefulSet ledger failed error: {refusal}")
    ctx = context([])
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    (finding,) = live_pods(ctx).findings
    assert finding.code == "POD_WRONG_SERVICE_ACCOUNT"
    assert "none of its pods runs" in finding.message
    assert finding.fix_lines() == ["kubectl patch statefulset/ledger -n finance --type merge -p "
                                   """'{"spec":{"template":{"spec":{"serviceAccountName":"backend-sa"}}}}'"""]
    kube.events[0]["message"] = f"create Pod ledger-0 in StatefulSet ledger failed error: {PSA}"
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert live_pods(ctx).findings == []


def test_which_refused_controllers_are_the_workloads_is_judged_by_the_check_not_the_collector() -> None:
    """The collector keeps plain facts: every short controller whose template names the workload's
    ServiceAccount or asks for Workload ID, with the ServiceAccount it names; the closeness of a name is the
    check's judgement (meant_for), which keeps a far name out even when it does not exist, and takes a
    controller from an older run's facts (no ServiceAccount recorded) as the workload's."""
    from harness.checks.live_pods import meant_for
    from harness.facts import RefusedController

    def refused(named: str, message: str, owns: bool = False) -> RefusedController:
        return RefusedController("StatefulSet", "ledger", "FailedCreate", message, service_account=named,
                                 owns_workload_pods=owns)

    def missing(named: str) -> str:
        return (f'pods "ledger-0" is forbidden: error looking up service account finance/{named}: '
                f'serviceaccount "{named}" not found')

    assert meant_for(refused("backend-sa", PSA), "backend-sa")
    assert meant_for(refused("", PSA), "backend-sa")  # facts of an older run
    assert meant_for(refused("backend-sa-v2", missing("backend-sa-v2")), "backend-sa")
    assert not meant_for(refused("backend-sa-v2", PSA), "backend-sa")  # close, but refused for another reason
    assert not meant_for(refused("reporting", missing("reporting")), "backend-sa")  # another team's typo
    assert meant_for(refused("reporting", PSA, owns=True), "backend-sa")  # its live pods run under backend-sa
    sts = {"plural": "statefulsets", "metadata": {"name": "ledger", "namespace": "finance", "uid": "u-1"},
           "spec": {"replicas": 1, "template": {"metadata": {"labels": {"azure.workload.identity/use": "true"}},
                                                "spec": {"serviceAccountName": "reporting"}}}, "status": {}}
    kube = refused_once(sts, "StatefulSet", f"create Pod ledger-0 in StatefulSet ledger failed error: {PSA}")
    collected = collect_live_pods(kube, "finance", "backend-sa").refused  # type: ignore[arg-type]
    assert [(r.name, r.service_account, r.message) for r in collected] == [("ledger", "reporting", PSA)]
    sts["spec"]["template"]["metadata"]["labels"] = {}  # neither the workload's nor asking for Workload ID
    assert collect_live_pods(kube, "finance", "backend-sa").refused == []  # type: ignore[arg-type]


def test_a_cronjobs_job_refused_by_the_webhook_is_fixed_on_the_cronjob_not_the_job() -> None:
    """By hand in the lab: a CronJob whose jobTemplate's pod template carries service-account-token-expiration
    "100"; kubectl create job --from=cronjob/nightly: the webhook denies its pod (FailedCreate on the Job), and the
    fix was kubectl patch job/... removing the annotation, which a real API server refuses (a Job's spec.template
    is immutable, ValidateJobSpecUpdate). The CronJob's jobTemplate is patched and the Job deleted; pasted as
    printed (with kubectl create job --from), the next run passed. A Job of its own gets the manifest advice."""
    denial = ('admission webhook "mutation.azure-workload-identity.io" denied the request: token expiration 100 not '
              "valid. Expected value to be between 3600 and 86400")
    job = {"plural": "jobs", "metadata": {"name": "nightly-29410", "namespace": "finance", "uid": "u-9",
                                          "ownerReferences": [{"kind": "CronJob", "name": "nightly",
                                                               "controller": True}]},
           "spec": {"parallelism": 1, "template": {
               "metadata": {"annotations": {"azure.workload.identity/service-account-token-expiration": "100"}},
               "spec": {"serviceAccountName": "backend-sa"}}}, "status": {}}
    kube = refused_once(job, "Job", f"Error creating: {denial}")
    ctx = context([])
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    (finding,) = live_pods(ctx).findings
    assert finding.code == "POD_REJECTED_BY_WEBHOOK"
    assert finding.fix_lines()[:2] == [
        "kubectl patch cronjob/nightly -n finance --type json -p '[{\"op\":\"remove\",\"path\":\"/spec/jobTemplate/"
        "spec/template/metadata/annotations/azure.workload.identity~1service-account-token-expiration\"}]'",
        "kubectl delete job -n finance nightly-29410"]
    job["metadata"]["ownerReferences"] = []
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    (finding,) = live_pods(ctx).findings
    assert finding.fix_lines()[0].startswith("# a Job's pod template cannot be changed: remove ")


def test_pods_that_carry_the_identitys_client_id_are_not_stale_when_the_annotation_is_its_principal_id() -> None:
    """By hand in the lab (whole-cluster run, no harness.yaml workloads): billing-sa's annotation overwritten with
    its identity's principal (object) id while its pods ran with the right client id. workload.live_pods was the
    first broken link, POD_STALE_CLIENT_ID 'restart them': pasted, the restart hands every pod the principal id,
    which Entra refuses (AADSTS700016), an outage from a printed fix. The pods carrying the client id that
    principal id belongs to are not stale, nor are pods carrying any client id while the annotation names no
    identity (the look-up made in full); identity.matches fixes the annotation. An annotation that names a live
    identity still makes older pods stale; a refused look-up proves nothing."""
    principal, right = "17956034-dd1b-43e6-bebe-51e9bfbce260", "97b403de-0c47-425a-bb09-cb44b1b0ce50"
    ctx = context([live(workload_pod(client_id=right), deployment())], {"azure.workload.identity/client-id": principal})
    ctx.facts.identity = IdentityFacts(configured=True, principal_of={"kind": "managed_identity", "client_id": right,
                                                                      "name": "billingId"})
    outcome = live_pods(ctx)
    assert outcome.status == PASS and f"AZURE_CLIENT_ID is the identity's {right}, not the annotation's" in \
        outcome.message
    ctx.facts.identity = IdentityFacts(configured=True)  # looked up in full: the annotation names nothing
    outcome = live_pods(ctx)
    assert outcome.status == PASS and "AZURE_CLIENT_ID is an earlier one, not the annotation's" in outcome.message
    ctx.facts.identity = IdentityFacts(configured=True, refused=[Fetched("https://graph/x", 403)])
    assert [f.code for f in live_pods(ctx).findings] == ["POD_STALE_CLIENT_ID"]
    ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity")  # the annotation's identity exists
    (stale,) = live_pods(ctx).findings
    assert stale.code == "POD_STALE_CLIENT_ID" and stale.fix_lines()[0].startswith("kubectl rollout restart")


def test_pods_that_carry_the_client_id_of_the_same_named_app_that_trusts_the_account_are_not_stale() -> None:
    """By hand in the lab: two app registrations named web1-app, the ServiceAccount's annotation moved from the one
    with its federated credential (and role) to the other while Deployment/web ran. workload.live_pods (and --pod's
    pod.mutated) was the first broken link, POD_STALE_CLIENT_ID 'kubectl rollout restart deployment/web': pasted,
    it hands the pods the app Entra refuses (AADSTS70025), an outage from a printed fix. The pods carrying the
    client id of the same-named app that trusts the ServiceAccount are not stale: federation.credential moves the
    annotation back. If that app does not trust it, they are stale as before."""
    from harness.checks.workload import existing_pod_mutated
    issuer = "https://eastus.oic.prod-aks.azure.com/t/c/"
    trusting = {"application": {"id": "o-2", "appId": OLD_CLIENT, "displayName": "web-app"}, "federated_credentials": [
        {"name": "kube", "issuer": issuer, "subject": "system:serviceaccount:finance:backend-sa",
         "audiences": ["api://AzureADTokenExchange"]}]}
    ctx = context([live(workload_pod(client_id=OLD_CLIENT), deployment())])
    ctx.cluster.issuer_url = issuer
    ctx.facts.identity = IdentityFacts(configured=True, kind="application", federated_credentials=[],
                                       application={"id": "o-1", "appId": CLIENT, "displayName": "web-app"},
                                       namesakes=[trusting])
    outcome = live_pods(ctx)
    assert outcome.status == PASS and f"AZURE_CLIENT_ID is the identity's {OLD_CLIENT}" in outcome.message
    assert "federation.credential says what to annotate" in outcome.message
    pod = workload_pod(client_id=OLD_CLIENT)
    app = pod["spec"]["containers"][0]
    app["volumeMounts"] = [{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens",
                            "readOnly": True}]
    app["env"] = [{**e, "value": "/var/run/secrets/azure/tokens/azure-identity-token"}
                  if e["name"] == "AZURE_FEDERATED_TOKEN_FILE" else e for e in app["env"]]
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=pod)
    assert existing_pod_mutated(ctx).findings == []
    trusting["federated_credentials"][0]["subject"] = "system:serviceaccount:orders:orders-sa"
    assert [f.code for f in live_pods(ctx).findings] == ["POD_STALE_CLIENT_ID"]
    assert existing_pod_mutated(ctx).findings  # its AZURE_CLIENT_ID is not the annotation's (no template read here)


def test_a_container_presetting_two_variables_says_why_of_each_variable_it_unsets() -> None:
    """A template copied from another cloud sets AZURE_AUTHORITY_HOST and AZURE_FEDERATED_TOKEN_FILE: the fix unsets
    both, and the message names both (it named the first alone, leaving the second command unexplained)."""
    pod = workload_pod()
    app = pod["spec"]["containers"][0]
    app["volumeMounts"] = [{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens",
                            "readOnly": True}]
    for env in app["env"]:
        if env["name"] == "AZURE_FEDERATED_TOKEN_FILE":
            env["value"] = "/var/run/secrets/tokens/azure-identity-token"
        if env["name"] == "AZURE_AUTHORITY_HOST":
            env["value"] = "https://login.microsoftonline.us/"
    owner = deployment(template_env=[{"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/tokens/x"},
                                     {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.us/"}])
    ctx = context([live(pod, owner)])
    probe = workload_pod(name="wi-probe-backend-sa-1")
    probe["spec"]["containers"][0]["env"][3]["value"] = "https://127.0.0.1:8443/"  # what the webhook injects here
    ctx.facts.pod = PodFacts("finance", "wi-probe-backend-sa-1", created=True, pod=probe)
    outcome = live_pods(ctx)
    [finding] = outcome.findings
    assert finding.code == "POD_ENV_CONFLICT"
    assert "AZURE_AUTHORITY_HOST=https://login.microsoftonline.us/" in finding.message
    assert "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/tokens/azure-identity-token" in finding.message
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_AUTHORITY_HOST-",
                                   "kubectl set env deployment/backend -n finance AZURE_FEDERATED_TOKEN_FILE-"]
    assert len(finding.evidence["details"]) == 2


def test_an_on_delete_daemonsets_old_pod_is_not_said_to_await_a_rollout() -> None:
    """By hand in the lab: a DaemonSet with updateStrategy OnDelete, its template labelled after its pod was made.
    The message said 'its rollout has not replaced it yet (under way, or stuck: kubectl rollout status says which)':
    no rollout ever replaces an OnDelete DaemonSet's pods, and kubectl rollout status refuses one ('only available
    for RollingUpdate strategy type'). It names the strategy now; the fix deletes the pod."""
    agent = _labelled_template({"updateStrategy": {"type": "OnDelete"}}, "agent")
    pod = workload_pod("agent-5fg52", labelled=False, mutated=False)
    pod["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "agent", "controller": True}]
    (finding,) = live_pods(context([LivePod(pod, "DaemonSet", "agent", agent)])).findings
    assert finding.code == "POD_NOT_LABELLED"
    assert "rollout status" not in finding.message and "under way" not in finding.message
    assert "DaemonSet/agent has updateStrategy OnDelete: no rollout replaces its pods" in finding.message
    assert finding.fix_lines()[0] == "kubectl delete pod -n finance agent-5fg52"
    rolling = _labelled_template({}, "agent")  # RollingUpdate (the default): a rollout under way or stuck
    (finding,) = live_pods(context([LivePod(pod, "DaemonSet", "agent", rolling)])).findings
    assert "kubectl rollout status says which" in finding.message


def _cronjob(name: str, labels: dict[str, str] | None = None, sa: str = "backend-sa", **spec: Any) -> dict[str, Any]:
    return {"plural": "cronjobs", "metadata": {"name": name, "namespace": "finance", "labels": {}},
            "spec": {"schedule": "0 3 * * *", **spec, "jobTemplate": {"spec": {"template": {
                "metadata": {"labels": labels or {}},
                "spec": {"serviceAccountName": sa, "restartPolicy": "Never", "containers": [{"name": "job"}]}}}}},
            "status": {"lastScheduleTime": "2026-01-01T03:00:00Z"}}


def test_a_cronjob_with_no_live_pod_is_judged_by_its_job_template() -> None:
    """By hand in the lab: a CronJob under backend-sa whose jobTemplate lacks the use label; its Job's pod had
    ended (Error: no token file) when the harness looked, so the run passed ('no live pods'). A CronJob's pods
    are mostly ended between schedules: its jobTemplate is judged now, the fix labels it (pasted, the next Job's
    pod got its token and the run passed). Labelled, of another ServiceAccount, or with a live pod of its own
    (judged through that pod): nothing."""
    done = workload_pod(name="reconcile-manual-m9fv6", labelled=False, mutated=False)
    done["status"]["phase"] = "Failed"
    kube = ListingKube([done])
    kube.controllers = [_cronjob("reconcile"), _cronjob("labelled", {USE: "true"}), _cronjob("theirs", sa="other")]
    ctx = context([])
    ctx.facts.live_pods = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert [c["metadata"]["name"] for c in ctx.facts.live_pods.cronjobs] == ["labelled", "reconcile"]
    outcome = live_pods(ctx)
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_LABELLED" and finding.severity == "error"
    assert finding.message.startswith("CronJob/reconcile: the webhook never sees the pods its Jobs make")
    assert "label is absent" in finding.message and "last scheduled 2026-01-01T03:00:00Z" in finding.message
    assert finding.fix_lines()[0] == (
        "kubectl patch cronjob/reconcile -n finance --type merge -p "
        """'{"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}}}'""")
    assert outcome.evidence["owners"] == [{"owner": "CronJob/reconcile", "pods": [], "problems": ["POD_NOT_LABELLED"]}]
    running = workload_pod(name="reconcile-29000-abcde", labelled=False, mutated=False)
    running["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "reconcile-29000", "controller": True}]
    kube = ListingKube([running])
    job = {"plural": "jobs", "metadata": {"name": "reconcile-29000", "uid": "j", "ownerReferences": [
        {"kind": "CronJob", "name": "reconcile", "controller": True}]}, "spec": {}, "status": {}}
    kube.controllers = [_cronjob("reconcile"), job]
    facts = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert facts.cronjobs == [] and facts.pods[0].cronjob is not None  # judged through its live pod


def test_a_suspended_or_misplaced_cronjob_label_is_named() -> None:
    suspended = _cronjob("reconcile", suspend=True)
    ctx = context([])
    ctx.facts.live_pods = LivePodsFacts(cronjobs=[suspended])
    outcome = live_pods(ctx)
    assert outcome.status == WARN and "suspended" in outcome.findings[0].message
    misplaced = _cronjob("reconcile")
    misplaced["metadata"]["labels"] = {USE: "true"}  # kubectl label cronjob: the CronJob's own, not its pods'
    ctx.facts.live_pods = LivePodsFacts(cronjobs=[misplaced])
    (finding,) = live_pods(ctx).findings
    assert "it sits on CronJob/reconcile's own metadata.labels" in finding.message


def test_a_job_pod_made_before_its_cronjob_was_labelled_is_not_fixed_again() -> None:
    """By hand in the lab: the CronJob's jobTemplate labelled (the printed fix), then --pod on the pod of its
    earlier Job (ended, unlabelled): pod.labelled printed the CronJob patch and 'kubectl delete job' again, as if
    nothing had been done. It says now that the CronJob carries the label and the pod is of a Job made before; the
    fix is a Job run now. The same for a live pod of such a Job."""
    labelled = _cronjob("reconcile", {USE: "true"})
    pod = workload_pod("reconcile-manual-m9fv6", labelled=False, mutated=False)
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "reconcile-manual", "controller": True}]
    pod["status"]["phase"] = "Failed"
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "reconcile-manual-m9fv6", existing=True, created=True, pod=pod,
                             owner={"metadata": {"name": "reconcile-manual"}}, cronjob=labelled)
    outcome = pod_labelled(ctx)
    (finding,) = outcome.findings
    assert "CronJob/reconcile's jobTemplate carries it now" in finding.message
    assert finding.fix_lines() == ["# CronJob/reconcile's next Job's pods get the label; to run one now: kubectl create "
                                   "job -n finance --from=cronjob/reconcile reconcile-wi"]
    unlabelled = _cronjob("reconcile")
    ctx.facts.pod = PodFacts("finance", "reconcile-manual-m9fv6", existing=True, created=True, pod=pod,
                             owner={"metadata": {"name": "reconcile-manual"}}, cronjob=unlabelled)
    assert pod_labelled(ctx).findings[0].fix_lines()[:2] == [
        "kubectl patch cronjob/reconcile -n finance --type merge -p "
        """'{"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}}}'""",
        "kubectl delete job -n finance reconcile-manual"]
    pod["status"]["phase"] = "Running"
    running = live_pods(context([LivePod(pod, "Job", "reconcile-manual", {"metadata": {}}, labelled)]))
    (finding,) = running.findings
    assert "CronJob/reconcile's jobTemplate carries it now" in finding.message
    assert not any("patch" in line for line in finding.fix_lines())


def test_a_terminating_pod_given_to_pod_is_not_deleted_again() -> None:
    """By hand in the lab: a bare pod under backend-sa, unlabelled, holding a finalizer, deleted (Terminating):
    --pod printed 'kubectl delete pod -n finance stuck', which waits on the finalizer and changes nothing, and
    pod.exists said 'phase Running' alone. It says Terminating (and by what it is held) now, and the fix creates
    the pod again rather than deleting it."""
    pod = workload_pod("stuck", labelled=False, mutated=False)
    pod["metadata"]["ownerReferences"] = []
    pod["metadata"]["deletionTimestamp"] = "2026-12-06T04:20:39Z"
    pod["metadata"]["finalizers"] = ["example.com/hold"]
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "stuck", existing=True, created=True, pod=pod, phase="Running")
    exists = pod_exists(ctx)
    assert "being deleted since 2026-12-06T04:20:39Z (Terminating, held by finalizers example.com/hold)" in exists.message
    lines = pod_labelled(ctx).findings[0].fix_lines()
    assert len(lines) == 1 and lines[0].startswith("# pod stuck is already being deleted (Terminating, held by "
                                                   "finalizers example.com/hold")
    assert not any("kubectl delete" in line for line in render_all(restart_workload(ctx)))
    del pod["metadata"]["deletionTimestamp"]  # not being deleted: labelled, then made again from its own spec
    assert pod_labelled(ctx).findings[0].fix_lines()[-1].startswith(
        "kubectl get pod -n finance stuck -o yaml | kubectl replace --force -f -")


def _skipping_pod(init_status: dict[str, Any] | None, skip: str = "fetch-secrets") -> dict[str, Any]:
    pod = workload_pod("initskip-7d9f-abcde", annotations={"azure.workload.identity/skip-containers": skip})
    pod["spec"]["initContainers"] = [{"name": "fetch-secrets", "env": []}]
    if init_status is not None:
        pod["status"]["initContainerStatuses"] = [{"name": "fetch-secrets", **init_status}]
    return pod


def test_a_skipped_init_container_that_keeps_failing_is_an_error_with_its_log_first() -> None:
    """By hand in the lab: an init container named in skip-containers that reads AZURE_FEDERATED_TOKEN_FILE, in
    Init:CrashLoopBackOff ('The workload options are not fully configured'): the run passed with a warning while
    the app never started. A skipped container that keeps failing is an error now; the fix reads its log, then
    removes the annotation (it named that container alone); pasted, the pod started and the run passed. Skipped
    and healthy (a sidecar skipped on purpose): the warning it was."""
    crashing = {"restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    outcome = live_pods(context([live(_skipping_pod(crashing), deployment())]))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_CONTAINER_SKIPPED" and finding.severity == "error"
    assert "a container the webhook skips keeps failing" in finding.message
    assert "is in CrashLoopBackOff (last exit 1, 3 restarts): the pod never starts its app" in finding.message
    assert finding.fix_lines()[0].startswith(
        "kubectl logs -n finance initskip-7d9f-abcde -c fetch-secrets --previous")
    assert finding.fix_lines()[1] == (
        "kubectl patch deployment/backend -n finance --type json -p '[{\"op\":\"remove\",\"path\":\"/spec/template/"
        "metadata/annotations/azure.workload.identity~1skip-containers\"}]'")
    ended = {"restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
    (finding,) = live_pods(context([live(_skipping_pod(ended, "fetch-secrets;istio-proxy"), deployment())])).findings
    assert "ended with exit code 2" in finding.message
    assert "--previous" not in finding.fix_lines()[0]
    assert finding.fix_lines()[1].startswith("# if it needs the identity, take fetch-secrets out of")
    healthy = live_pods(context([live(_skipping_pod({"state": {"terminated": {"exitCode": 0}}}), deployment())]))
    assert healthy.status == WARN and healthy.findings[0].severity == "warning"


def test_pod_of_a_pod_no_node_takes_says_so_at_pod_exists() -> None:
    """By hand in the lab: --pod on a pod with a Windows nodeSelector and no Windows node: pod.exists said 'phase
    Pending' alone and the run passed, as if the pod ran with its identity. It names the scheduler's message now,
    and that it is not Workload ID's doing (the chain is proved through a probe pod)."""
    pod = workload_pod("winapp-7d9f-abcde")
    pod["status"] = {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}]}
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "winapp-7d9f-abcde", existing=True, created=True, pod=pod, phase="Pending")
    outcome = pod_exists(ctx)
    assert outcome.status == PASS
    assert outcome.message.startswith("pod finance/winapp-7d9f-abcde found, but no node takes it: 0/1 nodes are "
                                      "available: 1 node(s) didn't match Pod's node affinity/selector.")
    assert "not Workload ID's doing" in outcome.message
    pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    assert "no node takes it" not in pod_exists(ctx).message


def test_a_template_projecting_its_own_token_at_the_webhooks_path_is_named_and_other_refusals_not_hidden() -> None:
    """By hand in the lab: a Deployment projecting a serviceAccountToken (audience vault) at path
    azure-identity-token in a volume named vault-token. Webhook v1.5 then adds no volume (any projection at that
    path is taken for its own) yet mounts azure-identity-token: every pod is invalid ('volumeMounts[2].name: Not
    found: "azure-identity-token"'), none ran, and the run PASSED: no refusal pattern matched, so nothing was said.
    It is named now, with a look at the template's projections; pasted (the path changed), the pods ran and the run
    passed. A refusal no pattern names is a warning now, never silence."""
    orphaned = ('Pod "owntoken-nq4pmmcmk9-89p2r" is invalid: spec.containers[0].volumeMounts[2].name: Not found: '
                '"azure-identity-token"')
    outcome = live_pods(context_with_failing_deployment("owntoken", "backend-sa", orphaned))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_ADMITTED" and finding.severity == "error"
    assert "projects a service account token at path azure-identity-token in a volume named otherwise" in \
        finding.message
    assert finding.fix_lines()[0].startswith("kubectl get deployment/owntoken -n finance -o 'jsonpath={range "
                                             ".spec.template.spec.volumes[*]}")
    strange = 'Pod "owntoken-x" is invalid: spec.containers[0].image: Required value'
    (finding,) = live_pods(context_with_failing_deployment("owntoken", "backend-sa", strange)).findings
    assert finding.severity == "warning" and finding.fix_lines()[0] == "kubectl describe deployment/owntoken -n finance"


def test_pod_of_an_evicted_pod_says_why_it_ended() -> None:
    """By hand in the lab: --pod on a pod the kubelet evicted: pod.exists said 'phase Failed' alone. It carries the
    pod's status reason and message now (Evicted: the node was low on memory), which are not Workload ID's."""
    pod = workload_pod("hostnet-7d9f-abcde")
    pod["status"] = {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "hostnet-7d9f-abcde", existing=True, created=True, pod=pod, phase="Failed")
    assert "phase Failed (Evicted: The node was low on resource: memory.)" in pod_exists(ctx).message


def test_an_azure_variable_set_empty_in_the_template_is_a_conflict_not_a_stale_pod() -> None:
    """By hand in the lab: a Deployment whose container sets AZURE_CLIENT_ID: "" (a Helm value left unset). The
    webhook appends only the variables a container does not name, so its pods have none; the harness said
    POD_STALE_CLIENT_ID ('created before the ServiceAccount was annotated') and printed kubectl rollout restart,
    which, pasted, made a pod with the same empty value. It is POD_ENV_CONFLICT now, unset by name (pasted: the pod
    got the annotation's client id and the run passed); an empty AZURE_TENANT_ID the same."""
    pod = workload_pod(client_id=None)
    pod["spec"]["containers"][0]["env"].insert(0, {"name": "AZURE_CLIENT_ID", "value": ""})
    owner = deployment(template_env=[{"name": "AZURE_CLIENT_ID", "value": ""}])
    (finding,) = live_pods(context([live(pod, owner)])).findings
    assert finding.code == "POD_ENV_CONFLICT"
    assert "sets AZURE_CLIENT_ID itself, to an empty value" in finding.message and CLIENT in finding.message
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_CLIENT_ID-"]
    pod = workload_pod()
    pod["spec"]["containers"][0]["env"][1] = {"name": "AZURE_TENANT_ID"}  # value "" is omitted on the wire
    (finding,) = live_pods(context([live(pod, deployment(template_env=[{"name": "AZURE_TENANT_ID"}]))])).findings
    assert finding.code == "POD_ENV_CONFLICT" and finding.fix_lines() == [
        "kubectl set env deployment/backend -n finance AZURE_TENANT_ID-"]


def test_pod_on_a_pod_whose_template_sets_azure_client_id_empty_unsets_it() -> None:
    """--pod on the pod of that Deployment (AZURE_CLIENT_ID: ""): pod.mutated said POD_MISSING_CLIENT_ID ('the
    ServiceAccount had no client-id annotation when the pod was created'), annotating the ServiceAccount already
    annotated and restarting: no repair. It is POD_ENV_CONFLICT now, unset by name."""
    pod = workload_pod(client_id=None)
    pod["spec"]["containers"][0]["env"].insert(0, {"name": "AZURE_CLIENT_ID", "value": ""})
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "azure-identity-token", "readOnly": True,
                                                     "mountPath": "/var/run/secrets/azure/tokens"}]
    pod["spec"]["containers"][0]["env"][2]["value"] = "/var/run/secrets/azure/tokens/azure-identity-token"
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=pod,
                             owner=deployment(template_env=[{"name": "AZURE_CLIENT_ID", "value": ""}]))
    outcome = pod_mutated(ctx)
    assert [f.code for f in outcome.findings] == ["POD_ENV_CONFLICT"]
    assert "sets AZURE_CLIENT_ID itself, to an empty value" in outcome.findings[0].message
    assert outcome.findings[0].fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_CLIENT_ID-"]


def _moved(spec: dict[str, Any], account: str = "backend-sa-v2") -> dict[str, Any]:
    """Deployment backend as read after ``kubectl set serviceaccount deployment/backend ACCOUNT`` (``spec`` merged)."""
    owner = deployment(labels={"app": "backend"})
    owner["spec"].update(spec)
    owner["spec"]["template"]["metadata"]["labels"] = {USE: "true"}
    owner["spec"]["template"]["spec"].update({"serviceAccountName": account, "serviceAccount": account})
    return owner


def test_a_paused_deployments_template_moved_to_an_unannotated_service_account_is_named_with_the_patch_back() -> None:
    """By hand in the lab: ``kubectl rollout pause deployment/backend``, then ``kubectl set serviceaccount
    deployment/backend backend-sa-v2`` (no client-id annotation): its pod kept running under backend-sa and
    ``--workload finance/backend-sa`` passed with no word, though once resumed no pod of it gets AZURE_CLIENT_ID
    (resumed, the harness warns POD_WRONG_SERVICE_ACCOUNT). Now the same code says so while it waits, and the
    patch back, pasted in the lab, left its pod running and the next run clean."""
    ctx = context([live(workload_pod(), _moved({"paused": True}))])
    assert ctx.facts.live_pods is not None
    ctx.facts.live_pods.template_accounts = {"backend-sa-v2": {}}
    outcome = live_pods(ctx)
    (finding,) = outcome.findings
    # an error: resumed, no pod of the app gets an identity (the sign-off's "serviceAccountName points at the
    # annotated ServiceAccount" fails); one naming an identity of its own stays a warning (below)
    assert outcome.status == FAIL and finding.code == "POD_WRONG_SERVICE_ACCOUNT" and finding.severity == "error"
    assert finding.message.startswith(
        "Deployment/backend: its pod template now names ServiceAccount backend-sa-v2 (not backend-sa), which has no "
        "azure.workload.identity/client-id annotation: its new pods get no AZURE_CLIENT_ID; its 1 live pod under "
        "backend-sa is of the template before")
    assert "Deployment/backend is paused (kubectl rollout pause)" in finding.message
    assert ("kubectl patch deployment/backend -n finance --type merge -p "
            """'{"spec":{"template":{"spec":{"serviceAccountName":"backend-sa"}}}}'""") in finding.fix_lines()
    assert outcome.evidence["owners"][0]["problems"] == ["POD_WRONG_SERVICE_ACCOUNT"]


def test_a_rollout_in_progress_to_another_service_account_names_its_new_pods_and_what_that_one_lacks() -> None:
    """maxSurge: the new ReplicaSet's pod runs under the new ServiceAccount beside the old one's pod under the
    workload's. The new pod (no AZURE_CLIENT_ID) is named; a ServiceAccount that does not exist, or one that
    names another identity, is said as such; a template naming the workload's own is no finding."""
    new = workload_pod(name="backend-8f1c-xyz12", client_id=None)
    new["spec"]["serviceAccountName"] = "backend-sa-v2"
    ctx = context([live(workload_pod(), _moved({}))])
    assert ctx.facts.live_pods is not None
    ctx.facts.live_pods.unannotated = [live(new)]
    ctx.facts.live_pods.template_accounts = {"backend-sa-v2": {}}
    (finding,) = live_pods(ctx).findings
    assert "(its rollout is in progress: backend-8f1c-xyz12 already runs under backend-sa-v2)" in finding.message
    assert finding.evidence["new_pods"] == ["backend-8f1c-xyz12"]
    ctx.facts.live_pods.template_accounts = {"backend-sa-v2": None}
    assert "which does not exist in finance: the API server will refuse" in live_pods(ctx).findings[0].message
    assert live_pods(ctx).findings[0].severity == "error"
    ctx.facts.live_pods.template_accounts = {"backend-sa-v2": {"azure.workload.identity/client-id": OLD_CLIENT}}
    another = live_pods(ctx)
    assert f"whose azure.workload.identity/client-id is {OLD_CLIENT}" in another.findings[0].message
    assert another.status == WARN  # a move to another identity may be meant: the owner's to say
    ctx.facts.live_pods.template_accounts = {}
    assert "(that ServiceAccount could not be read)" in live_pods(ctx).findings[0].message
    assert live_pods(ctx).status == WARN
    back = context([live(workload_pod(), _moved({}, "backend-sa"))])
    assert live_pods(back).status == PASS


def test_the_collector_reads_the_service_account_a_live_pods_deployment_now_names() -> None:
    class Moved(ListingKube):
        def deployment(self, namespace: str, name: str) -> dict[str, Any]:
            return _moved({"paused": True})

        def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
            self.read.append(f"sa/{name}")
            return {"metadata": {"name": name, "annotations": {"team": "payments"}}}

    kube = Moved([workload_pod(name="a"), workload_pod(name="b")])
    facts = collect_live_pods(kube, "finance", "backend-sa")  # type: ignore[arg-type]
    assert facts.template_accounts == {"backend-sa-v2": {"team": "payments"}}
    assert kube.read == ["sa/backend-sa-v2"]  # once for both pods


OTHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(("variable", "ref", "said"), [
    ("AZURE_TENANT_ID", {"configMapKeyRef": {"name": "appenv", "key": "AZURE_TENANT_ID"}},
     "from configmap appenv key AZURE_TENANT_ID"),
    ("AZURE_AUTHORITY_HOST", {"secretKeyRef": {"name": "app-ids", "key": "authority"}},
     "from secret app-ids key authority"),
    ("AZURE_FEDERATED_TOKEN_FILE", {"configMapKeyRef": {"name": "appenv", "key": "token-file"}},
     "from configmap appenv key token-file"),
])
def test_a_webhook_variable_the_template_takes_from_a_configmap_or_secret_is_a_conflict(
        variable: str, ref: dict[str, Any], said: str) -> None:
    """By hand in the lab: ``kubectl create configmap appenv --from-literal=AZURE_TENANT_ID=<another tenant>`` and
    ``kubectl set env deployment/backend --from=configmap/appenv`` (an env entry with valueFrom.configMapKeyRef).
    The webhook keys on the name (addEnvironmentVariables), so the pods keep the ConfigMap's tenant and the exchange
    fails; --workload passed, as only AZURE_CLIENT_ID's valueFrom was looked at, while --pod said POD_ENV_CONFLICT.
    Now --workload says so too, for each injected variable, naming the source (never its value), and unsets it."""
    preset = {"name": variable, "valueFrom": ref}
    pod = workload_pod()
    env = pod["spec"]["containers"][0]["env"]
    env[:] = [preset, *(e for e in env if e["name"] != variable)]  # what the webhook left: the others appended
    ctx = context([live(pod, deployment(template_env=[preset]))])
    outcome = live_pods(ctx)
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_ENV_CONFLICT" and f"sets {variable} itself, {said}" in finding.message
    assert finding.fix_lines() == [f"kubectl set env deployment/backend -n finance {variable}-"]
    # --pod on the same pod names the same source (pod.mutated's reading, value_sources, is the one used)
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=pod,
                             owner=deployment(template_env=[preset]))
    assert said in pod_mutated(ctx).findings[0].message


def test_a_tenant_from_a_configmap_names_what_the_webhook_injects_and_a_skipped_container_is_left() -> None:
    """With a probe pod the finding says which tenant the webhook injects instead; a container the skip-containers
    annotation names gets no AZURE_* env from the webhook, so its own is no conflict."""
    preset = {"name": "AZURE_TENANT_ID", "valueFrom": {"configMapKeyRef": {"name": "appenv", "key": "tenant"}}}
    pod = workload_pod()
    pod["spec"]["containers"][0]["env"][1] = preset
    ctx = context([live(pod, deployment(template_env=[preset]))])
    probe = workload_pod(name="wi-probe-backend-sa-1")
    probe["spec"]["containers"][0]["env"][1]["value"] = OTHER_TENANT
    ctx.facts.pod = PodFacts("finance", "wi-probe-backend-sa-1", created=True, pod=probe)
    (finding,) = live_pods(ctx).findings
    assert finding.code == "POD_ENV_CONFLICT" and f"not the {OTHER_TENANT} the webhook injects" in finding.message
    sidecar = {"name": "sidecar", "env": [preset]}
    pod = workload_pod(annotations={"azure.workload.identity/skip-containers": "sidecar"})
    pod["spec"]["containers"].append(sidecar)
    assert [f.code for f in live_pods(context([live(pod)])).findings] == ["POD_CONTAINER_SKIPPED"]  # a warning


def test_pods_carrying_harness_yamls_out_of_date_client_id_are_stale_when_the_identity_was_created_again() -> None:
    """By hand in the lab: az identity delete, then az identity create under the same name (a new client id), its
    federated credential and role made again, the ServiceAccount annotated with the new client id; harness.yaml's
    client_id still the old one, Deployment/backend not restarted. --workload said SA_CLIENT_ID_MISMATCH (set
    harness.yaml's client_id) and nothing about the live pods, whose AZURE_CLIENT_ID is the deleted identity's (the
    exchange refused, AADSTS700016): a pod carrying harness.yaml's client id was taken for a right one behind a wrong
    annotation. harness.yaml is out of date here (the identity it names by identity_resource_id has the annotated
    client id), so those pods are stale, for workload.live_pods and --pod's pod.mutated alike; with that identity's
    client id not the annotation's, a pod carrying harness.yaml's still is not."""
    from harness.checks.workload import existing_pod_mutated
    resource_id = "/subscriptions/s/resourcegroups/myRg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/w"
    pod = workload_pod(client_id=OLD_CLIENT)
    app = pod["spec"]["containers"][0]
    app["volumeMounts"] = [{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens",
                            "readOnly": True}]
    app["env"] = [{**e, "value": "/var/run/secrets/azure/tokens/azure-identity-token"}
                  if e["name"] == "AZURE_FEDERATED_TOKEN_FILE" else e for e in app["env"]]
    ctx = context([live(pod, deployment())])
    ctx.workload = WorkloadConfig(namespace="finance", service_account="backend-sa", client_id=OLD_CLIENT,
                                  identity_resource_id=resource_id)
    ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity", resolved_by="config",
                                       resource_id=resource_id, identity={"properties": {"clientId": CLIENT}})
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=pod,
                             owner=deployment())
    (stale,) = live_pods(ctx).findings
    assert stale.code == "POD_STALE_CLIENT_ID" and f"AZURE_CLIENT_ID={OLD_CLIENT}" in stale.message
    assert stale.fix_lines()[0].startswith("kubectl rollout restart deployment/backend -n finance")
    assert [f.code for f in existing_pod_mutated(ctx).findings] == ["POD_STALE_CLIENT_ID"]
    ctx.facts.identity.identity = {"properties": {"clientId": "55555555-2222-3333-4444-555555555555"}}
    outcome = live_pods(ctx)  # harness.yaml's identity is a third: the annotation is what is wrong, not the pods
    assert outcome.status == PASS and not outcome.findings
    assert existing_pod_mutated(ctx).findings == []
