//! `stackform plan` and `stackform drift`: refresh, then show what apply would change (or, for drift,
//! what changed in the cloud outside stackform). Both only read: they never change the cloud or the
//! state. Exit code [`exit::CHANGES`] reports changes (`--detailed-exitcode`) or drift.
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::common::{StackArgs, use_color_stdout};
use super::engine::{self, Loaded, TargetArgs};
use super::error::CliError;
use super::exit;
use super::preflight::PreflightArgs;
use super::saved_plan::SavedPlan;
use crate::apply::{EventSink, NoEvents};
use crate::plan::{Plan, PlanMode};
use crate::preflight::Finding;
use crate::provider::Provider;
use crate::report::plan::{RenderOptions, render_drift, render_plan};
use crate::report::progress::{ProgressMode, Reporter, render_requests};
use crate::report::stdio::{err, errln, out, outln};
use crate::state::LockRequest;

/// Show what apply would do: refresh what is live, compare with the stack file, and print the changes.
///
/// Read-only: changes nothing in the cloud or the state. With -o the plan is saved for
/// `stackform apply FILE`, which refuses it if the state or the stack changed in between.
///
/// Then the preflight: what would fail before anything is created (a storage account name taken, no
/// permission to assign roles, an api-version the cloud does not serve, a deployment without a data
/// role on the storage it names) is an error, with its place in the stack file; exit code 1.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stack: StackArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    /// Save the plan to this file, for `stackform apply FILE`.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Print the plan as JSON (a stable, documented format) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Read the live cloud before planning (--refresh=false plans against the recorded state alone).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub refresh: bool,

    /// Plan to destroy everything in state instead.
    #[arg(long)]
    pub destroy: bool,

    /// Only these resources (and what they depend on). Repeatable.
    #[arg(long = "target", value_name = "RESOURCE")]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub preflight: PreflightArgs,
}

/// Report what changed in the cloud outside stackform since the last apply (for CI).
///
/// Refreshes every resource in state and compares it with what was last applied. Exit codes: 0 no
/// drift, 2 drift found, 1 error.
#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    /// Print the drift report as JSON (the same as --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// How to print the report: text, json, or junit (JUnit XML for CI: one test case per resource
    /// in state, a failed one for each that drifted). The exit code is the same in every format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<DriftFormat>,
}

/// The forms of the drift report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftFormat {
    Text,
    Json,
    Junit,
}

fn progress(json: bool) -> Box<dyn EventSink> {
    if json {
        Box::new(NoEvents)
    } else if std::io::stderr().is_terminal() {
        Box::new(Reporter::new(ProgressMode::Bars {
            color: super::common::use_color(),
        }))
    } else {
        Box::new(Reporter::new(ProgressMode::Lines))
    }
}

/// Refreshes (when asked and there is something to read), plans, keeps the changes of `targets`,
/// and runs the preflight when asked (the cloud part only with `refresh`). No lock: reads only.
/// `as_json`: the plan is printed or saved as JSON (see [`engine::make_plan`]).
fn refresh_and_plan(
    loaded: &Loaded,
    target: &TargetArgs,
    refresh: bool,
    mode: PlanMode,
    json: bool,
    (targets, preflight, as_json): (&[String], bool, bool),
) -> Result<Planned, CliError> {
    let mut state = engine::read_state_to_act(&loaded.store, &loaded.registry)?;
    let prior = engine::state_ref(state.as_ref());
    let moved = super::adopt::follow_moves(loaded, state.as_mut())?;
    let pending = match mode {
        PlanMode::Normal => super::adopt::pending(loaded, state.as_ref())?,
        PlanMode::Destroy | PlanMode::RefreshOnly => Vec::new(),
    };
    if let Ok(unfinished) = crate::state::Journal::read_unfinished(loaded.store.journal_path())
        && !unfinished.0.is_empty()
    {
        errln!(
            "warning: an earlier apply was interrupted with {} step(s) unfinished; the next `stackform apply` resolves them first",
            unfinished.0.len()
        );
    }
    let extras = engine::extras(loaded)?;
    let rt = engine::runtime()?;
    let ask_cloud = preflight && refresh;
    // Whether objects the plan creates exist already (a state that was not found) is asked of the
    // cloud too, when the plan refreshes and the state knows no resources.
    let probe = refresh && mode == PlanMode::Normal && !engine::needs_cloud(state.as_ref());
    let (plan, findings, sent, existing, checked) = rt.block_on(async {
        let reads = refresh && engine::needs_cloud(state.as_ref());
        // An object to import is read even with --refresh=false: the plan compares the file with it.
        let azure = if reads || ask_cloud || probe || !pending.is_empty() {
            Some(engine::connect(&loaded.stack, &loaded.registry, target).await?)
        } else {
            None
        };
        if let (Some(p), Some(s)) = (&azure, &state) {
            super::foreign::check_cloud(loaded.store.path(), s, p.config())?;
        }
        let provider: Option<std::sync::Arc<dyn Provider>> = match &azure {
            Some(p) if reads => Some(p.clone()),
            _ => None,
        };
        let sink = progress(json);
        let snapshot = engine::snapshot(
            provider,
            state,
            &loaded.registry,
            target.parallelism.into(),
            sink.as_ref(),
        )
        .await;
        drop(sink);
        let mut snapshot = snapshot?;
        if let Some(cloud) = azure.as_deref().filter(|_| !pending.is_empty()) {
            super::adopt::read_imports(cloud, loaded, &pending, &mut snapshot).await?;
        }
        let checked: Vec<(String, String)> = snapshot
            .state
            .iter()
            .flat_map(|s| &s.resources)
            .map(|(a, r)| (a.clone(), r.resource_type.clone()))
            .collect();
        // The refresh's own requests, counted before the preflight asks anything.
        let sent = azure.as_ref().filter(|_| reads).map(|p| p.requests());
        let mut plan = engine::make_plan(loaded, &snapshot, &extras, mode, as_json)?;
        engine::adopted(&mut plan, prior, moved, pending);
        engine::restrict(&mut plan, targets)?;
        let preflighted = match (preflight, azure.as_deref().filter(|_| ask_cloud)) {
            (false, _) => super::preflight::Checked::default(),
            (true, cloud) => {
                super::preflight::run(loaded, &plan, &snapshot, cloud, target.parallelism.into())
                    .await
            }
        };
        let existing = match azure.as_deref().filter(|_| probe) {
            Some(p) => {
                super::foreign::existing_objects(
                    p,
                    loaded,
                    snapshot.state.as_ref(),
                    &plan,
                    target.parallelism.into(),
                    &preflighted.free,
                )
                .await
            }
            None => Vec::new(),
        };
        let findings = preflighted.findings;
        Ok::<_, CliError>((plan, findings, sent, existing, checked))
    })?;
    if let Some(sent) = sent {
        engine::log_requests("refresh done", &sent);
        if !json {
            err!("{}", render_requests("Refresh", &sent));
        }
    }
    Ok(Planned {
        plan,
        extras,
        findings,
        existing,
        checked,
    })
}

