"""Pod streams: ``pods/exec``, ``pods/attach`` and ``pods/portforward`` as the API server serves them to kubectl
1.3x (WebSockets), older kubectl (SPDY) and the official Python client's ``kubernetes.stream``.

Wire (apimachinery ``wsstream``; apiserver ``util/proxy/websocket.go``; kubelet ``cri/streaming``):

- Sub-protocols ``v5.channel.k8s.io`` (kubectl; the Python client asks for it first), ``v4.channel.k8s.io``,
  ``v4.base64.channel.k8s.io``, ``channel.k8s.io``, ``base64.channel.k8s.io`` and none (binary). Every message
  starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize (JSON ``{"Width","Height"}``); the
  base64 forms carry the channel as an ASCII digit and the data base64-encoded. In v5 the client closes a
  channel with the message ``[255, channel]`` (kubectl closes stdin that way once its input ends).
- Once upgraded, the server writes an empty message on the lowest writable channel (stdout, else stderr, else
  error). At the end it writes the outcome on the error channel: v4/v5 a ``metav1.Status`` (Success, or
  NonZeroExitCode with an ``ExitCode`` cause, which kubectl turns into its own exit status), older protocols
  the error text only; then it sends the close frame and waits for the client's.
- Errors found before the upgrade are answered as the API server answers them: 404 for the pod, 400
  ``container X is not valid for pod P`` / ``a container name must be specified ...`` /
  ``pod P does not have a host assigned``; a container that is not running gets the kubelet's text
  ``container not found ("c")``, which kubectl shows as ``unable to upgrade connection: ...``.
- Clients that upgrade with ``SPDY/3.1`` instead (older kubectl, or with its WebSockets turned off) get the
  same streams over SPDY (:mod:`lab.kube.spdystreams`); a request that asks for no upgrade at all gets the
  kubelet's ``unable to upgrade: missing upgrade headers in request``.
- Authorization: ``create`` on ``pods/exec``, ``pods/attach``, ``pods/portforward`` whatever the method (the
  WebSocket GET included, as with the AuthorizePodWebsocketUpgradeCreatePermission gate).

The exec'd process (:func:`exec_argv`) enters the running container's mount, UTS and network namespaces with
``nsenter`` (``--user`` too when the lab runs pods in a user namespace) and is started by the sandbox launcher
(:mod:`lab.kube.podsandbox`) with the container's environment, user and working directory, so it sees exactly
what the container sees. Emulation detail: an *idle* image (lab.kube.images) runs no process, so there is no
namespace to enter; exec then starts a fresh sandbox made from the same container spec (same volumes at the
same mountPaths, same env, user and working directory, a network namespace of its own).

Attach streams what the container writes from now on (stdout and stderr together on stdout: the kubelet
keeps one log buffer per container) and, for a container with ``stdin: true``, forwards stdin to it (to its
terminal when the container has ``tty: true``, which the kubelet then gives it; resize events resize it).

Port-forward: :mod:`lab.kube.portforward`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import struct
import termios
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from lab.kube import errors, podenv, podsandbox, spdystreams, streams
from lab.kube.authz import Attributes, require
from lab.kube.images import ImageConfig, parse_image, resolve_image

if TYPE_CHECKING:
    from lab.kube.cluster import KubeUser
    from lab.kube.kubelet import ContainerState, PodWorker
    from lab.runtime import Lab

log = logging.getLogger("lab.kube.podstreams")

Obj = dict[str, Any]

SUBRESOURCES = ("exec", "attach", "portforward")

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
V5 = "v5.channel.k8s.io"
CHANNEL_PROTOCOLS = (V5, "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io",
                     "base64.channel.k8s.io")
CLOSE_TIMEOUT = 10.0
ATTACH_POLL_SECONDS = 0.1
DRAIN_SECONDS = 2.0


# ---------------------------------------------------------------- request checks


def is_websocket(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in connection


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


class KubeletRefusal(Exception):
    """The kubelet's refusal before the upgrade: plain text, which kubectl prints after
    ``unable to upgrade connection: ``."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=str(self), content_type="text/plain")


