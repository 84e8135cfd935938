"""The fault matrix: each fault a misconfiguration or an outage can cause, made in the lab, gives exactly
its own error finding codes (those expected, and no other), at its own link, and the checks that depend on
that link are skipped with the reason rather than failing noisily. The healthy lab gives no error finding.

Two kinds of fault:

- SCENARIOS: the lab's broken worlds (``pytest suites --lab --lab-scenario NAME``), each in a lab of its own;
- FAULTS: one running lab broken through its public APIs as a person would (ARM and Graph with the lab's
  admin credentials, Key Vault, the official Kubernetes client, ``python -m lab ctl`` for what no API
  changes, a harness.yaml that says something else), the suites run with ``--config``, then the fault
  undone, so one lab serves them all.

Only the chain's suites run (cluster and workloads: ``-k "not migration and not inventory"``); the inventory
and migration suites have their own lab tests. harness.findings (docs/findings.md) names the fault behind
each code, and tests/harness/test_findings_catalogue.py keeps it true to this module.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from test_e2e_lab import BROKEN_STAYS_BROKEN, checks_of, run_suites
from test_identities_lab import SECRETS_USER, Person

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CHAIN_ONLY = ("-k", "not migration and not inventory")
FINANCE = "finance/backend-sa"
IDENTITY_API, ROLE_API, CLUSTER_API, KV_DATA_API = "2023-01-31", "2022-04-01", "2024-09-01", "7.4"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"  # Key Vault Secrets Officer
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
MWC_NAME = "azure-wi-webhook-mutating-webhook-configuration"


@dataclass(frozen=True)
class Expect:
    """What a fault must give: the workload (or "cluster") whose first failing check is ``first``, and exactly
    ``errors`` as the run's error finding codes; ``warnings`` must be among its warning codes."""

    workload: str
    first: str
    errors: frozenset[str]
    warnings: frozenset[str] = frozenset()


def expect(workload: str, first: str, *errors: str, warnings: tuple[str, ...] = ()) -> Expect:
    return Expect(workload, first, frozenset(errors), frozenset(warnings))


def codes(document: dict[str, Any], severity: str) -> set[str]:
    findings = [*document["findings"], *(f for w in document["workloads"] for f in w["findings"])]
    return {f["code"] for f in findings if f["severity"] == severity}


def first_failure(document: dict[str, Any], workload: str) -> dict[str, Any]:
    checks = document["checks"] if workload == "cluster" else list(checks_of(document, workload).values())
    return next(check for check in checks if check["status"] == "fail")


def assert_fault(result: subprocess.CompletedProcess[str], document: dict[str, Any], wanted: Expect) -> None:
    """``wanted`` with no error code is a fault that only warns: the run passes."""
    assert result.returncode == (1 if wanted.errors else 0), result.stdout[-3000:]
    assert document["verdict"] == ("fail" if wanted.errors else "pass")
    summary = {
        w["id"]: [(c["id"], c["status"]) for c in w["checks"] if c["status"] != "pass"]
        for w in document["workloads"]
    }
    errors, warnings = codes(document, "error"), codes(document, "warning")
    assert errors == wanted.errors, f"errors {sorted(errors)}, warnings {sorted(warnings)}: {summary}"
    assert wanted.warnings <= warnings, f"warnings {sorted(warnings)}: {summary}"
    if wanted.errors:
        assert first_failure(document, wanted.workload)["id"] == wanted.first, summary
        assert "troubleshooting: the chain in order" in result.stdout  # the view names the broken link
    findings = [*document["findings"], *(f for w in document["workloads"] for f in w["findings"])]
    assert all(f["remediation"] for f in findings if f["severity"] == "error")
    for workload in document["workloads"]:
        for check in workload["checks"]:
            if check["status"] == "skip":  # a skip says why; one for a broken link names it
                assert check["message"] and (
                    "because" in check["message"] or not check["evidence"].get("blocked_by")
                ), check


# ---------------------------------------------------------------- the lab's broken scenarios, a lab each

