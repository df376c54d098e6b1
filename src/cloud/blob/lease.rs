//! Blob leases (contract section 5): the Lease Blob operation (`PUT ?comp=lease` with
//! `x-ms-lease-action` acquire, renew, change, release or break) and the rule every write and read of
//! a leased blob passes (the lease's state as Get Blob Properties and List Blobs report it is in
//! `properties`).
//!
//! A lease is stored as an id, a duration and an end time ([`BlobLease`]); its state (leased, expired,
//! breaking, broken) follows from those and the clock at each request, so a lease nobody renews frees
//! itself by time with no timer running. The transitions are pure functions of the stored lease and
//! the time ([`apply`]), checked by unit tests here and side by side with Azurite in
//! `tests/it/cloud_blob_lease.rs`. It never reads or writes anything but the blob's record, through
//! the store's `change_blob`.
//!
//! Sources, cited beside each rule below: Azure/azure-rest-api-specs
//! `specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json` (operations
//! Blob_AcquireLease, Blob_RenewLease, Blob_ReleaseLease, Blob_BreakLease, Blob_ChangeLease);
//! learn.microsoft.com rest/api/storageservices `lease-blob` ("Outcomes of lease operations on blobs
//! by lease state", "Outcomes of use attempts on blobs by lease state") and `blob-service-error-codes`;
//! recorded service answers in Azure/azure-sdk-for-python
//! `sdk/storage/azure-storage-blob/tests/recordings/test_common_blob.pyTestStorageCommonBlobtest_lease_blob_*.json`.
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};

use super::containers::container_exists;
use super::error::{BResult, BlobCode, BlobError, blob_not_found, err, internal};
use super::properties::{LeaseState, state};
use super::request::check_conditions;
use super::route::BlobRef;
use crate::cloud::http::{answer, header};
use crate::cloud::state::Shared;
use crate::cloud::store::blob_writes::RecordChange;
use crate::cloud::store::{BlobLease, BlobMeta, now_ms};

