"""Azure-side checks: the identity behind the workload (a user-assigned managed identity in any subscription the
harness reads, or an Entra application), and a federated identity credential that matches the token exactly
(issuer, subject, audience: exact and case-sensitive). What the harness cannot see is a warning about its own
view, never a failed workload."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from harness import values
from harness.checks import remediation as fix
from harness.checks.cluster import slash_hint
from harness.checks.common import arm_failure_finding, harness_token_fix, is_graph_call
from harness.checks.context import WorkloadContext
from harness.checks.live_pods import restart_workload
from harness.checks.model import ERROR, WARNING, Finding, Outcome, failed, passed, skipped, warned
from harness.checks.token import claims, private_issuer
from harness.commands import Command, Step, Var, advice, render
from harness.facts import CREDENTIAL_ERROR, IdentityFacts
from harness.issuers import issuer_relation
from harness.names import CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, TOKEN_AUDIENCE

MAX_FEDERATED_CREDENTIALS = 20


def identity_matches(ctx: WorkloadContext) -> Outcome:
    facts = ctx.facts.identity
    if not facts.configured:
        return skipped(facts.note or "no Azure access configured")
    if facts.error is not None:
        error = facts.error
        evidence = {"url": error.url, "status": error.status, "code": error.code, "error": error.error}
        if facts.kind == "managed_identity" and error.status == 404 and error.code == "ResourceNotFound" \
                and facts.resolved_by == "config" and not exchange_succeeded(ctx):
            # (an exchange that worked: the identity is somewhere the harness cannot read, not deleted)
            return _configured_identity_not_there(ctx, evidence)
        return failed(
            f"the harness could not read the identity: {error.describe()}",
            evidence,
            arm_failure_finding(
                error,
                "identity",
                "identity lookup failed",
                "IDENTITY_NOT_FOUND",
                fix.show_application(ctx.expected_client_id)
                if facts.kind == "application"
                else fix.show_identity(facts.resource_id),
                ctx.azure,
                # az identity show of an identity that is not there only fails again
                None if facts.kind == "application" else fix.identity_gone(
                    facts.resource_id, error.code == "ResourceGroupNotFound", _cluster_location(ctx))
                + (_group_deleted_fixes(ctx) if error.code == "ResourceGroupNotFound" else []),
            ),
        )
    if facts.kind is None:
        return _identity_not_found(ctx)
    if facts.kind == "application":
        return _application_matches(ctx)
    identity = facts.identity or {}
    props = identity.get("properties") or {}
    evidence = {
        "kind": facts.kind,
        "resource_id": facts.resource_id,
        "resolved_by": facts.resolved_by,
        "clientId": props.get("clientId"),
        "principalId": props.get("principalId"),
        "tenantId": props.get("tenantId"),
    }
    expected = ctx.expected_client_id
    actual = str(props.get("clientId"))
    configured, annotated = ctx.workload.client_id or "", ctx.annotated_client_id or ""
    if (expected and actual.lower() != expected.lower() and facts.resolved_by == "config" and configured
            and configured.lower() == annotated.lower() and exchange_succeeded(ctx)):
        # harness.yaml's client_id and the ServiceAccount agree on one identity, which Entra knows (the exchange
        # worked: not an identity deleted and made again under its name), its identity_resource_id names another:
        # harness.yaml contradicts itself, and annotating the other identity's client id would move a workload
        # that runs (the next run then asks to annotate it back)
        where = f"{ctx.namespace}/{ctx.service_account}"
        message = (f"harness.yaml names two identities for {where}: client_id {configured}, with which the "
                   f"ServiceAccount is annotated, and identity_resource_id {facts.resource_id}, whose client id is "
                   f"{actual}")
        return failed(
            f"identity {facts.resource_id} has client id {actual}; harness.yaml's client_id and the ServiceAccount "
            f"name {configured}",
            evidence,
            Finding("IDENTITY_CLIENT_ID_MISMATCH", ERROR, "identity", message, evidence, [
                advice(f"in harness.yaml, for {where}: drop identity_resource_id if the workload runs as "
                       f"{configured}, as its ServiceAccount says; else set client_id: {actual} there, and the "
                       "next run prints the annotation")]),
        )
    if expected and (ctx.stale_configured_client_id is not None or actual.lower() != expected.lower()):
        if ctx.stale_configured_client_id is not None:  # the annotation is the identity's: harness.yaml is stale
            holder, message = "harness.yaml's client_id is", (
                f"harness.yaml's client id {expected} is not the identity's {actual}, with which the ServiceAccount "
                "is annotated")
            fixes = [fix.config_client_id(f"{ctx.namespace}/{ctx.service_account}", expected, actual)]
        elif facts.resolved_by == "config" and facts.kind == "managed_identity" and _unknown_to_entra(ctx, expected):
            # az identity delete + az identity create under the same name: a new clientId and principalId, no
            # federated credentials (they were the old identity's child resources) and no role assignments (the
            # old ones stay, naming a principal that no longer exists: az role assignment list shows them with an
            # empty principalName). Annotating alone leaves the next runs to find each of those in turn
            name, _ = fix.identity_name_rg(facts.resource_id)
            holder, message = "the workload uses", (
                f"identity {name} was deleted and created again under its name: Entra knows no client id {expected} "
                f"(AADSTS700016), the identity now has client id {actual} and principal id "
                f"{props.get('principalId')}, without the old one's federated credentials and role assignments")
            fixes = [fix.annotate_sa(ctx.namespace, ctx.service_account, actual), *_recreated_identity_fixes(ctx),
                     *restart_workload(ctx, actual)]
        else:
            holder, message = "the workload uses", (
                f"the ServiceAccount's client id {expected} is not the identity's {actual}")
            fixes = [fix.annotate_sa(ctx.namespace, ctx.service_account, actual), *restart_workload(ctx, actual)]
        return failed(
            f"identity {facts.resource_id} has client id {props.get('clientId')}, {holder} {expected}",
            evidence,
            Finding("IDENTITY_CLIENT_ID_MISMATCH", ERROR, "identity", message, evidence, fixes),
        )
    mismatch = _tenant_mismatch(ctx, props.get("tenantId"), evidence)
    if mismatch is not None:
        return mismatch
    name, _ = fix.identity_name_rg(facts.resource_id)
    where = "" if facts.resolved_by == "config" else f", found by {_RESOLVED_BY.get(str(facts.resolved_by), 'lookup')}"
    configured_id = ctx.workload.identity_resource_id
    if configured_id and facts.resource_id and configured_id.lower() != facts.resource_id.lower():
        # ARM answered 404 for harness.yaml's id and the collector found the client id elsewhere: az resource move
        # to another group or subscription (a moved identity keeps its client id and principal id), or a typo
        evidence["configured_resource_id"] = configured_id
        workload = f"{ctx.namespace}/{ctx.service_account}"
        message = (f"harness.yaml's identity_resource_id for {workload} names no identity ({configured_id}); the "
                   f"identity with client id {props.get('clientId')} is {facts.resource_id} (moved, or a typo)")
        _, group = fix.identity_name_rg(facts.resource_id)
        return warned(
            f"harness.yaml's identity_resource_id names no identity: client id {props.get('clientId')} is identity "
            f"{name} in resource group {group}{where} (moved?)",
            evidence,
            Finding("IDENTITY_RESOURCE_ID_STALE", WARNING, "identity", message, evidence, [
                advice(f"set identity_resource_id: {facts.resource_id} for {workload} in harness.yaml")]),
        )
    return passed(f"identity {name} (client id {props.get('clientId')}{where}) backs the workload", evidence)


def _unknown_to_entra(ctx: WorkloadContext, client_id: str) -> bool:
    """The pod's exchange as ``client_id`` failed with AADSTS700016: Entra has no application or identity with it."""
    step = ctx.step("exchange") or {}
    return (step.get("status") == "fail" and (step.get("error") or {}).get("aadsts") == "AADSTS700016"
            and str((step.get("evidence") or {}).get("client_id") or client_id).lower() == client_id.lower())


