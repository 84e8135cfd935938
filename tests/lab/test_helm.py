"""Helm against the lab: install, list, upgrade, server-side dry-run and uninstall with Helm's own Go SDK.

No Helm binary for Linux is installable from PyPI, so this drives helm.sh/helm/v4 through helm-python-sdk
(ctypes over libhelm_c, a C ABI built from Helm's official SDK): the same action package the helm CLI runs, so
the same discovery, server-side apply, release Secrets and kstatus waits reach the lab."""

from __future__ import annotations

import base64
import gzip
import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (the dev extras) is not installed")

IDLE_IMAGE = "myacr.azurecr.io/finance/backend:1.0"  # a scenario image the kubelet keeps Running
CLIENT_ID = "11111111-2222-3333-4444-555555555555"

CHART_YAML = """\
apiVersion: v2
name: rehearsal
version: 0.1.0
appVersion: "1.0"
"""
VALUES_YAML = f"""\
replicas: 1
image: {IDLE_IMAGE}
greeting: hello
extra: ""
withConfig: true
clientId: {CLIENT_ID}
"""
TEMPLATE = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-sa
  annotations:
    azure.workload.identity/client-id: {{ .Values.clientId | quote }}
{{- if .Values.withConfig }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  greeting: {{ .Values.greeting | quote }}
  {{- with .Values.extra }}
  extra: {{ . | quote }}
  {{- end }}
{{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    app: {{ .Release.Name }}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
        azure.workload.identity/use: "true"
    spec:
      serviceAccountName: {{ .Release.Name }}-sa
      containers:
      - name: app
        image: {{ .Values.image }}
        ports:
        - containerPort: 8080
"""

# The shape of charts/workload-identity-webhook (its templates' kinds and cluster-scoped objects), with names
# of its own and a selector no pod carries so that this second webhook configuration never admits anything.
WEBHOOK_SHAPE = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-admin
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-server-cert
type: Opaque
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  AZURE_TENANT_ID: {{ .Values.tenantId | quote }}
  AZURE_ENVIRONMENT: AzurePublicCloud
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .Release.Name }}-manager-role
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete, get, list, patch, update, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .Release.Name }}-manager-rolebinding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .Release.Name }}-manager-role
subjects:
- kind: ServiceAccount
  name: {{ .Release.Name }}-admin
  namespace: {{ .Release.Namespace }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Name }}-manager-role
rules:
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Release.Name }}-manager-rolebinding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .Release.Name }}-manager-role
subjects:
- kind: ServiceAccount
  name: {{ .Release.Name }}-admin
  namespace: {{ .Release.Namespace }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-webhook-service
spec:
  selector:
    app: {{ .Release.Name }}
  ports:
  - port: 443
    targetPort: webhook-server
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-controller-manager
spec:
  replicas: 0
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
    spec:
      serviceAccountName: {{ .Release.Name }}-admin
      containers:
      - name: manager
        image: mcr.microsoft.com/oss/azure/workload-identity/webhook:v1.6.0
        ports:
        - containerPort: 9443
          name: webhook-server
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ .Release.Name }}-mutating-webhook-configuration
webhooks:
- name: mutation.{{ .Release.Name }}.example
  admissionReviewVersions: [v1, v1beta1]
  clientConfig:
    service:
      name: {{ .Release.Name }}-webhook-service
      namespace: {{ .Release.Namespace }}
      path: /mutate-v1-pod
  failurePolicy: Ignore
  objectSelector:
    matchLabels:
      {{ .Release.Name }}/never: "true"
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [pods]
  sideEffects: None
"""


def write_chart(root: Path, name: str, template: str, values: str) -> Path:
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML.replace("rehearsal", name))
    (chart / "values.yaml").write_text(values)
    (chart / "templates" / "all.yaml").write_text(template)
    return chart


@pytest.fixture(scope="module")
def namespace(kube_api: Any) -> Iterator[str]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = f"helm-{uuid.uuid4().hex[:8]}"
    yield name
    try:  # helm install --create-namespace makes it; helm uninstall leaves it, as on a cluster
        client.CoreV1Api(kube_api).delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="module")
def cfg(kubeconfig: Path, namespace: str) -> Iterator[Any]:
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=namespace) as config:
        yield config


@pytest.fixture(scope="module")
def core(kube_api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube_api)


def release_secrets(core: Any, namespace: str, release: str) -> list[Any]:
    return core.list_namespaced_secret(namespace, label_selector=f"owner=helm,name={release}").items


