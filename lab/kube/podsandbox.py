"""The kubelet's side of the lab's container sandbox: which isolation works on this machine (:func:`detect`, by a
trial run) and the argv that starts a container process in it (:meth:`SandboxMode.argv`).

The process itself is set up by :mod:`lab.kube.podlauncher` (mount and UTS namespaces, volumes at their
mountPaths, the user, then ``exec`` of the container's argv; the pod's network namespace and relay are its network
holder's, which every container joins): see its docstring. It runs as
``python -I -S -c`` with a line that imports it from its own directory, so its bytecode is cached and nothing of
this repository but that one standard-library-only file is on its path.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.kube import podlauncher
from lab.kube.podlauncher import START_ERROR_PREFIX, _under, write_spec

__all__ = ["START_ERROR_PREFIX", "SandboxMode", "_under", "detect", "write_spec"]

LAUNCHER_DIR = str(Path(podlauncher.__file__).resolve().parent)
# sys.path[0] is the launcher's directory only: ``python -I`` puts neither the working directory nor PYTHONPATH there
LAUNCHER_LINE = f"import sys; sys.path[:0] = [{LAUNCHER_DIR!r}]; import podlauncher; podlauncher.main(sys.argv[1:])"




@dataclass(frozen=True)
class SandboxMode:
    """How this lab runs containers: ``root`` / ``userns`` (mount namespaces) or ``none`` (fallback).

    With ``network``, a pod's containers share one network namespace, as on a real node where the pod sandbox (the
    pause container) holds it and every container of the pod joins it. Kubernetes' "IP-per-pod" model: IP
    addresses exist at the pod's scope, its containers share the network namespace and so reach one another's
    ports on localhost (https://kubernetes.io/docs/concepts/services-networking/, The Kubernetes network model;
    https://kubernetes.io/docs/concepts/cluster-administration/networking/; and
    https://kubernetes.io/docs/concepts/workloads/pods/#how-pods-manage-multiple-containers: containers of a pod
    share its resources and network). The namespace is made by the pod's network holder
    (:meth:`holder_argv`, lab.kube.podlauncher.hold_network) when the kubelet makes the sandbox; containers, execs
    and port-forward dials enter it with ``nsenter --net`` (``--user`` too in ``userns`` mode: the namespace belongs
    to the holder's user namespace, and a container is root in that one rather than in a user namespace of its own).
    """

    kind: str
    prefix: tuple[str, ...] = ()  # the unshare argv before "--": a container's mount and UTS namespaces
    reason: str = ""
    network: bool = False  # each pod in its own network namespace (reaches lab services through the relay)

    @property
    def isolated(self) -> bool:
        return self.kind != "none"

    def holder_argv(self, manifest_path: str) -> list[str]:
        """The argv of a pod's network holder: a fresh network namespace (and, in ``userns`` mode, the user
        namespace that owns it) running the relay of the pod's manifest."""
        new = ["--user", "--map-root-user", "--net"] if self.kind == "userns" else ["--net"]
        return [self.prefix[0], *new, "--", sys.executable, "-I", "-S", "-c", LAUNCHER_LINE, "--pod-network",
                manifest_path]

    def join_network(self, holder_pid: int) -> list[str]:
        """The nsenter argv (before "--") that enters the pod network held by ``holder_pid``."""
        argv = ["nsenter", f"--target={holder_pid}", "--net"]
        if self.kind == "userns":
            argv.append("--user")  # root there, as --map-root-user made the lab's user in it
        return argv

    def argv(self, spec_path: str, holder_pid: int | None = None) -> list[str]:
        """A container's argv: its own mount and UTS namespaces; with ``holder_pid``, in that pod network."""
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER_LINE, spec_path]
        if not self.isolated:
            return launcher
        if self.network and holder_pid is not None:
            own = [arg for arg in self.prefix if arg not in ("--user", "--map-root-user")]
            return [*self.join_network(holder_pid), "--", *own, "--", *launcher]
        return [*self.prefix, "--", *launcher]


SELFTEST_SECONDS = 30


async def _selftest(prefix: list[str], *args: str) -> str | None:
    """Run the launcher's self-test under ``prefix`` (an unshare argv); None when it passed, else why not."""
    import asyncio

    argv = [*prefix, "--", sys.executable, "-I", "-S", "-c", LAUNCHER_LINE, *args]
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        return str(exc)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SELFTEST_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"the self-test did not finish within {SELFTEST_SECONDS} s"
    if proc.returncode != 0:
        text = (err or out).decode(errors="replace").strip().splitlines()
        return text[-1] if text else f"exit status {proc.returncode}"
    return None


async def _trial(prefix: list[str], workdir: str) -> str | None:
    for name in ("a", "b", "m", "stage"):
        os.makedirs(os.path.join(workdir, name), exist_ok=True)
    return await _selftest(prefix, "--selftest", workdir)


async def _trial_network(prefix: list[str]) -> str | None:
    return await _selftest(prefix, "--selftest-network")


async def detect(requested: str | None = None) -> SandboxMode:
    """Check once, by a trial run, which isolation works here.

    ``requested``: None/"auto" tries ``root`` (when root) then ``userns``; "root" or "userns" tries only that
    one; "none" forces the fallback.
    """
    if requested == "none":
        return SandboxMode("none", reason="disabled by configuration")
    unshare = shutil.which("unshare")
    if unshare is None:
        return SandboxMode("none", reason="util-linux unshare not found")
    candidates = []
    if os.geteuid() == 0:
        candidates.append(("root", (unshare, "--mount", "--uts", "--propagation", "private")))
    candidates.append(("userns", (unshare, "--user", "--map-root-user", "--mount", "--uts", "--propagation",
                                  "private")))
    if requested in ("root", "userns"):
        candidates = [c for c in candidates if c[0] == requested]
    problems = []
    for kind, prefix in candidates:
        with tempfile.TemporaryDirectory(prefix="lab-sandbox-") as workdir:
            problem = await _trial(list(prefix), workdir)
        if problem is None:
            if shutil.which("nsenter") is None:
                return SandboxMode(kind, prefix, reason="util-linux nsenter not found: pods share the host network")
            if await _trial_network([*prefix, "--net"]) is None:
                return SandboxMode(kind, prefix, network=True)
            return SandboxMode(kind, prefix, reason="no network namespace: pod egress cannot be blocked")
        problems.append(f"{kind}: {problem}")
    return SandboxMode("none", reason="; ".join(problems))

