"""Reads across resource types: ARM's generic resource list and Azure Resource Graph.

    GET  /subscriptions/{s}/resources?$filter=resourceType eq '...'&api-version=2015-11-01 (or newer)
    GET  /subscriptions/{s}/resourceGroups/{rg}/resources?...
    POST /providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01   {"query", "subscriptions", "options"}

Both show only what the caller may read (``<type>/read`` on each resource, as ARM filters collection reads).
The generic list carries no ``properties`` (ARM's generic list never does); Resource Graph rows do, with the
lowercase ``type`` and ``resourceGroup`` ARG stores. A Resource Graph query without ``subscriptions`` runs over
every subscription of the caller's tenant it can see; with them, over those it can see, and 403 AccessDenied
when it can see none of them [unverified: whether ARG refuses or drops a partly unreadable list].
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.azure import arm_errors as errors
from lab.azure import arm_render as render
from lab.azure import resource_graph as arg
from lab.azure.arm_context import (
    Ctx,
    decode_skip,
    encode_skip,
    find_group,
    json_response,
    page,
    rg_scope,
    sub_scope,
)
from lab.azure.bearer import new_request_id
from lab.azure.rbac import has_any_assignment_within
from lab.azure.world import AzureWorld, ManagedCluster, ManagedIdentity, StorageAccount, Subscription, Vault

if TYPE_CHECKING:
    from lab.runtime import Lab

A_SUBSCRIPTION_RESOURCES = "Microsoft.Resources/subscriptions/resources/read"
A_GROUP_RESOURCES = "Microsoft.Resources/subscriptions/resourceGroups/resources/read"
# The api-version from which Resource Graph answers objectArray unless asked otherwise.
OBJECT_ARRAY_SINCE = "2021-03-01"

_FILTER_TERM = re.compile(r"^(resourceType|name|resourceGroup|tagName|tagValue)\s+eq\s+'((?:[^']|'')*)'$",
                          re.IGNORECASE)


@dataclass(frozen=True)
class Tracked:
    """One tracked resource of the world and the ARM type its read action is named after."""

    item: ManagedIdentity | ManagedCluster | Vault | StorageAccount
    arm_type: str  # "Microsoft.KeyVault/vaults"

    @property
    def read_action(self) -> str:
        return f"{self.arm_type}/read"

    @property
    def resource_id(self) -> str:
        return self.item.resource_id


def tracked_resources(world: AzureWorld, subscription_id: str) -> Iterator[Tracked]:
    pools: tuple[tuple[str, list[Any]], ...] = (
        ("Microsoft.ManagedIdentity/userAssignedIdentities", list(world.identities.values())),
        ("Microsoft.ContainerService/managedClusters", list(world.clusters.values())),
        ("Microsoft.KeyVault/vaults", list(world.vaults.values())),
        ("Microsoft.Storage/storageAccounts", list(world.storage_accounts.values())),
    )
    for arm_type, pool in pools:
        for item in pool:
            if item.subscription_id.lower() == subscription_id.lower():
                yield Tracked(item, arm_type)


def render_tracked(lab: Lab, item: Any) -> dict[str, Any]:
    """The resource's full GET body."""
    if isinstance(item, ManagedIdentity):
        return render.identity(item)
    if isinstance(item, ManagedCluster):
        return render.managed_cluster(lab, item)
    if isinstance(item, Vault):
        return render.vault(lab, item)
    if isinstance(item, StorageAccount):
        return render.storage_account(lab, item)
    raise TypeError(type(item))


def visible_subscriptions(world: AzureWorld, claims: dict[str, Any]) -> list[Subscription]:
    """Subscriptions of the caller's tenant where it holds any role (what GET /subscriptions lists)."""
    tenant, oid = str(claims.get("tid", "")).lower(), str(claims.get("oid", ""))
    return [sub for sub in sorted(world.subscriptions.values(), key=lambda s: s.display_name.lower())
            if sub.tenant_id.lower() == tenant and has_any_assignment_within(world, oid, sub.resource_id)]


# ---------------------------------------------------------------------------- generic list


def _generic_filter(text: str | None) -> dict[str, str]:
    """``resourceType eq 'X' and name eq 'Y' ...`` -> {field: value}; anything else is refused."""
    if not text or not text.strip():
        return {}
    terms: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _FILTER_TERM.match(part.strip())
        if match is None or match.group(1).lower() in terms:
            raise errors.invalid_filter(text)
        terms[match.group(1).lower()] = match.group(2).replace("''", "'")
    return terms


def _generic_matches(tracked: Tracked, body: dict[str, Any], terms: dict[str, str]) -> bool:
    checks = {
        "resourcetype": str(body.get("type", "")).lower(),
        "name": str(body.get("name", "")).lower(),
        "resourcegroup": tracked.item.resource_group.lower(),
    }
    for key, wanted in terms.items():
        if key in checks and checks[key] != wanted.lower():
            return False
    tags = {str(k).lower(): str(v) for k, v in (body.get("tags") or {}).items()}
    if "tagname" in terms and terms["tagname"].lower() not in tags:
        return False
    return "tagvalue" not in terms or terms["tagvalue"] in tags.values()


