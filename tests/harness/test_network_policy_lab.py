"""A NetworkPolicy applied with kubectl blocks the probe's egress as a CNI does, and deleting it repairs the run;
``lab ctl egress`` is such a policy, which kubectl shows and deletes."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_e2e_lab import run_suites
from test_real_cluster_cases_lab import ctl

from lab.bootstrap import RunningLab

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

ENTRA_ONLY_DENIED = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: no-entra, namespace: finance}}
spec:
  podSelector: {{}}
  policyTypes: [Egress]
  egress:
  - to: [{{ipBlock: {{cidr: 0.0.0.0/0}}}}]
    ports: [{{port: 1, endPort: {below}}}, {{port: {above}, endPort: 65535}}]
"""


def kubectl(lab: RunningLab, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(lab.state_dir / "kubeconfig"), *args],
                          input=input, capture_output=True, text=True, timeout=60)


def _fast_config(lab: RunningLab, directory: Path) -> str:
    """The lab's harness.yaml with a short per-request timeout and no retries: a dropped connection costs 2 s
    (the default would wait out the probe's 30 s retry bound of timeouts, 10 s each)."""
    config = yaml.safe_load((lab.state_dir / "harness.yaml").read_text())
    config["probe"].update(request_timeout_seconds=2, retry_seconds=0)
    path = directory / "harness.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _entra_port(lab: RunningLab) -> int:
    info = json.loads((lab.state_dir / "lab.json").read_text())
    return int(info["endpoints"]["entra"].rsplit(":", 1)[1].split("/")[0])


def _paste_printed(lab: RunningLab, printed: list[str], policy: str) -> subprocess.CompletedProcess[str]:
    """The printed kubectl line, as a person would paste it (here with the lab's kubeconfig); when the run printed
    none (an assertion before failed), the policy deleted so that the lab is whole again."""
    return kubectl(lab, *shlex.split(printed[0])[1:] if printed else ("delete", "networkpolicy", "-n", "finance", policy))


def _passes_once_repaired(lab: RunningLab, tmp_path: Path, config: str, pasted: subprocess.CompletedProcess[str],
                          policy: str) -> None:
    """The paste worked and the next run of finance/backend-sa passes; the policy is deleted whatever happened."""
    try:
        assert pasted.returncode == 0, pasted.stderr
        result, document = run_suites(tmp_path / "repaired", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-3000:]
        assert document["verdict"] == "pass"
    finally:
        kubectl(lab, "delete", "networkpolicy", "-n", "finance", policy, "--ignore-not-found")


def test_a_policy_denying_egress_to_entra_fails_the_run_and_deleting_it_repairs_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """(The name is older than the fix: the printed repair is now an egress rule added to the policy, and deleting
    it only the blunt option, printed as a comment.)"""
    config = _fast_config(running_lab, tmp_path)
    port = _entra_port(running_lab)
    applied = kubectl(running_lab, "apply", "-f", "-", input=ENTRA_ONLY_DENIED.format(below=port - 1, above=port + 1))
    assert applied.returncode == 0, applied.stderr
    printed: list[str] = []
    try:
        listed = kubectl(running_lab, "get", "networkpolicy", "-n", "finance")
        assert listed.stdout.split("\n")[1].split()[:2] == ["no-entra", "<none>"], listed.stdout
        result, document = run_suites(tmp_path / "blocked", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        workload = document["workloads"][0]
        blocked = next(f for f in workload["findings"] if f["code"] == "EGRESS_BLOCKED")
        assert "timeout" in json.dumps(blocked["evidence"]) or "timed out" in blocked["message"], blocked
        assert blocked["evidence"]["egress_network_policies"] == ["no-entra"]
        # the narrow rule is the printed command; deleting the policy only the blunt option, as a comment
        printed = [line for line in blocked["remediation"] if line.startswith("kubectl patch networkpolicy no-entra")]
        assert len(printed) == 1 and f'"port":{port}' in printed[0], blocked["remediation"]
        assert not [line for line in blocked["remediation"] if line.startswith("kubectl delete")]
        assert any(line.startswith("# the blunt option") and "kubectl delete networkpolicy -n finance no-entra"
                   in line for line in blocked["remediation"]), blocked["remediation"]
    finally:
        repaired = _paste_printed(running_lab, printed, "no-entra")
    _passes_once_repaired(running_lab, tmp_path, config, repaired, "no-entra")


def test_the_egress_fault_is_a_network_policy_kubectl_shows_and_deletes(running_lab: RunningLab) -> None:
    assert ctl(running_lab, "egress", "--block", "keyvault", "entra")["egress_blocked"] == ["entra", "keyvault"]
    try:
        shown = kubectl(running_lab, "get", "networkpolicy", "-A", "-o", "json")
        assert shown.returncode == 0, shown.stderr
        policies = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in json.loads(shown.stdout)["items"]}
        assert ("finance", "deny-egress-to-entra-keyvault") in policies
        assert not any(namespace.startswith("kube-") for namespace, _ in policies)
        assert kubectl(running_lab, "delete", "networkpolicy", "-n", "finance",
                       "deny-egress-to-entra-keyvault").returncode == 0
        assert ctl(running_lab, "egress", "--unblock", "keyvault")["egress_blocked"] == ["entra"]
        shown = kubectl(running_lab, "get", "networkpolicy", "-n", "finance", "-o", "name")
        assert shown.stdout.split() == ["networkpolicy.networking.k8s.io/deny-egress-to-entra"]
    finally:
        assert ctl(running_lab, "egress", "--unblock", "entra")["egress_blocked"] == []
    assert kubectl(running_lab, "get", "networkpolicy", "-A", "-o", "name").stdout == ""


