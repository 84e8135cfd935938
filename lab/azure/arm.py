"""Azure Resource Manager (management.azure.com) over the lab's world model.

Every request: bearer token (verify_access_token, ARM audiences) -> subscription and tenant ->
api-version -> role-based authorization (world.permits with the ARM action) -> existence -> the
operation. Errors use ARM's ``{"error":{"code","message"}}`` shape and texts (lab.azure.arm_errors);
every answer carries x-ms-request-id and x-ms-correlation-request-id.

Resource types: subscriptions, tenants, resource groups, managed clusters, user-assigned identities and
their federated identity credentials, role assignments and definitions at any scope, key vaults
(including accessPolicies/{add,replace,remove}) and storage accounts, in every subscription of the world;
plus ``/metadata/endpoints``. Settings (page size, federated-credential write latency) live in
``arm_state(lab).settings``. What every handler shares is in lab.azure.arm_context; the Microsoft.Authorization
provider is in lab.azure.arm_authorization; the generic resource list and Resource Graph are in
lab.azure.arm_resources.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.azure import arm_errors as errors
from lab.azure import arm_render as render
from lab.azure.access_tokens import TokenRejected, verify_access_token
from lab.azure.arm_authorization import authorization_provider
from lab.azure.arm_context import (
    Ctx,
    find_group,
    json_response,
    only,
    page,
    require_group,
    rg_scope,
    sub_scope,
)
from lab.azure.arm_errors import ARM_ALLOWED_AUDIENCES, ArmError
from lab.azure.arm_lifecycle import delete_group, move_resources, operation_result
from lab.azure.arm_resources import (
    list_generic_resources,
    render_tracked,
    resource_graph_query,
    visible_subscriptions,
)
from lab.azure.arm_state import arm_state
from lab.azure.bearer import dotnet_utc, new_request_id, read_authorization
from lab.azure.deleted_vaults import (
    delete_vault,
    deleted_vaults_route,
    recover_vault,
    refuse_name_in_deleted_state,
)
from lab.azure.rbac import (
    has_any_assignment_within,
)
from lab.azure.world import (
    FederatedCredential,
    ManagedCluster,
    ManagedIdentity,
    ResourceGroup,
    StorageAccount,
    Vault,
)
from lab.faults import fault_middleware
from lab.unexpected import unexpected_error_middleware

if TYPE_CHECKING:
    from lab.runtime import Lab

__all__ = ["build_app", "arm_state"]

FIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")
RESOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
FIC_FIELD_LIMIT = 600
WILDCARDS = ("*", "?")

NS_IDENTITY = "Microsoft.ManagedIdentity"
NS_CLUSTER = "Microsoft.ContainerService"
NS_VAULT = "Microsoft.KeyVault"
NS_STORAGE = "Microsoft.Storage"
TYPES = {  # (lower namespace, lower type) -> (namespace, type) as ARM spells them
    ("microsoft.managedidentity", "userassignedidentities"): (NS_IDENTITY, "userAssignedIdentities"),
    ("microsoft.containerservice", "managedclusters"): (NS_CLUSTER, "managedClusters"),
    ("microsoft.keyvault", "vaults"): (NS_VAULT, "vaults"),
    ("microsoft.storage", "storageaccounts"): (NS_STORAGE, "storageAccounts"),
}
A_SUBSCRIPTION_READ = "Microsoft.Resources/subscriptions/read"
A_RG = "Microsoft.Resources/subscriptions/resourceGroups/"
A_IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities/"
A_FIC = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/"
A_ASSIGNMENT = "Microsoft.Authorization/roleAssignments/"
A_VAULT = "Microsoft.KeyVault/vaults/"


# ---------------------------------------------------------------------------- app and envelope

LAB: web.AppKey[Any] = web.AppKey("lab", object)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("arm_request_id", str)  # set by the envelope


def build_app(lab: Lab) -> web.Application:
    app = web.Application(
        middlewares=[
            _envelope,
            unexpected_error_middleware("arm", _render_internal_error, (ArmError,)),
            fault_middleware(lab.faults, "arm", _render_fault),
        ],
        client_max_size=4 * 1024 * 1024,
    )
    app[LAB] = lab
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


def _render_internal_error(request: web.Request) -> web.Response:
    segments = request.path.split("/")
    subscription = segments[2] if len(segments) > 2 and segments[1].lower() == "subscriptions" else ""
    request_id = request[REQUEST_ID]
    correlation = request.headers.get("x-ms-correlation-request-id") or request_id
    error = errors.internal_error(subscription, request_id, correlation, time.time())
    return json_response(error.body(), status=error.status)


def _render_fault(status: int, retry_after: int) -> web.Response:
    error = errors.throttled() if status == 429 else errors.unavailable()
    return json_response(error.body(), status=status, headers={"Retry-After": str(retry_after)})


@web.middleware
async def _envelope(request: web.Request, handler: Any) -> web.StreamResponse:
    request_id = request[REQUEST_ID] = new_request_id()
    correlation = request.headers.get("x-ms-correlation-request-id") or request_id
    try:
        response = await handler(request)
    except ArmError as error:
        response = json_response(error.body(), status=error.status, headers=error.headers)
    response.headers["x-ms-request-id"] = request_id
    response.headers["x-ms-correlation-request-id"] = correlation
    response.headers["x-ms-routing-request-id"] = f"EASTUS:{request_id}"
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers.setdefault("Pragma", "no-cache")
    if request.headers.get("x-ms-client-request-id"):
        response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
    return response


def _authenticate(request: web.Request, lab: Lab, subscription_id: str | None) -> dict[str, Any]:
    world = lab.azure
    authority = f"{lab.authority_host}{world.tenant_id}" if subscription_id else lab.authority_host
    header = read_authorization(request)
    if not header.present:
        raise errors.authentication_missing(authority)
    if header.token is None:
        raise errors.authentication_bad_format(authority)
    try:
        claims = verify_access_token(lab, header.token, ARM_ALLOWED_AUDIENCES)
    except TokenRejected as rejected:
        if rejected.reason == "expired":
            expiry = float((rejected.claims or {}).get("exp", 0))
            raise errors.expired_token(
                authority, dotnet_utc(expiry), dotnet_utc(lab.entra_clock.now())
            ) from None
        if rejected.reason == "audience":
            raise errors.wrong_audience(authority, rejected.detail) from None
        if rejected.reason == "issuer" and subscription_id:
            issuer = str((rejected.claims or {}).get("iss", ""))
            raise errors.wrong_tenant(lab.authority_host, issuer, world.tenant_id) from None
        raise errors.invalid_token(authority) from None
    if subscription_id is not None:
        subscription = world.subscription(subscription_id)
        if subscription is None:
            raise errors.subscription_not_found(subscription_id)
        if str(claims.get("tid", "")).lower() != subscription.tenant_id.lower():
            raise errors.wrong_tenant(lab.authority_host, str(claims.get("iss", "")), subscription.tenant_id)
    return claims


# ---------------------------------------------------------------------------- dispatch


async def _dispatch(request: web.Request) -> web.StreamResponse:
    lab: Lab = request.app[LAB]
    segs = [s for s in request.path.split("/") if s]
    low = [s.lower() for s in segs]
    if low == ["metadata", "endpoints"]:
        return _metadata(request, lab)

    subscription_id = segs[1] if len(low) >= 2 and low[0] == "subscriptions" else None
    claims = _authenticate(request, lab, subscription_id)
    api_version = request.query.get("api-version", "")
    if not api_version:
        raise errors.missing_api_version()
    subscription = lab.azure.subscription(subscription_id) if subscription_id else None
    ctx = Ctx(request, lab, arm_state(lab), claims, api_version,
              subscription.subscription_id if subscription else "")
    method = request.method.upper()

    auth_at = _last_authorization_provider(low)
    if auth_at is not None:
        scope = "/" + "/".join(segs[:auth_at])
        return await authorization_provider(ctx, method, scope, segs[auth_at + 2 :])

    if low == ["subscriptions"]:
        only(method, "GET")
        return _list_subscriptions(ctx)
    if low == ["tenants"]:
        only(method, "GET")
        return page(ctx, [render.tenant(lab, str(claims.get("tid", "")))])
    if low == ["providers", "microsoft.resourcegraph", "resources"]:
        only(method, "POST")
        return await resource_graph_query(ctx)
    if not low or low[0] != "subscriptions":
        raise errors.no_route(request.path)
    if len(low) == 2:
        only(method, "GET")
        return _get_subscription(ctx)
    rest, rest_low = segs[2:], low[2:]
    if rest_low == ["resourcegroups"]:
        only(method, "GET")
        return _list_resource_groups(ctx)
    if rest_low == ["resources"]:
        only(method, "GET")
        return list_generic_resources(ctx, None)
    if rest_low[0] == "resourcegroups" and len(rest_low) == 3 and rest_low[2] == "resources":
        only(method, "GET")
        return list_generic_resources(ctx, rest[1])
    if rest_low[0] == "resourcegroups" and len(rest_low) == 2:
        return await _resource_group(ctx, method, rest[1])
    if rest_low[0] == "resourcegroups" and len(rest_low) == 3 and rest_low[2] == "moveresources":
        only(method, "POST")
        return await move_resources(ctx, rest[1])
    if rest_low[0] == "operationresults" and len(rest_low) == 2:
        only(method, "GET")
        return operation_result(ctx, rest[1])
    if rest_low == ["providers", "microsoft.storage", "checknameavailability"]:
        only(method, "POST")
        return await _storage_name_available(ctx)
    deleted = deleted_vaults_route(ctx, method, rest)
    if deleted is not None:
        return deleted
    if rest_low[0] == "providers" and len(rest_low) == 3:
        only(method, "GET")
        return _list_resources(ctx, _resource_type(ctx, rest[1], rest[2]), None)
    if rest_low[0] == "resourcegroups" and len(rest_low) >= 5 and rest_low[2] == "providers":
        rg_name, rtype = rest[1], _resource_type(ctx, rest[3], rest[4])
        tail = rest[5:]
        if not tail:
            only(method, "GET")
            return _list_resources(ctx, rtype, rg_name)
        return await _resource(ctx, method, rtype, rg_name, tail)
    raise errors.no_route(request.path)


def _last_authorization_provider(low: list[str]) -> int | None:
    for i in range(len(low) - 2, -1, -1):
        if low[i] == "providers" and low[i + 1] == "microsoft.authorization":
            return i
    return None


def _resource_type(ctx: Ctx, namespace: str, rtype: str) -> tuple[str, str]:
    known = TYPES.get((namespace.lower(), rtype.lower()))
    if known is None:
        raise errors.invalid_resource_type(rtype, namespace, ctx.api_version)
    return known


def _metadata(request: web.Request, lab: Lab) -> web.Response:
    version = request.query.get("api-version")
    if not version:
        return json_response(render.cloud_metadata_legacy(lab))
    document = render.cloud_metadata(lab)
    return json_response(document if version >= "2022-09-01" else [document])


# ---------------------------------------------------------------------------- subscriptions and groups


def _list_subscriptions(ctx: Ctx) -> web.Response:
    visible = visible_subscriptions(ctx.world, ctx.claims)
    return page(ctx, [render.subscription(sub) for sub in visible])


def _get_subscription(ctx: Ctx) -> web.Response:
    if not has_any_assignment_within(ctx.world, ctx.oid, sub_scope(ctx)):
        raise errors.authorization_failed(ctx.oid, A_SUBSCRIPTION_READ, ctx.display_scope)
    subscription = ctx.world.subscription(ctx.subscription_id)
    assert subscription is not None, "_authenticate refused unknown subscriptions"
    return json_response(render.subscription(subscription))


def _list_resource_groups(ctx: Ctx) -> web.Response:
    groups = sorted((g for g in ctx.world.resource_groups.values()
                     if g.subscription_id.lower() == ctx.subscription_id.lower()), key=lambda g: g.name.lower())
    visible = [g for g in groups if ctx.may(g.resource_id, A_RG + "read")]
    if not visible and not ctx.may(sub_scope(ctx), A_RG + "read"):
        ctx.authorize(sub_scope(ctx), A_RG + "read")
    return page(ctx, [render.resource_group(ctx.lab, g) for g in visible])


async def _resource_group(ctx: Ctx, method: str, name: str) -> web.Response:
    scope = rg_scope(ctx, name)
    if method == "GET":
        ctx.authorize(scope, A_RG + "read")
        return json_response(render.resource_group(ctx.lab, require_group(ctx, name)))
    if method == "PUT":
        ctx.authorize(scope, A_RG + "write")
        body = await ctx.body()
        location = _location(body)
        tags = _tags(body)
        group = find_group(ctx, name)
        if group is None:
            group = ctx.world.add_resource_group(name, location, subscription_id=ctx.subscription_id)
            group.tags = tags or {}
            return json_response(render.resource_group(ctx.lab, group), status=201)
        if location.replace(" ", "").lower() != group.location.replace(" ", "").lower():
            raise errors.invalid_location_change(group.name, group.location, group.name, location)
        if tags is not None:
            group.tags = tags
        return json_response(render.resource_group(ctx.lab, group))
    if method == "DELETE":
        return await delete_group(ctx, name)
    raise errors.method_not_allowed(method)


def _location(body: dict[str, Any]) -> str:
    location = body.get("location")
    if not location:
        raise errors.location_required()
    if not isinstance(location, str):
        raise errors.invalid_request_content(
            f"Error converting value {json.dumps(location)} to type 'System.String'. Path 'location'"
        )
    return location


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise errors.invalid_body("The 'properties' property must be an object.")
    return properties


def _tags(body: dict[str, Any]) -> dict[str, str] | None:
    """The body's ``tags`` as strings; None when the body has none."""
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict):
        raise errors.invalid_body("The 'tags' property must be an object.")
    return {str(k): str(v) for k, v in tags.items()}


