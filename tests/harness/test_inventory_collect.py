"""The inventory collector against answering functions: Resource Graph paged by $skipToken, the fallbacks when
Resource Graph or Graph refuse, credentials read for applications listed without them, role assignments in the
identity's own subscription too; the per-run cache (each URL once, even from many threads) and the bound on
concurrent reads."""

from __future__ import annotations

import threading
import time
from typing import Any

from fakeworld import FakeWorkload, World

from harness.collect.cache import WORKERS, RunCache, read_all
from harness.collect.inventory import collect_inventory, list_service_accounts
from harness.config import AzureConfig, CloudConfig
from harness.facts import Fetched

SUB = "75a4b518-d570-4902-9254-ca853cabcaf2"
OTHER = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
ISSUER = "https://oidc.example.test/tenant/cluster-guid/"
AUTHORIZATION = "providers/Microsoft.Authorization"
CLIENT_A = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"
AZURE = AzureConfig.model_construct(
    cloud=CloudConfig(name="AzureCloud"),
    ca_file=None,
    tenant_id="t",
    subscription_id=SUB,
    resource_group="rg",
    cluster_name="aks",
    credential=None,
)


def identity_row(n: int, subscription: str = SUB) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
        f"userAssignedIdentities/id-{n}",
        "name": f"id-{n}",
        "subscriptionId": subscription,
        "resourceGroup": "rg",
        "properties": {"clientId": f"00000000-0000-4000-8000-{n:012d}", "principalId": f"p-{n}"},
    }


