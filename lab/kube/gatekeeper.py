"""An OPA Gatekeeper install, as Azure Policy for AKS runs it, reduced to what a policy refusal looks like.

``python -m lab ctl policy deny --namespace NS --message TEXT`` puts in the API what Gatekeeper installs
(namespace ``gatekeeper-system``, ValidatingWebhookConfiguration
``gatekeeper-validating-webhook-configuration`` whose webhook is ``validation.gatekeeper.sh``, the
ConstraintTemplate CRD) plus one ConstraintTemplate of the lab's own (``K8sLabDenyPods``: no Rego, it refuses
every pod it matches) and a constraint of that kind matching pods in NS; ``policy allowed-repos --namespace NS
--repo PREFIX`` a K8sAllowedRepos constraint (gatekeeper-library's template, evaluated by the lab as its Rego
does) refusing pods in NS whose images start with no PREFIX. The API server's
ValidatingAdmissionWebhook step (:func:`admit`) then evaluates the stored constraints, so ``kubectl get
constraints`` shows what refuses, and deleting the constraint lifts it.

Read from open-policy-agent/gatekeeper (deploy/gatekeeper.yaml, pkg/webhook/policy.go): the webhook config's
namespaceSelector skips namespaces labelled ``admission.gatekeeper.sh/ignore`` and gatekeeper-system; a denial
answers Status{code 403, reason Forbidden, message: each violation as ``[<constraint name>] <msg>`` joined by
newlines} (PR #1692 set the reason); ``warn`` constraints become warnings. The API server wraps the message
(webhookerrors.ToStatusErr in 1.32) as ``admission webhook "validation.gatekeeper.sh" denied the request:
<message>``, which is what users of AKS report (Azure/AKS#5024). Newer API servers also prefix ``pods "<name>"
is forbidden: ``; which release added that is unverified, and the lab serves 1.32. Constraint CRD names
(plural = lower-case kind, categories constraint/constraints, cluster-scoped, v1beta1) follow Gatekeeper's
generated CRDs; Azure Policy's constraint names are ``azurepolicy-<template>-<hash>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from lab.kube import defaults, errors, labelselector
from lab.kube.quantity import Quantity, QuantityError
from lab.kube.store import Obj, ResourceType, Store

NAMESPACE = "gatekeeper-system"
CONFIGURATION_NAME = "gatekeeper-validating-webhook-configuration"
WEBHOOK_NAME = "validation.gatekeeper.sh"
IGNORE_LABEL = "admission.gatekeeper.sh/ignore"
SYSTEM_LABELS = {"gatekeeper.sh/system": "yes"}
TEMPLATE_GROUP = "templates.gatekeeper.sh"
CONSTRAINT_GROUP = "constraints.gatekeeper.sh"
CONSTRAINT_VERSION = "v1beta1"
LAB_TEMPLATE_KIND = "K8sLabDenyPods"
LAB_TEMPLATE_PLURAL = LAB_TEMPLATE_KIND.lower()
# gatekeeper-library's "Kubernetes Allowed Repositories" template (src/general/allowedrepos), which Azure Policy's
# allowed-registries definitions resemble: every container, initContainer and ephemeralContainer whose image does
# not start with one of parameters.repos is a violation "<kind> <name> has an invalid image repo <image>, allowed
# repos are <repos>" (the Rego's sprintf %v of the array, which OPA renders as ["a", "b"]).
ALLOWED_REPOS_KIND = "K8sAllowedRepos"
ALLOWED_REPOS_PLURAL = ALLOWED_REPOS_KIND.lower()
# gatekeeper-library's "Container Limits" template (src/general/containerlimits), which Azure Policy's
# k8sazurecontainerlimits resembles: containers and initContainers need cpu and memory limits no higher than
# parameters.cpu / parameters.memory ("-1" for cpu: not checked).
CONTAINER_LIMITS_KIND = "K8sContainerLimits"
CONTAINER_LIMITS_PLURAL = CONTAINER_LIMITS_KIND.lower()
# gatekeeper-library's "Required Labels" template (src/general/requiredlabels/src.rego; Azure Policy's
# k8sazurepodenforcelabels says the same): parameters.labels [{key, allowedRegex}]; an object without one of the
# keys is refused with "you must provide labels: <set>" (OPA's %v of a set of strings: sorted, {"a", "b"}), one
# whose value does not match allowedRegex with "Label <key: value> does not satisfy allowed regex: <regex>";
# parameters.message replaces either text. The lab matches the regex with Python's re.search (Rego's regex.match
# is RE2, unanchored: # unverified for the constructs the two engines read differently).
REQUIRED_LABELS_KIND = "K8sRequiredLabels"
REQUIRED_LABELS_PLURAL = REQUIRED_LABELS_KIND.lower()
_KINDS = {LAB_TEMPLATE_PLURAL: LAB_TEMPLATE_KIND, ALLOWED_REPOS_PLURAL: ALLOWED_REPOS_KIND,
          CONTAINER_LIMITS_PLURAL: CONTAINER_LIMITS_KIND, REQUIRED_LABELS_PLURAL: REQUIRED_LABELS_KIND}
_REPO_CONTAINERS = (("containers", "container"), ("initContainers", "initContainer"),
                    ("ephemeralContainers", "ephemeralContainer"))

Installed = list[tuple[str, str, str, Obj]]  # (group, plural, namespace, object)


def default_constraint_name(namespace: str) -> str:
    return f"azurepolicy-{LAB_TEMPLATE_PLURAL}-{hashlib.sha256(namespace.encode()).hexdigest()[:20]}"


def _crd(group: str, kind: str, plural: str, versions: list[str], categories: list[str] | None = None) -> Obj:
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": plural}
    if categories:
        names["categories"] = categories
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": dict(SYSTEM_LABELS)},
        "spec": {
            "group": group, "names": names, "scope": "Cluster",
            "versions": [{"name": v, "served": True, "storage": v == versions[0],
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                         "x-kubernetes-preserve-unknown-fields": True}},
                          "subresources": {"status": {}}}
                         for v in versions],
        },
    }


def install_objects(ca_bundle: str) -> Installed:
    """What the Gatekeeper install (and the lab's template) put in the API, in creation order."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {
        IGNORE_LABEL: "no-self-managing", "control-plane": "controller-manager", **SYSTEM_LABELS,
        "kubernetes.io/metadata.name": NAMESPACE}}, "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}}
    template_crd = _crd(TEMPLATE_GROUP, "ConstraintTemplate", "constrainttemplates",
                        ["v1", "v1beta1", "v1alpha1"])
    constraint_crds = []
    for plural, kind in _KINDS.items():
        crd = _crd(CONSTRAINT_GROUP, kind, plural, [CONSTRAINT_VERSION, "v1", "v1alpha1"], ["constraint", "constraints"])
        crd["metadata"]["labels"] = {"gatekeeper.sh/constraint": "yes"}
        constraint_crds.append(crd)
    said = {LAB_TEMPLATE_PLURAL: "every matched pod is refused with parameters.message",
            ALLOWED_REPOS_PLURAL: "gatekeeper-library's allowedrepos: an image not starting with one of "
                                  "parameters.repos is refused",
            CONTAINER_LIMITS_PLURAL: "gatekeeper-library's containerlimits: cpu and memory limits required, at "
                                     "most parameters.cpu and parameters.memory",
            REQUIRED_LABELS_PLURAL: "gatekeeper-library's requiredlabels: every parameters.labels key, its value "
                                    "matching allowedRegex"}
    templates = [{
        "apiVersion": f"{TEMPLATE_GROUP}/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": plural},
        "spec": {"crd": {"spec": {"names": {"kind": kind}}},
                 "targets": [{"target": "admission.k8s.gatekeeper.sh",
                              "rego": f"# the lab evaluates this template itself: {said[plural]}\n"
                                      f"package {plural}\n"}]},
    } for plural, kind in _KINDS.items()]
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": dict(SYSTEM_LABELS)},
        "webhooks": [{
            "name": WEBHOOK_NAME, "admissionReviewVersions": ["v1", "v1beta1"],
            "clientConfig": {"caBundle": ca_bundle, "service": {"name": "gatekeeper-webhook-service",
                                                                "namespace": NAMESPACE, "path": "/v1/admit",
                                                                "port": 443}},
            "failurePolicy": "Ignore", "matchPolicy": "Exact",
            "namespaceSelector": {"matchExpressions": [
                {"key": IGNORE_LABEL, "operator": "DoesNotExist"},
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NAMESPACE]}]},
            "objectSelector": {},
            "rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["*"], "scope": "*"}],
            "sideEffects": "None", "timeoutSeconds": 3,
        }],
    }
    return [
        ("", "namespaces", "", namespace),
        ("apiextensions.k8s.io", "customresourcedefinitions", "", template_crd),
        *(("apiextensions.k8s.io", "customresourcedefinitions", "", crd) for crd in constraint_crds),
        *((TEMPLATE_GROUP, "constrainttemplates", "", template) for template in templates),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", webhook),
    ]


