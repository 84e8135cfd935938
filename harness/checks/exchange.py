"""Token exchange checks: Entra exchanged the projected token, for the right identity in the right tenant.
AADSTS codes map to the link of the chain they point at."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from harness import values
from harness.checks import remediation as fix
from harness.checks.cluster import chart_install, webhook_namespace
from harness.checks.common import is_graph_call, missing_probe_step
from harness.checks.context import WorkloadContext
from harness.checks.federation import (
    another_tenant,
    config_tenant,
    credential_delete,
    expected_issuer,
    federated_credential,
    fic_fix,
    free_fic_name,
    graph_endpoint,
    identity_matches,
    match_fic,
    service_principal_repair,
    unread_application,
    unread_fic_name,
)
from harness.checks.issuer_keys import issuer_key_finding, retry_summary
from harness.checks.live_pods import restart_workload
from harness.checks.model import ERROR, FAIL, WARNING, Finding, Outcome, failed, passed, skipped, warned
from harness.checks.network_policies import (
    dns_blocking_policies,
    egress_policies,
    probe_only_policies,
    rule_target,
    rules_open_dns,
    unenforced,
    workload_egress_gaps,
)
from harness.checks.pod import authority_fix
from harness.checks.probe_output import mounted_ca_configmap
from harness.checks.token import issuer_disabled_finding, private_issuer
from harness.checks.transient import FIC_PROPAGATION_SECONDS, identity_client_id, pending_credential
from harness.commands import Step, advice
from harness.names import PROBE_CONTAINER, TENANT_ID_ANNOTATION, WEBHOOK_CONFIG_MAP, WEBHOOK_DEPLOYMENT

# AADSTS code -> (finding code, layer, what it means)
AADSTS_MEANINGS: dict[str, tuple[str, str, str]] = {
    "AADSTS70021": (
        "FIC_MISSING",
        "federation",
        "no federated credential matches the token (issuer/subject/audience)",
    ),
    "AADSTS700211": ("FIC_ISSUER_MISMATCH", "federation", "no federated credential has the token's issuer"),
    "AADSTS700212": (
        "FIC_AUDIENCE_MISMATCH",
        "federation",
        "no federated credential has the token's audience",
    ),
    "AADSTS700213": ("FIC_SUBJECT_MISMATCH", "federation", "no federated credential has the token's subject"),
    "AADSTS7002138": ("FIC_SUBJECT_CASE_MISMATCH", "federation", "the subject matches only case-insensitively"),
    "AADSTS70025": ("FIC_MISSING", "federation", "the identity has no federated credentials at all"),
    "AADSTS700024": (
        "TOKEN_TIME_INVALID",
        "token",
        "the assertion is outside its validity window (expiry or skew)",
    ),
    "AADSTS50166": (
        "ISSUER_UNREACHABLE_FROM_ENTRA",
        "cluster",
        "Entra could not fetch the issuer's OIDC metadata",
    ),
    "AADSTS501661": (
        "ISSUER_UNREACHABLE_FROM_ENTRA",
        "cluster",
        "Entra could not fetch the issuer's OIDC metadata",
    ),
    "AADSTS90061": (
        "ISSUER_UNREACHABLE_FROM_ENTRA",
        "cluster",
        "Entra could not fetch the issuer's OIDC metadata",
    ),
    "AADSTS7000272": (  # ISSUER_KEYS_NOT_YET_SEEN or ISSUER_KEY_NOT_FOUND: harness.checks.issuer_keys
        "ISSUER_KEY_NOT_FOUND",
        "cluster",
        "the token's signing key is not in the issuer's JWKS",
    ),
    "AADSTS900612": ("ISSUER_JWKS_INVALID", "cluster", "Entra could not parse the issuer's JWKS"),
    "AADSTS700016": (
        "IDENTITY_NOT_FOUND",
        "identity",
        "no application/identity with this client id in the tenant",
    ),
    "AADSTS90002": (
        "TENANT_NOT_FOUND",
        "entra",
        "the tenant does not exist (wrong AZURE_TENANT_ID or cloud)",
    ),
    "AADSTS50027": ("TOKEN_MALFORMED", "token", "Entra found the assertion malformed"),
    "AADSTS500011": (
        "RESOURCE_NOT_IN_TENANT",
        "entra",
        "the requested resource (scope) has no service principal in this tenant: a scope of another cloud?",
    ),
    "AADSTS700027": (
        "ASSERTION_SIGNATURE_INVALID",
        "token",
        "Entra could not verify the assertion's signature with the issuer's keys",
    ),
    "AADSTS53003": (
        "CONDITIONAL_ACCESS_BLOCKED",
        "entra",
        "a Conditional Access policy for workload identities blocked the sign-in",
    ),
    "AADSTS7000229": (
        "SERVICE_PRINCIPAL_MISSING",
        "identity",
        "the application has no service principal (enterprise application) in the tenant",
    ),
    "AADSTS7000112": (
        "APPLICATION_DISABLED",
        "identity",
        "the application (service principal) behind the client id is disabled",
    ),
}
EGRESS_KINDS = (
    "dns",
    "connection_refused",
    "connection_reset",
    "network_unreachable",
    "host_unreachable",
    "timeout",
    "connection",
)


def exchange_step(ctx: WorkloadContext) -> dict[str, Any]:
    return ctx.step("exchange") or {}


def exchange_succeeds(ctx: WorkloadContext) -> Outcome:
    step = exchange_step(ctx)
    if not step:
        return missing_probe_step("exchange")
    evidence = dict(step.get("evidence") or {})
    sdk = evidence.get("sdk") or {}
    if step.get("status") == "pass":
        claims = evidence.get("claims") or {}
        message = (
            f"Entra exchanged the projected token at {evidence.get('token_url')} for an access token "
            f"(aud {claims.get('aud')}, sha256 {evidence.get('fingerprint')})"
        )
        network = _workload_egress(ctx, message, evidence)
        if network is not None:
            return network
        if sdk.get("available") and sdk.get("agrees") is False:
            return warned(
                message + f"; but azure-identity's WorkloadIdentityCredential failed: {sdk.get('error')}",
                evidence,
                Finding(
                    "SDK_DISAGREES",
                    WARNING,
                    "entra",
                    "the raw exchange works but WorkloadIdentityCredential does not",
                    evidence,
                    [],
                ),
            )
        return passed(
            message + (" (WorkloadIdentityCredential agrees)" if sdk.get("agrees") else ""), evidence
        )
    error = step.get("error") or {}
    evidence["error"] = error
    elsewhere = (_refused_as_another_identity(ctx, error, evidence)
                 or _refused_for_a_client_id_not_a_guid(error, evidence)
                 or _refused_for_an_identity_not_there(ctx, error, evidence))
    if elsewhere is not None:
        return elsewhere
    return failed(
        f"the token exchange failed: {describe_exchange_error(error)}",
        evidence,
        _exchange_finding(ctx, error, evidence),
    )


# DNS egress, as a rule added to an egress policy's list: UDP and TCP port 53 to any peer (a node-local DNS cache
# or a custom resolver answers at an address no pod selector names)
_DNS_RULE = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def _dns_fix(ctx: WorkloadContext, url: str, evidence: dict[str, Any]) -> list[Step] | None:
    """The pod could not resolve ``url``'s host and the NetworkPolicies isolating it let no DNS query out (egress
    to port 443 allowed, port 53 forgotten, or allowed over TCP only): DNS added to one of them as an egress rule,
    which repairs every one (a pod may open what any policy selecting it allows). None when a policy allows DNS
    or none isolates the pod: the name itself, or the resolver, is then at fault."""
    blocking = dns_blocking_policies(ctx.facts.pod)
    if not blocking or unenforced(ctx.cluster):
        return None
    names = [str((p.get("metadata") or {}).get("name")) for p in blocking]
    evidence["dns_blocked_by_network_policies"] = names
    host = urllib.parse.urlsplit(url).hostname or url
    several = len(names) > 1
    shown = f"NetworkPolic{'ies' if several else 'y'} {', '.join(names[:5])}"
    ns = fix.namespace_or(ctx.namespace)
    steps: list[Step] = [fix.kubectl("get", "networkpolicy", "-n", ns, *[fix.object_or(n, "<policy>") for n in names[:5]],
                                     "-o", "yaml")]
    target = next((p for p in blocking if (p.get("spec") or {}).get("egress")), None)
    said = (f"{shown} {'isolate' if several else 'isolates'} the pod for egress and {'let' if several else 'lets'} "
            f"no DNS query out (UDP port 53), so {host} cannot be resolved")
    if target is None:
        return [*steps, advice(f"{said}: add an egress rule that allows DNS and {host}")]
    name = fix.object_or(str((target.get("metadata") or {}).get("name")), "<policy>")
    patch = json.dumps([{"op": "add", "path": "/spec/egress/-", "value": _DNS_RULE}], separators=(",", ":"))
    return [*steps, advice(f"{said}: add DNS to its egress rules"),
            fix.kubectl("patch", "networkpolicy", name, "-n", ns, "--type", "json", "-p", patch)]


# http.client's HTTPConnection._tunnel when the proxy answers CONNECT with anything but 200:
# OSError("Tunnel connection failed: <code> <reason>")
_TUNNEL_REFUSED_RE = re.compile(r"Tunnel connection failed: (\d{3}[^\n]*)")


def _https_proxy(pod: dict[str, Any] | None) -> str | None:
    """host:port of the HTTPS proxy the probe container was given (AKS's HTTP proxy feature injects HTTPS_PROXY
    and https_proxy into every pod's containers), without any user:password in its URL; None when it has none."""
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        if container.get("name") != PROBE_CONTAINER:
            continue
        for variable in container.get("env") or []:
            if variable.get("name") in ("HTTPS_PROXY", "https_proxy") and variable.get("value"):
                split = urllib.parse.urlsplit(str(variable["value"]))
                try:
                    port = split.port
                except ValueError:
                    port = None
                return f"{split.hostname}{f':{port}' if port else ''}" if split.hostname else "the proxy"
    return None


def _proxy_fix(ctx: WorkloadContext, url: str, said: str, evidence: dict[str, Any]) -> list[Step] | None:
    """The pod's HTTPS proxy refused to open a tunnel to ``url``'s host (an allow list without it): the proxy's
    rule is what repairs it, or NO_PROXY in the cluster's HTTP proxy configuration when the pod may go there
    directly; no NetworkPolicy is at fault. None when no proxy refused."""
    refused = _TUNNEL_REFUSED_RE.search(said)
    if refused is None:
        return None
    proxy = _https_proxy(ctx.facts.pod.pod if ctx.facts.pod else None) or "the HTTPS proxy"
    host = urllib.parse.urlsplit(url).hostname or url
    answer = refused.group(1).strip()
    evidence["proxy_refused"] = {"proxy": proxy, "host": host, "answer": answer}
    what = (f"{proxy} (the pod's HTTPS_PROXY) wants credentials to open a tunnel to {host} ({answer}): give the "
            "proxy URL in the cluster's HTTP proxy configuration its user and password, or let the cluster's egress "
            "through unauthenticated" if answer.startswith("407") else
            f"{proxy} (the pod's HTTPS_PROXY) refused to open a tunnel to {host} ({answer}): allow {host}:443 on "
            "the proxy (AKS's required outbound rules list login.microsoftonline.com)")
    return [
        advice(f"{what}; or, if the pods may reach {host} directly, add it to noProxy in the cluster's HTTP proxy "
               "configuration (az aks update --http-proxy-config FILE)"),
        fix.aks_show(ctx.azure, "--query", "httpProxyConfig", note="the proxy and noProxy the pods are given"),
    ]


def egress_fix(ctx: WorkloadContext, url: str, evidence: dict[str, Any], kind: str = "",
               said: str = "") -> list[Step]:
    """EGRESS_BLOCKED's steps for the probe pod that could not connect to ``url``: the NetworkPolicies that
    isolate it named first (in the evidence too), and those of them that select none of the workload's own pods
    said to block the harness's probe rather than the workload. A name that could not be resolved (``kind``
    dns) behind policies that let no DNS query out gets DNS added to one of them; a tunnel the pod's HTTPS
    proxy refused (``said``, the error's message) is the proxy's allow list."""
    dns = _dns_fix(ctx, url, evidence) if kind == "dns" else None
    if dns is not None:
        return [*dns, *fix.egress_test(ctx.namespace, url, None)]
    if kind == "dns":  # no policy keeps DNS queries in: the name itself, or the resolvers behind the cluster's DNS
        host = urllib.parse.urlsplit(url).hostname or url
        return [fix.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns",
                            note="the cluster's DNS (CoreDNS): Running and Ready?"),
                advice(f"{host} did not resolve in the pod: check the host name (harness.yaml, the pod's "
                       "AZURE_AUTHORITY_HOST), and that the DNS servers CoreDNS forwards to (the VNet's custom DNS, a "
                       "private DNS zone linked to it) answer for it"),
                *fix.egress_test(ctx.namespace, url, None)]
    proxied = _proxy_fix(ctx, url, said, evidence)
    if proxied is not None:
        return [*proxied, *fix.egress_test(ctx.namespace, url, None)[:1]]
    policies = egress_policies(ctx.facts.pod)
    if policies and unenforced(ctx.cluster):  # stored, shown by kubectl, enforced by nothing: not the cause
        evidence["unenforced_network_policies"] = policies
        return [advice(f"the cluster enforces no NetworkPolicy (ARM networkProfile.networkPolicy: none), so "
                       f"{', '.join(policies[:5])} {'do' if len(policies) > 1 else 'does'} not block the pod: look at "
                       "the egress firewall, the subnet's NSG and route table, or a proxy"),
                *_outside_the_cluster(ctx, url), *fix.egress_test(ctx.namespace, url, None)]
    if not policies:
        outside = _outside_the_cluster(ctx, url)
        if outside:
            return [*outside, *fix.egress_test(ctx.namespace, url, None)]
    if policies:
        evidence["egress_network_policies"] = policies
    probe_only = probe_only_policies(ctx.facts.pod, _live_pods(ctx))
    target = rule_target(ctx.facts.pod, policies or [], probe_only)
    rule = (fix.egress_rule_added(ctx.namespace, target.name, target.has_rules, _ports(ctx, url),
                                  dns=bool(dns_blocking_policies(ctx.facts.pod))) if target else None)
    steps = fix.egress_test(ctx.namespace, url, policies, rule)
    if probe_only:
        evidence["probe_only_network_policies"] = probe_only
        several = len(probe_only) > 1
        steps.insert(0, advice(f"NetworkPolic{'ies' if several else 'y'} {', '.join(probe_only[:5])} "
                               f"{'select' if several else 'selects'} the probe pod and none of the workload's own "
                               "pods: the probe is blocked, not necessarily the workload"))
    return steps


