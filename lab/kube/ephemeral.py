"""Ephemeral containers: the ``pods/ephemeralcontainers`` subresource and the kubelet running them
(``kubectl debug POD --image=IMAGE [--target=C] [-it]``).

API (registry/core/pod ``EphemeralContainersREST``, validation ``ValidatePodEphemeralContainersUpdate``): GET
returns the Pod; PUT and PATCH (kubectl sends a strategic merge patch) may only *add* entries to
``spec.ephemeralContainers``: every other change to the pod is ignored, an existing ephemeral container may not
be changed or removed, a new one needs a unique name and an image, ``targetContainerName`` must name one of the
pod's containers, and the fields an ephemeral container cannot have (ports, probes, lifecycle, resources)
are refused; a strategic merge patch naming an existing one merges into it, which is a change.
Authorization asks ``get``/``update``/``patch`` on ``pods/ephemeralcontainers``.

Kubelet (:func:`sync`): a new ephemeral container of a running pod is pulled and started like any container
(restart policy Never) and reported in ``status.ephemeralContainerStatuses``; ``kubectl attach`` and
``exec`` reach it (:mod:`lab.kube.podstreams`). Emulation details: it runs in a sandbox of its own made from
its own spec (its env and volumeMounts, not the target's), with the pod's services reachable through its own
network relay; lab pods have no PID namespaces, so ``--target`` is accepted and recorded but does not make
the target's processes the debug container's ``/proc/1``.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.kube import codec, defaults, errors
from lab.kube.authz import Attributes, require

if TYPE_CHECKING:
    from lab.kube.cluster import KubeUser
    from lab.kube.kubelet import PodWorker
    from lab.runtime import Lab

Obj = dict[str, Any]

SUBRESOURCE = "ephemeralcontainers"
FIELD = "spec.ephemeralContainers"
# fields of a Container an EphemeralContainer may not set (validation.go validateEphemeralContainers)
DISALLOWED = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources",
              "resizePolicy")
VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch"}


# ---------------------------------------------------------------- API


async def serve(lab: Lab, request: web.Request, user: KubeUser, rt: Any, namespace: str,
                name: str) -> web.Response:
    from lab.kube.apiserver import apply_patch, json_response, method_not_allowed

    verb = VERBS.get(request.method)
    if verb is None:
        raise method_not_allowed()
    require(lab.kube, user, Attributes(verb=verb, resource="pods", group="", namespace=namespace, name=name,
                                       subresource=SUBRESOURCE))
    store = lab.kube.store
    current = store.get(rt, namespace, name)
    if verb == "get":
        return json_response(current)
    if verb == "update":
        new = codec.decode_object(await request.read(), request.headers.get("Content-Type"))
    else:
        media = codec.media_type(request.headers.get("Content-Type"))
        if media not in codec.PATCH_TYPES or media == codec.APPLY_PATCH:
            raise errors.ApiError(415, "UnsupportedMediaType",
                                  f"the body of the request was in an unknown format - accepted media types "
                                  f"include: {', '.join(t for t in codec.PATCH_TYPES if t != codec.APPLY_PATCH)}")
        new = apply_patch(rt, current, codec.decode_patch(await request.read(), media), media)
    if not isinstance(new, dict):
        raise errors.bad_request("the patch produced something that is not an object")
    obj = with_ephemeral_containers(current, new)
    if request.query.get("dryRun") == "All":
        return json_response(obj)
    return json_response(store.replace(rt, obj))


def with_ephemeral_containers(current: Obj, new: Obj) -> Obj:
    """``current`` with the ephemeral containers of ``new``, after the checks of an ephemeral-containers update."""
    name = current["metadata"]["name"]
    old_list = (current.get("spec") or {}).get("ephemeralContainers") or []
    new_list = (new.get("spec") or {}).get("ephemeralContainers") or []
    if not isinstance(new_list, list) or not all(isinstance(c, dict) for c in new_list):
        raise errors.bad_request(f"{FIELD} must be a list of objects")
    causes: list[tuple[str, str, str]] = []
    spec = current.get("spec") or {}
    regular = [c.get("name") for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]]
    old_by_name = {c.get("name"): c for c in old_list}
    seen = set(regular)
    defaulted = []
    for index, container in enumerate(new_list):
        path = f"{FIELD}[{index}]"
        container = copy.deepcopy(container)
        cname = container.get("name")
        if cname in old_by_name:
            defaulted.append(container)
            seen.add(cname)
            continue
        _default(container)
        defaulted.append(container)
        if not cname:
            causes.append(("FieldValueRequired", f"{path}.name", "Required value"))
        elif cname in seen:
            causes.append(("FieldValueDuplicate", f"{path}.name", f'Duplicate value: "{cname}"'))
        seen.add(cname)
        if not container.get("image"):
            causes.append(("FieldValueRequired", f"{path}.image", "Required value"))
        target = container.get("targetContainerName")
        if target and target not in regular:
            causes.append(("FieldValueNotFound", f"{path}.targetContainerName", f'Not found: "{target}"'))
        for field in DISALLOWED:
            if container.get(field):
                causes.append(("FieldValueForbidden", f"{path}.{field}",
                               "Forbidden: cannot be set for an Ephemeral Container"))
    new_names = [c.get("name") for c in defaulted]
    for old in old_list:
        oname = old.get("name")
        if oname not in new_names:
            causes.append(("FieldValueForbidden", FIELD,
                           f'Forbidden: existing ephemeral containers "{oname}" may not be removed\n'))
        elif defaulted[new_names.index(oname)] != old:
            # upstream appends a go-cmp diff of the two containers, which is not reproduced here
            causes.append(("FieldValueForbidden", f"{FIELD}[{oname}]",
                           f'Forbidden: existing ephemeral containers "{oname}" may not be changed\n'))
    if causes:
        raise errors.invalid("Pod", "", name, causes)
    obj = copy.deepcopy(current)
    obj.setdefault("spec", {})["ephemeralContainers"] = defaulted
    return obj


def _default(container: Obj) -> None:
    """The API server's defaults for a container (SetDefaults_Container), which ephemeral ones get too."""
    defaults._container_defaults(container)


# ---------------------------------------------------------------- kubelet


def sync(worker: PodWorker, pod: Obj) -> None:
    """Start the ephemeral containers the pod has gained (called on every change of a pod the kubelet runs)."""
    from lab.kube.kubelet import ContainerState, spawn

    if worker.terminated or worker.forced_phase is not None or not worker.began:
        return
    known = {cs.name for cs in worker.ephemeral_states}
    for container in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        if container.get("name") in known:
            continue
        cs = ContainerState(container, False, {"waiting": {"reason": "ContainerCreating"}}, ephemeral=True)
        worker.ephemeral_states.append(cs)
        worker.container_tasks.append(spawn(_run(worker, cs), name=f"ephemeral {worker.name}/{cs.name}"))


async def _run(worker: PodWorker, cs: Any) -> None:
    await worker.run_container(cs, "Never", asyncio.Event())
