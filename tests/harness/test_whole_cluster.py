"""Whole-cluster runs through the plugin, against the fake world: a harness.yaml without workloads verifies
every ServiceAccount with the client-id annotation or the use label (listed when the run starts, once for all
xdist workers), --namespace narrows the run (harness.yaml's entries there give their access checks), and a run
that finds nothing to verify fails and says why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakeworld import FakeWorkload, World
from test_plugin import CLUSTER_TESTS, created, project, run_json

from harness.collect.inventory import collect_inventory
from harness.collect.kube_api import KubeError
from harness.collect.migration import collect_migration
from harness.facts import KubeFailure
from harness.fixtures import nothing_found
from harness.session import discover

pytest_plugins = ["pytester"]
CHAIN = 16  # checks of a workload without access checks


def without_workloads(config: Path, key_absent: bool = False) -> None:
    data = yaml.safe_load(config.read_text())
    if key_absent:
        data.pop("workloads")
    else:
        data["workloads"] = []
    config.write_text(yaml.safe_dump(data))


def test_a_config_without_workloads_verifies_every_annotated_service_account(
    pytester: pytest.Pytester,
) -> None:
    without_workloads(project(pytester, World.healthy()), key_absent=True)
    result = pytester.runpytest("suites", "--config", "harness.yaml")
    result.assert_outcomes(passed=CLUSTER_TESTS + 2 * CHAIN)
    doc = run_json(pytester)
    assert doc["verdict"] == "pass"
    assert [w["id"] for w in doc["workloads"]] == ["finance/backend-sa", "orders/orders-sa"]
    assert [len(w["checks"]) for w in doc["workloads"]] == [CHAIN, CHAIN]
    assert sorted(p.split("/")[0] for p in created(pytester)) == ["finance", "orders"]


def test_label_only_service_accounts_are_verified_too(pytester: pytest.Pytester) -> None:
    world = World.healthy()
    world.workloads.append(
        FakeWorkload(
            "batch",
            "nightly-sa",
            annotate=False,
            fic=False,
            sa_labels={"azure.workload.identity/use": "true"},
        )
    )
    world.workloads.append(
        FakeWorkload("web", "plain-sa", annotate=False, fic=False)
    )  # neither: not verified
    without_workloads(project(pytester, world))
    result = pytester.runpytest("suites", "--config", "harness.yaml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = run_json(pytester)
    assert [w["id"] for w in doc["workloads"]] == [
        "batch/nightly-sa",
        "finance/backend-sa",
        "orders/orders-sa",
    ]
    nightly = doc["workloads"][0]
    assert nightly["verdict"] == "fail"
    assert {c["id"]: c["status"] for c in nightly["checks"]}["sa.client_id_annotation"] == "fail"
    inventory = doc["inventory"]["service_accounts"]
    assert [row["service_account"] for row in inventory] == [
        "batch/nightly-sa",
        "finance/backend-sa",
        "orders/orders-sa",
    ]
    assert inventory[0]["state"] == "label only: no client id" and inventory[0]["use_label"] == "true"


def test_namespace_narrows_the_run_and_the_config_gives_its_access_checks(pytester: pytest.Pytester) -> None:
    project(pytester, World.healthy())  # harness.yaml lists both workloads with their access checks
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--namespace", "finance")
    result.assert_outcomes(passed=CLUSTER_TESTS + CHAIN + 2)
    doc = run_json(pytester)
    assert [w["id"] for w in doc["workloads"]] == ["finance/backend-sa"]
    assert len([c for c in doc["workloads"][0]["checks"] if c["id"].startswith("access.")]) == 2
    assert [p.split("/")[0] for p in created(pytester)] == ["finance"]


def test_xdist_workers_agree_on_the_service_accounts_found_at_the_start(pytester: pytest.Pytester) -> None:
    without_workloads(project(pytester, World.healthy()))
    result = pytester.runpytest_subprocess(
        "suites", "--config", "harness.yaml", "-n", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=CLUSTER_TESTS + 2 * CHAIN)
    assert len(created(pytester)) == 2  # one probe pod per ServiceAccount, whichever worker asked first
    assert [w["id"] for w in run_json(pytester)["workloads"]] == ["finance/backend-sa", "orders/orders-sa"]


def test_a_run_that_finds_no_service_account_fails_and_says_why(pytester: pytest.Pytester) -> None:
    without_workloads(project(pytester, World.healthy()))
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--namespace", "kube-system")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=CLUSTER_TESTS, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*whole-cluster run (harness.yaml lists no workloads): no ServiceAccount in "
            "namespace kube-system has the azure.workload.identity/client-id annotation*"
        ]
    )
    document = run_json(pytester)
    assert document["verdict"] == "fail"
    # the sign-off says why a run with no failing check failed: run.json names the test and its one line
    [error] = document["incomplete"]["errors"]
    assert error["test"] == "suites/test_workloads.py::test_workload[no-workloads]"
    assert error["message"].startswith("whole-cluster run (harness.yaml lists no workloads): no ServiceAccount in "
                                       "namespace kube-system has the azure.workload.identity/client-id")
    assert document["incomplete"]["interrupted"] is None
    # and the summary at the end says it above the verdict, where every suite's line reads PASS
    summary = result.stdout.str().split("== wi-harness ==", 1)[1]
    assert "  ERROR suites/test_workloads.py::test_workload[no-workloads]: whole-cluster run (harness.yaml lists " \
           "no workloads): no ServiceAccount" in summary.split("verdict FAIL", 1)[0]


def test_a_namespace_that_does_not_exist_is_named_not_called_unannotated(pytester: pytest.Pytester) -> None:
    """--namespace with a typo (or a namespace of another cluster), beside a harness.yaml that lists workloads
    elsewhere: one line saying the namespace does not exist, not that harness.yaml lists no workloads."""
    project(pytester, World.healthy())
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--namespace", "fnance")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=CLUSTER_TESTS, errors=1)
    result.stdout.fnmatch_lines(["whole-cluster run: namespace fnance does not exist in the cluster (kubectl get "
                                 "namespaces), so nothing was verified; check --namespace and the kubeconfig context"])
    result = pytester.runpytest("suites", "--config", "harness.yaml", "--namespace", "kube-system")
    result.stdout.fnmatch_lines(["*whole-cluster run (harness.yaml lists none in namespace kube-system): no "
                                 "ServiceAccount in namespace kube-system has the*"])
    assert "Traceback" not in result.stdout.str()


def test_service_accounts_the_harness_may_not_list_fail_the_run_with_the_refusal(
    pytester: pytest.Pytester,
) -> None:
    world = World.healthy(forbidden_lists={"serviceaccounts"})
    without_workloads(project(pytester, world))
    result = pytester.runpytest("suites", "--config", "harness.yaml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*whole-cluster run: could not list the ServiceAccounts of all namespaces: 403 Forbidden*"]
    )
    doc = run_json(pytester)
    listed = next(c for c in doc["checks"] if c["id"] == "inventory.service_accounts")
    assert listed["status"] == "fail" and "KUBE_FORBIDDEN" in {f["code"] for f in doc["findings"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--namespace", "Finance"], "ERROR: --namespace 'Finance': must be a DNS-1123 label*"),
        (["--namespace", "a b"], "ERROR: --namespace 'a b': must be a DNS-1123 label*"),
        (
            ["--namespace", "finance", "--workload", "finance/backend-sa"],
            "ERROR: --namespace narrows a whole-cluster run: it does not go with --workload or --pod",
        ),
    ],
)
def test_bad_namespace_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    project(pytester, World.healthy())
    result = pytester.runpytest("suites", "--config", "harness.yaml", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


class _DeletedNamespaceKube:
    """kubectl delete namespace gone, a finalizer holding it: its ServiceAccounts were deleted with its content."""

    def list_service_accounts(self, namespace: str | None) -> list[dict[str, object]]:
        return []

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, object]], str | None]:
        return [], None

    def namespace(self, name: str) -> dict[str, object] | None:
        held = {"type": "NamespaceFinalizersRemaining", "status": "True",
                "message": "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource "
                           "instances"}
        return {"metadata": {"name": name, "deletionTimestamp": "2026-12-05T15:11:09Z"},
                "status": {"phase": "Terminating", "conditions": [held]}} if name == "gone" else None


def test_a_namespace_typo_names_the_namespace_it_is_close_to() -> None:
    """--namespace fnance (found by hand in the lab): the namespace it is close to is named; refused, nothing."""

    class Typo(_DeletedNamespaceKube):
        refuse = False

        def namespace(self, name: str) -> None:
            return None

        def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, object]]:
            if self.refuse:
                raise KubeError(KubeFailure(403, "Forbidden", "namespaces is forbidden"))
            return [{"metadata": {"name": name}} for name in ("default", "finance", "orders", "kube-system")]

    assert nothing_found(discover(Typo(), ["fnance"])) == (
        "whole-cluster run: namespace fnance does not exist in the cluster (kubectl get namespaces), so nothing was "
        "verified; check --namespace and the kubeconfig context; did you mean --namespace finance?")
    refused = Typo()
    refused.refuse = True
    assert nothing_found(discover(refused, ["fnance"])).endswith("check --namespace and the kubeconfig context")


def test_a_namespace_being_deleted_is_named_not_called_unannotated() -> None:
    """--namespace of a namespace stuck Terminating (found by hand: a ConfigMap with a finalizer, kubectl delete
    namespace): not 'annotate the workloads' ServiceAccounts', which nothing may be created there to do."""
    message = nothing_found(discover(_DeletedNamespaceKube(), ["gone"]))
    assert message == ("whole-cluster run: namespace gone is being deleted (Terminating since 2026-12-05T15:11:09Z): "
                       "its ServiceAccounts were deleted with its content and nothing new may be created in it until "
                       "it is gone, so nothing was verified; Some content in the namespace has finalizers remaining: "
                       "example.com/hold in 1 resource instances")


