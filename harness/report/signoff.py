"""The sign-off document a platform lead signs: ``signoff.md`` and ``signoff.html`` beside run.json.

Both are rendered from the run.json document alone (already redacted), through one view model and two Jinja2
templates kept as files (``templates/``), so the two formats hold the same content and rendering the same
run.json again gives the same bytes. A fleet sign-off merges several runs (several clusters) the same way.

Sections other parts of the harness add to run.json (inventory, leftovers, coverage, ...) are rendered
generically: every top-level key this module does not know becomes one or more tables of named columns.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateError

from harness import __version__
from harness.checks.migration import MIGRATION_CHECK_IDS
from harness.commands import pasteable
from harness.report.schema import NARROWING_FLAGS, SCHEMA, validate_run
from harness.values import counted, visible

FORMATS = ("md", "html")
SIGNOFF_FILES = {"md": "signoff.md", "html": "signoff.html"}
MARKS = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "–"}
STATUS_ORDER = ("pass", "fail", "warn", "skip")
SEVERITY_ORDER = ("error", "warning", "info")
# run.json keys with their own place in the document; any other top-level key is an extra section
KNOWN_KEYS = {
    "schema",
    "run_id",
    "harness_version",
    "started_at",
    "finished_at",
    "target",
    "verdict",
    "checks",
    "findings",
    "workloads",
    "narrowed",  # the header's "Narrowed to" row
}
SECTION_ORDER = ("inventory", "leftovers", "coverage")
MAX_CELL = 400
MAX_SECTION_DEPTH = 3
TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")


# ---------------------------------------------------------------- the view model


@dataclass
class Table:
    """A titled table of named columns; every cell is already a display string."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""  # shown under the title (why the table is empty, what it was built from)


@dataclass
class Mark:
    status: str  # pass | fail | warn | skip | "" (the check does not apply to this row)

    @property
    def symbol(self) -> str:
        return MARKS.get(self.status, "")


@dataclass
class MatrixRow:
    workload: str
    verdict: str
    marks: list[Mark]

    @property
    def cells(self) -> list[str]:
        return [self.workload, self.verdict.upper(), *(m.symbol for m in self.marks)]


@dataclass
class FindingView:
    code: str
    severity: str
    layer: str
    message: str
    remediation: list[str]
    check: str = ""  # the check that raised it


@dataclass
class CheckView:
    id: str
    status: str
    message: str

    @property
    def symbol(self) -> str:
        return MARKS.get(self.status, "")

    @property
    def cells(self) -> list[str]:
        return [self.id, self.symbol, self.status, self.message]


@dataclass
class WorkloadView:
    id: str
    namespace: str
    service_account: str
    verdict: str
    checks: list[CheckView]
    findings: list[FindingView]
    evidence: list[Table]
    counts: dict[str, int]
    # the first failing check in chain order (the diagnosis, as the terminal's troubleshooting view names it)
    # and the findings it raised, with their fixes; None for a workload whose checks all passed
    first_broken: CheckView | None = None
    first_findings: list[FindingView] = field(default_factory=list)


@dataclass
class BrokenLink:
    """What a reviewer must see first of a failed run: a failed cluster-wide check, or a failing workload's first
    failed check in chain order, with the findings it raised (their fixes)."""

    name: str  # the workload's id, or "cluster-wide"
    check: CheckView
    findings: list[FindingView]
    # per finding: where the same fix was printed above ("cluster-wide: SA_WITHOUT_FIC"), else "". The run's
    # SA_WITHOUT_FIC and a workload's FIC_MISSING print one create: pasted twice, the second is refused
    # ("FederatedIdentityCredential with name ... already exists."), so it is printed once
    same_as: list[str] = field(default_factory=list)


@dataclass
class RunView:
    run_id: str
    verdict: str
    cluster: str
    header: list[tuple[str, str]]
    counts: dict[str, dict[str, int]]
    matrix_columns: list[str]
    matrix: list[MatrixRow]
    cluster_checks: list[CheckView]
    cluster_findings: list[FindingView]
    workloads: list[WorkloadView]
    sections: list[Table] = field(default_factory=list)
    incomplete: str = ""  # why the verdict is FAIL beyond the checks (incomplete_text); "" for a whole run
    narrowed: bool = False  # -k, -m, named tests, --workload, --pod, --namespace: part of the suites ran
    # which cluster: its name is not enough (clusters of one name in other resource groups or subscriptions)
    cluster_key: tuple[str, str, str] = ("", "", "")

    @property
    def broken_links(self) -> list[BrokenLink]:
        """Each failed cluster-wide check (a webhook down breaks every workload: the cause before its effects),
        then each failing workload's first broken link."""
        cluster = [BrokenLink("cluster-wide", check, [f for f in self.cluster_findings if f.check == check.id])
                   for check in self.cluster_checks if check.status == "fail"]
        links = cluster + [BrokenLink(w.id, w.first_broken, w.first_findings)
                           for w in self.workloads if w.first_broken is not None]
        printed: dict[tuple[str, ...], str] = {}
        for link in links:
            link.same_as = []
            for finding in link.findings:
                fix = tuple(finding.remediation)
                link.same_as.append(printed.get(fix, "") if fix else "")
                printed.setdefault(fix, f"{link.name}: {finding.code}")
        return links


