"""API semantics a troubleshooter relies on, through the real kubectl: impersonation (``--as``), server-side
field validation (``--validate=strict|warn|false``), ``kubectl explain`` from the served OpenAPI, and the
admission order for ``generateName`` pods."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from lab.kube import errors, impersonation
from lab.kube.cluster import AccessRule
from lab.runtime import Lab, LabThread

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]
BACKEND_SA = "system:serviceaccount:finance:backend-sa"  # the healthy scenario's workload identity SA
DEVS_READ_CONFIGMAPS = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-read}
subjects: [{kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: Role, name: cm-reader, apiGroup: rbac.authorization.k8s.io}
"""


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"sem-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def reader(lab: Lab, lab_thread: LabThread) -> Any:
    """A lab user who may only read pods: not allowed to impersonate anyone."""
    rules = [AccessRule(verbs=["get", "list"], resources=["pods"], groups=[""])]
    name = f"dana-{uuid.uuid4().hex[:4]}"
    return lab_thread.call(lambda: lab.kube.add_user(name, rules=rules)).result(10)


# ---------------------------------------------------------------- impersonation


def test_impersonated_service_account_gets_only_its_rbac(kubectl: Kubectl) -> None:
    as_sa = f"--as={BACKEND_SA}"
    assert kubectl("auth", "can-i", "create", "pods", "-n", "finance").stdout.strip() == "yes"
    denied = kubectl("auth", "can-i", "create", "pods", "-n", "finance", as_sa, check=False)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    listed = kubectl("get", "pods", "-n", "finance", as_sa, check=False)
    assert listed.returncode == 1
    assert listed.stderr.strip() == (
        f'Error from server (Forbidden): pods is forbidden: User "{BACKEND_SA}" cannot list resource "pods" '
        'in API group "" in the namespace "finance"'
    )
    whoami = json.loads(kubectl("auth", "whoami", as_sa, "-o", "json").stdout)["status"]["userInfo"]
    assert whoami == {
        "username": BACKEND_SA,
        "groups": ["system:serviceaccounts", "system:serviceaccounts:finance", "system:authenticated"],
    }


def test_impersonated_user_with_groups_and_uid(kubectl: Kubectl, namespace: str) -> None:
    whoami = kubectl("auth", "whoami", "--as=jane", "--as-group=devs", "--as-uid=42", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"] == {
        "username": "jane", "uid": "42", "groups": ["devs", "system:authenticated"]}
    # jane is not the kubeconfig's admin: only RBAC counts, and a RoleBinding to her group does
    assert kubectl("auth", "can-i", "get", "configmaps", "-n", namespace, "--as=jane", check=False).returncode == 1
    kubectl("apply", "-n", namespace, "-f", "-", input=DEVS_READ_CONFIGMAPS)
    allowed = kubectl("auth", "can-i", "get", "configmaps", "-n", namespace, "--as=jane", "--as-group=devs")
    assert allowed.stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "get", "configmaps", "-n", namespace, "--as=jane",
                   check=False).stdout.strip() == "no"
    # groups given replace the ones a ServiceAccount would get
    sa_groups = kubectl("auth", "whoami", f"--as={BACKEND_SA}", "--as-group=devs", "-o", "json")
    assert json.loads(sa_groups.stdout)["status"]["userInfo"]["groups"] == ["devs", "system:authenticated"]


def test_impersonation_needs_the_impersonate_verb(kubectl: Kubectl, reader: Any) -> None:
    # The refusal covers discovery too (the impersonation filter runs before any handler). kubectl 1.37+ stops at
    # a failed discovery with "Error from server (Forbidden): unknown" (client-go's Raw() keeps no Status), so the
    # discovery cache is filled first, as any earlier kubectl command against the cluster would have done.
    kubectl("api-resources")
    raw = kubectl("--token", reader.token, "get", "--raw", "/api/v1/namespaces/finance/pods", f"--as={BACKEND_SA}",
                  check=False)
    assert raw.returncode == 1
    assert 'cannot impersonate resource "serviceaccounts" in API group "" in the namespace "finance"' in raw.stderr
    refused = kubectl("--token", reader.token, "get", "pods", "-n", "finance", f"--as={BACKEND_SA}",
                      check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): serviceaccounts "backend-sa" is forbidden: User "{reader.name}" '
        'cannot impersonate resource "serviceaccounts" in API group "" in the namespace "finance"'
    )
    user = kubectl("--token", reader.token, "get", "pods", "--as=jane", check=False)
    assert (f'users "jane" is forbidden: User "{reader.name}" cannot impersonate resource "users" in API '
            'group "" at the cluster scope') in user.stderr


