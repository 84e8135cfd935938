"""Command line: ``python -m probe [--config FILE | --config-json JSON]``; one JSON document on stdout."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from probe import __version__
from probe.config import ConfigError
from probe.report import render
from probe.runner import ConfigSource, run_probe
from probe.sdk import azure_identity_check

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn, TextIO

    from probe.sdk import SdkCheck
    from probe.transport import Transport


def _parser() -> argparse.ArgumentParser:
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise ConfigError("command line", message)

    parser = _Parser(prog="python -m probe", description="Entra Workload ID in-pod probe (prints wi-probe/v1 JSON).")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", metavar="FILE", help="JSON config file")
    group.add_argument("--config-json", metavar="JSON", help="JSON config inline")
    parser.add_argument("--version", action="version", version=f"wi-probe {__version__}")
    return parser


def parse_args(argv: Sequence[str]) -> ConfigSource:
    if not argv:  # the harness's pods pass the config in WI_PROBE_CONFIG: no parser to import and build
        return ConfigSource()
    try:
        args = _parser().parse_args(list(argv))
    except ConfigError as exc:
        return ConfigSource(error=exc)
    return ConfigSource(config_json=args.config_json, config_file=args.config)


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    transport: Transport | None = None,
    sdk_check: SdkCheck | None = azure_identity_check,
    clock: Callable[[], float] = time.time,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run the probe; exit code 0 when every step passed, 1 otherwise. ``monotonic``/``sleep`` time the steps and
    the retries' waits (tests pass a fake pair)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    source = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_probe(source, os.environ if environ is None else environ, transport, sdk_check, clock,
                       monotonic, sleep)
    if result.config_error is not None:
        print(f"wi-probe: {result.config_error}", file=err)
    out.write(render(result.doc, result.sensitive) + "\n")
    out.flush()
    return 0 if result.doc["ok"] else 1
