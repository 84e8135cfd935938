"""Microsoft Graph's view of the lab's directory, as operations on the world model: applications and their
federated identity credentials, service principals (of applications and of managed identities), and lookups
by id. The world is the one Entra and ARM share, so an app or credential made here is what Entra honours next.

Every refusal raises :class:`lab.azure.graph.errors.GraphError`; nothing here knows HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.azure.graph import errors
from lab.azure.world import (
    AppRegistration,
    AzureWorld,
    DeletedItem,
    FederatedCredential,
    FirstPartyServicePrincipal,
    ManagedIdentity,
    Principal,
    new_guid,
)

FIC_LIMIT = 20  # per application (documented)
DELETED_ITEM_DAYS = 30  # "A recently deleted item remains available for up to 30 days" (Graph: restore deleted item)
FIC_FIELD_LIMIT = 600
FIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# -- $filter: the OData forms clients of these collections send (az, azwi, the harness), and nothing else
_EQ = re.compile(r"^(appId|displayName|id)\s+eq\s+'((?:[^']|'')*)'$", re.IGNORECASE)
_IN = re.compile(r"^(appId|id)\s+in\s+\(((?:\s*'(?:[^']|'')*'\s*,?)+)\)$", re.IGNORECASE)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_STARTSWITH = re.compile(r"^startswith\(\s*displayName\s*,\s*'((?:[^']|'')*)'\s*\)$", re.IGNORECASE)
_ANY_NAME = re.compile(r"^servicePrincipalNames/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*\)$",
                       re.IGNORECASE)


@dataclass(frozen=True)
class Term:
    field: str  # appid | displayname | id | displayname-prefix | serviceprincipalname
    value: str
    one_of: tuple[str, ...] = ()  # ``field in ('a', 'b')``: any of these

    def holds(self, values: dict[str, Any]) -> bool:
        if self.one_of:
            return str(values.get(self.field) or "").lower() in {v.lower() for v in self.one_of}
        if self.field == "displayname-prefix":
            return str(values.get("displayname") or "").lower().startswith(self.value.lower())
        if self.field == "serviceprincipalname":
            return any(str(n).lower() == self.value.lower() for n in values.get("serviceprincipalname", []))
        return str(values.get(self.field) or "").lower() == self.value.lower()


def parse_filter(text: str | None, allow_names: bool) -> list[Term]:
    """``appId eq '...'``, ``displayName eq '...'``, ``id eq '...'``, ``startswith(displayName,'...')`` and, for
    service principals, ``servicePrincipalNames/any(c:c eq '...')``, joined by ``and``."""
    if not text or not text.strip():
        return []
    terms = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        part = part.strip()
        if match := _EQ.match(part):
            terms.append(Term(match.group(1).lower(), match.group(2).replace("''", "'")))
        elif match := _IN.match(part):  # appId in ('a', 'b'): Graph's "in" on appId and id
            found = tuple(v.replace("''", "'") for v in _QUOTED.findall(match.group(2)))
            terms.append(Term(match.group(1).lower(), "", found))
        elif match := _STARTSWITH.match(part):
            terms.append(Term("displayname-prefix", match.group(1).replace("''", "'")))
        elif allow_names and (match := _ANY_NAME.match(part)) and match.group(1) == match.group(2):
            terms.append(Term("serviceprincipalname", match.group(3).replace("''", "'")))
        else:
            raise errors.unsupported_query()
    return terms


def service_principal_names(principal: Principal) -> list[str]:
    if isinstance(principal, ManagedIdentity):
        return [principal.client_id, f"https://identity.azure.net/{principal.principal_id}"]
    return [principal.client_id]


def require_guid(identifier: str) -> str:
    if not GUID.match(identifier):
        raise errors.invalid_object_id(identifier)
    return identifier


class Directory:
    def __init__(self, world: AzureWorld, clock: Callable[[], float] = time.time) -> None:
        self.world = world
        self.clock = clock

    # ------------------------------------------------------------------ applications
    def applications(self) -> list[AppRegistration]:
        return sorted(self.world.apps.values(), key=lambda a: (a.created_at, a.object_id))

    def application(self, object_id: str | None = None, app_id: str | None = None) -> AppRegistration:
        """By object id (``/applications/{id}``) or by the appId alternate key (``/applications(appId='...')``)."""
        if app_id is not None:
            found = next((a for a in self.world.apps.values() if a.client_id.lower() == app_id.lower()), None)
            if found is None:
                raise errors.not_found(app_id)
            return found
        assert object_id is not None
        require_guid(object_id)
        found = next((a for a in self.world.apps.values() if a.object_id.lower() == object_id.lower()), None)
        if found is None:
            raise errors.not_found(object_id)
        return found

    def find_applications(self, terms: list[Term]) -> list[AppRegistration]:
        return [a for a in self.applications() if all(t.holds(self._app_values(a)) for t in terms)]

    @staticmethod
    def _app_values(app: AppRegistration) -> dict[str, Any]:
        return {"appid": app.client_id, "displayname": app.display_name, "id": app.object_id}

    def create_application(self, body: dict[str, Any]) -> AppRegistration:
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise errors.invalid_property("displayName", "Application")
        app = AppRegistration(client_id=new_guid(), principal_id="", tenant_id=self.world.tenant_id,
                              display_name=name, created_at=self.clock())
        self.world.apps[app.client_id] = app
        return app

    def update_application(self, app: AppRegistration, body: dict[str, Any]) -> None:
        if "displayName" in body:
            name = body["displayName"]
            if not isinstance(name, str) or not name.strip():
                raise errors.invalid_property("displayName", "Application")
            app.display_name = name

    def delete_application(self, app: AppRegistration) -> None:
        """Deleting an application deletes its service principal too, each into deleted items; role assignments
        stay, naming the deleted service principal's object id (a restore brings them back to life)."""
        if app.has_service_principal:
            self._soft_delete_service_principal(app)
        self.world.apps.pop(app.client_id, None)
        self.world.deleted_items[app.object_id.lower()] = DeletedItem("application", app.object_id, app, self.clock())

    # ------------------------------------------------------------------ federated identity credentials
    def credentials(self, app: AppRegistration) -> list[FederatedCredential]:
        return sorted(app.federated_credentials.values(), key=lambda c: (c.created_at, c.credential_id))

    def credential(self, app: AppRegistration, id_or_name: str) -> FederatedCredential:
        for fic in app.federated_credentials.values():
            if fic.credential_id.lower() == id_or_name.lower() or fic.name == id_or_name:
                return fic
        raise errors.not_found(id_or_name)

    def add_credential(self, app: AppRegistration, body: dict[str, Any]) -> FederatedCredential:
        name = body.get("name")
        if not isinstance(name, str) or not FIC_NAME.match(name):
            raise errors.invalid_property("name", "FederatedIdentityCredential")
        issuer, subject, audiences, description = _credential_fields(body, required=True)
        if any(f.name.lower() == name.lower() for f in app.federated_credentials.values()):
            raise errors.fic_name_taken(name)
        if any(f.issuer == issuer and f.subject == subject for f in app.federated_credentials.values()):
            raise errors.fic_issuer_subject_taken(str(issuer), str(subject))
        if len(app.federated_credentials) >= FIC_LIMIT:
            raise errors.fic_limit(FIC_LIMIT)
        fic = FederatedCredential(name=name, issuer=str(issuer), subject=str(subject), audiences=list(audiences or []),
                                  description=description or "", created_at=self.clock())
        app.federated_credentials[name] = fic
        return fic

    def update_credential(self, app: AppRegistration, fic: FederatedCredential, body: dict[str, Any]) -> None:
        if "name" in body and body["name"] != fic.name:
            raise errors.invalid_property("name", "FederatedIdentityCredential")
        issuer, subject, audiences, description = _credential_fields(body, required=False)
        new_issuer, new_subject = issuer or fic.issuer, subject or fic.subject
        for other in app.federated_credentials.values():
            if other is not fic and other.issuer == new_issuer and other.subject == new_subject:
                raise errors.fic_issuer_subject_taken(new_issuer, new_subject)
        fic.issuer, fic.subject = new_issuer, new_subject
        if audiences is not None:
            fic.audiences = list(audiences)
        if description is not None:
            fic.description = description
        fic.created_at = self.clock()  # a changed credential propagates like a new one

    def delete_credential(self, app: AppRegistration, fic: FederatedCredential) -> None:
        app.federated_credentials.pop(fic.name, None)

    # ------------------------------------------------------------------ service principals
    def service_principals(self) -> list[Principal]:
        apps: list[Principal] = [a for a in self.world.apps.values() if a.has_service_principal]
        everything = apps + list(self.world.identities.values()) + [self.world.graph_service_principal]
        return sorted(everything, key=lambda p: p.principal_id)

    def service_principal(self, object_id: str | None = None, app_id: str | None = None) -> Principal:
        if app_id is not None:
            found = next((p for p in self.service_principals() if p.client_id.lower() == app_id.lower()), None)
            if found is None:
                raise errors.not_found(app_id)
            return found
        assert object_id is not None
        require_guid(object_id)
        found = next((p for p in self.service_principals() if p.principal_id.lower() == object_id.lower()), None)
        if found is None:
            raise errors.not_found(object_id)
        return found

    def find_service_principals(self, terms: list[Term]) -> list[Principal]:
        return [p for p in self.service_principals() if all(t.holds(self._sp_values(p)) for t in terms)]

    @staticmethod
    def _sp_values(principal: Principal) -> dict[str, Any]:
        return {"appid": principal.client_id, "displayname": principal.display_name, "id": principal.principal_id,
                "serviceprincipalname": service_principal_names(principal)}

    def create_service_principal(self, body: dict[str, Any]) -> AppRegistration:
        app_id = body.get("appId")
        if not isinstance(app_id, str) or not app_id:
            raise errors.invalid_property("appId", "ServicePrincipal")
        app = next((a for a in self.world.apps.values() if a.client_id.lower() == app_id.lower()), None)
        if app is None:
            raise errors.no_backing_application()
        if app.has_service_principal:
            raise errors.service_principal_name_taken(app_id)
        app.principal_id = new_guid()
        app.service_principal_created_at = self.clock()
        app.service_principal_enabled = True
        return app

    def update_service_principal(self, principal: Principal, body: dict[str, Any]) -> None:
        """PATCH: the lab models accountEnabled of an application's service principal; other properties it
        does not keep are accepted and ignored, as they change nothing Entra decides on here."""
        if "accountEnabled" in body:
            enabled = body["accountEnabled"]
            if not isinstance(enabled, bool):
                raise errors.invalid_property("accountEnabled", "ServicePrincipal")
            if not isinstance(principal, AppRegistration):
                # [UNV] ARM owns a managed identity's service principal; Microsoft owns its first-party ones
                raise errors.insufficient_privileges()
            principal.service_principal_enabled = enabled

    def delete_service_principal(self, principal: Principal) -> None:
        if not isinstance(principal, AppRegistration):
            # [UNV] Graph refuses to delete a managed identity's service principal (ARM owns its lifecycle), and
            # the lab keeps Microsoft Graph's own
            raise errors.insufficient_privileges()
        self._soft_delete_service_principal(principal)

    def _soft_delete_service_principal(self, app: AppRegistration) -> None:
        self.world.deleted_items[app.principal_id.lower()] = DeletedItem(
            "servicePrincipal", app.principal_id, app, self.clock(), app.service_principal_enabled,
            frozenset(app.graph_permissions))
        app.principal_id = ""
        app.graph_permissions = set()  # the deleted service principal's: a new one for the app holds none

    # ------------------------------------------------------------------ app role assignments (admin consent)
    def app_role_assignments(self, principal: Principal) -> list[tuple[str, str]]:
        """(assignment id, app role id) of Microsoft Graph's app roles granted to ``principal``."""
        roles = self.world.graph_service_principal.app_roles
        return [(assignment_id(principal.principal_id, roles[name]), roles[name])
                for name in sorted(principal.graph_permissions) if name in roles]

    def assign_app_role(self, principal: Principal, body: dict[str, Any]) -> str:
        """POST /servicePrincipals/{id}/appRoleAssignments: {principalId (this one), resourceId, appRoleId}."""
        graph = self.world.graph_service_principal
        if isinstance(principal, FirstPartyServicePrincipal):
            raise errors.insufficient_privileges()  # [UNV]
        for name in ("principalId", "resourceId", "appRoleId"):
            if not isinstance(body.get(name), str) or not GUID.match(body[name]):
                raise errors.invalid_property(name, "AppRoleAssignment")
        if body["principalId"].lower() != principal.principal_id.lower():
            raise errors.invalid_property("principalId", "AppRoleAssignment")  # [UNV] text
        if body["resourceId"].lower() != graph.principal_id.lower():
            raise errors.not_found(body["resourceId"])  # the lab models Microsoft Graph's app roles only
        name = next((n for n, role in graph.app_roles.items() if role.lower() == body["appRoleId"].lower()), None)
        if name is None:
            raise errors.app_role_not_found()
        if name in principal.graph_permissions:
            raise errors.app_role_assigned()
        principal.graph_permissions.add(name)
        return assignment_id(principal.principal_id, graph.app_roles[name])

    def unassign_app_role(self, principal: Principal, identifier: str) -> None:
        for found, role in self.app_role_assignments(principal):
            if found == identifier:
                name = next(n for n, r in self.world.graph_service_principal.app_roles.items() if r == role)
                principal.graph_permissions.discard(name)
                return
        raise errors.not_found(identifier)

    # ------------------------------------------------------------------ deleted items
    def deleted_items(self, kind: str, terms: list[Term]) -> list[DeletedItem]:
        """The deleted applications or service principals (``kind``) still in deleted items, oldest first."""
        found = [i for i in self._live_deleted_items() if i.kind.lower() == kind.lower()]
        return [i for i in found if all(t.holds(self._deleted_values(i)) for t in terms)]

    def deleted_item(self, object_id: str) -> DeletedItem:
        require_guid(object_id)
        found = next((i for i in self._live_deleted_items() if i.object_id.lower() == object_id.lower()), None)
        if found is None:
            raise errors.not_found(object_id)
        return found

    def _live_deleted_items(self) -> list[DeletedItem]:
        """Items deleted within the last 30 days; older ones are gone for good."""
        horizon = self.clock() - DELETED_ITEM_DAYS * 86400
        for key, item in list(self.world.deleted_items.items()):
            if item.deleted_at < horizon:
                del self.world.deleted_items[key]
        return sorted(self.world.deleted_items.values(), key=lambda i: (i.deleted_at, i.object_id))

    @staticmethod
    def _deleted_values(item: DeletedItem) -> dict[str, Any]:
        names = [item.app.client_id] if item.kind == "servicePrincipal" else []
        return {"appid": item.app.client_id, "displayname": item.app.display_name, "id": item.object_id,
                "serviceprincipalname": names}

    def restore(self, item: DeletedItem) -> None:
        """POST /directory/deletedItems/{id}/restore: the object comes back with its object id (an application
        with its appId and federated credentials; a service principal onto its application, which must be there
        and have no other service principal)."""
        if item.kind == "application":
            if item.app.client_id in self.world.apps:  # unverified: text; an appId is unique in the tenant
                raise errors.restore_conflict(item.object_id)
            self.world.apps[item.app.client_id] = item.app
        else:
            app = self.world.apps.get(item.app.client_id)
            if app is not item.app:  # unverified: text; its application is itself deleted (restore that first)
                raise errors.restore_without_application(item.object_id)
            if app.has_service_principal:  # unverified: text; a new service principal was made for the app
                raise errors.restore_conflict(item.object_id)
            app.principal_id = item.object_id
            app.service_principal_enabled = item.service_principal_enabled
            app.graph_permissions = set(item.graph_permissions)
        del self.world.deleted_items[item.object_id.lower()]

    def purge(self, item: DeletedItem) -> None:
        """DELETE /directory/deletedItems/{id}: gone for good."""
        del self.world.deleted_items[item.object_id.lower()]

    # ------------------------------------------------------------------ directoryObjects/getByIds
    def get_by_ids(self, ids: list[str], types: list[str]) -> list[Principal | tuple[str, AppRegistration]]:
        """Service principals (and, when asked for, applications) with these object ids, in the order asked.
        Applications come back as ("application", app) so the renderer can tell the two faces of an app apart."""
        wanted_types = {t.lower() for t in types} or {"serviceprincipal", "application", "user", "group"}
        found: list[Principal | tuple[str, AppRegistration]] = []
        for identifier in ids:
            require_guid(identifier)
            if "serviceprincipal" in wanted_types:
                principal = next((p for p in self.service_principals()
                                  if p.principal_id.lower() == identifier.lower()), None)
                if principal is not None:
                    found.append(principal)
                    continue
            if "application" in wanted_types:
                app = next((a for a in self.world.apps.values() if a.object_id.lower() == identifier.lower()), None)
                if app is not None:
                    found.append(("application", app))
        return found


