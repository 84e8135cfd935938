"""NetworkPolicy (networking.k8s.io/v1) as a CNI enforces it for a pod's egress.

Semantics follow the API's documentation (k8s.io/api/networking/v1 types.go) and the upstream conformance
behaviour: a pod is isolated for egress once any policy in its namespace selects it with ``Egress`` in its
policyTypes; then a connection is allowed only if some rule of some selecting policy allows it (policies are
additive allow-lists). A rule with no ``to`` allows every destination, with no ``ports`` every port. The lab's
services are not pods, so only ``ipBlock`` peers can match them (``podSelector``/``namespaceSelector`` select
pods), and a named port (which names a destination pod's container port) never matches them.

Denied connections are dropped, not rejected, as Azure NPM and Cilium do: the client sees a connect timeout
(Azure/azure-container-networking#237, #723).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from lab.kube.labelselector import matches as selector_matches
from lab.kube.store import Obj

GROUP = "networking.k8s.io"
PLURAL = "networkpolicies"


def policy_types(policy: Obj) -> list[str]:
    """spec.policyTypes as stored or, when unset, as SetDefaults_NetworkPolicy fills it in."""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return list(types)
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def defaults(policy: Obj) -> None:
    """SetDefaults_NetworkPolicy and SetDefaults_NetworkPolicyPort: policyTypes, and protocol TCP on ports."""
    spec = policy.setdefault("spec", {})
    spec.setdefault("podSelector", {})
    spec["policyTypes"] = policy_types(policy)
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in (rule or {}).get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def selects(policy: Obj, pod: Obj) -> bool:
    """Whether ``policy`` isolates ``pod`` for egress."""
    meta, pod_meta = policy.get("metadata") or {}, pod.get("metadata") or {}
    if meta.get("namespace") != pod_meta.get("namespace") or "Egress" not in policy_types(policy):
        return False
    return selector_matches((policy.get("spec") or {}).get("podSelector"), pod_meta.get("labels") or {})


def _in_block(block: dict[str, Any], address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        network = ipaddress.ip_network(str(block.get("cidr", "")), strict=False)
        if address.version != network.version or address not in network:
            return False
        return not any(address in ipaddress.ip_network(str(cidr), strict=False)
                       for cidr in block.get("except") or []
                       if ipaddress.ip_network(str(cidr), strict=False).version == address.version)
    except ValueError:
        return False


def _peer_allows(peer: dict[str, Any], address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Only ipBlock selects destinations that are not pods; podSelector/namespaceSelector peers select pods.
    return isinstance(peer, dict) and isinstance(peer.get("ipBlock"), dict) and _in_block(peer["ipBlock"], address)


def _port_allows(entry: dict[str, Any], port: int, protocol: str) -> bool:
    if not isinstance(entry, dict) or entry.get("protocol", "TCP") != protocol:
        return False
    wanted = entry.get("port")
    if wanted is None:
        return True
    if not isinstance(wanted, int):  # a named port names a destination pod's container port
        return False
    end = entry.get("endPort")
    return wanted <= port <= end if isinstance(end, int) else wanted == port


def rule_allows(rule: dict[str, Any], host: str, port: int, protocol: str = "TCP") -> bool:
    rule = rule or {}
    address = ipaddress.ip_address(host)
    peers, ports = rule.get("to") or [], rule.get("ports") or []
    if peers and not any(_peer_allows(peer, address) for peer in peers):
        return False
    return not ports or any(_port_allows(entry, port, protocol) for entry in ports)


def egress_allowed(policies: list[Obj], pod: Obj, host: str, port: int, protocol: str = "TCP") -> bool:
    """Whether ``pod`` may open a connection to ``host:port`` under ``policies`` (all of the cluster's)."""
    selecting = [policy for policy in policies if selects(policy, pod)]
    if not selecting:
        return True
    return any(rule_allows(rule, host, port, protocol)
               for policy in selecting for rule in (policy.get("spec") or {}).get("egress") or [])


def selecting_policies(policies: list[Obj], pod: Obj) -> list[str]:
    """Names of the policies that isolate ``pod`` for egress."""
    return sorted(policy["metadata"]["name"] for policy in policies if selects(policy, pod))


def _ingress_selects(policy: Obj, pod: Obj) -> bool:
    meta, pod_meta = policy.get("metadata") or {}, pod.get("metadata") or {}
    if meta.get("namespace") != pod_meta.get("namespace") or "Ingress" not in policy_types(policy):
        return False
    return selector_matches((policy.get("spec") or {}).get("podSelector"), pod_meta.get("labels") or {})


def _ingress_port_allows(entry: dict[str, Any], pod: Obj, port: int) -> bool:
    """A rule's port against the pod's port: a number (or range), or a name, which names a container port of the
    destination pod (here: the pod itself)."""
    if isinstance(entry, dict) and isinstance(entry.get("port"), str) and entry.get("protocol", "TCP") == "TCP":
        return any(p.get("name") == entry["port"] and p.get("containerPort") == port
                   for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or [])
    return _port_allows(entry, port, "TCP")


def _from_control_plane(peer: dict[str, Any], namespace_labels: dict[str, str]) -> bool:
    """Whether a ``from`` peer admits the API server's call to a webhook. The API server is no pod of the cluster's:
    an ipBlock is taken to admit it (unverified: which address AKS's control plane calls from, its konnectivity
    tunnel or API server VNet integration, the lab cannot know), and so is a namespaceSelector that selects
    kube-system without a podSelector (unverified: AKS's konnectivity-agent pods there carry the calls); a
    podSelector selects pods, never the API server."""
    if not isinstance(peer, dict):
        return False
    if isinstance(peer.get("ipBlock"), dict):
        return True
    return ("namespaceSelector" in peer and "podSelector" not in peer
            and selector_matches(peer.get("namespaceSelector"), namespace_labels))


def ingress_from_api_server_allowed(policies: list[Obj], pod: Obj, port: int,
                                    kube_system_labels: dict[str, str]) -> bool:
    """Whether the API server's call to ``pod``'s ``port`` (a webhook) gets through: a pod isolated for ingress by
    some policy of its namespace takes only what some rule of those policies allows. A dropped call is what the
    Workload ID webhook behind a default-deny ingress policy sees (Azure/azure-workload-identity#611, and
    kubernetes/kubernetes#128162: the API server's call runs to its timeout, "context deadline exceeded")."""
    selecting = [policy for policy in policies if _ingress_selects(policy, pod)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in (policy.get("spec") or {}).get("ingress") or []:
            rule = rule or {}
            peers, ports = rule.get("from") or [], rule.get("ports") or []
            if peers and not any(_from_control_plane(peer, kube_system_labels) for peer in peers):
                continue
            if not ports or any(_ingress_port_allows(entry, pod, port) for entry in ports):
                return True
    return False


# ---------------------------------------------------------------------------- validation (422)
#
# ValidateNetworkPolicySpec (pkg/apis/networking/validation): ports, peers and policyTypes, with its messages.

Cause = tuple[str, str, str]  # (reason, field, message), as lab.kube.validation reports them
PORT_RANGE = "must be between 1 and 65535, inclusive"


def _port_causes(port: Any, path: str) -> list[Cause]:
    if not isinstance(port, dict):
        return []
    causes: list[Cause] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in ("TCP", "UDP", "SCTP"):
        causes.append(("FieldValueNotSupported", f"{path}.protocol",
                       f'Unsupported value: "{protocol}": supported values: "TCP", "UDP", "SCTP"'))
    number, end = port.get("port"), port.get("endPort")
    if isinstance(number, int):
        if not 1 <= number <= 65535:
            causes.append(("FieldValueInvalid", f"{path}.port", f"Invalid value: {number}: {PORT_RANGE}"))
        if isinstance(end, int):
            if end < number:
                causes.append(("FieldValueInvalid", f"{path}.endPort",
                               f"Invalid value: {number}: must be greater than or equal to `port`"))
            if not 1 <= end <= 65535:
                causes.append(("FieldValueInvalid", f"{path}.endPort", f"Invalid value: {end}: {PORT_RANGE}"))
    elif number is not None and end is not None:
        causes.append(("FieldValueInvalid", f"{path}.endPort",
                       f"Invalid value: {end}: may not be specified when `port` is non-numeric"))
    elif number is None and end is not None:
        causes.append(("FieldValueInvalid", f"{path}.endPort",
                       f"Invalid value: {end}: may not be specified when `port` is not specified"))
    return causes


def _cidr(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(text), strict=False) if isinstance(text, str) and "/" in text else None
    except ValueError:
        return None


def _ip_block_causes(block: dict[str, Any], path: str) -> list[Cause]:
    cidr = block.get("cidr")
    if not cidr:
        return [("FieldValueRequired", f"{path}.cidr", "Required value")]
    network = _cidr(cidr)
    if network is None:
        return [("FieldValueInvalid", f"{path}.cidr", f'Invalid value: "{cidr}": not a valid CIDR')]
    causes: list[Cause] = []
    for index, text in enumerate(block.get("except") or []):
        where = f"{path}.except[{index}]"
        excepted = _cidr(text)
        if excepted is None:
            causes.append(("FieldValueInvalid", where, f'Invalid value: "{text}": not a valid CIDR'))
        elif (excepted.version != network.version or excepted.network_address not in network
              or network.prefixlen >= excepted.prefixlen):
            causes.append(("FieldValueInvalid", where, f'Invalid value: "{text}": must be a strict subset of `cidr`'))
    return causes


def _peer_causes(peer: Any, path: str) -> list[Cause]:
    peer = peer if isinstance(peer, dict) else {}
    kinds = [key for key in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(key) is not None]
    causes = _ip_block_causes(peer["ipBlock"], f"{path}.ipBlock") if isinstance(peer.get("ipBlock"), dict) else []
    if not kinds:
        causes.append(("FieldValueRequired", path, "Required value: must specify a peer"))
    elif len(kinds) > 1 and "ipBlock" in kinds:
        causes.append(("FieldValueForbidden", path, "Forbidden: may not specify both ipBlock and another peer"))
    return causes


def validation_causes(policy: Obj) -> list[Cause]:
    spec = policy.get("spec") or {}
    causes: list[Cause] = []
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(spec.get(direction) or []):
            rule = rule if isinstance(rule, dict) else {}
            base = f"spec.{direction}[{index}]"
            for number, port in enumerate(rule.get("ports") or []):
                causes += _port_causes(port, f"{base}.ports[{number}]")
            for number, peer in enumerate(rule.get(peers) or []):
                causes += _peer_causes(peer, f"{base}.{peers}[{number}]")
    types = spec.get("policyTypes") or []
    if len(types) > 2:
        causes.append(("FieldValueInvalid", "spec.policyTypes",
                       f"Invalid value: {json.dumps(types)}: may not specify more than two policyTypes"))
        return causes
    for index, kind in enumerate(types):
        if kind not in ("Ingress", "Egress"):
            causes.append(("FieldValueNotSupported", f"spec.policyTypes[{index}]",
                           f'Unsupported value: "{kind}": supported values: "Ingress", "Egress"'))
    return causes