def test_impersonation_headers_without_a_user_are_a_bad_request(lab: Lab) -> None:
    """kubectl refuses --as-group without --as itself; other clients get the filter's 400."""
    admin = next(user for user in lab.kube.users.values() if user.name not in lab.kube.policy)
    headers = CIMultiDictProxy(CIMultiDict([("Impersonate-Group", "devs"), ("Impersonate-Uid", "7")]))
    with pytest.raises(errors.ApiError) as raised:
        impersonation.impersonate(lab.kube, admin, headers)
    assert (raised.value.code, raised.value.message) == (
        400, "requested [{Group  devs    } {UID  7  authentication.k8s.io/v1  }] without impersonating a user")
    extra = CIMultiDictProxy(CIMultiDict([("Impersonate-User", "jane"), ("Impersonate-Extra-Scopes%2Fa", "x")]))
    assert impersonation.impersonate(lab.kube, admin, extra).extra == {"scopes/a": ["x"]}


# ---------------------------------------------------------------- field validation

TYPO_POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  serviceAcountName: backend-sa
  containers:
  - {{name: main, image: myacr.azurecr.io/finance/backend:1.0, imagePullPolcy: Always}}
"""


def test_unknown_fields_under_strict_warn_and_ignore(kubectl: Kubectl, namespace: str) -> None:
    strict = kubectl("apply", "-f", "-", input=TYPO_POD.format(name="strict", namespace=namespace), check=False)
    assert strict.returncode == 1
    assert strict.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" cannot be handled as '
        'a Pod: strict decoding error: unknown field "spec.containers[0].imagePullPolcy", unknown field '
        '"spec.serviceAcountName"')
    assert kubectl("get", "pod", "strict", "-n", namespace, check=False).returncode == 1
    warned = kubectl("apply", "--validate=warn", "-f", "-", input=TYPO_POD.format(name="warned", namespace=namespace))
    assert warned.stderr.splitlines() == [
        'Warning: unknown field "spec.containers[0].imagePullPolcy"', 'Warning: unknown field "spec.serviceAcountName"']
    ignored = kubectl("create", "--validate=false", "-f", "-", input=TYPO_POD.format(name="ignored", namespace=namespace))
    assert "Warning" not in ignored.stderr
    for name in ("warned", "ignored"):  # dropped as decoding into the Go struct drops them
        pod = json.loads(kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
        assert pod["spec"]["serviceAccountName"] == "default"
        assert "serviceAcountName" not in pod["spec"] and "imagePullPolcy" not in pod["spec"]["containers"][0]


def test_duplicate_fields_and_bad_directive(kubectl: Kubectl, namespace: str, tmp_path: Any) -> None:
    body = tmp_path / "cm.json"  # kubectl --raw sends the file as it is, duplicates included
    body.write_text('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup"},'
                    '"data":{"a":"1","a":"2"},"bogus":true}')
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    strict = kubectl("create", "--raw", f"{path}?fieldValidation=Strict", "-f", str(body), check=False)
    assert strict.stderr.strip() == (
        'Error from server (BadRequest): ConfigMap in version "v1" cannot be handled as a ConfigMap: strict '
        'decoding error: duplicate field "metadata.name", duplicate field "data.a", unknown field "bogus"')
    warned = kubectl("create", "--raw", path, "-f", str(body))  # no parameter: the server's default, Warn
    assert json.loads(warned.stdout)["data"] == {"a": "2"}
    assert warned.stderr.splitlines() == [
        'Warning: duplicate field "metadata.name"', 'Warning: duplicate field "data.a"', 'Warning: unknown field "bogus"']
    bad = kubectl("create", "--raw", f"{path}?fieldValidation=Lenient", "-f", str(body), check=False)
    assert 'fieldValidation: Unsupported value: "Lenient": supported values: "Ignore", "Warn", "Strict"' in bad.stderr


def test_strict_patches(kube_api: Any, kubectl: Kubectl, namespace: str) -> None:
    from kubernetes import client

    kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=a=1")
    core = client.CoreV1Api(kube_api)
    with pytest.raises(client.ApiException) as raised:
        core.patch_namespaced_config_map("settings", namespace, {"data": {"b": "2"}, "imutable": True},
                                         field_validation="Strict")
    status = json.loads(raised.value.body)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        ' "" is invalid: patch: Invalid value: "map[data:map[b:2] imutable:true]": strict decoding error: '
        'unknown field "imutable"')
    merged = kubectl("patch", "configmap", "settings", "-n", namespace, "--type=merge", "-p",
                     '{"data":{"c":"3"},"imutable":true}')
    assert merged.stderr.strip() == 'Warning: unknown field "imutable"'
    stored = json.loads(kubectl("get", "configmap", "settings", "-n", namespace, "-o", "json").stdout)
    assert stored["data"] == {"a": "1", "c": "3"} and "imutable" not in stored


# ---------------------------------------------------------------- kubectl explain (OpenAPI v3 components)


def test_explain_reads_the_served_schemas(kubectl: Kubectl) -> None:
    field = kubectl("explain", "pod.spec.serviceAccountName").stdout
    assert field.startswith("KIND:       Pod\nVERSION:    v1\n\nFIELD: serviceAccountName <string>\n")
    assert "ServiceAccountName is the name of the ServiceAccount to use to run this pod." in field
    spec = kubectl("explain", "pod.spec").stdout
    assert "FIELD: spec <PodSpec>" in spec
    assert "  containers\t<[]Container> -required-\n" in spec
    assert "  serviceAccountName\t<string>\n" in spec
    template = kubectl("explain", "deployment.spec.template").stdout
    assert template.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n")
    assert "FIELD: template <PodTemplateSpec>" in template and "  spec\t<PodSpec>\n" in template
    sa = kubectl("explain", "serviceaccount").stdout
    assert "  automountServiceAccountToken\t<boolean>\n" in sa and "  secrets\t<[]ObjectReference>\n" in sa
    assert "  data\t<map[string]string>\n" in kubectl("explain", "configmap").stdout
    missing = kubectl("explain", "pod.spec.serviceAcountName", check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, 'error: field "serviceAcountName" does not exist')


# ---------------------------------------------------------------- admission order

WI_POD = """\
apiVersion: v1
kind: Pod
metadata:
  {name_field}
  namespace: finance
  labels: {{azure.workload.identity/use: "true"}}
