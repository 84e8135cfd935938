"""Compute something once per run even under xdist: the first process to get the lock computes and writes
JSON; the others wait on the lock and read it."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def compute_once(path: Path, compute: Callable[[], Any]) -> Any:
    """The JSON value stored at ``path``, computing and storing it first if no process has yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.exists():
                return json.loads(path.read_text())
            value = compute()
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(json.dumps(value))
            os.replace(tmp, path)
            return value
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
