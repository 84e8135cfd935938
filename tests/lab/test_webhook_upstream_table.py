"""The unit-test table of azure-workload-identity's webhook (pkg/webhook/webhook_test.go at v1.6.0), case by case,
run against the lab's emulation (:mod:`lab.kube.webhook`).

Each upstream test function is one parametrised test here; each case keeps upstream's name, input and expected
result, restated as our own data. Upstream calls the handler's helpers one by one (getServiceAccountTokenExpiration,
addProjectedVolume, ...); the lab's counterparts are the steps of :class:`PodMutation`, and where upstream passes a
fixed volume name the case sets :attr:`PodMutation.volume_name` to it.

Deliberate difference: ``TestGetAzureAuthorityHost`` maps cloud names to sovereign authority hosts; the lab's
webhook injects the lab's own Entra instead (by design), so that table is checked against the lab's mapping
function only, not against what the lab injects. ``TestHandleError``'s "failed to decode pod" case feeds raw bytes
to the handler; the lab's webhook runs inside the API server after the body was decoded, so that case is checked
at the API server's door instead (test_kubectl_workloads: ``couldn't get version/kind``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab.kube import webhook
from lab.kube.errors import ApiError
from lab.kube.webhook import PodMutation, WebhookSettings, add_env

Obj = dict[str, Any]

EXPIRY = "azure.workload.identity/service-account-token-expiration"
CLIENT_ID = "azure.workload.identity/client-id"
TENANT_ID = "azure.workload.identity/tenant-id"
SKIP = "azure.workload.identity/skip-containers"
INJECT_PROXY = "azure.workload.identity/inject-proxy-sidecar"
PROXY_PORT = "azure.workload.identity/proxy-sidecar-port"
USE = "azure.workload.identity/use"
# upstream's testVolumeName: a fixed reserved name handed to the helpers
VOLUME = "azure-workload-identity-reserved-2eb503ce-4af0-45d3-82b1-d79bdfe63d38"
MOUNT_PATH = "/var/run/secrets/azure/wi"
TOKEN_FILE = "/var/run/secrets/azure/wi/token/azure-identity-token"
PUBLIC_AUTHORITY = "https://login.microsoftonline.com/"


def settings(**overrides: Any) -> WebhookSettings:
    """The handler under upstream's test: the v1.6.0 layout, the default audience."""
    base: dict[str, Any] = {"layout": "v1.6", "tenant_id": "tenantID", "authority_host": PUBLIC_AUTHORITY}
    return WebhookSettings(**{**base, **overrides})


def pod(name: str = "pod", annotations: dict[str, str] | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def sa(annotations: dict[str, str] | None = None, name: str = "sa", namespace: str = "default") -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta}


def mutation(body: Obj, **overrides: Any) -> PodMutation:
    step = PodMutation(copy.deepcopy(body), "default", settings(**overrides))
    step.volume_name = VOLUME
    return step


def run(body: Obj, sa_annotations: dict[str, str] | None = None, **overrides: Any) -> Obj:
    """The whole handler on ``body`` (namespace default), its ServiceAccount carrying ``sa_annotations``."""
    return PodMutation(copy.deepcopy(body), "default", settings(**overrides)).run(
        lambda ns, n: sa(sa_annotations, n, ns))


def token_volume(path: str = "token/azure-identity-token", audience: str = "api://AzureADTokenExchange",
                 expiration: int = 3600) -> Obj:
    return {"name": VOLUME, "projected": {"sources": [{"serviceAccountToken": {
        "path": path, "expirationSeconds": expiration, "audience": audience}}]}}


def env(**values: str) -> list[Obj]:
    return [{"name": name, "value": value} for name, value in values.items()]


def wi_env(client: str, tenant: str, authority: str = PUBLIC_AUTHORITY) -> list[Obj]:
    return env(AZURE_CLIENT_ID=client, AZURE_TENANT_ID=tenant, AZURE_FEDERATED_TOKEN_FILE=TOKEN_FILE,
               AZURE_AUTHORITY_HOST=authority)


