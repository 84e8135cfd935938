"""Entra ID (AADSTS) error catalogue and the JSON error body the token service answers with.

Every entry is ``code -> (error, HTTP status, description template)``; the description is rendered as
``AADSTS<code>: <text>`` followed by the modern single-space trailer
`` Trace ID: <guid> Correlation ID: <guid> Timestamp: YYYY-MM-DD HH:MM:SSZ``.

Texts are the ones observed in real responses (reference/entra-keyvault-arm-wire-formats.md §1.4 and
the captures cited per entry). Where the text, the ``error`` value or the HTTP status has not been
seen on the wire the entry says ``[unverified]``; the rule used then is Entra's own habit:
``invalid_client`` answers 401, everything else 400.

This module is pure (no I/O, no aiohttp) so it can be unit-tested and reused by other services.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ERROR_URI = "https://login.microsoftonline.com/error?code={code}"
WIF_DOC = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
WIF_DOC_OLD = "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation"
# Current texts link learn.microsoft.com (reference real-cluster-behaviours §5): AADSTS700024 captured in 2024-25
# with CERT_DOC (AzureAD/microsoft-authentication-library-for-java#984, -for-dotnet#4951); earlier captures had
# docs.microsoft.com addresses (the *_OLD ones). The legacy 70021 text keeps WIF_DOC_OLD, as last seen (2023).
CERT_DOC = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"
CERT_DOC_OLD = "https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials"


@dataclass(frozen=True)
class AadstsCode:
    code: int
    error: str
    status: int
    template: str  # str.format template of the text after "AADSTS<code>: "
    source: str = ""  # where the text comes from; "[unverified]" marks guesses


def _c(code: int, error: str, status: int, template: str, source: str = "") -> tuple[int, AadstsCode]:
    return code, AadstsCode(code, error, status, template, source)


CATALOGUE: dict[int, AadstsCode] = dict([
    # ---- tenant and instance
    _c(90002, "invalid_request", 400,
       "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
       "correct cloud. Check with your subscription administrator, this may happen if there are no active "
       "subscriptions for the tenant.",
       "OBS 2026 live capture; the discovery documents answer error=invalid_tenant (OBS azure-cli issues)"),
    _c(900023, "invalid_request", 400,
       "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain.",
       "OBS MSAL.NET MockHelpers.cs"),
    _c(50049, "invalid_instance", 400, "Unknown or invalid instance.",
       "instance discovery for a host Entra does not know [unverified text]"),
    # ---- request shape
    _c(900144, "invalid_request", 400, "The request body must contain the following parameter: '{parameter}'.",
       "OBS 2019/2023 captures (MicrosoftDocs/azure-docs#43780)"),
    _c(900561, "invalid_request", 400, "The endpoint only accepts {allowed} requests. Received a {method} request.",
       "[unverified] text recalled from real responses to GET on the token endpoint"),
    _c(70003, "unsupported_grant_type", 400, "The app requested an unsupported grant type '{grant_type}'.",
       "OBS MSAL.NET PR #3023 (grant type authorization_code on a client-credentials-only path)"),
    _c(7000216, "invalid_client", 401,
       "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
       "OBS in many code bases; error/status [unverified]"),
    # ---- scope / resource
    _c(70011, "invalid_scope", 400,
       "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
       "DOC reference-error-codes"),
    _c(1002012, "invalid_scope", 400,
       "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with "
       "/.default suffixed to the resource identifier (application ID URI).",
       "OBS MSAL.NET MockHelpers.cs"),
    _c(500011, "invalid_resource", 400,
       "The resource principal named {resource} was not found in the tenant named {tenant_name}. This can happen "
       "if the application has not been installed by the administrator of the tenant or consented to by any user "
       "in the tenant. You might have sent your authentication request to the wrong tenant.",
       "OBS"),
    # ---- client
    _c(700016, "unauthorized_client", 400,
       "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can "
       "happen if the application has not been installed by the administrator of the tenant or consented to by "
       "any user in the tenant. You may have sent your authentication request to the wrong tenant.",
       "OBS MSAL.NET MockHelpers.cs WrongTenantError700016; status [unverified]"),
    _c(7000215, "invalid_client", 401,
       "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
       "not the client secret ID, for a secret added to app '{client_id}'.",
       "OBS"),
    _c(7000222, "invalid_client", 401, "The provided client secret keys for app '{client_id}' are expired.",
       "OBS; status [unverified]"),
    _c(7000112, "unauthorized_client", 400, "Application '{client_id}'({display_name}) is disabled.",
       "OBS Worklytics/psoxy#74 (client credentials: unauthorized_client), MicrosoftDocs/azure-docs#28469; "
       "status [unverified]"),
    _c(7000229, "invalid_client", 401,
       "The client application {client_id} is missing service principal in the tenant {tenant_id}. See "
       "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
       "OBS Azure/Commercial-Marketplace-SaaS-Accelerator#830, azure-sdk-for-net#46762 (MSAL: invalid_client); "
       "status [unverified]"),
    # ---- the assertion itself
    _c(50027, "invalid_request", 400, "JWT token is invalid or malformed.", "OBS MSAL.NET MockHelpers.cs"),
    _c(90014, "invalid_request", 400,
       "The required field '{field}' is missing from the credential. Ensure that you have all the necessary "
       "parameters for the login request.",
       "OBS MSAL.NET MockHelpers.cs"),
    _c(5002738, "invalid_client", 401,
       "Invalid JWT token. '{alg}' is not a supported signature algorithm. Supported signing algorithms are: "
       "'RS256,RS384,RS512'",
       "OBS MSAL.NET MockHelpers.cs; status [unverified]"),
    _c(700222, "invalid_client", 401, "AAD-issued tokens may not be used for federated identity flows.",
       "DOC workload-identity-federation considerations; error/status [unverified]"),
    _c(50013, "invalid_client", 401,
       "Assertion failed signature validation. [Reason - The provided signature value did not match the expected "
       "signature value., Thumbprint of key used by client: '{thumbprint}']",
       "OBS for certificate/OBO assertions; its use for a federated assertion is [unverified]"),
    _c(700024, "invalid_client", 401,
       "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf}, "
       "expiry time of assertion {exp}. Review the documentation at " + CERT_DOC + " .",
       "OBS MSAL.NET MockHelpers.cs; azure-workload-identity#693; link as in 2024-25 captures (MSAL-java#984, "
       "MSAL.NET#4951; before: CERT_DOC_OLD); status [unverified]"),
    _c(70023, "invalid_client", 401,
       "External OIDC Provider token must have a lifetime of less than or equal to 1.01:00:00. Token issued at "
       "{iat}. Token expires on {exp}.",
       "OBS azure-sdk-for-python#32124 (2023: invalid_client); 2022 capture said invalid_request; status [unverified]"),
    # ---- the external issuer (discovery + JWKS)
    _c(50166, "invalid_request", 400, "Request to External OIDC endpoint failed.",
       "OBS azure-workload-identity#642 (400)"),
    _c(501661, "invalid_request", 400, "Request to External OIDC endpoint failed.", "OBS Azure/AKS#4029"),
    _c(90061, "invalid_request", 400, "Request to External OIDC endpoint failed.",
       "OBS azure-workload-identity#605 (400)"),
    _c(900612, "invalid_request", 400, "Failed to parse provider signing keys.", "OBS 2025"),
    _c(7000272, "invalid_client", 401,
       "The certificate with identifier {thumbprint} used to sign the federated credential could not be found in "
       "the metadata of identity provider {issuer}. Please validate that your Identity Provider's metadata exposes "
       "the key used to sign the incoming token.",
       "OBS azure-workload-identity#1232, #616 (401)"),
    # ---- federated identity credential matching
    _c(70025, "invalid_client", 401,
       "The client '{client_id}'({display_name}) has no configured federated identity credentials.",
       "OBS many logs; a 2024 capture shows invalid_client/401"),
    _c(70021, "invalid_client", 401,
       "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. "
       "Assertion Subject: '{sub}'. Assertion Audience: '{aud}'. " + WIF_DOC_OLD,
       "OBS legacy (2022: invalid_request/400; 2023 external-secrets#2783: invalid_client/401)"),
    _c(700211, "invalid_client", 401,
       "No matching federated identity record found for presented assertion issuer '{iss}'. Please check your "
       "federated identity credential Subject, Audience and Issuer against the presented assertion. " + WIF_DOC,
       "OBS 2025 log; azure-workload-identity#1200"),
    _c(700212, "invalid_client", 401,
       "No matching federated identity record found for presented assertion audience '{aud}'. Please check your "
       "federated identity credential Subject, Audience and Issuer against the presented assertion. " + WIF_DOC,
       "OBS 2024 capture (which still linked WIF_DOC_OLD); the learn.microsoft.com link as its siblings 700211/"
       "700213 carry it today [unverified for 700212]; status [unverified] (401 like its siblings)"),
    _c(700213, "invalid_client", 401,
       "No matching federated identity record found for presented assertion subject '{sub}'. Check your "
       "federated identity credential Subject, Audience and Issuer against the presented assertion. " + WIF_DOC,
       "OBS terraform CI log 2026 (401)"),
    _c(7002138, "invalid_client", 401,
       "No matching federated identity record found for presented assertion subject '{sub}'. The subject matches "
       "with case-insensitive comparison, but not with case-sensitive comparison. Check your federated identity "
       "credential Subject, Audience and Issuer against the presented assertion. See documentation at: " + WIF_DOC
       + ". See breaking change notification and remediation at: "
       "https://learn.microsoft.com/en-us/entra/identity-platform/reference-breaking-changes#august-2024.",
       "OBS Azure/login#515"),
    # ---- availability (a lab bug; fault injection)
    _c(50000, "server_error", 500,
       "There was an error issuing a token or an issue with our sign-in service.",
       "DOC reference-error-codes (TokenIssuanceError); error/status [unverified]"),
    _c(90033, "temporarily_unavailable", 503, "A transient error has occurred. Please try again.",
       "OBS azure-sdk-for-python#14241 (503, 2020)"),
    # Entra's real 429 body is not on record; 90055 (TenantThrottlingError) is the documented throttling code.
    _c(90055, "temporarily_unavailable", 429, "There are too many incoming requests. Please try again later.",
       "[unverified] DOC short text TenantThrottlingError"),
])


@dataclass
class AadstsError(Exception):
    """An Entra error answer. ``values`` fill the code's template; ``error``/``status`` override the catalogue
    (e.g. 90002 is ``invalid_tenant`` on the discovery documents but ``invalid_request`` at the token endpoint)."""

    code: int
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.description)

    @property
    def entry(self) -> AadstsCode:
        return CATALOGUE[self.code]

    @property
    def description(self) -> str:
        return describe(self.code, **self.values)

    @property
    def error_name(self) -> str:
        return self.error or self.entry.error

    @property
    def http_status(self) -> int:
        return self.status or self.entry.status


def aadsts(code: int, **values: Any) -> AadstsError:
    """Shorthand: ``raise aadsts(700213, sub=...)``."""
    return AadstsError(code, values)


def describe(code: int, **values: Any) -> str:
    """``AADSTS<code>: <text>`` without the trailer."""
    return f"AADSTS{code}: " + CATALOGUE[code].template.format(**values)


def timestamp(moment: datetime) -> str:
    """Entra's body/trailer timestamp: ``YYYY-MM-DD HH:MM:SSZ`` (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def precise_time(epoch_seconds: float) -> str:
    """Entra's time format inside AADSTS700024: ISO 8601 with 7 fractional digits and ``Z``
    (``2023-12-11T23:52:19.6223401Z``). Values outside datetime's range clamp to its ends."""
    whole = math.floor(epoch_seconds)
    ticks = int(round((epoch_seconds - whole) * 10_000_000))
    if ticks >= 10_000_000:
        whole, ticks = whole + 1, 0
    try:
        moment = datetime.fromtimestamp(whole, tz=UTC)
    except (OverflowError, OSError, ValueError):
        moment = datetime.max.replace(tzinfo=UTC) if whole > 0 else datetime.min.replace(tzinfo=UTC)
        ticks = 9_999_999 if whole > 0 else 0
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{ticks:07d}Z")


def is_guid(value: str | None) -> bool:
    if not value:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def error_body(
    error: AadstsError,
    now: datetime,
    trace_id: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """Entra's JSON error body (§1.3), keys in the real order."""
    trace = trace_id or str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    stamp = timestamp(now)
    return {
        "error": error.error_name,
        "error_description": f"{error.description} Trace ID: {trace} Correlation ID: {correlation} "
                             f"Timestamp: {stamp}",
        "error_codes": [error.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": ERROR_URI.format(code=error.code),
    }


def render(
    code: int,
    now: datetime,
    *,
    trace_id: str | None = None,
    correlation_id: str | None = None,
    error: str | None = None,
    status: int | None = None,
    **values: Any,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for ``code`` with its template ``values``."""
    err = AadstsError(code, values, error=error, status=status)
    return err.http_status, error_body(err, now, trace_id=trace_id, correlation_id=correlation_id)
