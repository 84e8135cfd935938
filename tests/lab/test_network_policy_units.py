"""NetworkPolicy egress semantics (lab.kube.netpol), its validation, and the egress fault's policy (lab.egress)."""

from __future__ import annotations

from typing import Any

import pytest

from lab import egress
from lab.kube import errors, netpol, validation
from lab.kube.resources import BUILTIN_TYPES

POD = {"metadata": {"name": "web", "namespace": "app", "labels": {"app": "web", "tier": "front"}}}
NETPOL_TYPE = next(rt for rt in BUILTIN_TYPES if rt.plural == "networkpolicies")


def policy(spec: dict[str, Any], name: str = "p", namespace: str = "app") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def allowed(policies: list[dict[str, Any]], port: int, host: str = "127.0.0.1") -> bool:
    return netpol.egress_allowed(policies, POD, host, port)


def test_no_selecting_policy_allows_everything_and_an_empty_egress_list_denies_everything() -> None:
    assert allowed([], 443)
    ingress_only = policy({"podSelector": {}, "ingress": [{}]})  # policyTypes defaults to Ingress only
    assert netpol.policy_types(ingress_only) == ["Ingress"] and allowed([ingress_only], 443)
    other_namespace = policy({"podSelector": {}, "policyTypes": ["Egress"]}, namespace="elsewhere")
    assert allowed([other_namespace], 443)
    deny_all = policy({"podSelector": {}, "policyTypes": ["Egress"]})
    assert not allowed([deny_all], 443)
    assert netpol.selecting_policies([deny_all, other_namespace], POD) == ["p"]


def test_pod_selector_with_expressions() -> None:
    deny = {"policyTypes": ["Egress"]}
    assert not allowed([policy({**deny, "podSelector": {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["front", "back"]}]}})], 1)
    assert allowed([policy({**deny, "podSelector": {"matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["front"]}]}})], 1)
    assert allowed([policy({**deny, "podSelector": {"matchLabels": {"app": "db"}}})], 1)
    assert not allowed([policy({**deny, "podSelector": {"matchExpressions": [
        {"key": "missing", "operator": "DoesNotExist"}]}})], 1)


def test_rules_are_an_allow_list_and_policies_add_up() -> None:
    only_kube = policy({"podSelector": {}, "egress": [{"ports": [{"port": 6443}]}]}, "kube")
    assert netpol.policy_types(only_kube) == ["Ingress", "Egress"]
    assert allowed([only_kube], 6443) and not allowed([only_kube], 443)
    plus_range = policy({"podSelector": {}, "egress": [{"ports": [{"port": 400, "endPort": 500}]}]}, "range")
    assert allowed([only_kube, plus_range], 443) and not allowed([only_kube, plus_range], 501)
    udp_only = policy({"podSelector": {}, "egress": [{"ports": [{"protocol": "UDP", "port": 443}]}]})
    assert not allowed([udp_only], 443)
    named = policy({"podSelector": {}, "egress": [{"ports": [{"port": "https"}]}]})
    assert not allowed([named], 443)  # a named port names a destination pod's port: never a lab service's


def test_peers_only_ip_blocks_match_services_outside_the_cluster() -> None:
    def to(*peers: dict[str, Any]) -> dict[str, Any]:
        return policy({"podSelector": {}, "egress": [{"to": list(peers)}]})

    assert allowed([to({"ipBlock": {"cidr": "0.0.0.0/0"}})], 443)
    assert not allowed([to({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["127.0.0.0/8"]}})], 443)
    assert not allowed([to({"ipBlock": {"cidr": "10.0.0.0/8"}})], 443)
    assert not allowed([to({"ipBlock": {"cidr": "::/0"}})], 443)
    assert not allowed([to({"namespaceSelector": {}}), to({"podSelector": {}})], 443)


def test_validation_messages() -> None:
    bad = policy({"podSelector": {}, "policyTypes": ["Egress", "Sideways"], "egress": [
        {"ports": [{"port": 70000}, {"port": 90, "endPort": 80}, {"port": "https", "endPort": 9},
                   {"protocol": "ICMP"}],
         "to": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}, "podSelector": {}},
                {"ipBlock": {"cidr": "10.0.0/8"}}]},
    ]})
    with pytest.raises(errors.ApiError) as refused:
        validation.validate_create(NETPOL_TYPE, bad)
    assert refused.value.code == 422
    message = refused.value.message
    assert message.startswith('NetworkPolicy.networking.k8s.io "p" is invalid: [')
    for expected in (
        "spec.egress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.egress[0].ports[1].endPort: Invalid value: 90: must be greater than or equal to `port`",
        "spec.egress[0].ports[2].endPort: Invalid value: 9: may not be specified when `port` is non-numeric",
        'spec.egress[0].ports[3].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
        "spec.egress[0].to[0]: Required value: must specify a peer",
        'spec.egress[0].to[1].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`',
        "spec.egress[0].to[1]: Forbidden: may not specify both ipBlock and another peer",
        'spec.egress[0].to[2].ipBlock.cidr: Invalid value: "10.0.0/8": not a valid CIDR',
        'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"',
    ):
        assert expected in message, expected
    validation.validate_create(NETPOL_TYPE, policy({"podSelector": {}, "egress": [{"to": [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["127.0.0.0/8"]}}], "ports": [{"port": 1, "endPort": 9}]}]}))


