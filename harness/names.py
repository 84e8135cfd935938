"""Names the azure-workload-identity webhook, AKS and the harness itself put on objects (one place)."""

from __future__ import annotations

TOKEN_AUDIENCE = "api://AzureADTokenExchange"
USE_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
EXPIRATION_ANNOTATION = "azure.workload.identity/service-account-token-expiration"
SKIP_CONTAINERS_ANNOTATION = "azure.workload.identity/skip-containers"
INJECTED_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")

WEBHOOK_NAME = "mutation.azure-workload-identity.io"
MWC_PREFIX = "azure-wi-webhook"
WEBHOOK_DEPLOYMENT = "azure-wi-webhook-controller-manager"
WEBHOOK_SERVICE = "azure-wi-webhook-webhook-service"
WEBHOOK_MWC = "azure-wi-webhook-mutating-webhook-configuration"
WEBHOOK_CONFIG_MAP = "azure-wi-webhook-config"  # the manager's envFrom: AZURE_TENANT_ID, AZURE_ENVIRONMENT
WEBHOOK_CERT_SECRET = "azure-wi-webhook-server-cert"  # cmd/webhook/main.go secretName (cert-controller's)
WEBHOOK_SERVICE_ACCOUNT = "azure-wi-webhook-admin"  # the chart's and the add-on's
WEBHOOK_NAMESPACES = ("kube-system", "azure-workload-identity-system")  # AKS add-on, OSS install
WEBHOOK_SYSTEM_LABEL = "azure-workload-identity.io/system"  # on the webhook's own pods (chart and add-on): "true"
V16_VOLUME_PREFIX = "azure-workload-identity-reserved-"
V15_VOLUME_NAME = "azure-identity-token"
DEFAULT_EXPIRATION = 3600

# KubeFailure.reason (status 0) when the API server answered with a TLS certificate the kubeconfig's CA does not sign
UNTRUSTED_CERTIFICATE = "CertificateUntrusted"
# in a Fetched NETWORK_ERROR's text when the host answered with a certificate the harness could not verify
# (collect.arm_api network_failure_cause)
UNVERIFIED_CERTIFICATE = "TLS certificate verification failed"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "wi-harness"
RUN_ID_LABEL = "wi-harness/run-id"
PROBE_CONTAINER = "probe"
PROBE_SOURCE_VOLUME = "wi-probe-source"  # probe.mode configmap: the run's ConfigMap holding the probe's source
PROBE_CA_VOLUME = "wi-probe-ca"  # probe.ca_configmap
PROBE_SCHEMA = "wi-probe/v1"
TERMINAL_PHASES = ("Succeeded", "Failed")
# Container waiting reasons that will not resolve by themselves within a probe's lifetime.
FATAL_WAITING = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImageNeverPull",
)

# Pod-managed identity (Azure/aad-pod-identity, pkg/apis/aadpodidentity/v1; its chart's _helper.tpl and
# deploy/infra manifests)
POD_IDENTITY_GROUP = "aadpodidentity.k8s.io"
POD_IDENTITY_VERSION = "v1"
POD_IDENTITY_LABEL = "aadpodidbinding"  # a pod opts in with aadpodidbinding: <AzureIdentityBinding selector>
POD_IDENTITY_PLURALS = (
    "azureidentities",
    "azureidentitybindings",
    "azurepodidentityexceptions",
    "azureassignedidentities",
)
POD_IDENTITY_IMAGE_PATH = "/aad-pod-identity/"  # mcr.microsoft.com/oss/azure/aad-pod-identity/{nmi,mic}:TAG

# PodFacts.waiting_message of a probe pod someone else deleted before it finished (kubectl delete, an eviction or a
# drain, its namespace's deletion): what the collector saw, then how it went (harness/collect/probe_pods.py)
POD_DELETED = "the pod was deleted before it finished"
EVICTED = "evicted"  # "...: evicted (DisruptionTarget ...)"
NAMESPACE_DELETED = "its namespace was deleted"
NAMESPACE_DELETING = "its namespace is being deleted"
