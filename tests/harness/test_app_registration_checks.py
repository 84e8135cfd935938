"""An app registration's service principal disabled, a client-id annotation that is no GUID, and an audience Entra
refused on credentials the harness cannot read, as the identity and exchange checks judge them (pure functions of
facts; the app registration by hand in the lab is tests/harness/test_app_registration_lab.py)."""

from __future__ import annotations

import hashlib
import json
import shlex

import pytest
from fakeworld import AUDIENCE, ISSUER
from test_checks import CLIENT
from test_identity_checks import SP_ID, SUBJECT, application, context_with

from harness.checks.exchange import exchange_succeeds
from harness.checks.federation import federated_credential, identity_matches
from harness.checks.model import FAIL, PASS, SKIP
from harness.checks.serviceaccount import sa_client_id_annotation
from harness.collect.graph import collect_application
from harness.facts import Fetched, IdentityFacts


def test_a_disabled_service_principal_is_the_first_broken_link_and_is_enabled() -> None:
    """az ad sp update --id APPID --set accountEnabled=false: Graph shows it, Entra refuses every token with
    AADSTS7000112 (unauthorized_client; Worklytics/psoxy#74 fixed it with az ad sp update --set
    accountEnabled=true). identity.matches names it before the exchange does, and prints the enable alone."""
    facts = application()
    assert facts.service_principal is not None
    facts.service_principal["accountEnabled"] = True
    assert identity_matches(context_with(facts)).status == PASS
    facts.service_principal["accountEnabled"] = False
    outcome = identity_matches(context_with(facts))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert (finding.code, finding.layer) == ("APPLICATION_DISABLED", "identity")
    assert f"service principal {SP_ID} of application backend-app (appId {CLIENT}) is disabled" in finding.message
    assert "AADSTS7000112" in finding.message
    assert finding.fix_lines() == [f"az ad sp update --id {CLIENT} --set accountEnabled=true"]


@pytest.mark.parametrize("annotated", [f"{CLIENT} ", "backend-app"])
def test_a_client_id_that_is_no_guid_is_left_to_the_annotation_check(annotated: str) -> None:
    """kubectl annotate ... client-id='APPID ' (a space pasted after it) or the app's display name:
    sa.client_id_annotation names the value and its fix (SA_CLIENT_ID_MALFORMED). identity.matches printed
    IDENTITY_NOT_FOUND with look-ups of '<client-id>' placeholders, and the exchange's AADSTS700016 would add
    another tenant's annotation: both now wait on the annotation's fix."""
    ctx = context_with(IdentityFacts(configured=True, note="the client id is not a GUID"))
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = annotated
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail",
                                      "evidence": {"client_id": annotated},
                                      "error": {"kind": "entra_error", "aadsts": "AADSTS700016",
                                                "message": f"AADSTS700016: Application with identifier "
                                                           f"'{annotated}' was not found in the directory"}}]}
    assert sa_client_id_annotation(ctx).findings[0].code == "SA_CLIENT_ID_MALFORMED"
    identity = identity_matches(ctx)
    assert (identity.status, identity.blocked_by, identity.findings) == (SKIP, "sa.client_id_annotation", [])
    assert f"{annotated!r} is not a GUID" in identity.message
    exchange = exchange_succeeds(ctx)
    assert (exchange.status, exchange.blocked_by, exchange.findings) == (SKIP, "sa.client_id_annotation", [])
    assert "AADSTS700016" in exchange.message


def test_an_unknown_guid_is_still_looked_for_and_its_tenant_questioned() -> None:
    """The two skips above are for a value that is no GUID: a GUID Entra does not know keeps its finding. By hand
    in the lab: an app registration deleted and purged from deleted items, its appId still annotated: every look-up
    answered, nothing found, and the terminal showed the look-ups alone, without the tenant question."""
    ctx = context_with(IdentityFacts(configured=True))
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"client_id": CLIENT},
                                      "error": {"kind": "entra_error", "aadsts": "AADSTS700016",
                                                "message": "AADSTS700016: Application with identifier "
                                                           f"'{CLIENT}' was not found in the directory"}}]}
    (finding,) = identity_matches(ctx).findings
    assert finding.code == "IDENTITY_NOT_FOUND"
    # the exchange's AADSTS700016 is this break seen again: skipped because identity.matches failed, so the other
    # tenant's question is asked here (an app registered there: AADSTS700016 'not found in the directory')
    lines = finding.fix_lines()
    # a multi-tenant application of another tenant not installed here (Entra's text: 'has not been installed by the
    # administrator of the tenant'): installed, its service principal made here; else the other tenant named
    assert lines[-4:-1] == ["# if it is a multi-tenant application registered in another tenant, an admin of this "
                            f"tenant installs it here: az ad sp create --id {CLIENT} (its service principal; its "
                            "federated credentials stay on the application in its home tenant)",
                            "# if the identity lives in another tenant and the workload reads that tenant's resources, "
                            "the ServiceAccount must name that tenant:",
                            "kubectl annotate serviceaccount -n finance backend-sa "
                            "'azure.workload.identity/tenant-id=<tenant-id>' --overwrite"], lines
    exchange = exchange_succeeds(ctx)
    assert (exchange.status, exchange.blocked_by, exchange.findings) == (SKIP, "identity.matches", [])
    assert exchange.message.startswith(f"skipped because identity.matches failed: the pod exchanged as {CLIENT} and "
                                       "Entra knows no application or identity by it (AADSTS700016): ")


