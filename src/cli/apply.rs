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
use crate::report::stdio::{StdoutError, err, errln, out, outln};
use crate::stack::CloudKind;
use crate::state::{LockRequest, StateStore};

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
/// account. Resources already gone count as deleted. With --env NAME (and no --target), the
/// environment's state goes too, so `stackform env list` no longer shows it.
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
        // The state folder is made for the lock; folders this run made are removed again when it
        // ends without a state (a failed first apply leaves no stray folder behind).
        let made = make_folders(loaded.store.path())?;
        let mut request = LockRequest::new(if self.mode == PlanMode::Destroy {
            "destroy"
        } else {
            "apply"
        });
        if let Some(t) = self.lock.lock_timeout {
            request = request.with_timeout(t);
        }
        // The run takes the loaded stack and frees it once the apply plan is made (a large stack is
        // not held through the run); only its state store and its backend are needed after.
        let mut loaded = loaded;
        let backend = loaded.backend.take();
        let store = loaded.store.clone();
        let held = match engine::lock_parts(&store, backend.as_ref(), &request) {
            Ok(held) => held,
            Err(e) => {
                remove_folders(&made);
                return Err(e);
            }
        };
        let result = engine::runtime().and_then(|rt| rt.block_on(self.run_locked(loaded)));
        // A remote environment's blobs are removed while its lock is still held (the lock blob
        // last, under its lease), so no other run starts on them halfway.
        if let Some(session) = &backend
            && self.removes_env(&result)
        {
            self.remove_remote_env(&store, session)?;
        }
        drop(held);
        if !store.path().exists() {
            // A run that stopped before its first step leaves an empty journal and no state.
            let journal = store.journal_path();
            if std::fs::metadata(&journal).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&journal);
            }
            remove_folders(&made);
        } else if backend.is_none() && self.removes_env(&result) {
            self.remove_env(&store)?;
        }
        result
    }

    /// Whether this run destroyed a whole environment (`destroy --env NAME`, no `--target`), so its
    /// state folder goes with it.
    fn removes_env(&self, result: &Result<ExitCode, CliError>) -> bool {
        self.mode == PlanMode::Destroy
            && self.saved.is_none()
            && self.targets.is_empty()
            && self.stack.env.is_some()
            && self.target.state.is_none()
            && matches!(result, Ok(code) if *code == ExitCode::SUCCESS)
    }

    /// Removes an environment's state once it records nothing: the state file, its backup, and the
    /// folder when nothing else is in it.
    fn remove_env(&self, store: &StateStore) -> Result<(), CliError> {
        if store.read()?.is_some_and(|s| !s.resources.is_empty()) {
            return Ok(());
        }
        for file in [store.path().to_path_buf(), store.backup_path()] {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CliError::io("remove", file)(e));
                }
                _ => {}
            }
        }
        if let Some(folder) = store.path().parent() {
            let _ = std::fs::remove_dir(folder);
            if let Some(envs) = folder.parent() {
                let _ = std::fs::remove_dir(envs);
            }
        }
        if let Some(env) = &self.stack.env {
            errln!(
                "Removed environment `{env}`: its state is gone from {}.",
                engine::shown(store.path().parent().unwrap_or(store.path()))
            );
        }
        Ok(())
    }

    /// [`remove_env`](Self::remove_env) for the azure_blob backend: once the state records
    /// nothing, its state blob (with its snapshots), journal, history index and lock blob.
    fn remove_remote_env(
        &self,
        store: &StateStore,
        session: &crate::backend::Session,
    ) -> Result<(), CliError> {
        let state = store.read()?;
        if state.as_ref().is_some_and(|s| !s.resources.is_empty()) {
            return Ok(());
        }
        // Without a state (an environment that never was) only the lock blob this run made goes.
        session.remove()?;
        if let (Some(env), Some(_)) = (&self.stack.env, state) {
            errln!(
                "Removed environment `{env}`: its state is gone from {}.",
                session.describe()
            );
        }
        Ok(())
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
        let owned = loaded;
        let loaded = &owned;
        let existing = engine::read_state_to_act(&loaded.store, &loaded.registry)?;
        let existed = existing.is_some();
        let mut state =
            existing.unwrap_or_else(|| crate::state::StateFile::new(&loaded.stack.name));
        let journal_open = loaded.store.open_journal()?;
        for note in &journal_open.notes {
            errln!(
                "note: journal {}: {note:?}",
                engine::shown(&loaded.store.journal_path())
            );
        }
        let provider = engine::connect(&loaded.stack, &loaded.registry, &self.target).await?;
        super::foreign::check_cloud(loaded.store.path(), &state, provider.config())?;
        if state.cloud.is_none() {
            state.cloud = Some(super::foreign::binding(provider.config()));
        }
        let dyn_provider: Arc<dyn Provider> = provider.clone();
        let reporter = Arc::new(Reporter::new(self.progress_mode()));
        let paced = reporter.clone();
        provider.on_paced(Arc::new(move |n| paced.println(&render_paced(&n))));
        let extras = engine::extras(loaded)?;
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
            let prelim = engine::make_plan(loaded, &snapshot, &extras, PlanMode::Normal, true)?;
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
        let prior_ref = engine::state_ref(existed.then_some(&state));
        let moved = super::adopt::follow_moves(loaded, Some(&mut state))?;
        let pending = match self.mode {
            PlanMode::Normal => super::adopt::pending(loaded, Some(&state))?,
            PlanMode::Destroy | PlanMode::RefreshOnly => Vec::new(),
        };
        // The state goes into the refresh's snapshot, which the planner reads. With nothing to
        // import the two are the same (moves are followed above), so the run takes the state back from
        // the snapshot before it starts rather than hold a second copy of every record through refresh
        // and planning; imports are recorded in the snapshot's state, so then the run keeps its own.
        let (mut own, prior) = if !existed && state.resources.is_empty() {
            (Some(state), None)
        } else if pending.is_empty() {
            (None, Some(state))
        } else {
            (Some(state.clone()), Some(state))
        };
        let mut snapshot = engine::snapshot(
            Some(dyn_provider.clone()),
            prior,
            &loaded.registry,
            self.target.parallelism.into(),
            reporter.as_ref(),
        )
        .await?;
        reporter.finish();
        // Objects to import are read now, before anything changes: a wrong id stops the run here.
        let adopt =
            super::adopt::read_imports(provider.as_ref(), loaded, &pending, &mut snapshot).await?;
        let refreshed = provider.requests();
        engine::log_requests("refresh done", &refreshed);
        // Only a saved plan's check writes this plan as JSON.
        let mut plan =
            engine::make_plan(loaded, &snapshot, &extras, self.mode, self.saved.is_some())?;
        engine::adopted(&mut plan, prior_ref, moved, pending);
        engine::restrict(&mut plan, &self.targets)?;
        if let Some(saved) = &self.saved {
            saved.check(loaded, &self.stack, &extras, &plan)?;
        }
        let render = RenderOptions {
            color: super::common::use_color_stdout(),
        };
        if !self.json {
            out!("{}", render_plan(&plan, &render))?;
        }
        // Each change's attribute list only serves the plan's display (several kilobytes per
        // resource): once shown, it goes, so the checks and the apply plan below run without it.
        for change in &mut plan.changes {
            change.attributes = Vec::new();
        }
        // Before the first step: the preflight asks the cloud (its errors stop the run below, with
        // nothing created), then objects this run would create that exist already, unknown to a
        // state that knows nothing, are looked for (most likely another state's: they stop the run
        // first). Storage accounts whose names the preflight found free exist nowhere and are not
        // read again.
        let checked = match (self.mode, self.preflight) {
            (PlanMode::Destroy, _) => super::preflight::Checked::default(),
            (_, true) => {
                super::preflight::run(
                    loaded,
                    &plan,
                    &snapshot,
                    Some(provider.as_ref()),
                    self.target.parallelism.into(),
                )
                .await
            }
            (_, false) => super::preflight::Checked {
                findings: super::preflight::stack_only(loaded),
                free: std::collections::HashSet::new(),
            },
        };
        if self.mode == PlanMode::Normal {
            let existing = super::foreign::existing_objects(
                provider.as_ref(),
                loaded,
                snapshot.state.as_ref(),
                &plan,
                self.target.parallelism.into(),
                &checked.free,
            )
            .await;
            if !existing.is_empty() {
                let report =
                    super::foreign::report_existing(&existing, loaded, &self.stack, &self.target);
                // JSON lines own stdout under --json.
                if self.json {
                    err!("{report}");
                } else {
                    out!("{report}")?;
                }
                return Err(CliError::ExistsOutsideState {
                    count: existing.len(),
                });
            }
        }
        let findings = checked.findings;
        super::preflight::settle(findings)?;
        if !plan.has_changes() && plan.moved.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if !self.auto_approve && !confirm(self.verb)? {
            errln!("{} cancelled; nothing was changed.", self.verb);
            return Ok(ExitCode::from(exit::ERROR));
        }

        Self::stop_if_interrupted(interrupt)?;
        // Moves (already followed in `state`) and imports are recorded first, in one write: they
        // change no object, and the steps below may refer to them.
        if !plan.moved.is_empty() || !plan.imports.is_empty() {
            let state = run_state(&mut own, &mut snapshot);
            for (address, record) in adopt {
                if plan.import_of(&address).is_some() {
                    state.import(&address, record)?;
                }
            }
            let expected = (state.serial != 0).then_some(state.serial);
            loaded.store.write(state, expected)?;
            for m in &plan.moved {
                reporter.println(&format!("{} moved to {} in state", m.from, m.to));
            }
            for i in &plan.imports {
                reporter.println(&format!("{} imported from {}", i.address, i.id));
            }
            if !plan.has_cloud_changes() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        // The run's state: its own, or the one it moved into the snapshot. What the snapshot's state
        // recorded is what the plan compared the live values with.
        let crate::plan::Snapshot { state: seen, live } = snapshot;
        let (state, seen) = match own {
            Some(state) => (state, seen),
            None => (
                seen.expect(
                    "a state not kept by the run was moved into the snapshot, which keeps it",
                ),
                None,
            ),
        };
        // What the refresh read goes with the plan (moved, not copied): references resolve against it
        // as the plan showed them, and a rollback restores it.
        let apply_plan = ApplyPlan::from_plan(&plan, &loaded.stack, &loaded.registry, &extras)
            .with_refreshed(live, seen.as_ref().unwrap_or(&state));
        drop(seen);
        let options = ApplyOptions {
            parallelism: self.target.parallelism.into(),
            no_rollback: self.no_rollback,
            propagation: propagation_policy(&loaded.stack, &self.target),
            cloud_id: None,
        };
        // The plan, the loaded stack and its graph are not needed during the run: free them rather
        // than hold several copies of every resource until it ends.
        drop(plan);
        drop(extras);
        let Loaded {
            registry,
            stack,
            graph,
            ..
        } = owned;
        drop(stack);
        drop(graph);
        let sink: Arc<dyn EventSink> = reporter.clone();
        // The requests before the run (refresh, preflight, probes), for `-v` readers and the bench.
        engine::log_requests("run starts", &provider.requests());
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
        let printed = (|| -> Result<(), StdoutError> {
            if let Some(e) = reporter.take_stdout_error() {
                return Err(e);
            }
            if self.json {
                let line =
                    serde_json::json!({ "event": "outputs", "outputs": report.state.outputs });
                outln!("{line}")?;
            } else {
                err!("{}", render_summary(&report.summary, self.verb));
                err!("{}", render_requests("Requests", &provider.requests()));
                if report.summary.outcome == Outcome::Succeeded
                    && self.mode != PlanMode::Destroy
                    && !report.state.outputs.is_empty()
                {
                    outln!("\nOutputs:")?;
                    for (name, value) in &report.state.outputs {
                        outln!("  {name} = {}", super::output::show_value(value))?;
                    }
                }
            }
            Ok(())
        })();
        let code = match report.summary.outcome {
            Outcome::Succeeded => ExitCode::SUCCESS,
            Outcome::Interrupted | Outcome::Aborted => {
                errln!(
                    "Run `stackform apply` to continue, or `stackform destroy` to remove what was created."
                );
                ExitCode::from(exit::INTERRUPTED)
            }
            Outcome::RolledBack | Outcome::Failed => ExitCode::from(exit::ERROR),
        };
        // The run has ended: a stdout that could not be written (a closed pipe, a full disk) decides
        // the exit code only after a successful run. After a failed, rolled-back or interrupted one the
        // run's own code stays, so a failure never reads as "the reader stopped"; a full disk is still
        // said on stderr.
        match printed {
            Err(e) if report.summary.outcome == Outcome::Succeeded => Err(e.into()),
            Err(e) => {
                let _ = CliError::from(e).report();
                Ok(code)
            }
            Ok(()) => Ok(code),
        }
    }
}

/// Creates the folders above the state file that do not exist yet; returns them, deepest first.
fn make_folders(state_file: &std::path::Path) -> Result<Vec<PathBuf>, CliError> {
    let mut missing = Vec::new();
    let mut at = state_file.parent();
    while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(dir.to_path_buf());
        at = dir.parent();
    }
    if let Some(deepest) = missing.first() {
        // Owner only, as the lock makes it: state files name every resource of the stack.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(deepest)
            .map_err(CliError::io("create the state folder", deepest))?;
    }
    Ok(missing)
}

/// Removes folders [`make_folders`] made, deepest first, as long as they are empty.
fn remove_folders(made: &[PathBuf]) {
    for dir in made {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// The state the run records into: its own copy when it keeps one, else the one it moved into the
/// refresh's snapshot (see `run_interruptible`).
fn run_state<'a>(
    own: &'a mut Option<crate::state::StateFile>,
    snapshot: &'a mut crate::plan::Snapshot,
) -> &'a mut crate::state::StateFile {
    match own {
        Some(state) => state,
        None => snapshot
            .state
            .as_mut()
            .expect("a state not kept by the run was moved into the snapshot, which keeps it"),
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
    err!(
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
