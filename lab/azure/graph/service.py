"""The HTTP face of the lab's Microsoft Graph (graph.microsoft.com): routing, bearer tokens, permissions.

    GET|POST          /v1.0/applications                                  ($filter, $top, $select, $expand)
    GET|PATCH|DELETE  /v1.0/applications/{id}  and  /v1.0/applications(appId='{appId}')   ($select, $expand)
    GET|POST          /v1.0/applications/{id}/federatedIdentityCredentials         (and the appId form)
    GET|PATCH|DELETE  /v1.0/applications/{id}/federatedIdentityCredentials/{id or name}
    POST              /v1.0/applications/{id}/addPassword                 (a client secret, returned once)
    GET|POST          /v1.0/servicePrincipals                             ($filter incl. servicePrincipalNames/any)
    GET|DELETE        /v1.0/servicePrincipals/{id}  and  /v1.0/servicePrincipals(appId='{appId}')
    POST              /v1.0/directoryObjects/getByIds
    GET|POST          /v1.0/servicePrincipals/{id}/appRoleAssignments   (Microsoft Graph's app roles; DELETE .../{id})
    GET               /v1.0/directory/deletedItems/microsoft.graph.application|servicePrincipal   ($filter)
    GET|DELETE        /v1.0/directory/deletedItems/{id};  POST /v1.0/directory/deletedItems/{id}/restore

``/beta`` answers the same (older az versions send federated credential calls there). A token must be one the
lab's Entra issued for Microsoft Graph (``https://graph.microsoft.com``, its app id, or the lab's own Graph
address, which is how az asks: ``<cloud's Graph endpoint>/.default``); what it may do comes from the
application permissions in its ``roles`` claim, checked before existence, as Graph does. Not modelled:
delegated (user) tokens, Application.ReadWrite.OwnedBy (owners), users and groups.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from lab import bodies
from lab.azure.access_tokens import TokenRejected
from lab.azure.arm_context import decode_skip, encode_skip
from lab.azure.arm_errors import ArmError
from lab.azure.bearer import new_request_id, read_authorization
from lab.azure.graph import errors
from lab.azure.graph import render as shapes
from lab.azure.graph.directory import Directory, parse_filter, service_principal_names
from lab.azure.graph.errors import GraphError
from lab.azure.world import AppRegistration, AzureWorld, DeletedItem, FederatedCredential, Principal
from lab.faults import Faults, fault_middleware
from lab.unexpected import unexpected_error_middleware

log = logging.getLogger("lab.graph")

VERSIONS = ("v1.0", "beta")
CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
PAGE_SIZE = 100
MAX_TOP = 999
MAX_IDS = 1000

# Application permissions (app roles on Microsoft Graph) that allow each kind of operation.
READ_APPLICATIONS = frozenset({"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All",
                               "Directory.ReadWrite.All"})
WRITE_APPLICATIONS = frozenset({"Application.ReadWrite.All", "Directory.ReadWrite.All"})
READ_DIRECTORY_OBJECTS = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})
# Granting an app role (admin consent to an application permission): Graph's "Grant an appRoleAssignment to a service
# principal" names AppRoleAssignment.ReadWrite.All as the least privileged. unverified: whether
# Application.ReadWrite.All alone suffices (the lab says no)
WRITE_APP_ROLE_ASSIGNMENTS = frozenset({"AppRoleAssignment.ReadWrite.All", "Directory.ReadWrite.All"})

NAVIGATION_CREDENTIALS = "federatedIdentityCredentials"
_ALTERNATE_KEY = re.compile(r"^(applications|serviceprincipals)\(appId='([^']*)'\)$", re.IGNORECASE)

Verifier = Callable[[str | None], dict[str, Any]]


class GraphService:
    def __init__(self, world: AzureWorld, verify: Verifier, base_url: Callable[[], str], authority_host: str,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.world = world
        self.directory = Directory(world)
        self.verify = verify
        self.base_url = base_url
        self.authority_host = authority_host
        self.now = now

    # ------------------------------------------------------------------ envelope
    def respond(self, request: web.Request, status: int, body: dict[str, Any] | None,
                headers: dict[str, str] | None = None) -> web.Response:
        request_id = new_request_id()
        all_headers = {"request-id": request_id,
                       "client-request-id": request.headers.get("client-request-id") or request_id,
                       "OData-Version": "4.0", "Cache-Control": "no-cache", **(headers or {})}
        if body is None:
            return web.Response(status=status, headers=all_headers)
        all_headers["Content-Type"] = CONTENT_TYPE
        return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)

    def error(self, request: web.Request, err: GraphError) -> web.Response:
        request_id = new_request_id()
        client_request_id = request.headers.get("client-request-id") or request_id
        headers = {"request-id": request_id, "client-request-id": client_request_id, **err.headers,
                   "Content-Type": CONTENT_TYPE}
        body = err.body(request_id, client_request_id, self.now())
        return web.Response(status=err.status, body=json.dumps(body).encode(), headers=headers)

    def render_internal_error(self, request: web.Request) -> web.Response:
        return self.error(request, errors.internal_error())

    def render_fault(self, status: int, retry_after: int) -> web.Response:
        err = errors.throttled(retry_after) if status == 429 else errors.unavailable(retry_after)
        body = err.body(new_request_id(), new_request_id(), self.now())
        return web.Response(status=status, body=json.dumps(body).encode(),
                            headers={**err.headers, "Content-Type": CONTENT_TYPE})

    # ------------------------------------------------------------------ entry point
    async def handle(self, request: web.Request) -> web.Response:
        try:
            return await self._route(request)
        except GraphError as err:
            log.info("graph %s %s refused: %s %s", request.method, request.path, err.status, err.code)
            return self.error(request, err)

    def _caller_roles(self, request: web.Request) -> set[str]:
        header = read_authorization(request)
        if not header.present or header.token is None:
            raise errors.token_missing(self.authority_host)
        try:
            claims = self.verify(header.token)
        except TokenRejected as rejected:
            if rejected.reason == "audience":
                raise errors.token_wrong_audience(self.authority_host) from None
            if rejected.reason == "expired":
                raise errors.token_expired(self.authority_host) from None
            raise errors.token_invalid(self.authority_host) from None
        if str(claims.get("tid", "")).lower() != self.world.tenant_id.lower():
            raise errors.token_invalid(self.authority_host)
        roles = claims.get("roles") or []
        return {str(role) for role in roles} if isinstance(roles, list) else set()

    async def _route(self, request: web.Request) -> web.Response:
        segments = [s for s in request.path.split("/") if s]
        if not segments or segments[0] not in VERSIONS:
            raise errors.unknown_segment(segments[0] if segments else "")
        version, rest = segments[0], segments[1:]
        if not rest:
            raise errors.unknown_segment(version)
        roles = self._caller_roles(request)
        method = request.method.upper()
        head = rest[0].lower()
        alternate = _ALTERNATE_KEY.match(rest[0])
        if head == "applications" or (alternate and alternate.group(1).lower() == "applications"):
            return await self._applications(request, version, method, roles, rest, alternate)
        if head == "serviceprincipals" or (alternate and alternate.group(1).lower() == "serviceprincipals"):
            return await self._service_principals(request, version, method, roles, rest, alternate)
        if head == "directory" and len(rest) >= 2 and rest[1].lower() == "deleteditems":
            return await self._deleted_items(request, version, method, roles, rest[2:])
        if head == "directoryobjects" and len(rest) == 2 and rest[1].lower() == "getbyids":
            _only(method, "POST")
            _require(roles, READ_DIRECTORY_OBJECTS)
            return await self._get_by_ids(request, version)
        raise errors.unknown_segment(rest[0])

    # ------------------------------------------------------------------ applications
    async def _applications(self, request: web.Request, version: str, method: str, roles: set[str],
                            rest: list[str], alternate: re.Match[str] | None) -> web.Response:
        context = f"{self.base_url()}/{version}/$metadata#applications"
        if alternate is None and len(rest) == 1:
            if method == "GET":
                _require(roles, READ_APPLICATIONS)
                found = self.directory.find_applications(parse_filter(request.query.get("$filter"), False))
                return self._page(request, context, [self._shaped(request, a) for a in found])
            _only(method, "POST")
            _require(roles, WRITE_APPLICATIONS)
            app = self.directory.create_application(await _json_body(request))
            body = {"@odata.context": f"{context}/$entity", **self._application(app)}
            location = f"{self.base_url()}/{version}/directoryObjects/{app.object_id}/Microsoft.DirectoryServices.Application"
            return self.respond(request, 201, body, {"Location": location})
        _require(roles, READ_APPLICATIONS if method == "GET" else WRITE_APPLICATIONS)
        if alternate is not None:
            app, tail = self.directory.application(app_id=alternate.group(2)), rest[1:]
        else:
            app, tail = self.directory.application(object_id=rest[1]), rest[2:]
        if not tail:
            if method == "GET":
                return self.respond(request, 200, {"@odata.context": f"{context}/$entity",
                                                   **self._shaped(request, app)})
            if method == "PATCH":
                self.directory.update_application(app, await _json_body(request))
                return self.respond(request, 204, None)
            _only(method, "DELETE")
            self.directory.delete_application(app)
            return self.respond(request, 204, None)
        if tail[0].lower() == "addpassword" and len(tail) == 1:
            # application: addPassword (az ad sp create-for-rbac, az ad app credential reset): Graph makes the
            # secret and returns it once, in secretText ("If successful, this method returns a 200 OK response
            # code and a new passwordCredential object"; learn.microsoft.com, application: addPassword)
            _only(method, "POST")
            body = await _json_body(request)
            asked = body.get("passwordCredential") if isinstance(body.get("passwordCredential"), dict) else {}
            key_id, value = app.add_secret_with_id()
            log.info("graph: a client secret added to app %s", app.client_id)
            return self.respond(request, 200, {
                "@odata.context": f"{self.base_url()}/{version}/$metadata#microsoft.graph.passwordCredential",
                "customKeyIdentifier": None, "displayName": asked.get("displayName"),
                "endDateTime": asked.get("endDateTime"), "hint": value[:3], "keyId": key_id, "secretText": value,
                "startDateTime": asked.get("startDateTime") or shapes.timestamp(self.directory.clock()),
            })
        if tail[0].lower() != "federatedidentitycredentials" or len(tail) > 2:
            raise errors.unknown_segment(tail[0])
        return await self._credentials(request, version, method, app, tail[1] if len(tail) == 2 else None)

    def _application(self, app: AppRegistration) -> dict[str, Any]:
        tenant = self.world.tenants.get(self.world.tenant_id)
        return shapes.application(app, tenant.default_domain if tenant else f"{self.world.tenant_id}.onmicrosoft.com")

    def _shaped(self, request: web.Request, app: AppRegistration) -> dict[str, Any]:
        """An application as ``$select`` and ``$expand`` ask: only the selected properties, and the federated
        credentials inline when expanded (the one navigation property of an application the lab models; Graph
        documents it as supporting $expand). Unknown names are refused."""
        body = self._application(app)
        expand = _query_names(request.query.get("$expand"))
        select = _query_names(request.query.get("$select"))
        known = {name.lower(): name for name in body}
        for name in expand:
            if name.lower() != NAVIGATION_CREDENTIALS.lower():
                raise errors.unknown_property(name, "application")
        for name in select:
            if name.lower() not in known and name.lower() != NAVIGATION_CREDENTIALS.lower():
                raise errors.unknown_property(name, "application")
        if select:
            wanted = {name.lower() for name in select}
            body = {key: value for key, value in body.items() if key.lower() in wanted}
        if expand:
            credentials = self.directory.credentials(app)
            body[NAVIGATION_CREDENTIALS] = [shapes.federated_credential(f) for f in credentials]
        return body

    async def _credentials(self, request: web.Request, version: str, method: str, app: AppRegistration,
                           id_or_name: str | None) -> web.Response:
        context = (f"{self.base_url()}/{version}/$metadata#applications('{app.object_id}')"
                   "/federatedIdentityCredentials")
        if id_or_name is None:
            if method == "GET":
                items = [shapes.federated_credential(f) for f in self.directory.credentials(app)]
                return self._page(request, context, items)
            _only(method, "POST")
            fic = self.directory.add_credential(app, await _json_body(request))
            log.info("graph: federated credential %s added to app %s", fic.name, app.client_id)
            body = {"@odata.context": f"{context}/$entity", **shapes.federated_credential(fic)}
            return self.respond(request, 201, body,
                                {"Location": f"{self.base_url()}/{version}/federatedIdentityCredentials/{fic.credential_id}"})
        fic: FederatedCredential = self.directory.credential(app, id_or_name)
        if method == "GET":
            return self.respond(request, 200, {"@odata.context": f"{context}/$entity",
                                               **shapes.federated_credential(fic)})
        if method == "PATCH":
            self.directory.update_credential(app, fic, await _json_body(request))
            return self.respond(request, 204, None)
        _only(method, "DELETE")
        self.directory.delete_credential(app, fic)
        return self.respond(request, 204, None)

    # ------------------------------------------------------------------ service principals
    async def _service_principals(self, request: web.Request, version: str, method: str, roles: set[str],
                                  rest: list[str], alternate: re.Match[str] | None) -> web.Response:
        context = f"{self.base_url()}/{version}/$metadata#servicePrincipals"
        if alternate is None and len(rest) == 1:
            if method == "GET":
                _require(roles, READ_APPLICATIONS)
                found = self.directory.find_service_principals(parse_filter(request.query.get("$filter"), True))
                return self._page(request, context, [_service_principal(p) for p in found])
            _only(method, "POST")
            _require(roles, WRITE_APPLICATIONS)
            created = self.directory.create_service_principal(await _json_body(request))
            return self.respond(request, 201, {"@odata.context": f"{context}/$entity", **_service_principal(created)})
        writes_assignments = method != "GET" and len(rest) > (1 if alternate is not None else 2)
        _require(roles, READ_APPLICATIONS if method == "GET" else
                 WRITE_APP_ROLE_ASSIGNMENTS if writes_assignments else WRITE_APPLICATIONS)
        if alternate is not None:
            principal, tail = self.directory.service_principal(app_id=alternate.group(2)), rest[1:]
        else:
            principal, tail = self.directory.service_principal(object_id=rest[1]), rest[2:]
        if tail:
            if tail[0].lower() != "approleassignments" or len(tail) > 2:
                raise errors.unknown_segment(tail[0])
            return await self._app_role_assignments(request, version, method, roles, principal,
                                                    tail[1] if len(tail) == 2 else None)
        if method == "GET":
            return self.respond(request, 200, {"@odata.context": f"{context}/$entity", **_service_principal(principal)})
        if method == "PATCH":  # az ad sp update --set accountEnabled=...: the changed properties only
            self.directory.update_service_principal(principal, await _json_body(request))
            return self.respond(request, 204, None)
        _only(method, "DELETE")
        self.directory.delete_service_principal(principal)
        return self.respond(request, 204, None)

    # ------------------------------------------------------------------ app role assignments
    async def _app_role_assignments(self, request: web.Request, version: str, method: str, roles: set[str],
                                    principal: Principal, identifier: str | None) -> web.Response:
        """GET|POST /servicePrincipals/{id}/appRoleAssignments, DELETE .../appRoleAssignments/{id}: Microsoft
        Graph's application permissions granted to the principal (admin consent; the roles of its Graph tokens
        from its next token on)."""
        context = (f"{self.base_url()}/{version}/$metadata#servicePrincipals('{principal.principal_id}')"
                   "/appRoleAssignments")
        if identifier is None:
            if method == "GET":
                items = [self._assignment(principal, i, r) for i, r in self.directory.app_role_assignments(principal)]
                return self._page(request, context, items)
            _only(method, "POST")
            made = self.directory.assign_app_role(principal, await _json_body(request))
            log.info("graph: app role assignment %s made for %s", made, principal.client_id)
            role = next(r for i, r in self.directory.app_role_assignments(principal) if i == made)
            return self.respond(request, 201, {"@odata.context": f"{context}/$entity",
                                               **self._assignment(principal, made, role)})
        _only(method, "DELETE")
        self.directory.unassign_app_role(principal, identifier)
        return self.respond(request, 204, None)

    def _assignment(self, principal: Principal, identifier: str, role: str) -> dict[str, Any]:
        graph = self.world.graph_service_principal
        return {"id": identifier, "deletedDateTime": None, "appRoleId": role,
                "createdDateTime": shapes.timestamp(principal.created_at),
                "principalDisplayName": principal.display_name, "principalId": principal.principal_id,
                "principalType": "ServicePrincipal", "resourceDisplayName": graph.display_name,
                "resourceId": graph.principal_id}

    # ------------------------------------------------------------------ deleted items
    async def _deleted_items(self, request: web.Request, version: str, method: str, roles: set[str],
                             rest: list[str]) -> web.Response:
        """GET /directory/deletedItems/microsoft.graph.application|servicePrincipal ($filter as their collections
        take it), GET|DELETE /directory/deletedItems/{id}, POST /directory/deletedItems/{id}/restore. Reading
        them needs what reading applications needs (Application.Read.All), restoring what writing needs."""
        context = f"{self.base_url()}/{version}/$metadata#directory/deletedItems"
        if not rest:
            raise errors.cast_required()
        cast = rest[0].lower()
        if cast in ("microsoft.graph.application", "microsoft.graph.serviceprincipal") and len(rest) == 1:
            _only(method, "GET")
            _require(roles, READ_APPLICATIONS)
            kind = "application" if cast.endswith("application") else "servicePrincipal"
            terms = parse_filter(request.query.get("$filter"), kind == "servicePrincipal")
            items = [self._deleted(i) for i in self.directory.deleted_items(kind, terms)]
            return self._page(request, f"{context}/{rest[0]}", items)
        if len(rest) == 1:
            _require(roles, READ_APPLICATIONS if method == "GET" else WRITE_APPLICATIONS)
            item = self.directory.deleted_item(rest[0])
            if method == "GET":
                return self.respond(request, 200, {"@odata.context": f"{context}/$entity", **self._deleted(item)})
            _only(method, "DELETE")
            self.directory.purge(item)
            return self.respond(request, 204, None)
        if len(rest) == 2 and rest[1].lower() == "restore":
            _only(method, "POST")
            _require(roles, WRITE_APPLICATIONS)
            item = self.directory.deleted_item(rest[0])
            self.directory.restore(item)
            log.info("graph: %s %s restored from deleted items", item.kind, item.object_id)
            if item.kind == "application":
                body = {"@odata.type": "#microsoft.graph.application", **self._application(item.app)}
            else:
                body = {"@odata.type": "#microsoft.graph.servicePrincipal", **_service_principal(item.app)}
            return self.respond(request, 200, {"@odata.context": f"{self.base_url()}/{version}/$metadata#"
                                                                 "directoryObjects/$entity", **body})
        raise errors.unknown_segment(rest[-1])

    def _deleted(self, item: DeletedItem) -> dict[str, Any]:
        """A deleted application or service principal as Graph lists it: the object, with its deletedDateTime."""
        if item.kind == "application":
            body = {"@odata.type": "#microsoft.graph.application", **self._application(item.app)}
        else:
            principal = replace(item.app, principal_id=item.object_id,
                                service_principal_enabled=item.service_principal_enabled)
            body = {"@odata.type": "#microsoft.graph.servicePrincipal", **_service_principal(principal)}
        body["deletedDateTime"] = shapes.timestamp(item.deleted_at)
        return body

    # ------------------------------------------------------------------ directory objects
    async def _get_by_ids(self, request: web.Request, version: str) -> web.Response:
        body = await _json_body(request)
        ids, types = body.get("ids"), body.get("types") or []
        if (not isinstance(ids, list) or not ids or len(ids) > MAX_IDS
                or not all(isinstance(i, str) for i in ids)):
            raise errors.invalid_property("ids", "directoryObject")
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise errors.invalid_property("types", "directoryObject")
        items = []
        for found in self.directory.get_by_ids(ids, types):
            if isinstance(found, tuple):
                items.append({"@odata.type": "#microsoft.graph.application", **self._application(found[1])})
            else:
                items.append({"@odata.type": "#microsoft.graph.servicePrincipal", **_service_principal(found)})
        context = f"{self.base_url()}/{version}/$metadata#directoryObjects"
        return self.respond(request, 200, {"@odata.context": context, "value": items})

    # ------------------------------------------------------------------ paging
    def _page(self, request: web.Request, context: str, items: list[dict[str, Any]]) -> web.Response:
        size = PAGE_SIZE
        if request.query.get("$top"):
            try:
                size = int(request.query["$top"])
            except ValueError:
                raise errors.invalid_property("$top", "query") from None
            if not 1 <= size <= MAX_TOP:
                raise errors.invalid_property("$top", "query")
        token = request.query.get("$skiptoken")
        try:
            offset = decode_skip(token) if token else 0
        except ArmError:  # the shared decoder speaks ARM; Graph answers in its own words
            raise errors.invalid_property("$skiptoken", "query") from None
        body: dict[str, Any] = {"@odata.context": context, "value": items[offset : offset + size]}
        if offset + size < len(items):
            body["@odata.nextLink"] = str(request.url.update_query({"$skiptoken": encode_skip(offset + size)}))
        return self.respond(request, 200, body)


def _query_names(value: str | None) -> list[str]:
    """``$select``/``$expand``: comma-separated property names."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _service_principal(principal: Principal) -> dict[str, Any]:
    return shapes.service_principal(principal, service_principal_names(principal))