# ---------------------------------------------------------------------------- tracked resources


def _lookup(ctx: Ctx, rtype: tuple[str, str], rg: str | None, name: str | None = None) -> list[Any]:
    """Resources of one type in the subscription (optionally one group, optionally one name)."""
    world = ctx.world
    kind = rtype[1]
    pool: list[Any]
    if kind == "userAssignedIdentities":
        pool = list(world.identities.values())
    elif kind == "managedClusters":
        pool = list(world.clusters.values())
    elif kind == "vaults":
        pool = list(world.vaults.values())
    else:
        pool = list(world.storage_accounts.values())
    found = []
    for item in pool:
        if item.subscription_id.lower() != ctx.subscription_id.lower():
            continue
        if rg is not None and item.resource_group.lower() != rg.lower():
            continue
        if name is not None and item.name.lower() != name.lower():
            continue
        found.append(item)
    found.sort(key=lambda r: (r.resource_group.lower(), r.name.lower()))
    return found


def _render_resource(ctx: Ctx, item: Any) -> dict[str, Any]:
    return render_tracked(ctx.lab, item)


def _action_prefix(rtype: tuple[str, str]) -> str:
    return f"{rtype[0]}/{rtype[1]}/"


def _list_resources(ctx: Ctx, rtype: tuple[str, str], rg: str | None) -> web.Response:
    read = _action_prefix(rtype) + "read"
    if rg is not None:
        ctx.authorize(rg_scope(ctx, rg), read)
        require_group(ctx, rg)
        items = _lookup(ctx, rtype, rg)
    else:
        # ARM filters subscription-wide collection reads down to what the caller may read.
        items = [i for i in _lookup(ctx, rtype, None) if ctx.may(i.resource_id, read)]
    return page(ctx, [_render_resource(ctx, i) for i in items])


