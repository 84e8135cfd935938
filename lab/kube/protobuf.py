"""Decoding the Kubernetes protobuf request bodies kubectl's typed commands send, from upstream's schemas.

A body is ``k8s\\x00`` followed by a ``runtime.Unknown`` envelope {typeMeta{apiVersion, kind}, raw,
contentEncoding, contentType}; ``raw`` is the object as the protobuf message of its kind. The messages come
from the descriptor set compiled from k8s.io/api and k8s.io/apimachinery ``generated.proto``
(``schemas/build.py``); each is turned into the JSON the API server would read, by the rules of those types'
Go JSON encoding: Time and MicroTime as RFC 3339, Duration as Go prints it, IntOrString as a number or a
string, Quantity as its string, ``[]byte`` as base64, RawExtension and FieldsV1 as the JSON they hold, named
string slices (ExtraValue, Verbs) as lists, and the fields Go embeds inline (a Volume's VolumeSource, a Probe's
ProbeHandler; ``schemas/k8s-inline.json``) merged into their parent. A kind the schemas do not have answers
415, like an API server that cannot decode it.

The Go encoder writes empty strings, zero Times and non-pointer scalars explicitly: empty strings and zero
Times are treated as unset, and so are zero numbers and false booleans of the fields Go's JSON omits when zero
(non-pointer ``omitempty`` ones, listed by ``schemas/build.py``); pointers' zeros are kept (``replicas: 0``,
``automountServiceAccountToken: false``, ``gracePeriodSeconds: 0`` mean something), as are empty messages
(``emptyDir: {}``; Go never omits a struct).
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from lab.kube import errors

MAGIC = b"k8s\x00"
PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
RUNTIME = "k8s.io.apimachinery.pkg.runtime"
# API group -> the directory of k8s.io/api its types are generated in
GROUP_DIRS = {"": "core", "rbac.authorization.k8s.io": "rbac", "networking.k8s.io": "networking",
              "scheduling.k8s.io": "scheduling", "coordination.k8s.io": "coordination",
              "discovery.k8s.io": "discovery", "events.k8s.io": "events", "storage.k8s.io": "storage",
              "admissionregistration.k8s.io": "admissionregistration",
              "authentication.k8s.io": "authentication", "authorization.k8s.io": "authorization"}


class WireError(ValueError):
    """The bytes are not the protobuf message they claim to be."""


@functools.cache
def _pool() -> tuple[descriptor_pool.DescriptorPool, frozenset[tuple[str, int]]]:
    files = descriptor_pb2.FileDescriptorSet.FromString((SCHEMAS / "k8s-api.desc").read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool, _go_fields("inline")


@functools.cache
def _go_fields(key: str) -> frozenset[tuple[str, int]]:
    """(message, field number) pairs ``schemas/build.py`` read off the Go types: "inline" or "omit_zero"."""
    listed = json.loads((SCHEMAS / "k8s-inline.json").read_text())[key]
    return frozenset((name, number) for name, number in listed)


def message_descriptor(api_version: str, kind: str) -> Descriptor | None:
    """The message of ``kind`` at ``api_version`` (meta.k8s.io kinds such as DeleteOptions from any group)."""
    pool, _ = _pool()
    group, _, version = api_version.rpartition("/")
    names = [f"k8s.io.api.{GROUP_DIRS.get(group, group)}.{version}.{kind}", f"{META}.{kind}"]
    for name in names:
        try:
            return pool.FindMessageTypeByName(name)
        except KeyError:
            continue
    return None


# ---------------------------------------------------------------- Go's JSON of the special types


def _go_duration(nanoseconds: int) -> str:
    """time.Duration.String(): ``1h0m0s``, ``1m30s``, ``1.5s``, ``300ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign, value = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if value < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if value >= size or unit == "ns":
                return sign + _trim(value / size) + unit
    seconds, fraction = divmod(value, 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = _trim(secs + fraction / 1e9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    return f"{sign}{minutes}m{text}" if minutes else sign + text


def _trim(number: float) -> str:
    return f"{number:.9f}".rstrip("0").rstrip(".")


def _time(message: Message, micro: bool) -> str | None:
    seconds, nanos = getattr(message, "seconds", 0), getattr(message, "nanos", 0)
    if seconds == 0 and nanos == 0:
        return None  # Go's zero time: unset
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _raw_json(raw: bytes) -> Any:
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode_object(raw)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"embedded object is not JSON: {exc}") from exc


_UNSET = object()


def _special(message: Message) -> Any:
    """The JSON of the types Go encodes other than as an object; _UNSET when ``message`` is an ordinary one."""
    name = message.DESCRIPTOR.full_name
    if name == f"{META}.Time":
        return _time(message, micro=False)
    if name == f"{META}.MicroTime":
        return _time(message, micro=True)
    if name == f"{META}.Duration":
        return _go_duration(message.duration)
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        return message.strVal if message.type == 1 else message.intVal
    if name in ("k8s.io.apimachinery.pkg.api.resource.Quantity", "k8s.io.apimachinery.pkg.api.resource.QuantityValue"):
        return message.string
    if name == f"{RUNTIME}.RawExtension":
        return _raw_json(message.raw)
    if name == f"{META}.FieldsV1":
        return _raw_json(message.Raw)
    fields = message.DESCRIPTOR.fields
    if (len(fields) == 1 and fields[0].name == "items" and fields[0].type == FieldDescriptor.TYPE_STRING
            and _repeated(fields[0])):
        return list(message.items)  # a named []string (ExtraValue, Verbs)
    return _UNSET


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _repeated(field: FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf 6.31+; ``label`` is gone in 7
        return bool(field.is_repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def to_json(message: Message) -> Any:
    """A decoded message as the JSON value Kubernetes reads for it."""
    special = _special(message)
    if special is not _UNSET:
        return special
    _, inline = _pool()
    result: dict[str, Any] = {}
    for field, value in message.ListFields():
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            result[field.name] = {key: _value(value_field, item) for key, item in value.items()}
        elif _repeated(field):
            result[field.name] = [_value(field, item) for item in value]
        elif (message.DESCRIPTOR.full_name, field.number) in inline:
            embedded = to_json(value)
            if isinstance(embedded, dict):
                result.update(embedded)
        else:
            converted = _value(field, value)
            if converted is None or converted == "":
                continue
            if converted in (0, False) and (message.DESCRIPTOR.full_name, field.number) in _go_fields("omit_zero"):
                continue  # a number or bool Go leaves out when zero (not a pointer, omitempty)
            result[field.name] = converted
    return result


def decode_message(data: bytes, descriptor: Descriptor) -> Any:
    message = message_factory.GetMessageClass(descriptor)()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise WireError(str(exc) or "truncated or malformed message") from exc
    return to_json(message)


# ---------------------------------------------------------------- the envelope


def decode_object(body: bytes) -> dict[str, Any]:
    """A kubectl protobuf request body as the JSON object it stands for; 400/415 ApiErrors otherwise."""
    if not body.startswith(MAGIC):
        raise errors.bad_request(
            "provided object is not a valid protobuf message: missing the k8s\\x00 prefix"
        )
    pool, _ = _pool()
    try:
        envelope = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{RUNTIME}.Unknown"))()
        envelope.ParseFromString(body[len(MAGIC):])
        api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
        descriptor = message_descriptor(api_version, kind) if kind else None
        if descriptor is None:
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                f"the lab's API server cannot decode protobuf bodies of kind {kind or '<none>'}; "
                "send JSON or YAML (for example kubectl apply -f / create -f)",
            )
        obj = decode_message(envelope.raw, descriptor)
    except DecodeError as exc:
        raise errors.bad_request(f"unable to decode protobuf body: {exc or 'malformed envelope'}") from exc
    except WireError as exc:
        raise errors.bad_request(f"unable to decode protobuf body: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise errors.bad_request(
            f"unable to decode protobuf body: invalid UTF-8 string ({exc.reason})"
        ) from exc
    typed: dict[str, Any] = {}
    if api_version:
        typed["apiVersion"] = api_version
    typed["kind"] = kind
    typed.update(obj)
    return typed
