"""Container images as the lab's kubelet sees them: references parsed as containerd does, and the lab's
"registry" that decides what a pull finds:

- ``KubeCluster.runnable_images`` (name -> entrypoint argv: the in-repo probe image, ``lab/python``) and
  ``idle_images`` (run no process), registered by scenarios;
- stock public images, known without registration: Python images (``python:*`` on Docker Hub, Microsoft's
  ``mcr.microsoft.com/.../python`` images) run a Python of the host that has the standard library only, as the
  real images carry no azure-identity; ``busybox`` and ``alpine`` run the host's ``/bin/sh`` tools;
- anything else is not found (containerd's NotFound, ErrImagePull then ImagePullBackOff).

A stock image keeps its config's ENTRYPOINT/CMD split, so ``command``/``args`` combine as on a node: ``command``
replaces both, ``args`` alone replace CMD (kubernetes.io, "Define a Command and Arguments for a Container").
"""

from __future__ import annotations

import hashlib
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What the lab runs an image with: "lab" (the lab's own interpreter, the repository on PYTHONPATH), "python" (a
# stdlib-only interpreter of the host), "shell" (the host's /bin/sh and tools).
LAB_RUNTIME, PYTHON_RUNTIME, SHELL_RUNTIME = "lab", "python", "shell"


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's config the kubelet combines with the container's ``command`` and ``args``."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    runtime: str = LAB_RUNTIME

    def argv(self, command: list[str] | None, args: list[str]) -> list[str]:
        if command:
            return [*command, *args]
        return [*self.entrypoint, *(args or self.cmd)]


# Docker Hub's python images end with CMD ["python3"] (docker-library/python, Dockerfile-linux.template); busybox's
# config is Cmd ["sh"] (docker-library/busybox image-config.json); alpine's Dockerfile ends CMD ["/bin/sh"]
# (alpinelinux/docker-alpine). Microsoft's Python images on MCR: unverified, taken to be the same as Docker Hub's.
_STOCK_IMAGES: dict[tuple[str, str], ImageConfig] = {
    ("docker.io", "library/python"): ImageConfig(cmd=("python3",), runtime=PYTHON_RUNTIME),
    ("docker.io", "library/busybox"): ImageConfig(cmd=("sh",), runtime=SHELL_RUNTIME),
    ("docker.io", "library/alpine"): ImageConfig(cmd=("/bin/sh",), runtime=SHELL_RUNTIME),
}
_MCR = "mcr.microsoft.com"


def stock_image(ref: ImageRef) -> ImageConfig | None:
    """The config of a stock public image the lab can run, or None."""
    known = _STOCK_IMAGES.get((ref.domain, ref.path))
    if known is not None:
        return known
    if ref.domain == _MCR and ref.path.rsplit("/", 1)[-1] == "python":  # azurelinux/base/python, ...
        return ImageConfig(cmd=("python3",), runtime=PYTHON_RUNTIME)
    return None


@dataclass(frozen=True)
class ImageRef:
    raw: str
    name: str  # as written, without tag or digest
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def reference(self) -> str:
        """containerd's fully qualified reference: docker.io/library/busybox:latest."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"

    @property
    def image_id(self) -> str:
        return f"{self.repository}@sha256:{hashlib.sha256(self.reference.encode()).hexdigest()}"

    @property
    def size(self) -> int:
        return 5_000_000 + int(hashlib.sha256(self.repository.encode()).hexdigest()[:8], 16) % 200_000_000

    @property
    def pull_seconds(self) -> float:
        return 0.3 + int(hashlib.sha256(self.reference.encode()).hexdigest()[:4], 16) % 2000 / 1000


def parse_image(raw: str) -> ImageRef:
    name, _, digest = raw.partition("@")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return ImageRef(raw, name, domain, path, tag, digest or None)


def stdlib_python(directory: Path) -> Path:
    """The bin directory of an interpreter like a stock Python image's: the host's Python with its standard
    library only (a venv without system site-packages: no azure-identity, nothing of this repository), made once
    per lab under ``directory``."""
    bin_dir = directory / "bin"
    if not (bin_dir / "python3").exists():
        builder = venv.EnvBuilder(system_site_packages=False, symlinks=True, with_pip=False, clear=True)
        builder.create(directory)
    return bin_dir


def emulated_runner(kube: Any, ref: ImageRef) -> Any:
    """The coroutine function that plays an image the lab emulates (``KubeCluster.emulated_images``), or None."""
    for key, runner in list(getattr(kube, "emulated_images", {}).items()):
        if key == ref.name or parse_image(key).repository == ref.repository:
            return runner
    return None


def resolve_image(kube: Any, ref: ImageRef) -> tuple[str, ImageConfig | None]:
    """("run", its config) | ("idle", None) | ("emulated", None) | ("missing", None)."""
    if emulated_runner(kube, ref) is not None:
        return "emulated", None
    for key, argv in list(kube.runnable_images.items()):
        if key == ref.name or parse_image(key).repository == ref.repository:
            return "run", ImageConfig(entrypoint=tuple(argv))
    for key in list(kube.idle_images):
        if key == ref.name or parse_image(key).repository == ref.repository:
            return "idle", None
    stock = stock_image(ref)
    if stock is not None:
        return "run", stock
    return "missing", None


def not_found_message(ref: ImageRef) -> str:
    full = ref.reference
    return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{full}": '
            f'failed to resolve reference "{full}": {full}: not found')


def go_duration(seconds: float) -> str:
    """Go's time.Duration String() of a duration truncated to milliseconds."""
    ms = int(seconds * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return (f"{minutes}m" if minutes else "") + f"{secs}s"


def default_pull_policy(ref: ImageRef) -> str:
    return "Always" if not ref.digest and (ref.tag in (None, "latest")) else "IfNotPresent"