def _one(ctx: Ctx, rtype: tuple[str, str], rg: str, name: str) -> Any | None:
    found = _lookup(ctx, rtype, rg, name)
    return found[0] if found else None


def _not_found(rtype: tuple[str, str], rg: str, name: str) -> ArmError:
    return errors.resource_not_found(f"{rtype[0]}/{rtype[1]}/{name}", rg)


async def _resource(ctx: Ctx, method: str, rtype: tuple[str, str], rg: str, tail: list[str]) -> web.Response:
    name = tail[0]
    scope = f"{rg_scope(ctx, rg)}/providers/{rtype[0]}/{rtype[1]}/{name}"
    prefix = _action_prefix(rtype)
    kind = rtype[1]
    if len(tail) > 1:
        child = tail[1].lower()
        if kind == "userAssignedIdentities" and child == "federatedidentitycredentials" and len(tail) <= 3:
            return await _federated_credentials(ctx, method, rg, name, tail[2] if len(tail) == 3 else None)
        if kind == "vaults" and child == "accesspolicies" and len(tail) == 3:
            return await _vault_access_policies(ctx, method, rg, name, tail[2], scope)
        if kind == "managedClusters" and child == "rotateserviceaccountsigningkeys" and len(tail) == 2:
            return _rotate_signing_keys(ctx, method, rtype, rg, name, scope)
        if kind == "managedClusters" and child in _CREDENTIAL_LISTS and len(tail) == 2:
            return _cluster_credentials(ctx, method, rtype, rg, name, scope, _CREDENTIAL_LISTS[child])
        if kind == "managedClusters" and child in ("stop", "start") and len(tail) == 2:
            return await _stop_or_start_cluster(ctx, method, rtype, rg, name, scope, child)
        if kind == "storageAccounts" and child == "blobservices" and len(tail) == 3 and tail[2].lower() == "default":
            return await _blob_service_properties(ctx, method, rg, name, scope)
        raise errors.invalid_resource_type(f"{rtype[1]}/{tail[1]}", rtype[0], ctx.api_version)

    if method == "GET":
        ctx.authorize(scope, prefix + "read")
        require_group(ctx, rg)
        item = _one(ctx, rtype, rg, name)
        if item is None:
            raise _not_found(rtype, rg, name)
        return json_response(_render_resource(ctx, item))
    if method in ("PUT", "PATCH"):
        ctx.authorize(scope, prefix + "write")
        group = require_group(ctx, rg)
        body = await ctx.body()
        item = _one(ctx, rtype, rg, name)
        if kind == "userAssignedIdentities" and method == "PUT":
            return _put_identity(ctx, group, name, item, body)
        if kind == "userAssignedIdentities":  # PATCH: tags only
            if item is None:
                raise _not_found(rtype, rg, name)
            tags = _tags(body)
            if tags is not None:
                item.tags = tags
            return json_response(render.identity(item))
        if kind == "managedClusters" and method == "PUT":
            return _put_cluster(ctx, rtype, rg, name, item, body)
        if kind == "vaults":
            return _put_vault(ctx, method, group, name, item, body)
        if kind == "storageAccounts":
            return _put_storage_account(ctx, method, group, name, item, body)
        raise errors.method_not_allowed(method)
    if method == "DELETE":
        ctx.authorize(scope, prefix + "delete")
        require_group(ctx, rg)
        item = _one(ctx, rtype, rg, name)
        if kind == "vaults":
            return delete_vault(ctx, item)
        if kind != "userAssignedIdentities":
            raise errors.method_not_allowed(method)
        if item is None:
            return web.Response(status=204)
        ctx.world.identities.pop(item.resource_id.lower(), None)
        ctx.state.fic_locks.pop(item.resource_id.lower(), None)
        return web.Response(status=200)
    raise errors.method_not_allowed(method)


