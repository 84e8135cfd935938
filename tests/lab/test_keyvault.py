"""The lab's Key Vault data plane through azure-keyvault-secrets (ClientSecretCredential against the lab's
Entra) and, for the wire details, plain ``requests``.

Each test makes its own vault, secrets and app registrations through lab.azure on the lab's loop.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure_clients import new_app, secret_credential
from forged_tokens import FORGED_NAMES, forged_variant, lab_token

from lab.azure.access_tokens import sts_issuer
from lab.azure.world import Vault

KV_AUD = "https://vault.azure.net"
GET_ACTION = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


class KvLab:
    def __init__(self, lab, lab_thread) -> None:
        self.lab, self.lab_thread = lab, lab_thread
        self.ca = str(lab.state_dir / "ca.pem")

    def run(self, fn) -> Any:
        return self.lab_thread.call(fn).result(30)

    def vault(self, rbac: bool = True, secrets: dict[str, str] | None = None) -> Vault:
        lab = self.lab
        rg = f"kvtest-{uuid.uuid4().hex[:8]}"
        name = f"kv{uuid.uuid4().hex[:10]}"

        def make() -> Vault:
            lab.azure.add_resource_group(rg)
            vault = Vault(
                name=name,
                subscription_id=lab.subscription_id,
                resource_group=rg,
                location="eastus",
                tenant_id=lab.tenant_id,
                enable_rbac_authorization=rbac,
            )
            for key, value in (secrets if secrets is not None else {"db-password": "s3cret-value"}).items():
                vault.set_secret(key, value)
            lab.azure.vaults[name] = vault
            return vault

        return self.run(make)

    def app(self, role: str | None = None, scope: str | None = None):
        return new_app(self.lab, self.lab_thread, "kv-test", role, scope)

    def credential(self, app_and_secret) -> ClientSecretCredential:
        return secret_credential(self.lab, app_and_secret)

    def client(self, vault: Vault | str, app_and_secret) -> SecretClient:
        name = vault if isinstance(vault, str) else vault.name
        return SecretClient(
            vault_url=self.lab.vault_url(name),
            credential=self.credential(app_and_secret),
            verify_challenge_resource=False,
        )

    def raw(
        self,
        vault_name: str,
        path: str,
        token: str | None = None,
        method: str = "GET",
        api: str | None = "7.4",
        **kwargs: Any,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        params = {"api-version": api} if api else {}
        return requests.request(
            method,
            self.lab.vault_url(vault_name) + path,
            headers=headers,
            params=params,
            verify=self.ca,
            timeout=30,
            **kwargs,
        )


@pytest.fixture(scope="module")
def kv(lab, lab_thread) -> KvLab:
    return KvLab(lab, lab_thread)


@pytest.fixture(autouse=True)
def _trust_the_lab(lab, monkeypatch) -> None:
    # azure-core's requests transport trusts REQUESTS_CA_BUNDLE (the machine's bundle otherwise)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.state_dir / "ca.pem"))


def inner_code(error: HttpResponseError) -> str | None:
    inner = getattr(error.error, "innererror", None) or {}
    return inner.get("code") if isinstance(inner, dict) else None


# ---------------------------------------------------------------------------- SDK: allowed


def test_secrets_user_reads_the_secret(kv: KvLab, lab) -> None:
    vault = kv.vault(secrets={"db-password": "s3cret-value"})
    client = kv.client(vault, kv.app("Key Vault Secrets User", vault.resource_id))
    secret = client.get_secret("db-password")
    assert secret.value == "s3cret-value"
    assert secret.name == "db-password"
    version = vault.secrets["db-password"][-1].version
    assert secret.properties.version == version
    assert secret.properties.enabled is True
    assert secret.properties.recovery_level == "Recoverable+Purgeable"
    assert secret.id == f"{lab.vault_url(vault.name)}secrets/db-password/{version}"
    assert client.get_secret("DB-PASSWORD", version).value == "s3cret-value"
    assert [p.name for p in client.list_properties_of_secrets()] == ["db-password"]


def test_roles_at_the_secret_and_ancestor_scopes(kv: KvLab, lab) -> None:
    vault = kv.vault(secrets={"one": "1", "two": "2"})
    at_secret = kv.client(vault, kv.app("Key Vault Secrets User", f"{vault.resource_id}/secrets/one"))
    assert at_secret.get_secret("one").value == "1"
    with pytest.raises(HttpResponseError) as refused:
        at_secret.get_secret("two")
    assert inner_code(refused.value) == "ForbiddenByRbac"
    at_group = kv.client(
        vault,
        kv.app(
            "Key Vault Secrets User",
            f"/subscriptions/{lab.subscription_id}/resourceGroups/{vault.resource_group}",
        ),
    )
    assert at_group.get_secret("two").value == "2"
    at_subscription = kv.client(
        vault, kv.app("Key Vault Secrets Officer", f"/subscriptions/{lab.subscription_id}")
    )
    assert at_subscription.get_secret("one").value == "1"


def test_set_secret_needs_the_set_action(kv: KvLab) -> None:
    vault = kv.vault(secrets={})
    officer = kv.client(vault, kv.app("Key Vault Secrets Officer", vault.resource_id))
    stored = officer.set_secret("api-key", "v1", content_type="text/plain", tags={"owner": "team-a"})
    assert stored.value == "v1" and stored.properties.content_type == "text/plain"
    assert stored.properties.tags == {"owner": "team-a"}
    officer.set_secret("api-key", "v2")
    assert officer.get_secret("api-key").value == "v2"
    versions = list(officer.list_properties_of_secret_versions("api-key"))
    assert len(versions) == 2
    assert officer.get_secret("api-key", stored.properties.version).value == "v1"
    user = kv.client(vault, kv.app("Key Vault Secrets User", vault.resource_id))
    with pytest.raises(HttpResponseError) as refused:
        user.set_secret("api-key", "v3")
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'" in str(refused.value)


# ---------------------------------------------------------------------------- SDK: refused


def test_no_role_is_forbidden_by_rbac_with_the_real_text(kv: KvLab, lab) -> None:
    vault = kv.vault()
    app_and_secret = kv.app()
    app = app_and_secret[0]
    with pytest.raises(HttpResponseError) as refused:
        kv.client(vault, app_and_secret).get_secret("db-password")
    error = refused.value
    assert error.status_code == 403 and error.error.code == "Forbidden"
    assert inner_code(error) == "ForbiddenByRbac"
    resource = f"{vault.resource_id}/secrets/db-password".lower()
    assert error.error.message == (
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments "
        "or role definitions were changed recently, please observe propagation time.\r\nCaller: "
        f"appid={app.client_id};oid={app.principal_id};iss={sts_issuer(lab.tenant_id)}\r\nAction: "
        f"'{GET_ACTION}'\r\nResource: '{resource}'\r\nAssignment: (not found)\r\nDenyAssignmentId: "
        f"null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {vault.name};location=eastus\r\n"
    )


def test_key_vault_reader_alone_cannot_read_values(kv: KvLab) -> None:
    vault = kv.vault()
    client = kv.client(vault, kv.app("Key Vault Reader", vault.resource_id))
    assert [p.name for p in client.list_properties_of_secrets()] == ["db-password"]  # metadata is allowed
    with pytest.raises(HttpResponseError) as refused:
        client.get_secret("db-password")
    assert inner_code(refused.value) == "ForbiddenByRbac"
    assert f"Action: '{GET_ACTION}'" in refused.value.error.message


def test_access_policy_model(kv: KvLab, lab) -> None:
    vault = kv.vault(rbac=False)
    getter = kv.app()
    lister = kv.app()
    rbac_only = kv.app("Key Vault Secrets User", vault.resource_id)

    def policies():
        vault.access_policies = [
            {
                "tenantId": lab.tenant_id,
                "objectId": getter[0].principal_id,
                "permissions": {"secrets": ["Get"]},
            },
            {
                "tenantId": lab.tenant_id,
                "objectId": lister[0].principal_id,
                "permissions": {"secrets": ["list"]},
            },
        ]

    kv.run(policies)
    assert kv.client(vault, getter).get_secret("db-password").value == "s3cret-value"
    with pytest.raises(HttpResponseError) as refused:
        kv.client(vault, lister).get_secret("db-password")
    app = lister[0]
    assert inner_code(refused.value) == "AccessDenied"
    assert refused.value.error.message == (
        "The user, group or application "
        f"'appid={app.client_id};oid={app.principal_id};iss={sts_issuer(lab.tenant_id)}' does not have "
        f"secrets get permission on key vault '{vault.name};location=eastus'. For help resolving this issue, "
        "please see https://go.microsoft.com/fwlink/?linkid=2125287"
    )
    # in the access-policy model role assignments do not count
    with pytest.raises(HttpResponseError) as ignored:
        kv.client(vault, rbac_only).get_secret("db-password")
    assert inner_code(ignored.value) == "AccessDenied"


def test_firewall_and_public_network_access(kv: KvLab, lab) -> None:
    vault = kv.vault()
    app_and_secret = kv.app("Key Vault Secrets User", vault.resource_id)
    client = kv.client(vault, app_and_secret)
    app = app_and_secret[0]
    kv.run(lambda: setattr(vault, "network_default_action", "Deny"))
    with pytest.raises(HttpResponseError) as refused:
        client.get_secret("db-password")
    assert inner_code(refused.value) == "ForbiddenByFirewall"
    assert refused.value.error.message == (
        "Client address is not authorized and caller is not a trusted service.\r\nClient address: "
        "127.0.0.1\r\nCaller: "
        f"appid={app.client_id};oid={app.principal_id};iss={sts_issuer(lab.tenant_id)}\r\nVault: "
        f"{vault.name};location=eastus"
    )
    kv.run(lambda: setattr(vault, "ip_rules", ["10.0.0.0/8", "127.0.0.1/32"]))
    assert client.get_secret("db-password").value == "s3cret-value"
    kv.run(lambda: setattr(vault, "public_network_access", "Disabled"))
    with pytest.raises(HttpResponseError) as closed:
        client.get_secret("db-password")
    assert inner_code(closed.value) == "ForbiddenByConnection"
    assert closed.value.error.message.startswith(
        "Public network access is disabled and request is not from a trusted service nor via an approved "
        "private link.\r\nCaller: "
    )


def test_missing_secret_and_version(kv: KvLab) -> None:
    vault = kv.vault()
    client = kv.client(vault, kv.app("Key Vault Secrets User", vault.resource_id))
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_secret("nope")
    assert missing.value.error.code == "SecretNotFound"
    assert missing.value.error.message == (
        "A secret with (name/id) nope was not found in this key vault. If you recently deleted this secret "
        "you may be able to recover it using the correct recovery command. For help resolving this issue, "
        "please see https://go.microsoft.com/fwlink/?linkid=2125182"
    )
    with pytest.raises(ResourceNotFoundError) as no_version:
        client.get_secret("db-password", "0" * 32)
    assert f"(name/id) db-password/{'0' * 32} was not found" in no_version.value.error.message


def test_unknown_vault_is_404(kv: KvLab) -> None:
    response = kv.raw("no-such-vault", "secrets/x", token="irrelevant")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "VaultNotFound"


def test_role_propagation_delay(kv: KvLab, lab) -> None:
    vault = kv.vault()
    app_and_secret = kv.app()
    kv.run(lambda: setattr(lab.azure, "role_propagation_seconds", 1.5))
    try:
        kv.run(lambda: lab.azure.assign_role(app_and_secret[0], "Key Vault Secrets User", vault.resource_id))
        client = kv.client(vault, app_and_secret)
        with pytest.raises(HttpResponseError) as early:
            client.get_secret("db-password")
        assert inner_code(early.value) == "ForbiddenByRbac"
        time.sleep(1.7)
        assert client.get_secret("db-password").value == "s3cret-value"
    finally:
        kv.run(lambda: setattr(lab.azure, "role_propagation_seconds", 0.0))


def test_disabled_secret(kv: KvLab) -> None:
    vault = kv.vault()
    kv.run(lambda: setattr(vault.secrets["db-password"][-1], "enabled", False))
    with pytest.raises(HttpResponseError) as refused:
        kv.client(vault, kv.app("Key Vault Secrets User", vault.resource_id)).get_secret("db-password")
    assert refused.value.status_code == 403 and inner_code(refused.value) == "SecretDisabled"


def test_update_secret_properties_disables_and_enables_without_touching_the_value(kv: KvLab) -> None:
    """Update Secret (PATCH /secrets/NAME/VERSION; ``az keyvault secret set-attributes`` and the SDK send an empty
    version for the latest): the update/action data action, the bundle back without its value."""
    vault = kv.vault(secrets={"db-password": "s3cret-value"})
    officer = kv.client(vault, kv.app("Key Vault Secrets Officer", vault.resource_id))
    reader = kv.client(vault, kv.app("Key Vault Secrets User", vault.resource_id))
    updated = officer.update_secret_properties("db-password", enabled=False, tags={"why": "rotated"})
    assert updated.enabled is False and updated.tags == {"why": "rotated"}
    with pytest.raises(HttpResponseError) as refused:
        reader.get_secret("db-password")
    assert inner_code(refused.value) == "SecretDisabled"
    with pytest.raises(HttpResponseError) as denied:
        reader.update_secret_properties("db-password", enabled=True)
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/update/action'" in str(denied.value)
    assert officer.update_secret_properties("db-password", enabled=True).enabled is True
    assert reader.get_secret("db-password").value == "s3cret-value"
    raw = kv.raw(vault.name, "secrets/db-password/", method="PATCH",
                 token=kv.credential(kv.app("Key Vault Secrets Officer", vault.resource_id))
                 .get_token("https://vault.azure.net/.default").token, json={"attributes": {"enabled": True}})
    assert raw.status_code == 200 and "value" not in raw.json()


def test_expiry_and_activation_dates_are_kept_and_not_enforced(kv: KvLab) -> None:
    """``az keyvault secret set-attributes --expires/--not-before``: Key Vault records exp and nbf and still answers
    an expired or not-yet-valid secret's get (Azure/AzureKeyVault#19: 200 after the expiry date)."""
    vault = kv.vault(secrets={"db-password": "s3cret-value"})
    officer = kv.client(vault, kv.app("Key Vault Secrets Officer", vault.resource_id))
    past, future = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)
    updated = officer.update_secret_properties("db-password", expires_on=past, not_before=future)
    assert (updated.expires_on, updated.not_before) == (past, future)
    secret = kv.client(vault, kv.app("Key Vault Secrets User", vault.resource_id)).get_secret("db-password")
    assert secret.value == "s3cret-value" and secret.properties.expires_on == past