def cell(value: Any) -> str:
    """One table cell: scalars as text, a list of scalars joined, anything nested as compact JSON, bounded."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, list) and all(_scalar(v) for v in value):
        text = ", ".join(cell(v) for v in value)
    else:
        text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# words of run.json keys a reader knows as acronyms ("Leftovers › Crds" read as a typo)
ACRONYMS = {"crd": "CRD", "crds": "CRDs", "fic": "FIC", "fics": "FICs", "sa": "SA", "nmi": "NMI", "mic": "MIC",
            "url": "URL", "uri": "URI", "oidc": "OIDC", "jwks": "JWKS", "rbac": "RBAC", "arm": "ARM"}


# run.json keys whose title from their words alone says something else: leftovers' migration_complete is
# harness.yaml's expect.migration_complete, not a finding ("Migration complete: no" beside "Off pod identity: YES")
KEY_TITLES = {"migration_complete": "Declared complete (harness.yaml expect.migration_complete)"}


def _title(key: str) -> str:
    """``client_id``, ``clientId``, ``client-id`` -> "Client id"; ``crds`` -> "CRDs"."""
    if str(key) in KEY_TITLES:
        return KEY_TITLES[str(key)]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(key)).replace("_", " ").replace("-", " ").split()
    if not words:
        return str(key)
    text = " ".join(words).capitalize().split()
    return " ".join(ACRONYMS.get(word.lower(), word) for word in text)


def section_tables(title: str, value: Any, depth: int = 0) -> list[Table]:
    """Any JSON value as tables: a list of objects is one table (the union of their keys as columns, in order
    of first appearance); {columns, rows} is taken as given; an object's scalar entries make one key/value
    table and each nested entry its own table; a bare scalar one row."""
    if isinstance(value, dict) and isinstance(value.get("rows"), list):
        columns = value.get("columns")
        table = _rows_table(title, value["rows"], columns if isinstance(columns, list) else None)
        rest = {k: v for k, v in value.items() if k not in ("rows", "columns", "title")}
        table.note = "; ".join(f"{_title(k)}: {cell(v)}" for k, v in rest.items() if _scalar(v))
        nested = [(k, v) for k, v in rest.items() if not _scalar(v)]
        return [table, *[t for k, v in nested for t in _nested(title, k, v, depth)]]
    if isinstance(value, list):
        return [_rows_table(title, value, None)]
    if isinstance(value, dict):
        scalars = [[_title(k), cell(v)] for k, v in value.items() if _scalar(v) or _flat_list(v)]
        tables = [Table(title, ["Field", "Value"], scalars)] if scalars or not value else []
        for key, item in value.items():
            if not (_scalar(item) or _flat_list(item)):
                tables += _nested(title, key, item, depth)
        if not value:
            tables[0].note = "none"
        return tables
    return [Table(title, ["Value"], [[cell(value)]])]


def _flat_list(value: Any) -> bool:
    return isinstance(value, list) and all(_scalar(v) for v in value) and bool(value)


def _nested(title: str, key: str, value: Any, depth: int) -> list[Table]:
    sub_title = f"{title} › {_title(key)}"
    if depth + 1 >= MAX_SECTION_DEPTH:
        return [Table(sub_title, ["Value"], [[cell(value)]])]
    return section_tables(sub_title, value, depth + 1)


def _rows_table(title: str, rows: list[Any], columns: list[Any] | None) -> Table:
    if columns is None:
        names: list[str] = []
        for row in rows:
            for key in row if isinstance(row, dict) else ["value"]:
                if key not in names:
                    names.append(str(key))
    else:
        names = [str(c) for c in columns]
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append([cell(row.get(name)) for name in names])
        elif isinstance(row, list):
            out.append([cell(v) for v in row] + [""] * (len(names) - len(row)))
        else:
            out.append([cell(row)] + [""] * (len(names) - 1))
    return Table(title, [_title(n) for n in names] or ["Value"], out, "" if rows else "none")


def _counts(checks: Iterable[dict[str, Any]]) -> dict[str, int]:
    statuses = [c.get("status") for c in checks]
    return {status: statuses.count(status) for status in STATUS_ORDER}


def _finding_counts(findings: Iterable[dict[str, Any]]) -> dict[str, int]:
    severities = [f.get("severity") for f in findings]
    return {severity: severities.count(severity) for severity in SEVERITY_ORDER}


def _checks(checks: list[dict[str, Any]]) -> list[CheckView]:
    return [CheckView(str(c.get("id")), str(c.get("status")), str(c.get("message") or "")) for c in checks]


def _findings(findings: list[dict[str, Any]]) -> list[FindingView]:
    return [
        FindingView(
            str(f.get("code")),
            str(f.get("severity")),
            str(f.get("layer") or ""),
            str(f.get("message") or ""),
            [pasteable(str(line)) for line in f.get("remediation") or []],
            str(f.get("check") or ""),
        )
        for f in findings
    ]


def _when(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return f"{value} ({moment})"
    return cell(value)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[list[str]]:
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _flatten(value, f"{name}.")
        elif key in TIME_CLAIMS:
            rows.append([name, _when(value)])
        else:
            rows.append([name, cell(value)])
    return rows


def _evidence(workload: dict[str, Any]) -> list[Table]:
    """What a reviewer reads to trust the marks: the identity, the ServiceAccount token's decoded claims, the
    federated credential that matched, the access token's decoded claims, role assignments, access results."""
    by_id = {c.get("id"): c for c in workload.get("checks") or []}

    def evidence(check_id: str) -> dict[str, Any]:
        found = (by_id.get(check_id) or {}).get("evidence")
        return found if isinstance(found, dict) else {}

    tables: list[Table] = []
    identity = evidence("identity.matches")
    if identity:
        rows = [[_title(k), cell(identity.get(k))] for k in identity if k != "blocked_by"]
        tables.append(Table("Identity", ["Field", "Value"], rows))
    token = evidence("token.readable")
    if isinstance(token.get("claims"), dict):
        rows = _flatten(token["claims"])
        if token.get("fingerprint"):
            rows.append(["sha256 fingerprint", cell(token["fingerprint"])])
        tables.append(
            Table(
                "ServiceAccount token (decoded claims)",
                ["Claim", "Value"],
                rows,
                f"read from {cell(token.get('path'))}" if token.get("path") else "",
            )
        )
    tables += _federation(evidence("federation.credential"))
    exchange = evidence("exchange.succeeds")
    if isinstance(exchange.get("claims"), dict):
        rows = _flatten(exchange["claims"])
        for key, label in (("scope", "scope asked"), ("fingerprint", "sha256 fingerprint")):
            if exchange.get(key):
                rows.append([label, cell(exchange[key])])
        tables.append(Table("Access token (decoded claims)", ["Claim", "Value"], rows))
    access = [c for c in workload.get("checks") or [] if str(c.get("id", "")).startswith("access.")]
    roles = next(
        (
            c["evidence"]["identity_roles"]
            for c in access
            if isinstance(c.get("evidence"), dict) and isinstance(c["evidence"].get("identity_roles"), list)
        ),
        None,
    )
    if roles is not None:
        tables.append(
            Table(
                "Role assignments of the identity",
                ["Role", "Scope"],
                [[cell(r.get("role")), cell(r.get("scope"))] for r in roles if isinstance(r, dict)],
                "" if roles else "none",
            )
        )
    if access:
        rows = []
        for check in access:
            ev = check.get("evidence") if isinstance(check.get("evidence"), dict) else {}
            code = " ".join(cell(ev.get(k)) for k in ("code", "innererror") if ev.get(k))
            rows.append(
                [
                    cell(check.get("id")),
                    MARKS.get(str(check.get("status")), ""),
                    cell(ev.get("url")),
                    cell(ev.get("expected")),
                    cell(ev.get("outcome")) or str(check.get("status")),
                    cell(ev.get("http_status")),
                    code,
                ]
            )
        tables.append(
            Table("Access results", ["Check", "Mark", "URL", "Expected", "Outcome", "HTTP", "Code"], rows)
        )
    return tables


