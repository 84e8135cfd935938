"""Entra ID (login.microsoftonline.com) for the lab: discovery documents, signing keys and the token endpoint.

Endpoints (``{host}`` is ``lab.endpoints["entra"]``, i.e. AZURE_AUTHORITY_HOST without its slash):

    GET  /common/discovery/instance                       instance discovery (MSAL)
    GET  /{tenant}/v2.0/.well-known/openid-configuration  tenant discovery, v2.0 (MSAL always asks)
    GET  /{tenant}/.well-known/openid-configuration       tenant discovery, v1
    GET  /{tenant}/discovery/v2.0/keys                    JWKS (v2.0) of lab.entra_keys
    GET  /{tenant}/discovery/keys                         JWKS (v1)
    POST /{tenant}/oauth2/v2.0/token                      client_credentials with a secret or a federated assertion
    POST /{tenant}/oauth2/token                           the same, v1 (``resource=`` instead of ``scope=``)

``{tenant}`` is the tenant id or its default domain (anything in ``lab.azure.tenants``); ``common`` and
``organizations`` are accepted too (the client's home tenant is used at the token endpoint).

What clients need (verified by tests/lab/test_entra_service.py against the real libraries):
- Trust the lab CA: ``REQUESTS_CA_BUNDLE=<state-dir>/ca.pem`` (requests, MSAL, azure-core).
- azure-identity WorkloadIdentityCredential / ClientAssertionCredential: nothing else. They POST straight to
  ``{authority}/{tenant}/oauth2/v2.0/token`` (authority from ``AZURE_AUTHORITY_HOST`` or ``authority=``).
- azure-identity ClientSecretCredential (and so EnvironmentCredential / DefaultAzureCredential with a
  secret) runs on MSAL, which validates any authority host that is not a Microsoft one against
  ``https://login.microsoftonline.com/common/discovery/instance`` -- the real internet host, not the lab.
  Pass ``disable_instance_discovery=True`` (with ``authority=<lab host>``). There is no environment
  variable for it in azure-identity 1.27.
- MSAL ConfidentialClientApplication(authority=f"{host}/{tenant}"): pass ``instance_discovery=False``
  (or ``validate_authority=False``). ``instance_discovery="<host>/common/discovery/instance"`` also works
  for successful requests, but after a *failed* token request MSAL looks up authority aliases at
  login.microsoftonline.com regardless, so False is the setting to document.

Errors are Entra's JSON bodies (lab.azure.aadsts); the steps of federated-assertion validation are in
lab.azure.federation. Logs carry decoded claims and fingerprints only, never an assertion or a secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from lab.azure import federation
from lab.azure.aadsts import AadstsError, aadsts, error_body, is_guid
from lab.azure.access_tokens import issue_access_token
from lab.azure.metadata_cache import IssuerMetadataCache
from lab.azure.world import (
    GRAPH_APP_ID,
    GRAPH_AUDIENCE,
    AppRegistration,
    FederatedCredential,
    Principal,
    Tenant,
)
from lab.faults import fault_middleware
from lab.unexpected import unexpected_error_middleware

if TYPE_CHECKING:
    from lab.runtime import Lab

log = logging.getLogger("lab.entra")

MAX_BODY_BYTES = 1024 * 1024  # [UNV] Entra's own request size limit is not published; aiohttp's default
FETCH_TIMEOUT_SECONDS = 5.0  # Entra's own timeout for an external OIDC endpoint is not published
MULTI_TENANT_ALIASES = ("common", "organizations")
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
WELL_KNOWN_HOSTS = frozenset({
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
})
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class Resource:
    """A first-party resource the tenant knows: app id and application ID URIs (scope minus /.default)."""

    display_name: str
    app_id: str
    uris: tuple[str, ...]


KNOWN_RESOURCES: tuple[Resource, ...] = (
    Resource("Azure Key Vault", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093", ("https://vault.azure.net",)),
    Resource("Windows Azure Service Management API", "797f4846-ba00-4fd7-ba43-dac1f8f63013",
             ("https://management.azure.com/", "https://management.core.windows.net/")),
    Resource("Azure Storage", "e406a681-f3d4-42a8-90b6-c2b029497af1", ("https://storage.azure.com/",)),
    Resource("Microsoft Graph", "00000003-0000-0000-c000-000000000000", ("https://graph.microsoft.com/",)),
    Resource("Azure Kubernetes Service AAD Server", "6dae42f8-4368-4678-94ff-3960e28e3630", ()),
)


def resolve_known_resource(requested: str) -> str | None:
    """The token ``aud`` for a requested resource, or None. URIs compare case-insensitively and with or
    without the trailing slash; the slash form the client asked for is kept (``https://management.azure.com/``
    from ``https://management.azure.com//.default``, ``https://vault.azure.net`` from ``.../.default``)."""
    wanted = requested.rstrip("/").lower()
    if not wanted:
        return None
    for resource in KNOWN_RESOURCES:
        if wanted == resource.app_id:
            return resource.app_id  # requested by app id: v1 tokens carry it as aud [unverified]
        for uri in resource.uris:
            if uri.rstrip("/").lower() == wanted:
                return uri.rstrip("/") + ("/" if requested.endswith("/") else "")
    return None


def scope_resource(scope: str) -> str:
    """``<resource>/.default`` -> resource. One resource per client-credentials request."""
    items = [s for s in scope.split() if s.lower() not in RESERVED_SCOPES]
    if len(items) != 1:
        raise aadsts(70011, scope=scope)
    if not items[0].endswith("/.default"):
        raise aadsts(1002012, scope=items[0])
    return items[0][: -len("/.default")]


class EntraService:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._client_ssl: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ small helpers
    @property
    def host(self) -> str:
        return self.lab.endpoints["entra"].rstrip("/")

    def _correlation_id(self, request: web.Request) -> str:
        # Entra echoes the caller's client-request-id (MSAL) as correlation_id; azure-core sends
        # x-ms-client-request-id, which the lab honours the same way [unverified for the real service].
        for header in ("client-request-id", "x-ms-client-request-id"):
            value = request.headers.get(header, "")
            if is_guid(value):
                return value.lower()
        return str(uuid.uuid4())

    def _error(self, request: web.Request, err: AadstsError) -> web.Response:
        trace_id = str(uuid.uuid4())
        correlation_id = self._correlation_id(request)
        body = error_body(err, self.lab.entra_clock.utcnow(), trace_id=trace_id, correlation_id=correlation_id)
        headers = {**NO_STORE, "x-ms-request-id": trace_id, "client-request-id": correlation_id}
        return _json(body, err.http_status, headers)

    def render_internal_error(self, request: web.Request) -> web.Response:
        return self._error(request, aadsts(50000))

    def render_fault(self, status: int, retry_after: int) -> web.Response:
        """Throttling (429) and unavailability (503) as Entra words them (codes in lab.azure.aadsts)."""
        err = aadsts(90055 if status == 429 else 90033)
        body = error_body(err, self.lab.entra_clock.utcnow())
        return _json(body, status, {**NO_STORE, "Retry-After": str(retry_after)})

    # ------------------------------------------------------------------ tenants
    def find_tenant(self, name: str) -> Tenant | None:
        wanted = name.lower()
        for tenant in self.lab.azure.tenants.values():
            if tenant.tenant_id.lower() == wanted or tenant.default_domain.lower() == wanted:
                return tenant
        return None

    def _tenant(self, name: str, error: str) -> Tenant:
        tenant = self.find_tenant(name)
        if tenant is not None:
            return tenant
        if not is_guid(name) and not _DNS_NAME.match(name):
            raise AadstsError(900023, {"tenant": name})
        raise AadstsError(90002, {"tenant": name}, error=error)

    # ------------------------------------------------------------------ discovery
    async def instance_discovery(self, request: web.Request) -> web.Response:
        endpoint = request.query.get("authorization_endpoint", "")
        own_host = urlsplit(self.host).hostname or "127.0.0.1"
        try:
            parts = urlsplit(endpoint) if endpoint else None
            hostname = (parts.hostname or "").lower() if parts is not None else ""
        except ValueError:
            return self._error(request, aadsts(50049))
        if parts is not None:
            if hostname not in {own_host, "localhost", "127.0.0.1", *WELL_KNOWN_HOSTS}:
                return self._error(request, aadsts(50049))
            segments = [s for s in parts.path.split("/") if s]
            tenant = segments[0] if segments else "common"
        else:
            tenant = "common"
        body = {
            "tenant_discovery_endpoint": f"{self.host}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [
                # MSAL compares aliases with the authority's hostname (port dropped).
                {"preferred_network": own_host, "preferred_cache": own_host,
                 "aliases": sorted({own_host, "localhost", "127.0.0.1"})},
                {"preferred_network": "login.microsoftonline.com", "preferred_cache": "login.windows.net",
                 "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com",
                             "sts.windows.net"]},
            ],
        }
        return _json(body)

    def _discovery_tenant(self, request: web.Request) -> tuple[str, str]:
        """(tenant segment for endpoints, tenant id for the issuer) of a discovery request."""
        name = request.match_info["tenant"]
        if name.lower() in MULTI_TENANT_ALIASES:
            return name.lower(), "{tenantid}"
        tenant = self._tenant(name, error="invalid_tenant")
        return tenant.tenant_id, tenant.tenant_id

    async def openid_configuration_v2(self, request: web.Request) -> web.Response:
        try:
            segment, tid = self._discovery_tenant(request)
        except AadstsError as err:
            return self._error(request, err)
        base = f"{self.host}/{segment}"
        return _json({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.host}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                                 "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                                 "c_hash", "email"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })

    async def openid_configuration_v1(self, request: web.Request) -> web.Response:
        try:
            segment, tid = self._discovery_tenant(request)
        except AadstsError as err:
            return self._error(request, err)
        base = f"{self.host}/{segment}"
        return _json({
            "token_endpoint": f"{base}/oauth2/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "jwks_uri": f"{self.host}/common/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "issuer": f"https://sts.windows.net/{tid}/",
            "microsoft_multi_refresh_token": True,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                                 "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"],
            "check_session_iframe": f"{base}/oauth2/checksession",
            "userinfo_endpoint": f"{base}/openid/userinfo",
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })

    def _jwks(self, issuer: str | None) -> dict[str, Any]:
        keys = []
        for jwk in self.lab.entra_keys.jwks()["keys"]:
            entry = {**jwk, "x5t": jwk["kid"]}  # access tokens carry x5t == kid (lab.azure.access_tokens)
            if issuer:
                entry["issuer"] = issuer
            keys.append(entry)
        return {"keys": keys}

    async def keys_v2(self, request: web.Request) -> web.Response:
        try:
            _, tid = self._discovery_tenant(request)
        except AadstsError as err:
            return self._error(request, err)
        return _json(self._jwks(f"{self.host}/{tid}/v2.0"))

    async def keys_v1(self, request: web.Request) -> web.Response:
        try:
            self._discovery_tenant(request)
        except AadstsError as err:
            return self._error(request, err)
        return _json(self._jwks(None))

    # ------------------------------------------------------------------ token endpoint
    async def token_wrong_method(self, request: web.Request) -> web.Response:
        return self._error(request, aadsts(900561, allowed="POST", method=request.method))

    async def token_v2(self, request: web.Request) -> web.Response:
        return await self._token(request, version=2)

    async def token_v1(self, request: web.Request) -> web.Response:
        return await self._token(request, version=1)

    async def _token(self, request: web.Request, version: int) -> web.Response:
        facts: dict[str, Any] = {"tenant": request.match_info["tenant"], "endpoint": f"v{version}"}
        try:
            response = await self._exchange(request, version, facts)
        except AadstsError as err:
            facts["outcome"] = f"AADSTS{err.code}"
            log.info("entra token refused: %s", facts)
            return self._error(request, err)
        facts["outcome"] = "issued"
        log.info("entra token issued: %s", facts)
        return response

    async def _exchange(self, request: web.Request, version: int, facts: dict[str, Any]) -> web.Response:
        tenant_name = request.match_info["tenant"]
        tenant: Tenant | None = None
        if tenant_name.lower() not in MULTI_TENANT_ALIASES:
            tenant = self._tenant(tenant_name, error="invalid_request")

        form = await _form(request)
        basic_id, basic_secret = _basic_credentials(request)
        grant_type = form.get("grant_type")
        facts["grant_type"] = grant_type
        if not grant_type:
            raise aadsts(900144, parameter="grant_type")
        if grant_type != "client_credentials":
            raise aadsts(70003, grant_type=grant_type)
        client_id = form.get("client_id") or basic_id
        facts["client_id"] = client_id
        if not client_id:
            raise aadsts(900144, parameter="client_id")
        if version == 2:
            scope = form.get("scope")
            facts["scope"] = scope
            if not scope:
                raise aadsts(900144, parameter="scope")
            requested = scope_resource(scope)
        else:
            requested = form.get("resource") or ""
            facts["resource"] = requested
            if not requested:
                raise aadsts(900144, parameter="resource")

        assertion_text = form.get("client_assertion")
        secret = form.get("client_secret") or basic_secret
        assertion: federation.Assertion | None = None
        if assertion_text:
            facts["credential"] = "client_assertion"
            assertion_type = form.get("client_assertion_type")
            if not assertion_type:
                raise aadsts(900144, parameter="client_assertion_type")
            if assertion_type != federation.JWT_BEARER:
                # Real text for another assertion type is not on record; "malformed" is the closest answer.
                raise aadsts(50027)
            try:
                assertion = federation.precheck_assertion(assertion_text, self._own_issuer_prefixes(),
                                                          [k.kid for k in self.lab.entra_keys.published()])
            finally:
                facts["assertion"] = _assertion_facts(assertion_text)
        elif secret:
            facts["credential"] = "client_secret"
            facts["secret"] = federation.fingerprint(secret)

        principal = self._principal(client_id, tenant)
        tenant = tenant or self.find_tenant(principal.tenant_id)
        if assertion is not None:
            credential = await self._authenticate_assertion(principal, assertion)
            facts["federated_credential"] = credential.name
            appidacr = "2"
        elif secret:
            self._authenticate_secret(principal, secret)
            appidacr = "1"
        else:
            raise aadsts(7000216)

        if isinstance(principal, AppRegistration) and not principal.has_service_principal:
            raise aadsts(7000229, client_id=principal.client_id, tenant_id=principal.tenant_id)
        if isinstance(principal, AppRegistration) and not principal.service_principal_enabled:
            raise aadsts(7000112, client_id=principal.client_id, display_name=principal.display_name)
        audience = self._resolve_resource(requested, tenant)
        roles = principal.graph_permissions if self._is_graph(audience) else ()
        token, expires_in = issue_access_token(self.lab, principal, audience, appidacr, roles)
        facts["aud"] = audience
        if version == 2:
            body: dict[str, Any] = {"token_type": "Bearer", "expires_in": expires_in,
                                    "ext_expires_in": expires_in, "access_token": token}
        else:
            now = int(self.lab.entra_clock.now())
            body = {"token_type": "Bearer", "expires_in": str(expires_in), "ext_expires_in": str(expires_in),
                    "expires_on": str(now + expires_in), "not_before": str(now), "resource": requested,
                    "access_token": token}
        return _json(body, 200, {**NO_STORE, "x-ms-request-id": str(uuid.uuid4()),
                                 "client-request-id": self._correlation_id(request)})

    def _own_issuer_prefixes(self) -> list[str]:
        return [self.host + "/"]

    def _principal(self, client_id: str, tenant: Tenant | None) -> Principal:
        principal = self.lab.azure.principal_by_client_id(client_id)
        if principal is None or (tenant is not None and principal.tenant_id.lower() != tenant.tenant_id.lower()):
            name = tenant.display_name if tenant is not None else "common"
            raise aadsts(700016, client_id=client_id, tenant_name=name)
        return principal

    def _authenticate_secret(self, principal: Principal, secret: str) -> None:
        values = principal.client_secrets.values() if isinstance(principal, AppRegistration) else ()
        if not any(hmac.compare_digest(secret.encode(), v.encode()) for v in values):
            raise aadsts(7000215, client_id=principal.client_id)

    async def _authenticate_assertion(
        self, principal: Principal, assertion: federation.Assertion
    ) -> FederatedCredential:
        return await federation.validate_federated_assertion(
            assertion,
            client_id=principal.client_id,
            display_name=principal.display_name,
            credentials=list(principal.federated_credentials.values()),
            now=self.lab.entra_clock.now(),
            wall_now=time.time(),  # FederatedCredential.created_at is wall-clock time
            propagation_seconds=self.lab.azure.fic_propagation_seconds,
            fetch=self.fetch,
            metadata_cache=self._metadata_cache(assertion.iss),
        )

    def _metadata_cache(self, issuer: str) -> IssuerMetadataCache:
        """Entra's copy of issuers' keys. The lab's "issuer unreachable" fault stands for an outage that has
        outlasted that copy: Entra fetches again (and fails with AADSTS50166) and keeps nothing of before."""
        cache = self.lab.azure.issuer_metadata
        if self.lab.faults.issuer_unreachable and self._is_lab_issuer(issuer):
            cache.forget(issuer)
        return cache

    def _lab_graph_uri(self) -> str:
        """The lab's Microsoft Graph is a resource of its own address too, as graph.microsoft.us is in US Gov:
        clients ask for ``<graph endpoint>/.default`` (az reads the scope from the cloud's Graph endpoint)."""
        return self.lab.endpoints.get("graph", "").rstrip("/").lower()

    def _is_graph(self, audience: str) -> bool:
        wanted = audience.rstrip("/").lower()
        return wanted in (GRAPH_AUDIENCE, GRAPH_APP_ID) or (bool(wanted) and wanted == self._lab_graph_uri())

    def _resolve_resource(self, requested: str, tenant: Tenant | None) -> str:
        audience = resolve_known_resource(requested)
        if audience is None and requested.rstrip("/").lower() == self._lab_graph_uri():
            audience = requested.rstrip("/") + ("/" if requested.endswith("/") else "")
        if audience is None:
            # App registrations of the tenant are resources too: "api://<appId>" or "<appId>".
            app_id = requested.removeprefix("api://").rstrip("/")
            if app_id in self.lab.azure.apps:
                audience = requested.rstrip("/")
        if audience is None:
            raise aadsts(500011, resource=requested,
                         tenant_name=tenant.display_name if tenant is not None else "common")
        return audience

    # ------------------------------------------------------------------ outbound: the external issuer
    def _is_lab_issuer(self, url: str) -> bool:
        """Served by the lab's cluster issuer service (its port on loopback, whatever host name is used)."""
        issuer_base = self.lab.endpoints.get("issuer")
        if not issuer_base:
            return False
        try:
            return urlsplit(url).port == urlsplit(issuer_base).port
        except ValueError:
            return False

    async def fetch(self, url: str) -> federation.FetchResult:
        """GET an issuer's discovery document or JWKS, as Entra would, within the machine only.

        The lab must never reach outside the host: a token's ``iss`` is attacker-chosen and the lab runs on
        build machines, so anything but https on 127.0.0.0/8 (or ``localhost``, resolved over IPv4 only)
        is treated as unreachable. Redirects are not followed for the same reason.
        """
        if not federation.is_loopback_https_url(url):
            raise federation.FetchFailed(f"not a loopback https URL: {url}")
        if self.lab.faults.issuer_unreachable and self._is_lab_issuer(url):
            raise federation.FetchFailed("the lab's cluster issuer is unreachable (fault)")
        if self._client_ssl is None:
            self._client_ssl = self.lab.tls.client_context()
        connector = aiohttp.TCPConnector(ssl=self._client_ssl, family=socket.AF_INET, force_close=True)
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, \
                    session.get(url, allow_redirects=False, headers={"Accept": "application/json"}) as resp:
                body = await resp.content.read(federation.MAX_DOCUMENT_BYTES + 1)
                if len(body) > federation.MAX_DOCUMENT_BYTES:
                    raise federation.FetchFailed(f"document too large: {url}")
                return federation.FetchResult(resp.status, body)
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            log.info("entra: external OIDC endpoint %s failed: %s", url, exc.__class__.__name__)
            raise federation.FetchFailed(str(exc)) from None


