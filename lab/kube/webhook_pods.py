"""The Workload ID webhook's pods: what runs behind ``azure-wi-webhook-webhook-service``.

The webhook's Deployment (``lab.kube.webhook.deployment``) is reconciled like any other: a ReplicaSet, two pods
the kubelet runs. Their ``manager`` container is played by the lab (an emulated image, see
``KubeCluster.emulated_images``): it writes the start-up lines of cmd/webhook/main.go as mlog's JSON, stays
running while the webhook is up, and writes every admission decision the API server's call produced (the
handler's ``logger.Error`` lines for denials; with ``--log-level=trace`` also controller-runtime's per-request
lines) to the log of the pod that served it, round robin over the ready pods as the Service spreads requests.

``lab ctl webhook --mode down`` makes the manager exit with an error, so the pods go to Error and
CrashLoopBackOff and the Deployment loses its available replicas, as on a cluster whose webhook cannot start.
The error text is the lab's own (the fault has no single real cause); it is written the way main.go reports a
fatal error. When the webhook is set up again, pods still waiting out their back-off are replaced at once (the
lab's shortcut for "the cause was fixed and the pods were restarted").

A configuration ``NewPodMutator`` refuses (``azure-wi-webhook-config`` without AZURE_TENANT_ID, an unknown
AZURE_ENVIRONMENT) makes a starting manager panic, as setupWebhook does; once every pod has crashed the API
server finds no endpoint behind the Service and refuses labelled pods with ``no endpoints available``.

The API server reaches these pods through the Service's ready Endpoints (:mod:`lab.kube.webhook_dispatch`):
while none is ready, labelled pods get ``no endpoints available`` (failurePolicy Fail). ReplicaSets refused while
the pods were crashed try again when a webhook pod serves again (the real controller's back-off retry gets there
later).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from typing import TYPE_CHECKING, Any

from lab.kube import webhook, webhook_tls
from lab.kube.resources import core_type

if TYPE_CHECKING:
    from lab.runtime import Lab

Obj = dict[str, Any]

WEBHOOK_IMAGE = "mcr.microsoft.com/oss/azure/workload-identity/webhook"
POLL_SECONDS = 0.1
DOWN_ERROR = "entrypoint: unable to run manager: lab fault: the webhook is down (lab ctl webhook --mode down)"
_turn = itertools.count()


def register(lab: Lab) -> None:
    """Let the kubelet run the webhook image (the registry in the settings may name another repository)."""
    lab.kube.emulated_images[WEBHOOK_IMAGE] = run_manager
    lab.kube.emulated_images[f"{lab.kube.webhook.proxy_image_registry}/webhook"] = run_manager


def _line(record: Obj, at: float | None = None) -> bytes:
    stamped = {"level": record["level"], "ts": at if at is not None else time.time(),
               **{k: v for k, v in record.items() if k != "level"}}
    return (json.dumps(stamped, separators=(",", ":")) + "\n").encode()


def startup_records(settings: webhook.WebhookSettings, namespace: str) -> list[Obj]:
    """cmd/webhook/main.go's entrypoint lines, in order (cert rotation is on: the chart and add-on keep it)."""
    return [
        {"level": "info", "logger": "entrypoint", "msg": "initializing metrics backend", "backend": "prometheus"},
        {"level": "info", "logger": "entrypoint", "msg": "setting up manager",
         "userAgent": f"azure-workload-identity/webhook/{settings.image_tag} (linux/amd64)"},
        {"level": "info", "logger": "entrypoint", "msg": "setting up cert rotation"},
        {"level": "info", "logger": "entrypoint", "msg": "added healthz and readyz check"},
        {"level": "info", "logger": "entrypoint", "msg": "starting manager"},
        {"level": "info", "logger": "entrypoint", "msg": "registering webhook to the webhook server"},
    ]


def config_data(lab: Lab, namespace: str) -> dict[str, str]:
    """azure-wi-webhook-config's data in the webhook's namespace (the manager's envFrom), {} when absent."""
    configmaps = lab.kube.store.type_for("", "configmaps")
    found = lab.kube.store.find(configmaps, namespace, webhook.CONFIGMAP_NAME) if configmaps else None
    return {str(k): str(v) for k, v in ((found or {}).get("data") or {}).items()}


