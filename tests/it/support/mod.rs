//! What the integration tests share: running the real binary ([`bin`]), a test's own folder and local
//! cloud ([`test`]), the REST client of a local cloud ([`cloud`]) and its reference walk ([`walk`]), the
//! provider against an in-process cloud ([`provider`]), fixtures ([`fixtures`]), waiting with a deadline
//! ([`wait`]), re-running this binary as a child process ([`child`]) and the snapshot redactor
//! ([`redact`]). Each helper exists once here; a test module never copies one.

pub mod bin;
pub mod child;
pub mod cloud;
pub mod fixtures;
pub mod provider;
pub mod redact;
pub mod test;
pub mod wait;
pub mod walk;

pub use bin::{Cmd, Output, binary};
pub use fixtures::{example, example_dir, fixture, repo_root};
pub use redact::Redactor;
pub use test::Test;
pub use wait::{wait_until, wait_until_blocking};
