"""Plain facts the collectors return and the checks read. No behaviour, no I/O: JSON round-trips (serde)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CREDENTIAL_ERROR = "CredentialError"  # Fetched.code when the harness could not get a token to call at all
NETWORK_ERROR = "NetworkError"  # Fetched.code when a host could not be reached (DNS, TLS, refused, timed out)
# Fetched.code when the service took the request and did not answer in time, through the retries: the service, not
# the network path (the error names the service and the wait)
SLOW_ERROR = "ServiceSlow"


@dataclass
class Fetched:
    """One HTTP GET (issuer discovery, JWKS, an ARM resource): what came back, or why nothing did."""

    url: str
    status: int | None = None  # None: no HTTP response at all
    body: Any = None  # the parsed JSON body, when it was JSON
    error: str | None = None  # transport failure, or "not JSON", or the service's error message
    code: str | None = None  # the service's error code (ARM's error.code), when it gave one
    host: str | None = None  # NETWORK_ERROR: the host that could not be reached (the authority, for a token);
    # CREDENTIAL_ERROR: the authority asked for the token

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None

    def describe(self) -> str:
        if self.code in (CREDENTIAL_ERROR, SLOW_ERROR):
            return str(self.error)  # nothing was sent, or nothing came back: the URL is not the problem
        if self.code == NETWORK_ERROR:
            return f"could not reach {self.host}: {self.error}"
        if self.status is None:
            return f"no response from {self.url}: {self.error}"
        detail = f" {self.code}" if self.code else ""
        return f"HTTP {self.status}{detail} from {self.url}" + (f": {self.error}" if self.error else "")


@dataclass
class KubeFailure:
    """A refused Kubernetes API call: the Status the API server answered (status 0: no answer)."""

    status: int
    reason: str
    message: str


@dataclass
class WebhookPodNotStarted:
    """One of the webhook's pods scheduled but never started: the kubelet's reason (FailedMount,
    CreateContainerConfigError) and its own words."""

    namespace: str
    pod: str
    reason: str
    message: str


@dataclass
class WebhookPodUnscheduled:
    """One of the webhook's pods left Pending, no node taking it (PodScheduled False: a cordoned node, a taint it
    does not tolerate): the condition's reason (Unschedulable) and the scheduler's own words."""

    namespace: str
    pod: str
    reason: str
    message: str


@dataclass
class ClusterFacts:
    collected_at: float
    context: str | None = None
    server: str | None = None
    cluster_name: str | None = None
    azure_configured: bool = False
    webhook_configurations: list[dict[str, Any]] = field(default_factory=list)  # MWCs with the AWI webhook
    webhook_configurations_error: KubeFailure | None = None
    webhook_deployments: list[dict[str, Any]] = field(default_factory=list)
    webhook_deployment_error: KubeFailure | None = None
    # each webhook pod left Pending, unschedulable (a cordoned or tainted node), with the scheduler's message
    webhook_unschedulable: list[WebhookPodUnscheduled] = field(default_factory=list)
    # each webhook pod scheduled but never started (FailedMount of its certificate Secret, CreateContainerConfigError)
    webhook_not_started: list[WebhookPodNotStarted] = field(default_factory=list)
    # each running webhook pod whose kubelet cannot mount its certificate Secret again (FailedMount: the Secret
    # deleted): it serves from the files it mounted, but the next pod cannot start and nothing renews them
    webhook_cert_unmountable: list[WebhookPodNotStarted] = field(default_factory=list)
    # namespace -> azure-wi-webhook-config's AZURE_TENANT_ID and AZURE_ENVIRONMENT (what NewPodMutator reads at start)
    webhook_config: dict[str, dict[str, str]] = field(default_factory=dict)
    # the NetworkPolicies (name, namespace, spec) of the namespaces the webhook runs in, which may drop the API
    # server's calls to it; None: not read (the harness may not list them)
    webhook_network_policies: list[dict[str, Any]] | None = None
    kube_discovery: Fetched | None = None  # the API server's /.well-known/openid-configuration
    arm_cluster: Fetched | None = None  # the managedClusters resource, when Azure is configured
    issuer_url: str | None = None
    issuer_source: str | None = None  # "arm" | "kube-discovery"
    issuer_discovery: Fetched | None = None  # {issuer}.well-known/openid-configuration over HTTPS
    issuer_jwks: Fetched | None = None
    # endpoint (harness.values.endpoint_key) -> {id, name, resource_group} of the vault or storage account
    access_resources: dict[str, dict[str, str]] = field(default_factory=dict)
    # who runs the harness: Kubernetes' SelfSubjectReview {username, uid, groups} and the Azure identity claims of
    # the harness's own token {appid, oid, upn, ...}; {error} when it could not be told
    run_by_kubernetes: dict[str, Any] | None = None
    run_by_azure: dict[str, Any] | None = None


@dataclass
class ServiceAccountFacts:
    namespace: str
    name: str
    namespace_found: bool | None = None  # None: could not tell
    found: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    error: KubeFailure | None = None
    # --pod, its ServiceAccount without the client-id annotation: the namespace's ServiceAccounts that have one
    # (name -> client id), the ones the pod may have been meant to run under
    annotated_neighbours: dict[str, str] = field(default_factory=dict)
    # the namespace's labels, read when the probe pod came back unmutated (a namespaceSelector may exclude it)
    namespace_labels: dict[str, str] | None = None
    # the namespace's annotations, read when the ServiceAccount lacks the client-id annotation (a person may have
    # put it on the Namespace, which the webhook never reads); None: not read or not readable
    namespace_annotations: dict[str, str] | None = None
    # a namespace being deleted (deletionTimestamp set, phase Terminating), read when the ServiceAccount is not
    # found: {"since": deletionTimestamp, "conditions": [{type, status, reason, message}]} of the namespace controller
    namespace_deleting: dict[str, Any] | None = None
    # not found: existing ServiceAccounts (NS/NAME) whose names are close to the one asked for, a typo's target
    near_names: list[str] = field(default_factory=list)
    # not found, but a Deployment, StatefulSet, DaemonSet, Job or CronJob of that name is there (--workload given a
    # controller's name): its kind and the ServiceAccount its pods run as; None: no such controller, or not read
    controller_kind: str | None = None
    controller_runs_as: str | None = None
    # not found, no controller of that name, but a pod of that name is there (--workload given a pod's name, as
    # kubectl get pods lists it: a Deployment's, StatefulSet's NAME-N, Job's NAME-XXXXX): {kind, name} of the
    # controller that made it (kind "Pod": none) and the ServiceAccount it runs as; None: no such pod, or not read
    pod_named: dict[str, str] | None = None
    # not found, no controller nor pod of that name (a pod replaced since, as a troubleshooter types it): the
    # existing controllers the name's shape fits as one of their pods' ({kind, name, shape, service_account}, a
    # CronJob's Job's "cronjob" too); None: not looked for or a list refused
    pod_shaped_of: list[dict[str, str]] | None = None


@dataclass
class PodFacts:
    """The probe pod (or, with --pod, an existing pod) as the API server admitted it, and what it printed."""

    namespace: str
    name: str
    existing: bool = False  # --pod: a pod the harness did not create
    created: bool = False  # admission accepted it (or, existing: it was found)
    create_error: KubeFailure | None = None
    refused_resource: str | None = None  # "configmaps": the probe's source ConfigMap was refused, no pod was sent
    pod: dict[str, Any] | None = None  # metadata + spec + status, managedFields dropped
    phase: str | None = None
    timed_out: bool = False
    waiting_reason: str | None = None  # e.g. ErrImagePull, CreateContainerConfigError
    waiting_message: str | None = None
    exit_code: int | None = None
    log_tail: str | None = None  # the last lines of the log when no probe document could be parsed
    probe: dict[str, Any] | None = None  # the parsed wi-probe/v1 document
    probe_error: str | None = None
    deleted: bool = False
    network_policies: list[dict[str, Any]] | None = None  # the NetworkPolicies of its namespace; None: not readable
    # --pod NS/POD not found: the pods of NS now (names only), for the one it most likely was (a rollout replaced it)
    namespace_pods: list[str] | None = None
    # --pod NS/POD not found, and NS has a ServiceAccount of that name: a --workload typed as --pod
    service_account_named: bool = False
    # --pod: its controller (Deployment, StatefulSet, DaemonSet, Job) as read (the use label may sit on its own
    # metadata.labels; its template says which AZURE_* env the container sets), and a Job's CronJob
    owner: dict[str, Any] | None = None
    cronjob: dict[str, Any] | None = None


@dataclass
class IdentityFacts:
    """The identity behind a client id: a user-assigned managed identity (ARM, any readable subscription) or an
    Entra application registration (Microsoft Graph), with its federated credentials and role assignments."""

    configured: bool = False  # Azure access configured at all
    kind: str | None = None  # "managed_identity" | "application": where the client id was found
    resource_id: str | None = None  # the managed identity's ARM id
    # "config" | "resource_graph" | "subscription_list" (ARG refused) | "graph" (an application)
    resolved_by: str | None = None
    identity: dict[str, Any] | None = None  # the managed identity as ARM answers it
    application: dict[str, Any] | None = None  # the application as Graph answers it
    service_principal: dict[str, Any] | None = None  # the application's service principal (Graph)
    service_principal_lookup: Fetched | None = None  # the failed service principal lookup (404: none exists)
    # ARM ({name, properties: {issuer, subject, audiences}}) or Graph ({name, issuer, subject, audiences}) shapes
    federated_credentials: list[dict[str, Any]] | None = None
    role_assignments: list[dict[str, Any]] | None = None
    # assignments naming the identity's client id as their principal id (granting nothing: no such principal)
    client_id_role_assignments: list[dict[str, Any]] = field(default_factory=list)
    role_names: dict[str, str] = field(default_factory=dict)  # lower-cased roleDefinitionId -> roleName
    # lower-cased roleDefinitionId -> {actions, notActions, dataActions, notDataActions}
    role_permissions: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # The annotation is the principal (object) id of this identity: {kind, client_id, name, resource_id}
    principal_of: dict[str, Any] | None = None
    # Graph's deleted items with this appId (az ad app delete / az ad sp delete within 30 days): restorable under
    # their object ids, so the role assignments that name the service principal's hold again
    deleted_application: dict[str, Any] | None = None
    deleted_service_principal: dict[str, Any] | None = None
    # the application's live service principal is not its first: its deleted ones ({id, deletedDateTime}) in Graph's
    # deleted items (az ad sp delete, then az ad sp create: a new object id), and the role assignments that still
    # name them (ARM keeps them: they grant the new one nothing)
    former_service_principals: list[dict[str, Any]] = field(default_factory=list)
    former_principal_role_assignments: list[dict[str, Any]] = field(default_factory=list)
    # a managed identity holding no read role: the other managed identities of its name ({name, resource_id,
    # principal_id}) that hold role assignments, and those assignments (granting this identity nothing)
    namesake_identities: list[dict[str, str]] = field(default_factory=list)
    namesake_role_assignments: list[dict[str, Any]] = field(default_factory=list)
    # live applications with the deleted one's displayName (made again by hand: az ad app create under the same
    # name gives a new appId), each {application, federated_credentials (None: not readable)}
    namesakes: list[dict[str, Any]] = field(default_factory=list)
    # Not found: the user-assigned identities ({name, id, clientId}) of harness.yaml's identity's resource group
    # (ARM: ResourceNotFound), else of the configured subscription; what tells a typo from a deletion. None: not listed
    listed_identities: list[dict[str, Any]] | None = None
    # No application of this tenant has the client id, but its service principal is here, of an application another
    # tenant owns (a multi-tenant app installed here): {id, displayName, appOwnerOrganizationId}
    foreign_service_principal: dict[str, Any] | None = None
    # the client id is a name (an identity's or app registration's, pasted for its client id): the managed
    # identities and applications of that name the harness could read, {kind, name, client_id, resource_id};
    # None: not looked up, or neither could be listed
    named: list[dict[str, str]] | None = None
    searched: list[str] = field(default_factory=list)  # where the client id was looked for, in order
    refused: list[Fetched] = field(default_factory=list)  # lookups the harness was not allowed to make
    error: Fetched | None = None  # the call that failed and left nothing to judge
    note: str | None = None  # why nothing was looked up, or was found


@dataclass
class LivePod:
    """One of the workload's own pods (running under its ServiceAccount) and the controller that owns it."""

    pod: dict[str, Any]
    owner_kind: str  # Deployment | StatefulSet | DaemonSet | Job | ReplicaSet | ... | Pod (no controller)
    owner_name: str
    owner: dict[str, Any] | None = None  # the owning Deployment, StatefulSet, DaemonSet or Job as read, when read
    cronjob: dict[str, Any] | None = None  # a Job's own CronJob as read, when read


