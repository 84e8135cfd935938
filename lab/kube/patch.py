"""The three PATCH flavours of the API server, applied to plain JSON-shaped objects.

- JSON merge patch (RFC 7386): ``application/merge-patch+json``
- strategic merge patch: ``application/strategic-merge-patch+json`` (built-in types only): lists with a
  merge key (containers by name, volumeMounts by mountPath, ...) merge item by item, and the directives
  ``$patch`` (replace/delete/merge), ``$setElementOrder/<list>``, ``$deleteFromPrimitiveList/<list>`` and
  ``$retainKeys`` are honoured
- JSON patch (RFC 6902): ``application/json-patch+json``

Errors raise :class:`PatchError` with a message; the API server turns it into a Status.
"""

from __future__ import annotations

import copy
from typing import Any

# List fields that merge item by item in a strategic merge patch, and the key that identifies an item.
# (k8s.io/api patchMergeKey tags; the same field name means the same thing wherever it appears.)
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "secrets": "name",
    "webhooks": "name",  # Mutating/ValidatingWebhookConfiguration (admissionregistration/v1 types.go)
}
# Lists of primitives merged as sets.
MERGED_PRIMITIVE_LISTS = {"finalizers"}
# "ports" merges by containerPort in containers and by port in services.
PORT_KEYS = ("containerPort", "port")

DIRECTIVE = "$patch"
SET_ORDER_PREFIX = "$setElementOrder/"
DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"
RETAIN_KEYS = "$retainKeys"


class PatchError(ValueError):
    pass


# ---------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- strategic merge patch


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((item for item in items if isinstance(item, dict)), {})
        return next((key for key in PORT_KEYS if key in sample), "containerPort")
    return MERGE_KEYS.get(field)


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _merge_map(original if isinstance(original, dict) else {}, patch)


def _merge_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get(DIRECTIVE)
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != DIRECTIVE}
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive}")
    result = copy.deepcopy(original)
    orders = {k[len(SET_ORDER_PREFIX) :]: v for k, v in patch.items() if k.startswith(SET_ORDER_PREFIX)}
    deletions = {
        k[len(DELETE_PRIMITIVE_PREFIX) :]: v
        for k, v in patch.items()
        if k.startswith(DELETE_PRIMITIVE_PREFIX)
    }
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get(DIRECTIVE) == "delete":
                result.pop(key, None)
            else:
                current = result.get(key)
                result[key] = _merge_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            current = result.get(key)
            result[key] = _merge_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = copy.deepcopy(value)
    for key, values in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _apply_order(key, result[key], order)
    if RETAIN_KEYS in patch:
        keep = set(patch[RETAIN_KEYS] or [])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get(DIRECTIVE) == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and DIRECTIVE in item)]
    if field in MERGED_PRIMITIVE_LISTS:
        return list(dict.fromkeys([*original, *patch]))
    key = _merge_key(field, [*original, *patch])
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original)
    for item in patch:
        index = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(key) == item.get(key)
            ),
            None,
        )
        if item.get(DIRECTIVE) == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(_merge_map({}, item))
        else:
            result[index] = _merge_map(result[index], item)
    return result


def _apply_order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, items)
    if key is None:
        ranks = {repr(value): i for i, value in enumerate(order)}
        return sorted(items, key=lambda item: ranks.get(repr(item), len(ranks)))
    ranks = {entry.get(key): i for i, entry in enumerate(order) if isinstance(entry, dict)}
    return sorted(
        items, key=lambda item: ranks.get(item.get(key) if isinstance(item, dict) else None, len(ranks))
    )


# ---------------------------------------------------------------- RFC 6902


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}"')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _list_index(container: list[Any], token: str, for_insert: bool) -> int:
    if token == "-" and for_insert:
        return len(container)
    if not token.isdigit():
        raise PatchError(f'invalid array index "{token}"')
    index = int(token)
    if index > len(container) or (index == len(container) and not for_insert):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(document: Any, parts: list[str]) -> Any:
    current = document
    for part in parts[:-1]:
        if isinstance(current, dict):
            if part not in current:
                raise PatchError(f"missing path element {part!r}")
            current = current[part]
        elif isinstance(current, list):
            current = current[_list_index(current, part, for_insert=False)]
        else:
            raise PatchError(f"cannot descend into a scalar at {part!r}")
    return current


def _get(document: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return document
    parent = _parent(document, parts)
    if isinstance(parent, dict):
        if parts[-1] not in parent:
            raise PatchError(f'missing value at "{path}"')
        return parent[parts[-1]]
    if isinstance(parent, list):
        return parent[_list_index(parent, parts[-1], for_insert=False)]
    raise PatchError(f'missing value at "{path}"')


def _add(document: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(document, parts)
    if isinstance(parent, dict):
        parent[parts[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, parts[-1], for_insert=True), value)
    else:
        raise PatchError(f'cannot add at "{path}"')
    return document


def _remove(document: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _parent(document, parts)
    if isinstance(parent, dict):
        if parts[-1] not in parent:
            raise PatchError(f"unable to remove nonexistent key: {parts[-1]}: missing value")
        del parent[parts[-1]]
    elif isinstance(parent, list):
        parent.pop(_list_index(parent, parts[-1], for_insert=False))
    else:
        raise PatchError(f'cannot remove at "{path}"')
    return document


def json_patch(document: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("json patch must be a JSON array of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid operation {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "add":
            result = _add(result, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            _get(result, path)
            result = (
                _add(_remove(result, path), path, copy.deepcopy(operation.get("value")))
                if _pointer(path)
                else copy.deepcopy(operation.get("value"))
            )
        elif op in ("move", "copy"):
            value = copy.deepcopy(_get(result, operation.get("from", "")))
            if op == "move":
                result = _remove(result, operation["from"])
            result = _add(result, path, value)
        elif op == "test":
            if _get(result, path) != operation.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {op}")
    return result
