"""lab.azure.access_tokens: a token's signature is checked once per key; every other check runs at every use."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from lab.azure.access_tokens import TokenRejected, issue_access_token, verify_access_token
from lab.azure.world import KEYVAULT_AUDIENCE, Principal
from lab.keys import KeySet

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def fake_lab() -> SimpleNamespace:
    return SimpleNamespace(entra_keys=KeySet(), entra_clock=Clock(), azure=SimpleNamespace(tenants={TENANT: {}}))


def token_for(lab: SimpleNamespace, audience: str = KEYVAULT_AUDIENCE) -> str:
    principal = Principal("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", TENANT, "app")
    return issue_access_token(lab, principal, audience, "2")[0]  # type: ignore[arg-type]


def reason(lab: SimpleNamespace, token: str, audiences: list[str]) -> str | None:
    try:
        verify_access_token(lab, token, audiences)  # type: ignore[arg-type]
    except TokenRejected as refused:
        return refused.reason
    return None


def test_a_token_verified_once_still_meets_every_other_check_at_each_use() -> None:
    lab = fake_lab()
    token = token_for(lab)
    assert reason(lab, token, [KEYVAULT_AUDIENCE]) is None
    claims = verify_access_token(lab, token, [KEYVAULT_AUDIENCE])  # type: ignore[arg-type]
    claims["aud"] = "changed by a caller"
    assert reason(lab, token, [KEYVAULT_AUDIENCE]) is None  # the cached claims are not the caller's copy
    assert reason(lab, token, ["https://storage.azure.com"]) == "audience"
    lab.entra_clock.offset = 6 * 3600
    assert reason(lab, token, [KEYVAULT_AUDIENCE]) == "expired"


@pytest.mark.parametrize("retire", [True, False])
def test_a_token_whose_key_is_no_longer_published_is_refused_after_it_was_accepted(retire: bool) -> None:
    lab = fake_lab()
    token = token_for(lab)
    assert reason(lab, token, [KEYVAULT_AUDIENCE]) is None
    lab.entra_keys.rotate(keep_old_for_seconds=0 if retire else 3600)
    assert reason(lab, token, [KEYVAULT_AUDIENCE]) == ("signature" if retire else None)


def test_another_lab_with_other_keys_refuses_a_token_this_one_accepted() -> None:
    lab, other = fake_lab(), fake_lab()
    token = token_for(lab)
    assert reason(lab, token, [KEYVAULT_AUDIENCE]) is None
    assert reason(other, token, [KEYVAULT_AUDIENCE]) == "signature"
