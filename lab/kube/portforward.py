"""``pods/portforward``: TCP connections to a port inside the pod, for ``kubectl port-forward`` and the Python
client's ``kubernetes.stream.portforward``.

Three wire forms (authorization and pod lookup are done by :mod:`lab.kube.podstreams`):

- ``SPDY/3.1+portforward.k8s.io`` (kubectl 1.3x; apiserver ``util/proxy/streamtunnel.go``): the WebSocket
  tunnels a SPDY session (:mod:`lab.kube.spdy`). For every local connection kubectl opens two streams with the
  headers ``streamtype`` (``error`` / ``data``), ``port`` and ``requestid``; the server replies to each, dials
  the port once both are there, copies bytes both ways, writes a failure as text on the error stream and ends
  both streams (kubelet ``cri/streaming/portforward/httpstream.go``).
- ``v4.channel.k8s.io`` / ``v4.base64.channel.k8s.io`` / none (the kubelet's WebSocket port-forward, which the
  Python client uses): ``?ports=P[,Q]``; port *i* has data channel ``2i`` and error channel ``2i+1``, each
  opened by the server writing the port as two little-endian bytes; one connection per port, and the
  WebSocket closes when they are done (``cri/streaming/portforward/websocket.go``).
- plain ``Upgrade: SPDY/3.1`` with ``X-Stream-Protocol-Version: portforward.k8s.io`` (kubectl before 1.31):
  the same SPDY session as the tunnel, straight on the connection (:mod:`lab.kube.spdystreams`).

Dialing (:func:`dial_argv`): ``localhost:PORT`` is dialed inside the network namespace of the pod's first
running container process (``nsenter --net``, as containerd dials inside the sandbox's namespace) by
:mod:`lab.kube.podconnect`. Emulation details: lab containers each have a network namespace of their own, so a
port opened by another container of the pod is not reached; an idle image runs no process, so nothing
listens and the dial is refused; without network namespaces pods share the host's network and the host's
localhost is dialed. A failed dial is reported in containerd's words.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from lab.kube import errors, spdy
from lab.kube.spdystreams import PORTFORWARD_PROTOCOLS, SpdyConnection, is_spdy, negotiate

if TYPE_CHECKING:
    from lab.kube.kubelet import PodWorker
    from lab.runtime import Lab

log = logging.getLogger("lab.kube.portforward")

Obj = dict[str, Any]

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")
CONNECT_HELPER = Path(__file__).with_name("podconnect.py")


def sandbox_id(pod: Obj) -> str:
    return hashlib.sha256(pod["metadata"].get("uid", "").encode()).hexdigest()


def _refused(port: int) -> str:
    return (f"IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused "
            f"IPv6 dial tcp6 [::1]:{port}: connect: connection refused ")


def forward_error(pod: Obj, port: int, detail: str) -> str:
    """containerd's and the kubelet's wording for a port that could not be dialed in the pod."""
    sid = sandbox_id(pod)
    netns = f"/var/run/netns/cni-{uuid.UUID(sid[:32])}"
    return (f"error forwarding port {port} to pod {sid}, uid : failed to execute portforward in network namespace "
            f'"{netns}": failed to connect to localhost:{port} inside namespace "{sid}", {detail}')


def _process_pid(worker: PodWorker | None) -> int | None:
    if worker is None:
        return None
    for cs in [*worker.main_states, *worker.init_states]:
        proc = worker.procs.get(cs.name)
        if proc is not None and proc.returncode is None:
            return proc.pid
    return None


def dial_argv(lab: Lab, worker: PodWorker | None, port: int) -> list[str] | None:
    """The argv that dials the port in the pod's network, or None when nothing there can listen."""
    helper = [sys.executable, "-I", "-S", str(CONNECT_HELPER), str(port)]
    sandbox = lab.kubelet.sandbox
    if not sandbox.network:
        return helper
    pid = _process_pid(worker)
    if pid is None:
        return None
    argv = ["nsenter", f"--target={pid}", "--net"]
    if sandbox.kind == "userns":
        argv.append("--user")
    return [*argv, "--", *helper]


