"""Turn a check result into a pytest outcome: pass, fail (with findings and fixes), skip (with the reason,
never counted as a pass), or pass with a warning."""

from __future__ import annotations

import warnings

import pytest

from harness.checks.model import FAIL, SKIP, WARN, CheckResult


class HarnessWarning(UserWarning):
    """A check passed with a reservation (status warn)."""


def failure_text(result: CheckResult) -> str:
    lines = [f"{result.id}: {result.message}"]
    for finding in result.findings:
        lines.append(f"  [{finding.code}] {finding.message}")
        lines += [f"      fix: {command}" for command in finding.fix_lines()]
    return "\n".join(lines)


def verify(result: CheckResult) -> None:
    if result.status == SKIP:
        pytest.skip(f"{result.id}: {result.message}")
    if result.status == FAIL:
        pytest.fail(failure_text(result), pytrace=False)
    if result.status == WARN:
        warnings.warn(HarnessWarning(failure_text(result)), stacklevel=2)
