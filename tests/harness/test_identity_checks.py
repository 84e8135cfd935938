"""Where the identity really lives: a managed identity in any subscription (Resource Graph), an Entra
application (Microsoft Graph), a principal id in the annotation, and what the harness cannot see.

First the checks as pure functions of facts, then whole runs over the fake world (kube + webhook + the real
probe + fake ARM, Resource Graph, Graph and Entra).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from fakeworld import AUDIENCE, ISSUER, FakeWorkload, World
from test_checks import CLIENT, context_for

from harness.analysis import analyse
from harness.checks.access import access_outcome
from harness.checks.context import WorkloadContext
from harness.checks.exchange import exchange_identity, exchange_succeeds
from harness.checks.federation import federated_credential, identity_matches
from harness.checks.inventory import InventoryContext, client_ids_known
from harness.checks.model import FAIL, PASS, SKIP, WARN, Finding
from harness.checks.serviceaccount import sa_client_id_annotation
from harness.collect.run import Selection, collect_run
from harness.config import AzureConfig, KeyVaultSecretAccess, parse_config
from harness.facts import CREDENTIAL_ERROR, ClusterFacts, Fetched, IdentityFacts, InventoryFacts
from harness.redact import Redactor

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
HARNESS = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SP_ID = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
APP_OBJECT_ID = "11111111-2222-4333-8444-555555555555"
REAL_CLIENT = "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"
IDENTITY_ID = ("/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourcegroups/shared/providers/"
               "Microsoft.ManagedIdentity/userAssignedIdentities/shared-id")
SUBJECT = "system:serviceaccount:finance:backend-sa"


def azure() -> AzureConfig:
    return AzureConfig.model_validate({
        "cloud": "AzureCloud", "tenant_id": TENANT, "subscription_id": "0b1f6471-1bf0-4dda-aec3-111122223333",
        "resource_group": "rg", "cluster_name": "aks",
        "credential": {"client_id": HARNESS, "client_secret_env": "HARNESS_SECRET"},
    }, context={"environ": {"HARNESS_SECRET": "s3cr3t"}})


def context_with(identity: IdentityFacts, exchanged: bool | None = None) -> Any:
    ctx = context_for()
    ctx.azure = azure()
    ctx.facts.identity = identity
    assert ctx.facts.pod is not None
    if exchanged is not None:
        ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "pass" if exchanged else "fail",
                                          "evidence": {}, "error": {}}]}
    return ctx


def application(service_principal: bool = True, fics: list[dict[str, Any]] | None = None) -> IdentityFacts:
    return IdentityFacts(
        configured=True, kind="application", resolved_by="graph",
        application={"id": APP_OBJECT_ID, "appId": CLIENT, "displayName": "backend-app"},
        service_principal={"id": SP_ID, "appId": CLIENT} if service_principal else None,
        service_principal_lookup=None if service_principal else Fetched("sp", 404, None, "not found"),
        federated_credentials=fics if fics is not None else [
            {"id": "f1", "name": "kube", "issuer": ISSUER, "subject": SUBJECT, "audiences": [AUDIENCE]}],
    )


# ---------------------------------------------------------------------------------------------- pure checks


def test_an_application_backs_the_workload_and_its_graph_credentials_are_matched() -> None:
    ctx = context_with(application())
    outcome = identity_matches(ctx)
    assert outcome.status == PASS and "found in Microsoft Graph" in outcome.message
    assert outcome.evidence["servicePrincipalId"] == SP_ID and outcome.evidence["kind"] == "application"
    assert federated_credential(ctx).status == PASS


def test_an_applications_credential_is_fixed_in_graph_not_arm() -> None:
    other = [{"name": "kube", "issuer": ISSUER, "subject": "system:serviceaccount:finance:other", "audiences": [AUDIENCE]}]
    outcome = federated_credential(context_with(application(fics=other)))
    assert outcome.status == FAIL and outcome.findings[0].code == "FIC_SUBJECT_MISMATCH"
    assert outcome.findings[0].fix_lines() == [
        f"az ad app federated-credential create --id {CLIENT} --parameters "
        f"'{{\"name\": \"finance-backend-sa\", \"issuer\": \"{ISSUER}\", \"subject\": \"{SUBJECT}\", "
        f"\"audiences\": [\"{AUDIENCE}\"]}}'"
    ]


def test_an_application_without_a_service_principal_gets_one() -> None:
    outcome = identity_matches(context_with(application(service_principal=False)))
    assert outcome.status == FAIL
    finding = outcome.findings[0]
    assert (finding.code, finding.layer) == ("SERVICE_PRINCIPAL_MISSING", "identity")
    assert finding.fix_lines() == [f"az ad sp create --id {CLIENT}"]


def test_a_deleted_service_principal_is_restored_with_its_object_id() -> None:
    """Graph keeps a deleted service principal for 30 days: restored, it keeps its object id, which the role
    assignments name; a new one (az ad sp create) would hold none of them."""
    facts = application(service_principal=False)
    facts.deleted_service_principal = {"id": SP_ID, "appId": CLIENT, "deletedDateTime": "2026-12-01T10:00:00Z"}
    finding = identity_matches(context_with(facts)).findings[0]
    assert finding.code == "SERVICE_PRINCIPAL_MISSING"
    assert f"its service principal {SP_ID} was deleted 2026-12-01T10:00:00Z" in finding.message
    assert finding.fix_lines() == [
        f"az rest --method POST --url https://graph.microsoft.com/v1.0/directory/deletedItems/{SP_ID}/restore"]


def test_a_deleted_application_is_restored_then_its_service_principal() -> None:
    deleted = {"id": APP_OBJECT_ID, "appId": CLIENT, "displayName": "backend-app",
               "deletedDateTime": "2026-12-01T10:00:00Z"}
    facts = IdentityFacts(configured=True, note="nothing", deleted_application=deleted,
                          deleted_service_principal={"id": SP_ID, "appId": CLIENT})
    outcome = identity_matches(context_with(facts, exchanged=False))
    assert outcome.status == FAIL
    finding = outcome.findings[0]
    assert finding.code == "IDENTITY_NOT_FOUND" and "was deleted 2026-12-01T10:00:00Z" in finding.message
    base = "az rest --method POST --url https://graph.microsoft.com/v1.0/directory/deletedItems"
    assert finding.fix_lines() == [f"{base}/{APP_OBJECT_ID}/restore   # the application",
                                   f"{base}/{SP_ID}/restore   # its service principal, which the role assignments "
                                   "name"]
    facts.deleted_service_principal = None  # purged, or the app never had one
    lines = identity_matches(context_with(facts, exchanged=False)).findings[0].fix_lines()
    assert lines == [f"{base}/{APP_OBJECT_ID}/restore   # the application", f"az ad sp create --id {CLIENT}"]


def test_a_deleted_application_made_again_under_its_name_is_annotated_and_the_restore_is_the_other_way() -> None:
    """``az ad app delete`` then ``az ad app create`` under the same name, with a federated credential for the
    ServiceAccount (the person started over): the fix was the restore alone, which brings the old app back beside
    the new one. The new app's client id is annotated first; the restore stays as comments (a paste runs none)."""
    deleted = {"id": APP_OBJECT_ID, "appId": CLIENT, "displayName": "backend-app",
               "deletedDateTime": "2026-12-01T10:00:00Z"}
    trusting = {"name": "kfc", "issuer": ISSUER, "subject": SUBJECT, "audiences": [AUDIENCE]}
    facts = IdentityFacts(configured=True, note="nothing", deleted_application=deleted,
                          deleted_service_principal={"id": SP_ID, "appId": CLIENT},
                          namesakes=[{"application": {"id": "o", "appId": REAL_CLIENT, "displayName": "backend-app"},
                                      "federated_credentials": [trusting]}])
    ctx = context_for(client_id=CLIENT)  # harness.yaml names the deleted app's client id
    ctx.azure, ctx.facts.identity = azure(), facts
    finding = identity_matches(ctx).findings[0]
    assert finding.code == "IDENTITY_NOT_FOUND" and f"appId {REAL_CLIENT}, made since" in finding.message
    lines = finding.fix_lines()
    assert lines[0] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                        f"azure.workload.identity/client-id={REAL_CLIENT} --overwrite")
    assert lines[1].startswith(f"# set client_id: {REAL_CLIENT} for finance/backend-sa in harness.yaml")
    assert [line for line in lines if "/restore" in line] and all(
        line.startswith("#") for line in lines if "/restore" in line)
    facts.namesakes[0]["federated_credentials"] = [{**trusting, "subject": "system:serviceaccount:web:other"}]
    assert identity_matches(ctx).findings[0].fix_lines()[0].startswith("az rest")  # trusts another account


