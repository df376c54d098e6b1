//! The provider's blob data plane and SharedKey signing, judged by Microsoft's own emulator: Azurite
//! verifies every SharedKey signature, so a wrong string-to-sign fails these tests.
//!
//! Azurite is started by [`crate::support::azurite`].

use std::collections::BTreeMap;

use bytes::Bytes;
use stackform::provider::blob::{BlobClient, content_md5};
use stackform::provider::pipeline::Auth;
use stackform::provider::shared_key::SharedKeyCredential;

use crate::support::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use crate::support::provider::pipeline;

fn client(azurite: &Azurite, key: &str) -> BlobClient {
    let cred = SharedKeyCredential::new(DEV_ACCOUNT, key).unwrap();
    BlobClient::with_shared_key(pipeline(None), azurite.endpoint(), cred, "2025-11-05")
}

#[tokio::test]
async fn shared_key_blob_round_trip_against_azurite() {
    let azurite = Azurite::start().await;
    let blobs = client(&azurite, DEV_KEY);

    assert!(
        blobs.create_container("hello").await.unwrap(),
        "first create makes the container"
    );
    assert!(
        !blobs.create_container("hello").await.unwrap(),
        "second create finds it"
    );

    let data = Bytes::from_static(b"Hello world!");
    let mut meta = BTreeMap::new();
    meta.insert("upload_status".to_owned(), "completed".to_owned());
    let put = blobs
        .put_blob(
            "hello",
            "dir/hello world.txt",
            data.clone(),
            Some("text/plain"),
            &meta,
        )
        .await
        .unwrap();
    assert_eq!(
        put.content_md5.as_deref(),
        Some(content_md5(&data).as_str())
    );
    assert!(!put.etag.is_empty());

    let head = blobs
        .head_blob("hello", "dir/hello world.txt")
        .await
        .unwrap()
        .expect("blob exists");
    assert_eq!(head.content_length, 12);
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        head.metadata.get("upload_status").map(String::as_str),
        Some("completed")
    );
    assert_eq!(
        head.content_md5.as_deref(),
        Some("hvsmnRkNLIX24EaM7KQqIA==")
    );

    let (body, props) = blobs
        .get_blob("hello", "dir/hello world.txt")
        .await
        .unwrap()
        .expect("blob exists");
    assert_eq!(body, data);
    assert_eq!(props.etag, head.etag);

    blobs
        .put_blob(
            "hello",
            "other.bin",
            Bytes::from_static(&[0u8, 1, 2]),
            None,
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    // An empty body goes out with `Content-Length: 0`, signed as the empty string (version
    // 2015-02-21 and later); Azurite verifies the signature.
    blobs
        .put_blob("hello", "empty", Bytes::new(), None, &BTreeMap::new())
        .await
        .unwrap();
    let empty = blobs
        .head_blob("hello", "empty")
        .await
        .unwrap()
        .expect("the empty blob exists");
    assert_eq!(empty.content_length, 0);
    blobs.delete_blob("hello", "empty").await.unwrap();
    let mut names: Vec<String> = blobs
        .list_blobs("hello", None)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["dir/hello world.txt".to_owned(), "other.bin".to_owned()]
    );
    let under_dir = blobs.list_blobs("hello", Some("dir/")).await.unwrap();
    assert_eq!(under_dir.len(), 1);
    assert_eq!(
        under_dir[0].properties.content_md5.as_deref(),
        Some("hvsmnRkNLIX24EaM7KQqIA==")
    );

    assert!(
        blobs
            .delete_blob("hello", "dir/hello world.txt")
            .await
            .unwrap()
    );
    assert!(
        !blobs
            .delete_blob("hello", "dir/hello world.txt")
            .await
            .unwrap(),
        "second delete finds nothing"
    );
    assert_eq!(
        blobs
            .get_blob("hello", "dir/hello world.txt")
            .await
            .unwrap(),
        None
    );
    assert_eq!(blobs.head_blob("nocontainer", "x").await.unwrap(), None);
}

#[tokio::test]
async fn wrong_key_is_an_auth_error_without_the_key_in_it() {
    let azurite = Azurite::start().await;
    // A valid base64 key that is not the account's.
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let blobs = client(&azurite, wrong);
    let err = blobs.create_container("denied").await.unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert!(!err.is_retryable());
    let text = format!("{err} {err:?}");
    assert!(!text.contains(wrong) && !text.contains(DEV_KEY), "{text}");
    // Bearer auth without a credential configured is refused locally, before any request.
    let anonymous = BlobClient::new(
        pipeline(None),
        azurite.endpoint(),
        Auth::Bearer("https://storage.azure.com/.default".into()),
        "2025-11-05",
    );
    assert!(anonymous.create_container("x").await.unwrap_err().is_auth());
}
