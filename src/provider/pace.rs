//! Client-side pacing of ARM requests: the same token buckets ARM throttles with
//! ([`crate::token_bucket`]), one set per process (one principal), so a large apply waits its turn
//! instead of being answered 429 and retried.
//!
//! Each ARM request takes a token of its class before it is sent ([`Pacer::reserve`]); when none is
//! left, the request waits until the refill makes one, and the wait is announced ("paced: 10
//! writes/s"). A response's `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}` header
//! lowers the local bucket to what ARM says remains (Microsoft Learn, "Understand how Azure Resource
//! Manager throttles requests", section "Remaining requests"), so a principal that shares its
//! subscription with other clients slows down too.
//!
//! Two rules keep the local bucket from believing in more than the server's:
//!
//! - **Learn before bursting.** The local buckets start full, but the server's may not be (earlier
//!   requests of the same principal, from this process or another). Until a class has had one
//!   answer, only one request of it is on its way (its probe); the others wait for that answer
//!   ([`Reservation::Learning`]) and then go by the count it reported.
//! - **What the count did not see.** A remaining count was taken by the server when it admitted that
//!   request; the requests of the class the client reserved before the answer arrived, and that had
//!   not ended before that request was reserved, may not be in it. They are subtracted from it. Every
//!   reservation is a [`Ticket`] that ends on every outcome (an answer, a transport error, a dropped
//!   future), so the count of those requests never drifts.
//!
//! Pure bookkeeping over a time the caller passes in: nothing here sleeps (the pipeline does, through
//! its clock, and awaits a [`Reservation::Learning`]). The blob data plane is not ARM and is never
//! paced.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::watch;

pub use crate::token_bucket::{BucketLimits, PaceClass, PaceLimits, TokenBucket};

/// Said once when a class of requests starts waiting for its bucket: "paced: 10 writes/s".
#[derive(Debug, Clone, PartialEq)]
pub struct PaceNotice {
    pub class: PaceClass,
    /// The refill rate the requests now go at.
    pub per_second: f64,
}

impl std::fmt::Display for PaceNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "paced: {} {}/s", self.per_second, self.class.plural())
    }
}

/// Receives pacing notices; called from the task whose request waits, must not block.
pub type PaceNotices = Arc<dyn Fn(PaceNotice) + Send + Sync>;

/// A notice is repeated for a class only after this long without one (a long apply shows it again
/// now and then, not once per request).
const NOTICE_EVERY: Duration = Duration::from_secs(30);

/// The three buckets of one principal, shared by every request of the process.
pub struct Pacer {
    limits: PaceLimits,
    state: Mutex<PacerState>,
    notices: Mutex<Option<PaceNotices>>,
    /// Per class, counts the probes that ended, so the requests waiting for one reserve again.
    probes_ended: [watch::Sender<u64>; 3],
}

struct PacerState {
    buckets: [TokenBucket; 3],
    last_notice: [Option<Duration>; 3],
    delayed: [u64; 3],
    /// Per class: tickets handed out and tickets ended so far, whatever the outcome.
    reserved: [u64; 3],
    ended: [u64; 3],
    learning: [Learning; 3],
}

/// What the client knows of the server's bucket of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learning {
    /// Nothing yet: the next request goes alone, as the probe.
    Unknown,
    /// The probe is on its way; the others wait for it.
    Probing,
    /// A request of the class was answered: its count (if it sent one) is in the bucket.
    Known,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What a request of a class may do now.
#[must_use]
pub enum Reservation<'a> {
    /// Send it after `wait`, holding `ticket` until it ends.
    Send { wait: Duration, ticket: Ticket<'a> },
    /// The class's first request is on its way: wait until this changes, then reserve again.
    Learning(watch::Receiver<u64>),
}

/// One reserved request of a class, from its reservation until it ends: answered
/// ([`Ticket::answered`]) or dropped (a transport error, a failed authorization, a cancelled future).
#[must_use]
pub struct Ticket<'a> {
    pacer: &'a Pacer,
    class: PaceClass,
    /// Tickets of the class that had ended when this one was handed out.
    ended_before: u64,
    /// This request is its class's probe.
    probe: bool,
}

