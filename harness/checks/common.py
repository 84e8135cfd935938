"""Findings several checks share: a Kubernetes API call or an ARM read that failed (the code names WHY it
failed: unreachable, unauthenticated, forbidden, the harness's own credential, Azure out of the harness's
network reach), and a probe report that lacks a step."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from harness.checks import remediation as fix
from harness.checks.model import ERROR, Finding, Outcome, failed
from harness.commands import Command, Step, advice
from harness.config import AzureConfig
from harness.facts import CREDENTIAL_ERROR, NETWORK_ERROR, ClusterFacts, Fetched, KubeFailure
from harness.names import UNTRUSTED_CERTIFICATE, UNVERIFIED_CERTIFICATE


def is_graph_call(fetched: Fetched) -> bool:
    """A call to Microsoft Graph (its versioned paths, /v1.0/ or /beta/), not to ARM: which of the harness's reads
    a refusal hit decides whose permission is missing and which kind of identity a fix is for."""
    path = urlsplit(fetched.url or "").path
    return "/v1.0/" in path or "/beta/" in path


def kube_call_failed(
    error: KubeFailure,
    layer: str,
    action: str,
    permission_check: Command,
    cluster: ClusterFacts,
    azure: AzureConfig | None,
) -> Outcome:
    """The check could not tell because the harness could not ``action`` (e.g. "read ServiceAccount a/b")."""
    finding = kube_failure_finding(error, layer, action, permission_check, cluster, azure)
    # said first: the summary line shows the check's
    stopped = finding.evidence.get("powerState") == "Stopped" or "clusterGone" in finding.evidence
    return failed(finding.message if stopped else f"could not {action}: {error.message}", {"error": asdict(error)},
                  finding)


def kube_failure_finding(
    error: KubeFailure,
    layer: str,
    action: str,
    permission_check: Command,
    cluster: ClusterFacts,
    azure: AzureConfig | None,
) -> Finding:
    """Why the API server did not let the harness ``action``: unreachable (status 0), unauthenticated (401),
    forbidden (403, with the ``kubectl auth can-i`` that tells about RBAC) or another refusal."""
    evidence: dict[str, Any] = {"error": asdict(error), "server": cluster.server, "context": cluster.context}
    if error.status == 0 and error.reason == UNTRUSTED_CERTIFICATE:  # it answered: its certificate is the matter
        steps = _untrusted_api_server_steps(cluster, azure)
        said = ""
        if local_accounts_disabled(cluster) and _is_local_account(kube_credential(cluster)):
            # az aks rotate-certs rotates the Cluster CA (learn.microsoft.com/azure/aks/certificate-rotation), which
            # AKS's local-accounts page asks for after --disable-local-accounts: the kubeconfig written again must
            # then hold credentials other than a local account's, which az no longer issues
            evidence["disableLocalAccounts"] = True
            entra = bool(_arm_properties(cluster).get("aadProfile"))
            said = (" (local accounts are disabled on this cluster, ARM's properties.disableLocalAccounts is true, and "
                    "the kubeconfig signs in as one: written again, it needs credentials AKS still issues)")
            steps = [steps[0], *_local_accounts_steps(azure, kubeconfig_file(cluster), cluster.context, entra)]
        return Finding(
            "KUBE_UNREACHABLE",  # no connection to use: as unreachable as a refused one, for another reason
            ERROR,
            layer,
            f"could not {action}: {error.message}{said}",
            evidence,
            steps,
        )
    gone = cluster_gone(cluster)
    if error.status == 0 and gone is not None:  # no network check finds an API server that was deleted
        evidence["clusterGone"] = gone.code or str(gone.status)
        group_gone = gone.code == "ResourceGroupNotFound"
        what = "its resource group is gone" if group_gone else "ARM has no such managed cluster"
        return Finding(
            "KUBE_UNREACHABLE",
            ERROR,
            layer,
            f"could not {action}: the cluster is deleted ({what}: ARM answers {gone.status} {gone.code or ''}"
            f"{': ' + gone.error if gone.error else ''}), and its API server with it: {error.message}",
            evidence,
            fix.cluster_gone(azure, group_gone),
        )
    if error.status == 0:  # the collector's message names the API server and why no answer came
        power = power_state(cluster)
        stopped = power == "Stopped"
        if power:
            evidence["powerState"] = power
        why = ("the cluster is stopped (ARM's powerState is Stopped: az aks stop removed its control plane), so no "
               "API server answers until it is started: " if stopped else "")
        return Finding(
            "KUBE_UNREACHABLE",
            ERROR,
            layer,
            f"could not {action}: {why}{error.message}",
            evidence,
            fix.kube_unreachable(cluster.context, azure, stopped=stopped),
        )
    if error.status == 401:
        refused, steps = _refused_credentials(cluster, azure)
        if local_accounts_disabled(cluster) and _is_local_account(kube_credential(cluster)):
            evidence["disableLocalAccounts"] = True
            entra = bool(_arm_properties(cluster).get("aadProfile"))
            source = kube_credential(cluster)
            if source.get("kind") == "client-certificate":
                refused = f"the kubeconfig's client certificate for user {source.get('user') or '<user>'}"
            refused += (", an AKS local account: local accounts are disabled on this cluster (ARM's "
                        "properties.disableLocalAccounts is true: az aks update --disable-local-accounts), and AKS "
                        "refuses the local credentials issued before once az aks rotate-certs ran")
            if not entra:
                refused += ("; the cluster has no Entra integration (no aadProfile), so az aks get-credentials "
                            "gives no credential at all ('Getting static credential is not allowed')")
            steps = _local_accounts_steps(azure, kubeconfig_file(cluster), cluster.context, entra)
        return Finding(
            "KUBE_UNAUTHORIZED",
            ERROR,
            layer,
            f"could not {action}: the API server refused {refused}: {error.message}",
            {**evidence, "credential": kube_credential(cluster)} if kube_credential(cluster) else evidence,
            steps,
        )
    if error.status == 403:
        return Finding(
            "KUBE_FORBIDDEN",
            ERROR,
            layer,
            f"could not {action}: the harness's identity is not allowed to: {error.message}",
            evidence,
            _forbidden_steps(error.message, permission_check),
        )
    return Finding(
        "KUBE_API_ERROR",
        ERROR,
        layer,
        f"could not {action}: {error.status} {error.reason}: {error.message}",
        evidence,
        [],
    )


def cluster_gone(cluster: ClusterFacts) -> Fetched | None:
    """ARM's 404 for the managed cluster harness.yaml names (ResourceNotFound, or ResourceGroupNotFound after az group
    delete): the cluster is deleted, not out of the network's reach."""
    fetched = cluster.arm_cluster
    return fetched if fetched is not None and fetched.status == 404 else None


