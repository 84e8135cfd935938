"""Why the probe did not run, on one lab, each case made the way a person would make it and each undone after:
an Azure Policy / Gatekeeper denial (``lab ctl policy deny``, since no public API installs a policy engine) is
POD_REJECTED_BY_POLICY naming validation.gatekeeper.sh, never a Workload ID webhook finding; a namespace whose
pod quota is used up (``kubectl create quota``, ``kubectl patch``) is POD_REJECTED_BY_QUOTA; a node tainted
with ``kubectl taint`` leaves the probe Pending, PROBE_UNSCHEDULABLE with the scheduler's own message.

The quota case limits the pod count, not ``limits.cpu``: every probe pod counts against ``pods`` whatever
resources harness.yaml gives it, while a probe that sets a CPU limit would pass a ``limits.cpu`` quota.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_e2e_lab import BROKEN_STAYS_BROKEN, run_suites

from harness.checks import remediation as fix
from harness.commands import render
from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WORKLOAD = "finance/backend-sa"
TAINT = "wi-harness.test/blocked=probe:NoSchedule"



@pytest.fixture(scope="module")
def kube_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubectl-home")  # kubectl's discovery cache lives as long as this lab


def ctl(lab: RunningLab, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "lab", "ctl", "--state-dir", str(lab.state_dir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def kubectl(lab: RunningLab, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["kubectl", "--kubeconfig", str(lab.state_dir / "kubeconfig"), *args],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HOME": str(home)})
    except FileNotFoundError:
        pytest.skip("kubectl is not installed")


def workload_findings(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    workload = next(w for w in document["workloads"] if w["id"] == WORKLOAD)
    return {f["code"]: f for f in workload["findings"]}


def all_codes(document: dict[str, Any]) -> set[str]:
    return {f["code"] for f in document["findings"]} | {f["code"] for w in document["workloads"]
                                                         for f in w["findings"]}


def test_a_gatekeeper_denial_is_a_policy_rejection_naming_the_webhook(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    config = str(running_lab.state_dir / "harness.yaml")
    try:
        installed = ctl(running_lab, "policy", "deny", "--namespace", "finance",
                        "--message", "container <probe> has no cpu limit")
        constraint = installed["constraints"][0]["name"]
        configurations = kubectl(running_lab, kube_home, "get", "validatingwebhookconfigurations",
                                 "-o", "json")
        assert configurations.returncode == 0, configurations.stderr
        webhooks = [w["name"] for c in json.loads(configurations.stdout)["items"] for w in c["webhooks"]]
        assert "validation.gatekeeper.sh" in webhooks

        result, document = run_suites(tmp_path, "--config", config, "--workload", WORKLOAD)
        assert result.returncode != 0
        findings = workload_findings(document)
        policy = findings["POD_REJECTED_BY_POLICY"]
        assert policy["evidence"]["webhook"] == "validation.gatekeeper.sh"
        assert f"[{constraint}] container <probe> has no cpu limit" in policy["message"]
        assert not [code for code in all_codes(document) if code.startswith("WEBHOOK_")]
        assert policy["evidence"]["error"]["status"] == 403
    finally:
        ctl(running_lab, "policy", "clear")
    assert kubectl(running_lab, kube_home, "get", "validatingwebhookconfigurations",
                   "gatekeeper-validating-webhook-configuration").returncode != 0


def quota_used(lab: RunningLab, home: Path, name: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = kubectl(lab, home, "-n", "finance", "get", "resourcequota", name, "-o", "json")
        assert result.returncode == 0, result.stderr
        used = (json.loads(result.stdout).get("status") or {}).get("used") or {}
        if "pods" in used:
            return used["pods"]
        time.sleep(0.2)
    raise AssertionError(f"the quota {name} never got status.used")


def test_a_used_up_pod_quota_is_a_quota_rejection(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    config = str(running_lab.state_dir / "harness.yaml")
    created = kubectl(running_lab, kube_home, "-n", "finance", "create", "quota", "probe-budget",
                      "--hard=pods=50")
    assert created.returncode == 0, created.stderr
    try:
        used = quota_used(running_lab, kube_home, "probe-budget")
        full = json.dumps({"spec": {"hard": {"pods": used}}})
        patched = kubectl(running_lab, kube_home, "-n", "finance", "patch", "resourcequota", "probe-budget",
                          "--type", "merge", "-p", full)
        assert patched.returncode == 0, patched.stderr

        result, document = run_suites(tmp_path, "--config", config, "--workload", WORKLOAD)
        assert result.returncode != 0
        quota = workload_findings(document)["POD_REJECTED_BY_QUOTA"]
        assert (f"is forbidden: exceeded quota: probe-budget, requested: pods=1, used: pods={used}, "
                f"limited: pods={used}") in quota["message"]
        assert "POD_REJECTED_BY_POLICY" not in all_codes(document)
    finally:
        kubectl(running_lab, kube_home, "-n", "finance", "delete", "resourcequota", "probe-budget")


def test_a_tainted_node_leaves_the_probe_unschedulable(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    data = yaml.safe_load((running_lab.state_dir / "harness.yaml").read_text())
    data.setdefault("probe", {})["timeout_seconds"] = 10  # the pod never starts: no need to wait 2 minutes
    config = tmp_path / "harness.yaml"
    config.write_text(yaml.safe_dump(data))
    nodes = kubectl(running_lab, kube_home, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
    assert nodes.returncode == 0, nodes.stderr
    node = nodes.stdout.strip()
    tainted = kubectl(running_lab, kube_home, "taint", "nodes", node, TAINT)
    assert tainted.returncode == 0, tainted.stderr
    try:
        result, document = run_suites(tmp_path / "report", "--config", str(config), "--workload", WORKLOAD)
        assert result.returncode != 0
        unschedulable = workload_findings(document)["PROBE_UNSCHEDULABLE"]
        assert unschedulable["evidence"]["scheduler"] == (
            "0/1 nodes are available: 1 node(s) had untolerated taint {wi-harness.test/blocked: probe}. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
        assert "PROBE_TIMEOUT" not in all_codes(document)
    finally:
        untainted = kubectl(running_lab, kube_home, "taint", "nodes", node, TAINT + "-")
    assert untainted.returncode == 0, untainted.stderr


INJECTOR = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
    "metadata": {"name": "istio-sidecar-injector"},
    "webhooks": [{
        "name": "namespace.sidecar-injector.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail",
        "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system", "path": "/inject", "port": 443}},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}},
    }],
}


def paste(lab: RunningLab, home: Path, line: str) -> subprocess.CompletedProcess[str]:
    """One printed fix line run by a shell as a person pastes it (its ``# ...`` note is a shell comment)."""
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(lab.state_dir / "kubeconfig")}
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60)


