"""Hostile inputs against every lab service: paths that try to leave a pod's volumes, bodies that are too
deep or too large, slow clients. Each case asserts the exact answer (status and the service's own error
shape), that nothing was written outside the pod's directory, and that the lab logged no traceback.

The API server cases go through the session lab; the kubelet's own defences are driven on a stand-alone
kubelet (test_kubelet.MiniLab) whose store takes objects the API server would refuse, as objects made by
scenarios or older servers can be.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from forged_tokens import lab_token
from test_kubelet import MiniLab, python, waiting_reason

from lab import bodies
from lab.azure.world import KEYVAULT_AUDIENCE, STORAGE_AUDIENCE, Vault
from lab.kube import volumes
from lab.runtime import Lab, LabThread

IDLE_IMAGE = "myacr.azurecr.io/finance/backend:1.0"  # a scenario image the kubelet keeps Running
DEPTH = bodies.MAX_NESTING_DEPTH
UP = "../" * 12  # far more levels than any lab directory is deep: from a volume to "/"
CONFIG_KEY_RULE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


# ---------------------------------------------------------------- shared helpers


@pytest.fixture(autouse=True)
def no_traceback_in_the_lab_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, caplog.text
    assert "Traceback" not in caplog.text


@pytest.fixture()
def outside() -> Iterator[Path]:
    """A path outside every lab directory that hostile specs aim at; it must never come to exist."""
    target = Path("/tmp") / f"lab-hostile-{uuid.uuid4().hex[:10]}"
    yield target
    assert not os.path.lexists(target), f"something was written outside the pod: {target}"
    shutil.rmtree(target, ignore_errors=True)


def escape_to(target: Path) -> str:
    """A relative path that climbs from any lab volume to ``target``."""
    return UP + str(target).lstrip("/")


def nested_object(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


class Kube:
    """requests aimed at the session lab's API server as its admin (the kubeconfig's token)."""

    def __init__(self, lab: Lab) -> None:
        kubeconfig = yaml.safe_load((lab.state_dir / "kubeconfig").read_text())
        self.base = lab.endpoints["kube"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {kubeconfig['users'][0]['user']['token']}"
        self.ca = str(lab.state_dir / "ca.pem")

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                raw: bytes | None = None) -> requests.Response:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if data is not None else {}
        return self.session.request(method, self.base + path, data=data, headers=headers, verify=self.ca,
                                    timeout=60)


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Kube:
    return Kube(lab)


def status_of(response: requests.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["kind"], body["apiVersion"], body["status"], body["reason"], body["code"]) == (
        "Status", "v1", "Failure", reason, code)
    return body


def invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> tuple[str, list[dict[str, str]]]:
    """The API server's 422 message and details.causes for (field, message-after-the-field) pairs."""
    parts = [f"{field}: {message}" for field, message in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    reasons = {"Invalid": "FieldValueInvalid", "Required": "FieldValueRequired", "Not found": "FieldValueNotFound"}
    details = [{"reason": next(r for prefix, r in reasons.items() if message.startswith(prefix)),
                "message": message, "field": field} for field, message in causes]
    return f'{kind} "{name}" is invalid: {summary}', details


# ---------------------------------------------------------------- the API server refuses paths that leave a volume


def pod_with(volumes_: list[dict], mounts: list[dict] | None = None, env: list[dict] | None = None,
             name: str = "hostile") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": IDLE_IMAGE}
    if mounts:
        container["volumeMounts"] = mounts
    if env:
        container["env"] = env
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], "volumes": volumes_}}