def _arm_properties(cluster: ClusterFacts) -> dict[str, Any]:
    body = (cluster.arm_cluster.body if cluster.arm_cluster and cluster.arm_cluster.ok else None) or {}
    properties = body.get("properties") if isinstance(body, dict) else None
    return properties if isinstance(properties, dict) else {}


def local_accounts_disabled(cluster: ClusterFacts) -> bool:
    """ARM's properties.disableLocalAccounts of the managed cluster is true (az aks update --disable-local-accounts;
    learn.microsoft.com/azure/aks/manage-local-accounts-managed-azure-ad)."""
    return _arm_properties(cluster).get("disableLocalAccounts") is True


def _is_local_account(credential: dict[str, Any]) -> bool:
    """A kubeconfig user that signs in as an AKS local account: a client certificate (clusterAdmin / clusterUser
    of az aks get-credentials on a cluster with local accounts) or a static token that is no ServiceAccount's.
    An exec plugin (kubelogin) signs in through Entra and a ServiceAccount token through the cluster's issuer:
    disabling local accounts refuses neither. Not told (kind absent): assumed local, the kubeconfig that az aks
    get-credentials --admin writes being the common one."""
    kind = credential.get("kind")
    if kind in ("exec", "in-cluster"):
        return False
    return not (kind in ("token", "tokenFile") and credential.get("service_account"))


def power_state(cluster: ClusterFacts) -> str | None:
    """ARM's powerState.code of the managed cluster (Running, Stopped), when the harness read it."""
    body = (cluster.arm_cluster.body if cluster.arm_cluster else None) or {}
    code = ((body.get("properties") or {}).get("powerState") or {}).get("code")
    return code if isinstance(code, str) else None


def kube_credential(cluster: ClusterFacts) -> dict[str, Any]:
    """How the kubeconfig's user signs in (collect.kube_api credential_source, kept beside the SelfSubjectReview's
    user): {kind, user, service_account, expires_at, kubeconfig}; {} when not told."""
    credential = (cluster.run_by_kubernetes or {}).get("credential")
    return credential if isinstance(credential, dict) else {}


