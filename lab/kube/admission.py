"""Admission for object creation, in the API server's order: in-tree mutating plugins (LimitRanger,
ServiceAccount, DefaultTolerationSeconds), mutating webhooks (those the stored MutatingWebhookConfigurations
select, :mod:`lab.kube.webhook_dispatch`; the workload identity webhook among them), then name
generation and validation of the mutated object, then the validating plugins (LimitRanger, PodSecurity whose ``warn`` results become ``Warning``
headers), validating webhooks (Gatekeeper, when ``lab ctl policy deny`` installed it) and ResourceQuota last
(kube-apiserver's plugin order).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lab.kube import (
    crdschema,
    defaults,
    errors,
    gatekeeper,
    limitrange,
    podsecurity,
    quota,
    validation,
    webhook_dispatch,
)
from lab.kube.resources import core_type
from lab.kube.store import Obj, ResourceType

if TYPE_CHECKING:
    from lab.runtime import Lab

SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
MAX_GENERATED_PREFIX = 58  # names.MaxGeneratedNameLength: 63 less the five random characters
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DEFAULT_TOLERATIONS = (
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
)


def _is_pod(rt: ResourceType) -> bool:
    return rt.group_resource == ("", "pods")


def namespace_labels(lab: Lab, namespace: str) -> dict[str, str]:
    ns_type = lab.kube.store.type_for("", "namespaces")
    found = lab.kube.store.find(ns_type, "", namespace) if ns_type else None
    return dict(((found or {}).get("metadata") or {}).get("labels") or {})


def _service_account_getter(lab: Lab) -> Callable[[str, str], Obj | None]:
    sa_type = lab.kube.store.type_for("", "serviceaccounts")

    def get_service_account(namespace: str, name: str) -> Obj | None:
        return lab.kube.store.find(sa_type, namespace, name)

    return get_service_account


def _pod_name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return meta.get("name") or meta.get("generateName") or ""


# ---------------------------------------------------------------- in-tree mutating plugins


def _token_volume(name: str) -> Obj:
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def _random_suffix() -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's utilrand alphabet
    return "".join(secrets.choice(alphabet) for _ in range(5))


def service_account_admission(lab: Lab, pod: Obj, namespace: str) -> None:
    """The ServiceAccount plugin: the pod's ServiceAccount must exist; mount its token unless opted out."""
    spec = pod["spec"]
    sa_name = spec.get("serviceAccountName") or "default"
    service_account = _service_account_getter(lab)(namespace, sa_name)
    if service_account is None:
        raise errors.forbidden(
            f'pods "{_pod_name(pod)}" is forbidden: error looking up service account {namespace}/{sa_name}: '
            f'serviceaccount "{sa_name}" not found',
            name=_pod_name(pod),
            plural="pods",
        )
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = service_account.get("automountServiceAccountToken", True)
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    if not automount or any(
        mount.get("mountPath") == SERVICE_ACCOUNT_MOUNT_PATH
        for c in containers
        for mount in c.get("volumeMounts") or []
    ):
        return
    volume_name = TOKEN_VOLUME_PREFIX + _random_suffix()
    spec.setdefault("volumes", []).append(_token_volume(volume_name))
    for container in containers:
        container.setdefault("volumeMounts", []).append(
            {"name": volume_name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}
        )


def default_toleration_seconds(pod: Obj) -> None:
    tolerations = pod["spec"].setdefault("tolerations", [])
    for default in DEFAULT_TOLERATIONS:
        if not any(
            t.get("key") == default["key"] and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
            if isinstance(t, dict)
        ):
            tolerations.append(dict(default))


# ---------------------------------------------------------------- the chain


def mutate(lab: Lab, rt: ResourceType, obj: Obj, namespace: str) -> Obj:
    """Mutating admission for a CREATE; returns the object to store (maybe a new dict)."""
    if not _is_pod(rt):
        return obj
    if not isinstance(obj.get("spec"), dict) or not obj["spec"].get("containers"):
        return obj  # validation reports it
    limitrange.mutate(lab.kube.store, obj, namespace)
    service_account_admission(lab, obj, namespace)
    default_toleration_seconds(obj)
    return webhook_dispatch.mutate(lab, rt, obj, namespace, namespace_labels(lab, namespace),
                                   _service_account_getter(lab))


