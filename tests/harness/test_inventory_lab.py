"""The inventory suite against a running lab, each case made by hand as a person would -- kubectl for the
cluster, ARM and Graph calls with the lab's admin credentials for Azure -- then the inventory suite run with
the lab's harness.yaml. Each case gives its finding and no other inventory finding, and is undone afterwards:

- a federated credential for a ServiceAccount that does not exist, on a managed identity and on an app
  registration (FIC_ORPHANED);
- a ServiceAccount annotated with an identity that has no credential for it (SA_WITHOUT_FIC);
- a credential for this issuer's trailing-slash twin beside the working one (FIC_OLD_ISSUER);
- an identity at 19 federated credentials, where the lab refuses a 21st (FIC_LIMIT_NEAR);
- Owner on the identity a workload uses (ROLE_OVERLY_BROAD, naming the assignment to delete).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_identities_lab import EXCHANGE_AUDIENCE, SHARED_GROUP, Person, shared_subscription, vault_scope

from harness.report.schema import validate_run
from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
MSI_API = "2023-01-31"
AUTHORIZATION_API = "2022-04-01"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


@pytest.fixture(scope="module")
def person(running_lab: RunningLab) -> Person:
    return Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))


@pytest.fixture
def kubectl(running_lab: RunningLab, tmp_path: Path) -> Any:
    def run(*args: str) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(running_lab.state_dir / "kubeconfig"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path)},  # kubectl's discovery cache must not outlive this lab
        )
        if result.returncode != 0 and "No such file" in result.stderr:
            pytest.skip("kubectl is not installed")
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    return run


def run_inventory(
    lab: RunningLab, report_dir: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The inventory suite alone, with the lab's own harness.yaml."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/test_inventory.py",
            "--config",
            str(lab.harness_config),
            "--report-dir",
            str(report_dir),
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    document = json.loads((report_dir / "latest" / "run.json").read_text())
    validate_run(document)
    return result, document


def inventory_findings(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in document["findings"] if f["layer"] == "inventory"}


def identity(person: Person, name: str) -> dict[str, Any]:
    subscription = person.info["subscription_id"]
    return person.arm(
        "GET",
        f"/subscriptions/{subscription}/resourceGroups/myRg/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        MSI_API,
    )


def put_credential(person: Person, identity_id: str, name: str, issuer: str, subject: str) -> str:
    path = f"{identity_id}/federatedIdentityCredentials/{name}"
    person.arm(
        "PUT",
        path,
        MSI_API,
        {"properties": {"issuer": issuer, "subject": subject, "audiences": [EXCHANGE_AUDIENCE]}},
    )
    return path


def new_identity(person: Person, name: str) -> dict[str, Any]:
    return person.arm(
        "PUT",
        f"/subscriptions/{shared_subscription(person)}/resourceGroups/{SHARED_GROUP}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        MSI_API,
        {"location": "eastus"},
    )


@pytest.fixture
def undo(person: Person) -> Iterator[list[str]]:
    """ARM paths to DELETE when the test is done, last made first."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        api = AUTHORIZATION_API if "/roleAssignments/" in path else MSI_API
        person.arm("DELETE", path, api)