POD_CASES: dict[str, Callable[[str], tuple[dict, list[tuple[str, str]]]]] = {
    "configMap item path with '..'": lambda escape: (
        pod_with([{"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": escape}]}}]),
        [("spec.volumes[0].configMap.items[0].path", f'Invalid value: "{escape}": must not contain \'..\'')]),
    "secret item path that is absolute": lambda escape: (
        pod_with([{"name": "sec", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/" + escape.replace("../", "")}]}}]),
        [("spec.volumes[0].secret.items[0].path",
          f'Invalid value: "/{escape.replace("../", "")}": must be a relative path')]),
    "downwardAPI item path starting with '..'": lambda _: (
        pod_with([{"name": "info", "downwardAPI": {"items": [
            {"path": "..data", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}]}}]),
        [("spec.volumes[0].downwardAPI.path", 'Invalid value: "..data": must not start with \'..\'')]),
    "projected configMap item path with '..'": lambda escape: (
        pod_with([{"name": "proj", "projected": {"sources": [
            {"configMap": {"name": "cm", "items": [{"key": "k", "path": escape}]}}]}}]),
        [("spec.volumes[0].projected.sources[0].configMap.items[0].path",
          f'Invalid value: "{escape}": must not contain \'..\'')]),
    "projected token path with '..'": lambda escape: (
        pod_with([{"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": escape}}]}}]),
        [("spec.volumes[0].projected.path", f'Invalid value: "{escape}": must not contain \'..\'')]),
    "subPath with '..'": lambda escape: (
        pod_with([{"name": "scratch", "emptyDir": {}}],
                 [{"name": "scratch", "mountPath": "/scratch", "subPath": escape}]),
        [("spec.containers[0].volumeMounts.subPath", f'Invalid value: "{escape}": must not contain \'..\'')]),
    "absolute subPath": lambda escape: (
        pod_with([{"name": "scratch", "emptyDir": {}}],
                 [{"name": "scratch", "mountPath": "/scratch", "subPath": "/" + escape.replace("../", "")}]),
        [("spec.containers[0].volumeMounts.subPath",
          f'Invalid value: "/{escape.replace("../", "")}": must be a relative path')]),
    "subPathExpr with '..'": lambda escape: (
        pod_with([{"name": "scratch", "emptyDir": {}}],
                 [{"name": "scratch", "mountPath": "/scratch", "subPathExpr": "$(POD)/" + escape}],
                 env=[{"name": "POD", "value": "p"}]),
        [("spec.containers[0].volumeMounts.subPathExpr",
          f'Invalid value: "$(POD)/{escape}": must not contain \'..\'')]),
}


@pytest.mark.parametrize("case", list(POD_CASES))
def test_pod_paths_leaving_their_volume_are_invalid(kube: Kube, outside: Path, case: str) -> None:
    pod, causes = POD_CASES[case](escape_to(outside))
    response = kube.request("POST", "/api/v1/namespaces/default/pods", pod)
    body = status_of(response, 422, "Invalid")
    message, details = invalid("Pod", "hostile", causes)
    assert body["message"] == message
    assert body["details"] == {"name": "hostile", "kind": "Pod", "causes": details}
    assert kube.request("GET", "/api/v1/namespaces/default/pods/hostile").status_code == 404


def test_an_invalid_volume_is_also_not_found_by_its_mount(kube: Kube, outside: Path) -> None:
    """Upstream ValidateVolumes leaves a volume with errors out of the set mounts may name."""
    escape = escape_to(outside)
    pod = pod_with([{"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": escape}]}}],
                   [{"name": "cfg", "mountPath": "/cfg"}])
    body = status_of(kube.request("POST", "/api/v1/namespaces/default/pods", pod), 422, "Invalid")
    assert body["message"] == invalid("Pod", "hostile", [
        ("spec.volumes[0].configMap.items[0].path", f'Invalid value: "{escape}": must not contain \'..\''),
        ("spec.containers[0].volumeMounts[0].name", 'Not found: "cfg"'),
    ])[0]


def test_volume_names_are_dns_labels(kube: Kube) -> None:
    pod = pod_with([{"name": "../up", "emptyDir": {}}])
    body = status_of(kube.request("POST", "/api/v1/namespaces/default/pods", pod), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.volumes[0].name"
    assert body["details"]["causes"][0]["message"].startswith(
        'Invalid value: "../up": a lowercase RFC 1123 label must consist of')


def test_pod_templates_are_checked_too(kube: Kube, outside: Path) -> None:
    escape = escape_to(outside)
    template = pod_with([{"name": "scratch", "emptyDir": {}}],
                        [{"name": "scratch", "mountPath": "/scratch", "subPath": escape}])
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hostile"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hostile"}},
                           "template": {"metadata": {"labels": {"app": "hostile"}}, "spec": template["spec"]}}}
    body = status_of(kube.request("POST", "/apis/apps/v1/namespaces/default/deployments", deployment), 422,
                     "Invalid")
    assert body["message"] == (
        f'Deployment.apps "hostile" is invalid: spec.template.spec.containers[0].volumeMounts.subPath: '
        f'Invalid value: "{escape}": must not contain \'..\'')


