"""The run.json contract (DESIGN.md), as a strict pydantic model: writing validates against it, tests too."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "wi-harness/run/v1"
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Check(_Strict):
    id: str = Field(min_length=1)
    status: Literal["pass", "fail", "warn", "skip"]
    message: str
    evidence: dict[str, Any]


class Finding(_Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$")
    severity: Literal["error", "warning", "info"]
    layer: str
    message: str
    evidence: dict[str, Any]
    remediation: list[str]
    check: str | None = None  # the id of the check that raised it (absent in documents written before it)


class RunBy(_Strict):
    """Who ran the harness: Kubernetes' SelfSubjectReview {username, uid, groups}, the Azure identity claims of the
    harness's own token {appid, oid, upn, tid, idtyp}; {error} when it could not be told, null when not asked."""

    kubernetes: dict[str, Any] | None = None
    azure: dict[str, Any] | None = None


class Target(_Strict):
    kind: Literal["lab", "cluster"]
    context: str
    cluster: str
    issuer: str
    subscription_id: str = ""
    resource_group: str = ""
    run_by: RunBy | None = None


class Workload(_Strict):
    id: str = Field(pattern=r"^[^/]+/[^/]+$")
    namespace: str
    service_account: str
    verdict: Literal["pass", "fail"]
    checks: list[Check]
    findings: list[Finding]


class CoverageRow(_Strict):
    """One AzureIdentityBinding (pod-managed identity) and its Workload ID replacement: the ServiceAccounts annotated
    with its AzureIdentity's client id, the identity's federated credentials for this cluster's issuer, the pods
    labelled for Workload ID under those ServiceAccounts. ``missing``/``unknown`` name what is absent or could not
    be told: service_account, federated_credential, labelled_pods."""

    binding: str  # NS/NAME
    selector: str | None
    azure_identity: str | None  # NS/NAME of the AzureIdentity it names; null when there is none
    identity_type: int | None  # AzureIdentity spec.type: 0 user-assigned managed identity, 1 service principal
    client_id: str | None
    identity: str | None  # the managed identity's or application's name, as ARM or Graph gave it
    identity_kind: Literal["managed_identity", "application"] | None
    identity_lookup: Literal["found", "not_visible", "not_looked_up", "unreadable", "error"]
    service_accounts: list[str]  # NS/SA
    federated: bool | None  # a federated credential for this cluster's issuer; null: could not be read
    federated_subjects: list[str]
    labelled_pods: list[str]  # NS/POD labelled azure.workload.identity/use: "true" under those ServiceAccounts
    legacy_pods: list[str]  # NS/POD still labelled aadpodidbinding: <selector>
    # NS/POD labelled azure.workload.identity/use: "true" under those ServiceAccounts that the webhook did not give
    # the identity (no projected token, or no AZURE_CLIENT_ID of its client id): labelled or annotated after creation
    uninjected_pods: list[str] = []
    # NS/SA=CLIENT_ID: ServiceAccounts the binding's pods run as that name another identity's client id (moved to it)
    moved_to: list[str] = []
    migrated: bool
    missing: list[Literal["service_account", "federated_credential", "labelled_pods"]]
    unknown: list[Literal["service_account", "federated_credential", "labelled_pods"]]


class Leftovers(_Strict):
    """What remains of pod-managed identity (aad-pod-identity), one flat table per kind."""

    migration_complete: bool  # expect.migration_complete: leftovers are errors when true, warnings when false
    addon_enabled: bool | None  # ARM podIdentityProfile.enabled; null when ARM was not read
    addon_identities: list[dict[str, Any]]  # {namespace, name, binding_selector, client_id, resource_id, ...}
    addon_exceptions: list[dict[str, Any]]  # {namespace, name, pod_labels}
    crds: list[str]
    objects: list[dict[str, Any]]  # {kind, namespace, name, detail}
    components: list[dict[str, Any]]  # NMI/MIC: {kind, namespace, name, component, ready, desired, images, release}
    labelled_pods: list[dict[str, Any]]  # {namespace, name, selector, service_account, owner}
    unreadable: list[dict[str, Any]]  # {resource, status, reason, message}: lists the harness could not read


class Inventory(_Strict):
    """The inventory suite's cross-match of the cluster's Workload ID ServiceAccounts with Azure, one table
    per list: service_accounts {service_account, client_id, use_label, identity, state}, federated_credentials
    {identity, kind, name, issuer, relation (exact|twin|older|other), subject, service_account,
    service_account_exists}, identities {identity, kind, client_id, resource, credentials, used_by},
    role_assignments {identity, role, scope, assignment_id, broad}, unreadable {url, status, code, error}."""

    issuer: str | None
    service_accounts: list[dict[str, Any]]
    federated_credentials: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    role_assignments: list[dict[str, Any]]
    searched: list[str]
    unreadable: list[dict[str, Any]]


class HarnessError(_Strict):
    """A test of the harness that errored without a check result (a fixture's failure: a whole-cluster run that
    found nothing to verify, a bug): the run cannot pass, and this says why."""

    test: str  # the pytest node id
    message: str  # one line


class Incomplete(_Strict):
    """Why the verdict is FAIL beyond what the checks say: the run was stopped by a signal before every check ran
    (checks not run are not in the document), and the harness's tests that errored without a check result."""

    interrupted: str | None = None  # SIGINT or SIGTERM; null when the run finished
    errors: list[HarnessError] = []


# the command-line flag behind each of Narrowed's fields that one flag sets (options and tests list what was given)
NARROWING_FLAGS = {"keyword": "-k", "markexpr": "-m", "workloads": "--workload", "pods": "--pod",
                   "namespaces": "--namespace"}


class Narrowed(_Strict):
    """What narrowed the run to part of the suites: pytest's -k and -m expressions, test paths or node ids named
    on the command line, --workload, --pod and --namespace. The verdict covers only the checks the run selected."""

    keyword: str = ""
    markexpr: str = ""
    options: list[str] = []  # pytest's other selections: --lf (with failures to rerun), --sw, --deselect, --ignore, -x/--maxfail (stopped)
    tests: list[str] = []
    workloads: list[str] = []
    pods: list[str] = []
    namespaces: list[str] = []


class RunReport(_Strict):
    schema_: Literal["wi-harness/run/v1"] = Field(alias="schema")
    run_id: str = Field(min_length=1)
    harness_version: str = ""
    started_at: str = Field(pattern=RFC3339)
    finished_at: str = Field(pattern=RFC3339)
    target: Target
    verdict: Literal["pass", "fail"]
    checks: list[Check]
    findings: list[Finding]
    workloads: list[Workload]
    leftovers: Leftovers | None = None  # the migration suite (migration.* checks): absent when it did not run
    coverage: list[CoverageRow] | None = None
    inventory: Inventory | None = None  # the inventory suite (inventory.* checks): absent when it did not run
    # the harness's own retries of transient answers, per service {retries, answers: {answer: n}}; absent: none
    retries: dict[str, Any] | None = None
    # absent when every test ran and each gave its check result; present, the verdict is FAIL
    incomplete: Incomplete | None = None
    narrowed: Narrowed | None = None  # absent when the whole suites ran over every workload


def validate_run(document: dict[str, Any]) -> RunReport:
    """Raise pydantic.ValidationError when ``document`` breaks the contract."""
    return RunReport.model_validate(document)


def json_schema() -> dict[str, Any]:
    return RunReport.model_json_schema(by_alias=True)
