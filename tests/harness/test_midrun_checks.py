"""Breakages made while a run runs, on fake facts: the probe pod deleted by someone else, the API server not
answering the probe's log read, a slow or refusing service, a ServiceAccount deleted between the harness's read
and the probe pod's create (the lab makes the same 403; its window is too narrow for a lab test to hit
reliably)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_checks import CLIENT, V15, V16, VAULT, _pod, _refused, _waiting_probe, context_for

from harness.checks.access import access_outcome
from harness.checks.common import arm_failure_finding
from harness.checks.exchange import exchange_succeeds, refused_note, service_timeout, slow_service
from harness.checks.model import FAIL
from harness.checks.pod import pod_mutated
from harness.checks.probe_output import probe_completed
from harness.collect.probe_pods import await_pods, note_why_not_started
from harness.commands import command
from harness.config import AzureConfig, KeyVaultSecretAccess
from harness.facts import CREDENTIAL_ERROR, Fetched, PodFacts
from harness.names import POD_DELETED


def test_a_probe_log_the_api_server_did_not_answer_is_kube_unreachable_not_invalid_output() -> None:
    """The API server refused connections for a moment as the probe ended: the log read failed. Not
    PROBE_OUTPUT_INVALID with a 'kubectl logs ... --keep' fix: the API server is named."""
    outcome = _waiting_probe({"phase": "Succeeded"}, exit_code=0, probe=None, probe_error=(
        "could not read the probe's log: 0 Unreachable: no answer from the API server https://127.0.0.1:6443: "
        "NewConnectionError: [Errno 111] Connection refused"))
    assert outcome.status == FAIL and outcome.findings[0].code == "KUBE_UNREACHABLE"
    assert "read the probe's log" in outcome.findings[0].message and "Connection refused" in outcome.findings[0].message


def test_a_probe_log_the_rbac_does_not_let_the_harness_read_is_kube_forbidden_with_the_rule() -> None:
    """By hand in the lab: the rendered wi-harness-probe Role in orders without its pods/log rule, run as that
    ServiceAccount: PROBE_OUTPUT_INVALID 'no wi-probe/v1 document' with 'kubectl logs ... # with --keep', which
    repairs nothing. The 403 is named with the Role to paste (pasted as printed: the next run passed)."""
    outcome = _waiting_probe({"phase": "Succeeded"}, exit_code=0, probe=None, probe_error=(
        "could not read the probe's log: 403 Forbidden: pods \"p\" is forbidden: User \"system:serviceaccount:"
        "wi-harness:wi-harness\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"finance\""))
    assert outcome.status == FAIL and [f.code for f in outcome.findings] == ["KUBE_FORBIDDEN"]
    assert outcome.findings[0].fix_lines()[0] == (
        "kubectl create role wi-harness-get-pods-log -n finance --verb=get --resource=pods/log")


@pytest.mark.parametrize(("how", "code", "said"), [
    ("", "PROBE_POD_DELETED", "was deleted before the probe finished: nothing after"),
    (": evicted (DisruptionTarget EvictionByEvictionAPI: Eviction API: evicting)", "PROBE_POD_DELETED",
     "was evicted before the probe finished (DisruptionTarget EvictionByEvictionAPI"),
    ("; its namespace was deleted", "NAMESPACE_NOT_FOUND", "namespace finance was deleted during the run"),
    ("; its namespace is being deleted (Terminating since 2026-12-05T01:00:00Z)", "NAMESPACE_TERMINATING",
     "(Terminating since 2026-12-05T01:00:00Z)"),
])
def test_a_probe_pod_someone_else_deleted_is_named_not_invalid_output(how: str, code: str, said: str) -> None:
    outcome = _waiting_probe({"phase": "Failed"}, probe=None, waiting_message=POD_DELETED + how,
                             probe_error="could not read the probe's log: 404 NotFound: pods \"p\" not found")
    assert outcome.status == FAIL and [f.code for f in outcome.findings] == [code]
    assert said in outcome.findings[0].message, outcome.findings[0].message
    assert not any("--keep" in line for line in outcome.findings[0].fix_lines())


def test_a_refusal_that_outlasted_the_retries_says_so() -> None:
    error = {"kind": "connection_refused", "message": "ConnectionRefusedError: [Errno 111] Connection refused"}
    note = refused_note(error, {"attempts": 4, "waited_seconds": 4.8, "exhausted": True})
    assert note.startswith(" (refused 4 times over 4.8 s: nothing accepted the connection there")
    assert refused_note(error, {"attempts": 1}) == "" and refused_note({"kind": "dns"}, {"attempts": 4}) == ""


def test_a_read_timeout_is_a_slow_service_and_a_connect_timeout_is_not() -> None:
    """The probe marks an error whose request had gone out (sent): Entra not answering in time is SERVICE_TIMEOUT,
    a connection never made stays EGRESS_BLOCKED's."""
    sent = {"kind": "timeout", "message": "TimeoutError: The read operation timed out", "sent": True}
    assert slow_service(sent) and not slow_service({**sent, "sent": False})
    assert not slow_service({"kind": "connection_refused", "message": "refused", "sent": True})
    finding = service_timeout("Entra", "https://login.microsoftonline.com/t/oauth2/v2.0/token", sent,
                              {"attempts": 3, "waited_seconds": 3.0}, "entra", {})
    assert finding.code == "SERVICE_TIMEOUT" and finding.message.startswith(
        "Entra at login.microsoftonline.com took the request and did not answer in time (timeout: ")
    assert "3 attempts over 3.0 s of waiting" in finding.message


