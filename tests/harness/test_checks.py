"""Checks as pure functions of facts.

We test these aspects:
- the skip chain: a failed check skips its dependents "because <id> failed", transitively, naming the root;
- mutation is recognised under both webhook layouts (v1.5 and v1.6: found by audience, not name or path);
- issuer matching is exact: a trailing slash is a mismatch, in the token and in the federated credential;
- cluster checks, SA annotation problems, exchange failures and access expectations yield stable findings.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakeworld import ACCOUNT, ISSUER, OTHER_VAULT, VAULT, FakeWorkload, World

from harness.analysis import analyse
from harness.checks import remediation as fix
from harness.checks.access import access_outcome
from harness.checks.admission import refusal_cause
from harness.checks.chain import CheckSpec, run_chain, verdict
from harness.checks.cluster import enable_webhook, run_cluster_checks
from harness.checks.context import WorkloadContext
from harness.checks.exchange import exchange_succeeds
from harness.checks.federation import federated_credential, identity_matches
from harness.checks.model import FAIL, PASS, SKIP, WARN, Finding, Outcome, failed, passed, skipped
from harness.checks.pod import pod_admitted, pod_mutated
from harness.checks.probe_output import probe_completed
from harness.checks.roles import covers, grants
from harness.checks.serviceaccount import sa_client_id_annotation, sa_exists
from harness.checks.token import token_issuer
from harness.collect.access_resources import collect_access_resources
from harness.collect.probe_pods import observe, settled
from harness.collect.run import Selection, collect_run
from harness.commands import render
from harness.config import (
    AzureConfig,
    BlobAccess,
    ExpectConfig,
    KeyVaultSecretAccess,
    WorkloadConfig,
    parse_config,
)
from harness.facts import (
    ClusterFacts,
    Fetched,
    IdentityFacts,
    InventoryIdentity,
    KubeFailure,
    LivePod,
    LivePodsFacts,
    PodFacts,
    ServiceAccountFacts,
    WebhookPodNotStarted,
    WebhookPodUnscheduled,
    WorkloadFacts,
)
from harness.redact import Redactor

CLIENT = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"
PRINCIPAL = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
IDENTITY_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/myRg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/backend"


def statuses(results: Any) -> dict[str, str]:
    return {r.id: r.status for r in results}


# ---------------------------------------------------------------- the chain


def test_skip_chain_names_the_root_failure_transitively() -> None:
    specs = [
        CheckSpec("a", "a", lambda _: passed("ok")),
        CheckSpec("b", "b", lambda _: failed("broken")),
        CheckSpec("c", "c", lambda _: passed("never run"), ("b",)),
        CheckSpec("d", "d", lambda _: passed("never run"), ("c",)),
        CheckSpec("e", "e", lambda _: passed("independent"), ("a",)),
    ]
    results = run_chain(specs, None)
    assert statuses(results) == {"a": PASS, "b": FAIL, "c": SKIP, "d": SKIP, "e": PASS}
    assert results[2].message == "skipped because b failed"
    assert results[3].message == "skipped because b failed"
    assert results[3].blocked_by == "b" and results[3].evidence == {"blocked_by": "b"}
    assert verdict(results) == "fail"


def test_a_skip_that_is_not_a_failure_propagates_without_blaming_anyone() -> None:
    specs = [
        CheckSpec("azure", "azure", lambda _: skipped("no Azure access configured")),
        CheckSpec("fic", "fic", lambda _: passed("x"), ("azure",)),
    ]
    results = run_chain(specs, None)
    assert statuses(results) == {"azure": SKIP, "fic": SKIP}
    assert results[1].blocked_by is None
    assert "no Azure access configured" in results[1].message
    assert verdict(results) == "pass"


def test_a_crashing_check_fails_alone() -> None:
    def boom(_: object) -> Outcome:
        raise KeyError("oops")

    results = run_chain([CheckSpec("x", "x", boom), CheckSpec("y", "y", lambda _: passed("fine"))], None)
    assert results[0].status == FAIL and "internal error in check x: KeyError" in results[0].message
    assert results[1].status == PASS


# ---------------------------------------------------------------- pod mutation, both layouts


def _pod(
    volume: str,
    mount_path: str,
    token_path: str,
    read_only: bool = True,
    audience: str = "api://AzureADTokenExchange",
) -> dict[str, Any]:
    env = [
        {"name": "AZURE_CLIENT_ID", "value": CLIENT},
        {"name": "AZURE_TENANT_ID", "value": "t"},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": f"{mount_path}/{token_path}"},
        {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"},
    ]
    return {
        "metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {
            "containers": [
                {
                    "name": "probe",
                    "env": env,
                    "volumeMounts": [
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        },
                        {"name": volume, "mountPath": mount_path, "readOnly": read_only},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]
                    },
                },
                {
                    "name": volume,
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "audience": audience,
                                    "expirationSeconds": 3600,
                                    "path": token_path,
                                }
                            }
                        ]
                    },
                },
            ],
        },
    }


def context_for(pod: dict[str, Any] | None = None, **workload: Any) -> WorkloadContext:
    sa = ServiceAccountFacts(
        "finance", "backend-sa", True, True, {"azure.workload.identity/client-id": CLIENT}
    )
    facts = WorkloadFacts(
        "finance/backend-sa",
        "finance",
        "backend-sa",
        time.time(),
        sa,
        IdentityFacts(),
        PodFacts("finance", "p", created=True, pod=pod),
    )
    cluster = ClusterFacts(
        time.time(),
        issuer_url=ISSUER,
        issuer_source="arm",
        webhook_configurations=[{"metadata": {"name": "azure-wi-webhook"}}],
    )
    return WorkloadContext(
        facts,
        WorkloadConfig(namespace="finance", service_account="backend-sa", **workload),
        cluster,
        None,
        time.time(),
    )


V15 = ("azure-identity-token", "/var/run/secrets/azure/tokens", "azure-identity-token")
V16 = (
    "azure-workload-identity-reserved-0123456789abcdef0123456789abcd",
    "/var/run/secrets/azure/wi",
    "token/azure-identity-token",
)


@pytest.mark.parametrize("layout, expected", [(V15, "v1.5"), (V16, "v1.6")])
def test_both_webhook_layouts_are_recognised_by_audience(layout: tuple[str, str, str], expected: str) -> None:
    outcome = pod_mutated(context_for(_pod(*layout)))
    assert outcome.status == PASS, outcome.message
    assert outcome.evidence["layout"] == expected
    assert outcome.evidence["token_file"] == f"{layout[1]}/{layout[2]}"
    assert outcome.evidence["read_only"] is True


def test_a_custom_volume_name_and_path_still_pass() -> None:
    outcome = pod_mutated(context_for(_pod("whatever", "/mnt/identity", "t/jwt")))
    assert outcome.status == PASS and outcome.evidence["layout"] == "custom"


@pytest.mark.parametrize(
    "pod, fragment",
    [
        (_pod(*V16, read_only=False), "is not readOnly"),
        (_pod(*V16, audience="api://AKSIdentityBinding"), "no projected service-account token with audience"),
    ],
)
def test_broken_mutations(pod: dict[str, Any], fragment: str) -> None:
    outcome = pod_mutated(context_for(pod))
    assert outcome.status == FAIL and fragment in outcome.message
    assert outcome.findings[0].code == "POD_NOT_MUTATED"


AKS_SELECTOR = {"matchExpressions": [
    {"key": "control-plane", "operator": "NotIn", "values": ["true"]},
    {"key": "kubernetes.azure.com/managedby", "operator": "NotIn", "values": ["aks"]}]}


@pytest.mark.parametrize(("selector", "labels", "fragment", "first_fix"), [
    (AKS_SELECTOR, {"kubernetes.io/metadata.name": "finance", "control-plane": "true"},
     "control-plane=true is one it excludes", "kubectl label namespace finance control-plane-"),
    ({"matchLabels": {"wi": "on"}}, {"kubernetes.io/metadata.name": "finance"},
     "it needs wi in (on)", "# the webhook's namespaceSelector was edited"),  # then its restore, or the label
    ({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["finance"]}]},
     {"kubernetes.io/metadata.name": "finance"}, "kubernetes.io/metadata.name NotIn", "# the webhook configuration"),
])
def test_a_namespace_the_webhooks_namespace_selector_excludes_is_named_with_the_label_to_change(
    selector: dict[str, Any], labels: dict[str, str], fragment: str, first_fix: str
) -> None:
    """An unmutated labelled pod in a namespace the namespaceSelector does not select: the requirement it fails
    and the label change that lets it in (none for the name the API server sets: the configuration's own)."""
    pod = {"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"containers": [{"name": "probe"}]}}
    ctx = context_for(pod)
    ctx.cluster.webhook_configurations = [{"metadata": {"name": "azure-wi-webhook"}, "webhooks": [
        {"name": "mutation.azure-workload-identity.io", "namespaceSelector": selector}]}]
    ctx.facts.sa.namespace_labels = labels
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL and fragment in outcome.message
    assert outcome.findings[0].code == "POD_NOT_MUTATED"
    assert outcome.findings[0].fix_lines()[0].startswith(first_fix)
    ctx.facts.sa.namespace_labels = {"kubernetes.io/metadata.name": "elsewhere", "wi": "on"}  # selected: the old
    assert "was it created before the webhook was ready" in pod_mutated(ctx).message  # question stands


def test_a_workload_in_kube_system_is_let_in_by_the_enforcers_opt_out_not_by_enabling_the_add_on_again() -> None:
    """Found by hand (kubectl create sa -n kube-system, annotated): AKS's admissions enforcer keeps every webhook
    away from kube-system, and the printed az aks update --enable-workload-identity changed nothing. The fix is
    the opt-out azure-workload-identity's known issues name (pasted in the lab, the pod was mutated); with it on
    the configuration already, kube-system is no reason."""
    pod = {"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"containers": [{"name": "probe"}]}}
    ctx = context_for(pod)
    ctx.facts.namespace = "kube-system"
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL and "AKS keeps webhooks away from kube-system" in outcome.message
    lines = outcome.findings[0].fix_lines()
    assert "kubectl annotate mutatingwebhookconfiguration azure-wi-webhook admissions.enforcer/disabled=true" in lines
    assert not any("az aks update" in line for line in lines)
    ctx.cluster.webhook_configurations[0]["metadata"]["annotations"] = {"admissions.enforcer/disabled": "true"}
    assert "kube-system" not in pod_mutated(ctx).message


def _json_patch(document: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 test/add/replace/remove, enough to apply the printed kubectl patch --type json to a configuration."""
    document = json.loads(json.dumps(document))
    for op in ops:
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]]
        target = document
        try:
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target[part]
            found = target[int(last)] if isinstance(target, list) and last != "-" else target.get(last) \
                if isinstance(target, dict) else None
        except (IndexError, KeyError):
            found = None
        if op["op"] == "test":
            assert found == op["value"], "test failed"
        elif op["op"] == "add" and isinstance(target, dict):
            target[last] = op["value"]
        elif op["op"] == "add":
            target.append(op["value"]) if last == "-" else target.insert(int(last), op["value"])
        elif op["op"] == "replace":
            target[int(last) if isinstance(target, list) else last] = op["value"]
        else:
            del target[int(last) if isinstance(target, list) else last]
    return document


@pytest.mark.parametrize("expressions", [
    [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["finance"]}],
    [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "finance"]}],
    [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["payments"]}],
    [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["finance"]},
     {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["finance", "other"]}],
])
def test_a_chart_whose_namespace_selector_value_leaves_the_namespace_out_is_patched_not_reinstalled(
    expressions: list[dict[str, Any]]
) -> None:
    """helm install --set-json mutatingWebhookNamespaceSelector=...: a requirement on the namespace's name. helm
    upgrade --reuse-values renders the same selector again, so the fix patches the configuration (a JSON patch that
    tests the requirement first) and names the release's values; applied, it lets the namespace in."""
    pod = {"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"containers": [{"name": "probe"}]}}
    ctx = context_for(pod)
    configuration = {"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"}, "webhooks": [
        {"name": "other.example.com", "namespaceSelector": {}},
        {"name": "mutation.azure-workload-identity.io",
         "namespaceSelector": {"matchExpressions": [*AKS_SELECTOR["matchExpressions"], *expressions]}}]}
    ctx.cluster.webhook_configurations = [configuration]
    ctx.cluster.webhook_deployments = [{"metadata": {
        "namespace": "azure-workload-identity-system", "name": "azure-wi-webhook-controller-manager",
        "annotations": {"meta.helm.sh/release-name": "wi-webhook"}}}]
    ctx.facts.sa.namespace_labels = {"kubernetes.io/metadata.name": "finance"}
    finding = pod_mutated(ctx).findings[0]
    lines = finding.fix_lines()
    assert not any(line.startswith(("helm upgrade", "az aks update")) for line in lines)
    assert "helm get values -n azure-workload-identity-system wi-webhook" in lines
    patches = [shlex.split(line) for line in lines if line.startswith("kubectl patch mutatingwebhookconfiguration")]
    assert len(patches) == len(expressions)
    patched = configuration
    for argv in patches:
        assert argv[3] == "azure-wi-webhook-mutating-webhook-configuration"
        patched = _json_patch(patched, json.loads(argv[argv.index("-p") + 1]))
    ctx.cluster.webhook_configurations = [patched]
    assert "was it created before the webhook was ready" in pod_mutated(ctx).message  # finance is selected now
    with pytest.raises(AssertionError, match="test failed"):  # pasted twice: the test op refuses the second
        for argv in patches:
            patched = _json_patch(patched, json.loads(argv[argv.index("-p") + 1]))


@pytest.mark.parametrize("install", ["chart", "addon"])
def test_a_chart_injecting_another_clouds_authority_host_is_fixed_in_its_azure_environment_value(install: str) -> None:
    """helm install --set azureEnvironment=AzureChinaCloud on a public-cloud cluster: the pod is mutated with
    login.chinacloudapi.cn. Under the chart the fix is its azureEnvironment value and the webhook's restart (it
    reads the ConfigMap at start-up), then the workload; the add-on's ConfigMap is AKS's, so only the look."""
    pod = _pod(*V15)
    pod["spec"]["containers"][0]["env"][3]["value"] = "https://login.chinacloudapi.cn/"
    ctx = context_for(pod)
    ctx.azure = AzureConfig(tenant_id="00000000-0000-4000-8000-000000000002",
                            subscription_id="00000000-0000-4000-8000-000000000001", resource_group="rg",
                            cluster_name="aks")
    namespace = "azure-workload-identity-system" if install == "chart" else "kube-system"
    ctx.cluster.webhook_deployments = [{"metadata": {
        "namespace": namespace, "name": "azure-wi-webhook-controller-manager",
        "annotations": {"meta.helm.sh/release-name": "wi-webhook" if install == "chart" else "aks-managed"}}}]
    outcome = pod_mutated(ctx)
    assert outcome.status == WARN and outcome.findings[0].code == "AUTHORITY_HOST_MISMATCH"
    lines = outcome.findings[0].fix_lines()
    upgrade = ("helm upgrade -n azure-workload-identity-system wi-webhook azure-workload-identity/"
               "workload-identity-webhook --reuse-values --set azureEnvironment=AzurePublicCloud")
    if install == "chart":
        assert upgrade in lines
        assert lines.index(upgrade) < next(i for i, line in enumerate(lines) if "rollout restart deployment/azure-wi"
                                           in line)
    else:
        assert not any(line.startswith("helm") for line in lines)


def test_a_webhook_no_helm_release_owns_gets_its_config_map_set_not_helm_upgrade() -> None:
    """Upstream's deployment YAML (azure-wi-webhook.yaml applied with kubectl) in its own namespace: no
    meta.helm.sh/release-name on the Deployment. The fix printed helm upgrade of a release named
    workload-identity-webhook, which Helm answers 'has no deployed releases'; it is the ConfigMap patched, then
    the webhook's pods made again (they read it at start-up)."""
    pod = _pod(*V15)
    pod["spec"]["containers"][0]["env"][3]["value"] = "https://login.chinacloudapi.cn/"
    ctx = context_for(pod)
    ctx.azure = AzureConfig(tenant_id="00000000-0000-4000-8000-000000000002",
                            subscription_id="00000000-0000-4000-8000-000000000001", resource_group="rg",
                            cluster_name="aks")
    ctx.cluster.webhook_deployments = [{"metadata": {"namespace": "azure-workload-identity-system",
                                                     "name": "azure-wi-webhook-controller-manager"}}]
    outcome = pod_mutated(ctx)
    assert outcome.findings[0].code == "AUTHORITY_HOST_MISMATCH"
    lines = outcome.findings[0].fix_lines()
    assert not any(line.startswith("helm") for line in lines)
    patch = ("kubectl -n azure-workload-identity-system patch configmap azure-wi-webhook-config --type merge -p "
             "'{\"data\":{\"AZURE_ENVIRONMENT\":\"AzurePublicCloud\"}}'")
    assert patch in lines
    assert lines.index(patch) < next(i for i, line in enumerate(lines) if "rollout restart deployment/azure-wi" in line)
    tenant = [render(step) for step in fix.helm_set_chart_tenant(None, "wi-system", "72f988bf-86f1-41af-91ab-"
                                                                  "2d7cd011db47")]
    assert tenant[1] == ("kubectl -n wi-system patch configmap azure-wi-webhook-config --type merge -p "
                         "'{\"data\":{\"AZURE_TENANT_ID\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\"}}'")
    assert [render(step) for step in fix.helm_set_chart_tenant("wi", "wi-system", None)][0].startswith(
        "helm upgrade -n wi-system wi ")  # a release owns it: its value, as before


def test_token_file_pointing_elsewhere_than_the_mount() -> None:
    pod = _pod(*V16)
    pod["spec"]["containers"][0]["env"][2]["value"] = "/var/run/secrets/azure/tokens/azure-identity-token"
    outcome = pod_mutated(context_for(pod))
    assert outcome.status == FAIL and "no mount of the token volume" in outcome.message


def test_preset_client_id_conflicting_with_the_annotation() -> None:
    """An existing pod (--pod) that sets AZURE_CLIENT_ID itself; the harness's own probe pod sets none, so there
    the same difference is an annotation changed during the run (test_midrun_checks.py)."""
    pod = _pod(*V16)
    pod["spec"]["containers"][0]["env"][0]["value"] = "11111111-1111-1111-1111-111111111111"
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    ctx.facts.pod.existing = True
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL and outcome.findings[0].code == "POD_ENV_CONFLICT"


def test_an_unmutated_pod_names_the_likely_cause() -> None:
    ctx = context_for({"metadata": {"name": "p", "labels": {}}, "spec": {"containers": [{"name": "probe"}]}})
    ctx.cluster.webhook_configurations = []
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL
    assert outcome.findings[0].code == "WEBHOOK_NOT_INSTALLED"
    assert "lacks the label" in outcome.message and "no workload identity webhook" in outcome.message


# ---------------------------------------------------------------- issuer: exact, trailing slash included


def _with_token_claims(ctx: WorkloadContext, **claims: Any) -> WorkloadContext:
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {
        "schema": "wi-probe/v1",
        "steps": [{"name": "token", "status": "pass", "evidence": {"claims": claims}}],
    }
    return ctx


def test_a_clock_skew_answer_from_entra_points_at_the_nodes_clock() -> None:
    pod = _pod(*V16)
    pod["spec"]["nodeName"] = "aks-nodepool1-0"
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    error = {
        "kind": "entra_error",
        "http_status": 401,
        "error": "invalid_client",
        "aadsts": "AADSTS700024",
        "message": "AADSTS700024: Client assertion is not within its valid time range.",
    }
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {}, "error": error}]}
    finding = exchange_succeeds(ctx).findings[0]
    assert finding.code == "TOKEN_TIME_INVALID"
    assert finding.fix_lines()[0] == "kubectl debug node/aks-nodepool1-0 -it --image=busybox -- date -u"


def test_access_errors_that_are_not_denials_say_what_to_look_at() -> None:
    check = KeyVaultSecretAccess(
        kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect="allow"
    )
    ctx = context_for()
    assert ctx.facts.pod is not None
    missing = {
        "name": "access",
        "index": 0,
        "status": "fail",
        "outcome": "error",
        "evidence": {"http_status": 404, "code": "SecretNotFound"},
        "error": {"kind": "http_error", "http_status": 404, "code": "SecretNotFound"},
    }
    ctx.facts.pod.probe = {"steps": [missing]}
    finding = access_outcome(ctx, 0, check).findings[0]
    assert finding.code == "SECRET_NOT_FOUND"
    assert finding.fix_lines()[0] == f"az keyvault secret list --id {VAULT} --query '[].name' -o tsv"
    exchange_error = {
        "kind": "entra_error",
        "http_status": 400,
        "error": "invalid_resource",
        "message": "AADSTS500011: The resource principal named https://vault.azure.net was not found",
    }
    no_token = dict(
        missing,
        evidence={},
        error={
            "kind": "token_exchange",
            "scope": "https://vault.azure.net/.default",
            "detail": exchange_error,
        },
    )
    ctx.facts.pod.probe = {"steps": [no_token]}
    finding = access_outcome(ctx, 0, check).findings[0]
    assert finding.code == "ACCESS_TOKEN_FAILED"
    assert finding.message == (
        "no token for https://vault.azure.net/.default: HTTP 400 invalid_resource: AADSTS500011: The resource "
        "principal named https://vault.azure.net was not found"
    )
    assert finding.fix_lines()[0].startswith("# set scope: on this access entry in harness.yaml")


def test_token_issuer_exact_match_passes() -> None:
    assert token_issuer(_with_token_claims(context_for(), iss=ISSUER)).status == PASS


def test_token_issuer_missing_trailing_slash_is_a_mismatch() -> None:
    outcome = token_issuer(_with_token_claims(context_for(), iss=ISSUER.rstrip("/")))
    assert outcome.status == FAIL
    assert "differ only by the trailing slash" in outcome.message
    assert outcome.findings[0].code == "ISSUER_MISMATCH"


def test_token_issuer_unknown_cluster_issuer_is_a_skip() -> None:
    ctx = _with_token_claims(context_for(), iss=ISSUER)
    ctx.cluster.issuer_url = None
    assert token_issuer(ctx).status == SKIP


# ---------------------------------------------------------------- whole chains over the fake world


RunWorld = Callable[..., Any]


@pytest.mark.parametrize("layout", ["v1.5", "v1.6"])
def test_healthy_world_passes_every_check_under_both_layouts(run_world: RunWorld, layout: str) -> None:
    results, _ = run_world(World.healthy(layout=layout))
    assert all(c.status == PASS for c in results.cluster), [(c.id, c.message) for c in results.cluster]
    for workload in results.workloads.values():
        assert {c.status for c in workload.checks} == {PASS}, [(c.id, c.message) for c in workload.checks]
        assert workload.check("pod.mutated").evidence["layout"] == layout
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("access.keyvault:platform-kv/admin-api-key").message.startswith("Key Vault secret 'admin-api-key'")
    assert "denied as expected" in finance.check("access.keyvault:platform-kv/admin-api-key").message


def test_federated_credential_without_trailing_slash(run_world: RunWorld) -> None:
    world = World.healthy()
    world.workloads[0].fic_issuer = ISSUER.rstrip("/")
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("federation.credential").status == FAIL
    assert "differ only by the trailing slash" in finance.check("federation.credential").message
    assert finance.check("exchange.succeeds").status == FAIL
    assert "AADSTS700211" in finance.check("exchange.succeeds").message
    assert [f.code for f in finance.findings] == ["FIC_ISSUER_MISMATCH"]
    # the exchange's own fix is the credential check's update in place: the terminal printed a create beside it,
    # which ARM refuses once the update made the issuer right (one credential per issuer and subject)
    credential_fix = [line for f in finance.check("federation.credential").findings for line in f.fix_lines()]
    exchange_fix = [line for f in finance.check("exchange.succeeds").findings for line in f.fix_lines()]
    assert exchange_fix == credential_fix and "az identity federated-credential update" in credential_fix[0]
    assert {finance.check(c).status for c in ("exchange.identity", "access.keyvault:finance-kv/db-password", "access.keyvault:platform-kv/admin-api-key")} == {SKIP}
    assert finance.check("access.keyvault:finance-kv/db-password").message == "skipped because exchange.succeeds failed"
    assert results.workloads["orders/orders-sa"].verdict == "pass"


def test_federated_credential_for_another_subject(run_world: RunWorld) -> None:
    world = World.healthy()
    world.workloads[0].fic_subject = "system:serviceaccount:finance:Backend-SA"
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    finding = finance.check("federation.credential").findings[0]
    assert finding.code == "FIC_SUBJECT_CASE_MISMATCH"
    assert "equal but for case" in finance.check("federation.credential").message
    assert finding.fix_lines()[0].startswith("az identity federated-credential update --name fic-backend-sa")
    assert "AADSTS700213" in finance.check("exchange.succeeds").message  # the fake Entra answers the old code


def test_a_subject_mismatch_names_the_nearest_configured_subject(run_world: RunWorld) -> None:
    world = World.healthy()
    world.workloads[0].fic_subject = "system:serviceaccount:finance:backend"
    results, _ = run_world(world)
    check = results.workloads["finance/backend-sa"].check("federation.credential")
    assert check.findings[0].code == "FIC_SUBJECT_MISMATCH"
    assert check.evidence["nearest_subject"] == "system:serviceaccount:finance:backend"
    assert "the nearest is 'system:serviceaccount:finance:backend'" in check.message


def test_a_subject_with_a_typo_in_its_namespace_says_to_delete_the_typo_once_not_used(run_world: RunWorld) -> None:
    """az identity federated-credential update --subject system:serviceaccount:fianance:backend-sa (found breaking the
    lab by hand with az): the fix made a credential beside it and said nothing of the one left trusting
    fianance/backend-sa, which whoever creates that ServiceAccount would get the identity through (only a run without
    --workload said so, FIC_ORPHANED). The create stays (another ServiceAccount may use that subject); an advice now
    names the credential to delete unless it is used. A subject nothing like this one's gets no such advice."""
    world = World.healthy()
    world.workloads[0].fic_subject = "system:serviceaccount:fianance:backend-sa"
    results, _ = run_world(world)
    (finding,) = results.workloads["finance/backend-sa"].check("federation.credential").findings
    lines = finding.fix_lines()
    assert finding.code == "FIC_SUBJECT_MISMATCH" and lines[0].startswith("az identity federated-credential create")
    assert lines[-1] == ("# then delete credential fic-backend-sa (a typo of this subject?) unless a ServiceAccount "
                         "fianance/backend-sa uses it: whoever creates that ServiceAccount gets this identity (a run "
                         "without --workload prints its delete: FIC_ORPHANED)")
    world.workloads[0].fic_subject = "system:serviceaccount:payments:ledger-writer"
    results, _ = run_world(world)
    (finding,) = results.workloads["finance/backend-sa"].check("federation.credential").findings
    assert not any("typo" in line for line in finding.fix_lines())


@pytest.mark.parametrize("key", [
    "azure.workload.identity/client_id", "azure.workload.identity/clientId", "azure.workload.identity.io/client-id",
    "azure.workload.identitty/client-id", "azure-workload-identity/client-id",
])
def test_a_misspelled_annotation_key_is_named_and_repaired_with_its_own_value(key: str) -> None:
    ctx = context_for()
    ctx.facts.sa.annotations = {key: CLIENT}
    outcome = sa_client_id_annotation(ctx)
    finding = outcome.findings[0]
    assert finding.code == "SA_ANNOTATION_MISSPELLED" and key in finding.message
    assert finding.fix_lines()[:2] == [
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT} --overwrite",
        f"kubectl annotate serviceaccount -n finance backend-sa {key}-",
    ]


