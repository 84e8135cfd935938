"""What Microsoft Graph knows about a client id that no managed identity has: the Entra application with that
appId, its federated identity credentials and its service principal; and, for a GUID that is no client id,
the service principal whose object id it is. Graph is reached through the same seam as ARM
(``ArmGet``), aimed at the cloud's Graph endpoint with a token for it."""

from __future__ import annotations

import urllib.parse
from typing import Any

from harness.collect.arm_api import ArmGet
from harness.collect.pages import list_all
from harness.facts import Fetched, IdentityFacts

VERSION = "v1.0"


def collect_application(graph: ArmGet | None, app_id: str, facts: IdentityFacts, subject: str | None = None) -> bool:
    """Fill ``facts`` with the application whose appId is ``app_id`` (a GUID); False when there is none or
    Graph could not be asked (then ``facts.refused`` or ``facts.searched`` says why). When none of its
    credentials names ``subject`` (the ServiceAccount's), the live applications of the same display name too:
    whether the annotation names the wrong one of two app registrations that share a name."""
    if graph is None:
        facts.searched.append("Microsoft Graph: not configured for this cloud (azure.cloud.microsoft_graph)")
        return False
    key = f"/{VERSION}/applications(appId='{app_id}')"
    application = graph(key)
    facts.searched.append("Microsoft Graph: the application with this appId")
    if application.status == 404:
        return False
    if not application.ok or not isinstance(application.body, dict):
        facts.refused.append(application)
        return False
    facts.kind, facts.resolved_by, facts.application = "application", "graph", application.body
    credentials, failed = list_all(graph, f"{key}/federatedIdentityCredentials")
    if failed is not None:
        facts.error = failed
    else:
        facts.federated_credentials = credentials
        if subject and not any(isinstance(c, dict) and c.get("subject") == subject for c in credentials):
            facts.namesakes = namesakes(graph, application.body)
    principal = graph(f"/{VERSION}/servicePrincipals(appId='{app_id}')")
    if principal.ok and isinstance(principal.body, dict):
        facts.service_principal = principal.body
        # az ad sp delete, then az ad sp create: a new object id; the deleted one stays in deleted items (30 days),
        # and role assignments that name it are kept by ARM (harness.collect.arm reads them)
        facts.former_service_principals = [
            {"id": str(item.get("id")), "deletedDateTime": item.get("deletedDateTime")}
            for item in deleted_items(graph, "servicePrincipal", app_id)
            if item.get("id") and str(item["id"]).lower() != str(principal.body.get("id") or "").lower()]
    else:
        facts.service_principal_lookup = principal
        if principal.status == 404:
            facts.deleted_service_principal = deleted_item(graph, "servicePrincipal", app_id)
    return True


def collect_deleted_application(graph: ArmGet | None, app_id: str, facts: IdentityFacts) -> None:
    """The application with this appId in Graph's deleted items (and the service principal deleted with it):
    deleted within 30 days, it can be restored with its appId, object id and federated credentials."""
    if graph is None:
        return
    facts.deleted_application = deleted_item(graph, "application", app_id)
    if facts.deleted_application is not None:
        facts.searched.append("Microsoft Graph: deleted applications with this appId")
        facts.deleted_service_principal = deleted_item(graph, "servicePrincipal", app_id)
        facts.namesakes = namesakes(graph, facts.deleted_application)


MAX_NAMESAKES = 5


def namesakes(graph: ArmGet, deleted: dict[str, Any]) -> list[dict[str, Any]]:
    """The live applications named as the deleted one (az ad app create under the same name after az ad app
    delete: a new appId), or as a live one (another app registration under its name), each with its federated
    credentials, so a check can tell whether one of them trusts the ServiceAccount now. A refused or failed
    listing is no namesake: the restore is judged without it."""
    name = str(deleted.get("displayName") or "")
    if not name:
        return []
    query = urllib.parse.quote("displayName eq '{}'".format(name.replace("'", "''")))
    listed = graph(f"/{VERSION}/applications?$filter={query}&$top={MAX_NAMESAKES}")
    items = listed.body.get("value") if listed.ok and isinstance(listed.body, dict) else None
    out = []
    for item in (items or [])[:MAX_NAMESAKES]:
        if not isinstance(item, dict) or not item.get("id") or str(item.get("appId", "")).lower() == str(
                deleted.get("appId", "")).lower():
            continue
        credentials, failed = list_all(graph, f"/{VERSION}/applications/{item['id']}/federatedIdentityCredentials")
        out.append({"application": item, "federated_credentials": None if failed is not None else credentials})
    return out


