//! The records the store keeps besides ARM bodies: the seeded identities, principals, role
//! assignments, long-running operations and blob metadata, each stored as one JSON row of `store.db`.
//!
//! Plain data: no behaviour, no I/O; it never decides anything about a request.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fixed identities created when a data folder is first used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Seed {
    pub tenant_id: String,
    pub subscription_id: String,
    pub client_id: String,
    /// The seeded service principal's secret: a local fixture, only ever shown by `cloud status --json`.
    pub client_secret: String,
    pub sp_object_id: String,
    pub resource_group: String,
    pub workspace: String,
    pub location: String,
    pub workspace_storage_account: String,
    pub workspace_container: String,
    pub workspace_guid: String,
}

/// A principal the emulated directory knows: the seeded service principal or a managed identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Principal {
    pub object_id: String,
    pub client_id: String,
    pub kind: String,
    /// Unix milliseconds when it was created (for the replication-delay fault).
    pub created_ms: u64,
}

/// A role assignment, stored by its full id (scope + GUID).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub description: Option<String>,
    pub created_ms: u64,
    pub created_on: String,
}

/// A long-running operation's record, polled through a status URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Operation {
    pub id: String,
    /// `storage-create`, `endpoint-put`, `endpoint-patch`, `endpoint-delete`, `deployment-put`,
    /// `deployment-patch`, `deployment-delete`.
    pub kind: String,
    /// Lowercase key of the resource the operation works on.
    pub resource_key: String,
    pub started: String,
    pub ready_ms: u64,
    /// `InProgress`, `Succeeded`, `Failed`, `Canceled`.
    pub status: String,
    pub error: Option<Value>,
    pub ended: Option<String>,
}

/// Metadata of one blob; its bytes are the `blob_content` row whose id is `file`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BlobMeta {
    pub file: String,
    pub len: u64,
    pub etag: String,
    pub content_type: String,
    pub content_md5: String,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: String,
    pub modified: String,
    pub modified_unix: i64,
}
