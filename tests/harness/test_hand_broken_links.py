"""Links broken by hand with kubectl, judged on plain facts: what the webhook makes of an annotation a person wrote
(pkg/webhook/webhook.go getTenantID, addEnvironmentVariables)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from test_identity_checks import CLIENT as IDENTITY_CLIENT
from test_identity_checks import TENANT as IDENTITY_TENANT
from test_identity_checks import application, context_for
from test_identity_checks import azure as identity_azure
from test_live_pods import CLIENT, OLD_CLIENT, context, deployment, live, workload_pod

from harness.checks.context import WorkloadContext
from harness.checks.federation import identity_matches
from harness.checks.live_pods import live_pods
from harness.checks.model import FAIL, SKIP, WARN
from harness.checks.pod import pod_labelled, pod_mutated
from harness.checks.serviceaccount import sa_client_id_annotation
from harness.collect.kube import collect_service_account
from harness.collect.run import Backend, collect_existing_pod
from harness.config import HarnessConfig, WorkloadConfig
from harness.facts import ClusterFacts, LivePodsFacts, PodFacts

TENANT = "azure.workload.identity/tenant-id"


def test_an_empty_tenant_id_annotation_is_an_error_removed_and_the_pods_restarted() -> None:
    """``kubectl annotate sa backend-sa azure.workload.identity/tenant-id=``: getTenantID takes the annotation when
    the key is there, even empty, and the webhook appends only non-empty variables, so the pods get no
    AZURE_TENANT_ID. It was a warning ("not a GUID") whose fix left the running pods as they were, while the
    first broken link was pod.mutated with az aks update."""
    ctx = context([live(workload_pod(), deployment())], sa_annotations={
        "azure.workload.identity/client-id": CLIENT, TENANT: ""})
    outcome = sa_client_id_annotation(ctx)
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert (finding.code, finding.severity) == ("SA_TENANT_ID_MALFORMED", "error")
    assert "no AZURE_TENANT_ID" in finding.message
    assert [line.split("#")[0].strip() for line in finding.fix_lines()] == [
        f"kubectl annotate serviceaccount -n finance backend-sa {TENANT}-",
        "kubectl rollout restart deployment/backend -n finance"]


def test_a_tenant_id_that_is_not_a_guid_stays_a_warning_and_its_fix_restarts_the_pods() -> None:
    """A domain (contoso.onmicrosoft.com) is a tenant Entra knows by name: a warning, as before, now with the
    restart the removal needs (the webhook acts on pod CREATE only)."""
    ctx = context([live(workload_pod(), deployment())], sa_annotations={
        "azure.workload.identity/client-id": CLIENT, TENANT: "contoso.onmicrosoft.com"})
    outcome = sa_client_id_annotation(ctx)
    assert outcome.status == WARN
    assert outcome.findings[0].fix_lines()[-1].startswith("kubectl rollout restart deployment/backend -n finance")


@pytest.mark.parametrize(("value", "said"), [
    (f" {CLIENT} ", "whitespace around it"),
    (f"{{{CLIENT}}}", "braces around it"),
    ("myWorkloadId", "the identity's client id, not its name"),
])
def test_a_pasted_client_id_that_is_not_a_guid_says_what_is_around_it(value: str, said: str) -> None:
    """``kubectl annotate sa ... client-id=' <guid> '`` (copied with spaces) or ``{<guid>}``: it said "(the
    identity's client id, not its name)" for both, while the GUID is right there."""
    ctx = context([], sa_annotations={"azure.workload.identity/client-id": value})
    outcome = sa_client_id_annotation(ctx)
    assert outcome.status == FAIL and outcome.findings[0].code == "SA_CLIENT_ID_MALFORMED"
    assert said in outcome.message
    # the GUID around which it was pasted is the one annotated (harness.yaml names none): it printed an az identity
    # show --ids '<identity-resource-id>' and client-id=<client-id> to fill in, while saying the GUID is right there
    lines = outcome.findings[0].fix_lines()
    if "around it" in said:
        assert lines[0] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                            f"azure.workload.identity/client-id={CLIENT} --overwrite")
        assert not any("<" in line for line in lines if not line.startswith("#"))


