"""The harness's own words about itself: what it says when it cannot reach, or cannot trust, what it asks, how it
counts, and the fixes it prints for its own access (unit tests of pure checks, no server)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakeworld import World

from harness.checks.cluster import run_cluster_checks
from harness.collect.kube_api import OfficialKubeApi
from harness.facts import ClusterFacts, Fetched, KubeFailure

RunWorld = Callable[..., Any]


def unreachable(what: str = "connection refused") -> KubeFailure:
    return KubeFailure(0, "Unreachable", f"no answer from the API server https://kube.test: {what}")


def test_an_unreachable_api_server_is_named_once_in_the_message() -> None:
    """KUBE_UNREACHABLE said 'the API server https://kube.test did not answer: no answer from the API server
    https://kube.test: ...': the collector's message already names it and why."""
    cluster = ClusterFacts(time.time(), context="prod", server="https://kube.test",
                           webhook_configurations_error=unreachable(), webhook_deployment_error=unreachable())
    finding = {r.id: r for r in run_cluster_checks(cluster, None)}["cluster.webhook_installed"].findings[0]
    assert finding.message == ("could not list MutatingWebhookConfigurations: no answer from the API server "
                               "https://kube.test: connection refused")
    assert finding.message.count("https://kube.test") == 1


def test_an_api_server_whose_certificate_is_not_trusted_answered_and_says_so(run_world: RunWorld) -> None:
    """A CERTIFICATE_VERIFY_FAILED was KUBE_UNREACHABLE 'the API server ... did not answer', with the fixes for a
    cluster that is down or private. It answered, with a certificate the kubeconfig's CA does not sign: the
    kubeconfig written again (or the proxy that re-signs TLS) is the fix."""
    untrusted = KubeFailure(0, "CertificateUntrusted", "the API server https://kube.test answered with a TLS "
                            "certificate the kubeconfig's certificate-authority does not sign (CERTIFICATE_VERIFY_"
                            "FAILED): the cluster's CA was rotated")
    cluster = ClusterFacts(time.time(), context="prod", server="https://kube.test",
                           webhook_configurations_error=untrusted, webhook_deployment_error=untrusted)
    _, config = run_world(World.healthy())
    finding = {r.id: r for r in run_cluster_checks(cluster, config.azure)}["cluster.webhook_installed"].findings[0]
    assert finding.code == "KUBE_UNREACHABLE"
    assert "did not answer" not in finding.message and "answered with a TLS certificate" in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("kubectl --context prod cluster-info   # the same x509 error")
    assert lines[1].startswith("az aks get-credentials ") and lines[1].endswith("--overwrite-existing")
    assert "TLS-inspecting proxy" in lines[2] and not any("private cluster" in line for line in lines)


def told(credential: dict[str, Any]) -> dict[str, Any]:
    """run_by_kubernetes as collect.caller.kubernetes_user gives it, with the kubeconfig's credential."""
    return {"error": "SelfSubjectReview: 401 Unauthorized: Unauthorized",
            "credential": {"kubeconfig": "/etc/wi/kubeconfig", **credential}}


def _refused(cluster: ClusterFacts, azure: Any) -> Any:
    refused = KubeFailure(401, "Unauthorized", "Unauthorized")
    cluster.webhook_configurations_error = cluster.webhook_deployment_error = refused
    return {r.id: r for r in run_cluster_checks(cluster, azure)}["cluster.webhook_installed"].findings[0]