_RETRIED = {"attempts": 30, "answers": ["HTTP 503"] * 30, "waited_seconds": 29.0, "bound_seconds": 30.0,
            "exhausted": True}


def test_a_service_answering_503_through_the_retries_is_named_not_the_configuration() -> None:
    """By hand in the lab (lab ctl fault keyvault --rate-503 1, then entra): a vault answering 503 to the probe's
    challenge request for the whole retry bound was ACCESS_TARGET_NOT_TRUSTED with 'set the access entry's URL'
    advice, and Entra's AADSTS90033 (HTTP 503 temporarily_unavailable) EXCHANGE_FAILED. Both are the service,
    named with the attempts; a read answered 429 after the token is the same. One attempt is counted in words and
    its reason given: it said 'kept answering HTTP 503 through 1 attempt(s)'."""
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect="allow")
    ctx = context_for(_pod(*V16))
    assert ctx.facts.pod is not None
    challenge = {"name": "access", "index": 0, "status": "fail", "outcome": "error", "target": VAULT,
                 "evidence": {"url": VAULT + "secrets/db-password?api-version=7.4", "challenge_retries": _RETRIED,
                              "challenge": {"http_status": 503, "expected_resource": "https://vault.azure.net"}},
                 "error": {"kind": "challenge_missing", "message": "the vault answered HTTP 503 to a request "
                                                                   "without a token instead of a 401 challenge"}}
    ctx.facts.pod.probe = {"steps": [challenge]}
    finding = access_outcome(ctx, 0, check).findings[0]
    assert finding.code == "SERVICE_UNAVAILABLE", finding
    assert finding.message.startswith("Key Vault at ") and (
        "kept answering HTTP 503 through 30 attempts over 29.0 s of waiting: the service is failing or "
        "throttling") in finding.message
    assert not any("harness.yaml" in line for line in finding.fix_lines())

    read = {**challenge, "evidence": {"http_status": 429, "code": "Throttled", "retries": {**_RETRIED, "attempts": 4}},
            "error": {"kind": "expectation_mismatch"}}
    ctx.facts.pod.probe = {"steps": [read]}
    finding = access_outcome(ctx, 0, check).findings[0]
    assert finding.code == "SERVICE_UNAVAILABLE" and "HTTP 429 (Throttled) through 4 attempts" in finding.message
    assert any("probe.retry_seconds" in line for line in finding.fix_lines())

    # lab ctl fault keyvault --rate-429 1 --retry-after 120: one answer, whose wait the probe's bound refused
    once = {"attempts": 1, "answers": ["HTTP 429"], "waited_seconds": 0.0, "bound_seconds": 30.0, "exhausted": True,
            "retry_after_seconds": 120}
    ctx.facts.pod.probe = {"steps": [{**challenge, "evidence": {**challenge["evidence"], "challenge_retries": once,
                                                                "challenge": {"http_status": 429}}}]}
    finding = access_outcome(ctx, 0, check).findings[0]
    assert finding.code == "SERVICE_UNAVAILABLE" and finding.message.endswith(
        "answered HTTP 429 to the probe's only attempt, asking to wait 120 s (Retry-After), more than was left of "
        "probe.retry_seconds (30.0 s, one budget for the whole probe run): the probe did not wait it: the service is "
        "failing or throttling, not the workload's configuration"), finding.message
    # as the lab's second vault said it (lab ctl fault keyvault --rate-503 1: Retry-After 1): the budget was spent
    ctx.facts.pod.probe = {"steps": [{**challenge, "evidence": {**challenge["evidence"], "challenge_retries": {
        **once, "answers": ["HTTP 503"], "retry_after_seconds": 1}}}]}
    assert access_outcome(ctx, 0, check).findings[0].message.endswith(
        "answered HTTP 503 to the probe's only attempt, asking to wait 1 s (Retry-After), more than was left of "
        "probe.retry_seconds (30.0 s, one budget for the whole probe run): the probe did not wait it (its earlier "
        "retries had spent it): the service is failing or throttling, not the workload's configuration")

    # the second vault of a run whose first spent the bound (one budget per probe run): one attempt, and why
    spent = {"attempts": 1, "answers": ["HTTP 503"], "waited_seconds": 0.0, "bound_seconds": 30.0, "exhausted": True}
    ctx.facts.pod.probe = {"steps": [{**challenge, "evidence": {**challenge["evidence"], "challenge_retries": spent}}]}
    finding = access_outcome(ctx, 0, check).findings[0]
    assert finding.code == "SERVICE_UNAVAILABLE" and "attempt(s)" not in finding.message
    assert "kept answering" not in finding.message and finding.message.endswith(
        "answered HTTP 503 to the probe's only attempt: probe.retry_seconds (30.0 s, one budget for the whole probe "
        "run) was spent by its earlier retries: the service is failing or throttling, not the workload's "
        "configuration"), finding.message

    error = {"kind": "entra_error", "http_status": 503, "error": "temporarily_unavailable", "aadsts": "AADSTS90033",
             "message": "AADSTS90033: A transient error has occurred. Please try again."}
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "error": error, "evidence": {
        "token_url": "https://login.microsoftonline.com/t/oauth2/v2.0/token", "retries": _RETRIED}}]}
    finding = exchange_succeeds(ctx).findings[0]
    assert finding.code == "SERVICE_UNAVAILABLE" and finding.message.startswith(
        "Entra at login.microsoftonline.com kept answering HTTP 503 (AADSTS90033) through 30 attempts")


