"""JWT decoding WITHOUT verification, fingerprints and redaction (standard library only)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    from typing import Any

# Three base64url segments, the first starting with eyJ (a JSON object's base64url encoding).
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
REDACTED_JWT = "[REDACTED-JWT]"
# scheme://userinfo@: greedy up to the authority's last "@", so a password holding "@" is masked whole.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")
REDACTED_USERINFO = "[REDACTED]@"


class JwtDecodeError(ValueError):
    """The text is not a decodable JWT (compact serialization)."""


def fingerprint(data: str | bytes) -> str:
    """First 12 hex characters of sha256(data): safe to print, enough to tell tokens apart."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:12]


def redact(text: str) -> str:
    """Replace anything that looks like a JWT, and the user name and password of any URL, with a marker."""
    return _USERINFO_RE.sub(lambda m: m.group(1) + REDACTED_USERINFO, _JWT_RE.sub(REDACTED_JWT, text))


def _b64url_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtDecodeError(f"{what} is not base64url-encoded JSON") from exc
    if not isinstance(value, dict):
        raise JwtDecodeError(f"{what} is not a JSON object")
    return value


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (header, claims) of a compact JWT without checking its signature."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JwtDecodeError(f"expected 3 dot-separated segments, found {len(parts)}")
    return _b64url_json(parts[0], "header"), _b64url_json(parts[1], "payload")


def pick(claims: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The subset of ``claims`` named in ``names`` (missing ones omitted)."""
    return {name: claims[name] for name in names if name in claims}
