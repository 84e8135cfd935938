"""The pytest plugin behind ``pytest suites --lab`` and ``--config harness.yaml`` (root conftest enables it).

Inert unless ``--lab`` or ``--config`` is given; running ``suites/`` without either is a usage error. Under
xdist the controller starts the lab (if any), picks the run id and writes run.json; workers share one
collection of facts (and so one set of probe pods) through a file lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import pytest

from harness import fixtures
from harness.analysis import config_target
from harness.checks.cluster import CLUSTER_CHECK_IDS
from harness.checks.inventory import INVENTORY_CHECK_IDS
from harness.checks.migration import MIGRATION_CHECK_IDS
from harness.checks.workload import POD_CHECK_IDS, workload_check_ids
from harness.collect.cache import KUBE_WORKERS, read_all
from harness.collect.kube_api import KubeError, OfficialKubeApi, kube_target_problem, kubectl_elsewhere
from harness.collect.probe_pods import delete_run_pods
from harness.config import ConfigError, HarnessConfig, load_config
from harness.lab_bootstrap import LabUnavailable, start_embedded_lab
from harness.names import RUN_ID_LABEL
from harness.redact import Redactor
from harness.report.run_json import build_run, point_latest, rfc3339, write_run
from harness.report.summary import summary_lines
from harness.report.troubleshoot import encodable, marks_for, troubleshooting_lines
from harness.session import (
    DISCOVERY_FILE,
    BadReference,
    HarnessSession,
    discover,
    new_run_id,
    parse_namespace,
    parse_ref,
    run_secrets,
    whole_cluster,
    workloads_for,
)
from harness.shared import compute_once
from harness.values import counted, image_reference_problem, printable, shorten

SESSION = pytest.StashKey[HarnessSession]()
PAYLOAD = pytest.StashKey[dict[str, Any]]()
PREVIOUS_SIGTERM = pytest.StashKey[Any]()
PREVIOUS_SIGINT = pytest.StashKey[Any]()
NO_TARGET = (
    "the verification suites need a target: pass --lab (start the embedded lab) or "
    "--config harness.yaml (a real cluster and Azure scope)"
)
SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wi-harness", "Entra Workload ID verification (suites/)")
    group.addoption("--lab", action="store_true", help="start the embedded lab for this session and test it")
    group.addoption(
        "--lab-scenario", default=None, metavar="NAME", help="lab scenario (default healthy)"
    )
    group.addoption(
        "--lab-webhook-layout",
        choices=["v1.5", "v1.6", "pr1749"],
        default=None,
        help="token layout of the lab's webhook (default: the lab's, v1.5: the /tokens path AKS ships)",
    )
    group.addoption(
        "--config",
        dest="wi_config",
        default=None,
        metavar="PATH",
        help="harness.yaml: kube context, Azure scope, workloads",
    )
    group.addoption(
        "--workload",
        dest="wi_workloads",
        action="append",
        default=[],
        metavar="NS/SA",
        help="only this workload (repeatable; need not be in harness.yaml)",
    )
    group.addoption(
        "--namespace",
        dest="wi_namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="whole-cluster run limited to this namespace (repeatable): every ServiceAccount there with the "
        "client-id annotation or the use label (or a misspelled client-id key), harness.yaml's entries there giving "
        "their access checks",
    )
    group.addoption(
        "--pod",
        dest="wi_pods",
        action="append",
        default=[],
        metavar="NS/POD",
        help="check this existing pod as admitted (labelled, mutated), then a probe pod under its ServiceAccount "
             "(repeatable)",
    )
    group.addoption(
        "--report-dir",
        dest="wi_report_dir",
        default="reports",
        metavar="DIR",
        help="where <run-id>/run.json goes (default reports/)",
    )
    group.addoption(
        "--keep",
        dest="wi_keep",
        action="store_true",
        help="leave probe pods (and the lab's state dir) for inspection",
    )
    group.addoption(
        "--sweep",
        dest="wi_sweep",
        action="store_true",
        help="first delete probe pods (and their ConfigMaps) left behind by earlier runs (by label)",
    )
    group.addoption(
        "--probe-image",
        dest="wi_probe_image",
        default=None,
        metavar="IMAGE",
        help="the probe pods' image, in place of probe.image (probe.mode stays: configmap runs python3 -m probe "
        "from the run's ConfigMap in it, image runs its own entrypoint)",
    )


def suites_requested(config: pytest.Config) -> bool:
    base = Path(config.invocation_params.dir)
    roots = {SUITES_DIR, (Path(config.rootpath) / "suites").resolve()}
    for arg in config.args:
        path = (base / str(arg).split("::", 1)[0]).resolve()
        if any(path == root or root in path.parents for root in roots):
            return True
    return False


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption("lab") or config.getoption("wi_config"))


def _informational(config: pytest.Config) -> bool:
    """--help, --version, --fixtures: nothing runs, so no target is needed (and no lab is started)."""
    option = config.option
    return any(
        getattr(option, name, False) for name in ("help", "version", "showfixtures", "show_fixtures_per_test")
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if _informational(config):
        return
    if not _active(config):
        if suites_requested(config):
            if config.getoption("wi_config") is not None:  # --config "$CONFIG" with the variable unset
                raise pytest.UsageError("--config is empty (an unset variable?): name the harness.yaml to use")
            raise pytest.UsageError(NO_TARGET)
        return
    fixtures.keep_for_the_run()  # what is loaded by now (the kubernetes client, pydantic's schemas)
    _interrupt_on_sigterm(config)
    config.pluginmanager.register(fixtures, "wi-harness-fixtures")
    try:
        session = _worker_session(config) if hasattr(config, "workerinput") else _controller_session(config)
    except BaseException:
        _restore_sigterm(config)
        raise
    config.stash[SESSION] = session
    if not session.is_worker:
        config.pluginmanager.register(RunRecorder(session), "wi-harness-recorder")
        if getattr(config.option, "xmlpath", None) is None and hasattr(config.option, "xmlpath"):
            config.option.xmlpath = str(session.run_dir / "junit.xml")


def _interrupt_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM (a CI job cancelled, ``kill``, ``timeout``, a pod evicted) ends the run as Ctrl-C does, through
    pytest's KeyboardInterrupt path: probe pods are deleted, the shared directory with its lock and the lab are
    removed, and a report is still written (verdict FAIL: an interrupted run never passes). The default action
    would kill the process and leave all of them behind. The first SIGINT or SIGTERM interrupts; later ones, while
    that clean-up runs (Ctrl-C pressed twice, a CI runner's TERM after a person's Ctrl-C), are noted on stderr and
    let it finish, instead of breaking it off half way with a traceback and the pods left behind. In each xdist
    worker too (the worker that creates the probe pods cleans them up)."""
    if threading.current_thread() is not threading.main_thread():
        return
    INTERRUPTED.clear()
    FINISHING.clear()
    try:
        config.stash[PREVIOUS_SIGTERM] = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        # Ctrl-C only where Python's own handler is in place (a SIGINT inherited as ignored stays ignored)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            config.stash[PREVIOUS_SIGINT] = signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        return


