//! Blob snapshots, which a rollback uses to put back the content a blob had before the run: one
//! journey of the provider's blob client (Create Snapshot, Get Blob of a snapshot, Delete Blob with and
//! without `x-ms-delete-snapshots`, delete of one snapshot) run against Microsoft's own emulator,
//! Azurite, and against the local cloud, so the local cloud answers as the service does.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::Method;
use stackform::provider::blob::BlobClient;
use stackform::provider::pipeline::{Auth, HttpRequest, Pipeline};
use stackform::provider::shared_key::SharedKeyCredential;

use crate::support::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use crate::support::cloud::Cloud;
use crate::support::provider::pipeline;

/// A SharedKey client of `account` at `endpoint`, and the same credential for raw requests.
struct Blobs {
    client: BlobClient,
    pipeline: Pipeline,
    auth: Auth,
    endpoint: url::Url,
}

impl Blobs {
    fn new(endpoint: url::Url, account: &str, key: &str, ca: Option<&[u8]>) -> Blobs {
        let pipeline = pipeline(ca);
        let cred = SharedKeyCredential::new(account, key).unwrap();
        let client = BlobClient::with_shared_key(
            pipeline.clone(),
            endpoint.clone(),
            SharedKeyCredential::new(account, key).unwrap(),
            "2025-11-05",
        );
        Blobs {
            client,
            pipeline,
            auth: Auth::SharedKey(Arc::new(cred)),
            endpoint,
        }
    }

    /// A DELETE of `container/name` with the query `query` and the headers `headers`, as sent: the
    /// status and the error code.
    async fn delete(
        &self,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>) {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .unwrap()
            .pop_if_empty()
            .extend(path.split('/'));
        for (k, v) in query {
            url.query_pairs_mut().append_pair(k, v);
        }
        let mut req = HttpRequest::new(Method::DELETE, url)
            .header("x-ms-version", "2025-11-05")
            .unwrap();
        for (k, v) in headers {
            req = req.header(k, v).unwrap();
        }
        let resp = self.pipeline.send(req, &self.auth).await.unwrap();
        (
            resp.status,
            resp.header("x-ms-error-code").map(str::to_owned),
        )
    }
}

/// The content of `snapshot` of `dir/a.txt`, `None` when there is no such snapshot.
async fn snapshot_of(blobs: &BlobClient, snapshot: &str) -> Option<Bytes> {
    blobs
        .get_blob_at("snaps", "dir/a.txt", Some(snapshot))
        .await
        .unwrap()
        .map(|(bytes, _)| bytes)
}

/// The journey both services must agree on.
async fn snapshot_journey(b: &Blobs) {
    let blobs = &b.client;
    blobs.create_container("snaps").await.unwrap();
    let put = |text: &'static str| async move {
        blobs
            .put_blob(
                "snaps",
                "dir/a.txt",
                Bytes::from_static(text.as_bytes()),
                Some("text/plain"),
                &BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            )
            .await
            .unwrap()
    };
    put("old text").await;
    let first = blobs
        .snapshot_blob("snaps", "dir/a.txt")
        .await
        .unwrap()
        .expect("x-ms-snapshot");
    // `2019-10-11T18:08:07.8904776Z`: UTC, seven fractional digits.
    assert_eq!(first.len(), 28, "{first}");
    assert!(
        first.ends_with('Z') && first.as_bytes()[19] == b'.',
        "{first}"
    );
    put("new text").await;

    // The snapshot keeps the content and the properties it had; the blob has the new content.
    let (old, props) = blobs
        .get_blob_at("snaps", "dir/a.txt", Some(&first))
        .await
        .unwrap()
        .expect("the snapshot");
    assert_eq!(&old[..], b"old text");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.metadata.get("k").map(String::as_str), Some("v"));
    let (now, _) = blobs.get_blob("snaps", "dir/a.txt").await.unwrap().unwrap();
    assert_eq!(&now[..], b"new text");
    let listed = blobs.list_blobs("snaps", None).await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "a listing without include=snapshots shows the blob only"
    );

    // A plain delete of a blob that has snapshots is refused; the header on a snapshot is invalid.
    assert_eq!(
        b.delete("snaps/dir/a.txt", &[], &[]).await,
        (409, Some("SnapshotsPresent".into()))
    );
    assert_eq!(
        b.delete(
            "snaps/dir/a.txt",
            &[("snapshot", first.as_str())],
            &[("x-ms-delete-snapshots", "include")]
        )
        .await,
        (400, Some("InvalidOperation".into()))
    );

    // One snapshot goes alone; the blob stays.
    assert!(
        blobs
            .delete_snapshot("snaps", "dir/a.txt", &first)
            .await
            .unwrap()
    );
    assert!(
        !blobs
            .delete_snapshot("snaps", "dir/a.txt", &first)
            .await
            .unwrap()
    );
    assert_eq!(snapshot_of(blobs, &first).await, None);
    assert!(
        blobs
            .get_blob("snaps", "dir/a.txt")
            .await
            .unwrap()
            .is_some()
    );

    // With `include`, the blob and its snapshots go together.
    let second = blobs
        .snapshot_blob("snaps", "dir/a.txt")
        .await
        .unwrap()
        .unwrap();
    assert!(blobs.delete_blob("snaps", "dir/a.txt").await.unwrap());
    assert!(
        blobs
            .get_blob("snaps", "dir/a.txt")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(snapshot_of(blobs, &second).await, None);
    // A snapshot of a blob that does not exist: nothing.
    assert_eq!(
        blobs.snapshot_blob("snaps", "dir/a.txt").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn snapshots_against_azurite() {
    let azurite = Azurite::start().await;
    let b = Blobs::new(azurite.endpoint(), DEV_ACCOUNT, DEV_KEY, None);
    snapshot_journey(&b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_against_the_local_cloud() {
    let cloud = Cloud::start_in_process().await;
    cloud.create_storage("snapacct1").await;
    let key = cloud.account_key("snapacct1").await;
    let endpoint = url::Url::parse(&cloud.blob_url("snapacct1", "")).unwrap();
    let ca = std::fs::read(&cloud.info.ca_cert).unwrap();
    let b = Blobs::new(endpoint, "snapacct1", &key, Some(&ca));
    snapshot_journey(&b).await;
}
