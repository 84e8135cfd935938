"""Pod-managed identity leftovers and the coverage table, as pure functions of plain facts, and their collection
through the fake Kubernetes API.

We test these aspects:
- a clean cluster (no CRDs, kinds not served, add-on off) passes every migration check;
- every leftover has its POD_IDENTITY_ code: a warning before the migration is declared complete, an error after;
- remediation names the real objects: az aks pod-identity delete for what the add-on owns, kubectl delete for the
  rest, helm uninstall of the chart's release, the CRDs, the label, az aks update --disable-pod-identity;
- a 403 on a list is never a failure (POD_IDENTITY_UNREADABLE, a warning, even once the migration is complete);
  a 404 means not installed; no answer at all is an error;
- the coverage table: client id, annotated ServiceAccounts, federated credential for this issuer (and for those
  ServiceAccounts), labelled pods, legacy pods; what is missing and what cannot be told;
- the collector: CRD kinds served only with their CRD, ClientID written the old way, NMI/MIC by chart labels,
  manifest labels or image, identities looked up once and reused from the workloads.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from fakeworld import ISSUER, FakeKube, World

from harness.checks.migration import (
    MigrationContext,
    bindings_migrated,
    components_removed,
    coverage_rows,
    leftovers_section,
    objects_removed,
    pods_unlabelled,
    run_migration_checks,
)
from harness.checks.model import FAIL, PASS, SKIP, WARN, CheckResult
from harness.collect.migration import RESOURCE_GONE, collect_migration, component_of
from harness.config import AzureConfig, ExpectConfig
from harness.facts import ClusterFacts, Fetched, IdentityFacts, KubeFailure, MigrationFacts, ObjectList
from harness.report.schema import CoverageRow, Leftovers
from harness.report.summary import coverage_lines

CLIENT_PAYMENTS = "11111111-2222-4333-8444-555555555555"
CLIENT_BACKEND = "66666666-7777-4888-9999-aaaaaaaaaaaa"
SUB = "00000000-0000-4000-8000-000000000001"
AZURE = AzureConfig(tenant_id="00000000-0000-4000-8000-000000000002", subscription_id=SUB,
                    resource_group="dev-rg", cluster_name="dev-aks")
MI_ID = f"/subscriptions/{SUB}/resourcegroups/myRg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
FORBIDDEN = KubeFailure(403, "Forbidden", "customresourcedefinitions.apiextensions.k8s.io is forbidden")


def statuses(results: list[CheckResult]) -> dict[str, str]:
    return {r.id: r.status for r in results}


def lines(results: list[CheckResult]) -> list[str]:
    return [line for r in results for f in r.findings for line in f.fix_lines()]


def clean() -> MigrationFacts:
    def absent(plural: str) -> ObjectList:
        return ObjectList(f"{plural}.aadpodidentity.k8s.io", served=False)

    return MigrationFacts(
        collected_at=time.time(),
        crds=ObjectList("customresourcedefinitions.apiextensions.k8s.io"),
        azure_identities=absent("azureidentities"),
        azure_identity_bindings=absent("azureidentitybindings"),
        azure_pod_identity_exceptions=absent("azurepodidentityexceptions"),
        azure_assigned_identities=absent("azureassignedidentities"),
        components=ObjectList("daemonsets.apps,deployments.apps"),
        legacy_pods=ObjectList("pods"),
        labelled_pods=ObjectList("pods"),
        service_accounts=ObjectList("serviceaccounts"),
    )


def arm_cluster(enabled: bool, identities: list[dict[str, Any]] | None = None,
                exceptions: list[dict[str, Any]] | None = None) -> ClusterFacts:
    profile = {"enabled": enabled, "userAssignedIdentities": identities or [],
               "userAssignedIdentityExceptions": exceptions or []}
    body = {"properties": {"oidcIssuerProfile": {"enabled": True, "issuerURL": ISSUER}, "podIdentityProfile": profile}}
    return ClusterFacts(time.time(), arm_cluster=Fetched("https://arm/cluster", 200, body), issuer_url=ISSUER)


def managed_identity(name: str, client_id: str, subjects: list[str], issuer: str = ISSUER) -> IdentityFacts:
    return IdentityFacts(
        configured=True, kind="managed_identity", resource_id=MI_ID + name, resolved_by="resource_graph",
        identity={"id": MI_ID + name, "name": name, "properties": {"clientId": client_id}},
        federated_credentials=[{"name": f"fic-{i}", "properties": {"issuer": issuer, "subject": subject,
                                                                  "audiences": ["api://AzureADTokenExchange"]}}
                               for i, subject in enumerate(subjects)],
    )


def pod(namespace: str, name: str, service_account: str, labels: dict[str, str], owner: tuple[str, str]) -> dict:
    return {"namespace": namespace, "name": name, "service_account": service_account, "labels": labels,
            "phase": "Running", "owner_kind": owner[0], "owner_name": owner[1]}


def bind_reports(facts: MigrationFacts, client_id: str, selector: str = "reports") -> None:
    """reports/reports-identity (an MSI AzureIdentity of ``client_id``) and reports/reports-binding, whose selector
    is ``selector`` (leftover()'s reports-api pod is labelled aadpodidbinding=reports)."""
    facts.azure_identities.items.append({"namespace": "reports", "name": "reports-identity",
                                         "spec": {"type": 0, "clientID": client_id}})
    facts.azure_identity_bindings.items.append({"namespace": "reports", "name": "reports-binding",
                                                "spec": {"azureIdentity": "reports-identity", "selector": selector}})


def leftover() -> tuple[MigrationFacts, ClusterFacts]:
    """Two bindings: finance's migrated (SA annotated, credential, labelled pod), payments' not started (a bare pod
    still labelled aadpodidbinding); the chart's NMI and MIC; the add-on owns payments' pod identity."""
    facts = clean()
    names = ["azureidentities", "azureidentitybindings", "azurepodidentityexceptions", "azureassignedidentities"]
    facts.crds.items = [{"name": f"{n}.aadpodidentity.k8s.io"} for n in names]
    for listed in (facts.azure_identities, facts.azure_identity_bindings, facts.azure_pod_identity_exceptions,
                   facts.azure_assigned_identities):
        listed.served = True
    facts.azure_identities.items = [
        {"namespace": "finance", "name": "backend-identity", "spec": {"type": 0, "clientID": CLIENT_BACKEND}},
        {"namespace": "payments", "name": "payments-identity", "spec": {"type": 0, "clientID": CLIENT_PAYMENTS}},
    ]
    facts.azure_identity_bindings.items = [
        {"namespace": "finance", "name": "backend-binding", "spec": {"azureIdentity": "backend-identity",
                                                                     "selector": "backend"}},
        {"namespace": "payments", "name": "payments-identity-binding",
         "spec": {"azureIdentity": "payments-identity", "selector": "payments"}},
    ]
    facts.azure_pod_identity_exceptions.items = [
        {"namespace": "kube-system", "name": "aks-addon-exception",
         "spec": {"podLabels": {"kubernetes.azure.com/managedby": "aks"}}}]
    facts.azure_assigned_identities.items = [
        {"namespace": "default", "name": "payments-worker-payments-payments-identity", "pod": "payments-worker",
         "podNamespace": "payments", "nodename": "node-1", "status": "Assigned"}]
    chart = {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "aad-pod-identity"}
    facts.components.items = [
        {"kind": "DaemonSet", "namespace": "kube-system", "name": "aad-pod-identity-nmi", "component": "nmi",
         "labels": chart, "annotations": {"meta.helm.sh/release-name": "aad-pod-identity"},
         "images": ["mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17"], "desired": 3, "ready": 3},
        {"kind": "Deployment", "namespace": "default", "name": "mic", "component": "mic",
         "labels": {"component": "mic"}, "annotations": {}, "images": [], "desired": 2, "ready": 2},
    ]
    facts.legacy_pods.items = [
        pod("payments", "payments-worker", "payments-sa", {"aadpodidbinding": "payments"}, ("Pod", "payments-worker")),
        pod("reports", "reports-api-abc-1", "reports-sa", {"aadpodidbinding": "reports"}, ("Deployment", "reports-api")),
    ]
    facts.labelled_pods.items = [
        pod("finance", "backend-abc-1", "backend-sa", {"azure.workload.identity/use": "true"},
            ("Deployment", "backend"))]
    facts.service_accounts.items = [{"namespace": "finance", "name": "backend-sa", "client_id": CLIENT_BACKEND}]
    facts.identities = {
        CLIENT_BACKEND: managed_identity("myWorkloadId", CLIENT_BACKEND, ["system:serviceaccount:finance:backend-sa"]),
        CLIENT_PAYMENTS: managed_identity("paymentsId", CLIENT_PAYMENTS, []),
    }
    cluster = arm_cluster(True, [{"name": "payments-identity", "namespace": "payments", "bindingSelector": "payments",
                                  "identity": {"clientId": CLIENT_PAYMENTS, "resourceId": MI_ID + "paymentsId"}}],
                          [{"name": "metrics-exception", "namespace": "payments", "podLabels": {"app": "agent"}}])
    return facts, cluster


# ---------------------------------------------------------------- leftovers and severity


def test_a_clean_cluster_passes_every_migration_check() -> None:
    results = run_migration_checks(clean(), arm_cluster(False), AZURE, ExpectConfig(migration_complete=True))
    assert set(statuses(results).values()) == {PASS}, [(r.id, r.message) for r in results]
    assert coverage_rows(clean(), ISSUER) == []


@pytest.mark.parametrize("complete", [False, True])
def test_leftovers_are_warnings_until_the_migration_is_declared_complete(complete: bool) -> None:
    facts, cluster = leftover()
    results = run_migration_checks(facts, cluster, AZURE, ExpectConfig(migration_complete=complete))
    assert statuses(results) == {
        "migration.bindings_migrated": FAIL if complete else WARN,
        "migration.pods_unlabelled": FAIL if complete else WARN,
        "migration.objects_removed": FAIL if complete else WARN,
        "migration.components_removed": FAIL if complete else WARN,
        "migration.crds_removed": FAIL if complete else WARN,
        "migration.addon_disabled": FAIL if complete else WARN,
    }
    findings = {f.code: f for r in results for f in r.findings}
    assert set(findings) == {
        "POD_IDENTITY_BINDING_NOT_MIGRATED", "POD_IDENTITY_PODS_LABELLED", "POD_IDENTITY_OBJECTS_PRESENT",
        "POD_IDENTITY_NMI_INSTALLED", "POD_IDENTITY_MIC_INSTALLED", "POD_IDENTITY_CRDS_PRESENT",
        "POD_IDENTITY_ADDON_ENABLED",
    }
    assert {f.severity for f in findings.values()} == {"error" if complete else "warning"}
    assert all(f.remediation and f.layer == "migration" for f in findings.values())
    assert "payments/payments-identity-binding lacks service_account, federated_credential, labelled_pods" in (
        findings["POD_IDENTITY_BINDING_NOT_MIGRATED"].message)
    assert "finance/backend-binding" not in findings["POD_IDENTITY_BINDING_NOT_MIGRATED"].message


def test_remediation_names_the_real_objects_and_commands() -> None:
    facts, cluster = leftover()
    fixes = lines(run_migration_checks(facts, cluster, AZURE))
    expected = [
        # the add-on owns payments' identity: az removes its AzureIdentity and binding
        f"az aks pod-identity delete --cluster-name dev-aks --resource-group dev-rg --subscription {SUB} "
        "--namespace payments --name payments-identity",
        f"az aks pod-identity exception delete --cluster-name dev-aks --resource-group dev-rg --subscription {SUB} "
        "--namespace payments --name metrics-exception",
        f"az aks update --resource-group dev-rg --name dev-aks --subscription {SUB} --disable-pod-identity",
        "kubectl delete azureidentitybinding -n finance backend-binding",
        "kubectl delete azureidentity -n finance backend-identity",
        "kubectl delete azurepodidentityexception -n kube-system aks-addon-exception",
        "kubectl delete azureassignedidentity -n default payments-worker-payments-payments-identity",
        "helm uninstall -n kube-system aad-pod-identity",
        "kubectl delete deployment -n default mic",
        "kubectl label pod -n payments payments-worker aadpodidbinding-",
        "kubectl patch deployment/reports-api -n reports --type json -p "
        "'[{\"op\": \"remove\", \"path\": \"/spec/template/metadata/labels/aadpodidbinding\"}]'",
        "kubectl annotate serviceaccount -n payments payments-sa "
        f"azure.workload.identity/client-id={CLIENT_PAYMENTS} --overwrite",
        "az identity federated-credential create --name payments-payments-sa --identity-name paymentsId "
        f"--resource-group myRg --subscription {SUB} --issuer {ISSUER} --subject system:serviceaccount:payments:payments-sa "
        "--audiences api://AzureADTokenExchange",
    ]
    for line in expected:
        assert any(fix.startswith(line) for fix in fixes), (line, fixes)
    crds = next(fix for fix in fixes if fix.startswith("kubectl delete crd "))
    assert "azureidentitybindings.aadpodidentity.k8s.io" in crds and "azureassignedidentities" in crds
    assert not any(fix.startswith("kubectl delete azureidentity -n payments") for fix in fixes)


def test_a_cluster_value_that_is_not_a_name_becomes_a_placeholder() -> None:
    facts, cluster = leftover()
    facts.azure_identity_bindings.items[0]["name"] = "x; touch /tmp/p"
    fixes = lines(run_migration_checks(facts, cluster, AZURE))
    assert "kubectl delete azureidentitybinding -n finance '<name>'" in fixes


# ---------------------------------------------------------------- what cannot be read


def test_a_forbidden_crd_list_is_not_a_failure() -> None:
    facts = clean()
    facts.crds = ObjectList("customresourcedefinitions.apiextensions.k8s.io", error=FORBIDDEN)
    for complete in (False, True):
        results = {r.id: r for r in run_migration_checks(facts, arm_cluster(False), AZURE,
                                                         ExpectConfig(migration_complete=complete))}
        crds = results["migration.crds_removed"]
        assert crds.status == PASS and "refused" in crds.message  # the kinds are not served: no CRD can exist
        assert crds.evidence["unreadable"][0]["status"] == 403


def test_forbidden_lists_are_warnings_naming_what_could_not_be_read_even_once_complete() -> None:
    facts = clean()
    facts.crds = ObjectList("customresourcedefinitions.apiextensions.k8s.io", error=FORBIDDEN)
    facts.azure_identities = ObjectList("azureidentities.aadpodidentity.k8s.io", error=FORBIDDEN)
    facts.azure_identity_bindings = ObjectList("azureidentitybindings.aadpodidentity.k8s.io", error=FORBIDDEN)
    facts.components = ObjectList("daemonsets.apps,deployments.apps", error=FORBIDDEN)
    results = {r.id: r for r in run_migration_checks(facts, arm_cluster(False), AZURE,
                                                     ExpectConfig(migration_complete=True))}
    for check_id in ("migration.crds_removed", "migration.objects_removed", "migration.components_removed",
                     "migration.bindings_migrated"):
        result = results[check_id]
        assert result.status == WARN, (check_id, result.message)
        assert [f.code for f in result.findings] == ["POD_IDENTITY_UNREADABLE"]
        assert result.findings[0].severity == "warning" and "may not list" in result.message
    printed = lines([results["migration.objects_removed"]])
    assert "kubectl create clusterrole wi-harness-pod-identity-reader --verb=list '--resource=*.aadpodidentity.k8s.io'" \
        in printed  # kubectl refuses kinds the server does not serve (no CRD), not the group's wildcard
    # a comment (it fails while the gap is open); not kubectl auth can-i, which answers no for a kind without a CRD
    # whatever the RBAC (by hand in the lab: the printed ClusterRole pasted, the run passed, can-i still said no)
    assert ("# then check: kubectl get --raw /apis/aadpodidentity.k8s.io/v1/azureidentities (NotFound without its "
            "CRD, or a list, once the gap is closed; Forbidden while it is not)") in printed
    assert "# then check: kubectl auth can-i list daemonsets.apps (yes once the gap is closed)" in lines(
        [results["migration.components_removed"]])
    assert all(r.status != FAIL for r in results.values())


def test_kinds_that_are_served_reveal_their_crds_when_the_crd_list_is_forbidden() -> None:
    facts = clean()
    facts.crds = ObjectList("customresourcedefinitions.apiextensions.k8s.io", error=FORBIDDEN)
    facts.azure_identities.served = True
    crds = {r.id: r for r in run_migration_checks(facts, arm_cluster(False), AZURE)}["migration.crds_removed"]
    assert crds.status == WARN and crds.findings[0].code == "POD_IDENTITY_CRDS_PRESENT"
    assert crds.evidence["crds"] == ["azureidentities.aadpodidentity.k8s.io"]


def test_an_api_server_that_does_not_answer_is_an_error() -> None:
    facts = clean()
    facts.legacy_pods = ObjectList("pods", error=KubeFailure(0, "Unreachable", "no answer from the API server"))
    result = {r.id: r for r in run_migration_checks(facts, arm_cluster(False), AZURE)}["migration.pods_unlabelled"]
    assert result.status == FAIL and result.findings[0].code == "KUBE_UNREACHABLE"


def test_the_add_on_check_needs_arm() -> None:
    facts = clean()
    skipped = {r.id: r for r in run_migration_checks(facts, ClusterFacts(time.time()), None)}
    assert skipped["migration.addon_disabled"].status == SKIP
    failed_arm = ClusterFacts(time.time(), arm_cluster=Fetched("https://arm/c", 403, None, "no", "AuthorizationFailed"))
    result = {r.id: r for r in run_migration_checks(facts, failed_arm, AZURE)}["migration.addon_disabled"]
    assert result.status == SKIP and "AuthorizationFailed" in result.message
    off_with_leftovers = arm_cluster(False, [{"name": "x", "namespace": "y", "identity": {}}])
    result = {r.id: r for r in run_migration_checks(facts, off_with_leftovers, AZURE)}["migration.addon_disabled"]
    assert result.status == WARN and result.findings[0].code == "POD_IDENTITY_ADDON_ENABLED"


# ---------------------------------------------------------------- the coverage table


def test_coverage_rows_say_what_replaces_each_binding() -> None:
    facts, _ = leftover()
    finance, payments = coverage_rows(facts, ISSUER)
    assert finance == {
        "binding": "finance/backend-binding", "selector": "backend", "azure_identity": "finance/backend-identity",
        "identity_type": 0, "client_id": CLIENT_BACKEND, "identity": "myWorkloadId",
        "identity_kind": "managed_identity", "identity_lookup": "found",
        "service_accounts": ["finance/backend-sa"], "federated": True,
        "federated_subjects": ["system:serviceaccount:finance:backend-sa"],
        "labelled_pods": ["finance/backend-abc-1"], "uninjected_pods": [], "legacy_pods": [], "moved_to": [], "migrated": True,
        "missing": [], "unknown": [],
    }
    assert payments["legacy_pods"] == ["payments/payments-worker"] and payments["federated"] is False
    assert payments["missing"] == ["service_account", "federated_credential", "labelled_pods"]
    CoverageRow.model_validate(finance)
    CoverageRow.model_validate(payments)


def test_a_labelled_pod_the_webhook_never_mutated_does_not_cover_its_binding() -> None:
    """kubectl label pod ... azure.workload.identity/use=true on a running pod: the webhook acts on CREATE only, so
    the pod has no projected token and no AZURE_CLIENT_ID; a pod created before the ServiceAccount was annotated has
    the token but not the client id. Neither covers the binding; the fix labels the template and restarts it."""
    facts, cluster = leftover()
    injected = {"token_audiences": ["api://AzureADTokenExchange"], "client_ids": [CLIENT_BACKEND]}
    for extra, covered in (({"token_audiences": [], "client_ids": []}, False),
                           ({"token_audiences": ["api://AzureADTokenExchange"], "client_ids": []}, False),
                           ({"token_audiences": ["api://AzureADTokenExchange"], "client_ids": [CLIENT_PAYMENTS]}, False),
                           ({**injected, "client_ids": [CLIENT_BACKEND.upper()]}, True)):
        facts.labelled_pods.items = [{**pod("finance", "backend-abc-1", "backend-sa",
                                            {"azure.workload.identity/use": "true"}, ("Deployment", "backend")),
                                      **extra}]
        finance = coverage_rows(facts, ISSUER)[0]
        assert finance["migrated"] is covered, extra
        assert finance["uninjected_pods"] == ([] if covered else ["finance/backend-abc-1"])
        assert finance["missing"] == ([] if covered else ["labelled_pods"])
        CoverageRow.model_validate(finance)
    facts.labelled_pods.items = [{**pod("finance", "backend-abc-1", "backend-sa",
                                        {"azure.workload.identity/use": "true"}, ("Deployment", "backend")),
                                  "token_audiences": [], "client_ids": []},
                                 {**pod("finance", "backend-abc-2", "backend-sa",
                                        {"azure.workload.identity/use": "true"}, ("Deployment", "backend")), **injected}]
    outcome = bindings_migrated(MigrationContext(facts, cluster, AZURE, ExpectConfig(migration_complete=True)))
    finding = next(f for f in outcome.findings if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "finance/backend-abc-1 labelled azure.workload.identity/use but run without its identity" in finding.message
    lines = finding.fix_lines()
    patch = next(i for i, line in enumerate(lines) if line.startswith("kubectl patch deployment/backend -n finance"))
    assert lines[patch + 1].startswith("kubectl rollout restart deployment/backend -n finance"), lines


def test_nmi_gone_while_bound_pods_have_no_workload_id_token_is_an_error_even_before_complete() -> None:
    """payments-worker (bound, no Workload ID) loses NMI: an error first in components_removed, with the coverage
    fixes; a pod whose label matches no binding, or one already injected with a token, does not count; MIC gone
    alone, or a components list the harness may not read, is not judged."""
    facts, cluster = leftover()
    ctx = MigrationContext(facts, cluster, AZURE, ExpectConfig(migration_complete=False))
    assert components_removed(ctx).status == WARN
    facts.components.items = [c for c in facts.components.items if c["component"] != "nmi"]
    outcome = components_removed(ctx)
    assert outcome.status == FAIL and [f.code for f in outcome.findings] == [
        "POD_IDENTITY_REMOVED_EARLY", "POD_IDENTITY_MIC_INSTALLED"]
    early = outcome.findings[0]
    assert early.severity == "error" and early.evidence["pods"] == ["payments/payments-worker"]  # reports: no binding
    assert any(line.startswith("kubectl annotate serviceaccount -n payments payments-sa ") for line in early.fix_lines())
    facts.legacy_pods.items[0] = {**facts.legacy_pods.items[0], "labels": {
        "aadpodidbinding": "payments", "azure.workload.identity/use": "true"},
        "token_audiences": ["api://AzureADTokenExchange"], "client_ids": [CLIENT_PAYMENTS]}
    assert components_removed(ctx).status == WARN
    # NMI's DaemonSet "scaled to 0" by hand (a nodeSelector no node matches): no NMI pod anywhere, the same
    facts, cluster = leftover()
    nmi = next(c for c in facts.components.items if c["component"] == "nmi")
    nmi |= {"desired": 0, "ready": 0}
    outcome = components_removed(MigrationContext(facts, cluster, AZURE))
    assert outcome.status == FAIL and outcome.findings[0].code == "POD_IDENTITY_REMOVED_EARLY"
    assert "DaemonSet kube-system/aad-pod-identity-nmi schedules no pod" in outcome.findings[0].message
    facts, cluster = leftover()
    facts.components.items = [c for c in facts.components.items if c["component"] != "mic"]
    assert components_removed(MigrationContext(facts, cluster, AZURE)).status == WARN
    facts.components.items, facts.components.error = [], KubeFailure(status=403, reason="Forbidden", message="no")
    assert all(f.code != "POD_IDENTITY_REMOVED_EARLY" for f in components_removed(
        MigrationContext(facts, cluster, AZURE)).findings)


def test_the_add_ons_own_nmi_is_removed_through_az_with_aks_preview_first() -> None:
    """NMI the AKS add-on runs goes with az aks update --disable-pod-identity, a flag az 2.91 has only with the
    aks-preview extension ("unrecognized arguments: --disable-pod-identity" without it): the extension first."""
    facts, cluster = leftover()
    facts.components.items[0]["labels"] = {"kubernetes.azure.com/managedby": "aks"}
    facts.components.items[0]["annotations"] = {}
    outcome = components_removed(MigrationContext(facts, cluster, AZURE))
    nmi = next(f for f in outcome.findings if f.code == "POD_IDENTITY_NMI_INSTALLED")
    assert nmi.fix_lines()[0].startswith("az extension add --upgrade --name aks-preview")
    assert nmi.fix_lines()[1].startswith("az aks update ") and "--disable-pod-identity" in nmi.fix_lines()[1]


def test_a_binding_nothing_uses_warns_before_annotating_a_service_account_that_moved_to_another_identity() -> None:
    """payments-worker recreated for Workload ID with a new identity (its ServiceAccount names that one): no pod
    is labelled with the binding's selector and no ServiceAccount names its client id. The fix says so before its
    annotate line, whose <sa> a person fills: with the moved workload's ServiceAccount it would take the new
    identity away."""
    facts, cluster = leftover()
    facts.legacy_pods.items = [p for p in facts.legacy_pods.items if p["name"] != "payments-worker"]
    outcome = bindings_migrated(MigrationContext(facts, cluster, AZURE))
    lines = next(f for f in outcome.findings if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    note = next(i for i, line in enumerate(lines) if "no pod is labelled aadpodidbinding=payments" in line)
    annotate = next(i for i, line in enumerate(lines) if line.startswith("kubectl annotate serviceaccount -n payments"))
    assert note < annotate and "'<sa>'" in lines[annotate]
    facts, cluster = leftover()  # the bare pod still there: no such note
    lines = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert not any("no pod is labelled" in line for line in lines)


def test_a_credential_for_another_issuer_or_another_service_account_does_not_cover() -> None:
    facts, _ = leftover()
    facts.identities[CLIENT_BACKEND] = managed_identity("myWorkloadId", CLIENT_BACKEND,
                                                        ["system:serviceaccount:finance:backend-sa"],
                                                        issuer=ISSUER.rstrip("/"))
    finance = coverage_rows(facts, ISSUER)[0]
    assert finance["federated"] is False and finance["missing"] == ["federated_credential"]
    facts.identities[CLIENT_BACKEND] = managed_identity("myWorkloadId", CLIENT_BACKEND,
                                                        ["system:serviceaccount:finance:other-sa"])
    finance = coverage_rows(facts, ISSUER)[0]
    assert finance["federated"] is True and finance["missing"] == ["federated_credential"]


def test_an_identity_the_harness_cannot_see_leaves_the_credential_unknown() -> None:
    facts, cluster = leftover()
    facts.identities[CLIENT_BACKEND] = IdentityFacts(configured=True, note="not visible")
    finance = coverage_rows(facts, ISSUER)[0]
    assert finance["identity_lookup"] == "not_visible" and finance["federated"] is None
    assert finance["unknown"] == ["federated_credential"] and not finance["migrated"] and not finance["missing"]
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.bindings_migrated"]
    assert "POD_IDENTITY_COVERAGE_UNKNOWN" in {f.code for f in result.findings}


SP_TENANT = "00000000-0000-4000-8000-0000000000f1"


def test_a_service_principal_of_another_tenant_the_harness_cannot_see_gets_its_tenant_and_a_credential_first() -> None:
    """An AzureIdentity of type 1 (a service principal, clientPassword) whose tenantID is not the cluster's, its
    app registration invisible to the harness (another tenant), its pods still on aadpodidbinding. The fix annotates
    the ServiceAccount with the client id and that tenant (the webhook injects the cluster's tenant otherwise),
    lists and creates the credential on the app registration (not az identity federated-credential with a
    placeholder), and labels the pods only after it; the message says what it cannot tell."""
    facts, cluster = leftover()
    facts.azure_identities.items[1]["spec"] = {"type": 1, "clientID": CLIENT_PAYMENTS, "tenantID": SP_TENANT}
    facts.identities[CLIENT_PAYMENTS] = IdentityFacts(configured=True, note="not visible")
    row = coverage_rows(facts, ISSUER)[1]
    assert row["identity_type"] == 1 and row["unknown"] == ["federated_credential"]
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.bindings_migrated"]
    finding = next(f for f in result.findings if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "(cannot tell federated_credential)" in finding.message
    fixes = finding.fix_lines()
    tenant = next(i for i, line in enumerate(fixes) if "azure.workload.identity/tenant-id=" in line)
    assert fixes[tenant] == (f"kubectl annotate serviceaccount -n payments payments-sa "
                             f"azure.workload.identity/tenant-id={SP_TENANT} --overwrite")
    listed = next(i for i, line in enumerate(fixes) if line.startswith("az ad app federated-credential list"))
    created = next(i for i, line in enumerate(fixes) if line.startswith("az ad app federated-credential create"))
    assert f"--id {CLIENT_PAYMENTS}" in fixes[created] and "system:serviceaccount:payments:payments-sa" in fixes[created]
    assert not any(line.startswith("az identity federated-credential") for line in fixes)
    assert not any("<" in line for line in fixes if not line.startswith("#"))
    # the bare pod is recreated labelled only after the credential
    recreate = next(i for i, line in enumerate(fixes) if "recreate pod payments/payments-worker" in line)
    assert tenant < listed < created < recreate


def test_a_binding_naming_an_azure_identity_its_namespace_lacks_is_deleted_not_migrated() -> None:
    """A typo in spec.azureIdentity: MIC finds no identity in the binding's namespace and assigns nothing, so the
    fix is deleting the binding, not annotating a ServiceAccount with a client id there is none of."""
    facts, cluster = leftover()
    facts.azure_identity_bindings.items[1]["spec"]["azureIdentity"] = "payments-identty"
    row = coverage_rows(facts, ISSUER)[1]
    assert row["azure_identity"] is None and row["client_id"] is None and not row["migrated"]
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.bindings_migrated"]
    fixes = next(f for f in result.findings if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert "kubectl delete azureidentitybinding -n payments payments-identity-binding" in fixes
    assert not any("client-id" in line or "<" in line for line in fixes if not line.startswith("#"))


def test_an_assigned_identity_whose_finalizer_no_mic_will_remove_gets_it_dropped_before_its_delete() -> None:
    facts, cluster = leftover()
    facts.azure_assigned_identities.items[0]["finalizers"] = ["azureassignedidentity.finalizers.aadpodidentity.k8s.io"]
    name = facts.azure_assigned_identities.items[0]["name"]
    facts.components.items = [c for c in facts.components.items if c["component"] != "mic"]  # MIC uninstalled
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.objects_removed"]
    fixes = result.findings[0].fix_lines()
    patch = fixes.index(f"kubectl patch azureassignedidentity -n default {name} --type merge -p "
                        "'{\"metadata\":{\"finalizers\":null}}'")
    assert patch < fixes.index(f"kubectl delete azureassignedidentity -n default {name}")
    facts, cluster = leftover()  # MIC still runs: it removes the finalizer itself
    facts.azure_assigned_identities.items[0]["finalizers"] = ["azureassignedidentity.finalizers.aadpodidentity.k8s.io"]
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.objects_removed"]
    assert not any(line.startswith("kubectl patch") for line in result.findings[0].fix_lines())


def test_an_msi_the_harness_cannot_see_gets_its_credential_on_the_resource_id_its_azure_identity_names() -> None:
    facts, cluster = leftover()
    facts.azure_identities.items[1]["spec"] = {"type": 0, "clientID": CLIENT_PAYMENTS,
                                               "resourceID": MI_ID + "paymentsId", "tenantID": SP_TENANT}
    facts.identities[CLIENT_PAYMENTS] = IdentityFacts(configured=True, note="not visible")
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.bindings_migrated"]
    fixes = next(f for f in result.findings if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert any(line.startswith("az identity federated-credential list") and "--identity-name paymentsId" in line
               for line in fixes)
    assert any(line.startswith("az identity federated-credential create") and "--identity-name paymentsId" in line
               for line in fixes)
    assert not any("tenant-id=" in line for line in fixes)  # an MSI's tenantID is not where it signs in


def test_what_the_harness_may_not_list_is_unknown_in_the_coverage_never_missing() -> None:
    facts, cluster = leftover()
    facts.service_accounts = ObjectList("serviceaccounts", error=FORBIDDEN)
    rows = coverage_rows(facts, ISSUER)
    assert all(r["unknown"][0] == "service_account" and "labelled_pods" in r["unknown"] for r in rows)
    assert all("service_account" not in r["missing"] and "labelled_pods" not in r["missing"] for r in rows)
    facts, cluster = leftover()
    facts.azure_identities = ObjectList("azureidentities.aadpodidentity.k8s.io", error=FORBIDDEN)
    rows = coverage_rows(facts, ISSUER)
    assert [(r["missing"], r["unknown"]) for r in rows] == [
        ([], ["service_account", "federated_credential", "labelled_pods"])] * 2
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE, ExpectConfig(migration_complete=True))}
    covered = result["migration.bindings_migrated"]
    assert covered.status == WARN
    assert {f.code for f in covered.findings} == {"POD_IDENTITY_UNREADABLE", "POD_IDENTITY_COVERAGE_UNKNOWN"}


def test_the_leftovers_section_is_flat_tables_and_valid() -> None:
    facts, cluster = leftover()
    section = leftovers_section(facts, cluster, ExpectConfig(migration_complete=True))
    Leftovers.model_validate(section)
    assert section["addon_enabled"] is True and section["migration_complete"] is True
    assert {o["kind"] for o in section["objects"]} == {"AzureIdentity", "AzureIdentityBinding",
                                                       "AzurePodIdentityException", "AzureAssignedIdentity"}
    assert [c["release"] for c in section["components"]] == ["aad-pod-identity", None]


# ---------------------------------------------------------------- the collector, through the fake API


def crd(plural: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{plural}.aadpodidentity.k8s.io"}, "spec": {"group": "aadpodidentity.k8s.io",
                                                                                "versions": [{"name": "v1"}]}}


def test_collector_reads_what_is_served_and_records_what_is_not() -> None:
    world = World.healthy()
    world.kube_objects = {
        "customresourcedefinitions.apiextensions.k8s.io": [crd("azureidentities"), crd("azureidentitybindings"),
                                                            {"metadata": {"name": "other.example.com"},
                                                             "spec": {"group": "example.com"}}],
        "azureidentities.aadpodidentity.k8s.io": [{"metadata": {"namespace": "finance", "name": "old"},
                                                   "spec": {"type": 0, "ClientID": world.workloads[0].client_id,
                                                            "clientPassword": {"name": "s", "namespace": "n"}}}],
        "azureidentitybindings.aadpodidentity.k8s.io": [{"metadata": {"namespace": "finance", "name": "old-binding"},
                                                         "spec": {"AzureIdentity": "old", "Selector": "old"}}],
        "daemonsets.apps": [
            {"metadata": {"namespace": "default", "name": "nmi", "labels": {"component": "nmi", "tier": "node"}},
             "spec": {"template": {"spec": {"containers": [{"image": "x/nmi:1"}]}}}},
            {"metadata": {"namespace": "kube-system", "name": "kube-proxy"}, "spec": {}},
        ],
        "deployments.apps": [{"metadata": {"namespace": "ops", "name": "identity-controller"}, "spec": {"template": {
            "spec": {"containers": [{"image": "mcr.microsoft.com/oss/azure/aad-pod-identity/mic:v1.8.17"}]}}}}],
    }
    world.forbidden_lists = {"azurepodidentityexceptions.aadpodidentity.k8s.io"}
    backend = world.backend()
    facts = collect_migration(backend.kube, backend.arm, None, backend.graph)
    assert [c["name"] for c in facts.crds.items] == ["azureidentities.aadpodidentity.k8s.io",
                                                     "azureidentitybindings.aadpodidentity.k8s.io"]
    assert facts.azure_identities.items[0]["spec"] == {"type": 0, "clientID": world.workloads[0].client_id}
    assert facts.azure_identity_bindings.items[0]["spec"] == {"azureIdentity": "old", "selector": "old"}
    exceptions = facts.azure_pod_identity_exceptions
    assert exceptions.error is not None and exceptions.error.status == 403
    assert facts.azure_assigned_identities.served is False and facts.azure_assigned_identities.error is None
    assert [(c["kind"], c["name"], c["component"]) for c in facts.components.items] == [
        ("DaemonSet", "nmi", "nmi"), ("Deployment", "identity-controller", "mic")]
    assert {(sa["namespace"], sa["name"]) for sa in facts.service_accounts.items} == {
        ("finance", "backend-sa"), ("orders", "orders-sa")}
    assert [i.configured for i in facts.identities.values()] == [False]  # no Azure configured: not looked up
    rows = coverage_rows(facts, ISSUER)
    assert rows[0]["service_accounts"] == ["finance/backend-sa"] and rows[0]["identity_lookup"] == "not_looked_up"


def test_collector_looks_each_identity_up_once_and_reuses_the_workloads() -> None:
    world = World.healthy()
    client_id = world.workloads[0].client_id
    world.kube_objects = {
        "customresourcedefinitions.apiextensions.k8s.io": [crd("azureidentities"), crd("azureidentitybindings")],
        "azureidentities.aadpodidentity.k8s.io": [{"metadata": {"namespace": "finance", "name": "old"},
                                                   "spec": {"type": 0, "clientID": client_id}}],
        "azureidentitybindings.aadpodidentity.k8s.io": [
            {"metadata": {"namespace": "finance", "name": name}, "spec": {"azureIdentity": "old", "selector": name}}
            for name in ("a", "b")],
    }
    backend = world.backend()
    azure = AzureConfig(tenant_id=world.tenant_id, subscription_id=world.subscription_id, resource_group="dev-rg",
                        cluster_name="dev-aks")
    facts = collect_migration(backend.kube, backend.arm, azure, backend.graph)
    assert facts.identities[client_id.lower()].kind == "managed_identity"
    graph_queries = [c for c in backend.arm.calls if "resourcegraph" in c.lower()]  # type: ignore[attr-defined]
    assert len(graph_queries) == 1  # two bindings, one identity: one lookup
    known = facts.identities[client_id.lower()]
    again = world.backend()
    reused = collect_migration(again.kube, again.arm, azure, again.graph, [known])
    assert reused.identities[client_id.lower()] is known and again.arm.calls == []  # type: ignore[attr-defined]
    # the bindings deleted, a pod of finance still labelled aadpodidbinding: its namespace's AzureIdentity that no
    # binding names is looked up (pods_unlabelled reads its federated credentials); none left labelled: not
    world.kube_objects["azureidentitybindings.aadpodidentity.k8s.io"] = []
    for labelled, looked_up in ((False, False), (True, True)):
        orphan = world.backend()
        other = world.workloads[1]  # the pod runs as a ServiceAccount naming another identity: looked up too
        if labelled:
            orphan.kube.pods[(other.namespace, "p")] = {  # type: ignore[attr-defined]
                "metadata": {"name": "p", "namespace": other.namespace, "labels": {"aadpodidbinding": "a"}},
                "spec": {"serviceAccountName": other.service_account}}
            world.kube_objects["azureidentities.aadpodidentity.k8s.io"][0]["metadata"]["namespace"] = other.namespace
        facts = collect_migration(orphan.kube, orphan.arm, azure, orphan.graph)
        assert (client_id.lower() in facts.identities) is looked_up
        assert (other.client_id.lower() in facts.identities) is looked_up


def test_component_detection_by_chart_labels_manifest_labels_or_image() -> None:
    chart = {"metadata": {"labels": {"app.kubernetes.io/name": "aad-pod-identity",
                                     "app.kubernetes.io/component": "mic"}}}
    manifest = {"metadata": {"labels": {"component": "nmi", "k8s-app": "aad-pod-id"}}}
    image = {"spec": {"template": {"spec": {"containers": [
        {"image": "myacr.azurecr.io/mirror/aad-pod-identity/nmi@sha256:" + "a" * 64}]}}}}
    unrelated = {"metadata": {"labels": {"component": "nmi"}}, "spec": {"template": {"spec": {"containers": [
        {"image": "example/other:1"}]}}}}
    assert [component_of(o) for o in (chart, manifest, image, unrelated)] == ["mic", "nmi", "nmi", None]


def test_fake_kube_lists_pods_by_label_existence() -> None:
    world = World.healthy()
    kube = FakeKube(world)
    kube.pods[("a", "p")] = {"metadata": {"name": "p", "namespace": "a", "labels": {"aadpodidbinding": "x"}}}
    kube.pods[("a", "q")] = {"metadata": {"name": "q", "namespace": "a", "labels": {}}}
    assert [p["metadata"]["name"] for p in kube.list_pods(None, "aadpodidbinding")[0]] == ["p"]


def test_a_binding_whose_pods_run_as_a_service_account_naming_another_identity_keeps_that_annotation() -> None:
    """By hand in the lab: reports-sa annotated (--overwrite) with a new identity, federated, the template labelled;
    its pods still carry aadpodidbinding=reports. The fix annotated reports-sa with the binding's old client id
    --overwrite, taking the workload back off the identity it was moved to (and, with no restart, reaching no pod).
    Now the row names the move, and the fix lists the old identity's roles to grant the new one."""
    old, new = "12121212-3434-4565-8787-909090909090", "abababab-cdcd-4efe-8a8a-bcbcbcbcbcbc"
    facts, cluster = leftover()
    bind_reports(facts, old)
    facts.identities[old] = managed_identity("reportsId", old, ["system:serviceaccount:reports:reports-sa"])
    facts.service_accounts.items.append({"namespace": "reports", "name": "reports-sa", "client_id": new})
    legacy = next(p for p in facts.legacy_pods.items if p["name"] == "reports-api-abc-1")
    legacy["labels"] = {"aadpodidbinding": "reports", "azure.workload.identity/use": "true"}
    legacy |= {"token_audiences": ["api://AzureADTokenExchange"], "client_ids": [new]}
    row = next(r for r in coverage_rows(facts, ISSUER) if r["binding"] == "reports/reports-binding")
    assert row["moved_to"] == [f"reports/reports-sa={new}"] and not row["migrated"]
    CoverageRow.model_validate(row)
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert f"reports/reports-sa, which names another identity's client id {new}" in finding.message
    fixes = finding.fix_lines()
    assert not any("annotate serviceaccount -n reports" in line for line in fixes)
    at = fixes.index(f"az role assignment list --assignee {old} --all -o table")
    assert f"names client id {new}" in fixes[at - 1] and "leave the annotation" in fixes[at - 1]
    assert not any("deployment/reports-api" in line for line in fixes)  # its pods already have that identity
    # both identities' role assignments read: the old one's Key Vault role the new one lacks is granted to it
    kv = f"/subscriptions/{SUB}/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/reports-kv"
    role = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"
    facts.identities[old].role_assignments = [{"properties": {"roleDefinitionId": role, "scope": kv}}]
    facts.identities[old].role_names = {role.lower(): "Key Vault Secrets User"}
    facts.identities[new] = managed_identity("reportsWiId", new, ["system:serviceaccount:reports:reports-sa"])
    facts.identities[new].identity["properties"]["principalId"] = "cdcdcdcd-1111-4222-8333-444444444444"  # type: ignore[index]
    facts.identities[new].role_assignments = []
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert f"it lacks Key Vault Secrets User on {kv}, which this one holds" in finding.message
    assert ("az role assignment create --assignee-object-id cdcdcdcd-1111-4222-8333-444444444444 --assignee-principal-type "
            f"ServicePrincipal --role 'Key Vault Secrets User' --scope {kv}") in finding.fix_lines()
    # granted at the resource group above the vault (as pasted, or broader): every role moved
    facts.identities[new].role_assignments = [{"properties": {"roleDefinitionId": role.upper(),
                                                              "scope": kv.rsplit("/providers/", 1)[0]}}]
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "it holds every role this one holds" in finding.message
    assert not any(line.startswith("az role assignment") for line in finding.fix_lines())
    # the old identity's role taken away before the new one was granted it: no 'every role' reassurance
    facts.identities[old].role_assignments = []
    facts.identities[new].role_assignments = []
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "this one holds no role now (taken away before the move?)" in finding.message
    assert "every role" not in finding.message
    legacy |= {"client_ids": [], "token_audiences": []}  # started before the annotation: new pods are needed
    fixes = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert "kubectl rollout restart deployment/reports-api -n reports" in " ".join(fixes)


def test_a_pod_whose_binding_was_deleted_before_it_moved_is_named_as_having_no_identity_and_moved() -> None:
    """By hand in the lab: kubectl delete azureidentitybinding reports-binding while reports-api still ran on pod
    identity (its template's use label removed). POD_IDENTITY_PODS_LABELLED only said to drop the label 'once the
    workload uses Workload ID'. Now it says the pod gets no token at all (MIC matches the selector exactly), names
    the AzureIdentity no binding names, and moves the workload to it first, skipping what is already there."""
    client = "13131313-2424-4353-8464-575757575757"
    facts, cluster = leftover()
    facts.azure_identities.items.append({"namespace": "reports", "name": "reports-identity",
                                         "spec": {"type": 0, "clientID": client, "resourceID": MI_ID + "reportsId"}})
    facts.service_accounts.items.append({"namespace": "reports", "name": "reports-sa", "client_id": client})
    outcome = pods_unlabelled(MigrationContext(facts, cluster, AZURE))
    finding = outcome.findings[0]
    assert finding.code == "POD_IDENTITY_PODS_LABELLED" and outcome.evidence["unbound"] == [
        "reports/reports-api-abc-1"]  # payments-worker's label matches payments-identity-binding
    assert ("reports/reports-api-abc-1's aadpodidbinding='reports' matches no AzureIdentityBinding's selector and it "
            "has no Workload ID token: it gets no token at all; AzureIdentity reports/reports-identity") in finding.message
    fixes = finding.fix_lines()
    assert not any(line.startswith("kubectl annotate") for line in fixes)  # reports-sa already names it
    create = fixes.index(next(line for line in fixes if "federated-credential create" in line))
    assert "--identity-name reportsId" in fixes[create] and "system:serviceaccount:reports:reports-sa" in fixes[create]
    assert fixes[create + 2] == "kubectl rollout restart deployment/reports-api -n reports   # the webhook acts on pod CREATE only"
    assert fixes.index(next(line for line in fixes if '"op": "remove"' in line)) > create  # the label goes last
    facts.identities[client] = managed_identity("reportsId", client, ["system:serviceaccount:reports:reports-sa"])
    assert not any("federated-credential create" in line
                   for line in pods_unlabelled(MigrationContext(facts, cluster, AZURE)).findings[0].fix_lines())
    # a label differing from a binding's selector only in case: named, and never given that identity
    facts.legacy_pods.items[0]["labels"] = {"aadpodidbinding": "Payments"}
    message = pods_unlabelled(MigrationContext(facts, cluster, AZURE)).findings[0].message
    assert "differs from payments/payments-identity-binding's only in case or spaces: MIC matches exactly" in message
    # a selector with a trailing space (a label value cannot hold one): the binding's fix quotes it
    facts.legacy_pods.items[0]["labels"] = {"aadpodidbinding": "payments"}
    facts.azure_identity_bindings.items[1]["spec"]["selector"] = "payments "
    assert "differs from payments/payments-identity-binding's" in pods_unlabelled(
        MigrationContext(facts, cluster, AZURE)).findings[0].message
    fixes = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert "# payments/payments-identity-binding (selector 'payments ', client id " in " ".join(fixes)
    # its workload is the pod labelled 'payments': its ServiceAccount is annotated, not a '<sa>' placeholder
    assert f"kubectl annotate serviceaccount -n payments payments-sa azure.workload.identity/client-id=" \
           f"{CLIENT_PAYMENTS} --overwrite" in fixes


def test_a_binding_whose_managed_identity_was_deleted_makes_it_again_rather_than_annotating_a_dead_client_id() -> None:
    """By hand in the lab: az identity delete goneId, its AzureIdentity (type 0, resourceID) and binding left, a
    Deployment labelled aadpodidbinding. The fix annotated the ServiceAccount with the dead client id and created a
    federated credential on it: az answered '(NotFound) The parent user-assigned identity doesn't exist.'. Now: what
    the resource group holds, az identity create, and once the ServiceAccount names the new one, no role listing of
    the old."""
    dead, new = "14141414-2525-4363-8474-585858585858", "15151515-2626-4373-8484-595959595959"
    facts, cluster = leftover()
    facts.azure_identities.items.append({"namespace": "reports", "name": "gone-identity", "spec": {
        "type": 0, "clientID": dead, "resourceID": MI_ID + "goneId"}})
    facts.azure_identity_bindings.items.append({"namespace": "reports", "name": "gone-binding",
                                                "spec": {"azureIdentity": "gone-identity", "selector": "reports"}})
    # found nowhere by client id, and the GET of its resourceID answered 404 (the collector's RESOURCE_GONE)
    facts.identities[dead] = IdentityFacts(configured=True, resource_id=MI_ID + "goneId", resolved_by=RESOURCE_GONE)

    def fixes() -> tuple[str, list[str]]:
        finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                       if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
        at = finding.fix_lines().index(f"# reports/gone-binding (selector reports, client id {dead}):")
        return finding.message, finding.fix_lines()[at:]

    message, lines = fixes()
    assert "reports/gone-binding lacks service_account, labelled_pods (its managed identity is deleted: its " \
           "AzureIdentity's resourceID is not there, or holds another client id)" in message
    assert lines[2] == f"az identity list --resource-group myRg --subscription {SUB} --query " \
                       "'[].{name: name, clientId: clientId}' -o table"
    assert lines[4] == f"az identity create --name goneId --resource-group myRg --subscription {SUB}"
    assert not any(dead in line for line in lines[1:] if not line.startswith("#"))
    facts.service_accounts.items.append({"namespace": "reports", "name": "reports-sa", "client_id": new})
    _, lines = fixes()  # made again and annotated: moved to it, and the dead one's roles are not listed
    assert "the old identity is deleted, its roles with it" in lines[1]
    assert not any(line.startswith(("az role assignment list", "az identity create")) for line in lines)
    facts.legacy_pods.items = [p for p in facts.legacy_pods.items if p["namespace"] != "reports"]  # label dropped
    _, lines = fixes()  # nothing uses it now and its identity is gone: deleted, not made again
    assert lines[2:4] == ["kubectl delete azureidentitybinding -n reports gone-binding",
                          "kubectl delete azureidentity -n reports gone-identity"]


def test_the_collector_tells_a_deleted_managed_identity_by_a_get_of_its_resource_id() -> None:
    """Resource Graph answers only what the harness may read: a client id found nowhere proves nothing. The GET of
    the AzureIdentity's resourceID does: 404 (az identity show: ResourceNotFound) is deleted."""
    world = World.healthy()
    dead = "16161616-2727-4383-8494-505050505050"
    gone_id = f"/subscriptions/{world.subscription_id}/resourcegroups/myRg/providers/" \
              "Microsoft.ManagedIdentity/userAssignedIdentities/goneId"
    world.kube_objects = {
        "customresourcedefinitions.apiextensions.k8s.io": [crd("azureidentities"), crd("azureidentitybindings")],
        "azureidentities.aadpodidentity.k8s.io": [{"metadata": {"namespace": "finance", "name": "gone"},
                                                   "spec": {"type": 0, "clientID": dead, "resourceID": gone_id}}],
        "azureidentitybindings.aadpodidentity.k8s.io": [
            {"metadata": {"namespace": "finance", "name": "b"}, "spec": {"azureIdentity": "gone", "selector": "b"}}],
    }
    backend = world.backend()
    azure = AzureConfig(tenant_id=world.tenant_id, subscription_id=world.subscription_id, resource_group="dev-rg",
                        cluster_name="dev-aks")
    looked_up = collect_migration(backend.kube, backend.arm, azure, backend.graph).identities[dead]
    assert (looked_up.kind, looked_up.resolved_by, looked_up.resource_id) == (None, RESOURCE_GONE, gone_id)
    # its name made again (az identity create): another client id at that resourceID, the old one deleted all the same
    again = world.identity_id(world.workloads[0])
    world.kube_objects["azureidentities.aadpodidentity.k8s.io"][0]["spec"]["resourceID"] = again
    backend = world.backend()
    looked_up = collect_migration(backend.kube, backend.arm, azure, backend.graph).identities[dead]
    assert (looked_up.resolved_by, looked_up.resource_id) == (RESOURCE_GONE, again)
    # az rest GET in another tenant's or a mistyped subscription: SubscriptionNotFound, which proves nothing
    from harness.collect.migration import _resource_gone

    for code, gone in (("SubscriptionNotFound", False), ("ResourceGroupNotFound", True)):
        out = {dead: IdentityFacts(configured=True)}
        _resource_gone(lambda url, code=code: Fetched(url, 404, None, "not found", code),
                       {"type": 0, "clientID": dead, "resourceID": gone_id}, out)
        assert (out[dead].resolved_by == RESOURCE_GONE) is gone


def test_the_terminals_coverage_line_names_the_identity_a_binding_moved_to() -> None:
    """The terminal said 'reports/reports-binding ... lacks service_account, labelled_pods' for a workload the team
    had moved to another identity; the row's moved_to is named first."""
    row = {"binding": "reports/reports-binding", "client_id": "c", "migrated": False,
           "missing": ["service_account", "labelled_pods"], "unknown": [], "moved_to": ["reports/reports-sa=n"]}
    assert coverage_lines([row])[1].endswith("moved to reports/reports-sa=n; lacks service_account, labelled_pods")


def test_a_binding_whose_selector_was_edited_away_from_its_pods_labels_their_template() -> None:
    """By hand in the lab: kubectl patch azureidentitybinding reports-binding selector reports-v2, reports-api's
    pods still aadpodidbinding=reports under reports-sa (annotated, federated). The binding's fix was only 'label
    the pod template of each workload running as reports/reports-sa'; the pods' message did not say why they had
    no identity. Now the template patch is printed, and the pod names the binding whose identity its ServiceAccount
    names."""
    client = "17171717-2828-4393-8a0a-515151515151"
    facts, cluster = leftover()
    bind_reports(facts, client, selector="reports-v2")
    facts.service_accounts.items.append({"namespace": "reports", "name": "reports-sa", "client_id": client})
    facts.identities[client] = managed_identity("reportsId", client, ["system:serviceaccount:reports:reports-sa"])
    fixes = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert "kubectl patch deployment/reports-api -n reports --type merge -p " \
           "'{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}'" in fixes
    message = pods_unlabelled(MigrationContext(facts, cluster, AZURE)).findings[0].message
    assert "its ServiceAccount reports/reports-sa names the identity of reports/reports-binding (selector " \
           "'reports-v2'): that selector, or this label, edited?" in message


def test_a_service_principal_identitys_client_secret_secret_is_deleted_with_it() -> None:
    """By hand in the lab: batch-identity (type 1) names clientPassword batch/batch-identity-secret, where NMI read
    the app's client secret (pkg/nmi/standard.go); POD_IDENTITY_OBJECTS_PRESENT deleted the AzureIdentity and left
    the Secret (and the app's password). The collector keeps the reference only; the fix deletes the Secret,
    tolerating one already gone (the harness reads no Secrets)."""
    facts, cluster = leftover()
    facts.azure_identities.items.append({"namespace": "batch", "name": "batch-identity", "spec": {
        "type": 1, "clientID": CLIENT_PAYMENTS, "clientPassword": {"name": "batch-identity-secret", "namespace": ""}}})
    outcome = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.objects_removed"]
    finding = outcome.findings[0]
    assert finding.message.endswith("(and the 1 Secret their clientPassword names)")
    assert "kubectl delete secret -n batch batch-identity-secret --ignore-not-found" in finding.fix_lines()
    world = World.healthy()
    world.kube_objects = {"customresourcedefinitions.apiextensions.k8s.io": [crd("azureidentities")],
                          "azureidentities.aadpodidentity.k8s.io": [{
        "metadata": {"namespace": "batch", "name": "b"},
        "spec": {"type": 1, "clientID": CLIENT_PAYMENTS, "clientPassword": {"name": "s", "namespace": "batch"},
                 "clientSecret": "never-kept"}}]}
    backend = world.backend()
    kept = collect_migration(backend.kube, None, None).azure_identities.items[0]["spec"]
    assert kept == {"type": 1, "clientID": CLIENT_PAYMENTS, "clientPassword": {"name": "s", "namespace": "batch"}}


def test_mic_gone_while_nmi_runs_in_standard_mode_leaves_new_bound_pods_without_an_identity() -> None:
    """By hand in the lab: kubectl delete deploy aad-pod-identity-mic, then reports-api rolled out still bound
    (aadpodidbinding=reports, no use label): no AzureAssignedIdentity for the new pod, and NMI (standard mode)
    answers only from those (pkg/nmi/standard.go listPodIDsWithRetry). Only a warning that MIC is deployed had been
    said, then nothing. Pods MIC assigned before keep theirs; NMI in managed mode needs no MIC."""
    facts, cluster = leftover()
    bind_reports(facts, CLIENT_BACKEND)
    facts.components.items = [c for c in facts.components.items if c["component"] != "mic"]
    outcome = components_removed(MigrationContext(facts, cluster, AZURE))
    assert outcome.status == FAIL and outcome.findings[0].code == "POD_IDENTITY_REMOVED_EARLY"
    assert outcome.findings[0].evidence["pods"] == ["reports/reports-api-abc-1"]  # payments-worker was assigned
    assert "aad-pod-identity's MIC is not running" in outcome.findings[0].message
    nmi = next(c for c in facts.components.items if c["component"] == "nmi")
    nmi["operation_mode"] = "managed"
    assert components_removed(MigrationContext(facts, cluster, AZURE)).status == WARN
    from harness.collect.migration import _operation_mode

    assert [_operation_mode({"containers": [{"args": args}]}) for args in (
        ["--operation-mode=Managed"], ["--operation-mode", "managed"], ["--http-probe-port=8085"])] == [
        "managed", "managed", "standard"]


def test_a_cronjobs_bound_pods_are_fixed_on_its_job_template_not_on_the_job() -> None:
    """By hand in the lab: CronJob reports/nightly with aadpodidbinding=reports on its jobTemplate, kubectl create
    job --from=cronjob/nightly, MIC gone. The fixes patched job/nightly-manual's spec.template (immutable once a Job
    started: a real API server refuses it) and REMOVED_EARLY printed nothing to do. Now the CronJob's jobTemplate
    is patched, and the Job made before is deleted."""
    facts, cluster = leftover()
    bind_reports(facts, CLIENT_BACKEND)
    facts.service_accounts.items.append({"namespace": "reports", "name": "reports-sa", "client_id": CLIENT_BACKEND})
    facts.identities[CLIENT_BACKEND] = managed_identity("myWorkloadId", CLIENT_BACKEND, [
        "system:serviceaccount:finance:backend-sa", "system:serviceaccount:reports:reports-sa"])
    facts.legacy_pods.items[1] |= {"owner_kind": "CronJob", "owner_name": "nightly", "job": "nightly-manual"}
    facts.components.items = [c for c in facts.components.items if c["component"] != "mic"]
    early = components_removed(MigrationContext(facts, cluster, AZURE)).findings[0]
    assert early.code == "POD_IDENTITY_REMOVED_EARLY"
    assert early.fix_lines()[1:] == [  # its binding is not migrated while the CronJob's pods are not moved
        f"# reports/reports-binding (selector reports, client id {CLIENT_BACKEND}):",
        "kubectl patch cronjob/nightly -n reports --type merge -p '{\"spec\":{\"jobTemplate\":{\"spec\":{\"template\":"
        "{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":\"true\"}}}}}}}'",
        "# its next Job gets the identity (or now: kubectl create job -n reports --from=cronjob/nightly <job-name>)",
        "# Job reports/nightly-manual, made before, runs without an identity: delete it (its pods go too); the "
        "CronJob's next Job runs with the identity",
        "kubectl delete job -n reports nightly-manual"]
    drop = pods_unlabelled(MigrationContext(facts, cluster, AZURE)).findings[0].fix_lines()
    assert "kubectl patch cronjob/nightly -n reports --type json -p '[{\"op\": \"remove\", \"path\": " \
           "\"/spec/jobTemplate/spec/template/metadata/labels/aadpodidbinding\"}]'" in drop
    assert not any("job/nightly-manual" in line for line in drop)


def test_the_collector_names_the_cronjob_of_a_bound_jobs_pod() -> None:
    class Kube(FakeKube):
        def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                            field_selector: str = "") -> list[dict[str, Any]]:
            assert (group, plural, namespace) == ("batch", "jobs", "reports")
            return [{"metadata": {"name": "nightly-manual", "ownerReferences": [
                {"kind": "CronJob", "name": "nightly", "controller": True}]}}]

    kube = Kube(World.healthy())
    kube.pods[("reports", "nightly-manual-x")] = {
        "metadata": {"name": "nightly-manual-x", "namespace": "reports", "labels": {"aadpodidbinding": "reports"},
                     "ownerReferences": [{"kind": "Job", "name": "nightly-manual", "controller": True}]},
        "spec": {"serviceAccountName": "reports-sa"}}
    (pod,) = collect_migration(kube, None, None).legacy_pods.items
    assert (pod["owner_kind"], pod["owner_name"], pod["job"]) == ("CronJob", "nightly", "nightly-manual")


def test_exceptions_are_deleted_only_after_nmi_is_gone_while_it_still_intercepts_imds() -> None:
    """By hand in the lab (the migration scenario): the printed objects fix deleted the kube-system
    aks-addon-exception and payments' metrics-exception before helm uninstall. NMI answers an excepted pod
    straight from IMDS, any other with its AzureAssignedIdentity or an error: with the exceptions gone and NMI still
    there, the AKS add-ons' and the metrics agent's token requests are refused. Now the exception deletes come last,
    after a note that they wait for NMI; with no NMI left they stay in place."""
    facts, cluster = leftover()
    facts.azure_pod_identity_exceptions.items.append(  # the add-on's, as ARM lists it: az deletes it
        {"namespace": "payments", "name": "metrics-exception", "spec": {"podLabels": {"app": "agent"}}})
    fixes = next(f for f in objects_removed(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_OBJECTS_PRESENT").fix_lines()
    kubectl_exception = "kubectl delete azurepodidentityexception -n kube-system aks-addon-exception"
    arm_exception = next(i for i, line in enumerate(fixes) if line.startswith("az aks pod-identity exception delete"))
    note = next(i for i, line in enumerate(fixes) if "only once NMI is gone" in line)
    assert "kubernetes.azure.com/managedby=aks" in fixes[note]
    assert note < arm_exception and note < fixes.index(kubectl_exception)
    assert all(not line.startswith("kubectl delete azure") or "exception" in line or i < note
               for i, line in enumerate(fixes))
    assert fixes.index("kubectl delete azureassignedidentity -n default payments-worker-payments-payments-identity") \
        < note
    # NMI uninstalled: nothing intercepts IMDS, the exceptions select nothing that matters, no note
    facts.components.items = [c for c in facts.components.items if c["component"] != "nmi"]
    fixes = next(f for f in objects_removed(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_OBJECTS_PRESENT").fix_lines()
    assert not any("only once NMI is gone" in line for line in fixes)
    assert kubectl_exception in fixes
    # NMI's DaemonSet scheduling no pod intercepts nothing either; the components unreadable: assume it does
    facts, _ = leftover()
    facts.components.items[0]["desired"] = 0
    assert not any("only once NMI is gone" in line for f in objects_removed(MigrationContext(facts, cluster, AZURE))
                   .findings for line in f.fix_lines())
    facts.components = ObjectList("daemonsets.apps,deployments.apps", error=FORBIDDEN)
    assert any("only once NMI is gone" in line for f in objects_removed(MigrationContext(facts, cluster, AZURE))
               .findings for line in f.fix_lines())


def test_a_second_binding_on_one_selector_is_not_covered_by_another_workloads_service_account() -> None:
    """By hand in the lab: reports-binding-2 (selector reports, as reports-binding's) names ordersWorkloadId, so
    reports-api's pods held both identities under pod identity. reports-sa names reportsId; orders/orders-sa names
    ordersWorkloadId, is federated, and its pods run with it. The row counted orders-sa as reports-binding-2's
    replacement ("migrated"), though reports-api has no way to that identity now. Now it lacks service_account,
    names the move to reportsId, and annotates no ServiceAccount (neither orders-sa nor reports-sa)."""
    reports, orders = "12121212-3434-4565-8787-909090909090", "abababab-cdcd-4efe-8a8a-bcbcbcbcbcbc"
    facts, cluster = leftover()
    bind_reports(facts, reports)
    facts.azure_identities.items.append({"namespace": "reports", "name": "reports-identity-2",
                                         "spec": {"type": 0, "clientID": orders}})
    facts.azure_identity_bindings.items.append({"namespace": "reports", "name": "reports-binding-2",
                                                "spec": {"azureIdentity": "reports-identity-2", "selector": "reports"}})
    facts.identities[reports] = managed_identity("reportsId", reports, ["system:serviceaccount:reports:reports-sa"])
    facts.identities[orders] = managed_identity("ordersId", orders, ["system:serviceaccount:orders:orders-sa"])
    facts.service_accounts.items += [{"namespace": "reports", "name": "reports-sa", "client_id": reports},
                                     {"namespace": "orders", "name": "orders-sa", "client_id": orders}]
    legacy = next(p for p in facts.legacy_pods.items if p["name"] == "reports-api-abc-1")
    legacy["labels"] = {"aadpodidbinding": "reports", "azure.workload.identity/use": "true"}
    legacy |= {"token_audiences": ["api://AzureADTokenExchange"], "client_ids": [reports]}
    facts.labelled_pods.items += [
        dict(legacy),
        pod("orders", "orders-api-1", "orders-sa", {"azure.workload.identity/use": "true"}, ("Deployment", "orders-api"))
        | {"token_audiences": ["api://AzureADTokenExchange"], "client_ids": [orders]}]
    rows = {r["binding"]: r for r in coverage_rows(facts, ISSUER)}
    assert rows["reports/reports-binding"]["migrated"]
    second = rows["reports/reports-binding-2"]
    assert second["missing"] == ["service_account"] and not second["migrated"]
    assert second["moved_to"] == [f"reports/reports-sa={reports}"]
    CoverageRow.model_validate(second)
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "reports/reports-binding-2 lacks service_account" in finding.message
    assert "its client id is annotated on orders/orders-sa, which another workload's pods run as" in finding.message
    fixes = finding.fix_lines()
    start = next(i for i, line in enumerate(fixes) if line.startswith("# reports/reports-binding-2 "))
    own = fixes[start:next((i for i, line in enumerate(fixes) if i > start and line.startswith("# payments/")),
                           len(fixes))]
    assert "leave the annotation" in " ".join(own)
    assert not any("annotate serviceaccount" in line for line in own), own
    # orders-sa the binding's own pods' ServiceAccount too (one identity, both workloads moved to it): covered
    legacy["service_account"] = "orders-sa"
    assert next(r for r in coverage_rows(facts, ISSUER) if r["binding"] == "reports/reports-binding-2")["migrated"]


def test_pods_stranded_by_deleting_the_crds_are_moved_with_the_add_ons_client_id_not_just_unlabelled() -> None:
    """By hand in the lab (the migration scenario): kubectl delete crd for the four aadpodidentity.k8s.io kinds
    while payments-worker and two Deployments still ran on pod identity. bindings_migrated passed ("nothing to
    migrate"), and pods_unlabelled said their label "matches no AzureIdentityBinding's selector" and printed only
    the label's removal, which moves nothing. Now the CRDs' deletion is named, the client id the AKS add-on still
    lists for the selector is annotated and federated, and the pod template labelled (pasted in the lab: the
    recreated payments-worker got its Workload ID token)."""
    facts, cluster = leftover()
    facts.crds.items = []
    for listed in (facts.azure_identities, facts.azure_identity_bindings, facts.azure_pod_identity_exceptions,
                   facts.azure_assigned_identities):
        listed.served, listed.items = False, []
    facts.legacy_pods.items.append(pod("wrongid", "wrong-app-1", "default", {"aadpodidbinding": "wrongid"},
                                       ("Deployment", "wrong-app")))
    facts.legacy_pods.items.append(pod("wrongid", "wrong-app-2", "default", {"aadpodidbinding": "wrongid"},
                                       ("Deployment", "wrong-app")))
    results = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}
    assert results["migration.bindings_migrated"].status == WARN
    assert "payments/payments-worker" in results["migration.bindings_migrated"].message
    finding = next(f for f in results["migration.pods_unlabelled"].findings if f.code == "POD_IDENTITY_PODS_LABELLED")
    assert "the aadpodidentity.k8s.io CRDs are deleted" in finding.message
    assert "matches no AzureIdentityBinding" not in finding.message
    assert f"(client id {CLIENT_PAYMENTS})" in finding.message
    fixes = finding.fix_lines()
    assert ("kubectl annotate serviceaccount -n payments payments-sa "
            f"azure.workload.identity/client-id={CLIENT_PAYMENTS} --overwrite") in fixes
    assert any(line.startswith("az identity federated-credential create --name payments-payments-sa --identity-name "
                               "paymentsId") for line in fixes)
    assert any("recreate pod payments/payments-worker labelled azure.workload.identity/use" in line for line in fixes)
    # no client id anywhere for wrongid's selector: say where to find it; its template fixed once for both pods
    assert any("Deployment wrongid/wrong-app's identity went with its AzureIdentity" in line for line in fixes)
    assert sum(line.startswith("kubectl rollout restart deployment/wrong-app") for line in fixes) == 1
    # once they have their tokens, nothing is stranded: bindings_migrated passes as before
    for p in facts.legacy_pods.items:
        p["labels"]["azure.workload.identity/use"] = "true"
        p["token_audiences"] = ["api://AzureADTokenExchange"]
    assert bindings_migrated(MigrationContext(facts, cluster, AZURE)).status == PASS


def test_a_half_moved_selector_is_not_migrated_while_another_workloads_pods_still_use_pod_identity() -> None:
    """By hand in the lab: finance's backend moved (backend-sa annotated, federated, its pods injected), and a second
    Deployment, backend-cron, labelled aadpodidbinding=backend under finance/default. The row said "migrated", so
    the printed deletes would take backend-cron's identity away. Now it lacks service_account, credential and pods
    for finance/default, and the fix (pasted in the lab: the row then migrated) annotates that ServiceAccount, not
    backend-sa again."""
    facts, cluster = leftover()
    facts.legacy_pods.items.append(pod("finance", "backend-cron-1", "default", {"aadpodidbinding": "backend"},
                                       ("Deployment", "backend-cron")))
    row = next(r for r in coverage_rows(facts, ISSUER) if r["binding"] == "finance/backend-binding")
    assert not row["migrated"]
    assert row["missing"] == ["service_account", "federated_credential", "labelled_pods"]
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "finance/default, which its pods still on pod identity run as, names no client id" in finding.message
    fixes = finding.fix_lines()
    assert (f"kubectl annotate serviceaccount -n finance default azure.workload.identity/client-id={CLIENT_BACKEND} "
            "--overwrite") in fixes
    assert not any("annotate serviceaccount -n finance backend-sa" in line for line in fixes)
    assert any("--subject system:serviceaccount:finance:default" in line for line in fixes)
    assert any("deployment/backend-cron -n finance --type merge" in line for line in fixes)
    # done as printed: the ServiceAccount annotated and federated, new pods injected: migrated
    facts.service_accounts.items.append({"namespace": "finance", "name": "default", "client_id": CLIENT_BACKEND})
    facts.identities[CLIENT_BACKEND] = managed_identity("myWorkloadId", CLIENT_BACKEND, [
        "system:serviceaccount:finance:backend-sa", "system:serviceaccount:finance:default"])
    cron = facts.legacy_pods.items[-1]
    cron["labels"]["azure.workload.identity/use"] = "true"
    cron |= {"token_audiences": ["api://AzureADTokenExchange"], "client_ids": [CLIENT_BACKEND]}
    facts.labelled_pods.items.append(dict(cron))
    assert next(r for r in coverage_rows(facts, ISSUER) if r["binding"] == "finance/backend-binding")["migrated"]


def test_an_azure_identity_whose_resource_id_names_another_identity_than_its_client_id_says_which_one_the_pods_had() -> None:
    """By hand in the lab: AzureIdentity wrongid/wrong-identity with paymentsId's clientID and reportsId's
    resourceID. MIC assigns the resourceID's identity to the nodes, NMI asks IMDS for the clientID's token: the
    row's fix moves the workload to paymentsId (the clientID's) without a word about reportsId. Now the row names
    the mismatch; an AzureIdentity whose two ids agree says nothing."""
    facts, cluster = leftover()
    facts.azure_identities.items[1]["spec"]["resourceID"] = MI_ID + "reportsId"
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "its AzureIdentity's resourceID names reportsId, not paymentsId, which holds its clientID" in finding.message
    assert any("--identity-name paymentsId" in line for line in finding.fix_lines())
    facts.azure_identities.items[1]["spec"]["resourceID"] = (MI_ID + "paymentsId").upper()
    finding = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                   if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED")
    assert "resourceID names" not in finding.message


def test_the_use_label_put_on_the_service_account_is_named_where_the_pods_lack_it() -> None:
    """By hand in the lab: payments-sa annotated, federated and labelled azure.workload.identity/use=true (the
    place pre-1.0 docs gave it); payments-worker unlabelled. The row lacked labelled_pods with no word on why the
    label did nothing. Now the fix says the webhook reads it on pods only; the collector records it."""
    from harness.collect.migration import _service_account

    facts, cluster = leftover()
    sa = _service_account({"metadata": {"namespace": "payments", "name": "payments-sa",
                                        "labels": {"azure.workload.identity/use": "true"},
                                        "annotations": {"azure.workload.identity/client-id": CLIENT_PAYMENTS}}})
    assert sa is not None and sa["use_label"] is True
    facts.service_accounts.items.append(sa)
    fixes = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert any(line.startswith("# payments/payments-sa carries the azure.workload.identity/use label, which the "
                               "webhook does not read there") for line in fixes)
    facts.service_accounts.items[-1].pop("use_label")
    fixes = next(f for f in bindings_migrated(MigrationContext(facts, cluster, AZURE)).findings
                 if f.code == "POD_IDENTITY_BINDING_NOT_MIGRATED").fix_lines()
    assert not any("carries the azure.workload.identity/use label" in line for line in fixes)


def test_nmi_left_running_after_its_crds_were_deleted_is_said_to_answer_no_pod() -> None:
    """By hand in the lab: kubectl delete crd for the four kinds while NMI ran. NMI answers an intercepted pod from
    its exceptions or its assigned identities; with the CRDs gone it has neither, so the AKS add-ons' IMDS requests
    fail too. POD_IDENTITY_NMI_INSTALLED now says so; with the CRDs in place it does not."""
    facts, cluster = leftover()
    nmi = next(f for f in components_removed(MigrationContext(facts, cluster, AZURE)).findings
               if f.code == "POD_IDENTITY_NMI_INSTALLED")
    assert "its CRDs are deleted" not in nmi.message
    facts.crds.items = []
    for listed in (facts.azure_identities, facts.azure_identity_bindings, facts.azure_pod_identity_exceptions,
                   facts.azure_assigned_identities):
        listed.served, listed.items = False, []
    nmi = next(f for f in components_removed(MigrationContext(facts, cluster, AZURE)).findings
               if f.code == "POD_IDENTITY_NMI_INSTALLED")
    assert "its CRDs are deleted, so it finds no exception and no assigned identity for any pod" in nmi.message
    assert "helm uninstall -n kube-system aad-pod-identity" in nmi.fix_lines()


def test_a_workload_whose_selector_names_aadpodidbinding_is_made_again_not_patched() -> None:
    """reports-api moved to Workload ID keeps aadpodidbinding on its template, and its selector names the label too
    (matchLabels {app, aadpodidbinding}): the API server refuses the JSON patch that drops the template's label
    ("`selector` does not match template `labels`") and the selector cannot change, so the fix says to make the
    Deployment again. The collector tells which owners select on the label from the Deployments it lists."""
    world = World.healthy()
    selecting = {"matchLabels": {"app": "reports-api", "aadpodidbinding": "reports"}}
    world.kube_objects = {"deployments.apps": [
        {"metadata": {"namespace": "reports", "name": "reports-api"}, "spec": {"selector": selecting}},
        {"metadata": {"namespace": "reports", "name": "reports-ui"}, "spec": {"selector": {"matchExpressions": [
            {"key": "aadpodidbinding", "operator": "Exists"}]}}},
        {"metadata": {"namespace": "payments", "name": "payments-api"},
         "spec": {"selector": {"matchLabels": {"app": "payments-api"}}}}]}
    backend = world.backend()
    for namespace, hashed in (("reports", "reports-api-5d4f8b7c9d-x2k4p"), ("reports", "reports-ui-5d4f8b7c9d-x2k4q"),
                              ("payments", "payments-api-5d4f8b7c9d-x2k4r")):
        backend.kube.pods[(namespace, hashed)] = {  # type: ignore[attr-defined]
            "metadata": {"name": hashed, "namespace": namespace,
                         "labels": {"aadpodidbinding": "x", "pod-template-hash": "5d4f8b7c9d"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": hashed.rsplit("-", 1)[0],
                                              "controller": True}]},
            "spec": {"serviceAccountName": "default"}}
    collected = collect_migration(backend.kube, backend.arm, None, backend.graph)
    assert {p["owner_name"]: bool(p.get("owner_selects_label")) for p in collected.legacy_pods.items} == {
        "reports-api": True, "reports-ui": True, "payments-api": False}

    facts, cluster = leftover()
    facts.legacy_pods.items[1]["owner_selects_label"] = True
    result = {r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.pods_unlabelled"]
    fixes = lines([result])
    assert not any("deployment/reports-api" in line and "remove" in line for line in fixes)
    assert any("Deployment reports/reports-api's selector names aadpodidbinding" in line
               and "make it again" in line for line in fixes)
    facts.legacy_pods.items[1].pop("owner_selects_label")  # the selector names app only: the patch
    fixes = lines([{r.id: r for r in run_migration_checks(facts, cluster, AZURE)}["migration.pods_unlabelled"]])
    assert any(line.startswith("kubectl patch deployment/reports-api -n reports --type json") for line in fixes)


def test_a_binding_is_not_migrated_while_a_pod_of_its_selector_under_the_same_service_account_is_not_moved() -> None:
    """By hand in the lab: reports-worker (a second Deployment on selector reports and ServiceAccount reports-sa)
    labelled azure.workload.identity/use, reports-api not. The coverage row read "migrated: SA reports/reports-sa,
    1 labelled pod": one moved pod covered the binding while reports-api's pods still got their token from NMI,
    so deleting the binding took it away. Now the row lacks labelled_pods, names those pods, and the fix labels
    reports-api's template only."""
    facts, cluster = leftover()
    facts.legacy_pods.items.append(pod("finance", "backend-batch-5d4f8b7c9d-x2k4p", "backend-sa",
                                       {"aadpodidbinding": "backend"}, ("Deployment", "backend-batch")))
    moved = pod("finance", "backend-abc-1", "backend-sa", {"aadpodidbinding": "backend",
                                                           "azure.workload.identity/use": "true"},
                ("Deployment", "backend")) | {"token_audiences": ["api://AzureADTokenExchange"],
                                              "client_ids": [CLIENT_BACKEND]}
    facts.legacy_pods.items.append(moved)
    facts.labelled_pods.items = [moved]
    row = next(r for r in coverage_rows(facts, ISSUER) if r["binding"] == "finance/backend-binding")
    assert row["missing"] == ["labelled_pods"] and not row["migrated"]
    result = bindings_migrated(MigrationContext(facts, cluster, AZURE))
    assert "finance/backend-binding lacks labelled_pods (finance/backend-batch-5d4f8b7c9d-x2k4p, labelled " \
           "aadpodidbinding=backend, still run on pod identity with no Workload ID token, though " \
           "finance/backend-abc-1 moved)" in result.message + result.findings[0].message
    fixes = lines([result])
    assert any(line.startswith("kubectl patch deployment/backend-batch -n finance --type merge") for line in fixes)
    assert not any("deployment/backend " in line for line in fixes)
    facts.legacy_pods.items.pop(-2)  # only the moved pod is left on the selector: migrated
    row = next(r for r in coverage_rows(facts, ISSUER) if r["binding"] == "finance/backend-binding")
    assert row["migrated"]


def test_a_pod_labelled_by_hand_loses_its_own_label_and_a_template_whose_pods_are_gone_is_still_a_leftover() -> None:
    """By hand in the lab: ``kubectl label pod -n orders orders-api-... aadpodidbinding=orders`` (its Deployment's
    template is not labelled), and ``kubectl scale deployment/reports-api -n reports --replicas=0`` (its template
    is). The printed fix for the first was the template JSON patch, which the API server refuses ("unable to remove
    nonexistent key: aadpodidbinding: missing value") and which leaves the pod labelled; the second passed as "no
    pod is labelled aadpodidbinding", though its next pods carry the label. The collector tells both from the
    Deployments it already lists."""
    world = World.healthy()
    template = {"metadata": {"labels": {"app": "reports-api", "aadpodidbinding": "reports"}}}
    world.kube_objects = {"deployments.apps": [
        {"metadata": {"namespace": "orders", "name": "orders-api"},
         "spec": {"selector": {"matchLabels": {"app": "orders-api"}},
                  "template": {"metadata": {"labels": {"app": "orders-api"}}}}},
        {"metadata": {"namespace": "reports", "name": "reports-api"},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "reports-api"}}, "template": template}}]}
    backend = world.backend()
    backend.kube.pods[("orders", "orders-api-5d4f8b7c9d-x2k4p")] = {  # type: ignore[attr-defined]
        "metadata": {"name": "orders-api-5d4f8b7c9d-x2k4p", "namespace": "orders",
                     "labels": {"aadpodidbinding": "orders", "pod-template-hash": "5d4f8b7c9d"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "orders-api-5d4f8b7c9d", "controller": True}]},
        "spec": {"serviceAccountName": "orders-sa"}}
    collected = collect_migration(backend.kube, backend.arm, None, backend.graph)
    assert [p.get("template_labelled") for p in collected.legacy_pods.items] == [False]
    assert [(t["kind"], t["namespace"], t["name"], t["selector"], t["replicas"])
            for t in collected.legacy_templates.items] == [("Deployment", "reports", "reports-api", "reports", 0)]

    facts, cluster = clean(), arm_cluster(False)
    facts.legacy_pods, facts.legacy_templates = collected.legacy_pods, collected.legacy_templates
    result = pods_unlabelled(MigrationContext(facts, cluster, AZURE))
    assert result.status == WARN
    message = result.findings[0].message
    assert "(on the pod only, not in its owner's pod template: orders/orders-api-5d4f8b7c9d-x2k4p)" in message
    assert "Deployment reports/reports-api (aadpodidbinding=reports, scaled to 0)" in message
    fixes = lines([result])
    assert "kubectl label pod -n orders orders-api-5d4f8b7c9d-x2k4p aadpodidbinding-" in fixes
    assert not any("deployment/orders-api" in line and '"remove"' in line for line in fixes)
    assert any(line.startswith("kubectl patch deployment/reports-api -n reports --type json") for line in fixes)

    facts.legacy_pods = ObjectList("pods")  # the scaled-down template alone: no longer a pass, an error once complete
    result = pods_unlabelled(MigrationContext(facts, cluster, AZURE, ExpectConfig(migration_complete=True)))
    assert result.status == FAIL and result.findings[0].code == "POD_IDENTITY_PODS_LABELLED"
    facts.legacy_templates = ObjectList("daemonsets.apps,deployments.apps")
    assert pods_unlabelled(MigrationContext(facts, cluster, AZURE)).status == PASS


def test_a_binding_whose_only_workload_is_scaled_to_zero_labels_that_workloads_template() -> None:
    """reports-binding's pods are gone (reports-api scaled to 0, its template labelled aadpodidbinding=reports): the
    fix labels reports-api's template for Workload ID instead of "each workload running as" its ServiceAccount."""
    facts, cluster = leftover()
    facts.legacy_pods.items.pop()  # reports-api's pod
    bind_reports(facts, CLIENT_BACKEND.replace("6", "7"))
    facts.service_accounts.items.append({"namespace": "reports", "name": "reports-sa",
                                         "client_id": CLIENT_BACKEND.replace("6", "7")})
    facts.legacy_templates.items = [{"kind": "Deployment", "namespace": "reports", "name": "reports-api",
                                     "selector": "reports", "replicas": 0, "selects_label": False}]
    fixes = lines([bindings_migrated(MigrationContext(facts, cluster, AZURE))])
    assert any(line.startswith("kubectl patch deployment/reports-api -n reports --type merge")
               and "azure.workload.identity/use" in line for line in fixes)
    assert not any("label the pod template of each workload" in line for line in fixes)
