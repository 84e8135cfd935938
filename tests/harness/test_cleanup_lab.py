"""Nothing of a run is left behind, against one lab: ``pytest suites`` interrupted by SIGINT or SIGTERM before its
probe pods exist, while they are pending, and while it reports; a run killed outright (SIGKILL) whose objects the
first ``--sweep`` after their deadline removes, exactly those; and two runs at once, both with ``--sweep``, that
both pass (neither sweeps the other's pods).

The tests share one lab and run in order: the killed run's leftovers are made first and swept last, so the wait
for their deadline (probe.timeout_seconds 10 + the harness's grace) is spent running the other tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from test_e2e_lab import NO_DEV_PLUGINS, REPO

from harness.collect.probe_pods import GRACE_SECONDS
from harness.collect.sweep import MARGIN_SECONDS
from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
MANAGED = "app.kubernetes.io/managed-by=wi-harness"
RUN_ID = "wi-harness/run-id"
WORKLOAD = "finance/backend-sa"
KILLED_TIMEOUT = 10  # probe.timeout_seconds (its minimum) of the run killed with SIGKILL
state: dict[str, Any] = {}  # the killed run's leftovers, from the first test to the last


def core(running_lab: RunningLab) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig")))


def objects(api: k8s.CoreV1Api) -> set[tuple[str, str, str, str]]:
    """(kind, namespace, name, run id) of every pod and ConfigMap a run of the harness made."""
    found = set()
    for kind, items in (("pod", api.list_pod_for_all_namespaces(label_selector=MANAGED).items),
                        ("configmap", api.list_config_map_for_all_namespaces(label_selector=MANAGED).items)):
        for item in items:
            found.add((kind, item.metadata.namespace, item.metadata.name, (item.metadata.labels or {}).get(RUN_ID, "")))
    return found


def ctl(running_lab: RunningLab, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "lab", "ctl", "--state-dir", str(running_lab.state_dir), *args],
                   check=True, capture_output=True, timeout=60)


def config(running_lab: RunningLab, path: Path, **probe: Any) -> Path:
    document = yaml.safe_load(running_lab.harness_config.read_text())
    document.setdefault("probe", {}).update(probe)
    path.write_text(yaml.safe_dump(document))
    return path


def _as_from_a_terminal() -> None:
    """SIGINT as a terminal's Ctrl-C meets it: a test run started in the background of a non-interactive shell
    (``.ci/run &``) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(config_file: Path, report_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites", "--config", str(config_file), "--workload", WORKLOAD,
         "--report-dir", str(report_dir), "-p", "no:cacheprovider", *NO_DEV_PLUGINS, "-q", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_as_from_a_terminal)


