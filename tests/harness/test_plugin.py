"""The pytest plugin, through pytester, running the REAL suites/ against the fake world (the ``wi_backend``
seam overridden in the test project's conftest).

We test these aspects:
- inert without --lab/--config unless suites/ is collected (then a one-line usage error);
- config problems, bad --workload values, a kubeconfig or context that cannot be used and an unwritable
  --report-dir are usage errors (exit 4), one line per problem, before anything runs;
- an unreachable API server is a KUBE_UNREACHABLE finding in a report that is still written;
- exception text and captured output (an SDK echoing a secret) are redacted in the terminal and junit.xml;
- one test per (workload, check) with ids NS/SA:check; --workload and -k select; probe pods only for those;
- failures fail with findings, dependents are SKIPPED with "because <check> failed" (never passed);
- run.json (valid, verdict), the latest symlink, junit.xml, the terminal summary; nothing secret printed;
- --keep, --sweep, --pod; -n 2 shares one set of probe pods and one run.json.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import types
from pathlib import Path

import pytest
import yaml
from fakeworld import ISSUER, SECRET_VALUES, World, closed_port, existing_pod

from harness.redact import contains_secret
from harness.report.schema import validate_run

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLUSTER_TESTS = 9 + 6 + 8  # cluster checks + migration checks (pod-managed identity leftovers) + inventory
HEALTHY_TESTS = CLUSTER_TESTS + 2 * 18  # + 2 workloads x (16 chain checks + 2 access checks)


def project(pytester: pytest.Pytester, world: World, azure: bool = True) -> Path:
    """A directory like the repo: suites/ (copied), a root conftest enabling the plugin, harness.yaml."""
    suites = pytester.path / "suites"
    suites.mkdir()
    for source in (REPO / "suites").glob("*.py"):
        shutil.copy(source, suites / source.name)
    world.record_to = str(pytester.path / "created.txt")
    (pytester.path / "world.pickle").write_bytes(pickle.dumps(world))
    pytester.makeconftest(f"""
import pickle
import sys

sys.path[:0] = [{str(HERE)!r}, {str(REPO)!r}]

import pytest

pytest_plugins = ["harness.plugin"]
WORLD = pickle.loads(open({str(pytester.path / "world.pickle")!r}, "rb").read())


@pytest.fixture(scope="session")
def wi_backend():
    backend = WORLD.backend()
    if not {azure!r}:
        backend.arm = None
    return backend


def wi_kube():
    return WORLD.backend().kube
