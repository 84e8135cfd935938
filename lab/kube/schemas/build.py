"""Build the descriptor set the lab decodes Kubernetes protobuf bodies with (run by hand when upgrading).

    python lab/kube/schemas/build.py --api CHECKOUT_OF_kubernetes/api --apimachinery CHECKOUT_OF_kubernetes/apimachinery

compiles the ``generated.proto`` files of the stable API groups (and the apimachinery types they import) with
grpcio-tools' protoc into ``k8s-api.desc`` (a FileDescriptorSet, comments stripped), and lists in
``k8s-inline.json`` the fields that Go embeds inline (``json:""``: a Volume's VolumeSource, a Probe's
ProbeHandler, an EphemeralContainer's EphemeralContainerCommon), whose members JSON shows one level up. It also
records the two repositories' commits. Needs ``pip install grpcio-tools``; the lab itself needs only protobuf.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GROUPS = ("admissionregistration/v1", "apps/v1", "authentication/v1", "authorization/v1", "autoscaling/v1",
          "autoscaling/v2", "batch/v1", "coordination/v1", "core/v1", "discovery/v1", "events/v1",
          "networking/v1", "policy/v1", "rbac/v1", "scheduling/v1", "storage/v1")
STRUCT = re.compile(r"^type (\w+) struct \{")
INLINE = re.compile(r'^\t(\w+) +`json:"(?:,inline)?"[^`]*protobuf:"bytes,(\d+),')
# a scalar field Go omits when zero: not a pointer, json ",omitempty", a varint on the wire (ints and bools)
OMIT_ZERO = re.compile(r'^\t\w+ +[A-Za-z][\w.]* +`json:"\w+,omitempty"[^`]*protobuf:"varint,(\d+),')


def _commit(repo: Path, given: str | None) -> str:
    if given:
        return given
    result = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def struct_fields(package_dir: Path, proto_package: str, pattern: re.Pattern[str]) -> list[list[Any]]:
    """[message, field number] of each struct field of the package's Go types that ``pattern`` matches."""
    found = []
    for source in sorted(package_dir.glob("types*.go")):
        struct = None
        for line in source.read_text().splitlines():
            if match := STRUCT.match(line):
                struct = match.group(1)
            elif struct and (match := pattern.match(line)):
                found.append([f"{proto_package}.{struct}", int(match.groups()[-1])])
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", type=Path, required=True)
    parser.add_argument("--apimachinery", type=Path, required=True)
    parser.add_argument("--api-commit", help="the api tree's commit, when it is not a git checkout")
    parser.add_argument("--apimachinery-commit")
    args = parser.parse_args()
    from grpc_tools import protoc  # a build-time tool only

    with tempfile.TemporaryDirectory() as tree:
        root = Path(tree)
        shutil.copytree(args.api, root / "k8s.io" / "api", ignore=shutil.ignore_patterns(".git"))
        shutil.copytree(args.apimachinery, root / "k8s.io" / "apimachinery", ignore=shutil.ignore_patterns(".git"))
        protos = [str(root / f"k8s.io/api/{group}/generated.proto") for group in GROUPS]
        status = protoc.main(["protoc", f"-I{root}", "--include_imports",
                              f"--descriptor_set_out={HERE / 'k8s-api.desc'}", *protos])
        if status != 0:
            sys.exit(f"protoc failed ({status})")
        packages = [(root / "k8s.io" / "api" / group, "k8s.io.api." + group.replace("/", ".")) for group in GROUPS]
        packages.append((root / "k8s.io/apimachinery/pkg/apis/meta/v1", "k8s.io.apimachinery.pkg.apis.meta.v1"))
        inline = [entry for directory, package in packages for entry in struct_fields(directory, package, INLINE)]
        omit_zero = [entry for directory, package in packages
                     for entry in struct_fields(directory, package, OMIT_ZERO)]
    (HERE / "k8s-inline.json").write_text(json.dumps({
        "sources": {"kubernetes/api": _commit(args.api, args.api_commit),
                    "kubernetes/apimachinery": _commit(args.apimachinery, args.apimachinery_commit)},
        "inline": inline,
        "omit_zero": omit_zero,
    }) + "\n")


if __name__ == "__main__":
    main()