def config_error(lab: Lab, namespace: str) -> str | None:
    """What NewPodMutator refuses in azure-wi-webhook-config (read through envFrom at container start):
    config.ParseConfig's required AZURE_TENANT_ID, getAzureAuthorityHost's unknown AZURE_ENVIRONMENT."""
    data = config_data(lab, namespace)
    if not data.get("AZURE_TENANT_ID"):
        return "AZURE_TENANT_ID is required"
    try:
        webhook.azure_authority_host(data.get("AZURE_ENVIRONMENT") or "AzurePublicCloud")
    except ValueError as exc:
        return f"failed to get AAD endpoint: {exc}"
    return None


async def run_manager(lab: Lab, pod: Obj, container: str, log: bytearray) -> int:
    """The manager container: start-up lines, then up until the webhook is set down (exit 1). A configuration
    NewPodMutator refuses panics in setupWebhook's goroutine (Go exits 2; only the panic's first line here)."""
    namespace = pod["metadata"].get("namespace", "")
    records = startup_records(lab.kube.webhook, namespace)
    for record in records[:-1]:
        log.extend(_line(record))
    if lab.kube.webhook.mode != "down":
        log.extend(_line(records[-1]))
        problem = config_error(lab, namespace)
        if problem is not None:
            log.extend(f"panic: unable to set up pod mutator: {problem}\n".encode())
            return 2
        # envFrom is resolved once, at container start: a ConfigMap edited later changes nothing until the pods
        # are made again (pkg/config ParseConfig reads the env in NewPodMutator, at start-up)
        lab.kube.webhook_pod_config[(namespace, pod["metadata"]["name"])] = config_data(lab, namespace)
        retry_refused_workloads(lab)
        rotating = webhook_tls.rotation_enabled(pod)
        while lab.kube.webhook.mode != "down":
            if rotating:  # cert-controller's rotator watching its Secret and the configuration (webhook_tls)
                with contextlib.suppress(Exception):
                    webhook_tls.reconcile(lab, namespace, pod["metadata"]["name"])
            await asyncio.sleep(POLL_SECONDS)
    log.extend(_line({"level": "error", "msg": DOWN_ERROR}))
    return 1


def image_version(image: str) -> tuple[str, tuple[int, int, int]] | None:
    """(tag, (major, minor, patch)) of a ``...webhook:vX.Y.Z[-suffix]`` image; None for a digest or another tag."""
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    parts = tag.removeprefix("v").split("-", 1)[0].split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return tag, (int(parts[0]), int(parts[1]), int(parts[2]))


def image_changes(settings: webhook.WebhookSettings, pod: Obj | None) -> dict[str, str]:
    """The token layout and image tag of the webhook version the serving pod runs (``kubectl set image``, a chart
    pinned with ``--set image.release=``): v1.0 to v1.5 mount /var/run/secrets/azure/tokens, v1.6.0 moved it to
    /var/run/secrets/azure/wi (reference azure-workload-identity.md 3, table 1.8); the proxy images it injects
    carry its own tag. A pod of an image the lab deployed (whatever layout the lab is set to now), or an image whose
    tag is not a version, changes nothing.
    unverified: the v0.x webhook's other behaviour (mutation on a ServiceAccount label) is not emulated."""
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        image = str(container.get("image") or "")
        if not image.split("@", 1)[0].rsplit(":", 1)[0].endswith("/webhook"):
            continue
        if image in settings.deployed_images:
            return {}
        found = image_version(image)
        if found is None or found[0] == settings.image_tag:
            return {}
        tag, version = found
        layout = "v1.5" if version < (1, 6, 0) else settings.layout if settings.layout != "v1.5" else "v1.6"
        return {"version": tag, **({"layout": layout} if layout != settings.layout else {})}
    return {}


def settings_of(lab: Lab, pod: Obj | None) -> webhook.WebhookSettings:
    """The settings the webhook pod that serves a call runs with: the lab's, with the AZURE_TENANT_ID and
    AZURE_ENVIRONMENT its manager read from azure-wi-webhook-config when it started (getTenantID falls back to
    config.TenantID; getAzureAuthorityHost maps the cloud). An environment the lab was set up with keeps the lab's
    own Entra as the authority host; another one injects that cloud's real host, as a real webhook would."""
    settings = lab.kube.webhook
    meta = (pod or {}).get("metadata") or {}
    started = lab.kube.webhook_pod_config.get((str(meta.get("namespace") or ""), str(meta.get("name") or "")))
    changes: dict[str, str] = image_changes(settings, pod)
    if not started:
        return dataclasses.replace(settings, **changes) if changes else settings
    if started.get("AZURE_TENANT_ID") and started["AZURE_TENANT_ID"] != settings.tenant_id:
        changes["tenant_id"] = started["AZURE_TENANT_ID"]
    cloud = started.get("AZURE_ENVIRONMENT") or "AzurePublicCloud"
    if cloud.upper() != settings.azure_environment.upper():
        with contextlib.suppress(ValueError):  # an unknown cloud never starts (config_error)
            changes["authority_host"] = webhook.azure_authority_host(cloud)
    return dataclasses.replace(settings, **changes) if changes else settings


