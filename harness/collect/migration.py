"""What is left of pod-managed identity (aad-pod-identity) in the cluster, and what replaced it.

Cluster-wide lists through the one Kubernetes seam: the ``aadpodidentity.k8s.io`` CRDs and every object of their
four kinds, the NMI DaemonSets and MIC Deployments (the chart's ``<name>-nmi``/``<name>-mic`` with its
``app.kubernetes.io`` labels, the manifests' ``nmi``/``mic`` with ``component``, or any pod template running an
``aad-pod-identity/nmi|mic`` image), pods still labelled ``aadpodidbinding``; and, for the coverage table,
ServiceAccounts annotated with a client id, pods labelled for Workload ID and the identity behind each
AzureIdentity's client id (looked up as a workload's is, through ARM and Graph; identities the workloads already
looked up are reused). A resource the API server does not serve (404) or that the harness may not list (403) is
recorded as such, never raised. Items are kept to the fields the checks read.
"""

from __future__ import annotations

import time
from typing import Any

from harness import values
from harness.checks.podspec import is_live, service_account_of
from harness.collect.arm import MSI_API, collect_identity
from harness.collect.arm_api import ArmGet
from harness.collect.kube import bounded
from harness.collect.kube_api import KubeApi, KubeError
from harness.collect.live_pods import cronjob_of, owner_of
from harness.config import AzureConfig
from harness.facts import IdentityFacts, MigrationFacts, ObjectList
from harness.names import (
    CLIENT_ID_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    POD_IDENTITY_GROUP,
    POD_IDENTITY_IMAGE_PATH,
    POD_IDENTITY_LABEL,
    POD_IDENTITY_PLURALS,
    POD_IDENTITY_VERSION,
    USE_LABEL,
)

_HELM_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
_COMPONENT_LABELS = ("app.kubernetes.io/component", "component")  # the chart's, the deploy/infra manifests'
_COMPONENTS = ("nmi", "mic")


def list_all(api: KubeApi, group: str, version: str, plural: str) -> ObjectList:
    resource = f"{plural}.{group}" if group else plural
    try:
        return ObjectList(resource, api.list_objects(group, version, plural))
    except KubeError as exc:
        if exc.failure.status == 404:
            return ObjectList(resource, served=False)
        return ObjectList(resource, error=exc.failure)


def _pods(api: KubeApi, label_selector: str) -> ObjectList:
    try:
        items, _ = api.list_pods(None, label_selector)
    except KubeError as exc:
        return ObjectList("pods", error=exc.failure)
    return ObjectList("pods", items)


def _keep(found: ObjectList, slim: Any) -> ObjectList:
    """``found`` with each item slimmed (None: dropped)."""
    found.items = [kept for kept in (slim(item) for item in found.items) if kept is not None]
    return found


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {"namespace": str(meta.get("namespace") or ""), "name": str(meta.get("name") or "")}


def spec_field(spec: dict[str, Any], name: str) -> Any:
    """A spec field read as aad-pod-identity reads it: Go's JSON decoding matches names case-insensitively, and
    older docs and charts wrote ``ClientID``, ``ResourceID``, ``AzureIdentity``, ``Selector``."""
    if name in spec:
        return spec[name]
    return next((value for key, value in spec.items() if str(key).lower() == name.lower()), None)


