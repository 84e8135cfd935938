"""The Workload ID webhook's own rollout refused by something that is not Workload ID: a ResourceQuota in
kube-system made with kubectl, used up by the webhook's two pods, then kubectl rollout restart. The new pod is
refused (ReplicaFailure), the old ones serve. WEBHOOK_DEGRADED names the quota's refusal and its look, not the
pods' logs and ConfigMap of a crash; the quota deleted (the person's call), the rollout completes and the next run
passes. A module of its own lab."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_e2e_lab import run_suites

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
WORKLOAD = "finance/backend-sa"
WEBHOOK = "azure-wi-webhook-controller-manager"


def shell(lab: RunningLab, home: Path, line: str) -> subprocess.CompletedProcess[str]:
    """A command line as a person types or pastes it (a fix's ``# ...`` note is a shell comment)."""
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(lab.state_dir / "kubeconfig")}
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60)


def must(lab: RunningLab, home: Path, line: str) -> str:
    done = shell(lab, home, line)
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done.stdout


def replica_failure(lab: RunningLab, home: Path) -> dict[str, Any] | None:
    status = json.loads(must(lab, home, f"kubectl -n kube-system get deployment {WEBHOOK} -o json"))["status"]
    return next((c for c in status.get("conditions") or [] if c["type"] == "ReplicaFailure"), None)


def test_a_quota_refusing_the_webhooks_rollout_is_named_not_a_crash(running_lab: RunningLab, tmp_path: Path) -> None:
    if shell(running_lab, tmp_path, "command -v kubectl").returncode != 0:
        pytest.skip("kubectl is not installed")
    config = str(running_lab.state_dir / "harness.yaml")
    used = len(json.loads(must(running_lab, tmp_path, "kubectl -n kube-system get pods -o json"))["items"])
    must(running_lab, tmp_path, f"kubectl -n kube-system create quota webhook-budget --hard=pods={used}")
    try:
        must(running_lab, tmp_path, f"kubectl -n kube-system rollout restart deployment {WEBHOOK}")
        deadline = time.monotonic() + 30
        while replica_failure(running_lab, tmp_path) is None:
            assert time.monotonic() < deadline, "the rollout was never refused"
            time.sleep(0.3)

        result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]  # a warning: the old pods serve
        degraded = next(f for f in document["findings"] if f["code"] == "WEBHOOK_DEGRADED")
        assert degraded["message"].startswith(f"the API server refuses the webhook's new pods: kube-system/{WEBHOOK}: "
                                              f'pods "{WEBHOOK}-')
        assert f"is forbidden: exceeded quota: webhook-budget, requested: pods=1, used: pods={used}" \
            in degraded["message"]
        describe, quota, decision = degraded["remediation"]
        assert "ReplicaFailure" in must(running_lab, tmp_path, describe)
        assert "webhook-budget" in must(running_lab, tmp_path, quota)
        assert decision.startswith("# a person decides: change what refuses the webhook's pods (a ResourceQuota")
        assert not any("logs" in line or "configmap" in line for line in degraded["remediation"])
    finally:
        shell(running_lab, tmp_path, "kubectl -n kube-system delete quota webhook-budget --ignore-not-found")
    must(running_lab, tmp_path, f"kubectl -n kube-system rollout status deployment {WEBHOOK} --timeout=60s")
    result, document = run_suites(tmp_path / "again", "--config", config, "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "WEBHOOK_DEGRADED" not in {f["code"] for f in document["findings"]}
