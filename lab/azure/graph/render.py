"""Graph v1.0 JSON shapes of applications, service principals and federated identity credentials, as real
answers carry them (property set and order from azure-cli's recorded Graph traffic, e.g.
role/tests/latest/recordings/test_app_federated_credential.yaml)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lab.azure.world import (
    AppRegistration,
    FederatedCredential,
    FirstPartyServicePrincipal,
    ManagedIdentity,
    Principal,
)

# The "Microsoft Services" tenant owns first-party apps, managed identities' included (OBS in AADSTS7000229
# reports and Graph answers for managed identities).
MICROSOFT_SERVICES_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def federated_credential(fic: FederatedCredential) -> dict[str, Any]:
    return {"id": fic.credential_id, "name": fic.name, "issuer": fic.issuer, "subject": fic.subject,
            "description": fic.description or None, "audiences": list(fic.audiences)}


def _password_credentials(app: AppRegistration) -> list[dict[str, Any]]:
    # Graph shows a secret's first three characters as its hint and never its value after creation.
    return [{"customKeyIdentifier": None, "displayName": None, "endDateTime": None, "hint": value[:3],
             "keyId": key_id, "secretText": None, "startDateTime": timestamp(app.created_at)}
            for key_id, value in app.client_secrets.items()]


def application(app: AppRegistration, publisher_domain: str) -> dict[str, Any]:
    return {
        "id": app.object_id,
        "deletedDateTime": None,
        "appId": app.client_id,
        "applicationTemplateId": None,
        "disabledByMicrosoftStatus": None,
        "createdDateTime": timestamp(app.created_at),
        "displayName": app.display_name,
        "description": None,
        "groupMembershipClaims": None,
        "identifierUris": [],
        "isDeviceOnlyAuthSupported": None,
        "isFallbackPublicClient": None,
        "notes": None,
        "publisherDomain": publisher_domain,
        "serviceManagementReference": None,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "tokenEncryptionKeyId": None,
        "defaultRedirectUri": None,
        "certification": None,
        "optionalClaims": None,
        "addIns": [],
        "api": {"acceptMappedClaims": None, "knownClientApplications": [], "requestedAccessTokenVersion": None,
                "oauth2PermissionScopes": [], "preAuthorizedApplications": []},
        "appRoles": [],
        "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None, "supportUrl": None,
                 "termsOfServiceUrl": None},
        "keyCredentials": [],
        "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
        "passwordCredentials": _password_credentials(app),
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
        "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": [],
                "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False}},
        "spa": {"redirectUris": []},
    }


def service_principal(principal: Principal, names: list[str]) -> dict[str, Any]:
    body = _service_principal(principal, names)
    if isinstance(principal, FirstPartyServicePrincipal):  # Microsoft Graph: its app roles, Microsoft's tenant
        body.update({"appDisplayName": principal.display_name, "appOwnerOrganizationId": principal.tenant_id,
                     "appRoles": [{"allowedMemberTypes": ["Application"], "description": name,
                                   "displayName": name, "id": role, "isEnabled": True, "origin": "Application",
                                   "value": name} for name, role in sorted(principal.app_roles.items())]})
    return body


def _service_principal(principal: Principal, names: list[str]) -> dict[str, Any]:
    managed = isinstance(principal, ManagedIdentity)
    created = (principal.service_principal_created_at if isinstance(principal, AppRegistration)
               else principal.created_at)
    return {
        "id": principal.principal_id,
        "deletedDateTime": None,
        "accountEnabled": principal.service_principal_enabled if isinstance(principal, AppRegistration) else True,
        "alternativeNames": ["isExplicit=True", principal.resource_id] if managed else [],
        "appDisplayName": None if managed else principal.display_name,
        "appDescription": None,
        "appId": principal.client_id,
        "applicationTemplateId": None,
        "appOwnerOrganizationId": MICROSOFT_SERVICES_TENANT if managed else principal.tenant_id,
        "appRoleAssignmentRequired": False,
        "createdDateTime": timestamp(created),
        "description": None,
        "disabledByMicrosoftStatus": None,
        "displayName": principal.display_name,
        "homepage": None,
        "loginUrl": None,
        "logoutUrl": None,
        "notes": None,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None,
        "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": [],
        "servicePrincipalNames": names,
        "servicePrincipalType": "ManagedIdentity" if managed else "Application",
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "tokenEncryptionKeyId": None,
        "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None, "supportUrl": None,
                 "termsOfServiceUrl": None},
        "samlSingleSignOnSettings": None,
        "addIns": [],
        "appRoles": [],
        "keyCredentials": [],
        "oauth2PermissionScopes": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
    }
