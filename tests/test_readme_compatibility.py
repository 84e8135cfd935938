"""The README's compatibility table cannot claim a test that does not exist: every row says works or differs
(with the reason), and every test it names is a test function of its module, found in the module's syntax tree."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADING = "### The lab's compatibility"
NODE_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]`]*\])?`")
COLUMNS = ["Client: operation", "Against the lab", "Proved by"]


def section(text: str) -> list[str]:
    start = text.index(HEADING) + len(HEADING)
    end = re.compile(r"^#{1,3} ", re.MULTILINE).search(text, start)
    return text[start:end.start() if end else len(text)].splitlines()


def cells(line: str) -> list[str]:
    """A Markdown table row split on its unescaped pipes (`\\|` stays inside a cell)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in section(text) if line.startswith("|")]
    assert lines, f"no table under {HEADING!r}"
    assert cells(lines[0]) == COLUMNS
    assert set("".join(cells(lines[1]))) <= set("-: ")
    return [cells(line) for line in lines[2:]]


@cache
def functions_in(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    return frozenset(node.name for node in tree.body
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"))


def problems(text: str) -> list[str]:
    found = []
    for row in table_rows(text):
        if len(row) != len(COLUMNS):
            found.append(f"{len(row)} cells, not {len(COLUMNS)}: {row}")
            continue
        what, verdict, proof = row
        if not re.match(r"works\b|differs: \S", verdict):
            found.append(f"{what}: says neither 'works' nor 'differs: <reason>': {verdict!r}")
        nodes = NODE_ID.findall(proof)
        if not nodes or len(nodes) != proof.count("`") // 2:
            found.append(f"{what}: names no test, or something that is not a test's node id: {proof!r}")
        for path, name in nodes:
            if not (ROOT / path).is_file():
                found.append(f"{what}: {path} does not exist")
            elif name not in functions_in(path):
                found.append(f"{what}: {path} has no test function {name}")
    return found


def test_every_row_has_a_verdict_and_names_tests_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(table_rows(text)) >= 20  # kubectl's commands, the Python client, Helm and az
    assert problems(text) == []


@pytest.mark.parametrize("row, complaint", [
    ("| kubectl `x` | works | `tests/lab/test_helm.py::test_that_does_not_exist` |", "has no test function"),
    ("| kubectl `x` | works | `tests/lab/test_nothing_here.py::test_install_list_upgrade_uninstall` |",
     "does not exist"),
    ("| kubectl `x` | mostly | `tests/lab/test_helm.py::test_install_list_upgrade_uninstall` |", "neither"),
    ("| kubectl `x` | differs | `tests/lab/test_helm.py::test_install_list_upgrade_uninstall` |", "neither"),
    ("| kubectl `x` | works | by hand |", "names no test"),
    ("| kubectl `x` | works | `tests/lab/test_helm.py::test_install_list_upgrade_uninstall`, `kubectl` |",
     "names no test"),
    ("| kubectl `x` | works |", "cells"),
])
def test_a_row_that_claims_too_much_is_caught(row: str, complaint: str) -> None:
    text = f"{HEADING}\n\n| {' | '.join(COLUMNS)} |\n| --- | --- | --- |\n{row}\n\n## Next\n"
    [problem] = problems(text)
    assert complaint in problem


def test_escaped_pipes_stay_in_their_cell_and_parametrised_ids_name_the_function() -> None:
    row = ("| kubectl `create deployment\\|job` | works | "
           "`tests/lab/test_webhook_upstream_table.py::test_handle[some case]` |")
    text = f"{HEADING}\n\n| {' | '.join(COLUMNS)} |\n| --- | --- | --- |\n{row}\n"
    assert problems(text) == []
