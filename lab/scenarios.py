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
    ReplicaSet controller creates its pod through the webhook, as on a cluster."""
    store = lab.kube.store
    labels = {"app": name, "azure.workload.identity/use": "true"}
    store.create(store.type_for("apps", "deployments"), {
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
    kube.idle_images.update(IDLE_IMAGES)
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
    admin_app.graph_permissions.update({"Application.ReadWrite.All", "Directory.Read.All"})
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
                {"kind": "keyvault_secret", "vault_url": lab.vault_url("finance-kv"), "secret": "db-password",
                 "expect": "allow"},
                {"kind": "keyvault_secret", "vault_url": lab.vault_url("platform-kv"), "secret": "admin-api-key",
                 "expect": "deny"},
            ],
        },
        {
            "namespace": "orders", "service_account": "orders-sa", "client_id": orders_identity.client_id,
            "identity_resource_id": orders_identity.resource_id,
            "access": [
                {"kind": "blob", "account_url": lab.blob_url("ordersdata"), "container": "reports",
                 "blob": "daily.csv", "expect": "allow"},
                {"kind": "keyvault_secret", "vault_url": lab.vault_url("finance-kv"), "secret": "db-password",
                 "expect": "deny"},
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
    lab.faults.egress_blocked.update({"entra"})


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
