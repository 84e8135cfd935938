"""Which NetworkPolicies isolate the probe pod for egress, and the workload's own pods where the probe's are not
restricted alike: pure functions of the pods and their namespace's policies."""

from __future__ import annotations

import time
from typing import Any

from harness.checks.access import access_outcome
from harness.checks.context import WorkloadContext
from harness.checks.exchange import exchange_succeeds
from harness.checks.model import FAIL, PASS, WARN, Outcome
from harness.checks.network_policies import (
    WorkloadEgress,
    egress_policies,
    probe_only_policies,
    unenforced,
    workload_egress_gaps,
)
from harness.config import KeyVaultSecretAccess, WorkloadConfig
from harness.facts import (
    ClusterFacts,
    Fetched,
    IdentityFacts,
    LivePod,
    LivePodsFacts,
    PodFacts,
    ServiceAccountFacts,
    WorkloadFacts,
)


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


# ---------------------------------------------------------------- the workload's own pods against the probe's


APP = {"metadata": {"name": "backend-1", "namespace": "finance", "labels": {"app": "backend"}}}
TOKEN_URL = "https://login.microsoftonline.com/t/oauth2/v2.0/token"


def _gaps(policies: list[dict[str, Any]]) -> list[WorkloadEgress]:
    return workload_egress_gaps(probe_pod(policies), [("Deployment/backend", APP)])


def test_a_policy_for_the_apps_labels_alone_leaves_its_pods_where_the_probe_does_not_go() -> None:
    deny = policy("backend-deny-egress", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"])
    dns = policy("backend-dns", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"],
                 egress=[{"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP", "port": 53},
                                                                      {"protocol": "TCP", "port": 53}]}])
    vnet = policy("backend-vnet", {"matchLabels": {"app": "backend"}}, egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])
    ranged = policy("backend-ranged", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"],
                    egress=[{"ports": [{"port": 400, "endPort": 500}]}])
    (gap,) = _gaps([deny])
    assert (gap.owner, gap.pods, gap.policies, gap.rules) == ("Deployment/backend", ["backend-1"],
                                                              ["backend-deny-egress"], [])
    assert not gap.may_open(443)
    (gap,) = _gaps([deny, dns])  # "deny all but DNS": port 53 only, whatever the peers
    assert gap.policies == ["backend-deny-egress", "backend-dns"] and not gap.may_open(443) and gap.may_open(53)
    (gap,) = _gaps([vnet])  # an ipBlock the harness cannot match a host name against: unproven, not blocked
    assert gap.may_open(443)
    (gap,) = _gaps([ranged])
    assert gap.may_open(443) and not gap.may_open(8443)


