"""Collectors at their seams: ARM over requests (token, retries on 429/503 with Retry-After, error bodies,
paging, a failing credential tried once and summarised), the issuer's discovery + JWKS, the kubeconfig
tokens the redactor must know, the kubeconfig/context preflight, an unreachable API server (asked once, then
failing fast) and the webhook Deployment's namespaces."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.exceptions import ClientAuthenticationError
from fakeworld import closed_port

from harness.collect.arm import (
    SEARCH_BATCH,
    collect_identity,
    collect_identity_roles,
    list_all,
    prefetch_identity_searches,
)
from harness.collect.arm_api import RequestsArm, credential_failure_text, graph_client
from harness.collect.cache import cached
from harness.collect.http import HttpResponse, HttpUnreachable, fetch_json
from harness.collect.issuer import collect_issuer, discovery_url
from harness.collect.kube import collect_webhook, webhook_config, webhook_not_started, webhook_unscheduled
from harness.collect.kube_api import (
    KubeError,
    OfficialKubeApi,
    kube_target_problem,
    kubeconfig_bearer_token,
    kubectl_elsewhere,
)
from harness.config import AzureConfig, parse_config
from harness.facts import CREDENTIAL_ERROR, Fetched, KubeFailure, WebhookPodNotStarted, WebhookPodUnscheduled
from harness.session import run_secrets

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"


def azure() -> AzureConfig:
    return AzureConfig.model_validate(
        {
            "cloud": {
                "name": "lab",
                "authority_host": "https://login.test/",
                "resource_manager": "https://arm.test/",
            },
            "tenant_id": TENANT,
            "subscription_id": SUB,
            "resource_group": "rg",
            "cluster_name": "aks",
        }
    )


class Token:
    def __init__(self) -> None:
        self.token, self.expires_on = "arm-token-value", 4_000_000_000


class Credential:
    def __init__(self, fail: bool = False) -> None:
        self.scopes: list[str] = []
        self.tenants: list[str | None] = []
        self.fail = fail

    def get_token(self, scope: str, tenant_id: str | None = None) -> Token:
        self.scopes.append(scope)
        self.tenants.append(tenant_id)
        if self.fail:
            raise ClientAuthenticationError("AADSTS7000215: Invalid client secret provided.")
        return Token()


class Response:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.content, self.headers = status, json.dumps(body).encode(), headers or {}


class Session:
    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.posted: list[Any] = []

    def get(self, url: str, **kwargs: Any) -> Response:
        self.requests.append((url, kwargs["headers"]))
        return self.responses.pop(0)

    def post(self, url: str, **kwargs: Any) -> Response:
        self.posted.append(kwargs["json"])
        return self.get(url, **kwargs)


def arm_with(*responses: Response, credential: Credential | None = None) -> tuple[RequestsArm, Session, list]:
    sleeps: list[float] = []  # retries happen below the session (urllib3; tests/harness/test_retry_policy.py)
    arm = RequestsArm(azure(), credential=credential or Credential())
    session = Session(*responses)
    arm._session = session  # type: ignore[assignment]
    return arm, session, sleeps


def test_arm_get_uses_a_bearer_token_for_the_arm_audience() -> None:
    credential = Credential()
    arm, session, _ = arm_with(Response(200, {"name": "aks"}), credential=credential)
    fetched = arm("/subscriptions/x?api-version=1")
    assert fetched.ok and fetched.body == {"name": "aks"}
    assert credential.scopes == ["https://management.azure.com/.default"]
    assert session.requests[0][0] == "https://arm.test/subscriptions/x?api-version=1"
    assert session.requests[0][1]["Authorization"] == "Bearer arm-token-value"


def test_arm_errors_keep_code_and_message() -> None:
    arm, _, _ = arm_with(Response(403, {"error": {"code": "AuthorizationFailed", "message": "no read"}}))
    fetched = arm("/x")
    assert (fetched.status, fetched.code, fetched.error) == (403, "AuthorizationFailed", "no read")
    assert "HTTP 403 AuthorizationFailed" in fetched.describe()


def test_a_credential_failure_is_a_fact_not_a_crash() -> None:
    arm, session, _ = arm_with(credential=Credential(fail=True))
    fetched = arm("/x")
    assert (
        fetched.status is None and fetched.code == "CredentialError" and "AADSTS7000215" in str(fetched.error)
    )
    assert session.requests == []


def test_a_failed_credential_is_tried_once_per_run_and_described_without_a_url() -> None:
    credential = Credential(fail=True)
    arm, session, _ = arm_with(credential=credential)
    first, second = arm("/a"), arm("/b")
    assert len(credential.scopes) == 1 and session.requests == []
    assert second.code == CREDENTIAL_ERROR and second.error == first.error
    assert first.describe().startswith("the harness could not get an ARM token: AADSTS7000215")
    assert "https://" not in first.describe()


def test_default_azure_credential_failures_keep_each_credentials_reason() -> None:
    error = ClientAuthenticationError(
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n"
        "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables "
        "are not fully configured.\n"
        "Visit https://aka.ms/x to troubleshoot this issue.\n"
        "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.\n"
        "\tAzureCliCredential: Azure CLI not found on path\n"
        "To mitigate this issue, please refer to the troubleshooting guidelines here at https://aka.ms/y."
    )
    assert credential_failure_text(error) == (
        "DefaultAzureCredential failed to retrieve a token from the included credentials: "
        "EnvironmentCredential: Environment variables are not fully configured; "
        "ManagedIdentityCredential: unavailable; AzureCliCredential: Azure CLI not found on path"
    )
    entra = ClientAuthenticationError(
        "Authentication failed: AADSTS7000215: Invalid client secret provided. "
        "Trace ID: 1 Correlation ID: 2 Timestamp: 3"
    )
    assert (
        credential_failure_text(entra)
        == "Authentication failed: AADSTS7000215: Invalid client secret provided."
    )


def test_paging_follows_next_link() -> None:
    pages = {
        "/list": Fetched("/list", 200, {"value": [{"id": 1}], "nextLink": "https://arm.test/list?page=2"}),
        "https://arm.test/list?page=2": Fetched("p2", 200, {"value": [{"id": 2}]}),
    }
    items, failed = list_all(pages.__getitem__, "/list")
    assert items == [{"id": 1}, {"id": 2}] and failed is None


CLIENT = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"
OTHER_SUB = "9d8c7b6a-1bf0-4dda-aec3-444455556666"
SHARED_ID = (
    f"/subscriptions/{OTHER_SUB}/resourcegroups/shared/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
)


class AzureApis:
    """ARM (Resource Graph + reads) and Graph answering from dicts; records what was asked."""

    def __init__(self, arg: Fetched | None = None, arm: dict[str, Fetched] | None = None,
                 graph: dict[str, Fetched] | None = None) -> None:
        self.arg, self.arm_answers, self.graph_answers = arg, arm or {}, graph or {}
        self.arm_calls: list[tuple[str, Any]] = []
        self.graph_calls: list[str] = []

    def arm(self, path: str, body: Any = None) -> Fetched:
        self.arm_calls.append((path, body))
        key = path.split("?")[0]
        if key == "/providers/Microsoft.ResourceGraph/resources":
            assert self.arg is not None
            return self.arg
        return self.arm_answers.get(key, Fetched(key, 403, None, "no", "AuthorizationFailed"))

    def graph(self, path: str, body: Any = None) -> Fetched:
        self.graph_calls.append(path)
        return self.graph_answers.get(path, Fetched(path, 404, None, "not found", "Request_ResourceNotFound"))


def identity_reads(identity_id: str) -> dict[str, Fetched]:
    return {
        identity_id: Fetched(identity_id, 200, {"id": identity_id, "properties": {"clientId": CLIENT,
                                                                                 "principalId": "p"}}),
        f"{identity_id}/federatedIdentityCredentials": Fetched("f", 200, {"value": []}),
    }


def test_an_identity_in_another_subscription_is_found_with_resource_graph() -> None:
    row = {"id": SHARED_ID, "subscriptionId": OTHER_SUB, "properties": {"clientId": CLIENT.upper(), "principalId": "p"}}
    apis = AzureApis(arg=Fetched("arg", 200, {"data": [row]}), arm=identity_reads(SHARED_ID))
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert (facts.kind, facts.resource_id, facts.resolved_by) == ("managed_identity", SHARED_ID, "resource_graph")
    assert facts.federated_credentials == [] and facts.role_assignments is None and facts.error is None
    query = apis.arm_calls[0][1]["query"]
    assert f"properties.clientId =~ '{CLIENT}'" in query and "userassignedidentities" in query
    assert apis.graph_calls == []  # a managed identity: Graph is not asked
    assert collect_identity(None, None, None, CLIENT).configured is False


def test_role_assignments_read_after_the_probe_pod_are_the_ones_read_with_the_identity() -> None:
    """A run reads an identity's role assignments after creating its probe pod (collect_identity(roles=False), then
    collect_identity_roles): the same facts, the same reads, as reading them with the identity; and none for an
    identity that was not found."""
    from harness.serde import to_json

    assignments = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"
    role = {"id": f"{assignments}/a1", "properties": {"principalId": "p", "scope": f"/subscriptions/{SUB}",
                                                      "roleDefinitionId": "/providers/x/roleDefinitions/r1"}}
    arm = {**identity_reads(SHARED_ID), assignments: Fetched(assignments, 200, {"value": [role]})}
    together = AzureApis(arg=Fetched("arg", 200, {"data": []}), arm=arm)
    whole = collect_identity(together.arm, azure(), SHARED_ID, CLIENT, together.graph)
    apart = AzureApis(arg=Fetched("arg", 200, {"data": []}), arm=arm)
    first = collect_identity(apart.arm, azure(), SHARED_ID, CLIENT, apart.graph, roles=False)
    assert first.role_assignments is None and not any(assignments in path for path, _ in apart.arm_calls)
    collect_identity_roles(apart.arm, azure(), first)
    assert whole.role_assignments and to_json(first) == to_json(whole)
    assert [path for path, _ in apart.arm_calls] == [path for path, _ in together.arm_calls]
    gone = AzureApis(arg=Fetched("arg", 200, {"data": []}), arm={})
    missing = collect_identity(gone.arm, azure(), SHARED_ID, CLIENT, gone.graph, roles=False)
    calls = len(gone.arm_calls)
    collect_identity_roles(gone.arm, azure(), missing)
    assert missing.error is not None and len(gone.arm_calls) == calls


def test_a_configured_identity_arm_does_not_find_comes_with_its_group_s_identities() -> None:
    """harness.yaml's identity_resource_id answers 404 ResourceNotFound and no identity has the client id (az
    identity delete, or a typo): the group's identities are listed, which tell the two apart (checks.federation);
    a client id nothing has, with no identity_resource_id: the configured subscription's."""
    group = f"/subscriptions/{SUB}/resourcegroups/rg"
    gone = f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gone"
    listing = f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    other = {"id": f"{listing}/other", "name": "other", "properties": {"clientId": "c", "principalId": "p"}}
    arm = {gone: Fetched(gone, 404, None, "not found", "ResourceNotFound"),
           listing: Fetched(listing, 200, {"value": [other]})}
    apis = AzureApis(arg=Fetched("arg", 200, {"data": []}), arm=arm)
    facts = collect_identity(apis.arm, azure(), gone, CLIENT, apis.graph)
    assert facts.error is not None and facts.error.code == "ResourceNotFound"
    assert facts.listed_identities == [{"name": "other", "id": f"{listing}/other", "clientId": "c"}]
    del arm[listing]  # not readable: not listed, and nothing is said about the group
    assert collect_identity(apis.arm, azure(), gone, CLIENT, apis.graph).listed_identities is None
    subscription = f"/subscriptions/{SUB}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    arm[subscription] = Fetched(subscription, 200, {"value": [other]})
    unknown = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert unknown.kind is None and unknown.listed_identities == facts.listed_identities