def _federation(evidence: dict[str, Any]) -> list[Table]:
    expected = evidence.get("expected") if isinstance(evidence.get("expected"), dict) else None
    credentials = [c for c in evidence.get("federated_credentials") or [] if isinstance(c, dict)]
    if expected is None and not credentials:
        return []
    want = expected or {}
    matched = next(
        (
            c
            for c in credentials
            if c.get("issuer") == want.get("issuer")
            and c.get("subject") == want.get("subject")
            and set(want.get("audiences") or []) <= set(c.get("audiences") or [])
        ),
        None,
    )
    fields = ("name", "issuer", "subject", "audiences")
    if matched is not None:
        return [
            Table(
                "Federated credential that matched",
                ["Field", "Value"],
                [[_title(k), cell(matched.get(k))] for k in fields],
            )
        ]
    tables = [
        Table(
            "Federated credential that matched",
            ["Field", "Value"],
            [[f"expected {k}", cell(want.get(k))] for k in ("issuer", "subject", "audiences")],
            "none matched: the token's issuer, subject and audience as Entra compares them",
        )
    ]
    if credentials:
        tables.append(
            Table(
                "Federated credentials of the identity",
                [_title(k) for k in fields],
                [[cell(c.get(k)) for k in fields] for c in credentials],
            )
        )
    return tables


def _run_by(value: Any, labels: tuple[tuple[str, str], ...]) -> str:
    if not isinstance(value, dict):
        return "not asked"
    if value.get("error"):
        return f"unknown ({cell(value['error'])})"
    parts = [f"{label} {cell(value[key])}" for key, label in labels if value.get(key) not in (None, "", [])]
    return "; ".join(parts) or "unknown"


def _with_display_name(caller: Any) -> Any:
    """The harness's Azure caller (its ARM token's identity claims) with the display name those claims hold: a
    person's ``name`` claim, or a managed identity's name, the last segment of its ``xms_mirid`` resource id. An
    app registration's token names no display name (Entra puts none in an app-only access token)."""
    if not isinstance(caller, dict) or caller.get("error"):
        return caller
    name = caller.get("name") if isinstance(caller.get("name"), str) else ""
    mirid = caller.get("xms_mirid") if isinstance(caller.get("xms_mirid"), str) else ""
    if not name and "/userassignedidentities/" in mirid.lower():
        name = f"{mirid.rstrip('/').rsplit('/', 1)[-1]} (managed identity)"
    return {"display_name": name, **caller} if name else caller