def test_policies_that_treat_the_probe_and_the_app_alike_leave_no_gap() -> None:
    everyone = policy("default-deny", {}, policyTypes=["Egress"])  # the probe is blocked too: its own finding
    ingress = policy("ingress-only", {"matchLabels": {"app": "backend"}}, ingress=[{"from": []}])
    allow_all = policy("allow-entra", {}, policyTypes=["Egress"], egress=[{"ports": [{"port": 443}]}])
    app_deny = policy("backend-deny", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"])
    assert _gaps([everyone]) == [] and _gaps([ingress]) == [] and _gaps([]) == []
    assert _gaps([allow_all, app_deny]) == []  # the app may open all the probe may: rules add up
    assert workload_egress_gaps(probe_pod(None), [("Deployment/backend", APP)]) == []  # not read: silent
    other = {"metadata": {"name": "x", "namespace": "orders", "labels": {"app": "backend"}}}
    assert workload_egress_gaps(probe_pod([app_deny]), [("Deployment/x", other)]) == []


def test_a_probe_let_through_by_a_rule_the_app_escapes_proves_nothing_for_the_app() -> None:
    probe_allow = policy("probe-egress", {"matchLabels": {"tier": "probe"}}, policyTypes=["Egress"],
                         egress=[{}])
    app_deny = policy("backend-deny", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"])
    (gap,) = _gaps([probe_allow, app_deny])
    assert gap.policies == ["backend-deny"] and not gap.may_open(443)


def test_a_policy_for_the_probes_labels_alone_is_named_as_the_probes() -> None:
    probe_deny = policy("probe-deny", {"matchLabels": {"app.kubernetes.io/name": "wi-probe"}}, policyTypes=["Egress"])
    everyone = policy("default-deny", {}, policyTypes=["Egress"])
    live = [("Deployment/backend", APP)]
    assert probe_only_policies(probe_pod([probe_deny, everyone]), live) == ["probe-deny"]
    assert probe_only_policies(probe_pod([probe_deny]), []) == []  # no live pod: nothing to compare


def _passing_exchange(policies: list[dict[str, Any]], app: dict[str, Any] = APP) -> Outcome:
    pod = probe_pod(policies)
    pod.probe = {"steps": [{"name": "exchange", "status": "pass",
                            "evidence": {"token_url": TOKEN_URL, "claims": {"aud": "https://vault.azure.net"}}}]}
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(),
                          ServiceAccountFacts("finance", "backend-sa", True, True, {}), IdentityFacts(), pod,
                          live_pods=LivePodsFacts([LivePod(app, "Deployment", "backend")]))
    workload = WorkloadConfig(namespace="finance", service_account="backend-sa", access=[
        {"kind": "keyvault_secret", "vault_url": "https://finance-kv.vault.azure.net/", "secret": "s",
         "expect": "allow"}])
    return exchange_succeeds(WorkloadContext(facts, workload, ClusterFacts(time.time()), None, time.time()))


def test_the_probes_exchange_does_not_pass_a_workload_whose_pods_a_policy_cuts_off() -> None:
    outcome = _passing_exchange([policy("backend-dns", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"],
                                        egress=[{"ports": [{"protocol": "UDP", "port": 53}]}])])
    assert outcome.status == FAIL
    (finding,) = outcome.findings
    assert finding.code == "EGRESS_BLOCKED" and finding.severity == "error"
    assert finding.message == ("NetworkPolicy backend-dns cuts Deployment/backend's pods (backend-1) off from Entra "
                               "(login.microsoftonline.com): it isolates them for egress and allows no connection to "
                               "port 443; the probe pod, not restricted alike, reached it")
    assert finding.fix_lines() == [
        "kubectl get networkpolicy -n finance backend-dns -o yaml",
        "# NetworkPolicy backend-dns leaves Deployment/backend's pods no way to Entra: add an egress rule for the "
        "ports of login.microsoftonline.com, finance-kv.vault.azure.net (and DNS) (a NetworkPolicy names no host: it "
        "opens those ports to any address):",
        # appended to its rules: TCP 443 for both hosts; it already lets DNS out, so no DNS rule
        "kubectl patch networkpolicy backend-dns -n finance --type json -p '[{\"op\":\"add\",\"path\":"
        "\"/spec/egress/-\",\"value\":{\"ports\":[{\"protocol\":\"TCP\",\"port\":443}]}}]'",
        "# the blunt option instead, only if nothing else relies on it (every limit it set goes, for every pod it "
        "selects): kubectl delete networkpolicy -n finance backend-dns",
    ]
    assert outcome.evidence["workload_egress"] == [{"owner": "Deployment/backend", "pods": ["backend-1"],
                                                    "network_policies": ["backend-dns"]}]


def test_a_policy_the_harness_cannot_judge_for_the_apps_pods_is_a_warning() -> None:
    outcome = _passing_exchange([policy("backend-vnet", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"],
                                        egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])])
    assert outcome.status == WARN
    proxy_only = policy("backend-proxy", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"],
                        egress=[{"ports": [{"port": 3128}]}])
    proxied = {**APP, "spec": {"containers": [{"name": "app", "env": [{"name": "HTTPS_PROXY",
                                                                       "value": "http://10.0.0.4:3128/"}]}]}}
    assert _passing_exchange([proxy_only]).status == FAIL  # port 3128 only, no proxy: Entra is out of reach
    assert _passing_exchange([proxy_only], proxied).status == WARN  # through a proxy: its port, not Entra's
    meshed = {**APP, "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "istio-proxy"}]}}
    assert _passing_exchange([proxy_only], meshed).status == WARN  # a mesh's egress gateway may be the way out
    (finding,) = outcome.findings
    assert finding.code == "WORKLOAD_EGRESS_UNPROVEN" and finding.severity == "warning"
    assert finding.fix_lines()[0] == "kubectl get networkpolicy -n finance backend-vnet -o yaml"
    assert _passing_exchange([]).status == PASS


def test_an_access_egress_block_names_every_host_the_probe_could_not_reach() -> None:
    """EGRESS_BLOCKED is reported once per workload: the first access entry's finding names the hosts of the
    others that timed out too, so the egress rule a person adds covers them all."""
    pod = probe_pod([])
    timeout = {"kind": "timeout", "message": "TimeoutError: timed out"}
    pod.probe = {"steps": [
        {"name": "access", "index": 0, "status": "fail", "target": "https://a.vault.azure.net/secrets/s", "evidence": {},
         "error": timeout},
        {"name": "access", "index": 1, "status": "fail", "target": "https://b.vault.azure.net/secrets/t", "evidence": {},
         "error": timeout},
        {"name": "access", "index": 2, "status": "pass", "target": "https://c.blob.core.windows.net/x/y",
         "evidence": {"http_status": 200}}]}
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(),
                          ServiceAccountFacts("finance", "backend-sa", True, True, {}), IdentityFacts(), pod)
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url="https://a.vault.azure.net/", secret="s",
                                 expect="allow")
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    (finding,) = access_outcome(ctx, 0, check).findings
    assert finding.code == "EGRESS_BLOCKED"
    assert finding.message == ("the pod cannot reach https://a.vault.azure.net/secrets/s: TimeoutError: timed out; "
                               "nor b.vault.azure.net (the other access entries' hosts)")


