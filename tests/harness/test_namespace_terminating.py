"""A workload's namespace being deleted (kubectl delete namespace, held in Terminating by what still has
finalizers): its ServiceAccount is gone and nothing new may be created in it, so the finding names the namespace's
state and what holds it, never the ServiceAccount to create (which the API server would refuse)."""

from __future__ import annotations

import time
from typing import Any

from harness.checks.context import WorkloadContext
from harness.checks.serviceaccount import sa_exists
from harness.collect.kube import collect_service_account
from harness.config import WorkloadConfig
from harness.facts import ClusterFacts, IdentityFacts, ServiceAccountFacts, WorkloadFacts

CONDITIONS = [
    {"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted",
     "message": "All content successfully deleted, may be waiting on finalization"},
    {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
     "message": "Some resources are remaining: configmaps. has 1 resource instances, widgets.example.com has 2 "
                "resource instances"},
    {"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
     "message": "Some content in the namespace has finalizers remaining: example.com/cleanup in 3 resource instances"},
]


class Terminating:
    def service_account(self, namespace: str, name: str) -> None:
        return None

    def namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "deletionTimestamp": "2026-12-05T08:00:00Z"},
                "status": {"phase": "Terminating", "conditions": CONDITIONS}}

    def list_service_accounts(self, namespace: str | None) -> list[dict[str, Any]]:
        return []

    def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        return []


def test_a_namespace_being_deleted_is_named_with_what_holds_it_not_a_service_account_to_create() -> None:
    sa = collect_service_account(Terminating(), "finance", "backend-sa")  # type: ignore[arg-type]
    assert sa.namespace_found is True and sa.namespace_deleting is not None
    assert sa.namespace_deleting["since"] == "2026-12-05T08:00:00Z"
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(), sa, IdentityFacts())
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    (finding,) = sa_exists(ctx).findings
    assert finding.code == "NAMESPACE_TERMINATING"
    assert finding.message.startswith("namespace finance is being deleted (Terminating since 2026-12-05T08:00:00Z)")
    assert finding.message.endswith("example.com/cleanup in 3 resource instances")
    lines = finding.fix_lines()
    assert lines[:3] == [
        "kubectl describe namespace finance   # what remains and what holds it",
        "kubectl get configmaps -n finance -o custom-columns=NAME:.metadata.name,FINALIZERS:.metadata.finalizers",
        "kubectl get widgets.example.com -n finance -o custom-columns=NAME:.metadata.name,"
        "FINALIZERS:.metadata.finalizers",
    ]
    assert lines[3].startswith("# a person decides")
    assert not any(line.startswith("kubectl create") for line in lines)


def test_a_namespace_not_being_deleted_is_not_named_so() -> None:
    active = ServiceAccountFacts("finance", "backend-sa", namespace_found=True)
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(), active, IdentityFacts())
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    assert [f.code for f in sa_exists(ctx).findings] == ["SA_NOT_FOUND"]
