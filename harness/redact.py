"""Nothing the harness prints or writes may hold a raw token or a secret value.

Tokens become decoded claims plus a short sha256 fingerprint; any JWT-shaped text and every known secret
value (the harness's client secret, the kubeconfig's bearer token, ...) is replaced wherever it appears, and so
is the user name and password of any URL (``https://user:pass@host/`` -> ``https://[REDACTED]@host/``).
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
# scheme://userinfo@: greedy up to the authority's last "@", so a password holding "@" is masked whole.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")
# what every match of _USERINFO_RE holds: found by a scan for its literal "://" (30-40x faster over a whole run.json,
# where _USERINFO_RE tries a scheme at every word)
_USERINFO_HINT_RE = re.compile(r"://[^/?#\s]*@")


def has_userinfo(url: str) -> bool:
    return bool(_USERINFO_RE.search(url))


def mask_userinfo(text: str) -> str:
    """``https://user:pass@host/`` -> ``https://[REDACTED]@host/``, wherever a URL appears in ``text``."""
    if not _USERINFO_HINT_RE.search(text):
        return text
    return _USERINFO_RE.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def fingerprint(data: str | bytes) -> str:
    """The first 12 hex characters of sha256(data): enough to correlate, useless to replay."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:12]


class Redactor:
    """Scrubs JWTs and the registered secret values from strings and nested JSON-like data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._longest_first: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET_LEN:
                self._secrets.add(secret)
        self._longest_first = sorted(self._secrets, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._longest_first:
            if secret in value:
                value = value.replace(secret, REDACTED)
        # the substring tests skip the regular expressions where they cannot match (a run's facts are ~800
        # strings a workload, redacted twice): a JWT begins "eyJ", a URL's userinfo needs "://" and "@"
        if "eyJ" in value:
            value = _JWT_RE.sub(REDACTED_JWT, value)
        return mask_userinfo(value) if "@" in value and "://" in value else value

    def __call__(self, value: Any) -> Any:
        """A redacted deep copy of ``value`` (dicts, lists, tuples, strings; other scalars as they are)."""
        known: dict[str, str] = {}  # the keys redacted so far: a run's facts repeat a few hundred ~25,000 times

        def key(name: Any) -> Any:
            if not isinstance(name, str):
                return name
            if name not in known:
                known[name] = self.text(name)
            return known[name]

        def copy(value: Any) -> Any:
            if isinstance(value, str):
                return self.text(value)
            if isinstance(value, dict):
                return {key(k): copy(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [copy(v) for v in value]
            return value

        return copy(value)


def contains_secret(text: str, secrets: Iterable[str]) -> list[str]:
    """Which of ``secrets`` (fingerprints, never the values) occur in ``text``: for tests and self-checks."""
    found = [fingerprint(s) for s in secrets if s and s in text]
    if _JWT_RE.search(text):
        found.append("jwt")
    if has_userinfo(text.replace(f"://{REDACTED}@", "://")):
        found.append("url-userinfo")
    return found
