"""A client-id annotation holding an identity's name (``azure.workload.identity/client-id: my-identity``): the
identities of that name are looked up (collect.identity_names) and the fix annotates the client id itself when
one identity has the name, or lists them when several do."""

from __future__ import annotations

from typing import Any

from fakeworld import ISSUER
from test_checks import context_for

from harness.checks.serviceaccount import sa_client_id_annotation
from harness.collect.identity_names import identities_named
from harness.config import AzureConfig
from harness.facts import Fetched, IdentityFacts, InventoryIdentity

SUB = "00000000-0000-0000-0000-0000000000aa"
MI_ID = f"/subscriptions/{SUB}/resourceGroups/myRg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-identity"
OTHER_ID = MI_ID.replace("myRg", "otherRg")
MI_CLIENT = "11111111-0000-0000-0000-000000000001"
OTHER_CLIENT = "11111111-0000-0000-0000-000000000002"
APP_CLIENT = "11111111-0000-0000-0000-000000000003"


def _azure() -> AzureConfig:
    return AzureConfig(tenant_id="00000000-0000-0000-0000-0000000000bb", subscription_id=SUB,
                       resource_group="rg", cluster_name="aks")


class Arm:
    """Resource Graph (or, when it refuses, the subscription's identities) and Microsoft Graph's applications."""

    def __init__(self, rows: list[dict[str, Any]], apps: list[dict[str, Any]], graph_refused: bool = False,
                 arg_refused: bool = False) -> None:
        self.rows, self.apps, self.graph_refused, self.arg_refused = rows, apps, graph_refused, arg_refused
        self.queries: list[str] = []

    def arm(self, path: str, body: dict[str, Any] | None = None) -> Fetched:
        if body is not None:
            self.queries.append(body["query"])
            if self.arg_refused:
                return Fetched("arg", 403, {"error": {"code": "AuthorizationFailed"}}, code="AuthorizationFailed")
            name = body["query"].split("name =~ '", 1)[1].split("'", 1)[0]
            return Fetched("arg", 200, {"data": [r for r in self.rows if r["name"].lower() == name.lower()]})
        assert "/userAssignedIdentities?" in path
        return Fetched(path, 200, {"value": self.rows})

    def graph(self, path: str, body: dict[str, Any] | None = None) -> Fetched:
        if self.graph_refused:
            return Fetched(path, 403, {"error": {"code": "Authorization_RequestDenied"}}, code="Authorization_RequestDenied")
        assert path.lower().startswith("/v1.0/applications?$filter=displayname%20eq%20%27my-identity%27")
        return Fetched(path, 200, {"value": self.apps})


def _row(resource_id: str, client_id: str) -> dict[str, Any]:
    return {"id": resource_id, "name": resource_id.rsplit("/", 1)[1], "properties": {"clientId": client_id}}


def test_the_identities_of_a_name_are_looked_up_where_the_harness_reads() -> None:
    world = Arm([_row(MI_ID, MI_CLIENT), _row(MI_ID.replace("my-identity", "else"), OTHER_CLIENT)],
                [{"displayName": "my-identity", "appId": APP_CLIENT}])
    found = identities_named(world.arm, _azure(), world.graph, "my-identity")  # type: ignore[arg-type]
    assert found == [
        {"kind": "managed_identity", "name": "my-identity", "client_id": MI_CLIENT, "resource_id": MI_ID},
        {"kind": "application", "name": "my-identity", "client_id": APP_CLIENT, "resource_id": ""}]
    assert world.queries == ["resources | where type =~ 'microsoft.managedidentity/userassignedidentities' | where "
                             "name =~ 'my-identity' | project id, name, subscriptionId, resourceGroup, properties"]
    # Resource Graph refused: the configured subscription's identities, by name (ARM names: any case)
    world = Arm([_row(MI_ID, MI_CLIENT)], [], arg_refused=True)
    found = identities_named(world.arm, _azure(), world.graph, "My-Identity")  # type: ignore[arg-type]
    assert found is not None and [i["client_id"] for i in found] == [MI_CLIENT]
    # Graph refused, the identities still answer; both refused: not known (None), not "none there"
    world = Arm([], [], graph_refused=True)
    assert identities_named(world.arm, _azure(), world.graph, "my-identity") == []  # type: ignore[arg-type]
    world = Arm([], [], graph_refused=True, arg_refused=True)
    world.arm = lambda path, body=None: Fetched(path, 403, {}, code="AuthorizationFailed")  # type: ignore[method-assign]
    assert identities_named(world.arm, _azure(), world.graph, "my-identity") is None  # type: ignore[arg-type]
    # what is no ARM name (a quote would end the KQL literal) is not looked up
    assert identities_named(world.arm, _azure(), world.graph, "it's") is None  # type: ignore[arg-type]


