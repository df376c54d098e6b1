//! The bodies of ARM resources as the store keeps them, for the resources more than one layer creates:
//! resource groups, storage accounts and blob containers (ARM and the blob data plane both create
//! containers), and the seeded ML workspace.
//!
//! Pure functions from names and request JSON to JSON; they must never touch the store or HTTP.
use serde_json::{Value, json};

use super::store::Seed;

/// The string at `pointer` (`/properties/...`) of a body, if it is a string.
pub(crate) fn str_at<'a>(body: &'a Value, pointer: &str) -> Option<&'a str> {
    body.pointer(pointer).and_then(Value::as_str)
}

/// A resource group.
pub(crate) fn resource_group_body(id: &str, name: &str, location: &str) -> Value {
    json!({"id": id, "name": name, "type": "Microsoft.Resources/resourceGroups", "location": location, "properties": {"provisioningState": "Succeeded"}})
}

/// The stored body of an account (primaryEndpoints are filled in when rendered).
pub(crate) fn account_body(id: &str, name: &str, req: &Value, created: &str) -> Value {
    let sku = req
        .pointer("/sku/name")
        .and_then(Value::as_str)
        .unwrap_or("Standard_LRS");
    let tier = if sku.starts_with("Premium") {
        "Premium"
    } else {
        "Standard"
    };
    let loc = req
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut props = req
        .get("properties")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    props["provisioningState"] = "Creating".into();
    props["creationTime"] = created.into();
    props["primaryLocation"] = loc.into();
    props["statusOfPrimary"] = "available".into();
    if props.get("allowSharedKeyAccess").is_none() {
        props["allowSharedKeyAccess"] = true.into();
    }
    if props.get("supportsHttpsTrafficOnly").is_none() {
        props["supportsHttpsTrafficOnly"] = true.into();
    }
    json!({
        "id": id, "name": name, "type": "Microsoft.Storage/storageAccounts",
        "location": loc, "kind": req.get("kind").cloned().unwrap_or("StorageV2".into()),
        "sku": {"name": sku, "tier": tier},
        "tags": req.get("tags").cloned().unwrap_or(json!({})),
        "properties": props,
    })
}

/// A blob container; `counter` makes its ETag unique.
pub(crate) fn container_body(
    id: &str,
    name: &str,
    req: &Value,
    created: &str,
    counter: u64,
) -> Value {
    let public = req
        .pointer("/properties/publicAccess")
        .and_then(Value::as_str)
        .unwrap_or("None");
    json!({
        "id": id, "name": name, "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
        "etag": format!("\"0x8D{counter:013X}\""),
        "properties": {
            "publicAccess": public, "leaseStatus": "Unlocked", "leaseState": "Available",
            "lastModifiedTime": created, "hasImmutabilityPolicy": false, "hasLegalHold": false,
            "metadata": req.pointer("/properties/metadata").cloned().unwrap_or(json!({})),
            "deleted": false, "remainingRetentionDays": 0
        }
    })
}

/// The seeded ML workspace, whose storage account is `storage_id`.
pub(crate) fn workspace_body(id: &str, seed: &Seed, storage_id: &str) -> Value {
    let rg = format!(
        "/subscriptions/{}/resourceGroups/{}",
        seed.subscription_id, seed.resource_group
    );
    json!({
        "id": id, "name": seed.workspace, "type": "Microsoft.MachineLearningServices/workspaces",
        "location": seed.location, "kind": "Default",
        "identity": {"type": "SystemAssigned", "principalId": seed.workspace_guid, "tenantId": seed.tenant_id},
        "sku": {"name": "Basic", "tier": "Basic"},
        "properties": {
            "friendlyName": seed.workspace, "provisioningState": "Succeeded",
            "storageAccount": storage_id,
            "containerRegistry": format!("{rg}/providers/Microsoft.ContainerRegistry/registries/localacr"),
            "keyVault": format!("{rg}/providers/Microsoft.KeyVault/vaults/localkv"),
            "applicationInsights": format!("{rg}/providers/Microsoft.Insights/components/localai"),
            "workspaceId": seed.workspace_guid, "publicNetworkAccess": "Enabled",
            "discoveryUrl": "", "hbiWorkspace": false
        }
    })
}

/// The store key of a workspace's default datastore record (present only in a hardened data folder).
pub(crate) fn datastore_key(ws_id: &str) -> String {
    format!("{ws_id}/datastores/workspaceblobstore").to_ascii_lowercase()
}

/// The workspace's default datastore, `workspaceblobstore`, over the seeded container, with
/// credentials of `credentials_type` (`AccountKey`, or `None` for an identity-based one).
pub(crate) fn datastore_body(ws_id: &str, seed: &Seed, credentials_type: &str) -> Value {
    json!({
        "id": format!("{ws_id}/datastores/workspaceblobstore"), "name": "workspaceblobstore",
        "type": "Microsoft.MachineLearningServices/workspaces/datastores",
        "properties": {
            "datastoreType": "AzureBlob", "accountName": seed.workspace_storage_account,
            "containerName": seed.workspace_container, "endpoint": "core.windows.net", "protocol": "https",
            "isDefault": true, "credentials": {"credentialsType": credentials_type},
            "serviceDataAccessAuthIdentity": "None", "subscriptionId": seed.subscription_id,
            "resourceGroup": seed.resource_group, "description": "the workspace's default blob store",
            "tags": {}, "properties": {}
        }
    })
}
