"""The default-scheduler's filter step for the lab's node, and the words it uses when no node fits.

Read from kubernetes/kubernetes (1.32-era pkg/scheduler): the default profile filters in the order
NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, ... and a node fails on the first plugin that
rejects it. Reasons: ``node(s) were unschedulable`` (spec.unschedulable, unless the pod tolerates
``node.kubernetes.io/unschedulable:NoSchedule``), ``node(s) didn't match the requested node name``, ``node(s)
had untolerated taint {<key>: <value>}`` (the first NoSchedule/NoExecute taint no toleration tolerates,
component-helpers FindMatchingUntoleratedTaint), ``node(s) didn't match Pod's node affinity/selector``. All
are UnschedulableAndUnresolvable, so DefaultPreemption answers ``Preemption is not helpful for scheduling``
for every node. FitError.Error() reads ``0/<nodes> nodes are available: <count> <reason>[, ...]. preemption:
0/<nodes> nodes are available: <count> Preemption is not helpful for scheduling.`` (reasons sorted), e.g. as
AKS users report it for CriticalAddonsOnly (learn.microsoft.com, AKS extension troubleshooting). The pod's
``PodScheduled`` condition becomes False, reason ``Unschedulable``, with that message, and a
``FailedScheduling`` Warning event repeats it. Resource fit (``Insufficient cpu``), pod (anti-)affinity and
topology spread are not emulated.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

Obj = dict[str, Any]

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
# podMaxInUnschedulablePodsDuration: an unschedulable pod is retried after this long even without a hint.
UNSCHEDULABLE_RETRY_SECONDS = 300.0
NO_PREEMPTION = "Preemption is not helpful for scheduling"


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taint(taints: list[Obj], tolerations: list[Obj]) -> Obj | None:
    """The first NoSchedule/NoExecute taint that no toleration tolerates."""
    for taint in taints:
        if not isinstance(taint, dict) or taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(isinstance(t, dict) and tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _expression_matches(expression: Obj, labels: dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt") and key in labels and len(values) == 1:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": (node.get("metadata") or {}).get("name", "")}
    expressions = term.get("matchExpressions") or []
    field_expressions = term.get("matchFields") or []
    if not expressions and not field_expressions:
        return False  # an empty term matches no objects
    return (all(_expression_matches(e, labels) for e in expressions)
            and all(_expression_matches(e, fields) for e in field_expressions))


def matches_node_affinity(spec: Obj, node: Obj) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution (terms ORed)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or []
               if isinstance(term, dict))


def filter_reason(pod: Obj, node: Obj) -> str | None:
    """Why the node does not fit the pod, in the first failing filter plugin's words; None when it fits."""
    spec = pod.get("spec") or {}
    node_spec = node.get("spec") or {}
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    if node_spec.get("unschedulable") and not any(
        tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tolerations
    ):
        return "node(s) were unschedulable"
    if spec.get("nodeName") and spec["nodeName"] != (node.get("metadata") or {}).get("name"):
        return "node(s) didn't match the requested node name"
    taint = untolerated_taint(list(node_spec.get("taints") or []), tolerations)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    if not matches_node_affinity(spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def fit_error(reasons: list[str]) -> str:
    """FitError.Error() with DefaultPreemption's post-filter message, one reason per node."""
    total = len(reasons)

    def histogram(counts: Counter[str]) -> str:
        return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))

    if not total:
        return "no nodes available to schedule pods"
    return (f"0/{total} nodes are available: {histogram(Counter(reasons))}. "
            f"preemption: 0/{total} nodes are available: {total} {NO_PREEMPTION}.")


def unschedulable_message(pod: Obj, nodes: list[Obj]) -> str | None:
    """The scheduler's message when no node fits, else None."""
    reasons = [filter_reason(pod, node) for node in nodes]
    if any(reason is None for reason in reasons) and nodes:
        return None
    return fit_error([r for r in reasons if r is not None])