SCENARIOS = {
    "issuer-without-slash": expect(FINANCE, "federation.credential", "FIC_ISSUER_MISMATCH"),
    "wrong-subject": expect(FINANCE, "federation.credential", "FIC_SUBJECT_MISMATCH"),
    "sa-not-annotated": expect(FINANCE, "sa.client_id_annotation", "SA_ANNOTATION_MISSPELLED"),
    "missing-role": expect(FINANCE, "access.keyvault:finance-kv/db-password", "ROLE_ASSIGNMENT_MISSING"),
    "webhook-down": expect(FINANCE, "pod.admitted", "WEBHOOK_UNAVAILABLE", "WEBHOOK_NOT_READY"),
    "webhook-absent": expect(FINANCE, "pod.mutated", "WEBHOOK_NOT_INSTALLED", "WORKLOAD_IDENTITY_DISABLED"),
    "egress-blocked": expect(FINANCE, "exchange.succeeds", "EGRESS_BLOCKED"),
}
BREAKS_EVERY_WORKLOAD = ("webhook-down", "webhook-absent", "egress-blocked")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_broken_scenario_names_its_link_and_only_its_codes(tmp_path: Path, scenario: str) -> None:
    result, document = run_suites(tmp_path, "--lab", "--lab-scenario", scenario, *CHAIN_ONLY,
                                  env=BROKEN_STAYS_BROKEN)
    assert_fault(result, document, SCENARIOS[scenario])
    other = next(w for w in document["workloads"] if w["id"] == "orders/orders-sa")
    if scenario not in BREAKS_EVERY_WORKLOAD:
        assert other["verdict"] == "pass"


def test_the_healthy_lab_gives_no_error_finding(tmp_path: Path) -> None:
    result, document = run_suites(tmp_path, "--lab", *CHAIN_ONLY)
    assert result.returncode == 0, result.stdout[-3000:]
    assert document["verdict"] == "pass" and codes(document, "error") == set()
    assert "troubleshooting:" not in result.stdout  # nothing failed, nothing narrowed: no view


# ---------------------------------------------------------- one lab, broken and repaired through its APIs


