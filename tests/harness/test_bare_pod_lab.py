"""A debug pod made with ``kubectl run`` under the workload's ServiceAccount, then given the use label with
``kubectl label pod`` (the way people try it), checked with ``--pod``: the webhook never saw the label (it acts
on pod CREATE only). The printed fix was ``kubectl delete pod`` and "# recreate the pods from their manifest":
pasted, it deleted a pod that has no manifest. Now it is made again from its own spec, and the next run passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_hand_breakages_lab import ok, paste, run_for

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow


def test_a_kubectl_run_pod_labelled_by_hand_is_made_again_from_its_own_spec_by_the_printed_fix(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    config = str(running_lab.harness_config)
    deployment = json.loads(ok(running_lab, "-n", "finance", "get", "deployment", "backend", "-o", "json"))
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    ok(running_lab, "-n", "finance", "run", "debug", f"--image={image}",
       '--overrides={"spec":{"serviceAccountName":"backend-sa"}}', "--", "sleep", "3600")
    ok(running_lab, "-n", "finance", "wait", "--for=condition=Ready", "pod/debug", "--timeout=60s")
    ok(running_lab, "-n", "finance", "label", "pod", "debug", "azure.workload.identity/use=true")
    _, _, checks, workload = run_for(tmp_path / "broken", config, "--pod", "finance/debug", 1)
    assert checks["pod.mutated"]["status"] == "fail"
    (finding,) = [f for f in workload["findings"] if f["code"] == "POD_NOT_MUTATED"]
    assert [line for line in finding["remediation"] if not line.startswith("#")] == [
        "kubectl get pod -n finance debug -o yaml | kubectl replace --force -f -   # the same pod created again, "
        "which the webhook then sees (it acts on pod CREATE only)"]
    for line in finding["remediation"]:
        paste(running_lab, line)
    ok(running_lab, "-n", "finance", "wait", "--for=condition=Ready", "pod/debug", "--timeout=60s")
    pod = json.loads(ok(running_lab, "-n", "finance", "get", "pod", "debug", "-o", "json"))
    env = {e["name"] for e in pod["spec"]["containers"][0].get("env") or []}
    assert {"AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"} <= env
    run_for(tmp_path / "fixed", config, "--pod", "finance/debug", 0)


def test_a_kubectl_run_pod_labelled_by_hand_is_made_again_from_its_own_spec_by_a_workload_runs_fix(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """The same pod seen by ``--workload``: workload.live_pods printed ``kubectl delete pod`` and "# recreate the
    pods from their manifest" for it; now the same copy of its own spec as ``--pod``'s."""
    config = str(running_lab.harness_config)
    image = json.loads(ok(running_lab, "-n", "finance", "get", "deployment", "backend", "-o", "json"))[
        "spec"]["template"]["spec"]["containers"][0]["image"]
    ok(running_lab, "-n", "finance", "run", "bare", f"--image={image}",
       '--overrides={"spec":{"serviceAccountName":"backend-sa"}}', "--", "sleep", "3600")
    ok(running_lab, "-n", "finance", "wait", "--for=condition=Ready", "pod/bare", "--timeout=60s")
    ok(running_lab, "-n", "finance", "label", "pod", "bare", "azure.workload.identity/use=true")
    uid = json.loads(ok(running_lab, "-n", "finance", "get", "pod", "bare", "-o", "json"))["metadata"]["uid"]
    _, _, checks, workload = run_for(tmp_path / "broken", config, "--workload", "finance/backend-sa", 1)
    assert checks["workload.live_pods"]["status"] == "fail"
    (finding,) = [f for f in workload["findings"] if f["code"] == "POD_NOT_MUTATED"
                  and f["evidence"]["owner"] == "Pod/bare"]
    assert not any("delete pod" in line for line in finding["remediation"])
    assert ("kubectl get pod -n finance bare -o yaml | kubectl replace --force -f -   # the same pod created again, "
            "which the webhook then sees (it acts on pod CREATE only)") in finding["remediation"]
    for line in finding["remediation"]:
        paste(running_lab, line)
    ok(running_lab, "-n", "finance", "wait", "--for=condition=Ready", "pod/bare", "--timeout=60s")
    pod = json.loads(ok(running_lab, "-n", "finance", "get", "pod", "bare", "-o", "json"))
    assert pod["metadata"]["uid"] != uid
    assert {"AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"} <= {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    run_for(tmp_path / "fixed", config, "--workload", "finance/backend-sa", 0)