def _check(named: list[dict[str, str]] | None, trusting: tuple[str, ...] | None = (), **workload: Any) -> Any:
    """``trusting``: the client ids the inventory read trusting the ServiceAccount; None: no inventory ran."""
    ctx = context_for(**workload)
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = "my-identity"
    ctx.facts.identity = IdentityFacts(configured=True, named=named)
    ctx.inventory_identities = None if trusting is None else [
        InventoryIdentity("managed_identity", client_id, "x", federated_credentials=[
            {"issuer": ISSUER, "subject": ctx.subject, "audiences": ["api://AzureADTokenExchange"]}])
        for client_id in trusting]
    outcome = sa_client_id_annotation(ctx)
    assert outcome.status == "fail"
    (finding,) = outcome.findings
    assert finding.code == "SA_CLIENT_ID_MALFORMED"
    return finding


MI = {"kind": "managed_identity", "name": "my-identity", "client_id": MI_CLIENT, "resource_id": MI_ID}
OTHER = {"kind": "managed_identity", "name": "my-identity", "client_id": OTHER_CLIENT, "resource_id": OTHER_ID}
APP = {"kind": "application", "name": "my-identity", "client_id": APP_CLIENT, "resource_id": ""}


def test_a_name_one_identity_has_is_replaced_by_its_client_id() -> None:
    """By hand in the lab: kubectl annotate sa -n orders orders-sa azure.workload.identity/client-id=ordersWorkloadId
    (the managed identity's name), harness.yaml naming no client id: the fix was az identity list / az ad app list
    and an annotate with '<client-id>'. The one identity of that name is now named with its client id, and the
    annotate carries it (pasted: the next run passed)."""
    finding = _check([MI])
    assert finding.message.endswith(f"; my-identity is managed identity {MI_ID}: client id {MI_CLIENT}")
    assert finding.fix_lines()[0] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                                      f"azure.workload.identity/client-id={MI_CLIENT} --overwrite")
    assert finding.evidence["named"] == [MI]
    finding = _check([APP])
    assert f"my-identity is app registration my-identity: client id (appId) {APP_CLIENT}" in finding.message
    assert f"client-id={APP_CLIENT}" in finding.fix_lines()[0]


def test_a_name_several_identities_have_lists_them_or_takes_the_one_that_trusts_the_service_account() -> None:
    """By hand in the lab: az identity create -g dev-kubernetes-rg -n ordersWorkloadId and az ad app create
    --display-name ordersWorkloadId beside the first: three identities of that name, each listed with its client id
    before the '<client-id>' annotate. When the inventory read exactly one of them trusting the ServiceAccount,
    that one is annotated; when it read several or none trusting it, it says so (the trusting ones listed)."""
    finding = _check([MI, OTHER, APP], trusting=None)  # no inventory: what trusts it is not known
    assert "3 identities are named my-identity" in finding.message
    lines = finding.fix_lines()
    assert lines[:4] == [
        "# 3 identities are named my-identity; annotate the client id of the one whose federated credential trusts "
        "system:serviceaccount:finance:backend-sa:",
        f"#   managed identity {MI_ID}: client id {MI_CLIENT}",
        f"#   managed identity {OTHER_ID}: client id {OTHER_CLIENT}",
        f"#   app registration my-identity: client id (appId) {APP_CLIENT}"]
    assert "client-id=<client-id>" in lines[4]
    finding = _check([MI, OTHER, APP], trusting=(OTHER_CLIENT,))
    assert finding.message.endswith(f"; of them only {OTHER_CLIENT} has a federated credential for "
                                    "system:serviceaccount:finance:backend-sa")
    assert f"client-id={OTHER_CLIENT} --overwrite" in finding.fix_lines()[0]
    finding = _check([MI, OTHER, APP], trusting=(OTHER_CLIENT, APP_CLIENT))
    assert finding.message.endswith("; 2 of them have a federated credential for system:serviceaccount:finance:backend-sa")
    lines = finding.fix_lines()
    assert lines[:3] == [
        "# 3 identities are named my-identity and 2 of them have a federated credential for "
        "system:serviceaccount:finance:backend-sa; annotate the client id of the one this workload is to use:",
        f"#   managed identity {OTHER_ID}: client id {OTHER_CLIENT}",
        f"#   app registration my-identity: client id (appId) {APP_CLIENT}"]
    assert "client-id=<client-id>" in lines[3]
    finding = _check([MI, OTHER, APP], trusting=())
    assert finding.message.endswith("; none of them has a federated credential for "
                                    "system:serviceaccount:finance:backend-sa that the harness read")
    assert len(finding.fix_lines()) > 4 and "client-id=<client-id>" in finding.fix_lines()[4]


def test_a_name_no_readable_identity_has_keeps_the_look_ups_and_harness_yaml_keeps_its_client_id() -> None:
    finding = _check([])
    assert finding.message.endswith("; no managed identity or app registration the harness can read is named "
                                    "my-identity")
    assert finding.fix_lines()[0].startswith("az identity list --query")
    finding = _check(None)  # not looked up (refused): nothing said about it
    assert finding.message.endswith("the client-id annotation is not a client id (GUID)")
    # harness.yaml names the client id: that one is annotated, whatever the name stands for
    finding = _check([OTHER], client_id=MI_CLIENT)
    assert "is managed identity" not in finding.message
    assert f"client-id={MI_CLIENT}" in " ".join(finding.fix_lines())
