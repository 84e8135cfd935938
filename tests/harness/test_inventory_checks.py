"""The inventory suite's checks on plain facts: each finding from the case that makes it, nothing else, with
the commands that fix it naming the real identity, group, subscription, application and assignment."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from harness.checks.inventory import INVENTORY_CHECK_IDS, inventory_section, run_inventory_checks
from harness.checks.model import CheckResult, Finding
from harness.config import ExpectConfig, WorkloadConfig
from harness.facts import ClusterFacts, Fetched, InventoryFacts, InventoryIdentity, KubeFailure
from harness.issuers import EXACT, OLDER, TWIN, issuer_relation, older_issuers
from harness.report.schema import Inventory
from harness.report.signoff import section_tables

CLUSTER_GUID = "1cd71cf8-bab4-483d-bd66-c366499c8861"
TENANT = "bb2bf87b-0b17-446b-a380-7a967c4e3f6e"
ISSUER = f"https://eastus.oic.prod-aks.azure.com/{TENANT}/{CLUSTER_GUID}/"
SUB = "75a4b518-d570-4902-9254-ca853cabcaf2"
SHARED = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
AUDIENCE = ["api://AzureADTokenExchange"]
BACKEND_ID = "f39033c1-a10a-4a0b-a222-edc8695455ef"
ORDERS_ID = "4f95686f-0517-4172-b290-4fc4ac7fa142"
APP_ID = "9d5b6a1e-3f43-4c2b-8d7e-2f1a0c9b8e77"
DEFINITIONS = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions"
OWNER = f"{DEFINITIONS}/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER = f"{DEFINITIONS}/acdd72a7-3385-48ef-bd42-f606fba81ae7"
SECRETS_USER = f"{DEFINITIONS}/4633458b-17de-408a-b874-0445c86b69e6"
VAULT = f"/subscriptions/{SUB}/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/finance-kv"


def identity_id(name: str, subscription: str = SUB, group: str = "myRg") -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/"
        f"userAssignedIdentities/{name}"
    )


def credential(
    name: str, subject: str, issuer: str = ISSUER, audiences: list[str] | None = None
) -> dict[str, Any]:
    return {"name": name, "issuer": issuer, "subject": subject, "audiences": audiences or AUDIENCE}


def sa(namespace: str, name: str, client_id: str | None, use_label: str | None = None) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "name": name,
        "client_id": client_id,
        "tenant_id": None,
        "use_label": use_label,
    }


def managed(
    name: str,
    client_id: str,
    credentials: list[dict[str, Any]] | None,
    subscription: str = SUB,
    roles: list[dict[str, Any]] | None = None,
) -> InventoryIdentity:
    return InventoryIdentity(
        kind="managed_identity",
        client_id=client_id,
        name=name,
        resource_id=identity_id(name, subscription),
        principal_id=f"p-{name}",
        federated_credentials=credentials,
        role_assignments=roles
        if roles is not None
        else [assignment("Key Vault Secrets User", SECRETS_USER, VAULT, f"{name}-kv")],
    )


def assignment(role: str, definition: str, scope: str, name: str) -> dict[str, Any]:
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "role": role,
        "role_definition_id": definition,
        "scope": scope,
    }


def healthy(**changes: Any) -> InventoryFacts:
    facts = InventoryFacts(
        collected_at=0.0,
        service_accounts=[sa("finance", "backend-sa", BACKEND_ID), sa("orders", "orders-sa", ORDERS_ID)],
        all_service_accounts=["finance/backend-sa", "finance/default", "orders/default", "orders/orders-sa"],
        azure_configured=True,
        identities=[
            managed(
                "myWorkloadId",
                BACKEND_ID,
                [credential("fed-cred-backend", "system:serviceaccount:finance:backend-sa")],
            ),
            managed(
                "ordersWorkloadId",
                ORDERS_ID,
                [credential("fed-cred-orders", "system:serviceaccount:orders:orders-sa")],
            ),
        ],
        searched=["Azure Resource Graph: user-assigned identities in every subscription the harness reads"],
    )
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def run(
    facts: InventoryFacts, issuer: str | None = ISSUER, expect: ExpectConfig | None = None
) -> list[CheckResult]:
    cluster = ClusterFacts(collected_at=0.0, issuer_url=issuer, context="ctx", server="https://kube")
    results = run_inventory_checks(facts, cluster, None, expect)
    assert [r.id for r in results] == INVENTORY_CHECK_IDS
    return results


def findings(results: list[CheckResult]) -> dict[str, Finding]:
    found: dict[str, Finding] = {}
    for result in results:
        for finding in result.findings:
            assert finding.code not in found, f"{finding.code} twice"
            found[finding.code] = finding
    return found


def status(results: list[CheckResult]) -> dict[str, str]:
    return {r.id: r.status for r in results}


def words(finding: Finding) -> list[list[str]]:
    return [shlex.split(line, comments=True) for line in finding.fix_lines()]


def backend(facts: InventoryFacts) -> InventoryIdentity:
    return facts.identities[0]


# ---------------------------------------------------------------- issuers


def test_issuer_relations() -> None:
    assert issuer_relation(ISSUER, ISSUER) == EXACT
    assert issuer_relation(ISSUER.rstrip("/"), ISSUER) == TWIN
    assert issuer_relation(ISSUER.replace("eastus", "EastUS"), ISSUER) == TWIN
    assert older_issuers(ISSUER) == [f"https://oidc.prod-aks.azure.com/{CLUSTER_GUID}/"]
    assert issuer_relation(f"https://oidc.prod-aks.azure.com/{CLUSTER_GUID}", ISSUER) == OLDER
    assert issuer_relation("https://old.example/cluster/", ISSUER, ["https://old.example/cluster/"]) == OLDER
    assert issuer_relation(f"https://westus.oic.prod-aks.azure.com/{TENANT}/other/", ISSUER) is None
    assert issuer_relation(None, ISSUER) is None and issuer_relation(ISSUER, None) is None


# ---------------------------------------------------------------- each finding


def test_the_healthy_inventory_passes_every_check_without_a_finding() -> None:
    results = run(healthy())
    assert set(status(results).values()) == {"pass"} and findings(results) == {}


def test_an_orphaned_credential() -> None:
    facts = healthy()
    backend(facts).federated_credentials += [
        credential("gone", "system:serviceaccount:finance:deleted-sa"),
        credential("odd", "repo:org/app:ref:refs/heads/main", issuer=ISSUER.rstrip("/")),
        credential("elsewhere", "system:serviceaccount:finance:deleted-sa", issuer="https://other.example/"),
    ]
    results = run(facts)
    found = findings(results)
    assert set(found) == {"FIC_ORPHANED"} and found["FIC_ORPHANED"].severity == "warning"
    assert status(results)["inventory.no_orphaned_credentials"] == "warn"
    orphan = found["FIC_ORPHANED"]
    assert (
        "finance/deleted-sa does not exist" in orphan.message and "is no ServiceAccount's" in orphan.message
    )
    assert "elsewhere" not in orphan.message  # another cluster's issuer: not this cluster's credential
    assert words(orphan)[0] == [
        "az",
        "identity",
        "federated-credential",
        "delete",
        "--name",
        "gone",
        "--identity-name",
        "myWorkloadId",
        "--resource-group",
        "myRg",
        "--subscription",
        SUB,
        "--yes",
    ]
    assert words(orphan)[1][4:6] == ["--name", "odd"]


def test_an_orphaned_credential_no_service_account_can_match_claims_no_risk() -> None:
    """A credential whose subject names a ServiceAccount Kubernetes cannot name (a space pasted after it, an upper
    case letter in a namespace no ServiceAccount of the cluster is a case twin of): still FIC_ORPHANED with its
    delete, but "whoever creates it there gets the identity's access" was false: nobody can."""
    facts = healthy()
    backend(facts).federated_credentials += [credential("pasted", "system:serviceaccount:finance:batch-sa "),
                                             credential("typed", "system:serviceaccount:Billing:batch-sa")]
    orphan = findings(run(facts))["FIC_ORPHANED"]
    assert "'finance/batch-sa ' can be no ServiceAccount" in orphan.message
    assert "'Billing/batch-sa' can be no ServiceAccount" in orphan.message
    assert "whoever creates it" not in orphan.message
    assert [w[4:6] for w in words(orphan)[:2]] == [["--name", "pasted"], ["--name", "typed"]]


def test_an_orphaned_credential_whose_subject_no_service_account_can_have_is_not_to_be_created_again() -> None:
    """By hand in the lab: az identity federated-credential update ... --subject finance:backend-sa (and
    system:serviceaccounts:finance:backend-sa, the group's plural): FIC_ORPHANED said "subject 'finance:backend-sa'
    is no ServiceAccount's" and then "# or, if the ServiceAccount was deleted by mistake, create it again", for a
    ServiceAccount that never was and that no kubectl create can make. That advice stays where a subject names one
    that can be made (a namespace/name pair Kubernetes accepts)."""
    facts = healthy()
    backend(facts).federated_credentials += [credential("short", "finance:backend-sa"),
                                             credential("plural", "system:serviceaccounts:finance:backend-sa")]
    orphan = findings(run(facts))["FIC_ORPHANED"]
    assert "'finance:backend-sa' is no ServiceAccount's" in orphan.message
    assert [w[4:6] for w in words(orphan)] == [["--name", "short"], ["--name", "plural"]]
    assert not any("create it again" in line for line in orphan.fix_lines())
    backend(facts).federated_credentials.append(credential("gone", "system:serviceaccount:finance:deleted-sa"))
    orphan = findings(run(facts))["FIC_ORPHANED"]
    assert orphan.fix_lines()[-1] == "# or, if the ServiceAccount was deleted by mistake, create it again"


def test_a_service_account_without_a_credential() -> None:
    facts = healthy()
    facts.service_accounts.append(sa("batch", "nightly-sa", "11111111-2222-4333-8444-555555555555"))
    facts.all_service_accounts.append("batch/nightly-sa")
    facts.identities.append(
        managed("nightlyId", "11111111-2222-4333-8444-555555555555", [], subscription=SHARED)
    )
    found = findings(run(facts))
    assert set(found) == {"SA_WITHOUT_FIC"} and found["SA_WITHOUT_FIC"].severity == "error"
    assert words(found["SA_WITHOUT_FIC"]) == [
        [
            "az",
            "identity",
            "federated-credential",
            "create",
            "--name",
            "batch-nightly-sa",
            "--identity-name",
            "nightlyId",
            "--resource-group",
            "myRg",
            "--subscription",
            SHARED,
            "--issuer",
            ISSUER,
            "--subject",
            "system:serviceaccount:batch:nightly-sa",
            "--audiences",
            "api://AzureADTokenExchange",
        ]
    ]


def with_web_app(credentials: list[dict[str, Any]]) -> InventoryFacts:
    """The healthy facts plus web/app-sa, annotated with the app registration web-app holding ``credentials``."""
    facts = healthy()
    facts.service_accounts.append(sa("web", "app-sa", APP_ID))
    facts.all_service_accounts.append("web/app-sa")
    facts.identities.append(InventoryIdentity(kind="application", client_id=APP_ID, name="web-app", object_id="o-1",
                                              federated_credentials=credentials, role_assignments=[]))
    return facts


def test_an_application_without_a_credential_is_fixed_through_graph_under_a_free_name() -> None:
    facts = with_web_app([
        credential("web-app-sa", "repo:org/web:ref:refs/heads/main", issuer="https://token.actions.githubusercontent.com")
    ])
    found = findings(run(facts))
    assert set(found) == {"SA_WITHOUT_FIC"}
    [command] = words(found["SA_WITHOUT_FIC"])
    assert command[:7] == ["az", "ad", "app", "federated-credential", "create", "--id", APP_ID]
    assert (
        '"name": "web-app-sa-2"' in command[-1]
    )  # web-app-sa is taken: creating it would overwrite that one


def test_a_credential_on_a_same_named_app_is_told_apart_by_client_id() -> None:
    """By hand on the lab: a second app registration named as the workload's (az rest POST .../applications, as az
    ad app create under a taken name updates the first), and the credential made on it. SA_WITHOUT_FIC said
    "application web-app (harness.yaml names it; application web-app has a credential for web/app-sa instead:
    delete that one ...)": which web-app? The client ids tell them apart now."""
    other = "5e0c1f2a-7b3d-4c8e-9a6f-1d2e3f4a5b6c"
    facts = with_web_app([])
    facts.identities.append(InventoryIdentity(
        kind="application", client_id=other, name="web-app", object_id="o-2", role_assignments=[],
        federated_credentials=[credential("kubernetes-federated-credential", "system:serviceaccount:web:app-sa")]))
    cluster = ClusterFacts(collected_at=0.0, issuer_url=ISSUER, context="ctx", server="https://kube")
    declared = WorkloadConfig(namespace="web", service_account="app-sa", client_id=APP_ID)
    found = findings(run_inventory_checks(facts, cluster, None, None, [declared]))
    message = found["SA_WITHOUT_FIC"].message
    assert (f"harness.yaml names it, client id {APP_ID}; application web-app (client id {other}) has a credential "
            "for web/app-sa instead") in message, message
    [command] = words(found["SA_WITHOUT_FIC"])
    assert command[:7] == ["az", "ad", "app", "federated-credential", "create", "--id", APP_ID]


