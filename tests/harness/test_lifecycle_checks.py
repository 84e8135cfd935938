"""The harness's verdicts after ARM lifecycle operations people run while tidying up: az resource move (a resource's
id changes, its role assignments stay at the old id, orphaned) and az group delete (everything in the group goes,
assignments elsewhere naming a deleted identity stay: Identity not found)."""

from __future__ import annotations

from test_checks import OLD, OTHER_VAULT_ID, SECRETS_USER_ID, VAULT_ID, _rbac_refused


def test_a_role_left_at_a_moved_vaults_old_id_is_named_orphaned_by_the_move() -> None:
    """az resource move --destination-group idRg --ids <finance-kv>: the vault's id changes and its role assignment
    stays at the old id, orphaned ("the role assignment isn't moved and becomes orphaned", learn.microsoft.com Move
    Azure resources). The finding said only 'not on <secret> or a parent'; it now names the move, grants at the new
    id and deletes the orphan. Another vault of another name stays a plain wrong scope."""
    old_id = VAULT_ID.replace("/resourceGroups/myRg/", "/resourceGroups/oldRg/")
    assert old_id != VAULT_ID
    finding = _rbac_refused([(SECRETS_USER_ID, old_id, OLD)])
    assert finding.code == "ROLE_WRONG_SCOPE"
    assert "finance-kv's id before it moved out of resource group oldRg (az resource move)" in finding.message
    assert f"grants nothing at its new id {VAULT_ID}" in finding.message
    lines = finding.fix_lines()
    assert lines[0].endswith(f"--role 'Key Vault Secrets User' --scope {VAULT_ID}")
    assert lines[2] == f"az role assignment delete --ids {old_id}/providers/Microsoft.Authorization/roleAssignments/a0"
    elsewhere = _rbac_refused([(SECRETS_USER_ID, OTHER_VAULT_ID.replace("/myRg/", "/oldRg/"), OLD)])
    assert "moved" not in elsewhere.message
