"""The webhook version a pod runs decides its token layout: ``kubectl set image`` of the webhook's Deployment (or a
chart pinned to a release) changes what the API server's calls inject, as a real webhook binary would."""

from __future__ import annotations

import pytest

from lab.kube.webhook import WebhookSettings
from lab.kube.webhook_pods import image_changes, image_version

REPO = "mcr.microsoft.com/oss/azure/workload-identity/webhook"


def pod(image: str) -> dict:
    return {"spec": {"containers": [{"name": "manager", "image": image}]}}


@pytest.mark.parametrize(("image", "expected"), [
    (f"{REPO}:v1.6.0", ("v1.6.0", (1, 6, 0))),
    (f"{REPO}:v1.6.0-alpha.1", ("v1.6.0-alpha.1", (1, 6, 0))),
    ("myregistry:5000/mirror/workload-identity/webhook:v1.0.0", ("v1.0.0", (1, 0, 0))),
    (f"{REPO}:latest", None),
    (f"{REPO}@sha256:abc", None),
])
def test_the_version_is_read_from_the_tag(image: str, expected: tuple | None) -> None:
    assert image_version(image) == expected


@pytest.mark.parametrize(("configured", "image", "changes"), [
    ("v1.5", f"{REPO}:v1.5.1", {}),  # the lab's own image
    ("v1.5", f"{REPO}:v1.6.0", {"version": "v1.6.0", "layout": "v1.6"}),  # upgraded by hand: /wi
    ("v1.5", f"{REPO}:v1.0.0", {"version": "v1.0.0"}),  # pinned older: still /tokens
    ("v1.6", f"{REPO}:v1.4.0", {"version": "v1.4.0", "layout": "v1.5"}),  # downgraded: back to /tokens
    ("pr1749", f"{REPO}:v1.7.0", {"version": "v1.7.0"}),  # a newer release keeps the newer layout
    ("v1.5", f"{REPO}:latest", {}),
    ("v1.5", "busybox:1.36", {}),
])
def test_a_webhook_pod_of_another_version_serves_with_that_versions_layout(
    configured: str, image: str, changes: dict
) -> None:
    assert image_changes(WebhookSettings(layout=configured), pod(image)) == changes
