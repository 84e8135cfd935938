"""The lab's API server driven by the official `kubernetes` client and by raw HTTPS, as clients use it."""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from lab.kube.cluster import AccessRule
from lab.runtime import Lab, LabThread
from lab.scenarios import IDLE_IMAGES

TOKEN_AUDIENCE = "api://AzureADTokenExchange"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True, scope="module")
def collect_lab_garbage() -> Iterator[None]:
    """Collect cyclic garbage (e.g. kubelet tasks for pods these tests deleted) here, at a safe point: on
    CPython 3.11 a finalizer that formats a traceback inside another ast.parse (pytest's assertion
    rewriting) fails that parse with "SystemError: AST constructor recursion depth mismatch"."""
    yield
    gc.collect()


class Raw:
    """requests against the kube endpoint with the kubeconfig's token (or another one)."""

    def __init__(self, lab: Lab, token: str) -> None:
        self.base = lab.endpoints["kube"]
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override the lab's CA
        self.session.verify = str(lab.state_dir / "ca.pem")
        self.token = token

    def __call__(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {token or self.token}")
        return self.session.request(method, self.base + path, headers=headers, timeout=20, **kwargs)


@pytest.fixture(scope="module")
def raw(lab: Lab, kubeconfig: Path) -> Raw:
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    return Raw(lab, token)


@pytest.fixture(scope="module")
def core(kube_api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


@pytest.fixture()
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"api-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: _exists(core, name, "default"))
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


def _exists(core: client.CoreV1Api, namespace: str, service_account: str) -> bool:
    try:
        core.read_namespaced_service_account(service_account, namespace)
        return True
    except ApiException:
        return False


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def on_lab(lab_thread: LabThread, function: Callable[[], Any]) -> Any:
    return lab_thread.call(function).result(10)


def busybox_pod(name: str, **spec: Any) -> dict[str, Any]:
    """A pod for API tests. Its image runs no process in the lab (a real busybox would exit and race the test's
    own status and log changes)."""
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [{"name": "main", "image": IDLE_IMAGES[0] + ":1.0", "command": ["sh", "-c", "echo hi"]}],
            **spec,
        },
    }


def status_of(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["code"] == response.status_code
    return body


# ---------------------------------------------------------------- reading the cluster


def test_version_has_all_nine_fields(kube_api: Any, lab: Lab) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version == lab.kube.version["gitVersion"]
    assert all(
        getattr(info, field)
        for field in (
            "build_date",
            "compiler",
            "git_commit",
            "git_tree_state",
            "go_version",
            "major",
            "minor",
            "platform",
        )
    )


def test_health_and_discovery_endpoints(raw: Raw) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        assert raw("GET", path).text == "ok"
    assert raw("GET", "/api").json()["versions"] == ["v1"]
    assert raw("GET", "/apis").json()["kind"] == "APIGroupList"
    assert raw("GET", "/openapi/v2").status_code == 404
    assert "api/v1" in raw("GET", "/openapi/v3").json()["paths"]


def test_namespace_defaults_default_service_account_and_root_ca(
    core: client.CoreV1Api, lab: Lab, namespace: str
) -> None:
    created = core.read_namespace(namespace)
    assert created.metadata.labels["kubernetes.io/metadata.name"] == namespace
    assert created.status.phase == "Active"
    root_ca = core.read_namespaced_config_map("kube-root-ca.crt", namespace)
    assert root_ca.data["ca.crt"] == lab.tls.ca_pem.decode()


def test_service_account_annotate_label_and_list_everywhere(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "bot"}})
    core.patch_namespaced_service_account(
        "bot",
        namespace,
        {
            "metadata": {
                "annotations": {"azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001"},
                "labels": {"tier": "gold"},
            }
        },
    )
    labelled = core.list_service_account_for_all_namespaces(label_selector="tier=gold").items
    assert [(sa.metadata.namespace, sa.metadata.name) for sa in labelled] == [(namespace, "bot")]
    bot = core.read_namespaced_service_account("bot", namespace)
    assert bot.metadata.annotations["azure.workload.identity/client-id"].endswith("0001")


