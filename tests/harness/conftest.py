"""Fixtures for the harness's tests: a fake world (kube + webhook + kubelet running the real probe, ARM,
issuer) and helpers to collect and analyse it without any server."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def _load_kubernetes_client_eagerly() -> None:
    """pytester's in-process runs (test_plugin.py) restore sys.modules afterwards, dropping every module first
    imported inside them. The `kubernetes` client imports its API and model modules lazily, so a model class
    first loaded inside such a run would be loaded again later as a second, different class, and the client's
    pydantic-validated methods would refuse it in the lab tests that share this worker. Load them all now."""
    import kubernetes.client

    for name in kubernetes.client.__all__:
        getattr(kubernetes.client, name)


_load_kubernetes_client_eagerly()

from fakeworld import World  # noqa: E402

from harness.analysis import RunResults, analyse  # noqa: E402
from harness.collect.run import Selection, collect_run  # noqa: E402
from harness.config import HarnessConfig, parse_config  # noqa: E402
from harness.redact import Redactor  # noqa: E402
from lab.bootstrap import RunningLab, start_lab  # noqa: E402


@pytest.fixture
def run_world(tmp_path: Path) -> Callable[..., tuple[RunResults, HarnessConfig]]:
    """Collect and analyse a World; returns (results, config)."""

    def run(world: World, azure: bool = True, keep: bool = False) -> tuple[RunResults, HarnessConfig]:
        config = parse_config(world.config(tmp_path, azure=azure), base_dir=tmp_path)
        backend = world.backend()
        if not azure:
            backend.arm = None
        selection = Selection(workloads=config.workloads)
        facts = collect_run(backend, config, selection, "run-1", config.probe.resolved_image, keep=keep)
        return analyse(facts, config, config.workloads, "lab", Redactor(config.secrets()), keep=keep), config

    return run


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RunningLab]:
    """A lab of its own for one test module (``python -m lab up`` as a child process), for tests that change it
    through its public APIs and ``lab ctl``; stopped when the module's tests are done."""
    lab = start_lab(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    try:
        yield lab
    finally:
        lab.stop()
