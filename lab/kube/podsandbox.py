"""The kubelet's side of the lab's container sandbox: which isolation works on this machine (:func:`detect`, by a
trial run) and the argv that starts a container process in it (:meth:`SandboxMode.argv`).

The process itself is set up by :mod:`lab.kube.podlauncher` (mount, UTS and network namespaces, volumes at their
mountPaths, the pod network relay, the user, then ``exec`` of the container's argv): see its docstring. It runs as
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
    """How this lab runs containers: ``root`` / ``userns`` (mount namespaces) or ``none`` (fallback)."""

    kind: str
    prefix: tuple[str, ...] = ()  # the unshare argv before "--"
    reason: str = ""
    network: bool = False  # each pod in its own network namespace (reaches lab services through the relay)

    @property
    def isolated(self) -> bool:
        return self.kind != "none"

    def argv(self, spec_path: str) -> list[str]:
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER_LINE, spec_path]
        return [*self.prefix, "--", *launcher] if self.isolated else launcher


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
            with_net = (*prefix, "--net")
            if await _trial_network(list(with_net)) is None:
                return SandboxMode(kind, with_net, network=True)
            return SandboxMode(kind, prefix, reason="no network namespace: pod egress cannot be blocked")
        problems.append(f"{kind}: {problem}")
    return SandboxMode("none", reason="; ".join(problems))