spec:
  serviceAccountName: backend-sa
  containers:
  - {{name: main, image: myacr.azurecr.io/finance/backend:1.0}}
  volumes: {volumes}
"""
RESERVED_PREFIX = "azure-workload-identity-reserved-"


def upstream_volume_name(pod_name: str) -> str:
    """azure-workload-identity pkg/webhook buildVolumeName: the prefix and sha256(name) cut to 63 characters."""
    return RESERVED_PREFIX + hashlib.sha256(pod_name.encode()).hexdigest()[: 63 - len(RESERVED_PREFIX)]


@pytest.fixture()
def webhook_layout(lab: Lab, lab_thread: LabThread) -> Iterator[Callable[[str], None]]:
    before = lab.kube.webhook.layout

    def use(layout: str) -> None:
        lab_thread.call(lambda: setattr(lab.kube.webhook, "layout", layout)).result(10)

    yield use
    use(before)


def test_webhook_sees_generate_name_before_the_name_is_made(kubectl: Kubectl, webhook_layout: Any) -> None:
    webhook_layout("v1.6")
    created = kubectl("create", "-o", "json", "-f", "-",
                      input=WI_POD.format(name_field="generateName: wi-gen-", volumes="[]"))
    pod = json.loads(created.stdout)
    name = pod["metadata"]["name"]
    kubectl("delete", "pod", name, "-n", "finance", "--wait=false")
    assert name.startswith("wi-gen-") and len(name) == len("wi-gen-") + 5
    volumes = [v["name"] for v in pod["spec"]["volumes"] if v["name"].startswith(RESERVED_PREFIX)]
    # the webhook names a pod that has only generateName "<generateName> (prefix)" (webhook.go Handle)
    assert volumes == [upstream_volume_name("wi-gen- (prefix)")]
    assert volumes != [upstream_volume_name(name)]


WI_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: wi-deploy, namespace: finance}
spec:
  replicas: 1
  selector: {matchLabels: {app: wi-deploy}}
  template:
    metadata:
      labels: {app: wi-deploy, azure.workload.identity/use: "true"}
    spec:
      serviceAccountName: backend-sa
      containers:
      - {name: main, image: myacr.azurecr.io/finance/backend:1.0}
"""


