"""ARM error answers with the texts the real service gives.

Sources: /work/shared/reference/entra-keyvault-arm-wire-formats.md section 5 and the MSI federated
identity credential error table (workload-identity-federation-considerations). Texts marked [UNV] are
plausible but not confirmed against a real answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

ARM_ALLOWED_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)
RESOURCE_NOT_FOUND_HELP = "For more details please go to https://aka.ms/ARMResourceNotFoundFix"


@dataclass
class ArmError(Exception):
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    details: list[dict[str, Any]] | None = None

    def body(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def _challenge(authority: str, description: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": (
            f'Bearer authorization_uri="{authority}", error="invalid_token", '
            f'error_description="{description}"'
        ),
        "x-ms-failure-cause": "gateway",
    }


# -- authentication (401)
def authentication_missing(authority: str) -> ArmError:
    return ArmError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
        _challenge(authority, "The authentication failed because of missing 'Authorization' header."),
    )


def authentication_bad_format(authority: str) -> ArmError:
    message = "Authentication failed. The 'Authorization' header is provided in an invalid format."
    return ArmError(401, "AuthenticationFailed", message, _challenge(authority, message))


def invalid_token(authority: str) -> ArmError:
    message = "The access token is invalid."
    return ArmError(401, "InvalidAuthenticationToken", message, _challenge(authority, message))


def expired_token(authority: str, expiry: str, now: str) -> ArmError:
    message = f"The access token expiry UTC time '{expiry}' is earlier than current UTC time '{now}'."
    return ArmError(401, "ExpiredAuthenticationToken", message, _challenge(authority, message))


def wrong_audience(authority: str, audience: str) -> ArmError:
    allowed = ",".join(f"'{a}'" for a in ARM_ALLOWED_AUDIENCES)
    message = (
        f"The access token has been obtained for wrong audience or resource '{audience}'. It should exactly "
        f"match with one of the allowed audiences {allowed}."
    )
    return ArmError(401, "InvalidAuthenticationTokenAudience", message, _challenge(authority, message))


def wrong_tenant(authority_host: str, issuer: str, tenant_id: str) -> ArmError:
    message = (
        f"The access token is from the wrong issuer '{issuer}'. It must match the tenant "
        f"'https://sts.windows.net/{tenant_id}/' associated with this subscription. Please use the authority "
        f"(URL) '{authority_host}{tenant_id}' to get the token. Note, if the subscription is transferred to "
        "another tenant there is no impact to the services, but information about new tenant could take "
        "time to propagate (up to an hour). If you just transferred your subscription and see this error "
        "message, please try back later."
    )
    return ArmError(
        401, "InvalidAuthenticationTokenTenant", message, _challenge(f"{authority_host}{tenant_id}", message)
    )


# -- authorization (403)
def authorization_failed(object_id: str, action: str, scope: str) -> ArmError:
    return ArmError(
        403,
        "AuthorizationFailed",
        (
            f"The client '{object_id}' with object id '{object_id}' does not have authorization to perform "
            f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
            "granted, please refresh your credentials."
        ),
    )


# -- request shape (400)
def missing_api_version() -> ArmError:
    return ArmError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )


def invalid_request_content(detail: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: '{detail}'.",
    )


def request_content_too_large() -> ArmError:
    """Bodies over ARM's 4 MB request limit; text as users report it (Azure/ALZ-Bicep#833,
    Azure/azure-api-management-devops-resource-kit#594). The 413 status is [UNV]."""
    return ArmError(413, "RequestContentTooLarge", "The request content size exceeds the maximum size of 4 MB.")


def location_required() -> ArmError:
    return ArmError(400, "LocationRequired", "The location property is required for this definition.")


def invalid_resource_name(name: str) -> ArmError:  # [UNV] exact text
    return ArmError(
        400,
        "InvalidResourceName",
        f"Resource name {name} is invalid. The name can be up to 128 characters long. It can contain only "
        "alphanumeric characters, hyphens, and underscores. "
        "The first character must be alphanumeric.",
    )


def invalid_location_change(name: str, old: str, rg: str, new: str) -> ArmError:
    return ArmError(
        400,
        "InvalidResourceLocation",
        (
            f"The resource '{name}' already exists in location '{old}' in resource group '{rg}'. A resource "
            f"with the same name cannot be created in location '{new}'. Please select a new resource name."
        ),
    )


def unsupported_filter(text: str) -> ArmError:  # [UNV] code and text
    return ArmError(400, "UnsupportedQuery", f"The filter '{text}' is not supported.")