def test_a_deleted_secret_is_kept_until_recovered_or_purged(kv: KvLab) -> None:
    """az keyvault secret delete: get answers SecretNotFound as for a name never set, the name cannot be set again
    (409 ObjectIsDeletedButRecoverable), list-deleted names it, recover brings it back with its value, purge ends
    it; a Secrets User may not delete."""
    vault = kv.vault(secrets={"db-password": "s3cret-value"})
    officer = kv.client(vault, kv.app("Key Vault Secrets Officer", vault.resource_id))
    reader = kv.client(vault, kv.app("Key Vault Secrets User", vault.resource_id))
    with pytest.raises(HttpResponseError) as denied:
        reader.begin_delete_secret("db-password")
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/delete'" in str(denied.value)
    deleted = officer.begin_delete_secret("db-password").result()
    assert deleted.recovery_id == f"{kv.lab.vault_url(vault.name)}deletedsecrets/db-password"
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    with pytest.raises(ResourceNotFoundError) as missing:
        reader.get_secret("db-password")
    assert "If you recently deleted this secret" in str(missing.value)
    with pytest.raises(HttpResponseError) as conflict:
        officer.set_secret("db-password", "new")
    assert conflict.value.status_code == 409 and inner_code(conflict.value) == "ObjectIsDeletedButRecoverable"
    assert [d.name for d in officer.list_deleted_secrets()] == ["db-password"]
    officer.begin_recover_deleted_secret("db-password").result()
    assert reader.get_secret("db-password").value == "s3cret-value"
    with pytest.raises(ResourceNotFoundError) as gone:
        officer.get_deleted_secret("db-password")
    assert "Deleted Secret not found: db-password" in str(gone.value)
    officer.begin_delete_secret("db-password").result()
    officer.purge_deleted_secret("db-password")
    assert list(officer.list_deleted_secrets()) == []
    assert officer.set_secret("db-password", "new").value == "new"