def test_a_credential_with_the_wrong_audience_is_no_credential() -> None:
    facts = healthy()
    backend(facts).federated_credentials = [
        credential(
            "fed-cred-backend", "system:serviceaccount:finance:backend-sa", audiences=["api://something-else"]
        )
    ]
    found = findings(run(facts))
    assert (
        set(found) == {"SA_WITHOUT_FIC"}
        and "has audiences ['api://something-else']" in found["SA_WITHOUT_FIC"].message
    )
    assert "AADSTS700212" in found["SA_WITHOUT_FIC"].message
    # the credential is corrected under its own name: ARM refuses a second credential with the same issuer and
    # subject (400 "Issuer and subject combination already exists for this Managed Identity."), so a create fails
    [command] = words(found["SA_WITHOUT_FIC"])
    assert command[:6] == ["az", "identity", "federated-credential", "update", "--name", "fed-cred-backend"]
    assert command[command.index("--issuer") + 1] == ISSUER
    assert command[command.index("--subject") + 1] == "system:serviceaccount:finance:backend-sa"
    assert command[command.index("--audiences") + 1:] == ["api://AzureADTokenExchange"]


def test_an_audience_with_a_trailing_slash_is_named_so() -> None:
    """By hand on the lab: the app's credential updated with the audience api://AzureADTokenExchange/ (AADSTS700212).
    SA_WITHOUT_FIC said "has audiences ['api://AzureADTokenExchange/'], not [api://AzureADTokenExchange]"; it says
    what differs now, as federation.credential does."""
    facts = with_web_app([
        credential("web-cred", "system:serviceaccount:web:app-sa", audiences=["api://AzureADTokenExchange/"])
    ])
    message = findings(run(facts))["SA_WITHOUT_FIC"].message
    assert "not ['api://AzureADTokenExchange'] (they differ only by the trailing slash)" in message, message


def test_an_application_credential_with_the_wrong_audience_is_updated_through_graph() -> None:
    facts = with_web_app([
        credential("web-cred", "system:serviceaccount:web:app-sa", audiences=["api://AzureADTokenExchang"])
    ])
    found = findings(run(facts))
    assert set(found) == {"SA_WITHOUT_FIC"}
    [command] = words(found["SA_WITHOUT_FIC"])
    assert command[:9] == ["az", "ad", "app", "federated-credential", "update", "--id", APP_ID,
                           "--federated-credential-id", "web-cred"]
    assert '"audiences": ["api://AzureADTokenExchange"]' in command[-1]


def test_a_service_account_without_a_credential_names_what_entra_answers() -> None:
    facts = healthy()
    facts.service_accounts.append(sa("batch", "nightly-sa", "11111111-2222-4333-8444-555555555555"))
    facts.all_service_accounts.append("batch/nightly-sa")
    facts.identities.append(managed("nightlyId", "11111111-2222-4333-8444-555555555555", [], subscription=SHARED))
    assert "AADSTS70025" in findings(run(facts))["SA_WITHOUT_FIC"].message  # no credential at all
    facts.identities[-1].federated_credentials = [credential("other", "system:serviceaccount:batch:other-sa")]
    assert "AADSTS700213" in findings(run(facts))["SA_WITHOUT_FIC"].message  # this issuer, another subject


@pytest.mark.parametrize("kind", ["managed_identity", "application"])
def test_a_subject_mistyped_in_letter_case_is_corrected_in_place_not_called_an_orphan(kind: str) -> None:
    """``system:serviceaccount:finance:Backend-sa`` (az ... federated-credential update by hand): Entra refuses
    the token with AADSTS7002138. The inventory said SA_WITHOUT_FIC "AADSTS700213 (subject)" and created a second
    credential, against the workload's FIC_SUBJECT_CASE_MISMATCH (update that one), and FIC_ORPHANED for
    finance/Backend-sa, "whoever creates it there gets the identity's access": no ServiceAccount can be named so
    (Kubernetes names are lower case). Now one finding, the same update as the workload's."""
    wrong = "system:serviceaccount:finance:Backend-sa"
    facts = healthy()
    if kind == "application":
        facts.identities[0] = InventoryIdentity(kind="application", client_id=BACKEND_ID, name="backend-app",
                                                federated_credentials=[], role_assignments=[])
    backend(facts).federated_credentials = [credential("fed-cred-backend", wrong)]
    found = findings(run(facts))
    assert set(found) == {"SA_WITHOUT_FIC"}, set(found)
    message = found["SA_WITHOUT_FIC"].message
    assert "AADSTS7002138" in message and f"credential fed-cred-backend has subject {wrong!r}" in message
    [command] = words(found["SA_WITHOUT_FIC"])
    assert "update" in command and "create" not in command
    assert "system:serviceaccount:finance:backend-sa" in " ".join(command) and wrong not in " ".join(command)