def test_a_refused_static_service_account_token_is_named_with_how_to_get_a_new_one(run_world: RunWorld) -> None:
    """A kubeconfig holding a ServiceAccount's token, the ServiceAccount deleted (or the token expired): the
    API server answers 401 and the harness advised az aks get-credentials and kubelogin, which renew nothing of
    a static token. It now names the token it refused (its user, ServiceAccount, expiry) and prints a new token
    for it, captured into $TOKEN and set in the kubeconfig harness.yaml names; your own AKS credentials after."""
    _, config = run_world(World.healthy())
    now = time.time()
    cluster = ClusterFacts(now, context="ci", server="https://kube.test", run_by_kubernetes=told(
        {"kind": "token", "user": "ci-bot", "service_account": "ops/ci-bot", "expires_at": int(now) - 60}))
    finding = _refused(cluster, config.azure)
    assert finding.code == "KUBE_UNAUTHORIZED"
    expired = datetime.fromtimestamp(int(now) - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert finding.message == ("could not list MutatingWebhookConfigurations: the API server refused the static "
                               "bearer token /etc/wi/kubeconfig holds for user ci-bot (ServiceAccount ops/ci-bot, "
                               f"expired {expired}): Unauthorized")
    lines = finding.fix_lines()
    assert lines[0] == ("TOKEN=$(kubectl create token ci-bot -n ops --duration 24h)   # with a kubeconfig whose "
                        "credentials this cluster still accepts (not the refused one)")
    assert lines[1] == 'kubectl config set-credentials ci-bot --token "$TOKEN" --kubeconfig /etc/wi/kubeconfig'
    assert lines[3].startswith("az aks get-credentials ") and lines[3].endswith(
        " --file /etc/wi/kubeconfig --context ci --overwrite-existing")
    assert not any(line.startswith("kubelogin") for line in lines)

    cluster.run_by_kubernetes = told({"kind": "token", "user": "ci-bot", "service_account": "ops/ci-bot",
                                      "expires_at": int(now) + 3600})
    assert "(ServiceAccount ops/ci-bot: revoked, its ServiceAccount or Secret deleted, or another cluster's)" in \
        _refused(cluster, config.azure).message

    cluster.run_by_kubernetes = told({"kind": "token", "user": "-x"})  # another issuer's; a name like a flag
    other = _refused(cluster, config.azure)
    assert other.fix_lines()[0].startswith("# a static token is not renewed by az or kubelogin")


def test_a_printed_get_credentials_writes_the_kubeconfig_harness_yaml_names(run_world: RunWorld) -> None:
    """harness.yaml's cluster.kubeconfig: /etc/wi/kubeconfig; the printed az aks get-credentials wrote
    ~/.kube/config (or $KUBECONFIG's first file: azure-cli acs/custom.py), so the next run read the same stale
    file. It now names --file and the context the run used, and kubelogin --kubeconfig the same file."""
    _, config = run_world(World.healthy())
    cluster = ClusterFacts(time.time(), context="prod-admin", server="https://kube.test",
                           run_by_kubernetes=told({"kind": "exec", "user": "u"}))
    lines = _refused(cluster, config.azure).fix_lines()
    assert lines[0].endswith(" --file /etc/wi/kubeconfig --context prod-admin --overwrite-existing")
    assert lines[1] == "kubelogin convert-kubeconfig -l azurecli --kubeconfig /etc/wi/kubeconfig   # Entra-integrated clusters"
    mine = _refused(ClusterFacts(time.time(), context="dev"), config.azure).fix_lines()  # the shell's kubeconfig
    assert "--file" not in mine[0] and mine[0].endswith(" --context dev --overwrite-existing")
    assert mine[1] == "kubelogin convert-kubeconfig -l azurecli   # Entra-integrated clusters"


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(("claims", "expected"), [
    ({"kubernetes.io": {"namespace": "ops", "serviceaccount": {"name": "ci-bot"}}, "exp": 1700000000},
     {"service_account": "ops/ci-bot", "expires_at": 1700000000}),
    ({"kubernetes.io/serviceaccount/namespace": "ops", "kubernetes.io/serviceaccount/service-account.name": "old"},
     {"service_account": "ops/old"}),
    ({"sub": "someone"}, {}),
])
def test_the_kubeconfigs_credential_is_described_without_the_token(
    tmp_path: Path, claims: dict[str, Any], expected: dict[str, Any]
) -> None:
    token = _jwt(claims)
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "ci",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "ci-bot", "user": {"token": token}}],
        "contexts": [{"name": "ci", "context": {"cluster": "c", "user": "ci-bot"}}]}))
    source = OfficialKubeApi(path, None).credential_source()
    assert source == {"user": "ci-bot", "kubeconfig": str(path), "kind": "token", **expected}
    assert token not in json.dumps(source)


