"""Container images as the lab's kubelet sees them: references parsed as containerd does, and the lab's
"registry" (``KubeCluster.runnable_images`` and ``idle_images``) that decides what a pull finds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


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


def resolve_image(kube: Any, ref: ImageRef) -> tuple[str, list[str] | None]:
    """("run", entrypoint argv) | ("idle", None) | ("missing", None)."""
    for key, argv in list(kube.runnable_images.items()):
        if key == ref.name or parse_image(key).repository == ref.repository:
            return "run", list(argv)
    for key in list(kube.idle_images):
        if key == ref.name or parse_image(key).repository == ref.repository:
            return "idle", None
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
