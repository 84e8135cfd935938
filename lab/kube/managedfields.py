"""Field ownership (``metadata.managedFields``) and server-side apply, as the API server's field manager does it
(k8s.io/apiserver pkg/endpoints/handlers/fieldmanager over sigs.k8s.io/structured-merge-diff).

- Every write through the API records who set which fields: a create, update or non-apply patch is an
  ``Update`` by its manager (the ``fieldManager`` query parameter, else the User-Agent up to its first ``/``);
  the fields it added or changed become its own and are taken from every other manager, fields it removed
  leave every manager. A write that changes nothing gives a new manager nothing.
- An apply (``application/apply-patch+yaml``) merges the configuration into the live object (maps field by
  field, lists of the schema's list-map keys item by item, sets as sets, anything else replaced), makes the
  configuration's fields the applier's, and removes the fields the applier owned before but left out this time
  unless another manager owns them too. Changing a field another manager owns is a conflict (409, upstream's
  message and FieldManagerConflict causes) unless ``force=true``, which takes the field over.
- Fields are encoded as FieldsV1: ``f:<name>`` for a field, ``k:{...}`` for a list item by its keys,
  ``v:<json>`` for a set member, ``.`` for a path that is itself owned and has owned children.
The object's identity and server-set metadata are never owned; the main resource never owns ``status`` of a
kind with a status subresource, and ``/status`` writes own only ``status`` (the registries' reset fields).
Schema: the struct/map/list shapes come from the official client's models (lab.kube.apischema); custom
resources are walked as the deduced schema (maps of anything, atomic lists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lab.kube import apischema, defaults, errors
from lab.kube.store import Obj, ResourceType, clone

APPLY, UPDATE = "Apply", "Update"
FIELDS_V1 = "FieldsV1"
MAX_MANAGER_LENGTH = 128
# Never owned (fieldmanager's stripMetaManager): identity and server-set metadata.
STRIPPED_METADATA = ("name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
                     "managedFields", "resourceVersion")
# List-map keys: k8s.io/api types' `+listType=map`/`+listMapKey` tags, and the patchMergeKey of merge lists
# (kube-openapi's schemaconv makes a list with patch strategy merge associative on its merge key).
LIST_MAP_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "ownerReferences": ("uid",),
    "conditions": ("type",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",),
    "secrets": ("name",),
    "webhooks": ("name",),  # Mutating/ValidatingWebhookConfiguration
}
# Lists whose key depends on the item type: ContainerPort and ServicePort are keyed with their protocol.
ITEM_KEYS: dict[str, tuple[str, ...]] = {
    "V1ContainerPort": ("containerPort", "protocol"),
    "V1ServicePort": ("port", "protocol"),
}
KEY_DEFAULTS = {"protocol": "TCP"}  # a key field's schema default stands in when the item leaves it out
SET_LISTS = {"finalizers"}  # `+listType=set`
KUBECTL = "kubectl"  # the manager whose applies upgrade from client-side apply (lastAppliedManager/Updater)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
BEFORE_FIRST_APPLY = "before-first-apply"
DEDUCED = ""  # no schema: maps of anything, atomic lists

Path = tuple[str, ...]
_CONTAINER = object()  # a path that is owned but holds other owned paths: never compared by value


# ---------------------------------------------------------------- schema


def _list_kind(field: str, element_type: str) -> tuple[str, tuple[str, ...]]:
    """("map", keys) for an associative list, ("set", ()) for a set, ("atomic", ()) otherwise."""
    if field in SET_LISTS:
        return "set", ()
    keys = ITEM_KEYS.get(element_type) or LIST_MAP_KEYS.get(field)
    if keys and apischema.element(element_type)[0] == "model":
        return "map", keys
    return "atomic", ()


def _child_type(type_name: str, key: str) -> tuple[str, bool]:
    """The type of a map's entry and whether it is a declared struct field."""
    if type_name == DEDUCED:
        return DEDUCED, False
    form, inner = apischema.element(type_name)
    if form == "model":
        field = apischema.fields(inner).get(key)
        return (field.type, True) if field is not None else (DEDUCED, False)
    if form == "map":
        return inner, False
    return DEDUCED, False