@dataclass
class Lab:
    """The running lab as a person reaches it: ARM/Graph as its admin, Kubernetes with its kubeconfig."""

    running: RunningLab
    person: Person
    kube: k8s.ApiClient
    tmp: Path
    undo: list[Callable[[], None]] = field(default_factory=list)

    @property
    def info(self) -> dict[str, Any]:
        return self.person.info

    def resource(self, kind: str, name: str) -> str:
        found = self.person.arm(
            "GET",
            f"/subscriptions/{self.info['subscription_id']}/resources",
            "2021-04-01",
            **{"$filter": f"resourceType eq '{kind}' and name eq '{name}'"},
        )
        return found["value"][0]["id"]

    def identity(self, name: str = "myWorkloadId") -> dict[str, Any]:
        return self.person.arm(
            "GET", self.resource("Microsoft.ManagedIdentity/userAssignedIdentities", name), IDENTITY_API
        )

    def fic(self, **properties: Any) -> None:
        """Change finance's federated credential (a PUT, as az identity federated-credential update sends)."""
        path = f"{self.identity()['id']}/federatedIdentityCredentials/fed-cred-backend"
        before = self.person.arm("GET", path, IDENTITY_API)
        body = {"properties": {**before["properties"], **properties}}
        self.person.arm("PUT", path, IDENTITY_API, body)
        self.undo.append(
            lambda: self.person.arm("PUT", path, IDENTITY_API, {"properties": before["properties"]})
        )

    def delete_fic(self) -> None:
        path = f"{self.identity()['id']}/federatedIdentityCredentials/fed-cred-backend"
        before = self.person.arm("GET", path, IDENTITY_API)
        self.person.arm("DELETE", path, IDENTITY_API)
        self.undo.append(
            lambda: self.person.arm("PUT", path, IDENTITY_API, {"properties": before["properties"]})
        )

    def grant(self, scope: str, role: str, principal: str) -> None:
        assignment = self.person.grant(scope, role, principal)
        self.undo.append(lambda: self.person.arm("DELETE", assignment, ROLE_API))

    def revoke_all(self, principal: str) -> None:
        listed = self.person.arm(
            "GET",
            f"/subscriptions/{self.info['subscription_id']}/providers/"
            "Microsoft.Authorization/roleAssignments",
            ROLE_API,
            **{"$filter": f"principalId eq '{principal}'"},
        )["value"]
        for assignment in listed:
            self.person.arm("DELETE", assignment["id"], ROLE_API)
            props = assignment["properties"]
            self.undo.append(
                lambda props=props: self.person.grant(
                    props["scope"], props["roleDefinitionId"].rsplit("/", 1)[-1], props["principalId"]
                )
            )

    def cluster(self, **properties: Any) -> None:
        """GET the managed cluster and PUT it back with properties changed, as az aks update does."""
        path = self.resource("Microsoft.ContainerService/managedClusters", self.info["cluster"]["name"])
        before = self.person.arm("GET", path, CLUSTER_API)
        body = copy.deepcopy(before)
        body["properties"].update(properties)
        self.person.arm("PUT", path, CLUSTER_API, body)
        self.undo.append(lambda: self.person.arm("PUT", path, CLUSTER_API, before))

    def secret_enabled(self, enabled: bool) -> None:
        """Key Vault's Update Secret (az keyvault secret set-attributes) on finance-kv's db-password; the
        person takes a data-plane role for it first (an Owner of the vault has none)."""
        admin = self.person.graph("GET", f"/servicePrincipals(appId='{self.info['admin']['client_id']}')")
        self.grant(self.resource("Microsoft.KeyVault/vaults", "finance-kv"), SECRETS_OFFICER, admin["id"])
        url = f"{self.info['vaults']['finance-kv']}secrets/db-password/"
        body = {"attributes": {"enabled": enabled}}
        self.person._call(
            "PATCH", url, "https://vault.azure.net/.default", body, **{"api-version": KV_DATA_API}
        )
        self.undo.append(
            lambda: self.person._call(
                "PATCH",
                url,
                "https://vault.azure.net/.default",
                {"attributes": {"enabled": not enabled}},
                **{"api-version": KV_DATA_API},
            )
        )

    def more_fics(self, count: int) -> None:
        """``count`` more federated credentials on finance's identity (other clusters' subjects)."""
        identity = self.identity()["id"]
        for index in range(count):
            path = f"{identity}/federatedIdentityCredentials/other-cluster-{index}"
            self.person.arm(
                "PUT",
                path,
                IDENTITY_API,
                {
                    "properties": {
                        "issuer": f"https://oidc.example.test/other-{index}/",
                        "audiences": [EXCHANGE_AUDIENCE],
                        "subject": "system:serviceaccount:finance:backend-sa",
                    }
                },
            )
            self.undo.append(lambda path=path: self.person.arm("DELETE", path, IDENTITY_API))

    def ctl(self, *args: str, undo: tuple[str, ...] = ()) -> None:
        for command in (args, *((undo,) if undo else ())):
            assert command
        self._ctl(*args)
        if undo:
            self.undo.append(lambda: self._ctl(*undo))

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "lab", "ctl", "--state-dir", str(self.running.state_dir), *args],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=REPO,
        )

    def annotate(self, namespace: str, name: str, **annotations: str | None) -> None:
        core = k8s.CoreV1Api(self.kube)
        before = core.read_namespaced_service_account(name, namespace).metadata.annotations or {}
        core.patch_namespaced_service_account(name, namespace, {"metadata": {"annotations": annotations}})
        restore = {key: before.get(key) for key in annotations}
        self.undo.append(
            lambda: core.patch_namespaced_service_account(
                name, namespace, {"metadata": {"annotations": restore}}
            )
        )

    def service_account(self, namespace: str, name: str, client_id: str) -> None:
        core = k8s.CoreV1Api(self.kube)
        core.create_namespace({"metadata": {"name": namespace}})
        core.create_namespaced_service_account(
            namespace,
            {"metadata": {"name": name, "annotations": {"azure.workload.identity/client-id": client_id}}},
        )
        self.undo.append(lambda: core.delete_namespace(namespace))

    def webhook(self, patch: list[dict[str, Any]]) -> None:
        """A JSON patch of the MutatingWebhookConfiguration's first webhook (kubectl patch --type json)."""
        admission = k8s.AdmissionregistrationV1Api(self.kube)
        before = admission.read_mutating_webhook_configuration(MWC_NAME)
        admission.patch_mutating_webhook_configuration(MWC_NAME, patch)
        restore = self.kube.sanitize_for_serialization(before.webhooks)
        self.undo.append(
            lambda: admission.patch_mutating_webhook_configuration(
                MWC_NAME, [{"op": "replace", "path": "/webhooks", "value": restore}]
            )
        )

    def config(self, change: Callable[[dict[str, Any]], None]) -> str:
        data = yaml.safe_load(self.running.harness_config.read_text())
        change(data)
        path = self.tmp / f"harness-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    def restore(self) -> None:
        while self.undo:
            self.undo.pop()()


