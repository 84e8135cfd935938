"""Redact the collected facts, then run every chain over them: facts in, results out (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.checks.chain import verdict
from harness.checks.cluster import run_cluster_checks
from harness.checks.context import WorkloadContext
from harness.checks.inventory import inventory_section, run_inventory_checks
from harness.checks.migration import coverage_rows, leftovers_section, run_migration_checks
from harness.checks.model import CheckResult, Finding
from harness.checks.workload import run_workload_checks, with_harness_retries
from harness.config import HarnessConfig, WorkloadConfig
from harness.facts import RunFacts
from harness.redact import Redactor
from harness.serde import from_json, to_json


@dataclass
class WorkloadResults:
    id: str  # NS/SA (or NS/POD with --pod)
    namespace: str
    service_account: str
    checks: list[CheckResult]
    kind: str = "workload"  # workload | pod

    @property
    def verdict(self) -> str:
        return verdict(self.checks)

    def check(self, check_id: str) -> CheckResult:
        for result in self.checks:
            if result.id == check_id:
                return result
        raise KeyError(f"{self.id} has no check {check_id!r}")

    @property
    def findings(self) -> list[Finding]:
        return unique_findings(self.checks)


@dataclass
class RunResults:
    target: dict[str, Any]
    cluster: list[CheckResult]
    workloads: dict[str, WorkloadResults] = field(default_factory=dict)
    pods: dict[str, WorkloadResults] = field(default_factory=dict)
    swept: list[str] = field(default_factory=list)
    sweep_kept: list[str] | None = None  # None: no --sweep
    kept: list[str] = field(default_factory=list)
    # the migration suite: its checks, and run.json's leftovers and coverage sections (None: it did not run)
    migration: list[CheckResult] = field(default_factory=list)
    leftovers: dict[str, Any] | None = None
    coverage: list[dict[str, Any]] | None = None
    # the inventory suite: its checks, and run.json's inventory section (None: it did not run)
    inventory_checks: list[CheckResult] = field(default_factory=list)
    inventory: dict[str, Any] | None = None

    def cluster_check(self, check_id: str) -> CheckResult:
        return next(c for c in self.cluster if c.id == check_id)

    def migration_check(self, check_id: str) -> CheckResult:
        return next(c for c in self.migration if c.id == check_id)

    def inventory_check(self, check_id: str) -> CheckResult:
        return next(c for c in self.inventory_checks if c.id == check_id)


def unique_findings(checks: list[CheckResult]) -> list[Finding]:
    """Findings in chain order, each code from the first (most upstream) check that raised it. That check's
    findings of the code are all kept (workload.live_pods raises one per owner: a DaemonSet's, a StatefulSet's,
    each with its own fix), the same message once."""
    seen: set[str] = set()
    out: list[Finding] = []
    for check in checks:
        own: set[tuple[str, str]] = set()
        for finding in check.findings:
            if finding.code in seen or (finding.code, finding.message) in own:
                continue
            own.add((finding.code, finding.message))
            out.append(finding)
        seen |= {code for code, _message in own}
    return out


def redact_facts(facts: RunFacts, redactor: Redactor) -> RunFacts:
    return from_json(RunFacts, redactor(to_json(facts)))


def config_target(config: HarnessConfig, kind: str) -> dict[str, Any]:
    """run.json's target as harness.yaml names it, before (or without) anything read from the cluster: a run
    interrupted before its first check result."""
    return {
        "kind": kind,
        "context": config.cluster.context or "",
        "cluster": config.azure.cluster_name if config.azure else "",
        "issuer": "",
        "subscription_id": config.azure.subscription_id if config.azure else "",
        "resource_group": config.azure.resource_group if config.azure else "",
    }


def target_of(facts: RunFacts, config: HarnessConfig, kind: str) -> dict[str, Any]:
    cluster = facts.cluster
    named = config_target(config, kind)
    return {
        **named,
        "context": cluster.context or named["context"],
        "cluster": cluster.cluster_name or named["cluster"] or (cluster.server or ""),
        "issuer": cluster.issuer_url or "",
        "run_by": {"kubernetes": cluster.run_by_kubernetes, "azure": cluster.run_by_azure},
    }


def harness_client_id(config: HarnessConfig, caller: dict[str, Any] | None) -> str | None:
    """The harness's own Azure identity: harness.yaml's harness.client_id, else the application its ARM token was
    issued to when that token is an application's (the Job logging in through Workload ID with no harness: section),
    not a person's (az login as a user: the Azure CLI's application)."""
    if config.harness.client_id:
        return config.harness.client_id
    caller = caller or {}
    appid = caller.get("appid")
    is_app = caller.get("idtyp") == "app" or not (caller.get("upn") or caller.get("unique_name"))
    return appid if isinstance(appid, str) and appid and is_app else None


def analyse(
    facts: RunFacts,
    config: HarnessConfig,
    workloads: list[WorkloadConfig],
    target_kind: str,
    redactor: Redactor,
    keep: bool = False,
    now: float | None = None,
) -> RunResults:
    """``now`` (for token times) defaults to when each workload's facts were collected, so analysing the same
    facts again gives the same results."""
    facts = redact_facts(facts, redactor)
    results = RunResults(
        target=target_of(facts, config, target_kind),
        cluster=with_harness_retries(run_cluster_checks(facts.cluster, config.azure, config.expect),
                                     facts.harness_retries.get("cluster") or {}),
        swept=list(facts.swept),
        sweep_kept=None if facts.sweep_kept is None else list(facts.sweep_kept),
    )
    if facts.migration is not None:
        results.migration = with_harness_retries(
            run_migration_checks(facts.migration, facts.cluster, config.azure, config.expect),
            facts.harness_retries.get("migration") or {})
        results.leftovers = leftovers_section(facts.migration, facts.cluster, config.expect)
        results.coverage = coverage_rows(facts.migration, facts.cluster.issuer_url)
    if facts.inventory is not None:
        results.inventory_checks = with_harness_retries(run_inventory_checks(
            facts.inventory, facts.cluster, config.azure, config.expect, config.workloads,
            harness_client_id(config, facts.cluster.run_by_azure),
        ), facts.harness_retries.get("inventory") or {})
        results.inventory = inventory_section(facts.inventory, facts.cluster, config.expect)
    accounts = None if facts.inventory is None or facts.inventory.service_accounts_error is not None else (
        frozenset(facts.inventory.all_service_accounts))
    for workload in workloads:
        workload_facts = facts.workloads.get(workload.id)
        if workload_facts is None:
            continue
        context = WorkloadContext(
            workload_facts,
            workload,
            facts.cluster,
            config.azure,
            workload_facts.collected_at if now is None else now,
            facts.inventory.identities if facts.inventory is not None else None,
            accounts,
        )
        results.workloads[workload.id] = WorkloadResults(
            workload.id, workload.namespace, workload.service_account, run_workload_checks(context)
        )
        pod = workload_facts.pod
        if keep and pod is not None and pod.created:
            results.kept.append(f"{pod.namespace}/{pod.name}")
    for pod_id, pod_facts in facts.pods.items():
        configured = config.workload(f"{pod_facts.namespace}/{pod_facts.service_account}")
        bare = configured or WorkloadConfig(
            namespace=pod_facts.namespace, service_account=pod_facts.service_account
        )
        context = WorkloadContext(
            pod_facts, bare, facts.cluster, config.azure, pod_facts.collected_at if now is None else now,
            facts.inventory.identities if facts.inventory is not None else None, accounts,
        )
        results.pods[pod_id] = WorkloadResults(
            pod_id, pod_facts.namespace, pod_facts.service_account, run_workload_checks(context), kind="pod"
        )
        probe = pod_facts.probe_pod
        if keep and probe is not None and probe.created:
            results.kept.append(f"{probe.namespace}/{probe.name}")
    return results
