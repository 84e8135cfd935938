"""What the Kubernetes API says about the webhook and the workloads' ServiceAccounts."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from harness.checks.podspec import controller_of, service_account_of
from harness.collect.kube_api import KubeApi, KubeError
from harness.facts import ServiceAccountFacts, WebhookPodNotStarted, WebhookPodUnscheduled
from harness.names import (
    CLIENT_ID_ANNOTATION,
    MWC_PREFIX,
    WEBHOOK_CERT_SECRET,
    WEBHOOK_CONFIG_MAP,
    WEBHOOK_DEPLOYMENT,
    WEBHOOK_NAME,
    WEBHOOK_NAMESPACES,
)
from harness.values import shorten

WEBHOOK_POD_SELECTOR = "azure-workload-identity.io/system=true"  # the chart's and the add-on's pod label

# Annotation values are kept up to this many characters (the API server allows 256 KiB for all of an object's
# annotations; a fake or a lab may allow more): every value a check reads is far shorter, and a longer one must
# not be carried whole into the shared facts and the reports. Messages shorten what they echo much further.
MAX_ANNOTATION_VALUE = 64 * 1024


def is_workload_identity_mwc(mwc: dict[str, Any]) -> bool:
    name = str((mwc.get("metadata") or {}).get("name") or "")
    hooks = [str(h.get("name") or "") for h in mwc.get("webhooks") or []]
    return name.startswith(MWC_PREFIX) or any(
        h == WEBHOOK_NAME or "azure-workload-identity" in h for h in hooks
    )


def slim(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop what is noise in evidence (managedFields, the last-applied annotation)."""
    if obj is None:
        return None
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = bounded(
        {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if k != "kubectl.kubernetes.io/last-applied-configuration"
        }
    )
    if "annotations" in meta:
        meta["annotations"] = annotations
    out["metadata"] = meta
    return out


def bounded(mapping: dict[str, Any]) -> dict[str, str]:
    """Annotations (or labels) with every value shortened, with a marker, beyond :data:`MAX_ANNOTATION_VALUE`."""
    return {str(k): shorten(str(v), MAX_ANNOTATION_VALUE) for k, v in mapping.items()}


def collect_webhook(
    api: KubeApi,
) -> tuple[list[dict[str, Any]], KubeError | None, list[dict[str, Any]], KubeError | None]:
    """(webhook configurations, their error, webhook deployments, the error reading one where the webhook's
    Service says it runs). The usual namespaces are looked at too, but failing to read one of those guesses
    (403 where the harness has no rights) is not an error: the webhook need not be there."""
    try:
        mwcs = [slim(m) or {} for m in api.mutating_webhook_configurations() if is_workload_identity_mwc(m)]
        mwc_error = None
    except KubeError as exc:
        mwcs, mwc_error = [], exc
    expected: list[str] = []
    for mwc in mwcs:
        for hook in mwc.get("webhooks") or []:
            service = (hook.get("clientConfig") or {}).get("service") or {}
            if service.get("namespace") and service["namespace"] not in expected:
                expected.append(service["namespace"])
    namespaces = expected + [ns for ns in WEBHOOK_NAMESPACES if ns not in expected]
    deployments: list[dict[str, Any]] = []
    deployment_error = None
    for namespace in namespaces:
        try:
            found = api.deployment(namespace, WEBHOOK_DEPLOYMENT)
        except KubeError as exc:
            if namespace in expected or not expected:
                deployment_error = deployment_error or exc
            continue
        if found is not None:
            deployments.append(slim(found) or {})
    return mwcs, mwc_error, deployments, deployment_error


WEBHOOK_CONFIG_KEYS = ("AZURE_TENANT_ID", "AZURE_ENVIRONMENT")


def _namespaces_of(deployments: list[dict[str, Any]]) -> list[str]:
    """The namespaces the webhook's Deployments are in, each once, in their order."""
    return [ns for ns in dict.fromkeys(str((d.get("metadata") or {}).get("namespace") or "") for d in deployments)
            if ns]


