"""Role-based access questions the ARM, Key Vault and Storage faces ask of the world model.

``world.permits`` answers "may this principal do this action here" (assignments at the scope and every
ancestor, after the propagation delay). This module adds what listing needs: the ``$filter`` forms of
the roleAssignments API, "at, above or below a scope", and role definition id parsing.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from lab.azure.world import AzureWorld, RoleAssignment, scope_covers

_GUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_ROLE_DEF_ID = re.compile(
    r"^(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/([^/]+)/?$",
    re.IGNORECASE,
)


def is_guid(text: str) -> bool:
    return bool(_GUID.match(text or ""))


def canonical_guid(text: str) -> str:
    return str(uuid.UUID(text))


def scope_at_or_below(scope: str, ancestor: str) -> bool:
    """True when ``scope`` is ``ancestor`` or lies under it (case-insensitive ARM ids)."""
    return scope_covers(ancestor, scope)


def role_guid_from_id(role_definition_id: str) -> str | None:
    match = _ROLE_DEF_ID.match((role_definition_id or "").strip())
    if match:
        return match.group(1)
    if is_guid(role_definition_id or ""):
        return role_definition_id
    return None


@dataclass(frozen=True)
class AssignmentFilter:
    """One of the documented ``$filter`` forms: atScope(), assignedTo('id'), principalId eq 'id', or none."""

    at_scope: bool = False
    assigned_to: str | None = None
    principal_id: str | None = None


class FilterError(ValueError):
    pass


_AT_SCOPE = re.compile(r"^atScope\(\)$", re.IGNORECASE)
_ASSIGNED_TO = re.compile(r"^assignedTo\(\s*'([^']*)'\s*\)$", re.IGNORECASE)
_PRINCIPAL_EQ = re.compile(r"^principalId\s+eq\s+'([^']*)'$", re.IGNORECASE)


def parse_assignment_filter(text: str | None) -> AssignmentFilter:
    if not text or not text.strip():
        return AssignmentFilter()
    at_scope = False
    assigned_to = principal_id = None
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        part = part.strip()
        if _AT_SCOPE.match(part):
            at_scope = True
        elif match := _ASSIGNED_TO.match(part):
            assigned_to = match.group(1)
        elif match := _PRINCIPAL_EQ.match(part):
            principal_id = match.group(1)
        else:
            raise FilterError(text)
    if principal_id and (at_scope or assigned_to):
        raise FilterError(text)
    return AssignmentFilter(at_scope=at_scope, assigned_to=assigned_to, principal_id=principal_id)


def list_assignments(world: AzureWorld, scope: str, flt: AssignmentFilter) -> list[RoleAssignment]:
    """Role assignments for a list call at ``scope``.

    No filter and ``principalId eq``: at, above or below the scope. ``atScope()``: at or above only.
    ``assignedTo``: the principal's own assignments (the lab has no groups), at, above or below unless
    combined with atScope().
    """
    result = []
    for assignment in world.role_assignments.values():
        above_or_at = scope_covers(assignment.scope, scope)
        below = scope_at_or_below(assignment.scope, scope)
        if flt.at_scope:
            if not above_or_at:
                continue
        elif not (above_or_at or below):
            continue
        who = flt.assigned_to or flt.principal_id
        if who is not None and assignment.principal_id.lower() != who.lower():
            continue
        result.append(assignment)
    result.sort(key=lambda a: (a.created_at, a.name))
    return result


def has_any_assignment_within(
    world: AzureWorld, principal_id: str, scope: str, now: float | None = None
) -> bool:
    """Does the principal hold any (propagated) role at, above or below ``scope``? (Subscription "
    "visibility.)"""
    moment = time.time() if now is None else now
    for assignment in world.role_assignments.values():
        if assignment.principal_id.lower() != principal_id.lower():
            continue
        if moment - assignment.created_at < world.role_propagation_seconds:
            continue
        if scope_covers(assignment.scope, scope) or scope_at_or_below(assignment.scope, scope):
            return True
    return False
