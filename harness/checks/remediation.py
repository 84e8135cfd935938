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


def annotate_sa(namespace: str, service_account: str, client_id: str | None) -> str:
    return (
        f"kubectl annotate serviceaccount -n {q(namespace)} {q(service_account)} "
        f"azure.workload.identity/client-id={q(client_id or '<client-id>')} --overwrite"
    )


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