def _recreated_identity_fixes(ctx: WorkloadContext) -> list[Step]:
    """What an identity made again under its name lacks, in the order the next run would find it: harness.yaml's
    client_id, the federated credential for this ServiceAccount, the read roles of its allow targets (on an RBAC
    vault or a storage account); then a look-up of the assignments the old principal left behind."""
    from harness.checks.access import grant_read_if_missing  # access imports this module

    facts = ctx.facts.identity
    identity = facts.identity or {}
    props = identity.get("properties") or {}
    where, configured = f"{ctx.namespace}/{ctx.service_account}", ctx.workload.client_id or ""
    steps: list[Step] = []
    if configured and configured.lower() != str(props.get("clientId") or "").lower():
        steps.append(fix.config_client_id(where, configured, str(props.get("clientId")), annotated_above=True))
    issuer, _ = expected_issuer(ctx)
    credentials = facts.federated_credentials
    if issuer is not None and credentials is not None and match_fic(credentials, issuer, ctx.subject).exact is None:
        steps.append(fic_fix(ctx, "create", free_fic_name(credentials, ctx.namespace, ctx.service_account), issuer))
    grants, scopes = grant_read_if_missing(ctx, str(props.get("principalId") or "") or None)
    steps += grants
    if scopes:
        steps.append(advice("then delete the role assignments the old identity left (those below with an empty "
                            "principalName: their principal no longer exists), with az role assignment delete --ids:"))
        steps.append(fix.orphaned_role_assignments())
    return steps


def _configured_identity_not_there(ctx: WorkloadContext, evidence: dict[str, Any]) -> Outcome:
    """ARM has no identity at harness.yaml's identity_resource_id, in a resource group that is there (az identity
    delete -g RG -n NAME; az identity delete answers nothing and leaves the federated credentials gone with it and
    the role assignments naming a principal that no longer exists), no identity anywhere has the annotated client
    id (collect.arm._moved_identity), and the group's identities tell a deletion from a typo: one named a few
    characters off harness.yaml's (a typo there), one whose client id is a few characters off the annotation's
    (a typo in both); else either may be, and the recreate is printed whole."""
    facts = ctx.facts.identity
    name, group = fix.identity_name_rg(facts.resource_id)
    where, annotated = f"{ctx.namespace}/{ctx.service_account}", ctx.expected_client_id or ""
    listed = facts.listed_identities
    evidence["identities_in_group"] = None if listed is None else [i.get("name") for i in listed]
    named_like = [i for i in listed or [] if _names_alike(name, str(i.get("name") or ""))]
    client_id_like = [i for i in listed or [] if _client_ids_alike(annotated, str(i.get("clientId") or ""))]
    summary = f"identity {name} is not in resource group {group}"
    if named_like or client_id_like:
        near = (named_like or client_id_like)[0]
        near_client = str(near.get("clientId") or "")
        evidence["near_identity"] = near
        why = (f"its name is a few characters off {name}" if named_like else
               f"its client id {near_client} is a few characters off the annotated {annotated}")
        message = (f"{summary}; identity {near.get('name')} is there ({why}): a typo in harness.yaml's "
                   f"identity_resource_id for {where}, not a deletion")
        steps: list[Step] = [advice(f"set identity_resource_id: {near.get('id')} for {where} in harness.yaml")]
        if annotated and near_client and annotated.lower() != near_client.lower():
            steps += [fix.annotate_sa(ctx.namespace, ctx.service_account, near_client),
                      *restart_workload(ctx, near_client)]
            if ctx.workload.client_id:
                steps.append(fix.config_client_id(where, ctx.workload.client_id, near_client, annotated_above=True))
        return failed(f"{summary}; {near.get('name')} is (a typo?)", evidence,
                      Finding("IDENTITY_NOT_FOUND", ERROR, "identity", message, evidence, steps))
    others = ("none of the group's identities is named or numbered like it" if listed else
              "the group holds no identity" if listed is not None else "the group's identities could not be listed")
    unknown = f"; Entra knows no client id {annotated} (AADSTS700016)" if _unknown_to_entra(ctx, annotated) else ""
    message = (f"{summary} (the group is there): deleted (az identity delete), or a typo in harness.yaml's "
               f"identity_resource_id for {where} ({others}){unknown}")
    steps = [advice("if it was a typo, fix identity_resource_id in harness.yaml instead; if it was deleted, the lines "
                    "below make it again with what the workload needs: a new client id and principal id ($CLIENT_ID, "
                    "$PRINCIPAL_ID), its federated credential, its read roles, the annotation"),
             *fix.identity_created(facts.resource_id), *_recreate_fixes(ctx, group_gone=False)]
    return failed(f"{summary}: deleted, or a typo in harness.yaml", evidence,
                  Finding("IDENTITY_NOT_FOUND", ERROR, "identity", message, evidence, steps))


def _names_alike(wanted: str, name: str) -> bool:
    """Two identity names a typo apart (ARM compares names ignoring case, so equal ones are the same name)."""
    wanted, name = wanted.lower(), name.lower()
    return wanted != name and difflib.SequenceMatcher(None, wanted, name).ratio() >= 0.8


def _client_ids_alike(wanted: str, client_id: str) -> bool:
    """Two client ids a few characters apart: a GUID typed or pasted wrong (a character changed, dropped or
    doubled). Two unrelated GUIDs share about half their characters in sequence."""
    wanted, client_id = wanted.lower(), client_id.lower()
    return bool(wanted and client_id) and wanted != client_id and \
        difflib.SequenceMatcher(None, wanted, client_id).ratio() >= 0.9


def _group_deleted_fixes(ctx: WorkloadContext) -> list[Step]:
    return _recreate_fixes(ctx, group_gone=True)


