"""The sign-off document (signoff.md, signoff.html) and ``python -m harness report render|merge``.

- written beside run.json by the plugin's writer, from the redacted run.json; rendering again: the same bytes;
- Markdown and HTML hold the same workloads, checks (with their marks) and findings;
- the HTML is self-contained and holds what it should when headless Chromium renders it (not blank);
- sections others add to run.json (inventory, leftovers, coverage, anything) become tables;
- cluster-provided text is escaped: HTML by autoescape, Markdown by backslashes, remediation in fenced blocks;
- merge: fleet verdict fail when any run failed, a row per run, a section per cluster;
- bad input is one line naming the file and the cause, exit 2, never a traceback.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fakeworld import ISSUER, SECRET_VALUES, World

from harness.checks.migration import MIGRATION_CHECK_IDS
from harness.cli import main
from harness.redact import Redactor, contains_secret
from harness.report.run_json import build_run_from_results, write_run
from harness.report.signoff import FORMATS, MARKS, fleet_view, md_code, md_fence, render, render_fleet

REPO = Path(__file__).resolve().parents[2]
HARNESS_SECRET = "s3cr3t-harness-client-secret-value"  # what World.config writes as the harness's secret


def failing_document(
    run_world: Callable[..., Any], run_id: str = "20250101T000000Z-abcdef"
) -> dict[str, Any]:
    """finance/backend-sa fails (a trailing-slash twin of the issuer), orders/orders-sa passes."""
    world = World.healthy()
    world.workloads[0].fic_issuer = ISSUER.rstrip("/")
    results, _ = run_world(world)
    return build_run_from_results(run_id, "2025-01-01T10:00:00Z", "2025-01-01T10:03:05Z", results)


def with_sections(document: dict[str, Any]) -> dict[str, Any]:
    """Sections other suites add to run.json, in the shapes a generic renderer must take."""
    document = copy.deepcopy(document)
    document["inventory"] = {
        "service_accounts": [
            {"namespace": "finance", "name": "backend-sa", "client_id": "1111", "labels": {"a": "b"}},
            {"namespace": "legacy", "name": "label-only-sa", "client_id": None, "fics": ["x", "y"]},
        ],
        "federated_credentials": [],
        "identities_read": 2,
    }
    document["leftovers"] = [
        {"kind": "AzureIdentity", "namespace": "legacy", "name": "old-id", "code": "POD_IDENTITY_OBJECT"}
    ]
    document["coverage"] = {
        "columns": ["binding", "client_id", "sa_annotated", "fic", "labelled_pods"],
        "rows": [["legacy/old-binding", "2222", False, True, 3]],
        "complete": False,
    }
    return document


# ---------------------------------------------------------------- parsing what a reader sees


def md_unescape(text: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def md_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [md_unescape(c.strip()) for c in cells]


def parse_markdown(text: str) -> dict[str, Any]:
    """{workload: {"checks": {id: status}, "findings": {codes}}} and the matrix {workload: [marks]}."""
    workloads: dict[str, dict[str, Any]] = {}
    matrix: dict[str, list[str]] = {}
    current: dict[str, Any] | None = None
    in_matrix = False
    for line in text.splitlines():
        heading = re.match(r"^#+ (.*)$", line)
        if heading:
            title = heading.group(1)
            found = re.match(r"Workload `([^`]+)`: (PASS|FAIL)$", title)
            if found:
                current = workloads.setdefault(found.group(1), {"checks": {}, "findings": set()})
            elif title in ("Cluster-wide checks", "Sign-off") or (
                current is not None and title.startswith("Checklist")
            ):
                current = None
            in_matrix = title == "Checklist"
            code = re.match(r"^(ERROR|WARNING|INFO) `([A-Z0-9_]+)`", title)
            if code and current is not None:
                current["findings"].add(code.group(2))
            continue
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = md_cells(line)
        if in_matrix and cells[0] != "Workload":
            matrix[cells[0]] = cells[2:]
        elif current is not None and len(cells) == 4 and cells[2] in MARKS:
            current["checks"][cells[0]] = cells[2]
    return {"workloads": workloads, "matrix": matrix}


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.workloads: dict[str, dict[str, Any]] = {}
        self.matrix: dict[str, list[str]] = {}
        self.current: dict[str, Any] | None = None
        self.row: str | None = None
        self.in_mark = False
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "section" and a.get("data-workload"):
            self.current = self.workloads.setdefault(
                str(a["data-workload"]), {"checks": {}, "findings": set()}
            )
        if tag == "tr" and a.get("data-workload"):
            self.row = str(a["data-workload"])
            self.matrix[self.row] = []
        if tag == "td" and self.row and "mark" in (a.get("class") or ""):
            self.matrix[self.row].append(MARKS.get(str(a["class"]).split()[-1], ""))
        if tag == "tr" and a.get("data-check") and self.current is not None:
            self.current["checks"][str(a["data-check"])] = None
        if tag == "td" and self.current is not None and "status" in (a.get("class") or "").split():
            check = list(self.current["checks"])[-1]
            self.current["checks"][check] = str(a["class"]).split()[-1]
        if tag == "div" and a.get("data-code") and self.current is not None:
            self.current["findings"].add(str(a["data-code"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.current = None
        if tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> dict[str, Any]:
    parser = _Html()
    parser.feed(text)
    return {
        "workloads": parser.workloads,
        "matrix": parser.matrix,
        "text": " ".join(parser.text),
        "tags": parser.tags,
    }


def expected(document: dict[str, Any]) -> dict[str, Any]:
    return {
        w["id"]: {
            "checks": {c["id"]: c["status"] for c in w["checks"]},
            "findings": {f["code"] for f in w["findings"]},
        }
        for w in document["workloads"]
    }


# ---------------------------------------------------------------- written with run.json, rendered the same


def test_the_plugins_writer_puts_the_signoff_beside_run_json_and_render_gives_the_same(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = failing_document(run_world)
    path = write_run(tmp_path, document, Redactor([HARNESS_SECRET]))
    run_dir = path.parent
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.json", "signoff.html", "signoff.md"]
    for fmt in FORMATS:
        assert main(["report", "render", str(path), "--format", fmt]) == 0
        assert capsys.readouterr().out == (run_dir / f"signoff.{fmt}").read_text()
        out = tmp_path / f"again.{fmt}"
        assert main(["report", "render", str(path), "--format", fmt, "-o", str(out)]) == 0
        assert out.read_bytes() == (run_dir / f"signoff.{fmt}").read_bytes()
    md = (run_dir / "signoff.md").read_text()
    assert "FIC_ISSUER_MISMATCH" in md and "**Verdict: FAIL**" in md
    assert (
        "| Run by (Kubernetes) | user harness@example.test; groups system:masters, system:authenticated |"
        in md
    )
    assert re.search(r"\| Run by \(Azure\) \| appid [0-9a-f-]{36}; oid harness-principal-oid; type app;", md)
    assert "| Resource group | dev-rg |" in md and "| Finished | 2025-01-01T10:03:05Z (3 min 5 s) |" in md


def test_markdown_and_html_hold_the_same_workloads_checks_marks_and_findings(
    run_world: Callable[..., Any],
) -> None:
    document = with_sections(failing_document(run_world))
    md, html = parse_markdown(render(document, "md")), parse_html(render(document, "html"))
    assert md["workloads"] == html["workloads"] == expected(document)
    assert md["matrix"] == html["matrix"]
    assert md["matrix"]["finance/backend-sa"].count(MARKS["fail"]) == 2
    # access checks are named by what they read: a column another workload does not have is blank
    assert set(md["matrix"]["orders/orders-sa"]) - {""} == {MARKS["pass"]}
    assert expected(document)["finance/backend-sa"]["findings"] == {"FIC_ISSUER_MISMATCH"}


def test_the_evidence_a_reviewer_reads(run_world: Callable[..., Any]) -> None:
    md = render(failing_document(run_world), "md")
    orders = md[md.index("## Workload `orders/orders-sa`") :]
    for title in (
        "Identity",
        "ServiceAccount token (decoded claims)",
        "Federated credential that matched",
        "Access token (decoded claims)",
        "Role assignments of the identity",
        "Access results",
    ):
        assert f"### {title}\n" in orders
    assert "| Subject | system:serviceaccount:orders:orders-sa |" in orders
    assert "| sub | system:serviceaccount:orders:orders-sa |" in orders
    assert re.search(r"\| exp \| \d+ \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\) \|", orders)
    assert (
        "| access.keyvault:finance-kv/db-password | ✓ | https://finance-kv.vault.azure.net/secrets/db-password?api-version=7.4 "
        "| deny | deny | 403 |" in orders
    )
    finance = md[md.index("## Workload `finance/backend-sa`") : md.index("## Workload `orders/orders-sa`")]
    assert "none matched" in finance and f"| expected issuer | {ISSUER} |" in finance
    assert "```sh\naz identity federated-credential update --name fic-backend-sa" in finance


def test_a_skipped_access_check_still_says_what_was_expected(run_world: Callable[..., Any]) -> None:
    """finance/backend-sa's exchange fails, so its access checks are skipped: the Access results table showed an
    empty Expected cell for them, though harness.yaml says allow or deny before anything runs."""
    md = render(failing_document(run_world), "md")
    finance = md[md.index("## Workload `finance/backend-sa`") : md.index("## Workload `orders/orders-sa`")]
    access = finance[finance.index("### Access results\n"):]
    rows = [md_cells(line) for line in access.splitlines() if line.startswith("| access.keyvault:")]
    assert [(row[0], row[3], row[4]) for row in rows] == [
        ("access.keyvault:finance-kv/db-password", "allow", "skip"),
        ("access.keyvault:platform-kv/admin-api-key", "deny", "skip"),
    ]


def test_the_coverage_table_names_each_azure_identity_type(run_world: Callable[..., Any]) -> None:
    """AzureIdentity spec.type is aad-pod-identity's IdentityType (0 UserAssignedMSI, 1 ServicePrincipal, 2
    ServicePrincipalCertificate): the table showed the bare number."""
    from harness.report.signoff import run_view

    document = failing_document(run_world)
    document["coverage"] = [COVERAGE_ROW | {"binding": f"ns/binding-{kind}", "identity_type": kind}
                            for kind in (0, 1, 2, 7, None)]
    coverage = next(t for t in run_view(document).sections if t.title == "Coverage")
    column = coverage.columns.index("Identity type")
    assert [row[column] for row in coverage.rows] == [
        "user-assigned managed identity (0)", "service principal (1)", "service principal certificate (2)", "7", ""]
    assert document["coverage"][1]["identity_type"] == 1  # run.json keeps the value


def test_each_failing_workloads_first_broken_link_and_its_fix_come_before_the_detail(
    run_world: Callable[..., Any],
) -> None:
    """The terminal names each failing workload's first broken link; the sign-off named none: a reviewer had to
    find the first ✗ of a row and scroll past the cluster, inventory and leftover tables to its fix. Both formats
    now list, under the checklist, each failing workload's first failed check with its message and its findings'
    fix, and the workload's own section names it (HTML: its row is marked); a passing workload is not listed."""
    document = with_sections(failing_document(run_world))
    fix = "az identity federated-credential update --name fic-backend-sa"
    md = render(document, "md")
    first = md[md.index("## First broken links"):md.index("## Cluster-wide checks")]
    assert md.index("## Checklist") < md.index("## First broken links")
    assert "- `finance/backend-sa` · `federation.credential`: " in first
    assert "ERROR `FIC_ISSUER_MISMATCH`" in first and f"```sh\n    {fix}" in first
    assert "orders/orders-sa" not in first
    assert "skip · first broken link `federation.credential`" in md
    page = render(document, "html")
    first = page[page.index(">First broken links<"):page.index(">Cluster-wide checks<")]
    assert re.findall(r'data-first-broken="([^"]+)"', first) == ["finance/backend-sa"]
    assert "<p><code>finance/backend-sa</code> · <code>federation.credential</code>: " in first and fix in html.unescape(first)
    assert re.findall(r'<tr data-check="([^"]+)" class="first-broken">', page) == ["federation.credential"]
    # printed, the heading and its note stayed at the foot of page 1 and the blocks began page 2 (chromium
    # --print-to-pdf of a lab run): a note keeps to what it introduces
    assert re.search(r"p\.note \{ break-after: avoid; page-break-after: avoid; \}", page)
    passing = document | {"workloads": [w for w in document["workloads"] if w["verdict"] == "pass"]}
    assert "First broken links" not in render(passing, "md") + render(passing, "html")
    # the webhook scaled to zero by hand: every workload's probe pod is refused; the cluster's own failed check
    # (the cause) comes before the workloads' (its effects), with its fix
    document["checks"].append({"id": "cluster.webhook_ready", "status": "fail", "message": "no ready replica"})
    document["findings"].append({"code": "WEBHOOK_NOT_READY", "severity": "error", "layer": "webhook",
                                 "message": "m", "check": "cluster.webhook_ready",
                                 "remediation": ["kubectl -n kube-system scale deployment/x --replicas=2"]})
    page = render(document, "html")
    assert re.findall(r'data-first-broken="([^"]+)"', page) == ["cluster-wide", "finance/backend-sa"]
    md = render(document, "md")
    first = md[md.index("## First broken links"):md.index("## Cluster-wide checks")]
    assert first.index("- `cluster-wide` · `cluster.webhook_ready`: no ready replica") < first.index(
        "finance/backend-sa") and "    kubectl -n kube-system scale deployment/x --replicas=2" in first


