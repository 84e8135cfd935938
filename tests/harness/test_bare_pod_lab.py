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