def _outside_the_cluster(ctx: WorkloadContext, url: str) -> list[Step]:
    """Where else the pod's egress is filtered, as ARM describes the cluster: outboundType userDefinedRouting sends
    it through the route table's next hop (an Azure Firewall or an appliance), whose rules must allow the host
    (AKS's required outbound network rules list login.microsoftonline.com:443); Cilium's dataplane also enforces
    CiliumNetworkPolicies (FQDN egress filtering among them), which the harness does not read."""
    fetched = ctx.cluster.arm_cluster if ctx.cluster else None
    body = fetched.body if fetched is not None and fetched.ok and isinstance(fetched.body, dict) else {}
    profile = (body.get("properties") or {}).get("networkProfile") or {}
    if not isinstance(profile, dict):
        return []
    host = urllib.parse.urlsplit(url).hostname or url
    steps: list[Step] = []
    if str(profile.get("outboundType") or "").lower() == "userdefinedrouting":
        steps.append(advice(f"the cluster's egress leaves through its route table's next hop (ARM outboundType "
                            f"userDefinedRouting: an Azure Firewall or another appliance): allow {host}:443 in its "
                            "rules (AKS's required outbound rules list login.microsoftonline.com)"))
    if str(profile.get("networkDataplane") or "").lower() == "cilium":
        steps.append(fix.kubectl("get", "ciliumnetworkpolicies.cilium.io,ciliumclusterwidenetworkpolicies.cilium.io",
                                 "-A", note="Cilium's own policies (FQDN egress rules), which the harness does not "
                                            "read"))
    return steps


