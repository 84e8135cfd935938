"""The lab's Microsoft Graph v1.0: applications, their federated identity credentials, service principals and
directory object lookups (``errors``: the catalogue; ``directory``: operations on the world model; ``render``:
JSON shapes; ``service``: HTTP, tokens, permissions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from lab.azure.access_tokens import verify_access_token
from lab.azure.graph.service import build_app as build_service_app
from lab.azure.world import GRAPH_APP_ID, GRAPH_AUDIENCE

if TYPE_CHECKING:
    from lab.runtime import Lab


def audiences(lab: Lab) -> tuple[str, ...]:
    """What a Graph token's ``aud`` may be: Graph's URI, its app id, or the lab's Graph address."""
    return (GRAPH_AUDIENCE, GRAPH_APP_ID, lab.endpoints["graph"])


def build_app(lab: Lab) -> web.Application:
    return build_service_app(
        lab.azure,
        lambda token: verify_access_token(lab, token, audiences(lab)),
        lambda: lab.endpoints["graph"],
        lab.authority_host,
        lab.faults,
    )