def connected_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP connection to ``port`` on loopback (Linux /proc: its socket fds'
    inodes among /proc/net/tcp's rows with that remote port)."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
            return True
    return False


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def new_pods(api: k8s.CoreV1Api, before: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    return {o for o in objects(api) - before if o[0] == "pod"}


def leave_a_killed_run(running_lab: RunningLab, tmp_path: Path, api: k8s.CoreV1Api,
                       before: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    """SIGKILL a run once its probe pod exists: its objects stay (recorded in ``state`` for the sweep test)."""
    killed = start(config(running_lab, tmp_path / "killed.yaml", timeout_seconds=KILLED_TIMEOUT), tmp_path / "k")
    pods = wait_for(lambda: new_pods(api, before), 60, "the killed run's probe pod")
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    run_id = next(iter(pods))[3]
    left = {o for o in objects(api) if o[3] == run_id}
    assert {o[0] for o in left} == {"pod", "configmap"}, left  # nothing of it was cleaned up
    state.update(left=left, killed_at=time.monotonic())
    return left


def test_a_killed_run_leaves_objects_and_two_sweeping_runs_at_once_both_pass(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    api = core(running_lab)
    before = objects(api)
    ctl(running_lab, "kubelet", "--pod-start-latency", "3")
    try:
        left = leave_a_killed_run(running_lab, tmp_path, api, before)
        first = start(running_lab.harness_config, tmp_path / "a", "--sweep")
        wait_for(lambda: new_pods(api, before | left), 60, "the first sweeping run's probe pod")
        second = start(running_lab.harness_config, tmp_path / "b", "--sweep")  # sweeps while the first's pod waits
        outputs = [run.communicate(timeout=120)[0] for run in (first, second)]
    finally:
        ctl(running_lab, "kubelet", "--pod-start-latency", "0")
    for run, output in zip((first, second), outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
        assert not re.search(r"swept \d+ leftover", output)  # the killed run's objects are within their deadline: not leftovers yet
    assert objects(api) - before == left  # both runs cleaned up after themselves; the leftovers wait


# Ctrl-C pressed twice is tried while the pods are being made only: that is where the first one's clean-up has most
# to do
INTERRUPTS = [
    pytest.param(phase, signum, id=f"{phase}-{name}")
    for phase in ("before-pods", "pods-pending", "reporting")
    for signum, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM"), ("SIGINT-twice", "SIGINT-twice"))
    if name != "SIGINT-twice" or phase == "pods-pending"
]


@pytest.mark.parametrize(("phase", "signum"), INTERRUPTS)
def test_an_interrupted_run_leaves_nothing(
    running_lab: RunningLab, tmp_path: Path, phase: str, signum: signal.Signals | str
) -> None:
    """Nothing left, no traceback, a report still written that never says PASS for checks it did not run (a run
    stopped while it writes its report, every check done, finishes it); Ctrl-C pressed twice quickly lets the
    first one's clean-up finish."""
    api = core(running_lab)
    before = objects(api)
    slow = ("fault", "arm", "--latency-ms", "2500") if phase == "before-pods" else (
        "kubelet", "--pod-start-latency", "3" if phase == "pods-pending" else "0")
    ctl(running_lab, *slow)
    try:
        run = start(running_lab.harness_config, tmp_path)
        if phase == "before-pods":
            # the harness reads ARM (the cluster, the identity) before it makes any probe object; its start (imports,
            # config) takes seconds on a loaded machine, so the signal waits for its first ARM connection
            arm_port = int(running_lab.info()["endpoints"]["arm"].rsplit(":", 1)[1])
            wait_for(lambda: connected_to(run.pid, arm_port), 60, "the harness's first ARM request")
            time.sleep(0.5)
            assert objects(api) == before, "probe objects existed before the signal"
        elif phase == "pods-pending":
            pods = wait_for(lambda: new_pods(api, before), 60, "a probe pod")
            assert all(p.status.phase == "Pending" for p in api.list_pod_for_all_namespaces(
                label_selector=f"{RUN_ID}={next(iter(pods))[3]}").items)
        else:
            wait_for(lambda: new_pods(api, before), 60, "a probe pod")
            wait_for(lambda: not new_pods(api, before), 60, "the probe pod deleted")  # the run now analyses, reports
        assert run.poll() is None, "the run ended before the signal"
        run.send_signal(signal.SIGINT if signum == "SIGINT-twice" else signum)
        if signum == "SIGINT-twice":
            time.sleep(0.05)
            run.send_signal(signal.SIGINT)
        output = run.communicate(timeout=120)[0]
    finally:
        ctl(running_lab, *(("fault", "arm", "--latency-ms", "0") if phase == "before-pods"
                           else ("kubelet", "--pod-start-latency", "0")))
    assert objects(api) == before, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    document = run_json(tmp_path)
    if run.returncode == 0:  # the signal came while the finished run wrote its report: it finished that
        assert phase == "reporting" and "still writing the run's report" in output, output[-3000:]
        assert document["verdict"] == "pass"
    else:
        assert document["verdict"] == "fail" and "before every check ran: the verdict is FAIL" in output
        # and the sign-off says so: run.json names the signal (the checks that ran may all pass)
        assert document["incomplete"]["interrupted"] == ("SIGINT" if signum == "SIGINT-twice" else signum.name)


def test_an_api_server_down_for_a_moment_mid_run_leaves_nothing(running_lab: RunningLab, tmp_path: Path) -> None:
    """The API server refuses connections for ~4 s while the probe pod runs (a control-plane restart): the run's
    deletes fail, and the end of the run tries again once it is back; the failure names the API server."""
    api = core(running_lab)
    before = objects(api)
    ctl(running_lab, "kubelet", "--pod-start-latency", "2")
    try:
        run = start(running_lab.harness_config, tmp_path)
        wait_for(lambda: new_pods(api, before), 60, "a probe pod")
        ctl(running_lab, "outage", "kube", "--down")
        try:
            time.sleep(3.5)  # past the probe's end (2 s after its pod was made): its log read and delete fail
        finally:
            ctl(running_lab, "outage", "kube", "--up")
        output = run.communicate(timeout=120)[0]
    finally:
        ctl(running_lab, "kubelet", "--pod-start-latency", "0")
    assert objects(api) == before, output[-3000:]
    assert "Traceback" not in output and "could not make sure" not in output, output[-3000:]
    document = run_json(tmp_path)
    server = running_lab.info()["endpoints"]["kube"].split("://", 1)[1].rstrip("/")
    assert document["verdict"] == "fail"
    assert server in json.dumps([w["findings"][0]["message"] for w in document["workloads"] if w["findings"]])


def run_json(report_dir: Path) -> dict[str, Any]:
    return json.loads((report_dir / "latest" / "run.json").read_text())


def break_the_probe_pod_mid_run(running_lab: RunningLab, report_dir: Path, config_file: Path, workload: str,
                                breakage: Any) -> tuple[str, dict[str, Any], str]:
    """A run whose probe pod ``breakage(api, namespace, pod)`` hits while it starts: (its output, run.json, the
    pod's name); nothing of the run is left."""
    api = core(running_lab)
    before = objects(api)
    ctl(running_lab, "kubelet", "--pod-start-latency", "3")
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "pytest", "suites", "--config", str(config_file), "--workload", workload,
             "--report-dir", str(report_dir), "-p", "no:cacheprovider", *NO_DEV_PLUGINS, "-q"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ((_, namespace, pod, _),) = wait_for(lambda: new_pods(api, before), 60, "the probe pod")
        time.sleep(1)  # the run is watching its pod by now (it starts 3 s after it was made)
        breakage(api, namespace, pod)
        output = run.communicate(timeout=120)[0]
    finally:
        ctl(running_lab, "kubelet", "--pod-start-latency", "0")
    assert "Traceback" not in output, output[-3000:]
    assert objects(api) == before, output[-3000:]
    return output, run_json(report_dir), pod


def _delete(api: k8s.CoreV1Api, namespace: str, pod: str) -> None:
    api.delete_namespaced_pod(pod, namespace)


def _evict(api: k8s.CoreV1Api, namespace: str, pod: str) -> None:  # what kubectl drain posts for each pod
    api.create_namespaced_pod_eviction(pod, namespace, {"apiVersion": "policy/v1", "kind": "Eviction",
                                                        "metadata": {"name": pod, "namespace": namespace}})


@pytest.mark.parametrize("breakage", [_delete, _evict], ids=["kubectl-delete", "eviction"])
def test_a_probe_pod_deleted_or_evicted_mid_run_is_named_as_such(
    running_lab: RunningLab, tmp_path: Path, breakage: Any
) -> None:
    """Not PROBE_OUTPUT_INVALID with a 'kubectl logs ... --keep' fix (the log of a pod someone else deleted is
    gone): PROBE_POD_DELETED, naming the pod and its events; the printed repair, a run once it is over, passes."""
    output, document, pod = break_the_probe_pod_mid_run(running_lab, tmp_path / "broken", running_lab.harness_config,
                                                        WORKLOAD, breakage)
    (workload,) = document["workloads"]
    assert workload["verdict"] == "fail" and [f["code"] for f in workload["findings"]] == ["PROBE_POD_DELETED"]
    finding = workload["findings"][0]
    assert f"{WORKLOAD.split('/')[0]}/{pod}" in finding["message"] and "\n" not in finding["message"]
    assert finding["remediation"][0].startswith(f"kubectl get events -n finance --field-selector involvedObject.name={pod}")
    if breakage is _evict:  # the API server marks an evicted pod before it deletes it (pod disruption conditions)
        assert "was evicted before the probe finished (DisruptionTarget EvictionByEvictionAPI: Eviction API: " \
               "evicting)" in finding["message"], finding["message"]
    again = start(running_lab.harness_config, tmp_path / "again")
    assert again.communicate(timeout=120)[0] and again.returncode == 0


def test_a_namespace_deleted_mid_run_is_named_not_the_probe(running_lab: RunningLab, tmp_path: Path) -> None:
    """kubectl delete namespace while the probe pod starts: the namespace is named, nothing is left behind."""
    api = core(running_lab)
    api.create_namespace({"metadata": {"name": "scratch"}})
    document = yaml.safe_load(running_lab.harness_config.read_text())
    api.create_namespaced_service_account("scratch", {"metadata": {"name": "app-sa", "annotations": {
        "azure.workload.identity/client-id": document["workloads"][0]["client_id"]}}})
    document["workloads"].append({**document["workloads"][0], "namespace": "scratch", "service_account": "app-sa"})
    config_file = tmp_path / "harness.yaml"
    config_file.write_text(yaml.safe_dump(document))
    _, document, _ = break_the_probe_pod_mid_run(running_lab, tmp_path / "r", config_file, "scratch/app-sa",
                                                 lambda api, namespace, _: api.delete_namespace(namespace))
    (workload,) = document["workloads"]
    codes = [f["code"] for f in workload["findings"]]
    assert codes[0] in ("NAMESPACE_NOT_FOUND", "NAMESPACE_TERMINATING"), codes
    assert "PROBE_OUTPUT_INVALID" not in codes and "PROBE_POD_DELETED" not in codes
    assert "namespace scratch was deleted during the run" in workload["findings"][0]["message"]


def test_sweep_after_the_deadline_removes_exactly_the_killed_runs_objects(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    api = core(running_lab)
    if "left" not in state:  # the first test ran in another xdist worker (or was not selected): leave them here
        ctl(running_lab, "kubelet", "--pod-start-latency", "3")
        try:
            leave_a_killed_run(running_lab, tmp_path, api, objects(api))
        finally:
            ctl(running_lab, "kubelet", "--pod-start-latency", "0")
    left = state["left"]
    assert left <= objects(api)
    bound = KILLED_TIMEOUT + GRACE_SECONDS + MARGIN_SECONDS + 2  # + creationTimestamp's whole seconds
    time.sleep(max(0.0, state["killed_at"] + bound - time.monotonic()))
    before = objects(api)
    run = start(running_lab.harness_config, tmp_path, "--sweep")
    output = run.communicate(timeout=120)[0]
    assert run.returncode == 0, output[-3000:]
    line = re.search(r"swept (\d+) leftover probe objects?: (.*)", output)
    assert line, output[-3000:]
    expected = {f"{ns}/{name}" if kind == "pod" else f"{ns}/configmap/{name}" for kind, ns, name, _ in left}
    assert set(line.group(2).strip().split(", ")) == expected
    assert objects(api) == before - left