def test_an_azure_host_with_a_certificate_the_harness_could_not_verify_answered(run_world: RunWorld) -> None:
    """azure.ca_file without the CA that signs Entra's (or a proxy's) certificate: AZURE_UNREACHABLE said 'could
    not reach 127.0.0.1:37063' and advised HTTPS_PROXY. The host answered; azure.ca_file is the fix."""
    _, config = run_world(World.healthy())
    failure = Fetched("https://arm.test/subscriptions/s", None, None,
                      "no ARM token: TLS certificate verification failed: unable to get local issuer certificate",
                      "NetworkError", "login.test")
    results = run_cluster_checks(ClusterFacts(time.time(), arm_cluster=failure), config.azure)
    (finding,) = next(r for r in results if r.id == "cluster.oidc_issuer_enabled").findings
    assert finding.code == "AZURE_UNREACHABLE" and "could not reach" not in finding.message
    assert "login.test answered with a TLS certificate the harness could not verify (a proxy re-signing TLS on the " \
           "way, or a CA azure.ca_file lacks): no ARM token: TLS certificate verification failed" in finding.message
    assert not any("HTTPS_PROXY" in line for line in finding.fix_lines())


def test_entra_throttling_the_tenants_discovery_is_not_an_unknown_tenant(run_world: RunWorld) -> None:
    """lab ctl fault entra --rate-429 1: MSAL words any 4xx of the tenant's OIDC discovery as 'Unable to get
    authority configuration for ...', the words of an unknown tenant, and the harness printed 'azure.tenant_id ...
    is not a tenant Entra knows: set it to ...'. The 429 is in the exception's context (msal/authority.py
    tenant_discovery): it is Entra throttling, SERVICE_UNAVAILABLE, and the tenant is left alone."""
    from harness.checks.common import arm_failure_finding
    from harness.collect.arm_api import credential_failure_text, discovery_throttled

    def refused(status: int) -> BaseException:
        try:
            try:
                raise ValueError("OIDC Discovery failed on https://login.test/t/v2.0/.well-known/openid-configuration. "
                                 f"HTTP status: {status}, Error: {{}}")
            except ValueError:
                raise ValueError("Unable to get authority configuration for https://login.test/t. Authority would "
                                 "typically be in a format of https://login.microsoftonline.com/your_tenant") from None
        except ValueError as outer:
            outer.__suppress_context__ = False  # as MSAL raises it: within the except, the 429 its context
            return outer

    _, config = run_world(World.healthy())
    throttled = refused(429)
    text = f"the harness could not get an ARM token: {discovery_throttled(throttled) or credential_failure_text(throttled)}"
    finding = arm_failure_finding(Fetched("https://arm.test/x", None, None, text, "CredentialError", "login.test"),
                                  "cluster", "the managed cluster", "CLUSTER_NOT_FOUND", fix_show(), config.azure)
    assert finding.code == "SERVICE_UNAVAILABLE" and "HTTP Error: 429" in finding.message
    assert not any("tenant" in line for line in finding.fix_lines())
    assert "Unable to get authority configuration for" not in finding.message  # MSAL's words, named, not quoted whole
    assert discovery_throttled(refused(400)) == ""  # an unknown tenant stays one


def fix_show() -> Any:
    from harness.checks import remediation as fix

    return fix.kubectl("version")


def test_the_kubeconfigs_credential_is_kept_beside_who_ran_the_harness() -> None:
    """collect.caller.kubernetes_user: a 401 leaves no SelfSubjectReview, and the credential the kubeconfig
    holds is what the fix needs."""
    from harness.collect.caller import kubernetes_user
    from harness.collect.kube_api import KubeError

    class Refused:
        def credential_source(self) -> dict[str, Any]:
            return {"kind": "token", "user": "ci-bot"}

        def self_subject_review(self) -> dict[str, Any]:
            raise KubeError(KubeFailure(401, "Unauthorized", "Unauthorized"))

    assert kubernetes_user(Refused()) == {  # type: ignore[arg-type]
        "error": "SelfSubjectReview: 401 Unauthorized: Unauthorized", "credential": {"kind": "token", "user": "ci-bot"}}


