"""Start a lab as a child process and wait until its state dir is ready (the harness's ``--lab``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class LabStartError(RuntimeError):
    pass


@dataclass
class RunningLab:
    process: subprocess.Popen
    state_dir: Path

    @property
    def harness_config(self) -> Path:
        return self.state_dir / "harness.yaml"

    def info(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "lab.json").read_text())

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_lab(state_dir: Path, scenario: str = "healthy", webhook_layout: str | None = None,
              timeout: float = 90) -> RunningLab:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "lab.json").unlink(missing_ok=True)
    log = open(state_dir / "lab.log", "ab")  # noqa: SIM115 - handed to the child for its lifetime
    command = [sys.executable, "-m", "lab", "up", "--state-dir", str(state_dir), "--scenario", scenario]
    if webhook_layout:
        command += ["--webhook-layout", webhook_layout]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / "lab.json").exists():
            return RunningLab(process, state_dir)
        if process.poll() is not None:
            tail = (state_dir / "lab.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise LabStartError(f"the lab exited with code {process.returncode}: {' | '.join(tail)}")
        time.sleep(0.1)
    process.kill()
    raise LabStartError(f"the lab did not become ready within {timeout:.0f}s (see {state_dir / 'lab.log'})")
