"""One harness run as the pytest plugin sees it: options, config, run id, where things go, what is chosen."""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.collect.inventory import (
    labelled_pod_summaries,
    list_labelled_pods,
    list_service_accounts,
    service_accounts_run_by,
)
from harness.collect.kube_api import KubeError, kubeconfig_bearer_token
from harness.config import HarnessConfig, WorkloadConfig
from harness.lab_bootstrap import EmbeddedLab
from harness.names import USE_LABEL
from harness.redact import Redactor
from harness.values import namespace_problem, object_name_problem, printable, split_reference

# What azure-identity's EnvironmentCredential (inside DefaultAzureCredential) may read.
AMBIENT_SECRET_VARIABLES = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD")


class BadReference(ValueError):
    pass


def parse_ref(value: str, option: str, known: Iterable[tuple[str, str]] = ()) -> tuple[str, str]:
    """``NS/NAME`` -> (ns, name), by the same rules as harness.yaml's workloads; a one-line error naming the
    option otherwise (the value shown escaped and shortened). ``known``: harness.yaml's workloads, for a name
    given without its namespace."""
    try:
        return split_reference(value)
    except ValueError as exc:
        meant = (_meant_reference(value, option) or _meant_entry(value, option, known)
                 or _meant_namespaced(value, option))
        said = str(exc) if option != "--pod" else str(exc).replace(f"e.g. {EXAMPLE_WORKLOAD}", f"e.g. {EXAMPLE_POD}")
        raise BadReference(f"{option} '{printable(value, 80)}': {said}{meant}") from None


EXAMPLE_WORKLOAD = "finance/backend-sa"
EXAMPLE_POD = "finance/backend-7d9f8b6c5-x2k9p"  # --pod takes a pod's name, as a pod listing shows it


def _meant_namespaced(value: str, option: str) -> str:
    """A name alone that harness.yaml does not know (a pod's name copied from a pod listing): the namespace goes
    before it."""
    if "/" in value or object_name_problem(value) is not None:
        return ""
    return f"; name its namespace too: {option} NAMESPACE/{value}"


def _meant_entry(value: str, option: str, known: Iterable[tuple[str, str]]) -> str:
    """A ServiceAccount's name alone (--workload backend-sa): harness.yaml's entries of that name."""
    entries = [f"{option} {namespace}/{name}" for namespace, name in known if name == value]
    return f"; did you mean {' or '.join(entries[:3])} (harness.yaml's workloads)?" if entries else ""


def _meant_reference(value: str, option: str) -> str:
    """The form a person meant, when it is plain: a federated credential's subject or NS:NAME copied in, or
    several references in one value."""
    trimmed = value.strip().strip("/")  # ' finance/backend-sa', 'finance/backend-sa/' (a shell completion's slash)
    if trimmed != value:
        try:
            namespace, name = split_reference(trimmed)
        except ValueError:
            pass
        else:
            return f"; did you mean {option} {namespace}/{name}?"
    # a ServiceAccount's username (system:serviceaccount:NS:NAME, or NS:NAME), or a row of a listing pasted whole
    # ('finance   backend-sa', as get -A prints it)
    for parts in (value.removeprefix("system:serviceaccount:").split(":"), value.split()):
        if len(parts) == 2 and "/" not in value:
            try:
                namespace, name = split_reference("/".join(parts))
            except ValueError:
                return ""
            return f"; did you mean {option} {namespace}/{name}?"
    if "," in value:
        return f"; name one per {option}, repeated: " + " ".join(
            f"{option} {printable(part.strip(), 80)}" for part in value.split(",")[:3] if part.strip())
    if value != value.lower():  # 'Finance/Backend-SA': Kubernetes names are lower-case
        try:
            namespace, name = split_reference(value.lower())
        except ValueError:
            return ""
        return f"; did you mean {option} {namespace}/{name}?"
    return ""


def parse_namespace(value: str, option: str) -> str:
    """A namespace as harness.yaml's workloads take it; a one-line error naming the option otherwise."""
    problem = namespace_problem(value)
    if problem is not None:
        raise BadReference(f"{option} '{printable(value, 80)}': {problem}{_meant_namespace(value)}")
    return value


