"""A Helm release as Helm's Secret storage driver records it, for objects the lab puts in the API as if a
chart had installed them (the self-managed webhook chart).

The record follows helm.sh/helm's storage: one Secret per revision named
``sh.helm.release.v1.<name>.v<revision>`` in the release's namespace, type ``helm.sh/release.v1``, labelled
``name``, ``owner=helm``, ``status``, ``version`` and ``modifiedAt`` (as Helm 4's driver writes them); its
``release`` key holds the release's JSON, gzipped and base64-encoded (so the Secret's data is base64 twice).
With it, ``helm list``, ``status``, ``get values|manifest`` and ``history`` find the release as on a cluster
where the chart was installed."""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import UTC, datetime
from typing import Any

import yaml

Obj = dict[str, Any]

# When the lab's process started: its chart "was installed" then, and the record stays the same across syncs.
INSTALLED_AT = time.time()


def _helm_time(epoch: float) -> str:
    """Go's time.Time in JSON (RFC 3339 with nanoseconds, trailing zeros dropped)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def manifest(chart: str, objects: list[Obj]) -> str:
    """The rendered manifest Helm keeps: each object under a ``# Source:`` line naming its template."""
    parts = []
    for obj in objects:
        template = f"{obj['metadata']['name']}-{obj['kind'].lower()}.yaml"
        parts.append(f"---\n# Source: {chart}/templates/{template}\n"
                     + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    return "".join(parts)


def release_record(*, name: str, namespace: str, chart: Obj, values: Obj, objects: list[Obj],
                   revision: int = 1, deployed_at: float = INSTALLED_AT) -> Obj:
    deployed = _helm_time(deployed_at)
    return {
        "name": name,
        "info": {"first_deployed": deployed, "last_deployed": deployed, "status": "deployed",
                 "description": "Install complete" if revision == 1 else "Upgrade complete"},
        "chart": {"metadata": chart, "lock": None, "templates": [], "values": {}, "schema": None,
                  "files": []},
        "config": values,
        "manifest": manifest(chart["name"], objects),
        "version": revision,
        "namespace": namespace,
    }


def release_secret(record: Obj, deployed_at: float = INSTALLED_AT) -> Obj:
    encoded = base64.b64encode(gzip.compress(json.dumps(record, separators=(",", ":")).encode(), mtime=0))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"sh.helm.release.v1.{record['name']}.v{record['version']}",
            "namespace": record["namespace"],
            "labels": {"name": record["name"], "owner": "helm", "status": record["info"]["status"],
                       "version": str(record["version"]), "modifiedAt": str(int(deployed_at))},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(encoded).decode()},
    }


def decode_release(secret: Obj) -> Obj:
    """The release JSON of a Secret Helm (or :func:`release_secret`) wrote."""
    return json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret["data"]["release"]))))
