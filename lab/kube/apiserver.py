"""The lab's Kubernetes API server (aiohttp): what kubectl and the official Python client talk to, unchanged.

Request flow: error middleware (ApiError -> Status, anything else -> 500 InternalError Status) ->
fault middleware (injected 429/503) -> authentication -> routing (health, /version, discovery, OpenAPI,
or a resource path) -> authorization -> the verb's handler. Resource handlers run the API server's own
pipeline: decode (JSON, YAML, kubectl protobuf) -> defaults -> validation -> admission -> store.

See /work/shared/reference/kubectl-and-client-wire.md for the client behaviour this follows.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab import bodies
from lab.clock import rfc3339
from lab.faults import fault_middleware
from lab.kube import (
    admission,
    codec,
    crdschema,
    defaults,
    discovery,
    ephemeral,
    errors,
    events_v1,
    eviction,
    fieldvalidation,
    gotypes,
    impersonation,
    issuer,
    managedfields,
    metrics,
    podstreams,
    reviews,
    streams,
    tables,
    validation,
    webhook,
)
from lab.kube.authz import Attributes, authenticate, require
from lab.kube.cluster import KubeUser
from lab.kube.controllers import install_controllers
from lab.kube.deletion import delete_or_mark, finalized, mark_deleted
from lab.kube.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from lab.kube.resources import (
    CRD_TYPE,
    NAMESPACE_TYPE,
    REVIEW_RESOURCES,
    check_field_selector,
    ensure_builtin_types,
    is_builtin,
    printer_columns,
    served_versions,
)
from lab.kube.store import Obj, ResourceType, Store, clone

if TYPE_CHECKING:
    from lab.runtime import Lab

log = logging.getLogger("lab.kube.apiserver")

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's request size limit
CORE_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
NOT_FOUND_MESSAGE = "the server could not find the requested resource"
SERVER_MANAGED_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "generation",
)
# Built-in types whose DELETE answers with the object (the Python client parses it as that type).
RETURN_OBJECT_ON_DELETE = {
    ("", "pods"),
    ("", "serviceaccounts"),
    ("", "services"),
    ("", "namespaces"),
    ("", "resourcequotas"),
    CRD_TYPE.group_resource,
}
SUBRESOURCE_VERBS = {"status": {"get", "update", "patch"}, "log": {"get"}, "token": {"create"},
                     "scale": {"get", "update", "patch"}}
SCALABLE = {("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets")}


def resource_not_found() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", NOT_FOUND_MESSAGE, {})


def method_not_allowed() -> errors.ApiError:
    return errors.ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


def is_true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


# ---------------------------------------------------------------- responses


def _warning_header(text: str) -> str:
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def json_response(body: Any, status: int = 200, warnings: list[str] | tuple[str, ...] = ()) -> web.Response:
    response = errors.json_body_response(json.dumps(body, separators=(",", ":")), status)
    for warning in warnings:
        response.headers.add("Warning", _warning_header(warning))
    return response


def render_fault(status: int, retry_after: int) -> web.Response:
    if status == 429:
        body = errors.ApiError(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            {"retryAfterSeconds": retry_after},
        ).status()
        return errors.json_body_response(json.dumps(body), 429, {"Retry-After": str(retry_after)})
    body = errors.ApiError(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
        {"retryAfterSeconds": retry_after},
    ).status()
    return errors.json_body_response(json.dumps(body), 503, {"Retry-After": str(retry_after)})


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
):
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return exc.response()
    except web.HTTPRequestEntityTooLarge:
        # limitedReadBody (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go)
        return errors.ApiError(413, "RequestEntityTooLarge",
                               f"Request entity too large: limit is {MAX_BODY_BYTES}").response()
    except web.HTTPException as exc:
        reason = (exc.reason or "Error").replace(" ", "")
        return errors.ApiError(exc.status, reason, exc.text or exc.reason or reason).response()
    except Exception as exc:
        log.exception("kube API %s %s failed", request.method, request.path_qs)
        return errors.ApiError(
            500, "InternalError", f"Internal error occurred: {exc}", {"causes": [{"message": str(exc)}]}
        ).response()


# ---------------------------------------------------------------- request targets


@dataclass(frozen=True)
class Target:
    """A resource request: /api/v1[/namespaces/NS]/PLURAL[/NAME[/SUBRESOURCE]] (or /apis/G/V/...)."""

    rt: ResourceType
    version: str
    namespace: str | None  # None: cluster-scoped type, or a list/watch across namespaces
    name: str
    subresource: str
    watch_path: bool  # the deprecated /watch/ path prefix

    @property
    def namespace_or_empty(self) -> str:
        return self.namespace or ""

    @property
    def api_version(self) -> str:
        return f"{self.rt.group}/{self.version}" if self.rt.group else self.version


def parse_target(store: Store, group: str, version: str, rest: list[str]) -> Target:
    watch_path = bool(rest) and rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (group or rest[2] not in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise resource_not_found()
    rt = store.type_for(group, rest[0])
    if rt is None or version not in served_versions(store, rt):
        raise resource_not_found()
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if namespace is not None and not rt.namespaced:
        raise resource_not_found()
    if rt.namespaced and namespace is None and name:
        raise resource_not_found()
    if subresource and subresource not in rt.subresources:
        raise resource_not_found()
    return Target(rt, version, namespace, name, subresource, watch_path)


def path_attributes(method: str, group: str, rest: list[str], query: Any) -> Attributes:
    """The authorization question a resource path asks whether or not the resource exists: the API server's
    authorization filter runs before its routes, on the request info parsed from the path alone (apiserver
    pkg/endpoints/request/requestinfo.go, filters/authorization.go), so a caller without the right gets 403 for
    a resource that is not served, and 404 only once allowed (kubernetes/kubernetes#31798, #31753)."""
    parts = list(rest)
    watch = bool(parts) and parts[0] == "watch"
    parts = parts[1:] if watch else parts
    namespace = ""
    if len(parts) >= 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    name = parts[1] if len(parts) > 1 else ""
    if method == "GET":
        verb = "watch" if watch or is_true(query.get("watch")) else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return Attributes(verb=verb, resource=parts[0] if parts else "", group=group, namespace=namespace, name=name,
                      subresource=parts[2] if len(parts) > 2 else "")


def verb_for(method: str, target: Target, query: Any) -> str:
    if method == "GET":
        if target.watch_path or is_true(query.get("watch")):
            return "watch"
        return "get" if target.name else "list"
    if method == "POST":
        if target.name and target.subresource != "token":
            raise method_not_allowed()
        return "create"
    if method in ("PUT", "PATCH"):
        if not target.name:
            raise method_not_allowed()
        return "update" if method == "PUT" else "patch"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    raise method_not_allowed()


def attributes_for(verb: str, target: Target) -> Attributes:
    namespace = target.namespace_or_empty
    if target.rt.group_resource == NAMESPACE_TYPE.group_resource:
        namespace = target.name  # RBAC sees a namespace's own name as its namespace
    return Attributes(
        verb=verb,
        resource=target.rt.plural,
        group=target.rt.group,
        namespace=namespace,
        name=target.name,
        subresource=target.subresource,
    )


# ---------------------------------------------------------------- core objects


def ensure_core_objects(lab: Lab) -> None:
    """The namespaces every cluster has and the webhook add-on's objects (idempotent: scenarios may have
    created them already)."""
    store = lab.kube.store
    for name in CORE_NAMESPACES:
        ensure_namespace(store, name)
    for group, plural, namespace, obj in webhook.webhook_objects(lab.kube.webhook):
        rt = store.type_for(group, plural)
        if rt is None:
            continue
        if namespace:
            ensure_namespace(store, namespace)
        if store.find(rt, namespace, obj["metadata"]["name"]) is None:
            store.create(rt, obj, namespace=namespace or None)


def ensure_namespace(store: Store, name: str) -> None:
    if store.find(NAMESPACE_TYPE, "", name) is None:
        namespace = {"metadata": {"name": name}}
        defaults.namespace_defaults(namespace)
        store.create(NAMESPACE_TYPE, namespace)


# ---------------------------------------------------------------- the server


class ApiServer:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    @property
    def store(self) -> Store:
        return self.lab.kube.store

    # -- entry point
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        user = authenticate(request, self.lab.kube, reviews.default_audiences(self.lab))
        user = impersonation.impersonate(self.lab.kube, user, request.headers)
        if path in HEALTH_PATHS or any(path.startswith(p + "/") for p in HEALTH_PATHS):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return json_response(self.lab.kube.version)
        if path == "/.well-known/openid-configuration":
            # Service account issuer discovery (for authenticated users, as the default RBAC allows). AKS sets
            # --service-account-jwks-uri to its public issuer, so the document is the issuer's own.
            return json_response(issuer.api_server_discovery(self.lab))
        if path == "/openid/v1/jwks":
            return web.json_response(issuer.jwks_document(self.lab), content_type="application/jwk-set+json")
        if path.startswith("/openapi"):
            return self.openapi(path)
        parts = path.strip("/").split("/")
        if parts == ["api"]:
            return json_response(discovery.api_versions(request.host))
        if parts == ["apis"]:
            return json_response(discovery.api_group_list(self.store))
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) == 2:
            return self.group_document(parts[1])
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise resource_not_found()
        if not rest:
            resources = discovery.api_resource_list(self.store, group, version)
            if resources is None:
                raise resource_not_found()
            return json_response(resources)
        try:
            target = parse_target(self.store, group, version, rest)
        except errors.ApiError as exc:
            if exc.code == 404:  # who may not ask learns nothing of what exists
                require(self.lab.kube, user, path_attributes(request.method, group, rest, request.query))
            raise
        return await self.handle_resource(request, user, target)

    def group_document(self, group: str) -> web.Response:
        types = [rt for rt in self.store.types.values() if rt.group == group]
        if not group or not types:
            raise resource_not_found()
        return json_response(discovery.api_group(self.store, group, types))

    def openapi(self, path: str) -> web.Response:
        if path == "/openapi/v3":
            return json_response(discovery.openapi_v3_root(self.store))
        parts = path.split("/")[3:]
        document = None
        if parts[:1] == ["api"] and len(parts) == 2:
            document = discovery.openapi_v3_group_version(self.store, "", parts[1])
        elif parts[:1] == ["apis"] and len(parts) == 3:
            document = discovery.openapi_v3_group_version(self.store, parts[1], parts[2])
        if document is None or not path.startswith("/openapi/v3/"):
            raise resource_not_found()
        return json_response(document)

    async def handle_resource(
        self, request: web.Request, user: KubeUser, target: Target
    ) -> web.StreamResponse:
        if target.subresource in podstreams.SUBRESOURCES:
            return await podstreams.serve(self.lab, request, user, target.rt, target.namespace_or_empty,
                                          target.name, target.subresource)
        if target.subresource == ephemeral.SUBRESOURCE:
            return await ephemeral.serve(self.lab, request, user, target.rt, target.namespace_or_empty, target.name)
        if target.subresource == eviction.SUBRESOURCE:
            return await eviction.serve(self, request, user, target)
        if target.rt.group == metrics.GROUP:
            return await metrics.serve(self, request, user, target)
        if target.rt.group == events_v1.GROUP:
            return await events_v1.serve(self, request, user, target)
        verb = verb_for(request.method, target, request.query)
        if target.subresource and verb not in SUBRESOURCE_VERBS.get(target.subresource, set()):
            raise method_not_allowed()
        if target.rt.group_resource in REVIEW_RESOURCES:
            if verb != "create":
                raise method_not_allowed()
            return await self.review(request, user, target)
        require(self.lab.kube, user, attributes_for(verb, target))
        handler = {
            "get": self.get,
            "list": self.list,
            "watch": self.watch,
            "create": self.create,
            "update": self.update,
            "patch": self.patch,
            "delete": self.delete,
            "deletecollection": self.delete_collection,
        }[verb]
        return fieldvalidation.add_warnings(request, await handler(request, target))

    # -- reading
    def wants_table(self, request: web.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def table(
        self,
        request: web.Request,
        target: Target,
        objects: list[Obj],
        resource_version: str,
        list_metadata: dict[str, Any] | None = None,
    ) -> Obj:
        return tables.render_table(
            target.rt,
            objects,
            resource_version,
            printer_columns(self.store, target.rt),
            request.query.get("includeObject", "Metadata"),
            list_metadata,
        )

    async def get(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj = self.store.get(target.rt, target.namespace_or_empty, target.name)
        if target.subresource == "log":
            return await self.pod_log(request, target, obj)
        if target.subresource == "scale":
            return json_response(scale_of(target, obj))
        if self.wants_table(request):
            return json_response(self.table(request, target, [obj], obj["metadata"]["resourceVersion"]))
        return json_response(obj)

    async def list(self, request: web.Request, target: Target) -> web.Response:
        query = request.query
        check_field_selector(target.rt, query.get("fieldSelector"))
        table = self.wants_table(request)
        items, resource_version = self.store.list(
            target.rt, target.namespace, query.get("labelSelector"), query.get("fieldSelector"), shared=not table
        )
        items, metadata = paginate(items, query.get("limit"), query.get("continue"))
        if table:
            return json_response(self.table(request, target, items, resource_version, metadata))
        return json_response(
            {
                "kind": f"{target.rt.kind}List",
                "apiVersion": target.api_version,
                "metadata": {"resourceVersion": resource_version, **metadata},
                "items": items,
            }
        )

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        check_field_selector(target.rt, request.query.get("fieldSelector"))
        if self.wants_table(request):

            def render(obj: Obj) -> Obj:
                return self.table(request, target, [obj], obj.get("metadata", {}).get("resourceVersion", ""))
        else:

            def render(obj: Obj) -> Obj:
                return obj

        namespace = target.namespace
        if target.name:
            selector = request.query.get("fieldSelector")
            name_selector = f"metadata.name={target.name}"
            request = request.clone(
                rel_url=request.rel_url.update_query(
                    {"fieldSelector": f"{selector},{name_selector}" if selector else name_selector}
                )
            )
        return await streams.serve_watch(request, self.store, target.rt, namespace, render, self.lab.faults.watch)

    async def pod_log(self, request: web.Request, target: Target, pod: Obj) -> web.StreamResponse:
        log_request = streams.LogRequest.from_query(request.query, pod)
        key = (target.namespace_or_empty, target.name, log_request.container)

        def read_log() -> bytearray | None:
            return self.lab.kube.pod_logs.get(key)  # a ContainerLog: line times, the previous instance

        def read_pod() -> Obj | None:
            return self.store.find(target.rt, target.namespace_or_empty, target.name)

        return await streams.serve_log(request, pod, log_request, read_log, read_pod)

    # -- request bodies
    async def read_object(
        self, request: web.Request, target: Target, expected_kind: str, expected_api_version: str
    ) -> Obj:
        body = codec.decode_object(await request.read(), request.headers.get("Content-Type"))
        check_type_meta(self.store, target, body, expected_kind, expected_api_version)
        if expected_kind == target.rt.kind and target.rt.group_resource not in REVIEW_RESOURCES:
            await fieldvalidation.check_request_body(request, target.rt, target.version, body, self.store)
        return body

    # -- creating
    async def create(self, request: web.Request, target: Target) -> web.Response:
        if target.subresource == "token":
            return await self.token_request(request, target)
        body = await self.read_object(request, target, target.rt.kind, target.api_version)
        return self.create_object(request, target, body)

    def create_object(self, request: web.Request, target: Target, body: Obj,
                      managed: list[Obj] | None = None) -> web.Response:
        rt, namespace = target.rt, target.namespace_or_empty
        gotypes.check_object(rt, body)
        obj = prepare_for_create(rt, body, namespace)
        obj["metadata"]["managedFields"] = managed if managed is not None else managedfields.record_create(
            rt, obj, field_manager(request), now_rfc3339())
        if rt.namespaced:
            found = self.store.find(NAMESPACE_TYPE, "", namespace)
            if found is None:
                raise errors.not_found("namespaces", "", namespace)
            if (found.get("metadata") or {}).get("deletionTimestamp"):
                raise namespace_terminating(rt, obj, namespace)
        dry_run = is_true(request.query.get("dryRun")) or request.query.get("dryRun") == "All"
        obj, warnings = self.admit_create(rt, obj, namespace, dry_run)
        if dry_run:
            return json_response(dry_run_result(rt, obj, namespace), status=201, warnings=warnings)
        if self.store.find(rt, namespace, obj["metadata"]["name"]) is not None:
            raise errors.already_exists(rt.plural, rt.group, obj["metadata"]["name"])
        created = self.store.create(rt, obj, namespace=namespace or None)
        return json_response(created, status=201, warnings=warnings)

    def admit_create(
        self, rt: ResourceType, obj: Obj, namespace: str, dry_run: bool = False
    ) -> tuple[Obj, list[str]]:
        return admission.admit_create(self.lab, rt, obj, namespace, now_rfc3339(), dry_run=dry_run)

    async def token_request(self, request: web.Request, target: Target) -> web.Response:
        body = await self.read_object(request, target, "TokenRequest", "authentication.k8s.io/v1")
        gotypes.check_object(target.rt, body, gotypes.TOKEN_REQUEST)
        service_account = self.store.get(target.rt, target.namespace_or_empty, target.name)
        response, warnings = reviews.token_request(self.lab, target.namespace_or_empty, service_account, body)
        return json_response(response, status=201, warnings=warnings)

    async def review(self, request: web.Request, user: KubeUser, target: Target) -> web.Response:
        body = await self.read_object(request, target, target.rt.kind, target.api_version)
        plural = target.rt.plural
        gotypes.check_object(target.rt, body, gotypes.REVIEWS.get(plural))
        if plural == "selfsubjectaccessreviews":
            result = reviews.self_subject_access_review(self.lab, user, body)
        elif plural == "selfsubjectrulesreviews":
            result = reviews.self_subject_rules_review(self.lab, user, body)
        elif plural == "tokenreviews":
            result = reviews.token_review(self.lab, body)
        elif plural == "subjectaccessreviews":
            result = reviews.subject_access_review(self.lab, body)
        else:
            result = reviews.self_subject_review(user, body)
        return json_response(result, status=201)

    # -- updating
    async def update(self, request: web.Request, target: Target) -> web.Response:
        if target.subresource == "scale":
            body = await self.read_object(request, target, "Scale", "autoscaling/v1")
            return self.rescale(target, body, field_manager(request))
        body = await self.read_object(request, target, target.rt.kind, target.api_version)
        current = self.store.get(target.rt, target.namespace_or_empty, target.name)
        return self.update_object(request, target, current, body)

    def rescale(self, target: Target, scale: Obj, manager: str) -> web.Response:
        """The scale subresource (``kubectl scale``): only spec.replicas of the parent changes."""
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid("Scale", "autoscaling", target.name, [
                ("FieldValueInvalid", "spec.replicas",
                 f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0")])
        current = self.store.get(target.rt, target.namespace_or_empty, target.name)
        before = clone(current)
        current.setdefault("spec", {})["replicas"] = replicas
        current["metadata"]["managedFields"] = managedfields.record_update(
            target.rt, before, current, manager, now_rfc3339(), "scale")
        return json_response(scale_of(target, self.store.replace(target.rt, current, check_version=False)))

    def update_object(self, request: web.Request, target: Target, current: Obj, new: Obj,
                      managed: list[Obj] | None = None) -> web.Response:
        rt = target.rt
        gotypes.check_object(rt, new)
        check_identity(target, new)
        obj = prepare_for_update(rt, current, new, target.subresource)
        defaults.apply_defaults(rt, obj)
        obj["metadata"]["managedFields"] = managed if managed is not None else managedfields.record_update(
            rt, current, obj, field_manager(request), now_rfc3339(), target.subresource,
            (new.get("metadata") or {}).get("managedFields"))
        validation.validate_update(rt, current, obj, crdschema.schema_for(self.store, rt, obj))
        if rt.group_resource == CRD_TYPE.group_resource:
            obj["status"] = defaults.crd_established_status(obj, now_rfc3339())
        warnings: list[str] = []
        if rt.group_resource == NAMESPACE_TYPE.group_resource and not target.subresource:
            warnings = admission.namespace_pod_security(self.lab, obj, current)
        elif not target.subresource:
            warnings = admission.controller_pod_security(self.lab, rt, obj, target.namespace_or_empty)
        if is_true(request.query.get("dryRun")) or request.query.get("dryRun") == "All":
            return json_response(obj, warnings=warnings)
        if finalized(current, obj):  # the last finalizer gone: the delete completes
            return json_response(self.store.delete(rt, target.namespace_or_empty, target.name))
        return json_response(self.store.replace(rt, obj), warnings=warnings)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        media = codec.media_type(request.headers.get("Content-Type"))
        if media not in codec.PATCH_TYPES:
            raise errors.ApiError(415, "UnsupportedMediaType", unsupported_patch_message(target.rt))
        document = codec.decode_patch(await request.read(), media)
        managedfields.check_patch_options(request.query.get("fieldManager"), request.query.get("force"),
                                          media == codec.APPLY_PATCH)
        if media == codec.APPLY_PATCH and target.subresource != "scale":
            fieldvalidation.check_apply(target.rt, target.version, document, self.store)
        current = self.store.find(target.rt, target.namespace_or_empty, target.name)
        if current is None:
            if media == codec.APPLY_PATCH and not target.subresource:
                return self.server_side_apply_create(request, target, document)
            raise errors.not_found(target.rt.plural, target.rt.group, target.name)
        if target.subresource == "scale":
            scale = apply_patch(target.rt, scale_of(target, current), document, media)
            return self.rescale(target, scale, field_manager(request))
        if media == codec.APPLY_PATCH and target.subresource in ("", "status"):
            patched = managedfields.apply(target.rt, current, document, field_manager(request),
                                          is_true(request.query.get("force")), now_rfc3339(), target.subresource)
        else:
            patched = apply_patch(target.rt, current, document, media)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch produced something that is not an object")
        await fieldvalidation.check_request_patch(request, target.rt, target.version, media, patched, self.store)
        managed = patched["metadata"].get("managedFields") if media == codec.APPLY_PATCH else None
        return self.update_object(request, target, current, patched, managed)

    def server_side_apply_create(self, request: web.Request, target: Target, document: Obj) -> web.Response:
        check_type_meta(self.store, target, document, target.rt.kind, target.api_version)
        document.setdefault("metadata", {}).setdefault("name", target.name)
        check_identity(target, document)
        applied = managedfields.apply(target.rt, None, document, field_manager(request), True, now_rfc3339())
        return self.create_object(request, target, document, applied["metadata"]["managedFields"])

    # -- deleting
    async def delete(self, request: web.Request, target: Target) -> web.Response:
        raw = await request.read()
        options = codec.decode_object(raw, request.headers.get("Content-Type")) if raw.strip() else {}
        gotypes.check_delete_options(options)
        current = self.store.get(target.rt, target.namespace_or_empty, target.name)
        check_preconditions(target, current, options.get("preconditions") or {})
        dry_run = request.query.get("dryRun") == "All" or "All" in (options.get("dryRun") or [])
        if dry_run:
            deleted = current
        elif target.rt.group_resource == ("", "pods"):
            deleted = self.delete_pod(target, current, grace_period(request.query, options, current))
        elif target.rt.group_resource == NAMESPACE_TYPE.group_resource:
            # the namespace registry only marks it (phase Terminating); the namespace controller deletes its
            # content, then the namespace (lab.kube.controllers finalize_namespace)
            if not current["metadata"].get("deletionTimestamp"):
                current["metadata"]["deletionTimestamp"] = now_rfc3339()
                current["metadata"]["deletionGracePeriodSeconds"] = 0
                current["status"] = {**(current.get("status") or {}), "phase": "Terminating"}
                current = self.store.replace(target.rt, current, check_version=False)
            return json_response(current)
        elif current["metadata"].get("finalizers"):
            # an object with finalizers, built-in or custom, is only marked: the API server sets deletionTimestamp
            # and keeps it until its controllers remove the last finalizer (aad-pod-identity's
            # AzureAssignedIdentity, whose finalizer MIC removes: with MIC gone, kubectl delete waits for ever, its
            # Troubleshooting page; a ConfigMap or ServiceAccount alike: the generic registry's
            # updateForGracefulDeletionAndFinalizers, staging/src/k8s.io/apiserver/pkg/registry/generic/registry)
            return json_response(mark_deleted(self.store, target.rt, current))
        else:
            deleted = self.store.delete(target.rt, target.namespace_or_empty, target.name)
        return json_response(deletion_result(target.rt, deleted))

    def delete_pod(self, target: Target, pod: Obj, grace: int) -> Obj:
        """Graceful deletion: a pod running on the node gets deletionTimestamp and the kubelet finishes the
        delete once its containers are stopped; unscheduled or finished pods (or grace 0) go at once."""
        meta = pod["metadata"]
        scheduled = bool((pod.get("spec") or {}).get("nodeName"))
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if grace <= 0 or not scheduled or finished:
            if meta.get("finalizers"):  # kept, grace 0, until its finalizers go (even with --force)
                return mark_deleted(self.store, target.rt, pod)
            return self.store.delete(target.rt, target.namespace_or_empty, target.name)
        if meta.get("deletionTimestamp"):
            return pod
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = grace
        terminating = self.store.replace(target.rt, pod, check_version=False)
        if not terminating["metadata"].get(
            "deletionTimestamp"
        ):  # a store that ignored the change: delete now
            return self.store.delete(target.rt, target.namespace_or_empty, target.name)
        return terminating

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        query = request.query
        check_field_selector(target.rt, query.get("fieldSelector"))
        items, _ = self.store.list(
            target.rt, target.namespace, query.get("labelSelector"), query.get("fieldSelector")
        )
        # each item as its own DELETE would go: one with finalizers is marked and kept (the generic registry's
        # DeleteCollection deletes item by item)
        deleted = [
            found for item in items
            if (found := delete_or_mark(self.store, target.rt, item["metadata"].get("namespace", ""),
                                        item["metadata"]["name"])) is not None
        ]
        return json_response(
            {
                "kind": f"{target.rt.kind}List",
                "apiVersion": target.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            }
        )


# ---------------------------------------------------------------- pipeline helpers


def namespace_terminating(rt: ResourceType, obj: Obj, namespace: str) -> errors.ApiError:
    """The NamespaceLifecycle admission plugin's refusal (plugin/pkg/admission/namespace/lifecycle): 403 Forbidden
    with a NamespaceTerminating cause on metadata.namespace."""
    said = f"unable to create new content in namespace {namespace} because it is being terminated"
    name = (obj.get("metadata") or {}).get("name") or ""
    resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    named = f'{resource} "{name}"' if name else resource  # NewForbidden; a generateName object has none yet
    return errors.ApiError(403, "Forbidden", f"{named} is forbidden: {said}",
                           {"name": name, "group": rt.group, "kind": rt.plural,
                            "causes": [{"reason": "NamespaceTerminating", "message": said,
                                        "field": "metadata.namespace"}]})


def now_rfc3339() -> str:
    return rfc3339()


def field_manager(request: web.Request) -> str:
    return managedfields.manager_name(request.query.get("fieldManager"), request.headers.get("User-Agent"))


def check_type_meta(store: Store, target: Target, body: Obj, kind: str, api_version: str) -> None:
    sent_version, sent_kind = body.get("apiVersion"), body.get("kind")
    for field, value in (("apiVersion", sent_version), ("kind", sent_kind)):
        if value is not None and not isinstance(value, str):
            raise errors.bad_request(
                f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{codec.go_json_type(value)} into Go struct field .{field} of type string"
            )
    if sent_version and sent_version != api_version:
        group, _, version = sent_version.rpartition("/")
        same_group = group == target.rt.group and version in served_versions(store, target.rt)
        if not same_group or kind != target.rt.kind:
            raise errors.bad_request(
                f"the API version in the data ({sent_version}) does not match the expected "
                f"API version ({api_version})"
            )
    if sent_kind and sent_kind != kind:
        raise errors.bad_request(
            f"the kind in the data ({sent_kind}) does not match the expected kind ({kind})"
        )


def check_identity(target: Target, obj: Obj) -> None:
    meta = obj.get("metadata") or {}
    if meta.get("name") and meta["name"] != target.name:
        raise errors.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({target.name})"
        )
    if target.rt.namespaced and meta.get("namespace") and meta["namespace"] != target.namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )


def scale_of(target: Target, obj: Obj) -> Obj:
    """autoscaling/v1 Scale of a Deployment or ReplicaSet, as the API server renders it."""
    if target.rt.group_resource not in SCALABLE:
        raise resource_not_found()
    meta = obj["metadata"]
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if key in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": int((obj.get("status") or {}).get("replicas") or 0),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))},
    }


def prepare_for_create(rt: ResourceType, body: Obj, namespace: str) -> Obj:
    obj = clone(body)
    meta = obj.setdefault("metadata", {})
    if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    for field in SERVER_MANAGED_FIELDS:
        meta.pop(field, None)
    if "status" in rt.subresources and rt.group_resource != NAMESPACE_TYPE.group_resource:
        obj.pop("status", None)
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    if rt.namespaced:
        meta["namespace"] = namespace
    return obj


def prepare_for_update(rt: ResourceType, current: Obj, new: Obj, subresource: str) -> Obj:
    """The object to store: status changes only through /status, everything else only through the object."""
    if subresource == "status":
        obj = clone(current)
        obj["status"] = clone(new.get("status") or {})
        sent_version = (new.get("metadata") or {}).get("resourceVersion")
        if sent_version:
            obj["metadata"]["resourceVersion"] = sent_version
        return obj
    obj = clone(new)
    meta = obj.setdefault("metadata", {})
    current_meta = current["metadata"]
    meta["name"] = current_meta["name"]
    if rt.namespaced:
        meta["namespace"] = current_meta.get("namespace", "")
    for field in (
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
    ):
        if field in current_meta:
            meta[field] = current_meta[field]
        else:
            meta.pop(field, None)
    if "status" in rt.subresources:
        if "status" in current:
            obj["status"] = clone(current["status"])
        else:
            obj.pop("status", None)
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    return obj


def apply_patch(rt: ResourceType, current: Obj, document: Any, media: str) -> Any:
    try:
        if media == codec.MERGE_PATCH:
            return merge_patch(current, document)
        if media == codec.JSON_PATCH:
            return json_patch(current, document)
        if media == codec.STRATEGIC_MERGE_PATCH:
            if not is_builtin(rt):
                raise errors.ApiError(415, "UnsupportedMediaType", unsupported_patch_message(rt))
            return strategic_merge_patch(current, document)
        # server-side apply, approximated: merge the applied configuration into the live object
        return strategic_merge_patch(current, document) if is_builtin(rt) else merge_patch(current, document)
    except PatchError as exc:
        raise errors.ApiError(422, "Invalid", str(exc)) from exc


def unsupported_patch_message(rt: ResourceType) -> str:
    types = [codec.JSON_PATCH, codec.MERGE_PATCH, codec.APPLY_PATCH]
    if is_builtin(rt):
        types.append(codec.STRATEGIC_MERGE_PATCH)
    return (
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(types)}"
    )


def check_preconditions(target: Target, current: Obj, preconditions: dict[str, Any]) -> None:
    meta = current["metadata"]
    if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
        raise errors.conflict(
            target.rt.plural,
            target.rt.group,
            target.name,
            f"Precondition failed: UID in precondition: {preconditions['uid']}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get(
        "resourceVersion"
    ):
        raise errors.conflict(
            target.rt.plural,
            target.rt.group,
            target.name,
            f"Precondition failed: ResourceVersion in precondition: "
            f"{preconditions['resourceVersion']}, ResourceVersion in meta: "
            f"{meta.get('resourceVersion')}",
        )


def grace_period(query: Any, options: Obj, pod: Obj) -> int:
    value = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
    if value is None or value == "":
        value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise errors.bad_request(f"invalid gracePeriodSeconds: {value}") from exc


def deletion_result(rt: ResourceType, deleted: Obj) -> Obj:
    """The deleted object (for the types whose clients expect it), else a Success Status."""
    if rt.group_resource in RETURN_OBJECT_ON_DELETE or not is_builtin(rt):
        result = clone(deleted)
        result["metadata"].setdefault("deletionTimestamp", now_rfc3339())
        if rt.group_resource == ("", "pods"):
            result["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        if rt.group_resource == NAMESPACE_TYPE.group_resource:
            result.setdefault("status", {})["phase"] = "Terminating"
        return result
    meta = deleted["metadata"]
    details = {"name": meta["name"], "kind": rt.plural, "uid": meta.get("uid", "")}
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def dry_run_result(rt: ResourceType, obj: Obj, namespace: str) -> Obj:
    result = clone(obj)
    meta = result.setdefault("metadata", {})
    meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    meta["creationTimestamp"] = now_rfc3339()
    if rt.namespaced:
        meta["namespace"] = namespace
    return result


def paginate(items: list[Obj], limit: str | None, token: str | None) -> tuple[list[Obj], dict[str, Any]]:
    start = 0
    if token:
        try:
            start = int(bodies.bounded_loads(base64.urlsafe_b64decode(token.encode()))["start"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise errors.bad_request(f"continue key is not valid: {token}") from exc
    try:
        size = int(limit) if limit else 0
    except ValueError as exc:
        raise errors.bad_request(f"invalid limit: {limit}") from exc
    if size <= 0 or start + size >= len(items):
        return items[start:], {}
    end = start + size
    next_token = base64.urlsafe_b64encode(json.dumps({"start": end}).encode()).decode()
    return items[start:end], {"continue": next_token, "remainingItemCount": len(items) - end}


# ---------------------------------------------------------------- the application


def build_app(lab: Lab) -> web.Application:
    """The kube service: registers built-in types, core namespaces, webhook objects and controllers."""
    ensure_builtin_types(lab.kube.store)
    ensure_core_objects(lab)
    install_controllers(lab)
    server = ApiServer(lab)
    app = web.Application(
        middlewares=[error_middleware, fault_middleware(lab.faults, "kube", render_fault)],
        client_max_size=MAX_BODY_BYTES,
    )
    app[streams.STREAMS_KEY] = set()
    app.on_shutdown.append(streams.end_streams)
    app.router.add_route("*", "/{path:.*}", server.handle)
    return app
