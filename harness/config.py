"""``harness.yaml``: load and validate it, answering every bad field with ONE line that names it.

Shape (relative paths are relative to the file's directory)::

    cluster:   {kubeconfig: PATH, context: NAME, ca_file: PATH}           # all optional
    azure:                                                                # optional: no ARM checks without it
      cloud: AzureCloud | AzureChinaCloud | AzureUSGovernment
             | {name, authority_host, resource_manager, resource_manager_audience,   # a custom cloud
                keyvault_hosts: [.SUFFIX | HOST[:PORT|:*]], keyvault_resource: URL,
                storage_hosts: [...], storage_resource: URL (default https://storage.azure.com),
                microsoft_graph: URL (Microsoft Graph; known clouds: their own)}
      ca_file: PATH                                            # extra CA bundle (private clouds, the lab)
      tenant_id: GUID
      subscription_id: GUID
      resource_group: NAME
      cluster_name: NAME
      credential: {client_id: GUID, client_secret_file: PATH | client_secret_env: VAR}
                                                               # absent: DefaultAzureCredential
    probe:                                                     # all optional
      mode: configmap | image           # configmap (default): the stdlib probe's source in a ConfigMap, run by
                                        # python3 in a stock public Python image; image: an image of your own
                                        # (the Dockerfile's probe target, with the azure-identity cross-check)
      image: IMAGE                      # configmap: any image with python3 (default: STOCK_PYTHON_IMAGE)
      timeout_seconds, request_timeout_seconds, sdk_cross_check
      retry_seconds: 30                 # waiting out transient answers (429, 5xx, a new federated credential, issuer
                                        # keys Entra has not seen yet) in all; at most half of timeout_seconds
      ca_file: PATH                     # a CA bundle as the probe's container sees it
      ca_configmap: NAME | {name: NAME, key: ca.crt}   # a CA bundle from a ConfigMap in each workload's namespace
      resources: {requests: {cpu, memory}, limits: {cpu, memory}}   # merged over the defaults (a CPU limit stays)
      node_selector: {KEY: VALUE}, tolerations: [{key, operator, value, effect, tolerationSeconds}]
      labels: {KEY: VALUE}, annotations: {KEY: VALUE}   # never the harness's own labels or the use label
      image_pull_secrets: [NAME]        # docker-registry Secrets in each workload's namespace, for a private image
    harness:                                                   # the harness as a Job (manifests render); optional
      client_id: GUID                   # its own identity, annotated on its ServiceAccount (Workload ID)
      namespace: NS, service_account: NAME   # default wi-harness, wi-harness
      image: IMAGE                      # the Dockerfile's harness target
      webhook_namespace: NS             # the webhook's Deployment (default kube-system, the AKS add-on's)
      report_claim: PVC                 # keeps reports/ (default: an emptyDir; run.json is also in the log)
    workloads:
      - namespace: NS
        service_account: SA
        client_id: GUID                 # optional: otherwise taken from the ServiceAccount
        tenant_id: GUID                 # optional: otherwise azure.tenant_id / the webhook's
        identity_resource_id: ARM ID    # optional: otherwise looked up by client id
        scope: SCOPE                    # optional: the token exchange scope
        access:
          - {kind: keyvault_secret, vault_url: URL, secret: NAME, expect: allow|deny}
          - {kind: blob, account_url: URL, container: NAME, blob: NAME, expect: allow|deny}
                                        # each may carry scope:, else the one its host's suffix implies

An access URL must be a host of the cloud's service of its kind (*.vault.azure.net, *.managedhsm.azure.net,
*.blob.core.windows.net in AzureCloud): only those hosts ever receive a workload's token. No URL may carry a
user name or password. Secrets never live in the file itself and never appear in a model's repr or errors.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import typing
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from harness import values
from harness.clouds import (
    DEFAULT_ARM_AUDIENCE,
    KNOWN_CLOUDS,
    STORAGE_RESOURCE,
    CloudEndpoints,
    HostPattern,
    ResourceHosts,
    expected_hosts,
    parse_https_url,
    service_for,
)
from harness.input_files import (
    MAX_CONFIG_BYTES,
    MAX_KUBECONFIG_BYTES,
    MAX_SECRET_BYTES,
    InputFileError,
    check_ca_bundle,
    check_regular_file,
    load_yaml,
    read_secret,
    read_text,
    yaml_problem,
)
from harness.redact import has_userinfo, mask_userinfo

# The image probe.mode configmap runs by default: Microsoft's Azure Linux Python base image, on MCR (which every
# AKS node can pull, also where Docker Hub is blocked), multi-arch, pinned by digest. The digest is the one an
# automated daily scan of MCR images recorded for the 3.12 tag (Python 3.12.15, created 2026-10-06): GitHub
# maniSbindra/sbi, docs/daily_recommendations.md, report of 2026-10-08. Unverified: that it is the multi-arch
# index (what `docker images --digests` records after a pull by tag) rather than the amd64 manifest.
STOCK_PYTHON_IMAGE = (
    "mcr.microsoft.com/azurelinux/base/python:3.12"
    "@sha256:d1a693353b7db0383e66a61416a049f617fdfb89435dcaac543749fb4f14950a"
)
PROBE_MODES = ("configmap", "image")
DEFAULT_PROBE_REQUESTS = {"cpu": "10m", "memory": "32Mi"}
DEFAULT_PROBE_LIMITS = {"cpu": "200m", "memory": "128Mi"}  # policy engines (Azure Policy) refuse a pod without
PROBE_RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
# Labels the harness puts on what it creates, and the one the webhook reads: probe.labels may not set them.
HARNESS_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/managed-by", "azure.workload.identity/use")
HARNESS_PREFIX = "wi-harness/"
SKIP_CONTAINERS_ANNOTATION = "azure.workload.identity/skip-containers"  # it would hide the probe from the webhook
MAX_ANNOTATIONS_BYTES = 256 * 1024  # the API server's TotalAnnotationSizeLimitB
IDENTITY_ID_RE = re.compile(  # matched whole (fullmatch): "$" alone would let a trailing newline through
    r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/"
    r"userassignedidentities/[^/]+",
    re.IGNORECASE,
)
_SECRETISH = ("secret", "password", "token")
_ACCESS_TARGET_ERROR = "access_target"


class ConfigError(Exception):
    """The config cannot be used; ``problems`` holds one line per bad field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:  # one problem, one line (a file-level one needs no "(file)" marker there)
            super().__init__(f"invalid harness config {source}: {problems[0].removeprefix('(file): ')}")
        else:
            super().__init__(
                f"invalid harness config {source} ({len(problems)} problems):\n"
                + "\n".join(f"  {p}" for p in problems)
            )


