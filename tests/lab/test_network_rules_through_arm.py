"""Vault and storage account network rules set through ARM with the bodies ``az`` sends, and what the data
planes then answer: Key Vault ForbiddenByFirewall / ForbiddenByConnection, Storage AuthorizationFailure (a
network refusal, not the RBAC AuthorizationPermissionMismatch).

``az keyvault update --default-action Deny`` and ``az keyvault network-rule add`` GET the vault and PUT it
back whole; ``az storage account update --default-action Deny`` and ``az storage account network-rule add``
PATCH ``properties.networkAcls`` (the storage SDK's network_rule_set) with the whole rule set.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient
from azure_clients import new_app, secret_credential, vault_with_a_reader
from forged_tokens import lab_token

from lab.azure.world import StorageAccount

API_KEYVAULT = "2023-07-01"
API_STORAGE = "2023-05-01"
ARM_AUD = "https://management.azure.com/"


@pytest.fixture(autouse=True)
def _trust_the_lab(lab, monkeypatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.state_dir / "ca.pem"))


class Arm:
    def __init__(self, lab) -> None:
        self.lab = lab
        self.admin = lab.azure.principal_by_client_id(lab.credentials["admin"]["client_id"])

    def __call__(
        self, method: str, path: str, api: str, body: dict[str, Any] | None = None
    ) -> requests.Response:
        token = lab_token(self.lab, self.admin, ARM_AUD)
        return requests.request(method, self.lab.endpoints["arm"] + path, params={"api-version": api},
                                json=body, headers={"Authorization": f"Bearer {token}"},
                                verify=str(self.lab.state_dir / "ca.pem"), timeout=30)


def inner_code(error: HttpResponseError) -> str | None:
    inner = getattr(error.error, "innererror", None) or {}
    return inner.get("code") if isinstance(inner, dict) else None


def test_vault_network_rules_from_az_shaped_puts_reach_the_data_plane(lab, lab_thread) -> None:
    rg, vault, client = vault_with_a_reader(lab, lab_thread, "netkv")
    name = vault.name
    arm = Arm(lab)
    path = (f"/subscriptions/{lab.subscription_id}/resourceGroups/{rg}/providers/Microsoft.KeyVault/"
            f"vaults/{name}")

    def az_put(change) -> dict[str, Any]:
        current = arm("GET", path, API_KEYVAULT)
        assert current.status_code == 200, current.text
        body = current.json()
        vault_body = {"location": body["location"], "tags": body["tags"],
                      "properties": copy.deepcopy(body["properties"])}
        change(vault_body["properties"])
        answer = arm("PUT", path, API_KEYVAULT, vault_body)
        assert answer.status_code == 200, answer.text
        return answer.json()["properties"]

    # az keyvault update --default-action Deny
    denied = az_put(lambda p: p["networkAcls"].update(defaultAction="Deny"))
    assert denied["networkAcls"]["defaultAction"] == "Deny"
    with pytest.raises(HttpResponseError) as refused:
        client.get_secret("db-password")
    assert (refused.value.status_code, inner_code(refused.value)) == (403, "ForbiddenByFirewall")

    # az keyvault network-rule add --ip-address 127.0.0.1/32
    allowed = az_put(lambda p: p["networkAcls"]["ipRules"].append({"value": "127.0.0.1/32"}))
    assert allowed["networkAcls"]["ipRules"] == [{"value": "127.0.0.1/32"}]
    assert client.get_secret("db-password").value == "s3cret-value"

    az_put(lambda p: p.update(publicNetworkAccess="Disabled"))  # az keyvault update --public-network-access
    with pytest.raises(HttpResponseError) as closed:
        client.get_secret("db-password")
    assert (closed.value.status_code, inner_code(closed.value)) == (403, "ForbiddenByConnection")


def test_storage_network_rules_from_az_shaped_patches_are_authorization_failures(lab, lab_thread) -> None:
    rg, name = f"netst-{uuid.uuid4().hex[:8]}", f"st{uuid.uuid4().hex[:12]}"

    def make() -> StorageAccount:
        lab.azure.add_resource_group(rg)
        account = StorageAccount(name=name, subscription_id=lab.subscription_id, resource_group=rg,
                                 location="eastus")
        account.containers["reports"] = {"daily.csv": b"a,b\n"}
        lab.azure.storage_accounts[name] = account
        return account

    account = lab_thread.call(make).result(30)
    reader = new_app(lab, lab_thread, "net-st", "Storage Blob Data Reader", account.resource_id)
    outsider = new_app(lab, lab_thread, "net-st-none")
    blob = BlobClient(account_url=lab.blob_url(name), container_name="reports", blob_name="daily.csv",
                      credential=secret_credential(lab, reader))
    assert blob.download_blob().readall() == b"a,b\n"
    arm = Arm(lab)
    path = (f"/subscriptions/{lab.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Storage/"
            f"storageAccounts/{name}")
    rules = arm("GET", path, API_STORAGE).json()["properties"]["networkAcls"]
    assert rules == {"bypass": "AzureServices", "defaultAction": "Allow", "ipRules": [],
                     "virtualNetworkRules": []}

    def az_patch(network_acls: dict[str, Any]) -> dict[str, Any]:
        answer = arm("PATCH", path, API_STORAGE, {"properties": {"networkAcls": network_acls}})
        assert answer.status_code == 200, answer.text
        return answer.json()["properties"]["networkAcls"]

    denied = az_patch({**rules, "defaultAction": "Deny", "resourceAccessRules": []})
    assert denied["defaultAction"] == "Deny"
    with pytest.raises(HttpResponseError) as refused:
        blob.download_blob()
    assert (refused.value.status_code, refused.value.error_code) == (403, "AuthorizationFailure")
    with pytest.raises(HttpResponseError) as head:
        blob.get_blob_properties()
    assert (head.value.status_code, head.value.error_code) == (403, "AuthorizationFailure")

    opened = az_patch({**denied, "ipRules": [{"value": "127.0.0.1", "action": "Allow"}]})
    assert opened["ipRules"] == [{"value": "127.0.0.1", "action": "Allow"}]
    assert blob.download_blob().readall() == b"a,b\n"
    nobody = BlobClient(account_url=lab.blob_url(name), container_name="reports", blob_name="daily.csv",
                        credential=secret_credential(lab, outsider))
    with pytest.raises(HttpResponseError) as rbac:
        nobody.download_blob()
    assert rbac.value.error_code == "AuthorizationPermissionMismatch"  # through the firewall, RBAC decides

    closed = arm("PATCH", path, API_STORAGE, {"properties": {"publicNetworkAccess": "Disabled"}})
    assert closed.json()["properties"]["publicNetworkAccess"] == "Disabled"
    with pytest.raises(HttpResponseError) as disabled:
        blob.download_blob()
    assert disabled.value.error_code == "AuthorizationFailure"
    bad = arm("PATCH", path, API_STORAGE, {"properties": {"networkAcls": {"defaultAction": "Maybe"}}})
    assert bad.status_code == 400


def test_a_storage_account_answers_its_encryption_as_az_storage_account_update_reads_it(lab, lab_thread) -> None:
    """Every account is encrypted at rest (Microsoft-managed keys unless a customer's is set) and ARM says so in
    properties.encryption; az storage account update (its --default-action, --public-network-access) reads
    instance.encryption.key_source before it PATCHes, and failed with 'NoneType' object has no attribute
    'key_source' on an account that had none. creationTime is always there too."""
    rg, name = f"encst-{uuid.uuid4().hex[:8]}", f"st{uuid.uuid4().hex[:12]}"

    def make() -> None:
        lab.azure.add_resource_group(rg)
        lab.azure.storage_accounts[name] = StorageAccount(name=name, subscription_id=lab.subscription_id,
                                                          resource_group=rg, location="eastus")

    lab_thread.call(make).result(30)
    path = f"/subscriptions/{lab.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"
    arm = Arm(lab)
    properties = arm("GET", path, API_STORAGE).json()["properties"]
    encryption = properties["encryption"]
    assert encryption["keySource"] == "Microsoft.Storage"
    assert encryption["services"]["blob"]["enabled"] is True and encryption["services"]["blob"]["keyType"] == "Account"
    assert properties["creationTime"].endswith("Z")
    # what az sends back in its PATCH (the encryption it read, the setting changed) is taken
    changed = arm("PATCH", path, API_STORAGE, {"properties": {"encryption": encryption,
                                                             "networkAcls": {"defaultAction": "Deny"}}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["properties"]["networkAcls"]["defaultAction"] == "Deny"
    assert changed.json()["properties"]["encryption"]["keySource"] == "Microsoft.Storage"


def test_shared_key_access_and_minimum_tls_are_kept_as_az_storage_account_update_sets_them(lab, lab_thread) -> None:
    """az storage account update --allow-shared-key-access false (--min-tls-version TLS1_2) PATCHes the account; the
    lab answered allowSharedKeyAccess true and TLS1_2 whatever was sent, so az showed the change undone. Kept now;
    OAuth reads do not depend on it (the blob service takes bearer tokens only)."""
    rg, name = f"skst-{uuid.uuid4().hex[:8]}", f"st{uuid.uuid4().hex[:12]}"

    def make() -> None:
        lab.azure.add_resource_group(rg)
        lab.azure.storage_accounts[name] = StorageAccount(name=name, subscription_id=lab.subscription_id,
                                                          resource_group=rg, location="eastus")

    lab_thread.call(make).result(30)
    path = f"/subscriptions/{lab.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"
    arm = Arm(lab)
    assert arm("GET", path, API_STORAGE).json()["properties"]["allowSharedKeyAccess"] is True
    changed = arm("PATCH", path, API_STORAGE, {"properties": {"allowSharedKeyAccess": False,
                                                             "minimumTlsVersion": "tls1_2"}})
    assert changed.status_code == 200, changed.text
    properties = arm("GET", path, API_STORAGE).json()["properties"]
    assert properties["allowSharedKeyAccess"] is False and properties["minimumTlsVersion"] == "TLS1_2"
    refused = arm("PATCH", path, API_STORAGE, {"properties": {"minimumTlsVersion": "SSL3"}})
    assert refused.status_code == 400
