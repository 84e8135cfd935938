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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_e2e_lab import run_suites

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