@dataclass
class RefusedController:
    """A controller whose pod template runs under the workload's ServiceAccount (or asks for Workload ID under
    another: harness.checks.live_pods.meant_for judges whether it is the workload's) and that cannot create its pods: a
    Deployment's ReplicaFailure condition (the Deployment controller copies it from its ReplicaSet), or a
    StatefulSet's, DaemonSet's or Job's latest FailedCreate event; reason FailedCreate, the API server's refusal
    as its message."""

    kind: str
    name: str
    reason: str
    message: str
    template_annotations: dict[str, str] = field(default_factory=dict)
    cronjob: str | None = None  # a Job's CronJob (its controller), whose jobTemplate is what may change
    service_account: str = ""  # the ServiceAccount its pod template names ("": facts of an older run)
    owns_workload_pods: bool = False  # a Deployment some of whose live pods run under the workload's ServiceAccount


@dataclass
class LivePodsFacts:
    """The workload's live pods: what the webhook really did to the pods that serve traffic; and the
    controllers meant to run pods under its ServiceAccount whose pods are refused (none of them run)."""

    pods: list[LivePod] = field(default_factory=list)
    error: KubeFailure | None = None
    refused: list[RefusedController] = field(default_factory=list)
    # labelled pods of the namespace under other ServiceAccounts that got no AZURE_CLIENT_ID (at most 10)
    unannotated: list[LivePod] = field(default_factory=list)
    # CronJobs whose pods run under the ServiceAccount and none of whose pods is live now (between schedules, or its
    # last Job's pods ended): only their jobTemplate tells what their next pods will be
    cronjobs: list[dict[str, Any]] = field(default_factory=list)
    # the ServiceAccounts the current pod templates of the live pods' Deployments, StatefulSets and DaemonSets name
    # instead of the workload's (a change not rolled out yet), with their annotations; None: it does not exist.
    # One whose read failed is left out
    template_accounts: dict[str, dict[str, str] | None] = field(default_factory=dict)
    # Deployments of ``unannotated`` (no pod runs under the workload's ServiceAccount) whose earlier ReplicaSets'
    # templates named the workload's ServiceAccount: "Deployment/NAME" -> "ReplicaSet NAME (revision N)", the proof
    # that the Deployment is the workload's and its template was moved off its ServiceAccount
    moved_off: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkloadFacts:
    workload_id: str  # NS/SA
    namespace: str
    service_account: str
    collected_at: float
    sa: ServiceAccountFacts
    identity: IdentityFacts
    pod: PodFacts | None = None
    live_pods: LivePodsFacts | None = None  # None: not looked at (--pod runs)
    probe_pod: PodFacts | None = None  # --pod: the probe pod run under the existing pod's ServiceAccount
    harness_retries: dict[str, int] = field(default_factory=dict)  # service -> the harness's retries for it