/// Whether two lease ids name the same lease: ids are GUIDs, compared as GUIDs (any of the formats
/// the service accepts, any case: Lease Blob, request header `x-ms-lease-id`).
fn same_id(a: &str, b: &str) -> bool {
    match (
        uuid::Uuid::parse_str(a.trim()),
        uuid::Uuid::parse_str(b.trim()),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// A lease id header's value, refused with 400 `InvalidHeaderValue` when it is not a GUID (Lease
/// Blob, request header `x-ms-proposed-lease-id`: "The Blob service returns 400 (Invalid request) if
/// the proposed lease ID is not in the correct format"). Azurite accepts any string here; the local
/// cloud follows the documentation.
fn lease_id_header(h: &HeaderMap, name: &'static str) -> Result<Option<String>, BlobError> {
    match header(h, name) {
        None => Ok(None),
        Some(v) if uuid::Uuid::parse_str(v.trim()).is_ok() => Ok(Some(v.trim().to_string())),
        Some(v) => Err(BlobError::invalid_header(name, v)),
    }
}

fn required(h: &HeaderMap, name: &'static str) -> Result<String, BlobError> {
    lease_id_header(h, name)?.ok_or_else(|| missing_header(name))
}

fn missing_header(name: &str) -> BlobError {
    err(
        StatusCode::BAD_REQUEST,
        BlobCode::MissingRequiredHeader,
        "An HTTP header that's mandatory for this request is not specified.",
    )
    .with_detail("HeaderName", name)
}

fn precondition(code: BlobCode, message: &str) -> BlobError {
    err(StatusCode::PRECONDITION_FAILED, code, message)
}

fn conflict(code: BlobCode, message: &str) -> BlobError {
    err(StatusCode::CONFLICT, code, message)
}

/// The rule a write (Put Blob, Set Blob Metadata, Append Block, Delete Blob) of a blob passes, on
/// its record as found under the store's lock ("Outcomes of use attempts on blobs by lease state";
/// codes and statuses from blob-service-error-codes). Returns the lease the blob keeps afterwards: a
/// held lease stays with the blob; an expired or broken one is gone once the blob is written ("the
/// lease ID is maintained by the Blob service until the blob is modified or leased again").
///
/// - leased or breaking, no `x-ms-lease-id`: 412 `LeaseIdMissing`; another id: 412
///   `LeaseIdMismatchWithBlobOperation` (the Lease Blob table says 409 for a leased blob, the error
///   code table and Azurite say 412 for this code: the code's own status is used);
/// - expired or broken, an id: 412 `LeaseLost` (recorded: test_lease_blob_with_duration.json and
///   test_lease_blob_break_period.json answer a write with the old id `412 LeaseLost`; Azurite
///   answers `LeaseNotPresentWithBlobOperation` there, the local cloud follows Azure);
/// - no lease (or no blob yet), an id: 412 `LeaseNotPresentWithBlobOperation`.
pub(super) fn check_write(
    h: &HeaderMap,
    m: Option<&BlobMeta>,
    now: u64,
) -> Result<Option<BlobLease>, BlobError> {
    let given = lease_id_header(h, "x-ms-lease-id")?;
    let lease = m.and_then(|m| m.lease.as_ref());
    match (lease, given) {
        (Some(l), given) if state(lease, now).locked() => match given {
            None => Err(precondition(
                BlobCode::LeaseIdMissing,
                "There is currently a lease on the blob and no lease ID was specified in the request.",
            )),
            Some(id) if same_id(&l.id, &id) => Ok(Some(l.clone())),
            Some(_) => Err(precondition(
                BlobCode::LeaseIdMismatchWithBlobOperation,
                "The lease ID specified did not match the lease ID for the blob.",
            )),
        },
        // Expired or broken.
        (Some(_), Some(_)) => Err(lease_lost()),
        (None, Some(_)) => Err(precondition(
            BlobCode::LeaseNotPresentWithBlobOperation,
            "There is currently no lease on the blob.",
        )),
        (_, None) => Ok(None),
    }
}

fn lease_lost() -> BlobError {
    precondition(
        BlobCode::LeaseLost,
        "A lease ID was specified, but the lease for the blob has expired.",
    )
}

/// The rule a read (Get Blob, Get Blob Properties) passes: without `x-ms-lease-id` any read
/// succeeds; with one, the lease must be active and be that lease (Lease Blob: "all GET operations
/// support a conditional lease parameter, where the operation only proceeds if the lease ID included
/// with the request is valid"; the statuses of the "Read using" rows, codes as for writes).
pub(super) fn check_read(h: &HeaderMap, m: &BlobMeta, now: u64) -> Result<(), BlobError> {
    if header(h, "x-ms-lease-id").is_none() {
        return Ok(());
    }
    check_write(h, Some(m), now).map(drop)
}

/// One lease action of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// `x-ms-lease-duration` (`None`: infinite) and `x-ms-proposed-lease-id`.
    Acquire {
        duration_s: Option<u32>,
        proposed: Option<String>,
    },
    Renew {
        id: String,
    },
    Change {
        id: String,
        proposed: String,
    },
    Release {
        id: String,
    },
    /// `x-ms-lease-break-period` in seconds.
    Break {
        period_s: Option<u32>,
    },
}

/// What a successful action answers besides the blob's ETag: the lease id (acquire, renew,
/// change) or the seconds left before the lease is broken (break).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    LeaseId(String),
    Released,
    LeaseTime(u64),
}

