//! What Get Blob Properties, Get Blob and List Blobs say of a blob besides its content headers: its
//! type (and a block blob's tier, an append blob's committed block count) and its lease (state,
//! status, duration), the lease's state following from the stored lease and the clock.
//!
//! Pure functions of a blob's record and the time: it never reads the store or judges a request
//! (the lease rule of a request is `lease`).
use crate::cloud::store::{BlobLease, BlobMeta, BlobType};

/// The type headers of Get Blob and Get Blob Properties: `x-ms-blob-type`; for an append blob its
/// committed block count (blob.json Blob_GetProperties response header
/// x-ms-blob-committed-block-count, "returned only for append blobs"; recorded in
/// test_create_blob_with_lease_id.json), for a block blob its tier (x-ms-access-tier and
/// x-ms-access-tier-inferred: every block blob here is on the account's default tier; tiers are for
/// block blobs only, and the recorded append blob has none).
pub(super) fn type_headers(m: &BlobMeta) -> Vec<(&'static str, String)> {
    let mut h = vec![("x-ms-blob-type", m.blob_type.as_str().to_string())];
    match m.blob_type {
        BlobType::AppendBlob => {
            h.push((
                "x-ms-blob-committed-block-count",
                m.committed_blocks.to_string(),
            ));
        }
        BlobType::BlockBlob => {
            h.push(("x-ms-access-tier", "Hot".into()));
            h.push(("x-ms-access-tier-inferred", "true".into()));
        }
    }
    h
}

/// The type elements of a blob in List Blobs: `<BlobType>` and, for a block blob, its tier
/// (blob.json, definition BlobPropertiesInternal: BlobType, AccessTier, AccessTierInferred; recorded
/// List Blobs answers carry `<AccessTierInferred>true`).
pub(super) fn type_listing(m: &BlobMeta) -> String {
    let mut x = format!("<BlobType>{}</BlobType>", m.blob_type.as_str());
    if m.blob_type == BlobType::BlockBlob {
        x.push_str("<AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>");
    }
    x
}

/// A lease's state at one moment, as `x-ms-lease-state` names it (blob.json, definition
/// LeaseStateType: available, leased, expired, breaking, broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseState {
    Available,
    Leased,
    Expired,
    Breaking,
    Broken,
}

impl LeaseState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LeaseState::Available => "available",
            LeaseState::Leased => "leased",
            LeaseState::Expired => "expired",
            LeaseState::Breaking => "breaking",
            LeaseState::Broken => "broken",
        }
    }

    /// `x-ms-lease-status`: a leased or breaking lease locks the blob ("Lease States": the locked
    /// states are Leased and Breaking).
    pub(super) fn locked(self) -> bool {
        matches!(self, LeaseState::Leased | LeaseState::Breaking)
    }
}

/// The state of `lease` at `now` (Unix milliseconds): a fixed lease past its end is expired, a
/// breaking lease past its break period is broken ("Duration expires" row of the Lease Blob table).
pub(crate) fn state(lease: Option<&BlobLease>, now: u64) -> LeaseState {
    match lease {
        None => LeaseState::Available,
        Some(l) if l.breaking => match l.until_ms {
            Some(t) if t > now => LeaseState::Breaking,
            _ => LeaseState::Broken,
        },
        Some(l) => match l.until_ms {
            Some(t) if t <= now => LeaseState::Expired,
            _ => LeaseState::Leased,
        },
    }
}

/// The lease headers of Get Blob and Get Blob Properties: state, status and, while leased, the
/// duration (blob.json Blob_GetProperties response headers x-ms-lease-state, x-ms-lease-status,
/// x-ms-lease-duration `infinite`/`fixed`; a recorded Get Blob Properties of an infinitely leased blob
/// in test_append_blob.pyTestStorageAppendBlobtest_create_blob_with_lease_id.json).
pub(super) fn lease_headers(m: &BlobMeta, now: u64) -> Vec<(&'static str, String)> {
    let s = state(m.lease.as_ref(), now);
    let mut h = vec![
        ("x-ms-lease-state", s.as_str().to_string()),
        ("x-ms-lease-status", status(s).to_string()),
    ];
    if let Some(d) = duration_name(m, s) {
        h.push(("x-ms-lease-duration", d.to_string()));
    }
    h
}

/// The lease elements of a blob in List Blobs (blob.json, definition BlobPropertiesInternal:
/// LeaseStatus, LeaseState, LeaseDuration), in that order.
pub(super) fn lease_listing(m: &BlobMeta, now: u64) -> String {
    let s = state(m.lease.as_ref(), now);
    let mut x = format!(
        "<LeaseStatus>{}</LeaseStatus><LeaseState>{}</LeaseState>",
        status(s),
        s.as_str()
    );
    if let Some(d) = duration_name(m, s) {
        x.push_str(&format!("<LeaseDuration>{d}</LeaseDuration>"));
    }
    x
}

fn status(s: LeaseState) -> &'static str {
    if s.locked() { "locked" } else { "unlocked" }
}

fn duration_name(m: &BlobMeta, s: LeaseState) -> Option<&'static str> {
    match (s, &m.lease) {
        (LeaseState::Leased, Some(l)) => Some(if l.duration_s.is_some() {
            "fixed"
        } else {
            "infinite"
        }),
        _ => None,
    }
}