# ---------------------------------------------------------------------------- identities


def _put_identity(
    ctx: Ctx, group: ResourceGroup, name: str, item: ManagedIdentity | None, body: dict[str, Any]
) -> web.Response:
    location = _location(body)
    tags = _tags(body)
    if item is None:
        if not RESOURCE_NAME.match(name):
            raise errors.invalid_resource_name(name)
        created = ctx.world.add_identity(name, group.name, location, subscription_id=group.subscription_id)
        created.tags = tags or {}
        return json_response(render.identity(created), status=201)
    if location.replace(" ", "").lower() != item.location.replace(" ", "").lower():
        raise errors.invalid_location_change(item.name, item.location, group.name, location)
    if tags is not None:
        item.tags = tags
    return json_response(render.identity(item))


def _find_identity(ctx: Ctx, rg: str, name: str) -> ManagedIdentity | None:
    return _one(ctx, TYPES[("microsoft.managedidentity", "userassignedidentities")], rg, name)


def _find_fic(mi: ManagedIdentity, name: str) -> tuple[str, FederatedCredential] | None:
    for key, fic in mi.federated_credentials.items():
        if key.lower() == name.lower():
            return key, fic
    return None


def _fic_parent(ctx: Ctx, scope: str, action: str, rg: str, identity_name: str) -> ManagedIdentity:
    """The identity whose federated credentials a request is about, once the caller may ``action`` on them."""
    ctx.authorize(scope, action)
    require_group(ctx, rg)
    mi = _find_identity(ctx, rg, identity_name)
    if mi is None:
        raise errors.fic_parent_missing()
    return mi


async def _federated_credentials(
    ctx: Ctx, method: str, rg: str, identity_name: str, fic_name: str | None
) -> web.Response:
    identity_scope = (
        f"{rg_scope(ctx, rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name}"
    )
    scope = f"{identity_scope}/federatedIdentityCredentials" + (f"/{fic_name}" if fic_name else "")
    if fic_name is None:
        only(method, "GET")
        mi = _fic_parent(ctx, scope, A_FIC + "read", rg, identity_name)
        fics = sorted(mi.federated_credentials.values(), key=lambda f: f.created_at)
        return page(ctx, [render.federated_credential(mi, f) for f in fics])

    if method == "GET":
        mi = _fic_parent(ctx, scope, A_FIC + "read", rg, identity_name)
        found = _find_fic(mi, fic_name)
        if found is None:
            fic_id = f"{A_IDENTITY}{identity_name}/federatedIdentityCredentials/{fic_name}"
            raise errors.resource_not_found(fic_id, rg)
        return json_response(render.federated_credential(mi, found[1]))
    if method == "PUT":
        mi = _fic_parent(ctx, scope, A_FIC + "write", rg, identity_name)
        issuer, subject, audiences, description = _validate_fic(fic_name, await ctx.body())
        async with _fic_write(ctx, mi):
            mi = _find_identity(ctx, rg, identity_name)
            if mi is None:
                raise errors.fic_parent_missing()
            existing = _find_fic(mi, fic_name)
            for other_key, other in mi.federated_credentials.items():
                if existing and other_key == existing[0]:
                    continue
                if other.issuer == issuer and other.subject == subject:
                    raise errors.fic_duplicate()
            if existing is None and len(mi.federated_credentials) >= ctx.state.settings.fic_limit:
                raise errors.fic_limit(ctx.state.settings.fic_limit)
            key = existing[0] if existing else fic_name
            fic = FederatedCredential(
                name=key, issuer=issuer, subject=subject, audiences=audiences, description=description
            )
            if existing:
                fic.first_created_at = existing[1].first_created_at or existing[1].created_at
            mi.federated_credentials[key] = fic
            return json_response(render.federated_credential(mi, fic), status=200 if existing else 201)
    if method == "DELETE":
        mi = _fic_parent(ctx, scope, A_FIC + "delete", rg, identity_name)
        async with _fic_write(ctx, mi):
            found = _find_fic(mi, fic_name)
            if found is None:
                return web.Response(status=204)
            del mi.federated_credentials[found[0]]
            return web.Response(status=200)
    raise errors.method_not_allowed(method)


class _fic_write:
    """Holds the identity's write lock for the configured latency; a second overlapping write gets 409."""

    def __init__(self, ctx: Ctx, mi: ManagedIdentity) -> None:
        self.ctx, self.mi = ctx, mi
        self.lock = ctx.state.fic_lock(mi.resource_id)

    async def __aenter__(self) -> None:
        if self.lock.locked():
            raise errors.fic_concurrent_write(self.mi.resource_id)
        await self.lock.acquire()
        latency = self.ctx.state.settings.fic_write_latency_seconds
        if latency > 0:
            try:
                await asyncio.sleep(latency)
            except BaseException:
                self.lock.release()
                raise

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()


def _validate_fic(name: str, body: dict[str, Any]) -> tuple[str, str, list[str], str]:
    properties = body.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise errors.fic_empty_properties()
    if not FIC_NAME.match(name):
        raise errors.fic_invalid_name(name)
    issuer, subject, audiences = (
        properties.get("issuer"),
        properties.get("subject"),
        properties.get("audiences"),
    )
    if not issuer or not subject or audiences is None:
        raise errors.fic_empty_properties()
    if not isinstance(issuer, str) or not isinstance(subject, str):
        raise errors.invalid_body("The properties 'issuer' and 'subject' must be strings.")
    if (
        not isinstance(audiences, list)
        or len(audiences) != 1
        or not isinstance(audiences[0], str)
        or not audiences[0]
    ):
        raise errors.fic_audience_count()
    description = properties.get("description") or ""
    for field_name, value in (
        ("issuer", issuer),
        ("subject", subject),
        ("audiences", audiences[0]),
        ("description", description),
    ):
        if len(value) > FIC_FIELD_LIMIT:
            raise errors.fic_invalid_value(field_name, f"must be at most {FIC_FIELD_LIMIT} characters long")
        if field_name != "description" and any(w in value for w in WILDCARDS):
            raise errors.fic_wildcard(field_name)
    if issuer != issuer.strip():
        raise errors.fic_invalid_value("issuer", "must not have leading or trailing whitespace")
    if not issuer.lower().startswith("https://"):
        raise errors.fic_invalid_value("issuer", "must be an https URL")
    return issuer, subject, [audiences[0]], str(description)


