"""Collect everything one run needs, through a :class:`Backend` (the three seams bundled)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.checks.podspec import controller_of, is_webhook_pod, token_volumes
from harness.checks.transient import retryable_aadsts, service_account_subject
from harness.collect.access_resources import collect_access_resources
from harness.collect.arm import (
    collect_identity,
    collect_identity_roles,
    collect_managed_cluster,
    collect_namesake_roles,
    prefetch_identity_searches,
)
from harness.collect.arm_api import ArmGet
from harness.collect.cache import cached, read_all
from harness.collect.caller import azure_caller, kubernetes_user
from harness.collect.http import HttpGet
from harness.collect.inventory import collect_inventory, labelled_pod_summaries, list_labelled_pods
from harness.collect.issuer import collect_issuer
from harness.collect.kube import (
    collect_service_account,
    collect_webhook,
    slim,
    webhook_cert_unmountable,
    webhook_config,
    webhook_network_policies,
    webhook_not_started,
    webhook_unscheduled,
)
from harness.collect.kube_api import KubeApi, KubeError
from harness.collect.live_pods import collect_live_pods, read_controller
from harness.collect.migration import collect_migration
from harness.collect.probe_pods import ProbeRequest, ProbeRun, probe_config_for, run_probe_pods, sweep
from harness.collect.retrying import LEDGER
from harness.config import HarnessConfig, WorkloadConfig
from harness.facts import ClusterFacts, PodFacts, RunFacts, ServiceAccountFacts, WorkloadFacts
from harness.names import CLIENT_ID_ANNOTATION


@dataclass
class Backend:
    """The three I/O seams. Tests build one from fakes; :func:`build_backend` builds the real one."""

    kube: KubeApi
    http: HttpGet
    arm: ArmGet | None = None
    graph: ArmGet | None = None  # Microsoft Graph, through the ARM seam (application identities)
    secrets: list[str] = field(default_factory=list)  # values the redactor must know (kube bearer token)


def build_backend(config: HarnessConfig, kube: KubeApi | None = None) -> Backend:
    """The real seams; ``kube`` when the plugin already built (and so checked) the Kubernetes client."""
    from harness.collect.arm_api import RequestsArm, graph_client
    from harness.collect.http import requests_get
    from harness.collect.kube_api import OfficialKubeApi

    kube = kube or OfficialKubeApi(config.cluster.kubeconfig, config.cluster.context)
    ca_file = (config.azure.ca_file if config.azure else None) or config.cluster.ca_file
    arm = RequestsArm(config.azure, own_client_id=config.harness.client_id) if config.azure else None
    graph = graph_client(config.azure, arm) if config.azure and arm else None
    token = getattr(kube, "bearer_token", None)  # whatever the kubeconfig's user yields: static, tokenFile, exec
    # each ARM and Graph resource is read once per run, whichever collector asks (harness.collect.cache)
    return Backend(kube=kube, http=requests_get(ca_file), arm=cached(arm), graph=cached(graph),
                   secrets=[token] if token else [])


@dataclass
class Selection:
    workloads: list[WorkloadConfig] = field(default_factory=list)
    pods: list[tuple[str, str]] = field(default_factory=list)  # --pod NS/POD
    migration: bool = False  # the migration suite runs: what is left of pod-managed identity, and its coverage
    inventory: bool = False  # the inventory suite runs: every Workload ID ServiceAccount against Azure
    # the cluster's pods labelled for Workload ID, as a whole-cluster run's discovery listed them
    # (harness.collect.inventory.labelled_pod_summaries; None: not listed)
    labelled_pods: list[dict[str, Any]] | None = None


def collect_cluster(backend: Backend, config: HarnessConfig) -> ClusterFacts:
    kube = backend.kube
    facts = ClusterFacts(
        collected_at=time.time(),
        context=kube.context,
        server=kube.server,
        azure_configured=config.azure is not None,
        cluster_name=config.azure.cluster_name if config.azure else None,
    )
    mwcs, mwc_error, deployments, deployment_error = collect_webhook(kube)
    facts.webhook_configurations, facts.webhook_deployments = mwcs, deployments
    facts.webhook_configurations_error = mwc_error.failure if mwc_error else None
    facts.webhook_deployment_error = deployment_error.failure if deployment_error else None
    facts.webhook_unschedulable = webhook_unscheduled(kube, deployments)
    facts.webhook_not_started = webhook_not_started(kube, deployments)
    facts.webhook_cert_unmountable = webhook_cert_unmountable(kube, deployments, facts.collected_at)
    facts.webhook_config = webhook_config(kube, deployments)
    facts.webhook_network_policies = webhook_network_policies(kube, deployments)
    facts.kube_discovery = kube.openid_configuration()
    if backend.arm is not None and config.azure is not None:
        facts.arm_cluster = collect_managed_cluster(backend.arm, config.azure)
    facts.run_by_kubernetes = kubernetes_user(kube)
    facts.run_by_azure = azure_caller(backend.arm) if backend.arm is not None else None
    facts.issuer_url, facts.issuer_source = resolve_issuer(facts)
    if facts.issuer_url:
        facts.issuer_discovery, facts.issuer_jwks = collect_issuer(backend.http, facts.issuer_url)
    return facts


def resolve_issuer(facts: ClusterFacts) -> tuple[str | None, str | None]:
    """ARM's oidcIssuerProfile.issuerURL when Azure is configured, else the API server's discovery issuer."""
    if facts.arm_cluster is not None and facts.arm_cluster.ok:
        profile = ((facts.arm_cluster.body or {}).get("properties") or {}).get("oidcIssuerProfile") or {}
        issuer = profile.get("issuerURL") or profile.get("issuerUrl")
        return (str(issuer), "arm") if issuer else (None, None)
    if facts.arm_cluster is None and facts.kube_discovery is not None and facts.kube_discovery.ok:
        issuer = (facts.kube_discovery.body or {}).get("issuer")
        return (str(issuer), "kube-discovery") if issuer else (None, None)
    return None, None


def collect_workloads(
    backend: Backend,
    config: HarnessConfig,
    workloads: list[WorkloadConfig],
    run_id: str,
    image: str,
    keep: bool,
    issuer: str | None = None,
) -> dict[str, WorkloadFacts]:
    """ServiceAccounts (all first, so that the identities to look up by client id are searched for together), then
    each workload's identity and live pods, and its probe pod as soon as they are read (only where the
    ServiceAccount exists); then every pod awaited. The identity's credentials and the cluster's ``issuer`` decide
    which Entra answers the probe may wait out."""

    def retry_scope(workload_id: str) -> str:
        """Where the harness's retries for the workload are counted (this run's: a process may collect more
        than one run); reads shared by workloads count for the one that made them."""
        return f"{run_id} {workload_id}"

    def read_service_account(workload: WorkloadConfig) -> ServiceAccountFacts:
        with LEDGER.scope(retry_scope(workload.id)):
            return collect_service_account(backend.kube, workload.namespace, workload.service_account,
                                           controller_too=True)

    service_accounts = dict(zip([w.id for w in workloads], read_all(read_service_account, workloads), strict=True))
    # the identities to look up by client id, in a few Resource Graph queries rather than one per workload
    prefetch_identity_searches(backend.arm, [
        client_id for w in workloads if not w.identity_resource_id
        for client_id in [w.client_id or service_accounts[w.id].annotations.get(CLIENT_ID_ANNOTATION)] if client_id])

    def read(workload: WorkloadConfig) -> WorkloadFacts:
        sa = service_accounts[workload.id]
        client_id = workload.client_id or sa.annotations.get(CLIENT_ID_ANNOTATION) or None
        identity = collect_identity(
            backend.arm, config.azure, workload.identity_resource_id, client_id, backend.graph, roles=False,
            subject=service_account_subject(workload.namespace, workload.service_account),
        )
        return WorkloadFacts(
            workload_id=workload.id,
            namespace=workload.namespace,
            service_account=workload.service_account,
            collected_at=time.time(),
            sa=sa,
            identity=identity,
        )

    def read_and_probe(workload: WorkloadConfig, probes: ProbeRun) -> WorkloadFacts:
        with LEDGER.scope(retry_scope(workload.id)):
            facts = read(workload)
        if facts.sa.found:
            facts.pod = probes.create(ProbeRequest(
                workload.id,
                workload.namespace,
                workload.service_account,
                probe_config_for(workload, config.probe, config.cloud, retryable_aadsts(
                    facts.identity, issuer,
                    service_account_subject(workload.namespace, workload.service_account),
                    facts.sa.annotations.get(CLIENT_ID_ANNOTATION), facts.collected_at),
                    cloud_configured=config.azure is not None),
            ), scope=retry_scope(workload.id))
        # read while the probe pod starts: the probe does not need them (what it may wait out follows the identity and
        # its federated credentials, not its role assignments; its own pods are not listed as the app's)
        with LEDGER.scope(retry_scope(workload.id)):
            collect_identity_roles(backend.arm, config.azure, facts.identity)
            if any(target.expect == "allow" for target in workload.access):
                collect_namesake_roles(backend.arm, config.azure, facts.identity)
            if facts.sa.found:
                facts.live_pods = collect_live_pods(backend.kube, workload.namespace, workload.service_account)
                admitted = facts.pod.pod if facts.pod is not None and facts.pod.created else None
                if admitted is not None and not token_volumes(admitted):
                    facts.sa.namespace_labels = read_namespace_labels(backend.kube, workload.namespace)
        return facts

    # Each workload's reads are a few round trips in a row, and its probe pod is created as soon as they are done:
    # many workloads at once (within read_all's bound), the first pods starting while later workloads are read.
    with ProbeRun(backend.kube, run_id, config.probe, image, keep) as probes:
        out = {facts.workload_id: facts for facts in read_all(lambda w: read_and_probe(w, probes), workloads)}
        probes.finish()
    for facts in out.values():
        facts.harness_retries = LEDGER.scoped(retry_scope(facts.workload_id))
        if facts.pod is not None:
            facts.collected_at = time.time()
    return out


def read_namespace_labels(api: KubeApi, namespace: str) -> dict[str, str] | None:
    """The namespace's labels (which the webhook's namespaceSelector is matched against), None when unreadable."""
    try:
        found = api.namespace(namespace)
    except KubeError:
        return None
    if found is None:
        return None
    return {str(k): str(v) for k, v in ((found.get("metadata") or {}).get("labels") or {}).items()}


def collect_existing_pod(backend: Backend, config: HarnessConfig, namespace: str, name: str) -> WorkloadFacts:
    """--pod NS/POD: a running workload's pod as admitted, its ServiceAccount and identity (the probe under that
    ServiceAccount is :func:`collect_existing_pods`'s)."""
    pod_facts = PodFacts(namespace=namespace, name=name, existing=True)
    pod: dict[str, Any] | None = None
    try:
        pod = backend.kube.pod(namespace, name)
    except KubeError as exc:
        pod_facts.create_error = exc.failure
    service_account = "default"
    if pod is None and pod_facts.create_error is None:  # gone (a rollout since), or a typo: what is there now
        try:
            items, _ = backend.kube.list_pods(namespace, "")
            pod_facts.namespace_pods = sorted(str((i.get("metadata") or {}).get("name")) for i in items)
            pod_facts.service_account_named = backend.kube.service_account(namespace, name) is not None
        except KubeError:
            pass
    if pod is not None:
        pod_facts.created = True
        pod_facts.pod = slim(pod)
        pod_facts.phase = (pod.get("status") or {}).get("phase")
        service_account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        # where the use label sits when the pod lacks it (its controller's own metadata, a CronJob's), and whether
        # its AZURE_* env came from the template; refused: the pod alone says what it can
        pod_facts.owner, pod_facts.cronjob = read_controller(backend.kube, namespace, *controller_of(pod))
    sa = collect_service_account(backend.kube, namespace, service_account)
    if pod is not None and not token_volumes(pod):
        sa.namespace_labels = read_namespace_labels(backend.kube, namespace)
    if pod is not None and sa.found and CLIENT_ID_ANNOTATION not in sa.annotations:
        try:
            listed = backend.kube.list_service_accounts(namespace)
        except KubeError:
            listed = []  # the fix then names no other ServiceAccount
        for other in listed:
            meta = other.get("metadata") or {}
            client_id = (meta.get("annotations") or {}).get(CLIENT_ID_ANNOTATION)
            if client_id and meta.get("name") != service_account:
                sa.annotated_neighbours[str(meta.get("name"))] = str(client_id)[:64]
    configured = config.workload(f"{namespace}/{service_account}")
    client_id = (configured.client_id if configured else None) or sa.annotations.get(CLIENT_ID_ANNOTATION)
    identity = collect_identity(
        backend.arm, config.azure, configured.identity_resource_id if configured else None, client_id, backend.graph,
        subject=service_account_subject(namespace, service_account),
    )
    return WorkloadFacts(
        workload_id=f"{namespace}/{name}",
        namespace=namespace,
        service_account=service_account,
        collected_at=time.time(),
        sa=sa,
        identity=identity,
        pod=pod_facts,
    )


