"""Which NetworkPolicies isolate a probe pod for egress, so an EGRESS_BLOCKED finding can name them.

A pod is isolated for egress by every policy in its namespace whose ``podSelector`` selects its labels and whose
``policyTypes`` include ``Egress`` (unset: ``Egress`` when the policy has egress rules), per the
networking.k8s.io/v1 API reference. Pure: the policies are the ones collected beside the pod
(harness.collect.probe_pods); when the harness may not list them, it says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.facts import ClusterFacts, PodFacts


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


def rule_may_open(rule: dict[str, Any], protocol: str, port: int) -> bool:
    """Whether an egress rule may let a pod open ``port`` over ``protocol`` (of some address: the peers are not
    judged): a rule without ports allows every port; an entry's protocol is TCP when unset; an entry without a
    port, or a named port, may be any; ``endPort`` makes a range."""
    entries = rule.get("ports") or []
    if not entries:
        return True
    for entry in entries:
        if str(entry.get("protocol") or "TCP").upper() != protocol:
            continue
        first, last = entry.get("port"), entry.get("endPort")
        if first is None or isinstance(first, str):
            return True
        if int(first) == port or (last is not None and int(first) <= port <= int(last)):
            return True
    return False


def _opens_dns(rule: dict[str, Any]) -> bool:
    """Whether an egress rule lets a pod send DNS queries: UDP port 53 (``ports: [{port: 53}]`` is TCP, so lets
    only DNS over TCP out, and resolvers ask over UDP first; CoreDNS names its ports "dns" and "dns-tcp")."""
    return rule_may_open(rule, "UDP", 53)


def dns_blocking_policies(pod: PodFacts | None) -> list[dict[str, Any]]:
    """The NetworkPolicies that isolate the probe pod for egress when none of their rules lets it send DNS
    queries (a pod isolated for egress may open only what some policy selecting it allows): all of them, so
    a rule added to one repairs it; empty when one allows DNS, none isolates the pod or they were not read."""
    if pod is None or pod.network_policies is None:
        return []
    found = sorted(_isolating(pod.network_policies, pod.namespace, _labels(pod.pod)), key=_name)
    if any(_opens_dns(rule) for policy in found for rule in (policy.get("spec") or {}).get("egress") or []):
        return []
    return found


@dataclass(frozen=True)
class WorkloadEgress:
    """The workload's pods of one controller whose egress NetworkPolicies restrict where the probe pod's is not
    restricted alike: the probe's connections prove nothing about theirs."""

    owner: str  # Kind/name
    pods: list[str]
    policies: list[str]  # the policies that isolate these pods for egress
    rules: list[dict[str, Any]]  # their egress rules: what the pods may open, and nothing else
    # a container sets HTTPS_PROXY (AKS's HTTP proxy configuration puts it in every pod), or a mesh's proxy runs
    # beside it: its connections may go to the proxy's port, not Entra's, so Entra's port proves nothing either way
    proxied: bool = False

    def may_open(self, port: int) -> bool:
        """Whether any rule may let these pods open a TCP connection to ``port`` (of some address: the peers
        are not judged, host names cannot be matched against ipBlocks): a rule without ports allows every
        port; a named port may be any."""
        return any(rule_may_open(rule, "TCP", port) for rule in self.rules)


def _isolating(policies: list[dict[str, Any]], namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in policies if isolates_egress(p, namespace, labels)]


def _name(policy: dict[str, Any]) -> str:
    return str((policy.get("metadata") or {}).get("name"))


def _labels(pod: dict[str, Any] | None) -> dict[str, str]:
    return ((pod or {}).get("metadata") or {}).get("labels") or {}


def _rules(policy: dict[str, Any]) -> bool:
    return bool((policy.get("spec") or {}).get("egress"))