# ---------------------------------------------------------------------------- the wire


def test_challenge_without_a_token(kv: KvLab, lab) -> None:
    vault = kv.vault()
    response = kv.raw(vault.name, "secrets/db-password/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{lab.authority_host}{lab.tenant_id}", resource="https://vault.azure.net"'
    )
    assert response.json() == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["x-ms-keyvault-region"] == "eastus" and response.headers["x-ms-request-id"]


def test_success_body_shape(kv: KvLab, lab) -> None:
    vault = kv.vault(secrets={"db-password": "s3cret-value"})
    app, _ = kv.app("Key Vault Secrets User", vault.resource_id)
    response = kv.raw(vault.name, "secrets/db-password", token=lab_token(lab, app, KV_AUD))
    assert response.status_code == 200
    body = response.json()
    version = vault.secrets["db-password"][-1]
    assert body == {
        "value": "s3cret-value",
        "id": f"{lab.vault_url(vault.name)}secrets/db-password/{version.version}",
        "attributes": {
            "enabled": True,
            "created": version.created,
            "updated": version.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        },
        "tags": {},
    }


@pytest.mark.parametrize("name", FORGED_NAMES)
def test_forged_tokens_are_refused(kv: KvLab, lab, name: str) -> None:
    vault = kv.vault()
    app, _ = kv.app("Key Vault Secrets User", vault.resource_id)
    variant = forged_variant(lab, app, KV_AUD, name, other_principal=app)
    response = kv.raw(vault.name, "secrets/db-password", token=variant.token)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith('Bearer authorization="')
    message = response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "Unauthorized"
    expected_prefix = {
        "audience": "AKV10022: Invalid audience. Expected https://vault.azure.net, found: "
        "https://graph.microsoft.com.",
        "expired": "[TokenExpired] Error validating token: 'S2S12086'.",
        "not_yet_valid": "Token not yet valid",
        "issuer": f"AKV10032: Invalid issuer. Expected one of {sts_issuer(lab.tenant_id)}, found ",
    }.get(
        variant.reason,
        "AKV10046: Unable to resolve the key used for signature validation. EncodedJwtHeader: '",
    )
    assert message.startswith(expected_prefix), message


