"""Azure Resource Graph queries the lab answers: a small, exact subset of KQL, evaluated over plain rows.

Understood (whitespace and case of keywords free; column names and property paths case-sensitive, as in KQL)::

    resources                                       # or Resources
    | where <cond>                                   # any number of where stages
    | project <column>, <column.path>, ...           # optional; properties.clientId -> properties_clientId
    | limit N                                        # or take N

    <cond>   := <cmp> (and <cmp>)* (or <cmp> (and <cmp>)*)*       # and binds tighter than or; no parentheses
    <cmp>    := <column.path> (=~ | !~ | == | !=) '<string>'       # =~ and !~ compare case-insensitively

That is every query the harness sends (``type =~ 'microsoft.managedidentity/userassignedidentities'`` and
``properties.clientId =~ '<guid>'``) and what people type for the same question. Anything else is refused with
the service's own 400: code BadRequest, details InvalidQuery and ParserFailure naming the token where reading
stopped -- the lab is not a KQL engine, and a query it cannot read must not look like an empty result.

Rows are ARG's ``resources`` table: lowercase ``type`` and ``resourceGroup``, the resource's ``properties``.
Pure: no I/O; the ARM face (lab.azure.arm_resources) decides which rows the caller may see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TABLE_NAMES = ("resources", "Resources")
OPERATORS = ("=~", "!~", "==", "!=")
MAX_TOP = 1000
DEFAULT_TOP = 100
INVALID_QUERY_TEXT = (
    "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error "
    "before retrying."
)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>=~|!~|==|!=)
      | (?P<punct>[|,])
      | (?P<number>\d+)(?![A-Za-z_])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<other>\S)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # string | op | punct | number | name | other | end
    text: str
    position: int

    @property
    def value(self) -> str:
        """A string literal's value, escapes resolved."""
        return re.sub(r"\\(.)", r"\1", self.text[1:-1])


class QueryError(ValueError):
    """The query is outside what the lab reads; ``token`` and ``position`` say where reading stopped."""

    def __init__(self, token: str, position: int) -> None:
        super().__init__(f"cannot read the query at {position}: {token!r}")
        self.token = token
        self.position = position


@dataclass(frozen=True)
class Comparison:
    path: tuple[str, ...]
    operator: str
    value: str

    def holds(self, row: dict[str, Any]) -> bool:
        actual = lookup(row, self.path)
        if actual is None or isinstance(actual, dict | list):
            return self.operator in ("!=", "!~")
        text = str(actual).lower() if isinstance(actual, bool) else str(actual)
        if self.operator == "==":
            return text == self.value
        if self.operator == "!=":
            return text != self.value
        if self.operator == "=~":
            return text.lower() == self.value.lower()
        return text.lower() != self.value.lower()


@dataclass
class Query:
    # Each where stage is an OR of AND-groups of comparisons.
    where: list[list[list[Comparison]]] = field(default_factory=list)
    project: list[tuple[str, ...]] | None = None
    limit: int | None = None

    def matches(self, row: dict[str, Any]) -> bool:
        return all(any(all(c.holds(row) for c in group) for group in stage) for stage in self.where)

    def shape(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.project is None:
            return row
        return {"_".join(path): lookup(row, path) for path in self.project}

    def run(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        selected = [self.shape(row) for row in rows if self.matches(row)]
        return selected if self.limit is None else selected[: self.limit]


def lookup(row: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = row
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def tokenize(text: str) -> list[Token]:
    """Every character belongs to some token (``other`` for what the subset has no use for), so the parser,
    not the tokenizer, names the first thing it cannot read -- as ARG's ParserFailure does."""
    tokens: list[Token] = []
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        assert match is not None  # the "other" alternative matches any non-space character
        kind = match.lastgroup or "other"
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    tokens.append(Token("end", "<EOF>", len(text)))
    return tokens


class _Reader:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def fail(self) -> QueryError:
        return QueryError(self.current.text, self.current.position)

    def keyword(self, *words: str) -> str | None:
        if self.current.kind == "name" and self.current.text.lower() in words:
            return self.take().text.lower()
        return None

    def expect(self, kind: str) -> Token:
        if self.current.kind != kind:
            raise self.fail()
        return self.take()


def parse(text: str) -> Query:
    reader = _Reader(tokenize(text))
    table = reader.current
    if table.kind != "name" or table.text not in TABLE_NAMES:
        raise reader.fail()
    reader.take()
    query = Query()
    while reader.current.kind != "end":
        if reader.current.text != "|":
            raise reader.fail()
        reader.take()
        stage = reader.keyword("where", "project", "limit", "take")
        if stage == "where":
            query.where.append(_condition(reader))
        elif stage == "project" and query.project is None:
            query.project = _columns(reader)
        elif stage in ("limit", "take") and query.limit is None:
            query.limit = int(reader.expect("number").text)
        else:
            raise reader.fail()
    return query


def _condition(reader: _Reader) -> list[list[Comparison]]:
    groups = [[_comparison(reader)]]
    while True:
        joiner = reader.keyword("and", "or")
        if joiner is None:
            return groups
        if joiner == "or":
            groups.append([])
        groups[-1].append(_comparison(reader))


def _comparison(reader: _Reader) -> Comparison:
    path = reader.expect("name").text
    operator = reader.expect("op").text
    literal = reader.expect("string")
    return Comparison(tuple(path.split(".")), operator, literal.value)


def _columns(reader: _Reader) -> list[tuple[str, ...]]:
    columns = [tuple(reader.expect("name").text.split("."))]
    while reader.current.text == ",":
        reader.take()
        columns.append(tuple(reader.expect("name").text.split(".")))
    return columns


def as_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``resultFormat: table``: columns with their types, then rows in column order."""
    names: list[str] = []
    for row in rows:
        names += [name for name in row if name not in names]
    return {
        "columns": [{"name": name, "type": _column_type([row.get(name) for row in rows])} for name in names],
        "rows": [[row.get(name) for name in names] for row in rows],
    }


def _column_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if present and all(isinstance(v, dict | list) for v in present):
        return "object"
    return "string"
