"""The cluster's OIDC issuer: the discovery document and the JWKS, served where AKS serves them.

``lab.issuer_url`` is ``https://127.0.0.1:PORT/<region>/<tenant-id>/<cluster-guid>/`` (trailing slash), the
lab's stand-in for ``https://<region>.oic.prod-aks.azure.com/<tenant-id>/<cluster-guid>/``. Two documents
live under it (reference §6):

    <issuer>.well-known/openid-configuration   {"issuer", "jwks_uri", "response_types_supported",
                                                 "subject_types_supported", "id_token_signing_alg_values_supported"}
    <issuer>openid/v1/jwks                      {"keys": [{"use","kty","kid","alg","n","e"}, ...]}

AKS publishes these as blobs in a public, read-only storage container, so everything else answers the way
Azure Blob Storage answers an anonymous request: ``404`` with an XML ``<Error>`` body (``BlobNotFound`` for
a missing blob in the issuer's "container", ``ResourceNotFound`` elsewhere and for any write). The JWKS is
rendered on every request, so a key rotation (:func:`rotate_issuer_keys`) shows at once, with the retired
key still published for its window, as AKS keeps both keys valid for 24 hours.

Faults: :func:`lab.faults.fault_middleware` (latency, 429/503) under the name ``issuer``; and while
``lab.faults.issuer_unreachable`` is set the issuer drops every connection without an answer, which is what
an HTTP client sees of an unreachable issuer (``Connection aborted`` / ``RemoteDisconnected``) rather than
a well-formed error page. Entra reads the flag directly for its own discovery fetches.
"""

from __future__ import annotations

import email.utils
import json
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from lab.faults import Handler, fault_middleware
from lab.keys import SigningKey
from lab.unexpected import unexpected_error_middleware

if TYPE_CHECKING:
    from lab.runtime import Lab

DISCOVERY_PATH = ".well-known/openid-configuration"
JWKS_PATH = "openid/v1/jwks"
BLOB_SERVER = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"


def issuer_path(lab: Lab) -> str:
    """The issuer URL's path, with its trailing slash: ``/<region>/<tenant>/<cluster-guid>/``."""
    return urlsplit(lab.issuer_url).path


def own_managed_cluster(lab: Lab) -> Any | None:
    """The ARM managed cluster that is the lab's Kubernetes cluster (lab.json ``cluster``), when there is one."""
    own = getattr(lab, "extra", {}).get("cluster") or {}
    for cluster in getattr(getattr(lab, "azure", None), "clusters", {}).values():
        if (cluster.name.lower(), cluster.resource_group.lower()) == (
                str(own.get("name")).lower(), str(own.get("resource_group")).lower()):
            return cluster
    return None


def signing_issuer(lab: Lab) -> str:
    """The ``iss`` the API server writes into ServiceAccount tokens. With the OIDC issuer on, the public issuer
    URL; on a cluster made without it (``lab ctl cluster --oidc-issuer off``), the API server's own issuer, which
    Entra cannot discover: AKS's use-oidc-issuer doc says enabling the issuer changes the tokens' issuer and asks
    for pods to be restarted. unverified: the value of that default issuer on today's AKS (Azure/AKS#2523 showed
    the API server's FQDN, doubly quoted, on 1.21); the lab writes ``https://<fqdn>``. Each issuer the API server
    signed with stays accepted by it, as kube-apiserver accepts every --service-account-issuer it was given."""
    cluster = own_managed_cluster(lab)
    issuer = lab.issuer_url if cluster is None or cluster.oidc_issuer_enabled else f"https://{cluster.fqdn}"
    lab.kube.accepted_issuers.add(issuer)
    return issuer


def api_server_discovery(lab: Lab) -> dict[str, Any]:
    """The API server's ``/.well-known/openid-configuration``: the public issuer's document, as AKS sets
    --service-account-jwks-uri to it; on a cluster without the OIDC issuer, the API server's own issuer with its
    own JWKS path."""
    issuer = signing_issuer(lab)
    if issuer == lab.issuer_url:
        return discovery_document(lab)
    return {**discovery_document(lab), "issuer": issuer, "jwks_uri": f"{issuer}/{JWKS_PATH}"}


