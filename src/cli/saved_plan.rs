//! Saved plans (`plan -o FILE`, then `apply FILE`). A saved plan records how the stack was loaded (file,
//! variable files, non-sensitive `--var`s, targets), the state it was made against (lineage and serial),
//! a hash of the configuration (stack file, Azure ML bases, variable files, variables, the content of
//! every local file the stack uploads) and the plan's JSON. `apply FILE` loads the stack the same way,
//! refreshes, plans again, and refuses to go on when the state moved, the configuration changed, or the
//! new plan differs from the saved one. Sensitive variable values are never written: they must be given
//! again to `apply FILE`, which refuses a value other than the one the plan was made with (see
//! [`SensitiveDigests`]). The plan's JSON must be of the `schema_version` this build writes.
//!
//! It never writes a sensitive value to the file, and never lets `apply FILE` go on when what would
//! run differs from what was shown.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::common::StackArgs;
use super::engine::Loaded;
use super::error::{CliError, PlanFileError};
use crate::plan::json::read_saved_header;
use crate::plan::{DesiredExtras, Plan, PlanMode, content_hash_record};

const FORMAT: &str = "stackform-saved-plan";
/// 2: `sensitive_digests` added (a version-1 plan cannot prove its sensitive values, so it is refused).
const VERSION: u32 = 2;

