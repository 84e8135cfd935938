"""End to end: the migration suite against the lab, as a user runs it.

- ``pytest suites --lab --lab-scenario migration`` reports every kind of pod-managed identity leftover (warnings:
  the migration is not declared complete), and its coverage table is right row by row against the scenario's
  definition (lab.scenarios.MIGRATION, read here, not repeated);
- ``pytest suites --lab`` (the healthy lab) passes the migration suite with no error finding anywhere;
- against a running migration lab, with ``expect.migration_complete: true``, the leftovers are errors; the fixes
  the harness prints for a half-migrated Deployment, run with the real kubectl, move it to Workload ID; removing
  the rest through the public APIs (kubectl delete, the podIdentityProfile PUT that ``az aks update
  --disable-pod-identity`` sends) makes every POD_IDENTITY_ finding go away.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_e2e_lab import run_suites
from test_identities_lab import Person

from harness.manifests import render
from lab.bootstrap import RunningLab, start_lab
from lab.scenarios import MIGRATION, LegacyIdentity

pytestmark = pytest.mark.slow
AKS_API = "2024-09-01"
MIGRATION_CHECKS = {"migration.bindings_migrated", "migration.pods_unlabelled", "migration.objects_removed",
                    "migration.components_removed", "migration.crds_removed", "migration.addon_disabled"}


def migration_checks(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in document["checks"] if c["id"].startswith("migration.")}


def pod_identity_findings(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in document["findings"] if f["code"].startswith("POD_IDENTITY_")}


def expected_missing(legacy: LegacyIdentity) -> list[str]:
    missing = [] if legacy.service_account else ["service_account"]
    missing += [] if legacy.federated else ["federated_credential"]
    return missing + ([] if legacy.labelled_workload else ["labelled_pods"])


def test_the_migration_scenario_reports_its_leftovers_and_a_coverage_table_right_row_by_row(tmp_path: Path) -> None:
    result, document = run_suites(tmp_path, "--lab", "--lab-scenario", "migration")
    # the migration suite warns only (the migration is not declared complete); the one error is the inventory's:
    # batch/batch-sa is annotated with an application that has no credential for this cluster yet
    assert result.returncode == 1, result.stdout[-4000:]
    errors = [f for f in document["findings"] if f["severity"] == "error"]
    assert [(f["code"], f["layer"]) for f in errors] == [("SA_WITHOUT_FIC", "inventory")]
    assert "batch/batch-sa -> application batch-app" in errors[0]["message"]
    assert document["verdict"] == "fail" and all(w["verdict"] == "pass" for w in document["workloads"])
    checks = migration_checks(document)
    assert set(checks) == MIGRATION_CHECKS and {c["status"] for c in checks.values()} == {"warn"}
    findings = pod_identity_findings(document)
    assert set(findings) == {"POD_IDENTITY_BINDING_NOT_MIGRATED", "POD_IDENTITY_PODS_LABELLED",
                             "POD_IDENTITY_OBJECTS_PRESENT", "POD_IDENTITY_NMI_INSTALLED", "POD_IDENTITY_MIC_INSTALLED",
                             "POD_IDENTITY_CRDS_PRESENT", "POD_IDENTITY_ADDON_ENABLED"}
    assert {f["severity"] for f in findings.values()} == {"warning"}

    rows = {row["binding"]: row for row in document["coverage"]}
    assert list(rows) == sorted(f"{i.namespace}/{i.binding}" for i in MIGRATION.identities)
    addon = {(i["namespace"], i["name"]): i for i in document["leftovers"]["addon_identities"]}
    for legacy in MIGRATION.identities:
        row = rows[f"{legacy.namespace}/{legacy.binding}"]
        subject = f"system:serviceaccount:{legacy.namespace}:{legacy.service_account}"
        assert row["selector"] == legacy.selector and row["azure_identity"] == f"{legacy.namespace}/{legacy.name}"
        assert row["identity_type"] == (1 if legacy.kind == "application" else 0)
        assert (row["identity"], row["identity_kind"], row["identity_lookup"]) == (legacy.identity, legacy.kind, "found")
        assert row["service_accounts"] == ([f"{legacy.namespace}/{legacy.service_account}"]
                                           if legacy.service_account else [])
        assert row["federated"] is legacy.federated
        assert row["federated_subjects"] == ([subject] if legacy.federated else [])
        if legacy.labelled_workload:
            assert len(row["labelled_pods"]) == 1
            assert row["labelled_pods"][0].startswith(f"{legacy.namespace}/{legacy.labelled_workload}-")
        else:
            assert row["labelled_pods"] == []
        legacy_pods = row["legacy_pods"]
        if legacy.legacy_pod:
            assert legacy_pods == [f"{legacy.namespace}/{legacy.legacy_pod}"]
        elif legacy.legacy_deployment:
            assert len(legacy_pods) == 1 and legacy_pods[0].startswith(f"{legacy.namespace}/{legacy.legacy_deployment}-")
        else:
            assert legacy_pods == []
        assert row["missing"] == expected_missing(legacy) and row["unknown"] == []
        assert row["migrated"] is (not expected_missing(legacy))
        if legacy.through_arm:  # the add-on's pod identity names the same identity
            assert addon[(legacy.namespace, legacy.name)]["client_id"] == row["client_id"]

    leftovers = document["leftovers"]
    assert leftovers["addon_enabled"] is True and leftovers["migration_complete"] is False
    assert set(addon) == {(i.namespace, i.name) for i in MIGRATION.identities if i.through_arm}
    assert {(e["namespace"], e["name"]) for e in leftovers["addon_exceptions"]} == {
        (e.namespace, e.name) for e in MIGRATION.exceptions if e.through_arm}
    kinds = [o["kind"] for o in leftovers["objects"]]
    assert kinds.count("AzureIdentity") == kinds.count("AzureIdentityBinding") == len(MIGRATION.identities)
    assert kinds.count("AzurePodIdentityException") == len(MIGRATION.exceptions)
    assert kinds.count("AzureAssignedIdentity") == sum(1 for i in MIGRATION.identities if i.legacy_pod)
    assert {(c["kind"], c["namespace"], c["component"], c["release"]) for c in leftovers["components"]} == {
        ("DaemonSet", MIGRATION.chart_namespace, "nmi", MIGRATION.chart_release),
        ("Deployment", MIGRATION.chart_namespace, "mic", MIGRATION.chart_release)}
    assert len(leftovers["crds"]) == 4 and leftovers["unreadable"] == []
    assert len(leftovers["labelled_pods"]) == sum(1 for i in MIGRATION.identities
                                                  if i.legacy_pod or i.legacy_deployment)
    assert "PASS  migration" in result.stdout and "coverage: 1 of 4 AzureIdentityBindings" in result.stdout
    assert "signoff.md" in {p.name for p in (tmp_path / document["run_id"]).iterdir()}


def test_the_healthy_lab_passes_the_migration_suite_with_no_error_finding(tmp_path: Path) -> None:
    result, document = run_suites(tmp_path, "--lab")
    assert result.returncode == 0, result.stdout[-4000:]
    assert {c["id"]: c["status"] for c in migration_checks(document).values()} == dict.fromkeys(MIGRATION_CHECKS,
                                                                                                  "pass")
    errors = [f for f in document["findings"] if f["severity"] == "error"]
    errors += [f for w in document["workloads"] for f in w["findings"] if f["severity"] == "error"]
    assert errors == [] and pod_identity_findings(document) == {}
    assert document["coverage"] == [] and document["leftovers"]["addon_enabled"] is False
    assert document["leftovers"]["crds"] == [] and document["leftovers"]["objects"] == []


# ---------------------------------------------------------------- fixing it through the public APIs


@pytest.fixture(scope="module")
def migration_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    lab = start_lab(tmp_path_factory.mktemp("migration-lab"), scenario="migration")
    try:
        yield lab
    finally:
        lab.stop()


def complete_config(lab: RunningLab, tmp_path: Path) -> str:
    data = yaml.safe_load(lab.harness_config.read_text())
    data["expect"] = {"migration_complete": True}
    path = tmp_path / "harness.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def kubectl(lab: RunningLab, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(lab.state_dir / "kubeconfig"), "HOME": str(lab.state_dir)}
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def migration_only(lab: RunningLab, report_dir: Path, config: str) -> tuple[Any, dict[str, Any]]:
    """The migration suite alone (``pytest suites -k migration``): no probe pods."""
    return run_suites(report_dir, "--config", config, "-k", "test_migration")


def test_leftovers_are_errors_once_complete_and_removing_them_through_the_public_apis_clears_them(
    migration_lab: RunningLab, tmp_path: Path
) -> None:
    lab, config = migration_lab, complete_config(migration_lab, tmp_path)
    result, before = migration_only(lab, tmp_path / "before", config)
    assert result.returncode == 1 and before["verdict"] == "fail"
    assert {c["status"] for c in migration_checks(before).values()} == {"fail"}
    assert {f["severity"] for f in pod_identity_findings(before).values()} == {"error"}

    # The fixes the harness printed for reports/reports-api (label the template for Workload ID, drop
    # aadpodidbinding), run as printed with the real kubectl.
    fixes = [line for f in pod_identity_findings(before).values() for line in f["remediation"]
             if line.startswith("kubectl patch deployment/reports-api ")]
    assert len(fixes) == 2, fixes
    for line in fixes:
        kubectl(lab, *shlex.split(line)[1:])

    def reports_moved() -> bool:
        pods = kubectl(lab, "get", "pods", "-n", "reports", "-l", "azure.workload.identity/use=true", "-o", "name")
        legacy = kubectl(lab, "get", "pods", "-n", "reports", "-l", "aadpodidbinding", "-o", "name")
        return bool(pods.strip()) and not legacy.strip()

    wait_for(reports_moved)
    result, moved = migration_only(lab, tmp_path / "moved", config)
    row = next(r for r in moved["coverage"] if r["binding"] == "reports/reports-binding")
    assert row["migrated"] is True and row["legacy_pods"] == [] and len(row["labelled_pods"]) == 1

    # Everything else, through the public APIs.
    kubectl(lab, "delete", "pod", "-n", "payments", "payments-worker", "--wait=false")
    for kind in ("azureidentitybindings", "azureidentities", "azurepodidentityexceptions", "azureassignedidentities"):
        kubectl(lab, "delete", kind, "--all", "-A", "--wait=false")
    kubectl(lab, "delete", "daemonset", "-n", MIGRATION.chart_namespace, f"{MIGRATION.chart_release}-nmi")
    kubectl(lab, "delete", "deployment", "-n", MIGRATION.chart_namespace, f"{MIGRATION.chart_release}-mic")
    crds = next(line for line in pod_identity_findings(before)["POD_IDENTITY_CRDS_PRESENT"]["remediation"]
                if line.startswith("kubectl delete crd "))
    kubectl(lab, *shlex.split(crds, comments=True)[1:])
    person = Person(lab.info(), str(lab.state_dir / "ca.pem"))
    cluster_path = (f"/subscriptions/{lab.info()['subscription_id']}/resourceGroups/{lab.info()['cluster']['resource_group']}"
                    f"/providers/Microsoft.ContainerService/managedClusters/{lab.info()['cluster']['name']}")
    cluster = person.arm("GET", cluster_path, AKS_API)  # az aks update --disable-pod-identity: GET, then PUT
    cluster["properties"]["podIdentityProfile"] = {"enabled": False}
    person.arm("PUT", cluster_path, AKS_API, cluster)
    wait_for(lambda: not kubectl(lab, "get", "pods", "-A", "-l", "aadpodidbinding", "-o", "name").strip())

    result, after = migration_only(lab, tmp_path / "after", config)
    assert result.returncode == 0, result.stdout[-4000:]
    assert after["verdict"] == "pass"
    assert {c["id"]: c["status"] for c in migration_checks(after).values()} == dict.fromkeys(MIGRATION_CHECKS, "pass")
    assert pod_identity_findings(after) == {} and after["coverage"] == []
    assert after["leftovers"]["addon_enabled"] is False and after["leftovers"]["components"] == []


# ---------------------------------------------------------------- the harness's own RBAC


@pytest.fixture(scope="module")
def healthy_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    lab = start_lab(tmp_path_factory.mktemp("rbac-lab"))
    try:
        yield lab
    finally:
        lab.stop()


def as_service_account(lab: RunningLab, tmp_path: Path, name: str, drop_groups: set[str]) -> str:
    """harness.yaml for a ServiceAccount bound to the rendered harness RBAC, less the rules for ``drop_groups``,
    with ``expect.migration_complete: true``."""
    kubectl(lab, "create", "serviceaccount", "-n", "default", name)
    docs = render("harness-rbac.yaml.j2", subject_kind="ServiceAccount", subject_name=name,
                  subject_namespace="default", namespaces=["finance", "orders"], webhook_namespace="kube-system")
    for doc in docs:
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{name}"
        if doc["kind"].endswith("Binding"):
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{name}"
        if "rules" in doc:
            doc["rules"] = [rule for rule in doc["rules"] if not set(rule.get("apiGroups") or []) & drop_groups]
    manifest = tmp_path / f"{name}-rbac.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    kubectl(lab, "apply", "-f", str(manifest))
    token = kubectl(lab, "create", "token", "-n", "default", name).strip()
    kubeconfig = yaml.safe_load((lab.state_dir / "kubeconfig").read_text())
    kubeconfig["users"][0]["user"] = {"token": token}
    (tmp_path / f"{name}.kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    data = yaml.safe_load(Path(complete_config(lab, tmp_path)).read_text())
    data["cluster"]["kubeconfig"] = str(tmp_path / f"{name}.kubeconfig")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_the_rendered_harness_rbac_lets_the_migration_suite_read_everything(
    healthy_lab: RunningLab, tmp_path: Path
) -> None:
    config = as_service_account(healthy_lab, tmp_path, "harness-full", set())
    result, document = migration_only(healthy_lab, tmp_path / "reports", config)
    assert result.returncode == 0, result.stdout[-4000:]
    assert {c["status"] for c in migration_checks(document).values()} == {"pass"}
    assert document["leftovers"]["unreadable"] == []


def test_a_harness_that_may_not_list_the_pod_identity_kinds_warns_and_does_not_fail(
    healthy_lab: RunningLab, tmp_path: Path
) -> None:
    config = as_service_account(healthy_lab, tmp_path, "harness-limited",
                                {"apiextensions.k8s.io", "aadpodidentity.k8s.io"})
    result, document = migration_only(healthy_lab, tmp_path / "reports", config)
    assert result.returncode == 0, result.stdout[-4000:]  # migration_complete: true, and still no failure
    checks = {k: c["status"] for k, c in migration_checks(document).items()}
    assert checks == {"migration.bindings_migrated": "warn", "migration.pods_unlabelled": "pass",
                      "migration.objects_removed": "warn", "migration.components_removed": "pass",
                      "migration.crds_removed": "warn", "migration.addon_disabled": "pass"}, checks
    unreadable = pod_identity_findings(document)["POD_IDENTITY_UNREADABLE"]
    assert unreadable["severity"] == "warning" and "may not list" in unreadable["message"]
    assert {u["resource"] for u in document["leftovers"]["unreadable"]} == {
        "customresourcedefinitions.apiextensions.k8s.io",
        *(f"{plural}.aadpodidentity.k8s.io" for plural in ("azureidentities", "azureidentitybindings",
                                                           "azurepodidentityexceptions", "azureassignedidentities"))}
    assert all(u["status"] == 403 for u in document["leftovers"]["unreadable"])


# ---------------------------------------------------------------- made by hand with kubectl

SP_TENANT = "11111111-2222-4333-8444-555555555555"
SP_CLIENT = "3c8a2f7e-9b1d-4e6a-8f2c-5d7e9a1b3c4d"  # an app registration of another tenant: the lab has none


def _pod_identity_by_hand() -> list[dict[str, Any]]:
    """What a platform team applies for aad-pod-identity: its CRDs (the upstream ones carry full schemas; kept as
    sent here), a service principal AzureIdentity (type 1, its secret in clientPassword) of another tenant, its
    binding, and the Deployment whose pods use it through the aadpodidbinding label."""
    crds = [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
             "metadata": {"name": f"{plural}.aadpodidentity.k8s.io"},
             "spec": {"group": "aadpodidentity.k8s.io", "scope": "Namespaced",
                      "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                                "singular": kind.lower()},
                      "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                          "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
            for plural, kind in (("azureidentities", "AzureIdentity"), ("azureidentitybindings", "AzureIdentityBinding"),
                                 ("azureassignedidentities", "AzureAssignedIdentity"),
                                 ("azurepodidentityexceptions", "AzurePodIdentityException"))]
    return crds + [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy"}},
        {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
         "metadata": {"name": "sp-identity", "namespace": "legacy"},
         "spec": {"type": 1, "tenantID": SP_TENANT, "clientID": SP_CLIENT,
                  "clientPassword": {"name": "sp-secret", "namespace": "legacy"}}},
        {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding",
         "metadata": {"name": "sp-binding", "namespace": "legacy"},
         "spec": {"azureIdentity": "sp-identity", "selector": "sp-app"}},
        {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding",  # a typo in the identity's name
         "metadata": {"name": "typo-binding", "namespace": "legacy"},
         "spec": {"azureIdentity": "sp-identty", "selector": "sp-app"}},
        {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureAssignedIdentity",  # left by a MIC now gone
         "metadata": {"name": "sp-worker-legacy-sp-identity", "namespace": "default",
                      "finalizers": ["azureassignedidentity.finalizers.aadpodidentity.k8s.io"]},
         "spec": {"pod": "sp-worker", "podNamespace": "legacy", "nodename": "aks-nodepool1-0"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sp-sa", "namespace": "legacy"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sp-worker", "namespace": "legacy"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sp-worker"}}, "template": {
             "metadata": {"labels": {"app": "sp-worker", "aadpodidbinding": "sp-app"}},
             "spec": {"serviceAccountName": "sp-sa",
                      "containers": [{"name": "w", "image": "myacr.azurecr.io/finance/backend:1.0"}]}}}},
    ]


def test_a_service_principal_binding_of_another_tenant_made_by_hand_gets_its_tenant_and_credential_first(
    tmp_path: Path
) -> None:
    """kubectl apply of an AzureIdentity type 1 whose tenantID is not the cluster's: the binding's row cannot tell
    the credential (the app is in a tenant the harness does not read), and the printed fix annotates the
    ServiceAccount with the client id and that tenant, lists and creates the credential on the app registration,
    and only then labels the Deployment. The kubectl lines pasted as printed leave only the credential and pods."""
    lab = start_lab(tmp_path / "lab")
    try:
        manifest = tmp_path / "pod-identity.yaml"
        docs = _pod_identity_by_hand()
        manifest.write_text(yaml.safe_dump_all(docs[:4]))
        kubectl(lab, "apply", "-f", str(manifest))
        wait_for(lambda: "azureidentities" in kubectl(lab, "api-resources", "--api-group", "aadpodidentity.k8s.io"))
        manifest.write_text(yaml.safe_dump_all(docs[4:]))
        kubectl(lab, "apply", "-f", str(manifest))
        wait_for(lambda: bool(kubectl(lab, "get", "pods", "-n", "legacy", "-l", "aadpodidbinding=sp-app",
                                      "-o", "name").strip()))
        config = str(lab.harness_config)
        result, document = migration_only(lab, tmp_path / "before", config)
        row = next(r for r in document["coverage"] if r["binding"] == "legacy/sp-binding")
        assert row["identity_type"] == 1 and row["missing"] == ["service_account", "labelled_pods"]
        assert row["unknown"] == ["federated_credential"]
        finding = pod_identity_findings(document)["POD_IDENTITY_BINDING_NOT_MIGRATED"]
        fixes = finding["remediation"]
        order = [next(i for i, line in enumerate(fixes) if line.startswith(start)) for start in (
            f"kubectl annotate serviceaccount -n legacy sp-sa azure.workload.identity/client-id={SP_CLIENT}",
            f"kubectl annotate serviceaccount -n legacy sp-sa azure.workload.identity/tenant-id={SP_TENANT}",
            f"az ad app federated-credential list --id {SP_CLIENT}",
            f"az ad app federated-credential create --id {SP_CLIENT}",
            "kubectl patch deployment/sp-worker -n legacy --type merge")]
        assert order == sorted(order), fixes
        assert not any(line.startswith("az identity federated-credential") for line in fixes)
        typo = fixes.index("kubectl delete azureidentitybinding -n legacy typo-binding")
        assert "does not have" in fixes[typo - 1] and "<client-id>" not in "\n".join(fixes)

        # the assigned identity MIC would have released: a delete only marks it; the printed patch lets it go
        objects = pod_identity_findings(document)["POD_IDENTITY_OBJECTS_PRESENT"]["remediation"]
        assigned = "sp-worker-legacy-sp-identity"
        unpin = next(line for line in objects if line.startswith(f"kubectl patch azureassignedidentity -n default "
                                                                  f"{assigned} "))
        assert objects.index(unpin) < objects.index(f"kubectl delete azureassignedidentity -n default {assigned}")
        kubectl(lab, "delete", "azureassignedidentity", "-n", "default", assigned, "--wait=false")
        marked = json.loads(kubectl(lab, "get", "azureassignedidentity", "-n", "default", assigned, "-o", "json"))
        assert marked["metadata"].get("deletionTimestamp")
        kubectl(lab, *shlex.split(unpin)[1:])
        assert not kubectl(lab, "get", "azureassignedidentity", "-n", "default", "--ignore-not-found",
                           "-o", "name").strip()

        for line in fixes:
            if line.startswith("kubectl annotate serviceaccount"):
                kubectl(lab, *shlex.split(line)[1:])
        annotations = json.loads(kubectl(lab, "get", "sa", "-n", "legacy", "sp-sa", "-o", "json"))["metadata"][
            "annotations"]
        assert annotations["azure.workload.identity/tenant-id"] == SP_TENANT
        result, document = migration_only(lab, tmp_path / "after", config)
        row = next(r for r in document["coverage"] if r["binding"] == "legacy/sp-binding")
        assert row["service_accounts"] == ["legacy/sp-sa"] and row["missing"] == ["labelled_pods"]
    finally:
        lab.stop()


def test_a_pod_labelled_by_hand_is_no_migration_and_the_printed_template_fix_and_restart_repair_it(
    tmp_path: Path
) -> None:
    """kubectl label pod reports-api-... azure.workload.identity/use=true aadpodidbinding-: the running pod now
    looks migrated, but the webhook mutates pods on CREATE only, so it has no token and no AZURE_* env (and its
    Deployment would bring pod identity back). Its binding is not migrated and names the pod; the printed patch and
    rollout restart, pasted as printed, give the Deployment a mutated pod, and the next run counts it."""
    lab = start_lab(tmp_path / "lab", scenario="migration")
    try:
        pod = kubectl(lab, "get", "pods", "-n", "reports", "-l", "app=reports-api", "-o", "name").strip()
        kubectl(lab, "label", "-n", "reports", pod, "azure.workload.identity/use=true", "aadpodidbinding-")
        config = str(lab.harness_config)
        result, document = migration_only(lab, tmp_path / "before", config)
        row = next(r for r in document["coverage"] if r["binding"] == "reports/reports-binding")
        name = f"reports/{pod.split('/', 1)[1]}"
        assert (row["migrated"], row["labelled_pods"], row["uninjected_pods"], row["missing"]) == (
            False, [], [name], ["labelled_pods"])
        finding = pod_identity_findings(document)["POD_IDENTITY_BINDING_NOT_MIGRATED"]
        assert f"{name} labelled azure.workload.identity/use but run without its identity" in finding["message"]
        fixes = [line for line in finding["remediation"] if " deployment/reports-api " in line]
        assert [shlex.split(line)[1:3] for line in fixes] == [["patch", "deployment/reports-api"],
                                                               ["rollout", "restart"]], fixes
        for line in fixes:
            kubectl(lab, *shlex.split(line, comments=True)[1:])

        def replaced() -> bool:
            pods = json.loads(kubectl(lab, "get", "pods", "-n", "reports", "-l", "app=reports-api", "-o", "json"))
            return [p["metadata"]["name"] for p in pods["items"]] != [pod.split("/", 1)[1]] and all(
                any(e["name"] == "AZURE_FEDERATED_TOKEN_FILE" for c in p["spec"]["containers"] for e in c.get("env", []))
                for p in pods["items"] if not p["metadata"].get("deletionTimestamp"))

        wait_for(replaced)
        result, document = migration_only(lab, tmp_path / "after", config)
        row = next(r for r in document["coverage"] if r["binding"] == "reports/reports-binding")
        assert row["migrated"] is True and row["uninjected_pods"] == [] and len(row["labelled_pods"]) == 1
    finally:
        lab.stop()


def test_nmi_removed_before_the_workloads_moved_is_an_error_and_moving_them_as_printed_clears_it(
    tmp_path: Path
) -> None:
    """kubectl delete daemonset aad-pod-identity-nmi mid-migration, the migration not declared complete: the
    reports and payments pods still labelled aadpodidbinding now reach the node's IMDS, which knows no binding.
    That is an error (POD_IDENTITY_REMOVED_EARLY, first in its check), not one more warning; its printed kubectl
    and az lines, pasted as printed, move reports-api, and with the bare payments pod recreated as the finding's
    comment says, the next run no longer reports it."""
    lab = start_lab(tmp_path / "lab", scenario="migration")
    try:
        kubectl(lab, "delete", "daemonset", "-n", MIGRATION.chart_namespace, f"{MIGRATION.chart_release}-nmi")
        config = str(lab.harness_config)
        result, document = migration_only(lab, tmp_path / "before", config)
        assert result.returncode == 1 and document["verdict"] == "fail"
        check = migration_checks(document)["migration.components_removed"]
        assert check["status"] == "fail" and "NMI is not running" in check["message"]
        codes = [f["code"] for f in document["findings"] if f["check"] == "migration.components_removed"]
        assert codes == ["POD_IDENTITY_REMOVED_EARLY", "POD_IDENTITY_MIC_INSTALLED"], codes
        early = pod_identity_findings(document)["POD_IDENTITY_REMOVED_EARLY"]
        assert early["severity"] == "error" and "payments/payments-worker" in early["message"]
        assert "first failure migration.components_removed" in result.stdout
        assert "[POD_IDENTITY_REMOVED_EARLY," in result.stdout
        person = Person(lab.info(), str(lab.state_dir / "ca.pem"))
        for line in early["remediation"]:
            if line.startswith("kubectl "):
                kubectl(lab, *shlex.split(line, comments=True)[1:])
            elif line.startswith("az identity federated-credential create "):
                args = dict(zip(*[iter(shlex.split(line)[4:])] * 2, strict=True))
                person.arm("PUT", f"/subscriptions/{args['--subscription']}/resourceGroups/{args['--resource-group']}"
                           "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
                           f"{args['--identity-name']}/federatedIdentityCredentials/{args['--name']}", "2023-01-31",
                           {"properties": {"issuer": args["--issuer"], "subject": args["--subject"],
                                           "audiences": [args["--audiences"]]}})
        assert '# recreate pod payments/payments-worker labelled azure.workload.identity/use: "true", without ' \
               "aadpodidbinding" in early["remediation"]
        pod = json.loads(kubectl(lab, "get", "pod", "-n", "payments", "payments-worker", "-o", "json"))
        kubectl(lab, "delete", "pod", "-n", "payments", "payments-worker")
        labels = {k: v for k, v in pod["metadata"]["labels"].items() if k != "aadpodidbinding"}
        manifest = tmp_path / "payments-worker.yaml"
        manifest.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "payments-worker", "namespace": "payments",
                                                            "labels": {**labels, "azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": pod["spec"]["serviceAccountName"],
                     "containers": [{"name": c["name"], "image": c["image"]} for c in pod["spec"]["containers"]]}}))
        kubectl(lab, "apply", "-f", str(manifest))
        wait_for(lambda: not kubectl(lab, "get", "pods", "-A", "-l", "aadpodidbinding,!azure.workload.identity/use",
                                     "-o", "name").strip())
        result, document = migration_only(lab, tmp_path / "after", config)
        assert "POD_IDENTITY_REMOVED_EARLY" not in pod_identity_findings(document), result.stdout[-3000:]
        assert migration_checks(document)["migration.components_removed"]["status"] == "warn"
    finally:
        lab.stop()


def test_a_second_deployment_moved_on_one_selector_leaves_the_binding_unmigrated_and_its_selector_is_named(
    tmp_path: Path
) -> None:
    """By hand: reports-worker, a second Deployment on selector reports and ServiceAccount reports-sa (annotated,
    federated), moved to Workload ID but keeping aadpodidbinding on its template and in its selector; reports-api
    not moved. The row read "migrated" (one moved pod covered the binding while reports-api still got its token
    from NMI), and the printed JSON patch dropping reports-worker's template label is refused by a real API server
    ("`selector` does not match template `labels`"; the selector is immutable), which the lab now is too."""
    lab = start_lab(tmp_path / "lab", scenario="migration")
    try:
        manifest = tmp_path / "reports-worker.yaml"
        labels = {"app": "reports-worker", "aadpodidbinding": "reports"}
        manifest.write_text(yaml.safe_dump({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "reports-worker", "namespace": "reports"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": {**labels, "azure.workload.identity/use": "true"}},
                "spec": {"serviceAccountName": "reports-sa",
                         "containers": [{"name": "worker", "image": "myacr.azurecr.io/reports/worker:1"}]}}}}))
        kubectl(lab, "apply", "-f", str(manifest))
        wait_for(lambda: "AZURE_FEDERATED_TOKEN_FILE" in kubectl(
            lab, "get", "pods", "-n", "reports", "-l", "app=reports-worker", "-o", "json"))
        result, document = migration_only(lab, tmp_path / "run", str(lab.harness_config))
        row = next(r for r in document["coverage"] if r["binding"] == "reports/reports-binding")
        assert (row["migrated"], row["missing"], len(row["labelled_pods"])) == (False, ["labelled_pods"], 1), row
        findings = pod_identity_findings(document)
        assert "still run on pod identity with no Workload ID token" in \
            findings["POD_IDENTITY_BINDING_NOT_MIGRATED"]["message"]
        moving = findings["POD_IDENTITY_BINDING_NOT_MIGRATED"]["remediation"]
        assert any(" deployment/reports-api " in line for line in moving)
        assert not any(" deployment/reports-worker " in line for line in moving)
        drop = findings["POD_IDENTITY_PODS_LABELLED"]["remediation"]
        assert any("Deployment reports/reports-worker's selector names aadpodidbinding" in line for line in drop)
        assert not any(" deployment/reports-worker " in line for line in drop)
        env = {**os.environ, "KUBECONFIG": str(lab.state_dir / "kubeconfig"), "HOME": str(lab.state_dir)}
        patch = '[{"op": "remove", "path": "/spec/template/metadata/labels/aadpodidbinding"}]'
        refused = subprocess.run(["kubectl", "patch", "deployment/reports-worker", "-n", "reports", "--type", "json",
                                  "-p", patch], capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 1 and "`selector` does not match template `labels`" in refused.stderr
        both = '[{"op": "remove", "path": "/spec/selector/matchLabels/aadpodidbinding"}, ' + patch[1:]
        refused = subprocess.run(["kubectl", "patch", "deployment/reports-worker", "-n", "reports", "--type", "json",
                                  "-p", both], capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 1 and "spec.selector: Invalid value" in refused.stderr
        assert "field is immutable" in refused.stderr
    finally:
        lab.stop()
