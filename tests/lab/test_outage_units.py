"""A service the lab takes down ends the connections it has open, as a restarting server does (lab/outage.py):
a client's pooled keep-alive connection is closed under it, its reconnect is refused, and back up it is served."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lab import outage

REQUEST = b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n"


class _FakeLab:
    """The parts of lab.runtime.Lab the outage control touches, serving plain HTTP on loopback."""

    def __init__(self, net_dir: Path) -> None:
        self.net_dir = net_dir
        self._net_ports: dict[int, str] = {}
        self._runners: list[web.AppRunner] = []
        self.vault_by_port: dict[int, str] = {}
        self.vault_sockets: dict[str, Any] = {}

    def write_network_manifest(self) -> None:
        pass

    async def _serve(self, runner: web.AppRunner, service: str, sock: socket.socket) -> None:
        await web.SockSite(runner, sock).start()
        self._net_ports[sock.getsockname()[1]] = service


async def _start(net_dir: Path, handler: Any) -> tuple[_FakeLab, int]:
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    lab = _FakeLab(net_dir)
    lab._runners.append(runner)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as lab.runtime binds: back up while clients linger
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    await lab._serve(runner, "kube", sock)
    return lab, sock.getsockname()[1]


async def _connect(port: int) -> socket.socket:
    client = socket.socket()
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
    return client


async def _answer(client: socket.socket) -> bytes:
    """One whole answer (its body is 'ok'), or b'' when the server closed the connection."""
    loop, received = asyncio.get_running_loop(), b""
    while not received.endswith(b"ok"):
        chunk = await asyncio.wait_for(loop.sock_recv(client, 4096), 5)
        if not chunk:
            return received
        received += chunk
    return received


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def test_a_pooled_connection_is_closed_at_the_outage_and_the_reconnect_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        lab, port = await _start(tmp_path, _ok)
        loop = asyncio.get_running_loop()
        pooled = await _connect(port)
        await loop.sock_sendall(pooled, REQUEST)
        assert (await _answer(pooled)).startswith(b"HTTP/1.1 200")
        await outage.set_down(lab, "kube", True)  # type: ignore[arg-type]
        assert await _answer(pooled) == b""  # closed under the client, before it sends again
        with pytest.raises(ConnectionRefusedError):
            await _connect(port)
        await outage.set_down(lab, "kube", False)  # type: ignore[arg-type]
        fresh = await _connect(port)
        await loop.sock_sendall(fresh, REQUEST)
        assert (await _answer(fresh)).startswith(b"HTTP/1.1 200")
        for client in (pooled, fresh):
            client.close()
        await lab._runners[0].cleanup()

    asyncio.run(scenario())


def test_an_answer_under_way_is_finished_and_a_hanging_one_cut_at_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outage, "IN_FLIGHT_GRACE_SECONDS", 0.2)

    async def scenario() -> None:
        release, started = asyncio.Event(), asyncio.Event()

        async def slow(request: web.Request) -> web.StreamResponse:
            started.set()
            if request.query.get("hang"):  # a watch: it answers as long as the server lets it
                await asyncio.Event().wait()
            await release.wait()
            return web.Response(text="ok")

        lab, port = await _start(tmp_path, slow)
        loop = asyncio.get_running_loop()
        busy = await _connect(port)
        await loop.sock_sendall(busy, REQUEST)
        await started.wait()
        started.clear()
        hanging = await _connect(port)
        await loop.sock_sendall(hanging, REQUEST.replace(b"GET / ", b"GET /?hang=1 "))
        await started.wait()
        going_down = asyncio.ensure_future(outage.set_down(lab, "kube", True))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        release.set()
        assert (await _answer(busy)).startswith(b"HTTP/1.1 200")  # finished its answer
        assert await _answer(busy) == b""  # then closed
        assert await _answer(hanging) == b""  # cut at the grace
        await going_down
        for client in (busy, hanging):
            client.close()
        await lab._runners[0].cleanup()

    asyncio.run(scenario())