def test_an_api_server_that_refuses_the_connection_is_said_in_words(tmp_path: Path) -> None:
    """'no answer from the API server https://127.0.0.1:P: NewConnectionError: HTTPSConnection(host=..., port=...):
    Failed to establish a new connection: [Errno 111] Connection refused': urllib3's repr for a person. The cause
    is said as the ARM reads say it (collect.arm_api network_failure_cause)."""
    import socket

    from harness.collect.kube_api import KubeError

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "x" * 20}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    with pytest.raises(KubeError) as refused:
        OfficialKubeApi(path, None).namespace("finance")
    assert refused.value.failure.message == (
        f"no answer from the API server https://127.0.0.1:{port}: the connection was refused")


def test_the_cluster_inventory_and_migration_checks_count_their_retries_in_their_evidence(
    run_world: RunWorld,
) -> None:
    """Issue 12: 'every retry is counted in the check's evidence'; only the workloads' checks carried theirs, and
    a cluster or inventory check failed or passed through ARM's 503s with no count of its own (run.json's
    top-level retries had them; by hand with lab ctl fault arm --rate-503 1: arm 35, none in any check). The
    retries made while collecting each section are counted for it, and each of its checks names those of the
    services behind it."""
    from harness.analysis import analyse
    from harness.collect.run import Selection, collect_run
    from harness.redact import Redactor

    _, config = run_world(World.healthy())  # its harness.yaml
    run = collect_run(World.healthy().backend(), config,
                      Selection(workloads=config.workloads, migration=True, inventory=True), "r",
                      config.probe.resolved_image)
    run.harness_retries = {"cluster": {"arm": 4, "issuer": 1}, "inventory": {"graph": 2}, "migration": {"kube": 1}}
    analysed = analyse(run, config, config.workloads, "lab", Redactor())
    cluster = {c.id: c.evidence.get("harness_retries") for c in analysed.cluster}
    assert cluster["cluster.oidc_issuer_enabled"] == {"arm": 4} and cluster["cluster.issuer_jwks"] == {"issuer": 1}
    assert cluster["cluster.webhook_installed"] is None  # no kube retry: nothing to say
    assert all(c.evidence.get("harness_retries") == {"graph": 2} for c in analysed.inventory_checks)
    assert all(c.evidence.get("harness_retries") == {"kube": 1} for c in analysed.migration)


def test_a_sweep_that_keeps_a_young_leftover_says_so_to_the_summary(run_world: RunWorld) -> None:
    """--sweep before a killed run's probe pod passed its deadline: nothing deleted, nothing said. The run's facts,
    results and each check's payload (what the summary prints as '--sweep kept ...') carry the line; a run
    without --sweep carries None (the summary then says nothing of a sweep)."""
    from harness.analysis import analyse
    from harness.collect.probe_pods import ProbeRequest, run_probe_pods
    from harness.collect.run import Selection, collect_run
    from harness.config import ProbeSettings
    from harness.redact import Redactor
    from harness.report.run_json import check_payload

    _, config = run_world(World.healthy())
    backend = World.healthy().backend()
    run_probe_pods(backend.kube, [ProbeRequest("finance/backend-sa", "finance", "backend-sa", {})], "killed-run",
                   ProbeSettings(timeout_seconds=60), keep=True)
    for name in [key for key in backend.kube.config_maps if "ended" in key[1]]:  # killed: no end-of-run marker
        del backend.kube.config_maps[name]
    facts = collect_run(backend, config, Selection(workloads=config.workloads), "this-run",
                        config.probe.resolved_image, sweep_first=True)
    assert facts.swept == [] and len(facts.sweep_kept or []) == 1
    assert facts.sweep_kept[0].startswith("kept 2 objects of run killed-run (in finance): younger than their probe ")
    results = analyse(facts, config, config.workloads, "lab", Redactor())
    payload = check_payload("cluster", results.cluster[0], 0, results)
    assert payload["sweep_kept"] == facts.sweep_kept
    quiet = collect_run(World.healthy().backend(), config, Selection(workloads=config.workloads), "r",
                        config.probe.resolved_image)
    assert quiet.sweep_kept is None


