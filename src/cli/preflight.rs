//! The preflight as `validate`, `plan` and `apply` run it: the least-privilege check from the stack
//! alone, then (for `plan` and `apply`) the read-only questions to the cloud, with warnings printed
//! and errors returned as located diagnostics (exit 1, nothing changed). `--skip-preflight` leaves
//! the cloud out (for a principal that may not read its permissions); the stack-only checks still
//! run.
use std::collections::HashSet;

use super::common;
use super::engine::Loaded;
use super::error::CliError;
use crate::diag;
use crate::plan::{Plan, PlanMode, Snapshot};
use crate::preflight::{self, Finding, access, cloud};
use crate::provider::AzureProvider;
use crate::report::stdio::err;

/// The preflight flag of `plan` and `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreflightArgs {
    /// Do not ask the cloud before planning or applying (storage names, permission to assign roles,
    /// api-versions, data roles live). The checks that need only the stack file still run.
    #[arg(long)]
    pub skip_preflight: bool,
}

/// Prints the warnings among `findings` on stderr and returns the errors as one CLI error.
pub(crate) fn settle(findings: Vec<Finding>) -> Result<(), CliError> {
    let (errors, warnings) = preflight::split(findings);
    if !warnings.is_empty() {
        err!(
            "{}",
            diag::render_warnings(
                &warnings,
                diag::Style {
                    color: common::use_color()
                }
            )
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(common::diagnostics(errors))
    }
}

/// The least-privilege findings of a loaded stack, from the stack alone.
pub(crate) fn stack_only(loaded: &Loaded) -> Vec<Finding> {
    access::check(
        &loaded.stack,
        &loaded.graph,
        &loaded.registry,
        &access::LiveGrants::new(),
    )
}

/// What the preflight found: its findings, and the addresses of storage accounts to create whose
/// names checkNameAvailability found free (so they exist nowhere: [`cloud::free_names`]).
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub(crate) findings: Vec<Finding>,
    pub(crate) free: HashSet<String>,
}

/// Every finding for `plan` against `snapshot`: the cloud's answers through `provider` (unless
/// skipped, or the plan destroys), asked up to `parallelism` at a time, then least privilege
/// counting the data roles found live.
pub(crate) async fn run(
    loaded: &Loaded,
    plan: &Plan,
    snapshot: &Snapshot,
    provider: Option<&AzureProvider>,
    parallelism: usize,
) -> Checked {
    if plan.mode == PlanMode::Destroy {
        return Checked::default();
    }
    let Some(provider) = provider else {
        return Checked {
            findings: stack_only(loaded),
            free: HashSet::new(),
        };
    };
    let asked = cloud::questions(
        &loaded.stack,
        &loaded.graph,
        plan,
        snapshot,
        &loaded.registry,
        &provider.config().resource_group_id(),
    );
    let answers = provider.preflight(&asked.questions, parallelism).await;
    let (mut findings, live) = cloud::findings(&asked, &answers);
    findings.extend(access::check(
        &loaded.stack,
        &loaded.graph,
        &loaded.registry,
        &live,
    ));
    Checked {
        findings,
        free: cloud::free_names(&asked, &answers),
    }
}

/// The findings as the `preflight` member of `plan --json`.
pub(crate) fn to_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::Value::Array(findings.iter().map(Finding::to_json).collect())
}
