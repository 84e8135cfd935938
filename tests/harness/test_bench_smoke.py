"""The benchmarks in bench/ cannot rot: each runs its smallest configuration against one lab and reports what it
measures (a passing run, the ratios it prints)."""

from __future__ import annotations

import re

import pytest

from bench import fanout, inventory, lab_api, probe_start
from bench.world import bench_lab

pytestmark = pytest.mark.slow


def _number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s+([0-9.]+)", text)
    assert match, f"{label!r} not in:\n{text}"
    return float(match.group(1))


def test_every_bench_runs_its_smallest_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    with bench_lab() as lab:
        assert fanout.measure(lab, fanout.parse(["--counts", "1", "--pod-start", "0"])) == 0
        fanned = capsys.readouterr().out
        assert re.search(r"^  1\s+[0-9.]+\s+1\.00\s", fanned, re.MULTILINE), fanned
        assert "(1 pass)" in fanned

        assert probe_start.measure(lab, probe_start.parse(["--runs", "1"])) == 0
        probed = capsys.readouterr().out
        assert "the probe's verdict: ok=True" in probed
        assert _number_after("probe run (python3 -m probe: exchange + 1 Key Vault read)", probed) > 0

        assert lab_api.measure(lab, lab_api.parse(["--clients", "2", "--seconds", "0.3"])) == 0
        served = capsys.readouterr().out
        assert _number_after("entra  POST token (federated exchange)", served) > 0

        assert inventory.measure(lab, inventory.parse(["--identities", "2", "--latency-ms", "20", "--runs", "1"])) == 0
        listed = capsys.readouterr().out
        assert _number_after("T(inventory) / T(round trip)", listed) > 1
        assert lab.ctl("status", {})["faults"]["services"]["arm"]["latency_ms"] == 0  # the bench set ARM back
