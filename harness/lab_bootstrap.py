"""The ONE place the harness touches the lab: start it for ``--lab`` and hand back its harness.yaml."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class LabUnavailable(RuntimeError):
    """The embedded lab could not be started."""


@dataclass
class EmbeddedLab:
    running: Any  # lab.bootstrap.RunningLab
    state_dir: Path

    @property
    def config_path(self) -> Path:
        return Path(self.running.harness_config)

    def stop(self, remove_state: bool = True) -> None:
        try:
            self.running.stop()
        finally:
            if remove_state:
                shutil.rmtree(self.state_dir, ignore_errors=True)


def start_embedded_lab(
    scenario: str = "healthy", webhook_layout: str | None = None, parent: Path | None = None
) -> EmbeddedLab:
    try:
        from lab.bootstrap import LabStartError, start_lab
    except ImportError as exc:  # the harness installed without the lab package
        raise LabUnavailable(f"the lab package is not importable ({exc}); use --config instead") from None
    state_dir = Path(tempfile.mkdtemp(prefix="wi-harness-lab-", dir=str(parent) if parent else None))
    try:
        running = start_lab(state_dir, scenario=scenario, webhook_layout=webhook_layout)
    except (LabStartError, OSError, ValueError) as exc:
        raise LabUnavailable(f"{exc} (state kept in {state_dir})") from None
    return EmbeddedLab(running, state_dir)