def _cluster(profile: dict[str, Any] | None, status: int = 200) -> ClusterFacts:
    body = {"properties": {} if profile is None else {"networkProfile": profile}}
    return ClusterFacts(time.time(), arm_cluster=Fetched("https://management.azure.com/x", status, body))


def test_a_cluster_without_a_policy_engine_enforces_no_network_policy() -> None:
    """ARM's networkPolicy unset is "none" ("Network policies will not be enforced. This is the default value
    when NetworkPolicy is not specified"): the API server keeps the objects, nothing enforces them."""
    assert unenforced(_cluster({"networkPlugin": "azure"})) and unenforced(_cluster({"networkPolicy": "none"}))
    assert not unenforced(_cluster({"networkPolicy": "cilium"})) and not unenforced(_cluster({"networkPolicy": "azure"}))
    assert not unenforced(_cluster(None)) and not unenforced(_cluster({}, status=403)) and not unenforced(None)
    assert not unenforced(ClusterFacts(time.time()))  # ARM not read: the policies may be enforced


def test_unenforced_policies_are_neither_blamed_nor_compared() -> None:
    """On such a cluster a policy written for the app's labels changes nothing (no finding), and a probe that
    cannot connect is not told to delete a policy that blocks nothing."""
    deny = policy("backend-deny-egress", {"matchLabels": {"app": "backend"}}, policyTypes=["Egress"])
    pod = probe_pod([deny, policy("default-deny", {}, policyTypes=["Egress"])])
    pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"token_url": TOKEN_URL},
                            "error": {"kind": "timeout", "message": "TimeoutError: timed out"}}]}
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(),
                          ServiceAccountFacts("finance", "backend-sa", True, True, {}), IdentityFacts(), pod,
                          live_pods=LivePodsFacts([LivePod(APP, "Deployment", "backend")]))
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          _cluster({"networkPlugin": "azure"}), None, time.time())
    (finding,) = exchange_succeeds(ctx).findings
    assert finding.code == "EGRESS_BLOCKED"
    lines = finding.fix_lines()
    assert lines[0] == ("# the cluster enforces no NetworkPolicy (ARM networkProfile.networkPolicy: none), so "
                        "default-deny does not block the pod: look at the egress firewall, the subnet's NSG and route "
                        "table, or a proxy")
    assert not any(line.startswith("kubectl delete networkpolicy") for line in lines)
    assert finding.evidence["unenforced_network_policies"] == ["default-deny"]
    pod.probe["steps"][0] = {"name": "exchange", "status": "pass", "evidence": {"token_url": TOKEN_URL}}
    assert exchange_succeeds(ctx).status == PASS


DNS_FAILURE = {"kind": "dns", "message": "gaierror: [Errno -3] Temporary failure in name resolution"}


