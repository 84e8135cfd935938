"""run.json: built from results or from per-test payloads, valid against the DESIGN.md contract (pydantic
schema, strict), written under <report-dir>/<run-id>/ with a latest symlink; the summary names failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakeworld import ISSUER, World
from pydantic import ValidationError

from harness.redact import Redactor
from harness.report.run_json import build_run, build_run_from_results, check_payload, rfc3339, write_run
from harness.report.schema import json_schema, validate_run
from harness.report.summary import summary_lines


def _document(run_world: Callable[..., Any], world: World | None = None) -> dict[str, Any]:
    results, _ = run_world(world or World.healthy())
    return build_run_from_results("20250101T000000Z-abcdef", rfc3339(), rfc3339(), results)


def test_a_healthy_run_is_valid_and_passes(run_world: Callable[..., Any]) -> None:
    doc = _document(run_world)
    validate_run(doc)
    assert doc["schema"] == "wi-harness/run/v1"
    assert doc["verdict"] == "pass"
    target = dict(doc["target"])
    run_by = target.pop("run_by")
    assert target == {
        "kind": "lab", "context": "fake", "cluster": "dev-aks", "issuer": ISSUER,
        "subscription_id": target["subscription_id"], "resource_group": "dev-rg",
    }
    assert run_by["kubernetes"]["username"] == "harness@example.test"  # SelfSubjectReview
    assert run_by["azure"]["idtyp"] == "app" and run_by["azure"]["appid"]  # the harness's own token, decoded
    assert doc["harness_version"]
    assert [c["id"] for c in doc["checks"]][:2] == ["cluster.oidc_issuer_enabled", "cluster.issuer_discovery"]
    assert [w["id"] for w in doc["workloads"]] == ["finance/backend-sa", "orders/orders-sa"]
    finance = doc["workloads"][0]
    assert finance["namespace"] == "finance" and finance["service_account"] == "backend-sa"
    assert finance["verdict"] == "pass" and finance["findings"] == []
    assert set(finance["checks"][0]) == {"id", "status", "message", "evidence"}


def test_a_failing_run_carries_findings_with_remediation(run_world: Callable[..., Any]) -> None:
    world = World.healthy()
    world.workloads[0].fic_issuer = ISSUER.rstrip("/")
    doc = _document(run_world, world)
    validate_run(doc)
    assert doc["verdict"] == "fail"
    finance = doc["workloads"][0]
    assert finance["verdict"] == "fail"
    (finding,) = finance["findings"]
    assert finding["code"] == "FIC_ISSUER_MISMATCH" and finding["layer"] == "federation"
    assert finding["remediation"][0].startswith("az identity federated-credential update")
    assert doc["workloads"][1]["verdict"] == "pass"


def test_payloads_rebuild_the_same_document_in_any_order(run_world: Callable[..., Any]) -> None:
    results, _ = run_world(World.healthy())
    payloads = [check_payload("cluster", c, i, results) for i, c in enumerate(results.cluster)]
    for index, workload in enumerate(results.workloads.values()):
        payloads += [
            check_payload("workload", c, i, results, workload, index) for i, c in enumerate(workload.checks)
        ]
    payloads = json.loads(json.dumps(payloads))  # as they cross xdist
    shuffled = payloads[::-1]
    a = build_run("r", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", payloads, {})
    b = build_run("r", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", shuffled, {})
    assert a == b
    assert (
        build_run("r", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", payloads, {}, harness_errors=1)[
            "verdict"
        ]
        == "fail"
    )


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("run_id"),
        lambda d: d.update(verdict="maybe"),
        lambda d: d.update(started_at="yesterday"),
        lambda d: d["target"].update(kind="cloud"),
        lambda d: d["checks"][0].update(status="ok"),
        lambda d: d["checks"][0].update(extra=1),
        lambda d: d["workloads"][0].update(id="no-slash"),
        lambda d: d.update(schema="wi-harness/run/v2"),
    ],
)
def test_the_schema_rejects_contract_breaks(
    run_world: Callable[..., Any], breakage: Callable[[dict], Any]
) -> None:
    doc = _document(run_world)
    breakage(doc)
    with pytest.raises(ValidationError):
        validate_run(doc)


def test_json_schema_is_exported() -> None:
    schema = json_schema()
    assert set(schema["required"]) >= {
        "schema",
        "run_id",
        "started_at",
        "finished_at",
        "target",
        "verdict",
        "checks",
        "findings",
        "workloads",
    }


def test_write_run_and_latest_symlink(run_world: Callable[..., Any], tmp_path: Path) -> None:
    doc = _document(run_world)
    path = write_run(tmp_path, doc, Redactor())
    assert path == tmp_path / doc["run_id"] / "run.json"
    assert (tmp_path / "latest").is_symlink()
    assert json.loads((tmp_path / "latest" / "run.json").read_text()) == doc
    second = dict(doc, run_id="20250101T000001Z-000000")
    write_run(tmp_path, second, Redactor())
    assert (tmp_path / "latest").resolve() == (tmp_path / second["run_id"]).resolve()


def test_write_run_scrubs_secrets_it_is_told_about(run_world: Callable[..., Any], tmp_path: Path) -> None:
    doc = _document(run_world)
    doc["checks"][0]["message"] = "leaked client secret s3cr3t-harness-client-secret-value here"
    path = write_run(tmp_path, doc, Redactor(["s3cr3t-harness-client-secret-value"]))
    text = path.read_text()
    assert "s3cr3t" not in text and "[REDACTED]" in text


def test_summary_lines(run_world: Callable[..., Any]) -> None:
    world = World.healthy()
    world.workloads[1].annotate = False
    doc = _document(run_world, world)
    lines = "\n".join(summary_lines(doc, Path("reports/x/run.json")))
    assert "PASS  cluster" in lines
    assert "PASS  finance/backend-sa" in lines
    assert "FAIL  orders/orders-sa" in lines
    assert "first failure sa.client_id_annotation" in lines and "SA_NOT_ANNOTATED" in lines
    assert lines.endswith("verdict FAIL  report reports/x/run.json")


def test_the_summarys_first_failure_says_when_its_message_was_cut() -> None:
    """The summary block cut the first failure's message at 160 characters with no marker ('...the nearest is
    's  [FIC_SUBJECT_MISMATCH]'), a cut a reader took for the whole message; it now ends with the marker."""
    from harness.report.summary import FIRST_FAILURE_SHOWN
    from harness.values import TRUNCATION_MARKER

    said = "no federated credential for subject 'system:serviceaccount:finance:backend-sa'; " * 3
    checks = [{"id": "federation.credential", "status": "fail", "message": said}]
    target = {"kind": "lab", "cluster": "c", "context": "c", "issuer": "https://issuer.example/"}
    doc = {"run_id": "r", "verdict": "fail", "target": target, "checks": [], "findings": [], "workloads": [
        {"id": "finance/backend-sa", "verdict": "fail", "checks": checks, "findings": [
            {"code": "FIC_SUBJECT_MISMATCH", "check": "federation.credential"}]}]}
    lines = "\n".join(summary_lines(doc, Path("reports/x/run.json")))
    assert f"first failure federation.credential: {said[:FIRST_FAILURE_SHOWN]}{TRUNCATION_MARKER}  " \
           "[FIC_SUBJECT_MISMATCH]" in lines
    checks[0]["message"] = "short"
    assert "first failure federation.credential: short  [FIC_SUBJECT_MISMATCH]" in "\n".join(
        summary_lines(doc, Path("reports/x/run.json")))
