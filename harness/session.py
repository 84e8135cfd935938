"""One harness run as the pytest plugin sees it: options, config, run id, where things go, what is chosen."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.collect.kube_api import kubeconfig_bearer_token
from harness.config import HarnessConfig, WorkloadConfig
from harness.lab_bootstrap import EmbeddedLab
from harness.redact import Redactor
from harness.values import printable, split_reference

# What azure-identity's EnvironmentCredential (inside DefaultAzureCredential) may read.
AMBIENT_SECRET_VARIABLES = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD")


class BadReference(ValueError):
    pass


def parse_ref(value: str, option: str) -> tuple[str, str]:
    """``NS/NAME`` -> (ns, name), by the same rules as harness.yaml's workloads; a one-line error naming the
    option otherwise (the value shown escaped and shortened)."""
    try:
        return split_reference(value)
    except ValueError as exc:
        raise BadReference(f"{option} '{printable(value, 80)}': {exc}") from None


def run_secrets(config: HarnessConfig, environ: Mapping[str, str]) -> list[str]:
    """Every secret value this run may handle that is known before it starts, for every process's redactor:
    the configured client secret, the credentials DefaultAzureCredential would take from the environment,
    and the kubeconfig user's static token (the live one is added when the backend is built)."""
    ambient = [environ.get(name, "") for name in AMBIENT_SECRET_VARIABLES]
    token = kubeconfig_bearer_token(config.cluster.kubeconfig, config.cluster.context)
    return [value for value in (*config.secrets(), *ambient, token) if value]


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class HarnessSession:
    config: HarnessConfig
    config_path: Path
    run_id: str
    started_at: str
    target_kind: str  # lab | cluster
    report_dir: Path
    shared_dir: Path
    image: str
    keep: bool = False
    sweep: bool = False
    workloads: list[WorkloadConfig] = field(default_factory=list)  # parametrized
    pods: list[tuple[str, str]] = field(default_factory=list)  # --pod NS/POD
    selected_workloads: list[str] | None = None  # ids with at least one selected test (after -k, --deselect)
    selected_pods: list[str] | None = None
    selected_migration: bool = False  # a migration.* test is selected: collect pod-managed identity leftovers
    redactor: Redactor = field(default_factory=Redactor)
    lab: EmbeddedLab | None = None
    is_worker: bool = False
    kube: Any = None  # the KubeApi built (and so checked) when the run started; None: each process builds one

    @property
    def run_dir(self) -> Path:
        return self.report_dir / self.run_id

    def workload(self, workload_id: str) -> WorkloadConfig:
        return next(w for w in self.workloads if w.id == workload_id)

    def selected_workload_configs(self) -> list[WorkloadConfig]:
        chosen = self.selected_workloads
        return [w for w in self.workloads if chosen is None or w.id in chosen]

    def selected_pod_refs(self) -> list[tuple[str, str]]:
        chosen = self.selected_pods
        return [p for p in self.pods if chosen is None or f"{p[0]}/{p[1]}" in chosen]


def workloads_for(
    config: HarnessConfig, requested: list[tuple[str, str]], pods_requested: bool
) -> list[WorkloadConfig]:
    """--workload picks (ad-hoc ones allowed: client id from the ServiceAccount); else every configured one,
    unless only --pod was given."""
    if requested:
        return [
            config.workload(f"{ns}/{sa}") or WorkloadConfig(namespace=ns, service_account=sa)
            for ns, sa in dict.fromkeys(requested)
        ]
    return [] if pods_requested else list(config.workloads)
