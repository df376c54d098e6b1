//! The remote backend's lock: a finite lease on a lock blob (`<key>.lock`) in the state's container,
//! renewed by a heartbeat while the command runs, with its holder (user, host, pid, command, start
//! time) recorded in the blob's metadata so a refused run can name it.
//!
//! Why a finite lease: an infinite one (what Terraform's azurerm backend takes) outlives a CI job
//! killed mid-apply, and the stack stays locked until someone breaks it by hand. A finite lease
//! nobody renews runs out by itself (Lease Blob: 15 to 60 seconds), so the next run takes it over
//! and is told whose lock it took ([`LeaseTakeover`]). A holder that provably died on this machine
//! is not waited for at all, as the local backend's lock does: when the record names this host, this
//! pid space (the kernel's boot id and the pid namespace, so neither another machine with the same
//! host name nor a container with its own pids matches) and a pid that is not running, the lease is
//! broken at once, on the condition that the blob still carries that record (`If-Match` on the
//! ETag read; a live acquirer that has written its record since is never broken). A pid that runs
//! again (reused) counts as alive and the lease is waited out. The price is the heartbeat: a task on the
//! caller's tokio runtime renews the lease well before it runs out, and retries a failed renewal
//! until the lease could have run out. From then on (or as soon as the service says the lease is
//! gone: broken, or run out and taken) [`LeaseLock::check`] fails, and the backend calls it before
//! every state write, so a holder cut off from storage for longer than its lease stops before its
//! next write and says why. The time a lease may still be ours is counted from when each successful
//! renewal was *sent* (the service starts the new period later than that), minus a safety margin.
//!
//! Holder metadata values are percent-encoded into visible ASCII, so whatever a user or host name
//! holds is a valid HTTP header value and signs the same everywhere; values read back are decoded
//! and stripped of control characters before they reach a message.
//!
//! The heartbeat runs while the caller's runtime runs it: on a multi-thread runtime also between
//! `block_on` calls; a process frozen (or a runtime starved) for longer than the lease is treated as
//! cut off, and its `check` fails when it wakes.
//!
//! This module never prints (notices and errors are values for the CLI), never blocks in `Drop`, and
//! never writes a lease id or a secret into the metadata or an error. Sources for the service's
//! behaviour: Azure/azure-rest-api-specs
//! `specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json`
//! (Blob_AcquireLease: `x-ms-lease-duration` 15 to 60 or -1; Blob_RenewLease; Blob_BreakLease:
//! `x-ms-lease-break-period` 0 to 60; Blob_GetProperties: `x-ms-lease-state`, `x-ms-lease-duration`;
//! Blob_SetMetadata under `x-ms-lease-id`), and learn.microsoft.com rest/api/storageservices
//! `lease-blob` (an expired or broken lease may be acquired by anyone; a renewal restarts the
//! duration; a write to a leased blob needs the lease id).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::provider::blob::BlobClient;
use crate::provider::blob_conditional::{BlobRefusal, LeaseDuration, LeaseHolder, WriteCondition};
use crate::state::host::{self, Liveness};
use crate::state::{LockInfo, LockRequest, UnlockOutcome};

/// How long the lease lasts, how often the heartbeat renews it, and how careful [`LeaseLock::check`]
/// is. The defaults suit real use; tests shorten them (a lease is 15 s at least).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// The lease's duration, whole seconds from 15 to 60 (Blob_AcquireLease `x-ms-lease-duration`).
    pub lease: Duration,
    /// The heartbeat renews this long after the last renewal was sent.
    pub renew_every: Duration,
    /// [`LeaseLock::check`] fails this long before the lease could run out, so a write that passed
    /// the check lands while the lease still holds.
    pub margin: Duration,
    /// The longest wait between two tries, while waiting for a held lock or retrying a renewal.
    pub poll_max: Duration,
}

impl Default for LeaseTiming {
    /// A 60 s lease renewed every 15 s: three renewals may fail before the lease is at risk.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            renew_every: Duration::from_secs(15),
            margin: Duration::from_secs(10),
            poll_max: Duration::from_secs(5),
        }
    }
}

impl LeaseTiming {
    /// The lease's seconds, if the timing is one the service accepts and leaves the heartbeat at
    /// least two tries before the lease is at risk.
    fn lease_seconds(&self) -> Result<u32, LeaseLockError> {
        let bad = |why: String| Err(LeaseLockError::Timing { why });
        let secs = self.lease.as_secs();
        if self.lease.subsec_nanos() != 0 || !(15..=60).contains(&secs) {
            return bad(format!(
                "a blob lease lasts 15 to 60 whole seconds, not {:?}",
                self.lease
            ));
        }
        if self.renew_every.is_zero() || self.poll_max.is_zero() {
            return bad("the renewal interval and the polling interval must not be zero".into());
        }
        if self.margin >= self.lease || self.renew_every * 2 > self.lease - self.margin {
            return bad(format!(
                "a lease of {:?} with a margin of {:?} leaves no room to renew every {:?} twice",
                self.lease, self.margin, self.renew_every
            ));
        }
        // Checked above: 15..=60.
        Ok(u32::try_from(secs).unwrap_or(60))
    }

    /// How long a lease counts as ours after the request that granted or renewed it was sent.
    fn trusted_for(&self) -> Duration {
        self.lease.saturating_sub(self.margin)
    }
}

/// The first wait of a waiting acquire, and of a heartbeat retry; each next wait doubles, up to
/// [`LeaseTiming::poll_max`].
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// How long a lease found without a holder record is read again (every [`RECORD_POLL`]) for the
/// record its holder is about to write.
const RECORD_GRACE: Duration = Duration::from_secs(2);
const RECORD_POLL: Duration = Duration::from_millis(200);