def test_an_annotation_on_the_deployment_instead_of_the_service_account_is_named() -> None:
    ctx = context_for()
    ctx.facts.sa.annotations = {}
    owner = {"metadata": {"name": "backend", "annotations": {"azure.workload.identity/client-id": CLIENT}}}
    ctx.facts.live_pods = LivePodsFacts([LivePod({"metadata": {"name": "backend-1"}}, "Deployment", "backend", owner)])
    finding = sa_client_id_annotation(ctx).findings[0]
    assert finding.code == "SA_ANNOTATION_MISSPELLED" and "Deployment/backend" in finding.message
    unrelated = context_for()
    unrelated.facts.sa.annotations = {"team": "finance"}
    assert sa_client_id_annotation(unrelated).findings[0].code == "SA_NOT_ANNOTATED"


def _trusting(name: str, client_id: str, subject: str = "system:serviceaccount:finance:backend-sa",
              issuer: str = ISSUER) -> InventoryIdentity:
    return InventoryIdentity("managed_identity", client_id, name, federated_credentials=[
        {"name": "fic", "issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]}])


def test_an_unannotated_service_account_an_identity_already_trusts_is_annotated_with_its_client_id() -> None:
    """Found by hand (whole-cluster run, no workloads: in harness.yaml): billingWorkloadId's federated credential
    trusted billing/billing-sa, which had no annotation; the fix said client-id=<client-id> though the
    inventory had read the one identity that trusts it. One: its client id; several: each named, placeholder
    kept; another subject or another cluster's issuer: not counted."""
    other = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
    ctx = context_for()
    ctx.facts.sa.annotations = {}
    ctx.inventory_identities = [_trusting("backendWorkloadId", CLIENT),
                                _trusting("elsewhere", other, subject="system:serviceaccount:finance:other-sa"),
                                _trusting("otherCluster", other, issuer="https://oidc.example/other/")]
    finding = sa_client_id_annotation(ctx).findings[0]
    assert finding.code == "SA_NOT_ANNOTATED"
    assert finding.fix_lines()[0] == (
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT} --overwrite")
    ctx.inventory_identities.append(_trusting("batchWorkloadId", other))
    lines = sa_client_id_annotation(ctx).findings[0].fix_lines()
    assert lines[:4] == [
        "# 2 identities have a federated credential for system:serviceaccount:finance:backend-sa; annotate the "
        "client id of the one this workload is meant to use:",
        f"# managed identity backendWorkloadId: client id {CLIENT}",
        f"# managed identity batchWorkloadId: client id {other}",
        "kubectl annotate serviceaccount -n finance backend-sa 'azure.workload.identity/client-id=<client-id>' "
        "--overwrite",
    ]
    ctx.inventory_identities = None  # no inventory read (--workload, or no azure section): the placeholder
    assert "<client-id>" in sa_client_id_annotation(ctx).findings[0].fix_lines()[0]


def test_with_pod_under_an_unannotated_service_account_the_fix_moves_it_to_the_annotated_one() -> None:
    """--pod on a Deployment's pod left under ``default`` (serviceAccountName left out) while backend-sa in the
    namespace names the identity: the first fix sets the template's serviceAccountName; annotating ``default``
    (which would need its own federated credential) comes after, as the alternative."""
    pod = {"metadata": {"name": "backend-7d9f-x", "labels": {"pod-template-hash": "7d9f"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}]},
           "spec": {"serviceAccountName": "default"}}
    ctx = context_for(pod)
    ctx.facts.pod = PodFacts("finance", "backend-7d9f-x", existing=True, created=True, pod=pod)
    ctx.facts.service_account = "default"
    ctx.facts.sa = ServiceAccountFacts("finance", "default", True, True, {}, {},
                                       annotated_neighbours={"backend-sa": CLIENT})
    finding = sa_client_id_annotation(ctx).findings[0]
    assert finding.code == "SA_NOT_ANNOTATED" and "; ServiceAccount of finance that names an identity: backend-sa (" \
        in finding.message  # once 'ServiceAccount(s) of finance that name'
    lines = finding.fix_lines()
    assert lines[1] == ("kubectl patch deployment/backend -n finance --type merge -p "
                        """'{"spec":{"template":{"spec":{"serviceAccountName":"backend-sa"}}}}'""")
    assert lines[2].startswith("# or, if default itself is meant to carry an identity")
    two = context_for(pod)
    two.facts.pod, two.facts.service_account = ctx.facts.pod, "default"
    two.facts.sa = ServiceAccountFacts("finance", "default", True, True, {}, {},
                                       annotated_neighbours={"backend-sa": CLIENT, "batch-sa": CLIENT})
    assert not any(line.startswith("kubectl patch") for line in sa_client_id_annotation(two).findings[0].fix_lines())
    assert "; ServiceAccounts of finance that name an identity: backend-sa, batch-sa (" in \
        sa_client_id_annotation(two).findings[0].message
    alone = context_for(pod)  # no other ServiceAccount names an identity: the annotation alone
    alone.facts.sa.annotations = {}
    assert sa_client_id_annotation(alone).findings[0].fix_lines()[0].startswith("kubectl annotate serviceaccount")


def test_sa_without_annotation_skips_everything_downstream_of_the_mutation(run_world: RunWorld) -> None:
    world = World.healthy()
    world.workloads[0].annotate = False
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("sa.client_id_annotation").findings[0].code == "SA_NOT_ANNOTATED"
    mutated = finance.check("pod.mutated")  # the missing AZURE_CLIENT_ID is the annotation's, not the webhook's
    assert mutated.status == SKIP and mutated.blocked_by == "sa.client_id_annotation" and not mutated.findings
    assert finance.check("token.readable").status == SKIP
    assert finance.check("exchange.succeeds").status == SKIP
    assert [f.code for c in finance.checks for f in c.findings if f.severity == "error"] == ["SA_NOT_ANNOTATED"]


def test_sa_annotated_with_the_identity_name(run_world: RunWorld) -> None:
    world = World.healthy()
    world.workloads[0].annotation_value = "myWorkloadId"
    results, _ = run_world(world)
    check = results.workloads["finance/backend-sa"].check("sa.client_id_annotation")
    assert check.findings[0].code == "SA_CLIENT_ID_MALFORMED"


def test_missing_service_account_skips_the_probe(run_world: RunWorld) -> None:
    world = World.healthy()
    world.workloads[0].create_sa = False
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("sa.exists").findings[0].code == "SA_NOT_FOUND"
    assert finance.check("pod.admitted").message == "skipped because sa.exists failed"


def test_webhook_down_refuses_the_probe_pod(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(webhook="down"))
    assert results.cluster_check("cluster.webhook_ready").status == FAIL
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("pod.admitted").findings[0].code == "WEBHOOK_UNAVAILABLE"


def test_webhook_down_remediation_names_where_the_webhook_really_runs(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(webhook="down", webhook_namespace="azure-workload-identity-system"))
    ready = results.cluster_check("cluster.webhook_ready").findings[0]
    admitted = results.workloads["finance/backend-sa"].check("pod.admitted").findings[0]
    for finding in (ready, admitted):
        assert all("kube-system" not in command for command in finding.fix_lines()), finding.fix_lines()
    assert (
        "kubectl -n azure-workload-identity-system get endpoints azure-wi-webhook-webhook-service"
        in admitted.fix_lines()
    )


def unreachable(what: str = "connection refused") -> KubeFailure:
    return KubeFailure(0, "Unreachable", f"no answer from the API server https://kube.test: {what}")


def test_an_unreachable_api_server_is_named_as_such_not_as_missing_rights() -> None:
    cluster = ClusterFacts(
        time.time(),
        context="prod",
        server="https://kube.test",
        webhook_configurations_error=unreachable(),
        webhook_deployment_error=unreachable(),
    )
    by_id = {r.id: r for r in run_cluster_checks(cluster, None)}
    finding = by_id["cluster.webhook_installed"].findings[0]
    assert (
        finding.code == "KUBE_UNREACHABLE" and finding.fix_lines()[0] == "kubectl --context prod cluster-info"
    )
    assert by_id["cluster.webhook_ready"].message == "skipped because cluster.webhook_installed failed"

    ctx = context_for()
    ctx.cluster.context = "prod"
    ctx.facts.sa = ServiceAccountFacts("finance", "backend-sa", error=unreachable())
    assert sa_exists(ctx).findings[0].code == "KUBE_UNREACHABLE"
    ctx.facts.sa = ServiceAccountFacts("finance", "backend-sa", error=KubeFailure(403, "Forbidden", "no"))
    forbidden = sa_exists(ctx).findings[0]
    assert forbidden.code == "KUBE_FORBIDDEN"
    assert forbidden.fix_lines()[0] == "kubectl auth can-i get serviceaccounts -n finance"


def test_a_stopped_cluster_is_named_and_started_not_sent_to_the_network() -> None:
    """az aks stop removes the control plane: the API server does not answer, and ARM's powerState.code says
    Stopped. The finding says the cluster is stopped and its fix starts it (az aks start) before asking the API
    server again, rather than sending the person to private-cluster networking; a running cluster that does not
    answer keeps the network advice."""
    from harness.checks.serviceaccount import sa_exists

    def cluster_with(power: str) -> ClusterFacts:
        arm = Fetched(url="https://management.azure.com/x", status=200,
                      body={"properties": {"powerState": {"code": power}}})
        return ClusterFacts(time.time(), context="prod", server="https://kube.test", arm_cluster=arm,
                            webhook_configurations_error=unreachable(), webhook_deployment_error=unreachable())

    azure = AzureConfig(tenant_id="00000000-0000-4000-8000-000000000002",
                        subscription_id="00000000-0000-4000-8000-000000000001", resource_group="rg",
                        cluster_name="aks")
    stopped = {r.id: r for r in run_cluster_checks(cluster_with("Stopped"), azure)}
    finding = stopped["cluster.webhook_installed"].findings[0]
    assert finding.code == "KUBE_UNREACHABLE" and finding.evidence["powerState"] == "Stopped"
    assert "the cluster is stopped (ARM's powerState is Stopped" in finding.message
    assert stopped["cluster.webhook_installed"].message == finding.message  # what the summary line shows
    lines = finding.fix_lines()
    assert lines[0].startswith("az aks start --resource-group rg --name aks --subscription ")
    assert lines[1] == "kubectl --context prod cluster-info"
    assert not any("private cluster" in line for line in lines)

    ctx = context_for()
    ctx.cluster, ctx.azure = cluster_with("Stopped"), azure
    ctx.facts.sa = ServiceAccountFacts("finance", "backend-sa", error=unreachable())
    assert sa_exists(ctx).findings[0].fix_lines()[0].startswith("az aks start ")

    running = {r.id: r for r in run_cluster_checks(cluster_with("Running"), azure)}
    finding = running["cluster.webhook_installed"].findings[0]
    assert "stopped" not in finding.message and finding.fix_lines()[0] == "kubectl --context prod cluster-info"
    assert not any(line.startswith("az aks start") for line in finding.fix_lines())


def test_a_webhook_deployment_the_harness_may_not_read_is_not_called_missing() -> None:
    cluster = ClusterFacts(
        time.time(),
        webhook_configurations=[
            {
                "metadata": {"name": "azure-wi-webhook"},
                "webhooks": [{"name": "mutation.azure-workload-identity.io"}],
            }
        ],
        webhook_deployment_error=KubeFailure(403, "Forbidden", "deployments.apps is forbidden"),
    )
    ready = {r.id: r for r in run_cluster_checks(cluster, None)}["cluster.webhook_ready"]
    assert ready.status == FAIL and ready.findings[0].code == "KUBE_FORBIDDEN"
    assert ready.findings[0].fix_lines()[0] == "kubectl auth can-i get deployments -n kube-system"


def test_the_harness_credential_failing_is_named_with_its_own_fix(run_world: RunWorld) -> None:
    _, config = run_world(World.healthy())
    failure = Fetched(
        "https://arm/x",
        None,
        None,
        "the harness could not get an ARM token: AADSTS7000215",
        "CredentialError",
    )
    results = run_cluster_checks(ClusterFacts(time.time(), arm_cluster=failure), config.azure)
    finding = results[0].findings[0]
    assert finding.code == "HARNESS_CREDENTIAL_FAILED" and finding.layer == "harness"
    assert "https://arm/x" not in results[0].message
    client_id = config.azure.credential.client_id
    assert finding.fix_lines()[0].startswith(f"az ad app credential list --id {client_id}")

    ctx = context_for()
    ctx.azure = config.azure
    ctx.facts.identity = IdentityFacts(configured=True, resource_id="/x", error=failure)
    assert identity_matches(ctx).findings[0].code == "HARNESS_CREDENTIAL_FAILED"


def test_token_times_are_judged_at_collection_time_not_at_analysis_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World.healthy()
    config = parse_config(world.config(tmp_path), base_dir=tmp_path)
    facts = collect_run(world.backend(), config, Selection(workloads=config.workloads), "run-1", "img")
    for workload in facts.workloads.values():  # only the claims remain to judge expiry by
        assert workload.pod is not None and workload.pod.probe is not None
        token = next(step for step in workload.pod.probe["steps"] if step["name"] == "token")
        token["evidence"].pop("lifetime")
    two_days_later = time.time() + 2 * 86400  # stored facts analysed again, long after the tokens expired
    monkeypatch.setattr(time, "time", lambda: two_days_later)
    results = analyse(facts, config, config.workloads, "lab", Redactor())
    assert results.workloads["finance/backend-sa"].check("token.lifetime").status == PASS


def test_webhook_absent(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(webhook="absent"))
    assert results.cluster_check("cluster.webhook_installed").findings[0].code == "WEBHOOK_NOT_INSTALLED"
    assert (
        results.cluster_check("cluster.webhook_ready").message
        == "skipped because cluster.webhook_installed failed"
    )
    mutated = results.workloads["finance/backend-sa"].check("pod.mutated").findings[0]
    assert mutated.code == "WEBHOOK_NOT_INSTALLED"
    # nothing to get by name (kubectl would answer NotFound): the list, then the install
    assert mutated.fix_lines()[0] == "kubectl get mutatingwebhookconfigurations"
    assert mutated.fix_lines()[1].startswith("az aks update ")


def test_no_webhook_under_a_disabled_addon_says_so_in_the_workload_check(run_world: RunWorld) -> None:
    """az aks update --disable-workload-identity (found breaking the lab by hand with az): a --workload run has no
    cluster suite, and pod.mutated said only 'no workload identity webhook is installed'. It now says why, from the
    managed cluster ARM read; with the add-on on (the webhook deleted by other means) it does not."""
    results, _ = run_world(World.healthy(webhook="absent", workload_identity_enabled=False))
    mutated = results.workloads["finance/backend-sa"].check("pod.mutated").findings[0]
    assert mutated.code == "WEBHOOK_NOT_INSTALLED"
    assert ("no workload identity webhook is installed: the cluster's workload identity add-on is off "
            "(securityProfile.workloadIdentity.enabled is not true)") in mutated.message
    assert mutated.fix_lines()[1].endswith("--enable-oidc-issuer --enable-workload-identity")
    results, _ = run_world(World.healthy(webhook="absent"))
    assert "add-on is off" not in results.workloads["finance/backend-sa"].check("pod.mutated").findings[0].message


def test_failure_policy_ignore(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(failure_policy="Ignore"))
    check = results.cluster_check("cluster.webhook_failure_policy")
    assert check.status == FAIL and check.findings[0].code == "WEBHOOK_FAILURE_POLICY_IGNORE"


def test_failure_policy_ignore_is_said_plainly_and_patched_back_not_upgraded(run_world: RunWorld) -> None:
    """The message names the policy and the webhook in words (it printed a Python dict), and the fix sets Fail
    back on that webhook by a JSON patch testing its name first, for the chart's install too: helm upgrade without
    --version takes the chart's latest release, an upgrade of the webhook nobody asked for."""
    for namespace in ("kube-system", "azure-workload-identity-system"):
        results, _ = run_world(World.healthy(failure_policy="Ignore", webhook_namespace=namespace))
        check = results.cluster_check("cluster.webhook_failure_policy")
        finding = check.findings[0]
        assert check.message.startswith("failurePolicy Ignore on mutation.azure-workload-identity.io: ")
        assert "{" not in check.message and "{" not in finding.message
        lines = finding.fix_lines()
        assert not any("helm upgrade" in line or "az aks update" in line for line in lines)
        assert lines[-1] == (
            "kubectl patch mutatingwebhookconfiguration azure-wi-webhook-mutating-webhook-configuration --type json "
            """-p '[{"op":"test","path":"/webhooks/0/name","value":"mutation.azure-workload-identity.io"},"""
            """{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Fail"}]'""")


def test_issuer_unreachable_and_oidc_disabled(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(issuer_reachable=False))
    assert (
        results.cluster_check("cluster.issuer_discovery").findings[0].code == "ISSUER_DISCOVERY_UNREACHABLE"
    )
    assert results.cluster_check("cluster.issuer_jwks").status == SKIP
    results, _ = run_world(World.healthy(oidc_enabled=False, workload_identity_enabled=False))
    enable = results.cluster_check("cluster.oidc_issuer_enabled").findings[0]
    assert enable.code == "OIDC_ISSUER_DISABLED"
    assert enable.fix_lines()[0].endswith("--enable-oidc-issuer   # restarts the API server (a short outage); "
                                          "ServiceAccount tokens issued from then on name the new issuer: restart "
                                          "the pods that use them")
    assert (
        results.cluster_check("cluster.workload_identity_enabled").findings[0].code
        == "WORKLOAD_IDENTITY_DISABLED"
    )
    token_check = results.workloads["finance/backend-sa"].check("token.issuer")
    assert token_check.status == FAIL and token_check.findings[0].code == "OIDC_ISSUER_DISABLED"


def test_a_cluster_without_its_oidc_issuer_is_never_told_to_federate_the_api_servers_own_issuer(
        run_world: RunWorld) -> None:
    """A cluster made before its OIDC issuer was enabled signs tokens with the API server's own issuer, which Entra
    cannot discover (the exchange: AADSTS700211). The workload's first broken link is token.issuer, whose fix
    enables the issuer and restarts the pods (tokens issued after it carry its URL); no printed fix creates a
    federated credential for the private issuer (20 per identity, and useless), federation.credential says why it
    cannot judge, and the exchange's 700211 is the same finding, not FIC_ISSUER_MISMATCH."""
    private = "https://aks-dns-0a1b2c3d.hcp.eastus.azmk8s.io"
    results, _ = run_world(World.healthy(oidc_enabled=False, token_issuer=private))
    finance = results.workloads["finance/backend-sa"]
    assert next(c.id for c in finance.checks if c.status == FAIL) == "token.issuer"
    finding = finance.check("token.issuer").findings[0]
    assert finding.code == "OIDC_ISSUER_DISABLED" and private in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("az aks update ") and " --enable-oidc-issuer   # restarts the API server" in lines[0]
    assert lines[1].endswith("--query oidcIssuerProfile.issuerUrl -o tsv")
    # the workload's pods restarted (by name; this world runs none, so a note says the new ones get it)
    assert lines[2:] == ["# no pod runs under finance/backend-sa now: the pods created from now on get the change"]
    federation = finance.check("federation.credential")
    assert federation.status == SKIP and "the cluster's OIDC issuer is off" in federation.message
    exchange = finance.check("exchange.succeeds")
    assert exchange.status == FAIL and [f.code for f in exchange.findings] == ["OIDC_ISSUER_DISABLED"]
    every = [line for check in finance.checks for f in check.findings for line in f.fix_lines()]
    assert not any("federated-credential" in line for line in every), every


def test_without_azure_the_issuer_comes_from_the_api_server(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(), azure=False)
    assert results.target["issuer"] == ISSUER
    assert results.cluster_check("cluster.oidc_issuer_enabled").evidence["source"] == "kube-discovery"
    assert results.cluster_check("cluster.workload_identity_enabled").status == SKIP
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("token.issuer").status == PASS
    assert finance.check("identity.matches").status == SKIP
    assert finance.check("federation.credential").status == SKIP
    assert finance.verdict == "pass"


def test_least_privilege_violation_and_unexpected_denial(run_world: RunWorld) -> None:
    world = World.healthy()
    finance = world.workload("finance/backend-sa")
    finance.readable = [OTHER_VAULT]  # lost its vault, gained the forbidden one
    results, _ = run_world(world)
    checks = results.workloads["finance/backend-sa"]
    assert checks.check("access.keyvault:finance-kv/db-password").findings[0].code == "ACCESS_DENIED_UNEXPECTEDLY"
    lookup, grant = checks.check("access.keyvault:finance-kv/db-password").findings[0].fix_lines()[:2]
    assert lookup == "SCOPE=$(az keyvault show --name finance-kv --query id -o tsv)"
    assert grant.startswith("az role assignment create") and grant.endswith('--scope "$SCOPE"')
    assert "'Key Vault Secrets User'" in grant
    assert checks.check("access.keyvault:platform-kv/admin-api-key").findings[0].code == "ACCESS_ALLOWED_UNEXPECTEDLY"


def test_identity_with_no_federated_credentials(run_world: RunWorld) -> None:
    world = World.healthy(
        workloads=[FakeWorkload("finance", "backend-sa", identity_name="id", fic=False, readable=[VAULT])]
    )
    results, _ = run_world(world)
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("federation.credential").findings[0].code == "FIC_MISSING"
    assert "AADSTS70025" in finance.check("exchange.succeeds").message


def test_probe_image_that_cannot_be_pulled(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(probe_image_pullable=False))
    finance = results.workloads["finance/backend-sa"]
    assert finance.check("probe.completed").findings[0].code == "PROBE_IMAGE_PULL_FAILED"
    assert finance.check("pod.mutated").status == PASS
    assert finance.check("env.in_container").message == "skipped because probe.completed failed"


def test_cluster_checks_on_bare_facts() -> None:
    facts = ClusterFacts(
        time.time(), arm_cluster=Fetched("https://arm/x", 403, None, "denied", "AuthorizationFailed")
    )
    results = run_cluster_checks(facts, None)
    by_id = {r.id: r for r in results}
    assert by_id["cluster.oidc_issuer_enabled"].findings[0].code == "ARM_QUERY_FAILED"
    assert by_id["cluster.webhook_installed"].findings[0].code == "WEBHOOK_NOT_INSTALLED"
    assert by_id["cluster.issuer_discovery"].status == SKIP


def _webhook_deployment(namespace: str, release: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "azure-wi-webhook-controller-manager", "namespace": namespace,
                     "annotations": {"meta.helm.sh/release-name": release}},
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 2, "availableReplicas": 2},
    }


