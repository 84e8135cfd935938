"""The short per-workload summary printed at the end of a pytest run."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def summary_lines(document: dict[str, Any], path: Path | None) -> list[str]:
    target = document["target"]
    lines = [
        f"run {document['run_id']}  target {target['kind']} {target['cluster'] or target['context']}  "
        f"issuer {target['issuer'] or '(unknown)'}"
    ]
    if document["checks"]:
        lines.append(_line("cluster", document["checks"], document["findings"]))
    for workload in document["workloads"]:
        lines.append(_line(workload["id"], workload["checks"], workload["findings"]))
    lines.append(f"verdict {document['verdict'].upper()}" + (f"  report {path}" if path else ""))
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
        codes = ",".join(f["code"] for f in findings[:3])
        line += f"\n          first failure {first['id']}: {first['message'][:160]}" + (
            f"  [{codes}]" if codes else ""
        )
    return line