def test_list_with_label_and_field_selectors(core: client.CoreV1Api, namespace: str) -> None:
    for name, tier in (("a", "gold"), ("b", "silver"), ("c", "gold")):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {"tier": tier}}})
    gold = core.list_namespaced_config_map(namespace, label_selector="tier=gold")
    assert [cm.metadata.name for cm in gold.items] == ["a", "c"]
    assert gold.kind == "ConfigMapList" and int(gold.metadata.resource_version) > 0
    not_gold = core.list_namespaced_config_map(namespace, label_selector="tier,tier notin (gold)")
    assert [cm.metadata.name for cm in not_gold.items] == ["b"]
    by_name = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.name=b,metadata.namespace={namespace}"
    )
    assert [cm.metadata.name for cm in by_name.items] == ["b"]


# ---------------------------------------------------------------- pods


def test_pod_create_applies_api_defaults(core: client.CoreV1Api, namespace: str) -> None:
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "nginx:1.27"}],
                "volumes": [{"name": "cfg", "configMap": {"name": "kube-root-ca.crt"}}],
            },
        },
    )
    assert pod.status.phase == "Pending"
    spec = pod.spec
    assert (
        spec.service_account_name,
        spec.restart_policy,
        spec.dns_policy,
        spec.scheduler_name,
        spec.termination_grace_period_seconds,
    ) == ("default", "Always", "ClusterFirst", "default-scheduler", 30)
    assert [c.image_pull_policy for c in spec.containers] == ["Always", "IfNotPresent"]
    assert spec.containers[0].termination_message_path == "/dev/termination-log"
    modes = {v.name: (v.config_map or v.projected).default_mode for v in spec.volumes}
    assert modes["cfg"] == 420
    assert any(name.startswith("kube-api-access-") and mode == 420 for name, mode in modes.items())


def test_pod_gets_workload_identity_from_the_webhook(
    core: client.CoreV1Api, lab: Lab, namespace: str
) -> None:
    core.create_namespaced_service_account(
        namespace,
        {
            "metadata": {
                "name": "wi-sa",
                "annotations": {"azure.workload.identity/client-id": "11111111-1111-1111-1111-111111111111"},
            }
        },
    )
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "wi", "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "wi-sa", "containers": [{"name": "main", "image": "busybox"}]},
        },
    )
    env = {e.name: e.value for e in pod.spec.containers[0].env or []}
    assert env["AZURE_CLIENT_ID"] == "11111111-1111-1111-1111-111111111111"
    assert env["AZURE_TENANT_ID"] == lab.tenant_id
    assert env["AZURE_FEDERATED_TOKEN_FILE"]
    audiences = [
        source.service_account_token.audience
        for volume in pod.spec.volumes
        if volume.projected
        for source in volume.projected.sources
        if source.service_account_token
    ]
    assert TOKEN_AUDIENCE in audiences


def test_pod_for_a_missing_service_account_is_forbidden(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod(namespace, busybox_pod("orphan", serviceAccountName="ghost"))
    assert caught.value.status == 403
    assert json.loads(caught.value.body)["message"] == (
        f'pods "orphan" is forbidden: error looking up service account {namespace}/ghost: '
        'serviceaccount "ghost" not found'
    )


def test_pod_security_warns_and_enforces(raw: Raw, core: client.CoreV1Api) -> None:
    name = f"pss-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        {
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/enforce": "baseline",
                },
            }
        }
    )
    wait_for(lambda: _exists(core, name, "default"))
    created = raw("POST", f"/api/v1/namespaces/{name}/pods", json=busybox_pod("loose"))
    assert created.status_code == 201
    assert any("would violate PodSecurity" in w for w in created.headers.get("Warning", "").split("299 - "))
    privileged = busybox_pod("root")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    rejected = raw("POST", f"/api/v1/namespaces/{name}/pods", json=privileged)
    assert rejected.status_code == 403 and "violates PodSecurity" in status_of(rejected)["message"]
    core.delete_namespace(name)


