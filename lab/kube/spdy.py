"""The server side of a SPDY/3.1 session, as much as Kubernetes' port-forward uses (moby/spdystream).

kubectl 1.3x forwards ports over SPDY tunnelled in a WebSocket (sub-protocol ``SPDY/3.1+portforward.k8s.io``):
each binary WebSocket message carries bytes of the SPDY byte stream. Frames (draft 3.1, section 2.2):

- control: ``1 | version(15) | type(16)``, ``flags(8) | length(24)``, data. Types used here: SYN_STREAM (1),
  SYN_REPLY (2), RST_STREAM (3), SETTINGS (4), PING (6), GOAWAY (7), HEADERS (8), WINDOW_UPDATE (9).
- data: ``0 | stream-id(31)``, ``flags(8) | length(24)``, data; flag FIN (1) ends the sender's half.

Header blocks are ``count(32)`` then ``len(32) name len(32) value`` pairs, zlib-compressed with the spec's
dictionary (2.6.10.1), one compression context per direction for the whole session. spdystream does not
enforce flow-control windows, so none are kept here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5

# The header compression dictionary of SPDY/3 (spec section 2.6.10.1): 65 length-prefixed names and values,
# then a run of status codes, reason phrases and common values without prefixes.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age "
    "allow authorization cache-control connection content-base content-encoding content-language content-length "
    "content-location content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status 200\x00OK version HTTP/1.1 url public "
    "set-cookie keep-alive origin"
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 "
    "Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 "
    "Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr "
    "May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,"
    "image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    out = bytearray()
    for word in _WORDS.split(" "):
        raw = word.replace("\x00", " ").encode()
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out) + _TAIL.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    pass


@dataclass
class Frame:
    kind: str  # "syn", "data", "rst", "ping", "goaway", "other"
    stream_id: int = 0
    flags: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Session:
    """Frames in (:meth:`feed`) and out (the ``*_frame`` methods return bytes to send)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    # -- reading
    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 8:
            length = int.from_bytes(self.buffer[5:8], "big")
            if len(self.buffer) < 8 + length:
                break
            head, payload = bytes(self.buffer[:8]), bytes(self.buffer[8:8 + length])
            del self.buffer[:8 + length]
            frames.append(self._frame(head, payload))
        return frames

    def _frame(self, head: bytes, payload: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:
            return Frame("data", int.from_bytes(head[:4], "big") & 0x7FFFFFFF, flags, payload)
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        kind = int.from_bytes(head[2:4], "big")
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        if kind == SYN_STREAM:
            if len(payload) < 10:
                raise ProtocolError("short SYN_STREAM")
            sid = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            return Frame("syn", sid, flags, headers=self._headers(payload[10:]))
        if kind in (SYN_REPLY, HEADERS):
            self._headers(payload[4:])  # keeps the shared decompression context in step
            return Frame("other", int.from_bytes(payload[:4], "big") & 0x7FFFFFFF, flags)
        if kind == RST_STREAM:
            return Frame("rst", int.from_bytes(payload[:4], "big") & 0x7FFFFFFF, flags, payload[4:8])
        if kind == PING:
            return Frame("ping", 0, flags, payload[:4])
        if kind == GOAWAY:
            return Frame("goaway", 0, flags, payload)
        return Frame("other", 0, flags, payload)

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self.inflate.decompress(block)
        except zlib.error as exc:
            raise ProtocolError(f"header block: {exc}") from exc
        headers: dict[str, str] = {}
        if len(raw) < 4:
            return headers
        count, pos = int.from_bytes(raw[:4], "big"), 4
        for _ in range(count):
            size = int.from_bytes(raw[pos:pos + 4], "big")
            name = raw[pos + 4:pos + 4 + size].decode("latin-1")
            pos += 4 + size
            size = int.from_bytes(raw[pos:pos + 4], "big")
            value = raw[pos + 4:pos + 4 + size].decode("latin-1")
            pos += 4 + size
            headers[name.lower()] = value
        return headers

    # -- writing
    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def _header_block(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for name, value in headers.items():
            for item in (name.lower().encode(), value.encode()):
                raw += struct.pack(">I", len(item)) + item
        return self.deflate.compress(bytes(raw)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply_frame(self, stream_id: int, headers: dict[str, str] | None = None, fin: bool = False) -> bytes:
        payload = struct.pack(">I", stream_id) + self._header_block(headers or {})
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, payload)

    def rst_frame(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping_frame(self, ping_id: bytes) -> bytes:
        return self._control(PING, 0, ping_id)

    def goaway_frame(self, last_stream: int) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream, 0))

    @staticmethod
    def data_frames(stream_id: int, data: bytes, fin: bool = False) -> list[bytes]:
        chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)] or [b""]
        out = []
        for index, chunk in enumerate(chunks):
            flags = FLAG_FIN if fin and index == len(chunks) - 1 else 0
            out.append(struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(chunk)) + chunk)
        return out
