//! Fault injection for testing clients against an unreliable cloud: added latency, LRO duration,
//! random 500/503 and 429 answers, role-assignment propagation delay and principal replication delay,
//! and ARM's own throttling: token buckets per principal for reads, writes and deletes
//! ([`crate::token_bucket`]), off unless `arm_throttle` is set.
//! Set from `cloud up` flags/env at start and changed at run time through `POST /_admin/faults`.
//! Defaults inject nothing. This module only decides; the protocol layers apply the decisions: it
//! must never sleep, answer a request or touch the store.
use serde::{Deserialize, Serialize};

use crate::token_bucket::PaceLimits;

/// The fault settings. Every field is optional in the admin API's JSON; missing fields keep their value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Milliseconds added before every ARM and blob request is handled.
    pub latency_ms: u64,
    /// How long long-running operations stay in progress, in milliseconds.
    pub lro_ms: u64,
    /// `Retry-After` seconds advertised on LRO responses (default 1; not a fault, a pacing hint).
    pub retry_after_s: u64,
    /// Fraction (0..=1) of ARM/blob requests answered with 500 or 503.
    pub error_rate: f64,
    /// Fraction (0..=1) of ARM/blob requests answered with 429 and `Retry-After`.
    pub throttle_rate: f64,
    /// Seconds sent in `Retry-After` on injected 429s.
    pub throttle_retry_after_s: u64,
    /// Seconds during which a new role assignment does not yet grant data-plane access.
    pub role_propagation_s: f64,
    /// Seconds during which a new identity's principal is unknown to role assignments.
    pub principal_replication_s: f64,
    /// ARM's throttling, enforced per principal: empty is off, `arm` is ARM's own limits (reads 250
    /// and 25/s, writes 200 and 10/s, deletes 200 and 10/s), or `reads=B/R,writes=B/R,deletes=B/R`
    /// (missing classes keep ARM's values). A request that finds its bucket empty is answered 429
    /// `SubscriptionRequestsThrottled` with `Retry-After`.
    pub arm_throttle: String,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            lro_ms: 0,
            retry_after_s: 1,
            error_rate: 0.0,
            throttle_rate: 0.0,
            throttle_retry_after_s: 1,
            role_propagation_s: 0.0,
            principal_replication_s: 0.0,
            arm_throttle: String::new(),
        }
    }
}

/// A partial update, as sent to the admin API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    pub latency_ms: Option<u64>,
    pub lro_ms: Option<u64>,
    pub retry_after_s: Option<u64>,
    pub error_rate: Option<f64>,
    pub throttle_rate: Option<f64>,
    pub throttle_retry_after_s: Option<u64>,
    pub role_propagation_s: Option<f64>,
    pub principal_replication_s: Option<f64>,
    pub arm_throttle: Option<String>,
}