ADDON_DEPLOYMENT = _webhook_deployment("kube-system", "aks-managed-workload-identity")
CHART_DEPLOYMENT = _webhook_deployment("azure-workload-identity-system", "workload-identity-webhook")
ONE_MWC = [{"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"},
            "webhooks": [{"name": "mutation.azure-workload-identity.io", "failurePolicy": "Fail",
                          "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}}}]}]


def _arm_cluster(workload_identity: bool) -> Fetched:
    body = {"properties": {"oidcIssuerProfile": {"enabled": True, "issuerUrl": ISSUER},
                           "securityProfile": {"workloadIdentity": {"enabled": workload_identity}}}}
    return Fetched("https://arm/cluster", 200, body)


def _cluster_check(facts: ClusterFacts, check_id: str) -> Any:
    return next(r for r in run_cluster_checks(facts, None) if r.id == check_id)


def test_two_webhook_configurations_are_a_duplicate() -> None:
    facts = ClusterFacts(
        time.time(),
        webhook_configurations=[
            {"metadata": {"name": n}, "webhooks": [{"name": "mutation.azure-workload-identity.io"}]}
            for n in ("azure-wi-webhook-a", "azure-wi-webhook-b")
        ],
    )
    installed = _cluster_check(facts, "cluster.webhook_installed")
    assert installed.status == FAIL and installed.findings[0].code == "WEBHOOK_DUPLICATE"


def test_add_on_and_chart_together_are_a_duplicate_though_they_share_one_configuration() -> None:
    facts = ClusterFacts(time.time(), webhook_configurations=ONE_MWC,
                         webhook_deployments=[ADDON_DEPLOYMENT, CHART_DEPLOYMENT])
    installed = _cluster_check(facts, "cluster.webhook_installed")
    assert installed.status == FAIL
    finding = installed.findings[0]
    assert finding.code == "WEBHOOK_DUPLICATE" and finding.severity == "error"
    assert "kube-system" in finding.message and "azure-workload-identity-system" in finding.message
    lines = finding.fix_lines()
    # the two ways each remove a webhook: one is printed to run, the other as a comment, so a paste keeps one
    runs = [line for line in lines if line.startswith(("az ", "helm uninstall"))]
    assert len(runs) == 1 and runs[0].startswith("az aks update ") and runs[0].endswith(
        " --disable-workload-identity"), lines
    assert any(line.startswith("# or, to keep the add-on instead") and line.endswith(
        "helm uninstall -n azure-workload-identity-system workload-identity-webhook") for line in lines), lines


def test_a_webhook_not_reinvoked_is_a_warning_with_the_patch_that_puts_it_back() -> None:
    """kubectl patch ... reinvocationPolicy Never (or a configuration older than v1.0.0, unset): the chart and the
    add-on ship IfNeeded so that containers a later sidecar injector adds are mutated too; a warning with a JSON
    patch testing the webhook's name at its index. IfNeeded says nothing."""
    hook = {"name": "mutation.azure-workload-identity.io", "failurePolicy": "Fail", "reinvocationPolicy": "Never"}
    facts = ClusterFacts(time.time(), webhook_configurations=[
        {"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"}, "webhooks": [hook]}])
    outcome = _cluster_check(facts, "cluster.webhook_failure_policy")
    assert outcome.status == WARN and outcome.findings[0].code == "WEBHOOK_REINVOCATION_NEVER"
    assert outcome.findings[0].fix_lines()[1] == (
        "kubectl patch mutatingwebhookconfiguration azure-wi-webhook-mutating-webhook-configuration --type json -p "
        "'[{\"op\":\"test\",\"path\":\"/webhooks/0/name\",\"value\":\"mutation.azure-workload-identity.io\"},"
        "{\"op\":\"add\",\"path\":\"/webhooks/0/reinvocationPolicy\",\"value\":\"IfNeeded\"}]'")
    del hook["reinvocationPolicy"]
    assert "unset (Never)" in _cluster_check(facts, "cluster.webhook_failure_policy").message
    hook["reinvocationPolicy"] = "IfNeeded"
    assert _cluster_check(facts, "cluster.webhook_failure_policy").status == PASS


def test_a_chart_install_with_the_add_on_off_is_a_valid_setup() -> None:
    facts = ClusterFacts(time.time(), webhook_configurations=ONE_MWC, webhook_deployments=[CHART_DEPLOYMENT],
                         arm_cluster=_arm_cluster(workload_identity=False))
    enabled = _cluster_check(facts, "cluster.workload_identity_enabled")
    assert enabled.status == PASS and "Helm chart" in enabled.message
    assert _cluster_check(facts, "cluster.webhook_installed").status == PASS


def test_the_add_on_off_without_a_chart_is_still_disabled() -> None:
    facts = ClusterFacts(time.time(), webhook_configurations=ONE_MWC, webhook_deployments=[ADDON_DEPLOYMENT],
                         arm_cluster=_arm_cluster(workload_identity=False))
    enabled = _cluster_check(facts, "cluster.workload_identity_enabled")
    assert enabled.status == FAIL and enabled.findings[0].code == "WORKLOAD_IDENTITY_DISABLED"


def test_fixes_never_enable_the_add_on_over_a_chart() -> None:
    facts = ClusterFacts(time.time(), webhook_configurations=[{**ONE_MWC[0], "webhooks": [
        {**ONE_MWC[0]["webhooks"][0], "failurePolicy": "Ignore"}]}], webhook_deployments=[CHART_DEPLOYMENT])
    policy = _cluster_check(facts, "cluster.webhook_failure_policy")
    lines = policy.findings[0].fix_lines()
    assert not any("--enable-workload-identity" in line for line in lines)
    assert any(line.startswith("kubectl patch mutatingwebhookconfiguration") for line in lines)  # Fail put back
    reinstall = [render(step) for step in enable_webhook(facts, None)]
    assert reinstall == ["helm upgrade --install -n azure-workload-identity-system workload-identity-webhook "
                         "azure-workload-identity/workload-identity-webhook --reuse-values"]


def test_a_webhook_no_helm_release_owns_is_applied_again_from_its_manifest_not_helm_install() -> None:
    """The MutatingWebhookConfiguration deleted under upstream's deployment YAML (no meta.helm.sh/release-name on
    the Deployment): helm upgrade --install of a release that was never made would refuse the objects already there
    (no Helm ownership); the manifest of the version the Deployment runs (its image tag) is applied again."""
    deployment = {"metadata": {"name": "azure-wi-webhook-controller-manager",
                               "namespace": "azure-workload-identity-system"},
                  "spec": {"template": {"spec": {"containers": [
                      {"name": "manager", "image": "mcr.microsoft.com/oss/azure/workload-identity/webhook:v1.5.1"}]}}}}
    facts = ClusterFacts(time.time(), webhook_configurations=[], webhook_deployments=[deployment])
    azure = AzureConfig(tenant_id="00000000-0000-4000-8000-000000000002",
                        subscription_id="00000000-0000-4000-8000-000000000001", resource_group="rg",
                        cluster_name="aks")
    lines = [render(step) for step in enable_webhook(facts, azure)]
    assert not any(line.startswith("helm") or "--enable-workload-identity" in line for line in lines)
    assert lines[1] == ("# export AZURE_TENANT_ID=00000000-0000-4000-8000-000000000002; curl -sL https://github.com/"
                        "Azure/azure-workload-identity/releases/download/v1.5.1/azure-wi-webhook.yaml | envsubst | "
                        "kubectl apply -f -")
    installed = _cluster_check(facts, "cluster.webhook_installed")
    assert "releases/download/v1.5.1/azure-wi-webhook.yaml" in "\n".join(installed.findings[0].fix_lines())
    # an image tag that is no release (a mirror's own, or text that is not one): a placeholder, never the text
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "myacr.azurecr.io/wi:v1;rm -rf ~"
    assert "/download/<version>/" in render(enable_webhook(facts, None)[1])


BROKEN_WORLDS = {
    "webhook absent": lambda: World.healthy(webhook="absent"),
    "webhook down": lambda: World.healthy(webhook="down"),
    "issuer unreachable": lambda: World.healthy(issuer_reachable=False),
    "oidc off": lambda: World.healthy(oidc_enabled=False, workload_identity_enabled=False),
    "token issuer without slash": lambda: World.healthy(token_issuer=ISSUER.rstrip("/")),
    "image not pullable": lambda: World.healthy(probe_image_pullable=False),
    "no fic": lambda: World.healthy(
        workloads=[FakeWorkload("finance", "backend-sa", fic=False, annotate=False, readable=[VAULT])]
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN_WORLDS))
def test_every_failure_yields_a_finding_with_a_stable_code(run_world: RunWorld, name: str) -> None:
    results, _ = run_world(BROKEN_WORLDS[name]())
    checks = [*results.cluster, *(c for w in results.workloads.values() for c in w.checks)]
    failures = [c for c in checks if c.status == FAIL]
    assert failures, name
    for check in failures:
        assert check.findings, (check.id, check.message)
        assert all(f.code.isupper() and f.severity in ("error", "warning", "info") for f in check.findings)
    for check in checks:
        if check.status == SKIP and check.blocked_by:
            assert check.message == f"skipped because {check.blocked_by} failed"


def _exchange_failure(aadsts: str, message: str, status: int = 400) -> Finding:
    ctx = context_for(_pod(*V16))
    assert ctx.facts.pod is not None
    error = {"kind": "entra_error", "http_status": status, "error": "invalid_request", "aadsts": aadsts,
             "message": f"{aadsts}: {message}"}
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {}, "error": error}]}
    return exchange_succeeds(ctx).findings[0]


def test_a_scope_of_another_cloud_is_named_with_the_resource_entra_did_not_find() -> None:
    finding = _exchange_failure(
        "AADSTS500011",
        "The resource principal named https://vault.azure.net was not found in the tenant named Contoso. This can "
        "happen if the application has not been installed by the administrator of the tenant.",
    )
    assert (finding.code, finding.layer) == ("RESOURCE_NOT_IN_TENANT", "entra")
    assert finding.fix_lines()[0] == (
        "az ad sp list --filter \"servicePrincipalNames/any(n:n eq 'https://vault.azure.net')\" "
        "--query '[].{name: displayName, appId: appId}' -o table"
    )


def test_a_bad_assertion_signature_points_at_the_issuer_keys() -> None:
    finding = _exchange_failure("AADSTS700027", "Client assertion contains an invalid signature.", 401)
    assert (finding.code, finding.layer) == ("ASSERTION_SIGNATURE_INVALID", "token")
    assert finding.fix_lines()[0] == "curl -sS '<jwks_uri>'"


def test_conditional_access_and_a_disabled_application_get_their_own_codes() -> None:
    blocked = _exchange_failure("AADSTS53003", "Access has been blocked by Conditional Access policies.")
    assert blocked.code == "CONDITIONAL_ACCESS_BLOCKED"
    assert blocked.fix_lines()[0].startswith("az rest --method get --url")
    disabled = _exchange_failure("AADSTS7000112", f"Application '{CLIENT}'(backend) is disabled.")
    assert disabled.code == "APPLICATION_DISABLED"
    assert disabled.fix_lines() == [
        f"az ad sp show --id {CLIENT} --query accountEnabled",
        f"az ad sp update --id {CLIENT} --set accountEnabled=true",
    ]


def test_an_unknown_application_also_suggests_the_tenant_annotation() -> None:
    finding = _exchange_failure(
        "AADSTS700016", f"Application with identifier '{CLIENT}' was not found in the directory 'Contoso'."
    )
    assert finding.code == "IDENTITY_NOT_FOUND"
    assert any("azure.workload.identity/tenant-id=" in line for line in finding.fix_lines())


def _unknown_client_id(identity: IdentityFacts, **workload: Any) -> Finding:
    """AADSTS700016 for the annotated client id (the pod exchanged as CLIENT): the exchange's finding, or, where
    identity.matches failed for that client id and the exchange is skipped because of it, identity.matches's."""
    ctx = context_for(_pod(*V16), **workload)
    assert ctx.facts.pod is not None
    ctx.facts.identity = identity
    error = {"kind": "entra_error", "http_status": 400, "error": "unauthorized_client", "aadsts": "AADSTS700016",
             "message": f"AADSTS700016: Application with identifier '{CLIENT}' was not found in the directory "
                        "'Contoso'."}
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"client_id": CLIENT},
                                      "error": error}]}
    exchange = exchange_succeeds(ctx)
    if exchange.status == SKIP:
        assert exchange.blocked_by == "identity.matches" and not exchange.findings
        return identity_matches(ctx).findings[0]
    finding = exchange.findings[0]
    assert finding.code == "IDENTITY_NOT_FOUND"
    return finding