def stored_release(secret: Any) -> dict[str, Any]:
    """Helm's Secret driver: the release JSON, gzipped, base64-encoded, in data.release (itself base64)."""
    return json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret.data["release"]))))


def names(items: list[Any]) -> set[str]:
    return {item.metadata.name for item in items}


def test_install_list_upgrade_uninstall(cfg: Any, core: Any, kube_api: Any, namespace: str,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(kube_api)
    chart = write_chart(tmp_path_factory.mktemp("charts"), "rehearsal", TEMPLATE, VALUES_YAML)

    # a server-side dry run (helm install --dry-run=server) renders against the API and creates nothing
    dry = cfg.install(str(chart), "web", dry_run="server", create_namespace=True)
    assert dry["status"] == "pending-install"
    assert namespace not in names(core.list_namespace().items)  # not even the namespace

    installed = cfg.install(str(chart), "web", create_namespace=True, wait="watcher", timeout=30)
    assert (installed["revision"], installed["status"]) == (1, "deployed")
    assert namespace in names(core.list_namespace().items)
    assert core.read_namespaced_config_map("web-config", namespace).data == {"greeting": "hello"}
    assert core.read_namespaced_service("web", namespace).spec.ports[0].port == 80
    sa = core.read_namespaced_service_account("web-sa", namespace)
    assert sa.metadata.annotations["azure.workload.identity/client-id"] == CLIENT_ID
    deployment = apps.read_namespaced_deployment("web", namespace)
    assert deployment.status.ready_replicas == 1  # wait="watcher" saw it Current through kstatus
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    env = {e.name: e.value for e in pods[0].spec.containers[0].env or []}
    assert env["AZURE_CLIENT_ID"] == CLIENT_ID  # the webhook mutated the Helm-installed workload's pod

    [secret] = release_secrets(core, namespace, "web")
    assert secret.type == "helm.sh/release.v1" and secret.metadata.name == "sh.helm.release.v1.web.v1"
    assert secret.metadata.labels["status"] == "deployed"
    record = stored_release(secret)
    assert record["name"] == "web" and record["version"] == 1 and "kind: Deployment" in record["manifest"]

    listed = [(item["name"], item["revision"], item["status"]) for item in cfg.list()]
    assert listed == [("web", 1, "deployed")]

    # upgrade: new values are applied; a ConfigMap left out of the next manifest is deleted
    upgraded = cfg.upgrade(str(chart), "web", {"replicas": 2, "greeting": "bye"}, wait="watcher", timeout=30)
    assert (upgraded["revision"], upgraded["status"]) == (2, "deployed")
    assert core.read_namespaced_config_map("web-config", namespace).data == {"greeting": "bye"}
    assert apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 2
    cfg.upgrade(str(chart), "web", {"withConfig": False}, reuse_values=True)
    assert "web-config" not in names(core.list_namespaced_config_map(namespace).items)
    history = [(item["revision"], item["status"]) for item in cfg.history("web")]
    assert history == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert cfg.get_values("web")["withConfig"] is False

    cfg.uninstall("web", wait="watcher", timeout=30)
    assert list(cfg.list(all_states=True)) == []
    assert not release_secrets(core, namespace, "web")
    assert "web" not in names(apps.list_namespaced_deployment(namespace).items)
    assert "web" not in names(core.list_namespaced_service(namespace).items)
    assert "web-sa" not in names(core.list_namespaced_service_account(namespace).items)


def test_upgrade_removes_a_key_the_chart_no_longer_renders(cfg: Any, core: Any, namespace: str,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    chart = write_chart(tmp_path_factory.mktemp("charts"), "rehearsal", TEMPLATE, VALUES_YAML)
    cfg.install(str(chart), "keys", {"extra": "first", "replicas": 0}, create_namespace=True)
    try:
        cfg.upgrade(str(chart), "keys", {"replicas": 0})
        assert core.read_namespaced_config_map("keys-config", namespace).data == {"greeting": "hello"}
    finally:
        cfg.uninstall("keys")


def test_the_labs_chart_installed_webhook_is_a_helm_release(lab: Any, lab_thread: Any, kubeconfig: Path,
                                                            core: Any) -> None:
    """lab ctl webhook --install helm: the chart's objects come with the release record Helm would have left."""
    from lab.control import set_webhook
    from lab.kube.webhook import CHART_NAMESPACE, CHART_RELEASE

    lab_thread.call(lambda: set_webhook(lab, {"install": "helm"})).result(10)
    try:
        with helm.Config(kubeconfig_path=str(kubeconfig), namespace=CHART_NAMESPACE) as chart_cfg:
            [release] = chart_cfg.list()
            assert (release["name"], release["revision"], release["status"]) == (CHART_RELEASE, 1, "deployed")
            assert (release["chart_name"], release["chart_version"]) == ("workload-identity-webhook", "1.5.1")
            assert chart_cfg.get_values(CHART_RELEASE) == {"azureTenantID": lab.kube.webhook.tenant_id}
            assert [(item["revision"], item["status"]) for item in chart_cfg.history(CHART_RELEASE)] == [
                (1, "deployed")]
            manifest = chart_cfg.status(CHART_RELEASE)["manifest"]
            assert "kind: MutatingWebhookConfiguration" in manifest and "name: azure-wi-webhook-controller-manager" \
                in manifest
            assert "kind: PodDisruptionBudget" in manifest  # the chart's, minAvailable 1 (its values.yaml)
        from kubernetes import client

        budget = client.PolicyV1Api(core.api_client).read_namespaced_pod_disruption_budget(
            "azure-wi-webhook-controller-manager", CHART_NAMESPACE)
        assert budget.spec.min_available == 1
        assert budget.spec.selector.match_labels == {"azure-workload-identity.io/system": "true",
                                                     "app": "workload-identity-webhook",
                                                     "chart": "workload-identity-webhook", "release": CHART_RELEASE}
        [secret] = release_secrets(core, CHART_NAMESPACE, CHART_RELEASE)
        assert secret.type == "helm.sh/release.v1"
    finally:
        lab_thread.call(lambda: set_webhook(lab, {"install": "addon"})).result(10)
    assert not release_secrets(core, CHART_NAMESPACE, CHART_RELEASE)  # the chart went, and its record with it


def test_uninstalling_the_labs_chart_release_stops_the_mutation(lab: Any, lab_thread: Any, kubeconfig: Path,
                                                                core: Any) -> None:
    from kubernetes import client

    from lab.control import set_webhook
    from lab.kube.webhook import CHART_NAMESPACE, CHART_RELEASE

    lab_thread.call(lambda: set_webhook(lab, {"install": "helm"})).result(10)
    try:
        with helm.Config(kubeconfig_path=str(kubeconfig), namespace=CHART_NAMESPACE) as chart_cfg:
            chart_cfg.uninstall(CHART_RELEASE)
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="after-uninstall", labels={"azure.workload.identity/use": "true"}),
            spec=client.V1PodSpec(service_account_name="backend-sa",
                                  containers=[client.V1Container(name="app", image=IDLE_IMAGE)]))
        made = core.create_namespaced_pod("finance", pod)
        core.delete_namespaced_pod("after-uninstall", "finance", grace_period_seconds=0)
        assert "AZURE_CLIENT_ID" not in {e.name for e in made.spec.containers[0].env or []}
    finally:
        lab_thread.call(lambda: set_webhook(lab, {"install": "addon"})).result(10)


