"""The container launcher: per-container mount namespaces for lab pods, volumes at their exact mountPaths, the host
untouched.

The kubelet (lab.kube.podsandbox) starts every container process as::

    unshare --mount --uts --propagation private -- python -I -S -c "<import this module, run main>" SPEC

(``unshare --user --map-root-user ...`` when the lab is not root). This module then runs inside the new namespace
with the standard library only, reads the spec the kubelet wrote (and deletes it),
sets the mounts up, drops privileges and ``exec``s the container's argv, so the process the kubelet watches
is the container itself (same pid, own process group).

How a mountPath that does not exist on the host (``/var/run/secrets/azure/wi``) is made without writing to
the host: the deepest existing ancestor (``/run``, since ``/var/run -> /run``) is *mirrored*: a tmpfs gets an
empty file or directory per entry of the original, each bind-mounted (recursively) from the original, and
the tmpfs is moved over the ancestor. The pod sees the same ``/run`` as before, plus the directories the
launcher creates in the tmpfs; the host's ``/run`` is unchanged. A missing top-level path mirrors ``/`` the
same way and ``chroot``s into the mirror. Directories created inside a volume (a mount nested in another
volume) land in the pod's own volume directory, as they do on a real node.

When the process runs as a non-root ``runAsUser`` and an ancestor of its executable (the host interpreter,
say under ``/root``) is not searchable for that user, the launcher mirrors that ancestor with search
permission added, in the pod's view only.

Status channel: the kubelet passes a pipe (``status_fd``); the launcher marks it close-on-exec, so a
successful ``exec`` shows as EOF and any failure before it as one line ``KIND<TAB>message`` and exit 128,
which the kubelet turns into a ``StartError`` like containerd's.

It runs at every container start, so it imports as little as it can (no json, contextlib, shutil or typing: about
8 ms of each start; ``_socket``, not ``socket``, whose import builds an enum of every constant: about 10 ms more)
and is imported rather than run as a script, so its bytecode is cached (a script is compiled
again at every start). The kubelet's side, :mod:`lab.kube.podsandbox`, imports it too.
"""

# ruff: noqa: SIM105 -- try/except/pass instead of contextlib.suppress: contextlib is not imported (docstring)
from __future__ import annotations

import _socket  # not socket: its import builds the enums of every constant, ~10 ms of each container start
import _thread  # not threading: its import (collections, functools) was ~4 ms of each pod's relay start
import ctypes
import marshal
import os
import stat
import sys
import warnings  # noqa: F401 -- os.execvpe imports it (get_exec_path): in an exec's nsenter --root it may be out of reach

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2

# statvfs f_flag bits -> the mount flags a read-only bind remount must repeat (locked in a user namespace)
_LOCKED_FLAGS = ((2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME), (2048, MS_NODIRATIME),
                 (4096, MS_RELATIME))

START_ERROR_PREFIX = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                      "runc create failed: unable to start container process: error during container init: ")


class SandboxError(Exception):
    pass


_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"mount {source or fstype or ''} on {target}: {os.strerror(err)}")


def umount(target: str, flags: int = 0) -> None:
    if _lib().umount2(_b(target), flags) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"umount {target}: {os.strerror(err)}")


