"""az group delete of the group that holds a workload's identity, end to end with the real az CLI: the run names it,
and its printed fix, pasted as printed, makes the identity again with everything it had (the fix's one decision,
harness.yaml's client_id, is made as advised). The lab serves the deletion as ARM does (lab.azure.arm_lifecycle)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_e2e_lab import run_suites
from test_remediation_repairs_lab import (
    Shell,
    assert_az_talked_to_the_lab_only,
    findings_of,
    is_command,
    shell,
    tools,
)

from lab.bootstrap import RunningLab
from lab.scenarios import SHARED_IDENTITY_RESOURCE_GROUP, SHARED_IDENTITY_SUBSCRIPTION

pytestmark = pytest.mark.slow
__all__ = ["shell", "tools"]  # the az and kubectl of test_remediation_repairs_lab, aimed at this module's lab


def test_an_identity_or_its_group_deleted_is_made_again_by_its_printed_fix(shell: Shell, running_lab: RunningLab,
                                                                   tmp_path: Path) -> None:
    info = running_lab.info()
    shared = next(s["id"] for s in info["subscriptions"] if s["name"] == SHARED_IDENTITY_SUBSCRIPTION)
    where = f"--resource-group {SHARED_IDENTITY_RESOURCE_GROUP} --subscription {shared}"
    # a platform team keeps the workload identities in a group of their own, in another subscription
    client_id = shell.must(f"az identity create --name finance-wi {where} --query clientId -o tsv").strip()
    principal = shell.must(f"az identity show --name finance-wi {where} --query principalId -o tsv").strip()
    identity_id = shell.must(f"az identity show --name finance-wi {where} --query id -o tsv").strip()
    shell.must(
        f"az identity federated-credential create --name finance --identity-name finance-wi {where} "
        f"--issuer {info['issuer_url']} --subject system:serviceaccount:finance:backend-sa "
        "--audiences api://AzureADTokenExchange -o none",
        f"az role assignment create --assignee-object-id {principal} --assignee-principal-type ServicePrincipal "
        "--role 'Key Vault Secrets User' --scope \"$(az keyvault show --name finance-kv --query id -o tsv)\" -o none",
        f"kubectl annotate serviceaccount -n finance backend-sa azure.workload.identity/client-id={client_id} "
        "--overwrite",
        "kubectl rollout restart deployment/backend -n finance")
    config = yaml.safe_load(running_lab.harness_config.read_text())
    entry = next(w for w in config["workloads"] if w["namespace"] == "finance")
    entry.update(client_id=client_id, identity_resource_id=identity_id)
    path = tmp_path / "harness.yaml"
    path.write_text(yaml.safe_dump(config))
    result, healthy = run_suites(tmp_path / "healthy", "--config", str(path), "--workload", "finance/backend-sa")
    assert healthy["verdict"] == "pass", result.stdout[-3000:]

    shell.must(f"az group delete --name {SHARED_IDENTITY_RESOURCE_GROUP} --subscription {shared} --yes")
    result, broken = run_suites(tmp_path / "broken", "--config", str(path), "--workload", "finance/backend-sa")
    assert broken["verdict"] == "fail"
    (finding,) = [f for f in findings_of(broken, "finance/backend-sa") if f["code"] == "IDENTITY_NOT_FOUND"
                  and f["check"] == "identity.matches"]
    printed = finding["remediation"]
    commands = [line for line in printed if is_command(line)]
    order = ["az group create", "CLIENT_ID=$(az identity create", "PRINCIPAL_ID=$(az identity show",
             "az identity federated-credential create", "az role assignment create", "kubectl annotate",
             "kubectl rollout restart", "az role assignment list"]
    assert [next(i for i, line in enumerate(commands) if line.startswith(start)) for start in order] == \
        list(range(len(order))), printed
    applied = shell.run(commands)
    assert applied.returncode == 0, shell.shown(applied)
    assert_az_talked_to_the_lab_only(shell)
    # the orphaned assignment is named: the deleted principal's Key Vault Secrets User on finance-kv, with its id
    assert principal in applied.stdout and "/providers/Microsoft.Authorization/roleAssignments/" in applied.stdout
    # the advised edit: harness.yaml's client_id, the new identity's
    entry["client_id"] = shell.must(f"az identity show --name finance-wi {where} --query clientId -o tsv").strip()
    assert entry["client_id"] != client_id
    path.write_text(yaml.safe_dump(config))
    result, after = run_suites(tmp_path / "after", "--config", str(path), "--workload", "finance/backend-sa")
    assert after["verdict"] == "pass", result.stdout[-3000:]

    # az identity delete alone, the group staying: the run says deleted or a typo in one line, and its fix, pasted
    # as printed, makes the identity again with its credential, role and annotation (no group this time)
    shell.must(f"az identity delete --name finance-wi {where}")
    result, deleted = run_suites(tmp_path / "deleted", "--config", str(path), "--workload", "finance/backend-sa")
    assert deleted["verdict"] == "fail"
    (finding,) = [f for f in findings_of(deleted, "finance/backend-sa") if f["code"] == "IDENTITY_NOT_FOUND"
                  and f["check"] == "identity.matches"]
    assert f"identity finance-wi is not in resource group {SHARED_IDENTITY_RESOURCE_GROUP} (the group is there): " \
           "deleted (az identity delete), or a typo" in finding["message"]
    commands = [line for line in finding["remediation"] if is_command(line)]
    assert [next(i for i, line in enumerate(commands) if line.startswith(start)) for start in order[1:]] == \
        list(range(len(order) - 1)), finding["remediation"]
    applied = shell.run(commands)
    assert applied.returncode == 0, shell.shown(applied)
    assert_az_talked_to_the_lab_only(shell)
    entry["client_id"] = shell.must(f"az identity show --name finance-wi {where} --query clientId -o tsv").strip()
    path.write_text(yaml.safe_dump(config))
    result, again = run_suites(tmp_path / "again", "--config", str(path), "--workload", "finance/backend-sa")
    assert again["verdict"] == "pass", result.stdout[-3000:]
