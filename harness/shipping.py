"""``python -m harness manifests render --config harness.yaml --out DIR``: the manifests for one harness.yaml,
for ``kubectl apply -f DIR`` (the Job) and by hand (one probe pod per workload).

DIR gets:

* ``00-namespace.yaml``: the harness's namespace, Pod Security "restricted" enforced;
* ``01-rbac.yaml``: ``manifests/harness-rbac.yaml.j2`` for the harness's ServiceAccount, the workloads'
  namespaces (or ``--namespace``) and the webhook's namespace;
* ``02-job.yaml``: ``manifests/harness-job.yaml.j2``: the ServiceAccount annotated with ``harness.client_id``
  (the Job reads ARM and Graph as that identity through Workload ID, never as the node), the ConfigMap with
  the harness.yaml the Job runs (in-cluster: no kubeconfig, no client secret; CA bundles it names ride along
  in the ConfigMap) and the Job (wi-harness with ``--sweep --print-run-json``);
* ``probes/<namespace>.<service account>.yaml`` per workload: the probe pod (and in probe.mode configmap the
  ConfigMap with the probe's source), run id ``by-hand``; ``kubectl apply -f`` it, then ``kubectl logs``
  prints the wi-probe/v1 document. ``--sweep`` removes them as leftovers of an earlier run.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.collect.probe_pods import ProbeRequest, build_probe_pod, probe_config_for
from harness.collect.probe_source import probe_source_files, source_configmap
from harness.config import HarnessConfig, load_config, parse_config
from harness.input_files import MAX_CONFIG_BYTES, InputFileError, load_yaml, read_text, write_text_replacing
from harness.manifests import render_text
from harness.values import image_reference_problem, namespace_problem, printable

CONFIG_DIR = "/etc/wi-harness"
JOB_NAME = "wi-harness"
BY_HAND_RUN_ID = "by-hand"
POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


class RenderError(Exception):
    """A reason the manifests cannot be rendered for this config, in one line."""


@dataclass(frozen=True)
class Rendered:
    path: Path
    kinds: list[str]


def job_config(raw: dict[str, Any], config: HarnessConfig) -> dict[str, str]:
    """The ConfigMap's files: the harness.yaml as the Job reads it and the CA bundles it names.

    In the cluster the harness uses its ServiceAccount's token (no kubeconfig or context) and its own identity
    through Workload ID (``azure.credential`` is dropped: the Job holds no secret); a CA bundle named by path
    is copied in, under the key the Job's harness.yaml names (relative to the ConfigMap's mount)."""
    data = copy.deepcopy(raw)
    files: dict[str, str] = {}
    cluster = data.get("cluster")
    if isinstance(cluster, dict):
        cluster.pop("kubeconfig", None)
        cluster.pop("context", None)
        if config.cluster.ca_file is not None:
            files["cluster-ca.crt"] = _read(config.cluster.ca_file, "cluster.ca_file")
            cluster["ca_file"] = "cluster-ca.crt"
        if not cluster:
            data.pop("cluster")
    azure = data.get("azure")
    if isinstance(azure, dict) and config.azure is not None:
        azure.pop("credential", None)
        if config.azure.ca_file is not None:
            files["azure-ca.crt"] = _read(config.azure.ca_file, "azure.ca_file")
            azure["ca_file"] = "azure-ca.crt"
    return {"harness.yaml": yaml.safe_dump(data, sort_keys=False), **files}


def _read(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"{field}: cannot read {path}: {exc}") from None


def probe_file_name(namespace: str, service_account: str) -> str:
    return f"{namespace}.{service_account}.yaml"


def by_hand_pod_name(service_account: str) -> str:
    """``wi-probe-<sa>``: one per workload, a DNS-1123 label."""
    stem = re.sub(r"[^a-z0-9-]", "-", service_account.lower()).strip("-")[:50].strip("-") or "sa"
    return f"wi-probe-{stem}"


def probe_documents(config: HarnessConfig) -> dict[str, list[dict[str, Any]]]:
    """Per workload file name: the source ConfigMap (probe.mode configmap) and the probe pod."""
    settings = config.probe
    files = probe_source_files() if settings.mode == "configmap" else {}
    out: dict[str, list[dict[str, Any]]] = {}
    for workload in config.workloads:
        request = ProbeRequest(
            workload.id, workload.namespace, workload.service_account,
            probe_config_for(workload, settings, config.cloud, cloud_configured=config.azure is not None),
        )
        pod = build_probe_pod(
            request, BY_HAND_RUN_ID, settings, name=by_hand_pod_name(workload.service_account),
            source_files=list(files) or None,
        )
        docs = [source_configmap(workload.namespace, BY_HAND_RUN_ID, settings.labels, files)] if files else []
        out[probe_file_name(workload.namespace, workload.service_account)] = [*docs, pod]
    return out


def load_for_render(path: Path) -> tuple[HarnessConfig, dict[str, Any]]:
    """harness.yaml validated as the Job will read it (without ``azure.credential``: the Job holds no secret, so
    a client_secret_env unset here is no error), and as plain data; :class:`ConfigError` as for a run."""
    try:
        data = load_yaml(read_text(path, MAX_CONFIG_BYTES))
    except (InputFileError, yaml.YAMLError, RecursionError):
        load_config(path)  # raises the run's own one-line ConfigError for this file
        raise
    if isinstance(data, dict) and isinstance(data.get("azure"), dict):
        data = {**data, "azure": {k: v for k, v in data["azure"].items() if k != "credential"}}
    config = parse_config(data, str(path), base_dir=path.parent)
    return config, data


def render_bundle(
    config: HarnessConfig,
    raw: dict[str, Any],
    out_dir: Path,
    image: str | None = None,
    namespaces: list[str] | None = None,
    pytest_args: list[str] | None = None,
    probes_only: bool = False,
) -> list[Rendered]:
    """Write the manifests for ``config`` into ``out_dir`` (``probes_only``: its probes/ alone, which need no
    harness: section); raise :class:`RenderError` with one line."""
    own = config.harness
    if probes_only:
        probes = probe_documents(config)
        if not probes:
            raise RenderError("--probes-only: harness.yaml lists no workloads, so there is no probe pod to write: "
                              "list them under workloads:")
        return _write(out_dir, {f"probes/{name}": yaml.safe_dump_all(docs, sort_keys=False)
                                for name, docs in probes.items()})
    if own.client_id is None:
        raise RenderError(
            "harness.client_id: required: the client id of the harness's own identity, annotated on its "
            "ServiceAccount for Workload ID (it needs a federated credential for "
            f"system:serviceaccount:{own.namespace}:{own.service_account}); for probe pods alone: --probes-only"
        )
    image = image or own.image
    if not image:
        raise RenderError(
            "harness.image (or --image): required: the image built from the Dockerfile's harness target; for "
            "probe pods alone: --probes-only"
        )
    problem = image_reference_problem(image)
    if problem is not None:
        raise RenderError(f"--image: {problem} (got {printable(image, 80)!r})")
    for namespace in namespaces or []:
        problem = namespace_problem(namespace)
        if problem is not None:
            raise RenderError(f"--namespace: {problem} (got {printable(namespace, 80)!r})")
    probe_namespaces = sorted({w.namespace for w in config.workloads} | set(namespaces or []))
    if not probe_namespaces:
        raise RenderError(
            "no namespace to grant probe pods in: harness.yaml lists no workloads; name the namespaces the "
            "run covers with --namespace NS (repeatable)"
        )
    job_args = list(pytest_args or [])
    if not config.workloads:
        # the whole cluster: the Job verifies every Workload ID ServiceAccount it finds, and is granted probe pods
        # only in these namespaces; without --namespace it verified the rest too, each PROBE_FORBIDDEN
        job_args += [arg for namespace in probe_namespaces for arg in ("--namespace", namespace)]
    documents: dict[str, str] = {}
    documents["00-namespace.yaml"] = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": own.namespace, "labels": {"app.kubernetes.io/name": "wi-harness",
                                                        **POD_SECURITY_LABELS}}},
        sort_keys=False,
    )
    documents["01-rbac.yaml"] = render_text(
        "harness-rbac.yaml.j2",
        subject_kind="ServiceAccount",
        subject_name=own.service_account,
        subject_namespace=own.namespace,
        namespaces=probe_namespaces,
        webhook_namespace=own.webhook_namespace,
    )
    documents["02-job.yaml"] = render_text(
        "harness-job.yaml.j2",
        namespace=own.namespace,
        service_account=own.service_account,
        client_id=own.client_id,
        tenant_id=config.azure.tenant_id if config.azure else None,
        image=image,
        config_files=job_config(raw, config),
        run_name=JOB_NAME,
        report_claim=own.report_claim,
        pytest_args=job_args,
    )
    for name, docs in probe_documents(config).items():
        documents[f"probes/{name}"] = yaml.safe_dump_all(docs, sort_keys=False)
    return _write(out_dir, documents)


def _write(out_dir: Path, documents: dict[str, str]) -> list[Rendered]:
    """Each file replaced whole (a failed write leaves the earlier one as it was, never a manifest cut short that
    ``kubectl apply`` would take in part)."""
    written: list[Rendered] = []
    if out_dir.exists() and not out_dir.is_dir():
        raise RenderError(f"{out_dir}: is a file, not a directory")
    try:
        (out_dir / "probes").mkdir(parents=True, exist_ok=True)
        for relative, text in documents.items():
            path = out_dir / relative
            write_text_replacing(path, text)
            kinds = [d["kind"] for d in yaml.safe_load_all(text) if d]
            written.append(Rendered(path, kinds))
    except OSError as exc:
        done = f" ({len(written)} of {len(documents)} files written)" if written else ""
        raise RenderError(f"{out_dir}: cannot write there{done}: {exc.strerror or exc}") from None
    return written

