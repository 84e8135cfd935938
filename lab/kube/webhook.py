"""The azure-workload-identity mutating admission webhook, as the AKS add-on installs it.

A pure emulation of ``pkg/webhook/webhook.go`` (``podMutator.Handle``, :func:`serve_pod`) for the v1.5.1, v1.6.0
and PR #1749 layouts (reference ``azure-workload-identity.md`` sections 1.2-1.10), and the objects the add-on and
the chart install. Whether the webhook is called is the API server's decision from the stored
MutatingWebhookConfigurations (:mod:`lab.kube.webhook_dispatch`); :func:`admit_pod` makes it from the
configuration as installed, for the table tests:

* the MutatingWebhookConfiguration's ``objectSelector`` (pod label ``azure.workload.identity/use: "true"``,
  exact value) and ``rules`` (pods, CREATE only: the caller only calls :func:`admit_pod` on CREATE);
* the AKS admissions enforcer, which injects a ``namespaceSelector`` excluding namespaces labelled
  ``control-plane: "true"`` or ``kubernetes.azure.com/managedby: aks`` (Azure/AKS #1771, #4002) and so keeps
  webhooks away from kube-system and AKS-internal namespaces. The lab need not label ``kube-system``, so it is
  excluded by name as well (AWI known-issues.md: pods in kube-system are not injected on AKS).

When the webhook is "down" and a pod matches, the API server's failurePolicy Fail answers 500 InternalError
with the transport error, exactly like an unreachable ``azure-wi-webhook-webhook-service``.

Denials (``admission.Errored(400, err)``) come back through the API server as
``admission webhook "mutation.azure-workload-identity.io" denied the request: <err>``, code 400, and no
``reason``: controller-runtime's ``Errored`` sets only code and message, and the API server's
webhookerrors.ToStatusErr keeps the webhook's Status, so kubectl prints ``Error from server: ...``.

Ordering in the real API server: mutating admission (this webhook) runs in the create handler BEFORE the
object's ``generateName`` is resolved, which is why the webhook names such pods ``<generateName> (prefix)``;
validating admission (Pod Security, :mod:`lab.kube.podsecurity`) runs afterwards on the mutated pod.

The custom token endpoint (v1.6 ``azure.workload.identity/use-<suffix>``, AKS identity bindings) is
implemented for the ConfigMap CA source only; the ClusterTrustBundle source is not emulated.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.kube import helm_release, labelselector
from lab.kube.errors import ApiError
from lab.kube.store import clone

Obj = dict[str, Any]

# ---------------------------------------------------------------- constants (pkg/webhook/consts.go)

WEBHOOK_NAME = "mutation.azure-workload-identity.io"
MWC_NAME = "azure-wi-webhook-mutating-webhook-configuration"
DEPLOYMENT_NAME = "azure-wi-webhook-controller-manager"
SERVICE_NAME = "azure-wi-webhook-webhook-service"
CONFIGMAP_NAME = "azure-wi-webhook-config"
SERVICE_ACCOUNT_NAME = "azure-wi-webhook-admin"
CERT_SECRET_NAME = "azure-wi-webhook-server-cert"
CA_NAME = "azure-workload-identity-ca"
HELM_RELEASE = "aks-managed-workload-identity"  # the add-on's own Helm release (Azure/AKS#5472)
ADDON_NAMESPACE = "kube-system"
# The self-managed chart (charts/workload-identity-webhook): its README installs it as release
# "workload-identity-webhook" in azure-workload-identity-system, and its Deployment carries app/chart/release labels.
CHART_NAME = "workload-identity-webhook"
CHART_RELEASE = "workload-identity-webhook"
CHART_NAMESPACE = "azure-workload-identity-system"
CHART_DESCRIPTION = "A Helm chart to install the azure-workload-identity webhook"  # its Chart.yaml
INSTALLS = ("addon", "helm", "both")
SYSTEM_LABEL = "azure-workload-identity.io/system"

USE_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
EXPIRATION_ANNOTATION = "azure.workload.identity/service-account-token-expiration"
SKIP_CONTAINERS_ANNOTATION = "azure.workload.identity/skip-containers"
INJECT_PROXY_ANNOTATION = "azure.workload.identity/inject-proxy-sidecar"
PROXY_PORT_ANNOTATION = "azure.workload.identity/proxy-sidecar-port"

MIN_EXPIRATION = 3600
MAX_EXPIRATION = 86400
DEFAULT_EXPIRATION = 3600
DEFAULT_PROXY_PORT = 8000
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"

PROXY_INIT_CONTAINER = "azwi-proxy-init"
PROXY_SIDECAR_CONTAINER = "azwi-proxy"

ENV_CLIENT_ID = "AZURE_CLIENT_ID"
ENV_TENANT_ID = "AZURE_TENANT_ID"
ENV_TOKEN_FILE = "AZURE_FEDERATED_TOKEN_FILE"
ENV_AUTHORITY_HOST = "AZURE_AUTHORITY_HOST"
ENV_TOKEN_PROXY = "AZURE_KUBERNETES_TOKEN_PROXY"
ENV_SNI_NAME = "AZURE_KUBERNETES_SNI_NAME"
ENV_CA_FILE = "AZURE_KUBERNETES_CA_FILE"
ENV_CA_DATA = "AZURE_KUBERNETES_CA_DATA"
CA_FILE_PATH = "ca-cert/ca.crt"

V16_VOLUME_PREFIX = "azure-workload-identity-reserved-"
EXPIRATION_STEP = "failed to get service account token expiration"

# The admissions enforcer's namespaceSelector (Azure/AKS #1771, #4002).
ENFORCER_NAMESPACE_SELECTOR: Obj = {
    "matchExpressions": [
        {"key": "control-plane", "operator": "NotIn", "values": ["true"]},
        {"key": "kubernetes.azure.com/managedby", "operator": "NotIn", "values": ["aks"]},
    ]
}

SERVICE_CLUSTER_IP = "10.0.184.9"


def webhook_unreachable(namespace: str = "kube-system") -> str:
    """The dispatcher's ErrCallingWebhook text for a service with no listener behind its ClusterIP."""
    return (f'failed calling webhook "{WEBHOOK_NAME}": failed to call webhook: Post '
            f'"https://{SERVICE_NAME}.{namespace}.svc:443/mutate-v1-pod?timeout=10s": '
            f"dial tcp {SERVICE_CLUSTER_IP}:443: connect: connection refused")