@pytest.fixture(scope="module")
def lab(running_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    person = Person(running_lab.info(), str(running_lab.state_dir / "ca.pem"))
    kube = k8s_config.new_client_from_config(config_file=str(running_lab.state_dir / "kubeconfig"))
    return Lab(running_lab, person, kube, tmp_path_factory.mktemp("configs"))


@dataclass(frozen=True)
class Fault:
    description: str
    make: Callable[[Lab], list[str]]  # breaks the lab; returns the suites' arguments
    wanted: Expect


def _workload(lab: Lab) -> list[str]:
    return ["--config", str(lab.running.harness_config), "--workload", FINANCE]


def _fic_deleted(lab: Lab) -> list[str]:
    lab.delete_fic()
    return _workload(lab)


def _fic_audience(lab: Lab) -> list[str]:
    lab.fic(audiences=["api://AzureADTokenExchangeX"])
    return _workload(lab)


def _fic_subject_case(lab: Lab) -> list[str]:
    lab.fic(subject="system:serviceaccount:finance:Backend-SA")
    return _workload(lab)


def _deny_target_granted(lab: Lab) -> list[str]:
    lab.grant(
        lab.resource("Microsoft.KeyVault/vaults", "platform-kv"),
        SECRETS_USER,
        lab.identity()["properties"]["principalId"],
    )
    return _workload(lab)


def _entra_clock_skew(lab: Lab) -> list[str]:
    lab.ctl("clock", "--skew", "7200", undo=("clock", "--skew", "0"))
    return _workload(lab)


def _issuer_unreachable(lab: Lab) -> list[str]:
    lab.ctl("issuer", "--unreachable", "on", undo=("issuer", "--unreachable", "off"))
    return _workload(lab)


def _issuer_key_unpublished(lab: Lab) -> list[str]:
    """The issuer keeps publishing its old JWKS while the API server signs with a new key (a self-managed
    issuer's JWKS not uploaded again after the key changed). Entra's copy of the metadata is emptied on the way
    out, or the next faults would meet the stale copy; the probe waits out AADSTS7000272 5 s, not 30."""
    lab.ctl("entra", "--metadata-cache-seconds", "0", undo=("entra", "--metadata-cache-seconds", "120"))
    lab.ctl("issuer", "--stale-jwks", "on", undo=("issuer", "--stale-jwks", "off"))
    lab.ctl("issuer", "--rotate-keys")
    path = lab.config(lambda data: data.setdefault("probe", {}).update(retry_seconds=5))
    return ["--config", path, "--workload", FINANCE]


def _keyvault_egress_blocked(lab: Lab) -> list[str]:
    lab.ctl("egress", "--block", "keyvault", undo=("egress", "--unblock", "keyvault"))
    # a NetworkPolicy drops the connections: a short request timeout and no retries keep the run short
    fast = lab.config(lambda data: data["probe"].update(request_timeout_seconds=2, retry_seconds=0))
    return ["--config", fast, "--workload", FINANCE]


def _client_id_malformed(lab: Lab) -> list[str]:
    lab.annotate("finance", "backend-sa", **{"azure.workload.identity/client-id": "backend-identity"})
    return _workload(lab)


def _client_id_of_another_identity(lab: Lab) -> list[str]:
    other = lab.identity("ordersWorkloadId")["properties"]["clientId"]
    lab.annotate("finance", "backend-sa", **{"azure.workload.identity/client-id": other})
    return _workload(lab)


def _tenant_id_malformed(lab: Lab) -> list[str]:
    lab.annotate("finance", "backend-sa", **{"azure.workload.identity/tenant-id": "contoso.onmicrosoft"})
    return _workload(lab)


def _tenant_unknown(lab: Lab) -> list[str]:
    lab.annotate("finance", "backend-sa", **{"azure.workload.identity/tenant-id": str(uuid.uuid4())})
    return _workload(lab)


def _service_account_missing(lab: Lab) -> list[str]:
    return ["--config", str(lab.running.harness_config), "--workload", "finance/backend-sa-v2"]


def _namespace_missing(lab: Lab) -> list[str]:
    return ["--config", str(lab.running.harness_config), "--workload", "finance-v2/backend-sa"]


def _unknown_client_id(lab: Lab) -> list[str]:
    lab.service_account("ghost", "ghost-sa", str(uuid.uuid4()))
    return ["--config", str(lab.running.harness_config), "--workload", "ghost/ghost-sa"]


def _failure_policy_ignore(lab: Lab) -> list[str]:
    lab.webhook([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}])
    return _workload(lab)