""")
    config = pytester.path / "harness.yaml"
    config.write_text(yaml.safe_dump(world.config(pytester.path, azure=azure)))
    return config


def created(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "created.txt"
    return path.read_text().split() if path.exists() else []


def run_json(pytester: pytest.Pytester) -> dict:
    doc = json.loads((pytester.path / "reports" / "latest" / "run.json").read_text())
    validate_run(doc)
    return doc


# ---------------------------------------------------------------- inert / usage errors


def test_inert_without_a_target_outside_suites(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest("-p", "harness.plugin", "test_plain.py")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()
    assert "wi-harness" not in result.stdout.str()


def test_suites_without_a_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest("suites")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: the verification suites need a target: pass --lab*--config harness.yaml*"]
    )


def test_a_bad_config_is_a_usage_error_with_one_line_per_problem(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    (pytester.path / "bad.yaml").write_text(
        yaml.safe_dump(
            {
                "probe": {"timeout_seconds": "soon"},
                "workloads": [{"namespace": "Finance", "service_account": "x"}],
            }
        )
    )
    result = pytester.runpytest("suites", "--config", "bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: invalid harness config */bad.yaml (2 problems):",
            "  probe.timeout_seconds: *",
            "  workloads[[]0[]].namespace: must be a DNS-1123 label*",
        ]
    )
    assert "Traceback" not in result.stderr.str()


def test_a_bad_workload_reference_is_a_usage_error(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--workload", "backend-sa")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --workload 'backend-sa': expected NAMESPACE/NAME*"])


def test_lab_and_config_exclude_each_other(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# ---------------------------------------------------------------- a healthy run


def test_healthy_world_passes_and_reports(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest("suites", "--config", "harness.yaml", "-v")
    result.assert_outcomes(passed=HEALTHY_TESTS)
    result.stdout.fnmatch_lines(
        [
            "*test_cluster.py::test_cluster?cluster.oidc_issuer_enabled? PASSED*",
            "*test_workloads.py::test_workload?finance/backend-sa:sa.exists? PASSED*",
            "*test_workloads.py::test_workload?orders/orders-sa:access.keyvault?finance-kv/db-password? PASSED*",
            "*= wi-harness =*",
            "*PASS  cluster*9 pass",
            "*PASS  migration*6 pass",
            "*PASS  inventory*8 pass",
            "*PASS  finance/backend-sa*18 pass",
            "*PASS  orders/orders-sa*18 pass",
            "verdict PASS  report */reports/*/run.json",
        ]
    )
    doc = run_json(pytester)
    assert doc["verdict"] == "pass" and doc["target"]["issuer"] == ISSUER and doc["target"]["kind"] == "lab"
    assert [w["id"] for w in doc["workloads"]] == ["finance/backend-sa", "orders/orders-sa"]
    assert len(doc["workloads"][0]["checks"]) == 18 and len(doc["checks"]) == CLUSTER_TESTS
    assert doc["coverage"] == [] and doc["leftovers"]["crds"] == [] and doc["leftovers"]["addon_enabled"] is False
    assert [r["state"] for r in doc["inventory"]["service_accounts"]] == ["credential for this issuer"] * 2
    assert (pytester.path / "reports" / doc["run_id"] / "junit.xml").exists()
    assert len(created(pytester)) == 2


def test_the_help_says_pod_runs_a_probe_under_the_pods_service_account(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert "--pod=NS/POD check this existing pod as admitted (labelled, mutated), then a probe pod under its" in text
    assert "instead of deploying a probe" not in text  # it does deploy one (README: Troubleshooting one workload)


def test_workload_option_runs_only_that_workload(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest(
        "suites/test_workloads.py", "--config", "harness.yaml", "--workload", "finance/backend-sa"
    )
    result.assert_outcomes(passed=18)
    assert [w["id"] for w in run_json(pytester)["workloads"]] == ["finance/backend-sa"]
    assert [p.split("/")[0] for p in created(pytester)] == ["finance"]


def test_k_selects_by_workload_id(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest("suites", "--config", "harness.yaml", "-k", "orders/orders-sa and token")
    result.assert_outcomes(passed=5)
    assert [p.split("/")[0] for p in created(pytester)] == ["orders"]
    # a PASS of five checks is not the chain's: run.json (and the sign-off's header) says what narrowed it
    assert run_json(pytester)["narrowed"] == {"keyword": "orders/orders-sa and token"}
    result.stdout.fnmatch_lines(["verdict PASS (narrowed: -k)  report */run.json"])  # the terminal says it too
    result = pytester.runpytest("suites/test_cluster.py::test_cluster", "--config", "harness.yaml",
                                "--workload", "finance/backend-sa")
    assert run_json(pytester)["narrowed"] == {"tests": ["test_cluster.py::test_cluster"],
                                              "workloads": ["finance/backend-sa"]}
    pytester.runpytest("suites", "--config", "harness.yaml")
    assert "narrowed" not in run_json(pytester)
    # --lf after a failure: the rerun of the failed checks alone that passes is a narrowed PASS, not the chain's
    pytester.runpytest("suites", "--config", "harness.yaml", "-p", "cacheprovider", "--lf")  # no failures: all ran
    assert "narrowed" not in run_json(pytester)
    broken = World.healthy()
    broken.workloads[0].fic_issuer = ISSUER.rstrip("/")
    (pytester.path / "world.pickle").write_bytes(pickle.dumps(broken))
    whole = pytester.runpytest("suites", "--config", "harness.yaml", "-p", "cacheprovider").parseoutcomes()
    rerun = pytester.runpytest("suites", "--config", "harness.yaml", "-p", "cacheprovider", "--lf").parseoutcomes()
    assert sum(rerun.values()) < sum(whole.values()) - whole.get("deselected", 0)  # only the failed ones ran
    assert run_json(pytester)["narrowed"] == {"options": ["--lf"]}
    # -x stopped the run at that failure: the checks after it (orders/orders-sa's among them) did not run
    stopped = pytester.runpytest("suites", "--config", "harness.yaml", "-x")
    stopped.stdout.fnmatch_lines(["verdict FAIL (narrowed: -x)  report */run.json"])
    assert run_json(pytester)["narrowed"] == {"options": ["-x"]}
    pytester.runpytest("suites", "--config", "harness.yaml", "--maxfail", "100")  # it stopped nothing
    assert "narrowed" not in run_json(pytester)


def test_without_azure_the_suites_still_pass(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy(), azure=False)
    result = pytester.runpytest("suites", "--config", "harness.yaml", "-rs")
    # no ARM: workload identity, cluster identity type, identity and federated credential checks are skipped, and
    # the pod identity add-on's (podIdentityProfile), and the inventory's but its ServiceAccount list
    result.assert_outcomes(passed=HEALTHY_TESTS - 14, skipped=14)
    assert run_json(pytester)["verdict"] == "pass"


# ---------------------------------------------------------------- failures and the skip chain


def test_failures_carry_findings_and_dependents_are_skipped(pytester: pytest.Pytester) -> None:
    world = World.healthy()
    world.workloads[0].fic_issuer = ISSUER.rstrip("/")
    project(pytester, world)
    result = pytester.runpytest("suites", "--config", "harness.yaml", "-rsf")
    # the workload's federation check and the inventory's (FIC_OLD_ISSUER: the trailing-slash twin) fail
    result.assert_outcomes(passed=HEALTHY_TESTS - 6, failed=3, skipped=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*federation.credential: federated credential fic-backend-sa has issuer*trailing slash*",
            "*[[]FIC_ISSUER_MISMATCH[]]*",
            "*fix: az identity federated-credential update --name fic-backend-sa*",
        ]
    )
    result.stdout.fnmatch_lines(["SKIPPED*access.keyvault:finance-kv/db-password: skipped because exchange.succeeds failed"])
    doc = run_json(pytester)
    assert doc["verdict"] == "fail"
    finance, orders = doc["workloads"]
    assert finance["verdict"] == "fail" and orders["verdict"] == "pass"
    assert [f["code"] for f in finance["findings"]] == ["FIC_ISSUER_MISMATCH"]
    assert {c["id"]: c["status"] for c in finance["checks"]}["access.keyvault:finance-kv/db-password"] == "skip"
    result.stdout.fnmatch_lines(["*FAIL  finance/backend-sa*", "*first failure federation.credential*"])


def test_nothing_secret_is_printed_or_written(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest("suites", "--config", "harness.yaml", "-rA", "-vv")
    result.assert_outcomes(passed=HEALTHY_TESTS)
    doc = run_json(pytester)
    written = [p.read_text() for p in (pytester.path / "reports").rglob("*") if p.is_file()]
    secrets = [*SECRET_VALUES.values(), "s3cr3t-harness-client-secret-value", "fake-kube-token"]
    for text in [result.stdout.str(), result.stderr.str(), *written]:
        assert contains_secret(text, secrets) == []
    finance = {c["id"]: c for c in doc["workloads"][0]["checks"]}
    assert (
        finance["token.readable"]["evidence"]["claims"]["sub"] == "system:serviceaccount:finance:backend-sa"
    )


def test_an_sdk_exception_that_echoes_a_secret_is_redacted_in_the_terminal_and_junit(
    pytester: pytest.Pytester,
) -> None:
    project(pytester, World.healthy())
    conftest = pytester.path / "conftest.py"
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    conftest.write_text(
        conftest.read_text().split("@pytest.fixture")[0]
        + f"""
