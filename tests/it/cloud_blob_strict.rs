//! The blob data plane of the local cloud against Azure's documented behaviour, with raw HTTP/1.1 (header
//! names as sent and as answered): each rule was a departure found by a differential run against
//! Azurite and triaged against Azure's documentation and recorded traffic. Where Azurite behaves as
//! Azure does, the same request goes to both and the answers are compared; where Azurite departs from
//! Azure (or cannot be asked: its api-version check is off), the local cloud is checked alone.
use crate::support::blob_pair::{RawAnswer, Sign, same, services, xml_code};

/// Metadata names lost their case (the HTTP stack lowercases header names): Azure keeps it
/// ("Metadata names preserve the case with which they were created": learn.microsoft.com
/// rest/api/storageservices setting-and-retrieving-properties-and-metadata-for-blob-resources), as
/// Azurite does, and List Blobs with `include=metadata` reported `<mykey>`, Get Blob Properties
/// `x-ms-meta-mykey`. Also `AccessTierInferred` was missing from the listing (blob.json 2025-11-05,
/// BlobPropertiesInternal) and `x-ms-access-tier-inferred` from the properties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_keeps_its_case_and_the_tier_is_reported_inferred_like_azurite() {
    let (_c, _a, both) = services().await;
    for s in &both {
        let put = s
            .put_blob(
                "meta.txt",
                &[("x-ms-meta-MyKey", "v1"), ("X-MS-META-lower", "v2")],
                b"hello",
            )
            .await;
        assert_eq!(put.status, 201, "{}: {put:?}", s.name);
        let list = s
            .call(
                "GET",
                "box?restype=container&comp=list&include=metadata",
                &[],
                b"",
                false,
                Sign::SharedKey,
            )
            .await;
        assert_eq!(list.status, 200, "{}: {list:?}", s.name);
        for part in [
            "<Metadata><MyKey>v1</MyKey><lower>v2</lower></Metadata>",
            "<AccessTierInferred>true</AccessTierInferred>",
        ] {
            assert!(
                list.body.contains(part),
                "{}: no {part} in {}",
                s.name,
                list.body
            );
        }
        // Get Blob Properties names the metadata as it was set, on the wire.
        let head = s
            .call("HEAD", "box/meta.txt", &[], b"", false, Sign::SharedKey)
            .await;
        assert_eq!(head.status, 200, "{}: {head:?}", s.name);
        let mut names: Vec<&str> = head
            .headers
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.to_ascii_lowercase().starts_with("x-ms-meta-"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["x-ms-meta-MyKey", "x-ms-meta-lower"],
            "{}: {head:?}",
            s.name
        );
        assert_eq!(head.header("x-ms-access-tier-inferred"), Some("true"));
    }
}

/// A 304 carried an XML error body and its `Content-Length`; Azure's (and Azurite's) has neither
/// (RFC 9110 section 15.4.5: a 304 has no content).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_modified_has_no_body_and_no_content_length() {
    let (_c, _a, both) = services().await;
    let mut answers = Vec::new();
    for s in &both {
        let put = s.put_blob("a.txt", &[], b"hello").await;
        let etag = put.header("etag").expect("an ETag").to_string();
        let a = s
            .call(
                "GET",
                "box/a.txt",
                &[("If-None-Match", &etag)],
                b"",
                false,
                Sign::SharedKey,
            )
            .await;
        assert_eq!(a.header("content-length"), None, "{}: {a:?}", s.name);
        assert!(a.body.is_empty(), "{}: {a:?}", s.name);
        answers.push(a);
    }
    let answers: [RawAnswer; 2] = answers.try_into().expect("two answers");
    assert_eq!(same("If-None-Match", &answers).status, 304);
}

/// A malformed `Content-MD5` was answered `Md5Mismatch` (Azure: 400 `InvalidMd5`), and a wrong one
/// without the `UserSpecifiedMd5`/`ServerCalculatedMd5` elements Azure's answer has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_md5_errors_match_azurite() {
    let (_c, _a, both) = services().await;
    for (md5, code) in [
        ("not-base64!", "InvalidMd5"),
        ("AAAA", "InvalidMd5"),
        ("AAAAAAAAAAAAAAAAAAAAAA==", "Md5Mismatch"),
    ] {
        let mut answers = Vec::new();
        for s in &both {
            answers.push(s.put_blob("m", &[("Content-MD5", md5)], b"abc").await);
        }
        let answers: [RawAnswer; 2] = answers.try_into().expect("two answers");
        let local = same(md5, &answers);
        assert_eq!((local.status, local.code()), (400, Some(code)));
        assert_eq!(xml_code(local), Some(code));
        if code == "Md5Mismatch" {
            for s in [&answers[0], &answers[1]] {
                assert!(
                    s.body
                        .contains("<UserSpecifiedMd5>AAAAAAAAAAAAAAAAAAAAAA==</UserSpecifiedMd5>")
                        && s.body.contains(
                            "<ServerCalculatedMd5>kAFQmDzST7DWlj99KOF/cg==</ServerCalculatedMd5>"
                        ),
                    "{s:?}"
                );
            }
        }
    }
}