def test_an_identity_created_again_is_annotated_with_its_new_client_id() -> None:
    """az identity delete + az identity create under the same name: a new client id, the annotation (and
    harness.yaml) keep the old one, which Entra no longer knows. The fix names the client id the harness read."""
    new = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
    identity = IdentityFacts(configured=True, kind="managed_identity", resource_id=IDENTITY_ID,
                             identity={"id": IDENTITY_ID, "properties": {"clientId": new}})
    finding = _unknown_client_id(identity, client_id=CLIENT)  # identity.matches's: the exchange skipped for it
    lines = finding.fix_lines()
    assert finding.code == "IDENTITY_CLIENT_ID_MISMATCH"
    assert lines[0] == (f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={new}"
                        " --overwrite")
    assert not any(f"client-id={CLIENT}" in line for line in lines)


def test_an_unknown_client_id_is_looked_up_not_annotated_again() -> None:
    """No identity read and harness.yaml names the annotated client id: annotating it again would change nothing;
    the fix looks the client id up (managed identities, app registrations)."""
    lines = _unknown_client_id(IdentityFacts(configured=True), client_id=CLIENT).fix_lines()
    assert not any(f"client-id={CLIENT}" in line for line in lines)
    assert lines[0].startswith("az identity list --query") and CLIENT in lines[0]
    assert any(line.startswith("az ad app list --filter") for line in lines)
    # the harness reads Graph here and found no object id of that GUID itself: no object-id look-ups
    assert not any("'id eq " in line for line in lines), lines
    # the harness cannot tell an object id from a client id without Graph read: the person's az can (the
    # application's and the service principal's object id, filtered by id, name the appId to annotate)
    refused = Fetched(f"https://graph.microsoft.com/v1.0/applications(appId='{CLIENT}')", 403, None, "denied")
    lines = _unknown_client_id(IdentityFacts(configured=True, refused=[refused]), client_id=CLIENT).fix_lines()
    for kind in ("app", "sp"):
        assert any(line.startswith(f"az ad {kind} list --filter \"id eq '{CLIENT}'\"") for line in lines), lines
    assert any("azure.workload.identity/tenant-id=" in line for line in lines)


def test_a_service_principals_object_id_annotated_is_annotated_with_its_app_id_not_looked_up() -> None:
    """The enterprise application's Object ID (the service principal's) in the annotation, harness.yaml naming no
    client id: identity.matches says whose object id it is; the exchange's AADSTS700016 printed look-ups of the
    object id as a client id (they find nothing) and the tenant annotation. It now sets the app's client id."""
    app_id = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
    identity = IdentityFacts(configured=True, principal_of={"kind": "service_principal", "client_id": app_id,
                                                            "name": "web-app", "resource_id": None})
    lines = _unknown_client_id(identity).fix_lines()
    assert lines[0] == (f"kubectl annotate serviceaccount -n finance backend-sa "
                        f"azure.workload.identity/client-id={app_id} --overwrite")
    assert not any("az identity list" in line or "tenant-id=" in line for line in lines), lines


def test_an_exchange_refused_for_the_audience_updates_the_credential_it_does_not_create_one() -> None:
    """AADSTS700212: the subject's credential has another audience (az identity federated-credential update
    --audiences with a typo). ARM refuses a second credential with the same issuer and subject, so the exchange's
    fix updates that credential, as federation.credential's does."""
    ctx = context_for(_pod(*V16), client_id=CLIENT)
    assert ctx.facts.pod is not None
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=IDENTITY_ID, resolved_by="config",
        identity={"id": IDENTITY_ID, "properties": {"clientId": CLIENT}},
        federated_credentials=[{"name": "fed-cred-backend", "properties": {
            "issuer": ISSUER, "subject": "system:serviceaccount:finance:backend-sa",
            "audiences": ["api://AzureADTokenExchang"]}}])
    error = {"kind": "entra_error", "http_status": 401, "error": "invalid_client", "aadsts": "AADSTS700212",
             "message": "AADSTS700212: No matching federated identity record found for presented assertion audience "
                        "'api://AzureADTokenExchange'."}
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"client_id": CLIENT},
                                      "error": error}]}
    finding = exchange_succeeds(ctx).findings[0]
    assert finding.code == "FIC_AUDIENCE_MISMATCH"
    [line] = [line for line in finding.fix_lines() if "federated-credential" in line]
    assert line.startswith("az identity federated-credential update --name fed-cred-backend ")
    assert line.endswith("--audiences api://AzureADTokenExchange")


def test_the_subjects_credential_with_another_audience_is_updated_though_another_subject_is_trusted() -> None:
    """By hand on the lab: the quick start's credential fic3 for the ServiceAccount made with --audience api://wrong,
    the identity's other credential trusting another ServiceAccount. federation.credential said FIC_SUBJECT_MISMATCH
    and printed a create for the subject, which ARM refuses ('Issuer and subject combination already exists for this
    Managed Identity.'; Graph: the combination 'must be unique on the app'). Entra weighs the subject's credential
    and refuses its audience (AADSTS700212): update it."""
    ctx = context_for(_pod(*V16), client_id=CLIENT)
    subject = "system:serviceaccount:finance:backend-sa"
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=IDENTITY_ID, resolved_by="config",
        identity={"id": IDENTITY_ID, "properties": {"clientId": CLIENT}},
        federated_credentials=[
            {"name": "other-sa", "properties": {"issuer": ISSUER, "subject": "system:serviceaccount:finance:other",
                                                "audiences": ["api://AzureADTokenExchange"]}},
            {"name": "fic3", "properties": {"issuer": ISSUER, "subject": subject, "audiences": ["api://wrong"]}},
            {"name": "old-cluster", "properties": {"issuer": "https://other.example/", "subject": subject,
                                                   "audiences": ["api://AzureADTokenExchange"]}}])
    [finding] = federated_credential(ctx).findings
    assert finding.code == "FIC_AUDIENCE_MISMATCH"
    [line] = [line for line in finding.fix_lines() if "federated-credential" in line]
    assert line.startswith("az identity federated-credential update --name fic3 ")


@pytest.mark.parametrize(("audience", "hint"), [
    ("api://AzureADTokenExchange/", "differ only by the trailing slash"),
    ("api://azureadtokenexchange", "differ only by case; matching is case-sensitive"),
    ("api://AzureADTokenExchange ", "whitespace around it"),
    ("api://wrong", None),
])
def test_an_audience_that_misspells_the_exchange_audience_is_named_so(audience: str, hint: str | None) -> None:
    """By hand on the lab: az ad app federated-credential update --parameters '{..., "audiences":
    ["api://AzureADTokenExchange/"]}' (or in lower case, or with a space pasted after it). Entra refuses with
    AADSTS700212 (audiences are matched case-sensitively since its August 2024 breaking change); the check said
    only "it must be exactly [...]", leaving a person to spot a slash or a letter's case. It says which now."""
    ctx = context_for(_pod(*V16), client_id=CLIENT)
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=IDENTITY_ID, resolved_by="config",
        identity={"id": IDENTITY_ID, "properties": {"clientId": CLIENT}},
        federated_credentials=[{"name": "fic3", "properties": {
            "issuer": ISSUER, "subject": "system:serviceaccount:finance:backend-sa", "audiences": [audience]}}])
    outcome = federated_credential(ctx)
    [finding] = outcome.findings
    assert finding.code == "FIC_AUDIENCE_MISMATCH" and "AADSTS700212" in outcome.message
    if hint is None:
        assert "differ only" not in outcome.message and "whitespace" not in outcome.message
    else:
        assert hint in outcome.message and hint in finding.message


def test_an_identity_that_is_not_there_is_made_again_with_all_the_workload_needs_in_one_paste() -> None:
    """harness.yaml's identity_resource_id answers 404 ResourceNotFound in a group that is there (az identity delete
    -g myRg -n backend). By hand in the lab: the fix listed the group's identities, said in prose what to make
    again and printed a bare az identity create, so three more runs (federated credential, role, annotation). The
    group's identities tell no typo: both causes in one line, then the identity made again with its new ids
    captured, the federated credential, the read role, the annotation, the restart, harness.yaml's client_id and
    the orphaned assignments (pasted in the lab: the next run PASS)."""
    from harness.config import KeyVaultSecretAccess

    vault_url = "https://finance-kv.vault.azure.net/"
    access = [KeyVaultSecretAccess(kind="keyvault_secret", vault_url=vault_url, name="finance-kv",
                                   secret="db-password", expect="allow")]
    ctx = context_for(None, client_id=CLIENT, identity_resource_id=IDENTITY_ID, access=access)
    ctx.cluster.access_resources = {vault_url.rstrip("/"): {"id": VAULT_ID, "name": "finance-kv"}}
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=IDENTITY_ID, resolved_by="config",
        listed_identities=[{"name": "frontend", "id": IDENTITY_ID.replace("/backend", "/frontend"),
                            "clientId": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"}],
        error=Fetched(f"https://arm.test{IDENTITY_ID}?api-version=2023-01-31", status=404, code="ResourceNotFound",
                      error="The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/backend' under resource "
                            "group 'myRg' was not found."))
    [finding] = identity_matches(ctx).findings
    assert finding.code == "IDENTITY_NOT_FOUND"
    assert finding.message == (
        "identity backend is not in resource group myRg (the group is there): deleted (az identity delete), or a "
        "typo in harness.yaml's identity_resource_id for finance/backend-sa (none of the group's identities is "
        "named or numbered like it)")
    sub, where = "00000000-0000-0000-0000-000000000001", "--resource-group myRg --subscription 00000000-0000-0000-0000-000000000001"
    lines = finding.fix_lines()
    assert lines[0].startswith("# if it was a typo, fix identity_resource_id in harness.yaml instead; if it was "
                               "deleted, the lines below make it again")
    assert lines[1:] == [
        f"CLIENT_ID=$(az identity create --name backend {where} --query clientId -o tsv)",
        f"PRINCIPAL_ID=$(az identity show --name backend {where} --query principalId -o tsv)",
        f"az identity federated-credential create --name finance-backend-sa --identity-name backend {where} "
        f"--issuer {ctx.cluster.issuer_url} --subject system:serviceaccount:finance:backend-sa "
        "--audiences api://AzureADTokenExchange",
        'az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal '
        f"--role 'Key Vault Secrets User' --scope {VAULT_ID}",
        'kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id="$CLIENT_ID" '
        "--overwrite",
        lines[6],
        '# set client_id for finance/backend-sa in harness.yaml to the new client id (echo "$CLIENT_ID")',
        "# then delete the role assignments the old identity left (those below, with an empty principalName: their "
        "principal no longer exists), with az role assignment delete --ids:",
        "az role assignment list --all --query '[?!principalName].{assignment: id, role: roleDefinitionName, "
        "principalId: principalId}' -o table",
    ]
    assert sub in lines[1] and not any(line.startswith(("az identity show", "az identity list")) for line in lines)
    # Entra's AADSTS700016 for the client id joins the line; the group not listable is said so
    assert ctx.facts.pod is not None
    ctx.facts.pod.probe = {"steps": [{"name": "exchange", "status": "fail", "evidence": {"client_id": CLIENT},
                                      "error": {"aadsts": "AADSTS700016"}}]}
    ctx.facts.identity.listed_identities = None
    [finding] = identity_matches(ctx).findings
    assert finding.message.endswith(f"(the group's identities could not be listed); Entra knows no client id {CLIENT} "
                                    "(AADSTS700016)")


def test_harness_yaml_naming_the_old_client_id_of_an_identity_made_again_is_the_fix() -> None:
    """harness.yaml names the identity by resource id and its old client id; the ServiceAccount is annotated with
    the identity's new one (made again under its name). The annotation is right: neither finding prints a kubectl
    annotate pointing it back at the old client id; both name harness.yaml's client_id."""
    new = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
    ctx = context_for(None, client_id=CLIENT, identity_resource_id=IDENTITY_ID)
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = new
    ctx.facts.identity = IdentityFacts(configured=True, kind="managed_identity", resource_id=IDENTITY_ID,
                                       resolved_by="config",
                                       identity={"id": IDENTITY_ID, "properties": {"clientId": new}})
    for outcome in (sa_client_id_annotation(ctx), identity_matches(ctx)):
        assert outcome.status == FAIL
        [finding] = outcome.findings
        assert finding.code in ("SA_CLIENT_ID_MISMATCH", "IDENTITY_CLIENT_ID_MISMATCH")
        assert finding.fix_lines() == [f"# set client_id: {new} for finance/backend-sa in harness.yaml (it names "
                                       f"{CLIENT}, which is not the identity's); the annotation is right"]
    # the annotation naming neither: the annotation is the fix, as before
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = "11111111-2222-4333-8444-555555555555"
    assert sa_client_id_annotation(ctx).findings[0].fix_lines()[0].startswith(
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={CLIENT}")


# ---------------------------------------------------------------- why the probe did not run


def _refused(status: int, message: str, app_labels: dict[str, str] | None = None) -> Finding:
    """The probe pod refused with ``message``; ``app_labels``: a live pod of the workload carrying them."""
    ctx = context_for(None)
    if app_labels is not None:
        app = {"metadata": {"name": "backend-1", "namespace": "finance", "labels": app_labels}}
        ctx.facts.live_pods = LivePodsFacts([LivePod(app, "Deployment", "backend")])
    assert ctx.facts.pod is not None
    ctx.facts.pod.created = False
    ctx.facts.pod.create_error = KubeFailure(status, "Forbidden" if status == 403 else "BadRequest", message)
    outcome = pod_admitted(ctx)
    assert outcome.status == FAIL
    return outcome.findings[0]


def test_a_policy_engine_refusal_is_named_and_not_blamed_on_workload_identity() -> None:
    finding = _refused(
        403,
        'admission webhook "validation.gatekeeper.sh" denied the request: [azurepolicy-k8sazurev3containerlimits-'
        "2b5a9a3b] container <probe> has no resource limits",
    )
    assert finding.code == "POD_REJECTED_BY_POLICY"
    assert "validation.gatekeeper.sh" in finding.message and "has no resource limits" in finding.message
    assert finding.fix_lines()[1] == "kubectl get constraints -o wide   # which constraint refused it"
    down = _refused(500, 'Internal error occurred: failed calling webhook "validation.gatekeeper.sh": '
                         "failed to call webhook: context deadline exceeded")
    assert down.code == "OTHER_WEBHOOK_UNAVAILABLE" and "context deadline exceeded" in down.message
    workload_identity = _refused(
        400, 'admission webhook "mutation.azure-workload-identity.io" denied the request: service account '
        "not found")
    assert workload_identity.code == "POD_REJECTED_BY_WEBHOOK"


def test_an_allowed_repositories_policy_refusing_the_probe_image_prints_where_to_take_it_from() -> None:
    """gatekeeper-library's allowedrepos text naming the probe container: the image imported into a registry the
    policy allows and named in probe.image, or a Python image from the repositories it lists."""
    image = "mcr.microsoft.com/azurelinux/base/python:3.12"
    finding = _refused(
        403, 'admission webhook "validation.gatekeeper.sh" denied the request: [allowed-repos] container <probe> has '
        f'an invalid image repo <{image}>, allowed repos are ["myacr.azurecr.io/"]')
    assert finding.code == "POD_REJECTED_BY_POLICY"
    assert finding.fix_lines()[1:] == [
        "kubectl get constraints -o wide   # which constraint refused it",
        f"az acr import --name myacr --source {image} --image wi-harness/python:3.12",
        "# then set probe.image: myacr.azurecr.io/wi-harness/python:3.12 in harness.yaml (configmap mode runs "
        "the probe in any image with python3), or pass --probe-image",
        '# or set probe.image in harness.yaml to a Python image under the repositories the policy allows: '
        '["myacr.azurecr.io/"]',
    ]
    # the registry the policy allows is filled in, under the prefix it allows (K8sAllowedRepos matches a prefix):
    # the image named is one it admits; a list with no Azure Container Registry keeps the placeholder
    for repos, name, named in (('["docker.io/library/", "contosoacr.azurecr.us/platform"]', "contosoacr",
                                "contosoacr.azurecr.us/platform/wi-harness/python:3.12"),
                               ('["docker.io/library/"]', "'<registry>'", "<registry>.azurecr.io/wi-harness/python:3.12"),
                               ('["evil.azurecr.io.example.com/"]', "'<registry>'",
                                "<registry>.azurecr.io/wi-harness/python:3.12")):
        lines = _refused(403, 'admission webhook "validation.gatekeeper.sh" denied the request: [allowed-repos] '
                              f'container <probe> has an invalid image repo <{image}>, allowed repos are {repos}'
                         ).fix_lines()
        target = named.split("/", 1)[1]
        assert lines[2] == f"az acr import --name {name} --source {image} --image {target}"
        assert lines[3].startswith(f"# then set probe.image: {named} in harness.yaml")
        if "contosoacr" in repos:
            assert named.startswith("contosoacr.azurecr.us/platform")
    other = _refused(403, 'admission webhook "validation.gatekeeper.sh" denied the request: [allowed-repos] '
                          'container <sidecar> has an invalid image repo <x>, allowed repos are ["a/"]')
    assert not any("probe.image" in line for line in other.fix_lines())


def test_a_probe_refused_in_a_namespace_being_deleted_is_not_rbac() -> None:
    finding = _refused(403, 'pods "wi-probe-x" is forbidden: unable to create new content in namespace finance '
                            "because it is being terminated")
    assert finding.code == "NAMESPACE_TERMINATING"
    assert finding.fix_lines()[0] == "kubectl describe namespace finance   # what remains and what holds it"


def test_a_container_limits_policy_refusing_the_probe_sets_probe_resources_within_it() -> None:
    finding = _refused(
        403, 'admission webhook "validation.gatekeeper.sh" denied the request: [limits] container <probe> cpu limit '
        "<200m> is higher than the maximum allowed of <100m>\n[limits] container <probe> memory limit <128Mi> is "
        "higher than the maximum allowed of <64Mi>")
    assert finding.code == "POD_REJECTED_BY_POLICY"
    assert finding.fix_lines()[-1] == ("# set probe.resources in harness.yaml within what the policy allows: limits: "
                                       "{cpu: 100m, memory: 64Mi} (or lower); the probe needs little")
    below = _refused(
        403, 'admission webhook "validation.gatekeeper.sh" denied the request: [limits] container <probe> memory limit '
        "<128Mi> is higher than the maximum allowed of <24Mi>")
    assert "limits: {memory: 24Mi}, requests: {memory: 24Mi} (or lower)" in below.fix_lines()[-1]


def test_a_required_labels_policy_gets_probe_labels_with_the_values_the_workloads_pods_carry() -> None:
    """gatekeeper-library's requiredlabels text (Azure Policy's k8sazurepodenforcelabels says the same): the
    missing keys become probe.labels, valued as the workload's own pods (which the policy admitted) carry them."""
    said = ('admission webhook "validation.gatekeeper.sh" denied the request: [azurepolicy-k8sazurepodenforcelabels-'
            '1f2e] you must provide labels: {"costcenter", "team"}')
    finding = _refused(403, said, {"app": "backend", "costcenter": "cc-4711", "team": "payments"})
    assert finding.code == "POD_REJECTED_BY_POLICY"
    assert finding.fix_lines()[-1] == ('# set probe.labels in harness.yaml: {costcenter: "cc-4711", team: "payments"} '
                                       "(the values the workload's pods carry)")
    assert '{costcenter: "<value>", team: "<value>"}' in _refused(403, said).fix_lines()[-1]
    outside = _refused(403, 'admission webhook "validation.gatekeeper.sh" denied the request: [owner] Label '
                            "<costcenter: x> does not satisfy allowed regex: ^cc-[0-9]+$", {"costcenter": "cc-4711"})
    assert outside.fix_lines()[-1].startswith('# set probe.labels in harness.yaml: {costcenter: "cc-4711"}')


def test_a_volume_types_policy_refusing_the_token_volume_is_named_as_every_workload_identity_pods() -> None:
    """gatekeeper-library's psp volumes text: 'projected' refused is the volume Workload ID's webhook mounts the
    token in (every labelled pod's), 'configMap' the probe's own source, which probe.mode image avoids."""
    finding = _refused(
        403, 'admission webhook "validation.gatekeeper.sh" denied the request: [psp-volumes] The volume type '
        'configMap is not allowed, pod: wi-probe-x. Allowed volume types: ["emptyDir", "secret"]\n[psp-volumes] The '
        'volume type projected is not allowed, pod: wi-probe-x. Allowed volume types: ["emptyDir", "secret"]')
    assert finding.code == "POD_REJECTED_BY_POLICY"
    configmap, projected = finding.fix_lines()[-2:]
    assert configmap.startswith("# the policy refuses configMap volumes") and "probe.mode: image" in configmap
    assert projected.startswith("# the policy refuses projected volumes, the kind Workload ID's webhook mounts")
    assert projected.endswith("until projected is added to the constraint's parameters.volumes")


def test_a_policy_against_the_latest_tag_asks_for_a_probe_image_pinned_by_digest() -> None:
    """gatekeeper-library's disallowedtags (AKS Deployment Safeguards refuse :latest too): probe.image pinned by
    digest, or the default image, which is."""
    finding = _refused(
        403, 'admission webhook "validation.gatekeeper.sh" denied the request: [no-latest] container <probe> uses a '
        'disallowed tag <myacr.azurecr.io/python:latest>; disallowed tags are ["latest"]')
    assert finding.code == "POD_REJECTED_BY_POLICY"
    assert finding.fix_lines()[-1].startswith("# set probe.image in harness.yaml to myacr.azurecr.io/python:latest "
                                              "pinned by digest")


def test_a_kyverno_denial_names_its_policies_and_the_exception_that_exempts_the_probe() -> None:
    """Kyverno's text (webhook validate.kyverno.svc-fail): each policy on a line of its own after 'was blocked due
    to the following policies', its rules indented under it."""
    finding = _refused(
        400, 'admission webhook "validate.kyverno.svc-fail" denied the request: \n\nresource Pod/finance/wi-probe-x '
        "was blocked due to the following policies\n\nrequire-team-label:\n  check-team: 'validation error: label "
        "team is required. rule check-team failed at path /metadata/labels/team/'\ndisallow-latest:\n  "
        "check-tag: 'validation error: no latest'")
    assert finding.code == "POD_REJECTED_BY_POLICY" and "validate.kyverno.svc-fail" in finding.message
    lines = finding.fix_lines()
    assert lines[1:3] == [
        "kubectl get clusterpolicies.kyverno.io,policies.kyverno.io -A --field-selector metadata.name=require-team-label"
        " -o yaml",
        "kubectl get clusterpolicies.kyverno.io,policies.kyverno.io -A --field-selector metadata.name=disallow-latest "
        "-o yaml",
    ]
    assert "PolicyException" in lines[3]


@pytest.mark.parametrize("status", [422, 403, 401])
def test_a_validating_admission_policy_refusal_is_the_policy_not_rbac_nor_a_credential(status: int) -> None:
    """The API server's own CEL policy: 'ValidatingAdmissionPolicy <p> with binding <b> denied request: <msg>' in a
    NewForbidden text, a 422 unless the validation sets its reason (403, 401): was PROBE_FORBIDDEN with Roles to
    create for a 403 and a fix-less POD_NOT_ADMITTED for a 422; named as the policy and its binding instead."""
    said = "failed expression: has(object.metadata.labels) && 'team' in object.metadata.labels"
    finding = _refused(status, "pods \"wi-probe-backend-sa-1\" is forbidden: ValidatingAdmissionPolicy "
                               f"'require-team-label' with binding 'require-team-label-prod' denied request: {said}")
    assert finding.code == "POD_REJECTED_BY_POLICY"
    assert finding.message == ("the ValidatingAdmissionPolicy require-team-label (binding require-team-label-prod), "
                               "a policy of the API server's own, not Workload ID nor the harness's rights, refused "
                               f"the probe pod: {said}")
    assert finding.evidence["admission_policy"] == "require-team-label"
    lines = finding.fix_lines()
    assert lines[:2] == [
        "kubectl get validatingadmissionpolicy require-team-label -o yaml   # its validations (the CEL that refused) "
        "and matchConstraints",
        "kubectl get validatingadmissionpolicybinding require-team-label-prod -o yaml   # its matchResources (which "
        "namespaces and objects) and validationActions",
    ]
    assert "binding require-team-label-prod: its matchResources.objectSelector" in lines[-1]
    assert not any("rolebinding" in line or "az login" in line for line in lines)
    # no binding named: the bindings listed with their policies
    unbound = _refused(422, "pods \"x\" is forbidden: ValidatingAdmissionPolicy 'limits' denied request: no limits")
    assert unbound.fix_lines()[1].startswith("kubectl get validatingadmissionpolicybindings -o ")
    # a Deployment of the workload refused likewise: named as the policy, not "a reason the harness does not name"
    assert refusal_cause("pods \"backend-7d9-\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' "
                         "denied request: x") == ("the ValidatingAdmissionPolicy p (binding b), a policy of the API "
                                                  "server's own, denied them")


def test_another_vendors_webhook_that_cannot_be_called_is_named_with_its_service() -> None:
    """A mesh's sidecar injector whose Service has no pod, under failurePolicy Fail: the API server refuses every
    pod it matches. Named with the Service its URL names, never as a policy's refusal nor as Workload ID's."""
    finding = _refused(
        500, 'Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": failed to call '
        'webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": dial tcp 10.0.0.12:443: connect: '
        "connection refused")
    assert finding.code == "OTHER_WEBHOOK_UNAVAILABLE"
    assert finding.message.startswith("the admission webhook namespace.sidecar-injector.istio.io (not Workload "
                                      "ID's) cannot be called: dial tcp 10.0.0.12:443: connect: connection refused;")
    assert finding.evidence["webhook"] == "namespace.sidecar-injector.istio.io"
    assert finding.fix_lines()[1:3] == [
        "kubectl get endpoints -n istio-system istiod   # no address: no pod serves it",
        "kubectl get pods -n istio-system",
    ]
    assert finding.fix_lines()[-1].startswith("# a person decides: bring back the pods that serve "
                                              "namespace.sidecar-injector.istio.io")
    by_url = _refused(500, 'Internal error occurred: failed calling webhook "x.example.com": failed to call '
                           'webhook: Post "https://hooks.example.com/x?timeout=10s": EOF')
    assert by_url.code == "OTHER_WEBHOOK_UNAVAILABLE" and len(by_url.fix_lines()) == 2


@pytest.mark.parametrize("message", [
    'pods "wi-probe-x" is forbidden: failed quota: compute-quota: must specify limits.cpu for: probe',
    'pods "wi-probe-x" is forbidden: exceeded quota: compute-resources, requested: pods=1, used: pods=10, '
    "limited: pods=10",
    'pods "wi-probe-x" is forbidden: exceeded quota: compute, requested: limits.cpu=200m,limits.memory=128Mi, used: '
    "limits.cpu=900m,limits.memory=900Mi, limited: limits.cpu=1,limits.memory=1Gi",
    'pods "wi-probe-x" is forbidden: maximum cpu usage per Container is 500m, but limit is 1',
    'pods "wi-probe-x" is forbidden: maximum cpu usage per Pod is 500m, but limit is 200m',
    'pods "wi-probe-x" is forbidden: maximum memory usage per Container is 24Mi, but limit is 128Mi',
    'pods "wi-probe-x" is forbidden: exceeded quota: mem, requested: limits.memory=128Mi, used: limits.memory=1004Mi, '
    "limited: limits.memory=1Gi",
    'pods "wi-probe-x" is forbidden: minimum memory usage per Container is 256Mi, but request is 32Mi',
    'pods "wi-probe-x" is forbidden: cpu max limit to request ratio per Container is 4, but provided ratio is '
    "20.000000",
])
def test_a_quota_or_limit_range_refusal_is_not_rbac(message: str) -> None:
    finding = _refused(403, message)
    assert finding.code == "POD_REJECTED_BY_QUOTA"
    assert finding.fix_lines()[0] == "kubectl describe resourcequota,limitrange -n finance"
    if "limits.cpu=200m" in message:  # compute: probe.resources within what is left
        assert finding.fix_lines()[1] == ("# set probe.resources in harness.yaml within what the quota has left: "
                                          "{limits: {cpu: 100m, memory: 124Mi}} (or lower; the probe needs little), "
                                          "or free some of the quota or raise it")
    if "requested: pods=1" in message:  # an object count: the probe's size does not matter
        assert finding.fix_lines()[1] == ("# the quota counts pods, whatever the probe's size: free some (or raise the "
                                          "quota: a person decides), then run again")
    if "maximum cpu usage per" in message:  # a LimitRange (per Container or per Pod): the probe.resources within
        assert finding.fix_lines()[1] == ("# set probe.resources in harness.yaml within the namespace's LimitRange: "
                                          "{limits: {cpu: 500m}} (a maximum: at most; a minimum: at least, for the "
                                          "request and the limit), or change the LimitRange")
    if "ratio" in message:  # maxLimitRequestRatio: a 403 too, and not RBAC; the request that keeps the ratio
        assert "{requests: {cpu: 50m}} with the default limits (cpu 200m)" in finding.fix_lines()[1]
    if "used: limits.memory=1004Mi" in message:  # 20Mi left, under the default 32Mi request: both within it
        assert "{limits: {memory: 20Mi}, requests: {memory: 20Mi}}" in finding.fix_lines()[1]
    if "maximum memory" in message:  # below the default 32Mi request: harness.yaml wants the request within it
        assert "{limits: {memory: 24Mi}, requests: {memory: 24Mi}}" in finding.fix_lines()[1]
    if "minimum memory" in message:  # the LimitRanger holds the limit to the minimum too (minConstraint)
        assert "{limits: {memory: 256Mi}, requests: {memory: 256Mi}}" in finding.fix_lines()[1]
    assert _refused(403, 'pods is forbidden: User "x" cannot create resource "pods"').code == "PROBE_FORBIDDEN"


def test_the_admitted_check_says_who_refused_not_every_403s_suspects() -> None:
    """pod.admitted's line named any 403 "forbidden (Pod Security admission, RBAC or a policy engine)", a quota's
    and a LimitRange's too, which are none of the three; once the refusal is read, the line names its cause."""
    said = {
        'pods "wi-probe-x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1':
            "(403 forbidden by a ResourceQuota or LimitRange): ",
        'pods "wi-probe-x" is forbidden: [maximum cpu usage per Container is 20m, but limit is 200m]':
            "(403 forbidden by a ResourceQuota or LimitRange): ",
        'admission webhook "validation.gatekeeper.sh" denied the request: [denied] pods must carry label costcenter':
            "(403 a policy engine's admission webhook denied it): ",
        'pods "wi-probe-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true':
            "(403 forbidden by Pod Security admission): ",
        'pods is forbidden: User "x" cannot create resource "pods" in API group "" in the namespace "finance"':
            "(403 forbidden by RBAC): ",
    }
    for message, hint in said.items():
        ctx = context_for(None)
        assert ctx.facts.pod is not None
        ctx.facts.pod.created = False
        ctx.facts.pod.create_error = KubeFailure(403, "Forbidden", message)
        outcome = pod_admitted(ctx)
        assert outcome.message == f"the API server refused the probe pod {hint}{message}", outcome.message
        assert "RBAC or a policy engine" not in outcome.message


def _waiting_probe(pod_status: dict[str, Any], **facts: Any) -> Outcome:
    pod = _pod(*V16)
    pod["status"] = pod_status
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    for key, value in facts.items():
        setattr(ctx.facts.pod, key, value)
    return probe_completed(ctx)


def test_an_unschedulable_probe_is_named_with_the_schedulers_message() -> None:
    message = ("0/3 nodes are available: 3 node(s) had untolerated taint {CriticalAddonsOnly: true}. "
               "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    outcome = _waiting_probe(
        {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                             "reason": "Unschedulable", "message": message}]},
        phase="Pending", timed_out=True,
    )
    assert outcome.findings[0].code == "PROBE_UNSCHEDULABLE" and "CriticalAddonsOnly" in outcome.findings[0].message
    lines = outcome.findings[0].fix_lines()
    # the probe tolerates what the workloads there tolerate; AKS changes a node pool's taints only through its API
    assert '# tolerate it, as the workloads on these nodes do: in harness.yaml, probe.tolerations: [{key: ' \
           '"CriticalAddonsOnly", operator: Equal, value: "true"}]' in lines
    assert not any(line.startswith("kubectl taint") for line in lines)