class Forward:
    """One connection to one port: bytes in (:meth:`put`), bytes and the outcome out through callbacks."""

    def __init__(self, lab: Lab, worker: PodWorker | None, pod: Obj, port: int,
                 on_data: Callable[[bytes], Awaitable[None]], on_error: Callable[[str], Awaitable[None]]) -> None:
        self.lab, self.worker, self.pod, self.port = lab, worker, pod, port
        self.on_data, self.on_error = on_data, on_error
        self.inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.proc: asyncio.subprocess.Process | None = None

    def put(self, data: bytes | None) -> None:
        self.inbound.put_nowait(data)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def run(self) -> None:
        argv = dial_argv(self.lab, self.worker, self.port)
        if argv is None:
            await self.on_error(forward_error(self.pod, self.port, _refused(self.port)))
            return
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", os.defpath)})
        feeder = asyncio.ensure_future(self._feed())
        try:
            assert self.proc.stdout is not None and self.proc.stderr is not None
            while chunk := await self.proc.stdout.read(65536):
                await self.on_data(chunk)
            problem = (await self.proc.stderr.read()).decode(errors="replace")
            if await self.proc.wait() != 0:
                await self.on_error(forward_error(self.pod, self.port, problem or _refused(self.port)))
        finally:
            feeder.cancel()
            self.kill()

    async def _feed(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        stdin = self.proc.stdin
        with contextlib.suppress(ConnectionError, OSError):
            while (data := await self.inbound.get()) is not None:
                stdin.write(data)
                await stdin.drain()
            stdin.close()


def _worker(lab: Lab, pod: Obj) -> PodWorker | None:
    kubelet = getattr(lab, "kubelet", None)
    meta = pod["metadata"]
    return kubelet.worker(meta.get("namespace", ""), meta["name"]) if kubelet else None


async def serve(lab: Lab, request: web.Request, pod: Obj) -> web.StreamResponse:
    name = pod["metadata"]["name"]
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    from lab.kube.podstreams import is_websocket

    if is_spdy(request):
        return await serve_spdy(lab, request, pod)
    if not is_websocket(request):
        return web.Response(status=400, text="unable to upgrade: missing upgrade headers in request",
                            content_type="text/plain")
    requested = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if TUNNEL_PROTOCOL in requested:
        return await serve_tunnel(lab, request, pod)
    ports = []
    for value in request.query.getall("ports", []):
        for item in value.split(","):
            try:
                port = int(item)
            except ValueError:
                port = 0
            if not 0 < port < 65536:
                return web.Response(status=400, text=f'invalid port "{item}"', content_type="text/plain")
            ports.append(port)
    if not ports:
        return web.Response(status=400, text='query parameter "port" is required', content_type="text/plain")
    return await serve_channels(lab, request, pod, ports)


# ---------------------------------------------------------------- SPDY tunnelled in a WebSocket


async def serve_tunnel(lab: Lab, request: web.Request, pod: Obj) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=0)
    await ws.prepare(request)
    await run_session(lab, pod, SpdyConnection.over_websocket(ws))
    return ws


async def serve_spdy(lab: Lab, request: web.Request, pod: Obj) -> web.StreamResponse:
    negotiated = negotiate(request, PORTFORWARD_PROTOCOLS)
    if isinstance(negotiated, web.Response):
        return negotiated
    conn, response = await SpdyConnection.upgrade(request, negotiated)
    await run_session(lab, pod, conn)
    return response