# ---------------------------------------------------------------------------- clusters, vaults


def _put_cluster(
    ctx: Ctx, rtype: tuple[str, str], rg: str, name: str, cluster: ManagedCluster | None, body: dict[str, Any]
) -> web.Response:
    if cluster is None:
        raise errors.ArmError(
            400,
            "BadRequest",
            "The lab does not create managed clusters through ARM; only existing clusters can be updated.",
        )
    if cluster.power_state == "Stopped":
        # a stopped cluster is started before it is changed (azure-docs#90658: "In a stopped state you can not
        # Update"); unverified: the error code and text
        raise errors.ArmError(409, "OperationNotAllowed", "Operation is not allowed: the managed cluster is in Power "
                              "State(Stopped); start it with az aks start first.")
    properties = _properties(body)
    oidc = properties.get("oidcIssuerProfile")
    if isinstance(oidc, dict) and "enabled" in oidc:
        if cluster.oidc_issuer_enabled and not oidc["enabled"]:
            # AKS's answer to turning it off (Terraform users' logs: 400 OIDCIssuerFeatureCannotBeDisabled); az has
            # no flag for it. A cluster without it is one made before it was enabled: lab ctl cluster --oidc-issuer
            raise errors.ArmError(400, "OIDCIssuerFeatureCannotBeDisabled", "OIDC issuer feature cannot be disabled.")
        cluster.oidc_issuer_enabled = bool(oidc["enabled"])
    security = properties.get("securityProfile")
    if (
        isinstance(security, dict)
        and isinstance(security.get("workloadIdentity"), dict)
        and "enabled" in security["workloadIdentity"]
    ):
        from lab.control import follow_workload_identity_addon

        enabled = bool(security["workloadIdentity"]["enabled"])
        follow_workload_identity_addon(ctx.lab, cluster.name, cluster.resource_group, enabled)
        cluster.workload_identity_enabled = enabled
    pod_identity = properties.get("podIdentityProfile")
    if isinstance(pod_identity, dict):
        _put_pod_identity_profile(cluster, pod_identity)
    if isinstance(properties.get("disableLocalAccounts"), bool):  # azure-cli update_disable_local_accounts
        cluster.disable_local_accounts = properties["disableLocalAccounts"]
    identity = body.get("identity")
    if isinstance(identity, dict):
        _put_cluster_identity(ctx, cluster, identity)
    cluster.modified_at = time.time()
    return json_response(render.managed_cluster(ctx.lab, cluster))


def _put_cluster_identity(ctx: Ctx, cluster: ManagedCluster, identity: dict[str, Any]) -> None:
    """The cluster's own (control plane) identity, as ``az aks update --enable-managed-identity [--assign-identity
    ID]`` sends it (azure-cli's update_identity: ``{"type": "SystemAssigned"}`` or ``{"type": "UserAssigned",
    "userAssignedIdentities": {ID: {}}}``) and AKS documents the change of type on an existing cluster. The REST
    spec's ManagedClusterIdentity: the keys are ARM ids of user-assigned identities, and only one is allowed.
    Not emulated: ARM's linked check of .../userAssignedIdentities/assign/action on the identity (the lab's
    callers that change a cluster are Owners), the node pools keeping the old identity until upgraded."""
    kind = str(identity.get("type") or "")
    if kind.lower() == "systemassigned":
        cluster.control_plane_identity = None
    elif kind.lower() == "userassigned":
        assigned = identity.get("userAssignedIdentities")
        if not isinstance(assigned, dict) or len(assigned) != 1:
            raise errors.invalid_request_content(  # [UNV] AKS's own text for a count other than one
                "Only one user assigned identity is allowed. Path 'identity.userAssignedIdentities'")
        (resource_id,) = assigned
        found = ctx.world.identities.get(str(resource_id).lower())
        if found is None:
            group = re.search(r"/resourcegroups/([^/]+)/", str(resource_id), re.IGNORECASE)
            raise errors.resource_not_found(  # [UNV] what AKS answers for an identity that is not there
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{str(resource_id).rsplit('/', 1)[-1]}",
                group.group(1) if group else "")
        cluster.control_plane_identity = found


_CREDENTIAL_LISTS = {"listclusterusercredential": ("listClusterUserCredential", "clusterUser"),
                     "listclusteradmincredential": ("listClusterAdminCredential", "clusterAdmin")}


def _cluster_credentials(ctx: Ctx, method: str, rtype: tuple[str, str], rg: str, name: str, scope: str,
                         which: tuple[str, str]) -> web.Response:
    """``az aks get-credentials [--admin]``: POST .../listClusterUserCredential | listClusterAdminCredential (the
    ManagedClusters REST spec: 200 CredentialResults ``{"kubeconfigs": [{"name": "clusterUser", "value": <base64
    kubeconfig>}]}``; az decodes kubeconfigs[0].value and merges it, the context named after the cluster). The
    kubeconfig is the lab's own (its API server, CA and token), its context and user named as AKS names them
    (CLUSTER; clusterUser_RG_CLUSTER). Only the lab's own cluster has an API server: another answers 404 as a
    cluster that is not there would. Not emulated: AAD clusters' exec-plugin kubeconfigs (--format)."""
    if method != "POST":
        raise errors.method_not_allowed(method)
    action, credential = which
    ctx.authorize(scope, _action_prefix(rtype) + f"{action}/action")
    require_group(ctx, rg)
    own = ctx.lab.extra.get("cluster") or {}
    cluster = _one(ctx, rtype, rg, name)
    if cluster is None or (name.lower(), rg.lower()) != (
            str(own.get("name")).lower(), str(own.get("resource_group")).lower()):
        raise _not_found(rtype, rg, name)
    if cluster.disable_local_accounts:
        # the text az prints for --admin (learn.microsoft.com/azure/aks/manage-local-accounts-managed-azure-ad:
        # "(BadRequest) Getting static credential is not allowed because this cluster is set to disable local
        # accounts."); the lab's clusters have no Entra integration, whose user credential is static too ("any
        # attempt to authenticate with user or admin credentials will fail"); unverified: the same text for the user
        raise errors.ArmError(400, "BadRequest", "Getting static credential is not allowed because this cluster is "
                              "set to disable local accounts.")
    import yaml

    from lab.statefiles import kubeconfig

    config = kubeconfig(ctx.lab)
    cluster_name = str(own.get("name"))
    user = f"{credential}_{own.get('resource_group')}_{cluster_name}"
    config["users"] = [{"name": user, "user": config["users"][0]["user"]}]
    config["contexts"] = [{"name": cluster_name, "context": {"cluster": config["clusters"][0]["name"], "user": user}}]
    config["current-context"] = cluster_name
    value = base64.b64encode(yaml.safe_dump(config, sort_keys=False).encode()).decode()
    return json_response({"kubeconfigs": [{"name": credential, "value": value}]})