def test_another_vendors_webhook_that_cannot_be_called_is_named_not_workload_identity(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """A mesh's sidecar injector left with failurePolicy Fail and no Service (istiod uninstalled, its
    configuration kept) refuses every pod of a namespace labelled istio-injection=enabled, the probe among them:
    OTHER_WEBHOOK_UNAVAILABLE naming it and its Service, no Workload ID webhook finding. The printed look finds
    the configuration; deleting it (the person's decision the finding names) lets the next run pass."""
    config = str(running_lab.state_dir / "harness.yaml")
    manifest = tmp_path / "injector.json"
    manifest.write_text(json.dumps(INJECTOR))
    applied = kubectl(running_lab, kube_home, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    labelled = kubectl(running_lab, kube_home, "label", "namespace", "finance", "istio-injection=enabled")
    assert labelled.returncode == 0, labelled.stderr
    try:
        by_hand = kubectl(running_lab, kube_home, "-n", "finance", "run", "by-hand", "--image=busybox")
        assert by_hand.stderr.strip() == (
            'Error from server (InternalError): Internal error occurred: failed calling webhook '
            '"namespace.sidecar-injector.istio.io": failed to call webhook: Post '
            '"https://istiod.istio-system.svc:443/inject?timeout=10s": service "istiod" not found')

        result, document = run_suites(tmp_path / "broken", "--config", config, "--workload", WORKLOAD,
                                      env=BROKEN_STAYS_BROKEN)
        assert result.returncode != 0
        workload = next(w for w in document["workloads"] if w["id"] == WORKLOAD)
        first = workload["findings"][0]
        assert first["code"] == "OTHER_WEBHOOK_UNAVAILABLE"
        assert first["evidence"]["webhook"] == "namespace.sidecar-injector.istio.io"
        assert first["message"].startswith('the admission webhook namespace.sidecar-injector.istio.io (not Workload '
                                           "ID's) cannot be called: service \"istiod\" not found;")
        assert not [code for code in all_codes(document) if code.startswith("WEBHOOK_") or code == "POD_NOT_MUTATED"]
        listing, endpoints, pods, decision = first["remediation"]
        looked = paste(running_lab, kube_home, listing)
        assert looked.returncode == 0, looked.stderr
        assert any(line.split()[:3] == ["istio-sidecar-injector", "namespace.sidecar-injector.istio.io", "Fail"]
                   for line in looked.stdout.splitlines()), looked.stdout
        assert endpoints == "kubectl get endpoints -n istio-system istiod   # no address: no pod serves it"
        # kubectl itself reports the namespace when the object is not found and its namespace is gone too
        assert paste(running_lab, kube_home, endpoints).stderr.strip() == \
            'Error from server (NotFound): namespaces "istio-system" not found'
        assert pods == "kubectl get pods -n istio-system"
        assert decision.startswith("# a person decides")

        deleted = kubectl(running_lab, kube_home, "delete", "mutatingwebhookconfiguration", "istio-sidecar-injector")
        assert deleted.returncode == 0, deleted.stderr
        result, document = run_suites(tmp_path / "repaired", "--config", config, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]
    finally:
        kubectl(running_lab, kube_home, "delete", "mutatingwebhookconfiguration", "istio-sidecar-injector",
                "--ignore-not-found")
        kubectl(running_lab, kube_home, "label", "namespace", "finance", "istio-injection-")


def deployment_condition(lab: RunningLab, home: Path, kind: str) -> dict[str, Any] | None:
    shown = kubectl(lab, home, "-n", "finance", "get", "deployment", "backend", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    return next((c for c in json.loads(shown.stdout)["status"].get("conditions") or [] if c["type"] == kind), None)


def wait_for(what: str, ready: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.3)
    raise AssertionError(f"never {what}")


def test_a_deployment_refused_by_pod_security_is_named_for_the_workload(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """The workload's own Deployment, its template without a securityContext, restarted after its namespace was
    labelled pod-security.kubernetes.io/enforce=restricted: its ReplicaSet's pods are refused (ReplicaFailure
    FailedCreate) while the old pod serves and the probe, which meets restricted, proves the chain. A warning,
    WORKLOAD_PODS_REFUSED, naming Pod Security admission and never Workload ID; once the person relaxes the
    label, the ReplicaSet creates the pod and the next run has no such warning."""
    config = str(running_lab.state_dir / "harness.yaml")
    saved = kubectl(running_lab, kube_home, "-n", "finance", "get", "deployment", "backend", "-o", "json")
    assert saved.returncode == 0, saved.stderr
    template = json.loads(saved.stdout)["spec"]["template"]["spec"]
    undo = json.dumps([{"op": "add", "path": "/spec/template/spec/securityContext", "value": template["securityContext"]},
                       {"op": "add", "path": "/spec/template/spec/containers/0/securityContext",
                        "value": template["containers"][0]["securityContext"]}])
    bare = json.dumps([{"op": "remove", "path": "/spec/template/spec/securityContext"},
                       {"op": "remove", "path": "/spec/template/spec/containers/0/securityContext"}])
    patched = kubectl(running_lab, kube_home, "-n", "finance", "patch", "deployment", "backend", "--type", "json",
                      "-p", bare)
    assert patched.returncode == 0, patched.stderr
    try:
        rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "deployment", "backend",
                         "--timeout", "60s")
        assert rolled.returncode == 0, rolled.stderr
        labelled = kubectl(running_lab, kube_home, "label", "namespace", "finance",
                           "pod-security.kubernetes.io/enforce=restricted")
        assert labelled.returncode == 0, labelled.stderr
        restarted = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "restart", "deployment", "backend")
        assert restarted.returncode == 0, restarted.stderr
        wait_for("a ReplicaFailure", lambda: deployment_condition(running_lab, kube_home, "ReplicaFailure"))

        result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]  # a warning: the identity chain is proved
        workload = next(w for w in document["workloads"] if w["id"] == WORKLOAD)
        assert [f["code"] for f in workload["findings"]] == ["WORKLOAD_PODS_REFUSED"]
        refused = workload["findings"][0]
        assert refused["severity"] == "warning"
        assert refused["message"].startswith(
            "Deployment/backend: the API server refuses its new pods, not for Workload ID but Pod Security "
            'admission (the namespace enforces "restricted:latest"): pods "backend-')
        assert 'container "backend" must set securityContext.allowPrivilegeEscalation=false' in refused["message"]
        describe, labels, decision = refused["remediation"]
        assert describe == "kubectl describe deployment/backend -n finance"
        assert paste(running_lab, kube_home, describe).returncode == 0
        shown = paste(running_lab, kube_home, labels)
        assert "pod-security.kubernetes.io/enforce=restricted" in shown.stdout, shown.stderr
        assert decision.startswith("# a person decides")

        relaxed = kubectl(running_lab, kube_home, "label", "namespace", "finance", "pod-security.kubernetes.io/enforce-")
        assert relaxed.returncode == 0, relaxed.stderr
        rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "deployment", "backend",
                         "--timeout", "60s")
        assert rolled.returncode == 0, rolled.stderr  # the ReplicaSet retried once the label changed
        result, document = run_suites(tmp_path / "relaxed", "--config", config, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]
        assert "WORKLOAD_PODS_REFUSED" not in all_codes(document)
    finally:
        kubectl(running_lab, kube_home, "label", "namespace", "finance", "pod-security.kubernetes.io/enforce-")
        kubectl(running_lab, kube_home, "-n", "finance", "patch", "deployment", "backend", "--type", "json", "-p", undo)
        kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "deployment", "backend", "--timeout",
                "60s")