# ---------------------------------------------------------------- field types


def _guid(value: str) -> str:
    if not values.is_guid(value):
        braces = value.startswith("{") and value.endswith("}") and values.is_guid(value[1:-1])  # PowerShell's [guid]
        raise ValueError("must be a GUID like 00000000-0000-0000-0000-000000000000"
                         + (", without the braces" if braces else ""))
    return value.lower()


def _https_url(value: str) -> str:
    """An https URL whose host every client reads alike; no user:password@, no query (a SAS token is a
    secret): see :func:`harness.clouds.parse_https_url`."""
    parse_https_url(value)
    return value


def _host_pattern(value: str) -> str:
    return HostPattern.parse(value).text


def _scope_text(value: str | None) -> str | None:
    if value is not None and (not value or any(c.isspace() for c in value)):
        raise ValueError("must be one scope such as https://vault.azure.net/.default")
    if value is not None and has_userinfo(value):
        raise ValueError("must not contain a user name or password (user:password@host)")
    return value


def _dns_label(value: str) -> str:
    """A namespace: the rule --workload and --pod apply too (:func:`harness.values.split_reference`)."""
    problem = values.namespace_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _dns_subdomain(value: str) -> str:
    """A ServiceAccount or pod name: the rule --workload and --pod apply too."""
    problem = values.object_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


