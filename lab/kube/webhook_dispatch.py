"""Mutating admission webhooks as the API server's generic dispatcher calls them: from the
MutatingWebhookConfigurations stored in the API, not from ``lab ctl webhook``.

As staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook does for a CREATE:

* configurations in name order, each one's webhooks in order (generic/webhook.go, mutating/dispatcher.go);
* ``rules`` (predicates/rules/rules.go): operations, apiGroups, apiVersions and resources (``*`` for every
  resource without a subresource, ``*/*`` for all, ``<res>/<sub>``) each match on ``*`` or equality, and
  ``scope`` ``Namespaced`` wants a namespace, ``Cluster`` none, ``*`` (or unset) either;
* ``namespaceSelector`` (predicates/namespace): the namespace's labels (a Namespace's own), always a match for
  any other cluster-scoped object; ``objectSelector`` (predicates/object): the object's labels; both label
  selectors with matchLabels and In/NotIn/Exists/DoesNotExist expressions, an empty or absent selector matching
  everything;
* the AKS admissions enforcer on top (see :mod:`lab.kube.webhook`): kube-system and namespaces labelled
  ``control-plane: "true"`` or ``kubernetes.azure.com/managedby: aks`` are kept away from every webhook unless
  its configuration is annotated ``admissions.enforcer/disabled: "true"`` (AKS FAQ, Azure/AKS#4002);
* the call (webhook/client.go ``HookClient`` with the endpoint service resolver, util/proxy ``ResolveEndpoint``):
  ``clientConfig.service`` names a Service that must exist, not be ExternalName, have the port, and whose
  Endpoints have a ready address on that port's name, else ``service "x" not found`` / ``no service port N found
  for service "x"`` / ``endpoints "x" not found`` / ``no endpoints available for service "x"``. The address is
  dialled: the lab serves only pods running the Workload ID webhook image (``lab.kube.webhook_pods``) on the
  manager's port 9443 while the webhook is not set down (another path answers 404: ``the server could not
  find the requested resource``); any other address, a ``clientConfig.url``, or that webhook set down refuses
  the connection;
* the TLS handshake (:mod:`lab.kube.webhook_tls`): the serving pod's certificate (its ``cert`` Secret's tls.crt)
  verified against ``clientConfig.caBundle`` and ``<service>.<namespace>.svc`` (``tls: failed to verify
  certificate: x509: ...``); a pod whose Secret is gone serves no certificate the lab can check, and is let through;
* a failed call is ``failed calling webhook "<name>": failed to call webhook: Post "<url>?timeout=<n>s":
  <cause>`` (webhookutil.ErrCallingWebhook); ``failurePolicy: Ignore`` admits the object unmutated, ``Fail``
  (the v1 default) answers 500 InternalError ``Internal error occurred: <that>``.

ValidatingWebhookConfigurations made by hand (:func:`validate`) are matched the same way; the lab serves no
validating webhook (Gatekeeper's is evaluated by :mod:`lab.kube.gatekeeper`), so their calls fail as above.

Not emulated: ``matchConditions`` (CEL; a webhook carrying them is called as if they matched), reinvocation,
``matchPolicy: Equivalent`` conversions (pods have a single version), a ``clientConfig.url``'s TLS.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lab.kube import netpol, webhook, webhook_pods, webhook_tls
from lab.kube.errors import ApiError
from lab.kube.images import emulated_runner, parse_image
from lab.kube.labelselector import matches as selector_matches
from lab.kube.store import Obj, ResourceType, clone

if TYPE_CHECKING:
    from lab.runtime import Lab

log = logging.getLogger(__name__)

ENFORCER_OPT_OUT = "admissions.enforcer/disabled"
WEBHOOK_SERVER_PORT = 9443  # controller-runtime's webhook server default; the manager passes no --port
MUTATE_PATH = "/mutate-v1-pod"
_turn = itertools.count()


class CallError(Exception):
    """webhookutil.ErrCallingWebhook's Reason."""