def test_with_pod_a_client_id_from_a_secret_is_a_conflict_unset_on_its_deployment() -> None:
    """--pod on a pod whose template sets AZURE_CLIENT_ID from a Secret (``kubectl set env --from=secret/...``):
    the webhook injected the rest, and the spec shows no value. It was POD_MISSING_CLIENT_ID ('the ServiceAccount
    had no client-id annotation') with an annotate and a restart, neither of which changes it."""
    pod = workload_pod(client_id=None)
    pod["spec"]["containers"][0]["env"].insert(0, {"name": "AZURE_CLIENT_ID", "valueFrom": {
        "secretKeyRef": {"name": "app-ids", "key": "AZURE_CLIENT_ID"}}})
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "azure-identity-token", "readOnly": True,
                                                     "mountPath": "/var/run/secrets/azure/tokens"}]
    for env in pod["spec"]["containers"][0]["env"]:
        if env["name"] == "AZURE_FEDERATED_TOKEN_FILE":
            env["value"] = "/var/run/secrets/azure/tokens/azure-identity-token"
    ctx = context(None)
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-abcde", existing=True, created=True, pod=pod)
    (finding,) = pod_mutated(ctx).findings
    assert finding.code == "POD_ENV_CONFLICT" and "secret app-ids" in finding.message
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_CLIENT_ID-"]


def test_a_tenant_id_missing_for_an_empty_annotation_is_left_to_the_annotation() -> None:
    """The empty tenant-id annotation is the root (sa.client_id_annotation): pod.mutated, which printed az aks
    update for the missing AZURE_TENANT_ID, is skipped behind it."""
    pod = workload_pod()
    probe = pod["spec"]["containers"][0]
    probe["name"], probe["env"] = "probe", [e for e in probe["env"] if e["name"] != "AZURE_TENANT_ID"]
    ctx = context(None, sa_annotations={"azure.workload.identity/client-id": CLIENT, TENANT: ""})
    ctx.facts.pod = PodFacts("finance", "wi-probe", created=True, pod=pod)
    outcome = pod_mutated(ctx)
    assert outcome.status == SKIP and outcome.blocked_by == "sa.client_id_annotation"


def test_a_webhook_configuration_without_its_deployment_still_names_the_install_that_owns_it() -> None:
    """Only the configuration left (the Deployment deleted by hand): the Helm release that owns it, or the Service
    it calls, says whose it is, so the chart is not taken for an add-on to enable over it."""
    from harness.checks.cluster import chart_install, webhook_installs
    from harness.facts import ClusterFacts

    facts = ClusterFacts(0.0)
    facts.webhook_configurations = [{
        "metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration", "annotations": {
            "meta.helm.sh/release-name": "workload-identity-webhook",
            "meta.helm.sh/release-namespace": "azure-workload-identity-system"}},
        "webhooks": [{"name": "mutation.azure-workload-identity.io", "clientConfig": {"service": {
            "name": "azure-wi-webhook-webhook-service", "namespace": "azure-workload-identity-system"}}}]}]
    install = chart_install(facts)
    assert install is not None and (install.release, install.namespace) == (
        "workload-identity-webhook", "azure-workload-identity-system")
    facts.webhook_configurations[0]["metadata"]["annotations"] = {}
    facts.webhook_configurations[0]["webhooks"][0]["clientConfig"]["service"]["namespace"] = "kube-system"
    assert [i.kind for i in webhook_installs(facts)] == ["addon"]


