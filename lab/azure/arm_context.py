"""What every ARM handler works with: the request context (caller, authorization), JSON answers, paging,
and the subscription/resource group scopes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab import bodies
from lab.azure import arm_errors as errors
from lab.azure.arm_state import ArmState
from lab.azure.world import AzureWorld, ResourceGroup

if TYPE_CHECKING:
    from lab.runtime import Lab

JSON_TYPE = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, content_type=JSON_TYPE, charset="utf-8", headers=headers
    )


@dataclass
class Ctx:
    request: web.Request
    lab: Lab
    state: ArmState
    claims: dict[str, Any]
    api_version: str
    subscription_id: str = ""  # the subscription the request's path names, as the world spells it

    @property
    def oid(self) -> str:
        return str(self.claims.get("oid", ""))

    @property
    def world(self) -> AzureWorld:
        return self.lab.azure

    @property
    def display_scope(self) -> str:
        return self.request.path.rstrip("/") or "/"

    def authorize(self, scope: str, action: str) -> None:
        if not self.world.permits(self.oid, scope, action):
            raise errors.authorization_failed(self.oid, action, self.display_scope)

    def may(self, scope: str, action: str) -> bool:
        return self.world.permits(self.oid, scope, action)

    async def body(self) -> dict[str, Any]:
        try:
            raw = await self.request.read()
        except web.HTTPRequestEntityTooLarge:
            raise errors.request_content_too_large() from None
        if not raw.strip():
            return {}
        try:
            text = raw.decode("utf-8")
            too_deep = bodies.json_too_deep(text)
            if too_deep is not None:
                raise errors.invalid_request_content(bodies.newtonsoft_depth_error(too_deep))
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.invalid_request_content(str(exc)) from None
        if not isinstance(data, dict):
            raise errors.invalid_request_content("The request content must be a JSON object.")
        return data


def encode_skip(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_skip(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = int(bodies.bounded_loads(base64.urlsafe_b64decode(padded))["offset"])
    except (ValueError, KeyError, TypeError):
        raise errors.invalid_skip_token() from None
    if offset < 0:
        raise errors.invalid_skip_token()
    return offset


def page(ctx: Ctx, items: list[dict[str, Any]]) -> web.Response:
    query = ctx.request.query
    offset = decode_skip(query["$skiptoken"]) if query.get("$skiptoken") else 0
    size = max(1, ctx.state.settings.page_size)
    if query.get("$top"):
        try:
            size = max(1, min(size, int(query["$top"])))
        except ValueError:
            raise errors.invalid_body(
                f"The value '{query['$top']}' of query parameter '$top' is invalid."
            ) from None
    chunk = items[offset : offset + size]
    body: dict[str, Any] = {"value": chunk}
    if offset + size < len(items):
        next_url = ctx.request.url.update_query({"$skiptoken": encode_skip(offset + size)})
        body["nextLink"] = str(next_url)
    return json_response(body)


def only(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise errors.method_not_allowed(method)


def sub_scope(ctx: Ctx) -> str:
    return f"/subscriptions/{ctx.subscription_id or ctx.world.subscription_id}"


def find_group(ctx: Ctx, name: str) -> ResourceGroup | None:
    return ctx.world.group(ctx.subscription_id or ctx.world.subscription_id, name)


def rg_scope(ctx: Ctx, name: str) -> str:
    return f"{sub_scope(ctx)}/resourceGroups/{name}"


def require_group(ctx: Ctx, name: str) -> ResourceGroup:
    group = find_group(ctx, name)
    if group is None:
        raise errors.resource_group_not_found(name)
    return group
