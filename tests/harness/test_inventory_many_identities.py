"""The inventory with more identities to read roles for than reads run at once: one list of the subscription's role
assignments (every principal's, read once per run) instead of one list per identity, each identity keeping exactly
its own; with few identities, the per-principal lists the workload collector shares through the run's cache."""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

from test_inventory_collect import AZURE, ISSUER, SUB, identity_row, kube

from harness.collect.inventory import ROLE_LISTS_AT_MOST, collect_inventory
from harness.facts import Fetched

ROLES = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"
READER = "/providers/Microsoft.Authorization/roleDefinitions/reader"
SECRETS_USER = "/providers/Microsoft.Authorization/roleDefinitions/secrets-user"


class Arm:
    """Identities id-1..id-N, each with a credential for ns-N/sa and one role assignment of its own (Reader for
    odd N, Key Vault Secrets User for even); one more assignment belongs to a principal the run never names."""

    def __init__(self, count: int) -> None:
        self.rows = [identity_row(n) for n in range(1, count + 1)]
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.assignments = [
            {"id": f"{ROLES}/a-{n}", "properties": {
                "principalId": f"p-{n}", "scope": f"/subscriptions/{SUB}",
                "roleDefinitionId": READER if n % 2 else SECRETS_USER}}
            for n in range(1, count + 1)
        ] + [{"id": f"{ROLES}/stranger", "properties": {
            "principalId": "p-stranger", "scope": f"/subscriptions/{SUB}", "roleDefinitionId": READER}}]

    def __call__(self, path: str, body: dict[str, Any] | None = None) -> Fetched:
        with self.lock:
            self.calls.append(path)
        if path.startswith("/providers/Microsoft.ResourceGraph/resources"):
            return Fetched(path, 200, {"data": self.rows})
        if "/federatedIdentityCredentials" in path:
            n = path.split("/userAssignedIdentities/id-")[1].split("/")[0]
            return Fetched(path, 200, {"value": [{"name": "fic", "properties": {
                "issuer": ISSUER, "subject": f"system:serviceaccount:ns-{n}:sa",
                "audiences": ["api://AzureADTokenExchange"]}}]})
        if path.startswith(ROLES + "?"):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            wanted = query.get("$filter", [""])[0].removeprefix("principalId eq '").removesuffix("'")
            return Fetched(path, 200, {"value": [
                a for a in self.assignments if not wanted or a["properties"]["principalId"] == wanted]})
        if "/roleDefinitions/" in path:
            name = "Reader" if "/reader?" in path else "Key Vault Secrets User"
            return Fetched(path, 200, {"properties": {"roleName": name}})
        return Fetched(path, 404, None, "not found", "ResourceNotFound")


def graph(path: str, body: dict[str, Any] | None = None) -> Fetched:
    return Fetched(path, 200, {"value": []})


def run(count: int) -> tuple[Arm, dict[str, list[str]]]:
    arm = Arm(count)
    accounts = [(f"ns-{n}", "sa", f"00000000-0000-4000-8000-{n:012d}") for n in range(1, count + 1)]
    facts = collect_inventory(kube(*accounts), arm, AZURE, graph, ISSUER)
    assert facts.failed == [] and facts.refused == []
    return arm, {i.name: [a["role"] for a in i.role_assignments or []] for i in facts.identities}


def expected(count: int) -> dict[str, list[str]]:
    return {f"id-{n}": ["Reader" if n % 2 else "Key Vault Secrets User"] for n in range(1, count + 1)}


def test_many_identities_share_one_list_of_the_subscriptions_role_assignments() -> None:
    count = ROLE_LISTS_AT_MOST + 4
    arm, roles = run(count)
    assert roles == expected(count)  # each its own, the stranger's nobody's
    role_lists = [p for p in arm.calls if p.startswith(ROLES + "?")]
    assert len(role_lists) == 1 and "$filter" not in role_lists[0]
    assert sorted(p.split("?")[0] for p in arm.calls if "/roleDefinitions/" in p) == [READER, SECRETS_USER]


def test_few_identities_list_their_role_assignments_one_principal_at_a_time() -> None:
    arm, roles = run(3)
    assert roles == expected(3)
    role_lists = [p for p in arm.calls if p.startswith(ROLES + "?")]
    assert len(role_lists) == 3 and all("principalId" in urllib.parse.unquote(p) for p in role_lists)
