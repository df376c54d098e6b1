//! Token buckets as Azure Resource Manager throttles with them: one bucket per kind of operation
//! (reads, writes, deletes), each with a size (the burst) and a refill rate. Shared by the provider,
//! which paces its own ARM requests with them, and the local cloud, which can enforce them.
//!
//! ARM's limits per subscription and principal: reads 250 tokens refilled at 25 per second, writes 200
//! at 10, deletes 200 at 10 (Microsoft Learn, "Understand how Azure Resource Manager throttles
//! requests",
//! <https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling>,
//! source `MicrosoftDocs/azure-docs: articles/azure-resource-manager/management/request-limits-and-throttling.md`,
//! section "Regional throttling and token bucket algorithm").
//!
//! A pure leaf: arithmetic over a monotonic time the caller passes in. It never sleeps, reads a clock
//! or imports anything of the crate.

use std::time::Duration;

/// The three operation kinds ARM counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaceClass {
    Read,
    Write,
    Delete,
}

impl PaceClass {
    /// GET and HEAD are reads, DELETE a delete, everything else (PUT, PATCH, POST) a write, as ARM
    /// counts them.
    pub fn of(method: &str) -> Self {
        match method {
            "GET" | "HEAD" => Self::Read,
            "DELETE" => Self::Delete,
            _ => Self::Write,
        }
    }

    /// `reads`, `writes`, `deletes`: the suffix of ARM's remaining-requests header and the word the
    /// progress notice uses.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Read => "reads",
            Self::Write => "writes",
            Self::Delete => "deletes",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Self::Read => 0,
            Self::Write => 1,
            Self::Delete => 2,
        }
    }

    pub const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Delete];
}

/// One bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimits {
    /// Tokens when full (the burst).
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: f64,
}

/// The limits of the three buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceLimits {
    pub reads: BucketLimits,
    pub writes: BucketLimits,
    pub deletes: BucketLimits,
}

impl PaceLimits {
    /// ARM's subscription limits per principal: reads 250 and 25/s, writes 200 and 10/s, deletes 200
    /// and 10/s (see the module documentation for the source).
    pub const ARM: Self = Self {
        reads: BucketLimits {
            burst: 250,
            per_second: 25.0,
        },
        writes: BucketLimits {
            burst: 200,
            per_second: 10.0,
        },
        deletes: BucketLimits {
            burst: 200,
            per_second: 10.0,
        },
    };

    pub fn of(&self, class: PaceClass) -> BucketLimits {
        match class {
            PaceClass::Read => self.reads,
            PaceClass::Write => self.writes,
            PaceClass::Delete => self.deletes,
        }
    }

    /// Parses `reads=BURST/RATE,writes=BURST/RATE,deletes=BURST/RATE` (any subset; the rest keep
    /// ARM's values), the form of `--arm-pace` and the local cloud's `--arm-throttle`.
    ///
    /// # Errors
    ///
    /// A message naming the part that is not `class=burst/rate` with a burst of at least 1 and a
    /// positive rate.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut limits = Self::ARM;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                format!(
                    "`{part}`: expected reads=BURST/RATE, writes=BURST/RATE or deletes=BURST/RATE (burst at least 1, rate above 0)"
                )
            };
            let (class, value) = part.split_once('=').ok_or_else(bad)?;
            let (burst, rate) = value.split_once('/').ok_or_else(bad)?;
            let burst: u32 = burst.trim().parse().map_err(|_| bad())?;
            let per_second: f64 = rate.trim().parse().map_err(|_| bad())?;
            if burst == 0 || !(per_second.is_finite() && per_second > 0.0) {
                return Err(bad());
            }
            let b = BucketLimits { burst, per_second };
            match class.trim() {
                "reads" => limits.reads = b,
                "writes" => limits.writes = b,
                "deletes" => limits.deletes = b,
                _ => return Err(bad()),
            }
        }
        Ok(limits)
    }
}

