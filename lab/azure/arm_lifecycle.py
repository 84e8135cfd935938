"""ARM's long-running lifecycle operations people run while tidying up: ``az group delete`` and
``az resource move``, with the operation-result URL az polls.

    DELETE /subscriptions/{s}/resourceGroups/{rg}                       202, Location: .../operationresults/{id}
    POST   /subscriptions/{s}/resourceGroups/{rg}/moveResources         202, Location: .../operationresults/{id}
    GET    /subscriptions/{s}/operationresults/{id}                     200 (a deletion) or 204 (a move) once done

Sources:
- Resource Groups - Delete (REST): "an asynchronous operation that returns a status of 202 until all resources and
  the resource group are successfully deleted ... When the process finishes and is successful, the URI in the
  Location header returns a status of 200"; the SDKs' ResourceGroupsDeleteHeaders carry that Location. Recorded
  answers (the Node SDK's and jclouds' test recordings): 202 with an empty body, Location
  .../subscriptions/S/operationresults/<base64url {"jobId":"RESOURCEGROUPDELETIONJOB-<NAME>-<REGION>",
  "jobLocation":"<region>"}>?api-version=..., Retry-After 15 (0 in a 2021 recording); the poll's 200 has no body.
- ARM's async contract (azure-resource-manager-rpc, Addendum "202 Accepted and Location headers"): the Location URI
  answers 202 until the operation reaches a terminal state, then 200 (or 204 without a body).
- Move resources (learn.microsoft.com "Move Azure resources to a new resource group or subscription"): the resource
  id changes; child resources move with their parent; the caller needs resourceGroups/moveResources/action on the
  source group and resourceGroups/write on the target; "If you move a resource that has an Azure role assigned
  directly to the resource (or a child resource), the role assignment isn't moved and becomes orphaned", and
  Troubleshoot Azure RBAC: "Eventually, the orphaned role assignment will be automatically removed".
- Move operation support for resources: Microsoft.ManagedIdentity/userassignedidentities and
  Microsoft.ContainerService/managedclusters move neither to another group nor subscription; key vaults and storage
  accounts do. The refusal's code and text: MicrosoftDocs/azure-docs#33289 (ResourceMoveNotSupported "Resource move
  is not supported for resource types '...'", confirmed by the doc's owner).
- Understand Azure role assignments, "Role assignments with identity not found": deleting a principal does not
  remove its role assignments; they stay, listed as Identity not found.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from lab.azure import arm_errors as errors
from lab.azure.arm_context import Ctx, require_group, rg_scope
from lab.azure.arm_errors import ArmError
from lab.azure.deleted_vaults import delete_vault
from lab.azure.world import AzureWorld, ResourceGroup, group_key, scope_covers

A_RG = "Microsoft.Resources/subscriptions/resourceGroups/"
A_MOVE = A_RG + "moveResources/action"
# az's poller waits what Retry-After says (recorded group deletions: 15, or 0 in later recordings); the lab's operations
# are done by the first poll, so it asks for one second
RETRY_AFTER_SECONDS = "1"
UNMOVABLE = {  # lower "namespace/type" -> as ARM spells it
    "microsoft.managedidentity/userassignedidentities": "Microsoft.ManagedIdentity/userAssignedIdentities",
    "microsoft.containerservice/managedclusters": "Microsoft.ContainerService/managedClusters",
}


def _operation_url(ctx: Ctx, job: str, location: str, kind: str) -> str:
    """A Location URL of ARM's shape: /subscriptions/S/operationresults/<base64url of {"jobId", "jobLocation"}>."""
    region = location.replace(" ", "").lower()
    job_json = json.dumps({"jobId": f"{job}-{region.upper()}", "jobLocation": region}, separators=(",", ":"))
    operation_id = base64.urlsafe_b64encode(job_json.encode()).decode().rstrip("=")
    ctx.state.operations[operation_id] = kind
    origin = str(ctx.request.url.origin())
    return f"{origin}/subscriptions/{ctx.subscription_id}/operationresults/{operation_id}?api-version={ctx.api_version}"


def _accepted(ctx: Ctx, job: str, location: str, kind: str) -> web.Response:
    headers = {"Location": _operation_url(ctx, job, location, kind), "Retry-After": RETRY_AFTER_SECONDS}
    return web.Response(status=202, headers=headers)


def operation_result(ctx: Ctx, operation_id: str) -> web.Response:
    kind = ctx.state.operations.get(operation_id)
    if kind is None:  # unverified: what ARM answers for an operation id it never issued
        raise errors.no_route(ctx.request.path)
    # unverified: the lab deletes and moves at once, where Azure takes minutes (a deleted group meanwhile shows
    # provisioningState Deleting): every poll finds the operation done
    return web.Response(status=204 if kind == "move" else 200)


# ---------------------------------------------------------------------------- az group delete


async def delete_group(ctx: Ctx, name: str) -> web.Response:
    ctx.authorize(rg_scope(ctx, name), A_RG + "delete")
    group = require_group(ctx, name)
    own = ctx.lab.extra.get("cluster") or {}
    holds_own_cluster = any(
        c.name.lower() == str(own.get("name")).lower() and c.resource_group.lower() == group.name.lower()
        and c.subscription_id.lower() == group.subscription_id.lower() for c in ctx.world.clusters.values())
    remove_group(ctx, group)
    if holds_own_cluster:
        # the lab's own cluster went with its group: its API server goes too, as az aks stop takes it down
        # (unverified: a deleted cluster's FQDN stops resolving, where the lab's port refuses connections)
        from lab.outage import set_down

        await set_down(ctx.lab, "kube", True)
    return _accepted(ctx, f"RESOURCEGROUPDELETIONJOB-{group.name.upper()}", group.location, "delete")


