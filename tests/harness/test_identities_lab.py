"""End to end: identities where teams really keep them, made through the public APIs as a person would (Graph and
ARM calls with the lab's admin credentials from lab.json, the official Kubernetes client with its kubeconfig), then
verified with ``pytest suites --config`` against the running lab.

- an Entra app registration (Graph: application, service principal, federated credential) and a user-assigned
  identity in the second subscription (ARM) both pass, each reading a Key Vault secret it was granted;
- once the harness loses Reader on that subscription, the same workload still passes and the harness says it
  cannot see the identity (IDENTITY_NOT_VISIBLE, a warning).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from azure.identity import ClientSecretCredential
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from test_e2e_lab import checks_of, run_suites

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
SHARED_GROUP = "shared-identities-rg"


@dataclass
class Person:
    """Someone with the lab's admin credentials, using nothing but lab.json and public endpoints."""

    info: dict[str, Any]
    ca: str

    def __post_init__(self) -> None:
        admin = self.info["admin"]
        self.credential = ClientSecretCredential(self.info["tenant_id"], admin["client_id"], admin["client_secret"],
                                                 authority=self.info["authority_host"], disable_instance_discovery=True,
                                                 connection_verify=self.ca)

    def _call(self, method: str, url: str, scope: str, body: Any = None, **params: str) -> Any:
        token = self.credential.get_token(scope).token
        response = requests.request(method, url, json=body, params=params or None, timeout=30, verify=self.ca,
                                    headers={"Authorization": f"Bearer {token}"})
        assert response.ok, f"{method} {url}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def graph(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"{self.info['endpoints']['graph']}/v1.0{path}",
                          "https://graph.microsoft.com/.default", body)

    def arm(self, method: str, path: str, api: str, body: Any = None, **params: str) -> Any:
        return self._call(method, self.info["endpoints"]["arm"] + path, "https://management.azure.com/.default", body,
                          **{"api-version": api, **params})

    def grant(self, scope: str, role: str, principal_id: str) -> str:
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        subscription = scope.split("/")[2]
        body = {"properties": {"roleDefinitionId": f"/subscriptions/{subscription}/providers/"
                                                   f"Microsoft.Authorization/roleDefinitions/{role}",
                               "principalId": principal_id, "principalType": "ServicePrincipal"}}
        return self.arm("PUT", path, "2022-04-01", body)["id"]



@pytest.fixture(scope="module")
def person(running_lab: RunningLab) -> Person:
    return Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))


def service_account(running_lab: RunningLab, namespace: str, name: str, client_id: str) -> None:
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig")))
    api.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    api.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(
        name=name, annotations={"azure.workload.identity/client-id": client_id})))


def vault_scope(person: Person) -> str:
    vaults = person.arm("GET", f"/subscriptions/{person.info['subscription_id']}/resources", "2021-04-01",
                        **{"$filter": "resourceType eq 'Microsoft.KeyVault/vaults' and name eq 'finance-kv'"})
    return vaults["value"][0]["id"]


def workload_entry(person: Person, namespace: str) -> dict[str, Any]:
    return {"namespace": namespace, "service_account": "app-sa", "access": [
        {"kind": "keyvault_secret", "vault_url": person.info["vaults"]["finance-kv"], "name": "finance-kv",
         "secret": "db-password", "expect": "allow"}]}


def app_registration_workload(running_lab: RunningLab, person: Person) -> dict[str, Any]:
    """What ``azwi serviceaccount create`` does: an app, its service principal, a federated credential."""
    namespace = f"app-{uuid.uuid4().hex[:6]}"
    app = person.graph("POST", "/applications", {"displayName": f"{namespace}-workload"})
    principal = person.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    person.graph("POST", f"/applications/{app['id']}/federatedIdentityCredentials", {
        "name": "kubernetes-federated-credential", "issuer": person.info["issuer_url"],
        "subject": f"system:serviceaccount:{namespace}:app-sa", "audiences": [EXCHANGE_AUDIENCE]})
    person.grant(vault_scope(person), SECRETS_USER, principal["id"])
    service_account(running_lab, namespace, "app-sa", app["appId"])
    return workload_entry(person, namespace)


