"""Server-side apply through the real kubectl: managedFields recorded on every write, fields an applier drops
are removed, conflicts with another manager answer 409 with the API server's message, ``--force-conflicts``
takes the field over, and ``kubectl scale`` makes the scale subresource's manager own spec.replicas."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

Kubectl = Callable[..., Any]
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: mcr.microsoft.com/azure-cli:2.60.0
        ports: [{{containerPort: 8080}}]
{env}"""
ENV = "        env: [{name: MODE, value: blue}]\n"


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"ssa-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def managers(kubectl: Kubectl, namespace: str, *what: str) -> dict[tuple[str, str], Any]:
    shown = json.loads(kubectl("get", *what, "-n", namespace, "-o", "json", "--show-managed-fields").stdout)
    return {(entry["manager"], entry["operation"]): entry for entry in shown["metadata"]["managedFields"]}


def test_server_side_apply_records_managed_fields_and_removes_what_the_applier_dropped(
        kubectl: Kubectl, namespace: str) -> None:
    applied = kubectl("apply", "--server-side", "-n", namespace, "-f", "-",
                      input=DEPLOYMENT.format(replicas=0, env=ENV))
    assert "deployment.apps/web serverside-applied" in applied.stdout
    entry = managers(kubectl, namespace, "deployment", "web")[("kubectl", "Apply")]
    assert entry["apiVersion"] == "apps/v1" and entry["fieldsType"] == "FieldsV1" and entry["time"]
    container = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert container["f:env"] == {'k:{"name":"MODE"}': {".": {}, "f:name": {}, "f:value": {}}}
    assert 'k:{"containerPort":8080,"protocol":"TCP"}' in container["f:ports"]
    assert "f:strategy" not in entry["fieldsV1"]["f:spec"]  # defaulted by the server: nobody's
    assert "managedFields" not in kubectl("get", "deployment", "web", "-n", namespace, "-o", "yaml").stdout

    kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=DEPLOYMENT.format(replicas=0, env=""))
    live = json.loads(kubectl("get", "deployment", "web", "-n", namespace, "-o", "json").stdout)
    [app] = live["spec"]["template"]["spec"]["containers"]
    assert "env" not in app and app["ports"][0]["containerPort"] == 8080


def test_a_client_side_apply_owns_its_fields_and_a_server_side_apply_conflicts(
        kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: red}\n")
    assert ("kubectl-client-side-apply", "Update") in managers(kubectl, namespace, "configmap", "settings")
    change = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n"
    refused = kubectl("apply", "--server-side", "--field-manager=deployer", "-n", namespace, "-f", "-",
                      input=change, check=False)
    assert refused.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.color'
            in refused.stderr), refused.stderr
    kubectl("apply", "--server-side", "--field-manager=deployer", "--force-conflicts", "-n", namespace, "-f", "-",
            input=change)
    owners = managers(kubectl, namespace, "configmap", "settings")
    assert owners[("deployer", "Apply")]["fieldsV1"] == {"f:data": {"f:color": {}}}
    assert "f:data" not in owners.get(("kubectl-client-side-apply", "Update"), {}).get("fieldsV1", {})
    data = json.loads(kubectl("get", "configmap", "settings", "-n", namespace, "-o", "json").stdout)["data"]
    assert data == {"color": "blue"}


def test_kubectl_scale_owns_replicas_so_applying_another_count_conflicts(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "--server-side", "--field-manager=ci", "-n", namespace, "-f", "-",
            input=DEPLOYMENT.format(replicas=0, env="").replace("name: web", "name: scaled", 1))
    kubectl("scale", "deployment/scaled", "--replicas=0", "-n", namespace)  # same count: nothing taken
    assert len(managers(kubectl, namespace, "deployment", "scaled")) == 1
    kubectl("scale", "deployment/scaled", "--replicas=2", "-n", namespace)
    owners = managers(kubectl, namespace, "deployment", "scaled")
    [scaler] = [entry for key, entry in owners.items() if key != ("ci", "Apply")]
    assert (scaler["subresource"], scaler["apiVersion"], scaler["fieldsV1"]) == (
        "scale", "apps/v1", {"f:spec": {"f:replicas": {}}})
    assert "f:replicas" not in owners[("ci", "Apply")]["fieldsV1"]["f:spec"]
    refused = kubectl("apply", "--server-side", "--field-manager=ci", "-n", namespace, "-f", "-",
                      input=DEPLOYMENT.format(replicas=3, env="").replace("name: web", "name: scaled", 1),
                      check=False)
    expected = (f'Apply failed with 1 conflict: conflict with "{scaler["manager"]}" with subresource "scale" '
                "using apps/v1: .spec.replicas")
    assert expected in refused.stderr, refused.stderr