class GraphOfIdentities:
    """Resource Graph over ``count`` identities (client id, principal id), answering every query the harness sends
    from the GUIDs it names; records the queries."""

    def __init__(self, count: int) -> None:
        self.ids = [(f"{i:08x}-0000-4000-8000-000000000001", f"{i:08x}-0000-4000-8000-000000000002")
                    for i in range(count)]
        self.queries: list[str] = []

    def id_of(self, index: int) -> str:
        return f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{index}"

    def arm(self, path: str, body: Any = None) -> Fetched:
        if path.startswith("/providers/Microsoft.ResourceGraph/resources"):
            query = body["query"]
            self.queries.append(query)
            named = {guid.lower() for guid in re.findall(r"'([0-9a-fA-F-]{36})'", query)}
            rows = [{"id": self.id_of(i), "properties": {"clientId": c, "principalId": p}}
                    for i, (c, p) in enumerate(self.ids) if c in named or p in named]
            return Fetched(path, 200, {"data": rows, "count": len(rows)})
        index = int(path.split("?")[0].split("/")[8])
        if path.split("?")[0].endswith("federatedIdentityCredentials"):
            return Fetched(path, 200, {"value": []})
        client, principal = self.ids[index]
        return Fetched(path, 200, {"id": self.id_of(index), "properties": {"clientId": client, "principalId": ""}})