@pytest.mark.parametrize(("said", "code"), [
    ("Authentication failed: HTTP Error: 503", "SERVICE_UNAVAILABLE"),  # the lab's Entra at --rate-503 1, via MSAL
    ("Authentication failed: AADSTS90033: A transient error has occurred. Please try again.", "SERVICE_UNAVAILABLE"),
    ("Authentication failed: AADSTS7000215: Invalid client secret provided.", "HARNESS_CREDENTIAL_FAILED"),
])
def test_entra_failing_the_harnesss_own_token_request_is_not_its_credential(said: str, code: str) -> None:
    """By hand (lab ctl fault entra --rate-503 1): every ARM read failed with HARNESS_CREDENTIAL_FAILED and a fix
    to put the client secret's value in its file; Entra was failing, and no new secret helps."""
    fetched = Fetched("https://127.0.0.1:41473/subscriptions/s", None, None,
                      f"the harness could not get an ARM token: {said}", CREDENTIAL_ERROR, "127.0.0.1:35191")
    finding = arm_failure_finding(fetched, "identity", "identity lookup failed", "X", command("az", "version"), None)
    assert finding.code == code, finding
    if code == "SERVICE_UNAVAILABLE":
        assert finding.message.startswith("identity lookup failed: Entra at 127.0.0.1:35191 answered the harness's "
                                          "own token request with ")
        assert not any("secret" in line for line in finding.fix_lines())


def test_a_service_account_deleted_after_the_harness_read_it_is_not_rbac() -> None:
    """The ServiceAccount admission plugin's 403 (admission.NewForbidden, "error looking up service account ..."),
    which is no missing right of the harness: SA_NOT_FOUND, with the ServiceAccount made again as the fix."""
    finding = _refused(403, 'pods "wi-probe-backend-sa-c0b3a5" is forbidden: error looking up service account '
                            'finance/backend-sa: serviceaccount "backend-sa" not found')
    assert finding.code == "SA_NOT_FOUND" and "deleted during the run" in finding.message
    assert finding.fix_lines()[0] == "kubectl create serviceaccount -n finance backend-sa"
    assert finding.fix_lines()[1].startswith("kubectl annotate serviceaccount -n finance backend-sa "
                                             "azure.workload.identity/client-id=")


