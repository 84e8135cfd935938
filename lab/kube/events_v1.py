"""events.k8s.io/v1 Events: the same objects as core/v1 Events, in the newer shape.

Upstream stores one Event and converts between the two versions (pkg/apis/events/v1 conversion): ``regarding``
is ``involvedObject``, ``note`` is ``message``, ``reportingController`` is ``reportingComponent``,
``deprecatedSource``/``deprecatedFirstTimestamp``/``deprecatedLastTimestamp``/``deprecatedCount`` are
``source``/``firstTimestamp``/``lastTimestamp``/``count``. So an Event the kubelet records shows in both APIs, and one
created through either is listed by both. Creating through events.k8s.io/v1 requires what ValidateEventCreate
requires of that version: eventTime, reportingController, reportingInstance, action and reason.
get, list, watch, create, update, patch and delete are served.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from aiohttp import web

from lab.kube import codec, errors, streams
from lab.kube.authz import Attributes, require
from lab.kube.resources import core_type
from lab.kube.store import Obj

if TYPE_CHECKING:
    from lab.kube.apiserver import ApiServer, Target
    from lab.kube.cluster import KubeUser

GROUP = "events.k8s.io"
API_VERSION = f"{GROUP}/v1"
# events.k8s.io/v1 field -> core/v1 field
RENAMED = {"regarding": "involvedObject", "note": "message", "reportingController": "reportingComponent",
           "deprecatedSource": "source", "deprecatedFirstTimestamp": "firstTimestamp",
           "deprecatedLastTimestamp": "lastTimestamp", "deprecatedCount": "count"}
SAME = ("metadata", "eventTime", "series", "reportingInstance", "action", "reason", "related", "type")
REQUIRED = ("eventTime", "reportingController", "reportingInstance", "action", "reason")
VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


def to_v1(event: Obj) -> Obj:
    converted: Obj = {"kind": "Event", "apiVersion": API_VERSION}
    for field in SAME:
        if event.get(field) is not None:
            converted[field] = copy.deepcopy(event[field])
    for new, old in RENAMED.items():
        if event.get(old) not in (None, "", {}, 0):
            converted[new] = copy.deepcopy(event[old])
    return converted


def to_core(event: Obj) -> Obj:
    converted: Obj = {"kind": "Event", "apiVersion": "v1"}
    for field in SAME:
        if event.get(field) is not None:
            converted[field] = copy.deepcopy(event[field])
    for new, old in RENAMED.items():
        if event.get(new) is not None:
            converted[old] = copy.deepcopy(event[new])
    converted.setdefault("involvedObject", {})
    return converted


def _core_selector(selector: str | None) -> str | None:
    """A field selector on events.k8s.io names (regarding.name, reportingController) in core/v1's names."""
    if not selector:
        return selector
    for new, old in RENAMED.items():
        selector = selector.replace(f"{new}.", f"{old}.").replace(f"{new}=", f"{old}=").replace(f"{new}!", f"{old}!")
    return selector


def _validate(event: Obj, name: str) -> None:
    causes = [("FieldValueRequired", field, "Required value") for field in REQUIRED if not event.get(field)]
    if causes:
        raise errors.invalid("Event", GROUP, name, causes)


async def serve(api: ApiServer, request: web.Request, user: KubeUser, target: Target) -> web.StreamResponse:
    from lab.kube.apiserver import apply_patch, json_response, method_not_allowed, verb_for

    verb = verb_for(request.method, target, request.query)
    if verb not in VERBS:
        raise method_not_allowed()
    namespace = target.namespace
    require(api.lab.kube, user, Attributes(verb=verb, resource="events", group=GROUP,
                                           namespace=target.namespace_or_empty, name=target.name))
    store, core = api.store, core_type(api.store, "events")
    if verb == "get":
        return json_response(to_v1(store.get(core, target.namespace_or_empty, target.name)))
    if verb == "delete":
        deleted = store.delete(core, target.namespace_or_empty, target.name)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "details": {"name": deleted["metadata"]["name"], "group": GROUP, "kind": "events",
                                          "uid": deleted["metadata"]["uid"]}})
    if verb in ("update", "patch"):
        current = to_v1(store.get(core, target.namespace_or_empty, target.name))
        if verb == "update":
            new = codec.decode_object(await request.read(), request.headers.get("Content-Type"))
        else:
            media = codec.media_type(request.headers.get("Content-Type"))
            new = apply_patch(target.rt, current, codec.decode_patch(await request.read(), media), media)
        if not isinstance(new, dict):
            raise errors.bad_request("the patch produced something that is not an object")
        new["metadata"] = {**current["metadata"], **{k: v for k, v in (new.get("metadata") or {}).items()
                                                     if k in ("labels", "annotations")}}
        _validate(new, target.name)
        return json_response(to_v1(store.replace(core, to_core(new), check_version=False)))
    if verb == "create":
        body = codec.decode_object(await request.read(), request.headers.get("Content-Type"))
        name = (body.get("metadata") or {}).get("name") or (body.get("metadata") or {}).get("generateName", "")
        _validate(body, name)
        created = store.create(core, to_core(body), target.namespace_or_empty)
        return json_response(to_v1(created), status=201)
    selector = _core_selector(request.query.get("fieldSelector"))
    if verb == "watch":
        if selector != request.query.get("fieldSelector"):
            request = request.clone(rel_url=request.rel_url.update_query({"fieldSelector": selector}))
        return await streams.serve_watch(request, store, core, namespace, to_v1)
    items, version = store.list(core, namespace, request.query.get("labelSelector"), selector)
    return json_response({"kind": "EventList", "apiVersion": API_VERSION, "metadata": {"resourceVersion": version},
                          "items": [to_v1(item) for item in items]})
