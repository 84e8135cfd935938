"""An Entra app registration as a workload's identity, broken by hand with the real az CLI (``az ad app``, ``az ad
sp``, ``az ad app federated-credential``, ``az role assignment``) and kubectl, as a person breaks it; the harness's
verdict, its first finding, and the printed fix run exactly as printed (then the suites pass).

The workload is made as azwi makes one (``az ad app create``, ``az ad sp create``, a federated credential for the
ServiceAccount, ``Key Vault Secrets User`` on finance-kv for the service principal) in a namespace of its own; each
test's harness.yaml names that workload alone. az is the real CLI aimed at the lab (``WI_HARNESS_AZ``, else az on
PATH; the module is skipped without one), through the remediation test's shell.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_e2e_lab import checks_of, run_suites
from test_remediation_repairs_lab import Shell, shell, tools  # noqa: F401  (fixtures)

from lab.bootstrap import RunningLab

pytestmark = pytest.mark.slow
CLIENT_ID = "azure.workload.identity/client-id"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's well-known appId
APPLICATION_READ_ALL = "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"  # Graph's app role id for Application.Read.All


@dataclass
class App:
    """One app registration as az shows it: appId (the client id), its object id, its service principal's."""

    app_id: str
    object_id: str
    principal_id: str


@dataclass
class AppWorkload:
    namespace: str
    service_account: str
    app: App
    vault_id: str
    config: Path  # harness.yaml naming this workload with its client id
    config_without_client_id: Path  # the same, the client id taken from the ServiceAccount

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.service_account}"


def make_app(sh: Shell, name: str) -> App:
    app_id = sh.must(f"az ad app create --display-name {name} --query appId -o tsv --only-show-errors").strip()
    principal_id = sh.must(f"az ad sp create --id {app_id} --query id -o tsv --only-show-errors").strip()
    object_id = sh.must(f"az ad app show --id {app_id} --query id -o tsv").strip()
    return App(app_id, object_id, principal_id)


def trust(sh: Shell, app: App, issuer: str, namespace: str, service_account: str, name: str) -> None:
    body = {"name": name, "issuer": issuer, "subject": f"system:serviceaccount:{namespace}:{service_account}",
            "audiences": [EXCHANGE_AUDIENCE]}
    sh.must(f"az ad app federated-credential create --id {app.app_id} --parameters "
               f"{shlex.quote(json.dumps(body))} -o none --only-show-errors")


def harness_graph_grants(sh: Shell, info: dict[str, Any]) -> tuple[str, str, list[str]]:
    """The harness's service principal id, the URL of its Graph app role assignments, and their ids (what an admin
    deletes to take its consented Application.Read.All away)."""
    principal = sh.must(f"az ad sp show --id {info['harness']['client_id']} --query id -o tsv").strip()
    assignments = f"{info['endpoints']['graph']}/v1.0/servicePrincipals/{principal}/appRoleAssignments"
    return principal, assignments, sh.must(f"az rest --method GET --url {assignments} --query 'value[].id' -o tsv").split()


def give_graph_read_back(sh: Shell, principal: str, assignments: str) -> None:
    """Application.Read.All for the harness again, for the module's other tests, unless it holds an app role
    assignment already (a pasted fix may have granted it)."""
    if sh.must(f"az rest --method GET --url {assignments} --query 'value[].id' -o tsv").split():
        return
    graph_sp = sh.must(f"az ad sp show --id {GRAPH_APP_ID} --query id -o tsv").strip()
    body = json.dumps({"principalId": principal, "resourceId": graph_sp, "appRoleId": APPLICATION_READ_ALL})
    sh.must(f"az rest --method POST --url {assignments} --body {shlex.quote(body)}")


def delete_credentials(sh: Shell, app: App) -> None:
    """Every federated credential of the app deleted."""
    names = sh.must(f"az ad app federated-credential list --id {app.app_id} --query '[].name' -o tsv").split()
    sh.must(*(f"az ad app federated-credential delete --id {app.app_id} --federated-credential-id {name}"
              for name in names))


@pytest.fixture(scope="module")
def workload(shell: Shell, running_lab: RunningLab) -> AppWorkload:  # noqa: F811
    info = running_lab.info()
    namespace, account = f"web-{uuid.uuid4().hex[:6]}", "web-sa"
    app = make_app(shell, f"{namespace}-app")
    trust(shell, app, info["issuer_url"], namespace, account, "kubernetes-federated-credential")
    vault_id = shell.must("az keyvault show -n finance-kv --query id -o tsv").strip()
    shell.must(f"az role assignment create --assignee-object-id {app.principal_id} --assignee-principal-type "
               f"ServicePrincipal --role 'Key Vault Secrets User' --scope {vault_id} -o none --only-show-errors",
               f"kubectl create namespace {namespace}", f"kubectl create serviceaccount -n {namespace} {account}",
               f"kubectl annotate serviceaccount -n {namespace} {account} {CLIENT_ID}={app.app_id}")
    data = yaml.safe_load(running_lab.harness_config.read_text())
    finance = next(w for w in data["workloads"] if w["namespace"] == "finance")
    entry = {"namespace": namespace, "service_account": account, "client_id": app.app_id,
             "access": [a for a in finance["access"] if a.get("name") == "finance-kv"]}
    configs = []
    for suffix, workload_entry in (("", entry), ("-annotated", {k: v for k, v in entry.items() if k != "client_id"})):
        path = shell.home / f"{namespace}{suffix}.yaml"
        path.write_text(yaml.safe_dump({**data, "workloads": [workload_entry]}))
        configs.append(path)
    return AppWorkload(namespace, account, app, vault_id, configs[0], configs[1])


