"""A container's environment as the kubelet builds it (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables).

Order: ``envFrom`` sources first, then ``env`` entries in order (later duplicates win), each ``value``
expanded with ``$(VAR)`` against what is defined so far plus the service variables; ``valueFrom``
(fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef) is never expanded. The ``kubernetes`` service
variables are added where the container does not define the name. Failures are the kubelet's
``CreateContainerConfigError`` messages. Also here: the downward API values the volumes use.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

Obj = dict[str, Any]
# (kind "configmaps"|"secrets", namespace, name) -> the stored object or None
Lookup = Callable[[str, str, str], Obj | None]

# What the lab's node reports as allocatable: the default for unset limits in resourceFieldRef.
NODE_ALLOCATABLE = {"cpu": "1900m", "memory": "5160512Ki", "ephemeral-storage": "119703055367"}


class ConfigError(Exception):
    """CreateContainerConfigError: the message is what the container status and the Failed event say."""


# ---------------------------------------------------------------- $(VAR) expansion (third_party/forked/golang/expansion)


def expand(text: str, mapping: Callable[[str], str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            if rest[0] == "$":  # escaped operator
                read, is_var, advance = "$", False, 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:  # incomplete reference: keep it as-is
                    read, is_var, advance = "$" + rest, False, len(rest)
                else:
                    read, is_var, advance = rest[1:close], True, close + 1
            else:
                read, is_var, advance = "$" + rest[0], False, 1
            out.append(mapping(read) if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"$({name})"

    return lookup


# ---------------------------------------------------------------- downward API


_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.+)'\]$")


def format_map(values: Mapping[str, str]) -> str:
    """metadata.labels / metadata.annotations as a downward API file: ``key="value"`` lines, sorted."""
    return "\n".join(f'{key}="{_go_escape(values[key])}"' for key in sorted(values))


def _go_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def field_ref_value(pod: Obj, field_path: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if match := _SUBSCRIPT.match(field_path):
        source = meta.get(match.group(1).split(".")[1]) or {}
        return str(source.get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(ip.get("ip", "") for ip in status.get("hostIPs") or []),
        "status.podIPs": ",".join(ip.get("ip", "") for ip in status.get("podIPs") or []),
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    if field_path == "metadata.labels":
        return format_map(meta.get("labels") or {})
    if field_path == "metadata.annotations":
        return format_map(meta.get("annotations") or {})
    raise ConfigError(f'unsupported fieldPath: "{field_path}"')


_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(text: Any) -> Decimal:
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ConfigError(f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                          f" (got {text!r})")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        raise ConfigError(f"invalid quantity {text!r}") from None


def resource_field_value(pod: Obj, container: Obj, resource: str, divisor: Any = None) -> str:
    """resourceFieldRef: ceil(value / divisor); unset limits default to the node's allocatable."""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in NODE_ALLOCATABLE:
        raise ConfigError(f"unsupported container resource : {resource}")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(name, "0")
    if value is None:
        value = NODE_ALLOCATABLE[name]
    amount = parse_quantity(value)
    div = parse_quantity(divisor) if divisor not in (None, "", 0, "0") else Decimal(1)
    if div == 0:
        div = Decimal(1)
    return str(math.ceil(amount / div))


# ---------------------------------------------------------------- env


def _data(obj: Obj, kind: str) -> dict[str, str]:
    if kind == "secrets":
        return {key: base64.b64decode(value).decode("utf-8", "replace") for key, value in (obj.get("data") or {}).items()}
    data = dict(obj.get("data") or {})
    for key, value in (obj.get("binaryData") or {}).items():
        data.setdefault(key, base64.b64decode(value).decode("utf-8", "replace"))
    return data


_KIND_WORD = {"configmaps": "configmap", "secrets": "secret"}
_KIND_TITLE = {"configmaps": "ConfigMap", "secrets": "Secret"}


def _key_ref(lookup: Lookup, kind: str, namespace: str, ref: Obj) -> str | None:
    name = ref.get("name", "")
    obj = lookup(kind, namespace, name)
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{_KIND_WORD[kind]} "{name}" not found')
    data = _data(obj, kind)
    key = ref.get("key", "")
    if key not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {_KIND_TITLE[kind]} {namespace}/{name}")
    return data[key]


def container_env(pod: Obj, container: Obj, lookup: Lookup, service_env: Mapping[str, str]) -> dict[str, str]:
    """The env list the kubelet hands the runtime: envFrom, env (expanded), then the service variables."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, field in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = source.get(field)
            if ref is None:
                continue
            obj = lookup(kind, namespace, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{_KIND_WORD[kind]} "{ref.get("name", "")}" not found')
            for key, value in _data(obj, kind).items():
                env[prefix + key] = value
    for entry in container.get("env") or []:
        name = entry.get("name", "")
        source = entry.get("valueFrom")
        if source is None:
            env[name] = expand(entry.get("value", ""), mapping_for(env, service_env))
            continue
        if "fieldRef" in source:
            value: str | None = field_ref_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            target = container
            if ref.get("containerName"):
                target = next((c for c in (pod.get("spec") or {}).get("containers") or []
                               if c.get("name") == ref["containerName"]), container)
            value = resource_field_value(pod, target, ref.get("resource", ""), ref.get("divisor"))
        elif "configMapKeyRef" in source:
            value = _key_ref(lookup, "configmaps", namespace, source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = _key_ref(lookup, "secrets", namespace, source["secretKeyRef"])
        else:
            value = ""
        if value is not None:
            env[name] = value
    for name, value in service_env.items():
        env.setdefault(name, value)
    return env


def expand_argv(values: list[str], env: Mapping[str, str]) -> list[str]:
    """command/args: ``$(VAR)`` expanded with the container's final environment."""
    lookup = mapping_for(env)
    return [expand(str(value), lookup) for value in values]


def kubernetes_service_env(host: str, port: int) -> dict[str, str]:
    """The ``kubernetes`` Service's docker-link variables, aimed at the lab API server."""
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": str(port),
        f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }
