"""Pod volume contents and the kubelet's atomic writer.

``configMap``, ``secret``, ``downwardAPI`` and ``projected`` volumes are written the way the kubelet's
AtomicWriter writes them (pkg/volume/util/atomic_writer.go)::

    <volume>/..2025_06_17_17_56_10.123456789/<files>   the payload, in a timestamped directory (0755)
    <volume>/..data -> ..2025_06_17_17_56_10.123456789  swapped atomically (symlink + rename) on update
    <volume>/<top-level name> -> ..data/<top-level name>

so a reader never sees a half-written token and a bind mount of ``<volume>`` shows every update.

File modes: ``defaultMode`` (420 = 0644 unless the spec says otherwise) or the item's ``mode``. As in
pkg/volume/projected: when the pod has an ``fsGroup`` or all its containers share one ``runAsUser``, a
projected service account token is written 0600 (owned by that user); an ``fsGroup`` then makes the files
group-owned by it with group read added (SetVolumeOwnership), hence the well-known 0640.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.kube import podenv

Obj = dict[str, Any]
DEFAULT_MODE = 0o644  # the API server defaults defaultMode to 420


class VolumeError(Exception):
    """FailedMount: ``MountVolume.SetUp failed for volume "<name>" : <message>``."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume
        self.message = message


@dataclass
class FileSpec:
    data: bytes
    mode: int
    uid: int | None = None
    gid: int | None = None


@dataclass
class TokenState:
    """One projected service account token: what the kubelet's token manager caches."""

    token: str
    issued_at: float
    expires_at: float

    @property
    def refresh_at(self) -> float:
        """Refresh when older than 80% of its lifetime or older than 24 h (kubelet token manager)."""
        ttl = self.expires_at - self.issued_at
        return min(self.issued_at + 0.8 * ttl, self.issued_at + 24 * 3600)

    def needs_refresh(self, now: float) -> bool:
        return now >= self.refresh_at


Payload = dict[str, FileSpec]


# ---------------------------------------------------------------- security context helpers


def _effective(pod: Obj, container: Obj, key: str) -> Any:
    value = (container.get("securityContext") or {}).get(key)
    if value is None:
        value = ((pod.get("spec") or {}).get("securityContext") or {}).get(key)
    return value


def all_containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]


def fs_user(pod: Obj) -> int | None:
    """The runAsUser every container shares (volumeutil.FsUserFrom), else None."""
    users = {_effective(pod, container, "runAsUser") for container in all_containers(pod)}
    if len(users) != 1:
        return None
    user = users.pop()
    return user if isinstance(user, int) else None


def fs_group(pod: Obj) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return value if isinstance(value, int) else None


# ---------------------------------------------------------------- payloads


def _items(volume_name: str, data: dict[str, bytes], items: list[Obj] | None, default_mode: int,
           kind_word: str, optional: bool) -> Payload:
    payload: Payload = {}
    if not items:
        for key, value in data.items():
            payload[key] = FileSpec(value, default_mode)
        return payload
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise VolumeError(volume_name, f"{kind_word} references non-existent config key: {key}")
        mode = item.get("mode")
        payload[item.get("path") or key] = FileSpec(data[key], mode if isinstance(mode, int) else default_mode)
    return payload


def _object_data(obj: Obj, kind: str) -> dict[str, bytes]:
    if kind == "secrets":
        return {key: base64.b64decode(value) for key, value in (obj.get("data") or {}).items()}
    data = {key: str(value).encode() for key, value in (obj.get("data") or {}).items()}
    for key, value in (obj.get("binaryData") or {}).items():
        data[key] = base64.b64decode(value)
    return data