@pytest.mark.parametrize("spaced", ["system:serviceaccount:finance:backend-sa\n", "system:serviceaccount:finance:backend-sa\r"])
def test_a_subject_with_a_line_end_is_corrected_in_place_not_called_an_orphan(spaced: str) -> None:
    """By hand in the lab: an app's credential subject PATCHed (az rest) to the ServiceAccount's plus a line end.
    The workload's FIC_SUBJECT_MISMATCH updated it in place ('equal but for whitespace'); the inventory's
    SA_WITHOUT_FIC created a second one under a new name, and FIC_ORPHANED called 'finance/backend-sa\\n' a
    ServiceAccount that can exist no more: two findings and one more of 20 credentials for one typo. Now one
    finding, the workload's update, AADSTS700213 (AADSTS7002138 is for letter case alone)."""
    facts = healthy()
    backend(facts).federated_credentials = [credential("fed-cred-backend", spaced)]
    found = findings(run(facts))
    assert set(found) == {"SA_WITHOUT_FIC"}, set(found)
    message = found["SA_WITHOUT_FIC"].message
    assert "has whitespace around it" in message and "AADSTS700213 (subject)" in message and "\n" not in message
    [command] = words(found["SA_WITHOUT_FIC"])
    assert "update" in command and "create" not in command and spaced not in command
    assert command[command.index("--subject") + 1] == "system:serviceaccount:finance:backend-sa"


def test_a_deleted_application_made_again_is_annotated_and_the_restore_is_the_other_way() -> None:
    """The annotated app deleted and another made with a credential for the ServiceAccount: the annotation is set
    to the one that trusts it; the restore of the deleted one is printed as comments, the other way."""
    facts = with_web_app([credential("web-cred", "system:serviceaccount:web:app-sa")])
    facts.service_accounts[-1]["client_id"] = ORDERS_ID.replace("4f", "5f")
    deleted = facts.service_accounts[-1]["client_id"]
    facts.deleted[deleted] = {"application": {"id": "obj", "appId": deleted, "displayName": "web-app",
                                              "deletedDateTime": "2026-12-01T10:00:00Z"},
                              "service_principal": {"id": "sp"}}
    facts.identities.append(InventoryIdentity(kind="application", client_id=ORDERS_ID.replace("4f", "6f"),
                                              name="other-app", federated_credentials=[
                                                  credential("copy", "system:serviceaccount:web:app-sa")]))
    found = findings(run(facts))  # the one of the deleted app's name, though another trusts the account too
    unknown = found["SA_CLIENT_ID_UNKNOWN"]
    assert f"(client id {APP_ID}) has a federated credential for it now" in unknown.message
    lines = unknown.fix_lines()
    assert lines[0] == f"kubectl annotate serviceaccount -n web app-sa azure.workload.identity/client-id={APP_ID} " \
                       "--overwrite"
    assert all(line.startswith("#") for line in lines if "/restore" in line) and "/restore" in " ".join(lines)


def test_a_trailing_slash_twin_beside_the_working_credential_is_a_warning() -> None:
    facts = healthy()
    backend(facts).federated_credentials.append(
        credential("twin", "system:serviceaccount:finance:backend-sa", issuer=ISSUER.rstrip("/"))
    )
    found = findings(run(facts))
    assert set(found) == {"FIC_OLD_ISSUER"}
    old = found["FIC_OLD_ISSUER"]
    assert old.severity == "warning" and "differs only by the trailing slash" in old.message
    assert [w[3:6] for w in words(old)] == [["delete", "--name", "twin"]]


def test_a_trailing_slash_twin_alone_is_an_error_and_is_updated_in_place() -> None:
    """az identity federated-credential update --issuer "${ISSUER%/}": the ServiceAccount's only credential names
    this issuer without its slash. FIC_OLD_ISSUER printed a delete of it and a create under another name, while
    the workload's FIC_ISSUER_MISMATCH printed an update of it in place: the sign-off lists both, and pasted in
    its order the update found nothing to update. Both update it in place now."""
    facts = healthy()
    backend(facts).federated_credentials = [
        credential("fed-cred-backend", "system:serviceaccount:finance:backend-sa", issuer=ISSUER.rstrip("/"))
    ]
    results = run(facts)
    found = findings(results)
    assert set(found) == {"FIC_OLD_ISSUER"}  # not SA_WITHOUT_FIC too: one cause, one finding
    old = found["FIC_OLD_ISSUER"]
    assert old.severity == "error" and old.evidence["without_working_credential"] == ["finance/backend-sa"]
    [update] = words(old)
    assert update[3:6] == ["update", "--name", "fed-cred-backend"]
    assert update[update.index("--issuer") + 1] == ISSUER
    assert update[update.index("--subject") + 1] == "system:serviceaccount:finance:backend-sa"
    assert status(results)["inventory.credentials_present"] == "pass"


def test_a_twin_is_not_updated_onto_a_credential_that_holds_the_issuer_and_subject() -> None:
    """The ServiceAccount's credential for this issuer has another audience, and a trailing-slash twin sits
    beside it: ARM refuses the twin updated to this issuer and subject ("Issuer and subject combination already
    exists"), so the twin is deleted, not moved onto the other."""
    facts = healthy()
    backend(facts).federated_credentials = [
        credential("twin", "system:serviceaccount:finance:backend-sa", issuer=ISSUER.rstrip("/")),
        credential("fed-cred-backend", "system:serviceaccount:finance:backend-sa", audiences=["api://x"]),
    ]
    old = findings(run(facts))["FIC_OLD_ISSUER"]
    assert [w[3:6] for w in words(old)][0] == ["delete", "--name", "twin"]
    assert not [w for w in words(old) if w[3] == "update"]


def test_an_older_issuer_of_this_cluster_and_a_configured_one() -> None:
    facts = healthy()
    backend(facts).federated_credentials += [
        credential(
            "legacy",
            "system:serviceaccount:finance:backend-sa",
            issuer=f"https://oidc.prod-aks.azure.com/{CLUSTER_GUID}/",
        ),
        credential("blue", "system:serviceaccount:finance:backend-sa", issuer="https://blue.example/issuer/"),
    ]
    found = findings(run(facts, expect=ExpectConfig(previous_issuers=["https://blue.example/issuer/"])))
    assert set(found) == {"FIC_OLD_ISSUER"} and found["FIC_OLD_ISSUER"].severity == "warning"
    assert [w[5] for w in words(found["FIC_OLD_ISSUER"])] == ["legacy", "blue"]
    assert set(findings(run(facts))) == {"FIC_OLD_ISSUER"}  # without the config, blue is another cluster's


def test_another_clusters_issuer_matters_only_where_nothing_else_lets_the_service_account_in() -> None:
    facts = healthy()
    backend(facts).federated_credentials.append(
        credential("prod", "system:serviceaccount:finance:backend-sa", issuer="https://prod.example/")
    )
    assert findings(run(facts)) == {}  # a sibling cluster's credential for the same namespace and name
    backend(facts).federated_credentials = [
        credential("prod", "system:serviceaccount:finance:backend-sa", issuer="https://prod.example/")
    ]
    old = findings(run(facts))["FIC_OLD_ISSUER"]
    assert old.severity == "error" and "another cluster's issuer" in old.message
    assert [w[3] for w in words(old) if w] == ["create"]  # never deleted: it may serve that cluster


def test_an_identity_near_the_limit() -> None:
    facts = healthy()
    backend(facts).federated_credentials += [
        credential(f"other-{n}", f"system:serviceaccount:ns:sa-{n}", issuer=f"https://cluster-{n}.example/")
        for n in range(16)
    ]
    assert findings(run(facts)) == {}  # 17 of 20
    backend(facts).federated_credentials.append(
        credential("one-more", "x", issuer="https://cluster-x.example/")
    )
    found = findings(run(facts))
    assert set(found) == {"FIC_LIMIT_NEAR"} and found["FIC_LIMIT_NEAR"].severity == "warning"
    assert "18 of 20" in found["FIC_LIMIT_NEAR"].message and "may not fit" in found["FIC_LIMIT_NEAR"].message
    assert words(found["FIC_LIMIT_NEAR"])[0][:4] == ["az", "identity", "federated-credential", "list"]
    backend(facts).federated_credentials += [
        credential(f"last-{n}", f"y-{n}", issuer="https://cluster-y.example/") for n in range(2)
    ]
    message = findings(run(facts))["FIC_LIMIT_NEAR"].message
    # at 20 a 21st is refused (the lab and ARM answer 400): no "may" about it
    assert "20 of 20" in message and "ARM refuses a further credential" in message and "may not fit" not in message


