"""The per-workload chain, in the order the links hold: ServiceAccount -> pod -> token -> identity and
federated credential -> exchange -> access. ``--pod`` gets a shorter chain over an existing pod."""

from __future__ import annotations

from collections.abc import Callable

from harness.checks.access import access_check_ids, make_access_check
from harness.checks.chain import CheckSpec, run_chain
from harness.checks.context import WorkloadContext
from harness.checks.exchange import exchange_identity, exchange_succeeds
from harness.checks.federation import federated_credential, identity_matches
from harness.checks.live_pods import existing_pod_token_finding, live_pods, preset_elsewhere_finding
from harness.checks.model import PASS, WARN, CheckResult, Outcome, failed, skipped, warned
from harness.checks.pod import pod_admitted, pod_exists, pod_labelled, pod_mutated
from harness.checks.probe_output import env_in_container, probe_completed
from harness.checks.serviceaccount import sa_client_id_annotation, sa_exists
from harness.checks.token import token_audience, token_issuer, token_lifetime, token_readable, token_subject
from harness.config import WorkloadConfig

Spec = CheckSpec[WorkloadContext]

PROBE_CHAIN: list[Spec] = [
    Spec("sa.exists", "ServiceAccount exists", sa_exists),
    Spec("sa.client_id_annotation", "client-id annotation", sa_client_id_annotation, ("sa.exists",)),
    Spec("pod.admitted", "probe pod admitted", pod_admitted, ("sa.exists",)),
    Spec("pod.mutated", "pod mutated by the webhook", pod_mutated, ("pod.admitted",)),
    # The workload's own pods, once a fresh pod shows the webhook works: what is wrong with them is theirs.
    Spec("workload.live_pods", "the workload's own pods", live_pods, ("pod.mutated",)),
    Spec("probe.completed", "probe ran to the end", probe_completed, ("pod.admitted",)),
    Spec("env.in_container", "in-container env agrees", env_in_container, ("pod.mutated", "probe.completed")),
    Spec("token.readable", "projected token readable", token_readable, ("env.in_container",)),
    Spec("token.subject", "token sub", token_subject, ("token.readable",)),
    Spec("token.audience", "token aud", token_audience, ("token.readable",)),
    Spec("token.issuer", "token iss", token_issuer, ("token.readable",)),
    Spec("token.lifetime", "token exp and lifetime", token_lifetime, ("token.readable",)),
    Spec("identity.matches", "managed identity", identity_matches, ("sa.exists",)),
    Spec(
        "federation.credential", "federated identity credential", federated_credential, ("identity.matches",)
    ),
    Spec("exchange.succeeds", "token exchange", exchange_succeeds, ("token.readable",)),
    Spec("exchange.identity", "access token identity", exchange_identity, ("exchange.succeeds",)),
]

Check = Callable[[WorkloadContext], Outcome]


def under_probe(check: Check, needs_pod: bool = True) -> Check:
    """A link of the probe chain judged over the probe pod that --pod runs under the existing pod's
    ServiceAccount (its token, its exchange), rather than over the existing pod."""

    def run(ctx: WorkloadContext) -> Outcome:
        probe_pod = ctx.facts.probe_pod
        if probe_pod is None:
            if needs_pod:
                account = f"{ctx.namespace}/{ctx.service_account}"
                return skipped(f"no probe pod was run under ServiceAccount {account}")
            return check(ctx)
        return check(ctx.with_pod(probe_pod))

    return run


def existing_pod_mutated(ctx: WorkloadContext) -> Outcome:
    """pod.mutated over the given pod (its first mutated app container), then whether another of its containers
    sets an AZURE_* variable itself (as workload.live_pods says of the pod), and, mutated, whether its token may
    predate the cluster's issuer (the probe's token is new, so token.issuer cannot show it)."""
    outcome = pod_mutated(ctx)
    elsewhere = preset_elsewhere_finding(ctx) if outcome.status in (PASS, WARN) else None
    if elsewhere is not None:  # what --workload says of the pod: the judged container is not the pod's only one
        return failed(f"{outcome.message}; yet {elsewhere.evidence['detail']}", outcome.evidence, *outcome.findings,
                      elsewhere)
    finding = existing_pod_token_finding(ctx) if outcome.status == PASS else None
    if finding is None:
        return outcome
    return warned(f"{outcome.message}; {finding.message}", outcome.evidence, *outcome.findings, finding)


