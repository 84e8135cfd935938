"""The short per-workload summary printed at the end of a pytest run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.schema import NARROWING_FLAGS
from harness.values import TRUNCATION_MARKER, counted, visible

MIGRATION_PREFIX = "migration."
INVENTORY_PREFIX = "inventory."
MAX_COVERAGE_LINES = 20
FIRST_FAILURE_SHOWN = 160  # characters of a workload's first failing check's message in the summary block


def summary_lines(document: dict[str, Any], path: Path | None) -> list[str]:
    target = document["target"]
    lines = [
        f"run {document['run_id']}  target {target['kind']} {target['cluster'] or target['context']}  "
        f"issuer {target['issuer'] or '(unknown)'}"
    ]
    suites = (MIGRATION_PREFIX, INVENTORY_PREFIX)
    cluster = [c for c in document["checks"] if not c["id"].startswith(suites)]
    migration = [c for c in document["checks"] if c["id"].startswith(MIGRATION_PREFIX)]
    inventory = [c for c in document["checks"] if c["id"].startswith(INVENTORY_PREFIX)]
    if cluster:
        findings = [f for f in document["findings"] if f["layer"] not in ("migration", "inventory")]
        lines.append(_line("cluster", cluster, findings))
    if migration:
        lines.append(_line("migration", migration, [f for f in document["findings"] if f["layer"] == "migration"]))
        lines += coverage_lines(document.get("coverage") or [])
    if inventory:
        found = [f for f in document["findings"] if f["layer"] == "inventory"]
        lines.append(_line("inventory", inventory, found))
    for workload in document["workloads"]:
        lines.append(_line(workload["id"], workload["checks"], workload["findings"]))
    for error in (document.get("incomplete") or {}).get("errors") or []:  # why a FAIL over checks that passed
        lines.append(f"  ERROR {error['test']}: {visible(error['message'])[:200]}")
    narrowed = document.get("narrowed") or {}
    flags = {**NARROWING_FLAGS, "options": "", "tests": ""}  # options and tests: the values themselves
    narrowing = ", ".join(dict.fromkeys(flags[key] or (", ".join(map(str, value)) if isinstance(value, list)
                                                         else str(value))
                                        for key, value in narrowed.items() if key in flags and value))
    lines.append(f"verdict {document['verdict'].upper()}" + (f" (narrowed: {visible(narrowing)[:120]})"
                                                              if narrowing else "")
                 + (f"  report {path}" if path else ""))
    return lines


def coverage_lines(rows: list[dict[str, Any]], limit: int = MAX_COVERAGE_LINES) -> list[str]:
    """The coverage table in short: one line per AzureIdentityBinding, what replaces it or what it lacks."""
    if not rows:
        return []
    migrated = sum(1 for row in rows if row["migrated"])
    lines = [f"          coverage: {migrated} of {len(rows)} AzureIdentityBindings have their Workload ID replacement"]
    for row in rows[:limit]:
        if row["migrated"]:
            state = (f"migrated: SA {', '.join(row['service_accounts'])}, "
                     f"{counted(len(row['labelled_pods']), 'labelled pod')}")
        else:
            lacks = f"lacks {', '.join(row['missing'])}" if row["missing"] else ""
            unknown = f"cannot tell {', '.join(row['unknown'])}" if row["unknown"] else ""
            # its pods' ServiceAccount names another identity (migration.coverage_rows' moved_to)
            moved = f"moved to {', '.join(row['moved_to'])}" if row.get("moved_to") else ""
            state = "; ".join(part for part in (moved, lacks, unknown) if part)
        lines.append(f"            {row['binding']:<40} client {row['client_id'] or '?'}  {state}")
    if len(rows) > limit:
        lines.append(f"            ... {len(rows) - limit} more in run.json (coverage)")
    return lines


def _line(name: str, checks: list[dict[str, Any]], findings: list[dict[str, Any]]) -> str:
    counts = {
        status: sum(1 for c in checks if c["status"] == status) for status in ("pass", "fail", "warn", "skip")
    }
    verdict = "FAIL" if counts["fail"] else "PASS"
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    line = f"  {verdict}  {name:<32} {tally}"
    first = next((c for c in checks if c["status"] == "fail"), None)
    if first is not None:
        # the failing check's own findings (a layer's findings of other checks, warnings say, are no evidence of it)
        own = [f for f in findings if f.get("check") == first["id"]]
        codes = ",".join(f["code"] for f in (own or findings)[:3])
        said = visible(first["message"])  # whole in the troubleshooting view above; here one line, marked if cut
        said = said if len(said) <= FIRST_FAILURE_SHOWN else said[:FIRST_FAILURE_SHOWN] + TRUNCATION_MARKER
        line += f"\n          first failure {first['id']}: {said}" + (f"  [{codes}]" if codes else "")
    return line
