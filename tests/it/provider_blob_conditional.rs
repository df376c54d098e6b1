//! The provider's conditional blob calls (`provider::blob_conditional`) against both real servers, the
//! local cloud and Azurite, with the same expectations: ETag-guarded writes that report a lost race,
//! a lease whose holder's metadata a refused caller reads, the lease actions, a lease nobody renews
//! running out so the next caller takes over, and an append blob written at known positions.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stackform::provider::blob::BlobClient;
use stackform::provider::blob_conditional::{
    AppendConditions, BlobRefusal, LeaseDuration, WriteCondition,
};
use stackform::provider::pipeline::{Pipeline, ReqwestTransport, SystemClock, build_http_client};
use stackform::provider::retry::RetryPolicy;
use stackform::provider::shared_key::SharedKeyCredential;

use crate::support::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use crate::support::cloud::Cloud;
use crate::support::wait_until;

const A: &str = "00000000-1111-2222-3333-444444444444";
const B: &str = "00000000-1111-2222-3333-555555555555";

fn pipeline(ca: Option<&[u8]>) -> Pipeline {
    Pipeline::new(
        Arc::new(ReqwestTransport::new(build_http_client(ca).unwrap())),
        Arc::new(SystemClock::default()),
        RetryPolicy::fast(),
        None,
    )
}

