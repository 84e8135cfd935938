"""What every workload check reads: the workload's facts, its expectations (config), the cluster's facts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.checks.named_identities import trusting
from harness.checks.podspec import container, containers, controller_of, env_map, spec
from harness.config import AzureConfig, WorkloadConfig
from harness.facts import ClusterFacts, InventoryIdentity, LivePod, LivePodsFacts, PodFacts, WorkloadFacts
from harness.names import CLIENT_ID_ANNOTATION, INJECTED_ENV, PROBE_CONTAINER, TENANT_ID_ANNOTATION


@dataclass
class WorkloadContext:
    facts: WorkloadFacts
    workload: WorkloadConfig  # expectations; for --pod a bare one (no access checks)
    cluster: ClusterFacts
    azure: AzureConfig | None
    now: float
    # the inventory's identities (a run with the inventory suite and an azure section), for what they trust
    inventory_identities: list[InventoryIdentity] | None = None
    # NS/NAME of every ServiceAccount the inventory listed in the cluster (None: not listed)
    cluster_service_accounts: frozenset[str] | None = None

    def trusting(self) -> list[InventoryIdentity]:
        """The inventory's identities with a federated credential for this ServiceAccount's subject and this
        cluster's issuer (in any spelling: a later check says when it is not the exact one)."""
        return trusting(self.inventory_identities or [], self.subject, self.cluster.issuer_url)

    def with_pod(self, pod: PodFacts) -> WorkloadContext:
        """The same workload seen through another pod (--pod: the probe under the pod's ServiceAccount). The
        existing pod stays known as the one live pod, so that a restart a fix prints names its controller."""
        live = self.facts.live_pods
        existing = self.facts.pod
        if live is None and existing is not None and existing.existing and existing.pod:
            kind, name = controller_of(existing.pod)
            live = LivePodsFacts([LivePod(existing.pod, kind, name, existing.owner, existing.cronjob)])
        return dataclasses.replace(self, facts=dataclasses.replace(self.facts, pod=pod, live_pods=live))

    @property
    def namespace(self) -> str:
        return self.facts.namespace

    @property
    def service_account(self) -> str:
        return self.facts.service_account

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @property
    def pod(self) -> dict[str, Any] | None:
        return self.facts.pod.pod if self.facts.pod else None

    @property
    def node_name(self) -> str | None:
        """The node the pod was scheduled to, when it was."""
        return str(spec(self.pod).get("nodeName") or "") or None

    @property
    def container(self) -> dict[str, Any] | None:
        """The probe's container; in an existing pod, the first container the webhook mutated (a mesh may
        have put its proxy first), else the first one."""
        existing = self.facts.pod.existing if self.facts.pod else False
        if not existing:
            return container(self.pod, PROBE_CONTAINER)
        items = containers(self.pod)
        mutated = (c for c in items if any(env_map(c).get(name) for name in INJECTED_ENV))
        return next(mutated, items[0] if items else None)

    @property
    def annotated_client_id(self) -> str | None:
        return self.facts.sa.annotations.get(CLIENT_ID_ANNOTATION) or None

    @property
    def expected_client_id(self) -> str | None:
        return self.workload.client_id or self.annotated_client_id

    @property
    def stale_configured_client_id(self) -> str | None:
        """The client id of the managed identity harness.yaml names (identity_resource_id, as ARM answers it) where
        the ServiceAccount is annotated with it and harness.yaml's client_id is another: harness.yaml is out of date
        (an identity deleted and created again under its name gets a new client id), not the annotation."""
        facts, configured = self.facts.identity, self.workload.client_id
        if self.configured_object_id_of is not None:
            return self.annotated_client_id
        if facts.kind != "managed_identity" or facts.resolved_by != "config" or not configured:
            return None
        read = str(((facts.identity or {}).get("properties") or {}).get("clientId") or "")
        annotated = self.annotated_client_id or ""
        if read and read.lower() == annotated.lower() and read.lower() != configured.lower():
            return read
        return None

    @property
    def configured_object_id_of(self) -> dict[str, Any] | None:
        """The identity ({kind, client_id, name, resource_id}) whose principal (object) id harness.yaml's client_id
        is, where the ServiceAccount is annotated with that identity's client id: the portal's Object ID copied
        into harness.yaml, the annotation right. None otherwise."""
        owner, configured = self.facts.identity.principal_of, self.workload.client_id
        annotated = (self.annotated_client_id or "").lower()
        if not owner or not configured or not annotated or annotated == configured.lower():
            return None
        return owner if str(owner.get("client_id") or "").lower() == annotated else None

    @property
    def pod_tenant_id(self) -> str | None:
        """The tenant the pod's token exchange goes to: the ServiceAccount's tenant-id annotation, else the
        harness's azure.tenant_id (the webhook's own, the cluster's tenant on AKS)."""
        return self.facts.sa.annotations.get(TENANT_ID_ANNOTATION) or (self.azure.tenant_id if self.azure else None)

    def configured_tenant_wrong(self, actual: str | None) -> bool:
        """harness.yaml's tenant_id for the workload is not ``actual`` (the identity's tenant, the token's tid),
        which is the tenant the pod's exchange goes to: harness.yaml names another tenant, not the ServiceAccount."""
        configured, pod = self.workload.tenant_id, self.pod_tenant_id
        return bool(configured and actual and pod and configured.lower() != str(actual).lower()
                    and pod.lower() == str(actual).lower())

    @property
    def expected_tenant_id(self) -> str | None:
        return (
            self.workload.tenant_id
            or self.facts.sa.annotations.get(TENANT_ID_ANNOTATION)
            or (self.azure.tenant_id if self.azure else None)
        )

    @property
    def probe(self) -> dict[str, Any] | None:
        return self.facts.pod.probe if self.facts.pod else None

    def step(self, name: str) -> dict[str, Any] | None:
        """The probe's first step called ``name``."""
        return next((s for s in (self.probe or {}).get("steps") or [] if s.get("name") == name), None)

    def access_step(self, index: int) -> dict[str, Any] | None:
        steps = [s for s in (self.probe or {}).get("steps") or [] if s.get("name") == "access"]
        return next(
            (s for s in steps if s.get("index") == index), steps[index] if index < len(steps) else None
        )
