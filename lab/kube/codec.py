"""Request bodies: JSON (also when Content-Type is missing, as the Python client sends it), YAML and
kubectl's protobuf, decoded to plain dicts; malformed input answers 400 with the API server's wording
(Go's encoding/json and sigs.k8s.io/yaml messages)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from lab import bodies
from lab.kube import errors, protobuf

JSON = "application/json"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH, APPLY_PATCH)

UNKNOWN_FORMAT = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json, application/yaml, application/vnd.kubernetes.protobuf"
)
TYPE_META_STRUCT = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``; a missing header means JSON."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    return value or JSON


class _YamlLoader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it into JSON: timestamps stay strings."""


_EventLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # events only: the C parser when there is one

_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# ---------------------------------------------------------------- Go-shaped parse errors


def _go_char(char: str) -> str:
    return {"'": "'\\''", "\n": "'\\n'", "\t": "'\\t'", "\r": "'\\r'"}.get(char, f"'{char}'")


def _innermost_bracket(text: str) -> str:
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def go_json_error(exc: json.JSONDecodeError) -> str:
    """What Go's encoding/json says about the same malformed document."""
    doc, pos = exc.doc, exc.pos
    if pos >= len(doc.rstrip()) or exc.msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    char = _go_char(doc[pos])
    if exc.msg == "Expecting value":
        return f"invalid character {char} looking for beginning of value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if exc.msg == "Expecting ':' delimiter":
        return f"invalid character {char} after object key"
    if exc.msg == "Expecting ',' delimiter":
        where = "object key:value pair" if _innermost_bracket(doc[:pos]) == "{" else "array element"
        return f"invalid character {char} after {where}"
    if exc.msg == "Extra data":
        return f"invalid character {char} after top-level value"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    if exc.msg.startswith("Invalid \\escape"):
        return f"invalid character {_go_char(doc[pos + 1 : pos + 2] or ' ')} in string escape code"
    return exc.msg


def go_json_type(value: Any) -> str:
    """How Go's encoding/json names a JSON value's type in unmarshal errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def go_number(value: int | float) -> str:
    """A JSON number as Go's unmarshal errors quote it (``number 1.5``, ``number 1e+30``)."""
    return json.dumps(value)


def _json_text(raw: bytes, prefix: str) -> str:
    """The body as text, refused (400, ``prefix`` + Go's words) when it is nested deeper than the lab holds."""
    text = raw.decode("utf-8") if raw else ""
    problem = bodies.json_too_deep(text)
    if problem is not None:
        raise errors.bad_request(prefix + bodies.go_json_depth_error(problem))
    return text


def parse_json(raw: bytes) -> Any:
    prefix = "couldn't get version/kind; json parse error: "
    try:
        return json.loads(_json_text(raw, prefix))
    except UnicodeDecodeError as exc:
        raise errors.bad_request(f"{prefix}invalid UTF-8 ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise errors.bad_request(f"{prefix}{go_json_error(exc)}") from exc


# go-yaml's "billion laughs" guard (decode.go allowedAliasRatio): alias expansion may make up 99% of the
# decoded nodes of a small document, falling to 10% from 400,000 nodes on; beyond that the document is refused.
ALIAS_RATIO_RANGE = (400_000, 4_000_000)


def _allowed_alias_ratio(decoded: int) -> float:
    low, high = ALIAS_RATIO_RANGE
    if decoded <= low:
        return 0.99
    if decoded >= high:
        return 0.10
    return 0.99 - 0.89 * (decoded - low) / (high - low)


def _yaml_shape_problem(text: str) -> str | None:
    """What go-yaml (through sigs.k8s.io/yaml) refuses before anything is built: nesting deeper than the
    lab's limit ("exceeded max depth of N", at the line go-yaml names) and excessive aliasing. Walks the
    parser's events, so neither the depth nor the expansion is ever materialised. Malformed YAML is left to
    the loader, which reports it."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (decoded nodes, of which from alias expansion)
    open_nodes: list[list] = []  # [decoded, aliased, anchor] per open collection
    decoded, aliased = 1, 0  # the document node
    try:
        for event in yaml.parse(text, Loader=_EventLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                if len(open_nodes) >= bodies.MAX_NESTING_DEPTH:
                    line = event.start_mark.line
                    where = f"line {line + 1}: " if line else ""
                    return f"{where}exceeded max depth of {bodies.MAX_NESTING_DEPTH}"
                open_nodes.append([1, 0, event.anchor])
                continue
            if isinstance(event, yaml.CollectionEndEvent) and open_nodes:
                node, node_aliased, anchor = open_nodes.pop()
            elif isinstance(event, yaml.ScalarEvent):
                node, node_aliased, anchor = 1, 0, event.anchor
            elif isinstance(event, yaml.AliasEvent):
                expanded = sizes.get(event.anchor, (0, 0))[0]
                node, node_aliased, anchor = 1 + expanded, expanded, None
            else:
                continue
            if anchor:
                sizes[anchor] = (node, node_aliased)
            if open_nodes:
                open_nodes[-1][0] += node
                open_nodes[-1][1] += node_aliased
            else:
                decoded += node
                aliased += node_aliased
            if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
                return "document contains excessive aliasing"
    except yaml.YAMLError:
        pass
    return None


def parse_yaml(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
        problem = _yaml_shape_problem(text)
        if problem:
            raise errors.bad_request(f"error converting YAML to JSON: yaml: {problem}")
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError as exc:
        raise errors.bad_request(
            f"error converting YAML to JSON: yaml: invalid UTF-8 ({exc.reason})"
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise errors.bad_request(f"error converting YAML to JSON: yaml: {line}{problem}") from exc


def _require_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{go_json_type(value)} into Go value of type {TYPE_META_STRUCT}"
        )
    return value


# ---------------------------------------------------------------- entry points


def decode_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """A POST/PUT body as an object dict, whatever encoding the client chose."""
    media = media_type(content_type)
    if media == JSON:
        return _require_object(parse_json(raw))
    if media in YAML_TYPES:
        return _require_object(parse_yaml(raw))
    if media == protobuf.PROTOBUF_CONTENT_TYPE:
        return protobuf.decode_object(raw)
    raise errors.ApiError(415, "UnsupportedMediaType", UNKNOWN_FORMAT)


def decode_patch(raw: bytes, media: str) -> Any:
    if media == APPLY_PATCH:
        return _require_object(parse_yaml(raw))
    try:
        return json.loads(_json_text(raw, "error decoding patch: "))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = go_json_error(exc) if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
        raise errors.bad_request(f"error decoding patch: {detail}") from exc
