"""The lab's control API: what no public API can change (faults, webhook outages, clock skew, policy engines...).

``python -m lab ctl`` is its client. Every route takes and returns JSON and needs the control token
from lab.json as a bearer token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab import bodies, egress
from lab.azure.metadata_cache import MAX_SECONDS as MAX_CACHE_SECONDS
from lab.faults import SERVICES, Handler
from lab.kube.issuer import rotate_issuer_keys, set_stale_jwks
from lab.unexpected import unexpected_error_middleware

if TYPE_CHECKING:
    from lab.runtime import Lab

Command = Callable[["Lab", dict[str, Any]], dict[str, Any]]
MAX_BODY_BYTES = 64 * 1024  # control commands are a few fields


class ControlError(ValueError):
    """Bad control input: answered 400 with this message."""


def _number(body: dict[str, Any], key: str, minimum: float = 0.0, maximum: float | None = None) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ControlError(f"{key}: a number is required")
    if value < minimum or (maximum is not None and value > maximum):
        raise ControlError(f"{key}: must be between {minimum} and {maximum}" if maximum is not None
                           else f"{key}: must be >= {minimum}")
    return float(value)


def sync_webhook_objects(lab: Lab) -> None:
    """Make the webhook's API objects reflect its mode: present and ready (up), not ready (down), gone (absent)."""
    from lab.kube.webhook import INSTALLS, webhook_objects

    store = lab.kube.store
    installed = [
        found
        for install in INSTALLS
        for found in webhook_objects(dataclasses.replace(lab.kube.webhook, mode="up", install=install))
    ]
    wanted = {(g, p, ns, o["metadata"]["name"]): o for g, p, ns, o in webhook_objects(lab.kube.webhook)}
    namespaces = store.type_for("", "namespaces")
    for namespace in sorted({ns for _, _, ns, _ in wanted if ns}):
        if store.find(namespaces, "", namespace) is None:  # helm install --create-namespace
            store.create(namespaces, {
                "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
            })
            store.create(store.type_for("", "serviceaccounts"), {"metadata": {"name": "default"}}, namespace=namespace)
    for group, plural, namespace, obj in installed:
        rt = store.type_for(group, plural)
        key = (group, plural, namespace, obj["metadata"]["name"])
        current = store.find(rt, namespace, obj["metadata"]["name"])
        if key not in wanted:
            if current:
                store.delete(rt, namespace, obj["metadata"]["name"])
        elif current is None:
            store.create(rt, wanted[key], namespace=namespace or None)
        elif _helm_owner(current) != _helm_owner(wanted[key]):
            # a cluster-scoped object (the MutatingWebhookConfiguration, the ClusterRole) another install now
            # owns: the add-on turned off deletes its own, and helm install creates the chart's, with the
            # chart's release in its ownership annotations (helm refuses to adopt another release's object)
            store.delete(rt, namespace, obj["metadata"]["name"])
            store.create(rt, wanted[key], namespace=namespace or None)
        else:
            store.replace(rt, {**current, **{k: v for k, v in wanted[key].items() if k != "metadata"}},
                          check_version=False)


