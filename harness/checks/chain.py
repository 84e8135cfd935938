"""Ordered check chains with skip propagation: a check whose prerequisite failed is skipped, naming it."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from harness.checks.model import ERROR, FAIL, SKIP, CheckResult, Finding, Outcome, failed

C = TypeVar("C")


@dataclass(frozen=True)
class CheckSpec(Generic[C]):
    id: str
    title: str
    run: Callable[[C], Outcome]
    deps: tuple[str, ...] = ()


def blocker(deps: Iterable[str], done: dict[str, CheckResult]) -> tuple[str, str] | None:
    """(root check id, reason) when a prerequisite failed or was itself skipped; None when all may proceed."""
    for dep in deps:
        result = done.get(dep)
        if result is None:
            continue
        if result.status == FAIL:
            return dep, f"skipped because {dep} failed"
        if result.status == SKIP:
            if result.blocked_by:
                return result.blocked_by, f"skipped because {result.blocked_by} failed"
            return dep, f"skipped because {dep} was skipped ({result.message})"
    return None


def run_chain(specs: Iterable[CheckSpec[C]], context: C) -> list[CheckResult]:
    done: dict[str, CheckResult] = {}
    results: list[CheckResult] = []
    for spec in specs:
        blocked = blocker(spec.deps, done)
        if blocked is not None:
            root, reason = blocked
            failed_root = done[root].status == FAIL or bool(done[root].blocked_by)
            result = CheckResult(
                spec.id,
                SKIP,
                reason,
                {"blocked_by": root} if failed_root else {},
                title=spec.title,
                blocked_by=root if failed_root else None,
            )
        else:
            try:
                outcome = spec.run(context)
            except Exception as exc:  # a bug in one check must not hide the others
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                message = f"internal error in check {spec.id}: {type(exc).__name__}: {exc}"
                where = {"where": f"{frame.filename}:{frame.lineno}"}
                outcome = failed(
                    message, where, Finding("HARNESS_INTERNAL_ERROR", ERROR, "harness", message, where)
                )
            evidence = dict(outcome.evidence)
            if outcome.blocked_by:
                evidence["blocked_by"] = outcome.blocked_by
            result = CheckResult(
                spec.id,
                outcome.status,
                outcome.message,
                evidence,
                outcome.findings,
                spec.title,
                outcome.blocked_by,
            )
        done[spec.id] = result
        results.append(result)
    return results


def verdict(results: Iterable[CheckResult]) -> str:
    return "fail" if any(r.status == FAIL for r in results) else "pass"