def test_token_for_another_tenant(kv: KvLab, lab) -> None:
    vault = kv.vault()
    app, _ = kv.app("Key Vault Secrets User", vault.resource_id)
    other = str(uuid.uuid4())
    kv.run(lambda: lab.azure.add_tenant(other, "Fabrikam", "fabrikam.onmicrosoft.com"))
    token = lab_token(lab, app, KV_AUD, tid=other, iss=sts_issuer(other))
    response = kv.raw(vault.name, "secrets/db-password", token=token)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        f"AKV10032: Invalid issuer. Expected one of {sts_issuer(lab.tenant_id)}, found {sts_issuer(other)}."
    )


def test_throttling_fault_has_kv_shape(kv: KvLab, lab) -> None:
    vault = kv.vault()
    app, _ = kv.app("Key Vault Secrets User", vault.resource_id)
    token = lab_token(lab, app, KV_AUD)
    faults = lab.faults.services["keyvault"]
    faults.rate_429 = 1.0
    try:
        response = kv.raw(vault.name, "secrets/db-password", token=token)
    finally:
        faults.rate_429 = 0.0
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "Throttled"
    assert kv.raw(vault.name, "secrets/db-password", token=token).status_code == 200


def test_a_lab_bug_is_an_internal_server_error_in_kv_shape(kv: KvLab, lab, monkeypatch) -> None:
    from lab.azure import keyvault

    def boom(*args: Any) -> None:
        raise RuntimeError("a bug")

    vault = kv.vault()
    app, _ = kv.app("Key Vault Secrets User", vault.resource_id)
    monkeypatch.setattr(keyvault, "_check_network", boom)
    response = kv.raw(vault.name, "secrets/db-password", token=lab_token(lab, app, KV_AUD))
    assert response.status_code == 500 and response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "InternalServerError" and "a bug" not in response.text
    assert response.headers["x-ms-request-id"] and response.headers["x-ms-keyvault-service-version"]


