"""The troubleshooting view printed after a run: per workload, the chain as one ordered list.

Each check is one line with a mark (✓ pass, ✗ fail, ! warn, ⟂ skipped), the first broken link is marked, and
each broken link gets its evidence in one bounded line and the commands that fix it. It is drawn from the
run.json document as written (redacted), so it shows nothing run.json does not hold; on a terminal that cannot
encode the marks, ASCII stands in for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.commands import pasteable
from harness.report.summary import INVENTORY_PREFIX, MIGRATION_PREFIX
from harness.values import TRUNCATION_MARKER, shorten, visible

MAX_MESSAGE = 160  # characters of a passing or skipped check's message on its line
# characters of a failing or warning check's message, and of its findings' messages: the diagnosis a person reads
# (a message naming two client ids, an issuer or a subject and its nearest runs past 200), whole as a rule
MAX_BROKEN = 400
MAX_EVIDENCE = 240  # characters of the one evidence line
# characters of one fix command shown to paste: a real one reaches ~450 (az ad app federated-credential update
# with its --parameters JSON and an AKS issuer); a longer one (a value of kilobytes) is a comment, whole in run.json
MAX_FIX = 2000
MAX_VALUE = 120  # characters of one evidence value (as many as a long word of a check's message)
MAX_REPEATED = 40  # an evidence value longer than this is shown once
ID_WIDTH = 34


@dataclass(frozen=True)
class Marks:
    passed: str
    failed: str
    warned: str
    skipped: str
    first: str  # after the first broken link
    ellipsis: str
    rule: str

    def of(self, status: str) -> str:
        return {"pass": self.passed, "fail": self.failed, "warn": self.warned, "skip": self.skipped}.get(
            status, "?"
        )


# a cut text ends with the harness's truncation marker, so a reader (and a test) knows it is not whole
UNICODE = Marks("✓", "✗", "!", "⟂", "◀ first broken link", TRUNCATION_MARKER, "─")
ASCII = Marks("+", "x", "!", "-", "<- first broken link", TRUNCATION_MARKER.replace("…", "..."), "-")


def can_encode(encoding: str | None, text: str = "✓✗⟂◀…─") -> bool:
    """Whether a stream in ``encoding`` can write the view's marks (a latin-1 or ASCII terminal cannot)."""
    if not encoding:
        return False
    try:
        text.encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def marks_for(encoding: str | None) -> Marks:
    return UNICODE if can_encode(encoding) else ASCII


def troubleshooting_lines(document: dict[str, Any], narrowed: bool, marks: Marks = UNICODE) -> list[str]:
    """The view for every failing workload (and for each one when ``--workload``/``--pod`` narrowed the run),
    and for the cluster's own checks when one of them failed."""
    blocks: list[list[str]] = []
    cluster = [
        c
        for c in document.get("checks") or []
        if not c["id"].startswith((MIGRATION_PREFIX, INVENTORY_PREFIX))
    ]
    if any(c["status"] == "fail" for c in cluster):
        blocks.append(chain_lines("cluster", cluster, document.get("findings") or [], marks))
    for workload in document.get("workloads") or []:
        if narrowed or workload.get("verdict") == "fail":
            blocks.append(
                chain_lines(workload["id"], workload["checks"], workload.get("findings") or [], marks)
            )
    if not blocks:
        return []
    lines = [f"troubleshooting: the chain in order ({legend(marks)})"]
    for block in blocks:
        lines += block
    if marks is ASCII:  # the messages' own truncation markers too
        lines = [line.replace("…", "...") for line in lines]
    return lines


def legend(marks: Marks) -> str:
    return f"{marks.passed} pass, {marks.failed} fail, {marks.warned} warn, {marks.skipped} skipped"


def chain_lines(
    name: str, checks: list[dict[str, Any]], findings: list[dict[str, Any]], marks: Marks
) -> list[str]:
    first = next((c for c in checks if c["status"] == "fail"), None)
    verdict = "FAIL" if first is not None else "PASS"
    head = f"{name}: {verdict}" + (f", first broken link {first['id']}" if first is not None else "")
    lines = [f"{marks.rule * 2} {head} {marks.rule * max(2, 76 - len(head))}"]
    for check in checks:
        mark = marks.of(check["status"])
        limit = MAX_BROKEN if check["status"] in ("fail", "warn") else MAX_MESSAGE
        line = f"  {mark} {check['id']:<{ID_WIDTH}} {_bounded(_one_line(check['message']), limit, marks)}"
        if check is first:
            line += f"   {marks.first}"
        lines.append(line)
        if check["status"] == "fail":
            lines += broken_link_lines(check, findings_of(check, findings), marks)
    return lines


def findings_of(check: dict[str, Any], findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The findings the check raised (run.json names the check of each); for a document without that, the
    error findings of the workload."""
    own = [f for f in findings if f.get("check") == check["id"]]
    if own or any("check" in f for f in findings):
        return own
    return [f for f in findings if f.get("severity") == "error"]


def broken_link_lines(check: dict[str, Any], findings: list[dict[str, Any]], marks: Marks) -> list[str]:
    indent = "      "
    lines = []
    evidence = evidence_line(check.get("evidence") or {}, marks)
    if evidence:
        lines.append(f"{indent}evidence: {evidence}")
    for finding in findings:
        message = _bounded(_one_line(finding.get("message", "")), MAX_BROKEN, marks)
        lines.append(
            f"{indent}{finding['code']} ({finding.get('severity')}, {finding.get('layer')}): {message}"
        )
        for fix in finding.get("remediation") or []:
            lines.append(f"{indent}  fix: {pasteable(fix, MAX_FIX)}")
    return lines


def evidence_line(evidence: dict[str, Any], marks: Marks, limit: int = MAX_EVIDENCE) -> str:
    """The evidence as ``key=value`` pairs on one line, nested keys joined with dots, cut at ``limit``: each
    value cut at MAX_VALUE characters with a marker, and a long value shown once (an annotation echoed in
    several keys is named by the first)."""
    pairs = []
    first_key: dict[str, str] = {}
    for key, value in _flatten(evidence):
        if key == "blocked_by":
            continue
        text = _one_line(_scalar(value))
        if len(text) > MAX_REPEATED and text in first_key:
            text = f"(as {first_key[text]})"
        else:
            first_key.setdefault(text, key)
            text = shorten(text, MAX_VALUE)
        pairs.append(f"{key}={text}")
    return _bounded("; ".join(pairs), limit, marks)


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _one_line(text: str) -> str:
    """One line: line breaks and runs of white space as one space, any other control character shown escaped."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in visible(str(text), newlines=True)).split())


def _bounded(text: str, limit: int, marks: Marks) -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(marks.ellipsis))] + marks.ellipsis


def encodable(line: str, encoding: str | None) -> str:
    """``line`` as the stream can write it: any character its encoding lacks escaped (``\\u00fc``)."""
    if not encoding or can_encode(encoding, line):
        return line
    try:
        return line.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        return line.encode("ascii", "backslashreplace").decode("ascii")
