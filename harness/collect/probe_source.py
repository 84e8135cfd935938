"""probe.mode configmap: the stdlib probe's own source files, shipped in a ConfigMap per run and namespace.

One ConfigMap per namespace (not per pod): every probe pod of a run in that namespace mounts the same
files, so a run writes one object per namespace, whatever the number of workloads there (fewer writes, less
of a ``count/configmaps`` quota). It is created before the namespace's probe pods and deleted after them.

The files are read from the installed ``probe`` package with :mod:`importlib.resources`, so a wheel install
ships exactly the probe the harness was released with. The package is flat: its ``*.py`` files are the
probe.
"""

from __future__ import annotations

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


def source_configmap_name(run_id: str) -> str:
    """``wi-probe-src-<run id>``, a DNS-1123 subdomain: the name every probe pod of the run refers to."""
    stem = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")[:200] or "run"
    return f"wi-probe-src-{stem}"


def source_configmap(
    namespace: str, run_id: str, extra_labels: dict[str, str], files: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ConfigMap holding the probe's source (``files``, default the installed probe's), labelled like the
    probe pods (``--sweep`` finds it)."""
    return {
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
        "data": files if files is not None else probe_source_files(),
    }


def source_volume(run_id: str, files: list[str]) -> dict[str, Any]:
    """The pod volume: each file at ``probe/<file>`` under the mount, so PYTHONPATH is the mount itself."""
    return {
        "name": PROBE_SOURCE_VOLUME,
        "configMap": {
            "name": source_configmap_name(run_id),
            "items": [{"key": name, "path": f"{PROBE_PACKAGE}/{name}"} for name in files],
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