def _live_pods(ctx: WorkloadContext) -> list[tuple[str, dict[str, Any]]]:
    live = ctx.facts.live_pods
    return [(f"{pod.owner_kind}/{pod.owner_name}", pod.pod) for pod in (live.pods if live else [])]


def _hosts(ctx: WorkloadContext, token_url: str) -> list[str]:
    """Where the workload's pods must connect: Entra's token endpoint, then each access entry's service."""
    urls = [token_url, *[str(getattr(check, "vault_url", None) or getattr(check, "account_url", None) or "")
                         for check in ctx.workload.access]]
    return list(dict.fromkeys(netloc for url in urls if (netloc := urllib.parse.urlsplit(url).netloc)))


def _ports(ctx: WorkloadContext, token_url: str) -> list[int]:
    """The ports the workload's pods connect to: Entra's token endpoint's and each access entry's (443 on Azure)."""
    found = []
    for netloc in _hosts(ctx, token_url):
        try:
            found.append(urllib.parse.urlsplit(f"//{netloc}").port or 443)
        except ValueError:
            found.append(443)
    return found or [443]


def _workload_egress_steps(namespace: str, owner: str, policies: list[str], hosts: list[str],
                          blocked: bool, rule: Step | None = None) -> list[Step]:
    """NetworkPolicies that restrict the egress of the workload's own pods (``owner``: Kind/name) and not the
    probe pod's alike: shown, then an egress rule for the hosts they must reach; when they certainly block
    Entra, that rule added to one of them is the repair a person may paste (``rule``), deleting them only the
    blunt option, as a comment."""
    names = [fix.object_or(name, "<policy>") for name in policies[:5]]
    reach = ", ".join(hosts[:5]) or "Entra and the resources"
    several = len(names) > 1
    shown = f"NetworkPolic{'ies' if several else 'y'} {', '.join(names)}"
    steps: list[Step] = [fix.kubectl("get", "networkpolicy", "-n", fix.namespace_or(namespace), *names, "-o", "yaml")]
    if blocked:
        return [
            *steps,
            advice(f"{shown} {'leave' if several else 'leaves'} {owner}'s pods no way to Entra: add an egress rule "
                   f"for the ports of {reach} (and DNS)" + (" (a NetworkPolicy names no host: it opens those ports "
                                                           "to any address):" if rule else "")),
            *([rule] if rule else []),
            fix.network_policies_deleted_bluntly(namespace, names),
        ]
    return [*steps, advice(f"check that an egress rule of {shown} lets {owner}'s pods reach {reach} (and DNS): "
                           "the probe pod is not restricted alike, so its success does not show it")]