def wi_mount() -> Obj:
    return {"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True}


# ---------------------------------------------------------------- TestGetServiceAccountTokenExpiration

EXPIRATION_CASES = [
    ("pod token expiry annotation invalid", {EXPIRY: "3600s"}, None, None),
    ("service account token expiry annotation invalid", None, {EXPIRY: "3600s"}, None),
    ("invalid token expiry < 3600", {EXPIRY: "3599"}, None, None),
    ("invalid token expiry > 86400", {EXPIRY: "86401"}, None, None),
    ("valid token expiry defined in service account", None, {EXPIRY: "4800"}, 4800),
    ("token expiry in pod preferred over service account token expiry", {EXPIRY: "4000"}, {EXPIRY: "4800"}, 4000),
]


@pytest.mark.parametrize("name, pod_annotations, sa_annotations, expected", EXPIRATION_CASES,
                         ids=[c[0] for c in EXPIRATION_CASES])
def test_get_service_account_token_expiration(name: str, pod_annotations: dict[str, str] | None,
                                              sa_annotations: dict[str, str] | None, expected: int | None) -> None:
    step = mutation(pod(annotations=pod_annotations))
    if expected is None:
        with pytest.raises(ApiError) as caught:
            step.token_expiration(sa_annotations or {})
        assert caught.value.code == 400
    else:
        assert step.token_expiration(sa_annotations or {}) == expected


# ---------------------------------------------------------------- TestGetClientID / TestGetTenantID


@pytest.mark.parametrize("name, annotations, expected", [
    ("client id not present", None, ""),
    ("client id present", {CLIENT_ID: "client-id"}, "client-id"),
], ids=["client id not present", "client id present"])
def test_get_client_id(name: str, annotations: dict[str, str] | None, expected: str) -> None:
    body = pod(containers=[{"name": "c", "image": "image"}])
    mutated = run(body, annotations)
    container_env = {e["name"]: e["value"] for e in mutated["spec"]["containers"][0]["env"]}
    assert container_env.get("AZURE_CLIENT_ID", "") == expected


@pytest.mark.parametrize("name, annotations, configured, expected", [
    ("tenant ID annotation defined", {TENANT_ID: "tenant-id"}, "", "tenant-id"),
    ("tenant ID annotation not defined, use default", None, "tenant-id", "tenant-id"),
], ids=["tenant ID annotation defined", "tenant ID annotation not defined, use default"])
def test_get_tenant_id(name: str, annotations: dict[str, str] | None, configured: str, expected: str) -> None:
    body = pod(containers=[{"name": "c", "image": "image"}])
    mutated = run(body, annotations, tenant_id=configured)
    assert {e["name"]: e["value"] for e in mutated["spec"]["containers"][0]["env"]}["AZURE_TENANT_ID"] == expected


# ---------------------------------------------------------------- TestGetSkipContainers

SKIP_CASES = [
    ("no skip containers defined", None, set()),
    ("one skip container defined", {SKIP: "container1"}, {"container1"}),
    ("multiple skip containers defined delimited by ;", {SKIP: "container1;container2"}, {"container1", "container2"}),
    ("multiple skip containers defined with extra space", {SKIP: "container1; container2"},
     {"container1", "container2"}),
]


@pytest.mark.parametrize("name, annotations, expected", SKIP_CASES, ids=[c[0] for c in SKIP_CASES])
def test_get_skip_containers(name: str, annotations: dict[str, str] | None, expected: set[str]) -> None:
    assert mutation(pod(annotations=annotations)).skip_containers() == expected


# ---------------------------------------------------------------- TestAddProjectedVolume

VOLUME_CASES = [
    ("no volumes in the pod", []),
    ("azure-identity-token projected volume already exists", [token_volume()]),
    ("existing projected service account token volume overridden with desired audience",
     [token_volume(path="my-projected-volume", audience="aud")]),
]


@pytest.mark.parametrize("name, volumes", VOLUME_CASES, ids=[c[0] for c in VOLUME_CASES])
def test_add_projected_volume(name: str, volumes: list[Obj]) -> None:
    step = mutation(pod(volumes=copy.deepcopy(volumes)))
    step.add_volume(3600, custom_endpoint=False)
    assert step.pod["spec"]["volumes"] == [token_volume()]


# ---------------------------------------------------------------- TestAddEnvironmentVariables

ENV_CASES = [
    ("environment variables added to container", None, wi_env("clientID", "tenantID")),
    ("existing environment variables not replaced", wi_env("myClientID", "myTenantID"),
     wi_env("myClientID", "myTenantID")),
    ("environment variables added to existing list", env(MY_ENV_VAR="test"),
     env(MY_ENV_VAR="test") + wi_env("clientID", "tenantID")),
]


@pytest.mark.parametrize("name, existing, expected", ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_add_environment_variables(name: str, existing: list[Obj] | None, expected: list[Obj]) -> None:
    container: Obj = {"name": "cont1", "image": "image"}
    if existing is not None:
        container["env"] = copy.deepcopy(existing)
    step = mutation(pod())
    add_env(container, step.desired_env("clientID", "tenantID", custom_endpoint=False))
    assert container == {"name": "cont1", "image": "image", "env": expected}


def test_add_environment_variables_not_added_when_empty() -> None:
    container: Obj = {"name": "cont1", "image": "image"}
    step = mutation(pod(), authority_host="")
    add_env(container, step.desired_env("", "", custom_endpoint=False))
    assert container == {"name": "cont1", "image": "image", "env": env(AZURE_FEDERATED_TOKEN_FILE=TOKEN_FILE)}


# ---------------------------------------------------------------- TestAddProjectServiceAccountTokenVolumeMount

MOUNT_CASES = [
    ("volume mount added to container", None, [wi_mount()]),
    ("volume mount added to existing volume mounts for container",
     [{"name": "my-volume-mount", "mountPath": "/var/run/pods"}],
     [{"name": "my-volume-mount", "mountPath": "/var/run/pods"}, wi_mount()]),
]


@pytest.mark.parametrize("name, existing, expected", MOUNT_CASES, ids=[c[0] for c in MOUNT_CASES])
def test_add_projected_volume_mount(name: str, existing: list[Obj] | None, expected: list[Obj]) -> None:
    container: Obj = {"name": "cont1", "image": "image"}
    if existing is not None:
        container["volumeMounts"] = copy.deepcopy(existing)
    mutation(pod()).add_mount(container)
    assert container == {"name": "cont1", "image": "image", "volumeMounts": expected}


# ---------------------------------------------------------------- TestHandle


def upstream_pod(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                 sa_name: str = "sa", host_network: bool = False) -> Obj:
    """newPod("pod", "ns1", sa, labels, annotations, hostNetwork): one init container and one container."""
    meta: Obj = {"name": "pod", "namespace": "ns1"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    spec: Obj = {"initContainers": [{"name": "init-container", "image": "init-container-image"}],
                 "containers": [{"name": "container", "image": "image"}]}
    if sa_name:
        spec["serviceAccountName"] = sa_name
    if host_network:
        spec["hostNetwork"] = True
    return {"metadata": meta, "spec": spec}


HANDLE_ACCOUNTS = {name: sa({CLIENT_ID: "clientID", EXPIRY: "4800"}, name, "ns1") for name in ("default", "sa")}


def handle(body: Obj, accounts: dict[str, Obj] | None = None) -> Obj:
    """Handle(): the webhook is called for this pod whatever its labels (the configuration's objectSelector is the
    API server's business, as in upstream's test, which calls Handle directly)."""
    found = HANDLE_ACCOUNTS if accounts is None else accounts
    return PodMutation(copy.deepcopy(body), "ns1", settings()).run(lambda ns, n: found.get(n))


def only_added(before: Any, after: Any) -> bool:
    """No remove patch: everything of the request's pod is still there, unchanged or extended."""
    if isinstance(before, dict):
        return isinstance(after, dict) and all(k in after and only_added(v, after[k]) for k, v in before.items())
    if isinstance(before, list):
        return isinstance(after, list) and len(after) >= len(before) and all(
            any(only_added(item, candidate) for candidate in after) for item in before)
    return before == after


HANDLE_CASES = [
    # upstream tells the informer cache from a direct API read; the lab's webhook reads one store, so the
    # "in cache" and "not in cache" cases are the same request here
    ("service account in cache", upstream_pod()),
    ("service account not in cache", upstream_pod()),
    ("default service account in cache", upstream_pod(sa_name="")),
    ("default service account not in cache", upstream_pod(sa_name="")),
    ("pod has the required label, no warnings", upstream_pod(labels={USE: "true"})),
    ("pod has the required label, restart policy in init container", {
        "metadata": {"name": "pod", "namespace": "ns1", "creationTimestamp": None, "labels": {USE: "true"}},
        "spec": {"initContainers": [{"name": "init-container", "image": "init-container-image",
                                     "restartPolicy": "Always"}],
                 "containers": [{"name": "container", "image": "image", "resources": {}}]}}),
]


@pytest.mark.parametrize("name, body", HANDLE_CASES, ids=[c[0] for c in HANDLE_CASES])
def test_handle(name: str, body: Obj) -> None:
    mutated = handle(body)
    assert only_added(body, mutated)
    for container in [*mutated["spec"]["initContainers"], *mutated["spec"]["containers"]]:
        assert {e["name"] for e in container["env"]} == {
            "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"}
    assert mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 4800


# ---------------------------------------------------------------- TestGetAzureAuthorityHost

AUTHORITY_CASES = [
    ("default azure environment", "", "https://login.microsoftonline.com/"),
    ("public cloud", "AzurePublicCloud", "https://login.microsoftonline.com/"),
    ("us government cloud", "AzureUSGovernmentCloud", "https://login.microsoftonline.us/"),
    ("china cloud", "AzureChinaCloud", "https://login.chinacloudapi.cn/"),
    ("german cloud", "AzureGermanCloud", "https://login.microsoftonline.de/"),
    # autorest v0.11.30 environments.go also maps the az CLI's names (AWI v1.6.0 builds with it)
    ("az cli public cloud name", "AzureCloud", "https://login.microsoftonline.com/"),
    ("az cli us government name", "AzureUSGovernment", "https://login.microsoftonline.us/"),
    ("invalid cloud name", "InvalidCloud", None),
]


@pytest.mark.parametrize("name, cloud, expected", AUTHORITY_CASES, ids=[c[0] for c in AUTHORITY_CASES])
def test_get_azure_authority_host(name: str, cloud: str, expected: str | None) -> None:
    """The mapping only: what the lab injects is its own Entra (the sovereign hosts are the documented exception)."""
    if expected is None:
        with pytest.raises(ValueError):
            webhook.azure_authority_host(cloud)
    else:
        assert webhook.azure_authority_host(cloud) == expected


# ---------------------------------------------------------------- TestMutateContainers


MUTATE_CASES = [
    ("no containers", [], set(), []),
    ("one container", [{"name": "my-container", "image": "my-image"}], set(),
     [{"name": "my-container", "image": "my-image", "env": wi_env("client-id", "tenant-id"),
       "volumeMounts": [wi_mount()]}]),
    ("one container and one skip container",
     [{"name": "my-container", "image": "my-image"}, {"name": "skip-container", "image": "skip-image"}],
     {"skip-container"},
     [{"name": "my-container", "image": "my-image", "env": wi_env("client-id", "tenant-id"),
       "volumeMounts": [wi_mount()]}, {"name": "skip-container", "image": "skip-image"}]),
]


@pytest.mark.parametrize("name, containers, skip, expected", MUTATE_CASES, ids=[c[0] for c in MUTATE_CASES])
def test_mutate_containers(name: str, containers: list[Obj], skip: set[str], expected: list[Obj]) -> None:
    annotations = {SKIP: ";".join(sorted(skip))} if skip else None
    body = pod(annotations=annotations, containers=copy.deepcopy(containers))
    step = mutation(body, tenant_id="tenant-id")
    step.mutate_containers("client-id", "tenant-id", custom_endpoint=False)
    assert step.pod["spec"]["containers"] == expected


# ---------------------------------------------------------------- TestInjectProxyInitContainer

REGISTRY, VERSION = "my.proxy-image-registry.io/azwi", "v1.0.0"


def proxy_init(port: int) -> Obj:
    return {
        "name": "azwi-proxy-init", "image": f"{REGISTRY}/proxy-init:{VERSION}", "imagePullPolicy": "IfNotPresent",
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "privileged": True,
                            "runAsNonRoot": False, "runAsUser": 0},
        "env": [{"name": "PROXY_PORT", "value": str(port)}],
    }


def proxy_sidecar(port: int, native: bool) -> Obj:
    container: Obj = {
        "name": "azwi-proxy", "image": f"{REGISTRY}/proxy:{VERSION}", "imagePullPolicy": "IfNotPresent",
        "args": [f"--proxy-port={port}", "--log-level=debug"],
        "ports": [{"containerPort": port}],
        "lifecycle": {"postStart": {"exec": {"command": ["/proxy", f"--proxy-port={port}", "--probe",
                                                         "--log-level=debug"]}}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "privileged": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True},
    }
    if native:
        container["restartPolicy"] = "Always"
    return container


MY_CONTAINER = {"name": "my-container", "image": "my-image"}
PROXY_INIT_CASES = [
    ("no init containers", [], [proxy_init(8080)]),
    ("proxy init container manually injected", [proxy_init(8080)], [proxy_init(8080)]),
    ("inject proxy init container to existing init containers", [MY_CONTAINER], [MY_CONTAINER, proxy_init(8080)]),
]


def proxy_settings(native: bool) -> dict[str, Any]:
    return {"proxy_image_registry": REGISTRY, "version": VERSION, "log_level": "debug",
            "server_minor": 32 if native else 31}


@pytest.mark.parametrize("name, init_containers, expected", PROXY_INIT_CASES, ids=[c[0] for c in PROXY_INIT_CASES])
def test_inject_proxy_init_container(name: str, init_containers: list[Obj], expected: list[Obj]) -> None:
    body = pod(annotations={INJECT_PROXY: "true", PROXY_PORT: "8080"}, initContainers=copy.deepcopy(init_containers))
    step = mutation(body, **proxy_settings(native=False))
    step.inject_proxy()
    assert step.pod["spec"]["initContainers"] == expected


# ---------------------------------------------------------------- TestInjectProxySidecarContainer

SIDECAR_CASES = [
    ("no containers", [], False, [proxy_sidecar(8081, False)]),
    ("proxy sidecar container manually injected", [proxy_sidecar(8081, False)], False, [proxy_sidecar(8081, False)]),
    ("inject proxy sidecar container to existing containers", [MY_CONTAINER], False,
     [proxy_sidecar(8081, False), MY_CONTAINER]),
    ("inject proxy native sidecar container to existing containers when restartPolicy is set", [MY_CONTAINER], True,
     [proxy_sidecar(8081, True), MY_CONTAINER]),
]


@pytest.mark.parametrize("name, containers, native, expected", SIDECAR_CASES, ids=[c[0] for c in SIDECAR_CASES])
def test_inject_proxy_sidecar_container(name: str, containers: list[Obj], native: bool, expected: list[Obj]) -> None:
    # upstream hands the helper one list; with a native sidecar that list is the pod's initContainers
    key = "initContainers" if native else "containers"
    body = pod(annotations={INJECT_PROXY: "true", PROXY_PORT: "8081"}, **{key: copy.deepcopy(containers)})
    step = mutation(body, **proxy_settings(native))
    step.inject_proxy()
    got = [c for c in step.pod["spec"][key] if c["name"] != "azwi-proxy-init"]
    assert got == expected


# ---------------------------------------------------------------- TestShouldInjectProxySidecar / TestGetProxyPort


@pytest.mark.parametrize("name, annotations, expected", [
    ("pod not annotated", None, False),
    ("pod is annotated with azure.workload.identity/inject-proxy-sidecar=true", {INJECT_PROXY: "true"}, True),
], ids=["pod not annotated", "pod is annotated with azure.workload.identity/inject-proxy-sidecar=true"])
def test_should_inject_proxy_sidecar(name: str, annotations: dict[str, str] | None, expected: bool) -> None:
    body = pod(annotations=annotations, containers=[{"name": "c", "image": "image"}])
    mutated = run(body)
    assert any(c["name"] == "azwi-proxy" for c in
               [*mutated["spec"].get("initContainers", []), *mutated["spec"]["containers"]]) == expected


PORT_CASES = [
    ("pod not annotated", None, 8000),
    ("pod has no azure.workload.identity/proxy-sidecar-port annotation", {"test": "test"}, 8000),
    ("pod is annotated with azure.workload.identity/proxy-sidecar-port=8080", {PROXY_PORT: "8080"}, 8080),
    ("pod is annotated with azure.workload.identity/proxy-sidecar-port=invalid", {PROXY_PORT: "invalid"}, None),
]


@pytest.mark.parametrize("name, annotations, expected", PORT_CASES, ids=[c[0] for c in PORT_CASES])
def test_get_proxy_port(name: str, annotations: dict[str, str] | None, expected: int | None) -> None:
    step = mutation(pod(annotations=annotations))
    if expected is None:
        with pytest.raises(ApiError):
            step.proxy_port()
    else:
        assert step.proxy_port() == expected


# ---------------------------------------------------------------- TestHandleError

DENIED = 'admission webhook "mutation.azure-workload-identity.io" denied the request: '
HANDLE_ERROR_CASES = [
    ("service account not found", upstream_pod({USE: "true"}, host_network=True), {},
     'serviceaccounts "sa" not found'),
    ("pod has host network", upstream_pod({USE: "true"}, {INJECT_PROXY: "true"}, host_network=True), None,
     "hostNetwork is set to true, cannot inject proxy sidecar"),
    ("invalid proxy port", upstream_pod({USE: "true"}, {INJECT_PROXY: "true", PROXY_PORT: "invalid"}), None,
     'failed to parse proxy sidecar port: strconv.ParseInt: parsing "invalid": invalid syntax'),
    ("invalid sa token expiry", upstream_pod({USE: "true"}, {EXPIRY: "invalid"}), None,
     'strconv.ParseInt: parsing "invalid": invalid syntax'),
]


@pytest.mark.parametrize("name, body, accounts, expected", HANDLE_ERROR_CASES, ids=[c[0] for c in HANDLE_ERROR_CASES])
def test_handle_error(name: str, body: Obj, accounts: dict[str, Obj] | None, expected: str) -> None:
    with pytest.raises(ApiError) as caught:
        handle(body, accounts)
    assert caught.value.code == 400
    assert expected in caught.value.message and caught.value.message.startswith(DENIED)


# ---------------------------------------------------------------- TestServerVersionGTE

VERSION_CASES = [
    ("Exact match", "1.20.0", (1, 20), True),
    ("Higher major version", "2.0.0", (1, 25), True),
    ("Higher minor version", "1.25.0", (1, 20), True),
    ("Lower minor version", "1.18.0", (1, 20), False),
    ("Lower major version", "0.25.0", (1, 20), False),
]


@pytest.mark.parametrize("name, server, minimum, expected", VERSION_CASES, ids=[c[0] for c in VERSION_CASES])
def test_server_version_gte(name: str, server: str, minimum: tuple[int, int], expected: bool) -> None:
    assert webhook.server_version_gte(server, *minimum) == expected