# --pod NS/POD: the existing pod as admitted, then a probe pod under its ServiceAccount proves the rest of the
# chain (token, federated credential, exchange) for that ServiceAccount.
POD_CHAIN: list[Spec] = [
    Spec("pod.exists", "pod exists", pod_exists),
    Spec("pod.labelled", "pod labelled for the webhook", pod_labelled, ("pod.exists",)),
    Spec("sa.exists", "ServiceAccount exists", sa_exists, ("pod.exists",)),
    Spec("sa.client_id_annotation", "client-id annotation", sa_client_id_annotation, ("sa.exists",)),
    Spec("pod.mutated", "pod mutated by the webhook", existing_pod_mutated, ("pod.labelled",)),
    Spec("probe.admitted", "probe pod under its ServiceAccount admitted", under_probe(pod_admitted),
         ("sa.exists",)),
    Spec("probe.mutated", "probe pod mutated by the webhook", under_probe(pod_mutated), ("probe.admitted",)),
    Spec("probe.completed", "probe ran to the end", under_probe(probe_completed), ("probe.admitted",)),
    Spec("env.in_container", "in-container env agrees", under_probe(env_in_container),
         ("probe.mutated", "probe.completed")),
    Spec("token.readable", "projected token readable", under_probe(token_readable), ("env.in_container",)),
    Spec("token.subject", "token sub", under_probe(token_subject), ("token.readable",)),
    Spec("token.audience", "token aud", under_probe(token_audience), ("token.readable",)),
    Spec("token.issuer", "token iss", under_probe(token_issuer), ("token.readable",)),
    Spec("token.lifetime", "token exp and lifetime", under_probe(token_lifetime), ("token.readable",)),
    Spec("identity.matches", "managed identity", under_probe(identity_matches, needs_pod=False),
         ("sa.exists",)),
    Spec("federation.credential", "federated identity credential",
         under_probe(federated_credential, needs_pod=False), ("identity.matches",)),
    Spec("exchange.succeeds", "token exchange", under_probe(exchange_succeeds), ("token.readable",)),
    Spec("exchange.identity", "access token identity", under_probe(exchange_identity),
         ("exchange.succeeds",)),
]


def workload_chain(workload: WorkloadConfig) -> list[Spec]:
    ids = access_check_ids(workload.access)
    # an access token of another identity (exchange.identity failed: another client id annotated, whose
    # identity also trusts the ServiceAccount) reads with that identity's roles: judging the answer against the
    # expected identity's role assignments would name a cause that is not one (a propagation wait, a scope)
    access = [
        Spec(ids[i], check.describe(), make_access_check(i, check), ("exchange.succeeds", "exchange.identity"),
             {"expected": check.expect})
        for i, check in enumerate(workload.access)
    ]
    return PROBE_CHAIN + access


def workload_check_ids(workload: WorkloadConfig) -> list[str]:
    return [spec.id for spec in workload_chain(workload)]


POD_CHECK_IDS = [spec.id for spec in POD_CHAIN]


def run_workload_checks(context: WorkloadContext) -> list[CheckResult]:
    if context.facts.pod is not None and context.facts.pod.existing:
        return run_chain(POD_CHAIN, context)
    return with_harness_retries(run_chain(workload_chain(context.workload), context), context.facts.harness_retries)


# The services the harness itself read for each check (the probe's own retries are in its steps' evidence); the
# first prefix a check's id starts with names them
SERVICES_BEHIND = (("sa.", ("kube",)), ("pod.", ("kube",)), ("workload.", ("kube",)), ("probe.", ("kube",)),
                   ("identity.", ("arm", "graph")), ("federation.", ("arm", "graph")), ("access.", ("arm",)),
                   # cluster: the issuer's documents, the webhook's objects, else ARM's managed cluster (or the API
                   # server's discovery document)
                   ("cluster.issuer_", ("issuer",)), ("cluster.webhook_", ("kube",)), ("cluster.", ("arm", "kube")),
                   ("migration.", ("kube", "arm", "graph")), ("inventory.", ("kube", "arm", "graph")))


def with_harness_retries(results: list[CheckResult], retries: dict[str, int]) -> list[CheckResult]:
    """Each check's evidence counts the harness's retries (429, 5xx, resets: collect/retrying.py) of the
    services behind it, made while collecting what it reads (this workload, or the cluster, migration or
    inventory section): a verdict reached through retries says so."""
    for result in results:
        services = next((named for prefix, named in SERVICES_BEHIND if result.id.startswith(prefix)), ())
        counted = {service: retries[service] for service in services if retries.get(service)}
        if counted:
            result.evidence["harness_retries"] = counted
    return results