def _recreate_fixes(ctx: WorkloadContext, group_gone: bool) -> list[Step]:
    """After the identity's resource group was deleted (az group delete) and made again with the identity
    (:func:`fix.identity_gone`, which keeps its new client and principal ids in $CLIENT_ID and $PRINCIPAL_ID): what
    went with the old one, in the order the chain needs it: the federated credential (a child resource of the
    identity), the read roles of the allow targets (the old principal's assignments grant nothing to the new one),
    the ServiceAccount's annotation and a restart; then harness.yaml's client_id, and the assignments the old
    principal still holds outside the group, which stay naming a principal that no longer exists ("Role assignments
    with identity not found", learn.microsoft.com Understand Azure role assignments: they are not removed
    automatically)."""
    from harness.checks.access import READ_ROLES, deleted_vault_of, resource_of  # access imports this module

    where = f"{ctx.namespace}/{ctx.service_account}"
    principal, client = Var(fix.NEW_PRINCIPAL_ID), Var(fix.NEW_CLIENT_ID)
    steps: list[Step] = []
    issuer, _ = expected_issuer(ctx)
    if issuer is not None:
        steps.append(fix.federated_credential("create", ctx.facts.identity.resource_id,
                                              fix.fic_name(ctx.namespace, ctx.service_account), issuer, ctx.subject))
    for check in ctx.workload.access:
        if check.expect != "allow":
            continue
        found, deleted = resource_of(ctx, check), deleted_vault_of(ctx, check)
        if found is None and deleted is not None:
            # a vault in the deleted group was soft-deleted with it: the access check, which runs only once the
            # exchange works, would name it; it is recovered here (into its group, made again first when that is
            # another group also gone), and granted the new principal's read, which the recovery does not restore
            _, identity_group = fix.identity_name_rg(ctx.facts.identity.resource_id)
            group = deleted.get("resource_group", "")
            if deleted.get("group_deleted") == "true" and group.lower() != identity_group.lower():
                steps.append(fix.resource_group_create(group, deleted.get("location"), deleted.get("subscription_id")))
            steps += [fix.keyvault_recover(deleted["name"], group, deleted.get("location", ""),
                                           deleted.get("subscription_id")),
                      fix.grant_role(principal, READ_ROLES[check.kind], deleted["id"])]
        elif found is None:
            steps.append(advice(f"grant {READ_ROLES[check.kind]} to $PRINCIPAL_ID on {check.describe()} once it is "
                                "there again (ARM does not list it now: deleted with the group? its access check "
                                "says)"))
        elif found.get("rbac_authorization") == "false":  # a vault under access policies
            steps.append(fix.keyvault_set_secret_policy(found.get("name") or "<vault-name>", principal,
                                                        vault_id=found.get("id")))
        else:
            steps.append(fix.grant_role(principal, READ_ROLES[check.kind], fix.read_scope(found["id"], check)))
    steps += [fix.annotate_sa(ctx.namespace, ctx.service_account, client), *restart_workload(ctx)]
    if ctx.workload.client_id:
        steps.append(advice(f"set client_id for {where} in harness.yaml to the new client id (echo \"$CLIENT_ID\")"))
    held = "still holds outside the group" if group_gone else "left"
    steps += [advice(f"then delete the role assignments the old identity {held} (those below, with an empty "
                     "principalName: their principal no longer exists), with az role assignment delete --ids:"),
              fix.orphaned_role_assignments()]
    return steps


def _cluster_location(ctx: WorkloadContext) -> str | None:
    """The managed cluster's region, as ARM answered it."""
    arm_cluster = ctx.cluster.arm_cluster
    body = arm_cluster.body if arm_cluster is not None and arm_cluster.ok else None
    return str(body.get("location") or "") or None if isinstance(body, dict) else None


_RESOLVED_BY = {
    "resource_graph": "Azure Resource Graph",
    "subscription_list": "listing the configured subscription",
    "graph": "Microsoft Graph",
}


def _tenant_mismatch(ctx: WorkloadContext, tenant_of_identity: Any, evidence: dict[str, Any]) -> Outcome | None:
    tenant = ctx.expected_tenant_id
    if ctx.configured_tenant_wrong(tenant_of_identity):
        where = f"{ctx.namespace}/{ctx.service_account}"
        return warned(
            f"identity tenant {tenant_of_identity} differs from harness.yaml's tenant_id {tenant}; the pod's token "
            "goes to the identity's tenant",
            evidence,
            Finding("IDENTITY_TENANT_MISMATCH", WARNING, "identity",
                    f"harness.yaml's tenant_id {tenant} for {where} is not the identity's tenant {tenant_of_identity}",
                    evidence, [config_tenant(where, str(tenant), str(tenant_of_identity))]),
        )
    if tenant and tenant_of_identity and str(tenant_of_identity).lower() != tenant.lower():
        if ctx.workload.tenant_id:
            source = "harness.yaml's tenant_id for the workload"
        elif ctx.facts.sa.annotations.get(TENANT_ID_ANNOTATION):  # the webhook's AZURE_TENANT_ID for its pods
            source = (f"the tenant ServiceAccount {ctx.namespace}/{ctx.service_account}'s {TENANT_ID_ANNOTATION} "
                      "annotation gives its pods")
        else:
            source = "harness.yaml's azure.tenant_id"
        return warned(
            f"identity tenant {tenant_of_identity} differs from {source}, {tenant}",
            evidence,
            Finding(
                "IDENTITY_TENANT_MISMATCH",
                WARNING,
                "identity",
                f"identity in tenant {tenant_of_identity}, not {source}, {tenant}",
                evidence,
                [fix.annotate_sa_tenant(ctx.namespace, ctx.service_account, str(tenant_of_identity)),
                 *restart_workload(ctx)],
            ),
        )
    return None


def config_tenant(where: str, configured: str, actual: str) -> Step:
    """harness.yaml's tenant_id for a workload names another tenant than its identity's (and its pod's)."""
    return advice(f"set tenant_id: {actual} for {where} in harness.yaml, or drop it (it names {configured}; the "
                  "identity, the ServiceAccount and the token are in the other)")


def exchange_succeeded(ctx: WorkloadContext) -> bool:
    """Entra exchanged the workload's token (the probe's exchange step passed)."""
    return (ctx.step("exchange") or {}).get("status") == "pass"


def principal_id_of(facts: IdentityFacts) -> str | None:
    """The object id role assignments name: the managed identity's principalId or the app's service principal."""
    if facts.kind == "application":
        return str((facts.service_principal or {}).get("id") or "") or None
    return str(((facts.identity or {}).get("properties") or {}).get("principalId") or "") or None


def _application_matches(ctx: WorkloadContext) -> Outcome:
    facts = ctx.facts.identity
    app = facts.application or {}
    principal = facts.service_principal
    evidence: dict[str, Any] = {
        "kind": "application",
        "resolved_by": facts.resolved_by,
        "appId": app.get("appId"),
        "applicationObjectId": app.get("id"),
        "displayName": app.get("displayName"),
        "servicePrincipalId": (principal or {}).get("id"),
    }
    if principal is None:
        lookup = facts.service_principal_lookup
        if lookup is not None and lookup.status == 404:
            deleted = facts.deleted_service_principal
            message = f"the application {app.get('appId')} has no service principal (enterprise application)"
            if deleted is not None:
                # a new service principal would have a new object id: the role assignments name the deleted one's
                evidence["deleted_service_principal"] = {"id": deleted.get("id"),
                                                         "deletedDateTime": deleted.get("deletedDateTime")}
                message += (
                    f": its service principal {deleted.get('id')} was deleted {deleted.get('deletedDateTime')} and "
                    "can be restored, with the role assignments that name it, for 30 days after its deletion"
                )
            repair = service_principal_repair(ctx, app.get("appId"))
            return failed(
                f"application {app.get('displayName')} (appId {app.get('appId')}) has no service principal in the "
                "tenant: Entra issues it no token (AADSTS7000229)",
                evidence,
                Finding("SERVICE_PRINCIPAL_MISSING", ERROR, "identity", message, evidence, repair),
            )
        evidence["service_principal_lookup"] = lookup.describe() if lookup is not None else None
        return _not_visible(ctx, evidence, f"the application {app.get('appId')}'s service principal")
    mismatch = _tenant_mismatch(ctx, (ctx.azure.tenant_id if ctx.azure else None), evidence)
    if mismatch is not None:
        return mismatch
    if principal.get("accountEnabled") is False:
        return _service_principal_disabled(ctx, evidence, principal)
    return passed(
        f"application {app.get('displayName')} (appId {app.get('appId')}, service principal {principal.get('id')}, "
        "found in Microsoft Graph) backs the workload",
        evidence,
    )