def remove_group(ctx: Ctx, group: ResourceGroup) -> None:
    """Everything in the group goes with it: identities with their federated credentials, vaults (soft-deleted, as
    az keyvault delete leaves them), storage accounts, clusters (and the node resource group AKS made for each), and
    the role assignments scoped at the group or under it. Assignments elsewhere naming a deleted identity stay
    (Identity not found)."""
    world = ctx.world
    sub, scope = group.subscription_id.lower(), group.resource_id

    def inside(item: Any) -> bool:
        return item.subscription_id.lower() == sub and item.resource_group.lower() == group.name.lower()

    for key, identity in list(world.identities.items()):
        if inside(identity):
            del world.identities[key]
    for vault in [vault for vault in world.vaults.values() if inside(vault)]:
        delete_vault(ctx, vault)
    for key in [k for k, account in world.storage_accounts.items() if inside(account)]:
        del world.storage_accounts[key]
    node_groups = []
    for key, cluster in list(world.clusters.items()):
        if inside(cluster):
            del world.clusters[key]
            if cluster.node_resource_group:
                node_groups.append(world.group(cluster.subscription_id, cluster.node_resource_group))
    # unverified: when ARM removes assignments whose scope was deleted (the docs say an orphaned one is "eventually"
    # removed): the lab removes them with the group
    for key in [k for k, a in world.role_assignments.items() if scope_covers(scope, a.scope)]:
        del world.role_assignments[key]
    world.resource_groups.pop(group_key(group.subscription_id, group.name), None)
    for node_group in node_groups:
        if node_group is not None:
            remove_group(ctx, node_group)


# ---------------------------------------------------------------------------- az resource move


async def move_resources(ctx: Ctx, source_name: str) -> web.Response:
    ctx.authorize(rg_scope(ctx, source_name), A_MOVE)
    source = require_group(ctx, source_name)
    body = await ctx.body()
    resources, target_id = body.get("resources"), body.get("targetResourceGroup")
    if not isinstance(resources, list) or not resources or not all(isinstance(r, str) for r in resources):
        raise errors.invalid_body("The 'resources' property must be a non-empty array of resource ids.")  # [UNV]
    if not isinstance(target_id, str):
        raise errors.invalid_body("The 'targetResourceGroup' property is required.")  # [UNV]
    target = _target_group(ctx, target_id)
    if target.resource_id.lower() == source.resource_id.lower():
        raise ArmError(400, "InvalidTargetResourceGroup",  # [UNV] text
                       "The target resource group must be different from the source resource group.")
    ctx.authorize(target.resource_id, A_RG + "write")
    items = [_movable(ctx, source, resource_id) for resource_id in resources]
    for item in items:
        _move(ctx.world, item, target)
    # unverified: a move's jobId (the group deletion's shape, by analogy)
    return _accepted(ctx, f"RESOURCEMOVEJOB-{source.name.upper()}", source.location, "move")


def _target_group(ctx: Ctx, target_id: str) -> ResourceGroup:
    parts = [p for p in target_id.split("/") if p]
    if len(parts) != 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        raise errors.invalid_body(f"The target resource group '{target_id}' is not a resource group id.")  # [UNV]
    target_subscription, source_subscription = ctx.world.subscription(parts[1]), ctx.world.subscription(
        ctx.subscription_id)
    group = ctx.world.group(parts[1], parts[3]) if target_subscription else None
    if group is None or target_subscription is None:
        raise errors.resource_group_not_found(parts[3])
    if source_subscription is None or target_subscription.tenant_id.lower() != source_subscription.tenant_id.lower():
        raise ArmError(400, "InvalidTargetSubscription",  # [UNV] text; documented: one tenant only
                       "The source and target subscriptions must be in the same tenant.")
    return group


def _movable(ctx: Ctx, source: ResourceGroup, resource_id: str) -> Any:
    parts = [p for p in resource_id.split("/") if p]
    low = [p.lower() for p in parts]
    if len(parts) != 8 or low[0] != "subscriptions" or low[2] != "resourcegroups" or low[4] != "providers":
        raise errors.invalid_body(f"The resource id '{resource_id}' is invalid.")  # [UNV]
    if low[1] != source.subscription_id.lower() or low[3] != source.name.lower():
        raise ArmError(400, "ResourceNotInSourceResourceGroup",  # [UNV] code and text
                       f"The resource '{resource_id}' is not in the source resource group '{source.name}'.")
    rtype = f"{low[5]}/{low[6]}"
    if rtype in UNMOVABLE:
        raise ArmError(400, "ResourceMoveNotSupported",
                       f"Resource move is not supported for resource types '{UNMOVABLE[rtype]}'.")
    pool = {"microsoft.keyvault/vaults": ctx.world.vaults,
            "microsoft.storage/storageaccounts": ctx.world.storage_accounts}.get(rtype)
    item = pool.get(low[7]) if pool is not None else None
    if item is None or item.resource_group.lower() != source.name.lower() \
            or item.subscription_id.lower() != source.subscription_id.lower():
        raise errors.resource_not_found(f"{parts[5]}/{parts[6]}/{parts[7]}", source.name)
    return item


def _move(world: AzureWorld, item: Any, target: ResourceGroup) -> None:
    """The resource takes the target's group (and subscription) in its id; assignments at its old id stay there,
    orphaned: they no longer cover it."""
    item.subscription_id = target.subscription_id
    item.resource_group = target.name
