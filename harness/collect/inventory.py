"""The cluster's Workload ID inventory, the runbook's loops done once and cross-matched.

Kubernetes side: every ServiceAccount with the ``azure.workload.identity/client-id`` annotation or the
``azure.workload.identity/use`` label, cluster-wide -- the runbook's ``kubectl get sa -A -o json | jq`` filter
(jq keeps any value that is not null, so an empty annotation counts), label-only ones included.

Azure side: every user-assigned managed identity in every subscription the harness reads (one Azure Resource
Graph query, paged; the configured subscription's list when Resource Graph refuses), then each identity's
federated credentials (ARM); every application with its federated credentials (Microsoft Graph, one paged
list with ``$expand=federatedIdentityCredentials``). Kept: the identities with a credential for this cluster's
issuer in any spelling (harness.issuers), and those a ServiceAccount names; for the latter, their role
assignments too. ARM and Graph reads go through a per-run cache (each URL once) and run a few at a time.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Collection, Iterable
from concurrent.futures import Future
from typing import Any

from harness import values
from harness.checks.podspec import service_account_of
from harness.checks.serviceaccount import meant_for_workload_identity
from harness.collect.arm import ARG_PATH, AUTHORIZATION_API, IDENTITY_TYPE, MSI_API
from harness.collect.arm_api import ArmGet
from harness.collect.cache import cached, read_all
from harness.collect.graph import VERSION as GRAPH_VERSION
from harness.collect.graph import application_of_object_id, deleted_item
from harness.collect.identity_names import identities_named
from harness.collect.kube_api import KubeApi, KubeError
from harness.collect.migration import pod_summary
from harness.collect.pages import list_all
from harness.collect.retrying import LEDGER
from harness.config import AzureConfig
from harness.facts import (
    CREDENTIAL_ERROR,
    NETWORK_ERROR,
    SLOW_ERROR,
    Fetched,
    InventoryFacts,
    InventoryIdentity,
    KubeFailure,
)
from harness.issuers import issuer_relation
from harness.names import (
    CLIENT_ID_ANNOTATION,
    TENANT_ID_ANNOTATION,
    USE_LABEL,
)

ARG_PAGE = 1000  # Resource Graph's largest $top
IDENTITIES_QUERY = (
    f"resources | where type =~ '{IDENTITY_TYPE}' "
    "| project id, name, subscriptionId, resourceGroup, properties"
)
APPLICATIONS_PATH = (
    f"/{GRAPH_VERSION}/applications?$select=id,appId,displayName,federatedIdentityCredentials"
    "&$expand=federatedIdentityCredentials&$top=999"
)
MAX_ARG_PAGES = 100
# Up to this many named identities list their own role assignments (``$filter=principalId eq``); with more, one
# list of the subscription's serves them all
ROLE_LISTS_AT_MOST = 16
MAX_SHOWN = 200  # annotation values kept in the inventory (a GUID is 36 characters)


# ---------------------------------------------------------------- Kubernetes


def is_workload_identity_service_account(obj: dict[str, Any]) -> bool:
    """The runbook's filter: the client-id annotation or the use label is there, whatever its value."""
    meta = obj.get("metadata") or {}
    return CLIENT_ID_ANNOTATION in (meta.get("annotations") or {}) or USE_LABEL in (meta.get("labels") or {})