import logging


@pytest.fixture(scope="session")
def wi_backend():
    logging.getLogger("azure.identity").warning("request body: client_secret=s3cr3t-harness-client-secret-value")
    raise RuntimeError("POST failed: client_secret=s3cr3t-harness-client-secret-value assertion={jwt_like}")
"""
    )
    result = pytester.runpytest("suites", "--config", "harness.yaml", "-k", "oidc_issuer", "-rA")
    result.assert_outcomes(errors=1)
    junit = next((pytester.path / "reports").rglob("junit.xml")).read_text()
    for text in (result.stdout.str(), result.stderr.str(), junit):
        assert contains_secret(text, ["s3cr3t-harness-client-secret-value"]) == []
    assert "client_secret=[REDACTED]" in result.stdout.str()


# ---------------------------------------------------------------- --keep, --sweep, --pod


def test_keep_leaves_probe_pods_and_says_so(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest(
        "suites", "--config", "harness.yaml", "--keep", "--workload", "orders/orders-sa"
    )
    result.assert_outcomes(passed=CLUSTER_TESTS + 18)
    result.stdout.fnmatch_lines(["kept probe pod: kubectl -n orders logs wi-probe-orders-sa-*"])


def test_sweep_deletes_leftovers_of_earlier_runs(pytester: pytest.Pytester) -> None:
    world = World.healthy()
    leftover = existing_pod(
        world,
        world.workloads[0],
        "wi-probe-backend-sa-old",
        **{"app.kubernetes.io/managed-by": "wi-harness", "wi-harness/run-id": "20240101T000000Z-000000"},
    )
    leftover["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"  # long past its deadline: a leftover
    world.existing_pods = [leftover]
    project(pytester, world)
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--sweep")
    result.assert_outcomes(passed=HEALTHY_TESTS)
    result.stdout.fnmatch_lines(["swept 1 leftover probe object: finance/wi-probe-backend-sa-old"])


def test_pod_mode_inspects_an_existing_pod_then_probes_under_its_service_account(
    pytester: pytest.Pytester,
) -> None:
    world = World.healthy()
    world.existing_pods = [
        existing_pod(world, world.workloads[0], "backend-7d9f"),
        existing_pod(world, world.workloads[1], "orders-api-1", labelled=False, mutated=False),
    ]
    project(pytester, world)
    result = pytester.runpytest(
        "suites/test_workloads.py",
        "--config",
        "harness.yaml",
        "--pod",
        "finance/backend-7d9f",
        "--pod",
        "orders/orders-api-1",
        "-v",
    )
    result.stdout.fnmatch_lines(
        [
            "*test_existing_pod?finance/backend-7d9f:pod.mutated? PASSED*",
            "*test_existing_pod?orders/orders-api-1:pod.labelled? FAILED*",
            "*test_existing_pod?orders/orders-api-1:exchange.succeeds? PASSED*",
        ]
    )
    # the pod as admitted (5 checks), then a probe under its ServiceAccount (13): the unlabelled pod is the
    # broken link (pod.mutated is skipped because of it), and the probe proves the ServiceAccount, its identity
    # and the exchange are sound
    result.assert_outcomes(passed=18 + 16, failed=1, skipped=1)
    # probe pods are created several at a time, so in no fixed order; the report keeps the order of --pod
    assert sorted(p.split("/")[0] for p in created(pytester)) == ["finance", "orders"]
    doc = run_json(pytester)
    assert [w["id"] for w in doc["workloads"]] == ["finance/backend-7d9f", "orders/orders-api-1"]
    orders = {c["id"]: c for c in doc["workloads"][1]["checks"]}
    assert orders["probe.admitted"]["message"].startswith("probe pod orders/wi-probe-orders-sa-")
    assert orders["token.subject"]["evidence"]["sub"] == "system:serviceaccount:orders:orders-sa"
    # --pod narrows the run: the view shows both pods' chains
    result.stdout.fnmatch_lines(
        ["── finance/backend-7d9f: PASS *", "── orders/orders-api-1: FAIL, first broken link pod.labelled *"]
    )
    # the first broken link alone: pod.mutated, skipped because of it, adds no finding of its own
    assert {f["code"] for f in doc["workloads"][1]["findings"]} == {"POD_NOT_LABELLED"}


# ---------------------------------------------------------------- xdist


def test_xdist_shares_one_set_of_probe_pods_and_one_report(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest_subprocess(
        "suites", "--config", "harness.yaml", "-n", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=HEALTHY_TESTS)
    assert len(created(pytester)) == 2
    doc = run_json(pytester)
    assert doc["verdict"] == "pass"
    assert [len(w["checks"]) for w in doc["workloads"]] == [18, 18] and len(doc["checks"]) == CLUSTER_TESTS
    assert len(list((pytester.path / "reports").iterdir())) == 2  # <run-id>/ and latest


def real_backend(pytester: pytest.Pytester, kubeconfig: str | None = None) -> None:
    """Drop the fake ``wi_backend`` from the test project's conftest (the real one reads the kubeconfig)."""
    conftest = pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text().split("@pytest.fixture")[0])
    if kubeconfig is not None:
        (pytester.path / "kubeconfig").write_text(kubeconfig)