/// A token bucket over a caller-supplied monotonic time. Tokens may go below zero: a request that
/// finds none reserves the next one and is told how long to wait, so concurrent callers queue in
/// order instead of all waking at once.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    limits: BucketLimits,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(limits: BucketLimits, now: Duration) -> Self {
        Self {
            limits,
            tokens: f64::from(limits.burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens =
            (self.tokens + elapsed * self.limits.per_second).min(f64::from(self.limits.burst));
    }

    /// Takes one token at `now`; returns how long the caller must wait before sending (zero when a
    /// token was there).
    pub fn take(&mut self, now: Duration) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limits.per_second)
        }
    }

    /// Takes one token at `now` only when there is a whole one: `Ok(tokens left)`, or `Err(how long
    /// until one is there)` with the bucket unchanged (a server refusing a request does not charge
    /// it).
    pub fn try_take(&mut self, now: Duration) -> Result<u64, Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            // Whole tokens left, between 0 and the burst: the cast loses nothing.
            Ok(self.tokens.floor() as u64)
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.limits.per_second,
            ))
        }
    }

    /// The server says `remaining` requests were left in its bucket when it counted, and `unseen`
    /// requests this bucket was charged for may have reached it only after: never believe in more
    /// than `remaining - unseen` (below zero when that is negative: the next requests wait for the
    /// refill to cover those).
    pub fn observe_remaining(&mut self, remaining: u64, unseen: u64, now: Duration) {
        self.refill(now);
        // Precision beyond 2^53 does not matter for a count of requests.
        let left = remaining as f64 - unseen as f64;
        self.tokens = self.tokens.min(left);
    }

    /// Tokens now (may be negative while requests wait).
    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    pub(crate) fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_spaces_requests_by_the_refill_rate() {
        let mut b = TokenBucket::new(
            BucketLimits {
                burst: 3,
                per_second: 10.0,
            },
            s(0),
        );
        for _ in 0..3 {
            assert_eq!(b.take(s(0)), Duration::ZERO);
        }
        // Empty: the 4th waits one refill interval, the 5th two (reservations queue).
        assert_eq!(b.take(s(0)), ms(100));
        assert_eq!(b.take(s(0)), ms(200));
        // A second later 10 tokens came back: 2 were owed, and the bucket holds at most 3.
        assert_eq!(b.take(s(1)), Duration::ZERO);
        assert!((b.tokens() - 2.0).abs() < 1e-9, "{}", b.tokens());
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let limits = BucketLimits {
            burst: 2,
            per_second: 1.0,
        };
        let mut b = TokenBucket::new(limits, s(0));
        assert_eq!(b.take(s(0)), Duration::ZERO);
        assert_eq!(b.take(s(0)), Duration::ZERO);
        // An hour later the bucket holds 2, not 3600.
        assert_eq!(b.take(s(3600)), Duration::ZERO);
        assert_eq!(b.take(s(3600)), Duration::ZERO);
        assert_eq!(b.take(s(3600)), s(1));
    }

    #[test]
    fn limits_parse_and_refuse_nonsense() {
        let l = PaceLimits::parse("reads=5/2.5, deletes=3/1").unwrap();
        assert_eq!(
            l.reads,
            BucketLimits {
                burst: 5,
                per_second: 2.5
            }
        );
        assert_eq!(l.writes, PaceLimits::ARM.writes);
        assert_eq!(l.deletes.burst, 3);
        assert_eq!(PaceLimits::parse("").unwrap(), PaceLimits::ARM);
        for bad in [
            "reads=0/1",
            "reads=1/0",
            "reads=1",
            "lists=1/1",
            "reads=a/b",
            "reads=1/NaN",
        ] {
            assert!(PaceLimits::parse(bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn a_refused_request_is_not_charged() {
        let mut b = TokenBucket::new(
            BucketLimits {
                burst: 2,
                per_second: 4.0,
            },
            s(0),
        );
        assert_eq!(b.try_take(s(0)), Ok(1));
        assert_eq!(b.try_take(s(0)), Ok(0));
        assert_eq!(b.try_take(s(0)), Err(ms(250)));
        assert_eq!(b.try_take(ms(100)), Err(ms(150)));
        assert_eq!(b.try_take(ms(250)), Ok(0));
    }

    #[test]
    fn methods_map_to_arm_classes() {
        assert_eq!(PaceClass::of("GET"), PaceClass::Read);
        assert_eq!(PaceClass::of("HEAD"), PaceClass::Read);
        assert_eq!(PaceClass::of("PUT"), PaceClass::Write);
        assert_eq!(PaceClass::of("PATCH"), PaceClass::Write);
        assert_eq!(PaceClass::of("POST"), PaceClass::Write);
        assert_eq!(PaceClass::of("DELETE"), PaceClass::Delete);
    }
}