def _workload_egress(ctx: WorkloadContext, message: str, evidence: dict[str, Any]) -> Outcome | None:
    """The probe pod reached Entra, but NetworkPolicies restrict the egress of the workload's own pods and not
    the probe's alike (a policy written for the app's labels): when no egress rule of theirs allows Entra's
    port, they cannot reach it (EGRESS_BLOCKED, whatever the probe did); otherwise the probe's success says
    nothing of theirs (a warning)."""
    gaps = [] if unenforced(ctx.cluster) else workload_egress_gaps(ctx.facts.pod, _live_pods(ctx))
    if not gaps:
        return None
    token_url = str(evidence.get("token_url") or "")
    split = urllib.parse.urlsplit(token_url)
    try:
        port = split.port or (80 if split.scheme == "http" else 443)
    except ValueError:
        port = 443
    hosts = _hosts(ctx, token_url)
    evidence["workload_egress"] = [{"owner": gap.owner, "pods": gap.pods[:5], "network_policies": gap.policies}
                                   for gap in gaps]
    blocked = [gap for gap in gaps if not gap.proxied and not gap.may_open(port)]
    gap = (blocked or gaps)[0]
    several = len(gap.policies) > 1
    shown = f"NetworkPolic{'ies' if several else 'y'} {', '.join(gap.policies[:5])}"
    pods = ", ".join(gap.pods[:5]) + (f" and {len(gap.pods) - 5} more" if len(gap.pods) > 5 else "")
    target = rule_target(ctx.facts.pod, gap.policies)
    rule = (fix.egress_rule_added(ctx.namespace, target.name, target.has_rules, _ports(ctx, token_url),
                                  dns=not rules_open_dns(gap.rules)) if target and blocked else None)
    steps = _workload_egress_steps(ctx.namespace, gap.owner, gap.policies, hosts, bool(blocked), rule)
    if blocked:
        allows = "no egress at all" if not gap.rules else f"no connection to port {port}"
        said = (f"{shown} {'cut' if several else 'cuts'} {gap.owner}'s pods ({pods}) off from Entra "
                f"({split.netloc or token_url}): {'they isolate' if several else 'it isolates'} them for egress and "
                f"{'allow' if several else 'allows'} {allows}; the probe pod, not restricted alike, reached it")
        return failed(said, evidence, Finding("EGRESS_BLOCKED", ERROR, "entra", said, evidence, steps))
    said = (f"{shown} {'restrict' if several else 'restricts'} the egress of {gap.owner}'s pods ({pods}) and not "
            "the probe pod's alike: the probe reaching Entra and the resources does not prove they can")
    return warned(f"{said} ({message})", evidence,
                  Finding("WORKLOAD_EGRESS_UNPROVEN", WARNING, "entra", said, evidence, steps))


def _refused_as_another_identity(
    ctx: WorkloadContext, error: dict[str, Any], evidence: dict[str, Any]
) -> Outcome | None:
    """Entra found no matching credential on the identity the pod exchanged as, which is not the identity whose
    credentials the harness read: the ServiceAccount's annotation names another identity than harness.yaml (or
    the configured identity_resource_id) expects. That link already failed and names the fix (set the
    annotation); the credentials read say nothing about this refusal, so neither a missing credential nor
    propagation is claimed."""
    aadsts = str(error.get("aadsts") or "")
    code = AADSTS_MEANINGS.get(aadsts, ("",))[0]
    exchanged = str(evidence.get("client_id") or "")
    read = identity_client_id(ctx.facts.identity)
    if not code.startswith("FIC_") or not values.is_guid(exchanged) or not read:
        return None
    exchanged = exchanged.lower()
    if exchanged == read.lower():
        return None
    annotated, configured = (ctx.annotated_client_id or "").lower(), (ctx.workload.client_id or "").lower()
    if configured and annotated == exchanged and configured != exchanged:
        root = "sa.client_id_annotation"  # SA_CLIENT_ID_MISMATCH
    elif ctx.facts.identity.kind == "managed_identity" and (ctx.expected_client_id or "").lower() == exchanged:
        root = "identity.matches"  # IDENTITY_CLIENT_ID_MISMATCH: the configured identity_resource_id is another
    else:
        return None
    evidence["exchanged_as"], evidence["credentials_read_of"] = exchanged, read
    return skipped(
        f"skipped because {root} failed: the pod exchanged as {exchanged} (the ServiceAccount's annotation), "
        f"and Entra found no credential of that identity for {ctx.subject} ({aadsts}); the credentials the "
        f"harness read are those of {read}, the identity expected",
        evidence,
        blocked_by=root,
    )


def _refused_for_a_client_id_not_a_guid(error: dict[str, Any], evidence: dict[str, Any]) -> Outcome | None:
    """Entra knows no application by a client id that is no GUID (AADSTS700016): sa.client_id_annotation names
    the value and prints its fix; an identity look-up or another tenant's annotation would mislead."""
    exchanged = str(evidence.get("client_id") or "")
    if str(error.get("aadsts") or "") != "AADSTS700016" or not exchanged or values.is_guid(exchanged):
        return None
    return skipped(
        f"skipped because sa.client_id_annotation failed: the pod exchanged as {values.shorten(exchanged, 80)!r}, "
        "which is not a GUID, and Entra knows no application by it (AADSTS700016)",
        evidence,
        blocked_by="sa.client_id_annotation",
    )


# identity.matches's findings that say the identity behind the expected client id is not there (deleted, its group
# deleted, an application deleted, or no identity has it) or has another client id now (made again under its name)
_IDENTITY_GONE = ("IDENTITY_NOT_FOUND", "IDENTITY_CLIENT_ID_MISMATCH")