def kubeconfig_for(server: str, context: str = "fake") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": {"token": "fake-kube-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
            "current-context": context,
        }
    )


def test_an_unusable_kubeconfig_is_one_usage_error_before_anything_runs(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    real_backend(pytester)  # the fake world's kubeconfig has no contexts at all
    result = pytester.runpytest("suites", "--config", "harness.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: cannot use the cluster from */harness.yaml: cluster.kubeconfig: cannot use */kubeconfig: *"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "reports").exists() or not list((pytester.path / "reports").rglob("run.json"))


def test_a_context_the_kubeconfig_lacks_is_named(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    real_backend(pytester, kubeconfig_for("https://127.0.0.1:1", context="lab"))
    result = pytester.runpytest("suites", "--config", "harness.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: cannot use the cluster from *: cluster.context: 'fake' is not a context of * (it has: lab)"]
    )


def test_an_unwritable_report_dir_is_a_usage_error(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())
    (pytester.path / "not-a-dir").write_text("")
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--report-dir", "not-a-dir")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --report-dir */not-a-dir: is a file, not a directory"])
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--report-dir", "not-a-dir/reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --report-dir */not-a-dir/reports: cannot write there: Not a directory"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert created(pytester) == []


def test_an_unreachable_api_server_is_a_finding_and_the_report_is_still_written(
    pytester: pytest.Pytester,
) -> None:
    project(pytester, World.healthy(), azure=False)
    real_backend(pytester, kubeconfig_for(f"https://127.0.0.1:{closed_port()}"))
    result = pytester.runpytest("suites", "--config", "harness.yaml", "-rf")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*[[]KUBE_UNREACHABLE[]]*: no answer from the API server https://127.0.0.1:*",
         "*fix: kubectl --context fake cluster-info"]
    )
    doc = run_json(pytester)
    assert doc["verdict"] == "fail"
    installed = next(c for c in doc["checks"] if c["id"] == "cluster.webhook_installed")
    assert installed["status"] == "fail"
    assert {f["code"] for f in doc["findings"]} >= {"KUBE_UNREACHABLE"}
    finance = doc["workloads"][0]
    assert finance["findings"][0]["code"] == "KUBE_UNREACHABLE"
    assert {c["id"]: c["status"] for c in finance["checks"]}["pod.admitted"] == "skip"