def _unscheduled(message: str, node_selector: dict[str, str] | None = None) -> list[str]:
    pod = _pod(*V16)
    pod["spec"]["nodeSelector"] = node_selector or {"kubernetes.io/os": "linux"}
    pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                         "reason": "Unschedulable", "message": message}]}
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    ctx.facts.pod.phase, ctx.facts.pod.timed_out = "Pending", True
    outcome = probe_completed(ctx)
    assert outcome.findings[0].code == "PROBE_UNSCHEDULABLE"
    return outcome.findings[0].fix_lines()


def test_a_cordoned_node_is_a_persons_maintenance_not_a_toleration() -> None:
    """NodeUnschedulable's reason: the fix shows the nodes' STATUS and leaves uncordon to a person, and never
    offers a toleration or a node selector for it."""
    lines = _unscheduled("0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are "
                         "available: 1 Preemption is not helpful for scheduling.")
    assert "kubectl get nodes   # SchedulingDisabled: cordoned" in lines
    assert any(line.startswith("# a person decides: a cordoned node takes no new pods until kubectl uncordon")
               for line in lines)
    assert not any("probe.tolerations" in line or "probe.node_selector" in line for line in lines)


def test_taints_of_separate_node_pools_are_tolerated_as_the_workloads_pods_tolerate_them() -> None:
    """AKS: a system pool tainted CriticalAddonsOnly and a spot user pool (kubernetes.azure.com/scalesetpriority=
    spot:NoSchedule) where the workload runs: no taint holds every node, so the toleration the fix prints is the
    one of the workload's own pods, which pasted into harness.yaml lets the probe into their pool."""
    message = ("0/2 nodes are available: 1 node(s) had untolerated taint {CriticalAddonsOnly: true}, 1 node(s) had "
               "untolerated taint {kubernetes.azure.com/scalesetpriority: spot}. preemption: 0/2 nodes are "
               "available: 2 Preemption is not helpful for scheduling.")
    pod = _pod(*V16)
    pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                         "reason": "Unschedulable", "message": message}]}
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    ctx.facts.pod.phase, ctx.facts.pod.timed_out = "Pending", True
    app = {"metadata": {"name": "backend-1", "namespace": "finance"},
           "spec": {"tolerations": [{"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal",
                                     "value": "spot", "effect": "NoSchedule"}]}}
    ctx.facts.live_pods = LivePodsFacts(pods=[LivePod(app, "Deployment", "backend")])
    lines = probe_completed(ctx).findings[0].fix_lines()
    assert ('# tolerate it, as the workloads on these nodes do: in harness.yaml, probe.tolerations: [{key: '
            '"kubernetes.azure.com/scalesetpriority", operator: Equal, value: "spot"}]') in lines
    assert not any("CriticalAddonsOnly\", operator" in line for line in lines)
    ctx.facts.live_pods = LivePodsFacts()  # scaled to zero: both named, for a person to choose
    lines = probe_completed(ctx).findings[0].fix_lines()
    assert any("CriticalAddonsOnly=true, kubernetes.azure.com/scalesetpriority=spot" in line for line in lines)


def test_a_windows_pool_beside_a_tainted_linux_system_pool_is_named_as_linux_only() -> None:
    """A Windows workload's pool and a Linux system pool tainted CriticalAddonsOnly: the probe's own
    kubernetes.io/os=linux keeps it off the Windows nodes, which no probe.node_selector changes; the system pool's
    taint is the one to tolerate."""
    lines = _unscheduled("0/3 nodes are available: 1 node(s) had untolerated taint {CriticalAddonsOnly: true}, 2 "
                         "node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 "
                         "Preemption is not helpful for scheduling.")
    assert any(line.startswith("# the probe runs on Linux nodes only (kubernetes.io/os=linux)") for line in lines)
    assert any("taints it does not tolerate (CriticalAddonsOnly=true): tolerate one in probe.tolerations" in line
               for line in lines), lines
    assert not any("or remove it" in line for line in lines), lines