/// Reads the action of a Lease Blob request. `x-ms-lease-action` is required, one of the five values
/// (blob.json: each Blob_*Lease operation's `x-ms-lease-action` enum); acquire needs
/// `x-ms-lease-duration`, -1 or 15 to 60 (blob.json Blob_AcquireLease parameter description; Lease
/// Blob: "only allowed and required on an acquire operation", and since 2012-02-12 an acquire without
/// it "will fail with 400 Bad Request – Missing required header"; a value out of range is 400
/// `InvalidHeaderValue`, as Azurite answers); renew, change and release need `x-ms-lease-id`, change
/// needs `x-ms-proposed-lease-id` (blob.json: `required: true`); a break period is 0 to 60
/// (Blob_BreakLease parameter `x-ms-lease-break-period`).
pub(crate) fn parse_action(h: &HeaderMap) -> Result<Action, BlobError> {
    let action =
        header(h, "x-ms-lease-action").ok_or_else(|| missing_header("x-ms-lease-action"))?;
    match action {
        "acquire" => {
            let raw = header(h, "x-ms-lease-duration")
                .ok_or_else(|| missing_header("x-ms-lease-duration"))?;
            let duration_s = match raw.trim().parse::<i64>() {
                Ok(-1) => None,
                Ok(n @ 15..=60) => Some(n as u32),
                _ => return Err(BlobError::invalid_header("x-ms-lease-duration", raw)),
            };
            Ok(Action::Acquire {
                duration_s,
                proposed: lease_id_header(h, "x-ms-proposed-lease-id")?,
            })
        }
        "renew" => Ok(Action::Renew {
            id: required(h, "x-ms-lease-id")?,
        }),
        "change" => Ok(Action::Change {
            id: required(h, "x-ms-lease-id")?,
            proposed: required(h, "x-ms-proposed-lease-id")?,
        }),
        "release" => Ok(Action::Release {
            id: required(h, "x-ms-lease-id")?,
        }),
        "break" => {
            let period_s = match header(h, "x-ms-lease-break-period") {
                None => None,
                Some(raw) => match raw.trim().parse::<u32>() {
                    Ok(n @ 0..=60) => Some(n),
                    _ => return Err(BlobError::invalid_header("x-ms-lease-break-period", raw)),
                },
            };
            Ok(Action::Break { period_s })
        }
        other => Err(BlobError::invalid_header("x-ms-lease-action", other)),
    }
}

fn mismatch() -> BlobError {
    conflict(
        BlobCode::LeaseIdMismatchWithLeaseOperation,
        "The lease ID specified did not match the lease ID for the blob.",
    )
}

fn not_present() -> BlobError {
    conflict(
        BlobCode::LeaseNotPresentWithLeaseOperation,
        "There is currently no lease on the blob.",
    )
}

/// A new lease from `now`.
fn new_lease(id: String, duration_s: Option<u32>, now: u64) -> BlobLease {
    BlobLease {
        id,
        duration_s,
        until_ms: duration_s.map(|d| now + u64::from(d) * 1000),
        breaking: false,
    }
}