KUBE_USER_LABELS = (("username", "user"), ("groups", "groups"))
AZURE_CALLER_LABELS = (
    ("display_name", "display name"),
    ("upn", "upn"),
    ("unique_name", "name"),
    ("appid", "appid"),
    ("oid", "oid"),
    ("idtyp", "type"),
    ("tid", "tenant"),
)


def _duration(started: str, finished: str) -> str:
    try:
        seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return ""
    return f" ({int(seconds // 60)} min {int(seconds % 60)} s)" if seconds >= 0 else ""


_NOT_LEFTOVERS = ("POD_IDENTITY_UNREADABLE", "POD_IDENTITY_COVERAGE_UNKNOWN")  # doubts, not pod identity left


def narrowed_text(document: dict[str, Any]) -> str:
    """What narrowed the run, in one header cell: the verdict covers only what the run selected."""
    narrowed = document.get("narrowed")
    if not isinstance(narrowed, dict):
        return ""
    parts = [f"{NARROWING_FLAGS[key]} {narrowed[key]!r}" for key in ("keyword", "markexpr") if narrowed.get(key)]
    parts += [str(option) for option in narrowed.get("options") or []]
    parts += [f"{NARROWING_FLAGS.get(key, key)} {value}" for key in ("tests", "workloads", "pods", "namespaces")
              for value in narrowed.get(key) or []]
    if not parts:
        return ""
    # the inventory lists every namespace's ServiceAccounts (orphaned credentials cannot be told otherwise), so
    # its findings may name ServiceAccounts outside --namespace, and they count in the verdict
    wide = ("; --namespace does not narrow the inventory: it cross-matches every namespace's ServiceAccounts with "
            "Azure, so its findings may name others" if narrowed.get("namespaces") and document.get("inventory")
            else "")
    return cell(", ".join(parts) + ": the verdict covers only the checks this run selected, not the whole chain "
                "of every workload" + wide)


def incomplete_text(document: dict[str, Any]) -> str:
    """Why the verdict is FAIL beyond the checks, in one header cell: the run stopped by a signal, the harness's
    tests that errored without a check result (the first one's message); "" for a run that finished whole."""
    incomplete = document.get("incomplete")
    if not isinstance(incomplete, dict):
        return ""
    parts = []
    if incomplete.get("interrupted"):
        parts.append(f"interrupted ({incomplete['interrupted']}) before every check ran: checks not run are not "
                     "in this document, and the verdict is FAIL whatever those that ran say")
    errors = [e for e in incomplete.get("errors") or [] if isinstance(e, dict)]
    if errors:
        first = errors[0]
        parts.append(f"{counted(len(errors), 'test')} of the harness errored without a check result, first "
                     f"{first.get('test')}: {first.get('message')}")
    return cell("; ".join(parts)) if parts else ""


def migration_state(document: dict[str, Any]) -> str | None:
    """Whether the cluster is off pod-managed identity, in one cell of the header: the run's verdict alone cannot
    say (before expect.migration_complete, every leftover is a warning and the run may pass with bindings not
    moved). From the migration checks, the coverage table and the migration findings; None when the migration
    suite did not run."""
    checks = [c for c in document.get("checks") or [] if str(c.get("id", "")).startswith("migration.")]
    if not checks:
        return None
    coverage = document.get("coverage")
    rows = [r for r in coverage if isinstance(r, dict)] if isinstance(coverage, list) else []
    codes = list(dict.fromkeys(str(f.get("code")) for f in document.get("findings") or []
                               if f.get("layer") == "migration"))
    leftovers = [code for code in codes if code not in _NOT_LEFTOVERS]
    doubtful = [c for c in checks if c.get("status") in ("fail", "warn")]
    skipped = [str(c.get("id")) for c in checks if c.get("status") == "skip"]
    missing = [i for i in MIGRATION_CHECK_IDS if i not in {c.get("id") for c in checks}]
    if leftovers:
        behind = [str(r.get("binding")) for r in rows if not r.get("migrated")]
        bindings = (f"{len(rows) - len(behind)} of {len(rows)} AzureIdentityBindings migrated"
                    + (f" (not: {', '.join(behind)})" if behind else "")) if rows else "no AzureIdentityBinding"
        left = document.get("leftovers")
        complete = left.get("migration_complete") if isinstance(left, dict) else None
        how = ("expect.migration_complete: true, so they fail the run" if complete else
               "expect.migration_complete is not set, so they are warnings and do not fail the run")
        return f"NO: {bindings}; pod identity left: {', '.join(leftovers)} ({how})"
    if doubtful:
        return "CANNOT TELL: " + "; ".join(cell(c.get("message")) for c in doubtful)
    if missing:  # an interrupted run, a migration test that errored: what did not run cannot say YES
        return f"CANNOT TELL: {', '.join(missing)} did not run" + (
            " (the run was not complete)" if document.get("incomplete") else "")
    narrowed = document.get("narrowed")
    where = (" in every namespace (--namespace does not narrow the migration checks: they list cluster-wide)"
             if isinstance(narrowed, dict) and narrowed.get("namespaces") else "")
    # what no check can see: the app's own code. One that still asks IMDS (ManagedIdentityCredential, or an SDK
    # older than Workload ID) is answered by the node's IMDS once NMI is gone (aad-pod-identity's known issues: a
    # request NMI does not intercept goes to IMDS), with whatever identity the node holds, or none
    return "YES: no AzureIdentityBinding, aad-pod-identity object, labelled pod or pod template, NMI/MIC, CRD or " \
           "add-on pod identity left" + where + (f" (not checked: {', '.join(skipped)})" if skipped else "") + \
           "; not proven: that no app still asks IMDS for its token (the harness sees pods, not the app's code: " \
           "its SDK version and logs tell), where, without NMI, the node's IMDS answers"