def test_replicaset_pods_are_named_after_admission(kubectl: Kubectl, webhook_layout: Any) -> None:
    """The ReplicaSet controller creates pods with generateName only, so the webhook hashes the prefix."""
    webhook_layout("v1.6")
    kubectl("apply", "-f", "-", input=WI_DEPLOYMENT)
    try:
        deadline = time.monotonic() + 10
        pods: list[Any] = []
        while not pods and time.monotonic() < deadline:
            listed = kubectl("get", "pods", "-n", "finance", "-l", "app=wi-deploy", "-o", "json").stdout
            pods = json.loads(listed)["items"]
            time.sleep(0.1)
        assert len(pods) == 1
        prefix = pods[0]["metadata"]["generateName"]
        assert prefix.startswith("wi-deploy-") and pods[0]["metadata"]["name"].startswith(prefix)
        volumes = [v["name"] for v in pods[0]["spec"]["volumes"] if v["name"].startswith(RESERVED_PREFIX)]
        assert volumes == [upstream_volume_name(f"{prefix} (prefix)")]
    finally:
        kubectl("delete", "deployment", "wi-deploy", "-n", "finance", "--wait=false")


WI_JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: wi-job, namespace: finance}
spec:
  template:
    metadata:
      labels: {app: wi-job, azure.workload.identity/use: "true"}
    spec:
      restartPolicy: Never
      serviceAccountName: backend-sa
      containers:
      - {name: main, image: myacr.azurecr.io/finance/backend:1.0}
"""


def test_job_pods_are_named_after_admission(kubectl: Kubectl, webhook_layout: Any) -> None:
    """The Job controller also sends generateName only (podControl.CreatePodsWithGenerateName)."""
    webhook_layout("v1.6")
    kubectl("apply", "-f", "-", input=WI_JOB)
    try:
        deadline = time.monotonic() + 10
        pods: list[Any] = []
        while not pods and time.monotonic() < deadline:
            listed = kubectl("get", "pods", "-n", "finance", "-l", "app=wi-job", "-o", "json").stdout
            pods = json.loads(listed)["items"]
            time.sleep(0.1)
        assert len(pods) == 1 and pods[0]["metadata"]["generateName"] == "wi-job-"
        volumes = [v["name"] for v in pods[0]["spec"]["volumes"] if v["name"].startswith(RESERVED_PREFIX)]
        assert volumes == [upstream_volume_name("wi-job- (prefix)")]
    finally:
        kubectl("delete", "job", "wi-job", "-n", "finance", "--wait=false")


def test_what_mutation_adds_is_validated(kubectl: Kubectl, webhook_layout: Any) -> None:
    webhook_layout("v1.5")  # fixed volume name azure-identity-token; a user volume of that name clashes
    clash = WI_POD.format(name_field="name: wi-clash", volumes="[{name: azure-identity-token, emptyDir: {}}]")
    refused = kubectl("create", "-f", "-", input=clash, check=False)
    assert refused.returncode == 1
    # [0] the user's, [1] kube-api-access-* (the ServiceAccount plugin runs first), [2] the webhook's
    assert refused.stderr.strip() == (
        'The Pod "wi-clash" is invalid: spec.volumes[2].name: Duplicate value: "azure-identity-token"')
    assert kubectl("get", "pod", "wi-clash", "-n", "finance", check=False).returncode == 1


def test_webhook_denial_has_no_reason(kubectl: Kubectl) -> None:
    pod = WI_POD.format(name_field="name: wi-denied", volumes="[]").replace(
        "  namespace: finance\n",
        '  namespace: finance\n  annotations: {azure.workload.identity/service-account-token-expiration: "100"}\n')
    refused = kubectl("create", "-f", "-", input=pod, check=False)
    # kubectl prints the reason in brackets when the Status has one; the webhook's has none
    assert refused.stderr.strip() == (
        'Error from server: error when creating "STDIN": admission webhook "mutation.azure-workload-identity.io" '
        "denied the request: token expiration 100 not valid. Expected value to be between 3600 and 86400")


def test_server_side_apply_refuses_undeclared_fields(kubectl: Kubectl, namespace: str) -> None:
    pod = """\
