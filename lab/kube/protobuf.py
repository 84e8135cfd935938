"""Decoding the Kubernetes protobuf request bodies that kubectl's typed commands send (no JSON fallback).

A body is ``k8s\\x00`` followed by a ``runtime.Unknown`` envelope {1 typeMeta{1 apiVersion, 2 kind},
2 raw, 3 contentEncoding, 4 contentType}; ``raw`` is the object as a protobuf message. No .proto
descriptors are available offline, so the messages kubectl sends (create namespace / serviceaccount /
configmap / secret / quota, create token, auth can-i, auth whoami) are decoded by hand from the field numbers
below (k8s.io/api generated.proto). Other kinds answer 415, like an API server that cannot decode them.

The Go encoder writes empty strings, zero numbers and empty messages explicitly: they are treated as unset.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, Union

from lab.clock import rfc3339
from lab.kube import errors

MAGIC = b"k8s\x00"
PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# A message schema maps a field number to (JSON name, field type, repeated). A field type is a scalar name
# ("string", "bytes", "int", "bool", "optional_bool", "time", "string_map", "bytes_map", "quantity_map": map values
# are resource.Quantity messages {1 string}) or a nested schema.
FieldType = Union[str, "Schema"]
Schema = dict[int, tuple[str, FieldType, bool]]


def _fields(*entries: tuple[int, str, FieldType] | tuple[int, str, FieldType, bool]) -> Schema:
    return {entry[0]: (entry[1], entry[2], bool(entry[3]) if len(entry) > 3 else False) for entry in entries}


OWNER_REFERENCE = _fields(
    (1, "kind", "string"),
    (3, "name", "string"),
    (4, "uid", "string"),
    (5, "apiVersion", "string"),
    (6, "controller", "optional_bool"),
    (7, "blockOwnerDeletion", "optional_bool"),
)
OBJECT_META = _fields(
    (1, "name", "string"),
    (2, "generateName", "string"),
    (3, "namespace", "string"),
    (4, "selfLink", "string"),
    (5, "uid", "string"),
    (6, "resourceVersion", "string"),
    (7, "generation", "int"),
    (8, "creationTimestamp", "time"),
    (9, "deletionTimestamp", "time"),
    (10, "deletionGracePeriodSeconds", "int"),
    (11, "labels", "string_map"),
    (12, "annotations", "string_map"),
    (13, "ownerReferences", OWNER_REFERENCE, True),
    (14, "finalizers", "string", True),
)
OBJECT_REFERENCE = _fields(
    (1, "kind", "string"),
    (2, "namespace", "string"),
    (3, "name", "string"),
    (4, "uid", "string"),
    (5, "apiVersion", "string"),
    (6, "resourceVersion", "string"),
    (7, "fieldPath", "string"),
)
LOCAL_OBJECT_REFERENCE = _fields((1, "name", "string"))
USER_INFO = _fields((1, "username", "string"), (2, "uid", "string"), (3, "groups", "string", True))

MESSAGES: dict[str, Schema] = {
    "Namespace": _fields(
        (1, "metadata", OBJECT_META),
        (2, "spec", _fields((1, "finalizers", "string", True))),
        (3, "status", _fields((1, "phase", "string"))),
    ),
    "ServiceAccount": _fields(
        (1, "metadata", OBJECT_META),
        (2, "secrets", OBJECT_REFERENCE, True),
        (3, "imagePullSecrets", LOCAL_OBJECT_REFERENCE, True),
        (4, "automountServiceAccountToken", "optional_bool"),
    ),
    "ConfigMap": _fields(
        (1, "metadata", OBJECT_META),
        (2, "data", "string_map"),
        (3, "binaryData", "bytes_map"),
        (4, "immutable", "optional_bool"),
    ),
    "Secret": _fields(
        (1, "metadata", OBJECT_META),
        (2, "data", "bytes_map"),
        (3, "type", "string"),
        (4, "stringData", "string_map"),
        (5, "immutable", "optional_bool"),
    ),
    "ResourceQuota": _fields(
        (1, "metadata", OBJECT_META),
        (
            2,
            "spec",
            _fields(
                (1, "hard", "quantity_map"),
                (2, "scopes", "string", True),
                (
                    3,
                    "scopeSelector",
                    _fields(
                        (
                            1,
                            "matchExpressions",
                            _fields((1, "scopeName", "string"), (2, "operator", "string"), (3, "values", "string", True)),
                            True,
                        ),
                    ),
                ),
            ),
        ),
        (3, "status", _fields((1, "hard", "quantity_map"), (2, "used", "quantity_map"))),
    ),
    "TokenRequest": _fields(
        (1, "metadata", OBJECT_META),
        (
            2,
            "spec",
            _fields(
                (1, "audiences", "string", True),
                (
                    3,
                    "boundObjectRef",
                    _fields(
                        (1, "kind", "string"),
                        (2, "apiVersion", "string"),
                        (3, "name", "string"),
                        (4, "uid", "string"),
                    ),
                ),
                (4, "expirationSeconds", "int"),
            ),
        ),
        (3, "status", _fields((1, "token", "string"), (2, "expirationTimestamp", "time"))),
    ),
    "SelfSubjectAccessReview": _fields(
        (1, "metadata", OBJECT_META),
        (
            2,
            "spec",
            _fields(
                (
                    1,
                    "resourceAttributes",
                    _fields(
                        (1, "namespace", "string"),
                        (2, "verb", "string"),
                        (3, "group", "string"),
                        (4, "version", "string"),
                        (5, "resource", "string"),
                        (6, "subresource", "string"),
                        (7, "name", "string"),
                    ),
                ),
                (2, "nonResourceAttributes", _fields((1, "path", "string"), (2, "verb", "string"))),
            ),
        ),
        (
            3,
            "status",
            _fields(
                (1, "allowed", "bool"),
                (2, "reason", "string"),
                (3, "evaluationError", "string"),
                (4, "denied", "bool"),
            ),
        ),
    ),
    "SelfSubjectRulesReview": _fields(
        (1, "metadata", OBJECT_META),
        (2, "spec", _fields((1, "namespace", "string"))),
    ),
    "SelfSubjectReview": _fields(
        (1, "metadata", OBJECT_META),
        (2, "status", _fields((1, "userInfo", USER_INFO))),
    ),
}

UNKNOWN_ENVELOPE = _fields(
    (1, "typeMeta", _fields((1, "apiVersion", "string"), (2, "kind", "string"))),
    (2, "raw", "bytes"),
    (3, "contentEncoding", "string"),
    (4, "contentType", "string"),
)
TIME = _fields((1, "seconds", "int"), (2, "nanos", "int"))
QUANTITY = _fields((1, "string", "string"))


class WireError(ValueError):
    pass


# ---------------------------------------------------------------- the wire format


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise WireError("varint too long")


def iter_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited and fixed-width fields."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise WireError("truncated length-delimited field")
            yield number, data[pos : pos + length]
            pos += length
        elif wire_type == 1:
            yield number, data[pos : pos + 8]
            pos += 8
        elif wire_type == 5:
            yield number, data[pos : pos + 4]
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(data: bytes, field_type: str) -> tuple[str, str]:
    key, value = "", b""
    for number, raw in iter_fields(data):
        if number == 1 and isinstance(raw, bytes):
            key = raw.decode()
        elif number == 2 and isinstance(raw, bytes):
            value = raw
    if field_type == "bytes_map":
        return key, base64.b64encode(value).decode()
    if field_type == "quantity_map":
        return key, str(decode_message(value, QUANTITY).get("string", ""))
    return key, value.decode()


def _scalar(field_type: str, raw: int | bytes) -> Any:
    if field_type in ("int", "bool", "optional_bool"):
        if not isinstance(raw, int):
            raise WireError(f"expected a varint for a {field_type} field")
        return _signed(raw) if field_type == "int" else bool(raw)
    if not isinstance(raw, bytes):
        raise WireError(f"expected bytes for a {field_type} field")
    if field_type == "string":
        return raw.decode()
    if field_type == "bytes":
        return raw
    if field_type == "time":
        seconds = decode_message(raw, TIME).get("seconds", 0)
        return rfc3339(seconds)
    raise WireError(f"unknown field type {field_type}")


def _is_unset(value: Any, field_type: FieldType) -> bool:
    if field_type == "optional_bool":
        return False
    return value in ("", 0, b"", {}, None) or value is False


def decode_message(data: bytes, schema: Schema) -> dict[str, Any]:
    """One protobuf message as the JSON-shaped dict Kubernetes would serialise; unknown fields are skipped."""
    result: dict[str, Any] = {}
    for number, raw in iter_fields(data):
        if number not in schema:
            continue
        name, field_type, repeated = schema[number]
        if field_type in ("string_map", "bytes_map", "quantity_map"):
            if not isinstance(raw, bytes):
                raise WireError("expected a map entry")
            key, value = _map_entry(raw, field_type)
            result.setdefault(name, {})[key] = value
            continue
        if isinstance(field_type, dict):
            if not isinstance(raw, bytes):
                raise WireError(f"expected a message for {name}")
            value = decode_message(raw, field_type)
        else:
            value = _scalar(field_type, raw)
        if repeated:
            result.setdefault(name, []).append(value)
        elif not _is_unset(value, field_type):
            result[name] = value
    return result


# ---------------------------------------------------------------- the envelope


def decode_object(body: bytes) -> dict[str, Any]:
    """A kubectl protobuf request body as the JSON object it stands for; 400/415 ApiErrors otherwise."""
    if not body.startswith(MAGIC):
        raise errors.bad_request(
            "provided object is not a valid protobuf message: missing the k8s\\x00 prefix"
        )
    try:
        envelope = decode_message(body[len(MAGIC) :], UNKNOWN_ENVELOPE)
        type_meta = envelope.get("typeMeta", {})
        kind = type_meta.get("kind", "")
        schema = MESSAGES.get(kind)
        if schema is None:
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                f"the lab's API server cannot decode protobuf bodies of kind {kind or '<none>'}; "
                "send JSON or YAML (for example kubectl apply -f / create -f)",
            )
        obj = decode_message(envelope.get("raw", b""), schema)
    except WireError as exc:
        raise errors.bad_request(f"unable to decode protobuf body: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise errors.bad_request(
            f"unable to decode protobuf body: invalid UTF-8 string ({exc.reason})"
        ) from exc
    typed: dict[str, Any] = {}
    if type_meta.get("apiVersion"):
        typed["apiVersion"] = type_meta["apiVersion"]
    typed["kind"] = kind
    typed.update(obj)
    return typed
