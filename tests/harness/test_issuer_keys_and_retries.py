"""AADSTS7000272 told apart by the token's kid and the issuer's JWKS, FIC_PROPAGATION_PENDING with the probe's
attempts, and which answers the harness lets the probe wait out: pure functions of plain facts (and one collection
through the fake world, whose pods run the real probe)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fakeworld import ISSUER, FakeWorkload, World

from harness.checks.context import WorkloadContext
from harness.checks.exchange import exchange_succeeds
from harness.checks.model import ERROR, WARNING, Finding
from harness.checks.transient import FIC_PROPAGATION_AADSTS, METADATA_CACHE_AADSTS, retryable_aadsts
from harness.clouds import KNOWN_CLOUDS
from harness.collect.probe_pods import probe_config_for, retry_seconds
from harness.collect.run import Selection, collect_run
from harness.config import AzureConfig, ProbeSettings, WorkloadConfig, parse_config
from harness.facts import ClusterFacts, Fetched, IdentityFacts, PodFacts, ServiceAccountFacts, WorkloadFacts
from probe import retry as probe_retry

CLIENT = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"
SUBJECT = "system:serviceaccount:finance:backend-sa"
JWKS_URI = ISSUER + "openid/v1/jwks"
OLD_KID, NEW_KID = "Jx1-old-key", "Qw9-new-key"
RETRIES = {"attempts": 5, "answers": ["AADSTS7000272"] * 5, "waited_seconds": 30.0, "bound_seconds": 30.0,
           "exhausted": True}
AZURE = AzureConfig.model_validate({"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                                    "subscription_id": "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
                                    "resource_group": "myRg", "cluster_name": "myAks"})


def fic(issuer: str = ISSUER, subject: str = SUBJECT) -> dict[str, Any]:
    return {"name": "fed-cred", "properties": {"issuer": issuer, "subject": subject,
                                               "audiences": ["api://AzureADTokenExchange"]}}


def context(aadsts: str, *, kid: str | None = NEW_KID, published: list[str] | None = (OLD_KID, NEW_KID),
            jwks_status: int = 200, issuer_source: str = "arm", retries: dict[str, Any] | None = RETRIES,
            credentials: list[dict[str, Any]] | None = None, azure: AzureConfig | None = AZURE) -> WorkloadContext:
    header = {"alg": "RS256", **({"kid": kid} if kid else {})}
    error = {"kind": "entra_error", "http_status": 401, "error": "invalid_client", "aadsts": aadsts,
             "message": f"{aadsts}: refused"}
    evidence = {"token_url": "https://login.microsoftonline.com/t/oauth2/v2.0/token", "http_status": 401,
                **({"retries": retries} if retries else {})}
    probe = {"steps": [
        {"name": "token", "status": "pass", "evidence": {"header": header, "claims": {"iss": ISSUER, "sub": SUBJECT}}},
        {"name": "exchange", "status": "fail", "evidence": evidence, "error": error},
    ]}
    jwks = Fetched(JWKS_URI, jwks_status, {"keys": [{"kid": k, "kty": "RSA"} for k in published]}
                   if published is not None and jwks_status == 200 else None,
                   None if jwks_status == 200 else "HTTP error")
    facts = WorkloadFacts("finance/backend-sa", "finance", "backend-sa", time.time(),
                          ServiceAccountFacts("finance", "backend-sa", True, True,
                                              {"azure.workload.identity/client-id": CLIENT}),
                          IdentityFacts(configured=True, kind="managed_identity", federated_credentials=credentials),
                          PodFacts("finance", "p", created=True, probe=probe))
    cluster = ClusterFacts(time.time(), issuer_url=ISSUER, issuer_source=issuer_source, issuer_jwks=jwks)
    workload = WorkloadConfig(namespace="finance", service_account="backend-sa")
    return WorkloadContext(facts, workload, cluster, azure, time.mktime((2026, 5, 4, 10, 0, 0, 0, 0, 0)))


def finding(ctx: WorkloadContext) -> Finding:
    outcome = exchange_succeeds(ctx)
    assert outcome.status == "fail"
    (only,) = outcome.findings
    return only


# ---------------------------------------------------------------- AADSTS7000272


def test_a_published_key_refused_is_entras_older_copy_wait_do_not_rotate() -> None:
    found = finding(context("AADSTS7000272"))
    assert (found.code, found.severity, found.layer) == ("ISSUER_KEYS_NOT_YET_SEEN", WARNING, "entra")
    assert NEW_KID in found.message and JWKS_URI in found.message
    assert "tried 5 times over 30 s (its bound 30 s)" in found.message
    lines = found.fix_lines()
    assert lines[0] == f"curl -sS {JWKS_URI}"
    assert "re-run after " in lines[1] and "do not rotate the keys again" in lines[1]
    assert not any("rotate-signing-keys" in line for line in lines)
    assert found.evidence["token_kid"] == NEW_KID and found.evidence["published_kids"] == [OLD_KID, NEW_KID]


def test_a_key_the_aks_issuer_does_not_publish_is_not_found_and_rotation_is_offered() -> None:
    found = finding(context("AADSTS7000272", published=[OLD_KID]))
    assert (found.code, found.severity, found.layer) == ("ISSUER_KEY_NOT_FOUND", ERROR, "cluster")
    assert f"{NEW_KID} is not among the keys" in found.message and OLD_KID in found.message
    lines = found.fix_lines()
    assert lines[0] == f"curl -sS {JWKS_URI}"
    assert lines[1].startswith("kubectl get --raw /openid/v1/jwks")
    assert lines[-1] == ("az aks oidc-issuer rotate-signing-keys --resource-group myRg --name myAks "
                         "--subscription 0b1f6471-1bf0-4dda-aec3-cb9272f09590 --yes")


def test_a_self_managed_issuer_is_told_to_publish_the_api_servers_keys_never_to_rotate_aks_keys() -> None:
    found = finding(context("AADSTS7000272", published=[OLD_KID], issuer_source="kube-discovery", azure=None))
    assert found.code == "ISSUER_KEY_NOT_FOUND"
    assert not any("rotate-signing-keys" in line for line in found.fix_lines())
    assert any(f"publish the API server's keys (above) at {JWKS_URI}" in line for line in found.fix_lines())


@pytest.mark.parametrize(("change", "unknown"), [
    ({"kid": None}, "the token's kid"),
    ({"jwks_status": 404}, f"the issuer's JWKS at {JWKS_URI}"),
])
def test_without_a_kid_or_a_jwks_it_cannot_tell_and_says_so(change: dict[str, Any], unknown: str) -> None:
    found = finding(context("AADSTS7000272", **change))
    assert found.code == "ISSUER_KEY_NOT_FOUND" and f"could not read {unknown}" in found.message
    assert found.fix_lines()[0] == f"curl -sS {JWKS_URI}"


def test_a_probe_that_did_not_retry_is_named() -> None:
    found = finding(context("AADSTS7000272", retries=None))
    assert found.message.endswith("; the probe did not retry it")


# ---------------------------------------------------------------- FIC_PROPAGATION_PENDING


def test_propagation_pending_only_with_a_matching_credential_and_with_the_attempts() -> None:
    retries = {**RETRIES, "answers": ["AADSTS700211"] * 5}
    pending = finding(context("AADSTS700211", credentials=[fic()], retries=retries))
    assert (pending.code, pending.severity) == ("FIC_PROPAGATION_PENDING", WARNING)
    assert "the probe tried 5 times over 30 s (its bound 30 s)" in pending.message
    wrong = finding(context("AADSTS700213", credentials=[fic(subject="system:serviceaccount:finance:other")],
                            retries=None))
    assert wrong.code == "FIC_SUBJECT_MISMATCH"


# ---------------------------------------------------------------- what the probe may wait out


def test_the_codes_are_the_probes() -> None:
    assert FIC_PROPAGATION_AADSTS == probe_retry.FIC_PROPAGATION_AADSTS
    assert METADATA_CACHE_AADSTS == probe_retry.METADATA_CACHE_AADSTS


def test_credential_codes_are_waited_on_only_when_a_credential_matches() -> None:
    matching = IdentityFacts(federated_credentials=[fic()])
    now = time.time()
    assert retryable_aadsts(matching, ISSUER, SUBJECT, None, now) == [70021, 700211, 700213, 7000272]
    assert retryable_aadsts(matching, ISSUER.rstrip("/"), SUBJECT, None, now) == [7000272]  # exact, as Entra does
    assert retryable_aadsts(IdentityFacts(federated_credentials=[fic(subject="x")]), ISSUER, SUBJECT, None,
                            now) == [7000272]
    assert retryable_aadsts(IdentityFacts(), ISSUER, SUBJECT, None, now) == [7000272]  # unknown: never wait on them
    assert retryable_aadsts(None, None, SUBJECT, None, now) == [7000272]


CLOCKS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("datetime", "now"),
          ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def test_no_check_reads_the_clock() -> None:
    """Checks are pure functions of facts: the time they judge by (a credential's age, a token's expiry) is a
    fact collected with the others (ctx.now, a collected_at), never read while judging; else a verdict
    could not be replayed from run.json's facts. retryable_aadsts read time.time() when given no ``now``."""
    import ast

    checks = Path(__file__).resolve().parents[2] / "harness" / "checks"
    offenders = []
    for path in sorted(checks.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
                if (name, node.func.attr) in CLOCKS:
                    offenders.append(f"{path.name}:{node.lineno} {name}.{node.func.attr}()")
    assert offenders == []


def test_the_retry_bound_leaves_half_the_pods_deadline() -> None:
    assert retry_seconds(ProbeSettings()) == 30
    assert retry_seconds(ProbeSettings(timeout_seconds=20)) == 10
    assert retry_seconds(ProbeSettings(retry_seconds=0)) == 0
    config = probe_config_for(WorkloadConfig(namespace="a", service_account="b"), ProbeSettings(retry_seconds=45),
                              KNOWN_CLOUDS["AzureCloud"], [7000272])
    assert config["retry_seconds"] == 45 and config["retry_aadsts"] == [7000272]


def test_each_probe_is_told_what_it_may_wait_out(tmp_path: Path) -> None:
    world = World.healthy()
    world.workloads.append(FakeWorkload("orders", "wrong-sa", identity_name="wrongId",
                                        fic_subject="system:serviceaccount:orders:other"))
    config = parse_config(world.config(tmp_path), base_dir=tmp_path)
    facts = collect_run(world.backend(), config, Selection(workloads=config.workloads), "run-1", "img")

    def config_step(workload_id: str) -> dict[str, Any]:
        probe = facts.workloads[workload_id].pod.probe  # type: ignore[union-attr]
        return next(s for s in probe["steps"] if s["name"] == "config")["evidence"]

    assert config_step("finance/backend-sa")["retry_aadsts"] == [70021, 700211, 700213, 7000272]
    assert config_step("finance/backend-sa")["retry_seconds"] == 15  # the fake world's pods have 30 s
    assert config_step("orders/wrong-sa")["retry_aadsts"] == [7000272]  # a misconfiguration: not waited on