def _object_selector_removed(lab: Lab) -> list[str]:
    lab.webhook([{"op": "remove", "path": "/webhooks/0/objectSelector"}])
    return _workload(lab)


def _oidc_issuer_disabled(lab: Lab) -> list[str]:
    """A cluster made before its OIDC issuer was enabled (ARM refuses to turn an enabled one off)."""
    lab.ctl("cluster", "--oidc-issuer", "off", undo=("cluster", "--oidc-issuer", "on"))
    return _workload(lab)


def _cluster_identity_unexpected(lab: Lab) -> list[str]:
    path = lab.config(lambda data: data.setdefault("expect", {}).update(cluster_identity="systemAssigned"))
    return ["--config", path, "--workload", FINANCE]


def _harness_secret_wrong(lab: Lab) -> list[str]:
    secret = lab.tmp / "wrong-secret"
    secret.write_text("not-the-secret\n")
    secret.chmod(0o600)

    def change(data: dict[str, Any]) -> None:
        data["azure"]["credential"] = {
            "client_id": data["azure"]["credential"]["client_id"],
            "client_secret_file": str(secret),
        }

    return ["--config", lab.config(change), "--workload", FINANCE]


def _annotation_removed(lab: Lab) -> list[str]:
    lab.annotate("finance", "backend-sa", **{"azure.workload.identity/client-id": None})
    return _workload(lab)


def _principal_id_annotated(lab: Lab) -> list[str]:
    principal = lab.identity()["properties"]["principalId"]
    lab.annotate("finance", "backend-sa", **{"azure.workload.identity/client-id": principal})

    def by_annotation(data: dict[str, Any]) -> None:  # harness.yaml leaves the identity to the annotation
        for workload in data["workloads"]:
            workload.pop("client_id", None)
            workload.pop("identity_resource_id", None)

    return ["--config", lab.config(by_annotation), "--workload", FINANCE]


def _secret_disabled(lab: Lab) -> list[str]:
    lab.secret_enabled(False)
    return _workload(lab)


def _twenty_credentials(lab: Lab) -> list[str]:
    lab.more_fics(19)
    return _workload(lab)


def _webhook_down_and_role_missing(lab: Lab) -> list[str]:
    lab.revoke_all(lab.identity()["properties"]["principalId"])
    lab.ctl("webhook", "--mode", "down", undo=("webhook", "--mode", "up"))
    return _workload(lab)