def test_identities_of_many_workloads_are_searched_for_in_a_few_resource_graph_queries() -> None:
    world = GraphOfIdentities(SEARCH_BATCH + 10)
    arm = cached(world.arm)
    clients = [client.upper() if i % 2 else client for i, (client, _) in enumerate(world.ids)]  # as annotated
    prefetch_identity_searches(arm, [*clients, "not-a-guid"])
    assert len(world.queries) == 2  # SEARCH_BATCH GUIDs per query
    found = [collect_identity(arm, azure(), None, client) for client in clients]
    assert len(world.queries) == 2  # each workload's own search was answered from them
    assert [f.resource_id for f in found] == [world.id_of(i) for i in range(len(clients))]
    assert all(f.resolved_by == "resource_graph" and f.error is None for f in found)


def test_without_a_cache_or_with_one_client_id_nothing_is_prefetched() -> None:
    world = GraphOfIdentities(3)
    prefetch_identity_searches(world.arm, [c for c, _ in world.ids])  # no RunCache: nothing to prime
    prefetch_identity_searches(cached(world.arm), [world.ids[0][0]])  # one workload: its own query will do
    assert world.queries == []


def test_when_resource_graph_is_refused_the_configured_subscription_is_listed() -> None:
    identity_id = f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    listing = f"/subscriptions/{SUB}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    arm = {listing: Fetched(listing, 200, {"value": [{"id": identity_id, "properties": {"clientId": CLIENT}}]}),
           **identity_reads(identity_id)}
    apis = AzureApis(arg=Fetched("arg", 403, None, "denied", "AccessDenied"), arm=arm)
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert (facts.resource_id, facts.resolved_by) == (identity_id, "subscription_list")
    assert [f.code for f in facts.refused] == ["AccessDenied"] and len(facts.searched) == 2