def kubeconfig_file(cluster: ClusterFacts) -> str | None:
    """harness.yaml's cluster.kubeconfig (the file the run read, which a printed fix must write); None: the
    shell's own ($KUBECONFIG, ~/.kube/config)."""
    path = kube_credential(cluster).get("kubeconfig")
    return path if isinstance(path, str) and path else None


def _refused_credentials(cluster: ClusterFacts, azure: AzureConfig | None) -> tuple[str, list[Step]]:
    """What the API server refused (a static token in the kubeconfig is not an Entra sign-in: az and kubelogin do
    not renew it) and how to get credentials it takes, written into the kubeconfig the harness reads."""
    source = kube_credential(cluster)
    user = source.get("user")
    kubeconfig = kubeconfig_file(cluster)
    written = fix.kube_credentials(azure, kubeconfig, cluster.context)
    if source.get("kind") not in ("token", "tokenFile"):
        return "the kubeconfig's credentials", written
    where = kubeconfig or "the kubeconfig"
    held = f"the file {source.get('file')} names" if source.get("kind") == "tokenFile" else f"{where} holds"
    what = f"the static bearer token {held} for user {user}"
    account = str(source.get("service_account") or "")
    expires = source.get("expires_at")
    if account:
        what += f" (ServiceAccount {account}"
        if isinstance(expires, int) and expires <= cluster.collected_at:
            what += f", expired {datetime.fromtimestamp(expires, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})"
        else:
            what += ": revoked, its ServiceAccount or Secret deleted, or another cluster's)"
    if not account:
        return what, [advice(f"a static token is not renewed by az or kubelogin: get a new one from whoever issued "
                             f"it and set it with kubectl config set-credentials {user or '<user>'} --token ..."),
                      written[0]]
    namespace, name = account.split("/", 1)
    steps: list[Step] = [*fix.new_service_account_token(namespace, name, user, kubeconfig)]
    if source.get("kind") == "tokenFile":
        steps = [steps[0], advice(f"write $TOKEN into {source.get('file')} (the user's tokenFile)")]
    return what, [*steps, advice("or use your own AKS credentials instead of the token:"), written[0]]


def _local_accounts_steps(azure: AzureConfig | None, kubeconfig: str | None, context: str | None,
                          entra: bool) -> list[Step]:
    """Credentials an API server whose local accounts are disabled takes: Entra ones (az aks get-credentials without
    --admin, then kubelogin), which only an Entra-integrated cluster issues; or local accounts enabled again
    (az aks update --enable-local-accounts; learn.microsoft.com/azure/aks/manage-local-accounts-managed-azure-ad).
    On a cluster without Entra integration az refuses every static credential ('Getting static credential is not
    allowed because this cluster is set to disable local accounts.')."""
    enable = fix.aks_update(azure, "--enable-local-accounts",
                        note="a person decides: local accounts were disabled on purpose (an unaudited way in)")
    if not entra:
        return [enable, fix.get_credentials(azure, kubeconfig, context),
                advice("or integrate the cluster with Entra ID (az aks update --enable-aad "
                       "--aad-admin-group-object-ids GROUP) and use Entra credentials through kubelogin")]
    return [*fix.kube_credentials(azure, kubeconfig, context),
            advice("your Entra identity needs a Kubernetes role on the cluster (a group in "
                   "--aad-admin-group-object-ids, or an Azure Kubernetes Service RBAC role); or, if local accounts "
                   "must come back:"),
            enable]


def _untrusted_api_server_steps(cluster: ClusterFacts, azure: AzureConfig | None) -> list[Step]:
    """The API server answered with a certificate the kubeconfig's CA does not sign: kubectl shows the same x509
    error; the kubeconfig written again holds the cluster's CA as it is now (after az aks rotate-certs)."""
    return [
        fix.kubectl(*(("--context", cluster.context) if cluster.context else ()), "cluster-info",
                    note="the same x509 error from kubectl? then the kubeconfig's CA is not the cluster's"),
        fix.kube_credentials(azure, kubeconfig_file(cluster), cluster.context)[0],
        advice("if a TLS-inspecting proxy sits between this machine and the API server, exempt the API server's "
               "host from its inspection (or run from a network without it): the kubeconfig's CA cannot vouch for "
               "the proxy's certificate"),
    ]


