"""What ARM, Key Vault and Storage share on the wire: reading a bearer token off a request, request ids,
and the ``appid=...;oid=...;iss=...`` caller description Key Vault prints in its errors.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class AuthorizationHeader:
    """``present`` False: no header at all. ``token`` None with ``present``: not a usable Bearer header."""

    present: bool
    scheme: str = ""
    token: str | None = None


def read_authorization(request: web.Request) -> AuthorizationHeader:
    raw = request.headers.get("Authorization")
    if raw is None:
        return AuthorizationHeader(present=False)
    scheme, _, rest = raw.strip().partition(" ")
    token = rest.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return AuthorizationHeader(present=True, scheme=scheme, token=None)
    return AuthorizationHeader(present=True, scheme=scheme, token=token)


def new_request_id() -> str:
    return str(uuid.uuid4())


def caller_description(claims: dict[str, Any], with_mirid: bool = False) -> str:
    """Key Vault's ``appid=<appid>;oid=<oid>;iss=<iss>`` (managed identities add ``;xms_mirid=...``)."""
    text = f"appid={claims.get('appid', '')};oid={claims.get('oid', '')};iss={claims.get('iss', '')}"
    if with_mirid and claims.get("xms_mirid"):
        text += f";xms_mirid={claims['xms_mirid']}"
    return text


def iso8601(ts: float) -> str:
    """ARM timestamps: ``2024-05-01T10:11:12.1234567Z`` (seven fractional digits, as .NET writes them)."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def dotnet_utc(ts: float) -> str:
    """The ``M/d/yyyy h:mm:ss tt`` form ARM uses in ExpiredAuthenticationToken messages."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    hour = moment.hour % 12 or 12
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {moment:%p}"


def client_address(request: web.Request) -> str:
    return request.remote or "127.0.0.1"


def address_in_rules(address: str, rules: list[str]) -> bool:
    """Whether an address falls in any of a firewall's IP rules (single addresses or CIDR ranges)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for rule in rules:
        try:
            if ip in ipaddress.ip_network(rule.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False
