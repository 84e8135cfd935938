"""Access tokens for tests of the lab's resource services: real ones (signed with the lab's Entra keys, as
lab.azure.access_tokens.issue_access_token makes them) and forged variants every service must refuse.

    token = lab_token(lab, principal, "https://vault.azure.net")
    for variant in forged_variants(lab, principal, "https://vault.azure.net"):
        ...variant.name, variant.token, variant.reason (the TokenRejected reason the verifier gives)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from lab.azure.access_tokens import issue_access_token, sts_issuer
from lab.keys import KeySet, SigningKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def lab_claims(lab, principal, audience: str, **overrides: Any) -> dict[str, Any]:
    """The claims the lab's Entra would put in a token for ``principal`` and ``audience``, then overrides."""
    token, _ = issue_access_token(lab, principal, audience, appidacr="1")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(overrides)
    return claims


def sign_with_lab(lab, claims: dict[str, Any]) -> str:
    key = lab.entra_keys.current
    return key.sign(claims, headers={"typ": "JWT", "x5t": key.kid})


def lab_token(lab, principal, audience: str, **overrides: Any) -> str:
    """A token the lab accepts (unless ``overrides`` break it), signed with the lab's current Entra key."""
    if not overrides:
        return issue_access_token(lab, principal, audience, appidacr="1")[0]
    return sign_with_lab(lab, lab_claims(lab, principal, audience, **overrides))


FORGED_NAMES = (
    "alg-none",
    "hs256-public-key",
    "unknown-kid",
    "other-lab-keys",
    "lab-kid-other-key",
    "tampered-payload",
    "expired",
    "not-yet-valid",
    "wrong-audience",
    "unknown-tenant-issuer",
    "issuer-not-tenant",
    "garbage",
)


@dataclass(frozen=True)
class Forged:
    name: str
    token: str
    reason: str  # what lab.azure.access_tokens.verify_access_token raises


def forged_variants(lab, principal, audience: str, other_principal=None) -> list[Forged]:
    """Tokens a service must refuse, each for a different reason. ``other_principal`` (if given) is whose
    object id the tampered variant claims (e.g. an Owner's), so a tampered token would be worth something."""
    now = int(lab.entra_clock.now())
    good = lab_token(lab, principal, audience)
    header_b64, payload_b64, signature_b64 = good.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    claims = lab_claims(lab, principal, audience)
    key = lab.entra_keys.current

    variants: list[Forged] = []

    # alg "none": no signature at all.
    none_header = {"typ": "JWT", "alg": "none", "kid": key.kid}
    variants.append(Forged("alg-none", f"{_segment(none_header)}.{_segment(claims)}.", "algorithm"))

    # HS256 keyed with the lab's public key (the classic RS/HS confusion).
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"typ": "JWT", "alg": "HS256", "kid": key.kid}
    signing_input = f"{_segment(hs_header)}.{_segment(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    variants.append(Forged("hs256-public-key", f"{signing_input}.{_b64(mac)}", "algorithm"))

    # A key the lab never published, under a kid nobody knows.
    stranger = SigningKey.generate()
    variants.append(
        Forged(
            "unknown-kid",
            stranger.sign(claims, headers={"typ": "JWT", "kid": "unknown-" + uuid.uuid4().hex}),
            "signature",
        )
    )

    # Another lab's Entra keys (its own kid).
    other_lab = KeySet()
    variants.append(
        Forged("other-lab-keys", other_lab.current.sign(claims, headers={"typ": "JWT"}), "signature")
    )

    # Another key claiming this lab's kid: the signature does not verify.
    variants.append(
        Forged(
            "lab-kid-other-key", stranger.sign(claims, headers={"typ": "JWT", "kid": key.kid}), "signature"
        )
    )

    # A real token whose payload was edited after signing.
    tampered = dict(claims)
    if other_principal is not None:
        tampered["oid"] = tampered["sub"] = other_principal.principal_id
        tampered["appid"] = other_principal.client_id
    else:
        tampered["oid"] = tampered["sub"] = str(uuid.uuid4())
    variants.append(
        Forged("tampered-payload", f"{header_b64}.{_segment(tampered)}.{signature_b64}", "signature")
    )
    assert header.get("kid") == key.kid

    # Signed by the lab, but wrong in content.
    variants.append(
        Forged(
            "expired",
            sign_with_lab(lab, {**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
            "expired",
        )
    )
    variants.append(
        Forged(
            "not-yet-valid",
            sign_with_lab(lab, {**claims, "iat": now + 3600, "nbf": now + 3600, "exp": now + 7200}),
            "not_yet_valid",
        )
    )
    variants.append(
        Forged(
            "wrong-audience", sign_with_lab(lab, {**claims, "aud": "https://graph.microsoft.com"}), "audience"
        )
    )
    unknown_tenant = str(uuid.uuid4())
    variants.append(
        Forged(
            "unknown-tenant-issuer",
            sign_with_lab(lab, {**claims, "iss": sts_issuer(unknown_tenant), "tid": unknown_tenant}),
            "issuer",
        )
    )
    variants.append(
        Forged("issuer-not-tenant", sign_with_lab(lab, {**claims, "iss": "https://evil.example/"}), "issuer")
    )
    variants.append(Forged("garbage", "not-a-jwt", "malformed"))
    assert tuple(v.name for v in variants) == FORGED_NAMES
    return variants


def forged_variant(lab, principal, audience: str, name: str, other_principal=None) -> Forged:
    return next(v for v in forged_variants(lab, principal, audience, other_principal) if v.name == name)