MWC = {"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"},
       "webhooks": [{"name": "mutation.azure-workload-identity.io", "failurePolicy": "Fail",
                     "clientConfig": {"service": {"name": "azure-wi-webhook-webhook-service",
                                                  "namespace": "kube-system"}},
                     "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                                "resources": ["pods"]}]}]}
READY_WEBHOOK = {"metadata": {"name": "azure-wi-webhook-controller-manager", "namespace": "kube-system"},
                 "spec": {"replicas": 2}, "status": {"readyReplicas": 2}}


def test_webhook_rules_edited_away_from_pod_create_are_named_as_the_reason() -> None:
    """kubectl patch of the configuration's rules to operations [UPDATE]: the probe pod is admitted unmutated;
    the reason said "was it created before the webhook was ready, or does a namespaceSelector exclude...?"."""
    ctx = context(None)
    ctx.cluster.webhook_configurations = [MWC]
    ctx.cluster.webhook_deployments = [READY_WEBHOOK]
    ctx.facts.pod = PodFacts("finance", "wi-probe", created=True, pod=workload_pod(name="wi-probe", mutated=False))
    (finding,) = pod_mutated(ctx).findings
    assert finding.code == "POD_NOT_MUTATED" and "rules do not select pod CREATE" in finding.message
    assert '"operations":["UPDATE"]' in finding.message
    # its fix was az aks update (not known to put edited rules back); now the rules patched back, tested first
    lines = finding.fix_lines()
    assert not any(line.startswith("az aks update") for line in lines), lines
    assert lines[0].startswith("kubectl patch mutatingwebhookconfiguration azure-wi-webhook-mutating-webhook-"
                               "configuration --type json -p ")
    assert ('{"op":"replace","path":"/webhooks/0/rules","value":[{"apiGroups":[""],"apiVersions":["v1"],'
            '"operations":["CREATE"],"resources":["pods"]}]}') in lines[0]
    assert '{"op":"test","path":"/webhooks/0/rules","value":[{' in lines[0]


def test_no_endpoints_while_the_webhook_pods_are_ready_points_at_the_service_not_a_restart() -> None:
    """The webhook Service's selector edited by hand: its pods are ready, the API server finds no endpoint. The
    fix restarted the webhook's pods, which changes nothing; now the selector and labels, then the reinstall."""
    from harness.checks.pod import pod_admitted
    from harness.facts import KubeFailure

    ctx = context(None)
    ctx.cluster.webhook_configurations = [MWC]
    ctx.cluster.webhook_deployments = [READY_WEBHOOK]
    message = ('Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to '
               'call webhook: Post "https://azure-wi-webhook-webhook-service.kube-system.svc:443/mutate-v1-pod?'
               'timeout=10s": no endpoints available for service "azure-wi-webhook-webhook-service"')
    ctx.facts.pod = PodFacts("finance", "wi-probe", create_error=KubeFailure(500, "InternalError", message))
    (finding,) = pod_admitted(ctx).findings
    lines = finding.fix_lines()
    assert finding.code == "WEBHOOK_UNAVAILABLE"
    assert any("get service azure-wi-webhook-webhook-service" in line for line in lines)
    assert not any("rollout restart" in line or "scale" in line for line in lines), lines
    assert lines[-1].startswith("az aks update")


def test_pod_naming_the_webhooks_own_pod_says_so_in_one_line() -> None:
    """--pod kube-system/azure-wi-webhook-controller-manager-... (a troubleshooter picking the pod that 'does'
    Workload ID): it ran a probe pod in kube-system and printed four failures, among them a patch labelling the
    webhook's own Deployment for Workload ID and an annotation of its ServiceAccount with '<client-id>'. Now one
    finding on pod.exists, and the collector runs no probe pod for it."""
    from harness.checks.pod import pod_exists
    from harness.checks.podspec import is_webhook_pod

    pod = {"metadata": {"name": "azure-wi-webhook-controller-manager-7d9f-x", "namespace": "kube-system",
                        "labels": {"azure-workload-identity.io/system": "true", "pod-template-hash": "7d9f"},
                        "ownerReferences": [{"kind": "ReplicaSet", "controller": True,
                                             "name": "azure-wi-webhook-controller-manager-7d9f"}]},
           "spec": {"serviceAccountName": "azure-wi-webhook-admin", "containers": [{"name": "manager"}]}}
    assert is_webhook_pod(pod) and not is_webhook_pod(workload_pod())
    ctx = context(None)
    ctx.facts.pod = PodFacts("kube-system", pod["metadata"]["name"], existing=True, created=True, pod=pod)
    outcome = pod_exists(ctx)
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_A_WORKLOAD"
    assert "Deployment/azure-wi-webhook-controller-manager" in finding.message
    assert finding.fix_lines()[0].startswith("kubectl get pods -A -l azure.workload.identity/use=true")


class _NamespaceAnnotated:
    """The API as a person left it: ``kubectl annotate ns finance azure.workload.identity/client-id=<guid>``
    and ``kubectl annotate sa backend-sa azure.workload.identity/client-id-``."""

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "annotations": {}}}

    def namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "annotations": {"azure.workload.identity/client-id": CLIENT}}}