Guid = Annotated[str, AfterValidator(_guid)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
HostPatternText = Annotated[str, AfterValidator(_host_pattern)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsSubdomain = Annotated[str, AfterValidator(_dns_subdomain)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _resolve(value: Path | None, info: ValidationInfo, must_exist: bool = True) -> Path | None:
    if value is None:
        return None
    base = Path((info.context or {}).get("base_dir", "."))
    path = (
        (base / value.expanduser()).resolve() if not value.expanduser().is_absolute() else value.expanduser()
    )
    if must_exist and not path.exists():
        unexpanded = re.search(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", str(value))  # $HOME/.kube/config, ${DIR}/ca.pem
        raise ValueError(f"file not found: {path}" + (
            f" (harness.yaml does not expand {unexpanded.group(0)}: write the path, or ~ for the home directory)"
            if unexpanded else ""))
    return path


def _usable_file(path: Path | None, check: Callable[[Path], object]) -> Path | None:
    """``path`` after ``check`` (a bounded read or stat from :mod:`harness.input_files`) accepted it."""
    if path is not None:
        try:
            check(path)
        except InputFileError as exc:
            raise ValueError(str(exc)) from None
    return path


def _kubeconfig_file(path: Path) -> None:
    """Only what stat tells (the content is read and judged with the kube target, as kubectl reads it)."""
    check_regular_file(path, MAX_KUBECONFIG_BYTES)


# ---------------------------------------------------------------- sections


class ClusterConfig(_Model):
    kubeconfig: Path | None = None  # default: $KUBECONFIG, then ~/.kube/config
    context: str | None = None  # default: the kubeconfig's current context
    ca_file: Path | None = None  # CA bundle for the OIDC issuer's HTTPS when Azure is not configured

    @field_validator("kubeconfig")
    @classmethod
    def _kubeconfig(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _usable_file(_resolve(value, info), _kubeconfig_file)

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _usable_file(_resolve(value, info), check_ca_bundle)


class CloudConfig(_Model):
    """A known cloud by name, or a custom one (the lab, Azure Stack) with its endpoints and the hosts of its
    data services: only those hosts ever receive a workload's token."""

    name: str
    authority_host: HttpsUrl | None = None
    resource_manager: HttpsUrl | None = None
    resource_manager_audience: HttpsUrl | None = None
    keyvault_hosts: list[HostPatternText] | None = None  # ".vault.example" or "10.0.0.4:8443" or "host:*"
    keyvault_resource: HttpsUrl | None = None  # what the vaults' challenge names; the token audience
    storage_hosts: list[HostPatternText] | None = None
    storage_resource: HttpsUrl | None = None  # default https://storage.azure.com, as in every Azure cloud
    microsoft_graph: HttpsUrl | None = None  # Microsoft Graph (default: the known cloud's; custom: none)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in KNOWN_CLOUDS:
                raise ValueError(
                    f"unknown cloud {data!r}: use one of {', '.join(KNOWN_CLOUDS)} "
                    "or a mapping {name, authority_host, resource_manager}"
                )
            return {"name": data}
        if not isinstance(data, dict | CloudConfig):  # cloud: 5, cloud: [AzureCloud], cloud: (nothing)
            found = "nothing (an empty value)" if data is None else f"a {_yaml_kind(data)}"
            raise ValueError(f"must be a cloud's name ({', '.join(KNOWN_CLOUDS)}) or a mapping {{name, "
                             f"authority_host, resource_manager}}, got {found}")
        return data

    @model_validator(mode="after")
    def _endpoints_known(self) -> CloudConfig:
        declared = [f for f in _DATA_HOST_FIELDS if getattr(self, f) is not None]
        if self.name in KNOWN_CLOUDS:
            if declared:
                raise ValueError(
                    f"{', '.join(declared)}: the data hosts of {self.name} are built in; "
                    "only a custom cloud declares its own"
                )
            return self
        missing = [f for f in ("authority_host", "resource_manager") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a custom cloud ({self.name!r}) needs {' and '.join(missing)}")
        if self.keyvault_hosts and self.keyvault_resource is None:
            raise ValueError("keyvault_hosts needs keyvault_resource (the resource the vaults' challenge names)")
        if self.keyvault_resource is not None and not self.keyvault_hosts:
            raise ValueError("keyvault_resource needs keyvault_hosts")
        if self.storage_resource is not None and not self.storage_hosts:
            raise ValueError("storage_resource needs storage_hosts")
        return self

    @property
    def endpoints(self) -> CloudEndpoints:
        known = KNOWN_CLOUDS.get(self.name)
        authority = self.authority_host or (known.authority_host if known else "")
        manager = self.resource_manager or (known.resource_manager if known else "")
        audience = self.resource_manager_audience or (
            known.resource_manager_audience if known else DEFAULT_ARM_AUDIENCE
        )
        if known:
            keyvault, storage = known.keyvault, known.storage
        else:
            keyvault = _declared(self.keyvault_hosts, self.keyvault_resource or "")
            storage = _declared(self.storage_hosts, self.storage_resource or STORAGE_RESOURCE)
        graph = self.microsoft_graph or (known.microsoft_graph if known else "")
        return CloudEndpoints(self.name, _slash(authority), _slash(manager), audience, keyvault, storage,
                              _slash(graph) if graph else "")


_DATA_HOST_FIELDS = ("keyvault_hosts", "keyvault_resource", "storage_hosts", "storage_resource")


def _declared(patterns: list[str] | None, resource: str) -> tuple[ResourceHosts, ...]:
    if not patterns:
        return ()
    return (ResourceHosts(tuple(HostPattern.parse(p) for p in patterns), resource),)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


class CredentialConfig(_Model):
    """A client secret for the harness's own app registration; absent: DefaultAzureCredential."""

    client_id: Guid
    client_secret_file: Path | None = None
    client_secret_env: str | None = None
    _secret: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "client_secret" in data:
            raise ValueError(
                "client_secret must not be written in the file: use client_secret_file or client_secret_env"
            )
        return data

    @field_validator("client_secret_file")
    @classmethod
    def _file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _usable_file(_resolve(value, info), read_secret)

    @field_validator("client_secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not values.is_env_name(value):  # never echoed: it may be the secret itself
            raise ValueError(
                "must be the NAME of an environment variable (letters, digits, _), not the secret"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self, info: ValidationInfo) -> CredentialConfig:
        if (self.client_secret_file is None) == (self.client_secret_env is None):
            raise ValueError("set exactly one of client_secret_file, client_secret_env")
        if self.client_secret_file is not None:
            try:
                self._secret = SecretStr(read_secret(self.client_secret_file, MAX_SECRET_BYTES))
            except InputFileError as exc:  # it changed since the field was validated
                raise ValueError(f"client_secret_file: {exc}") from None
        else:
            environ = (info.context or {}).get("environ", os.environ)
            value = environ.get(self.client_secret_env or "", "")
            if not value:
                raise ValueError(
                    f"client_secret_env: environment variable {self.client_secret_env} is not set"
                )
            self._secret = SecretStr(value)
        return self

    def secret(self) -> str:
        assert self._secret is not None
        return self._secret.get_secret_value()


class AzureConfig(_Model):
    cloud: CloudConfig = Field(default_factory=lambda: CloudConfig(name="AzureCloud"))
    ca_file: Path | None = None
    tenant_id: Guid
    subscription_id: Guid
    resource_group: NonEmpty
    cluster_name: NonEmpty
    credential: CredentialConfig | None = None

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _usable_file(_resolve(value, info), check_ca_bundle)

    @property
    def cluster_resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{self.cluster_name}"
        )


def _image_reference(value: str) -> str:
    problem = values.image_reference_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _number_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _label_map(value: dict[str, str], what: str) -> dict[str, str]:
    for key, text in value.items():
        problem = values.qualified_name_problem(key)
        if problem is not None:
            raise ValueError(f"{what} key {values.printable(key, 80)!r} {problem}")
        problem = values.label_value_problem(text)
        if problem is not None:
            raise ValueError(f"{what} value of {key} {problem}")
    return value


class ProbeResources(_Model):
    """The probe container's requests and limits, each merged over the defaults: a CPU limit always stays."""

    requests: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PROBE_REQUESTS))
    limits: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PROBE_LIMITS))

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for section, defaults in (("requests", DEFAULT_PROBE_REQUESTS), ("limits", DEFAULT_PROBE_LIMITS)):
            given = data.get(section)
            if given is None:
                merged[section] = dict(defaults)
            elif isinstance(given, dict):  # YAML reads "cpu: 1" as a number: a quantity all the same
                numbers_as_text = {name: _number_text(quantity) for name, quantity in given.items()}
                merged[section] = {**defaults, **numbers_as_text}
        return merged

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for name, quantity in value.items():
            if name not in PROBE_RESOURCE_NAMES:
                allowed = ", ".join(PROBE_RESOURCE_NAMES)
                raise ValueError(f"{values.printable(name, 40)!r} is not one of {allowed}")
            if values.parse_quantity(str(quantity)) is None:
                raise ValueError(f"{name}: {values.printable(str(quantity), 40)!r} is not a Kubernetes quantity "
                                 "(e.g. 200m, 0.5, 128Mi)")
        return value

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ProbeResources:
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            wanted, allowed = values.parse_quantity(request), values.parse_quantity(limit or "")
            if wanted is not None and allowed is not None and wanted > allowed:
                raise ValueError(
                    f"requests.{name} ({request}) must be less than or equal to limits.{name} ({limit})"
                )
        return self


class Toleration(_Model):
    """A pod toleration, spelled as in a pod spec, checked as the API server checks it (ValidateTolerations)."""

    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    tolerationSeconds: int | None = None  # noqa: N815 - the pod spec's spelling

    @model_validator(mode="after")
    def _as_the_api_server(self) -> Toleration:
        if self.key:
            problem = values.qualified_name_problem(self.key)
            if problem is not None:
                raise ValueError(f"key {problem}")
        elif self.operator != "Exists":
            raise ValueError(
                'operator must be Exists when `key` is empty, which means "match all values and all keys"'
            )
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise ValueError("effect must be 'NoExecute' when `tolerationSeconds` is set")
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when `operator` is 'Exists'")
        if self.operator == "Equal" and (problem := values.label_value_problem(self.value)) is not None:
            raise ValueError(f"value {problem}")
        return self

    def spec(self) -> dict[str, Any]:
        return {name: value for name, value in self.model_dump().items() if value not in ("", None)}


class CaConfigMap(_Model):
    """A CA bundle (PEM) in a ConfigMap of each workload's namespace (an intercepting proxy's CA, say)."""

    name: DnsSubdomain
    key: str = "ca.crt"

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not values.is_configmap_key(value):
            raise ValueError("must be a ConfigMap key (letters, digits, '-', '_' and '.')")
        return value


class ProbeSettings(_Model):
    mode: Literal["configmap", "image"] = "configmap"
    image: Annotated[str, AfterValidator(_image_reference)] | None = None
    timeout_seconds: int = Field(default=120, ge=10, le=3600)  # the whole pod: activeDeadlineSeconds
    request_timeout_seconds: float = Field(default=10, gt=0, le=120)  # each network call of the probe
    # how long the probe may wait out transient answers (429, 5xx, a federated credential or issuer keys Entra has
    # not seen yet) in all, at most half of timeout_seconds; 0: never retry (harness.collect.probe_pods)
    retry_seconds: float = Field(default=30, ge=0, le=600)
    ca_file: str | None = None  # a CA bundle path as the probe's container sees it
    ca_configmap: CaConfigMap | None = None
    sdk_cross_check: bool = True
    resources: ProbeResources = Field(default_factory=ProbeResources)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # Secrets (kubernetes.io/dockerconfigjson) in each workload's namespace the kubelet pulls probe.image with: a
    # private registry the nodes hold no credential for (an ACR attached to the cluster needs none)
    image_pull_secrets: list[DnsSubdomain] = Field(default_factory=list)

    @field_validator("node_selector")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        return _label_map(value, "node selector")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key in HARNESS_LABELS or key.startswith(HARNESS_PREFIX):
                raise ValueError(f"{key} is set by the harness itself and cannot be changed")
        return _label_map(value, "label")

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            problem = values.qualified_name_problem(key.lower())
            if problem is not None:
                raise ValueError(f"annotation key {values.printable(key, 80)!r} {problem}")
            if key.startswith(HARNESS_PREFIX):
                raise ValueError(f"{key} is set by the harness itself and cannot be changed")
            if key == SKIP_CONTAINERS_ANNOTATION:
                raise ValueError(f"{key} would keep the webhook away from the probe container")
        if sum(len(k) + len(v) for k, v in value.items()) > MAX_ANNOTATIONS_BYTES:
            raise ValueError("annotations may hold at most 256 KiB in all (the API server's limit)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProbeSettings:
        if self.mode == "image" and self.image is None:
            raise ValueError("mode image runs an image of your own: set image (the Dockerfile's probe target, "
                             "pushed where the nodes can pull it), or use mode configmap")
        if self.ca_file and self.ca_configmap:
            raise ValueError("set one of ca_file, ca_configmap (the probe trusts one CA bundle)")
        return self

    @property
    def resolved_image(self) -> str:
        """The image probe pods run: probe.image, else (configmap mode) the stock Python image."""
        return self.image or STOCK_PYTHON_IMAGE


Expectation = Literal["allow", "deny"]


class _Access(_Model):
    """One read the workload must be allowed (or denied): the probe's check of the same shape. Its URL must be
    a host of the cloud's service of that kind (HarnessConfig checks it): only those receive a token."""

    expect: Expectation
    scope: str | None = None  # the token scope for the resource; otherwise the one its host's suffix implies
    # The vault's or storage account's name where its URL does not say it (a private endpoint on an IP address,
    # the lab's vaults): it names the check (access.keyvault:NAME/SECRET) and the resource in fix commands.
    name: str | None = None

    url_field: ClassVar[str]
    service_label: ClassVar[str]
    hosts_field: ClassVar[str]  # where a custom cloud declares the hosts of this kind

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str | None) -> str | None:
        return _scope_text(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not values.is_azure_resource_name(value):
            raise ValueError(f"{values.printable(value, 80)!r} is not an Azure resource name")
        return value

    @property
    def url(self) -> str:
        return str(getattr(self, self.url_field))

    def describe(self) -> str:
        raise NotImplementedError

    def services(self, cloud: CloudEndpoints) -> tuple[ResourceHosts, ...]:
        raise NotImplementedError

    def service(self, cloud: CloudEndpoints) -> ResourceHosts | None:
        """The cloud's hosts (and resource) this check's URL belongs to; None: it must not get a token."""
        return service_for(self.services(cloud), parse_https_url(self.url))

    def untrusted_host(self, cloud: CloudEndpoints) -> str | None:
        """Why this check's URL is not one of the cloud's hosts of its kind, or None."""
        if self.service(cloud) is not None:
            return None
        target = parse_https_url(self.url)
        problem = f"host {target.authority} is not a {self.service_label} host of cloud {cloud.name}"
        if not self.services(cloud):
            return f"{problem}: it declares none (azure.cloud.{self.hosts_field} and its resource)"
        if cloud.known:
            return f"{problem} (expected {expected_hosts(self.services(cloud))})"
        # A custom cloud lists its hosts one by one (the lab: a port per vault), so a vault made since is refused
        # until it is listed: say where.
        return (f"{problem} (expected {expected_hosts(self.services(cloud))}; if it is one, add it to "
                f"azure.cloud.{self.hosts_field})")

    def token_scope(self, cloud: CloudEndpoints) -> str:
        """An explicit scope: wins; otherwise the resource its host implies (a vault in China: vault.azure.cn)."""
        if self.scope:
            return self.scope
        service = self.service(cloud)
        assert service is not None, "HarnessConfig refuses an access target outside the cloud's hosts"
        return service.scope

    def probe_check(self, cloud: CloudEndpoints) -> dict[str, Any]:
        """The probe's check: the fields as written, the token scope, and the only hosts it may send it to."""
        service = self.service(cloud)
        assert service is not None, "HarnessConfig refuses an access target outside the cloud's hosts"
        check = self.model_dump(exclude_none=True, exclude={"name"})  # the probe needs no name
        check["scope"] = self.token_scope(cloud)
        check["allowed_hosts"] = [pattern.text for pattern in service.patterns]
        return check


class KeyVaultSecretAccess(_Access):
    kind: Literal["keyvault_secret"]
    vault_url: HttpsUrl
    secret: NonEmpty

    url_field: ClassVar[str] = "vault_url"
    service_label: ClassVar[str] = "Key Vault"
    hosts_field: ClassVar[str] = "keyvault_hosts"

    @field_validator("vault_url")
    @classmethod
    def _vault_root(cls, value: str) -> str:
        """The vault's own URL (its vaultUri, https://NAME.vault.azure.net/): a secret's id pasted here
        (.../secrets/NAME[/VERSION]) would be read as .../secrets/NAME/secrets/SECRET, which Key Vault refuses."""
        path = urllib.parse.urlsplit(value).path
        if path.strip("/"):
            raise ValueError(f"has a path ({values.printable(path, 60)}): it is the vault's own URL, "
                             "https://NAME.vault.azure.net/ (az keyvault show --name NAME --query properties.vaultUri); "
                             "the secret's name goes in secret:")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not values.is_keyvault_object_name(value):
            raise ValueError(f"{values.printable(value, 80)!r} is not a Key Vault secret name (1-127 letters, digits "
                             "and hyphens)")
        return value

    def describe(self) -> str:
        return f"Key Vault secret {self.secret!r} in {self.vault_url}"

    def services(self, cloud: CloudEndpoints) -> tuple[ResourceHosts, ...]:
        return cloud.keyvault

    def probe_check(self, cloud: CloudEndpoints) -> dict[str, Any]:
        check = super().probe_check(cloud)
        service = self.service(cloud)
        assert service is not None
        check["challenge_resource"] = service.resource  # the vault's 401 challenge must name this resource
        return check


class BlobAccess(_Access):
    kind: Literal["blob"]
    account_url: HttpsUrl
    container: NonEmpty
    blob: NonEmpty

    url_field: ClassVar[str] = "account_url"
    service_label: ClassVar[str] = "Blob Storage"
    hosts_field: ClassVar[str] = "storage_hosts"

    def describe(self) -> str:
        return f"blob {self.container}/{self.blob} in {self.account_url}"

    def services(self, cloud: CloudEndpoints) -> tuple[ResourceHosts, ...]:
        return cloud.storage


AccessCheck = Annotated[KeyVaultSecretAccess | BlobAccess, Field(discriminator="kind")]
_ACCESS_KINDS: dict[str, type[_Access]] = {"keyvault_secret": KeyVaultSecretAccess, "blob": BlobAccess}


class WorkloadConfig(_Model):
    namespace: DnsLabel
    service_account: DnsSubdomain
    client_id: Guid | None = None
    tenant_id: Guid | None = None
    identity_resource_id: str | None = None
    scope: str | None = None
    access: list[AccessCheck] = Field(default_factory=list)

    @field_validator("identity_resource_id")
    @classmethod
    def _identity(cls, value: str | None) -> str | None:
        if value is not None and not IDENTITY_ID_RE.fullmatch(value):
            raise ValueError(
                "must be a user-assigned identity resource id: /subscriptions/<id>/resourceGroups/"
                "<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>"
            )
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str | None) -> str | None:
        return _scope_text(value)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.service_account}"


class ExpectConfig(_Model):
    """What this team expects of the cluster beyond Workload ID itself (the migration runbook's checks)."""

    cluster_identity: Literal["userAssigned", "systemAssigned", "any"] = "userAssigned"
    # Pod-managed identity (aad-pod-identity) leftovers are errors once the migration is declared complete,
    # warnings before.
    migration_complete: bool = False
    # Issuers this cluster had before (a rebuilt cluster, a blue/green pair): a federated credential that
    # names one for a ServiceAccount of this cluster is FIC_OLD_ISSUER (the inventory suite).
    previous_issuers: list[HttpsUrl] = Field(default_factory=list)


class InClusterConfig(_Model):
    """The harness's own run as a Job (``python -m harness manifests render``): its ServiceAccount is annotated
    with ``client_id`` for Workload ID, so the Job reads ARM and Graph as that identity (never the node's)."""

    client_id: Guid | None = None  # the harness's own identity; required to render the manifests
    namespace: DnsLabel = "wi-harness"
    service_account: DnsSubdomain = "wi-harness"
    image: Annotated[str, AfterValidator(_image_reference)] | None = None  # the Dockerfile's harness target
    webhook_namespace: DnsLabel = "kube-system"  # where the webhook's Deployment is (the Helm chart's own)
    report_claim: DnsSubdomain | None = None  # a PersistentVolumeClaim keeping reports/ (default: an emptyDir)


class HarnessConfig(_Model):
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    azure: AzureConfig | None = None
    expect: ExpectConfig = Field(default_factory=ExpectConfig)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    workloads: list[WorkloadConfig] = Field(default_factory=list)
    harness: InClusterConfig = Field(default_factory=InClusterConfig)

    @field_validator("workloads")
    @classmethod
    def _unique(cls, workloads: list[WorkloadConfig]) -> list[WorkloadConfig]:
        seen: set[str] = set()
        for workload in workloads:
            if workload.id in seen:
                raise ValueError(f"{workload.id} is listed twice")
            seen.add(workload.id)
        return workloads

    @model_validator(mode="after")
    def _access_targets_in_cloud(self) -> HarnessConfig:
        """Every access URL is a host of the configured cloud's service of its kind (no azure: AzureCloud):
        a typo or a look-alike host would otherwise receive a token valid on every vault the identity reads."""
        cloud = self.cloud
        problems = [
            InitErrorDetails(
                type=PydanticCustomError(_ACCESS_TARGET_ERROR, "{problem}", {"problem": problem}),
                loc=("workloads", w_index, "access", a_index, check.url_field),
                input=check.url,
            )
            for w_index, workload in enumerate(self.workloads)
            for a_index, check in enumerate(workload.access)
            if (problem := check.untrusted_host(cloud)) is not None
        ]
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    @property
    def cloud(self) -> CloudEndpoints:
        return self.azure.cloud.endpoints if self.azure else KNOWN_CLOUDS["AzureCloud"]

    def workload(self, workload_id: str) -> WorkloadConfig | None:
        return next((w for w in self.workloads if w.id == workload_id), None)

    def secrets(self) -> list[str]:
        """Every secret value the config holds, for the redactor."""
        if self.azure and self.azure.credential:
            return [self.azure.credential.secret()]
        return []


# ---------------------------------------------------------------- loading


def load_config(path: Path, environ: dict[str, str] | None = None) -> HarnessConfig:
    """Read and validate ``path``; raise :class:`ConfigError` with one line per problem."""
    source = str(path)
    try:
        text = read_text(Path(path), MAX_CONFIG_BYTES)
    except InputFileError as exc:
        raise ConfigError(source, [f"(file): {exc.reason}"]) from None
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(source, [f"(file): {yaml_problem(exc)}"]) from None
    return parse_config(data, source, base_dir=Path(path).parent, environ=environ)


def parse_config(
    data: Any, source: str = "(inline)", base_dir: Path | None = None, environ: dict[str, str] | None = None
) -> HarnessConfig:
    if data is None:  # no document, or comments alone
        raise ConfigError(source, ["(file): is empty"])
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(file): must be a mapping of sections (cluster:, azure:, workloads: ...), "
                                   f"got a {_yaml_kind(data)}"])
    schema = data.get("schema")
    if isinstance(schema, str) and schema.startswith("wi-harness/run/"):  # --config reports/latest/run.json
        raise ConfigError(source, [f"(file): is a run report ({values.printable(schema, 40)}), not a harness config: "
                                   "--config takes harness.yaml; python -m harness report render renders a run.json"])
    kubeconfig = data.get("kind") == "Config" or {"clusters", "contexts", "users"} <= set(data)
    if not set(data) & set(HarnessConfig.model_fields) and (kubeconfig or isinstance(data.get("kind"), str)):
        # --config ~/.kube/config, or a manifest: one line saying what the file is, not one per key
        what = ("a kubeconfig" if kubeconfig
                else f"a Kubernetes manifest (kind {values.printable(str(data['kind']), 40)})")
        hint = (": name it as cluster.kubeconfig in harness.yaml (cp harness.example.yaml harness.yaml)"
                if what == "a kubeconfig" else ": --config takes harness.yaml (cp harness.example.yaml harness.yaml)")
        raise ConfigError(source, [f"(file): is {what}, not a harness config{hint}"])
    context = {
        "base_dir": str(base_dir or Path.cwd()),
        "environ": environ if environ is not None else os.environ,
    }
    try:
        return HarnessConfig.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(source, _problem_lines(exc.errors())) from None