def _unresolved_exchange(policies: list[dict[str, Any]], error: dict[str, Any] = DNS_FAILURE,
                         env: list[dict[str, Any]] | None = None) -> Outcome:
    """The probe could not resolve Entra's host (glibc's EAI_AGAIN when no DNS answer comes back), or another
    connection ``error``; ``env`` is the probe container's as admitted."""
    pod = probe_pod(policies)
    if env is not None:
        assert pod.pod is not None
        pod.pod["spec"] = {"containers": [{"name": "probe", "env": env}]}
    pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"token_url": TOKEN_URL},
                            "error": error}]}
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(),
                          ServiceAccountFacts("finance", "backend-sa", True, True, {}), IdentityFacts(), pod)
    workload = WorkloadConfig(namespace="finance", service_account="backend-sa")
    return exchange_succeeds(WorkloadContext(facts, workload, ClusterFacts(time.time()), None, time.time()))


def test_a_policy_that_lets_https_out_but_no_dns_gets_dns_added_to_its_rules() -> None:
    """Egress to 443 allowed and port 53 forgotten (or allowed as TCP, a port entry's default protocol): the pod
    cannot resolve Entra's host; the fix adds UDP and TCP 53 to the policy's egress rules (JSON patch, one line)
    instead of deleting it, and one policy allowing DNS is enough for none to be blamed."""
    https_only = policy("egress-https", {}, policyTypes=["Egress"], egress=[{"ports": [{"port": 443}]}])
    tcp_dns = policy("egress-dns-tcp", {}, policyTypes=["Egress"], egress=[{"ports": [{"port": 53}]}])
    (finding,) = _unresolved_exchange([https_only, tcp_dns]).findings
    assert finding.code == "EGRESS_BLOCKED"
    assert finding.evidence["dns_blocked_by_network_policies"] == ["egress-dns-tcp", "egress-https"]
    lines = finding.fix_lines()
    assert any("let no DNS query out (UDP port 53), so login.microsoftonline.com cannot be resolved" in line
               for line in lines), lines
    assert ("kubectl patch networkpolicy egress-dns-tcp -n finance --type json -p '[{\"op\":\"add\",\"path\":"
            "\"/spec/egress/-\",\"value\":{\"ports\":[{\"protocol\":\"UDP\",\"port\":53},{\"protocol\":\"TCP\","
            "\"port\":53}]}}]'") in lines
    assert not any(line.startswith("kubectl delete networkpolicy") for line in lines)
    udp_dns = policy("egress-dns", {}, policyTypes=["Egress"], egress=[{"ports": [{"protocol": "UDP", "port": 53}]}])
    (finding,) = _unresolved_exchange([https_only, udp_dns]).findings
    assert "dns_blocked_by_network_policies" not in finding.evidence
    assert finding.fix_lines()[0] == ("kubectl get pods -n kube-system -l k8s-app=kube-dns   # the cluster's DNS "
                                      "(CoreDNS): Running and Ready?")
    assert not any(line.startswith("kubectl delete networkpolicy") for line in finding.fix_lines())


def test_a_tunnel_the_pods_https_proxy_refused_is_the_proxys_allow_list_not_a_network_policy() -> None:
    """AKS's HTTP proxy feature puts HTTPS_PROXY in every pod; a proxy whose allow list lacks Entra's host answers
    CONNECT with 403, which http.client raises as 'Tunnel connection failed: 403 Forbidden'. The finding names the
    proxy (never the user:password in its URL) and the host, and prints the cluster's proxy configuration, not a
    NetworkPolicy deletion."""
    refused = {"kind": "connection", "message": "OSError: Tunnel connection failed: 403 Forbidden"}
    env = [{"name": "HTTPS_PROXY", "value": "http://svc-user:s3cret@proxy.corp.example:3128/"}]
    outcome = _unresolved_exchange([policy("deny-all-egress", {}, policyTypes=["Egress"])], refused, env)
    (finding,) = outcome.findings
    assert finding.code == "EGRESS_BLOCKED"
    assert finding.evidence["proxy_refused"] == {"proxy": "proxy.corp.example:3128",
                                                 "host": "login.microsoftonline.com", "answer": "403 Forbidden"}
    lines = finding.fix_lines()
    assert lines[0].startswith("# proxy.corp.example:3128 (the pod's HTTPS_PROXY) refused to open a tunnel to "
                               "login.microsoftonline.com (403 Forbidden): allow login.microsoftonline.com:443 on "
                               "the proxy"), lines
    assert any(line.startswith("az aks show ") and "--query httpProxyConfig" in line for line in lines), lines
    assert not any(line.startswith("kubectl delete networkpolicy") for line in lines), lines
    assert not any("s3cret" in line for line in lines) and "s3cret" not in str(finding.evidence)
    wants = {"kind": "connection", "message": "OSError: Tunnel connection failed: 407 Proxy Authentication Required"}
    (finding,) = _unresolved_exchange([], wants, env).findings
    assert finding.fix_lines()[0].startswith("# proxy.corp.example:3128 (the pod's HTTPS_PROXY) wants credentials "
                                             "to open a tunnel to login.microsoftonline.com (407 Proxy "
                                             "Authentication Required)")