def test_a_fix_printed_for_an_earlier_broken_link_is_not_printed_again(run_world: Callable[..., Any]) -> None:
    """By hand on the lab: the app's federated credential made on a second app of the same name. The first broken
    links were the run's SA_WITHOUT_FIC and the workload's FIC_MISSING, each with one and the same az ad app
    federated-credential create; pasted top to bottom, the second was refused ("FederatedIdentityCredential with
    name web1-web-sa already exists."). A fix printed above is named, not printed again; another fix still is."""
    document = failing_document(run_world)
    workload = next(w for w in document["workloads"] if w["id"] == "finance/backend-sa")
    fix = workload["findings"][0]["remediation"]
    assert fix and not fix[0].startswith("#")
    document["checks"].append({"id": "inventory.no_old_issuers", "status": "fail", "message": "twin"})
    document["findings"].append({"code": "FIC_OLD_ISSUER", "severity": "error", "layer": "inventory",
                                 "message": "m", "check": "inventory.no_old_issuers", "remediation": list(fix)})
    md = render(document, "md")
    first = md[md.index("## First broken links"):md.index("## Cluster-wide checks")]
    assert first.count(fix[0]) == 1 and first.index("FIC_OLD_ISSUER") < first.index(fix[0])
    assert "ERROR `FIC_ISSUER_MISMATCH`: the same fix as `cluster-wide: FIC_OLD_ISSUER` above (paste it once)" in first
    page = html.unescape(render(document, "html"))
    first = page[page.index(">First broken links<"):page.index(">Cluster-wide checks<")]
    assert first.count(fix[0]) == 1 and "the same fix as <code>cluster-wide: FIC_OLD_ISSUER</code> above" in first
    document["findings"][-1]["remediation"] = ["kubectl get serviceaccount -n finance backend-sa"]
    md = render(document, "md")
    first = md[md.index("## First broken links"):md.index("## Cluster-wide checks")]
    assert first.count(fix[0]) == 1 and "the same fix as" not in first


