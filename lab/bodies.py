"""Bounds on request bodies, shared by every lab service; each service answers in its own error shape.

Size: aiohttp's ``client_max_size`` on each web.Application (``request.read()``/``post()`` raise
``HTTPRequestEntityTooLarge``); each service catches that and renders its own answer.

Nesting: Go's encoding/json (and sigs.k8s.io/json, which the API server uses) refuses documents nested deeper
than 10000 levels ("exceeded max depth"; go-yaml: "exceeded max depth of 10000"). The lab cannot hold that
much: CPython's parsers and the lab's own recursive code (deepcopy, merge patches, json.dumps) exhaust the
interpreter's recursion limit (1000 frames) long before, which is how a deep body used to become a 500 with a
RecursionError. So the lab refuses bodies nested deeper than :data:`MAX_NESTING_DEPTH` before parsing them,
with the same words the real service uses at its own limit. Unverified: the lab's limit is lower than the
real services' (no real object comes near it; see tests/lab/test_hostile_inputs.py for the depth the lab
is proven to handle end to end).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_NESTING_DEPTH = 200
# A JSON string (escapes included) or one structural character; everything else is skipped.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # _JSON_TOKEN's strings, matched the same way
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


@dataclass(frozen=True)
class TooDeep:
    """Where a document first goes deeper than the limit."""

    char: str  # the opening bracket one level too deep
    offset: int  # its index in the text
    line: int  # 1-based
    column: int  # 1-based position on its line
    path: str  # Json.NET-style path of the value being opened ("spec.items[0].a")


def _path(frames: list[list]) -> str:
    path = ""
    for kind, index, key in frames:
        if kind == "[":
            path += f"[{index}]"
        elif key is not None:
            path += f".{key}" if path else key
    return path


def _key(token: str) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return token[1:-1]


def _depth_within(text: str, limit: int) -> bool:
    """Whether the brackets outside strings nest no deeper than ``limit``, counted as :func:`json_too_deep` counts
    them (a stray closer at depth 0 is ignored) but over the brackets alone: every request body of any size passes
    through here, and walking each of its tokens in Python cost as much as parsing it."""
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return False
        elif depth:
            depth -= 1
    return True


def json_too_deep(text: str, limit: int | None = None) -> TooDeep | None:
    """The first bracket nested deeper than ``limit`` (default :data:`MAX_NESTING_DEPTH`) in a JSON text, or
    None (also for malformed text that stays within the limit: the parser reports that)."""
    limit = MAX_NESTING_DEPTH if limit is None else limit
    if text.count("[") + text.count("{") <= limit or _depth_within(text, limit):
        return None
    return _first_too_deep(text, limit)


def _first_too_deep(text: str, limit: int) -> TooDeep | None:
    frames: list[list] = []  # [kind, array index, current object key]
    expecting_key = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            if frames and frames[-1][0] == "{" and expecting_key:
                frames[-1][2] = _key(token)
                expecting_key = False
        elif token in "[{":
            if len(frames) >= limit:
                offset = match.start()
                line_start = text.rfind("\n", 0, offset) + 1
                return TooDeep(token, offset, text.count("\n", 0, offset) + 1, offset - line_start + 1,
                               _path(frames))
            frames.append([token, 0, None])
            expecting_key = token == "{"
        elif token in "]}":
            if frames:
                frames.pop()
            expecting_key = False
        elif token == "," and frames:
            if frames[-1][0] == "[":
                frames[-1][1] += 1
            else:
                expecting_key = True
    return None


def bounded_loads(data: str | bytes) -> Any:
    """json.loads for small documents a client controls (tokens, continue/skip tokens, fetched OIDC documents):
    ValueError (as for any malformed JSON) when nested deeper than :data:`MAX_NESTING_DEPTH`."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if json_too_deep(text) is not None:
        raise ValueError(f"nested deeper than {MAX_NESTING_DEPTH} levels")
    return json.loads(text)


def go_json_depth_error(problem: TooDeep) -> str:
    """encoding/json's SyntaxError text for it (scanner.pushParseState)."""
    return f"invalid character '{problem.char}' exceeded max depth"


def newtonsoft_depth_error(problem: TooDeep) -> str:
    """Json.NET's JsonReaderException text for it (.NET services: ARM). Unverified: the lab's limit, not
    Json.NET's (64 by default since 13.0)."""
    return (f"The reader's MaxDepth of {MAX_NESTING_DEPTH} has been exceeded. Path '{problem.path}', line {problem.line}, "
            f"position {problem.column}.")