/// A SharedKey client for each server: the local cloud (an account `condacct`) and Azurite; the
/// servers stop when the guards drop.
async fn clients() -> (Cloud, Azurite, [(&'static str, BlobClient); 2]) {
    let c = Cloud::start_in_process().await;
    c.create_storage("condacct").await;
    let key = c.account_key("condacct").await;
    let pem = std::fs::read(&c.info.ca_cert).unwrap();
    let local = BlobClient::with_shared_key(
        pipeline(Some(&pem)),
        url::Url::parse(&c.blob_url("condacct", "")).unwrap(),
        SharedKeyCredential::new("condacct", &key).unwrap(),
        "2025-11-05",
    );
    let azurite = Azurite::start().await;
    let az = BlobClient::with_shared_key(
        pipeline(None),
        azurite.endpoint(),
        SharedKeyCredential::new(DEV_ACCOUNT, DEV_KEY).unwrap(),
        "2025-11-05",
    );
    for b in [&local, &az] {
        b.create_container("state").await.unwrap();
    }
    (c, azurite, [("local cloud", local), ("azurite", az)])
}

fn lock_metadata() -> BTreeMap<String, String> {
    [
        ("holder", "alice"),
        ("host", "ci-runner-7"),
        ("command", "apply"),
        ("start", "2026-12-05T15:00:00Z"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The state blob written only with preconditions, the lock taken by one holder and refused to the
/// next with the first holder's metadata, every lease action, and the journal appended at known
/// positions: the same outcomes from both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_leases_and_appends_on_both_servers() {
    let (_c, _a, servers) = clients().await;
    let none = BTreeMap::new();
    for (name, b) in &servers {
        let put = |data: &'static [u8], cond: WriteCondition, lease: Option<&'static str>| async move {
            b.put_blob_if(
                "state",
                "s.json",
                Bytes::from_static(data),
                &BTreeMap::new(),
                &cond,
                lease,
            )
            .await
        };
        // ETags: the first write only if there is none, the next only over what was read.
        let v1 = put(b"v1", WriteCondition::IfNotExists, None).await.unwrap();
        let again = put(b"v1", WriteCondition::IfNotExists, None).await;
        assert!(
            matches!(&again, Err(BlobRefusal::Changed { code }) if code == "BlobAlreadyExists"),
            "{name}: {again:?}"
        );
        let v2 = put(b"v2", WriteCondition::IfMatch(v1.etag.clone()), None)
            .await
            .unwrap();
        assert_ne!(v2.etag, v1.etag, "{name}");
        let stale = put(b"v3", WriteCondition::IfMatch(v1.etag.clone()), None).await;
        assert!(
            matches!(&stale, Err(BlobRefusal::Changed { code }) if code == "ConditionNotMet"),
            "{name}: {stale:?}"
        );
        let (body, _) = b.get_blob("state", "s.json").await.unwrap().unwrap();
        assert_eq!(&body[..], b"v2", "{name}: the lost race wrote nothing");

        // The lock: a lease on its own blob, its holder in the blob's metadata.
        b.put_blob_if(
            "state",
            "lock",
            Bytes::new(),
            &none,
            &WriteCondition::Always,
            None,
        )
        .await
        .unwrap();
        let lease = b
            .acquire_lease("state", "lock", LeaseDuration::Seconds(15), Some(A))
            .await
            .unwrap();
        assert_eq!(lease.id, A, "{name}");
        b.set_metadata(
            "state",
            "lock",
            &lock_metadata(),
            &WriteCondition::Always,
            Some(A),
        )
        .await
        .unwrap();
        let taken = b
            .acquire_lease("state", "lock", LeaseDuration::Seconds(15), Some(B))
            .await;
        let Err(BlobRefusal::LeasedByOther {
            code,
            holder: Some(holder),
        }) = &taken
        else {
            panic!("{name}: {taken:?}");
        };
        assert_eq!(code, "LeaseAlreadyPresent", "{name}");
        assert_eq!(
            (holder.state.as_str(), holder.duration.as_deref()),
            ("leased", Some("fixed")),
            "{name}"
        );
        assert_eq!(holder.metadata, lock_metadata(), "{name}");
        let unleased = b
            .set_metadata("state", "lock", &none, &WriteCondition::Always, None)
            .await;
        assert!(
            matches!(&unleased, Err(BlobRefusal::LeasedByOther { code, holder: Some(_) }) if code == "LeaseIdMissing"),
            "{name}: {unleased:?}"
        );
        b.renew_lease("state", "lock", A).await.unwrap();
        b.change_lease("state", "lock", A, B).await.unwrap();
        let old = b.renew_lease("state", "lock", A).await;
        assert!(
            matches!(old, Err(BlobRefusal::LeaseLost { .. })),
            "{name}: {old:?}"
        );
        b.release_lease("state", "lock", B).await.unwrap();
        // A deliberate break (`state unlock --force`): the holder's lease is gone.
        b.acquire_lease("state", "lock", LeaseDuration::Infinite, Some(A))
            .await
            .unwrap();
        assert_eq!(
            b.break_lease("state", "lock", Some(0)).await.unwrap(),
            0,
            "{name}"
        );
        let renew = b.renew_lease("state", "lock", A).await;
        assert!(
            matches!(&renew, Err(BlobRefusal::LeaseLost { code }) if code == "LeaseIsBrokenAndCannotBeRenewed"),
            "{name}: {renew:?}"
        );
        let write = b
            .set_metadata("state", "lock", &none, &WriteCondition::Always, Some(A))
            .await;
        assert!(
            matches!(write, Err(BlobRefusal::LeaseLost { .. })),
            "{name}: {write:?}"
        );

        // The journal: an append blob, one block per record, each at the position last seen.
        b.create_append_blob(
            "state",
            "journal",
            &none,
            &WriteCondition::IfNotExists,
            None,
        )
        .await
        .unwrap();
        let at = |position: u64| AppendConditions {
            position: Some(position),
            ..Default::default()
        };
        let r1 = b
            .append_block("state", "journal", Bytes::from_static(b"r1\n"), &at(0))
            .await
            .unwrap();
        assert_eq!((r1.offset, r1.committed_blocks), (0, 1), "{name}");
        let behind = b
            .append_block("state", "journal", Bytes::from_static(b"r2\n"), &at(0))
            .await;
        assert_eq!(behind, Err(BlobRefusal::AppendPosition), "{name}");
        let r2 = b
            .append_block("state", "journal", Bytes::from_static(b"r2\n"), &at(3))
            .await
            .unwrap();
        assert_eq!((r2.offset, r2.committed_blocks), (3, 2), "{name}");
        let full = AppendConditions {
            max_size: Some(8),
            ..Default::default()
        };
        let over = b
            .append_block("state", "journal", Bytes::from_static(b"r3\n"), &full)
            .await;
        assert_eq!(over, Err(BlobRefusal::MaxSize), "{name}");
        let (journal, props) = b.get_blob("state", "journal").await.unwrap().unwrap();
        assert_eq!(
            (&journal[..], props.etag),
            (&b"r1\nr2\n"[..], r2.etag),
            "{name}"
        );
        let gone = b
            .append_block("state", "nothing", Bytes::from_static(b"x"), &at(0))
            .await;
        assert_eq!(gone, Err(BlobRefusal::NotFound), "{name}");
    }
}

/// A holder that stops renewing (killed with SIGKILL, partitioned) loses its lease when the
/// duration runs out: the next caller acquires it with no break typed by hand, and the old holder's
/// renewal and writes are refused as a lost lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_nobody_renews_is_taken_over_on_both_servers() {
    let (_c, _a, servers) = clients().await;
    let none = BTreeMap::new();
    let run = |name: &'static str, b: &BlobClient| {
        let b = b.clone();
        let none = none.clone();
        async move {
            b.put_blob_if(
                "state",
                "lock",
                Bytes::new(),
                &none,
                &WriteCondition::Always,
                None,
            )
            .await
            .unwrap();
            b.acquire_lease("state", "lock", LeaseDuration::Seconds(15), Some(A))
                .await
                .unwrap();
            wait_until("the lease runs out", Duration::from_secs(40), async || {
                let h = b.lease_holder("state", "lock").await.unwrap()?;
                (h.state == "expired").then_some(())
            })
            .await;
            b.acquire_lease("state", "lock", LeaseDuration::Seconds(60), Some(B))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let renew = b.renew_lease("state", "lock", A).await;
            assert!(
                matches!(renew, Err(BlobRefusal::LeaseLost { .. })),
                "{name}: {renew:?}"
            );
            let write = b
                .put_blob_if(
                    "state",
                    "lock",
                    Bytes::new(),
                    &none,
                    &WriteCondition::Always,
                    Some(A),
                )
                .await;
            assert!(
                matches!(write, Err(BlobRefusal::LeaseLost { .. })),
                "{name}: {write:?}"
            );
        }
    };
    let [(n1, local), (n2, az)] = &servers;
    tokio::join!(run(n1, local), run(n2, az));
}