/// How many times an acquire creates the lock blob again after finding it gone, before it gives up.
const MAX_MISSING: u32 = 5;

/// How many times one acquire breaks the lease of a holder found dead on this machine, or starts
/// over after its own fresh lease was broken that way before its record was written (two runs
/// racing for a dead holder's lock), before it treats the lock as held and waits for the lease.
const MAX_DEAD_BREAKS: u32 = 3;

/// The back-off before try number `failures + 1` (`failures` ≥ 1).
fn backoff(failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_WAIT.saturating_mul(1 << doublings).min(max)
}

/// Why a lock this process held is not held any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// The service refused a renewal because the lease is no longer ours: it was broken
    /// (`stackform state unlock --force`) or ran out and was taken by another run (`code` is the
    /// service's error code).
    Revoked { code: String },
    /// The lock blob (or its container) was deleted.
    Deleted,
    /// No renewal succeeded for `since`, so the lease may have run out and another run may hold it.
    Unrenewed {
        since: Duration,
        last_error: Option<String>,
    },
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Revoked { code } => write!(
                f,
                "the storage service says its lease is gone ({code}): it was broken (`stackform state unlock --force`) or ran out and was taken by another run"
            ),
            LostReason::Deleted => f.write_str("the lock blob or its container was deleted"),
            LostReason::Unrenewed { since, last_error } => {
                write!(
                    f,
                    "its lease could not be renewed for {:.0}s, so it may have run out and another run may hold the lock now",
                    since.as_secs_f64()
                )?;
                match last_error {
                    Some(e) => write!(f, " (last error: {e})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Failures to take, keep or release the remote lock.
#[derive(Debug, thiserror::Error)]
pub enum LeaseLockError {
    #[error(
        "state is locked by {} ({location}){}. Wait for it to finish, retry with `--lock-timeout`, or, if that run is certainly gone, run `stackform state unlock --force`",
        holder_text(.holder.as_deref()), lease_note(*.infinite)
    )]
    Held {
        location: String,
        holder: Option<Box<LockInfo>>,
        /// The holder's lease never runs out by itself (taken by another tool).
        infinite: bool,
    },

    #[error(
        "state is still locked by {} ({location}) after waiting {:.1}s{}. Try again later, or, if that run is certainly gone, run `stackform state unlock --force`",
        holder_text(.holder.as_deref()), .waited.as_secs_f64(), lease_note(*.infinite)
    )]
    Timeout {
        location: String,
        waited: Duration,
        holder: Option<Box<LockInfo>>,
        infinite: bool,
    },

    #[error("lost the lock {location}: {why}; stopped before the next state write")]
    Lost { location: String, why: LostReason },

    #[error("cannot lock {location}: its container does not exist")]
    NoContainer { location: String },

    #[error("cannot use the lock {location}: {source}")]
    Service {
        location: String,
        #[source]
        source: Box<BlobRefusal>,
    },

    #[error("invalid lease timing: {why}")]
    Timing { why: String },
}

fn holder_text(holder: Option<&LockInfo>) -> String {
    match holder {
        Some(info) => info.to_string(),
        None => "an unknown holder (the lock blob has no readable holder record)".into(),
    }
}

fn lease_note(infinite: bool) -> &'static str {
    if infinite {
        "; its lease is infinite (taken by another tool, such as Terraform's azurerm backend), so it never runs out by itself"
    } else {
        "; if that run was killed, its lease runs out by itself within a minute"
    }
}

/// Why a lock left behind could be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseTakeoverReason {
    /// Its lease ran out: the holder stopped renewing it (killed, or cut off from storage).
    Expired,
    /// Its lease was broken (`stackform state unlock --force`).
    Broken,
    /// The lease was free but the holder's record was left on the blob (a release that could not
    /// clear it).
    Abandoned,
    /// The holder's record names this host and pid space and a pid that is not running: its lease
    /// was broken at once instead of waited out.
    HolderDead,
}

/// Returned with a lock taken over from a holder that did not release it. The CLI shows it; that
/// run may have been interrupted, so its journal deserves a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTakeover {
    pub location: String,
    pub previous: LockInfo,
    pub reason: LeaseTakeoverReason,
}

impl fmt::Display for LeaseTakeover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            LeaseTakeoverReason::Expired => {
                "its lease ran out (that run stopped renewing it: killed, or cut off from storage)"
            }
            LeaseTakeoverReason::Broken => {
                "its lease was broken (`stackform state unlock --force`)"
            }
            LeaseTakeoverReason::Abandoned => "its lease was released without clearing its record",
            LeaseTakeoverReason::HolderDead => {
                return write!(
                    f,
                    "took over the lock {} left by {}: pid {} on this host is not running, so its lease was broken without waiting for it to run out",
                    self.location, self.previous, self.previous.pid
                );
            }
        };
        write!(
            f,
            "took over the lock {} left by {}: {why}",
            self.location, self.previous
        )
    }
}

/// A successful acquire: the lock, and a notice if a holder's lock was taken over.
#[derive(Debug)]
pub struct LeaseAcquired {
    pub lock: LeaseLock,
    pub notice: Option<LeaseTakeover>,
}

/// Metadata names of the holder record (blob metadata names are C# identifiers, case-insensitive;
/// the service reports them lowercased).
const META_ID: &str = "id";
const META_HOLDER: &str = "holder";
const META_USER: &str = "user";
const META_HOST: &str = "host";
const META_PID: &str = "pid";
const META_COMMAND: &str = "command";
const META_SINCE: &str = "since";
/// Where the holder's pid means something: not part of [`LockInfo`], written beside it.
const META_PID_SPACE: &str = "pidspace";
const META_NAMES: [&str; 7] = [
    META_ID,
    META_HOLDER,
    META_USER,
    META_HOST,
    META_PID,
    META_COMMAND,
    META_SINCE,
];

