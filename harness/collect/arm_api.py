"""The ONE Azure REST seam: ``ArmGet(path_or_url, body=None) -> Fetched`` -- a GET, or a POST of ``body`` as
JSON (Resource Graph queries). Aimed at ARM, or at Microsoft Graph (:func:`graph_client`).

:class:`RequestsArm` is the real one: ``requests`` plus an azure-identity credential
(``ClientSecretCredential`` for the configured app registration, else ``DefaultAzureCredential``), aimed at
the configured cloud's authority and trusting the configured CA. Transient answers (429 with ``Retry-After``,
5xx, resets) are retried by urllib3 under the service's policy (collect/retrying.py). Tests pass a function
that answers from a dict.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

from harness.collect.caller import identity_claims
from harness.collect.retrying import MAX_RETRIES, azure_core_retry_policy_class, mount_retries
from harness.config import AzureConfig
from harness.facts import CREDENTIAL_ERROR, NETWORK_ERROR, SLOW_ERROR, Fetched
from harness.names import UNVERIFIED_CERTIFICATE


class ArmGet(Protocol):
    def __call__(self, path_or_url: str, body: dict[str, Any] | None = None) -> Fetched: ...


TIMEOUT = 30.0
_ENTRA_TRAILER_RE = re.compile(r"\s*Trace ID:.*$", re.DOTALL)
_MAX_REASON = 160
# What an exception's text says when only the text is left (DefaultAzureCredential folds its credentials'
# failures into one message): (pattern, the cause as the harness states it). Only causes no credential failure
# words alike: DefaultAzureCredential's managed identity probe times out on every machine outside Azure.
_NETWORK_TEXTS = (
    (
        re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.IGNORECASE),
        UNVERIFIED_CERTIFICATE,
    ),
    (
        re.compile(
            r"Failed to resolve|Name or service not known|nodename nor servname|getaddrinfo failed|"
            r"Temporary failure in name resolution|No address associated with hostname",
            re.IGNORECASE,
        ),
        "the host name could not be resolved (DNS)",
    ),
)


def make_credential(azure: AzureConfig, own_client_id: str | None = None) -> Any:
    """The harness's own identity: the configured app registration, else DefaultAzureCredential. In a pod the
    Workload ID webhook mutated without AZURE_CLIENT_ID (the Job's ServiceAccount lost its client-id annotation),
    azure-identity's ManagedIdentityCredential raised ValueError "Workload identity was selected but no client ID
    was provided" from DefaultAzureCredential's constructor, a traceback on every test: ``own_client_id``
    (harness.client_id, the identity the Job logs in as) is passed as the client id there. Where the Job logs in
    through Workload ID, WorkloadIdentityCredential itself, so that Entra's Retry-After is bounded as for a secret."""
    import os

    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    endpoints = azure.cloud.endpoints
    kwargs: dict[str, Any] = {"authority": endpoints.authority_host}
    if not endpoints.known:
        kwargs["disable_instance_discovery"] = True
    if azure.ca_file:
        kwargs["connection_verify"] = str(azure.ca_file)
    # not for DefaultAzureCredential: its IMDS credential passes a retry_policy_class of its own (a TypeError)
    bounded = {"retry_policy_class": azure_core_retry_policy_class("entra"), "retry_total": MAX_RETRIES}
    if azure.credential is not None:
        return ClientSecretCredential(
            azure.tenant_id, azure.credential.client_id, azure.credential.secret(), **bounded, **kwargs
        )
    workload_identity = _workload_identity_settings(own_client_id)
    if workload_identity is not None:
        from azure.identity import WorkloadIdentityCredential

        # the in-cluster Job: what DefaultAzureCredential would pick (its EnvironmentCredential has no secret to
        # take, so its WorkloadIdentityCredential answers), built directly so that Entra's Retry-After is bounded
        return WorkloadIdentityCredential(**workload_identity, **bounded, **kwargs)
    if own_client_id and os.environ.get("AZURE_FEDERATED_TOKEN_FILE") and not os.environ.get("AZURE_CLIENT_ID"):
        kwargs.update(workload_identity_client_id=own_client_id, managed_identity_client_id=own_client_id)
    return DefaultAzureCredential(**kwargs)


# What azure-identity's EnvironmentCredential, first in DefaultAzureCredential's chain, logs in with
# (azure/identity/_credentials/environment.py): with any of them set it answers before WorkloadIdentityCredential.
_ENVIRONMENT_CREDENTIAL_VARIABLES = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME")


def _workload_identity_settings(own_client_id: str | None) -> dict[str, str] | None:
    """WorkloadIdentityCredential's tenant_id, client_id and token_file_path where the harness logs in through
    Workload ID (the webhook's AZURE_FEDERATED_TOKEN_FILE and AZURE_TENANT_ID, AZURE_CLIENT_ID else harness.client_id),
    None where DefaultAzureCredential would log in some other way or cannot know the client."""
    import os

    token_file, tenant_id = os.environ.get("AZURE_FEDERATED_TOKEN_FILE"), os.environ.get("AZURE_TENANT_ID")
    client_id = os.environ.get("AZURE_CLIENT_ID") or own_client_id
    if not token_file or not tenant_id or not client_id:
        return None
    if any(os.environ.get(name) for name in _ENVIRONMENT_CREDENTIAL_VARIABLES):
        return None
    return {"tenant_id": tenant_id, "client_id": client_id, "token_file_path": token_file}


class RequestsArm:
    """GET (or POST) ARM resources as JSON with a bearer token for the cloud's ARM audience; with ``base_url``
    and ``scope``, another Azure REST API the same way (Microsoft Graph). Tokens are always asked for the
    configured tenant, whatever tenant the credential last signed in to."""

    def __init__(
        self,
        azure: AzureConfig,
        credential: Any | None = None,
        *,
        base_url: str | None = None,
        scope: str | None = None,
        service: str = "ARM",
        own_client_id: str | None = None,
    ) -> None:
        import requests

        endpoints = azure.cloud.endpoints
        self.base_url = (base_url or endpoints.resource_manager).rstrip("/")
        self._scope = scope or endpoints.arm_scope
        self._service = service
        self._tenant_id = azure.tenant_id
        self.credential = credential if credential is not None else make_credential(azure, own_client_id)
        self._own_client_id = own_client_id
        self._verify: bool | str = str(azure.ca_file) if azure.ca_file else True
        self._session = mount_retries(requests.Session(), "graph" if service == "Microsoft Graph" else "arm")
        self._token: tuple[str, float] | None = None
        self._authority_host = _host_of(endpoints.authority_host)
        # Neither the harness's identity nor the network to its authority will fix itself mid-run: the first
        # failure answers every later call at once.
        self._token_failure: Fetched | None = None
        # A service that took a request and gave no answer within TIMEOUT, through the retries: every later call
        # would wait as long (a minute each, the run several), so it answers them at once. # unverified: that
        # a real ARM slower than 30 s stays so for the run; a hard-down one (refused) fails fast anyway
        self._slow: str | None = None

    def _bearer(self) -> str:
        if self._token is None or self._token[1] - 120 < time.time():
            access = self.credential.get_token(self._scope, tenant_id=self._tenant_id)
            self._token = (access.token, float(access.expires_on))
        return self._token[0]

    def __call__(self, path_or_url: str, body: dict[str, Any] | None = None) -> Fetched:
        import requests
        from azure.core.exceptions import AzureError

        url = path_or_url if path_or_url.startswith("https://") else self.base_url + path_or_url
        if self._token_failure is not None:
            return self._failed_before_sending(url)
        if self._slow is not None:
            return Fetched(url, None, None, f"{self._slow} (not asked again this run)", SLOW_ERROR)
        try:
            token = self._bearer()
        except (AzureError, ValueError) as exc:  # MSAL raises ValueError for an unusable authority
            cause = network_failure_cause(exc)
            if cause is not None:  # not the credential: the authority could not be asked at all
                self._token_failure = Fetched(
                    url, None, None, f"no {self._service} token: {cause}", NETWORK_ERROR, self._authority_host
                )
            else:
                self._token_failure = Fetched(
                    url,
                    None,
                    None,
                    f"the harness could not get an {self._service} token: "
                    f"{discovery_throttled(exc) or credential_failure_text(exc)}"
                    + workload_identity_login(self._own_client_id),
                    CREDENTIAL_ERROR,
                    self._authority_host,  # the service that refused or failed it, for Entra's own 5xx
                )
            return self._failed_before_sending(url)
        try:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if body is None:
                response = self._session.get(url, timeout=TIMEOUT, verify=self._verify, headers=headers)
            else:
                response = self._session.post(url, json=body, timeout=TIMEOUT, verify=self._verify, headers=headers)
        except requests.RequestException as exc:
            if read_timed_out(exc):  # it took the request: neither the network path nor the proxy is at fault
                self._slow = (f"{self._service} at {_host_of(url)} took the request and did not answer within "
                              f"{TIMEOUT:g} s, through the harness's retries: the service is slow or failing")
                return Fetched(url, None, None, self._slow, SLOW_ERROR)
            cause = network_failure_cause(exc)
            if cause is not None:
                return Fetched(url, None, None, cause, NETWORK_ERROR, _host_of(url))
            return Fetched(url, None, None, f"{type(exc).__name__}: {str(exc)[:300]}")
        return parse_arm_response(url, response.status_code, response.content)

    def caller_claims(self) -> dict[str, Any]:
        """Who the harness is to Azure: its ARM token's identity claims, decoded (``{error}`` without a token)."""
        import jwt

        if self._token is None:
            failure = self._token_failure
            return {"error": failure.error if failure is not None else "no token was asked for"}
        try:
            claims = jwt.decode(self._token[0], options={"verify_signature": False})
        except jwt.PyJWTError:
            return {"error": "the harness's token is not a JWT: its claims cannot be read"}
        return identity_claims(claims)

    def _failed_before_sending(self, url: str) -> Fetched:
        failure = self._token_failure
        assert failure is not None
        return Fetched(url, None, None, failure.error, failure.code, failure.host)


def graph_client(azure: AzureConfig, arm: RequestsArm) -> RequestsArm | None:
    """Microsoft Graph through the same seam and credential as ARM; None when the cloud names no Graph."""
    graph = azure.cloud.endpoints.microsoft_graph
    if not graph:
        return None
    return RequestsArm(azure, arm.credential, base_url=graph, scope=azure.cloud.endpoints.graph_scope,
                       service="Microsoft Graph", own_client_id=getattr(arm, "_own_client_id", None))


def credential_failure_text(exc: BaseException) -> str:
    """One line from an azure-identity failure: its first line, plus each credential's reason when
    DefaultAzureCredential tried several (they follow on tab-indented lines); Entra's trace trailer dropped."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    reasons = []
    for line in lines[1:]:
        if not line.startswith("\t") or ": " not in line:
            continue
        name, reason = line.strip().split(": ", 1)
        reason = reason.removeprefix(f"{name} authentication unavailable.").strip() or "unavailable"
        reasons.append(f"{name}: {_shorten(reason.rstrip('.'))}")
    head = _ENTRA_TRAILER_RE.sub("", lines[0]).strip()
    return f"{head.rstrip('.')}: {'; '.join(reasons)}" if reasons else head


# MSAL's tenant_discovery (msal/authority.py) for any 4xx of the tenant's OpenID configuration; its caller then
# raises "Unable to get authority configuration for ...", the words of an unknown tenant, with this as its context
_DISCOVERY_REFUSED_RE = re.compile(r"OIDC Discovery failed on \S+?\.? HTTP status: (\d{3})")


def discovery_throttled(exc: BaseException) -> str:
    """What happened, when what MSAL words as an unknown tenant was Entra throttling the tenant's OIDC discovery
    request (a 429 in the chain): the tenant is fine, the service asked to wait; "" otherwise."""
    for link in _exception_chain(exc):
        found = _DISCOVERY_REFUSED_RE.search(str(link))
        if found is not None and found.group(1) == "429":
            return ("Entra answered the tenant's OIDC discovery request with HTTP Error: 429 (throttled; MSAL words "
                    "it 'Unable to get authority configuration', which here does not mean an unknown tenant)")
    return ""


def workload_identity_login(own_client_id: str | None = None) -> str:
    """Where the harness itself logs in through Workload ID (the in-cluster Job: the webhook's
    AZURE_FEDERATED_TOKEN_FILE and AZURE_CLIENT_ID): the client, and the projected token's issuer and subject (read,
    not verified), which a federated credential of that identity must name; "" elsewhere."""
    import base64
    import json
    import os

    path, client_id = os.environ.get("AZURE_FEDERATED_TOKEN_FILE"), os.environ.get("AZURE_CLIENT_ID") or own_client_id
    if not path or not client_id:
        return ""
    try:
        with open(path, encoding="utf-8") as file:
            payload = file.read().strip().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (OSError, IndexError, ValueError):
        return ""
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not isinstance(subject, str):
        return ""
    return f" [{WORKLOAD_ID_LOGIN} client {client_id}, issuer {issuer}, subject {subject}]"


WORKLOAD_ID_LOGIN = "the harness's Workload ID login:"


def _host_of(url: str) -> str:
    """``host[:port]`` of an https URL (no user info): what a person checks the network path to."""
    return urlsplit(url).netloc.rpartition("@")[2] or url


def read_timed_out(exc: BaseException) -> bool:
    """The request went out and no answer came within the read timeout (urllib3's ReadTimeoutError, alone or as
    the reason the retries ended): a slow service, not a connection that could not be made."""
    from urllib3.exceptions import ReadTimeoutError

    return any(isinstance(link, ReadTimeoutError) for link in _exception_chain(exc))


def network_failure_cause(exc: BaseException) -> str | None:
    """Why no HTTPS exchange took place when the network is the reason (the name did not resolve, TLS failed,
    the connection was refused or timed out), as one line; None when the exception is about something else
    (an answer from Entra, a bad secret). Read from the exception chain, else from its text."""
    for link in _exception_chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            return f"{UNVERIFIED_CERTIFICATE}: {link.verify_message or link.reason}"
        if isinstance(link, socket.gaierror):
            return f"the host name could not be resolved (DNS): {link.strerror or link}"
        if isinstance(link, ssl.SSLError):
            return f"the TLS handshake failed: {link.reason or link}"
        if isinstance(link, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(link, TimeoutError):
            return "the connection timed out"
    text = str(exc)
    for pattern, cause in _NETWORK_TEXTS:
        if pattern.search(text):
            return cause
    return None


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: azure-core's inner_exception, urllib3's reason, __cause__ and __context__."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        for wrapped in (
            getattr(link, "inner_exception", None),
            getattr(link, "reason", None),
            link.__cause__,
            link.__context__,
        ):
            if isinstance(wrapped, BaseException):
                pending.append(wrapped)


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def parse_arm_response(url: str, status: int, content: bytes) -> Fetched:
    """ARM's JSON, or its ``{"error": {"code", "message"}}`` as code + error."""
    import json

    try:
        body = json.loads(content) if content else None
    except ValueError:
        return Fetched(url, status, None, "the response is not JSON")
    if 200 <= status < 300:
        return Fetched(url, status, body)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return Fetched(
            url, status, None, str(error.get("message") or ""), str(error.get("code") or "") or None
        )
    return Fetched(url, status, None, f"HTTP {status}")
