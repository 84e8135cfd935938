"""The inventory suite: every Workload ID ServiceAccount of the cluster cross-matched with every federated
credential that trusts its issuer (managed identities in every readable subscription, applications in Graph).

Findings (one per code, naming every case, each with the commands that fix it, real names included):

- SA_CLIENT_ID_UNKNOWN: an annotated client id matches no managed identity or application the harness sees
  (an error; a warning when some of the harness's lookups were refused: it may not see the identity);
- SA_WITHOUT_FIC: the ServiceAccount's identity has no credential for this issuer and its subject;
- SA_ANNOTATION_WRONG_IDENTITY: it has none, but another identity has one that lets the ServiceAccount in: the
  annotation names the wrong identity (another workload's client id, say), and the fix is the annotation;
- FIC_OLD_ISSUER: a credential for a ServiceAccount of this cluster names this issuer's trailing-slash (or
  case) twin, an older issuer of this cluster, or -- on the ServiceAccount's own identity, when nothing else
  lets it in -- another issuer (an error when the ServiceAccount has no working credential, a warning
  otherwise);
- FIC_ORPHANED: a credential for this cluster's issuer (any spelling) names a ServiceAccount that does not
  exist (a warning: a stale trust that whoever creates that ServiceAccount inherits);
- FIC_LIMIT_NEAR: 18 or more of the 20 credentials an identity may hold (a warning);
- ROLE_OVERLY_BROAD: Owner, Contributor, User Access Administrator, Role Based Access Control Administrator, Key
  Vault Data Access Administrator (roles that grant roles), Key Vault Contributor or Storage Account Contributor (an
  error); any role at subscription, resource-group or management-group scope, or a data role that writes (Key Vault
  Administrator, Key Vault Secrets Officer, Storage Blob Data Owner or Contributor) on an identity whose workloads
  harness.yaml all declares, and so only read (a warning: its fix grants the read role on the same scope before the
  delete), held by an identity a ServiceAccount names;
- INVENTORY_INCOMPLETE: what the harness may not read (a warning about its own view).

Pure functions of the facts.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from harness import values
from harness.checks import named_identities
from harness.checks import remediation as fix
from harness.checks.chain import CheckSpec, run_chain
from harness.checks.common import arm_failure_finding, is_graph_call, kube_failure_finding
from harness.checks.federation import MAX_FEDERATED_CREDENTIALS, audience_hint, free_fic_name, restore_instead
from harness.checks.model import (
    ERROR,
    WARNING,
    CheckResult,
    Finding,
    Outcome,
    failed,
    passed,
    skipped,
    warned,
)
from harness.commands import Command, Step, advice, render
from harness.config import AzureConfig, ExpectConfig, WorkloadConfig
from harness.facts import (
    CREDENTIAL_ERROR,
    NETWORK_ERROR,
    SLOW_ERROR,
    ClusterFacts,
    InventoryFacts,
    InventoryIdentity,
)
from harness.issuers import EXACT, OLDER, TWIN, issuer_relation, spelling_difference
from harness.names import TOKEN_AUDIENCE

LAYER = "inventory"
LIMIT_NEAR = 18
# Built-in roles that let their holder change anything, or grant itself anything (learn.microsoft.com built-in
# roles; the same GUIDs in every tenant).
PRIVILEGED_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    # "a user with the Contributor, Key Vault Contributor, or any other role that includes
    # Microsoft.KeyVault/vaults/write ... can grant themselves data plane access by setting a Key Vault access
    # policy" (learn.microsoft.com key-vault/general/rbac-access-policy); it also changes the vault's network rules
    "f25e0fa2-a7c8-4377-a976-54943a77a395": "Key Vault Contributor",
    # "Lets you manage storage accounts, including accessing storage account keys which provide full access to
    # storage account data" (its built-in role description): the keys read and write every blob, beside any RBAC
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    # "Manage access to Azure resources by assigning roles using Azure RBAC" (its built-in role description):
    # roleAssignments/write at its scope, any role, Owner included
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    # role assignments of the Key Vault data roles, Key Vault Administrator among them (its built-in condition)
    "8b54135c-b56d-4d72-a534-26097cfdc8d8": "Key Vault Data Access Administrator",
}
_PRIVILEGED_WHY = {
    "Key Vault Contributor": "Key Vault Contributor lets the workload change its vaults (network rules, permission "
                             "model) and, under access policies, grant itself their secrets",
    "Storage Account Contributor": "Storage Account Contributor lets the workload list its storage accounts' keys, "
                                   "which read and write all their data whatever its roles say",
    "Role Based Access Control Administrator": "Role Based Access Control Administrator lets the workload assign "
                                               "itself any role in its scope, Owner included",
    "Key Vault Data Access Administrator": "Key Vault Data Access Administrator lets the workload assign itself Key "
                                           "Vault Administrator, and so every secret, key and certificate, in its scope",
}


@dataclass(frozen=True)
class WriteRole:
    """A data role that writes where a workload may only read: the read role that replaces it, and what it allows
    beyond reading (its built-in role description and data actions, learn.microsoft.com built-in roles)."""

    name: str
    read_role: str
    read_role_id: str
    beyond: str


_SECRETS_USER = ("Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6")
_BLOB_READER = ("Storage Blob Data Reader", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1")
WRITE_DATA_ROLES = {
    # data actions Microsoft.KeyVault/vaults/*: "all data plane operations on a key vault and all objects in it"
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": WriteRole(
        "Key Vault Administrator", *_SECRETS_USER,
        "set, delete and purge every secret, key and certificate of the vault"),
    # data actions Microsoft.KeyVault/vaults/secrets/*: "any action on the secrets of a key vault"
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": WriteRole(
        "Key Vault Secrets Officer", *_SECRETS_USER, "set, delete and purge the vault's secrets"),
    # data actions containers/blobs/*: "full access ... including assigning POSIX access control"
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": WriteRole(
        "Storage Blob Data Owner", *_BLOB_READER,
        "write and delete blobs and containers and set their POSIX access control"),
    # data actions blobs/write, blobs/delete, blobs/add/action, blobs/move/action; containers write and delete
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": WriteRole(
        "Storage Blob Data Contributor", *_BLOB_READER, "write and delete blobs and containers"),
}
_SUBJECT_RE = re.compile(r"system:serviceaccount:([^:]+):([^:]+)")
_SUBSCRIPTION_SCOPE = re.compile(r"/subscriptions/[^/]+", re.IGNORECASE)
_GROUP_SCOPE = re.compile(r"/subscriptions/[^/]+/resourcegroups/[^/]+", re.IGNORECASE)
_MANAGEMENT_GROUP_SCOPE = re.compile(
    r"/providers/microsoft\.management/managementgroups/[^/]+", re.IGNORECASE
)
MAX_LISTED = 10  # cases named in one finding's message (all are in its evidence)
MAX_STEPS = 60  # commands in one finding's remediation


def subject_of(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def service_account_named_by(subject: Any) -> str | None:
    """``NS/SA`` a ServiceAccount token subject names; None when the subject is no ServiceAccount's."""
    match = _SUBJECT_RE.fullmatch(str(subject or ""))
    return f"{match.group(1)}/{match.group(2)}" if match else None


