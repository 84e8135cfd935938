"""probe.mode configmap: the stdlib probe's own source files, shipped in a ConfigMap per run and namespace.

One ConfigMap per namespace (not per pod): every probe pod of a run in that namespace mounts the same
files, so a run writes one object per namespace, whatever the number of workloads there (fewer writes, less
of a ``count/configmaps`` quota). It is created before the namespace's probe pods and deleted after them.

The files are read from the installed ``probe`` package with :mod:`importlib.resources`, so a wheel install
ships exactly the probe the harness was released with. The package is flat: its ``*.py`` files are the
probe.

Beside each source file goes its bytecode (``binaryData``, at ``probe/__pycache__/<module>.<cache tag>.pyc``):
the mount is read-only, so without it every pod compiles the probe again. The bytecode is of the harness's own
Python, named with its cache tag (``cpython-312``): an image with that version loads it, any other never looks
at it and compiles the source as before. It is hash-checked (PEP 552), so an interpreter that reads it first
checks it against the source beside it, whatever the mount's file times.
"""

from __future__ import annotations

import base64
import importlib.util
import marshal
import re
from importlib import resources
from typing import Any

from harness.names import MANAGED_BY, MANAGED_BY_LABEL, PROBE_CA_VOLUME, PROBE_SOURCE_VOLUME, RUN_ID_LABEL

PROBE_PACKAGE = "probe"
SOURCE_ROOT = "/opt/wi-probe"  # PYTHONPATH; the package lands in SOURCE_ROOT/probe
CA_DIRECTORY = "/etc/wi-probe/ca"
PROBE_COMMAND = ("python3", "-m", "probe")
MAX_CONFIGMAP_BYTES = 1024 * 1024  # the API server refuses a larger ConfigMap (MaxSecretSize)
_READ_ONLY_FILES = 0o444
BYTECODE_DIRECTORY = "__pycache__"
_CHECKED_HASH_PYC = 0b11  # PEP 552 flags: hash-based, check the source


def probe_source_files() -> dict[str, str]:
    """``{file name: text}`` of every module of the probe package, in name order."""
    package = resources.files(PROBE_PACKAGE)
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in package.iterdir()
        if entry.is_file() and entry.name.endswith(".py")
    }
    if "__main__.py" not in files:
        raise RuntimeError(f"the installed {PROBE_PACKAGE} package has no __main__.py: no python -m probe")
    total = sum(len(name) + len(text.encode()) for name, text in files.items())
    if total > MAX_CONFIGMAP_BYTES:
        raise RuntimeError(f"the probe's source ({total} bytes) does not fit in one ConfigMap")
    return dict(sorted(files.items()))


def probe_bytecode_files(files: dict[str, str]) -> dict[str, bytes]:
    """``{pyc file name: bytes}`` for each ``*.py`` of ``files``, compiled by this interpreter at optimization
    level 0 (a pod runs ``python3`` without -O); empty when this interpreter keeps no bytecode (no cache tag)."""
    out: dict[str, bytes] = {}
    for name, text in files.items():
        if not name.endswith(".py"):
            continue
        try:
            cached = importlib.util.cache_from_source(name, optimization="")
        except NotImplementedError:
            return {}
        source = text.encode()
        code = compile(source, f"{SOURCE_ROOT}/{PROBE_PACKAGE}/{name}", "exec", dont_inherit=True, optimize=0)
        header = importlib.util.MAGIC_NUMBER + _CHECKED_HASH_PYC.to_bytes(4, "little")
        out[cached.rsplit("/", 1)[-1]] = header + importlib.util.source_hash(source) + marshal.dumps(code)
    total = sum(len(name) + len(text.encode()) for name, text in files.items())
    total += sum(len(name) + len(base64.b64encode(data)) for name, data in out.items())
    return out if total <= MAX_CONFIGMAP_BYTES else {}  # too large with it: the source alone still runs


def source_keys(files: dict[str, str], bytecode: dict[str, bytes]) -> list[str]:
    """The ConfigMap's keys, as the pod's volume names them."""
    return [*files, *bytecode]


def source_configmap_name(run_id: str) -> str:
    """``wi-probe-src-<run id>``, a DNS-1123 subdomain: the name every probe pod of the run refers to."""
    stem = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")[:200] or "run"
    return f"wi-probe-src-{stem}"


def source_configmap(
    namespace: str, run_id: str, extra_labels: dict[str, str], files: dict[str, str] | None = None,
    bytecode: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """The ConfigMap holding the probe's source (``files``, default the installed probe's) and its bytecode
    (default: compiled from ``files``), labelled like the probe pods (``--sweep`` finds it)."""
    files = files if files is not None else probe_source_files()
    bytecode = bytecode if bytecode is not None else probe_bytecode_files(files)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": source_configmap_name(run_id),
            "namespace": namespace,
            "labels": {
                **extra_labels,
                "app.kubernetes.io/name": "wi-probe",
                MANAGED_BY_LABEL: MANAGED_BY,
                RUN_ID_LABEL: run_id,
            },
        },
        "immutable": True,
        "data": files,
    }
    if bytecode:
        body["binaryData"] = {name: base64.b64encode(data).decode() for name, data in bytecode.items()}
    return body


def source_volume(run_id: str, files: list[str]) -> dict[str, Any]:
    """The pod volume: each file at ``probe/<file>`` under the mount, so PYTHONPATH is the mount itself, and
    bytecode where importlib looks for it, ``probe/__pycache__/<file>``."""

    def path(name: str) -> str:
        return f"{PROBE_PACKAGE}/{BYTECODE_DIRECTORY}/{name}" if name.endswith(".pyc") else f"{PROBE_PACKAGE}/{name}"

    return {
        "name": PROBE_SOURCE_VOLUME,
        "configMap": {
            "name": source_configmap_name(run_id),
            "items": [{"key": name, "path": path(name)} for name in files],
            "defaultMode": _READ_ONLY_FILES,
        },
    }


def ca_volume(configmap: str) -> dict[str, Any]:
    """The CA bundle's ConfigMap, optional: when it is missing the probe starts anyway and names the CA file
    it cannot read (a probe config error in its report) instead of the pod waiting on a mount until the
    deadline."""
    source = {"name": configmap, "optional": True, "defaultMode": _READ_ONLY_FILES}
    return {"name": PROBE_CA_VOLUME, "configMap": source}


def ca_file_in_pod(key: str) -> str:
    return f"{CA_DIRECTORY}/{key}"