CONFIG_CASES = {
    "key '..'": ("configmaps", {"data": {"..": "x"}}, [("data[..]", "Invalid value: \"..\": must not be '..'")]),
    "key '.'": ("configmaps", {"data": {".": "x"}}, [("data[.]", "Invalid value: \".\": must not be '.'")]),
    "key starting with '..'": ("configmaps", {"data": {"..data": "x"}},
                               [("data[..data]", "Invalid value: \"..data\": must not start with '..'")]),
    "binaryData key with '/'": ("configmaps", {"binaryData": {"a/b": "eA=="}},
                                [("binaryData[a/b]", f'Invalid value: "a/b": {CONFIG_KEY_RULE}')]),
    "secret stringData key '../x'": ("secrets", {"stringData": {"../x": "x"}}, [
        ("data[../x]", f'Invalid value: "../x": {CONFIG_KEY_RULE}'),
        ("data[../x]", "Invalid value: \"../x\": must not start with '..'"),
    ]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_map_and_secret_keys_that_are_not_file_names_are_invalid(kube: Kube, case: str) -> None:
    plural, fields, causes = CONFIG_CASES[case]
    kind = "ConfigMap" if plural == "configmaps" else "Secret"
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "hostile"}, **fields}
    body = status_of(kube.request("POST", f"/api/v1/namespaces/default/{plural}", obj), 422, "Invalid")
    message, details = invalid(kind, "hostile", causes)
    assert body["message"] == message and body["details"]["causes"] == details
    assert kube.request("GET", f"/api/v1/namespaces/default/{plural}/hostile").status_code == 404


def test_a_bad_key_is_refused_on_update_too(kube: Kube) -> None:
    name = f"cm-{uuid.uuid4().hex[:6]}"
    created = kube.request("POST", "/api/v1/namespaces/default/configmaps",
                           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
    assert created.status_code == 201, created.text
    try:
        patched = kube.request("PATCH", f"/api/v1/namespaces/default/configmaps/{name}", {"data": {"..": "x"}},
                               content_type="application/merge-patch+json")
        body = status_of(patched, 422, "Invalid")
        assert body["message"] == f'ConfigMap "{name}" is invalid: data[..]: Invalid value: "..": must not be \'..\''
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/default/configmaps/{name}")


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_apply_shows_the_api_servers_message(kubectl: Callable[..., Any], outside: Path) -> None:
    escape = escape_to(outside)
    manifest = yaml.safe_dump(pod_with(
        [{"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": escape}]}}],
        name="kubectl-hostile") | {"metadata": {"name": "kubectl-hostile", "namespace": "default"}})
    result = kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode == 1
    assert (f'The Pod "kubectl-hostile" is invalid: spec.volumes[0].configMap.items[0].path: Invalid value: '
            f'"{escape}": must not contain \'..\'') in result.stderr, result.stderr


# ---------------------------------------------------------------- the API server bounds its bodies


def test_json_nested_deeper_than_the_limit_is_a_bad_request(kube: Kube) -> None:
    deep = "[" * (DEPTH + 1) + "]" * (DEPTH + 1)
    body = status_of(kube.request("POST", "/api/v1/namespaces/default/configmaps", raw=deep.encode()), 400,
                     "BadRequest")
    assert body["message"] == "couldn't get version/kind; json parse error: invalid character '[' exceeded max depth"