/// An unknown `x-ms-blob-type` was 501 `NotImplemented`; it is a malformed header, 400 (Azurite
/// answers 400 too; blob.json 2025-11-05 allows only `BlockBlob` on Put Blob).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_blob_type_is_400_like_azurite() {
    let (_c, _a, both) = services().await;
    let mut answers = Vec::new();
    for s in &both {
        answers.push(
            s.call(
                "PUT",
                "box/t",
                &[("x-ms-blob-type", "Foo")],
                b"abc",
                true,
                Sign::SharedKey,
            )
            .await,
        );
    }
    assert_eq!(answers[0].status, 400, "{:?}", answers[0]);
    assert_eq!(answers[0].status, answers[1].status, "{:?}", answers[1]);
    assert_eq!(answers[0].code(), Some("InvalidHeaderValue"));
    assert!(
        answers[0]
            .body
            .contains("<HeaderName>x-ms-blob-type</HeaderName><HeaderValue>Foo</HeaderValue>")
    );
}

/// Rules where Azurite departs from Azure (it answers an anonymous read 403 `AuthorizationFailure`
/// without a challenge, accepts any version with its check off, and a Put Blob without
/// `Content-Length` with an empty 400), so the local cloud is checked alone against Azure's documented
/// answers:
/// - an anonymous request: 401 `NoAuthenticationInformation` with the bearer challenge whose
///   `resource_id` has no trailing slash (it had one, and no challenge at all when anonymous);
/// - an `x-ms-version` the service does not serve: 400 `InvalidHeaderValue` naming the header (it was
///   served);
/// - Put Blob without `Content-Length`: 411 `MissingContentLengthHeader` (it stored an empty blob).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_unknown_version_and_missing_length_are_refused_as_azure_does() {
    let (c, _a, [local, _az]) = services().await;
    assert_eq!(local.put_blob("a.txt", &[], b"hello").await.status, 201);
    let anon = local
        .call("GET", "box/a.txt", &[], b"", false, Sign::Anonymous)
        .await;
    assert_eq!(
        (anon.status, anon.code()),
        (401, Some("NoAuthenticationInformation"))
    );
    assert_eq!(
        anon.header("www-authenticate"),
        Some(
            format!(
                "Bearer authorization_uri={}/{}/oauth2/authorize resource_id=https://storage.azure.com",
                c.info.arm_endpoint.trim_end_matches('/'),
                c.info.tenant_id
            )
            .as_str()
        )
    );
    let version = local
        .call(
            "GET",
            "box/a.txt",
            &[("x-ms-version", "2099-01-01")],
            b"",
            false,
            Sign::SharedKey,
        )
        .await;
    assert_eq!(
        (version.status, version.code()),
        (400, Some("InvalidHeaderValue"))
    );
    assert!(
        version
            .body
            .contains("<HeaderName>x-ms-version</HeaderName><HeaderValue>2099-01-01</HeaderValue>")
    );
    let served = local
        .call(
            "GET",
            "box/a.txt",
            &[("x-ms-version", "2021-12-02")],
            b"",
            false,
            Sign::SharedKey,
        )
        .await;
    assert_eq!(served.status, 200, "an older served version: {served:?}");
    let no_length = local
        .call(
            "PUT",
            "box/empty",
            &[("x-ms-blob-type", "BlockBlob")],
            b"",
            false,
            Sign::SharedKey,
        )
        .await;
    assert_eq!(
        (no_length.status, no_length.code()),
        (411, Some("MissingContentLengthHeader"))
    );
    let with_length = local
        .call(
            "PUT",
            "box/empty",
            &[("x-ms-blob-type", "BlockBlob")],
            b"",
            true,
            Sign::SharedKey,
        )
        .await;
    assert_eq!(with_length.status, 201, "{with_length:?}");
}
