//! Saved plans (`plan -o FILE`, then `apply FILE`). A saved plan records how the stack was loaded (file,
//! variable files, non-sensitive `--var`s, targets), the state it was made against (lineage and serial),
//! a hash of the configuration (stack file, Azure ML bases, variable files, variables, the content of
//! every local file the stack uploads) and the plan's JSON. `apply FILE` loads the stack the same way,
//! refreshes, plans again, and refuses to go on when the state moved, the configuration changed, or the
//! new plan differs from the saved one. Sensitive variable values are never written: they must be given
//! again to `apply FILE`.
//!
//! It never writes a sensitive value to the file, and never lets `apply FILE` go on when what would
//! run differs from what was shown.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::common::StackArgs;
use super::engine::Loaded;
use super::error::{CliError, PlanFileError};
use crate::plan::{DesiredExtras, Plan, PlanMode, content_hash_record};

const FORMAT: &str = "stackform-saved-plan";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SavedPlan {
    pub format: String,
    pub version: u32,
    pub stack_file: PathBuf,
    pub var_files: Vec<PathBuf>,
    /// `--var`s of non-sensitive variables.
    pub vars: Vec<(String, String)>,
    /// Names of sensitive variables that were set with `--var` (values not stored).
    pub sensitive_vars: Vec<String>,
    pub targets: Vec<String>,
    pub config_hash: String,
    /// The plan in its documented JSON form (`prior_state`, `mode`, `changes`, ...).
    pub plan: Value,
}

impl SavedPlan {
    pub(super) fn new(
        loaded: &Loaded,
        args: &StackArgs,
        extras: &DesiredExtras,
        targets: &[String],
        plan: &Plan,
    ) -> Self {
        let sensitive = |name: &str| {
            loaded
                .stack
                .variables
                .get(name)
                .is_some_and(|v| v.sensitive)
        };
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        SavedPlan {
            format: FORMAT.into(),
            version: VERSION,
            stack_file: absolute(&args.file),
            var_files: args.var_files.iter().map(|p| absolute(p)).collect(),
            vars: args
                .vars
                .iter()
                .filter(|(k, _)| !sensitive(k))
                .cloned()
                .collect(),
            sensitive_vars: args
                .vars
                .iter()
                .filter(|(k, _)| sensitive(k))
                .map(|(k, _)| k.clone())
                .collect(),
            targets: targets.to_vec(),
            config_hash: config_hash(loaded, args, extras),
            plan: plan.to_json(),
        }
    }

    pub(super) fn write(&self, path: &Path) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").map_err(|source| {
            PlanFileError::Write {
                path: path.to_path_buf(),
                source,
            }
            .into()
        })
    }

    pub(super) fn read(path: &Path) -> Result<Self, PlanFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let saved: SavedPlan =
            serde_json::from_str(&text).map_err(|source| PlanFileError::NotASavedPlan {
                path: path.to_path_buf(),
                source,
            })?;
        if saved.format != FORMAT || saved.version != VERSION {
            return Err(PlanFileError::OtherFormat {
                path: path.to_path_buf(),
                found_format: saved.format,
                found_version: saved.version,
                format: FORMAT,
                version: VERSION,
            });
        }
        Ok(saved)
    }

    pub(super) fn mode(&self) -> Result<PlanMode, PlanFileError> {
        match self.plan.get("mode").and_then(Value::as_str) {
            Some("normal") => Ok(PlanMode::Normal),
            Some("destroy") => Ok(PlanMode::Destroy),
            other => Err(PlanFileError::BadMode(other.map(str::to_string))),
        }
    }

    /// How to load the stack again: as saved, plus the `--var`s given now (needed for sensitive ones).
    pub(crate) fn stack_args(&self, now: &StackArgs) -> Result<StackArgs, PlanFileError> {
        let mut vars = self.vars.clone();
        vars.extend(now.vars.iter().cloned());
        for name in &self.sensitive_vars {
            if !now.vars.iter().any(|(k, _)| k == name) {
                return Err(PlanFileError::SensitiveVariable(name.clone()));
            }
        }
        Ok(StackArgs {
            file: self.stack_file.clone(),
            vars,
            var_files: self.var_files.clone(),
            max_file_size: now.max_file_size,
        })
    }

    /// Refuses the saved plan when the state or the configuration moved, or when the cloud changed so
    /// that the plan made now differs from the saved one.
    pub(super) fn check(
        &self,
        loaded: &Loaded,
        args: &StackArgs,
        extras: &DesiredExtras,
        now: &Plan,
    ) -> Result<(), PlanFileError> {
        let fresh = now.to_json();
        if self.plan.get("stack") != fresh.get("stack") {
            return Err(PlanFileError::OtherStack);
        }
        if self.plan.get("prior_state") != fresh.get("prior_state") {
            return Err(PlanFileError::StateChanged {
                was: describe_state(self.plan.get("prior_state")),
                now: describe_state(fresh.get("prior_state")),
            });
        }
        if config_hash(loaded, args, extras) != self.config_hash {
            return Err(PlanFileError::ConfigChanged);
        }
        if self.plan.get("changes") != fresh.get("changes") {
            return Err(PlanFileError::CloudChanged);
        }
        Ok(())
    }
}

fn describe_state(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(o)) => format!(
            "serial {}",
            o.get("serial").map_or("?".to_string(), ToString::to_string)
        ),
        _ => "no state".to_string(),
    }
}

/// SHA-256 over everything the configuration depends on. Sensitive variable values are left out.
fn config_hash(loaded: &Loaded, args: &StackArgs, extras: &DesiredExtras) -> String {
    let mut h = Sha256::new();
    let mut feed = |label: &str, bytes: &[u8]| {
        tracing::trace!(label, sha = %hex::encode(Sha256::digest(bytes)), "config hash input");
        h.update(label.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    feed("stack", loaded.stack.source.text.as_bytes());
    for res in loaded.stack.resources.values() {
        if let Some(base) = &res.base_file {
            feed("base", &std::fs::read(base).unwrap_or_default());
        }
    }
    for f in &args.var_files {
        feed("var-file", &std::fs::read(f).unwrap_or_default());
    }
    for (name, var) in &loaded.stack.variables {
        if !var.sensitive {
            feed(name, var.value.to_string().as_bytes());
        }
    }
    // Sorted: the map's own order differs between runs.
    let mut resources: Vec<_> = extras.resources.iter().collect();
    resources.sort_by(|a, b| a.0.cmp(b.0));
    for (address, files) in resources {
        if let Some(record) = content_hash_record(files) {
            feed(address, record.as_bytes());
        }
    }
    hex::encode(h.finalize())
}
