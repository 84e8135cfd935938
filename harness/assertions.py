"""Turn a check result into a pytest outcome: pass, fail (with findings and fixes), skip (with the reason,
never counted as a pass), or pass with a warning."""

from __future__ import annotations

import warnings

import pytest

from harness.checks.model import FAIL, SKIP, WARN, CheckResult
from harness.commands import pasteable
from harness.values import visible


class HarnessWarning(UserWarning):
    """A check passed with a reservation (status warn)."""


def failure_text(result: CheckResult) -> str:
    """What pytest prints for a failed (or warned) check: each message on one line with any control character
    shown escaped (a cluster value or a service's error text echoing one must not act on the terminal), and each
    fix as it can be pasted (:func:`harness.commands.pasteable`)."""
    lines = [f"{result.id}: {visible(result.message)}"]
    for finding in result.findings:
        lines.append(f"  [{finding.code}] {visible(finding.message)}")
        lines += [f"      fix: {pasteable(command)}" for command in finding.fix_lines()]
    return "\n".join(lines)


def verify(result: CheckResult) -> None:
    if result.status == SKIP:
        pytest.skip(f"{result.id}: {visible(result.message)}")
    if result.status == FAIL:
        pytest.fail(failure_text(result), pytrace=False)
    if result.status == WARN:
        warnings.warn(HarnessWarning(failure_text(result)), stacklevel=2)
