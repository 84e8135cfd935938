"""Entra's cache of external issuers' OIDC metadata (discovery document + JWKS), keyed by issuer.

Entra fetches an issuer's discovery document and JWKS to validate a federated assertion and keeps what it
fetched for a while. A token signed with a key the cached copy lacks is refused with AADSTS7000272 until the
copy expires, even when the issuer already publishes the key: after ``az aks oidc-issuer rotate-signing-keys``
(the new key signs at once) or for a new issuer whose keys were not yet published when Entra first looked.
Practitioners report 20-30+ minutes for this on Azure (reference real-cluster-behaviours §5; [unverified],
Microsoft documents no value). What the cache holds, its key and its lifetime are inferred from those reports:

- keyed by the token's ``iss`` exactly as presented ([unverified]: whether Entra normalises it is unknown);
- only a successfully parsed key set is kept; a failed fetch (AADSTS50166/90061/900612) is answered again on
  the next request ([unverified]); requests that arrive while a fetch is under way share its outcome;
- an unknown ``kid`` does not make Entra fetch again before expiry (what the reports of a long 7000272 after a
  rotation imply; [unverified]).

The lab's default is :data:`DEFAULT_SECONDS` (two minutes), not Azure's half hour: long enough that a rotation
visibly fails for a while, and longer than the probe's default retry bound (30 s), so the harness reports the
stale copy as Azure users meet it instead of quietly passing after retries; short enough to wait out by hand.
``0`` turns the cache off (every assertion fetches again). A fresh lab starts with an empty cache, and
``lab ctl entra --metadata-cache-seconds N`` empties it (lab.control.set_entra).

Pure state: the clock is injected (monotonic by default) so tests can expire entries without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SECONDS = 120.0
MAX_SECONDS = 86_400  # a day


@dataclass(frozen=True)
class CachedKeys:
    keys: list[dict[str, Any]]
    fetched_at: float  # on the cache's clock


@dataclass
class IssuerMetadataCache:
    seconds: float = DEFAULT_SECONDS
    clock: Callable[[], float] = time.monotonic
    entries: dict[str, CachedKeys] = field(default_factory=dict)
    # issuer -> the fetch under way, which exchanges arriving meanwhile wait for (lab.azure.federation)
    pending: dict[str, asyncio.Future[list[dict[str, Any]]]] = field(default_factory=dict)

    def fresh(self, issuer: str) -> list[dict[str, Any]] | None:
        """The signing keys Entra still holds for ``issuer``, or None when it must fetch them again."""
        entry = self.entries.get(issuer)
        if entry is None or self.seconds <= 0 or self.clock() - entry.fetched_at >= self.seconds:
            return None
        return entry.keys

    def store(self, issuer: str, keys: list[dict[str, Any]]) -> None:
        """Keep the latest fetch, even with the cache off, so turning it on again never revives an older copy."""
        self.entries[issuer] = CachedKeys(list(keys), self.clock())

    def forget(self, issuer: str) -> None:
        self.entries.pop(issuer, None)

    def age(self, issuer: str) -> float | None:
        entry = self.entries.get(issuer)
        return None if entry is None else self.clock() - entry.fetched_at

    def snapshot(self) -> dict[str, Any]:
        """What ``lab ctl status`` shows: the setting and, per cached issuer, its age and key ids."""
        return {
            "metadata_cache_seconds": self.seconds,
            "cached_issuers": {
                issuer: {"age_seconds": round(self.clock() - entry.fetched_at, 1),
                         "kids": [str(key.get("kid")) for key in entry.keys]}
                for issuer, entry in sorted(self.entries.items())
            },
        }
