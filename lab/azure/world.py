"""The Azure side of the lab as plain data: the directory (tenants, identities, app registrations and their
service principals), subscriptions and their ARM resources, role definitions and assignments, Key Vault
contents and blobs.

Entra, ARM, Key Vault and Storage are HTTP faces over this one model, so a change made through ARM
(a federated credential, a role assignment) is what Entra and Key Vault see next.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lab.azure.metadata_cache import IssuerMetadataCache

KEYVAULT_AUDIENCE = "https://vault.azure.net"
STORAGE_AUDIENCE = "https://storage.azure.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


def new_guid() -> str:
    return str(uuid.uuid4())


@dataclass
class Tenant:
    tenant_id: str
    display_name: str
    default_domain: str


@dataclass
class Subscription:
    subscription_id: str
    display_name: str
    tenant_id: str

    @property
    def resource_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}"


@dataclass
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: list[str]
    description: str = ""
    created_at: float = field(default_factory=time.time)  # when last written: propagation starts over then
    credential_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # Microsoft Graph's id for it
    first_created_at: float | None = None  # ARM's systemData.createdAt, when an update re-stamped created_at


@dataclass
class Principal:
    """What Entra can issue a token to: a managed identity or an app registration's service principal."""

    client_id: str
    principal_id: str  # object id of the service principal; "" for an app registration that has none yet
    tenant_id: str
    display_name: str
    federated_credentials: dict[str, FederatedCredential] = field(default_factory=dict)
    # Application permissions on Microsoft Graph an admin consented to (the token's "roles" for Graph).
    graph_permissions: set[str] = field(default_factory=set)
    created_at: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        raise NotImplementedError


@dataclass
class ManagedIdentity(Principal):
    subscription_id: str = ""
    resource_group: str = ""
    location: str = "eastus"
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "ManagedIdentity"

    @property
    def name(self) -> str:
        return self.display_name

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{self.display_name}"
        )


@dataclass
class AppRegistration(Principal):
    """An application object (Graph ``id`` = ``object_id``, ``appId`` = ``client_id``) and, once created, its
    service principal in the home tenant (``principal_id``). Entra issues tokens only to the service principal."""

    # secret id -> secret value. Values never leave the lab except to the party that created them.
    client_secrets: dict[str, str] = field(default_factory=dict)
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    service_principal_created_at: float = field(default_factory=time.time)
    # the service principal's accountEnabled (Graph PATCH; "Disabled" in the portal): Entra issues it no token
    service_principal_enabled: bool = True

    @property
    def kind(self) -> str:
        return "ServicePrincipal"

    @property
    def has_service_principal(self) -> bool:
        return bool(self.principal_id)

    def add_secret(self) -> str:
        return self.add_secret_with_id()[1]

    def add_secret_with_id(self) -> tuple[str, str]:
        """A new client secret: (its keyId, its value)."""
        key_id, value = new_guid(), secrets.token_urlsafe(30)
        self.client_secrets[key_id] = value
        return key_id, value


# Microsoft Graph's application permissions (app roles) the lab models: name -> app role id, as Graph's permissions
# reference lists them (GET servicePrincipals(appId='00000003-0000-0000-c000-000000000000')?$select=appRoles)
GRAPH_APP_ROLES = {
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
}
MICROSOFT_SERVICES_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # owner of first-party apps (Microsoft Graph)


@dataclass
class FirstPartyServicePrincipal(Principal):
    """A Microsoft application's service principal in the tenant (Microsoft Graph's): the resource whose app roles
    are assigned to the tenant's principals (application permissions, admin consent). Entra issues it no token."""

    app_roles: dict[str, str] = field(default_factory=dict)  # name -> app role id

    @property
    def kind(self) -> str:
        return "ServicePrincipal"


def _graph_service_principal() -> FirstPartyServicePrincipal:
    return FirstPartyServicePrincipal(client_id=GRAPH_APP_ID, principal_id=new_guid(),
                                      tenant_id=MICROSOFT_SERVICES_TENANT, display_name="Microsoft Graph",
                                      app_roles=dict(GRAPH_APP_ROLES))


