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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Block blob (every record written before append blobs existed) or append blob.
    #[serde(default)]
    pub blob_type: BlobType,
    /// The committed blocks of an append blob (0 for a block blob).
    #[serde(default)]
    pub committed_blocks: u32,
    /// The blob's lease, while one was acquired and not released (an expired or broken lease stays
    /// until the blob is written or leased again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<BlobLease>,
}

/// The kinds of blob the local cloud stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum BlobType {
    #[default]
    BlockBlob,
    AppendBlob,
}

impl BlobType {
    /// The name the service gives it (`x-ms-blob-type`, `<BlobType>`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BlobType::BlockBlob => "BlockBlob",
            BlobType::AppendBlob => "AppendBlob",
        }
    }
}

/// A blob's lease as stored; its state at a given time (leased, expired, breaking, broken) follows
/// from these fields and the clock (see `cloud::blob::lease`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlobLease {
    /// The lease id as the holder proposed it (or as the service made it).
    pub id: String,
    /// Seconds of a fixed-duration lease; `None` for an infinite one.
    pub duration_s: Option<u32>,
    /// Unix milliseconds when a fixed lease expires or, once `breaking`, when the break period ends;
    /// `None` for an infinite lease (and for a break that took effect at once).
    pub until_ms: Option<u64>,
    /// A break was requested: the lease is breaking until `until_ms`, broken after.
    pub breaking: bool,
}
