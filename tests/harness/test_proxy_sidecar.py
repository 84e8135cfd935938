"""The migration proxy as the workload's own pods got it: asked for where the webhook does not read it, or on a
port an app container declares (harness.checks.proxy_sidecar, pure)."""

from __future__ import annotations

from typing import Any

from harness.checks.proxy_sidecar import proxy_findings
from harness.facts import LivePod

INJECT = "azure.workload.identity/inject-proxy-sidecar"
PORT = "azure.workload.identity/proxy-sidecar-port"


def deployment(owner_annotations: dict[str, str] | None = None,
               template_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "backend", "namespace": "finance", "annotations": owner_annotations or {}},
            "spec": {"template": {"metadata": {"annotations": template_annotations or {}},
                                  "spec": {"containers": [{"name": "backend"}]}}}}


def pod(containers: list[dict[str, Any]], annotations: dict[str, str] | None = None,
        init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "backend-1", "namespace": "finance", "annotations": annotations or {}},
            "spec": {"containers": containers, "initContainers": init or []}}


def proxy(port: int) -> dict[str, Any]:
    return {"name": "azwi-proxy", "args": [f"--proxy-port={port}"], "ports": [{"containerPort": port}]}


def test_the_proxy_asked_for_on_the_deployment_not_its_template_is_named_with_a_template_patch() -> None:
    owner = deployment({INJECT: "true", PORT: "8080"})
    live = LivePod(pod([{"name": "backend"}]), "Deployment", "backend", owner)
    (finding,) = proxy_findings("finance", "Deployment", "backend", [live])
    assert finding.code == "PROXY_SIDECAR_NOT_INJECTED" and finding.severity == "warning"
    assert "Deployment/backend's own metadata.annotations" in finding.message
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type merge -p '{\"spec\":{\"template\":{\"metadata\":"
        "{\"annotations\":{\"azure.workload.identity/inject-proxy-sidecar\":\"true\","
        "\"azure.workload.identity/proxy-sidecar-port\":\"8080\"}}}}}'")


def test_the_proxy_annotated_on_running_pods_by_hand_is_named_too_and_a_bad_port_is_left_out() -> None:
    """kubectl annotate pod: the webhook acted on CREATE, before; the template never had it. A port value that is
    no number is not copied into the template (the webhook would refuse every new pod for it)."""
    live = LivePod(pod([{"name": "backend"}], {INJECT: "true", PORT: "80; rm -rf /"}), "Deployment", "backend",
                   deployment())
    (finding,) = proxy_findings("finance", "Deployment", "backend", [live])
    assert finding.code == "PROXY_SIDECAR_NOT_INJECTED" and "on the running pods" in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("# azure.workload.identity/proxy-sidecar-port=") and "is no port number" in lines[0]
    assert PORT not in lines[1] and '"azure.workload.identity/inject-proxy-sidecar":"true"' in lines[1]


def test_a_proxy_where_the_webhook_reads_it_or_none_asked_for_says_nothing() -> None:
    template = deployment(template_annotations={INJECT: "true"})
    injected = LivePod(pod([proxy(8000), {"name": "backend"}], {INJECT: "true"}, [{"name": "azwi-proxy-init"}]),
                       "Deployment", "backend", template)
    assert proxy_findings("finance", "Deployment", "backend", [injected]) == []
    plain = LivePod(pod([{"name": "backend"}]), "Deployment", "backend", deployment())
    assert proxy_findings("finance", "Deployment", "backend", [plain]) == []
    # a template that has it while the running pods predate it: a rollout in progress, not a misplaced annotation
    stale = LivePod(pod([{"name": "backend"}]), "Deployment", "backend", template)
    assert proxy_findings("finance", "Deployment", "backend", [stale]) == []


def test_a_migration_proxy_on_a_port_an_app_container_declares_is_a_clash() -> None:
    """No proxy-sidecar-port: the proxy listens on 8000, which the app declares as its own port; the fix sets the
    template's proxy-sidecar-port to the first port from 8000 that no container declares."""
    app = {"name": "backend", "ports": [{"containerPort": 8000}, {"containerPort": 8001}]}
    live = LivePod(pod([proxy(8000), app], {INJECT: "true"}, [{"name": "azwi-proxy-init"}]), "Deployment", "backend",
                   deployment(template_annotations={INJECT: "true"}))
    (finding,) = proxy_findings("finance", "Deployment", "backend", [live])
    assert finding.code == "PROXY_SIDECAR_PORT_CLASH" and finding.severity == "error"
    assert "port 8000" in finding.message and "container backend" in finding.message
    assert finding.fix_lines()[0] == (
        "kubectl patch deployment/backend -n finance --type merge -p '{\"spec\":{\"template\":{\"metadata\":"
        "{\"annotations\":{\"azure.workload.identity/proxy-sidecar-port\":\"8002\"}}}}}'")
    udp_only = {"name": "backend", "ports": [{"containerPort": 8000, "protocol": "UDP"}]}
    apart = LivePod(pod([proxy(8000), udp_only], {INJECT: "true"}), "Deployment", "backend",
                    deployment(template_annotations={INJECT: "true"}))
    assert proxy_findings("finance", "Deployment", "backend", [apart]) == []
