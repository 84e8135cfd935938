"""The commands a person runs to fix a finding (kubectl / az), as argument lists for :mod:`harness.commands`.

Shell safety comes from the renderer: every value is one quoted word, whatever it holds. On top of that, a
value read from the cluster that is not of its kind (a client id that is not a GUID, a namespace that is not
a DNS label) becomes a ``<placeholder>``: a fix that writes it back would repair nothing. Config values were
validated by kind when the config was loaded; values inside a JMESPath query are escaped as a literal.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from collections.abc import Sequence

from harness import values
from harness.commands import Advice, Arg, Command, Step, Var, advice, command, render
from harness.config import AzureConfig, BlobAccess, KeyVaultSecretAccess
from harness.names import TOKEN_AUDIENCE

_IDENTITY_RE = re.compile(
    r"/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.managedidentity/userassignedidentities/"
    r"([^/]+)",
    re.IGNORECASE,
)
_FIC_NAME_RE = re.compile(r"[^A-Za-z0-9-]")


def checked(value: str | None, is_valid: object, placeholder: str) -> str:
    """``value`` when ``is_valid(value)``, else the placeholder (``<client-id>``)."""
    return value if value is not None and callable(is_valid) and is_valid(value) else placeholder


def guid_or(value: str | None, placeholder: str) -> str:
    return checked(value, values.is_guid, placeholder)


def namespace_or(value: str | None) -> str:
    return checked(value, values.is_namespace, "<namespace>")


def object_or(value: str | None, placeholder: str) -> str:
    return checked(value, values.is_object_name, placeholder)


def identity_name_rg(resource_id: str | None) -> tuple[str, str]:
    match = _IDENTITY_RE.fullmatch(resource_id or "")
    if not match:
        return "<identity-name>", "<identity-resource-group>"
    return match.group(3), match.group(2)


def identity_gone(resource_id: str | None, group_gone: bool = False, location: str | None = None) -> list[Step]:
    """The managed identity harness.yaml names is not there (az identity show answers ResourceNotFound): the
    identities its resource group holds, and the way back if it was deleted. One made again is a new identity: a
    new client id and principal id, no federated credential, no role. ``group_gone`` (ARM: ResourceGroupNotFound,
    the group deleted with what it held, or a typo): az identity list and create in it would fail, so the group
    is made first, in ``location`` (the cluster's) when known."""
    name, rg = identity_name_rg(resource_id)
    match = _IDENTITY_RE.fullmatch(resource_id or "")
    subscription = guid_or(match.group(1) if match else None, "<subscription-id>")
    where = ("--resource-group", rg, "--subscription", subscription)
    if group_gone:
        return [
            advice(f"resource group {rg} is not there: deleted (az group delete) with the identity and its "
                   "federated credentials, or a typo in harness.yaml's identity_resource_id (fix it there). Made "
                   "again below, the identity has a new client id and principal id ($CLIENT_ID, $PRINCIPAL_ID)"),
            resource_group_create(rg, location, subscription),
            *identity_created(resource_id),
        ]
    return [
        command("az", "identity", "list", *where, "--query", "[].{name: name, clientId: clientId}", "-o", "table"),
        advice("harness.yaml's identity_resource_id names an identity that is not there: a typo (fix it in "
               "harness.yaml), or it was deleted; made again, it has a new client id and principal id: annotate the "
               "ServiceAccount with the new client id, and create its federated credential and role assignments "
               "again"),
        command("az", "identity", "create", "--name", name, *where),
    ]


def resource_group_create(name: str, location: str | None, subscription: str | None) -> Command:
    """A deleted resource group made again (az group delete took it), in ``location`` (a region's name, lower case
    and no space as ARM lists it; else a placeholder), before what is made or recovered in it."""
    return command("az", "group", "create", "--name", checked(name, values.is_azure_resource_name, "<resource-group>"),
                   "--location", location if location and re.fullmatch(r"[a-z0-9]+", location) else "<location>",
                   "--subscription", guid_or(subscription, "<subscription-id>"))


NEW_CLIENT_ID, NEW_PRINCIPAL_ID = "CLIENT_ID", "PRINCIPAL_ID"


def identity_created(resource_id: str | None) -> list[Command]:
    """``az identity create`` of the identity ``resource_id`` names, its new client id captured in ``$CLIENT_ID`` and
    its principal id in ``$PRINCIPAL_ID`` (az identity show), for the annotation and role grants after it."""
    name, rg = identity_name_rg(resource_id)
    match = _IDENTITY_RE.fullmatch(resource_id or "")
    where = ("--name", name, "--resource-group", rg, "--subscription",
             guid_or(match.group(1) if match else None, "<subscription-id>"))
    return [command("az", "identity", "create", *where, "--query", "clientId", "-o", "tsv", capture=NEW_CLIENT_ID),
            command("az", "identity", "show", *where, "--query", "principalId", "-o", "tsv",
                    capture=NEW_PRINCIPAL_ID)]


def identity_id_or(resource_id: str | None) -> str:
    return resource_id if resource_id and _IDENTITY_RE.fullmatch(resource_id) else "<identity-resource-id>"


def cluster_name_rg(azure: AzureConfig | None) -> tuple[str, str]:
    if azure is None:
        return "<cluster-name>", "<cluster-resource-group>"
    return azure.cluster_name, azure.resource_group


def subscription_of(azure: AzureConfig | None) -> str:
    """The configured subscription, for every az command that names a resource group: az would otherwise look
    the group up in whichever subscription its login made current."""
    return guid_or(azure.subscription_id if azure else None, "<subscription-id>")


def cluster_location(azure: AzureConfig | None) -> tuple[str, ...]:
    """``--resource-group RG --name CLUSTER --subscription S`` of the configured cluster."""
    name, rg = cluster_name_rg(azure)
    return ("--resource-group", rg, "--name", name, "--subscription", subscription_of(azure))


def aks_update(azure: AzureConfig | None, *flags: str, note: str = "") -> Command:
    return command("az", "aks", "update", *cluster_location(azure), *flags, note=note)


def enable_oidc_issuer(azure: AzureConfig | None) -> Command:
    """``az aks update --enable-oidc-issuer``, with what it does to a running cluster (AKS's use-oidc-issuer doc):
    the API server restarts, and the tokens it issues from then on carry the new issuer."""
    return aks_update(azure, "--enable-oidc-issuer",
                      note="restarts the API server (a short outage); ServiceAccount tokens issued from then on name "
                           "the new issuer: restart the pods that use them")

def cluster_gone(azure: AzureConfig | None, group_gone: bool) -> list[Step]:
    """ARM has no managed cluster by harness.yaml's name (404): deleted (az aks delete, or az group delete of its
    group: ``group_gone``, ARM's ResourceGroupNotFound), or a typo. az aks show would only fail again; the clusters
    of the subscription are listed instead. A deleted AKS cluster is not restorable, and one made again publishes
    another OIDC issuer URL (``https://REGION.oic.prod-aks.azure.com/TENANT/UUID/``, a UUID of its own; unverified
    that a cluster made again under the same name never gets the old one), so every federated credential that named
    the old issuer must be made again for the new one."""
    name, rg = cluster_name_rg(azure)
    gone = (f"resource group {rg} is not there: deleted (az group delete) with the cluster" if group_gone
            else f"no managed cluster {name} in resource group {rg}: deleted (az aks delete)")
    return [advice(f"{gone}, or a typo in harness.yaml's azure.cluster_name / resource_group. A deleted AKS cluster "
                   "is not restorable; a new one has another OIDC issuer URL: every federated credential is made "
                   "again for it"),
            command("az", "aks", "list", "--subscription", subscription_of(azure), "--query",
                    "[].{name: name, resourceGroup: resourceGroup, issuer: oidcIssuerProfile.issuerUrl}", "-o",
                    "table")]


def aks_show(azure: AzureConfig | None, *query: str, note: str = "") -> Command:
    return command("az", "aks", "show", *cluster_location(azure), *query, note=note)


def aks_check_acr(azure: AzureConfig | None, server: str) -> Command:
    """``az aks check-acr``: whether the cluster's kubelet identity can pull from registry ``server``."""
    return command("az", "aks", "check-acr", *cluster_location(azure), "--acr", server,
                   note="can the cluster's kubelet identity pull from it?")


def acr_import(registry: str, source: str, repository: str, note: str = "") -> Command:
    """``az acr import``: image ``source`` copied into registry ``registry`` (its name) as ``repository``."""
    return command("az", "acr", "import", "--name", registry, "--source", source, "--image", repository, note=note)


def tenant_of_subscription(azure: AzureConfig | None) -> Command:
    """Prints the tenant of the configured subscription (what azure.tenant_id should say)."""
    return command("az", "account", "show", "--subscription", subscription_of(azure), "--query", "tenantId",
                   "-o", "tsv")


def app_client_id(app_id_or_object_id: str | None) -> Command:
    """Prints an app registration's Application (client) ID; ``az ad app show --id`` takes it or its object id."""
    return command("az", "ad", "app", "show", "--id", guid_or(app_id_or_object_id, "<app-id>"), "--query", "appId",
                   "-o", "tsv")


def show_issuer(azure: AzureConfig | None) -> Command:
    return aks_show(azure, "--query", "oidcIssuerProfile.issuerUrl", "-o", "tsv")


def use_kubeconfig(path: str) -> Command:
    """The shell's kubectl (and kubelogin, az aks get-credentials) pointed at kubeconfig ``path``."""
    return command("export", f"KUBECONFIG={path}")


def use_context(context: str) -> Command:
    return command("kubectl", "config", "use-context", context)


def kubectl(*args: Arg, note: str = "", capture: str | None = None, then: tuple[Arg, ...] = ()) -> Command:
    return command("kubectl", *args, note=note, capture=capture, then=then)


def curl(url: str) -> Command:
    return command("curl", "-sS", url)


def resolve_host(name: str) -> Command:
    return command("nslookup", name, note="does this machine resolve it? (DNS, VPN, private zone)")


def https_reachable(host: str, ca_file: str | None) -> Command:
    """Prints only the HTTP status (curl) of ``https://host/`` (with azure.ca_file's bundle when one is set)."""
    return command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}\\n",
                   *(["--cacert", ca_file] if ca_file else []), f"https://{host}/",
                   note="does this machine reach it over HTTPS?")


def kube_unreachable(context: str | None, azure: AzureConfig | None, stopped: bool = False) -> list[Step]:
    """What to look at when the API server did not answer; ``stopped``: ARM says the cluster is stopped (az aks
    stop), so it is started first (learn.microsoft.com/azure/aks/start-stop-cluster), then asked again."""
    cluster_info = kubectl("--context", context, "cluster-info") if context else kubectl("cluster-info")
    if stopped:
        return [command("az", "aks", "start", *cluster_location(azure),
                        note="a stopped cluster has no API server; starting it takes minutes"),
                cluster_info]
    state = "{power: powerState.code, fqdn: fqdn, private: apiServerAccessProfile.enablePrivateCluster}"
    return [
        cluster_info,
        aks_show(azure, "--query", state, "-o", "json"),
        advice(
            "a private cluster or authorized IP ranges: run the harness from a network that reaches the API "
            "server, or inside the cluster (manifests/harness-job.yaml.j2)"
        ),
    ]


