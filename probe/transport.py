"""The ONE network seam of the probe.

A :data:`Transport` is any callable ``(method, url, headers, body, timeout) -> (status, headers, body)``.
It returns HTTP error statuses as ordinary responses and raises :class:`TransportError` (with a
``kind``) only when no HTTP response arrived at all. Tests pass a plain function instead of a server.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


class Transport(Protocol):
    """``(method, url, headers, body, timeout) -> Response``; raises TransportError when no response came."""

    def __call__(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> Response: ...


class TransportError(Exception):
    """No HTTP response: DNS, refused, timeout, TLS, ... ``kind`` is a stable short identifier."""

    def __init__(self, kind: str, message: str, sent: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.sent = sent  # the request had gone out (the answer was lost), not a connection never opened

    def to_dict(self) -> dict[str, Any]:
        """``sent`` only when true: the service got the request and did not answer in time (a slow service, not a
        blocked network)."""
        return {"kind": self.kind, "message": self.message, **({"sent": True} if self.sent else {})}


_ERRNO_KINDS = {
    errno.ECONNREFUSED: "connection_refused",
    errno.ECONNRESET: "connection_reset",
    errno.ENETUNREACH: "network_unreachable",
    errno.EHOSTUNREACH: "host_unreachable",
    errno.ETIMEDOUT: "timeout",
}


def classify(exc: BaseException) -> TransportError:
    """Map a low-level exception to a TransportError with a stable kind."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, BaseException) and reason is not exc:
        return classify(reason)
    text = str(reason)
    if isinstance(exc, socket.gaierror):
        kind = "dns"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        kind = "tls_verify"
    elif isinstance(exc, ssl.SSLError):
        kind = "tls"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        kind = "timeout"
    elif isinstance(exc, ConnectionRefusedError):
        kind = "connection_refused"
    elif isinstance(exc, ConnectionResetError):
        kind = "connection_reset"
    elif isinstance(exc, OSError) and exc.errno in _ERRNO_KINDS:
        kind = _ERRNO_KINDS[exc.errno]
    elif isinstance(exc, ValueError):
        kind = "invalid_url"
    elif isinstance(exc, http.client.HTTPException):
        kind = "protocol"
    else:
        kind = "connection"
    return TransportError(kind, f"{type(exc).__name__}: {text}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Return 3xx as responses: never forward a bearer token to another location."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


def urllib_transport(context: ssl.SSLContext | None = None) -> Transport:
    """The default transport: urllib with the given TLS context, no redirects, env proxies honoured."""
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())

    def send(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        try:
            request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
            with opener.open(request, timeout=timeout) as resp:
                return Response(resp.status, _lower(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, _lower(exc.headers.items()), _read(exc))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failure = classify(exc)
            # urllib wraps what fails while connecting and sending in URLError; what fails while the answer
            # is awaited or read (a reset, a read timeout) comes as it is
            failure.sent = not isinstance(exc, urllib.error.URLError)
            raise failure from None

    return send


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}