def test_a_client_id_annotated_on_the_namespace_is_named_there_and_put_on_the_service_account() -> None:
    """Found by hand in the lab: with the client id on the Namespace instead of the ServiceAccount (the webhook
    reads it from the ServiceAccount only, pkg/webhook/webhook.go), the finding said only "lacks the annotation",
    placed_on=[]. The collector now reads the namespace's annotations when the ServiceAccount lacks it."""
    sa = collect_service_account(_NamespaceAnnotated(), "finance", "backend-sa")  # type: ignore[arg-type]
    assert sa.namespace_annotations == {"azure.workload.identity/client-id": CLIENT}
    # its pods were made while the ServiceAccount named no client id: the webhook gave them none
    ctx = context([live(workload_pod(client_id=None), deployment())], sa_annotations={})
    ctx.facts.sa.namespace_annotations = sa.namespace_annotations
    ctx.workload = ctx.workload.model_copy(update={"client_id": CLIENT})
    outcome = sa_client_id_annotation(ctx)
    (finding,) = outcome.findings
    assert finding.code == "SA_ANNOTATION_MISSPELLED"
    assert finding.evidence["placed_on"] == ["Namespace/finance"]
    assert "it is on Namespace/finance instead, the webhook reads it from the ServiceAccount only" in outcome.message
    assert [line.split("#")[0].strip() for line in finding.fix_lines()] == [
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT} "
        "--overwrite",
        "kubectl rollout restart deployment/backend -n finance"]
    # pods that carry it already (the annotation moved off the ServiceAccount after they were made) keep running
    ctx.facts.live_pods = LivePodsFacts([live(workload_pod(client_id=CLIENT), deployment())])
    assert sa_client_id_annotation(ctx).findings[0].fix_lines()[1].startswith(
        "# Deployment/backend: the running pods already carry AZURE_CLIENT_ID=")
    # harness.yaml names no client id: the GUID put on the Namespace is the one annotated, not <client-id>
    ctx.workload = ctx.workload.model_copy(update={"client_id": None})
    assert sa_client_id_annotation(ctx).findings[0].fix_lines()[0] == (
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT} "
        "--overwrite")


def test_a_client_id_annotated_on_the_deployment_and_its_template_is_named_on_each() -> None:
    """``kubectl annotate deploy backend ...client-id=`` and the same key in the pod template's annotations
    (so on the pods too): each place is named, and the fix annotates the ServiceAccount and restarts."""
    owner = deployment()
    owner["metadata"]["annotations"] = {"azure.workload.identity/client-id": CLIENT}
    owner["spec"]["template"]["metadata"]["annotations"] = {"azure.workload.identity/client-id": CLIENT}
    pod = workload_pod(client_id=None)  # made while the ServiceAccount named no client id
    pod["metadata"].setdefault("annotations", {})["azure.workload.identity/client-id"] = CLIENT
    ctx = context([live(pod, owner)], sa_annotations={})
    ctx.workload = ctx.workload.model_copy(update={"client_id": CLIENT})
    (finding,) = sa_client_id_annotation(ctx).findings
    assert finding.code == "SA_ANNOTATION_MISSPELLED"
    assert finding.evidence["placed_on"][:2] == ["Deployment/backend", "Deployment/backend's pod template"]
    assert finding.evidence["placed_on"][2].startswith("pod ")
    assert finding.fix_lines()[0] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                                      f"azure.workload.identity/client-id={CLIENT} --overwrite")
    assert finding.fix_lines()[-1].startswith("kubectl rollout restart deployment/backend -n finance")


