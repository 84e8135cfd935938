"""Shipping, end to end in the lab, as a person does it with the real kubectl:

- ``python -m harness manifests render`` for the lab's harness.yaml (plus ``harness:``: the harness's own client
  id and the image built from the Dockerfile's harness target), a federated credential for the harness's
  ServiceAccount on its own app registration (Graph, with the lab admin's credentials), ``kubectl apply -f``:
  the Job runs the suites in a lab pod under that ServiceAccount, in-cluster, reading Azure through Workload ID
  (no client secret anywhere in what was applied), completes, and its run.json comes back through
  ``kubectl logs`` on the WI-HARNESS-RUN-JSON line with a passing verdict;
- a probe pod file from the same render, applied by hand: ``kubectl logs`` prints a passing wi-probe/v1 document;
- the lab's Job controller fails a Job whose pod fails (backoffLimit 0), as a cluster does;
- ``wi-harness --lab`` from an empty temporary directory: the installed console script finds the suites.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_identities_lab import Person

from harness.collect.probe_pods import parse_probe_log
from harness.console import RUN_JSON_TAG
from lab.bootstrap import RunningLab
from lab.scenarios import HARNESS_IMAGE

pytestmark = [pytest.mark.slow, pytest.mark.kubectl,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]
NAMESPACE = "wi-harness"


def kubectl(lab: RunningLab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(lab.state_dir / "kubeconfig"), "HOME": str(lab.state_dir)}
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=330)
    assert not check or done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def rendered(running_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifests for the lab's harness.yaml, with the harness's own identity allowed in for its Job."""
    info = running_lab.info()
    person = Person(info, str(running_lab.state_dir / "ca.pem"))
    harness_app_id = info["harness"]["client_id"]
    (app,) = person.graph("GET", f"/applications?$filter=appId eq '{harness_app_id}'")["value"]
    person.graph("POST", f"/applications/{app['id']}/federatedIdentityCredentials", {
        "name": "wi-harness-job", "issuer": info["issuer_url"], "audiences": ["api://AzureADTokenExchange"],
        "subject": f"system:serviceaccount:{NAMESPACE}:wi-harness",
    })
    work = tmp_path_factory.mktemp("shipping")
    config = yaml.safe_load(running_lab.harness_config.read_text())
    config["harness"] = {"client_id": harness_app_id, "image": f"{HARNESS_IMAGE}:0.1.0"}
    (work / "harness.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = work / "manifests"
    done = subprocess.run([sys.executable, "-m", "harness", "manifests", "render", "--config",
                           str(work / "harness.yaml"), "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


def test_a_hand_applied_probe_pod_prints_a_passing_probe_document(running_lab: RunningLab, rendered: Path) -> None:
    kubectl(running_lab, "apply", "-f", str(rendered / "probes" / "finance.backend-sa.yaml"))
    kubectl(running_lab, "-n", "finance", "wait", "--for=jsonpath={.status.phase}=Succeeded",
            "pod/wi-probe-backend-sa", "--timeout=60s")
    document, problem = parse_probe_log(kubectl(running_lab, "-n", "finance", "logs", "wi-probe-backend-sa").stdout)
    assert problem is None and document is not None
    assert document["ok"] is True and document["pod"]["service_account"] == "backend-sa"
    assert [s["name"] for s in document["steps"]][:4] == ["config", "env", "token", "exchange"]
    assert {s["status"] for s in document["steps"]} == {"pass"}
    kubectl(running_lab, "delete", "-f", str(rendered / "probes" / "finance.backend-sa.yaml"), "--wait=false")


def test_the_rendered_job_runs_the_suites_in_the_cluster_as_its_own_identity(
    running_lab: RunningLab, rendered: Path
) -> None:
    applied = "".join(path.read_text() for path in sorted(rendered.glob("*.yaml")))
    secret = (running_lab.state_dir / "secrets" / "harness-client-secret").read_text().strip()
    assert secret not in applied and "credential" not in applied and "kubeconfig" not in applied
    kubectl(running_lab, "apply", "-f", str(rendered))
    waited = kubectl(running_lab, "-n", NAMESPACE, "wait", "--for=condition=complete", "job/wi-harness",
                     "--timeout=300s", check=False)  # the whole suites in a pod: minutes on a busy 2-core CI
    logs = kubectl(running_lab, "-n", NAMESPACE, "logs", "job/wi-harness").stdout
    assert waited.returncode == 0, f"{waited.stderr}\n{logs[-3000:]}"
    lines = [line for line in logs.splitlines() if line.startswith(RUN_JSON_TAG + " ")]
    assert len(lines) == 1, logs[-3000:]
    run: dict[str, Any] = json.loads(lines[0].removeprefix(RUN_JSON_TAG + " "))
    assert run["verdict"] == "pass", logs[-3000:]
    target = run["target"]
    assert target["context"] == "in-cluster"
    assert target["run_by"]["kubernetes"]["username"] == f"system:serviceaccount:{NAMESPACE}:wi-harness"
    assert target["run_by"]["azure"]["appid"] == running_lab.info()["harness"]["client_id"]  # Workload ID
    assert {w["id"] for w in run["workloads"]} >= {"finance/backend-sa", "orders/orders-sa"}
    assert secret not in logs
    job = json.loads(kubectl(running_lab, "-n", NAMESPACE, "get", "job", "wi-harness", "-o", "json").stdout)
    assert job["status"]["succeeded"] == 1
    # the run's --sweep left the Job's own pod alone: it is still there to read the log from
    pods = json.loads(kubectl(running_lab, "-n", NAMESPACE, "get", "pods", "-l",
                              "batch.kubernetes.io/job-name=wi-harness", "-o", "json").stdout)["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]


def test_a_job_whose_pod_fails_is_failed_with_the_backoff_limit(running_lab: RunningLab, tmp_path: Path) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fails", "namespace": "default"},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "exit 3"]}]}}}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    kubectl(running_lab, "apply", "-f", str(tmp_path / "job.yaml"))
    kubectl(running_lab, "-n", "default", "wait", "--for=condition=failed", "job/fails", "--timeout=60s")
    status = json.loads(kubectl(running_lab, "-n", "default", "get", "job", "fails", "-o", "json").stdout)["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["reason"], failed["message"]) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert status["failed"] == 1 and "succeeded" not in status


def test_wi_harness_runs_the_installed_suites_from_any_directory(tmp_path: Path) -> None:
    command = shutil.which("wi-harness")
    if command is None:
        pytest.fail("wi-harness is not on PATH: install the package (pip install -e .)")
    done = subprocess.run([command, "--lab", "-q", "--print-run-json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(RUN_JSON_TAG + " ")]
    run = json.loads(lines[-1].removeprefix(RUN_JSON_TAG + " "))
    assert run["verdict"] == "pass"
    assert (tmp_path / "reports" / run["run_id"] / "run.json").is_file()  # --report-dir is relative to the cwd