class VolumeBuilder:
    """Builds one pod's volume payloads from the store (and tokens through ``issue_token``)."""

    def __init__(self, pod: Obj, lookup: podenv.Lookup, issue_token, default_audiences: list[str]) -> None:
        self.pod = pod
        self.lookup = lookup
        self.issue_token = issue_token  # (service_account, audiences, expiration_seconds) -> (jwt, exp)
        self.default_audiences = default_audiences
        self.tokens: dict[tuple[str, int], TokenState] = {}

    @property
    def namespace(self) -> str:
        return (self.pod.get("metadata") or {}).get("namespace", "default")

    def _object(self, volume: str, kind: str, name: str, optional: bool) -> Obj | None:
        obj = self.lookup(kind, self.namespace, name)
        if obj is None and not optional:
            raise VolumeError(volume, f'{podenv._KIND_WORD[kind]} "{name}" not found')
        return obj

    def _config_source(self, volume: str, kind: str, source: Obj, default_mode: int, name_key: str) -> Payload:
        name = source.get(name_key, "")
        optional = bool(source.get("optional"))
        obj = self._object(volume, kind, name, optional)
        if obj is None:
            return {}
        word = "configmap" if kind == "configmaps" else "secret"
        mode = source.get("defaultMode", default_mode)
        return _items(volume, _object_data(obj, kind), source.get("items"), mode, word, optional)

    def _downward(self, volume: str, items: list[Obj], default_mode: int) -> Payload:
        payload: Payload = {}
        for item in items or []:
            try:
                if "fieldRef" in item:
                    value = podenv.field_ref_value(self.pod, item["fieldRef"].get("fieldPath", ""))
                elif "resourceFieldRef" in item:
                    ref = item["resourceFieldRef"]
                    container = next((c for c in (self.pod.get("spec") or {}).get("containers") or []
                                      if c.get("name") == ref.get("containerName")), {})
                    value = podenv.resource_field_value(self.pod, container, ref.get("resource", ""),
                                                        ref.get("divisor"))
                else:
                    continue
            except podenv.ConfigError as exc:
                raise VolumeError(volume, str(exc)) from None
            mode = item.get("mode")
            payload[item.get("path", "")] = FileSpec(value.encode(), mode if isinstance(mode, int) else default_mode)
        return payload

    def _token(self, volume: str, index: int, source: Obj, default_mode: int, now: float | None) -> Payload:
        key = (volume, index)
        state = self.tokens.get(key)
        if state is None or state.needs_refresh(time.time() if now is None else now):
            spec = self.pod.get("spec") or {}
            sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            service_account = self.lookup("serviceaccounts", self.namespace, sa_name)
            if service_account is None:
                raise VolumeError(volume, f'failed to fetch token: serviceaccounts "{sa_name}" not found')
            audience = source.get("audience")
            audiences = [audience] if audience else list(self.default_audiences)
            token, exp = self.issue_token(service_account, audiences, source.get("expirationSeconds", 3600))
            state = TokenState(token, time.time(), float(exp))
            self.tokens[key] = state
        owner = fs_user(self.pod)
        mode = default_mode
        if owner is not None or fs_group(self.pod) is not None:
            mode = 0o600
        return {source.get("path", "token"): FileSpec(state.token.encode(), mode, uid=owner)}

    def payload(self, volume: Obj, now: float | None = None) -> Payload:
        """The files of an atomic-writer volume (raises VolumeError like MountVolume.SetUp)."""
        name = volume.get("name", "")
        if "configMap" in volume:
            source = volume["configMap"]
            payload = self._config_source(name, "configmaps", source, source.get("defaultMode", DEFAULT_MODE), "name")
        elif "secret" in volume:
            source = volume["secret"]
            payload = self._config_source(name, "secrets", source, source.get("defaultMode", DEFAULT_MODE),
                                          "secretName")
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            payload = self._downward(name, source.get("items") or [], source.get("defaultMode", DEFAULT_MODE))
        elif "projected" in volume:
            projected = volume["projected"]
            default_mode = projected.get("defaultMode", DEFAULT_MODE)
            payload = {}
            for index, source in enumerate(projected.get("sources") or []):
                if "serviceAccountToken" in source:
                    payload.update(self._token(name, index, source["serviceAccountToken"], default_mode, now))
                elif "configMap" in source:
                    src = {**source["configMap"], "defaultMode": default_mode}
                    payload.update(self._config_source(name, "configmaps", src, default_mode, "name"))
                elif "secret" in source:
                    src = {**source["secret"], "defaultMode": default_mode}
                    payload.update(self._config_source(name, "secrets", src, default_mode, "name"))
                elif "downwardAPI" in source:
                    payload.update(self._downward(name, source["downwardAPI"].get("items") or [], default_mode))
                elif "clusterTrustBundle" in source:
                    raise VolumeError(name, "lab: clusterTrustBundle projections are not supported")
        else:
            raise VolumeError(name, "lab: unsupported volume type")
        group = fs_group(self.pod)
        if group is not None:
            for spec in payload.values():
                spec.gid = group
                spec.mode |= 0o440
        return payload

    def next_refresh(self) -> float | None:
        return min((state.refresh_at for state in self.tokens.values()), default=None)


def is_atomic(volume: Obj) -> bool:
    return any(kind in volume for kind in ("configMap", "secret", "downwardAPI", "projected"))


# ---------------------------------------------------------------- atomic writer
#
# Defence in depth: the API server refuses item paths and keys that leave the volume, but objects can reach
# the store by other ways (scenarios, older objects) and containers can write into some volumes. So, as the
# kubelet's AtomicWriter does, every payload path is validated first (validatePath, same texts), and the
# writer never follows anything it did not create itself: a ``..data`` link, a timestamped directory or a
# file that is a symlink (planted by a container) is treated as absent, never read through or deleted.

MAX_FILE_NAME_LENGTH = 255
MAX_PATH_LENGTH = 4096
DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"


class PayloadError(ValueError):
    """A payload path the atomic writer refuses (validatePath's message)."""


def payload_path_problem(target: str) -> str | None:
    """pkg/volume/util/atomic_writer.go validatePath."""
    if target == "":
        return 'invalid path: must not be empty: ""'
    if target.startswith("/"):
        return f"invalid path: must be relative path: {target}"
    if len(target) > MAX_PATH_LENGTH:
        return f"invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
    items = target.split("/")
    for item in items:
        if item == "..":
            return f"invalid path: must not contain '..': {target}"
        if len(item) > MAX_FILE_NAME_LENGTH:
            return f"invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
    if items[0].startswith("..") and len(items[0]) > 2:
        return f"invalid path: must not start with '..': {target}"
    return None


