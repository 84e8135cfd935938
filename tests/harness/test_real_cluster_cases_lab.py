"""Cases where real clusters differ from the healthy lab, made through the public APIs (kubectl, lab ctl where no
API exists) against one lab: who installed the webhook (the Helm chart alone passes; the chart plus the add-on is
WEBHOOK_DUPLICATE although they share one configuration), a workload whose own pods lost the use label, and the
webhook's configuration deleted by hand (WEBHOOK_NOT_INSTALLED; the lab then mutates nothing, as an API server)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_e2e_lab import BROKEN_STAYS_BROKEN, run_suites

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]



def ctl(lab: RunningLab, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "lab", "ctl", "--state-dir", str(lab.state_dir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def kubectl_deployments(lab: RunningLab) -> list[tuple[str, str]]:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(lab.state_dir / "kubeconfig"), "get", "deployments", "-A",
         "-l", "azure-workload-identity.io/system=true", "-o", "json"],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0 and "No such file" in result.stderr:
        pytest.skip("kubectl is not installed")
    assert result.returncode == 0, result.stderr
    return sorted(
        (item["metadata"]["namespace"], item["metadata"]["annotations"]["meta.helm.sh/release-name"])
        for item in json.loads(result.stdout)["items"]
    )


def finding_codes(document: dict) -> set[str]:
    codes = {f["code"] for f in document["findings"]}
    return codes | {f["code"] for w in document["workloads"] for f in w["findings"]}


def test_the_chart_alone_passes_and_the_chart_with_the_add_on_is_a_duplicate(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    config = str(running_lab.state_dir / "harness.yaml")
    try:
        assert ctl(running_lab, "webhook", "--install", "helm")["install"] == "helm"
        assert kubectl_deployments(running_lab) == [("azure-workload-identity-system", "workload-identity-webhook")]
        result, document = run_suites(tmp_path / "helm", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-4000:]
        assert document["verdict"] == "pass"
        enabled = next(c for c in document["checks"] if c["id"] == "cluster.workload_identity_enabled")
        assert enabled["status"] == "pass" and "Helm chart" in enabled["message"]

        ctl(running_lab, "webhook", "--install", "both")
        assert kubectl_deployments(running_lab) == [
            ("azure-workload-identity-system", "workload-identity-webhook"),
            ("kube-system", "aks-managed-workload-identity"),
        ]
        result, document = run_suites(tmp_path / "both", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        assert "WEBHOOK_DUPLICATE" in finding_codes(document)
        duplicate = next(f for f in document["findings"] if f["code"] == "WEBHOOK_DUPLICATE")
        assert not [line for line in duplicate["remediation"] if line.startswith("helm uninstall")]
        assert any(line.startswith("# or, to keep the add-on instead") and line.endswith(
            "helm uninstall -n azure-workload-identity-system workload-identity-webhook")
            for line in duplicate["remediation"]), duplicate["remediation"]
    finally:
        ctl(running_lab, "webhook", "--install", "addon")


def kubectl(lab: RunningLab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(lab.state_dir / "kubeconfig"), *args],
                          capture_output=True, text=True, timeout=60)


MWC = "azure-wi-webhook-mutating-webhook-configuration"


def webhook_configuration(lab: RunningLab) -> dict:
    """The webhook's MutatingWebhookConfiguration as kubectl gets it (the test is skipped without kubectl)."""
    saved = kubectl(lab, "get", "mutatingwebhookconfiguration", MWC, "-o", "json")
    if "No such file" in saved.stderr:
        pytest.skip("kubectl is not installed")
    assert saved.returncode == 0, saved.stderr
    return json.loads(saved.stdout)


