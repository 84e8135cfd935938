"""Assemble run.json from the per-test payloads (they cross xdist workers on the test reports), validate it
against the contract, write it under ``<report-dir>/<run-id>/`` and point ``<report-dir>/latest`` at it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.analysis import RunResults, WorkloadResults
from harness.checks.model import CheckResult
from harness.collect.retrying import LEDGER
from harness.redact import Redactor
from harness.report.schema import SCHEMA, validate_run
from harness.report.signoff import write_signoff

# checks of the run as a whole; any other scope is a workload's (or --pod's)
RUN_SCOPES = ("cluster", "migration", "inventory")


def rfc3339(ts: float | None = None) -> str:
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def check_payload(
    scope: str,
    result: CheckResult,
    order: int,
    results: RunResults,
    workload: WorkloadResults | None = None,
    workload_order: int = 0,
) -> dict[str, Any]:
    """What one test carries to the process that writes run.json (a migration check carries the run's leftovers and
    coverage sections too)."""
    payload = {
        "scope": scope,
        "order": order,
        "workload": None
        if workload is None
        else {
            "id": workload.id,
            "namespace": workload.namespace,
            "service_account": workload.service_account,
            "order": workload_order,
        },
        "check": result.to_json(),
        "findings": [{**f.to_json(), "check": result.id} for f in result.findings],  # the check that raised it
        "target": results.target,
        "swept": results.swept,
        "sweep_kept": results.sweep_kept,
        "kept": results.kept,
        # the harness's own retries so far in this process (an xdist worker); merged in build_run
        "retries": {"process": os.getpid(), "services": LEDGER.summary()},
    }
    if scope == "migration":
        payload["migration"] = {"leftovers": results.leftovers, "coverage": results.coverage}
    if scope == "inventory":
        payload["inventory"] = results.inventory
    return payload


def _dedupe(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item[key] not in seen:
            seen.add(item[key])
            out.append(item)
    return out


def _findings_once(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each code from the first check that raised it (the most upstream), with all that check's findings of the
    code (workload.live_pods raises one per owner, each with its own fix), the same message once; as
    :func:`harness.analysis.unique_findings` keeps them."""
    first: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    out = []
    for finding in findings:
        code, key = finding["code"], (finding["code"], str(finding.get("message")))
        if first.setdefault(code, finding.get("check")) != finding.get("check") or key in seen:
            continue
        seen.add(key)
        out.append(finding)
    return out


