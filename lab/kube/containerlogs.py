"""Container logs as the kubelet keeps them: one log per container instance (the CRI log file of one container
ID), each line stamped with the time the runtime read it, and the instance before the current one kept for
``kubectl logs --previous``.

What the log endpoint does with them (kubelet ``GetContainerLogs``/``validateContainerLogStatus`` and the
kuberuntime log reader, pkg/kubelet/kuberuntime/logs):

- ``previous=true`` reads the instance named by ``lastState.terminated.containerID``; with no such instance the
  kubelet answers ``previous terminated container "<c>" in pod "<p>" not found`` (a 400 through the API server);
- ``sinceSeconds`` / ``sinceTime`` keep the lines written at or after that time; ``timestamps=true`` prefixes each
  line with its RFC 3339 time (nanoseconds) and a space; ``tailLines`` and ``limitBytes`` apply after them;
- ``follow=true`` follows the one instance being read while it runs: when that container exits (a crash before its
  restart) the stream ends, as the kubelet stops following a container that is no longer running.

A plain ``bytearray`` stored as a container's log (the store-only labs of some tests) has no line times: it is read
as written just now.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lab.kube import errors

Obj = dict[str, Any]


class ContainerLog(bytearray):
    """What one container instance wrote, with the time each line began. Extend it as output arrives."""

    def __init__(self, container_id: str = "", previous: ContainerLog | None = None) -> None:
        super().__init__()
        self.container_id = container_id
        # only the instance before this one: the kubelet keeps the last dead container for --previous
        self.previous = previous
        if previous is not None:
            previous.previous = None
        self.line_starts: list[int] = []  # byte offsets where lines begin
        self.line_times: list[int] = []  # time.time_ns() of each line's first byte

    def extend(self, chunk: Any) -> None:  # type: ignore[override]
        data = bytes(chunk)
        if not data:
            return
        now = time.time_ns()
        offset = len(self)
        if offset == 0 or self[-1:] == b"\n":
            self._start(offset, now)
        index = data.find(b"\n")
        while index != -1 and index + 1 < len(data):
            self._start(offset + index + 1, now)
            index = data.find(b"\n", index + 1)
        super().extend(data)

    def __iadd__(self, chunk: Any) -> ContainerLog:  # type: ignore[override]
        self.extend(chunk)
        return self

    def _start(self, offset: int, at: int) -> None:
        self.line_starts.append(offset)
        self.line_times.append(at)

    def time_of(self, offset: int) -> int | None:
        index = bisect.bisect_right(self.line_starts, offset) - 1
        return self.line_times[index] if index >= 0 else None

    def instance(self, container_id: str) -> ContainerLog | None:
        """This log or the one before it, by container ID."""
        for log in (self, self.previous):
            if log is not None and log.container_id == container_id:
                return log
        return None


def lines_with_times(data: bytes | bytearray, start: int = 0) -> Iterator[tuple[bytes, int | None]]:
    """(line with its newline, time in ns or None) from byte offset ``start``."""
    stamped = data if isinstance(data, ContainerLog) else None
    raw = bytes(data)
    offset = start
    while offset < len(raw):
        end = raw.find(b"\n", offset)
        end = len(raw) if end == -1 else end + 1
        yield raw[offset:end], stamped.time_of(offset) if stamped is not None else None
        offset = end


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano as the kubelet's timestamps print it (UTC, nanoseconds with trailing zeros cut)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def parse_since_time(value: str) -> int:
    """sinceTime: RFC 3339 (seconds precision on the wire, metav1.Time); ns since the epoch."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise errors.bad_request(f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse') from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000


@dataclass
class Window:
    """Which lines of an instance a request wants and how each is printed."""

    since_ns: int | None = None
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None

    def render(self, data: bytes | bytearray, start: int = 0, whole: bool = True) -> bytes:
        now = time.time_ns()
        picked: list[bytes] = []
        for line, written in lines_with_times(data, start):
            at = written if written is not None else now
            if self.since_ns is not None and at < self.since_ns:
                continue
            picked.append((rfc3339_nano(at) + " ").encode() + line if self.timestamps else line)
        if whole and self.tail_lines is not None:
            picked = picked[-self.tail_lines:] if self.tail_lines else []
        text = b"".join(picked)
        return text[: self.limit_bytes] if whole and self.limit_bytes is not None else text


def _status_of(pod: Obj, container: str) -> Obj:
    status = pod.get("status") or {}
    for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        if entry.get("name") == container:
            return entry
    return {}


def previous_instance(pod: Obj, container: str, current: bytes | bytearray | None) -> bytes | bytearray:
    """The log of the container's last terminated instance, or the kubelet's error."""
    last = ((_status_of(pod, container).get("lastState") or {}).get("terminated") or {})
    container_id = last.get("containerID") or ""
    found = current.instance(container_id) if isinstance(current, ContainerLog) and container_id else None
    if found is None:
        raise errors.bad_request(
            f'previous terminated container "{container}" in pod "{pod["metadata"]["name"]}" not found')
    return found


def running_instance_id(pod: Obj | None, container: str) -> str | None:
    """The container ID of the instance running now (None when it is not running)."""
    if pod is None:
        return None
    state = _status_of(pod, container).get("state") or {}
    if "running" not in state:
        return None
    return _status_of(pod, container).get("containerID") or ""