impl Ticket<'_> {
    /// The request was answered with `headers` (`throttled`: a 429): its class's bucket takes the
    /// remaining counts, less the requests they did not see, and a 429 empties it.
    pub fn answered(self, headers: &HeaderMap, throttled: bool, now: Duration) {
        self.pacer.end(&self, Some((headers, throttled)), now);
        std::mem::forget(self);
    }
}

impl Drop for Ticket<'_> {
    /// Ended without an answer: nothing is learned, and a probe hands its role to the next request.
    fn drop(&mut self) {
        self.pacer.end(self, None, Duration::ZERO);
    }
}

impl Pacer {
    /// Full buckets of `limits` at time `now`.
    pub fn new(limits: PaceLimits, now: Duration) -> Self {
        let bucket = |c: PaceClass| TokenBucket::new(limits.of(c), now);
        Self {
            limits,
            state: Mutex::new(PacerState {
                buckets: PaceClass::ALL.map(bucket),
                last_notice: [None; 3],
                delayed: [0; 3],
                reserved: [0; 3],
                ended: [0; 3],
                learning: [Learning::Unknown; 3],
            }),
            notices: Mutex::new(None),
            probes_ended: PaceClass::ALL.map(|_| watch::Sender::new(0)),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> PaceLimits {
        self.limits
    }

    /// Where notices go from now on.
    pub fn set_notices(&self, sink: PaceNotices) {
        if let Ok(mut n) = self.notices.lock() {
            *n = Some(sink);
        }
    }

    /// Reserves a token for a request of `class` at `now`: how long to wait before sending, and the
    /// ticket to end when the request ends; or, while the class's probe is on its way, what to wait
    /// for before reserving again. A wait is announced (at most every 30 s per class) to the notice
    /// sink.
    pub fn reserve(&self, class: PaceClass, now: Duration) -> Reservation<'_> {
        let i = class.index();
        let (wait, ticket, notice) = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let probe = match s.learning[i] {
                Learning::Probing => {
                    return Reservation::Learning(self.probes_ended[i].subscribe());
                }
                Learning::Unknown => {
                    s.learning[i] = Learning::Probing;
                    true
                }
                Learning::Known => false,
            };
            let wait = s.buckets[i].take(now);
            let mut notice = None;
            if !wait.is_zero() {
                s.delayed[i] += 1;
                if s.last_notice[i].is_none_or(|t| now.saturating_sub(t) >= NOTICE_EVERY) {
                    s.last_notice[i] = Some(now);
                    notice = Some(PaceNotice {
                        class,
                        per_second: self.limits.of(class).per_second,
                    });
                }
            }
            s.reserved[i] += 1;
            let ticket = Ticket {
                pacer: self,
                class,
                ended_before: s.ended[i],
                probe,
            };
            (wait, ticket, notice)
        };
        if let Some(n) = notice {
            tracing::debug!(
                class = n.class.plural(),
                wait_ms = wait.as_millis() as u64,
                "{n}"
            );
            let sink = self.notices.lock().ok().and_then(|s| s.clone());
            if let Some(sink) = sink {
                sink(n);
            }
        }
        Reservation::Send { wait, ticket }
    }

    /// Ends `ticket`, with the answer when there was one.
    fn end(&self, ticket: &Ticket<'_>, answer: Option<(&HeaderMap, bool)>, now: Duration) {
        // Bookkeeping under a poisoned lock is still consistent: nothing panics while holding it.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let i = ticket.class.index();
        if let Some((headers, throttled)) = answer {
            for class in PaceClass::ALL {
                let j = class.index();
                // The requests the server may not have counted when it answered: for the answered
                // request's class, every other one reserved before now that had not ended when it
                // was reserved; for another class, those in flight now.
                let unseen = if j == i {
                    (s.reserved[j] - ticket.ended_before).saturating_sub(1)
                } else {
                    s.reserved[j] - s.ended[j]
                };
                let name = format!("x-ms-ratelimit-remaining-subscription-{}", class.plural());
                let remaining = headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                // A 429: the server's bucket of the class is empty, whatever the header says.
                let remaining = if throttled && j == i {
                    Some(0)
                } else {
                    remaining
                };
                if let Some(remaining) = remaining {
                    s.buckets[j].observe_remaining(remaining, unseen, now);
                }
            }
        }
        s.ended[i] += 1;
        if ticket.probe {
            // An answer, with or without a count, is all the server will say; without one (no
            // answer) the next request probes.
            s.learning[i] = if answer.is_some() {
                Learning::Known
            } else {
                Learning::Unknown
            };
            self.probes_ended[i].send_modify(|n| *n += 1);
        }
    }

