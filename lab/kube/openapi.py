"""``components.schemas`` of the OpenAPI v3 group-version documents, for ``kubectl explain``.

kubectl explain (kubectl pkg/explain/v2, plaintext template) finds the kind's GVK on an operation of the
resource's path, then the schema in ``components.schemas`` whose ``x-kubernetes-group-version-kind`` lists
it, and follows ``properties`` / ``allOf: [$ref]`` / ``items`` / ``additionalProperties`` down the field
path, printing ``description``, the ``required`` marks and a type guessed from ``type`` or the last dot
segment of a ``$ref``. The schemas are generated from lab.kube.apischema (the client's complete models),
shaped as the API server's own documents are: object fields as ``allOf`` of one ``$ref`` with a default.
The client drops the descriptions of object-typed fields; those fields are described by their type.

No patch operation gets a ``requestBody``: kubectl apply would then build its strategic merge patch from
these schemas, which do not carry the patch strategies (merge keys) of the built-in types
(kubectl-and-client-wire.md §3.2), and fall back to its compiled-in types without them.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from lab.kube import apischema

OBJECT_META = "V1ObjectMeta"
SCALAR_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "float": {"type": "number", "format": "double"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "bytes": {"type": "string", "format": "byte"},
    "bytearray": {"type": "string", "format": "byte"},
    "object": {},  # IntOrString, Quantity, RawExtension...: the client does not say which; explain shows Object
}


def _ref(model: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{apischema.schema_name(model)}"}


def _type_schema(type_name: str, pending: list[str]) -> dict[str, Any]:
    form, inner = apischema.element(type_name)
    if form == "model":
        pending.append(inner)
        return {"allOf": [_ref(inner)], "default": {}}
    if form == "list":
        return {"type": "array", "items": _type_schema(inner, pending)}
    if form == "map":
        return {"type": "object", "additionalProperties": _type_schema(inner, pending)}
    return dict(SCALAR_SCHEMAS.get(inner, {}))


def _model_schema(model: str, pending: list[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in apischema.fields(model).items():
        schema = _type_schema(field.type, pending)
        form, inner = apischema.element(field.type)
        if field.description:
            schema["description"] = field.description
        elif form == "model":
            # the client keeps no description for a field of an object type: describe it by its type, as
            # a plain $ref so that explain does not print that text twice for the field
            schema = {**_ref(inner), "description": apischema.description(inner)}
        properties[name] = schema
        if field.required:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    description = apischema.description(model)
    if description:
        schema = {"description": description, **schema}
    if required:
        schema["required"] = required
    return schema


@functools.cache
def _schemas_for(kinds: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    pending: list[str] = []
    top: dict[str, list[dict[str, str]]] = {}
    for group, version, kind in kinds:
        model = apischema.model_for_kind(group, version, kind)
        if model is not None:
            pending.append(model)
            top.setdefault(model, []).append({"group": group, "kind": kind, "version": version})
    done: set[str] = set()
    while pending:
        model = pending.pop()
        if model in done:
            continue
        done.add(model)
        schema = _model_schema(model, pending)
        if model in top:
            schema["x-kubernetes-group-version-kind"] = top[model]
        schemas[apischema.schema_name(model)] = schema
    return dict(sorted(schemas.items()))


def component_schemas(kinds: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Schemas of the built-in kinds (group, version, kind) and of every type their fields use."""
    return _schemas_for(tuple(sorted(kinds)))


def custom_resource_schemas(group: str, version: str, kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A custom resource's component, as the API server publishes a CRD version's openAPIV3Schema: named by
    the reversed group (``com.example.v1.Widget``), GVK-tagged, with the object's own apiVersion, kind and
    metadata (an ObjectMeta) added; plus the schemas metadata refers to."""
    published = copy.deepcopy(schema)
    properties = published.setdefault("properties", {})
    own = apischema.fields(apischema.model_for_kind("", "v1", "Pod") or "")  # apiVersion and kind read alike
    for name in ("apiVersion", "kind"):
        if name in own:
            properties[name] = {"type": "string", "description": own[name].description}
    pending = [OBJECT_META]
    properties["metadata"] = {**_ref(OBJECT_META), "description": apischema.description(OBJECT_META)}
    published["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    name = ".".join([*reversed(group.split(".")), version, kind])
    return {**_closure(pending), name: published}


def _closure(pending: list[str]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    done: set[str] = set()
    while pending:
        model = pending.pop()
        if model not in done:
            done.add(model)
            schemas[apischema.schema_name(model)] = _model_schema(model, pending)
    return schemas