_NOT_A_MAPPING = ("model_type", "model_attributes_type", "dict_type")  # pydantic's error types


def _problem_lines(errors: list[Any]) -> list[str]:
    """One line per problem; an unknown field that is a misspelling of a required field missing beside it
    (``servce_account`` for ``service_account``) is one problem, said on one line, not two."""
    missing = {tuple(e.get("loc", ())): e for e in errors if e.get("type") == "missing"}
    typos: dict[int, str] = {}
    for index, error in enumerate(errors):
        loc = tuple(error.get("loc", ()))
        if error.get("type") != "extra_forbidden" or not loc or not isinstance(loc[-1], str):
            continue
        candidates = [str(m[-1]) for m in missing if m[:-1] == loc[:-1] and isinstance(m[-1], str)]
        match = difflib.get_close_matches(loc[-1], candidates, n=1, cutoff=0.75)
        if match:
            typos[index] = match[0]
            missing.pop((*loc[:-1], match[0]))
    kept = {id(e) for e in missing.values()}
    return [
        mask_userinfo(f"{_format_loc(tuple(error.get('loc', ())))}: unknown field: did you mean {typos[index]}? "
                      "(it is required)") if index in typos else _problem_line(error)
        for index, error in enumerate(errors)
        if error.get("type") != "missing" or id(error) in kept
    ]