def test_an_app_registration_at_the_limit_is_refused_by_graph_not_arm() -> None:
    """An app registration's credentials are Microsoft Graph's (az ad app federated-credential create answers
    from Graph), so at 20 of 20 the message names Graph, not ARM."""
    facts = with_web_app([
        credential(f"c-{n}", f"repo:org/web:environment:e{n}", issuer="https://token.actions.githubusercontent.com")
        for n in range(19)
    ] + [credential("web-app-sa", "system:serviceaccount:web:app-sa")])
    message = findings(run(facts))["FIC_LIMIT_NEAR"].message
    assert "20 of 20" in message and "Microsoft Graph refuses a further credential" in message
    assert "ARM" not in message


def test_a_create_on_an_identity_at_the_limit_says_to_make_room_first() -> None:
    """An app registration holding 20 credentials, none for web/app-sa: SA_WITHOUT_FIC's create pasted alone is
    refused by Graph ("... exceeds the limit of 20", az ad app federated-credential create against the lab), so
    the listing and what to delete come before it; at 19 the create is printed alone."""
    others = [credential(f"c-{n}", f"repo:org/web:environment:e{n}", issuer="https://token.actions.githubusercontent.com")
              for n in range(20)]
    fixes = findings(run(with_web_app(others)))["SA_WITHOUT_FIC"].fix_lines()
    assert fixes[0].startswith("# application web-app") and "holds 20 federated credentials" in fixes[0]
    assert fixes[1].startswith(f"az ad app federated-credential list --id {APP_ID}")
    assert fixes[2].startswith(f"az ad app federated-credential create --id {APP_ID}") and len(fixes) == 3
    fixes = findings(run(with_web_app(others[:19])))["SA_WITHOUT_FIC"].fix_lines()
    assert len(fixes) == 1 and " create " in fixes[0]


def test_a_create_after_the_deletes_of_older_issuers_needs_no_more_room() -> None:
    """FIC_OLD_ISSUER deletes an older issuer's credential before it creates this issuer's: at 20 that delete
    makes the room, so no 'delete one first' line; with another cluster's issuer (never deleted) it is said."""
    older = older_issuers(ISSUER)[0]
    facts = healthy()
    backend(facts).federated_credentials = [
        credential("fed-cred-backend", "system:serviceaccount:finance:backend-sa", issuer=older)
    ] + [credential(f"c-{n}", f"system:serviceaccount:ns:sa-{n}", issuer=f"https://cluster-{n}.example/")
         for n in range(19)]
    fixes = findings(run(facts))["FIC_OLD_ISSUER"].fix_lines()
    assert not any("most it may" in line for line in fixes), fixes
    backend(facts).federated_credentials[0]["issuer"] = "https://prod.example/"
    fixes = findings(run(facts))["FIC_OLD_ISSUER"].fix_lines()
    assert any("holds 20 federated credentials, the most it may" in line for line in fixes), fixes


@pytest.mark.parametrize(
    ("client_id", "refused", "severity", "text"),
    [
        ("22222222-3333-4444-8555-666666666666", False, "error", "22222222-3333-4444-8555-666666666666"),
        ("22222222-3333-4444-8555-666666666666", True, "warning", "some lookups were refused"),
        ("not-a-guid", True, "error", "is not a GUID"),
    ],
)
def test_an_unknown_client_id(client_id: str, refused: bool, severity: str, text: str) -> None:
    facts = healthy()
    facts.service_accounts.append(sa("web", "app-sa", client_id))
    if refused:
        facts.refused.append(
            Fetched(
                "https://graph.example/v1.0/applications",
                403,
                None,
                "Insufficient privileges",
                "Authorization_RequestDenied",
            )
        )
    found = findings(run(facts))
    assert set(found) - {"INVENTORY_INCOMPLETE"} == {"SA_CLIENT_ID_UNKNOWN"}
    assert (
        found["SA_CLIENT_ID_UNKNOWN"].severity == severity and text in found["SA_CLIENT_ID_UNKNOWN"].message
    )


def test_a_name_pasted_for_the_client_id_is_annotated_with_the_one_identity_of_that_name() -> None:
    """By hand in the lab: orders-sa annotated client-id=ordersWorkloadId: SA_CLIENT_ID_UNKNOWN printed az identity
    list / az ad app list and a '<client-id>' annotate. The identities of that name (collect.identity_names) now
    give the client id when one has it, and are listed when several do; not listable: the look-ups as before."""
    one = {"kind": "managed_identity", "name": "my-identity", "client_id": ORDERS_ID,
           "resource_id": identity_id("my-identity")}
    app = {"kind": "application", "name": "my-identity", "client_id": BACKEND_ID, "resource_id": ""}
    facts = healthy(named={"my-identity": [one]})
    facts.service_accounts.append(sa("web", "app-sa", "my-identity"))
    finding = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"]
    assert f"'my-identity' is not a GUID (my-identity is managed identity {one['resource_id']}: client id " \
           f"{ORDERS_ID})" in finding.message
    assert finding.fix_lines()[0] == (f"kubectl annotate serviceaccount -n web app-sa "
                                      f"azure.workload.identity/client-id={ORDERS_ID} --overwrite")
    facts.named = {"my-identity": [one, app]}
    lines = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()
    assert lines[1:3] == [f"#   managed identity {one['resource_id']}: client id {ORDERS_ID}",
                          f"#   app registration my-identity: client id (appId) {BACKEND_ID}"]
    assert "client-id=<client-id>" in lines[3]
    facts.named = {}
    assert findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()[0].startswith("az identity list")


def test_a_client_id_pasted_in_braces_is_annotated_bare_as_the_workload_view_prints() -> None:
    """``{guid}`` (as .NET and the registry print GUIDs) in the annotation: SA_CLIENT_ID_UNKNOWN printed az identity
    list / az ad app list with <client-id> placeholders; it now annotates the GUID inside, as the workload's
    SA_CLIENT_ID_MALFORMED does."""
    facts = healthy()
    guid = "22222222-3333-4444-8555-666666666666"
    facts.service_accounts.append(sa("web", "app-sa", f"{{{guid}}}"))
    unknown = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"]
    lines = unknown.fix_lines()
    assert lines[0] == f"kubectl annotate serviceaccount -n web app-sa azure.workload.identity/client-id={guid} --overwrite"
    assert len(lines) == 2 and lines[1].startswith("kubectl rollout restart deployment -n web")


def test_counts_are_worded_in_their_number() -> None:
    """'1 ServiceAccount(s) in 1 namespace(s) carry': each count now says its noun in its number."""
    two = {r.id: r.message for r in run(healthy())}
    assert two["inventory.service_accounts"].startswith("2 ServiceAccounts in 2 namespaces carry the client-id ")
    assert two["inventory.identities_listed"].startswith("2 managed identities and 0 applications trust ")
    assert two["inventory.credentials_present"].startswith("each of the 2 ServiceAccounts whose identity ")
    one = healthy()
    one.service_accounts, one.identities = one.service_accounts[:1], one.identities[:1]
    messages = {r.id: r.message for r in run(one)}
    assert messages["inventory.service_accounts"].startswith("1 ServiceAccount in 1 namespace carries the client-id ")
    assert messages["inventory.credentials_present"].startswith("the ServiceAccount whose identity the harness reads ")
    assert messages["inventory.no_orphaned_credentials"].startswith("the credential for this cluster's issuer names ")
    assert "(s)" not in " ".join([*two.values(), *messages.values()])


def test_an_arm_failing_through_the_retries_is_no_missing_permission_and_no_vacuous_pass() -> None:
    """By hand in the lab (lab ctl fault arm --rate-503 1): Resource Graph answered 503 through the retries, so no
    identity was listed. The inventory said each ServiceAccount's identity was one 'which the harness cannot read'
    with az role assignment create ... Reader (it may read; ARM failed), and PASSED credential_limits ('every
    identity holds fewer than 18 of its 20') and least_privilege ('the 0 identities ...') over no identity at all:
    the inventory's verdict PASS while it read nothing. Now the failure is named, no grant printed, and those two
    checks skip."""
    facts = healthy(identities=[], failed=[Fetched("https://arm.test/providers/Microsoft.ResourceGraph/resources",
                                                    503, None, "The service is currently unavailable.",
                                                    "ServiceUnavailable")])
    for account in facts.service_accounts:
        facts.hidden[account["client_id"]] = {"kind": "managed_identity", "client_id": account["client_id"],
                                              "name": "id", "resource_id": identity_id("id", SHARED)}
    results = run(facts)
    unknown = findings(results)["SA_CLIENT_ID_UNKNOWN"]
    assert "cannot read" not in unknown.message and unknown.fix_lines() == []
    assert "which the harness could not list this run: HTTP 503 ServiceUnavailable from https://arm.test/" \
        in unknown.message
    states = status(results)
    assert states["inventory.credential_limits"] == "skip" and states["inventory.least_privilege"] == "skip"
    assert states["inventory.identities_listed"] == "warn"
    assert status(run(healthy()))["inventory.credential_limits"] == "pass"  # read, and under the limit: a pass