def test_paging_secret_list(kv: KvLab, lab) -> None:
    vault = kv.vault(secrets={f"s{i}": str(i) for i in range(5)})
    app, _ = kv.app("Key Vault Secrets User", vault.resource_id)
    token = lab_token(lab, app, KV_AUD)
    first = kv.raw(vault.name, "secrets", token=token).json()
    assert len(first["value"]) == 5 and first["nextLink"] is None
    page = requests.get(
        lab.vault_url(vault.name) + "secrets",
        params={"api-version": "7.4", "maxresults": "2"},
        headers={"Authorization": f"Bearer {token}"},
        verify=kv.ca,
        timeout=30,
    ).json()
    names = [item["id"].rsplit("/", 1)[-1] for item in page["value"]]
    while page["nextLink"]:
        page = requests.get(
            page["nextLink"], headers={"Authorization": f"Bearer {token}"}, verify=kv.ca, timeout=30
        ).json()
        names += [item["id"].rsplit("/", 1)[-1] for item in page["value"]]
    assert names == [f"s{i}" for i in range(5)]


def test_whole_chain_configured_through_arm(kv: KvLab, lab, tmp_path) -> None:
    """An Owner sets up identity, federated credential and role through ARM; a workload's service account
    token is exchanged at the lab's Entra (WorkloadIdentityCredential) and reads the secret."""
    from azure.identity import WorkloadIdentityCredential

    from lab.kube.tokens import issue_service_account_token

    vault = kv.vault(secrets={"db-password": "through-the-chain"})
    arm_base, sub = lab.endpoints["arm"], f"/subscriptions/{lab.subscription_id}"
    admin = lab.azure.principal_by_client_id(lab.credentials["admin"]["client_id"])
    headers = {"Authorization": f"Bearer {lab_token(lab, admin, 'https://management.azure.com/')}"}

    def put(path: str, body: dict) -> dict:
        response = requests.put(
            arm_base + path,
            params={"api-version": "2023-01-31"},
            json=body,
            headers=headers,
            verify=kv.ca,
            timeout=30,
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    identity_type = "Microsoft.ManagedIdentity/userAssignedIdentities"
    identity_path = f"{sub}/resourceGroups/{vault.resource_group}/providers/{identity_type}/chain-id"
    identity = put(identity_path, {"location": "eastus"})
    namespace, service_account = "chain", f"sa-{uuid.uuid4().hex[:6]}"
    put(
        f"{identity_path}/federatedIdentityCredentials/chain-fic",
        {
            "properties": {
                "issuer": lab.issuer_url,
                "subject": f"system:serviceaccount:{namespace}:{service_account}",
                "audiences": ["api://AzureADTokenExchange"],
            }
        },
    )
    put(
        f"{vault.resource_id}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
        {
            "properties": {
                "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER}",
                "principalId": identity["properties"]["principalId"],
                "principalType": "ServicePrincipal",
            }
        },
    )

    sa = {"metadata": {"name": service_account, "namespace": namespace, "uid": str(uuid.uuid4())}}
    token, _ = kv.run(
        lambda: issue_service_account_token(lab, namespace, sa, ["api://AzureADTokenExchange"], 3600, None)
    )
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    credential = WorkloadIdentityCredential(
        tenant_id=lab.tenant_id,
        client_id=identity["properties"]["clientId"],
        token_file_path=str(token_file),
        authority=lab.authority_host,
        disable_instance_discovery=True,
    )
    client = SecretClient(
        vault_url=lab.vault_url(vault.name), credential=credential, verify_challenge_resource=False
    )
    assert client.get_secret("db-password").value == "through-the-chain"


def test_secret_id_is_a_routable_url_on_the_vaults_own_port(kv: KvLab, lab) -> None:
    vault = kv.vault(secrets={"db-password": "s3cret-value"})
    other = kv.vault(secrets={"db-password": "other-value"})
    app, _ = kv.app("Key Vault Secrets User", vault.resource_id)
    token = lab_token(lab, app, KV_AUD)
    assert lab.vault_url(vault.name) != lab.vault_url(other.name)
    first = kv.raw(vault.name, "secrets/db-password", token=token).json()
    again = requests.get(first["id"], params={"api-version": "7.4"}, headers={"Authorization": f"Bearer {token}"},
                         verify=str(lab.state_dir / "ca.pem"), timeout=10)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert first["id"].startswith(lab.vault_url(vault.name) + "secrets/")