def _require(roles: set[str], allowed: Iterable[str]) -> None:
    if not roles & set(allowed):
        raise errors.insufficient_privileges()


def _only(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise errors.method_not_allowed()


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, within the bounds every lab service keeps (lab.bodies)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.request_too_large() from None
    try:
        text = raw.decode("utf-8")
        too_deep = bodies.json_too_deep(text)
        if too_deep is not None:
            raise errors.invalid_body(f"The JSON is nested deeper than {bodies.MAX_NESTING_DEPTH} levels.")
        body = json.loads(text) if text.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid_body(str(exc)) from None
    if not isinstance(body, dict):
        raise errors.invalid_body("The request body must be a JSON object.")
    return body


GRAPH_SERVICE = web.AppKey("graph_service", GraphService)


def build_app(world: AzureWorld, verify: Verifier, base_url: Callable[[], str], authority_host: str,
              faults: Faults) -> web.Application:
    service = GraphService(world, verify, base_url, authority_host)
    app = web.Application(middlewares=[
        unexpected_error_middleware("graph", service.render_internal_error, (GraphError,)),
        fault_middleware(faults, "graph", service.render_fault),
    ], client_max_size=4 * 1024 * 1024)
    app[GRAPH_SERVICE] = service
    app.router.add_route("*", "/{tail:.*}", service.handle)
    return app