def _locked_flags(path: str) -> int:
    bits = os.statvfs(path).f_flag
    return sum(flag for bit, flag in _LOCKED_FLAGS if bits & bit)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class MountPlan:
    """The mount work inside the new namespace (see the module docstring)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.count = 0
        self.mirrored: set[str] = set()  # tmpfs mirrors: creating direct children is safe
        self.writable: list[str] = []  # trees where creating anything is safe (volumes, dirs we made)
        self.readonly: list[str] = []
        self.chrooted = False

    def begin(self) -> None:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        mount("tmpfs", self.stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
        # reached through a descriptor from now on: a volume mounted over a parent of the state directory (an
        # emptyDir at /tmp while the lab's state is under /tmp) must not hide the stage from later mounts
        self.stage = f"/proc/self/fd/{os.open(self.stage, os.O_PATH | os.O_DIRECTORY)}"

    def _new_stage(self) -> str:
        self.count += 1
        path = os.path.join(self.stage, str(self.count))
        os.mkdir(path, 0o755)
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        return path

    def _fill_mirror(self, original: str, mirror: str) -> None:
        st = os.stat(original)
        os.chmod(mirror, stat.S_IMODE(st.st_mode))
        try:
            os.chown(mirror, st.st_uid, st.st_gid)
        except OSError:  # user namespace: ids outside the map
            pass
        for name in os.listdir(original):
            src = os.path.join(original, name)
            dst = os.path.join(mirror, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
                continue
            if os.path.isdir(src):
                os.mkdir(dst)
            else:
                with open(dst, "w"):
                    pass
            mount(src, dst, None, MS_BIND | MS_REC)

    def mirror(self, directory: str) -> None:
        if directory in self.mirrored:
            return
        copy = self._new_stage()
        self._fill_mirror(directory, copy)
        if directory == "/":
            os.chdir(copy)
            os.chroot(".")
            os.chdir("/")
            self.chrooted = True
        else:
            mount(copy, directory, None, MS_MOVE)
        self.mirrored.add(directory)

    def make_writable(self, directory: str) -> None:
        if directory in self.mirrored or any(_under(directory, root) for root in self.writable):
            return
        self.mirror(directory)

    def ensure_dir(self, path: str, depth: int = 0) -> str:
        """A directory at ``path`` (created if need be, never on the host); returns its real path."""
        if depth > 40:
            raise SandboxError(f"too many levels of symbolic links: {path}")
        path = os.path.normpath(path)
        if os.path.isdir(path):
            return os.path.realpath(path)
        if os.path.islink(path):  # dangling: create what it points at
            return self.ensure_dir(os.path.join(os.path.dirname(path), os.readlink(path)), depth + 1)
        if os.path.lexists(path):
            raise SandboxError(f"mkdir {path}: not a directory")
        parent = self.ensure_dir(os.path.dirname(path), depth + 1)
        self.make_writable(parent)
        created = os.path.join(parent, os.path.basename(path))
        os.mkdir(created, 0o755)
        self.writable.append(created)
        return created

    def ensure_target(self, path: str, is_file: bool) -> str:
        path = os.path.normpath(path)
        if os.path.exists(path):
            real = os.path.realpath(path)
            if os.path.isdir(real) == is_file:
                kind = "a directory" if is_file else "not a directory"
                raise SandboxError(f"mount destination {path} is {kind}")
            return real
        if os.path.islink(path):
            return self.ensure_target(os.path.join(os.path.dirname(path), os.readlink(path)), is_file)
        parent = self.ensure_dir(os.path.dirname(path))
        self.make_writable(parent)
        created = os.path.join(parent, os.path.basename(path))
        if is_file:
            with open(created, "w"):
                pass
        else:
            os.mkdir(created, 0o755)
        return created

    def bind(self, source: str, target: str, readonly: bool, verify: bool = False) -> None:
        """Bind ``source`` at ``target``. ``verify``: ``source`` is a path the kubelet resolved inside a volume
        the container can write to (a subPath); it is re-opened here one component at a time without following
        symlinks and bound through that descriptor, so a link swapped in since cannot redirect the bind."""
        if not verify:
            real = self.ensure_target(target, is_file=not os.path.isdir(source))
            mount(source, real, None, MS_BIND | MS_REC)
        else:
            fd = open_without_symlinks(source)
            try:
                real = self.ensure_target(target, is_file=not stat.S_ISDIR(os.fstat(fd).st_mode))
                mount(f"/proc/self/fd/{fd}", real, None, MS_BIND | MS_REC)
            finally:
                os.close(fd)
        self.writable.append(real)
        if readonly:
            self.readonly.append(target)

    def make_searchable(self, path: str, uid: int, gids: set[int]) -> None:
        """Every ancestor of ``path`` searchable by uid/gids, in this namespace only."""
        real = os.path.realpath(path)
        parts = [p for p in real.split("/") if p]
        current = "/"
        for part in [None, *parts]:
            if part is not None:
                current = os.path.join(current, part)
            try:
                st = os.stat(current)
            except OSError:
                return
            if not stat.S_ISDIR(st.st_mode):
                return
            if _searchable(st, uid, gids):
                continue
            self.mirror(current)
            os.chmod(current, stat.S_IMODE(st.st_mode) | 0o011)

    def finish(self) -> None:
        for target in self.readonly:
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(target))
        if not self.chrooted:
            try:
                umount(self.stage, MNT_DETACH)
            except SandboxError:
                pass


def open_without_symlinks(path: str) -> int:
    """An O_PATH descriptor for the absolute ``path``, reached from ``/`` one component at a time, refusing any
    symlink on the way (the kubelet subpather's doSafeOpen)."""
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        for part in [p for p in path.split("/") if p]:
            if part in (".", ".."):
                raise SandboxError(f"open {path}: not a clean path")
            child = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise SandboxError(f"open {path}: a symbolic link is in the way")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _searchable(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid in gids:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def _which(command: str, env: dict[str, str]) -> str | None:
    """The file ``execvpe`` runs for ``command``: shutil.which's walk of PATH, without importing shutil."""
    if "/" in command:
        return command
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or os.curdir, command)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def _exec_error(argv0: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        if "/" in argv0:
            return f'exec: "{argv0}": stat {argv0}: no such file or directory: unknown'
        return f'exec: "{argv0}": executable file not found in $PATH: unknown'
    if isinstance(exc, PermissionError):
        return f'exec: "{argv0}": permission denied: unknown'
    return f'exec: "{argv0}": {exc.strerror or exc}: unknown'


def launch(spec: dict[str, Any]) -> None:
    """Run inside the namespace: mounts, hostname, identity, cwd, exec. Never returns."""
    status_fd = spec["status_fd"]
    os.set_inheritable(status_fd, False)

    def fail(kind: str, message: str) -> None:
        os.write(status_fd, f"{kind}\t{message}\n".encode())
        os._exit(128)

    env: dict[str, str] = spec["env"]
    argv: list[str] = spec["argv"]
    user = spec.get("user")
    if spec.get("network"):
        try:
            start_network(spec["network"]["manifest"], status_fd)
        except OSError as exc:
            fail("StartError", f"setting up the pod network: {exc}: unknown")
    try:
        if spec.get("sandbox"):
            plan = MountPlan(spec["stage"])
            plan.begin()
            items = spec.get("mounts", [])
            # every source held open before the first bind, for the same reason as the stage
            held = [None if item.get("verify") else os.open(item["source"], os.O_PATH) for item in items]
            shadowed = [path for path in spec.get("image_paths", []) if os.path.isdir(path)
                        and any(_under(path, item["target"]) and path != item["target"] for item in items)]
            # only the outermost: a venv inside the checkout comes back with the checkout
            shadowed = [path for path in shadowed if not any(_under(path, other) and path != other
                                                             for other in shadowed)]
            image_held = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in shadowed]
            for item, fd in zip(items, held, strict=True):
                source = item["source"] if fd is None else f"/proc/self/fd/{fd}"
                plan.bind(source, item["target"], item.get("readonly", False), item.get("verify", False))
            # the image's own directories a volume now covers are bound back, read-only, inside that volume
            for path, fd in zip(shadowed, image_held, strict=True):
                plan.bind(f"/proc/self/fd/{fd}", path, readonly=True)
            if user and user["uid"] != 0:
                gids = {user["gid"], *user.get("groups", [])}
                executable = _which(argv[0], env) if argv else None
                wanted = [spec.get("cwd") or "/", *spec.get("traverse", [])]
                if executable:
                    wanted += [executable, os.path.realpath(executable)]
                for path in wanted:
                    plan.make_searchable(path, user["uid"], gids)
            cwd = spec.get("cwd") or "/"
            if not os.path.isdir(cwd):
                plan.ensure_dir(cwd)
            plan.finish()
            if spec.get("hostname"):
                try:
                    _socket.sethostname(spec["hostname"])
                except OSError:
                    pass
    except (OSError, SandboxError) as exc:
        fail("StartError", f"error mounting volumes: {exc}: unknown")
    try:
        if user:
            os.setgroups(sorted(set(user.get("groups", []))))
            os.setgid(user["gid"])
            os.setuid(user["uid"])
    except OSError as exc:
        fail("StartError", f"setting user {user}: {exc.strerror}: unknown")
    if spec.get("tty"):  # a container or exec with a terminal (on stdout at least): its controlling terminal
        import fcntl
        import termios

        try:
            fcntl.ioctl(1, termios.TIOCSCTTY, 0)
        except OSError:
            pass
    cwd = spec.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        fail("StartError", f'chdir to cwd ("{cwd}") set in config.json failed: {exc.strerror.lower()}: unknown')
    if not argv:
        fail("StartError", "no command specified: unknown")
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        fail("StartError", _exec_error(argv[0], exc))


# ----------------------------------------------------------------------- pod network
#
# With ``unshare --net`` each pod has a loopback of its own, so it reaches nothing of the host. The launcher
# brings that loopback up and forks a relay that listens, inside the pod, on 127.0.0.1:<port> of every lab
# service and pipes each connection to the unix socket the lab serves the same port on (the
# pod's manifest names them). Ports the pod's NetworkPolicies deny are marked ``dropped`` in its manifest
# (``lab.egress`` rewrites it as policies change): the relay then answers no SYN on them, so connections time
# out as with a CNI that drops denied packets. The relay exits when the container does.

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _loopback_up() -> None:
    import fcntl
    import struct

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    finally:
        sock.close()


def _pipe_one_way(source: _socket.socket, sink: _socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(_socket.SHUT_WR)
        except OSError:
            pass


def _relay_connection(conn: _socket.socket, socket_path: str) -> None:
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        conn.close()
        upstream.close()
        return
    back_done = _thread.allocate_lock()
    back_done.acquire()

    def back() -> None:
        try:
            _pipe_one_way(upstream, conn)
        finally:
            back_done.release()

    _thread.start_new_thread(back, ())
    _pipe_one_way(conn, upstream)
    back_done.acquire()  # the other direction is finished too
    conn.close()
    upstream.close()


def _accept_loop(listener: _socket.socket, socket_path: str) -> None:
    while True:
        try:
            fd, _ = listener._accept()  # what socket.socket.accept does, without the socket module
        except OSError:
            return  # the listener was closed: the port is blocked or gone
        conn = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
        _thread.start_new_thread(_relay_connection, (conn, socket_path))


def _read_manifest(path: str) -> dict[int, str | None]:
    """Port -> the unix socket its connections are relayed to, or None when the pod's NetworkPolicies deny it.
    The manifest is marshal (lab.egress writes it), as the launch spec is: json would cost the relay ~6 ms of
    imports (re, enum) at every pod start."""
    with open(path, "rb") as handle:
        manifest = marshal.load(handle)
    dropped = {int(port) for port in manifest.get("dropped", [])}
    return {int(port): None if int(port) in dropped else entry["socket"]
            for port, entry in manifest["ports"].items()}


def _listener(port: int, backlog: int) -> _socket.socket:
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(backlog)
    return listener


def _dropping_listener(port: int) -> tuple[_socket.socket, _socket.socket]:
    """A listener whose accept queue is full and never drained: the kernel drops further SYNs, so a client's
    connect times out as it does against a CNI that drops denied packets. Returns (listener, the filler)."""
    listener = _listener(port, 0)
    filler = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    filler.settimeout(5)
    filler.connect(("127.0.0.1", port))
    return listener, filler


def _relay(manifest_path: str, ready_fd: int, parent: int) -> None:
    import time

    listeners: dict[int, tuple[str | None, list[_socket.socket]]] = {}
    seen = None
    while os.getppid() == parent:
        try:
            stamp = os.stat(manifest_path).st_mtime_ns
            if stamp != seen:
                seen = stamp
                wanted = _read_manifest(manifest_path)
                for port in [p for p, (target, _) in listeners.items() if wanted.get(p, "") != target]:
                    for sock in listeners.pop(port)[1]:
                        try:
                            sock.shutdown(_socket.SHUT_RDWR)
                        except OSError:
                            pass
                        sock.close()
                for port, path in wanted.items():
                    if port in listeners:
                        continue
                    if path is None:
                        listeners[port] = (None, list(_dropping_listener(port)))
                        continue
                    listener = _listener(port, 128)
                    listeners[port] = (path, [listener])
                    _thread.start_new_thread(_accept_loop, (listener, path))
        except OSError:
            pass
        if ready_fd >= 0:
            os.write(ready_fd, b"ok")
            os.close(ready_fd)
            ready_fd = -1
        time.sleep(0.1)
    os._exit(0)


def start_network(manifest_path: str, status_fd: int) -> None:
    """In a fresh network namespace: loopback up, relay forked and listening before the container starts."""
    _loopback_up()
    ready_read, ready_write = os.pipe()
    parent = os.getpid()
    if os.fork() == 0:
        try:
            os.close(ready_read)
            os.close(status_fd)  # the kubelet reads EOF on it as "exec succeeded": the relay must not hold it
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.setsid()
            _relay(manifest_path, ready_write, parent)
        finally:
            os._exit(1)
    os.close(ready_write)
    with os.fdopen(ready_read, "rb") as ready:
        if ready.read(2) != b"ok":
            raise OSError("the pod network relay did not start")


def selftest(directory: str) -> None:
    """Prove mounts work in this namespace: tmpfs, bind, read-only remount, mirror. Exit 0 when they do."""
    a = os.path.join(directory, "a")
    b = os.path.join(directory, "b")
    stage = os.path.join(directory, "stage")
    plan = MountPlan(stage)
    plan.begin()
    mount("tmpfs", a, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    with open(os.path.join(a, "probe"), "w") as handle:
        handle.write("ok")
    plan.bind(a, b, readonly=True)
    plan.mirror(os.path.join(directory, "m"))
    plan.ensure_dir(os.path.join(directory, "m", "new", "deeper"))
    plan.finish()
    with open(os.path.join(b, "probe")) as handle:
        assert handle.read() == "ok"
    try:
        with open(os.path.join(b, "other"), "w"):
            pass
    except OSError:
        pass
    else:
        raise SystemExit("read-only remount did not take")


def write_spec(path: str, spec: dict[str, Any]) -> None:
    """The launch spec :func:`main` reads, readable by its owner only (marshal: a builtin, no import to pay)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        marshal.dump(spec, handle)


def main(args: list[str]) -> None:
    """What the kubelet's ``python -I -S -c`` runs (lab.kube.podsandbox.SandboxMode.argv): a container's launch
    (the spec file, deleted once read; never returns), or one of the self-tests the kubelet's detect runs."""
    if args[:1] == ["--selftest"]:
        selftest(args[1])
    elif args[:1] == ["--selftest-network"]:
        _loopback_up()
    else:
        with open(args[0], "rb") as handle:
            spec = marshal.load(handle)
        os.unlink(args[0])
        launch(spec)
    sys.exit(0)