def test_an_app_made_by_create_for_rbac_as_the_quick_start_does_passes(
    workload: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """``az ad sp create-for-rbac --name X`` (azure-workload-identity's quick start makes the app so: application,
    service principal and a client secret in one command, the secret through Graph's addPassword, which the lab
    refused: "Resource not found for the segment 'addPassword'"), then the credential, the role and the
    ServiceAccount as for any app: the suites pass."""
    namespace = f"rbac-{uuid.uuid4().hex[:6]}"
    app_id = shell.must(f"az ad sp create-for-rbac --name {namespace}-app --query appId -o tsv "
                        "--only-show-errors").strip()
    app = App(app_id, "", shell.must(f"az ad sp show --id {app_id} --query id -o tsv").strip())
    trust(shell, app, running_lab.info()["issuer_url"], namespace, "web-sa", "kubernetes-federated-credential")
    shell.must(f"az role assignment create --assignee {app_id} --role 'Key Vault Secrets User' --scope "
               f"{workload.vault_id} -o none --only-show-errors", f"kubectl create namespace {namespace}",
               f"kubectl create serviceaccount -n {namespace} web-sa",
               f"kubectl annotate serviceaccount -n {namespace} web-sa {CLIENT_ID}={app_id}")
    data = yaml.safe_load(workload.config.read_text())
    data["workloads"][0].update(namespace=namespace, client_id=app_id)
    config = workload.config.with_name(f"{namespace}.yaml")
    config.write_text(yaml.safe_dump(data))
    _, checks, entry = run(tmp_path, config, f"{namespace}/web-sa")
    assert entry["verdict"] == "pass", not_passing(checks)


@pytest.fixture
def healthy(workload: AppWorkload, shell: Shell) -> Iterator[AppWorkload]:  # noqa: F811
    """The workload as made; whatever a test changed of its annotation is put back after it."""
    yield workload
    shell.must(f"kubectl annotate serviceaccount -n {workload.namespace} {workload.service_account} "
               f"{CLIENT_ID}={workload.app.app_id} --overwrite")


def run(tmp_path: Path, config: Path, ref: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """The suites for ``ref``: (run.json, the workload's checks by id, its entry in run.json's workloads)."""
    _, document = run_suites(tmp_path / uuid.uuid4().hex[:8], "--config", str(config), "--workload", ref)
    entry = next(w for w in document["workloads"] if w["id"] == ref)
    return document, checks_of(document, ref), entry


def not_passing(checks: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(id, message) of each check that did not pass: what a failed 'the run passes' assertion shows."""
    return [(c["id"], c["message"]) for c in checks.values() if c["status"] != "pass"]


def paste(sh: Shell, finding: dict[str, Any]) -> None:
    """The finding's printed fix, every line that is not a comment, in one bash as a person pastes it."""
    lines = [line for line in finding["remediation"] if not line.lstrip().startswith("#")]
    assert lines, finding
    done = sh.run(lines)
    assert done.returncode == 0, sh.shown(done)


def test_the_suites_pass_for_the_app_registration_as_made(healthy: AppWorkload, tmp_path: Path) -> None:
    document, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)
    assert checks["identity.matches"]["evidence"]["kind"] == "application"


@pytest.mark.parametrize("copied", ["application", "service principal"])
def test_the_app_registrations_object_id_annotated_is_named_with_its_app_id(
    healthy: AppWorkload, shell: Shell, tmp_path: Path, copied: str  # noqa: F811
) -> None:
    """The portal's app registration page shows "Object ID" next to "Application (client) ID" (and the enterprise
    application's page its service principal's Object ID); the object id copied into the annotation is no client
    id (AADSTS700016). It was IDENTITY_NOT_FOUND, whose printed look-ups (az identity list, az ad app list
    --filter appId eq ...) find nothing; the harness now names the application and its appId, in the workload's
    findings and the inventory's, and the printed annotation repairs it. The exchange's own AADSTS700016 finding
    also set the annotation to the appId (it printed those look-ups and the tenant annotation, for the service
    principal's object id too)."""
    app = healthy.app
    object_id = app.object_id if copied == "application" else app.principal_id
    shell.must(f"kubectl annotate serviceaccount -n {healthy.namespace} {healthy.service_account} "
               f"{CLIENT_ID}={object_id} --overwrite")
    document, checks, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
    assert entry["verdict"] == "fail"
    first = entry["findings"][0]
    assert first["code"] == "SA_ANNOTATION_IS_PRINCIPAL_ID", [f["code"] for f in entry["findings"]]
    assert f"{object_id} is the {'' if copied == 'application' else 'principal ('}object" in first["message"]
    assert f"{copied} {healthy.namespace}-app" in first["message"] and app.app_id in first["message"]
    assert checks["identity.matches"]["status"] == "fail"
    for finding in entry["findings"]:
        assert [line for line in finding["remediation"] if f"{CLIENT_ID}={app.app_id}" in line], finding
        assert not [line for line in finding["remediation"] if object_id in line or "tenant-id" in line], finding
    unknown = next(f for f in document["findings"] if f["code"] == "SA_CLIENT_ID_UNKNOWN")
    assert f"{object_id} is the" in unknown["message"] and f"{copied} {healthy.namespace}-app" in unknown["message"]
    assert any(f"{CLIENT_ID}={app.app_id}" in line for line in unknown["remediation"])
    paste(shell, first)
    _, checks, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)


def test_the_object_id_in_harness_yaml_is_fixed_in_harness_yaml_not_in_the_annotation(
    healthy: AppWorkload, tmp_path: Path
) -> None:
    """harness.yaml's client_id is the app registration's Object ID, the ServiceAccount rightly annotated with its
    appId (the workload works). The run printed an annotation with the object id (pasted, the workload fails with
    AADSTS700016), SA_ANNOTATION_IS_PRINCIPAL_ID asking for the appId the annotation holds, and
    EXCHANGE_WRONG_IDENTITY; it now says harness.yaml's client_id is the object id, and the edit it asks for
    passes."""
    app = healthy.app
    data = yaml.safe_load(healthy.config.read_text())
    data["workloads"][0]["client_id"] = app.object_id
    config = healthy.config.with_name("object-id.yaml")
    config.write_text(yaml.safe_dump(data))
    _, checks, entry = run(tmp_path, config, healthy.ref)
    assert [f["code"] for f in entry["findings"]] == ["SA_CLIENT_ID_MISMATCH"], entry["findings"]
    (line,) = entry["findings"][0]["remediation"]
    assert line.startswith(f"# set client_id: {app.app_id} for {healthy.ref} in harness.yaml"), line
    assert checks["exchange.identity"]["status"] == "pass"
    data["workloads"][0]["client_id"] = app.app_id  # the edit
    config.write_text(yaml.safe_dump(data))
    _, checks, entry = run(tmp_path, config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)


def test_harness_yaml_naming_a_managed_identity_beside_the_apps_client_id_is_fixed_in_harness_yaml(
    healthy: AppWorkload, shell: Shell, tmp_path: Path  # noqa: F811
) -> None:
    """harness.yaml names the app's client id (as the ServiceAccount does, and the workload works) and, left from a
    managed identity the workload used before, an identity_resource_id. The fix annotated the managed identity's
    client id, moving a working workload (the next run asked to annotate the app back); it now asks to drop the
    identity_resource_id (or name that identity throughout), and the edit passes."""
    managed = shell.must("az identity list --query '[0].id' -o tsv").strip()
    data = yaml.safe_load(healthy.config.read_text())
    data["workloads"][0]["identity_resource_id"] = managed
    config = healthy.config.with_name("two-identities.yaml")
    config.write_text(yaml.safe_dump(data))
    _, _, entry = run(tmp_path, config, healthy.ref)
    assert [f["code"] for f in entry["findings"]] == ["IDENTITY_CLIENT_ID_MISMATCH"], entry["findings"]
    (line,) = entry["findings"][0]["remediation"]
    assert line.startswith(f"# in harness.yaml, for {healthy.ref}: drop identity_resource_id"), line
    del data["workloads"][0]["identity_resource_id"]  # the edit
    config.write_text(yaml.safe_dump(data))
    _, checks, entry = run(tmp_path, config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)


def test_another_apps_token_is_not_judged_by_the_expected_apps_role_assignments(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """A second app registration that also trusts the ServiceAccount (a credential made on the wrong app, say),
    and the ServiceAccount annotated with that app's client id: Entra issues the pod a token as the other app,
    which holds no role on the vault. The denial is that app's, not the expected one's: the access check is
    skipped because of exchange.identity, and no role finding claims a cause (it was ROLE_PROPAGATION_PENDING,
    "wait a few minutes", from the expected app's young assignment). The printed annotation repairs it."""
    other = make_app(shell, f"{healthy.namespace}-other")
    trust(shell, other, running_lab.info()["issuer_url"], healthy.namespace, healthy.service_account, "copied")
    shell.must(f"kubectl annotate serviceaccount -n {healthy.namespace} {healthy.service_account} "
               f"{CLIENT_ID}={other.app_id} --overwrite")
    _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    codes = [f["code"] for f in entry["findings"]]
    assert entry["verdict"] == "fail" and codes[0] == "SA_CLIENT_ID_MISMATCH", codes
    assert checks["exchange.identity"]["status"] == "fail"
    access = checks["access.keyvault:finance-kv/db-password"]
    assert access["status"] == "skip" and access["evidence"]["blocked_by"] == "exchange.identity", access
    assert not {c for c in codes if c.startswith("ROLE_") or c.startswith("ACCESS_")}, codes
    paste(shell, entry["findings"][0])
    _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)


def restore_line(object_id: str) -> str:
    return f"/v1.0/directory/deletedItems/{object_id}/restore"


def test_a_deleted_service_principal_is_restored_not_made_again(
    healthy: AppWorkload, shell: Shell, tmp_path: Path  # noqa: F811
) -> None:
    """``az ad sp delete`` (the enterprise application deleted): SERVICE_PRINCIPAL_MISSING. Its printed fix was
    ``az ad sp create``: a new service principal, a new object id, and the vault's role assignment (which names
    the old one) no longer applies, so the next run failed with ROLE_ASSIGNMENT_MISSING. Graph keeps the deleted
    service principal for 30 days: the printed fix restores it (az rest), and the run passes at once."""
    app = healthy.app
    shell.must(f"az ad sp delete --id {app.app_id}")
    _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    first = entry["findings"][0]
    assert first["code"] == "SERVICE_PRINCIPAL_MISSING", [f["code"] for f in entry["findings"]]
    assert f"its service principal {app.principal_id} was deleted" in first["message"]
    assert [line for line in first["remediation"] if restore_line(app.principal_id) in line]
    assert not [line for line in first["remediation"] if "az ad sp create" in line]
    paste(shell, first)
    _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)


