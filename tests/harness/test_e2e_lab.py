"""End to end against the lab, as a user runs it: ``pytest suites --lab`` (both webhook layouts, -n 2) and
``pytest suites --config DIR/harness.yaml`` against a lab that is already running.

The healthy scenario must pass every workload (exchange, a Key Vault read, a deny check) with run.json verdict
pass, and nothing printed or written may contain a token or a secret value the lab issued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.redact import contains_secret
from harness.report.schema import validate_run

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
# For a run against a lab broken in a way that stays broken for the whole run: the harness's backoffs between
# retries of a transient answer are scaled down (harness/collect/retrying.py DELAY_SCALE_ENV; the retried answers
# and the retry code stay the same). A webhook that cannot be called answers the probe pod's create with a 500,
# which the harness retries until its 30 s bound: that wait proves nothing a test of a broken lab looks at.
# Never for a run whose passing rests on the retries (a change still propagating, a transient fault).
BROKEN_STAYS_BROKEN = {"WI_HARNESS_RETRY_DELAY_SCALE": "0.05"}
# The suites' runs without the dev extras' hypothesis plugin, as a user's install (README command 1, the runtime
# dependencies) runs them: the plugin imports all of hypothesis at each run's end, about 0.15 s of CPU a run.
NO_DEV_PLUGINS = ("-p", "no:hypothesispytest")


def run_suites(report_dir: Path, *args: str, env: Mapping[str, str] | None = None
               ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites",
            *args,
            "--report-dir",
            str(report_dir),
            "-p",
            "no:cacheprovider",
            *NO_DEV_PLUGINS,
            "-q",
            "-rA",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env} if env else None,
    )
    latest = report_dir / "latest" / "run.json"
    assert latest.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(latest.read_text())
    validate_run(document)
    return result, document


def checks_of(document: dict[str, Any], workload_id: str) -> dict[str, dict[str, Any]]:
    workload = next(w for w in document["workloads"] if w["id"] == workload_id)
    return {c["id"]: c for c in workload["checks"]}


@pytest.mark.parametrize("layout", ["v1.5", "v1.6"])
def test_pytest_suites_lab_passes_under_both_webhook_layouts(tmp_path: Path, layout: str) -> None:
    result, document = run_suites(tmp_path, "--lab", "--lab-webhook-layout", layout, "-n", "2")
    assert result.returncode == 0, result.stdout[-4000:]
    assert document["verdict"] == "pass" and document["target"]["kind"] == "lab"
    assert document["target"]["issuer"].endswith("/")
    assert [w["id"] for w in document["workloads"]] == ["finance/backend-sa", "orders/orders-sa"]
    assert all(w["verdict"] == "pass" for w in document["workloads"])
    finance = checks_of(document, "finance/backend-sa")
    assert finance["pod.mutated"]["evidence"]["layout"] == layout
    assert finance["exchange.succeeds"]["status"] == "pass"
    assert finance["access.keyvault:finance-kv/db-password"]["evidence"]["outcome"] == "allow"  # Key Vault read
    assert finance["access.keyvault:platform-kv/admin-api-key"]["evidence"]["outcome"] == "deny"  # least privilege
    assert "verdict PASS" in result.stdout


def test_keep_with_lab_says_the_lab_stopped_and_where_its_state_is(tmp_path: Path) -> None:
    """A walk of the README by hand: pytest suites --lab --keep printed 'kept probe pod: kubectl -n finance logs
    ...', which answers 'connection refused' (the lab stops with the run, and its pods with it). It says so, where
    the lab's state is, and how to keep a probe pod to look at."""
    import re
    import shutil

    result, _ = run_suites(tmp_path, "--lab", "--keep", "--workload", "finance/backend-sa")
    kept = re.search(r"its state and lab\.log stay in (\S+)\. ", result.stdout)
    try:
        assert result.returncode == 0 and kept is not None, result.stdout[-3000:]
        assert "kept probe pod: kubectl" not in result.stdout and "(finance/wi-probe-" in result.stdout
        assert (Path(kept.group(1)) / "lab.log").is_file()
        assert "python -m lab up --state-dir DIR, then pytest suites --config DIR/harness.yaml --keep" in result.stdout
    finally:
        if kept is not None:
            shutil.rmtree(kept.group(1), ignore_errors=True)