def deleted_item(graph: ArmGet, kind: str, app_id: str) -> dict[str, Any] | None:
    """The latest deleted application or service principal (``kind``) with this appId, else None (none, or the
    list was refused: what was deleted is a hint, the run judges without it)."""
    found = deleted_items(graph, kind, app_id)
    return max(found, key=lambda i: str(i.get("deletedDateTime") or "")) if found else None


def deleted_items(graph: ArmGet, kind: str, app_id: str) -> list[dict[str, Any]]:
    """The deleted applications or service principals (``kind``) with this appId ([]: none, or refused)."""
    query = urllib.parse.quote(f"appId eq '{app_id}'")
    listed = graph(f"/{VERSION}/directory/deletedItems/microsoft.graph.{kind}?$filter={query}")
    items = listed.body.get("value") if listed.ok and isinstance(listed.body, dict) else None
    return [i for i in items or [] if isinstance(i, dict) and str(i.get("appId", "")).lower() == app_id.lower()]


def foreign_service_principal(graph: ArmGet | None, app_id: str, tenant_id: str) -> dict[str, Any] | None:
    """This tenant's service principal of an application another tenant owns (a multi-tenant app installed here:
    Graph's applications(appId=...) answers 404 in this tenant, its servicePrincipals(appId=...) answers, with
    appOwnerOrganizationId the home tenant), as {id, displayName, appOwnerOrganizationId}; None otherwise."""
    if graph is None:
        return None
    principal = graph(f"/{VERSION}/servicePrincipals(appId='{app_id}')")
    body = principal.body if principal.ok and isinstance(principal.body, dict) else None
    owner = str((body or {}).get("appOwnerOrganizationId") or "")
    if body is None or not owner or owner.lower() == tenant_id.lower() or \
            body.get("servicePrincipalType") == "ManagedIdentity":
        return None
    return {"id": body.get("id"), "displayName": body.get("displayName"), "appOwnerOrganizationId": owner}


def principal_of_service_principal(graph: ArmGet | None, object_id: str, facts: IdentityFacts) -> dict[str, Any] | None:
    """The service principal whose object id is ``object_id`` (a GUID), as {kind, client_id, name, resource_id},
    else the application whose object id it is (the app registration's "Object ID", which the portal shows next
    to its "Application (client) ID" and people copy by mistake)."""
    if graph is None:
        return None
    principal = graph(f"/{VERSION}/servicePrincipals/{object_id}")
    if principal.ok and isinstance(principal.body, dict):
        body = principal.body
        managed = body.get("servicePrincipalType") == "ManagedIdentity"
        names = [str(n) for n in body.get("alternativeNames") or [] if str(n).startswith("/subscriptions/")]
        return {"kind": "managed_identity" if managed else "service_principal", "client_id": body.get("appId"),
                "name": body.get("displayName"), "resource_id": names[0] if names else None}
    if principal.status != 404:
        facts.refused.append(principal)
        return None
    found, failure = application_of_object_id(graph, object_id)
    if failure is not None:
        facts.refused.append(failure)
    return found


def application_of_object_id(graph: ArmGet, object_id: str) -> tuple[dict[str, Any] | None, Fetched | None]:
    """The application whose object id is ``object_id``, as {kind: application, client_id, name, resource_id};
    (None, None) when there is none (404, or 400 for an id Graph does not take), (None, the answer) when the
    lookup failed otherwise."""
    application = graph(f"/{VERSION}/applications/{object_id}")
    if application.ok and isinstance(application.body, dict):
        body = application.body
        return {"kind": "application", "client_id": body.get("appId"), "name": body.get("displayName"),
                "resource_id": None}, None
    return None, (None if application.status in (404, 400) else application)