def kubeconfig_name(value: str | None, placeholder: str) -> str:
    """A kubeconfig entry's name (any printable text: clusterUser_RG_NAME) as one argument, never one an option
    parser would take for a flag."""
    if not value or value.startswith("-") or values.printable(value) != value:
        return placeholder
    return value


def get_credentials(azure: AzureConfig | None, kubeconfig: str | None = None, context: str | None = None) -> Command:
    """The cluster's kubeconfig entry written again, into the file and context the harness reads (harness.yaml's
    cluster.kubeconfig and the context it used): without --file, az writes $KUBECONFIG's first file or
    ~/.kube/config (azure-cli acs/custom.py aks_get_credentials), not the file the run read."""
    where = ("--file", kubeconfig) if kubeconfig and not kubeconfig.startswith("-") else ()
    named = ("--context", kubeconfig_name(context, "")) if context != "in-cluster" and kubeconfig_name(context, "") \
        else ()
    return command("az", "aks", "get-credentials", *cluster_location(azure), *where, *named, "--overwrite-existing")


def kube_credentials(azure: AzureConfig | None, kubeconfig: str | None = None,
                     context: str | None = None) -> list[Step]:
    return [
        get_credentials(azure, kubeconfig, context),
        command("kubelogin", "convert-kubeconfig", "-l", "azurecli",
                *(("--kubeconfig", kubeconfig) if kubeconfig and not kubeconfig.startswith("-") else ()),
                note="Entra-integrated clusters"),
    ]


def new_service_account_token(namespace: str, service_account: str, user: str | None,
                              kubeconfig: str | None) -> list[Step]:
    """A new bound token for the ServiceAccount a kubeconfig's static token was issued to, into that user entry:
    asked with credentials that work (the refused ones cannot), captured, never printed. The API server may cut
    --duration to its --service-account-max-token-expiration."""
    return [
        kubectl("create", "token", object_or(service_account, "<sa>"), "-n", namespace_or(namespace),
                "--duration", "24h", capture="TOKEN",
                note="with a kubeconfig whose credentials this cluster still accepts (not the refused one)"),
        kubectl("config", "set-credentials", kubeconfig_name(user, "<user>"),
                "--token", Var("TOKEN"),
                *(("--kubeconfig", kubeconfig) if kubeconfig and not kubeconfig.startswith("-") else ())),
    ]


def harness_credential(azure: AzureConfig | None) -> list[Step]:
    """How to repair the harness's OWN identity (azure.credential in harness.yaml, else DefaultAzureCredential)."""
    if azure is None:
        return []
    credential = azure.credential
    if credential is None:
        audience = azure.cloud.endpoints.resource_manager_audience
        return [
            command("az", "login", note="DefaultAzureCredential: or export AZURE_CLIENT_ID, AZURE_TENANT_ID, "
                    "AZURE_CLIENT_SECRET"),
            command("az", "account", "get-access-token", "--tenant", azure.tenant_id, "--resource", audience,
                    "-o", "none"),
        ]
    source = (
        f"the file {credential.client_secret_file}"
        if credential.client_secret_file
        else f"${credential.client_secret_env}"
    )
    return [
        command("az", "ad", "app", "credential", "list", "--id", credential.client_id, "-o", "table",
                note="expired? (endDateTime)"),
        advice(f"put the client secret's VALUE (not its ID) for app {credential.client_id} in {source}"),
    ]


def grant_harness_reader(azure: AzureConfig | None) -> Command:
    client_id = azure.credential.client_id if azure and azure.credential else "<harness-client-id>"
    subscription = azure.subscription_id if azure else "<subscription-id>"
    return command("az", "role", "assignment", "create", "--assignee", client_id, "--role", "Reader",
                   "--scope", f"/subscriptions/{subscription}")


def annotate_sa(namespace: str, service_account: str, client_id: str | Var | None) -> Command:
    """The client-id annotation; ``client_id`` a :class:`Var` for one an earlier line captured (an identity made
    again: :func:`identity_created`)."""
    key = "azure.workload.identity/client-id="
    value: Arg = (Var(client_id.name, prefix=key) if isinstance(client_id, Var)
                  else key + guid_or(client_id, "<client-id>"))
    return kubectl("annotate", "serviceaccount", "-n", namespace_or(namespace), object_or(service_account, "<sa>"),
                   value, "--overwrite")


def annotate_sa_tenant(namespace: str, service_account: str, tenant_id: str | None) -> Command:
    return kubectl(
        "annotate", "serviceaccount", "-n", namespace_or(namespace), object_or(service_account, "<sa>"),
        f"azure.workload.identity/tenant-id={guid_or(tenant_id, '<tenant-id>')}", "--overwrite",
    )


def remove_sa_annotation(namespace: str, service_account: str, annotation: str) -> Command:
    return kubectl("annotate", "serviceaccount", "-n", namespace_or(namespace),
                   object_or(service_account, "<sa>"), f"{annotation}-")


def remove_sa_label(namespace: str, service_account: str, label: str) -> Command:
    return kubectl("label", "serviceaccount", "-n", namespace_or(namespace), object_or(service_account, "<sa>"),
                   f"{label}-")


def node_clock(node: str | None) -> list[Step]:
    """Entra judges the token's nbf/exp by its own clock: compare the node's with the 'Current time' it quoted."""
    return [
        kubectl("debug", f"node/{object_or(node, '<node>')}", "-it", "--image=busybox", "--", "date", "-u"),
        advice("check the node's time sync (chrony / systemd-timesyncd) and that the kubelet refreshes the token"),
    ]


def restart_pods(namespace: str) -> Command:
    return kubectl("rollout", "restart", "deployment", "-n", namespace_or(namespace), "<deployment>",
                   note="the webhook acts on pod CREATE only")


def describe_pod(namespace: str, pod: str, note: str = "") -> Command:
    return kubectl("describe", "pod", "-n", namespace_or(namespace), object_or(pod, "<pod>"), note=note)


def kept_pod(namespace: str, pod: str, why: str) -> Advice:
    """A look at the probe pod, which the harness deletes unless --keep: a comment, so a pasted fix does not stop
    at a pod that is gone."""
    return advice(f"{why}: run with --keep, then kubectl describe pod -n {namespace_or(namespace)} "
                  f"{object_or(pod, '<pod>')}")


# one taint the scheduler names, as the TaintToleration plugin words it ("N node(s) had untolerated taint {key:
# value}"), after "0/TOTAL nodes are available: "
_TAINT_RE = re.compile(r"(\d+) node\(s\) had untolerated taint \{([^:{}\s]+): ?([^{}]*)\}")
_TOTAL_RE = re.compile(r"^0/(\d+) nodes are available")
_TAINT_VALUE_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")  # a label value, non-empty
_TAINT_KEY_RE = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def untolerated_taints(scheduler_message: str) -> list[tuple[str, str, int, int]]:
    """(key, value, nodes with it, nodes in all) of each taint the scheduler's message says the pod does not
    tolerate; none when the message is not the scheduler's own."""
    total = _TOTAL_RE.match(scheduler_message)
    if total is None:
        return []
    first = scheduler_message.split(". preemption:", 1)[0]
    return [(key, value.strip(), int(count), int(total.group(1)))
            for count, key, value in _TAINT_RE.findall(first) if _TAINT_KEY_RE.fullmatch(key)]


def tolerate_taint(key: str, value: str) -> Advice:
    """probe.tolerations for a taint the scheduler named: the probe runs where the workloads run (they tolerate
    it). No effect is named, so every effect of that key and value is tolerated. Removing the taint instead is no
    command to print: on AKS a node pool's taints change only through the AKS API ("Use node taints in an AKS
    cluster": node pool taints cannot be modified from the Kubernetes API), and the taint is there on purpose."""
    key = key if _TAINT_KEY_RE.fullmatch(key) else "<taint-key>"
    entry = (f'{{key: "{key}", operator: Equal, value: "{value}"}}' if _TAINT_VALUE_RE.fullmatch(value)
             else f'{{key: "{key}", operator: Exists}}')
    return advice(f"tolerate it, as the workloads on these nodes do: in harness.yaml, probe.tolerations: [{entry}]")


def pod_logs(namespace: str, pod: str, note: str = "") -> Command:
    return kubectl("logs", "-n", namespace_or(namespace), object_or(pod, "<pod>"), note=note)


def can_i(verb: str, resource: str, namespace: str | None = None) -> Command:
    scope = ("-n", namespace_or(namespace)) if namespace is not None else ()
    return kubectl("auth", "can-i", verb, resource, *scope)


def can_i_advice(verb: str, resource: str, namespace: str | None, username: str | None) -> Advice:
    """The can-i check exits 1 while the answer is no: a pasted fix under set -e would stop at it, so it is
    printed as the check to run after the fix."""
    scope = f" -n {namespace_or(namespace)}" if namespace else ""
    who = f" --as {username}" if username and _USERNAME_RE.fullmatch(username) else ""
    return advice(f"then check: kubectl auth can-i {verb} {resource}{scope}{who} (yes once the gap is closed)")


_USERNAME_RE = re.compile(r"[A-Za-z0-9@._:-]{1,253}")
_SERVICE_ACCOUNT_USER_RE = re.compile(r"system:serviceaccount:([a-z0-9-]{1,63}):([a-z0-9.-]{1,253})")
# manifests/harness-rbac.yaml.j2's wi-harness-probe Role, rule by rule: (name suffix, verbs, resource)
PROBE_RULES = (
    ("pods", "create,get,list,watch,delete", "pods"),
    ("logs", "get", "pods/log"),
    ("source", "create,list,delete", "configmaps"),
)


def probe_rbac(namespace: str, username: str | None) -> list[Command]:
    """What harness-rbac.yaml.j2's wi-harness-probe Role grants in ``namespace``, for the identity the harness runs
    as: kubectl create role takes one verb list for all its resources, so one Role and RoleBinding per rule (RBAC
    adds them up), named apart from the template's own so they never collide with a Role that exists."""
    ns = namespace_or(namespace)
    subject = kube_subject(username)
    roles = [kubectl("create", "role", f"wi-harness-probe-{suffix}", "-n", ns, f"--verb={verbs}",
                     f"--resource={resource}") for suffix, verbs, resource in PROBE_RULES]
    bindings = [kubectl("create", "rolebinding", f"wi-harness-probe-{suffix}", "-n", ns,
                        f"--role=wi-harness-probe-{suffix}", subject) for suffix, _verbs, _resource in PROBE_RULES]
    return [*roles, *bindings]


_RESOURCE_RE = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def kube_subject(username: str | None) -> str:
    """The subject flag of a (cluster) role binding made with kubectl create, for a user name the API server
    gave."""
    account = _SERVICE_ACCOUNT_USER_RE.fullmatch(username or "")
    if account:
        return f"--serviceaccount={account.group(1)}:{account.group(2)}"
    return f"--user={username if username and _USERNAME_RE.fullmatch(username) else '<user>'}"


