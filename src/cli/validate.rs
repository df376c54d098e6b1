//! `stackform validate`: parse, resolve and type-check a stack file. It never talks to a cloud, reads
//! state or changes anything.
use std::process::ExitCode;

use super::common::{self, StackArgs};
use super::error::CliError;
use crate::report::stdio::outln;

/// Check a stack file: YAML, fields against the resource specs, variables, references, cycles, role
/// names, and least privilege (a deployment naming a storage account its identity has no data role
/// on is an error; a grant broader than needed is a warning).
///
/// Makes no cloud calls and changes nothing. Every problem found is reported with its file:line:col;
/// the exit code is 1 when there is any.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stack: StackArgs,
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let registry = common::registry()?;
    let (stack, graph) = common::load_graph(&args.stack, &registry)?;
    // Least privilege, from the stack alone: errors fail validation, warnings are printed.
    super::preflight::settle(crate::preflight::access::check(
        &stack,
        &graph,
        &registry,
        &Default::default(),
    ))?;
    let edges = graph.edges();
    let inferred = edges.iter().filter(|(_, _, e)| e.is_inferred()).count();
    outln!(
        "{} is valid: stack `{}`, {} resource(s), {} dependencies ({} inferred), {} output(s).",
        crate::diag::display_path(&args.stack.file),
        stack.name,
        graph.len(),
        edges.len(),
        inferred,
        stack.outputs.len()
    )?;
    Ok(ExitCode::SUCCESS)
}