class _LabelledPodKube:
    """billing's Deployment template carries azure.workload.identity/use: "true" and runs as billing-sa, which
    has neither the client-id annotation nor the use label (found by hand in the lab: the pod was mutated without
    AZURE_CLIENT_ID and the whole-cluster run passed without verifying it)."""

    def __init__(self, refuse_pods: bool = False) -> None:
        self.refuse_pods = refuse_pods
        self.pod_lists: list[tuple[str | None, str]] = []

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, object]], str | None]:
        self.pod_lists.append((namespace, label_selector))
        if self.refuse_pods:
            raise KubeError(KubeFailure(403, "Forbidden", 'pods is forbidden: User "harness" cannot list resource '
                                                          '"pods" in API group "" at the cluster scope'))
        pods = [{"metadata": {"namespace": "billing", "name": "billing-1"},
                 "spec": {"serviceAccountName": "billing-sa"}},
                {"metadata": {"namespace": "web", "name": "web-1"}, "spec": {}}]  # no serviceAccountName: default
        return [p for p in pods if namespace in (None, p["metadata"]["namespace"])], "1"

    def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, object]]:
        return []  # no aad-pod-identity, no NMI: what the migration collector lists besides the pods

    def list_service_accounts(self, namespace: str | None) -> list[dict[str, object]]:
        accounts = [{"metadata": {"namespace": ns, "name": name, "annotations": notes}} for ns, name, notes in [
            ("billing", "billing-sa", {}), ("billing", "plain-sa", {}), ("web", "default", {}),
            ("finance", "backend-sa", {"azure.workload.identity/client-id": "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"})]]
        return [a for a in accounts if namespace in (None, a["metadata"]["namespace"])]