    /// How many requests of each class had to wait: `(reads, writes, deletes)`.
    pub fn delayed(&self) -> (u64, u64, u64) {
        self.state
            .lock()
            .map(|s| (s.delayed[0], s.delayed[1], s.delayed[2]))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::token_bucket::tests::{ms, s};

    /// Headers saying `remaining` requests of `class` are left.
    fn left(class: PaceClass, remaining: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        let name = format!("x-ms-ratelimit-remaining-subscription-{}", class.plural());
        h.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            remaining.into(),
        );
        h
    }

    /// Reserves a request that may be sent now or after a wait; panics while a probe is awaited.
    fn send(pacer: &Pacer, class: PaceClass, now: Duration) -> (Duration, Ticket<'_>) {
        match pacer.reserve(class, now) {
            Reservation::Send { wait, ticket } => (wait, ticket),
            Reservation::Learning(_) => panic!("{} waits for the probe", class.plural()),
        }
    }

    fn is_learning(r: Reservation<'_>) -> bool {
        matches!(r, Reservation::Learning(_))
    }

    /// A class's first request, answered with `remaining` left: its count is learned.
    fn probe(pacer: &Pacer, class: PaceClass, remaining: u64) {
        let (_, t) = send(pacer, class, s(0));
        t.answered(&left(class, remaining), false, s(0));
    }

    #[test]
    fn a_low_remaining_header_slows_the_bucket_down() {
        let pacer = Pacer::new(PaceLimits::ARM, s(0));
        probe(&pacer, PaceClass::Read, 249);
        let (_, t) = send(&pacer, PaceClass::Write, s(0));
        t.answered(&left(PaceClass::Write, 0), false, s(0));
        // Writes: ARM says none left, so the next write waits 1/10 s; reads are untouched.
        assert_eq!(send(&pacer, PaceClass::Write, s(0)).0, ms(100));
        assert_eq!(send(&pacer, PaceClass::Read, s(0)).0, Duration::ZERO);
        // A high value never adds tokens beyond the local count.
        let (wait, t) = send(&pacer, PaceClass::Write, s(0));
        assert_eq!(wait, ms(200));
        t.answered(&left(PaceClass::Write, 11999), false, s(0));
        assert_eq!(send(&pacer, PaceClass::Write, s(0)).0, ms(300));
        assert_eq!(pacer.delayed(), (0, 3, 0));
    }

    #[test]
    fn a_429_empties_the_bucket_of_its_class() {
        let pacer = Pacer::new(PaceLimits::ARM, s(0));
        probe(&pacer, PaceClass::Read, 249);
        let (_, t) = send(&pacer, PaceClass::Delete, s(0));
        t.answered(&HeaderMap::new(), true, s(0));
        assert_eq!(send(&pacer, PaceClass::Delete, s(0)).0, ms(100));
        assert_eq!(send(&pacer, PaceClass::Read, s(0)).0, Duration::ZERO);
    }

    /// The bug: the local buckets start full while the server's may still be refilling from earlier
    /// requests of the same principal, so a burst sent before the first answer overran it (a paced
    /// apply was answered 429).
    #[test]
    fn a_class_sends_one_request_and_learns_the_count_before_it_bursts() {
        let pacer = Pacer::new(PaceLimits::ARM, s(0));
        let (wait, first) = send(&pacer, PaceClass::Write, s(0));
        assert_eq!(wait, Duration::ZERO);
        // While the first write is on its way the others wait for its answer; reads have their own.
        let Reservation::Learning(waiting) = pacer.reserve(PaceClass::Write, s(0)) else {
            panic!("a second write went before the first was answered");
        };
        assert!(!waiting.has_changed().unwrap());
        let (_, read) = send(&pacer, PaceClass::Read, s(0));
        // The server had one write left after the first: the next goes, the one after waits 1/10 s.
        first.answered(&left(PaceClass::Write, 1), false, s(0));
        assert!(waiting.has_changed().unwrap());
        assert_eq!(send(&pacer, PaceClass::Write, s(0)).0, Duration::ZERO);
        assert_eq!(send(&pacer, PaceClass::Write, s(0)).0, ms(100));
        drop(read);
    }

