"""Entra's issuer-metadata cache answers simultaneous exchanges with one fetch: those that find no fresh copy
while a fetch of the same issuer is under way wait for it and share its outcome (keys, or the AADSTS code)."""

from __future__ import annotations

import asyncio
import json

import pytest

from lab.azure.aadsts import AadstsError
from lab.azure.federation import FetchFailed, FetchResult, issuer_signing_keys
from lab.azure.metadata_cache import IssuerMetadataCache

ISSUER = "https://127.0.0.1:1/eastus/tenant/cluster/"
KEYS = [{"kty": "RSA", "kid": "k1", "use": "sig", "n": "AQAB", "e": "AQAB"}]


def counting_fetch(fail: bool = False) -> tuple[list[str], object]:
    asked: list[str] = []

    async def fetch(url: str) -> FetchResult:
        asked.append(url)
        await asyncio.sleep(0.05)  # the fetch is under way while the other exchanges arrive
        if fail:
            raise FetchFailed(url)
        if url.endswith("/.well-known/openid-configuration"):
            return FetchResult(200, json.dumps({"jwks_uri": ISSUER + "openid/v1/jwks"}).encode())
        return FetchResult(200, json.dumps({"keys": KEYS}).encode())

    return asked, fetch


def test_simultaneous_exchanges_share_one_fetch() -> None:
    cache = IssuerMetadataCache()
    asked, fetch = counting_fetch()

    async def many() -> list[list[dict]]:
        return await asyncio.gather(*(issuer_signing_keys(ISSUER, fetch, cache) for _ in range(20)))

    answers = asyncio.run(many())
    assert asked == [ISSUER.rstrip("/") + "/.well-known/openid-configuration", ISSUER + "openid/v1/jwks"]
    assert all(answer == KEYS for answer in answers) and not cache.pending
    assert asyncio.run(issuer_signing_keys(ISSUER, fetch, cache)) == KEYS and len(asked) == 2  # cached now


def test_a_failed_fetch_is_every_waiters_answer_and_the_next_request_fetches_again() -> None:
    cache = IssuerMetadataCache()
    asked, fetch = counting_fetch(fail=True)

    async def many() -> list[object]:
        return await asyncio.gather(*(issuer_signing_keys(ISSUER, fetch, cache) for _ in range(5)),
                                    return_exceptions=True)

    answers = asyncio.run(many())
    assert len(asked) == 1 and not cache.pending and ISSUER not in cache.entries
    assert all(isinstance(a, AadstsError) and "AADSTS50166" in str(a) for a in answers)
    with pytest.raises(AadstsError):
        asyncio.run(issuer_signing_keys(ISSUER, fetch, cache))
    assert len(asked) == 2  # not remembered: asked again


def test_with_the_cache_off_every_exchange_fetches() -> None:
    asked, fetch = counting_fetch()

    async def many() -> list[list[dict]]:
        return await asyncio.gather(*(issuer_signing_keys(ISSUER, fetch, None) for _ in range(3)))

    assert asyncio.run(many()) == [KEYS] * 3 and len(asked) == 6


def test_with_the_cache_set_to_zero_every_exchange_fetches() -> None:
    cache = IssuerMetadataCache(seconds=0)
    asked, fetch = counting_fetch()

    async def many() -> list[list[dict]]:
        return await asyncio.gather(*(issuer_signing_keys(ISSUER, fetch, cache) for _ in range(3)))

    assert asyncio.run(many()) == [KEYS] * 3 and len(asked) == 6 and cache.entries[ISSUER].keys == KEYS