def build_run(
    run_id: str,
    started_at: str,
    finished_at: str,
    payloads: list[dict[str, Any]],
    fallback_target: dict[str, Any],
    harness_errors: int | list[dict[str, str]] = 0,
    interrupted: str | None = None,
    narrowed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """run.json from the tests' payloads. ``harness_errors``: the harness's tests that errored without a check
    result, each ``{test, message}`` (a bare count for callers that know no more); ``interrupted``: the signal
    that stopped the run. Either makes the verdict FAIL, and the document's ``incomplete`` says why."""
    if isinstance(harness_errors, int):
        harness_errors = [{"test": "(unknown)", "message": "errored without a check result"}] * harness_errors
    # run.json's checks and findings: the cluster's, then the migration suite's, then the inventory suite's
    cluster = sorted((p for p in payloads if p["scope"] in RUN_SCOPES),
                     key=lambda p: (RUN_SCOPES.index(p["scope"]), p["order"]))
    target = next((p["target"] for p in payloads if p.get("target")), fallback_target)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for payload in sorted(
        (p for p in payloads if p["scope"] not in RUN_SCOPES),
        key=lambda p: (p["workload"]["order"], p["workload"]["id"], p["order"]),
    ):
        grouped.setdefault(payload["workload"]["id"], []).append(payload)
    workloads = []
    for workload_id, items in grouped.items():
        checks = _dedupe([p["check"] for p in items], "id")
        workloads.append(
            {
                "id": workload_id,
                "namespace": items[0]["workload"]["namespace"],
                "service_account": items[0]["workload"]["service_account"],
                "verdict": "fail" if any(c["status"] == "fail" for c in checks) else "pass",
                "checks": checks,
                "findings": _findings_once([f for p in items for f in p["findings"]]),
            }
        )
    cluster_checks = _dedupe([p["check"] for p in cluster], "id")
    failed = (
        any(c["status"] == "fail" for c in cluster_checks)
        or any(w["verdict"] == "fail" for w in workloads)
        or bool(harness_errors)
        or interrupted is not None
    )
    document = {
        "schema": SCHEMA,
        "run_id": run_id,
        "harness_version": __version__,
        "started_at": started_at,
        "finished_at": finished_at,
        "target": target,
        "verdict": "fail" if failed else "pass",
        "checks": cluster_checks,
        "findings": _findings_once([f for p in cluster for f in p["findings"]]),
        "workloads": workloads,
    }
    migration = next((p["migration"] for p in payloads if p.get("migration")), None)
    if migration is not None:
        document["leftovers"], document["coverage"] = migration["leftovers"], migration["coverage"]
    inventory = next((p["inventory"] for p in payloads if p.get("inventory") is not None), None)
    if inventory is not None:
        document["inventory"] = inventory
    retries = merged_retries(payloads)
    if retries:
        document["retries"] = retries
    if harness_errors or interrupted is not None:
        document["incomplete"] = {"interrupted": interrupted, "errors": [dict(e) for e in harness_errors]}
    if narrowed and any(narrowed.values()):
        document["narrowed"] = {key: value for key, value in narrowed.items() if value}
    return document


def merged_retries(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """The harness's retries per service over the run: each process's latest (largest) ledger, summed over the
    processes (xdist workers). The probe's own retries are in its checks' evidence."""
    latest: dict[Any, dict[str, Any]] = {}
    for payload in payloads:
        item = payload.get("retries") or {}
        services = item.get("services") or {}
        total = sum(s["retries"] for s in services.values())
        known = latest.get(item.get("process"))
        if services and (known is None or total > sum(s["retries"] for s in known.values())):
            latest[item.get("process")] = services
    merged: dict[str, Any] = {}
    for services in latest.values():
        for name, counted in services.items():
            into = merged.setdefault(name, {"retries": 0, "answers": {}})
            into["retries"] += counted["retries"]
            for answer, n in counted["answers"].items():
                into["answers"][answer] = into["answers"].get(answer, 0) + n
    return merged


def build_run_from_results(
    run_id: str, started_at: str, finished_at: str, results: RunResults
) -> dict[str, Any]:
    """The whole run.json straight from results (every check, as if every test had run)."""
    payloads = [check_payload("cluster", c, i, results) for i, c in enumerate(results.cluster)]
    payloads += [check_payload("migration", c, i, results) for i, c in enumerate(results.migration)]
    payloads += [check_payload("inventory", c, i, results) for i, c in enumerate(results.inventory_checks)]
    for w_index, workload in enumerate([*results.workloads.values(), *results.pods.values()]):
        payloads += [
            check_payload(workload.kind, c, i, results, workload, w_index)
            for i, c in enumerate(workload.checks)
        ]
    return build_run(run_id, started_at, finished_at, payloads, results.target)


def write_run(report_dir: Path, document: dict[str, Any], redactor: Redactor, latest: bool = True) -> Path:
    """Validate, redact (a last pass over the serialised text) and write run.json, then signoff.md and signoff.html
    rendered from it, and (``latest``) point ``<report-dir>/latest`` at them; returns the run.json path."""
    validate_run(document)
    text = redactor.text(json.dumps(document, indent=2, sort_keys=False, default=str))
    validate_run(json.loads(text))
    run_dir = report_dir / document["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run.json"
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    write_signoff(run_dir, json.loads(text), redactor.text)  # from the redacted document, as written
    if latest:
        point_latest(report_dir, document["run_id"])
    return path


def point_latest(report_dir: Path, run_id: str) -> None:
    """``<report-dir>/latest`` -> the run's directory (a symlink, replaced at once); OSError when it cannot be, and
    never over a ``latest`` that is not the harness's symlink (a directory a CI step or a person made there)."""
    latest = report_dir / "latest"
    if latest.exists() and not latest.is_symlink():
        kind = "a directory" if latest.is_dir() else "a file"
        raise OSError(f"{latest} is {kind}, not the harness's symlink: left as it is")
    tmp = report_dir / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run_id, tmp)
    try:
        os.replace(tmp, latest)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
