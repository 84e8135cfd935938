"""An OPA Gatekeeper install, as Azure Policy for AKS runs it, reduced to what a policy refusal looks like.

``python -m lab ctl policy deny --namespace NS --message TEXT`` puts in the API what Gatekeeper installs
(namespace ``gatekeeper-system``, ValidatingWebhookConfiguration
``gatekeeper-validating-webhook-configuration`` whose webhook is ``validation.gatekeeper.sh``, the
ConstraintTemplate CRD) plus one ConstraintTemplate of the lab's own (``K8sLabDenyPods``: no Rego, it refuses
every pod it matches) and a constraint of that kind matching pods in NS. The API server's
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
from typing import Any

from lab.kube import defaults, errors, labelselector
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
    constraint_crd = _crd(CONSTRAINT_GROUP, LAB_TEMPLATE_KIND, LAB_TEMPLATE_PLURAL,
                          [CONSTRAINT_VERSION, "v1", "v1alpha1"], ["constraint", "constraints"])
    constraint_crd["metadata"]["labels"] = {"gatekeeper.sh/constraint": "yes"}
    template = {
        "apiVersion": f"{TEMPLATE_GROUP}/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": LAB_TEMPLATE_PLURAL},
        "spec": {"crd": {"spec": {"names": {"kind": LAB_TEMPLATE_KIND}}},
                 "targets": [{"target": "admission.k8s.gatekeeper.sh",
                              "rego": "# the lab evaluates this template itself: every matched pod is "
                                      "refused with parameters.message\npackage k8slabdenypods\n"}]},
    }
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
        ("apiextensions.k8s.io", "customresourcedefinitions", "", constraint_crd),
        (TEMPLATE_GROUP, "constrainttemplates", "", template),
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


def admit(store: Store, rt: ResourceType, namespace: str, namespace_labels: dict[str, str]) -> list[str]:
    """The ValidatingAdmissionWebhook call to validation.gatekeeper.sh for a pod CREATE: raises the 403 a
    Gatekeeper denial gets through the API server; returns the warnings of ``warn`` constraints."""
    if rt.group_resource != ("", "pods"):
        return []
    configurations = store.type_for("admissionregistration.k8s.io", "validatingwebhookconfigurations")
    configuration = store.find(configurations, "", CONFIGURATION_NAME) if configurations else None
    webhooks = (configuration or {}).get("webhooks") or []
    webhook = next((w for w in webhooks if w.get("name") == WEBHOOK_NAME), None)
    constraints = constraint_type(store)
    if webhook is None or constraints is None:
        return []
    labels = {"kubernetes.io/metadata.name": namespace, **namespace_labels}
    if not labelselector.matches(webhook.get("namespaceSelector"), labels):
        return []
    denials, warnings = [], []
    for item in store.list(constraints)[0]:
        spec = item.get("spec") or {}
        if not _constraint_matches(spec, namespace):
            continue
        text = f"[{item['metadata']['name']}] {(spec.get('parameters') or {}).get('message', '')}"
        action = spec.get("enforcementAction") or "deny"
        if action == "deny":
            denials.append(text)
        elif action == "warn":
            warnings.append(text)
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


def clear(store: Store) -> list[str]:
    """Remove every lab constraint and what :func:`install` put in the API; returns the constraints removed.
    """
    removed = []
    rt = constraint_type(store)
    for item in store.list(rt)[0] if rt is not None else []:
        store.delete(rt, "", item["metadata"]["name"])
        removed.append(item["metadata"]["name"])
    for group, plural, namespace, obj in reversed(install_objects("")):
        rt = store.type_for(group, plural)
        if rt is not None and store.find(rt, namespace, obj["metadata"]["name"]) is not None:
            store.delete(rt, namespace, obj["metadata"]["name"])
    return removed


def constraints(store: Store) -> list[Obj]:
    rt = constraint_type(store)
    return [{"name": item["metadata"]["name"],
             "namespaces": ((item.get("spec") or {}).get("match") or {}).get("namespaces") or [],
             "message": ((item.get("spec") or {}).get("parameters") or {}).get("message", ""),
             "enforcementAction": (item.get("spec") or {}).get("enforcementAction", "deny")}
            for item in (store.list(rt)[0] if rt is not None else [])]