/// One action on the blob's lease at `now`: the lease the blob has afterwards and what to answer,
/// or the service's refusal. The table "Outcomes of lease operations on blobs by lease state" of
/// Lease Blob, row by row; the 409 codes are those of blob-service-error-codes, chosen as the
/// recorded answers and Azurite choose them:
///
/// - acquire: on a leased blob only with its own id (a new duration), else `LeaseAlreadyPresent`
///   (recorded: test_lease_blob_acquire_twice_fails.json); never while breaking (own id:
///   `LeaseIsBreakingAndCannotBeAcquired`, another: `LeaseAlreadyPresent`); otherwise a new lease
///   with the proposed id or one the service makes;
/// - renew: leased or expired with the same id resets the clock; breaking or broken with the same id
///   is `LeaseIsBrokenAndCannotBeRenewed`; any other id, or no lease, `LeaseIdMismatchWithLeaseOperation`
///   (Lease Blob, changes in 2012-02-12: renew after release fails "The lease ID specified did not
///   match the lease ID for the blob");
/// - change: only while leased, from its id (or to it: "(B) to (A)" succeeds), else
///   `LeaseIdMismatchWithLeaseOperation`; breaking with its own id `LeaseIsBreakingAndCannotBeChanged`;
///   no active lease `LeaseNotPresentWithLeaseOperation`;
/// - release: any lease with its id becomes available, another id `LeaseIdMismatchWithLeaseOperation`;
/// - break: no lease at all is `LeaseNotPresentWithLeaseOperation` (2012-02-12 changes: "There is
///   currently no lease on the blob"); an infinite lease with no period breaks at once; a fixed lease
///   with no period breaks when it would have expired; a period breaks after the shorter of it and
///   the time left; an expired or broken lease is broken at once; breaking again may only shorten it.
pub(crate) fn apply(
    action: &Action,
    current: Option<&BlobLease>,
    now: u64,
) -> Result<(Option<BlobLease>, Outcome), BlobError> {
    let s = state(current, now);
    match (action, current) {
        (
            Action::Acquire {
                duration_s,
                proposed,
            },
            _,
        ) => {
            let own = |l: &BlobLease| proposed.as_deref().is_some_and(|p| same_id(&l.id, p));
            match (s, current) {
                (LeaseState::Leased, Some(l)) if !own(l) => Err(conflict(
                    BlobCode::LeaseAlreadyPresent,
                    "There is already a lease present.",
                )),
                (LeaseState::Breaking, Some(l)) if own(l) => Err(conflict(
                    BlobCode::LeaseIsBreakingAndCannotBeAcquired,
                    "The lease ID matched, but the lease is currently in breaking state and cannot be acquired until it is broken.",
                )),
                (LeaseState::Breaking, _) => Err(conflict(
                    BlobCode::LeaseAlreadyPresent,
                    "There is already a lease present.",
                )),
                _ => {
                    let id = proposed
                        .clone()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    let l = new_lease(id.clone(), *duration_s, now);
                    Ok((Some(l), Outcome::LeaseId(id)))
                }
            }
        }
        (Action::Renew { id }, Some(l)) if same_id(&l.id, id) => match s {
            LeaseState::Leased | LeaseState::Expired => {
                let renewed = new_lease(l.id.clone(), l.duration_s, now);
                Ok((Some(renewed), Outcome::LeaseId(l.id.clone())))
            }
            _ => Err(conflict(
                BlobCode::LeaseIsBrokenAndCannotBeRenewed,
                "The lease ID matched, but the lease has been broken explicitly and cannot be renewed.",
            )),
        },
        (Action::Renew { .. }, _) => Err(mismatch()),
        (Action::Change { id, proposed }, Some(l)) => match s {
            LeaseState::Leased if same_id(&l.id, id) || same_id(&l.id, proposed) => {
                let changed = BlobLease {
                    id: proposed.clone(),
                    ..l.clone()
                };
                Ok((Some(changed), Outcome::LeaseId(proposed.clone())))
            }
            LeaseState::Leased => Err(mismatch()),
            LeaseState::Breaking if same_id(&l.id, id) => Err(conflict(
                BlobCode::LeaseIsBreakingAndCannotBeChanged,
                "The lease ID matched, but the lease is currently in breaking state and cannot be changed.",
            )),
            LeaseState::Breaking => Err(mismatch()),
            _ => Err(not_present()),
        },
        (Action::Change { .. }, None) => Err(not_present()),
        (Action::Release { id }, Some(l)) if same_id(&l.id, id) => Ok((None, Outcome::Released)),
        (Action::Release { .. }, _) => Err(mismatch()),
        (Action::Break { .. }, None) => Err(not_present()),
        (Action::Break { period_s }, Some(l)) => {
            let period_end = period_s.map(|p| now + u64::from(p) * 1000);
            let until = match s {
                LeaseState::Leased => match (l.until_ms, period_end) {
                    // Infinite, no period: broken at once.
                    (None, None) => None,
                    (None, Some(p)) => Some(p),
                    (Some(end), None) => Some(end),
                    (Some(end), Some(p)) => Some(end.min(p)),
                },
                LeaseState::Breaking => match (l.until_ms, period_end) {
                    (Some(end), Some(p)) => Some(end.min(p)),
                    (end, None) => end,
                    (None, Some(_)) => None,
                },
                _ => None,
            }
            .filter(|t| *t > now);
            let left = until.map_or(0, |t| (t - now + 500) / 1000);
            let broken = BlobLease {
                id: l.id.clone(),
                duration_s: l.duration_s,
                until_ms: until,
                breaking: true,
            };
            Ok((Some(broken), Outcome::LeaseTime(left)))
        }
    }
}