def test_pod_logs(core: client.CoreV1Api, lab: Lab, lab_thread: LabThread, namespace: str) -> None:
    core.create_namespaced_pod(namespace, busybox_pod("logger"))
    two = busybox_pod("two")
    two["spec"]["containers"].append({"name": "side", "image": "registry.invalid/never/pulled:1.0"})
    core.create_namespaced_pod(namespace, two)

    def seed() -> None:
        lab.kube.pod_logs[(namespace, "logger", "main")] = bytearray(b"one\ntwo\nthree\n")

    on_lab(lab_thread, seed)
    assert core.read_namespaced_pod_log("logger", namespace) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("logger", namespace, tail_lines=1) == "three\n"
    stamped = core.read_namespaced_pod_log("logger", namespace, timestamps=True).splitlines()
    assert stamped[0].endswith("Z one") and len(stamped) == 3
    with pytest.raises(ApiException) as choose:
        core.read_namespaced_pod_log("two", namespace)
    assert json.loads(choose.value.body)["message"] == (
        "a container name must be specified for pod two, choose one of: [main side]"
    )
    with pytest.raises(ApiException) as waiting:
        core.read_namespaced_pod_log("two", namespace, container="side")
    assert waiting.value.status == 400 and "is waiting to start" in json.loads(waiting.value.body)["message"]


def test_pod_log_follow_streams_until_the_pod_ends(
    core: client.CoreV1Api, lab: Lab, lab_thread: LabThread, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, busybox_pod("follow"))
    key = (namespace, "follow", "main")
    on_lab(lab_thread, lambda: lab.kube.pod_logs.__setitem__(key, bytearray(b"start\n")))

    def finish() -> None:
        time.sleep(0.5)
        on_lab(lab_thread, lambda: lab.kube.pod_logs[key].extend(b"end\n"))
        core.patch_namespaced_pod_status("follow", namespace, {"status": {"phase": "Succeeded"}})

    threading.Thread(target=finish, daemon=True).start()
    lines = list(watch.Watch().stream(core.read_namespaced_pod_log, "follow", namespace))
    assert lines == ["start", "end"]


def test_watch_sees_a_pod_succeed(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, busybox_pod("job"))
    initial = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_namespaced_pod, namespace, timeout_seconds=1)
    ]
    # The kubelet may already have updated the pod (image pull) within that second: MODIFIED may follow.
    assert initial[0] == ("ADDED", "job") and {name for _, name in initial} == {"job"}
    resource_version = core.list_namespaced_pod(namespace).metadata.resource_version

    def succeed() -> None:
        time.sleep(0.3)
        core.patch_namespaced_pod_status("job", namespace, {"status": {"phase": "Succeeded"}})

    threading.Thread(target=succeed, daemon=True).start()
    watcher = watch.Watch()
    seen = []
    for event in watcher.stream(
        core.list_namespaced_pod,
        namespace,
        resource_version=resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        seen.append((event["type"], event["object"].status.phase))
        if event["object"].status.phase == "Succeeded":
            watcher.stop()
    assert ("MODIFIED", "Succeeded") in seen


def test_watch_list_ends_initial_events_with_a_bookmark(
    raw: Raw, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, busybox_pod("web"))
    query = (
        "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        "&fieldSelector=metadata.name%3Dweb&timeoutSeconds=1"
    )
    lines = raw("GET", f"/api/v1/namespaces/{namespace}/pods?{query}").text.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events][:2] == ["ADDED", "BOOKMARK"]  # then MODIFIED as the kubelet works
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    rejected = raw("GET", f"/api/v1/namespaces/{namespace}/pods?watch=true&sendInitialEvents=true")
    assert rejected.status_code == 422


def test_watch_from_a_too_old_resource_version_is_expired(raw: Raw, namespace: str) -> None:
    lines = raw("GET", f"/api/v1/namespaces/{namespace}/pods?watch=true&resourceVersion=1&timeoutSeconds=2")
    event = json.loads(lines.text.splitlines()[0])
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


def test_delete_returns_the_object_the_client_expects(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, busybox_pod("gone"))
    deleted = core.delete_namespaced_pod(
        "gone", namespace, grace_period_seconds=0, propagation_policy="Foreground"
    )
    assert isinstance(deleted, client.V1Pod) and deleted.metadata.name == "gone"
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "tmp"}})
    assert isinstance(core.delete_namespaced_service_account("tmp", namespace), client.V1ServiceAccount)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "tmp"}})
    assert core.delete_namespaced_config_map("tmp", namespace)["status"] == "Success"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("gone", namespace)
    assert missing.value.status == 404


