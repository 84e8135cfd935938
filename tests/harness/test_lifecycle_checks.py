"""The harness's verdicts after ARM lifecycle operations people run while tidying up: az resource move (a resource's
id changes, its role assignments stay at the old id, orphaned) and az group delete (everything in the group goes,
assignments elsewhere naming a deleted identity stay: Identity not found)."""

from __future__ import annotations

from test_checks import OLD, OTHER_VAULT_ID, SECRETS_USER_ID, VAULT_ID, _rbac_refused


def test_a_role_left_at_a_moved_vaults_old_id_is_named_orphaned_by_the_move() -> None:
    """az resource move --destination-group idRg --ids <finance-kv>: the vault's id changes and its role assignment
    stays at the old id, orphaned ("the role assignment isn't moved and becomes orphaned", learn.microsoft.com Move
    Azure resources). The finding said only 'not on <secret> or a parent'; it now names the move, grants at the new
    id and deletes the orphan as such. Another vault of another name stays a plain wrong scope."""
    old_id = VAULT_ID.replace("/resourceGroups/myRg/", "/resourceGroups/oldRg/")
    assert old_id != VAULT_ID
    finding = _rbac_refused([(SECRETS_USER_ID, old_id, OLD)])
    assert finding.code == "ROLE_WRONG_SCOPE"
    assert "finance-kv's id before it moved out of resource group oldRg (az resource move)" in finding.message
    assert f"grants nothing at its new id {VAULT_ID}" in finding.message
    lines = finding.fix_lines()
    assert lines[0].endswith(f"--role 'Key Vault Secrets User' --scope {VAULT_ID}")
    assert lines[1] == "# then remove the orphaned assignment left at the old id (Azure removes it eventually):"
    assert lines[2] == f"az role assignment delete --ids {old_id}/providers/Microsoft.Authorization/roleAssignments/a0"
    elsewhere = _rbac_refused([(SECRETS_USER_ID, OTHER_VAULT_ID.replace("/myRg/", "/oldRg/"), OLD)])
    assert "moved" not in elsewhere.message and "if nothing else needs it" in elsewhere.fix_lines()[1]


def test_an_identity_whose_group_was_deleted_is_made_again_with_all_it_had_in_one_fix() -> None:
    """az group delete -n <the identity's group> --yes: the identity, its federated credentials (child resources)
    and the assignments at the group go; the old principal's assignments elsewhere stay, orphaned (Identity not
    found). The fix made the group and the identity and said 'the next run prints its annotation, federated
    credential and roles', so three more runs. It now does it in one paste, in the chain's order: the group, the
    identity (its new client and principal ids captured), the credential, the read role on each allow target ARM
    lists, the annotation with the new client id, the restart, harness.yaml's client_id, then the orphaned
    assignments listed with their ids (az -o table leaves out a key named id)."""
    from test_checks import CLIENT, context_for
    from test_identity_checks import IDENTITY_ID, identity_group_deleted

    from harness.checks.federation import identity_matches
    from harness.config import KeyVaultSecretAccess
    from harness.facts import Fetched, LivePod, LivePodsFacts

    vault_url = "https://finance-kv.vault.azure.net/"
    access = [KeyVaultSecretAccess(kind="keyvault_secret", vault_url=vault_url, name="finance-kv",
                                   secret="db-password", expect="allow"),
              KeyVaultSecretAccess(kind="keyvault_secret", vault_url="https://platform-kv.vault.azure.net/",
                                   name="platform-kv", secret="admin-api-key", expect="deny"),
              KeyVaultSecretAccess(kind="keyvault_secret", vault_url="https://gone-kv.vault.azure.net/",
                                   name="gone-kv", secret="s", expect="allow")]
    ctx = identity_group_deleted(context_for(client_id=CLIENT, identity_resource_id=IDENTITY_ID, access=access))
    ctx.cluster.access_resources = {vault_url.rstrip("/"): {"id": VAULT_ID, "name": "finance-kv"}}
    ctx.facts.live_pods = LivePodsFacts([LivePod({"metadata": {"name": "backend-1"}}, "Deployment", "backend")])
    (finding,) = identity_matches(ctx).findings
    assert finding.code == "IDENTITY_NOT_FOUND"
    where = "--resource-group shared --subscription 0b1f6471-1bf0-4dda-aec3-111122223333"
    lines = finding.fix_lines()
    assert lines[1:] == [
        "az group create --name shared --location westeurope --subscription 0b1f6471-1bf0-4dda-aec3-111122223333",
        f"CLIENT_ID=$(az identity create --name shared-id {where} --query clientId -o tsv)",
        f"PRINCIPAL_ID=$(az identity show --name shared-id {where} --query principalId -o tsv)",
        f"az identity federated-credential create --name finance-backend-sa --identity-name shared-id {where} "
        f"--issuer {ctx.cluster.issuer_url} --subject system:serviceaccount:finance:backend-sa "
        "--audiences api://AzureADTokenExchange",
        'az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal '
        f"--role 'Key Vault Secrets User' --scope {VAULT_ID}",
        lines[6],
        'kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id="$CLIENT_ID" '
        "--overwrite",
        "kubectl rollout restart deployment/backend -n finance   # the webhook acts on pod CREATE only",
        '# set client_id for finance/backend-sa in harness.yaml to the new client id (echo "$CLIENT_ID")',
        lines[10],
        "az role assignment list --all --query '[?!principalName].{assignment: id, role: roleDefinitionName, "
        "principalId: principalId}' -o table",
    ]
    assert lines[6].startswith("# grant Key Vault Secrets User to $PRINCIPAL_ID on Key Vault secret 's' in "
                               "https://gone-kv.vault.azure.net/ once it is there again")
    assert "with an empty principalName" in lines[10]
    # the group is there (az identity delete alone): the same repair without the group, the orphaned assignments
    # anywhere (tests/harness/test_identity_checks.py: the identity deleted, or a typo)
    ctx.facts.identity.error = Fetched(IDENTITY_ID, 404, None, "not found", "ResourceNotFound")
    alone = identity_matches(ctx).findings[0].fix_lines()
    assert not any("az group create" in line for line in alone) and alone[1:4] == lines[2:5]
    assert alone[-2].startswith("# then delete the role assignments the old identity left (")