/// The longest value kept, in characters (all the metadata of a blob must stay under 8 KiB).
const MAX_VALUE_CHARS: usize = 256;

/// Every byte but these is percent-encoded: what is left is visible ASCII, never `%` on its own,
/// never whitespace, so the value is a valid header value that no canonicalisation changes.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@')
    .remove(b':')
    .remove(b'+')
    .remove(b'/')
    .remove(b',')
    .remove(b'=');

fn encode_value(value: &str) -> String {
    let kept: String = value.chars().take(MAX_VALUE_CHARS).collect();
    utf8_percent_encode(&kept, KEEP).to_string()
}

/// A value read back: decoded, control characters (a terminal escape, a line break) shown as `?`,
/// and cut to [`MAX_VALUE_CHARS`].
fn decode_value(value: &str) -> String {
    percent_decode_str(value)
        .decode_utf8_lossy()
        .chars()
        .take(MAX_VALUE_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// This process's pid space: the kernel's boot id (new at every boot, different on every machine)
/// and the pid namespace's inode (different in each container), `None` where either cannot be read.
/// Two processes with the same pid space see the same pids in `/proc`.
fn pid_space() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let (boot, namespace) = (boot.trim(), namespace.to_string_lossy());
    (!boot.is_empty() && !namespace.is_empty()).then(|| format!("{boot}/{namespace}"))
}

/// Whether a holder record (and the metadata it came from) names a process of this machine that is
/// not running: the same host name (as the local lock decides), the same pid space (another machine
/// may carry the same host name; a container has pids of its own) and a pid whose `/proc` entry is
/// gone. A record without a pid space (or with pid 0) is never judged dead.
fn holder_dead_here(info: &LockInfo, metadata: &BTreeMap<String, String>) -> bool {
    let recorded = metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(META_PID_SPACE))
        .map(|(_, v)| decode_value(v));
    info.pid != 0
        && info.host == host::hostname()
        && recorded.is_some()
        && recorded == pid_space()
        && host::liveness(info.pid) == Liveness::Dead
}

/// The holder record as blob metadata, with this process's pid space.
fn encode_record(info: &LockInfo) -> BTreeMap<String, String> {
    let pid = info.pid.to_string();
    let id = info.id.to_string();
    let space = pid_space();
    let space = space.iter().map(|s| (META_PID_SPACE, s.as_str()));
    [
        (META_ID, id.as_str()),
        (META_HOLDER, info.holder.as_str()),
        (META_USER, info.user.as_str()),
        (META_HOST, info.host.as_str()),
        (META_PID, pid.as_str()),
        (META_COMMAND, info.command.as_str()),
        (META_SINCE, info.since.as_str()),
    ]
    .into_iter()
    .chain(space)
    .map(|(k, v)| (k.to_owned(), encode_value(v)))
    .collect()
}

/// The holder record in a blob's metadata: `None` when it holds none of the record's names; a part
/// that is missing or unreadable becomes `unknown` (pid 0, a nil id), so a damaged record still
/// names what it can.
fn decode_record(metadata: &BTreeMap<String, String>) -> Option<LockInfo> {
    let get = |name: &str| {
        metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_value(v))
    };
    if META_NAMES.iter().all(|n| get(n).is_none()) {
        return None;
    }
    let text = |name: &str| get(name).unwrap_or_else(|| "unknown".into());
    Some(LockInfo {
        id: get(META_ID)
            .and_then(|v| Uuid::parse_str(&v).ok())
            .unwrap_or_else(Uuid::nil),
        holder: text(META_HOLDER),
        user: text(META_USER),
        host: text(META_HOST),
        pid: get(META_PID).and_then(|v| v.parse().ok()).unwrap_or(0),
        command: text(META_COMMAND),
        since: text(META_SINCE),
    })
}

/// Whether a lease state (`x-ms-lease-state`) means someone holds the lease now.
fn is_held(state: &str) -> bool {
    matches!(state, "leased" | "breaking")
}

/// What the heartbeat knows, and what [`LeaseLock::check`] reads: pure, decided on the times given.
#[derive(Debug, Clone)]
struct Health {
    trusted_for: Duration,
    /// When the request behind the last successful grant or renewal was sent.
    last_sent: Instant,
    /// The lease counts as ours until then.
    valid_until: Instant,
    /// Renewals failed in a row since the last success.
    failures: u32,
    last_error: Option<String>,
    /// Set once the service said the lease is gone; never cleared.
    lost: Option<LostReason>,
}

impl Health {
    fn new(granted_sent: Instant, timing: &LeaseTiming) -> Self {
        let trusted_for = timing.trusted_for();
        Self {
            trusted_for,
            last_sent: granted_sent,
            valid_until: granted_sent + trusted_for,
            failures: 0,
            last_error: None,
            lost: None,
        }
    }

    /// A renewal sent at `sent` succeeded.
    fn renewed(&mut self, sent: Instant) {
        if sent > self.last_sent {
            self.last_sent = sent;
            self.valid_until = sent + self.trusted_for;
        }
        self.failures = 0;
        self.last_error = None;
    }