/// A fault setting that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("{0} must be between 0 and 1")]
    RateOutOfRange(&'static str),
    #[error("{0} must be a non-negative number")]
    NegativeDelay(&'static str),
    #[error("{0} must be a number")]
    NotANumber(String),
    #[error("{0} must be a non-negative integer")]
    NotAnInteger(String),
    #[error("arm_throttle {0}")]
    Throttle(String),
    #[error("{0}")]
    Invalid(#[from] serde_json::Error),
}

/// Reads an `arm_throttle` setting: empty or `off` is none, `arm` ARM's limits, else
/// `reads=B/R,…`.
pub fn throttle_limits(text: &str) -> Result<Option<PaceLimits>, String> {
    match text.trim() {
        "" | "off" => Ok(None),
        "arm" => Ok(Some(PaceLimits::ARM)),
        t => PaceLimits::parse(t).map(Some),
    }
}

/// What the protocol layer must do with one request.
#[derive(Debug, PartialEq)]
pub(crate) enum Injected {
    None,
    ServerError(u16),
    Throttle(u64),
}

impl Faults {
    /// Applies a patch, rejecting rates outside 0..=1 and negative delays.
    pub fn apply(&mut self, p: FaultsPatch) -> Result<(), FaultsError> {
        for (name, v) in [
            ("error_rate", p.error_rate),
            ("throttle_rate", p.throttle_rate),
        ] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(FaultsError::RateOutOfRange(name));
            }
        }
        for (name, v) in [
            ("role_propagation_s", p.role_propagation_s),
            ("principal_replication_s", p.principal_replication_s),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(FaultsError::NegativeDelay(name));
            }
        }
        if let Some(t) = &p.arm_throttle {
            throttle_limits(t).map_err(FaultsError::Throttle)?;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = p.$f { self.$f = v; } )* };
        }
        set!(
            latency_ms,
            lro_ms,
            retry_after_s,
            error_rate,
            throttle_rate,
            throttle_retry_after_s,
            role_propagation_s,
            principal_replication_s
        );
        if let Some(t) = p.arm_throttle {
            self.arm_throttle = t;
        }
        Ok(())
    }

    /// The token buckets ARM requests are throttled with, `None` when throttling is off.
    pub fn arm_limits(&self) -> Option<PaceLimits> {
        throttle_limits(&self.arm_throttle).ok().flatten()
    }

    /// Draws the fault for one request.
    pub(crate) fn draw(&self, roll: f64) -> Injected {
        if roll < self.throttle_rate {
            Injected::Throttle(self.throttle_retry_after_s.max(1))
        } else if roll < self.throttle_rate + self.error_rate {
            // Alternate between the two transient codes clients must retry.
            if ((roll * 1000.0) as u64).is_multiple_of(2) {
                Injected::ServerError(500)
            } else {
                Injected::ServerError(503)
            }
        } else {
            Injected::None
        }
    }

    /// Reads settings from the environment (`STACKFORM_CLOUD_FAULT_<FIELD>`, e.g.
    /// `STACKFORM_CLOUD_FAULT_LRO_MS=2000`).
    pub fn from_env() -> Result<Faults, FaultsError> {
        let mut f = Faults::default();
        let mut patch = serde_json::Map::new();
        for name in [
            "latency_ms",
            "lro_ms",
            "retry_after_s",
            "error_rate",
            "throttle_rate",
            "throttle_retry_after_s",
            "role_propagation_s",
            "principal_replication_s",
        ] {
            let var = format!("STACKFORM_CLOUD_FAULT_{}", name.to_ascii_uppercase());
            if let Ok(v) = std::env::var(&var) {
                let n: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| FaultsError::NotANumber(var.clone()))?;
                let value = if name.ends_with("_ms") || name.ends_with("retry_after_s") {
                    if n < 0.0 || n.fract() != 0.0 {
                        return Err(FaultsError::NotAnInteger(var));
                    }
                    serde_json::json!(n as u64)
                } else {
                    serde_json::json!(n)
                };
                patch.insert(name.to_string(), value);
            }
        }
        if let Ok(v) = std::env::var("STACKFORM_CLOUD_FAULT_ARM_THROTTLE") {
            patch.insert("arm_throttle".to_string(), serde_json::json!(v));
        }
        let p: FaultsPatch = serde_json::from_value(serde_json::Value::Object(patch))?;
        f.apply(p)?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_inject_nothing() {
        let f = Faults::default();
        assert_eq!(f.draw(0.0), Injected::None);
        assert_eq!(f.draw(0.99), Injected::None);
    }

    #[test]
    fn rates_split_the_roll() {
        let mut f = Faults::default();
        f.apply(FaultsPatch {
            throttle_rate: Some(0.25),
            error_rate: Some(0.25),
            throttle_retry_after_s: Some(3),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.draw(0.1), Injected::Throttle(3));
        assert!(matches!(f.draw(0.3), Injected::ServerError(500 | 503)));
        assert_eq!(f.draw(0.6), Injected::None);
    }

    #[test]
    fn bad_rates_are_refused() {
        let mut f = Faults::default();
        assert!(
            f.apply(FaultsPatch {
                error_rate: Some(1.5),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            f.apply(FaultsPatch {
                role_propagation_s: Some(-1.0),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            f.apply(FaultsPatch {
                arm_throttle: Some("reads=0/1".into()),
                ..Default::default()
            })
            .is_err()
        );
        assert_eq!(f, Faults::default());
    }

    #[test]
    fn arm_throttle_is_off_arm_or_explicit() {
        let mut f = Faults::default();
        assert_eq!(f.arm_limits(), None);
        f.apply(FaultsPatch {
            arm_throttle: Some("arm".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.arm_limits(), Some(PaceLimits::ARM));
        f.apply(FaultsPatch {
            arm_throttle: Some("writes=2/1".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.arm_limits().map(|l| l.writes.burst), Some(2));
    }
}