# aad-pod-identity's AzureIdentity spec.type values (its pkg/apis/aadpodidentity/v1 IdentityType constants)
AZURE_IDENTITY_TYPES = {0: "user-assigned managed identity (0)", 1: "service principal (1)",
                        2: "service principal certificate (2)"}


def readable_section(key: str, value: Any) -> Any:
    """A run.json section with its coded values named for a reader: the coverage table's AzureIdentity type."""
    if key != "coverage" or not isinstance(value, list):
        return value
    return [{**row, "identity_type": AZURE_IDENTITY_TYPES.get(row["identity_type"], row["identity_type"])}
            if isinstance(row, dict) and isinstance(row.get("identity_type"), int) else row for row in value]


def run_view(document: dict[str, Any]) -> RunView:
    target = document.get("target") or {}
    run_by = target.get("run_by") or {}
    workloads = document.get("workloads") or []
    cluster = str(target.get("cluster") or target.get("context") or "(unnamed)")
    started, finished = str(document.get("started_at", "")), str(document.get("finished_at", ""))
    header = [
        ("Cluster", cluster),
        ("Kubernetes context", cell(target.get("context")) or "—"),
        ("Target kind", cell(target.get("kind"))),
        ("Resource group", cell(target.get("resource_group")) or "—"),
        ("Subscription", cell(target.get("subscription_id")) or "—"),
        ("OIDC issuer", cell(target.get("issuer")) or "(unknown)"),
        ("Run id", cell(document.get("run_id"))),
        ("Started", started),
        ("Finished", finished + _duration(started, finished)),
        ("Harness version", cell(document.get("harness_version")) or "(unknown)"),
        ("Run by (Kubernetes)", _run_by(run_by.get("kubernetes"), KUBE_USER_LABELS)),
        ("Run by (Azure)", _run_by(_with_display_name(run_by.get("azure")), AZURE_CALLER_LABELS)),
        ("Verdict", str(document.get("verdict", "")).upper()),
        *((("Not complete", unfinished),) if (unfinished := incomplete_text(document)) else ()),
        *((("Narrowed to", narrowed),) if (narrowed := narrowed_text(document)) else ()),
        *((("Off pod identity", migration),) if (migration := migration_state(document)) else ()),
    ]
    columns: list[str] = []
    for workload in workloads:
        for check in workload.get("checks") or []:
            if check.get("id") not in columns:
                columns.append(str(check.get("id")))
    matrix = []
    views = []
    for workload in workloads:
        statuses = {c.get("id"): str(c.get("status")) for c in workload.get("checks") or []}
        first = next((c for c in workload.get("checks") or [] if c.get("status") == "fail"), None)
        matrix.append(
            MatrixRow(
                str(workload.get("id")),
                str(workload.get("verdict")),
                [Mark(statuses.get(column, "")) for column in columns],
            )
        )
        views.append(
            WorkloadView(
                id=str(workload.get("id")),
                namespace=str(workload.get("namespace", "")),
                service_account=str(workload.get("service_account", "")),
                verdict=str(workload.get("verdict")),
                checks=_checks(workload.get("checks") or []),
                findings=_findings(workload.get("findings") or []),
                evidence=_evidence(workload),
                counts=_counts(workload.get("checks") or []),
                first_broken=_checks([first])[0] if first is not None else None,
                first_findings=_findings([f for f in workload.get("findings") or []
                                          if first is not None and f.get("check") == first.get("id")]),
            )
        )
    all_checks = [*(document.get("checks") or []), *(c for w in workloads for c in w.get("checks") or [])]
    all_findings = [
        *(document.get("findings") or []),
        *(f for w in workloads for f in w.get("findings") or []),
    ]
    extra = [k for k in SECTION_ORDER if k in document] + sorted(
        k for k in document if k not in KNOWN_KEYS and k not in SECTION_ORDER
    )
    return RunView(
        run_id=str(document.get("run_id")),
        verdict=str(document.get("verdict")),
        cluster=cluster,
        header=header,
        counts={
            "workloads": {
                "total": len(workloads),
                "pass": sum(1 for w in workloads if w.get("verdict") == "pass"),
                "fail": sum(1 for w in workloads if w.get("verdict") != "pass"),
            },
            "checks": _counts(all_checks),
            "findings": _finding_counts(all_findings),
        },
        matrix_columns=columns,
        matrix=matrix,
        cluster_checks=_checks(document.get("checks") or []),
        cluster_findings=_findings(document.get("findings") or []),
        workloads=views,
        sections=[t for key in extra for t in section_tables(_title(key), readable_section(key, document[key]))],
        incomplete=incomplete_text(document),
        narrowed=bool(narrowed_text(document)),
        cluster_key=(cluster, str(target.get("resource_group") or ""), str(target.get("subscription_id") or "")),
    )