def _server_minor(lab: Lab) -> dict[str, Any]:
    minor = "".join(ch for ch in str(lab.kube.version.get("minor", "")) if ch in string.digits)
    return {"server_minor": int(minor)} if minor else {}


def namespace_pod_security(lab: Lab, obj: Obj, old: Obj | None = None) -> list[str]:
    """The PodSecurity plugin for a namespace CREATE or UPDATE (podsecurity.validate_namespace): 422 for labels
    that do not parse, and the warnings about existing pods an enforce level made stricter would refuse."""
    name = str((obj.get("metadata") or {}).get("name") or "")
    labels = dict((obj.get("metadata") or {}).get("labels") or {})
    old_labels = None if old is None else dict((old.get("metadata") or {}).get("labels") or {})
    pods = lab.kube.store.list(core_type(lab.kube.store, "pods"), name)[0] if old is not None else []
    return podsecurity.validate_namespace(name, old_labels, labels, pods, **_server_minor(lab))


def controller_pod_security(lab: Lab, rt: ResourceType, obj: Obj, namespace: str) -> list[str]:
    """The PodSecurity plugin's warnings for a workload resource's pod template (podsecurity.controller_warnings)."""
    if not namespace:
        return []
    return podsecurity.controller_warnings(rt.group_resource, obj, namespace_labels(lab, namespace),
                                           **_server_minor(lab))


def validate(lab: Lab, rt: ResourceType, obj: Obj, namespace: str, dry_run: bool = False) -> list[str]:
    """Validating admission for a CREATE; returns warnings, raises ApiError (403) to reject."""
    warnings: list[str] = []
    if rt.group_resource == ("", "namespaces"):
        warnings = namespace_pod_security(lab, obj)
    warnings += controller_pod_security(lab, rt, obj, namespace)
    if _is_pod(rt):
        kwargs = _server_minor(lab)
        labels = namespace_labels(lab, namespace)
        limitrange.validate(lab.kube.store, rt, obj, namespace)
        warnings = podsecurity.check_pod_security(obj, labels, **kwargs)
        warnings += gatekeeper.admit(lab.kube.store, rt, namespace, labels, obj)
        webhook_dispatch.validate(lab, rt, obj, namespace, labels, frozenset({gatekeeper.CONFIGURATION_NAME}))
    quota.admit(lab.kube.store, rt, obj, namespace, dry_run=dry_run)
    return warnings


def generate_name(obj: Obj) -> None:
    """The registry's name generation (SimpleNameGenerator): ``generateName`` cut to 58 characters plus five
    random ones, only when the object has no name."""
    meta = obj.setdefault("metadata", {})
    prefix = meta.get("generateName")
    if not meta.get("name") and isinstance(prefix, str) and prefix:
        meta["name"] = prefix[:MAX_GENERATED_PREFIX] + _random_suffix()


def admit_create(lab: Lab, rt: ResourceType, obj: Obj, namespace: str, now: str,
                 dry_run: bool = False) -> tuple[Obj, list[str]]:
    """The API server's create path: (decoding defaults) mutating admission, then the registry's name
    generation and validation of the mutated object, then validating admission (apiserver handlers/create.go
    admits before rest.BeforeCreate names and validates; the store calls createValidation last). So a
    webhook sees only ``generateName`` when the client sent no name, and what it adds is validated.
    Controllers that create objects (the ReplicaSet controller's pods) go through the same chain."""
    defaults.apply_defaults(rt, obj)
    obj = mutate(lab, rt, obj, namespace)
    generate_name(obj)
    defaults.apply_defaults(rt, obj)
    validation.validate_create(rt, obj, crdschema.schema_for(lab.kube.store, rt, obj))
    warnings = validate(lab, rt, obj, namespace, dry_run=dry_run)
    if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
        obj["status"] = defaults.crd_established_status(obj, now)
    return obj, warnings