def test_a_credential_the_harness_cannot_see_is_made_where_the_refusals_point() -> None:
    """AADSTS70025 for a client id the harness could not look up. Microsoft Graph alone refused (no managed
    identity of the subscriptions the harness reads has it): an app registration, so the fix is az ad app
    federated-credential create --id CLIENT; it was az identity federated-credential create with three
    placeholders, a managed identity's command for an app. With ARM refused too, the managed identity's stays
    first and the app registration's is named in its comment."""
    graph = Fetched(f"https://graph.microsoft.com/v1.0/applications(appId='{CLIENT}')", 403, None, "denied",
                    "Authorization_RequestDenied")
    arm = Fetched("https://management.azure.com/subscriptions/x/providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities?api-version=2023-01-31", 403, None, "denied", "AuthorizationFailed")
    error = {"kind": "entra_error", "http_status": 401, "error": "invalid_client", "aadsts": "AADSTS70025",
             "message": f"AADSTS70025: The client '{CLIENT}'(web-app) has no configured federated identity "
                        "credentials."}

    def first_line(*refused: Fetched) -> str:
        ctx = context_for(client_id=CLIENT)
        ctx.azure, ctx.facts.identity = azure(), IdentityFacts(configured=True, refused=list(refused))
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "error": error,
                                          "evidence": {"client_id": CLIENT}}]}
        finding = exchange_succeeds(ctx).findings[0]
        assert finding.code == "FIC_MISSING"
        return finding.fix_lines()[0]

    line = first_line(graph)
    assert line.startswith(f"az ad app federated-credential create --id {CLIENT} --parameters ")
    assert "<" not in line.split("   #")[0] and f"# if {CLIENT} is an app registration" in line
    line = first_line(graph, arm)
    assert line.startswith("az identity federated-credential create")
    assert f"az ad app federated-credential create --id {CLIENT}" in line.split("   #")[1]


def test_an_object_id_in_harness_yaml_is_harness_yamls_fault_not_the_annotations() -> None:
    """harness.yaml's client_id is the app registration's Object ID (or its service principal's, or a managed
    identity's principalId), the ServiceAccount rightly annotated with its client id, and the workload works. It
    was SA_CLIENT_ID_MISMATCH whose fix annotated the object id (breaking the workload: AADSTS700016),
    SA_ANNOTATION_IS_PRINCIPAL_ID saying the annotation must hold the client id it holds, and
    EXCHANGE_WRONG_IDENTITY. Now one finding, the harness.yaml edit; the token is judged against the annotation."""
    for kind in ("application", "service_principal", "managed_identity"):
        ctx = context_for(client_id=APP_OBJECT_ID)  # the annotation is CLIENT
        ctx.azure = azure()
        ctx.facts.identity = IdentityFacts(configured=True, principal_of={
            "kind": kind, "client_id": CLIENT, "name": "backend-app", "resource_id": None})
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "pass", "evidence": {
            "client_id": CLIENT, "claims": {"appid": CLIENT, "tid": TENANT}}}]}
        annotation = sa_client_id_annotation(ctx)
        (mismatch,) = annotation.findings
        assert mismatch.code == "SA_CLIENT_ID_MISMATCH", kind
        assert f"harness.yaml's client_id {APP_OBJECT_ID} is its object id" in mismatch.message
        assert mismatch.fix_lines() == [f"# set client_id: {CLIENT} for finance/backend-sa in harness.yaml (it names "
                                        f"{APP_OBJECT_ID}, the {kind.replace('_', ' ')}'s object id); the annotation "
                                        "is right"]
        matches = identity_matches(ctx)
        assert matches.status == SKIP and matches.blocked_by == "sa.client_id_annotation" and not matches.findings
        assert exchange_identity(ctx).status == PASS


def test_a_new_credential_is_named_so_that_it_takes_no_name_in_use() -> None:
    """The app's credential finance-backend-sa made for another subject (a namespace typo): the fix creates a
    credential for the ServiceAccount, and it was named finance-backend-sa too, which Graph refuses ("Federated
    IdentityCredential with name finance-backend-sa already exists.") and ARM's PUT would overwrite."""
    typo = {"id": "f1", "name": "finance-backend-sa", "issuer": ISSUER,
            "subject": "system:serviceaccount:finance-1:backend-sa", "audiences": [AUDIENCE]}
    taken = {**typo, "name": "finance-backend-sa-2", "subject": "system:serviceaccount:other:sa"}
    outcome = federated_credential(context_with(application(fics=[typo, taken])))
    (finding,) = outcome.findings
    assert finding.code == "FIC_SUBJECT_MISMATCH"
    assert '"name": "finance-backend-sa-3"' in finding.fix_lines()[0]
    assert '"name": "finance-backend-sa"' in federated_credential(context_with(application(fics=[
        {**typo, "name": "other"}]))).findings[0].fix_lines()[0]  # the usual name where it is free


def _harness_credential_failed(entra_error: str) -> Finding:
    """identity.matches' first finding when Entra refuses the harness's own ARM token with ``entra_error``; it must
    be HARNESS_CREDENTIAL_FAILED."""
    failure = Fetched("https://management.azure.com/x", None, None,
                      f"the harness could not get an ARM token: Authentication failed: {entra_error}", CREDENTIAL_ERROR)
    ctx = context_for()
    ctx.azure = azure()
    ctx.facts.identity = IdentityFacts(configured=True, resource_id="/x", error=failure)
    finding = identity_matches(ctx).findings[0]
    assert finding.code == "HARNESS_CREDENTIAL_FAILED"
    return finding


def test_the_harness_disabled_is_enabled_not_given_a_new_secret() -> None:
    """The harness's own service principal disabled (az ad sp update --id <harness> --set accountEnabled=false):
    Entra refuses its token with AADSTS7000112. HARNESS_CREDENTIAL_FAILED printed the expired-secret repair (az ad
    app credential list, put the secret's value in the file); it now enables the service principal."""
    finding = _harness_credential_failed(f"AADSTS7000112: Application '{HARNESS}'(wi-harness) is disabled.")
    assert finding.fix_lines()[1:] == [f"az ad sp show --id {HARNESS} --query accountEnabled",
                                       f"az ad sp update --id {HARNESS} --set accountEnabled=true"]
    assert not any("credential list" in line for line in finding.fix_lines())