@dataclass
class FleetView:
    verdict: str
    table: Table
    clusters: list[tuple[str, list[RunView]]]
    counts: dict[str, int]

    @property
    def summary(self) -> str:
        """The counts in words, as the sign-off and the merge command say them: '2 clusters, 3 runs, 1 failed on
        1 cluster, 1 cluster without a run' (a cluster without a run is no failed run)."""
        counts = self.counts
        with_runs = counts["failed_clusters"] - counts["missing"]
        return (f"{count(counts['clusters'], 'cluster')}, {count(counts['runs'], 'run')}, {counts['failed_runs']} "
                f"failed" + (f" on {count(with_runs, 'cluster')}" if counts["failed_runs"] else "")
                + (f", {count(counts['missing'], 'cluster')} without a run" if counts["missing"] else ""))


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def fleet_view(documents: list[dict[str, Any]], expected: Iterable[str] = ()) -> FleetView:
    """One sign-off over several runs: fail when any run failed, or when a cluster in ``expected`` (by name) has no
    run (its job failed before it wrote run.json: a merge of the files that are there would otherwise pass); a row
    per run and per missing cluster, a section per cluster."""
    runs = sorted((run_view(d) for d in documents), key=lambda r: (r.cluster_key, _started(r), r.run_id))
    present = {run.cluster_key[0] for run in runs}
    missing = [name for name in dict.fromkeys(expected) if name not in present]
    names: dict[str, set[tuple[str, str, str]]] = {}
    for run in runs:
        names.setdefault(run.cluster, set()).add(run.cluster_key)
    for run in runs:  # two clusters of one name are told apart by where they are
        if len(names[run.cluster]) > 1:
            _, group, subscription = run.cluster_key
            run.cluster = f"{run.cluster} ({group or '(no resource group)'}, subscription " \
                          f"{subscription or '(none)'})"
    clusters: dict[str, list[RunView]] = {}
    for run in runs:
        clusters.setdefault(run.cluster, []).append(run)
    rows = []
    for run in runs:
        checks, findings, workloads = run.counts["checks"], run.counts["findings"], run.counts["workloads"]
        rows.append(
            [
                run.cluster,
                run.run_id,
                _started(run),
                run.verdict.upper() + (" (not complete)" if run.incomplete else " (narrowed)" if run.narrowed else ""),
                # YES / NO / CANNOT TELL (the run's header says why); — when the migration suite did not run
                _migration_cell(run),
                f"{workloads['pass']}/{workloads['total']}",
                *(str(checks[s]) for s in STATUS_ORDER),
                str(findings["error"]),
                str(findings["warning"]),
                first_broken_links(run),
            ]
        )
    rows += [[name, "—", "—", "MISSING: no run.json", "—", "—", *("—" for _ in STATUS_ORDER), "—", "—", "—"]
             for name in missing]
    columns = [
        "Cluster",
        "Run",
        "Started",
        "Verdict",
        "Off pod identity",
        "Workloads passed",
        *(f"Checks {status}" for status in STATUS_ORDER),
        "Error findings",
        "Warning findings",
        "First broken links",
    ]
    failed = [r for r in runs if r.verdict != "pass"]
    narrowed = [r for r in runs if r.narrowed and not r.incomplete]
    notes = [f"No run of {', '.join(missing)}: the fleet verdict is FAIL until each expected cluster has a run."
             if missing else "", repeated_clusters(clusters),
             f"{counted(len(narrowed), 'run')} narrowed to part of the suites "
             f"({', '.join(r.run_id for r in narrowed)}): "
             "each verdict covers only the checks that run selected (its header says what narrowed it)."
             if narrowed else ""]
    return FleetView(
        verdict="fail" if failed or missing or not runs else "pass",
        table=Table("Fleet", columns, rows, " ".join(note for note in notes if note)),
        clusters=list(clusters.items()),
        counts={
            "clusters": len(clusters) + len(missing),
            "runs": len(runs),
            "failed_runs": len(failed),
            "failed_clusters": len({r.cluster for r in failed}) + len(missing),
            "missing": len(missing),
        },
    )


def first_broken_links(run: RunView, most: int = 4) -> str:
    """The fleet table's answer to "why did this run fail": each failed cluster-wide check and each failing
    workload's first broken link, with the codes they raised (the run's section has the fixes); "" for a run
    with no failed check (an incomplete run says why in its header)."""
    parts = [("" if link.name == "cluster-wide" else f"{link.name}: ") + link.check.id + _codes(link.findings)
             for link in run.broken_links]
    if len(parts) > most:
        parts = [*parts[:most], f"{len(parts) - most} more"]
    return "; ".join(parts) or ("not complete (see its header)" if run.incomplete else "")


