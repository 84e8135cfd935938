"""A default-deny ingress NetworkPolicy over the Workload ID webhook's pods, applied with kubectl: the lab's API
server's calls to the webhook are dropped as a CNI drops them ("context deadline exceeded",
Azure/azure-workload-identity#611), the labelled probe pod is refused and the run names the policy; the printed
patch, pasted, lets the calls in and the next run passes."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from test_e2e_lab import BROKEN_STAYS_BROKEN, run_suites
from test_network_policy_lab import kubectl

from lab.bootstrap import RunningLab

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

DENY_WEBHOOK_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-webhook-ingress, namespace: kube-system}
spec:
  podSelector: {matchLabels: {azure-workload-identity.io/system: "true"}}
  policyTypes: [Ingress]
"""


def test_an_ingress_policy_over_the_webhook_is_named_and_the_printed_rule_lets_the_calls_in(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    config = str(running_lab.state_dir / "harness.yaml")
    applied = kubectl(running_lab, "apply", "-f", "-", input=DENY_WEBHOOK_INGRESS)
    assert applied.returncode == 0, applied.stderr
    try:
        result, document = run_suites(tmp_path / "dropped", "--config", config, "--workload", "finance/backend-sa",
                                      env=BROKEN_STAYS_BROKEN)
        assert result.returncode == 1, result.stdout[-3000:]
        finding = next(f for w in document["workloads"] for f in w["findings"] if f["code"] == "WEBHOOK_UNAVAILABLE")
        assert "context deadline exceeded; NetworkPolicy deny-webhook-ingress in kube-system isolates the " \
               "webhook's pods for ingress" in finding["message"]
        patch = [line for line in finding["remediation"] if line.startswith("kubectl patch networkpolicy")]
        assert len(patch) == 1
        pasted = kubectl(running_lab, *shlex.split(patch[0])[1:])
        assert pasted.returncode == 0, pasted.stderr
        result, document = run_suites(tmp_path / "repaired", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-3000:]
    finally:
        kubectl(running_lab, "delete", "networkpolicy", "-n", "kube-system", "deny-webhook-ingress",
                "--ignore-not-found")