def test_a_harness_yaml_tenant_or_client_id_entra_does_not_know_is_fixed_in_harness_yaml_not_with_a_secret() -> None:
    """By hand in the lab: azure.tenant_id of another GUID (MSAL: 'Unable to get authority configuration'; Entra:
    AADSTS90002) and azure.credential.client_id set to the app's object id (AADSTS700016): both printed the
    expired-secret repair. Each now names the harness.yaml field and the az command that prints the right value
    (run in the lab: az account show --query tenantId, az ad app show --id <object id> --query appId)."""
    tenant = _harness_credential_failed("Unable to get authority configuration for https://login.microsoftonline"
                                        ".com/00000000-0000-0000-0000-000000000002. Authority would typically be ...")
    assert tenant.fix_lines()[1] == ("az account show --subscription 0b1f6471-1bf0-4dda-aec3-111122223333 --query "
                                     "tenantId -o tsv")
    assert tenant.fix_lines()[0].startswith(f"# azure.tenant_id {TENANT} in harness.yaml is not a tenant Entra knows")
    client = _harness_credential_failed(f"AADSTS700016: Application with identifier '{HARNESS}' was not found in "
                                        f"the directory '{TENANT}'.")
    assert client.fix_lines()[1] == f"az ad app show --id {HARNESS} --query appId -o tsv"
    assert "Application (client) ID, not its Object ID" in client.fix_lines()[0]
    for finding in (tenant, client):
        assert not any("credential list" in line or "VALUE" in line for line in finding.fix_lines())


def test_the_harness_without_its_service_principal_is_restored_or_made_with_its_grants() -> None:
    """The harness's own service principal deleted (AADSTS7000229 for its token): no new secret helps. The restore
    from Graph's deleted items comes first, as comments (the person looks); the lines make a new one and grant it
    Reader and Application.Read.All, which a new object id lacks."""
    finding = _harness_credential_failed(f"AADSTS7000229: The client application {HARNESS} is missing service "
                                         f"principal in the tenant {TENANT}.")
    lines = finding.fix_lines()
    commands = [line for line in lines if not line.startswith("#")]
    assert commands[:2] == [f"az ad sp create --id {HARNESS}", f"az role assignment create --assignee {HARNESS} "
                            "--role Reader --scope /subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333"]
    assert commands[2].startswith("GRANT=$(az ad sp list")
    assert "deletedItems/microsoft.graph.servicePrincipal" in lines[1] and lines[1].startswith("#")
    assert not any("credential list" in line for line in lines)


def test_harness_yaml_naming_two_identities_is_fixed_in_harness_yaml_not_by_moving_a_working_workload() -> None:
    """harness.yaml's client_id (an app registration's, with which the ServiceAccount is annotated and as which the
    pod exchanges its token) and its identity_resource_id (a managed identity, another client id) disagree. The fix
    annotated the managed identity's client id, moving a working workload; the next run then asked to annotate it
    back (SA_ANNOTATION_WRONG_IDENTITY) and to edit harness.yaml. It now asks for the harness.yaml edit. An
    identity deleted and made again under its name (the exchange fails) still gets the new client id annotated."""
    def outcome(exchanged: bool) -> Any:
        ctx = context_for(client_id=CLIENT, identity_resource_id=IDENTITY_ID)
        ctx.azure = azure()
        ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity", resource_id=IDENTITY_ID,
                                           resolved_by="config", identity={"id": IDENTITY_ID, "properties": {
                                               "clientId": REAL_CLIENT, "principalId": SP_ID}})
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "pass" if exchanged else "fail",
                                          "evidence": {"client_id": CLIENT}, "error": {}}]}
        return identity_matches(ctx)

    (finding,) = outcome(exchanged=True).findings
    assert finding.code == "IDENTITY_CLIENT_ID_MISMATCH" and "harness.yaml names two identities" in finding.message
    assert finding.fix_lines() == [f"# in harness.yaml, for finance/backend-sa: drop identity_resource_id if the "
                                   f"workload runs as {CLIENT}, as its ServiceAccount says; else set client_id: "
                                   f"{REAL_CLIENT} there, and the next run prints the annotation"]
    assert outcome(exchanged=False).findings[0].fix_lines()[0].startswith(
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={REAL_CLIENT}")


def test_an_identity_deleted_and_created_again_gets_its_credential_and_roles_back_in_one_fix() -> None:
    """az identity delete + az identity create under the same name: a new client id and principal id, no federated
    credential, no role (the old assignment stays, naming a principal that is gone). The fix annotated only, so the
    next runs found harness.yaml, FIC_MISSING, then ROLE_ASSIGNMENT_MISSING one at a time. It now names the
    re-creation and prints all of it (pasted in the lab: the next run passed), with the orphaned assignments' look-up."""
    vault = "https://finance-kv.vault.azure.net/"
    vault_id = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"
    ctx = context_for(client_id=CLIENT, identity_resource_id=IDENTITY_ID, access=[
        KeyVaultSecretAccess(kind="keyvault_secret", vault_url=vault, secret="db", expect="allow"),
        KeyVaultSecretAccess(kind="keyvault_secret", vault_url="https://other-kv.vault.azure.net/", secret="x",
                             expect="deny")])
    ctx.azure = azure()
    ctx.cluster.access_resources = {vault.rstrip("/"): {"id": vault_id, "name": "finance-kv", "resource_group": "myRg",
                                                        "rbac_authorization": "true"}}
    ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity", resource_id=IDENTITY_ID,
                                       resolved_by="config", federated_credentials=[], role_assignments=[],
                                       identity={"id": IDENTITY_ID, "properties": {"clientId": REAL_CLIENT,
                                                                                   "principalId": SP_ID}})
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"client_id": CLIENT},
                                      "error": {"aadsts": "AADSTS700016"}}]}
    (finding,) = identity_matches(ctx).findings
    assert finding.code == "IDENTITY_CLIENT_ID_MISMATCH"
    assert "shared-id was deleted and created again under its name" in finding.message
    lines = finding.fix_lines()
    assert lines[0] == (f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id="
                        f"{REAL_CLIENT} --overwrite")
    # the annotate line above is what makes the annotation right (it said "the annotation is right" under a line
    # that changes it: found breaking the lab by hand with az identity delete + create)
    assert lines[1] == (f"# set client_id: {REAL_CLIENT} for finance/backend-sa in harness.yaml (it names {CLIENT}, "
                        "which is not the identity's); the annotate line above sets the ServiceAccount's")
    assert lines[2].startswith("az identity federated-credential create --name finance-backend-sa --identity-name "
                               f"shared-id --resource-group shared --subscription 0b1f6471-1bf0-4dda-aec3-111122223333 "
                               f"--issuer {ISSUER} --subject {SUBJECT}")
    assert lines[3] == (f"az role assignment create --assignee-object-id {SP_ID} --assignee-principal-type "
                        f"ServicePrincipal --role 'Key Vault Secrets User' --scope {vault_id}")
    # the id under a key of its own: az -o table leaves out a key named id (knack's SKIP_KEYS), and the advice
    # before it says to delete them by id
    assert lines[5] == ("az role assignment list --all --query '[?!principalName].{assignment: id, role: "
                        "roleDefinitionName, principalId: principalId}' -o table")
    assert not any("other-kv" in line for line in lines)  # a deny target gets no grant

    # a credential and a role already given to the new identity are not given again
    ctx.facts.identity.federated_credentials = [{"name": "kube", "properties": {
        "issuer": ISSUER, "subject": SUBJECT, "audiences": [AUDIENCE]}}]
    ctx.facts.identity.role_assignments = [{"id": "a1", "properties": {"roleDefinitionId": "r/user",
                                                                       "scope": vault_id}}]
    ctx.facts.identity.role_permissions = {"r/user": {"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"]}}
    lines = identity_matches(ctx).findings[0].fix_lines()
    assert not any(line.startswith(("az identity federated-credential", "az role")) for line in lines), lines


