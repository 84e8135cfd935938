"""The kubelet's pods directory (lab.kube.poddirs): on a tmpfs, locked while in use, removed at stop, and what a
killed lab left is swept by the next one; never another running lab's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.kube import poddirs
from lab.kube.poddirs import PREFIX, PodDirs, sweep_stale


@pytest.fixture()
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /dev/shm, so the test never touches the machine's."""
    directory = tmp_path / "shm"
    directory.mkdir()
    monkeypatch.setattr(poddirs, "SHM", directory)
    return directory


def test_open_makes_a_locked_private_directory_linked_from_the_state_dir(tmp_path: Path, shm: Path) -> None:
    dirs = PodDirs(tmp_path / "state", use_tmpfs=True)
    path = dirs.open()
    assert path.parent == shm and path.name.startswith(PREFIX) and not path.name.startswith(PREFIX + "new-")
    assert (path.stat().st_mode & 0o777) == 0o700
    assert (tmp_path / "state" / "pods").resolve() == path.resolve()
    assert sweep_stale(shm) == []  # locked: a running lab's
    (path / "ns" / "pod").mkdir(parents=True)
    dirs.close()
    assert not path.exists() and not (tmp_path / "state" / "pods").is_symlink()
    assert list(shm.iterdir()) == []


def test_a_killed_labs_directory_is_swept_by_the_next_lab(tmp_path: Path, shm: Path) -> None:
    """A process that opened a pods directory is SIGKILLed: the kernel drops its lock, the next open removes it."""
    code = ("import sys, time; from pathlib import Path; from lab.kube import poddirs; "
            f"poddirs.SHM = Path({str(shm)!r}); d = poddirs.PodDirs(Path(sys.argv[1]), use_tmpfs=True); "
            "p = d.open(); (p / 'ns').mkdir(); print(p, flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "killed")], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        left = Path(holder.stdout.readline().strip())  # type: ignore[union-attr]
        assert left.is_dir()
        assert sweep_stale(shm) == [] and left.is_dir()  # its lab is alive
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    dirs = PodDirs(tmp_path / "next", use_tmpfs=True)
    path = dirs.open()
    try:
        assert not left.exists()
        assert [p for p in shm.iterdir()] == [path]
    finally:
        dirs.close()


def test_a_directory_being_made_is_left_alone(shm: Path) -> None:
    young = shm / f"{PREFIX}new-abc"
    young.mkdir()
    other_prefix = shm / "someone-else"
    other_prefix.mkdir()
    assert sweep_stale(shm) == []
    old = 10_000
    os.utime(young, (young.stat().st_atime - old, young.stat().st_mtime - old))
    assert sweep_stale(shm) == [young] and other_prefix.is_dir()


def test_without_a_tmpfs_the_pods_live_under_the_state_dir(tmp_path: Path, shm: Path) -> None:
    old = tmp_path / "state" / "pods" / "ns" / "pod"
    old.mkdir(parents=True)  # an earlier lab's, on the same state dir
    dirs = PodDirs(tmp_path / "state", use_tmpfs=False)
    path = dirs.open()
    assert path == tmp_path / "state" / "pods" and path.is_dir() and not path.is_symlink()
    assert list(path.iterdir()) == [] and (path.stat().st_mode & 0o777) == 0o700
    dirs.close()
    assert path.is_dir() and list(shm.iterdir()) == []


def test_lab_pod_dirs_state_turns_the_tmpfs_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_POD_DIRS", "state")
    assert PodDirs(tmp_path).use_tmpfs is False


def test_usable_tmpfs_needs_a_tmpfs_mount_point(tmp_path: Path) -> None:
    assert poddirs.usable_tmpfs(tmp_path) is False  # a directory, not a tmpfs mount point