def cluster_list_rbac(name: str, resources: list[str], username: str | None) -> list[Command]:
    """A ClusterRole that may list ``resources`` (resource.group, as discovery names them; ``*.group``: every
    resource of the group) and its binding to the identity the harness runs as."""
    name = object_or(name, "<name>")
    listed = ",".join(r if _RESOURCE_RE.fullmatch(r) else "<resource>" for r in resources) or "<resource>"
    return [kubectl("create", "clusterrole", name, "--verb=list", f"--resource={listed}"),
            kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}", kube_subject(username))]


_VERB_RE = re.compile(r"[a-z]{1,32}")
_KUBE_RESOURCE_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[a-z0-9]+)?")
_API_GROUP_RE = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?")


def grant_rbac(verb: str, resource: str, group: str, namespace: str | None, username: str | None) -> list[Command]:
    """A Role in ``namespace`` (None: a ClusterRole) that grants ``verb`` on ``resource`` (resource[/subresource]
    in API ``group``, as the API server's forbidden message names them) and its binding to ``username``: what
    the refusal asked for, no more (kubectl create role takes resource.group/subresource)."""
    verb = verb if _VERB_RE.fullmatch(verb or "") else "<verb>"
    if _KUBE_RESOURCE_RE.fullmatch(resource or "") and _API_GROUP_RE.fullmatch(group or ""):
        plural, _, sub = resource.partition("/")
        target = f"{plural}{'.' + group if group else ''}{'/' + sub if sub else ''}"
    else:
        target = "<resource>"
    name = object_or(f"wi-harness-{verb}-{re.sub(r'[^a-z0-9]+', '-', target)}"[:63].strip("-"), "<name>")
    subject = kube_subject(username)
    if namespace is None:
        return [kubectl("create", "clusterrole", name, f"--verb={verb}", f"--resource={target}"),
                kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}", subject)]
    ns = namespace_or(namespace)
    return [kubectl("create", "role", name, "-n", ns, f"--verb={verb}", f"--resource={target}"),
            kubectl("create", "rolebinding", name, "-n", ns, f"--role={name}", subject)]


def federated_credential(verb: str, resource_id: str | None, name: str, issuer: str, subject: str) -> Command:
    return command(
        "az", "identity", "federated-credential", verb, "--name", name, *identity_location(resource_id),
        "--issuer", issuer, "--subject", subject, "--audiences", TOKEN_AUDIENCE,
    )


def identity_location(resource_id: str | None) -> tuple[str, ...]:
    """``--identity-name N --resource-group RG --subscription S`` of a managed identity, from its resource id
    (placeholders where it is no identity id, or its subscription no GUID): the identity may live in another
    subscription than the one az's login made current (a shared-identities subscription)."""
    name, rg = identity_name_rg(resource_id)
    match = _IDENTITY_RE.fullmatch(resource_id or "")
    subscription = guid_or(match.group(1) if match else None, "<subscription-id>")
    return ("--identity-name", name, "--resource-group", rg, "--subscription", subscription)


def identity_credential_create(resource_id: str | None, name: str, issuer: str, subject: str) -> Command:
    return command("az", "identity", "federated-credential", "create", "--name", name,
                   *identity_location(resource_id), "--issuer", issuer, "--subject", subject,
                   "--audiences", TOKEN_AUDIENCE)


def identity_credential_delete(resource_id: str | None, name: str) -> Command:
    """The az command asks before it deletes a federated credential (confirmation=True): --yes answers."""
    return command("az", "identity", "federated-credential", "delete", "--name", name,
                   *identity_location(resource_id), "--yes")


def identity_credential_list(resource_id: str | None) -> Command:
    return command("az", "identity", "federated-credential", "list", *identity_location(resource_id),
                   "--query", "[].{name: name, issuer: issuer, subject: subject}", "-o", "table")


def app_credential_delete(app_id: str | None, name: str) -> Command:
    return command("az", "ad", "app", "federated-credential", "delete", "--id", guid_or(app_id, "<app-id>"),
                   "--federated-credential-id", name)


def login_tenant(tenant_id: str | None) -> Command:
    """``az login`` into another tenant (an application's home tenant, where its federated credentials are)."""
    return command("az", "login", "--tenant", guid_or(tenant_id, "<home-tenant-id>"))


def app_credential_list(app_id: str | None) -> Command:
    return command("az", "ad", "app", "federated-credential", "list", "--id", guid_or(app_id, "<app-id>"),
                   "--query", "[].{name: name, issuer: issuer, subject: subject}", "-o", "table")


def resource_graph_identities() -> Command:
    """The user-assigned identities of every subscription the caller reads (az's resource-graph extension)."""
    return command("az", "graph", "query", "--first", "1000", "-q",
                   "resources | where type =~ 'microsoft.managedidentity/userassignedidentities' "
                   "| project name, resourceGroup, subscriptionId, clientId = properties.clientId")


def show_identity_client_id(resource_id: str | None) -> Command:
    """Prints a managed identity's client id (what the ServiceAccount annotation takes)."""
    return command("az", "identity", "show", "--ids", identity_id_or(resource_id), "--query", "clientId", "-o", "tsv")


def show_identity(resource_id: str | None) -> Command:
    return command("az", "identity", "show", "--ids", identity_id_or(resource_id))


def find_identity_by_client_id(client_id: str | None) -> Command:
    """``az identity list`` filtered by a JMESPath raw-string literal; only a GUID ever goes into the query."""
    literal = jmespath_literal(client_id or "<client-id>")
    return command("az", "identity", "list", "--query", f"[?clientId=={literal}]", "-o", "table")