def _meant_namespace(value: str) -> str:
    """What a --namespace that is no namespace meant, when it is plain: a NS/NAME (one workload), or a name in
    upper case."""
    try:
        namespace, name = split_reference(value.strip().lower())
    except ValueError:
        lowered = value.lower()
        return f"; did you mean --namespace {lowered}?" if namespace_problem(lowered) is None else ""
    return f"; did you mean --workload {namespace}/{name}?"


def run_secrets(config: HarnessConfig, environ: Mapping[str, str]) -> list[str]:
    """Every secret value this run may handle that is known before it starts, for every process's redactor:
    the configured client secret, the credentials DefaultAzureCredential would take from the environment,
    and the kubeconfig user's static token (the live one is added when the backend is built)."""
    ambient = [environ.get(name, "") for name in AMBIENT_SECRET_VARIABLES]
    token = kubeconfig_bearer_token(config.cluster.kubeconfig, config.cluster.context)
    return [value for value in (*config.secrets(), *ambient, token) if value]


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class HarnessSession:
    config: HarnessConfig
    config_path: Path
    run_id: str
    started_at: str
    target_kind: str  # lab | cluster
    report_dir: Path
    shared_dir: Path
    image: str
    keep: bool = False
    sweep: bool = False
    workloads: list[WorkloadConfig] = field(default_factory=list)  # parametrized
    pods: list[tuple[str, str]] = field(default_factory=list)  # --pod NS/POD
    selected_workloads: list[str] | None = None  # ids with at least one selected test (after -k, --deselect)
    selected_pods: list[str] | None = None
    selected_migration: bool = False  # a migration.* test is selected: collect pod-managed identity leftovers
    selected_inventory: bool = False  # an inventory.* test is selected: collect the inventory
    # a whole-cluster run: {namespaces, service_accounts, error, labelled_pods (cluster-wide only)} as listed when
    # the run started (None: not one)
    discovery: dict[str, Any] | None = None
    redactor: Redactor = field(default_factory=Redactor)
    lab: EmbeddedLab | None = None
    is_worker: bool = False
    kube: Any = None  # the KubeApi built (and so checked) when the run started; None: each process builds one

    @property
    def run_dir(self) -> Path:
        return self.report_dir / self.run_id

    def workload(self, workload_id: str) -> WorkloadConfig:
        return next(w for w in self.workloads if w.id == workload_id)

    def selected_workload_configs(self) -> list[WorkloadConfig]:
        chosen = self.selected_workloads
        return [w for w in self.workloads if chosen is None or w.id in chosen]

    def selected_pod_refs(self) -> list[tuple[str, str]]:
        chosen = self.selected_pods
        return [p for p in self.pods if chosen is None or f"{p[0]}/{p[1]}" in chosen]


DISCOVERY_FILE = "discovery.json"  # in the run's shared directory: the whole-cluster ServiceAccount list


def whole_cluster(
    config: HarnessConfig,
    requested: list[tuple[str, str]],
    pods: list[tuple[str, str]],
    namespaces: list[str],
) -> bool:
    """Verify every Workload ID ServiceAccount the cluster has: no --workload or --pod, and harness.yaml lists
    no workloads (or --namespace narrows the run to namespaces, its entries there giving their settings)."""
    return not requested and not pods and (not config.workloads or bool(namespaces))


