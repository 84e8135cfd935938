"""The findings catalogue agrees with the remediation test: a code whose printed commands the test runs names
that test as a reproduction and is not marked advice only; a code marked advice only (a wait, a clock, a
person's policy) has no case there, and says why no command repairs it."""

from __future__ import annotations

from test_remediation_repairs_lab import CASES

from harness.findings import CATALOGUE

REMEDIATION = "test:tests/harness/test_remediation_repairs_lab.py::test_the_printed_remediation_repairs_the_lab"
ENTRIES = {entry.code: entry for entry in CATALOGUE}


def test_every_code_the_remediation_test_runs_names_it_and_is_not_advice_only() -> None:
    for case in CASES:
        entry = ENTRIES[case.code]
        assert REMEDIATION in entry.reproduced_by, case.code
        assert not entry.advice_only, case.code


def test_codes_no_command_repairs_say_so_and_have_no_case() -> None:
    advice = {entry.code for entry in CATALOGUE if entry.advice_only}
    assert {"TOKEN_TIME_INVALID", "FIC_PROPAGATION_PENDING", "ROLE_PROPAGATION_PENDING",
            "ISSUER_KEYS_NOT_YET_SEEN"} <= advice
    assert advice & {case.code for case in CASES} == set()
    assert all(len(ENTRIES[code].advice_only) > 10 for code in advice)
