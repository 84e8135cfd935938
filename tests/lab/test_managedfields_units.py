"""lab.kube.managedfields without a server: FieldsV1 encoding, several conflicts in one message, applies through
/status, and a list item another manager still owns a field of surviving its applier's removal."""

from __future__ import annotations

import pytest

from lab.kube import managedfields
from lab.kube.store import ResourceType

DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment", True, subresources=("status", "scale"))


def deployment(**spec: object) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def test_fieldsv1_marks_a_path_owned_with_its_children_by_a_dot_and_decodes_back() -> None:
    paths = {("f:spec", "f:containers", 'k:{"name":"app"}'), ("f:spec", "f:containers", 'k:{"name":"app"}', "f:name"),
             ("f:metadata", "f:finalizers", 'v:"a"')}
    encoded = managedfields.encode(paths)
    assert encoded == {"f:metadata": {"f:finalizers": {'v:"a"': {}}},
                       "f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:name": {}}}}}
    assert managedfields.decode(encoded) == paths
    assert managedfields.path_string(("f:spec", "f:containers", 'k:{"name":"app"}', "f:image")) == \
        '.spec.containers[name="app"].image'


def test_several_conflicts_are_listed_by_manager() -> None:
    live = managedfields.apply(DEPLOYMENTS, None, deployment(replicas=1, paused=False), "one", False, "T1")
    live = managedfields.apply(DEPLOYMENTS, live, deployment(minReadySeconds=5), "two", False, "T2")
    with pytest.raises(managedfields.ApplyConflict) as refused:
        managedfields.apply(DEPLOYMENTS, live, deployment(replicas=2, paused=True, minReadySeconds=6), "three",
                            False, "T3")
    assert refused.value.code == 409 and refused.value.message == (
        'Apply failed with 3 conflicts: conflicts with "one":\n- .spec.paused\n- .spec.replicas\n'
        'conflicts with "two":\n- .spec.minReadySeconds')
    assert [cause["field"] for cause in refused.value.details["causes"]] == [
        ".spec.paused", ".spec.replicas", ".spec.minReadySeconds"]


def test_an_apply_through_status_owns_only_status() -> None:
    live = managedfields.apply(DEPLOYMENTS, None, deployment(replicas=1), "ci", False, "T1")
    applied = managedfields.apply(DEPLOYMENTS, live, {**deployment(replicas=9), "status": {"replicas": 1}},
                                  "reporter", False, "T2", subresource="status")
    assert applied["spec"]["replicas"] == 1 and applied["status"] == {"replicas": 1}
    [entry] = [e for e in applied["metadata"]["managedFields"] if e["manager"] == "reporter"]
    assert (entry["subresource"], entry["fieldsV1"]) == ("status", {"f:status": {"f:replicas": {}}})


def test_an_item_another_manager_owns_a_field_of_stays_when_its_applier_drops_it() -> None:
    container = {"name": "app", "image": "a"}
    live = managedfields.apply(DEPLOYMENTS, None, deployment(template={"spec": {"containers": [container]}}),
                               "ci", False, "T1")
    live = managedfields.apply(DEPLOYMENTS, live, deployment(
        template={"spec": {"containers": [{"name": "app", "imagePullPolicy": "Always"}]}}), "ops", False, "T2")
    dropped = managedfields.apply(DEPLOYMENTS, live, deployment(replicas=1), "ci", False, "T3")
    assert dropped["spec"]["template"]["spec"]["containers"] == [{"name": "app", "imagePullPolicy": "Always"}]