def _meant(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    return meant_for_workload_identity(meta.get("annotations") or {}, meta.get("labels") or {})


def slim_service_account(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}

    def kept(value: Any) -> str | None:
        return None if value is None else values.shorten(str(value), MAX_SHOWN)

    return {
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "client_id": kept(annotations.get(CLIENT_ID_ANNOTATION)),
        "tenant_id": kept(annotations.get(TENANT_ID_ANNOTATION)),
        "use_label": kept(labels.get(USE_LABEL)),
    }


def list_labelled_pods(kube: KubeApi, namespaces: Iterable[str] = ()) -> tuple[list[dict[str, Any]], KubeFailure | None]:
    """The pods labelled ``azure.workload.identity/use: "true"`` (the label the webhook's objectSelector matches)
    in ``namespaces``, or in all of them: one list per namespace (one in all), as the ServiceAccounts are listed.
    On a cluster with thousands of pods this is the costliest list of a whole-cluster run: a run makes it once
    (:func:`harness.session.discover` keeps what the inventory needs of it)."""
    found: list[dict[str, Any]] = []
    try:
        for namespace in list(dict.fromkeys(namespaces)) or [None]:
            pods, _ = kube.list_pods(namespace, f"{USE_LABEL}=true")
            found += pods
    except KubeError as exc:
        return [], exc.failure
    return found, None


def service_accounts_run_by(pods: Iterable[dict[str, Any]]) -> set[str]:
    """NS/NAME of the ServiceAccounts ``pods`` run as. A pod asking for Workload ID under a ServiceAccount with
    neither the annotation nor the label is mutated without AZURE_CLIENT_ID; its ServiceAccount is to be
    verified."""
    return {f"{(pod.get('metadata') or {}).get('namespace')}/{service_account_of(pod.get('spec') or {})}"
            for pod in pods}


def labelled_pod_summaries(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`harness.collect.migration.pod_summary` of the live ``pods`` (the harness's own probe pods left out),
    by namespace and name: what the inventory and the migration suite read of the labelled pods, from one list."""
    return sorted((s for s in map(pod_summary, pods) if s is not None), key=lambda s: (s["namespace"], s["name"]))


PodOwners = dict[str, list[dict[str, Any]]]


def owners_of_live_pods(summaries: Iterable[dict[str, Any]]) -> PodOwners:
    """NS/SA -> {kind, name, pods, client_ids} of what owns the pods (:func:`labelled_pod_summaries`) under each
    ServiceAccount: what a fix that changes the ServiceAccount restarts by name. ``client_ids``: the
    AZURE_CLIENT_ID values the owner's pods carry ("" for a pod the webhook gave no token or no client id), so a
    fix annotating the client id they already carry restarts nothing."""
    owners: dict[str, dict[tuple[str, str], list[str]]] = {}
    carried: dict[tuple[str, str, str], set[str]] = {}
    for pod in summaries:
        ref = f"{pod['namespace']}/{pod['service_account']}"
        owner = (str(pod["owner_kind"]), str(pod["owner_name"]))
        owners.setdefault(ref, {}).setdefault(owner, []).append(str(pod["name"]))
        ids = set(pod.get("client_ids") or []) if pod.get("token_audiences") else set()
        carried.setdefault((ref, *owner), set()).update(ids or {""})
    return {ref: [{"kind": kind, "name": name, "pods": names, "client_ids": sorted(carried[(ref, kind, name)])}
                  for (kind, name), names in found.items()]
            for ref, found in owners.items()}


def labelled_pod_owners(kube: KubeApi) -> PodOwners | None:
    """:func:`owners_of_live_pods` of the labelled pods, cluster-wide (one list, the verb the rendered RBAC
    grants). None: the list was refused."""
    pods, failure = list_labelled_pods(kube)
    return None if failure is not None else owners_of_live_pods(labelled_pod_summaries(pods))


# The controllers whose updateStrategy decides whether a template change (kubectl rollout restart's) replaces
# their pods: OnDelete replaces none (apps/v1 StatefulSetUpdateStrategy, DaemonSetUpdateStrategy); and Deployments,
# which a pause (spec.paused: kubectl rollout pause) keeps from rolling, and whose restart kubectl then refuses
_STRATEGY_KINDS = {"StatefulSet": "statefulsets", "DaemonSet": "daemonsets", "Deployment": "deployments"}


def add_update_strategies(kube: KubeApi, owners: PodOwners) -> None:
    """Each StatefulSet's and DaemonSet's ``update_strategy`` (its spec.updateStrategy.type; None when it could not
    be read) put on its entry in ``owners``, and a StatefulSet's ``partition`` (rollingUpdate.partition: a
    template change replaces only its pods of that ordinal and above): one list, cluster-wide, of each such kind
    that owns a pod."""
    entries = [entry for listed in owners.values() for entry in listed if entry["kind"] in _STRATEGY_KINDS]
    strategies: dict[tuple[str, str, str], str] = {}
    partitions: dict[tuple[str, str, str], int] = {}
    paused: set[tuple[str, str, str]] = set()
    for kind in sorted({entry["kind"] for entry in entries}):
        try:
            listed = kube.list_objects("apps", "v1", _STRATEGY_KINDS[kind])
        except KubeError:
            continue  # the pods' own view stands: a rollout restart, as for RollingUpdate
        for obj in listed:
            meta = obj.get("metadata") or {}
            update = (obj.get("spec") or {}).get("updateStrategy") or {}
            key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if kind == "Deployment":
                if (obj.get("spec") or {}).get("paused") is True:
                    paused.add(key)
                continue
            if update.get("type"):
                strategies[key] = str(update["type"])
            partition = (update.get("rollingUpdate") or {}).get("partition")
            if kind == "StatefulSet" and isinstance(partition, int) and partition > 0:
                partitions[key] = partition
    for ref, listed in owners.items():
        namespace = ref.split("/", 1)[0]
        for entry in listed:
            if entry["kind"] == "Deployment":
                if (entry["kind"], namespace, entry["name"]) in paused:
                    entry["paused"] = True
            elif entry["kind"] in _STRATEGY_KINDS:
                entry["update_strategy"] = strategies.get((entry["kind"], namespace, entry["name"]))
                if (entry["kind"], namespace, entry["name"]) in partitions:
                    entry["partition"] = partitions[(entry["kind"], namespace, entry["name"])]


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def list_service_accounts(
    kube: KubeApi, namespaces: Iterable[str] = (), also: Collection[str] = (), meant: bool = False
) -> tuple[list[dict[str, Any]], list[str], KubeFailure | None]:
    """(the workload identity ServiceAccounts, and those ``also`` names (NS/NAME), slimmed and sorted; NS/NAME
    of every ServiceAccount; the refusal) in ``namespaces``, or in all of them when none is given. ``meant``: also
    those the runbook's filter misses but someone meant for Workload ID (a misspelled client-id key, or only
    another of the webhook's keys), so that a run verifies them and says what is wrong."""
    found: list[dict[str, Any]] = []
    try:
        for namespace in list(dict.fromkeys(namespaces)) or [None]:
            found += kube.list_service_accounts(namespace)
    except KubeError as exc:
        return [], [], exc.failure
    every = sorted({f"{s['namespace']}/{s['name']}" for s in map(slim_service_account, found)})
    chosen = sorted(
        (slim_service_account(o) for o in found
         if is_workload_identity_service_account(o) or _ref(o) in also or (meant and _meant(o))),
        key=lambda s: (s["namespace"], s["name"]),
    )
    return chosen, every, None


# ---------------------------------------------------------------- Azure


def credential_of(item: dict[str, Any]) -> dict[str, Any]:
    """A federated credential as {name, issuer, subject, audiences}: ARM nests the fields under properties,
    Graph does not."""
    props = item.get("properties") if isinstance(item.get("properties"), dict) else item
    audiences = props.get("audiences")
    return {
        "name": item.get("name"),
        "issuer": props.get("issuer"),
        "subject": props.get("subject"),
        "audiences": [str(a) for a in audiences] if isinstance(audiences, list) else audiences,
    }


def _unusable(fetched: Fetched) -> bool:
    return fetched.code in (CREDENTIAL_ERROR, NETWORK_ERROR, SLOW_ERROR)


def _record(facts: InventoryFacts, fetched: Fetched) -> None:
    (facts.refused if fetched.status in (401, 403) else facts.failed).append(fetched)


def managed_identity_rows(arm: ArmGet, azure: AzureConfig, facts: InventoryFacts) -> list[dict[str, Any]]:
    """Every user-assigned identity the harness can read: Resource Graph across subscriptions, paged by
    $skipToken; when Resource Graph refuses, the configured subscription's list."""
    rows: list[dict[str, Any]] = []
    options: dict[str, Any] = {"$top": ARG_PAGE}
    facts.searched.append(
        "Azure Resource Graph: user-assigned identities in every subscription the harness reads"
    )
    for page in range(MAX_ARG_PAGES):
        answer = arm(ARG_PATH, {"query": IDENTITIES_QUERY, "options": options})
        data = answer.body.get("data") if answer.ok and isinstance(answer.body, dict) else None
        if not isinstance(data, list):
            if page > 0:  # a later page failed: what came is kept, the gap is said
                _record(facts, answer)
                return rows
            break
        rows += [row for row in data if isinstance(row, dict)]
        token = answer.body.get("$skipToken")
        if not token:
            return rows
        options = {"$top": ARG_PAGE, "$skipToken": token}
    else:
        return rows
    _record(facts, answer)
    if _unusable(answer):
        return []
    path = (
        f"/subscriptions/{azure.subscription_id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        f"?api-version={MSI_API}"
    )
    facts.searched.append(
        f"user-assigned identities of subscription {azure.subscription_id} "
        f"(Resource Graph answered {answer.describe()})"
    )
    listed, failed = list_all(arm, path)
    if failed is not None:
        _record(facts, failed)
    return listed


def _managed_identity(row: dict[str, Any]) -> InventoryIdentity:
    props = row.get("properties") or {}
    return InventoryIdentity(
        kind="managed_identity",
        client_id=str(props.get("clientId") or ""),
        name=str(row.get("name") or ""),
        resource_id=str(row.get("id") or ""),
        principal_id=str(props.get("principalId") or "") or None,
    )


def _managed_credentials(arm: ArmGet, identity: InventoryIdentity) -> None:
    credentials, failed = list_all(
        arm, f"{identity.resource_id}/federatedIdentityCredentials?api-version={MSI_API}"
    )
    if failed is not None:
        identity.credentials_error = failed
    else:
        identity.federated_credentials = [credential_of(c) for c in credentials]


def applications(graph: ArmGet, facts: InventoryFacts) -> list[InventoryIdentity] | None:
    """Every application with its federated credentials (None: Graph refused or failed the list). An
    application listed without the expanded credentials has them read on their own."""
    facts.searched.append("Microsoft Graph: applications and their federated credentials")
    listed, failed = list_all(graph, APPLICATIONS_PATH)
    if failed is not None:
        _record(facts, failed)
        return None

    def read(app: dict[str, Any]) -> InventoryIdentity:
        identity = InventoryIdentity(
            kind="application",
            client_id=str(app.get("appId") or ""),
            name=str(app.get("displayName") or ""),
            object_id=str(app.get("id") or ""),
        )
        expanded = app.get("federatedIdentityCredentials")
        if isinstance(expanded, list):
            identity.federated_credentials = [credential_of(c) for c in expanded if isinstance(c, dict)]
            return identity
        credentials, missing = list_all(
            graph, f"/{GRAPH_VERSION}/applications/{identity.object_id}/federatedIdentityCredentials"
        )
        if missing is not None:
            identity.credentials_error = missing
        else:
            identity.federated_credentials = [credential_of(c) for c in credentials]
        return identity

    return read_all(read, listed)


def application_by_app_id(graph: ArmGet, app_id: str, facts: InventoryFacts) -> InventoryIdentity | None:
    """One application by appId, with its credentials (when the list of all could not be read)."""
    key = f"/{GRAPH_VERSION}/applications(appId='{app_id}')"
    found = graph(key)
    if found.status == 404:
        return None
    if not found.ok or not isinstance(found.body, dict):
        _record(facts, found)
        return None
    identity = InventoryIdentity(
        kind="application",
        client_id=str(found.body.get("appId") or app_id),
        name=str(found.body.get("displayName") or ""),
        object_id=str(found.body.get("id") or ""),
    )
    credentials, failed = list_all(graph, f"{key}/federatedIdentityCredentials")
    if failed is not None:
        identity.credentials_error = failed
    else:
        identity.federated_credentials = [credential_of(c) for c in credentials]
    return identity


def _service_principal_id(graph: ArmGet | None, identity: InventoryIdentity) -> None:
    if graph is None or identity.principal_id:
        return
    principal = graph(f"/{GRAPH_VERSION}/servicePrincipals(appId='{identity.client_id}')")
    if principal.ok and isinstance(principal.body, dict):
        identity.principal_id = str(principal.body.get("id") or "") or None


def role_assignments_path(subscription_id: str, principal_id: str) -> str:
    """The same URL the workload collector asks (harness.collect.arm), so the per-run cache serves both."""
    query = urllib.parse.quote(f"principalId eq '{principal_id}'")
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleAssignments"
        f"?api-version={AUTHORIZATION_API}&$filter={query}"
    )


def subscription_role_assignments_path(subscription_id: str) -> str:
    """Every role assignment at, above or below the subscription, of every principal (``az role assignment list
    --all``): one read instead of one per identity when many identities are inventoried."""
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleAssignments"
        f"?api-version={AUTHORIZATION_API}"
    )