def test_an_audience_refused_on_credentials_the_harness_cannot_read_is_updated_where_it_is() -> None:
    """The harness without Application.Read.All (az rest DELETE of its appRoleAssignment), the app's credential for
    the ServiceAccount made with audience 'api://AzureADTokenExchange ' (a trailing space): Entra says AADSTS700212.
    The fix was a create under the default name, which Graph refuses ('FederatedIdentityCredential with name
    web-web-sa already exists.', or 'The combination of issuer and subject must be unique'). Now the credential is
    found by the token's issuer and subject and its audience set; a comment says what to do when there is none."""
    graph = Fetched(f"https://graph.microsoft.com/v1.0/applications(appId='{CLIENT}')", 403, None, "denied",
                    "Authorization_RequestDenied")
    ctx = context_with(IdentityFacts(configured=True, refused=[graph]))
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"client_id": CLIENT},
                                      "error": {"kind": "entra_error", "http_status": 401, "error": "invalid_client",
                                                "aadsts": "AADSTS700212",
                                                "message": "AADSTS700212: No matching federated identity record "
                                                           f"found for presented assertion audience '{AUDIENCE}'."}}]}
    (finding,) = exchange_succeeds(ctx).findings
    assert finding.code == "FIC_AUDIENCE_MISMATCH"
    lines = finding.fix_lines()
    assert lines[0] == (
        f"CREDENTIAL=$(az ad app federated-credential list --id {CLIENT} --query "
        f"\"[?issuer=='{ISSUER}' && subject=='{SUBJECT}'].name | [0]\" -o tsv)")
    parameters = json.dumps({"issuer": ISSUER, "subject": SUBJECT, "audiences": [AUDIENCE]})
    assert shlex.split(lines[1]) == ["az", "ad", "app", "federated-credential", "update", "--id", CLIENT,
                                     "--federated-credential-id", "$CREDENTIAL", "--parameters", parameters]
    assert '"$CREDENTIAL"' in lines[1]
    assert lines[2].startswith("# CREDENTIAL empty (the update refused)") and len(lines) == 3
    # credentials the harness reads keep their in-place update by name, with no look-up
    facts = application(fics=[{"id": "f1", "name": "kube", "issuer": ISSUER, "subject": SUBJECT,
                               "audiences": [AUDIENCE + " "]}])
    read = context_with(facts)
    assert read.facts.pod is not None
    read.facts.pod.probe = ctx.facts.pod.probe
    assert [line.split(" --parameters")[0] for line in exchange_succeeds(read).findings[0].fix_lines()] == [
        f"az ad app federated-credential update --id {CLIENT} --federated-credential-id kube"]


def test_a_credential_made_for_credentials_the_harness_cannot_read_takes_a_name_none_holds() -> None:
    """The harness without Application.Read.All, the app's credential named web-web-sa (the ServiceAccount's own
    name) with its subject mistyped (system:serviceaccount:web:websa): Entra says AADSTS700213, and the printed
    create under web-web-sa was refused ('FederatedIdentityCredential with name web-web-sa already exists.'). The
    name now carries a mark of the issuer; a credential made where the app has none (AADSTS70025) keeps the
    usual name."""
    graph = Fetched(f"https://graph.microsoft.com/v1.0/applications(appId='{CLIENT}')", 403, None, "denied",
                    "Authorization_RequestDenied")
    mark = hashlib.sha256(ISSUER.encode()).hexdigest()[:6]

    def created_name(aadsts: str) -> str:
        ctx = context_with(IdentityFacts(configured=True, refused=[graph]))
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"client_id": CLIENT},
                                          "error": {"kind": "entra_error", "aadsts": aadsts, "message": aadsts}}]}
        line = exchange_succeeds(ctx).findings[0].fix_lines()[0].split("   #")[0]
        words = shlex.split(line)
        assert words[:6] == ["az", "ad", "app", "federated-credential", "create", "--id"], line
        return str(json.loads(words[words.index("--parameters") + 1])["name"])

    assert created_name("AADSTS700213") == f"finance-backend-sa-{mark}"
    assert created_name("AADSTS700211") == f"finance-backend-sa-{mark}"
    assert created_name("AADSTS70025") == "finance-backend-sa"