def test_webhook_chart_shape_installs_and_uninstalls(cfg: Any, core: Any, kube_api: Any, namespace: str,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    from kubernetes import client

    admission = client.AdmissionregistrationV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    release = f"wiw-{namespace[-8:]}"
    chart = write_chart(tmp_path_factory.mktemp("charts"), "workload-identity-webhook", WEBHOOK_SHAPE,
                        textwrap.dedent("""\
                            tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47
                        """))
    installed = cfg.install(str(chart), release, create_namespace=True, wait="watcher", timeout=30)
    assert installed["status"] == "deployed"
    configuration = admission.read_mutating_webhook_configuration(f"{release}-mutating-webhook-configuration")
    # Helm marks what it owns, so a later install or adoption can tell whose objects these are
    assert configuration.metadata.annotations == {"meta.helm.sh/release-name": release,
                                                  "meta.helm.sh/release-namespace": namespace}
    assert configuration.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    assert rbac.read_cluster_role_binding(f"{release}-manager-rolebinding").subjects[0].namespace == namespace
    assert [item["name"] for item in cfg.list()] == [release]

    cfg.uninstall(release, wait="watcher", timeout=30)
    assert f"{release}-mutating-webhook-configuration" not in names(
        admission.list_mutating_webhook_configuration().items)
    assert f"{release}-manager-role" not in names(rbac.list_cluster_role().items)
    assert f"{release}-manager-rolebinding" not in names(rbac.list_cluster_role_binding().items)
    assert f"{release}-server-cert" not in names(core.list_namespaced_secret(namespace).items)
    assert not release_secrets(core, namespace, release)