# The API server's refusal by RBAC (k8s.io/apiserver endpoints/handlers/responsewriters/errors.go forbiddenMessage):
# User "U" cannot VERB resource "R[/SUB]" in API group "G" in the namespace "NS" | at the cluster scope
_FORBIDDEN_RE = re.compile(r'User "(?P<user>[^"]*)" cannot (?P<verb>[a-z]+) resource "(?P<resource>[^"]+)" in API '
                           r'group "(?P<group>[^"]*)" (?:in the namespace "(?P<namespace>[^"]+)"|at the cluster scope)')


def _forbidden_steps(message: str, permission_check: Command) -> list[Step]:
    """The rule the refusal names, as a Role (or ClusterRole) to paste, and the check that it now answers yes;
    a refusal in other words (another authorizer, Azure RBAC for Kubernetes) keeps the can-i and the manifests."""
    found = _FORBIDDEN_RE.search(message)
    if found is None:
        return [permission_check, advice("render manifests/harness-rbac.yaml.j2 and apply it")]
    verb, resource, group, namespace, user = (found.group("verb"), found.group("resource"), found.group("group"),
                                              found.group("namespace"), found.group("user"))
    plural, _, sub = resource.partition("/")
    named = f"{plural}{'.' + group if group else ''}{'/' + sub if sub else ''}"
    return [*fix.grant_rbac(verb, resource, group, namespace, user),
            advice("or, for the in-cluster Job: python -m harness manifests render and kubectl apply its "
                   "01-rbac.yaml (manifests/harness-rbac.yaml.j2)"),
            fix.can_i_advice(verb, named, namespace, user)]


def arm_failure_finding(
    fetched: Fetched, layer: str, what: str, not_found_code: str, read_command: Command, azure: AzureConfig | None,
    not_found_steps: list[Step] | None = None,
) -> Finding:
    """``what`` could not be read from ARM: the harness's own credential failed, the network kept it from the
    authority or ARM, the resource is not there (``not_found_code``), the harness may not read it, or ARM failed
    otherwise."""
    evidence = {"url": fetched.url, "status": fetched.status, "code": fetched.code, "error": fetched.error}
    if fetched.code == NETWORK_ERROR:
        host = fetched.host or "the Azure endpoint"
        reached = (f"{host} answered with a TLS certificate the harness could not verify (a proxy re-signing TLS "
                   "on the way, or a CA azure.ca_file lacks)" if UNVERIFIED_CERTIFICATE in str(fetched.error)
                   else f"the harness could not reach {host}")
        return Finding(
            "AZURE_UNREACHABLE",
            ERROR,
            "harness",
            f"{what}: {reached}: {fetched.error}",
            {**evidence, "host": host},
            azure_unreachable(host, str(fetched.error), azure),
        )
    unavailable = _ENTRA_UNAVAILABLE_RE.search(str(fetched.error or "")) if fetched.code == CREDENTIAL_ERROR else None
    if unavailable is not None:
        # Entra failing or throttling the harness's own token request (MSAL raises "HTTP Error: 503" for a 5xx it
        # got through azure-core's retries; AADSTS90033 is Entra's "A transient error has occurred"): a new secret
        # would not help, and the finding must not ask for one
        host = fetched.host or "the authority host"
        return Finding(
            "SERVICE_UNAVAILABLE",
            ERROR,
            "harness",
            f"{what}: Entra at {host} answered the harness's own token request with {unavailable.group(0)} through "
            f"azure-identity's retries: the service is failing or throttling, not the harness's credential "
            f"({fetched.error})",
            {**evidence, "host": host},
            [advice("look at Entra's health (Azure status, Resource Health) and run again")],
        )
    if fetched.code == CREDENTIAL_ERROR:
        return Finding(
            "HARNESS_CREDENTIAL_FAILED",
            ERROR,
            "harness",
            f"{what}: the harness's own Azure identity got no token: {fetched.error}",
            evidence,
            harness_token_fix(azure, fetched),
        )
    if fetched.status == 404:
        return Finding(
            not_found_code, ERROR, layer, f"{what}: {fetched.describe()}", evidence,
            not_found_steps if not_found_steps is not None else [read_command],
        )
    remediation: list[Step] = [read_command]
    if fetched.status in (401, 403):
        remediation.append(fix.grant_harness_reader(azure))
    return Finding("ARM_QUERY_FAILED", ERROR, layer, f"{what}: {fetched.describe()}", evidence, remediation)