def test_a_node_condition_taint_is_the_nodes_state_to_repair_not_a_toleration() -> None:
    """The node controller's taints for a node's conditions (not-ready, unreachable, memory/disk/PID pressure):
    the node is unwell, so the fix shows the nodes' Ready state and never offers to tolerate the taint."""
    lines = _unscheduled("0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
                         "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    assert not any("probe.tolerations" in line for line in lines), lines
    assert any(line.startswith("# node.kubernetes.io/not-ready: the taint the node controller puts on a node")
               for line in lines), lines
    assert any(line.startswith("kubectl get nodes -o 'custom-columns=NAME:.metadata.name,READY:") for line in lines)


def test_nodes_without_room_for_the_probe_are_scaled_out_not_tolerated() -> None:
    """NodeResourcesFit's reasons (Insufficient cpu, Too many pods): the nodes are full, which no toleration or
    node selector repairs."""
    lines = _unscheduled("0/3 nodes are available: 1 Too many pods, 2 Insufficient cpu. preemption: 0/3 nodes are "
                         "available: 3 No preemption victims found for incoming pod.")
    assert "kubectl describe nodes   # Allocated resources: what the nodes' pods already request" in lines
    assert any(line.startswith("# the nodes have no room left for the probe (Insufficient cpu, Too many pods): "
                               "scale the node pool out") for line in lines), lines
    assert not any("probe.tolerations" in line for line in lines), lines


def test_a_node_selector_no_node_meets_is_looked_up_by_its_labels() -> None:
    lines = _unscheduled("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
                         "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
                         {"kubernetes.io/os": "linux", "agentpool": "gpu"})
    assert ("kubectl get nodes -l agentpool=gpu,kubernetes.io/os=linux   # no node has every label the probe's "
            "nodeSelector names") in lines
    assert "kubectl get pods -n finance -o wide   # the nodes the workload runs on" in lines
    assert any(line.startswith("# set probe.node_selector in harness.yaml") for line in lines)


def test_a_deadline_hit_while_pulling_says_so() -> None:
    outcome = _waiting_probe({"phase": "Failed", "reason": "DeadlineExceeded"}, phase="Failed",
                             waiting_reason="ContainerCreating")
    finding = outcome.findings[0]
    assert finding.code == "PROBE_TIMEOUT" and "still being pulled" in finding.message


def test_a_probe_that_exited_while_a_mesh_sidecar_runs_on_is_settled() -> None:
    facts = PodFacts("finance", "p", created=True)
    observe(facts, {"status": {"phase": "Running", "containerStatuses": [
        {"name": "istio-proxy", "state": {"running": {}}},
        {"name": "probe", "state": {"terminated": {"exitCode": 0}}},
    ]}})
    assert settled(facts) and facts.exit_code == 0


def test_an_existing_pod_is_judged_by_the_container_the_webhook_mutated_not_a_mesh_proxy_put_first() -> None:
    pod = _pod(*V16)
    app = pod["spec"]["containers"][0]
    pod["spec"]["containers"] = [{"name": "linkerd-proxy", "env": [], "volumeMounts": []}, app]
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    ctx.facts.pod.existing = True
    assert ctx.container is app
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL  # the proxy itself got no env: said, with its name
    assert "linkerd-proxy" in outcome.message
    pod["metadata"].setdefault("annotations", {})["azure.workload.identity/skip-containers"] = "linkerd-proxy"
    assert pod_mutated(ctx).status == PASS


def _app_skipped_beside_a_mutated_sidecar(skip: str, app_status: dict[str, Any] | None = None) -> WorkloadContext:
    """A Deployment's pod whose native sidecar (an init container with restartPolicy Always) the webhook mutated,
    and whose app container it skipped, as skip-containers names it."""
    pod = _pod(*V16)
    sidecar = pod["spec"]["containers"][0] | {"name": "mesh", "restartPolicy": "Always"}
    pod["spec"]["initContainers"] = [sidecar]
    pod["spec"]["containers"] = [{"name": "backend", "volumeMounts": []}]
    pod["metadata"].update(name="backend-7d9f-abcde", annotations={"azure.workload.identity/skip-containers": skip},
                           labels={**pod["metadata"]["labels"], "pod-template-hash": "7d9f"},
                           ownerReferences=[{"kind": "ReplicaSet", "name": "backend-7d9f", "controller": True}])
    if app_status is not None:
        pod["status"] = {"containerStatuses": [{"name": "backend", **app_status}]}
    ctx = context_for(pod)
    assert ctx.facts.pod is not None
    ctx.facts.pod.existing = True
    return ctx


def test_an_app_container_the_annotation_skips_is_named_not_blamed_on_the_webhook() -> None:
    """By hand in the lab: --pod on a pod whose native sidecar got the identity and whose app container is in
    skip-containers said POD_NOT_MUTATED ("only partly mutated") and printed az aks update
    --enable-workload-identity and a pod delete, though the webhook did what the annotation says. It names the
    annotation now: a warning (skipped on purpose, maybe), with the annotation taken off the template; an error
    when the skipped container keeps failing, its log first."""
    outcome = pod_mutated(_app_skipped_beside_a_mutated_sidecar("backend"))
    assert outcome.status == WARN, outcome.message
    (finding,) = outcome.findings
    assert finding.code == "POD_CONTAINER_SKIPPED" and finding.severity == "warning"
    assert finding.message == ("container backend is in azure.workload.identity/skip-containers: the webhook gave it "
                               "no AZURE_* env and no token mount (it mutated init container mesh only)")
    lines = finding.fix_lines()
    assert lines[0] == ("kubectl patch deployment/backend -n finance --type json -p '[{\"op\":\"remove\",\"path\":"
                        "\"/spec/template/metadata/annotations/azure.workload.identity~1skip-containers\"}]'")
    assert not any("az aks" in line or "delete pod" in line for line in lines)
    crashing = {"restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1}}}
    failing = pod_mutated(_app_skipped_beside_a_mutated_sidecar("backend;log-shipper", crashing))
    assert failing.status == FAIL
    (finding,) = failing.findings
    assert finding.code == "POD_CONTAINER_SKIPPED" and finding.severity == "error"
    assert "and it is in CrashLoopBackOff (last exit 1, 4 restarts)" in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("kubectl logs -n finance backend-7d9f-abcde -c backend --previous")
    assert lines[1].startswith("# if it needs the identity, take backend out of azure.workload.identity/skip-"
                               "containers in Deployment/backend's pod template (the other names stay")


# ---------------------------------------------------------------- access verdicts by the service's own code


def _answered(kind: str, expect: str, status: int, resources: dict[str, dict[str, str]] | None = None,
              **codes: str) -> Outcome:
    check: KeyVaultSecretAccess | BlobAccess = (
        KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect=expect)
        if kind == "keyvault_secret"
        else BlobAccess(kind="blob", account_url=ACCOUNT, container="reports", blob="daily.csv", expect=expect)
    )
    ctx = context_for()
    assert ctx.facts.pod is not None
    ctx.cluster.access_resources = resources or {}
    step = {"name": "access", "index": 0, "status": "fail", "outcome": "deny",  # what an older probe said
            "evidence": {"http_status": status, **codes, "token": {"aud": "https://vault.azure.net"}},
            "error": {"kind": "expectation_mismatch"}}
    ctx.facts.pod.probe = {"steps": [step]}
    return access_outcome(ctx, 0, check)


def test_a_firewall_never_proves_a_deny_and_is_named_on_an_allow() -> None:
    unproven = _answered("keyvault_secret", "deny", 403, code="Forbidden", innererror="ForbiddenByFirewall")
    assert unproven.status == WARN and unproven.findings[0].code == "DENY_NOT_PROVEN"
    assert unproven.findings[0].severity == "warning"
    blocked = _answered("keyvault_secret", "allow", 403, code="Forbidden", innererror="ForbiddenByFirewall")
    assert blocked.status == FAIL and blocked.findings[0].code == "KEYVAULT_FIREWALL"
    assert blocked.findings[0].fix_lines()[0] == "az keyvault network-rule list --name finance-kv"
    assert not any("role assignment create" in line for line in blocked.findings[0].fix_lines())
    storage = _answered("blob", "allow", 403, code="AuthorizationFailure")
    assert storage.findings[0].code == "STORAGE_FIREWALL"
    assert storage.findings[0].fix_lines()[0] == "az storage account network-rule list --account-name ordersdata"
    assert _answered("blob", "deny", 403, code="AuthorizationFailure").findings[0].code == "DENY_NOT_PROVEN"


def test_a_storage_account_with_public_access_disabled_is_opened_not_given_a_network_rule() -> None:
    """Storage answers AuthorizationFailure for its firewall and for public access disabled alike; ARM's
    publicNetworkAccess (read with the account) tells them apart. Disabled, the account honours no network rule
    (Azure Policy b2982f36: it "denies all logins that match IP or virtual network-based firewall rules")."""
    account_id = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.Storage/storageAccounts/ordersdata"
    resource = {"id": account_id, "name": "ordersdata", "resource_group": "myRg"}
    key = ACCOUNT.rstrip("/")
    opened = _answered("blob", "allow", 403, {key: {**resource, "public_network_access": "Enabled"}},
                       code="AuthorizationFailure")
    assert opened.findings[0].fix_lines()[0] == "az storage account network-rule list --account-name ordersdata"
    closed = _answered("blob", "allow", 403, {key: {**resource, "public_network_access": "Disabled"}},
                       code="AuthorizationFailure")
    assert closed.status == FAIL and closed.findings[0].code == "STORAGE_FIREWALL"
    assert "public network access is disabled" in closed.findings[0].message
    lines = closed.findings[0].fix_lines()
    update = f"az storage account update --ids {account_id} --public-network-access Enabled --default-action Deny"
    rule = next(i for i, line in enumerate(lines) if line.startswith("az storage account network-rule add"))
    assert update in lines and lines.index(update) < rule


DENIED = {"http_status": 403, "code": "Forbidden", "innererror": "AccessDenied"}
FORBIDDEN_BY_RBAC = {"http_status": 403, "code": "Forbidden", "innererror": "ForbiddenByRbac"}


def _finance_kv_read(expect: str, evidence: dict[str, Any], vault: dict[str, str] | None,
                     roles_read: bool = False) -> tuple[WorkloadContext, KeyVaultSecretAccess]:
    """A read of finance-kv's db-password (``expect``) by the managed identity (CLIENT, principal PRINCIPAL) whose
    probe step answered ``evidence``; ``vault``: what the collector found of the vault besides its id, name and
    group (None: nothing found); ``roles_read``: the identity's role assignments were read (none)."""
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect=expect)
    ctx = context_for(client_id=CLIENT)
    assert ctx.facts.pod is not None
    ctx.facts.identity = IdentityFacts(
        configured=True, kind="managed_identity", resource_id=IDENTITY_ID, resolved_by="config",
        identity={"id": IDENTITY_ID, "properties": {"clientId": CLIENT, "principalId": PRINCIPAL}})
    if roles_read:
        ctx.facts.identity.role_assignments, ctx.facts.identity.role_names = [], {}
    if vault is not None:
        ctx.cluster.access_resources = {VAULT.rstrip("/"): {
            "id": "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv",
            "name": "finance-kv", "resource_group": "myRg", **vault}}
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "fail", "evidence": dict(evidence)}]}
    return ctx, check


def test_an_access_policy_naming_the_client_id_is_named_and_replaced() -> None:
    """az keyvault set-policy --object-id CLIENT_ID: Key Vault takes any GUID, so the vault has a policy for an
    object that does not exist and the identity (its principal id) none. The finding says so, and its fix makes the
    principal's policy and deletes the client id's."""
    ctx, check = _finance_kv_read("allow", DENIED, {"access_policy_object_ids": f"{CLIENT},other"})
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "KEYVAULT_ACCESS_POLICY_MISSING" and f"names the client id {CLIENT}" in finding.message
    assert finding.fix_lines()[:2] == [
        f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions get",
        f"az keyvault delete-policy --name finance-kv --object-id {CLIENT}"]
    ctx.cluster.access_resources[VAULT.rstrip("/")]["access_policy_object_ids"] = "other"  # no such policy
    [finding] = access_outcome(ctx, 0, check).findings
    assert "client id" not in finding.message and not any("delete-policy" in line for line in finding.fix_lines())


def test_set_policy_keeps_the_secret_permissions_the_policy_already_grants() -> None:
    """az keyvault set-policy --secret-permissions replaces an existing policy's secret permissions (azure-cli's
    set_policy: ``secrets = ... if secret_permissions is None else secret_permissions``): a policy granting list but
    not get is given 'list get', not 'get', which would take list away. The same for the client id's policy, whose
    permissions were meant for the identity."""
    ctx, check = _finance_kv_read("allow", DENIED, {
        "access_policy_object_ids": f"{PRINCIPAL},other",
        "access_policy_secret_permissions": f"{PRINCIPAL.upper()}=list set;other=get"})
    resource = ctx.cluster.access_resources[VAULT.rstrip("/")]
    [finding] = access_outcome(ctx, 0, check).findings
    assert "its policy grants secrets list set, not get" in finding.message
    assert finding.fix_lines()[0] == (
        f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions list set get")
    resource.update(access_policy_object_ids="other", access_policy_secret_permissions="other=get")
    [finding] = access_outcome(ctx, 0, check).findings
    assert f"no policy names its principal id {PRINCIPAL}" in finding.message
    assert finding.fix_lines()[0].endswith("--secret-permissions get")
    resource.update(access_policy_object_ids=CLIENT, access_policy_secret_permissions=f"{CLIENT}=list")
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.fix_lines()[:2] == [
        f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions list get",
        f"az keyvault delete-policy --name finance-kv --object-id {CLIENT}"]


def test_a_vault_switched_to_rbac_says_its_access_policy_no_longer_counts() -> None:
    """az keyvault update --enable-rbac-authorization true over a vault whose policy let the identity read: ARM keeps
    the policies, Key Vault ignores them (ForbiddenByRbac). ROLE_ASSIGNMENT_MISSING says so, with the role grant."""
    ctx, check = _finance_kv_read("allow", FORBIDDEN_BY_RBAC, {
        "access_policy_object_ids": PRINCIPAL, "access_policy_secret_permissions": f"{PRINCIPAL}=get list"},
        roles_read=True)
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "ROLE_ASSIGNMENT_MISSING"
    assert "access policy for the identity (secrets get list) no longer counts" in finding.message
    assert finding.fix_lines()[0].startswith("az role assignment create ")
    ctx.cluster.access_resources[VAULT.rstrip("/")]["access_policy_secret_permissions"] = "other=get"
    [finding] = access_outcome(ctx, 0, check).findings
    assert "access polic" not in finding.message


def test_a_vault_switched_to_access_policies_names_the_role_it_no_longer_weighs() -> None:
    """az keyvault update --enable-rbac-authorization false over a vault the identity reads through Key Vault
    Secrets User, no access policy for it (found breaking the lab by hand with az): KEYVAULT_ACCESS_POLICY_MISSING
    said only 'a role assignment would not help'. It now names the role the vault ignores, and after the policy
    grant (still the first line: it changes nothing for other callers) says that RBAC back is the other way."""
    vault_id = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"
    ctx, check = _finance_kv_read("allow", DENIED, {"rbac_authorization": "false", "access_policy_object_ids": ""},
                                  roles_read=True)
    ctx.facts.identity.role_assignments = [{"id": "a1", "properties": {"roleDefinitionId": "r/user",
                                                                       "scope": vault_id}}]
    ctx.facts.identity.role_names = {"r/user": "Key Vault Secrets User"}
    ctx.facts.identity.role_permissions = {"r/user": {"dataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"]}}
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "KEYVAULT_ACCESS_POLICY_MISSING"
    assert (f"the identity holds Key Vault Secrets User on {vault_id}, which counts only while the vault uses RBAC "
            "(switched to access policies?)") in finding.message
    lines = finding.fix_lines()
    assert lines[0] == f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions get"
    assert lines[-1].startswith("# or, if finance-kv left RBAC by mistake, give it RBAC back instead")
    ctx.facts.identity.role_assignments = []  # no role: nothing to say about RBAC
    [finding] = access_outcome(ctx, 0, check).findings
    assert "counts only while" not in finding.message and not finding.fix_lines()[-1].startswith("# or, if")


def test_a_deny_target_read_through_an_access_policy_is_revoked_in_the_policy() -> None:
    """The deny target's vault authorizes by access policy (ARM: enableRbacAuthorization false) and the identity's
    policy grants get: the fix takes get out of that policy (set-policy with what it keeps, or delete-policy when get
    was all), not a role assignment."""
    ctx, check = _finance_kv_read("deny", {"http_status": 200}, {
        "rbac_authorization": "false", "access_policy_object_ids": PRINCIPAL,
        "access_policy_secret_permissions": f"{PRINCIPAL}=get list"})
    resource = ctx.cluster.access_resources[VAULT.rstrip("/")]
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY" and "grants secrets get list" in finding.message
    assert finding.fix_lines()[0] == (
        f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions list")
    resource["access_policy_secret_permissions"] = f"{PRINCIPAL}=Get"
    assert access_outcome(ctx, 0, check).findings[0].fix_lines()[0].startswith(
        f"az keyvault delete-policy --name finance-kv --object-id {PRINCIPAL}")
    resource["access_policy_secret_permissions"] = f"{PRINCIPAL}=all"
    assert access_outcome(ctx, 0, check).findings[0].fix_lines()[0].endswith(
        "--secret-permissions backup delete list purge recover restore set")
    resource["rbac_authorization"] = "true"  # RBAC: the policy does not count, the role revocation is printed
    assert not any("policy" in line for line in access_outcome(ctx, 0, check).findings[0].fix_lines())


def test_access_resources_keep_each_policys_secret_permissions() -> None:
    vault = {"id": "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv",
             "name": "finance-kv", "properties": {"vaultUri": VAULT, "accessPolicies": [
                 {"tenantId": "t", "objectId": PRINCIPAL, "permissions": {"secrets": ["list", 7], "keys": ["get"]}},
                 {"tenantId": "t", "objectId": "other", "permissions": {}}, {"objectId": None}]}}
    azure = SimpleNamespace(subscription_id="s")  # the collector reads the subscription and the access kinds only
    workload = SimpleNamespace(access=[KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT,
                                                            secret="db-password", expect="allow")])
    found = collect_access_resources(lambda path: Fetched(url=path, status=200, body={"value": [vault]}),
                                     azure, [workload])  # type: ignore[arg-type]
    [resource] = found.values()
    assert resource["access_policy_object_ids"] == f"{PRINCIPAL},other"
    assert resource["access_policy_secret_permissions"] == f"{PRINCIPAL}=list;other="


def test_a_compound_identity_policy_is_named_and_remade_without_its_application_id() -> None:
    """az keyvault set-policy --object-id PRINCIPAL --application-id CLIENT (a common mistake): the entry is a
    compound identity, which Key Vault applies only to a user signed in through that application, so the identity's
    own token is refused (AccessDenied) although a policy names its principal id. The collector keeps such an entry
    apart; the finding names the application id and prints the policy without it, then deletes the compound one."""
    vault = {"id": "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv",
             "name": "finance-kv", "properties": {"vaultUri": VAULT, "enableRbacAuthorization": False, "accessPolicies": [
                 {"tenantId": "t", "objectId": PRINCIPAL, "applicationId": CLIENT,
                  "permissions": {"secrets": ["get", "list"]}},
                 {"tenantId": "t", "objectId": "other", "permissions": {"secrets": ["get"]}}]}}
    azure = SimpleNamespace(subscription_id="s")
    workload = SimpleNamespace(access=[KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT,
                                                            secret="db-password", expect="allow")])
    [resource] = collect_access_resources(lambda path: Fetched(url=path, status=200, body={"value": [vault]}),
                                          azure, [workload]).values()  # type: ignore[arg-type]
    assert resource["access_policy_object_ids"] == "other"  # the compound entry grants the principal nothing
    assert resource["access_policy_compound"] == f"{PRINCIPAL}@{CLIENT}=get list"
    ctx, check = _finance_kv_read("allow", DENIED, {k: v for k, v in resource.items()
                                                    if k not in ("id", "name", "resource_group")})
    outcome = access_outcome(ctx, 0, check)
    [finding] = outcome.findings
    assert outcome.status == FAIL and finding.code == "KEYVAULT_ACCESS_POLICY_MISSING"
    assert f"made with --application-id {CLIENT} (the identity's own client id): a compound identity" in \
        finding.message
    assert "yet Key Vault refused" not in finding.message
    assert finding.fix_lines()[:2] == [
        f"az keyvault set-policy --name finance-kv --object-id {PRINCIPAL} --secret-permissions get list",
        f"az keyvault delete-policy --name finance-kv --object-id {PRINCIPAL} --application-id {CLIENT}"]
    # the identity's own policy beside it granting get: the refusal is not the compound entry's doing
    ctx.cluster.access_resources[VAULT.rstrip("/")].update(access_policy_object_ids=f"{PRINCIPAL},other",
                                                             access_policy_secret_permissions=f"{PRINCIPAL}=get")
    assert "compound" not in access_outcome(ctx, 0, check).findings[0].message


def test_an_expired_secret_read_is_a_warning() -> None:
    """az keyvault secret set-attributes --expires <past>: Key Vault still answers 200 with the value (it records exp
    and does not enforce it: Azure/AzureKeyVault#19), so the read passes; the harness warns SECRET_EXPIRED with the
    dates and a new expiry (the owner's date: a placeholder). An expiry ahead, or none, passes quietly."""
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect="allow")
    ctx = context_for()
    assert ctx.facts.pod is not None

    def read(attributes: dict[str, Any]) -> Outcome:
        assert ctx.facts.pod is not None
        ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "pass", "outcome": "allow",
                                          "evidence": {"http_status": 200, "attributes": attributes}}]}
        return access_outcome(ctx, 0, check)

    expired = read({"enabled": True, "exp": 1577836800, "created": 1500000000})
    assert expired.status == WARN and "expiry date passed (2020-01-01T00:00:00Z)" in expired.message
    [finding] = expired.findings
    assert finding.code == "SECRET_EXPIRED" and finding.severity == "warning"
    assert finding.fix_lines()[-1] == (
        "az keyvault secret set-attributes --id https://finance-kv.vault.azure.net/secrets/db-password --expires "
        "'<new-expiry-utc>'   # e.g. 2027-01-31T00:00:00Z")
    assert read({"enabled": True, "exp": ctx.now + 86400}).status == PASS
    assert read({"enabled": True}).status == PASS


def test_a_vault_firewall_fix_admits_the_address_key_vault_saw() -> None:
    """ForbiddenByFirewall's message names where the request came from ("Client address: X"): a public address (the
    cluster's egress) is admitted by the printed IP rule; a private one came over a virtual network, which an IP rule
    cannot admit (Add-AzKeyVaultNetworkRule: private ranges "cannot be used to add network rules"): the subnet is."""
    def message(address: str) -> str:
        return (f"Client address is not authorized and caller is not a trusted service.\r\nClient address: {address}"
                "\r\nCaller: appid=a;oid=o;iss=https://sts.windows.net/t/\r\nVault: finance-kv;location=eastus")

    public = _answered("keyvault_secret", "allow", 403, code="Forbidden", innererror="ForbiddenByFirewall",
                       message=message("20.62.133.7"))
    [finding] = public.findings
    assert finding.code == "KEYVAULT_FIREWALL" and "Key Vault saw the request come from 20.62.133.7" in finding.message
    assert "az keyvault network-rule add --name finance-kv --ip-address 20.62.133.7   # the address Key Vault saw " \
           "the pod's request come from" in finding.fix_lines()
    assert finding.evidence["client_address"] == "20.62.133.7"
    private = _answered("keyvault_secret", "allow", 403, code="Forbidden", innererror="ForbiddenByFirewall",
                        message=message("10.224.0.5"))
    lines = private.findings[0].fix_lines()
    assert not any("--ip-address 10.224.0.5" in line for line in lines)
    assert "az keyvault network-rule add --name finance-kv --subnet '<aks-node-subnet-id>'" in lines
    assert any("private address 10.224.0.5" in line for line in lines)


def test_a_vault_in_another_subscription_is_found_through_resource_graph() -> None:
    """The subscription's vault list lacks the vault (it is in a shared subscription): one Resource Graph query by
    name finds it; the refusal's grant names its id (az keyvault show --name looks in the current subscription only)
    and the role diagnosis, from this subscription's assignments, is not made."""
    shared_id = "/subscriptions/s2/resourceGroups/shared-rg/providers/Microsoft.KeyVault/vaults/finance-kv"
    asked: list[tuple[str, Any]] = []

    def arm(path: str, body: Any = None) -> Fetched:
        asked.append((path, body))
        if body is None:
            return Fetched(url=path, status=200, body={"value": []})
        return Fetched(url=path, status=200, body={"data": [
            {"id": shared_id, "name": "finance-kv", "type": "microsoft.keyvault/vaults",
             "properties": {"vaultUri": VAULT}}]})

    ctx, check = _finance_kv_read("allow", FORBIDDEN_BY_RBAC, None, roles_read=True)
    found = collect_access_resources(arm, SimpleNamespace(subscription_id="s"),  # type: ignore[arg-type]
                                     [SimpleNamespace(access=[check])])  # type: ignore[list-item]
    assert asked[-1][1] == {"query": "resources | where type =~ 'microsoft.keyvault/vaults' and name =~ 'finance-kv'"}
    [resource] = found.values()
    assert resource["id"] == shared_id and resource["found_by"] == "resource_graph"
    ctx.cluster.access_resources = found
    [finding] = access_outcome(ctx, 0, check).findings
    assert finding.code == "ACCESS_DENIED_UNEXPECTEDLY" and "in subscription s2" in finding.message
    assert finding.fix_lines()[0].endswith(f"--role 'Key Vault Secrets User' --scope {shared_id}")