@dataclass(frozen=True)
class Credential:
    """One federated credential as the inventory reads it."""

    identity: InventoryIdentity
    name: str
    issuer: str
    subject: str
    audiences: Any
    relation: str | None  # EXACT | TWIN | OLDER (harness.issuers) | None: another issuer
    service_account: str | None  # NS/SA its subject names

    @property
    def usable(self) -> bool:
        """It lets a token of this cluster in: this exact issuer, the exchange audience alone."""
        return self.relation == EXACT and self.audiences == [TOKEN_AUDIENCE]

    def row(self, label: str, exists: bool | None) -> dict[str, Any]:
        return {
            "identity": label,
            "kind": self.identity.kind,
            "name": self.name,
            "issuer": self.issuer,
            "relation": self.relation or "other",
            "subject": self.subject,
            "service_account": self.service_account,
            "service_account_exists": exists,
        }


@dataclass
class InventoryContext:
    facts: InventoryFacts
    cluster: ClusterFacts
    azure: AzureConfig | None
    expect: ExpectConfig = field(default_factory=ExpectConfig)
    # NS/SA -> lower-cased client id, for harness.yaml's workloads that name one: the identity a person declared
    configured: dict[str, str] = field(default_factory=dict)
    # harness.client_id: the Job's own identity, whose Reader on the subscription README asks for
    harness_client_id: str | None = None
    # NS/SA -> (access kind, ARM scope) of each resource harness.yaml says the workload reads and ARM listed (a
    # container's scope, for a blob): where a broad role can be narrowed to
    reads: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # NS/SA of every workload harness.yaml declares: what each does is reads (its access checks are all reads)
    declared: frozenset[str] = frozenset()

    @property
    def issuer(self) -> str | None:
        return self.cluster.issuer_url

    @cached_property
    def credentials(self) -> list[Credential]:
        out = []
        for identity in self.facts.identities:
            for item in identity.federated_credentials or []:
                out.append(
                    Credential(
                        identity,
                        str(item.get("name") or ""),
                        str(item.get("issuer") or ""),
                        str(item.get("subject") or ""),
                        item.get("audiences"),
                        issuer_relation(item.get("issuer"), self.issuer, self.expect.previous_issuers),
                        service_account_named_by(item.get("subject")),
                    )
                )
        return out

    @cached_property
    def by_client_id(self) -> dict[str, InventoryIdentity]:
        return {i.client_id.lower(): i for i in self.facts.identities if i.client_id}

    @cached_property
    def existing(self) -> set[str]:
        return set(self.facts.all_service_accounts)

    @cached_property
    def named(self) -> dict[str, list[str]]:
        """lower-cased client id -> the NS/SA annotated with it."""
        out: dict[str, list[str]] = {}
        for sa in self.facts.service_accounts:
            if values.is_guid(sa.get("client_id")):
                out.setdefault(str(sa["client_id"]).lower(), []).append(f"{sa['namespace']}/{sa['name']}")
        return out

    def identity_of(self, sa: dict[str, Any]) -> InventoryIdentity | None:
        client_id = sa.get("client_id")
        return self.by_client_id.get(str(client_id).lower()) if values.is_guid(client_id) else None

    @cached_property
    def credentials_read(self) -> list[tuple[dict[str, Any], str, InventoryIdentity]]:
        """(ServiceAccount, NS/SA, its annotated identity) for each ServiceAccount whose identity's federated
        credentials the harness read: the ones whose credentials can be judged."""
        out = []
        for sa in self.facts.service_accounts:
            identity = self.identity_of(sa)
            if identity is not None and identity.federated_credentials is not None:
                out.append((sa, f"{sa['namespace']}/{sa['name']}", identity))
        return out

    @property
    def lookups_refused(self) -> bool:
        return bool(self.facts.refused)


def label(identity: InventoryIdentity) -> str:
    """A managed identity as ``name (resource group, subscription)``; an application as ``app NAME``."""
    if identity.kind == "managed_identity":
        parts = (identity.resource_id or "").split("/")
        where = f" (resource group {parts[4]}, subscription {parts[2]})" if len(parts) > 4 else ""
        return f"managed identity {identity.name}{where}"
    return f"application {identity.name} ({identity.client_id})"


def short(identity: InventoryIdentity) -> str:
    """The identity as messages name it (evidence has :func:`label`)."""
    kind = "managed identity" if identity.kind == "managed_identity" else "application"
    return f"{kind} {identity.name}"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _subscription_scope(resource_id: Any) -> str | None:
    """``/subscriptions/S`` of an ARM resource id."""
    match = re.match(r"/subscriptions/([^/]+)", str(resource_id or ""), re.IGNORECASE)
    return f"/subscriptions/{match.group(1)}" if match else None


def _delete(credential: Credential) -> Command:
    identity = credential.identity
    if identity.kind == "application":
        return fix.app_credential_delete(identity.client_id, credential.name)
    return fix.identity_credential_delete(identity.resource_id, credential.name)


def _update(credential: Credential, issuer: str, subject: str | None = None) -> Command:
    """The credential made right where it is (same name): this issuer, its subject (or ``subject``: the one a
    case-only typo misspells), the exchange audience."""
    identity, subject = credential.identity, subject or credential.subject
    if identity.kind == "application":
        return fix.app_federated_credential("update", identity.client_id, credential.name, issuer, subject)
    return fix.federated_credential("update", identity.resource_id, credential.name, issuer, subject)


def _case_twin(ctx: InventoryContext, identity: InventoryIdentity, ref: str) -> Credential | None:
    """A credential of ``identity`` for this issuer whose subject names ``ref`` (NS/SA) in other letter case
    (``system:serviceaccount:web:Web-sa``), or with whitespace after it (a line end pasted with it): Entra
    matches subjects exactly and refuses the token (AADSTS7002138, AADSTS700213), and no ServiceAccount can be
    named so (Kubernetes names are lower-case DNS names). The workload's own check updates it in place too."""
    for credential in ctx.credentials:
        named = credential.service_account
        if (credential.identity is identity and credential.relation == EXACT and named and named != ref
                and named.strip().lower() == ref.lower()):
            return credential
    return None


def _mistyped_case(ctx: InventoryContext) -> list[tuple[str, Credential]]:
    """(NS/SA, its case twin) for each ServiceAccount whose identity has no usable credential for it but one whose
    subject differs from its own in letter case alone: SA_WITHOUT_FIC updates that credential's subject."""
    out = []
    for _, ref, identity in ctx.credentials_read:
        if any(c.identity is identity and c.service_account == ref for c in ctx.credentials):
            continue
        twin = _case_twin(ctx, identity, ref)
        if twin is not None:
            out.append((ref, twin))
    return out


def _refusal(ctx: InventoryContext, identity: InventoryIdentity, audience: bool, case: bool = False) -> str:
    """What Entra answers this ServiceAccount's token exchange, the codes as Entra sends them today (AADSTS70021
    was their one code until 2022): no credential at all 70025, none for the token's issuer 700211, none for its
    subject 700213 (7002138 where one matches it but for letter case), the subject's credential with another
    audience 700212."""
    if audience:
        return "the token exchange fails with AADSTS700212 (audience)"
    if case:
        return "the token exchange fails with AADSTS7002138 (the subject matches only ignoring case)"
    if not identity.federated_credentials:
        return "the token exchange fails with AADSTS70025 (no federated credentials)"
    if any(c.identity is identity and c.relation == EXACT for c in ctx.credentials):
        return "the token exchange fails with AADSTS700213 (subject)"
    return "the token exchange fails with AADSTS700211 (issuer)"


def _free_name(identity: InventoryIdentity, namespace: str, service_account: str) -> str:
    """A credential name the identity does not use yet: creating one under a taken name would overwrite it."""
    return free_fic_name(identity.federated_credentials or [], namespace, service_account)