def _refused_for_an_identity_not_there(
    ctx: WorkloadContext, error: dict[str, Any], evidence: dict[str, Any]
) -> Outcome | None:
    """Entra knows no application by the client id the pod exchanged as (AADSTS700016), the one the harness
    expects, and identity.matches failed for it, naming why and printing the repair (the identity harness.yaml
    names deleted, or made again with a new client id): the refusal is that break seen again, not a second
    IDENTITY_NOT_FOUND with other fixes."""
    exchanged = str(evidence.get("client_id") or "")
    expected = ctx.expected_client_id or ""
    if str(error.get("aadsts") or "") != "AADSTS700016" or not exchanged or exchanged.lower() != expected.lower():
        return None
    identity = identity_matches(ctx)
    if identity.status != FAIL or not any(f.code in _IDENTITY_GONE for f in identity.findings):
        return None
    return skipped(
        f"skipped because identity.matches failed: the pod exchanged as {exchanged} and Entra knows no application "
        f"or identity by it (AADSTS700016): {identity.message}",
        evidence,
        blocked_by="identity.matches",
    )


UNVERIFIED_TLS = "tls_verify"  # probe/transport.py: the service's certificate failed verification in the pod


def untrusted_answer(what: str) -> str:
    """``what`` answered the probe, with a certificate it could not verify: the connection was made (no network
    rule stopped it); something on the way re-signs TLS, or the pod's CA bundle lacks the signer."""
    return (f"{what} answered the pod with a TLS certificate the probe could not verify (a proxy re-signing TLS on "
            "the way, or a CA the pod's bundle lacks)")


def proxy_ca_steps(ctx: WorkloadContext) -> list[Step]:
    """A certificate the probe does not trust: often a TLS-inspecting egress proxy re-signing the traffic.
    Its CA goes in a ConfigMap that probe.ca_configmap names (the probe's exchange and SDK check trust it)."""
    mounted = mounted_ca_configmap(ctx.facts.pod.pod if ctx.facts.pod else None)
    if mounted is not None:
        return [advice(f"probe.ca_configmap {mounted} does not hold the CA that signed the certificate the "
                       "pod was shown: put the proxy's CA bundle (PEM) under its key")]
    return [
        fix.kubectl("create", "configmap", "proxy-ca", "-n", fix.namespace_or(ctx.namespace),
                    "--from-file=ca.crt=proxy-ca.pem", note="proxy-ca.pem: the egress proxy's CA bundle"),
        advice("behind a TLS-inspecting proxy: set probe.ca_configmap: proxy-ca in harness.yaml (the ConfigMap "
               "in every workload's namespace)"),
    ]


def describe_exchange_error(error: dict[str, Any]) -> str:
    if error.get("kind") == "entra_error":
        return f"HTTP {error.get('http_status')} {error.get('error')}: {error.get('message')}"
    return f"{error.get('kind')}: {error.get('message')}"


def slow_service(error: dict[str, Any]) -> bool:
    """The probe's request went out and no answer came in time (a read timeout, a reset mid-answer), after its
    retries: the service is slow or failing, which no network rule explains."""
    return error.get("kind") in ("timeout", "connection_reset") and error.get("sent") is True


def _attempts(retries: Any, lead: str) -> str:
    """``lead`` and the probe's attempts (and its seconds of waiting) from its retries record; "" without one."""
    if not isinstance(retries, dict) or not isinstance(retries.get("attempts"), int):
        return ""
    waited = retries.get("waited_seconds")
    return (f"{lead}{values.counted(retries['attempts'], 'attempt')}"
            + (f" over {waited:.1f} s of waiting" if isinstance(waited, int | float) and waited else ""))


def service_timeout(service: str, url: str, error: dict[str, Any], retries: Any, layer: str,
                    evidence: dict[str, Any]) -> Finding:
    """SERVICE_TIMEOUT for ``service`` at ``url``: one line with the attempts the probe made."""
    tried = _attempts(retries, ", ")
    host = urllib.parse.urlsplit(url).netloc or url
    message = (f"{service} at {host} took the request and did not answer in time ({error.get('kind')}: "
               f"{error.get('message')}{tried}): the service is slow or failing, not a network rule")
    return Finding("SERVICE_TIMEOUT", ERROR, layer, message, evidence, [
        advice(f"look at {service}'s health (Azure status, Resource Health, its throttling metrics) and run again"),
        advice("if it is this slow by design, raise probe.request_timeout_seconds in harness.yaml"),
    ])


def unavailable_status(status: Any) -> bool:
    """An HTTP status the probe retries as transient (probe/retry.py classify: 429 and any 5xx): when it is still
    the answer after the retries, the service was failing or throttling for the whole bound."""
    return isinstance(status, int) and not isinstance(status, bool) and (status == 429 or 500 <= status <= 599)


def service_unavailable(service: str, url: str, status: int, detail: str, retries: Any, layer: str,
                        evidence: dict[str, Any]) -> Finding:
    """SERVICE_UNAVAILABLE for ``service`` at ``url``: it kept answering ``status`` (429 or 5xx) through the
    probe's retries, so no configuration of the workload is at fault; one line with the attempts made, and why
    there was no other when there was one (a Retry-After past the bound, or the run's bound spent before)."""
    host = urllib.parse.urlsplit(url).netloc or url
    said = f" ({detail})" if detail else ""
    attempts = retries.get("attempts") if isinstance(retries, dict) else None
    if isinstance(attempts, int) and attempts > 1:
        answered = f"kept answering HTTP {status}{said}{_attempts(retries, ' through ')}"
    else:
        answered = f"answered HTTP {status}{said}" + (" to the probe's only attempt" if attempts == 1 else "")
    asked = retries.get("retry_after_seconds") if isinstance(retries, dict) else None
    bound = retries.get("bound_seconds") if isinstance(retries, dict) else None
    # probe/retry.py: one budget for the whole probe run, started at its first transient answer
    budget = f"probe.retry_seconds ({bound} s, one budget for the whole probe run)"
    if isinstance(asked, int | float) and not isinstance(asked, bool):
        # the probe never waits less than a Retry-After, and none past its bound
        answered += (f", {'the last ' if attempts != 1 else ''}asking to wait {asked:g} s (Retry-After), more than "
                     f"was left of {budget}: the probe did not wait it")
        if attempts == 1 and isinstance(bound, int | float) and asked < bound:
            answered += " (its earlier retries had spent it)"
    elif attempts == 1 and isinstance(retries, dict) and retries.get("exhausted"):
        answered += f": {budget} was spent by its earlier retries"
    message = f"{service} at {host} {answered}: the service is failing or throttling, not the workload's configuration"
    steps = [advice(f"look at {service}'s health (Azure status, Resource Health, its throttling metrics) and run "
                    "again")]
    if status == 429:
        steps.append(advice("if the throttling lasts longer than the probe waits, raise probe.retry_seconds in "
                            "harness.yaml"))
    return Finding("SERVICE_UNAVAILABLE", ERROR, layer, message, evidence, steps)