# Entra's transient answers to a token request, as azure-identity words them: MSAL's NormalizedResponse
# raise_for_status ("HTTP Error: 503") and Entra's own code for them (AADSTS90033 "A transient error has occurred");
# azure-identity's own AadClient (WorkloadIdentityCredential, which the in-cluster Job logs in with) raises Entra's
# body instead: "Microsoft Entra ID error '(temporarily_unavailable) AADSTS90055: ...'" (OAuth 2.0's
# temporarily_unavailable, RFC 6749 4.1.2.1; 90055 TenantThrottlingError in Entra's error code reference; the lab
# answers a 429 so. # unverified: the body real Entra sends with a 429 to a client_credentials request)
_ENTRA_UNAVAILABLE_RE = re.compile(
    r"HTTP Error: (?:429|5\d\d)\b|\(temporarily_unavailable\)(?: AADSTS\d+)?|AADSTS90033\b|AADSTS90055\b")
_UNKNOWN_RESOURCE_RE = re.compile(r"AADSTS500011: The resource principal named (\S+?) was not found")
_DISABLED_RE = re.compile(r"AADSTS7000112: Application '([0-9A-Fa-f-]{36})'")
_NO_SUCH_APPLICATION_RE = re.compile(r"AADSTS700016: Application with identifier '([^']{1,100})' was not found")
# MSAL python when the tenant's OpenID configuration is refused (Entra: AADSTS90002 "Tenant '...' not found")
_NO_SUCH_TENANT_RE = re.compile(r"AADSTS90002|Unable to get authority configuration")
_NO_SERVICE_PRINCIPAL_RE = re.compile(r"AADSTS7000229: The client application ([0-9A-Fa-f-]{36}) is missing "
                                      r"service principal")


# harness/collect/arm_api.py workload_identity_login's note on the harness's own token failure, after Entra's refusal
# of its Workload ID assertion: no credential at all (AADSTS70025), none for this issuer and subject (70021, 700213)
_OWN_WORKLOAD_ID_RE = re.compile(
    r"AADSTS(?:70025|70021|700213)\b.*\[the harness's Workload ID login: client (?P<client>[0-9a-fA-F-]{36}), "
    r"issuer (?P<issuer>https://\S+), subject (?P<subject>system:serviceaccount:[a-z0-9-]+:[a-z0-9.-]+)\]$", re.S)