def test_deleting_a_namespace_deletes_its_contents(core: client.CoreV1Api) -> None:
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: _exists(core, name, "default"))
    core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
    assert core.delete_namespace(name)["status"]["phase"] == "Terminating"
    assert not [cm for cm in core.list_config_map_for_all_namespaces().items if cm.metadata.namespace == name]


def test_update_conflict_and_pod_spec_immutability(raw: Raw, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    stale = core.read_namespaced_config_map("cm", namespace)
    core.replace_namespaced_config_map("cm", namespace, {"metadata": {"name": "cm"}, "data": {"a": "2"}})
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("cm", namespace, stale)
    assert conflict.value.status == 409 and "the object has been modified" in conflict.value.body
    core.create_namespaced_pod(namespace, busybox_pod("fixed"))
    image = core.patch_namespaced_pod(
        "fixed", namespace, {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    )
    assert image.spec.containers[0].image == "busybox:1.37"
    assert image.spec.containers[0].command == ["sh", "-c", "echo hi"]  # strategic merge kept it
    forbidden = raw(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/fixed",
        headers={"Content-Type": "application/merge-patch+json"},
        data=json.dumps({"spec": {"restartPolicy": "Never"}}),
    )
    assert forbidden.status_code == 422
    assert "spec: Forbidden: pod updates may not change fields" in status_of(forbidden)["message"]


def test_server_side_apply_upserts(raw: Raw, namespace: str) -> None:
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "v1"}}
    path = f"/api/v1/namespaces/{namespace}/configmaps/ssa?fieldManager=kubectl&force=false"
    headers = {"Content-Type": "application/apply-patch+yaml"}
    first = raw("PATCH", path, headers=headers, data=json.dumps(applied))
    assert first.status_code == 201
    applied["data"]["k"] = "v2"
    second = raw("PATCH", path, headers=headers, data=json.dumps(applied))
    assert second.status_code == 200 and second.json()["data"] == {"k": "v2"}


# ---------------------------------------------------------------- tokens and reviews


def test_token_request(core: client.CoreV1Api, lab: Lab, namespace: str) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "bot"}})
    response = core.create_namespaced_service_account_token(
        "bot", namespace, {"spec": {"audiences": [TOKEN_AUDIENCE], "expirationSeconds": 600}}
    )
    payload = response.status.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == lab.issuer_url
    assert claims["sub"] == f"system:serviceaccount:{namespace}:bot"
    assert claims["aud"] == [TOKEN_AUDIENCE]
    assert claims["exp"] - claims["iat"] == 600
    with pytest.raises(ApiException) as too_short:
        core.create_namespaced_service_account_token("bot", namespace, {"spec": {"expirationSeconds": 60}})
    assert too_short.value.status == 422
    with pytest.raises(ApiException) as no_sa:
        core.create_namespaced_service_account_token("ghost", namespace, {"spec": {}})
    assert json.loads(no_sa.value.body)["message"] == 'serviceaccounts "ghost" not found'


@pytest.fixture(scope="module")
def restricted(lab: Lab, lab_thread: LabThread) -> Any:
    rules = [
        AccessRule(verbs=["get", "list", "watch"], resources=["pods"], groups=[""], namespaces=["default"])
    ]
    return on_lab(lab_thread, lambda: lab.kube.add_user(f"bob-{uuid.uuid4().hex[:4]}", rules=rules))


def test_forbidden_messages(raw: Raw, restricted: Any) -> None:
    user = restricted.name
    create = raw("POST", "/api/v1/namespaces/default/pods", token=restricted.token, json=busybox_pod("x"))
    assert create.status_code == 403 and status_of(create)["reason"] == "Forbidden"
    assert create.json()["message"] == (
        f'pods is forbidden: User "{user}" cannot create resource "pods" in API '
        'group "" in the namespace "default"'
    )
    everywhere = raw("GET", "/api/v1/pods", token=restricted.token)
    assert everywhere.json()["message"] == (
        f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" at the cluster scope'
    )
    named = raw("GET", "/apis/apps/v1/namespaces/kube-system/deployments/x", token=restricted.token)
    assert named.json()["message"] == (
        f'deployments.apps "x" is forbidden: User "{user}" cannot get resource '
        '"deployments" in API group "apps" in the namespace "kube-system"'
    )
    logs = raw("GET", "/api/v1/namespaces/default/pods/x/log", token=restricted.token)
    assert 'cannot get resource "pods/log"' in logs.json()["message"]
    assert raw("GET", "/api/v1/namespaces/default/pods", token=restricted.token).status_code == 200