def collect_existing_pods(
    backend: Backend,
    config: HarnessConfig,
    refs: list[tuple[str, str]],
    run_id: str,
    image: str,
    keep: bool,
    issuer: str | None = None,
) -> dict[str, WorkloadFacts]:
    """--pod NS/POD for each ref: the pod as admitted, then a probe pod under each found pod's ServiceAccount
    (all at once), which proves the token, the federated credential and the exchange for that ServiceAccount.
    The probe carries the ServiceAccount's harness.yaml settings (client id, scope) but no access checks; what it
    may wait out follows the identity's credentials and the cluster's ``issuer`` (harness.checks.transient)."""
    out = {f"{ns}/{name}": collect_existing_pod(backend, config, ns, name) for ns, name in refs}
    requests = []
    for pod_id, facts in out.items():
        if facts.pod is None or not facts.pod.created or not facts.sa.found or is_webhook_pod(facts.pod.pod):
            continue  # the webhook's own pod (pod.exists says so): no probe pod in its namespace
        configured = config.workload(f"{facts.namespace}/{facts.service_account}")
        workload = (configured.model_copy(update={"access": []}) if configured
                    else WorkloadConfig(namespace=facts.namespace, service_account=facts.service_account))
        requests.append(ProbeRequest(pod_id, facts.namespace, facts.service_account,
                                     probe_config_for(workload, config.probe, config.cloud, retryable_aadsts(
                                         facts.identity, issuer,
                                         service_account_subject(facts.namespace, facts.service_account),
                                         facts.sa.annotations.get(CLIENT_ID_ANNOTATION), facts.collected_at),
                                         cloud_configured=config.azure is not None)))
    if requests:
        probes = run_probe_pods(backend.kube, requests, run_id, config.probe, image, keep=keep)
        for pod_id, probe_pod in probes.items():
            facts = out[pod_id]
            facts.probe_pod = probe_pod
            if (facts.sa.namespace_labels is None and probe_pod.created and probe_pod.pod is not None
                    and not token_volumes(probe_pod.pod)):
                facts.sa.namespace_labels = read_namespace_labels(backend.kube, facts.namespace)
            facts.collected_at = time.time()
    return out


