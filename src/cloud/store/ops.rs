//! The store's operations, named after what they do: read a resource, create a storage account with
//! its keys and its creation operation, delete a container with its blobs, and so on. Handlers call
//! these and never see the maps behind them, so the backing can change without touching a handler.
//!
//! Each write is one mutation, committed in one transaction (it returns once committed). Cascades
//! live here and only here: deleting a resource removes its children, its secrets and the role
//! assignments scoped to it; deleting a storage account or a container also removes its blobs and
//! their contents. A write touches only the rows it changes and finds them by key or key range, so its
//! cost does not grow with the store. It must never interpret HTTP or decide authorisation.
use serde_json::Value;

use super::data::{Data, name_of};
use super::disk::StoreError;
use super::fresh::now_ms;
use super::handle::Store;
use super::records::{BlobLease, BlobMeta, Operation, Principal, RoleAssignment, Seed};

/// Key of a container's record: its lowercase ARM id under the storage account whose key (lowercase
/// ARM id) is `account_key`.
pub(crate) fn container_key(account_key: &str, container: &str) -> String {
    format!(
        "{account_key}/blobservices/default/containers/{}",
        container.to_ascii_lowercase()
    )
}

/// Key of a blob's metadata: `{account}/{container}/{name}` (account and container lowercase).
pub(super) fn blob_key(account: &str, container: &str, name: &str) -> String {
    format!(
        "{}/{}/{name}",
        account.to_ascii_lowercase(),
        container.to_ascii_lowercase()
    )
}

/// Prefix of every blob of a container, or of an account when `container` is `None`.
fn blob_prefix(account: &str, container: Option<&str>) -> String {
    match container {
        Some(c) => format!(
            "{}/{}/",
            account.to_ascii_lowercase(),
            c.to_ascii_lowercase()
        ),
        None => format!("{}/", account.to_ascii_lowercase()),
    }
}

/// Prefix of the snapshots of a container, or of one blob of it when `name` is given. Snapshots live
/// beside the container's blobs, not under them, so a listing of the container never sees them; the
/// separators (`!`, a tab) can be neither in a container name nor in a blob name (control characters
/// are refused by `blob::route`).
fn snapshots_prefix(account: &str, container: &str, name: Option<&str>) -> String {
    format!(
        "{}/{}!snapshots/{}",
        account.to_ascii_lowercase(),
        container.to_ascii_lowercase(),
        name.map(|n| format!("{n}\t")).unwrap_or_default()
    )
}

/// Key of one snapshot of a blob: its blob's snapshots prefix and the snapshot's time.
fn snapshot_key(account: &str, container: &str, name: &str, snapshot: &str) -> String {
    format!(
        "{}{snapshot}",
        snapshots_prefix(account, container, Some(name))
    )
}

/// A snapshot time as the blob service writes it (`x-ms-snapshot`): UTC with seven fractional digits,
/// `2019-10-11T18:08:07.8904776Z` (recorded in Azure/azure-sdk-for-python
/// sdk/storage/azure-storage-blob/tests/recordings/test_common_blob.test_delete_blob_with_snapshots.yaml).
fn snapshot_time(at: time::OffsetDateTime) -> String {
    let (y, mo, d) = (at.year(), u8::from(at.month()), at.day());
    let (h, mi, s) = (at.hour(), at.minute(), at.second());
    let ticks = at.nanosecond() / 100;
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ticks:07}Z")
}

/// What a Delete Blob of the base blob does with its snapshots (`x-ms-delete-snapshots`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteSnapshots {
    /// No header: the blob alone, refused by the caller's check while it has snapshots.
    None,
    /// `include`: the blob and all its snapshots.
    Include,
    /// `only`: its snapshots, the blob stays.
    Only,
}

/// The last segment of a lowercase resource key (a storage account's name).
fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
}

/// A new, unique blob ETag.
pub(super) fn blob_etag(counter: u64) -> String {
    format!("\"0x8D{:X}{counter:06X}\"", now_ms())
}