def test_service_accounts_that_labelled_pods_run_as_are_verified_too() -> None:
    kube = _LabelledPodKube()
    found = discover(kube, [])
    assert [f"{s['namespace']}/{s['name']}" for s in found["service_accounts"]] == [
        "billing/billing-sa", "finance/backend-sa", "web/default"]
    assert kube.pod_lists == [(None, "azure.workload.identity/use=true")]  # one list, cluster-wide
    narrowed = discover(kube, ["billing"])  # --namespace billing: that namespace's pods only
    assert [s["name"] for s in narrowed["service_accounts"]] == ["billing-sa"]
    assert kube.pod_lists[1:] == [("billing", "azure.workload.identity/use=true")]
    refused = discover(_LabelledPodKube(refuse_pods=True), [])
    assert refused["service_accounts"] == [] and nothing_found(refused) == (
        "whole-cluster run: could not list the pods labelled azure.workload.identity/use=true of all namespaces: "
        '403 Forbidden: pods is forbidden: User "harness" cannot list resource "pods" in API group "" at the '
        "cluster scope; grant it: kubectl create clusterrole wi-harness-list-pods --verb=list --resource=pods && "
        "kubectl create clusterrolebinding wi-harness-list-pods --clusterrole=wi-harness-list-pods --user=harness "
        "(or kubectl apply the 01-rbac.yaml of python -m harness manifests render: its ClusterRole "
        "wi-harness-reader grants it)")
    # by hand in the lab: the ClusterRole's pods rule removed, the run as the rendered ServiceAccount said the
    # refusal alone; the grant printed now, pasted as printed, made the next run PASS


