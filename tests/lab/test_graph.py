"""The lab's Microsoft Graph, driven as clients drive the real one: plain ``requests`` with tokens that
azure-identity's ClientSecretCredential (and MSAL, for the scope az asks for) got from the lab's Entra.

The scenario's admin app holds Graph Application.ReadWrite.All and Directory.Read.All; the harness app only
Application.Read.All. Every test makes the applications it needs, so tests are independent of each other.
Then an app registration federated through Graph signs in with WorkloadIdentityCredential, unchanged.
"""

from __future__ import annotations

import json
import shlex
import uuid
from functools import cache
from typing import Any

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, WorkloadIdentityCredential
from test_misconfig_through_arm import make_sa_and_token

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
NOT_FOUND = "Resource '{}' does not exist or one of its queried reference-property objects are not present."


@pytest.fixture(autouse=True)
def _lab_ca(lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.state_dir / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(lab.state_dir / "ca.pem"))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
                 "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


@cache
def _credential(lab, who: str) -> ClientSecretCredential:
    app = lab.credentials[who]
    return ClientSecretCredential(lab.tenant_id, app["client_id"], app["client_secret"],
                                  authority=lab.authority_host, disable_instance_discovery=True)


def token(lab, who: str = "admin", scope: str = GRAPH_SCOPE) -> str:
    return _credential(lab, who).get_token(scope).token


def graph(lab, method: str, path: str, who: str = "admin", body: Any = None, bearer: str | None = None,
          **params: str) -> requests.Response:
    headers = {"client-request-id": str(uuid.uuid4())}
    if who:
        headers["Authorization"] = f"Bearer {bearer or token(lab, who)}"
    return requests.request(method, f"{lab.endpoints['graph']}/v1.0{path}", json=body, params=params or None,
                            headers=headers, timeout=30, verify=str(lab.state_dir / "ca.pem"))