    #[test]
    fn a_probe_that_gets_no_answer_hands_its_role_to_the_next_request() {
        let pacer = Pacer::new(PaceLimits::ARM, s(0));
        let (_, first) = send(&pacer, PaceClass::Delete, s(0));
        let Reservation::Learning(waiting) = pacer.reserve(PaceClass::Delete, s(0)) else {
            panic!("a second delete went before the first ended");
        };
        // A transport error: nothing learned, the waiting request is woken and probes in its turn.
        drop(first);
        assert!(waiting.has_changed().unwrap());
        let (_, second) = send(&pacer, PaceClass::Delete, s(0));
        assert!(is_learning(pacer.reserve(PaceClass::Delete, s(0))));
        // An answer without a count (a server that does not say) is all there is to learn.
        second.answered(&HeaderMap::new(), false, s(0));
        for _ in 0..3 {
            assert_eq!(send(&pacer, PaceClass::Delete, s(0)).0, Duration::ZERO);
        }
    }

    /// The bug: a remaining count was taken by the server before the requests the client sent while
    /// that answer was on its way, and the bucket took it as it was, so those requests were spent
    /// twice and the next ones overran the server's bucket.
    #[test]
    fn a_remaining_count_leaves_out_the_requests_it_did_not_see() {
        let limits = PaceLimits::parse("writes=4/1").unwrap();
        let pacer = Pacer::new(limits, s(0));
        probe(&pacer, PaceClass::Write, 3);
        let (_, a) = send(&pacer, PaceClass::Write, s(0));
        let (_, b) = send(&pacer, PaceClass::Write, s(0));
        // Another client of the subscription took a write: the server counted it and `a`, not `b`.
        a.answered(&left(PaceClass::Write, 1), false, s(0));
        // One left for `b`: nothing for a third write until the refill, a second later.
        assert_eq!(send(&pacer, PaceClass::Write, s(0)).0, s(1));
        b.answered(&left(PaceClass::Write, 0), false, s(0));
    }

    #[test]
    fn requests_that_ended_before_are_not_subtracted_whatever_their_outcome() {
        let limits = PaceLimits::parse("writes=10/1").unwrap();
        let pacer = Pacer::new(limits, s(0));
        probe(&pacer, PaceClass::Write, 3);
        // A write lost to a transport error, then one answered with one left: the count saw the
        // first or never will, so the one left is there for the next write.
        let (_, lost) = send(&pacer, PaceClass::Write, s(0));
        drop(lost);
        let (_, a) = send(&pacer, PaceClass::Write, s(0));
        a.answered(&left(PaceClass::Write, 1), false, s(0));
        assert_eq!(send(&pacer, PaceClass::Write, s(0)).0, Duration::ZERO);
        assert_eq!(send(&pacer, PaceClass::Write, s(0)).0, s(1));
    }

    #[test]
    fn a_wait_is_announced_once_per_class_and_again_after_a_quiet_spell() {
        let limits = PaceLimits::parse("writes=1/10,deletes=1/5").unwrap();
        let pacer = Pacer::new(limits, s(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        pacer.set_notices(Arc::new(move |n: PaceNotice| {
            sink.lock().unwrap().push(n.to_string());
        }));
        probe(&pacer, PaceClass::Write, 0);
        probe(&pacer, PaceClass::Delete, 0);
        for _ in 0..4 {
            let _ = send(&pacer, PaceClass::Write, s(0));
        }
        let _ = send(&pacer, PaceClass::Delete, s(0));
        // 40 s later the write bucket is full again: no wait, no notice; the next one waits again.
        let _ = send(&pacer, PaceClass::Write, s(40));
        let _ = send(&pacer, PaceClass::Write, s(40));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "paced: 10 writes/s",
                "paced: 5 deletes/s",
                "paced: 10 writes/s"
            ]
        );
    }
}