def jmespath_literal(value: str) -> str:
    """A JMESPath raw string literal: backslash and quote escaped, so the value cannot end the literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fic_name(namespace: str, service_account: str) -> str:
    return _FIC_NAME_RE.sub("-", f"{namespace}-{service_account}")[:120]


UNKNOWN_NAME = "<name>"  # what resource_name_from_url gives for a URL that names no resource


def resource_name_from_url(url: str) -> str:
    """finance-kv from https://finance-kv.vault.azure.net/ (or from a path-style URL https://host:port/finance-kv/)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if _is_ip(host) or host == "localhost" or "." not in host:
        segments = [s for s in parts.path.split("/") if s]
        return segments[0] if segments else UNKNOWN_NAME
    return host.split(".", 1)[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def vault_name(vault_url: str) -> str:
    return resource_name_from_url(vault_url)


def storage_account_name(account_url: str) -> str:
    return resource_name_from_url(account_url)


# UDP and TCP port 53: resolvers ask over UDP first and retry over TCP for long answers
DNS_EGRESS_RULE = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def egress_rule_added(namespace: str, policy: str, has_rules: bool, ports: Sequence[int], dns: bool) -> Command:
    """One egress rule letting the pods ``policy`` selects open TCP ``ports`` (Entra's and the resources', 443 on
    Azure), and one for DNS when ``dns``, added to the policy as a JSON patch: a pod isolated for egress may open
    what any policy selecting it allows (networking.k8s.io/v1), so one policy's rule is enough. A NetworkPolicy
    cannot name a host, so the rule opens those ports to any address. ``has_rules``: the policy has an egress list
    to append to (else the list is set, which a JSON patch's add does for a member that is there or not)."""
    wanted = sorted({port for port in ports if isinstance(port, int) and 0 < port < 65536}) or [443]
    rules: list[dict[str, object]] = [{"ports": [{"protocol": "TCP", "port": port} for port in wanted]}]
    if dns:
        rules.append(DNS_EGRESS_RULE)
    ops = ([{"op": "add", "path": "/spec/egress/-", "value": rule} for rule in rules] if has_rules
           else [{"op": "add", "path": "/spec/egress", "value": rules}])
    return kubectl("patch", "networkpolicy", object_or(policy, "<policy>"), "-n", namespace_or(namespace),
                   "--type", "json", "-p", json.dumps(ops, separators=(",", ":")))


def network_policies_deleted_bluntly(namespace: str, policies: Sequence[str]) -> Advice:
    """Deleting the policies, the blunt option, as a comment a paste does not run: every limit they set goes,
    for every pod they select, not only the path to Entra."""
    names = [object_or(name, "<policy>") for name in policies[:5]]
    lines = "; ".join(render(kubectl("delete", "networkpolicy", "-n", namespace_or(namespace), name))
                      for name in names)
    them = "them" if len(names) > 1 else "it"
    return advice(f"the blunt option instead, only if nothing else relies on {them} (every limit {them} set goes, "
                  f"for every pod {them} select{'' if len(names) > 1 else 's'}): {lines}")


def egress_test(namespace: str, url: str, policies: list[str] | None = None,
                rule: Command | None = None) -> list[Step]:
    """Can a pod in ``namespace`` open a connection to ``url`` at all (any HTTP status means yes)? With the
    NetworkPolicies that isolate the probe pod for egress (when the harness could read them), name those first,
    then the egress ``rule`` that lets it out (:func:`egress_rule_added`), deleting them only as the blunt option."""
    steps: list[Step] = []
    if policies:
        names = [object_or(name, "<policy>") for name in policies[:5]]
        several = len(names) > 1
        host = urllib.parse.urlsplit(url).netloc or url
        steps += [
            kubectl("get", "networkpolicy", "-n", namespace_or(namespace), *names, "-o", "yaml"),
            advice(f"{'NetworkPolicies' if several else 'NetworkPolicy'} {', '.join(names)} "
                   f"{'isolate' if several else 'isolates'} the probe pod for egress: "
                   + (f"add an egress rule for the ports of {host} and the workload's resources (a NetworkPolicy "
                      "names no host: the rule opens those ports to any address; an ipBlock of the services' ranges "
                      "narrows it):" if rule
                      else f"add an egress rule that allows {host} (and DNS)")),
            *([rule] if rule else []),
            network_policies_deleted_bluntly(namespace, names),
        ]
    return [
        *steps,
        kubectl("run", "-n", namespace_or(namespace), "egress-test", "--rm", "-it", "--image=curlimages/curl",
                "--override-type=strategic", f"--overrides={EGRESS_TEST_RESTRICTED}",
                "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url),
        advice("check NetworkPolicies, the egress firewall and proxy settings"),
    ]


# The egress test pod as Pod Security "restricted" admits it (a hardened namespace refuses kubectl run's bare pod:
# allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile): merged into
# the generated pod by its container's name (kubectl run --override-type strategic; the default, merge, would replace
# the container list). curlimages/curl runs as the non-root curl_user; a numeric uid lets the kubelet verify it.
EGRESS_TEST_RESTRICTED = json.dumps({
    "apiVersion": "v1",
    "spec": {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 100, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "egress-test", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
    },
}, separators=(",", ":"))


def principal_or(principal_id: str | Var | None) -> str | Var:
    return principal_id if isinstance(principal_id, Var) else guid_or(principal_id, "<principal-id>")


def principal_of_client_id(client_id: str | None, capture: str = "PRINCIPAL") -> Command:
    """The object id role assignments name, looked up by the person from the client id (a managed identity's
    service principal has its client id as appId): for a harness that could not read the identity itself."""
    return command("az", "ad", "sp", "show", "--id", guid_or(client_id, "<client-id>"), "--query", "id", "-o", "tsv",
                   capture=capture)


def grant_role(principal_id: str | Var | None, role: str, scope: str | Var) -> Command:
    return command(
        "az", "role", "assignment", "create", "--assignee-object-id", principal_or(principal_id),
        "--assignee-principal-type", "ServicePrincipal", "--role", role, "--scope", scope,
    )


def keyvault_id(vault: str, capture: str = "SCOPE") -> Command:
    return command("az", "keyvault", "show", "--name", vault, "--query", "id", "-o", "tsv", capture=capture)


_LOCATION_RE = re.compile(r"[A-Za-z][A-Za-z0-9 ]{1,40}")


def keyvault_recover(vault: str, resource_group: str, location: str, subscription: str | None) -> Command:
    """A soft-deleted vault back under its old id (az keyvault recover: its group and location as ARM's deletedVaults
    lists them; az refuses another group). ``--subscription`` names the one whose deleted vaults list it: az looks in
    its current subscription only."""
    return command("az", "keyvault", "recover", "--name", checked(vault, values.is_azure_resource_name, "<vault-name>"),
                   "--resource-group", checked(resource_group, values.is_azure_resource_name, "<resource-group>"),
                   "--location", checked(location, _LOCATION_RE.fullmatch, "<location>"),
                   "--subscription", guid_or(subscription, "<subscription-id>"))


def storage_account_list() -> Command:
    """The current subscription's storage accounts with their blob endpoints (what account_url should be)."""
    return command("az", "storage", "account", "list", "--query",
                   "[].{name: name, resourceGroup: resourceGroup, blob: primaryEndpoints.blob}", "-o", "table")


def keyvault_list_uris() -> Command:
    """The current subscription's vaults (az keyvault list reads ARM's generic resource list, which carries no
    properties: a vault's URL is https://NAME.<the cloud's Key Vault suffix>/, or az keyvault show's vaultUri)."""
    return command("az", "keyvault", "list", "--query", "[].{name: name, resourceGroup: resourceGroup}", "-o",
                   "table")


def keyvault_list_deleted() -> Command:
    """The current subscription's soft-deleted vaults (recoverable with az keyvault recover)."""
    return command("az", "keyvault", "list-deleted", "--resource-type", "vault", "--query", "[].name", "-o", "tsv")


def keyvault_uri(vault: str, vault_id: str | None = None) -> Command:
    return command("az", "keyvault", "show", "--name", vault, *vault_where(vault_id), "--query",
                   "properties.vaultUri", "-o", "tsv")


def storage_blob_endpoint(account: str, account_id: str | None = None) -> Command:
    """By ``--ids`` when ARM gave the account's id (it may be in another subscription), else by name."""
    target = ("--ids", account_id) if _account_where(account_id) and account_id else ("--name", account)
    return command("az", "storage", "account", "show", *target, "--query", "primaryEndpoints.blob", "-o", "tsv")


def storage_account_id(account: str, capture: str = "SCOPE") -> Command:
    return command("az", "storage", "account", "show", "--name", account, "--query", "id", "-o", "tsv",
                   capture=capture)


def read_scope(resource_id: str, check: KeyVaultSecretAccess | BlobAccess, per_secret: bool = False) -> str:
    """Where a read role is granted: the vault itself (or, ``per_secret``, the secret: Key Vault RBAC takes
    individual secrets as scopes, learn.microsoft.com "Provide access to Key Vault keys, certificates, and secrets
    with Azure role-based access control"), or a blob's container (the narrowest scope a Storage data role takes)."""
    if isinstance(check, BlobAccess):
        return f"{resource_id}/blobServices/default/containers/{check.container}"
    return f"{resource_id}/secrets/{check.secret}" if per_secret else resource_id


def container_scope(container: str, capture: str = "SCOPE") -> Var:
    return Var(capture, f"/blobServices/default/containers/{container}")


def list_roles(principal_id: str | Var | None) -> Command:
    return command("az", "role", "assignment", "list", "--assignee", principal_or(principal_id),
                   "--all", "-o", "table")


def list_roles_with_groups(principal_id: str | Var | None) -> Command:
    """The principal's role assignments and those of the groups it is in, transitively (az: assignedTo())."""
    return command("az", "role", "assignment", "list", "--assignee", principal_or(principal_id), "--all",
                   "--include-groups", "-o", "table")


def delete_role_assignment() -> Command:
    return command("az", "role", "assignment", "delete", "--ids", "<the assignment that grants it>")


def show_secret(vault_url: str, secret: str) -> Command:
    return command("az", "keyvault", "secret", "show", "--id", secret_id(vault_url, secret), "--query", "id",
                   "-o", "tsv")


def show_blob(account: str, container: str, blob: str) -> Command:
    return command(
        "az", "storage", "blob", "show", "--account-name", account,
        "--container-name", container,
        "--name", blob, "--auth-mode", "login", "--query", "name", "-o", "tsv",
    )


def build_probe_image(image: str) -> list[Step]:
    """The probe image named by --probe-image / probe.image, built from this checkout and pushed."""
    reference = image or "<registry>/wi-harness-probe:<tag>"
    return [
        command("docker", "build", "-t", reference, "."),
        command("docker", "push", reference),
        advice("or pass --probe-image with an image the cluster's nodes can pull"),
    ]


def mirror_probe_image(image: str, allowed: str = "") -> list[Step]:
    """probe.mode configmap: the stock Python image the nodes could not pull, imported into a registry they can
    pull from (ACR import takes a tag or a digest), then named in probe.image. ``allowed``: the repositories an
    allowed-repositories policy lists (as its refusal prints them); when one is an Azure Container Registry's, the
    import goes there, under that prefix (K8sAllowedRepos matches an image by the prefix), so the image named is
    one the policy admits, not a '<registry>' to fill in."""
    reference = image if values.is_image_reference(image) else "<image>"
    last = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    target = f"wi-harness/{last}" if values.is_image_reference(f"wi-harness/{last}") else "wi-harness/python:3"
    registry, server = "<registry>", "<registry>.azurecr.io"
    acr = _allowed_acr(allowed)
    if acr is not None:
        registry, server, prefix = acr
        if values.is_image_reference(f"{server}/{prefix}{target}"):
            target = prefix + target
    return [
        command("az", "acr", "import", "--name", registry, "--source", reference, "--image", target),
        advice(f"then set probe.image: {server}/{target} in harness.yaml (configmap mode runs the probe "
               "in any image with python3), or pass --probe-image"),
    ]


# an Azure Container Registry's login server in the public, China and US Government clouds (a registry's name is
# 5 to 50 letters and digits, learn.microsoft.com container-registry resource-name-rules), then a path prefix
_ACR_REPO_RE = re.compile(r"^(?P<name>[a-z0-9]{5,50})\.(?P<suffix>azurecr\.(?:io|cn|us))(?:/(?P<prefix>[a-z0-9._/-]*))?$")


def _allowed_acr(allowed: str) -> tuple[str, str, str] | None:
    """(registry name, login server, path prefix ending in '/' or empty) of the first allowed repository that is
    an Azure Container Registry's, from a refusal's list (``["myacr.azurecr.io/", "mcr.microsoft.com/"]``)."""
    for repo in re.findall(r'"([^"]*)"', allowed) or allowed.strip("[]").split():
        found = _ACR_REPO_RE.match(repo.strip())
        if found is not None:
            prefix = found.group("prefix") or ""
            if prefix and not prefix.endswith("/"):
                prefix += "/"
            return found.group("name"), f"{found.group('name')}.{found.group('suffix')}", prefix
    return None


def find_service_principal(resource: str | None) -> Command:
    """Is there a service principal for the resource a scope names in this tenant?"""
    return command("az", "ad", "sp", "list", "--filter", f"servicePrincipalNames/any(n:n eq {odata_literal(resource or '<resource>')})",
                   "--query", "[].{name: displayName, appId: appId}", "-o", "table")


def odata_literal(value: str) -> str:
    """An OData string literal: a quote is doubled, so the value cannot end the literal."""
    return "'" + value.replace("'", "''") + "'"


def list_conditional_access_policies() -> Command:
    return command("az", "rest", "--method", "get", "--url",
                   "https://graph.microsoft.com/v1.0/identity/conditionalAccess/policies",
                   "--query", "value[?state=='enabled'].{name: displayName, policyId: id}", "-o", "table",
                   note="needs Policy.Read.All")


def service_principal_enabled(client_id: str | None) -> Command:
    return command("az", "ad", "sp", "show", "--id", guid_or(client_id, "<client-id>"), "--query", "accountEnabled")


def enable_service_principal(client_id: str | None) -> Command:
    return command("az", "ad", "sp", "update", "--id", guid_or(client_id, "<client-id>"),
                   "--set", "accountEnabled=true")


def helm_upgrade_chart(release: str | None, namespace: str) -> Command:
    """Reinstall the self-managed chart where it is (the chart's README: helm upgrade -n NS RELEASE ...)."""
    return command("helm", "upgrade", "--install", "-n", namespace_or(namespace),
                   object_or(release, "workload-identity-webhook"),
                   "azure-workload-identity/workload-identity-webhook", "--reuse-values")


# a release tag of Azure/azure-workload-identity as its webhook image carries it (webhook:v1.5.1)
_WEBHOOK_VERSION_RE = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.]+)?")


def webhook_manifest_again(version: str | None, tenant_id: str | None) -> list[Step]:
    """A self-managed webhook that no Helm release owns, applied again as upstream's install page documents its
    deployment YAML (envsubst fills its ConfigMap's AZURE_TENANT_ID): helm upgrade --install would refuse the
    objects already there, which carry no Helm ownership ('invalid ownership metadata')."""
    tag = version if version and _WEBHOOK_VERSION_RE.fullmatch(version) else "<version>"
    return [
        advice(f"no Helm release owns this webhook: apply again what installed it, upstream's deployment YAML of "
               f"its version ({tag}), or let the GitOps tool that applies it sync it again:"),
        advice(f"export AZURE_TENANT_ID={guid_or(tenant_id, '<tenant-id>')}; curl -sL https://github.com/Azure/"
               f"azure-workload-identity/releases/download/{tag}/azure-wi-webhook.yaml | envsubst | kubectl apply "
               "-f -"),
    ]


def helm_set_chart_tenant(release: str | None, namespace: str, tenant_id: str | None) -> list[Step]:
    """The chart's azureTenantID (its azure-wi-webhook-config AZURE_TENANT_ID, the tenant the webhook injects into
    every pod whose ServiceAccount names none) set again, the release's other values kept; then the webhook's pods
    made again: the manager reads the ConfigMap through envFrom at start-up (pkg/config ParseConfig), and the
    chart's Deployment carries no checksum of it, so helm upgrade alone leaves the running pods on the old tenant."""
    value = guid_or(tenant_id, "<tenant-id>")
    if release is None:
        return _webhook_config_value(namespace, "AZURE_TENANT_ID", value)
    return _helm_set_chart_value(release, namespace, f"azureTenantID={value}")


WEBHOOK_ENVIRONMENTS = ("AzurePublicCloud", "AzureChinaCloud", "AzureUSGovernmentCloud")


