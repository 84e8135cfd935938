"""Units of the pod-stream machinery: the SPDY framer and the ephemeral-containers update checks."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from lab.kube import errors, spdy
from lab.kube.ephemeral import with_ephemeral_containers


def _client_syn(deflate: zlib._Compress, stream_id: int, headers: dict[str, str]) -> bytes:
    raw = struct.pack(">I", len(headers))
    for name, value in headers.items():
        raw += struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value)) + value.encode()
    block = deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIH", stream_id, 0, 0) + block
    return struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(payload)) + payload


def test_header_dictionary_is_the_spdy3_one() -> None:
    # SHA-256 of the 1423-byte dictionary of SPDY draft 3 section 2.6.10.1
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


def test_session_reads_frames_split_anywhere_and_keeps_one_header_context() -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    wire = (_client_syn(deflate, 1, {"streamtype": "error", "port": "80", "requestid": "0"})
            + _client_syn(deflate, 3, {"streamtype": "data", "port": "80", "requestid": "0"})
            + spdy.Session.data_frames(3, b"GET / HTTP/1.0\r\n\r\n", fin=True)[0])
    session = spdy.Session()
    frames = [frame for i in range(0, len(wire), 7) for frame in session.feed(wire[i:i + 7])]
    assert [(f.kind, f.stream_id) for f in frames] == [("syn", 1), ("syn", 3), ("data", 3)]
    assert frames[1].headers == {"streamtype": "data", "port": "80", "requestid": "0"}
    assert frames[2].data == b"GET / HTTP/1.0\r\n\r\n" and frames[2].fin


def test_replies_decompress_with_the_dictionary() -> None:
    session = spdy.Session()
    first, second = session.syn_reply_frame(1), session.syn_reply_frame(3, {"x": "y"})
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    for frame, expected in ((first, b"\0\0\0\0"), (second, b"\0\0\0\1\0\0\0\1x\0\0\0\1y")):
        kind = struct.unpack(">H", frame[2:4])[0]
        assert frame[0] & 0x80 and kind == spdy.SYN_REPLY
        assert inflate.decompress(frame[12:]) == expected


def _pod(*ephemeral: dict) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "a"}],
                                                "ephemeralContainers": list(ephemeral)}}


def _causes(current: dict, new: dict) -> list[tuple[str, str]]:
    with pytest.raises(errors.ApiError) as raised:
        with_ephemeral_containers(current, new)
    assert raised.value.code == 422
    return [(c["field"], c["message"]) for c in raised.value.details["causes"]]


def test_ephemeral_containers_are_added_with_defaults_and_nothing_else_changes() -> None:
    new = _pod({"name": "dbg", "image": "busybox:1.37", "targetContainerName": "app"})
    new["spec"]["containers"][0]["image"] = "changed"
    updated = with_ephemeral_containers(_pod(), new)
    assert updated["spec"]["containers"][0]["image"] == "a"
    added = updated["spec"]["ephemeralContainers"][0]
    assert (added["terminationMessagePolicy"], added["imagePullPolicy"]) == ("File", "IfNotPresent")


def test_ephemeral_container_checks() -> None:
    existing = with_ephemeral_containers(_pod(), _pod({"name": "dbg", "image": "busybox"}))
    assert _causes(existing, _pod()) == [
        ("spec.ephemeralContainers", 'Forbidden: existing ephemeral containers "dbg" may not be removed\n')]
    changed = _pod({**existing["spec"]["ephemeralContainers"][0], "image": "alpine"})
    assert _causes(existing, changed) == [
        ("spec.ephemeralContainers[dbg]", 'Forbidden: existing ephemeral containers "dbg" may not be changed\n')]
    bad = _pod({"name": "app", "image": "x", "targetContainerName": "nope", "ports": [{"containerPort": 80}]},
               {"name": "nameless"})
    assert _causes(_pod(), bad) == [
        ("spec.ephemeralContainers[0].name", 'Duplicate value: "app"'),
        ("spec.ephemeralContainers[0].targetContainerName", 'Not found: "nope"'),
        ("spec.ephemeralContainers[0].ports", "Forbidden: cannot be set for an Ephemeral Container"),
        ("spec.ephemeralContainers[1].image", "Required value"),
    ]