def _crd(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    if spec.get("group") != POD_IDENTITY_GROUP:
        return None
    meta = obj.get("metadata") or {}
    return {"name": str(meta.get("name") or ""), "labels": bounded(meta.get("labels") or {}),
            "annotations": _helm(meta), "versions": [v.get("name") for v in spec.get("versions") or []]}


def _helm(meta: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (meta.get("annotations") or {}).items() if k in _HELM_ANNOTATIONS}


def _azure_identity(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    kept = {key: spec_field(spec, key) for key in ("type", "clientID", "resourceID", "tenantID")}
    # a service principal's (type 1) Secret reference {name, namespace}: where NMI reads its client secret
    # (pkg/nmi/standard.go: sc.KubeClient.GetSecret(&azureID.Spec.ClientPassword)); the reference only, no value
    password = spec_field(spec, "clientPassword")
    if isinstance(password, dict) and password.get("name") and kept["type"] in (1, 2):  # 2: its certificate
        kept["clientPassword"] = {k: values.shorten(str(password.get(k) or ""), 253) for k in ("name", "namespace")}
    return {**_meta(obj), "spec": {k: v for k, v in kept.items() if v is not None}}


def _binding(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    kept = {key: spec_field(spec, key) for key in ("azureIdentity", "selector", "weight")}
    return {**_meta(obj), "spec": {k: v for k, v in kept.items() if v is not None}}


def _exception(obj: dict[str, Any]) -> dict[str, Any]:
    labels = spec_field(obj.get("spec") or {}, "podLabels")
    return {**_meta(obj), "spec": {"podLabels": bounded(labels) if isinstance(labels, dict) else {}}}


def _assigned(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    identity = (spec_field(spec, "azureIdentityRef") or {}).get("metadata") or {}
    binding = (spec_field(spec, "azureBindingRef") or {}).get("metadata") or {}
    return {
        **_meta(obj),
        "pod": spec_field(spec, "pod"),
        "podNamespace": spec_field(spec, "podNamespace"),
        "nodename": spec_field(spec, "nodename"),
        "azureIdentity": f"{identity.get('namespace') or ''}/{identity.get('name') or ''}",
        "azureIdentityBinding": f"{binding.get('namespace') or ''}/{binding.get('name') or ''}",
        "status": ((obj.get("status") or {}).get("status")),
        "finalizers": [str(f) for f in (obj.get("metadata") or {}).get("finalizers") or []][:10],
    }


def component_of(obj: dict[str, Any]) -> str | None:
    """"nmi" | "mic" when a DaemonSet or Deployment is aad-pod-identity's NMI or MIC, else None."""
    meta = obj.get("metadata") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    for labels in (meta.get("labels") or {}, (template.get("metadata") or {}).get("labels") or {}):
        for key in _COMPONENT_LABELS:
            if labels.get(key) in _COMPONENTS and (
                labels.get("app.kubernetes.io/name") == "aad-pod-identity" or labels.get("k8s-app") == "aad-pod-id"
                or labels.get("app") == "mic" or labels.get("tier") == "node"
            ):
                return str(labels[key])
    for container in (template.get("spec") or {}).get("containers") or []:
        image = str(container.get("image") or "")
        if POD_IDENTITY_IMAGE_PATH in image:
            name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
            if name in _COMPONENTS:
                return name
    return None


def _component(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    component = component_of(obj)
    if component is None:
        return None
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    template_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    if kind == "DaemonSet":
        desired, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
    else:
        desired, ready = (obj.get("spec") or {}).get("replicas", 1), status.get("readyReplicas", 0)
    return {
        "kind": kind,
        **_meta(obj),
        "component": component,
        "labels": bounded(meta.get("labels") or {}),
        "annotations": _helm(meta),
        "images": [str(c.get("image") or "") for c in template_spec.get("containers") or []],
        # NMI's --operation-mode (cmd/nmi/main.go: "standard" by default; "managed" runs without MIC)
        "operation_mode": _operation_mode(template_spec),
        "desired": desired or 0,
        "ready": ready or 0,
    }


def _operation_mode(template_spec: dict[str, Any]) -> str:
    args = [str(a) for c in template_spec.get("containers") or [] for a in [*(c.get("command") or []),
                                                                            *(c.get("args") or [])]]
    for i, arg in enumerate(args):
        if arg.startswith("--operation-mode="):
            return arg.split("=", 1)[1].lower()
        if arg == "--operation-mode" and i + 1 < len(args):
            return args[i + 1].lower()
    return "standard"


def selects_pod_identity_label(obj: dict[str, Any]) -> bool:
    """Whether a Deployment's or DaemonSet's selector names aadpodidbinding (matchLabels or matchExpressions): its
    template must keep the label, and apps/v1 selectors cannot change."""
    selector = (obj.get("spec") or {}).get("selector") or {}
    if not isinstance(selector, dict):
        return False
    return POD_IDENTITY_LABEL in (selector.get("matchLabels") or {}) or any(
        isinstance(e, dict) and e.get("key") == POD_IDENTITY_LABEL for e in selector.get("matchExpressions") or [])


def _components(api: KubeApi, selecting: set[tuple[str, str, str]] | None = None,
                templates: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> ObjectList:
    """NMI and MIC; ``selecting`` gets (kind, namespace, name) of each listed one whose selector names
    aadpodidbinding, ``templates`` what each listed one's pod template holds of that label (the same lists: no
    more requests)."""
    found = ObjectList("daemonsets.apps,deployments.apps")
    for plural, kind in (("daemonsets", "DaemonSet"), ("deployments", "Deployment")):
        listed = list_all(api, "apps", "v1", plural)
        found.error = found.error or listed.error
        found.items += [c for c in (_component(item, kind) for item in listed.items) if c is not None]
        if selecting is not None:
            selecting |= {(kind, str(m.get("namespace")), str(m.get("name"))) for item in listed.items
                          if selects_pod_identity_label(item) for m in [item.get("metadata") or {}]}
        if templates is not None:
            templates |= {(kind, str(m.get("namespace") or ""), str(m.get("name") or "")): _template(item, kind)
                          for item in listed.items for m in [item.get("metadata") or {}]}
    return found


def _template(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """A Deployment's or DaemonSet's pod template's aadpodidbinding (None: not labelled) and how many pods it asks
    for now (a Deployment's spec.replicas, 1 when unset; a DaemonSet's desiredNumberScheduled)."""
    spec = obj.get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    value = labels.get(POD_IDENTITY_LABEL)
    wanted = spec.get("replicas", 1) if kind == "Deployment" else (obj.get("status") or {}).get(
        "desiredNumberScheduled", 0)
    return {"kind": kind, **_meta(obj), "selector": None if value is None else values.shorten(str(value), 253),
            "replicas": wanted if isinstance(wanted, int) else None, "selects_label": selects_pod_identity_label(obj)}


def pod_summary(pod: dict[str, Any]) -> dict[str, Any] | None:
    """What the migration and inventory checks read of a live pod (None: ended, being deleted, or the harness's
    own probe pod)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    labels = meta.get("labels") or {}
    if not is_live(pod) or labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
        return None
    kind, name = owner_of(pod)
    return {
        **_meta(pod),
        "service_account": service_account_of(spec),
        "labels": bounded({k: v for k, v in labels.items() if k in (POD_IDENTITY_LABEL, USE_LABEL)}),
        "phase": (pod.get("status") or {}).get("phase"),
        "owner_kind": kind,
        "owner_name": name,
        # what the webhook injected when it created the pod (it acts on CREATE only): a pod labelled afterwards
        # (kubectl label pod), or created before its ServiceAccount was annotated, runs without the identity
        "token_audiences": sorted({
            str(token.get("audience")) for volume in spec.get("volumes") or []
            for source in (volume.get("projected") or {}).get("sources") or []
            if isinstance(token := source.get("serviceAccountToken"), dict) and token.get("audience")}),
        "client_ids": sorted({
            str(env.get("value")) for container in spec.get("containers") or [] for env in container.get("env") or []
            if env.get("name") == "AZURE_CLIENT_ID" and env.get("value")}),
    }


def _cronjob_owners(api: KubeApi, pods: ObjectList) -> ObjectList:
    """A pod of a Job a CronJob made names the CronJob as its owner: a Job's pod template cannot change, its
    CronJob's jobTemplate is what to patch. One jobs list per namespace with such pods (harness-rbac lists jobs);
    a refusal leaves the Job as the owner."""
    for namespace in sorted({p["namespace"] for p in pods.items if p.get("owner_kind") == "Job"}):
        try:
            jobs = api.list_namespaced("batch", "v1", "jobs", namespace)
        except KubeError:
            continue
        parents = {str((job.get("metadata") or {}).get("name")): parent for job in jobs
                   for parent in [cronjob_of(job)] if parent}
        for pod in pods.items:
            if pod["namespace"] == namespace and pod.get("owner_kind") == "Job" and pod.get("owner_name") in parents:
                pod["job"] = pod["owner_name"]
                pod["owner_kind"], pod["owner_name"] = "CronJob", parents[str(pod["owner_name"])]
    return pods


def _service_account(obj: dict[str, Any]) -> dict[str, Any] | None:
    client_id = ((obj.get("metadata") or {}).get("annotations") or {}).get(CLIENT_ID_ANNOTATION)
    if client_id is None:
        return None
    labels = (obj.get("metadata") or {}).get("labels") or {}
    # the use label on the ServiceAccount (the pre-1.0 place): the webhook's objectSelector reads pods' labels only
    return {**_meta(obj), "client_id": values.shorten(str(client_id), 200),
            **({"use_label": True} if labels.get(USE_LABEL) == "true" else {})}


def identity_client_id(identity: IdentityFacts) -> str | None:
    """The client id of the identity a workload's lookup found (a managed identity or an application)."""
    if identity.kind == "managed_identity":
        return ((identity.identity or {}).get("properties") or {}).get("clientId")
    if identity.kind == "application":
        return (identity.application or {}).get("appId")
    return None


def collect_migration(
    api: KubeApi,
    arm: ArmGet | None,
    azure: AzureConfig | None,
    graph: ArmGet | None = None,
    known: list[IdentityFacts] | None = None,
    labelled_pods: list[dict[str, Any]] | None = None,
) -> MigrationFacts:
    """``labelled_pods``: :func:`pod_summary` of the cluster's pods labelled for Workload ID as this run listed
    them already (harness.collect.inventory.labelled_pod_summaries); None: listed here."""
    crds = _keep(list_all(api, "apiextensions.k8s.io", "v1", "customresourcedefinitions"), _crd)
    kinds = {plural: list_all(api, POD_IDENTITY_GROUP, POD_IDENTITY_VERSION, plural) for plural in POD_IDENTITY_PLURALS}
    selecting: set[tuple[str, str, str]] = set()
    templates: dict[tuple[str, str, str], dict[str, Any]] = {}
    components = _components(api, selecting, templates)
    legacy = _cronjob_owners(api, _keep(_pods(api, POD_IDENTITY_LABEL), pod_summary))
    for pod in legacy.items:
        owner = (str(pod.get("owner_kind")), pod["namespace"], str(pod.get("owner_name")))
        if owner in selecting:
            pod["owner_selects_label"] = True
        if owner in templates:  # False: labelled on the pod alone (kubectl label pod), its template is not
            pod["template_labelled"] = templates[owner]["selector"] is not None
    labelled_templates = ObjectList(components.resource, [t for t in templates.values() if t["selector"] is not None],
                                    error=components.error)
    facts = MigrationFacts(
        collected_at=time.time(),
        crds=crds,
        azure_identities=_keep(kinds["azureidentities"], _azure_identity),
        azure_identity_bindings=_keep(kinds["azureidentitybindings"], _binding),
        azure_pod_identity_exceptions=_keep(kinds["azurepodidentityexceptions"], _exception),
        azure_assigned_identities=_keep(kinds["azureassignedidentities"], _assigned),
        components=components,
        legacy_pods=legacy,
        legacy_templates=labelled_templates,
        labelled_pods=(ObjectList("pods", list(labelled_pods)) if labelled_pods is not None
                       else _keep(_pods(api, f"{USE_LABEL}=true"), pod_summary)),
        service_accounts=_keep(list_all(api, "", "v1", "serviceaccounts"), _service_account),
    )
    facts.identities = _identities(facts, arm, azure, graph, known or [])
    return facts


def _identities(
    facts: MigrationFacts,
    arm: ArmGet | None,
    azure: AzureConfig | None,
    graph: ArmGet | None,
    known: list[IdentityFacts],
) -> dict[str, IdentityFacts]:
    """The identity behind every AzureIdentity a binding names, by client id; one lookup per client id. Then those
    no binding names, in a namespace where pods are still labelled aadpodidbinding (the binding deleted before they
    moved: migration.pods_unlabelled's fix creates a federated credential on it unless one is there)."""
    reused = {str(identity_client_id(i)).lower(): i for i in known if identity_client_id(i)}
    by_key = {(i["namespace"], i["name"]): i for i in facts.azure_identities.items}
    named = [by_key.get((b["namespace"], str(b["spec"].get("azureIdentity") or "")))
             for b in facts.azure_identity_bindings.items]
    labelled = {p["namespace"] for p in facts.legacy_pods.items}
    orphans = [i for i in facts.azure_identities.items if i["namespace"] in labelled and i not in named]
    # the identities named by the ServiceAccounts those pods run as: a workload moved to another identity than its
    # binding's, whose role assignments migration.bindings_migrated compares with the old identity's
    runs_as = {(p["namespace"], str(p.get("service_account"))) for p in facts.legacy_pods.items}
    moved = [sa["client_id"] for sa in facts.service_accounts.items if (sa["namespace"], sa["name"]) in runs_as]
    out: dict[str, IdentityFacts] = {}
    for client_id in [str((identity or {}).get("spec", {}).get("clientID") or "") for identity in [*named, *orphans]
                      ] + [str(c) for c in moved]:
        if not values.is_guid(client_id) or client_id.lower() in out:
            continue
        out[client_id.lower()] = reused.get(client_id.lower()) or collect_identity(arm, azure, None, client_id, graph)
    for identity in [*named, *orphans]:
        _resource_gone(arm, (identity or {}).get("spec") or {}, out)
    return out


# IdentityFacts.resolved_by: the AzureIdentity's resourceID answered 404, or holds another client id (made again)
RESOURCE_GONE = "resource_id_gone"


def _resource_gone(arm: ArmGet | None, spec: dict[str, Any], out: dict[str, IdentityFacts]) -> None:
    """An MSI AzureIdentity (type 0) whose client id no readable subscription holds: a GET of its resourceID (az
    identity show --ids) tells a deleted identity (404 ResourceNotFound, or the name made again with a new client id)
    from one the harness may not read (403, recorded as refused). Resource Graph answers only what the caller may read, so not finding it proves nothing."""
    looked_up = out.get(str(spec.get("clientID") or "").lower())
    resource_id = str(spec.get("resourceID") or "")
    if (arm is None or looked_up is None or not looked_up.configured or looked_up.kind or looked_up.error
            or spec.get("type") == 1 or "/userassignedidentities/" not in resource_id.lower()
            or looked_up.resolved_by == RESOURCE_GONE):
        return
    answer = arm(f"{resource_id}?api-version={MSI_API}")
    now = str(((answer.body or {}).get("properties") or {}).get("clientId") or "") if answer.ok else ""
    # 404, or the name made again (az identity create: a new client id): the client id's identity is deleted
    # SubscriptionNotFound (a subscription of another tenant, or a typo) is no proof the identity is gone
    if (answer.status == 404 and answer.code in ("ResourceNotFound", "ResourceGroupNotFound")) or (
            values.is_guid(now) and now.lower() != str(spec.get("clientID")).lower()):
        looked_up.resource_id, looked_up.resolved_by = resource_id, RESOURCE_GONE
    elif answer.status == 403:
        looked_up.refused.append(answer)