apiVersion: v1
kind: Pod
metadata: {name: ssa, namespace: NS}
spec:
  containers:
  - name: main
    image: myacr.azurecr.io/finance/backend:1.0
    ports: [{containerPort: 80, hostPortt: 1}]
""".replace("NS", namespace)
    refused = kubectl("apply", "--server-side", "-f", "-", input=pod, check=False)
    # associative lists are addressed by their keys (protocol has a schema default), as structured-merge-diff does
    assert refused.stderr.strip() == (
        f"Error from server: failed to create typed patch object ({namespace}/ssa; /v1, Kind=Pod): "
        '.spec.containers[name="main"].ports[containerPort=80,protocol="TCP"].hostPortt: field not declared in schema')
    applied = kubectl("apply", "--server-side", "-f", "-", input=pod.replace("hostPortt", "hostPort"))
    assert applied.stdout.strip() == "pod/ssa serverside-applied"


# ---------------------------------------------------------------- custom resources: the CRD's structural schema

WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.semantics.example.com}
spec:
  group: semantics.example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What the widget should be.
            properties:
              size: {type: integer, description: How big the widget is.}
              parts:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items: {type: object, properties: {name: {type: string}}}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""
WIDGET = """\
apiVersion: semantics.example.com/v1
kind: Widget
metadata: {name: NAME, namespace: NS}
spec:
  size: 3
  sise: 4
  parts: [{name: a, colour: red}]
  free: {anything: [1, 2]}
"""


@pytest.fixture(scope="module")
def widgets(kubectl: Kubectl) -> Iterator[None]:
    kubectl("apply", "-f", "-", input=WIDGET_CRD)
    yield
    kubectl("delete", "crd", "widgets.semantics.example.com", "--wait=false", check=False)


def test_custom_resources_follow_their_schema(kubectl: Kubectl, namespace: str, widgets: None) -> None:
    widget = WIDGET.replace("NS", namespace)
    strict = kubectl("apply", "-f", "-", input=widget.replace("NAME", "strict"), check=False)
    assert strict.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": Widget in version "v1" cannot be handled '
        'as a Widget: strict decoding error: unknown field "spec.parts[0].colour", unknown field "spec.sise"')
    kubectl("apply", "--validate=warn", "-f", "-", input=widget.replace("NAME", "pruned"))
    stored = json.loads(kubectl("get", "widget", "pruned", "-n", namespace, "-o", "json").stdout)["spec"]
    assert stored == {"size": 3, "parts": [{"name": "a"}], "free": {"anything": [1, 2]}}
    applied = kubectl("apply", "--server-side", "-f", "-", input=widget.replace("NAME", "ssa"), check=False)
    assert applied.stderr.strip() == "\n".join([
        f"Error from server: failed to create typed patch object ({namespace}/ssa; semantics.example.com/v1, "
        "Kind=Widget): errors:",
        '  .spec.parts[name="a"].colour: field not declared in schema',
        "  .spec.sise: field not declared in schema"])
    explained = kubectl("explain", "widget.spec").stdout
    assert "DESCRIPTION:\n    What the widget should be." in explained
    assert "  size\t<integer>\n    How big the widget is.\n" in explained