def _codes(findings: Iterable[FindingView]) -> str:
    codes = list(dict.fromkeys(f.code for f in findings))
    return f" ({', '.join(codes)})" if codes else ""


def _migration_cell(run: RunView) -> str:
    """The fleet table's 'Off pod identity' cell: the header's YES / NO / CANNOT TELL, and a YES with checks that
    were skipped (the add-on's, without ARM) says so, as the run's header does."""
    value = next((value for label, value in run.header if label == "Off pod identity"), None)
    if value is None:
        return "—"
    return value.split(":", 1)[0] + (" (not all checked)" if "(not checked: " in value else "")


def repeated_clusters(clusters: dict[str, list[RunView]]) -> str:
    """A cluster with several runs in one merge: every run counts toward the fleet verdict (a later pass does
    not hide an earlier failure), which the sign-off says, naming each such cluster's latest run."""
    parts = []
    for cluster, runs in clusters.items():
        if len(runs) > 1:
            latest = runs[-1]  # runs are sorted by start
            parts.append(f"{cluster}: {len(runs)} runs, the latest {latest.run_id} ({_started(latest)}) "
                         f"{latest.verdict.upper()}")
    if not parts:
        return ""
    return ("Several runs of one cluster: " + "; ".join(parts) + ". Every run counts toward the fleet verdict, "
            "an earlier failure too: merge only the runs to sign.")


def _started(run: RunView) -> str:
    return next((value for label, value in run.header if label == "Started"), "")


# ---------------------------------------------------------------- rendering


_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|#])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_text(value: Any) -> str:
    """Text in Markdown, inline: one line, each character that Markdown (or HTML in it) acts on escaped."""
    text = " ".join(str(value).split())
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def md_row(cells: Iterable[Any]) -> str:
    """One Markdown table row, each cell escaped."""
    return "| " + " | ".join(md_text(c) for c in cells) + " |"


def md_rule(columns: Iterable[Any], first: int = 0, align: str = "---") -> str:
    """A table's delimiter row: ``first`` plain columns, the rest aligned with ``align``."""
    return "|" + "".join(f" {'---' if i < first else align} |" for i, _ in enumerate(columns))


