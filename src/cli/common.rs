//! Arguments and steps shared by the commands that read a stack file: which file and variables, loading
//! and checking it, and whether output may use colour. It never talks to a cloud and never prints;
//! problems in the file become [`CliError::Diagnostics`].
use std::io::IsTerminal;
use std::path::PathBuf;

use super::error::CliError;
use crate::diag::{self, Diagnostic};
use crate::specs::Registry;
use crate::stack::{self, LoadOptions, Stack};

/// Which stack file to read and the variables to give it.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// The stack file.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "stack.yaml"
    )]
    pub file: PathBuf,

    /// Set a variable (repeatable): --var suffix=abc1. Typed by the variable's declared type.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = stack::parse_var_arg)]
    pub vars: Vec<(String, String)>,

    /// Read variables from a YAML file of NAME: VALUE pairs (repeatable; later files win, --var wins over all).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,

    /// The largest stack file read: bytes, or with a unit (KiB, MiB, GiB). Aliases are limited
    /// separately, by what they add.
    #[arg(
        long = "max-file-size",
        value_name = "SIZE",
        env = "STACKFORM_MAX_FILE_SIZE",
        default_value = "64MiB",
        value_parser = parse_size
    )]
    pub max_file_size: usize,
}

/// Parses a size: a number of bytes, or a number with `KiB`, `MiB` or `GiB` (also `K`, `M`, `G`,
/// `KB`, `MB`, `GB`, all powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 256MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown unit `{other}` (use KiB, MiB or GiB)")),
    };
    n.checked_mul(1usize << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a usable size"))
}

/// Whether diagnostics and plans may use colour: a terminal on stderr and no `NO_COLOR`.
pub(crate) fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Whether output on stdout may use colour.
pub(crate) fn use_color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Turns located problems into the CLI error that prints them.
pub(crate) fn diagnostics(mut diags: Vec<Diagnostic>) -> CliError {
    diag::sort(&mut diags);
    let rendered = diag::render(&diags, diag::Style { color: use_color() });
    CliError::Diagnostics {
        count: diags.len(),
        rendered,
    }
}

pub(super) fn registry() -> Result<Registry, CliError> {
    Ok(Registry::embedded()?)
}

/// Loads and checks the stack file named by the arguments.
pub(crate) fn load_stack(args: &StackArgs, registry: &Registry) -> Result<Stack, CliError> {
    if !args.file.exists() {
        return Err(CliError::StackFileMissing {
            path: args.file.clone(),
        });
    }
    let opts = LoadOptions {
        vars: args.vars.clone(),
        var_files: args.var_files.clone(),
        ..LoadOptions::with_process_env()
    };
    stack::load_within(&args.file, &opts, registry, args.max_file_size).map_err(diagnostics)
}

/// Loads the stack and builds its graph: every problem in the file is reported together.
pub(crate) fn load_graph(
    args: &StackArgs,
    registry: &Registry,
) -> Result<(Stack, crate::graph::ResourceGraph), CliError> {
    let stack = load_stack(args, registry)?;
    let graph = crate::graph::build(&stack, registry).map_err(diagnostics)?;
    Ok((stack, graph))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
