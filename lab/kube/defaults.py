"""API defaulting, as the API server applies it when it decodes an object (SetDefaults_* in k8s.io/api).

``apply_defaults(rt, obj, context)`` fills in what a real cluster would add, so that what clients read
back from the lab looks like what they read from AKS (``kubectl get pod -o yaml`` shows the same fields).
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
from collections.abc import Callable
from typing import Any

from lab.kube import netpol
from lab.kube.store import Obj, ResourceType

FILE_MODE_DEFAULT = 420  # 0644
SERVICE_CIDR = ipaddress.ip_network("10.0.0.0/16")
_cluster_ips = itertools.count(10)


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container_defaults(container: dict[str, Any]) -> None:
    container.setdefault("resources", {})
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def _volume_defaults(volume: dict[str, Any]) -> None:
    for source in ("projected", "configMap", "secret", "downwardAPI"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", FILE_MODE_DEFAULT)
    for projection in (volume.get("projected") or {}).get("sources") or []:
        token = projection.get("serviceAccountToken")
        if isinstance(token, dict):
            token.setdefault("expirationSeconds", 3600)
        for item in (projection.get("downwardAPI") or {}).get("items") or []:
            if isinstance(item.get("fieldRef"), dict):
                item["fieldRef"].setdefault("apiVersion", "v1")


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    spec.setdefault("serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    for container in itertools.chain(spec.get("initContainers") or [], spec.get("containers") or []):
        if isinstance(container, dict):
            _container_defaults(container)
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            _volume_defaults(volume)


def _qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(name)
        and (r.get("requests") or r.get("limits") or {}).get(name) == (r.get("limits") or {}).get(name)
        for r in resources
        for name in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _requests_from_limits(container: dict[str, Any]) -> None:
    """SetDefaults_Pod: a container's limits stand in for the requests it does not state (pods only)."""
    resources = container.get("resources")
    limits = resources.get("limits") if isinstance(resources, dict) else None
    if not isinstance(limits, dict) or not limits:
        return
    requests = resources.setdefault("requests", {})
    if isinstance(requests, dict):
        for name, value in limits.items():
            requests.setdefault(name, value)


def pod_defaults(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    pod_spec_defaults(spec)
    for container in itertools.chain(spec.get("initContainers") or [], spec.get("containers") or []):
        if isinstance(container, dict):
            _requests_from_limits(container)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos_class(spec))


def _template_defaults(obj: Obj) -> None:
    template = obj.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("metadata", {})
    pod_spec_defaults(template.setdefault("spec", {}))


def deployment_defaults(deployment: Obj) -> None:
    spec = deployment.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    # field by field, as SetDefaults_Deployment: kubectl's protobuf bodies carry an empty strategy struct
    strategy = spec["strategy"] = spec.get("strategy") or {}
    strategy["type"] = strategy.get("type") or "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy["rollingUpdate"] = strategy.get("rollingUpdate") or {}
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template_defaults(deployment)
    deployment.setdefault("status", {})


def daemonset_defaults(daemonset: Obj) -> None:
    spec = daemonset.setdefault("spec", {})
    strategy = spec["updateStrategy"] = spec.get("updateStrategy") or {}  # SetDefaults_DaemonSet, field by field
    strategy["type"] = strategy.get("type") or "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy["rollingUpdate"] = strategy.get("rollingUpdate") or {}
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template_defaults(daemonset)
    daemonset.setdefault(
        "status",
        {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0},
    )


def statefulset_defaults(statefulset: Obj) -> None:
    """SetDefaults_StatefulSet (pkg/apis/apps/v1/defaults.go), field by field."""
    spec = statefulset.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec["podManagementPolicy"] = spec.get("podManagementPolicy") or "OrderedReady"
    strategy = spec["updateStrategy"] = spec.get("updateStrategy") or {}
    strategy["type"] = strategy.get("type") or "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy["rollingUpdate"] = strategy.get("rollingUpdate") or {}
        rolling.setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = spec["persistentVolumeClaimRetentionPolicy"] = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    _template_defaults(statefulset)
    statefulset.setdefault("status", {"replicas": 0, "availableReplicas": 0})


def replicaset_defaults(replicaset: Obj) -> None:
    replicaset.setdefault("spec", {}).setdefault("replicas", 1)
    _template_defaults(replicaset)
    replicaset.setdefault("status", {"replicas": 0})


def job_defaults(job: Obj) -> None:
    spec = job.setdefault("spec", {})
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    _template_defaults(job)


def namespace_defaults(namespace: Obj) -> None:
    name = namespace.get("metadata", {}).get("name", "")
    namespace["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    namespace.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    namespace.setdefault("status", {}).setdefault("phase", "Active")


def secret_defaults(secret: Obj) -> None:
    secret.setdefault("type", "Opaque")
    string_data = secret.pop("stringData", None) or {}
    data = secret.setdefault("data", {}) if string_data else secret.get("data")
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()


def next_cluster_ip() -> str:
    return str(SERVICE_CIDR[next(_cluster_ips)])


def service_defaults(service: Obj) -> None:
    spec = service.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        spec.setdefault("clusterIP", next_cluster_ip())
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    service.setdefault("status", {"loadBalancer": {}})


def crd_defaults(crd: Obj) -> None:
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or []:
        version.setdefault("served", True)
    if len(spec.get("versions") or []) == 1:
        spec["versions"][0].setdefault("storage", True)


def crd_established_status(crd: Obj, now: str) -> dict[str, Any]:
    names = dict(crd.get("spec", {}).get("names") or {})
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": [v["name"] for v in crd.get("spec", {}).get("versions") or [] if v.get("storage")],
    }


def limit_range_defaults(limit_range: Obj) -> None:
    """SetDefaults_LimitRangeItem: a Container item's default limit falls back to max, its default request to
    the default limit, then to min."""
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = item.setdefault("default", {}) if isinstance(item.get("default", {}), dict) else {}
        request = (item.setdefault("defaultRequest", {}) if isinstance(item.get("defaultRequest", {}), dict)
                   else {})
        for source, target in (("max", default), ("default", request), ("min", request)):
            values = item.get(source) if source != "default" else default
            for name, value in (values or {}).items() if isinstance(values, dict) else ():
                target.setdefault(name, value)


DEFAULTERS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "pods"): pod_defaults,
    ("", "namespaces"): namespace_defaults,
    ("", "secrets"): secret_defaults,
    ("", "services"): service_defaults,
    ("", "limitranges"): limit_range_defaults,
    ("apps", "deployments"): deployment_defaults,
    ("apps", "daemonsets"): daemonset_defaults,
    ("apps", "replicasets"): replicaset_defaults,
    ("apps", "statefulsets"): statefulset_defaults,
    ("batch", "jobs"): job_defaults,
    ("apiextensions.k8s.io", "customresourcedefinitions"): crd_defaults,
    ("networking.k8s.io", "networkpolicies"): netpol.defaults,
}


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
    obj.setdefault("metadata", {})
    defaulter = DEFAULTERS.get(rt.group_resource)
    if defaulter is not None:
        defaulter(obj)