def _service_principal_disabled(ctx: WorkloadContext, evidence: dict[str, Any],
                                principal: dict[str, Any]) -> Outcome:
    """The app's service principal switched off (az ad sp update --set accountEnabled=false, the portal's
    'Enabled for users to sign-in?' No): Entra refuses it every token, AADSTS7000112 (unauthorized_client)."""
    app = ctx.facts.identity.application or {}
    evidence["servicePrincipalAccountEnabled"] = False
    message = (
        f"the service principal {principal.get('id')} of application {app.get('displayName')} (appId "
        f"{app.get('appId')}) is disabled (accountEnabled false): Entra issues it no token (AADSTS7000112)"
    )
    return failed(
        message,
        evidence,
        Finding("APPLICATION_DISABLED", ERROR, "identity", message, evidence,
                [fix.enable_service_principal(app.get("appId"))]),
    )


def _identity_not_found(ctx: WorkloadContext) -> Outcome:
    facts = ctx.facts.identity
    if ctx.expected_client_id is None and not ctx.workload.identity_resource_id:
        return skipped(
            "skipped because sa.client_id_annotation failed",
            {"reason": "no client id to look the identity up by"},
            blocked_by="sa.client_id_annotation",
        )
    annotated = ctx.expected_client_id
    if not ctx.workload.identity_resource_id and not values.is_guid(annotated):
        # sa.client_id_annotation names the value and prints its fix; a look-up of '<client-id>' adds nothing
        return skipped(
            f"skipped because sa.client_id_annotation failed: {values.shorten(str(annotated), 80)!r} is not a GUID, "
            "so no identity can have it",
            {"client_id": annotated, "reason": "the client id is not a GUID"},
            blocked_by="sa.client_id_annotation",
        )
    evidence: dict[str, Any] = {
        "client_id": annotated,
        "searched": list(facts.searched),
        "refused": [f.describe() for f in facts.refused],
    }
    owner = facts.principal_of
    if owner is not None and ctx.configured_object_id_of is not None:
        # harness.yaml's client_id is the object id; the annotation holds the identity's client id, rightly
        evidence["identity"] = owner
        return skipped(
            f"skipped because sa.client_id_annotation failed: harness.yaml's client_id {annotated} is the object "
            f"id of {str(owner.get('kind')).replace('_', ' ')} {owner.get('resource_id') or owner.get('name')}, "
            f"whose client id {owner.get('client_id')} the ServiceAccount is annotated with",
            evidence,
            blocked_by="sa.client_id_annotation",
        )
    if owner is not None:
        evidence["identity"] = owner
        named = owner.get("resource_id") or owner.get("name")
        if owner.get("kind") == "application":
            message = (
                f"{annotated} is the object id of the application {named}, not its client id: the annotation "
                f"must hold its application (client) id, appId {owner.get('client_id')}"
            )
        else:
            what = "managed identity" if owner.get("kind") == "managed_identity" else "service principal"
            message = (
                f"{annotated} is the principal (object) id of the {what} {named}, not a client id: the annotation "
                f"must hold its client id {owner.get('client_id')}"
            )
        return failed(
            message,
            evidence,
            Finding(
                "SA_ANNOTATION_IS_PRINCIPAL_ID",
                ERROR,
                "serviceaccount",
                message,
                evidence,
                [
                    fix.annotate_sa(ctx.namespace, ctx.service_account, owner.get("client_id")),
                    *restart_workload(ctx, str(owner.get("client_id") or "") or None),
                ],
            ),
        )
    if facts.deleted_application is not None:
        return _application_deleted(ctx, evidence)
    if facts.foreign_service_principal is not None:
        return _application_of_another_tenant(ctx, evidence, facts.foreign_service_principal)
    if facts.refused or exchange_succeeded(ctx):
        return _not_visible(ctx, evidence, f"the identity with client id {annotated}")
    note = facts.note or "identity not found"
    listed = facts.listed_identities
    alike = [i for i in listed or [] if _client_ids_alike(str(annotated or ""), str(i.get("clientId") or ""))]
    if alike:
        near, where = alike[0], f"{ctx.namespace}/{ctx.service_account}"
        evidence["near_identity"] = near
        message = (f"no identity has client id {annotated}; identity {near.get('name')} has {near.get('clientId')}, "
                   f"a few characters off it: a typo in {where}'s client id, not a deleted identity")
        steps = [fix.annotate_sa(ctx.namespace, ctx.service_account, near.get("clientId")),
                 *restart_workload(ctx, str(near.get("clientId") or "") or None)]
        if ctx.workload.client_id:
            steps.append(fix.config_client_id(where, ctx.workload.client_id, str(near.get("clientId")),
                                              annotated_above=True))
        return failed(message, evidence, Finding("IDENTITY_NOT_FOUND", ERROR, "identity", message, evidence, steps))
    if listed is not None and ctx.azure is not None:
        # nothing tells a deleted identity from a client id that never was one: both, in one line
        note += (f": a deleted identity, a client id that never was one, or an application of another tenant not "
                 f"installed in this one (no identity of subscription {ctx.azure.subscription_id} has a client id "
                 "a few characters off it)")
    return failed(
        note,
        evidence,
        Finding(
            "IDENTITY_NOT_FOUND",
            ERROR,
            "identity",
            note,
            evidence,
            # every look-up answered: this tenant has no identity with the client id. The exchange's AADSTS700016,
            # skipped because of this one (exchange._refused_for_an_identity_not_there), asked about another tenant
            [*fix.find_identity_anywhere(annotated), *another_tenant(ctx)],
        ),
    )


def _application_of_another_tenant(ctx: WorkloadContext, evidence: dict[str, Any],
                                   principal: dict[str, Any]) -> Outcome:
    """The client id is a multi-tenant application another tenant owns, installed here (its service principal in
    this tenant): Entra issues this tenant's tokens to it against the federated credentials of the application in
    its home tenant (learn.microsoft.com workload-identity-federation-config-app-trust-managed-identity: a
    multitenant app's credential used in a tenant it is provisioned in), which the harness, signed in to this tenant,
    cannot read. Its exchange (and the exchange's finding, with the credential to make there) judges the workload."""
    owner, client = str(principal.get("appOwnerOrganizationId")), ctx.expected_client_id
    evidence["service_principal"] = principal
    evidence["exchange_succeeded"] = exchanged = exchange_succeeded(ctx)
    message = (f"client id {client} is application {principal.get('displayName')} of another tenant, {owner} (a "
               f"multi-tenant app), installed in this one as service principal {principal.get('id')}: its federated "
               f"credentials are on the application in tenant {owner}, which the harness does not read from this "
               "tenant; " + ("Entra exchanged the workload's token" if exchanged else "the token exchange decides"))
    steps: list[Step] = [
        advice(f"its federated credentials, as someone who may manage the application in tenant {owner}:"),
        fix.login_tenant(owner),
        fix.app_credential_list(client),
    ]
    return warned(f"application {principal.get('displayName')} ({client}) is tenant {owner}'s, installed here",
                  evidence, Finding("IDENTITY_NOT_VISIBLE", WARNING, "harness", message, evidence, steps))