# ---------------------------------------------------------------------- module helpers
def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)  # application/json; charset=utf-8


async def _form(request: web.Request) -> dict[str, str]:
    """Form fields as plain strings; unknown fields (claims, client_info, ...) are kept and ignored.

    A body that cannot be read as a form (malformed multipart, a part header line over aiohttp's line limit,
    a body over MAX_BODY_BYTES) yields no fields, so the request is answered as Entra answers a body it does
    not read as a form, e.g. JSON: AADSTS900144 for the missing grant_type (MicrosoftDocs/azure-docs#43780,
    microsoftgraph/microsoft-graph-docs#20272). [UNV] for the multipart and oversize cases themselves."""
    try:
        data = await request.post()
    except (ValueError, UnicodeDecodeError, HttpProcessingError, web.HTTPRequestEntityTooLarge):
        return {}
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _basic_credentials(request: web.Request) -> tuple[str | None, str | None]:
    """client_secret_basic: ``Authorization: Basic base64(urlencode(id):urlencode(secret))``."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (unquote(client_id) or None, unquote(secret) or None) if sep else (None, None)


def _assertion_facts(token: str) -> dict[str, Any]:
    """What the log may say about an assertion: decoded claims and a fingerprint, or just the fingerprint."""
    try:
        return federation.parse_assertion(token).log_view()
    except AadstsError:
        return {"fingerprint": federation.fingerprint(token), "malformed": True}


ENTRA_SERVICE = web.AppKey("entra_service", EntraService)


def build_app(lab: Lab) -> web.Application:
    service = EntraService(lab)
    app = web.Application(middlewares=[
        unexpected_error_middleware("entra", service.render_internal_error),
        fault_middleware(lab.faults, "entra", service.render_fault),
    ], client_max_size=MAX_BODY_BYTES)
    app[ENTRA_SERVICE] = service
    app.router.add_get("/common/discovery/instance", service.instance_discovery)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", service.openid_configuration_v2)
    app.router.add_get("/{tenant}/.well-known/openid-configuration", service.openid_configuration_v1)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", service.keys_v2)
    app.router.add_get("/{tenant}/discovery/keys", service.keys_v1)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", service.token_v2)
    app.router.add_post("/{tenant}/oauth2/token", service.token_v1)
    app.router.add_route("*", "/{tenant}/oauth2/v2.0/token", service.token_wrong_method)
    app.router.add_route("*", "/{tenant}/oauth2/token", service.token_wrong_method)
    return app
