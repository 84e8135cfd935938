"""ARM's podIdentityProfile on a managed cluster, changed the way az sends it (aks-preview's pod-identity
commands: GET the cluster, change the lists, PUT the whole cluster back; ``az aks update --disable-pod-identity``:
``{"enabled": false}`` alone), and the ``migration`` scenario as ``python -m lab scenarios`` lists it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest
from test_arm import Arm, error_of

from lab.azure.world import ManagedCluster
from lab.scenarios import MIGRATION, SCENARIOS

AKS_API = "2024-09-01"


@pytest.fixture(scope="module")
def arm(lab, lab_thread) -> Arm:
    return Arm(lab, lab_thread)


def _cluster(arm: Arm, lab) -> str:
    rg = arm.group("podid")

    def make() -> None:
        kubelet = lab.azure.add_identity(f"podid-{uuid.uuid4().hex[:6]}", rg)
        cluster = ManagedCluster(name="podid-aks", subscription_id=lab.subscription_id, resource_group=rg,
                                 location="eastus", issuer_url=lab.issuer_url, kubelet_identity=kubelet,
                                 node_resource_group=f"MC_{rg}_podid-aks_eastus")
        lab.azure.clusters[cluster.resource_id.lower()] = cluster

    arm.run(make)
    return f"{arm.sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/podid-aks"


def _put(arm: Arm, path: str, cluster: dict[str, Any]) -> dict[str, Any]:
    response = arm.request("PUT", path, arm.admin(), api=AKS_API, json=cluster)
    assert response.status_code == 200, response.text
    return response.json()


def test_pod_identities_and_exceptions_added_deleted_and_the_add_on_disabled_as_az_does(arm: Arm, lab) -> None:
    path = _cluster(arm, lab)
    cluster = arm.request("GET", path, arm.admin(), api=AKS_API).json()
    identity = {"resourceId": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
                              "userAssignedIdentities/legacy", "clientId": str(uuid.uuid4()), "objectId": str(uuid.uuid4())}
    cluster["properties"]["podIdentityProfile"] = {
        "enabled": True,
        "userAssignedIdentities": [{"name": "legacy", "namespace": "apps", "bindingSelector": "legacy",
                                    "identity": identity}],
        "userAssignedIdentityExceptions": [{"name": "agent", "namespace": "apps", "podLabels": {"app": "agent"}}],
    }
    profile = _put(arm, path, cluster)["properties"]["podIdentityProfile"]
    assert profile["enabled"] is True
    assert profile["userAssignedIdentities"][0]["identity"] == identity
    assert profile["userAssignedIdentities"][0]["provisioningState"] == "Assigned"
    assert profile["userAssignedIdentityExceptions"] == [{"name": "agent", "namespace": "apps",
                                                          "podLabels": {"app": "agent"}}]

    # az aks pod-identity delete / exception delete: the same cluster back without the item
    cluster = arm.request("GET", path, arm.admin(), api=AKS_API).json()
    cluster["properties"]["podIdentityProfile"]["userAssignedIdentities"] = []
    cluster["properties"]["podIdentityProfile"]["userAssignedIdentityExceptions"] = []
    profile = _put(arm, path, cluster)["properties"]["podIdentityProfile"]
    assert profile["enabled"] is True and profile["userAssignedIdentities"] == []
    assert profile["userAssignedIdentityExceptions"] == []

    cluster["properties"]["podIdentityProfile"] = {"enabled": False}  # az aks update --disable-pod-identity
    profile = _put(arm, path, cluster)["properties"]["podIdentityProfile"]
    assert profile["enabled"] is False and profile["userAssignedIdentities"] == []
    assert arm.request("GET", path, arm.principal("Reader"), api=AKS_API).json()["properties"][
        "podIdentityProfile"]["enabled"] is False


def test_a_pod_identity_list_that_is_not_a_list_of_objects_is_refused(arm: Arm, lab) -> None:
    path = _cluster(arm, lab)
    body = {"location": "eastus", "properties": {"podIdentityProfile": {
        "enabled": True, "userAssignedIdentityExceptions": ["agent"]}}}
    response = arm.request("PUT", path, arm.admin(), api=AKS_API, json=body)
    assert response.status_code == 400
    code, message = error_of(response)
    assert code == "InvalidRequestContent" and "ManagedClusterPodIdentityException" in message
    assert "userAssignedIdentityExceptions" in message


def test_a_reader_may_not_change_the_profile(arm: Arm, lab) -> None:
    path = _cluster(arm, lab)
    body = {"location": "eastus", "properties": {"podIdentityProfile": {"enabled": False}}}
    assert arm.request("PUT", path, arm.principal("Reader"), api=AKS_API, json=body).status_code == 403


def test_the_migration_scenario_is_listed_and_defined_in_one_structure() -> None:
    listed = subprocess.run([sys.executable, "-m", "lab", "scenarios"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and any(line.startswith("migration ") for line in listed.stdout.splitlines())
    assert "migration" in SCENARIOS
    assert {i.namespace for i in MIGRATION.identities} >= {"finance", "payments"}
    assert any(i.legacy_pod for i in MIGRATION.identities) and any(e.through_arm for e in MIGRATION.exceptions)
