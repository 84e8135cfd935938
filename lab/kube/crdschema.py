"""CustomResourceDefinition schemas as apiextensions-apiserver enforces them.

- A CRD's versions must carry structural schemas (pkg/apiserver/schema/validation.go ValidateStructural and
  pkg/apis/apiextensions/validation "schemas are required"): every specified field and array item has a
  ``type`` (unless it keeps unknown fields or is int-or-string), arrays have ``items``, the root is an object
  without ``additionalProperties``. Paths read ``spec.versions[0].schema.openAPIV3Schema.properties[spec].type``.
- A custom resource is validated against its version's openAPIV3Schema after pruning (pkg/apiserver/validation
  ValidateCustomResource on kube-openapi's validator); kube-openapi's errors become field errors: type errors
  ``Invalid value: "string": spec.replicas in body must be of type integer: "string"`` (FieldValueTypeInvalid),
  required fields ``Required value``, enums ``Unsupported value``, maxLength ``Too long``, maxItems ``Too many``,
  the rest ``Invalid value: <value>: <kube-openapi message>`` (errors/schema.go formats).
The checks run on the ``jsonschema`` library's Draft 4 validator (OpenAPI v3's schema object is a Draft 4
subset), extended with OpenAPI's ``nullable`` and Kubernetes' ``x-kubernetes-int-or-string``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from jsonschema import validators

from lab.kube.resources import crd_for, is_builtin
from lab.kube.store import Obj, ResourceType, Store

Cause = tuple[str, str, str]  # (reason, field, message), as lab.kube.validation builds them

# ---------------------------------------------------------------- structural schemas (CRD create/update)

ROOT, ITEM, FIELD = "root", "item", "field"
EMPTY_TYPE = {
    ROOT: "must not be empty at the root",
    ITEM: "must not be empty for specified array items",
    FIELD: "must not be empty for specified object fields",
}


def _required(path: str, detail: str) -> Cause:
    return ("FieldValueRequired", path, f"Required value: {detail}")


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return ("FieldValueInvalid", path, f"Invalid value: {json.dumps(value)}: {detail}")


def _forbidden(path: str, detail: str) -> Cause:
    return ("FieldValueForbidden", path, f"Forbidden: {detail}")


def _structural(schema: Any, level: str, path: str, out: list[Cause]) -> None:
    if not isinstance(schema, dict):
        return
    kind = schema.get("type") or ""
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    if kind == "array" and schema.get("items") is None:
        out.append(_required(f"{path}.items", "must be specified"))
    _structural(schema.get("items"), ITEM, f"{path}.items", out)
    properties = schema.get("properties")
    for key, child in (properties.items() if isinstance(properties, dict) else ()):
        _structural(child, FIELD, f"{path}.properties[{key}]", out)
    additional = schema.get("additionalProperties")
    if additional is not None and level == ROOT:
        out.append(_forbidden(f"{path}.additionalProperties", "must not be used at the root"))
    if isinstance(additional, dict):
        _structural(additional, FIELD, f"{path}.additionalProperties", out)
    if int_or_string and preserve:
        out.append(_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", True,
                            "must be false if x-kubernetes-int-or-string is true"))
    if "x-kubernetes-preserve-unknown-fields" in schema and schema["x-kubernetes-preserve-unknown-fields"] is False:
        out.append(_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"))
    if embedded and kind != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        out.append(_required(f"{path}.type", detail) if not kind else _invalid(f"{path}.type", kind, detail))
    elif not kind and not int_or_string and not preserve:
        out.append(_required(f"{path}.type", EMPTY_TYPE[level]))
    if level == ROOT and kind and kind != "object":
        out.append(_invalid(f"{path}.type", kind, "must be object at the root"))
    if level == ROOT and isinstance(properties, dict) and isinstance(properties.get("metadata"), dict):
        metadata = properties["metadata"]
        if metadata.get("type") not in (None, "object"):
            out.append(_invalid(f"{path}.properties[metadata].type", metadata.get("type"), "must be object"))
        extra = set(metadata) - {"type", "properties", "description"}
        named = set((metadata.get("properties") or {}) if isinstance(metadata.get("properties"), dict) else {})
        if extra or named - {"name", "generateName"}:
            out.append(_forbidden(f"{path}.properties[metadata]", "must not specify anything other than name "
                                  "and generateName, but metadata is implicitly specified"))


def structural_causes(spec: Any) -> list[Cause]:
    """The structural-schema errors of a CRD's versions, sorted by their text as ValidateStructural sorts."""
    out: list[Cause] = []
    versions = spec.get("versions") if isinstance(spec, dict) else None
    for index, version in enumerate(versions if isinstance(versions, list) else []):
        if not isinstance(version, dict):
            continue
        path = f"spec.versions[{index}].schema.openAPIV3Schema"
        schema = (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(
            version.get("schema") or {}, dict) else None
        if not isinstance(schema, dict):
            out.append(_required(path, "schemas are required"))
            continue
        found: list[Cause] = []
        _structural(schema, ROOT, path, found)
        out += sorted(found, key=lambda cause: f"{cause[1]}: {cause[2]}")
    return out


# ---------------------------------------------------------------- custom resource values


def _type_name(value: Any) -> str:
    """kube-openapi's name for a decoded JSON value's type (a whole float counts as an integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or isinstance(value, float) and value.is_integer():
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_check(validator: Any, types: Any, instance: Any, schema: dict[str, Any]) -> Any:
    if instance is None and schema.get("nullable") is True:
        return
    wanted = [types] if isinstance(types, str) else list(types)
    actual = _type_name(instance)
    if actual in wanted or actual == "integer" and "number" in wanted:
        return
    yield jsonschema.ValidationError(",".join(wanted), validator="type", validator_value=types,
                                     instance=instance, schema=schema)


def _int_or_string(validator: Any, enabled: Any, instance: Any, schema: dict[str, Any]) -> Any:
    if enabled is not True or "type" in schema or instance is None and schema.get("nullable") is True:
        return
    if _type_name(instance) not in ("integer", "string"):
        yield jsonschema.ValidationError("integer,string", validator="type", validator_value=["integer", "string"],
                                         instance=instance, schema=schema)


def _no_check(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
    return iter(())


SchemaValidator = validators.extend(
    jsonschema.Draft4Validator,
    {"type": _type_check, "x-kubernetes-int-or-string": _int_or_string,
     # pruning already dropped what the schema does not name; additionalProperties only types the values
     "format": _no_check},
)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _go(value: float | int) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _cause(error: jsonschema.ValidationError) -> list[Cause]:
    path = _path(error.absolute_path)
    name = path or "."
    kind, limit, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [key for key in limit if isinstance(value, dict) and key not in value]
        return [("FieldValueRequired", f"{path}.{key}" if path else key, "Required value") for key in missing]
    if kind == "type":
        actual = _type_name(value)
        return [("FieldValueTypeInvalid", path,
                 f'Invalid value: "{actual}": {name} in body must be of type {error.message}: "{actual}"')]
    if kind == "enum":
        supported = ", ".join(json.dumps(item if isinstance(item, str) else json.dumps(item)) for item in limit)
        return [("FieldValueNotSupported", path,
                 f"Unsupported value: {json.dumps(value)}: supported values: {supported}")]
    if kind == "maxLength":
        unit = "byte" if limit == 1 else "bytes"
        return [("FieldValueTooLong", path, f"Too long: may not be more than {limit} {unit}")]
    if kind == "maxItems":
        return [("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {limit} items")]
    if kind == "maxProperties":
        return [("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {limit} items")]
    messages = {
        "minLength": (value, f"should be at least {limit} chars long"),
        "pattern": (value, f"should match '{limit}'"),
        "minItems": (len(value) if isinstance(value, list) else value, f"should have at least {limit} items"),
        "minProperties": (len(value) if isinstance(value, dict) else value,
                          f"should have at least {limit} properties"),
        "uniqueItems": (value, "shouldn't contain duplicates"),
        "multipleOf": (value, f"should be a multiple of {_go(limit)}"),
    }
    if kind in ("maximum", "minimum"):
        exclusive = error.schema.get(f"exclusive{kind.capitalize()}") is True
        relation = ("less than" if kind == "maximum" else "greater than") + ("" if exclusive else " or equal to")
        messages[kind] = (value, f"should be {relation} {_go(limit)}")
    if kind in messages:
        shown, detail = messages[kind]
        return [_invalid(path, shown, f"{name} in body {detail}")]
    return [_invalid(path, value, error.message)]


def value_causes(schema: dict[str, Any], obj: Obj) -> list[Cause]:
    """The field errors of a custom resource against its openAPIV3Schema. metadata is ObjectMeta's business
    (validated as any object's), so the schema sees the object without it."""
    document = {key: value for key, value in obj.items() if key != "metadata"}
    checked = {key: value for key, value in schema.items() if key != "required"}
    checked["required"] = [key for key in schema.get("required") or [] if key != "metadata"]
    properties = schema.get("properties")
    if isinstance(properties, dict) and "metadata" in properties:
        checked["properties"] = {key: value for key, value in properties.items() if key != "metadata"}
    causes: list[Cause] = []
    try:
        errors = sorted(SchemaValidator(checked).iter_errors(document), key=lambda e: list(map(str, e.path)))
    except jsonschema.SchemaError:
        return []
    for error in errors:
        for cause in _cause(error):
            if cause not in causes:
                causes.append(cause)
    # upstream's order follows Go map iteration (random); the lab lists them by field
    return sorted(causes, key=lambda cause: cause[1])


def schema_for(store: Store | None, rt: ResourceType, obj: Obj) -> dict[str, Any] | None:
    """The openAPIV3Schema of the CRD version an object is written in; None for built-in kinds."""
    if store is None or is_builtin(rt):
        return None
    api_version = obj.get("apiVersion")
    version = api_version.rsplit("/", 1)[-1] if isinstance(api_version, str) and api_version else rt.version
    crd = crd_for(store, rt)
    for served in ((crd or {}).get("spec") or {}).get("versions") or []:
        if isinstance(served, dict) and served.get("name") == version:
            schema = (served.get("schema") or {}).get("openAPIV3Schema")
            return schema if isinstance(schema, dict) else None
    return None
