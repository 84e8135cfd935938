"""The harness's own token requests (azure-identity, through azure-core's pipeline) follow Entra's retry policy:
a Retry-After within the call's bound is waited out and counted; one reaching past it ends the retries at once.
azure-core alone honoured ``Retry-After: 120`` three times, six minutes, before the run could say anything."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, ServiceResponseError
from azure.core.pipeline.transport import HttpTransport
from azure.core.pipeline.transport._requests_basic import RequestsTransportResponse
from azure.identity import ClientSecretCredential

from harness.collect.retrying import RetryLedger, azure_core_retry_policy_class

TENANT = "68df44b8-736c-4a3a-9bec-5db0488e314f"
CLIENT = "2fd41996-ade4-4db0-9ba0-5c1a1c7b2d10"
AUTHORITY = "https://login.microsoftonline.com"


class ScriptedEntra(HttpTransport):
    """Answers 429 with ``retry_after`` to the first ``throttled`` requests, then as Entra does; sleeps nothing,
    only writes down how long it was asked to."""

    def __init__(self, throttled: int, retry_after: str) -> None:
        self.throttled, self.retry_after = throttled, retry_after
        self.slept: list[float] = []
        self.requests = 0

    def __enter__(self) -> ScriptedEntra:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def sleep(self, duration: float) -> None:
        self.slept.append(duration)

    def send(self, request: Any, **kwargs: Any) -> RequestsTransportResponse:
        self.requests += 1
        answer = requests.Response()
        answer.url = request.url
        answer.headers["Content-Type"] = "application/json"
        if self.requests <= self.throttled:
            answer.status_code = 429
            answer.headers["Retry-After"] = self.retry_after
            answer._content = b'{"error": "temporarily_unavailable"}'
        elif request.url.endswith("/openid-configuration"):
            answer.status_code = 200
            base = f"{AUTHORITY}/{TENANT}"
            answer._content = json.dumps({
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "issuer": f"{base}/v2.0",
            }).encode()
        else:
            answer.status_code = 200
            answer._content = json.dumps({"access_token": "not-a-real-token", "token_type": "Bearer",
                                          "expires_in": 3600}).encode()
        return RequestsTransportResponse(request, answer)


def _credential(transport: ScriptedEntra, ledger: RetryLedger) -> ClientSecretCredential:
    return ClientSecretCredential(TENANT, CLIENT, "not-a-secret", authority=AUTHORITY, transport=transport,
                                  retry_policy_class=azure_core_retry_policy_class("entra", ledger), retry_total=10)


def test_a_retry_after_past_the_bound_ends_the_retries_at_once() -> None:
    entra, ledger = ScriptedEntra(throttled=100, retry_after="120"), RetryLedger()
    with pytest.raises(ClientAuthenticationError):
        _credential(entra, ledger).get_token("https://management.azure.com/.default")
    assert entra.slept == [] and entra.requests == 1
    assert ledger.counts() == {}


def test_a_retry_after_within_the_bound_is_waited_out_and_counted() -> None:
    entra, ledger = ScriptedEntra(throttled=2, retry_after="3"), RetryLedger()
    token = _credential(entra, ledger).get_token("https://management.azure.com/.default")
    assert token.token == "not-a-real-token"
    assert entra.slept == [3.0, 3.0]
    assert ledger.summary() == {"entra": {"retries": 2, "answers": {"HTTP 429": 2}}}


class FlakyTokenEndpoint(ScriptedEntra):
    """The tenant's discovery answered; the token POST first answered with each of ``answers`` in turn (an HTTP
    status without Retry-After, or "lost": the request went out and the connection closed without an answer)."""

    def __init__(self, answers: list[int | str]) -> None:
        super().__init__(throttled=0, retry_after="0")
        self.answers = list(answers)
        self.posts = 0

    def send(self, request: Any, **kwargs: Any) -> RequestsTransportResponse:
        if request.method == "POST":
            self.posts += 1
        if request.method == "POST" and self.answers:
            answer = self.answers.pop(0)
            if answer == "lost":
                raise ServiceResponseError("Connection aborted.: RemoteDisconnected")
            failed = requests.Response()
            failed.url, failed.status_code = request.url, int(answer)
            failed.headers["Content-Type"] = "application/json"
            failed._content = b'{"error": "temporarily_unavailable"}'
            return RequestsTransportResponse(request, failed)
        return super().send(request, **kwargs)


def test_the_token_request_is_retried_as_often_as_the_entra_policy_allows() -> None:
    """Under lab ctl fault entra --rate-429 0.1 --rate-503 0.1 a healthy world's run once said SERVICE_UNAVAILABLE
    (inventory.identities_listed): azure-core's own counts (retry_status=3) ended a token request at its fourth
    429/503 in a row, and it never retries a POST's 502 or lost answer. The 'entra' policy's are those of every
    other service: up to MAX_RETRIES within the bound, each counted."""
    entra, ledger = FlakyTokenEndpoint([503, 429, 503, 502, "lost", 503, 504, 500]), RetryLedger()
    token = _credential(entra, ledger).get_token("https://management.azure.com/.default")
    assert token.token == "not-a-real-token"
    assert entra.answers == [] and entra.posts == 9
    assert ledger.summary() == {"entra": {"retries": 8, "answers": {
        "HTTP 503": 3, "HTTP 429": 1, "HTTP 502": 1, "HTTP 504": 1, "HTTP 500": 1, "no answer": 1}}}


def test_a_permanent_answer_to_the_token_request_is_not_retried() -> None:
    entra, ledger = FlakyTokenEndpoint([400, 503]), RetryLedger()
    with pytest.raises(ClientAuthenticationError):
        _credential(entra, ledger).get_token("https://management.azure.com/.default")
    assert entra.posts == 1 and ledger.counts() == {}


def test_the_harness_credential_is_built_with_the_bounded_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.collect.arm_api import make_credential
    from harness.config import AzureConfig, CredentialConfig

    monkeypatch.setenv("WI_TEST_SECRET", "not-a-secret")
    azure = AzureConfig(tenant_id=TENANT, subscription_id=TENANT, resource_group="rg", cluster_name="aks",
                        credential=CredentialConfig(client_id=CLIENT, client_secret_env="WI_TEST_SECRET"))
    credential = make_credential(azure)
    policies = [type(p).__name__ for p in credential._client._pipeline._impl_policies]
    assert "BoundedAzureCoreRetry" in policies


def _workload_identity_job(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The environment the Workload ID webhook gives the harness's Job; harness.yaml names no client secret."""
    from harness.config import AzureConfig

    (tmp_path / "token").write_text("e30.e30.sig")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", f"{AUTHORITY}/")
    for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    return AzureConfig(tenant_id=TENANT, subscription_id=TENANT, resource_group="rg", cluster_name="aks")


