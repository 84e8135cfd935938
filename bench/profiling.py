"""Sampling profiles of the lab and the harness during a bench run (py-spy, when installed: ``pip install py-spy``).

py-spy's raw output is one collapsed stack per line with its sample count; :func:`summary` turns it into the
functions that hold the CPU (self samples) and the ones whose callees do (inclusive samples).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

RATE = 50  # samples a second: low enough not to slow 2 cores down noticeably


def available() -> bool:
    return shutil.which("py-spy") is not None


def wrap(command: list[str], output: Path) -> list[str]:
    """``command`` run under py-spy (its subprocesses too), writing raw collapsed stacks to ``output``."""
    return ["py-spy", "record", "--nonblocking", "--idle", "-r", str(RATE), "-s", "-f", "raw", "-o", str(output), "--",
            *command]


class Attached:
    """py-spy recording a running process (and its subprocesses) until :meth:`stop`."""

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        self.process = subprocess.Popen(
            ["py-spy", "record", "--nonblocking", "-r", str(RATE), "-s", "-f", "raw", "-o", str(output),
             "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _frame(frame: str) -> str:
    """``function (module.py:line)`` -> ``function (module.py)``: lines of one function added up."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summary(raw: Path, top: int = 15) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        processes[frames[0]] += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            inclusive[frame] += count
    if not total:
        return f"{raw.name}: no samples"
    lines = [f"{raw.name}: {total} samples at {RATE}/s (~{total / RATE:.1f} CPU-or-wait seconds)",
             "  by process:"]
    lines += [f"    {n * 100 / total:5.1f}%  {name[:100]}" for name, n in processes.most_common(6)]
    lines.append("  self:")
    lines += [f"    {n * 100 / total:5.1f}%  {name[:100]}" for name, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {n * 100 / total:5.1f}%  {name[:100]}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)