def md_code(value: Any) -> str:
    """An inline code span that holds ``value`` verbatim (fenced with more backticks than it contains)."""
    text = " ".join(str(value).split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(lines: list[str]) -> str:
    """A fenced code block of ``lines``, fenced with more backticks than any run inside them."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([f"{fence}sh", *lines, fence])


# a table cell whose text holds a longer word may break it anywhere (HTML class "long"); shorter words (a run id,
# a date, a name, managed_identity) stay whole, so a column is never narrower than its longest such word
LONG_TOKEN = 24


# a table whose columns' unbreakable words add up to more characters than this would run off an A4 page at the
# printed font: its cells break anywhere. Measured with chromium --print-to-pdf: a fleet table of 149 fits, the
# migration coverage table's 237 did not (chromium then shrank every page to fit it)
CROWDED = 150


def long_token(value: Any) -> bool:
    return any(len(word) > LONG_TOKEN for word in str(value).split())


def crowded(table: Table) -> bool:
    """Whether the words that stay whole (no cell of class long; a line may still break after a hyphen) of each
    column, its header's included, with each column's padding, are too wide for the page."""
    width = 0
    for index, column in enumerate(table.columns):
        longest = max((len(word) for word in column.split()), default=0)
        for row in table.rows:
            value = row[index] if index < len(row) else ""
            if not long_token(value):
                longest = max([longest, *(len(word) for word in re.split(r"\s+|(?<=-)", value))])
        width += longest + 2
    return width > CROWDED


@functools.cache  # one per format: its templates are compiled once per process (the tests render hundreds)
def _environment(fmt: str) -> Environment:
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        undefined=StrictUndefined,
        autoescape=fmt == "html",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=md_text, code=md_code, fence=md_fence, row=md_row, rule=md_rule)
    env.tests.update(long_token=long_token, crowded=crowded)
    env.globals.update(marks=MARKS, statuses=STATUS_ORDER, severities=SEVERITY_ORDER)
    return env


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")


def render(document: dict[str, Any], fmt: str) -> str:
    """The sign-off of one run, as Markdown or one self-contained HTML page; a control character a cluster value
    carried into it is shown escaped (``cat signoff.md`` must not act on the terminal), a fix holding one is a
    comment (:func:`harness.commands.pasteable`)."""
    _check_format(fmt)
    return visible(_tidy(_environment(fmt).get_template(f"signoff.{fmt}.j2").render(run=run_view(document))),
                   newlines=True)


def render_fleet(documents: list[dict[str, Any]], fmt: str, expected: Iterable[str] = ()) -> str:
    """One sign-off over several runs (several clusters); ``expected``: the clusters that must each have one."""
    _check_format(fmt)
    fleet = fleet_view(documents, expected)
    return visible(_tidy(_environment(fmt).get_template(f"fleet.{fmt}.j2").render(fleet=fleet)), newlines=True)


def _tidy(text: str) -> str:
    """At most one blank line in a row, one newline at the end (remediation lines are single lines)."""
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


class SignoffError(ValueError):
    """The sign-off could not be rendered (a bug, never the input: every run.json renders)."""


def write_signoff(run_dir: Path, document: dict[str, Any], scrub: Any = None) -> list[Path]:
    """signoff.md and signoff.html in ``run_dir``; ``scrub`` (a redactor's text) passes over each again."""
    try:
        texts = {fmt: render(document, fmt) for fmt in FORMATS}
    except TemplateError as exc:
        raise SignoffError(f"cannot render the sign-off: {type(exc).__name__}: {exc}") from None
    return write_documents(run_dir, texts, scrub)


def write_documents(out_dir: Path, texts: dict[str, str], scrub: Any = None) -> list[Path]:
    """Each format's file in ``out_dir``, written whole to a temporary file first and renamed over the old one
    only when every one was written: a failed write (a full disk) leaves the earlier pair as it was, and no
    temporary file behind. OSError as the write raised it."""
    staged: list[tuple[Path, Path]] = []
    try:
        for fmt, text in texts.items():
            path = out_dir / SIGNOFF_FILES[fmt]
            tmp = out_dir / f".{SIGNOFF_FILES[fmt]}.tmp"
            staged.append((tmp, path))
            tmp.write_text(scrub(text) if scrub else text, encoding="utf-8")
        for tmp, path in staged:
            tmp.replace(path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [path for _, path in staged]


# ---------------------------------------------------------------- reading a run.json someone points at


MAX_RUN_BYTES = 64 * 1024 * 1024


class ReportInputError(ValueError):
    """A run.json (or an output path) that cannot be used; the message is one line naming the file and why."""


def load_run(path: Path) -> dict[str, Any]:
    """A run.json read within bounds and validated against the contract, else :class:`ReportInputError`."""
    from pydantic import ValidationError

    from harness.input_files import InputFileError, read_text

    if str(path) == "-":  # ... | sed -n 's/^WI-HARNESS-RUN-JSON //p' | python -m harness report render -
        text, path = _read_stdin(), Path("(stdin)")
    else:
        try:
            text = read_text(path, MAX_RUN_BYTES)
        except InputFileError as exc:
            inside = path / "run.json" if path.is_dir() else None  # a run's directory (reports/latest) named
            hint = f": did you mean {inside}?" if inside is not None and inside.is_file() else ""
            raise ReportInputError(f"{exc.path}: {exc.reason}{hint}") from None
    if not text.strip():  # sed -n 's/^WI-HARNESS-RUN-JSON //p' of a Job's log without that line
        raise ReportInputError(
            f"{path}: is empty: no run was written into it (if it came from the Job's log, the run stopped before "
            "it wrote one, and the log says why: kubectl -n wi-harness logs job/wi-harness)")
    if not text.lstrip().startswith("{") and "WI-HARNESS-RUN-JSON " in text:  # the Job's log saved whole
        raise ReportInputError(
            f"{path}: the Job's log, not its run.json: take the line the harness tagged, sed -n "
            "'s/^WI-HARNESS-RUN-JSON //p' (README: In the cluster, as a Job)")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        ended = exc.msg.startswith("Unterminated string") or (
            exc.pos >= len(text.rstrip()) and not exc.msg.startswith("Extra data"))
        if text.strip() and ended:  # the text ends inside the document
            raise ReportInputError(
                f"{path}: cut short: the JSON ends after {len(text.rstrip())} characters, inside the document (a "
                "copy that did not finish, or a Job log line that log rotation cut: take run.json from "
                "harness.report_claim's volume)") from None
        raise ReportInputError(f"{path}: not JSON ({exc})") from None
    except ValueError as exc:
        raise ReportInputError(f"{path}: not JSON ({exc})") from None
    except RecursionError:  # [[[... thousands deep: the decoder recurses (a run.json nests fewer than 10 levels)
        raise ReportInputError(f"{path}: not a run.json: JSON nested too deeply to read") from None
    schema = document.get("schema") if isinstance(document, dict) else None
    if not isinstance(schema, str) or not schema.startswith("wi-harness/run/"):
        raise ReportInputError(f'{path}: not a run.json (no "schema": "wi-harness/run/v1")')
    if schema != SCHEMA:
        raise ReportInputError(f"{path}: a run.json of schema {schema!r}, which this harness "
                               f"({__version__}) does not read: it reads {SCHEMA!r}; render it with the harness "
                               "version that wrote it")
    try:
        validate_run(document)
    except ValidationError as exc:
        # fields and sections a newer harness added under the same schema are read past (a top-level section is
        # rendered generically, a field in a check or finding is left out): anything else is refused
        problems = [error for error in exc.errors() if error.get("type") != "extra_forbidden"]
        if problems:
            raise ReportInputError(f"{path}: does not match the run.json schema: {_first_error(problems)}") from None
    return document


def _read_stdin() -> str:
    """run.json piped in (``-``), within the same bound as a file."""
    data = sys.stdin.buffer.read(MAX_RUN_BYTES + 1)
    if len(data) > MAX_RUN_BYTES:
        raise ReportInputError(f"(stdin): over the {MAX_RUN_BYTES // (1024 * 1024)} MiB limit of a run.json")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportInputError(f"(stdin): not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}") from None


def _first_error(errors: list[Any]) -> str:
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "(document)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"