@dataclass(frozen=True)
class Layout:
    """Table 1.8: where the token lands."""

    mount_path: str
    token_path: str
    fixed_volume_name: str | None  # v1.5: a fixed name; v1.6: per-pod reserved name
    hashed_mount: bool = False  # PR #1749: the mount path ends with the pod identity hash

    def mount_for(self, volume_name: str) -> str:
        if self.hashed_mount:
            return f"{self.mount_path}/{volume_name.removeprefix(V16_VOLUME_PREFIX)}"
        return self.mount_path

    @property
    def token_file(self) -> str:
        return f"{self.mount_path}/{self.token_path}"


# The add-on AKS ships today mounts /tokens (Azure/AKS#5541, Jan 2026: standard workload identity keeps
# /var/run/secrets/azure/tokens; the /wi path came with the identity-bindings preview's v1.6 webhook). PR #1749
# (merged 2026-08, "BREAKING CHANGE ... /var/run/secrets/azure/wi/<hash>/token/azure-identity-token") derives the
# mount path from the same pod identity hash as the volume name; that the <hash> segment is the volume name's
# 30 hex characters is the lab's reading of the PR text, not seen in its diff.
LAYOUTS = {
    "v1.5": Layout("/var/run/secrets/azure/tokens", "azure-identity-token", "azure-identity-token"),
    "v1.6": Layout("/var/run/secrets/azure/wi", "token/azure-identity-token", None),
    "pr1749": Layout("/var/run/secrets/azure/wi", "token/azure-identity-token", None, hashed_mount=True),
}
DEFAULT_LAYOUT = "v1.5"
# No release carried PR #1749 when the reference was written: the lab tags its images with the newest release.
DEFAULT_TAGS = {"v1.5": "v1.5.1", "v1.6": "v1.6.0", "pr1749": "v1.6.0"}
MODES = ("up", "down", "absent")