def another_tenant(ctx: WorkloadContext) -> list[Step]:
    """An identity registered in another tenant (an app registration there, say): Entra looks the client id up in
    the tenant the pod asks, the ServiceAccount's tenant-id annotation, else the webhook's (AADSTS700016)."""
    # Entra's own words for AADSTS700016: "This can happen if the application has not been installed by the
    # administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication
    # request to the wrong tenant": a multi-tenant app of another tenant is installed here (its service principal,
    # which this tenant's role assignments name; its federated credentials stay on the app in its home tenant)
    client = ctx.expected_client_id
    # advice, not a command: pasted with the rest, az ad sp create of a client id that is no application fails
    install = ([advice("if it is a multi-tenant application registered in another tenant, an admin of this tenant "
                       f"installs it here: az ad sp create --id {client} (its service principal; its federated "
                       "credentials stay on the application in its home tenant)")] if values.is_guid(client) else [])
    return [*install,
            advice("if the identity lives in another tenant" + (" and the workload reads that tenant's resources"
                                                                if install else "")
                   + ", the ServiceAccount must name that tenant:"),
            fix.annotate_sa_tenant(ctx.namespace, ctx.service_account, None), *restart_workload(ctx)]


def _application_deleted(ctx: WorkloadContext, evidence: dict[str, Any]) -> Outcome:
    """The client id is an application's in Graph's deleted items (az ad app delete, within 30 days): restored,
    it comes back with its appId and federated credentials; its service principal, deleted with it, is restored
    on its own (Graph restores them one by one), and with it the role assignments that name its object id."""
    facts = ctx.facts.identity
    app = facts.deleted_application or {}
    principal = facts.deleted_service_principal
    graph = graph_endpoint(ctx)
    evidence["deleted_application"] = {"id": app.get("id"), "appId": app.get("appId"),
                                       "displayName": app.get("displayName"),
                                       "deletedDateTime": app.get("deletedDateTime")}
    message = (
        f"the application {app.get('displayName')} (appId {app.get('appId')}, object id {app.get('id')}) was "
        f"deleted {app.get('deletedDateTime')}: Entra knows no application with this client id (AADSTS700016); "
        "Microsoft Graph keeps it for 30 days after its deletion, and a restore brings it back with its federated "
        "credentials"
    )
    repair: list[Step] = [fix.restore_deleted_item(graph, app.get("id"), note="the application")]
    if principal is not None:
        evidence["deleted_service_principal"] = {"id": principal.get("id"),
                                                 "deletedDateTime": principal.get("deletedDateTime")}
        repair.append(fix.restore_deleted_item(graph, principal.get("id"),
                                               note="its service principal, which the role assignments name"))
    else:
        repair += [fix.create_service_principal(app.get("appId")), *_regrant(ctx)]
    successor = _namesake_trusting(ctx)
    if successor is not None:
        # az ad app delete, then az ad app create under the same name with a credential for this ServiceAccount:
        # the person started over, and the new app's client id is what the annotation must name (a restore
        # would bring the old one back beside it)
        new = str(successor.get("appId"))
        evidence["made_again"] = {"id": successor.get("id"), "appId": new,
                                  "displayName": successor.get("displayName"),
                                  "createdDateTime": successor.get("createdDateTime")}
        message += (f"; an application of the same name, appId {new}, made since, has a federated credential for "
                    f"{ctx.subject}: annotate it if it replaces the deleted one")
        configured = ctx.workload.client_id
        repair = [
            fix.annotate_sa(ctx.namespace, ctx.service_account, new),
            *([advice(f"set client_id: {new} for {ctx.namespace}/{ctx.service_account} in harness.yaml (it names "
                      f"{configured}, the deleted application's)")]
              if configured and configured.lower() != new.lower() else []),
            *restart_workload(ctx, new),
            *restore_instead(repair),
        ]
    return failed(message, evidence, Finding("IDENTITY_NOT_FOUND", ERROR, "identity", message, evidence, repair))


def restore_instead(repair: list[Step]) -> list[Step]:
    """A deleted application's restore, offered as the other way (comments: a paste of the fix annotates the
    application made again and restores nothing)."""
    lines = [render(Command(step.argv)) for step in repair if isinstance(step, Command)]
    if not lines:
        return []
    return [advice("or, to bring the deleted one back instead (its credentials and role assignments with it):"),
            *(advice(f"  {line}") for line in lines)]


def _namesake_trusting(ctx: WorkloadContext) -> dict[str, Any] | None:
    """The live application named as the deleted one whose federated credential lets this ServiceAccount's
    token in (this issuer, its subject, the exchange audience), else None."""
    issuer, _ = expected_issuer(ctx)
    if not issuer:
        return None
    for namesake in ctx.facts.identity.namesakes:
        credentials = namesake.get("federated_credentials")
        if credentials and match_fic(credentials, issuer, ctx.subject).exact is not None:
            return dict(namesake.get("application") or {})
    return None


def namesake_trusted_instead(ctx: WorkloadContext) -> dict[str, Any] | None:
    """The other live application of the annotated one's display name that lets this ServiceAccount in (this
    issuer, its subject, the exchange audience), when the annotated application has no credential for it (none
    of its subjects is this one but for case, whitespace or a typo, none has its issuer and subject) and
    harness.yaml names no client id: two app registrations share the name (one made by ``az rest`` or the portal
    beside the first; ``az ad app list --display-name ... --query [0].appId`` picks either), and the annotation
    names the one without it. None otherwise."""
    facts = ctx.facts.identity
    if facts.kind != "application" or facts.deleted_application is not None or ctx.workload.client_id:
        return None
    issuer, _ = expected_issuer(ctx)
    if not issuer or facts.federated_credentials is None:
        return None
    match = match_fic(facts.federated_credentials, issuer, ctx.subject)
    if match.exact is not None or match.audience_differs or match.issuer_differs:
        return None
    if any(str(f["subject"]).strip().lower() == ctx.subject.lower() for f in match.subject_differs) or \
            _mistyped_subject_credential(match.subject_differs, ctx.subject) is not None:
        return None  # a credential meant for this ServiceAccount, mistyped: this is the application meant
    successor = _namesake_trusting(ctx)
    return successor if successor is not None and successor.get("appId") else None


def _namesake_instead(ctx: WorkloadContext, credentials: list[dict[str, Any]],
                      evidence: dict[str, Any]) -> Outcome | None:
    """:func:`namesake_trusted_instead`'s case as federation.credential's failure: the fix is the annotation, as
    the inventory's SA_ANNOTATION_WRONG_IDENTITY says; a credential on the annotated app is the other way."""
    successor = namesake_trusted_instead(ctx)
    if successor is None:
        return None
    app = ctx.facts.identity.application or {}
    right, wrong = str(successor["appId"]), str(app.get("appId") or ctx.expected_client_id)
    display = app.get("displayName")
    evidence["namesake_trusting"] = {"id": successor.get("id"), "appId": right, "displayName": display}
    code, aadsts = ("FIC_SUBJECT_MISMATCH", "AADSTS700213") if credentials else ("FIC_MISSING", "AADSTS70025")
    message = (f"application {display} (appId {wrong}) has no federated credential for {ctx.subject}; another "
               f"application named {display}, appId {right}, has one: two app registrations share the name and "
               "the annotation names the one without it")
    repair: list[Step] = [fix.annotate_sa(ctx.namespace, ctx.service_account, right), *restart_workload(ctx, right),
                          advice(f"or, if {wrong} is the application meant: a federated credential for "
                                 f"{ctx.subject} on it (a run with client_id: {wrong} in harness.yaml prints the "
                                 "create) and the roles the workload needs")]
    return failed(f"{message} (Entra: {aadsts})", evidence, Finding(code, ERROR, "federation", message, evidence,
                                                                      repair))


