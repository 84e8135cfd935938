"""`python -m lab up | scenarios | ctl` as a user runs them: a real child process, its state dir, its faults."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from lab.bootstrap import RunningLab, start_lab

ENV_EXPORTS = ("KUBECONFIG", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID",
               "AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "LAB_ARM_ENDPOINT",
               "LAB_ISSUER_URL", "LAB_ADMIN_CLIENT_ID", "LAB_ADMIN_CLIENT_SECRET")


def run_lab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    handle = start_lab(tmp_path_factory.mktemp("lab-up"))
    yield handle
    handle.stop()
    assert handle.process.returncode == 0, "the lab should stop cleanly on SIGTERM"


def kubectl(running: RunningLab, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(running.state_dir / "kubeconfig"),
           "HOME": str(running.state_dir / "home")}
    return subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, env=env, timeout=60)


def test_scenarios_lists_the_default() -> None:
    result = run_lab("scenarios")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("healthy ")


def test_unknown_scenario_is_one_line_naming_the_option(tmp_path: Path) -> None:
    result = run_lab("up", "--state-dir", str(tmp_path), "--scenario", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--scenario" in result.stderr and "healthy" in result.stderr


def test_ctl_without_a_running_lab_says_so(tmp_path: Path) -> None:
    result = run_lab("ctl", "--state-dir", str(tmp_path), "status")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'lab.json'} not found: is `python -m lab up "
                                     f"--state-dir {tmp_path}` running?")


def test_a_state_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    state = tmp_path / "lab"
    state.write_text("")
    up = run_lab("up", "--state-dir", str(state))
    assert (up.returncode, up.stderr) == (2, f"error: --state-dir {state} is a file, not a directory\n")
    ctl = run_lab("ctl", "--state-dir", str(state), "status")
    assert ctl.returncode == 2 and ctl.stderr.startswith(f"error: cannot read {state / 'lab.json'}: Not a directory")
    assert ctl.stderr.count("\n") == 1, ctl.stderr


@pytest.mark.parametrize("command", ["up", "ctl"])
def test_an_empty_state_dir_is_refused_not_the_current_directory(command: str) -> None:
    result = run_lab(command, "--state-dir", "", *(["status"] if command == "ctl" else []))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"error: python -m lab {command}: argument --state-dir: a directory is required, not "
                             f"an empty string (see python -m lab {command} --help)\n")


def test_a_second_lab_up_on_a_running_labs_state_dir_is_refused(running: RunningLab) -> None:
    before = (running.state_dir / "lab.json").read_text()
    result = run_lab("up", "--state-dir", str(running.state_dir))
    assert result.returncode == 2
    assert result.stderr == (f"error: a lab is already running with --state-dir {running.state_dir} "
                             f"(pid {running.process.pid}): stop it, or give this one another directory\n")
    assert (running.state_dir / "lab.json").read_text() == before


def test_state_dir_holds_everything_a_user_needs(running: RunningLab) -> None:
    state = running.state_dir
    info = running.info()
    assert set(info["endpoints"]) >= {"kube", "issuer", "entra", "arm", "keyvault", "storage", "control"}
    assert all(url.startswith("https://127.0.0.1:") for url in info["endpoints"].values())
    assert info["issuer_url"].endswith("/") and info["issuer_url"].count("/") == 6
    for private in ("kubeconfig", "env.sh", "lab.json"):
        assert stat.S_IMODE((state / private).stat().st_mode) == 0o600, private
    exported = dict(line.removeprefix("export ").split("=", 1)
                    for line in (state / "env.sh").read_text().splitlines() if line.startswith("export "))
    assert set(ENV_EXPORTS) <= set(exported)
    assert all(exported[name] for name in ENV_EXPORTS)
    config = yaml.safe_load((state / "harness.yaml").read_text())
    assert {w["namespace"] + "/" + w["service_account"] for w in config["workloads"]} == {
        "finance/backend-sa", "orders/orders-sa"}
    assert "client_secret" not in json.dumps(config["azure"]["credential"]).replace("client_secret_file", "")


def test_kubectl_works_with_the_generated_kubeconfig(running: RunningLab) -> None:
    result = kubectl(running, "get", "serviceaccount", "backend-sa", "-n", "finance", "-o", "json")
    assert result.returncode == 0, result.stderr
    annotations = json.loads(result.stdout)["metadata"]["annotations"]
    assert "azure.workload.identity/client-id" in annotations


def ctl(running: RunningLab, *args: str) -> dict:
    result = run_lab("ctl", "--state-dir", str(running.state_dir), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ctl_faults_reach_the_running_lab(running: RunningLab) -> None:
    info = running.info()
    ca = str(running.state_dir / "ca.pem")
    assert ctl(running, "fault", "arm", "--rate-429", "1", "--retry-after", "7")["arm"]["rate_429"] == 1
    try:
        response = requests.get(f"{info['endpoints']['arm']}/subscriptions?api-version=2022-12-01", verify=ca,
                                timeout=10)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    finally:
        ctl(running, "fault", "arm", "--rate-429", "0")
    assert requests.get(f"{info['endpoints']['arm']}/subscriptions?api-version=2022-12-01", verify=ca,
                        timeout=10).status_code == 401

    assert ctl(running, "clock", "--skew", "7200")["entra_skew_seconds"] == 7200
    assert ctl(running, "egress", "--block", "entra")["egress_blocked"] == ["entra"]
    assert ctl(running, "egress", "--unblock", "entra")["egress_blocked"] == []
    status = ctl(running, "clock", "--skew", "0") and ctl(running, "status")
    assert status["entra_skew_seconds"] == 0 and status["webhook"]["mode"] == "up"


def test_ctl_sets_entras_metadata_cache(running: RunningLab) -> None:
    """A fresh lab starts with an empty cache of the default length; the setting shows in status."""
    status = ctl(running, "status")["entra"]
    assert status["metadata_cache_seconds"] == 120
    assert ctl(running, "entra", "--metadata-cache-seconds", "0") == {"metadata_cache_seconds": 0,
                                                                       "cached_issuers": {}}  # emptied
    try:
        assert ctl(running, "status")["entra"]["metadata_cache_seconds"] == 0
        refused = run_lab("ctl", "--state-dir", str(running.state_dir), "entra", "--metadata-cache-seconds", "-1")
        assert refused.returncode == 1
        assert refused.stderr.strip() == "error: metadata_cache_seconds: must be between 0 and 86400"
    finally:
        ctl(running, "entra", "--metadata-cache-seconds", "120")


def test_ctl_rejects_bad_values_in_one_line(running: RunningLab) -> None:
    result = run_lab("ctl", "--state-dir", str(running.state_dir), "fault", "arm", "--rate-429", "2")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: rate_429: must be between 0 and 1"


@pytest.mark.parametrize("args", [("clock", "--skew", "nan"), ("webhook", "--mode", "sideways"),
                                  ("propagation", "--fic-seconds", "inf"), ("entra", "--metadata-cache-seconds", "x"),
                                  ("entra",), ("nonsense",), ("outage", "kube")])
def test_ctl_bad_arguments_are_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run_lab("ctl", "--state-dir", str(tmp_path), *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: python -m lab ctl") and result.stderr.count("\n") == 1, result.stderr


def test_a_refused_change_changes_nothing(running: RunningLab) -> None:
    result = run_lab("ctl", "--state-dir", str(running.state_dir), "fault", "arm", "--rate-429", "0.7",
                     "--rate-503", "0.7")
    assert result.returncode == 1 and result.stderr.strip() == "error: rate_429 + rate_503: must not exceed 1"
    assert ctl(running, "status")["faults"]["services"]["arm"]["rate_429"] == 0
    info = running.info()
    raw = requests.post(f"{info['control']['url']}/ctl/clock", data='{"skew_seconds": NaN}', timeout=10,
                        headers={"Authorization": f"Bearer {info['control']['token']}"},
                        verify=str(running.state_dir / "ca.pem"))
    assert raw.status_code == 400 and raw.json() == {"error": "skew_seconds: a number is required"}


def test_webhook_down_rejects_labelled_pods_until_it_is_up_again(running: RunningLab) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "labelled", "namespace": "finance", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"serviceAccountName": "backend-sa", "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "myacr.azurecr.io/finance/backend:1.4.2"}]}}
    ctl(running, "webhook", "--mode", "down")
    try:
        refused = kubectl(running, "apply", "-f", "-", input=json.dumps(pod))
        assert refused.returncode == 1
        assert 'failed calling webhook "mutation.azure-workload-identity.io"' in refused.stderr
    finally:
        ctl(running, "webhook", "--mode", "up")
    assert kubectl(running, "apply", "-f", "-", input=json.dumps(pod)).returncode == 0
    spec = json.loads(kubectl(running, "get", "pod", "labelled", "-n", "finance", "-o", "json").stdout)["spec"]
    assert any(e["name"] == "AZURE_FEDERATED_TOKEN_FILE" for e in spec["containers"][0]["env"])
    kubectl(running, "delete", "pod", "labelled", "-n", "finance", "--wait=false")


def test_a_pod_under_backend_sa_exchanges_its_token_and_reads_the_secret(running: RunningLab) -> None:
    info = running.info()
    vault_url = info["vaults"]["finance-kv"]
    # a loopback vault is no Azure host: say that it may get the token, and what its challenge names
    config = {"checks": [{"kind": "keyvault_secret", "vault_url": vault_url, "secret": "db-password",
                          "expect": "allow", "allowed_hosts": [vault_url.split("/")[2]],
                          "challenge_resource": "https://vault.azure.net"}], "timeout_seconds": 10}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "probe-by-hand", "namespace": "finance",
                        "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"serviceAccountName": "backend-sa", "restartPolicy": "Never",
                    "containers": [{"name": "probe", "image": "ghcr.io/wi-harness/probe:dev",
                                    "env": [{"name": "WI_PROBE_CONFIG", "value": json.dumps(config)}]}]}}
    assert kubectl(running, "apply", "-f", "-", input=json.dumps(pod)).returncode == 0
    deadline = time.monotonic() + 60
    phase = ""
    while time.monotonic() < deadline and phase not in ("Succeeded", "Failed"):
        time.sleep(0.3)
        phase = kubectl(running, "get", "pod", "probe-by-hand", "-n", "finance", "-o",
                        "jsonpath={.status.phase}").stdout
    logs = kubectl(running, "logs", "probe-by-hand", "-n", "finance").stdout
    report = json.loads(logs)
    assert phase == "Succeeded", logs
    steps = {step["name"]: step for step in report["steps"]}
    assert report["ok"] is True and steps["exchange"]["status"] == "pass" and steps["access"]["outcome"] == "allow"


def test_ctl_status_into_a_reader_that_leaves_early_ends_without_a_traceback(running: RunningLab) -> None:
    """``lab ctl status | head -2``: the status is longer than a pipe's buffer, head leaves, the write fails with
    EPIPE; the ctl ends quietly (Python's documented BrokenPipeError handling), not with a traceback."""
    process = subprocess.Popen([sys.executable, "-m", "lab", "ctl", "--state-dir", str(running.state_dir), "status"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the ctl writes
    error = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in error and process.returncode == 1, error