@dataclass
class WebhookSettings:
    mode: str = "up"  # up | down | absent
    install: str = "addon"  # addon (kube-system) | helm (the chart, its own namespace) | both at once
    layout: str = DEFAULT_LAYOUT  # v1.5 (what AKS ships) | v1.6 | pr1749
    tenant_id: str = ""  # azure-wi-webhook-config AZURE_TENANT_ID
    azure_environment: str = "AzurePublicCloud"
    authority_host: str = "https://login.microsoftonline.com/"  # keeps its trailing slash
    audience: str = DEFAULT_AUDIENCE
    namespace: str = "kube-system"
    proxy_image_registry: str = "mcr.microsoft.com/oss/azure/workload-identity"
    version: str = ""  # image tag override; "" follows the layout (see image_tag)
    server_minor: int = 32  # Kubernetes 1.<minor>; >= 32 puts the proxy in initContainers (native sidecar)
    log_level: str = "info"  # the webhook's --log-level, copied into the proxy's args
    # how long the webhook takes to answer the API server (lab ctl webhook --latency-ms): a call that takes its
    # configuration's timeoutSeconds or longer fails "context deadline exceeded" (webhook_dispatch.call)
    latency_ms: int = 0
    # v1.6 custom token endpoint (--custom-token-endpoint-annotation-suffix/-audience); disabled when empty.
    custom_token_endpoint_suffix: str = ""
    custom_token_endpoint_audience: str = ""
    token_proxy: str = ""
    sni_name: str = ""
    ca_data: str = ""
    ca_configmap_name: str = ""
    extra_labels: dict[str, str] = field(default_factory=dict)
    # every manager image the lab itself wrote into a webhook Deployment: a pod running one of them follows these
    # settings (a layout switched by `lab ctl webhook --layout` included); any other image is a person's choice
    deployed_images: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"webhook mode must be one of {MODES}, not {self.mode!r}")
        if self.install not in INSTALLS:
            raise ValueError(f"webhook install must be one of {INSTALLS}, not {self.install!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"webhook layout must be one of {tuple(LAYOUTS)}, not {self.layout!r}")

    @property
    def image_tag(self) -> str:
        """v1.6.0 or v1.5.1 by layout, read at use time so a runtime layout switch also switches images."""
        return self.version or DEFAULT_TAGS[self.layout]

    @property
    def native_sidecar(self) -> bool:
        return server_version_gte(f"1.{self.server_minor}", 1, 32)

    @property
    def proxy_image(self) -> str:
        return f"{self.proxy_image_registry}/proxy:{self.image_tag}"

    @property
    def proxy_init_image(self) -> str:
        return f"{self.proxy_image_registry}/proxy-init:{self.image_tag}"

    @property
    def webhook_image(self) -> str:
        return f"{self.proxy_image_registry}/webhook:{self.image_tag}"

    @property
    def custom_token_endpoint_annotation(self) -> str | None:
        if self.layout == "v1.5" or not self.custom_token_endpoint_suffix:
            return None
        return f"azure.workload.identity/use-{self.custom_token_endpoint_suffix}"


ServiceAccountGetter = Callable[[str, str], Obj | None]

# go-autorest's ActiveDirectoryEndpoint per AZURE_ENVIRONMENT (getAzureAuthorityHost; "" is the public cloud).
# The lab's webhook injects its own Entra instead, so this mapping is what a real webhook would have used. The
# names are autorest/azure environments.go's map as of autorest v0.11.30 (AWI v1.6.0's go.mod), matched
# case-insensitively: AzureCloud and AzureUSGovernment (the az CLI's cloud names) are accepted too.
AUTHORITY_HOSTS = {
    "": "https://login.microsoftonline.com/",
    "AzurePublicCloud": "https://login.microsoftonline.com/",
    "AzureCloud": "https://login.microsoftonline.com/",
    "AzureUSGovernmentCloud": "https://login.microsoftonline.us/",
    "AzureUSGovernment": "https://login.microsoftonline.us/",
    "AzureChinaCloud": "https://login.chinacloudapi.cn/",
    "AzureGermanCloud": "https://login.microsoftonline.de/",
}


def azure_authority_host(cloud: str) -> str:
    """The authority host a real webhook injects for its ConfigMap's AZURE_ENVIRONMENT; ValueError if unknown."""
    if cloud.upper() not in {name.upper() for name in AUTHORITY_HOSTS}:
        raise ValueError(f'autorest/azure: There is no cloud environment matching the name "{cloud.upper()}"')
    return next(host for name, host in AUTHORITY_HOSTS.items() if name.upper() == cloud.upper())


def server_version_gte(server: str, major: int, minor: int) -> bool:
    """serverVersionGTE: the API server's version (generic "1.32.6") at least major.minor."""
    parts = [int(part) for part in re.findall(r"\d+", server)[:2]] + [0, 0]
    return (parts[0], parts[1]) >= (major, minor)


# ---------------------------------------------------------------- errors


def denied(message: str) -> ApiError:
    """An admission denial as the API server relays it (webhookerrors.ToStatusErr)."""
    return ApiError(400, "", f'admission webhook "{WEBHOOK_NAME}" denied the request: {message}')


def unreachable(namespace: str = "kube-system", cause: str | None = None) -> ApiError:
    """failurePolicy Fail with the webhook service down: apierrors.NewInternalError(ErrCallingWebhook)."""
    cause = cause or webhook_unreachable(namespace)
    return ApiError(500, "InternalError", f"Internal error occurred: {cause}", {"causes": [{"message": cause}]})


def no_endpoints(namespace: str = "kube-system") -> ApiError:
    """The Service has no ready endpoint (its pods crash): the API server's service resolver fails the call."""
    return unreachable(namespace, f'failed calling webhook "{WEBHOOK_NAME}": failed to call webhook: Post '
                                  f'"https://{SERVICE_NAME}.{namespace}.svc:443/mutate-v1-pod?timeout=10s": '
                                  f'no endpoints available for service "{SERVICE_NAME}"')


class GoParseError(ValueError):
    """A strconv.ParseInt error, with Go's message text."""


def go_quote(text: str) -> str:
    """strconv.Quote for the common cases (escapes backslash, quote and control characters)."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


_GO_DECIMAL = re.compile(r"[+-]?[0-9]+")


def go_parse_int(text: str, bits: int) -> int:
    """strconv.ParseInt(text, 10, bits): no spaces, no underscores, an optional sign."""
    if not _GO_DECIMAL.fullmatch(text):
        raise GoParseError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise GoParseError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


# ---------------------------------------------------------------- is the webhook called?


def namespace_excluded(namespace: str, namespace_labels: dict[str, str]) -> bool:
    """The AKS admissions enforcer keeps kube-system and AKS-managed namespaces away from webhooks."""
    if namespace == "kube-system":
        return True
    labels = namespace_labels or {}
    return not all(labelselector.requirement_matches(r, labels) for r in ENFORCER_NAMESPACE_SELECTOR["matchExpressions"])


def pod_selected(pod: Obj) -> bool:
    """objectSelector.matchLabels {azure.workload.identity/use: "true"}: key and exact value."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get(USE_LABEL) == "true"


def webhook_called(pod: Obj, namespace: str, settings: WebhookSettings, namespace_labels: dict[str, str]) -> bool:
    if settings.mode == "absent":
        return False
    return pod_selected(pod) and not namespace_excluded(namespace, namespace_labels)


# ---------------------------------------------------------------- the handler


# Given the serving pod's --log-level, the records it writes for one request.
Records = Callable[[str], list[Obj]]
DecisionLog = Callable[[Records], None]
# mlog's levels as logr verbosities: controller-runtime's per-request lines are V(5), shown from "trace" on
VERBOSE_LEVELS = ("trace", "all")


def admit_pod(
    pod: Obj,
    namespace: str,
    settings: WebhookSettings,
    get_service_account: ServiceAccountGetter,
    namespace_labels: dict[str, str],
    decision_log: DecisionLog | None = None,
    endpoints_ready: bool = True,
) -> Obj:
    """Mutating admission for a pod CREATE against the configuration the lab installs (``settings``), for the
    webhook's own table tests; the lab's API server dispatches from the stored configurations instead
    (:mod:`lab.kube.webhook_dispatch`). Returns the (possibly) mutated pod; raises ApiError on denial.

    ``get_service_account(namespace, name)`` returns the ServiceAccount object or None. ``decision_log`` gets
    the JSON log records the serving webhook pod writes for this request (see :func:`decision_records`).
    ``endpoints_ready`` False: the webhook's pods have crashed (lab.kube.webhook_pods), nothing serves the call.
    """
    if not webhook_called(pod, namespace, settings, namespace_labels):
        return pod
    if settings.mode == "down":
        raise unreachable(settings.namespace)
    if not endpoints_ready:
        raise no_endpoints(settings.namespace)
    return serve_pod(pod, namespace, settings, get_service_account, decision_log)


def serve_pod(pod: Obj, namespace: str, settings: WebhookSettings, get_service_account: ServiceAccountGetter,
              decision_log: DecisionLog | None = None) -> Obj:
    """The webhook's handler for one AdmissionReview of a pod CREATE that reached it (the lab's API server
    decides that from the stored configurations: :mod:`lab.kube.webhook_dispatch`)."""
    mutation = PodMutation(clone(pod), namespace, settings)
    try:
        mutated = mutation.run(get_service_account)
    except ApiError as exc:
        if decision_log is not None:
            decision_log(lambda level, denial=exc: decision_records(mutation, level, denial))
        raise
    if decision_log is not None:
        decision_log(lambda level: decision_records(mutation, level, None))
    return mutated


def decision_records(mutation: PodMutation, log_level: str, denial: ApiError | None) -> list[Obj]:
    """What the webhook logs for one request, as mlog's JSON lines (without ``ts``, added when written).

    The handler logs only its failures: ``logger.Error("<step>", err)`` on a logger named "handler" carrying
    pod, namespace and service-account (pkg/webhook/webhook.go). controller-runtime's admission server adds
    "received request" and "wrote response" at V(5), which mlog shows from --log-level=trace.
    """
    records: list[Obj] = []
    verbose = log_level in VERBOSE_LEVELS
    name = mutation.meta.get("name") or ""
    if verbose:  # the request's user is not known to the lab's in-process webhook, so "user" is left out
        records.append({"level": "debug", "logger": "admission", "msg": "received request",
                        "object": {"name": name, "namespace": mutation.namespace}, "namespace": mutation.namespace,
                        "name": name, "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "requestID": mutation.request_id})
    if denial is not None and mutation.failed_step:
        records.append({"level": "error", "logger": "handler", "msg": mutation.failed_step,
                        "pod": mutation.pod_name, "namespace": mutation.namespace,
                        "service-account": mutation.service_account_name, "error": mutation.error_text})
    if verbose:  # written with the request-less logger: no object fields
        result = {"code": 400, "reason": "", "message": mutation.error_text} if denial is not None else {"code": 200}
        records.append({"level": "debug", "logger": "admission", **result, "msg": "wrote response",
                         "requestID": mutation.request_id, "allowed": denial is None})
    return records


def pod_name_for_webhook(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return meta.get("name") or (meta.get("generateName") or "") + " (prefix)"


def v16_volume_name(pod_name: str) -> str:
    """buildVolumeName: the reserved prefix plus sha256(podName) cut to the 63-character limit."""
    digest = hashlib.sha256(pod_name.encode()).hexdigest()
    return V16_VOLUME_PREFIX + digest[: 63 - len(V16_VOLUME_PREFIX)]


class PodMutation:
    """One run of podMutator.Handle on a private copy of the pod."""

    def __init__(self, pod: Obj, namespace: str, settings: WebhookSettings) -> None:
        self.pod = pod
        self.namespace = namespace
        self.settings = settings
        self.layout = LAYOUTS[settings.layout]
        self.meta: Obj = pod.setdefault("metadata", {})
        self.spec: Obj = pod.setdefault("spec", {})
        self.annotations: dict[str, str] = self.meta.get("annotations") or {}
        self.pod_name = pod_name_for_webhook(pod)
        self.service_account_name = self.spec.get("serviceAccountName") or "default"
        self.request_id = str(uuid.uuid4())
        self.failed_step = ""  # the handler's logger.Error message for a denial
        self.error_text = ""
        # buildVolumeName(podName); upstream passes it to each step, so the table tests may set it
        self.volume_name = self.layout.fixed_volume_name or v16_volume_name(self.pod_name)

    def run(self, get_service_account: ServiceAccountGetter) -> Obj:
        # for daemonset/deployment pods the namespace is not set: the webhook sets the request namespace
        self.meta["namespace"] = self.namespace
        service_account = self.service_account(get_service_account)
        sa_annotations: dict[str, str] = (service_account.get("metadata") or {}).get("annotations") or {}
        if INJECT_PROXY_ANNOTATION in self.annotations:
            self.inject_proxy()
        expiration = self.token_expiration(sa_annotations)
        client_id = sa_annotations.get(CLIENT_ID_ANNOTATION, "")
        # the tenant-id key wins when present, even with an empty value (which then injects nothing)
        tenant_id = sa_annotations.get(TENANT_ID_ANNOTATION, self.settings.tenant_id)
        custom_endpoint = self.uses_custom_token_endpoint()
        self.mutate_containers(client_id, tenant_id, custom_endpoint)
        self.add_volume(expiration, custom_endpoint)
        return self.pod

    def mutate_containers(self, client_id: str, tenant_id: str, custom_endpoint: bool) -> None:
        """Env and mount into every init container and container the skip list does not name."""
        skip = self.skip_containers()
        env = self.desired_env(client_id, tenant_id, custom_endpoint)
        for key in ("initContainers", "containers"):
            for container in self.spec.get(key) or []:
                if container.get("name") in skip:
                    continue
                add_env(container, env)
                self.add_mount(container)

    # -- step 3: the ServiceAccount must exist

    def service_account(self, get_service_account: ServiceAccountGetter) -> Obj:
        name = self.service_account_name
        found = get_service_account(self.namespace, name)
        if found is None:
            raise self.deny("failed to get service account", f'serviceaccounts "{name}" not found')
        return found

    def deny(self, step: str, error: str) -> ApiError:
        self.failed_step, self.error_text = step, error
        return denied(error)

    # -- step 4: the migration proxy

    def inject_proxy(self) -> None:
        if self.spec.get("hostNetwork"):
            raise self.deny("failed to inject proxy sidecar", "hostNetwork is set to true, cannot inject proxy sidecar")
        port = self.proxy_port()
        init_containers = self.spec.setdefault("initContainers", [])
        if not any(c.get("name") == PROXY_INIT_CONTAINER for c in init_containers):
            init_containers.append(self.proxy_init_container(port))
        target = "initContainers" if self.settings.native_sidecar else "containers"
        containers = self.spec.setdefault(target, [])
        if not any(c.get("name") == PROXY_SIDECAR_CONTAINER for c in containers):
            containers.insert(0, self.proxy_sidecar_container(port))

    def proxy_port(self) -> int:
        if PROXY_PORT_ANNOTATION not in self.annotations:
            return DEFAULT_PROXY_PORT
        try:
            return go_parse_int(self.annotations[PROXY_PORT_ANNOTATION], 32)
        except GoParseError as exc:
            raise self.deny("failed to get proxy port", f"failed to parse proxy sidecar port: {exc}") from None

    def proxy_init_container(self, port: int) -> Obj:
        return {
            "name": PROXY_INIT_CONTAINER,
            "image": self.settings.proxy_init_image,
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "privileged": True,
                "runAsNonRoot": False,
                "runAsUser": 0,
            },
            "env": [{"name": "PROXY_PORT", "value": str(port)}],
        }

    def proxy_sidecar_container(self, port: int) -> Obj:
        level = self.settings.log_level
        container: Obj = {
            "name": PROXY_SIDECAR_CONTAINER,
            "image": self.settings.proxy_image,
            "imagePullPolicy": "IfNotPresent",
            "args": [f"--proxy-port={port}", f"--log-level={level}"],
            "ports": [{"containerPort": port}],
            "lifecycle": {"postStart": {"exec": {
                "command": ["/proxy", f"--proxy-port={port}", "--probe", f"--log-level={level}"],
            }}},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "privileged": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
            },
        }
        if self.settings.native_sidecar:
            container["restartPolicy"] = "Always"
        return container

    # -- step 5: token expiration, pod annotation > SA annotation > 3600

    def token_expiration(self, sa_annotations: dict[str, str]) -> int:
        raw = self.annotations.get(EXPIRATION_ANNOTATION) or sa_annotations.get(EXPIRATION_ANNOTATION) or ""
        expiration = DEFAULT_EXPIRATION
        if raw:
            try:
                expiration = go_parse_int(raw, 64)
            except GoParseError as exc:
                raise self.deny(EXPIRATION_STEP, str(exc)) from None
        if not MIN_EXPIRATION <= expiration <= MAX_EXPIRATION:
            raise self.deny(EXPIRATION_STEP, f"token expiration {expiration} not valid. "
                            f"Expected value to be between {MIN_EXPIRATION} and {MAX_EXPIRATION}")
        return expiration

    # -- steps 6-9: env vars and mounts

    def skip_containers(self) -> set[str]:
        raw = self.annotations.get(SKIP_CONTAINERS_ANNOTATION, "")
        return {part.strip() for part in raw.split(";")} if raw else set()

    def uses_custom_token_endpoint(self) -> bool:
        annotation = self.settings.custom_token_endpoint_annotation
        return annotation is not None and self.annotations.get(annotation, "").lower() == "true"

    @property
    def mount_path(self) -> str:
        return self.layout.mount_for(self.volume_name)

    def desired_env(self, client_id: str, tenant_id: str, custom_endpoint: bool) -> list[tuple[str, str]]:
        env = [
            (ENV_CLIENT_ID, client_id),
            (ENV_TENANT_ID, tenant_id),
            (ENV_TOKEN_FILE, f"{self.mount_path}/{self.layout.token_path}"),
            (ENV_AUTHORITY_HOST, self.settings.authority_host),
        ]
        if custom_endpoint:
            env += [
                (ENV_TOKEN_PROXY, self.settings.token_proxy),
                (ENV_SNI_NAME, self.settings.sni_name),
                (ENV_CA_FILE, f"{self.mount_path}/{CA_FILE_PATH}"),
                (ENV_CA_DATA, self.settings.ca_data),
            ]
        return env

    def add_mount(self, container: Obj) -> None:
        mount = {"name": self.volume_name, "mountPath": self.mount_path, "readOnly": True}
        mounts = container.setdefault("volumeMounts", [])
        for index, existing in enumerate(mounts):
            if existing.get("name") == self.volume_name:
                if self.settings.layout != "v1.5":  # v1.6 replaces, v1.5 keeps the user's mount
                    mounts[index] = mount
                return
        mounts.append(mount)

    # -- step 10: the projected volume

    def add_volume(self, expiration: int, custom_endpoint: bool) -> None:
        volumes = self.spec.setdefault("volumes", [])
        if self.settings.layout == "v1.5":
            if any(_has_token_source(v, self.layout.token_path) for v in volumes):
                return
            volumes.append(self.projected_volume(expiration, custom_endpoint))
            return
        volume = self.projected_volume(expiration, custom_endpoint)
        for index, existing in enumerate(volumes):
            if existing.get("name") == volume["name"]:
                volumes[index] = volume
                return
        volumes.append(volume)

    def projected_volume(self, expiration: int, custom_endpoint: bool) -> Obj:
        audience = self.settings.custom_token_endpoint_audience if custom_endpoint else self.settings.audience
        sources: list[Obj] = [{"serviceAccountToken": {
            "audience": audience, "expirationSeconds": expiration, "path": self.layout.token_path,
        }}]
        if custom_endpoint and self.settings.ca_configmap_name:
            sources.append({"configMap": {
                "name": self.settings.ca_configmap_name,
                "items": [{"key": "ca.crt", "path": CA_FILE_PATH}],
                "optional": False,
            }})
        # no defaultMode: 420 is the API server's defaulting after admission (the e2e suite asserts the stored 420)
        return {"name": self.volume_name, "projected": {"sources": sources}}


def _has_token_source(volume: Obj, token_path: str) -> bool:
    projected = volume.get("projected")
    if not projected:
        return False
    return any((source.get("serviceAccountToken") or {}).get("path") == token_path
               for source in projected.get("sources") or [])


def add_env(container: Obj, desired: list[tuple[str, str]]) -> None:
    """Append each var not already in ``env`` (by name) and with a non-empty value; envFrom is not consulted."""
    present = {entry.get("name") for entry in container.get("env") or []}
    for name, value in desired:
        if name not in present and value:
            container.setdefault("env", []).append({"name": name, "value": value})
            present.add(name)


# ---------------------------------------------------------------- the add-on's API objects


@dataclass(frozen=True)
class Install:
    """Where one install of the webhook lives: the add-on's or the chart's namespace and Helm release."""

    namespace: str
    release: str
    chart: bool

    @property
    def chart_labels(self) -> dict[str, str]:
        return {"app": CHART_NAME, "chart": CHART_NAME, "release": self.release} if self.chart else {}


ADDON = Install(ADDON_NAMESPACE, HELM_RELEASE, chart=False)
CHART = Install(CHART_NAMESPACE, CHART_RELEASE, chart=True)


def installs_of(settings: WebhookSettings) -> list[Install]:
    return {"addon": [ADDON], "helm": [CHART], "both": [ADDON, CHART]}[settings.install]


def namespace_for(install: str) -> str:
    """The namespace whose Service the cluster's one MutatingWebhookConfiguration calls: with both installed,
    the add-on's (AKS reconciles its own objects back, Azure/AKS#5472)."""
    return CHART_NAMESPACE if install == "helm" else ADDON_NAMESPACE


def _meta(name: str, settings: WebhookSettings, install: Install | None = None, namespaced: bool = True) -> Obj:
    install = install or installs_of(settings)[0]
    meta: Obj = {
        "name": name,
        "labels": {SYSTEM_LABEL: "true", **install.chart_labels, **settings.extra_labels},
        "annotations": {
            "meta.helm.sh/release-name": install.release,
            "meta.helm.sh/release-namespace": install.namespace,
        },
    }
    if namespaced:
        meta["namespace"] = install.namespace
    return meta


def mutating_webhook_configuration(settings: WebhookSettings) -> Obj:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _meta(MWC_NAME, settings, namespaced=False),
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "admissionReviewVersions": ["v1", "v1beta1"],
            # caBundle: the Secret's ca.crt, as the running webhook's cert-controller injects it (lab.kube.webhook_tls)
            "clientConfig": {"caBundle": server_cert_data(settings.namespace)["ca.crt"], "service": {
                "name": SERVICE_NAME, "namespace": settings.namespace, "path": "/mutate-v1-pod", "port": 443,
            }},
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            # added by the AKS admissions enforcer, not by the chart
            "namespaceSelector": clone(ENFORCER_NAMESPACE_SELECTOR),
            "objectSelector": {"matchLabels": {USE_LABEL: "true"}},
            "reinvocationPolicy": "IfNeeded",
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
                "scope": "*",
            }],
            "sideEffects": "None",
            "timeoutSeconds": 10,  # API default; the chart sets none
        }],
    }


