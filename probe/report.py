"""Step records, the skip chain, the top-level document and its final redaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

from probe import SCHEMA, __version__
from probe.jwtutil import redact

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

_MIN_SCRUB_LEN = 8


class StepOutcome:
    """What a step function returns; the runner adds name, timing and skip handling."""

    __slots__ = ("status", "evidence", "error", "extra")

    def __init__(self, status: str, evidence: dict[str, Any], error: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.status = status  # "pass" | "fail"
        self.evidence = evidence
        self.error = error
        self.extra = {} if extra is None else extra


def passed(evidence: dict[str, Any], **extra: Any) -> StepOutcome:
    return StepOutcome("pass", evidence, None, extra)


def failed(evidence: dict[str, Any], error: dict[str, Any], **extra: Any) -> StepOutcome:
    return StepOutcome("fail", evidence, error, extra)


class StepLog:
    """Runs steps in order, records them, and skips those whose prerequisites did not pass."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.steps: list[dict[str, Any]] = []
        self._monotonic = monotonic
        self._latest: dict[str, dict[str, Any]] = {}

    def blocker(self, deps: Iterable[str]) -> str | None:
        """``because <step> failed`` for the first dependency that failed (or the root cause of a skip)."""
        for dep in deps:
            record = self._latest.get(dep)
            if record is None:
                continue
            if record["status"] == "fail":
                return f"because {dep} failed"
            if record["status"] == "skip":
                return str(record["reason"])
        return None

    def skip(self, name: str, reason: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        record = {"name": name, **(extra or {}), "status": "skip", "duration_ms": 0.0, "reason": reason,
                  "evidence": {}, "error": None}
        return self._add(record)

    def run(
        self,
        name: str,
        fn: Callable[[], StepOutcome],
        deps: Iterable[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        reason = self.blocker(deps)
        if reason is not None:
            return self.skip(name, reason, extra)
        start = self._monotonic()
        try:
            outcome = fn()
        except Exception as exc:  # a bug must still yield one JSON document, never a traceback
            outcome = failed({}, {"kind": "internal", "message": redact(f"{type(exc).__name__}: {exc}")})
        duration = round((self._monotonic() - start) * 1000.0, 1)
        record = {"name": name, **(extra or {}), **outcome.extra, "status": outcome.status,
                  "duration_ms": duration, "evidence": outcome.evidence, "error": outcome.error}
        return self._add(record)

    def _add(self, record: dict[str, Any]) -> dict[str, Any]:
        self.steps.append(record)
        self._latest[record["name"]] = record
        return record

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step["status"] == "pass" for step in self.steps)


def rfc3339(ts: float) -> str:
    utc = timezone.utc  # noqa: UP017 (datetime.UTC is 3.11+; the probe runs on any python3 >= 3.8)
    return datetime.fromtimestamp(ts, utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pod_info(environ: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "name": environ.get("POD_NAME") or None,
        "namespace": environ.get("POD_NAMESPACE") or None,
        "service_account": environ.get("POD_SERVICE_ACCOUNT") or None,
    }


def document(log: StepLog, environ: Mapping[str, str], started: float, finished: float) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "probe_version": __version__,
        "started_at": rfc3339(started),
        "finished_at": rfc3339(finished),
        "pod": pod_info(environ),
        "steps": log.steps,
        "ok": log.ok,
    }


def render(doc: Mapping[str, Any], sensitive: Iterable[str] = ()) -> str:
    """Serialize; as a last line of defence scrub every known secret and anything JWT-shaped."""
    text = json.dumps(doc, indent=2, default=str)
    for value in sorted(set(sensitive), key=len, reverse=True):
        if len(value) >= _MIN_SCRUB_LEN:
            text = text.replace(json.dumps(value)[1:-1], "[REDACTED]")
    return redact(text)
