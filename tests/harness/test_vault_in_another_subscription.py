"""Fixes for a vault in another subscription than the one the az CLI's login made current (a shared "secrets"
subscription, found through Resource Graph): every az keyvault command that names the vault by --name names its
resource group and subscription too.

By hand in the lab, with the real az (current subscription the lab's own): az keyvault create --name shared-kv
--subscription SHARED, then az keyvault update --default-action Deny (and, later, --public-network-access Disabled,
--enable-rbac-authorization false) with --subscription SHARED. KEYVAULT_FIREWALL printed az keyvault network-rule
list|add --name shared-kv and az keyvault show --name shared-kv, KEYVAULT_ACCESS_POLICY_MISSING az keyvault
set-policy --name shared-kv: each answered "The Vault 'shared-kv' not found within subscription." (az lists the
current subscription's vaults to find a vault's group: azure-cli keyvault/_validators.py). With --resource-group
and --subscription the pasted lines repaired the vault and the next run passed."""

from __future__ import annotations

from typing import Any

from fakeworld import VAULT
from test_checks import DENIED, PRINCIPAL, _finance_kv_read, context_for

import harness.checks.remediation as fix
from harness.checks.access import access_outcome
from harness.checks.model import Finding
from harness.commands import Command
from harness.config import KeyVaultSecretAccess

SHARED = "47252320-f70d-4681-b9b7-ff1a135e0d4e"
SHARED_VAULT_ID = f"/subscriptions/{SHARED}/resourceGroups/shared-rg/providers/Microsoft.KeyVault/vaults/finance-kv"
WHERE = f"--resource-group shared-rg --subscription {SHARED}"


def _refused(innererror: str, message: str = "", **found: str) -> Finding:
    """finance-kv (in the shared subscription, as Resource Graph found it) refused the read with ``innererror``."""
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect="allow")
    ctx = context_for(access=[check])
    assert ctx.facts.pod is not None
    ctx.cluster.access_resources = {VAULT.rstrip("/"): {"id": SHARED_VAULT_ID, "name": "finance-kv",
                                                        "resource_group": "shared-rg",
                                                        "found_by": "resource_graph", **found}}
    evidence: dict[str, Any] = {"http_status": 403, "code": "Forbidden", "innererror": innererror, "message": message}
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "fail", "error": {},
                                      "evidence": evidence}]}
    (finding,) = access_outcome(ctx, 0, check).findings
    return finding


def test_a_firewalled_vault_in_another_subscription_is_named_with_its_group_and_subscription() -> None:
    finding = _refused("ForbiddenByFirewall", "Client address is not authorized.\r\nClient address: 20.62.133.7")
    assert finding.code == "KEYVAULT_FIREWALL"
    assert finding.fix_lines()[:3] == [
        f"az keyvault network-rule list --name finance-kv {WHERE}",
        f"az keyvault show --name finance-kv {WHERE} --query '{{defaultAction: properties.networkAcls.defaultAction, "
        "publicNetworkAccess: properties.publicNetworkAccess}'",
        f"az keyvault network-rule add --name finance-kv {WHERE} --ip-address 20.62.133.7   # the address Key Vault "
        "saw the pod's request come from",
    ]
    private = _refused("ForbiddenByFirewall", "Client address: 10.224.0.5")
    assert f"az keyvault network-rule add --name finance-kv {WHERE} --subnet '<aks-node-subnet-id>'" \
        in private.fix_lines()


def test_a_closed_vault_in_another_subscription_is_opened_there() -> None:
    finding = _refused("ForbiddenByConnection", public_network_access="Disabled")
    assert finding.code == "KEYVAULT_FIREWALL"
    commands = [line for line in finding.fix_lines() if line.startswith("az ")]
    assert [line.split(" --query")[0].split("   #")[0] for line in commands] == [
        f"az keyvault show --name finance-kv {WHERE}",
        f"az keyvault update --name finance-kv {WHERE} --public-network-access Enabled --default-action Deny",
        f"az keyvault network-rule add --name finance-kv {WHERE} --subnet '<aks-node-subnet-id>'",
    ]


def test_access_policy_fixes_for_a_vault_in_another_subscription_name_it_there() -> None:
    """The policy grant (allow target), its revocation (deny target) and the look at the vault's policies."""
    shared = {"id": SHARED_VAULT_ID, "resource_group": "shared-rg", "rbac_authorization": "false"}
    ctx, check = _finance_kv_read("allow", DENIED, {**shared, "access_policy_object_ids": ""})
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "KEYVAULT_ACCESS_POLICY_MISSING"
    assert finding.fix_lines()[:2] == [
        f"az keyvault set-policy --name finance-kv {WHERE} --object-id {PRINCIPAL} --secret-permissions get",
        f"az keyvault show --name finance-kv {WHERE} --query '{{rbac: properties.enableRbacAuthorization, policies: "
        "properties.accessPolicies[].{objectId: objectId, applicationId: applicationId}}'",
    ]
    ctx, check = _finance_kv_read("deny", {"http_status": 200}, {
        **shared, "access_policy_object_ids": PRINCIPAL, "access_policy_secret_permissions": f"{PRINCIPAL}=get"})
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY"
    assert finding.fix_lines()[0].startswith(
        f"az keyvault delete-policy --name finance-kv {WHERE} --object-id {PRINCIPAL}   # ")


def test_every_vault_builder_names_the_vaults_subscription_from_its_id_and_none_without_one() -> None:
    """By name only when the harness did not read the vault's id (or it is no vault's): the current subscription is
    then az's only guess, and the harness's too."""
    def built(vault_id: str | None) -> list[Command]:
        steps = [*fix.keyvault_network_rules("finance-kv", "20.62.133.7", vault_id),
                 *fix.keyvault_network_rules("finance-kv", None, vault_id),
                 *fix.keyvault_public_access("finance-kv", vault_id),
                 fix.keyvault_set_secret_policy("finance-kv", PRINCIPAL, (), vault_id),
                 fix.keyvault_revoke_secret_get("finance-kv", PRINCIPAL, ["get", "list"], vault_id),
                 fix.keyvault_revoke_secret_get("finance-kv", PRINCIPAL, ["get"], vault_id),
                 fix.keyvault_delete_policy("finance-kv", PRINCIPAL, None, vault_id),
                 fix.keyvault_policies("finance-kv", vault_id), fix.keyvault_uri("finance-kv", vault_id)]
        return [step for step in steps if isinstance(step, Command)]

    for command in built(SHARED_VAULT_ID):
        words = list(command.argv)
        assert words[words.index("--subscription") + 1] == SHARED, words
        assert words[words.index("--resource-group") + 1] == "shared-rg", words
    storage_id = SHARED_VAULT_ID.replace("Microsoft.KeyVault/vaults", "Microsoft.Storage/storageAccounts")
    for vault_id in (None, storage_id, SHARED_VAULT_ID.replace(SHARED, "s")):
        assert not any("--subscription" in command.argv for command in built(vault_id))


def test_a_storage_accounts_endpoint_is_looked_up_by_its_id_when_arm_gave_it() -> None:
    account_id = SHARED_VAULT_ID.replace("Microsoft.KeyVault/vaults/finance-kv",
                                         "Microsoft.Storage/storageAccounts/ordersdata")
    assert fix.storage_blob_endpoint("ordersdata", account_id).argv[:6] == (
        "az", "storage", "account", "show", "--ids", account_id)
    assert fix.storage_blob_endpoint("ordersdata", None).argv[4:6] == ("--name", "ordersdata")