def _arm_cluster(**properties: Any) -> Fetched:
    return Fetched("https://management.test/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/"
                   "managedClusters/prod", 200, {"properties": properties})


def test_a_refused_local_account_on_a_cluster_with_local_accounts_disabled_says_so(run_world: RunWorld) -> None:
    """az aks update --disable-local-accounts, then az aks rotate-certs: the admin kubeconfig's client certificate
    is refused (401 Unauthorized) and the harness advised writing the kubeconfig again, which az refuses for
    --admin ('Getting static credential is not allowed because this cluster is set to disable local accounts',
    learn.microsoft.com/azure/aks/manage-local-accounts-managed-azure-ad). ARM's properties.disableLocalAccounts
    names the cause; the fix is Entra credentials (get-credentials without --admin, kubelogin) or local accounts
    enabled again. Without Entra integration only enabling them (or Entra) helps. Entra sign-ins and ServiceAccount
    tokens are not local accounts: their 401 keeps its own words."""
    _, config = run_world(World.healthy())
    cluster = ClusterFacts(time.time(), context="prod-admin", server="https://kube.test",
                           run_by_kubernetes=told({"kind": "client-certificate", "user": "clusterAdmin_rg_prod"}),
                           arm_cluster=_arm_cluster(disableLocalAccounts=True, aadProfile={"managed": True}))
    finding = _refused(cluster, config.azure)
    assert finding.code == "KUBE_UNAUTHORIZED" and finding.evidence["disableLocalAccounts"] is True
    assert finding.message.startswith("could not list MutatingWebhookConfigurations: the API server refused the "
                                      "kubeconfig's client certificate for user clusterAdmin_rg_prod, an AKS local "
                                      "account: local accounts are disabled on this cluster (ARM's "
                                      "properties.disableLocalAccounts is true")
    lines = finding.fix_lines()
    assert lines[0].startswith("az aks get-credentials ") and " --admin" not in lines[0]
    assert lines[1].startswith("kubelogin convert-kubeconfig -l azurecli")
    assert lines[-1].startswith("az aks update ") and "--enable-local-accounts" in lines[-1]

    cluster.arm_cluster = _arm_cluster(disableLocalAccounts=True)  # no Entra integration: no credential az gives
    without_entra = _refused(cluster, config.azure)
    assert "no Entra integration" in without_entra.message
    assert without_entra.fix_lines()[0].startswith("az aks update ") and \
        "--enable-local-accounts" in without_entra.fix_lines()[0]
    assert not any(line.startswith("kubelogin") for line in without_entra.fix_lines())

    for credential in ({"kind": "exec", "user": "clusterUser_rg_prod"},
                       {"kind": "token", "user": "ci", "service_account": "ops/ci"}):
        cluster.run_by_kubernetes = told(credential)
        assert "local accounts" not in _refused(cluster, config.azure).message
    cluster.run_by_kubernetes = told({"kind": "client-certificate", "user": "clusterAdmin_rg_prod"})
    cluster.arm_cluster = _arm_cluster(disableLocalAccounts=False, aadProfile={"managed": True})
    healthy = _refused(cluster, config.azure)
    assert "local accounts" not in healthy.message and "disableLocalAccounts" not in healthy.evidence


