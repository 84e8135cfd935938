"""A LimitRange made with kubectl whose maxima are below the probe's default limits (200m cpu, 128Mi memory):
POD_REJECTED_BY_QUOTA with the LimitRanger's own text and the probe.resources that meet it; set so in harness.yaml,
as the finding says, the next run passes. A module of its own lab, so the LimitRange touches no other test."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_e2e_lab import run_suites

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
WORKLOAD = "finance/backend-sa"
LIMIT_RANGE = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "small", "namespace": "finance"},
               "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m", "memory": "64Mi"}}]}}


def kubectl(lab: RunningLab, home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["kubectl", "--kubeconfig", str(lab.state_dir / "kubeconfig"), *args], input=stdin,
                              capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(home)})
    except FileNotFoundError:
        pytest.skip("kubectl is not installed")


def test_a_limit_range_below_the_probe_names_the_probe_resources_that_meet_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    applied = kubectl(running_lab, tmp_path, "apply", "-f", "-", stdin=json.dumps(LIMIT_RANGE))
    assert applied.returncode == 0, applied.stderr
    config = str(running_lab.state_dir / "harness.yaml")
    result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
    assert result.returncode != 0
    workload = next(w for w in document["workloads"] if w["id"] == WORKLOAD)
    finding = workload["findings"][0]
    assert finding["code"] == "POD_REJECTED_BY_QUOTA"
    assert ("is forbidden: [maximum cpu usage per Container is 100m, but limit is 200m, maximum memory usage per "
            "Container is 64Mi, but limit is 128Mi]") in finding["message"]
    look, decision = finding["remediation"]
    assert look == "kubectl describe resourcequota,limitrange -n finance"
    assert decision == ("# set probe.resources in harness.yaml within the namespace's LimitRange: {limits: {cpu: "
                        "100m, memory: 64Mi}} (limits at most, requests at least), or change the LimitRange")

    data = yaml.safe_load(Path(config).read_text())
    data.setdefault("probe", {})["resources"] = {"limits": {"cpu": "100m", "memory": "64Mi"}}  # as printed
    within = tmp_path / "within.yaml"
    within.write_text(yaml.safe_dump(data))
    result, document = run_suites(tmp_path / "within", "--config", str(within), "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]
