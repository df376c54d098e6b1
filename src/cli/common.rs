//! Arguments and steps shared by the commands that read a stack file: which file and variables, loading
//! and checking it, where its state file really is, and whether output may use colour. It never talks
//! to a cloud and never prints; problems in the file become [`CliError::Diagnostics`].
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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

    /// Work on a separate copy of the stack: its own state (`<state folder>/env/NAME/`) and
    /// `${stack.env}` in the stack file, for unique names. Lowercase letters, digits and `-`.
    #[arg(long = "env", value_name = "NAME", env = "STACKFORM_ENV", value_parser = parse_env_name)]
    pub env: Option<String>,
}

/// The longest environment name: it goes into cloud names, some of which are short (a storage
/// account's is 3 to 24 characters).
const ENV_NAME_MAX: usize = 32;

/// Checks an environment name (`--env`): 1 to 32 lowercase letters, digits and `-`, starting with a
/// letter or digit and not ending with `-`, so it is a folder name and fits in cloud names.
pub(crate) fn parse_env_name(s: &str) -> Result<String, String> {
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_ends = s.starts_with(|c: char| c.is_ascii_alphanumeric()) && !s.ends_with('-');
    if s.is_empty() || s.len() > ENV_NAME_MAX || !ok_chars || !ok_ends {
        return Err(format!(
            "`{s}` is not an environment name: use 1 to {ENV_NAME_MAX} lowercase letters, digits and `-`, starting with a letter or digit (e.g. alice, pr-42)"
        ));
    }
    Ok(s.to_string())
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
        stack_env: args.env.clone(),
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

/// Where a state file named by `path` really is, resolved once before anything reads, locks or
/// writes it: `Some(real path)` when `path` is a symbolic link (so the lock, the backup and the
/// journal sit beside the real file, and two runs reaching one file by different names share one
/// lock), `None` when it is not one (the path is used as given). A link that leads nowhere (dangling,
/// or a loop) is refused, naming the link and its target: read as "no state" it would start a new
/// state and overwrite the good backup.
pub(crate) fn resolve_state_path(path: &Path) -> Result<Option<PathBuf>, CliError> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(None);
    }
    match std::fs::canonicalize(path) {
        Ok(real) => Ok(Some(real)),
        Err(source) => Err(CliError::StateLink {
            link: path.to_path_buf(),
            target: std::fs::read_link(path).unwrap_or_default(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{CliError, parse_env_name, parse_size, resolve_state_path};

    #[cfg(unix)]
    #[test]
    fn a_state_link_is_resolved_and_a_dangling_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "{}").unwrap();
        let plain = dir.path().join("plain.json");
        assert!(resolve_state_path(&plain).unwrap().is_none(), "absent");
        std::fs::write(&plain, "{}").unwrap();
        assert!(resolve_state_path(&plain).unwrap().is_none(), "a file");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        assert_eq!(
            resolve_state_path(&link).unwrap(),
            Some(std::fs::canonicalize(&real).unwrap())
        );
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("gone.json", &dangling).unwrap();
        let Err(e @ CliError::StateLink { .. }) = resolve_state_path(&dangling) else {
            panic!("a dangling link must be refused");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("dangling.json") && msg.contains("gone.json"),
            "{msg}"
        );
    }

    #[test]
    fn env_names_are_folder_and_cloud_name_safe() {
        for good in ["alice", "pr-42", "7", "a-b-c"] {
            assert_eq!(parse_env_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "Alice", "-a", "a-", "a/b", "..", "a_b", &"x".repeat(33)] {
            let err = parse_env_name(bad).unwrap_err();
            assert!(err.contains("not an environment name"), "{bad}: {err}");
        }
    }

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
