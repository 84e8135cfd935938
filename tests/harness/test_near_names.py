"""A troubleshooter's typo in ``--workload NS/SA`` (or harness.yaml): the ServiceAccount or namespace that does not
exist is named with the existing one it is close to, before the commands that would create it."""

from __future__ import annotations

import time
from typing import Any

from harness.checks.context import WorkloadContext
from harness.checks.serviceaccount import sa_exists
from harness.collect.kube import collect_service_account
from harness.collect.kube_api import KubeError
from harness.config import WorkloadConfig
from harness.facts import ClusterFacts, IdentityFacts, KubeFailure, ServiceAccountFacts, WorkloadFacts


class Cluster:
    """Namespaces and their ServiceAccounts; ``refuse`` lists what the harness may not list."""

    def __init__(self, accounts: dict[str, list[str]], refuse: tuple[str, ...] = ()) -> None:
        self.accounts, self.refuse = accounts, refuse

    def _refused(self, what: str) -> None:
        if what in self.refuse:
            raise KubeError(KubeFailure(403, "Forbidden", f"{what} is forbidden"))

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if name in self.accounts.get(namespace, []) else None

    def namespace(self, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if name in self.accounts else None

    def list_service_accounts(self, namespace: str | None) -> list[dict[str, Any]]:
        self._refused("serviceaccounts")
        return [{"metadata": {"name": name}} for name in self.accounts.get(namespace or "", [])]

    def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        self._refused(plural)
        assert (group, version, plural) == ("", "v1", "namespaces")
        return [{"metadata": {"name": name}} for name in self.accounts]


CLUSTER = {"finance": ["default", "backend-sa"], "orders": ["default", "orders-sa"], "kube-system": ["default"]}


def near(namespace: str, name: str, refuse: tuple[str, ...] = ()) -> list[str]:
    return collect_service_account(Cluster(CLUSTER, refuse), namespace, name).near_names  # type: ignore[arg-type]


def test_a_typo_in_the_name_or_the_namespace_finds_the_existing_service_account() -> None:
    assert near("finance", "backend") == ["finance/backend-sa"]
    assert near("fnance", "backend-sa") == ["finance/backend-sa"]
    assert near("order", "orders-sa") == ["orders/orders-sa"]
    assert near("fnance", "backend") == ["finance/backend-sa"]  # both wrong, both close
    assert near("finance", "zzz") == [] and near("nowhere", "zzz") == []
    assert near("finance", "backend", refuse=("serviceaccounts",)) == []  # refused: nothing suggested
    assert near("fnance", "backend-sa", refuse=("namespaces",)) == []
    assert collect_service_account(Cluster(CLUSTER), "finance", "backend-sa").near_names == []  # type: ignore[arg-type]


def _check(sa: ServiceAccountFacts) -> Any:
    facts = WorkloadFacts(f"{sa.namespace}/{sa.name}", sa.namespace, sa.name, time.time(), sa, IdentityFacts())
    ctx = WorkloadContext(facts, WorkloadConfig(namespace=sa.namespace, service_account=sa.name),
                          ClusterFacts(time.time()), None, time.time())
    (finding,) = sa_exists(ctx).findings
    return finding


def test_the_finding_names_the_service_account_meant_before_creating_the_one_asked_for() -> None:
    finding = _check(ServiceAccountFacts("fnance", "backend-sa", namespace_found=False,
                                         near_names=["finance/backend-sa"]))
    assert finding.code == "NAMESPACE_NOT_FOUND"
    assert finding.message == "namespace fnance not found; did you mean finance/backend-sa?"
    assert finding.fix_lines()[:2] == [
        "# finance/backend-sa exists: if that is the workload, correct --workload (or harness.yaml's entry) and run "
        "again; if fnance/backend-sa is to be made:",
        "kubectl create namespace fnance",
    ]
    finding = _check(ServiceAccountFacts("finance", "backend", namespace_found=True, near_names=["finance/backend-sa"]))
    assert finding.code == "SA_NOT_FOUND"
    assert finding.message == "ServiceAccount finance/backend not found; did you mean finance/backend-sa?"
    assert finding.fix_lines()[1] == "kubectl create serviceaccount -n finance backend"
    finding = _check(ServiceAccountFacts("finance", "zzz", namespace_found=True))
    assert finding.message == "ServiceAccount finance/zzz not found"
    assert finding.fix_lines()[0] == "kubectl create serviceaccount -n finance zzz"
