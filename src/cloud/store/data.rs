//! What the store remembers: [`Data`], every table of the cloud kept whole in memory as a read cache
//! of `store.db`, with the indexes that keep look-ups by name and settling of operations off full
//! scans, and the bookkeeping of a mutation (re-index, commit, undo).
//!
//! Plain data: no I/O (the handle in `handle` writes it); it never interprets a record.
use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::records::{BlobMeta, Operation, Principal, RoleAssignment, Seed};
use super::table::Table;

/// Everything the local cloud remembers. Its tables are private to the store: handlers go through the
/// named operations of [`Store`] (in `store::ops`), so the backing can change without touching them.
#[derive(Debug, Clone)]
pub(crate) struct Data {
    pub(super) seed: Seed,
    /// ARM resources by lowercase id; the value is the resource body as GET returns it.
    pub(super) resources: Table<Value>,
    pub(super) principals: Table<Principal>,
    pub(super) role_assignments: Table<RoleAssignment>,
    pub(super) operations: Table<Operation>,
    /// Blob metadata by `{account}/{container}/{blob}` (account and container lowercase).
    pub(super) blobs: Table<BlobMeta>,
    /// Resource secrets (storage account keys, endpoint keys) by `{lowercase id}#{name}`; never in bodies.
    pub(super) secrets: Table<String>,
    /// Counter that makes ETags unique.
    pub(super) etag_counter: u64,
    /// Index: resource keys by their last segment (a name), so finding an account by name is not a scan.
    pub(super) by_name: HashMap<String, BTreeSet<String>>,
    /// Index: ids of the operations `InProgress`, so settling them is not a scan of every operation.
    pub(super) in_progress: BTreeSet<String>,
}

/// Building the first state of a data folder (see `cloud::seed`).
impl Data {
    pub(crate) fn new(seed: Seed) -> Data {
        Data {
            seed,
            resources: Table::new(),
            principals: Table::new(),
            role_assignments: Table::new(),
            operations: Table::new(),
            blobs: Table::new(),
            secrets: Table::new(),
            etag_counter: 0,
            by_name: HashMap::new(),
            in_progress: BTreeSet::new(),
        }
    }

    /// Adds a resource body under its lowercase id.
    pub(crate) fn insert_resource(&mut self, key: String, body: Value) {
        self.resources.insert(key, body);
    }

    /// Adds a secret (`key1`, `primary`, ...) of the resource `owner_key`.
    pub(crate) fn insert_secret(&mut self, owner_key: &str, name: &str, value: String) {
        self.secrets.insert(format!("{owner_key}#{name}"), value);
    }

    pub(crate) fn insert_principal(&mut self, p: Principal) {
        self.principals.insert(p.object_id.clone(), p);
    }

    /// Adds a role assignment under its lowercase id.
    pub(crate) fn insert_role_assignment(&mut self, key: String, ra: RoleAssignment) {
        self.role_assignments.insert(key, ra);
    }
}

/// The last segment of a resource key: what [`Data::by_name`] files it under.
pub(super) fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
}

impl Data {
    /// Builds the indexes from scratch (after loading).
    pub(super) fn indexed(mut self) -> Data {
        let keys: Vec<String> = self.resources.iter().map(|(k, _)| k.clone()).collect();
        let ops: Vec<String> = self.operations.iter().map(|(k, _)| k.clone()).collect();
        self.reindex(&keys, &ops);
        self
    }

    /// Brings the indexes in step with the tables for the given resource keys and operation ids.
    fn reindex(&mut self, resources: &[String], operations: &[String]) {
        for k in resources {
            let name = name_of(k);
            if self.resources.contains_key(k) {
                self.by_name
                    .entry(name.to_string())
                    .or_default()
                    .insert(k.clone());
            } else if let Some(set) = self.by_name.get_mut(name) {
                set.remove(k);
                if set.is_empty() {
                    self.by_name.remove(name);
                }
            }
        }
        for id in operations {
            if self
                .operations
                .get(id)
                .is_some_and(|o| o.status == "InProgress")
            {
                self.in_progress.insert(id.clone());
            } else {
                self.in_progress.remove(id);
            }
        }
    }

    /// Re-indexes what changed since the last commit.
    pub(super) fn reindex_changes(&mut self) {
        let (r, o) = (
            self.resources.changed_keys(),
            self.operations.changed_keys(),
        );
        self.reindex(&r, &o);
    }

    /// The changes since the last commit are in the database.
    pub(super) fn committed(&mut self) {
        self.resources.committed();
        self.principals.committed();
        self.role_assignments.committed();
        self.operations.committed();
        self.blobs.committed();
        self.secrets.committed();
    }

    /// Puts every change since the last commit back (the write failed).
    pub(super) fn undo(&mut self, etag_counter: u64) {
        let (r, o) = (
            self.resources.changed_keys(),
            self.operations.changed_keys(),
        );
        self.resources.undo();
        self.principals.undo();
        self.role_assignments.undo();
        self.operations.undo();
        self.blobs.undo();
        self.secrets.undo();
        self.etag_counter = etag_counter;
        self.reindex(&r, &o);
    }
}

/// A one-byte text blob's record, for the store's tests.
#[cfg(test)]
pub(super) fn test_blob_meta() -> BlobMeta {
    BlobMeta {
        len: 1,
        content_type: "text/plain".into(),
        ..Default::default()
    }
}

/// A small seeded world for the store's tests.
#[cfg(test)]
pub(super) fn test_data() -> Data {
    Data::new(Seed {
        tenant_id: "t".into(),
        subscription_id: "s".into(),
        client_id: "c".into(),
        client_secret: "x".into(),
        sp_object_id: "o".into(),
        resource_group: "rg".into(),
        workspace: "ws".into(),
        location: "eastus".into(),
        workspace_storage_account: "wsstore".into(),
        workspace_container: "c".into(),
        workspace_guid: "g".into(),
    })
}