def test_a_resource_that_is_not_served_is_forbidden_before_it_is_not_found(raw: Raw, restricted: Any) -> None:
    """Authorization runs before routing: who may not ask gets 403, and 404 only once allowed (kubernetes#31798)."""
    path = "/apis/widgets.example.com/v1/widgets"
    denied = raw("GET", path, token=restricted.token)
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        f'widgets.widgets.example.com is forbidden: User "{restricted.name}" cannot list resource "widgets" in API '
        'group "widgets.example.com" at the cluster scope'
    )
    named = raw("GET", "/api/v1/namespaces/default/widgets/w", token=restricted.token)
    assert named.status_code == 403 and 'cannot get resource "widgets"' in named.json()["message"]
    assert raw("GET", path).status_code == 404  # the lab's admin may ask: the resource is not served


def test_self_subject_reviews(raw: Raw, restricted: Any) -> None:
    def can(verb: str, namespace: str) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": "pods", "namespace": namespace}},
        }
        answer = raw(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            token=restricted.token,
            json=review,
        )
        assert answer.status_code == 201
        return answer.json()["status"]["allowed"]

    assert can("list", "default") and not can("create", "default") and not can("list", "kube-system")
    whoami = raw("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token=restricted.token, json={})
    assert whoami.json()["status"]["userInfo"]["username"] == restricted.name


# ---------------------------------------------------------------- custom resources


def test_custom_resources(kube_api: Any, raw: Raw, namespace: str) -> None:
    extensions, custom = client.ApiextensionsV1Api(kube_api), client.CustomObjectsApi(kube_api)
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    crd = extensions.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
    assert {c.type: c.status for c in crd.status.conditions} == {
        "NamesAccepted": "True",
        "Established": "True",
    }
    assert crd.status.accepted_names.kind == "Widget"
    assert group in [g["name"] for g in raw("GET", "/apis").json()["groups"]]
    assert raw("GET", f"/apis/{group}/v1").json()["resources"][0]["shortNames"] == ["wd"]
    assert f"apis/{group}/v1" in raw("GET", "/openapi/v3").json()["paths"]

    custom.create_namespaced_custom_object(
        group,
        "v1",
        namespace,
        "widgets",
        {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}},
    )
    listed = custom.list_cluster_custom_object(group, "v1", "widgets")
    assert [(w["metadata"]["namespace"], w["metadata"]["name"]) for w in listed["items"]] == [
        (namespace, "w1")
    ]
    patched = custom.patch_namespaced_custom_object(
        group, "v1", namespace, "widgets", "w1", {"spec": {"size": 2}}
    )
    assert patched["spec"] == {"size": 2}
    smp = raw(
        "PATCH",
        f"/apis/{group}/v1/namespaces/{namespace}/widgets/w1",
        headers={"Content-Type": "application/strategic-merge-patch+json"},
        data="{}",
    )
    assert smp.status_code == 415

    extensions.delete_custom_resource_definition(f"widgets.{group}")
    assert raw("GET", f"/apis/{group}/v1/widgets").status_code == 404
    assert group not in [g["name"] for g in raw("GET", "/apis").json()["groups"]]


# ---------------------------------------------------------------- bad input