    /// A renewal failed in a way that may pass (no answer, throttling, a 5xx).
    fn failed(&mut self, error: String) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
    }

    /// The service said the lease is not ours any more.
    fn revoked(&mut self, why: LostReason) {
        self.lost.get_or_insert(why);
    }

    /// Why the lease cannot be trusted at `now`, if it cannot.
    fn lost_at(&self, now: Instant) -> Option<LostReason> {
        if let Some(why) = &self.lost {
            return Some(why.clone());
        }
        (now >= self.valid_until).then(|| LostReason::Unrenewed {
            since: now.saturating_duration_since(self.last_sent),
            last_error: self.last_error.clone(),
        })
    }

    /// When the heartbeat tries next, deciding at `now`: `renew_every` after the last success, or
    /// a growing back-off after a failure, never after the lease could have run out.
    fn next_try(&self, now: Instant, timing: &LeaseTiming) -> Instant {
        let at = if self.failures == 0 {
            self.last_sent + timing.renew_every
        } else {
            now + backoff(self.failures, timing.poll_max)
        };
        at.min(self.valid_until)
    }
}

fn lock_health(health: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    health.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A held remote lock. Its heartbeat stops when it is released or dropped; a lock dropped without
/// [`release`](LeaseLock::release) keeps its lease until the lease runs out by itself.
#[derive(Debug)]
#[must_use = "the lock's heartbeat stops when it is dropped"]
pub struct LeaseLock {
    client: BlobClient,
    container: String,
    blob: String,
    location: String,
    lease_id: String,
    info: LockInfo,
    health: Arc<Mutex<Health>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl LeaseLock {
    /// Takes the lock on `container/blob` with the default timing: creates the blob if there is
    /// none, takes a 60 s lease and records this process as its holder.
    ///
    /// Without a timeout in `request`, a held lock fails at once with [`LeaseLockError::Held`]
    /// naming the holder; with one, it is polled with a growing back-off until the deadline, then
    /// [`LeaseLockError::Timeout`]. A lease that ran out or was broken is taken, and so, at once,
    /// is the lease of a holder whose record names this host and pid space and a pid that is not
    /// running; [`LeaseAcquired::notice`] says whose it was. Must run on a tokio runtime: the heartbeat is
    /// spawned on it.
    pub async fn acquire(
        client: BlobClient,
        container: &str,
        blob: &str,
        request: &LockRequest,
    ) -> Result<LeaseAcquired, LeaseLockError> {
        Self::acquire_with(
            client,
            container,
            blob,
            request,
            LeaseTiming::default(),
            |_| {},
        )
        .await
    }

    /// Like [`acquire`](Self::acquire) with the given timing, and calls `on_wait` once, with the
    /// holder's record, when the lock was found held and a timeout lets it wait.
    pub async fn acquire_with(
        client: BlobClient,
        container: &str,
        blob: &str,
        request: &LockRequest,
        timing: LeaseTiming,
        mut on_wait: impl FnMut(Option<&LockInfo>),
    ) -> Result<LeaseAcquired, LeaseLockError> {
        let seconds = timing.lease_seconds()?;
        let location = location(&client, container, blob);
        let service = |source| service_error(&location, source);
        let started = Instant::now();
        // A timeout too large to add to the clock means "wait as good as forever".
        let deadline = request.timeout.map(|t| {
            started
                .checked_add(t)
                .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 24 * 3600))
        });
        let lease_id = Uuid::new_v4().to_string();
        let mut waits = 0u32;
        let mut announced = false;
        // Rounds that found no blob: created, then gone again (someone deletes it as fast).
        let mut missing = 0u32;
        // Leases of dead holders this acquire broke, and the ETag of the last one it broke (the blob
        // as that holder left it), which names the takeover's reason.
        let mut dead_breaks = 0u32;
        let mut broke: Option<String> = None;
        let (sent, notice, info) = loop {
            let found = client
                .lease_holder(container, blob)
                .await
                .map_err(|e| service(e.into()))?;
            let Some(found) = found else {
                missing += 1;
                if missing > MAX_MISSING {
                    return Err(service(BlobRefusal::NotFound));
                }
                create_lock_blob(&client, container, blob, &location).await?;
                continue;
            };
            let refused = if is_held(&found.state) {
                let record = decode_record(&found.metadata);
                let infinite = is_infinite(&found);
                let dead = !infinite
                    && dead_breaks < MAX_DEAD_BREAKS
                    && !found.etag.is_empty()
                    && record
                        .as_ref()
                        .is_some_and(|r| holder_dead_here(r, &found.metadata));
                if dead {
                    dead_breaks += 1;
                    // Only while the blob still carries the dead holder's record: a run that took
                    // the lease and wrote its own record since changed the ETag and keeps its lease.
                    match client
                        .break_lease_if_match(container, blob, 0, &found.etag)
                        .await
                    {
                        Ok(()) => broke = Some(found.etag.clone()),
                        Err(
                            BlobRefusal::Changed { .. }
                            | BlobRefusal::LeaseLost { .. }
                            | BlobRefusal::NotFound,
                        ) => {}
                        Err(e) => return Err(service(e)),
                    }
                    continue;
                }
                Some((record, infinite))
            } else {
                let sent = Instant::now();
                match client
                    .acquire_lease(
                        container,
                        blob,
                        LeaseDuration::Seconds(seconds),
                        Some(&lease_id),
                    )
                    .await
                {
                    Ok(lease) => {
                        let before = (found, lease.etag);
                        let notice = takeover(
                            &client,
                            container,
                            blob,
                            &location,
                            before,
                            broke.as_deref(),
                        )
                        .await;
                        let info = LockInfo::for_this_process(&request.command);
                        let recorded = client
                            .set_metadata(
                                container,
                                blob,
                                &encode_record(&info),
                                &WriteCondition::Always,
                                Some(&lease_id),
                            )
                            .await;
                        match recorded {
                            Ok(_) => break (sent, notice, info),
                            // Broken before the record was written, by a run that took the
                            // record still there for a dead holder's: start over.
                            Err(
                                BlobRefusal::LeaseLost { .. } | BlobRefusal::LeasedByOther { .. },
                            ) if dead_breaks < MAX_DEAD_BREAKS => {
                                dead_breaks += 1;
                                continue;
                            }
                            Err(e) => {
                                // Leave no lease without a record behind; the error says why.
                                let _ = client.release_lease(container, blob, &lease_id).await;
                                return Err(service(e));
                            }
                        }
                    }
                    Err(BlobRefusal::LeasedByOther { holder, .. }) => match holder {
                        // Taken in between while a dead holder's record was still there: the next
                        // round decides on the blob as it is then.
                        Some(h)
                            if dead_breaks < MAX_DEAD_BREAKS
                                && decode_record(&h.metadata)
                                    .is_some_and(|r| holder_dead_here(&r, &h.metadata)) =>
                        {
                            None
                        }
                        Some(h) => Some((decode_record(&h.metadata), is_infinite(&h))),
                        None => Some((None, false)),
                    },
                    // Deleted since it was read: the next round creates it again.
                    Err(BlobRefusal::NotFound) => {
                        missing += 1;
                        None
                    }
                    Err(e) => return Err(service(e)),
                }
            };
            let Some((holder, infinite)) = refused else {
                continue;
            };
            let now = Instant::now();
            // A holder writes its record just after its lease is granted: a lease seen without one
            // is given a moment before it is reported as an unknown holder.
            if holder.is_none() && now - started < RECORD_GRACE {
                tokio::time::sleep(RECORD_POLL).await;
                continue;
            }
            match deadline {
                None => {
                    return Err(LeaseLockError::Held {
                        location: location.clone(),
                        holder: holder.map(Box::new),
                        infinite,
                    });
                }
                Some(deadline) if now >= deadline => {
                    return Err(LeaseLockError::Timeout {
                        location: location.clone(),
                        waited: now - started,
                        holder: holder.map(Box::new),
                        infinite,
                    });
                }
                Some(deadline) => {
                    if !announced {
                        announced = true;
                        on_wait(holder.as_ref());
                    }
                    waits = waits.saturating_add(1);
                    tokio::time::sleep(backoff(waits, timing.poll_max).min(deadline - now)).await;
                }
            }
        };

        let health = Arc::new(Mutex::new(Health::new(sent, &timing)));
        let heartbeat = tokio::spawn(heartbeat(
            client.clone(),
            container.to_owned(),
            blob.to_owned(),
            lease_id.clone(),
            timing,
            health.clone(),
        ));
        Ok(LeaseAcquired {
            lock: LeaseLock {
                client,
                container: container.to_owned(),
                blob: blob.to_owned(),
                location,
                lease_id,
                info,
                health,
                heartbeat: Some(heartbeat),
            },
            notice,
        })
    }

    /// Whether the lock may still be trusted: instant, no I/O. `Err(`[`LeaseLockError::Lost`]`)` once
    /// no renewal succeeded before the lease could have run out, or the service said the lease is
    /// gone. Call it before every state write.
    pub fn check(&self) -> Result<(), LeaseLockError> {
        match lock_health(&self.health).lost_at(Instant::now()) {
            None => Ok(()),
            Some(why) => Err(LeaseLockError::Lost {
                location: self.location.clone(),
                why,
            }),
        }
    }

    /// The record this lock wrote into the blob's metadata.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// The lock blob's URL, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Stops the heartbeat, clears the holder record and releases the lease, so the next run takes
    /// the lock at once and without a takeover notice. `Err(Lost)` when the lease was no longer
    /// this lock's.
    pub async fn release(mut self) -> Result<(), LeaseLockError> {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
            let _ = heartbeat.await;
        }
        let lost = |why| LeaseLockError::Lost {
            location: self.location.clone(),
            why,
        };
        let revoked = |code: String| {
            let known = lock_health(&self.health).lost.clone();
            lost(known.unwrap_or(LostReason::Revoked { code }))
        };
        let (c, b, id) = (&self.container, &self.blob, self.lease_id.as_str());
        let cleared = self
            .client
            .set_metadata(c, b, &BTreeMap::new(), &WriteCondition::Always, Some(id))
            .await;
        match cleared {
            Err(BlobRefusal::LeaseLost { code }) => return Err(revoked(code)),
            Err(BlobRefusal::NotFound) => return Err(lost(LostReason::Deleted)),
            // Released anyway: the next run then reports the record as abandoned.
            Ok(_) | Err(_) => {}
        }
        match self.client.release_lease(c, b, id).await {
            Ok(()) => Ok(()),
            Err(BlobRefusal::LeaseLost { code }) => Err(revoked(code)),
            Err(BlobRefusal::NotFound) => Err(lost(LostReason::Deleted)),
            Err(source) => Err(service_error(&self.location, source)),
        }
    }

    /// Stops the heartbeat and deletes the lock blob under this lock's lease (which ends the
    /// lease with it): for a state that is gone for good (an environment destroyed). `Err(Lost)`
    /// when the lease was no longer this lock's; the blob is then left as it is.
    pub async fn delete(mut self) -> Result<(), LeaseLockError> {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
            let _ = heartbeat.await;
        }
        let (c, b, id) = (&self.container, &self.blob, self.lease_id.as_str());
        match self
            .client
            .delete_blob_if(c, b, &WriteCondition::Always, Some(id), false)
            .await
        {
            Ok(()) => Ok(()),
            Err(BlobRefusal::LeaseLost { code }) => {
                let known = lock_health(&self.health).lost.clone();
                Err(LeaseLockError::Lost {
                    location: self.location.clone(),
                    why: known.unwrap_or(LostReason::Revoked { code }),
                })
            }
            Err(BlobRefusal::NotFound) => Err(LeaseLockError::Lost {
                location: self.location.clone(),
                why: LostReason::Deleted,
            }),
            Err(source) => Err(service_error(&self.location, source)),
        }
    }

    /// The holder of the lock on `container/blob` while its lease is held (leased, or breaking);
    /// `None` when nobody holds it or the holder left no record.
    pub async fn holder(
        client: &BlobClient,
        container: &str,
        blob: &str,
    ) -> Result<Option<LockInfo>, LeaseLockError> {
        let found = client
            .lease_holder(container, blob)
            .await
            .map_err(|e| service_error(&location(client, container, blob), e.into()))?;
        Ok(found
            .filter(|h| is_held(&h.state))
            .and_then(|h| decode_record(&h.metadata)))
    }

    /// Breaks the lock on `container/blob` whoever holds it (`stackform state unlock --force`): a
    /// held lease is broken at once (break period 0) and its holder's next renewal fails, so it
    /// stops before its next write; a record left by a holder whose lease ran out is cleared. The
    /// outcome names the holder.
    pub async fn force_unlock(
        client: &BlobClient,
        container: &str,
        blob: &str,
    ) -> Result<UnlockOutcome, LeaseLockError> {
        let service = |source| service_error(&location(client, container, blob), source);
        let Some(found) = client
            .lease_holder(container, blob)
            .await
            .map_err(|e| service(e.into()))?
        else {
            return Ok(UnlockOutcome::NotLocked);
        };
        let record = decode_record(&found.metadata);
        let outcome = if is_held(&found.state) {
            match client.break_lease(container, blob, Some(0)).await {
                Ok(_) => UnlockOutcome::BrokeHeldLock(record),
                // It ended between the read and the break.
                Err(BlobRefusal::LeaseLost { .. }) => UnlockOutcome::RemovedStale(record),
                Err(BlobRefusal::NotFound) => return Ok(UnlockOutcome::NotLocked),
                Err(e) => return Err(service(e)),
            }
        } else if record.is_some() {
            UnlockOutcome::RemovedStale(record)
        } else {
            return Ok(UnlockOutcome::NotLocked);
        };
        // Clear the record unless the blob changed since it was read (someone took the lock in
        // between: their record stays).
        match client
            .set_metadata(
                container,
                blob,
                &BTreeMap::new(),
                &WriteCondition::IfMatch(found.etag),
                None,
            )
            .await
        {
            Ok(_)
            | Err(
                BlobRefusal::Changed { .. }
                | BlobRefusal::LeasedByOther { .. }
                | BlobRefusal::NotFound,
            ) => Ok(outcome),
            Err(e) => Err(service(e)),
        }
    }
}

