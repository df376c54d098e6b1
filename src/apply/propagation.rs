//! Waiting for a new role assignment to take effect, with no sleeps in the stack file.
//!
//! In Azure a role assignment is accepted at once but takes effect minutes later. The reference
//! deployment reads a blob with its endpoint's identity in `init()`; until the assignment has
//! propagated that read gets `403 AuthorizationPermissionMismatch`, `init()` fails, and the
//! deployment's operation ends `Failed` with the container's error text in its message.
//!
//! The mechanism is a *classified retry*: when a deployment's create or update fails and
//!
//! * the provider error is an operation failure
//!   ([`ErrorKind::Failed`], the deployment's own operation) whose code or message names a storage
//!   authorization failure (`AuthorizationPermissionMismatch`, `AuthorizationFailure`, or a 403),
//!   and
//! * one of the deployment's dependencies is a role assignment that this run created or changed
//!   (the graph's inferred edge makes every assignment to the endpoint's identity a dependency),
//!
//! then the failure is taken as "not propagated yet": the engine emits `WaitingForPropagation`
//! and, after an exponential backoff, redeploys with the same inputs (an update of the failed
//! deployment, which still exists; a create if it does not), until it succeeds, fails for another
//! reason, or [`PropagationPolicy::timeout`] has passed (then the last error stands and the run
//! rolls back as for any failure). A readiness probe of effective access was not chosen: only the
//! deployment's own identity can make that read, from inside its container. A 403 when no assignment was made in this run is a real
//! permission problem and fails at once. A first interrupt ends the wait.

use std::time::Duration;

use crate::provider::{ErrorKind, ProviderError};

/// How long and how often to retry a deployment that waits for a role assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropagationPolicy {
    /// Give up after this long (Azure documents up to about ten minutes).
    pub timeout: Duration,
    /// First wait; doubled after each attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for PropagationPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10 * 60),
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl PropagationPolicy {
    /// The wait before attempt `attempt` (1-based retry count).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// True when `err` looks like a data-plane authorization failure that a role assignment not yet
/// in effect would cause.
pub(crate) fn is_authorization_failure(err: &ProviderError) -> bool {
    let code = err.code.as_deref().unwrap_or_default();
    let text = format!("{code} {}", err.message);
    let names_denial = ["AuthorizationPermissionMismatch", "AuthorizationFailure"]
        .iter()
        .any(|needle| text.contains(needle));
    match err.kind {
        // The deployment's operation failed; its message carries the container's error text.
        ErrorKind::Failed => {
            names_denial
                || text
                    .split(|c: char| !c.is_ascii_digit())
                    .any(|w| w == "403")
        }
        // A 401/403 answered to one of stackform's own requests (ARM, or an upload to the
        // workspace's datastore) is the deployer's credential's problem: the role assignments this
        // wait is for are granted to the endpoint's identity, never to the deployer, so waiting
        // cannot help, even when the answer names a data denial.
        ErrorKind::Auth => false,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_init_403_but_not_other_failures() {
        let mut e = ProviderError::new(
            ErrorKind::Failed,
            "init() failed: 403 AuthorizationPermissionMismatch reading hello.txt",
        )
        .with_code("DeploymentFailed");
        assert!(is_authorization_failure(&e));
        e.message = String::from("init() failed: ModuleNotFoundError");
        assert!(!is_authorization_failure(&e));
        e.message = String::from("image 14033 not found");
        assert!(!is_authorization_failure(&e), "403 inside a number");
        let throttled = ProviderError::new(ErrorKind::Retryable, "403 AuthorizationFailure");
        assert!(!is_authorization_failure(&throttled), "kind matters");
    }

    /// The deployer's own upload refused for want of a data role (403 AuthorizationPermissionMismatch
    /// straight to stackform) was taken for a role assignment still propagating, so apply waited
    /// minutes for a grant that could never help before failing.
    #[test]
    fn a_refusal_of_stackforms_own_request_is_not_a_propagation_wait() {
        for code in ["AuthorizationFailure", "AuthorizationPermissionMismatch"] {
            let own = ProviderError::new(ErrorKind::Auth, "refused").with_code(code);
            assert!(!is_authorization_failure(&own), "{code}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = PropagationPolicy {
            timeout: Duration::from_secs(600),
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (1..=5).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![10, 20, 40, 60, 60]);
        assert_eq!(p.backoff(200), Duration::from_secs(60));
    }
}