@dataclass
class StreamOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, request: web.Request) -> StreamOptions:
        return cls(stdin=_flag(request, "stdin"), stdout=_flag(request, "stdout"), stderr=_flag(request, "stderr"),
                   tty=_flag(request, "tty"), command=request.query.getall("command", []))

    def check(self) -> None:
        if not (self.stdin or self.stdout or self.stderr):
            raise KubeletRefusal("you must specify at least 1 of stdin, stdout, stderr", 400)

    def streams(self) -> set[int]:
        """The channels a SPDY client opens streams for: error always, resize with a terminal."""
        wanted = {ERROR}
        for flag, channel in ((self.stdin, STDIN), (self.stdout, STDOUT), (self.stderr, STDERR),
                              (self.tty, RESIZE)):
            if flag:
                wanted.add(channel)
        return wanted


# ---------------------------------------------------------------- the channel socket


class ChannelSocket:
    """One upgraded connection speaking a ``*channel.k8s.io`` sub-protocol."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.protocol = ws.ws_protocol or ""
        self.base64 = "base64" in self.protocol
        self.status_json = self.protocol.startswith(("v4.", "v5."))
        self.v5 = self.protocol == V5
        self.lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self.lock:
            if self.ws.closed:
                return
            if self.base64:
                await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await self.ws.send_bytes(bytes([channel]) + data)

    def decode(self, message: Any) -> tuple[int, bytes] | None:
        if message.type == WSMsgType.BINARY:
            data = bytes(message.data)
        elif message.type == WSMsgType.TEXT:
            data = message.data.encode()
        else:
            return None
        if not data:
            return None
        channel, payload = data[0], data[1:]
        if self.base64:
            try:
                return channel - ord("0"), base64.b64decode(payload)
            except ValueError:
                return None
        return channel, payload

    async def messages(self) -> AsyncIterator[tuple[int, bytes]]:
        async for message in self.ws:
            decoded = self.decode(message)
            if decoded is not None and (decoded[0] != CLOSE_SIGNAL or self.v5):
                yield decoded

    async def send_status(self, status: Obj) -> None:
        if self.status_json:
            await self.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        elif status.get("status") != "Success":
            await self.send(ERROR, status.get("message", "").encode())

    async def finish(self, status: Obj) -> None:
        await self.send_status(status)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT)


Channels = ChannelSocket | spdystreams.SpdyChannels
SUCCESS: Obj = {"metadata": {}, "status": "Success"}


def exit_status(command: list[str], code: int) -> Obj:
    """The kubelet's Status for a command that exited non-zero (remotecommand NonZeroExitCode)."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error(message: str) -> Obj:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500}


# ---------------------------------------------------------------- entry point