def test_an_identity_moved_to_another_group_is_found_by_its_client_id_and_harness_yaml_named() -> None:
    """az resource move of the identity to another resource group (its client id and principal id kept): ARM answers
    404 for harness.yaml's identity_resource_id. The run failed IDENTITY_NOT_FOUND, printing az identity create in
    the old group, though the exchange and the reads worked (the token's xms_mirid named the new id). The collector
    now finds the client id elsewhere and judges that identity; the check warns and names the id for harness.yaml."""
    from test_collect import SUB, AzureApis, identity_reads
    from test_collect import azure as collect_azure

    from harness.collect.arm import collect_identity

    old = f"/subscriptions/{SUB}/resourcegroups/oldRg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    new = f"/subscriptions/{SUB}/resourceGroups/idRg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    row = {"id": new, "properties": {"clientId": CLIENT, "principalId": "p"}}
    apis = AzureApis(arg=Fetched("arg", 200, {"data": [row]}), arm={
        old: Fetched(old, 404, None, "Resource group 'oldRg' could not be found.", "ResourceGroupNotFound"),
        **identity_reads(new)})
    facts = collect_identity(apis.arm, collect_azure(), old, CLIENT, apis.graph)
    assert (facts.resource_id, facts.resolved_by, facts.error) == (new, "resource_graph", None)
    assert facts.federated_credentials == []
    # no identity has the client id: the 404 stands, as before
    apis.arg = Fetched("arg", 200, {"data": []})
    gone = collect_identity(apis.arm, collect_azure(), old, CLIENT, apis.graph)
    assert gone.error is not None and gone.error.status == 404 and gone.resource_id == old and gone.searched == []

    ctx = context_for(client_id=CLIENT, identity_resource_id=old)
    ctx.azure, ctx.facts.identity = azure(), facts
    facts.kind = "managed_identity"
    outcome = identity_matches(ctx)
    assert outcome.status == WARN and "client id " + CLIENT + " is identity i in resource group idRg" in outcome.message
    (finding,) = outcome.findings
    assert finding.code == "IDENTITY_RESOURCE_ID_STALE"
    assert finding.fix_lines() == [f"# set identity_resource_id: {new} for finance/backend-sa in harness.yaml"]


def test_a_deny_target_read_through_a_group_assignment_keeps_the_allowed_reads_and_deletes_it() -> None:
    """Key Vault Secrets User given on the resource group (az role assignment create --scope <group id>) instead of
    the vault: the workload reads its own vault and also the platform vault it must not. The finding said only
    'least privilege violated' and printed a comment, az role assignment list and a delete with a placeholder id.
    It now says which assignment grants it and where it is inherited from, and prints the grant on the vault the
    workload needs, then the delete by id (pasted in the lab: the next run passed)."""
    group = "/subscriptions/s/resourceGroups/myRg"
    own, platform = "https://finance-kv.vault.azure.net/", "https://platform-kv.vault.azure.net/"
    checks = [KeyVaultSecretAccess(kind="keyvault_secret", vault_url=own, secret="db", expect="allow"),
              KeyVaultSecretAccess(kind="keyvault_secret", vault_url=platform, secret="admin", expect="deny")]
    ctx = context_for(client_id=CLIENT, access=checks)
    ctx.azure = azure()
    ctx.cluster.access_resources = {
        url.rstrip("/"): {"id": f"{group}/providers/Microsoft.KeyVault/vaults/{name}", "name": name,
                          "resource_group": "myRg", "rbac_authorization": "true"}
        for url, name in ((own, "finance-kv"), (platform, "platform-kv"))}
    assignment = f"{group}/providers/Microsoft.Authorization/roleAssignments/a1"
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=IDENTITY_ID, resolved_by="config",
        identity={"id": IDENTITY_ID, "properties": {"clientId": CLIENT, "principalId": SP_ID}},
        role_assignments=[{"id": assignment, "properties": {"roleDefinitionId": "r/user", "scope": group}}],
        role_names={"r/user": "Key Vault Secrets User"},
        role_permissions={"r/user": {"dataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"]}})
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 1, "status": "fail", "outcome": "allow",
                                      "evidence": {"outcome": "allow", "status": 200}}]}
    (finding,) = access_outcome(ctx, 1, checks[1]).findings
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY"
    assert finding.message.endswith(f": Key Vault Secrets User on {group} (inherited from resource group myRg) "
                                    "grants it"), finding.message
    lines = [line for line in finding.fix_lines() if not line.startswith("#")]
    assert lines == [f"az role assignment create --assignee-object-id {SP_ID} --assignee-principal-type "
                     f"ServicePrincipal --role 'Key Vault Secrets User' --scope {group}/providers/"
                     "Microsoft.KeyVault/vaults/finance-kv",
                     f"az role assignment delete --ids {assignment}"]

    # granted through an Entra group the identity is in (RBAC honours group membership for service principals):
    # none of the identity's own assignments grants it, and the listing includes the groups'
    ctx.facts.identity.role_assignments = []
    (finding,) = access_outcome(ctx, 1, checks[1]).findings
    lines = finding.fix_lines()
    assert lines[0].startswith("# none of the identity's own role assignments grants the read: one of a group")
    assert lines[1] == f"az role assignment list --assignee {SP_ID} --all --include-groups -o table"


def test_a_subject_pasted_with_a_line_end_is_updated_and_a_full_identity_is_told_to_make_room_first() -> None:
    """az identity federated-credential update --subject "system:serviceaccount:ns:sa<newline>" (pasted from a
    terminal; az and the lab's ARM keep it): the fix created a second credential, leaving the broken one. It is
    now named and updated in place. And on an identity holding 20 credentials, a create is refused by ARM: the
    fix says to delete one first and lists them (pasted in the lab after deleting an orphan: the run passed)."""
    def credential(name: str, subject: str) -> dict[str, Any]:
        return {"name": name, "properties": {"issuer": ISSUER, "subject": subject, "audiences": [AUDIENCE]}}

    ctx = context_for(client_id=CLIENT, identity_resource_id=IDENTITY_ID)
    ctx.azure = azure()
    ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity", resource_id=IDENTITY_ID,
                                       resolved_by="config", federated_credentials=[credential("kube", SUBJECT + "\n")],
                                       identity={"id": IDENTITY_ID, "properties": {"clientId": CLIENT}})
    (finding,) = federated_credential(ctx).findings
    assert finding.code == "FIC_SUBJECT_MISMATCH" and "equal but for whitespace around it" in finding.message
    assert finding.fix_lines()[0].startswith("az identity federated-credential update --name kube ")

    ctx.facts.identity.federated_credentials = [credential(f"c{i}", f"system:serviceaccount:gone-{i}:app")
                                                for i in range(20)]
    lines = federated_credential(ctx).findings[0].fix_lines()
    assert lines[0].startswith("# the identity holds 20 federated credentials, the most it may")
    assert lines[1].startswith("az identity federated-credential list --identity-name shared-id ")
    assert lines[2].startswith("az identity federated-credential create ")
    ctx.facts.identity.federated_credentials = ctx.facts.identity.federated_credentials[:19]
    assert federated_credential(ctx).findings[0].fix_lines()[0].startswith("az identity federated-credential create")