def test_egress_no_network_policy_blocks_is_looked_for_where_the_cluster_sends_it() -> None:
    """No NetworkPolicy isolates the probe pod and Entra timed out: ARM's networkProfile says where else egress is
    filtered: outboundType userDefinedRouting (a firewall behind the route table, whose rules must allow the
    host), and Cilium's dataplane (CiliumNetworkPolicies, FQDN rules among them, which the harness does not read)."""
    pod = probe_pod([])
    pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"token_url": TOKEN_URL},
                            "error": {"kind": "timeout", "message": "TimeoutError: timed out"}}]}
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(),
                          ServiceAccountFacts("finance", "backend-sa", True, True, {}), IdentityFacts(), pod)
    workload = WorkloadConfig(namespace="finance", service_account="backend-sa")
    cluster = _cluster({"outboundType": "userDefinedRouting", "networkDataplane": "cilium",
                        "networkPolicy": "cilium"})
    (finding,) = exchange_succeeds(WorkloadContext(facts, workload, cluster, None, time.time())).findings
    lines = finding.fix_lines()
    assert lines[0].startswith("# the cluster's egress leaves through its route table's next hop (ARM outboundType "
                               "userDefinedRouting"), lines
    assert "allow login.microsoftonline.com:443" in lines[0]
    assert lines[1].startswith("kubectl get ciliumnetworkpolicies.cilium.io,ciliumclusterwidenetworkpolicies.cilium.io"
                               " -A"), lines
    plain = _cluster({"outboundType": "loadBalancer", "networkDataplane": "azure", "networkPolicy": "azure"})
    (finding,) = exchange_succeeds(WorkloadContext(facts, workload, plain, None, time.time())).findings
    assert finding.fix_lines()[0].startswith("kubectl run ")


def test_a_probe_cut_off_by_a_deny_all_policy_gets_an_egress_rule_first_and_the_delete_only_as_a_comment() -> None:
    """A default-deny egress policy (no rules) and one written for the probe's labels alone: the printed fix adds
    the egress list (HTTPS to Entra's port, DNS, which no rule lets out) to the policy that also holds the
    workload's pods, not the probe's own; deleting the policies is the blunt option, printed as a comment so a
    paste runs nothing of it."""
    deny_all = policy("default-deny", {}, policyTypes=["Egress"])
    probe_deny = policy("probe-deny", {"matchLabels": {"app.kubernetes.io/name": "wi-probe"}}, policyTypes=["Egress"])
    timeout = {"kind": "timeout", "message": "TimeoutError: timed out"}
    pod = probe_pod([deny_all, probe_deny])
    pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"token_url": TOKEN_URL},
                            "error": timeout}]}
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(),
                          ServiceAccountFacts("finance", "backend-sa", True, True, {}), IdentityFacts(), pod,
                          live_pods=LivePodsFacts([LivePod(APP, "Deployment", "backend")]))
    ctx = WorkloadContext(facts, WorkloadConfig(namespace="finance", service_account="backend-sa"),
                          ClusterFacts(time.time()), None, time.time())
    (finding,) = exchange_succeeds(ctx).findings
    assert finding.code == "EGRESS_BLOCKED"
    lines = finding.fix_lines()
    patch = ("kubectl patch networkpolicy default-deny -n finance --type json -p '[{\"op\":\"add\",\"path\":"
             "\"/spec/egress\",\"value\":[{\"ports\":[{\"protocol\":\"TCP\",\"port\":443}]},{\"ports\":[{\"protocol\":"
             "\"UDP\",\"port\":53},{\"protocol\":\"TCP\",\"port\":53}]}]}]'")
    assert patch in lines, lines
    assert not [line for line in lines if line.startswith("kubectl delete")], lines
    blunt = [line for line in lines if line.startswith("# the blunt option")]
    assert len(blunt) == 1 and "kubectl delete networkpolicy -n finance default-deny; kubectl delete networkpolicy " \
        "-n finance probe-deny" in blunt[0]
    assert lines.index(patch) < lines.index(blunt[0])