async def serve(lab: Lab, request: web.Request, user: KubeUser, rt: Any, namespace: str, name: str,
                subresource: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise errors.ApiError(405, "MethodNotAllowed",
                              "the server does not allow this method on the requested resource", {})
    require(lab.kube, user, Attributes(verb="create", resource="pods", group="", namespace=namespace, name=name,
                                       subresource=subresource))
    forget = streams.track_stream(request)  # the lab's shutdown ends open sessions
    try:
        return await _serve(lab, request, rt, namespace, name, subresource)
    finally:
        forget()


async def _serve(lab: Lab, request: web.Request, rt: Any, namespace: str, name: str,
                 subresource: str) -> web.StreamResponse:
    pod = lab.kube.store.get(rt, namespace, name)
    if subresource == "portforward":
        from lab.kube import portforward

        return await portforward.serve(lab, request, pod)
    options = StreamOptions.from_query(request)
    container = streams.choose_container(pod, request.query.get("container", ""))
    if subresource == "exec" and not options.command:
        # unverified: the server's wording; this is the text kubectl itself gives before it ever asks
        raise errors.bad_request("you must specify at least one command for the container")
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    try:
        options.check()
        worker, cs = running_container(lab, namespace, name, container)
        if not (is_websocket(request) or spdystreams.is_spdy(request)):
            raise KubeletRefusal("unable to upgrade: missing upgrade headers in request", 400)
    except KubeletRefusal as refusal:
        return refusal.response()
    sock: ChannelSocket | spdystreams.SpdyChannels
    if spdystreams.is_spdy(request):
        negotiated = spdystreams.negotiate(request, spdystreams.EXEC_PROTOCOLS)
        if isinstance(negotiated, web.Response):
            return negotiated
        conn, response = await spdystreams.SpdyConnection.upgrade(request, negotiated)
        sock = spdystreams.SpdyChannels(conn, negotiated)
        try:
            await sock.open(options.streams())
        except spdystreams.StreamsMissing as exc:
            log.info("pod streams: %s", exc)
            await conn.close()
            return response
    else:
        response = ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        sock = ChannelSocket(ws)
        await sock.send(STDOUT if options.stdout else STDERR if options.stderr else ERROR, b"")
    if subresource == "exec":
        status = await run_exec(lab, worker, cs, options, sock)
    else:
        status = await run_attach(lab, worker, cs, options, sock)
    await sock.finish(status)
    return response


def running_container(lab: Lab, namespace: str, name: str, container: str) -> tuple[PodWorker, ContainerState]:
    kubelet = getattr(lab, "kubelet", None)
    worker = kubelet.worker(namespace, name) if kubelet else None
    if worker is not None:
        for cs in [*worker.init_states, *worker.main_states, *worker.ephemeral_states]:
            if cs.name == container and "running" in cs.state:
                return worker, cs
    raise KubeletRefusal(f'container not found ("{container}")')


# ---------------------------------------------------------------- exec


@dataclass
class Launched:
    proc: asyncio.subprocess.Process
    status_read: int
    master: int | None  # the pty's master side when tty
    stage: str | None  # the fresh sandbox's staging directory (an empty directory on the host)
    spec_path: Path  # the launcher deletes it once read; left behind only when it never ran


def _image(lab: Lab, cs: ContainerState) -> tuple[str, ImageConfig]:
    kind, config = resolve_image(lab.kube, parse_image(cs.spec.get("image", "")))
    return kind, config or ImageConfig()


def exec_spec(lab: Lab, worker: PodWorker, cs: ContainerState, command: list[str], tty: bool,
              status_fd: int) -> tuple[list[str], Obj, Path]:
    """The argv that runs ``command`` in the container, the launcher spec, and the directory it is written to."""
    sandbox = worker.kubelet.sandbox
    cdir = worker.dir / "containers" / cs.name
    cdir.mkdir(parents=True, exist_ok=True)
    exec_id = uuid.uuid4().hex
    spec: Obj = {"argv": command, "status_fd": status_fd, "tty": tty, "sandbox": False}
    proc = worker.procs.get(cs.name)
    started_env = _process_env(proc.pid) if proc is not None and proc.returncode is None else None
    if proc is not None and started_env is not None:
        # a running process: the environment it started with (the runtime execs with the container's process
        # spec, not with what its ConfigMaps say now), the container's user and working directory
        workdir = os.path.normpath("/" + (cs.spec.get("workingDir") or "/").lstrip("/"))
        spec.update(env=started_env, user=worker._user(cs.spec), cwd=workdir)
        if sandbox.isolated:
            return exec_argv(proc.pid, sandbox), spec, cdir / f"exec-{exec_id}.spec"
        with contextlib.suppress(OSError):  # no namespaces: a host process, beside the container in its directory
            spec.update(cwd=os.readlink(f"/proc/{proc.pid}/cwd"), user=None)
        return sandbox.argv("")[:-1], spec, cdir / f"exec-{exec_id}.spec"
    # no process to enter (an idle image): a sandbox of its own made from the same container spec
    kind, image = _image(lab, cs)
    launch = worker.launch_spec(cs, image)
    if not sandbox.isolated:
        worker._fallback_paths(cs, launch)
    spec.update(env=launch.env, cwd=launch.cwd, user=launch.user)
    if sandbox.isolated:
        stage = cdir / f"exec-{exec_id}"
        stage.mkdir(parents=True, exist_ok=True)
        spec.update(sandbox=True, stage=str(stage), mounts=launch.mounts, traverse=launch.traverse,
                    image_paths=launch.image_paths, hostname=launch.env.get("HOSTNAME", worker.name))
        manifests = getattr(lab, "pod_manifests", None)
        if sandbox.network and manifests is not None:
            spec["network"] = {"manifest": str(manifests.path(worker.pod))}
    return sandbox.argv("")[:-1], spec, cdir / f"exec-{exec_id}.spec"


def _process_env(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and name:
            env[os.fsdecode(name)] = os.fsdecode(value)
    return env


def exec_argv(pid: int, sandbox: podsandbox.SandboxMode) -> list[str]:
    """nsenter into the container process's namespaces, then the launcher (which the caller names the spec of)."""
    argv = ["nsenter", f"--target={pid}", "--mount", "--uts"]
    if sandbox.network:
        argv.append("--net")
    if sandbox.kind == "userns":
        argv.append("--user")
    argv += ["--root", "--wd", "--"]
    return [*argv, *podsandbox.SandboxMode("none").argv("")[:-1]]


async def launch_exec(lab: Lab, worker: PodWorker, cs: ContainerState, options: StreamOptions) -> Launched:
    status_read, status_write = os.pipe()
    argv, spec, spec_path = exec_spec(lab, worker, cs, options.command, options.tty, status_write)
    podsandbox.write_spec(str(spec_path), spec)
    master = slave = None
    if options.tty:
        master, slave = os.openpty()
        os.set_blocking(master, False)
        stdio: dict[str, Any] = {"stdin": slave, "stdout": slave, "stderr": slave}
    else:
        stdio = {"stdin": asyncio.subprocess.PIPE if options.stdin else asyncio.subprocess.DEVNULL,
                 "stdout": asyncio.subprocess.PIPE if options.stdout else asyncio.subprocess.DEVNULL,
                 "stderr": asyncio.subprocess.PIPE if options.stderr else asyncio.subprocess.DEVNULL}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, str(spec_path), **stdio, pass_fds=(status_write,), start_new_session=True,
            env={"PATH": os.environ.get("PATH", os.defpath)})
    except OSError:
        os.close(status_read)
        if master is not None:
            os.close(master)
        with contextlib.suppress(OSError):
            spec_path.unlink()
        raise
    finally:
        os.close(status_write)
        if slave is not None:
            os.close(slave)
    return Launched(proc, status_read, master, spec.get("stage"), spec_path)


async def _read_all(fd: int) -> str:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(fd, "rb", buffering=0))
    try:
        return (await reader.read()).decode(errors="replace")
    finally:
        transport.close()


