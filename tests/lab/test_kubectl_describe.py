"""kubectl describe against the lab: the describers read pods, their events, ServiceAccounts and Deployments as
a troubleshooter sees them on AKS."""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]
IDLE_IMAGE = "myacr.azurecr.io/finance/backend:1.0"  # a scenario image the kubelet keeps Running


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"describe-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def field(text: str, name: str) -> str:
    """The value of a describer's `Name:   value` line."""
    match = re.search(rf"^\s*{re.escape(name)}:[ \t]*(.*)$", text, re.MULTILINE)
    assert match, f"no {name}: in\n{text}"
    return match.group(1).strip()


def test_describe_a_mutated_workload_pod_and_its_service_account(kubectl: Kubectl) -> None:
    pods = json.loads(kubectl("get", "pods", "-n", "finance", "-l", "azure.workload.identity/use=true",
                              "-o", "json").stdout)["items"]
    assert pods, "the healthy world runs finance's backend"
    name = pods[0]["metadata"]["name"]
    text = kubectl("describe", "pod", name, "-n", "finance").stdout
    assert field(text, "Service Account") == "backend-sa"
    assert field(text, "Status") == "Running"
    client_id = pods[0]["spec"]["containers"][0]["env"]
    expected = {e["name"]: e.get("value") for e in client_id}["AZURE_CLIENT_ID"]
    assert field(text, "AZURE_CLIENT_ID") == expected  # the webhook's env, listed under Environment
    assert "azure-identity-token" in text and "TokenExpirationSeconds:" in text  # the projected token volume
    assert re.search(r"Normal\s+Scheduled\s+.*default-scheduler\s+Successfully assigned finance/", text)

    account = kubectl("describe", "sa", "backend-sa", "-n", "finance").stdout
    assert "azure.workload.identity/client-id: " + expected in account


def test_describe_a_deployment_made_by_kubectl_create(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "deployment", "web", f"--image={IDLE_IMAGE}", "-n", namespace)
    deadline = time.monotonic() + 30
    while "1 available" not in (text := kubectl("describe", "deployment", "web", "-n", namespace).stdout):
        assert time.monotonic() < deadline, text
        time.sleep(0.3)
    # the protobuf body's empty strategy is defaulted field by field, as SetDefaults_Deployment does
    assert field(text, "StrategyType") == "RollingUpdate"
    assert field(text, "RollingUpdateStrategy") == "25% max unavailable, 25% max surge"
    assert re.search(r"NewReplicaSet:\s+web-\w+ \(1/1 replicas created\)", text)
    assert re.search(r"Normal\s+ScalingReplicaSet\s+.*deployment-controller\s+Scaled up replica set web-", text)
