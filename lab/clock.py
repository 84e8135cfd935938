"""Wall clock with an adjustable skew, so a service can be made to run fast or slow (``lab ctl skew``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self.skew_seconds: float = 0.0

    def now(self) -> float:
        return time.time() + self.skew_seconds

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)


def rfc3339(ts: float | None = None) -> str:
    """Kubernetes-style timestamp: second precision, Z suffix."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