async def _stop_or_start_cluster(ctx: Ctx, method: str, rtype: tuple[str, str], rg: str, name: str, scope: str,
                                 verb: str) -> web.Response:
    """``az aks stop`` / ``az aks start``: POST .../stop | .../start (the ManagedClusters REST spec: 202 with a
    Location, or 204; the lab is done at once: 204). Stopping removes the control plane and scales the node pools
    to zero (learn.microsoft.com/azure/aks/start-stop-cluster): ARM's powerState.code becomes Stopped and the lab's
    API server stops listening (connections refused; unverified: a real stopped cluster's FQDN may rather stop
    resolving). A second stop is refused as AKS refuses it (azure-docs#85161: "managed cluster is in Provisioning
    State(Succeeded) and Power State(Stopped), stopping cannot be performed"; the start's text by analogy,
    unverified, as is the code)."""
    if method != "POST":
        raise errors.method_not_allowed(method)
    ctx.authorize(scope, _action_prefix(rtype) + f"{verb}/action")
    require_group(ctx, rg)
    cluster = _one(ctx, rtype, rg, name)
    if cluster is None:
        raise _not_found(rtype, rg, name)
    wanted = "Stopped" if verb == "stop" else "Running"
    if cluster.power_state == wanted:
        doing = "stopping" if verb == "stop" else "starting"
        raise errors.ArmError(400, "OperationNotAllowed", f"managed cluster is in Provisioning State(Succeeded) and "
                              f"Power State({wanted}), {doing} cannot be performed")
    cluster.power_state = wanted
    own = ctx.lab.extra.get("cluster") or {}
    if (name.lower(), rg.lower()) == (str(own.get("name")).lower(), str(own.get("resource_group")).lower()):
        from lab.outage import set_down

        await set_down(ctx.lab, "kube", wanted == "Stopped")
    return web.Response(status=204)


def _rotate_signing_keys(ctx: Ctx, method: str, rtype: tuple[str, str], rg: str, name: str,
                         scope: str) -> web.Response:
    """``az aks oidc-issuer rotate-signing-keys``: POST .../rotateServiceAccountSigningKeys (the ManagedClusters
    REST spec answers 202 with a Location or 204; the lab is done at once: 204, which azure-core's poller takes as
    finished). AKS makes a new key pair and publishes it at the managed issuer, the old key published beside it
    for a while: a JWKS left stale (``lab ctl issuer --stale-jwks on``) is published afresh."""
    if method != "POST":
        raise errors.method_not_allowed(method)
    ctx.authorize(scope, _action_prefix(rtype) + "rotateServiceAccountSigningKeys/action")
    require_group(ctx, rg)
    if _one(ctx, rtype, rg, name) is None:
        raise _not_found(rtype, rg, name)
    own = ctx.lab.extra.get("cluster") or {}
    if (name.lower(), rg.lower()) == (str(own.get("name")).lower(), str(own.get("resource_group")).lower()):
        from lab.kube.issuer import rotate_issuer_keys, set_stale_jwks

        rotate_issuer_keys(ctx.lab)
        set_stale_jwks(ctx.lab, False)
    return web.Response(status=204)


def _put_pod_identity_profile(cluster: ManagedCluster, profile: dict[str, Any]) -> None:
    """podIdentityProfile as ``az aks pod-identity add|delete`` and ``az aks pod-identity exception add|delete``
    send it (aks-preview: GET the cluster, change the lists, PUT the whole cluster back) and as
    ``az aks update --disable-pod-identity`` sends it: ``{"enabled": false}`` alone, the CLI dropping the lists
    ("when disable, remove previous saved value"). That the RP then keeps no identity or exception is
    unverified."""
    lists = (
        ("userAssignedIdentities", "ManagedClusterPodIdentity", "pod_identities"),
        ("userAssignedIdentityExceptions", "ManagedClusterPodIdentityException", "pod_identity_exceptions"),
    )
    parsed: dict[str, list[dict[str, Any]]] = {}
    for key, model, attribute in lists:
        items = profile.get(key)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise errors.invalid_request_content(
                f"Error converting value to type '{model}'. Path 'properties.podIdentityProfile.{key}'"
            )
        parsed[attribute] = [dict(item) for item in items]
    if "enabled" in profile:
        cluster.pod_identity_enabled = bool(profile["enabled"])
    if not cluster.pod_identity_enabled:
        cluster.pod_identities, cluster.pod_identity_exceptions = [], []
        return
    for attribute, items in parsed.items():
        setattr(cluster, attribute, items)


_DEFAULT_ACTIONS = {"allow": "Allow", "deny": "Deny"}
_PUBLIC_ACCESS = {"enabled": "Enabled", "disabled": "Disabled"}
_TLS_VERSIONS = {v.lower(): v for v in ("TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3")}  # StorageRP MinimumTlsVersion


def _choice(value: Any, choices: dict[str, str], property_name: str) -> str:
    """An enum property, case-insensitively, as ARM spells it."""
    chosen = choices.get(str(value).lower())
    if chosen is None:
        allowed = " or ".join(f"'{c}'" for c in choices.values())
        raise errors.invalid_body(f"The value '{value}' of property '{property_name}' is invalid; use {allowed}.")
    return chosen