/// What [`refresh_and_plan`] found.
struct Planned {
    plan: Plan,
    extras: crate::plan::DesiredExtras,
    findings: Vec<Finding>,
    /// Objects the plan creates that exist already (see [`super::foreign::existing_objects`]).
    existing: Vec<super::foreign::Existing>,
    /// The resources in state that were checked: address and type.
    checked: Vec<(String, String)>,
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let loaded = engine::load(&args.stack, &args.target)?;
    // Saving a plan records the state's serial: hold the lock so it is read consistently. Without
    // a state folder there is no state to hold still (and a plan never creates the folder); apply
    // refuses the saved plan if a state appears in between.
    let has_folder = loaded
        .store
        .path()
        .parent()
        .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
    let _guard = match &args.out {
        Some(_) if has_folder => Some(engine::lock(&loaded, &LockRequest::new("plan -o"))?),
        _ => None,
    };
    let mode = if args.destroy {
        PlanMode::Destroy
    } else {
        PlanMode::Normal
    };
    let Planned {
        plan,
        extras,
        findings,
        existing,
        ..
    } = refresh_and_plan(
        &loaded,
        &args.target,
        args.refresh,
        mode,
        args.json,
        (
            &args.targets,
            !args.preflight.skip_preflight,
            args.json || args.out.is_some(),
        ),
    )?;
    if args.json {
        let mut json = plan.to_json();
        if let Some(obj) = json.as_object_mut() {
            obj.insert("preflight".into(), super::preflight::to_json(&findings));
            obj.insert(
                "exists_outside_state".into(),
                super::foreign::existing_json(&existing),
            );
        }
        let text = serde_json::to_string_pretty(&json)?;
        outln!("{text}")?;
    } else {
        out!(
            "{}",
            render_plan(
                &plan,
                &RenderOptions {
                    color: use_color_stdout()
                }
            )
        )?;
        out!(
            "{}",
            super::foreign::report_existing(&existing, &loaded, &args.stack, &args.target)
        )?;
    }
    // Preflight errors fail the plan (and no plan is saved); warnings are printed.
    super::preflight::settle(findings)?;
    if let Some(out) = &args.out {
        SavedPlan::new(&loaded, &args.stack, &extras, &args.targets, &plan).write(out)?;
        if !args.json {
            outln!(
                "\nSaved the plan to {}. Apply exactly this plan with:\n  stackform apply {}",
                engine::shown(out),
                engine::shown(out)
            )?;
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitCode::from(exit::CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn run_drift(args: DriftArgs) -> Result<ExitCode, CliError> {
    let loaded = engine::load(&args.stack, &args.target)?;
    let format = match (args.json, args.format) {
        (true, _) => DriftFormat::Json,
        (false, f) => f.unwrap_or(DriftFormat::Text),
    };
    let Planned { plan, checked, .. } = refresh_and_plan(
        &loaded,
        &args.target,
        true,
        PlanMode::RefreshOnly,
        format != DriftFormat::Text,
        (&[], false, true),
    )?;
    if format == DriftFormat::Junit {
        out!(
            "{}",
            crate::report::junit::render_junit(&loaded.stack.name, &checked, &plan.drift)
        )?;
    } else if format == DriftFormat::Json {
        let json = plan.to_json();
        let report = serde_json::json!({
            "schema_version": json["schema_version"],
            "stack": json["stack"],
            "prior_state": json["prior_state"],
            "drift": json["drift"],
        });
        let text = serde_json::to_string_pretty(&report)?;
        outln!("{text}")?;
    } else if plan.has_drift() {
        out!(
            "{}",
            render_drift(
                &plan.drift,
                &RenderOptions {
                    color: use_color_stdout()
                }
            )
        )?;
        outln!(
            "\nDrift: {} resource(s) changed outside stackform. `stackform plan` shows how apply would restore them.",
            plan.drift.len()
        )?;
    } else {
        outln!("No drift: the cloud matches what was last applied.")?;
    }
    Ok(if plan.has_drift() {
        ExitCode::from(exit::CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}
