"""Ordered check chains with skip propagation: a check whose prerequisite failed is skipped, naming it."""

from __future__ import annotations

import dataclasses
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.checks.model import ERROR, FAIL, SKIP, CheckResult, Finding, Outcome, failed
from harness.commands import Advice, Arg, Step, Var
from harness.values import shorten

# A check's or finding's message is for a person; a value it echoes from the cluster (an annotation, an env var)
# may be megabytes. Past this many characters a message is cut, and any string in evidence past the second bound
# (far above a JWKS key or a certificate, the longest values evidence holds on purpose), with a marker.
MAX_MESSAGE = 1000
MAX_EVIDENCE_STRING = 4096
# A value quoted in a message is one long word (an annotation, an identifier Entra echoes back): past MAX_WORD
# characters (longer than any ARM resource id) it is cut to SHOWN_WORD.
MAX_WORD, SHOWN_WORD = 300, 120
_LONG_WORD_RE = re.compile(rf"\S{{{MAX_WORD + 1},}}")

C = TypeVar("C")


@dataclass(frozen=True)
class CheckSpec(Generic[C]):
    id: str
    title: str
    run: Callable[[C], Outcome]
    deps: tuple[str, ...] = ()
    # what the check was to verify, known before it runs (an access check's expect): kept when it is skipped
    skipped_evidence: dict[str, Any] = field(default_factory=dict)


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


def bounded_message(text: str) -> str:
    """``text`` with each over-long word and then the whole cut, with a marker."""
    return shorten(_LONG_WORD_RE.sub(lambda word: shorten(word.group(0), SHOWN_WORD), text), MAX_MESSAGE)


def bounded_step(step: Step) -> Step:
    """A fix with each over-long argument cut like a long word in a message: a command that quotes a 10 KB
    annotation back is no use pasted, and must not flood the terminal."""
    if isinstance(step, Advice):
        return Advice(bounded_message(step.text))
    argv = tuple(_bounded_arg(arg) for arg in step.argv)
    then = tuple(_bounded_arg(arg) for arg in step.then)
    return dataclasses.replace(step, argv=argv, then=then, note=bounded_message(step.note))


def _bounded_arg(arg: Arg) -> Arg:
    if isinstance(arg, Var):
        return Var(arg.name, shorten(arg.suffix, SHOWN_WORD)) if len(arg.suffix) > MAX_WORD else arg
    return shorten(arg, SHOWN_WORD) if len(arg) > MAX_WORD else arg


def bounded_finding(finding: Finding) -> Finding:
    return dataclasses.replace(
        finding,
        message=bounded_message(finding.message),
        evidence=bounded(finding.evidence),
        remediation=[bounded_step(step) for step in finding.remediation],
    )


def bounded(value: Any) -> Any:
    """A copy of JSON-like evidence with every string longer than :data:`MAX_EVIDENCE_STRING` shortened."""
    if isinstance(value, str):
        return shorten(value, MAX_EVIDENCE_STRING)
    if isinstance(value, dict):
        return {key: bounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [bounded(item) for item in value]
    return value


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
                bounded_message(reason),
                {**spec.skipped_evidence, "blocked_by": root} if failed_root else dict(spec.skipped_evidence),
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
            evidence = bounded(dict(outcome.evidence))
            if outcome.blocked_by:
                evidence["blocked_by"] = outcome.blocked_by
            result = CheckResult(
                spec.id,
                outcome.status,
                bounded_message(outcome.message),
                evidence,
                [bounded_finding(f) for f in outcome.findings],
                spec.title,
                outcome.blocked_by,
            )
        done[spec.id] = result
        results.append(result)
    return results


def verdict(results: Iterable[CheckResult]) -> str:
    return "fail" if any(r.status == FAIL for r in results) else "pass"