def collect_run(
    backend: Backend,
    config: HarnessConfig,
    selection: Selection,
    run_id: str,
    image: str,
    keep: bool = False,
    sweep_first: bool = False,
) -> RunFacts:
    swept: list[str] = []
    sweep_kept: list[str] | None = None  # None: --sweep was not asked for
    if sweep_first:
        namespaces = sorted(
            {w.namespace for w in config.workloads} | {w.namespace for w in selection.workloads}
        )
        sweep_kept = []
        swept = sweep(backend.kube, namespaces, run_id, kept=sweep_kept)

    def counted(section: str) -> Any:
        """Where the harness's retries while collecting ``section`` are counted (this run's)."""
        return LEDGER.scope(f"{run_id} {section}")

    with counted("cluster"):
        cluster = collect_cluster(backend, config)
        cluster.access_resources = collect_access_resources(backend.arm, config.azure, selection.workloads)
    workloads = collect_workloads(backend, config, selection.workloads, run_id, image, keep, cluster.issuer_url)
    pods = collect_existing_pods(backend, config, selection.pods, run_id, image, keep, cluster.issuer_url)
    labelled = selection.labelled_pods
    if labelled is None and selection.migration and selection.inventory:  # one cluster-wide list serves both
        listed, refused = list_labelled_pods(backend.kube)
        labelled = labelled_pod_summaries(listed) if refused is None else None  # else each meets the refusal
    migration = None
    if selection.migration:
        known = [w.identity for w in [*workloads.values(), *pods.values()]]
        with counted("migration"):
            migration = collect_migration(backend.kube, backend.arm, config.azure, backend.graph, known, labelled)
    inventory = None
    if selection.inventory:
        with counted("inventory"):
            inventory = collect_inventory(backend.kube, backend.arm, config.azure, backend.graph,
                                          cluster.issuer_url, config.expect.previous_issuers, labelled)
    retries = {section: LEDGER.scoped(f"{run_id} {section}") for section in ("cluster", "migration", "inventory")}
    return RunFacts(cluster=cluster, workloads=workloads, pods=pods, swept=swept, sweep_kept=sweep_kept,
                    migration=migration, inventory=inventory, harness_retries=retries)
