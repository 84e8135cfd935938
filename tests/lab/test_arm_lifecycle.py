"""The lab's ARM for az group delete and az resource move (lab.azure.arm_lifecycle), driven with plain requests as az
drives it: the 202, the Location it polls and what the world holds after."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests
from test_arm import Arm, error_of

from lab.azure.deleted_vaults import deleted_vaults
from lab.azure.world import FederatedCredential, StorageAccount, Vault

KV = "Microsoft.KeyVault/vaults"


@pytest.fixture(scope="module")
def arm(lab, lab_thread) -> Arm:
    return Arm(lab, lab_thread)


def _poll(arm: Arm, accepted: requests.Response, principal) -> requests.Response:
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Retry-After"] == "1" and accepted.text == ""
    location = accepted.headers["Location"]
    assert location.startswith(f"{arm.base}{arm.sub}/operationresults/") and "api-version=" in location
    token = location.split("/operationresults/", 1)[1].split("?", 1)[0]
    job = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["jobId"]
    assert isinstance(job, str) and job
    return arm.request("GET", location, principal, api=None)


def _world(arm: Arm, lab, rg: str, other_rg: str) -> dict:
    """In ``rg``: an identity with a federated credential, a vault and a storage account, roles at the group, at the
    vault and (for the identity) on a vault of ``other_rg``."""
    suffix = uuid.uuid4().hex[:6]

    def make() -> dict:
        world = lab.azure
        identity = world.add_identity(f"wid-{suffix}", rg)
        identity.federated_credentials["fic"] = FederatedCredential(
            "fic", "https://issuer/", "system:serviceaccount:a:b", ["api://AzureADTokenExchange"])
        vault = Vault(f"kv{suffix}", lab.subscription_id, rg, "eastus", lab.tenant_id)
        other = Vault(f"ot{suffix}", lab.subscription_id, other_rg, "eastus", lab.tenant_id)
        account = StorageAccount(f"st{suffix}", lab.subscription_id, rg, "eastus")
        world.vaults[vault.name.lower()], world.vaults[other.name.lower()] = vault, other
        world.storage_accounts[account.name.lower()] = account
        group_id = world.group(lab.subscription_id, rg).resource_id
        return {"identity": identity, "vault": vault, "other": other, "account": account,
                "at_group": world.assign_role(identity, "Reader", group_id).name,
                "at_vault": world.assign_role(identity, "Key Vault Secrets User", vault.resource_id).name,
                "elsewhere": world.assign_role(identity, "Key Vault Secrets User", other.resource_id).name}

    return arm.run(make)


def test_az_group_delete_takes_everything_in_the_group_but_the_identitys_roles_elsewhere(arm: Arm, lab) -> None:
    admin = arm.admin()
    rg, other_rg = arm.group("del"), arm.group("keep")
    made = _world(arm, lab, rg, other_rg)
    path = f"{arm.sub}/resourceGroups/{rg}"
    reader = arm.principal("Reader")
    refused = arm.request("DELETE", path, reader)
    assert refused.status_code == 403 and error_of(refused)[0] == "AuthorizationFailed"
    assert "resourceGroups/delete" in error_of(refused)[1]

    done = _poll(arm, arm.request("DELETE", path, admin), admin)
    assert done.status_code == 200
    assert error_of(arm.request("GET", path, admin))[0] == "ResourceGroupNotFound"
    assert error_of(arm.request("DELETE", path, admin))[0] == "ResourceGroupNotFound"
    identity, vault = made["identity"], made["vault"]
    assert arm.run(lambda: lab.azure.principal_by_client_id(identity.client_id)) is None  # and its credential
    assert vault.name.lower() not in lab.azure.vaults and vault.name.lower() in deleted_vaults(lab)  # soft-deleted
    assert made["account"].name.lower() not in lab.azure.storage_accounts
    assignments = lab.azure.role_assignments
    assert made["at_group"] not in assignments and made["at_vault"] not in assignments
    # the deleted identity's assignment on a vault outside the group stays, naming a principal that is gone
    kept = assignments[made["elsewhere"]]
    assert kept.principal_id == identity.principal_id and made["other"].name.lower() in lab.azure.vaults


def test_az_resource_move_changes_the_ids_and_leaves_role_assignments_at_the_old_ones(arm: Arm, lab) -> None:
    admin = arm.admin()
    rg, target = arm.group("src"), arm.group("dst")
    made = _world(arm, lab, rg, target)
    vault, account, identity = made["vault"], made["account"], made["identity"]
    old_vault_id = vault.resource_id
    move = f"{arm.sub}/resourceGroups/{rg}/moveResources"
    target_id = f"{arm.sub}/resourceGroups/{target}"
    body = {"resources": [old_vault_id, account.resource_id], "targetResourceGroup": target_id}

    refused = arm.request("POST", move, admin, json={**body, "resources": [identity.resource_id]})
    assert refused.status_code == 400 and error_of(refused) == (
        "ResourceMoveNotSupported",
        "Resource move is not supported for resource types 'Microsoft.ManagedIdentity/userAssignedIdentities'.")
    ghost = arm.request("POST", move, admin, json={**body, "targetResourceGroup": f"{arm.sub}/resourceGroups/nope"})
    assert ghost.status_code == 404 and error_of(ghost)[0] == "ResourceGroupNotFound"
    writer_elsewhere = arm.principal("Contributor", f"{arm.sub}/resourceGroups/{rg}")
    assert arm.request("POST", move, writer_elsewhere, json=body).status_code == 403  # no write on the target
    assert vault.resource_group == rg  # nothing moved by a refused request

    done = _poll(arm, arm.request("POST", move, admin, json=body), admin)
    assert done.status_code == 204
    new_vault_id = f"{target_id}/providers/{KV}/{vault.name}"
    assert arm.request("GET", new_vault_id, admin).status_code == 200
    assert error_of(arm.request("GET", old_vault_id, admin))[0] == "ResourceNotFound"
    assert account.resource_group == target and identity.resource_group == rg
    # the assignment stays at the vault's old id, orphaned: it grants nothing on the vault where it is now
    orphan = lab.azure.role_assignments[made["at_vault"]]
    assert orphan.scope == old_vault_id
    read = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
    assert not lab.azure.permits(identity.principal_id, f"{new_vault_id}/secrets/s", read, data_action=True)
    assert lab.azure.permits(identity.principal_id, f"{old_vault_id}/secrets/s", read, data_action=True)
    again = arm.request("POST", move, admin, json=body)  # their old ids name nothing now
    assert again.status_code == 404 and error_of(again)[0] == "ResourceNotFound"
    other_group = arm.request("POST", move, admin, json={**body, "resources": [new_vault_id]})
    assert other_group.status_code == 400 and error_of(other_group)[0] == "ResourceNotInSourceResourceGroup"


def test_az_group_delete_of_the_labs_own_cluster_takes_its_api_server_down(tmp_path) -> None:
    """A lab of its own (its cluster goes): the cluster's group deleted takes the managed cluster and the node
    resource group AKS made for it, and the API server stops answering, as after az aks stop."""
    from lab.runtime import LabThread

    running = LabThread(tmp_path / "lab", scenario="healthy")
    running.start()
    try:
        own = Arm(running.lab, running)
        admin = own.admin()
        cluster = running.lab.extra["cluster"]
        kube = running.lab.endpoints["kube"]
        assert requests.get(f"{kube}/version", verify=own.ca, timeout=10).status_code in (200, 401, 403)
        node_group = next(c.node_resource_group for c in running.lab.azure.clusters.values())
        done = _poll(own, own.request("DELETE", f"{own.sub}/resourceGroups/{cluster['resource_group']}", admin),
                     admin)
        assert done.status_code == 200
        assert running.lab.azure.clusters == {}
        assert running.lab.azure.group(running.lab.subscription_id, node_group) is None
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{kube}/version", verify=own.ca, timeout=10)
    finally:
        running.stop()
