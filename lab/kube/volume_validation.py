"""The API server's checks on pod volumes, volume mounts and ConfigMap/Secret keys (422 Invalid causes).

Ported from kubernetes/kubernetes ``pkg/apis/core/validation/validation.go`` (validateVolumeSource and the
per-type validators, validateKeyToPath, validateDownwardAPIVolumeFile, validateProjectionSources,
ValidateLocalNonReservedPath, validateLocalDescendingPath, validatePathNoBacksteps, ValidateVolumeMounts,
ValidateConfigMap, ValidateSecret) and ``staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go``
(IsConfigMapKey, RegexError, hasChDirPrefix), field paths included, quirks and all: a downwardAPI item's
path is reported at ``...downwardAPI.path`` (the items index is not in the path), a projected token's at
``...projected.path``, and a volume mount's subPath at ``...volumeMounts.subPath`` (no mount index).

These are what keep a pod from naming files outside its own volumes (``items[].path: ../../x``, an absolute
path, a data key ``..``, ``subPath: ../x``); the kubelet checks again before it writes (lab.kube.volumes).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lab.kube.store import name_problems

Cause = tuple[str, str, str]  # (reason, field, message)

FILE_MODE_MESSAGE = "must be a number between 0 and 0777 (octal), both inclusive"
CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIG_KEY_MAX_LENGTH = 253  # DNS1123SubdomainMaxLength
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
# Every VolumeSource member, in validateVolumeSource's order: one and only one may be set.
VOLUME_TYPES = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs", "iscsi",
    "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte", "downwardAPI", "fc",
    "flexVolume", "configMap", "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume",
    "azureDisk", "storageos", "projected", "scaleIO", "csi", "ephemeral", "image",
)
# validateVolumeSource spells these two differently in its "more than 1 volume type" errors
FORBIDDEN_FIELD_NAMES = {"downwardAPI": "downwarAPI", "cephfs": "cephFS"}
TOKEN_MIN_SECONDS = 10 * 60
TOKEN_MAX_SECONDS = 1 << 32


def _quote(value: Any) -> str:
    return json.dumps(value)


def _invalid(field: str, value: Any, message: str) -> Cause:
    return ("FieldValueInvalid", field, f"Invalid value: {_quote(value)}: {message}")


def _required(field: str, detail: str = "") -> Cause:
    return ("FieldValueRequired", field, f"Required value: {detail}" if detail else "Required value")


def _forbidden(field: str, detail: str) -> Cause:
    return ("FieldValueForbidden", field, f"Forbidden: {detail}")


def _text(value: Any) -> str:
    """A string field as Go sees it after decoding (gotypes has already refused non-strings)."""
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------- paths and keys


def path_no_backsteps_causes(target: str, field: str) -> list[Cause]:
    """validatePathNoBacksteps: one cause however many ``..`` elements there are."""
    if ".." in target.split("/"):
        return [_invalid(field, target, "must not contain '..'")]
    return []


def local_descending_path_causes(target: str, field: str) -> list[Cause]:
    """validateLocalDescendingPath: relative, and no ``..`` element."""
    causes = [_invalid(field, target, "must be a relative path")] if target.startswith("/") else []
    return causes + path_no_backsteps_causes(target, field)


def local_non_reserved_path_causes(target: str, field: str) -> list[Cause]:
    """ValidateLocalNonReservedPath: also not starting with ``..`` (the atomic writer's own names)."""
    causes = local_descending_path_causes(target, field)
    if target.startswith("..") and not target.startswith("../"):
        causes.append(_invalid(field, target, "must not start with '..'"))
    return causes


def config_key_problems(key: str) -> list[str]:
    """IsConfigMapKey (the rule for ConfigMap and Secret keys, which become file names in volumes)."""
    problems = []
    if len(key.encode()) > CONFIG_KEY_MAX_LENGTH:
        problems.append(f"must be no more than {CONFIG_KEY_MAX_LENGTH} characters")
    if not CONFIG_KEY.fullmatch(key):
        problems.append(CONFIG_KEY_MESSAGE)
    if key == ".":
        problems.append("must not be '.'")
    elif key == "..":
        problems.append("must not be '..'")
    elif key.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def config_data_causes(kind: str, obj: dict[str, Any]) -> list[Cause]:
    """ValidateConfigMap / ValidateSecret key checks. Secret ``stringData`` has been merged into ``data`` by
    then (conversion does it before validation), so its keys are reported under ``data[...]`` too."""
    causes: list[Cause] = []
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    for key in data:
        causes.extend(_invalid(f"data[{key}]", key, problem) for problem in config_key_problems(key))
    if kind == "ConfigMap" and isinstance(obj.get("binaryData"), dict):
        for key in obj["binaryData"]:
            causes.extend(_invalid(f"binaryData[{key}]", key, problem) for problem in config_key_problems(key))
            if key in data:
                causes.append(_invalid(f"binaryData[{key}]", key, "duplicate key in both data and binaryData"))
    return causes


# ---------------------------------------------------------------- volume sources


def _mode_causes(mode: Any, field: str) -> list[Cause]:
    if isinstance(mode, int) and not isinstance(mode, bool) and not 0 <= mode <= 0o777:
        return [_invalid(field, mode, FILE_MODE_MESSAGE)]
    return []


def _key_to_path_causes(item: Any, field: str) -> list[Cause]:
    """validateKeyToPath."""
    item = item if isinstance(item, dict) else {}
    key, path = _text(item.get("key")), _text(item.get("path"))
    causes = [] if key else [_required(f"{field}.key")]
    if not path:
        causes.append(_required(f"{field}.path"))
    causes += local_non_reserved_path_causes(path, f"{field}.path")
    return causes + _mode_causes(item.get("mode"), f"{field}.mode")


def _items(source: dict[str, Any]) -> list[Any]:
    items = source.get("items")
    return items if isinstance(items, list) else []


def _config_source_causes(source: dict[str, Any], field: str, name_field: str) -> list[Cause]:
    """validateSecretVolumeSource / validateConfigMapVolumeSource."""
    causes = [] if _text(source.get(name_field)) else [_required(f"{field}.{name_field}")]
    causes += _mode_causes(source.get("defaultMode"), f"{field}.defaultMode")
    for index, item in enumerate(_items(source)):
        causes += _key_to_path_causes(item, f"{field}.items[{index}]")
    return causes


def _downward_file_causes(item: Any, field: str) -> list[Cause]:
    """validateDownwardAPIVolumeFile; ``field`` is the source's path, not the item's (as upstream)."""
    item = item if isinstance(item, dict) else {}
    path = _text(item.get("path"))
    causes = [] if path else [_required(f"{field}.path")]
    causes += local_non_reserved_path_causes(path, f"{field}.path")
    if item.get("fieldRef") is not None and item.get("resourceFieldRef") is not None:
        causes.append(_invalid(field, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
    elif item.get("fieldRef") is None and item.get("resourceFieldRef") is None:
        causes.append(_required(field, "one of fieldRef and resourceFieldRef is required"))
    return causes + _mode_causes(item.get("mode"), f"{field}.mode")


def _projection_causes(projected: dict[str, Any], field: str) -> list[Cause]:
    """validateProjectionSources."""
    causes: list[Cause] = []
    seen_paths: set[str] = set()

    def claim(path: str, value: Any) -> None:
        if path in seen_paths:
            causes.append(_invalid(field, value, "conflicting duplicate paths"))
        seen_paths.add(path)

    sources = projected.get("sources")
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        source = source if isinstance(source, dict) else {}
        source_field = f"{field}.sources[{index}]"
        count = 0
        for kind in ("secret", "configMap"):
            if not isinstance(source.get(kind), dict):
                continue
            count += 1
            projection, projection_field = source[kind], f"{source_field}.{kind}"
            name = _text(projection.get("name"))
            if not name:
                causes.append(_required(f"{projection_field}.name"))
            for item_index, item in enumerate(_items(projection)):
                causes += _key_to_path_causes(item, f"{projection_field}.items[{item_index}]")
                path = _text((item if isinstance(item, dict) else {}).get("path"))
                if path:
                    claim(path, name)
        if isinstance(source.get("downwardAPI"), dict):
            count += 1
            for item in _items(source["downwardAPI"]):
                causes += _downward_file_causes(item, f"{source_field}.downwardAPI")
                path = _text((item if isinstance(item, dict) else {}).get("path"))
                if path:
                    claim(path, path)
        if isinstance(source.get("serviceAccountToken"), dict):
            count += 1
            token = source["serviceAccountToken"]
            seconds = token.get("expirationSeconds")
            if isinstance(seconds, int) and not isinstance(seconds, bool):
                if seconds < TOKEN_MIN_SECONDS:
                    causes.append(_invalid(f"{source_field}.serviceAccountToken.expirationSeconds", seconds,
                                           "may not specify a duration less than 10 minutes"))
                if seconds > TOKEN_MAX_SECONDS:
                    causes.append(_invalid(f"{source_field}.serviceAccountToken.expirationSeconds", seconds,
                                           "may not specify a duration larger than 2^32 seconds"))
            path = _text(token.get("path"))
            if not path:
                causes.append(_required(f"{field}.path"))
            else:
                causes += local_non_reserved_path_causes(path, f"{field}.path")
        if isinstance(source.get("clusterTrustBundle"), dict):
            count += 1
            path = _text(source["clusterTrustBundle"].get("path"))
            if not path:
                causes.append(_required(f"{source_field}.clusterTrustBundle.path"))
            causes += local_non_reserved_path_causes(path, f"{source_field}.clusterTrustBundle.path")
            claim(path, path)
        if count > 1:
            causes.append(_forbidden(source_field, "may not specify more than 1 volume type per source"))
    return causes


def _source_causes(kind: str, source: dict[str, Any], field: str) -> list[Cause]:
    if kind in ("configMap", "secret"):
        return _config_source_causes(source, field, "name" if kind == "configMap" else "secretName")
    if kind == "downwardAPI":
        causes = _mode_causes(source.get("defaultMode"), f"{field}.defaultMode")
        for item in _items(source):
            causes += _downward_file_causes(item, field)
        return causes
    if kind == "projected":
        return _mode_causes(source.get("defaultMode"), f"{field}.defaultMode") + _projection_causes(source, field)
    if kind == "hostPath":
        path = _text(source.get("path"))
        return path_no_backsteps_causes(path, f"{field}.path") if path else [_required(f"{field}.path")]
    if kind == "gitRepo":
        return local_descending_path_causes(_text(source.get("directory")), f"{field}.directory")
    return []


def volume_source_causes(volume: dict[str, Any], field: str) -> list[Cause]:
    """validateVolumeSource for one ``spec.volumes[i]`` (``field``)."""
    causes: list[Cause] = []
    count = 0
    for kind in VOLUME_TYPES:
        if volume.get(kind) is None:
            continue
        if count:
            named = FORBIDDEN_FIELD_NAMES.get(kind, kind)
            causes.append(_forbidden(f"{field}.{named}", "may not specify more than 1 volume type"))
            continue
        count += 1
        source = volume[kind] if isinstance(volume[kind], dict) else {}
        causes += _source_causes(kind, source, f"{field}.{kind}")
    if not count:
        causes.append(_required(field, "must specify a volume type"))
    return causes


def volume_causes(volumes: Any, field: str) -> tuple[set[str], list[Cause]]:
    """ValidateVolumes: the names of the volumes that passed (mounts may only use those) and the causes."""
    causes: list[Cause] = []
    valid: set[str] = set()
    for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        volume = volume if isinstance(volume, dict) else {}
        volume_field = f"{field}[{index}]"
        own = volume_source_causes(volume, volume_field)
        name = _text(volume.get("name"))
        if not name:
            own.append(_required(f"{volume_field}.name"))
        else:
            own += [_invalid(f"{volume_field}.name", name, problem) for problem in name_problems(name, True)]
        if name in valid:
            own.append(("FieldValueDuplicate", f"{volume_field}.name", f"Duplicate value: {_quote(name)}"))
        if own:
            causes += own
        else:
            valid.add(name)
    return valid, causes


# ---------------------------------------------------------------- volume mounts


def volume_mount_causes(mounts: Any, volume_names: set[str], field: str) -> list[Cause]:
    """ValidateVolumeMounts (the checks the lab needs); ``field`` is ``...containers[i].volumeMounts``."""
    causes: list[Cause] = []
    mount_points: set[str] = set()
    for index, mount in enumerate(mounts if isinstance(mounts, list) else []):
        mount = mount if isinstance(mount, dict) else {}
        mount_field = f"{field}[{index}]"
        name, mount_path = _text(mount.get("name")), _text(mount.get("mountPath"))
        if not name:
            causes.append(_required(f"{mount_field}.name"))
        if name not in volume_names:
            causes.append(("FieldValueNotFound", f"{mount_field}.name", f"Not found: {_quote(name)}"))
        if not mount_path:
            causes.append(_required(f"{mount_field}.mountPath"))
        if mount_path in mount_points:
            causes.append(_invalid(f"{mount_field}.mountPath", mount_path, "must be unique"))
        mount_points.add(mount_path)
        sub_path, sub_path_expr = _text(mount.get("subPath")), _text(mount.get("subPathExpr"))
        if sub_path:
            causes += local_descending_path_causes(sub_path, f"{field}.subPath")
        if sub_path_expr:
            if sub_path:
                causes.append(_invalid(f"{mount_field}.subPathExpr", sub_path_expr,
                                       "subPathExpr and subPath are mutually exclusive"))
            causes += local_descending_path_causes(sub_path_expr, f"{field}.subPathExpr")
    return causes
