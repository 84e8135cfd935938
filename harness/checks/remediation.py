"""The commands a person runs to fix a finding (kubectl / az), with placeholders where facts are missing."""

from __future__ import annotations

import re
import shlex
import urllib.parse

from harness.config import AzureConfig
from harness.names import TOKEN_AUDIENCE

_IDENTITY_RE = re.compile(
    r"/resourcegroups/([^/]+)/providers/microsoft\.managedidentity/userassignedidentities/"
    r"([^/]+)$",
    re.IGNORECASE,
)


def q(value: str) -> str:
    return shlex.quote(value)


def identity_name_rg(resource_id: str | None) -> tuple[str, str]:
    match = _IDENTITY_RE.search(resource_id or "")
    return (match.group(2), match.group(1)) if match else ("<identity-name>", "<identity-resource-group>")


def cluster_name_rg(azure: AzureConfig | None) -> tuple[str, str]:
    return (
        (azure.cluster_name, azure.resource_group)
        if azure
        else ("<cluster-name>", "<cluster-resource-group>")
    )


def aks(azure: AzureConfig | None, flags: str) -> str:
    name, rg = cluster_name_rg(azure)
    return f"az aks update --resource-group {q(rg)} --name {q(name)} {flags}"


def show_issuer(azure: AzureConfig | None) -> str:
    name, rg = cluster_name_rg(azure)
    return f"az aks show --resource-group {q(rg)} --name {q(name)} --query oidcIssuerProfile.issuerUrl -o tsv"


def kube_unreachable(context: str | None, azure: AzureConfig | None) -> list[str]:
    name, rg = cluster_name_rg(azure)
    state = "{power: powerState.code, fqdn: fqdn, private: apiServerAccessProfile.enablePrivateCluster}"
    return [
        f"kubectl --context {q(context)} cluster-info" if context else "kubectl cluster-info",
        f"az aks show --resource-group {q(rg)} --name {q(name)} --query {q(state)} -o json",
        "a private cluster or authorized IP ranges: run the harness from a network that reaches the API "
        "server, or inside the cluster (manifests/harness-job.yaml.j2)",
    ]


def kube_credentials(azure: AzureConfig | None) -> list[str]:
    name, rg = cluster_name_rg(azure)
    return [
        f"az aks get-credentials --resource-group {q(rg)} --name {q(name)} --overwrite-existing",
        "kubelogin convert-kubeconfig -l azurecli   # Entra-integrated clusters",
    ]


def harness_credential(azure: AzureConfig | None) -> list[str]:
    """How to repair the harness's OWN identity (azure.credential in harness.yaml, else DefaultAzureCredential)."""
    if azure is None:
        return []
    credential = azure.credential
    if credential is None:
        audience = azure.cloud.endpoints.resource_manager_audience
        return [
            "az login   # DefaultAzureCredential: or export AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET",
            f"az account get-access-token --tenant {q(azure.tenant_id)} --resource {q(audience)} -o none",
        ]
    source = (
        f"the file {credential.client_secret_file}"
        if credential.client_secret_file
        else f"${credential.client_secret_env}"
    )
    return [
        f"az ad app credential list --id {q(credential.client_id)} -o table   # expired? (endDateTime)",
        f"put the client secret's VALUE (not its ID) for app {credential.client_id} in {source}",
    ]


def grant_harness_reader(azure: AzureConfig | None) -> str:
    client_id = azure.credential.client_id if azure and azure.credential else "<harness-client-id>"
    subscription = azure.subscription_id if azure else "<subscription-id>"
    return f"az role assignment create --assignee {q(client_id)} --role Reader --scope /subscriptions/{subscription}"


def annotate_sa(namespace: str, service_account: str, client_id: str | None) -> str:
    return (
        f"kubectl annotate serviceaccount -n {q(namespace)} {q(service_account)} "
        f"azure.workload.identity/client-id={q(client_id or '<client-id>')} --overwrite"
    )


def annotate_sa_tenant(namespace: str, service_account: str, tenant_id: str | None) -> str:
    return (
        f"kubectl annotate serviceaccount -n {q(namespace)} {q(service_account)} "
        f"azure.workload.identity/tenant-id={q(tenant_id or '<tenant-id>')} --overwrite"
    )


def node_clock(node: str | None) -> list[str]:
    """Entra judges the token's nbf/exp by its own clock: compare the node's with the 'Current time' it quoted."""
    return [
        f"kubectl debug node/{q(node or '<node>')} -it --image=busybox -- date -u",
        "check the node's time sync (chrony / systemd-timesyncd) and that the kubelet refreshes the token",
    ]


def restart_pods(namespace: str) -> str:
    return (
        f"kubectl rollout restart deployment -n {q(namespace)} <deployment>   "
        "# the webhook acts on pod CREATE only"
    )


def federated_credential(verb: str, resource_id: str | None, name: str, issuer: str, subject: str) -> str:
    identity, rg = identity_name_rg(resource_id)
    return (
        f"az identity federated-credential {verb} --name {q(name)} --identity-name {q(identity)} "
        f"--resource-group {q(rg)} --issuer {q(issuer)} --subject {q(subject)} --audiences {TOKEN_AUDIENCE}"
    )


def fic_name(namespace: str, service_account: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", f"{namespace}-{service_account}")[:120]


def resource_name_from_url(url: str) -> str:
    """finance-kv from https://finance-kv.vault.azure.net/ (or from a path-style URL https://host:port/finance-kv/)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if re.match(r"^\d+\.\d+\.\d+\.\d+$", host) or host in ("localhost",) or "." not in host:
        segments = [s for s in parts.path.split("/") if s]
        return segments[0] if segments else "<name>"
    return host.split(".", 1)[0]


def egress_test(namespace: str, url: str) -> list[str]:
    """Can a pod in ``namespace`` open a connection to ``url`` at all (any HTTP status means yes)?"""
    return [
        f"kubectl run -n {q(namespace)} egress-test --rm -it --image=curlimages/curl -- "
        f"curl -sS -o /dev/null -w '%{{http_code}}' {q(url)}",
        "check NetworkPolicies, the egress firewall and proxy settings",
    ]


def grant_role(principal_id: str | None, role: str, scope: str) -> str:
    return (
        f"az role assignment create --assignee-object-id {q(principal_id or '<principal-id>')} "
        f"--assignee-principal-type ServicePrincipal --role {q(role)} --scope {scope}"
    )


def keyvault_scope(vault_url: str) -> str:
    return f'"$(az keyvault show --name {q(resource_name_from_url(vault_url))} --query id -o tsv)"'


def blob_scope(account_url: str, container: str) -> str:
    account = q(resource_name_from_url(account_url))
    show = f"az storage account show --name {account} --query id -o tsv"
    return f'"$({show})/blobServices/default/containers/{container}"'


def list_roles(principal_id: str | None) -> str:
    return f"az role assignment list --assignee {q(principal_id or '<principal-id>')} --all -o table"
