//! The world a new data folder starts with: one tenant, subscription and service principal, a
//! resource group, an ML workspace with its storage account, container and default datastore, and the
//! principal's roles. Identifiers and secrets are random per data folder. A [`SeedProfile::Hardened`]
//! folder is set up as security-conscious tenants run their workspaces: the storage account refuses
//! shared keys and the default datastore is identity-based.
//!
//! It builds data only; it must never be called for a folder that already has state.
use rand::Rng;

use super::bodies;
use super::store::{Data, Principal, RoleAssignment, Seed, now_rfc3339, random_key};

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// How a new data folder's world is set up (`cloud up --hardened`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeedProfile {
    /// The workspace as Azure ML creates it by default: shared keys allowed, an account-key datastore.
    #[default]
    Standard,
    /// The workspace's storage account has `allowSharedKeyAccess: false` (Microsoft.Storage
    /// 2025-01-01, StorageAccountPropertiesCreateParameters) and its default datastore is
    /// identity-based (`credentials.credentialsType: None`, Microsoft.MachineLearningServices
    /// 2025-12-01, NoneDatastoreCredentials): every upload uses the deployer's own token, and the
    /// deployer needs Storage Blob Data Contributor there (seeded for the service principal, as a
    /// tenant admin would grant it).
    Hardened,
}

/// Whether a store's world was seeded with [`SeedProfile::Hardened`] (its datastore record is stored).
pub(crate) fn is_hardened(store: &super::store::Store, seed: &Seed) -> bool {
    let ws_id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
        seed.subscription_id, seed.resource_group, seed.workspace
    );
    store.has_resource(&bodies::datastore_key(&ws_id))
}

/// The seeded world: one tenant, subscription, service principal (Owner of the subscription, and
/// Storage Blob Data Contributor on the workspace storage account so it can upload assets with a
/// bearer token), resource group, ML workspace with its storage account and default datastore.
pub(crate) fn seed_data(profile: SeedProfile) -> Data {
    let hex8: String = hex::encode(rand::rng().random::<[u8; 5]>());
    let seed = Seed {
        tenant_id: guid(),
        subscription_id: guid(),
        client_id: guid(),
        client_secret: format!("local~{}", hex::encode(rand::rng().random::<[u8; 18]>())),
        sp_object_id: guid(),
        resource_group: "demo-rg".into(),
        workspace: "demo-ws".into(),
        location: "eastus".into(),
        workspace_storage_account: format!("mlws{hex8}"),
        workspace_container: format!("azureml-blobstore-{}", guid()),
        workspace_guid: guid(),
    };
    let mut d = Data::new(seed.clone());
    let created = now_rfc3339();
    d.insert_principal(Principal {
        object_id: seed.sp_object_id.clone(),
        client_id: seed.client_id.clone(),
        kind: "ServicePrincipal".into(),
        created_ms: 0,
    });
    let sub = format!("/subscriptions/{}", seed.subscription_id);
    let rg = format!("{sub}/resourceGroups/{}", seed.resource_group);
    d.insert_resource(
        rg.to_ascii_lowercase(),
        bodies::resource_group_body(&rg, &seed.resource_group, &seed.location),
    );
    let acct_id = format!(
        "{rg}/providers/Microsoft.Storage/storageAccounts/{}",
        seed.workspace_storage_account
    );
    let mut acct = bodies::account_body(
        &acct_id,
        &seed.workspace_storage_account,
        &serde_json::json!({
            "location": seed.location, "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
            "properties": {"allowSharedKeyAccess": profile == SeedProfile::Standard},
        }),
        &created,
    );
    acct["properties"]["provisioningState"] = "Succeeded".into();
    d.insert_resource(acct_id.to_ascii_lowercase(), acct);
    d.insert_secret(&acct_id.to_ascii_lowercase(), "key1", random_key());
    d.insert_secret(&acct_id.to_ascii_lowercase(), "key2", random_key());
    let cont_id = format!(
        "{acct_id}/blobServices/default/containers/{}",
        seed.workspace_container
    );
    d.insert_resource(
        cont_id.to_ascii_lowercase(),
        bodies::container_body(
            &cont_id,
            &seed.workspace_container,
            &serde_json::json!({}),
            &created,
            0,
        ),
    );
    let ws_id = format!(
        "{rg}/providers/Microsoft.MachineLearningServices/workspaces/{}",
        seed.workspace
    );
    d.insert_resource(
        ws_id.to_ascii_lowercase(),
        bodies::workspace_body(&ws_id, &seed, &acct_id),
    );
    if profile == SeedProfile::Hardened {
        d.insert_resource(
            bodies::datastore_key(&ws_id),
            bodies::datastore_body(&ws_id, &seed, "None"),
        );
    }
    for (scope, role) in [
        (sub.clone(), "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        (acct_id.clone(), "ba92f5b4-2d11-453d-a403-e96b0029c9fe"),
    ] {
        let name = guid();
        let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
        d.insert_role_assignment(
            id.to_ascii_lowercase(),
            RoleAssignment {
                id,
                name,
                scope,
                role_definition_id: format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                    seed.subscription_id
                ),
                principal_id: seed.sp_object_id.clone(),
                principal_type: "ServicePrincipal".into(),
                description: Some("seeded by the local cloud".into()),
                created_ms: 0,
                created_on: created.clone(),
            },
        );
    }
    d
}
