"""A whole vault deleted, recovered and purged through ARM with the requests az sends: ``az keyvault delete``
(DELETE the vault), ``list-deleted`` / ``show-deleted`` (Microsoft.KeyVault/deletedVaults), ``recover`` (a PUT with
``createMode: recover``) and ``purge`` (POST .../deletedVaults/NAME/purge), and what the data plane and RBAC say
after each (lab.azure.deleted_vaults names the sources)."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure_clients import vault_with_a_reader
from test_network_rules_through_arm import API_KEYVAULT, Arm


@pytest.fixture(autouse=True)
def _trust_the_lab(lab, monkeypatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.state_dir / "ca.pem"))


def test_a_deleted_vault_is_kept_recovered_without_its_roles_and_purged(lab, lab_thread) -> None:
    rg, vault, client = vault_with_a_reader(lab, lab_thread, "delkv")
    name = vault.name
    arm = Arm(lab)
    sub = f"/subscriptions/{lab.subscription_id}"
    path = f"{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}"
    deleted_path = f"{sub}/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/{name}"
    create = {"location": "eastus", "properties": {"tenantId": lab.tenant_id,
                                                   "sku": {"family": "A", "name": "standard"}}}
    recover = {"location": "eastus", "properties": {**create["properties"], "createMode": "recover"}}

    never = path.replace(name, f"kv{uuid.uuid4().hex[:10]}")
    refused = arm("PUT", never, API_KEYVAULT, recover)  # nothing deleted under that name
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "SoftDeletedVaultDoesNotExist"

    assert arm("DELETE", path, API_KEYVAULT).status_code == 200
    assert arm("DELETE", path, API_KEYVAULT).status_code == 204  # gone already (azure-cli#2369)
    assert arm("GET", path, API_KEYVAULT).json()["error"]["code"] == "ResourceNotFound"
    listed = arm("GET", f"{sub}/providers/Microsoft.KeyVault/deletedVaults", API_KEYVAULT).json()["value"]
    [mine] = [d for d in listed if d["name"] == name]
    assert mine["type"] == "Microsoft.KeyVault/deletedVaults" and mine["id"].endswith(deleted_path)
    assert mine["properties"]["vaultId"] == vault.resource_id and mine["properties"]["location"] == "eastus"
    assert mine["properties"]["scheduledPurgeDate"] > mine["properties"]["deletionDate"]
    assert arm("GET", deleted_path, API_KEYVAULT).json() == mine
    assert arm("GET", f"{sub}/providers/Microsoft.KeyVault/deletedManagedHSMs", API_KEYVAULT).json() == {"value": []}
    taken = arm("PUT", path, API_KEYVAULT, create)  # the name is kept while the vault is deleted
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "ConflictError"
    assert "already exists in deleted state" in taken.json()["error"]["message"]
    with pytest.raises(HttpResponseError) as gone:
        client.get_secret("db-password")
    assert gone.value.status_code == 404

    back = arm("PUT", path, API_KEYVAULT, recover)
    assert back.status_code == 200, back.text
    assert back.json()["properties"]["vaultUri"] == lab.vault_url(name)
    with pytest.raises(HttpResponseError) as denied:  # its secret is back, the role assignment at it is not
        client.get_secret("db-password")
    assert denied.value.status_code == 403 and "ForbiddenByRbac" in str(denied.value)
    assert not any(a.scope.lower().startswith(vault.resource_id.lower())
                   for a in lab_thread.call(lambda: list(lab.azure.role_assignments.values())).result(30))

    assert arm("DELETE", path, API_KEYVAULT).status_code == 200
    assert arm("POST", f"{deleted_path}/purge", API_KEYVAULT).status_code == 200
    assert arm("GET", deleted_path, API_KEYVAULT).status_code == 404
    made = arm("PUT", path, API_KEYVAULT, create)  # purged: the name is free, the vault a new, empty one
    assert made.status_code == 201, made.text
    assert lab_thread.call(lambda: lab.azure.vaults[name].secrets).result(30) == {}
