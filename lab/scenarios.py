"""Named worlds the lab can start in. ``healthy`` (the default) is the team runbook's world.

A scenario fills the cluster store and the Azure model directly, before any service listens.
Broken variants start from ``healthy`` and change one link of the chain, the way a person would.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.azure.world import FederatedCredential, ManagedIdentity

if TYPE_CHECKING:
    from lab.runtime import Lab

PROBE_IMAGE = "ghcr.io/wi-harness/probe"  # probe.mode image: any tag runs the in-repo probe (python -m probe)
PYTHON_IMAGE = "lab/python"  # any tag runs the lab's python interpreter with the container's args
# The image built from the Dockerfile's harness target (any tag): its ENTRYPOINT is wi-harness, the console script
# harness.console:main, run here by the lab's own interpreter, which has this project installed
HARNESS_IMAGE = "ghcr.io/wi-harness/harness"
IDLE_IMAGES = ("myacr.azurecr.io/finance/backend", "myacr.azurecr.io/orders/api")
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
CLUSTER_NAME = "z-dev-kubernetes-01-aks-SGmrd5"
CLUSTER_RESOURCE_GROUP = "dev-kubernetes-rg"
IDENTITY_RESOURCE_GROUP = "myRg"
# A second subscription of the same tenant, as platform teams keep shared identities apart from clusters.
SHARED_IDENTITY_SUBSCRIPTION = "wi-lab-shared-identities"
SHARED_IDENTITY_RESOURCE_GROUP = "shared-identities-rg"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    build: Callable[[Lab], None]


# ------------------------------------------------------------------ building blocks

def _core_objects(lab: Lab) -> None:
    from lab.kube import webhook
    from lab.kube.resources import ensure_builtin_types

    store = lab.kube.store
    ensure_builtin_types(store)
    namespaces = store.type_for("", "namespaces")
    service_accounts = store.type_for("", "serviceaccounts")
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        if not store.find(namespaces, "", name):
            store.create(namespaces, {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                                      "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        if not store.find(service_accounts, name, "default"):
            store.create(service_accounts, {"metadata": {"name": "default"}}, namespace=name)
    for group, plural, namespace, obj in webhook.webhook_objects(lab.kube.webhook):
        store.create(store.type_for(group, plural), obj, namespace=namespace or None)


def _namespace(lab: Lab, name: str, labels: dict[str, str] | None = None) -> None:
    store = lab.kube.store
    store.create(store.type_for("", "namespaces"), {
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
    })
    store.create(store.type_for("", "serviceaccounts"), {"metadata": {"name": "default"}}, namespace=name)


def _service_account(lab: Lab, namespace: str, name: str, client_id: str | None) -> None:
    annotations = {"azure.workload.identity/client-id": client_id} if client_id else {}
    store = lab.kube.store
    store.create(store.type_for("", "serviceaccounts"),
                 {"metadata": {"name": name, "namespace": namespace, "annotations": annotations}},
                 namespace=namespace)


def _federate(identity: ManagedIdentity, name: str, issuer: str, namespace: str, service_account: str) -> None:
    identity.federated_credentials[name] = FederatedCredential(
        name=name, issuer=issuer, subject=f"system:serviceaccount:{namespace}:{service_account}",
        audiences=[TOKEN_EXCHANGE_AUDIENCE],
    )


def _deployment(lab: Lab, namespace: str, name: str, service_account: str, image: str) -> None:
    """An idle Deployment (images in IDLE_IMAGES run no process) labelled for workload identity; the lab's
    ReplicaSet controller creates its pod through the webhook, as on a cluster. Made through the API server's
    defaults, as ``kubectl apply`` would: ``kubectl rollout undo`` to its first revision patches that ReplicaSet's
    template back in (kubectl's DeploymentRollbacker), defaulted again by the API server, and the controller takes
    that ReplicaSet up only if the two are equal (FindNewReplicaSet, EqualIgnoreHash: pkg/controller/deployment/util);
    a template stored undefaulted got a ReplicaSet of its own instead."""
    labels = {"app": name, "azure.workload.identity/use": "true"}
    _create(lab, "apps", "deployments", {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": service_account,
                    # Pod Security "restricted" compliant, so the ReplicaSet's pods are admitted there too
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": name, "image": image, "securityContext": {
                        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True}}],
                },
            },
        },
    }, namespace=namespace)


def _healthy(lab: Lab) -> None:
    kube, azure = lab.kube, lab.azure
    kube.runnable_images[PROBE_IMAGE] = [sys.executable, "-m", "probe"]
    kube.runnable_images[PYTHON_IMAGE] = [sys.executable]
    kube.runnable_images[HARNESS_IMAGE] = [sys.executable, "-m", "harness.console"]
    kube.idle_images.update(IDLE_IMAGES)
    # the migration proxy's images the webhook injects for inject-proxy-sidecar, which AKS's nodes pull from MCR:
    # proxy-init sets the pod's iptables and exits, the proxy listens for the app's IMDS requests; the lab's pods
    # have no IMDS to stand in for, so neither runs a process (proxy-init completes at once)
    registry = kube.webhook.proxy_image_registry
    kube.idle_images.update({f"{registry}/proxy-init", f"{registry}/proxy"})
    admin = kube.add_user("clusterAdmin_dev-kubernetes-rg_" + CLUSTER_NAME, groups=["system:masters"])
    lab.credentials["kube_admin_token"] = admin.token

    # Azure: the directory and the subscription
    azure.add_tenant(lab.tenant_id, "Contoso Lab", "contosolab.onmicrosoft.com")
    azure.add_resource_group(CLUSTER_RESOURCE_GROUP)
    azure.add_resource_group(IDENTITY_RESOURCE_GROUP)
    subscription_scope = f"/subscriptions/{lab.subscription_id}"

    shared = azure.add_subscription(SHARED_IDENTITY_SUBSCRIPTION)
    azure.add_resource_group(SHARED_IDENTITY_RESOURCE_GROUP, subscription_id=shared.subscription_id)

    # The harness reads (ARM Reader in both subscriptions, Graph Application.Read.All); the admin may change
    # everything a person fixing the lab's Azure side would (Owner, Graph Application.ReadWrite.All).
    harness_app = azure.add_app("wi-harness")
    azure.assign_role(harness_app, "Reader", subscription_scope)
    azure.assign_role(harness_app, "Reader", shared.resource_id)
    harness_app.graph_permissions.add("Application.Read.All")
    admin_app = azure.add_app("lab-admin")
    azure.assign_role(admin_app, "Owner", subscription_scope)
    azure.assign_role(admin_app, "Owner", shared.resource_id)
    # AppRoleAssignment.ReadWrite.All: to grant (and revoke) application permissions, the harness's included
    admin_app.graph_permissions.update({"Application.ReadWrite.All", "Directory.Read.All",
                                        "AppRoleAssignment.ReadWrite.All"})
    lab.credentials["harness"] = {"client_id": harness_app.client_id, "client_secret": harness_app.add_secret()}
    lab.credentials["admin"] = {"client_id": admin_app.client_id, "client_secret": admin_app.add_secret()}

    from lab.azure.world import ManagedCluster, StorageAccount, Vault

    node_group = f"MC_{CLUSTER_RESOURCE_GROUP}_{CLUSTER_NAME}_eastus"
    azure.add_resource_group(node_group)
    kubelet_identity = azure.add_identity(f"{CLUSTER_NAME}-agentpool", node_group)
    cluster = ManagedCluster(
        name=CLUSTER_NAME, subscription_id=lab.subscription_id, resource_group=CLUSTER_RESOURCE_GROUP,
        location="eastus", issuer_url=lab.issuer_url, kubelet_identity=kubelet_identity,
        control_plane_identity=azure.add_identity(f"{CLUSTER_NAME}-identity", CLUSTER_RESOURCE_GROUP),
        kubernetes_version=kube.version["gitVersion"].lstrip("v"), node_resource_group=node_group,
    )
    azure.clusters[cluster.resource_id.lower()] = cluster

    # Workload 1: finance/backend-sa -> myWorkloadId -> Key Vault Secrets User on finance-kv
    backend_identity = azure.add_identity("myWorkloadId", IDENTITY_RESOURCE_GROUP)
    _federate(backend_identity, "fed-cred-backend", lab.issuer_url, "finance", "backend-sa")
    finance_vault = Vault(name="finance-kv", subscription_id=lab.subscription_id,
                          resource_group=IDENTITY_RESOURCE_GROUP, location="eastus", tenant_id=lab.tenant_id)
    finance_vault.set_secret("db-password", secrets.token_urlsafe(24))
    azure.vaults["finance-kv"] = finance_vault
    azure.assign_role(backend_identity, "Key Vault Secrets User", finance_vault.resource_id)
    platform_vault = Vault(name="platform-kv", subscription_id=lab.subscription_id,
                           resource_group=IDENTITY_RESOURCE_GROUP, location="eastus", tenant_id=lab.tenant_id)
    platform_vault.set_secret("admin-api-key", secrets.token_urlsafe(24))
    azure.vaults["platform-kv"] = platform_vault

    # Workload 2: orders/orders-sa -> ordersWorkloadId -> Storage Blob Data Reader on ordersdata
    orders_identity = azure.add_identity("ordersWorkloadId", IDENTITY_RESOURCE_GROUP)
    _federate(orders_identity, "fed-cred-orders", lab.issuer_url, "orders", "orders-sa")
    account = StorageAccount(name="ordersdata", subscription_id=lab.subscription_id,
                             resource_group=IDENTITY_RESOURCE_GROUP, location="eastus")
    account.containers["reports"] = {"daily.csv": b"order_id,amount\n1001,42.00\n1002,17.50\n"}
    azure.storage_accounts["ordersdata"] = account
    azure.assign_role(orders_identity, "Storage Blob Data Reader", account.resource_id)

    # Cluster side
    _core_objects(lab)
    _namespace(lab, "finance")
    _namespace(lab, "orders", {"pod-security.kubernetes.io/enforce": "restricted"})
    _service_account(lab, "finance", "backend-sa", backend_identity.client_id)
    _service_account(lab, "orders", "orders-sa", orders_identity.client_id)
    _deployment(lab, "finance", "backend", "backend-sa", IDLE_IMAGES[0] + ":1.4.2")
    _deployment(lab, "orders", "orders-api", "orders-sa", IDLE_IMAGES[1] + ":2.0.1")

    lab.extra["workloads"] = [
        {
            "namespace": "finance", "service_account": "backend-sa", "client_id": backend_identity.client_id,
            "identity_resource_id": backend_identity.resource_id,
            "access": [
                # each vault listens on a port of its own (its URL names no vault): "name" names the check
                {"kind": "keyvault_secret", "vault_url": lab.vault_url("finance-kv"), "name": "finance-kv",
                 "secret": "db-password", "expect": "allow"},
                {"kind": "keyvault_secret", "vault_url": lab.vault_url("platform-kv"), "name": "platform-kv",
                 "secret": "admin-api-key", "expect": "deny"},
            ],
        },
        {
            "namespace": "orders", "service_account": "orders-sa", "client_id": orders_identity.client_id,
            "identity_resource_id": orders_identity.resource_id,
            "access": [
                {"kind": "blob", "account_url": lab.blob_url("ordersdata"), "container": "reports",
                 "blob": "daily.csv", "expect": "allow"},
                {"kind": "keyvault_secret", "vault_url": lab.vault_url("finance-kv"), "name": "finance-kv",
                 "secret": "db-password", "expect": "deny"},
            ],
        },
    ]
    lab.extra["cluster"] = {"name": CLUSTER_NAME, "resource_group": CLUSTER_RESOURCE_GROUP}
    # The zero-build default: harness.yaml's probe runs python3 -m probe from a ConfigMap in the harness's stock
    # Python image (the lab runs any mcr.microsoft.com/.../python image); PROBE_IMAGE serves probe.mode image.
    lab.extra["probe"] = {"mode": "configmap"}


# ------------------------------------------------------------------ broken variants (one link each)

def _backend_identity(lab: Lab) -> ManagedIdentity:
    return next(i for i in lab.azure.identities.values() if i.name == "myWorkloadId")


def _issuer_without_slash(lab: Lab) -> None:
    _healthy(lab)
    _backend_identity(lab).federated_credentials["fed-cred-backend"].issuer = lab.issuer_url.rstrip("/")


def _wrong_subject(lab: Lab) -> None:
    _healthy(lab)
    _backend_identity(lab).federated_credentials["fed-cred-backend"].subject = (
        "system:serviceaccount:finance:backend")


def _sa_not_annotated(lab: Lab) -> None:
    _healthy(lab)
    store = lab.kube.store
    service_accounts = store.type_for("", "serviceaccounts")
    account = store.get(service_accounts, "finance", "backend-sa")
    # The classic typo: client_id instead of client-id, so the webhook injects no AZURE_CLIENT_ID.
    account["metadata"]["annotations"] = {
        "azure.workload.identity/client_id": account["metadata"]["annotations"]["azure.workload.identity/client-id"]}
    store.replace(service_accounts, account)


def _missing_role(lab: Lab) -> None:
    _healthy(lab)
    identity = _backend_identity(lab)
    for name, assignment in list(lab.azure.role_assignments.items()):
        if assignment.principal_id == identity.principal_id:
            del lab.azure.role_assignments[name]


def _webhook(mode: str) -> Callable[[Lab], None]:
    def build(lab: Lab) -> None:
        from lab.control import sync_webhook_objects

        _healthy(lab)
        lab.kube.webhook.mode = mode
        sync_webhook_objects(lab)
        if mode == "absent":  # the add-on is not installed: ARM says workload identity is off, too
            for cluster in lab.azure.clusters.values():
                cluster.workload_identity_enabled = False

    return build


def _egress_blocked(lab: Lab) -> None:
    _healthy(lab)
    lab.faults.egress_blocked.update({"entra"})  # a deny-egress-to-entra NetworkPolicy per namespace (lab.egress)
    # Denied connections are dropped, so each attempt waits out the probe's request timeout and timeouts are
    # retried: this scenario's harness.yaml asks for a short timeout and no retries, to show the finding quickly.
    lab.extra["probe"] = {"mode": "configmap", "request_timeout_seconds": 3, "retry_seconds": 0}


# ------------------------------------------------------------------ a migration from aad-pod-identity, half done
#
# Sources (Azure/aad-pod-identity at its archived HEAD, chart 4.1.18 / app v1.8.17; AKS docs
# use-azure-ad-pod-identity.md): the four CRDs of group aadpodidentity.k8s.io/v1 (charts/.../crds/crd.yaml), pods
# opting in with the label aadpodidbinding=<selector> (pkg/apis/aadpodidentity/v1/types.go CRDLabelKey), the
# chart's NMI DaemonSet "<name>-nmi" and MIC Deployment "<name>-mic" in the release namespace with its
# app.kubernetes.io labels (templates/_helper.tpl, nmi-daemonset.yaml, mic-deployment.yaml; the walkthrough
# installs the release in kube-system on AKS), its AzurePodIdentityExceptions "mic" (release namespace) and
# "aks-addon-exception" (kube-system; the AKS add-on adds the same one), AzureAssignedIdentity named
# "<pod>-<pod namespace>-<AzureIdentity>" in "default" when identities are not namespaced (pkg/mic/mic.go
# makeAssignedIDs, getAssignedIDName), and ARM's podIdentityProfile items {name, namespace, bindingSelector,
# identity: {resourceId, clientId, objectId}} and exceptions {name, namespace, podLabels} (the REST API models
# ManagedClusterPodIdentity / ManagedClusterPodIdentityException).

AAD_POD_IDENTITY_GROUP = "aadpodidentity.k8s.io"
POD_IDENTITY_LABEL = "aadpodidbinding"
USE_LABEL = "azure.workload.identity/use"
AAD_POD_IDENTITY_IMAGES = "mcr.microsoft.com/oss/azure/aad-pod-identity"
AAD_POD_IDENTITY_KINDS = (  # (plural, kind, printer columns of the upstream CRD)
    ("azureassignedidentities", "AzureAssignedIdentity", ()),
    ("azureidentities", "AzureIdentity", (("Type", ".spec.type"), ("ClientID", ".spec.clientID"))),
    ("azureidentitybindings", "AzureIdentityBinding",
     (("AzureIdentity", ".spec.azureIdentity"), ("Selector", ".spec.selector"))),
    ("azurepodidentityexceptions", "AzurePodIdentityException", ()),
)


@dataclass(frozen=True)
class LegacyIdentity:
    """One pod-managed identity of the ``migration`` scenario: its aad-pod-identity objects and how far its
    workload has moved to Workload ID. What the harness's coverage table must say follows from these fields."""

    namespace: str
    name: str  # the AzureIdentity; when made through ARM, the pod identity's name too
    binding: str  # the AzureIdentityBinding
    selector: str
    identity: str  # the managed identity (kind application: the app registration) behind it
    kind: str = "managed_identity"  # or "application": AzureIdentity type 1, a service principal
    through_arm: bool = False  # made by `az aks pod-identity add`: listed in ARM's podIdentityProfile
    service_account: str | None = None  # annotated with the identity's client id (None: not yet)
    federated: bool = False  # the identity has a federated credential for this cluster's issuer and that SA
    labelled_workload: str | None = None  # a Deployment labelled azure.workload.identity/use running as that SA
    legacy_pod: str | None = None  # a bare Pod still labelled aadpodidbinding=<selector>
    legacy_deployment: str | None = None  # a Deployment whose template still carries aadpodidbinding=<selector>
    legacy_service_account: str | None = None  # what the legacy pod or Deployment runs as


@dataclass(frozen=True)
class LegacyException:
    namespace: str
    name: str
    pod_labels: tuple[tuple[str, str], ...]
    through_arm: bool = False  # `az aks pod-identity exception add`: listed in ARM's podIdentityProfile


@dataclass(frozen=True)
class MigrationWorld:
    identities: tuple[LegacyIdentity, ...]
    exceptions: tuple[LegacyException, ...]
    chart_release: str = "aad-pod-identity"
    chart_namespace: str = "kube-system"
    chart_version: str = "4.1.18"
    image_tag: str = "v1.8.17"


MIGRATION = MigrationWorld(
    identities=(
        # migrated: the runbook's finance workload, which used pod identity with the same managed identity
        LegacyIdentity("finance", "backend-identity", "backend-identity-binding", "backend", "myWorkloadId",
                       through_arm=True, service_account="backend-sa", federated=True, labelled_workload="backend"),
        # not started: a bare pod still labelled aadpodidbinding, no annotation, no federated credential
        LegacyIdentity("payments", "payments-identity", "payments-identity-binding", "payments", "paymentsId",
                       through_arm=True, legacy_pod="payments-worker", legacy_service_account="payments-sa"),
        # half way: annotated and federated, but the Deployment's pods still use pod identity
        LegacyIdentity("reports", "reports-identity", "reports-binding", "reports", "reportsId",
                       service_account="reports-sa", federated=True, legacy_deployment="reports-api",
                       legacy_service_account="reports-sa"),
        # a service principal (app registration): annotated, pods labelled, but no federated credential yet
        LegacyIdentity("batch", "batch-identity", "batch-binding", "batch", "batch-app", kind="application",
                       service_account="batch-sa", labelled_workload="batch-runner"),
    ),
    exceptions=(
        LegacyException("kube-system", "aks-addon-exception", (("kubernetes.azure.com/managedby", "aks"),)),
        LegacyException("kube-system", "mic", (("app", "mic"), ("component", "mic"),
                                               ("app.kubernetes.io/component", "mic"))),
        LegacyException("payments", "metrics-exception", (("app", "metrics-agent"),), through_arm=True),
    ),
)


def _create(lab: Lab, group: str, plural: str, obj: dict[str, Any], namespace: str | None = None) -> None:
    """Through the API server's admission chain (defaults, validation), as ``kubectl apply`` would."""
    from lab.clock import rfc3339
    from lab.kube import admission

    store = lab.kube.store
    rt = store.type_for(group, plural)
    admitted, _ = admission.admit_create(lab, rt, obj, namespace or "", rfc3339())
    store.create(rt, admitted, namespace=namespace)


def _chart_labels(world: MigrationWorld, component: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": "aad-pod-identity", "app.kubernetes.io/instance": world.chart_release,
              "app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": f"aad-pod-identity-{world.chart_version}"}
    return {**labels, "app.kubernetes.io/component": component} if component else labels


def _helm_annotations(world: MigrationWorld) -> dict[str, str]:
    # Helm 3 marks every object of a release with these (what `helm list` and adoption rely on).
    return {"meta.helm.sh/release-name": world.chart_release, "meta.helm.sh/release-namespace": world.chart_namespace}


def _pod_identity_crds(lab: Lab, world: MigrationWorld) -> None:
    from lab.kube.resources import ensure_builtin_types

    for plural, kind, columns in AAD_POD_IDENTITY_KINDS:
        # The upstream CRDs carry full structural schemas; spec and status are kept as sent here (simplified).
        version: dict[str, Any] = {
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }
        if columns:
            version["additionalPrinterColumns"] = [
                *({"name": name, "type": "string", "jsonPath": path} for name, path in columns),
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ]
        _create(lab, "apiextensions.k8s.io", "customresourcedefinitions", {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{AAD_POD_IDENTITY_GROUP}", "labels": _chart_labels(world),
                         "annotations": {"api-approved.kubernetes.io": "unapproved"}},
            "spec": {"group": AAD_POD_IDENTITY_GROUP, "scope": "Namespaced", "versions": [version],
                     "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}},
        })
    ensure_builtin_types(lab.kube.store)  # serve the new kinds now, so the scenario can store their objects


def _pod_identity_components(lab: Lab, world: MigrationWorld) -> None:
    """The chart's NMI DaemonSet and MIC Deployment (standard mode), their images idle in the lab."""
    lab.kube.idle_images.update({f"{AAD_POD_IDENTITY_IMAGES}/nmi", f"{AAD_POD_IDENTITY_IMAGES}/mic"})
    for kind, plural, component in (("DaemonSet", "daemonsets", "nmi"), ("Deployment", "deployments", "mic")):
        selector = {"app.kubernetes.io/name": "aad-pod-identity", "app.kubernetes.io/instance": world.chart_release,
                    "app.kubernetes.io/component": component}
        labels = {**_chart_labels(world, component), **({"tier": "node"} if component == "nmi" else {})}
        spec: dict[str, Any] = {
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": f"aad-pod-identity-{component}",
                "containers": [{"name": component, "image": f"{AAD_POD_IDENTITY_IMAGES}/{component}:{world.image_tag}",
                                "args": ["--http-probe-port=8085" if component == "nmi" else "--leader-elect"]}],
                "nodeSelector": {"kubernetes.io/os": "linux"},
            }},
        }
        if component == "nmi":
            spec["template"]["spec"].update({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"})
        else:
            spec["replicas"] = 2
        _service_account(lab, world.chart_namespace, f"aad-pod-identity-{component}", None)
        _create(lab, "apps", plural, {
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": f"aad-pod-identity-{component}", "namespace": world.chart_namespace,
                         "labels": labels, "annotations": _helm_annotations(world)},
            "spec": spec,
        }, world.chart_namespace)


def _legacy_deployment(lab: Lab, namespace: str, name: str, service_account: str, labels: dict[str, str]) -> None:
    _create(lab, "apps", "deployments", {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name, **labels}},
            "spec": {"serviceAccountName": service_account,
                     "containers": [{"name": name, "image": f"{IDLE_IMAGES[0]}:legacy"}]},
        }},
    }, namespace=namespace)


