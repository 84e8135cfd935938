"""The store's own semantics, without any server."""

from __future__ import annotations

import pytest

from lab.kube import errors
from lab.kube.store import ResourceType, Store

PODS = ResourceType("", "v1", "pods", "Pod", namespaced=True)


def make_store() -> Store:
    store = Store()
    store.register(PODS)
    return store


def test_metadata_only_update_is_kept_and_bumps_the_resource_version() -> None:
    store = make_store()
    created = store.create(PODS, {"metadata": {"name": "p"}, "spec": {"containers": []}}, namespace="ns")
    created["metadata"]["labels"] = {"tier": "gold"}
    updated = store.replace(PODS, created)
    assert updated["metadata"]["labels"] == {"tier": "gold"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert store.get(PODS, "ns", "p")["metadata"]["labels"] == {"tier": "gold"}


def test_no_op_update_keeps_the_resource_version() -> None:
    store = make_store()
    created = store.create(PODS, {"metadata": {"name": "p"}, "spec": {"containers": []}}, namespace="ns")
    assert store.replace(PODS, created)["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_stale_resource_version_conflicts() -> None:
    store = make_store()
    created = store.create(PODS, {"metadata": {"name": "p"}, "spec": {}}, namespace="ns")
    store.replace(PODS, {**created, "spec": {"x": 1}})
    with pytest.raises(errors.ApiError) as raised:
        store.replace(PODS, {**created, "spec": {"x": 2}})
    assert raised.value.code == 409 and "the object has been modified" in raised.value.message


def test_label_and_field_selectors() -> None:
    store = make_store()
    store.create(PODS, {"metadata": {"name": "a", "labels": {"app": "web", "tier": "1"}}}, namespace="ns")
    store.create(PODS, {"metadata": {"name": "b", "labels": {"app": "db"}}}, namespace="ns")
    store.create(PODS, {"metadata": {"name": "c", "labels": {"app": "web"}}}, namespace="other")
    names = lambda items: sorted(i["metadata"]["name"] for i in items)  # noqa: E731
    assert names(store.list(PODS, None, "app=web")[0]) == ["a", "c"]
    assert names(store.list(PODS, "ns", "app in (web,db),!tier")[0]) == ["b"]
    assert names(store.list(PODS, None, "app!=web")[0]) == ["b"]
    assert names(store.list(PODS, None, None, "metadata.name=c")[0]) == ["c"]
    assert names(store.list(PODS, None, None, "metadata.namespace!=ns")[0]) == ["c"]


def test_generation_is_tracked_for_group_resources_only() -> None:
    store = make_store()
    deployments = ResourceType("apps", "v1", "deployments", "Deployment", namespaced=True)
    store.register(deployments)
    pod = store.create(PODS, {"metadata": {"name": "p", "generation": 7}, "spec": {}}, namespace="ns")
    assert "generation" not in pod["metadata"]
    deployment = store.create(deployments, {"metadata": {"name": "d"}, "spec": {"replicas": 1}}, namespace="ns")
    assert deployment["metadata"]["generation"] == 1
    deployment["spec"]["replicas"] = 2
    assert store.replace(deployments, deployment)["metadata"]["generation"] == 2


def test_an_owner_named_on_create_or_on_update_may_own_and_any_other_uid_does_not() -> None:
    store = make_store()
    owned = store.create(PODS, {"metadata": {"name": "a", "ownerReferences": [{"uid": "rs-1", "kind": "ReplicaSet"}]}},
                         namespace="ns")
    plain = store.create(PODS, {"metadata": {"name": "b"}}, namespace="ns")
    assert store.may_own("rs-1")
    assert not store.may_own(plain["metadata"]["uid"]) and not store.may_own("rs-2")
    plain["metadata"]["ownerReferences"] = [{"uid": "job-7", "kind": "Job"}, "not a reference"]
    store.replace(PODS, plain)
    assert store.may_own("job-7")
    owned["metadata"]["ownerReferences"] = []
    store.replace(PODS, owned)
    assert store.may_own("rs-1")  # never pruned: the collector then looks, and finds nothing
