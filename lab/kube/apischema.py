"""The complete field lists of the built-in kinds, with their JSON names, types and descriptions.

lab.kube.gotypes declares only the fields the lab reads; unknown-field detection (fieldValidation) and
the OpenAPI documents ``kubectl explain`` reads need every field a kind has. Those come from the models of
the official ``kubernetes`` Python client (generated from the API server's own OpenAPI document), walked
generically: each model's ``openapi_types`` (Python type names), ``attribute_map`` (JSON names) and its
pydantic field descriptions. The client may be a few minor versions ahead of the emulated server, so a
field newer than the server's version is accepted rather than refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from kubernetes.client import models

LIST_TYPE = re.compile(r"^List\[(.+)\]$")
DICT_TYPE = re.compile(r"^Dict\[str, (.+)\]$")
VERSION_PREFIX = re.compile(r"^(?P<group>[A-Z][a-z]+)?(?P<version>V\d+(?:(?:alpha|beta)\d+)?)(?P<type>[A-Z]\w*)$")
SCALARS = {"str", "int", "bool", "float", "datetime", "date", "object", "bytes", "bytearray"}


@dataclass(frozen=True)
class Field:
    name: str  # JSON name
    type: str  # the client's type name: str, int, List[V1Container], Dict[str, str], V1PodSpec, ...
    description: str
    required: bool


def model(name: str) -> Any | None:
    cls = getattr(models, name, None)
    return cls if cls is not None and hasattr(cls, "attribute_map") else None


def model_for_kind(group: str, version: str, kind: str) -> str | None:
    """The client's model name of a built-in kind, e.g. V1Pod, V1Deployment, RbacV1Subject-style names
    for kinds whose plain name another group shares (CoreV1Event, EventsV1Event)."""
    plain = f"{version[:1].upper()}{version[1:]}{kind}"
    prefixed = f"{(group.split('.')[0] or 'core').capitalize()}{plain}"
    return next((name for name in (prefixed, plain) if model(name) is not None), None)


@functools.cache
def fields(model_name: str) -> dict[str, Field]:
    cls = model(model_name)
    if cls is None:
        return {}
    result: dict[str, Field] = {}
    for attribute, json_name in cls.attribute_map.items():
        info = cls.model_fields.get(attribute)
        result[json_name] = Field(
            name=json_name,
            type=cls.openapi_types[attribute],
            description=(info.description or "").strip() if info is not None else "",
            required=bool(info is not None and info.is_required()),
        )
    return result


def description(model_name: str) -> str:
    """The model's own description (the first paragraph of the class docstring)."""
    cls = model(model_name)
    text = (cls.__doc__ or "") if cls is not None else ""
    return text.strip().split("\n\n")[0].strip()


def element(type_name: str) -> tuple[str, str]:
    """("list", X) for List[X], ("map", X) for Dict[str, X], ("model", N) for a model, ("scalar", T)."""
    if found := LIST_TYPE.match(type_name):
        return "list", found.group(1)
    if found := DICT_TYPE.match(type_name):
        return "map", found.group(1)
    if type_name in SCALARS or model(type_name) is None:
        return "scalar", type_name
    return "model", type_name


def schema_name(model_name: str) -> str:
    """A components/schemas key whose last segment is the Go type name (what ``kubectl explain`` prints):
    V1PodSpec -> io.k8s.v1.PodSpec, RbacV1Subject -> io.k8s.rbac.v1.Subject."""
    found = VERSION_PREFIX.match(model_name)
    if not found:
        return f"io.k8s.{model_name}"
    group = f"{found['group'].lower()}." if found["group"] else ""
    return f"io.k8s.{group}{found['version'].lower()}.{found['type']}"