def refused_note(error: dict[str, Any], retries: Any) -> str:
    """After a refused connection the probe tried again (probe/retry.py, as azure-core does): how often, and what a
    refusal that outlasts it means, so a service down for longer is not read as a network rule alone."""
    if error.get("kind") != "connection_refused" or not isinstance(retries, dict):
        return ""
    attempts = retries.get("attempts")
    if not isinstance(attempts, int) or attempts < 2:
        return ""
    return (f" (refused {attempts} times over {retries.get('waited_seconds')} s: nothing accepted the connection "
            "there; the service down or restarting, or a proxy or firewall refusing it)")


def _exchange_finding(ctx: WorkloadContext, error: dict[str, Any], evidence: dict[str, Any]) -> Finding:
    aadsts = str(error.get("aadsts") or "")
    issuer, _ = expected_issuer(ctx)
    remediation: list[Step] = []
    if error.get("kind") == "untrusted_authority":  # the probe kept the token: the pod's authority is not the cloud's
        return Finding(
            "AUTHORITY_HOST_MISMATCH",
            ERROR,
            "webhook",
            f"the probe did not exchange the token: {values.visible(str(error.get('message')))}; a workload's SDK "
            "would send its ServiceAccount token to that host",
            evidence,
            authority_fix(ctx),
        )
    if slow_service(error):
        return service_timeout("Entra", str(evidence.get("token_url")), error, evidence.get("retries"), "entra",
                               evidence)
    if error.get("kind") == "entra_error" and unavailable_status(error.get("http_status")):
        # Entra's own transient answers (AADSTS90033 "A transient error has occurred", a 429), still there after
        # the probe's retries: not the federation, not the workload
        return service_unavailable("Entra", str(evidence.get("token_url")), int(error["http_status"]),
                                   str(error.get("aadsts") or error.get("error") or ""), evidence.get("retries"),
                                   "entra", evidence)
    if error.get("kind") == UNVERIFIED_TLS:  # it answered: no network rule is at fault, the certificate is
        return Finding(
            "EGRESS_BLOCKED",
            ERROR,
            "entra",
            f"{untrusted_answer('Entra at ' + str(evidence.get('token_url')))}: {describe_exchange_error(error)}",
            evidence,
            [*fix.egress_test(ctx.namespace, str(evidence.get("token_url")), None)[:1], *proxy_ca_steps(ctx)],
        )
    if error.get("kind") in EGRESS_KINDS or str(error.get("kind", "")).startswith("tls"):
        steps = egress_fix(ctx, str(evidence.get("token_url")), evidence, str(error.get("kind") or ""),
                           str(error.get("message") or ""))
        if str(error.get("kind", "")).startswith("tls"):
            steps += proxy_ca_steps(ctx)
        return Finding(
            "EGRESS_BLOCKED",
            ERROR,
            "entra",
            f"the pod cannot reach Entra at {evidence.get('token_url')}: {describe_exchange_error(error)}"
            f"{refused_note(error, evidence.get('retries'))}",
            evidence,
            steps,
        )
    if aadsts == "AADSTS7000272":  # Entra's older copy of the issuer's keys, or a key the issuer never published
        return issuer_key_finding(ctx, error, evidence)
    code, layer, meaning = AADSTS_MEANINGS.get(
        aadsts, ("EXCHANGE_FAILED", "entra", "the token exchange failed")
    )
    private = private_issuer(ctx)
    if code == "FIC_ISSUER_MISMATCH" and private is not None:  # no credential can name an undiscoverable issuer
        return issuer_disabled_finding(ctx, private, evidence, f"{aadsts}: {meaning}")
    if code.startswith("FIC_") and issuer:
        exchanged = str(evidence.get("client_id") or "")
        pending = pending_credential(ctx.facts.identity, issuer, ctx.subject, exchanged, ctx.now)
        if pending is not None:
            written = pending.get("written_at")
            age = f", written {round(ctx.now - written)} s ago" if written is not None else ""
            return Finding(
                "FIC_PROPAGATION_PENDING",
                WARNING,
                "federation",
                f"{aadsts} although the matching federated credential {pending.get('name')} exists{age}: Entra "
                f"has not seen it yet (propagation takes seconds to minutes){retry_summary(evidence)}; re-run "
                "shortly",
                evidence,
                [],
            )
        read = identity_client_id(ctx.facts.identity)
        same = not read or not exchanged or read.lower() == exchanged.lower()
        settled = match_fic(ctx.facts.identity.federated_credentials or [], issuer, ctx.subject).exact if same else None
        if settled is not None:  # on the identity exchanged as, and older than the propagation window
            name = str(settled.get("name"))
            return Finding(
                code, ERROR, layer,
                f"{aadsts}: {meaning}, although credential {name} matches as the harness reads it and was written "
                f"more than {FIC_PROPAGATION_SECONDS // 60} minutes ago, so it is not propagation: delete it and "
                "create it again (a credential Entra keeps refusing is repaired that way, azure-workload-identity "
                "#1200)",
                evidence,
                [credential_delete(ctx, name), fic_fix(ctx, "create", name, issuer)],
            )
        mine = match_fic(ctx.facts.identity.federated_credentials or [], issuer, ctx.subject) if same else None
        # federation.credential read the same credentials: its repair (an update in place of a trailing-slash
        # twin, a case or whitespace slip) is the one to paste; a create beside it would be refused ("Issuer and
        # subject combination already exists") or leave the wrong one in place
        diagnosed = federated_credential(ctx) if same else None
        repaired = next((f for f in diagnosed.findings if f.code.startswith("FIC_")), None) \
            if diagnosed is not None and diagnosed.status == FAIL else None
        if repaired is not None:
            remediation += repaired.remediation
        elif mine is not None and mine.audience_differs:
            # the subject's credential with another audience is made right in place: ARM refuses a second
            # credential with its issuer and subject ("Issuer and subject combination already exists for this
            # Managed Identity."), so a create would fail
            remediation.append(fic_fix(ctx, "update", str(mine.audience_differs[0]["name"]), issuer))
        elif code == "FIC_AUDIENCE_MISMATCH" and (app_id := unread_application(ctx)):
            # credentials unread: Entra found a credential for the token's issuer and subject whose audience is
            # another (# unverified: that it weighs the audience after the subject, as the lab does; reference
            # 1.5 marks the order unknown). Graph refuses a create that repeats that issuer and subject, so the
            # credential is found by them and updated; the comment covers a 700212 with none
            remediation += [fix.app_credential_named(app_id, issuer, ctx.subject),
                            fix.app_credential_audience_set(app_id, issuer, ctx.subject),
                            advice(f"CREDENTIAL empty (the update refused): the app has no credential for this issuer "
                                   f"and subject; make one with az ad app federated-credential create --id {app_id}, "
                                   "that issuer and subject and the audience api://AzureADTokenExchange")]
        else:
            credentials = ctx.facts.identity.federated_credentials
            # unread credentials: the refused one may hold the usual name (its subject or issuer mistyped)
            name = (unread_fic_name(ctx.namespace, ctx.service_account, issuer)
                    if credentials is None and code in ("FIC_ISSUER_MISMATCH", "FIC_SUBJECT_MISMATCH")
                    else free_fic_name(credentials or [], ctx.namespace, ctx.service_account))
            remediation.append(fic_fix(ctx, "create", name, issuer))
    elif code.startswith("ISSUER_"):
        if issuer:  # the one address in question: Entra's own text does not name it
            meaning = f"{meaning} ({issuer.rstrip('/')}/.well-known/openid-configuration)"
        remediation += [
            fix.show_issuer(ctx.azure),
            fix.curl((issuer or "<issuer>").rstrip("/") + "/.well-known/openid-configuration"),
        ]
    elif code == "IDENTITY_NOT_FOUND" and _principal_owner(ctx):
        # the client id exchanged as is an identity's object id (identity.matches names whose): no tenant question
        exchanged = str(evidence.get("client_id") or "")
        remediation += [*_unknown_client_id_fix(ctx, exchanged),
                        *restart_workload(ctx, _annotation_target(ctx, exchanged))]
    elif code == "IDENTITY_NOT_FOUND":
        remediation += [
            *_unknown_client_id_fix(ctx, str(evidence.get("client_id") or "")),
            *_deleted_application_lookup(ctx, str(evidence.get("client_id") or "")),
            *another_tenant(ctx),
        ]
    elif code == "RESOURCE_NOT_IN_TENANT":
        remediation += [
            fix.find_service_principal(_resource_of(error)),
            advice("set scope: on the access entry (or workload) in harness.yaml to the resource's scope in "
                   "this cloud, e.g. https://vault.azure.cn/.default in Azure China"),
        ]
    elif code == "ASSERTION_SIGNATURE_INVALID":
        remediation += [
            fix.curl(str((ctx.cluster.issuer_jwks.url if ctx.cluster.issuer_jwks else None) or "<jwks_uri>")),
            fix.show_issuer(ctx.azure),
            advice("the token must come from this cluster's issuer; after a key rotation Entra may hold old keys"),
        ]
    elif code == "CONDITIONAL_ACCESS_BLOCKED":
        remediation += [
            fix.list_conditional_access_policies(),
            advice("exclude this workload identity from the blocking policy, or allow its network location"),
        ]
    elif code == "SERVICE_PRINCIPAL_MISSING":
        remediation += service_principal_repair(ctx, ctx.expected_client_id)
    elif code == "APPLICATION_DISABLED":
        remediation += [
            fix.service_principal_enabled(ctx.expected_client_id),
            fix.enable_service_principal(ctx.expected_client_id),
        ]
    elif code == "TOKEN_TIME_INVALID":
        remediation += fix.node_clock(ctx.node_name)
    elif code == "TENANT_NOT_FOUND":
        # the tenant Entra does not know came from the ServiceAccount's tenant-id annotation, else from the
        # webhook's own configuration (getTenantID: the annotation, else config.TenantID): a Helm chart installed
        # with another azureTenantID gives every pod that tenant, fixed in the chart's values, not per account
        known = ctx.workload.tenant_id or (ctx.azure.tenant_id if ctx.azure else None)
        chart = chart_install(ctx.cluster)
        if chart is not None and TENANT_ID_ANNOTATION not in ctx.facts.sa.annotations:
            value = "azureTenantID" if chart.release else "AZURE_TENANT_ID"
            evidence["tenant_from"] = f"the webhook's azure-wi-webhook-config in {chart.namespace} ({value})"
            remediation += [
                advice(f"the tenant comes from {chart.describe()}: its {value} value, injected into every "
                       "pod whose ServiceAccount names no tenant"),
                *fix.helm_set_chart_tenant(chart.release, chart.namespace, known),
                *restart_workload(ctx),
            ]
        elif TENANT_ID_ANNOTATION not in ctx.facts.sa.annotations and (configured := _webhook_config_tenant(ctx)):
            # the webhook's own ConfigMap (a hand edit of the add-on's, or a chart's kept apart) gave every pod whose
            # ServiceAccount names no tenant this one: put right there, not account by account
            namespace, tenant = configured
            evidence["tenant_from"] = f"the webhook's {WEBHOOK_CONFIG_MAP} in {namespace}"
            remediation += [
                advice(f"the tenant comes from the webhook's {WEBHOOK_CONFIG_MAP} in {namespace} (AZURE_TENANT_ID "
                       f"{tenant}), injected into every pod whose ServiceAccount names no tenant: put it right, "
                       "restart the webhook (it reads it at start-up), then the workload"),
                fix.kubectl("-n", fix.namespace_or(namespace), "patch", "configmap", WEBHOOK_CONFIG_MAP, "--type",
                            "merge", "-p", json.dumps({"data": {"AZURE_TENANT_ID": fix.guid_or(known, "<tenant-id>")}},
                                                      separators=(",", ":"))),
                *fix.webhook_pods_back(namespace, WEBHOOK_DEPLOYMENT, None),
                *restart_workload(ctx),
            ]
        else:
            remediation += [
                fix.annotate_sa_tenant(ctx.namespace, ctx.service_account, known),
                *restart_workload(ctx),
            ]
    return Finding(
        code,
        ERROR,
        layer,
        f"{aadsts or 'exchange'}: {meaning}: {error.get('message') or ''}".strip(),
        evidence,
        remediation,
    )


