"""Resource JSON in the public ARM REST shapes (reference section 5 and the REST spec examples)."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from lab.azure.arm_state import arm_state
from lab.azure.bearer import iso8601
from lab.azure.world import (
    FederatedCredential,
    ManagedCluster,
    ManagedIdentity,
    ResourceGroup,
    RoleAssignment,
    RoleDefinition,
    StorageAccount,
    Subscription,
    Vault,
)

if TYPE_CHECKING:
    from lab.runtime import Lab

IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
FIC_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
CLUSTER_TYPE = "Microsoft.ContainerService/ManagedClusters"
VAULT_TYPE = "Microsoft.KeyVault/vaults"
STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
ROLE_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
ROLE_DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"
# Built-in role definitions carry fixed dates in Azure; these stand in for them.
BUILTIN_CREATED_ON = "2015-02-02T21:55:09.8806423Z"
BUILTIN_UPDATED_ON = "2024-01-10T16:20:31.8713935Z"


def _stable_guid(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]))


def subscription(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.resource_id,
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.subscription_id,
        "tenantId": sub.tenant_id,
        "displayName": sub.display_name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def tenant(lab: Lab, tenant_id: str) -> dict[str, Any]:
    known = lab.azure.tenants.get(tenant_id)
    domain = known.default_domain if known else f"{tenant_id}.onmicrosoft.com"
    return {
        "id": f"/tenants/{tenant_id}",
        "tenantId": tenant_id,
        "countryCode": "US",
        "displayName": known.display_name if known else tenant_id,
        "domains": [domain],
        "tenantCategory": "Home",
        "defaultDomain": domain,
        "tenantType": "AAD",
    }


def resource_group(lab: Lab, group: ResourceGroup) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": group.resource_id,
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
    }
    managed_by = next(
        (
            c.resource_id
            for c in lab.azure.clusters.values()
            if c.node_resource_group and c.node_resource_group.lower() == group.name.lower()
        ),
        None,
    )
    if managed_by:
        body["managedBy"] = managed_by
    if group.tags:
        body["tags"] = dict(group.tags)
    body["properties"] = {"provisioningState": "Succeeded"}
    return body


def identity(mi: ManagedIdentity) -> dict[str, Any]:
    return {
        "id": mi.resource_id,
        "name": mi.name,
        "type": IDENTITY_TYPE,
        "location": mi.location,
        "tags": dict(mi.tags),
        "properties": {"tenantId": mi.tenant_id, "principalId": mi.principal_id, "clientId": mi.client_id},
    }


def federated_credential(mi: ManagedIdentity, fic: FederatedCredential) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "issuer": fic.issuer,
        "subject": fic.subject,
        "audiences": list(fic.audiences),
    }
    if fic.description:
        properties["description"] = fic.description
    return {
        "id": f"{mi.resource_id}/federatedIdentityCredentials/{fic.name}",
        "name": fic.name,
        "type": FIC_TYPE,
        "properties": properties,
        # ARM's proxy-resource metadata (the REST spec's SystemData on federatedIdentityCredentials, 2023-01-31):
        # the times only; the lab does not record who wrote it
        "systemData": {"createdAt": iso8601(fic.first_created_at or fic.created_at),
                       "lastModifiedAt": iso8601(fic.created_at)},
    }


def _identity_ref(mi: ManagedIdentity | None) -> dict[str, Any] | None:
    if mi is None:
        return None
    return {"resourceId": mi.resource_id, "clientId": mi.client_id, "objectId": mi.principal_id}


def _network_profile(cluster: ManagedCluster) -> dict[str, Any]:
    """What ``az aks create --network-dataplane cilium`` gives a cluster today (Azure CNI overlay powered by Cilium
    behind a standard load balancer with one managed outbound IP), in the shape of the REST specs'
    ManagedClustersGet example. ``az aks update`` reads it (the outbound type, the load balancer profile) before it
    PUTs the cluster back, whatever flag it was given. The lab enforces NetworkPolicies (each pod's relay), so its
    cluster says an engine does: ARM's networkPolicy unset means "none", "Network policies will not be enforced.
    This is the default value when NetworkPolicy is not specified" (the ContainerService API's NetworkPolicy enum),
    and "cilium" "requires networkDataplane to be 'cilium'"."""
    outbound_ip = (f"/subscriptions/{cluster.subscription_id}/resourceGroups/{cluster.node_resource_group}"
                   f"/providers/Microsoft.Network/publicIPAddresses/{_stable_guid('outbound-ip', cluster.resource_id.lower())}")
    return {
        "networkPlugin": "azure",
        "networkPluginMode": "overlay",
        # Cilium's dataplane cannot run without its policy engine; a cluster without one runs Azure's
        "networkDataplane": "cilium" if cluster.network_policy == "cilium" else "azure",
        "networkPolicy": cluster.network_policy,
        "podCidr": "10.244.0.0/16",
        "serviceCidr": "10.0.0.0/16",
        "dnsServiceIP": "10.0.0.10",
        "outboundType": "loadBalancer",
        "loadBalancerSku": "standard",
        "loadBalancerProfile": {
            "managedOutboundIPs": {"count": 1},
            "effectiveOutboundIPs": [{"id": outbound_ip}],
            "backendPoolType": "nodeIPConfiguration",
        },
        "podCidrs": ["10.244.0.0/16"],
        "serviceCidrs": ["10.0.0.0/16"],
        "ipFamilies": ["IPv4"],
    }


def managed_cluster(lab: Lab, cluster: ManagedCluster) -> dict[str, Any]:
    tenant_id = lab.azure.tenant_id
    dns_prefix, fqdn = cluster.dns_prefix, cluster.fqdn
    fqdn_hash = fqdn.removeprefix(f"{dns_prefix}-").split(".", 1)[0]
    if cluster.control_plane_identity is not None:
        cp = cluster.control_plane_identity
        identity_block: dict[str, Any] = {
            "type": "UserAssigned",
            "userAssignedIdentities": {
                cp.resource_id: {"principalId": cp.principal_id, "clientId": cp.client_id}
            },
        }
    else:
        identity_block = {
            "type": "SystemAssigned",
            "principalId": _stable_guid("cluster-system-identity", cluster.resource_id.lower()),
            "tenantId": tenant_id,
        }
    oidc: dict[str, Any] = {"enabled": cluster.oidc_issuer_enabled}
    if cluster.oidc_issuer_enabled:
        oidc["issuerURL"] = cluster.issuer_url
    pod_identities = []
    for entry in cluster.pod_identities:
        item = dict(entry)
        item.setdefault("provisioningState", "Assigned")
        pod_identities.append(item)
    properties: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "powerState": {"code": cluster.power_state},
        "kubernetesVersion": cluster.kubernetes_version,
        "currentKubernetesVersion": cluster.kubernetes_version,
        "dnsPrefix": dns_prefix,
        "fqdn": fqdn,
        "azurePortalFQDN": f"{dns_prefix}-{fqdn_hash}.portal.hcp.{cluster.location}.azmk8s.io",
        "nodeResourceGroup": cluster.node_resource_group,
        "enableRBAC": True,
        "disableLocalAccounts": cluster.disable_local_accounts,
        "oidcIssuerProfile": oidc,
        "securityProfile": {"workloadIdentity": {"enabled": cluster.workload_identity_enabled}},
        "podIdentityProfile": {
            "enabled": cluster.pod_identity_enabled,
            "allowNetworkPluginKubenet": False,
            "userAssignedIdentities": pod_identities,
            "userAssignedIdentityExceptions": [dict(entry) for entry in cluster.pod_identity_exceptions],
        },
        "agentPoolProfiles": [
            {
                "name": "nodepool1",
                "count": 1,
                "vmSize": "Standard_DS2_v2",
                "mode": "System",
                "osType": "Linux",
                "provisioningState": "Succeeded",
                "orchestratorVersion": cluster.kubernetes_version,
            }
        ],
    }
    properties["networkProfile"] = _network_profile(cluster)
    kubelet = _identity_ref(cluster.kubelet_identity)
    if kubelet:
        properties["identityProfile"] = {"kubeletidentity": kubelet}
    return {
        "id": cluster.resource_id,
        "location": cluster.location,
        "name": cluster.name,
        "type": CLUSTER_TYPE,
        "eTag": _stable_guid("cluster-etag", cluster.resource_id.lower()),
        "tags": {},
        "sku": {"name": "Base", "tier": "Free"},
        "identity": identity_block,
        "properties": properties,
        # a tracked resource's systemData (the AKS REST spec's ManagedCluster extends ARM's TrackedResource; the
        # RPC's common API contracts, "system metadata for all Azure resources"); the lab's creator and modifier
        # fields are left out. unverified: that AKS stamps lastModifiedAt on every az aks update
        "systemData": {"createdAt": iso8601(cluster.created_at),
                       "lastModifiedAt": iso8601(cluster.modified_at or cluster.created_at)},
    }


def vault(lab: Lab, kv: Vault) -> dict[str, Any]:
    extras = arm_state(lab).extras(kv.name)
    properties: dict[str, Any] = {
        "sku": dict(extras.sku),
        "tenantId": kv.tenant_id,
        "accessPolicies": [dict(p) for p in kv.access_policies],
        "enabledForDeployment": False,
        "enabledForDiskEncryption": False,
        "enabledForTemplateDeployment": False,
        "enableSoftDelete": extras.enable_soft_delete,
        "softDeleteRetentionInDays": extras.soft_delete_retention_days,
        "enableRbacAuthorization": kv.enable_rbac_authorization,
        "vaultUri": lab.vault_url(kv.name),
        "provisioningState": "Succeeded",
        "publicNetworkAccess": kv.public_network_access,
        "networkAcls": {
            "bypass": extras.bypass,
            "defaultAction": kv.network_default_action,
            "ipRules": [{"value": rule} for rule in kv.ip_rules],
            "virtualNetworkRules": [dict(r) for r in extras.virtual_network_rules],
        },
    }
    if extras.enable_purge_protection is not None:
        properties["enablePurgeProtection"] = extras.enable_purge_protection
    return {
        "id": kv.resource_id,
        "name": kv.name,
        "type": VAULT_TYPE,
        "location": kv.location,
        "tags": dict(extras.tags),
        "properties": properties,
    }


def storage_account(lab: Lab, account: StorageAccount) -> dict[str, Any]:
    blob = lab.blob_url(account.name)
    return {
        "id": account.resource_id,
        "name": account.name,
        "type": STORAGE_TYPE,
        "location": account.location,
        "kind": "StorageV2",
        "sku": {"name": "Standard_LRS", "tier": "Standard"},
        "tags": {},
        "properties": {
            "provisioningState": "Succeeded",
            "primaryLocation": account.location,
            "statusOfPrimary": "available",
            "primaryEndpoints": {"blob": blob, "dfs": blob, "web": blob},
            "accessTier": "Hot",
            "allowBlobPublicAccess": False,
            "allowSharedKeyAccess": account.allow_shared_key_access,
            "minimumTlsVersion": account.minimum_tls_version,
            "publicNetworkAccess": account.public_network_access,
            "supportsHttpsTrafficOnly": True,
            "creationTime": iso8601(account.created_at),
            # every account is encrypted at rest with Microsoft-managed keys unless a customer's key is set, and
            # ARM always answers it (e.g. azure-quickstart-templates' recorded GETs): az storage account update
            # reads instance.encryption.key_source and fails on an account without it
            "encryption": {
                "requireInfrastructureEncryption": False,
                "services": {service: {"keyType": "Account", "enabled": True,
                                       "lastEnabledTime": iso8601(account.created_at)} for service in ("blob", "file")},
                "keySource": "Microsoft.Storage",
            },
            "networkAcls": {
                "bypass": account.network_bypass,
                "defaultAction": account.network_default_action,
                "ipRules": [{"value": rule, "action": "Allow"} for rule in account.ip_rules],
                "virtualNetworkRules": [dict(r) for r in account.virtual_network_rules],
            },
        },
    }


def role_assignment(lab: Lab, assignment: RoleAssignment) -> dict[str, Any]:
    creator = arm_state(lab).assignment_creators.get(assignment.name)
    stamp = iso8601(assignment.created_at)
    return {
        "id": assignment.resource_id,
        "type": ROLE_ASSIGNMENT_TYPE,
        "name": assignment.name,
        "properties": {
            "roleDefinitionId": assignment.role_definition_id,
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": assignment.scope,
            "condition": assignment.condition,
            "conditionVersion": assignment.condition_version,
            "createdOn": stamp,
            "updatedOn": stamp,
            "createdBy": creator,
            "updatedBy": creator,
            "delegatedManagedIdentityResourceId": None,
            "description": None,
        },
    }


def role_definition(role: RoleDefinition, subscription_id: str | None) -> dict[str, Any]:
    prefix = f"/subscriptions/{subscription_id}" if subscription_id else ""
    return {
        "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{role.role_id}",
        "name": role.role_id,
        "type": ROLE_DEFINITION_TYPE,
        "properties": {
            "roleName": role.role_name,
            "type": "CustomRole" if role.custom else "BuiltInRole",
            "description": role.description,
            "assignableScopes": list(role.assignable_scopes),
            "permissions": [
                {
                    "actions": list(role.actions),
                    "notActions": list(role.not_actions),
                    "dataActions": list(role.data_actions),
                    "notDataActions": list(role.not_data_actions),
                    **({"conditionVersion": "2.0", "condition": role.condition} if role.condition else {}),
                }
            ],
            "createdOn": role.created_on or BUILTIN_CREATED_ON,
            "updatedOn": role.created_on or BUILTIN_UPDATED_ON,
            "createdBy": None,
            "updatedBy": None,
        },
    }


def cloud_metadata(lab: Lab) -> dict[str, Any]:
    """The 2022-09-01 ``/metadata/endpoints`` document, aimed at the lab (az cloud register, azurerm)."""
    arm = lab.endpoints["arm"] + "/"
    return {
        "portal": "https://portal.azure.com",
        "authentication": {
            "loginEndpoint": lab.authority_host,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "media": "https://rest.media.azure.net",
        "graphAudience": "https://graph.windows.net/",
        "graph": "https://graph.windows.net/",
        "name": "WiHarnessLab",
        "suffixes": {
            "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "acrLoginServer": "azurecr.io",
            "sqlServerHostname": "database.windows.net",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net",
            "storageSyncEndpointSuffix": "afs.azure.net",
            "mhsmDns": "managedhsm.azure.net",
            "mysqlServerEndpoint": "mysql.database.azure.com",
            "postgresqlServerEndpoint": "postgres.database.azure.com",
            "mariadbServerEndpoint": "mariadb.database.azure.com",
            "synapseAnalytics": "dev.azuresynapse.net",
            "attestationEndpoint": "attest.azure.net",
        },
        "batch": "https://batch.core.windows.net/",
        "resourceManager": arm,
        "vmImageAliasDoc": (
            "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/quickstart-templates/aliases.json"
        ),
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "microsoftGraphResourceId": lab.endpoints["graph"] + "/",  # az calls Graph here, with this scope
        "appInsightsResourceId": "https://api.applicationinsights.io",
        "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
        "attestationResourceId": "https://attest.azure.net",
        "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
        "logAnalyticsResourceId": "https://api.loganalytics.io",
        "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
        # Lab-only hints: where the data planes really are (vaults and accounts are path-addressed).
        "labEndpoints": {
            "keyVault": lab.endpoints["keyvault"] + "/",
            "storage": lab.endpoints["storage"] + "/",
            "issuer": lab.issuer_url,
        },
    }


def cloud_metadata_legacy(lab: Lab) -> dict[str, Any]:
    """The unversioned form (``/metadata/endpoints`` without api-version) older tools read."""
    return {
        "galleryEndpoint": "https://gallery.azure.com/",
        "graphEndpoint": "https://graph.windows.net/",
        "portalEndpoint": "https://portal.azure.com/",
        "authentication": {
            "loginEndpoint": lab.authority_host,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
        },
    }