def test_a_read_refused_under_an_abac_condition_names_the_condition_not_a_propagation_wait() -> None:
    """Storage Blob Data Reader on the account with --condition limiting blob reads to container 'archive': the
    read of reports/ is refused. The young assignment read as ROLE_PROPAGATION_PENDING ('wait a few minutes:
    nothing to change'), a settled one as 'should allow the read'. The condition is now named, and the fix replaces
    the assignment by one without it (granting the role again at that scope is a duplicate); in the lab, pasted
    as printed, the next run passed."""
    from harness.config import BlobAccess

    account_url = "https://ordersdata.blob.core.windows.net/"
    account = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.Storage/storageAccounts/ordersdata"
    check = BlobAccess(kind="blob", account_url=account_url, container="reports", blob="daily.csv", expect="allow")
    ctx = context_for(client_id=CLIENT, access=[check])
    ctx.azure = azure()
    ctx.cluster.access_resources = {account_url.rstrip("/"): {"id": account, "name": "ordersdata",
                                                              "resource_group": "myRg"}}
    condition = ("((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR\n"
                 " (@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'archive'))")
    assignment = f"{account}/providers/Microsoft.Authorization/roleAssignments/a1"
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=IDENTITY_ID, resolved_by="config",
        identity={"id": IDENTITY_ID, "properties": {"clientId": CLIENT, "principalId": SP_ID}},
        role_assignments=[{"id": assignment, "properties": {
            "roleDefinitionId": "r/reader", "scope": account, "condition": condition, "conditionVersion": "2.0",
            "createdOn": "2000-01-01T00:00:00Z"}}],
        role_names={"r/reader": "Storage Blob Data Reader"},
        role_permissions={"r/reader": {"dataActions": [
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]}})
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "fail", "outcome": "deny", "evidence": {
        "outcome": "deny", "status": 403, "code": "AuthorizationPermissionMismatch"}}]}
    (finding,) = access_outcome(ctx, 0, check).findings
    assert finding.code == "ACCESS_DENIED_UNEXPECTEDLY"
    assert (f"Storage Blob Data Reader on {account} grants it only under a condition, which this read did not meet: "
            "((!(ActionMatches{") in finding.message and "StringEquals 'archive'))" in finding.message
    assert [line for line in finding.fix_lines() if not line.startswith("#")] == [
        f"az role assignment delete --ids {assignment}",
        f"az role assignment create --assignee-object-id {SP_ID} --assignee-principal-type ServicePrincipal --role "
        f"'Storage Blob Data Reader' --scope {account}"]

    ctx.facts.identity.role_assignments[0]["properties"]["createdOn"] = datetime.datetime.now(
        datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # just made: still the condition, and the wait said
    (finding,) = access_outcome(ctx, 0, check).findings
    assert finding.code == "ACCESS_DENIED_UNEXPECTEDLY" and "s ago: if the condition allows it, wait" in finding.message

    # no condition, settled, still refused: the grant printed again was a duplicate (ARM: RoleAssignmentExists);
    # the deny assignments that apply are listed instead (az role deny-assignment list, which the lab answers)
    properties = ctx.facts.identity.role_assignments[0]["properties"]
    del properties["condition"]
    properties["createdOn"] = "2000-01-01T00:00:00Z"
    (finding,) = access_outcome(ctx, 0, check).findings
    assert finding.code == "ACCESS_DENIED_UNEXPECTEDLY" and "a deny assignment" in finding.message
    assert finding.fix_lines() == [f"az role deny-assignment list --scope {account} -o table",
                                   f"az role assignment list --assignee {SP_ID} --all -o table"]


def identity_group_deleted(ctx: WorkloadContext) -> WorkloadContext:
    """``ctx`` as after az group delete of the identity's group: ARM answers harness.yaml's
    identity id with 404 ResourceGroupNotFound; the cluster, in westeurope, is still there."""
    ctx.azure = azure()
    ctx.cluster.arm_cluster = Fetched("aks", 200, {"location": "westeurope"})
    ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity", resource_id=IDENTITY_ID,
                                       resolved_by="config", error=Fetched(
                                           IDENTITY_ID, 404, None, "Resource group 'shared' could not be found.",
                                           "ResourceGroupNotFound"))
    return ctx


def test_an_identity_whose_resource_group_was_deleted_gets_the_group_made_first() -> None:
    """az group delete of the group holding the identity (ARM: 404 ResourceGroupNotFound for harness.yaml's id, and
    no identity has the client id any more): the printed az identity list and az identity create in that group both
    failed with ResourceGroupNotFound. The group is now made first, in the cluster's region; pasted in the lab, the
    next run named the identity made again and its fix made the run pass."""
    ctx = identity_group_deleted(context_for(client_id=CLIENT, identity_resource_id=IDENTITY_ID))
    (finding,) = identity_matches(ctx).findings
    assert finding.code == "IDENTITY_NOT_FOUND"
    lines = finding.fix_lines()
    assert lines[0].startswith("# resource group shared is not there: deleted (az group delete) with the identity")
    assert lines[1:3] == ["az group create --name shared --location westeurope --subscription "
                          "0b1f6471-1bf0-4dda-aec3-111122223333",
                          "CLIENT_ID=$(az identity create --name shared-id --resource-group shared --subscription "
                          "0b1f6471-1bf0-4dda-aec3-111122223333 --query clientId -o tsv)"]
    assert ctx.facts.identity.error is not None
    ctx.facts.identity.error = Fetched(IDENTITY_ID, 404, None, "not found", "ResourceNotFound")  # the group is there
    assert not any("az group create" in line for line in identity_matches(ctx).findings[0].fix_lines())


def test_without_graph_read_an_unknown_client_id_is_also_looked_for_in_deleted_applications() -> None:
    """AADSTS700016 with Graph refusing the harness: the application may have been deleted (az ad app delete), which
    the harness cannot see; the look-ups listed live identities only. The person's az now lists Graph's deleted
    applications with that appId (object id to restore). With Graph readable the harness looks itself."""
    refused = Fetched(f"https://graph.microsoft.com/v1.0/applications(appId='{CLIENT}')", 403, None, "denied",
                      "Authorization_RequestDenied")

    def lines(*found: Fetched) -> list[str]:
        ctx = context_for()
        ctx.azure, ctx.facts.identity = azure(), IdentityFacts(configured=True, refused=list(found))
        assert ctx.facts.pod is not None
        error = {"kind": "entra_error", "http_status": 400, "error": "unauthorized_client", "aadsts": "AADSTS700016",
                 "message": f"AADSTS700016: Application with identifier '{CLIENT}' was not found"}
        ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "error": error,
                                          "evidence": {"client_id": CLIENT}}]}
        exchange = exchange_succeeds(ctx)
        # every look-up answered: identity.matches fails IDENTITY_NOT_FOUND, the exchange skipped because of it
        finding = exchange.findings[0] if exchange.status == FAIL else identity_matches(ctx).findings[0]
        assert finding.code == "IDENTITY_NOT_FOUND"
        return finding.fix_lines()

    listed = [line for line in lines(refused) if "deletedItems" in line]
    assert len(listed) == 1 and listed[0].startswith(
        "az rest --method GET --url https://graph.microsoft.com/v1.0/directory/deletedItems/microsoft.graph.application")
    assert f"\"value[?appId=='{CLIENT}'].{{objectId: id" in listed[0]
    assert not [line for line in lines() if "deletedItems" in line]


def test_a_credential_for_another_clusters_issuer_is_joined_not_moved() -> None:
    """The ServiceAccount's only credential names another cluster's issuer (the same app serves a blue/green pair,
    or the credential was copied from a cluster's set-up): FIC_ISSUER_MISMATCH updated it to this issuer, taking
    the trust from that cluster, where the inventory's FIC_OLD_ISSUER creates one. Both create now; a spelling twin
    (a trailing slash) is still updated in place."""
    other = "https://eastus.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/0f0e0d0c-1111-2222-3333-4444/"
    blue = {"id": "f1", "name": "blue", "issuer": other, "subject": SUBJECT, "audiences": [AUDIENCE]}
    (finding,) = federated_credential(context_with(application(fics=[blue]))).findings
    assert finding.code == "FIC_ISSUER_MISMATCH" and "another cluster's issuer" in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith(f"az ad app federated-credential create --id {CLIENT} ") and ISSUER in lines[0]
    assert lines[1].startswith("# credential blue may still serve the cluster of")
    twin = {**blue, "issuer": ISSUER.rstrip("/")}
    (finding,) = federated_credential(context_with(application(fics=[twin]))).findings
    assert finding.fix_lines()[0].startswith(f"az ad app federated-credential update --id {CLIENT} "
                                             "--federated-credential-id blue ")


