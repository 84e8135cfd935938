"""Which NetworkPolicies isolate a probe pod for egress, so an EGRESS_BLOCKED finding can name them.

A pod is isolated for egress by every policy in its namespace whose ``podSelector`` selects its labels and whose
``policyTypes`` include ``Egress`` (unset: ``Egress`` when the policy has egress rules), per the
networking.k8s.io/v1 API reference. Pure: the policies are the ones collected beside the pod
(harness.collect.probe_pods); when the harness may not list them, it says nothing.
"""

from __future__ import annotations

from typing import Any

from harness.facts import PodFacts


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector against a label set (``{}`` selects every pod)."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if (operator == "In" and not (present and labels[key] in values)) or (
            operator == "NotIn" and present and labels[key] in values
        ) or (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


def isolates_egress(policy: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes") or ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    return ((policy.get("metadata") or {}).get("namespace") == namespace and "Egress" in types
            and selector_matches(spec.get("podSelector"), labels))


def egress_policies(pod: PodFacts | None) -> list[str] | None:
    """The names of the NetworkPolicies that isolate the probe pod for egress; None when they were not read."""
    if pod is None or pod.network_policies is None:
        return None
    labels = ((pod.pod or {}).get("metadata") or {}).get("labels") or {}
    return sorted(str((p.get("metadata") or {}).get("name")) for p in pod.network_policies
                  if isolates_egress(p, pod.namespace, labels))
