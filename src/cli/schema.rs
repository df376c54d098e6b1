//! `stackform schema`: the JSON Schema of the stack file, generated from the resource specs. It reads
//! no stack file and never talks to a cloud.
use std::path::PathBuf;
use std::process::ExitCode;

use super::common;
use super::error::CliError;
use crate::report::stdio::out;
use crate::specs::stack_json_schema;

/// Print the JSON Schema of the stack file (draft 2020-12), generated from the resource specs.
///
/// Point an editor's YAML language server at it for completion and checks while typing, e.g. with a
/// first line `# yaml-language-server: $schema=path/to/stack.schema.json`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the schema to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let registry = common::registry()?;
    let schema = stack_json_schema(&registry);
    let mut text = serde_json::to_string_pretty(&schema)?;
    text.push('\n');
    match args.output {
        Some(path) => std::fs::write(&path, text).map_err(CliError::io("write", &path))?,
        None => out!("{text}")?,
    }
    Ok(ExitCode::SUCCESS)
}
