"""Shared fixtures: one lab per test session (per xdist worker), plus clients aimed at it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.runtime import Lab, LabThread


@pytest.fixture(scope="session")
def lab_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabThread]:
    running = LabThread(tmp_path_factory.mktemp("lab"), scenario="healthy")
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def lab(lab_thread: LabThread) -> Lab:
    return lab_thread.lab


@pytest.fixture(scope="session")
def kubeconfig(lab: Lab) -> Path:
    return lab.state_dir / "kubeconfig"


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path):
    """An ApiClient of the official `kubernetes` package, loaded from the lab's kubeconfig."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """Run the real kubectl against the lab: kubectl("get", "pods", "-A", input=None, check=True)."""
    home = tmp_path_factory.mktemp("kubectl-home")  # kubectl's discovery cache must not outlive this lab

    def run(*args: str, input: str | None = None, check: bool = True, timeout: float = 60):
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
        result = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, env=env,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    return run
