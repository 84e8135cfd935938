"""Background tasks on the lab's event loop: each one is referenced until it ends (so the garbage collector
cannot drop it half-way) and its exception, if any, is read and logged rather than left unretrieved."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("lab")

_running: set[asyncio.Task] = set()


def spawn(coro: Coroutine[Any, Any, Any], name: str | None = None,
          expected: tuple[type[BaseException], ...] = ()) -> asyncio.Task:
    """Start ``coro`` as a task; an exception other than ``expected`` ones is logged when it ends."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)

    def collect(done: asyncio.Task) -> None:
        _running.discard(done)
        if done.cancelled():
            return
        exc = done.exception()
        if exc is not None and not isinstance(exc, expected):
            log.error("lab task %s failed", done.get_name(), exc_info=exc)

    task.add_done_callback(collect)
    return task