def discovery_document(lab: Lab) -> dict[str, Any]:
    issuer = lab.issuer_url
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}{JWKS_PATH}",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def jwks_document(lab: Lab) -> dict[str, Any]:
    return lab.kube.issuer_keys.jwks()


def published_jwks(lab: Lab) -> dict[str, Any]:
    """The JWKS the issuer URL serves (to Entra and to anyone): the API server's keys, or the copy frozen by
    :func:`set_stale_jwks`. The API server's own ``/openid/v1/jwks`` always shows its keys."""
    frozen = lab.kube.issuer_jwks_frozen
    return frozen if frozen is not None else jwks_document(lab)


def set_stale_jwks(lab: Lab, stale: bool) -> None:
    """On: the issuer keeps publishing the JWKS as it is now, whatever keys the API server signs with later (a
    self-managed issuer whose JWKS document is not uploaded again after a key change; azure-workload-identity's
    self-managed docs upload it by hand). Off: it publishes the API server's keys again."""
    lab.kube.issuer_jwks_frozen = jwks_document(lab) if stale else None


def rotate_issuer_keys(lab: Lab, keep_old_for_seconds: float = 24 * 3600) -> SigningKey:
    """``az aks oidc-issuer rotate-signing-keys``: a new signing key; the old one stays published (24 h)."""
    return lab.kube.issuer_keys.rotate(keep_old_for_seconds)


def _blob_headers(request_id: str) -> dict[str, str]:
    return {
        "Server": BLOB_SERVER,
        "x-ms-request-id": request_id,
        "x-ms-version": "2009-09-19",  # what Blob Storage reports for an anonymous request without x-ms-version
        "Date": email.utils.formatdate(usegmt=True),
    }


def blob_error(status: int, code: str, message: str) -> web.Response:
    request_id = str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".0000000Z"
    body = (
        '\ufeff<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}\nRequestId:{request_id}\nTime:{stamp}</Message></Error>"
    )
    return web.Response(
        status=status, reason=message, body=body.encode("utf-8"), content_type="application/xml",
        headers={**_blob_headers(request_id), "x-ms-error-code": code},
    )


def _throttled(status: int, retry_after: int) -> web.Response:
    """429/503 as Blob Storage words them (fault injection)."""
    if status == 503:
        response = blob_error(503, "ServerBusy", "The server is currently unable to receive requests. Please retry "
                              "your request.")
    else:
        response = blob_error(429, "ServerBusy", "Operations per second is over the account limit.")
    response.headers["Retry-After"] = str(retry_after)
    return response


def _json_blob(document: dict[str, Any]) -> web.Response:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {**_blob_headers(str(uuid.uuid4())), "x-ms-blob-type": "BlockBlob"}
    return web.Response(body=body, content_type="application/json", headers=headers)


def build_app(lab: Lab) -> web.Application:
    @web.middleware
    async def unreachable(request: web.Request, handler: Handler) -> web.StreamResponse:
        if lab.faults.issuer_unreachable:
            # Drop the connection: clients get "Remote end closed connection without response".
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never reaches the client
        return await handler(request)

    async def serve(request: web.Request) -> web.StreamResponse:
        base = issuer_path(lab)
        path = request.path
        if request.method not in ("GET", "HEAD"):
            return blob_error(404, "ResourceNotFound", "The specified resource does not exist.")
        if path == base + DISCOVERY_PATH:
            return _json_blob(discovery_document(lab))
        if path == base + JWKS_PATH:
            return _json_blob(published_jwks(lab))
        if path.startswith(base):
            return blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        return blob_error(404, "ResourceNotFound", "The specified resource does not exist.")

    def internal_error(_: web.Request) -> web.Response:
        return blob_error(500, "InternalError", "Server encountered an internal error. Please try again after some time.")

    app = web.Application(middlewares=[
        unreachable,
        unexpected_error_middleware("issuer", internal_error),
        fault_middleware(lab.faults, "issuer", _throttled),
    ])
    app.router.add_route("*", "/{tail:.*}", serve)
    return app
