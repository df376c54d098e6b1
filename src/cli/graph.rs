//! `stackform graph`: the stack's dependency graph as Graphviz DOT or JSON. It never talks to a cloud
//! or reads state.
use std::process::ExitCode;

use super::common::{self, StackArgs};
use super::error::CliError;
use crate::report::stdio::{out, outln};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Graphviz DOT (`stackform graph | dot -Tsvg > graph.svg`); inferred edges are dashed.
    Dot,
    /// A stable JSON document: nodes, edges with reasons, topological order and layers.
    Json,
}

/// Print the dependency graph: an arrow from each resource to the resources that need it.
///
/// Edges come from references (${store.id}), depends_on, and one inferred rule: a deployment waits for
/// every role assignment whose principal is its endpoint's identity.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stack: StackArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: Format,
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    let registry = common::registry()?;
    let (stack, graph) = common::load_graph(&args.stack, &registry)?;
    match args.format {
        Format::Dot => out!("{}", graph.to_dot(&stack.name))?,
        Format::Json => {
            let json = serde_json::to_string_pretty(&graph.to_json(&stack.name))?;
            outln!("{json}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