def test_a_deployment_whose_template_lost_the_label_fails_a_default_run(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    config = str(running_lab.state_dir / "harness.yaml")
    unlabel = json.dumps([{"op": "remove", "path": "/spec/template/metadata/labels/azure.workload.identity~1use"}])
    relabel = json.dumps({"spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "true"}}}}})
    patched = kubectl(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "json", "-p", unlabel)
    if "No such file" in patched.stderr:
        pytest.skip("kubectl is not installed")
    assert patched.returncode == 0, patched.stderr
    try:
        result, document = run_suites(tmp_path, "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        workload = document["workloads"][0]
        live = next(c for c in workload["checks"] if c["id"] == "workload.live_pods")
        assert live["status"] == "fail"
        label = next(f for f in workload["findings"] if f["code"] == "POD_NOT_LABELLED")
        assert label["evidence"]["owner"] == "Deployment/backend"
        assert label["remediation"][0].startswith("kubectl patch deployment/backend -n finance --type merge")
        probe_checks = {c["id"]: c["status"] for c in workload["checks"]}
        assert probe_checks["exchange.succeeds"] == "pass"  # the probe alone would have stayed green
    finally:
        assert kubectl(running_lab, "-n", "finance", "patch", "deployment", "backend", "--type", "merge",
                       "-p", relabel).returncode == 0


def test_a_deleted_webhook_configuration_is_webhook_not_installed_and_pods_go_unmutated(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    config = str(running_lab.state_dir / "harness.yaml")
    mwc = MWC
    kept = webhook_configuration(running_lab)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        kept["metadata"].pop(key, None)
    assert kubectl(running_lab, "delete", "mutatingwebhookconfiguration", mwc).returncode == 0
    try:
        result, document = run_suites(tmp_path, "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        assert "WEBHOOK_NOT_INSTALLED" in finding_codes(document)
        checks = {c["id"]: c["status"] for c in document["workloads"][0]["checks"]}
        assert checks["pod.admitted"] == "pass" and checks["pod.mutated"] == "fail"
        pod = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "by-hand", "namespace": "finance", "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "backend-sa", "containers": [{"name": "c", "image": "busybox"}]}})
        made = subprocess.run(["kubectl", "--kubeconfig", str(running_lab.state_dir / "kubeconfig"), "create",
                               "-f", "-", "-o", "json"], input=pod, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        kubectl(running_lab, "delete", "pod", "by-hand", "-n", "finance", "--wait=false")
        assert "AZURE_CLIENT_ID" not in {e["name"] for e in json.loads(made.stdout)["spec"]["containers"][0].get(
            "env", [])}
    finally:
        restored = subprocess.run(["kubectl", "--kubeconfig", str(running_lab.state_dir / "kubeconfig"), "create",
                                   "-f", "-"], input=json.dumps(kept), capture_output=True, text=True, timeout=60)
        assert restored.returncode == 0, restored.stderr


def _tenant_env(lab: RunningLab, namespace: str, selector: str) -> set[str]:
    listed = kubectl(lab, "-n", namespace, "get", "pods", "-l", selector, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {e.get("value") for p in json.loads(listed.stdout)["items"] for c in p["spec"]["containers"]
            for e in c.get("env") or [] if e["name"] == "AZURE_TENANT_ID"}


def _restart(lab: RunningLab, namespace: str, deployment: str) -> None:
    for verb in (("rollout", "restart"), ("rollout", "status")):
        done = kubectl(lab, "-n", namespace, *verb, f"deployment/{deployment}",
                       *(["--timeout=60s"] if verb[1] == "status" else []))
        if "within the past second" in done.stderr:  # kubectl's restartedAt has a one-second resolution
            time.sleep(1.1)
            done = kubectl(lab, "-n", namespace, *verb, f"deployment/{deployment}")
        assert done.returncode == 0, done.stderr


def test_a_chart_installed_with_another_tenant_is_fixed_in_the_charts_values_not_per_service_account(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """helm install ... --set azureTenantID=<another tenant>: the chart's azure-wi-webhook-config names it, the
    webhook's pods read it at start-up (envFrom) and inject it into every pod whose ServiceAccount names no tenant,
    and Entra answers AADSTS90002. The fix is the chart's value (helm upgrade --reuse-values --set azureTenantID)
    and a restart of the webhook's pods, not a tenant-id annotation on each ServiceAccount."""
    config = str(running_lab.state_dir / "harness.yaml")
    system, manager = "azure-workload-identity-system", "azure-wi-webhook-controller-manager"
    tenant = running_lab.info()["tenant_id"]
    other = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    try:
        assert ctl(running_lab, "webhook", "--install", "helm")["install"] == "helm"
        patch = json.dumps({"data": {"AZURE_TENANT_ID": other}})
        patched = kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config",
                          "--type", "merge", "-p", patch)
        if "No such file" in patched.stderr:
            pytest.skip("kubectl is not installed")
        assert patched.returncode == 0, patched.stderr
        _restart(running_lab, "finance", "backend")
        assert _tenant_env(running_lab, "finance", "app=backend") == {tenant}  # the running manager kept its env
        _restart(running_lab, system, manager)
        _restart(running_lab, "finance", "backend")
        assert _tenant_env(running_lab, "finance", "app=backend") == {other}

        result, document = run_suites(tmp_path / "broken", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        workload = document["workloads"][0]
        statuses = {c["id"]: c["status"] for c in workload["checks"]}
        assert statuses["pod.mutated"] == "pass" and statuses["exchange.succeeds"] == "fail"
        found = next(f for f in workload["findings"] if f["code"] == "TENANT_NOT_FOUND")
        fixes = "\n".join(found["remediation"])
        assert (f"helm upgrade -n {system} workload-identity-webhook azure-workload-identity/workload-identity-webhook"
                f" --reuse-values --set azureTenantID={tenant}") in fixes
        assert f"kubectl -n {system} rollout restart deployment/{manager}" in fixes
        assert "azure.workload.identity/tenant-id" not in fixes

        # what the helm upgrade changes (the ConfigMap), then the printed restarts: the workload passes again
        restore = json.dumps({"data": {"AZURE_TENANT_ID": tenant}})
        assert kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config", "--type",
                       "merge", "-p", restore).returncode == 0
        _restart(running_lab, system, manager)
        _restart(running_lab, "finance", "backend")
        result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-4000:]
    finally:
        kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config", "--type", "merge",
                "-p", json.dumps({"data": {"AZURE_TENANT_ID": tenant}}))
        ctl(running_lab, "webhook", "--install", "addon")
        _restart(running_lab, "finance", "backend")


def test_a_chart_whose_namespace_selector_leaves_a_namespace_out_is_repaired_by_the_printed_patch(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """helm install --set-json 'mutatingWebhookNamespaceSelector={"matchExpressions":[{"key":
    "kubernetes.io/metadata.name","operator":"NotIn","values":["finance"]}]}' (here: the configuration patched to
    what that renders). No namespace label can meet it, and helm upgrade --reuse-values renders it again: the fix
    is a patch of the configuration; pasted as printed, the workload passes."""
    config = str(running_lab.state_dir / "harness.yaml")
    mwc = MWC
    selector = webhook_configuration(running_lab)["webhooks"][0].get("namespaceSelector") or {}
    exclude = {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["finance"]}
    try:
        assert ctl(running_lab, "webhook", "--install", "helm")["install"] == "helm"
        widened = {**selector, "matchExpressions": [*selector.get("matchExpressions", []), exclude]}
        patch = json.dumps([{"op": "replace", "path": "/webhooks/0/namespaceSelector", "value": widened}])
        assert kubectl(running_lab, "patch", "mutatingwebhookconfiguration", mwc, "--type", "json",
                       "-p", patch).returncode == 0
        result, document = run_suites(tmp_path / "broken", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        workload = document["workloads"][0]
        assert {c["id"]: c["status"] for c in workload["checks"]}["pod.mutated"] == "fail"
        found = next(f for f in workload["findings"] if f["code"] == "POD_NOT_MUTATED")
        assert not any(line.startswith(("helm upgrade", "az aks update")) for line in found["remediation"])
        assert "helm get values -n azure-workload-identity-system workload-identity-webhook" in found["remediation"]
        for line in found["remediation"]:
            if line.startswith(("kubectl patch mutatingwebhookconfiguration", "kubectl rollout restart")):
                argv = shlex.split(line.split(" # ")[0])
                done = kubectl(running_lab, *argv[1:])
                assert done.returncode == 0, (line, done.stderr)
        assert kubectl(running_lab, "-n", "finance", "rollout", "status", "deployment/backend",
                       "--timeout=60s").returncode == 0
        result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-4000:]
    finally:
        restore = json.dumps([{"op": "replace", "path": "/webhooks/0/namespaceSelector", "value": selector}])
        kubectl(running_lab, "patch", "mutatingwebhookconfiguration", mwc, "--type", "json", "-p", restore)
        ctl(running_lab, "webhook", "--install", "addon")


def test_the_charts_webhook_injects_the_cloud_its_config_map_named_when_its_pods_started(
    running_lab: RunningLab,
) -> None:
    """helm upgrade --set azureEnvironment=AzureChinaCloud: the webhook reads AZURE_ENVIRONMENT once, at start-up
    (getAzureAuthorityHost in NewPodMutator), so a pod made before its restart gets the lab's Entra and one made
    after gets login.chinacloudapi.cn. (The harness's fix for it is unit-tested: a probe here would dial the
    real host.)"""
    system, manager = "azure-workload-identity-system", "azure-wi-webhook-controller-manager"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "cloud-check", "namespace": "finance", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "backend-sa",
                 "containers": [{"name": "c", "image": "myacr.azurecr.io/finance/backend:1.0"}]}}

    def authority() -> str:
        made = subprocess.run(["kubectl", "--kubeconfig", str(running_lab.state_dir / "kubeconfig"), "create",
                               "-f", "-", "-o", "json"], input=json.dumps(pod), capture_output=True, text=True,
                              timeout=60)
        assert made.returncode == 0, made.stderr
        kubectl(running_lab, "delete", "pod", "cloud-check", "-n", "finance", "--wait=false")
        env = json.loads(made.stdout)["spec"]["containers"][0].get("env") or []
        return next(e["value"] for e in env if e["name"] == "AZURE_AUTHORITY_HOST")

    try:
        assert ctl(running_lab, "webhook", "--install", "helm")["install"] == "helm"
        lab_entra = running_lab.info()["authority_host"]
        patched = kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config", "--type",
                          "merge", "-p", json.dumps({"data": {"AZURE_ENVIRONMENT": "AzureChinaCloud"}}))
        if "No such file" in patched.stderr:
            pytest.skip("kubectl is not installed")
        assert patched.returncode == 0, patched.stderr
        assert authority().rstrip("/") == lab_entra.rstrip("/")  # the running pods kept what they read
        _restart(running_lab, system, manager)
        wait = subprocess.run(["kubectl", "--kubeconfig", str(running_lab.state_dir / "kubeconfig"), "wait",
                               "--for=delete", "pod/cloud-check", "-n", "finance", "--timeout=30s"],
                              capture_output=True, text=True, timeout=60)
        assert wait.returncode == 0 or "not found" in wait.stderr, wait.stderr
        assert authority() == "https://login.chinacloudapi.cn/"
    finally:
        kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config", "--type", "merge",
                "-p", json.dumps({"data": {"AZURE_ENVIRONMENT": "AzurePublicCloud"}}))
        kubectl(running_lab, "delete", "pod", "cloud-check", "-n", "finance", "--ignore-not-found")
        ctl(running_lab, "webhook", "--install", "addon")


@pytest.mark.parametrize("edited", [{"team": "finance"}, {"azure.workload.identity/use": "true", "team": "finance"}])
def test_a_charts_object_selector_edited_by_hand_is_put_back_by_the_printed_patch(
    running_lab: RunningLab, tmp_path: Path, edited: dict[str, str]
) -> None:
    """kubectl edit of the chart's webhook: objectSelector matchLabels team: finance instead of the use label.
    The printed fix (a JSON patch back to the shipped selector, not helm upgrade, whose three-way merge would keep
    team: finance beside the chart's label) pasted as printed makes the run pass again."""
    config = str(running_lab.state_dir / "harness.yaml")
    mwc = MWC
    try:
        assert ctl(running_lab, "webhook", "--install", "helm")["install"] == "helm"
        edit = json.dumps([{"op": "replace", "path": "/webhooks/0/objectSelector",
                            "value": {"matchLabels": edited}}])
        patched = kubectl(running_lab, "patch", "mutatingwebhookconfiguration", mwc, "--type", "json", "-p", edit)
        if "No such file" in patched.stderr:
            pytest.skip("kubectl is not installed")
        assert patched.returncode == 0, patched.stderr
        result, document = run_suites(tmp_path / "broken", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        found = next(f for f in document["findings"] if f["code"] == "WEBHOOK_OBJECT_SELECTOR_MISSING")
        assert not any(line.startswith(("helm upgrade", "az aks update")) for line in found["remediation"])
        patches = [line for line in found["remediation"] if line.startswith("kubectl patch")]
        assert len(patches) == 1
        if len(edited) == 2:  # narrowed: the webhook skipped the probe pod, and the workload names why
            workload = document["workloads"][0]
            unmutated = next(f for f in workload["findings"] if f["code"] == "POD_NOT_MUTATED")
            assert "objectSelector also requires team=finance" in unmutated["message"]
            assert patches[0] in unmutated["remediation"]
        done = kubectl(running_lab, *shlex.split(patches[0])[1:])
        assert done.returncode == 0, done.stderr
        result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-4000:]
    finally:
        restore = json.dumps([{"op": "replace", "path": "/webhooks/0/objectSelector",
                               "value": {"matchLabels": {"azure.workload.identity/use": "true"}}}])
        kubectl(running_lab, "patch", "mutatingwebhookconfiguration", mwc, "--type", "json", "-p", restore)
        ctl(running_lab, "webhook", "--install", "addon")


def test_a_chart_rollout_whose_new_pods_crash_on_its_config_map_is_a_degraded_webhook(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """azure-wi-webhook-config's AZURE_TENANT_ID emptied by hand, then kubectl rollout restart of the chart's
    webhook: the new pod panics (AZURE_TENANT_ID is required), the old pods keep serving. The run warns
    WEBHOOK_DEGRADED (it passed before: readyReplicas was whole); the ConfigMap put back, the crashing pod's next
    start reads it and the rollout completes."""
    config = str(running_lab.state_dir / "harness.yaml")
    system, manager = "azure-workload-identity-system", "azure-wi-webhook-controller-manager"
    tenant = running_lab.info()["tenant_id"]
    try:
        assert ctl(running_lab, "webhook", "--install", "helm")["install"] == "helm"
        emptied = kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config", "--type",
                          "merge", "-p", json.dumps({"data": {"AZURE_TENANT_ID": ""}}))
        if "No such file" in emptied.stderr:
            pytest.skip("kubectl is not installed")
        assert emptied.returncode == 0, emptied.stderr
        assert kubectl(running_lab, "-n", system, "rollout", "restart", f"deployment/{manager}").returncode == 0

        def unavailable() -> int:
            got = kubectl(running_lab, "-n", system, "get", f"deployment/{manager}", "-o", "json")
            return int(json.loads(got.stdout)["status"].get("unavailableReplicas") or 0)

        deadline = time.monotonic() + 30
        while unavailable() == 0:
            assert time.monotonic() < deadline, "the new webhook pod never showed as unavailable"
            time.sleep(0.5)
        result, document = run_suites(tmp_path / "stuck", "--config", config, "-k", "test_cluster")
        ready = next(c for c in document["checks"] if c["id"] == "cluster.webhook_ready")
        assert ready["status"] == "warn", ready["message"]
        assert any(f["code"] == "WEBHOOK_DEGRADED" for f in document["findings"])

        assert kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config", "--type",
                       "merge", "-p", json.dumps({"data": {"AZURE_TENANT_ID": tenant}})).returncode == 0
        done = kubectl(running_lab, "-n", system, "rollout", "status", f"deployment/{manager}", "--timeout=90s")
        assert done.returncode == 0, done.stderr
        result, document = run_suites(tmp_path / "fixed", "--config", config, "-k", "test_cluster")
        ready = next(c for c in document["checks"] if c["id"] == "cluster.webhook_ready")
        assert ready["status"] == "pass", ready["message"]
    finally:
        kubectl(running_lab, "-n", system, "patch", "configmap", "azure-wi-webhook-config", "--type", "merge",
                "-p", json.dumps({"data": {"AZURE_TENANT_ID": tenant}}))
        ctl(running_lab, "webhook", "--install", "addon")


def test_a_charts_webhook_deployment_deleted_by_hand_is_reinstalled_by_the_chart_not_the_add_on(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """The chart installed (its MutatingWebhookConfiguration owned by its release, as helm install makes it:
    the lab kept the add-on's ownership annotations on the configuration it had), then ``kubectl delete
    deployment`` of the chart's webhook. The harness no longer saw the chart (it looked at Deployments only), so
    cluster.workload_identity_enabled failed with WORKLOAD_IDENTITY_DISABLED and az aks update
    --enable-workload-identity (the add-on on top of the chart, Azure/azure-workload-identity#1295). Now the
    configuration's owner says it is the chart's: that link passes, and WEBHOOK_NOT_READY prints helm upgrade."""
    config = str(running_lab.state_dir / "harness.yaml")
    try:
        ctl(running_lab, "webhook", "--install", "helm")
        owner = webhook_configuration(running_lab)["metadata"]["annotations"]
        assert owner == {"meta.helm.sh/release-name": "workload-identity-webhook",
                         "meta.helm.sh/release-namespace": "azure-workload-identity-system"}
        deleted = kubectl(running_lab, "-n", "azure-workload-identity-system", "delete", "deployment",
                          "azure-wi-webhook-controller-manager")
        assert deleted.returncode == 0, deleted.stderr
        result, document = run_suites(tmp_path / "deleted", "--config", config, "--workload", "finance/backend-sa",
                                      env=BROKEN_STAYS_BROKEN)
        assert result.returncode == 1, result.stdout[-3000:]
        checks = {c["id"]: c for c in document["checks"]}
        assert checks["cluster.workload_identity_enabled"]["status"] == "pass"
        assert checks["cluster.webhook_ready"]["status"] == "fail"
        lines = [line for f in document["findings"] for line in f["remediation"]]
        lines += [line for w in document["workloads"] for f in w["findings"] for line in f["remediation"]]
        assert "helm upgrade --install -n azure-workload-identity-system workload-identity-webhook " \
               "azure-workload-identity/workload-identity-webhook --reuse-values" in lines
        assert not any(line.startswith("az aks update") for line in lines), lines
    finally:
        ctl(running_lab, "webhook", "--install", "addon")


def test_a_webhook_service_whose_selector_was_edited_is_named_not_restarted(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """kubectl patch of the add-on's webhook Service selector (azure-workload-identity.io/system: "yes"): its pods
    are ready, the API server finds no endpoint and refuses labelled pods. WEBHOOK_UNAVAILABLE printed a rollout
    restart of the webhook, which changes nothing; now the Service's selector beside the pods' labels, and the
    add-on put back (az aks update, which reconciles the add-on's objects); the selector restored, the run passes."""
    config = str(running_lab.state_dir / "harness.yaml")
    service = ("-n", "kube-system", "patch", "service", "azure-wi-webhook-webhook-service", "--type", "merge", "-p")
    try:
        edited = kubectl(running_lab, *service, '{"spec":{"selector":{"azure-workload-identity.io/system":"yes"}}}')
        assert edited.returncode == 0, edited.stderr
        result, document = run_suites(tmp_path / "edited", "--config", config, "--workload", "finance/backend-sa",
                                      env=BROKEN_STAYS_BROKEN)
        assert result.returncode == 1, result.stdout[-3000:]
        (workload,) = document["workloads"]
        (finding,) = [f for f in workload["findings"] if f["code"] == "WEBHOOK_UNAVAILABLE"]
        lines = finding["remediation"]
        assert any("get service azure-wi-webhook-webhook-service" in line for line in lines), lines
        assert not any("rollout restart" in line or " scale " in line for line in lines), lines
        assert lines[-1].startswith("az aks update")
    finally:
        kubectl(running_lab, *service, '{"spec":{"selector":{"azure-workload-identity.io/system":"true"}}}')
    result, document = run_suites(tmp_path / "restored", "--config", config, "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_ca_bundle_the_webhook_does_not_keep_is_named_and_the_printed_copy_repairs_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """A webhook run with --disable-cert-rotation (its certificates brought by hand) whose configuration's caBundle
    holds another CA of the same name (the Secret rotated, the configuration not): every labelled pod is refused
    with 'tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly because of
    ...)'. WEBHOOK_UNAVAILABLE is the first finding and quotes the x509 cause; its printed lines, pasted into bash,
    copy the Secret's ca.crt into caBundle and the next run passes."""
    import base64

    from lab.kube.webhook_tls import make_ca

    config = str(running_lab.state_dir / "harness.yaml")
    deploy = ("-n", "kube-system", "patch", "deployment", "azure-wi-webhook-controller-manager", "--type", "json",
              "-p")
    arg = "/spec/template/spec/containers/0/args"
    assert kubectl(running_lab, *deploy, json.dumps([{"op": "add", "path": f"{arg}/-",
                                                       "value": "--disable-cert-rotation"}])).returncode == 0
    rollout = ("-n", "kube-system", "rollout", "status", "deployment/azure-wi-webhook-controller-manager",
               "--timeout=60s")
    try:
        assert kubectl(running_lab, *rollout).returncode == 0
        other = base64.b64encode(make_ca()[0]).decode()
        patched = kubectl(running_lab, "patch", "mutatingwebhookconfiguration", MWC, "--type", "json", "-p",
                          json.dumps([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": other}]))
        assert patched.returncode == 0, patched.stderr
        result, document = run_suites(tmp_path / "broken", "--config", config, "--workload", "finance/backend-sa",
                                      env=BROKEN_STAYS_BROKEN)
        assert result.returncode == 1, result.stdout[-3000:]
        (workload,) = document["workloads"]
        first = workload["findings"][0]
        assert first["code"] == "WEBHOOK_UNAVAILABLE", [f["code"] for f in workload["findings"]]
        assert "x509: certificate signed by unknown authority (possibly because of" in first["message"]
        script = tmp_path / "fix.sh"
        script.write_text("set -e\n" + "\n".join(first["remediation"]) + "\n")
        pasted = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "KUBECONFIG": str(running_lab.state_dir / "kubeconfig")})
        assert pasted.returncode == 0, pasted.stderr
        result, document = run_suites(tmp_path / "fixed", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-3000:]
    finally:
        template = json.loads(kubectl(running_lab, "-n", "kube-system", "get", "deployment",
                                      "azure-wi-webhook-controller-manager", "-o", "json").stdout)
        args = template["spec"]["template"]["spec"]["containers"][0]["args"]
        if "--disable-cert-rotation" in args:
            kubectl(running_lab, *deploy, json.dumps(
                [{"op": "remove", "path": f"{arg}/{args.index('--disable-cert-rotation')}"}]))
            kubectl(running_lab, *rollout)