def constraint(name: str, namespace: str, message: str) -> Obj:
    return {
        "apiVersion": f"{CONSTRAINT_GROUP}/{CONSTRAINT_VERSION}", "kind": LAB_TEMPLATE_KIND,
        "metadata": {"name": name},
        "spec": {"enforcementAction": "deny",
                 "match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "namespaces": [namespace]},
                 "parameters": {"message": message}},
    }


def allowed_repos_constraint(name: str, namespace: str, repos: list[str]) -> Obj:
    return {
        "apiVersion": f"{CONSTRAINT_GROUP}/{CONSTRAINT_VERSION}", "kind": ALLOWED_REPOS_KIND,
        "metadata": {"name": name},
        "spec": {"enforcementAction": "deny",
                 "match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "namespaces": [namespace]},
                 "parameters": {"repos": list(repos)}},
    }


def container_limits_constraint(name: str, namespace: str, cpu: str, memory: str) -> Obj:
    return {
        "apiVersion": f"{CONSTRAINT_GROUP}/{CONSTRAINT_VERSION}", "kind": CONTAINER_LIMITS_KIND,
        "metadata": {"name": name},
        "spec": {"enforcementAction": "deny",
                 "match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "namespaces": [namespace]},
                 "parameters": {"cpu": cpu, "memory": memory}},
    }


