"""The Go JSON rules lab.kube.protobuf applies to messages decoded with upstream's descriptors: messages built
here with the same descriptors, wrapped as kubectl wraps them, must come out as the API server reads them."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import message_factory

from lab.kube import errors, protobuf


def build(api_version: str, kind: str, fill: Any) -> bytes:
    descriptor = protobuf.message_descriptor(api_version, kind)
    assert descriptor is not None
    message = message_factory.GetMessageClass(descriptor)()
    fill(message)
    pool, _ = protobuf._pool()
    envelope = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{protobuf.RUNTIME}.Unknown"))()
    envelope.typeMeta.apiVersion, envelope.typeMeta.kind = api_version, kind
    envelope.raw = message.SerializeToString()
    return protobuf.MAGIC + envelope.SerializeToString()


def test_delete_options_keep_an_explicit_zero_grace_period() -> None:
    def fill(options: Any) -> None:
        options.gracePeriodSeconds = 0
        options.propagationPolicy = "Foreground"
        options.dryRun.append("All")

    assert protobuf.decode_object(build("v1", "DeleteOptions", fill)) == {
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
        "dryRun": ["All"]}


def test_special_types_inline_fields_and_omitted_zeros() -> None:
    def fill(pod: Any) -> None:
        pod.metadata.name = "p"
        pod.metadata.creationTimestamp.seconds = 0  # Go's zero time: unset
        pod.metadata.generation = 0  # non-pointer omitempty: left out
        volume = pod.spec.volumes.add()
        volume.name = "scratch"
        volume.volumeSource.emptyDir.sizeLimit.string = "1Gi"
        projected = pod.spec.volumes.add()
        projected.name = "token"
        source = projected.volumeSource.projected.sources.add()
        source.serviceAccountToken.audience = "api://AzureADTokenExchange"
        source.serviceAccountToken.expirationSeconds = 3600
        source.serviceAccountToken.path = "azure-identity-token"
        container = pod.spec.containers.add()
        container.name = "c"
        container.resources.limits["memory"].string = "128Mi"
        port = container.ports.add()
        port.containerPort = 80
        port.hostPort = 0  # non-pointer omitempty: left out
        container.readinessProbe.handler.httpGet.port.type = 1
        container.readinessProbe.handler.httpGet.port.strVal = "http"
        container.readinessProbe.periodSeconds = 5
        container.securityContext.runAsNonRoot = False  # a pointer: an explicit false stays
        pod.spec.automountServiceAccountToken = False

    decoded = protobuf.decode_object(build("v1", "Pod", fill))
    assert decoded["metadata"] == {"name": "p"}
    assert decoded["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"}}]}},
    ]
    container = decoded["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"memory": "128Mi"}}
    assert container["ports"] == [{"containerPort": 80}]
    assert container["readinessProbe"] == {"httpGet": {"port": "http"}, "periodSeconds": 5}
    assert container["securityContext"] == {"runAsNonRoot": False}
    assert decoded["spec"]["automountServiceAccountToken"] is False


def test_times_durations_raw_extensions_and_named_string_lists() -> None:
    def fill(event: Any) -> None:
        event.metadata.name = "e"
        event.eventTime.seconds = 1767225600
        event.eventTime.nanos = 123456000
        event.deprecatedFirstTimestamp.seconds = 1767225600

    decoded = protobuf.decode_object(build("events.k8s.io/v1", "Event", fill))
    assert decoded["eventTime"] == "2026-01-01T00:00:00.123456Z"
    assert decoded["deprecatedFirstTimestamp"] == "2026-01-01T00:00:00Z"

    def review(obj: Any) -> None:
        obj.spec.user = "alice"
        obj.spec.extra["scopes"].items.extend(["a", "b"])

    assert protobuf.decode_object(build("authorization.k8s.io/v1", "SubjectAccessReview", review))["spec"] == {
        "user": "alice", "extra": {"scopes": ["a", "b"]}}
    assert protobuf._go_duration(3_600_000_000_000) == "1h0m0s"
    assert protobuf._go_duration(90_500_000_000) == "1m30.5s"
    assert protobuf._go_duration(1_500_000) == "1.5ms"


def test_an_embedded_object_is_decoded_as_json() -> None:
    def fill(revision: Any) -> None:
        revision.metadata.name = "r"
        revision.data.raw = b'{"spec":{"template":{"metadata":{"labels":{"app":"x"}}}}}'
        revision.revision = 2

    decoded = protobuf.decode_object(build("apps/v1", "ControllerRevision", fill))
    assert decoded["data"] == {"spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}
    assert decoded["revision"] == 2


def test_garbage_is_400_and_an_unknown_kind_415() -> None:
    with pytest.raises(errors.ApiError) as garbage:
        protobuf.decode_object(build("v1", "Pod", lambda pod: None)[:-1] + b"\xff\xff")
    assert garbage.value.code == 400
    with pytest.raises(errors.ApiError) as unknown:
        protobuf.decode_object(build("v1", "Pod", lambda pod: None).replace(b"\x03Pod", b"\x03Pox"))
    assert unknown.value.code == 415