@dataclass(frozen=True)
class Attributes:
    operation: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str


# ---------------------------------------------------------------- matching


def _match_list(values: list[str] | None, wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values or [])


def _resource_matches(resources: list[str] | None, attrs: Attributes) -> bool:
    for entry in resources or []:
        res, _, sub = entry.partition("/")
        if (res == "*" or res == attrs.resource) and (sub == "*" or sub == attrs.subresource):
            return True
    return False


def rule_matches(rule: Obj, attrs: Attributes) -> bool:
    scope = rule.get("scope") or "*"
    in_scope = scope == "*" or (scope == "Namespaced") == bool(attrs.namespace)
    return (in_scope and _match_list(rule.get("operations"), attrs.operation)
            and _match_list(rule.get("apiGroups"), attrs.group)
            and _match_list(rule.get("apiVersions"), attrs.version)
            and _resource_matches(rule.get("resources"), attrs))


def hook_applies(config: Obj, hook: Obj, attrs: Attributes, obj: Obj, namespace_labels: dict[str, str]) -> bool:
    if not any(rule_matches(rule, attrs) for rule in hook.get("rules") or []):
        return False
    labels = dict((obj.get("metadata") or {}).get("labels") or {})
    namespace = attrs.namespace
    if (attrs.group, attrs.resource, attrs.subresource) == ("", "namespaces", ""):
        # a Namespace is matched by its own labels (predicates/namespace GetNamespaceLabels)
        namespace, namespace_labels = (obj.get("metadata") or {}).get("name") or "", labels
    if namespace:
        if not selector_matches(hook.get("namespaceSelector"), namespace_labels):
            return False
        opted_out = ((config.get("metadata") or {}).get("annotations") or {}).get(ENFORCER_OPT_OUT) == "true"
        if not opted_out and webhook.namespace_excluded(namespace, namespace_labels):
            return False
    return selector_matches(hook.get("objectSelector"), labels)


# ---------------------------------------------------------------- calling


def _url(hook: Obj) -> str:
    client = hook.get("clientConfig") or {}
    timeout = hook.get("timeoutSeconds") or 10
    if client.get("url"):
        return f"{client['url']}?timeout={timeout}s"
    service = client.get("service") or {}
    path = service.get("path") or "/"
    return (f"https://{service.get('name')}.{service.get('namespace')}.svc:{service.get('port') or 443}"
            f"{path}?timeout={timeout}s")


def _lab_serves_without_pods(lab: Lab, namespace: str, name: str) -> bool:
    """A lab started without a kubelet runs no pods: the Service the lab made for its webhook stands for them."""
    settings = lab.kube.webhook
    return (getattr(lab, "kubelet", None) is None and settings.mode != "absent" and name == webhook.SERVICE_NAME
            and namespace in {install.namespace for install in webhook.installs_of(settings)})


def resolve(lab: Lab, namespace: str, name: str, port: int) -> tuple[str, int, Obj | None]:
    """proxy.ResolveEndpoint: (address, port, the endpoint's pod) or CallError with the resolver's text."""
    store = lab.kube.store
    service = store.objects.get(("", "services"), {}).get((namespace, name))
    if service is None:
        raise CallError(f'service "{name}" not found')
    spec = service.get("spec") or {}
    if spec.get("type", "ClusterIP") not in ("ClusterIP", "LoadBalancer", "NodePort"):
        raise CallError(f'unsupported service type "{spec.get("type")}"')
    service_port = next((p for p in spec.get("ports") or [] if p.get("port") == port), None)
    if service_port is None:
        raise CallError(f'no service port {port} found for service "{name}"')
    endpoints = store.objects.get(("", "endpoints"), {}).get((namespace, name))
    if endpoints is None:
        raise CallError(f'endpoints "{name}" not found')
    wanted = service_port.get("name", "")
    candidates = [(address, endpoint_port["port"]) for subset in endpoints.get("subsets") or []
                  for endpoint_port in subset.get("ports") or [] if endpoint_port.get("name", "") == wanted
                  for address in subset.get("addresses") or []]
    if not candidates:
        raise CallError(f'no endpoints available for service "{name}"')
    address, number = candidates[next(_turn) % len(candidates)]
    ref = address.get("targetRef") or {}
    pod = store.objects.get(("", "pods"), {}).get((ref.get("namespace", namespace), ref.get("name", "")))
    return address["ip"], number, pod


