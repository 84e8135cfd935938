"""Pod streams over a plain ``Upgrade: SPDY/3.1`` connection, for clients that still ask for it (kubectl
before 1.30 for exec/attach and before 1.31 for port-forward, or with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``
/ ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``; client-go's SPDY executor and dialer).

Handshake (apimachinery ``httpstream.Handshake``): the client lists protocols in ``X-Stream-Protocol-Version``
headers; the server picks the first it supports and names it in the 101 answer, or answers 403
``unable to upgrade: unable to negotiate protocol: client supports [..], server supports [..]``.

Exec/attach (kubelet ``cri/streaming/remotecommand/httpstream.go``, protocols v2-v5): the client opens one
SPDY stream per channel, named by the ``streamtype`` header (``error``, ``stdin``, ``stdout``, ``stderr``,
``resize``); the server waits for all it expects (30 s), runs the command, ends stdout/stderr, writes the
outcome on the error stream (v4+: a Status; older: its message) and closes the connection. The client ends
stdin with FIN. :class:`SpdyChannels` presents this as the channel interface :mod:`lab.kube.podstreams` uses.

Port-forward (``portforward.k8s.io``): the same SPDY session as the WebSocket tunnel (:mod:`lab.kube.portforward`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from lab.kube import spdy

Obj = dict[str, Any]

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("portforward.k8s.io",)
STREAM_CREATION_SECONDS = 30.0
PROTOCOL_HEADER = "X-Stream-Protocol-Version"


def is_spdy(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return request.headers.get("Upgrade", "").lower().startswith("spdy/") and "upgrade" in connection


def negotiate(request: web.Request, supported: tuple[str, ...]) -> str | web.Response:
    offered = [p.strip() for value in request.headers.getall(PROTOCOL_HEADER, []) for p in value.split(",")
               if p.strip()]
    for protocol in offered:
        if protocol in supported:
            return protocol
    message = (f"unable to upgrade: unable to negotiate protocol: client supports [{' '.join(offered)}], "
               f"server supports [{' '.join(supported)}]")
    return web.Response(status=403, text=message, content_type="text/plain")


class _RawReader:
    """Takes the place of aiohttp's payload parser once the connection is upgraded: raw bytes into a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


class SpdyConnection:
    """One SPDY session over a byte transport (``read`` answers b"" at the end): frames in, bytes out."""

    def __init__(self, read: Callable[[], Awaitable[bytes]], write: Callable[[bytes], Awaitable[None]],
                 end: Callable[[], Awaitable[None]]) -> None:
        self.read, self.write, self.end = read, write, end
        self.session = spdy.Session()
        self.lock = asyncio.Lock()
        self.closed = False

    @classmethod
    async def upgrade(cls, request: web.Request, protocol: str) -> tuple[SpdyConnection, web.StreamResponse]:
        """Answer 101 and take the raw connection over from aiohttp's HTTP parser."""
        response = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                                           PROTOCOL_HEADER: protocol})
        await response.prepare(request)
        reader = _RawReader()
        handler = request.protocol
        assert handler is not None
        handler.set_parser(reader)  # type: ignore[arg-type]
        return cls(reader.queue.get, response.write, response.write_eof), response

    @classmethod
    def over_websocket(cls, ws: web.WebSocketResponse) -> SpdyConnection:
        """SPDY tunnelled in a WebSocket: every binary message carries bytes of the session."""

        async def read() -> bytes:
            while True:
                message = await ws.receive()
                if message.type == WSMsgType.BINARY:
                    if message.data:
                        return bytes(message.data)
                elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return b""

        async def end() -> None:
            await asyncio.wait_for(ws.close(), 5)

        return cls(read, ws.send_bytes, end)

    async def frames(self) -> AsyncIterator[spdy.Frame]:
        while not self.closed:
            data = await self.read()
            if not data:
                return
            try:
                frames = self.session.feed(data)
            except spdy.ProtocolError:
                return
            for frame in frames:
                if frame.kind == "ping":
                    await self.send(self.session.ping_frame(frame.data))
                    continue
                if frame.kind == "goaway":
                    return
                yield frame

    async def send(self, *frames: bytes) -> None:
        async with self.lock:
            if self.closed:
                return
            try:
                for frame in frames:
                    await self.write(frame)
            except (ConnectionError, RuntimeError):
                self.closed = True

    async def reply(self, stream_id: int) -> None:
        async with self.lock:  # one compression context: compress and send in order
            if not self.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.write(self.session.syn_reply_frame(stream_id))

    async def close(self, last_stream: int = 0) -> None:
        await self.send(self.session.goaway_frame(last_stream))
        self.closed = True
        with contextlib.suppress(Exception):
            await self.end()


class StreamsMissing(Exception):
    pass


class SpdyChannels:
    """Exec/attach channels over SPDY streams, with the interface of podstreams.ChannelSocket."""

    def __init__(self, conn: SpdyConnection, protocol: str) -> None:
        self.conn = conn
        self.protocol = protocol
        self.status_json = protocol.startswith(("v4.", "v5."))
        self.v5 = False  # stdin ends with FIN here, reported as the v5 close signal
        self.streams: dict[int, int] = {}  # channel -> stream id
        self.channels: dict[int, int] = {}  # stream id -> channel
        self.early: list[spdy.Frame] = []
        self.frames = conn.frames()

    async def open(self, wanted: set[int]) -> None:
        """Wait until the client has opened every stream this request needs."""
        async def collect() -> None:
            async for frame in self.frames:
                if frame.kind == "syn":
                    await self.conn.reply(frame.stream_id)
                    channel = STREAM_TYPES.get(frame.headers.get("streamtype", ""))
                    if channel is not None:
                        self.streams[channel] = frame.stream_id
                        self.channels[frame.stream_id] = channel
                else:
                    self.early.append(frame)
                if wanted <= set(self.streams):
                    return
            raise StreamsMissing("the client went away")

        try:
            await asyncio.wait_for(collect(), STREAM_CREATION_SECONDS)
        except TimeoutError as exc:
            raise StreamsMissing("timed out waiting for client to create streams") from exc

    async def send(self, channel: int, data: bytes) -> None:
        stream_id = self.streams.get(channel)
        if stream_id is not None and data:
            await self.conn.send(*spdy.Session.data_frames(stream_id, data))

    async def messages(self) -> AsyncIterator[tuple[int, bytes]]:
        pending, self.early = self.early, []

        async def frames() -> AsyncIterator[spdy.Frame]:
            for frame in pending:
                yield frame
            async for frame in self.frames:
                yield frame

        async for frame in frames():
            if frame.kind == "syn":
                await self.conn.reply(frame.stream_id)
                continue
            channel = self.channels.get(frame.stream_id)
            if channel is None:
                continue
            if frame.kind == "data" and frame.data:
                yield channel, frame.data
            if channel == STDIN and (frame.fin or frame.kind == "rst"):
                yield CLOSE_SIGNAL, bytes([STDIN])

    async def send_status(self, status: Obj) -> None:
        if self.status_json:
            await self.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        elif status.get("status") != "Success":
            await self.send(ERROR, status.get("message", "").encode())

    async def finish(self, status: Obj) -> None:
        for channel in (STDOUT, STDERR):
            if channel in self.streams:
                await self.conn.send(*spdy.Session.data_frames(self.streams[channel], b"", fin=True))
        await self.send_status(status)
        if ERROR in self.streams:
            await self.conn.send(*spdy.Session.data_frames(self.streams[ERROR], b"", fin=True))
        await self.conn.close(max(self.channels, default=0))