def _quantity(value: object) -> Quantity | None:
    try:
        return Quantity.parse(value)
    except (QuantityError, TypeError, ValueError):
        return None


def _container_limits_violations(spec: Obj, pod: Obj) -> list[str]:
    """The containerlimits Rego's general_violation over containers and initContainers (ephemeral ones cannot set
    resources). A container without limits gets only "has no resource limits" (the Rego's missing() is undefined
    on an absent limits object); the messages of one constraint come back sorted, as a Rego set's are
    (# unverified: the order Gatekeeper joins them in)."""
    parameters = spec.get("parameters") or {}
    max_cpu, max_memory = str(parameters.get("cpu", "-1")), parameters.get("memory")
    found: set[str] = set()
    for field in ("containers", "initContainers"):
        for container in (pod.get("spec") or {}).get(field) or []:
            name = container.get("name")
            limits = (container.get("resources") or {}).get("limits")
            if not isinstance(limits, dict):  # an empty limits object is there: its cpu and memory are missing
                found.add(f"container <{name}> has no resource limits")
                continue
            cpu, memory = limits.get("cpu"), limits.get("memory")
            if max_cpu != "-1" and cpu in (None, ""):
                found.add(f"container <{name}> has no cpu limit")
            if memory in (None, ""):
                found.add(f"container <{name}> has no memory limit")
            if max_cpu != "-1" and cpu not in (None, "") and (have := _quantity(cpu)) and (top := _quantity(max_cpu)) \
                    and have.value > top.value:
                found.add(f"container <{name}> cpu limit <{cpu}> is higher than the maximum allowed of <{max_cpu}>")
            if memory not in (None, "") and max_memory is not None and (have := _quantity(memory)) \
                    and (top := _quantity(max_memory)) and have.value > top.value:
                found.add(f"container <{name}> memory limit <{memory}> is higher than the maximum allowed of "
                          f"<{max_memory}>")
    return sorted(found)


