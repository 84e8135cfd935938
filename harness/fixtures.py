"""The fixtures the suites ask for (registered by the plugin when it is active).

``wi_backend`` is the I/O seam: override it (e.g. in a conftest) with a Backend of fakes to run the
suites without any server. Such a conftest also defines a plain function ``wi_kube()`` returning its KubeApi
when it runs whole-cluster (harness.yaml without workloads): the ServiceAccounts to verify are listed when the
run starts, before any fixture exists.
"""

from __future__ import annotations

import gc
import re
from typing import Any

import pytest

from harness.analysis import RunResults, analyse
from harness.checks.model import CheckResult
from harness.collect.kube_api import KubeError
from harness.collect.run import Backend, Selection, build_backend, collect_run
from harness.facts import RunFacts
from harness.names import CLIENT_ID_ANNOTATION, USE_LABEL
from harness.report.run_json import check_payload
from harness.serde import from_json, to_json
from harness.session import HarnessSession
from harness.shared import compute_once
from harness.values import in_number

NO_WORKLOADS = (
    "no workloads: list them under workloads: in harness.yaml, or pass --workload NAMESPACE/SERVICEACCOUNT"
)


def nothing_found(discovery: dict[str, Any], configured: bool = False) -> str:
    """Why a whole-cluster run has no workload to verify: the ServiceAccounts could not be listed, a namespace
    --namespace names does not exist or is being deleted, or none carries the client-id annotation or the use
    label. ``configured``: harness.yaml lists workloads (in other namespaces than --namespace's)."""
    namespaces = discovery.get("namespaces") or []
    where = f"{in_number(len(namespaces), 'namespace')} {', '.join(namespaces)}" if namespaces else "all namespaces"
    error = discovery.get("error")
    if error:
        listing = error.get("listing") or "the ServiceAccounts"
        return (f"whole-cluster run: could not list {listing} of {where}: {error.get('status')} "
                f"{error.get('reason')}: {error.get('message')}" + _discovery_grant(error))
    missing = discovery.get("missing_namespaces") or []
    if missing:
        return (f"whole-cluster run: {'namespaces' if len(missing) > 1 else 'namespace'} {', '.join(missing)} "
                f"{'do' if len(missing) > 1 else 'does'} not exist in the cluster (kubectl get namespaces), so "
                "nothing was verified; check --namespace and the kubeconfig context"
                + "".join(f"; did you mean --namespace {near}?" for near in discovery.get("near_namespaces") or []))
    terminating = discovery.get("terminating_namespaces") or []
    if terminating:  # kubectl delete namespace: its ServiceAccounts were deleted with the rest of its content
        return "; ".join(
            f"whole-cluster run: namespace {ns['name']} is being deleted (Terminating since {ns['since']}): its "
            "ServiceAccounts were deleted with its content and nothing new may be created in it until it is gone, "
            "so nothing was verified" + (f"; {ns['held']}" if ns.get("held") else
                                         f"; see what holds it: kubectl get namespace {ns['name']} -o yaml")
            for ns in terminating)
    listed = f"harness.yaml lists none in {where}" if configured else "harness.yaml lists no workloads"
    return (f"whole-cluster run ({listed}): no ServiceAccount in {where} has the "
            f"{CLIENT_ID_ANNOTATION} annotation or the {USE_LABEL} label, so nothing was verified; "
            "annotate the workloads' ServiceAccounts, or list them under workloads: in harness.yaml")


_FORBIDDEN_USER_RE = re.compile(r'User "([^"]+)" cannot list')  # the API server's forbidden message (RBAC)


def _discovery_grant(error: dict[str, Any]) -> str:
    """For a list the RBAC refused (403): the rule that grants it, to paste (the ClusterRole of
    manifests/harness-rbac.yaml.j2 grants both lists cluster-wide)."""
    if error.get("status") != 403:
        return ""
    from harness.checks.remediation import cluster_list_rbac
    from harness.commands import render

    resource = "pods" if error.get("listing") else "serviceaccounts"
    user = _FORBIDDEN_USER_RE.search(str(error.get("message") or ""))
    steps = cluster_list_rbac(f"wi-harness-list-{resource}", [resource], user.group(1) if user else None)
    return (f"; grant it: {' && '.join(render(step) for step in steps)} (or kubectl apply the 01-rbac.yaml of "
            "python -m harness manifests render: its ClusterRole wi-harness-reader grants it)")


def keep_for_the_run() -> None:
    """What is alive now lives until the run ends (the imports, the collected items, the run's facts and results):
    out of the garbage collector's reach (gc.freeze), so that its full passes, each of which would walk all of it
    again, stay cheap. Without this, at 50 workloads, 12 full passes during the run and pytest's five at its end
    took a quarter of the harness's time (bench/fanout.py)."""
    gc.freeze()


def _session(config: pytest.Config) -> HarnessSession:
    from harness.plugin import NO_TARGET, SESSION

    session = config.stash.get(SESSION, None)
    if session is None:
        raise pytest.UsageError(NO_TARGET)
    return session


@pytest.fixture(scope="session")
def wi_session(pytestconfig: pytest.Config) -> HarnessSession:
    return _session(pytestconfig)