def helm_set_chart_environment(release: str | None, namespace: str, environment: str | None) -> list[Step]:
    """The chart's azureEnvironment (its ConfigMap's AZURE_ENVIRONMENT, the cloud whose authority host the webhook
    injects) set again, the release's other values kept; then the webhook's pods made again (read at start-up)."""
    value = environment if environment in WEBHOOK_ENVIRONMENTS else "<environment>"
    if release is None:
        return _webhook_config_value(namespace, "AZURE_ENVIRONMENT", value)
    return _helm_set_chart_value(release, namespace, f"azureEnvironment={value}")


def _webhook_config_value(namespace: str, key: str, value: str) -> list[Step]:
    """A self-managed webhook that no Helm release owns (its Deployment carries no meta.helm.sh/release-name:
    upstream's deployment YAML, azure-wi-webhook.yaml, applied with kubectl, or a tool that renders the chart
    and applies it): helm upgrade would answer 'has no deployed releases', so its ConfigMap is set itself, then its
    pods made again (the manager reads it at start-up)."""
    ns = namespace_or(namespace)
    return [
        advice("no Helm release owns this webhook (installed from upstream's deployment YAML, or applied by a GitOps "
               "tool): set the value in its ConfigMap, and in the source the tool applies if one does, or it puts the "
               "old value back"),
        kubectl("-n", ns, "patch", "configmap", "azure-wi-webhook-config", "--type", "merge", "-p",
                json.dumps({"data": {key: value}}, separators=(",", ":"))),
        kubectl("-n", ns, "rollout", "restart", "deployment/azure-wi-webhook-controller-manager",
                note="the webhook reads its ConfigMap at start-up"),
        kubectl("-n", ns, "rollout", "status", "deployment/azure-wi-webhook-controller-manager", "--timeout=120s"),
    ]


def _helm_set_chart_value(release: str | None, namespace: str, assignment: str) -> list[Step]:
    """One value of the webhook's chart set again (the release's other values kept), then its pods made again: the
    manager reads its ConfigMap at start-up, and the chart's Deployment carries no checksum of it."""
    ns = namespace_or(namespace)
    return [
        command("helm", "upgrade", "-n", ns, object_or(release, "workload-identity-webhook"),
                "azure-workload-identity/workload-identity-webhook", "--reuse-values", "--set", assignment),
        kubectl("-n", ns, "rollout", "restart", "deployment/azure-wi-webhook-controller-manager",
                note="the webhook reads its ConfigMap at start-up"),
        kubectl("-n", ns, "rollout", "status", "deployment/azure-wi-webhook-controller-manager", "--timeout=120s"),
    ]


def helm_get_values(release: str | None, namespace: str) -> Command:
    """The values a release was installed or last upgraded with (its overrides only)."""
    return command("helm", "get", "values", "-n", namespace_or(namespace), object_or(release, "<release>"))


def helm_list_webhook() -> Command:
    return command("helm", "list", "-A", "--filter", "workload-identity")


def helm_uninstall(release: str | None, namespace: str) -> Command:
    return command("helm", "uninstall", "-n", namespace_or(namespace), object_or(release, "<release>"))


def json_pointer_token(key: str) -> str:
    """One reference token of a JSON pointer (RFC 6901: ``~`` escaped as ``~0``, then ``/`` as ``~1``), for a label
    or annotation key in a JSON patch path."""
    return key.replace("~", "~0").replace("/", "~1")


def _workload_ref(kind: str, name: str) -> str:
    return f"{kind.lower()}/{object_or(name, '<name>')}"


def rollout_restart(kind: str, namespace: str, name: str) -> Command:
    return kubectl("rollout", "restart", _workload_ref(kind, name), "-n", namespace_or(namespace),
                   note="the webhook acts on pod CREATE only")


RESTARTABLE = ("Deployment", "StatefulSet", "DaemonSet")  # the kinds kubectl rollout restart takes
SHOWN_PODS = 10  # pods named one by one in a fix, at most


def statefulset_ordinal(pod: str, statefulset: str) -> int | None:
    """The ordinal of StatefulSet ``statefulset``'s pod ``pod`` (its name is ``<statefulset>-<ordinal>``)."""
    suffix = pod.removeprefix(f"{statefulset}-")
    return int(suffix) if pod.startswith(f"{statefulset}-") and suffix.isdigit() else None


def restart_controller(kind: str, namespace: str, name: str, pods: list[str], *, on_delete: bool = False,
                       partition: int = 0, paused: bool = False) -> list[Step]:
    """What makes the pods of ``kind/name`` again with their template unchanged, for the webhook (which acts on
    pod CREATE only). A Deployment, StatefulSet or DaemonSet: kubectl rollout restart; but one with updateStrategy
    OnDelete, or a StatefulSet with some of ``pods`` below its rollingUpdate ``partition``, has its pods deleted
    by name (a restart replaces none of them, or only those of the partition's ordinal and above), and a
    ``paused`` Deployment is resumed first (kubectl rollout restart refuses it: "can't restart paused deployment
    (run rollout resume first)", kubectl polymorphichelpers/objectrestarter.go). Any other kind (a Job's, a
    ReplicaSet's, a bare pod): its pods deleted, with what makes them again."""
    if on_delete and kind in ("StatefulSet", "DaemonSet"):
        return replace_on_delete_pods(kind, namespace, name, pods)
    if kind == "StatefulSet" and partition > 0 and any(
            (n := statefulset_ordinal(pod, name)) is not None and n < partition for pod in pods):
        return replace_on_delete_pods(kind, namespace, name, pods, partition)
    if paused and kind == "Deployment":
        return [kubectl("rollout", "resume", _workload_ref(kind, name), "-n", namespace_or(namespace),
                        note="a paused Deployment refuses kubectl rollout restart"),
                rollout_restart(kind, namespace, name)]
    if kind in RESTARTABLE:
        return [rollout_restart(kind, namespace, name)]
    again = ("recreate the pods from their manifest:" if kind == "Pod" else
             f"{kind}/{name} makes the deleted pods again{' (while it has not completed)' if kind == 'Job' else ''};")
    return [*(delete_pod(namespace, pod) for pod in pods[:SHOWN_PODS]),
            advice(f"{again} the webhook acts on pod CREATE only")]


def replace_on_delete_pods(kind: str, namespace: str, name: str, pods: list[str],
                           partition: int | None = None) -> list[Step]:
    """The pods of a StatefulSet or DaemonSet with ``updateStrategy: OnDelete`` deleted one by one: a template
    change (``kubectl rollout restart``'s too) replaces none of them, and its controller makes each deleted one
    again from the template as it is then. With ``partition`` (a StatefulSet's rollingUpdate.partition), a
    restart replaces only the pods of that ordinal and above; a deleted pod below it is made again too (at its
    current revision), and the webhook mutates it then."""
    why = (f"has rollingUpdate.partition {partition}: kubectl rollout restart replaces only its pods of ordinal "
           f"{partition} and above; it makes each deleted pod again" if partition else
           "has updateStrategy OnDelete: a template change (kubectl rollout restart's too) replaces no pod, it makes "
           "each deleted one again from the template")
    return [*(delete_pod(namespace, pod) for pod in pods[:SHOWN_PODS]), advice(f"{kind}/{name} {why}")]


def webhook_pods_back(namespace: str, deployment: str, replicas: int | None) -> list[Step]:
    """The webhook's pods made again: a Deployment scaled to zero is scaled to 2, the replicas of upstream's
    deploy manifest and the chart's replicaCount (the add-on in kube-system is not the chart: the note says so for
    both); one whose pods fail is restarted (new pods, once their cause is fixed); then wait for them to be ready."""
    ref = f"deployment/{object_or(deployment, '<deployment>')}"
    again = (kubectl("-n", namespace_or(namespace), "scale", ref, "--replicas=2",
                     note="as upstream's manifests and chart run it")
             if replicas == 0 else kubectl("-n", namespace_or(namespace), "rollout", "restart", ref))
    return [again, kubectl("-n", namespace_or(namespace), "rollout", "status", ref, "--timeout=120s")]


def webhook_ca_bundle(namespace: str, secret: str, configuration: str | None, hook: int) -> list[Command]:
    """The webhook Secret's ca.crt read into $CA, then written as webhook ``hook``'s caBundle in the
    MutatingWebhookConfiguration (a JSON patch; the base64 of the Secret is what caBundle takes)."""
    return [
        kubectl("-n", namespace_or(namespace), "get", "secret", object_or(secret, "<secret>"), "-o",
                "jsonpath={.data.ca\\.crt}", capture="CA"),
        kubectl("patch", "mutatingwebhookconfiguration", object_or(configuration, "<name>"), "--type", "json", "-p",
                Var("CA", '"}]', f'[{{"op":"add","path":"/webhooks/{hook}/clientConfig/caBundle","value":"')),
    ]


def delete_pod(namespace: str, pod: str) -> Command:
    return kubectl("delete", "pod", "-n", namespace_or(namespace), object_or(pod, "<pod>"))


def remove_template_annotation(kind: str, namespace: str, name: str, key: str) -> Command:
    """A JSON patch removing one annotation of the pod template (``/`` in the key escaped as ``~1``)."""
    patch = json.dumps([{"op": "remove", "path": "/spec/template/metadata/annotations/" + json_pointer_token(key)}],
                       separators=(",", ":"))
    return kubectl("patch", _workload_ref(kind, name), "-n", namespace_or(namespace), "--type", "json", "-p", patch)


def patch_template_service_account(kind: str, namespace: str, name: str, service_account: str) -> Command:
    """The pod template's serviceAccountName set (a template change rolls the pods: no restart needed)."""
    patch = json.dumps({"spec": {"template": {"spec": {"serviceAccountName": service_account}}}},
                       separators=(",", ":"))
    return kubectl("patch", _workload_ref(kind, name), "-n", namespace_or(namespace), "--type", "merge", "-p",
                   patch)


def patch_template_labels(kind: str, namespace: str, name: str, labels: dict[str, str]) -> Command:
    patch = json.dumps({"spec": {"template": {"metadata": {"labels": labels}}}}, separators=(",", ":"))
    return kubectl("patch", _workload_ref(kind, name), "-n", namespace_or(namespace), "--type", "merge", "-p",
                   patch)


def patch_cronjob_template_labels(namespace: str, name: str, labels: dict[str, str]) -> Command:
    """Labels onto a CronJob's pod template (spec.jobTemplate.spec.template): the Jobs it makes from then on
    carry them to their pods (a Job's own pod template cannot change)."""
    patch = json.dumps({"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": labels}}}}}},
                       separators=(",", ":"))
    return kubectl("patch", _workload_ref("CronJob", name), "-n", namespace_or(namespace), "--type", "merge", "-p",
                   patch)


def remove_cronjob_template_annotation(namespace: str, name: str, key: str) -> Command:
    """A JSON patch removing one annotation of a CronJob's pod template (spec.jobTemplate.spec.template)."""
    path = "/spec/jobTemplate/spec/template/metadata/annotations/" + json_pointer_token(key)
    patch = json.dumps([{"op": "remove", "path": path}], separators=(",", ":"))
    return kubectl("patch", _workload_ref("CronJob", name), "-n", namespace_or(namespace), "--type", "json", "-p",
                   patch)