def test_a_vault_deleted_with_its_group_is_recovered_after_the_group_is_made_again() -> None:
    """az group delete of the vault's group: the vault is soft-deleted with the rest, and VAULT_DELETED printed az
    keyvault recover into that group, which ARM refuses while the group is not there (az in the lab:
    '(ResourceGroupNotFound) Resource group 'idRg' could not be found.'). The collector now asks ARM for the deleted
    vault's group; when it is gone the message says so and the fix makes it first. A group that is there (or a read
    that is refused) keeps the fix as it was."""
    from types import SimpleNamespace
    from typing import Any

    from test_checks import _finance_kv_read

    from harness.checks.access import access_outcome
    from harness.collect.access_resources import collect_access_resources
    from harness.facts import Fetched

    sub = "0b6a4e5c-1f2d-4c3b-9a8e-7d6c5b4a3f21"
    deleted_id = f"/subscriptions/{sub}/resourceGroups/idRg/providers/Microsoft.KeyVault/vaults/finance-kv"

    def findings(group_answer: Fetched) -> tuple[str, list[str]]:
        asked: list[str] = []

        def arm(path: str, body: Any = None) -> Fetched:
            asked.append(path)
            if "deletedVaults" in path:
                return Fetched(url=path, status=200, body={"value": [{"properties": {
                    "vaultId": deleted_id, "location": "eastus", "deletionDate": "2026-12-05T19:48:23Z"}}]})
            if path.startswith(f"/subscriptions/{sub}/resourcegroups/"):
                return group_answer
            return Fetched(url=path, status=200, body={"data": []} if body is not None else {"value": []})

        ctx, check = _finance_kv_read("allow", {}, None, roles_read=True)
        ctx.cluster.access_resources = collect_access_resources(
            arm, SimpleNamespace(subscription_id="s"),  # type: ignore[arg-type]
            [SimpleNamespace(access=[check])])  # type: ignore[list-item]
        assert f"/subscriptions/{sub}/resourcegroups/idRg?api-version=2021-04-01" in asked
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe["steps"][0]["error"] = {"kind": "dns", "message": "Name or service not known"}
        [finding] = access_outcome(ctx, 0, check).findings
        assert finding.code == "VAULT_DELETED"
        return finding.message, finding.fix_lines()

    recover = f"az keyvault recover --name finance-kv --resource-group idRg --location eastus --subscription {sub}"
    message, lines = findings(Fetched("g", 404, None, "Resource group 'idRg' could not be found.",
                                      "ResourceGroupNotFound"))
    assert "its resource group idRg was deleted too (az group delete)" in message
    assert lines[:2] == [f"az group create --name idRg --location eastus --subscription {sub}", recover]
    for there in (Fetched("g", 200, {"name": "idRg"}), Fetched("g", 403, None, "refused", "AuthorizationFailed")):
        message, lines = findings(there)
        assert "deleted too" not in message and lines[0] == recover