@dataclass
class DeletedItem:
    """A soft-deleted application or service principal in Graph's deleted items: restorable with its object id
    (and so its role assignments, which name that id) for 30 days. An application's service principal is deleted
    with it, as an item of its own; restoring the application does not restore it (Graph's "Restore deleted
    item" documentation)."""

    kind: str  # "application" | "servicePrincipal"
    object_id: str  # the application's object id, or the service principal's
    app: AppRegistration
    deleted_at: float
    service_principal_enabled: bool = True  # a service principal's accountEnabled when it was deleted
    # the app roles (Microsoft Graph's application permissions) granted to the deleted service principal: an
    # appRoleAssignment names the service principal's object id (its principalId), so a new service principal made
    # for the app holds none of them, and a restore brings them back with the object id ("recover the service
    # principal's previous configurations", learn.microsoft.com, Restore a soft deleted enterprise application)
    graph_permissions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RoleDefinition:
    role_id: str  # the GUID
    role_name: str
    description: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    # a custom role (az role definition create): its assignable scopes and when it was made; built-ins have neither
    custom: bool = False
    assignable_scopes: tuple[str, ...] = ("/",)
    created_on: str | None = None
    # a built-in role's own ABAC condition (its permissions' condition, conditionVersion 2.0), shown as ARM shows it
    condition: str | None = None

    def resource_id(self, subscription_id: str) -> str:
        return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{self.role_id}"


def _wildcard_match(pattern: str, action: str) -> bool:
    pattern, action = pattern.lower(), action.lower()
    if pattern == "*":
        return True
    if "*" not in pattern:
        return pattern == action
    prefix, _, suffix = pattern.partition("*")
    return action.startswith(prefix) and action.endswith(suffix) and len(action) >= len(prefix) + len(suffix)


def role_permits(role: RoleDefinition, action: str, data_action: bool) -> bool:
    allowed, denied = (role.data_actions, role.not_data_actions) if data_action else (role.actions, role.not_actions)
    return any(_wildcard_match(p, action) for p in allowed) and not any(_wildcard_match(p, action) for p in denied)


# the control-plane actions the Key Vault data roles (Secrets Officer, Reader, Administrator) share, as the built-in
# roles reference lists them for each
_KEY_VAULT_DATA_ROLE_ACTIONS = (
    "Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read", "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read",
)

# the roles Key Vault Data Access Administrator may assign and unassign: Key Vault Administrator, Certificates
# Officer, Crypto Officer, Crypto Service Encryption User, Crypto User, Reader, Secrets Officer, Secrets User
_KEY_VAULT_DATA_ROLE_IDS = (
    "00482a5a-887f-4fb3-b363-3b7fe8e74483, a4417e6f-fecd-4de8-b567-7b0420556985, 14b46e9e-c2b7-41b4-b07b-48a6ebf60603, "
    "e147488a-f6f5-4113-8e2d-b22465e65bf6, 12338af0-0e69-4776-bea7-57ae8d297424, 21090545-7ca7-4776-b22c-e363652d74d2, "
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7, 4633458b-17de-408a-b874-0445c86b69e6"
)
_KEY_VAULT_DATA_ACCESS_CONDITION = (
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
    "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals{"
    + _KEY_VAULT_DATA_ROLE_IDS + "})) AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
    "(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals{"
    + _KEY_VAULT_DATA_ROLE_IDS + "}))"
)