class DeletedMidRun:
    """The API server of a probe pod someone deletes while it runs: the list shows it running; the watch gives
    its graceful deletion (deletionTimestamp, then the container stopped with 143) and its DELETED object, which
    carries the eviction's DisruptionTarget condition; ``listed`` False: it is gone before the first list."""

    def __init__(self, listed: bool = True) -> None:
        self.listed = listed

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        running = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
        return ([running] if self.listed else []), "1"

    def watch_pods(self, *_: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        meta = {"name": "p", "deletionTimestamp": "2026-12-05T01:00:00Z"}
        evicted = [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting"}]
        yield "MODIFIED", {"metadata": meta, "status": {"phase": "Running", "conditions": evicted}}
        yield "MODIFIED", {"metadata": meta, "status": {"phase": "Running", "conditions": evicted,
                                                         "containerStatuses": [{"name": "probe", "state": {
                                                             "terminated": {"exitCode": 143}}}]}}
        yield "DELETED", {"metadata": meta, "status": {"phase": "Failed", "conditions": evicted}}


@pytest.mark.parametrize("listed", [True, False], ids=["evicted-while-watched", "gone-before-the-list"])
def test_a_probe_pod_deleted_while_it_runs_is_recorded_as_deleted(listed: bool) -> None:
    facts = PodFacts("finance", "p", created=True)
    settled_seen: list[str] = []
    await_pods(DeletedMidRun(listed), [facts], "run", deadline=10,  # type: ignore[arg-type]
               monotonic=lambda: 0.0, sleep=lambda _: None, on_settled=lambda f: settled_seen.append(f.name))
    assert (facts.waiting_message or "").startswith(POD_DELETED) and not facts.timed_out
    if listed:  # the container's end (143) settles it; the eviction is named
        assert settled_seen == ["p"] and facts.exit_code == 143
        assert facts.waiting_message == (POD_DELETED + ": evicted (DisruptionTarget EvictionByEvictionAPI: "
                                         "Eviction API: evicting)")
    else:
        assert facts.phase == "Failed" and facts.waiting_message == POD_DELETED


def test_an_annotation_changed_mid_run_is_named_not_a_preset_env() -> None:
    """kubectl annotate --overwrite between the harness's read and the probe pod's admission: the webhook injects
    the new client id. The harness's probe pod presets no AZURE_CLIENT_ID, so this is no POD_ENV_CONFLICT (whose
    fix, 'remove AZURE_CLIENT_ID from the container's env', would be wrong); an existing pod (--pod) still is."""
    other = "976fade1-c36f-4086-9738-1fb8240746d6"
    pod = _pod(*V16)
    pod["spec"]["containers"][0]["env"][0]["value"] = other
    ctx = context_for(pod)
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL and [f.code for f in outcome.findings] == ["SA_CHANGED_DURING_RUN"]
    assert f"the webhook injected {other} into the probe pod" in outcome.findings[0].message
    assert ctx.facts.pod is not None
    ctx.facts.pod.existing = True
    assert [f.code for f in pod_mutated(ctx).findings] == ["POD_ENV_CONFLICT"]


class Events:
    """The events of a probe pod whose source ConfigMap went before the kubelet mounted it (as the lab's kubelet
    and the real one write them), ended by its activeDeadlineSeconds."""

    def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                        field_selector: str = "") -> list[dict[str, Any]]:
        assert (plural, field_selector) == ("events", "involvedObject.name=p")
        return [{"type": "Warning", "reason": "FailedMount", "lastTimestamp": "2026-12-05T11:50:46Z",
                 "message": 'MountVolume.SetUp failed for volume "wi-probe-source" : configmap '
                            '"wi-probe-src-run" not found'},
                {"type": "Warning", "reason": "DeadlineExceeded", "lastTimestamp": "2026-12-05T11:50:48Z",
                 "message": "Pod was active on the node longer than the specified deadline"}]


def test_a_source_configmap_deleted_before_the_mount_is_named_not_a_slow_pull() -> None:
    """Not 'the deadline passed while the probe's image was still being pulled' with 'raise probe.timeout_seconds':
    the kubelet's FailedMount names the run's own ConfigMap, deleted while the pod started."""
    pod = _pod(*V16)
    pod["spec"]["volumes"].append({"name": "wi-probe-source", "configMap": {"name": "wi-probe-src-run"}})
    pod["status"] = {"phase": "Failed", "reason": "DeadlineExceeded"}
    ctx = context_for(pod)
    facts = ctx.facts.pod
    assert facts is not None
    facts.phase, facts.waiting_reason = "Failed", "ContainerCreating"
    note_why_not_started(Events(), [facts])  # type: ignore[arg-type]
    assert facts.waiting_message is not None and facts.waiting_message.startswith("FailedMount: ")
    outcome = probe_completed(ctx)
    assert [f.code for f in outcome.findings] == ["PROBE_TIMEOUT"]
    assert outcome.findings[0].message.startswith(
        "the probe's source ConfigMap finance/wi-probe-src-run was deleted before the pod could mount it")
    assert not any("timeout_seconds" in line for line in outcome.findings[0].fix_lines())


def test_pod_an_existing_pod_that_sets_its_own_authority_host_is_a_conflict_not_the_webhooks_cloud() -> None:
    """--pod of a pod whose spec sets AZURE_AUTHORITY_HOST (https://evil.example/, or another cloud's copied from a
    template) was a warning blaming the webhook's AZURE_ENVIRONMENT, and the run passed; the webhook never overwrites
    a variable already set, so the pod's SDK sends its ServiceAccount token there. The probe pod under the same
    ServiceAccount shows what the webhook injects now: when they differ, it is POD_ENV_CONFLICT (error), with the
    variable removed and the pod made again."""
    from harness.facts import PodFacts

    existing = _pod(*V15)
    existing["spec"]["containers"][0]["env"][3]["value"] = "https://evil.example/\x1b[2J"
    ctx = context_for(existing)
    assert ctx.facts.pod is not None
    ctx.facts.pod.existing = True
    ctx.facts.probe_pod = PodFacts("finance", "wi-probe-backend-sa-1", created=True, pod=_pod(*V15))
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL and [f.code for f in outcome.findings] == ["POD_ENV_CONFLICT"]
    assert outcome.message.startswith("AZURE_AUTHORITY_HOST=https://evil.example/\\x1b[2J in the pod, but the "
                                      "webhook injects https://login.microsoftonline.com/ under ServiceAccount "
                                      "backend-sa: the pod spec sets it")
    assert outcome.findings[0].fix_lines()[0] == (
        "# remove AZURE_AUTHORITY_HOST from the container's env (or its envFrom source)")
    # the same authority as the webhook's (a trailing slash aside): no conflict
    existing["spec"]["containers"][0]["env"][3]["value"] = "https://login.microsoftonline.com"
    assert pod_mutated(ctx).status != FAIL


def test_a_token_file_the_pod_sets_itself_is_a_conflict_not_a_webhook_to_reinstall() -> None:
    """A pod spec that sets AZURE_FEDERATED_TOKEN_FILE (a path with '..', a path copied from another layout) keeps
    it: the webhook mounts the token at its own path and never overwrites the variable. pod.mutated said
    POD_NOT_MUTATED 'no mount of the token volume at the path in AZURE_FEDERATED_TOKEN_FILE' with the webhook's
    configuration and az aks update --enable-workload-identity as the fix; it is POD_ENV_CONFLICT naming where the
    token is, with the variable removed and the pod made again."""
    pod = _pod(*V15)
    pod["spec"]["containers"][0]["env"][2]["value"] = "/var/run/secrets/azure/tokens/../../../../../etc/shadow"
    outcome = pod_mutated(context_for(pod))
    assert outcome.status == FAIL and [f.code for f in outcome.findings] == ["POD_ENV_CONFLICT"]
    assert outcome.findings[0].message == (
        "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/../../../../../etc/shadow is set in the pod spec "
        "(no mount of the token volume there; the token is at /var/run/secrets/azure/tokens/azure-identity-token): "
        "the webhook never overwrites a variable already set, so the SDK reads a file that is not the token")
    lines = outcome.findings[0].fix_lines()
    assert lines[0] == "# remove AZURE_FEDERATED_TOKEN_FILE from the container's env (or its envFrom source)"
    assert not any("az aks update" in line for line in lines)


def test_a_deployment_pods_preset_variable_is_unset_on_its_template_as_the_live_pods_view_prints() -> None:
    """--pod of a Deployment's pod whose template sets AZURE_FEDERATED_TOKEN_FILE itself: pod.mutated printed the
    advice to remove it and kubectl rollout restart, which makes the pods again with the variable, while
    workload.live_pods prints kubectl set env deployment/NAME VAR- for the same conflict. Both print the unset now
    (the template change rolls the pods); a bare pod keeps the advice and its delete."""
    pod = _pod(*V15)
    pod["spec"]["containers"][0]["env"][2]["value"] = "/var/run/secrets/tokens/other"
    pod["metadata"]["labels"] = {**(pod["metadata"].get("labels") or {}), "pod-template-hash": "7d9f"}
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}]
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    ctx.facts.pod.existing = True
    [finding] = pod_mutated(ctx).findings
    assert finding.code == "POD_ENV_CONFLICT"
    assert finding.fix_lines() == ["kubectl set env deployment/backend -n finance AZURE_FEDERATED_TOKEN_FILE-"]


