"""A lab with N more workloads, made as a person would make them (ARM, Kubernetes API), for the benchmarks.

Each workload ``bench-NNN/app-sa``: a namespace, a user-assigned managed identity ``bench-NNN-id`` in the lab's
identity resource group with a federated credential for the ServiceAccount, the ServiceAccount annotated with its
client id, and ``Key Vault Secrets User`` on ``finance-kv`` (the workload's access check reads ``db-password``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from azure.identity import ClientSecretCredential
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from lab.bootstrap import RunningLab, start_lab

REPO = Path(__file__).resolve().parent.parent
MSI_API = "2023-01-31"
ROLE_API = "2022-04-01"
IDENTITY_GROUP = "myRg"  # lab.scenarios.IDENTITY_RESOURCE_GROUP
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
SECRETS_USER_ROLE = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User (built-in role id)
SETUP_WORKERS = 8


@dataclass
class Workload:
    namespace: str
    service_account: str
    client_id: str
    principal_id: str
    identity_id: str


@dataclass
class BenchLab:
    """A running lab, its admin's ARM session, and the workloads made in it so far."""

    running: RunningLab
    info: dict[str, Any]
    ca: str
    workloads: list[Workload] = field(default_factory=list)

    def __post_init__(self) -> None:
        admin = self.info["admin"]
        self._credential = ClientSecretCredential(
            self.info["tenant_id"], admin["client_id"], admin["client_secret"],
            authority=self.info["authority_host"], disable_instance_discovery=True, connection_verify=self.ca)
        self._http = requests.Session()
        self._core = k8s.CoreV1Api(k8s_config.new_client_from_config(
            config_file=str(self.running.state_dir / "kubeconfig")))

    @property
    def state_dir(self) -> Path:
        return self.running.state_dir

    # ------------------------------------------------------------ public APIs
    def arm(self, method: str, path: str, api: str, body: Any = None) -> Any:
        token = self._credential.get_token("https://management.azure.com/.default").token
        response = self._http.request(method, self.info["endpoints"]["arm"] + path, json=body, timeout=60, verify=self.ca,
                                      params={"api-version": api}, headers={"Authorization": f"Bearer {token}"})
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def ctl(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        """The lab's control API (what ``python -m lab ctl`` sends)."""
        control = self.info["control"]
        response = self._http.post(f"{control['url']}/ctl/{command}", json=body, timeout=30, verify=self.ca,
                                   headers={"Authorization": f"Bearer {control['token']}"})
        if response.status_code != 200:
            raise RuntimeError(f"lab ctl {command}: {response.status_code} {response.text[:300]}")
        return response.json()

    def vault_scope(self) -> str:
        subscription = self.info["subscription_id"]
        return (f"/subscriptions/{subscription}/resourceGroups/{IDENTITY_GROUP}/providers/"
                f"Microsoft.KeyVault/vaults/finance-kv")

    # ------------------------------------------------------------ workloads
    def _make(self, index: int) -> Workload:
        namespace = f"bench-{index:03d}"
        subscription = self.info["subscription_id"]
        identity = self.arm(
            "PUT", f"/subscriptions/{subscription}/resourceGroups/{IDENTITY_GROUP}/providers/"
                   f"Microsoft.ManagedIdentity/userAssignedIdentities/{namespace}-id", MSI_API, {"location": "eastus"})
        self.arm("PUT", f"{identity['id']}/federatedIdentityCredentials/{namespace}", MSI_API, {"properties": {
            "issuer": self.info["issuer_url"], "subject": f"system:serviceaccount:{namespace}:app-sa",
            "audiences": [EXCHANGE_AUDIENCE]}})
        self.arm("PUT", f"{self.vault_scope()}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                 ROLE_API, {"properties": {
                     "roleDefinitionId": f"/subscriptions/{subscription}/providers/Microsoft.Authorization/"
                                         f"roleDefinitions/{SECRETS_USER_ROLE}",
                     "principalId": identity["properties"]["principalId"], "principalType": "ServicePrincipal"}})
        client_id = identity["properties"]["clientId"]
        self._core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        self._core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(
            name="app-sa", annotations={"azure.workload.identity/client-id": client_id})))
        return Workload(namespace, "app-sa", client_id, identity["properties"]["principalId"], identity["id"])

    def add_workloads(self, count: int) -> list[Workload]:
        """Make workloads until there are ``count`` (SETUP_WORKERS at a time)."""
        start = len(self.workloads)
        with ThreadPoolExecutor(SETUP_WORKERS) as pool:
            made = list(pool.map(self._make, range(start, count)))
        self.workloads += made
        return made

    # ------------------------------------------------------------ harness.yaml
    def harness_config(self, directory: Path, count: int) -> Path:
        """The lab's harness.yaml listing the first ``count`` bench workloads (and not the lab's own two)."""
        data = yaml.safe_load(self.running.harness_config.read_text())
        vault_url = self.info["vaults"]["finance-kv"]
        data["workloads"] = [
            {"namespace": w.namespace, "service_account": w.service_account, "client_id": w.client_id,
             "access": [{"kind": "keyvault_secret", "vault_url": vault_url, "name": "finance-kv",
                         "secret": "db-password", "expect": "allow"}]}
            for w in self.workloads[:count]
        ]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"harness-{count}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path