def _unproven(probe_set: list[dict[str, Any]], pod_set: list[dict[str, Any]]) -> bool:
    """Whether what a pod isolated by ``pod_set`` may reach can be less than what the probe pod, isolated by
    ``probe_set``, may: a pod isolated for egress may open what any policy selecting it allows, and nothing else
    (networking.k8s.io/v1 NetworkPolicySpec). Unisolated, the pod may open anything; a probe unisolated reached
    Entra through no rule; a policy of the probe's that the pod escapes, if it has rules, may be what let the
    probe through."""
    if not pod_set:
        return False
    if not probe_set:
        return True
    pod_names = {_name(p) for p in pod_set}
    return any(_rules(p) for p in probe_set if _name(p) not in pod_names)


# the variables Python's urllib, Go's net/http and curl read: https_proxy and http_proxy, in either case
_PROXY_VARIABLES = {name for scheme in ("https", "http") for name in (f"{scheme}_proxy", f"{scheme}_proxy".upper())}


# a mesh's proxy in the pod (Istio's, Linkerd's): what leaves the pod may go to an egress gateway on its own port
_MESH_PROXIES = ("istio-proxy", "linkerd-proxy")


def _proxied(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return any(container.get("name") in _MESH_PROXIES for container in containers) or any(
        variable.get("name") in _PROXY_VARIABLES for container in containers for variable in container.get("env") or [])


def workload_egress_gaps(probe: PodFacts | None, live: list[tuple[str, dict[str, Any]]]) -> list[WorkloadEgress]:
    """The workload's own pods (``(Kind/name of their controller, pod)``, in the probe pod's namespace) whose
    egress the probe's does not prove: a NetworkPolicy written for the app's labels (and not the probe's) can
    leave them unable to reach Entra or the resources while the probe reaches both. Grouped by controller;
    empty when the policies were not read."""
    if probe is None or probe.network_policies is None:
        return []
    policies = probe.network_policies
    probe_set = _isolating(policies, probe.namespace, _labels(probe.pod))
    grouped: dict[str, list[tuple[str, list[dict[str, Any]], bool]]] = {}
    for owner, pod in live:
        meta = pod.get("metadata") or {}
        if meta.get("namespace", probe.namespace) != probe.namespace:
            continue
        pod_set = _isolating(policies, probe.namespace, _labels(pod))
        if _unproven(probe_set, pod_set):
            grouped.setdefault(owner, []).append((str(meta.get("name") or ""), pod_set, _proxied(pod)))
    return [
        WorkloadEgress(owner, sorted(name for name, _, _ in members), sorted(policies),
                       [rule for policy in policies.values() for rule in (policy.get("spec") or {}).get("egress") or []],
                       any(proxied for _, _, proxied in members))
        for owner, members in grouped.items()
        for policies in [{_name(p): p for _, found, _ in members for p in found}]
    ]


def probe_only_policies(probe: PodFacts | None, live: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The policies that isolate the probe pod for egress and none of the workload's live pods (when it has
    some): a policy written for the probe's labels blocks the harness, not the workload."""
    if probe is None or probe.network_policies is None or not live:
        return []
    selected = {_name(p) for _, pod in live for p in _isolating(probe.network_policies, probe.namespace, _labels(pod))}
    return sorted({_name(p) for p in _isolating(probe.network_policies, probe.namespace, _labels(probe.pod))}
                  - selected)


def unenforced(cluster: ClusterFacts | None) -> bool:
    """ARM says no engine enforces NetworkPolicies on the cluster: ``networkProfile.networkPolicy`` "none", or
    unset ("Network policies will not be enforced. This is the default value when NetworkPolicy is not
    specified": the ContainerService API's NetworkPolicy enum). The API server still stores them, so kubectl shows
    policies that block nothing. False when ARM was not read or did not describe the network."""
    fetched = cluster.arm_cluster if cluster else None
    if fetched is None or not fetched.ok or not isinstance(fetched.body, dict):
        return False
    profile = (fetched.body.get("properties") or {}).get("networkProfile")
    return isinstance(profile, dict) and str(profile.get("networkPolicy") or "none").lower() == "none"


@dataclass(frozen=True)
class RuleTarget:
    """The NetworkPolicy an egress rule is best added to: one that isolates the pods (its rule then applies to
    them), and whether it has an egress list to append to."""

    name: str
    has_rules: bool


def rule_target(pod: PodFacts | None, names: list[str], avoid: list[str] | None = None) -> RuleTarget | None:
    """The first of ``names`` (policies isolating the pods) not in ``avoid`` (the probe's alone, when the
    workload's pods must get out too), else the first; None when their specs were not read."""
    if pod is None or pod.network_policies is None or not names:
        return None
    by_name = {_name(p): p for p in pod.network_policies if (p.get("metadata") or {}).get("namespace") == pod.namespace}
    chosen = [name for name in names if name in by_name and name not in (avoid or [])] or [
        name for name in names if name in by_name]
    if not chosen:
        return None
    egress = (by_name[chosen[0]].get("spec") or {}).get("egress")
    return RuleTarget(chosen[0], isinstance(egress, list) and bool(egress))


def rules_open_dns(rules: list[dict[str, Any]]) -> bool:
    """Whether any of these egress rules lets DNS queries out (UDP 53)."""
    return any(_opens_dns(rule) for rule in rules)


# the webhook's serving port: the chart's and the add-on's container port "webhook-server" (the Service's
# targetPort 9443, Azure/azure-workload-identity charts/workload-identity-webhook values.yaml service.targetPort)
WEBHOOK_PORT_NAME, WEBHOOK_PORT = "webhook-server", 9443


@dataclass
class WebhookIngressBlock:
    """NetworkPolicies that isolate the webhook's pods for ingress and of which no rule opens its serving port to
    anyone: the API server's calls to it are dropped (Azure/azure-workload-identity#611)."""

    namespace: str
    policies: list[dict[str, Any]]  # name, spec: the isolating policies
    port: int

    @property
    def names(self) -> list[str]:
        return sorted(str((p.get("metadata") or {}).get("name")) for p in self.policies)


def _serving_port(deployment: dict[str, Any]) -> int:
    for container in ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == WEBHOOK_PORT_NAME and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return WEBHOOK_PORT


def _ingress_port_may_open(rule: dict[str, Any], port: int) -> bool:
    """Whether an ingress rule may admit a connection to ``port`` over TCP, whatever its peers (not judged: which
    address the control plane calls from is not known): the port by number or range, its name, or no ports."""
    entries = rule.get("ports") or []
    if not entries:
        return True
    for entry in entries:
        if str(entry.get("protocol") or "TCP").upper() != "TCP":
            continue
        first, last = entry.get("port"), entry.get("endPort")
        if first is None or first == WEBHOOK_PORT_NAME:
            return True
        if isinstance(first, int) and (first == port or (isinstance(last, int) and first <= port <= last)):
            return True
    return False


def webhook_ingress_blocks(facts: ClusterFacts) -> list[WebhookIngressBlock]:
    """Per namespace the webhook runs in: the policies that isolate its pods (its Deployment's pod template labels)
    for ingress when none of their rules may admit its serving port; empty when one may, none isolates them or
    they were not read."""
    if facts.webhook_network_policies is None:
        return []
    blocks: list[WebhookIngressBlock] = []
    for deployment in facts.webhook_deployments:
        namespace = str((deployment.get("metadata") or {}).get("namespace") or "")
        labels = (((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not namespace or any(b.namespace == namespace for b in blocks):
            continue
        port = _serving_port(deployment)
        isolating = [p for p in facts.webhook_network_policies if _isolates_ingress(p, namespace, labels)]
        if isolating and not any(_ingress_port_may_open(rule or {}, port)
                                 for p in isolating for rule in (p.get("spec") or {}).get("ingress") or []):
            blocks.append(WebhookIngressBlock(namespace, isolating, port))
    return blocks


def _isolates_ingress(policy: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes") or ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    return ((policy.get("metadata") or {}).get("namespace") == namespace and "Ingress" in types
            and selector_matches(spec.get("podSelector"), labels))
