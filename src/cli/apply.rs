//! `stackform apply` and `stackform destroy`: take the stack's lock, resolve an interrupted earlier run
//! from its journal, refresh, plan, confirm, and execute with progress, rollback and a summary.
//! Destroy is the same flow with the destroy plan mode.
//!
//! It never changes anything before the user confirmed (or passed `--auto-approve`), and never runs
//! without the stack's lock. Exit codes: [`exit::ERROR`] for a failed, rolled-back or cancelled run,
//! [`exit::INTERRUPTED`] after Ctrl-C.
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::common::StackArgs;
use super::engine::{self, Loaded, LockArgs, TargetArgs};
use super::error::CliError;
use super::exit;
use super::preflight::PreflightArgs;
use super::saved_plan::SavedPlan;
use crate::apply::{
    self, ApplyOptions, ApplyPlan, EventSink, Interrupt, Outcome, Persistence, PropagationPolicy,
};
use crate::plan::PlanMode;
use crate::provider::Provider;
use crate::report::plan::{RenderOptions, render_plan};
use crate::report::progress::{
    ProgressMode, Reporter, render_paced, render_requests, render_summary,
};
use crate::stack::CloudKind;
use crate::state::LockRequest;

/// Create or update the stack's resources so the cloud matches the stack file.
///
/// Shows the plan, runs the preflight (see `plan`; its errors stop the run before anything is
/// created, a saved plan included), asks for confirmation (unless --auto-approve), then applies it in
/// dependency order, in parallel. When a step fails, the steps this run completed are undone in reverse order
/// (unless --no-rollback). Ctrl-C stops scheduling and saves state; a second Ctrl-C stops at once.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Apply a plan saved with `stackform plan -o FILE` (refused if the state or the stack changed since).
    #[arg(value_name = "PLAN_FILE")]
    pub plan_file: Option<PathBuf>,

    #[command(flatten)]
    pub run: RunArgs,

    /// On failure keep what was done instead of rolling it back.
    #[arg(long)]
    pub no_rollback: bool,

    /// Only these resources (and what they depend on). Repeatable.
    #[arg(long = "target", value_name = "RESOURCE")]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub preflight: PreflightArgs,
}

/// Remove everything the stack created, in reverse dependency order.
///
/// Traffic goes to 0 before deployments are deleted, deployments before their endpoint, role
/// assignments before the identity and scope they name, blobs before containers before the storage
/// account. Resources already gone count as deleted.
#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Only these resources (and what depends on them). Repeatable.
    #[arg(long = "target", value_name = "RESOURCE")]
    pub targets: Vec<String>,
}

/// What apply and destroy share: the stack, where it goes, the lock, confirmation and output.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub lock: LockArgs,

    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,

    /// Print progress as JSON lines on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let saved = match &args.plan_file {
        Some(path) => Some(SavedPlan::read(path)?),
        None => None,
    };
    let stack_args = match &saved {
        Some(s) => s.stack_args(&args.run.stack)?,
        None => args.run.stack.clone(),
    };
    let mode = match &saved {
        Some(s) => s.mode()?,
        None => PlanMode::Normal,
    };
    let targets = match &saved {
        Some(s) => s.targets.clone(),
        None => args.targets.clone(),
    };
    let flow = Flow {
        verb: if mode == PlanMode::Destroy {
            "Destroy"
        } else {
            "Apply"
        },
        mode,
        stack: stack_args,
        target: args.run.target,
        lock: args.run.lock,
        auto_approve: args.run.auto_approve || saved.is_some(),
        no_rollback: args.no_rollback,
        targets,
        json: args.run.json,
        saved,
        preflight: !args.preflight.skip_preflight,
    };
    flow.run()
}

pub(super) fn run_destroy(args: DestroyArgs) -> Result<ExitCode, CliError> {
    Flow {
        verb: "Destroy",
        mode: PlanMode::Destroy,
        stack: args.run.stack,
        target: args.run.target,
        lock: args.run.lock,
        auto_approve: args.run.auto_approve,
        no_rollback: false,
        targets: args.targets,
        json: args.run.json,
        saved: None,
        preflight: false,
    }
    .run()
}

