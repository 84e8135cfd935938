"""Endpoints and EndpointSlices of Services with a selector, and the ``default/kubernetes`` Service.

As the endpoints and endpointslice controllers do (pkg/controller/endpoint, pkg/controller/endpointslice): the
pods of the Service's namespace that its selector matches, have an IP and are not terminal or being deleted
are its endpoints, ready when their Ready condition is True (or when the Service publishes not-ready
addresses); each Service port's targetPort (a number, or a container port's name looked up in each pod) gives the
endpoint port. Endpoints carry them in ``subsets`` (addresses / notReadyAddresses), the EndpointSlice (named
``<service>-<random>``, labelled with the service name and the controller that manages it, owned by the
Service) in ``endpoints`` with ready/serving/terminating conditions. A Service without a selector is left to its
user. ``default/kubernetes`` is the API server's own Service, reconciled by the API server itself: ClusterIP
10.0.0.1 port 443 (https) in front of the lab's API server address.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from lab.kube.store import Obj, ResourceType, Store, WatchEvent

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
KUBERNETES_CLUSTER_IP = "10.0.0.1"

ENDPOINTS = ResourceType("", "v1", "endpoints", "Endpoints", True, short_names=("ep",))
SLICES = ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
SERVICES = ResourceType("", "v1", "services", "Service", True)
PODS = ResourceType("", "v1", "pods", "Pod", True)


def _type(store: Store, rt: ResourceType) -> ResourceType:
    return store.type_for(rt.group, rt.plural) or rt


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _target_port(service_port: dict[str, Any], pod: Obj) -> int | None:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == service_port.get("protocol", "TCP"):
                return port.get("containerPort")
    return None


def _selected(store: Store, service: Obj) -> list[Obj]:
    selector = (service.get("spec") or {}).get("selector") or {}
    namespace = service["metadata"]["namespace"]
    pods = [pod for (ns, _), pod in store.objects.get(("", "pods"), {}).items() if ns == namespace]
    return sorted((pod for pod in pods
                   if all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                   and (pod.get("status") or {}).get("podIP")
                   and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                   and not pod["metadata"].get("deletionTimestamp")),
                  key=lambda pod: pod["metadata"]["name"])


def _groups(service: Obj, pods: list[Obj]) -> dict[tuple[tuple[str, int, str], ...], list[tuple[Obj, bool]]]:
    """The pods grouped by the endpoint ports they resolve to, each with whether it is ready."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], list[tuple[Obj, bool]]] = {}
    for pod in pods:
        ports = []
        for service_port in spec.get("ports") or []:
            number = _target_port(service_port, pod)
            if number is not None:
                ports.append((service_port.get("name", ""), number, service_port.get("protocol", "TCP")))
        groups.setdefault(tuple(ports), []).append((pod, publish or _ready(pod)))
    return groups


def _port(name: str, number: int, protocol: str) -> dict[str, Any]:
    return {**({"name": name} if name else {}), "port": number, "protocol": protocol}


def _target_ref(pod: Obj) -> dict[str, Any]:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}