def test_a_vault_with_public_access_disabled_is_opened_not_given_a_network_rule() -> None:
    """ForbiddenByConnection: publicNetworkAccess Disabled. The vault honours no network rule then (the management
    SDK's public_network_access: "even if the firewall rules are present we will not honor the rules"): the fix
    enables public access with the firewall closed before it adds one."""
    blocked = _answered("keyvault_secret", "allow", 403, code="Forbidden", innererror="ForbiddenByConnection")
    assert blocked.status == FAIL and blocked.findings[0].code == "KEYVAULT_FIREWALL"
    assert "public network access is disabled" in blocked.findings[0].message
    lines = blocked.findings[0].fix_lines()
    update = "az keyvault update --name finance-kv --public-network-access Enabled --default-action Deny"
    rule = next(i for i, line in enumerate(lines) if line.startswith("az keyvault network-rule add"))
    assert update in lines and lines.index(update) < rule
    assert not any("role assignment create" in line for line in lines)
    unproven = _answered("keyvault_secret", "deny", 403, code="Forbidden", innererror="ForbiddenByConnection")
    assert unproven.findings[0].code == "DENY_NOT_PROVEN"
    assert "the vault's public network access is disabled: it refused the request" in unproven.findings[0].message
    assert "network rules" not in unproven.findings[0].message


def test_a_200_that_is_no_secret_is_neither_an_allow_nor_least_privilege_violated() -> None:
    """The probe read a 200 whose body is no secret bundle (a proxy's page, an answer cut short): the harness,
    which judges by the status itself, took it for an allow (PASS, or ACCESS_ALLOWED_UNEXPECTEDLY on a deny
    target). It is an error naming the body."""
    said = ("the body is no Key Vault secret: not a JSON object (text/html): a proxy or gateway answered in the "
            "vault's place, or the answer was cut short")
    for expect in ("allow", "deny"):
        outcome = _answered("keyvault_secret", expect, 200, body_error=said)
        assert outcome.status == FAIL and [f.code for f in outcome.findings] == ["ACCESS_CHECK_ERROR"], outcome
        assert f"HTTP 200 ({said})" in outcome.findings[0].message


def test_only_authorization_refusals_prove_a_deny() -> None:
    assert _answered("keyvault_secret", "deny", 403, code="Forbidden", innererror="ForbiddenByRbac").status == PASS
    assert _answered("keyvault_secret", "deny", 403, code="Forbidden", innererror="AccessDenied").status == PASS
    assert _answered("blob", "deny", 403, code="AuthorizationPermissionMismatch").status == PASS
    assert _answered("keyvault_secret", "deny", 401, code="Unauthorized").status == WARN
    disabled = _answered("keyvault_secret", "allow", 403, code="Forbidden", innererror="SecretDisabled")
    assert disabled.status == FAIL and disabled.findings[0].code == "SECRET_DISABLED"
    # the right the write takes, on the line: the vault's Owner without a data role is refused (ForbiddenByRbac),
    # as a person breaking and mending the lab by hand with az found
    assert disabled.findings[0].fix_lines() == [
        "az keyvault secret set-attributes --id https://finance-kv.vault.azure.net/secrets/db-password "
        "--enabled true   # needs Key Vault Secrets Officer on the vault (RBAC) or the secret permission set "
        "(access policy); Owner alone is refused"
    ]
    # on a deny target, Key Vault told the secret's state to a caller it lets read: least privilege is violated,
    # and enabling (or making) the secret would hand it over
    for inner in ("SecretDisabled", "SecretNotFound"):
        told = _answered("keyvault_secret", "deny", 403 if inner == "SecretDisabled" else 404, code="Forbidden",
                         innererror=inner)
        assert told.status == FAIL and told.findings[0].code == "ACCESS_ALLOWED_UNEXPECTEDLY", inner
        assert "Key Vault tells the secret's state only to a caller allowed to read it" in told.message
        assert not any("--enabled true" in line or "secret recover" in line for line in told.findings[0].fix_lines())
    assert _answered("blob", "allow", 404, code="BlobNotFound").findings[0].code == "BLOB_NOT_FOUND"
    assert _answered("blob", "allow", 404).findings[0].code == "BLOB_NOT_FOUND"  # HEAD: no body


def test_a_missing_blob_is_looked_for_among_the_soft_deleted_before_harness_yaml_is_blamed() -> None:
    """az storage blob delete on an account with blob soft delete (az storage account blob-service-properties update
    --enable-delete-retention true) keeps the blob, but Get Blob answers BlobNotFound as for a name never written
    and a plain List Blobs leaves it out: the fix printed only that list and "fix harness.yaml, or upload", so the
    deleted blob was never named and its undelete never offered."""
    finding = _answered("blob", "allow", 404, code="BlobNotFound").findings[0]
    assert finding.code == "BLOB_NOT_FOUND"
    lines = finding.fix_lines()
    listing = (f"az storage blob list --blob-endpoint {ACCOUNT} --container-name reports --auth-mode login "
               "--include d --query '[?deleted].name' -o tsv")
    assert lines[0].startswith(f"az storage blob list --blob-endpoint {ACCOUNT} --container-name reports ")
    assert "--include" not in lines[0]
    assert lines[1].startswith(listing)
    assert lines[2] == (f"# if the second list names daily.csv, it was deleted: az storage blob undelete --blob-endpoint "
                        f"{ACCOUNT} --container-name reports --name daily.csv --auth-mode login")
    assert lines[3] == "# else fix the container/blob in harness.yaml, or upload the blob"
    # a missing container is not a deleted blob: its own list and its container restore, no blob undelete
    container = _answered("blob", "allow", 404, code="ContainerNotFound").findings[0].fix_lines()
    assert not any("undelete" in line or "--include d" in line for line in container)


def test_an_access_policy_vault_needs_set_policy_not_a_role() -> None:
    outcome = _answered("keyvault_secret", "allow", 403, code="Forbidden", innererror="AccessDenied")
    finding = outcome.findings[0]
    assert finding.code == "KEYVAULT_ACCESS_POLICY_MISSING"
    assert finding.fix_lines()[0] == (
        "az keyvault set-policy --name finance-kv --object-id '<principal-id>' --secret-permissions get"
    )
    rbac = _answered("keyvault_secret", "allow", 403, code="Forbidden", innererror="ForbiddenByRbac")
    assert rbac.findings[0].code == "ACCESS_DENIED_UNEXPECTEDLY"


def test_an_unaccepted_token_on_an_allow_target_is_not_a_missing_role() -> None:
    outcome = _answered("keyvault_secret", "allow", 401, code="Unauthorized", innererror="AKV10032")
    assert outcome.findings[0].code == "ACCESS_UNAUTHENTICATED"


def test_fixes_name_the_resource_arm_listed_for_the_url() -> None:
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url="https://127.0.0.1:8443/", secret="db-password",
                                 expect="allow")
    ctx = context_for()
    assert ctx.facts.pod is not None
    vault_id = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"
    ctx.cluster.access_resources = {"https://127.0.0.1:8443": {"id": vault_id, "name": "finance-kv",
                                                               "resource_group": "myRg"}}
    step = {"name": "access", "index": 0, "status": "fail", "outcome": "deny",
            "evidence": {"http_status": 403, "code": "Forbidden", "innererror": "ForbiddenByRbac"}}
    ctx.facts.pod.probe = {"steps": [step]}
    lines = access_outcome(ctx, 0, check).findings[0].fix_lines()
    grant = next(line for line in lines if line.startswith("az role assignment create"))
    assert grant.endswith(f"--scope {vault_id}")
    step["evidence"] = {"http_status": 403, "code": "Forbidden", "innererror": "ForbiddenByFirewall"}
    firewall = access_outcome(ctx, 0, check).findings[0]
    assert firewall.fix_lines()[0] == "az keyvault network-rule list --name finance-kv"


def test_the_cluster_identity_is_checked_against_the_expectation() -> None:
    def cluster(identity: dict[str, Any]) -> ClusterFacts:
        body = {"properties": {"oidcIssuerProfile": {"enabled": True, "issuerURL": ISSUER}}, "identity": identity}
        return ClusterFacts(time.time(), arm_cluster=Fetched("https://arm/cluster", 200, body))

    def check(facts: ClusterFacts, expected: str = "userAssigned") -> Any:
        results = run_cluster_checks(facts, None, ExpectConfig(cluster_identity=expected))
        return next(r for r in results if r.id == "cluster.identity_type")

    one = {"type": "UserAssigned", "userAssignedIdentities": {"/subscriptions/s/x/cp": {}}}
    assert check(cluster(one)).status == PASS
    system = check(cluster({"type": "SystemAssigned"}))
    assert system.status == FAIL and system.findings[0].code == "CLUSTER_IDENTITY_UNEXPECTED"
    assert system.findings[0].fix_lines()[0].startswith("az aks update --resource-group '<cluster-resource-group>'")
    assert "--enable-managed-identity --assign-identity" in system.findings[0].fix_lines()[0]
    assert check(cluster({"type": "SystemAssigned"}), "any").status == PASS
    two = {"type": "UserAssigned", "userAssignedIdentities": {"/a": {}, "/b": {}}}
    assert check(cluster(two)).status == WARN
    assert check(ClusterFacts(time.time())).status == SKIP



# ---------------------------------------------------------------- why an RBAC read was refused

VAULT_ID = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"
OTHER_VAULT_ID = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/platform-kv"
SECRETS_USER_ID = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/4633458b"
READER_ID = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/21090545"
KV_CONTRIBUTOR_ID = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/f25e0fa2"


def _rbac_refused(assignments: list[tuple[str, str, str]], now: float | None = None,
                  for_client_id: tuple[tuple[str, str, str], ...] = (),
                  for_former: tuple[tuple[str, str, str], ...] = ()) -> Finding:
    """A ForbiddenByRbac read of finance-kv/db-password; ``assignments`` are (role definition, scope, createdOn),
    ``for_client_id`` those that name the identity's client id as their principal id, ``for_former`` those that
    name a deleted service principal of the application (FORMER_PRINCIPAL)."""
    check = KeyVaultSecretAccess(kind="keyvault_secret", vault_url=VAULT, secret="db-password", expect="allow")
    ctx = context_for()
    assert ctx.facts.pod is not None
    if now is not None:
        ctx.now = now
    ctx.cluster.access_resources = {VAULT.rstrip("/"): {"id": VAULT_ID, "name": "finance-kv",
                                                        "resource_group": "myRg"}}
    identity = ctx.facts.identity
    identity.identity = {"properties": {"principalId": "22222222-3333-4444-5555-666666666666", "clientId": CLIENT}}
    identity.role_assignments = [
        {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/a{i}",
         "properties": {"roleDefinitionId": role, "scope": scope, "createdOn": created}}
        for i, (role, scope, created) in enumerate(assignments)
    ]
    identity.client_id_role_assignments = [
        {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/c{i}",
         "properties": {"roleDefinitionId": role, "scope": scope, "createdOn": created, "principalId": CLIENT}}
        for i, (role, scope, created) in enumerate(for_client_id)
    ]
    identity.former_principal_role_assignments = [
        {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/f{i}",
         "properties": {"roleDefinitionId": role, "scope": scope, "createdOn": created, "principalId": FORMER_PRINCIPAL,
                        "principalType": "ServicePrincipal"}}
        for i, (role, scope, created) in enumerate(for_former)
    ]
    identity.role_names = {SECRETS_USER_ID.lower(): "Key Vault Secrets User", READER_ID.lower(): "Key Vault Reader",
                           KV_CONTRIBUTOR_ID.lower(): "Key Vault Contributor"}
    identity.role_permissions = {
        KV_CONTRIBUTOR_ID.lower(): {"actions": ["Microsoft.KeyVault/*"], "dataActions": []},
        SECRETS_USER_ID.lower(): {"dataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action",
                                                  "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]},
        READER_ID.lower(): {"actions": ["Microsoft.KeyVault/*/read"], "dataActions": [
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]},
    }
    step = {"name": "access", "index": 0, "status": "fail", "outcome": "deny",
            "evidence": {"http_status": 403, "code": "Forbidden", "innererror": "ForbiddenByRbac"}}
    ctx.facts.pod.probe = {"steps": [step]}
    return access_outcome(ctx, 0, check).findings[0]


OLD = "2024-01-01T00:00:00.0000000Z"


def test_no_fitting_role_anywhere_is_a_missing_assignment_with_the_real_scope() -> None:
    finding = _rbac_refused([])
    assert finding.code == "ROLE_ASSIGNMENT_MISSING"
    assert finding.fix_lines()[0].endswith(f"--role 'Key Vault Secrets User' --scope {VAULT_ID}")


def test_a_role_assigned_to_the_client_id_as_object_id_is_named_and_its_assignment_deleted() -> None:
    """az role assignment create --assignee-object-id <client id> --assignee-principal-type ServicePrincipal: ARM
    takes it (no principal is looked up when the type is given) and it grants nothing. The finding said only
    that no assignment allows the read; it now names that assignment and deletes it after the right grant."""
    finding = _rbac_refused([], for_client_id=((SECRETS_USER_ID, VAULT_ID, OLD),))
    assert finding.code == "ROLE_ASSIGNMENT_MISSING"
    assert f"is assigned to the client id {CLIENT} as its principal id" in finding.message
    lines = finding.fix_lines()
    assert "--assignee-object-id 22222222-3333-4444-5555-666666666666" in lines[0]
    assert lines[-1] == f"az role assignment delete --ids {VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/c0"
    assert "client id" not in _rbac_refused([], for_client_id=((READER_ID, VAULT_ID, OLD),)).message  # no read


FORMER_PRINCIPAL = "99999999-8888-7777-6666-555555555555"


def test_a_role_left_for_a_deleted_service_principal_is_named_and_deleted_after_the_grant() -> None:
    """az ad sp delete, then az ad sp create: the service principal has a new object id, and the vault's role
    assignment still names the deleted one (ARM keeps it). ROLE_ASSIGNMENT_MISSING said only that the identity holds
    no assignment allowing the read; it now names the stale one and its principal id, and its fix grants the live
    service principal first, then deletes the stale assignment."""
    finding = _rbac_refused([], for_former=((SECRETS_USER_ID, VAULT_ID, OLD),))
    assert finding.code == "ROLE_ASSIGNMENT_MISSING"
    assert (f"Key Vault Secrets User on {VAULT_ID} is assigned to principal id {FORMER_PRINCIPAL}, which is no "
            "longer any principal") in finding.message
    assert "deleted and made again (a new object id, 22222222-3333-4444-5555-666666666666)" in finding.message
    lines = [line for line in finding.fix_lines() if not line.startswith("#")]
    assert lines[0].startswith("az role assignment create --assignee-object-id 22222222-3333-4444-5555-666666666666")
    assert lines[-1] == f"az role assignment delete --ids {VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/f0"
    assert finding.evidence["assignments_naming_deleted_service_principal"] == [
        {"id": f"{VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/f0", "principal_id": FORMER_PRINCIPAL}]
    # one that would not grant the read, or on another vault, is not this read's cause
    for other in ((READER_ID, VAULT_ID, OLD), (SECRETS_USER_ID, OTHER_VAULT_ID, OLD)):
        assert FORMER_PRINCIPAL not in _rbac_refused([], for_former=(other,)).message


def test_a_fitting_role_on_another_vault_is_the_wrong_scope() -> None:
    finding = _rbac_refused([(SECRETS_USER_ID, OTHER_VAULT_ID, OLD)])
    assert finding.code == "ROLE_WRONG_SCOPE" and "platform-kv" in finding.message
    assert finding.fix_lines()[-1] == (
        f"az role assignment delete --ids {OTHER_VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/a0"
    )


def test_a_role_on_another_secret_is_fixed_on_this_secret_not_the_vault() -> None:
    """Roles given per secret (az role assignment create --scope VAULT_ID/secrets/other): the fix keeps that grain and
    grants Key Vault Secrets User on the secret read, not on the whole vault."""
    finding = _rbac_refused([(SECRETS_USER_ID, f"{VAULT_ID}/secrets/other-secret", OLD)])
    assert finding.code == "ROLE_WRONG_SCOPE"
    assert finding.fix_lines()[0].endswith(f"--role 'Key Vault Secrets User' --scope {VAULT_ID}/secrets/db-password")
    mixed = _rbac_refused([(SECRETS_USER_ID, f"{VAULT_ID}/secrets/other-secret", OLD),
                           (SECRETS_USER_ID, OTHER_VAULT_ID, OLD)])
    assert mixed.fix_lines()[0].endswith(f"--scope {VAULT_ID}")


def test_a_control_plane_role_at_the_right_scope_is_insufficient() -> None:
    finding = _rbac_refused([(READER_ID, VAULT_ID, OLD)])
    assert finding.code == "ROLE_INSUFFICIENT" and "Key Vault Reader" in finding.message


def test_an_insufficient_privileged_role_is_removed_after_the_read_role_is_granted() -> None:
    """az role assignment create --role 'Key Vault Contributor' --scope <group> in place of Key Vault Secrets User
    (found breaking the lab by hand with az): ROLE_INSUFFICIENT granted the read role and left the broad one, which
    only the inventory's ROLE_OVERLY_BROAD named (not in a --workload run). The fix now ends by removing it, after the
    grant; a control-plane role that is not privileged (Key Vault Reader) is left alone."""
    group = "/subscriptions/s/resourceGroups/myRg"
    finding = _rbac_refused([(KV_CONTRIBUTOR_ID, group, OLD)])
    lines = finding.fix_lines()
    assert finding.code == "ROLE_INSUFFICIENT"
    assert lines[0].startswith("az role assignment create ") and "'Key Vault Secrets User'" in lines[0]
    assert lines[-2].startswith("# then remove Key Vault Contributor, if nothing else the workload does needs it")
    assert lines[-1] == f"az role assignment delete --ids {group}/providers/Microsoft.Authorization/roleAssignments/a0"
    assert not any("delete" in line for line in _rbac_refused([(READER_ID, VAULT_ID, OLD)]).fix_lines())


def test_a_fitting_role_on_a_parent_scope_that_is_young_is_propagating() -> None:
    finding = _rbac_refused([(SECRETS_USER_ID, "/subscriptions/s/resourceGroups/myRg", "2026-12-04T21:00:00Z")],
                            now=datetime(2026, 12, 4, 21, 2, tzinfo=UTC).timestamp())
    assert finding.code == "ROLE_PROPAGATION_PENDING" and "120 s ago" in finding.message
    assert finding.fix_lines()[0].startswith("# wait a few minutes")


def test_role_wildcards_and_exclusions_decide_what_a_role_grants() -> None:
    action = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
    assert grants({"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"]}, action)
    assert not grants({"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"],
                       "notDataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"]}, action)
    assert not grants({"actions": ["*"]}, action)  # Owner/Contributor: control plane only
    assert covers("/subscriptions/s", VAULT_ID + "/secrets/x") and not covers(OTHER_VAULT_ID, VAULT_ID)
    assert not covers(VAULT_ID, VAULT_ID + "2")


@pytest.mark.parametrize("edited", [
    {"matchLabels": {"team": "finance"}},
    None,
    {"matchLabels": {"azure.workload.identity/use": "true", "team": "finance"}},
    {"matchLabels": {"azure.workload.identity/use": "true"},
     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]},
])
def test_an_object_selector_edited_by_hand_is_put_back_by_a_patch_not_a_reinstall(
    edited: dict[str, Any] | None
) -> None:
    """kubectl edit of the webhook's objectSelector (another label; or removed, which the API server stores as
    {}): helm upgrade's three-way merge would add the chart's label beside the one added by hand, so the fix is a
    JSON patch that tests the webhook's name at its index and replaces the selector with the shipped one."""
    from harness.checks.cluster import ClusterContext, webhook_object_selector

    hook: dict[str, Any] = {"name": "mutation.azure-workload-identity.io", "failurePolicy": "Fail"}
    if edited is not None:
        hook["objectSelector"] = edited
    configuration = {"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"},
                     "webhooks": [{"name": "other.example.com"}, hook]}
    facts = ClusterFacts(time.time(), webhook_configurations=[configuration], webhook_deployments=[{"metadata": {
        "namespace": "azure-workload-identity-system", "name": "azure-wi-webhook-controller-manager",
        "annotations": {"meta.helm.sh/release-name": "wi-webhook"}}}])
    outcome = webhook_object_selector(ClusterContext(facts, None, ExpectConfig()))
    assert outcome.status == FAIL
    if edited and "azure.workload.identity/use" in edited.get("matchLabels", {}):  # narrowed, not missing
        assert "also requires " in outcome.message and "not mutated" in outcome.message
        assert ("team=finance" in outcome.message) != ("tier In (web)" in outcome.message)
    lines = outcome.findings[0].fix_lines()
    assert not any(line.startswith(("helm upgrade", "az aks update")) for line in lines)
    patch = next(shlex.split(line) for line in lines if line.startswith("kubectl patch mutatingwebhookconfiguration"))
    patched = _json_patch(configuration, json.loads(patch[patch.index("-p") + 1]))
    assert patched["webhooks"][0] == {"name": "other.example.com"}
    facts.webhook_configurations = [patched]
    assert webhook_object_selector(ClusterContext(facts, None, ExpectConfig())).status == PASS


