"""Nothing the harness prints or writes may hold a raw token or a secret value.

Tokens become decoded claims plus a short sha256 fingerprint; any JWT-shaped text and every known secret
value (the harness's client secret, the kubeconfig's bearer token, ...) is replaced wherever it appears.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
REDACTED_JWT = "[REDACTED-JWT]"
REDACTED = "[REDACTED]"
_MIN_SECRET_LEN = 8


def fingerprint(data: str | bytes) -> str:
    """The first 12 hex characters of sha256(data): enough to correlate, useless to replay."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:12]


class Redactor:
    """Scrubs JWTs and the registered secret values from strings and nested JSON-like data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET_LEN:
                self._secrets.add(secret)

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _JWT_RE.sub(REDACTED_JWT, value)

    def __call__(self, value: Any) -> Any:
        """A redacted deep copy of ``value`` (dicts, lists, tuples, strings; other scalars as they are)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)) if isinstance(k, str) else k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


def contains_secret(text: str, secrets: Iterable[str]) -> list[str]:
    """Which of ``secrets`` (fingerprints, never the values) occur in ``text``: for tests and self-checks."""
    found = [fingerprint(s) for s in secrets if s and s in text]
    if _JWT_RE.search(text):
        found.append("jwt")
    return found