class Azure:
    """ARM and Graph answering from a few rules; every call is recorded."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        page: int = 2,
        arg_refused: bool = False,
        graph_refused: bool = False,
        expand: bool = True,
    ) -> None:
        self.rows, self.page, self.arg_refused, self.graph_refused, self.expand = (
            rows,
            page,
            arg_refused,
            graph_refused,
            expand,
        )
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def arm(self, path: str, body: dict[str, Any] | None = None) -> Fetched:
        with self.lock:
            self.calls.append((path, body))
        if path.startswith("/providers/Microsoft.ResourceGraph/resources"):
            if self.arg_refused:
                return Fetched(path, 403, None, "denied", "AccessDenied")
            skip = int((body or {}).get("options", {}).get("$skipToken") or 0)
            answer: dict[str, Any] = {"data": self.rows[skip : skip + self.page]}
            if skip + self.page < len(self.rows):
                answer["$skipToken"] = str(skip + self.page)
            return Fetched(path, 200, answer)
        if path.startswith(
            f"/subscriptions/{SUB}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        ):
            return Fetched(path, 200, {"value": [r for r in self.rows if r["subscriptionId"] == SUB]})
        if "/federatedIdentityCredentials" in path:
            name = path.split("/userAssignedIdentities/")[1].split("/")[0]
            subject = "system:serviceaccount:ns:sa" if name == "id-1" else "system:serviceaccount:ns:gone"
            issuer = ISSUER if name in ("id-1", "id-2") else "https://elsewhere.example/"
            return Fetched(
                path,
                200,
                {
                    "value": [
                        {
                            "name": f"fic-{name}",
                            "properties": {
                                "issuer": issuer,
                                "subject": subject,
                                "audiences": ["api://AzureADTokenExchange"],
                            },
                        }
                    ]
                },
            )
        if "/roleAssignments" in path:
            subscription = path.split("/")[2]
            assignment = f"/subscriptions/{subscription}/{AUTHORIZATION}/roleAssignments/a-{subscription}"
            return Fetched(
                path,
                200,
                {
                    "value": [
                        {
                            "id": assignment,
                            "properties": {
                                "scope": f"/subscriptions/{subscription}",
                                "roleDefinitionId": f"/{AUTHORIZATION}/roleDefinitions/reader",
                            },
                        }
                    ]
                },
            )
        if "/roleDefinitions/" in path:
            return Fetched(path, 200, {"properties": {"roleName": "Reader"}})
        return Fetched(path, 404, None, "not found", "ResourceNotFound")

    def graph(self, path: str, body: dict[str, Any] | None = None) -> Fetched:
        with self.lock:
            self.calls.append((path, body))
        if self.graph_refused and path.startswith("/v1.0/applications?"):
            return Fetched(path, 403, None, "Insufficient privileges", "Authorization_RequestDenied")
        app = {"id": "obj-1", "appId": "11111111-0000-4000-8000-000000000001", "displayName": "web"}
        credentials = [
            {
                "name": "web-fic",
                "issuer": ISSUER,
                "subject": "system:serviceaccount:web:app-sa",
                "audiences": ["api://AzureADTokenExchange"],
            }
        ]
        if path.startswith("/v1.0/applications?"):
            return Fetched(
                path,
                200,
                {
                    "value": [
                        {**app, **({"federatedIdentityCredentials": credentials} if self.expand else {})}
                    ]
                },
            )
        if path in (
            "/v1.0/applications/obj-1/federatedIdentityCredentials",
            f"/v1.0/applications(appId='{app['appId']}')/federatedIdentityCredentials",
        ):
            return Fetched(path, 200, {"value": credentials})
        if path == f"/v1.0/applications(appId='{app['appId']}')":
            return Fetched(path, 200, app)
        if path == f"/v1.0/servicePrincipals(appId='{app['appId']}')":
            return Fetched(path, 200, {"id": "sp-1", "appId": app["appId"]})
        return Fetched(path, 404, None, "does not exist", "Request_ResourceNotFound")


def kube(*accounts: tuple[str, str, str | None]) -> Any:
    world = World.healthy(
        workloads=[
            FakeWorkload(
                ns,
                name,
                client_id=cid or "",
                annotate=cid is not None,
                sa_labels={} if cid else {"azure.workload.identity/use": "true"},
            )
            for ns, name, cid in accounts
        ]
    )
    return world.backend().kube


def paths(azure: Azure) -> list[str]:
    return [path for path, _ in azure.calls]


def test_service_accounts_by_the_runbooks_filter() -> None:
    world = World.healthy(
        workloads=[
            FakeWorkload("finance", "backend-sa"),
            FakeWorkload(
                "batch", "labelled", annotate=False, sa_labels={"azure.workload.identity/use": "false"}
            ),
            FakeWorkload("batch", "empty", client_id=""),
            FakeWorkload("web", "plain", annotate=False),
        ]
    )
    chosen, every, error = list_service_accounts(world.backend().kube)
    assert error is None and every == ["batch/empty", "batch/labelled", "finance/backend-sa", "web/plain"]
    assert [(s["namespace"], s["name"]) for s in chosen] == [
        ("batch", "empty"),
        ("batch", "labelled"),
        ("finance", "backend-sa"),
    ]
    assert (
        chosen[0]["client_id"] == "" and chosen[1]["client_id"] is None and chosen[1]["use_label"] == "false"
    )
    narrowed, _, _ = list_service_accounts(world.backend().kube, ["finance"])
    assert [s["name"] for s in narrowed] == ["backend-sa"]


def test_resource_graph_is_paged_and_every_identity_read_once() -> None:
    azure = Azure([identity_row(n) for n in range(1, 6)], page=2)
    facts = collect_inventory(
        kube(("ns", "sa", "00000000-0000-4000-8000-000000000001")), azure.arm, AZURE, azure.graph, ISSUER
    )
    graph_queries = [body for path, body in azure.calls if "ResourceGraph" in path]
    assert [q["options"].get("$skipToken") for q in graph_queries] == [None, "2", "4"]
    assert all(q["options"]["$top"] == 1000 for q in graph_queries)
    assert "| project id, name, subscriptionId, resourceGroup, properties" in graph_queries[0]["query"]
    assert len([p for p in paths(azure) if "/federatedIdentityCredentials" in p]) == 5
    # kept: id-1 (used and trusted), id-2 (an orphan for this issuer) and the application; not id-3..5
    assert sorted(i.name for i in facts.identities) == ["id-1", "id-2", "web"]
    used = next(i for i in facts.identities if i.name == "id-1")
    assert [a["role"] for a in used.role_assignments or []] == ["Reader"] and used.role_subscriptions == [SUB]
    assert next(i for i in facts.identities if i.name == "id-2").role_assignments is None  # nobody uses it
    assert facts.refused == [] and facts.failed == []


def test_roles_are_read_in_the_identitys_own_subscription_too() -> None:
    azure = Azure([identity_row(1, subscription=OTHER)])
    facts = collect_inventory(
        kube(("ns", "sa", "00000000-0000-4000-8000-000000000001")), azure.arm, AZURE, azure.graph, ISSUER
    )
    [used] = [i for i in facts.identities if i.kind == "managed_identity"]
    assert used.role_subscriptions == [SUB, OTHER]
    assert sorted(a["id"].split("/")[2] for a in used.role_assignments or []) == [OTHER, SUB]


def test_when_resource_graph_refuses_the_configured_subscription_is_listed_and_the_refusal_kept() -> None:
    azure = Azure([identity_row(1), identity_row(2, subscription=OTHER)], arg_refused=True)
    facts = collect_inventory(
        kube(("ns", "sa", "00000000-0000-4000-8000-000000000001")), azure.arm, AZURE, azure.graph, ISSUER
    )
    assert [f.code for f in facts.refused] == ["AccessDenied"]
    assert "(Resource Graph answered HTTP 403 AccessDenied" in facts.searched[1]
    assert [i.name for i in facts.identities if i.kind == "managed_identity"] == ["id-1"]


def test_when_graph_refuses_the_list_the_named_applications_are_read_one_by_one() -> None:
    azure = Azure([], graph_refused=True)
    facts = collect_inventory(
        kube(("web", "app-sa", "11111111-0000-4000-8000-000000000001")), azure.arm, AZURE, azure.graph, ISSUER
    )
    assert [f.code for f in facts.refused] == ["Authorization_RequestDenied"]
    [app] = facts.identities
    assert app.kind == "application" and app.principal_id == "sp-1"
    assert [c["subject"] for c in app.federated_credentials or []] == ["system:serviceaccount:web:app-sa"]


def test_applications_listed_without_their_credentials_have_them_read() -> None:
    azure = Azure([], expand=False)
    facts = collect_inventory(kube(), azure.arm, AZURE, azure.graph, ISSUER)
    assert "/v1.0/applications/obj-1/federatedIdentityCredentials" in paths(azure)
    assert [i.name for i in facts.identities] == ["web"]


def test_an_annotated_principal_id_is_recognised() -> None:
    azure = Azure([identity_row(1)])
    facts = collect_inventory(
        kube(("ns", "sa", "p-1"), ("ns", "other", "22222222-0000-4000-8000-000000000002")),
        azure.arm,
        AZURE,
        azure.graph,
        ISSUER,
    )
    assert facts.principal_of == {}  # p-1 is no GUID: nothing is looked up for it
    row = identity_row(3)
    row["properties"]["principalId"] = "33333333-0000-4000-8000-000000000003"
    azure = Azure([row])
    facts = collect_inventory(
        kube(("ns", "sa", "33333333-0000-4000-8000-000000000003")), azure.arm, AZURE, azure.graph, ISSUER
    )
    assert facts.principal_of["33333333-0000-4000-8000-000000000003"]["name"] == "id-3"


def test_an_identity_only_entra_shows_is_kept_as_hidden() -> None:
    hidden = "44444444-0000-4000-8000-000000000004"
    azure = Azure([identity_row(1)])
    plain_graph = azure.graph

    def graph(path: str, body: dict[str, Any] | None = None) -> Fetched:
        if path == f"/v1.0/servicePrincipals(appId='{hidden}')":
            resource = identity_row(9, subscription=OTHER)["id"]
            return Fetched(
                path,
                200,
                {
                    "id": "sp-9",
                    "appId": hidden,
                    "displayName": "id-9",
                    "servicePrincipalType": "ManagedIdentity",
                    "alternativeNames": ["isExplicit=True", resource],
                },
            )
        return plain_graph(path, body)

    facts = collect_inventory(kube(("ns", "sa", hidden)), azure.arm, AZURE, graph, ISSUER)
    assert facts.hidden[hidden]["resource_id"].startswith(f"/subscriptions/{OTHER}/")
    assert facts.principal_of == {} and facts.refused == []


def test_without_azure_only_the_service_accounts_are_listed() -> None:
    facts = collect_inventory(kube(("ns", "sa", None)), None, None, None, ISSUER)
    assert facts.azure_configured is False and [s["use_label"] for s in facts.service_accounts] == ["true"]


def test_the_cache_sends_each_url_once_even_to_many_threads_at_a_time() -> None:
    sent: list[str] = []

    def slow(path: str, body: dict[str, Any] | None = None) -> Fetched:
        sent.append(path)
        time.sleep(0.05)
        return Fetched(path, 200, {"value": [path]})

    cache = RunCache(slow)
    answers = read_all(lambda n: cache(f"/thing/{n % 3}"), range(12))
    assert sorted(sent) == ["/thing/0", "/thing/1", "/thing/2"] and cache.sent == 3
    assert [a.body["value"][0] for a in answers] == [f"/thing/{n % 3}" for n in range(12)]
    answers[0].body["value"].append("changed")
    assert cache("/thing/0").body == {"value": ["/thing/0"]}  # a caller's change never reaches the next
    assert cache("/thing/0", {"query": "q"}) is not None and cache.sent == 4  # a POST body is its own key


def test_reads_run_at_most_workers_at_a_time() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def read(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)  # long enough for every worker thread to have started under load
        with lock:
            running -= 1

    read_all(read, range(WORKERS + 20))
    assert peak == WORKERS == 50


def test_the_labelled_pods_are_traced_to_their_owners_per_service_account() -> None:
    """One cluster-wide list of the pods labelled for Workload ID: each live one under its ServiceAccount's
    NS/SA with its controller (a ReplicaSet's pod to its Deployment); finished, deleting and probe pods left out;
    a refused list is None (the fix keeps its placeholder)."""
    from harness.collect.inventory import labelled_pod_owners
    from harness.collect.kube_api import KubeError
    from harness.facts import KubeFailure

    def pod(name: str, owner: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
        env = [{"name": "AZURE_CLIENT_ID", "value": CLIENT_A}, {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/t"}]
        return {"metadata": {"name": name, "namespace": "web", "labels": {"pod-template-hash": "7d9f", **extra},
                             "ownerReferences": [owner] if owner else []},
                "spec": {"serviceAccountName": "app-sa", "containers": [{"name": "app", "env": env},
                                                                        {"name": "sidecar"}],
                         "volumes": [{"name": "azure-identity-token", "projected": {"sources": [
                             {"serviceAccountToken": {"audience": "api://AzureADTokenExchange"}}]}}]},
                "status": {"phase": "Running"}}

    class Kube:
        refuse = False

        def list_pods(self, namespace: str | None, selector: str) -> tuple[list[dict[str, Any]], str]:
            assert (namespace, selector) == (None, "azure.workload.identity/use=true")
            if self.refuse:
                raise KubeError(KubeFailure(403, "Forbidden", "pods is forbidden"))
            done = pod("job-x", {"kind": "Job", "name": "job", "controller": True})
            done["status"]["phase"] = "Succeeded"
            unmutated = pod("debug", None)
            unmutated["spec"]["containers"], unmutated["spec"]["volumes"] = [{"name": "app"}], []
            return [pod("api-7d9f-b", {"kind": "ReplicaSet", "name": "api-7d9f", "controller": True}),
                    pod("api-7d9f-a", {"kind": "ReplicaSet", "name": "api-7d9f", "controller": True}),
                    unmutated, done,
                    pod("wi-probe-app-sa-1", None, **{"app.kubernetes.io/managed-by": "wi-harness"})], "1"

    kube = Kube()
    assert labelled_pod_owners(kube) == {"web/app-sa": [  # type: ignore[arg-type]
        {"kind": "Deployment", "name": "api", "pods": ["api-7d9f-a", "api-7d9f-b"], "client_ids": [CLIENT_A]},
        {"kind": "Pod", "name": "debug", "pods": ["debug"], "client_ids": [""]}]}  # the webhook gave it none
    kube.refuse = True
    assert labelled_pod_owners(kube) is None  # type: ignore[arg-type]


def test_the_update_strategy_of_each_statefulset_and_daemonset_owner_is_read_once_per_kind() -> None:
    """What the inventory's restart needs to tell OnDelete from a rollout: one cluster-wide list of each kind
    that owns a labelled pod (none of a kind that owns none); a refused list leaves the strategy unknown."""
    from harness.collect.inventory import add_update_strategies
    from harness.collect.kube_api import KubeError
    from harness.facts import KubeFailure

    class Kube:
        def __init__(self) -> None:
            self.listed: list[str] = []

        def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
            self.listed.append(f"{plural}.{group}/{version}")
            if plural == "daemonsets":
                raise KubeError(KubeFailure(403, "Forbidden", "daemonsets.apps is forbidden"))
            if plural == "deployments":  # kubectl rollout pause sets spec.paused
                return [{"metadata": {"namespace": "web", "name": "api"}, "spec": {"paused": True}},
                        {"metadata": {"namespace": "web", "name": "ui"}, "spec": {}}]
            return [{"metadata": {"namespace": ns, "name": "db"}, "spec": {"updateStrategy": {"type": kind, **extra}}}
                    for ns, kind, extra in (("web", "OnDelete", {}),
                                            ("other", "RollingUpdate", {"rollingUpdate": {"partition": 2}}))]

    owners: dict[str, list[dict[str, Any]]] = {
        "web/app-sa": [{"kind": "StatefulSet", "name": "db", "pods": ["db-0"]},
                       {"kind": "Deployment", "name": "api", "pods": ["api-1"]}],
        "other/sa": [{"kind": "StatefulSet", "name": "db", "pods": ["db-0"]},
                     {"kind": "DaemonSet", "name": "agent", "pods": ["agent-x"]}]}
    kube = Kube()
    add_update_strategies(kube, owners)  # type: ignore[arg-type]
    assert kube.listed == ["daemonsets.apps/v1", "deployments.apps/v1", "statefulsets.apps/v1"]
    assert [o.get("update_strategy", "-") for o in owners["web/app-sa"]] == ["OnDelete", "-"]
    assert [o.get("update_strategy", "-") for o in owners["other/sa"]] == ["RollingUpdate", None]
    assert [o.get("partition") for o in owners["other/sa"]] == [2, None]  # a StatefulSet's partition, kept
    assert [o.get("paused") for o in owners["web/app-sa"]] == [None, True]  # a paused Deployment (rollout pause)
    unpaused = {"web/app-sa": [{"kind": "Deployment", "name": "ui", "pods": ["ui-1"]}]}
    add_update_strategies(kube, unpaused)  # type: ignore[arg-type]
    assert kube.listed[3:] == ["deployments.apps/v1"] and "paused" not in unpaused["web/app-sa"][0]
    jobs_only = {"web/app-sa": [{"kind": "Job", "name": "migrate", "pods": ["migrate-x"]}]}
    add_update_strategies(kube, jobs_only)  # type: ignore[arg-type]
    assert len(kube.listed) == 4  # nothing more asked
