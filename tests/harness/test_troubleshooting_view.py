"""The troubleshooting view printed after a run: the chain in order with ✓ / ✗ / ⟂, the first broken link
marked, its evidence on one bounded line and the commands that fix it; ASCII on a terminal that cannot print
the marks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fakeworld import ISSUER, World
from test_plugin import project, run_json

from harness.report.run_json import build_run_from_results
from harness.report.troubleshoot import (
    ASCII,
    MAX_EVIDENCE,
    UNICODE,
    encodable,
    evidence_line,
    marks_for,
    troubleshooting_lines,
)

pytest_plugins = ["pytester"]


def check(check_id: str, status: str, message: str = "", **evidence: Any) -> dict[str, Any]:
    return {
        "id": check_id,
        "status": status,
        "message": message or f"{check_id} {status}",
        "evidence": evidence,
    }


def finding(code: str, check_id: str, *fixes: str) -> dict[str, Any]:
    return {
        "code": code,
        "severity": "error",
        "layer": "federation",
        "message": f"{code} happened",
        "evidence": {},
        "remediation": list(fixes),
        "check": check_id,
    }


def document(*workloads: dict[str, Any], checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "checks": checks or [check("cluster.oidc_issuer_enabled", "pass")],
        "findings": [],
        "workloads": list(workloads),
    }


def workload(
    workload_id: str, checks: list[dict[str, Any]], findings: list[dict[str, Any]]
) -> dict[str, Any]:
    verdict = "fail" if any(c["status"] == "fail" for c in checks) else "pass"
    return {"id": workload_id, "verdict": verdict, "checks": checks, "findings": findings}


BROKEN = workload(
    "finance/backend-sa",
    [
        check("sa.exists", "pass", "ServiceAccount finance/backend-sa exists"),
        check("token.issuer", "warn", "iss is odd"),
        check(
            "federation.credential",
            "fail",
            "no federated credential matches",
            issuer=ISSUER,
            subject="system:serviceaccount:finance:backend",
            nested={"a": {"b": 1}},
        ),
        check(
            "exchange.succeeds",
            "skip",
            "skipped because federation.credential failed",
            blocked_by="federation.credential",
        ),
        check("access.keyvault:finance-kv/db-password", "skip", "skipped because exchange.succeeds failed"),
    ],
    [
        finding(
            "FIC_SUBJECT_MISMATCH",
            "federation.credential",
            "az identity federated-credential update --name fed-cred-backend --subject x",
        )
    ],
)
HEALTHY = workload("orders/orders-sa", [check("sa.exists", "pass"), check("exchange.succeeds", "pass")], [])


def test_the_chain_in_order_with_the_first_broken_link_its_evidence_and_fix() -> None:
    lines = troubleshooting_lines(document(BROKEN, HEALTHY), narrowed=False)
    text = "\n".join(lines)
    assert "orders/orders-sa" not in text  # a passing workload is not shown unless the run was narrowed
    assert lines[1].startswith("── finance/backend-sa: FAIL, first broken link federation.credential")
    order = [line.split()[1] for line in lines if line.startswith("  ") and not line.startswith("      ")]
    assert order == [
        "sa.exists",
        "token.issuer",
        "federation.credential",
        "exchange.succeeds",
        "access.keyvault:finance-kv/db-password",
    ]
    marks = {line.split()[1]: line.split()[0] for line in lines if line.startswith("  ") and line[2] != " "}
    assert marks == {
        "sa.exists": "✓",
        "token.issuer": "!",
        "federation.credential": "✗",
        "exchange.succeeds": "⟂",
        "access.keyvault:finance-kv/db-password": "⟂",
    }
    broken = next(i for i, line in enumerate(lines) if "federation.credential " in line and "✗" in line)
    assert lines[broken].endswith("◀ first broken link")
    assert lines[broken + 1] == (
        f"      evidence: issuer={ISSUER}; subject=system:serviceaccount:finance:backend; nested.a.b=1"
    )
    assert (
        lines[broken + 2] == "      FIC_SUBJECT_MISMATCH (error, federation): FIC_SUBJECT_MISMATCH happened"
    )
    assert lines[broken + 3] == (
        "        fix: az identity federated-credential update --name fed-cred-backend --subject x"
    )
    assert "skipped because federation.credential failed" in lines[broken + 4]  # the skip's reason


def test_a_narrowed_run_shows_every_workload_and_a_healthy_run_nothing() -> None:
    text = "\n".join(troubleshooting_lines(document(BROKEN, HEALTHY), narrowed=True))
    assert "── orders/orders-sa: PASS " in text and "  ✓ exchange.succeeds" in text
    assert troubleshooting_lines(document(HEALTHY), narrowed=False) == []


def test_a_failing_cluster_check_gets_its_own_chain() -> None:
    cluster = [check("cluster.webhook_installed", "fail", "no webhook"), check("migration.crds", "fail")]
    doc = document(HEALTHY, checks=cluster)
    doc["findings"] = [
        finding("WEBHOOK_NOT_INSTALLED", "cluster.webhook_installed", "az aks update --enable-x")
    ]
    text = "\n".join(troubleshooting_lines(doc, narrowed=False))
    assert "── cluster: FAIL, first broken link cluster.webhook_installed" in text
    assert "fix: az aks update --enable-x" in text and "migration.crds" not in text


def test_evidence_and_messages_are_one_bounded_line() -> None:
    long = {"annotation": "x" * 10_000, "multi": "line one\nline two\x1b[31m"}
    line = evidence_line(long, UNICODE)
    assert len(line) <= MAX_EVIDENCE and "\n" not in line and "\x1b" not in line
    assert "x" * 120 + "…[truncated] (10000 characters)" in line and "x" * 121 not in line
    assert "line one line two" in line
    # a long value echoed under several keys is shown once; the line itself is cut with the marker
    echoed = evidence_line({"a": "y" * 300, "b": {"c": "y" * 300}, "d": "z" * 50, "e": "z" * 50}, UNICODE)
    assert echoed.count("y" * 64) == 1 and "b.c=(as a)" in echoed and "e=(as d)" in echoed
    many = evidence_line({f"key{i}": f"value {i}" for i in range(100)}, UNICODE)
    assert len(many) == MAX_EVIDENCE and many.endswith("…[truncated]")
    broken = workload(
        "a/b",
        [check("sa.exists", "fail", "m" * 5000, blob="y" * 5000)],
        [finding("SA_NOT_FOUND", "sa.exists", "kubectl " + "z" * 5000)],
    )
    for line in troubleshooting_lines(document(broken), narrowed=False):
        assert len(line) < 500 and "\n" not in line


def test_ascii_stands_in_for_the_marks_where_the_terminal_cannot_print_them() -> None:
    assert marks_for("utf-8") is UNICODE and marks_for("UTF8") is UNICODE
    assert marks_for("ascii") is ASCII and marks_for("latin-1") is ASCII and marks_for(None) is ASCII
    BROKEN["checks"][0]["message"] = "ServiceAccount finance/backend-sa exists (ü…)"
    lines = troubleshooting_lines(document(BROKEN), narrowed=False, marks=ASCII)
    printed = [encodable(line, "ascii") for line in lines]
    assert all(line.isascii() for line in printed)
    text = "\n".join(printed)
    assert "  x federation.credential" in text and "<- first broken link" in text
    assert "  - exchange.succeeds" in text and "  + sa.exists" in text and "(\\xfc...)" in text
    assert printed[1].startswith("-- finance/backend-sa: FAIL")


def test_the_view_of_real_results_names_the_broken_link_and_the_fix(run_world: Callable[..., Any]) -> None:
    world = World.healthy()
    world.workloads[0].fic_issuer = ISSUER.rstrip("/")
    results, _ = run_world(world)
    doc = build_run_from_results("run-1", "2025-01-01T10:00:00Z", "2025-01-01T10:01:00Z", results)
    text = "\n".join(troubleshooting_lines(doc, narrowed=False))
    assert "✗ federation.credential" in text and "FIC_ISSUER_MISMATCH (error, federation)" in text
    assert "fix: az identity federated-credential update --name fic-backend-sa" in text
    assert "⟂ access.keyvault:finance-kv/db-password" in text
    assert all(f["check"] == "federation.credential" for f in doc["workloads"][0]["findings"])


def test_the_plugin_prints_the_view_after_the_run(pytester: pytest.Pytester) -> None:
    world = World.healthy()
    world.workloads[0].fic_issuer = ISSUER.rstrip("/")
    project(pytester, world)
    result = pytester.runpytest(
        "suites", "--config", "harness.yaml", "--workload", "finance/backend-sa", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(
        [
            "*= wi-harness =*",
            "troubleshooting: the chain in order (*",
            "── finance/backend-sa: FAIL, first broken link federation.credential *",
            "  ✓ sa.exists *",
            "  ✗ federation.credential * ◀ first broken link",
            "      evidence: *",
            "      FIC_ISSUER_MISMATCH (error, federation): *",
            "        fix: az identity federated-credential update --name fic-backend-sa*",
            # another branch of the chain, broken by the same credential
            "  ✗ exchange.succeeds * AADSTS700211*",
            "  ⟂ exchange.identity * skipped because exchange.succeeds failed",
            "*FAIL  finance/backend-sa*",
            "verdict FAIL*",
        ]
    )
    assert run_json(pytester)["workloads"][0]["findings"][0]["check"] == "federation.credential"


HOSTILE = "abc\x1b]0;pwned\x07\x1b[2J\u202e; $(touch PWNED)\nline2"  # a client-id annotation someone wrote


def test_fixes_that_cannot_be_shown_whole_are_comments_and_nothing_acts_on_the_terminal(tmp_path: Any) -> None:
    """A fix holding a value with a newline or an escape (quoted: right in run.json) was printed flattened (the
    newline a space, the escape dropped), so its paste ran another command than run.json's; one over MAX_FIX was
    cut inside its quote, so a paste left the shell waiting for the quote's end with the next line typed. Both are
    now a shell comment naming why, with the value shown escaped; messages show any escape as text (\\x1b), never
    as the raw byte a terminal acts on (ESC ] 0 sets the title, ESC [ 2 J clears the screen). The same in pytest's
    failure block (harness.assertions)."""
    import shlex
    import subprocess

    from harness.assertions import failure_text
    from harness.checks.model import CheckResult, Finding
    from harness.checks.remediation import find_identity_by_client_id, kubectl
    from harness.commands import pasteable, render
    from harness.report.troubleshoot import MAX_FIX

    hostile_fix = render(find_identity_by_client_id(HOSTILE))
    long_fix = render(kubectl("annotate", "serviceaccount", "-n", "finance", "backend-sa", "x=" + "y" * 5000))
    real_fix = "az ad app federated-credential update --parameters " + "x" * 420  # a real one reaches ~450
    assert pasteable(real_fix, MAX_FIX) == real_fix
    plain_fix = render(kubectl("get", "serviceaccount", "-n", "finance", "backend-sa", "-o", "yaml"))
    broken = workload(
        "finance/backend-sa",
        [check("sa.client_id_annotation", "fail", f"client-id {HOSTILE} is not a GUID", value=HOSTILE)],
        [finding("SA_CLIENT_ID_MALFORMED", "sa.client_id_annotation", hostile_fix, long_fix, plain_fix)],
    )
    lines = troubleshooting_lines(document(broken), narrowed=True)
    fixes = [line.split("fix: ", 1)[1] for line in lines if "fix: " in line]
    assert fixes[0].startswith("# not shown whole (it holds a newline or control character): run.json's "
                               "remediation has it exactly: az identity list --query")
    assert "abc\\x1b]0;pwned\\x07\\x1b[2J\\u202e; $(touch PWNED)\\nline2" in fixes[0]
    assert fixes[1].startswith(f"# not shown whole ({len(long_fix)} characters)") and len(fixes[1]) <= MAX_FIX
    assert fixes[2] == plain_fix == pasteable(plain_fix, MAX_FIX)
    for line in lines:
        assert line.isprintable(), repr(line)
    assert "client-id abc\\x1b]0;pwned\\x07\\x1b[2J\\u202e; $(touch PWNED) line2 is not a GUID" in "\n".join(lines)
    # pasted into bash as printed, the fixes run nothing but the one that is whole
    script = "\n".join(fixes)
    result = subprocess.run(["bash", "-c", "kubectl() { printf '%s\\n' \"$*\"; }\n" + script], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines() == [shlex.join(shlex.split(plain_fix)[1:])] and not list(tmp_path.iterdir())

    result = CheckResult("sa.client_id_annotation", "fail", f"client-id {HOSTILE} is not a GUID", {}, [
        Finding("SA_CLIENT_ID_MALFORMED", "error", "serviceaccount", f"annotated with {HOSTILE}", {},
                [find_identity_by_client_id(HOSTILE)])])
    text = failure_text(result)
    assert all(line.isprintable() for line in text.splitlines()) and len(text.splitlines()) == 3
    assert text.splitlines()[2].startswith("      fix: # not shown whole (it holds a newline or control character)")


def test_a_broken_links_message_and_its_findings_are_shown_whole() -> None:
    """By hand in the lab (orders-sa annotated with a client id one digit off): the failing check's line was cut
    at 160 characters and its finding's at 200, so both stopped inside the second client id and neither showed
    why ('(Entra: AADSTS700016)'): the person had to open run.json. A failing or warning check's message and its
    findings' are now cut at MAX_BROKEN (400); a passing check's line stays short."""
    from harness.report.troubleshoot import MAX_BROKEN

    said = ("azure.workload.identity/client-id=4bf76079-eedc-4ae8-819f-0868597a70b8 but harness.yaml expects "
            "4bf76079-eedc-4ae8-819f-0868597a70b7; no identity has the client id 4bf76079-eedc-4ae8-819f-0868597a70b8 "
            "(Entra: AADSTS700016)")
    mismatch = finding("SA_CLIENT_ID_MISMATCH", "sa.client_id_annotation") | {"message": (
        "orders/orders-sa is annotated with client id 4bf76079-eedc-4ae8-819f-0868597a70b8, expected "
        "4bf76079-eedc-4ae8-819f-0868597a70b7: no identity has the client id 4bf76079-eedc-4ae8-819f-0868597a70b8 "
        "(Entra: AADSTS700016)")}
    broken = workload("orders/orders-sa", [check("sa.exists", "pass", "p" * 300),
                                           check("sa.client_id_annotation", "fail", said),
                                           check("token.lifetime", "warn", "w" * 1000)], [mismatch])
    lines = troubleshooting_lines(document(broken), narrowed=False)
    assert any(line.endswith(f"{said}   ◀ first broken link") for line in lines)
    assert f"      SA_CLIENT_ID_MISMATCH (error, federation): {mismatch['message']}" in lines
    passing = next(line for line in lines if "sa.exists" in line)
    assert passing.endswith("…[truncated]") and len(passing) < 200
    warning = next(line for line in lines if "token.lifetime" in line)
    assert "w" * (MAX_BROKEN - 20) in warning and warning.endswith("…[truncated]")