class _LabelOnTheDeployment:
    """``kubectl label deploy backend azure.workload.identity/use=true`` with the template's label removed: the
    Deployment carries it on its own metadata.labels, its pods do not."""

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return workload_pod(name, labelled=False, mutated=False)

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return deployment(labels={"azure.workload.identity/use": "true"})

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "annotations": {"azure.workload.identity/client-id": CLIENT}}}

    def namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}}


def test_with_pod_a_use_label_on_the_deployments_own_metadata_is_named_there_and_patched_onto_its_template() -> None:
    """Found by hand in the lab: --pod on such a pod said only "label is absent" (the workload run named the
    Deployment's metadata, --pod read no Deployment). The collector now reads the pod's Deployment when the pod
    lacks the label, and pod.labelled says where it sits and where it must go; the printed patch (run as printed
    in the lab) labels the template and the next run passed."""
    backend = Backend(kube=_LabelOnTheDeployment(), http=None)  # type: ignore[arg-type]
    facts = collect_existing_pod(backend, HarnessConfig(), "finance", "backend-7d9f-abcde")
    assert facts.pod is not None and facts.pod.owner is not None
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    outcome = pod_labelled(ctx)
    assert outcome.status == FAIL
    assert ("it sits on Deployment/backend's own metadata.labels, it must be under spec.template.metadata.labels"
            in outcome.message)
    assert outcome.evidence["placed_on"] == "Deployment/backend metadata.labels"
    (finding,) = outcome.findings
    assert finding.code == "POD_NOT_LABELLED"
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type merge -p "
        """'{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}'""")


class _LabelOnTheController:
    """``kubectl label sts ledger azure.workload.identity/use=true`` (or on a CronJob, whose Job made the pod): the
    controller carries the label on its own metadata.labels, the pods do not. StatefulSets, DaemonSets, Jobs and
    CronJobs are read by a list by metadata.name (list items carry no kind)."""

    def __init__(self, pod: dict[str, Any], objects: dict[str, list[dict[str, Any]]]) -> None:
        self._pod, self.objects, self.selectors = pod, objects, []

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._pod

    def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                        field_selector: str = "") -> list[dict[str, Any]]:
        self.selectors.append((plural, field_selector))
        return self.objects.get(plural, [])  # the selector ignored: the collector picks the name itself

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "annotations": {"azure.workload.identity/client-id": CLIENT}}}

    def namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}}


def _owned_pod(name: str, kind: str, owner: str) -> dict[str, Any]:
    pod = workload_pod(name, labelled=False, mutated=False)
    pod["metadata"]["labels"] = {"app": owner}
    pod["metadata"]["ownerReferences"] = [{"kind": kind, "name": owner, "controller": True}]
    return pod


def _pod_labelled_with(kube: _LabelOnTheController, pod: str) -> Any:
    facts = collect_existing_pod(Backend(kube=kube, http=None), HarnessConfig(), "finance", pod)  # type: ignore[arg-type]
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    return pod_labelled(ctx)


