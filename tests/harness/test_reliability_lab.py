"""Reliability against one lab, through ``pytest suites`` as a person runs it:

- transient errors: with 20 % of every lab service's answers a 429 (Retry-After: 0) or a 503 (seeded), five runs
  each of the healthy world and two failing ones give the verdicts and finding codes their fault-free runs give;
  the retries that made it so are counted (run.json ``retries``, the probe's ``retries`` evidence). The
  harness's backoffs are scaled down (WI_HARNESS_RETRY_DELAY_SCALE) so the runs stay short; the probe's are not.
- a hard-down service (``lab ctl outage``: its listeners closed, connections refused) for the whole run, each of
  Entra, ARM, Graph, Key Vault, the issuer and the API server: the run ends well within its timeout, every
  finding names that service's address, and no other cause is claimed.
- least privilege: a ServiceAccount bound to exactly manifests/harness-rbac.yaml.j2 passes the suites; without
  pod create in one namespace, that workload gets PROBE_FORBIDDEN and the other still passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import utils as k8s_utils
from test_e2e_lab import NO_DEV_PLUGINS, REPO
from test_identities_lab import Person

from harness.manifests import render
from harness.report.schema import validate_run
from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
SERVICES = ("kube", "issuer", "entra", "arm", "graph", "keyvault", "storage")
FIC_API = "2023-01-31"
RUNS = 5
WORKLOADS = "suites/test_workloads.py"
# Entra keeps an issuer's metadata for about half an hour on Azure (lab/azure/metadata_cache.py); the lab's default
# is two minutes. At Azure's length the fault-free runs fill the cache and the faulted ones never fetch the issuer
# through its faults: a failed fetch is AADSTS50166/90061, an answer the probe does not wait out.
ENTRA_METADATA_CACHE = "1800"


@pytest.fixture(scope="module")
def person(running_lab: RunningLab) -> Person:
    return Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))


def ctl(running_lab: RunningLab, *args: str) -> Any:
    result = subprocess.run([sys.executable, "-m", "lab", "ctl", "--state-dir", str(running_lab.state_dir), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def start(report_dir: Path, config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``pytest suites`` (or the suite files named first in ``args``) against ``config``."""
    targets = [a for a in args if a.startswith("suites/")] or ["suites"]
    args = tuple(a for a in args if not a.startswith("suites/"))
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *targets, "--config", str(config), *args, "--report-dir", str(report_dir),
         "-p", "no:cacheprovider", *NO_DEV_PLUGINS, "-q"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})


def finish(run: subprocess.Popen[str], report_dir: Path) -> dict[str, Any]:
    output = run.communicate(timeout=300)[0]
    latest = report_dir / "latest" / "run.json"
    assert latest.exists(), output[-3000:]
    document = json.loads(latest.read_text())
    validate_run(document)
    document["_output"] = output
    return document


def outcome(document: dict[str, Any]) -> dict[str, Any]:
    """What must not change: the verdicts and the finding codes, the run's and each workload's."""
    return {"verdict": document["verdict"], "findings": sorted(f["code"] for f in document["findings"]),
            "workloads": {w["id"]: (w["verdict"], sorted(f["code"] for f in w["findings"]))
                          for w in document["workloads"]}}


def in_parallel(jobs: list[tuple[str, Path, list[str]]], root: Path, env: dict[str, str] | None = None,
                width: int = 3) -> list[tuple[str, dict[str, Any]]]:
    """Run (name, config, args) jobs, ``width`` at a time; (name, run.json) in job order."""
    done: list[tuple[str, dict[str, Any]]] = []
    for first in range(0, len(jobs), width):
        batch = [(name, root / f"{name}-{first + i}", config, args)
                 for i, (name, config, args) in enumerate(jobs[first:first + width])]
        started = [(name, report, start(report, config, *args, env=env)) for name, report, config, args in batch]
        done += [(name, finish(run, report)) for name, report, run in started]
    return done


def config_with(running_lab: RunningLab, path: Path, change: Any) -> Path:
    document = yaml.safe_load(running_lab.harness_config.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))
    return path


def expect_allow_everywhere(document: dict[str, Any]) -> None:
    for workload in document["workloads"]:
        for target in workload.get("access") or []:
            target["expect"] = "allow"


def transient_faults(running_lab: RunningLab, on: bool) -> None:
    for service in SERVICES:
        rate = "0.1" if on else "0"
        ctl(running_lab, "fault", service, "--rate-429", rate, "--rate-503", rate, "--retry-after", "0",
            "--seed", "20261205")


