"""What a check returns: a status, a message for people, evidence, and findings with remediation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.commands import Step, render_all

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
STATUSES = (PASS, FAIL, WARN, SKIP)
ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    """A broken (or doubtful) link of the chain, with a stable code and the commands that fix it."""

    code: str
    severity: str  # error | warning | info
    # cluster | webhook | serviceaccount | pod | probe | token | identity | federation | entra | access
    layer: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remediation: list[Step] = field(default_factory=list)  # rendered only by harness.commands

    def fix_lines(self) -> list[str]:
        return render_all(self.remediation)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "layer": self.layer,
            "message": self.message,
            "evidence": self.evidence,
            "remediation": self.fix_lines(),
        }


@dataclass
class Outcome:
    """What a check function returns; the chain adds the id and the skip handling."""

    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    blocked_by: str | None = None  # a skip caused by an earlier failure


def passed(message: str, evidence: dict[str, Any] | None = None) -> Outcome:
    return Outcome(PASS, message, evidence or {})


def failed(message: str, evidence: dict[str, Any] | None = None, *findings: Finding) -> Outcome:
    return Outcome(FAIL, message, evidence or {}, list(findings))


def warned(message: str, evidence: dict[str, Any] | None = None, *findings: Finding) -> Outcome:
    return Outcome(WARN, message, evidence or {}, list(findings))


def skipped(message: str, evidence: dict[str, Any] | None = None, blocked_by: str | None = None) -> Outcome:
    return Outcome(SKIP, message, evidence or {}, [], blocked_by)


@dataclass
class CheckResult:
    id: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    title: str = ""
    blocked_by: str | None = None  # set when skipped because an earlier check failed

    def to_json(self) -> dict[str, Any]:
        """The run.json shape: id, status, message, evidence."""
        return {"id": self.id, "status": self.status, "message": self.message, "evidence": self.evidence}
