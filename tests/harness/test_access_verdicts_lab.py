"""Access verdicts by the service's own error code, against one lab, each case made through ARM as a person with
the lab's admin credentials would (az keyvault update / az storage account update send these PATCH bodies):

- a vault firewall on an allow target is KEYVAULT_FIREWALL (never a role fix), and on a deny target it is
  DENY_NOT_PROVEN, a warning: the identity's rights were never evaluated, so least privilege is unproven;
- a storage account network rule on an allow target is STORAGE_FIREWALL;
- a vault switched to access policies is KEYVAULT_ACCESS_POLICY_MISSING (az keyvault set-policy, not a role);
- a blob deleted through the storage API (az storage blob delete --auth-mode login) is BLOB_NOT_FOUND, not a role;
- a custom role (az role definition create) holding the control-plane action Microsoft.KeyVault/vaults/secrets/read
  and no data action is ROLE_INSUFFICIENT naming that role, fixed by the read role.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.storage.blob import BlobClient
from test_e2e_lab import checks_of, run_suites
from test_identities_lab import Person

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
VAULT_API, STORAGE_API = "2023-07-01", "2023-05-01"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # Storage Blob Data Contributor



@pytest.fixture(scope="module")
def person(running_lab: RunningLab) -> Person:
    return Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))


def resource_id(person: Person, kind: str, name: str) -> str:
    found = person.arm("GET", f"/subscriptions/{person.info['subscription_id']}/resources", "2021-04-01",
                       **{"$filter": f"resourceType eq '{kind}' and name eq '{name}'"})
    return found["value"][0]["id"]


def patch(person: Person, resource: str, api: str, properties: dict[str, Any]) -> None:
    person.arm("PATCH", resource, api, {"properties": properties})


def findings_of(document: dict[str, Any], workload_id: str) -> dict[str, dict[str, Any]]:
    workload = next(w for w in document["workloads"] if w["id"] == workload_id)
    return {f["code"]: f for f in workload["findings"]}


def test_network_rules_never_prove_a_deny_and_are_named_on_allow_targets(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    finance_kv = resource_id(person, "Microsoft.KeyVault/vaults", "finance-kv")
    platform_kv = resource_id(person, "Microsoft.KeyVault/vaults", "platform-kv")
    orders = resource_id(person, "Microsoft.Storage/storageAccounts", "ordersdata")
    closed, opened = {"networkAcls": {"defaultAction": "Deny"}}, {"networkAcls": {"defaultAction": "Allow"}}
    try:
        patch(person, finance_kv, VAULT_API, closed)
        patch(person, platform_kv, VAULT_API, closed)
        patch(person, orders, STORAGE_API, closed)
        result, document = run_suites(tmp_path, "--config", str(running_lab.state_dir / "harness.yaml"))
    finally:
        for resource, api in ((finance_kv, VAULT_API), (platform_kv, VAULT_API), (orders, STORAGE_API)):
            patch(person, resource, api, opened)
    assert result.returncode == 1, result.stdout[-3000:]
    finance = checks_of(document, "finance/backend-sa")
    assert finance["access.keyvault:finance-kv/db-password"]["status"] == "fail"
    assert finance["access.keyvault:finance-kv/db-password"]["evidence"]["innererror"] == "ForbiddenByFirewall"
    assert finance["access.keyvault:platform-kv/admin-api-key"]["status"] == "warn"  # the deny target: not proven, not passed
    codes = findings_of(document, "finance/backend-sa")
    assert {"KEYVAULT_FIREWALL", "DENY_NOT_PROVEN"} <= set(codes)
    assert "ACCESS_DENIED_UNEXPECTEDLY" not in codes
    assert codes["DENY_NOT_PROVEN"]["severity"] == "warning"
    # the vault's group and subscription: az finds a vault by --name in the current subscription only
    assert codes["KEYVAULT_FIREWALL"]["remediation"][0] == (
        f"az keyvault network-rule list --name finance-kv --resource-group myRg --subscription "
        f"{running_lab.info()['subscription_id']}"
    )
    orders_codes = findings_of(document, "orders/orders-sa")
    assert "STORAGE_FIREWALL" in orders_codes
    # the account's group and subscription: az finds an account by --account-name in the current subscription only
    assert orders_codes["STORAGE_FIREWALL"]["remediation"][0] == (
        f"az storage account network-rule list --account-name ordersdata --resource-group myRg --subscription "
        f"{running_lab.info()['subscription_id']}"
    )


def test_an_access_policy_vault_is_fixed_with_set_policy(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    finance_kv = resource_id(person, "Microsoft.KeyVault/vaults", "finance-kv")
    try:
        patch(person, finance_kv, VAULT_API, {"enableRbacAuthorization": False})
        result, document = run_suites(tmp_path, "--config", str(running_lab.state_dir / "harness.yaml"),
                                      "--workload", "finance/backend-sa")
    finally:
        patch(person, finance_kv, VAULT_API, {"enableRbacAuthorization": True})
    assert result.returncode == 1, result.stdout[-3000:]
    codes = findings_of(document, "finance/backend-sa")
    assert "KEYVAULT_ACCESS_POLICY_MISSING" in codes, codes
    fix = codes["KEYVAULT_ACCESS_POLICY_MISSING"]["remediation"][0]
    assert fix.startswith(f"az keyvault set-policy --name finance-kv --resource-group myRg --subscription "
                          f"{running_lab.info()['subscription_id']} --object-id ")
    assert fix.endswith(" --secret-permissions get") and "<principal-id>" not in fix


SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User
VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"  # Key Vault Reader: control plane only


def finance_principal(person: Person) -> str:
    identities = person.arm("GET", f"/subscriptions/{person.info['subscription_id']}/providers/"
                                   "Microsoft.ManagedIdentity/userAssignedIdentities", "2023-01-31")
    clients = {w["client_id"] for w in person.info.get("workloads", []) if w.get("id") == "finance/backend-sa"}
    found = [i for i in identities["value"] if i["properties"]["clientId"] in clients] or [
        i for i in identities["value"] if i["name"] == "myWorkloadId"]
    return found[0]["properties"]["principalId"]


def assignments_of(person: Person, principal: str) -> list[dict[str, Any]]:
    listing = person.arm("GET", f"/subscriptions/{person.info['subscription_id']}/providers/"
                                "Microsoft.Authorization/roleAssignments", "2022-04-01",
                         **{"$filter": f"principalId eq '{principal}'"})
    return listing["value"]


def test_why_a_read_is_refused_is_told_apart_by_the_identitys_roles(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    """The role moved to the other vault (ROLE_WRONG_SCOPE), then replaced by Key Vault Reader
    (ROLE_INSUFFICIENT), then the right role given back while Entra/ARM still propagate it
    (ROLE_PROPAGATION_PENDING); a secret name that does not exist is SECRET_NOT_FOUND."""
    config = str(running_lab.state_dir / "harness.yaml")
    finance_kv = resource_id(person, "Microsoft.KeyVault/vaults", "finance-kv")
    platform_kv = resource_id(person, "Microsoft.KeyVault/vaults", "platform-kv")
    principal = finance_principal(person)
    original = [a for a in assignments_of(person, principal) if a["properties"]["scope"].lower() == finance_kv.lower()]
    assert original, "the healthy lab grants the finance identity a role on finance-kv"
    made: list[str] = []

    def run(name: str) -> dict[str, Any]:
        result, document = run_suites(tmp_path / name, "--config", config, "--workload", "finance/backend-sa")
        assert result.returncode == 1, result.stdout[-3000:]
        return findings_of(document, "finance/backend-sa")

    try:
        for assignment in original:
            person.arm("DELETE", assignment["id"], "2022-04-01")
        made.append(person.grant(platform_kv, SECRETS_USER, principal))
        wrong_scope = run("wrong-scope")
        assert "ROLE_WRONG_SCOPE" in wrong_scope and "ROLE_ASSIGNMENT_MISSING" not in wrong_scope
        assert wrong_scope["ROLE_WRONG_SCOPE"]["remediation"][0].endswith(f"--scope {finance_kv}")

        person.arm("DELETE", made.pop(), "2022-04-01")
        made.append(person.grant(finance_kv, VAULT_READER, principal))
        insufficient = run("insufficient")
        assert "ROLE_INSUFFICIENT" in insufficient, insufficient

        ctl = [sys.executable, "-m", "lab", "ctl", "--state-dir", str(running_lab.state_dir), "propagation"]
        subprocess.run([*ctl, "--role-seconds", "300"], check=True, capture_output=True, timeout=60)
        try:
            made.append(person.grant(finance_kv, SECRETS_USER, principal))
            pending = run("pending")
        finally:
            subprocess.run([*ctl, "--role-seconds", "0"], check=True, capture_output=True, timeout=60)
        assert "ROLE_PROPAGATION_PENDING" in pending, pending
    finally:
        for assignment_id in made:
            person.arm("DELETE", assignment_id, "2022-04-01")
        for assignment in original:
            person.arm("PUT", assignment["id"], "2022-04-01", {"properties": {
                "roleDefinitionId": assignment["properties"]["roleDefinitionId"], "principalId": principal,
                "principalType": "ServicePrincipal"}})

    broken = yaml.safe_load(Path(config).read_text())
    finance = next(w for w in broken["workloads"] if w["service_account"] == "backend-sa")
    finance["access"][0]["secret"] = "db-pasword"
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(broken))
    result, document = run_suites(tmp_path / "typo", "--config", str(typo), "--workload", "finance/backend-sa")
    assert "SECRET_NOT_FOUND" in findings_of(document, "finance/backend-sa")


def test_a_blob_deleted_through_the_storage_api_is_blob_not_found(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    """A person who holds Storage Blob Data Contributor deletes the blob orders/orders-sa reads. The identity may
    read, the blob is not there: BLOB_NOT_FOUND alone (no role finding), with the listing that shows what is."""
    account = resource_id(person, "Microsoft.Storage/storageAccounts", "ordersdata")
    admin = person.graph("GET", f"/servicePrincipals(appId='{person.info['admin']['client_id']}')")
    made = person.grant(account, BLOB_CONTRIBUTOR, admin["id"])
    blob = BlobClient(person.info["storage_accounts"]["ordersdata"], "reports", "daily.csv",
                      credential=person.credential, connection_verify=person.ca)
    content = blob.download_blob().readall()
    try:
        blob.delete_blob()
        result, document = run_suites(tmp_path, "--config", str(running_lab.state_dir / "harness.yaml"),
                                      "--workload", "orders/orders-sa")
        assert result.returncode == 1, result.stdout[-3000:]
        findings = findings_of(document, "orders/orders-sa")
        assert {code for code, f in findings.items() if f["severity"] == "error"} == {"BLOB_NOT_FOUND"}, findings
        checks = checks_of(document, "orders/orders-sa")
        assert checks["access.blob:ordersdata/reports/daily.csv"]["status"] == "fail"
        listing = f"az storage blob list --blob-endpoint {person.info['storage_accounts']['ordersdata']} "
        assert any(line.startswith(listing + "--container-name reports")
                   for line in findings["BLOB_NOT_FOUND"]["remediation"])
    finally:
        blob.upload_blob(content, overwrite=True)
        person.arm("DELETE", made, "2022-04-01")


def test_a_custom_role_without_data_actions_is_insufficient_and_named(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    """The finance identity's role on finance-kv replaced by a custom role made as az role definition create makes
    it (PUT at its assignable scope), whose Actions hold Microsoft.KeyVault/vaults/secrets/read, ARM's view of a
    secret, and no DataActions: Key Vault refuses the read (ForbiddenByRbac) and the run names the custom role as
    control plane only, with Key Vault Secrets User on the vault as the fix."""
    finance_kv = resource_id(person, "Microsoft.KeyVault/vaults", "finance-kv")
    principal = finance_principal(person)
    subscription = f"/subscriptions/{person.info['subscription_id']}"
    role = f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}"
    original = [a for a in assignments_of(person, principal) if a["properties"]["scope"].lower() == finance_kv.lower()]
    person.arm("PUT", role, "2022-04-01", {"properties": {
        "roleName": "Finance secret reader", "type": "CustomRole", "description": "by hand",
        "permissions": [{"actions": ["Microsoft.KeyVault/vaults/secrets/read"], "notActions": [], "dataActions": [],
                         "notDataActions": []}], "assignableScopes": [subscription]}})
    made = None
    try:
        for assignment in original:
            person.arm("DELETE", assignment["id"], "2022-04-01")
        made = person.grant(finance_kv, role.rsplit("/", 1)[-1], principal)
        result, document = run_suites(tmp_path, "--config", str(running_lab.state_dir / "harness.yaml"),
                                      "--workload", "finance/backend-sa")
    finally:
        if made:
            person.arm("DELETE", made, "2022-04-01")
        person.arm("DELETE", role, "2022-04-01")
        for assignment in original:
            person.arm("PUT", assignment["id"], "2022-04-01", {"properties": {
                "roleDefinitionId": assignment["properties"]["roleDefinitionId"], "principalId": principal,
                "principalType": "ServicePrincipal"}})
    assert result.returncode == 1, result.stdout[-3000:]
    codes = findings_of(document, "finance/backend-sa")
    assert {c for c, f in codes.items() if f["severity"] == "error"} == {"ROLE_INSUFFICIENT"}, codes
    assert "Finance secret reader" in codes["ROLE_INSUFFICIENT"]["message"]
    assert codes["ROLE_INSUFFICIENT"]["remediation"][0].endswith(f"--role 'Key Vault Secrets User' --scope {finance_kv}")