def test_a_whole_cluster_run_with_the_inventory_lists_the_labelled_pods_once() -> None:
    """Discovery, the inventory and the migration suite each listed the labelled pods cluster-wide
    (service_accounts_of_labelled_pods, labelled_pod_owners, collect_migration): on a real cluster with thousands
    of pods the costliest list, three times (by hand in the lab: a counting wrapper around list_pods saw it). Discovery
    keeps what both suites read of them (labelled_pods) and they take it; a run narrowed by --namespace saw only
    part of the cluster, so the inventory still lists them all itself."""
    kube = _LabelledPodKube()
    found = discover(kube, [])
    facts = collect_inventory(kube, None, None, None, None,  # type: ignore[arg-type]
                              labelled_pods=found["labelled_pods"])
    migration = collect_migration(kube, None, None, labelled_pods=found["labelled_pods"])  # type: ignore[arg-type]
    assert kube.pod_lists == [(None, "azure.workload.identity/use=true"), (None, "aadpodidbinding")]
    assert [(p["namespace"], p["name"]) for p in migration.labelled_pods.items] == [("billing", "billing-1"),
                                                                                  ("web", "web-1")]
    assert facts.pod_owners == {
        "billing/billing-sa": [{"kind": "Pod", "name": "billing-1", "pods": ["billing-1"], "client_ids": [""]}],
        "web/default": [{"kind": "Pod", "name": "web-1", "pods": ["web-1"], "client_ids": [""]}]}
    narrowed = discover(kube, ["billing"])
    assert "labelled_pods" not in narrowed
    collect_inventory(kube, None, None, None, None,  # type: ignore[arg-type]
                      labelled_pods=narrowed.get("labelled_pods"))
    assert kube.pod_lists[2:] == [("billing", "azure.workload.identity/use=true"),
                                  (None, "azure.workload.identity/use=true")]


def test_whole_cluster_messages_count_namespaces_in_words() -> None:
    """'no ServiceAccount in namespace(s) kube-system': the count said in its number, as values.counted does."""
    assert "no ServiceAccount in namespace kube-system has" in nothing_found({"namespaces": ["kube-system"]})
    assert "lists none in namespaces finance, orders): no ServiceAccount in namespaces finance, orders has" in \
        nothing_found({"namespaces": ["finance", "orders"]}, configured=True)
    assert "no ServiceAccount in all namespaces has" in nothing_found({"namespaces": []})
    refused = {"namespaces": ["a", "b"], "error": {"status": 500, "reason": "InternalError", "message": "boom"}}
    assert nothing_found(refused).startswith("whole-cluster run: could not list the ServiceAccounts of namespaces a, b:")


@pytest.mark.parametrize(("value", "why"), [
    ("", "empty: the webhook injects no AZURE_CLIENT_ID"),
    ("  ", "only whitespace: the webhook injects it as AZURE_CLIENT_ID as it is"),
])
def test_a_blank_client_id_annotation_is_named_blank_not_a_pasted_name(value: str, why: str) -> None:
    """Found by hand in a whole-cluster run (kubectl annotate sa ... 'azure.workload.identity/client-id=' and
    '=  '): sa.client_id_annotation said "(the identity's client id, not its name)" of an empty value."""
    from test_checks import context_for

    from harness.checks.serviceaccount import sa_client_id_annotation

    ctx = context_for()
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = value
    outcome = sa_client_id_annotation(ctx)
    assert outcome.findings[0].code == "SA_CLIENT_ID_MALFORMED"
    assert f"client-id='{value}' is not a GUID ({why}" in outcome.message and "not its name" not in outcome.message


def test_a_whitespace_client_id_is_the_annotations_fault_not_an_env_override(
    run_world: Callable[..., tuple[Any, Any]],
) -> None:
    """Found by hand: the webhook injects a client-id annotation of spaces as AZURE_CLIENT_ID (it skips only
    empty values); the probe reads it as unset, and env.in_container failed with ENV_MISMATCH, advising a look
    for an entrypoint overriding AZURE_* variables. The container has what was admitted: the annotation is the
    one error and the chain after it is skipped because of it."""
    world = World.healthy()
    world.workloads[0].annotation_value = "  "
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    env = finance.check("env.in_container")
    assert env.status == "skip" and env.blocked_by == "sa.client_id_annotation" and not env.findings
    assert finance.check("exchange.succeeds").status == "skip"
    assert [f.code for c in finance.checks for f in c.findings if f.severity == "error"] == ["SA_CLIENT_ID_MALFORMED"]