def test_an_identity_entra_knows_but_the_harness_cannot_read_is_a_warning() -> None:
    facts = healthy()
    hidden = "55555555-6666-4777-8888-999999999999"
    facts.service_accounts.append(sa("web", "app-sa", hidden))
    facts.hidden[hidden] = {
        "kind": "managed_identity",
        "client_id": hidden,
        "name": "webId",
        "resource_id": identity_id("webId", SHARED),
    }
    unknown = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"]
    assert unknown.severity == "warning"
    assert (
        f"is managed identity webId in Entra, in /subscriptions/{SHARED}, which the harness cannot read"
        in unknown.message
    )
    assert words(unknown) == [
        [
            "az",
            "role",
            "assignment",
            "create",
            "--assignee",
            "<harness-client-id>",
            "--role",
            "Reader",
            "--scope",
            f"/subscriptions/{SHARED}",
        ]
    ]
    rows = inventory_section(facts, ClusterFacts(collected_at=0.0, issuer_url=ISSUER), ExpectConfig())
    assert rows["service_accounts"][-1]["state"] == "identity in Entra, not readable by the harness"


def test_a_principal_id_in_the_annotation_is_named_with_the_client_id_to_use() -> None:
    facts = healthy()
    facts.service_accounts.append(sa("web", "app-sa", "33333333-4444-4555-8666-777777777777"))
    facts.principal_of["33333333-4444-4555-8666-777777777777"] = {
        "kind": "managed_identity",
        "client_id": BACKEND_ID,
        "name": "myWorkloadId",
        "resource_id": identity_id("x"),
    }
    unknown = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"]
    assert unknown.severity == "error" and "principal (object) id" in unknown.message
    assert words(unknown)[0] == [
        "kubectl",
        "annotate",
        "serviceaccount",
        "-n",
        "web",
        "app-sa",
        f"azure.workload.identity/client-id={BACKEND_ID}",
        "--overwrite",
    ]


def test_broad_roles_on_an_identity_a_workload_uses() -> None:
    facts = healthy()
    backend(facts).role_assignments += [
        assignment("Owner", OWNER, VAULT, "owner-1"),
        assignment("Reader", READER, f"/subscriptions/{SUB}/resourceGroups/myRg", "r-1"),
    ]
    facts.identities.append(
        managed(
            "unusedId",
            "44444444-5555-4666-8777-888888888888",
            [],
            roles=[assignment("Owner", OWNER, f"/subscriptions/{SUB}", "owner-2")],
        )
    )
    found = findings(run(facts))
    assert set(found) == {"ROLE_OVERLY_BROAD"}
    broad = found["ROLE_OVERLY_BROAD"]
    assert broad.severity == "error" and "owner-2" not in str(broad.evidence)  # no workload uses unusedId
    assert words(broad)[:2] == [
        [
            "az",
            "role",
            "assignment",
            "delete",
            "--ids",
            f"{VAULT}/providers/Microsoft.Authorization/roleAssignments/owner-1",
        ],
        # Reader on the whole group may be what the workload reads through: narrowed first (on a resource the
        # person names), its delete only advised after that
        [
            "az",
            "role",
            "assignment",
            "create",
            "--assignee-object-id",
            "<principal-id>",  # the fake principal id is no GUID
            "--assignee-principal-type",
            "ServicePrincipal",
            "--role",
            "Reader",
            "--scope",
            f"<the-resource-under-/subscriptions/{SUB}/resourceGroups/myRg>",
        ],
    ]
    assert (f"# once the workload reads through it: az role assignment delete --ids /subscriptions/{SUB}/"
            "resourceGroups/myRg/providers/Microsoft.Authorization/roleAssignments/r-1") in broad.fix_lines()


def test_a_data_role_on_a_whole_group_is_narrowed_onto_the_resources_harness_yaml_says_the_workload_reads() -> None:
    """By hand in the lab, after Microsoft's quick start: Key Vault Secrets User for the identity on the resource
    group (``az role assignment create --assignee CLIENT_ID --scope $(az group show ... --query id)``). The warning's
    grant named a placeholder scope, though harness.yaml names the vault the workload reads and ARM listed it: the
    grant is now on that vault (and only for the role's own service: not on a storage account it also reads), so it
    pastes as printed; the delete is still advised after it."""
    group = f"/subscriptions/{SUB}/resourceGroups/myRg"
    account = f"{group}/providers/Microsoft.Storage/storageAccounts/ordersdata"
    other_vault = f"/subscriptions/{SHARED}/resourceGroups/myRg/providers/Microsoft.KeyVault/vaults/shared-kv"
    facts = healthy()
    backend(facts).role_assignments = [assignment("Key Vault Secrets User", SECRETS_USER, group, "g-1")]
    cluster = ClusterFacts(collected_at=0.0, issuer_url=ISSUER, context="ctx", server="https://kube", access_resources={
        "https://finance-kv.vault.azure.net": {"id": VAULT, "name": "finance-kv", "resource_group": "myRg"},
        "https://shared-kv.vault.azure.net": {"id": other_vault, "name": "shared-kv", "resource_group": "myRg"},
        "https://ordersdata.blob.core.windows.net": {"id": account, "name": "ordersdata", "resource_group": "myRg"},
    })
    workload = WorkloadConfig(namespace="finance", service_account="backend-sa", access=[
        {"kind": "keyvault_secret", "vault_url": "https://finance-kv.vault.azure.net/", "secret": "db", "expect": "allow"},
        {"kind": "keyvault_secret", "vault_url": "https://shared-kv.vault.azure.net/", "secret": "s", "expect": "allow"},
        {"kind": "blob", "account_url": "https://ordersdata.blob.core.windows.net/", "container": "c", "blob": "b",
         "expect": "allow"},
    ])
    broad = findings(run_inventory_checks(facts, cluster, None, None, [workload]))["ROLE_OVERLY_BROAD"]
    assert words(broad)[0] == ["az", "role", "assignment", "create", "--assignee-object-id", "<principal-id>",
                               "--assignee-principal-type", "ServicePrincipal", "--role", "Key Vault Secrets User",
                               "--scope", VAULT]  # shared-kv is outside the group, ordersdata is no vault
    assert [line for line in broad.fix_lines() if line.startswith("az ")] == [broad.fix_lines()[0]]
    assert f"# once the workload reads through it: az role assignment delete --ids {group}/providers/" in "\n".join(
        broad.fix_lines())
    # a workload expected to be denied, or a resource ARM did not list, gives no scope: the person names one
    denied = workload.model_copy(update={"access": [workload.access[0].model_copy(update={"expect": "deny"})]})
    broad = findings(run_inventory_checks(facts, cluster, None, None, [denied]))["ROLE_OVERLY_BROAD"]
    assert words(broad)[0][-1] == f"<the-resource-under-{group}>"


def test_the_harness_s_own_reader_on_the_subscription_is_what_readme_asks_for_not_overly_broad() -> None:
    """By hand in the lab: the rendered Job, its identity given Reader on the subscription as README's Permissions
    say: the Job's own run warned ROLE_OVERLY_BROAD 'Reader on /subscriptions/... for application wi-harness (used
    by wi-harness/wi-harness)', whose fix swaps it for a grant on one resource: the harness could then no longer
    read what it verifies. Its Reader is left out; any other broad role of its identity is still named."""
    facts = healthy()
    backend(facts).role_assignments = [assignment("Reader", READER, f"/subscriptions/{SUB}", "r-2")]
    cluster = ClusterFacts(collected_at=0.0, issuer_url=ISSUER, context="ctx", server="https://kube")
    results = run_inventory_checks(facts, cluster, None, None, None, harness_client_id=BACKEND_ID.upper())
    assert "ROLE_OVERLY_BROAD" not in findings(results)
    backend(facts).role_assignments.append(assignment("Owner", OWNER, f"/subscriptions/{SUB}", "o-1"))
    results = run_inventory_checks(facts, cluster, None, None, None, harness_client_id=BACKEND_ID)
    broad = findings(results)["ROLE_OVERLY_BROAD"]
    assert "Owner on" in broad.message and "Reader on" not in broad.message


def test_key_vault_contributor_on_a_workload_identity_is_an_error() -> None:
    """Key Vault Contributor (no data action: the workload's read fails with ROLE_INSUFFICIENT, and a person adds
    Key Vault Secrets User beside it) still lets the workload reconfigure its vault and, under access policies, grant
    itself the secrets: an error, deleted by id."""
    facts = healthy()
    backend(facts).role_assignments += [
        assignment("Key Vault Contributor", "f25e0fa2-a7c8-4377-a976-54943a77a395", VAULT, "kvc-1")]
    broad = findings(run(facts))["ROLE_OVERLY_BROAD"]
    assert broad.severity == "error" and "grant itself their secrets" in broad.message
    assert words(broad)[0] == ["az", "role", "assignment", "delete", "--ids",
                               f"{VAULT}/providers/Microsoft.Authorization/roleAssignments/kvc-1"]