def test_a_client_id_no_managed_identity_has_is_looked_up_as_an_application() -> None:
    app_key = f"/v1.0/applications(appId='{CLIENT}')"
    graph = {
        app_key: Fetched(app_key, 200, {"id": "app-object-id", "appId": CLIENT, "displayName": "orders-app"}),
        f"{app_key}/federatedIdentityCredentials": Fetched("f", 200, {"value": [{"name": "kube"}]}),
        f"/v1.0/servicePrincipals(appId='{CLIENT}')": Fetched("sp", 200, {"id": "sp-object-id", "appId": CLIENT}),
    }
    apis = AzureApis(arg=Fetched("arg", 200, {"data": []}), graph=graph)
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert (facts.kind, facts.resolved_by, facts.resource_id) == ("application", "graph", None)
    assert facts.federated_credentials == [{"name": "kube"}]
    assert facts.service_principal == {"id": "sp-object-id", "appId": CLIENT}
    role_query = next(path for path, _ in apis.arm_calls if "roleAssignments" in path)
    assert "sp-object-id" in urllib.parse.unquote(role_query)

    del graph[f"/v1.0/servicePrincipals(appId='{CLIENT}')"]
    without = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert without.service_principal is None and without.service_principal_lookup.status == 404


def test_the_role_assignments_of_an_apps_deleted_service_principal_are_read_beside_the_live_ones() -> None:
    """az ad sp delete, then az ad sp create: the live service principal is new, the deleted one is in Graph's
    deleted items, and the role assignments that name it are read with the same principalId filter as the live
    one's (Reader on the subscription: nothing more); one of another appId, or the live one's id, is not."""
    former, live = "5d6e7f80-1111-2222-3333-444455556666", "6e7f8091-1111-2222-3333-444455556666"
    app_key = f"/v1.0/applications(appId='{CLIENT}')"
    query = urllib.parse.quote(f"appId eq '{CLIENT}'")
    deleted = f"/v1.0/directory/deletedItems/microsoft.graph.servicePrincipal?$filter={query}"
    graph = {
        app_key: Fetched(app_key, 200, {"id": "app-object-id", "appId": CLIENT, "displayName": "orders-app"}),
        f"{app_key}/federatedIdentityCredentials": Fetched("f", 200, {"value": []}),
        f"/v1.0/servicePrincipals(appId='{CLIENT}')": Fetched("sp", 200, {"id": live, "appId": CLIENT}),
        deleted: Fetched(deleted, 200, {"value": [
            {"id": former, "appId": CLIENT, "deletedDateTime": "2026-12-01T00:00:00Z"},
            {"id": live, "appId": CLIENT}, {"id": "7f8091a2-1111-2222-3333-444455556666", "appId": "other"}]}),
    }
    apis = AzureApis(arg=Fetched("arg", 200, {"data": []}), graph=graph)
    scope = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"

    def arm(path: str, body: Any = None) -> Fetched:
        if "roleAssignments" in path:
            apis.arm_calls.append((path, body))
            named = urllib.parse.unquote(path).split("principalId eq '")[1].split("'")[0]
            items = [{"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/r1",
                      "properties": {"principalId": former, "scope": scope,
                                     "roleDefinitionId": "/providers/x/roleDefinitions/r1"}}] if named == former else []
            return Fetched(path, 200, {"value": items})
        return apis.arm(path, body)

    facts = collect_identity(arm, azure(), None, CLIENT, apis.graph)
    assert facts.former_service_principals == [{"id": former, "deletedDateTime": "2026-12-01T00:00:00Z"}]
    assert facts.role_assignments == []
    assert [a["properties"]["principalId"] for a in facts.former_principal_role_assignments] == [former]
    filters = [urllib.parse.unquote(path) for path, _ in apis.arm_calls if "roleAssignments" in path]
    assert sorted(f.split("principalId eq ")[1] for f in filters) == sorted(f"'{i}'" for i in (live, CLIENT, former))
    assert all(f.startswith(f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments?")
               for f in filters)
    del graph[deleted]  # deleted items refused or empty: nothing more is read
    facts = collect_identity(arm, azure(), None, CLIENT, apis.graph)
    assert facts.former_service_principals == [] and facts.former_principal_role_assignments == []


def test_a_principal_id_in_the_annotation_is_recognised() -> None:
    row = {"id": SHARED_ID, "name": "shared", "properties": {"clientId": "the-real-client-id", "principalId": CLIENT}}
    apis = AzureApis(arg=Fetched("arg", 200, {"data": [row]}))
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert facts.kind is None and facts.principal_of == {
        "kind": "managed_identity", "client_id": "the-real-client-id", "name": "shared", "resource_id": SHARED_ID}
    sp = {"id": CLIENT, "appId": "app-client-id", "displayName": "some-app", "servicePrincipalType": "Application"}
    apis = AzureApis(arg=Fetched("arg", 200, {"data": []}),
                     graph={f"/v1.0/servicePrincipals/{CLIENT}": Fetched("sp", 200, sp)})
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert facts.principal_of is not None and facts.principal_of["kind"] == "service_principal"
    assert facts.principal_of["client_id"] == "app-client-id"


def test_lookups_the_harness_may_not_make_are_recorded_not_fatal() -> None:
    denied = Fetched("g", 403, None, "Insufficient privileges to complete the operation.", "Authorization_RequestDenied")
    apis = AzureApis(arg=Fetched("arg", 200, {"data": []}),
                     graph={f"/v1.0/applications(appId='{CLIENT}')": denied, f"/v1.0/servicePrincipals/{CLIENT}": denied})
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert facts.kind is None and facts.error is None and facts.note
    assert [f.code for f in facts.refused] == ["Authorization_RequestDenied"] * 2
    no_graph = collect_identity(apis.arm, azure(), None, CLIENT, None)
    assert any("not configured" in where for where in no_graph.searched)


def test_the_harness_credential_failing_stops_the_lookup() -> None:
    apis = AzureApis(arg=Fetched("arg", None, None, "no token", CREDENTIAL_ERROR))
    facts = collect_identity(apis.arm, azure(), None, CLIENT, apis.graph)
    assert facts.error is not None and facts.error.code == CREDENTIAL_ERROR and apis.graph_calls == []


def test_a_client_id_that_is_no_guid_is_never_put_in_a_query() -> None:
    apis = AzureApis()
    facts = collect_identity(apis.arm, azure(), None, "x' or 1==1 //", apis.graph)
    assert apis.arm_calls == [] and apis.graph_calls == [] and "not a GUID" in str(facts.note)


def test_next_links_to_another_host_are_not_followed() -> None:
    pages = {"/list": Fetched("https://arm.test/list", 200, {"value": [{"id": 1}],
                                                             "nextLink": "https://evil.test/steal"})}
    items, failed = list_all(pages.__getitem__, "/list")
    assert items == [{"id": 1}] and failed is None


def test_every_token_names_the_configured_tenant_and_a_post_carries_its_body() -> None:
    credential = Credential()
    arm, session, _ = arm_with(Response(200, {"data": []}), credential=credential)
    assert arm("/providers/Microsoft.ResourceGraph/resources?api-version=1", {"query": "resources"}).ok
    assert credential.tenants == [TENANT] and session.posted == [{"query": "resources"}]


def test_graph_is_reached_through_the_same_seam_with_its_own_scope() -> None:
    config = AzureConfig.model_validate({"cloud": "AzureUSGovernment", "tenant_id": TENANT, "subscription_id": SUB,
                                         "resource_group": "rg", "cluster_name": "aks"})
    credential = Credential()
    graph = graph_client(config, RequestsArm(config, credential=credential))
    assert graph is not None and graph.base_url == "https://graph.microsoft.us"
    graph._session = Session(Response(200, {"id": "x"}))  # type: ignore[assignment]
    assert graph("/v1.0/applications(appId='x')").ok
    assert credential.scopes == ["https://graph.microsoft.us/.default"] and credential.tenants == [TENANT]
    assert graph_client(azure(), RequestsArm(azure(), credential=credential)) is None  # custom cloud, no Graph


def test_issuer_discovery_then_jwks() -> None:
    issuer = "https://oidc.test/abc/"
    assert discovery_url(issuer) == "https://oidc.test/abc/.well-known/openid-configuration"

    def get(url: str, timeout: float) -> HttpResponse:
        if url.endswith("openid-configuration"):
            return HttpResponse(
                200, json.dumps({"issuer": issuer, "jwks_uri": "https://oidc.test/abc/jwks"}).encode()
            )
        return HttpResponse(200, b'{"keys": []}')

    discovery, jwks = collect_issuer(get, issuer)
    assert discovery.ok and jwks is not None and jwks.body == {"keys": []}


def test_unreachable_and_non_json() -> None:
    def down(url: str, timeout: float) -> HttpResponse:
        raise HttpUnreachable("ConnectionError: refused")

    assert (
        fetch_json(down, "https://x/").describe() == "no response from https://x/: ConnectionError: refused"
    )
    assert (
        fetch_json(lambda u, t: HttpResponse(200, b"<html>"), "https://x/").error
        == "the response is not JSON"
    )


def test_kubeconfig_bearer_token(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "current-context": "a",
                "contexts": [{"name": "a", "context": {"user": "u"}}],
                "users": [{"name": "u", "user": {"token": "kube-token-value"}}],
            }
        )
    )
    assert kubeconfig_bearer_token(path, None) == "kube-token-value"
    assert kubeconfig_bearer_token(path, "other") is None
    assert kubeconfig_bearer_token(tmp_path / "missing", None) is None