def test_a_report_directory_gone_by_the_end_loses_no_work(pytester: pytest.Pytester) -> None:
    """--report-dir is checked at the start; one deleted or replaced by a file while the run ran (a clean-up of
    the workspace, a full disk) made the end print 'could not write the run report' and the run's report was
    lost. It is now written to a new temporary directory, and the line says where."""
    project(pytester, World.healthy())
    pytester.makeconftest((pytester.path / "conftest.py").read_text() + '''

import shutil
import sys
import types
from pathlib import Path


def pytest_collection_finish(session):  # once the run has started: its report directory was checked and made
    reports = Path(session.config.rootpath) / "gone"
    shutil.rmtree(reports, ignore_errors=True)
    reports.write_text("a file now")
''')
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--report-dir", "gone")
    assert result.ret == 0
    out = result.stdout.str()
    line = next(line for line in out.splitlines() if line.startswith("could not write the run report to "))
    assert f"{pytester.path / 'gone'}: " in line and ": written to " in line and line.endswith(" instead")
    written = Path(line.rsplit(": written to ", 1)[1].removesuffix(" instead"))
    try:
        document = json.loads((written / "run.json").read_text())
        assert document["verdict"] == "pass" and (written / "signoff.md").is_file()
        assert (written / "junit.xml").is_file() and "Traceback" not in out + result.stderr.str()
        assert f"report {written / 'run.json'}" in out
    finally:
        shutil.rmtree(written.parent)