impl Data {
    /// Removes a resource and everything under it: child resources, its secrets and the role
    /// assignments scoped to it or below.
    fn remove_tree(&mut self, key: &str) {
        let prefix = format!("{key}/");
        self.resources.remove(key);
        self.resources.remove_prefix(&prefix);
        self.secrets.remove_prefix(&format!("{key}#"));
        self.secrets.remove_prefix(&prefix);
        self.role_assignments.retain(|_, ra| {
            let s = ra.scope.to_ascii_lowercase();
            s != key && !s.starts_with(&prefix)
        });
    }

    /// Removes the blobs whose keys start with `prefix` (their contents go with them: see `db`).
    fn remove_blobs(&mut self, prefix: &str) {
        self.blobs.remove_prefix(prefix);
    }

    /// Direct children of `parent_key` whose next segment is `kind`.
    fn children(&self, parent_key: &str, kind: &str) -> Vec<Value> {
        self.children_window(parent_key, kind, 0, usize::MAX).0
    }

    /// The direct children of `parent_key` of `kind` from the `skip`th, at most `take` of them
    /// (copied), and how many there are in all (counted, not copied).
    fn children_window(
        &self,
        parent_key: &str,
        kind: &str,
        skip: usize,
        take: usize,
    ) -> (Vec<Value>, usize) {
        let prefix = format!(
            "{}/{}/",
            parent_key.to_ascii_lowercase(),
            kind.to_ascii_lowercase()
        );
        let mut window = Vec::new();
        let mut total = 0;
        for (_, v) in self
            .resources
            .with_prefix(&prefix)
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
        {
            if total >= skip && total - skip < take {
                window.push(v.clone());
            }
            total += 1;
        }
        (window, total)
    }
}

/// Everything stored by one endpoint PUT, in one mutation.
pub(crate) struct EndpointWrite {
    pub key: String,
    pub body: Value,
    /// True for a create: then a concurrent create that stored first wins, and keys are stored.
    pub create: bool,
    /// A new system-assigned identity's principal, if one was made.
    pub principal: Option<Principal>,
    /// The primary and secondary keys of a new endpoint.
    pub keys: (String, String),
    pub operation: Operation,
}

impl Store {
    // ---- reads ----

    /// The fixed identities of this data folder.
    pub(crate) fn seed(&self) -> Seed {
        self.read(|d| d.seed.clone())
    }

    /// A resource's body by its lowercase id.
    pub(crate) fn resource(&self, key: &str) -> Option<Value> {
        self.read(|d| d.resources.get(key).cloned())
    }

    pub(crate) fn has_resource(&self, key: &str) -> bool {
        self.read(|d| d.resources.contains_key(key))
    }

    /// Direct children of `parent_key` (any casing) whose next segment is `kind` (e.g. `deployments`).
    pub(crate) fn children(&self, parent_key: &str, kind: &str) -> Vec<Value> {
        self.read(|d| d.children(parent_key, kind))
    }

    /// One page of [`Store::children`]: from the `skip`th child, at most `take`, with the number of
    /// children in all; only the page's bodies are copied out of the store.
    pub(crate) fn children_window(
        &self,
        parent_key: &str,
        kind: &str,
        skip: usize,
        take: usize,
    ) -> (Vec<Value>, usize) {
        self.read(|d| d.children_window(parent_key, kind, skip, take))
    }

