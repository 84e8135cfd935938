"""The control-plane loops the lab needs, driven by store events so they act whoever changed the store:

- namespaces: every namespace gets its ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap
  (ServiceAccount and root-CA-publisher controllers); deleting a namespace deletes what it holds
- CustomResourceDefinitions: registering a CRD serves its resource at once, deleting it stops serving it
- garbage collection: deleting an object deletes the objects whose ownerReferences point at it
- workloads: Deployments, ReplicaSets and DaemonSets keep their pods (see :mod:`lab.kube.workloads`); Jobs run
  theirs to completion (:mod:`lab.kube.jobs`)
- resource quotas: ``status`` (hard, used) follows the namespace's objects (see :mod:`lab.kube.quota`)
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from lab.clock import rfc3339
from lab.kube import errors, quota
from lab.kube.deletion import delete_or_mark, mark_deleted
from lab.kube.jobs import JobController
from lab.kube.resources import CRD_TYPE, NAMESPACE_TYPE, resource_type_from_crd
from lab.kube.scheduler import UNSCHEDULABLE_TAINT
from lab.kube.statefulsets import StatefulSetController
from lab.kube.store import Obj, Store, WatchEvent
from lab.kube.workloads import WorkloadControllers, template_hash

if TYPE_CHECKING:
    from lab.runtime import Lab

log = logging.getLogger("lab.kube.controllers")

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


def _later(action: Callable[[], None]) -> None:
    """Run ``action`` on the next loop turn (like a controller reacting to a watch event), else now."""
    try:
        asyncio.get_running_loop().call_soon(_guarded, action)
    except RuntimeError:
        _guarded(action)


def _guarded(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:  # a controller never takes the API server down
        log.exception("controller action failed")


# What admission reads besides the pod and its namespace: webhook configurations and Gatekeeper's constraints.
# The ReplicaSet controller retries the pods admission refused: a sync whose creates failed is requeued with
# AddRateLimited (kubernetes pkg/controller/replicaset/replica_set.go processNextWorkItem; the default rate
# limiter backs off from 5 ms doubling up to 1000 s). The lab has no timers, so it retries when something
# admission reads changes (quotas above, namespaces' labels, these groups), which is when a retry can succeed.
_ADMISSION_GROUPS = ("admissionregistration.k8s.io", "constraints.gatekeeper.sh")


def _deletion_conditions(resources: dict[str, int], finalizers: dict[str, int], now: str) -> list[Obj]:
    """The namespace controller's conditions while content remains (status_condition_utils.go's types, reasons and
    messages, as kubectl describe namespace shows them)."""
    def condition(kind: str, status: str, reason: str, message: str) -> Obj:
        return {"type": kind, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}

    content = ", ".join(f"{key} has {count} resource instances" for key, count in sorted(resources.items()))
    held = ", ".join(f"{name} in {count} resource instances" for name, count in sorted(finalizers.items()))
    return [
        condition("NamespaceDeletionDiscoveryFailure", "False", "ResourcesDiscovered",
                  "All resources successfully discovered"),
        condition("NamespaceDeletionGroupVersionParsingFailure", "False", "ParsedGroupVersions",
                  "All legacy kube types successfully parsed"),
        condition("NamespaceDeletionContentFailure", "False", "ContentDeleted",
                  "All content successfully deleted, may be waiting on finalization"),
        condition("NamespaceContentRemaining", "True", "SomeResourcesRemain", f"Some resources are remaining: {content}"),
        condition("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain",
                  f"Some content in the namespace has finalizers remaining: {held}"),
    ]


class Controllers:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.store: Store = lab.kube.store
        self.workloads = WorkloadControllers(lab)
        self.statefulsets = StatefulSetController(lab, template_hash)
        self.jobs = JobController(lab)

    # -- wiring
    def install(self) -> None:
        self.store.listeners.append(self.on_event)
        self.reconcile_all()

    def reconcile_all(self) -> None:
        for crd in self.store.list(CRD_TYPE)[0]:
            self.serve_crd(crd)
        for namespace in self.store.list(NAMESPACE_TYPE)[0]:
            self.populate_namespace(namespace["metadata"]["name"])
        self.reconcile_workloads()

    def reconcile_workloads(self, namespace: str | None = None) -> None:
        """Every Deployment, ReplicaSet, DaemonSet and StatefulSet (of a namespace), e.g. after the webhook came back
        up."""
        for plural, reconcile in self._workload_reconcilers().items():
            rt = self.store.type_for("apps", plural)
            for obj in self.store.list(rt, namespace or None)[0] if rt else []:
                meta = obj["metadata"]
                _later(lambda r=reconcile, ns=meta["namespace"], n=meta["name"]: r(ns, n))

    def _reconcile_daemonsets(self) -> None:
        rt = self.store.type_for("apps", "daemonsets")
        for obj in self.store.list(rt)[0] if rt else []:
            meta = obj["metadata"]
            _later(lambda ns=meta["namespace"], n=meta["name"]: self.workloads.reconcile_daemonset(ns, n))

    def _workload_reconcilers(self) -> dict[str, Callable[[str, str], None]]:
        return {"deployments": self.workloads.reconcile_deployment,
                "replicasets": self.workloads.reconcile_replicaset,
                "daemonsets": self.workloads.reconcile_daemonset,
                "statefulsets": self.statefulsets.reconcile}

    def on_event(self, event: WatchEvent) -> None:
        try:
            self._dispatch(event)
        except Exception:
            log.exception("controller failed on %s %s", event.type, event.resource)

    def _dispatch(self, event: WatchEvent) -> None:
        name = event.object.get("metadata", {}).get("name", "")
        if event.resource == CRD_TYPE.group_resource:
            if event.type == "DELETED":
                self.stop_serving_crd(event.object)
            else:
                self.serve_crd(event.object)
        elif event.resource == NAMESPACE_TYPE.group_resource:
            if event.type == "ADDED":
                _later(lambda: self.populate_namespace(name))
            elif event.type == "DELETED":
                self.empty_namespace(name)
            elif (event.object.get("metadata") or {}).get("deletionTimestamp"):
                _later(lambda: self.finalize_namespace(name))
            else:
                self.reconcile_workloads()  # its labels may admit what they refused (Pod Security, selectors)
        elif event.resource[0] in _ADMISSION_GROUPS:
            self.reconcile_workloads()  # a webhook configuration or a policy constraint changed
        elif event.resource == ("", "nodes") and event.type != "DELETED":
            _later(lambda: self.taint_unschedulable(name))
            self._reconcile_daemonsets()  # a node's labels decide which DaemonSets run a pod on it
        elif event.resource == ("", "serviceaccounts") and event.type == "DELETED" and name == "default":
            namespace = event.object["metadata"].get("namespace", "")
            _later(lambda: self.populate_namespace(namespace))
        elif event.resource == ("", "serviceaccounts") and event.type in ("ADDED", "MODIFIED"):
            # the ServiceAccount admission plugin refused the pods of a template naming it before it existed (a
            # bundle applied Deployment first), or the webhook refused them over its annotations (a token
            # expiration it cannot parse): its controllers retry them now, as their rate-limited requeue does
            self.reconcile_workloads(event.object["metadata"].get("namespace", ""))
        self._workload_event(event)
        self._quota_event(event)
        if event.type == "DELETED":
            self.collect_garbage(event.object.get("metadata", {}).get("uid"))
            namespace = (event.object.get("metadata") or {}).get("namespace")
            if namespace and self._terminating(namespace):  # the last finalizer of its content may have gone
                _later(lambda: self.finalize_namespace(namespace))

    def _workload_event(self, event: WatchEvent) -> None:
        meta = event.object.get("metadata", {})
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        group, plural = event.resource
        reconcilers = self._workload_reconcilers()
        if group == "apps" and plural in reconcilers and event.type != "DELETED":
            _later(lambda: reconcilers[plural](namespace, name))
        if (group, plural) == ("batch", "jobs") and event.type != "DELETED":
            _later(lambda: self.jobs.reconcile(namespace, name))
        owner = self.workloads.owner_of(event.object)
        if owner and owner[0] == "Job" and (group, plural) == ("", "pods"):
            _later(lambda: self.jobs.reconcile(namespace, owner[1]))
        if owner and (group, plural) in (("", "pods"), ("apps", "replicasets")):
            kind, owner_name = owner
            owner_plural = {"ReplicaSet": "replicasets", "Deployment": "deployments",
                            "DaemonSet": "daemonsets", "StatefulSet": "statefulsets"}.get(kind)
            if owner_plural:
                _later(lambda: reconcilers[owner_plural](namespace, owner_name))

    def _quota_event(self, event: WatchEvent) -> None:
        namespace = quota.namespace_to_sync(event.resource, event.object)
        if namespace is not None:
            _later(lambda: quota.sync_namespace(self.store, namespace))
        if event.resource == quota.QUOTA_GROUP_RESOURCE and (namespace is not None or event.type == "DELETED"):
            self.reconcile_workloads()  # a new, edited or deleted quota: ReplicaSets retry the pods it refused

    # -- nodes
    def taint_unschedulable(self, name: str) -> None:
        """The node lifecycle controller's NoSchedule pass (kubernetes pkg/controller/nodelifecycle,
        doNoScheduleTaintingPass): a node with spec.unschedulable (kubectl cordon) gets the taint
        node.kubernetes.io/unschedulable:NoSchedule, stamped with timeAdded (SwapNodeControllerTaint), and loses it
        when uncordoned. The scheduler's NodeUnschedulable filter still answers first ("node(s) were
        unschedulable"); kubectl describe node and the taints column show it."""
        node_type = self.store.type_for("", "nodes")
        node = self.store.find(node_type, "", name) if node_type is not None else None
        if node_type is None or node is None:
            return
        spec = node.get("spec") or {}
        taints = [t for t in spec.get("taints") or [] if isinstance(t, dict)]
        held = [t for t in taints if t.get("key") == UNSCHEDULABLE_TAINT and t.get("effect") == "NoSchedule"]
        if bool(spec.get("unschedulable")) == bool(held):
            return
        if held:
            kept = [t for t in taints if t not in held]
        else:
            kept = [*taints, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": rfc3339()}]
        changed = copy.deepcopy(node)
        if kept:
            changed.setdefault("spec", {})["taints"] = kept
        else:
            changed.setdefault("spec", {}).pop("taints", None)
        self.store.replace(node_type, changed, check_version=False)

    # -- custom resource definitions
    def serve_crd(self, crd: Obj) -> None:
        rt = resource_type_from_crd(crd)
        if rt is None:
            return
        if self.store.type_for(rt.group, rt.plural) != rt:
            self.store.register(rt)  # keeps stored custom resources: register() never empties a bucket

    def stop_serving_crd(self, crd: Obj) -> None:
        rt = resource_type_from_crd(crd)
        if rt is not None and self.store.type_for(rt.group, rt.plural) is not None:
            self.store.unregister(rt)

    # -- namespaces
    def populate_namespace(self, namespace: str) -> None:
        if self.store.find(NAMESPACE_TYPE, "", namespace) is None or self._terminating(namespace):
            return  # the ServiceAccount controller and root-ca publisher skip a namespace being deleted
        sa_type = self.store.type_for("", "serviceaccounts")
        if sa_type and self.store.find(sa_type, namespace, "default") is None:
            self._create_quietly(sa_type, {"metadata": {"name": "default"}}, namespace)
        cm_type = self.store.type_for("", "configmaps")
        if cm_type and self.store.find(cm_type, namespace, ROOT_CA_CONFIGMAP) is None:
            ca = self.lab.tls.ca_pem.decode()
            self._create_quietly(
                cm_type,
                {
                    "metadata": {
                        "name": ROOT_CA_CONFIGMAP,
                        "annotations": {
                            "kubernetes.io/description": "Contains a CA bundle that can be used "
                            "to verify the kube-apiserver when using internal endpoints such as "
                            "the internal service IP or kubernetes.default.svc. No other usage is "
                            "guaranteed across distributions of Kubernetes clusters."
                        },
                    },
                    "data": {"ca.crt": ca},
                },
                namespace,
            )

    def _create_quietly(self, rt, obj: Obj, namespace: str) -> None:
        try:
            self.store.create(rt, obj, namespace=namespace)
        except errors.ApiError as exc:
            if exc.code != 409:
                raise

    def _terminating(self, namespace: str) -> bool:
        found = self.store.peek(NAMESPACE_TYPE, "", namespace)
        return bool(found and (found.get("metadata") or {}).get("deletionTimestamp"))

    def finalize_namespace(self, namespace: str) -> None:
        """The namespace controller for a namespace being deleted (kubernetes pkg/controller/namespace/deletion):
        it deletes the namespace's content; a custom resource with finalizers is only marked (deletionTimestamp)
        and stays until its controller removes them. With nothing left the namespace goes; otherwise its status
        carries the controller's conditions (status_condition_utils.go): NamespaceContentRemaining "Some resources
        are remaining: <resource>.<group> has N resource instances" and NamespaceFinalizersRemaining "Some content
        in the namespace has finalizers remaining: <finalizer> in N resource instances". A built-in object with
        finalizers (a pod, a ConfigMap, a ServiceAccount) holds it as a custom resource does."""
        current = self.store.find(NAMESPACE_TYPE, "", namespace)
        if current is None or not (current.get("metadata") or {}).get("deletionTimestamp"):
            return
        resources: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for rt in list(self.store.types.values()):
            if not rt.namespaced:
                continue
            for (ns, name), obj in list(self.store.objects.get(rt.group_resource, {}).items()):
                if ns != namespace:
                    continue
                held = (obj.get("metadata") or {}).get("finalizers") or []
                if not held:
                    self._delete_quietly(rt, ns, name)
                    continue
                mark_deleted(self.store, rt, obj)
                key = f"{rt.plural}.{rt.group}"  # "pods." for the core group, as upstream's "%s.%s" writes it
                resources[key] = resources.get(key, 0) + 1
                for finalizer in held:
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        if not resources:
            self._delete_quietly(NAMESPACE_TYPE, "", namespace)
            return
        conditions = _deletion_conditions(resources, finalizers, rfc3339())
        status = current.get("status") or {}
        if [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []] == \
                [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions]:
            return
        self.store.replace(NAMESPACE_TYPE, {**current, "status": {**status, "phase": "Terminating",
                                                                  "conditions": conditions}}, check_version=False)

    def empty_namespace(self, namespace: str) -> None:
        for rt in list(self.store.types.values()):
            if not rt.namespaced:
                continue
            for ns, name in [
                key for key in self.store.objects.get(rt.group_resource, {}) if key[0] == namespace
            ]:
                self._delete_quietly(rt, ns, name)

    # -- garbage collection
    def collect_garbage(self, owner_uid: str | None) -> None:
        if not owner_uid or not self.store.may_own(owner_uid):
            return
        for rt in list(self.store.types.values()):
            for (ns, name), obj in list(self.store.objects.get(rt.group_resource, {}).items()):
                owners = obj.get("metadata", {}).get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in owners):
                    delete_or_mark(self.store, rt, ns, name)  # the collector deletes through the API

    def _delete_quietly(self, rt, namespace: str, name: str) -> None:
        try:
            self.store.delete(rt, namespace, name)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise


def install_controllers(lab: Lab) -> Controllers:
    """Attach the controllers to the lab's store (once) and bring existing objects up to date."""
    existing = getattr(lab.kube, "_controllers", None)
    if isinstance(existing, Controllers):
        return existing
    controllers = Controllers(lab)
    controllers.install()
    lab.kube._controllers = controllers  # type: ignore[attr-defined]
    return controllers