def clean_payload(payload: Payload) -> Payload:
    """validatePayload: every path valid, then cleaned (``a//b/`` -> ``a/b``); raises PayloadError."""
    cleaned: Payload = {}
    for rel, spec in payload.items():
        problem = payload_path_problem(rel)
        if problem:
            raise PayloadError(problem)
        cleaned[posixpath.normpath(rel)] = spec
    return cleaned


def _is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _data_dir_name(target: Path) -> str | None:
    """The timestamped directory ``..data`` names, if it is one this writer could have made: a single name
    starting with ``..`` that is a real directory (not a symlink) directly in ``target``."""
    link = target / DATA_DIR
    if not link.is_symlink():
        return None
    name = os.readlink(link)
    if "/" in name or not name.startswith("..") or name in ("..", DATA_DIR, NEW_DATA_DIR):
        return None
    candidate = target / name
    if candidate.is_symlink() or not candidate.is_dir():
        return None
    return name


def _current(target: Path) -> Payload | None:
    name = _data_dir_name(target)
    if name is None:
        return None
    root = target / name
    found: Payload = {}
    for dirpath, _, filenames in os.walk(root):  # os.walk does not descend into symlinked directories
        for filename in filenames:
            path = Path(dirpath) / filename
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                return None  # a symlink (or worse) this writer did not make: rewrite the whole payload
            with os.fdopen(fd, "rb") as handle:
                st = os.fstat(handle.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                found[str(path.relative_to(root))] = FileSpec(handle.read(), st.st_mode & 0o7777, st.st_uid,
                                                              st.st_gid)
    return found


def _same(old: Payload | None, new: Payload) -> bool:
    if old is None or set(old) != set(new):
        return False
    for path, spec in new.items():
        have = old[path]
        if have.data != spec.data or have.mode != spec.mode:
            return False
        if (spec.uid is not None and have.uid != spec.uid) or (spec.gid is not None and have.gid != spec.gid):
            return False
    return True


def _write_file(ts_dir: Path, rel: str, spec: FileSpec, made: dict[Path, str]) -> None:
    """One payload file under the fresh timestamped directory, refusing to go through any symlink. ``made``: the
    directories of this write already checked (and their real paths), so a payload of many files in one directory
    (the probe's source and bytecode) checks it once."""
    path = ts_dir / rel
    for parent in reversed(path.relative_to(ts_dir).parents):
        if str(parent) == ".":
            continue
        directory = ts_dir / parent
        if directory in made:
            continue
        if directory.is_symlink():
            raise PayloadError(f"invalid path: {rel}: {parent} is a symbolic link")
        if not directory.is_dir():
            directory.mkdir()
        os.chmod(directory, 0o755)
        made[directory] = os.path.realpath(directory)
    if not _is_inside(made[path.parent], made[ts_dir]):
        raise PayloadError(f"invalid path: {rel}: outside the volume")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(spec.data)
        os.fchmod(handle.fileno(), spec.mode & 0o777)  # never setuid/setgid/sticky, whatever the spec says
        if (spec.uid is not None or spec.gid is not None) and os.geteuid() == 0:
            os.fchown(handle.fileno(), -1 if spec.uid is None else spec.uid, -1 if spec.gid is None else spec.gid)


def write_atomic(target: Path, payload: Payload) -> bool:
    """Write ``payload`` into ``target`` AtomicWriter-style; False when nothing changed. Raises PayloadError
    for a path the kubelet refuses and OSError when the volume directory is not in a state it can write."""
    payload = clean_payload(payload)
    target.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        raise PayloadError(f"invalid volume directory: {target.name} is a symbolic link")
    old_ts = _data_dir_name(target)
    if _same(_current(target), payload):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    ts_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    os.chmod(ts_dir, 0o755)
    try:
        made = {ts_dir: os.path.realpath(ts_dir)}
        for rel, spec in payload.items():
            _write_file(ts_dir, rel, spec, made)
        data_link = target / DATA_DIR
        tmp_link = target / NEW_DATA_DIR
        if tmp_link.is_symlink():
            tmp_link.unlink()
        os.symlink(ts_dir.name, tmp_link)
        os.rename(tmp_link, data_link)
    except BaseException:
        shutil.rmtree(ts_dir, ignore_errors=True)
        raise
    tops = {Path(rel).parts[0] for rel in payload}
    for top in tops:
        link = target / top
        if not os.path.lexists(link):  # a name a container made real is left alone, as createUserVisibleFiles does
            os.symlink(f"{DATA_DIR}/{top}", link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in tops and os.readlink(entry).startswith(f"{DATA_DIR}/"):
            entry.unlink()
    if old_ts and old_ts != ts_dir.name:
        shutil.rmtree(target / old_ts, ignore_errors=True)
    return True