@dataclass
class ObjectList:
    """One cluster-wide list (``kubectl get RESOURCE -A``), kept to what the checks read: the objects, or why
    there are none to see."""

    resource: str  # plural.group ("pods" for the core API)
    items: list[dict[str, Any]] = field(default_factory=list)
    served: bool = True  # False: the API server serves no such resource (404: its CRD is not installed)
    error: KubeFailure | None = None  # any other refusal (403: the harness may not list it)


@dataclass
class MigrationFacts:
    """What is left of pod-managed identity (aad-pod-identity) and what replaced it: the CRDs, every object of
    their kinds, NMI and MIC, pods still labelled aadpodidbinding; ServiceAccounts annotated with a client id,
    pods labelled for Workload ID, and the identities behind the AzureIdentities (ARM's podIdentityProfile is in
    ClusterFacts.arm_cluster)."""

    collected_at: float
    crds: ObjectList  # CustomResourceDefinitions of group aadpodidentity.k8s.io
    azure_identities: ObjectList
    azure_identity_bindings: ObjectList
    azure_pod_identity_exceptions: ObjectList
    azure_assigned_identities: ObjectList
    components: ObjectList  # NMI DaemonSets and MIC Deployments (kind in each item)
    legacy_pods: ObjectList  # pods labelled aadpodidbinding
    labelled_pods: ObjectList  # pods labelled azure.workload.identity/use: "true"
    service_accounts: ObjectList  # ServiceAccounts with the client-id annotation
    identities: dict[str, IdentityFacts] = field(default_factory=dict)  # by lower-cased client id
    # Deployments and DaemonSets whose pod template is labelled aadpodidbinding (with or without pods now)
    legacy_templates: ObjectList = field(default_factory=lambda: ObjectList("daemonsets.apps,deployments.apps"))