def _credential_fields(body: dict[str, Any], required: bool) -> tuple[str | None, str | None, list[str] | None,
                                                                       str | None]:
    values: dict[str, Any] = {}
    for name in ("issuer", "subject"):
        value = body.get(name)
        if value is None and not required:
            values[name] = None
            continue
        if not isinstance(value, str) or not value or len(value) > FIC_FIELD_LIMIT:
            raise errors.invalid_property(name, "FederatedIdentityCredential")
        values[name] = value
    audiences = body.get("audiences")
    if (audiences is not None or required) and not _one_audience(audiences):
        raise errors.invalid_property("audiences", "FederatedIdentityCredential")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > FIC_FIELD_LIMIT):
        raise errors.invalid_property("description", "FederatedIdentityCredential")
    return values["issuer"], values["subject"], audiences, description


def _one_audience(audiences: Any) -> bool:
    """Graph takes exactly one audience, as ARM does for managed identities."""
    return (isinstance(audiences, list) and len(audiences) == 1 and isinstance(audiences[0], str)
            and 0 < len(audiences[0]) <= FIC_FIELD_LIMIT)


def assignment_id(principal_id: str, app_role_id: str) -> str:
    """An app role assignment's id: Graph's are URL-safe base64 strings that begin with the principal's object id
    (its GUID's bytes); the lab makes the rest from the app role so one id names one grant. # unverified: the
    exact derivation of the rest"""
    raw = uuid.UUID(principal_id).bytes_le + hashlib.sha256(app_role_id.lower().encode()).digest()[:16]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