def test_an_unreachable_api_server_of_a_cluster_arm_no_longer_has_says_it_is_deleted(run_world: RunWorld) -> None:
    """az group delete took the cluster with it: the API server no longer answers and KUBE_UNREACHABLE advised
    az aks show (which fails the same way) and a private cluster's network checks. ARM's 404 for the cluster says
    it is deleted: the finding says so and lists the subscription's clusters; nothing about networks."""
    _, config = run_world(World.healthy())
    gone = Fetched("https://management.test/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/"
                   "managedClusters/prod", 404, None, "Resource group 'rg' could not be found.",
                   "ResourceGroupNotFound")
    cluster = ClusterFacts(time.time(), context="prod", server="https://kube.test", arm_cluster=gone,
                           webhook_configurations_error=unreachable(), webhook_deployment_error=unreachable())
    result = {r.id: r for r in run_cluster_checks(cluster, config.azure)}["cluster.webhook_installed"]
    finding = result.findings[0]
    assert finding.code == "KUBE_UNREACHABLE" and finding.evidence["clusterGone"] == "ResourceGroupNotFound"
    assert finding.message == (
        "could not list MutatingWebhookConfigurations: the cluster is deleted (its resource group is gone: ARM "
        "answers 404 ResourceGroupNotFound: Resource group 'rg' could not be found.), and its API server with it: "
        "no answer from the API server https://kube.test: connection refused")
    assert result.message == finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("# resource group ") and "deleted (az group delete)" in lines[0]
    assert lines[1].startswith("az aks list ")
    assert not any("private cluster" in line or "cluster-info" in line or "az aks show" in line for line in lines)

    cluster.arm_cluster = Fetched(gone.url, 404, None, "The Resource 'Microsoft.ContainerService/managedClusters/"
                                  "prod' under resource group 'rg' was not found.", "ResourceNotFound")
    deleted = {r.id: r for r in run_cluster_checks(cluster, config.azure)}["cluster.webhook_installed"].findings[0]
    assert "ARM has no such managed cluster: ARM answers 404 ResourceNotFound" in deleted.message
    assert "deleted (az aks delete)" in deleted.fix_lines()[0]

    cluster.arm_cluster = Fetched(gone.url, 200, {"properties": {"powerState": {"code": "Running"}}})
    alive = {r.id: r for r in run_cluster_checks(cluster, config.azure)}["cluster.webhook_installed"].findings[0]
    assert "deleted" not in alive.message and any("private cluster" in line for line in alive.fix_lines())


def test_a_rotated_ca_on_a_cluster_with_local_accounts_disabled_asks_for_credentials_aks_still_issues(
    run_world: RunWorld,
) -> None:
    """az aks update --disable-local-accounts, then az aks rotate-certs as AKS's page asks: the admin kubeconfig
    now meets a Cluster CA it does not hold (x509), and the printed az aks get-credentials would write a local
    account again, which az refuses. With ARM's disableLocalAccounts read, the finding says so and prints the local
    accounts' way (Entra credentials through kubelogin, or local accounts enabled again)."""
    _, config = run_world(World.healthy())
    untrusted = KubeFailure(0, "CertificateUntrusted", "the API server https://kube.test answered with a TLS "
                            "certificate the kubeconfig's certificate-authority does not sign (CERTIFICATE_VERIFY_"
                            "FAILED): the cluster's CA was rotated")
    cluster = ClusterFacts(time.time(), context="prod-admin", server="https://kube.test",
                           webhook_configurations_error=untrusted, webhook_deployment_error=untrusted,
                           run_by_kubernetes=told({"kind": "client-certificate", "user": "clusterAdmin_rg_prod"}),
                           arm_cluster=_arm_cluster(disableLocalAccounts=True, aadProfile={"managed": True}))
    finding = {r.id: r for r in run_cluster_checks(cluster, config.azure)}["cluster.webhook_installed"].findings[0]
    assert finding.code == "KUBE_UNREACHABLE" and finding.evidence["disableLocalAccounts"] is True
    assert "(local accounts are disabled on this cluster" in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("kubectl --context prod-admin cluster-info")
    assert lines[2].startswith("kubelogin convert-kubeconfig") and "--enable-local-accounts" in lines[-1]
    cluster.arm_cluster = _arm_cluster(disableLocalAccounts=False)
    plain = {r.id: r for r in run_cluster_checks(cluster, config.azure)}["cluster.webhook_installed"].findings[0]
    assert "local accounts" not in plain.message and "TLS-inspecting proxy" in plain.fix_lines()[2]