def shared_subscription(person: Person) -> str:
    return next(s["id"] for s in person.info["subscriptions"] if s["id"] != person.info["subscription_id"])


def shared_identity_workload(running_lab: RunningLab, person: Person) -> dict[str, Any]:
    namespace = f"shared-{uuid.uuid4().hex[:6]}"
    identity = person.arm("PUT", f"/subscriptions/{shared_subscription(person)}/resourceGroups/{SHARED_GROUP}/providers/"
                                 f"Microsoft.ManagedIdentity/userAssignedIdentities/{namespace}-id", "2023-01-31",
                          {"location": "eastus"})
    person.arm("PUT", f"{identity['id']}/federatedIdentityCredentials/{namespace}", "2023-01-31", {"properties": {
        "issuer": person.info["issuer_url"], "subject": f"system:serviceaccount:{namespace}:app-sa",
        "audiences": [EXCHANGE_AUDIENCE]}})
    person.grant(vault_scope(person), SECRETS_USER, identity["properties"]["principalId"])
    service_account(running_lab, namespace, "app-sa", identity["properties"]["clientId"])
    return workload_entry(person, namespace)


def config_with(running_lab: RunningLab, tmp_path: Path, workloads: list[dict[str, Any]]) -> str:
    data = yaml.safe_load(running_lab.harness_config.read_text())
    data["workloads"] = workloads
    path = tmp_path / "harness.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_an_app_registration_and_an_identity_in_another_subscription_both_pass(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    app = app_registration_workload(running_lab, person)
    shared = shared_identity_workload(running_lab, person)
    result, document = run_suites(tmp_path / "reports", "--config", config_with(running_lab, tmp_path, [app, shared]))
    assert result.returncode == 0, result.stdout[-4000:]
    assert document["verdict"] == "pass"

    app_checks = checks_of(document, f"{app['namespace']}/app-sa")
    assert app_checks["identity.matches"]["status"] == "pass"
    assert app_checks["identity.matches"]["evidence"]["kind"] == "application"
    assert app_checks["federation.credential"]["status"] == "pass"
    assert app_checks["access.keyvault:finance-kv/db-password"]["evidence"]["outcome"] == "allow"

    shared_checks = checks_of(document, f"{shared['namespace']}/app-sa")
    identity = shared_checks["identity.matches"]["evidence"]
    assert shared_checks["identity.matches"]["status"] == "pass" and identity["resolved_by"] == "resource_graph"
    assert identity["resource_id"].lower().startswith(f"/subscriptions/{shared_subscription(person)}")
    assert shared_checks["federation.credential"]["status"] == "pass"
    assert shared_checks["access.keyvault:finance-kv/db-password"]["evidence"]["outcome"] == "allow"


