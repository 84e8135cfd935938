"""Each AADSTS answer of the workload identity exchange, produced by a real misconfiguration made through ARM.

The way a person breaks it: as the scenario's Owner app (azure-identity ClientSecretCredential, then plain
``requests`` to the lab's ARM) each test creates its own user-assigned identity in myRg, a Key Vault
Secrets User assignment on finance-kv and a federated identity credential for a new ServiceAccount (made
with the official kubernetes client, annotated with the identity's clientId). The ServiceAccount token
comes from the TokenRequest API, and the exchange is driven twice: with azure-identity's
WorkloadIdentityCredential (unchanged) and with a plain POST to the token endpoint, so the HTTP status,
``error``, ``error_codes`` and the exact AADSTS text (with its trailer) can all be asserted.

Every object is fresh and uniquely named, so the tests are independent of each other and of the other
users of the session lab; the two lab-wide knobs used (FIC propagation delay, Entra's clock skew) are set
for one test only and restored in ``finally``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientSecretCredential, WorkloadIdentityCredential
from azure.keyvault.secrets import SecretClient
from kubernetes import client as k8s

from lab.azure.access_tokens import verify_access_token
from lab.azure.world import KEYVAULT_AUDIENCE

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
KV_SCOPE = "https://vault.azure.net/.default"
ARM_SCOPE = "https://management.azure.com/.default"
RG = "myRg"
VAULT = "finance-kv"
SECRET = "db-password"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User (built-in role id)
TENANT_NAME = "Contoso Lab"  # the healthy scenario's directory display name
IDENTITY_API, FIC_API, ROLE_API, VAULT_API = "2023-01-31", "2023-01-31", "2022-04-01", "2023-07-01"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
WIF_DOC = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
CHECK_FIC = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
TRAILER = (r" Trace ID: (?P<trace>[0-9a-f-]{36}) Correlation ID: (?P<correlation>[0-9a-f-]{36}) "
           r"Timestamp: (?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)")


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _lab_ca(lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-identity and the Key Vault SDK trust the lab CA; no ambient AZURE_* settings leak in."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.state_dir / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(lab.state_dir / "ca.pem"))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
                 "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


@cache
def _admin_credential(lab) -> ClientSecretCredential:
    admin = lab.credentials["admin"]
    return ClientSecretCredential(lab.tenant_id, admin["client_id"], admin["client_secret"],
                                  authority=lab.authority_host, disable_instance_discovery=True)


def arm(lab, method: str, path: str, api: str, body: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
    """One ARM call as the Owner app; asserts the status and returns the JSON body ({} when there is none)."""
    token = _admin_credential(lab).get_token(ARM_SCOPE).token
    response = requests.request(method, lab.endpoints["arm"] + path, params={"api-version": api}, json=body,
                                headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                verify=str(lab.state_dir / "ca.pem"))
    assert response.status_code in expect, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else {}


def vault(lab) -> dict[str, Any]:
    return arm(lab, "GET", f"/subscriptions/{lab.subscription_id}/resourceGroups/{RG}/providers/"
                           f"Microsoft.KeyVault/vaults/{VAULT}", VAULT_API)


def make_identity(lab) -> dict[str, Any]:
    name = f"misconfig-{uuid.uuid4().hex[:8]}"
    path = (f"/subscriptions/{lab.subscription_id}/resourceGroups/{RG}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
    return arm(lab, "PUT", path, IDENTITY_API, {"location": "eastus"}, expect=(201,))


def put_fic(lab, identity: dict[str, Any], name: str, issuer: str, subject: str,
            audience: str = EXCHANGE_AUDIENCE) -> dict[str, Any]:
    body = {"properties": {"issuer": issuer, "subject": subject, "audiences": [audience]}}
    return arm(lab, "PUT", f"{identity['id']}/federatedIdentityCredentials/{name}", FIC_API, body)


def grant_secrets_user(lab, identity: dict[str, Any]) -> str:
    """Key Vault Secrets User on finance-kv (scope = the vault's ARM id); returns the assignment's id."""
    path = f"{vault(lab)['id']}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    body = {"properties": {
        "roleDefinitionId": f"/subscriptions/{lab.subscription_id}/providers/Microsoft.Authorization/"
                            f"roleDefinitions/{SECRETS_USER}",
        "principalId": identity["properties"]["principalId"], "principalType": "ServicePrincipal"}}
    return arm(lab, "PUT", path, ROLE_API, body, expect=(201,))["id"]


def make_sa_and_token(kube_api, client_id: str, expiration: int = 3600) -> tuple[str, str, str]:
    """A new namespace with an annotated ServiceAccount, and a token for it from the TokenRequest API.

    Returns (namespace, service account, token)."""
    core = k8s.CoreV1Api(kube_api)
    namespace, name = f"wi-arm-{uuid.uuid4().hex[:8]}", "backend-sa"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(
        name=name, annotations={"azure.workload.identity/client-id": client_id})))
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[EXCHANGE_AUDIENCE], expiration_seconds=expiration))
    issued = core.create_namespaced_service_account_token(name, namespace, request)
    return namespace, name, issued.status.token


def exchange(lab, client_id: str, token: str, scope: str = KV_SCOPE,
             correlation_id: str | None = None) -> requests.Response:
    """The federated client-credentials request azure-identity makes, as a plain POST."""
    form = {"client_id": client_id, "grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": JWT_BEARER, "client_assertion": token}
    return requests.post(f"{lab.authority_host}{lab.tenant_id}/oauth2/v2.0/token", data=form, timeout=30,
                         headers={"client-request-id": correlation_id or str(uuid.uuid4())},
                         verify=str(lab.state_dir / "ca.pem"))


def assert_aadsts(response: requests.Response, code: int, status: int, error: str, text: str) -> None:
    """Status, error, error_codes, and a description that is exactly ``AADSTS<code>: <text>`` + trailer."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    prefix = f"AADSTS{code}: {text}"
    description = body["error_description"]
    assert description.startswith(prefix), f"\n{description}\n!= prefix\n{prefix}"
    trailer = re.fullmatch(TRAILER, description[len(prefix):])
    assert trailer, description
    assert trailer["trace"] == body["trace_id"]
    assert trailer["correlation"] == body["correlation_id"] == response.request.headers["client-request-id"]
    assert trailer["timestamp"] == body["timestamp"]


@dataclass
class Workload:
    """A ServiceAccount federated with a user-assigned identity, all made for one test."""

    lab: Any
    identity: dict[str, Any]  # ARM's representation of the identity
    namespace: str
    service_account: str
    token: str  # from the TokenRequest API, audience api://AzureADTokenExchange
    token_file: Path
    assignment_id: str | None = None

    @property
    def client_id(self) -> str:
        return self.identity["properties"]["clientId"]

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def federate(self, name: str = "fed-cred", **changes: str) -> dict[str, Any]:
        """PUT (create or update) a credential; ``changes`` override issuer/subject/audience."""
        fields = {"issuer": self.lab.issuer_url, "subject": self.subject, "audience": EXCHANGE_AUDIENCE,
                  **changes}
        return put_fic(self.lab, self.identity, name, **fields)

    def credential(self) -> WorkloadIdentityCredential:
        return WorkloadIdentityCredential(tenant_id=self.lab.tenant_id, client_id=self.client_id,
                                          token_file_path=str(self.token_file), authority=self.lab.authority_host)

    def exchange(self, scope: str = KV_SCOPE) -> requests.Response:
        return exchange(self.lab, self.client_id, self.token, scope)

    def sdk_failure(self, scope: str = KV_SCOPE) -> str:
        with pytest.raises(ClientAuthenticationError) as excinfo:
            self.credential().get_token(scope)
        return str(excinfo.value)

    def secret_client(self) -> SecretClient:
        return SecretClient(vault_url=vault(self.lab)["properties"]["vaultUri"], credential=self.credential(),
                            verify_challenge_resource=False)


def assert_refused(workload: Workload, code: int, status: int, error: str, text: str,
                   scope: str = KV_SCOPE) -> None:
    """The raw exchange answers exactly this, and azure-identity surfaces the same error and text."""
    assert_aadsts(workload.exchange(scope), code, status, error, text)
    message = workload.sdk_failure(scope)
    assert f"({error}) AADSTS{code}: {text}" in message, message


@pytest.fixture
def make_workload(lab, kube_api, tmp_path: Path) -> Iterator[Callable[..., Workload]]:
    """Factory: identity (ARM) + Key Vault Secrets User (ARM) + annotated SA and its token (kubernetes client)
    + a matching federated credential (ARM) unless ``federate=False``. Everything is removed afterwards."""
    made: list[Workload] = []

    def make(federate: bool = True, role: bool = True, expiration: int = 3600) -> Workload:
        identity = make_identity(lab)
        namespace, service_account, token = make_sa_and_token(kube_api, identity["properties"]["clientId"],
                                                              expiration)
        token_file = tmp_path / f"{namespace}-token"
        token_file.write_text(token)
        workload = Workload(lab, identity, namespace, service_account, token, token_file)
        made.append(workload)
        if role:
            workload.assignment_id = grant_secrets_user(lab, identity)
        if federate:
            workload.federate()
        return workload

    yield make
    core = k8s.CoreV1Api(kube_api)
    for workload in made:
        if workload.assignment_id:
            arm(lab, "DELETE", workload.assignment_id, ROLE_API, expect=(200, 204))
        arm(lab, "DELETE", workload.identity["id"], IDENTITY_API, expect=(200, 204))
        core.delete_namespace(workload.namespace)


@pytest.fixture
def lab_setting(lab_thread) -> Iterator[Callable[[Any, str, Any], None]]:
    """set(obj, attribute, value) on the lab's loop; every attribute is restored after the test."""
    saved: list[tuple[Any, str, Any]] = []

    def set_(obj: Any, attribute: str, value: Any) -> None:
        saved.append((obj, attribute, getattr(obj, attribute)))
        lab_thread.call(lambda: setattr(obj, attribute, value)).result(10)

    try:
        yield set_
    finally:
        for obj, attribute, value in reversed(saved):
            lab_thread.call(lambda o=obj, a=attribute, v=value: setattr(o, a, v)).result(10)


def secret_value(lab, lab_thread) -> str:
    return lab_thread.call(lambda: lab.azure.vaults[VAULT].secrets[SECRET][-1].value).result(10)


# ---------------------------------------------------------------------------------------------- healthy


def test_healthy_chain_reads_the_secret(lab, lab_thread, make_workload) -> None:
    workload = make_workload()

    response = workload.exchange()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    claims = verify_access_token(lab, body["access_token"], [KEYVAULT_AUDIENCE])
    assert claims["appid"] == workload.client_id and claims["appidacr"] == "2"
    assert claims["oid"] == workload.identity["properties"]["principalId"]
    assert claims["xms_mirid"] == workload.identity["id"]

    token = workload.credential().get_token(KV_SCOPE)
    assert verify_access_token(lab, token.token, [KEYVAULT_AUDIENCE])["appid"] == workload.client_id
    assert workload.secret_client().get_secret(SECRET).value == secret_value(lab, lab_thread)


# ---------------------------------------------------------------------------------------------- the FIC


def test_wrong_subject_is_700213(make_workload) -> None:
    workload = make_workload()
    workload.federate(subject=f"system:serviceaccount:default:{workload.service_account}")  # wrong namespace
    assert_refused(workload, 700213, 401, "invalid_client",
                   f"No matching federated identity record found for presented assertion subject "
                   f"'{workload.subject}'. Check your federated identity credential Subject, Audience and "
                   f"Issuer against the presented assertion. {WIF_DOC}")


def test_subject_differing_only_in_case_is_7002138(make_workload) -> None:
    workload = make_workload()
    workload.federate(subject=f"system:serviceaccount:{workload.namespace}:Backend-SA")
    assert_refused(workload, 7002138, 401, "invalid_client",
                   f"No matching federated identity record found for presented assertion subject "
                   f"'{workload.subject}'. The subject matches with case-insensitive comparison, but not with "
                   f"case-sensitive comparison. Check your federated identity credential Subject, Audience and "
                   f"Issuer against the presented assertion. See documentation at: {WIF_DOC}. See breaking "
                   f"change notification and remediation at: "
                   f"https://learn.microsoft.com/en-us/entra/identity-platform/reference-breaking-changes"
                   f"#august-2024.")


def test_issuer_without_trailing_slash_is_700211(lab, make_workload) -> None:
    workload = make_workload()
    assert lab.issuer_url.endswith("/")
    stored = workload.federate(issuer=lab.issuer_url.rstrip("/"))
    assert stored["properties"]["issuer"] == lab.issuer_url.rstrip("/")  # ARM accepts it as written
    assert_refused(workload, 700211, 401, "invalid_client",
                   f"No matching federated identity record found for presented assertion issuer "
                   f"'{lab.issuer_url}'. {CHECK_FIC} {WIF_DOC}")


def test_wrong_audience_is_700212(make_workload) -> None:
    workload = make_workload()
    workload.federate(audience=EXCHANGE_AUDIENCE + "X")
    assert_refused(workload, 700212, 401, "invalid_client",
                   f"No matching federated identity record found for presented assertion audience "
                   f"'{EXCHANGE_AUDIENCE}'. {CHECK_FIC} {WIF_DOC}")


def test_only_credential_deleted_is_70025(make_workload) -> None:
    workload = make_workload()
    assert workload.exchange().status_code == 200
    arm(workload.lab, "DELETE", f"{workload.identity['id']}/federatedIdentityCredentials/fed-cred", FIC_API,
        expect=(200,))
    listed = arm(workload.lab, "GET", f"{workload.identity['id']}/federatedIdentityCredentials", FIC_API)
    assert listed["value"] == []
    assert_refused(workload, 70025, 401, "invalid_client",
                   f"The client '{workload.client_id}'({workload.identity['name']}) has no configured "
                   f"federated identity credentials.")


def test_credential_deleted_with_another_for_the_same_cluster_left_is_700213(make_workload) -> None:
    """The identity still trusts this cluster's issuer (for another service account): the issuer step passes,
    so Entra answers with the subject it could not match."""
    workload = make_workload()
    workload.federate("fed-cred-other-sa", subject=f"system:serviceaccount:{workload.namespace}:other-sa")
    arm(workload.lab, "DELETE", f"{workload.identity['id']}/federatedIdentityCredentials/fed-cred", FIC_API,
        expect=(200,))
    assert_refused(workload, 700213, 401, "invalid_client",
                   f"No matching federated identity record found for presented assertion subject "
                   f"'{workload.subject}'. Check your federated identity credential Subject, Audience and "
                   f"Issuer against the presented assertion. {WIF_DOC}")


def test_credential_deleted_with_another_issuer_left_is_700211(lab, make_workload) -> None:
    """The only credential left trusts another issuer (GitHub Actions): no credential trusts the token's
    issuer, so Entra answers 700211 naming the presented issuer, not 70025 (the identity has credentials)."""
    workload = make_workload()
    workload.federate("github-deploy", issuer="https://token.actions.githubusercontent.com",
                      subject="repo:contoso/finance:environment:prod")
    arm(lab, "DELETE", f"{workload.identity['id']}/federatedIdentityCredentials/fed-cred", FIC_API,
        expect=(200,))
    assert_refused(workload, 700211, 401, "invalid_client",
                   f"No matching federated identity record found for presented assertion issuer "
                   f"'{lab.issuer_url}'. {CHECK_FIC} {WIF_DOC}")


def test_new_credential_fails_until_it_has_propagated(lab, make_workload, lab_setting) -> None:
    """A just-created credential is not yet known to Entra's replicas: the lab answers 700211 (no credential
    trusts the issuer yet, see lab.azure.federation.propagated) and then succeeds once the delay is over."""
    delay = 2.0
    lab_setting(lab.azure, "fic_propagation_seconds", delay)
    workload = make_workload(federate=False)
    created = time.monotonic()
    workload.federate()

    first = workload.exchange()
    assert time.monotonic() - created < delay, "the first attempt came too late to see the delay"
    assert_aadsts(first, 700211, 401, "invalid_client",
                  f"No matching federated identity record found for presented assertion issuer "
                  f"'{lab.issuer_url}'. {CHECK_FIC} {WIF_DOC}")

    deadline = created + delay + 10
    while (response := workload.exchange()).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert response.status_code == 200, response.text
    assert time.monotonic() - created >= delay
    assert workload.credential().get_token(KV_SCOPE).token


# ---------------------------------------------------------------------------------------------- the identity


def test_identity_deleted_is_700016(lab, make_workload) -> None:
    workload = make_workload()
    assert workload.exchange().status_code == 200
    arm(lab, "DELETE", workload.identity["id"], IDENTITY_API, expect=(200,))
    arm(lab, "GET", workload.identity["id"], IDENTITY_API, expect=(404,))
    assert_refused(workload, 700016, 400, "unauthorized_client",
                   f"Application with identifier '{workload.client_id}' was not found in the directory "
                   f"'{TENANT_NAME}'. This can happen if the application has not been installed by the "
                   f"administrator of the tenant or consented to by any user in the tenant. You may have sent "
                   f"your authentication request to the wrong tenant.")


def test_role_assignment_removed_exchange_works_but_key_vault_forbids(lab, lab_thread, make_workload) -> None:
    workload = make_workload()
    assert workload.secret_client().get_secret(SECRET).value == secret_value(lab, lab_thread)
    arm(lab, "DELETE", workload.assignment_id, ROLE_API, expect=(200,))
    workload.assignment_id = None

    response = workload.exchange()
    assert response.status_code == 200, response.text
    access_token = response.json()["access_token"]
    assert workload.credential().get_token(KV_SCOPE).token

    with pytest.raises(HttpResponseError) as excinfo:
        workload.secret_client().get_secret(SECRET)
    assert excinfo.value.status_code == 403
    error = excinfo.value.response.json()["error"]
    assert error["code"] == "Forbidden" and error["innererror"] == {"code": "ForbiddenByRbac"}
    assert error["message"].startswith("Caller is not authorized to perform action on resource.")
    assert "Assignment: (not found)" in error["message"]

    vault_uri = vault(lab)["properties"]["vaultUri"]
    raw = requests.get(f"{vault_uri}secrets/{SECRET}", params={"api-version": "7.5"}, timeout=30,
                       headers={"Authorization": f"Bearer {access_token}"}, verify=str(lab.state_dir / "ca.pem"))
    assert raw.status_code == 403
    assert raw.json()["error"]["innererror"] == {"code": "ForbiddenByRbac"}


# ---------------------------------------------------------------------------------------------- the request


def test_scope_without_default_suffix_is_1002012(make_workload) -> None:
    workload = make_workload()
    assert_refused(workload, 1002012, 400, "invalid_scope",
                   "The provided value for scope https://vault.azure.net is not valid. Client credential flows "
                   "must have a scope value with /.default suffixed to the resource identifier (application ID "
                   "URI).", scope="https://vault.azure.net")


def test_unknown_resource_is_500011(make_workload) -> None:
    workload = make_workload()  # vault.azure.com: the classic typo for vault.azure.net
    assert_refused(workload, 500011, 400, "invalid_resource",
                   f"The resource principal named https://vault.azure.com was not found in the tenant named "
                   f"{TENANT_NAME}. This can happen if the application has not been installed by the "
                   f"administrator of the tenant or consented to by any user in the tenant. You might have sent "
                   f"your authentication request to the wrong tenant.", scope="https://vault.azure.com/.default")


# ---------------------------------------------------------------------------------------------- time


def test_long_token_request_is_capped_to_one_day_so_it_is_accepted(make_workload) -> None:
    """The API server shortens expirationSeconds above AKS's one-day maximum (with a warning), so a
    TokenRequest cannot yield a token that breaks Entra's 1.01:00:00 lifetime limit."""
    workload = make_workload(expiration=2 * 86400)
    claims = jwt.decode(workload.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 86400
    assert workload.exchange().status_code == 200


# AADSTS70023 (lifetime over 25 h) cannot come from this cluster: every token it issues is capped at one day
# (above). tests/lab/test_entra_service.py produces it with a token from another issuer.


def test_clock_skew_is_700024(lab, make_workload, lab_setting) -> None:
    workload = make_workload()
    claims = jwt.decode(workload.token, options={"verify_signature": False})
    skew = 7200
    lab_setting(lab.entra_clock, "skew_seconds", skew)
    sent = time.time()
    response = workload.exchange()
    message = workload.sdk_failure()

    def precise(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")

    text = re.escape("Client assertion is not within its valid time range. Current time: ") + \
        r"(?P<now>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z)" + re.escape(
            f", assertion valid from {precise(claims['nbf'])}, expiry time of assertion {precise(claims['exp'])}. "
            "Review the documentation at https://learn.microsoft.com/entra/identity-platform/"
            "certificate-credentials .")
    assert response.status_code == 401, response.text
    body = response.json()
    assert (body["error"], body["error_codes"]) == ("invalid_client", [700024])
    match = re.fullmatch("AADSTS700024: " + text + TRAILER, body["error_description"])
    assert match, body["error_description"]
    entra_now = datetime.strptime(match["now"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    assert abs(entra_now - (sent + skew)) < 60  # Entra's clock, two hours ahead of the token's
    assert re.search(r"\(invalid_client\) AADSTS700024: " + text, message), message