def _manager_container(settings: WebhookSettings, install: Install) -> Obj:
    args = [f"--log-level={settings.log_level}", "--metrics-addr=:8095", "--metrics-backend=prometheus"]
    if install.chart:  # the chart's template passes these two
        args = ["--arc-cluster=false", "--log-encoder=console", *args]
    settings.deployed_images.add(settings.webhook_image)
    return {
        "name": "manager",
        "image": settings.webhook_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/manager"],
        "args": args,
        "env": [{"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}],
        "envFrom": [{"configMapRef": {"name": CONFIGMAP_NAME}}],
        "ports": [
            {"containerPort": 9443, "name": "webhook-server", "protocol": "TCP"},
            {"containerPort": 8095, "name": "metrics", "protocol": "TCP"},
            {"containerPort": 9440, "name": "healthz", "protocol": "TCP"},
        ],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "healthz"}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "healthz"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": 65532,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"mountPath": "/certs", "name": "cert", "readOnly": True}],
    }


def deployment(settings: WebhookSettings, install: Install | None = None) -> Obj:
    install = install or installs_of(settings)[0]
    pod_labels = {SYSTEM_LABEL: "true", "app": CHART_NAME, **install.chart_labels}
    selector = {SYSTEM_LABEL: "true", **install.chart_labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(DEPLOYMENT_NAME, settings, install),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [_manager_container(settings, install)],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": SERVICE_ACCOUNT_NAME,
                    "volumes": [{"name": "cert",
                                 "secret": {"defaultMode": 420, "secretName": CERT_SECRET_NAME}}],
                },
            },
        },
    }