def harness_token_fix(azure: AzureConfig | None, fetched: Fetched) -> list[Step]:
    """What repairs the harness's own token request. Entra refusing the RESOURCE (AADSTS500011: "The resource
    principal named X was not found in the tenant") is no credential problem: harness.yaml's azure.cloud names an
    endpoint (microsoft_graph, resource_manager) that is not this cloud's, and a new secret would not help."""
    disabled = _DISABLED_RE.search(str(fetched.error or ""))
    if disabled is not None:
        # the harness's own enterprise application switched off (az ad sp update --set accountEnabled=false, or
        # "Enabled for users to sign in?" No): no new secret helps, enabling it does (Entra: AADSTS7000112
        # "Application '<appId>'(<name>) is disabled.")
        client_id = disabled.group(1)
        return [advice(f"the harness's own service principal ({client_id}) is disabled: enable it"),
                fix.service_principal_enabled(client_id), fix.enable_service_principal(client_id)]
    error = str(fetched.error or "")
    if azure is not None and _NO_SUCH_TENANT_RE.search(error):
        # harness.yaml's azure.tenant_id is no tenant (a typo, another GUID pasted): no secret helps
        return [advice(f"azure.tenant_id {azure.tenant_id} in harness.yaml is not a tenant Entra knows: set it to "
                       "the tenant of the cluster's subscription, which this prints:"),
                fix.tenant_of_subscription(azure)]
    if azure is not None and azure.credential is not None and _NO_SUCH_APPLICATION_RE.search(error):
        # azure.credential.client_id is no application in this tenant: a typo, or the app's object id pasted (az ad
        # app show --id takes either, and prints the application (client) id)
        return [advice(f"azure.credential.client_id {azure.credential.client_id} in harness.yaml is no application "
                       f"in tenant {azure.tenant_id}: set it to the harness's app registration's Application "
                       "(client) ID, not its Object ID; with its object id this prints the client id:"),
                fix.app_client_id(azure.credential.client_id)]
    missing = _NO_SERVICE_PRINCIPAL_RE.search(error)
    if missing is not None:
        # the harness's own enterprise application deleted (az ad sp delete): its secret is fine. Restored from
        # Graph's deleted items it keeps its object id and every grant; a new one needs its grants again
        client_id = missing.group(1)
        graph = (azure.cloud.endpoints.microsoft_graph if azure is not None else "").rstrip("/") or "<graph>"
        return [advice(f"the harness's own service principal ({client_id}) is missing; deleted within the last 30 "
                       "days? restore it instead of the lines below (it keeps its object id and grants):"),
                advice(f"  az rest --method GET --url '{graph}/v1.0/directory/deletedItems/microsoft.graph."
                       f"servicePrincipal' --query \"value[?appId=='{client_id}'].id\" -o tsv"),
                advice(f"  az rest --method POST --url '{graph}/v1.0/directory/deletedItems/<that-id>/restore'"),
                fix.create_service_principal(client_id),
                advice("a new service principal holds none of the old one's grants: Reader where the harness "
                       "reads, and Microsoft Graph's Application.Read.All"),
                fix.grant_harness_reader(azure), *fix.grant_harness_graph_read(azure)]
    own = _OWN_WORKLOAD_ID_RE.search(error)
    if own is not None:
        # the in-cluster Job logs in through Workload ID, and its identity trusts no token of the Job's
        # ServiceAccount (the README's "give the identity a federated credential" step skipped, or for another
        # namespace): az login and client secrets are no part of it
        client, issuer, subject = own.group("client"), own.group("issuer"), own.group("subject")
        return [advice(f"the harness's own identity {client} trusts no token of {subject} (its Workload ID login in "
                       "the cluster): give it a federated credential; an app registration:"),
                fix.app_federated_credential("create", client, "wi-harness-job", issuer, subject),
                advice("a user-assigned managed identity, with its name and resource group:"),
                fix.identity_credential_create(None, "wi-harness-job", issuer, subject),
                advice(f"then run the Job again: kubectl -n {subject.split(':')[2]} delete job wi-harness, and "
                       "kubectl apply -f the manifests-out/ directory again")]
    match = _UNKNOWN_RESOURCE_RE.search(str(fetched.error or ""))
    if match is None:
        return fix.harness_credential(azure)
    resource = match.group(1).rstrip("/")
    endpoints = azure.cloud.endpoints if azure is not None else None
    named = next((field for field, value in (
        ("microsoft_graph", endpoints.microsoft_graph if endpoints else ""),
        ("resource_manager", endpoints.resource_manager if endpoints else ""),
        ("resource_manager_audience", endpoints.resource_manager_audience if endpoints else ""),
    ) if value and value.rstrip("/").lower() == resource.lower()), None)
    where = f"azure.cloud.{named}" if named else "azure.cloud"
    return [advice(f"Entra knows no resource {resource} in this tenant (AADSTS500011): {where} in harness.yaml "
                   "names an endpoint of no service of this cloud; set it to the cloud's own (Microsoft Graph: "
                   "https://graph.microsoft.com/ in the public cloud; `az cloud show --query endpoints` lists a "
                   "registered cloud's)")]


def azure_unreachable(host: str, cause: str, azure: AzureConfig | None) -> list[Step]:
    """Not the credential (a new secret would not help): name resolution, TLS trust or the path to ``host``."""
    ca_file = str(azure.ca_file) if azure is not None and azure.ca_file else None
    steps: list[Step] = []
    if "DNS" in cause:
        name = urlsplit(f"https://{host}/").hostname or host
        steps.append(fix.resolve_host(name))
    steps.append(fix.https_reachable(host, ca_file))
    if "TLS" in cause:
        steps.append(
            advice(
                "a proxy or private CA re-signs TLS on the way: put its CA bundle (PEM) in azure.ca_file in "
                "harness.yaml"
                if ca_file is None
                else f"azure.ca_file ({ca_file}) does not hold the CA that signed {host}'s certificate"
            )
        )
    if UNVERIFIED_CERTIFICATE not in cause:  # something answered: the path is there, its certificate is the matter
        steps.append(advice("behind a proxy: export HTTPS_PROXY (and NO_PROXY for the cluster) before the run"))
    return steps


def missing_probe_step(step: str, what: str = "") -> Outcome:
    """The probe's report lacks a step the check reads: an incompatible or truncated probe document."""
    described = what or f"the {step} step"
    return failed(
        f"the probe report has no {described}",
        {"step": step},
        Finding(
            "PROBE_OUTPUT_INVALID",
            ERROR,
            "probe",
            f"probe report without {described}",
            {"step": step},
            [advice("probe.mode image: rebuild and push the probe image from this checkout (Dockerfile); "
                    "probe.mode configmap (the default) always runs the probe that ships with this harness")],
        ),
    )