def test_with_pod_a_use_label_on_a_statefulsets_own_metadata_is_named_there_and_patched_onto_its_template() -> None:
    """Found by hand in the lab: --pod finance/ledger-0 of a StatefulSet labelled with kubectl label sts said only
    "label is absent" (da17469 read Deployments only). The printed patch, run as printed, rolled ledger-0 and the
    next run passed."""
    other = {"metadata": {"name": "ledger-archive", "labels": {}}}
    ledger = {"metadata": {"name": "ledger", "labels": {"azure.workload.identity/use": "true"}},
              "spec": {"template": {"metadata": {"labels": {"app": "ledger"}}}}}
    kube = _LabelOnTheController(_owned_pod("ledger-0", "StatefulSet", "ledger"), {"statefulsets": [other, ledger]})
    outcome = _pod_labelled_with(kube, "ledger-0")
    assert ("statefulsets", "metadata.name=ledger") in kube.selectors
    assert outcome.status == FAIL
    assert ("it sits on StatefulSet/ledger's own metadata.labels, it must be under spec.template.metadata.labels"
            in outcome.message)
    assert outcome.evidence["placed_on"] == "StatefulSet/ledger metadata.labels"
    (finding,) = outcome.findings
    assert "not on the StatefulSet" in finding.message
    assert finding.fix_lines() == [
        "kubectl patch statefulset/ledger -n finance --type merge -p "
        """'{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}'"""]


@pytest.mark.parametrize(("placed", "where"), [
    ("metadata", "CronJob/nightly metadata.labels"),
    ("jobTemplate", "CronJob/nightly spec.jobTemplate.metadata.labels"),
])
def test_with_pod_a_use_label_on_a_cronjob_is_named_there_and_patched_onto_its_job_template(placed: str,
                                                                                            where: str) -> None:
    """Found by hand in the lab: the label on a CronJob's own metadata (or its jobTemplate's, which labels the Jobs
    and not their pods) gave "label is absent" and advice to recreate the Job by hand. The CronJob's jobTemplate
    is patched (a Job's pod template cannot change) and the Job made without the label is deleted; pasted as
    printed, with kubectl create job --from=cronjob/nightly as the comment says, the next run passed."""
    labelled = {"azure.workload.identity/use": "true"}
    cronjob = {"metadata": {"name": "nightly", "labels": labelled if placed == "metadata" else {}},
               "spec": {"jobTemplate": {"metadata": {"labels": labelled if placed == "jobTemplate" else {}},
                                        "spec": {"template": {"metadata": {"labels": {"app": "nightly"}}}}}}}
    job = {"metadata": {"name": "nightly-29410", "labels": labelled if placed == "jobTemplate" else {},
                        "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": True}]}}
    kube = _LabelOnTheController(_owned_pod("nightly-29410-x7k2p", "Job", "nightly-29410"),
                                 {"jobs": [job], "cronjobs": [cronjob]})
    outcome = _pod_labelled_with(kube, "nightly-29410-x7k2p")
    assert outcome.evidence["placed_on"] == where
    assert "it must be under spec.jobTemplate.spec.template.metadata.labels" in outcome.message
    (finding,) = outcome.findings
    assert "not on the CronJob" in finding.message
    assert finding.fix_lines()[:2] == [
        "kubectl patch cronjob/nightly -n finance --type merge -p "
        """'{"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}}}}}'""",
        "kubectl delete job -n finance nightly-29410"]
    assert "kubectl create job -n finance --from=cronjob/nightly" in finding.fix_lines()[2]


class _AnnotatedAgain:
    """kubectl annotate sa backend-sa client-id=<another> --overwrite after the pod was made: the pod keeps the
    AZURE_CLIENT_ID the webhook injected then."""

    def __init__(self, pod: dict[str, Any], annotated: str, owner: dict[str, Any] | None) -> None:
        self._pod, self.annotated, self.owner = pod, annotated, owner

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._pod

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.owner

    def list_namespaced(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "annotations": {"azure.workload.identity/client-id": self.annotated}}}

    def namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}}


def _mounted(pod: dict[str, Any]) -> dict[str, Any]:
    """workload_pod with its token mounted where AZURE_FEDERATED_TOKEN_FILE points, as the webhook (v1.5) makes it."""
    container = pod["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens",
                                  "readOnly": True}]
    for entry in container["env"]:
        if entry["name"] == "AZURE_FEDERATED_TOKEN_FILE":
            entry["value"] = "/var/run/secrets/azure/tokens/azure-identity-token"
    return pod