def _item_key(item: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return None
    values = {key: item.get(key, KEY_DEFAULTS.get(key)) for key in sorted(keys)}
    if any(value is None for value in values.values()):
        return None
    return "k:" + json.dumps(values, separators=(",", ":"))


def _element(type_name: str) -> str:
    return apischema.element(type_name)[1] if type_name != DEDUCED else DEDUCED


# ---------------------------------------------------------------- field sets


def _walk(value: Any, type_name: str, field: str, path: Path, out: dict[Path, Any]) -> None:
    """Record every owned path under ``path`` with its value (leaves) or _CONTAINER."""
    if isinstance(value, dict):
        form = apischema.element(type_name)[0] if type_name != DEDUCED else "map"
        if form not in ("model", "map"):
            out[path] = value  # a free-form object (IntOrString, RawExtension...): atomic
            return
        for key, child in value.items():
            child_type, declared = _child_type(type_name, key)
            child_path = (*path, f"f:{key}")
            _walk(child, child_type, key, child_path, out)
            if child is None or child == {} or not declared:
                out.setdefault(child_path, child if child is None or child == {} else _CONTAINER)
        return
    if isinstance(value, list) and type_name.startswith("List["):
        element_type = _element(type_name)
        kind, keys = _list_kind(field, element_type)
        if kind == "set":
            for item in value:
                out[(*path, "v:" + json.dumps(item, separators=(",", ":")))] = item
            return
        if kind == "map" and all(_item_key(item, keys) for item in value):
            for item in value:
                item_path = (*path, str(_item_key(item, keys)))
                _walk(item, element_type, "", item_path, out)
                out[item_path] = _CONTAINER
            return
    out[path] = value


def owned_view(rt: ResourceType, obj: Obj, subresource: str = "") -> Obj:
    """The part of an object a write through the resource (or its subresource) can own."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    if subresource == "scale":
        replicas = (obj.get("spec") or {}).get("replicas")
        return {"spec": {"replicas": replicas}} if replicas is not None else {}
    view = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}
    if "status" in rt.subresources:
        view.pop("status", None)
    meta = {key: value for key, value in (obj.get("metadata") or {}).items() if key not in STRIPPED_METADATA}
    if meta:
        view["metadata"] = meta
    else:
        view.pop("metadata", None)
    return view


def field_values(rt: ResourceType, obj: Obj, subresource: str = "") -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    model = apischema.model_for_kind(rt.group, rt.version, rt.kind)
    _walk(owned_view(rt, obj, subresource), model or DEDUCED, "", (), out)
    return out


# ---------------------------------------------------------------- FieldsV1


def encode(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _collapse(tree)


def _collapse(node: dict[str, Any]) -> dict[str, Any]:
    children = {key: _collapse(value) for key, value in node.items() if key != "."}
    if "." in node and not children:
        return {}
    return {**({".": {}} if "." in node else {}), **children}


def decode(fields: Any, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    if not isinstance(fields, dict):
        return paths
    for key, value in fields.items():
        if key == ".":
            paths.add(prefix)
        elif isinstance(value, dict) and value:
            paths |= decode(value, (*prefix, key))
        else:
            paths.add((*prefix, key))
    return paths


def path_string(path: Path) -> str:
    """fieldpath.Path's String(): .spec.replicas, .spec.containers[name="app"].image, .metadata.finalizers[="x"]."""
    parts = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            parts.append(f".{rest}")
        elif kind == "k":
            keys = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in keys.items()) + "]")
        elif kind == "v":
            parts.append(f"[={rest}]")
        else:
            parts.append(f"[{rest}]")
    return "".join(parts)


# ---------------------------------------------------------------- managers