@contextmanager
def bench_lab(workloads: int = 0, scenario: str = "healthy") -> Iterator[BenchLab]:
    """A lab of its own (``python -m lab up`` on loopback, as ``pytest suites --lab`` starts it) with
    ``workloads`` bench workloads; stopped and its state removed afterwards."""
    import shutil

    state_dir = Path(tempfile.mkdtemp(prefix="wi-bench-lab-"))
    running = start_lab(state_dir, scenario=scenario)
    try:
        lab = BenchLab(running, running.info(), str(state_dir / "ca.pem"))
        if workloads:
            lab.add_workloads(workloads)
        yield lab
    finally:
        running.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int
    document: dict[str, Any] | None
    output: str


def run_suites(config: Path, report_dir: Path, *args: str, suites: tuple[str, ...] = ("suites",),
               wrap: Callable[[list[str]], list[str]] | None = None) -> Measured:
    """``pytest suites --config CONFIG`` as a user runs it, timed; its own peak RSS and CPU from wait4 (under
    ``wrap``, a profiler, those are the profiler's and its child's)."""
    command = [sys.executable, "-m", "pytest", *suites, "--config", str(config), "--report-dir", str(report_dir),
               "-p", "no:cacheprovider", "-q", *args]
    if wrap is not None:
        command = wrap(command)
    with tempfile.TemporaryFile() as output:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                                   env=dict(os.environ))
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    latest = report_dir / "latest" / "run.json"
    document = json.loads(latest.read_text()) if latest.exists() else None
    return Measured(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode, document,
                    text)


def failures(document: dict[str, Any] | None, limit: int = 5) -> list[str]:
    """The first failing check of each failed workload, counted by check and message."""
    counts: dict[str, int] = {}
    for workload in (document or {}).get("workloads", []):
        failing = next((c for c in workload["checks"] if c["status"] == "fail"), None)
        if failing is not None:
            key = f"{failing['id']}: {str(failing.get('message', ''))[:200]}"
            counts[key] = counts.get(key, 0) + 1
    return [f"{n} x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]]


def verdicts(document: dict[str, Any] | None) -> str:
    if document is None:
        return "no run.json"
    counts: dict[str, int] = {}
    for workload in document.get("workloads", []):
        counts[workload["verdict"]] = counts.get(workload["verdict"], 0) + 1
    return ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))


def process_cpu(pid: int) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of its waited-for children) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def machine() -> str:
    import platform

    # PYTHONDONTWRITEBYTECODE set (some CI images set it): every pytest process compiles the harness again, about
    # 0.5 s of CPU that a person's run does not pay; it lengthens T(1) more than T(N)
    cache = "off (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"bytecode cache {cache}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def self_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
