"""ARM's Microsoft.Authorization provider at any scope: role assignments (list with filters, get, put,
delete) and role definitions."""

from __future__ import annotations

import datetime
import re
from typing import Any

from aiohttp import web

from lab.azure import arm_errors as errors
from lab.azure import arm_render as render
from lab.azure.arm_context import Ctx, json_response, only, page, require_group
from lab.azure.rbac import (
    FilterError,
    canonical_guid,
    is_guid,
    list_assignments,
    parse_assignment_filter,
    role_guid_from_id,
)
from lab.azure.world import RoleAssignment, RoleDefinition, subscription_of

A_ASSIGNMENT = "Microsoft.Authorization/roleAssignments/"


def validate_scope(ctx: Ctx, scope: str) -> None:
    parts = [p for p in scope.split("/") if p]
    low = [p.lower() for p in parts]
    if len(low) >= 4 and low[2] == "resourcegroups":
        require_group(ctx, parts[3])


async def authorization_provider(ctx: Ctx, method: str, scope: str, rest: list[str]) -> web.Response:
    scope = scope.rstrip("/") or "/"
    kind = rest[0].lower() if rest else ""
    if kind == "roleassignments" and len(rest) in (1, 2):
        if len(rest) == 1:
            only(method, "GET")
            return _list_role_assignments(ctx, scope)
        return await _role_assignment(ctx, method, scope, rest[1])
    if kind == "denyassignments" and len(rest) == 1:
        # Deny Assignments - List For Scope (az role deny-assignment list --scope S). Deny assignments that cover
        # data actions are made by Azure Blueprints and managed applications only (az role deny-assignment create
        # supports no DataActions), neither of which the lab has: the list is empty
        only(method, "GET")
        ctx.authorize(scope, "Microsoft.Authorization/denyAssignments/read")
        validate_scope(ctx, scope)
        return page(ctx, [])
    if kind == "roledefinitions" and len(rest) == 2 and method in ("PUT", "DELETE"):
        return await _custom_role(ctx, method, scope, rest[1])
    if kind == "roledefinitions" and len(rest) in (1, 2):
        only(method, "GET")
        return _role_definitions(ctx, scope, rest[1] if len(rest) == 2 else None)
    raise errors.invalid_resource_type(
        "/".join(rest) or "providers", "Microsoft.Authorization", ctx.api_version
    )


def _list_role_assignments(ctx: Ctx, scope: str) -> web.Response:
    ctx.authorize(scope, A_ASSIGNMENT + "read")
    validate_scope(ctx, scope)
    try:
        flt = parse_assignment_filter(ctx.request.query.get("$filter"))
    except FilterError:
        raise errors.unsupported_filter(ctx.request.query.get("$filter", "")) from None
    found = list_assignments(ctx.world, scope, flt)
    return page(ctx, [render.role_assignment(ctx.lab, a) for a in found])


def _find_assignment(ctx: Ctx, name: str) -> RoleAssignment | None:
    return next((a for a in ctx.world.role_assignments.values() if a.name.lower() == name.lower()), None)


def _same_scope(a: str, b: str) -> bool:
    return (a.rstrip("/") or "/").lower() == (b.rstrip("/") or "/").lower()


async def _role_assignment(ctx: Ctx, method: str, scope: str, name: str) -> web.Response:
    target = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}"
    if method == "GET":
        ctx.authorize(target, A_ASSIGNMENT + "read")
        validate_scope(ctx, scope)
        found = _find_assignment(ctx, name)
        if found is None or not _same_scope(found.scope, scope):
            raise errors.role_assignment_not_found(name)
        return json_response(render.role_assignment(ctx.lab, found))
    if method == "DELETE":
        ctx.authorize(target, A_ASSIGNMENT + "delete")
        validate_scope(ctx, scope)
        found = _find_assignment(ctx, name)
        if found is None or not _same_scope(found.scope, scope):
            return web.Response(status=204)
        del ctx.world.role_assignments[found.name]
        return json_response(render.role_assignment(ctx.lab, found))
    if method == "PUT":
        ctx.authorize(target, A_ASSIGNMENT + "write")
        validate_scope(ctx, scope)
        return _put_role_assignment(ctx, scope, name, await ctx.body())
    raise errors.method_not_allowed(method)