    /// Every resource whose `type` is `type_name`, with its key.
    pub(crate) fn resources_of_type(&self, type_name: &str) -> Vec<(String, Value)> {
        self.read(|d| {
            d.resources
                .iter()
                .filter(|(_, v)| v["type"] == type_name)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    /// The resource whose key ends with `suffix` (lowercase), with its key: how a storage account or
    /// endpoint is found by name alone.
    pub(crate) fn find_resource_by_suffix(
        &self,
        suffix: &str,
        type_name: Option<&str>,
    ) -> Option<(String, Value)> {
        self.read(|d| {
            d.by_name
                .get(name_of(suffix))?
                .iter()
                .filter(|k| k.ends_with(suffix))
                .filter_map(|k| d.resources.get(k).map(|v| (k, v)))
                .find(|(_, v)| type_name.is_none_or(|t| v["type"] == t))
                .map(|(k, v)| (k.clone(), v.clone()))
        })
    }

    /// A secret of a resource (`key1`, `primary`, ...).
    pub(crate) fn secret(&self, owner_key: &str, name: &str) -> Option<String> {
        self.read(|d| d.secrets.get(&format!("{owner_key}#{name}")).cloned())
    }

    pub(crate) fn operation(&self, id: &str) -> Option<Operation> {
        self.read(|d| d.operations.get(id).cloned())
    }

    /// The operation in progress on a resource, if any.
    pub(crate) fn operation_in_progress_on(&self, key: &str) -> Option<Operation> {
        self.read(|d| {
            d.in_progress
                .iter()
                .filter_map(|id| d.operations.get(id))
                .find(|o| o.resource_key == key)
                .cloned()
        })
    }

    pub(crate) fn principal(&self, object_id: &str) -> Option<Principal> {
        self.read(|d| d.principals.get(object_id).cloned())
    }

    pub(crate) fn role_assignment(&self, key: &str) -> Option<RoleAssignment> {
        self.read(|d| d.role_assignments.get(key).cloned())
    }

    pub(crate) fn role_assignments(&self) -> Vec<RoleAssignment> {
        self.read(|d| d.role_assignments.values().cloned().collect())
    }

    /// The role assignments held by one principal.
    pub(crate) fn assignments_of(&self, principal: &str) -> Vec<RoleAssignment> {
        self.read(|d| {
            d.role_assignments
                .values()
                .filter(|ra| ra.principal_id.eq_ignore_ascii_case(principal))
                .cloned()
                .collect()
        })
    }

    pub(crate) fn blob(&self, account: &str, container: &str, name: &str) -> Option<BlobMeta> {
        self.read(|d| d.blobs.get(&blob_key(account, container, name)).cloned())
    }

    /// Blobs of a container whose names start with `prefix`, in name order, with their names.
    pub(crate) fn blobs_under(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
    ) -> Vec<(String, BlobMeta)> {
        let base = blob_prefix(account, Some(container));
        let full = format!("{base}{prefix}");
        self.read(|d| {
            d.blobs
                .with_prefix(&full)
                .map(|(k, m)| (k[base.len()..].to_string(), m.clone()))
                .collect()
        })
    }

    /// Names and bytes of the blobs of a container under `prefix` (blobs whose file cannot be read
    /// are left out).
    pub(crate) fn read_blobs_under(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
    ) -> Vec<(String, Vec<u8>)> {
        self.blobs_under(account, container, prefix)
            .into_iter()
            .filter_map(|(n, m)| self.read_blob_file(&m.file).ok().map(|b| (n, b)))
            .collect()
    }

    // ---- resources ----

    /// Stores a resource body (create or replace).
    pub(crate) async fn put_resource(&self, key: &str, body: Value) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.resources.insert(key.to_string(), body);
        })
        .await
    }