async def _pump_reader(reader: asyncio.StreamReader | None, sock: Channels, channel: int) -> None:
    if reader is None:
        return
    while chunk := await reader.read(32768):
        await sock.send(channel, chunk)


async def pty_chunks(master: int) -> AsyncIterator[bytes]:
    """What a terminal's programs write, read from its (non-blocking) master side until every slave is closed."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(master, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                chunk = os.read(master, 32768)
            except BlockingIOError:
                continue
            except OSError:  # EIO: every slave end is closed
                return
            if not chunk:
                return
            yield chunk
    finally:
        loop.remove_reader(master)


async def _pump_master(master: int, sock: Channels) -> None:
    async for chunk in pty_chunks(master):
        await sock.send(STDOUT, chunk)


async def write_master(master: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(master, data)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        data = data[written:]


def _resize(master: int | None, payload: bytes) -> None:
    if master is None:
        return
    with contextlib.suppress(ValueError, TypeError, OSError, AttributeError):
        for line in payload.decode().splitlines() or [""]:
            if line.strip():
                size = json.loads(line)
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", int(size["Height"]),
                                                                    int(size["Width"]), 0, 0))


async def read_client(sock: Channels, on_stdin: Callable[[bytes], Awaitable[None]],
                      on_close_stdin: Callable[[], Awaitable[None]], on_resize: Callable[[bytes], None]) -> None:
    """Route the client's messages until it goes away; its going away closes stdin too."""
    try:
        async for channel, payload in sock.messages():
            if channel == STDIN and payload:
                await on_stdin(payload)
            elif channel == RESIZE:
                on_resize(payload)
            elif channel == CLOSE_SIGNAL and payload[:1] == bytes([STDIN]):
                await on_close_stdin()
    finally:
        await on_close_stdin()


