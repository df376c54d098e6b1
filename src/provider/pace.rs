//! Client-side pacing of ARM requests: the same token buckets ARM throttles with
//! ([`crate::token_bucket`]), one set per process (one principal), so a large apply waits its turn
//! instead of being answered 429 and retried.
//!
//! Each ARM request takes a token of its class before it is sent; when none is left, the request
//! waits until the refill makes one, and the wait is announced ("paced: 10 writes/s"). A response's
//! `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}` header lowers the local bucket to
//! what ARM says remains (Microsoft Learn, "Understand how Azure Resource Manager throttles
//! requests", section "Remaining requests"), so a principal that shares its subscription with other
//! clients slows down too.
//!
//! Pure bookkeeping over a time the caller passes in: nothing here sleeps (the pipeline does, through
//! its clock). The blob data plane is not ARM and is never paced.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;

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
}

struct PacerState {
    buckets: [TokenBucket; 3],
    last_notice: [Option<Duration>; 3],
    delayed: [u64; 3],
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
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
            }),
            notices: Mutex::new(None),
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

    /// Reserves a token for a request of `class` at `now`; returns how long to wait before sending.
    /// A wait is announced (at most every 30 s per class) to the notice sink.
    pub fn reserve(&self, class: PaceClass, now: Duration) -> Duration {
        let (wait, notice) = {
            let Ok(mut s) = self.state.lock() else {
                return Duration::ZERO;
            };
            let i = class.index();
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
            (wait, notice)
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
        wait
    }

    /// Reads ARM's `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}` headers of a
    /// response and lowers the matching buckets.
    pub fn observe(&self, headers: &HeaderMap, now: Duration) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        for class in PaceClass::ALL {
            let name = format!("x-ms-ratelimit-remaining-subscription-{}", class.plural());
            if let Some(remaining) = headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                s.buckets[class.index()].observe_remaining(remaining, now);
            }
        }
    }

    /// ARM answered a request of `class` with 429: its bucket is empty whatever ours says, so the
    /// requests that follow wait for the refill too (the throttled one waits its `Retry-After`).
    pub fn throttled(&self, class: PaceClass, now: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.buckets[class.index()].observe_remaining(0, now);
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

    #[test]
    fn a_low_remaining_header_slows_the_bucket_down() {
        let pacer = Pacer::new(PaceLimits::ARM, s(0));
        let mut h = HeaderMap::new();
        h.insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            "0".parse().unwrap(),
        );
        pacer.observe(&h, s(0));
        // Writes: ARM says none left, so the next write waits 1/10 s; reads are untouched.
        assert_eq!(pacer.reserve(PaceClass::Write, s(0)), ms(100));
        assert_eq!(pacer.reserve(PaceClass::Read, s(0)), Duration::ZERO);
        // A high value never adds tokens beyond the local count.
        h.insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            "11999".parse().unwrap(),
        );
        pacer.observe(&h, s(0));
        assert_eq!(pacer.reserve(PaceClass::Write, s(0)), ms(200));
        assert_eq!(pacer.delayed(), (0, 2, 0));
    }

    #[test]
    fn a_429_empties_the_bucket_of_its_class() {
        let pacer = Pacer::new(PaceLimits::ARM, s(0));
        pacer.throttled(PaceClass::Delete, s(0));
        assert_eq!(pacer.reserve(PaceClass::Delete, s(0)), ms(100));
        assert_eq!(pacer.reserve(PaceClass::Read, s(0)), Duration::ZERO);
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
        for _ in 0..5 {
            pacer.reserve(PaceClass::Write, s(0));
        }
        pacer.reserve(PaceClass::Delete, s(0));
        pacer.reserve(PaceClass::Delete, s(0));
        // 40 s later the write bucket is full again: no wait, no notice; the next one waits again.
        pacer.reserve(PaceClass::Write, s(40));
        pacer.reserve(PaceClass::Write, s(40));
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