def test_a_wrong_tenant_id_in_harness_yaml_is_fixed_in_harness_yaml() -> None:
    """harness.yaml's tenant_id for the workload names another tenant than the one its app registration, its
    ServiceAccount (no tenant annotation: the cluster's) and its token are in. IDENTITY_TENANT_MISMATCH printed a
    tenant annotation with the tenant the pod already uses, EXCHANGE_WRONG_IDENTITY an annotation of the client id
    it already has: neither changed anything. Both now ask for the harness.yaml edit."""
    other = "11111111-2222-4333-8444-555555555555"
    ctx = context_for(client_id=CLIENT, tenant_id=other)
    ctx.azure, ctx.facts.identity = azure(), application()
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "pass", "evidence": {
        "client_id": CLIENT, "claims": {"appid": CLIENT, "tid": TENANT}}}]}
    edit = (f"# set tenant_id: {TENANT} for finance/backend-sa in harness.yaml, or drop it (it names {other}; the "
            "identity, the ServiceAccount and the token are in the other)")
    (mismatch,) = identity_matches(ctx).findings
    assert mismatch.code == "IDENTITY_TENANT_MISMATCH" and mismatch.fix_lines() == [edit]
    (wrong,) = exchange_identity(ctx).findings
    assert wrong.code == "EXCHANGE_WRONG_IDENTITY" and wrong.fix_lines() == [edit]


def test_a_name_in_the_annotation_is_looked_up_by_name() -> None:
    """The app registration's (or managed identity's) name pasted into the annotation: SA_CLIENT_ID_MALFORMED
    printed az identity show --ids '<identity-resource-id>' (a placeholder; an app registration has none), and
    the run's SA_CLIENT_ID_UNKNOWN look-ups with <client-id>. Both now list the identities and apps of that name
    with their client ids; a configured identity_resource_id is still shown directly."""
    ctx = context_for()
    ctx.azure, ctx.facts.identity = azure(), IdentityFacts(configured=True)
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = "web-app"
    lines = sa_client_id_annotation(ctx).findings[0].fix_lines()
    assert lines[:2] == [
        "az identity list --query \"[?name=='web-app'].{name: name, clientId: clientId, group: "
        "resourceGroup}\" -o table",
        "az ad app list --display-name web-app --query '[].{displayName: displayName, appId: appId}' -o table"]
    configured = context_for(identity_resource_id=IDENTITY_ID)
    configured.azure, configured.facts.identity = azure(), IdentityFacts(configured=True)
    configured.facts.sa.annotations["azure.workload.identity/client-id"] = "web-app"
    assert sa_client_id_annotation(configured).findings[0].fix_lines()[0].startswith("az identity show --ids")
    facts = InventoryFacts(collected_at=0.0, azure_configured=True, all_service_accounts=["web/app-sa"],
                           service_accounts=[{"namespace": "web", "name": "app-sa", "client_id": "web-app",
                                              "tenant_id": None, "use_label": None}])
    unknown = client_ids_known(InventoryContext(facts, ClusterFacts(0.0, issuer_url=ISSUER), azure()))
    assert unknown.findings[0].fix_lines()[1].startswith("az ad app list --display-name web-app")


def test_entra_saying_the_service_principal_is_missing_gets_the_same_code() -> None:
    ctx = context_with(application(service_principal=False))
    assert ctx.facts.pod is not None
    error = {"kind": "entra_error", "http_status": 401, "error": "invalid_client", "aadsts": "AADSTS7000229",
             "message": f"AADSTS7000229: The client application {CLIENT} is missing service principal in the tenant"}
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {}, "error": error}]}
    finding = exchange_succeeds(ctx).findings[0]
    assert finding.code == "SERVICE_PRINCIPAL_MISSING" and finding.fix_lines() == [f"az ad sp create --id {CLIENT}"]


def test_a_missing_service_principal_the_harness_could_not_look_up_is_looked_for_in_deleted_items_first() -> None:
    """Without Graph read the harness cannot tell a deleted service principal from one never made: before the
    new one (a new object id, none of the old one's role assignments), the fix says where a deleted one is."""
    refused = Fetched("https://graph.microsoft.com/v1.0/applications(appId='x')", 403, None, "denied",
                      "Authorization_RequestDenied")
    ctx = context_with(IdentityFacts(configured=True, refused=[refused]))
    assert ctx.facts.pod is not None
    error = {"kind": "entra_error", "http_status": 401, "error": "invalid_client", "aadsts": "AADSTS7000229",
             "message": f"AADSTS7000229: The client application {CLIENT} is missing service principal in the tenant"}
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {}, "error": error}]}
    finding = exchange_succeeds(ctx).findings[0]
    assert finding.code == "SERVICE_PRINCIPAL_MISSING"
    lines = finding.fix_lines()
    assert lines[0].startswith("# deleted within the last 30 days? restore it instead") and "deletedItems" in lines[0]
    assert lines[1:] == [f"az ad sp create --id {CLIENT}"]


def test_a_principal_id_in_the_annotation_is_named_with_the_client_id_to_use() -> None:
    owner = {"kind": "managed_identity", "client_id": REAL_CLIENT, "name": "shared-id", "resource_id": IDENTITY_ID}
    outcome = identity_matches(context_with(IdentityFacts(configured=True, principal_of=owner)))
    assert outcome.status == FAIL
    finding = outcome.findings[0]
    assert (finding.code, finding.layer) == ("SA_ANNOTATION_IS_PRINCIPAL_ID", "serviceaccount")
    assert f"{CLIENT} is the principal (object) id of the managed identity {IDENTITY_ID}" in finding.message
    assert finding.fix_lines()[0] == (
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={REAL_CLIENT} "
        "--overwrite"
    )


GRAPH = "00000003-0000-0000-c000-000000000000"
# Graph's Application.Read.All granted as Graph grants app roles (az ad app permission admin-consent refuses every
# cloud but the public one, and a managed identity has no app registration to add a permission to)
GRANT_GRAPH_READ = [
    f"GRANT=$(az ad sp list --filter \"appId in ('{HARNESS}', '{GRAPH}')\" --query "
    f"\"{{principalId: [?appId=='{HARNESS}'].id | [0], resourceId: [?appId=='{GRAPH}'].id "
    "| [0], appRoleId: '9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30'}\" -o json)",
    f"az rest --method POST --url \"https://graph.microsoft.com/v1.0/servicePrincipals(appId='{HARNESS}')"
    "/appRoleAssignments\" --body \"$GRANT\"   # Application.Read.All for the harness (admin consent)",
]


def test_an_identity_the_harness_cannot_see_is_a_warning_when_the_exchange_worked() -> None:
    unseen = IdentityFacts(configured=True, note="nothing", searched=["Azure Resource Graph", "Microsoft Graph"])
    outcome = identity_matches(context_with(unseen, exchanged=True))
    assert outcome.status == WARN
    finding = outcome.findings[0]
    assert (finding.code, finding.severity, finding.layer) == ("IDENTITY_NOT_VISIBLE", "warning", "harness")
    assert "Entra exchanged the workload's token" in finding.message
    assert finding.fix_lines() == [  # Reader where the identity is (unknown here: the person names it), not the
        # cluster's subscription, which the harness already reads
        f"az role assignment create --assignee {HARNESS} --role Reader --scope "
        "'/subscriptions/<subscription-holding-the-identity>'",
        *GRANT_GRAPH_READ,
    ]
    assert federated_credential(context_with(unseen, exchanged=True)).status == SKIP