def _prefetch_roles(arm: ArmGet, subscription_id: str, principals: Future[set[str]]) -> None:
    """Into the run's cache: the subscription's role assignments and the definitions of those held by
    ``principals`` (known once the identities are listed). Failures are left for :func:`_roles` to meet."""
    assignments, failed = list_all(arm, subscription_role_assignments_path(subscription_id.lower()))
    wanted = principals.result()
    if failed is not None:
        return
    definitions = sorted({
        str((a.get("properties") or {}).get("roleDefinitionId") or "") for a in assignments
        if str((a.get("properties") or {}).get("principalId") or "").lower() in wanted
    } - {""})
    read_all(lambda definition: arm(f"{definition}?api-version={AUTHORIZATION_API}"), definitions)


def _subscription_of(resource_id: str | None) -> str | None:
    parts = (resource_id or "").split("/")
    return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else None


def _roles(arm: ArmGet, azure: AzureConfig, identity: InventoryIdentity, everyone: bool = False) -> None:
    """The identity's role assignments at, above or below the configured subscription and its own: ARM lists
    those of one principal with ``$filter=principalId eq`` (with ``everyone``, those of every principal in one
    list, shared by all identities through the run's cache, and this one's picked out); each role's name read
    from its definition."""
    if not identity.principal_id:
        return
    subscriptions = list(
        dict.fromkeys(s.lower() for s in (azure.subscription_id, _subscription_of(identity.resource_id)) if s)
    )
    found: dict[str, dict[str, Any]] = {}
    for subscription in subscriptions:
        path = (subscription_role_assignments_path(subscription) if everyone
                else role_assignments_path(subscription, identity.principal_id))
        assignments, failed = list_all(arm, path)
        if failed is not None:
            identity.roles_error = failed
            return
        for assignment in assignments:
            props = assignment.get("properties") or {}
            if everyone and str(props.get("principalId") or "").lower() != identity.principal_id.lower():
                continue
            key = str(assignment.get("id") or len(found)).lower()
            found.setdefault(
                key,
                {
                    "id": assignment.get("id"),
                    "role_definition_id": props.get("roleDefinitionId"),
                    "scope": props.get("scope"),
                },
            )
    for assignment in found.values():
        definition = str(assignment.get("role_definition_id") or "")
        name = None
        if definition:
            answer = arm(f"{definition}?api-version={AUTHORIZATION_API}")
            name = ((answer.body or {}).get("properties") or {}).get("roleName") if answer.ok else None
        assignment["role"] = str(name or definition.rsplit("/", 1)[-1])
    identity.role_assignments = list(found.values())
    identity.role_subscriptions = subscriptions


