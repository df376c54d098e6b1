//! `stackform env list`: the environments of a stack (each `--env NAME` is a separate state of the same
//! stack file: in `<state folder>/env/NAME/` with the local backend, in the blob `env/NAME/<key>`
//! with azure_blob), with their resource counts and ages. It reads state only: it never talks to
//! the stack's resources, takes no lock and creates nothing (with azure_blob it lists and reads
//! blobs, in a working folder it removes again).
//!
//! It reads only what it needs of the stack file: its name and `backend:` section (and, for
//! azure_blob, its `cloud:` section, whose credentials reach the blobs), never its resources, so a
//! stack whose resources use `${stack.env}` is listed without an environment.
use std::process::ExitCode;
use std::time::SystemTime;

use super::common::{self, StackArgs};
use super::engine::{self, TargetArgs, shown};
use super::error::CliError;
use super::place::{self, EnvSummary};
use crate::backend::config::{Backend, Overrides};
use crate::report::stdio::{out, outln};
use crate::stack::LoadOptions;

/// Environments of a stack: separate copies made with `--env NAME`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum EnvCommand {
    /// List the stack's environments: name, resources in state, age, last change.
    ///
    /// `stackform apply --env NAME` makes one; `stackform destroy --env NAME` removes it. With the
    /// azure_blob backend (the stack file's `backend:`, `--backend`, `--backend-config` or
    /// `STACKFORM_BACKEND*`), the environments whose state blobs `env/NAME/<key>` exist.
    List {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON: a list of {name, resources, created, updated, state_file, error}.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let EnvCommand::List {
        stack,
        target,
        json,
    } = args.command;
    if !stack.file.exists() {
        return Err(CliError::StackFileMissing { path: stack.file });
    }
    if target.state.is_some() {
        return Err(CliError::FlagNotHere {
            command: "env list",
            flag: "--state",
            why: "it names one state file; use --state-dir for the folder environments live in",
        });
    }
    let registry = std::sync::Arc::new(common::registry()?);
    let opts = LoadOptions {
        vars: stack.vars.clone(),
        var_files: stack.var_files.clone(),
        stack_env: None,
        ..LoadOptions::with_process_env()
    };
    let load = |with_cloud| {
        crate::stack::load_settings(
            &stack.file,
            &opts,
            &registry,
            stack.max_file_size,
            with_cloud,
        )
        .map_err(common::diagnostics)
    };
    let settings = load(false)?;
    let name = settings.name.clone();
    let mut overrides = Overrides {
        kind: target.backend.clone(),
        flags: target.backend_config.clone(),
        env: Vec::new(),
    };
    overrides.read_env();
    let (envs, place) = match crate::backend::config::resolve(
        settings.backend.as_ref(),
        &overrides,
        &name,
        None,
    )? {
        Backend::Local => {
            let (folder, _) = place::state_folder(&stack, target.state_dir.as_deref());
            let envs = place::environments(&folder, &name)?;
            (envs, format!("{}/env/", shown(&folder)))
        }
        Backend::AzureBlob(blob) => {
            let with_cloud = load(true)?;
            let session = engine::open_remote(blob, &with_cloud, &target, &registry)?;
            let envs = session
                .environments()?
                .into_iter()
                .filter(|e| common::parse_env_name(&e.name).is_ok())
                .map(|e| EnvSummary {
                    name: e.name,
                    state_file: e.location,
                    resources: e.resources,
                    error: e.error,
                    created: e.created,
                    updated: e.updated,
                })
                .collect();
            (envs, format!("{} under env/", session.describe()))
        }
    };
    let now = SystemTime::now();
    if json {
        let list: Vec<serde_json::Value> = envs.iter().map(to_json).collect();
        outln!("{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if envs.is_empty() {
        outln!(
            "No environments of stack `{name}` in {place} (make one with `stackform apply --env NAME`)."
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}", render(&envs, now))?;
    Ok(ExitCode::SUCCESS)
}

/// The table `env list` prints: one line per environment, columns aligned.
fn render(envs: &[EnvSummary], now: SystemTime) -> String {
    let rows: Vec<[String; 4]> = envs
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.resources
                    .map_or_else(|| "?".to_string(), |n| n.to_string()),
                place::age(e.created, now),
                match &e.error {
                    Some(err) => format!("unreadable: {err}"),
                    None => format!("{} ago", place::age(e.updated, now)),
                },
            ]
        })
        .collect();
    let header = ["ENV", "RESOURCES", "AGE", "LAST CHANGE"].map(String::from);
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        out.push_str(&format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        ));
    }
    out
}

fn to_json(e: &EnvSummary) -> serde_json::Value {
    let time = |t: Option<SystemTime>| {
        t.and_then(|t| {
            time::OffsetDateTime::from(t)
                .replace_nanosecond(0)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    serde_json::json!({
        "name": e.name,
        "resources": e.resources,
        "created": time(e.created),
        "updated": time(e.updated),
        "state_file": e.state_file,
        "error": e.error,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_table_lines_up_names_counts_and_ages() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let env = |name: &str, n, created, updated| EnvSummary {
            name: name.into(),
            state_file: "state/env/x/s.json".into(),
            resources: n,
            error: None,
            created: Some(now - Duration::from_secs(created)),
            updated: Some(now - Duration::from_secs(updated)),
        };
        let text = render(
            &[
                env("alice", Some(7), 7200, 60),
                env("bob-long", Some(12), 30, 5),
            ],
            now,
        );
        assert_eq!(
            text,
            "ENV       RESOURCES  AGE  LAST CHANGE\n\
             alice             7   2h  1m ago\n\
             bob-long         12  30s  5s ago\n"
        );
    }
}