def test_malformed_bodies_are_400(raw: Raw, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    broken = raw("POST", path, data=b'{"metadata": {"name": "x"')
    assert broken.status_code == 400 and status_of(broken)["reason"] == "BadRequest"
    assert (
        broken.json()["message"]
        == "couldn't get version/kind; json parse error: unexpected end of JSON input"
    )
    bad_yaml = raw("POST", path, data=b"metadata: {name: x\n", headers={"Content-Type": "application/yaml"})
    assert bad_yaml.status_code == 400
    assert bad_yaml.json()["message"].startswith("error converting YAML to JSON: yaml: line ")
    good_yaml = raw(
        "POST", path, data=b"metadata:\n  name: from-yaml\n", headers={"Content-Type": "application/yaml"}
    )
    assert good_yaml.status_code == 201
    wrong_media = raw("POST", path, data=b"x", headers={"Content-Type": "text/csv"})
    assert wrong_media.status_code == 415 and wrong_media.json()["reason"] == "UnsupportedMediaType"


def test_bodies_of_the_wrong_shape_are_400_in_the_decoders_words(raw: Raw, namespace: str) -> None:
    """A field of the wrong JSON type never reaches defaulting, admission or the kubelet."""
    pods = f"/api/v1/namespaces/{namespace}/pods"

    def pod(**container: Any) -> dict[str, Any]:
        return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox", **container}]}}

    cases = [
        ("POST", pods, pod(env="x"),
         "json: cannot unmarshal string into Go struct field Container.spec.containers.env of type []v1.EnvVar"),
        ("POST", pods, pod(volumeMounts=[5]),
         "json: cannot unmarshal number into Go struct field Container.spec.containers.volumeMounts "
         "of type v1.VolumeMount"),
        ("POST", pods, {**pod(), "spec": {**pod()["spec"], "tolerations": "x"}},
         "json: cannot unmarshal string into Go struct field PodSpec.spec.tolerations of type []v1.Toleration"),
        ("POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"generateName": 5}},
         "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.generateName of type string"),
        ("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/default/token", {"spec": "x"},
         "json: cannot unmarshal string into Go struct field TokenRequest.spec of type v1.TokenRequestSpec"),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {"spec": "x"},
         "json: cannot unmarshal string into Go struct field SelfSubjectAccessReview.spec "
         "of type v1.SelfSubjectAccessReviewSpec"),
        ("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
         {"metadata": {"name": "rb"}, "roleRef": "x"},
         "json: cannot unmarshal string into Go struct field RoleBinding.roleRef of type v1.RoleRef"),
        ("POST", f"/api/v1/namespaces/{namespace}/secrets", {"metadata": {"name": "s"}, "data": {"k": "!!"}},
         "illegal base64 data at input byte 0"),
    ]
    for method, path, body, message in cases:
        answer = raw(method, path, json=body)
        assert answer.status_code == 400, (path, answer.text)
        assert status_of(answer)["reason"] == "BadRequest"
        assert answer.json()["message"].endswith(message), answer.json()["message"]
    typemeta = raw("POST", pods, json={**pod(), "apiVersion": 5})
    assert typemeta.status_code == 400 and typemeta.json()["message"] == (
        "couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field "
        ".apiVersion of type string"
    )
    assert raw("POST", f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "c"}}).ok
    patched = raw("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/c", data=json.dumps({"data": {"a": 1}}),
                  headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 400 and patched.json()["message"].endswith(
        "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
    )
    for options in ({"preconditions": "x"}, {"dryRun": 5}):
        deleted = raw("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/c", json=options)
        assert deleted.status_code == 400 and status_of(deleted)["reason"] == "BadRequest", deleted.text


def test_unknown_resources_are_404(raw: Raw) -> None:
    for path in (
        "/api/v1/gizmos",
        "/apis/nope.example.com/v1/things",
        "/apis/apps/v9/deployments",
        "/nonsense",
    ):
        response = raw("GET", path)
        assert response.status_code == 404, path
        assert status_of(response)["message"] == "the server could not find the requested resource"


def test_invalid_objects_are_422(raw: Raw, namespace: str) -> None:
    bad_namespace = raw("POST", "/api/v1/namespaces", json={"metadata": {"name": "Bad_Name"}})
    assert bad_namespace.status_code == 422
    body = status_of(bad_namespace)
    assert body["reason"] == "Invalid" and body["details"]["kind"] == "Namespace"
    assert body["message"].startswith(
        'Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 label must consist of"
    )
    nameless = raw("POST", f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {}})
    assert nameless.json()["message"] == (
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    )
    imageless = raw(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        json={"metadata": {"name": "bad"}, "spec": {"containers": [{"name": "main"}]}},
    )
    assert imageless.status_code == 422
    assert imageless.json()["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}
    ]
    in_nowhere = raw("POST", "/api/v1/namespaces/nope-ns/configmaps", json={"metadata": {"name": "c"}})
    assert in_nowhere.status_code == 404 and in_nowhere.json()["message"] == 'namespaces "nope-ns" not found'
    generated = raw(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"generateName": "g-"}}
    )
    assert generated.status_code == 201 and generated.json()["metadata"]["name"].startswith("g-")


