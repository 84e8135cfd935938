"""Where the lab's kubelet keeps its pods' directories (volumes, launch specs): on a tmpfs when the machine has one.

A real kubelet backs secret, projected and downwardAPI volumes with tmpfs (their ``wrappedVolumeSpec`` is an
emptyDir of medium Memory: pkg/volume/secret, pkg/volume/projected, pkg/volume/downwardapi); configMap and
emptyDir volumes sit on the node's disk. The lab keeps all of a pod's files on ``/dev/shm`` when that is a
writable tmpfs, mounted without noexec, with room to spare: a file created on a VM's ext4 costs about 0.6 ms of
CPU (journal work), and a probe pod has about 30 (its ConfigMap of source and bytecode, two projected tokens), so
at 50 probe pods the lab spent more than a second of a 2-core run's CPU on its disk (``python -m bench.fanout``,
docs/performance.md). The medium shows to a pod's processes only through statfs.

Each lab's directory (``/dev/shm/wi-lab-pods-XXXXXXXX``) is locked (``flock``) while its kubelet runs and removed
when the kubelet stops; one a killed lab left (the kernel released its lock) is removed by the next lab that
starts. ``<state-dir>/pods`` is a symlink to it, for a person looking. Elsewhere (no such tmpfs, or
``LAB_POD_DIRS=state``) the pods' directories are ``<state-dir>/pods`` itself, as before.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

SHM = Path("/dev/shm")
PREFIX = "wi-lab-pods-"
MIN_FREE_BYTES = 1 << 30  # Docker's default /dev/shm is 64 MiB: too small for a few hundred pods' files
ST_RDONLY, ST_NOEXEC = 1, 8  # statvfs f_flag bits
NEW_DIR_GRACE_SECONDS = 600  # a directory not yet locked (made a moment ago by another lab) is left alone this long


def _tmpfs_mounts() -> set[str]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return set()
    mounts = set()
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, fstype = before.split(), after.split()[:1]
        if len(fields) >= 5 and fstype == ["tmpfs"]:
            mounts.add(fields[4].replace("\\040", " "))
    return mounts


def usable_tmpfs(directory: Path | None = None) -> bool:
    """``directory`` (/dev/shm) is a tmpfs mount point this process can write and exec from, with at least 1 GiB free."""
    directory = SHM if directory is None else directory
    if str(directory) not in _tmpfs_mounts():
        return False
    try:
        info = os.statvfs(directory)
    except OSError:
        return False
    if info.f_flag & (ST_RDONLY | ST_NOEXEC):
        return False
    return os.access(directory, os.W_OK | os.X_OK) and info.f_bavail * info.f_frsize >= MIN_FREE_BYTES


def _lock(directory: Path) -> int | None:
    """An fd holding an exclusive lock on ``directory``, or None when another process holds it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def sweep_stale(parent: Path | None = None) -> list[Path]:
    """Remove this user's pod directories (under /dev/shm) whose lab is gone (no lock held on them); returns what
    was removed."""
    parent = SHM if parent is None else parent
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not entry.is_dir() or entry.is_symlink() or st.st_uid != os.geteuid():
            continue
        if entry.name.startswith(PREFIX + "new-") and time.time() - st.st_mtime < NEW_DIR_GRACE_SECONDS:
            continue
        fd = _lock(entry)
        if fd is None:
            continue  # a running lab's
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


class PodDirs:
    """The kubelet's pods directory for one lab: :attr:`path`, made by :meth:`open`, removed by :meth:`close`."""

    def __init__(self, state_dir: Path, use_tmpfs: bool | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.link = self.state_dir / "pods"
        if use_tmpfs is None:
            use_tmpfs = os.environ.get("LAB_POD_DIRS", "auto") != "state" and usable_tmpfs()
        self.use_tmpfs = use_tmpfs
        self.path = self.link
        self._lock_fd: int | None = None

    def open(self) -> Path:
        """A fresh, empty pods directory (mode 0700); what an earlier lab on this state dir left is removed."""
        if self.link.is_symlink():
            self.link.unlink()
        elif self.link.exists():  # left by an earlier lab on this state dir: nothing of it runs any more
            shutil.rmtree(self.link, ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.use_tmpfs and self._open_tmpfs():
            return self.path
        self.path = self.link
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        return self.path

    def _open_tmpfs(self) -> bool:
        sweep_stale()
        try:
            made = Path(tempfile.mkdtemp(prefix=PREFIX + "new-", dir=SHM))  # mode 0700
        except OSError:
            return False
        final = made.with_name(PREFIX + made.name[len(PREFIX + "new-"):])
        fd = _lock(made)
        try:
            if fd is None:
                raise OSError(f"{made} is locked by another process")
            os.rename(made, final)  # the lock stays with the directory: it is on the open file
            self.link.symlink_to(final, target_is_directory=True)
        except OSError:
            shutil.rmtree(final if final.exists() else made, ignore_errors=True)
            if fd is not None:
                os.close(fd)
            return False
        self._lock_fd = fd
        self.path = final
        return True

    def close(self) -> None:
        """Remove a tmpfs pods directory and its symlink (a directory under the state dir stays, as before)."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = None
        if self.link.is_symlink():
            self.link.unlink()
