"""Pieces of the lab's API server that need no server: protobuf decoding, patches, tables, body codecs,
discovery, validation messages and the error middleware."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lab.kube import codec, discovery, errors, gotypes, protobuf, tables, validation
from lab.kube.apiserver import error_middleware, paginate, parse_target
from lab.kube.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from lab.kube.resources import ensure_builtin_types, resource_type_from_crd
from lab.kube.store import Store
from lab.kube.streams import check_container_started

# ---------------------------------------------------------------- protobuf (kubectl typed commands)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bytes_field(number: int, data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _bytes_field(1, api_version) + _bytes_field(2, kind)
    return (
        protobuf.MAGIC
        + _bytes_field(1, type_meta)
        + _bytes_field(2, raw)
        + _bytes_field(3, "")
        + _bytes_field(4, "")
    )


def test_protobuf_namespace_as_kubectl_create_namespace_sends_it() -> None:
    meta = _bytes_field(1, "probe-ns") + _bytes_field(2, "") + _bytes_field(3, "")
    raw = _bytes_field(1, meta) + _bytes_field(2, b"") + _bytes_field(3, _bytes_field(1, ""))
    assert protobuf.decode_object(_envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "probe-ns"},
        "spec": {},  # empty strings are unset; an empty message is kept (an emptyDir: {} means something)
        "status": {},
    }


def test_protobuf_maps_repeated_fields_and_explicit_false() -> None:
    label = _bytes_field(11, _bytes_field(1, "tier") + _bytes_field(2, "gold"))
    meta = _bytes_field(1, "bot") + _bytes_field(3, "probe-ns") + label
    raw = _bytes_field(1, meta) + _int_field(4, 0)  # automountServiceAccountToken: false is meaningful
    decoded = protobuf.decode_object(_envelope("v1", "ServiceAccount", raw))
    assert decoded["metadata"] == {"name": "bot", "namespace": "probe-ns", "labels": {"tier": "gold"}}
    assert decoded["automountServiceAccountToken"] is False

    secret = _bytes_field(1, _bytes_field(1, "s1")) + _bytes_field(
        2, _bytes_field(1, "k") + _bytes_field(2, b"\x00v")
    )
    assert protobuf.decode_object(_envelope("v1", "Secret", secret))["data"] == {"k": "AHY="}


def test_protobuf_token_request_and_access_review() -> None:
    bound = _bytes_field(1, "Pod") + _bytes_field(2, "v1") + _bytes_field(3, "web")
    spec = _bytes_field(1, "https://example.test") + _bytes_field(3, bound) + _int_field(4, 600)
    token_request = protobuf.decode_object(
        _envelope("authentication.k8s.io/v1", "TokenRequest", _bytes_field(1, b"") + _bytes_field(2, spec))
    )
    assert token_request["spec"] == {
        "audiences": ["https://example.test"],
        "expirationSeconds": 600,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"},
    }

    attributes = _bytes_field(1, "x") + _bytes_field(2, "create") + _bytes_field(5, "pods")
    review = _bytes_field(2, _bytes_field(1, attributes)) + _bytes_field(
        3, _int_field(1, 0) + _int_field(4, 0)
    )
    decoded = protobuf.decode_object(_envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", review))
    assert decoded["spec"] == {"resourceAttributes": {"namespace": "x", "verb": "create", "resource": "pods"}}


def test_protobuf_unknown_kind_is_415_and_garbage_is_400() -> None:
    with pytest.raises(errors.ApiError) as unknown:
        protobuf.decode_object(_envelope("apps/v1", "Frobnicator", b""))
    assert unknown.value.code == 415
    with pytest.raises(errors.ApiError) as garbage:
        protobuf.decode_object(protobuf.MAGIC + b"\x0a\xff")
    assert garbage.value.code == 400


# ---------------------------------------------------------------- patches


def test_strategic_merge_patch_keeps_unchanged_fields_of_list_items() -> None:
    live = {
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox:1.35", "command": ["sh"]},
                {"name": "side", "image": "nginx"},
            ]
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
            "containers": [{"image": "busybox:1.36", "name": "main"}],
        }
    }
    result = strategic_merge_patch(live, patch)
    assert result["spec"]["containers"] == [
        {"name": "side", "image": "nginx"},
        {"name": "main", "image": "busybox:1.36", "command": ["sh"]},
    ]
    assert merge_patch(live, patch)["spec"]["containers"] == [{"image": "busybox:1.36", "name": "main"}]


def test_strategic_merge_patch_directives() -> None:
    live = {
        "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
        "spec": {
            "volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}],
            "containers": [{"name": "c", "volumeMounts": [{"name": "v1", "mountPath": "/a"}]}],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"], "labels": {"$patch": "replace", "z": "3"}},
        "spec": {
            "volumes": [{"name": "v2", "$patch": "delete"}],
            "containers": [{"name": "c", "volumeMounts": [{"name": "v1", "mountPath": "/b"}]}],
        },
    }
    result = strategic_merge_patch(live, patch)
    assert result["metadata"] == {"finalizers": ["a", "b"], "labels": {"z": "3"}}
    assert result["spec"]["volumes"] == [{"name": "v1", "emptyDir": {}}]
    assert [m["mountPath"] for m in result["spec"]["containers"][0]["volumeMounts"]] == ["/a", "/b"]


def test_json_merge_patch_removes_nulls() -> None:
    assert merge_patch(
        {"metadata": {"labels": {"tier": "gold", "x": "y"}}}, {"metadata": {"labels": {"tier": None}}}
    ) == {"metadata": {"labels": {"x": "y"}}}


def test_json_patch_operations() -> None:
    document = {"metadata": {"labels": {"a/b": "1"}}, "items": [1, 2]}
    result = json_patch(
        document,
        [
            {"op": "add", "path": "/items/-", "value": 3},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
            {"op": "copy", "from": "/items/0", "path": "/first"},
            {"op": "test", "path": "/first", "value": 1},
            {"op": "remove", "path": "/items/0"},
        ],
    )
    assert result == {"metadata": {"labels": {"a/b": "2"}}, "items": [2, 3], "first": 1}
    with pytest.raises(PatchError):
        json_patch(document, [{"op": "test", "path": "/items/0", "value": 9}])
    with pytest.raises(PatchError):
        json_patch(document, [{"op": "remove", "path": "/nope"}])


# ---------------------------------------------------------------- codecs


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"kind": ', "unexpected end of JSON input"),
        (b"xyz", "invalid character 'x' looking for beginning of value"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
        (b"{]", "invalid character ']' looking for beginning of object key string"),
        (b"[1, 2]", "json: cannot unmarshal array into Go value of type struct"),
    ],
)
def test_malformed_json_gets_go_wording(body: bytes, message: str) -> None:
    with pytest.raises(errors.ApiError) as caught:
        codec.decode_object(body, None)
    assert caught.value.code == 400
    assert caught.value.message.startswith("couldn't get version/kind; json parse error: ")
    assert message in caught.value.message


def test_yaml_bodies_and_their_errors() -> None:
    decoded = codec.decode_object(
        b"kind: ConfigMap\nmetadata:\n  name: c\ndata:\n  when: 2024-01-01\n", "application/yaml"
    )
    assert decoded["data"]["when"] == "2024-01-01"  # timestamps stay strings, as sigs.k8s.io/yaml leaves them
    with pytest.raises(errors.ApiError) as caught:
        codec.decode_object(b"a: b: c\n", "application/yaml")
    assert caught.value.code == 400
    assert caught.value.message.startswith("error converting YAML to JSON: yaml: line 1: ")
    with pytest.raises(errors.ApiError) as unsupported:
        codec.decode_object(b"<x/>", "application/xml")
    assert unsupported.value.code == 415


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_pod_table_row() -> None:
    store = Store()
    ensure_builtin_types(store)
    pods = store.type_for("", "pods")
    pod = {
        "metadata": {"name": "web", "namespace": "ns", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    }
    table = tables.render_table(pods, [pod], "7")
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert table["rows"][0]["cells"][:4] == ["web", "1/2", "CrashLoopBackOff", "3"]
    assert table["rows"][0]["object"]["metadata"]["namespace"] == "ns"


# ---------------------------------------------------------------- discovery, routing, validation


def _crd(plural: str = "widgets", group: str = "example.com") -> dict:
    return {
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }


def test_discovery_and_openapi_follow_registered_types() -> None:
    store = Store()
    ensure_builtin_types(store)
    store.register(resource_type_from_crd(_crd()))
    groups = [g["name"] for g in discovery.api_group_list(store)["groups"]]
    assert "example.com" in groups and "apps" in groups
    core = {r["name"]: r for r in discovery.api_resource_list(store, "", "v1")["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and "pods/log" in core
    assert core["serviceaccounts/token"]["group"] == "authentication.k8s.io"
    assert core["serviceaccounts/token"]["kind"] == "TokenRequest"
    root = discovery.openapi_v3_root(store)["paths"]
    assert "apis/example.com/v1" in root and "api/v1" in root
    document = discovery.openapi_v3_group_version(store, "example.com", "v1")
    operation = document["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert operation["x-kubernetes-group-version-kind"] == {
        "group": "example.com",
        "version": "v1",
        "kind": "Widget",
    }
    assert operation["parameters"][0]["name"] == "fieldValidation"


def test_routing_resolves_namespaced_and_cluster_paths() -> None:
    store = Store()
    ensure_builtin_types(store)
    target = parse_target(store, "", "v1", ["namespaces", "ns", "pods", "web", "log"])
    assert (target.rt.plural, target.namespace, target.name, target.subresource) == (
        "pods",
        "ns",
        "web",
        "log",
    )
    namespace = parse_target(store, "", "v1", ["namespaces", "ns", "status"])
    assert (namespace.rt.plural, namespace.name, namespace.subresource) == ("namespaces", "ns", "status")
    for rest in (["gizmos"], ["pods", "web"], ["namespaces", "ns", "namespaces"], ["pods", "a", "b", "c"]):
        with pytest.raises(errors.ApiError) as caught:
            parse_target(store, "", "v1", rest)
        assert caught.value.code == 404
        assert caught.value.message == "the server could not find the requested resource"


def test_validation_messages() -> None:
    store = Store()
    ensure_builtin_types(store)
    pods, namespaces = store.type_for("", "pods"), store.type_for("", "namespaces")
    with pytest.raises(errors.ApiError) as missing:
        validation.validate_create(pods, {"metadata": {}, "spec": {"containers": [{"name": "c"}]}})
    assert missing.value.code == 422
    assert missing.value.message == (
        'Pod "" is invalid: [metadata.name: Required value: name or generateName '
        "is required, spec.containers[0].image: Required value]"
    )
    with pytest.raises(errors.ApiError) as bad_name:
        validation.validate_create(namespaces, {"metadata": {"name": "a.b"}})
    assert 'metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label' in bad_name.value.message
    deployments = store.type_for("apps", "deployments")
    with pytest.raises(errors.ApiError) as deployment:
        validation.validate_create(
            deployments, {"metadata": {"name": "d"}, "spec": {"template": {"spec": {}}}}
        )
    assert deployment.value.message.startswith(
        'Deployment.apps "d" is invalid: spec.template.spec.containers'
    )


WI_HOOK = {"name": "mutation.azure-workload-identity.io", "admissionReviewVersions": ["v1", "v1beta1"],
           "clientConfig": {"service": {"name": "azure-wi-webhook-webhook-service", "namespace": "kube-system",
                                        "path": "/mutate-v1-pod"}},
           "failurePolicy": "Fail", "sideEffects": "None", "timeoutSeconds": 10}


def test_a_webhook_configuration_is_validated_as_the_api_server_does() -> None:
    """kubectl patch --type merge of one webhook replaces the whole webhooks list (RFC 7386): the API server refuses
    the webhook left without sideEffects, clientConfig and admissionReviewVersions (admissionregistration
    validation.go, 1.26+ review versions), where the lab stored it. A strategic merge patch merges webhooks by name
    (admissionregistration/v1 patchMergeKey), so the same edit keeps the rest; timeoutSeconds stays within 1..30."""
    store = Store()
    ensure_builtin_types(store)
    mwcs = store.type_for("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
    live = {"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"}, "webhooks": [dict(WI_HOOK)]}
    validation.validate_create(mwcs, live)
    edit = {"webhooks": [{"name": WI_HOOK["name"], "namespaceSelector": {"matchLabels": {"team": "payments"}}}]}
    with pytest.raises(errors.ApiError) as replaced:
        validation.validate_update(mwcs, live, merge_patch(live, edit))
    assert replaced.value.code == 422 and replaced.value.message == (
        'MutatingWebhookConfiguration.admissionregistration.k8s.io "azure-wi-webhook-mutating-webhook-configuration" '
        "is invalid: [webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun, "
        "webhooks[0].clientConfig: Required value: exactly one of url or service is required, "
        "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1, v1alpha1]")
    merged = strategic_merge_patch(live, edit)
    validation.validate_update(mwcs, live, merged)
    assert merged["webhooks"][0]["sideEffects"] == "None"
    assert merged["webhooks"][0]["namespaceSelector"] == {"matchLabels": {"team": "payments"}}
    for timeout, refused in ((1, False), (30, False), (0, True), (31, True)):
        changed = {**live, "webhooks": [{**WI_HOOK, "timeoutSeconds": timeout}]}
        if not refused:
            validation.validate_update(mwcs, live, changed)
            continue
        with pytest.raises(errors.ApiError) as out_of_range:
            validation.validate_update(mwcs, live, changed)
        assert (f"webhooks[0].timeoutSeconds: Invalid value: {timeout}: the timeout value must be between 1 and 30 "
                "seconds") in out_of_range.value.message
    with pytest.raises(errors.ApiError) as twice:
        validation.validate_create(mwcs, {**live, "webhooks": [WI_HOOK, {**WI_HOOK, "sideEffects": "Some"}]})
    assert 'webhooks[1].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"' in \
        twice.value.message
    assert 'webhooks[1].name: Duplicate value: "mutation.azure-workload-identity.io"' in twice.value.message


def test_pagination_round_trip() -> None:
    items = [{"n": i} for i in range(5)]
    page, metadata = paginate(items, "2", None)
    assert page == items[:2] and metadata["remainingItemCount"] == 3
    rest, last = paginate(items, "10", metadata["continue"])
    assert rest == items[2:] and last == {}


def test_error_middleware_renders_status_for_unexpected_exceptions() -> None:
    async def scenario() -> tuple[int, dict, int, dict]:
        async def boom(request: web.Request) -> web.Response:
            raise RuntimeError("etcd down")

        async def gone(request: web.Request) -> web.Response:
            raise errors.not_found("pods", "", "nope")

        app = web.Application(middlewares=[error_middleware])
        app.router.add_get("/boom", boom)
        app.router.add_get("/gone", gone)
        async with TestClient(TestServer(app)) as client:
            first = await client.get("/boom")
            second = await client.get("/gone")
            return first.status, await first.json(), second.status, json.loads(await second.text())

    status, body, gone_status, gone_body = asyncio.run(scenario())
    assert status == 500 and body["reason"] == "InternalError" and body["kind"] == "Status"
    assert body["message"] == "Internal error occurred: etcd down"
    assert gone_status == 404 and gone_body["message"] == 'pods "nope" not found'


def test_unquoted_yaml_booleans_as_images_are_rejected_like_the_decoder_does() -> None:
    store = Store()
    ensure_builtin_types(store)
    with pytest.raises(errors.ApiError) as caught:
        gotypes.check_object(store.type_for("", "pods"), {"spec": {"containers": [{"image": True}]}})
    assert caught.value.code == 400
    assert caught.value.message.endswith(
        "json: cannot unmarshal bool into Go struct field Container.spec.containers.image of type string"
    )


def test_custom_resource_printer_columns() -> None:
    crd = _crd()
    widgets = resource_type_from_crd(crd)
    columns = [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]
    widget = {"metadata": {"name": "w", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"size": 3}}
    table = tables.render_table(widgets, [widget], "1", columns)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Age"]
    assert table["rows"][0]["cells"][:2] == ["w", 3]


@pytest.mark.parametrize(("reason", "words"), [
    ("ErrImagePull", "image can't be pulled"), ("ImagePullBackOff", "trying and failing to pull image"),
    ("ContainerCreating", "ContainerCreating"), ("CreateContainerConfigError", "CreateContainerConfigError")])
def test_logs_of_a_container_waiting_to_start_in_the_kubelets_words(reason: str, words: str) -> None:
    """kubectl logs of a pod whose image cannot be pulled (the azure-workload-identity quick start's msal-go, which
    the lab does not run): the kubelet's validateContainerLogStatus words the two pull failures itself."""
    pod = {"metadata": {"name": "quick-start"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "oidc", "state": {"waiting": {"reason": reason}}}]}}
    with pytest.raises(errors.ApiError) as caught:
        check_container_started(pod, "oidc", has_logs=False)
    assert caught.value.message == f'container "oidc" in pod "quick-start" is waiting to start: {words}'
