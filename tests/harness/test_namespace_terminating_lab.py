"""The workload's namespace deleted by hand while a custom resource in it holds a finalizer whose controller is
gone: the namespace stays Terminating, its ServiceAccount deleted and new content refused. The harness names that
(NAMESPACE_TERMINATING, with what holds it), not a ServiceAccount to create; the finalizer removed as the finding
says, the namespace goes, and the next run's printed NAMESPACE_NOT_FOUND fixes, pasted, make the run pass.
A module of its own: it deletes the finance namespace of its lab."""

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
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}
WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget",
          "metadata": {"name": "held", "namespace": "finance", "finalizers": ["example.com/cleanup"]}}


def shell(lab: RunningLab, home: Path, line: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """A command line as a person types or pastes it (a fix's ``# ...`` note is a shell comment)."""
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(lab.state_dir / "kubeconfig")}
    return subprocess.run(["bash", "-c", line], env=env, input=stdin, capture_output=True, text=True, timeout=60)


def must(lab: RunningLab, home: Path, line: str, stdin: str | None = None) -> str:
    done = shell(lab, home, line, stdin)
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done.stdout


def wait_for(what: str, ready: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"never {what}")


def first_finding(document: dict[str, Any]) -> dict[str, Any]:
    workload = next(w for w in document["workloads"] if w["id"] == WORKLOAD)
    return workload["findings"][0]


def test_a_namespace_stuck_terminating_is_named_not_a_missing_service_account(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    if shell(running_lab, tmp_path, "command -v kubectl").returncode != 0:
        pytest.skip("kubectl is not installed")
    config = str(running_lab.state_dir / "harness.yaml")
    must(running_lab, tmp_path, "kubectl apply -f -", json.dumps(CRD))
    wait_for("the CRD served", lambda: shell(running_lab, tmp_path, "kubectl get widgets -n finance").returncode == 0)
    must(running_lab, tmp_path, "kubectl apply -f -", json.dumps(WIDGET))
    must(running_lab, tmp_path, "kubectl delete namespace finance --wait=false")
    wait_for("Terminating with conditions", lambda: "NamespaceFinalizersRemaining" in must(
        running_lab, tmp_path, "kubectl get namespace finance -o json"))

    result, document = run_suites(tmp_path / "terminating", "--config", config, "--workload", WORKLOAD)
    assert result.returncode != 0
    finding = first_finding(document)
    assert finding["code"] == "NAMESPACE_TERMINATING"
    assert finding["message"].startswith("namespace finance is being deleted (Terminating since ")
    assert "example.com/cleanup in 1 resource instances" in finding["message"]
    codes = {f["code"] for w in document["workloads"] for f in w["findings"]}
    assert "SA_NOT_FOUND" not in codes and not [code for code in codes if code.startswith("WEBHOOK_")]
    describe, listing, decision = finding["remediation"]
    assert "NamespaceFinalizersRemaining" in must(running_lab, tmp_path, describe)
    assert listing == ("kubectl get widgets.example.com -n finance -o "
                       "custom-columns=NAME:.metadata.name,FINALIZERS:.metadata.finalizers")
    assert must(running_lab, tmp_path, listing).split() == ["NAME", "FINALIZERS", "held", "[example.com/cleanup]"]
    assert decision.startswith("# a person decides")
    # what the created ServiceAccount would meet: the NamespaceLifecycle refusal
    refused = shell(running_lab, tmp_path, "kubectl create serviceaccount -n finance backend-sa")
    assert refused.stderr.strip() == ('error: failed to create serviceaccount: serviceaccounts "backend-sa" is '
                                      "forbidden: unable to create new content in namespace finance because it is "
                                      "being terminated")

    # the person's decision: the finalizer's controller is gone for good, so it is removed as the finding says
    must(running_lab, tmp_path, "kubectl patch widgets.example.com held -n finance --type merge -p "
                                "'{\"metadata\":{\"finalizers\":null}}'")
    wait_for("the namespace gone", lambda: shell(running_lab, tmp_path,
                                                 "kubectl get namespace finance").returncode != 0)
    result, document = run_suites(tmp_path / "gone", "--config", config, "--workload", WORKLOAD)
    gone = first_finding(document)
    assert gone["code"] == "NAMESPACE_NOT_FOUND"
    for line in gone["remediation"]:
        must(running_lab, tmp_path, line)
    result, document = run_suites(tmp_path / "again", "--config", config, "--workload", WORKLOAD)
    assert result.returncode == 0, result.stdout[-3000:]