def invalid_filter(text: str) -> ArmError:
    """The generic resource list's answer to a ``$filter`` it does not understand (OBS azure-sdk-for-net#18748)."""
    return ArmError(400, "InvalidFilterInQueryString", f"Invalid $filter '{text}' specified in the query string.")


def _support_info(correlation_id: str, now: float) -> str:
    """Resource Graph's top-level message: what to quote to support (OBS Search-AzGraph / aztfexport reports)."""
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    ticks = int((now % 1) * 10_000_000)
    return (f"Please provide below info when asking for support: timestamp = {moment}.{ticks:07d}Z, "
            f"correlationId = {correlation_id}.")


def resource_graph_invalid_query(token: str, position: int, correlation_id: str, now: float,
                                 invalid_query_text: str) -> ArmError:
    """400 BadRequest with InvalidQuery and a ParserFailure naming the token (OBS 2020-2025 captures)."""
    return ArmError(400, "BadRequest", _support_info(correlation_id, now), details=[
        {"code": "InvalidQuery", "message": invalid_query_text},
        {"code": "ParserFailure", "message": "ParserFailure", "line": 1,
         "characterPositionInLine": position, "token": token},
    ])


def resource_graph_access_denied(correlation_id: str, now: float) -> ArmError:
    """403 AccessDenied: none of the requested scopes is readable by the caller (OBS Azure/aztfexport#410)."""
    return ArmError(403, "AccessDenied", _support_info(correlation_id, now), details=[
        {"code": "AccessDenied",
         "message": "Access is denied to the requested resource. The user might not have enough permission."},
    ])


def invalid_skip_token() -> ArmError:  # [UNV]
    return ArmError(400, "InvalidSkipToken", "The skip token is invalid.")


def method_not_allowed(method: str) -> ArmError:  # [UNV] exact text
    return ArmError(
        405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
    )


# -- existence (404)
def subscription_not_found(subscription_id: str) -> ArmError:
    return ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found.")