def endpoints_for(service: Obj, pods: list[Obj]) -> Obj:
    subsets = []
    for ports, members in _groups(service, pods).items():
        subset: dict[str, Any] = {}
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            addresses = [{"ip": pod["status"]["podIP"], **({"nodeName": pod["spec"]["nodeName"]}
                                                          if (pod.get("spec") or {}).get("nodeName") else {}),
                          "targetRef": _target_ref(pod)} for pod, is_ready in members if is_ready == ready]
            if addresses:
                subset[key] = addresses
        if ports:
            subset["ports"] = [_port(*port) for port in ports]
        subsets.append(subset)
    meta = service["metadata"]
    endpoints: Obj = {"metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                   **({"labels": dict(meta["labels"])} if meta.get("labels") else {})}}
    if subsets:
        endpoints["subsets"] = subsets
    return endpoints


def slice_for(service: Obj, pods: list[Obj], name: str) -> Obj:
    meta = service["metadata"]
    groups = _groups(service, pods)
    ports = next(iter(groups), tuple(_port_of_service(p) for p in (service.get("spec") or {}).get("ports") or []))
    return {
        "metadata": {
            "name": name, "namespace": meta["namespace"], "generateName": f"{meta['name']}-",
            "labels": {**(meta.get("labels") or {}), SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"], "uid": meta["uid"],
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [pod["status"]["podIP"]],
                       "conditions": {"ready": ready, "serving": ready, "terminating": False},
                       **({"nodeName": pod["spec"]["nodeName"]} if (pod.get("spec") or {}).get("nodeName") else {}),
                       "targetRef": _target_ref(pod)}
                      for members in groups.values() for pod, ready in members],
        "ports": [_port(*port) for port in ports],
    }


def _port_of_service(service_port: dict[str, Any]) -> tuple[str, int, str]:
    target = service_port.get("targetPort", service_port.get("port"))
    return (service_port.get("name", ""), target if isinstance(target, int) else service_port.get("port", 0),
            service_port.get("protocol", "TCP"))


def _same(current: Obj, wanted: Obj, fields: tuple[str, ...]) -> bool:
    meta = current.get("metadata") or {}
    return all(current.get(f) == wanted.get(f) for f in fields) and (
        meta.get("labels") or {}) == (wanted["metadata"].get("labels") or {})


def _put(store: Store, rt: ResourceType, current: Obj | None, wanted: Obj, fields: tuple[str, ...]) -> None:
    if current is None:
        store.create(rt, wanted, wanted["metadata"]["namespace"])
    elif not _same(current, wanted, fields):
        updated = copy.deepcopy(current)
        updated["metadata"]["labels"] = wanted["metadata"].get("labels") or {}
        for field in fields:
            updated.pop(field, None)
            if field in wanted:
                updated[field] = wanted[field]
        store.replace(rt, updated, check_version=False)


def _slices_of(store: Store, namespace: str, name: str) -> list[Obj]:
    return [obj for (ns, _), obj in store.objects.get(("discovery.k8s.io", "endpointslices"), {}).items()
            if ns == namespace and (obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
            and (obj["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY]


def reconcile(store: Store, namespace: str, name: str) -> None:
    """Bring one Service's Endpoints and EndpointSlice in line with its pods (remove them with the Service)."""
    endpoints_type, slices_type = _type(store, ENDPOINTS), _type(store, SLICES)
    service = store.objects.get(("", "services"), {}).get((namespace, name))
    slices = _slices_of(store, namespace, name)
    current = store.objects.get(("", "endpoints"), {}).get((namespace, name))
    if (namespace, name) == ("default", "kubernetes"):
        return  # the API server's own, kept by ensure_kubernetes_service
    if service is None or not (service.get("spec") or {}).get("selector"):
        if service is None and current is not None:
            store.delete(endpoints_type, namespace, name)
        for obj in slices:
            store.delete(slices_type, namespace, obj["metadata"]["name"])
        return
    pods = _selected(store, service)
    _put(store, endpoints_type, current, endpoints_for(service, pods), ("subsets",))
    slice_name = slices[0]["metadata"]["name"] if slices else f"{name}-{uuid.uuid4().hex[:5]}"
    _put(store, slices_type, slices[0] if slices else None, slice_for(service, pods, slice_name),
         ("addressType", "endpoints", "ports"))
    for extra in slices[1:]:
        store.delete(slices_type, namespace, extra["metadata"]["name"])


def ensure_kubernetes_service(store: Store, host: str, port: int) -> None:
    """The API server's own Service in default, with its Endpoints and EndpointSlice named kubernetes."""
    services, endpoints_type, slices_type = _type(store, SERVICES), _type(store, ENDPOINTS), _type(store, SLICES)
    if store.find(services, "default", "kubernetes") is None:
        store.create(services, {
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_CLUSTER_IP, "clusterIPs": [KUBERNETES_CLUSTER_IP],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                     "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
            "status": {"loadBalancer": {}},
        }, "default")
    wanted_ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    _put(store, endpoints_type, store.find(endpoints_type, "default", "kubernetes"), {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": host}], "ports": wanted_ports}],
    }, ("subsets",))
    _put(store, slices_type, store.find(slices_type, "default", "kubernetes"), {
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
        "ports": wanted_ports,
    }, ("addressType", "endpoints", "ports"))


class EndpointsController:
    """A store listener: a Service or a pod changed, so reconcile the Services of that namespace it concerns."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.busy = False
        store.listeners.append(self)
        for namespace, name in list(store.objects.get(("", "services"), {})):
            reconcile(store, namespace, name)

    def __call__(self, event: WatchEvent) -> None:
        if self.busy or event.resource not in (("", "services"), ("", "pods")):
            return
        meta = event.object.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if event.resource == ("", "services"):
            names = [meta.get("name", "")]
        else:
            names = [name for (ns, name), service in self.store.objects.get(("", "services"), {}).items()
                     if ns == namespace and (service.get("spec") or {}).get("selector")]
        self.busy = True
        try:
            for name in names:
                reconcile(self.store, namespace, name)
        finally:
            self.busy = False
