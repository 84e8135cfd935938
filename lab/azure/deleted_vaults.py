"""Key Vault's soft delete of a whole vault, as ARM serves it: ``az keyvault delete`` (DELETE .../vaults/NAME),
``az keyvault list-deleted`` / ``show-deleted`` (Microsoft.KeyVault/deletedVaults), ``az keyvault recover`` (a PUT of
the vault with ``properties.createMode: recover``) and ``az keyvault purge`` (POST .../deletedVaults/NAME/purge).

Sources: the Vaults REST API (Vaults - Get Deleted: the DeletedVault body; Vaults - Purge Deleted), the az CLI's
keyvault module (recover_vault: location, tenantId, sku and createMode 'recover'; validate_deleted_vault_or_hsm_name:
it reads properties.vaultId and properties.location of each deleted vault), and the Key Vault soft-delete overview:
a deleted vault keeps its name (a new vault of that name is refused until it is recovered or purged) and its DNS
record, and "When a Key Vault is soft-deleted, services that are integrated with the Key Vault will be deleted. For
example: Azure RBAC roles assignments [...] Recovering a soft-deleted Key Vault will not restore these services."
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.azure import arm_errors as errors
from lab.azure.arm_context import Ctx, json_response, only, page, sub_scope
from lab.azure.arm_state import arm_state
from lab.azure.world import Vault

if TYPE_CHECKING:
    from lab.runtime import Lab

DELETED_VAULT_TYPE = "Microsoft.KeyVault/deletedVaults"
A_DELETED_READ = "Microsoft.KeyVault/deletedVaults/read"
A_PURGE = "Microsoft.KeyVault/locations/deletedVaults/purge/action"
SOFT_DELETE_HELP = "https://go.microsoft.com/fwlink/?linkid=2149745"


@dataclass
class DeletedVault:
    vault: Vault
    deletion_date: float
    scheduled_purge_date: float


_DELETED: weakref.WeakKeyDictionary[Any, dict[str, DeletedVault]] = weakref.WeakKeyDictionary()


def deleted_vaults(lab: Lab) -> dict[str, DeletedVault]:
    """lower(vault name) -> the soft-deleted vault (a vault's name is global, deleted or not)."""
    found = _DELETED.get(lab)
    if found is None:
        found = _DELETED[lab] = {}
    return found


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def render(lab: Lab, deleted: DeletedVault) -> dict[str, Any]:
    kv = deleted.vault
    return {
        "id": f"/subscriptions/{kv.subscription_id}/providers/Microsoft.KeyVault/locations/{kv.location}"
              f"/deletedVaults/{kv.name}",
        "name": kv.name,
        "type": DELETED_VAULT_TYPE,
        "properties": {
            "vaultId": kv.resource_id,
            "location": kv.location,
            "tags": {},
            "deletionDate": _iso(deleted.deletion_date),
            "scheduledPurgeDate": _iso(deleted.scheduled_purge_date),
            "purgeProtectionEnabled": bool(arm_state(lab).extras(kv.name).enable_purge_protection),
        },
    }


def delete_vault(ctx: Ctx, kv: Vault | None) -> web.Response:
    """DELETE of a vault: it is soft-deleted (soft delete cannot be turned off since February 2025), kept for its
    softDeleteRetentionInDays, and the role assignments at it or under it are deleted. A vault that is not there:
    204 (azure-cli#2369: 'Operation failed with status: 204' for a vault deleted already)."""
    if kv is None:
        return web.Response(status=204)
    world = ctx.world
    extras = arm_state(ctx.lab).extras(kv.name)
    now = time.time()
    world.vaults.pop(kv.name.lower(), None)
    deleted_vaults(ctx.lab)[kv.name.lower()] = DeletedVault(
        kv, now, now + extras.soft_delete_retention_days * 86400)
    prefix = kv.resource_id.lower()
    for name, assignment in list(world.role_assignments.items()):
        scope = assignment.scope.lower().rstrip("/")
        if scope == prefix or scope.startswith(prefix + "/"):
            del world.role_assignments[name]
    return web.Response(status=200)


def refuse_name_in_deleted_state(ctx: Ctx, name: str) -> None:
    """A new vault under a deleted vault's name (elb-dashboard's 2026 log: 'ConflictError: A vault with the same
    name already exists in deleted state.'; the rest of the text: unverified)."""
    if name.lower() in deleted_vaults(ctx.lab):
        raise errors.ArmError(
            409, "ConflictError",
            "A vault with the same name already exists in deleted state. You need to either recover or purge existing "
            f"key vault. Follow this link {SOFT_DELETE_HELP} for more information on soft delete.")


def recover_vault(ctx: Ctx, subscription_id: str, resource_group: str, name: str) -> Vault:
    """``properties.createMode: recover``: the deleted vault back, with its secrets, access policies and network
    rules, under its old id (az keyvault recover refuses another resource group before asking), without its role
    assignments. No such deleted vault: SoftDeletedVaultDoesNotExist (hashicorp/terraform-provider-azurerm#12972;
    its status and text: unverified)."""
    deleted = deleted_vaults(ctx.lab).get(name.lower())
    if (deleted is None or deleted.vault.subscription_id.lower() != subscription_id.lower()
            or deleted.vault.resource_group.lower() != resource_group.lower()):
        raise errors.ArmError(
            400, "SoftDeletedVaultDoesNotExist",
            f"A soft deleted vault with the given name does not exist. Ensure that the name for the vault that is "
            f"being attempted to recover is in a recoverable state. For more information on soft delete please "
            f"follow this link {SOFT_DELETE_HELP}")
    del deleted_vaults(ctx.lab)[name.lower()]
    ctx.world.vaults[name.lower()] = deleted.vault
    return deleted.vault


def _visible(ctx: Ctx) -> list[DeletedVault]:
    return sorted((d for d in deleted_vaults(ctx.lab).values()
                   if d.vault.subscription_id.lower() == ctx.subscription_id.lower()),
                  key=lambda d: d.vault.name.lower())


def deleted_vaults_route(ctx: Ctx, method: str, rest: list[str]) -> web.Response | None:
    """``providers/Microsoft.KeyVault/deletedVaults`` and ``.../locations/L/deletedVaults/NAME[/purge]`` under a
    subscription (``rest``: the path after /subscriptions/ID); None for any other path."""
    low = [s.lower() for s in rest]
    if low == ["providers", "microsoft.keyvault", "deletedmanagedhsms"]:
        # az keyvault list-deleted lists deleted managed HSMs too (list_deleted_vault_or_hsm); the lab has none
        only(method, "GET")
        ctx.authorize(sub_scope(ctx), "Microsoft.KeyVault/deletedManagedHSMs/read")
        return page(ctx, [])
    if low == ["providers", "microsoft.keyvault", "deletedvaults"]:
        only(method, "GET")
        ctx.authorize(sub_scope(ctx), A_DELETED_READ)
        return page(ctx, [render(ctx.lab, d) for d in _visible(ctx)])
    if len(low) not in (6, 7) or low[:3] != ["providers", "microsoft.keyvault", "locations"] \
            or low[4] != "deletedvaults" or (len(low) == 7 and low[6] != "purge"):
        return None
    location, name = rest[3], rest[5]
    deleted = next((d for d in _visible(ctx) if d.vault.name.lower() == name.lower()
                    and d.vault.location.replace(" ", "").lower() == location.replace(" ", "").lower()), None)
    if len(low) == 6:
        only(method, "GET")
        ctx.authorize(sub_scope(ctx), A_DELETED_READ)
    else:
        only(method, "POST")
        ctx.authorize(sub_scope(ctx), A_PURGE)
    if deleted is None:
        # unverified: the code and text of a deleted vault that is not there
        raise errors.ArmError(404, "ResourceNotFound",
                              f"The specified vault: {name} was not found in deleted state in location {location}.")
    if len(low) == 6:
        return json_response(render(ctx.lab, deleted))
    if arm_state(ctx.lab).extras(name).enable_purge_protection:
        # unverified: the code and text (purge protection forbids a purge before the retention ends, by design)
        raise errors.ArmError(409, "Conflict", f"Vault {name} has purge protection enabled and cannot be purged "
                              "before its scheduled purge date.")
    del deleted_vaults(ctx.lab)[name.lower()]
    arm_state(ctx.lab).vault_extras.pop(name.lower(), None)
    # the REST API answers 202 and a Location to poll (Vaults - Purge Deleted); the lab is done at once: 200
    return web.Response(status=200)
