//! What the integration tests share: running the real binary ([`bin`]), Azurite ([`azurite`]) and raw
//! requests to it and a local cloud side by side ([`blob_pair`]), a test's own folder and local
//! cloud ([`test`]), a tiny file system to fill ([`disk`]), the REST client of a local cloud ([`cloud`]) and its reference walk ([`walk`]), the
//! provider against an in-process cloud ([`provider`]), fixtures ([`fixtures`]), waiting with a deadline
//! ([`wait`]), re-running this binary as a child process ([`child`]), the snapshot redactor
//! ([`redact`]) and the reliability suite's lengths, seeds, figures and cloud-equals-state check
//! ([`reliability`]). Each helper exists once here; a test module never copies one.

pub(crate) mod azurite;
pub(crate) mod bin;
pub(crate) mod blob_pair;
pub(crate) mod child;
pub(crate) mod cloud;
pub(crate) mod disk;
pub(crate) mod fixtures;
pub(crate) mod provider;
pub(crate) mod raw;
pub(crate) mod redact;
pub(crate) mod reliability;
pub(crate) mod test;
pub(crate) mod wait;
pub(crate) mod walk;

pub(crate) use bin::{Cmd, Output, binary, drain, finished};
pub(crate) use fixtures::{example, example_dir, fixture, repo_root};
pub(crate) use redact::Redactor;
pub(crate) use test::Test;
pub(crate) use wait::{wait_until, wait_until_blocking};