def kubeconfig(tmp_path: Path, server: str, token: str = "kube-token-value", context: str = "a") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": token}}],
            }
        )
    )
    return path


def test_every_process_redactor_knows_the_default_kubeconfig_token_and_ambient_azure_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, "https://kube.test")))
    config = parse_config({}, base_dir=tmp_path)  # no cluster.kubeconfig: kubectl's default applies
    secrets = run_secrets(config, {"AZURE_CLIENT_SECRET": "ambient-client-secret"})
    assert set(secrets) == {"kube-token-value", "ambient-client-secret"}


def test_kubeconfig_list_takes_the_first_files_current_context_as_kubectl_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG=mine:theirs, both with a current-context: kubectl (client-go: the first file to set a value
    wins) uses mine's; the kubernetes client alone would take theirs' and verify another cluster."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "theirs").mkdir()
    mine = kubeconfig(tmp_path / "mine", "https://mine.test", token="mine-token", context="mine")
    theirs = kubeconfig(tmp_path / "theirs", "https://theirs.test", token="theirs-token", context="theirs")
    monkeypatch.setenv("KUBECONFIG", f"{mine}:{theirs}")
    api = OfficialKubeApi(None, None)
    assert (api.context, api.server, api.bearer_token) == ("mine", "https://mine.test", "mine-token")
    assert kubeconfig_bearer_token(None, None) == "mine-token"