def test_the_fleet_table_says_why_each_run_failed(run_world: Callable[..., Any]) -> None:
    """The fleet table gave a failed run's counts only: which cluster-wide check or which workload broke took
    opening that cluster's section. Its last column names them, with their codes."""
    document = failing_document(run_world)
    document["checks"].append({"id": "inventory.credentials_present", "status": "fail", "message": "m"})
    document["findings"].append({"code": "SA_WITHOUT_FIC", "severity": "error", "layer": "inventory",
                                 "message": "m", "remediation": [], "check": "inventory.credentials_present"})
    fleet = fleet_view([document])
    assert fleet.table.columns[-1] == "First broken links"
    assert fleet.table.rows[0][-1] == ("inventory.credentials_present (SA_WITHOUT_FIC); "
                                       "finance/backend-sa: federation.credential (FIC_ISSUER_MISMATCH)")
    many = copy.deepcopy(document)
    many["workloads"] = [w | {"id": f"ns{i}/sa"} for i in range(5) for w in document["workloads"][:1]]
    assert fleet_view([many]).table.rows[0][-1].endswith("ns2/sa: federation.credential (FIC_ISSUER_MISMATCH); 2 more")


def test_html_cells_break_only_words_too_long_for_a_column(run_world: Callable[..., Any]) -> None:
    """Every cell broke anywhere (overflow-wrap: anywhere), so the table layout squeezed short columns: a
    reviewer's printout read 'fed-cred-backen d', 'manag ed_identit y', 'finance/b ackend'. Only a cell with a
    word longer than LONG_TOKEN characters (a URL, a resource id, a subject) may now break it anywhere."""
    page = render(with_sections(failing_document(run_world)), "html")
    assert re.search(r"th, td \{[^}]*overflow-wrap: break-word; \}", page)
    assert re.search(r"td\.long, table\.crowded td \{ overflow-wrap: anywhere; \}", page)
    assert "<td>legacy/old-binding</td>" in page and "<td>20250101T000000Z-abcdef</td>" in page
    assert f'<td class="long">{ISSUER}</td>' in page


def test_extra_run_json_sections_become_tables_in_both_formats(run_world: Callable[..., Any]) -> None:
    document = with_sections(failing_document(run_world))
    md, html = render(document, "md"), render(document, "html")
    for title in (
        "Inventory",
        "Inventory › Service accounts",
        "Inventory › Federated credentials",
        "Leftovers",
        "Coverage",
    ):
        assert f"## {title}\n" in md, title
        assert f">{title}</h2>" in html, title
    assert "| Namespace | Name | Client id | Labels | FICs |" in md
    assert "| legacy | label-only-sa |  |  | x, y |" in md
    assert '| finance | backend-sa | 1111 | {"a": "b"} |  |' in md
    assert "| Binding | Client id | SA annotated | FIC | Labelled pods |" in md
    assert "| legacy/old-binding | 2222 | no | yes | 3 |" in md and "_Complete: no_" in md
    assert "| Identities read | 2 |" in md
    assert "POD\\_IDENTITY\\_OBJECT" not in md and "POD_IDENTITY_OBJECT" in md  # intraword _ left alone
    assert "<td>legacy/old-binding</td>" in html
    assert (
        md.index("## Inventory")
        < md.index("## Leftovers")
        < md.index("## Coverage")
        < md.index("## Workload")
    )


@pytest.mark.parametrize(
    "section",
    [
        None,
        [],
        {},
        "text",
        3,
        [1, "a", None],
        [{"a": {"deep": [{"x": 1}]}}],
        {"a": {"b": {"c": {"d": {"e": 1}}}}},
        {"rows": [{"a": 1}, [1, 2, 3], "x"]},
        {"columns": ["a"], "rows": []},
        [[1, 2], [3]],
    ],
)
def test_any_extra_section_shape_renders(run_world: Callable[..., Any], section: Any) -> None:
    document = failing_document(run_world)
    document["some_future_section"] = section
    for fmt in FORMATS:
        assert "Some future section" in render(document, fmt)


def test_cluster_text_is_escaped_in_both_formats(run_world: Callable[..., Any]) -> None:
    document = failing_document(run_world)
    finding = document["workloads"][0]["findings"][0]
    finding["message"] = "bad <script>alert(1)</script> | *bold* [link](http://x) `tick`"
    finding["remediation"] = ["kubectl annotate sa x 'a=```b'", "echo '<b>|</b>'"]
    document["workloads"][0]["checks"][0]["message"] = "pipe | in a <cell>"
    html = render(document, "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "echo &#39;&lt;b&gt;|&lt;/b&gt;&#39;" in html
    md = render(document, "md")
    assert "<script>" not in md and "\\<script\\>" in md and "\\*bold\\*" in md and "\\[link\\]" in md
    assert "| sa.exists | ✓ | pass | pipe \\| in a \\<cell\\> |" in md
    assert (
        "````sh\nkubectl annotate sa x 'a=```b'\necho '<b>|</b>'\n````" in md
    )  # a fence longer than any run
    assert md_code("a`b") == "``a`b``" and md_code("`x") == "`` `x ``"
    assert md_fence(["x"]) == "```sh\nx\n```"


def test_nothing_secret_reaches_the_signoff(run_world: Callable[..., Any], tmp_path: Path) -> None:
    document = failing_document(run_world)
    document["workloads"][0]["checks"][0]["message"] = (
        f"leaked {HARNESS_SECRET} and eyJhbGciOi.eyJzdWIiOiJ4In0.c2ln"
    )
    run_dir = write_run(tmp_path, document, Redactor([HARNESS_SECRET])).parent
    secrets = [HARNESS_SECRET, *SECRET_VALUES.values()]
    for path in run_dir.iterdir():
        assert contains_secret(path.read_text(), secrets) == [], path.name


# ---------------------------------------------------------------- headless Chromium


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# Every request a browser might make on its own (updates, safe browsing, DNS prefetch) goes nowhere: names
# resolve to nothing and any proxied request to a closed loopback port; the page itself is one local file.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--mute-audio",
)


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HOME": str(tmp_path)},
    )