def _relevant(identity: InventoryIdentity, issuer: str | None, previous: list[str], named: set[str]) -> bool:
    if identity.client_id.lower() in named:
        return True
    return any(
        issuer_relation(c.get("issuer"), issuer, previous) for c in identity.federated_credentials or []
    )


def _service_principal_summary(body: dict[str, Any]) -> dict[str, Any]:
    """A service principal as {kind, client_id, name, resource_id}: a managed identity's names its ARM id
    among its alternativeNames."""
    managed = body.get("servicePrincipalType") == "ManagedIdentity"
    names = [str(n) for n in body.get("alternativeNames") or [] if str(n).startswith("/subscriptions/")]
    return {
        "kind": "managed_identity" if managed else "service_principal",
        "client_id": body.get("appId"),
        "name": body.get("displayName"),
        "resource_id": names[0] if names else None,
    }


def _hidden(graph: ArmGet | None, guid: str, facts: InventoryFacts) -> dict[str, Any] | None:
    """The service principal whose appId is ``guid``: the identity exists in Entra, but neither Resource Graph
    nor Graph's applications showed it (a managed identity in a subscription the harness cannot read, or an
    application of another tenant)."""
    return _graph_service_principal(graph, f"/{GRAPH_VERSION}/servicePrincipals(appId='{guid}')", facts)


