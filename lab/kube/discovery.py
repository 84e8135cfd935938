"""Discovery documents, built from the store's registered types at request time (so a new CRD shows at once).

- ``/version``: KubeCluster.version (all nine VersionInfo fields)
- legacy discovery: ``/api`` (APIVersions), ``/apis`` (APIGroupList), ``/api/v1`` and ``/apis/<g>/<v>``
  (APIResourceList). The aggregated-discovery Accept is ignored on purpose: kubectl falls back to the
  legacy documents when the answer is plain ``application/json`` (kubectl-and-client-wire.md §2.3).
- ``/openapi/v3``: the documents that let ``kubectl apply`` validate (§3.2): per kind one ``patch``
  operation carrying its GVK and an operation-level ``fieldValidation`` parameter; and, for
  ``kubectl explain``, ``components.schemas`` of the built-in kinds and of custom resources whose CRD has a
  schema (lab.kube.openapi).
"""

from __future__ import annotations

import hashlib
from typing import Any

from lab.kube import openapi
from lab.kube.fieldvalidation import custom_resource_schema
from lab.kube.resources import SUBRESOURCES, all_groups, is_builtin, served_versions
from lab.kube.store import ResourceType, Store

OPENAPI_INFO = {"title": "Kubernetes", "version": "v1.32.6"}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_versions(store: Store, types: list[ResourceType]) -> list[str]:
    versions: list[str] = []
    for rt in types:
        for version in served_versions(store, rt):
            if version not in versions:
                versions.append(version)
    return versions


def api_group(store: Store, group: str, types: list[ResourceType]) -> dict[str, Any]:
    versions = _group_versions(store, types)
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
    }


def api_group_list(store: Store) -> dict[str, Any]:
    groups = [api_group(store, group, types) for group, types in all_groups(store).items() if group]
    for group in groups:
        del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def types_in_group_version(store: Store, group: str, version: str) -> list[ResourceType]:
    return [rt for rt in all_groups(store).get(group, []) if version in served_versions(store, rt)]


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular or rt.kind.lower(),
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        "storageVersionHash": hashlib.sha256(f"{rt.group}/{rt.plural}".encode()).hexdigest()[:12],
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def _subresource_entry(rt: ResourceType, name: str) -> dict[str, Any]:
    info = SUBRESOURCES.get(name)
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{name}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": (info.kind if info and info.kind else rt.kind),
        "verbs": list(info.verbs if info else ("get",)),
    }
    if info and info.group is not None:
        entry["group"], entry["version"] = info.group, info.version
    return entry


def api_resource_list(store: Store, group: str, version: str) -> dict[str, Any] | None:
    """The APIResourceList of one group version, or None when nothing is served there."""
    types = types_in_group_version(store, group, version)
    if not types:
        return None
    resources = []
    for rt in types:
        resources.append(_resource_entry(rt))
        resources.extend(_subresource_entry(rt, name) for name in rt.subresources)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# ---------------------------------------------------------------- OpenAPI v3


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root(store: Store) -> dict[str, Any]:
    paths = {}
    for group, types in all_groups(store).items():
        for version in _group_versions(store, types):
            document = openapi_v3_group_version(store, group, version)
            if document is None:
                continue
            digest = hashlib.sha256(repr(sorted(document["paths"])).encode()).hexdigest()[:32].upper()
            paths[_gv_path(group, version)] = {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"
            }
    return {"paths": paths}


def _object_path(rt: ResourceType, version: str) -> str:
    prefix = f"/{_gv_path(rt.group, version)}"
    if rt.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
    return f"{prefix}/{rt.plural}/{{name}}"


def openapi_v3_group_version(store: Store, group: str, version: str) -> dict[str, Any] | None:
    types = [rt for rt in types_in_group_version(store, group, version) if "patch" in rt.verbs]
    # create-only kinds (the reviews) have a POST path only, as the API server publishes them
    posted = [rt for rt in types_in_group_version(store, group, version) if rt.verbs == ("create",)]
    if not types and not posted:
        return None
    paths = {
        _object_path(rt, version): {
            "patch": {
                "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
                "x-kubernetes-action": "patch",
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "fieldValidation instructs the server on how to handle objects "
                        "in the request containing unknown or duplicate fields.",
                    }
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
        for rt in types
    }
    for rt in posted:
        paths[f"/{_gv_path(rt.group, version)}/{rt.plural}"] = {"post": {
            "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
            "x-kubernetes-action": "post", "responses": {"201": {"description": "Created"}}}}
    served = types_in_group_version(store, group, version)
    kinds = [(rt.group, version, rt.kind) for rt in served if is_builtin(rt)]
    document: dict[str, Any] = {"openapi": "3.0.0", "info": OPENAPI_INFO, "paths": paths}
    schemas = dict(openapi.component_schemas(kinds))
    for rt in served:
        crd_schema = None if is_builtin(rt) else custom_resource_schema(store, rt, version)
        if crd_schema is not None:
            schemas.update(openapi.custom_resource_schemas(rt.group, version, rt.kind, crd_schema))
    if schemas:
        document["components"] = {"schemas": schemas}
    return document
