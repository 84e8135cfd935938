"""Key Vault's compound identity: an access policy with an applicationId grants only to a user's delegated token
that the application obtained, never to the application's own (app-only) token, which is what a workload's exchanged
token is. Pure: the vault's access-policy authorization, no lab running."""

from __future__ import annotations

from typing import Any

import pytest

from lab.azure.keyvault import ACTION_GET, KvError, _authorize
from lab.azure.world import Vault

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9"
PRINCIPAL_ID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
USER_ID = "11111111-2222-4333-8444-555555555555"


def _vault(*policies: dict[str, Any]) -> Vault:
    vault = Vault(name="finance-kv", subscription_id="00000000-0000-4000-8000-000000000001", resource_group="rg",
                  location="eastus", tenant_id=TENANT, enable_rbac_authorization=False)
    vault.access_policies = [{"tenantId": TENANT, "permissions": {"secrets": ["get"]}, **p} for p in policies]
    return vault


def _app_token(oid: str = PRINCIPAL_ID, appid: str = CLIENT_ID) -> dict[str, Any]:
    return {"oid": oid, "appid": appid, "tid": TENANT, "idtyp": "app", "iss": f"https://sts.windows.net/{TENANT}/"}


def _allowed(vault: Vault, claims: dict[str, Any]) -> bool:
    try:
        _authorize(None, vault, claims, ACTION_GET, "get", vault.resource_id)  # type: ignore[arg-type]
    except KvError as refused:
        assert (refused.status, refused.inner) == (403, "AccessDenied")
        return False
    return True


def test_an_application_reads_through_its_own_policy_without_application_id() -> None:
    assert _allowed(_vault({"objectId": PRINCIPAL_ID}), _app_token())


@pytest.mark.parametrize("application_id", [CLIENT_ID, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"])
def test_a_compound_policy_does_not_cover_an_app_only_token(application_id: str) -> None:
    # the common mistake: az keyvault set-policy --object-id <principal id> --application-id <client id>
    assert not _allowed(_vault({"objectId": PRINCIPAL_ID, "applicationId": application_id}), _app_token())


def test_a_compound_policy_covers_the_user_through_that_application_only() -> None:
    vault = _vault({"objectId": USER_ID, "applicationId": CLIENT_ID})
    delegated = {**_app_token(oid=USER_ID), "idtyp": "user", "scp": "user_impersonation"}
    assert _allowed(vault, delegated)
    assert not _allowed(vault, {**delegated, "appid": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"})


def test_the_objects_own_policy_still_grants_beside_a_compound_one() -> None:
    vault = _vault({"objectId": PRINCIPAL_ID, "applicationId": CLIENT_ID}, {"objectId": PRINCIPAL_ID})
    assert _allowed(vault, _app_token())