def test_the_egress_fault_policy_allows_every_port_but_the_blocked_services() -> None:
    ports = {1000: "kube", 2000: "entra", 2001: "entra", 3000: "keyvault", 65535: "arm"}
    made = egress.fault_policy("app", ["entra"], ports)
    assert made["metadata"]["name"] == "deny-egress-to-entra"
    assert [p for p in made["spec"]["egress"][0]["ports"] if p["protocol"] == "TCP"] == [
        {"protocol": "TCP", "port": 1, "endPort": 1999}, {"protocol": "TCP", "port": 2002, "endPort": 65535}]
    pod = {"metadata": {"name": "x", "namespace": "app", "labels": {}}}
    assert [port for port in ports if not netpol.egress_allowed([made], pod, "127.0.0.1", port)] == [2000, 2001]
    both = egress.fault_policy("app", ["arm", "kube"], ports)
    assert [port for port in ports if not netpol.egress_allowed([both], pod, "127.0.0.1", port)] == [1000, 65535]


WEBHOOK_POD = {"metadata": {"name": "wh", "namespace": "kube-system",
                            "labels": {"azure-workload-identity.io/system": "true"}},
               "spec": {"containers": [{"name": "manager", "ports": [
                   {"containerPort": 9443, "name": "webhook-server", "protocol": "TCP"}]}]}}
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}


@pytest.mark.parametrize(("spec", "reaches"), [
    ({"podSelector": {}, "policyTypes": ["Ingress"]}, False),  # default deny ingress (azure-workload-identity#611)
    ({"podSelector": {}, "policyTypes": ["Egress"]}, True),
    ({"podSelector": {"matchLabels": {"app": "other"}}, "policyTypes": ["Ingress"]}, True),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 8095}]}]}, False),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 9443}]}]}, True),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "webhook-server"}]}]}, True),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "metrics"}]}]}, False),
    ({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}, False),  # pods only: not the API server
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}, True),
    ({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": KUBE_SYSTEM}}]}]}, True),
])
def test_the_api_servers_call_to_a_webhook_pod_under_ingress_policies(spec: dict[str, Any], reaches: bool) -> None:
    policies = [policy(spec, namespace="kube-system")]
    assert netpol.ingress_from_api_server_allowed(policies, WEBHOOK_POD, 9443, KUBE_SYSTEM) is reaches
    assert netpol.ingress_from_api_server_allowed([], WEBHOOK_POD, 9443, KUBE_SYSTEM)
