"""Blob reads broken by hand with the real az against the lab: what Storage answers and what the harness then says.

Storage authorizes a bearer token's read (the blob read data action at the blob's scope) before it looks the
container and the blob up, so a 404 BlobNotFound or ContainerNotFound is an answer given to a caller allowed to read
there (the lab's blob service answers so; unverified beyond it)."""

from __future__ import annotations

from typing import Any

from fakeworld import ACCOUNT
from test_checks import context_for

from harness.checks.access import access_outcome
from harness.checks.model import FAIL, Outcome
from harness.config import BlobAccess

ACCOUNT_ID = "/subscriptions/s/resourceGroups/myRg/providers/Microsoft.Storage/storageAccounts/ordersdata"
BLOB_READER_ID = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/2a2b9908"
PRINCIPAL = "22222222-3333-4444-5555-666666666666"
OLD = "2024-01-01T00:00:00.0000000Z"


def _blob(container: str, blob: str, expect: str) -> BlobAccess:
    return BlobAccess(kind="blob", account_url=ACCOUNT, container=container, blob=blob, expect=expect)


def _outcome(checks: list[BlobAccess], index: int, answers: list[dict[str, Any]],
             scopes: tuple[str, ...] = (ACCOUNT_ID,)) -> Outcome:
    """The probe's answers to ``checks`` (in order); the identity holds Storage Blob Data Reader at ``scopes``."""
    ctx = context_for(access=checks)
    assert ctx.facts.pod is not None
    ctx.cluster.access_resources = {ACCOUNT.rstrip("/"): {"id": ACCOUNT_ID, "name": "ordersdata",
                                                          "resource_group": "myRg"}}
    identity = ctx.facts.identity
    identity.identity = {"properties": {"principalId": PRINCIPAL, "clientId": "c"}}
    identity.role_assignments = [
        {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/a{i}",
         "properties": {"roleDefinitionId": BLOB_READER_ID, "scope": scope, "createdOn": OLD}}
        for i, scope in enumerate(scopes)
    ]
    identity.role_names = {BLOB_READER_ID.lower(): "Storage Blob Data Reader"}
    identity.role_permissions = {BLOB_READER_ID.lower(): {
        "actions": ["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
        "dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]}}
    ctx.facts.pod.probe = {"steps": [
        {"name": "access", "index": i, "status": "pass" if a.get("http_status") == 200 else "fail",
         "evidence": a, "error": {"kind": "expectation_mismatch"}}
        for i, a in enumerate(answers)]}
    return access_outcome(ctx, index, checks[index])


READ = {"http_status": 200}
BLOB_MISSING = {"http_status": 404, "x_ms_error_code": "BlobNotFound"}
CONTAINER_MISSING = {"http_status": 404, "x_ms_error_code": "ContainerNotFound"}


def test_a_missing_container_lists_the_accounts_containers_not_the_missing_containers_blobs() -> None:
    """harness.yaml's container misspelled (or the container deleted): az storage blob list on it answers
    ContainerNotFound too, so the printed listing showed nothing; the account's containers are listed instead."""
    outcome = _outcome([_blob("reportz", "daily.csv", "allow")], 0, [CONTAINER_MISSING])
    (finding,) = outcome.findings
    assert outcome.status == FAIL and finding.code == "BLOB_NOT_FOUND"
    assert "the storage account ordersdata has no container reportz (HTTP 404 ContainerNotFound)" in finding.message
    lines = finding.fix_lines()
    assert lines[0] == (f"az storage container list --blob-endpoint {ACCOUNT} --auth-mode login --query '[].name' "
                        "-o tsv")
    assert not any("storage blob list" in line for line in lines)
    assert "create reportz and upload daily.csv to it" in lines[1]
    assert "--include-deleted" in lines[2] and "az storage container restore --name reportz" in lines[2]
    # a missing blob in a container that is there keeps the container's listing
    (blob,) = _outcome([_blob("reports", "dailly.csv", "allow")], 0, [BLOB_MISSING]).findings
    assert blob.code == "BLOB_NOT_FOUND" and "storage blob list" in blob.fix_lines()[0]


def test_a_deny_target_storage_looked_up_is_readable_and_not_to_be_uploaded() -> None:
    """A deny target that does not exist, in a container the identity may read (Storage Blob Data Reader on the
    account): Storage looked it up, so the identity may read it once it is there. It was BLOB_NOT_FOUND, 'upload
    the blob', which would hand it over."""
    for answer in (BLOB_MISSING, CONTAINER_MISSING):
        checks = [_blob("reports", "daily.csv", "allow"), _blob("hr", "payroll.csv", "deny")]
        outcome = _outcome(checks, 1, [READ, answer])
        (finding,) = outcome.findings
        assert outcome.status == FAIL and finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY", answer
        assert "Storage looks a blob up only for a caller allowed to read it" in outcome.message
        assert not any("upload" in line for line in finding.fix_lines())
    # a bare 404 (a HEAD's answer without its error code, which a proxy may give) proves no read
    bare = _outcome([_blob("hr", "payroll.csv", "deny")], 0, [{"http_status": 404}])
    assert bare.findings[0].code == "BLOB_NOT_FOUND"


def test_revoking_an_account_wide_read_keeps_the_containers_the_workload_reads() -> None:
    """Storage Blob Data Reader on the account grants the deny target hr/payroll.csv and the allow target
    reports/daily.csv alike. The fix printed only its delete: pasted, the next run lost reports/daily.csv. The
    allowed reads' container is granted first (pasted in the lab: the next run passes)."""
    checks = [_blob("reports", "daily.csv", "allow"), _blob("hr", "payroll.csv", "deny")]
    denied = {"http_status": 200}
    (finding,) = _outcome(checks, 1, [READ, denied]).findings
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY"
    lines = finding.fix_lines()
    assert lines[1:] == [
        f"az role assignment create --assignee-object-id {PRINCIPAL} --assignee-principal-type ServicePrincipal "
        f"--role 'Storage Blob Data Reader' --scope {ACCOUNT_ID}/blobServices/default/containers/reports",
        f"az role assignment delete --ids {ACCOUNT_ID}/providers/Microsoft.Authorization/roleAssignments/a0",
    ]
    assert "the reads the workload needs keep their containers' grant, made first" in lines[0]
    # a grant on the deny target's own container alone: nothing else to keep, the delete alone
    container = f"{ACCOUNT_ID}/blobServices/default/containers/hr"
    (alone,) = _outcome([_blob("hr", "payroll.csv", "deny")], 0, [denied], scopes=(container,)).findings
    assert alone.fix_lines()[1:] == [
        f"az role assignment delete --ids {container}/providers/Microsoft.Authorization/roleAssignments/a0"]


def test_a_deny_target_in_an_allowed_blobs_container_is_not_revoked_by_a_delete() -> None:
    """The deny target shares its container with a blob the workload must read: no role scope is narrower than a
    container, so any delete loses the allowed read; the fix says so and deletes nothing."""
    checks = [_blob("reports", "daily.csv", "allow"), _blob("reports", "payroll.csv", "deny")]
    (finding,) = _outcome(checks, 1, [READ, READ]).findings
    assert finding.code == "ACCESS_ALLOWED_UNEXPECTEDLY"
    lines = finding.fix_lines()
    assert all(line.startswith("# ") for line in lines) and len(lines) == 3
    assert lines[0] == f"# Storage Blob Data Reader on {ACCOUNT_ID} grants it"
    assert "the workload must read reports/daily.csv in the same container" in lines[1]
    assert "move one of the blobs to another container" in lines[2]


def test_an_account_name_that_resolves_nowhere_and_is_no_account_is_storage_account_not_found() -> None:
    """The storage account deleted (az storage account delete), or its name misspelled in account_url: NAME.blob.
    core.windows.net does not resolve in the pod (an account's blob endpoint exists while the account does). It was
    EGRESS_BLOCKED, CoreDNS and NetworkPolicies to check; with the subscription's accounts and Resource Graph naming
    no such account it is STORAGE_ACCOUNT_NOT_FOUND, the accounts listed. Any list unread (the account may be where
    the harness cannot look), or another error than DNS, keeps the answer's own diagnosis."""
    from types import SimpleNamespace

    from harness.collect.access_resources import collect_access_resources
    from harness.facts import Fetched

    def arm_with(refused: str | None, rows: list[dict[str, Any]]) -> Any:
        def arm(path: str, body: Any = None) -> Fetched:
            if refused and refused in path:
                return Fetched(url=path, status=403, body=None, error="denied", code="AuthorizationFailed")
            if body is not None:
                assert "microsoft.storage/storageaccounts" in body["query"] and "'ordersdata'" in body["query"]
                return Fetched(url=path, status=200, body={"data": rows})
            return Fetched(url=path, status=200, body={"value": [
                {"id": "/x/storageAccounts/otherdata", "name": "otherdata",
                 "properties": {"primaryEndpoints": {"blob": "https://otherdata.blob.core.windows.net/"}}}]})
        return arm

    def run(expect: str, error: dict[str, Any], refused: str | None = None,
            rows: tuple[dict[str, Any], ...] = ()) -> Outcome:
        check = _blob("reports", "daily.csv", expect)
        ctx = context_for(access=[check])
        assert ctx.facts.pod is not None
        ctx.cluster.access_resources = collect_access_resources(
            arm_with(refused, list(rows)), SimpleNamespace(subscription_id="s"),  # type: ignore[arg-type]
            [SimpleNamespace(access=[check])])  # type: ignore[list-item]
        ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "fail", "evidence": {},
                                          "target": f"{ACCOUNT}reports/daily.csv", "error": error}]}
        return access_outcome(ctx, 0, check)

    dns = {"kind": "dns", "message": "ordersdata.blob.core.windows.net: Name or service not known"}
    gone = run("allow", dns)
    (finding,) = gone.findings
    assert gone.status == FAIL and finding.code == "STORAGE_ACCOUNT_NOT_FOUND"
    assert ("ordersdata.blob.core.windows.net did not resolve, and no subscription the harness reads has a storage "
            "account named ordersdata") in finding.message
    lines = finding.fix_lines()
    assert lines[0] == ("az storage account list --query '[].{name: name, resourceGroup: resourceGroup, blob: "
                        "primaryEndpoints.blob}' -o table")
    assert "recovered within 14 days" in lines[1]
    assert run("deny", dns).findings[0].code == "DENY_NOT_PROVEN"
    assert run("allow", dns, refused="storageAccounts").findings[0].code == "EGRESS_BLOCKED"
    assert run("allow", dns, refused="Microsoft.ResourceGraph").findings[0].code == "EGRESS_BLOCKED"
    # in another subscription the harness reads (Resource Graph names it): its DNS is at fault, not its name
    assert run("allow", dns, rows=({"name": "ordersdata"},)).findings[0].code == "EGRESS_BLOCKED"
    refused = run("allow", {"kind": "connection_refused", "message": "refused"})
    assert refused.findings[0].code == "EGRESS_BLOCKED"