def patch_cronjob_template_service_account(namespace: str, name: str, service_account: str) -> Command:
    """A CronJob's pod template's serviceAccountName set: the Jobs it makes from then on run under it."""
    patch = json.dumps({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "serviceAccountName": service_account}}}}}}, separators=(",", ":"))
    return kubectl("patch", _workload_ref("CronJob", name), "-n", namespace_or(namespace), "--type", "merge", "-p",
                   patch)


def delete_job(namespace: str, name: str) -> Command:
    """A Job deleted with its pods (kubectl's default propagation is background: the pods go too)."""
    return kubectl("delete", "job", "-n", namespace_or(namespace), object_or(name, "<job>"))


def unset_env(kind: str, namespace: str, name: str, variable: str) -> Command:
    return kubectl("set", "env", _workload_ref(kind, name), "-n", namespace_or(namespace), f"{variable}-")


# ---------------------------------------------------------------- pod-managed identity (aad-pod-identity) leftovers


def aks_preview_extension() -> Command:
    return command("az", "extension", "add", "--upgrade", "--name", "aks-preview",
                   note="the pod-identity commands need it")


def pod_identity_delete(azure: AzureConfig | None, namespace: str, name: str) -> Command:
    """Remove a pod identity the AKS add-on manages (its AzureIdentity and binding go with it)."""
    cluster, rg = cluster_name_rg(azure)
    return command("az", "aks", "pod-identity", "delete", "--cluster-name", cluster, "--resource-group", rg,
                   "--subscription", subscription_of(azure), "--namespace", namespace_or(namespace),
                   "--name", object_or(name, "<pod-identity-name>"))


def pod_identity_exception_delete(azure: AzureConfig | None, namespace: str, name: str) -> Command:
    cluster, rg = cluster_name_rg(azure)
    return command("az", "aks", "pod-identity", "exception", "delete", "--cluster-name", cluster,
                   "--resource-group", rg, "--subscription", subscription_of(azure),
                   "--namespace", namespace_or(namespace),
                   "--name", object_or(name, "<exception-name>"))


def disable_pod_identity(azure: AzureConfig | None) -> Command:
    return aks_update(azure, "--disable-pod-identity")


def delete_objects(resource: str, namespace: str, names: list[str]) -> Command:
    """``kubectl delete RESOURCE -n NS NAME...``; ``resource`` is one the harness names (azureidentitybinding)."""
    return kubectl("delete", resource, "-n", namespace_or(namespace), *(object_or(n, "<name>") for n in names))


def remove_finalizers(resource: str, namespace: str, name: str) -> Command:
    """The object's finalizers dropped (a merge patch setting them to null), so a delete no controller finishes
    can complete."""
    return kubectl("patch", resource, "-n", namespace_or(namespace), object_or(name, "<name>"), "--type", "merge",
                   "-p", '{"metadata":{"finalizers":null}}')


def delete_crds(names: list[str]) -> Command:
    return kubectl("delete", "crd", *(object_or(n, "<crd>") for n in names),
                   note="also deletes every object of these kinds still there")


def label_pod(namespace: str, pod: str, label: str, value: str) -> Command:
    """A label put on a running pod (``--overwrite``: a wrong value is replaced). The webhook never sees it on a
    running pod: :func:`recreate_pod` after it."""
    return kubectl("label", "pod", "-n", namespace_or(namespace), object_or(pod, "<pod>"), f"{label}={value}",
                   "--overwrite")


def recreate_pod(namespace: str, pod: str) -> Command:
    """A pod no controller owns (kubectl run, a manifest applied by hand) deleted and created again from its own
    spec as the API server holds it: ``kubectl get -o yaml`` piped to ``kubectl replace --force -f -`` (kubectl's
    replace help: "Force replace, delete and then re-create the resource"; the create drops the resourceVersion,
    cli-runtime resource.Helper.Create). For a pod the webhook never mutated only: the copy of a mutated pod
    carries the injected env, which the webhook then leaves as it is."""
    return kubectl("get", "pod", "-n", namespace_or(namespace), object_or(pod, "<pod>"), "-o", "yaml",
                   then=("kubectl", "replace", "--force", "-f", "-"),
                   note="the same pod created again, which the webhook then sees (it acts on pod CREATE only)")


def remove_pod_label(namespace: str, pod: str, label: str) -> Command:
    return kubectl("label", "pod", "-n", namespace_or(namespace), object_or(pod, "<pod>"), f"{label}-")


def remove_template_label(kind: str, namespace: str, name: str, label: str) -> Command:
    """A JSON patch removing one label from a controller's pod template (a JSON pointer escapes ~ and /)."""
    patch = json.dumps([{"op": "remove", "path": f"/spec/template/metadata/labels/{json_pointer_token(label)}"}])
    return kubectl("patch", _workload_ref(kind, name), "-n", namespace_or(namespace), "--type", "json", "-p", patch)


def remake_without_selector_label(kind: str, namespace: str, name: str, label: str) -> Step:
    """A Deployment or DaemonSet whose selector names ``label``: its template must keep it (the API server refuses
    a template its selector does not select: "`selector` does not match template `labels`", pkg/apis/apps/
    validation) and its selector cannot change (spec.selector: field is immutable in apps/v1), so the JSON patch
    of remove_template_label is refused: the workload is made again from its manifest without the label."""
    ref = f"{kind} {namespace_or(namespace)}/{object_or(name, '<name>')}"
    return advice(f"{ref}'s selector names {label}: the API server refuses its pod template without it "
                  "(\"`selector` does not match template `labels`\") and a selector cannot change (\"field is "
                  "immutable\"): make it again from its manifest or chart with neither selector nor template "
                  f"naming {label} (kubectl delete, then kubectl apply; its pods stop in between)")


def remove_cronjob_template_label(namespace: str, name: str, label: str) -> Command:
    """A JSON patch removing one label from a CronJob's pod template (spec.jobTemplate.spec.template): its next
    Jobs' pods go without it; the Jobs already running keep it until they end."""
    path = f"/spec/jobTemplate/spec/template/metadata/labels/{json_pointer_token(label)}"
    patch = json.dumps([{"op": "remove", "path": path}])
    return kubectl("patch", _workload_ref("CronJob", name), "-n", namespace_or(namespace), "--type", "json", "-p",
                   patch)


def delete_secret(namespace: str, name: str) -> Command:
    """A Secret deleted, tolerating one already gone (the harness reads no Secrets, so cannot tell)."""
    return kubectl("delete", "secret", "-n", namespace_or(namespace), object_or(name, "<secret>"),
                   "--ignore-not-found")


# ---------------------------------------------------------------- identities that are applications, or unseen

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph
APPLICATION_READ_ALL = "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"  # Graph's Application.Read.All app role


def app_federated_credential(verb: str, app_id: str | None, name: str, issuer: str, subject: str) -> Command:
    """``az ad app federated-credential create|update``: the credential as the in-line JSON az takes."""
    parameters = json.dumps({"name": name, "issuer": issuer, "subject": subject, "audiences": [TOKEN_AUDIENCE]})
    target = ("--federated-credential-id", name) if verb == "update" else ()
    return command("az", "ad", "app", "federated-credential", verb, "--id", guid_or(app_id, "<app-id>"), *target,
                   "--parameters", parameters)


APP_CREDENTIAL_NAME = "CREDENTIAL"


def app_credential_named(app_id: str | None, issuer: str, subject: str) -> Command:
    """The name of the app registration's federated credential for ``issuer`` and ``subject`` (Graph keeps one per
    pair), captured in $CREDENTIAL; empty when it has none."""
    query = f"[?issuer=={jmespath_literal(issuer)} && subject=={jmespath_literal(subject)}].name | [0]"
    return command("az", "ad", "app", "federated-credential", "list", "--id", guid_or(app_id, "<app-id>"),
                   "--query", query, "-o", "tsv", capture=APP_CREDENTIAL_NAME)


def app_credential_audience_set(app_id: str | None, issuer: str, subject: str) -> Command:
    """``az ad app federated-credential update`` of the credential $CREDENTIAL names, its audience made Entra's (its
    name is left out: Graph does not change it)."""
    parameters = json.dumps({"issuer": issuer, "subject": subject, "audiences": [TOKEN_AUDIENCE]})
    return command("az", "ad", "app", "federated-credential", "update", "--id", guid_or(app_id, "<app-id>"),
                   "--federated-credential-id", Var(APP_CREDENTIAL_NAME), "--parameters", parameters)


def create_service_principal(app_id: str | None) -> Command:
    return command("az", "ad", "sp", "create", "--id", guid_or(app_id, "<app-id>"))


def restore_deleted_item(graph: str | None, object_id: str | None, note: str = "") -> Command:
    """Graph's ``POST /directory/deletedItems/{id}/restore`` through ``az rest`` (az has no command for it), at the
    cloud's Microsoft Graph: a deleted application or service principal back under its object id, for 30 days
    after its deletion."""
    base = url_or((graph or "").rstrip("/"), "<microsoft-graph-endpoint>")
    return command("az", "rest", "--method", "POST", "--url",
                   f"{base}/v1.0/directory/deletedItems/{guid_or(object_id, '<object-id>')}/restore", note=note)


def deleted_applications(graph: str, app_id: str | None) -> Command:
    """Graph's deleted applications of client id ``app_id`` (kept 30 days; az has no command for deleted items,
    az rest reaches Graph's); ``graph`` is the cloud's Microsoft Graph endpoint without its trailing slash."""
    return command("az", "rest", "--method", "GET", "--url",
                   f"{graph}/v1.0/directory/deletedItems/microsoft.graph.application", "--query",
                   f"value[?appId=={jmespath_literal(guid_or(app_id, '<app-id>'))}]"
                   ".{objectId: id, name: displayName, deleted: deletedDateTime}",
                   "-o", "table", note="deleted within 30 days? az rest --method POST --url "
                                       ".../deletedItems/<id>/restore restores it, then its service principal")


def show_application(app_id: str | None) -> Command:
    return command("az", "ad", "app", "show", "--id", guid_or(app_id, "<app-id>"), "--query",
                   "{appId: appId, id: id, displayName: displayName}")


def find_application(app_id: str | None) -> Command:
    """An app registration by appId, listed (empty when there is none): ``az ad app show`` would fail there and
    stop the fix's other lines."""
    return command("az", "ad", "app", "list", "--filter", f"appId eq '{guid_or(app_id, '<app-id>')}'", "--query",
                   "[].{appId: appId, objectId: id, displayName: displayName}", "-o", "table")


def show_service_principal(object_id: str | None) -> Command:
    return command("az", "ad", "sp", "show", "--id", guid_or(object_id, "<object-id>"), "--query",
                   "{appId: appId, id: id, type: servicePrincipalType, name: displayName}")


def config_client_id(workload: str, configured: str, client_id: str, annotated_above: bool = False) -> Step:
    """harness.yaml's client_id for a workload is out of date; the annotation (the identity's) is right, or, with
    ``annotated_above``, is made right by the fix's annotate line before this one."""
    tail = "the annotate line above sets the ServiceAccount's" if annotated_above else "the annotation is right"
    return advice(f"set client_id: {client_id} for {workload} in harness.yaml (it names {configured}, which is not "
                  f"the identity's); {tail}")