def config_map(settings: WebhookSettings, install: Install | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(CONFIGMAP_NAME, settings, install),
        "data": {"AZURE_ENVIRONMENT": settings.azure_environment, "AZURE_TENANT_ID": settings.tenant_id},
    }


def service(settings: WebhookSettings, install: Install | None = None) -> Obj:
    """azure-wi-webhook-webhook-service: 443 -> the manager's 9443, selecting the Deployment's pods."""
    install = install or installs_of(settings)[0]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(SERVICE_NAME, settings, install),
        "spec": {"ports": [{"port": 443, "protocol": "TCP", "targetPort": 9443}],
                 "selector": {SYSTEM_LABEL: "true", **install.chart_labels}, "type": "ClusterIP"},
    }


_CERTS: dict[str, dict[str, str]] = {}


def server_cert_data(namespace: str) -> dict[str, str]:
    """What cert-controller's rotator keeps in the Secret: its CA (CN azure-workload-identity-ca, O
    azure-workload-identity) and a serving certificate for <service>.<namespace>.svc, base64 as Secret data
    (lab.kube.webhook_tls). Made once per namespace."""
    if namespace not in _CERTS:
        from lab.kube import webhook_tls

        parts = webhook_tls.secret_data(namespace)
        _CERTS[namespace] = {key: base64.b64encode(value).decode() for key, value in parts.items()}
    return dict(_CERTS[namespace])


