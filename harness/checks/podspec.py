"""Reading an admitted pod: containers, env, the projected token volume (matched by AUDIENCE, never by name
or path: webhook v1.5 and v1.6 lay it out differently) and its mount."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.names import (
    DEFAULT_EXPIRATION,
    EXPIRATION_ANNOTATION,
    TERMINAL_PHASES,
    TOKEN_AUDIENCE,
    V15_VOLUME_NAME,
    V16_VOLUME_PREFIX,
    WEBHOOK_SYSTEM_LABEL,
)

Obj = dict[str, Any]


@dataclass
class TokenVolume:
    volume: str
    audience: str
    path: str  # the token's path inside the volume
    expiration_seconds: int | None

    @property
    def layout(self) -> str:
        if self.volume.startswith(V16_VOLUME_PREFIX):
            return "v1.6"
        return "v1.5" if self.volume == V15_VOLUME_NAME else "custom"


_POD_TEMPLATE_HASH = "pod-template-hash"


def controller_of(pod: Obj) -> tuple[str, str]:
    """(kind, name) of the controller to restart or patch: a ReplicaSet named ``<deployment>-<pod-template-hash>``
    belongs to that Deployment (the Deployment controller names its ReplicaSets so); a pod no controller owns is
    ("Pod", its name)."""
    meta = pod.get("metadata") or {}
    controller = next(
        (ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")),
        None,
    )
    if controller is None:
        return "Pod", str(meta.get("name") or "")
    kind, name = str(controller.get("kind") or ""), str(controller.get("name") or "")
    template_hash = (meta.get("labels") or {}).get(_POD_TEMPLATE_HASH)
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return "Deployment", name[: -len(template_hash) - 1]
    return kind, name


def is_live(pod: Obj) -> bool:
    """A pod that runs or will: not being deleted, not ended (Succeeded, Failed)."""
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


def service_account_of(pod_spec: Obj) -> str:
    """The ServiceAccount a pod spec (or a pod template's) runs under: serviceAccountName, else the deprecated
    serviceAccount, else ``default`` (what the API server's ServiceAccount admission gives a pod naming none)."""
    return str(pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default")


def spec(pod: Obj | None) -> Obj:
    return (pod or {}).get("spec") or {}


def containers(pod: Obj | None, include_init: bool = False) -> list[Obj]:
    found = list(spec(pod).get("containers") or [])
    return (list(spec(pod).get("initContainers") or []) + found) if include_init else found


def container(pod: Obj | None, name: str | None) -> Obj | None:
    items = containers(pod)
    if name is None:
        return items[0] if items else None
    return next((c for c in items if c.get("name") == name), None)


def env_map(container: Obj | None) -> dict[str, str | None]:
    """name -> literal value (None when it comes from valueFrom)."""
    return {e.get("name", ""): e.get("value") for e in (container or {}).get("env") or []}


def injected_azure_env(pod: Obj | None) -> dict[str, str]:
    """The AZURE_* variables with a literal value in the first container the webhook gave a token file (the one
    with AZURE_FEDERATED_TOKEN_FILE); {} when none has it. Read from a probe pod, which sets no AZURE_* itself,
    this is what the webhook injects now."""
    for item in containers(pod):
        env = env_map(item)
        if env.get("AZURE_FEDERATED_TOKEN_FILE"):
            return {k: str(v) for k, v in env.items() if k.startswith("AZURE_") and v}
    return {}


def is_webhook_pod(pod: Obj | None) -> bool:
    """The Workload ID webhook's own pod (the chart's and the add-on's pods carry azure-workload-identity.io/system:
    "true"), not a workload that uses Workload ID."""
    return (((pod or {}).get("metadata") or {}).get("labels") or {}).get(WEBHOOK_SYSTEM_LABEL) == "true"


def value_source(container: Obj | None, name: str) -> str | None:
    """Where a variable the container sets with ``valueFrom`` comes from (``secret app-ids key client-id``), or
    None when the container does not set it that way. The webhook appends only the variables a container does not
    name at all (addEnvironmentVariables keys on the name), so such a variable keeps its source's value."""
    for env in (container or {}).get("env") or []:
        if env.get("name") != name or "value" in env and env.get("value") is not None:
            continue
        source = env.get("valueFrom") or {}
        for key, kind in (("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")):
            ref = source.get(key)
            if isinstance(ref, dict):
                return f"{kind} {ref.get('name')} key {ref.get('key')}"
        if isinstance(source.get("fieldRef"), dict):
            return f"field {source['fieldRef'].get('fieldPath')}"
        if source:
            return "valueFrom"
        return None
    return None


def value_sources(container: Obj | None, names: Iterable[str]) -> dict[str, str]:
    """Each of ``names`` the container sets itself with ``valueFrom``, and where from (value_source): the webhook
    injects none of them, so the app gets what the ConfigMap, Secret or field holds (never read here)."""
    return {name: source for name in names for source in [value_source(container, name)] if source}


def token_volumes(pod: Obj | None, audience: str = TOKEN_AUDIENCE) -> list[TokenVolume]:
    out: list[TokenVolume] = []
    for volume in spec(pod).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if token and token.get("audience") == audience:
                out.append(
                    TokenVolume(
                        volume.get("name", ""),
                        audience,
                        token.get("path", ""),
                        token.get("expirationSeconds"),
                    )
                )
    return out


def all_token_audiences(pod: Obj | None) -> list[str]:
    return [
        source["serviceAccountToken"].get("audience", "")
        for volume in spec(pod).get("volumes") or []
        for source in (volume.get("projected") or {}).get("sources") or []
        if source.get("serviceAccountToken")
    ]


def mounts_of(container: Obj | None, volume: str) -> list[Obj]:
    return [m for m in (container or {}).get("volumeMounts") or [] if m.get("name") == volume]


def token_file_of(mount: Obj, token: TokenVolume) -> str:
    return posixpath.normpath(posixpath.join(mount.get("mountPath", ""), token.path))


def annotation(obj: Obj | None, key: str) -> str | None:
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(key)


def expected_lifetime(pod: Obj | None, sa_annotations: dict[str, str]) -> int:
    """Pod annotation, else ServiceAccount annotation, else 3600 (the webhook's order)."""
    raw = annotation(pod, EXPIRATION_ANNOTATION) or sa_annotations.get(EXPIRATION_ANNOTATION) or ""
    try:
        return int(raw) if raw else DEFAULT_EXPIRATION
    except ValueError:
        return DEFAULT_EXPIRATION