def _existing(kube: _AnnotatedAgain, configured: str | None = None) -> WorkloadContext:
    facts = collect_existing_pod(Backend(kube=kube, http=None), HarnessConfig(), "finance", "p")  # type: ignore[arg-type]
    return WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa",
                                                 client_id=configured),
                           ClusterFacts(time.time()), None, time.time())


def test_with_pod_a_pod_made_before_the_annotation_changed_is_stale_and_restarted() -> None:
    """By hand in the lab: the ServiceAccount annotated with the right client id after the Deployment's pods were
    made with another: --pod said POD_ENV_CONFLICT 'AZURE_CLIENT_ID is preset in the pod spec' (the pod's env
    stood in for the template). The pod's Deployment is read with --pod now; its template sets no
    AZURE_CLIENT_ID, so the webhook injected it: POD_STALE_CLIENT_ID and the restart, which (pasted) passed."""
    old = "00000000-0000-0000-0000-000000000001"
    ctx = _existing(_AnnotatedAgain(_mounted(workload_pod(client_id=old)), CLIENT, deployment()))
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "POD_STALE_CLIENT_ID"
    assert outcome.message.startswith(f"the pod's AZURE_CLIENT_ID={old} was injected when the pod was created")
    assert finding.fix_lines() == ["kubectl rollout restart deployment/backend -n finance   # the webhook acts on pod "
                                   "CREATE only"]


def test_with_pod_a_bare_pod_carrying_the_configured_client_id_is_left_running() -> None:
    """By hand in the lab: kubectl run debug (a bare pod) under backend-sa, then the ServiceAccount annotated with
    a wrong client id: SA_CLIENT_ID_MISMATCH's fix deleted the pod (which nothing makes again) though it carries
    harness.yaml's client id, and pod.mutated said it presets AZURE_CLIENT_ID. The pod is not at fault, and the
    fix annotates the ServiceAccount only; pasted as printed, the next --pod run passed."""
    pod = _mounted(workload_pod("debug"))
    pod["metadata"]["ownerReferences"] = []
    ctx = _existing(_AnnotatedAgain(pod, "00000000-0000-0000-0000-000000000002", None), configured=CLIENT)
    assert pod_mutated(ctx).findings == []
    (finding,) = sa_client_id_annotation(ctx).findings
    assert finding.fix_lines() == [
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT} "
        "--overwrite",
        f"# Pod/debug: the running pods already carry AZURE_CLIENT_ID={CLIENT}, no restart needed"]


def test_a_use_label_taken_off_a_mutated_pod_whose_template_carries_it_is_no_failure() -> None:
    """By hand in the lab: kubectl label pod backend-... azure.workload.identity/use- on a running, mutated pod
    whose Deployment's template keeps the label: --pod and --workload said POD_NOT_LABELLED 'the webhook never
    sees it' and printed the template patch, a no-op (the template has it), so the next run failed the same. The
    webhook acts on CREATE: the pod keeps its identity and its replacements are labelled; both views pass now.
    Without the template's label (the #751 upgrade: pods mutated under the old selector) it still fails, saying
    this pod was mutated and the next ones will not be."""
    pod = _mounted(workload_pod(labelled=False))
    labelled = deployment()
    labelled["spec"]["template"]["metadata"]["labels"] = {"azure.workload.identity/use": "true"}
    ctx = _existing(_AnnotatedAgain(pod, CLIENT, labelled))
    outcome = pod_labelled(ctx)
    assert outcome.status != FAIL and "taken off after it was made" in outcome.message
    assert live_pods(context([live(pod, labelled)])).findings == []
    (finding,) = live_pods(context([live(pod, deployment())])).findings
    assert finding.code == "POD_NOT_LABELLED" and "the Deployment's next pods will not be" in finding.message