def orders_credential(person: Person) -> dict[str, Any]:
    identities = person.arm("GET", f"/subscriptions/{person.info['subscription_id']}/providers/"
                                   "Microsoft.ManagedIdentity/userAssignedIdentities", FIC_API)["value"]
    identity = next(i for i in identities if i["name"] == "ordersWorkloadId")
    credentials = person.arm("GET", f"{identity['id']}/federatedIdentityCredentials", FIC_API)["value"]
    return next(c for c in credentials if c["properties"]["subject"] == "system:serviceaccount:orders:orders-sa")


def retries_seen(documents: list[dict[str, Any]]) -> tuple[int, int]:
    """(the harness's retries, the probe's retried steps) over ``documents``; the harness's retries made for a
    workload are also in the evidence of that workload's checks that rest on them."""
    harness = sum(s["retries"] for d in documents for s in (d.get("retries") or {}).values())
    probe = sum(json.dumps(c["evidence"]).count('"answers"') for d in documents for w in d["workloads"]
                for c in w["checks"])
    in_checks = sum(n for d in documents for w in d["workloads"] for c in w["checks"]
                    for n in (c["evidence"].get("harness_retries") or {}).values())
    assert in_checks > 0, "no check's evidence counts the harness's retries"
    return harness, probe


def test_transient_errors_on_every_service_change_no_verdict(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    healthy = running_lab.harness_config
    denied = config_with(running_lab, tmp_path / "denied.yaml", expect_allow_everywhere)
    # the failing worlds' runs read only what their workloads need (suites/test_workloads.py)
    jobs = [("healthy", healthy, []), ("denied", denied, [WORKLOADS, "--workload", "finance/backend-sa"])]
    cache = ctl(running_lab, "status")["entra"]["metadata_cache_seconds"]
    ctl(running_lab, "entra", "--metadata-cache-seconds", ENTRA_METADATA_CACHE)
    try:
        harness, probe = transient_runs(running_lab, person, tmp_path, jobs)
    finally:
        ctl(running_lab, "entra", "--metadata-cache-seconds", str(cache))
    assert harness > 0 and probe > 0  # the faults were there, and retried through


def transient_runs(running_lab: RunningLab, person: Person, tmp_path: Path,
                   jobs: list[tuple[str, Path, list[str]]]) -> tuple[int, int]:
    """Fault-free runs of each world, then five with transient faults each, compared; the retries counted."""
    healthy = running_lab.harness_config
    baseline = dict(in_parallel(jobs, tmp_path / "baseline"))
    assert outcome(baseline["healthy"])["verdict"] == "pass" and outcome(baseline["denied"])["verdict"] == "fail"
    faster = {"WI_HARNESS_RETRY_DELAY_SCALE": "0.05"}

    credential = orders_credential(person)  # a subject naming another ServiceAccount: AADSTS700213
    wrong = {"properties": {**credential["properties"], "subject": "system:serviceaccount:orders:someone-else"}}
    person.arm("PUT", credential["id"], FIC_API, wrong)
    try:
        wrong_subject = [("wrong-subject", healthy, [WORKLOADS, "--workload", "orders/orders-sa"])]
        (_, baseline["wrong-subject"]), = in_parallel(wrong_subject, tmp_path / "baseline")
        transient_faults(running_lab, on=True)
        try:
            faulted = in_parallel(wrong_subject * RUNS, tmp_path / "faulted", env=faster)
        finally:
            transient_faults(running_lab, on=False)
    finally:
        person.arm("PUT", credential["id"], FIC_API, {"properties": credential["properties"]})
    assert outcome(baseline["wrong-subject"])["verdict"] == "fail"

    transient_faults(running_lab, on=True)
    try:
        faulted += in_parallel(jobs * RUNS, tmp_path / "faulted", env=faster)
    finally:
        transient_faults(running_lab, on=False)
    assert len(faulted) == 3 * RUNS
    for name, document in faulted:
        assert outcome(document) == outcome(baseline[name]), (name, document["_output"][-3000:])
    return retries_seen([d for _, d in faulted])


def host(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


# What each outage may be called: the harness's own reads (AZURE_UNREACHABLE, KUBE_UNREACHABLE, the issuer's
# discovery document), the pods' (EGRESS_BLOCKED: the pod cannot reach it), Entra's (it could not fetch the issuer).
BLAMED = {"entra": {"AZURE_UNREACHABLE", "EGRESS_BLOCKED"}, "arm": {"AZURE_UNREACHABLE"},
          "graph": {"AZURE_UNREACHABLE"}, "keyvault": {"EGRESS_BLOCKED"}, "kube": {"KUBE_UNREACHABLE"},
          "issuer": {"ISSUER_DISCOVERY_UNREACHABLE", "ISSUER_UNREACHABLE_FROM_ENTRA"}}


@pytest.mark.parametrize("service", sorted(BLAMED))
def test_a_hard_down_service_is_named_and_nothing_else_is_blamed(
    running_lab: RunningLab, tmp_path: Path, service: str
) -> None:
    config = yaml.safe_load(running_lab.harness_config.read_text())
    cloud, endpoints = config["azure"]["cloud"], running_lab.info()["endpoints"]
    hosts = {"entra": [host(cloud["authority_host"])], "arm": [host(cloud["resource_manager"])],
             "graph": [host(cloud["microsoft_graph"])], "keyvault": cloud["keyvault_hosts"],
             "kube": [host(endpoints["kube"])], "issuer": [host(endpoints["issuer"])]}[service]
    ctl(running_lab, "outage", service, "--down")
    try:
        started = time.monotonic()
        document = finish(start(tmp_path, running_lab.harness_config), tmp_path)
        elapsed = time.monotonic() - started
    finally:
        ctl(running_lab, "outage", service, "--up")
    assert document["verdict"] == "fail"
    assert elapsed < config["probe"]["timeout_seconds"], elapsed  # well within the run's own bound
    findings = [*document["findings"], *(f for w in document["workloads"] for f in w["findings"])]
    assert findings
    for finding in findings:
        assert any(h in finding["message"] for h in hosts), (finding["code"], finding["message"])
    blamed = {f["code"] for f in findings}
    assert blamed <= BLAMED[service], blamed


def test_entra_down_for_a_moment_mid_run_is_ridden_out_as_the_sdk_does(running_lab: RunningLab, tmp_path: Path) -> None:
    """Entra refuses connections for ~2 s as the probe starts (a restart, a failover): the probe tries again as
    azure-core does for the workload (3 more times, 0, 1.6, 3.2 s apart), so the verdict is the fault-free one and
    the evidence counts the refusals."""
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig")))
    ctl(running_lab, "kubelet", "--pod-start-latency", "2")
    try:
        run = start(tmp_path, running_lab.harness_config, WORKLOADS, "--workload", "finance/backend-sa")
        deadline = time.monotonic() + 60
        while not api.list_pod_for_all_namespaces(label_selector="app.kubernetes.io/managed-by=wi-harness").items:
            assert time.monotonic() < deadline, "no probe pod"
            time.sleep(0.05)
        ctl(running_lab, "outage", "entra", "--down")
        try:
            time.sleep(2.5)
        finally:
            ctl(running_lab, "outage", "entra", "--up")
        document = finish(run, tmp_path)
    finally:
        ctl(running_lab, "kubelet", "--pod-start-latency", "0")
    assert document["verdict"] == "pass", document["_output"][-3000:]
    (workload,) = document["workloads"]
    retries = next(c for c in workload["checks"] if c["id"] == "exchange.succeeds")["evidence"]["retries"]
    assert retries["answers"][0] == "connection_refused" and retries["answers"][-1] == "HTTP 200", retries


def test_a_service_slower_than_the_probes_timeout_is_named_slow_not_blocked(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """Key Vault answers 1.5 s late against probe.request_timeout_seconds 1 (retry_seconds 2 to keep it short):
    SERVICE_TIMEOUT naming the vault and the attempts, not EGRESS_BLOCKED with NetworkPolicy advice; no other
    cause is claimed."""
    config = config_with(running_lab, tmp_path / "slow.yaml",
                         lambda d: d["probe"].update(request_timeout_seconds=1, retry_seconds=2))
    ctl(running_lab, "fault", "keyvault", "--latency-ms", "1500")
    try:
        document = finish(start(tmp_path, config, WORKLOADS, "--workload", "orders/orders-sa"), tmp_path)
    finally:
        ctl(running_lab, "fault", "keyvault", "--latency-ms", "0")
    (workload,) = document["workloads"]
    assert [f["code"] for f in workload["findings"]] == ["SERVICE_TIMEOUT"], document["_output"][-3000:]
    vault = host(next(a["vault_url"] for a in yaml.safe_load(config.read_text())["workloads"][1]["access"]
                      if a["kind"] == "keyvault_secret"))
    message = workload["findings"][0]["message"]
    assert message.startswith(f"Key Vault at {vault} took the request and did not answer in time") and "attempt" in message


# ---------------------------------------------------------------- least privilege

RUNNER_NS, RUNNER = "default", "wi-harness-runner"


@pytest.fixture(scope="module")
def least_privilege(running_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """harness.yaml for a ServiceAccount bound to exactly the rendered RBAC (its token in a kubeconfig)."""
    api_client = k8s_config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig"))
    core = k8s.CoreV1Api(api_client)
    config = yaml.safe_load(running_lab.harness_config.read_text())
    namespaces = sorted({w["namespace"] for w in config["workloads"]})
    core.create_namespaced_service_account(RUNNER_NS, {"metadata": {"name": RUNNER}})
    for document in render("harness-rbac.yaml.j2", subject_kind="ServiceAccount", subject_name=RUNNER,
                           subject_namespace=RUNNER_NS, namespaces=namespaces, webhook_namespace="kube-system"):
        k8s_utils.create_from_dict(api_client, document)
    token = core.create_namespaced_service_account_token(RUNNER, RUNNER_NS, k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    kubeconfig = yaml.safe_load((running_lab.state_dir / "kubeconfig").read_text())
    for user in kubeconfig["users"]:
        user["user"] = {"token": token}
    directory = tmp_path_factory.mktemp("least-privilege")
    (directory / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    config["cluster"]["kubeconfig"] = str(directory / "kubeconfig")
    (directory / "harness.yaml").write_text(yaml.safe_dump(config))
    yield directory / "harness.yaml"


def test_the_least_privilege_rbac_is_enough(running_lab: RunningLab, least_privilege: Path, tmp_path: Path) -> None:
    document = finish(start(tmp_path, least_privilege), tmp_path)
    assert document["verdict"] == "pass", document["_output"][-3000:]
    assert document["target"]["run_by"]["kubernetes"]["username"] == f"system:serviceaccount:{RUNNER_NS}:{RUNNER}"


def test_without_pod_create_in_one_namespace_that_workload_is_probe_forbidden(
    running_lab: RunningLab, least_privilege: Path, tmp_path: Path
) -> None:
    rbac = k8s.RbacAuthorizationV1Api(k8s_config.new_client_from_config(
        config_file=str(running_lab.state_dir / "kubeconfig")))
    role = rbac.read_namespaced_role("wi-harness-probe", "orders")
    original = [rule.to_dict() for rule in role.rules]
    rules = [{**rule, "verbs": [v for v in rule["verbs"] if not (rule["resources"] == ["pods"] and v == "create")]}
             for rule in original]
    rbac.patch_namespaced_role("wi-harness-probe", "orders", {"rules": rules})
    try:
        document = finish(start(tmp_path, least_privilege), tmp_path)
    finally:
        rbac.patch_namespaced_role("wi-harness-probe", "orders", {"rules": original})
    workloads = {w["id"]: w for w in document["workloads"]}
    assert workloads["finance/backend-sa"]["verdict"] == "pass", document["_output"][-3000:]
    orders = workloads["orders/orders-sa"]
    assert orders["verdict"] == "fail" and {f["code"] for f in orders["findings"]} == {"PROBE_FORBIDDEN"}


def test_watches_that_expire_or_drop_change_no_verdict(running_lab: RunningLab, tmp_path: Path) -> None:
    """The API server ends the harness's pod watches early: two answer an ERROR event with a 410 Expired Status
    ("too old resource version"), two are cut after their headers (``lab ctl fault kube --watch-expire 2
    --watch-drop 2``). The pods start 2 s late so that they are watched. The run lists and watches again and gives
    the verdicts and codes of the same run without the faults; the faults were all met."""
    latency = ctl(running_lab, "status")["pod_start_latency_seconds"]
    ctl(running_lab, "kubelet", "--pod-start-latency", "2")
    try:
        baseline = finish(start(tmp_path / "baseline", running_lab.harness_config, WORKLOADS), tmp_path / "baseline")
        answered = ctl(running_lab, "fault", "kube", "--watch-expire", "2", "--watch-drop", "2")
        assert answered["kube"]["watch"] == {"expire": 2, "drop": 2}
        try:
            faulted = finish(start(tmp_path / "faulted", running_lab.harness_config, WORKLOADS), tmp_path / "faulted")
            left = ctl(running_lab, "status")["faults"]["watch"]
        finally:
            ctl(running_lab, "fault", "kube", "--watch-expire", "0", "--watch-drop", "0")
    finally:
        ctl(running_lab, "kubelet", "--pod-start-latency", str(latency))
    assert left == {"expire": 0, "drop": 0}, left  # every fault met a watch of the run
    assert outcome(baseline)["verdict"] == "pass"
    assert outcome(faulted) == outcome(baseline), faulted["_output"][-3000:]
