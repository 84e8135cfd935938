"""Access tokens the lab's Entra issues, and the one verifier ARM, Key Vault and Storage share.

Tokens are v1 app-only JWTs (RS256, the lab's Entra keys) with the claims a managed identity gets:
aud, iss https://sts.windows.net/<tid>/, iat/nbf/exp, appid, appidacr, idp, idtyp, oid, sub, tid,
ver 1.0, uti, rh, and xms_mirid for managed identities.
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from lab.azure.world import ManagedIdentity, Principal

if TYPE_CHECKING:
    from lab.runtime import Lab


def sts_issuer(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


def issue_access_token(lab: Lab, principal: Principal, resource: str, appidacr: str,
                       roles: Iterable[str] = ()) -> tuple[str, int]:
    """A signed access token for ``resource`` (no ``/.default``); returns (token, expires_in seconds).

    ``appidacr`` is "1" for a client secret and "2" for a certificate or federated assertion; ``roles`` are the
    application permissions granted on that resource (app-only tokens carry them in ``roles``).
    """
    now = int(lab.entra_clock.now())
    expires_in = random.randint(3600, 5399)  # Entra gives managed identities 60-90 minutes.
    claims: dict[str, Any] = {
        "aud": resource,
        "iss": sts_issuer(principal.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
        "aio": base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("="),
        "appid": principal.client_id,
        "appidacr": appidacr,
        "idp": sts_issuer(principal.tenant_id),
        "idtyp": "app",
        "oid": principal.principal_id,
        "rh": "0.A" + base64.urlsafe_b64encode(os.urandom(18)).decode().rstrip("="),
        "sub": principal.principal_id,
        "tid": principal.tenant_id,
        "uti": base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="),
        "ver": "1.0",
    }
    granted = sorted(set(roles))
    if granted:
        claims["roles"] = granted
    if isinstance(principal, ManagedIdentity):
        claims["xms_mirid"] = principal.resource_id
    headers = {"typ": "JWT", "x5t": lab.entra_keys.current.kid}
    return lab.entra_keys.current.sign(claims, headers=headers), expires_in


@dataclass
class TokenRejected(Exception):
    """Why a bearer token was refused. ``reason`` is one of:
    missing, malformed, algorithm, signature, expired, not_yet_valid, audience, issuer."""

    reason: str
    detail: str = ""
    claims: dict[str, Any] | None = None


# A token's signature is checked once per signing key: the answer for the same token and key cannot change, and
# each check decoded it three times (about a tenth of the lab's CPU when fifty probes ran at once). Its times,
# audience and issuer are checked at every use, and a key no longer published fails it as before.
_SIGNATURE_CHECKED: dict[str, tuple[str, object, dict[str, Any]]] = {}  # token -> (kid, the key that verified it, claims)
_SIGNATURE_CHECKED_MAX = 4096


def verify_access_token(lab: Lab, token: str | None, audiences: Iterable[str]) -> dict[str, Any]:
    """Claims of a token signed by this lab's Entra for one of ``audiences``; raises :class:`TokenRejected`."""
    if not token:
        raise TokenRejected("missing")
    claims = dict(_signed_claims(lab, token))
    now = lab.entra_clock.now()
    if "exp" not in claims or now >= float(claims["exp"]) + 300:  # services allow 5 minutes of clock skew
        raise TokenRejected("expired", "", claims)
    if "nbf" in claims and now + 300 < float(claims["nbf"]):
        raise TokenRejected("not_yet_valid", "", claims)
    wanted = {a.rstrip("/").lower() for a in audiences}
    if str(claims.get("aud", "")).rstrip("/").lower() not in wanted:
        raise TokenRejected("audience", str(claims.get("aud")), claims)
    if claims.get("iss") != sts_issuer(str(claims.get("tid", ""))) or claims.get("tid") not in lab.azure.tenants:
        raise TokenRejected("issuer", str(claims.get("iss")), claims)
    return claims


def _signed_claims(lab: Lab, token: str) -> dict[str, Any]:
    """The claims of a token whose RS256 signature one of the lab's published Entra keys verifies (shared with
    the cache: callers copy before changing them)."""
    checked = _SIGNATURE_CHECKED.get(token)
    if checked is not None:
        kid, key, claims = checked
        if lab.entra_keys.find(kid) is key:
            return claims
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRejected("malformed", str(exc)) from None
    if header.get("alg") != "RS256":
        raise TokenRejected("algorithm", str(header.get("alg")), unverified)
    kid = str(header.get("kid", ""))
    found = lab.entra_keys.find(kid)
    if found is None:
        raise TokenRejected("signature", "unknown signing key", unverified)
    try:
        claims = jwt.decode(
            token, found.private_key.public_key(), algorithms=["RS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected("signature", str(exc), unverified) from None
    if len(_SIGNATURE_CHECKED) >= _SIGNATURE_CHECKED_MAX:
        _SIGNATURE_CHECKED.clear()
    _SIGNATURE_CHECKED[token] = (kid, found, claims)
    return claims