def test_patch_options_are_validated_as_the_api_server_does(kube_api: Any, kubectl: Kubectl, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "options"}, "data": {"a": "1"}}
    with pytest.raises(ApiException) as unnamed:
        core.patch_namespaced_config_map("options", namespace, body, _content_type="application/apply-patch+yaml")
    assert (unnamed.value.status, json.loads(unnamed.value.body)["message"]) == (
        422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
    core.patch_namespaced_config_map("options", namespace, body, field_manager="py",
                                     _content_type="application/apply-patch+yaml")
    with pytest.raises(ApiException) as forced:
        core.patch_namespaced_config_map("options", namespace, {"data": {"a": "2"}}, force=True)
    assert json.loads(forced.value.body)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch')
    updated = core.patch_namespaced_config_map("options", namespace, {"data": {"a": "2"}})
    owners = {(entry.manager, entry.operation): entry.fields_v1 for entry in updated.metadata.managed_fields}
    # the update took the applier's only field, and a manager that owns nothing is no longer listed
    assert owners == {("OpenAPI-Generator", "Update"): {"f:data": {"f:a": {}}}}
    core.patch_namespaced_config_map("options", namespace, {**body, "data": {"c": "1"}}, field_manager="py",
                                     _content_type="application/apply-patch+yaml")
    read = core.read_namespaced_config_map("options", namespace)
    read.data["b"] = "1"  # a replace sends the managedFields back as the client writes times (+00:00)
    core.replace_namespaced_config_map("options", namespace, read)
    owners = managers(kubectl, namespace, "configmap", "options")
    assert owners[("OpenAPI-Generator", "Update")]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    assert owners[("py", "Apply")]["fieldsV1"] == {"f:data": {"f:c": {}}}
    assert all(entry["time"].endswith("Z") for entry in owners.values()), owners


def test_kubectls_migration_from_client_side_apply_removes_what_only_the_client_side_apply_set(
        kubectl: Kubectl, namespace: str) -> None:
    """After an apply --server-side that did not conflict, kubectl (manager "kubectl") moves the
    client-side-apply entry's fields into its own with a JSON patch of managedFields (csaupgrade) and applies
    again, so a field only the client-side configuration had is removed."""
    kubectl("apply", "-n", namespace, "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: upgraded}\ndata: {color: red, size: s}\n")
    kubectl("apply", "--server-side", "-n", namespace, "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: upgraded}\ndata: {color: red}\n")
    owners = managers(kubectl, namespace, "configmap", "upgraded")
    assert ("kubectl-client-side-apply", "Update") not in owners
    assert owners[("kubectl", "Apply")]["fieldsV1"] == {"f:data": {"f:color": {}}}
    live = json.loads(kubectl("get", "configmap", "upgraded", "-n", namespace, "-o", "json").stdout)
    assert live["data"] == {"color": "red"}


def test_kubectls_server_side_apply_takes_over_its_client_side_fields_unless_changed_since(
        kubectl: Kubectl, namespace: str) -> None:
    """Manager "kubectl" may take fields its last client-side apply set and that still hold those values
    (the API server's lastAppliedManager); a field someone changed since is a conflict with them."""
    kubectl("apply", "-n", namespace, "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: takeover}\ndata: {color: red, size: s}\n")
    kubectl("patch", "configmap", "takeover", "-n", namespace, "-p", '{"data": {"size": "m"}}')
    refused = kubectl("apply", "--server-side", "-n", namespace, "-f", "-", check=False,
                      input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: takeover}\ndata: {color: blue, size: l}\n")
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.size' in refused.stderr, \
        refused.stderr
    kubectl("apply", "--server-side", "-n", namespace, "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: takeover}\ndata: {color: blue, size: m}\n")
    live = json.loads(kubectl("get", "configmap", "takeover", "-n", namespace, "-o", "json").stdout)
    assert live["data"] == {"color": "blue", "size": "m"}
    assert json.loads(live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])[
        "data"] == {"color": "blue", "size": "m"}


def test_the_first_apply_to_an_untracked_object_conflicts_with_what_it_had(kubectl: Kubectl) -> None:
    """The scenario's ServiceAccount was stored without managedFields (as an object from before field
    tracking): the first apply gives its fields to "before-first-apply" (skipNonAppliedManager), so changing
    one conflicts. --dry-run=server: the shared scenario object stays as it is."""
    sa = json.loads(kubectl("get", "serviceaccount", "backend-sa", "-n", "finance", "-o", "json",
                            "--show-managed-fields").stdout)
    assert "managedFields" not in sa["metadata"]
    change = ("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: backend-sa\n  annotations:\n"
              "    azure.workload.identity/client-id: 00000000-0000-0000-0000-000000000000\n")
    refused = kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=ci", "-n", "finance", "-f", "-",
                      input=change, check=False)
    assert ('Apply failed with 1 conflict: conflict with "before-first-apply" using v1: '
            ".metadata.annotations.azure.workload.identity/client-id") in refused.stderr, refused.stderr