def test_a_graph_endpoint_entra_does_not_know_is_named_not_granted() -> None:
    """harness.yaml's azure.cloud.microsoft_graph names no resource of the cloud (a typo, another cloud's Graph):
    Entra refuses the harness's token for it (AADSTS500011). No grant or new secret helps: the fix names the
    setting."""
    text = ("the harness could not get an Microsoft Graph token: Authentication failed: AADSTS500011: The resource "
            "principal named https://graph.microsoft.us was not found in the tenant named Contoso.")
    refused = Fetched("https://graph.microsoft.us/v1.0/applications(appId='x')", None, None, text, CREDENTIAL_ERROR)
    ctx = context_with(IdentityFacts(configured=True, refused=[refused]), exchanged=True)
    assert ctx.azure is not None
    ctx.azure = ctx.azure.model_copy(update={
        "cloud": ctx.azure.cloud.model_copy(update={"microsoft_graph": "https://graph.microsoft.us/"})})
    finding = identity_matches(ctx).findings[0]
    assert finding.code == "IDENTITY_NOT_VISIBLE"
    [line] = finding.fix_lines()
    assert line.startswith("# Entra knows no resource https://graph.microsoft.us in this tenant (AADSTS500011): "
                           "azure.cloud.microsoft_graph in harness.yaml")


def test_a_refused_graph_lookup_asks_only_for_graph_rights() -> None:
    refused = Fetched("https://graph.microsoft.com/v1.0/applications(appId='x')", 403,
                      None, "Insufficient privileges to complete the operation.", "Authorization_RequestDenied")
    outcome = identity_matches(context_with(IdentityFacts(configured=True, refused=[refused]), exchanged=False))
    assert outcome.status == WARN and outcome.findings[0].code == "IDENTITY_NOT_VISIBLE"
    assert outcome.findings[0].fix_lines() == GRANT_GRAPH_READ


def test_nothing_found_nothing_refused_and_no_exchange_is_not_found() -> None:
    outcome = identity_matches(context_with(IdentityFacts(configured=True, note="no identity"), exchanged=False))
    assert outcome.status == FAIL and outcome.findings[0].code == "IDENTITY_NOT_FOUND"
    assert outcome.findings[0].fix_lines()[:2] == [
        f"az identity list --query \"[?clientId=='{CLIENT}']\" -o table",
        f"az ad app list --filter \"appId eq '{CLIENT}'\" --query "
        "'[].{appId: appId, objectId: id, displayName: displayName}' -o table",
    ]


def test_a_missing_role_of_an_application_is_granted_to_its_service_principal() -> None:
    ctx = context_with(application())
    assert ctx.facts.pod is not None
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url="https://finance-kv.vault.azure.net/",
                                 secret="db", expect="allow")
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "outcome": "deny",
                                      "evidence": {"outcome": "deny", "status": 403, "code": "Forbidden",
                                                   "inner_code": "ForbiddenByRbac"}}]}
    outcome = access_outcome(ctx, 0, check)
    assert outcome.status == FAIL
    assert any(f"--assignee-object-id {SP_ID}" in line for line in outcome.findings[0].fix_lines())


# ---------------------------------------------------------------------------------------------- whole runs


def run(world: World, tmp_path: Path, drop_client_ids: bool = False) -> Any:
    data = world.config(tmp_path)
    if drop_client_ids:  # the client id comes from the ServiceAccount's annotation only
        for workload in data["workloads"]:
            workload.pop("client_id")
    config = parse_config(data, base_dir=tmp_path)
    facts = collect_run(world.backend(), config, Selection(workloads=config.workloads), "run-1", config.probe.image)
    return analyse(facts, config, config.workloads, "lab", Redactor(config.secrets()))


def statuses_of(results: Any, workload_id: str) -> dict[str, str]:
    return {c.id: c.status for c in results.workloads[workload_id].checks}


def codes_of(results: Any, workload_id: str) -> set[str]:
    return {f.code for c in results.workloads[workload_id].checks for f in c.findings}


def test_an_app_registration_workload_passes(tmp_path: Path) -> None:
    world = World.healthy()
    world.workloads[0].kind = "application"
    results = run(world, tmp_path)
    checks = statuses_of(results, "finance/backend-sa")
    assert results.workloads["finance/backend-sa"].verdict == "pass", checks
    assert checks["identity.matches"] == PASS and checks["federation.credential"] == PASS


def test_a_managed_identity_in_another_subscription_passes(tmp_path: Path) -> None:
    world = World.healthy()
    world.workloads[0].subscription_id = "9d8c7b6a-1bf0-4dda-aec3-444455556666"
    results = run(world, tmp_path)
    identity = results.workloads["finance/backend-sa"].check("identity.matches")
    assert results.workloads["finance/backend-sa"].verdict == "pass"
    assert identity.evidence["resolved_by"] == "resource_graph"
    assert identity.evidence["resource_id"].startswith("/subscriptions/9d8c7b6a-")


def test_without_resource_graph_the_configured_subscription_is_still_searched(tmp_path: Path) -> None:
    world = World.healthy(resource_graph_refused=True)
    results = run(world, tmp_path)
    assert results.workloads["finance/backend-sa"].verdict == "pass"
    assert results.workloads["finance/backend-sa"].check("identity.matches").evidence["resolved_by"] == (
        "subscription_list")


def test_an_identity_in_a_subscription_the_harness_cannot_read_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    hidden = "9d8c7b6a-1bf0-4dda-aec3-444455556666"
    world = World.healthy(hidden_subscriptions={hidden})
    world.workloads[0].subscription_id = hidden
    results = run(world, tmp_path)
    checks = statuses_of(results, "finance/backend-sa")
    assert checks["identity.matches"] == WARN and checks["exchange.succeeds"] == PASS
    assert checks["federation.credential"] == SKIP
    assert "IDENTITY_NOT_VISIBLE" in codes_of(results, "finance/backend-sa")
    assert results.workloads["finance/backend-sa"].verdict == "pass"


def test_an_application_graph_will_not_show_is_a_warning(tmp_path: Path) -> None:
    world = World.healthy(graph_refused=True)
    world.workloads[0].kind = "application"
    results = run(world, tmp_path)
    assert statuses_of(results, "finance/backend-sa")["identity.matches"] == WARN
    assert results.workloads["finance/backend-sa"].verdict == "pass"


def test_the_principal_id_in_the_annotation_fails_with_its_own_code(tmp_path: Path) -> None:
    world = World.healthy()
    workload: FakeWorkload = world.workloads[0]
    workload.annotation_value = workload.principal_id
    results = run(world, tmp_path, drop_client_ids=True)
    identity = results.workloads["finance/backend-sa"].check("identity.matches")
    assert identity.status == FAIL and identity.findings[0].code == "SA_ANNOTATION_IS_PRINCIPAL_ID"
    assert workload.client_id in identity.findings[0].fix_lines()[0]


def test_the_principal_id_of_the_identity_harness_yaml_names_is_named_so() -> None:
    """harness.yaml names the identity (client_id, identity_resource_id) and the annotation holds that identity's
    principal id (pasted from the portal's Object (principal) ID): SA_ANNOTATION_IS_PRINCIPAL_ID saying so, with
    harness.yaml's client id to annotate, not a mismatch with 'no identity has the client id'."""
    from harness.checks.serviceaccount import sa_client_id_annotation

    principal = "0f0e0d0c-0b0a-4909-8807-060504030201"
    ctx = context_for(client_id=REAL_CLIENT, identity_resource_id=IDENTITY_ID)
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = principal
    ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity", resource_id=IDENTITY_ID,
                                       identity={"id": IDENTITY_ID, "properties": {"principalId": principal,
                                                                                   "clientId": REAL_CLIENT}})
    finding = sa_client_id_annotation(ctx).findings[0]
    assert finding.code == "SA_ANNOTATION_IS_PRINCIPAL_ID"
    assert f"{principal} is the principal (object) id of the managed identity {IDENTITY_ID}" in finding.message
    assert finding.fix_lines()[0] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                                      f"azure.workload.identity/client-id={REAL_CLIENT} --overwrite")
    ctx.facts.identity.identity = {"id": IDENTITY_ID, "properties": {"principalId": "another"}}
    assert sa_client_id_annotation(ctx).findings[0].code == "SA_CLIENT_ID_MISMATCH"