def test_the_job_s_own_workload_id_login_without_a_federated_credential_prints_that_credential(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """By hand in the lab: manifests render and kubectl apply without README's 'give the identity a federated
    credential for system:serviceaccount:wi-harness:wi-harness' step: the Job's run failed HARNESS_CREDENTIAL_FAILED
    (WorkloadIdentityCredential: AADSTS70025) with 'az login' and AZURE_CLIENT_SECRET advice, which no Job takes.
    The credential failure now carries the Job's login (its client, its token's issuer and subject) and the fix
    creates that credential (the app registration's line pasted as printed: the Job's next run PASS)."""
    import base64
    import json

    from harness.collect.arm_api import workload_identity_login

    issuer, subject, client = "https://oidc.example/t/", "system:serviceaccount:wi-harness:wi-harness", CLIENT
    claims = base64.urlsafe_b64encode(json.dumps({"iss": issuer, "sub": subject}).encode()).decode().rstrip("=")
    (tmp_path / "token").write_text(f"e30.{claims}.sig")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("AZURE_CLIENT_ID", client)
    login = workload_identity_login()
    assert login == f" [the harness's Workload ID login: client {client}, issuer {issuer}, subject {subject}]"
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE")
    assert workload_identity_login() == ""  # az login, a client secret: nothing to add
    error = ("the harness could not get an ARM token: DefaultAzureCredential failed to retrieve a token from the "
             "included credentials: WorkloadIdentityCredential: Microsoft Entra ID error '(invalid_client) "
             f"AADSTS70025: The client '{client}'(wi-harness) has no configured federated identity cr...{login}")
    finding = arm_failure_finding(Fetched("https://arm/x", None, None, error, CREDENTIAL_ERROR), "cluster",
                                  "the managed cluster could not be read", "AKS_NOT_FOUND", command("az"),
                                  context_for().azure)
    lines = finding.fix_lines()
    assert finding.code == "HARNESS_CREDENTIAL_FAILED" and not any("az login" in line for line in lines)
    assert lines[1] == ("az ad app federated-credential create --id " + client + " --parameters '{\"name\": "
                        f"\"wi-harness-job\", \"issuer\": \"{issuer}\", \"subject\": \"{subject}\", \"audiences\": "
                        "[\"api://AzureADTokenExchange\"]}'")
    assert lines[-1].startswith("# then run the Job again: kubectl -n wi-harness delete job wi-harness")


def test_the_job_s_service_account_without_its_client_id_annotation_still_logs_in_as_harness_client_id(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """By hand in the lab: the Job's ServiceAccount without azure.workload.identity/client-id (the webhook injects
    the token, the tenant and the authority, no AZURE_CLIENT_ID): azure-identity's ManagedIdentityCredential raised
    ValueError 'Workload identity was selected but no client ID was provided' from DefaultAzureCredential's
    constructor, 59 setup errors with tracebacks and no finding. harness.client_id is the client id there (the
    Job's rerun by hand: PASS, run_by.azure.appid the harness's)."""
    from harness.collect.arm_api import make_credential

    (tmp_path / "token").write_text("e30.e30.sig")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("AZURE_TENANT_ID", "68df44b8-736c-4a3a-9bec-5db0488e314f")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/")
    monkeypatch.delenv("AZURE_CLIENT_ID", raising=False)
    azure = AzureConfig(tenant_id="68df44b8-736c-4a3a-9bec-5db0488e314f",
                        subscription_id="0b1f6471-1bf0-4dda-aec3-cb9272f09590", resource_group="rg",
                        cluster_name="aks")
    with pytest.raises(ValueError, match="no client ID was provided"):
        make_credential(azure)
    assert make_credential(azure, CLIENT) is not None