def _stdin_handlers(proc: asyncio.subprocess.Process, master: int | None
                    ) -> tuple[Callable[[bytes], Awaitable[None]], Callable[[], Awaitable[None]]]:
    closed = False

    async def write(data: bytes) -> None:
        if closed:
            return
        if master is not None:
            await write_master(master, data)
        elif proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                proc.stdin.write(data)
                await proc.stdin.drain()

    async def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        if master is not None:
            with contextlib.suppress(OSError):
                await write_master(master, b"\x04")  # a terminal's end of input
        elif proc.stdin is not None:
            with contextlib.suppress(ConnectionError, OSError):
                proc.stdin.close()

    return write, close


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


async def run_exec(lab: Lab, worker: PodWorker, cs: ContainerState, options: StreamOptions,
                   sock: Channels) -> Obj:
    try:
        launched = await launch_exec(lab, worker, cs, options)
    except (OSError, podenv.ConfigError) as exc:
        return internal_error(f"error executing command in container: {exc}")
    proc, master = launched.proc, launched.master
    write, close = _stdin_handlers(proc, master)
    client = asyncio.ensure_future(read_client(sock, write, close, lambda p: _resize(master, p)))
    if master is not None:
        pumps = [asyncio.ensure_future(_pump_master(master, sock))]
    else:
        pumps = [asyncio.ensure_future(_pump_reader(proc.stdout, sock, STDOUT)),
                 asyncio.ensure_future(_pump_reader(proc.stderr, sock, STDERR))]
    try:
        report = await _read_all(launched.status_read)
        waiter = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.wait([waiter, client], return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:  # the client went away: so does the command
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        code = _exit_code(await waiter)
        await asyncio.wait(pumps, timeout=2.0)
    finally:
        if proc.returncode is None:  # cancelled (the lab stopping): the command goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        for task in [client, *pumps]:
            task.cancel()
        if master is not None:
            os.close(master)
        if launched.stage:
            with contextlib.suppress(OSError):
                os.rmdir(launched.stage)
        with contextlib.suppress(OSError):
            launched.spec_path.unlink()
    if report:
        _, _, message = report.partition("\t")
        return internal_error("error executing command in container: failed to exec in container: failed to start "
                              f'exec "{uuid.uuid4().hex}": OCI runtime exec failed: exec failed: unable to start '
                              f"container process: {message.strip()}")
    return SUCCESS if code == 0 else exit_status(options.command, code)


# ---------------------------------------------------------------- attach


async def run_attach(lab: Lab, worker: PodWorker, cs: ContainerState, options: StreamOptions,
                     sock: Channels) -> Obj:
    key = (worker.namespace, worker.name, cs.name)
    proc = worker.procs.get(cs.name)
    master = worker.ttys.get(cs.name)  # the container's terminal, when it has tty: true
    logs = lab.kube.pod_logs.get(key)
    offset = len(logs) if logs is not None else 0

    async def write(data: bytes) -> None:
        if not (options.stdin and cs.spec.get("stdin")):
            return
        if master is not None:
            with contextlib.suppress(OSError):
                await write_master(master, data)
        elif proc is not None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                proc.stdin.write(data)
                await proc.stdin.drain()

    async def close() -> None:
        if not cs.spec.get("stdinOnce"):
            return
        if master is not None:
            with contextlib.suppress(OSError):
                await write_master(master, b"\x04")  # a terminal's end of input
        elif proc is not None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError, OSError):
                proc.stdin.close()

    def resize(payload: bytes) -> None:
        if options.tty:
            _resize(master, payload)

    client = asyncio.ensure_future(read_client(sock, write, close, resize))
    async def flush() -> None:
        nonlocal logs, offset
        current = lab.kube.pod_logs.get(key)
        if current is not logs:  # the container restarted: a new buffer
            logs, offset = current, 0
        if logs is not None and len(logs) > offset and options.stdout:
            chunk = bytes(logs[offset:])
            offset += len(chunk)
            await sock.send(STDOUT, chunk)

    try:
        while not client.done():
            await flush()
            if "running" not in cs.state or (proc is not None and proc.returncode is not None):
                deadline = time.monotonic() + DRAIN_SECONDS  # what the process wrote last is still in the pipes
                while cs.name in worker.pumps and time.monotonic() < deadline:
                    await asyncio.sleep(ATTACH_POLL_SECONDS / 2)
                await flush()
                break
            await asyncio.sleep(ATTACH_POLL_SECONDS)
    finally:
        client.cancel()
        await close()
    return SUCCESS