def test_storage_account_contributor_on_a_workload_identity_is_an_error() -> None:
    """Storage Account Contributor in place of a blob data role (found breaking the lab by hand with az role
    assignment create): no data action, yet it lists the account keys, which read every blob. It was no privileged
    role to the inventory, so at the account's own scope nothing was said; it is an error now, deleted by id."""
    account = f"/subscriptions/{SUB}/resourceGroups/myRg/providers/Microsoft.Storage/storageAccounts/ordersdata"
    facts = healthy()
    backend(facts).role_assignments += [
        assignment("Storage Account Contributor", "17d1049b-9a84-46fb-8f53-869881c3d3ab", account, "sac-1")]
    broad = findings(run(facts))["ROLE_OVERLY_BROAD"]
    assert broad.severity == "error" and "list its storage accounts' keys" in broad.message
    assert words(broad)[0] == ["az", "role", "assignment", "delete", "--ids",
                               f"{account}/providers/Microsoft.Authorization/roleAssignments/sac-1"]


def test_roles_that_grant_roles_are_errors_deleted_by_id() -> None:
    """By hand in the lab: az role assignment create --role "Role Based Access Control Administrator" (or "Key Vault
    Data Access Administrator") --scope <finance-kv> for finance's identity: az answered "Role ... doesn't exist" (the
    lab lacked both), and the inventory named neither role. Either lets the workload assign itself roles (Key Vault
    Administrator, at least): an error like User Access Administrator's, its fix the delete (neither reads data)."""
    facts = healthy()
    backend(facts).role_assignments += [
        assignment("Role Based Access Control Administrator",
                   f"{DEFINITIONS}/f58310d9-a9f6-439a-9e8d-f62e7b41a168", VAULT, "rbac-1"),
        assignment("Key Vault Data Access Administrator", f"{DEFINITIONS}/8b54135c-b56d-4d72-a534-26097cfdc8d8", VAULT,
                   "kvdaa-1")]
    broad = findings(run(facts))["ROLE_OVERLY_BROAD"]
    assert broad.severity == "error"
    assert "assign itself any role in its scope, Owner included" in broad.message
    assert "assign itself Key Vault Administrator" in broad.message
    assert words(broad)[:2] == [
        ["az", "role", "assignment", "delete", "--ids", f"{VAULT}/providers/Microsoft.Authorization/roleAssignments/{n}"]
        for n in ("rbac-1", "kvdaa-1")]


KV_ADMIN = f"{DEFINITIONS}/00482a5a-887f-4fb3-b363-3b7fe8e74483"
BACKEND_PRINCIPAL = "0f8fad5b-d9cb-469f-a165-70867728950e"
ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/myRg/providers/Microsoft.Storage/storageAccounts/ordersdata"


def _declared(*ids: str) -> list[WorkloadConfig]:
    """harness.yaml's workloads: finance reads finance-kv's secret, orders reads a blob of ordersdata."""
    declared = [
        WorkloadConfig(namespace="finance", service_account="backend-sa", access=[
            {"kind": "keyvault_secret", "vault_url": "https://finance-kv.vault.azure.net/", "secret": "db",
             "expect": "allow"}]),
        WorkloadConfig(namespace="orders", service_account="orders-sa", access=[
            {"kind": "blob", "account_url": "https://ordersdata.blob.core.windows.net/", "container": "c", "blob": "b",
             "expect": "allow"}]),
    ]
    return [w for w in declared if w.id in ids]


def _resources() -> ClusterFacts:
    return ClusterFacts(collected_at=0.0, issuer_url=ISSUER, context="ctx", server="https://kube", access_resources={
        "https://finance-kv.vault.azure.net": {"id": VAULT, "name": "finance-kv", "resource_group": "myRg"},
        "https://ordersdata.blob.core.windows.net": {"id": ACCOUNT, "name": "ordersdata", "resource_group": "myRg"},
    })


def test_a_data_role_that_writes_where_the_workload_only_reads_is_a_warning_whose_fix_grants_the_read_role_first(
) -> None:
    """By hand in the lab: az role assignment create --role "Key Vault Administrator" (or "Key Vault Secrets
    Officer") --scope <finance-kv> for finance's identity, whose harness.yaml entry only reads a secret: the inventory
    passed ("no administrative role and no role wider than a resource"), though the workload may now set, delete and
    purge what it reads. A warning now, naming what the role allows beyond reading; its fix grants Key Vault Secrets
    User on the same vault before the delete, so the workload reads throughout."""
    facts = healthy()
    backend(facts).principal_id = BACKEND_PRINCIPAL
    backend(facts).role_assignments = [assignment("Key Vault Administrator", KV_ADMIN, VAULT, "kva-1")]
    workloads = _declared("finance/backend-sa", "orders/orders-sa")
    broad = findings(run_inventory_checks(facts, _resources(), None, None, workloads))["ROLE_OVERLY_BROAD"]
    assert broad.severity == "warning"
    assert ("Key Vault Administrator lets the workload set, delete and purge every secret, key and certificate of the "
            "vault, where harness.yaml says it only reads") in broad.message
    assert [w for w in words(broad) if w] == [
        ["az", "role", "assignment", "create", "--assignee-object-id", BACKEND_PRINCIPAL, "--assignee-principal-type",
         "ServicePrincipal", "--role", "Key Vault Secrets User", "--scope", VAULT],
        ["az", "role", "assignment", "delete", "--ids", f"{VAULT}/providers/Microsoft.Authorization/roleAssignments/kva-1"],
    ]
    # Key Vault Secrets User already held on the vault: the delete alone
    backend(facts).role_assignments.append(assignment("Key Vault Secrets User", SECRETS_USER, VAULT, "ksu-1"))
    broad = findings(run_inventory_checks(facts, _resources(), None, None, workloads))["ROLE_OVERLY_BROAD"]
    assert [w[3] for w in words(broad) if w] == ["delete"]
    # no harness.yaml, or a workload using the identity that harness.yaml does not declare: what it does is unknown
    assert "ROLE_OVERLY_BROAD" not in findings(run(facts))
    facts.service_accounts.append(sa("web", "app-sa", BACKEND_ID))
    assert "ROLE_OVERLY_BROAD" not in findings(run_inventory_checks(facts, _resources(), None, None, workloads))


def test_blob_data_owner_and_contributor_where_the_workload_only_reads_are_warnings() -> None:
    """Storage Blob Data Owner (by hand in the lab: on ordersdata for orders' identity, the run passed and the
    inventory said nothing) and Contributor write and delete blobs: Storage Blob Data Reader on the same scope first."""
    facts = healthy()
    orders = facts.identities[1]
    orders.principal_id = BACKEND_PRINCIPAL
    orders.role_assignments = [
        assignment("Storage Blob Data Owner", f"{DEFINITIONS}/b7e6dc6d-f1e8-4753-8033-0f276bb0955b", ACCOUNT, "o-1"),
        assignment("Storage Blob Data Contributor", f"{DEFINITIONS}/ba92f5b4-2d11-453d-a403-e96b0029c9fe", ACCOUNT,
                   "c-1")]
    broad = findings(run_inventory_checks(facts, _resources(), None, None,
                                          _declared("finance/backend-sa", "orders/orders-sa")))["ROLE_OVERLY_BROAD"]
    assert broad.severity == "warning" and "set their POSIX access control" in broad.message
    assert "Storage Blob Data Contributor lets the workload write and delete blobs and containers" in broad.message
    assert [(w[3], w[-3], w[-1]) if w[3] == "create" else (w[3], w[-1]) for w in words(broad) if w] == [
        ("create", "Storage Blob Data Reader", ACCOUNT),  # one grant for both, before either delete
        ("delete", f"{ACCOUNT}/providers/Microsoft.Authorization/roleAssignments/o-1"),
        ("delete", f"{ACCOUNT}/providers/Microsoft.Authorization/roleAssignments/c-1"),
    ]


def test_a_data_role_that_writes_on_a_whole_group_is_narrowed_to_the_read_role() -> None:
    """Key Vault Secrets Officer on the resource group: the warning names both the scope and the writes, and the grant
    that comes before the (advised) delete is Key Vault Secrets User on the vault harness.yaml reads."""
    group = f"/subscriptions/{SUB}/resourceGroups/myRg"
    facts = healthy()
    backend(facts).role_assignments = [
        assignment("Key Vault Secrets Officer", f"{DEFINITIONS}/b86a8fe4-44ce-4948-aee5-eccb2c155cd7", group, "kso-1")]
    broad = findings(run_inventory_checks(facts, _resources(), None, None,
                                          _declared("finance/backend-sa")))["ROLE_OVERLY_BROAD"]
    assert broad.severity == "warning"
    assert "a whole resource group; Key Vault Secrets Officer lets the workload set, delete and purge" in broad.message
    assert words(broad)[0][:4] + words(broad)[0][-4:] == ["az", "role", "assignment", "create", "--role",
                                                          "Key Vault Secrets User", "--scope", VAULT]
    assert f"# once the workload reads through it: az role assignment delete --ids {group}/providers/" in "\n".join(
        broad.fix_lines())