def test_a_deep_patch_is_a_bad_request(kube: Kube) -> None:
    name = f"cm-{uuid.uuid4().hex[:6]}"
    created = kube.request("POST", "/api/v1/namespaces/default/configmaps",
                           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
    assert created.status_code == 201, created.text
    try:
        for media in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            patched = kube.request("PATCH", f"/api/v1/namespaces/default/configmaps/{name}",
                                   {"metadata": nested_object(DEPTH)}, content_type=media)
            body = status_of(patched, 400, "BadRequest")
            assert body["message"] == "error decoding patch: invalid character '{' exceeded max depth"
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/default/configmaps/{name}")


def test_deep_yaml_is_refused_at_the_line_go_yaml_names(kube: Kube) -> None:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: deep", "extra:"]
    lines += ["  " * level + "a:" for level in range(1, DEPTH + 1)] + ["  " * (DEPTH + 1) + "leaf"]
    response = kube.request("POST", "/api/v1/namespaces/default/configmaps", raw="\n".join(lines).encode(),
                            content_type="application/yaml")
    body = status_of(response, 400, "BadRequest")
    # the top-level mapping is level 1 and extra's value level 2: the (DEPTH)th "a:" opens level DEPTH + 1
    assert body["message"] == f"error converting YAML to JSON: yaml: line {5 + DEPTH}: exceeded max depth of {DEPTH}"
    flow = kube.request("POST", "/api/v1/namespaces/default/configmaps",
                        raw=("[" * (DEPTH + 1) + "]" * (DEPTH + 1)).encode(), content_type="application/yaml")
    assert status_of(flow, 400, "BadRequest")["message"] == (
        f"error converting YAML to JSON: yaml: exceeded max depth of {DEPTH}")


def test_yaml_alias_bombs_are_refused(kube: Kube) -> None:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", 'l0: &l0 ["lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    response = kube.request("POST", "/api/v1/namespaces/default/configmaps", raw="\n".join(lines).encode(),
                            content_type="application/yaml")
    body = status_of(response, 400, "BadRequest")
    assert body["message"] == "error converting YAML to JSON: yaml: document contains excessive aliasing"


def test_nesting_up_to_the_limit_is_served_end_to_end(kube: Kube) -> None:
    name = f"deep-{uuid.uuid4().hex[:6]}"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                 "extra": nested_object(DEPTH - 1)}
    created = kube.request("POST", "/api/v1/namespaces", namespace)
    assert created.status_code == 201, created.text
    try:
        patched = kube.request("PATCH", f"/api/v1/namespaces/{name}", {"extra": nested_object(DEPTH - 1)},
                               content_type="application/strategic-merge-patch+json")
        assert patched.status_code == 200, patched.text
        assert kube.request("GET", "/api/v1/namespaces").status_code == 200
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/{name}")


def test_a_body_over_three_mebibytes_is_request_entity_too_large(kube: Kube) -> None:
    raw = b'{"data": {"k": "' + b"x" * (3 * 1024 * 1024) + b'"}}'
    body = status_of(kube.request("POST", "/api/v1/namespaces/default/configmaps", raw=raw), 413,
                     "RequestEntityTooLarge")
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Request entity too large: limit is 3145728", "reason": "RequestEntityTooLarge",
                    "code": 413}


# ---------------------------------------------------------------- the Azure services and the control API


def admin_token(lab: Lab, audience: str) -> str:
    return lab_token(lab, lab.azure.principal_by_client_id(lab.credentials["admin"]["client_id"]), audience)


