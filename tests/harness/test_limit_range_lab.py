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
    try:
        limited(running_lab, tmp_path)
    finally:
        kubectl(running_lab, tmp_path, "-n", "finance", "delete", "limitrange", "small")


def limited(running_lab: RunningLab, tmp_path: Path) -> None:
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
                        "100m, memory: 64Mi}} (a maximum: at most; a minimum: at least, for the request and the "
                        "limit), or change the LimitRange")

    data = yaml.safe_load(Path(config).read_text())
    data.setdefault("probe", {})["resources"] = {"limits": {"cpu": "100m", "memory": "64Mi"}}  # as printed
    within = tmp_path / "within.yaml"
    within.write_text(yaml.safe_dump(data))
    result, document = run_suites(tmp_path / "within", "--config", str(within), "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_configmap_count_quota_names_the_probes_configmap_not_its_size(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """A ResourceQuota counting ConfigMaps, used up (kubectl create quota --hard=configmaps=N): probe.mode configmap's
    source ConfigMap is refused first. The finding says so (not "the probe pod") and that the probe's size does not
    matter; the quota raised (the person's call), the next run passes."""
    listed = kubectl(running_lab, tmp_path, "-n", "finance", "get", "configmaps", "-o", "json")
    used = len(json.loads(listed.stdout)["items"])
    created = kubectl(running_lab, tmp_path, "-n", "finance", "create", "quota", "objects", f"--hard=configmaps={used}")
    assert created.returncode == 0, created.stderr
    config = str(running_lab.state_dir / "harness.yaml")
    try:
        result, document = run_suites(tmp_path / "refused", "--config", config, "--workload", WORKLOAD)
        assert result.returncode != 0
        finding = next(w for w in document["workloads"] if w["id"] == WORKLOAD)["findings"][0]
        assert finding["code"] == "POD_REJECTED_BY_QUOTA"
        assert finding["message"].startswith("a ResourceQuota or LimitRange in finance refused the probe's source "
                                             'ConfigMap: configmaps "wi-probe-src-')
        assert f"exceeded quota: objects, requested: configmaps=1, used: configmaps={used}" in finding["message"]
        assert finding["remediation"][1] == (
            "# the quota counts configmaps, whatever the probe's size: free some (or raise the quota: a person "
            "decides), or run the probe with probe.mode image (an image holding the probe: no ConfigMap)")
        raised = kubectl(running_lab, tmp_path, "-n", "finance", "patch", "resourcequota", "objects", "--type",
                         "merge", "-p", json.dumps({"spec": {"hard": {"configmaps": str(used + 5)}}}))
        assert raised.returncode == 0, raised.stderr
        result, _ = run_suites(tmp_path / "raised", "--config", config, "--workload", WORKLOAD)
        assert result.returncode == 0, result.stdout[-3000:]
    finally:
        kubectl(running_lab, tmp_path, "-n", "finance", "delete", "resourcequota", "objects")