/// The key-derivation function of [`SensitiveDigests`].
const KDF: &str = "pbkdf2-hmac-sha256";
/// PBKDF2 rounds per digest: OWASP's figure for PBKDF2-HMAC-SHA256 (Password Storage Cheat Sheet),
/// so each guess of a secret from a stolen plan costs what a guess of a stored password costs.
const ITERATIONS: u32 = 600_000;

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
    /// The `--env` the plan was made for: `apply FILE` works on that environment's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub config_hash: String,
    /// Salted, slow digests of every sensitive variable's value, to refuse another value at apply.
    pub sensitive_digests: SensitiveDigests,
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
            env: args.env.clone(),
            config_hash: config_hash(loaded, args, extras),
            sensitive_digests: SensitiveDigests::new(loaded),
            plan: plan.to_json(),
        }
    }

    /// Writes the plan readable by its owner only (0600 on Unix, an existing file included): it
    /// holds the stack's inputs and the values read from the cloud.
    pub(super) fn write(&self, path: &Path) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(self)?;
        write_private(path, (text + "\n").as_bytes()).map_err(|source| {
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
        read_saved_header(&saved.plan).map_err(|e| PlanFileError::BadPlan {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
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
        if let Some(env) = &now.env
            && self.env.as_ref() != Some(env)
        {
            return Err(PlanFileError::OtherEnv {
                saved: self.env.clone(),
                now: env.clone(),
            });
        }
        Ok(StackArgs {
            file: self.stack_file.clone(),
            vars,
            var_files: self.var_files.clone(),
            max_file_size: now.max_file_size,
            env: self.env.clone(),
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
        // Before the changes: a sensitive value shows as `(sensitive)` in both plans, so only its
        // digest tells another value from the one shown.
        self.sensitive_digests.check(loaded)?;
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
    if let Some(env) = &args.env {
        feed("env", env.as_bytes());
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

/// Creates or truncates `path` with mode 0600 (Unix), narrowing an existing file's mode before a byte
/// is written.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)
    }
    #[cfg(not(unix))]
    {
        opts.open(path)?.write_all(bytes)
    }
}

/// Keyed digests of the sensitive variables' values: PBKDF2-HMAC-SHA256 of the value's JSON text, salted
/// with 32 random bytes drawn for this plan and the variable's name, [`ITERATIONS`] rounds.
///
/// Why this key: the saved plan must be checkable by `apply FILE` alone (on another machine, in another
/// CI job), so whatever the check needs travels with the plan or the state; the state's lineage is
/// printed in the plan (`prior_state`), so a key derived from it would be no secret either. A key
/// that cannot be kept from a reader of the plan cannot stop them from guessing, only make each guess
/// dear: the per-plan salt makes guesses for one plan useless for another (no precomputed tables),
/// and the rounds make each guess cost as much as a guess of a stored password. A high-entropy secret
/// (an account key, a token) stays out of reach; a short password is only as safe as it would be in a
/// password database, so a plan file is to be kept as one would keep such a database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SensitiveDigests {
    pub kdf: String,
    pub iterations: u32,
    /// 32 random bytes, hex.
    pub salt: String,
    /// Variable name → hex digest of its value.
    pub digests: BTreeMap<String, String>,
}

impl SensitiveDigests {
    fn new(loaded: &Loaded) -> Self {
        let salt: [u8; 32] = rand::random();
        let digests = loaded
            .stack
            .variables
            .iter()
            .filter(|(_, v)| v.sensitive)
            .map(|(name, v)| {
                let d = sensitive_digest(&salt, ITERATIONS, name, &v.value);
                (name.clone(), hex::encode(d))
            })
            .collect();
        SensitiveDigests {
            kdf: KDF.into(),
            iterations: ITERATIONS,
            salt: hex::encode(salt),
            digests,
        }
    }

    /// Refuses a sensitive variable whose value now differs from the one the plan was made with
    /// (naming it, never showing a value), and a sensitive variable the plan holds no digest of.
    fn check(&self, loaded: &Loaded) -> Result<(), PlanFileError> {
        let bad = |why: &str| PlanFileError::BadDigests(why.to_string());
        if self.kdf != KDF || self.iterations != ITERATIONS {
            return Err(bad(&format!(
                "they use {} with {} rounds; this stackform uses {KDF} with {ITERATIONS}",
                self.kdf, self.iterations
            )));
        }
        let salt = hex::decode(&self.salt).map_err(|_| bad("the salt is not hex"))?;
        for (name, var) in loaded.stack.variables.iter().filter(|(_, v)| v.sensitive) {
            let Some(saved) = self.digests.get(name) else {
                return Err(PlanFileError::SensitiveChanged(name.clone()));
            };
            let saved = hex::decode(saved).map_err(|_| bad("a digest is not hex"))?;
            let now = sensitive_digest(&salt, self.iterations, name, &var.value);
            if !same_bytes(&saved, &now) {
                return Err(PlanFileError::SensitiveChanged(name.clone()));
            }
        }
        Ok(())
    }
}

/// PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2), one 32-byte block, of the value's JSON text, salted
/// with `salt`, a zero byte and the variable's name (so two variables with one value differ).
fn sensitive_digest(salt: &[u8], iterations: u32, name: &str, value: &Value) -> [u8; 32] {
    let mut full_salt = salt.to_vec();
    full_salt.push(0);
    full_salt.extend_from_slice(name.as_bytes());
    pbkdf2_sha256(value.to_string().as_bytes(), &full_salt, iterations)
}

fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    // HMAC accepts a key of any length, so this cannot fail.
    let Ok(keyed) = Hmac::<Sha256>::new_from_slice(password) else {
        unreachable!("HMAC takes keys of any length")
    };
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

/// Equal bytes, in time that does not depend on where they first differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_published_vectors() {
        // Test vectors for PBKDF2-HMAC-SHA256 (P = "password", S = "salt", dkLen = 32), as published
        // with RFC 7914's errata and used by every PBKDF2 implementation's tests.
        let cases = [
            (
                1,
                "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
            ),
            (
                2,
                "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
            ),
            (
                4096,
                "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
            ),
        ];
        for (rounds, want) in cases {
            assert_eq!(
                hex::encode(pbkdf2_sha256(b"password", b"salt", rounds)),
                want
            );
        }
    }

    #[test]
    fn digests_differ_by_value_name_and_salt() {
        let v = |s: &str| Value::String(s.into());
        let d = |salt: &[u8], name: &str, value: &Value| sensitive_digest(salt, 3, name, value);
        let base = d(b"s1", "apikey", &v("A"));
        assert_eq!(base, d(b"s1", "apikey", &v("A")));
        assert_ne!(base, d(b"s1", "apikey", &v("B")));
        assert_ne!(base, d(b"s1", "token", &v("A")));
        assert_ne!(base, d(b"s2", "apikey", &v("A")));
        assert!(same_bytes(&base, &base) && !same_bytes(&base, &base[..31]));
    }
}
