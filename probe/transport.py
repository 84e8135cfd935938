"""The ONE network seam of the probe.

A :data:`Transport` is any callable ``(method, url, headers, body, timeout) -> (status, headers, body)``.
It returns HTTP error statuses as ordinary responses and raises :class:`TransportError` (with a
``kind``) only when no HTTP response arrived at all. Tests pass a plain function instead of a server.
"""

from __future__ import annotations

import errno
import http.client
import select
import socket
import ssl
import sys
import urllib.parse
from collections import namedtuple
from collections.abc import Iterable, Mapping

from probe import __version__

TYPE_CHECKING = False  # typing is not imported when the probe runs (probe/__init__.py)
if TYPE_CHECKING:
    import urllib.error
    import urllib.request
    from typing import Any, Protocol

    class Transport(Protocol):
        """``(method, url, headers, body, timeout) -> Response``; raises TransportError when no response came."""

        def __call__(
            self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
        ) -> Response: ...


class Response(namedtuple("Response", "status headers body")):
    """``status`` an int, ``headers`` a dict with lower-cased names, ``body`` bytes."""

    __slots__ = ()


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
    reason = exc.reason if _is_url_error(exc) else exc
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


def _is_url_error(exc: BaseException) -> bool:
    """urllib's URLError; urllib is imported only for a proxied request (below), so without it nothing is one."""
    urllib_error = sys.modules.get("urllib.error")
    return urllib_error is not None and isinstance(exc, urllib_error.URLError)


def _urllib_opener(context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """urllib with the given TLS context and no redirects (3xx come back as responses: a bearer token is never
    forwarded to another location); it honours HTTPS_PROXY/NO_PROXY and tunnels through the proxy."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
            return None

    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect())


def http_transport(context: ssl.SSLContext | None = None) -> Transport:
    """The default transport: the standard library's ``http.client`` with the given TLS context, no redirects, and
    one connection kept alive per host, as the Azure SDKs' sessions keep theirs (the token requests to Entra, and
    Key Vault's challenge and the reads after it, each share one connection and one TLS handshake). A URL an
    environment proxy applies to (HTTPS_PROXY/NO_PROXY, as urllib reads them: AKS's HTTP proxy feature) goes
    through urllib, which tunnels through the proxy. urllib is imported only then: it and what it imports
    (tempfile, shutil, random, ...) were about 6 ms of each probe's start."""
    openers: list[urllib.request.OpenerDirector] = []
    kept: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def via_urllib(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        import urllib.error
        import urllib.request

        if not openers:
            openers.append(_urllib_opener(context))
        opener = openers[0]
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

    def send(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or _proxied(parts):
            return via_urllib(method, url, headers, body, timeout)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise classify(exc) from None
        key = (parts.scheme, parts.hostname, port)
        connection = kept.pop(key, None)
        if connection is not None and _dropped(connection):
            connection.close()  # the server closed it while idle, as urllib3 checks before reusing one
            connection = None
        if connection is not None:
            try:
                return exchange(connection, key, parts, method, headers, body, timeout)
            except _WentCold:
                pass  # the server closed it between that check and this request: once more on a new connection
        fresh = (http.client.HTTPSConnection(parts.hostname, port, timeout=timeout, context=context)
                 if parts.scheme == "https" else http.client.HTTPConnection(parts.hostname, port, timeout=timeout))
        try:
            fresh.connect()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            fresh.close()
            raise classify(exc) from None  # not sent: the connection failed on the way out
        try:
            return exchange(fresh, key, parts, method, headers, body, timeout)
        except _WentCold as cold:
            raise cold.failure from None

    def exchange(connection: http.client.HTTPConnection, key: tuple[str, str, int], parts: urllib.parse.SplitResult,
                 method: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        """One request and its answer on a connected ``connection``. A reset, an abort or a close with no answer
        at all before the status line raises :class:`_WentCold`: on a reused connection that is the server's
        idle close racing this request, which the standard library's xmlrpc.client answers by sending once
        more on a new connection; nothing of an answer had arrived, so none is lost."""
        try:
            connection.sock.settimeout(timeout)
            connection.request(method, _target(parts), body=body, headers=_with_defaults(headers, body))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            connection.close()
            if _cold(exc):
                raise _WentCold(classify(exc)) from None
            raise classify(exc) from None  # not sent: the request failed on the way out
        try:
            resp = connection.getresponse()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            connection.close()
            failure = classify(exc)
            failure.sent = True  # the request went out; its answer was lost
            if _cold(exc):
                raise _WentCold(failure) from None
            raise failure from None
        try:
            data = resp.read()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            connection.close()
            failure = classify(exc)
            failure.sent = True
            raise failure from None
        if resp.will_close:
            connection.close()
        else:
            kept[key] = connection
        return Response(resp.status, _lower(resp.headers.items()), data)

    return send


class _WentCold(Exception):
    """A connection reset, aborted or closed before any answer arrived (see ``exchange``)."""

    def __init__(self, failure: TransportError) -> None:
        super().__init__(failure.kind)
        self.failure = failure


def _cold(exc: BaseException) -> bool:
    return isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, ConnectionAbortedError,
                            BrokenPipeError))


def _proxied(parts: urllib.parse.SplitResult) -> bool:
    """Whether urllib's ProxyHandler would send this URL through a proxy: the same two functions decide, once any
    ``*_proxy`` variable is set (getproxies_environment reads those alone; without one there is no proxy)."""
    import os

    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return False
    import urllib.request

    return bool(urllib.request.getproxies().get(parts.scheme)) and not urllib.request.proxy_bypass(parts.netloc)


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection that is readable has been closed by the server (or holds stray bytes)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _target(parts: urllib.parse.SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _with_defaults(headers: Mapping[str, str], body: bytes | None) -> dict[str, str]:
    """The request's headers with a Content-Type for a body that names none (urllib's default, which the probe
    sent before) and the probe's User-Agent."""
    sent = dict(headers)
    names = {name.lower() for name in sent}
    if body is not None and "content-type" not in names:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    if "user-agent" not in names:
        sent["User-Agent"] = f"wi-probe/{__version__}"
    return sent


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}