def test_a_latest_that_is_a_directory_is_left_and_the_run_still_reported(pytester: pytest.Pytester) -> None:
    """reports/latest made a real directory (a CI step's mkdir -p reports/latest && mv run.json there, a copied
    artifact): pointing the link failed after run.json was written, and the end said the report could not be
    written at all. Now the run's report is where it belongs, named in the summary, and the one line says that
    latest (left as it is) does not point at it."""
    project(pytester, World.healthy())
    (pytester.path / "reports" / "latest").mkdir(parents=True)
    (pytester.path / "reports" / "latest" / "run.json").write_text("{}")
    result = pytester.runpytest("suites", "--config", "harness.yaml")
    assert result.ret == 0
    out = result.stdout.str()
    written = sorted((pytester.path / "reports").glob("2*/run.json"))
    assert len(written) == 1 and f"report {written[0]}" in out
    assert f"{pytester.path / 'reports' / 'latest'} is a directory, not the harness's symlink: left as it is: it " \
           "does not point at this run" in out
    assert (pytester.path / "reports" / "latest" / "run.json").read_text() == "{}"
    assert "could not write" not in out and not list((pytester.path / "reports").glob(".latest-*"))


def _interrupted_where_a_frame_has_no_line_number() -> pytest.ExceptionInfo[BaseException]:
    try:
        raise KeyboardInterrupt("stopped by signal SIGINT")
    except KeyboardInterrupt as exc:
        # an instruction offset past the code's end: tb_lineno reads None, as CPython 3.11 gives a frame a signal
        # landed in at an instruction without a line
        exc.__traceback__ = types.TracebackType(exc.__traceback__, sys._getframe(), 10**6, -1)
        return pytest.ExceptionInfo.from_exception(exc)


def test_an_interrupt_whose_traceback_has_an_entry_without_a_line_is_shown_not_a_crash() -> None:
    from harness.plugin import pytest_keyboard_interrupt

    with pytest.raises(TypeError):  # what pytest's terminal reporter met in a SIGINT test under load
        _interrupted_where_a_frame_has_no_line_number().getrepr(funcargs=True)
    excinfo = _interrupted_where_a_frame_has_no_line_number()
    pytest_keyboard_interrupt(excinfo)
    shown = str(excinfo.getrepr(funcargs=True))
    assert "KeyboardInterrupt: stopped by signal SIGINT" in shown


class _ForbiddenConfigMaps:
    """A kube client whose RBAC lists pods everywhere (the ClusterRole) and ConfigMaps only in finance (the
    wi-harness-probe Role bound there alone): orders' list is the API server's 403."""

    def __init__(self) -> None:
        self.lists: list[str] = []

    def list_pods(self, namespace: str, selector: str) -> tuple[list, None]:
        return [], None

    def list_config_maps(self, namespace: str, selector: str) -> list:
        from harness.collect.kube_api import KubeError
        from harness.facts import KubeFailure

        self.lists.append(namespace)
        if namespace == "orders":
            raise KubeError(KubeFailure(403, "Forbidden", 'configmaps is forbidden: User "system:serviceaccount:'
                                        'wi-harness:wi-harness" cannot list resource "configmaps" in API group "" '
                                        'in the namespace "orders"'))
        return []

    def delete_pod(self, namespace: str, name: str) -> None: ...
    def delete_config_map(self, namespace: str, name: str) -> None: ...