def service_principal_repair(ctx: WorkloadContext, app_id: str | None) -> list[Step]:
    """An application without a service principal: the deleted one restored (Graph's deleted items keep it 30
    days, under the object id its role assignments name), else a new one, whose roles are granted again. When the
    harness could not look (no Graph read), the person is told to look before making a new one."""
    deleted = ctx.facts.identity.deleted_service_principal
    if deleted is not None:
        return [fix.restore_deleted_item(graph_endpoint(ctx), deleted.get("id"))]
    steps: list[Step] = []
    if ctx.facts.identity.kind != "application":  # the harness did not read the application (no Graph read)
        steps.append(advice("deleted within the last 30 days? restore it instead, with its object id and role "
                            "assignments: az rest --method GET --url '<graph>/v1.0/directory/deletedItems/"
                            "microsoft.graph.servicePrincipal' lists them, POST .../deletedItems/<id>/restore "
                            "restores one"))
    return [*steps, fix.create_service_principal(app_id), *_regrant(ctx)]


def _regrant(ctx: WorkloadContext) -> list[Step]:
    """What a new service principal (a new object id) lacks: the roles the workload's access checks need."""
    if not any(check.expect == "allow" for check in ctx.workload.access):
        return []
    return [advice("a new service principal has a new object id and none of the old one's role assignments: "
                   "grant it the roles the workload needs (the next run names each that is missing)")]


def graph_endpoint(ctx: WorkloadContext) -> str | None:
    """The cloud's Microsoft Graph (``https://graph.microsoft.com/`` for the public cloud)."""
    return ctx.azure.cloud.endpoints.microsoft_graph if ctx.azure is not None else None


def _not_visible(ctx: WorkloadContext, evidence: dict[str, Any], what: str) -> Outcome:
    """The harness cannot see ``what``: a warning about its own view, whether or not the workload works."""
    facts = ctx.facts.identity
    exchanged = exchange_succeeded(ctx)
    evidence["exchange_succeeded"] = exchanged
    reason = (
        "some lookups were refused: " + "; ".join(f.describe() for f in facts.refused)
        if facts.refused
        else "it is in none of the subscriptions the harness reads, nor in Microsoft Graph's applications"
    )
    verdict = (
        "Entra exchanged the workload's token, so the identity exists"
        if exchanged
        else "the token exchange decides whether the workload works"
    )
    message = f"the harness cannot see {what} ({reason}); {verdict}; its federated credentials and roles go unchecked"
    # the harness got no token at all (its credential, or an endpoint Entra does not know): no grant helps
    untokened = [f for f in facts.refused if f.code == CREDENTIAL_ERROR]
    refused = [f for f in facts.refused if f.code != CREDENTIAL_ERROR]
    graph_refused = [f for f in refused if is_graph_call(f)]
    remediation: list[Step] = harness_token_fix(ctx.azure, untokened[0]) if untokened else []
    if len(graph_refused) < len(refused) or not facts.refused:
        if len(graph_refused) < len(refused):
            remediation.append(fix.grant_harness_reader(ctx.azure))
        remediation.append(fix.grant_harness_reader_at(ctx.azure, _identity_subscription(ctx)))
    if graph_refused or not facts.refused:
        remediation += fix.grant_harness_graph_read(ctx.azure)
    return warned(message, evidence, Finding("IDENTITY_NOT_VISIBLE", WARNING, "harness", message, evidence,
                                              remediation))


def _identity_subscription(ctx: WorkloadContext) -> str:
    """The scope that holds the identity: harness.yaml's identity_resource_id names its subscription; else a
    placeholder (the harness cannot see where it lives)."""
    resource_id = ctx.workload.identity_resource_id or ""
    match = re.match(r"/subscriptions/([^/]+)/", resource_id, re.IGNORECASE)
    subscription = fix.guid_or(match.group(1) if match else None, "<subscription-holding-the-identity>")
    return f"/subscriptions/{subscription}"


@dataclass
class FicMatch:
    exact: dict[str, Any] | None
    issuer_differs: list[dict[str, Any]]  # subject and audience match, issuer does not
    subject_differs: list[dict[str, Any]]  # issuer matches, subject does not
    audience_differs: list[dict[str, Any]]  # issuer and subject match, audiences do not


def _fic(item: dict[str, Any]) -> dict[str, Any]:
    """ARM nests the fields under ``properties``; Graph does not."""
    props = item.get("properties") if isinstance(item.get("properties"), dict) else item
    return {
        "name": item.get("name"),
        "issuer": props.get("issuer"),
        "subject": props.get("subject"),
        "audiences": props.get("audiences"),
    }


def match_fic(credentials: list[dict[str, Any]], issuer: str, subject: str) -> FicMatch:
    fics = [_fic(item) for item in credentials]
    good_aud = [f for f in fics if f["audiences"] == [TOKEN_AUDIENCE]]
    exact = next((f for f in good_aud if f["issuer"] == issuer and f["subject"] == subject), None)
    return FicMatch(
        exact=exact,
        issuer_differs=[f for f in good_aud if f["subject"] == subject and f["issuer"] != issuer],
        subject_differs=[f for f in good_aud if f["issuer"] == issuer and f["subject"] != subject],
        audience_differs=[
            f
            for f in fics
            if f["issuer"] == issuer and f["subject"] == subject and f["audiences"] != [TOKEN_AUDIENCE]
        ],
    )


def audience_hint(audiences: Any) -> str:
    """How a credential's one audience differs from the exchange audience when it is a misspelling of it
    (``api://AzureADTokenExchange/``, another letter case, a space pasted with it), else "". Entra compares
    audiences exactly, case included (its August 2024 breaking change: case-sensitive matching of a credential's
    issuer, subject and audience)."""
    if not isinstance(audiences, list) or len(audiences) != 1 or not isinstance(audiences[0], str):
        return ""
    return slash_hint(audiences[0], TOKEN_AUDIENCE)


def expected_issuer(ctx: WorkloadContext) -> tuple[str | None, str]:
    """The token's iss when the probe read it, else the cluster's issuer; none while the cluster's OIDC issuer is
    off (the token's iss is then the API server's own, which no credential should name)."""
    private = private_issuer(ctx)
    if private is not None:
        return None, (f"the cluster's OIDC issuer is off (see token.issuer): the token's iss {private!r} is the API "
                      "server's own issuer, which Entra cannot discover, so no federated credential should name it")
    iss = claims(ctx).get("iss")
    if iss:
        return str(iss), "the token's iss"
    return ctx.cluster.issuer_url, f"the cluster issuer ({ctx.cluster.issuer_source})"