def _put_role_assignment(ctx: Ctx, scope: str, name: str, body: dict[str, Any]) -> web.Response:
    world = ctx.world
    if not is_guid(name):
        raise errors.invalid_role_assignment_id(name)
    name = canonical_guid(name)
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise errors.invalid_body("The request content was invalid: 'properties' is required.")
    role_ref = str(properties.get("roleDefinitionId") or "")
    role_guid = role_guid_from_id(role_ref)
    role = world.role_definitions.get(role_guid.lower()) if role_guid else None
    if role is None:
        raise errors.role_definition_missing(role_guid or role_ref)
    principal_id = str(properties.get("principalId") or "")
    if not is_guid(principal_id):
        raise errors.invalid_body(f"The principal ID '{principal_id}' is not valid. It must be a GUID.")
    principal = world.principal_by_object_id(principal_id)
    principal_type = properties.get("principalType")
    if principal is None and any(a.object_id.lower() == principal_id.lower() for a in world.apps.values()):
        # the app registration's object id, not its service principal's (the portal shows both as "Object ID")
        # unverified: whether ARM answers UnmatchedPrincipalType instead when a principalType is given
        raise errors.principal_type_not_supported("Application")
    if principal is None and not principal_type:
        raise errors.principal_not_found(principal_id, world.tenant_id)
    # ARM looks the principal up and refuses a principalType that is not its type (UnmatchedPrincipalType, as
    # deployments report it, e.g. az role assignment create --assignee-object-id OID --assignee-principal-type User
    # for a managed identity). Every principal of the lab's directory is a service principal (managed identities
    # and apps' service principals). [UNV] whether the comparison ignores case (az sends the enum's spelling).
    if principal is not None and principal_type and str(principal_type).lower() != "serviceprincipal":
        raise errors.unmatched_principal_type(principal_id, "ServicePrincipal", str(principal_type))
    principal_type = str(principal_type or "ServicePrincipal")
    role_definition_id = role.resource_id(subscription_of(scope) or world.subscription_id)

    existing = world.role_assignments.get(name) or _find_assignment(ctx, name)
    if existing is not None:
        same = (
            _same_scope(existing.scope, scope)
            and existing.principal_id.lower() == principal_id.lower()
            and existing.role_guid.lower() == role.role_id.lower()
        )
        if not same:
            raise errors.role_assignment_update_not_permitted()
        return json_response(render.role_assignment(ctx.lab, existing), status=201)
    for other in world.role_assignments.values():
        if (
            _same_scope(other.scope, scope)
            and other.principal_id.lower() == principal_id.lower()
            and other.role_guid.lower() == role.role_id.lower()
        ):
            raise errors.role_assignment_exists(other.name)
    assignment = RoleAssignment(
        name=name,
        scope=scope,
        role_definition_id=role_definition_id,
        principal_id=principal.principal_id if principal else principal_id,
        principal_type=principal_type,
        condition=str(properties.get("condition") or "") or None,
        condition_version=str(properties.get("conditionVersion") or "") or None,
    )
    world.role_assignments[name] = assignment
    ctx.state.assignment_creators[name] = ctx.oid
    return json_response(render.role_assignment(ctx.lab, assignment), status=201)


_ROLE_NAME_EQ = re.compile(r"^roleName\s+eq\s+'([^']*)'$", re.IGNORECASE)
_TYPE_EQ = re.compile(r"^type\s+eq\s+'([^']*)'$", re.IGNORECASE)