def find_identity_anywhere(client_id: str | None, by_object_id: bool = False) -> list[Step]:
    """Where a client id may live: a managed identity of the current subscription, or an app registration; with
    ``by_object_id`` (the harness could not ask Microsoft Graph whose object id the GUID is) also the
    application and service principal whose object id it is."""
    return [
        find_identity_by_client_id(guid_or(client_id, "<client-id>")),
        find_application(client_id),
        *(find_by_object_id(client_id) if by_object_id and values.is_guid(client_id) else []),
        advice("a managed identity in another subscription: az account list, then az identity list "
               "--subscription <id> for each, or az graph query (resource-graph extension)"),
    ]


def pasted_name(value: str) -> str | None:
    """``value`` (a client-id annotation that is not a GUID) stripped, when it reads as an identity's or app
    registration's name pasted for its client id; None for a GUID in braces or spaces, or no name at all."""
    name = value.strip()
    return name if values.is_azure_resource_name(name) and not values.is_guid(name.strip("{}")) else None


def pasted_guid(value: str) -> str | None:
    """The GUID in a client-id annotation pasted with whitespace or braces around it (``{guid}``, as .NET and the
    registry print GUIDs); None when there is none."""
    inner = value.strip().strip("{}")
    return inner if values.is_guid(inner) else None


def find_identity_by_name(name: str) -> list[Command]:
    """A name pasted where the client id belongs: the managed identities and app registrations of that name, with
    the client id to annotate (names are not unique: each is listed)."""
    return [command("az", "identity", "list", "--query",
                    f"[?name=={jmespath_literal(name)}].{{name: name, clientId: clientId, group: resourceGroup}}",
                    "-o", "table"),
            command("az", "ad", "app", "list", "--display-name", name, "--query",
                    "[].{displayName: displayName, appId: appId}", "-o", "table")]


def find_by_object_id(guid: str | None) -> list[Command]:
    """The application and the service principal whose object id is ``guid`` (Graph filters both by id), listed:
    the portal shows an app registration's and an enterprise application's Object ID beside the client id, and
    the one copied into the annotation is found here (the harness names it itself when it may read Graph)."""
    value = guid_or(guid, "<client-id>")
    return [command("az", "ad", kind, "list", "--filter", f"id eq '{value}'", "--query",
                    "[].{appId: appId, displayName: displayName}", "-o", "table",
                    note=f"{what} object id in place of the client id: annotate this appId")
            for kind, what in (("app", "an app registration's"), ("sp", "a service principal's (an enterprise application's or a managed identity's)"))]


def harness_client_id(azure: AzureConfig | None) -> str:
    return azure.credential.client_id if azure and azure.credential else "<harness-client-id>"


def grant_harness_graph_read(azure: AzureConfig | None) -> list[Step]:
    """Application.Read.All on Microsoft Graph granted to the harness's service principal (an admin's consent to
    an application permission is that app role assignment), through Graph itself: ``az ad app permission
    admin-consent`` calls the portal's own API and refuses every cloud but the public one ("This command is not
    yet supported on sovereign clouds", azure-cli's role module), and ``az ad app permission add`` needs an app
    registration, which a harness running as a managed identity (the in-cluster Job) does not have. The first line
    reads both service principals' object ids into the assignment's body; the second makes it."""
    harness = guid_or(harness_client_id(azure), "<harness-client-id>")
    graph = azure.cloud.endpoints.microsoft_graph if azure is not None else ""
    base = url_or(graph.rstrip("/"), "<microsoft-graph-endpoint>")
    body = (f"{{principalId: [?appId=='{harness}'].id | [0], resourceId: [?appId=='{GRAPH_APP_ID}'].id | [0], "
            f"appRoleId: '{APPLICATION_READ_ALL}'}}")
    return [
        command("az", "ad", "sp", "list", "--filter", f"appId in ('{harness}', '{GRAPH_APP_ID}')", "--query", body,
                "-o", "json", capture="GRANT"),
        command("az", "rest", "--method", "POST", "--url",
                f"{base}/v1.0/servicePrincipals(appId='{harness}')/appRoleAssignments", "--body", Var("GRANT"),
                note="Application.Read.All for the harness (admin consent)"),
    ]


def grant_harness_reader_at(azure: AzureConfig | None, scope: str) -> Command:
    return command("az", "role", "assignment", "create", "--assignee", harness_client_id(azure), "--role",
                   "Reader", "--scope", scope)


# what az keyvault set-policy --secret-permissions accepts (az keyvault set-policy -h)
SECRET_PERMISSIONS = ("all", "backup", "delete", "get", "list", "purge", "recover", "restore", "set")


def _known_secret_permissions(given: Sequence[str]) -> list[str]:
    """The permissions az accepts among ``given`` (a policy's, as ARM returned them), lower-cased."""
    return [p.lower() for p in given if p.lower() in SECRET_PERMISSIONS]


def keyvault_set_secret_policy(vault: str, principal_id: str | Var | None, keep: Sequence[str] = (),
                               vault_id: str | None = None) -> Command:
    """get added to the secret permissions ``keep`` (those the object's policy already grants): az replaces an
    existing policy's secret permissions with the ones given, so leaving one out takes it away."""
    kept = _known_secret_permissions(keep)
    permissions = list(dict.fromkeys([*kept, "get"])) if "all" not in kept else ["all"]
    return command("az", "keyvault", "set-policy", "--name", vault, *vault_where(vault_id), "--object-id",
                   principal_or(principal_id), "--secret-permissions", *permissions)


def keyvault_revoke_secret_get(vault: str, principal_id: str | None, held: Sequence[str],
                               vault_id: str | None = None) -> Command:
    """The object's policy without get: set-policy with the secret permissions it keeps (az replaces them), or, when
    get (or all) was all it held of secrets, the policy deleted."""
    kept = _known_secret_permissions(held)
    if "all" in kept:
        kept = [p for p in SECRET_PERMISSIONS if p != "all"]
    kept = list(dict.fromkeys(p for p in kept if p != "get"))
    if kept:
        return command("az", "keyvault", "set-policy", "--name", vault, *vault_where(vault_id), "--object-id",
                       guid_or(principal_id, "<principal-id>"), "--secret-permissions", *kept)
    return command("az", "keyvault", "delete-policy", "--name", vault, *vault_where(vault_id), "--object-id",
                   guid_or(principal_id, "<principal-id>"),
                   note="its key and certificate permissions go too, if it has any")


def keyvault_delete_policy(vault: str, object_id: str, application_id: str | None = None,
                           vault_id: str | None = None) -> Command:
    """The policy for ``object_id``; with ``application_id``, only its compound-identity entry (az delete-policy
    matches object id and application id: an entry made with --application-id is deleted only with it)."""
    through = ["--application-id", guid_or(application_id, "<application-id>")] if application_id else []
    return command("az", "keyvault", "delete-policy", "--name", vault, *vault_where(vault_id), "--object-id",
                   guid_or(object_id, "<object-id>"), *through)


def keyvault_policies(vault: str, vault_id: str | None = None) -> Command:
    return command("az", "keyvault", "show", "--name", vault, *vault_where(vault_id), "--query",
                   "{rbac: properties.enableRbacAuthorization, policies: properties.accessPolicies[].{objectId: "
                   "objectId, applicationId: applicationId}}")


# "any IP range inside 10.0.0.0-10.255.255.255 (private IP addresses) cannot be used to add network rules"
# (Add-AzKeyVaultNetworkRule); the other private ranges are taken to be the same (unverified)
_VNET_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                        "100.64.0.0/10"))


def keyvault_network_rules(vault: str, client_address: str | None = None, vault_id: str | None = None) -> list[Step]:
    """Look at the vault's network rules, then admit the cluster. ``client_address``: the address Key Vault's
    ForbiddenByFirewall answer names ("Client address: X"), where the pod's request came from: a public one (the
    cluster's egress, a load balancer's or NAT gateway's IP) is admitted by an IP rule as printed; a private one
    came over a virtual network (a service endpoint), which an IP rule cannot admit: its subnet is. ``vault_id``:
    the vault's ARM id, whose group and subscription every line names (:func:`vault_where`)."""
    where = vault_where(vault_id)
    looks: list[Step] = [
        command("az", "keyvault", "network-rule", "list", "--name", vault, *where),
        command("az", "keyvault", "show", "--name", vault, *where, "--query",
                "{defaultAction: properties.networkAcls.defaultAction, publicNetworkAccess: "
                "properties.publicNetworkAccess}"),
    ]
    try:
        address = ipaddress.ip_address(client_address or "")
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv4Address) and not any(address in n for n in _VNET_PRIVATE):
        return [*looks,
                command("az", "keyvault", "network-rule", "add", "--name", vault, *where, "--ip-address", str(address),
                        note="the address Key Vault saw the pod's request come from"),
                advice("if the cluster's egress address is not static, admit its node subnet (--subnet, with a "
                       "Microsoft.KeyVault service endpoint) or reach the vault through a private endpoint")]
    private_endpoint = advice("or reach the vault through a private endpoint the cluster's network resolves")
    if isinstance(address, ipaddress.IPv4Address):
        return [*looks,
                advice(f"the request came from the private address {address}, over a virtual network (a service "
                       "endpoint): an IP rule cannot admit it, the node subnet can"),
                command("az", "keyvault", "network-rule", "add", "--name", vault, *where, "--subnet",
                        "<aks-node-subnet-id>"),
                private_endpoint]
    # no address named: the node subnet, or the egress IP (both the person's to fill in)
    return [*looks,
            command("az", "keyvault", "network-rule", "add", "--name", vault, *where, "--subnet",
                    "<aks-node-subnet-id>", note="or --ip-address <the cluster's egress IP>"),
            private_endpoint]


def keyvault_public_access(vault: str, vault_id: str | None = None) -> list[Step]:
    """The vault refuses every public request (publicNetworkAccess Disabled: Key Vault's ForbiddenByConnection):
    its network rules are not honoured then (azure-mgmt-keyvault's VaultProperties.public_network_access: "This will
    override the set firewall rules, meaning that even if the firewall rules are present we will not honor the
    rules"), so adding one changes nothing. Public access back on, its default action Deny, then the cluster's
    network admitted; or a private endpoint."""
    where = vault_where(vault_id)
    return [
        command("az", "keyvault", "show", "--name", vault, *where, "--query",
                "{publicNetworkAccess: properties.publicNetworkAccess, defaultAction: "
                "properties.networkAcls.defaultAction, privateEndpoints: "
                "properties.privateEndpointConnections[].privateEndpoint.id}"),
        advice("public network access is disabled: the vault honours no network rule until it is enabled; "
               "enable it with the firewall closed, then admit the cluster's network"),
        command("az", "keyvault", "update", "--name", vault, *where, "--public-network-access", "Enabled",
                "--default-action", "Deny"),
        command("az", "keyvault", "network-rule", "add", "--name", vault, *where, "--subnet", "<aks-node-subnet-id>",
                note="or --ip-address <the cluster's egress IP>"),
        advice("or keep public access disabled and reach the vault through a private endpoint the cluster's "
               "network resolves"),
    ]