def fic_fix(ctx: WorkloadContext, verb: str, name: str, issuer: str) -> Command:
    """Create or update a federated credential where the identity keeps them: ARM for a managed identity,
    Microsoft Graph for an application."""
    facts = ctx.facts.identity
    if facts.kind == "application":
        app_id = (facts.application or {}).get("appId") or ctx.expected_client_id
        return fix.app_federated_credential(verb, app_id, name, issuer, ctx.subject)
    if facts.foreign_service_principal is not None:  # a multi-tenant app of another tenant: made in its home
        app = fix.app_federated_credential(verb, ctx.expected_client_id, name, issuer, ctx.subject)
        home = facts.foreign_service_principal.get("appOwnerOrganizationId")
        return Command(app.argv, note="in the application's home tenant: az login --tenant "
                                      f"{fix.guid_or(home, '<home-tenant-id>')} first")
    client_id = ctx.expected_client_id
    if facts.kind is None and not facts.resource_id and client_id:
        # the harness could not see the identity (its lookups refused), so not whether it is an app registration
        # or a managed identity: the command for the kind the refusals point at, the other in its comment. Only
        # Microsoft Graph refused (no managed identity of the subscriptions it reads has the client id): an app
        # registration, whose command needs nothing but the client id
        if facts.refused and all(is_graph_call(f) for f in facts.refused):
            app = fix.app_federated_credential(verb, client_id, name, issuer, ctx.subject)
            return Command(app.argv, note=f"if {client_id} is an app registration (a managed identity's: az identity "
                                          f"federated-credential {verb}, the same name, issuer and subject)")
        managed = fix.federated_credential(verb, None, name, issuer, ctx.subject)
        return Command(managed.argv, note=f"if {client_id} is a managed identity (an app registration's: az ad app "
                                          f"federated-credential {verb} --id {client_id}, the same name, issuer and "
                                          "subject)")
    return fix.federated_credential(verb, facts.resource_id, name, issuer, ctx.subject)


def unread_application(ctx: WorkloadContext) -> str | None:
    """The appId of an app registration whose federated credentials the harness could not read: Graph answered
    for the application but not for its credentials, or only Graph refused (no managed identity of the
    subscriptions it reads has the client id, as :func:`fic_fix` judges); None otherwise."""
    facts = ctx.facts.identity
    if facts.federated_credentials is not None:
        return None
    if facts.kind == "application":
        return str((facts.application or {}).get("appId") or ctx.expected_client_id or "") or None
    if (facts.kind is None and not facts.resource_id and ctx.expected_client_id and facts.refused
            and all(is_graph_call(f) for f in facts.refused)):
        return ctx.expected_client_id
    return None


def unread_fic_name(namespace: str, service_account: str, issuer: str) -> str:
    """A name for a new credential on an identity whose credentials the harness could not read: the usual name
    marked with its issuer, so not the name the credential Entra refused may hold (a subject mistyped under the
    ServiceAccount's own name: Graph refuses a taken name, 'FederatedIdentityCredential with name X already
    exists.', and ARM's PUT would overwrite it, another cluster's credential say)."""
    mark = hashlib.sha256(issuer.encode()).hexdigest()[:6]
    return f"{fix.fic_name(namespace, service_account)[:113]}-{mark}"


def free_fic_name(credentials: list[dict[str, Any]], namespace: str, service_account: str) -> str:
    """A name for a new federated credential that the identity's credentials do not use yet: Graph refuses a
    taken one ("FederatedIdentityCredential with name X already exists."), and ARM's PUT overwrites it (another
    ServiceAccount's credential, say)."""
    taken = {str(c.get("name") or "").lower() for c in credentials}
    base = fix.fic_name(namespace, service_account)
    name, counter = base, 2
    while name.lower() in taken:
        name, counter = f"{base[:115]}-{counter}", counter + 1
    return name


def credential_delete(ctx: WorkloadContext, name: str) -> Command:
    """Delete a federated credential where the identity keeps it (ARM, or Microsoft Graph for an application)."""
    facts = ctx.facts.identity
    if facts.kind == "application":
        return fix.app_credential_delete((facts.application or {}).get("appId") or ctx.expected_client_id, name)
    return fix.identity_credential_delete(facts.resource_id, name)


def room_for_one(ctx: WorkloadContext, credentials: list[dict[str, Any]]) -> list[Step]:
    """Before a create on an identity that holds the most federated credentials it may (ARM and Graph refuse the
    21st): the listing, and which to delete first."""
    if len(credentials) < MAX_FEDERATED_CREDENTIALS:
        return []
    facts = ctx.facts.identity
    listing = (fix.app_credential_list((facts.application or {}).get("appId") or ctx.expected_client_id)
               if facts.kind == "application" else fix.identity_credential_list(facts.resource_id))
    return [advice(f"the identity holds {len(credentials)} federated credentials, the most it may: the create below "
                   "is refused until one is deleted; delete one no cluster uses (the inventory's FIC_ORPHANED and "
                   "FIC_OLD_ISSUER print their deletes), or give this workload an identity of its own"),
            listing]


SA_SUBJECT_PREFIX = "system:serviceaccount:"


def _mistyped_subject_credential(credentials: list[dict[str, Any]], subject: str) -> dict[str, Any] | None:
    """The credential (this issuer's, another subject's) whose subject is a ServiceAccount's a few characters off
    ``subject``: a namespace or name mistyped when it was made."""
    subjects = [str(c["subject"]) for c in credentials if str(c["subject"]).startswith(SA_SUBJECT_PREFIX)
                and str(c["subject"]).count(":") == 3]
    close = difflib.get_close_matches(subject, subjects, n=1, cutoff=0.85)
    return next((c for c in credentials if close and str(c["subject"]) == close[0]), None)


