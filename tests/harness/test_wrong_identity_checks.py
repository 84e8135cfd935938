"""A ServiceAccount annotated with another workload's client id (kubectl annotate --overwrite), judged on plain
facts: the annotation is the cause, named with what Entra answered the pod; the exchange the pod made as that
other identity is skipped because of it (never FIC_PROPAGATION_PENDING from the expected identity's credential);
pods that still carry the expected client id are not "stale"; the inventory says which identity trusts the
ServiceAccount and sets the annotation to it. Propagation is waited on and claimed only for a credential on the
identity the pod exchanges as, written within the window."""

from __future__ import annotations

import time
from typing import Any

from fakeworld import ISSUER
from test_inventory_checks import BACKEND_ID, ORDERS_ID, healthy, sa
from test_inventory_checks import ISSUER as INVENTORY_ISSUER
from test_inventory_checks import run as run_inventory

from harness.checks.context import WorkloadContext
from harness.checks.exchange import exchange_succeeds
from harness.checks.inventory import run_inventory_checks
from harness.checks.live_pods import pod_problems
from harness.checks.model import FAIL, SKIP
from harness.checks.serviceaccount import sa_client_id_annotation
from harness.checks.transient import FIC_PROPAGATION_SECONDS, METADATA_CACHE_AADSTS, retryable_aadsts
from harness.config import WorkloadConfig
from harness.facts import ClusterFacts, IdentityFacts, LivePod, PodFacts, ServiceAccountFacts, WorkloadFacts

EXPECTED = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"  # finance's identity, as harness.yaml names it
OTHER = "9c0d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"  # orders' identity, annotated by hand
SUBJECT = "system:serviceaccount:finance:backend-sa"
NOW = time.mktime((2026, 12, 5, 1, 0, 0, 0, 0, 0))
CLIENT_ID = "azure.workload.identity/client-id"