def test_an_empty_kubeconfig_variable_is_the_home_kubeconfig_as_for_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG= (a CI variable that expanded to nothing) is unset for client-go: ~/.kube/config, not '.'."""
    (tmp_path / ".kube").mkdir()
    kubeconfig(tmp_path / ".kube", "https://home.test", context="home").rename(tmp_path / ".kube" / "config")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", "")
    assert kube_target_problem(None, None) is None
    api = OfficialKubeApi(None, None)
    assert (api.context, api.server) == ("home", "https://home.test")


def test_a_run_whose_kubeconfig_or_context_kubectl_is_not_at_says_what_to_run_before_pasting_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """harness.yaml names cluster.kubeconfig/context; the fixes are plain kubectl, which acts on the shell's
    $KUBECONFIG and current-context: on another cluster, unless the person switches first."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "prod").mkdir()
    mine = kubeconfig(tmp_path / "mine", "https://mine.test", context="dev")
    prod = kubeconfig(tmp_path / "prod", "https://prod.test", context="prod")
    monkeypatch.setenv("KUBECONFIG", str(mine))
    assert kubectl_elsewhere(None, None) is None and kubectl_elsewhere(mine, "dev") is None  # they agree
    assert kubectl_elsewhere(prod, None) == (
        "the fixes' kubectl, kubelogin and az aks get-credentials act on your shell's kubeconfig and current "
        f"context, this run read {prod} "
        f"context prod (harness.yaml's cluster section): run export KUBECONFIG={prod} before pasting them")
    assert str(kubectl_elsewhere(None, "staging")).endswith(
        "this run read context staging (harness.yaml's cluster section): run kubectl config use-context staging "
        "before pasting them")
    monkeypatch.setenv("KUBECONFIG", f"{prod}:{mine}")  # prod listed, but kubectl is at its current-context
    assert kubectl_elsewhere(prod, None) is None
    assert str(kubectl_elsewhere(prod, "dev")).endswith("run kubectl config use-context dev before pasting them")


def test_the_live_bearer_token_is_known_to_the_backend(tmp_path: Path) -> None:
    api = OfficialKubeApi(kubeconfig(tmp_path, "https://kube.test", token="live-token-value"), None)
    assert api.bearer_token == "live-token-value"


def test_kube_target_problems_are_read_from_the_file_alone(tmp_path: Path) -> None:
    good = kubeconfig(tmp_path, "https://kube.test", context="lab")
    assert kube_target_problem(good, "lab") is None and kube_target_problem(good, None) is None
    assert kube_target_problem(good, "prod") == (
        f"cluster.context: 'prod' is not a context of {good} (it has: lab)"
    )
    # a context name holding an escape (ESC ] 0 sets the terminal's title) is listed escaped, never raw
    data = yaml.safe_load(good.read_text())
    data["contexts"].append({"name": "evil\x1b]0;t\x07", "context": data["contexts"][0]["context"]})
    good.write_text(yaml.safe_dump(data))
    assert kube_target_problem(good, "prod") == (
        f"cluster.context: 'prod' is not a context of {good} (it has: lab, evil\\x1b]0;t\\x07)"
    )
    gone = tmp_path / "gone"  # kubectl config delete-context of the current one
    gone.write_text(good.read_text().replace("current-context: lab", "current-context: deleted"))
    assert kube_target_problem(gone, None) == (
        f"cluster.kubeconfig: {gone}: its current-context 'deleted' is not one of its contexts: set cluster.context "
        "in harness.yaml to one of them (lab, evil\\x1b]0;t\\x07), or kubectl config use-context NAME")
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    assert str(kube_target_problem(empty, None)).startswith(f"cluster.kubeconfig: cannot use {empty}: ")