def _webhook_config_tenant(ctx: WorkloadContext) -> tuple[str, str] | None:
    """(namespace, tenant) of the webhook's ConfigMap AZURE_TENANT_ID when it is not the tenant the harness expects
    (harness.yaml's): the tenant the pods got; None when not read, or when it is the expected one."""
    known = ctx.workload.tenant_id or (ctx.azure.tenant_id if ctx.azure else None)
    namespace = webhook_namespace(ctx.cluster)
    tenant = (ctx.cluster.webhook_config.get(namespace) or {}).get("AZURE_TENANT_ID") or ""
    if not tenant or (known and tenant.lower() == known.lower()):
        return None
    return namespace, tenant


def _unknown_client_id_fix(ctx: WorkloadContext, exchanged: str) -> list[Step]:
    """Entra knows no identity with the client id the pod exchanged as. The annotation is set to the client id of
    the identity the harness read (an identity deleted and created again under its name has a new one), else to
    harness.yaml's; where that is the very client id Entra refused, annotating it again changes nothing, and the
    fix is finding the identity. Where the annotation is an identity's principal (object) id (the harness found
    whose: an application's object id, a service principal's or a managed identity's principalId), the annotation
    is set to that identity's client id, as SA_ANNOTATION_IS_PRINCIPAL_ID's fix does: a look-up of the object id
    as a client id finds nothing."""
    target = _annotation_target(ctx, exchanged)
    if target is None:
        return fix.find_identity_anywhere(exchanged or ctx.expected_client_id, by_object_id=_graph_refused(ctx))
    return [fix.annotate_sa(ctx.namespace, ctx.service_account, target)]