HOME_TENANT = "4d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a"


def test_a_multi_tenant_application_of_another_tenant_installed_here_is_named_with_its_home_tenant() -> None:
    """The annotation names a multi-tenant app registered in another tenant and installed in this one (its service
    principal here, appOwnerOrganizationId the home tenant): Graph's applications(appId=...) answers 404 in this
    tenant, so the harness said IDENTITY_NOT_VISIBLE with 'grant the harness Reader' and Graph read, which no grant
    in this tenant makes true. It now names the home tenant and where its federated credentials are."""
    from harness.checks.federation import fic_fix
    from harness.checks.model import WARN
    from harness.commands import render

    principal = {"id": SP_ID, "displayName": "orders-api", "appOwnerOrganizationId": HOME_TENANT}
    ctx = context_with(IdentityFacts(configured=True, foreign_service_principal=principal), exchanged=True)
    outcome = identity_matches(ctx)
    assert outcome.status == WARN
    (finding,) = outcome.findings
    assert finding.code == "IDENTITY_NOT_VISIBLE"
    assert finding.message == (
        f"client id {CLIENT} is application orders-api of another tenant, {HOME_TENANT} (a multi-tenant app), "
        f"installed in this one as service principal {SP_ID}: its federated credentials are on the application in "
        f"tenant {HOME_TENANT}, which the harness does not read from this tenant; Entra exchanged the workload's token")
    assert finding.fix_lines() == [
        f"# its federated credentials, as someone who may manage the application in tenant {HOME_TENANT}:",
        f"az login --tenant {HOME_TENANT}",
        f"az ad app federated-credential list --id {CLIENT} --query '[].{{name: name, issuer: issuer, subject: "
        "subject}' -o table",
    ]
    assert not any("role assignment create" in line or "Reader" in line for line in finding.fix_lines())
    # the exchange's federated-credential fix is made in the home tenant
    fix_line = render(fic_fix(ctx, "create", "finance-backend-sa", ISSUER))
    assert fix_line.startswith(f"az ad app federated-credential create --id {CLIENT} --parameters ")
    assert fix_line.endswith(f"# in the application's home tenant: az login --tenant {HOME_TENANT} first")


def test_the_service_principal_of_another_tenant_s_application_is_collected() -> None:
    """Graph in this tenant: no application with the appId, its service principal with the home tenant as owner."""
    from test_collect import AzureApis, azure

    from harness.collect.arm import collect_identity

    app_key, sp_key = f"/v1.0/applications(appId='{CLIENT}')", f"/v1.0/servicePrincipals(appId='{CLIENT}')"
    body = {"id": SP_ID, "appId": CLIENT, "displayName": "orders-api", "appOwnerOrganizationId": HOME_TENANT,
            "servicePrincipalType": "Application"}
    graph = {app_key: Fetched(app_key, 404, None, "not found", "Request_ResourceNotFound"),
             sp_key: Fetched(sp_key, 200, body)}
    apis = AzureApis(arg=Fetched("arg", 200, {"data": []}), graph=graph)
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert facts.foreign_service_principal == {"id": SP_ID, "displayName": "orders-api",
                                               "appOwnerOrganizationId": HOME_TENANT}
    assert facts.kind is None and "an application of tenant" in str(facts.note)
    graph[sp_key] = Fetched(sp_key, 200, {**body, "appOwnerOrganizationId": azure().tenant_id})  # this tenant's
    assert collect_identity(apis.arm, azure(), None, CLIENT, apis.graph).foreign_service_principal is None


def namesake(app_id: str, subject: str) -> dict[str, object]:
    """Another live application named backend-app, with one credential for ``subject`` on this cluster."""
    return {"application": {"id": f"o-{app_id[:8]}", "appId": app_id, "displayName": "backend-app"},
            "federated_credentials": [{"name": "kube", "issuer": ISSUER, "subject": subject, "audiences": [AUDIENCE]}]}