def test_an_api_server_certificate_the_kubeconfig_ca_does_not_sign_is_named_once(tmp_path: Path) -> None:
    """After az aks rotate-certs an old kubeconfig's CA signs nothing the API server shows: by hand in the lab
    (certificate-authority-data of another CA) every call said 'no answer ... SSLError' and the fixes spoke of
    private clusters. It is named, with get-credentials, and not asked again."""
    import base64
    import ssl

    import trustme

    server_ca, other_ca = trustme.CA(), trustme.CA()
    cert = server_ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError, ssl.SSLError):
                context.wrap_socket(conn, server_side=True).close()
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        path = kubeconfig(tmp_path, f"https://127.0.0.1:{port}")
        data = json.loads(path.read_text())
        data["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
            other_ca.cert_pem.bytes()).decode()
        path.write_text(json.dumps(data))
        api = OfficialKubeApi(path, None)
        with pytest.raises(KubeError) as first:
            api.service_account("finance", "backend-sa")
        assert "is not signed by the kubeconfig's certificate-authority (CERTIFICATE_VERIFY_FAILED)" in \
            first.value.failure.message and "az aks get-credentials --overwrite-existing" in first.value.failure.message
        with pytest.raises(KubeError) as again:  # not asked again
            api.namespace("finance")
        assert again.value.failure == first.value.failure
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_an_unreachable_api_server_is_asked_once_then_fails_fast(tmp_path: Path) -> None:
    api = OfficialKubeApi(kubeconfig(tmp_path, f"https://127.0.0.1:{closed_port()}"), None)
    with pytest.raises(KubeError) as first:
        api.service_account("finance", "backend-sa")
    assert first.value.failure.status == 0 and first.value.failure.reason == "Unreachable"
    assert "no answer from the API server https://127.0.0.1:" in first.value.failure.message

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the API server was asked again")

    api._api_client.rest_client.pool_manager.request = no_network  # type: ignore[method-assign]
    for call in (lambda: api.namespace("finance"), lambda: list(api.watch_pods("finance", "a=b", None, 5))):
        with pytest.raises(KubeError) as again:
            call()
        assert again.value.failure == first.value.failure
    assert api.openid_configuration().error == first.value.failure.message


@pytest.mark.parametrize(
    "cloud, scope",
    [
        ("AzureChinaCloud", "https://management.chinacloudapi.cn/.default"),
        ("AzureUSGovernment", "https://management.usgovcloudapi.net/.default"),
    ],
)
def test_sovereign_cloud_arm_scope(cloud: str, scope: str) -> None:
    config = AzureConfig.model_validate(
        {
            "cloud": cloud,
            "tenant_id": TENANT,
            "subscription_id": SUB,
            "resource_group": "rg",
            "cluster_name": "aks",
        }
    )
    credential = Credential()
    arm = RequestsArm(config, credential=credential)
    arm._session = Session(Response(200, {}))  # type: ignore[assignment]
    arm("/x")
    assert credential.scopes == [scope]
    assert arm.base_url == config.cloud.endpoints.resource_manager.rstrip("/")


class WebhookReads:
    """Just enough KubeApi for collect_webhook: one webhook configuration, per-namespace Deployment answers."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def mutating_webhook_configurations(self) -> list[dict[str, Any]]:
        service = {"namespace": "kube-system", "name": "azure-wi-webhook-webhook-service"}
        hook = {"name": "mutation.azure-workload-identity.io", "clientConfig": {"service": service}}
        return [{"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"}, "webhooks": [hook]}]

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        answer = self.answers.get(namespace)
        if isinstance(answer, KubeFailure):
            raise KubeError(answer)
        return answer


def test_only_the_webhooks_own_namespace_counts_when_its_deployment_cannot_be_read() -> None:
    forbidden = KubeFailure(403, "Forbidden", "deployments.apps is forbidden")
    guess_refused = WebhookReads({"kube-system": None, "azure-workload-identity-system": forbidden})
    _, _, deployments, error = collect_webhook(guess_refused)  # type: ignore[arg-type]
    assert deployments == [] and error is None  # absent where it should run: WEBHOOK_NOT_READY, not RBAC
    own_refused = WebhookReads({"kube-system": forbidden})
    _, _, _, error = collect_webhook(own_refused)  # type: ignore[arg-type]
    assert error is not None and error.failure == forbidden


def test_the_webhooks_pods_no_node_takes_are_read_with_the_schedulers_words() -> None:
    """The webhook's pods whose PodScheduled condition is False, in its Deployment's namespace, by the chart's and
    the add-on's pod label; a pod being deleted, a scheduled one, or a list the harness may not make says nothing."""
    said = "0/1 nodes are available: 1 node(s) were unschedulable."

    class Pods:
        def __init__(self, failing: bool = False) -> None:
            self.failing = failing
            self.asked: list[tuple[str | None, str]] = []

        def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict], str | None]:
            self.asked.append((namespace, label_selector))
            if self.failing:
                raise KubeError(KubeFailure(403, "Forbidden", "pods is forbidden"))
            return [
                {"metadata": {"name": "wh-a"}, "status": {"conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": said}]}},
                {"metadata": {"name": "wh-b", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"conditions": [
                    {"type": "PodScheduled", "status": "False", "message": said}]}},
                {"metadata": {"name": "wh-c"}, "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}},
            ], None

    deployments = [{"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"}}]
    api = Pods()
    assert webhook_unscheduled(api, deployments) == [  # type: ignore[arg-type]
        WebhookPodUnscheduled("kube-system", "wh-a", "Unschedulable", said)]
    assert api.asked == [("kube-system", "azure-workload-identity.io/system=true")]
    assert webhook_unscheduled(Pods(failing=True), deployments) == []  # type: ignore[arg-type]