def test_a_deleted_application_is_restored_with_its_credentials_and_service_principal(
    healthy: AppWorkload, shell: Shell, tmp_path: Path  # noqa: F811
) -> None:
    """``az ad app delete``: Entra knows the client id no more (AADSTS700016). It was IDENTITY_NOT_FOUND whose
    look-ups find nothing (and the inventory's SA_CLIENT_ID_UNKNOWN, the same); the application and the service
    principal deleted with it are in Graph's deleted items, so both findings print their restores, the
    application's first (Graph restores a service principal only onto its application), and pasting the
    workload's repairs the lab: its federated credential and role assignment are back with it."""
    app = healthy.app
    shell.must(f"az ad app delete --id {app.app_id}")
    document, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    first = entry["findings"][0]
    assert first["code"] == "IDENTITY_NOT_FOUND", [f["code"] for f in entry["findings"]]
    assert f"object id {app.object_id}) was deleted" in first["message"]
    restores = [line for line in first["remediation"] if "/restore" in line]
    assert [restore_line(app.object_id) in restores[0], restore_line(app.principal_id) in restores[1]] == [True, True]
    unknown = next(f for f in document["findings"] if f["code"] == "SA_CLIENT_ID_UNKNOWN")
    assert "deleted" in unknown["message"] and [line for line in unknown["remediation"] if "/restore" in line]
    paste(shell, first)
    document, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)
    assert document["verdict"] == "pass"


