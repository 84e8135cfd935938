"""The troubleshooting view end to end against the lab, as a user runs it: one workload with a broken link
(``--lab-scenario wrong-subject --workload finance/backend-sa``), and ``--pod`` on a running Deployment's pod,
which checks the pod as admitted and then probes under its ServiceAccount."""

from __future__ import annotations

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
