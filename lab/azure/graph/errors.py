"""Microsoft Graph's error answers: ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`` with the codes and texts the real service gives.

Sources (OBS: seen in real answers people pasted): Request_ResourceNotFound and its text (microsoftgraph docs
issues #3539, #6431), Authorization_RequestDenied (many), InvalidAuthenticationToken "Access token validation
failure. Invalid audience." (microsoft-graph-docs #16208), Request_MultipleObjectsWithSameKeyValue for a federated
credential name (Azure/azure-dev#1482) and a service principal name (hashicorp/terraform-provider-azuread reports),
InvalidFederatedIdentityCredentialValue (Azure/azure-workload-identity#434), NoBackingApplicationObject
(AAD Graph era). ``[UNV]`` marks texts no capture settles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

NOT_FOUND_TEXT = "Resource '{id}' does not exist or one of its queried reference-property objects are not present."


@dataclass
class GraphError(Exception):
    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, request_id: str, client_request_id: str, now: datetime) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        # Graph's innerError date has whole seconds and no zone designator ("2023-02-02T21:29:38").
        error["innerError"] = {"date": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                               "request-id": request_id, "client-request-id": client_request_id}
        return {"error": error}


# -- authentication (401) and authorization (403)
def token_missing(authority: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", headers=challenge(authority))


def token_invalid(authority: str) -> GraphError:  # [UNV] the text for a token that does not validate at all
    return GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.",
                      headers=challenge(authority))


def token_wrong_audience(authority: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.",
                      headers=challenge(authority))


def token_expired(authority: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.",
                      headers=challenge(authority))


def challenge(authority: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="", authorization_uri="{authority}common/oauth2/authorize", '
                                f'client_id="00000003-0000-0000-c000-000000000000"'}


def insufficient_privileges() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


# -- the request itself
def not_found(identifier: str) -> GraphError:
    return GraphError(404, "Request_ResourceNotFound", NOT_FOUND_TEXT.format(id=identifier))


def invalid_object_id(identifier: str) -> GraphError:  # [UNV] text
    return GraphError(400, "Request_BadRequest", f"Invalid object identifier '{identifier}'.")


def unknown_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def method_not_allowed() -> GraphError:  # [UNV] text
    return GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")


def unsupported_query() -> GraphError:  # [UNV] for a $filter Graph cannot evaluate
    return GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")


def invalid_body(detail: str) -> GraphError:  # [UNV] text
    return GraphError(400, "BadRequest", f"Unable to read JSON request payload. {detail}")


def request_too_large() -> GraphError:  # [UNV] code and text
    return GraphError(413, "Request_RequestTooLarge", "The request is larger than the service accepts.")


def invalid_property(property_name: str, resource: str) -> GraphError:  # [UNV] exact text
    return GraphError(400, "Request_BadRequest",
                      f"Invalid value specified for property '{property_name}' of resource '{resource}'.")


def unknown_property(name: str, entity: str) -> GraphError:  # [UNV] code and text for a bad $select/$expand
    return GraphError(400, "BadRequest",
                      f"Could not find a property named '{name}' on type 'microsoft.graph.{entity}'.")


# -- federated identity credentials
def fic_name_taken(name: str) -> GraphError:
    return GraphError(409, "Request_MultipleObjectsWithSameKeyValue",
                      f"FederatedIdentityCredential with name {name} already exists.")


def fic_issuer_subject_taken(issuer: str, subject: str) -> GraphError:
    return GraphError(400, "InvalidFederatedIdentityCredentialValue", (
        f"The combination of issuer and subject must be unique for the application. Issuer {issuer} and Subject: "
        f"{subject} already exist. paramName: FederatedIdentityCredential.Subject, paramValue: {subject}, "
        "objectType: Microsoft.Online.DirectoryServices.Application"))


def fic_limit(limit: int) -> GraphError:  # [UNV] text; the limit (20 per application) is documented
    return GraphError(400, "Request_BadRequest",
                      f"The number of federated identity credentials on the application exceeds the limit of {limit}.")


# -- service principals
def no_backing_application() -> GraphError:
    return GraphError(400, "Request_BadRequest",
                      "The appId of the service principal does not reference a valid application object.",
                      details=[{"code": "NoBackingApplicationObject", "target": "appId"}])


def service_principal_name_taken(app_id: str) -> GraphError:
    return GraphError(409, "Request_MultipleObjectsWithSameKeyValue",
                      "The service principal cannot be created, updated, or restored because the service principal "
                      f"name {app_id} is already in use.")


# -- the lab itself
def internal_error() -> GraphError:  # [UNV] code and text
    return GraphError(500, "UnknownError", "An internal server error occurred.")


def throttled(retry_after: int) -> GraphError:  # [UNV] text
    return GraphError(429, "TooManyRequests", "Too many requests.", headers={"Retry-After": str(retry_after)})


def unavailable(retry_after: int) -> GraphError:  # [UNV] code and text
    return GraphError(503, "ServiceNotAvailable", "The service is temporarily unavailable.",
                      headers={"Retry-After": str(retry_after)})


# -- deleted items
def restore_conflict(identifier: str) -> GraphError:  # [UNV] text: an object with its key exists again
    return GraphError(400, "Request_BadRequest",
                      f"The object '{identifier}' cannot be restored: an object with the same key already exists.")


def restore_without_application(identifier: str) -> GraphError:  # [UNV] text: restore the application first
    return GraphError(400, "Request_BadRequest",
                      f"The service principal '{identifier}' cannot be restored: its application is deleted.")


def cast_required() -> GraphError:  # [UNV] text; "calling GET /directory/deleteditems without a type is not supported"
    return GraphError(400, "Request_BadRequest",
                      "The OData cast type (microsoft.graph.application, microsoft.graph.servicePrincipal, ...) is "
                      "a required part of the URI.")


# -- app role assignments
def app_role_not_found() -> GraphError:  # [UNV] text, as people quote it for an appRoleId the resource lacks
    return GraphError(400, "Request_BadRequest", "Permission being assigned was not found on application.")


def app_role_assigned() -> GraphError:  # [UNV] text, as people quote it for a grant made twice
    return GraphError(400, "Request_BadRequest", "Permission being assigned already exists on the object")