def quick_config(lab: RunningLab, path: Path, **probe: Any) -> str:
    data = yaml.safe_load((lab.state_dir / "harness.yaml").read_text())
    data.setdefault("probe", {}).update({"timeout_seconds": 10, **probe})  # the pod never starts: no long wait
    path.write_text(yaml.safe_dump(data))
    return str(path)


def unschedulable_fixes(document: dict[str, Any]) -> list[str]:
    finding = workload_findings(document)["PROBE_UNSCHEDULABLE"]
    assert "PROBE_TIMEOUT" not in all_codes(document)
    return list(finding["remediation"])


def test_a_cordoned_node_is_named_and_left_to_a_person_not_tolerated(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """kubectl cordon leaves the probe Pending with NodeUnschedulable's reason. The fix shows the node's STATUS
    (SchedulingDisabled) and leaves kubectl uncordon to a person; it never offers a toleration. Uncordoned, the
    next run passes."""
    config = quick_config(running_lab, tmp_path / "harness.yaml")
    node = kubectl(running_lab, kube_home, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout.strip()
    cordoned = kubectl(running_lab, kube_home, "cordon", node)
    assert cordoned.returncode == 0, cordoned.stderr
    try:
        result, document = run_suites(tmp_path / "cordoned", "--config", config, "--workload", WORKLOAD)
        assert result.returncode != 0
        lines = unschedulable_fixes(document)
        assert "1 node(s) were unschedulable" in workload_findings(document)["PROBE_UNSCHEDULABLE"]["message"]
        look = next(line for line in lines if line.endswith("# SchedulingDisabled: cordoned"))
        shown = paste(running_lab, kube_home, look)
        assert "Ready,SchedulingDisabled" in shown.stdout, shown.stderr
        assert any(line.startswith("# a person decides: a cordoned node takes no new pods") for line in lines)
        assert not any("probe.tolerations" in line for line in lines)
    finally:
        uncordoned = kubectl(running_lab, kube_home, "uncordon", node)
    assert uncordoned.returncode == 0, uncordoned.stderr
    result, _ = run_suites(tmp_path / "uncordoned", "--config", config, "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_probe_node_selector_no_node_meets_is_looked_up_and_set_right(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """probe.node_selector naming a pool the cluster does not have (agentpool: gpu): the printed label query
    finds no node, the workload's pods show where it runs, and probe.node_selector set to that pool's label (as
    the fix says) passes."""
    config = quick_config(running_lab, tmp_path / "gpu.yaml", node_selector={"agentpool": "gpu"})
    result, document = run_suites(tmp_path / "gpu", "--config", config, "--workload", WORKLOAD)
    assert result.returncode != 0
    lines = unschedulable_fixes(document)
    query = "kubectl get nodes -l agentpool=gpu,kubernetes.io/os=linux   # no node has every label the probe's " \
            "nodeSelector names"
    assert query in lines
    assert paste(running_lab, kube_home, query).stderr.strip() == "No resources found"
    where = paste(running_lab, kube_home, "kubectl get pods -n finance -o wide   # the nodes the workload runs on")
    assert where.returncode == 0, where.stderr
    assert any(line.startswith("# set probe.node_selector in harness.yaml to labels those nodes have")
               for line in lines)
    pool = kubectl(running_lab, kube_home, "get", "nodes", "-o", "jsonpath={.items[0].metadata.labels.agentpool}")
    config = quick_config(running_lab, tmp_path / "pool.yaml", node_selector={"agentpool": pool.stdout.strip()})
    result, _ = run_suites(tmp_path / "pool", "--config", config, "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]


def test_an_allowed_repositories_policy_refuses_the_probe_image_and_the_workloads_rollout(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """An allowed-repositories policy (gatekeeper-library's K8sAllowedRepos, ``lab ctl policy allowed-repos``)
    allowing only docker.io/library/: the probe's MCR image is POD_REJECTED_BY_POLICY with the policy's own text,
    and the fix names where an allowed image comes from; probe.image set to a Python image there (as the fix says)
    passes. The workload's restarted Deployment, whose image is from its own registry, is WORKLOAD_PODS_REFUSED
    naming Gatekeeper, never Workload ID; cleared, its ReplicaSet creates the pod."""
    config = str(running_lab.state_dir / "harness.yaml")
    ctl(running_lab, "policy", "allowed-repos", "--namespace", "finance", "--repo", "docker.io/library/")
    try:
        result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
        assert result.returncode != 0
        policy = workload_findings(document)["POD_REJECTED_BY_POLICY"]
        assert ("[allowed-repos-finance] container <probe> has an invalid image repo <mcr.microsoft.com/"
                in policy["message"])
        assert policy["message"].endswith('allowed repos are ["docker.io/library/"]')
        assert policy["remediation"][-1] == ("# or set probe.image in harness.yaml to a Python image under the "
                                             'repositories the policy allows: ["docker.io/library/"]')
        assert any(line.startswith("az acr import --name '<registry>' --source mcr.microsoft.com/")
                   for line in policy["remediation"])
        assert not [code for code in all_codes(document) if code.startswith("WEBHOOK_")]

        allowed = quick_config(running_lab, tmp_path / "allowed.yaml", image="docker.io/library/python:3.12",
                               timeout_seconds=120)
        restarted = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "restart", "deployment", "backend")
        assert restarted.returncode == 0, restarted.stderr
        wait_for("a ReplicaFailure", lambda: deployment_condition(running_lab, kube_home, "ReplicaFailure"))
        result, document = run_suites(tmp_path / "allowed", "--config", allowed, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]  # the probe passes; the rollout is a warning
        refused = workload_findings(document)["WORKLOAD_PODS_REFUSED"]
        assert refused["severity"] == "warning"
        assert ("container <backend> has an invalid image repo <myacr.azurecr.io/finance/backend:1.4.2>"
                in refused["message"])
        assert "kubectl get constraints -o wide   # which constraint refused it" in refused["remediation"]
    finally:
        ctl(running_lab, "policy", "clear")
    rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "deployment", "backend",
                     "--timeout", "60s")
    assert rolled.returncode == 0, rolled.stderr


def test_a_validating_policy_webhook_left_without_its_service_is_named_not_workload_identity(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """Kyverno's fail-closed validating webhook applied by hand with no kyverno-svc (Kyverno scaled to zero or
    uninstalled, its configuration kept): OTHER_WEBHOOK_UNAVAILABLE naming it, no Workload ID finding; deleting the
    configuration, the person's decision the finding names, lets the next run pass."""
    config = str(running_lab.state_dir / "harness.yaml")
    manifest = tmp_path / "kyverno.json"
    manifest.write_text(json.dumps({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "kyverno-resource-validating-webhook-cfg"},
        "webhooks": [{
            "name": "validate.kyverno.svc-fail", "admissionReviewVersions": ["v1"], "sideEffects": "NoneOnDryRun",
            "failurePolicy": "Fail", "timeoutSeconds": 10,
            "clientConfig": {"service": {"name": "kyverno-svc", "namespace": "kyverno", "path": "/validate/fail",
                                         "port": 443}},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"],
                       "resources": ["*"]}],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                        "values": ["kyverno", "kube-system"]}]},
        }],
    }))
    applied = kubectl(running_lab, kube_home, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    try:
        result, document = run_suites(tmp_path / "broken", "--config", config, "--workload", WORKLOAD,
                                      env=BROKEN_STAYS_BROKEN)
        assert result.returncode != 0
        first = next(w for w in document["workloads"] if w["id"] == WORKLOAD)["findings"][0]
        assert first["code"] == "OTHER_WEBHOOK_UNAVAILABLE"
        assert first["message"].startswith("the admission webhook validate.kyverno.svc-fail (not Workload ID's) "
                                           'cannot be called: service "kyverno-svc" not found;')
        assert "kubectl get endpoints -n kyverno kyverno-svc   # no address: no pod serves it" in first["remediation"]
        assert not [code for code in all_codes(document) if code.startswith("WEBHOOK_")]
        looked = paste(running_lab, kube_home, first["remediation"][0])
        assert any(line.split() == ["kyverno-resource-validating-webhook-cfg", "validate.kyverno.svc-fail", "Fail"]
                   for line in looked.stdout.splitlines()), (looked.stdout, looked.stderr)
    finally:
        deleted = kubectl(running_lab, kube_home, "delete", "validatingwebhookconfiguration",
                          "kyverno-resource-validating-webhook-cfg")
    assert deleted.returncode == 0, deleted.stderr
    result, _ = run_suites(tmp_path / "repaired", "--config", config, "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_container_limits_policy_refuses_a_probe_above_it_and_a_workload_without_limits(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """A container-limits policy (gatekeeper-library's K8sContainerLimits, ``lab ctl policy container-limits``) with
    a 100m cpu maximum: the probe's default 200m limit is POD_REJECTED_BY_POLICY with the policy's text, and the fix
    names the probe.resources that comply; set so in harness.yaml, the probe passes. The workload's restarted
    Deployment, whose template has no limits, is WORKLOAD_PODS_REFUSED, a warning; cleared, it rolls out."""
    config = str(running_lab.state_dir / "harness.yaml")
    ctl(running_lab, "policy", "container-limits", "--namespace", "finance", "--cpu", "100m", "--memory", "1Gi")
    try:
        result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
        assert result.returncode != 0
        policy = workload_findings(document)["POD_REJECTED_BY_POLICY"]
        assert policy["message"].endswith("[container-limits-finance] container <probe> cpu limit <200m> is higher "
                                          "than the maximum allowed of <100m>")
        assert policy["remediation"][-1] == ("# set probe.resources in harness.yaml within what the policy allows: "
                                             "limits: {cpu: 100m} (or lower); the probe needs little")

        within = quick_config(running_lab, tmp_path / "within.yaml", resources={"limits": {"cpu": "100m"}},
                              timeout_seconds=120)
        restarted = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "restart", "deployment", "backend")
        assert restarted.returncode == 0, restarted.stderr
        wait_for("a ReplicaFailure", lambda: deployment_condition(running_lab, kube_home, "ReplicaFailure"))
        result, document = run_suites(tmp_path / "within", "--config", within, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]
        refused = workload_findings(document)["WORKLOAD_PODS_REFUSED"]
        assert "container <backend> has no resource limits" in refused["message"]
        assert "POD_REJECTED_BY_POLICY" not in all_codes(document)
    finally:
        ctl(running_lab, "policy", "clear")
    rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "deployment", "backend",
                     "--timeout", "60s")
    assert rolled.returncode == 0, rolled.stderr


LEDGER = {
    "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ledger", "namespace": "finance"},
    "spec": {"serviceName": "ledger", "replicas": 2, "selector": {"matchLabels": {"app": "ledger"}},
             "template": {"metadata": {"labels": {"app": "ledger", "azure.workload.identity/use": "true"}},
                          "spec": {"serviceAccountName": "backend-sa",
                                   "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]}}},
}


def test_a_statefulset_refused_by_pod_security_is_named_from_its_event(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """A StatefulSet under the workload's ServiceAccount, restarted after finance was labelled enforce=restricted:
    its controller records the refusal only as a FailedCreate event. WORKLOAD_PODS_REFUSED names it (a warning,
    not Workload ID); the printed looks run, the label relaxed (the person's choice), the StatefulSet makes its
    pod and the next run has no such warning."""
    config = str(running_lab.state_dir / "harness.yaml")
    manifest = tmp_path / "ledger.json"
    manifest.write_text(json.dumps(LEDGER))
    assert kubectl(running_lab, kube_home, "apply", "-f", str(manifest)).returncode == 0
    try:
        rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "sts/ledger", "--timeout=60s")
        assert rolled.returncode == 0, rolled.stderr
        assert kubectl(running_lab, kube_home, "label", "namespace", "finance",
                       "pod-security.kubernetes.io/enforce=restricted").returncode == 0
        assert kubectl(running_lab, kube_home, "-n", "finance", "rollout", "restart", "sts/ledger").returncode == 0
        wait_for("a FailedCreate event", lambda: "failed error" in kubectl(
            running_lab, kube_home, "-n", "finance", "get", "events", "--field-selector", "reason=FailedCreate").stdout)

        result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]  # a warning: the probe proves the chain
        refused = workload_findings(document)["WORKLOAD_PODS_REFUSED"]
        assert refused["message"].startswith("StatefulSet/ledger: the API server refuses its new pods, not for "
                                             "Workload ID but Pod Security admission")
        for line in refused["remediation"]:
            if not line.startswith("#"):
                assert paste(running_lab, kube_home, line).returncode == 0, line
        assert kubectl(running_lab, kube_home, "label", "namespace", "finance",
                       "pod-security.kubernetes.io/enforce-").returncode == 0
        rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "sts/ledger", "--timeout=60s")
        assert rolled.returncode == 0, rolled.stderr
        result, document = run_suites(tmp_path / "relaxed", "--config", config, "--workload", WORKLOAD)
        assert result.returncode == 0 and "WORKLOAD_PODS_REFUSED" not in all_codes(document)
    finally:
        kubectl(running_lab, kube_home, "label", "namespace", "finance", "pod-security.kubernetes.io/enforce-")
        kubectl(running_lab, kube_home, "delete", "statefulset", "ledger", "-n", "finance", "--ignore-not-found")


REQUIRED_TEAM = {
    "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
    "metadata": {"name": "pods-need-a-team"},
    "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "namespaces": ["finance"]},
             "parameters": {"labels": [{"key": "team", "allowedRegex": "^[a-z]+$"}]}},
}


def test_a_required_labels_policy_is_met_by_the_probe_labels_the_fix_prints(
    running_lab: RunningLab, kube_home: Path, tmp_path: Path
) -> None:
    """A team's gatekeeper-library K8sRequiredLabels constraint, applied with kubectl after the Deployment's pods
    got the label: the probe is POD_REJECTED_BY_POLICY, and the fix prints probe.labels with the value the
    workload's pods carry; set so in harness.yaml, the next run passes."""
    template = '{"spec":{"template":{"metadata":{"labels":{"team":%s}}}}}'
    ctl(running_lab, "policy", "allowed-repos", "--namespace", "wi-harness-unused", "--repo", "x")  # the CRDs
    try:
        patched = kubectl(running_lab, kube_home, "-n", "finance", "patch", "deployment", "backend", "--type",
                          "merge", "-p", template % '"payments"')
        assert patched.returncode == 0, patched.stderr
        rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "deployment", "backend",
                         "--timeout", "60s")
        assert rolled.returncode == 0, rolled.stderr
        (tmp_path / "team.yaml").write_text(yaml.safe_dump(REQUIRED_TEAM))
        applied = kubectl(running_lab, kube_home, "apply", "-f", str(tmp_path / "team.yaml"))
        assert applied.returncode == 0, applied.stderr
        config = quick_config(running_lab, tmp_path / "refused.yaml")
        result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
        assert result.returncode != 0
        policy = workload_findings(document)["POD_REJECTED_BY_POLICY"]
        assert policy["message"].endswith('[pods-need-a-team] you must provide labels: {"team"}')
        assert policy["remediation"][-1] == ('# set probe.labels in harness.yaml: {team: "payments"} (the values the '
                                             "workload's pods carry)")

        labelled = quick_config(running_lab, tmp_path / "labelled.yaml", labels={"team": "payments"},
                                timeout_seconds=120)
        result, document = run_suites(tmp_path / "labelled", "--config", labelled, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]
    finally:
        ctl(running_lab, "policy", "clear")
        kubectl(running_lab, kube_home, "-n", "finance", "patch", "deployment", "backend", "--type", "merge", "-p",
                template % "null")
    rolled = kubectl(running_lab, kube_home, "-n", "finance", "rollout", "status", "deployment", "backend",
                     "--timeout", "60s")
    assert rolled.returncode == 0, rolled.stderr


def test_the_printed_egress_test_pod_is_admitted_where_pod_security_enforces_restricted(
    running_lab: RunningLab, kube_home: Path
) -> None:
    """The fixes of a blocked path end with a `kubectl run egress-test ... curlimages/curl` line. In a namespace
    labelled pod-security.kubernetes.io/enforce=restricted (a hardened cluster's) kubectl run's bare pod was
    refused ('violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false ...'): the printed line
    now carries the securityContext restricted asks for. Run here as printed but as a server-side dry run (the
    admission chain without a terminal to attach)."""
    namespace = "hardened"
    made = kubectl(running_lab, kube_home, "create", "namespace", namespace)
    assert made.returncode == 0, made.stderr
    try:
        labelled = kubectl(running_lab, kube_home, "label", "namespace", namespace,
                           "pod-security.kubernetes.io/enforce=restricted")
        assert labelled.returncode == 0, labelled.stderr
        line = next(render(step) for step in fix.egress_test(namespace, "https://login.example/t/token", None)
                    if getattr(step, "argv", None) and "egress-test" in render(step))
        argv = shlex.split(line)
        assert argv[:2] == ["kubectl", "run"] and "--rm" in argv and "-it" in argv
        argv = [word for word in argv[1:] if word not in ("--rm", "-it")]
        split = argv.index("--")
        argv[split:split] = ["--dry-run=server", "-o", "name"]
        admitted = kubectl(running_lab, kube_home, *argv)
        assert admitted.returncode == 0 and admitted.stdout.strip() == "pod/egress-test", admitted.stderr
        bare = kubectl(running_lab, kube_home, "run", "-n", namespace, "egress-test", "--image=curlimages/curl",
                       "--dry-run=server", "-o", "name", "--", "curl", "-sS", "https://login.example/t/token")
        assert bare.returncode != 0 and 'violates PodSecurity "restricted:latest"' in bare.stderr
    finally:
        kubectl(running_lab, kube_home, "delete", "namespace", namespace, "--wait=false")