def _put_vault(
    ctx: Ctx, method: str, group: ResourceGroup, name: str, kv: Vault | None, body: dict[str, Any]
) -> web.Response:
    properties = _properties(body)
    created = False
    if kv is None and method == "PUT" and str(properties.get("createMode") or "").lower() == "recover":
        return json_response(render.vault(ctx.lab, recover_vault(ctx, group.subscription_id, group.name, name)))
    if kv is None:
        if method == "PATCH":
            raise _not_found(TYPES[("microsoft.keyvault", "vaults")], group.name, name)
        location = _location(body)
        refuse_name_in_deleted_state(ctx, name)
        if name.lower() in ctx.world.vaults:
            raise errors.ArmError(
                409,
                "VaultAlreadyExists",
                f"The vault name '{name}' is already in use. Vault names are globally unique "
                "so it is possible that the name is already taken.",
            )
        tenant_id = properties.get("tenantId")
        if not tenant_id or not properties.get("sku"):
            raise errors.invalid_body("The properties 'tenantId' and 'sku' are required to create a vault.")
        kv = Vault(
            name=name,
            subscription_id=group.subscription_id,
            resource_group=group.name,
            location=location,
            tenant_id=str(tenant_id),
        )
        ctx.world.vaults[name.lower()] = kv
        created = True
    extras = ctx.state.extras(kv.name)
    tags = _tags(body)
    if tags is not None:
        extras.tags = tags
    if "tenantId" in properties and properties["tenantId"]:
        kv.tenant_id = str(properties["tenantId"])
    if isinstance(properties.get("sku"), dict):
        extras.sku = {
            "family": str(properties["sku"].get("family", "A")),
            "name": str(properties["sku"].get("name", "standard")),
        }
    if "enableRbacAuthorization" in properties and properties["enableRbacAuthorization"] is not None:
        kv.enable_rbac_authorization = bool(properties["enableRbacAuthorization"])
    if "accessPolicies" in properties and properties["accessPolicies"] is not None:
        kv.access_policies = _validate_policies(properties["accessPolicies"])
    if "publicNetworkAccess" in properties and properties["publicNetworkAccess"] is not None:
        kv.public_network_access = _choice(properties["publicNetworkAccess"], _PUBLIC_ACCESS, "publicNetworkAccess")
    if "enablePurgeProtection" in properties and properties["enablePurgeProtection"] is not None:
        extras.enable_purge_protection = bool(properties["enablePurgeProtection"])
    acls = properties.get("networkAcls")
    if isinstance(acls, dict):
        if "defaultAction" in acls and acls["defaultAction"] is not None:
            kv.network_default_action = _choice(acls["defaultAction"], _DEFAULT_ACTIONS, "networkAcls.defaultAction")
        if acls.get("bypass"):
            extras.bypass = str(acls["bypass"])
        if isinstance(acls.get("ipRules"), list):
            kv.ip_rules = [str(r.get("value") if isinstance(r, dict) else r) for r in acls["ipRules"]]
        if isinstance(acls.get("virtualNetworkRules"), list):
            extras.virtual_network_rules = [
                dict(r) for r in acls["virtualNetworkRules"] if isinstance(r, dict)
            ]
    return json_response(render.vault(ctx.lab, kv), status=201 if created else 200)


async def _blob_service_properties(ctx: Ctx, method: str, rg: str, name: str, scope: str) -> web.Response:
    """``.../storageAccounts/NAME/blobServices/default`` (the Storage REST spec's BlobServices_GetServiceProperties
    and _SetServiceProperties): what ``az storage account blob-service-properties show|update`` GETs and PUTs back
    whole. The lab keeps deleteRetentionPolicy (blob soft delete) and renders the other policies as off."""
    if method not in ("GET", "PUT"):
        raise errors.method_not_allowed(method)
    action = "Microsoft.Storage/storageAccounts/blobServices/" + ("read" if method == "GET" else "write")
    ctx.authorize(f"{scope}/blobServices/default", action)
    require_group(ctx, rg)
    account = _one(ctx, TYPES[("microsoft.storage", "storageaccounts")], rg, name)
    if account is None:
        raise _not_found(TYPES[("microsoft.storage", "storageaccounts")], rg, name)
    if method == "PUT":
        body = await ctx.body()
        properties = body.get("properties") if isinstance(body, dict) else None
        policy = properties.get("deleteRetentionPolicy") if isinstance(properties, dict) else None
        if isinstance(policy, dict) and policy.get("enabled") is not None:
            days = policy.get("days")
            if policy["enabled"] and not (isinstance(days, int) and 1 <= days <= 365):
                # the spec bounds days to 1-365; unverified: ARM's exact code and text for a value outside them
                raise ArmError(400, "InvalidValuesForRequestParameters",
                               "Values for request parameters are invalid: deleteRetentionPolicy.days.")
            account.delete_retention_days = days if policy["enabled"] else None
    retention: dict[str, Any] = {"enabled": account.delete_retention_days is not None,
                                 "allowPermanentDelete": False}
    if account.delete_retention_days is not None:
        retention["days"] = account.delete_retention_days
    return json_response({
        "id": f"{account.resource_id}/blobServices/default", "name": "default",
        "type": "Microsoft.Storage/storageAccounts/blobServices",
        "properties": {"cors": {"corsRules": []}, "deleteRetentionPolicy": retention,
                       "containerDeleteRetentionPolicy": {"enabled": False}, "isVersioningEnabled": False,
                       "changeFeed": {"enabled": False}},
    })


_STORAGE_NAME = re.compile(r"^[a-z0-9]{3,24}$")


def _storage_name_invalid(name: str) -> str:
    return (f"{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters "
            "in length and use numbers and lower-case letters only.")


async def _storage_name_available(ctx: Ctx) -> web.Response:
    """``az storage account create`` asks first: POST /subscriptions/S/providers/Microsoft.Storage/
    checkNameAvailability {name, type} (the Storage REST spec's StorageAccounts_CheckNameAvailability: 200
    CheckNameAvailabilityResult {nameAvailable, reason AccountNameInvalid | AlreadyExists, message}). Names are
    global: an account of any subscription takes its name."""
    ctx.authorize(sub_scope(ctx), "Microsoft.Storage/checknameavailability/read")
    body = await ctx.body()
    name = str(body.get("name") or "") if isinstance(body, dict) else ""
    if not _STORAGE_NAME.match(name):
        return json_response({"nameAvailable": False, "reason": "AccountNameInvalid",
                              "message": _storage_name_invalid(name)})
    if name.lower() in ctx.world.storage_accounts:
        return json_response({"nameAvailable": False, "reason": "AlreadyExists",
                              "message": f"The storage account named {name} is already taken."})
    return json_response({"nameAvailable": True})


