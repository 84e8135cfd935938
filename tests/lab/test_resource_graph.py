"""ARM's reads across resource types, as az and the harness make them: the generic resource list
(``az resource list``, ``az keyvault list``) and Azure Resource Graph, over both of the lab's subscriptions.

Identities are made through ARM as the scenario's Owner app would; readers are principals with one Reader
assignment each (made on the lab's loop), so each test states whose rights it exercises.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from forged_tokens import lab_token

from lab.scenarios import SHARED_IDENTITY_RESOURCE_GROUP

ARM_AUD = "https://management.azure.com/"
ARG_PATH = "/providers/Microsoft.ResourceGraph/resources"
ARG_API = "2022-10-01"
IDENTITY_TYPE = "microsoft.managedidentity/userassignedidentities"


@pytest.fixture(scope="module")
def shared_subscription(lab) -> str:
    return next(s.subscription_id for s in lab.azure.subscriptions.values() if s.subscription_id != lab.subscription_id)


def call(lab, method: str, path: str, token: str, api: str, body: Any = None, **params: str) -> requests.Response:
    return requests.request(method, lab.endpoints["arm"] + path, params={"api-version": api, **params}, json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=30,
                            verify=str(lab.state_dir / "ca.pem"))


def token_of(lab, who: str) -> str:
    return lab_token(lab, lab.azure.principal_by_client_id(lab.credentials[who]["client_id"]), ARM_AUD)


def reader(lab, lab_thread, scope: str) -> str:
    """A token of a new principal holding Reader at ``scope`` only."""
    def make():
        app = lab.azure.add_app(f"arg-reader-{uuid.uuid4().hex[:6]}")
        lab.azure.assign_role(app, "Reader", scope)
        return app

    return lab_token(lab, lab_thread.call(make).result(30), ARM_AUD)


def make_shared_identity(lab, subscription: str) -> dict[str, Any]:
    path = (f"/subscriptions/{subscription}/resourceGroups/{SHARED_IDENTITY_RESOURCE_GROUP}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/shared-{uuid.uuid4().hex[:8]}")
    created = call(lab, "PUT", path, token_of(lab, "admin"), "2023-01-31", {"location": "westeurope"})
    assert created.status_code == 201, created.text
    return created.json()


def by_client_id(client_id: str) -> str:
    return (f"resources | where type =~ '{IDENTITY_TYPE}' | where properties.clientId =~ '{client_id}' "
            "| project id, name, subscriptionId, resourceGroup, properties")


# ---------------------------------------------------------------------------------------------- Resource Graph


def test_resource_graph_finds_an_identity_in_another_subscription(lab, shared_subscription) -> None:
    identity = make_shared_identity(lab, shared_subscription)
    client_id = identity["properties"]["clientId"]
    answer = call(lab, "POST", ARG_PATH, token_of(lab, "harness"), ARG_API,
                  {"query": by_client_id(client_id.upper())})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["totalRecords"], body["count"], body["resultTruncated"]) == (1, 1, "false")
    row = body["data"][0]
    assert row["id"] == identity["id"] and row["subscriptionId"] == shared_subscription
    assert row["resourceGroup"] == SHARED_IDENTITY_RESOURCE_GROUP.lower()
    assert row["properties"]["principalId"] == identity["properties"]["principalId"]
    assert set(row) == {"id", "name", "subscriptionId", "resourceGroup", "properties"}


def test_resource_graph_rows_carry_args_lowercase_type_and_projected_paths(lab, shared_subscription) -> None:
    identity = make_shared_identity(lab, shared_subscription)
    query = (f"Resources | where type == '{IDENTITY_TYPE}' and name == '{identity['name']}' "
             "| project properties.clientId, type")
    body = call(lab, "POST", ARG_PATH, token_of(lab, "admin"), ARG_API,
                {"query": query, "subscriptions": [shared_subscription]}).json()
    assert body["data"] == [{"properties_clientId": identity["properties"]["clientId"], "type": IDENTITY_TYPE}]
    exact_case = f"resources | where type == 'Microsoft.ManagedIdentity/userAssignedIdentities' and name == '{identity['name']}'"
    assert call(lab, "POST", ARG_PATH, token_of(lab, "admin"), ARG_API, {"query": exact_case}).json()["count"] == 0


def test_resource_graph_shows_only_what_the_caller_may_read(lab, lab_thread, shared_subscription) -> None:
    identity = make_shared_identity(lab, shared_subscription)
    query = by_client_id(identity["properties"]["clientId"])
    cluster_only = reader(lab, lab_thread, f"/subscriptions/{lab.subscription_id}")
    assert call(lab, "POST", ARG_PATH, cluster_only, ARG_API, {"query": query}).json()["data"] == []
    denied = call(lab, "POST", ARG_PATH, cluster_only, ARG_API,
                  {"query": query, "subscriptions": [shared_subscription]})
    assert denied.status_code == 403
    error = denied.json()["error"]
    assert error["code"] == "AccessDenied" and error["message"].startswith(
        "Please provide below info when asking for support: timestamp = ")
    assert error["details"][0]["code"] == "AccessDenied"
    group_reader = reader(lab, lab_thread, f"/subscriptions/{shared_subscription}/resourceGroups/"
                                           f"{SHARED_IDENTITY_RESOURCE_GROUP}")
    assert call(lab, "POST", ARG_PATH, group_reader, ARG_API, {"query": query}).json()["count"] == 1


def test_queries_outside_the_labs_subset_get_args_bad_request(lab) -> None:
    for query, token in (("resources | summarize count() by type", "summarize"),
                         ("resources | where properties.clientId contains 'x'", "contains"),
                         ("securityresources", "securityresources")):
        answer = call(lab, "POST", ARG_PATH, token_of(lab, "harness"), ARG_API, {"query": query})
        assert answer.status_code == 400, query
        error = answer.json()["error"]
        assert error["code"] == "BadRequest"
        assert [d["code"] for d in error["details"]] == ["InvalidQuery", "ParserFailure"]
        assert error["details"][1]["token"] == token


def test_resource_graph_pages_and_answers_tables(lab) -> None:
    query = f"resources | where type =~ '{IDENTITY_TYPE}' | project id"
    first = call(lab, "POST", ARG_PATH, token_of(lab, "admin"), ARG_API,
                 {"query": query, "options": {"$top": 2}}).json()
    assert first["count"] == 2 and first["totalRecords"] > 2 and first["$skipToken"]
    second = call(lab, "POST", ARG_PATH, token_of(lab, "admin"), ARG_API,
                  {"query": query, "options": {"$top": 2, "$skipToken": first["$skipToken"]}}).json()
    assert not {r["id"] for r in first["data"]} & {r["id"] for r in second["data"]}
    table = call(lab, "POST", ARG_PATH, token_of(lab, "admin"), "2019-04-01", {"query": query + " | limit 1"}).json()
    assert table["data"]["columns"] == [{"name": "id", "type": "string"}] and len(table["data"]["rows"]) == 1


# ---------------------------------------------------------------------------------------------- generic list


def test_generic_list_filters_by_resource_type_without_properties(lab) -> None:
    vaults = call(lab, "GET", f"/subscriptions/{lab.subscription_id}/resources", token_of(lab, "harness"),
                  "2015-11-01", **{"$filter": "resourceType eq 'Microsoft.KeyVault/vaults'"})
    assert vaults.status_code == 200, vaults.text
    items = vaults.json()["value"]
    assert {i["name"] for i in items} >= {"finance-kv", "platform-kv"}
    assert all(i["type"] == "Microsoft.KeyVault/vaults" and "properties" not in i for i in items)
    in_group = call(lab, "GET", f"/subscriptions/{lab.subscription_id}/resourceGroups/myRg/resources",
                    token_of(lab, "harness"), "2021-04-01",
                    **{"$filter": "resourceType eq 'microsoft.managedidentity/userassignedidentities'"})
    assert "myWorkloadId" in {i["name"] for i in in_group.json()["value"]}


def test_generic_list_in_the_shared_subscription(lab, shared_subscription) -> None:
    identity = make_shared_identity(lab, shared_subscription)
    listed = call(lab, "GET", f"/subscriptions/{shared_subscription}/resources", token_of(lab, "harness"),
                  "2021-04-01", **{"$filter": f"name eq '{identity['name']}'"}).json()["value"]
    assert [i["id"] for i in listed] == [identity["id"]]


def test_generic_list_refusals(lab, lab_thread, shared_subscription) -> None:
    bad = call(lab, "GET", f"/subscriptions/{lab.subscription_id}/resources", token_of(lab, "harness"),
               "2021-04-01", **{"$filter": "location eq 'eastus'"})
    assert bad.status_code == 400 and bad.json()["error"] == {
        "code": "InvalidFilterInQueryString",
        "message": "Invalid $filter 'location eq 'eastus'' specified in the query string."}
    cluster_only = reader(lab, lab_thread, f"/subscriptions/{lab.subscription_id}")
    forbidden = call(lab, "GET", f"/subscriptions/{shared_subscription}/resources", cluster_only, "2021-04-01")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "AuthorizationFailed"
    assert "Microsoft.Resources/subscriptions/resources/read" in forbidden.json()["error"]["message"]


def test_subscriptions_list_names_both_subscriptions_for_the_harness(lab, shared_subscription) -> None:
    listed = call(lab, "GET", "/subscriptions", token_of(lab, "harness"), "2022-12-01").json()["value"]
    assert {s["subscriptionId"] for s in listed} == {lab.subscription_id, shared_subscription}
