"""``python -m harness``: commands around the suites (which run under pytest).

* ``report render RUN.json --format md|html [-o FILE]`` re-renders one run's sign-off (stdout without -o);
* ``report merge RUN.json... -o DIR [--expect CLUSTER]...`` writes one sign-off over several runs (a fleet) as
  DIR/signoff.md and DIR/signoff.html; an expected cluster without a run fails the fleet;
* ``manifests render --config harness.yaml --out DIR [--probes-only]`` writes the Job, its ServiceAccount and
  RBAC, and a probe pod per workload for ``kubectl apply`` (:mod:`harness.shipping`); ``--probes-only`` the probe
  pods alone;
* ``findings [--format md|text]`` prints the findings catalogue (harness.findings): docs/findings.md is
  ``python -m harness findings --format md > docs/findings.md``; ``findings CODE...`` one code's layer,
  severity, meaning and fix (any case; a prefix lists its codes; a code it does not know is one line with the
  closest, exit status 2), as a troubleshooter types it after reading a code in the run's output;
  ``findings AADSTS700213`` the findings an Entra error code (from an app's log) points to.

Bad input (a missing file, a file that is not a run.json or breaks its schema, an output that cannot be
written, standard output redirected to a full or read-only disk) is one line on stderr naming the file and the
cause, and exit status 2, as for argparse's usage errors (a pipe its reader closed, ``| head``, ends it quietly).
``report merge`` exits 1 when the fleet verdict is FAIL (the sign-off still written), 0 when it is PASS, as the
suites do for one run.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import sys
import textwrap
from pathlib import Path

from harness.findings import BY_CODE, CATALOGUE, Entry, render_markdown, render_text
from harness.redact import Redactor
from harness.report.signoff import (
    FORMATS,
    SIGNOFF_FILES,
    ReportInputError,
    fleet_view,
    load_run,
    render,
    render_fleet,
    write_documents,
)

USAGE_ERROR = 2
FLEET_FAILED = 1  # the suites' exit status for a FAIL verdict (README's CI section): a fleet's CI step fails with it
PROG = "python -m harness"


def _path(value: str) -> Path:
    """A path argument; an empty one (a CI's "$VAR" unset) would be the current directory, so it is refused."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty (an unset variable?)")
    return Path(value)


def _text(value: str) -> str:
    """A value that replaces one of harness.yaml's: an empty one ("$IMAGE" unset) would silently keep the file's."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty (an unset variable?): name one, or leave the option out")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="wi-harness commands (the suites run under pytest)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = commands.add_parser("report", help="render or merge run reports (run.json) into sign-offs")
    actions = report.add_subparsers(dest="action", required=True, metavar="ACTION")
    render_cmd = actions.add_parser("render", help="render one run.json as a sign-off (Markdown or HTML)")
    render_cmd.add_argument("run", type=_path, metavar="RUN.json", help="the run's run.json (-: read it from stdin)")
    render_cmd.add_argument("--format", choices=FORMATS, required=True)
    render_cmd.add_argument("-o", "--output", type=_path, metavar="FILE", help="write here (default, or -: stdout)")
    merge_cmd = actions.add_parser(
        "merge", help="one sign-off over several runs (clusters): DIR/signoff.md, .html"
    )
    merge_cmd.add_argument("runs", type=_path, nargs="+", metavar="RUN.json")
    merge_cmd.add_argument("-o", "--output", type=_path, required=True, metavar="DIR")
    merge_cmd.add_argument(
        "--expect", action="append", default=[], type=_text, metavar="CLUSTER",
        help="a cluster (by name) that must have a run: without one the fleet verdict is FAIL (repeatable)",
    )
    manifests = commands.add_parser("manifests", help="Kubernetes manifests for a harness.yaml")
    manifests_actions = manifests.add_subparsers(dest="action", required=True, metavar="ACTION")
    render_manifests = manifests_actions.add_parser(
        "render", help="the harness's Job, ServiceAccount, RBAC, and a probe pod per workload, into DIR"
    )
    render_manifests.add_argument("--config", type=_path, required=True, metavar="harness.yaml")
    render_manifests.add_argument("--out", type=_path, required=True, metavar="DIR")
    render_manifests.add_argument("--image", type=_text, metavar="IMAGE",
                                  help="the harness image, in place of harness.image")
    render_manifests.add_argument(
        "--probes-only", action="store_true",
        help="only DIR/probes/ (a probe pod per workload, for kubectl apply by hand): no harness: section needed",
    )
    render_manifests.add_argument(
        "--namespace", dest="namespaces", action="append", default=[], metavar="NS",
        help="a namespace the Job may create probe pods in, besides the workloads' (repeatable); with no "
             "workloads in harness.yaml, the namespaces the Job's run covers",
    )
    findings = commands.add_parser(
        "findings", help="the catalogue of finding codes (docs/findings.md), or what one code means and its fix"
    )
    findings.add_argument(
        "codes", nargs="*", metavar="CODE",
        help="a finding code from a run (e.g. SA_NOT_FOUND; any case): its meaning and fix; a prefix (FIC_) lists "
             "its codes",
    )
    findings.add_argument("--format", choices=("md", "text"), default="text", help="the whole catalogue's format")
    return parser


class _StdoutFailed(Exception):
    """Standard output could not be written (``> docs/findings.md`` on a full disk, ``| head`` closed)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _emit(text: str) -> None:
    """Write to standard output and flush now, so that a failing write is met here and not at exit."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        raise _StdoutFailed(exc) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except _StdoutFailed as failed:
        with contextlib.suppress(OSError, ValueError):  # what is still buffered goes nowhere at exit, instead of
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # failing again there with a traceback
        if isinstance(failed.error, BrokenPipeError):  # its reader had what it wanted (| head)
            return 1
        command = " ".join(part for part in (args.command, getattr(args, "action", None)) if part)
        print(f"{PROG} {command}: error: cannot write to standard output: {failed.error.strerror or failed.error}",
              file=sys.stderr)
        return USAGE_ERROR


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "findings":
        if args.codes:
            return _describe_codes(args.codes)
        _emit(render_markdown() if args.format == "md" else render_text())
        return 0
    if args.command == "manifests":
        return _render_manifests(args.config, args.out, args.image, args.namespaces, args.probes_only)
    try:
        if args.action == "render":
            return _render(args.run, args.format, args.output)
        return _merge(args.runs, args.output, args.expect)
    except ReportInputError as exc:
        print(f"{PROG} report {args.action}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


def _describe_codes(codes: list[str]) -> int:
    """Each code's entry of the catalogue; an unknown one is one line on stderr (with the closest codes) and exit
    status 2 once every code was looked up."""
    status = 0
    for asked in codes:
        code = asked.strip().upper().replace("-", "_")
        if code in BY_CODE:
            _emit(_describe(BY_CODE[code]))
            continue
        # as a log line prints it ("AADSTS700213: ..."), or its number alone (the sign-in logs' error code column)
        aadsts = _AADSTS_RE.fullmatch(code.rstrip(":.")) or _AADSTS_RE.fullmatch("AADSTS" + code.rstrip(":."))
        if aadsts is not None:  # an Entra error code read in the app's log: the findings that name it
            named = [entry for entry in CATALOGUE if aadsts.group(1) in _aadsts_numbers(entry.meaning)]
            if named:
                _emit("".join(_describe(entry) for entry in named))
                continue
            print(f"{PROG} findings: error: {aadsts.group(0)} is an Entra error code no finding names "
                  "(python -m harness findings lists them all)", file=sys.stderr)
            status = USAGE_ERROR
            continue
        prefixed = [entry for entry in CATALOGUE if code and entry.code.startswith(code)]
        if prefixed:
            _emit("".join(f"{e.code:<34} {e.layer:<15} {e.severity:<14} {e.meaning}\n" for e in prefixed))
            continue
        close = difflib.get_close_matches(code, list(BY_CODE), n=3, cutoff=0.6)
        hint = f": did you mean {' or '.join(close)}?" if close else ": python -m harness findings lists them all"
        print(f"{PROG} findings: error: {asked!r} is no finding code{hint}", file=sys.stderr)
        status = USAGE_ERROR
    return status


_AADSTS_RE = re.compile(r"AADSTS(\d{5,8})")
_AADSTS_NAMED_RE = re.compile(r"AADSTS(\d+(?:/\d+)*)")


def _aadsts_numbers(text: str) -> set[str]:
    """The AADSTS numbers a catalogue text names ("AADSTS70021/70025": both)."""
    return {number for match in _AADSTS_NAMED_RE.finditer(text) for number in match.group(1).split("/")}


def _describe(entry: Entry) -> str:
    def para(label: str, text: str) -> list[str]:
        return textwrap.wrap(text, 100, initial_indent=f"  {label:<9}", subsequent_indent=" " * 11)

    lines = [f"{entry.code} ({entry.layer}, {entry.severity.replace('|', ' or ')})",
             *para("meaning", entry.meaning), *para("fix", entry.fix)]
    if entry.advice_only:
        lines += para("", f"Advice only, no command repairs it: {entry.advice_only}")
    lines.append("  the run's output (terminal, run.json, sign-off) prints the commands for your cluster")
    return "\n".join(lines) + "\n"


def _render_manifests(
    config_path: Path, out_dir: Path, image: str | None, namespaces: list[str], probes_only: bool = False
) -> int:
    from harness.config import ConfigError
    from harness.shipping import RenderError, load_for_render, render_bundle

    try:
        config, raw = load_for_render(config_path)
        written = render_bundle(config, raw, out_dir, image, namespaces, probes_only=probes_only)
    except (ConfigError, RenderError) as exc:
        print(f"{PROG} manifests render: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    for item in written:
        print(f"wrote {item.path} ({', '.join(item.kinds)})", file=sys.stderr)
    return 0


def _render(run: Path, fmt: str, output: Path | None) -> int:
    if output is not None and output.exists() and output.resolve() == run.resolve():
        raise ReportInputError(f"{output}: is the run.json being rendered: writing the sign-off there would replace it")
    text = Redactor().text(render(load_run(run), fmt))
    if output is None or str(output) == "-":  # -o -: stdout, as for most commands, not a file named '-'
        _emit(text)
        return 0
    _write(output, text)
    print(f"wrote {output}", file=sys.stderr)
    return 0


def _merge(runs: list[Path], out_dir: Path, expected: list[str] | None = None) -> int:
    documents = []
    seen: dict[str, Path] = {}
    for path in runs:
        document = load_run(path)
        earlier = seen.get(document["run_id"])
        if earlier is not None:
            raise ReportInputError(f"{path}: run {document['run_id']} is given twice (also {earlier})")
        seen[document["run_id"]] = path
        documents.append(document)
    _output_dir(out_dir)
    scrub = Redactor().text
    paths = [out_dir / SIGNOFF_FILES[fmt] for fmt in FORMATS]
    try:
        write_documents(out_dir, {fmt: render_fleet(documents, fmt, expected or ()) for fmt in FORMATS}, scrub)
    except OSError as exc:
        raise ReportInputError(f"{out_dir}: cannot write there (its sign-offs left as they were): "
                               f"{exc.strerror or exc}") from None
    fleet = fleet_view(documents, expected or ())
    print(f"fleet verdict {fleet.verdict.upper()}: {fleet.summary}; wrote {', '.join(str(p) for p in paths)}",
          file=sys.stderr)
    if fleet.table.note:  # a cluster expected without a run; several runs of one cluster: each counts
        print(fleet.table.note, file=sys.stderr)
    run_clusters = {run.cluster_key[0] for _, runs_of in fleet.clusters for run in runs_of}
    for name in dict.fromkeys(expected or ()):
        close = difflib.get_close_matches(name, sorted(run_clusters), n=1, cutoff=0.6) if name not in run_clusters else []
        if close:  # --expect aks-prod-eu for a run of aks-prod-weu: a typo, not a job that failed
            print(f"--expect {name}: no run of that name; did you mean {close[0]}?", file=sys.stderr)
    return 0 if fleet.verdict == "pass" else FLEET_FAILED


def _output_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportInputError(f"{out_dir}: is a file, not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportInputError(f"{out_dir}: cannot create the directory: {exc.strerror or exc}") from None


def _write(output: Path, text: str) -> None:
    """``output`` replaced whole or left as it was: a failed write never leaves a sign-off cut short."""
    from harness.input_files import write_text_replacing

    if output.is_dir():
        raise ReportInputError(f"{output}: is a directory, not a file")
    parent = output.parent
    if not parent.is_dir():
        what = "is a file, not a directory" if parent.exists() else "does not exist"
        raise ReportInputError(f"{output}: cannot write: the directory {parent} {what}")
    try:
        write_text_replacing(output, text)
    except OSError as exc:
        raise ReportInputError(f"{output}: cannot write (left as it was): {exc.strerror or exc}") from None