def _helm_owner(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get("meta.helm.sh/release-name"), annotations.get("meta.helm.sh/release-namespace")


def set_webhook(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    from lab.kube.webhook import INSTALLS, LAYOUTS, namespace_for
    from lab.kube.webhook_pods import replace_crashed_pods

    mode = body.get("mode", lab.kube.webhook.mode)
    layout = body.get("layout", lab.kube.webhook.layout)
    install = body.get("install", lab.kube.webhook.install)
    latency_ms = body.get("latency_ms", lab.kube.webhook.latency_ms)
    if not isinstance(latency_ms, int) or isinstance(latency_ms, bool) or latency_ms < 0:
        raise ControlError("latency_ms: must be a whole number of milliseconds, 0 or more")
    if not {"mode", "layout", "install"} & body.keys():  # the latency alone: hand edits of its objects stay
        lab.kube.webhook.latency_ms = latency_ms
        return {"mode": mode, "layout": layout, "install": install, "latency_ms": latency_ms}
    if mode not in ("up", "down", "absent"):
        raise ControlError("mode: must be one of up, down, absent")
    if layout not in LAYOUTS:
        raise ControlError(f"layout: must be one of {', '.join(LAYOUTS)}")
    if install not in INSTALLS:
        raise ControlError(f"install: must be one of {', '.join(INSTALLS)}")
    if install != lab.kube.webhook.install:
        # Moving to the chart means turning the add-on off first (as its docs say); both means turning it on
        # over a chart (the collision of Azure/azure-workload-identity#1295). ARM's flag follows the add-on.
        for cluster in lab.azure.clusters.values():
            cluster.workload_identity_enabled = install != "helm"
    lab.kube.webhook.mode = mode
    lab.kube.webhook.layout = layout
    lab.kube.webhook.install = install
    lab.kube.webhook.latency_ms = latency_ms
    lab.kube.webhook.namespace = namespace_for(install)
    sync_webhook_objects(lab)
    if mode == "up":
        replace_crashed_pods(lab)
    controllers = getattr(lab.kube, "_controllers", None)
    if controllers is not None:
        controllers.reconcile_workloads()  # ReplicaSets retry the pods the webhook refused
    return {"mode": mode, "layout": layout, "install": install, "latency_ms": latency_ms}


def follow_workload_identity_addon(lab: Lab, name: str, resource_group: str, enabled: bool) -> None:
    """What AKS does when a managed cluster's securityProfile.workloadIdentity.enabled changes (``az aks update
    --enable-workload-identity`` / ``--disable-workload-identity``): it installs or removes ITS webhook, the
    add-on's objects in kube-system. A chart installed by hand stays where it is. Any PUT that says enabled
    reconciles the add-on, as AKS does: a webhook deleted or edited by hand comes back as the add-on ships it. Only
    the managed cluster that is the lab's Kubernetes cluster (lab.json ``cluster``) has a webhook to follow."""
    own = lab.extra.get("cluster") or {}
    if (name.lower(), resource_group.lower()) != (str(own.get("name")).lower(), str(own.get("resource_group")).lower()):
        return
    hook = lab.kube.webhook
    if enabled and hook.mode == "absent":
        change = {"mode": "up", "install": "addon"}
    elif enabled and hook.install == "helm":
        change = {"install": "both"}
    elif not enabled and hook.mode != "absent" and hook.install == "both":
        change = {"install": "helm"}
    elif not enabled and hook.mode != "absent" and hook.install == "addon":
        change = {"mode": "absent"}
    else:
        if enabled:  # the add-on manager puts its objects back as it ships them (a hand-edited webhook too)
            sync_webhook_objects(lab)
        return
    set_webhook(lab, change)
    for cluster in lab.azure.clusters.values():
        cluster.workload_identity_enabled = enabled


def set_issuer(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("rotate_keys"):
        keep = {"keep_old_for_seconds": _number(body, "keep_old_seconds")} if "keep_old_seconds" in body else {}
        rotate_issuer_keys(lab, **keep)
    if "unreachable" in body:
        lab.faults.issuer_unreachable = bool(body["unreachable"])
    if "stale_jwks" in body:
        set_stale_jwks(lab, bool(body["stale_jwks"]))
    frozen = lab.kube.issuer_jwks_frozen
    return {"unreachable": lab.faults.issuer_unreachable,
            "kids": [key.kid for key in lab.kube.issuer_keys.published()],
            "published_kids": [key.get("kid") for key in frozen["keys"]] if frozen is not None else None}


def set_kubelet(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    lab.kube.pod_start_latency_seconds = _number(body, "pod_start_latency_seconds", 0, 600)
    return {"pod_start_latency_seconds": lab.kube.pod_start_latency_seconds}


def set_clock(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    lab.entra_clock.skew_seconds = _number(body, "skew_seconds", -10 * 86400, 10 * 86400)
    return {"entra_skew_seconds": lab.entra_clock.skew_seconds}


def set_fault(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    service = body.get("service")
    if service not in SERVICES:
        raise ControlError(f"service: must be one of {', '.join(SERVICES)}")
    current = lab.faults.services[service]
    wanted = dataclasses.replace(current)  # validate everything before changing anything
    if "latency_ms" in body:
        wanted.latency_ms = int(_number(body, "latency_ms", 0, 120_000))
    if "rate_429" in body:
        wanted.rate_429 = _number(body, "rate_429", 0, 1)
    if "rate_503" in body:
        wanted.rate_503 = _number(body, "rate_503", 0, 1)
    if "retry_after_seconds" in body:
        wanted.retry_after_seconds = int(_number(body, "retry_after_seconds", 0, 3600))
    if wanted.rate_429 + wanted.rate_503 > 1:
        raise ControlError("rate_429 + rate_503: must not exceed 1")
    watch = dataclasses.replace(lab.faults.watch)
    for key, kind in (("watch_expire", "expire"), ("watch_drop", "drop")):
        if key in body:
            if service != "kube":
                raise ControlError(f"{key}: only the kube service has watches")
            setattr(watch, kind, int(_number(body, key, 0, 10_000)))
    seed = int(_number(body, "seed", 0, 2**32)) if "seed" in body else None
    for setting in dataclasses.fields(wanted):
        setattr(current, setting.name, getattr(wanted, setting.name))
    lab.faults.watch.expire, lab.faults.watch.drop = watch.expire, watch.drop
    if seed is not None:  # reproducible rolls (one generator for every service)
        lab.faults.rng.seed(seed)
    if service == "kube":
        return {service: {**current.as_dict(), "watch": dataclasses.asdict(lab.faults.watch)}}
    return {service: current.as_dict()}


def set_egress(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    for key, add in (("block", True), ("unblock", False)):
        services = body.get(key, [])
        if not isinstance(services, list):
            raise ControlError(f"{key}: a list of services is required")
        for service in services:
            if service not in SERVICES:
                raise ControlError(f"{key}: unknown service {service!r}; choose from {', '.join(SERVICES)}")
            (lab.faults.egress_blocked.add if add else lab.faults.egress_blocked.discard)(service)
    egress.sync_fault_policies(lab)  # the fault is a NetworkPolicy per namespace, enforced by the pods' relays
    return {"egress_blocked": egress.blocked_services(lab), "pod_network_isolated": _pods_isolated(lab)}


def _pods_isolated(lab: Lab) -> bool:
    kubelet = getattr(lab, "kubelet", None)
    return bool(kubelet and kubelet.sandbox.network)


def set_propagation(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    if "fic_seconds" in body:
        lab.azure.fic_propagation_seconds = _number(body, "fic_seconds", 0, 3600)
    if "role_seconds" in body:
        lab.azure.role_propagation_seconds = _number(body, "role_seconds", 0, 3600)
    return {"fic_seconds": lab.azure.fic_propagation_seconds, "role_seconds": lab.azure.role_propagation_seconds}


def set_entra(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    """How long Entra keeps an issuer's discovery document and JWKS (lab.azure.metadata_cache); 0 turns it off.
    A new length starts the cache afresh: what Entra held before is dropped, never revived by a longer setting."""
    if "metadata_cache_seconds" in body:
        cache = lab.azure.issuer_metadata
        cache.seconds = _number(body, "metadata_cache_seconds", 0, MAX_CACHE_SECONDS)
        cache.entries.clear()
    return lab.azure.issuer_metadata.snapshot()


def set_cluster(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    """What the managed cluster was made with that ARM cannot change now: ``oidc_issuer`` false is a cluster
    created before its OIDC issuer was enabled (AKS refuses to turn an enabled one off: ARM answers
    OIDCIssuerFeatureCannotBeDisabled); ``az aks update --enable-oidc-issuer`` turns it on. ``network_policy``
    "none" is a cluster created without a NetworkPolicy engine (the lab's default is Cilium's, which AKS cannot
    uninstall)."""
    own = lab.extra.get("cluster") or {}
    cluster = next((c for c in lab.azure.clusters.values()
                    if (c.name.lower(), c.resource_group.lower())
                    == (str(own.get("name")).lower(), str(own.get("resource_group")).lower())), None)
    if cluster is None:
        raise ControlError("this lab has no managed cluster")
    if "oidc_issuer" in body:
        if not isinstance(body["oidc_issuer"], bool):
            raise ControlError("oidc_issuer: true or false is required")
        cluster.oidc_issuer_enabled = body["oidc_issuer"]
    if "network_policy" in body:  # made with or without a NetworkPolicy engine: each pod's relay follows it
        if body["network_policy"] not in ("cilium", "none"):
            raise ControlError("network_policy: cilium or none is required")
        cluster.network_policy = body["network_policy"]
        if lab.pod_manifests is not None:
            lab.pod_manifests.refresh()
    return {"name": cluster.name, "oidc_issuer": cluster.oidc_issuer_enabled, "network_policy": cluster.network_policy}


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ControlError(f"{key}: a non-empty string is required")
    if len(value) > limit:
        raise ControlError(f"{key}: at most {limit} characters")
    return value


def set_policy(lab: Lab, body: dict[str, Any]) -> dict[str, Any]:
    """An Azure Policy / Gatekeeper refusal: ``deny`` installs Gatekeeper's webhook and a constraint refusing new
    pods in a namespace (lab.kube.gatekeeper), ``allowed-repos`` one refusing pods whose images start with none of
    the given prefixes (gatekeeper-library's K8sAllowedRepos), ``container-limits`` one refusing containers without
    cpu and memory limits or above the given maxima (K8sContainerLimits); ``clear`` removes them again."""
    import base64

    from lab.clock import rfc3339
    from lab.kube import gatekeeper

    store = lab.kube.store
    action = body.get("action")
    if action == "deny":
        namespace = _policy_namespace(body)
        message = _text(body, "message", 4096)
        name = body.get("constraint") or gatekeeper.default_constraint_name(namespace)
        _check_constraint_name(name)
        ca_bundle = base64.b64encode(lab.tls.ca_pem).decode()
        gatekeeper.deny(store, ca_bundle, rfc3339(), name, namespace, message)
    elif action == "allowed-repos":
        namespace = _policy_namespace(body)
        repos = body.get("repos")
        if not isinstance(repos, list) or not repos or not all(isinstance(r, str) and r and len(r) <= 512
                                                               for r in repos):
            raise ControlError("repos: a non-empty list of image prefixes is required")
        name = body.get("constraint") or f"allowed-repos-{namespace}"
        _check_constraint_name(name)
        ca_bundle = base64.b64encode(lab.tls.ca_pem).decode()
        gatekeeper.allow_repos(store, ca_bundle, rfc3339(), name, namespace, repos)
    elif action == "container-limits":
        namespace = _policy_namespace(body)
        cpu, memory = _text(body, "cpu", 32), _text(body, "memory", 32)
        for key, value in (("cpu", cpu), ("memory", memory)):
            if not (key == "cpu" and value == "-1") and not _is_quantity(value):
                raise ControlError(f"{key}: {value!r} is not a quantity (e.g. 500m, 1, 512Mi)")
        name = body.get("constraint") or f"container-limits-{namespace}"
        _check_constraint_name(name)
        ca_bundle = base64.b64encode(lab.tls.ca_pem).decode()
        gatekeeper.limit_containers(store, ca_bundle, rfc3339(), name, namespace, cpu, memory)
    elif action == "clear":
        gatekeeper.clear(store)
        controllers = getattr(lab.kube, "_controllers", None)
        if controllers is not None:
            controllers.reconcile_workloads()  # ReplicaSets retry the pods the policy refused
    else:
        raise ControlError("action: must be one of deny, allowed-repos, container-limits, clear")
    return _policy_state(lab)


def _policy_namespace(body: dict[str, Any]) -> str:
    from lab.kube.store import name_problems

    namespace = _text(body, "namespace", 63)
    if name_problems(namespace, label_only=True):
        raise ControlError(f"namespace: {namespace!r} is not a valid namespace name")
    return namespace


def _check_constraint_name(name: Any) -> None:
    from lab.kube.store import name_problems

    if not isinstance(name, str) or name_problems(name, label_only=False):
        raise ControlError(f"constraint: {name!r} is not a valid object name")


def _is_quantity(value: str) -> bool:
    from lab.kube.quantity import Quantity, QuantityError

    try:
        Quantity.parse(value)
    except (QuantityError, ValueError):
        return False
    return True


def _policy_state(lab: Lab) -> dict[str, Any]:
    from lab.kube import gatekeeper

    store = lab.kube.store
    configurations = store.type_for("admissionregistration.k8s.io", "validatingwebhookconfigurations")
    installed = configurations is not None and store.find(configurations, "", gatekeeper.CONFIGURATION_NAME)
    return {"webhook": gatekeeper.WEBHOOK_NAME if installed else None,
            "configuration": gatekeeper.CONFIGURATION_NAME if installed else None,
            "constraints": gatekeeper.constraints(store)}


def status(lab: Lab, _: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": lab.scenario,
        "webhook": {"mode": lab.kube.webhook.mode, "layout": lab.kube.webhook.layout,
                    "install": lab.kube.webhook.install, "latency_ms": lab.kube.webhook.latency_ms},
        "pod_start_latency_seconds": lab.kube.pod_start_latency_seconds,
        "entra_skew_seconds": lab.entra_clock.skew_seconds,
        "propagation": {"fic_seconds": lab.azure.fic_propagation_seconds,
                        "role_seconds": lab.azure.role_propagation_seconds},
        "entra": lab.azure.issuer_metadata.snapshot(),
        "faults": lab.faults.snapshot(),
        "issuer_kids": [key.kid for key in lab.kube.issuer_keys.published()],
        "policy": _policy_state(lab),
    }


def set_outage(lab: Lab, body: dict[str, Any]) -> Any:
    """A service hard down (its listeners closed: connections refused) or back up (lab/outage.py)."""
    from lab.outage import set_down

    service = body.get("service")
    if service not in SERVICES:
        raise ControlError(f"service: must be one of {', '.join(SERVICES)}")
    if not isinstance(body.get("down"), bool):
        raise ControlError("down: true or false is required")
    return set_down(lab, service, body["down"])


COMMANDS: dict[str, Command] = {
    "status": status,
    "webhook": set_webhook,
    "issuer": set_issuer,
    "kubelet": set_kubelet,
    "clock": set_clock,
    "fault": set_fault,
    "egress": set_egress,
    "propagation": set_propagation,
    "entra": set_entra,
    "cluster": set_cluster,
    "policy": set_policy,
    "outage": set_outage,
}


def build_app(lab: Lab) -> web.Application:
    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(supplied, lab.control_token):
            return web.json_response({"error": "missing or wrong control token"}, status=401)
        return await handler(request)

    async def run(request: web.Request) -> web.Response:
        command = COMMANDS.get(request.match_info["command"])
        if command is None:
            return web.json_response({"error": f"unknown command; choose from {', '.join(COMMANDS)}"}, status=404)
        try:
            text = await request.text() if request.can_read_body else "{}"
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": f"body: larger than {MAX_BODY_BYTES} bytes"}, status=413)
        except UnicodeDecodeError:
            return web.json_response({"error": "body: not valid JSON"}, status=400)
        if bodies.json_too_deep(text) is not None:
            return web.json_response(
                {"error": f"body: nested deeper than {bodies.MAX_NESTING_DEPTH} levels"}, status=400)
        try:
            body = json.loads(text)
        except ValueError:
            return web.json_response({"error": "body: not valid JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body: a JSON object is required"}, status=400)
        try:
            answer = command(lab, body)
            if asyncio.iscoroutine(answer):
                answer = await answer
            if command is set_webhook:  # answer once the webhook's pods show the new mode, as a rollout waits
                from lab.kube.webhook_pods import settled

                await settled(lab)
            return web.json_response(answer)
        except ControlError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    def internal_error(_: web.Request) -> web.Response:
        return web.json_response({"error": "the lab failed on this command; its log has the details"}, status=500)

    app = web.Application(middlewares=[require_token, unexpected_error_middleware("control", internal_error)],
                          client_max_size=MAX_BODY_BYTES)
    app.router.add_route("*", "/ctl/{command}", run)
    return app