def test_the_annotation_naming_the_one_of_two_same_named_apps_without_the_credential_is_moved() -> None:
    """Two app registrations named backend-app (the second made with az rest POST .../applications; az ad app
    create under a taken name patches the first instead), and the ServiceAccount annotated with the one that has
    no credential (az ad app list --display-name backend-app --query [0].appId). FIC_MISSING printed a create on
    that app: its exchange then works, as an app with none of the roles; the inventory's
    SA_ANNOTATION_WRONG_IDENTITY moved the annotation. The workload's finding now names the other app and moves
    the annotation too; with harness.yaml naming the client id, the app it names gets the credential as before."""
    other = "5f0e7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b"
    facts = application(fics=[])
    facts.namesakes = [namesake(other, SUBJECT)]
    outcome = federated_credential(context_with(facts))
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "FIC_MISSING" and "AADSTS70025" in outcome.message
    assert f"another application named backend-app, appId {other}, has one" in finding.message
    lines = finding.fix_lines()
    assert lines[0] == f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={other} --overwrite"
    assert not any(line.startswith("az ") for line in lines)  # the create on the wrong app is a comment's words only
    # a namesake trusting another ServiceAccount, or a credential of this app for a typo of this one: as before
    facts.namesakes = [namesake(other, "system:serviceaccount:orders:orders-sa")]
    assert federated_credential(context_with(facts)).findings[0].fix_lines()[0].startswith("az ad app federated-credential create")
    facts.namesakes = [namesake(other, SUBJECT)]
    facts.federated_credentials = [{"name": "kube", "issuer": ISSUER, "subject": SUBJECT.replace("finance", "finanse"),
                                    "audiences": [AUDIENCE]}]
    assert "another application" not in federated_credential(context_with(facts)).findings[0].message
    facts.federated_credentials = []
    ctx = context_with(facts)
    ctx.workload = ctx.workload.model_copy(update={"client_id": CLIENT})
    assert federated_credential(ctx).findings[0].fix_lines()[0].startswith(f"az ad app federated-credential create --id {CLIENT}")


def test_the_namesakes_of_a_live_app_are_read_only_when_it_has_no_credential_for_the_subject() -> None:
    """collect_application: the applications of the same display name (one Graph listing, then each one's
    credentials) only when none of the app's credentials names the ServiceAccount's subject."""
    app = {"id": "o-1", "appId": CLIENT, "displayName": "backend-app"}
    twin = {"id": "o-2", "appId": "5f0e7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b", "displayName": "backend-app"}

    def graph_with(credentials: list[dict[str, object]]) -> tuple[list[str], object]:
        asked: list[str] = []

        def graph(path: str) -> Fetched:
            asked.append(path)
            if path.endswith(f"applications(appId='{CLIENT}')"):
                return Fetched(path, 200, app)
            if path.endswith(f"applications(appId='{CLIENT}')/federatedIdentityCredentials"):
                return Fetched(path, 200, {"value": credentials})
            if "applications?$filter=" in path:
                return Fetched(path, 200, {"value": [app, twin]})
            if path.endswith("applications/o-2/federatedIdentityCredentials"):
                return Fetched(path, 200, {"value": [{"name": "kube", "subject": SUBJECT}]})
            return Fetched(path, 404, None, "not found")
        return asked, graph

    asked, graph = graph_with([])
    facts = IdentityFacts(configured=True)
    assert collect_application(graph, CLIENT, facts, SUBJECT)  # type: ignore[arg-type]
    assert [n["application"]["appId"] for n in facts.namesakes] == [twin["appId"]]
    assert any("displayName%20eq%20%27backend-app%27" in path for path in asked)
    asked, graph = graph_with([{"name": "kube", "subject": SUBJECT}])
    facts = IdentityFacts(configured=True)
    assert collect_application(graph, CLIENT, facts, SUBJECT)  # type: ignore[arg-type]
    assert facts.namesakes == [] and not any("displayName" in path for path in asked)


def test_an_issuer_with_the_line_end_of_az_tsv_is_this_issuers_twin_updated_in_place() -> None:
    """ISSUER=$(az aks show ... --query oidcIssuerProfile.issuerUrl -o tsv) in Git Bash or WSL keeps az's CR
    (Azure/azure-cli#24140, #33385); the credential made with it (here PATCHed through az rest) names the issuer
    and a CR. federation.credential called it 'another cluster's issuer' and printed a create beside it, 'delete
    it only if no cluster uses it'. It is this issuer's twin: updated in place, and said so."""
    from harness.issuers import TWIN, issuer_relation, spelling_difference
    assert issuer_relation(ISSUER + "\r", ISSUER) == TWIN and issuer_relation(f" {ISSUER}", ISSUER) == TWIN
    assert "whitespace around it" in spelling_difference(ISSUER + "\r", ISSUER)
    facts = application(fics=[{"name": "kube", "issuer": ISSUER + "\r", "subject": SUBJECT, "audiences": [AUDIENCE]}])
    outcome = federated_credential(context_with(facts))
    (finding,) = outcome.findings
    assert finding.code == "FIC_ISSUER_MISMATCH" and "whitespace around it" in outcome.message
    assert "another cluster" not in outcome.message
    (line,) = finding.fix_lines()
    assert line.startswith(f"az ad app federated-credential update --id {CLIENT} --federated-credential-id kube ")
    assert json.loads(shlex.split(line)[-1])["issuer"] == ISSUER