@dataclass
class InventoryIdentity:
    """A managed identity (ARM) or an application (Graph) the inventory found: it has a federated credential
    for this cluster's issuer (in any spelling), or a ServiceAccount of the cluster names its client id."""

    kind: str  # "managed_identity" | "application"
    client_id: str
    name: str
    resource_id: str | None = None  # the managed identity's ARM id
    object_id: str | None = None  # the application's object id
    principal_id: str | None = None  # the managed identity's, or the application's service principal's
    # every credential of the identity, {name, issuer, subject, audiences}; None: they could not be read
    federated_credentials: list[dict[str, Any]] | None = None
    credentials_error: Fetched | None = None
    # {id, role, role_definition_id, scope} anywhere in role_subscriptions; None: not read (only for
    # identities a ServiceAccount names) or refused
    role_assignments: list[dict[str, Any]] | None = None
    role_subscriptions: list[str] = field(default_factory=list)
    roles_error: Fetched | None = None


@dataclass
class InventoryFacts:
    """The cluster's Workload ID inventory, cross-matched with Azure: every ServiceAccount with the client-id
    annotation or the use label, every identity with a federated credential for this cluster's issuer."""

    collected_at: float
    # {namespace, name, client_id, tenant_id, use_label}: the annotation and label values as found (may be "")
    service_accounts: list[dict[str, Any]] = field(default_factory=list)
    all_service_accounts: list[str] = field(default_factory=list)  # NS/NAME of every ServiceAccount
    service_accounts_error: KubeFailure | None = None
    azure_configured: bool = False
    identities: list[InventoryIdentity] = field(default_factory=list)
    # where identities were looked for, in order; lookups refused (401/403) or failed otherwise
    searched: list[str] = field(default_factory=list)
    refused: list[Fetched] = field(default_factory=list)
    failed: list[Fetched] = field(default_factory=list)
    # annotated client ids that are some identity's principal (object) id:
    # {kind, client_id, name, resource_id}
    principal_of: dict[str, dict[str, Any]] = field(default_factory=dict)
    # annotated client ids Entra knows (a service principal has that appId) but the harness cannot read the
    # identity of: {kind, client_id, name, resource_id}
    hidden: dict[str, dict[str, Any]] = field(default_factory=dict)
    # annotated client ids of applications in Graph's deleted items (deleted within 30 days):
    # {application: the deleted application, service_principal: the one deleted with it, or None}
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)
    # annotations holding a name (lower-cased) -> the managed identities and applications of that name the harness
    # could read, {kind, name, client_id, resource_id} (harness.collect.identity_names); absent: not listable
    named: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # NS/SA -> {kind, name, pods} of the controllers (or bare pods) whose live pods labelled
    # azure.workload.identity/use: "true" run under it: what a fix restarts; None: the pods were not listed
    pod_owners: dict[str, list[dict[str, Any]]] | None = None


@dataclass
class RunFacts:
    cluster: ClusterFacts
    workloads: dict[str, WorkloadFacts] = field(default_factory=dict)  # by NS/SA
    pods: dict[str, WorkloadFacts] = field(default_factory=dict)  # --pod, by NS/POD
    swept: list[str] = field(default_factory=list)  # NS/POD (NS/configmap/NAME) of leftovers deleted by --sweep
    # --sweep's line for each earlier run whose objects it left (within their bound); None: no --sweep
    sweep_kept: list[str] | None = None
    migration: MigrationFacts | None = None  # collected when the migration suite runs
    inventory: InventoryFacts | None = None  # collected when the inventory suite runs
    # section (cluster, migration, inventory) -> service -> the harness's retries while collecting it
    harness_retries: dict[str, dict[str, int]] = field(default_factory=dict)