def discover(kube: Any, namespaces: list[str]) -> dict[str, Any]:
    """The ServiceAccounts with the client-id annotation or the use label in ``namespaces`` (all when empty), those
    meant for Workload ID with a misspelled client-id key (or only another of the webhook's keys), and those that
    pods labelled azure.workload.identity/use: "true" there run as (one more list), as JSON the
    xdist workers read back; a refusal is kept as ``error`` for the workload suite to report. When the run is
    cluster-wide, ``labelled_pods`` keeps what the inventory and migration suites read of that pod list
    (:func:`harness.collect.inventory.labelled_pod_summaries`), so it is not listed again."""
    found: dict[str, Any] = {"namespaces": namespaces, "service_accounts": [], "error": None}
    if kube is None:
        message = ("no Kubernetes client to list ServiceAccounts with (a conftest that supplies wi_backend "
                   "must also define wi_kube())")
        found["error"] = {"status": 0, "reason": "NoClient", "message": message}
        return found
    labelled, error = list_labelled_pods(kube, namespaces)
    asked = service_accounts_run_by(labelled)
    if error is None and not namespaces:
        found["labelled_pods"] = labelled_pod_summaries(labelled)
    if error is not None:  # not all the workloads that asked for Workload ID can be named: say so, verify none
        found["error"] = {"status": error.status, "reason": error.reason, "message": error.message,
                          "listing": f"the pods labelled {USE_LABEL}=true"}
        return found
    accounts, _, error = list_service_accounts(kube, namespaces, also=asked, meant=True)
    found["service_accounts"] = accounts
    if error is not None:
        found["error"] = {"status": error.status, "reason": error.reason, "message": error.message}
    elif namespaces and not accounts:  # a namespace of another cluster, a typo, or one being deleted: say so
        read = {name: _read_namespace(kube, name) for name in namespaces}
        found["missing_namespaces"] = [name for name, ns in read.items() if ns is None]
        if found["missing_namespaces"]:
            found["near_namespaces"] = _near_namespaces(kube, found["missing_namespaces"])
        found["terminating_namespaces"] = [
            {"name": name, "since": deleting, "held": _held_by(ns)}
            for name, ns in read.items()
            if isinstance(ns, dict) and (deleting := (ns.get("metadata") or {}).get("deletionTimestamp"))
        ]
    return found


def _near_namespaces(kube: Any, missing: list[str]) -> list[str]:
    """The cluster's namespaces close to the ``missing`` ones (a typo in --namespace); none when they cannot be
    listed."""
    try:
        names = [str((item.get("metadata") or {}).get("name") or "") for item in kube.list_objects("", "v1",
                                                                                                 "namespaces")]
    except KubeError:
        return []
    return [near for name in missing for near in difflib.get_close_matches(name, names, 1, 0.6)]


def _read_namespace(kube: Any, name: str) -> Any:
    """The namespace as the API server answers (None: it does not exist); a refusal to read it says nothing (False)."""
    try:
        return kube.namespace(name)
    except KubeError:
        return False


def _held_by(namespace: dict[str, Any]) -> str | None:
    """What the namespace controller says still holds a namespace being deleted (its True conditions' messages)."""
    conditions = (namespace.get("status") or {}).get("conditions") or []
    held = [str(c.get("message")) for c in conditions
            if isinstance(c, dict) and c.get("status") == "True" and c.get("message")]
    return "; ".join(held) or None


def workloads_for(
    config: HarnessConfig,
    requested: list[tuple[str, str]],
    pods_requested: bool,
    discovery: dict[str, Any] | None = None,
) -> list[WorkloadConfig]:
    """--workload picks (ad-hoc ones allowed: client id from the ServiceAccount); a whole-cluster run, every
    ServiceAccount found (harness.yaml's entry for one, if any, gives its access checks), harness.yaml's
    entries in the --namespace namespaces first; else every configured one, unless only --pod was given."""
    if requested:
        return [
            config.workload(f"{ns}/{sa}") or WorkloadConfig(namespace=ns, service_account=sa)
            for ns, sa in dict.fromkeys(requested)
        ]
    if discovery is not None:
        namespaces = set(discovery.get("namespaces") or [])
        listed = [w.id for w in config.workloads if not namespaces or w.namespace in namespaces]
        found = [f"{s['namespace']}/{s['name']}" for s in discovery.get("service_accounts") or []
                 if namespace_problem(s["namespace"]) is None and object_name_problem(s["name"]) is None]
        chosen = [ref.split("/", 1) for ref in dict.fromkeys([*listed, *found])]
        return [config.workload(f"{ns}/{sa}") or WorkloadConfig(namespace=ns, service_account=sa)
                for ns, sa in chosen]
    return [] if pods_requested else list(config.workloads)
