"""``wi-harness``: the verification suites from any directory, with the options of ``pytest suites``.

``wi-harness --lab`` is ``pytest suites --lab``, ``wi-harness --config harness.yaml -n 4`` is ``pytest suites
--config harness.yaml -n 4``: the suites are found where the package is installed (a wheel carries them, beside
``harness/``), so a Job image or a CI runner needs no checkout. Arguments that name tests inside the suites
(``suites/test_workloads.py``, ``test_cluster.py::test_cluster``) are taken relative to the installed suites.

One option of its own: ``--print-run-json`` prints the run's run.json (as written: redacted) as ONE line on
stdout at the end, after :data:`RUN_JSON_TAG`, so the report of a Job comes back through ``kubectl logs``::

    kubectl logs job/wi-harness | sed -n 's/^WI-HARNESS-RUN-JSON //p' > run.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RUN_JSON_TAG = "WI-HARNESS-RUN-JSON"
PRINT_RUN_JSON = "--print-run-json"
SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
# pytest's cache plugin's options: wi-harness runs without the cache (see main)
CACHE_OPTIONS = ("--lf", "--last-failed", "--ff", "--failed-first", "--nf", "--new-first", "--sw", "--stepwise",
                 "--sw-skip", "--stepwise-skip", "--sw-reset", "--stepwise-reset", "--lfnf", "--last-failed-no-failures",
                 "--cache-show", "--cache-clear")


def suite_arguments(args: list[str], suites_dir: Path = SUITES_DIR) -> list[str]:
    """``args`` with the installed suites added: a test path (``suites/x.py::t``, ``x.py``) is mapped into
    ``suites_dir``; without one, the whole directory runs."""
    mapped: list[str] = []
    named_tests = False
    for arg in args:
        path, sep, rest = arg.partition("::")
        name = path.removeprefix("suites/").removeprefix("suites")
        if not arg.startswith("-") and (path.endswith(".py") or path in ("suites", "suites/")) and (
            name == "" or (suites_dir / name).is_file()
        ):
            mapped.append(str(suites_dir / name) + sep + rest if name else str(suites_dir))
            named_tests = True
        else:
            mapped.append(arg)
    return mapped if named_tests else [str(suites_dir), *mapped]


class _RunJsonPrinter:
    """After the terminal summary: the run.json the harness wrote, on one tagged line."""

    def __init__(self) -> None:
        self.printed = False

    def pytest_unconfigure(self, config: Any) -> None:
        recorder = config.pluginmanager.get_plugin("wi-harness-recorder")
        path = getattr(recorder, "path", None)
        if path is None:
            return
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"{RUN_JSON_TAG}-ERROR cannot read {path}: {exc}", flush=True)
            return
        print(f"{RUN_JSON_TAG} {json.dumps(document, separators=(',', ':'), ensure_ascii=True)}", flush=True)
        self.printed = True


def main(argv: list[str] | None = None) -> int:
    import pytest

    args = list(sys.argv[1:] if argv is None else argv)
    plugins: list[Any] = []
    if PRINT_RUN_JSON in args:
        args = [arg for arg in args if arg != PRINT_RUN_JSON]
        plugins.append(_RunJsonPrinter())
    cached = next((arg for arg in args if arg.split("=", 1)[0] in CACHE_OPTIONS), None)
    if cached is not None:
        print(f"wi-harness: {cached.split('=', 1)[0]} needs pytest's cache, which wi-harness leaves off (the installed "
              "suites may be read-only): run pytest suites with it from a checkout, or name the checks "
              "(-k, --workload)", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    if not SUITES_DIR.is_dir():
        print(f"wi-harness: the suites are not installed with the package (no {SUITES_DIR})", file=sys.stderr)
        return 2
    # -p harness.plugin: outside the repository no conftest loads it; no cache: the suites' directory may be
    # read-only (site-packages in an image with a read-only root filesystem)
    pytest_args = ["-p", "harness.plugin", "-p", "no:cacheprovider", *suite_arguments(args)]
    return int(pytest.main(pytest_args, plugins=plugins))


if __name__ == "__main__":
    raise SystemExit(main())
