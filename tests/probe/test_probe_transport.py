"""probe.transport.http_transport: one kept-alive connection per host, as the Azure SDKs' sessions keep theirs;
a connection the server closed while idle is replaced; a URL an environment proxy applies to goes through urllib."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from probe.transport import TransportError, http_transport


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open between requests unless told otherwise
    connections: list[tuple[str, int]] = []
    close_after: bool = False
    close_silently: bool = False  # close after answering without saying so (an idle timeout, a restart)
    drop_unanswered: int = 0  # how many requests to take and close on without a word (an idle close racing them)
    closed: threading.Event

    def setup(self) -> None:
        super().setup()
        type(self).connections.append(self.client_address)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = self.rfile.read(length) if length else b""
        if type(self).drop_unanswered:
            type(self).drop_unanswered -= 1
            self.close_connection = True
            return
        body = b'{"seen": "%d"}' % len(seen)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Agent", self.headers.get("User-Agent", ""))
        self.send_header("X-Type", self.headers.get("Content-Type", ""))
        self.send_header("Content-Length", str(len(body)))
        if type(self).close_after:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if type(self).close_silently:
            self.close_connection = True

    do_GET = do_POST = _answer  # noqa: N815 (http.server API)

    def log_message(self, *_: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.RequestHandlerClass.closed.set()  # type: ignore[attr-defined]  # the socket is closed by now


@pytest.fixture
def server() -> Iterator[tuple[str, type[_KeepAlive]]]:
    handler = type("Handler", (_KeepAlive,), {"connections": [], "closed": threading.Event()})
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_requests_to_one_host_share_one_connection(server: tuple[str, type[_KeepAlive]]) -> None:
    url, handler = server
    send = http_transport()
    first = send("POST", f"{url}/token", {}, b"grant_type=x", 5.0)
    second = send("GET", f"{url}/secrets/a", {"User-Agent": "mine"}, None, 5.0)
    third = send("GET", f"{url}/secrets/b", {}, None, 5.0)
    assert [r.status for r in (first, second, third)] == [200, 200, 200]
    assert len(handler.connections) == 1
    # what urllib sent before: a form body's type when none is named; the probe's own agent when none is given
    assert first.headers["x-type"] == "application/x-www-form-urlencoded"
    assert second.headers["x-agent"] == "mine" and third.headers["x-agent"].startswith("wi-probe/")


def test_a_connection_the_server_closes_is_not_reused(server: tuple[str, type[_KeepAlive]]) -> None:
    url, handler = server
    handler.close_after = True
    send = http_transport()
    assert [send("GET", f"{url}/x", {}, None, 5.0).status for _ in range(3)] == [200, 200, 200]
    assert len(handler.connections) == 3


def test_an_idle_connection_closed_by_the_server_is_replaced(server: tuple[str, type[_KeepAlive]]) -> None:
    url, handler = server
    handler.close_silently = True
    send = http_transport()
    assert send("GET", f"{url}/x", {}, None, 5.0).status == 200
    assert handler.closed.wait(5)  # its side of the kept connection is closed now, with nothing said
    assert send("GET", f"{url}/y", {}, None, 5.0).status == 200
    assert len(handler.connections) == 2


def test_a_request_racing_the_servers_idle_close_is_sent_once_more_on_a_new_connection(
    server: tuple[str, type[_KeepAlive]],
) -> None:
    url, handler = server
    send = http_transport()
    assert send("GET", f"{url}/x", {}, None, 5.0).status == 200
    handler.drop_unanswered = 1  # the kept connection takes the next request and closes: the check saw it open
    assert send("GET", f"{url}/y", {}, None, 5.0).status == 200
    assert len(handler.connections) == 2


def test_a_new_connection_closed_without_an_answer_is_reported_not_retried(
    server: tuple[str, type[_KeepAlive]],
) -> None:
    url, handler = server
    handler.drop_unanswered = 2
    send = http_transport()
    with pytest.raises(TransportError) as lost:
        send("POST", f"{url}/token", {}, b"grant_type=x", 5.0)
    assert lost.value.kind == "connection_reset" and lost.value.sent and len(handler.connections) == 1


def test_a_url_the_environment_proxy_applies_to_goes_through_the_proxy(
    server: tuple[str, type[_KeepAlive]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed}")
    send = http_transport()
    with pytest.raises(TransportError) as refused:
        send("GET", f"{url}/x", {}, None, 5.0)
    assert refused.value.kind == "connection_refused" and not refused.value.sent and not handler.connections
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert send("GET", f"{url}/x", {}, None, 5.0).status == 200 and len(handler.connections) == 1


def test_a_probe_without_a_proxy_does_not_import_urllib() -> None:
    """urllib.request and what it imports were about 6 ms of each probe pod's start; only a proxy needs them
    (-S: no site-packages, whose .pth hooks import tempfile, as in a stock image's stdlib-only Python). Nor
    typing, which is for type checkers only (about 4 ms of each start)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; import probe.cli, probe.runner; print(sorted(m for m in "
            "('urllib.request', 'urllib.error', 'tempfile', 'typing') if m in sys.modules))")
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {repo!r}); {code}"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