def federated_credential(ctx: WorkloadContext) -> Outcome:
    facts = ctx.facts.identity
    if facts.kind is None or facts.federated_credentials is None:
        return skipped("the harness cannot see the identity's federated credentials (see identity.matches)")
    credentials = facts.federated_credentials
    issuer, issuer_source = expected_issuer(ctx)
    if issuer is None:
        return skipped(issuer_source if private_issuer(ctx) else "neither the token's iss nor the cluster's issuer "
                       "URL is known")
    match = match_fic(credentials, issuer, ctx.subject)
    evidence: dict[str, Any] = {
        "expected": {
            "issuer": issuer,
            "issuer_source": issuer_source,
            "subject": ctx.subject,
            "audiences": [TOKEN_AUDIENCE],
        },
        "federated_credentials": [_fic(c) for c in credentials],
    }
    name = free_fic_name(credentials, ctx.namespace, ctx.service_account)
    if match.exact is not None:
        if len(credentials) >= MAX_FEDERATED_CREDENTIALS:
            return warned(
                f"federated credential {match.exact['name']} matches; the identity holds "
                f"{len(credentials)} of at most {MAX_FEDERATED_CREDENTIALS}",
                evidence,
                Finding(
                    "FIC_LIMIT_REACHED",
                    WARNING,
                    "federation",
                    "the identity is at the limit of 20 federated credentials",
                    evidence,
                    [
                        fix.app_credential_list(facts.application.get("appId") or ctx.expected_client_id)
                        if facts.kind == "application" and facts.application
                        else fix.identity_credential_list(facts.resource_id),
                        advice("delete the credentials no cluster uses any more (the run's FIC_ORPHANED and "
                               "FIC_OLD_ISSUER print their delete commands), or give further workloads an identity "
                               "of their own"),
                    ],
                ),
            )
        return passed(
            f"federated credential {match.exact['name']} matches issuer, subject and audience exactly",
            evidence,
        )
    # An identity holds one credential per issuer and subject (ARM and Graph refuse a second: 'Issuer and subject
    # combination already exists'), so one with the token's issuer and subject is the one Entra weighs, and its
    # audience fails the exchange (AADSTS700212) whatever other credentials say; creating another for the subject,
    # or moving one to this issuer, would be refused.
    if match.audience_differs:
        fic = match.audience_differs[0]
        hint = audience_hint(fic["audiences"])
        return failed(
            f"federated credential {fic['name']} has audiences {fic['audiences']}, it must be exactly "
            f"[{TOKEN_AUDIENCE!r}]{hint} (Entra: AADSTS700212)",
            evidence,
            Finding(
                "FIC_AUDIENCE_MISMATCH",
                ERROR,
                "federation",
                f"FIC {fic['name']} audiences {fic['audiences']}{hint}",
                evidence,
                [fic_fix(ctx, "update", str(fic["name"]), issuer)],
            ),
        )
    if match.issuer_differs:
        fic = match.issuer_differs[0]
        hint = slash_hint(str(fic["issuer"]), issuer)
        repair: list[Step] = [fic_fix(ctx, "update", str(fic["name"]), issuer)]
        if issuer_relation(str(fic["issuer"]), issuer) is None:
            # another cluster's issuer (a blue/green pair, a cluster copied from): that credential may still let
            # that cluster's workload in, so this cluster gets one of its own, as the inventory's FIC_OLD_ISSUER
            # says; updating it in place would move the other cluster's trust here
            hint = " (another cluster's issuer)"
            repair = [*room_for_one(ctx, credentials), fic_fix(ctx, "create", name, issuer),
                      advice(f"credential {fic['name']} may still serve the cluster of {fic['issuer']}: delete it "
                             "only if no cluster uses it")]
        return failed(
            f"federated credential {fic['name']} has issuer {fic['issuer']!r}, the token says "
            f"{issuer!r}{hint} (Entra: AADSTS700211)",
            evidence,
            Finding(
                "FIC_ISSUER_MISMATCH",
                ERROR,
                "federation",
                f"FIC {fic['name']} issuer {fic['issuer']!r} != {issuer!r}{hint}",
                evidence,
                repair,
            ),
        )
    namesake = _namesake_instead(ctx, credentials, evidence)
    if namesake is not None:
        return namesake
    if match.subject_differs:
        subjects = [f["subject"] for f in match.subject_differs]
        twin = next((f for f in match.subject_differs if str(f["subject"]).lower() == ctx.subject.lower()), None)
        if twin is not None:
            return failed(
                f"federated credential {twin['name']} has subject {twin['subject']!r}, the token says "
                f"{ctx.subject!r}: equal but for case, and Entra matches subjects case-sensitively "
                "(Entra: AADSTS7002138)",
                evidence,
                Finding(
                    "FIC_SUBJECT_CASE_MISMATCH",
                    ERROR,
                    "federation",
                    f"FIC {twin['name']} subject {twin['subject']!r} differs from {ctx.subject!r} only in case",
                    evidence,
                    [fic_fix(ctx, "update", str(twin["name"]), issuer)],
                ),
            )
        spaced = next((f for f in match.subject_differs if str(f["subject"]).strip() == ctx.subject), None)
        if spaced is not None:
            # a subject pasted with the line end or a space around it (az sends the argument as given, ARM keeps
            # it; unverified whether real ARM trims or refuses it): Entra compares it exactly, so the credential is
            # corrected in place (a second one with the same issuer and clean subject would do, at one more of 20)
            message = (f"federated credential {spaced['name']} has subject {spaced['subject']!r}, the token says "
                       f"{ctx.subject!r}: equal but for whitespace around it (pasted with a line end?)")
            return failed(
                f"{message} (Entra: AADSTS700213)",
                evidence,
                Finding("FIC_SUBJECT_MISMATCH", ERROR, "federation", message, evidence,
                        [fic_fix(ctx, "update", str(spaced["name"]), issuer)]),
            )
        nearest = difflib.get_close_matches(ctx.subject, [str(s) for s in subjects], n=1, cutoff=0.0)
        evidence["nearest_subject"] = nearest[0] if nearest else None
        note = f"; the nearest is {nearest[0]!r}" if nearest else ""
        repair: list[Step] = [*room_for_one(ctx, credentials), fic_fix(ctx, "create", name, issuer)]
        typo = _mistyped_subject_credential(match.subject_differs, ctx.subject)
        if typo is not None:
            # the new credential is made beside it (another ServiceAccount may use that one); a typo's credential
            # left in place trusts a ServiceAccount that whoever creates it would get the identity through
            namespace, _, account = str(typo["subject"]).removeprefix(SA_SUBJECT_PREFIX).partition(":")
            if f"{namespace}/{account}" in (ctx.cluster_service_accounts or ()):
                # the inventory listed that ServiceAccount: two ServiceAccounts share the identity, no typo
                repair.append(advice(f"keep credential {typo['name']}: it trusts ServiceAccount {namespace}/{account}, "
                                     "which exists (two ServiceAccounts share this identity, not a typo)"))
            else:
                repair.append(advice(f"then delete credential {typo['name']} (a typo of this subject?) unless a "
                                     f"ServiceAccount {namespace}/{account} uses it: whoever creates that "
                                     "ServiceAccount gets this identity (a run without --workload prints its delete: "
                                     "FIC_ORPHANED)"))
        return failed(
            f"no federated credential for subject {ctx.subject!r}; the identity trusts {subjects}{note} "
            "(Entra: AADSTS700213)",
            evidence,
            Finding(
                "FIC_SUBJECT_MISMATCH",
                ERROR,
                "federation",
                f"no FIC for subject {ctx.subject!r} (found {subjects}){note}",
                evidence,
                repair,
            ),
        )
    # Entra's code today: none at all AADSTS70025, none for the token's issuer 700211 (70021 until 2022)
    code = "AADSTS70025" if not credentials else "AADSTS700211"
    return failed(
        f"the identity has no federated credential for issuer {issuer!r} and subject {ctx.subject!r} "
        f"(Entra: {code})",
        evidence,
        Finding(
            "FIC_MISSING",
            ERROR,
            "federation",
            f"no federated identity credential for {ctx.subject}",
            evidence,
            [*room_for_one(ctx, credentials), fic_fix(ctx, "create", name, issuer), *_leftover_advice(ctx)],
        ),
    )


def _leftover_advice(ctx: WorkloadContext) -> list[Step]:
    """For a ServiceAccount nothing runs under (no live pod, no CronJob, no refused controller: a leftover, or a
    workload scaled to 0), the other way out: its client-id annotation removed rather than the identity trusting it.
    Nothing when the live pods were not listed, or when harness.yaml names the workload's client id or access
    checks: a workload someone declared is meant to run, and its fix is the credential alone."""
    live = ctx.facts.live_pods
    if live is None or live.error is not None or live.pods or live.refused or live.cronjobs:
        return []
    if ctx.workload.client_id or ctx.workload.access:
        return []
    drop = render(fix.remove_sa_annotation(ctx.namespace, ctx.service_account, CLIENT_ID_ANNOTATION))
    return [advice(f"or, if {ctx.namespace}/{ctx.service_account} is a leftover (no pod runs under it now), remove "
                   f"its client-id annotation rather than trust it: {drop}")]
