//! `stackform output`: the stack's outputs as last applied, from state (no cloud calls, no lock). It
//! never shows a sensitive output's value.
use std::process::ExitCode;

use serde_json::Value;

use super::common::StackArgs;
use super::engine::{self, TargetArgs};
use super::error::{CliError, Hint};
use crate::report::stdio::outln;
use crate::state::sensitive::is_redacted;

/// Print the stack's outputs as recorded by the last apply (all of them, or one by name).
///
/// Strings are printed bare (handy in scripts: `curl "$(stackform output scoring_uri)"`); --json prints
/// JSON. Sensitive outputs show as (sensitive).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One output to print.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    #[command(flatten)]
    pub stack: StackArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A value as `output` shows it: strings bare, sensitive markers hidden, anything else as JSON.
pub(crate) fn show_value(value: &Value) -> String {
    if is_redacted(value) {
        return "(sensitive)".to_string();
    }
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn hide(value: &Value) -> Value {
    if is_redacted(value) {
        Value::String("(sensitive)".into())
    } else {
        value.clone()
    }
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let loaded = engine::load(&args.stack, &args.target)?;
    let state = engine::read_state(&loaded.store)?.ok_or_else(|| CliError::NotApplied {
        stack: loaded.stack.name.clone(),
        state_file: Some(engine::shown(loaded.store.path())),
    })?;
    match &args.name {
        Some(name) => {
            let value = state
                .outputs
                .get(name)
                .ok_or_else(|| CliError::UnknownOutput {
                    name: name.clone(),
                    hint: Hint::closest(name, state.outputs.keys().map(String::as_str)),
                })?;
            if args.json {
                outln!("{}", hide(value))?;
            } else {
                outln!("{}", show_value(value))?;
            }
        }
        None if args.json => {
            let all: serde_json::Map<String, Value> = state
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), hide(v)))
                .collect();
            outln!("{}", serde_json::to_string_pretty(&all)?)?;
        }
        None => {
            if state.outputs.is_empty() {
                outln!("No outputs recorded.")?;
            }
            for (name, value) in &state.outputs {
                outln!("{name} = {}", show_value(value))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