def server_cert_secret(settings: WebhookSettings, install: Install | None = None) -> Obj:
    install = install or installs_of(settings)[0]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(CERT_SECRET_NAME, settings, install),
            "type": "Opaque", "data": server_cert_data(install.namespace)}


def service_account(settings: WebhookSettings, install: Install | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SERVICE_ACCOUNT_NAME, settings, install)}


def pod_disruption_budget(settings: WebhookSettings, install: Install) -> Obj:
    """The chart's azure-wi-webhook-controller-manager PodDisruptionBudget (its template
    azure-wi-webhook-controller-manager-poddisruptionbudget.yaml with values.yaml's podDisruptionBudget.minAvailable
    1): kubectl drain evicts one of the two pods, then waits (429) until another is ready. The add-on is given none:
    # unverified: whether the AKS add-on's manifest carries one is not known from a source."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(DEPLOYMENT_NAME, settings, install),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {SYSTEM_LABEL: "true", **install.chart_labels}}},
    }


def webhook_objects(settings: WebhookSettings) -> list[tuple[str, str, str, Obj]]:
    """(group, plural, namespace, object) for what the installs put in the API; nothing when absent. Both installs
    share the one cluster-scoped MutatingWebhookConfiguration name, so there is only ever one of it."""
    if settings.mode == "absent":
        return []
    objects = [("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "",
                mutating_webhook_configuration(settings))]
    for install in installs_of(settings):
        ns = install.namespace
        made = [
            ("apps", "deployments", ns, deployment(settings, install)),
            ("", "configmaps", ns, config_map(settings, install)),
            ("", "serviceaccounts", ns, service_account(settings, install)),
            ("", "services", ns, service(settings, install)),
            ("", "secrets", ns, server_cert_secret(settings, install)),
        ]
        if install.chart:
            made.append(("policy", "poddisruptionbudgets", ns, pod_disruption_budget(settings, install)))
        objects += made
        if install.chart:  # helm list/status/get find the chart's release, as after its README's helm install
            manifest = [objects[0][3], *(obj for *_, obj in made)]
            objects.append(("", "secrets", ns, chart_release(settings, install, manifest)))
    return objects


def chart_release(settings: WebhookSettings, install: Install, objects: list[Obj]) -> Obj:
    version = settings.image_tag.removeprefix("v")
    chart = {"name": CHART_NAME, "version": version, "description": CHART_DESCRIPTION, "apiVersion": "v2",
             "appVersion": f"v{version}", "type": "application"}
    record = helm_release.release_record(name=install.release, namespace=install.namespace, chart=chart,
                                         values={"azureTenantID": settings.tenant_id}, objects=objects)
    return helm_release.release_secret(record)