def test_arm_refuses_deep_and_oversized_bodies_in_its_own_shape(lab: Lab) -> None:
    url = f"{lab.endpoints['arm']}/subscriptions/{lab.subscription_id}/resourcegroups/hostile-rg"
    headers = {"Authorization": f"Bearer {admin_token(lab, 'https://management.azure.com/')}",
               "Content-Type": "application/json"}
    params = {"api-version": "2021-04-01"}
    ca = str(lab.state_dir / "ca.pem")
    deep = '{"location": "eastus", "tags": ' + '{"a": ' * DEPTH + '"x"' + "}" * DEPTH + "}"
    response = requests.put(url, data=deep, headers=headers, params=params, verify=ca, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidRequestContent"
    too_deep_at = [index for index, char in enumerate(deep) if char == "{"][DEPTH]  # the (DEPTH + 1)th level
    assert error["message"] == (
        "The request content was invalid and could not be deserialized: 'The reader's MaxDepth of "
        f"{DEPTH} has been exceeded. Path 'tags{'.a' * (DEPTH - 1)}', line 1, position {too_deep_at + 1}.'.")
    huge = b'{"location": "eastus", "tags": {"a": "' + b"x" * (4 * 1024 * 1024) + b'"}}'
    response = requests.put(url, data=huge, headers=headers, params=params, verify=ca, timeout=60)
    assert response.status_code == 413, response.text
    assert response.json() == {"error": {"code": "RequestContentTooLarge",
                                         "message": "The request content size exceeds the maximum size of 4 MB."}}
    assert response.headers["x-ms-request-id"]
    assert requests.get(url, headers=headers, params=params, verify=ca, timeout=30).status_code == 404


def test_control_api_refuses_deep_and_oversized_bodies(lab: Lab) -> None:
    url = f"{lab.endpoints['control']}/ctl/kubelet"
    headers = {"Authorization": f"Bearer {lab.control_token}", "Content-Type": "application/json"}
    ca = str(lab.state_dir / "ca.pem")
    deep = "[" * (DEPTH + 1) + "]" * (DEPTH + 1)
    response = requests.post(url, data=deep, headers=headers, verify=ca, timeout=30)
    assert (response.status_code, response.json()) == (400, {"error": f"body: nested deeper than {DEPTH} levels"})
    huge = b'{"pod_start_latency_seconds": 0, "pad": "' + b"x" * (64 * 1024) + b'"}'
    response = requests.post(url, data=huge, headers=headers, verify=ca, timeout=30)
    assert (response.status_code, response.json()) == (413, {"error": "body: larger than 65536 bytes"})


@pytest.fixture(scope="module")
def officer_vault(lab: Lab, lab_thread: LabThread) -> tuple[str, str]:
    """A vault and a token of an app holding Key Vault Secrets Officer on it."""

    def make() -> tuple[str, Any]:
        name = f"kv{uuid.uuid4().hex[:10]}"
        rg = f"hostile-{uuid.uuid4().hex[:6]}"
        lab.azure.add_resource_group(rg)
        vault = Vault(name=name, subscription_id=lab.subscription_id, resource_group=rg, location="eastus",
                      tenant_id=lab.tenant_id, enable_rbac_authorization=True)
        lab.azure.vaults[name] = vault
        app = lab.azure.add_app(f"hostile-kv-{uuid.uuid4().hex[:6]}")
        lab.azure.assign_role(app, "Key Vault Secrets Officer", vault.resource_id)
        return name, app

    name, app = lab_thread.call(make).result(30)
    return name, lab_token(lab, app, KEYVAULT_AUDIENCE)


def test_key_vault_refuses_deep_and_oversized_bodies_in_its_own_shape(lab: Lab, officer_vault: tuple[str, str]) -> None:
    name, token = officer_vault
    url = lab.vault_url(name) + "secrets/hostile"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    params = {"api-version": "7.4"}
    ca = str(lab.state_dir / "ca.pem")
    fine = requests.put(url, json={"value": "v"}, headers=headers, params=params, verify=ca, timeout=30)
    assert fine.status_code == 200, fine.text
    deep = '{"value": "v", "tags": ' + "[" * DEPTH + "]" * DEPTH + "}"
    response = requests.put(url, data=deep, headers=headers, params=params, verify=ca, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": {"code": "BadParameter", "message": "The request body is not valid JSON."}}
    huge = b'{"value": "' + b"x" * (1024 * 1024) + b'"}'
    response = requests.put(url, data=huge, headers=headers, params=params, verify=ca, timeout=30)
    assert response.status_code == 413, response.text
    assert response.json() == {"error": {"code": "RequestEntityTooLarge",
                                         "message": "The request body is larger than the maximum of 1048576 bytes."}}
    assert response.headers["x-ms-keyvault-service-version"]


def test_storage_takes_no_body_and_answers_in_xml(lab: Lab) -> None:
    account = next(iter(lab.azure.storage_accounts.values()))
    url = f"{lab.blob_url(account.name)}container/blob"
    headers = {"Authorization": f"Bearer {admin_token(lab, STORAGE_AUDIENCE)}", "x-ms-version": "2021-08-06"}
    # POST is no verb of the blob service's (Put Blob and Delete Blob are): refused before the body is read
    response = requests.post(url, data=b"x" * (8 * 1024 * 1024), headers=headers,
                            verify=str(lab.state_dir / "ca.pem"), timeout=60)
    assert response.status_code == 405, response.text
    assert response.headers["x-ms-error-code"] == "UnsupportedHttpVerb"
    assert response.text.startswith('<?xml version="1.0" encoding="utf-8"?><Error><Code>UnsupportedHttpVerb</Code>')


def entra_error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"].split(" Trace ID:")[0]


def test_entra_multipart_with_a_line_over_the_limit_is_invalid_request(lab: Lab) -> None:
    boundary = "hostile"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="grant_type"; x="{"a" * 100_000}"\r\n\r\n'
            f"client_credentials\r\n--{boundary}--\r\n")
    response = requests.post(f"{lab.endpoints['entra']}/{lab.tenant_id}/oauth2/v2.0/token", data=body.encode(),
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                             verify=str(lab.state_dir / "ca.pem"), timeout=30)
    assert entra_error(response) == (
        400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")


def test_entra_oversized_form_is_invalid_request(lab: Lab) -> None:
    form = b"grant_type=client_credentials&client_id=x&pad=" + b"x" * (1024 * 1024)
    response = requests.post(f"{lab.endpoints['entra']}/{lab.tenant_id}/oauth2/v2.0/token", data=form,
                             headers={"Content-Type": "application/x-www-form-urlencoded"},
                             verify=str(lab.state_dir / "ca.pem"), timeout=30)
    assert entra_error(response) == (
        400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")


def deep_jwt(part: str) -> str:
    """A compact JWS whose header or claims are JSON nested far deeper than any parser here allows."""
    deep = base64.urlsafe_b64encode(("[" * 2000 + "]" * 2000).encode()).rstrip(b"=").decode()
    plain = base64.urlsafe_b64encode(b'{"alg": "RS256", "kid": "k"}').rstrip(b"=").decode()
    return f"{deep}.{plain}.c2ln" if part == "header" else f"{plain}.{deep}.c2ln"


@pytest.mark.parametrize("part", ["header", "claims"])
def test_deeply_nested_tokens_are_refused_as_malformed(lab: Lab, part: str) -> None:
    token = deep_jwt(part)
    ca = str(lab.state_dir / "ca.pem")
    bearer = {"Authorization": f"Bearer {token}"}
    kube = requests.get(lab.endpoints["kube"] + "/api/v1/namespaces", headers=bearer, verify=ca, timeout=30)
    assert status_of(kube, 401, "Unauthorized")["message"] == "Unauthorized"
    arm = requests.get(f"{lab.endpoints['arm']}/subscriptions/{lab.subscription_id}/resourcegroups",
                       params={"api-version": "2021-04-01"}, headers=bearer, verify=ca, timeout=30)
    assert (arm.status_code, arm.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")
    account = next(iter(lab.azure.storage_accounts.values()))
    blob = requests.get(f"{lab.blob_url(account.name)}c/b", headers={**bearer, "x-ms-version": "2021-08-06"},
                        verify=ca, timeout=30)
    assert (blob.status_code, blob.headers["x-ms-error-code"]) == (401, "InvalidAuthenticationInfo")
    form = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4()),
            "scope": "https://vault.azure.net/.default", "client_assertion": token,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    entra = requests.post(f"{lab.endpoints['entra']}/{lab.tenant_id}/oauth2/v2.0/token", data=form, verify=ca,
                          timeout=30)
    assert entra_error(entra) == (400, "invalid_request", "AADSTS50027: JWT token is invalid or malformed.")


def test_deeply_nested_paging_tokens_are_invalid_tokens(kube: Kube, lab: Lab) -> None:
    token = base64.urlsafe_b64encode(("[" * 3000 + "]" * 3000).encode()).decode()
    listed = kube.request("GET", f"/api/v1/namespaces/default/configmaps?limit=1&continue={token}")
    assert status_of(listed, 400, "BadRequest")["message"] == f"continue key is not valid: {token}"
    arm = requests.get(f"{lab.endpoints['arm']}/subscriptions/{lab.subscription_id}/resourcegroups",
                       params={"api-version": "2021-04-01", "$skiptoken": token.rstrip("=")},
                       headers={"Authorization": f"Bearer {admin_token(lab, 'https://management.azure.com/')}"},
                       verify=str(lab.state_dir / "ca.pem"), timeout=30)
    assert (arm.status_code, arm.json()) == (400, {"error": {"code": "InvalidSkipToken",
                                                             "message": "The skip token is invalid."}})


# ---------------------------------------------------------------- slow clients


@pytest.fixture(scope="module")
def impatient_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = LabThread(tmp_path_factory.mktemp("impatient-lab"), scenario="healthy", header_timeout_seconds=1.0)
    running.start()
    yield running.lab
    running.stop()


@pytest.mark.parametrize("service", ["kube", "arm", "entra", "control"])
def test_a_client_sending_headers_too_slowly_is_disconnected(impatient_lab: Lab, service: str) -> None:
    lab = impatient_lab
    port = int(lab.endpoints[service].rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(lab.state_dir / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        started = time.monotonic()
        received = b""
        try:
            for byte in b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass  # the server closed the connection while we were still sending: what we want
        try:
            received = conn.recv(1024)
        except OSError:
            received = b""
        elapsed = time.monotonic() - started
    assert received == b"", received
    assert elapsed < 8, f"the connection was held {elapsed:.1f} s"
    ok = requests.get(lab.endpoints["kube"] + "/healthz", verify=str(lab.state_dir / "ca.pem"), timeout=10)
    assert ok.status_code in (200, 401)


# ---------------------------------------------------------------- the kubelet's own defences


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniLab]:
    running = MiniLab(tmp_path_factory.mktemp("hostile-node")).start()
    yield running
    running.stop()


def failed_mount(node: MiniLab, pod: str, timeout: float = 15) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = [e for e in node.events("default", pod) if e["reason"] == "FailedMount"]
        if events:
            return events[0]["message"]
        time.sleep(0.05)
    raise AssertionError(f"no FailedMount for {pod}: {node.events('default', pod)}")


def pod_dir(node: MiniLab, pod: str) -> Path:
    return node.kubelet.pods_dir / "default" / pod


def test_config_map_keys_that_leave_the_volume_are_never_written(node: MiniLab, outside: Path) -> None:
    key = escape_to(outside)
    node.add("configmaps", {"metadata": {"name": "evil-keys", "namespace": "default"}, "data": {key: "pwned"}})
    node.pod("evil-keys", [python("main", "print(1)")], volumes=[{"name": "cfg", "configMap": {"name": "evil-keys"}}])
    assert failed_mount(node, "evil-keys") == (
        f'MountVolume.SetUp failed for volume "cfg" : invalid path: must not contain \'..\': {key}')
    assert node.get("pods", "default", "evil-keys")["status"]["phase"] == "Pending"
    node.delete("pods", "default", "evil-keys")


@pytest.mark.parametrize("where", ["items", "projected-token", "absolute", "reserved"])
def test_item_and_token_paths_that_leave_the_volume_are_never_written(node: MiniLab, outside: Path,
                                                                    where: str) -> None:
    name = f"evil-{where}"
    escape = {"absolute": str(outside), "reserved": "..data_tmp"}.get(where, escape_to(outside))
    node.add("configmaps", {"metadata": {"name": name, "namespace": "default"}, "data": {"k": "pwned"}})
    if where == "projected-token":
        volume = {"name": "vol", "projected": {"sources": [
            {"serviceAccountToken": {"path": escape, "expirationSeconds": 3600}}]}}
    else:
        volume = {"name": "vol", "configMap": {"name": name, "items": [{"key": "k", "path": escape}]}}
    node.pod(name, [python("main", "print(1)")], volumes=[volume])
    problem = {"absolute": f"must be relative path: {escape}", "reserved": f"must not start with '..': {escape}"}
    expected = problem.get(where, f"must not contain '..': {escape}")
    assert failed_mount(node, name) == f'MountVolume.SetUp failed for volume "vol" : invalid path: {expected}'
    assert not os.path.lexists(pod_dir(node, name) / "volumes" / "vol" / "..data")  # nothing was written at all
    node.delete("pods", "default", name)


@pytest.mark.parametrize("how", ["subPath", "subPathExpr"])
def test_sub_paths_that_leave_the_volume_are_refused_by_the_kubelet(node: MiniLab, outside: Path, how: str) -> None:
    name = f"evil-{how.lower()}"
    escape = escape_to(outside)
    mount = {"name": "scratch", "mountPath": "/scratch"}
    if how == "subPath":
        mount["subPath"] = escape
        container = python("main", "open('/scratch/x', 'w').write('pwned')", volumeMounts=[mount])
    else:  # passes the API server (no '..' in the expression); only the kubelet can catch it
        mount["subPathExpr"] = "$(TARGET)"
        container = python("main", "open('/scratch/x', 'w').write('pwned')", volumeMounts=[mount],
                           env=[{"name": "TARGET", "value": escape}])
    node.pod(name, [container], volumes=[{"name": "scratch", "emptyDir": {}}])
    pod = node.wait(name, waiting_reason("CreateContainerConfigError"))
    message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert message == f"unable to provision SubPath `{escape}`: must not contain '..'"
    assert any(e["message"] == f"Error: {message}" for e in node.events("default", name))
    node.delete("pods", "default", name)


def test_a_symlink_planted_in_an_empty_dir_cannot_carry_a_sub_path_outside(node: MiniLab, outside: Path,
                                                                          tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plant = python("plant", f"import os; os.symlink({str(elsewhere)!r}, '/scratch/link')",
                   volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}])
    through = python("through", "open('/mounted/x', 'w').write('pwned')",
                     volumeMounts=[{"name": "scratch", "mountPath": "/mounted", "subPath": "link"}])
    below = python("below", "open('/mounted/x', 'w').write('pwned')",
                   volumeMounts=[{"name": "scratch", "mountPath": "/mounted", "subPath": "link/new"}])
    node.pod("planted", [through, below], initContainers=[plant], volumes=[{"name": "scratch", "emptyDir": {}}])
    pod = node.wait("planted", lambda p: all(
        (s.get("state", {}).get("waiting") or {}).get("reason") == "CreateContainerConfigError"
        for s in (p.get("status") or {}).get("containerStatuses") or [{}]))
    messages = [s["state"]["waiting"]["message"] for s in pod["status"]["containerStatuses"]]
    assert messages == ['failed to prepare subPath for volumeMount "scratch" of container "through"',
                        'failed to create subPath directory for volumeMount "scratch" of container "below"']
    assert list(elsewhere.iterdir()) == []
    assert os.path.islink(pod_dir(node, "planted") / "volumes" / "scratch" / "link")
    node.delete("pods", "default", "planted")


@pytest.mark.parametrize("sandbox", ["isolated", "none"])
def test_relative_mount_paths_and_working_dirs_cannot_climb_out(node: MiniLab, tmp_path: Path,
                                                                      sandbox: str) -> None:
    runner = node if sandbox == "isolated" else MiniLab(tmp_path / "fallback", sandbox="none")
    if sandbox == "none":
        (tmp_path / "fallback").mkdir()
        runner.start()
    try:
        if sandbox == "isolated" and not runner.kubelet.sandbox.isolated:
            pytest.skip(f"no mount namespace here: {runner.kubelet.sandbox.reason}")
        name = f"climb-{uuid.uuid4().hex[:6]}"
        mount = {"name": "scratch", "mountPath": "../../../../../" + name}
        container = python("main", "print('ok')", volumeMounts=[mount], workingDir=f"../../../../../{name}-cwd")
        runner.pod("climb", [container], volumes=[{"name": "scratch", "emptyDir": {}}])
        pod = runner.wait("climb", lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
        assert pod["status"]["phase"] == "Succeeded", runner.logs("climb", "main")
        here = pod_dir(runner, "climb")
        strays = [path for path in runner.state_dir.rglob(f"{name}*") if here not in path.parents]
        assert strays == [] and not os.path.lexists(Path("/") / name) and not os.path.lexists(Path("/") / f"{name}-cwd")
        runner.delete("pods", "default", "climb")
    finally:
        if runner is not node:
            runner.stop()


def test_api_data_volumes_are_mounted_read_only(node: MiniLab) -> None:
    if not node.kubelet.sandbox.isolated:
        pytest.skip(f"no mount namespace here: {node.kubelet.sandbox.reason}")
    node.add("configmaps", {"metadata": {"name": "ro-data", "namespace": "default"}, "data": {"k": "v"}})
    code = ("import os\ntry:\n    os.symlink('/', '/cfg/planted')\n    print('writable')\n"
            "except OSError as exc:\n    print(exc.errno == 30)")
    node.pod("ro", [python("main", code, volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}])],
             volumes=[{"name": "cfg", "configMap": {"name": "ro-data"}}])
    node.wait("ro", lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
    assert node.logs("ro", "main") == "True\n"
    node.delete("pods", "default", "ro")


def test_the_atomic_writer_never_follows_a_planted_data_link(tmp_path: Path) -> None:
    """A ``..data`` (or timestamped directory, or file) a container replaced with a symlink is neither read
    through nor deleted: the writer treats it as absent and writes a fresh version."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("keep")
    target = tmp_path / "volume"
    assert volumes.write_atomic(target, {"k": volumes.FileSpec(b"one", 0o644)})
    (target / "..data").unlink()
    os.symlink(str(precious), target / "..data")
    os.symlink(str(precious), target / "..data_tmp")
    assert volumes.write_atomic(target, {"k": volumes.FileSpec(b"two", 0o644)})
    assert (precious / "keep").read_text() == "keep" and sorted(p.name for p in precious.iterdir()) == ["keep"]
    assert (target / "k").read_text() == "two"
    data_dir = os.readlink(target / "..data")
    assert "/" not in data_dir and (target / data_dir).is_dir()
    with pytest.raises(volumes.PayloadError, match=r"^invalid path: must not contain '\.\.': \.\./x$"):
        volumes.write_atomic(target, {"../x": volumes.FileSpec(b"x", 0o644)})
    assert not (tmp_path / "x").exists()


def test_file_modes_never_carry_setuid(tmp_path: Path) -> None:
    target = tmp_path / "volume"
    volumes.write_atomic(target, {"tool": volumes.FileSpec(b"#!/bin/sh\n", 0o4755)})
    assert os.stat(target / "tool").st_mode & 0o7777 == 0o755

