//! The blob operations that change a stored blob other than by replacing it whole: a change of its
//! record alone (a lease action, Set Blob Metadata), with or without a new ETag, and a rewrite of its
//! bytes decided on the record found under the lock (Append Block).
//!
//! Like every store operation, each is one mutation committed in one transaction, its decision made
//! by the caller's closure on the record as it is under the store's lock, so two writers racing on one
//! blob cannot both act on the same old record. It never interprets HTTP or decides a request's
//! answer: the closures do.
use super::disk::StoreError;
use super::handle::Store;
use super::ops::{blob_etag, blob_key};
use super::records::BlobMeta;

/// What a record change does.
pub(crate) enum RecordChange {
    /// The record as it now is, with the same ETag (a lease action changes neither the ETag nor
    /// Last-Modified: learn.microsoft.com rest/api/storageservices/lease-blob, response headers).
    Keep(BlobMeta),
    /// The record with a new ETag (Set Blob Metadata changes both).
    Modified(BlobMeta),
}

impl Store {
    /// Changes a blob's record (its bytes unchanged) to what `change` makes of the current one
    /// (`None` when the blob does not exist); `change` refusing stores nothing. Returns the record as
    /// stored (with its ETag).
    pub(crate) async fn change_blob<E>(
        &self,
        (account, container, name): (&str, &str, &str),
        change: impl FnOnce(Option<&BlobMeta>) -> Result<RecordChange, E>,
    ) -> Result<Result<BlobMeta, E>, StoreError> {
        let key = blob_key(account, container, name);
        self.mutate(|d| {
            let current = d.blobs.get(&key);
            let file = current.map(|m| m.file.clone());
            let mut next = match change(current)? {
                RecordChange::Keep(m) => m,
                RecordChange::Modified(m) => {
                    d.etag_counter += 1;
                    BlobMeta {
                        etag: blob_etag(d.etag_counter),
                        ..m
                    }
                }
            };
            // The bytes stay those of the current record whatever the closure left in `file`.
            if let Some(file) = file {
                next.file = file;
            }
            d.blobs.insert(key, next.clone());
            Ok(next)
        })
        .await
    }

    /// Replaces a blob's bytes with `bytes` and its record with what `change` makes of the current
    /// one, with a new ETag, in one transaction. `change` returns `None` when the record is no longer
    /// the one `bytes` were made from (the caller reads again and retries); then nothing is stored.
    /// Returns the record as stored.
    pub(crate) async fn rewrite_blob<E>(
        &self,
        (account, container, name): (&str, &str, &str),
        bytes: &[u8],
        change: impl FnOnce(Option<&BlobMeta>) -> Result<Option<BlobMeta>, E>,
    ) -> Result<Result<Option<BlobMeta>, E>, StoreError> {
        let file = uuid::Uuid::new_v4().simple().to_string();
        let key = blob_key(account, container, name);
        self.mutate_with(&[(file.as_str(), bytes)], |d| {
            let Some(m) = change(d.blobs.get(&key))? else {
                return Ok(None);
            };
            d.etag_counter += 1;
            let next = BlobMeta {
                file: file.clone(),
                etag: blob_etag(d.etag_counter),
                ..m
            };
            d.blobs.insert(key, next.clone());
            Ok(Some(next))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::data::{test_blob_meta as meta, test_data as seed};
    use super::*;

    #[tokio::test]
    async fn a_record_change_keeps_the_bytes_and_the_etag_unless_modified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        let key = ("acct", "c", "n");
        let tag = store
            .put_blob(key, b"x", meta(), |_| Ok::<_, ()>(None))
            .await
            .unwrap()
            .unwrap();
        let before = store.blob("acct", "c", "n").unwrap();
        let kept = store
            .change_blob(key, |m| {
                let mut m = m.cloned().ok_or("missing")?;
                m.file = "elsewhere".into();
                m.committed_blocks = 7;
                Ok::<_, &str>(RecordChange::Keep(m))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (kept.etag.as_str(), kept.file.as_str()),
            (tag.as_str(), before.file.as_str())
        );
        let modified = store
            .change_blob(key, |m| {
                Ok::<_, ()>(RecordChange::Modified(m.cloned().unwrap()))
            })
            .await
            .unwrap()
            .unwrap();
        assert_ne!(modified.etag, tag);
        assert_eq!(store.read_blob_file(&modified.file).unwrap(), b"x");
        assert_eq!(store.blob("acct", "c", "n").unwrap().committed_blocks, 7);
        let refused = store
            .change_blob(key, |_| Err::<RecordChange, _>("no"))
            .await
            .unwrap();
        assert!(matches!(refused, Err("no")));
    }

    #[tokio::test]
    async fn a_rewrite_replaces_the_bytes_or_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        let key = ("acct", "c", "n");
        store
            .put_blob(key, b"x", meta(), |_| Ok::<_, ()>(None))
            .await
            .unwrap()
            .unwrap();
        let before = store.blob("acct", "c", "n").unwrap();
        let stale = store
            .rewrite_blob(key, b"xy", |_| Ok::<_, ()>(None))
            .await
            .unwrap()
            .unwrap();
        assert!(stale.is_none());
        assert_eq!(store.blob("acct", "c", "n").unwrap().etag, before.etag);
        let done = store
            .rewrite_blob(key, b"xy", |m| Ok::<_, ()>(m.cloned()))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_ne!(done.etag, before.etag);
        assert_eq!(store.read_blob_file(&done.file).unwrap(), b"xy");
        // The replaced bytes are gone with the old record.
        assert!(store.read_blob_file(&before.file).is_err());
    }
}