FAULTS = {
    "fic-deleted": Fault(
        "ARM: the workload's federated credential deleted",
        _fic_deleted,
        expect(FINANCE, "federation.credential", "FIC_MISSING"),
    ),
    "fic-audience": Fault(
        "ARM: the credential's audience is not api://AzureADTokenExchange",
        _fic_audience,
        expect(FINANCE, "federation.credential", "FIC_AUDIENCE_MISMATCH"),
    ),
    "fic-subject-case": Fault(
        "ARM: the credential's subject differs from the token's only in case",
        _fic_subject_case,
        expect(FINANCE, "federation.credential", "FIC_SUBJECT_CASE_MISMATCH"),
    ),
    "deny-target-granted": Fault(
        "ARM: the identity granted Key Vault Secrets User on the vault it must not read",
        _deny_target_granted,
        expect(FINANCE, "access.keyvault:platform-kv/admin-api-key", "ACCESS_ALLOWED_UNEXPECTEDLY"),
    ),
    "entra-clock-skew": Fault(
        "lab ctl clock --skew 7200: Entra's clock two hours ahead",
        _entra_clock_skew,
        expect(FINANCE, "exchange.succeeds", "TOKEN_TIME_INVALID"),
    ),
    "issuer-unreachable": Fault(
        "lab ctl issuer --unreachable on: the issuer answers no one",
        _issuer_unreachable,
        expect(
            "cluster",
            "cluster.issuer_discovery",
            "ISSUER_DISCOVERY_UNREACHABLE",
            "ISSUER_UNREACHABLE_FROM_ENTRA",
        ),
    ),
    "keyvault-egress-blocked": Fault(
        "lab ctl egress --block keyvault: pods cannot reach Key Vault",
        _keyvault_egress_blocked,
        expect(FINANCE, "access.keyvault:finance-kv/db-password", "EGRESS_BLOCKED"),
    ),
    # the webhook injects what the annotation says (Entra knows no such client id); the workload's running pods
    # still carry the client id harness.yaml expects, so they are not stale: the annotation is what is wrong
    "issuer-key-unpublished": Fault(
        "lab ctl issuer --stale-jwks on, then --rotate-keys: the API server signs with a key the issuer does not "
        "publish",
        _issuer_key_unpublished,
        expect(FINANCE, "exchange.succeeds", "ISSUER_KEY_NOT_FOUND"),
    ),
    "client-id-malformed": Fault(
        "kubectl: the client-id annotation is a name, not a GUID",
        _client_id_malformed,
        # identity.matches and exchange.succeeds wait on it: a look-up of '<client-id>' or another tenant adds nothing
        expect(FINANCE, "sa.client_id_annotation", "SA_CLIENT_ID_MALFORMED"),
    ),
    # the probe exchanges as the other identity, which has no credential for finance: skipped because of the
    # annotation (test_a_fault_made_through_the_public_apis_gives_exactly_its_codes looks), never propagation
    "client-id-of-another-identity": Fault(
        "kubectl: the annotation names another identity's client id",
        _client_id_of_another_identity,
        expect(FINANCE, "sa.client_id_annotation", "SA_CLIENT_ID_MISMATCH"),
    ),
    "tenant-id-malformed": Fault(
        "kubectl: the tenant-id annotation is a domain, not a GUID",
        _tenant_id_malformed,
        expect(FINANCE, "exchange.succeeds", "TENANT_NOT_FOUND", warnings=("SA_TENANT_ID_MALFORMED",)),
    ),
    "tenant-unknown": Fault(
        "kubectl: the tenant-id annotation names a tenant that does not exist",
        _tenant_unknown,
        expect(FINANCE, "exchange.succeeds", "TENANT_NOT_FOUND"),
    ),
    "service-account-missing": Fault(
        "--workload names a ServiceAccount the namespace does not have",
        _service_account_missing,
        expect("finance/backend-sa-v2", "sa.exists", "SA_NOT_FOUND"),
    ),
    "namespace-missing": Fault(
        "--workload names a namespace the cluster does not have",
        _namespace_missing,
        expect("finance-v2/backend-sa", "sa.exists", "NAMESPACE_NOT_FOUND"),
    ),
    "unknown-client-id": Fault(
        "kubectl: a ServiceAccount annotated with a client id no identity has",
        _unknown_client_id,
        expect("ghost/ghost-sa", "identity.matches", "IDENTITY_NOT_FOUND"),
    ),
    "failure-policy-ignore": Fault(
        "kubectl patch: the webhook's failurePolicy is Ignore",
        _failure_policy_ignore,
        expect("cluster", "cluster.webhook_failure_policy", "WEBHOOK_FAILURE_POLICY_IGNORE"),
    ),
    "object-selector-removed": Fault(
        "kubectl patch: the webhook lost its objectSelector",
        _object_selector_removed,
        expect("cluster", "cluster.webhook_object_selector", "WEBHOOK_OBJECT_SELECTOR_MISSING"),
    ),
    "oidc-issuer-disabled": Fault(
        "lab ctl cluster --oidc-issuer off: a cluster made before its OIDC issuer was enabled",
        _oidc_issuer_disabled,
        expect("cluster", "cluster.oidc_issuer_enabled", "OIDC_ISSUER_DISABLED"),
    ),
    "cluster-identity-unexpected": Fault(
        "harness.yaml expects a system-assigned cluster identity",
        _cluster_identity_unexpected,
        expect("cluster", "cluster.identity_type", "CLUSTER_IDENTITY_UNEXPECTED"),
    ),
    "harness-secret-wrong": Fault(
        "harness.yaml's client secret file holds a wrong secret",
        _harness_secret_wrong,
        expect("cluster", "cluster.oidc_issuer_enabled", "HARNESS_CREDENTIAL_FAILED"),
    ),
    "annotation-removed": Fault(
        "kubectl annotate ... client-id-: the annotation removed under running pods",
        _annotation_removed,
        expect(FINANCE, "sa.client_id_annotation", "SA_NOT_ANNOTATED"),
    ),
    "principal-id-annotated": Fault(
        "kubectl: the annotation holds the identity's principal id, not its client id",
        _principal_id_annotated,
        # Entra knows no such client id; the running pods carry the identity's right one, so they are not stale
        # (a restart would hand them the principal id): the annotation is the first broken link
        expect(
            FINANCE,
            "identity.matches",
            "SA_ANNOTATION_IS_PRINCIPAL_ID",
            "IDENTITY_NOT_FOUND",
        ),
    ),
    "secret-disabled": Fault(
        "Key Vault: the secret the workload reads disabled",
        _secret_disabled,
        expect(FINANCE, "access.keyvault:finance-kv/db-password", "SECRET_DISABLED"),
    ),
    "twenty-credentials": Fault(
        "ARM: 19 more federated credentials on the identity (20, the limit)",
        _twenty_credentials,
        expect(FINANCE, "", warnings=("FIC_LIMIT_REACHED",)),
    ),
    # two broken links: the webhook refuses the probe pod, and the identity lost its role. The root is
    # reported, the access checks that would show the role are skipped because of it.
    "webhook-down-and-role-missing": Fault(
        "lab ctl webhook --mode down, and ARM: every role of the identity removed",
        _webhook_down_and_role_missing,
        expect(FINANCE, "pod.admitted", "WEBHOOK_UNAVAILABLE", "WEBHOOK_NOT_READY"),
    ),
}