def retry_refused_workloads(lab: Lab) -> None:
    """A webhook pod serves again: ReplicaSets whose pods were refused meanwhile try again now. (The real
    ReplicaSet controller requeues a failed sync with a growing back-off and so gets there at its next try.)"""
    controllers = getattr(lab.kube, "_controllers", None)
    if controllers is not None:
        asyncio.get_running_loop().call_later(POLL_SECONDS, controllers.reconcile_workloads)


# ---------------------------------------------------------------- decisions


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def serving_pods(lab: Lab) -> list[Obj]:
    """The Service's endpoints: ready pods of the webhook in the namespace the configuration calls."""
    settings = lab.kube.webhook
    pods_type = core_type(lab.kube.store, "pods")
    pods, _ = lab.kube.store.list(pods_type, settings.namespace, f"{webhook.SYSTEM_LABEL}=true")
    return sorted((p for p in pods if _ready(p) and not p["metadata"].get("deletionTimestamp")),
                  key=lambda p: p["metadata"]["name"])


def log_level_of(pod: Obj) -> str:
    """The manager's --log-level (as its flag parses it: the last one given), "" when not set."""
    level = ""
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == "manager":
            for arg in [*(container.get("command") or []), *(container.get("args") or [])]:
                if arg.startswith(("--log-level=", "-log-level=")):
                    level = arg.split("=", 1)[1]
    return level


def decision_log(lab: Lab, served_by: Obj | None = None) -> webhook.DecisionLog:
    """Where the webhook call of one admission writes its log lines: the manager log of the pod the API server
    reached (else one serving pod's, round robin), at that pod's own --log-level."""

    def write(records_at: webhook.Records) -> None:
        pods = [served_by] if served_by is not None else serving_pods(lab)
        if not pods:
            return
        pod = pods[next(_turn) % len(pods)]
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"], "manager")
        sink = lab.kube.pod_logs.get(key)
        if sink is None:
            return
        at = time.time()
        for record in records_at(log_level_of(pod)):
            sink.extend(_line(record, at))

    return write


def replace_crashed_pods(lab: Lab) -> None:
    """The webhook is up again: its pods waiting out a crash back-off are deleted so fresh ones start now."""
    pods_type = core_type(lab.kube.store, "pods")
    for install in webhook.installs_of(lab.kube.webhook):
        pods, _ = lab.kube.store.list(pods_type, install.namespace, f"{webhook.SYSTEM_LABEL}=true")
        for pod in pods:
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if not _ready(pod) and any("terminated" in (s.get("lastState") or {}) or "terminated" in
                                       (s.get("state") or {}) for s in statuses):
                with contextlib.suppress(Exception):
                    lab.kube.store.delete(pods_type, install.namespace, pod["metadata"]["name"])


async def settled(lab: Lab, timeout: float = 10.0) -> bool:
    """Wait until every webhook Deployment's status shows the mode (all ready when up, none when down)."""
    deployments = lab.kube.store.type_for("apps", "deployments")
    if deployments is None or getattr(lab, "kubelet", None) is None:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_settled(lab, deployments, install.namespace) for install in webhook.installs_of(lab.kube.webhook)):
            return True
        await asyncio.sleep(0.05)
    return False


def _settled(lab: Lab, deployments: Any, namespace: str) -> bool:
    mode = lab.kube.webhook.mode
    found = lab.kube.store.find(deployments, namespace, webhook.DEPLOYMENT_NAME)
    if mode == "absent":
        return found is None
    if found is None:
        return False
    status, wanted = found.get("status") or {}, (found.get("spec") or {}).get("replicas", 1)
    if mode == "up":
        return status.get("availableReplicas", 0) == wanted and status.get("replicas", 0) == wanted
    return not status.get("readyReplicas")