impl Drop for LeaseLock {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
    }
}

/// The lock blob's URL (no signature: a client's URLs never carry one), for messages.
fn location(client: &BlobClient, container: &str, blob: &str) -> String {
    client
        .url(container, Some(blob))
        .map_or_else(|_| format!("{container}/{blob}"), |u| u.to_string())
}

fn service_error(location: &str, source: BlobRefusal) -> LeaseLockError {
    LeaseLockError::Service {
        location: location.to_owned(),
        source: Box::new(source),
    }
}

fn is_infinite(holder: &LeaseHolder) -> bool {
    holder.duration.as_deref() == Some("infinite")
}

/// Creates the empty lock blob if there is none (`If-None-Match: *`: another run creating it first
/// is fine).
async fn create_lock_blob(
    client: &BlobClient,
    container: &str,
    blob: &str,
    location: &str,
) -> Result<(), LeaseLockError> {
    let created = client
        .put_blob_if(
            container,
            blob,
            Bytes::new(),
            &BTreeMap::new(),
            &WriteCondition::IfNotExists,
            None,
        )
        .await;
    match created {
        Ok(_) | Err(BlobRefusal::Changed { .. } | BlobRefusal::LeasedByOther { .. }) => Ok(()),
        Err(BlobRefusal::NotFound) => Err(LeaseLockError::NoContainer {
            location: location.to_owned(),
        }),
        Err(source) => Err(service_error(location, source)),
    }
}

