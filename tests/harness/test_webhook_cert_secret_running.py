"""The webhook's certificate Secret deleted while its pods keep running (no restart): they serve from the files they
mounted, so every check passed; cert-controller's rotator never creates that Secret (it only updates it), so the
certificate is not renewed and the next webhook pod cannot mount it. The kubelet's FailedMount on the running pods
is what the harness reads (it may not read Secrets)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from harness.checks.cluster import ClusterContext, webhook_ready
from harness.checks.model import PASS, WARN
from harness.collect.kube import webhook_cert_unmountable
from harness.config import ExpectConfig
from harness.facts import ClusterFacts, WebhookPodNotStarted

NS = "kube-system"
MOUNT = 'MountVolume.SetUp failed for volume "cert" : secret "azure-wi-webhook-server-cert" not found'
DEPLOYMENT = {"metadata": {"namespace": NS, "name": "azure-wi-webhook-controller-manager"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"azure-workload-identity.io/system": "true"}}},
              "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2}}


def _at(seconds_ago: float, now: float) -> str:
    return datetime.fromtimestamp(now - seconds_ago, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    """The webhook's pods (running, or one still ContainerCreating) and the kubelet's events about them."""

    def __init__(self, events: dict[str, list[dict[str, Any]]], creating: tuple[str, ...] = (),
                 started_at: str = "2026-12-05T20:00:00Z") -> None:
        self.events, self.creating, self.started_at = events, creating, started_at

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str | None]:
        state = lambda name: {"waiting": {"reason": "ContainerCreating"}} if name in self.creating else {  # noqa: E731
            "running": {"startedAt": self.started_at}}
        return [{"metadata": {"name": name, "namespace": NS}, "status": {"containerStatuses": [{"state": state(name)}]}}
                for name in ("wh-a", "wh-b")], None

    def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                        field_selector: str = "") -> list[dict[str, Any]]:
        assert (group, version, plural, namespace) == ("", "v1", "events", NS)
        return self.events.get(field_selector.removeprefix("involvedObject.name="), [])


def _event(message: str, seconds_ago: float, now: float, reason: str = "FailedMount") -> dict[str, Any]:
    return {"type": "Warning", "reason": reason, "message": message, "lastTimestamp": _at(seconds_ago, now)}


def test_running_webhook_pods_that_cannot_mount_the_certificate_secret_again_are_found() -> None:
    """By hand in the lab: kubectl delete secret -n kube-system azure-wi-webhook-server-cert, the webhook pods left
    running: within a minute each had FailedMount 'secret "azure-wi-webhook-server-cert" not found'."""
    now = time.time()
    kube = Kube({"wh-a": [_event(MOUNT, 30, now)], "wh-b": [_event(MOUNT, 30, now)]})
    found = webhook_cert_unmountable(kube, [DEPLOYMENT], now)  # type: ignore[arg-type]
    assert found == [WebhookPodNotStarted(NS, "wh-a", "FailedMount", MOUNT),
                     WebhookPodNotStarted(NS, "wh-b", "FailedMount", MOUNT)]
    # the Secret made again: no new FailedMount, the last one ages past the remount window
    assert webhook_cert_unmountable(Kube({"wh-a": [_event(MOUNT, 7 * 60, now)]}),  # type: ignore[arg-type]
                                    [DEPLOYMENT], now) == []
    # another volume's, another reason, or a pod that never started (webhook_not_started's): not this
    other = MOUNT.replace("azure-wi-webhook-server-cert", "proxy-ca")
    assert webhook_cert_unmountable(Kube({"wh-a": [_event(other, 30, now), _event(MOUNT, 30, now, "Failed")]}),  # type: ignore[arg-type]
                                    [DEPLOYMENT], now) == []
    assert webhook_cert_unmountable(Kube({"wh-a": [_event(MOUNT, 30, now)]}, creating=("wh-a",)),  # type: ignore[arg-type]
                                    [DEPLOYMENT], now) == []
    # a pod that waited for the Secret (FailedMount), then started once it was made again: its last FailedMount
    # predates its container's start, the Secret is back
    waited = Kube({"wh-a": [_event(MOUNT, 30, now)]}, started_at=_at(10, now))
    assert webhook_cert_unmountable(waited, [DEPLOYMENT], now) == []  # type: ignore[arg-type]


def test_a_certificate_secret_deleted_under_running_webhook_pods_is_a_warning_with_the_secret_made_again() -> None:
    """The run PASSed. Now WEBHOOK_DEGRADED (a warning: the webhook answers now) says the Secret is gone, why it
    matters (no renewal, no next pod) and makes it again empty; pasted in the lab, the rotator filled it (4 keys)
    and the caBundle, and no further FailedMount came."""
    facts = ClusterFacts(time.time(), webhook_deployments=[DEPLOYMENT], webhook_cert_unmountable=[
        WebhookPodNotStarted(NS, "wh-a", "FailedMount", MOUNT)])
    outcome = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert outcome.status == WARN
    (finding,) = outcome.findings
    assert finding.code == "WEBHOOK_DEGRADED" and finding.severity == "warning"
    assert finding.message == (
        f"the webhook's certificate Secret {NS}/azure-wi-webhook-server-cert is gone while its pods run ({NS}/wh-a: "
        f"FailedMount: {MOUNT}): they serve from the certificate they mounted, but its rotator cannot renew it, and "
        "the next webhook pod (a node drained or upgraded, an eviction) cannot mount it and never starts")
    assert finding.fix_lines()[1] == f"kubectl -n {NS} create secret generic azure-wi-webhook-server-cert"
    assert not [line for line in finding.fix_lines() if "rollout restart" in line]
    facts.webhook_cert_unmountable = []
    assert webhook_ready(ClusterContext(facts, None, ExpectConfig())).status == PASS
