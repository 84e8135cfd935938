"""The lab's Entra inside the whole session lab (healthy scenario), with the real cluster issuer.

Only read-mostly checks here; everything that bends the world runs on its own mini lab in
test_entra_service.py. The one fault used (issuer unreachable) is restored in ``finally``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, WorkloadIdentityCredential

from lab.azure.access_tokens import verify_access_token
from lab.azure.arm_errors import ARM_ALLOWED_AUDIENCES
from lab.azure.world import KEYVAULT_AUDIENCE

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


@pytest.fixture(autouse=True)
def _ca(lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.state_dir / "ca.pem"))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
                 "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


def projected_token(lab, namespace: str, service_account: str, **overrides) -> str:
    """What the kubelet writes into a workload pod: signed by the cluster issuer's current key."""
    now = int(time.time())
    claims = {"aud": [EXCHANGE_AUDIENCE], "exp": now + 3600, "iat": now, "iss": lab.issuer_url,
              "jti": str(uuid.uuid4()), "nbf": now, "sub": f"system:serviceaccount:{namespace}:{service_account}",
              "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account,
                                                                           "uid": str(uuid.uuid4())}}}
    claims.update(overrides)
    return lab.kube.issuer_keys.current.sign(claims, headers={"typ": None})


def identity(lab, name: str):
    return next(i for i in lab.azure.identities.values() if i.display_name == name)


def test_discovery_by_tenant_id_and_domain(lab) -> None:
    host = lab.endpoints["entra"]
    for tenant in (lab.tenant_id, "contosolab.onmicrosoft.com"):
        doc = requests.get(f"{host}/{tenant}/v2.0/.well-known/openid-configuration", timeout=10).json()
        assert doc["token_endpoint"] == f"{host}/{lab.tenant_id}/oauth2/v2.0/token"
        assert doc["issuer"] == f"{host}/{lab.tenant_id}/v2.0"
    keys = requests.get(f"{host}/{lab.tenant_id}/discovery/v2.0/keys", timeout=10).json()["keys"]
    assert lab.entra_keys.current.kid in [k["kid"] for k in keys]


def test_harness_app_gets_an_arm_token(lab) -> None:
    harness = lab.credentials["harness"]
    credential = ClientSecretCredential(lab.tenant_id, harness["client_id"], harness["client_secret"],
                                        authority=lab.authority_host, disable_instance_discovery=True)
    token = credential.get_token("https://management.azure.com/.default")
    claims = verify_access_token(lab, token.token, ARM_ALLOWED_AUDIENCES)
    assert claims["appid"] == harness["client_id"] and claims["appidacr"] == "1"


def test_admin_app_through_msal(lab) -> None:
    admin = lab.credentials["admin"]
    app = msal.ConfidentialClientApplication(admin["client_id"], authority=f"{lab.endpoints['entra']}/{lab.tenant_id}",
                                             client_credential=admin["client_secret"], instance_discovery=False)
    result = app.acquire_token_for_client(["https://management.azure.com//.default"])
    assert verify_access_token(lab, result["access_token"], ARM_ALLOWED_AUDIENCES)["aud"] == "https://management.azure.com/"


def test_workload_exchange_against_the_cluster_issuer(lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = identity(lab, "myWorkloadId")
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(projected_token(lab, "finance", "backend-sa"))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", lab.authority_host)
    monkeypatch.setenv("AZURE_TENANT_ID", lab.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", backend.client_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    token = WorkloadIdentityCredential().get_token("https://vault.azure.net/.default")
    claims = verify_access_token(lab, token.token, [KEYVAULT_AUDIENCE])
    assert claims["appid"] == backend.client_id and claims["appidacr"] == "2"
    assert claims["xms_mirid"] == backend.resource_id


def test_wrong_service_account_is_700213(lab, tmp_path: Path) -> None:
    backend = identity(lab, "myWorkloadId")
    token_file = tmp_path / "token"
    token_file.write_text(projected_token(lab, "orders", "orders-sa"))
    credential = WorkloadIdentityCredential(tenant_id=lab.tenant_id, client_id=backend.client_id,
                                            token_file_path=str(token_file), authority=lab.authority_host)
    with pytest.raises(ClientAuthenticationError) as excinfo:
        credential.get_token("https://vault.azure.net/.default")
    assert "(invalid_client) AADSTS700213:" in str(excinfo.value)
    assert "'system:serviceaccount:orders:orders-sa'" in str(excinfo.value)


def test_issuer_unreachable_fault_is_50166(lab) -> None:
    backend = identity(lab, "myWorkloadId")
    form = {"client_id": backend.client_id, "grant_type": "client_credentials",
            "scope": "https://vault.azure.net/.default",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": projected_token(lab, "finance", "backend-sa")}
    url = f"{lab.endpoints['entra']}/{lab.tenant_id}/oauth2/v2.0/token"
    lab.faults.issuer_unreachable = True
    try:
        resp = requests.post(url, data=form, timeout=15)
    finally:
        lab.faults.issuer_unreachable = False
    assert resp.status_code == 400
    assert resp.json()["error_codes"] == [50166]
    assert requests.post(url, data=form, timeout=15).status_code == 200