def _migration(lab: Lab) -> None:
    from lab.kube.node import NODE_NAME

    _healthy(lab)
    world, azure, store = MIGRATION, lab.azure, lab.kube.store
    cluster = next(iter(azure.clusters.values()))
    _pod_identity_crds(lab, world)
    _pod_identity_components(lab, world)
    existing = {i.name: i for i in azure.identities.values()}
    for legacy in world.identities:
        if legacy.namespace not in {"finance", "orders"}:
            _namespace(lab, legacy.namespace)
        if legacy.kind == "application":
            principal: Any = azure.add_app(legacy.identity)
            spec: dict[str, Any] = {"type": 1, "clientID": principal.client_id, "tenantID": lab.tenant_id,
                                    "clientPassword": {"name": f"{legacy.name}-secret", "namespace": legacy.namespace}}
        else:
            principal = existing.get(legacy.identity) or azure.add_identity(legacy.identity, IDENTITY_RESOURCE_GROUP)
            spec = {"type": 0, "resourceID": principal.resource_id, "clientID": principal.client_id}
        _create(lab, AAD_POD_IDENTITY_GROUP, "azureidentities", {
            "apiVersion": f"{AAD_POD_IDENTITY_GROUP}/v1", "kind": "AzureIdentity",
            "metadata": {"name": legacy.name, "namespace": legacy.namespace}, "spec": spec}, legacy.namespace)
        binding = {"apiVersion": f"{AAD_POD_IDENTITY_GROUP}/v1", "kind": "AzureIdentityBinding",
                   "metadata": {"name": legacy.binding, "namespace": legacy.namespace},
                   "spec": {"azureIdentity": legacy.name, "selector": legacy.selector}}
        _create(lab, AAD_POD_IDENTITY_GROUP, "azureidentitybindings", binding, legacy.namespace)
        if legacy.through_arm:
            cluster.pod_identities.append({
                "name": legacy.name, "namespace": legacy.namespace, "bindingSelector": legacy.selector,
                "identity": {"resourceId": principal.resource_id, "clientId": principal.client_id,
                             "objectId": principal.principal_id}})
        account = store.find(store.type_for("", "serviceaccounts"), legacy.namespace, legacy.service_account or "")
        if legacy.service_account and account is None:
            _service_account(lab, legacy.namespace, legacy.service_account, principal.client_id)
        if legacy.federated and legacy.service_account and not any(
                c.subject == f"system:serviceaccount:{legacy.namespace}:{legacy.service_account}"
                for c in principal.federated_credentials.values()):
            _federate(principal, f"fed-cred-{legacy.namespace}", lab.issuer_url, legacy.namespace,
                      legacy.service_account)
        if legacy.legacy_service_account and legacy.legacy_service_account != legacy.service_account:
            _service_account(lab, legacy.namespace, legacy.legacy_service_account, None)
        if legacy.labelled_workload and legacy.labelled_workload not in ("backend", "orders-api"):
            _legacy_deployment(lab, legacy.namespace, legacy.labelled_workload, legacy.service_account or "default",
                               {USE_LABEL: "true"})
        if legacy.legacy_deployment:
            _legacy_deployment(lab, legacy.namespace, legacy.legacy_deployment,
                               legacy.legacy_service_account or "default", {POD_IDENTITY_LABEL: legacy.selector})
        if legacy.legacy_pod:
            _create(lab, "", "pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": legacy.legacy_pod, "namespace": legacy.namespace,
                             "labels": {"app": legacy.legacy_pod, POD_IDENTITY_LABEL: legacy.selector}},
                "spec": {"serviceAccountName": legacy.legacy_service_account or "default",
                         "containers": [{"name": "worker", "image": f"{IDLE_IMAGES[1]}:legacy"}]},
            }, legacy.namespace)
            # What MIC made for that pod. The lab runs no MIC: no other pod (the reports Deployment's) gets one.
            _create(lab, AAD_POD_IDENTITY_GROUP, "azureassignedidentities", {
                "apiVersion": f"{AAD_POD_IDENTITY_GROUP}/v1", "kind": "AzureAssignedIdentity",
                "metadata": {"name": f"{legacy.legacy_pod}-{legacy.namespace}-{legacy.name}", "namespace": "default",
                             "labels": {"nodename": NODE_NAME}},
                "spec": {"azureIdentityRef": {"metadata": {"name": legacy.name, "namespace": legacy.namespace},
                                              "spec": spec},
                         "azureBindingRef": {"metadata": binding["metadata"], "spec": binding["spec"]},
                         "pod": legacy.legacy_pod, "podNamespace": legacy.namespace, "nodename": NODE_NAME},
                "status": {"status": "Assigned", "availableReplicas": 1},
            }, "default")
    for exception in world.exceptions:
        labels = dict(exception.pod_labels)
        _create(lab, AAD_POD_IDENTITY_GROUP, "azurepodidentityexceptions", {
            "apiVersion": f"{AAD_POD_IDENTITY_GROUP}/v1", "kind": "AzurePodIdentityException",
            "metadata": {"name": exception.name, "namespace": exception.namespace}, "spec": {"podLabels": labels},
        }, exception.namespace)
        if exception.through_arm:
            cluster.pod_identity_exceptions.append(
                {"name": exception.name, "namespace": exception.namespace, "podLabels": labels})
    cluster.pod_identity_enabled = True


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("healthy", "The runbook's world: two workloads whose whole chain holds (default).", _healthy),
        Scenario("issuer-without-slash", "finance/backend-sa's federated credential names the issuer without "
                 "its trailing slash (AADSTS700211).", _issuer_without_slash),
        Scenario("wrong-subject", "finance/backend-sa's federated credential has a subject that names another "
                 "service account (AADSTS700213).", _wrong_subject),
        Scenario("sa-not-annotated", "finance/backend-sa carries azure.workload.identity/client_id (a typo) "
                 "instead of client-id: no AZURE_CLIENT_ID is injected.", _sa_not_annotated),
        Scenario("missing-role", "myWorkloadId has no role on the vault: the exchange works, the secret read "
                 "is ForbiddenByRbac.", _missing_role),
        Scenario("webhook-down", "The workload identity webhook is installed but not answering: labelled "
                 "pods are rejected.", _webhook("down")),
        Scenario("webhook-absent", "Workload identity is not enabled: no webhook, pods are admitted "
                 "unmutated.", _webhook("absent")),
        Scenario("egress-blocked", "Pods cannot open connections to Entra ID (a NetworkPolicy or firewall "
                 "that rejects them).", _egress_blocked),
        Scenario("migration", "Half-way from aad-pod-identity: its CRDs, objects, NMI and MIC, a pod labelled "
                 "aadpodidbinding and the AKS add-on's podIdentityProfile remain; of four identities one is "
                 "migrated, three are not (see MIGRATION).", _migration),
    )
}


def apply(lab: Lab, name: str) -> None:
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}")
    scenario.build(lab)
    _settle(lab)


def _settle(lab: Lab) -> None:
    """What a scenario builds existed long before the lab started: propagation delays apply only to changes
    made while the lab runs."""
    for assignment in lab.azure.role_assignments.values():
        assignment.created_at = 0.0
    for principal in lab.azure.principals():
        for credential in principal.federated_credentials.values():
            credential.created_at = 0.0


def describe() -> list[dict[str, Any]]:
    return [{"name": s.name, "description": s.description} for s in SCENARIOS.values()]
