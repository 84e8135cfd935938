"""Key Vault secrets data plane. Each vault has its own base URL, ``https://127.0.0.1:<its port>/``
(see ``Lab.vault_url``); the service's shared port stands for a vault name that does not resolve.

Order of checks, as the real service: challenge (401 + WWW-Authenticate when no token) -> token
(audience https://vault.azure.net, signature, lifetime, the vault's tenant) -> network (public network
access, firewall) -> authorization (RBAC data actions at secret/vault/ancestors, or access policies)
-> the secret. Bodies and texts: reference section 4.

Operations: get secret (latest or a version), list secrets, list a secret's versions, set secret, update a
secret's attributes, delete (soft: the vault keeps it, as every vault does since soft delete became mandatory),
list / get deleted secrets, recover and purge one.

Secret ids are ``<vault url>secrets/<name>/<version>``, as azure-keyvault-secrets parses them
(``scheme://host[:port]/secrets/<name>[/<version>]``) and as a client can request them again.
"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab import bodies
from lab.azure.access_tokens import TokenRejected, sts_issuer, verify_access_token
from lab.azure.bearer import caller_description, client_address, new_request_id, read_authorization
from lab.azure.world import KEYVAULT_AUDIENCE, DeletedSecret, SecretVersion, Vault
from lab.faults import fault_middleware
from lab.unexpected import unexpected_error_middleware

if TYPE_CHECKING:
    from lab.runtime import Lab

SERVICE_VERSION = "1.9.2421.1"
ACTION_GET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
ACTION_METADATA = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
ACTION_SET = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
ACTION_UPDATE = "Microsoft.KeyVault/vaults/secrets/update/action"
ACTION_DELETE = "Microsoft.KeyVault/vaults/secrets/delete"
ACTION_RECOVER = "Microsoft.KeyVault/vaults/secrets/recover/action"
ACTION_PURGE = "Microsoft.KeyVault/vaults/secrets/purge/action"
# unverified: which data action lists and reads deleted secrets; the REST reference says the secrets/list
# permission for access policies, so the RBAC counterpart is taken to be readMetadata (what listing needs)
ACTION_READ_DELETED = ACTION_METADATA
RECOVERABLE_DAYS = 90
MAX_PAGE = 25
MAX_BODY_BYTES = 1024 * 1024


class KvError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def secret_id_base(lab: Lab, vault: Vault) -> str:
    """Where secret ids start: the vault's URL without its trailing slash."""
    return lab.vault_url(vault.name).rstrip("/")


LAB: web.AppKey[Any] = web.AppKey("lab", object)