def _create(identity: InventoryIdentity, service_account: str, issuer: str) -> Command:
    namespace, name = service_account.split("/", 1)
    credential_name = _free_name(identity, namespace, name)
    subject = subject_of(namespace, name)
    if identity.kind == "application":
        return fix.app_federated_credential("create", identity.client_id, credential_name, issuer, subject)
    return fix.identity_credential_create(identity.resource_id, credential_name, issuer, subject)


def _room_for_one(identity: InventoryIdentity, freed: int = 0) -> list[Step]:
    """Before a create on an identity that holds the most federated credentials it may, less ``freed`` deleted
    by the steps before it: ARM and Microsoft Graph refuse the 21st ("... exceeds the limit of 20"), so the create
    pasted alone fails; the listing, and which to delete first, as the workload's own finding says."""
    held = len(identity.federated_credentials or []) - freed
    if held < MAX_FEDERATED_CREDENTIALS:
        return []
    listing = (fix.app_credential_list(identity.client_id) if identity.kind == "application"
               else fix.identity_credential_list(identity.resource_id))
    if freed < 0:  # the creates above, for other ServiceAccounts on this identity, filled it
        return [advice(f"{short(identity)} holds {held} federated credentials once the creates above are made, the "
                       "most it may: each create below is refused until one is deleted for it; delete those no "
                       "cluster uses (FIC_ORPHANED and FIC_OLD_ISSUER print their deletes), or give these "
                       "workloads identities of their own"), listing]
    return [advice(f"{short(identity)} holds {held} federated credentials, the most it may: the create below is "
                   "refused until one is deleted; delete one no cluster uses (FIC_ORPHANED and FIC_OLD_ISSUER "
                   "print their deletes), or give this workload an identity of its own"), listing]


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    return shown + (f"; and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _fixes(steps: list[Step]) -> list[Step]:
    """Each step once, in order, and at most MAX_STEPS of them: hundreds of identical lines help nobody."""
    unique = list({render(step): step for step in steps}.values())
    if len(unique) <= MAX_STEPS:
        return unique
    rest = len(unique) - MAX_STEPS
    more = advice(f"and {rest} more of the same kind: the cases are in this finding's evidence")
    return [*unique[:MAX_STEPS], more]


def _judge(findings: list[Finding], clean: str, evidence: dict[str, Any]) -> Outcome:
    for finding in findings:
        finding.remediation = _fixes(finding.remediation)
    if any(f.severity == ERROR for f in findings):
        return failed(findings[0].message, evidence, *findings)
    if findings:
        return warned(findings[0].message, evidence, *findings)
    return passed(clean, evidence)


def _needs_issuer(ctx: InventoryContext) -> Outcome | None:
    if not ctx.issuer:
        return skipped(
            "the cluster's issuer is unknown (see cluster.oidc_issuer_enabled): no credential can be "
            "matched to it"
        )
    return None


# ---------------------------------------------------------------- the Kubernetes side


def service_accounts_listed(ctx: InventoryContext) -> Outcome:
    facts = ctx.facts
    if facts.service_accounts_error is not None:
        return failed(
            f"could not list ServiceAccounts in all namespaces: {facts.service_accounts_error.message}",
            {"error": asdict(facts.service_accounts_error)},
            kube_failure_finding(
                facts.service_accounts_error,
                LAYER,
                "list ServiceAccounts in all namespaces",
                fix.can_i("list", "serviceaccounts"),
                ctx.cluster,
                ctx.azure,
            ),
        )
    accounts = [f"{s['namespace']}/{s['name']}" for s in facts.service_accounts]
    label_only = [
        f"{s['namespace']}/{s['name']}" for s in facts.service_accounts if s.get("client_id") is None
    ]
    namespaces = sorted({s["namespace"] for s in facts.service_accounts})
    evidence = {
        "service_accounts": accounts,
        "label_only": label_only,
        "namespaces": namespaces,
        "all_service_accounts": len(facts.all_service_accounts),
    }
    if not accounts:
        return passed(
            f"none of the {len(facts.all_service_accounts)} ServiceAccounts carries the client-id "
            "annotation or the use label",
            evidence,
        )
    return passed(
        f"{values.counted(len(accounts), 'ServiceAccount')} in {values.counted(len(namespaces), 'namespace')} "
        f"{'carries' if len(accounts) == 1 else 'carry'} the client-id annotation or the use label "
        f"({len(label_only)} the label only)",
        evidence,
    )


# ---------------------------------------------------------------- the Azure side


def unreadable_rows(facts: InventoryFacts) -> list[dict[str, Any]]:
    return [
        {"url": f.url, "status": f.status, "code": f.code, "error": f.error}
        for f in [*facts.refused, *facts.failed]
    ]


def _incomplete(ctx: InventoryContext) -> Finding | None:
    missed = [*ctx.facts.refused, *ctx.facts.failed]
    if not missed:
        return None
    graph = [f for f in ctx.facts.refused if is_graph_call(f)]
    arm = [f for f in ctx.facts.refused if not is_graph_call(f)]
    steps: list[Step] = []
    if arm:
        steps += [
            fix.grant_harness_reader(ctx.azure),
            advice(
                "and Reader on every subscription (or a management group above them) that holds identities"
            ),
        ]
    if graph:
        steps += fix.grant_harness_graph_read(ctx.azure)
    message = (
        "the harness could not read everything the inventory needs, so identities and credentials there are "
        f"unaccounted for: {_listed([f.describe() for f in missed])}"
    )
    return Finding(
        "INVENTORY_INCOMPLETE", WARNING, LAYER, message, {"unreadable": unreadable_rows(ctx.facts)}, steps
    )


def identities_listed(ctx: InventoryContext) -> Outcome:
    facts = ctx.facts
    if not facts.azure_configured:
        return skipped("no Azure access configured (the azure: section of harness.yaml)")
    unusable = next((f for f in facts.failed if f.code in (CREDENTIAL_ERROR, NETWORK_ERROR, SLOW_ERROR)), None)
    if unusable is not None:
        return failed(
            f"the harness could not read Azure: {unusable.describe()}",
            {"searched": facts.searched},
            arm_failure_finding(
                unusable,
                "harness",
                "the identity inventory",
                "ARM_QUERY_FAILED",
                fix.resource_graph_identities(),
                ctx.azure,
            ),
        )
    managed = [i for i in facts.identities if i.kind == "managed_identity"]
    apps = [i for i in facts.identities if i.kind == "application"]
    evidence = {
        "searched": facts.searched,
        "managed_identities": [label(i) for i in managed],
        "applications": [label(i) for i in apps],
    }
    message = (
        f"{len(managed)} managed identit{'y' if len(managed) == 1 else 'ies'} and {len(apps)} "
        f"{values.in_number(len(apps), 'application')} trust this cluster's issuer or are named by a ServiceAccount"
    )
    incomplete = _incomplete(ctx)
    if incomplete is not None:
        return warned(
            f"{message}; but {incomplete.message}",
            {**evidence, "unreadable": unreadable_rows(facts)},
            incomplete,
        )
    return passed(message, evidence)


# ---------------------------------------------------------------- cross-match


def _graph(ctx: InventoryContext) -> str | None:
    return ctx.azure.cloud.endpoints.microsoft_graph if ctx.azure is not None else None


def _restart(ctx: InventoryContext, sa: dict[str, Any], carrying: str | None = None) -> list[Step]:
    """What a change to the ServiceAccount needs next, by name (the webhook acts on pod CREATE only): each owner
    of the labelled pods that run under it made to make them again (fix.restart_controller: a rollout restart, a
    paused Deployment resumed first, the pods of an OnDelete or partitioned one, or of a Job, ReplicaSet or bare
    pod, deleted); nothing when no labelled pod runs under it; the placeholder when the pods were not listed. ``carrying``: the client id the
    fix annotates; an owner whose pods the webhook already gave that one is left running."""
    owners = ctx.facts.pod_owners
    if owners is None:
        return [fix.restart_pods(sa["namespace"])]
    namespace, steps, kept = sa["namespace"], [], []
    for owner in owners.get(f"{namespace}/{sa['name']}", []):
        if carrying and [c.lower() for c in owner.get("client_ids") or [""]] == [str(carrying).lower()]:
            kept.append(f"{owner['kind']}/{owner['name']}")
        else:
            steps += fix.restart_controller(owner["kind"], namespace, owner["name"], owner["pods"],
                                            on_delete=owner.get("update_strategy") == "OnDelete",
                                            partition=owner.get("partition") or 0,
                                            paused=owner.get("paused") is True)
    if kept:
        steps.append(advice(f"{', '.join(kept)} in {namespace}: the running pods already carry "
                            f"AZURE_CLIENT_ID={carrying}, no restart needed"))
    return steps


def client_ids_known(ctx: InventoryContext) -> Outcome:
    restoring: set[str] = set()  # deleted applications whose restore is printed (several ServiceAccounts, one app)
    cases: list[str] = []
    items: list[dict[str, Any]] = []
    steps: list[Step] = []
    severity = WARNING
    for sa in ctx.facts.service_accounts:
        client_id, ref = sa.get("client_id"), f"{sa['namespace']}/{sa['name']}"
        if client_id is None or ctx.identity_of(sa) is not None:
            continue
        owner = ctx.facts.principal_of.get(str(client_id).lower())
        hidden = ctx.facts.hidden.get(str(client_id).lower())
        deleted = ctx.facts.deleted.get(str(client_id).lower())
        if not values.is_guid(client_id):
            severity = ERROR
            cases.append(f"{ref}: {values.printable(str(client_id), 60)!r} is not a GUID")
            name, guid = fix.pasted_name(str(client_id)), fix.pasted_guid(str(client_id))
            if guid is not None:  # pasted with whitespace or braces around it: the GUID inside, annotated bare
                steps += [fix.annotate_sa(sa["namespace"], sa["name"], guid), *_restart(ctx, sa, guid)]
            elif name is not None and ctx.facts.named.get(name.lower()):
                # the identities of that name the harness read: the only one, or the only one trusting the
                # ServiceAccount, annotated; else each listed (named_identities, as the workload view does)
                subject = f"system:serviceaccount:{sa['namespace']}:{sa['name']}"
                choice = named_identities.choose(ctx.facts.named[name.lower()],
                                                 named_identities.trusting(ctx.facts.identities, subject, ctx.issuer))
                chosen, trust = choice.chosen, named_identities.several_words(choice, subject)
                if len(choice.named) == 1:
                    cases[-1] += f" ({name} is {named_identities.identity_words(choice.named[0])})"
                else:
                    cases[-1] += f" ({len(choice.named)} identities are named {name}{'; ' + trust if trust else ''})"
                if chosen is not None:
                    steps += [fix.annotate_sa(sa["namespace"], sa["name"], chosen["client_id"]),
                              *_restart(ctx, sa, chosen["client_id"])]
                else:
                    steps += [*named_identities.several_steps(choice, name, subject),
                              fix.annotate_sa(sa["namespace"], sa["name"], None)]
            else:  # a name pasted for the client id: the identities and apps of that name
                steps += fix.find_identity_by_name(name) if name is not None else fix.find_identity_anywhere(None)
        elif owner is not None:
            severity = ERROR
            kind = str(owner.get("kind"))
            what = "object id of application" if kind == "application" else \
                f"principal (object) id of {kind.replace('_', ' ')}"
            cases.append(f"{ref}: {client_id} is the {what} {owner.get('name')}, whose client id is "
                         f"{owner.get('client_id')}")
            steps += [
                fix.annotate_sa(sa["namespace"], sa["name"], owner.get("client_id")),
                *_restart(ctx, sa, owner.get("client_id")),
            ]
        elif hidden is not None and ctx.facts.failed and not ctx.facts.refused:
            # Entra knows it; ARM failed (5xx, 429) rather than refused the listing: no permission is missing
            cases.append(
                f"{ref}: {client_id} is {str(hidden.get('kind')).replace('_', ' ')} {hidden.get('name')} in "
                f"Entra, which the harness could not list this run: {ctx.facts.failed[0].describe()}"
            )
        elif hidden is not None:  # Entra knows it: the harness may not read where it lives
            where = _subscription_scope(hidden.get("resource_id"))
            cases.append(
                f"{ref}: {client_id} is {str(hidden.get('kind')).replace('_', ' ')} {hidden.get('name')} in "
                f"Entra, {'in ' + where + ', ' if where else ''}which the harness cannot read"
            )
            steps.append(
                fix.grant_harness_reader_at(ctx.azure, where)
                if where
                else fix.grant_harness_reader(ctx.azure)
            )
        elif deleted is not None:  # az ad app delete: restorable for 30 days, with its credentials
            severity = ERROR
            app, principal = deleted["application"], deleted.get("service_principal")
            cases.append(f"{ref}: {client_id} is application {app.get('displayName')}, deleted "
                         f"{app.get('deletedDateTime')} (Microsoft Graph keeps it for 30 days)")
            restores: list[Step] = []
            if not restoring & {str(app.get("id")).lower()}:
                restoring.add(str(app.get("id")).lower())
                restores.append(fix.restore_deleted_item(_graph(ctx), app.get("id"), note="the application"))
                restores.append(
                    fix.restore_deleted_item(_graph(ctx), principal.get("id"),
                                             note="its service principal, which the role assignments name")
                    if principal is not None
                    else fix.create_service_principal(app.get("appId"))
                )
            trusting = list({id(c.identity): c.identity for c in ctx.credentials
                             if c.usable and c.service_account == ref}.values())
            namesakes = [i for i in trusting if i.name == app.get("displayName")]
            trusting = namesakes if len(namesakes) == 1 else trusting  # made again under its name, first
            if len(trusting) == 1:  # made again since (az ad app create), with a credential for the account
                cases[-1] += (f"; {short(trusting[0])} (client id {trusting[0].client_id}) has a federated "
                              "credential for it now")
                steps += [fix.annotate_sa(sa["namespace"], sa["name"], trusting[0].client_id),
                          *_restart(ctx, sa, trusting[0].client_id), *restore_instead(restores)]
            else:
                steps += restores
        else:
            severity = severity if ctx.lookups_refused else ERROR
            cases.append(f"{ref}: {client_id}")
            steps += fix.find_identity_anywhere(client_id, by_object_id=ctx.lookups_refused)
        items.append(
            {"service_account": ref, "client_id": client_id, "principal_of": owner, "in_entra": hidden,
             "deleted": deleted}
        )
    evidence = {"unknown": items, "searched": ctx.facts.searched}
    if not items:
        return passed(
            "every annotated client id is a managed identity's or an application's the harness sees", evidence
        )
    why = " (some lookups were refused: the harness may not see them)" if ctx.lookups_refused else ""
    message = (
        f"{_plural(len(items), 'ServiceAccount names', 'ServiceAccounts name')} a client id of no managed "
        f"identity or application the harness can see: {_listed(cases)}{why}"
    )
    if severity == WARNING:
        incomplete = _incomplete(ctx)
        steps += incomplete.remediation if incomplete else []
    return _judge([Finding("SA_CLIENT_ID_UNKNOWN", severity, LAYER, message, evidence, steps)], "", evidence)


def credentials_present(ctx: InventoryContext) -> Outcome:
    blocked = _needs_issuer(ctx)
    if blocked is not None:
        return blocked
    issuer = str(ctx.issuer)
    cases: list[str] = []
    items: list[dict[str, Any]] = []
    steps: list[Step] = []
    wrong: list[tuple[dict[str, Any], InventoryIdentity, list[InventoryIdentity]]] = []
    checked = len(ctx.credentials_read)
    planned: dict[int, int] = {}  # creates printed so far per identity: one identity shared by many ServiceAccounts
    for sa, ref, identity in ctx.credentials_read:
        mine = [c for c in ctx.credentials if c.identity is identity and c.service_account == ref]
        if any(c.usable for c in mine) or any(c.relation != EXACT for c in mine):
            continue  # working, or FIC_OLD_ISSUER says what is wrong with the one it has
        trusting = list({id(c.identity): c.identity for c in ctx.credentials
                         if c.usable and c.service_account == ref and c.identity is not identity}.values())
        confirmed = ctx.configured.get(ref) == identity.client_id.lower()
        twin = None if mine else _case_twin(ctx, identity, ref)
        if twin is not None:  # its subject mistyped in case only: corrected in place, as the workload's fix does
            spaced = twin.subject != twin.subject.strip()
            how = ("has whitespace around it (a line end pasted with it?): Entra matches subjects exactly"
                   if spaced else "differs only in letter case: Entra matches subjects case-sensitively")
            cases.append(f"{ref} -> {short(identity)} (credential {twin.name} has subject "
                         f"{twin.subject!r}, which {how}): "
                         f"{_refusal(ctx, identity, False, case=not spaced)}")
            items.append({"service_account": ref, "identity": label(identity), "client_id": identity.client_id,
                          "case_twin": twin.name, "expected": {"issuer": issuer, "subject": subject_of(
                              sa["namespace"], sa["name"]), "audiences": [TOKEN_AUDIENCE]}})
            steps.append(_update(twin, issuer, subject_of(sa["namespace"], sa["name"])))
            continue
        if trusting and not mine and not confirmed:
            wrong.append((sa, identity, trusting))
            continue
        audience = [c for c in mine if c.relation == EXACT]
        detail = (
            f" (credential {audience[0].name} has audiences {audience[0].audiences}, not [{TOKEN_AUDIENCE!r}]"
            f"{audience_hint(audience[0].audiences)})"
            if audience
            else ""
        )
        if trusting and not mine:  # harness.yaml names the annotated identity: the credential belongs on it
            # client ids told: the other is often an app registration of the same display name (az rest POST
            # .../applications, or the portal, beside the first), which its name alone does not tell apart
            detail = (f" (harness.yaml names it, client id {identity.client_id}; "
                      f"{', '.join(f'{short(i)} (client id {i.client_id})' for i in trusting)} has a credential "
                      f"for {ref} instead: delete that one if it was made there by mistake)")
        cases.append(f"{ref} -> {short(identity)}{detail}: {_refusal(ctx, identity, bool(audience))}")
        items.append(
            {
                "service_account": ref,
                "identity": label(identity),
                "client_id": identity.client_id,
                "expected": {
                    "issuer": issuer,
                    "subject": subject_of(sa["namespace"], sa["name"]),
                    "audiences": [TOKEN_AUDIENCE],
                },
            }
        )
        # a credential with this issuer and subject (its audience wrong) is corrected in place: ARM refuses a
        # second credential with the same issuer and subject ("Issuer and subject combination already exists for
        # this Managed Identity.", the managed identities' documented error), so a create would fail
        if audience:
            steps.append(_update(audience[0], issuer))
        else:
            made = planned.get(id(identity), 0)
            held = len(identity.federated_credentials or []) + made
            # the room advice once, at the create the limit refuses first (or before each, already full)
            room = _room_for_one(identity, -made) if made == 0 or held == MAX_FEDERATED_CREDENTIALS else []
            steps += [*room, _create(identity, ref, issuer)]
            planned[id(identity)] = made + 1
    evidence: dict[str, Any] = {"missing": items, "checked": checked}
    findings = [_annotation_names_wrong_identity(ctx, wrong, issuer)] if wrong else []
    if wrong:
        evidence["wrong_identity"] = findings[0].evidence["service_accounts"]
    if not items and not findings:
        return passed(
            f"{'the' if checked == 1 else f'each of the {checked}'} {values.in_number(checked, 'ServiceAccount')} "
            "whose identity the harness reads has a federated credential for this issuer and its subject",
            evidence,
        )
    if items:
        message = (
            f"{_plural(len(items), 'ServiceAccount has', 'ServiceAccounts have')} no federated credential for "
            f"issuer {issuer} and its subject: {_listed(cases)}"
        )
        findings.append(Finding("SA_WITHOUT_FIC", ERROR, LAYER, message, evidence, steps))
    return _judge(findings, "", evidence)


def _annotation_names_wrong_identity(
    ctx: InventoryContext, wrong: list[tuple[dict[str, Any], InventoryIdentity, list[InventoryIdentity]]],
    issuer: str,
) -> Finding:
    """ServiceAccounts whose annotated identity has no credential for them while another identity has one that
    lets them in (this issuer, their subject, the exchange audience): the annotation names the wrong identity
    (another workload's, copied by hand), and the fix is the annotation, not a credential that would let this
    ServiceAccount act as that other identity."""
    cases, rows, steps = [], [], []
    refusals: set[str] = set()
    for sa, named, trusting in wrong:
        ref = f"{sa['namespace']}/{sa['name']}"
        right = trusting[0]
        others = f" (also trusted by {', '.join(short(i) for i in trusting[1:])})" if trusting[1:] else ""
        cases.append(f"{ref} names {short(named)} ({named.client_id}), but {short(right)} ({right.client_id}) "
                     f"has the credential for it{others}")
        rows.append({"service_account": ref, "annotated": label(named), "annotated_client_id": named.client_id,
                     "trusted_by": [label(i) for i in trusting], "trusted_by_client_id": right.client_id})
        steps += [fix.annotate_sa(sa["namespace"], sa["name"], right.client_id),
                  *_restart(ctx, sa, right.client_id)]
        refusals.add(_refusal(ctx, named, False))
    message = (
        f"{_plural(len(wrong), 'ServiceAccount is', 'ServiceAccounts are')} annotated with an identity that has "
        f"no federated credential for it (issuer {issuer}), while another identity has one: {_listed(cases)}; the "
        f"annotation names the wrong identity: {'; '.join(sorted(refusals))}"
    )
    evidence = {"service_accounts": rows}
    return Finding("SA_ANNOTATION_WRONG_IDENTITY", ERROR, LAYER, message, evidence, steps)


def no_old_issuers(ctx: InventoryContext) -> Outcome:
    blocked = _needs_issuer(ctx)
    if blocked is not None:
        return blocked
    issuer = str(ctx.issuer)
    stale: list[Credential] = []
    for credential in ctx.credentials:
        if credential.service_account not in ctx.existing or credential.relation == EXACT:
            continue
        if credential.relation in (TWIN, OLDER):
            stale.append(credential)
        elif credential.service_account in ctx.named.get(credential.identity.client_id.lower(), []):
            stale.append(credential)  # another issuer, on the ServiceAccount's own identity
    broken: dict[tuple[str, str], InventoryIdentity] = {}  # (NS/SA, client id) without a working credential
    for credential in stale:
        sa = str(credential.service_account)
        identity = credential.identity
        works = any(c.usable and c.identity is identity and c.service_account == sa for c in ctx.credentials)
        own = sa in ctx.named.get(identity.client_id.lower(), [])
        if not works and own:
            broken[(sa, identity.client_id.lower())] = identity
    # another issuer that is not this cluster's matters only where nothing else lets the ServiceAccount in
    stale = [
        c
        for c in stale
        if c.relation in (TWIN, OLDER) or (str(c.service_account), c.identity.client_id.lower()) in broken
    ]
    if not stale:
        return passed(
            "no credential for a ServiceAccount of this cluster names another spelling or an older "
            "issuer of it",
            {"issuer": issuer},
        )
    # a broken ServiceAccount's own credential for another spelling or an older issuer of this cluster is
    # corrected in place (this issuer), as federation.credential's FIC_ISSUER_MISMATCH does: the two fixes are
    # then one, and pasted one after the other both succeed (a delete and a create under another name here
    # left that update nothing to find: "Resource '...' does not exist"). Not where the identity holds this
    # issuer and subject already (its audience wrong): Graph and ARM refuse a second such credential.
    in_place: dict[tuple[str, str], Credential] = {}
    for credential in stale:
        key = (str(credential.service_account), credential.identity.client_id.lower())
        if (key in broken and key not in in_place and credential.relation in (TWIN, OLDER)
                and not any(c.identity is credential.identity and c.relation == EXACT
                            and c.service_account == credential.service_account for c in ctx.credentials)):
            in_place[key] = credential
    cases, items, steps = [], [], []
    for credential in stale:
        why = {
            TWIN: f"this issuer's twin: {spelling_difference(credential.issuer, issuer)}",
            OLDER: "an older issuer of this cluster",
        }.get(str(credential.relation), "another cluster's issuer")
        cases.append(
            f"{credential.name} on {short(credential.identity)} for {credential.service_account} names "
            f"{values.printable(credential.issuer, 300)} ({why})"
        )
        items.append({**credential.row(label(credential.identity), True), "why": why})
        if credential.relation in (TWIN, OLDER):
            sa = str(credential.service_account)
            if in_place.get((sa, credential.identity.client_id.lower())) is credential:
                steps.append(_update(credential, issuer, subject_of(*sa.split("/", 1))))
            else:
                steps.append(_delete(credential))
    for key, identity in broken.items():
        if key in in_place:
            continue
        sa = key[0]
        freed = sum(1 for c in stale if c.identity is identity and c.relation in (TWIN, OLDER))
        steps += [*_room_for_one(identity, freed), _create(identity, sa, issuer)]
    if any(c.relation not in (TWIN, OLDER) for c in stale):
        steps.append(
            advice(
                "a credential for another cluster's issuer may still serve that cluster: delete it only "
                "if no cluster uses it"
            )
        )
    severity = ERROR if broken else WARNING
    consequence = (
        f"; {', '.join(sa for sa, _ in broken)} ha{'s' if len(broken) == 1 else 've'} no credential for "
        f"{issuer}, so the token exchange fails (AADSTS700211: no credential has the token's issuer)"
        if broken
        else "; each such ServiceAccount also has a working one: the stale credentials only take slots"
    )
    message = (
        f"{_plural(len(stale), 'federated credential names', 'federated credentials name')} an issuer other "
        f"than {issuer}: {_listed(cases)}{consequence}"
    )
    evidence = {
        "issuer": issuer,
        "credentials": items,
        "without_working_credential": sorted(sa for sa, _ in broken),
    }
    return _judge([Finding("FIC_OLD_ISSUER", severity, LAYER, message, evidence, steps)], "", evidence)


def _nameable(ref: str | None) -> bool:
    """Whether NS/SA could be made: a namespace (DNS label) and a ServiceAccount name (DNS subdomain)."""
    namespace, _, name = str(ref or "").partition("/")
    return values.is_namespace(namespace) and values.is_object_name(name)


def no_orphaned_credentials(ctx: InventoryContext) -> Outcome:
    blocked = _needs_issuer(ctx)
    if blocked is not None:
        return blocked
    mistyped = {id(twin) for _, twin in _mistyped_case(ctx)}  # SA_WITHOUT_FIC corrects their subjects
    orphans = [c for c in ctx.credentials
               if c.relation is not None and c.service_account not in ctx.existing and id(c) not in mistyped]
    trusted = [c for c in ctx.credentials if c.relation is not None]
    if not orphans:
        return passed(
            f"{'the' if len(trusted) == 1 else f'each of the {len(trusted)}'} "
            f"{values.in_number(len(trusted), 'credential')} for this cluster's issuer names an existing "
            "ServiceAccount",
            {"credentials": len(trusted)},
        )
    cases = [
        f"{c.name} on {short(c.identity)}: "
        + (
            f"{c.service_account} does not exist"
            if _nameable(c.service_account)
            else f"{values.printable(str(c.service_account), 80)!r} can be no ServiceAccount (Kubernetes names are "
                 "lower-case DNS names), so it lets nothing in"
            if c.service_account
            else f"subject {values.printable(c.subject, 80)!r} is no ServiceAccount's"
        )
        for c in orphans
    ]
    evidence = {"credentials": [c.row(label(c.identity), False) for c in orphans]}
    # a ServiceAccount made under a credential's subject gets the identity's access; one Kubernetes refuses to
    # name (upper case, a space pasted with it) never comes
    risk = ("; whoever creates it there gets the identity's access"
            if any(_nameable(c.service_account) for c in orphans) else "")
    message = (
        f"{_plural(len(orphans), 'federated credential trusts', 'federated credentials trust')} this cluster "
        f"for a ServiceAccount that does not exist: {_listed(cases)}{risk}"
    )
    steps: list[Step] = [_delete(c) for c in orphans]
    if risk:  # a subject Kubernetes cannot name ('finance:backend-sa', a space pasted with it) was no deleted one's
        steps.append(advice("or, if the ServiceAccount was deleted by mistake, create it again"))
    return _judge([Finding("FIC_ORPHANED", WARNING, LAYER, message, evidence, steps)], "", evidence)


def credential_limits(ctx: InventoryContext) -> Outcome:
    near = [i for i in ctx.facts.identities if len(i.federated_credentials or []) >= LIMIT_NEAR]
    counts = {
        label(i): len(i.federated_credentials or [])
        for i in ctx.facts.identities
        if i.federated_credentials is not None
    }
    if not counts and _incomplete(ctx) is not None:  # no identity's credentials read: "every" would be of none
        return skipped("no identity's federated credentials could be read (see inventory.identities_listed)")
    if not near:
        return passed(
            f"every identity holds fewer than {LIMIT_NEAR} of its {MAX_FEDERATED_CREDENTIALS} federated "
            "credentials",
            {"counts": counts},
        )
    cases = [f"{short(i)}: {len(i.federated_credentials or [])} of {MAX_FEDERATED_CREDENTIALS}" for i in near]
    steps: list[Step] = [
        fix.app_credential_list(i.client_id)
        if i.kind == "application"
        else fix.identity_credential_list(i.resource_id)
        for i in near
    ]
    steps.append(
        advice(
            "delete the credentials no cluster uses any more (FIC_ORPHANED, FIC_OLD_ISSUER), or give "
            "further workloads an identity of their own"
        )
    )
    evidence = {"near_limit": {label(i): len(i.federated_credentials or []) for i in near}, "counts": counts}
    full = [i for i in near if len(i.federated_credentials or []) >= MAX_FEDERATED_CREDENTIALS]
    # a managed identity's credentials are ARM's, an app registration's Microsoft Graph's
    refusers = sorted({"Microsoft Graph" if i.kind == "application" else "ARM" for i in full})
    consequence = (
        f"; {_plural(len(full), 'identity is', 'identities are')} at it: {' and '.join(refusers)} "
        f"{'refuses' if len(refusers) == 1 else 'refuse'} a further credential (a new "
        "cluster, namespace or ServiceAccount) until one is deleted"
        if full
        else "; one more cluster or namespace may not fit"
    )
    message = (
        f"{_plural(len(near), 'identity', 'identities')} near the limit of {MAX_FEDERATED_CREDENTIALS} "
        f"federated credentials: {_listed(cases)}{consequence}"
    )
    return _judge([Finding("FIC_LIMIT_NEAR", WARNING, LAYER, message, evidence, steps)], "", evidence)


def broad_reason(assignment: dict[str, Any]) -> tuple[str, str] | None:
    """(severity, why) when a role assignment is broader than a workload needs; None when it is narrow."""
    definition = str(assignment.get("role_definition_id") or "").rstrip("/").rsplit("/", 1)[-1].lower()
    role = str(assignment.get("role") or "")
    privileged = PRIVILEGED_ROLES.get(definition) or next(
        (name for name in PRIVILEGED_ROLES.values() if name.lower() == role.lower()), None
    )
    if privileged:
        return ERROR, _PRIVILEGED_WHY.get(
            privileged, f"{privileged} lets the workload change or grant access to everything in its scope")
    scope = str(assignment.get("scope") or "").rstrip("/")
    if scope in ("", "/") or _MANAGEMENT_GROUP_SCOPE.fullmatch(scope):
        return WARNING, "a management-group (or root) scope"
    if _SUBSCRIPTION_SCOPE.fullmatch(scope):
        return WARNING, "a whole subscription"
    if _GROUP_SCOPE.fullmatch(scope):
        return WARNING, "a whole resource group"
    return None


def write_role(ctx: InventoryContext, identity: InventoryIdentity, assignment: dict[str, Any]) -> WriteRole | None:
    """The data role that writes, when every workload using the identity is one harness.yaml declares (and so only
    reads); None otherwise (a workload harness.yaml does not declare may write: nothing is known of it)."""
    definition = str(assignment.get("role_definition_id") or "").rstrip("/").rsplit("/", 1)[-1].lower()
    role = str(assignment.get("role") or "").lower()
    found = WRITE_DATA_ROLES.get(definition) or next(
        (r for r in WRITE_DATA_ROLES.values() if r.name.lower() == role), None)
    workloads = ctx.named.get(identity.client_id.lower(), [])
    return found if found and workloads and all(w in ctx.declared for w in workloads) else None


def _holds(identity: InventoryIdentity, role_id: str, role: str, scope: str) -> bool:
    """Does the identity hold ``role`` at ``scope`` or above it?"""
    scope = scope.rstrip("/").lower()
    for other in identity.role_assignments or []:
        held = str(other.get("role_definition_id") or "").rstrip("/").rsplit("/", 1)[-1].lower()
        at = str(other.get("scope") or "").rstrip("/").lower()
        if (held == role_id or str(other.get("role") or "") == role) and (scope == at or scope.startswith(at + "/")):
            return True
    return False


READER_ROLE_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"  # the built-in Reader role's definition id


def _is_reader(assignment: dict[str, Any]) -> bool:
    definition = str(assignment.get("role_definition_id") or "").rstrip("/").rsplit("/", 1)[-1].lower()
    return definition == READER_ROLE_ID or str(assignment.get("role") or "") == "Reader"


# a data role is narrowed onto the resources of its own service only (Key Vault Secrets User onto a vault, not onto
# a storage account the same workload reads)
_ROLE_SERVICES = (("key vault ", "keyvault_secret"), ("storage ", "blob"))


def narrower_scopes(ctx: InventoryContext, identity: InventoryIdentity, assignment: dict[str, Any]) -> list[str]:
    """The resources, under a broad assignment's scope, that harness.yaml says the identity's workloads read: where
    the same role can be granted instead (empty when none is known; the person then names one)."""
    broad = str(assignment.get("scope") or "").rstrip("/").lower()
    role = str(assignment.get("role") or "").lower()
    kinds = {kind for prefix, kind in _ROLE_SERVICES if role.startswith(prefix)}
    scopes: list[str] = []
    for workload in ctx.named.get(identity.client_id.lower(), []):
        for kind, scope in ctx.reads.get(workload, []):
            if (kind in kinds and broad and scope.lower().startswith(broad + "/") and scope not in scopes):
                scopes.append(scope)
    return scopes


def least_privilege(ctx: InventoryContext) -> Outcome:
    used = [i for i in ctx.facts.identities if i.client_id.lower() in ctx.named]
    read = [i for i in used if i.role_assignments is not None]
    if not read and ctx.named and _incomplete(ctx) is not None:  # none of them read: a pass would be of none
        return skipped("the roles of no identity the ServiceAccounts use could be read (see "
                       "inventory.identities_listed)")
    cases, items, steps = [], [], []
    severity = WARNING
    for identity in read:
        for assignment in identity.role_assignments or []:
            reason = broad_reason(assignment)
            writes = write_role(ctx, identity, assignment) if reason is None or reason[0] == WARNING else None
            if writes is not None:
                beyond = (f"{writes.name} lets the workload {writes.beyond}, where harness.yaml says it only reads "
                          f"({writes.read_role} reads)")
                reason = (WARNING, f"{reason[1]}; {beyond}" if reason else beyond)
            if reason is None or (_is_reader(assignment) and identity.client_id.lower() == (
                    ctx.harness_client_id or "").lower()):
                continue  # the harness's own Reader (README's Permissions: the Job's identity reads the subscription)
            level, why = reason
            severity = ERROR if level == ERROR else severity
            cases.append(
                f"{assignment.get('role')} on {assignment.get('scope')} for {short(identity)} "
                f"(used by {', '.join(ctx.named[identity.client_id.lower()])}): {why}"
            )
            items.append(
                {
                    "identity": label(identity),
                    "role": assignment.get("role"),
                    "scope": assignment.get("scope"),
                    "assignment_id": assignment.get("id"),
                    "why": why,
                }
            )
            narrower = any(
                other is not assignment and other.get("role") == assignment.get("role") and broad_reason(other) is None
                for other in identity.role_assignments or []
            )
            at = str(assignment.get("scope") or "")
            if writes is not None and broad_reason(assignment) is None:
                # the read role on the same scope first, while the write role still serves the workload's reads: the
                # delete after it never leaves a passing workload without a role to read through
                grant = fix.grant_role(identity.principal_id, writes.read_role, at)
                if not _holds(identity, writes.read_role_id, writes.read_role, at) and grant not in steps:
                    steps.append(grant)
                steps.append(fix.delete_role_assignment_id(str(assignment.get("id") or "")))
            elif level == ERROR or (narrower and writes is None):
                steps.append(fix.delete_role_assignment_id(str(assignment.get("id") or "")))
            else:
                # a role on a whole group or subscription may be the only grant the workload reads through (Key
                # Vault Secrets User on the group, say): deleting it first turns a passing workload into a failing
                # one, so the narrow grant comes first, on a resource the person names, and the delete after it
                role = writes.read_role if writes else str(assignment.get("role") or "<role>")
                narrow = narrower_scopes(ctx, identity, assignment)
                steps += [fix.grant_role(identity.principal_id, role, scope) for scope in narrow] or [
                    fix.grant_role(identity.principal_id, role, f"<the-resource-under-{assignment.get('scope')}>")]
                steps.append(advice(f"once the workload reads through {'them' if len(narrow) > 1 else 'it'}: az "
                                    f"role assignment delete --ids {assignment.get('id')}"))
    evidence = {
        "broad": items,
        "identities": [label(i) for i in read],
        "not_read": [label(i) for i in used if i.role_assignments is None],
    }
    if not items:
        return passed(
            f"the {len(read)} identit{'y' if len(read) == 1 else 'ies'} the ServiceAccounts use hold no "
            "administrative role, no role wider than a resource and no data role that writes where they only read",
            evidence,
        )
    steps.append(
        advice(
            "grant the narrowest built-in role on the one resource the workload reads (e.g. Key Vault "
            "Secrets User on the vault) before deleting a broad one it still relies on"
        )
    )
    message = (
        f"{_plural(len(items), 'role assignment', 'role assignments')} on identities the workloads use "
        f"{'is' if len(items) == 1 else 'are'} broader than they need: {_listed(cases)}"
    )
    return _judge([Finding("ROLE_OVERLY_BROAD", severity, LAYER, message, evidence, steps)], "", evidence)


# ---------------------------------------------------------------- run.json's inventory section


def inventory_section(facts: InventoryFacts, cluster: ClusterFacts, expect: ExpectConfig) -> dict[str, Any]:
    """The cross-match as tables: ServiceAccounts, federated credentials for this cluster (any spelling), the
    identities, the role assignments of those the ServiceAccounts use, and what could not be read."""
    ctx = InventoryContext(facts, cluster, None, expect)
    accounts = []
    for sa in facts.service_accounts:
        ref = f"{sa['namespace']}/{sa['name']}"
        identity = ctx.identity_of(sa)
        mine = [
            c
            for c in ctx.credentials
            if identity is not None and c.identity is identity and c.service_account == ref
        ]
        if sa.get("client_id") is None:
            state = "label only: no client id"
        elif identity is None and str(sa.get("client_id")).lower() in facts.hidden:
            state = "identity in Entra, not readable by the harness"
        elif identity is None:
            state = "client id unknown"
        elif identity.federated_credentials is None:
            state = "credentials not readable"
        elif any(c.usable for c in mine):
            state = "credential for this issuer"
        elif mine:
            state = "credential for another issuer only"
        else:
            state = "no credential"
        accounts.append(
            {
                "service_account": ref,
                "client_id": sa.get("client_id"),
                "use_label": sa.get("use_label"),
                "identity": label(identity) if identity else None,
                "state": state,
            }
        )
    credentials = [
        c.row(label(c.identity), c.service_account in ctx.existing)
        for c in ctx.credentials
        if c.relation is not None
        or (
            c.service_account in ctx.existing
            and c.service_account in ctx.named.get(c.identity.client_id.lower(), [])
        )
    ]
    identities = [
        {
            "identity": label(i),
            "kind": i.kind,
            "client_id": i.client_id,
            "resource": i.resource_id or i.object_id,
            "credentials": None if i.federated_credentials is None else len(i.federated_credentials),
            "used_by": ctx.named.get(i.client_id.lower(), []),
        }
        for i in facts.identities
    ]
    roles = []
    for identity in facts.identities:
        for assignment in identity.role_assignments or []:
            reason = broad_reason(assignment)
            roles.append(
                {
                    "identity": label(identity),
                    "role": assignment.get("role"),
                    "scope": assignment.get("scope"),
                    "assignment_id": assignment.get("id"),
                    "broad": reason[1] if reason else None,
                }
            )
    return {
        "issuer": cluster.issuer_url,
        "service_accounts": accounts,
        "federated_credentials": credentials,
        "identities": identities,
        "role_assignments": roles,
        "searched": list(facts.searched),
        "unreadable": unreadable_rows(facts),
    }


_AZURE = ("inventory.service_accounts", "inventory.identities_listed")
INVENTORY_CHECKS: list[CheckSpec[InventoryContext]] = [
    CheckSpec(
        "inventory.service_accounts",
        "ServiceAccounts with the client-id annotation or the use label, cluster-wide",
        service_accounts_listed,
    ),
    CheckSpec(
        "inventory.identities_listed",
        "managed identities and applications read, with their credentials",
        identities_listed,
    ),
    CheckSpec(
        "inventory.client_ids_known",
        "every annotated client id is a known identity",
        client_ids_known,
        _AZURE,
    ),
    CheckSpec(
        "inventory.credentials_present",
        "every ServiceAccount's identity trusts it",
        credentials_present,
        _AZURE,
    ),
    CheckSpec(
        "inventory.no_old_issuers",
        "no credential names an old spelling or an older issuer",
        no_old_issuers,
        _AZURE,
    ),
    CheckSpec(
        "inventory.no_orphaned_credentials",
        "every credential for this cluster names an existing ServiceAccount",
        no_orphaned_credentials,
        _AZURE,
    ),
    CheckSpec(
        "inventory.credential_limits",
        f"every identity below {LIMIT_NEAR} of {MAX_FEDERATED_CREDENTIALS} credentials",
        credential_limits,
        ("inventory.identities_listed",),
    ),
    CheckSpec(
        "inventory.least_privilege",
        "no administrative or subscription-wide role on a workload identity",
        least_privilege,
        _AZURE,
    ),
]
INVENTORY_CHECK_IDS = [spec.id for spec in INVENTORY_CHECKS]


def run_inventory_checks(
    facts: InventoryFacts,
    cluster: ClusterFacts,
    azure: AzureConfig | None,
    expect: ExpectConfig | None = None,
    workloads: list[WorkloadConfig] | None = None,
    harness_client_id: str | None = None,
) -> list[CheckResult]:
    configured = {w.id: w.client_id.lower() for w in workloads or [] if w.client_id}
    return run_chain(INVENTORY_CHECKS, InventoryContext(facts, cluster, azure, expect or ExpectConfig(), configured,
                                                        harness_client_id, allowed_reads(workloads or [], cluster),
                                                        frozenset(w.id for w in workloads or [])))


def allowed_reads(workloads: list[WorkloadConfig], cluster: ClusterFacts) -> dict[str, list[tuple[str, str]]]:
    """NS/SA -> (kind, ARM scope) of each resource it is expected to read that ARM listed (ids the collector
    validated), a blob's at its container as the access checks grant it."""
    out: dict[str, list[tuple[str, str]]] = {}
    for workload in workloads:
        for check in workload.access:
            found = cluster.access_resources.get(values.endpoint_key(check.url))
            if check.expect != "allow" or not found or not found.get("id") or "true" in (found.get("deleted"),
                                                                                          found.get("absent")):
                continue
            out.setdefault(workload.id, []).append((check.kind, fix.read_scope(found["id"], check)))
    return out