def test_a_namespace_the_harness_may_not_list_in_is_not_an_api_server_that_did_not_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """By hand in the lab: the rendered RBAC with orders' Role left out, run as that ServiceAccount: orders got
    PROBE_FORBIDDEN (nothing made there), then 'could not make sure this run's probe objects are gone (the API
    server did not answer)' after 6 s of asking again, the 403 of orders' ConfigMap list taken for no answer. Only
    the namespaces where a probe was admitted are looked at; a refused list is named, once, never retried."""
    from harness.plugin import _delete_leftover_probe_pods, _may_have_made_pods

    session = types.SimpleNamespace(keep=False, kube=_ForbiddenConfigMaps(), run_id="r1", workloads=[
        types.SimpleNamespace(namespace="finance"), types.SimpleNamespace(namespace="orders")])
    recorder = types.SimpleNamespace(payloads=[
        {"check": {"id": "pod.admitted", "status": status}, "workload": {"namespace": namespace}}
        for namespace, status in (("finance", "pass"), ("orders", "fail"))])
    made = _may_have_made_pods(recorder, session)
    assert made == ["finance"]
    _delete_leftover_probe_pods(session, sleep=pytest.fail, made=made)
    assert capsys.readouterr().err == ""
    session.kube = _ForbiddenConfigMaps()  # a probe admitted in orders, whose ConfigMaps may not be listed
    _delete_leftover_probe_pods(session, sleep=pytest.fail, made=["finance", "orders"])
    err = capsys.readouterr().err
    assert "(the harness may not list them in orders: configmaps is forbidden: " in err and "did not answer" not in err


class _RefusedCredentials(_ForbiddenConfigMaps):
    """A kube client whose kubeconfig credentials the API server refuses (401) for every list."""

    def list_pods(self, namespace: str, selector: str) -> tuple[list, None]:
        from harness.collect.kube_api import KubeError
        from harness.facts import KubeFailure

        self.lists.append(namespace)
        raise KubeError(KubeFailure(401, "Unauthorized", "Unauthorized"))


def test_refused_credentials_at_the_clean_up_are_named_as_such_not_as_no_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """By hand in the lab: the kubeconfig's token refused (401), the run's end said 'could not make sure this run's
    probe objects are gone (the API server did not answer)': it answered, refusing the credentials, and asking again
    for seconds changes nothing. It is named once, not retried."""
    from harness.plugin import _delete_leftover_probe_pods

    kube = _RefusedCredentials()
    session = types.SimpleNamespace(keep=False, kube=kube, run_id="r1", workloads=[
        types.SimpleNamespace(namespace="finance")])
    _delete_leftover_probe_pods(session, sleep=pytest.fail, made=["finance"])
    err = capsys.readouterr().err
    assert "(the API server refused the kubeconfig's credentials: 401 Unauthorized)" in err
    assert "did not answer" not in err