def _role_definitions(ctx: Ctx, scope: str, role_id: str | None) -> web.Response:
    # Any signed-in caller may read the built-in role definitions (Azure allows it at every scope).
    validate_scope(ctx, scope)
    subscription = ctx.subscription_id or None
    roles = sorted(ctx.world.role_definitions.values(), key=lambda r: r.role_name)
    if role_id is not None:
        role = ctx.world.role_definitions.get(role_id.lower())
        if role is None:
            raise errors.role_definition_not_found(role_id)
        return json_response(render.role_definition(role, subscription))
    text = (ctx.request.query.get("$filter") or "").strip()
    if text:
        if match := _ROLE_NAME_EQ.match(text):
            roles = [r for r in roles if r.role_name.lower() == match.group(1).lower()]
        elif match := _TYPE_EQ.match(text):
            wanted = match.group(1).lower()
            roles = [r for r in roles if ("customrole" if r.custom else "builtinrole") == wanted]
        else:
            raise errors.unsupported_filter(text)
    return page(ctx, [render.role_definition(r, subscription) for r in roles])


A_DEFINITION = "Microsoft.Authorization/roleDefinitions/"


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value if isinstance(v, str) and v) if isinstance(value, list) else ()


async def _custom_role(ctx: Ctx, method: str, scope: str, role_id: str) -> web.Response:
    """Create, update (PUT) or delete a custom role definition: what az role definition create / update / delete send
    (PUT {first assignable scope}/providers/Microsoft.Authorization/roleDefinitions/{new guid}, properties roleName,
    description, type CustomRole, permissions [{actions, notActions, dataActions, notDataActions}],
    assignableScopes)."""
    target = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"
    validate_scope(ctx, scope)
    world = ctx.world
    existing = world.role_definitions.get(role_id.lower())
    if method == "DELETE":
        ctx.authorize(target, A_DEFINITION + "delete")
        if existing is None:
            return web.Response(status=204)
        if not existing.custom:
            raise errors.role_definition_not_found(role_id)  # [UNV] the answer to deleting a built-in role
        if any(a.role_guid.lower() == existing.role_id.lower() for a in world.role_assignments.values()):
            raise errors.role_definition_has_assignments()
        del world.role_definitions[existing.role_id.lower()]
        return json_response(render.role_definition(existing, ctx.subscription_id or None))
    ctx.authorize(target, A_DEFINITION + "write")
    if not is_guid(role_id):
        raise errors.invalid_body(f"The role definition ID '{role_id}' is not valid. It must be a GUID.")  # [UNV]
    if existing is not None and not existing.custom:
        raise errors.invalid_body("Built-in role definitions cannot be changed.")  # [UNV] text
    body = await ctx.body()
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict) or not str(properties.get("roleName") or "").strip():
        raise errors.invalid_body("The request content was invalid: 'properties.roleName' is required.")  # [UNV]
    name = str(properties["roleName"]).strip()
    scopes = _strings(properties.get("assignableScopes"))
    if not scopes:
        raise errors.invalid_body("The role definition must have at least one assignable scope.")  # [UNV] text
    if any(r.role_name.lower() == name.lower() and r.role_id.lower() != role_id.lower()
           for r in world.role_definitions.values()):
        raise errors.role_definition_name_exists()
    permissions = [p for p in properties.get("permissions") or [] if isinstance(p, dict)]
    role = RoleDefinition(
        role_id=canonical_guid(role_id).lower(), role_name=name, description=str(properties.get("description") or ""),
        actions=tuple(a for p in permissions for a in _strings(p.get("actions"))),
        not_actions=tuple(a for p in permissions for a in _strings(p.get("notActions"))),
        data_actions=tuple(a for p in permissions for a in _strings(p.get("dataActions"))),
        not_data_actions=tuple(a for p in permissions for a in _strings(p.get("notDataActions"))),
        custom=True, assignable_scopes=scopes,
        created_on=existing.created_on if existing else datetime.datetime.now(datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    world.role_definitions[role.role_id] = role
    return json_response(render.role_definition(role, subscription_of(scopes[0]) or ctx.subscription_id or None),
                         status=200 if existing else 201)
