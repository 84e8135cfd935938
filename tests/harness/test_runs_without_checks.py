"""A pytest command that runs no check (``--collect-only`` to see the check ids, a ``-k`` that selects nothing)
writes no run and leaves nothing in the report directory."""

from __future__ import annotations

import pytest
from fakeworld import World
from test_plugin import project

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("options", [("--collect-only", "-q"), ("-k", "no_check_is_named_this")])
def test_a_command_that_runs_no_check_leaves_no_report_directory(pytester: pytest.Pytester,
                                                                 options: tuple[str, ...]) -> None:
    """Before: each such command left reports/<run-id>/ holding only a junit.xml of no test (the harness's default
    --junitxml path), so `ls reports/` listed runs without run.json. A --junitxml the person names is still
    written."""
    project(pytester, World.healthy())
    out = pytester.path / "out"
    pytester.runpytest("suites", "--config", "harness.yaml", "--report-dir", "out", *options)
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else []) == []
    pytester.runpytest("suites", "--config", "harness.yaml", "--report-dir", "out", *options,
                       "--junitxml", "mine.xml")
    assert (pytester.path / "mine.xml").exists()
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else []) == []
