"""Why an RBAC read was refused, from the identity's role assignments and their roles' data actions: no fitting
role at all, a fitting role on another resource, a role at the right scope without the data action (Key Vault
Reader: secrets' metadata only; Contributor: control plane only), or a fitting assignment too young to have taken
effect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

# The data action each kind of read needs (learn.microsoft.com built-in roles: Key Vault Secrets User,
# Storage Blob Data Reader).
READ_DATA_ACTIONS = {
    "keyvault_secret": "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    "blob": "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
}
# "Role assignments can take up to 10 minutes to take effect" (learn.microsoft.com, Azure RBAC troubleshooting).
PROPAGATION_SECONDS = 600


@dataclass(frozen=True)
class Assignment:
    id: str
    role: str
    scope: str
    created_on: float | None
    grants: bool  # the role's data actions cover the read
    covers: bool  # the scope is the target or one of its parents
    # an ABAC condition (az role assignment create --condition, conditionVersion 2.0): the role's actions hold only
    # where it is true; Azure evaluates it for Storage blob and queue data actions only (learn.microsoft.com,
    # "Add or edit Azure role assignment conditions": conditions can be added to roles with blob or queue storage
    # data actions). The harness does not evaluate it
    condition: str | None = None
    # the role's dataActions as its definition lists them (empty: control plane only, or the definition unread)
    data_actions: tuple[str, ...] = ()
    # and its notDataActions, which Azure subtracts from them (a custom role: secrets/* less getSecret/action)
    not_data_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleDiagnosis:
    code: str  # ROLE_ASSIGNMENT_MISSING | ROLE_WRONG_SCOPE | ROLE_INSUFFICIENT | ROLE_PROPAGATION_PENDING
    detail: str
    assignments: list[Assignment]


def grants(permissions: dict[str, list[str]] | None, data_action: str) -> bool:
    """Whether a role's dataActions (with their * wildcards) cover ``data_action``, less its notDataActions."""
    if not permissions:
        return False
    wanted = data_action.lower()
    allowed = any(fnmatchcase(wanted, pattern.lower()) for pattern in permissions.get("dataActions") or [])
    excluded = any(fnmatchcase(wanted, pattern.lower()) for pattern in permissions.get("notDataActions") or [])
    return allowed and not excluded


def covers(scope: str, target: str) -> bool:
    """An assignment at ``scope`` applies to ``target`` when the scope is the target or one of its parents."""
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return scope == "" or target == scope or target.startswith(scope + "/")


def _resource_and_group(resource_id: str) -> tuple[str, str] | None:
    """(``providers/NS/type/name``, ``subscriptions/S/resourcegroups/RG``) of a resource id (or of a scope under a
    resource: a vault's secret), lowered; None for a subscription or group scope."""
    parts = [p for p in resource_id.lower().split("/") if p]
    if len(parts) < 8 or parts[0] != "subscriptions" or parts[2] != "resourcegroups" or parts[4] != "providers":
        return None
    return "/".join(parts[4:8]), "/".join(parts[:4])


def moved_from(scope: str, target: str) -> str | None:
    """The resource group ``scope`` names when it is ``target``'s own resource (same provider, type and name) under
    another group or subscription: its id before an az resource move. Role assignments on a resource are not moved
    with it ("the role assignment isn't moved and becomes orphaned", learn.microsoft.com Move Azure resources to a
    new resource group or subscription), so one left at the old id grants nothing."""
    old, new = _resource_and_group(scope), _resource_and_group(target)
    if old is None or new is None or old[0] != new[0] or old[1] == new[1]:
        return None
    return [p for p in scope.split("/") if p][3]


def created_on(text: Any) -> float | None:
    """ARM's ``createdOn`` (``2024-05-01T10:00:00.1234567Z``) as epoch seconds."""
    if not isinstance(text, str) or not text:
        return None
    head, _, fraction = text.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(head + "+00:00").timestamp() + (float("0." + fraction) if fraction else 0.0)
    except ValueError:
        return None


def view_assignments(
    assignments: list[dict[str, Any]],
    role_names: dict[str, str],
    role_permissions: dict[str, dict[str, list[str]]],
    kind: str,
    target: str,
) -> list[Assignment]:
    data_action = READ_DATA_ACTIONS[kind]
    views = []
    for assignment in assignments:
        properties = assignment.get("properties") or {}
        definition = str(properties.get("roleDefinitionId") or "").lower()
        scope = str(properties.get("scope") or "")
        views.append(Assignment(
            id=str(assignment.get("id") or ""),
            role=role_names.get(definition, definition.rsplit("/", 1)[-1]),
            scope=scope,
            created_on=created_on(properties.get("createdOn")),
            grants=grants(role_permissions.get(definition), data_action),
            covers=covers(scope, target),
            condition=str(properties.get("condition") or "") or None,
            data_actions=tuple((role_permissions.get(definition) or {}).get("dataActions") or ()),
            not_data_actions=tuple((role_permissions.get(definition) or {}).get("notDataActions") or ()),
        ))
    return views