@pytest.fixture
def broken(lab: Lab) -> Iterator[Lab]:
    try:
        yield lab
    finally:
        lab.restore()


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_made_through_the_public_apis_gives_exactly_its_codes(
    broken: Lab, tmp_path: Path, name: str
) -> None:
    fault = FAULTS[name]
    args = fault.make(broken)
    result, document = run_suites(tmp_path, *args, *CHAIN_ONLY, env=BROKEN_STAYS_BROKEN)
    assert_fault(result, document, fault.wanted)
    if name == "webhook-down-and-role-missing":
        checks = checks_of(document, FINANCE)
        access = [c for c in checks.values() if c["id"].startswith("access.")]
        assert access and all(c["status"] == "skip" for c in access)
        assert all(c["evidence"]["blocked_by"] == "pod.admitted" for c in access)
        assert all(c["message"] == "skipped because pod.admitted failed" for c in access)
        assert "ROLE_ASSIGNMENT_MISSING" not in codes(document, "error")
    if name == "issuer-key-unpublished":
        found = next(f for f in next(w for w in document["workloads"] if w["id"] == FINANCE)["findings"]
                     if f["code"] == "ISSUER_KEY_NOT_FOUND")
        assert found["evidence"]["token_kid"] not in found["evidence"]["published_kids"]
    if name == "client-id-of-another-identity":
        exchange = checks_of(document, FINANCE)["exchange.succeeds"]
        assert exchange["status"] == "skip" and exchange["evidence"]["blocked_by"] == "sa.client_id_annotation"
        assert "FIC_PROPAGATION_PENDING" not in codes(document, "warning")


def test_the_lab_is_healthy_again_after_the_faults(lab: Lab, tmp_path: Path) -> None:
    result, document = run_suites(tmp_path, "--config", str(lab.running.harness_config), *CHAIN_ONLY)
    assert result.returncode == 0, result.stdout[-3000:]
    assert codes(document, "error") == set()