def test_a_labelled_pod_the_narrowed_object_selector_skips_is_named_with_the_patch() -> None:
    pod = {"metadata": {"name": "p", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"containers": [{"name": "probe"}]}}
    ctx = context_for(pod)
    ctx.cluster.webhook_configurations = [{"metadata": {"name": "azure-wi-webhook"}, "webhooks": [
        {"name": "mutation.azure-workload-identity.io", "objectSelector": {
            "matchLabels": {"azure.workload.identity/use": "true"},
            "matchExpressions": [{"key": "team", "operator": "In", "values": ["finance"]}]}}]}]
    outcome = pod_mutated(ctx)
    assert outcome.status == FAIL and "objectSelector also requires team In (finance)" in outcome.message
    assert outcome.findings[0].fix_lines()[0].startswith("kubectl patch mutatingwebhookconfiguration azure-wi-webhook")
    pod["metadata"]["labels"]["team"] = "finance"  # meets it: the question of timing stands
    assert "was it created before the webhook was ready" in pod_mutated(ctx).message


def test_a_webhook_whose_new_pods_the_api_server_refuses_names_the_refusal_not_a_crash() -> None:
    """A ResourceQuota in the webhook's namespace refuses its rollout's new pod (ReplicaFailure FailedCreate):
    the finding names the quota and its look, not the pods' logs and the ConfigMap; with no replica left ready
    (all refused) it is WEBHOOK_NOT_READY with the same cause."""
    from harness.checks.cluster import ClusterContext, webhook_ready

    refusal = ('pods "azure-wi-webhook-controller-manager-x-y" is forbidden: exceeded quota: q, requested: pods=1, '
               "used: pods=2, limited: pods=2")
    deployment = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 2},
                  "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 0,
                             "unavailableReplicas": 1,
                             "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                             "message": refusal}]}}
    facts = ClusterFacts(time.time(), webhook_deployments=[deployment])
    outcome = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert outcome.status == WARN and outcome.findings[0].code == "WEBHOOK_DEGRADED"
    assert refusal in outcome.message
    assert outcome.findings[0].fix_lines() == [
        "kubectl -n kube-system describe deployment/azure-wi-webhook-controller-manager",
        "kubectl describe resourcequota,limitrange -n kube-system",
        "# a person decides: change what refuses the webhook's pods (a ResourceQuota or LimitRange of the "
        "namespace); its ReplicaSet creates them once they are admitted",
    ]
    deployment["status"].update(readyReplicas=0, availableReplicas=0)
    gone = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert gone.status == FAIL and gone.findings[0].code == "WEBHOOK_NOT_READY" and refusal in gone.message


def test_a_webhook_deployment_scaled_to_zero_by_hand_is_named_so() -> None:
    """kubectl scale -n kube-system deploy/azure-wi-webhook-controller-manager --replicas=0: the finding said only
    "no ready webhook replica" (its fix scaled it back, but the message did not say it had been scaled down)."""
    from harness.checks.cluster import ClusterContext, webhook_ready

    deployment = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 0}, "status": {"observedGeneration": 2}}
    facts = ClusterFacts(time.time(), webhook_deployments=[deployment])
    (finding,) = webhook_ready(ClusterContext(facts, None, ExpectConfig())).findings
    assert finding.code == "WEBHOOK_NOT_READY"
    assert finding.message == ("no ready webhook replica: its Deployment kube-system/azure-wi-webhook-controller-"
                               "manager is scaled to 0 replicas")
    deployment["spec"]["replicas"] = 2  # wanted, none ready: not a scale-down
    (finding,) = webhook_ready(ClusterContext(facts, None, ExpectConfig())).findings
    assert finding.message == "no ready webhook replica"


def test_a_webhook_whose_pods_no_node_takes_names_the_scheduler_not_a_restart() -> None:
    """kubectl drain (or an upgrade) cordons the one node: the webhook's evicted pods come back Pending, 'node(s)
    were unschedulable'. A rollout restart only makes more pods that wait the same way, so WEBHOOK_NOT_READY names
    the scheduler's reason and leaves the uncordon to a person; a taint names the node pool's taints."""
    from harness.checks.cluster import ClusterContext, webhook_ready

    cordoned = ("0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 "
                "Preemption is not helpful for scheduling.")
    deployment = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 2}, "status": {"replicas": 2, "unavailableReplicas": 2}}
    facts = ClusterFacts(time.time(), webhook_deployments=[deployment],
                         webhook_unschedulable=[
                             WebhookPodUnscheduled("kube-system", "azure-wi-webhook-a", "Unschedulable", cordoned),
                             WebhookPodUnscheduled("kube-system", "azure-wi-webhook-b", "Unschedulable", cordoned)])
    outcome = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert outcome.status == FAIL and outcome.findings[0].code == "WEBHOOK_NOT_READY"
    assert outcome.findings[0].message == ("no ready webhook replica: the webhook's pods cannot be scheduled: "
                                           f"kube-system/azure-wi-webhook-a and 1 other: {cordoned}")
    # the facts are structured; the check renders each pod's line for the report
    assert outcome.findings[0].evidence["unschedulable"] == [f"kube-system/azure-wi-webhook-a: {cordoned}",
                                                             f"kube-system/azure-wi-webhook-b: {cordoned}"]
    lines = outcome.findings[0].fix_lines()
    assert lines[:2] == ["kubectl -n kube-system get pods -l azure-workload-identity.io/system=true -o wide",
                         "kubectl get nodes   # SchedulingDisabled: cordoned"]
    assert lines[2].startswith("# a person decides: a cordoned node takes no new pods")
    assert not [line for line in lines if "rollout restart" in line]
    tainted = ("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/1 nodes "
               "are available: 1 Preemption is not helpful for scheduling.")
    facts.webhook_unschedulable = [WebhookPodUnscheduled("kube-system", "azure-wi-webhook-c", "Unschedulable", tainted)]
    deployment["status"] = {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1}
    degraded = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert degraded.status == WARN and degraded.findings[0].code == "WEBHOOK_DEGRADED"
    assert "custom-columns=NAME:.metadata.name,TAINTS:.spec.taints" in degraded.findings[0].fix_lines()[1]


def test_a_deleted_webhook_certificate_secret_is_named_and_made_again_not_restarted() -> None:
    """kubectl delete secret azure-wi-webhook-server-cert, then the webhook's pods restarted: the new pods cannot
    mount their cert volume (FailedMount) and never start, so kubectl logs shows nothing and a rollout restart
    makes more such pods. cert-controller's rotator fills the Secret but never creates it (refreshCertIfNeeded reads
    it first): the fix makes it again, empty, and waits for the rollout. Another missing volume is named, no
    restart."""
    from harness.checks.cluster import ClusterContext, webhook_ready
    from harness.checks.pod import _webhook_pods_back
    from harness.commands import render_all

    mount = 'MountVolume.SetUp failed for volume "cert" : secret "azure-wi-webhook-server-cert" not found'
    deployment = {"metadata": {"namespace": "azure-workload-identity-system",
                               "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 2}, "status": {"replicas": 2, "unavailableReplicas": 2}}
    facts = ClusterFacts(time.time(), webhook_deployments=[deployment], webhook_not_started=[
        WebhookPodNotStarted("azure-workload-identity-system", "wh-a", "FailedMount", mount),
        WebhookPodNotStarted("azure-workload-identity-system", "wh-b", "FailedMount", mount)])
    outcome = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert outcome.status == FAIL and outcome.findings[0].code == "WEBHOOK_NOT_READY"
    finding = outcome.findings[0]
    assert "certificate Secret azure-workload-identity-system/azure-wi-webhook-server-cert is gone" in finding.message
    assert mount in finding.message
    lines = finding.fix_lines()
    assert lines[1:] == [
        "kubectl -n azure-workload-identity-system create secret generic azure-wi-webhook-server-cert",
        "kubectl -n azure-workload-identity-system rollout status deployment/azure-wi-webhook-controller-manager "
        "--timeout=180s"]
    assert not [line for line in lines if "rollout restart" in line or " logs " in line]
    deployment["status"] = {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1}
    facts.webhook_not_started = facts.webhook_not_started[:1]
    degraded = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert degraded.status == WARN and degraded.findings[0].code == "WEBHOOK_DEGRADED"
    assert degraded.findings[0].fix_lines() == lines
    other = 'MountVolume.SetUp failed for volume "extra" : configmap "proxy-ca" not found'
    facts.webhook_not_started = [WebhookPodNotStarted("azure-workload-identity-system", "wh-a", "FailedMount", other)]
    named = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert named.findings[0].message == ("the webhook's pods are scheduled but never start: "
                                         f"azure-workload-identity-system/wh-a: FailedMount: {other}")
    assert named.findings[0].evidence["not_started"] == [f"azure-workload-identity-system/wh-a: FailedMount: {other}"]
    assert not [line for line in named.findings[0].fix_lines() if "create secret" in line or "rollout restart" in line]
    ctx = SimpleNamespace(cluster=facts)
    waiting = render_all(_webhook_pods_back(ctx, "azure-workload-identity-system"))  # type: ignore[arg-type]
    assert len(waiting) == 1 and "never start" in waiting[0] and "WEBHOOK_NOT_READY" in waiting[0]


def test_a_webhook_rollout_whose_new_pods_crash_is_degraded_although_the_old_pods_serve() -> None:
    """kubectl rollout restart after azure-wi-webhook-config lost AZURE_TENANT_ID: the new pod panics, the old
    ReplicaSet's two pods keep serving, readyReplicas 2 of 2; status.replicas 3, updatedReplicas 1."""
    from harness.checks.cluster import ClusterContext, webhook_ready

    deployment = {"metadata": {"namespace": "azure-workload-identity-system",
                               "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 2},
                  "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 1,
                             "unavailableReplicas": 1}}
    facts = ClusterFacts(time.time(), webhook_deployments=[deployment])
    outcome = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert outcome.status == WARN and outcome.findings[0].code == "WEBHOOK_DEGRADED"
    assert "1 of 2 pods run the current template, 1 unavailable" in outcome.message
    assert any("rollout undo deployment/azure-wi-webhook-controller-manager" in line
               for line in outcome.findings[0].fix_lines())
    deployment["status"] = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2}
    assert webhook_ready(ClusterContext(facts, None, ExpectConfig())).status == PASS


def test_a_workloads_webhook_unavailable_prints_no_restart_for_pods_no_node_takes() -> None:
    """WEBHOOK_UNAVAILABLE's own lines for a webhook whose pods wait Pending (a cordoned node): no rollout restart
    (it makes more pods that wait the same way); it points at the run's WEBHOOK_NOT_READY, which names the cause."""
    from types import SimpleNamespace

    from harness.checks.pod import _webhook_pods_back
    from harness.commands import render_all

    deployment = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 2}}
    cluster = ClusterFacts(time.time(), webhook_deployments=[deployment])
    ctx = SimpleNamespace(cluster=cluster)
    restart = render_all(_webhook_pods_back(ctx, "kube-system"))  # type: ignore[arg-type]
    assert restart[0] == "kubectl -n kube-system rollout restart deployment/azure-wi-webhook-controller-manager"
    cluster.webhook_unschedulable = [WebhookPodUnscheduled("kube-system", "azure-wi-webhook-a", "Unschedulable",
                                                           "0/1 nodes are available: 1 node(s) were unschedulable.")]
    waiting = render_all(_webhook_pods_back(ctx, "kube-system"))  # type: ignore[arg-type]
    assert len(waiting) == 1 and waiting[0].startswith("# the webhook's pods wait for a node") and \
        "WEBHOOK_NOT_READY" in waiting[0]


def test_a_webhook_certificate_the_api_server_does_not_trust_gets_what_puts_ca_bundle_back() -> None:
    """WEBHOOK_UNAVAILABLE for a TLS failure (x509): with cert-controller on, a restart of the webhook (it injects
    caBundle as it starts) and the can-i look at its right to update the configuration; with
    --disable-cert-rotation, the Secret's ca.crt copied into caBundle (one shell word around $CA), or, for an
    expired certificate, the flag taken off at its index so the rotator renews it."""
    from harness.checks.pod import _webhook_certificate_fixes
    from harness.commands import render_all

    manager = {"name": "manager", "args": ["--log-level=info", "--disable-cert-rotation"]}
    deployment = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 2, "template": {"spec": {
                      "serviceAccountName": "azure-wi-webhook-admin", "containers": [manager],
                      "volumes": [{"name": "cert", "secret": {"secretName": "azure-wi-webhook-server-cert"}}]}}}}
    mwc = {"metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"},
           "webhooks": [{"name": "other.example.com"}, {"name": "mutation.azure-workload-identity.io"}]}
    ctx = SimpleNamespace(cluster=ClusterFacts(time.time(), webhook_deployments=[deployment],
                                               webhook_configurations=[mwc]))
    unknown = render_all(_webhook_certificate_fixes(ctx, "kube-system",  # type: ignore[arg-type]
                                                    "tls: failed to verify certificate: x509: certificate signed by "
                                                    "unknown authority"))
    assert unknown[1] == ("CA=$(kubectl -n kube-system get secret azure-wi-webhook-server-cert -o "
                          "'jsonpath={.data.ca\\.crt}')")
    assert unknown[2] == ("kubectl patch mutatingwebhookconfiguration azure-wi-webhook-mutating-webhook-configuration "
                          "--type json -p '[{\"op\":\"add\",\"path\":\"/webhooks/1/clientConfig/caBundle\",\"value\":\""
                          "'\"$CA\"'\"}]'")
    expired = render_all(_webhook_certificate_fixes(ctx, "kube-system",  # type: ignore[arg-type]
                                                    "tls: failed to verify certificate: x509: certificate has expired "
                                                    "or is not yet valid: current time x is after y"))
    assert expired[1].startswith("kubectl -n kube-system patch deployment/azure-wi-webhook-controller-manager --type "
                                 "json -p '[{\"op\":\"remove\",\"path\":\"/spec/template/spec/containers/0/args/1\"}]'")
    assert expired[2].startswith("kubectl -n kube-system rollout status")
    manager["args"] = ["--log-level=info"]
    rotating = render_all(_webhook_certificate_fixes(ctx, "kube-system",  # type: ignore[arg-type]
                                                     "tls: failed to verify certificate: x509: certificate signed by "
                                                     "unknown authority"))
    assert rotating[0] == "kubectl -n kube-system rollout restart deployment/azure-wi-webhook-controller-manager"
    assert rotating[-1] == ("kubectl auth can-i update mutatingwebhookconfigurations "
                            "--as=system:serviceaccount:kube-system:azure-wi-webhook-admin")


def test_a_webhook_config_map_the_manager_refuses_is_named_and_put_right() -> None:
    """azure-wi-webhook-config edited by hand (an AZURE_ENVIRONMENT go-autorest does not know, no AZURE_TENANT_ID)
    makes every new webhook pod panic at start-up: WEBHOOK_NOT_READY names the key and prints the ConfigMap patch
    (the configured cloud's name, else the closest known one, else a placeholder) then the restart; a stuck rollout
    (old pods still serving) gets the same lines in WEBHOOK_DEGRADED. The az CLI's names (AzureCloud,
    AzureUSGovernment) are valid: go-autorest v0.11.30 maps them."""
    from harness.checks.cluster import ClusterContext, webhook_config_problem, webhook_ready

    assert webhook_config_problem({"AZURE_TENANT_ID": "t", "AZURE_ENVIRONMENT": "AzureUSGovernment"}) is None
    assert webhook_config_problem({"AZURE_TENANT_ID": "t", "AZURE_ENVIRONMENT": "azurecloud"}) is None
    assert webhook_config_problem(None) is None
    assert webhook_config_problem({"AZURE_ENVIRONMENT": "AzurePublicCloud"})[0] == "AZURE_TENANT_ID"  # type: ignore[index]
    key, said, wanted = webhook_config_problem({"AZURE_TENANT_ID": "t", "AZURE_ENVIRONMENT": "AzureUSGov"}) or ("",) * 3
    assert (key, wanted) == ("AZURE_ENVIRONMENT", "AzureUSGovernment") and '"AzureUSGov"' in said
    assert webhook_config_problem({"AZURE_TENANT_ID": "t", "AZURE_ENVIRONMENT": "Moon"})[2] == ""  # type: ignore[index]

    deployment = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"},
                  "spec": {"replicas": 2}, "status": {"replicas": 2, "unavailableReplicas": 2}}
    facts = ClusterFacts(time.time(), webhook_deployments=[deployment],
                         webhook_config={"kube-system": {"AZURE_TENANT_ID": "t", "AZURE_ENVIRONMENT": "AzureUSGov"}})
    outcome = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    finding = outcome.findings[0]
    assert outcome.status == FAIL and finding.code == "WEBHOOK_NOT_READY"
    assert 'has AZURE_ENVIRONMENT "AzureUSGov", which is no Azure cloud the webhook knows' in finding.message
    lines = finding.fix_lines()
    assert ("kubectl -n kube-system patch configmap azure-wi-webhook-config --type merge -p "
            "'{\"data\":{\"AZURE_ENVIRONMENT\":\"AzureUSGovernment\"}}'   # the cluster's cloud") in lines
    assert lines[-2:] == ["kubectl -n kube-system rollout restart deployment/azure-wi-webhook-controller-manager",
                          "kubectl -n kube-system rollout status deployment/azure-wi-webhook-controller-manager "
                          "--timeout=120s"]
    deployment["status"] = {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 1,
                            "unavailableReplicas": 1}
    stuck = webhook_ready(ClusterContext(facts, None, ExpectConfig()))
    assert stuck.status == WARN and stuck.findings[0].code == "WEBHOOK_DEGRADED"
    assert any("patch configmap azure-wi-webhook-config" in line for line in stuck.findings[0].fix_lines())


def test_a_refused_dial_to_another_port_than_the_managers_puts_the_services_target_port_back() -> None:
    """WEBHOOK_UNAVAILABLE: kubectl patch of the webhook Service's targetPort (9444): its pods are ready, the API
    server's dial to the
    endpoint is refused ('dial tcp <ip>:9444: connect: connection refused'). A restart changes nothing; the fix puts
    targetPort 9443 back (a JSON patch testing the Service's port 443 first). A refusal on 9443 itself (the manager
    not listening) keeps the restart."""
    from harness.checks.pod import _refused_port, _service_target_port_back
    from harness.commands import render_all

    message = ('Internal error occurred: failed calling webhook "mutation.azure-workload-identity.io": failed to call '
               'webhook: Post "https://azure-wi-webhook-webhook-service.kube-system.svc:443/mutate-v1-pod?timeout=10s":'
               ' dial tcp 10.244.0.7:9444: connect: connection refused')
    assert _refused_port(message) == 9444
    assert _refused_port(message.replace(":9444", ":9443")) is None
    lines = render_all(_service_target_port_back("kube-system", "azure-wi-webhook-webhook-service", 9444))
    assert lines[-1] == ("kubectl -n kube-system patch service azure-wi-webhook-webhook-service --type json -p "
                         "'[{\"op\":\"test\",\"path\":\"/spec/ports/0/port\",\"value\":443},{\"op\":\"replace\","
                         "\"path\":\"/spec/ports/0/targetPort\",\"value\":9443}]'")


def test_a_tenant_entra_does_not_know_from_the_webhooks_config_map_is_put_right_there() -> None:
    """TENANT_NOT_FOUND where the ServiceAccount names no tenant and the webhook's azure-wi-webhook-config holds
    another tenant than harness.yaml's (kubectl patch of the add-on's ConfigMap, then a webhook restart): the
    tenant came from there, for every pod without the annotation; the ConfigMap is the place to fix it."""
    from harness.checks.exchange import _webhook_config_tenant

    deployment = {"metadata": {"namespace": "kube-system", "name": "azure-wi-webhook-controller-manager"}}
    facts = ClusterFacts(time.time(), webhook_deployments=[deployment],
                         webhook_config={"kube-system": {"AZURE_TENANT_ID": "11111111-2222-3333-4444-555555555555"}})
    ctx = SimpleNamespace(cluster=facts, azure=None, workload=SimpleNamespace(tenant_id="61e011b6-af68-4474-814e-4cd5a2e9cd9f"))
    assert _webhook_config_tenant(ctx) == ("kube-system", "11111111-2222-3333-4444-555555555555")  # type: ignore[arg-type]
    facts.webhook_config["kube-system"]["AZURE_TENANT_ID"] = "61E011B6-AF68-4474-814E-4CD5A2E9CD9F"
    assert _webhook_config_tenant(ctx) is None  # type: ignore[arg-type]
