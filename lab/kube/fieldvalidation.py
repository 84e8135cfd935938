"""Server-side field validation (``?fieldValidation=Strict|Warn|Ignore``), as the API server's handlers do it
(apiserver pkg/endpoints/handlers create.go, update.go, patch.go; the strict JSON decoder of sigs.k8s.io/json).

- Unknown fields and duplicate fields of a built-in kind are "strict decoding errors": ``unknown field
  "spec.containers[0].foo"``, ``duplicate field "metadata.name"`` (paths with ``[i]`` for list items).
- Strict: a create or update answers 400 ``Pod in version "v1" cannot be handled as a Pod: strict decoding
  error: <errors joined by ", ">``; a JSON/merge/strategic patch answers 422 ``"" is invalid: patch: Invalid
  value: ...`` naming the patched object (JSON and merge patches) or the patch (strategic).
- Warn (also when the parameter is absent, the server's default): one ``Warning`` header per error.
- Ignore: nothing; the unknown fields are dropped as decoding into the Go struct drops them.
A type error (lab.kube.gotypes) beats strict errors, as the decoder's non-strict errors do. Custom
resources are checked against their CRD's structural schema the same way (pruning's unknown fields).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lab.kube import apischema, codec, errors, gotypes
from lab.kube.resources import crd_for, is_builtin
from lab.kube.store import Obj, ResourceType, Store

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
OBJECT_META = "V1ObjectMeta"  # the client's model of metadata, which custom resources share
SUPPORTED = (IGNORE, WARN, STRICT)  # the order meta/v1 validation lists them in


class _Object(dict):
    """A decoded JSON object that remembers its keys in order, duplicates included."""

    keys_in_order: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    obj.keys_in_order = [key for key, _ in pairs]
    return obj


def directive(query: Any, options_kind: str) -> str:
    """The request's directive; 422 for an unsupported one, as ValidateCreate/Update/PatchOptions answer."""
    value = query.get("fieldValidation", "")
    if value == "":
        return WARN
    if value not in SUPPORTED:
        supported = ", ".join(f'"{v}"' for v in SUPPORTED)
        message = f'Unsupported value: "{value}": supported values: {supported}'
        raise errors.ApiError(
            422, "Invalid", f'{options_kind}.meta.k8s.io "" is invalid: fieldValidation: {message}',
            {"group": "meta.k8s.io", "kind": options_kind,
             "causes": [{"reason": "FieldValueNotSupported", "message": message, "field": "fieldValidation"}]},
        )
    return value


def parse_with_duplicates(raw: bytes, content_type: str | None) -> Any | None:
    """The body again, keeping duplicate keys visible; None for bodies that cannot carry them (protobuf)."""
    media = codec.media_type(content_type)
    try:
        if media == codec.JSON or media not in codec.YAML_TYPES:
            return json.loads(raw, object_pairs_hook=_pairs) if media == codec.JSON else None
        return codec.parse_yaml(raw)
    except (ValueError, errors.ApiError):
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(type_name: str, value: Any, path: str, out: list[str]) -> None:
    form, inner = apischema.element(type_name)
    if form == "model" and isinstance(value, dict):
        known = apischema.fields(inner)
        seen: set[str] = set()
        for key in getattr(value, "keys_in_order", list(value)):
            field = known.get(key)
            if field is None:
                _add(out, f'unknown field "{_join(path, key)}"')
            elif key in seen:
                _add(out, f'duplicate field "{_join(path, key)}"')
            else:
                seen.add(key)
                _walk(field.type, value[key], _join(path, key), out)
    elif form == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            _walk(inner, item, f"{path}[{index}]", out)
    elif form == "map" and isinstance(value, dict):
        _walk_map(inner, value, path, out)
    elif form == "scalar" and inner == "object" and isinstance(value, dict):
        _walk_map("object", value, path, out)  # an untyped map still reports duplicate keys


def _walk_map(inner: str, value: dict, path: str, out: list[str]) -> None:
    seen: set[str] = set()
    for key in getattr(value, "keys_in_order", list(value)):
        if key in seen:
            _add(out, f'duplicate field "{_join(path, key)}"')
            continue
        seen.add(key)
        _walk(inner, value[key], _join(path, key), out)