def test_a_braced_client_id_annotation_fixed_leaves_running_the_pods_that_carry_the_bare_one() -> None:
    """By hand in the lab (whole-cluster run): jobs/runner annotated '{GUID}' while its OnDelete DaemonSet's pod
    carried the bare GUID. The inventory's fix said the pod needed no restart, SA_CLIENT_ID_MALFORMED's deleted it:
    two fixes of one run disagreeing, the second disrupting a running pod for nothing. The annotation's fix leaves
    pods that already carry the bare GUID running (restart_workload's carrying), as the inventory's does; a pod
    carrying another client id is still restarted."""
    ctx = context([live(workload_pod(client_id=CLIENT), deployment())],
                  {"azure.workload.identity/client-id": "{" + CLIENT + "}"})
    (finding,) = sa_client_id_annotation(ctx).findings
    assert finding.code == "SA_CLIENT_ID_MALFORMED"
    assert [line.split("   #")[0] for line in finding.fix_lines()] == [
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT} --overwrite",
        f"# Deployment/backend: the running pods already carry AZURE_CLIENT_ID={CLIENT}, no restart needed"]
    ctx.facts.live_pods = LivePodsFacts([live(workload_pod(client_id=OLD_CLIENT), deployment())])
    (finding,) = sa_client_id_annotation(ctx).findings
    assert finding.fix_lines()[1].startswith("kubectl rollout restart deployment/backend -n finance")


def test_an_object_id_annotated_over_a_working_client_id_leaves_running_the_pods_that_carry_it() -> None:
    """By hand: a ServiceAccount whose pods ran with the identity's client id was annotated with the identity's
    principal (object) id. The inventory's and workload.live_pods' fixes said the running pods needed no
    restart, while IDENTITY_NOT_FOUND (identity.matches: SA_ANNOTATION_IS_PRINCIPAL_ID) printed a kubectl
    rollout restart of them beside it. Its annotation fix now leaves running the pods that already carry the
    client id it annotates; a pod carrying the object id is still restarted."""
    from harness.checks.federation import identity_matches
    from harness.facts import IdentityFacts

    principal = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
    ctx = context([live(workload_pod(client_id=CLIENT), deployment())],
                  {"azure.workload.identity/client-id": principal})
    ctx.facts.identity = IdentityFacts(configured=True, principal_of={
        "kind": "managed_identity", "client_id": CLIENT, "name": "myWorkloadId", "object_id": principal})
    (finding,) = identity_matches(ctx).findings
    assert finding.code == "SA_ANNOTATION_IS_PRINCIPAL_ID"
    assert [line.split("   #")[0] for line in finding.fix_lines()] == [
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT} --overwrite",
        f"# Deployment/backend: the running pods already carry AZURE_CLIENT_ID={CLIENT}, no restart needed"]
    ctx.facts.live_pods = LivePodsFacts([live(workload_pod(client_id=principal), deployment())])
    (finding,) = identity_matches(ctx).findings
    assert finding.fix_lines()[1].startswith("kubectl rollout restart deployment/backend -n finance")


def test_a_mistyped_tenant_annotation_is_named_as_where_the_other_tenant_comes_from() -> None:
    """By hand in the lab: kubectl annotate sa backend-sa azure.workload.identity/tenant-id=<one digit off>. The
    warning said 'differs from the expected tenant', as if the identity were in the wrong tenant; it now names the
    ServiceAccount's annotation as the tenant its pods are given, and the fix puts the identity's there."""
    typo = IDENTITY_TENANT[:-1] + ("4" if IDENTITY_TENANT[-1] != "4" else "5")
    ctx = context_for(client_id=IDENTITY_CLIENT)
    ctx.azure, ctx.facts.identity = identity_azure(), application()
    ctx.facts.sa.annotations[TENANT] = typo
    outcome = identity_matches(ctx)
    assert outcome.message == (f"identity tenant {IDENTITY_TENANT} differs from the tenant ServiceAccount "
                               "finance/backend-sa's azure.workload.identity/tenant-id annotation gives its pods, "
                               f"{typo}")
    (mismatch,) = outcome.findings
    assert mismatch.code == "IDENTITY_TENANT_MISMATCH"
    assert mismatch.fix_lines()[0] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                                       f"azure.workload.identity/tenant-id={IDENTITY_TENANT} --overwrite")