INTERRUPTED: list[str] = []  # the signal that interrupted this run, once one did
FINISHING: list[bool] = []  # every test has run: the report is being written, the run cleaned up


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    FINISHING.append(True)
    if INTERRUPTED and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        # The signal's KeyboardInterrupt never reached pytest (Python only prints an exception raised while a
        # finalizer runs, the likeliest place; unverified): the run was interrupted all the same, run.json says so,
        # and so does the exit status (2, as README's "CI" promises), never a 0 beside a FAIL verdict.
        session.exitstatus = pytest.ExitCode.INTERRUPTED


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if INTERRUPTED or FINISHING:  # already stopping, or every check ran: let the report and the clean-up finish
        sys.stderr.write(f"\nwi-harness: {name}: {'again: ' if INTERRUPTED else ''}still writing the run's report "
                         "and deleting its probe pods; kill -9 stops at once (then the next run's --sweep removes "
                         "what is left)\n")
        sys.stderr.flush()
        return
    INTERRUPTED.append(name)
    raise KeyboardInterrupt(f"stopped by signal {name}")


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Leave out of the interrupt's traceback any entry without a line number. CPython 3.11 can give a frame the
    signal landed in ``tb_lineno`` None, and pytest's terminal reporter then fails while showing the interrupt with
    a TypeError and its own traceback (seen here once under load; pytest-xdist#1196 shows the same failure)."""
    if any(tb.tb_lineno is None for tb in traceback_entries(excinfo.tb)):
        excinfo.traceback = excinfo.traceback.filter(lambda entry: entry._rawentry.tb_lineno is not None)


def traceback_entries(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _restore_sigterm(config: pytest.Config) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for key, signum in ((PREVIOUS_SIGTERM, signal.SIGTERM), (PREVIOUS_SIGINT, signal.SIGINT)):
        previous = config.stash.get(key, None)
        if previous is not None:
            signal.signal(signum, previous)
            del config.stash[key]


def _refs(config: pytest.Config, known: list[tuple[str, str]] | None = None
          ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """--workload and --pod values; ``known``: harness.yaml's workloads (NS, SA), named for a --workload given
    a ServiceAccount's name alone."""
    try:
        workloads = [parse_ref(v, "--workload", known or ()) for v in config.getoption("wi_workloads")]
        pods = [parse_ref(v, "--pod") for v in config.getoption("wi_pods")]
    except BadReference as exc:
        raise pytest.UsageError(str(exc)) from None
    _namespaces(config, bool(workloads or pods))
    return workloads, pods


def _namespaces(config: pytest.Config, refs_given: bool = False) -> list[str]:
    """--namespace values, each checked as harness.yaml's namespaces are; they narrow a whole-cluster run, so
    they do not go with --workload or --pod."""
    try:
        namespaces = [parse_namespace(v, "--namespace") for v in config.getoption("wi_namespaces")]
    except BadReference as exc:
        raise pytest.UsageError(str(exc)) from None
    if namespaces and refs_given:
        raise pytest.UsageError(
            "--namespace narrows a whole-cluster run: it does not go with --workload or --pod"
        )
    return list(dict.fromkeys(namespaces))


def _load(config_path: Path) -> HarnessConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _build(
    config: pytest.Config,
    harness_config: HarnessConfig,
    config_path: Path,
    run_id: str,
    started_at: str,
    target_kind: str,
    shared_dir: Path,
    is_worker: bool,
    discovery: dict[str, Any] | None = None,
) -> HarnessSession:
    workload_refs, pod_refs = _refs(config)
    given = config.getoption("wi_probe_image")
    if given is not None and not given.strip():  # --probe-image "$IMAGE" with the variable unset
        raise pytest.UsageError("--probe-image is empty (an unset variable?): name an image, or leave the option out "
                                "for probe.image")
    image = given or harness_config.probe.resolved_image
    problem = image_reference_problem(image)
    if problem is not None:
        raise pytest.UsageError(f"--probe-image: {problem} (got {printable(image, 80)!r})")
    return HarnessSession(
        config=harness_config,
        config_path=config_path,
        run_id=run_id,
        started_at=started_at,
        target_kind=target_kind,
        report_dir=_report_dir(config),
        shared_dir=shared_dir,
        image=image,
        keep=config.getoption("wi_keep"),
        sweep=config.getoption("wi_sweep"),
        workloads=workloads_for(harness_config, workload_refs, bool(pod_refs), discovery),
        pods=pod_refs,
        discovery=discovery,
        redactor=Redactor(run_secrets(harness_config, os.environ)),
        is_worker=is_worker,
    )


def _backend_overridden(config: pytest.Config) -> bool:
    """A conftest supplies its own ``wi_backend`` (the documented seam for fakes): no kubeconfig is used."""
    return any(
        getattr(plugin, "wi_backend", None) is not None
        for plugin in config.pluginmanager.get_plugins()
        if plugin is not fixtures
    )


def _report_dir(config: pytest.Config) -> Path:
    value = config.getoption("wi_report_dir")
    if not str(value).strip():  # --report-dir "$REPORT_DIR" with the variable unset: not the current directory
        raise pytest.UsageError("--report-dir is empty (an unset variable?): name a directory, or leave the option "
                                "out for reports/")
    return Path(config.invocation_params.dir) / value


def _check_report_dir(report_dir: Path) -> None:
    """A report directory that cannot be written is a usage error now, not a crash after every check ran."""
    if report_dir.exists() and not report_dir.is_dir():
        raise pytest.UsageError(f"--report-dir {report_dir}: is a file, not a directory")
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=report_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise pytest.UsageError(
            f"--report-dir {report_dir}: cannot write there: {exc.strerror or exc}"
        ) from None


def _check_junit_path(config: pytest.Config) -> None:
    """--junitxml where pytest cannot write (its junitxml makes the directory at the very end, and a traceback there
    took the summary and the verdict's exit status with it): a usage error now, before anything runs."""
    given = getattr(config.option, "xmlpath", None)
    if not given:
        return
    path = Path(os.path.abspath(os.path.expanduser(os.path.expandvars(given))))  # as pytest's LogXML takes it
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise pytest.UsageError(f"--junitxml {given}: {above} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise pytest.UsageError(f"--junitxml {given}: cannot write there: {exc.strerror or exc}") from None


def _kube_target(config: pytest.Config, harness_config: HarnessConfig, config_path: Path) -> Any:
    """The Kubernetes client for the run, built now: a kubeconfig, context, user, tokenFile or exec plugin that
    cannot be used is ONE usage error naming it, not one error per test later (nor a 401 that hides it). None
    when a conftest supplies its own ``wi_backend``."""
    if _backend_overridden(config):
        return None
    cluster = harness_config.cluster
    problem = kube_target_problem(cluster.kubeconfig, cluster.context)
    if problem is None:
        try:
            return OfficialKubeApi(cluster.kubeconfig, cluster.context)
        except KubeError as exc:
            problem = f"cluster.kubeconfig: {exc.failure.message}"
    redactor = Redactor(harness_config.secrets())  # an exec plugin's stderr may hold anything
    raise pytest.UsageError(redactor.text(f"cannot use the cluster from {config_path}: {problem}"))


def _checked_refs(config: pytest.Config) -> None:
    """Bad references fail before a lab is started or harness.yaml is used; a --workload that names a
    ServiceAccount alone is told harness.yaml's entries of that name, when harness.yaml can be read."""
    try:
        _refs(config)
    except pytest.UsageError:
        known = _known_workloads(config)
        if known:
            _refs(config, known)
        raise


def _known_workloads(config: pytest.Config) -> list[tuple[str, str]]:
    given = config.getoption("wi_config")
    if not given or config.getoption("lab"):
        return []
    try:
        harness_config = load_config((Path(config.invocation_params.dir) / given).resolve())
    except (ConfigError, OSError, ValueError):
        return []  # its own error comes later, in its own words
    return [(w.namespace, w.service_account) for w in harness_config.workloads]


def _controller_session(config: pytest.Config) -> HarnessSession:
    _checked_refs(config)  # bad references and an unwritable report directory fail before a lab is started
    _check_report_dir(_report_dir(config))
    _check_junit_path(config)
    lab_only = [f"--{name.replace('_', '-')}" for name in ("lab_scenario", "lab_webhook_layout")
                if config.getoption(name) is not None]
    if lab_only and not config.getoption("lab"):  # else silently a run of harness.yaml's target, healthy or not
        one = len(lab_only) == 1
        raise pytest.UsageError(f"{' and '.join(lab_only)} {'chooses' if one else 'choose'} the embedded lab's "
                                f"state: {'it needs' if one else 'they need'} --lab (this run reads harness.yaml's "
                                "target)")
    lab = None
    if config.getoption("lab"):
        if config.getoption("wi_config"):
            raise pytest.UsageError(
                "--lab and --config exclude each other: --lab writes its own harness.yaml"
            )
        try:
            lab = start_embedded_lab(config.getoption("lab_scenario") or "healthy",
                                     config.getoption("lab_webhook_layout"))
        except LabUnavailable as exc:
            raise pytest.UsageError(f"--lab: the lab did not start: {exc}") from None
        config_path = lab.config_path
    else:
        given = Path(config.invocation_params.dir) / config.getoption("wi_config")
        config_path = given.resolve()
        if not config_path.exists() and given.exists():
            # --config <(envsubst < harness.yaml): bash's /dev/fd/63 resolves to /proc/PID/fd/pipe:[N], which names
            # nothing; the path as given is read (and refused for what it is: a pipe, not a regular file)
            config_path = given
    shared_dir: Path | None = None
    try:
        harness_config = _load(config_path)
        is_lab = lab is not None or (
            harness_config.azure is not None and harness_config.azure.cloud.name == "lab"
        )
        kube = _kube_target(config, harness_config, config_path)
        run_id = new_run_id()
        shared_dir = Path(tempfile.mkdtemp(prefix=f"wi-harness-{run_id}-"))
        discovery = None
        workload_refs, pod_refs = _refs(config)
        if whole_cluster(harness_config, workload_refs, pod_refs, _namespaces(config)):
            # before any test is collected, once for every xdist worker (they read the file)
            namespaces = _namespaces(config)
            discovery = compute_once(shared_dir / DISCOVERY_FILE,
                                     lambda: discover(kube or _conftest_kube(config), namespaces))
        session = _build(
            config,
            harness_config,
            config_path,
            run_id,
            rfc3339(),
            "lab" if is_lab else "cluster",
            shared_dir,
            is_worker=False,
            discovery=discovery,
        )
        session.kube = kube
    except BaseException:
        if shared_dir is not None:
            shutil.rmtree(shared_dir, ignore_errors=True)
        if lab is not None:
            lab.stop()
        raise
    session.lab = lab
    return session


def _worker_session(config: pytest.Config) -> HarnessSession:
    data = config.workerinput  # type: ignore[attr-defined]
    config_path = Path(data["wi_config_path"])
    shared_dir = Path(data["wi_shared_dir"])
    discovered = shared_dir / DISCOVERY_FILE  # the controller's, when the run is whole-cluster
    return _build(
        config,
        _load(config_path),
        config_path,
        data["wi_run_id"],
        data["wi_started_at"],
        data["wi_target_kind"],
        shared_dir,
        is_worker=True,
        discovery=json.loads(discovered.read_text()) if discovered.exists() else None,
    )


def _conftest_kube(config: pytest.Config) -> Any:
    """The KubeApi a conftest that supplies its own ``wi_backend`` offers for a whole-cluster run's
    ServiceAccount list (a plain function ``wi_kube()``): fixtures do not exist yet when tests are
    parametrized."""
    for plugin in config.pluginmanager.get_plugins():
        factory = getattr(plugin, "wi_kube", None)
        if plugin is not fixtures and callable(factory):
            return factory()
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    session = node.config.stash.get(SESSION, None)
    if session is not None:
        node.workerinput.update(
            {
                "wi_config_path": str(session.config_path),
                "wi_run_id": session.run_id,
                "wi_started_at": session.started_at,
                "wi_target_kind": session.target_kind,
                "wi_shared_dir": str(session.shared_dir),
            }
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        fixtures.keep_for_the_run()  # the reports: pytest's closing gc.collect()s (five) need not walk them
    try:
        if session is None or session.is_worker:
            return
        shutil.rmtree(session.shared_dir, ignore_errors=True)
        recorder = config.pluginmanager.get_plugin("wi-harness-recorder")
        _delete_leftover_probe_pods(session, made=_may_have_made_pods(recorder, session))
        if session.lab is not None:
            session.lab.stop(remove_state=not session.keep)
    finally:
        _restore_sigterm(config)


LEFTOVER_RETRY_SECONDS = 6.0  # an API server that blinked at the end of the run (a restart, an upgrade's failover)


def _may_have_made_pods(recorder: Any, session: HarnessSession) -> list[str]:
    """The namespaces where the run may have made probe objects: a probe pod was admitted there, or the run ended
    before saying (an interrupt, no pod.admitted recorded for it); not where every pod.admitted failed (refused:
    a namespace the harness may not create in, an API server down for the whole run, made nothing)."""
    admitted: dict[str, list[str]] = {}
    for payload in getattr(recorder, "payloads", None) or []:
        check, workload = payload.get("check") or {}, payload.get("workload") or {}
        if check.get("id") == "pod.admitted" and workload.get("namespace"):
            admitted.setdefault(str(workload["namespace"]), []).append(str(check.get("status")))
    return [namespace for namespace in sorted({w.namespace for w in session.workloads})
            if INTERRUPTED or "pass" in admitted.get(namespace, ["pass"])]


def _delete_leftover_probe_pods(session: HarnessSession, sleep: Any = time.sleep,
                                made: list[str] | None = None) -> None:
    """The run's probe pods and ConfigMaps that are still there (an interrupted run: an xdist worker that created
    them may have been killed before it could delete them; deletes that met an API server briefly down), found by
    the run-id label and deleted, tried again for a few seconds while the API server does not answer or they are
    still there; what is left then (in ``made``, the namespaces where the run may have made them: all by default)
    is named on stderr with the command that deletes it. Nothing unless the plugin built the Kubernetes client
    itself (no fake backend) and --keep is not given."""
    if session.keep or session.kube is None:
        return
    namespaces = sorted({w.namespace for w in session.workloads})
    looked = namespaces if made is None else [n for n in namespaces if n in made]
    deadline = time.monotonic() + LEFTOVER_RETRY_SECONDS
    delay = 0.5
    while True:
        # the client stops calling an API server it could not connect to (OfficialKubeApi's fail-fast, for the run's
        # reads); here each attempt asks again, so one that was down for a moment and is back is used
        if getattr(session.kube, "_unreachable", None) is not None:
            session.kube._unreachable = None
        clean = delete_run_pods(session.kube, namespaces, session.run_id)
        # where the delete's own lists found nothing of the run, there is nothing to list again
        left, unseen = _run_objects_left(session.kube, [n for n in looked or namespaces if n not in clean],
                                         session.run_id)
        if left is not None and not left:
            return
        if not looked:  # nothing to make sure of: one look, and no word when the API server does not answer
            if left:
                break
            return
        if left is None and unseen.startswith(("the harness may not", "the API server refused")):  # nor asking again
            break
        if time.monotonic() + delay > deadline:
            break
        sleep(delay)
        delay = min(delay * 2, 2.0)
    what = f"{len(left)} left: {', '.join(left[:5])}{' ...' if len(left) > 5 else ''}" if left else unseen
    sys.stderr.write(f"wi-harness: could not make sure this run's probe objects are gone ({what}); delete them "
                     f"with: kubectl delete pods,configmaps -A -l {RUN_ID_LABEL}={session.run_id} (or the next run's "
                     "--sweep)\n")


def _run_objects_left(api: Any, namespaces: list[str], run_id: str) -> tuple[list[str] | None, str]:
    """NS/KIND/NAME of the run's pods and ConfigMaps still there and not being deleted (a Terminating one is on its
    way); None, and why, when the API server did not answer or refused the list (403: the RBAC does not grant it;
    401: the credentials are refused)."""
    selector = f"{RUN_ID_LABEL}={run_id}"

    def left_in(namespace: str) -> list[str] | KubeError:
        try:
            pods, _ = api.list_pods(namespace, selector)
            config_maps = api.list_config_maps(namespace, selector)
        except KubeError as exc:
            return exc
        return [f"{namespace}/{kind}/{(item.get('metadata') or {}).get('name')}"
                for kind, items in (("pod", pods), ("configmap", config_maps)) for item in items
                if not (item.get("metadata") or {}).get("deletionTimestamp")]

    left: list[str] = []
    for namespace, found in zip(namespaces, read_all(left_in, namespaces, KUBE_WORKERS), strict=True):
        if isinstance(found, KubeError):
            if found.failure.status == 403:
                return None, f"the harness may not list them in {namespace}: {found.failure.message}"
            if found.failure.status == 401:  # an answer: the kubeconfig's credentials, not the network
                return None, (f"the API server refused the kubeconfig's credentials: {found.failure.status} "
                              f"{found.failure.reason}")
            if found.failure.status:
                return None, f"the API server answered {found.failure.status} {found.failure.reason}"
            return None, "the API server did not answer"
        left += found
    return left, ""


# ---------------------------------------------------------------- collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = metafunc.config.stash.get(SESSION, None)
    names = metafunc.fixturenames
    if "wi_cluster_check" in names:
        ids = CLUSTER_CHECK_IDS if session else []
        metafunc.parametrize("wi_cluster_check", ids, ids=ids, indirect=True)
    if "wi_migration_check" in names:
        ids = MIGRATION_CHECK_IDS if session else []
        metafunc.parametrize("wi_migration_check", ids, ids=ids, indirect=True)
    if "wi_inventory_check" in names:
        ids = INVENTORY_CHECK_IDS if session else []
        metafunc.parametrize("wi_inventory_check", ids, ids=ids, indirect=True)
    if "wi_workload_check" in names:
        pairs = [(w.id, c) for w in session.workloads for c in workload_check_ids(w)] if session else []
        params: list[Any] = [pytest.param(p, id=f"{p[0]}:{p[1]}") for p in pairs]
        if session and not pairs:
            only_pods = pytest.mark.skip(reason="only --pod given: no workload to deploy a probe for")
            params = [pytest.param(None, id="no-workloads", marks=only_pods if session.pods else ())]
        metafunc.parametrize("wi_workload_check", params, indirect=True)
    if "wi_pod_check" in names:
        pod_pairs = [(f"{ns}/{pod}", c) for ns, pod in session.pods for c in POD_CHECK_IDS] if session else []
        pod_params: list[Any] = [pytest.param(p, id=f"{p[0]}:{p[1]}") for p in pod_pairs]
        metafunc.parametrize("wi_pod_check", pod_params or [pytest.param(None, id="no-pods")], indirect=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash.get(SESSION, None)
    if session is None:
        return
    keep, drop = [], []
    workloads: list[str] = []
    pods: list[str] = []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        if ("wi_pod_check" in params and params["wi_pod_check"] is None) or (
            "wi_workload_check" in params and params["wi_workload_check"] is None and session.pods
        ):
            drop.append(item)
            continue
        keep.append(item)
        if params.get("wi_workload_check"):
            workloads.append(params["wi_workload_check"][0])
        if params.get("wi_pod_check"):
            pods.append(params["wi_pod_check"][0])
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    session.selected_workloads = list(dict.fromkeys(workloads))
    session.selected_migration = any("wi_migration_check" in getattr(item, "fixturenames", ()) for item in keep)
    session.selected_inventory = any(
        "wi_inventory_check" in getattr(item, "fixturenames", ()) for item in keep
    )
    session.selected_pods = list(dict.fromkeys(pods))
    fixtures.keep_for_the_run()  # the items


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    session = item.config.stash.get(SESSION, None)
    if session is not None:
        redact_report(report, session.redactor)
    payload = item.stash.get(PAYLOAD, None)
    if payload is not None and report.when == "call":
        report.wi_harness = payload  # crosses xdist with the report (TestReport keeps extra attributes)
    elif report.failed and report.when != "call" and any(n.startswith("wi_") for n in item.fixturenames):
        # a harness test errored outside its check: the run cannot pass, and run.json says why (one line, a str
        # so it crosses xdist with the report)
        report.wi_harness_error = error_line(report)


def error_line(report: pytest.TestReport) -> str:
    """Why a test errored, on one bounded line: pytest's crash message (``Failed: `` dropped), else the last line
    of its report."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", "") or "")
    if not text:
        lines = [line for line in str(report.longrepr or "").splitlines() if line.strip()]
        text = lines[-1] if lines else "errored"
    text = text.removeprefix("Failed: ")
    return shorten(" ".join(text.split()), 400) or "errored"


def redact_report(report: pytest.TestReport, redactor: Redactor) -> None:
    """The last line of defence for the terminal and junit.xml: exception text and captured output (an SDK's
    error, a library's log line) pass through the redactor like everything the harness writes itself."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        report.longrepr = (longrepr[0], longrepr[1], redactor.text(str(longrepr[2])))
    elif longrepr is not None:
        text = str(longrepr)
        clean = redactor.text(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, redactor.text(content)) for title, content in report.sections]


# ---------------------------------------------------------------- the run report


def narrowed_by(config: pytest.Config, stopped: bool = False) -> dict[str, Any]:
    """What of the command line narrowed the run to part of the suites (run.json's ``narrowed``): -k, -m, --lf,
    --sw, --deselect, --ignore, test files or node ids (a directory, the suites themselves, narrows nothing),
    --workload, --pod, --namespace, and -x/--maxfail when it ``stopped`` the run (the checks after it, other
    workloads among them, did not run)."""
    options = config.option
    tests = []
    for arg in config.args:
        path = arg.split("::", 1)[0]
        if "::" in arg or not Path(config.invocation_params.dir, path).is_dir():
            tests.append(f"{Path(path).name}{arg[len(path):]}")
    selected = []
    lf = config.pluginmanager.get_plugin("lfplugin")
    rerun = getattr(lf, "_previously_failed_count", None)  # how many it selected (None: it did not select here)
    if getattr(options, "lf", False) and (rerun if rerun is not None else getattr(lf, "lastfailed", True)):
        selected.append("--lf")  # only the checks that failed last time: with none recorded, pytest runs them all
    if getattr(options, "stepwise", False):
        selected.append("--sw")
    maxfail = getattr(options, "maxfail", 0) or 0
    if stopped and maxfail > 0:
        selected.append("-x" if maxfail == 1 else f"--maxfail {maxfail}")
    selected += [f"--deselect {item}" for item in getattr(options, "deselect", None) or []]
    selected += [f"--ignore {item}" for item in getattr(options, "ignore", None) or []]
    selected += [f"--ignore-glob {item}" for item in getattr(options, "ignore_glob", None) or []]
    return {
        "keyword": str(getattr(options, "keyword", "") or ""),
        "markexpr": str(getattr(options, "markexpr", "") or ""),
        "options": selected,
        "tests": tests,
        "workloads": list(getattr(options, "wi_workloads", None) or []),
        "pods": list(getattr(options, "wi_pods", None) or []),
        "namespaces": list(getattr(options, "wi_namespaces", None) or []),
    }


def _no_junit_without_a_run(config: pytest.Config, run_dir: Path) -> None:
    """No run.json (--collect-only, a -k that selected nothing): the junit.xml of no test that the harness's
    default path would write made a reports/<run-id>/ holding nothing else, one per such command. A --junitxml
    the person gave is still written."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is not None and xml.logfile == os.path.normpath(os.path.abspath(run_dir / "junit.xml")):
        xml.logfile = os.devnull


def _junit_beside(config: pytest.Config, run_dir: Path) -> None:
    """junit.xml where run.json went instead: pytest's junitxml makes its file's directory and would fail with a
    traceback where the report directory has gone."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is not None and Path(xml.logfile).parent != run_dir:
        try:
            Path(xml.logfile).parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            xml.logfile = str(run_dir / "junit.xml")


_KUBECONFIG_COMMANDS = (("kubectl",), ("kubelogin",), ("az", "aks", "get-credentials"))


def _acts_on_kubeconfig(line: str) -> bool:
    """A printed fix whose program reads or writes the shell's kubeconfig: not one that names its file (--file,
    --kubeconfig: the harness's own), nor one captured into a variable (TOKEN=$(kubectl create token ...): asked
    with credentials that work, which the refused kubeconfig's are not)."""
    words = line.split("   # ", 1)[0].split()
    if "--file" in words or "--kubeconfig" in words:
        return False
    return any(tuple(words[:len(program)]) == program for program in _KUBECONFIG_COMMANDS)


class RunRecorder:
    """In the process that owns the run (the xdist controller, or the only process): gather every test's
    check payload, write run.json at the end, print the summary."""

    def __init__(self, session: HarnessSession) -> None:
        self.session = session
        self.payloads: list[dict[str, Any]] = []
        self.errors: list[dict[str, str]] = []  # the harness's tests that errored without a check result
        self.document: dict[str, Any] | None = None
        self.path: Path | None = None
        self.write_error: str | None = None
        self.latest_error: str | None = None  # the run's report is written, <report-dir>/latest does not point at it
        self.interrupted: str | None = None  # the signal that stopped the run before it finished

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "wi_harness", None)
        if payload is not None:
            self.payloads.append(payload)
        elif getattr(report, "wi_harness_error", False):
            message = report.wi_harness_error
            self.errors.append({"test": report.nodeid,
                                "message": message if isinstance(message, str) else "errored"})

    @pytest.hookimpl(tryfirst=True)  # before junitxml's, which writes into the same directory (see _report_elsewhere)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if INTERRUPTED:  # stopped by a signal: checks not run yet would not be in it, so never a PASS
            self.interrupted = INTERRUPTED[0]
        if not self.payloads and not self.errors and not self.interrupted:
            _no_junit_without_a_run(session.config, self.session.run_dir)
            return
        fixtures.keep_for_the_run()  # the items' reports and payloads
        s = self.session
        self.document = build_run(s.run_id, s.started_at, rfc3339(), self.payloads,
                                  config_target(s.config, s.target_kind), self.errors,
                                  self.interrupted, narrowed_by(session.config, bool(session.shouldfail)))
        try:
            self.path = write_run(s.report_dir, self.document, s.redactor, latest=False)
            try:
                point_latest(s.report_dir, self.document["run_id"])
            except OSError as exc:  # the run's report is written; only the latest link is not
                self.latest_error = str(exc) if not exc.strerror else f"{s.report_dir / 'latest'}: {exc.strerror}"
        except OSError as exc:
            # the report directory went (deleted, replaced by a file, its disk full) after the start's check: the
            # run's work is not lost, it is written to a new temporary directory and the summary says where
            self.write_error = f"{s.report_dir}: {exc.strerror or exc}"
            try:
                self.path = write_run(Path(tempfile.mkdtemp(prefix="wi-harness-report-")), self.document,
                                      s.redactor)
                _junit_beside(session.config, self.path.parent)
            except (OSError, ValueError) as again:
                self.write_error += f"; nor in a temporary directory: {type(again).__name__}: {again}"
        except ValueError as exc:
            self.write_error = f"{s.report_dir}: {type(exc).__name__}: {exc}"

    def _kubectl_elsewhere(self, config: pytest.Config) -> str | None:
        """The line saying the printed kubectl (kubelogin, az aks get-credentials) fixes would act on another
        cluster or kubeconfig than the run read (harness.yaml
        names a kubeconfig or context the shell's kubectl is not at); None without such fixes, with --lab or a
        conftest's own backend (no kubeconfig read)."""
        document = self.document or {}
        findings = [*(document.get("findings") or []),
                    *(f for w in document.get("workloads") or [] for f in w.get("findings") or [])]
        if not any(_acts_on_kubeconfig(str(line)) for f in findings for line in f.get("remediation") or []):
            return None
        if self.session.lab is not None or _backend_overridden(config):
            return None
        cluster = self.session.config.cluster
        return kubectl_elsewhere(cluster.kubeconfig, cluster.context)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.document is None:
            return
        terminalreporter.section("wi-harness")
        options = terminalreporter.config.option
        narrowed = bool(getattr(options, "wi_workloads", None) or getattr(options, "wi_pods", None))
        encoding = getattr(getattr(terminalreporter._tw, "_file", None), "encoding", None) or sys.stdout.encoding
        for line in troubleshooting_lines(self.document, narrowed, marks_for(encoding)):
            terminalreporter.write_line(encodable(self.session.redactor.text(line), encoding))
        elsewhere = self._kubectl_elsewhere(terminalreporter.config)
        if elsewhere:
            terminalreporter.write_line(encodable(self.session.redactor.text(elsewhere), encoding), yellow=True)
        for line in summary_lines(self.document, self.path):
            terminalreporter.write_line(encodable(self.session.redactor.text(line), encoding))
        if self.interrupted:
            terminalreporter.write_line(
                f"interrupted ({self.interrupted}) before every check ran: the verdict is FAIL whatever the checks "
                "that ran say", red=True)
        if self.path is not None:
            run_dir = self.path.parent
            terminalreporter.write_line(f"sign-off {run_dir / 'signoff.md'}  {run_dir / 'signoff.html'}")
        if self.latest_error:
            terminalreporter.write_line(f"{self.latest_error}: it does not point at this run", yellow=True)
        if self.write_error:
            instead = f": written to {self.path.parent} instead" if self.path is not None else ""
            terminalreporter.write_line(
                f"could not write the run report to {self.session.redactor.text(self.write_error)}{instead}",
                red=True,
            )
        kept = sorted({k for p in self.payloads for k in p.get("kept") or []})
        if kept and self.session.lab is not None:  # --lab: the lab stops with the run, and its pods with it
            terminalreporter.write_line(
                f"--keep with --lab: the lab stops when the run ends, so its {counted(len(kept), 'probe pod')} "
                f"({', '.join(kept)}) cannot be looked at; its state and lab.log stay in "
                f"{self.session.lab.state_dir}. To keep a probe pod for kubectl: python -m lab up --state-dir DIR, "
                "then pytest suites --config DIR/harness.yaml --keep", yellow=True)
            kept = []
        for pod in kept:
            namespace, name = pod.split("/", 1)
            terminalreporter.write_line(f"kept probe pod: kubectl -n {namespace} logs {name}")
        swept = sorted({k for p in self.payloads for k in p.get("swept") or []})
        if swept:
            terminalreporter.write_line(f"swept {counted(len(swept), 'leftover probe object')}: {', '.join(swept)}")
        swept_kept = [p.get("sweep_kept") for p in self.payloads if p.get("sweep_kept") is not None]
        for line in sorted({line for lines in swept_kept for line in lines}):
            terminalreporter.write_line(f"--sweep {line}", yellow=True)
        if swept_kept and not swept and not any(swept_kept):
            terminalreporter.write_line("--sweep: no objects of earlier runs were left to delete")
        if self.session.lab is not None and self.session.keep:
            terminalreporter.write_line(f"lab state kept in {self.session.lab.state_dir}")