/// The notice for a lease just acquired over a record someone left. `before` is the blob as read
/// just before the acquire and the ETag the acquire answered: a lease action leaves the ETag alone
/// and a metadata write changes it, so an equal ETag means the record read is the one left, and the
/// lease state read says how it was left (recorded: Azure/azure-sdk-for-python
/// `sdk/storage/azure-storage-blob/tests/recordings/test_common_blob.pyTestStorageCommonBlobtest_lease_blob_acquire_and_release.json`
/// answers Put Blob, acquire and release with one ETag; Azurite and the local cloud do the same).
/// Otherwise the blob is read again and the record, if any, counts as abandoned. `broke` is the ETag
/// of a blob whose dead holder's lease this acquire broke: that holder's lease was not waited out.
async fn takeover(
    client: &BlobClient,
    container: &str,
    blob: &str,
    location: &str,
    (read, etag): (LeaseHolder, String),
    broke: Option<&str>,
) -> Option<LeaseTakeover> {
    let (metadata, reason) = if !etag.is_empty() && read.etag == etag {
        let reason = match read.state.as_str() {
            "broken" if broke == Some(etag.as_str()) => LeaseTakeoverReason::HolderDead,
            "expired" => LeaseTakeoverReason::Expired,
            "broken" => LeaseTakeoverReason::Broken,
            _ => LeaseTakeoverReason::Abandoned,
        };
        (read.metadata, reason)
    } else {
        let again = client.lease_holder(container, blob).await.ok().flatten()?;
        (again.metadata, LeaseTakeoverReason::Abandoned)
    };
    Some(LeaseTakeover {
        location: location.to_owned(),
        previous: decode_record(&metadata)?,
        reason,
    })
}