def test_a_role_at_a_subscription_alone_is_a_warning() -> None:
    facts = healthy()
    backend(facts).role_assignments = [assignment("Reader", READER, f"/subscriptions/{SUB}", "r-2")]
    broad = findings(run(facts))["ROLE_OVERLY_BROAD"]
    assert broad.severity == "warning" and "a whole subscription" in broad.message


# ---------------------------------------------------------------- what the harness cannot see


def test_refused_lookups_are_an_incomplete_inventory_not_a_failure() -> None:
    facts = healthy(
        refused=[
            Fetched(
                "https://arm/providers/Microsoft.ResourceGraph/resources", 403, None, "denied", "AccessDenied"
            )
        ]
    )
    results = run(facts)
    assert status(results)["inventory.identities_listed"] == "warn"
    incomplete = findings(results)["INVENTORY_INCOMPLETE"]
    assert incomplete.severity == "warning" and words(incomplete)[0][:4] == [
        "az",
        "role",
        "assignment",
        "create",
    ]


def test_without_an_issuer_no_credential_is_matched() -> None:
    results = run(healthy(), issuer=None)
    assert {
        s
        for i, s in status(results).items()
        if i
        in ("inventory.credentials_present", "inventory.no_old_issuers", "inventory.no_orphaned_credentials")
    } == {"skip"}


def test_service_accounts_that_cannot_be_listed_fail_and_their_dependents_are_skipped() -> None:
    facts = healthy(
        service_accounts=[],
        all_service_accounts=[],
        service_accounts_error=KubeFailure(403, "Forbidden", "serviceaccounts is forbidden"),
    )
    results = run(facts)
    assert status(results)["inventory.service_accounts"] == "fail"
    assert findings(results)["KUBE_FORBIDDEN"].severity == "error"
    assert status(results)["inventory.no_orphaned_credentials"] == "skip"


def test_without_azure_only_the_service_accounts_are_checked() -> None:
    facts = InventoryFacts(
        collected_at=0.0, service_accounts=[sa("a", "b", BACKEND_ID)], all_service_accounts=["a/b"]
    )
    results = run(facts)
    assert status(results)["inventory.service_accounts"] == "pass"
    assert {s for i, s in status(results).items() if i != "inventory.service_accounts"} == {"skip"}


# ---------------------------------------------------------------- the run.json section


def test_the_section_is_the_schemas_and_renders_as_tables() -> None:
    facts = healthy()
    facts.service_accounts.append(sa("batch", "label-only", None, use_label="true"))
    backend(facts).federated_credentials.append(credential("gone", "system:serviceaccount:x:y"))
    cluster = ClusterFacts(collected_at=0.0, issuer_url=ISSUER)
    section = inventory_section(facts, cluster, ExpectConfig())
    Inventory.model_validate(section)
    states = {row["service_account"]: row["state"] for row in section["service_accounts"]}
    assert states == {
        "finance/backend-sa": "credential for this issuer",
        "orders/orders-sa": "credential for this issuer",
        "batch/label-only": "label only: no client id",
    }
    gone = next(row for row in section["federated_credentials"] if row["name"] == "gone")
    assert gone["relation"] == "exact" and gone["service_account_exists"] is False
    titles = [t.title for t in section_tables("Inventory", section)]
    assert titles == [
        "Inventory",
        "Inventory › Service accounts",
        "Inventory › Federated credentials",
        "Inventory › Identities",
        "Inventory › Role assignments",
        "Inventory › Unreadable",
    ]


def test_hundreds_of_orphans_are_one_finding_with_a_bounded_fix_list() -> None:
    facts = healthy()
    backend(facts).federated_credentials += [
        credential(f"gone-{n}", f"system:serviceaccount:old:sa-{n}") for n in range(120)
    ]
    orphan = findings(run(facts))["FIC_ORPHANED"]
    assert len(orphan.evidence["credentials"]) == 120 and "and 110 more" in orphan.message
    assert orphan.message.startswith("120 federated credentials trust this cluster")
    assert len(orphan.remediation) == 61
    assert orphan.fix_lines()[-1].startswith("# and 61 more of the same kind")  # 120 deletes and one advice


def test_the_inventorys_restart_names_what_runs_under_the_service_account() -> None:
    """By hand in the lab (whole-cluster run): orders-sa annotated {client-id}: the inventory's fix printed
    kubectl rollout restart deployment -n orders '<deployment>', which fails as pasted, while the workload view
    named deployment/orders-api. The inventory lists the labelled pods once (pod_owners) and restarts each owner
    by name; pasted as printed, the next run passed."""
    facts = healthy()
    guid = "22222222-3333-4444-8555-666666666666"
    facts.service_accounts.append(sa("web", "app-sa", f"{{{guid}}}"))
    facts.pod_owners = {"web/app-sa": [{"kind": "Deployment", "name": "web-api", "pods": ["web-api-7d9f-x"]},
                                       {"kind": "Job", "name": "nightly-29410", "pods": ["nightly-29410-k2p"]}],
                        "web/other-sa": [{"kind": "StatefulSet", "name": "db", "pods": ["db-0"]}]}
    lines = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()
    # the Job's pod deleted, with what makes it again (the one restart builder the workload view uses too)
    assert [line.split("   #")[0] for line in lines[1:]] == [
        "kubectl rollout restart deployment/web-api -n web", "kubectl delete pod -n web nightly-29410-k2p",
        "# Job/nightly-29410 makes the deleted pods again (while it has not completed); the webhook acts on pod "
        "CREATE only"]
    facts.pod_owners = {}  # listed: no labelled pod runs under it, nothing to restart
    assert len(findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()) == 1


def test_the_inventorys_restart_deletes_the_pods_of_an_on_delete_statefulset_or_daemonset() -> None:
    """A StatefulSet or DaemonSet with updateStrategy OnDelete: kubectl rollout restart changes its template and
    replaces no pod (apps/v1: OnDelete makes a pod again only once it is deleted), so the inventory printed a
    restart that left the old pods without the new client id, as the per-workload view had learnt not to. Its
    pods are deleted by name, with why; one with RollingUpdate, or whose strategy could not be read, is
    restarted."""
    facts = healthy()
    guid = "22222222-3333-4444-8555-666666666666"
    facts.service_accounts.append(sa("web", "app-sa", f"{{{guid}}}"))
    facts.pod_owners = {"web/app-sa": [
        {"kind": "StatefulSet", "name": "db", "pods": ["db-0", "db-1"], "update_strategy": "OnDelete"},
        {"kind": "DaemonSet", "name": "agent", "pods": ["agent-x2"], "update_strategy": "OnDelete"},
        {"kind": "StatefulSet", "name": "cache", "pods": ["cache-0"], "update_strategy": "RollingUpdate"},
        {"kind": "DaemonSet", "name": "logs", "pods": ["logs-q"], "update_strategy": None},
        {"kind": "StatefulSet", "name": "kafka", "pods": ["kafka-0", "kafka-1"], "update_strategy": "RollingUpdate",
         "partition": 1}]}
    lines = [line.split("   #")[0] for line in findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()[1:]]
    assert lines == [
        "kubectl delete pod -n web db-0", "kubectl delete pod -n web db-1",
        "# StatefulSet/db has updateStrategy OnDelete: a template change (kubectl rollout restart's too) replaces "
        "no pod, it makes each deleted one again from the template",
        "kubectl delete pod -n web agent-x2",
        "# DaemonSet/agent has updateStrategy OnDelete: a template change (kubectl rollout restart's too) replaces "
        "no pod, it makes each deleted one again from the template",
        "kubectl rollout restart statefulset/cache -n web", "kubectl rollout restart daemonset/logs -n web",
        # rollingUpdate.partition 1: a restart would replace kafka-1 only (apps/v1 RollingUpdateStatefulSetStrategy:
        # "All pods from ordinal Partition-1 to 0 remain untouched"); a deleted pod is made again and mutated
        "kubectl delete pod -n web kafka-0", "kubectl delete pod -n web kafka-1",
        "# StatefulSet/kafka has rollingUpdate.partition 1: kubectl rollout restart replaces only its pods of "
        "ordinal 1 and above; it makes each deleted pod again"]
    # a paused Deployment (kubectl rollout pause): kubectl rollout restart refuses it ("can't restart paused
    # deployment (run rollout resume first)", the real kubectl against the lab), so it is resumed first
    facts.pod_owners = {"web/app-sa": [{"kind": "Deployment", "name": "api", "pods": ["api-1"], "paused": True}]}
    lines = [line.split("   #")[0].rstrip() for line in findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()[1:]]
    assert lines == ["kubectl rollout resume deployment/api -n web", "kubectl rollout restart deployment/api -n web"]


