"""The migration proxy (``azure.workload.identity/inject-proxy-sidecar``) as the workload's own pods got it.

The webhook reads both annotations from the pod it admits, on CREATE only (pkg/webhook/webhook.go
shouldInjectProxySidecar: the key's presence, whatever its value; getProxyPort: proxy-sidecar-port, 8000 when
absent). So the annotation on a Deployment's (StatefulSet's, DaemonSet's) own metadata, or put on a running pod
with ``kubectl annotate pod``, injects nothing: it must be in the pod template. The proxy listens on
``localhost:<port>`` (pkg/proxy: ``Addr: localhost:<port>``) inside the pod's network namespace, and azwi-proxy-init
redirects the pod's IMDS traffic there (init/init-iptables.sh, REDIRECT --to-port PROXY_PORT): an app container
that declares the same containerPort cannot listen on it once the proxy does (the proxy starts first: the webhook
puts it first among the containers, or as a native sidecar), or, the other way round, takes the IMDS traffic
meant for the proxy.

Pure: facts are the live pods and the controllers read beside them (harness.collect.live_pods).
"""

from __future__ import annotations

import json
from typing import Any

from harness.checks import remediation as fix
from harness.checks.model import ERROR, WARNING, Finding
from harness.checks.podspec import annotation, containers
from harness.commands import Step, advice
from harness.facts import LivePod

INJECT_PROXY_ANNOTATION = "azure.workload.identity/inject-proxy-sidecar"
PROXY_PORT_ANNOTATION = "azure.workload.identity/proxy-sidecar-port"
DEFAULT_PROXY_PORT = 8000
PROXY_CONTAINER = "azwi-proxy"
_TEMPLATED = ("Deployment", "StatefulSet", "DaemonSet")


def _template(live: LivePod) -> dict[str, Any] | None:
    return ((live.owner or {}).get("spec") or {}).get("template") if live.owner is not None else None


def _proxy(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in containers(pod, include_init=True) if c.get("name") == PROXY_CONTAINER), None)


def _port_of(value: str | None) -> int | None:
    """A proxy-sidecar-port value as a usable port (the webhook takes any base-10 int32; a port outside 1-65535
    fails the pod's validation after mutation instead)."""
    text = (value or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _declared_ports(pod: dict[str, Any]) -> dict[int, str]:
    """containerPort -> the container declaring it, for every container but the proxy."""
    found: dict[int, str] = {}
    for container in containers(pod, include_init=True):
        if container.get("name") == PROXY_CONTAINER:
            continue
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            if isinstance(number, int) and (port.get("protocol") or "TCP").upper() == "TCP":
                found.setdefault(number, str(container.get("name") or ""))
    return found


def template_annotations_set(kind: str, namespace: str, name: str, annotations: dict[str, str]) -> Step:
    """A merge patch setting annotations of a Deployment's, StatefulSet's or DaemonSet's pod template (the map is
    made when absent; the others stay), which rolls its pods out."""
    patch = {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}
    return fix.kubectl("patch", f"{kind.lower()}/{fix.object_or(name, '<name>')}", "-n", fix.namespace_or(namespace),
                       "--type", "merge", "-p", json.dumps(patch, separators=(",", ":")))


def _free_port(taken: set[int]) -> int:
    port = DEFAULT_PROXY_PORT
    while port in taken:
        port += 1
    return port


def proxy_findings(namespace: str, kind: str, name: str, members: list[LivePod]) -> list[Finding]:
    """The proxy asked for where the webhook does not read it, or given a port an app container declares."""
    if not members:
        return []
    live = members[0]
    template = _template(live)
    owner_meta = (live.owner or {}).get("metadata") or {}
    ref = f"{kind}/{name}"
    on_owner = INJECT_PROXY_ANNOTATION in (owner_meta.get("annotations") or {})
    in_template = annotation(template, INJECT_PROXY_ANNOTATION) is not None if template is not None else None
    pods_annotated = [m for m in members if annotation(m.pod, INJECT_PROXY_ANNOTATION) is not None]
    unproxied = [m for m in members if _proxy(m.pod) is None]
    findings: list[Finding] = []
    if kind in _TEMPLATED and in_template is False and unproxied and (on_owner or pods_annotated):
        where = (f"on {ref}'s own metadata.annotations" if on_owner else
                 "on the running pods (added by hand after they were made)")
        wanted = {INJECT_PROXY_ANNOTATION: "true"}
        port_value = (owner_meta.get("annotations") or {}).get(PROXY_PORT_ANNOTATION) or annotation(
            live.pod, PROXY_PORT_ANNOTATION)
        steps: list[Step] = []
        if port_value is not None and _port_of(port_value) is not None:
            wanted[PROXY_PORT_ANNOTATION] = str(_port_of(port_value))
        elif port_value is not None:
            steps.append(advice(f"{PROXY_PORT_ANNOTATION}={port_value[:20]!r} is no port number: left out, so the "
                                f"proxy listens on {DEFAULT_PROXY_PORT}"))
        message = (f"{ref}: {INJECT_PROXY_ANNOTATION} is {where}, not in its pod template: the webhook reads the "
                   "annotations of the pod it admits (on CREATE), so its pods run without the migration proxy "
                   "(no azwi-proxy): an app that still asks IMDS for tokens gets none")
        findings.append(Finding(
            "PROXY_SIDECAR_NOT_INJECTED", WARNING, "pod", message,
            {"owner": ref, "pods": [str((m.pod.get("metadata") or {}).get("name")) for m in unproxied][:10],
             "annotation_on": "owner" if on_owner else "pods"},
            [*steps, template_annotations_set(kind, namespace, name, wanted),
             advice("the template change rolls the pods out; the annotation on the controller's own metadata does "
                    "nothing and may stay or go")],
        ))
    clashes: list[tuple[str, int, str]] = []
    for member in members:
        proxy = _proxy(member.pod)
        if proxy is None:
            continue
        listening = next((p.get("containerPort") for p in proxy.get("ports") or []
                          if isinstance(p.get("containerPort"), int)), None)
        declared = _declared_ports(member.pod)
        if listening in declared:
            clashes.append((str((member.pod.get("metadata") or {}).get("name")), int(listening), declared[listening]))
    if clashes:
        pod, port, container = clashes[0]
        free = _free_port(set(_declared_ports(members[0].pod)))
        steps = ([template_annotations_set(kind, namespace, name, {PROXY_PORT_ANNOTATION: str(free)}),
                  advice(f"{free} is the first port from {DEFAULT_PROXY_PORT} no container of the pod declares; the "
                         "template change rolls the pods out with the proxy there")]
                 if kind in _TEMPLATED and template is not None else
                 [advice(f"set {PROXY_PORT_ANNOTATION} to a port no container of the pod declares in what makes "
                         f"{ref}'s pods, then make them again")])
        findings.append(Finding(
            "PROXY_SIDECAR_PORT_CLASH", ERROR, "pod",
            f"{ref}: the migration proxy listens on port {port} ({PROXY_PORT_ANNOTATION}, {DEFAULT_PROXY_PORT} when "
            f"unset), which container {container} declares too (pod {pod}): one of them cannot listen on it, and "
            "azwi-proxy-init sends the pod's IMDS traffic to that port",
            {"owner": ref, "port": port, "container": container, "pods": [c[0] for c in clashes][:10]},
            steps,
        ))
    return findings