/// Renews the lease until the task is aborted or the lease is lost. Each try is cut off when the
/// lease could run out (or after `renew_every`), so a hung connection counts as a failed renewal.
async fn heartbeat(
    client: BlobClient,
    container: String,
    blob: String,
    lease_id: String,
    timing: LeaseTiming,
    health: Arc<Mutex<Health>>,
) {
    loop {
        let (next, valid_until) = {
            let h = lock_health(&health);
            (h.next_try(Instant::now(), &timing), h.valid_until)
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        let sent = Instant::now();
        if sent >= valid_until {
            // `check` reports it from the clock; nothing more to try.
            return;
        }
        let limit = (valid_until - sent).min(timing.renew_every);
        let renewed =
            tokio::time::timeout(limit, client.renew_lease(&container, &blob, &lease_id)).await;
        let mut h = lock_health(&health);
        match renewed {
            Ok(Ok(())) => h.renewed(sent),
            Ok(Err(BlobRefusal::LeaseLost { code })) => {
                h.revoked(LostReason::Revoked { code });
                return;
            }
            Ok(Err(BlobRefusal::NotFound)) => {
                h.revoked(LostReason::Deleted);
                return;
            }
            Ok(Err(e)) => h.failed(e.to_string()),
            Err(_) => h.failed(format!(
                "no answer to a renewal within {:.0}s",
                limit.as_secs_f64()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_timing() -> LeaseTiming {
        LeaseTiming {
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            margin: Duration::from_secs(2),
            poll_max: Duration::from_secs(1),
        }
    }

    fn record() -> LockInfo {
        LockInfo {
            id: Uuid::new_v4(),
            holder: "alice@ci-7".into(),
            user: "alice".into(),
            host: "ci-7".into(),
            pid: 4242,
            command: "apply".into(),
            since: "2026-12-05T15:00:00.123456789Z".into(),
        }
    }

    /// Whatever a user name, host or command holds, each metadata value is visible ASCII that is a
    /// valid header value (no whitespace a signer could fold, no bare `%`), and reads back as it was
    /// written, with control characters shown as `?` and long values cut.
    #[test]
    fn hostile_holder_values_encode_safely_and_read_back() {
        let hostile = [
            "plain",
            "two words",
            " leading and trailing ",
            "line\r\nx-ms-meta-evil: 1",
            "nul\0byte",
            "\u{1b}[31mred\u{1b}[0m",
            "100% sure",
            "%41 already encoded",
            "ünïcödé 名前 🚀",
            "quote\"back\\slash'tick`",
            "tab\tvertical\u{0b}",
            "",
        ];
        for value in hostile {
            let mut info = record();
            info.user = value.into();
            info.host = value.into();
            info.command = value.into();
            info.holder = format!("{value}@{value}");
            let meta = encode_record(&info);
            for (k, v) in &meta {
                assert!(
                    v.bytes().all(|b| b.is_ascii_graphic()),
                    "{k}={v:?} is not visible ASCII"
                );
                assert!(reqwest::header::HeaderValue::from_str(v).is_ok(), "{v:?}");
            }
            let back = decode_record(&meta).expect("a record");
            let shown: String = value
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            assert_eq!(back.user, shown, "{value:?}");
            assert_eq!(back.command, shown, "{value:?}");
            assert_eq!(
                (back.id, back.pid, &back.since),
                (info.id, 4242, &info.since)
            );
        }
        let mut long = record();
        long.command = "x".repeat(10_000);
        let meta = encode_record(&long);
        assert!(meta.values().map(String::len).sum::<usize>() < 8 * 1024);
        assert_eq!(
            decode_record(&meta).expect("record").command.len(),
            MAX_VALUE_CHARS
        );
    }

    /// A record is judged dead only with this host's name, this pid space and a pid that is not
    /// running: another host, another pid space (a machine or container with the same host name),
    /// no pid space (an older writer), a running pid (alive, or reused) or pid 0 is waited out.
    #[test]
    fn only_a_dead_pid_of_this_host_and_pid_space_is_judged_dead() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn `true`");
        let dead = child.id();
        child.wait().expect("reap `true`");
        let ours = LockInfo {
            pid: dead,
            ..LockInfo::for_this_process("apply")
        };
        let meta = encode_record(&ours);
        assert!(pid_space().is_some(), "this test runs on Linux with /proc");
        assert!(holder_dead_here(&ours, &meta));
        let mut elsewhere = ours.clone();
        elsewhere.host = format!("not-{}", ours.host);
        assert!(!holder_dead_here(&elsewhere, &encode_record(&elsewhere)));
        let mut other_space = meta.clone();
        other_space.insert(META_PID_SPACE.into(), "another-boot/pid:[1]".into());
        assert!(!holder_dead_here(&ours, &other_space));
        let mut no_space = meta.clone();
        no_space.remove(META_PID_SPACE);
        assert!(!holder_dead_here(&ours, &no_space));
        let alive = LockInfo {
            pid: std::process::id(),
            ..ours.clone()
        };
        assert!(!holder_dead_here(&alive, &encode_record(&alive)));
        let zero = LockInfo { pid: 0, ..ours };
        assert!(!holder_dead_here(&zero, &encode_record(&zero)));
    }

    /// Metadata as another writer may have left it: raw control characters, broken percent escapes,
    /// a pid that is not a number, names in any case, parts missing, or no record at all.
    #[test]
    fn damaged_records_still_name_what_they_can() {
        let meta = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(decode_record(&meta(&[])), None);
        assert_eq!(decode_record(&meta(&[("owner", "terraform")])), None);
        let info = decode_record(&meta(&[
            ("HOST", "evil\u{1b}]0;title\u{7}"),
            ("pid", "12x"),
            ("id", "not-a-uuid"),
            ("command", "%E2%28%A1 %zz %"),
        ]))
        .expect("a partial record");
        assert_eq!(info.host, "evil?]0;title?");
        assert_eq!((info.pid, info.id), (0, Uuid::nil()));
        assert_eq!(info.user, "unknown");
        assert!(!info.command.chars().any(char::is_control));
        assert!(info.command.ends_with("%zz %"), "{}", info.command);
    }

    /// The lease counts as ours for its duration less the margin after each renewal was *sent*; a
    /// late answer to an older renewal never extends it; a failure only counts once the time is up.
    #[test]
    fn check_follows_the_send_time_of_each_renewal() {
        let t = test_timing();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut h = Health::new(t0, &t);
        assert_eq!(h.lost_at(t0 + s(12)), None);
        assert!(matches!(
            h.lost_at(t0 + s(13)),
            Some(LostReason::Unrenewed { since, last_error: None }) if since == s(13)
        ));
        h.renewed(t0 + s(3));
        assert_eq!(h.lost_at(t0 + s(15)), None);
        h.renewed(t0 + s(1));
        assert_eq!(h.valid_until, t0 + s(16), "an older send never extends it");
        h.failed("connection refused".into());
        h.failed("connection refused".into());
        assert_eq!(h.lost_at(t0 + s(15)), None);
        let Some(LostReason::Unrenewed { since, last_error }) = h.lost_at(t0 + s(16)) else {
            panic!("lost at the end of the trusted time");
        };
        assert_eq!(since, s(13));
        assert_eq!(last_error.as_deref(), Some("connection refused"));
        h.renewed(t0 + s(6));
        assert_eq!(h.lost_at(t0 + s(18)), None);
        h.revoked(LostReason::Revoked {
            code: "LeaseIsBrokenAndCannotBeRenewed".into(),
        });
        h.renewed(t0 + s(9));
        assert!(
            matches!(h.lost_at(t0 + s(9)), Some(LostReason::Revoked { .. })),
            "a revoked lease stays lost"
        );
    }

    /// The heartbeat renews `renew_every` after the last send, backs off after failures (0.5 s,
    /// 1 s, then `poll_max`), and never waits past the time the lease could run out.
    #[test]
    fn the_heartbeat_schedule() {
        let t = test_timing();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut h = Health::new(t0, &t);
        assert_eq!(h.next_try(t0, &t), t0 + ms(3000));
        h.failed("x".into());
        assert_eq!(h.next_try(t0 + ms(3000), &t), t0 + ms(3500));
        h.failed("x".into());
        assert_eq!(h.next_try(t0 + ms(3500), &t), t0 + ms(4500));
        h.failed("x".into());
        assert_eq!(h.next_try(t0 + ms(4500), &t), t0 + ms(5500));
        assert_eq!(h.next_try(t0 + ms(12_800), &t), t0 + ms(13_000));
        h.renewed(t0 + ms(5500));
        assert_eq!(h.next_try(t0 + ms(5600), &t), t0 + ms(8500));
        assert_eq!(backoff(40, Duration::from_secs(5)), Duration::from_secs(5));
    }

    #[test]
    fn timings_the_service_or_the_heartbeat_cannot_keep_are_refused() {
        assert_eq!(LeaseTiming::default().lease_seconds().ok(), Some(60));
        assert_eq!(test_timing().lease_seconds().ok(), Some(15));
        let with = |f: fn(&mut LeaseTiming)| {
            let mut t = LeaseTiming::default();
            f(&mut t);
            t.lease_seconds()
        };
        for bad in [
            with(|t| t.lease = Duration::from_secs(14)),
            with(|t| t.lease = Duration::from_secs(61)),
            with(|t| t.lease = Duration::from_millis(30_500)),
            with(|t| t.renew_every = Duration::ZERO),
            with(|t| t.margin = Duration::from_secs(60)),
            with(|t| t.renew_every = Duration::from_secs(26)),
        ] {
            assert!(matches!(bad, Err(LeaseLockError::Timing { .. })), "{bad:?}");
        }
    }

    /// A refusal names the holder (who, host, command, since) and how the lock ends; a lost lock says
    /// why and that the run stopped.
    #[test]
    fn messages_name_the_holder_and_the_reason() {
        let held = LeaseLockError::Held {
            location: "https://acct.blob.core.windows.net/tfstate/demo.lock".into(),
            holder: Some(Box::new(record())),
            infinite: false,
        };
        let text = held.to_string();
        for part in [
            "alice@ci-7",
            "host ci-7",
            "`apply`",
            "since 2026-12-05T15:00:00",
            "demo.lock",
            "runs out by itself",
            "state unlock --force",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let infinite = LeaseLockError::Timeout {
            location: "x".into(),
            waited: Duration::from_secs(3),
            holder: None,
            infinite: true,
        }
        .to_string();
        assert!(infinite.contains("never runs out") && infinite.contains("unknown holder"));
        let lost = LeaseLockError::Lost {
            location: "x".into(),
            why: LostReason::Unrenewed {
                since: Duration::from_secs(52),
                last_error: Some("connection refused".into()),
            },
        }
        .to_string();
        assert!(
            lost.contains("52s") && lost.contains("connection refused") && lost.contains("stopped"),
            "{lost}"
        );
        let notice = LeaseTakeover {
            location: "x".into(),
            previous: record(),
            reason: LeaseTakeoverReason::Expired,
        }
        .to_string();
        assert!(
            notice.contains("alice@ci-7") && notice.contains("ran out"),
            "{notice}"
        );
        let dead = LeaseTakeover {
            location: "x".into(),
            previous: record(),
            reason: LeaseTakeoverReason::HolderDead,
        }
        .to_string();
        assert!(
            dead.starts_with("took over the lock x left by alice@ci-7")
                && dead.contains("pid 4242 on this host is not running"),
            "{dead}"
        );
    }
}
