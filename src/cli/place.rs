//! Where a stack's state lives, decided once for every command:
//!
//! * `--state FILE`: exactly that file;
//! * else the state folder: `--state-dir DIR` (or `STACKFORM_STATE_DIR`), by default `state/` beside
//!   the stack file (so `stackform plan -f ux-mine/stack.yaml` finds `ux-mine/state/` from any
//!   folder); the file is `<folder>/<stack>.json`;
//! * an environment (`--env NAME`) is a folder of its own inside it: `<folder>/env/NAME/<stack>.json`;
//! * the former default, `state/` in the current folder, is still found: when the state is not
//!   beside the stack file but is there, it is used and a notice says how to move it.
//!
//! It only looks at paths: it never creates, moves or writes a file or a folder (the commands that
//! write state create its folder themselves), and never prints (the notice is returned).
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::common::{self, StackArgs};
use super::error::CliError;
use crate::diag::display_path as shown;
use crate::state::StateStore;

/// The folder environments live in, inside a state folder.
const ENV_FOLDER: &str = "env";

/// The state file a run works on, and a notice to print when it is not where state now lives.
pub(crate) struct Located {
    pub store: StateStore,
    pub notice: Option<String>,
}

/// The state folder of a stack file before any `--env`: `state_dir` (`--state-dir`), else `state/`
/// beside it. `true` when it was given (then the former default is not looked at).
pub(crate) fn state_folder(stack: &StackArgs, state_dir: Option<&Path>) -> (PathBuf, bool) {
    match state_dir {
        Some(dir) => (dir.to_path_buf(), true),
        None => (beside(&stack.file), false),
    }
}

/// `state/` in the folder of `file` (`state` for a file in the current folder).
fn beside(file: &Path) -> PathBuf {
    file.parent().unwrap_or(Path::new("")).join("state")
}

/// `<folder>/env/<name>`: an environment's own state folder.
pub(crate) fn env_folder(folder: &Path, env: &str) -> PathBuf {
    folder.join(ENV_FOLDER).join(env)
}

/// The state file of `stack_name` for these arguments (`state_dir`: `--state-dir`, `state_file`:
/// `--state`), at its real path when it is a symbolic link (see [`common::resolve_state_path`]).
pub(crate) fn locate(
    stack_name: &str,
    stack: &StackArgs,
    state_dir: Option<&Path>,
    state_file: Option<&Path>,
) -> Result<Located, CliError> {
    let (named, notice) = match state_file {
        Some(path) => (StateStore::new(path), None),
        None => {
            let (base, given) = state_folder(stack, state_dir);
            let folder = with_env(base, stack.env.as_deref());
            let store = StateStore::for_stack(&folder, stack_name)?;
            match (given, former(stack_name, stack)?) {
                (false, Some(old)) if !exists(store.path()) && exists(old.path()) => {
                    let notice = moved_notice(&old, &folder, stack_name);
                    (old, Some(notice))
                }
                _ => (store, None),
            }
        }
    };
    let store = match common::resolve_state_path(named.path())? {
        Some(real) => StateStore::new(real),
        None => named,
    };
    Ok(Located { store, notice })
}

fn with_env(base: PathBuf, env: Option<&str>) -> PathBuf {
    match env {
        Some(env) => env_folder(&base, env),
        None => base,
    }
}

/// The state in the former default folder (`state/` in the current folder, with the same `--env`
/// folder inside it), when that is not the folder beside the stack file.
fn former(stack_name: &str, stack: &StackArgs) -> Result<Option<StateStore>, CliError> {
    let here = std::fs::canonicalize(".").ok();
    let stack_dir = stack
        .file
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .and_then(|p| std::fs::canonicalize(p).ok());
    if here.is_none() || here == stack_dir {
        return Ok(None);
    }
    let folder = with_env(PathBuf::from("state"), stack.env.as_deref());
    Ok(Some(StateStore::for_stack(folder, stack_name)?))
}

/// Whether a path exists (a dangling link counts: it is reported where it is used).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn moved_notice(old: &StateStore, folder: &Path, stack_name: &str) -> String {
    let old_folder = old.path().parent().unwrap_or(Path::new("."));
    let (old_folder, folder) = (shown(old_folder), shown(folder));
    format!(
        "using {} from `state/` in the current folder, where state was kept before; state now lives beside the stack file, in {folder}/. \
Move it there with `mkdir -p {folder} && mv {old_folder}/{stack_name}.* {folder}/`, or keep it where it is with --state-dir {old_folder}",
        shown(old.path()),
    )
}

/// One environment of a stack, as `env list` shows it.
#[derive(Debug)]
pub(crate) struct EnvSummary {
    pub name: String,
    /// Where its state is, as shown: the state file, or the state blob's URL.
    pub state_file: String,
    /// Resources in its state (`None`: the state cannot be read; `error` says why).
    pub resources: Option<usize>,
    pub error: Option<String>,
    /// When its state folder was made (the file system's birth time, else the state file's last
    /// write), and when its state was last written.
    pub created: Option<SystemTime>,
    pub updated: Option<SystemTime>,
}

/// The environments of `stack_name` in `folder` (each `<folder>/env/NAME/` holding a state file of
/// the stack), sorted by name. Reads only.
pub(crate) fn environments(folder: &Path, stack_name: &str) -> Result<Vec<EnvSummary>, CliError> {
    let envs = folder.join(ENV_FOLDER);
    let entries = match std::fs::read_dir(&envs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::io("read the environments in", &envs)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(CliError::io("read the environments in", &envs))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if common::parse_env_name(&name).is_err() {
            continue;
        }
        let store = StateStore::for_stack(entry.path(), stack_name)?;
        let Ok(meta) = std::fs::metadata(store.path()) else {
            continue;
        };
        let (resources, error) = match store.read() {
            Ok(state) => (Some(state.map_or(0, |s| s.resources.len())), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let updated = meta.modified().ok();
        let created = std::fs::metadata(entry.path())
            .and_then(|m| m.created())
            .ok()
            .or(updated);
        found.push(EnvSummary {
            name,
            state_file: shown(store.path()).to_string(),
            resources,
            error,
            created,
            updated,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// A duration as `45s`, `12m`, `3h`, `2d`: how `env list` shows ages.
pub(crate) fn age(since: Option<SystemTime>, now: SystemTime) -> String {
    let Some(secs) = since
        .and_then(|t| now.duration_since(t).ok())
        .map(|d| d.as_secs())
    else {
        return "-".to_string();
    };
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn state_lives_beside_the_stack_file_and_an_env_inside_it() {
        assert_eq!(beside(Path::new("stack.yaml")), PathBuf::from("state"));
        assert_eq!(
            beside(Path::new("ux-mine/stack.yaml")),
            PathBuf::from("ux-mine/state")
        );
        assert_eq!(
            env_folder(Path::new("ux-mine/state"), "alice"),
            PathBuf::from("ux-mine/state/env/alice")
        );
    }

    #[test]
    fn ages_read_at_a_glance() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s| Some(now - Duration::from_secs(s));
        assert_eq!(age(ago(5), now), "5s");
        assert_eq!(age(ago(600), now), "10m");
        assert_eq!(age(ago(7200), now), "2h");
        assert_eq!(age(ago(3 * 86_400), now), "3d");
        assert_eq!(age(None, now), "-");
    }
}
