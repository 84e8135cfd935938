"""Which NetworkPolicies isolate the probe pod for egress: a pure function of the pod and its namespace's policies."""

from __future__ import annotations

from typing import Any

from harness.checks.network_policies import egress_policies
from harness.facts import PodFacts


def policy(name: str, selector: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "finance"}, "spec": {"podSelector": selector, **spec}}


def probe_pod(policies: list[dict[str, Any]] | None) -> PodFacts:
    return PodFacts("finance", "wi-probe-x", pod={"metadata": {"labels": {"app.kubernetes.io/name": "wi-probe",
                                                                          "tier": "probe"}}},
                    network_policies=policies)


def test_policies_that_select_the_pod_and_isolate_egress_are_named() -> None:
    policies = [
        policy("deny-all-egress", {}, policyTypes=["Egress"]),
        policy("rules-imply-egress", {"matchLabels": {"tier": "probe"}}, egress=[{"to": []}]),
        policy("ingress-only", {}),  # no policyTypes, no egress rules: Ingress alone
        policy("other-pods", {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["probe"]}]},
               policyTypes=["Egress"]),
        policy("needs-a-label", {"matchExpressions": [{"key": "team", "operator": "Exists"}]}, policyTypes=["Egress"]),
    ]
    assert egress_policies(probe_pod(policies)) == ["deny-all-egress", "rules-imply-egress"]


def test_unread_policies_say_nothing_and_none_isolate_an_empty_namespace() -> None:
    assert egress_policies(probe_pod(None)) is None and egress_policies(None) is None
    assert egress_policies(probe_pod([])) == []