def _generic_item(body: dict[str, Any]) -> dict[str, Any]:
    item = {key: body[key] for key in ("id", "name", "type", "sku", "kind", "location", "identity") if key in body}
    item["tags"] = dict(body.get("tags") or {})
    return item


def list_generic_resources(ctx: Ctx, resource_group: str | None) -> web.Response:
    terms = _generic_filter(ctx.request.query.get("$filter"))
    if resource_group is None:
        scope, action = sub_scope(ctx), A_SUBSCRIPTION_RESOURCES
    else:
        scope, action = rg_scope(ctx, resource_group), A_GROUP_RESOURCES
    if not has_any_assignment_within(ctx.world, ctx.oid, scope):
        raise errors.authorization_failed(ctx.oid, action, ctx.display_scope)
    if resource_group is not None and find_group(ctx, resource_group) is None:
        raise errors.resource_group_not_found(resource_group)
    found = []
    for tracked in tracked_resources(ctx.world, ctx.subscription_id):
        if resource_group is not None and tracked.item.resource_group.lower() != resource_group.lower():
            continue
        if not ctx.may(tracked.resource_id, tracked.read_action):
            continue
        body = render_tracked(ctx.lab, tracked.item)
        if _generic_matches(tracked, body, terms):
            found.append(_generic_item(body))
    found.sort(key=lambda item: str(item["id"]).lower())
    return page(ctx, found)


# ---------------------------------------------------------------------------- Resource Graph


def graph_row(lab: Lab, tracked: Tracked) -> dict[str, Any]:
    """The resource as a row of ARG's ``resources`` table."""
    body = render_tracked(lab, tracked.item)
    return {
        "id": body["id"],
        "name": body["name"],
        "type": tracked.arm_type.lower(),
        "tenantId": lab.azure.tenant_id,
        "kind": body.get("kind", ""),
        "location": body.get("location", ""),
        "resourceGroup": tracked.item.resource_group.lower(),
        "subscriptionId": tracked.item.subscription_id,
        "managedBy": "",
        "sku": body.get("sku"),
        "plan": None,
        "properties": body.get("properties", {}),
        "tags": body.get("tags") or {},
        "identity": body.get("identity"),
        "zones": None,
        "extendedLocation": None,
    }


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.invalid_request_content(f"Error converting value to type 'System.String[]'. Path '{name}'")
    return value


def _option_int(options: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise errors.invalid_request_content(f"The value '{value}' of option '{name}' is invalid. Path 'options.{name}'")
    return value


async def resource_graph_query(ctx: Ctx) -> web.Response:
    body = await ctx.body()
    correlation_id, now = new_request_id(), time.time()
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        raise errors.invalid_request_content("Required property 'query' not found in JSON. Path ''")
    subscriptions = _strings(body.get("subscriptions"), "subscriptions")
    management_groups = _strings(body.get("managementGroups"), "managementGroups")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise errors.invalid_request_content("Error converting value to type 'QueryRequestOptions'. Path 'options'")
    try:
        query = arg.parse(text)
    except arg.QueryError as problem:
        raise errors.resource_graph_invalid_query(problem.token, problem.position, correlation_id, now,
                                                  arg.INVALID_QUERY_TEXT) from None

    visible = visible_subscriptions(ctx.world, ctx.claims)
    if subscriptions:
        wanted = {s.lower() for s in subscriptions}
        scopes = [sub for sub in visible if sub.subscription_id.lower() in wanted]
        if not scopes:
            raise errors.resource_graph_access_denied(correlation_id, now)
    elif management_groups:  # the lab has no management groups: none of them is readable
        raise errors.resource_graph_access_denied(correlation_id, now)
    else:
        scopes = visible

    rows = [graph_row(ctx.lab, tracked)
            for sub in scopes for tracked in tracked_resources(ctx.world, sub.subscription_id)
            if ctx.may(tracked.resource_id, tracked.read_action)]
    rows.sort(key=lambda row: str(row["id"]).lower())
    result = query.run(rows)

    top = _option_int(options, "$top", 1, arg.MAX_TOP) or arg.DEFAULT_TOP
    skip = _option_int(options, "$skip", 0, None)
    if skip is None:
        token = options.get("$skipToken")
        skip = decode_skip(token) if isinstance(token, str) and token else 0
    chunk = result[skip : skip + top]
    answer: dict[str, Any] = {"totalRecords": len(result), "count": len(chunk), "resultTruncated": "false"}
    if skip + top < len(result):
        answer["$skipToken"] = encode_skip(skip + top)
    fmt = options.get("resultFormat") or ("objectArray" if ctx.api_version >= OBJECT_ARRAY_SINCE else "table")
    answer["facets"] = []
    answer["data"] = chunk if fmt == "objectArray" else arg.as_table(chunk)
    return json_response(answer)