def _required_labels_violations(spec: Obj, pod: Obj) -> list[str]:
    parameters = spec.get("parameters") or {}
    wanted = [item for item in parameters.get("labels") or [] if isinstance(item, dict) and item.get("key")]
    labels = (pod.get("metadata") or {}).get("labels") or {}
    custom = parameters.get("message")
    found = []
    missing = sorted({str(item["key"]) for item in wanted} - set(labels))
    if missing:
        found.append(custom or "you must provide labels: {" + ", ".join(json.dumps(k) for k in missing) + "}")
    for item in wanted:
        key, pattern = str(item["key"]), str(item.get("allowedRegex") or "")
        if key in labels and pattern:
            try:
                ok = re.search(pattern, str(labels[key])) is not None
            except re.error:
                ok = False
            if not ok:
                found.append(custom or f"Label <{key}: {labels[key]}> does not satisfy allowed regex: {pattern}")
    return found


def _rego_array(values: list[str]) -> str:
    """OPA's sprintf %v of an array of strings (ast.Array's String: quoted elements joined by ", ")."""
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _allowed_repos_violations(spec: Obj, pod: Obj) -> list[str]:
    repos = [r for r in (spec.get("parameters") or {}).get("repos") or [] if isinstance(r, str)]
    found = []
    for field, word in _REPO_CONTAINERS:
        for container in (pod.get("spec") or {}).get(field) or []:
            image = str(container.get("image") or "")
            if not any(image.startswith(repo) for repo in repos):
                found.append(f"{word} <{container.get('name')}> has an invalid image repo <{image}>, allowed repos "
                             f"are {_rego_array(repos)}")
    return found


# ---------------------------------------------------------------- admission


def _constraint_matches(spec: Obj, namespace: str) -> bool:
    match = spec.get("match") or {}
    kinds = match.get("kinds") or [{"apiGroups": ["*"], "kinds": ["*"]}]
    pod_kind = any(("" in (k.get("apiGroups") or []) or "*" in (k.get("apiGroups") or []))
                   and ({"Pod", "*"} & set(k.get("kinds") or [])) for k in kinds if isinstance(k, dict))
    namespaces = match.get("namespaces")
    excluded = match.get("excludedNamespaces") or []
    return pod_kind and (not namespaces or namespace in namespaces) and namespace not in excluded


def constraint_type(store: Store) -> ResourceType | None:
    return store.type_for(CONSTRAINT_GROUP, LAB_TEMPLATE_PLURAL)


def _constraints(store: Store) -> list[Obj]:
    """Every stored constraint of the kinds the lab evaluates, in name order."""
    found = []
    for plural in _KINDS:
        rt = store.type_for(CONSTRAINT_GROUP, plural)
        found += store.list(rt)[0] if rt is not None else []
    return sorted(found, key=lambda item: item["metadata"]["name"])


def admit(store: Store, rt: ResourceType, namespace: str, namespace_labels: dict[str, str],
          pod: Obj | None = None) -> list[str]:
    """The ValidatingAdmissionWebhook call to validation.gatekeeper.sh for a pod CREATE: raises the 403 a
    Gatekeeper denial gets through the API server; returns the warnings of ``warn`` constraints."""
    if rt.group_resource != ("", "pods"):
        return []
    configurations = store.type_for("admissionregistration.k8s.io", "validatingwebhookconfigurations")
    configuration = store.find(configurations, "", CONFIGURATION_NAME) if configurations else None
    webhooks = (configuration or {}).get("webhooks") or []
    webhook = next((w for w in webhooks if w.get("name") == WEBHOOK_NAME), None)
    if webhook is None:
        return []
    labels = {"kubernetes.io/metadata.name": namespace, **namespace_labels}
    if not labelselector.matches(webhook.get("namespaceSelector"), labels):
        return []
    denials, warnings = [], []
    for item in _constraints(store):
        spec = item.get("spec") or {}
        if not _constraint_matches(spec, namespace):
            continue
        if item.get("kind") == ALLOWED_REPOS_KIND:
            said = _allowed_repos_violations(spec, pod or {})
        elif item.get("kind") == CONTAINER_LIMITS_KIND:
            said = _container_limits_violations(spec, pod or {})
        elif item.get("kind") == REQUIRED_LABELS_KIND:
            said = _required_labels_violations(spec, pod or {})
        else:
            said = [str((spec.get("parameters") or {}).get("message", ""))]
        texts = [f"[{item['metadata']['name']}] {text}" for text in said]
        action = spec.get("enforcementAction") or "deny"
        if action == "deny":
            denials += texts
        elif action == "warn":
            warnings += texts
    if denials:
        raise errors.ApiError(403, "Forbidden",
                              f'admission webhook "{WEBHOOK_NAME}" denied the request: ' + "\n".join(denials))
    return warnings