def _graph_service_principal(graph: ArmGet | None, path: str, facts: InventoryFacts) -> dict[str, Any] | None:
    """One service principal read from Graph, summarised; a 404/400 is "none", any other failure is recorded."""
    if graph is None:
        return None
    principal = graph(path)
    if principal.ok and isinstance(principal.body, dict):
        return _service_principal_summary(principal.body)
    if principal.status not in (404, 400):
        _record(facts, principal)
    return None


def _principal_of(
    rows: list[dict[str, Any]], graph: ArmGet | None, guid: str, facts: InventoryFacts
) -> dict[str, Any] | None:
    for row in rows:
        props = row.get("properties") or {}
        if str(props.get("principalId", "")).lower() == guid.lower():
            return {
                "kind": "managed_identity",
                "client_id": props.get("clientId"),
                "name": row.get("name"),
                "resource_id": row.get("id"),
            }
    principal = _graph_service_principal(graph, f"/{GRAPH_VERSION}/servicePrincipals/{guid}", facts)
    if principal is not None or graph is None:
        return principal
    found, failure = application_of_object_id(graph, guid)  # the app registration's object id, not its appId
    if failure is not None:
        _record(facts, failure)
    return found


def collect_inventory(
    kube: KubeApi,
    arm: ArmGet | None,
    azure: AzureConfig | None,
    graph: ArmGet | None,
    issuer: str | None,
    previous_issuers: list[str] | None = None,
    labelled_pods: list[dict[str, Any]] | None = None,
) -> InventoryFacts:
    """``labelled_pods``: :func:`labelled_pod_summaries` of the cluster's labelled pods as this run listed them
    already (a whole-cluster run's discovery, or once for the migration suite too); None: listed here."""
    facts = InventoryFacts(collected_at=time.time(), azure_configured=arm is not None and azure is not None)
    facts.service_accounts, facts.all_service_accounts, facts.service_accounts_error = list_service_accounts(
        kube
    )
    if facts.service_accounts:
        facts.pod_owners = (owners_of_live_pods(labelled_pods) if labelled_pods is not None
                            else labelled_pod_owners(kube))
        if facts.pod_owners:
            add_update_strategies(kube, facts.pod_owners)
    if arm is None or azure is None:
        return facts
    arm, graph = cached(arm), cached(graph)
    assert arm is not None
    previous = list(previous_issuers or [])
    named = {
        str(s["client_id"]).lower() for s in facts.service_accounts if values.is_guid(s.get("client_id"))
    }

    # Many identities to read roles for: one list of the subscription's assignments beats one list each, and it
    # and the role definitions it names are read beside the identities (the run's cache hands them over)
    everyone = len(named) > ROLE_LISTS_AT_MOST
    principals: Future[set[str]] = Future()
    prefetch = threading.Thread(target=LEDGER.carried(_prefetch_roles),
                                args=(arm, azure.subscription_id, principals), name="wi-read-roles", daemon=True)
    if everyone:
        prefetch.start()
    try:
        rows = managed_identity_rows(arm, azure, facts)
    finally:
        principals.set_result({
            str((row.get("properties") or {}).get("principalId") or "").lower() for row in rows
            if str((row.get("properties") or {}).get("clientId") or "").lower() in named
        } if everyone else set())
    if any(_unusable(f) for f in facts.failed):
        return facts  # the harness cannot call Azure at all: nothing later would fare better

    def managed(row: dict[str, Any]) -> InventoryIdentity:
        identity = _managed_identity(row)
        if identity.client_id.lower() not in named:
            _managed_credentials(arm, identity)
            return identity
        # always relevant: its roles now, beside its credentials (each needs only the Resource Graph row)
        read_all(lambda read: read(), [lambda: _managed_credentials(arm, identity),
                                       lambda: _roles(arm, azure, identity, everyone)])
        return identity

    # Graph's applications (another service) are listed while ARM reads the managed identities' credentials
    apps_read: Future[list[InventoryIdentity] | None] = Future()

    def read_applications() -> None:
        try:
            apps_read.set_result(applications(graph, facts) if graph is not None else None)
        except BaseException as exc:  # raised below, in the caller's thread
            apps_read.set_exception(exc)

    apps_thread = threading.Thread(target=LEDGER.carried(read_applications), name="wi-read-applications",
                                   daemon=True)
    apps_thread.start()
    try:
        identities = read_all(managed, rows)
    finally:
        apps_thread.join()
    if everyone:
        prefetch.join()
    apps = apps_read.result()
    if graph is None:
        facts.searched.append("Microsoft Graph: not configured for this cloud (azure.cloud.microsoft_graph)")
    identities += apps or []
    known = {i.client_id.lower() for i in identities}
    if graph is not None and apps is None:  # the list was refused: ask for the named ones one by one
        looked_up = read_all(
            lambda app_id: application_by_app_id(graph, app_id, facts), sorted(named - known)
        )
        identities += [i for i in looked_up if i is not None]
        known |= {i.client_id.lower() for i in identities}
    for identity in identities:
        if identity.credentials_error is not None:
            _record(facts, identity.credentials_error)
    facts.identities = sorted(
        (i for i in identities if _relevant(i, issuer, previous, named)),
        key=lambda i: (i.kind, i.name.lower(), i.client_id),
    )
    for guid in sorted(named - known):
        hidden = _hidden(graph, guid, facts)
        owner = None if hidden is not None else _principal_of(rows, graph, guid, facts)
        if hidden is not None:
            facts.hidden[guid] = hidden
        if owner is not None:
            facts.principal_of[guid] = owner
        if hidden is None and owner is None and graph is not None:
            application = deleted_item(graph, "application", guid)
            if application is not None:
                facts.deleted[guid] = {"application": application,
                                       "service_principal": deleted_item(graph, "servicePrincipal", guid)}
    pasted = sorted({str(s["client_id"]).strip() for s in facts.service_accounts
                     if s.get("client_id") and not values.is_guid(s["client_id"])
                     and values.is_azure_resource_name(str(s["client_id"]).strip())})
    for name, found in zip(pasted, read_all(lambda name: identities_named(arm, azure, graph, name), pasted),
                           strict=True):
        if found is not None:
            facts.named[name.lower()] = found
    used = [i for i in facts.identities if i.client_id.lower() in named]
    read_all(lambda i: _service_principal_id(graph, i) if i.kind == "application" else None, used)
    read_all(lambda i: _roles(arm, azure, i, everyone), [i for i in used if i.kind != "managed_identity"])
    for identity in used:
        if identity.roles_error is not None:
            _record(facts, identity.roles_error)
    return facts