@pytest.fixture(scope="session")
def wi_backend(wi_session: HarnessSession) -> Backend:
    try:
        return build_backend(wi_session.config, wi_session.kube)
    except KubeError as exc:
        problem = f"cannot use the cluster from {wi_session.config_path}: {exc.failure.message}"
    pytest.fail(wi_session.redactor.text(problem), pytrace=False)  # outside except: no chained traceback


@pytest.fixture(scope="session")
def wi_facts(wi_session: HarnessSession, request: pytest.FixtureRequest) -> RunFacts:
    """Everything collected for this run: once per run, shared by xdist workers (one set of probe pods)."""
    session = wi_session

    def collect() -> Any:
        backend: Backend = request.getfixturevalue("wi_backend")
        session.redactor.add(*backend.secrets)
        selection = Selection(
            workloads=session.selected_workload_configs(),
            pods=session.selected_pod_refs(),
            migration=session.selected_migration,
            inventory=session.selected_inventory,
            labelled_pods=(session.discovery or {}).get("labelled_pods"),
        )
        facts = collect_run(
            backend,
            session.config,
            selection,
            session.run_id,
            session.image,
            keep=session.keep,
            sweep_first=session.sweep,
        )
        return session.redactor(to_json(facts))  # redact_facts's JSON, without building the dataclasses between

    facts = from_json(RunFacts, compute_once(session.shared_dir / "facts.json", collect))
    keep_for_the_run()
    return facts


@pytest.fixture(scope="session")
def wi_results(wi_session: HarnessSession, wi_facts: RunFacts) -> RunResults:
    results = analyse(
        wi_facts,
        wi_session.config,
        wi_session.selected_workload_configs(),
        wi_session.target_kind,
        wi_session.redactor,
        keep=wi_session.keep,
    )
    keep_for_the_run()
    return results


RESULTS = pytest.StashKey[RunResults]()


def _results(request: pytest.FixtureRequest) -> RunResults:
    """The wi_results fixture's value, asked of pytest only until it exists: pytest resolves the fixtures a fixture
    depends on again for every item (a run of 50 workloads has 850 items), and the check fixtures need nothing of
    them but the results."""
    results = request.config.stash.get(RESULTS, None)
    if results is None:
        results = request.config.stash[RESULTS] = request.getfixturevalue("wi_results")
    return results


def _record(request: pytest.FixtureRequest, payload: dict[str, Any]) -> None:
    from harness.plugin import PAYLOAD

    request.node.stash[PAYLOAD] = payload


@pytest.fixture
def wi_cluster_check(request: pytest.FixtureRequest) -> CheckResult:
    check_id = request.param
    results = _results(request)
    result = results.cluster_check(check_id)
    order = [c.id for c in results.cluster].index(check_id)
    _record(request, check_payload("cluster", result, order, results))
    return result


@pytest.fixture
def wi_migration_check(request: pytest.FixtureRequest) -> CheckResult:
    check_id = request.param
    results = _results(request)
    result = results.migration_check(check_id)
    order = [c.id for c in results.migration].index(check_id)
    _record(request, check_payload("migration", result, order, results))
    return result


@pytest.fixture
def wi_inventory_check(request: pytest.FixtureRequest) -> CheckResult:
    check_id = request.param
    results = _results(request)
    result = results.inventory_check(check_id)
    order = [c.id for c in results.inventory_checks].index(check_id)
    _record(request, check_payload("inventory", result, order, results))
    return result


@pytest.fixture
def wi_workload_check(request: pytest.FixtureRequest) -> CheckResult:
    wi_session = _session(request.config)
    if request.param is None:
        # Nothing verified is not a pass: a smoke test with an empty workload list must not go green.
        discovery = wi_session.discovery
        pytest.fail(NO_WORKLOADS if discovery is None else
                    nothing_found(discovery, bool(wi_session.config.workloads)), pytrace=False)
    workload_id = request.param[0]
    order = [w.id for w in wi_session.workloads].index(workload_id)
    return _subject_check(request, "workload", order)


@pytest.fixture
def wi_pod_check(request: pytest.FixtureRequest) -> CheckResult:
    wi_session = _session(request.config)
    if request.param is None:
        pytest.skip("no --pod given")
    pod_id = request.param[0]
    order = len(wi_session.workloads) + [f"{ns}/{name}" for ns, name in wi_session.pods].index(pod_id)
    return _subject_check(request, "pod", order)


def _subject_check(request: pytest.FixtureRequest, scope: str, order: int) -> CheckResult:
    """One check of one workload (or --pod) from the run's results, recorded for run.json; ``order`` places
    the workload in the report as on the command line / in harness.yaml."""
    subject_id, check_id = request.param
    results = _results(request)
    subject = (results.pods if scope == "pod" else results.workloads).get(subject_id)
    if subject is None:
        pytest.fail(f"{subject_id}: no facts were collected for this {scope}", pytrace=False)
    result = subject.check(check_id)
    position = [c.id for c in subject.checks].index(check_id)
    _record(request, check_payload(scope, result, position, results, subject, order))
    return result
