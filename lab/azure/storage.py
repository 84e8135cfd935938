"""Blob storage with Entra bearer tokens: the read path, List Blobs, List Containers, and Put Blob / Delete Blob (what a person uploads or
deletes a blob with, Storage Blob Data Contributor's write and delete data actions). One base URL per account:
``https://127.0.0.1:PORT/<account>/`` (the Azurite-style form azure-storage-blob accepts for 127.0.0.1).

``GET|HEAD /<account>/<container>/<blob>``: network rules (ARM's publicNetworkAccess and networkAcls: a
refused address is 403 AuthorizationFailure, before the token is looked at; unverified order) -> token
(audience https://storage.azure.com, x-ms-version
>= 2017-11-09) -> RBAC data action ``.../containers/blobs/read`` at the blob, container, account or any
ancestor (Storage Blob Data Reader) -> container -> blob. Ranges (``x-ms-range``/``Range``) answer 206
with Content-Range, as the SDK's downloader needs. Errors are the service's XML documents with
``x-ms-error-code`` (reference section 6).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from datetime import UTC, datetime
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from aiohttp import web

from lab.azure.access_tokens import TokenRejected, verify_access_token
from lab.azure.bearer import address_in_rules, client_address, new_request_id, read_authorization
from lab.azure.world import STORAGE_AUDIENCE, StorageAccount
from lab.faults import fault_middleware
from lab.unexpected import unexpected_error_middleware

if TYPE_CHECKING:
    from lab.runtime import Lab

READ_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
WRITE_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
DELETE_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"
CONTAINERS_READ_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
CONTAINER_WRITE_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
CONTAINER_DELETE_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/delete"
# Naming and Referencing Containers: 3-63 characters, lowercase letters, digits and single dashes, starting and
# ending with a letter or digit
_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]")
OAUTH_MIN_VERSION = "2017-11-09"
CHALLENGE_MIN_VERSION = "2019-12-12"
DEFAULT_VERSION = "2026-10-06"
SERVER = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
AUTH_FAILED = (
    "Server failed to authenticate the request. Please refer to the information in the www-authenticate "
    "header."
)
SIGNATURE_FAILED = (
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
    "correctly including the signature."
)
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_FIRST_SEEN: dict[tuple[str, str, str, str], float] = {}  # (account, container, blob, sha256) -> first read


class StorageError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail
        self.headers = headers or {}


LAB: web.AppKey[Any] = web.AppKey("lab", object)


def build_app(lab: Lab) -> web.Application:
    app = web.Application(middlewares=[
        _envelope,
        unexpected_error_middleware("storage", _render_internal_error, (StorageError,)),
        fault_middleware(lab.faults, "storage", _render_fault),
    ])
    app[LAB] = lab
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


def _timestamp() -> str:
    moment = datetime.now(tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def _error_response(error: StorageError, request_id: str, version: str, method: str) -> web.Response:
    headers = {
        "x-ms-error-code": error.code,
        "x-ms-request-id": request_id,
        "x-ms-version": version,
        "Server": SERVER,
        **error.headers,
    }
    if method == "HEAD":
        return web.Response(status=error.status, headers=headers)
    detail = (
        f"<AuthenticationErrorDetail>{escape(error.detail)}</AuthenticationErrorDetail>"
        if error.detail
        else ""
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{error.code}</Code><Message>{escape(error.message)}\nRequestId:{request_id}\nTime:{_timestamp()}</Message>{detail}</Error>"
    )
    return web.Response(
        status=error.status, body=body.encode(), content_type="application/xml", headers=headers
    )


def _render_internal_error(request: web.Request) -> web.Response:
    error = StorageError(500, "InternalError", "Server encountered an internal error. Please try again after some time.")
    return _error_response(error, new_request_id(), DEFAULT_VERSION, request.method.upper())


def _render_fault(status: int, retry_after: int) -> web.Response:
    message = (
        "Operations per second is over the account limit."
        if status == 429
        else "The server is currently unable to receive requests. Please retry your request."
    )
    error = StorageError(status, "ServerBusy", message, headers={"Retry-After": str(retry_after)})
    return _error_response(error, new_request_id(), DEFAULT_VERSION, "GET")


@web.middleware
async def _envelope(request: web.Request, handler: Any) -> web.StreamResponse:
    request_id = new_request_id()
    version = request.headers.get("x-ms-version") or DEFAULT_VERSION
    try:
        response = await handler(request)
    except StorageError as error:
        response = _error_response(error, request_id, version, request.method.upper())
    response.headers.setdefault("x-ms-request-id", request_id)
    response.headers.setdefault("x-ms-version", version)
    response.headers.setdefault("Server", SERVER)
    response.headers["Date"] = formatdate(usegmt=True)
    if request.headers.get("x-ms-client-request-id"):
        response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
    return response


def _challenge(lab: Lab) -> dict[str, str]:
    return {
        "WWW-Authenticate": (
            f"Bearer authorization_uri={lab.authority_host}{lab.azure.tenant_id}/oauth2/authorize "
            f"resource_id={STORAGE_AUDIENCE}"
        )
    }


_DETAILS = {  # TokenRejected.reason -> AuthenticationErrorDetail
    "audience": "Audience validation failed. Audience did not match.",
    "expired": "Lifetime validation failed. The token is expired.",
    "not_yet_valid": "Lifetime validation failed. The token is not yet valid.",  # [UNV]
    "issuer": "Issuer validation failed. Issuer did not match.",
}


def _authenticate(request: web.Request, lab: Lab) -> dict[str, Any]:
    header = read_authorization(request)
    version = request.headers.get("x-ms-version")
    if not header.present:
        if version and version >= CHALLENGE_MIN_VERSION:
            raise StorageError(401, "NoAuthenticationInformation", AUTH_FAILED, headers=_challenge(lab))
        # Older versions treat the request as anonymous: a private container looks absent.
        raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
    if header.token is None:
        raise StorageError(
            403,
            "AuthenticationFailed",
            SIGNATURE_FAILED,
            detail=f"Authentication scheme {header.scheme or '(none)'} is not supported.",
        )
    if not version or version < OAUTH_MIN_VERSION:
        raise StorageError(
            403,
            "AuthenticationFailed",
            SIGNATURE_FAILED,
            detail="Authentication scheme Bearer is not supported in this version.",
        )
    try:
        claims = verify_access_token(lab, header.token, [STORAGE_AUDIENCE])
    except TokenRejected as rejected:
        detail = _DETAILS.get(
            rejected.reason, "Signature validation failed. Signature is invalid."
        )  # [UNV] wording
        raise StorageError(
            401, "InvalidAuthenticationInfo", AUTH_FAILED, detail=detail, headers=_challenge(lab)
        ) from None
    if str(claims.get("tid", "")).lower() != lab.azure.tenant_id.lower():
        raise StorageError(
            401, "InvalidAuthenticationInfo", AUTH_FAILED, detail=_DETAILS["issuer"], headers=_challenge(lab)
        )
    return claims


def _check_network(request: web.Request, account: StorageAccount) -> None:
    """The account's firewall. Storage gives network refusals the generic AuthorizationFailure code (users of
    Storage Explorer report exactly this text when 'Firewalls and virtual networks' blocks them); that public
    network access disabled answers the same is unverified."""
    closed = account.public_network_access.lower() == "disabled"
    if closed or (account.network_default_action.lower() == "deny"
                  and not address_in_rules(client_address(request), account.ip_rules)):
        raise StorageError(403, "AuthorizationFailure",
                           "This request is not authorized to perform this operation.")


def blob_resource_id(account: StorageAccount, container: str, blob: str) -> str:
    return f"{account.resource_id}/blobServices/default/containers/{container}/blobs/{blob}"


def _etag_and_time(account: str, container: str, blob: str, data: bytes) -> tuple[str, float]:
    digest = hashlib.sha256(data).hexdigest()
    key = (account.lower(), container, blob, digest)
    first = _FIRST_SEEN.setdefault(key, time.time())
    return f'"0x8D{digest[:13].upper()}"', first


def _parse_range(text: str | None, size: int) -> tuple[int, int] | None:
    if not text:
        return None
    match = _RANGE.match(text.strip())
    if not match:
        raise StorageError(
            400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format."
        )
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    if start >= size or end < start:
        raise StorageError(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, min(end, size - 1)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    lab: Lab = request.app[LAB]
    parts = request.path.lstrip("/").split("/", 2)
    account = lab.azure.storage_accounts.get(parts[0].lower()) if parts and parts[0] else None
    if account is None:
        # A real client would fail to resolve <name>.blob.core.windows.net; the lab answers 404 instead.
        raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
    method = request.method.upper()
    _check_network(request, account)
    claims = _authenticate(request, lab)
    if method not in ("GET", "HEAD", "PUT", "DELETE"):
        raise StorageError(405, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb.")
    if (method == "GET" and len(parts) == 2 and parts[1] and request.query.get("restype") == "container"
            and request.query.get("comp") == "list"):
        include = set(request.query.get("include", "").split(","))
        return _list_blobs(lab, account, parts[1], claims, f"{request.url.origin()}/{account.name}/", include)
    if method in ("PUT", "DELETE") and len(parts) == 2 and parts[1] and request.query.get("restype") == "container" \
            and "comp" not in request.query:
        return _create_or_delete_container(lab, account, parts[1], claims, method)
    if method == "GET" and (len(parts) == 1 or not parts[1]) and request.query.get("comp") == "list" \
            and "restype" not in request.query:
        return _list_containers(lab, account, claims, f"{request.url.origin()}/{account.name}/")
    if len(parts) < 3 or not parts[1] or not parts[2]:
        raise StorageError(
            400,
            "UnsupportedQueryParameter",
            "The lab's blob service answers blob reads, Put Blob, Delete Blob, Undelete Blob, List Blobs, List "
            "Containers, Create Container and Delete Container only.",
        )
    container_name, blob_name = parts[1], parts[2]
    # Undelete Blob is a PUT too: the write data action (unverified: the docs' table for Undelete Blob)
    action = {"PUT": WRITE_ACTION, "DELETE": DELETE_ACTION}.get(method, READ_ACTION)
    container = _permitted_container(lab, account, container_name, claims,
                                     blob_resource_id(account, container_name, blob_name), action)
    if method == "PUT" and request.query.get("comp") == "undelete":
        return _undelete_blob(account, container_name, blob_name, container)
    if method == "PUT":
        return await _put_blob(request, account, container_name, blob_name, container)
    if method == "DELETE":
        data = container.pop(blob_name, None)
        if data is None:
            raise StorageError(404, "BlobNotFound", "The specified blob does not exist.")
        if account.delete_retention_days is None:  # no blob soft delete: gone for good
            return web.Response(status=202, headers={"x-ms-delete-type-permanent": "true"})
        # blob soft delete keeps it for the retention days: Get Blob answers BlobNotFound meanwhile, List Blobs
        # shows it only with include=deleted (learn.microsoft.com, Soft delete for blobs; Delete Blob's
        # x-ms-delete-type-permanent is false for a soft delete)
        account.deleted_blobs.setdefault(container_name, {})[blob_name] = (data, time.time())
        return web.Response(status=202, headers={"x-ms-delete-type-permanent": "false"})
    data = container.get(blob_name)
    if data is None:
        raise StorageError(404, "BlobNotFound", "The specified blob does not exist.")

    etag, modified = _etag_and_time(account.name, container_name, blob_name, data)
    headers = {
        "ETag": etag,
        "Last-Modified": formatdate(modified, usegmt=True),
        "x-ms-creation-time": formatdate(modified, usegmt=True),
        "x-ms-blob-type": "BlockBlob",
        "x-ms-lease-status": "unlocked",
        "x-ms-lease-state": "available",
        "x-ms-server-encrypted": "true",
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - Content-MD5 is MD5
    byte_range = _parse_range(request.headers.get("x-ms-range") or request.headers.get("Range"), len(data))
    status = 200
    if byte_range is None:
        body = data
        headers["Content-MD5"] = md5
    else:
        start, end = byte_range
        body = data[start : end + 1]
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        headers["x-ms-blob-content-md5"] = md5
        if request.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
    if method == "HEAD":
        headers["Content-Length"] = str(len(data))
        return web.Response(status=200, headers=headers)
    response = web.Response(status=status, body=body, headers=headers)
    return response


def _permitted_container(lab: Lab, account: StorageAccount, container_name: str, claims: dict[str, Any],
                         scope: str, action: str) -> dict[str, bytes]:
    """The container's blobs, once the caller holds the data action at ``scope`` (the service checks the
    authorization before it looks the container up: a caller without it learns nothing of what exists)."""
    if not lab.azure.permits(str(claims.get("oid", "")), scope, action, data_action=True):
        raise StorageError(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )
    container = account.containers.get(container_name)
    if container is None:
        raise StorageError(404, "ContainerNotFound", "The specified container does not exist.")
    return container


def _list_blobs(lab: Lab, account: StorageAccount, container_name: str, claims: dict[str, Any],
                endpoint: str, include: set[str]) -> web.Response:
    """List Blobs (``?restype=container&comp=list``, what ``az storage blob list`` sends): one page, every blob,
    under the read data action at the container or above (the REST reference's EnumerationResults document)."""
    scope = f"{account.resource_id}/blobServices/default/containers/{container_name}"
    container = _permitted_container(lab, account, container_name, claims, scope, READ_ACTION)
    listed = [(name, data, None) for name, data in container.items()]
    if "deleted" in include:  # include=deleted adds the soft-deleted blobs, <Deleted>true</Deleted>
        listed += [(name, data, when) for name, (data, when) in _soft_deleted(account, container_name).items()]
    blobs = []
    for name, data, deleted_at in sorted(listed, key=lambda item: (item[0], item[2] is None)):
        etag, modified = _etag_and_time(account.name, container_name, name, data)
        stamp = formatdate(modified, usegmt=True)
        deleted = "" if deleted_at is None else "<Deleted>true</Deleted>"
        deleted_time = "" if deleted_at is None else (
            f"<DeletedTime>{formatdate(deleted_at, usegmt=True)}</DeletedTime>"
            f"<RemainingRetentionDays>{account.delete_retention_days or 1}</RemainingRetentionDays>")
        blobs.append(
            f"<Blob><Name>{escape(name)}</Name>{deleted}<Properties><Creation-Time>{stamp}</Creation-Time>"
            f"<Last-Modified>{stamp}</Last-Modified><Etag>{escape(etag)}</Etag>"
            f"<Content-Length>{len(data)}</Content-Length><Content-Type>application/octet-stream</Content-Type>"
            "<BlobType>BlockBlob</BlobType><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
            f"<ServerEncrypted>true</ServerEncrypted>{deleted_time}</Properties></Blob>"
        )
    body = ('<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ServiceEndpoint="{escape(endpoint)}" ContainerName="{escape(container_name)}">'
            f"<Blobs>{''.join(blobs)}</Blobs><NextMarker /></EnumerationResults>")
    return web.Response(status=200, body=body.encode(), content_type="application/xml")


def _list_containers(lab: Lab, account: StorageAccount, claims: dict[str, Any], endpoint: str) -> web.Response:
    """List Containers (``GET /<account>/?comp=list``, what ``az storage container list`` sends): one page, every
    container, to a caller holding ``.../blobServices/containers/read`` on the account (an action, not a data action,
    in Storage Blob Data Reader, Contributor and Owner alike; unverified that Storage weighs exactly this one for a
    bearer token's List Containers), as the REST reference's EnumerationResults document (Containers/Container/Name,
    Properties)."""
    if not lab.azure.permits(str(claims.get("oid", "")), account.resource_id, CONTAINERS_READ_ACTION):
        raise StorageError(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )
    listed = []
    for name, blobs in sorted(account.containers.items()):
        digest = hashlib.sha256(name.encode()).hexdigest()
        stamp = formatdate(min((_etag_and_time(account.name, name, blob, data)[1] for blob, data in blobs.items()),
                               default=time.time()), usegmt=True)
        listed.append(
            f"<Container><Name>{escape(name)}</Name><Properties><Last-Modified>{stamp}</Last-Modified>"
            f'<Etag>"0x8D{digest[:13].upper()}"</Etag><LeaseStatus>unlocked</LeaseStatus>'
            "<LeaseState>available</LeaseState><HasImmutabilityPolicy>false</HasImmutabilityPolicy>"
            "<HasLegalHold>false</HasLegalHold></Properties></Container>"
        )
    body = ('<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ServiceEndpoint="{escape(endpoint)}">'
            f"<Containers>{''.join(listed)}</Containers><NextMarker /></EnumerationResults>")
    return web.Response(status=200, body=body.encode(), content_type="application/xml")


def _create_or_delete_container(lab: Lab, account: StorageAccount, name: str, claims: dict[str, Any],
                                method: str) -> web.Response:
    """Create Container (``PUT ?restype=container``: 201, or 409 ContainerAlreadyExists) and Delete Container
    (``DELETE ?restype=container``: 202, or 404 ContainerNotFound), what ``az storage container create|delete
    --auth-mode login`` send, under the container write / delete action at the container or above (Storage Blob Data
    Contributor's actions; unverified that Storage weighs exactly these for a bearer token). A deleted container
    goes at once with its blobs (Azure removes it within a while and refuses its name meanwhile; no container soft
    delete in the lab)."""
    scope = f"{account.resource_id}/blobServices/default/containers/{name}"
    action = CONTAINER_WRITE_ACTION if method == "PUT" else CONTAINER_DELETE_ACTION
    if not lab.azure.permits(str(claims.get("oid", "")), scope, action):
        raise StorageError(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )
    if method == "PUT":
        if name in account.containers:
            raise StorageError(409, "ContainerAlreadyExists", "The specified container already exists.")
        if not _CONTAINER_NAME.fullmatch(name) or "--" in name:  # unverified: the text as users quote it (sic)
            raise StorageError(400, "InvalidResourceName", "The specifed resource name contains invalid characters.")
        account.containers[name] = {}
        etag = '"0x8D' + hashlib.sha256(name.encode()).hexdigest()[:13].upper() + '"'
        return web.Response(status=201, headers={"ETag": etag, "Last-Modified": formatdate(usegmt=True)})
    if account.containers.pop(name, None) is None:
        raise StorageError(404, "ContainerNotFound", "The specified container does not exist.")
    # blob soft delete does not keep a deleted container's blobs (container soft delete would; the lab has none)
    account.deleted_blobs.pop(name, None)
    return web.Response(status=202)


def _soft_deleted(account: StorageAccount, container_name: str) -> dict[str, tuple[bytes, float]]:
    """The container's soft-deleted blobs still within the retention days (those past it are gone)."""
    kept = account.deleted_blobs.get(container_name, {})
    if account.delete_retention_days is not None:
        # unverified: a soft-deleted blob past its retention is removed; turning soft delete off keeps the blobs
        # already deleted until their retention ends (here: the days they were deleted under are not kept apart)
        horizon = time.time() - account.delete_retention_days * 86400
        for name in [n for n, (_, when) in kept.items() if when < horizon]:
            del kept[name]
    return kept


def _undelete_blob(account: StorageAccount, container_name: str, blob_name: str,
                   container: dict[str, bytes]) -> web.Response:
    """Undelete Blob (``PUT ?comp=undelete``, what ``az storage blob undelete`` sends): 200, the soft-deleted blob
    restored with its contents; a blob that is not soft-deleted is left as it is (the az CLI's help: "will succeed
    without any changes"). Unverified: the answer for a name neither live nor soft-deleted (here 404 BlobNotFound)
    and a restore over a live blob of the same name (here the live one is kept)."""
    deleted = _soft_deleted(account, container_name)
    if blob_name in deleted:
        data, _ = deleted.pop(blob_name)
        container.setdefault(blob_name, data)
    elif blob_name not in container:
        raise StorageError(404, "BlobNotFound", "The specified blob does not exist.")
    return web.Response(status=200)


async def _put_blob(request: web.Request, account: StorageAccount, container_name: str, blob_name: str,
                    container: dict[str, bytes]) -> web.Response:
    """Put Blob (a block blob in one request, what ``az storage blob upload`` and the SDK's upload_blob send for
    small content): 201 Created, replacing any blob of that name."""
    kind = request.headers.get("x-ms-blob-type")
    if kind is None:
        raise StorageError(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not "
                           "specified.")
    if kind != "BlockBlob":
        raise StorageError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct "
                           "format.")
    data = await request.read()
    container[blob_name] = data
    etag, modified = _etag_and_time(account.name, container_name, blob_name, data)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - Content-MD5 is MD5
    return web.Response(status=201, headers={
        "ETag": etag, "Last-Modified": formatdate(modified, usegmt=True), "Content-MD5": md5,
        "x-ms-request-server-encrypted": "true",
    })