# Built-in roles with their real ids and permissions (Azure built-in roles reference).
BUILTIN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", "Grants full access to manage all resources, "
                   "including the ability to assign roles in Azure RBAC.", actions=("*",)),
    RoleDefinition("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor", "Grants full access to manage all "
                   "resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure "
                   "Blueprints, or share image galleries.", actions=("*",),
                   not_actions=("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                                "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
                                "Microsoft.Blueprint/blueprintAssignments/delete",
                                "Microsoft.Compute/galleries/share/action",
                                "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete")),
    RoleDefinition("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", "View all resources, but does not allow you "
                   "to make any changes.", actions=("*/read",)),
    RoleDefinition("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator", "Lets you manage user "
                   "access to Azure resources.", actions=("*/read", "Microsoft.Authorization/*",
                                                          "Microsoft.Support/*")),
    RoleDefinition("4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User", "Read secret contents. Only "
                   "works for key vaults that use the 'Azure role-based access control' permission model.",
                   data_actions=("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                                 "Microsoft.KeyVault/vaults/secrets/readMetadata/action")),
    RoleDefinition("b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Key Vault Secrets Officer", "Perform any action on "
                   "the secrets of a key vault, except manage permissions. Only works for key vaults that use "
                   "the 'Azure role-based access control' permission model.",
                   actions=_KEY_VAULT_DATA_ROLE_ACTIONS,
                   data_actions=("Microsoft.KeyVault/vaults/secrets/*",)),
    RoleDefinition("21090545-7ca7-4776-b22c-e363652d74d2", "Key Vault Reader", "Read metadata of key vaults and "
                   "its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or "
                   "key material. Only works for key vaults that use the 'Azure role-based access control' "
                   "permission model.",
                   actions=_KEY_VAULT_DATA_ROLE_ACTIONS,
                   data_actions=("Microsoft.KeyVault/vaults/*/read",
                                 "Microsoft.KeyVault/vaults/secrets/readMetadata/action")),
    # learn.microsoft.com built-in roles (security): Key Vault Contributor manages vaults, with no data action (it
    # may change a vault's access policies, not read a secret under RBAC); Key Vault Administrator, every data action
    RoleDefinition("f25e0fa2-a7c8-4377-a976-54943a77a395", "Key Vault Contributor", "Lets you manage key vaults, "
                   "but not access to them.",
                   actions=("Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.KeyVault/*",
                            "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
                            "Microsoft.Support/*"),
                   not_actions=("Microsoft.KeyVault/locations/deletedVaults/purge/action",
                                "Microsoft.KeyVault/hsmPools/*", "Microsoft.KeyVault/managedHsms/*")),
    # learn.microsoft.com built-in roles (storage): manages accounts, no data action; its listKeys action
    # (Microsoft.Storage/storageAccounts/*) gives keys that read all data, which the lab's storage does not serve
    RoleDefinition("17d1049b-9a84-46fb-8f53-869881c3d3ab", "Storage Account Contributor", "Lets you manage storage "
                   "accounts, including accessing storage account keys which provide full access to storage account "
                   "data.",
                   actions=("Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
                            "Microsoft.Insights/diagnosticSettings/*",
                            "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
                            "Microsoft.ResourceHealth/availabilityStatuses/read", "Microsoft.Resources/deployments/*",
                            "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Storage/storageAccounts/*",
                            "Microsoft.Support/*")),
    RoleDefinition("00482a5a-887f-4fb3-b363-3b7fe8e74483", "Key Vault Administrator", "Perform all data plane "
                   "operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot "
                   "manage key vault resources or manage role assignments. Only works for key vaults that use the "
                   "'Azure role-based access control' permission model.",
                   actions=_KEY_VAULT_DATA_ROLE_ACTIONS,
                   data_actions=("Microsoft.KeyVault/vaults/*",)),
    RoleDefinition("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1", "Storage Blob Data Reader", "Read and list Azure "
                   "Storage containers and blobs.",
                   actions=("Microsoft.Storage/storageAccounts/blobServices/containers/read",
                            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"),
                   data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",)),
    RoleDefinition("ba92f5b4-2d11-453d-a403-e96b0029c9fe", "Storage Blob Data Contributor", "Allows for read, write "
                   "and delete access to Azure Storage blob containers and data",
                   actions=("Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"),
                   data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
                                 "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
                                 "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
                                 "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
                                 "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action")),
    RoleDefinition("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Storage Blob Data Owner", "Allows for full access to "
                   "Azure Storage blob containers and data, including assigning POSIX access control.",
                   actions=("Microsoft.Storage/storageAccounts/blobServices/containers/*",
                            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"),
                   data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",)),
    # learn.microsoft.com built-in roles (privileged): role assignments written and deleted at its scope, any role
    RoleDefinition("f58310d9-a9f6-439a-9e8d-f62e7b41a168", "Role Based Access Control Administrator", "Manage access "
                   "to Azure resources by assigning roles using Azure RBAC. This role does not allow you to manage "
                   "access using other ways, such as Azure Policy.",
                   actions=("Microsoft.Authorization/roleAssignments/write",
                            "Microsoft.Authorization/roleAssignments/delete", "*/read", "Microsoft.Support/*")),
    # learn.microsoft.com built-in roles (security): role assignments of the eight Key Vault data roles (Key Vault
    # Administrator among them), as its condition says. The lab shows the condition and does not evaluate it: a
    # holder may assign any role at its scope here, where Azure refuses all but those eight
    RoleDefinition("8b54135c-b56d-4d72-a534-26097cfdc8d8", "Key Vault Data Access Administrator", "Manage access to "
                   "Azure Key Vault by adding or removing role assignments for the Key Vault Administrator, Key Vault "
                   "Certificates Officer, Key Vault Crypto Officer, Key Vault Crypto Service Encryption User, Key "
                   "Vault Crypto User, Key Vault Reader, Key Vault Secrets Officer, or Key Vault Secrets User roles. "
                   "Includes an ABAC condition to constrain role assignments.",
                   actions=("Microsoft.Authorization/roleAssignments/write",
                            "Microsoft.Authorization/roleAssignments/delete", "Microsoft.Authorization/*/read",
                            "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
                            "Microsoft.Resources/subscriptions/read", "Microsoft.Management/managementGroups/read",
                            "Microsoft.Resources/deployments/*", "Microsoft.Support/*",
                            "Microsoft.KeyVault/vaults/*/read"),
                   condition=_KEY_VAULT_DATA_ACCESS_CONDITION),
)


@dataclass
class RoleAssignment:
    name: str  # GUID
    scope: str
    role_definition_id: str  # full resource id
    principal_id: str
    principal_type: str = "ServicePrincipal"
    created_at: float = field(default_factory=time.time)
    # az role assignment create --condition C --condition-version 2.0 (ARM keeps and returns both)
    condition: str | None = None
    condition_version: str | None = None

    @property
    def resource_id(self) -> str:
        return f"{self.scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{self.name}"

    @property
    def role_guid(self) -> str:
        return self.role_definition_id.rstrip("/").rsplit("/", 1)[-1]


def group_key(subscription_id: str, name: str) -> str:
    return f"{subscription_id}/{name}".lower()


def subscription_of(scope: str) -> str | None:
    """The subscription id an ARM scope lies in (``/subscriptions/{id}/...``), or None above subscriptions."""
    parts = [p for p in scope.split("/") if p]
    return parts[1] if len(parts) >= 2 and parts[0].lower() == "subscriptions" else None


_ACTION_MATCHES = re.compile(r"ActionMatches\{'([^']*)'\}")
_RESOURCE_EXPRESSION = re.compile(
    r"@Resource\[([^\]]+)\]\s+(StringEqualsIgnoreCase|StringNotEquals|StringEquals|StringLike)\s+'([^']*)'")
_ATTRIBUTE_SEGMENT = {
    "microsoft.storage/storageaccounts:name": "storageaccounts",
    "microsoft.storage/storageaccounts/blobservices/containers:name": "containers",
}


def condition_holds(condition: str, action: str, resource: str) -> bool:
    """Whether an ABAC condition lets ``action`` on ``resource`` through, for the documented simple shape
    (learn.microsoft.com "Azure role assignment condition format and syntax"): ``( ( !(ActionMatches{'A'}) [AND
    !(ActionMatches{'B'})] ) OR ( <expression> [OR|AND <expression>] ) )``: true for an action the condition does
    not target, else the expressions. Expressions on the storage account's or container's name are evaluated;
    unverified: anything else (tags, request, principal or environment attributes) counts as not met."""
    targeted = _ACTION_MATCHES.findall(condition)
    if not any(_wildcard_match(pattern, action) for pattern in targeted):
        return True
    results = []
    for attribute, operator, value in _RESOURCE_EXPRESSION.findall(condition):
        segment = _ATTRIBUTE_SEGMENT.get(attribute.strip().lower())
        parts = resource.strip("/").split("/")
        lowered = [x.lower() for x in parts]
        if segment is None or segment not in lowered or lowered.index(segment) + 1 >= len(parts):
            results.append(False)
            continue
        actual = parts[lowered.index(segment) + 1]
        results.append({
            "StringEquals": actual == value,
            "StringEqualsIgnoreCase": actual.lower() == value.lower(),
            "StringNotEquals": actual != value,
            "StringLike": fnmatch.fnmatchcase(actual, value),
        }[operator])
    if not results:
        return False
    joined_by_and = re.search(r"'\s*\)*\s*AND\s*\(*\s*@", condition) is not None
    return all(results) if joined_by_and else any(results)


def scope_covers(assignment_scope: str, resource: str) -> bool:
    """True when ``assignment_scope`` is ``resource`` or one of its ancestors (ARM ids compare case-insensitively)."""
    scope = assignment_scope.rstrip("/").lower()
    target = resource.rstrip("/").lower()
    return scope in ("", "/") or target == scope or target.startswith(scope + "/")


@dataclass
class SecretVersion:
    version: str
    value: str
    content_type: str | None = None
    enabled: bool = True
    created: int = field(default_factory=lambda: int(time.time()))
    tags: dict[str, str] = field(default_factory=dict)
    # nbf / exp (unix seconds): Key Vault records them and does not enforce them on get (Azure/AzureKeyVault#19,
    # Altinn/altinn-studio#5029: an expired secret's GET answers 200)
    not_before: int | None = None
    expires: int | None = None
    updated: int | None = None


@dataclass
class DeletedSecret:
    """A soft-deleted secret (az keyvault secret delete): its versions kept until it is recovered or purged."""

    versions: list[SecretVersion]
    deleted_date: int
    scheduled_purge_date: int


@dataclass
class Vault:
    name: str
    subscription_id: str
    resource_group: str
    location: str
    tenant_id: str
    enable_rbac_authorization: bool = True
    # [{"tenantId","objectId","permissions":{"secrets":["get","list"],...}}]
    access_policies: list[dict[str, Any]] = field(default_factory=list)
    network_default_action: str = "Allow"
    public_network_access: str = "Enabled"
    ip_rules: list[str] = field(default_factory=list)
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)
    deleted_secrets: dict[str, DeletedSecret] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.KeyVault/vaults/{self.name}")

    def set_secret(self, name: str, value: str) -> SecretVersion:
        version = SecretVersion(version=uuid.uuid4().hex, value=value)
        self.secrets.setdefault(name, []).append(version)
        return version


@dataclass
class StorageAccount:
    name: str
    subscription_id: str
    resource_group: str
    location: str
    # container -> blob name -> bytes
    containers: dict[str, dict[str, bytes]] = field(default_factory=dict)
    # ARM properties.networkAcls / publicNetworkAccess, enforced by the blob service
    public_network_access: str = "Enabled"
    network_default_action: str = "Allow"
    ip_rules: list[str] = field(default_factory=list)
    network_bypass: str = "AzureServices"
    virtual_network_rules: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)  # properties.creationTime
    # ARM properties kept as set (az storage account update --allow-shared-key-access / --min-tls-version); the
    # blob service takes bearer tokens only, so shared key being off changes none of its answers
    allow_shared_key_access: bool = True
    minimum_tls_version: str = "TLS1_2"
    # the blob service's deleteRetentionPolicy (az storage account blob-service-properties update
    # --enable-delete-retention true --delete-retention-days N): None is off, a deleted blob is gone for good;
    # soft-deleted blobs: container -> blob name -> (bytes, when deleted)
    delete_retention_days: int | None = None
    deleted_blobs: dict[str, dict[str, tuple[bytes, float]]] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Storage/storageAccounts/{self.name}")


@dataclass
class ManagedCluster:
    name: str
    subscription_id: str
    resource_group: str
    location: str
    issuer_url: str
    oidc_issuer_enabled: bool = True
    workload_identity_enabled: bool = True
    pod_identity_enabled: bool = False
    pod_identities: list[dict[str, Any]] = field(default_factory=list)  # ManagedClusterPodIdentity, as ARM renders
    pod_identity_exceptions: list[dict[str, Any]] = field(default_factory=list)  # ManagedClusterPodIdentityException
    kubelet_identity: ManagedIdentity | None = None
    control_plane_identity: ManagedIdentity | None = None
    kubernetes_version: str = "1.32.6"
    node_resource_group: str = ""
    # ARM's networkProfile.networkPolicy: "cilium" (the lab's relays enforce NetworkPolicies), or "none": a cluster
    # made without an engine, which stores NetworkPolicies and enforces none (lab ctl cluster --network-policy none)
    network_policy: str = "cilium"
    # ARM's powerState.code: "Running", or "Stopped" after az aks stop (control plane removed, node pools at zero)
    power_state: str = "Running"
    # ARM's properties.disableLocalAccounts (az aks update --disable-local-accounts | --enable-local-accounts): no
    # static (admin or local user) credential is issued; those issued before keep working until az aks rotate-certs
    # (learn.microsoft.com/azure/aks/manage-local-accounts-managed-azure-ad)
    disable_local_accounts: bool = False
    # ARM's systemData (createdAt, lastModifiedAt): when the cluster was made, and when an update through ARM (az aks
    # update: a PUT) last changed it
    created_at: float = field(default_factory=time.time)
    modified_at: float | None = None

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
                f"/providers/Microsoft.ContainerService/managedClusters/{self.name}")

    @property
    def dns_prefix(self) -> str:
        return f"{self.name[:40]}-dns"

    @property
    def fqdn(self) -> str:
        """The API server's public name as AKS forms it: ``<dnsPrefix>-<hash>.hcp.<location>.azmk8s.io``."""
        fqdn_hash = hashlib.sha256(self.resource_id.lower().encode()).hexdigest()[:8]
        return f"{self.dns_prefix}-{fqdn_hash}.hcp.{self.location}.azmk8s.io"


@dataclass
class ResourceGroup:
    name: str
    subscription_id: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"


@dataclass
class AzureWorld:
    """Everything on the Azure side of one lab, in one subscription of one home tenant."""

    tenant_id: str
    subscription_id: str  # the cluster's subscription; more may be added (shared "identity" subscriptions)
    subscription_name: str = "wi-lab-subscription"
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # lower(id) -> subscription
    tenants: dict[str, Tenant] = field(default_factory=dict)
    identities: dict[str, ManagedIdentity] = field(default_factory=dict)  # lower(resource id) -> identity
    apps: dict[str, AppRegistration] = field(default_factory=dict)  # client (app) id -> app
    deleted_items: dict[str, DeletedItem] = field(default_factory=dict)  # lower(object id) -> Graph deleted item
    graph_service_principal: FirstPartyServicePrincipal = field(default_factory=_graph_service_principal)
    resource_groups: dict[str, ResourceGroup] = field(default_factory=dict)  # group_key(sub, name) -> group
    clusters: dict[str, ManagedCluster] = field(default_factory=dict)  # lower(resource id) -> cluster
    vaults: dict[str, Vault] = field(default_factory=dict)  # lower(name) -> vault
    storage_accounts: dict[str, StorageAccount] = field(default_factory=dict)  # lower(name) -> account
    role_definitions: dict[str, RoleDefinition] = field(
        default_factory=lambda: {role.role_id: role for role in BUILTIN_ROLES}
    )
    role_assignments: dict[str, RoleAssignment] = field(default_factory=dict)  # assignment GUID -> assignment
    # Propagation delays, as Azure has them: a new federated credential or role assignment takes effect late.
    fic_propagation_seconds: float = 0.0
    role_propagation_seconds: float = 0.0
    # Entra's copy of external issuers' discovery documents and JWKS (lab.azure.metadata_cache)
    issuer_metadata: IssuerMetadataCache = field(default_factory=IssuerMetadataCache)

    def __post_init__(self) -> None:
        self.subscriptions.setdefault(
            self.subscription_id.lower(),
            Subscription(self.subscription_id, self.subscription_name, self.tenant_id),
        )

    # -- lookups
    def subscription(self, subscription_id: str) -> Subscription | None:
        return self.subscriptions.get(subscription_id.lower())

    def group(self, subscription_id: str, name: str) -> ResourceGroup | None:
        return self.resource_groups.get(group_key(subscription_id, name))

    def principals(self) -> list[Principal]:
        return [*self.identities.values(), *self.apps.values()]

    def principal_by_client_id(self, client_id: str) -> Principal | None:
        return next((p for p in self.principals() if p.client_id.lower() == client_id.lower()), None)

    def principal_by_object_id(self, object_id: str) -> Principal | None:
        return next((p for p in self.principals() if p.principal_id.lower() == object_id.lower()), None)

    def role_by_name(self, role_name: str) -> RoleDefinition:
        return next(role for role in self.role_definitions.values() if role.role_name == role_name)

    # -- changes used by scenarios (ARM does the same through its handlers)
    def add_tenant(self, tenant_id: str, display_name: str, domain: str) -> Tenant:
        tenant = Tenant(tenant_id, display_name, domain)
        self.tenants[tenant_id] = tenant
        return tenant

    def add_subscription(self, display_name: str, subscription_id: str | None = None) -> Subscription:
        subscription = Subscription(subscription_id or new_guid(), display_name, self.tenant_id)
        self.subscriptions[subscription.subscription_id.lower()] = subscription
        return subscription

    def add_resource_group(self, name: str, location: str = "eastus",
                           subscription_id: str | None = None) -> ResourceGroup:
        group = ResourceGroup(name, subscription_id or self.subscription_id, location)
        self.resource_groups[group_key(group.subscription_id, name)] = group
        return group

    def add_identity(self, name: str, resource_group: str, location: str = "eastus",
                     subscription_id: str | None = None) -> ManagedIdentity:
        identity = ManagedIdentity(
            client_id=new_guid(), principal_id=new_guid(), tenant_id=self.tenant_id, display_name=name,
            subscription_id=subscription_id or self.subscription_id, resource_group=resource_group,
            location=location,
        )
        self.identities[identity.resource_id.lower()] = identity
        return identity

    def add_app(self, display_name: str, with_service_principal: bool = True) -> AppRegistration:
        app = AppRegistration(client_id=new_guid(), principal_id=new_guid() if with_service_principal else "",
                              tenant_id=self.tenant_id, display_name=display_name)
        self.apps[app.client_id] = app
        return app

    def assign_role(self, principal: Principal, role_name: str, scope: str) -> RoleAssignment:
        role = self.role_by_name(role_name)
        assignment = RoleAssignment(
            name=new_guid(), scope=scope,
            role_definition_id=role.resource_id(subscription_of(scope) or self.subscription_id),
            principal_id=principal.principal_id,
        )
        self.role_assignments[assignment.name] = assignment
        return assignment

    # -- authorization
    def effective_assignments(self, principal_id: str, resource: str, now: float | None = None) -> list[RoleAssignment]:
        """Assignments of ``principal_id`` at ``resource`` or any ancestor scope that have taken effect."""
        moment = time.time() if now is None else now
        return [
            a for a in self.role_assignments.values()
            if a.principal_id.lower() == principal_id.lower()
            and scope_covers(a.scope, resource)
            and moment - a.created_at >= self.role_propagation_seconds
        ]

    def permits(self, principal_id: str, resource: str, action: str, data_action: bool = False) -> bool:
        for assignment in self.effective_assignments(principal_id, resource):
            role = self.role_definitions.get(assignment.role_guid)
            # conditions apply to Storage data actions (Azure ABAC: blob and queue storage); unverified what ARM
            # does with one on another role, the lab keeps it and ignores it there
            if assignment.condition and data_action and action.lower().startswith("microsoft.storage/") \
                    and not condition_holds(assignment.condition, action, resource):
                continue
            if role and role_permits(role, action, data_action):
                return True
        return False
