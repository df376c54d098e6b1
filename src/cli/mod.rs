//! Command-line entry point: the clap definitions (one file per command) and the single user-facing
//! error type that knows its exit code. This is the only layer that turns library errors into text,
//! and it never decides anything the library decides (what to plan, what to roll back).
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod adopt;
mod apply;
pub mod cloud;
mod common;
mod engine;
mod environments;
mod error;
pub(crate) mod exit;
mod foreign;
mod graph;
mod invoke;
mod output;
mod place;
mod plan;
mod preflight;
mod saved_plan;
mod schema;
mod state_cmd;
mod validate;

pub(crate) use error::CliError;

/// Declarative infrastructure for the Azure ML online-endpoint stack, on Azure or the built-in local cloud.
#[derive(Debug, Parser)]
#[command(name = "stackform", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Print debug logs (HTTP calls, retries) to stderr. Secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Validate(validate::Args),
    Plan(plan::Args),
    Apply(apply::Args),
    Destroy(apply::DestroyArgs),
    Drift(plan::DriftArgs),
    Output(output::Args),
    Invoke(invoke::Args),
    Logs(invoke::LogsArgs),
    State(state_cmd::Args),
    Env(environments::Args),
    Graph(graph::Args),
    Schema(schema::Args),
    /// Run and manage the built-in local cloud (an offline Azure emulator).
    Cloud(cloud::Args),
}

/// Parses arguments, runs the command and maps its result to an exit code exactly once.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout with exit 0, usage errors to stderr; usage errors exit 1.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(exit::ERROR)
            } else {
                ExitCode::from(exit::SUCCESS)
            };
        }
    };
    init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "stackform=debug,warn",
        _ => "stackform=trace,debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STACKFORM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Its fallback for a failed write is `eprintln!`, which panics on a closed stderr.
        .log_internal_errors(false)
        .try_init();
}

/// Runs one parsed command. Each command returns the exit code of its success case ([`exit::SUCCESS`],
/// or [`exit::CHANGES`] for `plan --detailed-exitcode` and `drift`) or a [`CliError`].
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Destroy(args) => apply::run_destroy(args),
        Command::Drift(args) => plan::run_drift(args),
        Command::Output(args) => output::run(args),
        Command::Invoke(args) => invoke::run(args),
        Command::Logs(args) => invoke::run_logs(args),
        Command::State(args) => state_cmd::run(args),
        Command::Env(args) => environments::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Cloud(args) => cloud::run(args),
    }
}
