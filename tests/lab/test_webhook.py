"""The azure-workload-identity webhook emulation, mirroring the upstream e2e scenarios (test/e2e/webhook.go)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from lab.kube.errors import ApiError
from lab.kube.validation import pod_spec_causes
from lab.kube.webhook import (
    GoParseError,
    WebhookSettings,
    admit_pod,
    go_parse_int,
    v16_volume_name,
    webhook_objects,
)

Obj = dict[str, Any]

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "00000000-0000-0000-0000-000000000001"
SA_NAME = "workload-identity-sa"
AUTHORITY = "https://login.microsoftonline.com/"
V16_TOKEN_FILE = "/var/run/secrets/azure/wi/token/azure-identity-token"
V15_TOKEN_FILE = "/var/run/secrets/azure/tokens/azure-identity-token"
DENIED = 'admission webhook "mutation.azure-workload-identity.io" denied the request: '
UNREACHABLE = (
    'Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to call '
    'webhook: Post "https://azure-wi-webhook-webhook-service.kube-system.svc:443/mutate-v1-pod?timeout=10s": '
    "dial tcp 10.0.184.9:443: connect: connection refused"
)


def service_account(name: str = SA_NAME, namespace: str = "default", annotations: dict[str, str] | None = None,
                    labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if annotations is not None:
        meta["annotations"] = annotations
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def annotated_sa(**extra: str) -> Obj:
    return service_account(annotations={"azure.workload.identity/client-id": CLIENT, **extra})


def container(name: str, **fields: Any) -> Obj:
    return {"name": name, "image": "busybox", "command": ["sleep", "3600"],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000}, **fields}


def pod(name: str | None = "busybox", labelled: bool = True, containers: tuple[str, ...] = ("busybox-1", "busybox-2"),
        init: tuple[str, ...] = (), annotations: dict[str, str] | None = None, sa: str | None = SA_NAME,
        **spec: Any) -> Obj:
    meta: Obj = {"namespace": "default"}
    if name is not None:
        meta["name"] = name
    if labelled:
        meta["labels"] = {"azure.workload.identity/use": "true"}
    if annotations:
        meta["annotations"] = annotations
    body: Obj = {"containers": [container(c) for c in containers], **spec}
    if init:
        body["initContainers"] = [container(c) for c in init]
    if sa is not None:
        body["serviceAccountName"] = sa
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def lookup(*accounts: Obj):
    by_key = {(a["metadata"]["namespace"], a["metadata"]["name"]): a for a in accounts}

    def get(namespace: str, name: str) -> Obj | None:
        return copy.deepcopy(by_key.get((namespace, name)))

    return get


def admit(body: Obj, *accounts: Obj, namespace: str = "default", ns_labels: dict[str, str] | None = None,
          **settings: Any) -> Obj:
    accounts = accounts or (annotated_sa(),)
    settings.setdefault("layout", "v1.6")  # most cases here follow the upstream e2e suite, which is v1.6's
    return admit_pod(body, namespace, WebhookSettings(tenant_id=TENANT, **settings), lookup(*accounts),
                     ns_labels or {"kubernetes.io/metadata.name": namespace})


def denial(body: Obj, *accounts: Obj, **settings: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        admit(body, *accounts, **settings)
    return caught.value


def env_of(c: Obj) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def expected_env(client_id: str = CLIENT, token_file: str = V16_TOKEN_FILE) -> list[Obj]:
    env = [("AZURE_CLIENT_ID", client_id), ("AZURE_TENANT_ID", TENANT), ("AZURE_FEDERATED_TOKEN_FILE", token_file),
           ("AZURE_AUTHORITY_HOST", AUTHORITY)]
    return [{"name": n, "value": v} for n, v in env if v]


def reserved_name(pod_name: str) -> str:
    return "azure-workload-identity-reserved-" + hashlib.sha256(pod_name.encode()).hexdigest()[:30]


def expected_volume(pod_name: str = "busybox", expiration: int = 3600) -> Obj:
    return {"name": reserved_name(pod_name), "projected": {"sources": [{"serviceAccountToken": {
        "audience": "api://AzureADTokenExchange", "expirationSeconds": expiration,
        "path": "token/azure-identity-token"}}]}}


# ---------------------------------------------------------------- the happy path


def test_labelled_pod_is_mutated() -> None:
    original = pod()
    mutated = admit(original)
    mount = {"name": reserved_name("busybox"), "mountPath": "/var/run/secrets/azure/wi", "readOnly": True}
    for c in mutated["spec"]["containers"]:
        assert c["env"] == expected_env()
        assert c["volumeMounts"] == [mount]
    assert mutated["spec"]["volumes"] == [expected_volume()]
    assert original == pod(), "the input pod must not be modified"


def test_reserved_volume_name_is_63_characters() -> None:
    name = v16_volume_name("busybox")
    assert len(name) == 63
    assert name == "azure-workload-identity-reserved-" + hashlib.sha256(b"busybox").hexdigest()[:30]


def test_generate_name_pod_hashes_prefix_marker() -> None:
    body = pod(name=None)
    body["metadata"]["generateName"] = "web-7d9f-"
    mutated = admit(body)
    assert mutated["spec"]["volumes"][0]["name"] == reserved_name("web-7d9f- (prefix)")


def test_init_containers_are_mutated() -> None:
    mutated = admit(pod(init=("init-1",)))
    assert mutated["spec"]["initContainers"][0]["env"] == expected_env()
    assert mutated["spec"]["initContainers"][0]["volumeMounts"][0]["name"] == reserved_name("busybox")


def test_namespace_is_set_from_the_request() -> None:
    body = pod()
    del body["metadata"]["namespace"]
    assert admit(body)["metadata"]["namespace"] == "default"


def test_default_service_account_is_used_when_unset() -> None:
    mutated = admit(pod(sa=None), service_account(name="default", annotations={
        "azure.workload.identity/client-id": CLIENT}))
    assert env_of(mutated["spec"]["containers"][0])["AZURE_CLIENT_ID"] == CLIENT


# ---------------------------------------------------------------- not selected


@pytest.mark.parametrize("labels", [None, {"azure.workload.identity/use": "True"},
                                    {"azure.workload.identity/use": "false"}, {"app": "x"}])
def test_unlabelled_pod_is_untouched(labels: dict[str, str] | None) -> None:
    body = pod(labelled=False)
    if labels:
        body["metadata"]["labels"] = labels
    assert admit(body) == body


def test_label_on_service_account_only_does_nothing() -> None:
    account = annotated_sa()
    account["metadata"]["labels"] = {"azure.workload.identity/use": "true"}
    body = pod(labelled=False)
    assert admit(body, account) == body


def test_kube_system_pods_are_not_sent_to_the_webhook() -> None:
    body = pod()
    body["metadata"]["namespace"] = "kube-system"
    assert admit(body, namespace="kube-system") == body
    assert admit(body, namespace="kube-system", mode="down") == body


def test_aks_managed_namespaces_are_excluded() -> None:
    body = pod()
    assert admit(body, ns_labels={"control-plane": "true"}) == body
    assert admit(body, ns_labels={"kubernetes.azure.com/managedby": "aks"}) == body


# ---------------------------------------------------------------- skip-containers, env rules


def test_skip_containers_get_no_env_and_no_mount() -> None:
    mutated = admit(pod(annotations={"azure.workload.identity/skip-containers": "busybox-1;"}))
    skipped, kept = mutated["spec"]["containers"]
    assert "env" not in skipped
    assert "volumeMounts" not in skipped
    assert kept["env"] == expected_env()
    assert mutated["spec"]["volumes"] == [expected_volume()], "the pod-level volume is still added"


def test_skip_containers_are_trimmed_and_apply_to_init_containers() -> None:
    mutated = admit(pod(init=("init-1",), annotations={
        "azure.workload.identity/skip-containers": " init-1 ; busybox-2 "}))
    assert "env" not in mutated["spec"]["initContainers"][0]
    assert "env" not in mutated["spec"]["containers"][1]
    assert mutated["spec"]["containers"][0]["env"] == expected_env()


def test_existing_env_is_not_overwritten() -> None:
    body = pod()
    body["spec"]["containers"][0]["env"] = [{"name": "AZURE_CLIENT_ID", "value": "mine"}, {"name": "OTHER", "value": "1"}]
    first = admit(body)["spec"]["containers"][0]
    assert [e["name"] for e in first["env"]] == [
        "AZURE_CLIENT_ID", "OTHER", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"]
    assert env_of(first)["AZURE_CLIENT_ID"] == "mine"


def test_missing_client_id_is_not_injected() -> None:
    mutated = admit(pod(), service_account())
    for c in mutated["spec"]["containers"]:
        assert c["env"] == expected_env(client_id="")
        assert "AZURE_CLIENT_ID" not in env_of(c)
    assert mutated["spec"]["volumes"] == [expected_volume()]


def test_tenant_id_annotation_wins_even_when_empty() -> None:
    other = admit(pod(), annotated_sa(**{"azure.workload.identity/tenant-id": "other-tenant"}))
    assert env_of(other["spec"]["containers"][0])["AZURE_TENANT_ID"] == "other-tenant"
    empty = admit(pod(), annotated_sa(**{"azure.workload.identity/tenant-id": ""}))
    assert "AZURE_TENANT_ID" not in env_of(empty["spec"]["containers"][0])


# ---------------------------------------------------------------- denials


def test_missing_service_account_is_denied() -> None:
    error = denial(pod(), service_account(name="someone-else"))
    assert (error.code, error.reason) == (400, "")
    assert "reason" not in error.status()
    assert error.message == DENIED + 'serviceaccounts "workload-identity-sa" not found'


INVALID_EXPIRATIONS = [
    ("100", "token expiration 100 not valid. Expected value to be between 3600 and 86400"),
    ("invalid", 'strconv.ParseInt: parsing "invalid": invalid syntax'),
    ("90000", "token expiration 90000 not valid. Expected value to be between 3600 and 86400"),
    ("99999999999999999999", 'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
]
EXPIRATION = "azure.workload.identity/service-account-token-expiration"


@pytest.mark.parametrize(("value", "message"), INVALID_EXPIRATIONS)
def test_invalid_expiration_on_service_account_is_denied(value: str, message: str) -> None:
    error = denial(pod(), annotated_sa(**{EXPIRATION: value}))
    assert (error.code, error.message) == (400, DENIED + message)


@pytest.mark.parametrize(("value", "message"), INVALID_EXPIRATIONS)
def test_invalid_expiration_on_pod_is_denied(value: str, message: str) -> None:
    error = denial(pod(annotations={EXPIRATION: value}))
    assert (error.code, error.message) == (400, DENIED + message)


def test_pod_expiration_beats_service_account_expiration() -> None:
    mutated = admit(pod(annotations={EXPIRATION: "7200"}), annotated_sa(**{EXPIRATION: "invalid"}))
    assert mutated["spec"]["volumes"] == [expected_volume(expiration=7200)]
    error = denial(pod(annotations={EXPIRATION: "100"}), annotated_sa(**{EXPIRATION: "7200"}))
    assert error.message == DENIED + "token expiration 100 not valid. Expected value to be between 3600 and 86400"


def test_expiration_bounds_and_service_account_value() -> None:
    assert admit(pod(), annotated_sa(**{EXPIRATION: "86400"}))["spec"]["volumes"] == [expected_volume(expiration=86400)]
    assert admit(pod(annotations={EXPIRATION: ""}), annotated_sa(**{EXPIRATION: "3600"}))["spec"]["volumes"] == [
        expected_volume()]


# ---------------------------------------------------------------- webhook down / absent


def test_webhook_down_rejects_labelled_pods() -> None:
    error = denial(pod(), mode="down")
    assert (error.code, error.reason, error.message) == (500, "InternalError", UNREACHABLE)
    assert error.status()["details"]["causes"][0]["message"] == UNREACHABLE.removeprefix("Internal error occurred: ")


def test_webhook_down_admits_unlabelled_pods() -> None:
    body = pod(labelled=False)
    assert admit(body, mode="down") == body


def test_webhook_absent_admits_unmutated() -> None:
    body = pod()
    assert admit(body, mode="absent") == body
    assert webhook_objects(WebhookSettings(mode="absent")) == []


# ---------------------------------------------------------------- layouts


def test_v15_layout() -> None:
    mutated = admit(pod(), layout="v1.5")
    for c in mutated["spec"]["containers"]:
        assert c["env"] == expected_env(token_file=V15_TOKEN_FILE)
        assert c["volumeMounts"] == [
            {"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens", "readOnly": True}]
    assert mutated["spec"]["volumes"] == [{"name": "azure-identity-token", "projected": {
        "sources": [{"serviceAccountToken": {
            "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"}}]}}]


def test_v15_keeps_pre_existing_volume_and_mount() -> None:
    body = pod(containers=("busybox-1",))
    user_volume = {"name": "my-token", "projected": {"sources": [{"serviceAccountToken": {
        "path": "azure-identity-token", "expirationSeconds": 7200}}]}}
    user_mount = {"name": "azure-identity-token", "mountPath": "/custom"}
    body["spec"]["volumes"] = [user_volume]
    body["spec"]["containers"][0]["volumeMounts"] = [user_mount]
    mutated = admit(body, layout="v1.5")
    assert mutated["spec"]["volumes"] == [user_volume]
    assert mutated["spec"]["containers"][0]["volumeMounts"] == [user_mount]


def test_v16_replaces_pre_existing_reserved_volume_and_mount() -> None:
    body = pod(containers=("busybox-1",))
    name = reserved_name("busybox")
    body["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": name, "emptyDir": {}}]
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": name, "mountPath": "/custom"}]
    mutated = admit(body)
    assert mutated["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}, expected_volume()]
    assert mutated["spec"]["containers"][0]["volumeMounts"] == [
        {"name": name, "mountPath": "/var/run/secrets/azure/wi", "readOnly": True}]


def test_authority_host_keeps_trailing_slash() -> None:
    mutated = admit(pod(), authority_host="https://login.microsoftonline.us/")
    assert env_of(mutated["spec"]["containers"][0])["AZURE_AUTHORITY_HOST"] == "https://login.microsoftonline.us/"


# ---------------------------------------------------------------- proxy sidecar


PROXY = "azure.workload.identity/inject-proxy-sidecar"
PROXY_PORT = "azure.workload.identity/proxy-sidecar-port"


def test_proxy_with_host_network_is_denied() -> None:
    error = denial(pod(annotations={PROXY: "true"}, hostNetwork=True))
    assert error.message == DENIED + "hostNetwork is set to true, cannot inject proxy sidecar"


def test_proxy_port_must_parse() -> None:
    error = denial(pod(annotations={PROXY: "true", PROXY_PORT: "invalid"}))
    assert error.message == DENIED + 'failed to parse proxy sidecar port: strconv.ParseInt: parsing "invalid": invalid syntax'


@pytest.mark.parametrize(("port", "native", "cause"), [
    ("70000", True, ("FieldValueInvalid", "spec.initContainers[0].ports[0].containerPort",
                     "Invalid value: 70000: must be between 1 and 65535, inclusive")),
    ("-1", False, ("FieldValueInvalid", "spec.containers[0].ports[0].containerPort",
                   "Invalid value: -1: must be between 1 and 65535, inclusive")),
    ("0", True, ("FieldValueRequired", "spec.initContainers[0].ports[0].containerPort", "Required value")),
])
def test_a_proxy_port_the_webhook_parses_but_is_no_port_makes_the_pod_invalid(port: str, native: bool,
                                                                              cause: tuple[str, str, str]) -> None:
    """getProxyPort takes any int32 (ParseInt base 10, 32 bits), and the proxy's containerPort is validated after
    admission (validateContainerPorts: IsValidPortNum, 0 is required): the API server refuses the mutated pod."""
    mutated = admit(pod(annotations={PROXY: "true", PROXY_PORT: port}), server_minor=32 if native else 31)
    assert pod_spec_causes(mutated["spec"]) == [cause]
    assert pod_spec_causes(admit(pod(annotations={PROXY: "true", PROXY_PORT: "65535"}))["spec"]) == []


def test_proxy_as_native_sidecar() -> None:
    mutated = admit(pod(init=("init-1",), annotations={PROXY: "true", PROXY_PORT: "8080"}))
    init = mutated["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["azwi-proxy", "init-1", "azwi-proxy-init"]
    assert [c["name"] for c in mutated["spec"]["containers"]] == ["busybox-1", "busybox-2"]
    proxy, proxy_init = init[0], init[2]
    assert proxy["restartPolicy"] == "Always"
    assert proxy["image"] == "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0"
    assert proxy["args"] == ["--proxy-port=8080", "--log-level=info"]
    assert proxy["ports"] == [{"containerPort": 8080}]
    assert proxy["lifecycle"]["postStart"]["exec"]["command"] == [
        "/proxy", "--proxy-port=8080", "--probe", "--log-level=info"]
    assert proxy_init["image"] == "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0"
    assert proxy_init["securityContext"] == {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                             "privileged": True, "runAsNonRoot": False, "runAsUser": 0}
    assert proxy_init["env"] == [{"name": "PROXY_PORT", "value": "8080"}, *expected_env()]
    assert proxy["env"] == expected_env(), "the injected proxy containers are mutated too"


def test_proxy_as_regular_container_before_132() -> None:
    mutated = admit(pod(annotations={PROXY: "false"}), server_minor=31, layout="v1.5")
    assert [c["name"] for c in mutated["spec"]["containers"]] == ["azwi-proxy", "busybox-1", "busybox-2"]
    assert [c["name"] for c in mutated["spec"]["initContainers"]] == ["azwi-proxy-init"]
    proxy = mutated["spec"]["containers"][0]
    assert "restartPolicy" not in proxy
    assert proxy["args"][0] == "--proxy-port=8000"
    assert proxy["image"].endswith("/proxy:v1.5.1")


def test_proxy_is_not_injected_twice() -> None:
    once = admit(pod(annotations={PROXY: "true"}))
    twice = admit(once)
    assert [c["name"] for c in twice["spec"]["initContainers"]] == ["azwi-proxy", "azwi-proxy-init"]
    assert twice == once, "reinvocation is idempotent"


# ---------------------------------------------------------------- v1.6 custom token endpoint


def test_custom_token_endpoint() -> None:
    mutated = admit(pod(annotations={"azure.workload.identity/use-identity-binding": "TRUE"}),
                    custom_token_endpoint_suffix="identity-binding", custom_token_endpoint_audience="api://AKSIdentityBinding",
                    token_proxy="https://10.0.0.1:443", sni_name="ib.example", ca_configmap_name="kube-root-ca.crt")
    c = mutated["spec"]["containers"][0]
    assert env_of(c)["AZURE_KUBERNETES_TOKEN_PROXY"] == "https://10.0.0.1:443"
    assert env_of(c)["AZURE_KUBERNETES_SNI_NAME"] == "ib.example"
    assert env_of(c)["AZURE_KUBERNETES_CA_FILE"] == "/var/run/secrets/azure/wi/ca-cert/ca.crt"
    assert "AZURE_KUBERNETES_CA_DATA" not in env_of(c)
    sources = mutated["spec"]["volumes"][0]["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["audience"] == "api://AKSIdentityBinding"
    assert sources[1] == {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}],
                                        "optional": False}}


def test_custom_token_endpoint_disabled_by_default() -> None:
    mutated = admit(pod(annotations={"azure.workload.identity/use-identity-binding": "true"}))
    assert mutated["spec"]["containers"][0]["env"] == expected_env()


# ---------------------------------------------------------------- the add-on's objects


def test_webhook_objects() -> None:
    objects = webhook_objects(WebhookSettings(tenant_id=TENANT))
    assert [(g, p, ns, o["kind"], o["metadata"]["name"]) for g, p, ns, o in objects] == [
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "MutatingWebhookConfiguration",
         "azure-wi-webhook-mutating-webhook-configuration"),
        ("apps", "deployments", "kube-system", "Deployment", "azure-wi-webhook-controller-manager"),
        ("", "configmaps", "kube-system", "ConfigMap", "azure-wi-webhook-config"),
        ("", "serviceaccounts", "kube-system", "ServiceAccount", "azure-wi-webhook-admin"),
        ("", "services", "kube-system", "Service", "azure-wi-webhook-webhook-service"),
        ("", "secrets", "kube-system", "Secret", "azure-wi-webhook-server-cert"),
    ]
    mwc, deployment, config_map, account, service, secret = (o for *_, o in objects)
    assert "namespace" not in mwc["metadata"]
    assert mwc["apiVersion"] == "admissionregistration.k8s.io/v1"
    hook = mwc["webhooks"][0]
    assert hook["name"] == "mutation.azure-workload-identity.io"
    assert hook["failurePolicy"] == "Fail"
    assert hook["objectSelector"] == {"matchLabels": {"azure.workload.identity/use": "true"}}
    assert hook["rules"][0]["operations"] == ["CREATE"] and hook["rules"][0]["resources"] == ["pods"]
    assert (hook["matchPolicy"], hook["reinvocationPolicy"], hook["sideEffects"]) == ("Equivalent", "IfNeeded", "None")
    assert hook["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert hook["clientConfig"]["service"] == {"name": "azure-wi-webhook-webhook-service", "namespace": "kube-system",
                                               "path": "/mutate-v1-pod", "port": 443}
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["labels"]["azure-workload-identity.io/system"] == "true"
    assert deployment["spec"]["template"]["metadata"]["labels"]["azure-workload-identity.io/system"] == "true"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "mcr.microsoft.com/oss/azure/workload-identity/webhook:v1.5.1")
    assert "status" not in deployment  # the Deployment controller writes it from the pods
    assert service["spec"]["ports"] == [{"port": 443, "protocol": "TCP", "targetPort": 9443}]
    assert service["spec"]["selector"] == {"azure-workload-identity.io/system": "true"}
    assert sorted(secret["data"]) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert config_map["data"] == {"AZURE_ENVIRONMENT": "AzurePublicCloud", "AZURE_TENANT_ID": TENANT}
    assert account["apiVersion"] == "v1" and account["metadata"]["namespace"] == "kube-system"


def test_webhook_objects_when_down_and_v16() -> None:
    _, _, _, deployment = webhook_objects(WebhookSettings(mode="down", layout="v1.6"))[1]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/webhook:v1.6.0")


# ---------------------------------------------------------------- settings and Go parsing


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        WebhookSettings(mode="sideways")
    with pytest.raises(ValueError):
        WebhookSettings(layout="v2")
    assert WebhookSettings(layout="v1.5").image_tag == "v1.5.1"
    assert WebhookSettings(version="v1.6.0-alpha.1").image_tag == "v1.6.0-alpha.1"


def test_default_layout_is_what_aks_ships_and_pr1749_hashes_the_mount_path() -> None:
    assert WebhookSettings().layout == "v1.5"  # Azure/AKS#5541: the standard add-on still mounts /tokens
    mutated = admit(pod(containers=("busybox-1",)), layout="pr1749")
    digest = reserved_name("busybox").removeprefix("azure-workload-identity-reserved-")
    mount_path = f"/var/run/secrets/azure/wi/{digest}"
    assert env_of(mutated["spec"]["containers"][0])["AZURE_FEDERATED_TOKEN_FILE"] == (
        f"{mount_path}/token/azure-identity-token")
    assert mutated["spec"]["containers"][0]["volumeMounts"] == [
        {"name": reserved_name("busybox"), "mountPath": mount_path, "readOnly": True}]
    assert mutated["spec"]["volumes"] == [expected_volume()]


def test_runtime_layout_switch_follows_through() -> None:
    settings = WebhookSettings(tenant_id=TENANT, layout="v1.6")
    settings.layout = "v1.5"  # lab control flips the live settings object
    assert settings.webhook_image.endswith("/webhook:v1.5.1")
    mutated = admit_pod(pod(), "default", settings, lookup(annotated_sa()), {})
    assert mutated["spec"]["volumes"][0]["name"] == "azure-identity-token"


def test_go_parse_int() -> None:
    assert go_parse_int("+3600", 64) == 3600
    assert go_parse_int("-1", 32) == -1
    for text in (" 3600", "3_600", "", "0x10", "٣"):
        with pytest.raises(GoParseError, match="invalid syntax"):
            go_parse_int(text, 64)
    with pytest.raises(GoParseError, match=r'parsing "2147483648": value out of range'):
        go_parse_int("2147483648", 32)


def test_the_chart_installs_in_its_own_namespace_with_its_labels_and_both_share_one_configuration() -> None:
    chart = webhook_objects(WebhookSettings(tenant_id=TENANT, install="helm",
                                            namespace="azure-workload-identity-system"))
    namespaces = {ns for _, _, ns, _ in chart if ns}
    assert namespaces == {"azure-workload-identity-system"}
    mwc, deployment = chart[0][3], chart[1][3]
    assert mwc["webhooks"][0]["clientConfig"]["service"]["namespace"] == "azure-workload-identity-system"
    assert deployment["metadata"]["annotations"]["meta.helm.sh/release-name"] == "workload-identity-webhook"
    assert deployment["metadata"]["labels"] == {
        "azure-workload-identity.io/system": "true", "app": "workload-identity-webhook",
        "chart": "workload-identity-webhook", "release": "workload-identity-webhook",
    }
    both = webhook_objects(WebhookSettings(tenant_id=TENANT, install="both"))
    kinds = [(o["kind"], ns) for _, _, ns, o in both]
    assert kinds.count(("MutatingWebhookConfiguration", "")) == 1
    assert {ns for kind, ns in kinds if kind == "Deployment"} == {"kube-system", "azure-workload-identity-system"}
    with pytest.raises(ValueError, match="install"):
        WebhookSettings(install="operator")