@dataclass
class Manager:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: set[Path]

    @property
    def identity(self) -> tuple[str, str, str, str]:
        # appliers are one manager whatever version they apply (fieldmanager's BuildManagerIdentifier)
        return (self.manager, self.operation, "" if self.operation == APPLY else self.api_version, self.subresource)

    def printed(self) -> str:
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return f"{text} using {self.api_version}" if self.operation == UPDATE else text

    def entry(self) -> Obj:
        entry: Obj = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            entry["time"] = _rfc3339(self.time)
        entry["fieldsType"] = FIELDS_V1
        entry["fieldsV1"] = encode(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def _rfc3339(text: str) -> str:
    """A time a client sent back (the Python client writes +00:00) as metav1.Time renders it."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def managers_of(obj: Obj | None) -> list[Manager]:
    entries = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return [
        Manager(str(entry.get("manager", "")), str(entry.get("operation", "")), str(entry.get("apiVersion", "")),
                str(entry.get("subresource", "")), entry.get("time"), decode(entry.get("fieldsV1")))
        for entry in entries if isinstance(entry, dict)
    ]


def entries(managers: list[Manager]) -> list[Obj]:
    kept = [m for m in managers if m.fields]
    kept.sort(key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource))
    return [m.entry() for m in kept]


def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    """managerOrUserAgent: the fieldManager parameter, else the User-Agent's product (before the first /)."""
    if field_manager:
        return field_manager
    return (user_agent or "").split("/")[0][:MAX_MANAGER_LENGTH]


def check_patch_options(field_manager: str | None, force: str | None, applying: bool) -> None:
    """ValidatePatchOptions: an apply needs a fieldManager, only an apply may force, and a manager's name is
    at most 128 printable characters (422 naming PatchOptions.meta.k8s.io)."""
    causes: list[tuple[str, str, str]] = []
    if applying and not field_manager:
        causes.append(("FieldValueRequired", "fieldManager", "Required value: is required for apply patch"))
    if not applying and force is not None:
        causes.append(("FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply patch"))
    if field_manager and len(field_manager) > MAX_MANAGER_LENGTH:
        causes.append(("FieldValueTooLong", "fieldManager",
                       f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"))
    if field_manager and not field_manager.isprintable():
        causes.append(("FieldValueInvalid", "fieldManager",
                       f"Invalid value: {json.dumps(field_manager)}: invalid characters"))
    if not causes:
        return
    parts = [f"{field}: {message}" for _, field, message in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    raise errors.ApiError(422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: {summary}', {
        "group": "meta.k8s.io", "kind": "PatchOptions",
        "causes": [{"reason": reason, "message": message, "field": field} for reason, field, message in causes]})


def _take(managers: list[Manager], identity: tuple[str, str, str, str]) -> Manager | None:
    for index, manager in enumerate(managers):
        if manager.identity == identity:
            return managers.pop(index)
    return None


def _compare(live: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two field-value maps."""
    changed = {path for path, value in new.items()
               if path not in live or (value is not _CONTAINER and live[path] is not _CONTAINER
                                       and live[path] != value)}
    return changed, set(live) - set(new)


def record_update(rt: ResourceType, live: Obj | None, new: Obj, manager: str, now: str,
                  subresource: str = "", sent: Any = None) -> list[Obj]:
    """The managedFields after a create/update/patch by ``manager`` (operation Update: never a conflict).
    ``sent``: the managedFields the request carried; a non-empty list replaces the live ones (how clients such
    as kubectl's client-side-to-server-side apply migration edit them) and ``[{}]`` clears them."""
    managers = managers_of(live)
    if not subresource and isinstance(sent, list) and sent:
        managers = [] if sent == [{}] else (managers_of({"metadata": {"managedFields": sent}}) or managers)
    if live is not None and not managers:
        return []  # an existing object nobody tracks stays untracked until an apply (skipNonAppliedManager)
    before = field_values(rt, live, subresource) if live else {}
    changed, removed = _compare(before, field_values(rt, new, subresource))
    if subresource == "scale" and changed:
        changed = {("f:spec", "f:replicas")}
    identity = (manager, UPDATE, rt.api_version, subresource)
    own = _take(managers, identity) or Manager(manager, UPDATE, rt.api_version, subresource, None, set())
    for other in managers:
        other.fields -= changed | removed
    own.fields = (own.fields - removed) | changed
    own.time = now
    return entries([*managers, own])


# ---------------------------------------------------------------- apply


def merge(live: Any, config: Any, type_name: str, field: str = "") -> Any:
    """structured-merge-diff's Merge: the configuration over the live value, by the schema's shapes."""
    if isinstance(live, dict) and isinstance(config, dict):
        form = apischema.element(type_name)[0] if type_name != DEDUCED else "map"
        if form not in ("model", "map"):
            return clone(config)
        result = clone(live)
        for key, value in config.items():
            child_type, _ = _child_type(type_name, key)
            result[key] = merge(live.get(key), value, child_type, key)
        return result
    if isinstance(live, list) and isinstance(config, list) and type_name.startswith("List["):
        element_type = _element(type_name)
        kind, keys = _list_kind(field, element_type)
        if kind == "set":
            return clone(live) + [clone(item) for item in config if item not in live]
        if kind == "map" and all(_item_key(item, keys) for item in [*live, *config]):
            by_key = {_item_key(item, keys): item for item in config}
            result = [merge(item, by_key.pop(_item_key(item, keys)), element_type)
                      if _item_key(item, keys) in by_key else clone(item) for item in live]
            return result + [clone(item) for item in by_key.values()]
    return clone(config)


def _locate(obj: Any, path: Path) -> list[tuple[Any, Any]] | None:
    """The (container, key or index) steps to the value at ``path``; None when it is not there."""
    steps: list[tuple[Any, Any]] = []
    current = obj
    for element in path:
        kind, _, rest = element.partition(":")
        if isinstance(current, dict) and kind == "f" and rest in current:
            steps.append((current, rest))
            current = current[rest]
            continue
        if not isinstance(current, list) or kind not in ("k", "v"):
            return None
        wanted = json.loads(rest)
        index = next((i for i, item in enumerate(current) if (
            isinstance(item, dict) and all(item.get(k, KEY_DEFAULTS.get(k)) == v for k, v in wanted.items())
            if kind == "k" else item == wanted)), None)
        if index is None:
            return None
        steps.append((current, index))
        current = current[index]
    return steps


def remove_paths(obj: Obj, paths: list[Path]) -> None:
    """Remove the values at ``paths`` (all located before any goes); containers they empty go too."""
    located = [steps for steps in (_locate(obj, path) for path in paths) if steps]
    doomed = {(id(container), key if isinstance(container, dict) else id(container[key]))
              for container, key in (steps[-1] for steps in located)}
    _prune_marked(obj, doomed)


def _prune_marked(value: Any, doomed: set[tuple[int, Any]]) -> bool:
    """Drop the marked entries under ``value``; True when ``value`` was emptied by it."""
    if isinstance(value, dict):
        emptied = False
        for key in list(value):
            if (id(value), key) in doomed or (_prune_marked(value[key], doomed) and value[key] in ({}, [])):
                del value[key]
                emptied = True
        return emptied and not value
    if isinstance(value, list):
        kept = [item for item in value
                if not ((id(value), id(item)) in doomed or (_prune_marked(item, doomed) and item in ({}, [])))]
        emptied = len(kept) < len(value)
        value[:] = kept
        return emptied and not value
    return False


class ApplyConflict(errors.ApiError):
    def __init__(self, conflicts: list[tuple[Manager, Path]]) -> None:
        causes = [{"type": "FieldManagerConflict", "message": f"conflict with {manager.printed()}",
                   "field": path_string(path)} for manager, path in conflicts]
        if len(conflicts) == 1:
            manager, path = conflicts[0]
            message = f"Apply failed with 1 conflict: conflict with {manager.printed()}: {path_string(path)}"
        else:
            lines: list[str] = []
            for printed in sorted({manager.printed() for manager, _ in conflicts}):
                lines.append(f"conflicts with {printed}:")
                lines += [f"- {path_string(path)}" for manager, path in conflicts if manager.printed() == printed]
            message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
        super().__init__(409, "Conflict", message, {"causes": causes})


def apply(rt: ResourceType, live: Obj | None, config: Obj, manager: str, force: bool, now: str,
          subresource: str = "") -> Obj:
    """The object after ``manager`` applies ``config`` to ``live`` (None: the object is created), with its
    managedFields; raises ApplyConflict for fields another manager owns with another value unless forced.
    Through ``/status`` only the configuration's status counts."""
    model = apischema.model_for_kind(rt.group, rt.version, rt.kind) or DEDUCED
    if subresource == "status":
        config = {"status": config["status"]} if "status" in config else {}
    base = clone(live) if live else {}
    merged = merge(base, config, model)
    managers = managers_of(live)
    if live and not managers:  # the first apply to an untracked object: its fields are someone else's
        managers = managers_of({"metadata": {"managedFields": record_update(rt, None, live, BEFORE_FIRST_APPLY, now)}})
    identity = (manager, APPLY, "", subresource)
    previous = _take(managers, identity)
    applied = set(field_values(rt, config, subresource))
    owned_by_others = set().union(*(m.fields for m in managers)) if managers else set()
    if previous is not None:
        keep = applied | owned_by_others
        present = field_values(rt, merged, subresource)
        remove_paths(merged, [path for path in previous.fields - keep if path in present
                              and not any(p[: len(path)] == path for p in keep if len(p) > len(path))])
    before = field_values(rt, live, subresource) if live else {}
    changed, removed = _compare(before, field_values(rt, merged, subresource))
    conflicts = [(other, path) for other in managers for path in sorted(other.fields & changed)]
    if conflicts and not force:
        allowed = _unchanged_since_client_side_apply(rt, live) if manager == KUBECTL else set()
        remaining = [(other, path) for other, path in conflicts if path not in allowed]
        if remaining:
            raise ApplyConflict(remaining)
    for other in managers:
        other.fields -= changed | removed
    annotations = (merged.get("metadata") or {}).get("annotations") or {}
    if manager == KUBECTL and LAST_APPLIED in annotations:  # lastAppliedUpdater keeps kubectl's annotation in step
        annotations[LAST_APPLIED] = last_applied(config)
    mine = Manager(manager, APPLY, str(config.get("apiVersion") or rt.api_version), subresource, now, applied)
    merged.setdefault("metadata", {})["managedFields"] = entries([*managers, mine])
    return merged


def last_applied(config: Obj) -> str:
    """The configuration as kubectl's last-applied annotation holds it: without that annotation, as Go encodes."""
    shown = clone(config)
    annotations = (shown.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    text = json.dumps(shown, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _unchanged_since_client_side_apply(rt: ResourceType, live: Obj | None) -> set[Path]:
    """lastAppliedManager: the fields of kubectl's last client-side apply that still hold the values it set,
    which kubectl's own server-side apply may take over without a conflict."""
    text = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        configuration = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return set()
    if not isinstance(configuration, dict) or live is None:
        return set()
    current = field_values(rt, live)
    return {path for path, value in field_values(rt, configuration).items()
            if path in current and (value is _CONTAINER or current[path] is _CONTAINER or current[path] == value)}


def record_create(rt: ResourceType, obj: Obj, manager: str, now: str) -> list[Obj]:
    """A create's managedFields: the creator owns what it sent and the decoder's defaults (the handler records
    them before admission, so a mutating webhook's additions are nobody's)."""
    defaulted = clone(obj)
    defaults.apply_defaults(rt, defaulted)
    return record_update(rt, None, defaulted, manager, now)
