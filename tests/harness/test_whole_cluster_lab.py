"""Whole-cluster runs against a running lab: harness.yaml without workloads verifies every ServiceAccount with
the client-id annotation or the use label -- including one a person created (kubectl, an identity and its
federated credential through ARM) after the lab started -- probe pods and all; --namespace narrows the run;
under xdist (-n 2) the workers verify the same list."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_e2e_lab import checks_of, run_suites
from test_identities_lab import EXCHANGE_AUDIENCE, SHARED_GROUP, Person, shared_subscription

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
MSI_API = "2023-01-31"


@pytest.fixture(scope="module")
def late_namespace(running_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A namespace, a managed identity federated with its ServiceAccount, and that ServiceAccount annotated,
    all made after the lab started."""
    person = Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))
    namespace = f"late-{uuid.uuid4().hex[:6]}"
    identity = person.arm(
        "PUT",
        f"/subscriptions/{shared_subscription(person)}/resourceGroups/{SHARED_GROUP}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{namespace}-id",
        MSI_API,
        {"location": "eastus"},
    )
    person.arm(
        "PUT",
        f"{identity['id']}/federatedIdentityCredentials/{namespace}",
        MSI_API,
        {
            "properties": {
                "issuer": person.info["issuer_url"],
                "subject": f"system:serviceaccount:{namespace}:app-sa",
                "audiences": [EXCHANGE_AUDIENCE],
            }
        },
    )
    home = tmp_path_factory.mktemp("kubectl-home")
    for args in (
        ["create", "namespace", namespace],
        ["create", "serviceaccount", "app-sa", "-n", namespace],
        [
            "annotate",
            "serviceaccount",
            "app-sa",
            "-n",
            namespace,
            f"azure.workload.identity/client-id={identity['properties']['clientId']}",
        ],
    ):
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(running_lab.state_dir / "kubeconfig"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(home)},
        )
        if done.returncode != 0 and "No such file" in done.stderr:
            pytest.skip("kubectl is not installed")
        assert done.returncode == 0, done.stderr
    return namespace


def config_without_workloads(lab: RunningLab, tmp_path: Path) -> str:
    data = yaml.safe_load(lab.harness_config.read_text())
    data.pop("workloads")
    path = tmp_path / "harness.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def workload_ids(document: dict[str, Any]) -> list[str]:
    return [w["id"] for w in document["workloads"]]


def test_a_config_without_workloads_verifies_every_annotated_service_account(
    running_lab: RunningLab, late_namespace: str, tmp_path: Path
) -> None:
    config = config_without_workloads(running_lab, tmp_path)
    result, document = run_suites(tmp_path / "reports", "--config", config)
    assert result.returncode == 0, result.stdout[-4000:]
    assert document["verdict"] == "pass"
    assert workload_ids(document) == ["finance/backend-sa", f"{late_namespace}/app-sa", "orders/orders-sa"]
    late = checks_of(document, f"{late_namespace}/app-sa")
    assert late["pod.mutated"]["status"] == "pass" and late["exchange.succeeds"]["status"] == "pass"
    assert late["identity.matches"]["evidence"]["resolved_by"] == "resource_graph"
    assert not any(c.startswith("access.") for c in late)  # harness.yaml names none for it
    assert f"{late_namespace}/app-sa" in [
        r["service_account"] for r in document["inventory"]["service_accounts"]
    ]


def test_namespace_narrows_a_whole_cluster_run(
    running_lab: RunningLab, late_namespace: str, tmp_path: Path
) -> None:
    config = config_without_workloads(running_lab, tmp_path)
    result, document = run_suites(tmp_path / "reports", "--config", config, "--namespace", late_namespace)
    assert result.returncode == 0, result.stdout[-4000:]
    assert workload_ids(document) == [f"{late_namespace}/app-sa"]
    assert "finance/backend-sa" not in result.stdout


def test_xdist_workers_verify_the_same_service_accounts(
    running_lab: RunningLab, late_namespace: str, tmp_path: Path
) -> None:
    config = config_without_workloads(running_lab, tmp_path)
    result, document = run_suites(tmp_path / "reports", "--config", config, "-n", "2")
    assert result.returncode == 0, result.stdout[-4000:]
    assert workload_ids(document) == ["finance/backend-sa", f"{late_namespace}/app-sa", "orders/orders-sa"]
    assert all(w["verdict"] == "pass" and len(w["checks"]) == 16 for w in document["workloads"])


def test_a_labelled_deployment_under_an_unannotated_service_account_fails_and_its_fix_repairs_it(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    """By hand: a Deployment whose pod template carries azure.workload.identity/use: "true", under a ServiceAccount
    with neither the annotation nor the label, and an identity whose federated credential already trusts it. The
    pod is mutated without AZURE_CLIENT_ID; the whole-cluster run passed without verifying it. Now it is verified
    (the ServiceAccounts labelled pods run as are listed too), fails with SA_NOT_ANNOTATED, and the printed fix
    annotates that identity's client id; pasted, the next run passes."""
    person = Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))
    namespace = f"asked-{uuid.uuid4().hex[:6]}"
    identity = person.arm(
        "PUT", f"/subscriptions/{shared_subscription(person)}/resourceGroups/{SHARED_GROUP}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{namespace}-id", MSI_API, {"location": "eastus"})
    person.arm("PUT", f"{identity['id']}/federatedIdentityCredentials/{namespace}", MSI_API, {"properties": {
        "issuer": person.info["issuer_url"], "subject": f"system:serviceaccount:{namespace}:app-sa",
        "audiences": [EXCHANGE_AUDIENCE]}})
    home = tmp_path / "home"
    home.mkdir()

    def shell(line: str, stdin: str | None = None) -> None:
        env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(running_lab.state_dir / "kubeconfig")}
        done = subprocess.run(["bash", "-c", line], input=stdin, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr

    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": namespace},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}}, "template": {
                      "metadata": {"labels": {"app": "app", "azure.workload.identity/use": "true"}},
                      "spec": {"serviceAccountName": "app-sa", "containers": [
                          {"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]}}}}
    shell(f"kubectl create namespace {namespace} && kubectl create serviceaccount app-sa -n {namespace}")
    try:
        shell("kubectl apply -f -", yaml.safe_dump(deployment))
        config = config_without_workloads(running_lab, tmp_path)
        result, document = run_suites(tmp_path / "broken", "--config", config, "--namespace", namespace)
        assert result.returncode == 1, result.stdout[-4000:]
        assert workload_ids(document) == [f"{namespace}/app-sa"]
        workload = document["workloads"][0]
        assert workload["findings"][0]["code"] == "SA_NOT_ANNOTATED"
        fix = workload["findings"][0]["remediation"]
        assert fix[0] == (f"kubectl annotate serviceaccount -n {namespace} app-sa "
                          f"azure.workload.identity/client-id={identity['properties']['clientId']} --overwrite")
        for line in fix:
            shell(line)
        result, document = run_suites(tmp_path / "fixed", "--config", config, "--namespace", namespace)
        assert result.returncode == 0, result.stdout[-4000:]
    finally:
        shell(f"kubectl delete namespace {namespace} --wait=false")