def test_the_inventorys_fix_leaves_running_the_pods_that_already_carry_the_client_id_it_annotates() -> None:
    """By hand in the lab: billing-sa's annotation overwritten with its identity's principal id while its pods
    (a Deployment, an OnDelete StatefulSet) ran with the right client id. SA_CLIENT_ID_UNKNOWN's fix annotated the
    right client id, then restarted the Deployment and deleted both database pods, which already carried it: a
    needless outage of a database on a real cluster. Owners whose pods all carry the client id the fix annotates
    are named in one line and left running; the others are restarted as before."""
    facts = healthy()
    principal, right = "17956034-dd1b-43e6-bebe-51e9bfbce260", facts.identities[0].client_id
    facts.service_accounts.append(sa("web", "app-sa", principal))
    facts.principal_of[str(principal).lower()] = {"kind": "managed_identity", "client_id": right, "name": "x"}
    facts.pod_owners = {"web/app-sa": [
        {"kind": "Deployment", "name": "api", "pods": ["api-1"], "client_ids": [right.upper()]},
        {"kind": "StatefulSet", "name": "db", "pods": ["db-0"], "client_ids": [right],
         "update_strategy": "OnDelete"},
        {"kind": "Deployment", "name": "old", "pods": ["old-1"], "client_ids": [principal]},
        {"kind": "Deployment", "name": "half", "pods": ["half-1", "half-2"], "client_ids": ["", right]}]}
    lines = [line.split("   #")[0] for line in findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()]
    assert lines == [
        f"kubectl annotate serviceaccount -n web app-sa azure.workload.identity/client-id={right} --overwrite",
        "kubectl rollout restart deployment/old -n web", "kubectl rollout restart deployment/half -n web",
        f"# Deployment/api, StatefulSet/db in web: the running pods already carry AZURE_CLIENT_ID={right}, no "
        "restart needed"]


def test_a_name_several_identities_have_is_annotated_with_the_one_that_trusts_the_service_account() -> None:
    """The same identity name in two resource groups (az identity create -g otherRg -n my-identity beside the
    first): the inventory listed both behind a '<client-id>' annotate and did not say which trusts web/app-sa,
    though it had read their federated credentials. Now it annotates the one whose credential trusts the
    ServiceAccount (named_identities.choose, as the workload view does); with two trusting it lists those two by
    resource id, with none it says so and lists all."""
    first = {"kind": "managed_identity", "name": "my-identity", "client_id": ORDERS_ID,
             "resource_id": identity_id("my-identity")}
    second = {"kind": "managed_identity", "name": "my-identity", "client_id": APP_ID,
              "resource_id": identity_id("my-identity", group="otherRg")}
    subject = "system:serviceaccount:web:app-sa"
    trusting = InventoryIdentity(kind="managed_identity", client_id=APP_ID, name="my-identity",
                                 resource_id=second["resource_id"], principal_id="p-second",
                                 federated_credentials=[credential("fed-cred-web", subject)], role_assignments=[])
    facts = healthy(named={"my-identity": [first, second]})
    facts.service_accounts.append(sa("web", "app-sa", "my-identity"))
    facts.identities.append(trusting)
    finding = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"]
    assert (f"(2 identities are named my-identity; of them only {APP_ID} has a federated credential for {subject})"
            in finding.message)
    assert finding.fix_lines()[0] == (f"kubectl annotate serviceaccount -n web app-sa "
                                      f"azure.workload.identity/client-id={APP_ID} --overwrite")
    # both trust it: the choice is the person's, between those two, each by its resource id
    facts.identities[1].federated_credentials = [*(facts.identities[1].federated_credentials or []),
                                                 credential("fed-cred-web", subject)]
    facts.named = {"my-identity": [first, second]}
    lines = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"].fix_lines()
    assert lines[0] == (f"# 2 identities are named my-identity and 2 of them have a federated credential for "
                        f"{subject}; annotate the client id of the one this workload is to use:")
    assert lines[1:3] == [f"#   managed identity {first['resource_id']}: client id {ORDERS_ID}",
                          f"#   managed identity {second['resource_id']}: client id {APP_ID}"]
    assert "client-id=<client-id>" in lines[3]
    # none trusts it: said, and every identity of the name listed
    facts = healthy(named={"my-identity": [first, second]})
    facts.service_accounts.append(sa("web", "app-sa", "my-identity"))
    finding = findings(run(facts))["SA_CLIENT_ID_UNKNOWN"]
    assert f"none of them has a federated credential for {subject} that the harness read" in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("# 2 identities are named my-identity and none has a federated credential for "
                               f"{subject} that the harness read")
    assert lines[1:3] == [f"#   managed identity {first['resource_id']}: client id {ORDERS_ID}",
                          f"#   managed identity {second['resource_id']}: client id {APP_ID}"]
    assert "client-id=<client-id>" in lines[3]


def test_an_issuer_with_a_line_end_is_this_issuers_twin_printed_escaped() -> None:
    """A credential whose issuer carries the CR of az's `-o tsv` line end (Git Bash, WSL): FIC_OLD_ISSUER named it
    'another cluster's issuer' (no delete, 'may still serve that cluster') and printed the CR raw, which sends a
    terminal's cursor back to the start of the line. It is this issuer's twin, shown escaped, and updated in
    place, as the workload's FIC_ISSUER_MISMATCH updates it."""
    facts = healthy()
    backend(facts).federated_credentials = [
        credential("fed-cred-backend", "system:serviceaccount:finance:backend-sa", issuer=ISSUER + "\r")]
    old = findings(run(facts))["FIC_OLD_ISSUER"]
    assert "this issuer's twin: it has whitespace around it" in old.message and "\r" not in old.message
    assert f"{ISSUER}\\r" in old.message
    assert [w[3] for w in words(old) if w] == ["update"]


def test_creates_for_many_service_accounts_sharing_one_identity_say_where_the_limit_refuses() -> None:
    """Found by hand: 30 ServiceAccounts of one namespace annotated with one identity that held one credential.
    SA_WITHOUT_FIC printed 30 creates on it and no word of the limit: pasted, the 20th credential fills it and
    every create after is refused. Now the room advice comes once, before the first create the limit refuses."""
    facts = healthy()
    facts.service_accounts += [sa("many", f"sa-{n}", BACKEND_ID) for n in range(1, 31)]
    facts.all_service_accounts += [f"many/sa-{n}" for n in range(1, 31)]
    fixes = findings(run(facts))["SA_WITHOUT_FIC"].fix_lines()
    creates = [n for n, line in enumerate(fixes) if " federated-credential create " in line]
    assert len(creates) == 30
    [note] = [n for n, line in enumerate(fixes) if line.startswith("#")]
    assert note == creates[19] - 2  # the advice and the listing, before the create of the 21st credential
    assert fixes[note].startswith("# managed identity myWorkloadId holds 20 federated credentials once the creates "
                                  "above are made, the most it may: each create below is refused")
    assert fixes[note + 1].startswith("az identity federated-credential list")
    facts.service_accounts, facts.all_service_accounts = facts.service_accounts[:20], facts.all_service_accounts[:22]
    assert not any(line.startswith("#") for line in findings(run(facts))["SA_WITHOUT_FIC"].fix_lines())  # 1 + 18


@pytest.mark.parametrize(("caller", "expected"), [
    ({"appid": BACKEND_ID, "idtyp": "app", "oid": "o-1"}, BACKEND_ID),  # the Job, through Workload ID
    ({"appid": BACKEND_ID, "oid": "o-1"}, BACKEND_ID),  # an application's token without the optional idtyp claim
    ({"appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "upn": "someone@contoso.com", "idtyp": "user"}, None),
    ({"error": "no token"}, None),
    (None, None),
], ids=["app", "app-without-idtyp", "person", "no-token", "unknown"])
def test_without_a_harness_section_the_harness_is_the_application_its_arm_token_was_issued_to(
    caller: dict[str, Any] | None, expected: str | None
) -> None:
    """A walk of the README by hand: the rendered Job run with a harness.yaml that has no harness: section warned
    ROLE_OVERLY_BROAD for its own Reader on the subscription (README's Permissions ask for it): the exemption knew
    the harness's identity only from harness.client_id. The application its ARM token was issued to is it too."""
    from harness.analysis import harness_client_id
    from harness.config import parse_config

    unset = parse_config({"workloads": [{"namespace": "a", "service_account": "b"}]})
    assert harness_client_id(unset, caller) == expected
    configured = parse_config({"workloads": [{"namespace": "a", "service_account": "b"}],
                               "harness": {"client_id": "7b0f6c1e-2d4a-4e8b-9c3d-5a6f7e8d9c0b"}})
    assert harness_client_id(configured, caller) == "7b0f6c1e-2d4a-4e8b-9c3d-5a6f7e8d9c0b"