def _problem_line(error: Any) -> str:
    loc = _format_loc(error.get("loc", ()))
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    given = error.get("input")
    if kind == "missing":
        message = "required"
    elif kind == "extra_forbidden":
        allowed = _allowed_fields(tuple(error.get("loc", ())))
        key = str((error.get("loc") or ("",))[-1])
        near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)  # clientid, prob, timeout
        message = "unknown field" + (f": did you mean {near[0]}?" if near else "") + (
            f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif kind in _NOT_A_MAPPING:  # "Input should be a valid dictionary or instance of ProbeSettings": a class name
        found = "nothing (an empty section)" if given is None else f"a {_yaml_kind(given)}"
        message = f"must be a mapping of fields (key: value lines indented under it), got {found}"
        path = tuple(error.get("loc", ()))
        if len(path) == 2 and path[0] == "workloads" and isinstance(given, str) and given.count("/") == 1:
            namespace, name = (values.printable(part, 80) for part in given.split("/"))  # - finance/backend-sa
            message += f" ('{namespace}/{name}': write namespace: {namespace} and service_account: {name})"
    elif kind in ("int_parsing", "float_parsing") and isinstance(given, str):  # timeout_seconds: 2m, 120s
        unit = " of seconds" if loc.endswith("_seconds") else ""
        message = f"must be a number{unit}, without a unit"
    elif kind == "list_type":  # workloads: finance/backend-sa
        found = "got nothing (an empty section)" if given is None else f"not a {_yaml_kind(given)}"
        message = f"must be a list (one '- ' entry per item, indented under it), {found}"
    elif kind == "invalid_key":  # 123: x, yes: x, ~: x: YAML typed the key before the harness saw it
        key = "an empty key (~ or null)" if given is None else f"key {given!r}, which YAML read as a {_yaml_kind(given)},"
        loc = _format_loc(tuple(error.get("loc", ()))[:-1])
        return f"{loc or '(file)'}: {key} is not a field name: field names are text"
    elif kind == "literal_error" and isinstance(given, bool):  # expect: yes
        expected = error.get("ctx", {}).get("expected", "")
        message = (f"must be {expected}, but YAML read the value as a boolean (as it reads yes, no, on, off, true "
                   f"and false): write {expected}")
        return mask_userinfo(f"{loc}: {message}")
    elif kind == "string_type" and given is None:  # namespace: (nothing after the colon)
        message = "is empty: write a value after the colon"
    elif kind == "union_tag_invalid":
        tags = error.get("ctx", {}).get("expected_tags", "")
        message = f"kind must be one of {tags}, got {error.get('ctx', {}).get('tag')!r}"
    elif kind == "union_tag_not_found":
        message = "kind is required (keyvault_secret or blob)"
    elif kind == "string_type" and isinstance(given, bool | int | float | datetime.date):
        # client_id: 12345678, namespace: 2024, service_account: yes: YAML typed it before the harness saw it
        message = f"must be text, but YAML read the value as a {_yaml_kind(given)}: put it in quotes"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif message.startswith("Input should be "):  # pydantic's wording, as the harness's own: "must be ..."
        message = "must be " + message.removeprefix("Input should be ")
    elif message.startswith("Assertion failed, "):
        message = message.removeprefix("Assertion failed, ")
    if (
        kind not in ("missing", "extra_forbidden", "union_tag_invalid", *_NOT_A_MAPPING, _ACCESS_TARGET_ERROR)
        and _printable(loc, given)
        and str(given) not in message
    ):
        message += f" (got {given!r})"
    return mask_userinfo(f"{loc or '(file)'}: {message}")


def _yaml_kind(value: Any) -> str:
    """What YAML made of a value, in YAML's words."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "string" if isinstance(value, str) else type(value).__name__


def _printable(loc: str, given: Any) -> bool:
    """Echo a bad value only when it is a short scalar outside any secret-looking field, and never a URL's
    query (a SAS token) nor anything in a URL before an ``@`` (a user name and password)."""
    if any(word in loc.lower() for word in _SECRETISH):
        return False
    if isinstance(given, bool | int | float):
        return True
    if not isinstance(given, str) or ("://" in given and "@" in given):
        return False
    return len(given) <= 80 and "\n" not in given and "?" not in given


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    """The fields of the section an unknown key was found in (``loc`` ends with the unknown key)."""
    model: Any = HarnessConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part in _ACCESS_KINDS:
            model = _ACCESS_KINDS[part]
            continue
        field = (getattr(model, "model_fields", None) or {}).get(part)
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return sorted(getattr(model, "model_fields", None) or {})


def _model_in(annotation: Any) -> Any:
    """The config section (a model) an annotation holds: ``X``, ``X | None``, ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (
            part in _ACCESS_KINDS or part.startswith(("function-", "tagged-union"))
        ):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out