def test_the_in_cluster_job_logs_in_through_workload_id_with_the_bounded_policy(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DefaultAzureCredential cannot take the policy (its IMDS credential passes one of its own), so the Job's
    login honoured Retry-After: 120 in full; the Job now logs in with WorkloadIdentityCredential itself."""
    from azure.identity import WorkloadIdentityCredential

    from harness.collect.arm_api import make_credential

    credential = make_credential(_workload_identity_job(tmp_path, monkeypatch))
    assert isinstance(credential, WorkloadIdentityCredential)
    assert credential._client._client_id == CLIENT and credential._client._tenant_id == TENANT
    policies = [type(p).__name__ for p in credential._client._pipeline._impl_policies]
    assert "BoundedAzureCoreRetry" in policies


def test_the_job_s_workload_id_login_stops_at_a_retry_after_past_the_bound(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The credential make_credential builds for the Job, its transport Entra answering 429 Retry-After: 120."""
    from azure.identity import WorkloadIdentityCredential

    import harness.collect.arm_api as arm_api

    entra, ledger = ScriptedEntra(throttled=100, retry_after="120"), RetryLedger()
    azure = _workload_identity_job(tmp_path, monkeypatch)

    def scripted(**kwargs: Any) -> WorkloadIdentityCredential:
        kwargs["retry_policy_class"] = azure_core_retry_policy_class("entra", ledger)
        return WorkloadIdentityCredential(transport=entra, **kwargs)

    monkeypatch.setattr("azure.identity.WorkloadIdentityCredential", scripted)
    with pytest.raises(ClientAuthenticationError):
        arm_api.make_credential(azure).get_token("https://management.azure.com/.default")
    assert entra.slept == [] and entra.requests == 1


def test_a_client_secret_in_the_environment_or_no_tenant_keeps_default_azure_credential(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DefaultAzureCredential's EnvironmentCredential answers before its WorkloadIdentityCredential when a secret
    is in the environment; without AZURE_TENANT_ID the Job's login is not Workload ID's as the webhook sets it up."""
    from azure.identity import DefaultAzureCredential

    from harness.collect.arm_api import make_credential

    azure = _workload_identity_job(tmp_path, monkeypatch)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-a-secret")
    assert isinstance(make_credential(azure), DefaultAzureCredential)
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    monkeypatch.delenv("AZURE_TENANT_ID")
    assert isinstance(make_credential(azure), DefaultAzureCredential)


def test_the_job_s_login_throttled_by_entra_is_a_service_unavailable_not_its_credential(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """By hand in the lab (lab ctl fault entra --rate-429 1 --retry-after 120, the harness logging in as the Job
    does): the run now ended in 2 s, but each check said HARNESS_CREDENTIAL_FAILED with a federated-credential
    fix: WorkloadIdentityCredential's AadClient words the 429 as Entra's body, "Microsoft Entra ID error
    '(temporarily_unavailable) AADSTS90055: ...'", not MSAL's "HTTP Error: 429". It is SERVICE_UNAVAILABLE, as for
    a client secret."""
    from azure.identity import WorkloadIdentityCredential

    from harness.checks.common import arm_failure_finding
    from harness.collect.arm_api import RequestsArm
    from harness.commands import command

    class ThrottlingEntra(ScriptedEntra):
        def send(self, request: Any, **kwargs: Any) -> RequestsTransportResponse:
            answer = super().send(request, **kwargs)
            answer.internal_response._content = json.dumps({
                "error": "temporarily_unavailable",
                "error_description": "AADSTS90055: There are too many incoming requests. Please try again later.",
                "error_codes": [90055]}).encode()
            return answer

    azure = _workload_identity_job(tmp_path, monkeypatch)
    entra = ThrottlingEntra(throttled=100, retry_after="120")
    credential = WorkloadIdentityCredential(transport=entra, authority=AUTHORITY, retry_total=10,
                                            retry_policy_class=azure_core_retry_policy_class("entra", RetryLedger()))
    fetched = RequestsArm(azure, credential)("/subscriptions/s/resourceGroups/rg")
    assert "(temporarily_unavailable) AADSTS90055" in str(fetched.error)
    finding = arm_failure_finding(fetched, "cluster", "the managed cluster could not be read", "AKS_NOT_FOUND",
                                  command("az"), azure)
    assert finding.code == "SERVICE_UNAVAILABLE", finding.message
    assert ("answered the harness's own token request with (temporarily_unavailable) AADSTS90055 through "
            "azure-identity's retries") in finding.message