def _runs_webhook_image(lab: Lab, pod: Obj | None) -> bool:
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        if emulated_runner(lab.kube, parse_image(container.get("image") or "")) is webhook_pods.run_manager:
            return True
    return False


def _ingress_allowed(lab: Lab, pod: Obj, port: int) -> bool:
    """Whether the NetworkPolicies of the webhook pod's namespace let the API server's call in (none enforced on a
    cluster made without a NetworkPolicy engine)."""
    from lab import egress  # lab.egress imports lab.kube; imported here, as it is needed

    if not egress.enforced(lab):
        return True
    store = lab.kube.store
    policies = list(store.objects.get((netpol.GROUP, netpol.PLURAL), {}).values())
    ns_type = store.type_for("", "namespaces")
    kube_system = (store.find(ns_type, "", "kube-system") if ns_type else None) or {}
    labels = (kube_system.get("metadata") or {}).get("labels") or {}
    return netpol.ingress_from_api_server_allowed(policies, pod, port, labels)


def call(lab: Lab, hook: Obj, obj: Obj, namespace: str, get_service_account: webhook.ServiceAccountGetter) -> Obj:
    """Send the object to the webhook; the (maybe mutated) object, ApiError for a denial, CallError otherwise."""
    url = _url(hook)
    client = hook.get("clientConfig") or {}
    settings = lab.kube.webhook
    try:
        if client.get("url"):
            host = urlsplit(client["url"])
            raise CallError(f"dial tcp {host.hostname}:{host.port or 443}: connect: connection refused")
        service = client.get("service") or {}
        ns, name, port = service.get("namespace", ""), service.get("name", ""), service.get("port") or 443
        if _lab_serves_without_pods(lab, ns, name):
            if settings.mode == "down":
                raise CallError(f"dial tcp {webhook.SERVICE_CLUSTER_IP}:{port}: connect: connection refused")
            pod, pod_namespace = None, ns
        else:
            ip, number, pod = resolve(lab, ns, name, port)
            if pod is not None and not _ingress_allowed(lab, pod, number):
                # dropped, as a CNI drops what a NetworkPolicy does not allow: the API server waits out its timeout
                raise CallError("context deadline exceeded")
            if not _runs_webhook_image(lab, pod) or number != WEBHOOK_SERVER_PORT or settings.mode == "down":
                raise CallError(f"dial tcp {ip}:{number}: connect: connection refused")
            pod_namespace = str(((pod or {}).get("metadata") or {}).get("namespace") or ns)
        serving = webhook_tls.serving_cert(lab, pod, pod_namespace)
        if serving is not None:  # the handshake: the manager's certificate against caBundle and the Service's name
            problem = webhook_tls.verify(str(client.get("caBundle") or ""), serving, f"{name}.{ns}.svc")
            if problem is not None:
                raise CallError(problem)
        if (service.get("path") or "/") != MUTATE_PATH:
            raise CallError("the server could not find the requested resource")
        if settings.latency_ms >= 1000 * (hook.get("timeoutSeconds") or 10):
            # the API server's client gives up at the call's timeout: "...?timeout=10s": context deadline exceeded
            # (Azure/azure-workload-identity#1608, Azure/AKS#3897); a slower answer within it is not waited for
            raise CallError("context deadline exceeded")
    except CallError as exc:
        raise CallError(f"failed to call webhook: Post {webhook.go_quote(url)}: {exc}") from None
    if "spec" not in obj or obj.get("kind", "Pod") != "Pod":
        return obj  # the lab's webhook handles pods only
    return webhook.serve_pod(obj, namespace, webhook_pods.settings_of(lab, pod), get_service_account,
                             decision_log=webhook_pods.decision_log(lab, pod))