    /// Stores a resource body and starts an operation on it, in one mutation.
    pub(crate) async fn put_resource_with_operation(
        &self,
        key: &str,
        body: Value,
        op: Operation,
    ) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.resources.insert(key.to_string(), body);
            d.operations.insert(op.id.clone(), op);
        })
        .await
    }

    /// Removes one resource (nothing under it).
    pub(crate) async fn delete_resource(&self, key: &str) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.resources.remove(key);
        })
        .await
    }

    /// Removes a resource with its children, secrets and role assignments (not for storage accounts
    /// or containers, whose blobs go with them: see [`Store::delete_storage_account`] and
    /// [`Store::delete_container`]).
    pub(crate) async fn delete_resource_tree(&self, key: &str) -> Result<(), StoreError> {
        self.mutate(|d| d.remove_tree(key)).await
    }

    // ---- storage ----

    /// Creates a storage account with its two keys and its creation operation.
    pub(crate) async fn create_storage_account(
        &self,
        key: &str,
        body: Value,
        keys: (String, String),
        op: Operation,
    ) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.resources.insert(key.to_string(), body);
            d.secrets.insert(format!("{key}#key1"), keys.0);
            d.secrets.insert(format!("{key}#key2"), keys.1);
            d.operations.insert(op.id.clone(), op);
        })
        .await
    }

    /// Deletes a storage account with everything under it, its keys and all its blobs.
    pub(crate) async fn delete_storage_account(&self, key: &str) -> Result<(), StoreError> {
        let prefix = blob_prefix(last_segment(key), None);
        self.mutate(|d| {
            d.remove_tree(key);
            d.remove_blobs(&prefix);
        })
        .await
    }

    /// Creates or replaces a container record; `make` builds its body from a fresh ETag counter and
    /// the stored body, if any.
    pub(crate) async fn put_container(
        &self,
        key: &str,
        make: impl FnOnce(u64, Option<&Value>) -> Value,
    ) -> Result<Value, StoreError> {
        self.mutate(|d| {
            d.etag_counter += 1;
            let body = make(d.etag_counter, d.resources.get(key));
            d.resources.insert(key.to_string(), body.clone());
            body
        })
        .await
    }

    /// Creates a container record unless one exists (then `None`).
    pub(crate) async fn create_container(
        &self,
        key: &str,
        make: impl FnOnce(u64) -> Value,
    ) -> Result<Option<Value>, StoreError> {
        self.mutate(|d| {
            if d.resources.contains_key(key) {
                return None;
            }
            d.etag_counter += 1;
            let body = make(d.etag_counter);
            d.resources.insert(key.to_string(), body.clone());
            Some(body)
        })
        .await
    }

    /// Deletes a container of the storage account `account_key` with its blobs: the one place that
    /// says a container's blobs go with it.
    pub(crate) async fn delete_container(
        &self,
        account_key: &str,
        container: &str,
    ) -> Result<(), StoreError> {
        let key = container_key(account_key, container);
        let prefix = blob_prefix(last_segment(account_key), Some(container));
        let snapshots = snapshots_prefix(last_segment(account_key), container, None);
        self.mutate(|d| {
            d.remove_tree(&key);
            d.remove_blobs(&prefix);
            d.remove_blobs(&snapshots);
        })
        .await
    }

    // ---- blobs ----

    /// Writes a blob, its metadata with a new ETag and its bytes in one transaction, if `check`
    /// accepts the current metadata (evaluated under the store's lock, so two conditional writers
    /// cannot both win). `check` also says which lease the new blob keeps (the current one, when the
    /// writer holds it). Returns the new ETag, or `check`'s refusal (then nothing is stored); the
    /// replaced bytes are deleted in the same transaction.
    pub(crate) async fn put_blob<E>(
        &self,
        (account, container, name): (&str, &str, &str),
        bytes: &[u8],
        meta: BlobMeta,
        check: impl FnOnce(Option<&BlobMeta>) -> Result<Option<BlobLease>, E>,
    ) -> Result<Result<String, E>, StoreError> {
        let file = uuid::Uuid::new_v4().simple().to_string();
        let key = blob_key(account, container, name);
        self.mutate_with(&[(file.as_str(), bytes)], |d| {
            let lease = check(d.blobs.get(&key))?;
            d.etag_counter += 1;
            let tag = blob_etag(d.etag_counter);
            d.blobs.insert(
                key,
                BlobMeta {
                    file: file.clone(),
                    etag: tag.clone(),
                    lease,
                    ..meta
                },
            );
            Ok(tag)
        })
        .await
    }

    /// Deletes a blob with its bytes, and its snapshots as `snapshots` says, if `check` accepts its
    /// current metadata (`None` when it does not exist) and its number of snapshots, evaluated under the
    /// store's lock.
    pub(crate) async fn delete_blob<E>(
        &self,
        (account, container, name): (&str, &str, &str),
        snapshots: DeleteSnapshots,
        check: impl FnOnce(Option<&BlobMeta>, usize) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        let key = blob_key(account, container, name);
        let prefix = snapshots_prefix(account, container, Some(name));
        self.mutate(|d| {
            let count = d.blobs.with_prefix(&prefix).count();
            check(d.blobs.get(&key), count)?;
            if snapshots != DeleteSnapshots::Only {
                d.blobs.remove(&key);
            }
            if snapshots != DeleteSnapshots::None {
                d.remove_blobs(&prefix);
            }
            Ok(())
        })
        .await
    }

    /// One snapshot of a blob (`snapshot` as `x-ms-snapshot` named it).
    pub(crate) fn blob_snapshot(
        &self,
        (account, container, name): (&str, &str, &str),
        snapshot: &str,
    ) -> Option<BlobMeta> {
        self.read(|d| {
            d.blobs
                .get(&snapshot_key(account, container, name, snapshot))
                .cloned()
        })
    }

    /// Takes a snapshot of a blob whose current metadata is `base` and whose bytes are `bytes`: a
    /// read-only copy of its content, properties and metadata, with a time of its own (unique among
    /// the blob's snapshots). Returns that time, or `None` when the blob no longer has the ETag of
    /// `base` (it was written or deleted meanwhile; the caller reads it again).
    pub(crate) async fn snapshot_blob(
        &self,
        (account, container, name): (&str, &str, &str),
        base: &BlobMeta,
        bytes: &[u8],
    ) -> Result<Option<String>, StoreError> {
        let file = uuid::Uuid::new_v4().simple().to_string();
        let key = blob_key(account, container, name);
        self.mutate_with(&[(file.as_str(), bytes)], |d| {
            if d.blobs.get(&key).map(|m| &m.etag) != Some(&base.etag) {
                return None;
            }
            let mut at = time::OffsetDateTime::now_utc();
            let mut snapshot = snapshot_time(at);
            while d
                .blobs
                .contains_key(&snapshot_key(account, container, name, &snapshot))
            {
                at += time::Duration::nanoseconds(100);
                snapshot = snapshot_time(at);
            }
            d.blobs.insert(
                snapshot_key(account, container, name, &snapshot),
                // A snapshot is never leased (Lease Blob acts on the base blob only).
                BlobMeta {
                    file: file.clone(),
                    lease: None,
                    ..base.clone()
                },
            );
            Some(snapshot)
        })
        .await
    }

    /// Deletes one snapshot of a blob if `check` accepts it (`None` when there is no such snapshot).
    pub(crate) async fn delete_blob_snapshot<E>(
        &self,
        (account, container, name): (&str, &str, &str),
        snapshot: &str,
        check: impl FnOnce(Option<&BlobMeta>) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        let key = snapshot_key(account, container, name, snapshot);
        self.mutate(|d| {
            check(d.blobs.get(&key))?;
            d.blobs.remove(&key);
            Ok(())
        })
        .await
    }

    // ---- identities and role assignments ----

    /// Stores a user-assigned identity; `principal` is its new principal on create.
    pub(crate) async fn put_identity(
        &self,
        key: &str,
        body: Value,
        principal: Option<Principal>,
    ) -> Result<(), StoreError> {
        self.mutate(|d| {
            if let Some(p) = principal {
                d.principals.insert(p.object_id.clone(), p);
            }
            d.resources.insert(key.to_string(), body);
        })
        .await
    }

    /// Deletes a user-assigned identity and its principal.
    pub(crate) async fn delete_identity(
        &self,
        key: &str,
        principal_id: &str,
    ) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.resources.remove(key);
            d.principals.remove(principal_id);
        })
        .await
    }

    pub(crate) async fn put_role_assignment(
        &self,
        key: &str,
        ra: RoleAssignment,
    ) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.role_assignments.insert(key.to_string(), ra);
        })
        .await
    }

    pub(crate) async fn delete_role_assignment(&self, key: &str) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.role_assignments.remove(key);
        })
        .await
    }

    // ---- online endpoints and operations ----

    /// Stores an endpoint PUT: body, operation, and on create its keys and new principal. Returns
    /// `false` when a create lost the race to another create of the same endpoint (nothing stored).
    pub(crate) async fn put_endpoint(&self, w: EndpointWrite) -> Result<bool, StoreError> {
        self.mutate(|d| {
            if w.create && d.resources.contains_key(&w.key) {
                return false;
            }
            if let Some(p) = w.principal {
                d.principals.insert(p.object_id.clone(), p);
            }
            if w.create {
                d.secrets.insert(format!("{}#primary", w.key), w.keys.0);
                d.secrets.insert(format!("{}#secondary", w.key), w.keys.1);
            }
            d.resources.insert(w.key, w.body);
            d.operations.insert(w.operation.id.clone(), w.operation);
            true
        })
        .await
    }

    /// Records a new operation.
    pub(crate) async fn add_operation(&self, op: Operation) -> Result<(), StoreError> {
        self.mutate(|d| {
            d.operations.insert(op.id.clone(), op);
        })
        .await
    }

    /// Ends a deployment start: sets the deployment's provisioning state and finishes its operation.
    pub(crate) async fn finish_deployment(
        &self,
        key: &str,
        state: &str,
        op_id: Option<&str>,
        error: Option<Value>,
    ) -> Result<(), StoreError> {
        self.mutate(|d| {
            if let Some(r) = d.resources.get_mut(key) {
                r["properties"]["provisioningState"] = state.into();
            }
            if let Some(op) = op_id.and_then(|o| d.operations.get_mut(o)) {
                op.status = state.into();
                op.error = error;
                op.ended = Some(super::now_rfc3339());
            }
        })
        .await
    }

    /// Finishes time-based operations whose delay has passed (storage account creation, endpoint PUT,
    /// PATCH and DELETE), marking their resources `Succeeded`. Deployment PUTs are finished by the
    /// runner ([`Store::finish_deployment`]).
    pub(crate) async fn settle_due_operations(&self, now: u64) -> Result<(), StoreError> {
        let due = |o: &Operation| {
            o.status == "InProgress" && o.ready_ms <= now && o.kind != "deployment-put"
        };
        let any_due = |d: &Data| {
            d.in_progress
                .iter()
                .filter_map(|id| d.operations.get(id))
                .any(due)
        };
        if !self.read(any_due) {
            return Ok(());
        }
        self.mutate(|d| {
            let ids: Vec<String> = d
                .in_progress
                .iter()
                .filter_map(|id| d.operations.get(id))
                .filter(|o| {
                    // Never settle a PUT whose resource is not stored: the resource would then stay
                    // `Creating` for ever (PUTs store both together; this guards any that do not).
                    let stored =
                        !o.kind.ends_with("-put") || d.resources.contains_key(&o.resource_key);
                    due(o) && stored
                })
                .map(|o| o.id.clone())
                .collect();
            for id in ids {
                let Some(op) = d.operations.get_mut(&id) else {
                    continue;
                };
                op.status = "Succeeded".into();
                op.ended = Some(super::now_rfc3339());
                let key = op.resource_key.clone();
                if let Some(r) = d.resources.get_mut(&key)
                    && let Some(ps) = r.pointer_mut("/properties/provisioningState")
                    && (ps == "Creating" || ps == "Updating")
                {
                    *ps = "Succeeded".into();
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::data::{test_blob_meta as meta, test_data as seed};
    use super::*;
    use serde_json::json;

    const ACCT: &str =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acct";

    async fn put(store: &Store, container: &str, name: &str) {
        store
            .put_blob((ACCT_NAME, container, name), b"x", meta(), |_| {
                Ok::<_, ()>(None)
            })
            .await
            .unwrap()
            .unwrap();
    }

    const ACCT_NAME: &str = "acct";

    #[test]
    fn a_window_of_children_is_that_slice_of_all_of_them_with_their_count() {
        // A list page copies only its window of the collection (StorageAccounts_ListByResourceGroup
        // rendered every account on every page); the pages must still add up to the collection.
        let mut d = seed();
        let group = "/subscriptions/s/resourcegroups/rg/providers/microsoft.storage";
        for name in ["a1", "a2", "a3", "a4", "a5"] {
            let key = format!("{group}/storageaccounts/{name}");
            d.insert_resource(key.clone(), json!({"name": name}));
            // A grandchild is not a child.
            d.insert_resource(format!("{key}/blobservices/default"), json!({"name": "x"}));
        }
        let names = |v: &[Value]| -> Vec<String> {
            v.iter()
                .map(|b| b["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let all = d.children(group, "storageAccounts");
        assert_eq!(names(&all), ["a1", "a2", "a3", "a4", "a5"]);
        let mut paged = Vec::new();
        for skip in (0..6).step_by(2) {
            let (page, total) = d.children_window(group, "storageAccounts", skip, 2);
            assert_eq!(total, 5);
            assert_eq!(page.len(), 2.min(5 - skip));
            paged.extend(page);
        }
        assert_eq!(paged, all);
        assert_eq!(
            d.children_window(group, "storageAccounts", 9, 2),
            (Vec::new(), 5)
        );
    }

    /// How many blob contents the database holds (as `sqlite3 store.db 'SELECT count(*) FROM
    /// blob_content'` would say).
    fn files(dir: &std::path::Path) -> usize {
        let conn = rusqlite::Connection::open(dir.join(super::super::db::DB_FILE)).unwrap();
        conn.query_row("SELECT count(*) FROM blob_content", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    }

    #[tokio::test]
    async fn deleting_a_container_deletes_its_blobs_and_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        let c1 = format!("{ACCT}/blobservices/default/containers/c1");
        store.put_resource(ACCT, json!({})).await.unwrap();
        store.put_container(&c1, |_, _| json!({})).await.unwrap();
        put(&store, "c1", "a/b.txt").await;
        put(&store, "C1", "c.txt").await;
        put(&store, "c2", "d.txt").await;
        assert_eq!(files(dir.path()), 3);
        store.delete_container(ACCT, "C1").await.unwrap();
        assert!(!store.has_resource(&c1));
        assert!(store.has_resource(ACCT));
        assert!(store.blobs_under("acct", "c1", "").is_empty());
        assert_eq!(store.blobs_under("acct", "c2", "").len(), 1);
        assert_eq!(files(dir.path()), 1);
    }

    #[tokio::test]
    async fn deleting_an_account_deletes_everything_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        let op = Operation {
            id: "op".into(),
            kind: "storage-create".into(),
            resource_key: ACCT.into(),
            started: String::new(),
            ready_ms: 0,
            status: "InProgress".into(),
            error: None,
            ended: None,
        };
        store
            .create_storage_account(ACCT, json!({}), ("k1".into(), "k2".into()), op)
            .await
            .unwrap();
        assert_eq!(store.secret(ACCT, "key2").as_deref(), Some("k2"));
        let c1 = format!("{ACCT}/blobservices/default/containers/c1");
        store.put_container(&c1, |_, _| json!({})).await.unwrap();
        put(&store, "c1", "a").await;
        store
            .put_role_assignment(
                "ra",
                RoleAssignment {
                    id: "ra".into(),
                    name: "ra".into(),
                    scope: c1.clone(),
                    role_definition_id: String::new(),
                    principal_id: "p".into(),
                    principal_type: "User".into(),
                    description: None,
                    created_ms: 0,
                    created_on: String::new(),
                },
            )
            .await
            .unwrap();
        store.delete_storage_account(ACCT).await.unwrap();
        assert!(!store.has_resource(ACCT) && !store.has_resource(&c1));
        assert_eq!(store.secret(ACCT, "key1"), None);
        assert!(store.role_assignments().is_empty());
        assert!(store.blobs_under("acct", "c1", "").is_empty());
        assert_eq!(files(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_refused_blob_write_keeps_the_old_blob_and_no_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        put(&store, "c", "n").await;
        let before = store.blob("acct", "c", "n").unwrap();
        let refused = store
            .put_blob(("acct", "c", "n"), b"y", meta(), |m| {
                if m.is_some() { Err("exists") } else { Ok(None) }
            })
            .await
            .unwrap();
        assert_eq!(refused, Err("exists"));
        assert_eq!(store.blob("acct", "c", "n").unwrap().etag, before.etag);
        assert_eq!(files(dir.path()), 1);
        let gone = store
            .delete_blob(("acct", "c", "n"), DeleteSnapshots::None, |m, _| {
                m.map(|_| ()).ok_or("missing")
            })
            .await
            .unwrap();
        assert_eq!(gone, Ok(()));
        assert_eq!(files(dir.path()), 0);
        assert_eq!(
            store
                .delete_blob(("acct", "c", "n"), DeleteSnapshots::None, |m, _| {
                    m.map(|_| ()).ok_or("missing")
                })
                .await
                .unwrap(),
            Err("missing")
        );
    }

    /// A snapshot keeps its own copy of the bytes: overwriting the blob leaves it whole, a plain delete
    /// is refused while it exists, and deleting with its snapshots (or the container) leaves no content.
    #[tokio::test]
    async fn snapshots_outlive_writes_and_go_with_their_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        let c1 = format!("{ACCT}/blobservices/default/containers/c1");
        store.put_resource(ACCT, json!({})).await.unwrap();
        store.put_resource(&c1, json!({})).await.unwrap();
        put(&store, "c1", "n").await;
        let base = store.blob("acct", "c1", "n").unwrap();
        let first = store
            .snapshot_blob(("acct", "c1", "n"), &base, b"x")
            .await
            .unwrap()
            .unwrap();
        let second = store
            .snapshot_blob(("acct", "c1", "n"), &base, b"x")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(first, second, "each snapshot has a time of its own");
        assert_eq!(first.len(), "2019-10-11T18:08:07.8904776Z".len());
        put(&store, "c1", "n").await;
        assert_eq!(
            store
                .snapshot_blob(("acct", "c1", "n"), &base, b"x")
                .await
                .unwrap(),
            None,
            "a blob written since it was read is not snapshotted"
        );
        let snap = store.blob_snapshot(("acct", "c1", "n"), &first).unwrap();
        assert_eq!(store.read_blob_file(&snap.file).unwrap(), b"x");
        assert_eq!(store.blobs_under("acct", "c1", "").len(), 1, "not listed");
        assert_eq!(files(dir.path()), 3);
        let refused = store
            .delete_blob(("acct", "c1", "n"), DeleteSnapshots::None, |_, n| {
                if n > 0 { Err(n) } else { Ok(()) }
            })
            .await
            .unwrap();
        assert_eq!(refused, Err(2));
        store
            .delete_blob_snapshot(("acct", "c1", "n"), &first, |m| m.map(|_| ()).ok_or(()))
            .await
            .unwrap()
            .unwrap();
        assert!(store.blob_snapshot(("acct", "c1", "n"), &first).is_none());
        store
            .delete_blob(("acct", "c1", "n"), DeleteSnapshots::Include, |_, _| {
                Ok::<_, ()>(())
            })
            .await
            .unwrap()
            .unwrap();
        assert!(store.blob_snapshot(("acct", "c1", "n"), &second).is_none());
        assert_eq!(files(dir.path()), 0);
        put(&store, "c1", "m").await;
        let base = store.blob("acct", "c1", "m").unwrap();
        store
            .snapshot_blob(("acct", "c1", "m"), &base, b"x")
            .await
            .unwrap()
            .unwrap();
        store.delete_container(ACCT, "c1").await.unwrap();
        assert_eq!(files(dir.path()), 0, "the container's snapshots go with it");
    }

    #[tokio::test]
    async fn children_are_direct_and_case_insensitive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        for k in ["/p/kids/a", "/p/kids/b", "/p/kids/a/deeper", "/p/other/c"] {
            store.put_resource(k, json!({"k": k})).await.unwrap();
        }
        let kids = store.children("/P", "Kids");
        assert_eq!(kids.len(), 2);
    }

    #[tokio::test]
    async fn due_operations_settle_their_resources() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        let op = |id: &str, kind: &str| Operation {
            id: id.into(),
            kind: kind.into(),
            resource_key: "/r".into(),
            started: String::new(),
            ready_ms: 5,
            status: "InProgress".into(),
            error: None,
            ended: None,
        };
        store
            .put_resource_with_operation(
                "/r",
                json!({"properties": {"provisioningState": "Creating"}}),
                op("a", "endpoint-put"),
            )
            .await
            .unwrap();
        store
            .add_operation(op("b", "deployment-put"))
            .await
            .unwrap();
        store.settle_due_operations(4).await.unwrap();
        assert_eq!(store.operation("a").unwrap().status, "InProgress");
        store.settle_due_operations(5).await.unwrap();
        assert_eq!(store.operation("a").unwrap().status, "Succeeded");
        assert_eq!(store.operation("b").unwrap().status, "InProgress");
        assert_eq!(
            store.resource("/r").unwrap()["properties"]["provisioningState"],
            "Succeeded"
        );
    }
}
