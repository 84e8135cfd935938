"""The troubleshooting view end to end against the lab, as a user runs it: one workload with a broken link
(``--lab-scenario wrong-subject --workload finance/backend-sa``), and ``--pod`` on a running Deployment's pod,
which checks the pod as admitted and then probes under its ServiceAccount."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes
import pytest
from test_e2e_lab import checks_of, run_suites

from harness.redact import contains_secret
from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow


def view_lines(stdout: str) -> list[str]:
    """The wi-harness section's troubleshooting lines (up to the summary's first line)."""
    section = stdout[stdout.index("troubleshooting: the chain in order") :]
    return section[: section.index("\nrun ")].splitlines()


def test_one_broken_workload_gets_its_chain_the_broken_link_and_the_fix(tmp_path: Path) -> None:
    result, document = run_suites(
        tmp_path, "--lab", "--lab-scenario", "wrong-subject", "--workload", "finance/backend-sa"
    )
    assert result.returncode == 1, result.stdout[-3000:]
    lines = view_lines(result.stdout)
    assert lines[1].startswith("── finance/backend-sa: FAIL, first broken link federation.credential")
    marks = {line.split()[1]: line.split()[0] for line in lines[2:] if line.startswith("  ") and line[2] != " "}
    assert list(marks) == [c["id"] for c in checks_of(document, "finance/backend-sa").values()]
    assert marks["sa.exists"] == "✓" and marks["federation.credential"] == "✗"
    assert marks["access.keyvault:finance-kv/db-password"] == "⟂"
    broken = next(i for i, line in enumerate(lines) if line.startswith("  ✗ federation.credential"))
    assert lines[broken].endswith("◀ first broken link")
    assert lines[broken + 1].startswith("      evidence: ") and len(lines[broken + 1]) < 300
    assert lines[broken + 2].startswith("      FIC_SUBJECT_MISMATCH (error, federation): ")
    fixes = [line for line in lines[broken + 3 :] if line.startswith("        fix: ")]
    assert any("az identity federated-credential create --name finance-backend-sa" in fix for fix in fixes)
    assert "--subject system:serviceaccount:finance:backend-sa" in " ".join(fixes)
    skipped = next(line for line in lines if "⟂ access.keyvault:finance-kv/db-password" in line)
    assert "skipped because exchange.succeeds failed" in skipped
    assert contains_secret(result.stdout, []) == []


def test_pod_checks_an_existing_pod_then_probes_under_its_service_account(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    client = kubernetes.config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig"))
    pods = kubernetes.client.CoreV1Api(client).list_namespaced_pod("finance", label_selector="app=backend")
    pod = pods.items[0].metadata.name
    result, document = run_suites(tmp_path, "--config", str(running_lab.harness_config), "--pod", f"finance/{pod}")
    assert result.returncode == 0, result.stdout[-3000:]
    checks = checks_of(document, f"finance/{pod}")
    assert {c["status"] for c in checks.values()} == {"pass"}
    assert checks["pod.mutated"]["message"].startswith("mutated")  # the existing pod, as admitted
    assert checks["probe.admitted"]["message"].startswith("probe pod finance/wi-probe-backend-sa-")
    assert checks["token.subject"]["evidence"]["sub"] == "system:serviceaccount:finance:backend-sa"
    assert checks["exchange.succeeds"]["status"] == "pass"
    lines = view_lines(result.stdout)  # narrowed by --pod: shown although it passes
    assert lines[1].startswith(f"── finance/{pod}: PASS")
    assert any(line.startswith("  ✓ exchange.identity") for line in lines)


def test_pod_that_sets_its_own_authority_host_is_named_and_the_printed_fix_repairs_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """A pod whose spec sets AZURE_AUTHORITY_HOST to a host that is not Entra (the webhook never overwrites it, so
    its SDK sends the ServiceAccount token there), made by hand with kubectl: --pod names POD_ENV_CONFLICT on
    pod.mutated, with the webhook's own value from the probe pod; the printed delete of the pod, and the pod made
    again without the variable, passes."""
    kubeconfig = str(running_lab.state_dir / "kubeconfig")
    client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    core = kubernetes.client.CoreV1Api(client)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "sets-authority", "namespace": "finance",
                        "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"serviceAccountName": "backend-sa", "containers": [{
               "name": "app", "image": "myacr.azurecr.io/finance/backend:1.0",
               "env": [{"name": "AZURE_AUTHORITY_HOST", "value": "https://login.attacker.example/"}]}]}}
    core.create_namespaced_pod("finance", pod)
    try:
        result, document = run_suites(tmp_path / "broken", "--config", str(running_lab.harness_config),
                                      "--pod", "finance/sets-authority")
        assert result.returncode == 1, result.stdout[-3000:]
        (workload,) = document["workloads"]
        mutated = checks_of(document, "finance/sets-authority")["pod.mutated"]
        assert mutated["status"] == "fail" and [f["code"] for f in workload["findings"]] == ["POD_ENV_CONFLICT"]
        assert mutated["message"].startswith("AZURE_AUTHORITY_HOST=https://login.attacker.example/ in the pod, but "
                                             "the webhook injects https://127.0.0.1:")
        fixes = workload["findings"][0]["remediation"]
        assert fixes[1] == "kubectl delete pod -n finance sets-authority"
        assert checks_of(document, "finance/sets-authority")["exchange.succeeds"]["status"] == "pass"  # the probe's
        deleted = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *fixes[1].split()[1:], "--wait=true"],
                                 capture_output=True, text=True, timeout=60)
        assert deleted.returncode == 0, deleted.stderr
        del pod["spec"]["containers"][0]["env"]  # the advice: the variable removed from the spec
        core.create_namespaced_pod("finance", pod)
        result, document = run_suites(tmp_path / "fixed", "--config", str(running_lab.harness_config),
                                      "--pod", "finance/sets-authority")
        assert result.returncode == 0, result.stdout[-3000:]
    finally:
        try:
            core.delete_namespaced_pod("sets-authority", "finance", grace_period_seconds=0)
        except kubernetes.client.exceptions.ApiException as exc:
            assert exc.status == 404