async def run_session(lab: Lab, pod: Obj, conn: SpdyConnection) -> None:
    worker = _worker(lab, pod)
    pending: dict[str, dict[str, int]] = {}  # requestid -> streamtype -> stream id
    forwards: dict[int, Forward] = {}  # data stream id -> its forward
    tasks: set[asyncio.Task] = set()

    async def run(forward: Forward, data_id: int, error_id: int) -> None:
        try:
            await forward.run()
        except Exception:  # noqa: BLE001 - a broken forward ends its streams, not the session
            log.exception("port-forward to %s failed", forward.port)
        await conn.send(*spdy.Session.data_frames(data_id, b"", fin=True),
                        *spdy.Session.data_frames(error_id, b"", fin=True))
        forwards.pop(data_id, None)

    def start(request_id: str, port_text: str) -> None:
        ids = pending.pop(request_id)
        data_id, error_id = ids["data"], ids["error"]
        try:
            port = int(port_text)
        except ValueError:
            port = 0

        async def on_data(chunk: bytes) -> None:
            await conn.send(*spdy.Session.data_frames(data_id, chunk))

        async def on_error(message: str) -> None:
            await conn.send(*spdy.Session.data_frames(error_id, message.encode()))

        forward = Forward(lab, worker, pod, port, on_data, on_error)
        forwards[data_id] = forward
        task = asyncio.ensure_future(run(forward, data_id, error_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        async for frame in conn.frames():
            if frame.kind == "syn":
                await conn.reply(frame.stream_id)
                request_id = frame.headers.get("requestid", "")
                kinds = pending.setdefault(request_id, {})
                kinds[frame.headers.get("streamtype", "")] = frame.stream_id
                if "data" in kinds and "error" in kinds:
                    start(request_id, frame.headers.get("port", ""))
            elif frame.kind == "data":
                forward = forwards.get(frame.stream_id)
                if forward is not None:
                    if frame.data:
                        forward.put(frame.data)
                    if frame.fin:
                        forward.put(None)
            elif frame.kind == "rst":
                forward = forwards.pop(frame.stream_id, None)
                if forward is not None:
                    forward.kill()
    finally:
        for forward in list(forwards.values()):
            forward.kill()
        for task in list(tasks):
            task.cancel()
        await conn.close()


# ---------------------------------------------------------------- the kubelet's channel protocol


async def serve_channels(lab: Lab, request: web.Request, pod: Obj, ports: list[int]) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, max_msg_size=0)
    await ws.prepare(request)
    encoded = "base64" in (ws.ws_protocol or "")
    lock = asyncio.Lock()
    worker = _worker(lab, pod)

    async def send(channel: int, data: bytes) -> None:
        async with lock:
            if ws.closed:
                return
            if encoded:
                await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await ws.send_bytes(bytes([channel]) + data)

    forwards: list[Forward] = []
    for index, port in enumerate(ports):
        for channel in (2 * index, 2 * index + 1):
            await send(channel, struct.pack("<H", port))

        def bind(channel: int) -> Callable[[bytes], Awaitable[None]]:
            async def out(data: bytes) -> None:
                await send(channel, data)

            return out

        data_out, error_out = bind(2 * index), bind(2 * index + 1)

        async def on_error(message: str, error_out: Callable[[bytes], Awaitable[None]] = error_out) -> None:
            await error_out(message.encode())

        forwards.append(Forward(lab, worker, pod, port, data_out, on_error))
    runs = [asyncio.ensure_future(f.run()) for f in forwards]

    async def read_client() -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                data = bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                channel_char, payload = message.data[:1], message.data[1:]
                try:
                    data = bytes([ord(channel_char) - ord("0")]) + base64.b64decode(payload)
                except (ValueError, TypeError):
                    continue
            else:
                continue
            if data and data[0] % 2 == 0 and data[0] // 2 < len(forwards) and len(data) > 1:
                forwards[data[0] // 2].put(data[1:])
        for forward in forwards:
            forward.put(None)

    client = asyncio.ensure_future(read_client())
    try:
        all_done = asyncio.gather(*runs, return_exceptions=True)
        await asyncio.wait([all_done, client], return_when=asyncio.FIRST_COMPLETED)
    finally:
        client.cancel()
        for forward in forwards:
            forward.kill()
        for run in runs:
            run.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
    return ws