# ---------------------------------------------------------------- the dispatcher


def mutate(lab: Lab, rt: ResourceType, obj: Obj, namespace: str, namespace_labels: dict[str, str],
           get_service_account: webhook.ServiceAccountGetter, operation: str = "CREATE") -> Obj:
    """Run every matching mutating webhook in turn on ``obj``; returns the object to store."""
    store = lab.kube.store
    configs = sorted(store.objects.get(("admissionregistration.k8s.io", "mutatingwebhookconfigurations"), {}).items())
    if not configs:
        return obj
    attrs = Attributes(operation, rt.group, rt.version, rt.plural, "", namespace if rt.namespaced else "")
    for _, config in configs:
        for hook in config.get("webhooks") or []:
            if not hook_applies(config, hook, attrs, obj, namespace_labels):
                continue
            try:
                obj = call(lab, hook, clone(obj), namespace, get_service_account)
            except CallError as exc:
                _failed_call(hook, exc)
    return obj


def _failed_call(hook: Obj, exc: CallError) -> None:
    """A webhook that could not be called: ``failurePolicy: Ignore`` admits (logged, as the apiserver logs "failing
    open"), ``Fail`` (the v1 default) refuses with 500 InternalError (ErrCallingWebhook)."""
    cause = f'failed calling webhook "{hook.get("name")}": {exc}'
    if hook.get("failurePolicy", "Fail") == "Ignore":
        log.warning("Failed calling webhook, failing open %s: %s", hook.get("name"), cause)
        return
    raise ApiError(500, "InternalError", f"Internal error occurred: {cause}",
                   {"causes": [{"message": cause}]}) from None


def _call_unserved(lab: Lab, hook: Obj) -> None:
    """A call to a webhook the lab runs no server for: CallError with the resolver's text (no Service, no port, no
    endpoints) or, once resolved, a refused connection, as for any address nothing listens on."""
    client = hook.get("clientConfig") or {}
    try:
        if client.get("url"):
            host = urlsplit(client["url"])
            raise CallError(f"dial tcp {host.hostname}:{host.port or 443}: connect: connection refused")
        service = client.get("service") or {}
        ip, number, _ = resolve(lab, service.get("namespace", ""), service.get("name", ""),
                                service.get("port") or 443)
        raise CallError(f"dial tcp {ip}:{number}: connect: connection refused")
    except CallError as exc:
        raise CallError(f"failed to call webhook: Post {webhook.go_quote(_url(hook))}: {exc}") from None


def validate(lab: Lab, rt: ResourceType, obj: Obj, namespace: str, namespace_labels: dict[str, str],
             served: frozenset[str] = frozenset(), operation: str = "CREATE") -> None:
    """The ValidatingAdmissionWebhook plugin for the configurations made by hand (``served`` names those the lab
    evaluates itself, Gatekeeper's): the lab runs no validating webhook server, so a matching webhook (same rules,
    selectors and AKS enforcer as the mutating dispatcher) cannot be called; ``failurePolicy: Ignore`` admits the
    object, ``Fail`` (the v1 default) answers 500 InternalError, as validating/dispatcher.go does with
    apierrors.NewInternalError(ErrCallingWebhook)."""
    store = lab.kube.store
    configs = sorted(store.objects.get(("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
                                       {}).items())
    attrs = Attributes(operation, rt.group, rt.version, rt.plural, "", namespace if rt.namespaced else "")
    for (_, name), config in configs:
        if name in served:
            continue
        for hook in config.get("webhooks") or []:
            if not hook_applies(config, hook, attrs, obj, namespace_labels):
                continue
            try:
                _call_unserved(lab, hook)
            except CallError as exc:
                _failed_call(hook, exc)
