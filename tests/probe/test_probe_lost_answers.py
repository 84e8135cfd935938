"""The probe's retries beyond Entra (probe/retry.py): an access read that meets 429/503 is tried again within the
run's one budget, with its attempts in the evidence; an answer lost after the request went out (a reset, a read
timeout) is retried, a connection that could not be made is not. The transport's ``sent`` is read from a real
urllib exchange with a loopback server."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from probe_testkit import ACCOUNT_URL, TOKEN_URL, FakeClock, FakeTransport, Handler, Run, config_json

from probe.retry import RetryPolicy, send_with_retries
from probe.transport import Response, TransportError, http_transport

RunProbe = Callable[..., Run]
BLOB = {"kind": "blob", "account_url": ACCOUNT_URL, "container": "data", "blob": "r.csv", "expect": "allow"}


def blob_answers(*statuses: int) -> Handler:
    left = list(statuses)

    def answer(*_: Any) -> Response:
        status = left.pop(0) if left else 200
        headers = {"retry-after": "1"} if status == 429 else {}
        return Response(status, {"content-type": "text/csv", **headers}, b"")

    return answer


def test_an_access_read_is_retried_through_throttling_and_unavailability(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler, fake_clock: FakeClock
) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok, ACCOUNT_URL: blob_answers(429, 503)})
    run = run_probe(config_json(checks=[BLOB]), environ, transport)
    access = run.step("access")
    assert access["status"] == "pass", access
    assert access["evidence"]["retries"]["answers"] == ["HTTP 429", "HTTP 503", "HTTP 200"]
    assert len(transport.to(ACCOUNT_URL)) == 3 and fake_clock.waits == [1, 2]


def test_a_refusal_is_an_answer_not_retried(
    run_probe: RunProbe, environ: dict[str, str], entra_ok: Handler, fake_clock: FakeClock
) -> None:
    transport = FakeTransport({TOKEN_URL: entra_ok, ACCOUNT_URL: blob_answers(403)})
    run = run_probe(config_json(checks=[BLOB]), environ, transport)
    assert len(transport.to(ACCOUNT_URL)) == 1 and "retries" not in run.step("access")["evidence"]


class Server:
    """Accepts connections; each ``behaviour`` in turn: "reset" (RST after reading the request), "silent" (never
    answers), "ok" (HTTP 200)."""

    def __init__(self, behaviours: list[str]) -> None:
        self.behaviours = behaviours
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            behaviour = self.behaviours.pop(0) if self.behaviours else "ok"
            if behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif behaviour == "silent":
                self.held.append(conn)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                conn.close()


@pytest.fixture
def server_factory() -> Iterator[Callable[[list[str]], Server]]:
    made: list[Server] = []
    yield lambda behaviours: made.append(Server(behaviours)) or made[-1]
    for server in made:
        server.sock.close()


def policy(clock: FakeClock) -> RetryPolicy:
    return RetryPolicy(30.0, frozenset(), clock.monotonic, clock.sleep)


@pytest.mark.parametrize("lost", ["reset", "silent"])
def test_an_answer_lost_after_the_request_went_out_is_retried(
    server_factory: Callable[[list[str]], Server], lost: str
) -> None:
    server, clock = server_factory([lost]), FakeClock()
    send = http_transport()
    url = f"http://127.0.0.1:{server.port}/x"
    resp, log = send_with_retries(lambda: send("GET", url, {}, None, 0.5), policy(clock))
    assert isinstance(resp, Response) and resp.status == 200
    assert log.answers == [{"reset": "connection_reset", "silent": "timeout"}[lost], "HTTP 200"]
    assert clock.waits == [1.0]


def test_a_connection_refused_is_retried_three_times() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    clock = FakeClock()
    send = http_transport()
    resp, log = send_with_retries(lambda: send("GET", f"http://127.0.0.1:{port}/", {}, None, 2), policy(clock))
    assert isinstance(resp, TransportError) and resp.kind == "connection_refused" and not resp.sent
    assert log.answers == ["connection_refused"] * 4 and clock.waits == [0.0, 1.6, 3.2] and log.exhausted