def _annotation_target(ctx: WorkloadContext, exchanged: str) -> str | None:
    """The client id _unknown_client_id_fix annotates (the restart after it leaves running the pods that already
    carry it); None when it annotates nothing."""
    target = identity_client_id(ctx.facts.identity) or _principal_owner(ctx) or ctx.expected_client_id
    return None if not target or (exchanged and target.lower() == exchanged.lower()) else target


def _graph_refused(ctx: WorkloadContext) -> bool:
    """Microsoft Graph refused the harness a look-up of the identity (no Application.Read.All): it could not tell
    whose object id a GUID is, nor whether an application was deleted."""
    refused = ctx.facts.identity.refused if ctx.facts.identity is not None else []
    return any(is_graph_call(f) for f in refused)


def _deleted_application_lookup(ctx: WorkloadContext, client_id: str) -> list[Step]:
    """Where Microsoft Graph refused the harness, it cannot tell whether the client id's application was deleted
    (az ad app delete: Graph keeps it 30 days, restorable with its credentials): the person's az can list it (az
    has no command for deleted items; az rest reaches Graph's). Nothing where the harness looked itself."""
    if not values.is_guid(client_id) or not _graph_refused(ctx):
        return []
    graph = (graph_endpoint(ctx) or "").rstrip("/") or "<microsoft-graph-endpoint>"
    return [fix.deleted_applications(graph, client_id)]


def _principal_owner(ctx: WorkloadContext) -> str | None:
    """The client id of the identity whose principal (object) id the annotation holds (facts.principal_of, found
    when the annotated GUID is no client id), else None."""
    owner = ctx.facts.identity.principal_of if ctx.facts.identity is not None else None
    return str(owner["client_id"]) if owner and owner.get("client_id") else None


def _resource_of(error: dict[str, Any]) -> str | None:
    """The resource Entra named in an AADSTS500011 message ("The resource principal named X was not found")."""
    match = re.search(r"resource principal named (\S+?) was not found", str(error.get("message") or ""))
    return match.group(1) if match else None


def exchange_identity(ctx: WorkloadContext) -> Outcome:
    evidence_in = exchange_step(ctx).get("evidence") or {}
    claims = evidence_in.get("claims") or {}
    appid = claims.get("appid") or claims.get("azp")
    # harness.yaml's client_id out of date (or an object id) where the annotation is the identity's: the token is
    # judged against the annotation, sa.client_id_annotation names harness.yaml's fault
    expected_client = ctx.stale_configured_client_id or ctx.expected_client_id or evidence_in.get("client_id")
    expected_tenant = ctx.expected_tenant_id or evidence_in.get("tenant_id")
    evidence = {
        "appid": appid,
        "tid": claims.get("tid"),
        "oid": claims.get("oid"),
        "idtyp": claims.get("idtyp"),
        "xms_mirid": claims.get("xms_mirid"),
        "expected_client_id": expected_client,
        "expected_tenant_id": expected_tenant,
    }
    problems = []
    if not appid or not expected_client or str(appid).lower() != str(expected_client).lower():
        problems.append(f"appid {appid} != client id {expected_client}")
    if (
        not claims.get("tid")
        or not expected_tenant
        or str(claims["tid"]).lower() != str(expected_tenant).lower()
    ):
        problems.append(f"tid {claims.get('tid')} != tenant {expected_tenant}")
    if problems:
        repair: list[Step] = [fix.annotate_sa(ctx.namespace, ctx.service_account, ctx.workload.client_id)]
        if len(problems) == 1 and problems[0].startswith("tid ") and ctx.configured_tenant_wrong(claims.get("tid")):
            # the right identity, in the tenant the pod asks: harness.yaml's tenant_id is the odd one (annotating
            # the client id again changed nothing)
            repair = [config_tenant(f"{ctx.namespace}/{ctx.service_account}", str(expected_tenant),
                                    str(claims.get("tid")))]
        return failed(
            "the access token is not the expected identity's: " + "; ".join(problems),
            evidence,
            Finding(
                "EXCHANGE_WRONG_IDENTITY",
                ERROR,
                "entra",
                "the exchange returned a token for another identity or tenant: " + "; ".join(problems),
                evidence,
                repair,
            ),
        )
    resource_id = ctx.facts.identity.resource_id
    mirid = claims.get("xms_mirid")
    if resource_id and mirid and str(mirid).lower() != resource_id.lower():
        return warned(f"appid and tid match, but xms_mirid {mirid} is not {resource_id}", evidence)
    return passed(f"access token appid {appid} = client id, tid {claims.get('tid')} = tenant", evidence)