def test_a_path_style_account_url_is_looked_up_by_its_accounts_name() -> None:
    """An account URL whose host is an address (the path style of the lab and Azurite: https://127.0.0.1:PORT/NAME/)
    names the account in its path: the host's first label ('127') asked Resource Graph for no such account, and
    the grant for an account in another subscription was printed with az storage account show --name, which looks
    in the current subscription only."""
    from harness.collect.access_resources import name_in_url

    assert name_in_url("https://127.0.0.1:43989/shareddata/") == "shareddata"
    assert name_in_url("https://localhost:10000/devstoreaccount1") == "devstoreaccount1"
    assert name_in_url("https://[::1]:10000/acct/") == "acct"
    assert name_in_url("https://ordersdata.blob.core.windows.net/") == "ordersdata"
    assert name_in_url("https://ordersdata.privatelink.blob.core.windows.net/x/") == "ordersdata"
    assert name_in_url("https://127.0.0.1:8443/") == ""


def test_a_firewalled_account_in_another_subscription_is_named_with_its_group_and_subscription() -> None:
    """az storage account update --default-action Deny on an account in another subscription (found through
    Resource Graph): the printed network-rule list, show --name and network-rule add --account-name looked in the
    current subscription only ("Storage account 'shareddata' not found", by hand with the real az). They now name
    its resource group and subscription, or its id (pasted in the lab with the lab's egress address: the next run
    passes)."""
    shared = ("/subscriptions/47252320-f70d-4681-b9b7-ff1a135e0d4e/resourceGroups/shared-rg/providers/"
              "Microsoft.Storage/storageAccounts/ordersdata")
    check = _blob("reports", "daily.csv", "allow")
    ctx = context_for(access=[check])
    assert ctx.facts.pod is not None
    ctx.cluster.access_resources = {ACCOUNT.rstrip("/"): {"id": shared, "name": "ordersdata",
                                                          "resource_group": "shared-rg",
                                                          "found_by": "resource_graph"}}
    ctx.facts.pod.probe = {"steps": [{"name": "access", "index": 0, "status": "fail", "error": {},
                                      "evidence": {"http_status": 403, "x_ms_error_code": "AuthorizationFailure"}}]}
    (finding,) = access_outcome(ctx, 0, check).findings
    assert finding.code == "STORAGE_FIREWALL"
    where = "--resource-group shared-rg --subscription 47252320-f70d-4681-b9b7-ff1a135e0d4e"
    assert finding.fix_lines() == [
        f"az storage account network-rule list --account-name ordersdata {where}",
        f"az storage account show --ids {shared} --query '{{defaultAction: networkRuleSet.defaultAction, "
        "publicNetworkAccess: publicNetworkAccess}'",
        f"az storage account network-rule add --account-name ordersdata {where} --subnet '<aks-node-subnet-id>'"
        "   # or --ip-address <the cluster's egress IP>",
    ]
    ctx.cluster.access_resources[ACCOUNT.rstrip("/")]["public_network_access"] = "Disabled"
    (closed,) = access_outcome(ctx, 0, check).findings
    assert any(line.startswith(f"az storage account network-rule add --account-name ordersdata {where} ")
               for line in closed.fix_lines())