def diagnose_denial(views: list[Assignment], target: str, now: float, kind: str | None = None) -> RoleDiagnosis:
    """The finest true cause of an authorization refusal, most actionable first (``kind``: the read's, whose data
    action a role without it is said to lack)."""
    fitting_here = [a for a in views if a.grants and a.covers]
    if fitting_here and all(a.condition for a in fitting_here):
        # only under ABAC conditions: named before a young assignment's wait, which a condition excluding the read
        # outlasts
        conditional = fitting_here[0]
        age = "" if conditional.created_on is None or now - conditional.created_on >= PROPAGATION_SECONDS else (
            f" (assigned {int(now - conditional.created_on)} s ago: if the condition allows it, wait a few minutes)")
        return RoleDiagnosis("ACCESS_DENIED_UNEXPECTEDLY",
                             f"{conditional.role} on {conditional.scope} grants it only under a condition, which "
                             f"this read did not meet{age}: {' '.join(str(conditional.condition).split())}", views)
    young = [a for a in fitting_here if a.created_on is not None and now - a.created_on < PROPAGATION_SECONDS]
    if young:
        age = int(now - max(a.created_on or 0 for a in young))
        return RoleDiagnosis("ROLE_PROPAGATION_PENDING",
                             f"{young[0].role} was assigned {age} s ago; assignments take up to "
                             f"{PROPAGATION_SECONDS // 60} minutes to take effect", views)
    elsewhere = [a for a in views if a.grants and not a.covers]
    if elsewhere and not fitting_here:
        places = ", ".join(f"{a.role} on {a.scope}" for a in elsewhere[:3])
        moved = next((group for a in elsewhere if (group := moved_from(a.scope, target))), None)
        if moved is not None:
            resource = "/" + "/".join([p for p in target.split("/") if p][:8])
            return RoleDiagnosis(
                "ROLE_WRONG_SCOPE",
                f"the identity holds {places}: that is {resource.rsplit('/', 1)[-1]}'s id before it moved out of "
                f"resource group {moved} (az resource move); a role assignment on a resource is not moved with it and "
                f"grants nothing at its new id {resource}", views)
        return RoleDiagnosis("ROLE_WRONG_SCOPE", f"the identity holds {places}, not on {target} or a parent", views)
    here = [a for a in views if a.covers and not a.grants]
    if here and not fitting_here:
        return RoleDiagnosis("ROLE_INSUFFICIENT", _insufficient(here, kind), views)
    if fitting_here:  # a fitting, settled assignment and still refused: a deny assignment or a condition
        return RoleDiagnosis("ACCESS_DENIED_UNEXPECTEDLY",
                             f"{fitting_here[0].role} on {fitting_here[0].scope} should allow the read, and has "
                             "been in effect for over 10 minutes: a deny assignment (made by Azure Blueprints or a "
                             "managed application) may refuse what the role grants", views)
    return RoleDiagnosis("ROLE_ASSIGNMENT_MISSING", "the identity holds no role assignment that allows the read",
                         views)


def _insufficient(here: list[Assignment], kind: str | None) -> str:
    """Why roles at the right scope refuse the read: the data action it needs, and what each role grants instead (a
    role listing secrets' metadata, as Key Vault Reader does, is not one without data actions). A notDataActions
    pattern that takes the read out of a wildcard is named: "data actions secrets/*" alone reads as if it granted it
    (Azure subtracts NotDataActions from DataActions: learn.microsoft.com, "Understand Azure role definitions")."""
    needed = READ_DATA_ACTIONS.get(kind or "")
    held: dict[str, Assignment] = {}
    for assignment in here:
        held.setdefault(assignment.role, assignment)
    granted = "; ".join(_grants_shown(role, assignment, needed) for role, assignment in sorted(held.items()))
    if needed is None:
        return f"{', '.join(sorted(held))} at the right scope has no data action to read ({granted})"
    return f"{', '.join(sorted(held))} at the right scope does not grant {needed}, which the read needs ({granted})"


def _grants_shown(role: str, assignment: Assignment, needed: str | None) -> str:
    if not assignment.data_actions:
        return f"{role}: control plane only"
    shown = f"{role}: data actions {', '.join(assignment.data_actions)}"
    excluding = [pattern for pattern in assignment.not_data_actions
                 if needed and fnmatchcase(needed.lower(), pattern.lower())]
    return shown + (f", less its notDataActions {', '.join(excluding)}" if excluding else "")