def _put_storage_account(
    ctx: Ctx,
    method: str,
    group: ResourceGroup,
    name: str,
    account: StorageAccount | None,
    body: dict[str, Any],
) -> web.Response:
    """Create (PUT) or update (PUT/PATCH) a storage account's network rules: properties.publicNetworkAccess
    and properties.networkAcls {defaultAction, bypass, ipRules [{value, action}], virtualNetworkRules}, the
    body ``az storage account update --default-action`` and ``az storage account network-rule add`` send (a
    GET, then the whole networkAcls back). Real ARM answers a new account's PUT 202 and the client polls; the
    lab creates it at once (200). Address-range checks on ipRules (no private ranges, no /31 or /32) are not
    emulated."""
    properties = _properties(body)
    if account is None:
        if method == "PATCH":
            raise _not_found(TYPES[("microsoft.storage", "storageaccounts")], group.name, name)
        location = _location(body)
        if not _STORAGE_NAME.match(name):
            raise errors.ArmError(400, "AccountNameInvalid",
                                  f"{name} is not a valid storage account name. Storage account name must "
                                  "be between 3 and 24 characters in length and use numbers and lower-case "
                                  "letters only.")
        if name.lower() in ctx.world.storage_accounts:
            raise errors.ArmError(409, "StorageAccountAlreadyTaken",
                                  f"The storage account named {name} is already taken.")
        account = StorageAccount(name=name, subscription_id=group.subscription_id, resource_group=group.name,
                                 location=location)
        ctx.world.storage_accounts[name.lower()] = account
    if properties.get("publicNetworkAccess") is not None:
        account.public_network_access = _choice(properties["publicNetworkAccess"], _PUBLIC_ACCESS,
                                                "publicNetworkAccess")
    if isinstance(properties.get("allowSharedKeyAccess"), bool):
        account.allow_shared_key_access = properties["allowSharedKeyAccess"]
    if properties.get("minimumTlsVersion") is not None:  # unverified whether ARM still takes TLS1_0/1_1
        account.minimum_tls_version = _choice(properties["minimumTlsVersion"], _TLS_VERSIONS, "minimumTlsVersion")
    acls = properties.get("networkAcls")
    if isinstance(acls, dict):
        if acls.get("defaultAction") is not None:
            account.network_default_action = _choice(acls["defaultAction"], _DEFAULT_ACTIONS,
                                                     "networkAcls.defaultAction")
        if acls.get("bypass"):
            account.network_bypass = str(acls["bypass"])
        if isinstance(acls.get("ipRules"), list):
            rules = [r for r in acls["ipRules"] if isinstance(r, dict) and r.get("value")]
            account.ip_rules = [str(r["value"]) for r in rules
                                if str(r.get("action", "Allow")).lower() == "allow"]
        if isinstance(acls.get("virtualNetworkRules"), list):
            account.virtual_network_rules = [dict(r) for r in acls["virtualNetworkRules"]
                                             if isinstance(r, dict)]
    return json_response(render.storage_account(ctx.lab, account))


def _validate_policies(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise errors.invalid_body("The 'accessPolicies' property must be an array.")
    policies = []
    for entry in value:
        if not isinstance(entry, dict) or not entry.get("objectId") or not entry.get("tenantId"):
            raise errors.invalid_body("Each access policy needs 'tenantId', 'objectId' and 'permissions'.")
        permissions = entry.get("permissions") or {}
        if not isinstance(permissions, dict):
            raise errors.invalid_body("The access policy 'permissions' must be an object.")
        clean: dict[str, Any] = {
            "tenantId": str(entry["tenantId"]),
            "objectId": str(entry["objectId"]),
            "permissions": {k: [str(p) for p in v] for k, v in permissions.items() if isinstance(v, list)},
        }
        if entry.get("applicationId"):
            clean["applicationId"] = str(entry["applicationId"])
        policies.append(clean)
    return policies


async def _vault_access_policies(
    ctx: Ctx, method: str, rg: str, name: str, kind: str, vault_scope: str
) -> web.Response:
    only(method, "PUT")
    kind_low = kind.lower()
    if kind_low not in ("add", "replace", "remove"):
        raise errors.invalid_body(f"The operation kind '{kind}' is invalid; use add, replace or remove.")
    ctx.authorize(f"{vault_scope}/accessPolicies/{kind}", A_VAULT + "accessPolicies/write")
    require_group(ctx, rg)
    kv = _one(ctx, TYPES[("microsoft.keyvault", "vaults")], rg, name)
    if kv is None:
        raise _not_found(TYPES[("microsoft.keyvault", "vaults")], rg, name)
    body = await ctx.body()
    properties = _properties(body)
    incoming = _validate_policies(properties.get("accessPolicies") or [])
    for policy in incoming:
        current = next(
            (
                p
                for p in kv.access_policies
                if p["objectId"].lower() == policy["objectId"].lower()
                and p["tenantId"].lower() == policy["tenantId"].lower()
                # a compound identity's entry (with applicationId) is another entry than the object's own, as az
                # keyvault set-policy / delete-policy match them (object id, application id and tenant); how ARM's
                # accessPolicies/add pairs them: unverified
                and (p.get("applicationId") or "").lower() == (policy.get("applicationId") or "").lower()
            ),
            None,
        )
        if kind_low == "replace" or (kind_low == "add" and current is None):
            if current is not None:
                kv.access_policies.remove(current)
            kv.access_policies.append(policy)
            continue
        if current is None:
            continue
        merged = {k: list(v) for k, v in current.get("permissions", {}).items()}
        for area, perms in policy["permissions"].items():
            have = merged.setdefault(area, [])
            for perm in perms:
                present = [p for p in have if p.lower() == perm.lower()]
                if kind_low == "add" and not present:
                    have.append(perm)
                elif kind_low == "remove":
                    for p in present:
                        have.remove(p)
        current["permissions"] = merged
        if kind_low == "remove" and not any(merged.values()):
            kv.access_policies.remove(current)
    return json_response(
        {
            "id": f"{kv.resource_id}/accessPolicies/{kind_low}",
            "type": "Microsoft.KeyVault/vaults/accessPolicies",
            "properties": {"accessPolicies": [dict(p) for p in kv.access_policies]},
        }
    )