def build_app(lab: Lab) -> web.Application:
    app = web.Application(
        middlewares=[
            _envelope,
            unexpected_error_middleware("keyvault", _render_internal_error, (KvError,)),
            fault_middleware(lab.faults, "keyvault", _render_fault),
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[LAB] = lab
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _render_internal_error(_: web.Request) -> web.Response:  # [UNV] text
    error = KvError(500, "InternalServerError", "An unexpected error occurred while processing the request.")
    return _json(error.body(), status=error.status)


def _render_fault(status: int, retry_after: int) -> web.Response:
    if status == 429:  # [UNV] exact throttling text
        error = KvError(
            429,
            "Throttled",
            "Request was not allowed because application has exceeded the maximum "
            "number of requests. Please retry after the period given in the Retry-After header.",
        )
    else:
        error = KvError(503, "ServiceUnavailable", "The service is temporarily unavailable. Please retry.")
    return _json(error.body(), status=status, headers={"Retry-After": str(retry_after)})


@web.middleware
async def _envelope(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except KvError as error:
        response = _json(error.body(), status=error.status, headers=error.headers)
    lab: Lab = request.app[LAB]
    vault = _vault_of(request)
    response.headers["x-ms-request-id"] = new_request_id()
    response.headers["x-ms-keyvault-service-version"] = SERVICE_VERSION
    response.headers["x-ms-keyvault-region"] = vault.location if vault else lab.region
    response.headers["x-ms-keyvault-network-info"] = (
        f"conn_type=Ipv4;addr={client_address(request)};act_addr_fam=InterNetwork;"
    )
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers.setdefault("Pragma", "no-cache")
    response.headers.setdefault("Expires", "-1")
    if request.headers.get("x-ms-client-request-id"):
        response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
    return response


def _vault_name_of(request: web.Request) -> str | None:
    """Vaults are told apart by the port the request came in on, as real vaults are by host name."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, str):  # a lab pod's connection arrives on the unix socket named <port>.sock
        port = int(sockname.rsplit("/", 1)[-1].removesuffix(".sock"))
    elif sockname:
        port = sockname[1]
    else:
        return None
    return request.app[LAB].vault_by_port.get(port)


def _vault_of(request: web.Request) -> Vault | None:
    name = _vault_name_of(request)
    return request.app[LAB].azure.vaults.get(name) if name else None


def _challenge(lab: Lab, vault: Vault) -> dict[str, str]:
    return {
        "WWW-Authenticate": f'Bearer authorization="{lab.authority_host}{vault.tenant_id}", '
        f'resource="{KEYVAULT_AUDIENCE}"'
    }


def _unauthorized(lab: Lab, vault: Vault, message: str) -> KvError:
    return KvError(401, "Unauthorized", message, headers=_challenge(lab, vault))


def _authenticate(request: web.Request, lab: Lab, vault: Vault) -> dict[str, Any]:
    header = read_authorization(request)
    if header.token is None:
        raise _unauthorized(lab, vault, "AKV10000: Request is missing a Bearer or PoP token.")
    try:
        claims = verify_access_token(lab, header.token, [KEYVAULT_AUDIENCE])
    except TokenRejected as rejected:
        raise _token_error(lab, vault, header.token, rejected) from None
    if str(claims.get("tid", "")).lower() != vault.tenant_id.lower():
        raise _unauthorized(
            lab,
            vault,
            f"AKV10032: Invalid issuer. Expected one of "
            f"{sts_issuer(vault.tenant_id)}, found {claims.get('iss')}.",
        )
    return claims


def _token_error(lab: Lab, vault: Vault, token: str, rejected: TokenRejected) -> KvError:
    reason = rejected.reason
    if reason == "audience":
        return _unauthorized(
            lab, vault, f"AKV10022: Invalid audience. Expected {KEYVAULT_AUDIENCE}, found: {rejected.detail}."
        )
    if reason == "expired":
        return _unauthorized(lab, vault, "[TokenExpired] Error validating token: 'S2S12086'.")
    if reason == "not_yet_valid":  # [UNV] text seen from Managed HSM
        return _unauthorized(lab, vault, f"Token not yet valid (Activity ID: {new_request_id()})")
    if reason == "issuer":
        found = (rejected.claims or {}).get("iss", "")
        return _unauthorized(
            lab,
            vault,
            f"AKV10032: Invalid issuer. Expected one of {sts_issuer(vault.tenant_id)}, found {found}.",
        )
    # malformed, algorithm, signature: the key cannot be resolved or the signature does not verify.
    # AKV10046 is what real vaults answer for an unknown signing key; [UNV] for the other cases.
    encoded_header = token.split(".", 1)[0]
    return _unauthorized(
        lab,
        vault,
        "AKV10046: Unable to resolve the key used for signature validation. "
        f"EncodedJwtHeader: '{encoded_header}'.",
    )


def _vault_label(vault: Vault) -> str:
    return f"{vault.name};location={vault.location}"


def _check_network(request: web.Request, vault: Vault, claims: dict[str, Any]) -> None:
    caller = caller_description(claims, with_mirid=True)
    if vault.public_network_access.lower() == "disabled":
        raise KvError(
            403,
            "Forbidden",
            "Public network access is disabled and request is not from a trusted service nor via an "
            f"approved private link.\r\nCaller: {caller}\r\nVault: "
            f"{_vault_label(vault)}",
            inner="ForbiddenByConnection",
        )
    if vault.network_default_action.lower() != "deny":
        return
    address = client_address(request)
    if _address_allowed(address, vault.ip_rules):
        return
    raise KvError(
        403,
        "Forbidden",
        "Client address is not authorized and caller is not a trusted service."
        f"\r\nClient address: {address}\r\nCaller: {caller}\r\nVault: {_vault_label(vault)}",
        inner="ForbiddenByFirewall",
    )


def _address_allowed(address: str, rules: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for rule in rules:
        try:
            if ip in ipaddress.ip_network(rule.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def _authorize(
    lab: Lab, vault: Vault, claims: dict[str, Any], action: str, permission: str, resource: str
) -> None:
    oid = str(claims.get("oid", ""))
    if vault.enable_rbac_authorization:
        if lab.azure.permits(oid, resource, action, data_action=True):
            return
        caller = caller_description(claims, with_mirid=True)
        raise KvError(
            403,
            "Forbidden",
            (
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
                "assignments or role definitions were changed recently, please observe propagation "
                f"time.\r\nCaller: {caller}\r\nAction: '{action}'\r\nResource: "
                f"'{resource.lower()}'\r\nAssignment: (not found)\r\nDenyAssignmentId: "
                f"null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {_vault_label(vault)}\r\n"
            ),
            inner="ForbiddenByRbac",
        )
    tid = str(claims.get("tid", "")).lower()
    for policy in vault.access_policies:
        if str(policy.get("objectId", "")).lower() != oid.lower():
            continue
        if str(policy.get("tenantId", tid)).lower() != tid:
            continue
        if policy.get("applicationId") and not _through_application(claims, str(policy["applicationId"])):
            continue
        granted = [str(p).lower() for p in (policy.get("permissions") or {}).get("secrets", [])]
        if permission in granted or "all" in granted:
            return
    raise KvError(
        403,
        "Forbidden",
        (
            f"The user, group or application '{caller_description(claims)}' does not have secrets "
            f"{permission} permission on key vault '{_vault_label(vault)}'. For help resolving this issue, "
            "please see https://go.microsoft.com/fwlink/?linkid=2125287"
        ),
        inner="AccessDenied",
    )


def _through_application(claims: dict[str, Any], application_id: str) -> bool:
    """Whether a compound-identity policy (objectId + applicationId) covers the caller: "Application ID of the client
    making request on behalf of a principal" (AccessPolicyEntry; az keyvault set-policy --application-id: "Exposed
    for compound identity using on-behalf-of authentication flow"), so only a user's delegated token (idtyp user,
    or an scp claim) that the application obtained. An application's own token is matched only by a policy without
    applicationId: "for both application only and user only - objectid is populated and applicationid is null" (a
    Key Vault PM, MicrosoftDocs/azure-docs#66679); a service principal's policy with applicationId set answers 403
    (Azure-Samples/key-vault-node-getting-started#3: "only set the Object ID and leave Application ID empty").
    unverified: that an app-only token whose appid equals the policy's applicationId is refused too (the sources
    report the 403 without saying which ids the policy held)."""
    delegated = str(claims.get("idtyp", "")).lower() == "user" or bool(claims.get("scp"))
    return delegated and str(claims.get("appid") or claims.get("azp") or "").lower() == application_id.lower()


def _bad_parameter(message: str) -> KvError:
    return KvError(400, "BadParameter", message)


def _secret_not_found(name: str, version: str | None) -> KvError:
    shown = f"{name}/{version}" if version else name
    return KvError(
        404,
        "SecretNotFound",
        (
            f"A secret with (name/id) {shown} was not found in this key vault. If you recently deleted this "
            "secret you may be able to recover it using the correct recovery command. For help resolving "
            "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )


def _find_secret(vault: Vault, name: str) -> tuple[str, list[SecretVersion]] | None:
    for key, versions in vault.secrets.items():
        if key.lower() == name.lower():
            return key, versions
    return None


def _attributes(version: SecretVersion) -> dict[str, Any]:
    attributes: dict[str, Any] = {"enabled": version.enabled}
    if version.not_before is not None:
        attributes["nbf"] = version.not_before
    if version.expires is not None:
        attributes["exp"] = version.expires
    attributes.update({
        "created": version.created,
        "updated": version.updated or version.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": RECOVERABLE_DAYS,
    })
    return attributes


def _set_attributes(version: SecretVersion, attributes: Any) -> None:
    """enabled, nbf and exp from a request's ``attributes`` (set / update secret); a null nbf or exp clears it. Key
    Vault records nbf and exp and does not enforce them on get: an expired secret's GET answers 200
    (Azure/AzureKeyVault#19, 2024; Altinn/altinn-studio#5029)."""
    if attributes is None:
        return
    if not isinstance(attributes, dict):
        raise _bad_parameter("The parameter 'attributes' must be an object.")
    if attributes.get("enabled") is not None:
        version.enabled = bool(attributes["enabled"])
    for key, field_name in (("nbf", "not_before"), ("exp", "expires")):
        if key not in attributes:
            continue
        value = attributes[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _bad_parameter(f"The attribute '{key}' must be a number of seconds since the epoch.")  # [UNV] text
        setattr(version, field_name, None if value is None else int(value))


def _bundle(lab: Lab, vault: Vault, name: str, version: SecretVersion) -> dict[str, Any]:
    """A secret with its value (get/set); list items are the same without it."""
    return {"value": version.value, **_item(lab, vault, name, version, with_version=True)}


def _item(lab: Lab, vault: Vault, name: str, version: SecretVersion, with_version: bool) -> dict[str, Any]:
    suffix = f"/{version.version}" if with_version else ""
    item: dict[str, Any] = {
        "id": f"{secret_id_base(lab, vault)}/secrets/{name}{suffix}",
        "attributes": _attributes(version),
        "tags": dict(version.tags),
    }
    if version.content_type:
        item["contentType"] = version.content_type
    return item


def _page(request: web.Request, items: list[dict[str, Any]]) -> web.Response:
    try:
        size = int(request.query.get("maxresults") or MAX_PAGE)
        offset = int(request.query.get("$skiptoken") or 0)
    except ValueError:
        raise _bad_parameter("The parameters maxresults and $skiptoken must be integers.") from None
    if not 1 <= size <= MAX_PAGE:
        raise _bad_parameter(f"Invalid maxresults value {size}. It must be between 1 and {MAX_PAGE}.")
    chunk = items[offset : offset + size]
    next_link = None
    if offset + size < len(items):
        next_link = str(request.url.update_query({"$skiptoken": str(offset + size), "maxresults": str(size)}))
    return _json({"value": chunk, "nextLink": next_link})


async def _dispatch(request: web.Request) -> web.StreamResponse:
    lab: Lab = request.app[LAB]
    vault = _vault_of(request)
    if vault is None:
        # A real client would fail to resolve <name>.vault.azure.net; the lab answers 404 instead. A soft-deleted
        # vault keeps its DNS record ("The DNS record corresponding to the vault is also retained for the duration
        # of the retention interval", the soft-delete overview of 2019); what Key Vault answers there: unverified,
        # the lab answers the same 404.
        name = _vault_name_of(request) or "(none)"
        raise KvError(
            404,
            "VaultNotFound",
            f"The vault '{name}' does not exist. A real client would fail to "
            f"resolve '{name}.vault.azure.net'.",
        )
    claims = _authenticate(request, lab, vault)
    if not request.query.get("api-version"):
        raise _bad_parameter("The api-version query parameter is missing.")
    _check_network(request, vault, claims)

    method = request.method.upper()
    rest = request.path.lstrip("/").split("/")
    if rest and rest[-1] == "":
        rest = rest[:-1]  # the SDK asks for /secrets/<name>/ (trailing slash) for the latest version
    if rest and rest[0].lower() == "deletedsecrets":
        return _deleted_secrets(request, lab, vault, claims, method, rest)
    if not rest or rest[0].lower() != "secrets":
        raise _bad_parameter(f"The request URI '{request.path}' is not a Key Vault secrets operation.")
    secrets_scope = f"{vault.resource_id}/secrets"
    if len(rest) == 1:
        if method != "GET":
            raise _bad_parameter(f"Method {method} is not allowed on the secrets collection.")
        _authorize(lab, vault, claims, ACTION_METADATA, "list", vault.resource_id)
        items = []
        for key in sorted(vault.secrets, key=str.lower):
            versions = vault.secrets[key]
            if versions:
                items.append(_item(lab, vault, key, versions[-1], with_version=False))
        return _page(request, items)

    name = rest[1]
    resource = f"{secrets_scope}/{name}"
    if len(rest) == 2 and method == "PUT":
        _authorize(lab, vault, claims, ACTION_SET, "set", resource)
        return await _set_secret(request, lab, vault, name)
    if method == "DELETE" and len(rest) == 2:
        _authorize(lab, vault, claims, ACTION_DELETE, "delete", resource)
        return _delete_secret(lab, vault, name)
    if method == "PATCH" and len(rest) <= 3:
        _authorize(lab, vault, claims, ACTION_UPDATE, "set", resource)
        return await _update_secret(request, lab, vault, name, rest[2] if len(rest) == 3 else None)
    if method != "GET" or len(rest) > 3:
        raise _bad_parameter(f"The request URI '{request.path}' with method {method} is not supported.")
    if len(rest) == 3 and rest[2].lower() == "versions":
        _authorize(lab, vault, claims, ACTION_METADATA, "list", resource)
        found = _find_secret(vault, name)
        if found is None:
            raise _secret_not_found(name, None)
        key, versions = found
        return _page(request, [_item(lab, vault, key, v, with_version=True) for v in versions])

    version_id = rest[2] if len(rest) == 3 else None
    _authorize(lab, vault, claims, ACTION_GET, "get", resource)
    found = _find_secret(vault, name)
    if found is None or not found[1]:
        raise _secret_not_found(name, version_id)
    key, versions = found
    if version_id:
        chosen = next((v for v in versions if v.version.lower() == version_id.lower()), None)
        if chosen is None:
            raise _secret_not_found(name, version_id)
    else:
        chosen = versions[-1]
    if not chosen.enabled:
        raise KvError(
            403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner="SecretDisabled"
        )
    return _json(_bundle(lab, vault, key, chosen))


async def _update_secret(
    request: web.Request, lab: Lab, vault: Vault, name: str, version_id: str | None
) -> web.Response:
    """Update Secret (``PATCH /secrets/{name}/{version}``; ``az keyvault secret set-attributes`` sends an empty
    version, ``/secrets/{name}/``, for the latest): attributes, content type and tags change, the value never.
    The answer is the secret's bundle without its value."""
    body = await _json_body(request)
    found = _find_secret(vault, name)
    if found is None or not found[1]:
        raise _secret_not_found(name, version_id)
    key, versions = found
    version = versions[-1]
    if version_id:
        chosen = next((v for v in versions if v.version.lower() == version_id.lower()), None)
        if chosen is None:
            raise _secret_not_found(name, version_id)
        version = chosen
    _set_attributes(version, body.get("attributes"))
    if isinstance(body.get("contentType"), str):
        version.content_type = body["contentType"]
    if isinstance(body.get("tags"), dict):
        version.tags = {str(k): str(v) for k, v in body["tags"].items()}
    version.updated = int(time.time())
    return _json(_item(lab, vault, key, version, with_version=True))


async def _json_value(request: web.Request) -> Any:
    """The request body as JSON (an empty body reads as ``{}``), with Key Vault's answers to one too large or not
    JSON."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        # [UNV] Key Vault's answer to a body over its size limit (the lab's limit: MAX_BODY_BYTES)
        raise KvError(413, "RequestEntityTooLarge",
                      f"The request body is larger than the maximum of {MAX_BODY_BYTES} bytes.") from None
    try:
        text = raw.decode("utf-8") if raw else "{}"
        if bodies.json_too_deep(text) is not None:
            raise ValueError("nested too deeply")  # [UNV] answered as any other body that is not JSON
        return json.loads(text)
    except ValueError:
        raise _bad_parameter("The request body is not valid JSON.") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    body = await _json_value(request)
    if not isinstance(body, dict):
        raise _bad_parameter("The request body must be a JSON object.")
    return body


async def _set_secret(request: web.Request, lab: Lab, vault: Vault, name: str) -> web.Response:
    body = await _json_value(request)
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise _bad_parameter("The parameter 'value' is required and must be a string.")
    if not all(c.isalnum() or c == "-" for c in name) or not 1 <= len(name) <= 127:
        raise _bad_parameter(
            f"The secret name '{name}' is invalid. Secret names may contain only 0-9, a-z, A-Z and -, and be "
            "at most 127 characters long."
        )
    if _find_deleted(vault, name) is not None:
        raise KvError(
            409, "Conflict",
            f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this "
            "state, the secret can only be recovered or purged.",
            inner="ObjectIsDeletedButRecoverable",
        )
    found = _find_secret(vault, name)
    key = found[0] if found else name
    version = vault.set_secret(key, body["value"])
    version.created = int(time.time())
    if isinstance(body.get("contentType"), str):
        version.content_type = body["contentType"]
    if isinstance(body.get("tags"), dict):
        version.tags = {str(k): str(v) for k, v in body["tags"].items()}
    _set_attributes(version, body.get("attributes"))
    return _json(_bundle(lab, vault, key, version))


# ---------------------------------------------------------------------------- soft delete
# Bodies: the REST reference's DeleteSecret example (recoveryId, deletedDate, scheduledPurgeDate, then the secret's
# id, attributes, tags); 404 for a name not deleted: SecretNotFound "Deleted Secret not found: <name>" (the SDKs'
# recorded answers); re-creating a deleted name: 409 Conflict, innererror ObjectIsDeletedButRecoverable.


def _find_deleted(vault: Vault, name: str) -> str | None:
    return next((key for key in vault.deleted_secrets if key.lower() == name.lower()), None)


def _deleted_not_found(name: str) -> KvError:
    return KvError(404, "SecretNotFound", f"Deleted Secret not found: {name}")


def _deleted_item(lab: Lab, vault: Vault, key: str, deleted: DeletedSecret, with_version: bool) -> dict[str, Any]:
    return {
        "recoveryId": f"{secret_id_base(lab, vault)}/deletedsecrets/{key}",
        "deletedDate": deleted.deleted_date,
        "scheduledPurgeDate": deleted.scheduled_purge_date,
        **_item(lab, vault, key, deleted.versions[-1], with_version=with_version),
    }


def _delete_secret(lab: Lab, vault: Vault, name: str) -> web.Response:
    found = _find_secret(vault, name)
    if found is None or not found[1]:
        raise _secret_not_found(name, None)
    key, versions = found
    now = int(time.time())
    deleted = DeletedSecret(versions=versions, deleted_date=now, scheduled_purge_date=now + RECOVERABLE_DAYS * 86400)
    del vault.secrets[key]
    vault.deleted_secrets[key] = deleted
    return _json(_deleted_item(lab, vault, key, deleted, with_version=True))


def _deleted_secrets(
    request: web.Request, lab: Lab, vault: Vault, claims: dict[str, Any], method: str, rest: list[str]
) -> web.Response:
    """GET /deletedsecrets, GET and DELETE (purge) /deletedsecrets/{name}, POST /deletedsecrets/{name}/recover."""
    if len(rest) == 1 and method == "GET":
        _authorize(lab, vault, claims, ACTION_READ_DELETED, "list", vault.resource_id)
        return _page(request, [_deleted_item(lab, vault, key, vault.deleted_secrets[key], with_version=False)
                               for key in sorted(vault.deleted_secrets, key=str.lower)])
    if len(rest) < 2 or len(rest) > 3 or (len(rest) == 3 and (rest[2].lower() != "recover" or method != "POST")):
        raise _bad_parameter(f"The request URI '{request.path}' with method {method} is not supported.")
    name = rest[1]
    resource = f"{vault.resource_id}/secrets/{name}"
    if len(rest) == 3:
        _authorize(lab, vault, claims, ACTION_RECOVER, "recover", resource)
    elif method == "GET":
        _authorize(lab, vault, claims, ACTION_READ_DELETED, "list", resource)
    elif method == "DELETE":
        _authorize(lab, vault, claims, ACTION_PURGE, "purge", resource)
    else:
        raise _bad_parameter(f"The request URI '{request.path}' with method {method} is not supported.")
    key = _find_deleted(vault, name)
    if key is None:
        raise _deleted_not_found(name)
    if method == "GET":
        return _json(_deleted_item(lab, vault, key, vault.deleted_secrets[key], with_version=True))
    deleted = vault.deleted_secrets.pop(key)
    if method == "DELETE":
        return web.Response(status=204)
    vault.secrets[key] = deleted.versions
    return _json(_item(lab, vault, key, deleted.versions[-1], with_version=True))