def assert_graph_error(response: requests.Response, status: int, code: str, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if message is not None:
        assert error["message"] == message
    inner = error["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"}
    assert inner["client-request-id"] == response.request.headers["client-request-id"]
    assert inner["request-id"] == response.headers["request-id"]
    return error


def new_app(lab, service_principal: bool = True) -> dict[str, Any]:
    created = graph(lab, "POST", "/applications", body={"displayName": f"graph-test-{uuid.uuid4().hex[:8]}"})
    assert created.status_code == 201, created.text
    app = created.json()
    if service_principal:
        sp = graph(lab, "POST", "/servicePrincipals", body={"appId": app["appId"]})
        assert sp.status_code == 201, sp.text
    return app


def fic_body(name: str, issuer: str, subject: str, audiences: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "issuer": issuer, "subject": subject, "audiences": audiences or [EXCHANGE_AUDIENCE]}


# ---------------------------------------------------------------------------------------------- applications


def test_an_application_is_created_and_found_by_id_by_app_id_and_by_filter(lab) -> None:
    app = new_app(lab, service_principal=False)
    assert app["@odata.context"] == f"{lab.endpoints['graph']}/v1.0/$metadata#applications/$entity"
    assert app["id"] != app["appId"] and app["signInAudience"] == "AzureADMyOrg"
    by_id = graph(lab, "GET", f"/applications/{app['id']}").json()
    by_app_id = graph(lab, "GET", f"/applications(appId='{app['appId']}')").json()
    listed = graph(lab, "GET", "/applications", **{"$filter": f"appId eq '{app['appId']}'"}).json()
    assert by_id["appId"] == by_app_id["appId"] == app["appId"]
    assert [a["id"] for a in listed["value"]] == [app["id"]]
    assert listed["@odata.context"] == f"{lab.endpoints['graph']}/v1.0/$metadata#applications"


def test_add_password_returns_a_secret_once_that_authenticates_the_app(lab) -> None:
    """application: addPassword, as az ad sp create-for-rbac and az ad app credential reset call it: 200 with a
    passwordCredential whose secretText is the secret (shown once: the application lists its hint only), and the
    app's service principal gets tokens with it."""
    app = new_app(lab)
    made = graph(lab, "POST", f"/applications/{app['id']}/addPassword",
                 body={"passwordCredential": {"displayName": "rbac", "endDateTime": "2027-12-05T00:00:00Z"}})
    assert made.status_code == 200, made.text
    secret = made.json()
    assert secret["displayName"] == "rbac" and secret["endDateTime"] == "2027-12-05T00:00:00Z"
    assert secret["hint"] == secret["secretText"][:3] and uuid.UUID(secret["keyId"])
    listed = graph(lab, "GET", f"/applications/{app['id']}").json()["passwordCredentials"]
    assert [(c["keyId"], c["secretText"]) for c in listed] == [(secret["keyId"], None)]
    credential = ClientSecretCredential(lab.tenant_id, app["appId"], secret["secretText"],
                                        authority=lab.authority_host, disable_instance_discovery=True)
    assert credential.get_token(GRAPH_SCOPE).token
    assert_graph_error(graph(lab, "POST", f"/applications/{app['id']}/addPassword", who="harness", body={}), 403,
                       "Authorization_RequestDenied")


def test_the_app_id_is_not_the_object_id(lab) -> None:
    """The common mistake: /applications/{appId}. Graph answers 404 with its own error shape."""
    app = new_app(lab, service_principal=False)
    response = graph(lab, "GET", f"/applications/{app['appId']}")
    assert_graph_error(response, 404, "Request_ResourceNotFound", NOT_FOUND.format(app["appId"]))
    assert response.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")


def test_deleting_an_application_deletes_its_service_principal(lab) -> None:
    app = new_app(lab)
    assert graph(lab, "DELETE", f"/applications/{app['id']}").status_code == 204
    assert_graph_error(graph(lab, "GET", f"/applications/{app['id']}"), 404, "Request_ResourceNotFound")
    assert_graph_error(graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')"), 404,
                       "Request_ResourceNotFound")


def deleted(lab, kind: str, app_id: str, who: str = "admin") -> list[dict[str, Any]]:
    listed = graph(lab, "GET", f"/directory/deletedItems/microsoft.graph.{kind}", who=who,
                   **{"$filter": f"appId eq '{app_id}'"})
    assert listed.status_code == 200, listed.text
    return listed.json()["value"]


def test_a_deleted_application_and_its_service_principal_are_deleted_items_restored_with_their_ids(lab) -> None:
    """Graph's deleted items: a deleted application and the service principal deleted with it stay restorable
    (30 days) under their object ids, each restored on its own (restoring the application does not restore its
    service principal, as Graph's "Restore deleted item" says), the service principal only once its application
    is back; a restored application keeps its appId and federated credentials. Reading them takes
    Application.Read.All (the harness's), restoring Application.ReadWrite.All."""
    app = new_app(lab)
    principal = graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')").json()
    fic = {"name": "kept", "issuer": "https://issuer.example/", "subject": "system:serviceaccount:a:b",
           "audiences": [EXCHANGE_AUDIENCE]}
    assert graph(lab, "POST", f"/applications/{app['id']}/federatedIdentityCredentials", body=fic).status_code == 201
    assert graph(lab, "DELETE", f"/applications/{app['id']}").status_code == 204
    [gone_app] = deleted(lab, "application", app["appId"], who="harness")
    [gone_sp] = deleted(lab, "servicePrincipal", app["appId"], who="harness")
    assert (gone_app["id"], gone_sp["id"]) == (app["id"], principal["id"])
    assert gone_app["deletedDateTime"] and gone_app["@odata.type"] == "#microsoft.graph.application"
    assert graph(lab, "GET", f"/directory/deletedItems/{principal['id']}").json()["appId"] == app["appId"]
    assert_graph_error(graph(lab, "POST", f"/directory/deletedItems/{app['id']}/restore", who="harness"), 403,
                       "Authorization_RequestDenied")
    assert_graph_error(graph(lab, "POST", f"/directory/deletedItems/{principal['id']}/restore"), 400,
                       "Request_BadRequest")  # its application first
    restored = graph(lab, "POST", f"/directory/deletedItems/{app['id']}/restore")
    assert restored.status_code == 200 and restored.json()["appId"] == app["appId"]
    assert [f["name"] for f in graph(lab, "GET", f"/applications/{app['id']}/federatedIdentityCredentials")
            .json()["value"]] == ["kept"]
    assert_graph_error(graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')"), 404,
                       "Request_ResourceNotFound")
    assert graph(lab, "POST", f"/directory/deletedItems/{principal['id']}/restore").status_code == 200
    assert graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')").json()["id"] == principal["id"]
    assert deleted(lab, "application", app["appId"]) == deleted(lab, "servicePrincipal", app["appId"]) == []
    assert_graph_error(graph(lab, "GET", "/directory/deletedItems"), 400, "Request_BadRequest")


def test_a_deleted_service_principal_made_again_cannot_be_restored_over_the_new_one(lab) -> None:
    app = new_app(lab)
    old = graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')").json()["id"]
    assert graph(lab, "DELETE", f"/servicePrincipals/{old}").status_code == 204
    assert [i["id"] for i in deleted(lab, "servicePrincipal", app["appId"])] == [old]
    assert graph(lab, "POST", "/servicePrincipals", body={"appId": app["appId"]}).status_code == 201
    assert_graph_error(graph(lab, "POST", f"/directory/deletedItems/{old}/restore"), 400, "Request_BadRequest")
    assert graph(lab, "DELETE", f"/directory/deletedItems/{old}").status_code == 204
    assert_graph_error(graph(lab, "GET", f"/directory/deletedItems/{old}"), 404, "Request_ResourceNotFound")


def test_app_roles_belong_to_the_service_principal_not_to_one_made_again(lab) -> None:
    """An appRoleAssignment names the service principal's object id: a new service principal made for the app
    (az ad sp delete, then az ad sp create) holds none of the deleted one's Graph permissions; restored instead,
    the deleted one has them back. The lab kept them on the application, so a new one held them too."""
    app = new_app(lab)
    graph_sp = graph(lab, "GET", "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')").json()["id"]
    old = graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')").json()["id"]
    body = {"principalId": old, "resourceId": graph_sp, "appRoleId": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"}
    assert graph(lab, "POST", f"/servicePrincipals/{old}/appRoleAssignments", body=body).status_code == 201
    assert graph(lab, "DELETE", f"/servicePrincipals/{old}").status_code == 204
    new = graph(lab, "POST", "/servicePrincipals", body={"appId": app["appId"]}).json()["id"]
    assert graph(lab, "GET", f"/servicePrincipals/{new}/appRoleAssignments").json()["value"] == []
    assert graph(lab, "DELETE", f"/servicePrincipals/{new}").status_code == 204
    assert graph(lab, "POST", f"/directory/deletedItems/{old}/restore").status_code == 200
    assert [a["appRoleId"] for a in graph(lab, "GET", f"/servicePrincipals/{old}/appRoleAssignments")
            .json()["value"]] == [body["appRoleId"]]


def test_graph_app_roles_are_app_role_assignments_that_make_the_next_tokens_roles(lab) -> None:
    """Admin consent to an application permission is an app role assignment on Microsoft Graph's service principal
    (appId 00000003-..., its appRoles in the tenant): granted by POST .../appRoleAssignments (the lab's admin holds
    AppRoleAssignment.ReadWrite.All, Graph's least privileged for it; Application.ReadWrite.All alone does not do),
    listed, revoked by DELETE, and the app's next Graph token carries exactly what is granted. ``appId in (...)``
    finds both service principals in one list, as a printed fix asks."""
    app = new_app(lab)
    graph_app_id = "00000003-0000-0000-c000-000000000000"
    listed = graph(lab, "GET", "/servicePrincipals", **{"$filter": f"appId in ('{app['appId']}', '{graph_app_id}')"})
    by_app = {p["appId"]: p for p in listed.json()["value"]}
    assert set(by_app) == {app["appId"], graph_app_id}
    resource = by_app[graph_app_id]
    read_all = next(r["id"] for r in resource["appRoles"] if r["value"] == "Application.Read.All")
    assert read_all == "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"
    principal = by_app[app["appId"]]["id"]
    body = {"principalId": principal, "resourceId": resource["id"], "appRoleId": read_all}
    path = f"/servicePrincipals(appId='{app['appId']}')/appRoleAssignments"
    made = graph(lab, "POST", path, body=body)
    assert made.status_code == 201, made.text
    assert made.json()["resourceDisplayName"] == "Microsoft Graph" and made.json()["principalId"] == principal
    assert_graph_error(graph(lab, "POST", path, body=body), 400, "Request_BadRequest")  # granted already
    assert_graph_error(graph(lab, "POST", path, body={**body, "appRoleId": str(uuid.uuid4())}), 400,
                       "Request_BadRequest")
    assert [a["appRoleId"] for a in graph(lab, "GET", f"/servicePrincipals/{principal}/appRoleAssignments")
            .json()["value"]] == [read_all]
    assert next(a for a in lab.azure.apps.values() if a.client_id == app["appId"]).graph_permissions == {
        "Application.Read.All"}
    assert_graph_error(graph(lab, "DELETE", f"/servicePrincipals/{principal}/appRoleAssignments/x", who="harness"),
                       403, "Authorization_RequestDenied")
    gone = graph(lab, "DELETE", f"/servicePrincipals/{principal}/appRoleAssignments/{made.json()['id']}")
    assert gone.status_code == 204
    assert graph(lab, "GET", f"/servicePrincipals/{principal}/appRoleAssignments").json()["value"] == []


# ---------------------------------------------------------------------------------------------- federated credentials


def test_federated_credentials_by_object_id_and_by_app_id(lab) -> None:
    app = new_app(lab)
    created = graph(lab, "POST", f"/applications/{app['id']}/federatedIdentityCredentials",
                    body=fic_body("kube-fic", lab.issuer_url, "system:serviceaccount:ns:sa"))
    assert created.status_code == 201, created.text
    fic = created.json()
    assert fic["@odata.context"].endswith(f"$metadata#applications('{app['id']}')/federatedIdentityCredentials/$entity")
    assert {k: fic[k] for k in ("name", "issuer", "subject", "audiences")} == {
        "name": "kube-fic", "issuer": lab.issuer_url, "subject": "system:serviceaccount:ns:sa",
        "audiences": [EXCHANGE_AUDIENCE]}
    listed = graph(lab, "GET", f"/applications(appId='{app['appId']}')/federatedIdentityCredentials").json()
    assert [f["id"] for f in listed["value"]] == [fic["id"]]
    by_name = graph(lab, "GET", f"/applications/{app['id']}/federatedIdentityCredentials/kube-fic").json()
    by_id = graph(lab, "GET", f"/applications/{app['id']}/federatedIdentityCredentials/{fic['id']}").json()
    assert by_name["id"] == by_id["id"] == fic["id"]

    patched = graph(lab, "PATCH", f"/applications/{app['id']}/federatedIdentityCredentials/kube-fic",
                    body={"subject": "system:serviceaccount:ns:other"})
    assert patched.status_code == 204
    assert graph(lab, "GET", f"/applications/{app['id']}/federatedIdentityCredentials/kube-fic").json()[
        "subject"] == "system:serviceaccount:ns:other"
    assert graph(lab, "DELETE", f"/applications/{app['id']}/federatedIdentityCredentials/{fic['id']}").status_code == 204
    assert_graph_error(graph(lab, "GET", f"/applications/{app['id']}/federatedIdentityCredentials/kube-fic"),
                       404, "Request_ResourceNotFound", NOT_FOUND.format("kube-fic"))


def test_applications_with_their_credentials_expanded_and_only_the_selected_properties(lab) -> None:
    """What an inventory asks: every application and its federated credentials in one paged list."""
    app = new_app(lab, service_principal=False)
    assert graph(lab, "POST", f"/applications/{app['id']}/federatedIdentityCredentials",
                 body=fic_body("kube-fic", lab.issuer_url, "system:serviceaccount:ns:sa")).status_code == 201
    query = {"$select": "id,appId,displayName,federatedIdentityCredentials",
             "$expand": "federatedIdentityCredentials", "$top": "999"}
    listed = graph(lab, "GET", "/applications", who="harness", **query)
    assert listed.status_code == 200, listed.text
    mine = next(a for a in listed.json()["value"] if a["appId"] == app["appId"])
    assert set(mine) == {"id", "appId", "displayName", "federatedIdentityCredentials"}
    assert [(f["name"], f["issuer"], f["subject"]) for f in mine["federatedIdentityCredentials"]] == [
        ("kube-fic", lab.issuer_url, "system:serviceaccount:ns:sa")]
    one = graph(lab, "GET", f"/applications(appId='{app['appId']}')",
                **{"$expand": "federatedIdentityCredentials"}).json()
    assert one["federatedIdentityCredentials"][0]["name"] == "kube-fic" and "passwordCredentials" in one
    plain = graph(lab, "GET", f"/applications(appId='{app['appId']}')").json()
    assert "federatedIdentityCredentials" not in plain
    assert_graph_error(graph(lab, "GET", "/applications", **{"$expand": "owners2"}), 400, "BadRequest")
    assert_graph_error(graph(lab, "GET", "/applications", **{"$select": "id,nope"}), 400, "BadRequest")


def test_federated_credential_conflicts_use_graphs_codes(lab) -> None:
    app = new_app(lab)
    path = f"/applications/{app['id']}/federatedIdentityCredentials"
    assert graph(lab, "POST", path, body=fic_body("one", lab.issuer_url, "system:serviceaccount:a:b")).ok
    assert_graph_error(graph(lab, "POST", path, body=fic_body("one", lab.issuer_url, "system:serviceaccount:x:y")),
                       409, "Request_MultipleObjectsWithSameKeyValue",
                       "FederatedIdentityCredential with name one already exists.")
    error = assert_graph_error(
        graph(lab, "POST", path, body=fic_body("two", lab.issuer_url, "system:serviceaccount:a:b")),
        400, "InvalidFederatedIdentityCredentialValue")
    assert error["message"].startswith("The combination of issuer and subject must be unique for the application.")
    assert_graph_error(graph(lab, "POST", path, body=fic_body("three", lab.issuer_url, "system:serviceaccount:c:d",
                                                              [EXCHANGE_AUDIENCE, "other"])),
                       400, "Request_BadRequest")


# ---------------------------------------------------------------------------------------------- service principals


def test_service_principals_by_app_id_name_filter_and_get(lab) -> None:
    app = new_app(lab, service_principal=False)
    assert_graph_error(graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')"), 404,
                       "Request_ResourceNotFound")
    sp = graph(lab, "POST", "/servicePrincipals", body={"appId": app["appId"]}).json()
    assert sp["appId"] == app["appId"] and sp["servicePrincipalType"] == "Application"
    assert sp["servicePrincipalNames"] == [app["appId"]] and sp["id"] not in (app["id"], app["appId"])
    assert_graph_error(graph(lab, "POST", "/servicePrincipals", body={"appId": app["appId"]}), 409,
                       "Request_MultipleObjectsWithSameKeyValue")
    by_name = graph(lab, "GET", "/servicePrincipals",
                    **{"$filter": f"servicePrincipalNames/any(c:c eq '{app['appId']}')"}).json()["value"]
    by_app_id = graph(lab, "GET", "/servicePrincipals", **{"$filter": f"appId eq '{app['appId']}'"}).json()["value"]
    assert [s["id"] for s in by_name] == [s["id"] for s in by_app_id] == [sp["id"]]
    assert graph(lab, "GET", f"/servicePrincipals/{sp['id']}").json()["appId"] == app["appId"]


def test_a_service_principal_needs_an_application(lab) -> None:
    error = assert_graph_error(graph(lab, "POST", "/servicePrincipals", body={"appId": str(uuid.uuid4())}), 400,
                               "Request_BadRequest")
    assert error["details"] == [{"code": "NoBackingApplicationObject", "target": "appId"}]


def test_managed_identities_are_service_principals_too(lab) -> None:
    identity = next(i for i in lab.azure.identities.values() if i.name == "myWorkloadId")
    found = graph(lab, "GET", "/servicePrincipals",
                  **{"$filter": f"servicePrincipalNames/any(c:c eq '{identity.client_id}')"}).json()["value"]
    assert len(found) == 1
    sp = found[0]
    assert sp["id"] == identity.principal_id and sp["servicePrincipalType"] == "ManagedIdentity"
    assert identity.resource_id in sp["alternativeNames"]


def test_get_by_ids_resolves_principals_as_az_role_assignment_does(lab) -> None:
    app = new_app(lab)
    sp = graph(lab, "GET", f"/servicePrincipals(appId='{app['appId']}')").json()
    identity = next(i for i in lab.azure.identities.values() if i.name == "myWorkloadId")
    body = {"ids": [sp["id"], identity.principal_id, str(uuid.uuid4())],
            "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"]}
    answer = graph(lab, "POST", "/directoryObjects/getByIds", body=body).json()
    assert answer["@odata.context"].endswith("$metadata#directoryObjects")
    assert [(o["@odata.type"], o["id"]) for o in answer["value"]] == [
        ("#microsoft.graph.servicePrincipal", sp["id"]), ("#microsoft.graph.servicePrincipal", identity.principal_id)]


# ---------------------------------------------------------------------------------------------- tokens and rights


def test_graph_wants_a_graph_token_with_the_right_permissions(lab) -> None:
    assert_graph_error(graph(lab, "GET", "/applications", who=""), 401, "InvalidAuthenticationToken",
                       "Access token is empty.")
    arm_token = token(lab, "admin", ARM_SCOPE)
    assert_graph_error(graph(lab, "GET", "/applications", bearer=arm_token), 401, "InvalidAuthenticationToken",
                       "Access token validation failure. Invalid audience.")
    # The harness may read applications but not write them, nor resolve arbitrary directory objects.
    assert graph(lab, "GET", "/applications", who="harness", **{"$top": "1"}).status_code == 200
    denied = "Insufficient privileges to complete the operation."
    assert_graph_error(graph(lab, "POST", "/applications", who="harness", body={"displayName": "x"}), 403,
                       "Authorization_RequestDenied", denied)
    assert_graph_error(graph(lab, "POST", "/directoryObjects/getByIds", who="harness", body={"ids": [str(uuid.uuid4())]}),
                       403, "Authorization_RequestDenied", denied)


def test_permissions_come_from_the_tokens_roles_claim(lab) -> None:
    claims = jwt.decode(token(lab, "harness"), options={"verify_signature": False})
    assert claims["roles"] == ["Application.Read.All"] and claims["aud"] == "https://graph.microsoft.com"
    assert "roles" not in jwt.decode(token(lab, "harness", ARM_SCOPE), options={"verify_signature": False})


def test_the_labs_own_graph_address_is_a_scope_as_az_asks_for_it(lab) -> None:
    """az requests ``<cloud's microsoft_graph_resource_id>/.default``; in the lab that is the Graph address."""
    admin = lab.credentials["admin"]
    client = msal.ConfidentialClientApplication(
        admin["client_id"], client_credential=admin["client_secret"], authority=f"{lab.authority_host}{lab.tenant_id}",
        instance_discovery=False, verify=str(lab.state_dir / "ca.pem"))
    result = client.acquire_token_for_client([f"{lab.endpoints['graph']}/.default"])
    assert "access_token" in result, result.get("error_description")
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["aud"] == lab.endpoints["graph"]
    listed = graph(lab, "GET", "/servicePrincipals", bearer=result["access_token"], **{"$top": "1"})
    assert listed.status_code == 200 and "@odata.nextLink" in listed.json()


def test_unsupported_filters_and_segments_are_refused(lab) -> None:
    assert_graph_error(graph(lab, "GET", "/applications", **{"$filter": "signInAudience eq 'AzureADMyOrg'"}), 400,
                       "Request_UnsupportedQuery")
    assert_graph_error(graph(lab, "GET", "/users"), 400, "BadRequest", "Resource not found for the segment 'users'.")


# ---------------------------------------------------------------------------------------------- Entra and apps


def test_an_app_registration_federated_through_graph_signs_in_with_workload_identity_credential(
        lab, kube_api, tmp_path) -> None:
    app = new_app(lab, service_principal=False)
    namespace, service_account, sa_token = make_sa_and_token(kube_api, app["appId"])
    subject = f"system:serviceaccount:{namespace}:{service_account}"
    fics = f"/applications(appId='{app['appId']}')/federatedIdentityCredentials"
    assert graph(lab, "POST", fics, body=fic_body("kube", lab.issuer_url, subject)).status_code == 201
    token_file = tmp_path / "token"
    token_file.write_text(sa_token)
    credential = WorkloadIdentityCredential(tenant_id=lab.tenant_id, client_id=app["appId"],
                                            token_file_path=str(token_file), authority=lab.authority_host)

    with pytest.raises(ClientAuthenticationError) as refused:  # no service principal in the tenant yet
        credential.get_token(ARM_SCOPE)
    assert f"AADSTS7000229: The client application {app['appId']} is missing service principal" in str(refused.value)

    sp = graph(lab, "POST", "/servicePrincipals", body={"appId": app["appId"]}).json()
    credential = WorkloadIdentityCredential(tenant_id=lab.tenant_id, client_id=app["appId"],
                                            token_file_path=str(token_file), authority=lab.authority_host)
    claims = jwt.decode(credential.get_token(ARM_SCOPE).token, options={"verify_signature": False})
    assert (claims["appid"], claims["oid"], claims["tid"]) == (app["appId"], sp["id"], lab.tenant_id)
    assert "xms_mirid" not in claims

    graph(lab, "PATCH", f"{fics}/kube", body={"subject": subject + "-other"})
    other = WorkloadIdentityCredential(tenant_id=lab.tenant_id, client_id=app["appId"],
                                       token_file_path=str(token_file), authority=lab.authority_host)
    with pytest.raises(ClientAuthenticationError) as mismatch:
        other.get_token(ARM_SCOPE)
    assert "AADSTS700213" in str(mismatch.value)


def test_a_disabled_service_principal_gets_no_token_until_it_is_enabled_again(lab, kube_api, tmp_path) -> None:
    """az ad sp update --id APPID --set accountEnabled=false|true: Graph PATCHes the one property; Entra refuses a
    disabled application with AADSTS7000112 (unauthorized_client), as Worklytics/psoxy#74 captured it."""
    app = new_app(lab)
    namespace, service_account, sa_token = make_sa_and_token(kube_api, app["appId"])
    fics = f"/applications(appId='{app['appId']}')/federatedIdentityCredentials"
    subject = f"system:serviceaccount:{namespace}:{service_account}"
    assert graph(lab, "POST", fics, body=fic_body("kube", lab.issuer_url, subject)).status_code == 201
    token_file = tmp_path / "token"
    token_file.write_text(sa_token)
    sp = f"/servicePrincipals(appId='{app['appId']}')"

    def sign_in() -> str:
        return WorkloadIdentityCredential(tenant_id=lab.tenant_id, client_id=app["appId"],
                                          token_file_path=str(token_file), authority=lab.authority_host
                                          ).get_token(ARM_SCOPE).token

    assert graph(lab, "PATCH", sp, body={"accountEnabled": False}).status_code == 204
    assert graph(lab, "GET", sp).json()["accountEnabled"] is False
    with pytest.raises(ClientAuthenticationError) as refused:
        sign_in()
    assert f"AADSTS7000112: Application '{app['appId']}'({app['displayName']}) is disabled." in str(refused.value)
    assert "unauthorized_client" in str(refused.value)
    assert_graph_error(graph(lab, "PATCH", sp, body={"accountEnabled": "no"}), 400, "Request_BadRequest")
    assert graph(lab, "PATCH", sp, body={"accountEnabled": True}).status_code == 204
    assert sign_in()


def test_state_files_name_the_graph_endpoint_and_both_subscriptions(lab) -> None:
    env = dict(line.removeprefix("export ").split("=", 1) for line in (lab.state_dir / "env.sh").read_text().splitlines()
               if line.startswith("export "))
    assert shlex.split(env["LAB_GRAPH_ENDPOINT"]) == [lab.endpoints["graph"] + "/"]
    document = json.loads((lab.state_dir / "lab.json").read_text())
    assert document["endpoints"]["graph"] == lab.endpoints["graph"]
    assert len(document["subscriptions"]) == 2 and lab.subscription_id in {s["id"] for s in document["subscriptions"]}