def _webhook_pods(api: KubeApi, deployments: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(namespace, pod) of each of the webhook's pods not being deleted, namespace by namespace of its
    Deployments. Best effort: a namespace whose pods the harness may not list gives none."""
    for namespace in _namespaces_of(deployments):
        try:
            pods, _ = api.list_pods(namespace, WEBHOOK_POD_SELECTOR)
        except KubeError:
            continue
        for pod in pods:
            if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                yield namespace, pod


def webhook_config(api: KubeApi, deployments: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """azure-wi-webhook-config's AZURE_TENANT_ID and AZURE_ENVIRONMENT in each namespace the webhook runs in (the
    chart's ConfigMap carries azure-workload-identity.io/system=true), read by the manager through envFrom at
    start-up. Best effort: a list the harness may not make, or no such ConfigMap, says nothing.
    unverified: that the AKS add-on's ConfigMap carries the label as the chart's does (the add-on is a Helm release
    of its own, Azure/AKS#5472; its templates are not public)."""
    found: dict[str, dict[str, str]] = {}
    for namespace in _namespaces_of(deployments):
        try:
            maps = api.list_config_maps(namespace, WEBHOOK_POD_SELECTOR)
        except KubeError:
            continue
        for config_map in maps:
            if (config_map.get("metadata") or {}).get("name") == WEBHOOK_CONFIG_MAP:
                data = config_map.get("data") or {}
                found[namespace] = {key: str(data[key]) for key in WEBHOOK_CONFIG_KEYS if key in data}
    return found


def webhook_network_policies(api: KubeApi, deployments: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The NetworkPolicies (name, namespace, spec) of each namespace the webhook runs in: one isolating its pods
    for ingress drops the API server's calls to it (Azure/azure-workload-identity#611). None when the harness may
    not list them; an empty list when it read none."""
    found: list[dict[str, Any]] = []
    for namespace in _namespaces_of(deployments):
        try:
            policies = api.list_namespaced("networking.k8s.io", "v1", "networkpolicies", namespace)
        except KubeError:
            return None
        found += [{"metadata": {"name": (p.get("metadata") or {}).get("name"), "namespace": namespace},
                   "spec": p.get("spec") or {}} for p in policies]
    return found


def webhook_unscheduled(api: KubeApi, deployments: list[dict[str, Any]]) -> list[WebhookPodUnscheduled]:
    """Each of the webhook's pods whose PodScheduled condition is False, with the condition's reason and the
    scheduler's own words (a cordoned node, an untolerated taint). Best effort: a list the harness may not make
    says nothing."""
    found: list[WebhookPodUnscheduled] = []
    for namespace, pod in _webhook_pods(api, deployments):
        meta = pod.get("metadata") or {}
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                reason = str(condition.get("reason") or "Unschedulable")
                found.append(WebhookPodUnscheduled(namespace, str(meta.get("name") or ""), reason,
                                                   str(condition.get("message") or reason)))
    return found


# kubelet failures that keep a container from starting (pkg/kubelet: FailedMount while a volume's Secret or
# ConfigMap is missing; CreateContainerConfigError for an env source that is)
_NOT_STARTING = ("ContainerCreating", "PodInitializing", "CreateContainerConfigError")


def webhook_not_started(api: KubeApi, deployments: list[dict[str, Any]]) -> list[WebhookPodNotStarted]:
    """The reason and message for each of the webhook's scheduled pods whose manager never starts: the
    kubelet's latest FailedMount (or other Failed*) warning about a pod still ContainerCreating (the container
    status says nothing there), or a CreateContainerConfigError's own message. Best effort: pods or events the
    harness may not list say nothing."""
    found: list[WebhookPodNotStarted] = []
    for namespace, pod in _webhook_pods(api, deployments):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if not meta.get("name"):
            continue
        waiting = [dict((s.get("state") or {}).get("waiting") or {})
                   for s in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]]
        reasons = {str(w.get("reason") or "") for w in waiting}
        configured = next((w for w in waiting if w.get("reason") == "CreateContainerConfigError"
                           and w.get("message")), None)
        if configured is not None:
            found.append(WebhookPodNotStarted(namespace, str(meta["name"]), "CreateContainerConfigError",
                                              str(configured["message"])))
            continue
        if not reasons & set(_NOT_STARTING):
            continue
        try:
            events = api.list_namespaced("", "v1", "events", namespace, f"involvedObject.name={meta['name']}")
        except KubeError:
            continue
        failures = [e for e in events if e.get("type") == "Warning" and str(e.get("reason") or "").startswith(
            "Failed") and e.get("reason") != "FailedScheduling"]
        if failures:
            latest = max(failures, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
            found.append(WebhookPodNotStarted(namespace, str(meta["name"]), str(latest.get("reason")),
                                              str(latest.get("message"))))
    return found


# A running pod's Secret volume is set up again at each of its syncs (the kubelet's volume manager remounts what
# its plugin asks to: pkg/volume/secret RequiresRemount); with the Secret gone SetUp fails before writing (so the
# files mounted stay) and the kubelet records FailedMount 'MountVolume.SetUp failed for volume "cert" : secret "x"
# not found' each time (retried within the operation executor's 2 minute backoff cap). client-go's event spam filter
# lets one through per 5 minutes once 25 are spent (tools/record events_cache.go defaultSpamBurst, defaultSpamQPS): a
# last one older than that is taken for a Secret back. unverified: the exact cadence on AKS's kubelet.
_REMOUNT_WINDOW_SECONDS = 6 * 60
_CERT_SECRET_MISSING = f'secret "{WEBHOOK_CERT_SECRET}" not found'


def webhook_cert_unmountable(api: KubeApi, deployments: list[dict[str, Any]], now: float) -> list[WebhookPodNotStarted]:
    """The webhook's running pods whose kubelet reported, within the remount window, that their certificate Secret
    is not there (FailedMount). Best effort: pods or events the harness may not list say nothing."""
    found: list[WebhookPodNotStarted] = []
    for namespace, pod in _webhook_pods(api, deployments):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        started = [_timestamp((s.get("state") or {}).get("running", {}).get("startedAt"))
                   for s in status.get("containerStatuses") or [] if (s.get("state") or {}).get("running")]
        if not meta.get("name") or not started:
            continue
        try:
            events = api.list_namespaced("", "v1", "events", namespace, f"involvedObject.name={meta['name']}")
        except KubeError:
            continue
        # a FailedMount from before its container started is a wait that ended (the Secret came back), not this
        failures = [e for e in events if e.get("type") == "Warning" and e.get("reason") == "FailedMount"
                    and _CERT_SECRET_MISSING in str(e.get("message") or "")
                    and max(started) < _timestamp(e.get("lastTimestamp") or e.get("eventTime"))
                    and now - _timestamp(e.get("lastTimestamp") or e.get("eventTime")) <= _REMOUNT_WINDOW_SECONDS]
        if failures:
            latest = max(failures, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
            found.append(WebhookPodNotStarted(namespace, str(meta["name"]), "FailedMount", str(latest.get("message"))))
    return found


def _timestamp(value: Any) -> float:
    """An event's RFC 3339 time as epoch seconds (0: none or unreadable, so never recent)."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [str((item.get("metadata") or {}).get("name") or "") for item in items]


def near_service_accounts(api: KubeApi, namespace: str, name: str, namespace_found: bool | None) -> list[str]:
    """Existing ServiceAccounts (NS/NAME) a missing NAMESPACE/NAME was likely a typo of: a close name in the
    namespace, else the same name in another namespace (``--workload default/backend-sa`` for finance's), or, with
    the namespace missing, the name (or a close one) in a close namespace. Best effort: a refused list suggests
    nothing."""
    close = lambda word, words: difflib.get_close_matches(word, [w for w in words if w != word], 3, 0.6)  # noqa: E731
    try:
        if namespace_found:
            in_it = [f"{namespace}/{found}" for found in close(name, _names(api.list_service_accounts(namespace)))]
            return in_it or _same_name_elsewhere(api, namespace, name)
        if namespace_found is False:
            near: list[str] = []
            for other in close(namespace, _names(api.list_objects("", "v1", "namespaces"))):
                names = _names(api.list_service_accounts(other))
                near += [f"{other}/{found}" for found in ([name] if name in names else close(name, names))]
            return near[:3]
    except KubeError:
        pass
    return []


def _same_name_elsewhere(api: KubeApi, namespace: str, name: str) -> list[str]:
    """The ServiceAccounts called ``name`` in namespaces other than ``namespace`` (``kubectl get sa -A``), at most
    three: the namespace mistaken, which creating the name where it was looked for would not mend."""
    found = []
    for item in api.list_service_accounts(None):
        meta = item.get("metadata") or {}
        other = str(meta.get("namespace") or "")
        if meta.get("name") == name and other and other != namespace:
            found.append(f"{other}/{name}")
    return sorted(found)[:3]


def namespace_deleting(namespace: dict[str, Any] | None) -> dict[str, Any] | None:
    """When, and with what the namespace controller says remains, a namespace is being deleted; None when not."""
    meta = (namespace or {}).get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return None
    conditions = ((namespace or {}).get("status") or {}).get("conditions") or []
    return {"since": str(meta["deletionTimestamp"]),
            "conditions": [{key: str(c.get(key) or "")[:1000] for key in ("type", "status", "reason", "message")}
                           for c in conditions[:10] if isinstance(c, dict)]}


# The controllers whose name a --workload may give for its ServiceAccount's, in the order looked for (kubectl get
# deploy, sts, ds, jobs, cronjobs): kind, API group, plural, and the path to the spec of the pods it makes
_CONTROLLERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("Deployment", "apps", "deployments", ("template",)),
    ("StatefulSet", "apps", "statefulsets", ("template",)),
    ("DaemonSet", "apps", "daemonsets", ("template",)),
    ("Job", "batch", "jobs", ("template",)),
    ("CronJob", "batch", "cronjobs", ("jobTemplate", "spec", "template")),
)


def _listed_controller(api: KubeApi, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """Controller ``kind`` NAMESPACE/NAME, listed by name (a field selector), not read: the RBAC manifests render
    writes grant list on these kinds cluster-wide and get only on deployments in the webhook's namespace. None when
    there is none; KubeError when the list is refused."""
    _, group, plural, _ = next(c for c in _CONTROLLERS if c[0] == kind)
    found = api.list_namespaced(group, "v1", plural, namespace, f"metadata.name={name}")
    return next((c for c in found if (c.get("metadata") or {}).get("name") == name), None)


def _template_runs_as(kind: str, controller: dict[str, Any]) -> str:
    """The ServiceAccount the pods of ``controller`` (a ``kind``) run as, from its pod template."""
    template: Any = controller.get("spec") or {}
    for key in next(c for c in _CONTROLLERS if c[0] == kind)[3]:
        template = (template.get(key) if isinstance(template, dict) else None) or {}
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    return service_account_of(pod_spec if isinstance(pod_spec, dict) else {})


def controller_runs_as(api: KubeApi, namespace: str, name: str) -> tuple[str, str] | None:
    """``(kind, ServiceAccount)`` of the Deployment, StatefulSet, DaemonSet, Job or CronJob NAMESPACE/NAME and the
    ServiceAccount its pods run as; None when there is no such controller or none could be read. A kind refused
    is passed over, not taken for absent."""
    for kind, *_ in _CONTROLLERS:
        try:
            controller = _listed_controller(api, kind, namespace, name)
        except KubeError:
            continue
        if controller is not None:
            return kind, _template_runs_as(kind, controller)
    return None


# The 5 characters a controller's generateName adds (k8s.io/apiserver names.SimpleNameGenerator: 5 of
# k8s.io/apimachinery/pkg/util/rand's alphabet, which has no vowels nor 0, 1, 3); a Deployment's pod-template-hash
# is a uint32 in that alphabet too (rand.SafeEncodeString), up to 10 characters
_RAND = frozenset("bcdfghjklmnpqrstvwxz2456789")


def _rand(part: str, low: int, high: int) -> bool:
    return low <= len(part) <= high and set(part) <= _RAND


def pod_shapes(name: str) -> list[tuple[str, str, str]]:
    """``(kind, controller, shape)`` for each controller whose pod could be named ``name``, from the name alone:
    a Deployment's NAME-HASH-XXXXX (its ReplicaSet NAME-HASH's generateName), a StatefulSet's NAME-ORDINAL, a
    DaemonSet's or Job's NAME-XXXXX, an Indexed Job's NAME-INDEX-XXXXX, and a CronJob's Job's NAME-TIME-XXXXX
    (the CronJob controller names its Jobs NAME-<scheduled time in minutes>: pkg/controller/cronjob getJobName).
    Several may fit one name; which controllers exist tells them apart."""
    parts = name.split("-")
    shapes: list[tuple[str, str, str]] = []
    if len(parts) >= 2 and parts[-1].isdigit() and parts[:-1] != [""]:
        shapes.append(("StatefulSet", "-".join(parts[:-1]), "NAME-ORDINAL"))
    if len(parts) >= 2 and _rand(parts[-1], 5, 5) and all(parts[:-1]):
        shapes += [("DaemonSet", "-".join(parts[:-1]), "NAME-XXXXX"), ("Job", "-".join(parts[:-1]), "NAME-XXXXX")]
        if len(parts) >= 3 and _rand(parts[-2], 1, 10):
            shapes.append(("Deployment", "-".join(parts[:-2]), "NAME-HASH-XXXXX"))
        if len(parts) >= 3 and parts[-2].isdigit():
            shapes += [("Job", "-".join(parts[:-2]), "NAME-INDEX-XXXXX"),
                       ("CronJob", "-".join(parts[:-2]), "NAME-TIME-XXXXX")]
    return [shape for shape in shapes if shape[1]]


def pod_shaped_of(api: KubeApi, namespace: str, name: str) -> list[dict[str, str]] | None:
    """The existing controllers in NAMESPACE that ``name``, a pod no longer there (one replaced, a StatefulSet
    scaled down), may have been a pod of (pod_shapes): each {kind, name, shape, service_account}, and for a Job a
    CronJob made, its ``cronjob`` (that CronJob is then not listed again). None when a list was refused, so
    nothing is said of the name; [] when no such controller is there."""
    found: list[dict[str, str]] = []
    for kind, controller_name, shape in pod_shapes(name):
        try:
            controller = _listed_controller(api, kind, namespace, controller_name)
        except KubeError:
            return None
        if controller is None or any((c["kind"], c["name"]) == (kind, controller_name) for c in found):
            continue
        entry = {"kind": kind, "name": controller_name, "shape": shape,
                 "service_account": _template_runs_as(kind, controller)}
        owner_kind, owner = controller_of(controller)
        if kind == "Job" and owner_kind == "CronJob":
            entry["cronjob"] = owner
        found.append(entry)
    made_by_cronjob = {c["cronjob"] for c in found if c.get("cronjob")}
    return [c for c in found if not (c["kind"] == "CronJob" and c["name"] in made_by_cronjob)]


def pod_named(api: KubeApi, namespace: str, name: str) -> dict[str, str] | None:
    """The controller (kind, name: controller_of) of pod NAMESPACE/NAME and the ServiceAccount it runs as; None when
    there is no such pod or it could not be read. A pod's name is its controller's and a suffix that only the pod
    tells apart from a ServiceAccount's (a StatefulSet's ``ledger-0``, a Job's ``migrate-x7k2p``), so it is read."""
    try:
        pod = api.pod(namespace, name)
    except KubeError:
        return None
    if not isinstance(pod, dict):
        return None
    kind, controller = controller_of(pod)
    return {"kind": kind, "name": controller, "service_account": service_account_of(pod.get("spec") or {})}


def collect_service_account(
    api: KubeApi, namespace: str, name: str, controller_too: bool = False
) -> ServiceAccountFacts:
    """The ServiceAccount and, when it is not found, what it may have been meant as: a close name, a namespace
    being deleted, and (``controller_too``: a --workload or harness.yaml name) a controller of that name."""
    facts = ServiceAccountFacts(namespace=namespace, name=name)
    try:
        service_account = api.service_account(namespace, name)
    except KubeError as exc:
        facts.error = exc.failure
        return facts
    if service_account is None:
        try:
            found = api.namespace(namespace)
            facts.namespace_found = found is not None
            facts.namespace_deleting = namespace_deleting(found)
        except KubeError:
            facts.namespace_found = None  # many harness identities may not read namespaces
        facts.near_names = near_service_accounts(api, namespace, name, facts.namespace_found)
        if controller_too and facts.namespace_found is not False and facts.namespace_deleting is None:
            controller = controller_runs_as(api, namespace, name)
            if controller is not None:
                facts.controller_kind, facts.controller_runs_as = controller
            else:
                facts.pod_named = pod_named(api, namespace, name)
                if facts.pod_named is None:  # a pod replaced since: the controllers its name's shape fits
                    facts.pod_shaped_of = pod_shaped_of(api, namespace, name)
        return facts
    meta = service_account.get("metadata") or {}
    facts.namespace_found = True
    facts.found = True
    facts.annotations = bounded(dict(meta.get("annotations") or {}))
    facts.labels = bounded(dict(meta.get("labels") or {}))
    if CLIENT_ID_ANNOTATION not in facts.annotations:  # put on the Namespace by hand? the webhook reads the SA only
        try:
            found = api.namespace(namespace)
        except KubeError:
            found = None  # many harness identities may not read namespaces
        if found is not None:
            facts.namespace_annotations = bounded(dict((found.get("metadata") or {}).get("annotations") or {}))
    return facts