def test_config_against_a_running_lab_one_workload(lab: Any, tmp_path: Path) -> None:
    config = lab.state_dir / "harness.yaml"
    result, document = run_suites(tmp_path, "--config", str(config), "--workload", "finance/backend-sa")
    assert result.returncode == 0, result.stdout[-4000:]
    assert document["verdict"] == "pass"
    assert [w["id"] for w in document["workloads"]] == ["finance/backend-sa"]
    assert "orders" not in result.stdout

    issued = [
        version.value
        for vault in lab.azure.vaults.values()
        for versions in vault.secrets.values()
        for version in versions
    ]
    issued += [
        lab.credentials["harness"]["client_secret"],
        lab.credentials["admin"]["client_secret"],
        lab.credentials["kube_admin_token"],
    ]
    issued += [secret for app in lab.azure.apps.values() for secret in app.client_secrets.values()]
    kubeconfig = yaml.safe_load((lab.state_dir / "kubeconfig").read_text())
    issued.append(kubeconfig["users"][0]["user"]["token"])
    written = {p.name: p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(written) >= {"run.json", "junit.xml", "signoff.md", "signoff.html"}
    # every secret value above by value, and any token the lab issued (all JWTs) by its shape
    for name, text in {"stdout": result.stdout, "stderr": result.stderr, **written}.items():
        assert contains_secret(text, issued) == [], name


def test_the_signoff_of_a_lab_run_renders_again_the_same(tmp_path: Path) -> None:
    result, document = run_suites(tmp_path, "--lab")
    assert result.returncode == 0, result.stdout[-4000:]
    run_dir = tmp_path / document["run_id"]
    target = document["target"]
    assert target["run_by"]["kubernetes"]["username"].startswith("clusterAdmin_")  # SelfSubjectReview
    assert target["run_by"]["azure"]["idtyp"] == "app" and target["run_by"]["azure"]["appid"]
    assert target["resource_group"] and target["subscription_id"]
    for fmt in ("md", "html"):
        out = tmp_path / f"again.{fmt}"
        command = [sys.executable, "-m", "harness", "report", "render", str(run_dir / "run.json"), "--format", fmt]
        rendered = subprocess.run([*command, "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert rendered.returncode == 0, rendered.stderr
        assert out.read_bytes() == (run_dir / f"signoff.{fmt}").read_bytes()
    md = (run_dir / "signoff.md").read_text()
    assert "**Verdict: PASS**" in md and f"| Run id | {document['run_id']} |" in md
    assert "## Workload `finance/backend-sa`: PASS" in md and "## Workload `orders/orders-sa`: PASS" in md
    assert "| Off pod identity | YES: no AzureIdentityBinding, aad-pod-identity object" in md  # the migration suite
    for text in (result.stdout, *(p.read_text() for p in run_dir.iterdir())):
        assert contains_secret(text, []) == []  # no JWT, no URL credentials


def test_without_azure_the_issuer_comes_from_the_clusters_discovery_document(lab: Any, tmp_path: Path) -> None:
    config = yaml.safe_load((lab.state_dir / "harness.yaml").read_text())
    config.pop("azure")
    for workload in config["workloads"]:  # without azure: the cloud is AzureCloud: no loopback vault gets a token
        workload["access"] = []
    path = tmp_path / "no-azure.yaml"
    path.write_text(yaml.safe_dump(config))
    result, document = run_suites(tmp_path / "reports", "--config", str(path))
    assert result.returncode == 0, result.stdout[-4000:]
    assert document["verdict"] == "pass" and document["target"]["issuer"] == lab.issuer_url
    issuer_check = checks_of(document, "finance/backend-sa")["token.issuer"]
    assert issuer_check["status"] == "pass"


def test_a_whole_cluster_run_that_finds_no_service_account_is_not_a_pass(lab: Any, tmp_path: Path) -> None:
    """An empty workload list verifies the whole cluster (test_whole_cluster_lab.py); where that finds nothing
    to verify, the run fails and says so."""
    config = yaml.safe_load((lab.state_dir / "harness.yaml").read_text())
    config["workloads"] = []
    path = tmp_path / "empty.yaml"
    path.write_text(yaml.safe_dump(config))
    result, document = run_suites(tmp_path / "reports", "--config", str(path), "--namespace", "kube-public")
    assert result.returncode == 1 and document["verdict"] == "fail" and document["workloads"] == []
    assert "whole-cluster run (harness.yaml lists no workloads): no ServiceAccount in namespace kube-public " \
           "has the azure.workload.identity/client-id annotation" in result.stdout