def storage_public_access(account: str, account_id: str | None) -> list[Step]:
    """The account's public network access is disabled: it "denies all logins that match IP or virtual
    network-based firewall rules" (Azure Policy's built-in b2982f36, Storage accounts should disable public network
    access), so a network rule alone changes nothing. Public access back on with the firewall closed, then the
    cluster's network admitted; or a private endpoint."""
    target = ("--ids", account_id) if account_id else ("--name", account)
    return [
        command("az", "storage", "account", "show", *target, "--query",
                "{publicNetworkAccess: publicNetworkAccess, defaultAction: networkRuleSet.defaultAction}"),
        advice("public network access is disabled: the account honours no network rule until it is enabled; "
               "enable it with the firewall closed, then admit the cluster's network"),
        command("az", "storage", "account", "update", *target, "--public-network-access", "Enabled",
                "--default-action", "Deny"),
        command("az", "storage", "account", "network-rule", "add", "--account-name", account,
                *_account_where(account_id), "--subnet", "<aks-node-subnet-id>",
                note="or --ip-address <the cluster's egress IP>"),
        advice("or keep public access disabled and reach the account through a private endpoint the cluster's "
               "network resolves"),
    ]


_IN_GROUP = (r"/subscriptions/([0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12})/resourceGroups/"
             r"([-\w.()]{1,90})/providers/")
_STORAGE_ACCOUNT_ID = re.compile(_IN_GROUP + r"Microsoft\.Storage/storageAccounts/[a-z0-9]{3,24}", re.IGNORECASE)
_VAULT_ID = re.compile(_IN_GROUP + r"Microsoft\.KeyVault/vaults/[A-Za-z0-9-]{3,24}", re.IGNORECASE)


def _account_where(account_id: str | None) -> tuple[str, ...]:
    """``--resource-group RG --subscription S`` from the account's id: az storage account network-rule finds an
    account by --account-name in the current subscription only ("Storage account 'X' not found" for one in
    another subscription)."""
    match = _STORAGE_ACCOUNT_ID.fullmatch(account_id or "")
    return ("--resource-group", match.group(2), "--subscription", match.group(1)) if match else ()


def vault_where(vault_id: str | None) -> tuple[str, ...]:
    """``--resource-group RG --subscription S`` from the vault's id (nothing when it is no vault id): az keyvault
    show, update, set-policy, delete-policy and network-rule take no --ids, and find a vault named by --name alone
    by listing the current subscription's vaults ("The Vault 'X' not found within subscription." for one in
    another subscription; azure-cli keyvault/_validators.py validate_resource_group_name); with --resource-group
    they read it in the current subscription too, so both are named."""
    match = _VAULT_ID.fullmatch(vault_id or "")
    return ("--resource-group", match.group(2), "--subscription", match.group(1)) if match else ()


def storage_network_rules(account: str, account_id: str | None = None) -> list[Step]:
    where = _account_where(account_id)
    target = ("--ids", account_id) if where and account_id else ("--name", account)
    return [
        command("az", "storage", "account", "network-rule", "list", "--account-name", account, *where),
        command("az", "storage", "account", "show", *target, "--query",
                "{defaultAction: networkRuleSet.defaultAction, publicNetworkAccess: publicNetworkAccess}"),
        command("az", "storage", "account", "network-rule", "add", "--account-name", account, *where,
                "--subnet", "<aks-node-subnet-id>", note="or --ip-address <the cluster's egress IP>"),
    ]


def deny_assignments(scope: str | None) -> Command:
    """The deny assignments that apply at ``scope`` (at it and above: Deny Assignments - List For Scope)."""
    return command("az", "role", "deny-assignment", "list", "--scope", scope or "<scope>", "-o", "table")


def orphaned_role_assignments() -> Command:
    """The subscription's role assignments whose principal no longer exists (a deleted identity's, at whatever
    scope): az role assignment list leaves their principalName empty, as Microsoft Graph resolves no object for
    them. The id is shown as ``assignment`` (it holds the scope): ``-o table`` leaves out a key named id, type or
    etag (knack's output.py, SKIP_KEYS), and the id is what az role assignment delete --ids takes."""
    return command("az", "role", "assignment", "list", "--all", "--query",
                   "[?!principalName].{assignment: id, role: roleDefinitionName, principalId: principalId}",
                   "-o", "table")


def delete_role_assignment_id(assignment_id: str) -> Command:
    return command("az", "role", "assignment", "delete", "--ids", assignment_id or "<assignment-id>")


def vault_url_or(vault_url: str) -> str:
    """The vault's URL as the workload reads it (what ``az keyvault secret ... --id`` takes), else a placeholder.
    ``--vault-name`` would make az build ``https://NAME.<the cloud's Key Vault suffix>``, which misses a vault
    reached by another name (a private endpoint's, the lab's)."""
    return url_or(vault_url, "<vault-url>")


def url_or(url: str, placeholder: str) -> str:
    """An https URL with a host and no query or fragment, else ``placeholder``."""
    parts = urllib.parse.urlsplit(url) if url.isprintable() and " " not in url else None
    usable = parts is not None and parts.scheme == "https" and bool(parts.hostname) and not parts.query
    return url if usable and not parts.fragment else placeholder


def secret_id(vault_url: str, secret: str) -> str:
    """The secret's identifier, ``VAULT_URL/secrets/NAME`` (a placeholder where a part is not of its kind)."""
    return vault_url_or(vault_url).rstrip("/") + "/secrets/" + checked(secret, values.is_keyvault_object_name,
                                                                       "<secret-name>")


def enable_secret(vault_url: str, secret: str) -> Command:
    """By ``--id``: the vault the workload reads, by its own URL (see :func:`vault_url_or`). A data-plane write:
    the vault's Owner is refused it (ForbiddenByRbac) without a data role, so the line says which right it takes."""
    return command("az", "keyvault", "secret", "set-attributes", "--id", secret_id(vault_url, secret),
                   "--enabled", "true", note="needs Key Vault Secrets Officer on the vault (RBAC) or the secret "
                   "permission set (access policy); Owner alone is refused")


def show_secret_dates(vault_url: str, secret: str) -> Command:
    return command("az", "keyvault", "secret", "show", "--id", secret_id(vault_url, secret), "--query",
                   "attributes.{enabled: enabled, notBefore: notBefore, expires: expires, updated: updated}")


def set_secret_expiry(vault_url: str, secret: str) -> Command:
    """A new expiry on the latest version: the date is the owner's decision (a placeholder)."""
    return command("az", "keyvault", "secret", "set-attributes", "--id", secret_id(vault_url, secret),
                   "--expires", "<new-expiry-utc>", note="e.g. 2027-01-31T00:00:00Z")


def set_secret_not_before(vault_url: str, secret: str) -> Command:
    """A new activation date on the latest version (now, if its value is good now): the owner's date."""
    return command("az", "keyvault", "secret", "set-attributes", "--id", secret_id(vault_url, secret),
                   "--not-before", "<activation-utc>", note="e.g. the time now, as 2026-12-05T12:00:00Z")


def list_secret_versions(vault_url: str, secret: str) -> Command:
    """Each version's dates, newest first: which one the workload read (the latest), and the one before it."""
    return command("az", "keyvault", "secret", "list-versions", "--id", secret_id(vault_url, secret), "--query",
                   "reverse(sort_by([].{version: id, enabled: attributes.enabled, notBefore: attributes.notBefore, "
                   "expires: attributes.expires, created: attributes.created}, &created))", "-o", "table")


def list_secrets(vault_url: str) -> Command:
    return command("az", "keyvault", "secret", "list", "--id", vault_url_or(vault_url), "--query", "[].name",
                   "-o", "tsv")


def list_deleted_secrets(vault_url: str) -> Command:
    """The vault's soft-deleted secrets (kept for its retention days; their names cannot be set again meanwhile)."""
    return command("az", "keyvault", "secret", "list-deleted", "--id", vault_url_or(vault_url), "--query",
                   "[].name", "-o", "tsv")


def recover_secret(vault_url: str, secret: str) -> Command:
    """``--id`` takes the deleted secret's recovery id, ``VAULT_URL/deletedsecrets/NAME``."""
    return command("az", "keyvault", "secret", "recover", "--id",
                   vault_url_or(vault_url).rstrip("/") + "/deletedsecrets/"
                   + checked(secret, values.is_keyvault_object_name, "<secret-name>"))


def list_blobs(account_url: str, container: str) -> Command:
    """``--blob-endpoint``, not ``--account-name``: az would build ``https://NAME.blob.<suffix>``, which misses an
    account reached by another name (a private endpoint's, the lab's), as for a vault."""
    return command("az", "storage", "blob", "list", "--blob-endpoint", url_or(account_url, "<account-url>"),
                   "--container-name", container, "--auth-mode", "login", "--query", "[].name", "-o", "tsv")


def list_deleted_blobs(account_url: str, container: str) -> Command:
    """The container's soft-deleted blobs: List Blobs with ``--include d`` returns them too, each with ``deleted``
    true in the az CLI's output (its blob JSON transform); without blob soft delete on the account it is empty."""
    return command("az", "storage", "blob", "list", "--blob-endpoint", url_or(account_url, "<account-url>"),
                   "--container-name", container, "--auth-mode", "login", "--include", "d",
                   "--query", "[?deleted].name", "-o", "tsv",
                   note="blobs deleted under blob soft delete, while their retention lasts")


def undelete_blob_advice(account_url: str, container: str, blob: str) -> Advice:
    """Undelete Blob (``PUT ?comp=undelete``, the az CLI's ``storage blob undelete``) restores a soft-deleted blob
    within its retention days; as a comment, since it applies only when the deleted list names the blob (and needs a
    role that may write blobs, such as Storage Blob Data Contributor)."""
    undelete = command("az", "storage", "blob", "undelete", "--blob-endpoint", url_or(account_url, "<account-url>"),
                       "--container-name", container, "--name", blob, "--auth-mode", "login")
    return advice(f"if the second list names {blob}, it was deleted: {render(undelete)}")


def list_containers(account_url: str) -> Command:
    """The account's containers, when the one named is not there (a List Blobs on it would answer ContainerNotFound
    too): List Containers by ``--blob-endpoint``, as :func:`list_blobs`."""
    return command("az", "storage", "container", "list", "--blob-endpoint", url_or(account_url, "<account-url>"),
                   "--auth-mode", "login", "--query", "[].name", "-o", "tsv")


def rotate_issuer_keys(azure: AzureConfig | None) -> Command:
    """AKS issues and publishes a new service-account signing key pair; the old key stays published for a day
    (AKS docs, use-oidc-issuer). az asks before it rotates: --yes answers."""
    return command("az", "aks", "oidc-issuer", "rotate-signing-keys", *cluster_location(azure), "--yes")


def api_server_jwks() -> Command:
    return kubectl("get", "--raw", "/openid/v1/jwks", note="the keys the API server signs tokens with")