def test_headless_chromium_renders_the_html_signoff(run_world: Callable[..., Any], tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "chromium is not installed, and CI installs it (.ci/run): the sign-off test must run there"
            )
        pytest.skip(
            "chromium is not installed (apt-get install -y chromium); CI installs it and runs this test"
        )
    from PIL import Image

    document = with_sections(failing_document(run_world))
    page = tmp_path / "signoff.html"
    page.write_text(render(document, "html"))
    html = page.read_text()
    assert "<script" not in html and "<link" not in html and not re.search(r"(src|href)=", html)
    assert "@media print" in html and "break-before: page" in html

    url = page.as_uri()
    shot = tmp_path / "signoff.png"
    result = run_chromium(binary, tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", url)
    assert shot.exists(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) >= 50, f"the screenshot looks blank: {len(colours)} colour(s)"  # text, badges, marks
    white = max(count for count, colour in colours if colour == (255, 255, 255))
    assert white < 0.95 * 1200 * 2400

    dom = run_chromium(binary, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shown = parse_html(dom.stdout)
    assert shown["workloads"] == expected(document)
    assert shown["matrix"]["finance/backend-sa"].count(MARKS["fail"]) == 2
    assert (
        "FIC_ISSUER_MISMATCH" in shown["text"] and "az identity federated-credential update" in shown["text"]
    )
    assert "script" not in shown["tags"]

    pdf = tmp_path / "signoff.pdf"
    printed = run_chromium(binary, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
    assert pdf.exists(), printed.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", data)) >= 3  # a page per workload


COVERAGE_ROW = {  # a row of the migration suite's coverage table, as the lab's migration scenario writes it
    "binding": "payments/payments-identity-binding", "selector": "payments",
    "azure_identity": "payments/payments-identity", "identity_type": 0,
    "client_id": "271679f8-594a-41cd-ac7d-3ef10816d33b", "identity": "paymentsId", "identity_kind": "managed_identity",
    "identity_lookup": "found", "service_accounts": [], "federated": False, "federated_subjects": [],
    "labelled_pods": [], "uninjected_pods": [], "legacy_pods": ["payments/payments-worker"], "moved_to": [],
    "migrated": False, "missing": ["service_account", "federated_credential", "labelled_pods"], "unknown": [],
}


def test_a_table_too_wide_for_the_page_is_printed_within_it(run_world: Callable[..., Any], tmp_path: Path) -> None:
    """The migration suite's coverage table (18 columns) ran off the printed page: its headers never break, and
    chromium then shrank every page of the sign-off to fit it (the lab's migration run: 9 pages of small print,
    15 at full size once it fits). A table whose whole words cannot fit is now 'crowded': smaller, and its
    cells and headers may break anywhere; the fleet table, the inventory's and the checks' are not."""
    from harness.report.signoff import crowded, run_view

    document = with_sections(failing_document(run_world))
    document["coverage"] = [COVERAGE_ROW | {"binding": f"ns{i}/binding-{i}"} for i in range(4)]
    view = run_view(document)
    coverage = next(t for t in view.sections if t.title == "Coverage")
    assert len(coverage.columns) == 18 and crowded(coverage)
    assert not any(crowded(t) for t in view.sections if t.title != "Coverage")
    assert not any(crowded(t) for w in view.workloads for t in w.evidence)
    assert not crowded(fleet_view([document, failing_document(run_world, "20250101T000000Z-bbbbbb")]).table)
    page = render(document, "html")
    assert page.count(" crowded\">") == 1 and re.search(r"table\.crowded th \{ overflow-wrap: anywhere; \}", page)

    binary = chromium()
    if binary is None:
        pytest.skip("chromium is not installed; test_headless_chromium_renders_the_html_signoff says why")
    pages = {}
    for name, doc in (("with", document), ("without", {k: v for k, v in document.items() if k != "coverage"})):
        html_file, pdf = tmp_path / f"{name}.html", tmp_path / f"{name}.pdf"
        html_file.write_text(render(doc, "html"))
        printed = run_chromium(binary, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                               html_file.as_uri())
        assert pdf.exists(), printed.stderr[-2000:]
        pages[name] = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
    assert pages["with"] >= pages["without"], f"the pages were shrunk to fit a table: {pages}"


def test_a_printed_fleet_gives_a_clusters_heading_no_page_of_its_own(
    run_world: Callable[..., Any], tmp_path: Path
) -> None:
    """Printed, a fleet sign-off began each cluster on a page and its first run on the next one, so the cluster's
    heading stood alone on a page: the fleet now prints on as many pages as it does without that heading."""
    binary = chromium()
    if binary is None:
        pytest.skip("chromium is not installed; test_headless_chromium_renders_the_html_signoff says why")
    fleet = render_fleet([with_sections(failing_document(run_world))], "html")
    headless, count = re.subn(r"<h2>Cluster <code>[^<]*</code></h2>", "", fleet)
    assert count == 1
    pages = {}
    for name, text in (("fleet", fleet), ("without the heading", headless)):
        page, pdf = tmp_path / f"{len(pages)}.html", tmp_path / f"{len(pages)}.pdf"
        page.write_text(text)
        printed = run_chromium(binary, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
        assert pdf.exists(), printed.stderr[-2000:]
        pages[name] = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
    assert pages["fleet"] == pages["without the heading"] > 2, pages


# ---------------------------------------------------------------- merge: a fleet sign-off


def test_merge_of_three_runs_on_two_clusters_one_failing(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, _ = run_world(World.healthy())
    east_1 = build_run_from_results(
        "20250101T000000Z-aaaaaa", "2025-01-01T10:00:00Z", "2025-01-01T10:01:00Z", results
    )
    east_2 = build_run_from_results(
        "20250102T000000Z-bbbbbb", "2025-01-02T10:00:00Z", "2025-01-02T10:01:00Z", results
    )
    west = failing_document(run_world, "20250101T000000Z-cccccc")
    west["target"]["cluster"] = "west-aks"
    paths = []
    for name, document in (("east-2", east_2), ("west", west), ("east-1", east_1)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(document))
    out = tmp_path / "fleet" / "signoff"
    assert main(["report", "merge", *map(str, paths), "-o", str(out)]) == 1  # FAIL: the suites' exit status
    assert "fleet verdict FAIL: 2 clusters, 3 runs, 1 failed" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["signoff.html", "signoff.md"]

    md = (out / "signoff.md").read_text()
    assert "**Fleet verdict: FAIL**" in md
    rows = [
        md_cells(line)
        for line in md[md.index("## Fleet") : md.index("## Cluster")].splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    assert rows == [
        [
            "Cluster",
            "Run",
            "Started",
            "Verdict",
            "Off pod identity",
            "Workloads passed",
            "Checks pass",
            "Checks fail",
            "Checks warn",
            "Checks skip",
            "Error findings",
            "Warning findings",
            "First broken links",
        ],
        [
            "dev-aks",
            "20250101T000000Z-aaaaaa",
            "2025-01-01T10:00:00Z",
            "PASS",
            "—",
            "2/2",
            "45",
            "0",
            "0",
            "0",
            "0",
            "0",
            "",
        ],
        [
            "dev-aks",
            "20250102T000000Z-bbbbbb",
            "2025-01-02T10:00:00Z",
            "PASS",
            "—",
            "2/2",
            "45",
            "0",
            "0",
            "0",
            "0",
            "0",
            "",
        ],
        [
            "west-aks",
            "20250101T000000Z-cccccc",
            "2025-01-01T10:00:00Z",
            "FAIL",
            "—",
            "1/2",
            "40",
            "2",
            "0",
            "3",
            "1",
            "0",
            "finance/backend-sa: federation.credential (FIC_ISSUER_MISMATCH)",
        ],
    ]
    assert re.findall(r"^## Cluster `([^`]+)`$", md, re.M) == ["dev-aks", "west-aks"]
    assert re.findall(r"^### Run `([^`]+)`: (PASS|FAIL)$", md, re.M) == [
        ("20250101T000000Z-aaaaaa", "PASS"),
        ("20250102T000000Z-bbbbbb", "PASS"),
        ("20250101T000000Z-cccccc", "FAIL"),
    ]
    assert "#### Workload `finance/backend-sa`: FAIL" in md and "###### ERROR `FIC_ISSUER_MISMATCH`" in md

    html = parse_html((out / "signoff.html").read_text())
    assert "FAIL" in html["text"] and "west-aks" in html["text"] and "20250102T000000Z-bbbbbb" in html["text"]
    assert fleet_view([east_1, east_2]).verdict == "pass"
    assert len(re.findall(r"^## Cluster ", render_fleet([east_1], "md"), re.M)) == 1


# ---------------------------------------------------------------- bad input: one line, exit 2


def _bad_inputs(tmp_path: Path, good: Path) -> list[tuple[list[str], str]]:
    not_json = tmp_path / "not.json"
    not_json.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "Config", "items": []}))
    broken = tmp_path / "broken.json"
    document = json.loads(good.read_text())
    document["verdict"] = "maybe"
    broken.write_text(json.dumps(document))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    newer = tmp_path / "newer.json"
    newer.write_text(good.read_text().replace('"wi-harness/run/v1"', '"wi-harness/run/v2"', 1))
    log = tmp_path / "log.json"  # kubectl logs job/wi-harness > run.json, without the sed
    log.write_text("..........\n1 passed in 1.2s\nWI-HARNESS-RUN-JSON " + good.read_text() + "\n")
    cut = tmp_path / "cut.json"  # a Job's log line that log rotation cut, a copy that did not finish
    cut.write_text(good.read_text()[:3000])
    empty = tmp_path / "empty.json"  # the Job's log had no tagged line (its run stopped before writing one)
    empty.write_text("")
    deep = tmp_path / "deep.json"  # the JSON decoder recursed: a RecursionError traceback
    deep.write_text('{"schema": "wi-harness/run/v1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return [
        (["render", str(deep), "--format", "md"], "deep.json: not a run.json: JSON nested too deeply to read"),
        (["render", str(good), "--format", "md", "-o", str(tmp_path / "no" / "dir" / "x.md")],
         f"x.md: cannot write: the directory {tmp_path / 'no' / 'dir'} does not exist"),
        (["render", str(empty), "--format", "md"], "empty.json: is empty: no run was written into it (if it came "
                                                    "from the Job's log, the run stopped before it wrote one"),
        (["render", str(cut), "--format", "md"], "cut.json: cut short: the JSON ends after "),
        (["merge", str(good), str(cut), "-o", str(tmp_path / "f")], "cut.json: cut short"),
        (["render", str(log), "--format", "md"], "log.json: the Job's log, not its run.json: take the line the "
                                                  "harness tagged, sed -n 's/^WI-HARNESS-RUN-JSON //p'"),
        (["render", str(newer), "--format", "md"], "newer.json: a run.json of schema 'wi-harness/run/v2', which this "
                                                    "harness ("),
        (["render", str(tmp_path / "missing.json"), "--format", "md"], "missing.json: file not found"),
        (["render", str(tmp_path), "--format", "md"],
         f"{tmp_path}: is a directory, not a regular file: did you mean {tmp_path / 'run.json'}?"),
        (["render", str(not_json), "--format", "html"], "not.json: not JSON (Expecting property name"),
        (
            ["render", str(other), "--format", "md"],
            'other.json: not a run.json (no "schema": "wi-harness/run/v1")',
        ),
        (
            ["render", str(broken), "--format", "md"],
            "broken.json: does not match the run.json schema: verdict:",
        ),
        (["render", str(good), "--format", "md", "-o", str(a_file / "x.md")], "a-file/x.md: cannot write:"),
        (
            ["render", str(good), "--format", "md", "-o", str(tmp_path)],
            f"{tmp_path}: is a directory, not a file",
        ),
        (["merge", str(good), "-o", str(a_file)], "a-file: is a file, not a directory"),
        (["render", str(good), "--format", "md", "-o", str(good)],
         "run.json: is the run.json being rendered: writing the sign-off there would replace it"),
        (["merge", str(good), "-o", str(a_file / "sub")], "a-file/sub: cannot create the directory:"),
        (["merge", str(good), str(good), "-o", str(tmp_path / "f")], "is given twice"),
        (["merge", str(good), str(broken), "-o", str(tmp_path / "f")], "broken.json: does not match"),
    ]


def test_bad_input_is_one_line_naming_the_file_exit_2(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "run.json"
    good.write_text(json.dumps(failing_document(run_world)))
    for argv, message in _bad_inputs(tmp_path, good):
        assert main(["report", *argv]) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "", argv
        lines = captured.err.splitlines()
        assert len(lines) == 1 and message in lines[0], (argv, captured.err)
        assert lines[0].startswith(f"python -m harness report {argv[0]}: error: ")
    assert not (tmp_path / "f").exists()


def test_a_run_json_a_newer_harness_wrote_under_the_same_schema_renders(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """v1 grows by addition (narrowed, inventory, harness_version came later): a newer harness's run.json with a
    section and fields this one does not know renders (the section as a table), it is not 'does not match'."""
    document = failing_document(run_world)
    document["some_future_section"] = {"rows": [{"cluster": "aks-1"}]}
    document["checks"][0]["duration_ms"] = 12
    document["workloads"][0]["owner"] = "team-a"
    newer = tmp_path / "run.json"
    newer.write_text(json.dumps(document))
    assert main(["report", "render", str(newer), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "## Some future section" in out and "aks-1" in out
    document["checks"][0]["status"] = "error"  # a field it knows, with a value it does not: still refused
    newer.write_text(json.dumps(document))
    assert main(["report", "render", str(newer), "--format", "md"]) == 2
    assert "does not match the run.json schema: checks.0.status:" in capsys.readouterr().err


def test_render_to_dash_writes_stdout_not_a_file_named_dash(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """report render run.json --format md -o - wrote a file named '-' (and 'wrote -')."""
    good = tmp_path / "run.json"
    good.write_text(json.dumps(failing_document(run_world)))
    monkeypatch.chdir(tmp_path)
    assert main(["report", "render", str(good), "--format", "md", "-o", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("#") and captured.err == ""
    assert not (tmp_path / "-").exists()


def test_render_reads_the_run_json_piped_from_the_jobs_log(
    run_world: Callable[..., Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubectl logs job/wi-harness | sed -n 's/^WI-HARNESS-RUN-JSON //p' | python -m harness report render - ...:
    '-' was 'file not found'. Piped nothing (the run wrote none), it says so."""
    import io

    line = json.dumps(failing_document(run_world), separators=(",", ":")) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(line.encode())))
    assert main(["report", "render", "-", "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# Workload ID sign-off")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main(["report", "render", "-", "--format", "md"]) == 2
    assert "(stdin): is empty: no run was written into it" in capsys.readouterr().err


def test_python_m_harness_end_to_end_and_usage_errors(run_world: Callable[..., Any], tmp_path: Path) -> None:
    good = tmp_path / "run.json"
    good.write_text(json.dumps(failing_document(run_world)))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness", *args], cwd=REPO, capture_output=True, text=True, timeout=60
        )

    result = run("report", "render", str(good), "--format", "html")
    assert result.returncode == 0 and result.stdout.startswith("<!DOCTYPE html>")
    missing = run("report", "render", str(tmp_path / "nope.json"), "--format", "md")
    assert (
        missing.returncode == 2
        and missing.stderr.count("\n") == 1
        and "nope.json: file not found" in missing.stderr
    )
    usage = run("report", "render", str(good), "--format", "pdf")
    assert (
        usage.returncode == 2 and "invalid choice: 'pdf'" in usage.stderr and "Traceback" not in usage.stderr
    )


def test_the_header_says_whether_the_cluster_is_off_pod_identity_whatever_the_verdict(
    run_world: Callable[..., Any],
) -> None:
    """Before expect.migration_complete, every pod identity leftover is a warning and the run may PASS with
    bindings not moved: the header says NO, naming them, in both formats; all migration checks passing says YES;
    checks that could only warn that they may not read say CANNOT TELL; no migration suite, no row."""
    document = copy.deepcopy(failing_document(run_world))
    document["verdict"] = "pass"
    assert "Off pod identity" not in render(document, "md")
    ids = list(MIGRATION_CHECK_IDS)  # all of them: a migration check not in run.json says CANNOT TELL
    document["checks"] = [{"id": i, "status": "pass", "message": "ok", "evidence": {}} for i in ids]
    document["coverage"], document["leftovers"] = [], {"migration_complete": False}
    assert "| Off pod identity | YES: no AzureIdentityBinding" in render(document, "md")
    # what the harness cannot see is said beside the YES: an app that still asks IMDS (NMI gone: the node's IMDS)
    assert "not proven: that no app still asks IMDS for its token" in render(document, "md")
    # a run narrowed with --namespace still lists pod identity cluster-wide (collect_migration takes no namespace)
    narrowed = {**document, "narrowed": {"namespaces": ["finance"]}}
    assert "left in every namespace (--namespace does not narrow the migration checks" in md_unescape(
        render(narrowed, "md"))
    document["checks"][0].update(status="warn", message="1 of 2 AzureIdentityBindings are not migrated")
    document["coverage"] = [{"binding": "payments/payments-binding", "migrated": False},
                            {"binding": "finance/backend-binding", "migrated": True}]
    document["findings"] = [{"code": "POD_IDENTITY_BINDING_NOT_MIGRATED", "severity": "warning", "layer": "migration",
                             "check": ids[0], "message": "m", "evidence": {}, "remediation": []}]
    for fmt in FORMATS:
        text = md_unescape(render(document, fmt)) if fmt == "md" else html.unescape(render(document, fmt))
        assert "NO: 1 of 2 AzureIdentityBindings migrated (not: payments/payments-binding); pod identity left: " \
               "POD_IDENTITY_BINDING_NOT_MIGRATED (expect.migration_complete is not set" in text, fmt
    fleet = render_fleet([document], "md")
    assert md_cells(next(line for line in fleet.splitlines() if line.startswith("| dev-aks")))[3:5] == ["PASS", "NO"]
    skipped = copy.deepcopy(document)  # the add-on's check skipped (no ARM): YES in the header with the caveat
    skipped["checks"] = [{"id": i, "status": "pass", "message": "ok", "evidence": {}} for i in ids]
    skipped["checks"][-1].update(status="skip", message="no Azure access configured")
    skipped["findings"], skipped["coverage"] = [], []
    assert "(not checked: migration.addon_disabled)" in render(skipped, "md")
    fleet_row = next(line for line in render_fleet([skipped], "md").splitlines() if line.startswith("| dev-aks"))
    assert md_cells(fleet_row)[4] == "YES (not all checked)"  # not a bare YES in the fleet's table
    document["findings"][0]["code"] = "POD_IDENTITY_UNREADABLE"
    assert "| Off pod identity | CANNOT TELL: 1 of 2 AzureIdentityBindings are not migrated |" in render(document, "md")


def test_leftovers_name_expect_migration_complete_as_the_setting_it_is(run_world: Callable[..., Any]) -> None:
    """A healthy run's sign-off said 'Off pod identity | YES' in its header and 'Migration complete | no' under
    Leftovers: the second is harness.yaml's expect.migration_complete (are leftovers errors?), not a finding, and
    an auditor reads the pair as a contradiction."""
    document = copy.deepcopy(failing_document(run_world))
    document["checks"] = [{"id": i, "status": "pass", "message": "ok", "evidence": {}} for i in MIGRATION_CHECK_IDS]
    document["coverage"], document["leftovers"] = [], {"migration_complete": False, "addon_enabled": False}
    md = md_unescape(render(document, "md"))
    assert "| Off pod identity | YES: " in md
    assert "| Declared complete (harness.yaml expect.migration_complete) | no |" in md
    assert "Migration complete" not in md
    page = html.unescape(render(document, "html"))
    assert "Declared complete (harness.yaml expect.migration_complete)" in page and "Migration complete" not in page


# ---------------------------------------------------------------- a run that did not finish, several runs of one cluster


def test_run_by_azure_gives_the_display_name_the_harnesss_token_holds(run_world: Callable[..., Any]) -> None:
    """'Run by (Azure)' showed ids only (oid, appid, tenant). A person's token names them (the name claim); a
    managed identity's names its resource id (xms_mirid), whose last segment is its name; an app-only token
    names no display name, and none is made up."""
    from harness.report.signoff import run_view

    document = failing_document(run_world)
    mirid = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/ciRg/providers/"
             "Microsoft.ManagedIdentity/userAssignedIdentities/ci-runner")
    callers = {
        "person": {"name": "Ada Lovelace", "upn": "ada@contoso.test", "oid": "o1", "idtyp": "user"},
        "managed identity": {"appid": "a2", "oid": "o2", "idtyp": "app", "xms_mirid": mirid},
        "app": {"appid": "a3", "oid": "o3", "idtyp": "app"},
    }
    shown = {}
    for kind, caller in callers.items():
        document["target"]["run_by"] = {"kubernetes": None, "azure": caller}
        shown[kind] = dict(run_view(document).header)["Run by (Azure)"]
    assert shown == {
        "person": "display name Ada Lovelace; upn ada@contoso.test; oid o1; type user",
        "managed identity": "display name ci-runner (managed identity); appid a2; oid o2; type app",
        "app": "appid a3; oid o3; type app",
    }


def test_a_run_interrupted_before_any_check_names_harness_yamls_resource_group_and_subscription(
    tmp_path: Path
) -> None:
    """Ctrl-C before the first check result: the sign-off's header said '—' for the resource group and the
    subscription, though harness.yaml names both (the plugin's fallback target left them out)."""
    from harness.analysis import config_target
    from harness.config import parse_config
    from harness.report.run_json import build_run
    from harness.report.schema import validate_run

    config = parse_config(World.healthy().config(tmp_path), base_dir=tmp_path)
    assert config.azure is not None
    document = build_run("20250101T000000Z-eeeeee", "2025-01-01T10:00:00Z", "2025-01-01T10:00:05Z", [],
                         config_target(config, "lab"), [], "SIGINT")
    validate_run(document)
    md = md_unescape(render(document, "md"))
    assert f"| Resource group | {config.azure.resource_group} |" in md
    assert f"| Subscription | {config.azure.subscription_id} |" in md
    assert f"| Cluster | {config.azure.cluster_name} |" in md


def test_an_incomplete_run_says_why_it_failed_and_never_says_off_pod_identity_yes(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that failed with no check failing (a test of the harness errored: a whole-cluster run whose
    --namespace does not exist; or Ctrl-C before every check ran) said only 'Verdict FAIL' over green checks, in
    the sign-off and in the fleet's table; and with a migration check not run, 'Off pod identity' said YES from
    the checks that did. Now run.json's ``incomplete`` names the signal and each errored test, the header says
    it, the fleet row says FAIL (not complete), and a migration check that did not run is CANNOT TELL."""
    from harness.report.run_json import build_run
    from harness.report.schema import validate_run

    migration = ["migration.bindings_migrated", "migration.pods_unlabelled"]  # interrupted after these two
    payloads = [
        {"scope": "migration", "order": i, "workload": None, "target": {}, "swept": [], "kept": [],
         "check": {"id": c, "status": "pass", "message": "ok", "evidence": {}}, "findings": []}
        for i, c in enumerate(migration)
    ]
    target = {"kind": "lab", "context": "lab", "cluster": "dev-aks", "issuer": ISSUER}
    errors = [{"test": "suites/test_workloads.py::test_workload[no-workloads]",
               "message": "whole-cluster run: namespace financ does not exist in the cluster"}]
    document = build_run("20250101T000000Z-dddddd", "2025-01-01T10:00:00Z", "2025-01-01T10:01:00Z", payloads,
                         target, errors, "SIGTERM")
    validate_run(document)
    assert document["verdict"] == "fail"
    assert document["incomplete"] == {"interrupted": "SIGTERM", "errors": errors}
    md = md_unescape(render(document, "md"))
    page = html.unescape(render(document, "html"))
    for text in (md, page):
        assert "interrupted (SIGTERM) before every check ran" in text
        assert "1 test of the harness errored without a check result, first " \
               "suites/test_workloads.py::test_workload[no-workloads]: whole-cluster run: namespace financ" in text
        assert "CANNOT TELL: migration.objects_removed, migration.components_removed, migration.crds_removed, " \
               "migration.addon_disabled did not run (the run was not complete)" in text
        assert "YES:" not in text
    path = tmp_path / "run.json"
    path.write_text(json.dumps(document))
    assert main(["report", "merge", str(path), "-o", str(tmp_path / "fleet")]) == 1
    assert "fleet verdict FAIL: 1 cluster, 1 run, 1 failed" in capsys.readouterr().err
    fleet = md_unescape((tmp_path / "fleet" / "signoff.md").read_text())
    row = next(line for line in fleet.splitlines() if line.startswith("| dev-aks"))
    assert md_cells(row)[3:5] == ["FAIL (not complete)", "CANNOT TELL"]
    whole = build_run("r", "2025-01-01T10:00:00Z", "2025-01-01T10:01:00Z", payloads, target)
    assert "incomplete" not in whole and "Not complete" not in render(whole, "md")


def test_several_runs_of_one_cluster_are_named_and_each_counts(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fleet merge of runs/*/run.json that holds a cluster's failed run and its later passing one is FAIL
    (every run counts), and says so: the fleet table's note and the command's stderr name the cluster, how many
    runs and its latest, so the reader knows why and merges only the runs to sign."""
    results, _ = run_world(World.healthy())
    earlier = failing_document(run_world, "20250101T000000Z-eeeeee")
    later = build_run_from_results("20250102T000000Z-ffffff", "2025-01-02T10:00:00Z", "2025-01-02T10:01:00Z",
                                   results)
    later["target"] = copy.deepcopy(earlier["target"])  # the same cluster (each fake world has its subscription)
    paths = []
    for document in (later, earlier):
        paths.append(tmp_path / f"{document['run_id']}.json")
        paths[-1].write_text(json.dumps(document))
    assert main(["report", "merge", *map(str, paths), "-o", str(tmp_path / "fleet")]) == 1
    err = capsys.readouterr().err
    note = ("Several runs of one cluster: dev-aks: 2 runs, the latest 20250102T000000Z-ffffff "
            "(2025-01-02T10:00:00Z) PASS. Every run counts toward the fleet verdict, an earlier failure too")
    assert "fleet verdict FAIL: 1 cluster, 2 runs, 1 failed" in err and note in err
    assert note in md_unescape((tmp_path / "fleet" / "signoff.md").read_text())
    assert note in html.unescape((tmp_path / "fleet" / "signoff.html").read_text())
    assert fleet_view([later]).table.note == ""


def test_control_characters_from_the_cluster_never_reach_the_signoff_raw(run_world: Callable[..., Any]) -> None:
    """An annotation (or a service's error text echoing it) holding ESC, BEL, a carriage return or a bidi
    override reached signoff.md and signoff.html as raw bytes: ``cat signoff.md`` set the terminal's title and
    cleared its screen, and a fix holding one was shown as a command with the raw bytes in it. Now each is shown
    escaped (\\x1b), in both formats and the fleet's, and such a fix is a comment that runs nothing."""
    from harness.checks.remediation import find_identity_by_client_id
    from harness.commands import render as render_fix

    hostile = "abc\x1b]0;pwned\x07\x1b[2J\r\u202e; $(touch PWNED)\nline2"
    document = copy.deepcopy(failing_document(run_world))
    workload = document["workloads"][0]
    workload["checks"][0]["message"] = f"client-id {hostile} is not a GUID"
    workload["checks"][0]["evidence"]["value"] = hostile
    workload["findings"][0]["message"] = f"annotated with {hostile}"
    workload["findings"][0]["remediation"] = [render_fix(find_identity_by_client_id(hostile))]
    for text in (render(document, "md"), render(document, "html"), render_fleet([document], "md"),
                 render_fleet([document], "html")):
        assert all(line.isprintable() for line in text.splitlines()), [
            line for line in text.splitlines() if not line.isprintable()][:2]
        assert "pwned\\x07\\x1b[2J\\r\\u202e" in html.unescape(md_unescape(text))
        assert "# not shown whole (it holds a newline or control character): run.json's remediation has it" \
            in html.unescape(text)


def test_clusters_of_one_name_elsewhere_are_two_clusters(run_world: Callable[..., Any]) -> None:
    """Two clusters named alike (aks-prod in two resource groups or subscriptions, a name every region's team
    uses) were merged as one cluster: one section, '1 cluster(s)', and their runs read as reruns of each other.
    A cluster is its name, resource group and subscription; names that collide are shown with where they are."""
    east = failing_document(run_world, "20250101T000000Z-111111")
    west = copy.deepcopy(east)
    west["run_id"], west["verdict"] = "20250101T000000Z-222222", "pass"
    west["target"]["resource_group"] = "west-rg"
    fleet = fleet_view([east, west])
    assert fleet.counts["clusters"] == 2 and fleet.table.note == ""
    subscription = east["target"]["subscription_id"]
    assert [name for name, _ in fleet.clusters] == [f"dev-aks (dev-rg, subscription {subscription})",
                                                    f"dev-aks (west-rg, subscription {subscription})"]
    assert [row[0] for row in fleet.table.rows] == [name for name, _ in fleet.clusters]
    assert fleet_view([east]).clusters[0][0] == "dev-aks"  # a name that collides with none stays as it is


def test_an_expected_cluster_without_a_run_fails_the_fleet(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fleet workflow merges runs/*/run.json: a cluster whose job failed before writing run.json (its
    credentials, kubelogin) simply dropped out, and the merge of the others said PASS. With --expect CLUSTER
    (the workflow passes its matrix's clusters) a cluster without a run is a MISSING row and the fleet is FAIL."""
    results, _ = run_world(World.healthy())
    dev = build_run_from_results("20250102T000000Z-aaaaaa", "2025-01-02T10:00:00Z", "2025-01-02T10:01:00Z", results)
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(dev))
    assert main(["report", "merge", str(path), "-o", str(tmp_path / "all"), "--expect", "dev-aks"]) == 0
    assert "fleet verdict PASS: 1 cluster, 1 run, 0 failed;" in capsys.readouterr().err
    assert main(["report", "merge", str(path), "-o", str(tmp_path / "fleet"), "--expect", "dev-aks",
                 "--expect", "prod-aks"]) == 1
    err = capsys.readouterr().err
    assert "fleet verdict FAIL: 2 clusters, 1 run, 0 failed, 1 cluster without a run;" in err
    assert "No run of prod-aks: the fleet verdict is FAIL until each expected cluster has a run." in err
    md = md_unescape((tmp_path / "fleet" / "signoff.md").read_text())
    # the sign-off counts as the command does: it said '0 failed run(s) on 1 cluster(s)', the missing cluster
    # counted as a cluster with a failed run
    assert "**Fleet verdict: FAIL** · 2 clusters, 1 run, 0 failed, 1 cluster without a run\n" in md
    row = next(line for line in md.splitlines() if line.startswith("| prod-aks"))
    assert md_cells(row)[:4] == ["prod-aks", "—", "—", "MISSING: no run.json"]
    page = html.unescape((tmp_path / "fleet" / "signoff.html").read_text())
    assert "MISSING: no run.json" in page and "No run of prod-aks" in page
    assert '<span class="counts">2 clusters, 1 run, 0 failed, 1 cluster without a run</span>' in page


def test_a_narrowed_run_says_so_in_the_header_and_the_fleet(run_world: Callable[..., Any]) -> None:
    """pytest suites -k sa.exists --workload finance/backend-sa ran one check and wrote a sign-off whose header
    said 'Verdict PASS' like a whole run's. run.json's ``narrowed`` (what -k, -m, named tests, --workload, --pod,
    --namespace left out) is a 'Narrowed to' row, and the fleet's verdict cell says PASS (narrowed)."""
    results, _ = run_world(World.healthy())
    document = build_run_from_results("20250102T000000Z-aaaaaa", "2025-01-02T10:00:00Z", "2025-01-02T10:01:00Z",
                                      results)
    document["narrowed"] = {"keyword": "sa.exists", "workloads": ["finance/backend-sa"]}
    for fmt in FORMATS:
        text = md_unescape(render(document, fmt)) if fmt == "md" else html.unescape(render(document, fmt))
        assert "-k 'sa.exists', --workload finance/backend-sa: the verdict covers only the checks this run " \
               "selected" in text, fmt
    row = next(line for line in render_fleet([document], "md").splitlines() if line.startswith("| dev-aks"))
    assert md_cells(row)[3] == "PASS (narrowed)"
    assert fleet_view([document]).table.note == (
        "1 run narrowed to part of the suites (20250102T000000Z-aaaaaa): each verdict covers only the checks "
        "that run selected (its header says what narrowed it).")
    document["narrowed"] = {"options": ["--lf"]}  # a rerun of last time's failures alone
    assert "| Narrowed to | --lf: the verdict covers only" in render(document, "md")


@pytest.mark.parametrize("argv", [
    ["report", "render", "", "--format", "md"],
    ["report", "merge", "run.json", "-o", ""],
    ["report", "merge", "run.json", "-o", "out", "--expect", ""],  # was a FAIL for "No run of : ..."
    ["manifests", "render", "--config", "harness.yaml", "--out", ""],
    ["manifests", "render", "--config", "harness.yaml", "--out", "out", "--image", " "],  # kept harness.image
])
def test_an_empty_path_argument_is_refused_not_the_current_directory(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-o "$OUT" with the variable unset wrote signoff.md and signoff.html (manifests: the whole bundle) into the
    current directory; each path argument now refuses an empty value, as argparse refuses a bad one."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and "is empty (an unset variable?)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_expected_cluster_spelt_like_a_runs_cluster_is_named(
    run_world: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--expect dev-ak for a run of dev-aks said only 'No run of dev-ak', as for a cluster whose job failed."""
    results, _ = run_world(World.healthy())
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(build_run_from_results("20250102T000000Z-aaaaaa", "2025-01-02T10:00:00Z",
                                                      "2025-01-02T10:01:00Z", results)))
    assert main(["report", "merge", str(path), "-o", str(tmp_path / "f"), "--expect", "dev-ak"]) == 1
    assert "--expect dev-ak: no run of that name; did you mean dev-aks?" in capsys.readouterr().err.splitlines()
    assert main(["report", "merge", str(path), "-o", str(tmp_path / "f"), "--expect", "prod-eu"]) == 1
    assert "did you mean" not in capsys.readouterr().err


def _limited_to(size: int) -> Callable[[], None]:
    def limit() -> None:  # in the child: a write past `size` bytes fails with EFBIG (Python ignores SIGXFSZ)
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE")
def test_a_failed_write_leaves_the_earlier_signoff_whole(run_world: Callable[..., Any], tmp_path: Path) -> None:
    """report render -o FILE wrote FILE in place: a write that failed (a full disk; here a file-size limit) left
    the earlier sign-off cut short. report merge left .signoff.md.tmp behind. Now each is replaced whole or left
    as it was, and the command says so in one line, exit status 2."""
    good = tmp_path / "run.json"
    good.write_text(json.dumps(failing_document(run_world)))
    out, fleet = tmp_path / "signoff.html", tmp_path / "fleet"
    assert main(["report", "render", str(good), "--format", "html", "-o", str(out)]) == 0
    assert main(["report", "merge", str(good), "-o", str(fleet)]) == 1
    before = {path: path.read_bytes() for path in (out, *fleet.iterdir())}
    for argv in (["render", str(good), "--format", "html", "-o", str(out)], ["merge", str(good), "-o", str(fleet)]):
        result = subprocess.run([sys.executable, "-m", "harness", "report", *argv], cwd=REPO, capture_output=True,
                                text=True, timeout=60, preexec_fn=_limited_to(1024))
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "left as" in result.stderr and "File too large" in result.stderr, result.stderr
    assert {path: path.read_bytes() for path in (out, *fleet.iterdir())} == before
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