/// Lease Blob: `PUT /{account}/{container}/{blob}?comp=lease`. The conditional headers apply
/// (Lease Blob: "This operation also supports the use of conditional headers"); the action is decided
/// on the record under the store's lock, so two acquirers cannot both win. Acquire answers 201, break
/// 202 with `x-ms-lease-time`, the others 200 (Lease Blob, "Status Code"; blob.json responses), each
/// with the blob's unchanged ETag and Last-Modified and, for acquire, renew and change, `x-ms-lease-id`.
pub(super) async fn lease_blob(st: &Shared, b: &BlobRef, h: &HeaderMap) -> BResult {
    container_exists(st, &b.container)?;
    let action = parse_action(h)?;
    let now = now_ms();
    let mut outcome = None;
    let m = st
        .store
        .change_blob(b.key(), |m| {
            let Some(m) = m else {
                return Err(blob_not_found());
            };
            check_conditions(h, Some(m), false)?;
            let (lease, o) = apply(&action, m.lease.as_ref(), now)?;
            outcome = Some(o);
            Ok(RecordChange::Keep(BlobMeta { lease, ..m.clone() }))
        })
        .await
        .map_err(internal)??;
    let mut headers = vec![
        ("etag", m.etag.clone()),
        ("last-modified", m.modified.clone()),
    ];
    let status = match outcome {
        Some(Outcome::LeaseId(id)) => {
            headers.push(("x-ms-lease-id", id));
            if matches!(action, Action::Acquire { .. }) {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            }
        }
        Some(Outcome::LeaseTime(s)) => {
            headers.push(("x-ms-lease-time", s.to_string()));
            StatusCode::ACCEPTED
        }
        Some(Outcome::Released) | None => StatusCode::OK,
    };
    Ok(answer(status, Body::empty(), &headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00000000-1111-2222-3333-444444444444";
    const B: &str = "00000000-1111-2222-3333-555555555555";
    const T: u64 = 1_000_000;

    fn acquire(d: Option<u32>, p: Option<&str>) -> Action {
        Action::Acquire {
            duration_s: d,
            proposed: p.map(str::to_string),
        }
    }

    fn leased(d: Option<u32>) -> BlobLease {
        new_lease(A.into(), d, T)
    }

    fn code(r: Result<(Option<BlobLease>, Outcome), BlobError>) -> (u16, &'static str) {
        match r {
            Ok(_) => (200, "ok"),
            Err(e) => (e.status.as_u16(), e.code.as_str()),
        }
    }

    #[test]
    fn a_fixed_lease_expires_and_a_break_ends_by_time() {
        let l = leased(Some(15));
        assert_eq!(state(Some(&l), T + 14_999), LeaseState::Leased);
        assert_eq!(state(Some(&l), T + 15_000), LeaseState::Expired);
        assert_eq!(state(Some(&leased(None)), u64::MAX), LeaseState::Leased);
        let (b, o) = apply(&Action::Break { period_s: Some(5) }, Some(&l), T).unwrap();
        assert_eq!(o, Outcome::LeaseTime(5));
        assert_eq!(state(b.as_ref(), T + 4_999), LeaseState::Breaking);
        assert_eq!(state(b.as_ref(), T + 5_000), LeaseState::Broken);
        // No period on a fixed lease: it breaks when it would have expired.
        let (b, o) = apply(&Action::Break { period_s: None }, Some(&l), T + 5_000).unwrap();
        assert_eq!(o, Outcome::LeaseTime(10));
        assert_eq!(state(b.as_ref(), T + 15_000), LeaseState::Broken);
        // No period on an infinite lease: broken at once.
        let (b, o) = apply(&Action::Break { period_s: None }, Some(&leased(None)), T).unwrap();
        assert_eq!(
            (state(b.as_ref(), T), o),
            (LeaseState::Broken, Outcome::LeaseTime(0))
        );
    }

    /// The table "Outcomes of lease operations on blobs by lease state" of Lease Blob, with the codes
    /// of blob-service-error-codes.
    #[test]
    fn every_action_in_every_state() {
        let l = leased(Some(60));
        let expired = leased(Some(15));
        let at_expiry = T + 20_000;
        let breaking = apply(&Action::Break { period_s: Some(30) }, Some(&l), T)
            .unwrap()
            .0
            .unwrap();
        let broken = apply(&Action::Break { period_s: Some(0) }, Some(&l), T)
            .unwrap()
            .0
            .unwrap();
        let renew = |id: &str| Action::Renew { id: id.into() };
        let release = |id: &str| Action::Release { id: id.into() };
        let change = |id: &str, p: &str| Action::Change {
            id: id.into(),
            proposed: p.into(),
        };
        let ok = (200, "ok");
        let c409 = |c: &'static str| (409, c);
        // (action, available, leased, breaking, broken, expired)
        let rows: Vec<(Action, [(u16, &str); 5])> = vec![
            (
                acquire(Some(15), None),
                [
                    ok,
                    c409("LeaseAlreadyPresent"),
                    c409("LeaseAlreadyPresent"),
                    ok,
                    ok,
                ],
            ),
            (
                acquire(Some(15), Some(A)),
                [ok, ok, c409("LeaseIsBreakingAndCannotBeAcquired"), ok, ok],
            ),
            (
                acquire(Some(15), Some(B)),
                [
                    ok,
                    c409("LeaseAlreadyPresent"),
                    c409("LeaseAlreadyPresent"),
                    ok,
                    ok,
                ],
            ),
            (
                Action::Break { period_s: Some(0) },
                [c409("LeaseNotPresentWithLeaseOperation"), ok, ok, ok, ok],
            ),
            (
                change(A, B),
                [
                    c409("LeaseNotPresentWithLeaseOperation"),
                    ok,
                    c409("LeaseIsBreakingAndCannotBeChanged"),
                    c409("LeaseNotPresentWithLeaseOperation"),
                    c409("LeaseNotPresentWithLeaseOperation"),
                ],
            ),
            (
                change(B, A),
                [
                    c409("LeaseNotPresentWithLeaseOperation"),
                    ok,
                    c409("LeaseIdMismatchWithLeaseOperation"),
                    c409("LeaseNotPresentWithLeaseOperation"),
                    c409("LeaseNotPresentWithLeaseOperation"),
                ],
            ),
            (
                renew(A),
                [
                    c409("LeaseIdMismatchWithLeaseOperation"),
                    ok,
                    c409("LeaseIsBrokenAndCannotBeRenewed"),
                    c409("LeaseIsBrokenAndCannotBeRenewed"),
                    ok,
                ],
            ),
            (renew(B), [c409("LeaseIdMismatchWithLeaseOperation"); 5]),
            (
                release(A),
                [c409("LeaseIdMismatchWithLeaseOperation"), ok, ok, ok, ok],
            ),
            (release(B), [c409("LeaseIdMismatchWithLeaseOperation"); 5]),
        ];
        for (action, want) in rows {
            let got = [
                code(apply(&action, None, T)),
                code(apply(&action, Some(&l), T)),
                code(apply(&action, Some(&breaking), T)),
                code(apply(&action, Some(&broken), T)),
                code(apply(&action, Some(&expired), at_expiry)),
            ];
            assert_eq!(got, want, "{action:?}");
        }
    }

    #[test]
    fn renew_resets_the_clock_and_change_keeps_the_duration() {
        let l = leased(Some(20));
        let (r, o) = apply(
            &Action::Renew {
                id: A.to_uppercase(),
            },
            Some(&l),
            T + 19_000,
        )
        .unwrap();
        assert_eq!(o, Outcome::LeaseId(A.into()));
        assert_eq!(state(r.as_ref(), T + 38_000), LeaseState::Leased);
        let (c, _) = apply(
            &Action::Change {
                id: A.into(),
                proposed: B.into(),
            },
            Some(&l),
            T,
        )
        .unwrap();
        let c = c.unwrap();
        assert_eq!((c.id.as_str(), c.until_ms), (B, l.until_ms));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn actions_need_their_headers_in_range() {
        let bad = |pairs: &[(&'static str, &str)]| {
            let e = parse_action(&headers(pairs)).unwrap_err();
            (e.status.as_u16(), e.code.as_str())
        };
        assert_eq!(bad(&[]), (400, "MissingRequiredHeader"));
        assert_eq!(
            bad(&[("x-ms-lease-action", "steal")]),
            (400, "InvalidHeaderValue")
        );
        assert_eq!(
            bad(&[("x-ms-lease-action", "acquire")]),
            (400, "MissingRequiredHeader")
        );
        for d in ["14", "61", "0", "-2", "x"] {
            assert_eq!(
                bad(&[("x-ms-lease-action", "acquire"), ("x-ms-lease-duration", d)]),
                (400, "InvalidHeaderValue"),
                "{d}"
            );
        }
        assert_eq!(
            bad(&[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "15"),
                ("x-ms-proposed-lease-id", "not-a-guid"),
            ]),
            (400, "InvalidHeaderValue")
        );
        assert_eq!(
            bad(&[("x-ms-lease-action", "renew")]),
            (400, "MissingRequiredHeader")
        );
        assert_eq!(
            bad(&[("x-ms-lease-action", "change"), ("x-ms-lease-id", A)]),
            (400, "MissingRequiredHeader")
        );
        assert_eq!(
            bad(&[
                ("x-ms-lease-action", "break"),
                ("x-ms-lease-break-period", "61")
            ]),
            (400, "InvalidHeaderValue")
        );
        assert_eq!(
            parse_action(&headers(&[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "-1"),
            ]))
            .unwrap(),
            acquire(None, None)
        );
    }

    #[test]
    fn writes_need_the_active_lease_and_clear_a_lapsed_one() {
        let mut m = BlobMeta {
            lease: Some(leased(Some(15))),
            ..Default::default()
        };
        let w = |pairs: &[(&'static str, &str)], m: &BlobMeta, now: u64| {
            check_write(&headers(pairs), Some(m), now).map_err(|e| e.code.as_str())
        };
        assert_eq!(w(&[], &m, T), Err("LeaseIdMissing"));
        assert_eq!(
            w(&[("x-ms-lease-id", B)], &m, T),
            Err("LeaseIdMismatchWithBlobOperation")
        );
        assert_eq!(w(&[("x-ms-lease-id", A)], &m, T), Ok(m.lease.clone()));
        assert_eq!(w(&[("x-ms-lease-id", A)], &m, T + 15_000), Err("LeaseLost"));
        assert_eq!(w(&[], &m, T + 15_000), Ok(None));
        m.lease = None;
        assert_eq!(
            w(&[("x-ms-lease-id", A)], &m, T),
            Err("LeaseNotPresentWithBlobOperation")
        );
        assert!(check_read(&headers(&[]), &m, T).is_ok());
    }
}