struct Flow {
    verb: &'static str,
    mode: PlanMode,
    stack: StackArgs,
    target: TargetArgs,
    lock: LockArgs,
    auto_approve: bool,
    no_rollback: bool,
    targets: Vec<String>,
    json: bool,
    saved: Option<SavedPlan>,
    /// Ask the cloud before the first step (apply; a saved plan too, since the cloud may have
    /// changed since it was made).
    preflight: bool,
}

impl Flow {
    fn run(self) -> Result<ExitCode, CliError> {
        let loaded = engine::load(&self.stack, &self.target)?;
        if let Some(parent) = loaded.store.path().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(CliError::io("create the state folder", parent))?;
        }
        let mut request = LockRequest::new(if self.mode == PlanMode::Destroy {
            "destroy"
        } else {
            "apply"
        });
        if let Some(t) = self.lock.lock_timeout {
            request = request.with_timeout(t);
        }
        let acquired = loaded.store.lock(&request)?;
        if let Some(notice) = &acquired.notice {
            eprintln!("note: {notice}");
        }
        let _guard = acquired.guard;
        let rt = engine::runtime()?;
        rt.block_on(self.run_locked(loaded))
    }

    fn progress_mode(&self) -> ProgressMode {
        if self.json {
            ProgressMode::Json
        } else if std::io::stderr().is_terminal() {
            ProgressMode::Bars {
                color: super::common::use_color(),
            }
        } else {
            ProgressMode::Lines
        }
    }

    async fn run_locked(&self, loaded: Loaded) -> Result<ExitCode, CliError> {
        // Ctrl-C from the start: before the apply begins it stops the run with nothing changed; during
        // the apply the engine stops scheduling (first) or stops at once (second).
        let interrupt = Interrupt::new();
        let signals = interrupt.clone();
        let sig_task = tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                signals.signal();
            }
        });
        let result = self.run_interruptible(loaded, &interrupt).await;
        sig_task.abort();
        result
    }

    fn stop_if_interrupted(interrupt: &Interrupt) -> Result<(), CliError> {
        if interrupt.level() > 0 {
            return Err(CliError::Interrupted);
        }
        Ok(())
    }

    async fn run_interruptible(
        &self,
        loaded: Loaded,
        interrupt: &Interrupt,
    ) -> Result<ExitCode, CliError> {
        let existing = engine::read_state_to_act(&loaded.store, &loaded.registry)?;
        let existed = existing.is_some();
        let mut state =
            existing.unwrap_or_else(|| crate::state::StateFile::new(&loaded.stack.name));
        let journal_open = loaded.store.open_journal()?;
        for note in &journal_open.notes {
            eprintln!(
                "note: journal {}: {note:?}",
                engine::shown(&loaded.store.journal_path())
            );
        }
        let provider = engine::connect(&loaded.stack, &loaded.registry, &self.target).await?;
        let dyn_provider: Arc<dyn Provider> = provider.clone();
        let reporter = Arc::new(Reporter::new(self.progress_mode()));
        let paced = reporter.clone();
        provider.on_paced(Arc::new(move |n| paced.println(&render_paced(&n))));
        let extras = engine::extras(&loaded)?;
        let mut persistence = Persistence::durable(loaded.store.clone(), journal_open.journal);

        if !journal_open.unfinished.is_empty() {
            reporter.println(&format!(
                "An earlier run was interrupted with {} step(s) unfinished; resolving them by reading the cloud.",
                journal_open.unfinished.len()
            ));
            let snapshot = engine::snapshot(
                None,
                Some(state.clone()),
                &loaded.registry,
                1,
                &apply::NoEvents,
            )
            .await?;
            let prelim = engine::make_plan(&loaded, &snapshot, &extras, PlanMode::Normal)?;
            let expected = apply::expected_from_plan(
                &ApplyPlan::from_plan(&prelim, &loaded.stack, &loaded.registry, &extras),
                &state,
            );
            let report = apply::recover(
                dyn_provider.as_ref(),
                &mut state,
                &mut persistence,
                &expected,
            )
            .await?;
            for (address, action, outcome) in &report.resolved {
                reporter.println(&format!("  recovered {address} ({action:?}): {outcome:?}"));
            }
            if !report.is_complete() {
                return Err(CliError::RecoveryIncomplete(report.unresolved));
            }
        }

        // A stack never applied plans against no state (so a plan saved then still matches).
        let prior = (existed || !state.resources.is_empty()).then(|| state.clone());
        let snapshot = engine::snapshot(
            Some(dyn_provider.clone()),
            prior,
            &loaded.registry,
            self.target.parallelism.into(),
            reporter.as_ref(),
        )
        .await?;
        reporter.finish();
        let refreshed = provider.requests();
        engine::log_requests("refresh done", &refreshed);
        let mut plan = engine::make_plan(&loaded, &snapshot, &extras, self.mode)?;
        engine::restrict(&mut plan, &self.targets)?;
        if let Some(saved) = &self.saved {
            saved.check(&loaded, &self.stack, &extras, &plan)?;
        }
        let render = RenderOptions {
            color: super::common::use_color_stdout(),
        };
        if !self.json {
            print!("{}", render_plan(&plan, &render));
        }
        // Before the first step: preflight errors stop the run with nothing created.
        let findings = match (self.mode, self.preflight) {
            (PlanMode::Destroy, _) => Vec::new(),
            (_, true) => {
                super::preflight::run(&loaded, &plan, &snapshot, Some(provider.as_ref())).await
            }
            (_, false) => super::preflight::stack_only(&loaded),
        };
        super::preflight::settle(findings)?;
        if !plan.has_changes() {
            return Ok(ExitCode::SUCCESS);
        }
        if !self.auto_approve && !confirm(self.verb)? {
            eprintln!("{} cancelled; nothing was changed.", self.verb);
            return Ok(ExitCode::from(exit::ERROR));
        }

        Self::stop_if_interrupted(interrupt)?;
        let apply_plan = ApplyPlan::from_plan(&plan, &loaded.stack, &loaded.registry, &extras);
        let options = ApplyOptions {
            parallelism: self.target.parallelism.into(),
            no_rollback: self.no_rollback,
            propagation: propagation_policy(&loaded.stack, &self.target),
            cloud_id: None,
        };
        // The plan, the refreshed snapshot (with its copy of the state), and the loaded stack and its
        // graph (the apply plan holds what the steps need of them) are not needed during the run:
        // free them rather than hold several copies of every resource until it ends.
        drop(plan);
        drop(snapshot);
        let registry = loaded.registry.clone();
        drop(loaded);
        let sink: Arc<dyn EventSink> = reporter.clone();
        let report = apply::apply(
            &apply_plan,
            state,
            persistence,
            dyn_provider,
            &registry,
            options,
            sink,
            interrupt.clone(),
        )
        .await?;
        reporter.finish();
        let sent = provider.requests();
        engine::log_requests("run done", &sent);
        if self.json {
            let line = serde_json::json!({ "event": "outputs", "outputs": report.state.outputs });
            println!("{line}");
        } else {
            eprint!("{}", render_summary(&report.summary, self.verb));
            eprint!("{}", render_requests("Requests", &provider.requests()));
            if report.summary.outcome == Outcome::Succeeded
                && self.mode != PlanMode::Destroy
                && !report.state.outputs.is_empty()
            {
                println!("\nOutputs:");
                for (name, value) in &report.state.outputs {
                    println!("  {name} = {}", super::output::show_value(value));
                }
            }
        }
        Ok(match report.summary.outcome {
            Outcome::Succeeded => ExitCode::SUCCESS,
            Outcome::Interrupted | Outcome::Aborted => {
                eprintln!(
                    "Run `stackform apply` to continue, or `stackform destroy` to remove what was created."
                );
                ExitCode::from(exit::INTERRUPTED)
            }
            Outcome::RolledBack | Outcome::Failed => ExitCode::from(exit::ERROR),
        })
    }
}

/// Role assignments take effect in Azure after minutes; the local cloud's delay is what its fault knob
/// says, so it is polled more often.
fn propagation_policy(stack: &crate::stack::Stack, target: &TargetArgs) -> PropagationPolicy {
    let kind = target
        .cloud
        .as_deref()
        .and_then(CloudKind::parse)
        .unwrap_or(stack.cloud.kind);
    if kind == CloudKind::Local {
        PropagationPolicy {
            timeout: Duration::from_secs(5 * 60),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
        }
    } else {
        PropagationPolicy::default()
    }
}

/// Asks "yes" on the terminal; refuses to prompt when stdin is not one.
fn confirm(verb: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NotATerminal {
            verb: verb.to_lowercase(),
        });
    }
    eprint!(
        "\nDo you want to {} these changes? Only 'yes' will be accepted: ",
        verb.to_lowercase()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::ReadAnswer)?;
    Ok(answer.trim() == "yes")
}