APP_ONLY_DNS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-dns-only, namespace: finance}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""

APP_ONLY_VNET = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-vnet, namespace: finance}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
"""

PROBE_ONLY_DENIED = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: probe-deny, namespace: finance}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: wi-probe}}
  policyTypes: [Egress]
"""


def _workload(document: dict[str, Any]) -> dict[str, Any]:
    return document["workloads"][0]


def test_a_policy_for_the_apps_labels_fails_the_run_though_the_probe_gets_through(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """"Deny all but DNS" written for the app's labels: the probe pod, which it does not select, reaches Entra,
    and the run passed; the app's pods cannot (the lab's relay drops them), and the run now says so. The
    printed egress rule (not a delete), pasted, repairs it."""
    config = _fast_config(running_lab, tmp_path)
    applied = kubectl(running_lab, "apply", "-f", "-", input=APP_ONLY_DNS)
    assert applied.returncode == 0, applied.stderr
    printed: list[str] = []
    try:
        result, document = run_suites(tmp_path / "blocked", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        checks = {c["id"]: c for c in _workload(document)["checks"]}
        assert checks["exchange.succeeds"]["status"] == "fail", checks["exchange.succeeds"]
        (blocked,) = [f for f in _workload(document)["findings"] if f["code"] == "EGRESS_BLOCKED"]
        assert blocked["message"].startswith("NetworkPolicy backend-dns-only cuts Deployment/backend's pods (backend-"
                                             ), blocked["message"]
        assert "it isolates them for egress and allows no connection to port" in blocked["message"]
        printed = [line for line in blocked["remediation"]
                   if line.startswith("kubectl patch networkpolicy backend-dns-only")]
        assert len(printed) == 1 and f'"port":{_entra_port(running_lab)}' in printed[0], blocked["remediation"]
        assert not [line for line in blocked["remediation"] if line.startswith("kubectl delete")]
    finally:
        patched = _paste_printed(running_lab, printed, "backend-dns-only")
    _passes_once_repaired(running_lab, tmp_path, config, patched, "backend-dns-only")


def test_a_policy_for_the_probes_labels_is_named_as_blocking_the_probe_not_the_workload(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    config = _fast_config(running_lab, tmp_path)
    applied = kubectl(running_lab, "apply", "-f", "-", input=PROBE_ONLY_DENIED)
    assert applied.returncode == 0, applied.stderr
    try:
        result, document = run_suites(tmp_path / "blocked", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode != 0
        (blocked,) = [f for f in _workload(document)["findings"] if f["code"] == "EGRESS_BLOCKED"]
        assert blocked["evidence"]["egress_network_policies"] == ["probe-deny"]
        assert blocked["evidence"]["probe_only_network_policies"] == ["probe-deny"]
        assert blocked["remediation"][0] == ("# NetworkPolicy probe-deny selects the probe pod and none of the "
                                             "workload's own pods: the probe is blocked, not necessarily the workload")
    finally:
        assert kubectl(running_lab, "delete", "networkpolicy", "-n", "finance", "probe-deny").returncode == 0


def test_a_policy_for_the_apps_labels_the_harness_cannot_judge_is_a_warning(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """An egress rule to an address block: whether it holds Entra's addresses the harness cannot tell (a host
    name), so the probe's pass is kept, with a warning naming the policy."""
    config = _fast_config(running_lab, tmp_path)
    applied = kubectl(running_lab, "apply", "-f", "-", input=APP_ONLY_VNET)
    assert applied.returncode == 0, applied.stderr
    try:
        result, document = run_suites(tmp_path / "run", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-3000:]
        (warning,) = [f for f in _workload(document)["findings"] if f["code"] == "WORKLOAD_EGRESS_UNPROVEN"]
        assert warning["message"].startswith("NetworkPolicy backend-vnet restricts the egress of Deployment/backend's "
                                             "pods (backend-"), warning["message"]
        assert warning["remediation"][0] == "kubectl get networkpolicy -n finance backend-vnet -o yaml"
    finally:
        assert kubectl(running_lab, "delete", "networkpolicy", "-n", "finance", "backend-vnet").returncode == 0


CONNECT = """\
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); print("connected")
except OSError as e:
    print("blocked", type(e).__name__)
"""


def test_a_cluster_without_a_policy_engine_enforces_none_and_the_run_blames_none(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """A cluster made without a NetworkPolicy engine (ARM networkPolicy none): kubectl stores the policies, the
    app's pod still connects to Entra, the probe gets through, and the run passes, naming no policy."""
    config = _fast_config(running_lab, tmp_path)
    assert ctl(running_lab, "cluster", "--network-policy", "none")["network_policy"] == "none"
    try:
        for manifest in (APP_ONLY_DNS, PROBE_ONLY_DENIED):
            applied = kubectl(running_lab, "apply", "-f", "-", input=manifest)
            assert applied.returncode == 0, applied.stderr
        pod = kubectl(running_lab, "get", "pods", "-n", "finance", "-l", "app=backend", "-o", "name").stdout.split()[0]
        reached = kubectl(running_lab, "exec", "-n", "finance", pod, "--", "python3", "-c", CONNECT,
                          str(_entra_port(running_lab)))
        assert reached.stdout.strip() == "connected", (reached.stdout, reached.stderr)
        result, document = run_suites(tmp_path / "run", "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 0, result.stdout[-3000:]
        assert not _workload(document)["findings"]
    finally:
        assert ctl(running_lab, "cluster", "--network-policy", "cilium")["network_policy"] == "cilium"
        kubectl(running_lab, "delete", "networkpolicy", "-n", "finance", "backend-dns-only", "probe-deny")
