"""The findings catalogue (harness.findings) is complete and true: every code harness/ produces is in it and
it lists no code nothing produces, layers and severities agree with the Finding(...) calls, docs/findings.md
is the catalogue rendered, each reproduction it names exists and makes that code, and at least 45 codes have
a lab fault."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import test_fault_matrix

from harness.findings import BY_CODE, CATALOGUE, lab_reproduced, render_markdown

REPO = Path(__file__).resolve().parents[2]
CODE_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# Code-shaped names in harness/ that are not finding codes: environment variables and OS constants.
NOT_FINDING_CODES = {
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_CERTIFICATE_PATH",  # EnvironmentCredential's variables (collect.arm_api)
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_ENVIRONMENT",  # a key of the webhook's azure-wi-webhook-config (checks.cluster)
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_PASSWORD",
    "AZURE_TENANT_ID",
    "AZURE_USERNAME",
    "CERTIFICATE_VERIFY_FAILED",  # OpenSSL's reason in an SSLError the kubeconfig check reads (collect.kube_api)
    "CLIENT_ID",  # the shell variables a fix captures an identity made again in (checks.remediation)
    "HTTPS_PROXY",  # the proxy variable AKS's HTTP proxy feature puts in pods (checks.exchange)
    "KUBERNETES_SERVICE_HOST",
    "O_CLOEXEC",
    "PRINCIPAL_ID",
    "WI_HARNESS_RETRY_DELAY_SCALE",
}
SEVERITY_NAMES = {"ERROR": "error", "WARNING": "warning", "INFO": "info"}


def harness_sources() -> list[Path]:
    return [p for p in sorted((REPO / "harness").rglob("*.py")) if p.name != "findings.py"]


def code_constants() -> dict[str, set[str]]:
    """Every code-shaped string constant in harness/ (but the catalogue) -> the files it is in."""
    found: dict[str, set[str]] = {}
    for path in harness_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE_RE.match(node.value):
                found.setdefault(node.value, set()).add(str(path.relative_to(REPO)))
    return {code: files for code, files in found.items() if code not in NOT_FINDING_CODES}


def finding_calls() -> list[tuple[str, str | None, str | None, str]]:
    """(code, severity, layer, where) of each Finding("CODE", SEVERITY, "layer", ...) call with a literal
    code; severity or layer None where the call computes it."""
    calls = []
    for path in harness_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding" and node.args):
                continue
            code = node.args[0]
            if not (isinstance(code, ast.Constant) and isinstance(code.value, str)):
                continue
            severity = node.args[1] if len(node.args) > 1 else None
            layer = node.args[2] if len(node.args) > 2 else None
            calls.append(
                (
                    code.value,
                    SEVERITY_NAMES.get(severity.id) if isinstance(severity, ast.Name) else None,
                    layer.value if isinstance(layer, ast.Constant) else None,
                    f"{path.relative_to(REPO)}:{node.lineno}",
                )
            )
    return calls


def aadsts_codes() -> set[str]:
    from harness.checks.exchange import AADSTS_MEANINGS

    return {code for code, _, _ in AADSTS_MEANINGS.values()}


def test_every_code_harness_produces_is_catalogued_and_the_catalogue_lists_no_other() -> None:
    used = code_constants()
    literal = {code for code, _, _, _ in finding_calls()}
    assert literal <= set(used) and aadsts_codes() <= set(used)  # the walk sees Finding("...") and the tables
    catalogued = {entry.code for entry in CATALOGUE}
    missing = {code: sorted(files) for code, files in used.items() if code not in catalogued}
    assert not missing, f"codes used in harness/ without an entry in harness/findings.py: {missing}"
    assert not catalogued - set(used), f"catalogued codes nothing produces: {sorted(catalogued - set(used))}"
    assert len(catalogued) == len(CATALOGUE), "a code is catalogued twice"


def test_layers_and_severities_agree_with_the_finding_calls() -> None:
    wrong = []
    for code, severity, layer, where in finding_calls():
        entry = BY_CODE[code]
        if severity is not None and severity not in entry.severities:
            wrong.append(f"{where}: {code} is {severity}, catalogued {entry.severity}")
        if layer is not None and layer not in entry.layer.split("|"):
            wrong.append(f"{where}: {code} in layer {layer}, catalogued {entry.layer}")
    assert not wrong, wrong


def test_every_entry_says_what_it_means_how_it_is_fixed_and_what_reproduces_it() -> None:
    for entry in CATALOGUE:
        assert entry.meaning and entry.fix, entry.code
        assert entry.reproduced_by or entry.no_lab_fault, entry.code
        assert entry.lab_reproduced or entry.no_lab_fault, f"{entry.code}: no lab fault and no reason why"
        assert set(entry.severities) <= {"error", "warning", "info"}, entry.code


def _function_source(path: Path, name: str) -> str | None:
    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node)
    return None


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: entry.code)
def test_each_reproduction_exists_and_makes_the_code(entry: object) -> None:
    from harness.findings import Entry

    assert isinstance(entry, Entry)
    for ref in entry.reproduced_by:
        kind, _, what = ref.partition(":")
        if kind in ("scenario", "fault"):
            table = (
                test_fault_matrix.SCENARIOS
                if kind == "scenario"
                else {name: fault.wanted for name, fault in test_fault_matrix.FAULTS.items()}
            )
            assert what in table, f"{entry.code}: no {kind} {what} in the fault matrix"
            assert entry.code in table[what].errors | table[what].warnings, (
                f"{entry.code}: {ref} does not expect it"
            )
        else:
            assert kind in ("test", "unit"), ref
            path, _, name = what.partition("::")
            source = _function_source(REPO / path, name) if (REPO / path).exists() else None
            assert source is not None, f"{entry.code}: {ref} does not exist"
            if kind == "test":  # a lab test may run over a table of cases in its module
                assert path.endswith("_lab.py"), f"{ref}: a lab test lives in a *_lab.py module"
                source = (REPO / path).read_text()
            assert entry.code in source, f"{entry.code}: {ref} does not name the code"


def test_every_code_the_fault_matrix_expects_is_catalogued_with_it() -> None:
    expected = [(f"scenario:{name}", wanted) for name, wanted in test_fault_matrix.SCENARIOS.items()]
    expected += [(f"fault:{name}", fault.wanted) for name, fault in test_fault_matrix.FAULTS.items()]
    unlisted = [
        (ref, code)
        for ref, wanted in expected
        for code in wanted.errors
        if ref not in BY_CODE[code].reproduced_by
    ]
    assert not unlisted, f"fault matrix codes the catalogue does not credit to the fault: {unlisted}"


def test_at_least_45_codes_are_reproduced_by_a_lab_fault() -> None:
    assert len(lab_reproduced()) >= 45, len(lab_reproduced())


def test_docs_findings_md_is_the_catalogue_rendered() -> None:
    docs = REPO / "docs" / "findings.md"
    assert docs.exists(), "run: python -m harness findings --format md > docs/findings.md"
    assert docs.read_text() == render_markdown(), (
        "docs/findings.md drifted from harness/findings.py: python -m harness findings --format md > "
        "docs/findings.md"
    )


def test_the_command_prints_the_markdown() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "findings", "--format", "md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == render_markdown()
    assert all(f"| `{entry.code}` |" in result.stdout for entry in CATALOGUE)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full (a disk always full)")
@pytest.mark.parametrize("args", [["findings", "--format", "md"], ["findings", "SA_NOT_FOUND"]])
def test_standard_output_on_a_full_disk_is_one_line_not_a_traceback(args: list[str]) -> None:
    """``python -m harness findings --format md > docs/findings.md`` with the disk full ended in a traceback (OSError
    ENOSPC from sys.stdout.write, then again at exit), exit status 1. Now one line and exit status 2."""
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr == ("python -m harness findings: error: cannot write to standard output: No space left on "
                             "device\n")


def test_one_code_as_a_troubleshooter_types_it(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m harness findings SA_NOT_FOUND`` (a code read in a run's output) was refused: 'unrecognized
    arguments'. It prints that code's entry, in any case; a prefix lists its codes; an unknown code is one line
    naming the closest, exit status 2, after the others were printed."""
    from harness.cli import main

    entry = BY_CODE["SA_NOT_FOUND"]
    assert main(["findings", "sa_not_found"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"SA_NOT_FOUND ({entry.layer}, {entry.severity})\n") and entry.meaning in out
    assert main(["findings", "FIC_"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [e.code for e in CATALOGUE if e.code.startswith("FIC_")] and len(listed) > 3
    assert main(["findings", "SA_NOT_FOND", "FIC_MISSING"]) == 2
    printed = capsys.readouterr()
    assert printed.out.startswith("FIC_MISSING (") and "Traceback" not in printed.err
    assert printed.err.startswith("python -m harness findings: error: 'SA_NOT_FOND' is no finding code: did you "
                                  "mean SA_NOT_FOUND") and printed.err.count("\n") == 1
    advice = next(e for e in CATALOGUE if e.advice_only)
    assert main(["findings", advice.code]) == 0 and "Advice only" in capsys.readouterr().out


def test_an_entra_error_code_from_an_apps_log_names_its_findings(capsys: pytest.CaptureFixture[str]) -> None:
    """A troubleshooter with 'AADSTS700213: No matching federated identity record found' in the app's log typed
    ``python -m harness findings AADSTS700213``: 'is no finding code: python -m harness findings lists them all'.
    The findings whose meaning names that Entra code are printed (as the log line has it, colon and any case
    included; AADSTS70021/70025 names both); one no finding names is one line, exit status 2."""
    from harness.cli import main

    assert main(["findings", "AADSTS700213:"]) == 0
    assert capsys.readouterr().out.startswith("FIC_SUBJECT_MISMATCH (federation, error)\n")
    assert main(["findings", "aadsts70025"]) == 0
    assert capsys.readouterr().out.startswith("FIC_MISSING (")
    assert main(["findings", "700213"]) == 0  # the number alone, as the sign-in logs' error code column shows it
    assert capsys.readouterr().out.startswith("FIC_SUBJECT_MISMATCH (")
    assert main(["findings", "12"]) == 2 and "'12' is no finding code" in capsys.readouterr().err
    assert main(["findings", "AADSTS12345"]) == 2
    printed = capsys.readouterr()
    assert printed.err == ("python -m harness findings: error: AADSTS12345 is an Entra error code no finding names "
                           "(python -m harness findings lists them all)\n")


@pytest.mark.parametrize("code", ["FIC_MISSING", "FIC_ISSUER_MISMATCH", "FIC_AUDIENCE_MISMATCH", "SA_WITHOUT_FIC"])
def test_a_credential_fix_names_the_app_registrations_command_beside_the_managed_identitys(code: str) -> None:
    """python -m harness findings FIC_MISSING, read for a workload whose identity is an app registration (README's
    troubleshooting), named only `az identity federated-credential create`, which takes a managed identity's
    group and name: an app's credentials are Microsoft Graph's, made with az ad app federated-credential."""
    fix = BY_CODE[code].fix
    assert "az identity federated-credential" in fix and "az ad app federated-credential" in fix and "<appId>" in fix


def test_aadsts700016_names_the_object_id_annotated_and_the_other_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    """'AADSTS700016: Application with identifier ... was not found in the directory' in the app's log, after the
    ServiceAccount was annotated with the app registration's object id (its 'Object ID' beside its 'Application
    (client) ID' in the portal): python -m harness findings AADSTS700016 printed IDENTITY_NOT_FOUND alone, not
    SA_ANNOTATION_IS_PRINCIPAL_ID, that very mistake, nor the annotated tenant that is not the app's."""
    from harness.cli import main

    assert main(["findings", "AADSTS700016"]) == 0
    printed = [line.split(" ")[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert printed[:3] == ["SA_ANNOTATION_IS_PRINCIPAL_ID", "IDENTITY_NOT_FOUND", "IDENTITY_TENANT_MISMATCH"]
