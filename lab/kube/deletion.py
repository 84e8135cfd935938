"""Deleting an object that holds finalizers, as the generic registry does for every kind (built-in or custom):
DELETE only marks it (deletionTimestamp now, deletionGracePeriodSeconds 0: updateForGracefulDeletionAndFinalizers in
staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go) and the object stays, readable and
updatable, until an update leaves it with no finalizer (ShouldDeleteDuringUpdate: no finalizers in the new object,
the existing one marked with no grace period or 0); then the update deletes it."""

from __future__ import annotations

import copy

from lab.clock import rfc3339
from lab.kube.store import Obj, ResourceType, Store


def mark_deleted(store: Store, rt: ResourceType, current: Obj) -> Obj:
    """``current`` marked for deletion (once: a second DELETE changes nothing), stored and returned."""
    meta = current.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return current
    marked = copy.deepcopy(current)
    marked["metadata"]["deletionTimestamp"] = rfc3339()
    marked["metadata"]["deletionGracePeriodSeconds"] = 0
    return store.replace(rt, marked, check_version=False)


def finalized(current: Obj, new: Obj) -> bool:
    """ShouldDeleteDuringUpdate: the update removes the last finalizer of an object marked for deletion with no
    grace period left (a pod still stopping keeps its grace period: the kubelet finishes its delete)."""
    old_meta, new_meta = current.get("metadata") or {}, new.get("metadata") or {}
    if new_meta.get("finalizers") or not old_meta.get("deletionTimestamp"):
        return False
    return not old_meta.get("deletionGracePeriodSeconds")


def delete_or_mark(store: Store, rt: ResourceType, namespace: str, name: str) -> Obj | None:
    """A controller's DELETE through the API (the namespace controller's, the garbage collector's): an object with
    finalizers is marked and stays; else it goes. None when it is gone already."""
    current = store.find(rt, namespace, name)
    if current is None:
        return None
    if (current.get("metadata") or {}).get("finalizers"):
        return mark_deleted(store, rt, current)
    return store.delete(rt, namespace, name)