# ---------------------------------------------------------------- install, deny, clear (lab ctl policy)


def install(store: Store, ca_bundle: str, now: str) -> None:
    """Put Gatekeeper's objects in the API (idempotent). A CRD is served as soon as it is stored."""
    for group, plural, namespace, obj in install_objects(ca_bundle):
        rt = store.type_for(group, plural)
        if rt is None or store.find(rt, namespace, obj["metadata"]["name"]) is not None:
            continue
        if plural == "customresourcedefinitions":
            obj["status"] = defaults.crd_established_status(obj, now)
        store.create(rt, obj, namespace=namespace or None)


def deny(store: Store, ca_bundle: str, now: str, name: str, namespace: str, message: str) -> Obj:
    """Install Gatekeeper if needed and store (or replace) a constraint refusing new pods in ``namespace``."""
    install(store, ca_bundle, now)
    rt = constraint_type(store)
    if rt is None:
        raise RuntimeError("the constraint CRD is not served")
    wanted = constraint(name, namespace, message)
    current = store.find(rt, "", name)
    if current is None:
        return store.create(rt, wanted)
    return store.replace(rt, {**current, "spec": wanted["spec"]}, check_version=False)


def allow_repos(store: Store, ca_bundle: str, now: str, name: str, namespace: str, repos: list[str]) -> Obj:
    """Install Gatekeeper if needed and store (or replace) a K8sAllowedRepos constraint for pods in
    ``namespace``."""
    return _put(store, ca_bundle, now, allowed_repos_constraint(name, namespace, repos))


def limit_containers(store: Store, ca_bundle: str, now: str, name: str, namespace: str, cpu: str, memory: str) -> Obj:
    """Install Gatekeeper if needed and store (or replace) a K8sContainerLimits constraint for pods in
    ``namespace``."""
    return _put(store, ca_bundle, now, container_limits_constraint(name, namespace, cpu, memory))


def _put(store: Store, ca_bundle: str, now: str, wanted: Obj) -> Obj:
    install(store, ca_bundle, now)
    rt = store.type_for(CONSTRAINT_GROUP, wanted["kind"].lower())
    if rt is None:
        raise RuntimeError("the constraint CRD is not served")
    name = wanted["metadata"]["name"]
    current = store.find(rt, "", name)
    if current is None:
        return store.create(rt, wanted)
    return store.replace(rt, {**current, "spec": wanted["spec"]}, check_version=False)


def clear(store: Store) -> list[str]:
    """Remove every lab constraint and what :func:`install` put in the API; returns the constraints removed.
    """
    removed = []
    for item in _constraints(store):
        rt = store.type_for(CONSTRAINT_GROUP, item["kind"].lower())
        if rt is not None:
            store.delete(rt, "", item["metadata"]["name"])
            removed.append(item["metadata"]["name"])
    for group, plural, namespace, obj in reversed(install_objects("")):
        rt = store.type_for(group, plural)
        if rt is not None and store.find(rt, namespace, obj["metadata"]["name"]) is not None:
            store.delete(rt, namespace, obj["metadata"]["name"])
    return removed


def constraints(store: Store) -> list[Obj]:
    shown = []
    for item in _constraints(store):
        parameters = (item.get("spec") or {}).get("parameters") or {}
        entry = {"name": item["metadata"]["name"],
                 "namespaces": ((item.get("spec") or {}).get("match") or {}).get("namespaces") or []}
        if item.get("kind") == ALLOWED_REPOS_KIND:
            entry.update(kind=ALLOWED_REPOS_KIND, repos=parameters.get("repos") or [])
        elif item.get("kind") == CONTAINER_LIMITS_KIND:
            entry.update(kind=CONTAINER_LIMITS_KIND, cpu=parameters.get("cpu"), memory=parameters.get("memory"))
        elif item.get("kind") == REQUIRED_LABELS_KIND:
            entry.update(kind=REQUIRED_LABELS_KIND, labels=parameters.get("labels") or [])
        else:
            entry["message"] = parameters.get("message", "")
        entry["enforcementAction"] = (item.get("spec") or {}).get("enforcementAction", "deny")
        shown.append(entry)
    return shown