def test_an_application_deleted_and_made_again_under_its_name_is_annotated_with_its_new_client_id(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """``az ad app delete``, then the app made again as at first (az ad app create under the same name, a
    service principal, a credential for the ServiceAccount, the vault role): the person started over, and the
    annotation keeps the old client id. The fix was the restore of the deleted app alone (it comes back beside
    the new one); it is now the new app's client id in the annotation, workload and inventory alike, with the
    restore as the other way in comments, and pasted it repairs the run."""
    app, graph = healthy.app, running_lab.info()["endpoints"]["graph"]
    shell.must(f"az ad app delete --id {app.app_id}")
    again = make_app(shell, f"{healthy.namespace}-app")
    try:
        trust(shell, again, running_lab.info()["issuer_url"], healthy.namespace, healthy.service_account, "again")
        shell.must(f"az role assignment create --assignee {again.app_id} --role 'Key Vault Secrets User' "
                   f"--scope {healthy.vault_id} -o none --only-show-errors")
        document, _, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
        first = entry["findings"][0]
        assert first["code"] == "IDENTITY_NOT_FOUND", [f["code"] for f in entry["findings"]]
        assert f"appId {again.app_id}, made since" in first["message"]
        unknown = next(f for f in document["findings"] if f["code"] == "SA_CLIENT_ID_UNKNOWN")
        for finding in (first, unknown):
            commands = [line for line in finding["remediation"] if not line.startswith("#")]
            assert f"{CLIENT_ID}={again.app_id}" in commands[0], finding["remediation"]
            assert not [line for line in commands if "/restore" in line], finding["remediation"]
        paste(shell, first)
        document, checks, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
        assert document["verdict"] == "pass", [(c["id"], c["message"]) for c in checks.values()
                                               if c["status"] != "pass"]
    finally:  # the module's app back (the healthy fixture annotates it again), the new one gone
        shell.must(f"az ad app delete --id {again.app_id}",
                   *(f"az rest --method POST --url {graph}{restore_line(object_id)} -o none"
                     for object_id in (app.object_id, app.principal_id)))


def test_a_service_principal_deleted_for_good_is_made_again_and_its_roles_granted_again(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The service principal deleted and then purged from deleted items (or past its 30 days): the printed fix
    makes a new one and says its roles must be granted again; the next run names the missing role, whose printed
    grant repairs the lab."""
    app = healthy.app
    graph = running_lab.info()["endpoints"]["graph"]
    shell.must(f"az ad sp delete --id {app.app_id}",
               f"az rest --method DELETE --url {graph}/v1.0/directory/deletedItems/{app.principal_id}")
    _, _, entry = run(tmp_path, healthy.config, healthy.ref)
    first = entry["findings"][0]
    assert first["code"] == "SERVICE_PRINCIPAL_MISSING"
    assert [line for line in first["remediation"] if line.startswith("az ad sp create")]
    assert [line for line in first["remediation"] if "grant it the roles" in line]
    paste(shell, first)
    app.principal_id = shell.must(f"az ad sp show --id {app.app_id} --query id -o tsv").strip()
    _, _, entry = run(tmp_path, healthy.config, healthy.ref)
    missing = entry["findings"][0]
    assert missing["code"] == "ROLE_ASSIGNMENT_MISSING", [f["code"] for f in entry["findings"]]
    paste(shell, missing)
    _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)


def test_a_credential_made_on_the_wrong_app_is_made_on_the_app_harness_yaml_names(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The federated credential made on another app registration than the one the ServiceAccount and harness.yaml
    name (AADSTS70025 for the named app). The inventory said SA_ANNOTATION_WRONG_IDENTITY and printed an
    annotation with the other app's client id, against harness.yaml and the workload's FIC_MISSING (a credential
    on the named app, which holds the roles): two errors, opposite fixes. Where harness.yaml names the annotated
    app, the inventory now asks for the credential on it too (SA_WITHOUT_FIC), and the workload's fix repairs the
    run."""
    app = healthy.app
    wrong = make_app(shell, f"{healthy.namespace}-wrong")
    trust(shell, wrong, running_lab.info()["issuer_url"], healthy.namespace, healthy.service_account, "misplaced")
    delete_credentials(shell, app)
    document, _, entry = run(tmp_path, healthy.config, healthy.ref)
    first = entry["findings"][0]
    assert first["code"] == "FIC_MISSING", [f["code"] for f in entry["findings"]]
    assert all(app.app_id in line for line in first["remediation"])
    run_codes = {f["code"] for f in document["findings"]}
    assert "SA_ANNOTATION_WRONG_IDENTITY" not in run_codes and "SA_WITHOUT_FIC" in run_codes, run_codes
    paste(shell, first)
    document, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert document["verdict"] == "pass", not_passing(checks)


def test_the_annotation_naming_the_other_of_two_same_named_apps_is_moved_back(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """A second app registration under the workload's app's display name (az rest POST .../applications; az ad
    app create under a taken name patches the first), its service principal, and the ServiceAccount annotated
    with its appId (what ``az ad app list --display-name ... --query [0].appId`` may give), harness.yaml naming
    no client id. FIC_MISSING printed a credential create on that app (its exchange then works, with none of the
    roles) while the inventory moved the annotation; now the workload's finding names the other app and moves
    the annotation, and the run passes after the paste."""
    graph = running_lab.info()["endpoints"]["graph"]
    body = json.dumps({"displayName": f"{healthy.namespace}-app"})
    twin = shell.must(f"az rest --method POST --url {graph}/v1.0/applications --body {shlex.quote(body)} "
                      "--query appId -o tsv").strip()
    try:
        shell.must(f"az ad sp create --id {twin} -o none --only-show-errors",
                   f"kubectl annotate serviceaccount -n {healthy.namespace} {healthy.service_account} "
                   f"{CLIENT_ID}={twin} --overwrite")
        _, _, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
        first = entry["findings"][0]
        assert first["code"] == "FIC_MISSING", [f["code"] for f in entry["findings"]]
        assert f"appId {healthy.app.app_id}, has one" in first["message"]
        assert not [line for line in first["remediation"] if line.startswith("az ")]
        paste(shell, first)
        _, checks, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
    finally:
        shell.must(f"az ad app delete --id {twin}")


def test_a_subject_mistyped_in_case_is_corrected_in_place_by_the_run_and_the_workload_alike(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """``az ad app federated-credential update`` with the subject ``system:serviceaccount:NS:Web-sa``: Entra
    refuses with AADSTS7002138. The workload said FIC_SUBJECT_CASE_MISMATCH (update that credential); the
    inventory said SA_WITHOUT_FIC "AADSTS700213 (subject)" with a create of a second credential, and FIC_ORPHANED
    for NS/Web-sa, "whoever creates it there gets the identity's access", a ServiceAccount Kubernetes cannot name
    (its names are lower case). Both now print the same update, and the inventory's, pasted, repairs the run."""
    app, issuer = healthy.app, running_lab.info()["issuer_url"]
    name = shell.must(f"az ad app federated-credential list --id {app.app_id} --query '[0].name' -o tsv").strip()
    body = {"name": name, "issuer": issuer, "subject": f"system:serviceaccount:{healthy.namespace}:Web-sa",
            "audiences": [EXCHANGE_AUDIENCE]}
    shell.must(f"az ad app federated-credential update --id {app.app_id} --federated-credential-id {name} "
               f"--parameters {shlex.quote(json.dumps(body))}")
    document, _, entry = run(tmp_path, healthy.config, healthy.ref)
    first = entry["findings"][0]
    assert first["code"] == "FIC_SUBJECT_CASE_MISMATCH", [f["code"] for f in entry["findings"]]
    run_codes = {f["code"]: f for f in document["findings"]}
    assert set(run_codes) == {"SA_WITHOUT_FIC"}, set(run_codes)
    missing = run_codes["SA_WITHOUT_FIC"]
    assert "AADSTS7002138" in missing["message"]
    assert missing["remediation"] == [line for line in first["remediation"] if not line.startswith("#")]
    paste(shell, missing)
    document, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert document["verdict"] == "pass", not_passing(checks)


def test_a_credential_for_a_mistyped_namespace_is_joined_by_one_under_a_free_name(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The app's credential made under the name the harness prints (NS-SA) for a mistyped namespace: the run says
    FIC_SUBJECT_MISMATCH and printed a create under that same name, which Graph refuses ("FederatedIdentity
    Credential with name ... already exists."). The create now takes a free name, and pasted it repairs the run."""
    app, issuer = healthy.app, running_lab.info()["issuer_url"]
    delete_credentials(shell, app)
    taken = f"{healthy.namespace}-{healthy.service_account}"
    trust(shell, app, issuer, f"{healthy.namespace}x", healthy.service_account, taken)  # another namespace's
    try:
        _, _, entry = run(tmp_path, healthy.config, healthy.ref)
        first = entry["findings"][0]
        assert first["code"] == "FIC_SUBJECT_MISMATCH", [f["code"] for f in entry["findings"]]
        assert f'"name": "{taken}-2"' in first["remediation"][0]
        paste(shell, first)
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
    finally:  # the credential as the module made it
        delete_credentials(shell, app)
        trust(shell, app, issuer, healthy.namespace, healthy.service_account, "kubernetes-federated-credential")


def test_a_credential_for_another_clusters_issuer_is_joined_by_one_for_this_cluster_not_moved(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The app's credential names another cluster's issuer (the app serves a blue/green pair). The workload's
    FIC_ISSUER_MISMATCH updated it to this cluster's issuer, taking the trust from the other cluster, while the
    run's FIC_OLD_ISSUER created a new one. Both print the same create now; pasted, the run passes and the other
    cluster's credential is still there."""
    app, issuer = healthy.app, running_lab.info()["issuer_url"]
    other = "https://eastus.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/0f0e0d0c-1111-2222-3333-4444/"
    delete_credentials(shell, app)
    trust(shell, app, other, healthy.namespace, healthy.service_account, "blue")
    try:
        document, _, entry = run(tmp_path, healthy.config, healthy.ref)
        first = entry["findings"][0]
        assert first["code"] == "FIC_ISSUER_MISMATCH", [f["code"] for f in entry["findings"]]
        stale = next(f for f in document["findings"] if f["code"] == "FIC_OLD_ISSUER")
        commands = [line for line in first["remediation"] if not line.startswith("#")]
        assert commands == [line for line in stale["remediation"] if not line.startswith("#")], (first, stale)
        paste(shell, first)
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
        issuers = shell.must(f"az ad app federated-credential list --id {app.app_id} --query '[].issuer' -o tsv")
        assert sorted(issuers.split()) == sorted([other, issuer])
    finally:  # the credential as the module made it
        delete_credentials(shell, app)
        trust(shell, app, issuer, healthy.namespace, healthy.service_account, "kubernetes-federated-credential")


def test_an_issuer_updated_without_its_slash_is_updated_back_by_the_run_and_the_workload_alike(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """``az ad app federated-credential update`` with the cluster's issuer without its trailing slash (AADSTS700211).
    The sign-off's first broken links printed the run's FIC_OLD_ISSUER (delete the credential, create one under
    another name) and then the workload's FIC_ISSUER_MISMATCH (update the credential): pasted in that order the
    update failed, "Resource 'kubernetes-federated-credential' does not exist". Both print the same update now;
    pasted in order, the run passes."""
    app, issuer = healthy.app, running_lab.info()["issuer_url"]
    name = shell.must(f"az ad app federated-credential list --id {app.app_id} --query '[0].name' -o tsv").strip()
    body = {"issuer": issuer.rstrip("/"), "subject": f"system:serviceaccount:{healthy.ref.replace('/', ':')}",
            "audiences": [EXCHANGE_AUDIENCE]}
    shell.must(f"az ad app federated-credential update --id {app.app_id} --federated-credential-id {name} "
               f"--parameters {shlex.quote(json.dumps(body))}")
    try:
        document, _, entry = run(tmp_path, healthy.config, healthy.ref)
        first = entry["findings"][0]
        assert first["code"] == "FIC_ISSUER_MISMATCH" and "trailing slash" in first["message"], first
        stale = next(f for f in document["findings"] if f["code"] == "FIC_OLD_ISSUER")
        assert stale["remediation"] == first["remediation"], (stale, first)
        paste(shell, stale)
        paste(shell, first)
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
    finally:  # the credential as the module made it
        delete_credentials(shell, app)
        trust(shell, app, issuer, healthy.namespace, healthy.service_account, "kubernetes-federated-credential")


def test_the_harness_without_application_read_all_says_so_once_per_scope_and_its_grant_works_on_any_cloud(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """Least privilege taken too far: the harness's Graph Application.Read.All revoked (its app role assignment
    deleted, as an admin removes a consented permission). The workload still works (Entra exchanges its token), so
    the run passes with warnings about the harness's own view: IDENTITY_NOT_VISIBLE for the workload, nothing
    that blames the workload (no IDENTITY_NOT_FOUND, no federated credential or role finding). Its printed grant was
    ``az ad app permission add`` + ``admin-consent``, which az refuses outside the public cloud ("This command is
    not yet supported on sovereign clouds"; the lab is a registered cloud) and which a managed identity cannot
    use; it is now Graph's own app role assignment through az rest, and pasted it repairs the view."""
    info = running_lab.info()
    principal, assignments, granted = harness_graph_grants(shell, info)
    assert granted
    shell.must(*(f"az rest --method DELETE --url {assignments}/{identifier}" for identifier in granted))
    try:
        document, checks, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
        assert document["verdict"] == "pass" and entry["verdict"] == "pass", entry["findings"]
        codes = [f["code"] for f in entry["findings"]]
        assert codes == ["IDENTITY_NOT_VISIBLE"], codes
        assert checks["exchange.succeeds"]["status"] == "pass"
        assert {f["severity"] for f in document["findings"]} <= {"warning"}
        paste(shell, entry["findings"][0])
    finally:  # the harness's view back for the module's other tests, whatever the printed fix did
        give_graph_read_back(shell, principal, assignments)
    document, checks, entry = run(tmp_path, healthy.config_without_client_id, healthy.ref)
    assert entry["findings"] == [] and document["findings"] == [], (entry["findings"], document["findings"])


def test_a_role_assigned_to_the_client_id_as_object_id_is_granted_right_and_deleted(
    healthy: AppWorkload, shell: Shell, tmp_path: Path  # noqa: F811
) -> None:
    """``az role assignment create --assignee-object-id <appId> --assignee-principal-type ServicePrincipal``: ARM
    takes the client id as a principal id when the principal type is given (the portal then lists "Identity not
    found") and the read is refused. ROLE_ASSIGNMENT_MISSING said only that no assignment allows it; it now names
    the assignment made for the client id, and its printed fix grants the service principal and deletes that one."""
    app = healthy.app
    for line in shell.must(f"az role assignment list --assignee {app.principal_id} --all --query '[].id' -o tsv") \
            .split():
        shell.must(f"az role assignment delete --ids {line}")
    shell.must(f"az role assignment create --assignee-object-id {app.app_id} --assignee-principal-type "
               f"ServicePrincipal --role 'Key Vault Secrets User' --scope {healthy.vault_id} -o none --only-show-errors")
    _, _, entry = run(tmp_path, healthy.config, healthy.ref)
    first = entry["findings"][0]
    assert first["code"] == "ROLE_ASSIGNMENT_MISSING", [f["code"] for f in entry["findings"]]
    assert f"assigned to the client id {app.app_id} as its principal id" in first["message"]
    assert first["remediation"][-1].startswith(f"az role assignment delete --ids {healthy.vault_id}/providers/")
    paste(shell, first)
    _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
    assert entry["verdict"] == "pass", not_passing(checks)
    assert not shell.must(f"az role assignment list --assignee-object-id {app.app_id} --all --query '[].id' "
                          "-o tsv").split()


def test_a_role_on_the_whole_resource_group_is_narrowed_before_it_is_deleted(
    healthy: AppWorkload, shell: Shell, tmp_path: Path  # noqa: F811
) -> None:
    """``az role assignment create --assignee APPID --scope <the resource group>``: the workload reads its secret
    (a pass) and the inventory warns ROLE_OVERLY_BROAD. Its printed fix was the delete of that assignment, the
    only one the workload reads through, so pasting it turned a passing run into ROLE_ASSIGNMENT_MISSING. Now the
    narrow grant comes first, on the vault harness.yaml says the workload reads, and the delete is advised after
    it: the run passes throughout and the warning goes once the advised delete is made."""
    app = healthy.app
    group = healthy.vault_id.split("/providers/")[0]
    for line in shell.must(f"az role assignment list --assignee {app.principal_id} --all --query '[].id' -o tsv") \
            .split():
        shell.must(f"az role assignment delete --ids {line}")
    shell.must(f"az role assignment create --assignee {app.app_id} --role 'Key Vault Secrets User' --scope {group} "
               "-o none --only-show-errors")
    try:
        document, _, entry = run(tmp_path, healthy.config, healthy.ref)
        assert document["verdict"] == "pass" and entry["verdict"] == "pass"
        broad = next(f for f in document["findings"] if f["code"] == "ROLE_OVERLY_BROAD")
        commands = [line for line in broad["remediation"] if not line.startswith("#")]
        assert not [line for line in commands if "assignment delete" in line], commands  # not first, not alone
        # on the vault harness.yaml says the workload reads, as printed
        assert len(commands) == 1 and commands[0].endswith(f"--scope {healthy.vault_id}"), commands
        done = shell.run([commands[0]])
        assert done.returncode == 0, shell.shown(done)
        document, _, entry = run(tmp_path, healthy.config, healthy.ref)
        assert document["verdict"] == "pass" and entry["verdict"] == "pass"
        advised = next(line for line in broad["remediation"] if "az role assignment delete" in line)
        shell.must(advised.split(": ", 1)[1])
        document, _, entry = run(tmp_path, healthy.config, healthy.ref)
        assert document["findings"] == [] and entry["findings"] == [], document["findings"]
    finally:
        for line in shell.must(f"az role assignment list --assignee {app.principal_id} --all "
                               f"--query \"[?scope=='{group}'].id\" -o tsv").split():
            shell.must(f"az role assignment delete --ids {line}")
        if not shell.must(f"az role assignment list --assignee {app.principal_id} --scope {healthy.vault_id} "
                          "--query '[].id' -o tsv").split():
            shell.must(f"az role assignment create --assignee-object-id {app.principal_id} --assignee-principal-type "
                       f"ServicePrincipal --role 'Key Vault Secrets User' --scope {healthy.vault_id} -o none")


def test_a_graph_endpoint_entra_does_not_know_names_the_setting_not_the_secret(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """harness.yaml's azure.cloud.microsoft_graph set to an address that is no service of the cloud (here the
    lab's ARM): Entra refuses the harness a token for it, AADSTS500011. It was HARNESS_CREDENTIAL_FAILED with the
    fix for an expired secret (az ad app credential list, put the secret's value in the file) and, for the
    workload, the Graph permission grant: neither helps. Both now name azure.cloud.microsoft_graph, and setting it
    back repairs the run."""
    data = yaml.safe_load(healthy.config.read_text())
    right = data["azure"]["cloud"]["microsoft_graph"]
    data["azure"]["cloud"]["microsoft_graph"] = running_lab.info()["endpoints"]["arm"] + "/"
    broken = healthy.config.with_name("wrong-graph.yaml")
    broken.write_text(yaml.safe_dump(data))
    document, _, entry = run(tmp_path, broken, healthy.ref)
    assert document["verdict"] == "fail"
    failed = next(f for f in document["findings"] if f["code"] == "HARNESS_CREDENTIAL_FAILED")
    assert "AADSTS500011" in failed["message"]
    assert failed["remediation"] and all("azure.cloud.microsoft_graph in harness.yaml" in line
                                         for line in failed["remediation"]), failed["remediation"]
    hidden = next(f for f in entry["findings"] if f["code"] == "IDENTITY_NOT_VISIBLE")
    assert not [line for line in hidden["remediation"] if "appRoleAssignments" in line or "credential" in line]
    data["azure"]["cloud"]["microsoft_graph"] = right  # the person's edit the fix asks for
    broken.write_text(yaml.safe_dump(data))
    document, checks, entry = run(tmp_path, broken, healthy.ref)
    assert document["verdict"] == "pass", not_passing(checks)


def test_without_graph_read_a_missing_service_principal_is_looked_for_in_deleted_items_first(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The harness without Application.Read.All cannot see Graph's deleted items: after ``az ad sp delete`` it
    knows only Entra's AADSTS7000229. Its fix was ``az ad sp create`` alone (a new object id: the vault's role
    assignment no longer applies); it now says first where a deleted one is, and the person who follows that
    (list, restore) has the workload whole again."""
    info = running_lab.info()
    graph, app = info["endpoints"]["graph"], healthy.app
    principal, assignments, granted = harness_graph_grants(shell, info)
    shell.must(*(f"az rest --method DELETE --url {assignments}/{identifier}" for identifier in granted),
               f"az ad sp delete --id {app.app_id}")
    try:
        _, _, entry = run(tmp_path, healthy.config, healthy.ref)
        codes = [(f["code"], f["severity"]) for f in entry["findings"]]
        assert codes == [("IDENTITY_NOT_VISIBLE", "warning"), ("SERVICE_PRINCIPAL_MISSING", "error")], codes
        first = entry["findings"][1]  # the one error: the harness's blind spot is a warning beside it
        assert "deletedItems/microsoft.graph.servicePrincipal" in first["remediation"][0]
        assert first["remediation"][1] == f"az ad sp create --id {app.app_id}"
        listed = f"{graph}/v1.0/directory/deletedItems/microsoft.graph.servicePrincipal"
        found = shell.must(f"az rest --method GET --url {listed} --query \"value[?appId=='{app.app_id}'].id\" "
                           "-o tsv").split()
        assert found == [app.principal_id]
        shell.must(f"az rest --method POST --url {graph}/v1.0/directory/deletedItems/{found[0]}/restore -o none")
        document, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
    finally:
        give_graph_read_back(shell, principal, assignments)


def test_without_graph_read_a_missing_credential_is_made_on_the_app_registration(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The harness without Application.Read.All, and the app's federated credential deleted: Entra answers
    AADSTS70025. FIC_MISSING's fix was ``az identity federated-credential create`` with three placeholders (a
    managed identity's command) for an app registration; only Graph refused the harness, so it is now the app
    registration's command, whole, and pasted it repairs the workload."""
    info = running_lab.info()
    app = healthy.app
    principal, assignments, granted = harness_graph_grants(shell, info)
    names = shell.must(f"az ad app federated-credential list --id {app.app_id} --query '[].name' -o tsv").split()
    shell.must(*(f"az rest --method DELETE --url {assignments}/{identifier}" for identifier in granted),
               *(f"az ad app federated-credential delete --id {app.app_id} --federated-credential-id {name}"
                 for name in names))
    try:
        _, _, entry = run(tmp_path, healthy.config, healthy.ref)
        missing = next(f for f in entry["findings"] if f["code"] == "FIC_MISSING")
        assert missing["remediation"][0].startswith(f"az ad app federated-credential create --id {app.app_id} ")
        assert not [line for line in missing["remediation"] if line.startswith("az identity")], missing
        paste(shell, missing)
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
    finally:
        give_graph_read_back(shell, principal, assignments)
        if not shell.must(f"az ad app federated-credential list --id {app.app_id} --query '[].name' -o tsv").split():
            trust(shell, app, info["issuer_url"], healthy.namespace, healthy.service_account, "restored")


def test_without_graph_read_an_audience_entra_refuses_is_set_on_the_credential_there(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The harness without Application.Read.All, and the app's credential for the ServiceAccount updated with the
    audience 'api://AzureADTokenExchange ' (a trailing space): Entra answers AADSTS700212. The printed create was
    refused by Graph (the app already has a credential for that issuer and subject); the fix now finds that
    credential by issuer and subject and sets its audience (a create only as a comment, for an app with none):
    pasted as printed, the run passes and no second credential is made."""
    info = running_lab.info()
    app = healthy.app
    principal, assignments, granted = harness_graph_grants(shell, info)
    name = shell.must(f"az ad app federated-credential list --id {app.app_id} --query '[0].name' -o tsv").strip()
    mistyped = json.dumps({"audiences": [EXCHANGE_AUDIENCE + " "]})
    shell.must(*(f"az rest --method DELETE --url {assignments}/{identifier}" for identifier in granted),
               f"az ad app federated-credential update --id {app.app_id} --federated-credential-id {name} "
               f"--parameters {shlex.quote(mistyped)}")
    try:
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert "AADSTS700212" in checks["exchange.succeeds"]["message"]
        (mismatch,) = [f for f in entry["findings"] if f["code"] == "FIC_AUDIENCE_MISMATCH"]
        paste(shell, mismatch)
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
        audiences = shell.must(f"az ad app federated-credential list --id {app.app_id} --query '[].audiences'")
        assert json.loads(audiences) == [[EXCHANGE_AUDIENCE]]  # the credential set right, no second one made
    finally:
        give_graph_read_back(shell, principal, assignments)
        delete_credentials(shell, app)
        trust(shell, app, info["issuer_url"], healthy.namespace, healthy.service_account, "restored")


def test_the_harness_disabled_is_told_to_enable_itself_not_to_renew_its_secret(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The harness's own enterprise application disabled (az ad sp update --set accountEnabled=false): Entra
    refuses its tokens with AADSTS7000112. HARNESS_CREDENTIAL_FAILED printed the expired-secret repair; it now
    enables the service principal, and pasted, the run passes."""
    harness = running_lab.info()["harness"]["client_id"]
    shell.must(f"az ad sp update --id {harness} --set accountEnabled=false")
    try:
        document, _, _ = run(tmp_path, healthy.config, healthy.ref)
        failed = next(f for f in document["findings"] if f["code"] == "HARNESS_CREDENTIAL_FAILED")
        assert "AADSTS7000112" in failed["message"]
        assert f"az ad sp update --id {harness} --set accountEnabled=true" in failed["remediation"], failed
        assert not [line for line in failed["remediation"] if "credential list" in line]
        paste(shell, failed)
        document, checks, _ = run(tmp_path, healthy.config, healthy.ref)
        assert document["verdict"] == "pass", [(c["id"], c["message"]) for c in checks.values()
                                               if c["status"] != "pass"]
    finally:
        shell.must(f"az ad sp update --id {harness} --set accountEnabled=true")


def test_the_harness_without_its_service_principal_is_told_to_restore_or_make_it_with_its_grants(
    healthy: AppWorkload, shell: Shell, running_lab: RunningLab, tmp_path: Path  # noqa: F811
) -> None:
    """The harness's own enterprise application deleted (az ad sp delete): Entra refuses its tokens with
    AADSTS7000229. HARNESS_CREDENTIAL_FAILED printed the expired-secret repair; it now says to restore it from
    Graph's deleted items (comments: the person's choice), else prints a new one with the grants the harness
    needs (Reader, Application.Read.All); pasted, the run passes."""
    info = running_lab.info()
    harness, graph = info["harness"]["client_id"], info["endpoints"]["graph"]
    old = shell.must(f"az ad sp show --id {harness} --query id -o tsv").strip()
    shell.must(f"az ad sp delete --id {harness}")
    try:
        document, _, _ = run(tmp_path, healthy.config, healthy.ref)
        failed = next(f for f in document["findings"] if f["code"] == "HARNESS_CREDENTIAL_FAILED")
        assert "AADSTS7000229" in failed["message"]
        commands = [line for line in failed["remediation"] if not line.startswith("#")]
        assert commands[0] == f"az ad sp create --id {harness}", failed["remediation"]
        assert [line for line in failed["remediation"] if line.startswith("#") and "/restore" in line]
        assert not [line for line in failed["remediation"] if "credential list" in line]
        paste(shell, failed)
        document, checks, _ = run(tmp_path, healthy.config, healthy.ref)
        assert document["verdict"] == "pass", [(c["id"], c["message"]) for c in checks.values()
                                               if c["status"] != "pass"]
    finally:  # the harness's own service principal back, with every grant it had
        made = shell.run([f"az ad sp show --id {harness} --query id -o tsv"])
        if made.returncode == 0 and made.stdout.strip() != old:
            shell.must(f"az ad sp delete --id {harness}")
        if shell.run([f"az ad sp show --id {harness} --query id -o tsv"]).returncode != 0:
            shell.must(f"az rest --method POST --url {graph}{restore_line(old)} -o none")



def test_a_service_principal_deleted_and_made_again_is_granted_its_role_and_the_stale_assignment_deleted(
    healthy: AppWorkload, shell: Shell, tmp_path: Path  # noqa: F811
) -> None:
    """``az ad sp delete`` then ``az ad sp create``: a new service principal (a new object id) that Entra issues
    the workload's tokens to (the credential is on the application), and the vault's role assignment, which ARM
    keeps, still names the deleted one. ROLE_ASSIGNMENT_MISSING said only that the identity holds no assignment
    allowing the read; it now names the stale assignment's principal id and the new one, and its printed fix grants
    the new service principal and then deletes the stale assignment: pasted, the run passes and it is gone."""
    app = healthy.app
    old = app.principal_id
    shell.must(f"az ad sp delete --id {app.app_id}")
    app.principal_id = shell.must(f"az ad sp create --id {app.app_id} --query id -o tsv --only-show-errors").strip()
    stale = f"az role assignment list --scope {healthy.vault_id} --query \"[?principalId=='{old}'].id\" -o tsv"
    try:
        assert app.principal_id != old and shell.must(stale).split()  # ARM keeps the deleted one's assignment
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert checks["exchange.succeeds"]["status"] == "pass"
        first = entry["findings"][0]
        assert first["code"] == "ROLE_ASSIGNMENT_MISSING", [f["code"] for f in entry["findings"]]
        assert f"assigned to principal id {old}, which is no longer any principal" in first["message"]
        assert f"a new object id, {app.principal_id}" in first["message"]
        commands = [line for line in first["remediation"] if not line.startswith("#")]
        assert commands[0].startswith(f"az role assignment create --assignee-object-id {app.principal_id} ")
        assert commands[-1] == f"az role assignment delete --ids {shell.must(stale).split()[0]}"
        paste(shell, first)
        _, checks, entry = run(tmp_path, healthy.config, healthy.ref)
        assert entry["verdict"] == "pass", not_passing(checks)
        assert not shell.must(stale).split()
    finally:  # the module's other tests need the new service principal's role, and no stale assignment
        for line in shell.must(stale).split():
            shell.must(f"az role assignment delete --ids {line}")
        if not shell.must(f"az role assignment list --assignee {app.principal_id} --scope {healthy.vault_id} "
                          "--query '[].id' -o tsv").split():
            shell.must(f"az role assignment create --assignee-object-id {app.principal_id} --assignee-principal-type "
                       f"ServicePrincipal --role 'Key Vault Secrets User' --scope {healthy.vault_id} -o none")