def test_the_healthy_lab_has_no_inventory_finding(running_lab: RunningLab, tmp_path: Path) -> None:
    result, document = run_inventory(running_lab, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert inventory_findings(document) == {}
    inventory = document["inventory"]
    assert [row["service_account"] for row in inventory["service_accounts"]] == [
        "finance/backend-sa",
        "orders/orders-sa",
    ]
    assert {row["state"] for row in inventory["service_accounts"]} == {"credential for this issuer"}
    assert {c["id"]: c["status"] for c in document["checks"]}["inventory.least_privilege"] == "pass"


def test_an_orphaned_credential(
    running_lab: RunningLab, person: Person, undo: list[str], tmp_path: Path
) -> None:
    backend = identity(person, "myWorkloadId")
    undo.append(
        put_credential(
            person,
            backend["id"],
            "retired-api",
            person.info["issuer_url"],
            "system:serviceaccount:finance:retired-api",
        )
    )
    result, document = run_inventory(running_lab, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]  # a warning: stale trust, nothing broken
    findings = inventory_findings(document)
    assert set(findings) == {"FIC_ORPHANED"} and findings["FIC_ORPHANED"]["severity"] == "warning"
    subscription = person.info["subscription_id"]
    assert (
        f"az identity federated-credential delete --name retired-api --identity-name myWorkloadId "
        f"--resource-group myRg --subscription {subscription} --yes"
    ) in findings["FIC_ORPHANED"]["remediation"]


def test_an_orphaned_credential_on_an_app_registration(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    app = person.graph("POST", "/applications", {"displayName": f"retired-{uuid.uuid4().hex[:6]}"})
    try:
        person.graph(
            "POST",
            f"/applications/{app['id']}/federatedIdentityCredentials",
            {
                "name": "kubernetes-federated-credential",
                "issuer": person.info["issuer_url"],
                "subject": "system:serviceaccount:retired:app-sa",
                "audiences": [EXCHANGE_AUDIENCE],
            },
        )
        result, document = run_inventory(running_lab, tmp_path)
    finally:
        person.graph("DELETE", f"/applications/{app['id']}")
    assert result.returncode == 0, result.stdout[-4000:]
    findings = inventory_findings(document)
    assert set(findings) == {"FIC_ORPHANED"}
    assert (
        f"az ad app federated-credential delete --id {app['appId']} --federated-credential-id "
        "kubernetes-federated-credential"
    ) in findings["FIC_ORPHANED"]["remediation"]


def test_a_service_account_without_a_credential(
    running_lab: RunningLab, person: Person, kubectl: Any, undo: list[str], tmp_path: Path
) -> None:
    name = f"nofic-{uuid.uuid4().hex[:6]}"
    created = new_identity(person, f"{name}-id")
    undo.append(created["id"])
    kubectl("create", "namespace", name)
    kubectl("create", "serviceaccount", "app-sa", "-n", name)
    kubectl(
        "annotate",
        "serviceaccount",
        "app-sa",
        "-n",
        name,
        f"azure.workload.identity/client-id={created['properties']['clientId']}",
    )
    try:
        result, document = run_inventory(running_lab, tmp_path)
    finally:
        kubectl("delete", "serviceaccount", "app-sa", "-n", name)
    assert result.returncode == 1
    findings = inventory_findings(document)
    assert set(findings) == {"SA_WITHOUT_FIC"} and findings["SA_WITHOUT_FIC"]["severity"] == "error"
    assert findings["SA_WITHOUT_FIC"]["remediation"] == [
        f"az identity federated-credential create --name {name}-app-sa --identity-name {name}-id "
        f"--resource-group {SHARED_GROUP} --subscription {shared_subscription(person)} "
        f"--issuer {person.info['issuer_url']} --subject system:serviceaccount:{name}:app-sa "
        "--audiences api://AzureADTokenExchange"
    ]


def test_a_trailing_slash_twin(
    running_lab: RunningLab, person: Person, undo: list[str], tmp_path: Path
) -> None:
    backend = identity(person, "myWorkloadId")
    issuer = person.info["issuer_url"]
    assert issuer.endswith("/")
    undo.append(
        put_credential(
            person,
            backend["id"],
            "backend-no-slash",
            issuer.rstrip("/"),
            "system:serviceaccount:finance:backend-sa",
        )
    )
    result, document = run_inventory(running_lab, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]  # the working credential is still there
    findings = inventory_findings(document)
    assert set(findings) == {"FIC_OLD_ISSUER"}
    twin = findings["FIC_OLD_ISSUER"]
    assert twin["severity"] == "warning" and "differs only by the trailing slash" in twin["message"]
    assert [line.split(" --identity-name")[0] for line in twin["remediation"]] == [
        "az identity federated-credential delete --name backend-no-slash"
    ]


def test_an_identity_at_19_credentials(
    running_lab: RunningLab, person: Person, kubectl: Any, undo: list[str], tmp_path: Path
) -> None:
    name = f"busy-{uuid.uuid4().hex[:6]}"
    created = new_identity(person, f"{name}-id")
    undo.append(created["id"])
    put_credential(
        person, created["id"], "own", person.info["issuer_url"], f"system:serviceaccount:{name}:app-sa"
    )
    for n in range(18):  # other clusters' workloads, one after the other as ARM wants them
        put_credential(
            person,
            created["id"],
            f"cluster-{n}",
            f"https://cluster-{n}.example/",
            "system:serviceaccount:shared:app-sa",
        )
    kubectl("create", "namespace", name)
    kubectl("create", "serviceaccount", "app-sa", "-n", name)
    kubectl(
        "annotate",
        "serviceaccount",
        "app-sa",
        "-n",
        name,
        f"azure.workload.identity/client-id={created['properties']['clientId']}",
    )
    try:
        result, document = run_inventory(running_lab, tmp_path)
        put_credential(
            person, created["id"], "twentieth", "https://cluster-19.example/", "system:serviceaccount:x:y"
        )
        token = person.credential.get_token("https://management.azure.com/.default").token
        refused = requests.put(
            f"{person.info['endpoints']['arm']}{created['id']}/federatedIdentityCredentials/extra",
            params={"api-version": MSI_API},
            verify=person.ca,
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
            json={
                "properties": {
                    "issuer": "https://cluster-20.example/",
                    "subject": "x:z",
                    "audiences": [EXCHANGE_AUDIENCE],
                }
            },
        )
    finally:
        kubectl("delete", "serviceaccount", "app-sa", "-n", name)
    assert result.returncode == 0, result.stdout[-4000:]
    findings = inventory_findings(document)
    assert set(findings) == {"FIC_LIMIT_NEAR"} and findings["FIC_LIMIT_NEAR"]["severity"] == "warning"
    assert f"managed identity {name}-id" in findings["FIC_LIMIT_NEAR"]["message"]
    assert "19 of 20" in findings["FIC_LIMIT_NEAR"]["message"]
    assert refused.status_code == 400, refused.text  # the lab keeps the limit of 20


def test_owner_on_a_workload_identity(
    running_lab: RunningLab, person: Person, undo: list[str], tmp_path: Path
) -> None:
    backend = identity(person, "myWorkloadId")
    assignment = person.grant(vault_scope(person), OWNER, backend["properties"]["principalId"])
    undo.append(assignment)
    result, document = run_inventory(running_lab, tmp_path)
    assert result.returncode == 1
    findings = inventory_findings(document)
    assert set(findings) == {"ROLE_OVERLY_BROAD"}
    broad = findings["ROLE_OVERLY_BROAD"]
    assert (
        broad["severity"] == "error"
        and "Owner on" in broad["message"]
        and "finance/backend-sa" in broad["message"]
    )
    assert f"az role assignment delete --ids {assignment}" in broad["remediation"]
    row = next(r for r in document["inventory"]["role_assignments"] if r["assignment_id"] == assignment)
    assert row["role"] == "Owner" and row["broad"]
