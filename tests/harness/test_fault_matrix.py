"""The fault matrix: every broken lab scenario fails at its own link, with its own finding code, and the
checks that depend on that link are skipped with the reason rather than failing noisily."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_e2e_lab import checks_of, run_suites

pytestmark = pytest.mark.slow

# scenario -> (workload or "cluster", the check that must fail first, a finding code it must carry)
MATRIX = {
    "issuer-without-slash": ("finance/backend-sa", "federation.credential", "FIC_ISSUER_MISMATCH"),
    "wrong-subject": ("finance/backend-sa", "federation.credential", "FIC_SUBJECT_MISMATCH"),
    "sa-not-annotated": ("finance/backend-sa", "sa.client_id_annotation", "SA_NOT_ANNOTATED"),
    "missing-role": ("finance/backend-sa", "access.keyvault:finance-kv/db-password", "ROLE_ASSIGNMENT_MISSING"),
    "webhook-down": ("finance/backend-sa", "pod.admitted", "WEBHOOK_UNAVAILABLE"),
    "webhook-absent": ("finance/backend-sa", "pod.mutated", "WEBHOOK_NOT_INSTALLED"),
    "egress-blocked": ("finance/backend-sa", "exchange.succeeds", "EGRESS_BLOCKED"),
}


def first_failure(checks: dict[str, dict]) -> dict:
    return next(check for check in checks.values() if check["status"] == "fail")


@pytest.mark.parametrize("scenario", sorted(MATRIX))
def test_broken_scenario_names_its_link(tmp_path: Path, scenario: str) -> None:
    workload_id, check_id, code = MATRIX[scenario]
    result, document = run_suites(tmp_path, "--lab", "--lab-scenario", scenario)
    assert result.returncode == 1, result.stdout[-2000:]
    assert document["verdict"] == "fail"
    checks = checks_of(document, workload_id)
    assert first_failure(checks)["id"] == check_id, [(c["id"], c["status"]) for c in checks.values()]
    workload = next(w for w in document["workloads"] if w["id"] == workload_id)
    assert code in {finding["code"] for finding in workload["findings"]}
    assert all(finding["remediation"] for finding in workload["findings"] if finding["severity"] == "error")
    skipped = [check for check in checks.values() if check["status"] == "skip"]
    assert all("because" in check["message"] for check in skipped)
    other = next(w for w in document["workloads"] if w["id"] == "orders/orders-sa")
    if scenario not in ("webhook-down", "webhook-absent", "egress-blocked"):  # those break every workload
        assert other["verdict"] == "pass"