def resource_group_not_found(name: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")


def resource_not_found(type_and_name: str, resource_group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        (
            f"The Resource '{type_and_name}' under resource group '{resource_group}' was not found. "
            f"{RESOURCE_NOT_FOUND_HELP}"
        ),
    )


def invalid_resource_type(resource_type: str, namespace: str, api_version: str) -> ArmError:
    return ArmError(
        404,
        "InvalidResourceType",
        (
            f"The resource type '{resource_type}' could not be found in the namespace '{namespace}' for api "
            f"version '{api_version}'."
        ),
    )


def no_route(path: str) -> ArmError:  # [UNV] what ARM says for a URI it cannot parse
    return ArmError(404, "InvalidRequestUri", f"The request uri '{path}' is invalid.")


# -- federated identity credentials (MSI error table)
def fic_empty_properties() -> ArmError:
    return ArmError(400, "BadRequest", "Federated Identity Credential from HTTP body has empty properties")


def fic_invalid_name(name: str) -> ArmError:
    return ArmError(400, "BadRequest", f"Federated Identity Credential name '{name}' is invalid.")


def fic_audience_count() -> ArmError:
    # the code and text az prints for none or several (Azure/azure-cli#31598: az 2.74 sent no audience;
    # kubernetes-sigs/secrets-store-csi-driver#1840); unverified: the status, 400 as for the other FIC refusals
    return ArmError(400, "InvalidFederatedIdentityCredentialsAudienceLength",
                    "Federated identity credentials must have exactly 1 audience.")


def fic_duplicate() -> ArmError:
    return ArmError(
        400, "BadRequest", "Issuer and subject combination already exists for this Managed Identity."
    )


def fic_wildcard(field_name: str) -> ArmError:  # [UNV] text; the rule itself is documented
    return ArmError(
        400,
        "BadRequest",
        (
            f"Federated identity credential property '{field_name}' contains wildcard characters. Wildcard "
            "characters aren't supported in any federated identity credential property value."
        ),
    )


def fic_invalid_value(field_name: str, why: str) -> ArmError:  # [UNV]
    return ArmError(400, "BadRequest", f"Federated identity credential property '{field_name}' {why}.")


def fic_limit(limit: int) -> ArmError:  # [UNV] text; the limit is documented
    return ArmError(
        400,
        "BadRequest",
        (
            "Too many Federated Identity Credentials. A user-assigned managed identity can have at most "
            f"{limit} Federated Identity Credentials."
        ),
    )


def fic_parent_missing() -> ArmError:
    return ArmError(404, "NotFound", "The parent user-assigned identity doesn't exist.")


def fic_concurrent_write(identity_id: str) -> ArmError:
    return ArmError(
        409,
        "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
        (
            "Too many Federated Identity Credentials are written concurrently for the managed identity "
            f"'{identity_id}'. Concurrent Federated Identity Credentials writes under the same managed "
            "identity are not supported."
        ),
    )


# -- role assignments
def role_assignment_exists(existing_name: str) -> ArmError:
    return ArmError(
        409,
        "RoleAssignmentExists",
        (
            "The role assignment already exists. The ID of the existing role assignment is "
            f"{existing_name.replace('-', '')}."
        ),
    )


def role_assignment_not_found(name: str) -> ArmError:  # [UNV] text
    return ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")


def invalid_role_assignment_id(name: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRoleAssignmentId",
        f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
    )


def role_definition_missing(role_id: str) -> ArmError:
    return ArmError(
        400,
        "RoleDefinitionDoesNotExist",
        f"The specified role definition with ID '{role_id}' does not exist.",
    )


def role_definition_not_found(role_id: str) -> ArmError:  # GET of an unknown definition [UNV] text
    return ArmError(
        404,
        "RoleDefinitionDoesNotExist",
        f"The specified role definition with ID '{role_id}' does not exist.",
    )


def unmatched_principal_type(principal_id: str, actual: str, specified: str) -> ArmError:
    """ARM's text as deployments print it (azd's and Bicep users' logs, 2023-2025), the id without dashes, the
    space before the comma and the service's own misspelling "PrinciaplType" included."""
    return ArmError(
        400,
        "UnmatchedPrincipalType",
        (
            f"The PrincipalId '{principal_id.replace('-', '')}' has type '{actual}' , which is different from "
            f"specified PrinciaplType '{specified}'."
        ),
    )


def principal_type_not_supported(kind: str) -> ArmError:
    """A role assignment whose principalId is an application (app registration) object, not its service
    principal: ARM's text as az, PowerShell and Terraform users report it (Azure/azure-cli#5340,
    MicrosoftDocs/azure-docs#31896, almenscorner/intunecd-monitor#24 with the code PrincipalTypeNotSupported)."""
    return ArmError(400, "PrincipalTypeNotSupported",
                    f"Principals of type {kind} cannot validly be used in role assignments.")


def principal_not_found(principal_id: str, tenant_id: str) -> ArmError:
    return ArmError(
        400,
        "PrincipalNotFound",
        (
            f"Principal {principal_id.replace('-', '')} does not exist in the directory {tenant_id}. Check "
            "that you have the correct principal ID. If you are creating this principal and then "
            "immediately assigning a role, this error might be related to a replication delay. In this "
            "case, set the role assignment principalType property to a value, such as ServicePrincipal, "
            "User, or Group.  See https://aka.ms/docs-principaltype"
        ),
    )


def role_assignment_update_not_permitted() -> ArmError:
    return ArmError(
        400,
        "RoleAssignmentUpdateNotPermitted",
        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
    )


def invalid_body(message: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent", message)


def internal_error(subscription_id: str, tracking_id: str, correlation_id: str, now: float) -> ArmError:
    """ARM's answer when something behind it fails unexpectedly (here: a lab bug, logged in full)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return ArmError(
        500,
        "InternalServerError",
        f"Encountered internal server error. Diagnostic information: timestamp '{stamp}', subscription id "
        f"'{subscription_id}', tracking id '{tracking_id}', request correlation id '{correlation_id}'.",
    )


# -- throttling and outages (fault injection)
def throttled() -> ArmError:
    return ArmError(
        429,
        "TooManyRequests",
        (
            "The request is being throttled as the limit has been reached for operation type - "
            "Read_ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits"
        ),
    )


def unavailable() -> ArmError:  # [UNV] text
    return ArmError(
        503, "ServiceUnavailable", "The service is currently unavailable. Please try again later."
    )


def role_definition_name_exists() -> ArmError:  # [UNV] text; the code is what az and Terraform users report
    return ArmError(409, "RoleDefinitionWithSameNameExists",
                    "A custom role with the same name already exists in this directory. Use a different name.")


def role_definition_has_assignments() -> ArmError:  # [UNV] text
    return ArmError(409, "RoleDefinitionHasAssignments",
                    "There are existing role assignments referencing role. Delete them before deleting the role.")