def test_authentication_failures_are_401(raw: Raw) -> None:
    wrong = raw("GET", "/api/v1/namespaces", token="not-a-token")
    assert wrong.status_code == 401 and status_of(wrong)["message"] == "Unauthorized"
    missing = raw.session.get(raw.base + "/api/v1/namespaces", timeout=10)
    assert missing.status_code == 401
    assert raw.session.get(raw.base + "/version", timeout=10).status_code == 200  # public info


def test_tables_for_kubectl_get(raw: Raw, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, busybox_pod("tabled"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = raw("GET", f"/api/v1/namespaces/{namespace}/pods?limit=500", headers={"Accept": accept}).json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    name, ready, status, restarts, age = table["rows"][0]["cells"][:5]
    assert (name, restarts) == ("tabled", "0") and ready in ("0/1", "1/1")  # the kubelet may have started it
    assert status in (
        "Pending",
        "ContainerCreating",
        "ErrImagePull",
        "ImagePullBackOff",
        "Running",
    )  # the kubelet's view at that moment
    assert age.endswith("s") and not age.startswith("20")
    assert table["rows"][0]["object"]["metadata"]["namespace"] == namespace


def test_injected_faults_render_as_status(raw: Raw, lab: Lab) -> None:
    settings = lab.faults.services["kube"]
    try:
        settings.rate_429, settings.retry_after_seconds = 1.0, 3
        throttled = raw("GET", "/api/v1/namespaces")
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
        assert status_of(throttled)["reason"] == "TooManyRequests"
        settings.rate_429, settings.rate_503 = 0.0, 1.0
        unavailable = raw("GET", "/api/v1/namespaces")
        assert unavailable.status_code == 503 and status_of(unavailable)["reason"] == "ServiceUnavailable"
    finally:
        settings.rate_429 = settings.rate_503 = 0.0
    assert raw("GET", "/api/v1/namespaces").status_code == 200


def test_json_answers_are_application_json_without_a_charset(raw: Raw) -> None:
    """As the API server's responsewriters set it (the negotiated serializer's media type, no parameters); aiohttp
    would add "; charset=utf-8" to a text body."""
    found = raw("GET", "/api/v1/namespaces")
    missing = raw("GET", "/api/v1/namespaces/no-such-namespace")
    assert (found.status_code, missing.status_code) == (200, 404)
    assert found.headers["Content-Type"] == missing.headers["Content-Type"] == "application/json"


def test_service_account_tokens_authenticate_and_rbac_authorizes(
    raw: Raw, core: client.CoreV1Api, kube_api: Any, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    token = core.create_namespaced_service_account_token("reader", namespace, {"spec": {}}).status.token
    pods = f"/api/v1/namespaces/{namespace}/pods"
    denied = raw("GET", pods, token=token)
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:reader" cannot list resource "pods" '
        f'in API group "" in the namespace "{namespace}"'
    )
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader-can-read"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    assert raw("GET", pods, token=token).status_code == 200
    assert raw("GET", "/api/v1/pods", token=token).status_code == 403  # the Role is namespaced
    other_audience = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"audiences": [TOKEN_AUDIENCE]}}
    ).status.token
    assert raw("GET", pods, token=other_audience).status_code == 401  # not a token for the API server
    core.delete_namespaced_service_account("reader", namespace)
    assert raw("GET", pods, token=token).status_code == 401  # its ServiceAccount is gone


def test_graceful_deletion_of_a_running_pod(core: client.CoreV1Api, namespace: str) -> None:
    pod = busybox_pod("idle")
    pod["spec"]["containers"][0]["image"] = "myacr.azurecr.io/finance/backend:1.0"  # the kubelet keeps it up
    core.create_namespaced_pod(namespace, pod)
    wait_for(lambda: bool(core.read_namespaced_pod("idle", namespace).spec.node_name), timeout=15)
    deleted = core.delete_namespaced_pod("idle", namespace)
    assert deleted.metadata.deletion_timestamp is not None  # Terminating until the kubelet has stopped it
    assert deleted.metadata.deletion_grace_period_seconds == 30

    def gone() -> bool:
        try:
            core.read_namespaced_pod("idle", namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, timeout=20)