def stamp(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.1234567Z", time.gmtime(NOW - seconds_ago))


def credential(written_seconds_ago: float | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"name": "fed-cred-backend", "properties": {
        "issuer": ISSUER, "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]}}
    if written_seconds_ago is not None:
        item["systemData"] = {"createdAt": stamp(written_seconds_ago + 86400),
                              "lastModifiedAt": stamp(written_seconds_ago)}
    return item


def expected_identity(*credentials: dict[str, Any]) -> IdentityFacts:
    return IdentityFacts(
        configured=True, kind="managed_identity",
        resource_id="/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/myRg/providers/"
                    "Microsoft.ManagedIdentity/userAssignedIdentities/myWorkloadId",
        identity={"properties": {"clientId": EXPECTED, "principalId": "p"}},
        federated_credentials=list(credentials),
    )


def context(annotated: str, exchanged_as: str, aadsts: str = "AADSTS700213",
            identity: IdentityFacts | None = None, configured: str | None = EXPECTED) -> WorkloadContext:
    error = {"kind": "entra_error", "http_status": 401, "error": "invalid_client", "aadsts": aadsts,
             "message": f"{aadsts}: No matching federated identity record found for presented assertion subject"}
    probe = {"steps": [
        {"name": "token", "status": "pass", "evidence": {"claims": {"iss": ISSUER, "sub": SUBJECT}}},
        {"name": "exchange", "status": "fail", "error": error,
         "evidence": {"client_id": exchanged_as, "token_url": "https://login/t/oauth2/v2.0/token"}},
    ]}
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", NOW,
                          ServiceAccountFacts("finance", "backend-sa", True, True, {CLIENT_ID: annotated}),
                          identity or expected_identity(credential()),
                          PodFacts("finance", "wi-probe", created=True, probe=probe))
    cluster = ClusterFacts(NOW, issuer_url=ISSUER, issuer_source="arm")
    workload = WorkloadConfig(namespace="finance", service_account="backend-sa", client_id=configured)
    return WorkloadContext(facts, workload, cluster, None, NOW)


def test_the_annotation_is_the_cause_and_the_exchange_as_the_other_identity_is_skipped_for_it() -> None:
    ctx = context(annotated=OTHER, exchanged_as=OTHER)
    annotation = sa_client_id_annotation(ctx)
    assert annotation.status == FAIL
    (mismatch,) = annotation.findings
    assert mismatch.code == "SA_CLIENT_ID_MISMATCH"
    assert f"the pod exchanges as {OTHER}, which has no federated credential for {SUBJECT}" in mismatch.message
    assert mismatch.fix_lines()[0] == (f"kubectl annotate serviceaccount -n finance backend-sa {CLIENT_ID}={EXPECTED} "
                                       "--overwrite")

    exchange = exchange_succeeds(ctx)
    assert exchange.status == SKIP and exchange.findings == []
    assert exchange.blocked_by == "sa.client_id_annotation"
    assert exchange.message.startswith("skipped because sa.client_id_annotation failed")
    assert exchange.evidence["exchanged_as"] == OTHER and exchange.evidence["credentials_read_of"] == EXPECTED


def test_without_the_annotations_fault_a_matching_young_credential_is_still_propagation() -> None:
    young = context(annotated=EXPECTED, exchanged_as=EXPECTED, identity=expected_identity(credential(30)))
    (pending,) = exchange_succeeds(young).findings
    assert pending.code == "FIC_PROPAGATION_PENDING" and "written 30 s ago" in pending.message


def test_a_matching_credential_older_than_the_window_is_not_propagation() -> None:
    old = context(annotated=EXPECTED, exchanged_as=EXPECTED,
                  identity=expected_identity(credential(FIC_PROPAGATION_SECONDS + 60)))
    outcome = exchange_succeeds(old)
    assert outcome.status == FAIL
    (found,) = outcome.findings
    assert found.code == "FIC_SUBJECT_MISMATCH" and "not propagation" in found.message
    lines = found.fix_lines()
    assert lines[0].startswith("az identity federated-credential delete --name fed-cred-backend ")
    assert lines[1].startswith("az identity federated-credential create --name fed-cred-backend ")


def test_propagation_is_waited_on_only_for_the_identity_the_pod_exchanges_as_within_the_window() -> None:
    fic_codes = [70021, 700211, 700213, *METADATA_CACHE_AADSTS]
    young = expected_identity(credential(30))
    assert retryable_aadsts(young, ISSUER, SUBJECT, EXPECTED, NOW) == fic_codes
    assert retryable_aadsts(young, ISSUER, SUBJECT, EXPECTED.upper(), NOW) == fic_codes
    assert retryable_aadsts(young, ISSUER, SUBJECT, OTHER, NOW) == list(METADATA_CACHE_AADSTS)
    old = expected_identity(credential(FIC_PROPAGATION_SECONDS + 1))
    assert retryable_aadsts(old, ISSUER, SUBJECT, EXPECTED, NOW) == list(METADATA_CACHE_AADSTS)
    unknown_age = expected_identity(credential())  # Microsoft Graph's credentials carry no time
    assert retryable_aadsts(unknown_age, ISSUER, SUBJECT, EXPECTED, NOW) == fic_codes


def live(client_id: str) -> LivePod:
    pod = {"metadata": {"name": "backend-1", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"containers": [{"name": "backend", "env": [{"name": "AZURE_CLIENT_ID", "value": client_id},
                                                                {"name": "AZURE_TENANT_ID", "value": "t"}]}]}}
    return LivePod(pod=pod, owner_kind="Deployment", owner_name="backend", owner={"spec": {"template": {
        "spec": {"containers": [{"name": "backend"}]}}}})


def test_pods_that_carry_the_expected_client_id_are_not_stale_when_the_annotation_is_wrong() -> None:
    annotations = {CLIENT_ID: OTHER}
    assert pod_problems(live(EXPECTED), annotations, {}, EXPECTED) == []
    assert [p.code for p in pod_problems(live(EXPECTED), annotations, {})] == ["POD_STALE_CLIENT_ID"]
    stale = pod_problems(live("11111111-2222-4333-8444-555555555555"), {CLIENT_ID: EXPECTED}, {}, EXPECTED)
    assert [p.code for p in stale] == ["POD_STALE_CLIENT_ID"]


def test_the_inventory_names_the_identity_that_trusts_the_service_account_and_sets_the_annotation() -> None:
    facts = healthy(service_accounts=[sa("finance", "backend-sa", ORDERS_ID), sa("orders", "orders-sa", ORDERS_ID)])
    results = {r.id: r for r in run_inventory(facts)}
    findings = {f.code: f for r in results.values() for f in r.findings}
    assert "SA_WITHOUT_FIC" not in findings
    wrong = findings["SA_ANNOTATION_WRONG_IDENTITY"]
    assert wrong.severity == "error"
    assert ("finance/backend-sa names managed identity ordersWorkloadId" in wrong.message
            and "managed identity myWorkloadId" in wrong.message)
    assert wrong.fix_lines()[0] == (f"kubectl annotate serviceaccount -n finance backend-sa {CLIENT_ID}={BACKEND_ID} "
                                    "--overwrite")
    assert not any("federated-credential create" in line for line in wrong.fix_lines())


def test_when_harness_yaml_names_the_annotated_identity_the_credential_is_added_to_it_not_the_annotation_moved() -> None:
    """harness.yaml declares finance/backend-sa's identity and the annotation agrees: the credential another
    identity holds for the ServiceAccount (made on the wrong identity) does not make the annotation wrong. The
    inventory then asks for the credential on the declared identity, as the workload's FIC_MISSING does, instead of
    an annotation that sends the workload to an identity without its roles."""
    facts = healthy(service_accounts=[sa("finance", "backend-sa", ORDERS_ID), sa("orders", "orders-sa", ORDERS_ID)])
    cluster = ClusterFacts(collected_at=0.0, issuer_url=INVENTORY_ISSUER, context="ctx", server="https://kube")
    declared = WorkloadConfig(namespace="finance", service_account="backend-sa", client_id=ORDERS_ID)
    results = run_inventory_checks(facts, cluster, None, None, [declared])
    findings = {f.code: f for r in results for f in r.findings}
    assert "SA_ANNOTATION_WRONG_IDENTITY" not in findings
    missing = findings["SA_WITHOUT_FIC"]
    assert (f"harness.yaml names it, client id {ORDERS_ID}; managed identity myWorkloadId (client id {BACKEND_ID}) "
            "has a credential for finance/backend-sa") in missing.message
    assert any("federated-credential create" in line and "ordersWorkloadId" in line for line in missing.fix_lines())
    assert not any("kubectl annotate" in line for line in missing.fix_lines())