def test_the_webhooks_config_map_is_read_once_in_each_namespace_it_runs_in() -> None:
    """azure-wi-webhook-config's AZURE_TENANT_ID and AZURE_ENVIRONMENT (no other key) in each namespace of the
    webhook's Deployments, listed once per namespace by the chart's label; another ConfigMap of that label, a
    Deployment without a namespace, or a list the harness may not make says nothing."""

    class Maps:
        def __init__(self) -> None:
            self.asked: list[tuple[str, str]] = []

        def list_config_maps(self, namespace: str, label_selector: str) -> list[dict]:
            self.asked.append((namespace, label_selector))
            if namespace == "refused":
                raise KubeError(KubeFailure(403, "Forbidden", "configmaps is forbidden"))
            return [{"metadata": {"name": "other"}, "data": {"AZURE_TENANT_ID": "not-this"}},
                    {"metadata": {"name": "azure-wi-webhook-config"},
                     "data": {"AZURE_TENANT_ID": "t", "AZURE_ENVIRONMENT": "AzurePublicCloud", "EXTRA": "x"}}]

    deployments = [{"metadata": {"namespace": "kube-system"}}, {"metadata": {"namespace": "kube-system"}},
                   {"metadata": {}}, {"metadata": {"namespace": "refused"}}]
    api = Maps()
    assert webhook_config(api, deployments) == {  # type: ignore[arg-type]
        "kube-system": {"AZURE_TENANT_ID": "t", "AZURE_ENVIRONMENT": "AzurePublicCloud"}}
    assert api.asked == [("kube-system", "azure-workload-identity.io/system=true"),
                         ("refused", "azure-workload-identity.io/system=true")]


def test_the_webhooks_pods_that_never_start_are_read_with_the_kubelets_words() -> None:
    """The cert Secret deleted, the webhook's pods made again: they stay ContainerCreating with no message, and the
    kubelet's latest FailedMount event for each says why; a CreateContainerConfigError carries its own message. A
    running pod, a pod being deleted, a Normal event, or events the harness may not list say nothing."""
    mount = 'MountVolume.SetUp failed for volume "cert" : secret "azure-wi-webhook-server-cert" not found'
    creating = {"containerStatuses": [{"name": "manager", "state": {"waiting": {"reason": "ContainerCreating"}}}]}

    class Pods:
        def __init__(self, events_refused: bool = False) -> None:
            self.events_refused = events_refused
            self.asked: list[tuple[str, str]] = []

        def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict], str | None]:
            return [
                {"metadata": {"name": "wh-a"}, "status": creating},
                {"metadata": {"name": "wh-b", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": creating},
                {"metadata": {"name": "wh-c"}, "status": {"containerStatuses": [
                    {"name": "manager", "state": {"running": {}}}]}},
                {"metadata": {"name": "wh-d"}, "status": {"containerStatuses": [{"name": "manager", "state": {
                    "waiting": {"reason": "CreateContainerConfigError",
                                "message": 'configmap "azure-wi-webhook-config" not found'}}}]}},
            ], None

        def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                            field_selector: str = "") -> list[dict]:
            self.asked.append((plural, field_selector))
            if self.events_refused:
                raise KubeError(KubeFailure(403, "Forbidden", "events is forbidden"))
            return [{"type": "Normal", "reason": "Scheduled", "message": "assigned", "lastTimestamp": "2026-01-01T00:00:09Z"},
                    {"type": "Warning", "reason": "FailedMount", "message": "older", "lastTimestamp": "2026-01-01T00:00:01Z"},
                    {"type": "Warning", "reason": "FailedMount", "message": mount, "lastTimestamp": "2026-01-01T00:00:05Z"}]

    deployments = [{"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"}}]
    api = Pods()
    config_missing = WebhookPodNotStarted("kube-system", "wh-d", "CreateContainerConfigError",
                                          'configmap "azure-wi-webhook-config" not found')
    assert webhook_not_started(api, deployments) == [  # type: ignore[arg-type]
        WebhookPodNotStarted("kube-system", "wh-a", "FailedMount", mount), config_missing]
    assert api.asked == [("events", "involvedObject.name=wh-a")]
    assert webhook_not_started(Pods(events_refused=True), deployments) == [config_missing]  # type: ignore[arg-type]