def _identity_deleted_or_misnamed(listed: list[dict[str, str]] | None) -> WorkloadContext:
    """harness.yaml's identity_resource_id answers 404 ResourceNotFound in a group that is there, holding ``listed``."""
    ctx = identity_group_deleted(context_for(client_id=CLIENT, identity_resource_id=IDENTITY_ID))
    ctx.facts.identity.error = Fetched(IDENTITY_ID, 404, None, "not found", "ResourceNotFound")
    ctx.facts.identity.listed_identities = listed
    return ctx


def test_a_name_a_typo_off_harness_yaml_s_identity_is_named_as_the_typo_not_made_again() -> None:
    """identity_resource_id names shared-id; the group holds shared-ld, whose client id is not the annotation's
    either (had it been, the identity would have been found by its client id, as moved): a typo, so no recreate."""
    near = {"name": "shared-ld", "id": IDENTITY_ID.replace("shared-id", "shared-ld"), "clientId": REAL_CLIENT}
    (finding,) = identity_matches(_identity_deleted_or_misnamed([near])).findings
    assert finding.code == "IDENTITY_NOT_FOUND"
    assert finding.message == ("identity shared-id is not in resource group shared; identity shared-ld is there "
                               "(its name is a few characters off shared-id): a typo in harness.yaml's "
                               "identity_resource_id for finance/backend-sa, not a deletion")
    lines = finding.fix_lines()
    assert lines[0] == f"# set identity_resource_id: {near['id']} for finance/backend-sa in harness.yaml"
    assert lines[1] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                        f"azure.workload.identity/client-id={REAL_CLIENT} --overwrite")
    assert not any("az identity create" in line for line in lines)


def test_a_client_id_a_few_characters_off_a_group_identity_s_is_a_typo_not_a_deletion() -> None:
    """The annotation (and harness.yaml's client_id) differ from identity backend-id's client id in two characters
    (pasted wrong); its name is nothing like harness.yaml's: still a typo, of the client id."""
    typed = CLIENT[:-2] + ("00" if not CLIENT.endswith("00") else "11")
    near = {"name": "backend-id", "id": IDENTITY_ID.replace("shared-id", "backend-id"), "clientId": typed}
    (finding,) = identity_matches(_identity_deleted_or_misnamed([near])).findings
    assert f"(its client id {typed} is a few characters off the annotated {CLIENT})" in finding.message
    assert finding.fix_lines()[0] == f"# set identity_resource_id: {near['id']} for finance/backend-sa in harness.yaml"
    # an unrelated identity in the group, or none at all: deleted or a typo, both in one line, and the recreate
    for listed, said in (([{"name": "frontend", "id": "x", "clientId": REAL_CLIENT}],
                          "none of the group's identities is named or numbered like it"),
                         ([], "the group holds no identity")):
        (finding,) = identity_matches(_identity_deleted_or_misnamed(listed)).findings
        assert finding.message == (
            "identity shared-id is not in resource group shared (the group is there): deleted (az identity delete), "
            f"or a typo in harness.yaml's identity_resource_id for finance/backend-sa ({said})")
        assert finding.fix_lines()[1].startswith("CLIENT_ID=$(az identity create --name shared-id ")


def test_an_identity_missing_where_the_exchange_worked_is_not_made_again() -> None:
    """Entra exchanged the token as the annotated client id: the identity exists (somewhere the harness cannot
    read); a recreate would make a second one. The look-up fix stays."""
    ctx = _identity_deleted_or_misnamed([])
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "pass", "evidence": {}, "error": {}}]}
    (finding,) = identity_matches(ctx).findings
    assert not any("az identity create" in line and "CLIENT_ID=" in line for line in finding.fix_lines())


def test_an_annotated_client_id_nothing_has_tells_a_typo_from_a_deleted_or_never_made_identity() -> None:
    """No identity_resource_id: the annotation names a client id no identity or application has. One of the
    subscription's identities with a client id two characters off it: the annotation's typo, fixed to it; none:
    deleted or never one, said in one line."""
    typed = REAL_CLIENT[:-2] + "00"
    listed = [{"name": "backend-id", "id": IDENTITY_ID, "clientId": REAL_CLIENT}]
    ctx = context_with(IdentityFacts(configured=True, listed_identities=listed,
                                     note=f"no managed identity or application with client id {typed} is visible "
                                          "to the harness"))
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = typed
    (finding,) = identity_matches(ctx).findings
    assert finding.code == "IDENTITY_NOT_FOUND"
    assert finding.message == (f"no identity has client id {typed}; identity backend-id has {REAL_CLIENT}, a few "
                               "characters off it: a typo in finance/backend-sa's client id, not a deleted identity")
    assert finding.fix_lines()[0] == ("kubectl annotate serviceaccount -n finance backend-sa "
                                      f"azure.workload.identity/client-id={REAL_CLIENT} --overwrite")
    ctx.facts.identity.listed_identities = [{"name": "other", "id": "x", "clientId": SP_ID}]
    (finding,) = identity_matches(ctx).findings
    assert finding.message.endswith(": a deleted identity, a client id that never was one, or an application of "
                                    "another tenant not installed in this one (no identity of subscription "
                                    "0b1f6471-1bf0-4dda-aec3-111122223333 has a client id a few characters off it)")
    assert finding.fix_lines()[0].startswith("az identity list --query")


def test_a_deleted_identity_harness_yaml_names_is_the_one_error_and_the_exchange_is_skipped(tmp_path: Path) -> None:
    """az identity delete of the identity harness.yaml names by identity_resource_id: identity.matches says it is
    deleted (or a typo) with the recreate; the probe's exchange, refused AADSTS700016 because that identity is
    gone, is the same break seen later in the chain: skipped because identity.matches failed, not a second
    IDENTITY_NOT_FOUND, and the access checks after it skipped alike. One error finding, the run FAIL."""
    world = World.healthy()
    world.workloads[0].deleted = world.workloads[0].config_resource_id = True
    results = run(world, tmp_path)
    workload = results.workloads["finance/backend-sa"]
    checks = statuses_of(results, "finance/backend-sa")
    assert workload.verdict == "fail"
    assert checks["identity.matches"] == FAIL
    exchange = workload.check("exchange.succeeds")
    assert exchange.status == SKIP and exchange.findings == []
    assert exchange.message.startswith("skipped because identity.matches failed: ")
    assert exchange.blocked_by == "identity.matches"
    assert checks["exchange.identity"] == SKIP
    for check in workload.checks:
        if check.id.startswith(("exchange.identity", "access.")):
            assert (check.status, check.blocked_by) == (SKIP, "identity.matches"), check
            assert check.message == "skipped because identity.matches failed", check
    errors = [(c.id, f.code) for c in workload.checks for f in c.findings if f.severity == "error"]
    assert errors == [("identity.matches", "IDENTITY_NOT_FOUND")]
    [finding] = workload.check("identity.matches").findings
    assert "identity myWorkloadId is not in resource group myRg (the group is there): deleted" in finding.message
    assert any(line.startswith("CLIENT_ID=$(az identity create --name myWorkloadId ") for line in finding.fix_lines())