def test_a_credential_of_another_service_account_that_exists_is_kept_not_called_a_typo(tmp_path: Path) -> None:
    """Found by hand in a whole-cluster run: one identity annotated on nsa/app (its credential made) and on nsb/app
    (none); nsb/app's fix said "then delete credential a-app (a typo of this subject?) unless a ServiceAccount
    nsa/app uses it", though the inventory had listed nsa/app. Listed, the credential is kept, in so many words;
    not listed (a run without the inventory, or no such ServiceAccount), the advice to delete stays."""
    from harness.analysis import analyse
    from harness.collect.run import Selection, collect_run
    from harness.config import parse_config
    from harness.redact import Redactor

    world = World.healthy()
    world.workloads[0].fic_subject = "system:serviceaccount:fianance:backend-sa"
    config = parse_config(world.config(tmp_path), base_dir=tmp_path)
    facts = collect_run(world.backend(), config, Selection(workloads=config.workloads, inventory=True), "run-1",
                        config.probe.resolved_image)
    assert facts.inventory is not None and "fianance/backend-sa" not in facts.inventory.all_service_accounts

    def last_fix_line() -> str:
        results = analyse(facts, config, config.workloads, "lab", Redactor(config.secrets()))
        (finding,) = results.workloads["finance/backend-sa"].check("federation.credential").findings
        assert finding.code == "FIC_SUBJECT_MISMATCH"
        return finding.fix_lines()[-1]

    assert last_fix_line().startswith("# then delete credential fic-backend-sa (a typo of this subject?)")
    facts.inventory.all_service_accounts.append("fianance/backend-sa")  # that ServiceAccount exists too
    assert last_fix_line() == ("# keep credential fic-backend-sa: it trusts ServiceAccount fianance/backend-sa, "
                               "which exists (two ServiceAccounts share this identity, not a typo)")


def test_a_leftover_service_account_without_a_credential_is_offered_its_annotation_removed(
    run_world: Callable[..., tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by hand in a whole-cluster run: stale/old-sa annotated with an identity that has no federated
    credential, nothing running under it. FIC_MISSING's one fix was to create a credential, trusting a
    ServiceAccount nothing uses; the other way out, removing the annotation, is now offered when the live pods
    were listed and none runs under it (with a pod running, the credential is the only fix). Not for a workload
    harness.yaml declares with its client id or access checks: someone means it to run (a clean-clone CI run
    caught the line in such a workload's fix, tests/harness/test_app_registration_lab.py)."""
    world = World.healthy()
    world.workloads[0].fic = False
    results, _ = run_world(world)
    (declared,) = results.workloads["finance/backend-sa"].check("federation.credential").findings
    assert declared.code == "FIC_MISSING" and not any("leftover" in line for line in declared.fix_lines())
    # as a whole-cluster run's discovery makes it: the ServiceAccount alone, no expectations
    monkeypatch.setattr(World, "_workload_config",
                        lambda self, w: {"namespace": w.namespace, "service_account": w.service_account})
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("workload.live_pods").message.startswith("no live pods run under")
    (finding,) = finance.check("federation.credential").findings
    assert finding.code == "FIC_MISSING" and finding.fix_lines()[0].startswith("az identity federated-credential")
    assert finding.fix_lines()[-1] == (
        "# or, if finance/backend-sa is a leftover (no pod runs under it now), remove its client-id annotation "
        "rather than trust it: kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id-")
    world.existing_pods.append({"metadata": {"namespace": "finance", "name": "backend-1",
                                             "labels": {"azure.workload.identity/use": "true"}},
                                "spec": {"serviceAccountName": "backend-sa",
                                         "containers": [{"name": "app", "image": "app:1"}]}})
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    assert "backend-1" in str(finance.check("workload.live_pods").evidence)
    (finding,) = finance.check("federation.credential").findings
    assert finding.code == "FIC_MISSING" and not any("leftover" in line for line in finding.fix_lines())


def test_the_narrowed_row_says_namespace_leaves_the_inventory_cluster_wide() -> None:
    """Found by hand: pytest suites --namespace dying2 (one ServiceAccount) failed on SA_WITHOUT_FIC naming 33
    ServiceAccounts of other namespaces, under a "Narrowed to | --namespace dying2" row that read as if the
    verdict covered that namespace only. The row now says the inventory is not narrowed, when it ran."""
    from harness.report.signoff import narrowed_text

    document: dict[str, Any] = {"narrowed": {"namespaces": ["dying2"]}, "inventory": {"service_accounts": []}}
    assert narrowed_text(document).endswith(
        "--namespace does not narrow the inventory: it cross-matches every namespace's ServiceAccounts with Azure, "
        "so its findings may name others")
    document["narrowed"] = {"workloads": ["finance/backend-sa"]}
    assert "inventory" not in narrowed_text(document)
    document["narrowed"], document["inventory"] = {"namespaces": ["dying2"]}, None
    assert "inventory" not in narrowed_text(document)