def test_a_vault_deleted_with_the_identitys_group_is_recovered_in_the_identitys_fix() -> None:
    """az group delete of a group holding the identity and the vault it reads: the access checks are skipped (no
    token), so VAULT_DELETED's recover was never printed and the identity's fix said 'grant ... once it is there
    again'. The identity's fix now recovers the vault (its group made again first when that is another deleted
    group) and grants the new principal's read on it."""
    from test_checks import CLIENT, context_for
    from test_identity_checks import IDENTITY_ID, identity_group_deleted

    from harness.checks.federation import identity_matches
    from harness.config import KeyVaultSecretAccess

    sub = "0b1f6471-1bf0-4dda-aec3-111122223333"
    urls = {"shared": "https://shared-kv.vault.azure.net/", "other": "https://other-kv.vault.azure.net/"}
    access = [KeyVaultSecretAccess(kind="keyvault_secret", vault_url=url, name=f"{group}-kv", secret="s",
                                   expect="allow") for group, url in urls.items()]
    ctx = identity_group_deleted(context_for(client_id=CLIENT, identity_resource_id=IDENTITY_ID, access=access))
    ctx.cluster.access_resources = {
        url.rstrip("/"): {"id": f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/"
                                f"{group}-kv", "name": f"{group}-kv", "resource_group": group, "subscription_id": sub,
                          "location": "westeurope", "deleted": "true", "group_deleted": "true"}
        for group, url in urls.items()}
    lines = identity_matches(ctx).findings[0].fix_lines()
    recovered = [line for line in lines if "keyvault recover" in line or "group create" in line
                 or "role assignment create" in line]
    assert recovered == [
        f"az group create --name shared --location westeurope --subscription {sub}",  # the identity's group
        f"az keyvault recover --name shared-kv --resource-group shared --location westeurope --subscription {sub}",
        'az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal '
        f"--role 'Key Vault Secrets User' --scope /subscriptions/{sub}/resourceGroups/shared/providers/"
        "Microsoft.KeyVault/vaults/shared-kv",
        f"az group create --name other --location westeurope --subscription {sub}",
        f"az keyvault recover --name other-kv --resource-group other --location westeurope --subscription {sub}",
        'az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal '
        f"--role 'Key Vault Secrets User' --scope /subscriptions/{sub}/resourceGroups/other/providers/"
        "Microsoft.KeyVault/vaults/other-kv",
    ]
    assert not any("once it is there again" in line for line in lines)


def test_a_cluster_deleted_with_its_group_is_named_and_not_asked_for_again() -> None:
    """az group delete of the cluster's group (or az aks delete): CLUSTER_NOT_FOUND printed az aks show of the
    cluster, which fails the same way (ResourceGroupNotFound). It now says what deleted it, that a deleted AKS
    cluster is not restorable and one made again has another OIDC issuer (every federated credential made again),
    and lists the subscription's clusters, in case harness.yaml names one wrongly."""
    import time

    from test_identity_checks import azure

    from harness.checks.cluster import ClusterContext, oidc_issuer_enabled
    from harness.facts import ClusterFacts, Fetched

    def finding(code: str) -> tuple[str, list[str]]:
        facts = ClusterFacts(time.time(), arm_cluster=Fetched("https://arm/aks", 404, None, "not found", code))
        [found] = oidc_issuer_enabled(ClusterContext(facts, azure())).findings
        assert found.code == "CLUSTER_NOT_FOUND"
        return found.message, found.fix_lines()

    _, lines = finding("ResourceGroupNotFound")
    assert lines[0].startswith("# resource group rg is not there: deleted (az group delete) with the cluster, or a "
                               "typo in harness.yaml's azure.cluster_name / resource_group")
    assert "a new one has another OIDC issuer URL" in lines[0] and not lines[0].endswith("…")
    assert lines[1] == ("az aks list --subscription 0b1f6471-1bf0-4dda-aec3-111122223333 --query "
                        "'[].{name: name, resourceGroup: resourceGroup, issuer: oidcIssuerProfile.issuerUrl}' -o table")
    _, lines = finding("ResourceNotFound")
    assert lines[0].startswith("# no managed cluster aks in resource group rg: deleted (az aks delete)")
    assert not any(line.startswith("az aks show") for line in lines)