class _OneLeftover:
    """A kube client with one of the run's pods left in finance (deleted when asked, Terminating on the next
    list), nothing of the run in the other namespaces; it counts each namespace's lists ("*": of every namespace,
    which it refuses (403) unless ``cluster_wide``)."""

    def __init__(self, cluster_wide: bool = True) -> None:
        self.lists: dict[str, int] = {}
        self.deleted = False
        self.cluster_wide = cluster_wide

    def list_pods(self, namespace: str | None, selector: str) -> tuple[list, None]:
        self.lists[namespace or "*"] = self.lists.get(namespace or "*", 0) + 1
        if namespace is None and not self.cluster_wide:
            from harness.collect.kube_api import KubeError
            from harness.facts import KubeFailure

            raise KubeError(KubeFailure(403, "Forbidden", "cannot list resource \"pods\" at the cluster scope"))
        if namespace not in (None, "finance"):
            return [], None
        meta = {"name": "wi-probe-x", "namespace": "finance",
                **({"deletionTimestamp": "2026-12-05T00:00:00Z"} if self.deleted else {})}
        return [{"metadata": meta}], None

    def list_config_maps(self, namespace: str, selector: str) -> list:
        self.lists[namespace] = self.lists.get(namespace, 0) + 1
        return []

    def delete_pod(self, namespace: str, name: str) -> None:
        self.deleted = True

    def delete_config_map(self, namespace: str, name: str) -> None: ...


@pytest.mark.parametrize(("cluster_wide", "lists"), [
    (True, {"*": 1, "finance": 3, "orders": 1, "payments": 1}),  # the run's pods of every namespace in one list
    (False, {"*": 1, "finance": 4, "orders": 2, "payments": 2}),  # roles namespaced only: each namespace's pods
])
def test_the_end_of_run_clean_up_lists_again_only_where_it_found_something(
    capsys: pytest.CaptureFixture[str], cluster_wide: bool, lists: dict[str, int],
) -> None:
    """A 50-workload run made 200 sequential lists at its end (the delete's two per namespace, then two more to make
    sure): where the delete's own lists answered and held nothing of the run, nothing is listed again; the run's
    pods are one list of every namespace where the harness may list pods cluster-wide."""
    from harness.plugin import _delete_leftover_probe_pods

    kube = _OneLeftover(cluster_wide)
    session = types.SimpleNamespace(keep=False, kube=kube, run_id="r1", workloads=[
        types.SimpleNamespace(namespace=n) for n in ("finance", "orders", "payments")])
    _delete_leftover_probe_pods(session, sleep=pytest.fail)
    assert kube.deleted and capsys.readouterr().err == ""
    assert kube.lists == lists


def test_a_signal_whose_interrupt_never_reached_pytest_still_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen once in CI (test_cleanup_lab, reporting-SIGTERM): the SIGTERM came after the last check and before the
    report, its KeyboardInterrupt was lost on the way, and the run printed 'interrupted ... FAIL' but exited 0. The
    exit status follows the signal, as run.json's verdict does."""
    from harness import plugin

    monkeypatch.setattr(plugin, "INTERRUPTED", ["SIGTERM"])
    monkeypatch.setattr(plugin, "FINISHING", [])
    for status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        session = types.SimpleNamespace(exitstatus=status)
        plugin.pytest_sessionfinish(session)  # type: ignore[arg-type]
        assert session.exitstatus == pytest.ExitCode.INTERRUPTED
    monkeypatch.setattr(plugin, "INTERRUPTED", [])
    session = types.SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    plugin.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.OK


def test_fixes_that_name_their_kubeconfig_need_no_export_first() -> None:
    """The line 'run export KUBECONFIG=FILE before pasting them' is for fixes that act on the shell's kubeconfig:
    not one that names its file (az aks get-credentials --file, kubectl --kubeconfig), nor a kubectl captured
    into a variable (a new token asked with credentials that work, which the refused kubeconfig's are not)."""
    from harness.plugin import _acts_on_kubeconfig

    assert _acts_on_kubeconfig("kubectl --context prod cluster-info")
    assert _acts_on_kubeconfig("az aks get-credentials --name c --overwrite-existing   # --file would name it")
    assert not _acts_on_kubeconfig("az aks get-credentials --name c --file /etc/wi/kubeconfig --overwrite-existing")
    assert not _acts_on_kubeconfig('kubectl config set-credentials u --token "$TOKEN" --kubeconfig /etc/wi/kc')
    assert not _acts_on_kubeconfig("TOKEN=$(kubectl create token ci-bot -n ops --duration 24h)   # with a kubeconfig")