def _add(out: list[str], problem: str) -> None:
    if problem not in out and len(out) < 100:  # the decoder dedupes and stops collecting at 100
        out.append(problem)


def strict_errors(rt: ResourceType, version: str, document: Any, store: Store | None = None) -> list[str]:
    out: list[str] = []
    model = apischema.model_for_kind(rt.group, version, rt.kind) if is_builtin(rt) else None
    if model is not None:
        _walk(model, document, "", out)
    elif (schema := custom_resource_schema(store, rt, version)) is not None:
        _walk_structural(schema, document, "", out, root=True)
    return out


# ---------------------------------------------------------------- custom resources (structural schemas)


def custom_resource_schema(store: Store | None, rt: ResourceType, version: str) -> dict[str, Any] | None:
    """The openAPIV3Schema of the CRD version serving ``rt``; None for built-in kinds or no schema."""
    crd = crd_for(store, rt) if store is not None else None
    for served in ((crd or {}).get("spec") or {}).get("versions") or []:
        if isinstance(served, dict) and served.get("name") == version:
            schema = (served.get("schema") or {}).get("openAPIV3Schema")
            return schema if isinstance(schema, dict) else None
    return None


def _structural_fields(schema: dict[str, Any], root: bool) -> tuple[dict[str, Any], Any, bool, bool]:
    """(properties, additionalProperties, keeps unknown fields, is an embedded object)."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    embedded = root or schema.get("x-kubernetes-embedded-resource") is True
    keeps = schema.get("x-kubernetes-preserve-unknown-fields") is True or schema.get("additionalProperties") is True
    return properties, schema.get("additionalProperties"), keeps, embedded


def _walk_structural(schema: Any, value: Any, path: str, out: list[str], root: bool = False,
                     prune: bool = False) -> None:
    """Unknown fields as the apiextensions pruning reports them (apiVersion, kind and metadata of the root and
    of embedded resources are the object's own; metadata is an ObjectMeta), or drops them (``prune``)."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk_structural(schema.get("items"), item, f"{path}[{index}]", out, prune=prune)
        return
    if not isinstance(value, dict):
        return
    properties, additional, keeps, embedded = _structural_fields(schema, root)
    seen: set[str] = set()
    for key in list(getattr(value, "keys_in_order", list(value))):
        child = _join(path, key)
        if key in seen:
            _add(out, f'duplicate field "{child}"')
            continue
        seen.add(key)
        if embedded and key in ("apiVersion", "kind"):
            continue
        if embedded and key == "metadata":
            if prune:
                _prune(OBJECT_META, value[key])
            else:
                _walk(OBJECT_META, value[key], child, out)
        elif key in properties:
            _walk_structural(properties[key], value[key], child, out, prune=prune)
        elif isinstance(additional, dict):
            _walk_structural(additional, value[key], child, out, prune=prune)
        elif not keeps:
            if prune:
                del value[key]
            else:
                _add(out, f'unknown field "{child}"')


def _strict_error(problems: list[str]) -> str:
    return "strict decoding error: " + ", ".join(problems)


def check_body(rt: ResourceType, version: str, raw: bytes, content_type: str | None, body: Obj,
               mode: str, store: Store | None = None) -> list[str]:
    """For a create or update body: warnings to send (Warn), 400 (Strict), nothing (Ignore)."""
    if mode == IGNORE:
        return []
    go_type = gotypes.KINDS.get(rt.group_resource)
    if go_type is not None and gotypes.type_error(go_type, body):
        return []  # the decoder's type error is reported instead
    document = parse_with_duplicates(raw, content_type)
    problems = strict_errors(rt, version, body if document is None else document, store)
    if not problems or mode == WARN:
        return problems
    raise errors.bad_request(
        f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {_strict_error(problems)}')


def go_value(value: Any) -> str:
    """Go's %+v of a decoded JSON value (maps print their keys sorted)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_value(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_patch(rt: ResourceType, version: str, raw_patch: bytes, media: str, patched: Any,
                mode: str, store: Store | None = None) -> list[str]:
    """For a JSON, merge or strategic merge patch: duplicate keys in the patch itself, then unknown fields
    of the patched object. Warn returns them; Strict answers 422 as the patch handler does."""
    if mode == IGNORE or media == codec.APPLY_PATCH:
        return []
    problems: list[str] = []
    try:
        patch_document = json.loads(raw_patch, object_pairs_hook=_pairs)
    except ValueError:
        patch_document = None
    if isinstance(patch_document, dict) and media != codec.JSON_PATCH:
        _walk_map("object", patch_document, "", problems)
    for problem in strict_errors(rt, version, patched, store):
        _add(problems, problem)
    if not problems or mode == WARN:
        return problems
    if media == codec.STRATEGIC_MERGE_PATCH:
        shown = go_value(json.loads(raw_patch))
    else:
        shown = json.dumps(patched, separators=(",", ":"), sort_keys=True)
    message = f"Invalid value: {json.dumps(shown)}: {_strict_error(problems)}"
    raise errors.ApiError(422, "Invalid", f' "" is invalid: patch: {message}',
                          {"causes": [{"reason": "FieldValueInvalid", "message": message, "field": "patch"}]})


def prune(rt: ResourceType, version: str, obj: Any, store: Store | None = None) -> None:
    """Drop the fields a kind does not have, as decoding into its Go struct (or a custom resource's
    structural pruning) does, whatever the directive."""
    model = apischema.model_for_kind(rt.group, version, rt.kind) if is_builtin(rt) else None
    if model is not None:
        _prune(model, obj)
    elif (schema := custom_resource_schema(store, rt, version)) is not None:
        _walk_structural(schema, obj, "", [], root=True, prune=True)


def _prune(type_name: str, value: Any) -> None:
    form, inner = apischema.element(type_name)
    if form == "model" and isinstance(value, dict):
        known = apischema.fields(inner)
        for key in [key for key in value if key not in known]:
            del value[key]
        for key, item in value.items():
            _prune(known[key].type, item)
    elif form == "list" and isinstance(value, list):
        for item in value:
            _prune(inner, item)
    elif form == "map" and isinstance(value, dict):
        for item in value.values():
            _prune(inner, item)


# ---------------------------------------------------------------- on a request

WARNINGS_KEY: web.RequestKey[list[str]] = web.RequestKey("strict_decoding_warnings", list)


async def check_request_body(request: web.Request, rt: ResourceType, version: str, body: Obj,
                             store: Store | None = None) -> None:
    """A create or update body: 400 under Strict, warnings kept for the response under Warn; pruned."""
    options = "UpdateOptions" if request.method == "PUT" else "CreateOptions"
    mode = directive(request.query, options)
    raw = await request.read()
    request[WARNINGS_KEY] = check_body(rt, version, raw, request.headers.get("Content-Type"), body, mode, store)
    prune(rt, version, body, store)


async def check_request_patch(request: web.Request, rt: ResourceType, version: str, media: str,
                              patched: Obj, store: Store | None = None) -> None:
    mode = directive(request.query, "PatchOptions")
    request[WARNINGS_KEY] = check_patch(rt, version, await request.read(), media, patched, mode, store)
    prune(rt, version, patched, store)


def _warning_header(text: str) -> str:
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_warnings(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Decoding warnings go first, before admission's, as the API server adds them in that order."""
    warnings = request.get(WARNINGS_KEY) or []
    if not warnings or response.prepared:
        return response
    later = response.headers.getall("Warning", [])
    response.headers.popall("Warning", None)
    for warning in warnings:
        response.headers.add("Warning", _warning_header(warning))
    for header in later:
        response.headers.add("Warning", header)
    return response


# ---------------------------------------------------------------- server-side apply

# Associative lists (+listType=map) of the built-in types, by field name, and their keys; items of other lists
# are addressed by index. Keys with a schema default that an item may omit: container ports' protocol.
APPLY_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "env": ("name",), "volumes": ("name",), "volumeMounts": ("mountPath",), "imagePullSecrets": ("name",),
    "volumeDevices": ("devicePath",), "resourceClaims": ("name",), "hostAliases": ("ip",),
    "ports": ("containerPort", "protocol"), "conditions": ("type",),
}
KEY_DEFAULTS = {"protocol": "TCP"}


def _apply_element(field: str, index: int, item: Any) -> str:
    keys = APPLY_LIST_KEYS.get(field)
    if not keys or not isinstance(item, dict):
        return f"[{index}]"
    values = [(key, item.get(key, KEY_DEFAULTS.get(key))) for key in keys]
    if any(value is None for _, value in values):
        return f"[{index}]"
    return "[" + ",".join(f"{key}={json.dumps(value)}" for key, value in sorted(values)) + "]"


def _walk_apply(type_name: str, value: Any, path: str, field: str, out: list[str]) -> None:
    form, inner = apischema.element(type_name)
    if form == "model" and isinstance(value, dict):
        known = apischema.fields(inner)
        for key, item in value.items():
            if key not in known:
                out.append(f".{key}" if not path else f"{path}.{key}")
                continue
            _walk_apply(known[key].type, item, f"{path}.{key}", key, out)
    elif form == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            _walk_apply(inner, item, path + _apply_element(field, index, item), field, out)
    elif form == "map" and isinstance(value, dict):
        for key, item in value.items():
            _walk_apply(inner, item, f"{path}.{key}", key, out)


def _structural_element(schema: dict[str, Any], index: int, item: Any) -> str:
    """A list item's path element: by its keys in a map list, by value in a set, else by index."""
    list_type = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys") or []
    if list_type == "map" and isinstance(item, dict) and keys and all(key in item for key in keys):
        return "[" + ",".join(f"{key}={json.dumps(item[key])}" for key in sorted(keys)) + "]"
    if list_type == "set" and not isinstance(item, dict | list):
        return f"[={json.dumps(item)}]"
    return f"[{index}]"


def _walk_apply_structural(schema: Any, value: Any, path: str, out: list[str], root: bool = False) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk_apply_structural(schema.get("items"), item, path + _structural_element(schema, index, item), out)
        return
    if not isinstance(value, dict):
        return
    properties, additional, keeps, embedded = _structural_fields(schema, root)
    for key, item in value.items():
        if embedded and key in ("apiVersion", "kind", "metadata"):
            if key == "metadata":
                _walk_apply(OBJECT_META, item, f"{path}.metadata", "metadata", out)
        elif key in properties:
            _walk_apply_structural(properties[key], item, f"{path}.{key}", out)
        elif isinstance(additional, dict):
            _walk_apply_structural(additional, item, f"{path}.{key}", out)
        elif not keeps:
            out.append(f"{path}.{key}")


def check_apply(rt: ResourceType, version: str, document: Any, store: Store | None = None) -> None:
    """Server-side apply converts the applied configuration to its typed form whatever the directive, and
    a field the schema does not declare fails that (structured-merge-diff typed/validate.go); the 1.32 API
    server passes the plain error on, so it answers 500 with no reason (kubernetes/kubernetes#122480)."""
    if not isinstance(document, dict):
        return
    unknown: list[str] = []
    model = apischema.model_for_kind(rt.group, version, rt.kind) if is_builtin(rt) else None
    if model is not None:
        _walk_apply(model, document, "", "", unknown)
    elif (schema := custom_resource_schema(store, rt, version)) is not None:
        _walk_apply_structural(schema, document, "", unknown, root=True)
    if not unknown:
        return
    problems = [f"{path}: field not declared in schema" for path in unknown]
    detail = problems[0] if len(problems) == 1 else "\n".join(["errors:", *(f"  {p}" for p in problems)])
    meta = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    gvk = f"{rt.group}/{version}, Kind={rt.kind}"
    raise errors.ApiError(
        500, "", f"failed to create typed patch object ({meta.get('namespace', '')}/{meta.get('name', '')}; "
        f"{gvk}): {detail}")