def test_an_identity_the_harness_may_not_read_is_a_warning_and_the_workload_passes(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    shared = shared_identity_workload(running_lab, person)
    subscription = f"/subscriptions/{shared_subscription(person)}"
    harness = person.graph("GET", f"/servicePrincipals(appId='{person.info['harness']['client_id']}')")
    assignments = person.arm("GET", f"{subscription}/providers/Microsoft.Authorization/roleAssignments", "2022-04-01",
                             **{"$filter": f"principalId eq '{harness['id']}'"})["value"]
    readers = [a["id"] for a in assignments if a["properties"]["scope"].lower() == subscription.lower()]
    assert readers, assignments
    for assignment in readers:
        person.arm("DELETE", assignment, "2022-04-01")
    try:
        result, document = run_suites(tmp_path / "reports", "--config", config_with(running_lab, tmp_path, [shared]))
    finally:
        person.grant(subscription, READER, harness["id"])
    assert result.returncode == 0, result.stdout[-4000:]
    assert document["verdict"] == "pass"
    checks = checks_of(document, f"{shared['namespace']}/app-sa")
    assert checks["identity.matches"]["status"] == "warn" and checks["exchange.succeeds"]["status"] == "pass"
    workload = next(w for w in document["workloads"] if w["id"] == f"{shared['namespace']}/app-sa")
    visible = next(f for f in workload["findings"] if f["code"] == "IDENTITY_NOT_VISIBLE")
    assert visible["severity"] == "warning" and visible["remediation"]


def test_an_identity_deleted_and_created_again_is_annotated_with_its_new_client_id(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    """``az identity delete`` then ``az identity create`` under the same name (a common "start over"): the identity
    has a new client id, the ServiceAccount and harness.yaml keep the old one, which Entra no longer knows
    (AADSTS700016). The printed fix names the new client id, not the old one again (a no-op); the exchange's
    AADSTS700016 is that break seen again: skipped because identity.matches failed, not a second finding."""
    namespace = f"again-{uuid.uuid4().hex[:6]}"
    path = (f"/subscriptions/{person.info['subscription_id']}/resourceGroups/myRg/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{namespace}-id")
    old = person.arm("PUT", path, "2023-01-31", {"location": "eastus"})
    person.arm("PUT", f"{old['id']}/federatedIdentityCredentials/{namespace}", "2023-01-31", {"properties": {
        "issuer": person.info["issuer_url"], "subject": f"system:serviceaccount:{namespace}:app-sa",
        "audiences": [EXCHANGE_AUDIENCE]}})
    service_account(running_lab, namespace, "app-sa", old["properties"]["clientId"])
    person.arm("DELETE", path, "2023-01-31")
    new = person.arm("PUT", path, "2023-01-31", {"location": "eastus"})["properties"]["clientId"]
    assert new != old["properties"]["clientId"]
    entry = {"namespace": namespace, "service_account": "app-sa", "client_id": old["properties"]["clientId"],
             "identity_resource_id": old["id"]}
    result, document = run_suites(tmp_path / "reports", "--config", config_with(running_lab, tmp_path, [entry]))
    assert result.returncode == 1 and document["verdict"] == "fail", result.stdout[-4000:]
    workload = next(w for w in document["workloads"] if w["id"] == f"{namespace}/app-sa")
    by_code = {f["code"]: f for f in workload["findings"]}
    assert [f["code"] for f in workload["findings"] if f["severity"] == "error"] == ["IDENTITY_CLIENT_ID_MISMATCH"]
    exchange = checks_of(document, f"{namespace}/app-sa")["exchange.succeeds"]
    assert exchange["status"] == "skip" and exchange["message"].startswith("skipped because identity.matches failed")
    annotate = f"kubectl annotate serviceaccount -n {namespace} app-sa azure.workload.identity/client-id="
    lines = by_code["IDENTITY_CLIENT_ID_MISMATCH"]["remediation"]
    assert f"{annotate}{new} --overwrite" in lines, lines
    assert not any(line.startswith(f"{annotate}{old['properties']['clientId']}") for line in lines), lines

    # the person annotates the new client id, as printed; harness.yaml still names the old one. The annotation is
    # now right: no fix may point it back at the identity that is gone, and harness.yaml's client_id is the edit
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig")))
    api.patch_namespaced_service_account("app-sa", namespace, {"metadata": {"annotations": {
        "azure.workload.identity/client-id": new}}})
    result, document = run_suites(tmp_path / "again", "--config", config_with(running_lab, tmp_path, [entry]))
    assert result.returncode == 1, result.stdout[-4000:]
    workload = next(w for w in document["workloads"] if w["id"] == f"{namespace}/app-sa")
    by_code = {f["code"]: f for f in workload["findings"]}
    assert {"SA_CLIENT_ID_MISMATCH", "IDENTITY_CLIENT_ID_MISMATCH", "FIC_MISSING"} <= set(by_code), sorted(by_code)
    for code in ("SA_CLIENT_ID_MISMATCH", "IDENTITY_CLIENT_ID_MISMATCH"):
        lines = by_code[code]["remediation"]
        assert not any(line.startswith("kubectl annotate") for line in lines), (code, lines)
        assert any(line.startswith(f"# set client_id: {new} for {namespace}/app-sa in harness.yaml") for line in lines)


def test_a_credential_with_a_mistyped_audience_is_updated_by_every_printed_fix(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    """``az identity federated-credential update --audiences api://AzureADTokenExchang`` (one letter short): the
    federation check, the failed exchange (AADSTS700212) and the inventory each print a fix, and each updates that
    credential: ARM refuses a second credential with its issuer and subject (400 "Issuer and subject combination
    already exists for this Managed Identity."), so no printed line may create one."""
    namespace = f"aud-{uuid.uuid4().hex[:6]}"
    identity = person.arm("PUT", f"/subscriptions/{person.info['subscription_id']}/resourceGroups/myRg/providers/"
                                 f"Microsoft.ManagedIdentity/userAssignedIdentities/{namespace}-id", "2023-01-31",
                          {"location": "eastus"})
    subject = f"system:serviceaccount:{namespace}:app-sa"
    person.arm("PUT", f"{identity['id']}/federatedIdentityCredentials/{namespace}", "2023-01-31", {"properties": {
        "issuer": person.info["issuer_url"], "subject": subject, "audiences": ["api://AzureADTokenExchang"]}})
    service_account(running_lab, namespace, "app-sa", identity["properties"]["clientId"])
    entry = {"namespace": namespace, "service_account": "app-sa", "client_id": identity["properties"]["clientId"],
             "identity_resource_id": identity["id"]}
    result, document = run_suites(tmp_path / "reports", "--config", config_with(running_lab, tmp_path, [entry]))
    assert result.returncode == 1, result.stdout[-4000:]
    checks = checks_of(document, f"{namespace}/app-sa")
    assert checks["federation.credential"]["status"] == "fail" and checks["exchange.succeeds"]["status"] == "fail"
    printed = [line.strip().removeprefix("fix: ") for line in result.stdout.splitlines()
               if "federated-credential" in line and subject in line]
    assert len(printed) >= 3, result.stdout[-4000:]  # the federation check's, the exchange's, the inventory's
    assert all(line.startswith(f"az identity federated-credential update --name {namespace} ") for line in printed), \
        printed


def test_a_deleted_identity_is_made_again_not_shown(
    running_lab: RunningLab, person: Person, tmp_path: Path
) -> None:
    """``az identity delete`` of the identity harness.yaml names: ARM answers 404 for it. The run says deleted or
    a typo (none of the group's identities is named or numbered like it) and prints the identity made again with
    what it needs (tests/harness/test_arm_lifecycle_lab.py pastes it), not az identity show, which would only fail
    again."""
    namespace = f"gone-{uuid.uuid4().hex[:6]}"
    group = "myRg"
    identity = person.arm("PUT", f"/subscriptions/{person.info['subscription_id']}/resourceGroups/{group}/providers/"
                                 f"Microsoft.ManagedIdentity/userAssignedIdentities/{namespace}-id", "2023-01-31",
                          {"location": "eastus"})
    service_account(running_lab, namespace, "app-sa", identity["properties"]["clientId"])
    person.arm("DELETE", identity["id"], "2023-01-31")
    entry = {"namespace": namespace, "service_account": "app-sa", "client_id": identity["properties"]["clientId"],
             "identity_resource_id": identity["id"]}
    result, document = run_suites(tmp_path / "reports", "--config", config_with(running_lab, tmp_path, [entry]))
    assert result.returncode == 1, result.stdout[-4000:]
    workload = next(w for w in document["workloads"] if w["id"] == f"{namespace}/app-sa")
    # one error, the deletion's; the exchange Entra refused (AADSTS700016) is skipped because of it
    (found,) = [f for f in workload["findings"] if f["severity"] == "error"]
    assert found["code"] == "IDENTITY_NOT_FOUND"
    exchange = checks_of(document, f"{namespace}/app-sa")["exchange.succeeds"]
    assert exchange["status"] == "skip" and exchange["message"].startswith("skipped because identity.matches failed")
    where = f"--resource-group {group} --subscription {person.info['subscription_id']}"
    assert f"identity {namespace}-id is not in resource group {group} (the group is there): deleted" in found["message"]
    assert f"CLIENT_ID=$(az identity create --name {namespace}-id {where} --query clientId -o tsv)" in \
        found["remediation"]
    assert not any(line.startswith("az identity show") for line in found["remediation"])
