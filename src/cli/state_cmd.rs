//! `stackform state ...`: inspect and repair the state file (list, show, rm, mv, import, unlock).
//!
//! It never changes the cloud (`rm` forgets, `mv` renames, `import` only reads), never writes state without the
//! stack's lock, and never shows a sensitive value.
use std::process::ExitCode;

use serde_json::Value;

use super::common::StackArgs;
use super::engine::{self, LockArgs, TargetArgs};
use super::error::{CliError, Hint, StateCommandError};
use crate::report::stdio::outln;
use crate::state::{Lock, LockRequest, UnlockOutcome};

/// Inspect and repair the state: what stackform believes exists.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// List the resources in state: address, type, status and cloud id.
    List(Common),
    /// Show one resource's recorded inputs, outputs and dependencies (sensitive values hidden).
    Show {
        /// The resource's address (its key in the stack file).
        resource: String,
        #[command(flatten)]
        common: Common,
    },
    /// Forget a resource without deleting it from the cloud.
    Rm {
        resource: String,
        /// Also when other resources depend on it (they are detached from it).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Rename a resource in state (after renaming it in the stack file), without touching the cloud.
    ///
    /// Refused when SOURCE is not in state or DESTINATION already is. `moved: { from: SOURCE }` on
    /// the resource in the stack file does the same at the next apply.
    Mv {
        /// The address in state now (`store`, or an instance `blue["a"]`).
        source: String,
        /// The new address.
        destination: String,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Adopt an existing cloud resource as RESOURCE of the stack file, given its cloud id.
    Import {
        resource: String,
        /// The ARM id (or, for a blob, its URL).
        id: String,
        /// Adopt the object even though another stack's ownership stamp is on it (see
        /// docs/RELIABILITY.md): this stack's next update of it stamps it as this stack's, and the
        /// other stack may then no longer update or delete it.
        #[arg(long)]
        take_over: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// List the versions of the state kept: time, serial and size, the current one first.
    ///
    /// With the azure_blob backend every write keeps the version it replaces (a blob snapshot);
    /// with the local backend only the version before the last write is kept (`<stack>.json.backup`).
    History(Common),
    /// Bring back an earlier version of the state, as a new write (history is never deleted).
    ///
    /// VERSION is a snapshot time or a serial from `stackform state history` (`backup` for the
    /// local backend's one kept version). Refused for a state of another lineage.
    Restore {
        #[arg(value_name = "VERSION")]
        which: String,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Move the stack's state between backends: `--to azure_blob` copies the local state file into
    /// the configured blob, `--to local` copies the blob into the local state file.
    ///
    /// Both sides are locked; the destination must hold no state yet (or exactly this one); the copy
    /// is read back and compared. The source is left in place: remove it yourself once the stack
    /// file's `backend:` points at the destination.
    Migrate {
        /// The backend to move the state to: azure_blob or local.
        #[arg(long, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(crate::stack::BackendKind::ALL))]
        to: String,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Remove the stack's lock left by a run that cannot release it (another host, a hung process).
    Unlock {
        /// Required: breaking a lock another run still holds can corrupt state.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn hidden(v: &Value) -> Value {
    match v {
        _ if crate::state::sensitive::is_redacted(v) => Value::String("(sensitive)".into()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), hidden(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(hidden).collect()),
        other => other.clone(),
    }
}

pub(super) fn run(args: Args) -> Result<ExitCode, CliError> {
    match args.command {
        StateCommand::List(c) => {
            let loaded = engine::load(&c.stack, &c.target)?;
            let Some(state) = engine::read_state(&loaded.store)? else {
                outln!("No state yet for stack `{}`.", loaded.stack.name)?;
                return Ok(ExitCode::SUCCESS);
            };
            for r in state.list() {
                outln!(
                    "{:<20} {:<24} {:<8} {}",
                    r.address,
                    r.resource_type,
                    r.status.to_string(),
                    r.id
                )?;
            }
        }
        StateCommand::Show { resource, common } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            let state = engine::read_state(&loaded.store)?
                .ok_or(StateCommandError::NoState { action: "show" })?;
            let r = state.show(&resource)?;
            let doc = serde_json::json!({
                "address": resource,
                "type": r.resource_type,
                "id": r.id,
                "status": r.status.to_string(),
                "dependencies": r.dependencies,
                "inputs": hidden(&r.inputs),
                "outputs": hidden(&r.outputs),
            });
            outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        }
        StateCommand::Rm {
            resource,
            force,
            common,
            lock,
        } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            let _guard = take_lock(&loaded, "state rm", &lock)?;
            let mut state = engine::read_state(&loaded.store)?
                .ok_or(StateCommandError::NoState { action: "remove" })?;
            let serial = state.serial;
            let removed = state.remove(&resource, force)?;
            loaded.store.write(&mut state, Some(serial))?;
            outln!(
                "Removed `{}` ({}) from state; it still exists in the cloud: {}",
                removed.address,
                removed.resource.resource_type,
                removed.resource.id
            )?;
            if !removed.detached.is_empty() {
                outln!("Detached from it: {}", removed.detached.join(", "))?;
            }
        }
        StateCommand::Mv {
            source,
            destination,
            common,
            lock,
        } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            let _guard = take_lock(&loaded, "state mv", &lock)?;
            let mut state = engine::read_state(&loaded.store)?
                .ok_or(StateCommandError::NoState { action: "move" })?;
            let serial = state.serial;
            // A move keeps the object: the stack file must not declare another type there.
            if let (Some(record), Some(res)) = (
                state.resources.get(&source),
                loaded.stack.resources.get(&destination),
            ) && record.resource_type != res.type_name
                && !state.resources.contains_key(&destination)
            {
                return Err(StateCommandError::MoveChangesType {
                    source_address: source,
                    destination,
                    from_type: record.resource_type.clone(),
                    to_type: res.type_name.clone(),
                }
                .into());
            }
            state.move_resource(&source, &destination)?;
            loaded.store.write(&mut state, Some(serial))?;
            outln!("Move \"{source}\" to \"{destination}\"")?;
            outln!("Successfully moved 1 object(s).")?;
        }
        StateCommand::Import {
            resource,
            id,
            take_over,
            common,
            lock,
        } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            if !loaded.stack.resources.contains_key(&resource) {
                return Err(StateCommandError::UnknownResource {
                    address: resource.clone(),
                    hint: Hint::closest(
                        &resource,
                        loaded.stack.resources.keys().map(String::as_str),
                    ),
                }
                .into());
            }
            let _guard = take_lock(&loaded, "state import", &lock)?;
            let (mut state, serial) = loaded.store.read_or_new(&loaded.stack.name)?;
            if state.resources.contains_key(&resource) {
                return Err(crate::state::SurgeryError::AlreadyExists { address: resource }.into());
            }
            // One object, one address: refused before the cloud is read.
            if let Some(other) = state.tracked_at(&id) {
                return Err(crate::state::SurgeryError::IdTracked {
                    address: resource.clone(),
                    id: id.clone(),
                    other: other.to_string(),
                }
                .into());
            }
            let rt = engine::runtime()?;
            let record = rt.block_on(async {
                let provider =
                    engine::connect(&loaded.stack, &loaded.registry, &common.target).await?;
                super::foreign::check_cloud(loaded.store.path(), &state, provider.config())?;
                if state.cloud.is_none() {
                    state.cloud = Some(super::foreign::binding(provider.config()));
                }
                super::adopt::read_object(
                    provider.as_ref(),
                    &loaded,
                    Some(&state),
                    &resource,
                    &id,
                    take_over,
                )
                .await
            })?;
            let observed_id = record.id.clone();
            state.import(&resource, record)?;
            loaded.store.write(&mut state, serial)?;
            outln!(
                "Imported {observed_id} as `{resource}`. Run `stackform plan` to see how it compares with the stack file."
            )?;
        }
        StateCommand::History(c) => {
            let loaded = engine::load(&c.stack, &c.target)?;
            history(&loaded)?;
        }
        StateCommand::Restore {
            which,
            common,
            lock,
        } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            let _guard = take_lock(&loaded, "state restore", &lock)?;
            restore(&loaded, &which)?;
        }
        StateCommand::Migrate { to, common, lock } => migrate(&to, &common, &lock)?,
        StateCommand::Unlock { force, common } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            if !force {
                let holder = match &loaded.backend {
                    Some(session) => session.holder()?,
                    None => Lock::holder(&loaded.store.lock_path())?,
                };
                return Err(match holder {
                    Some(info) => StateCommandError::LockHeld(Box::new(info)),
                    None => StateCommandError::NotLocked,
                }
                .into());
            }
            let outcome = match &loaded.backend {
                Some(session) => session.force_unlock()?,
                None => Lock::force_unlock(loaded.store.lock_path())?,
            };
            match outcome {
                UnlockOutcome::NotLocked => outln!("The stack was not locked.")?,
                UnlockOutcome::RemovedStale(info) => {
                    outln!("Removed a stale lock left by {info:?}.")?
                }
                UnlockOutcome::BrokeHeldLock(info) => outln!(
                    "Broke the lock held by {info:?}. If that run is still going, state may be overwritten."
                )?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn take_lock<'a>(
    loaded: &'a engine::Loaded,
    command: &str,
    lock: &LockArgs,
) -> Result<engine::Held<'a>, CliError> {
    let mut req = LockRequest::new(command);
    if let Some(t) = lock.lock_timeout {
        req = req.with_timeout(t);
    }
    engine::lock(loaded, &req)
}

/// `state history`: the versions kept, the current one first.
fn history(loaded: &engine::Loaded) -> Result<(), CliError> {
    outln!("{:<32} {:>8} {:>10}  REPLACED", "VERSION", "SERIAL", "SIZE")?;
    let line = |version: &str, serial: Option<u64>, size: u64, replaced: &str| {
        let serial = serial.map_or_else(|| "-".to_string(), |s| s.to_string());
        outln!("{version:<32} {serial:>8} {size:>10}  {replaced}")
    };
    match &loaded.backend {
        Some(session) => {
            for v in session.history()? {
                line(
                    v.snapshot.as_deref().unwrap_or("current"),
                    v.serial,
                    v.size,
                    v.replaced.as_deref().unwrap_or("-"),
                )?;
            }
        }
        None => {
            for (name, path) in [
                ("current", loaded.store.path().to_path_buf()),
                ("backup", loaded.store.backup_path()),
            ] {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let serial = if name == "current" {
                    engine::read_state(&loaded.store)?.map(|s| s.serial)
                } else {
                    loaded.store.read_backup()?.map(|s| s.serial)
                };
                line(name, serial, meta.len(), "-")?;
            }
        }
    }
    Ok(())
}

/// `state restore VERSION`: the version's state written as the next serial, under the lock.
fn restore(loaded: &engine::Loaded, version: &str) -> Result<(), CliError> {
    let restored = match &loaded.backend {
        Some(session) => {
            let bytes = session.version_bytes(version)?;
            serde_json::from_slice::<crate::state::StateFile>(&bytes).map_err(|e| {
                StateCommandError::BadVersion {
                    version: version.to_string(),
                    detail: e.to_string(),
                }
            })?
        }
        None if version == "backup" => loaded
            .store
            .read_backup()?
            .ok_or(StateCommandError::NoState { action: "restore" })?,
        None => {
            return Err(StateCommandError::BadVersion {
                version: version.to_string(),
                detail: "the local backend keeps one earlier version, `backup`".into(),
            }
            .into());
        }
    };
    let current = engine::read_state(&loaded.store)?;
    let mut state = restored;
    let expected = match &current {
        Some(c) if c.lineage != state.lineage => {
            return Err(StateCommandError::BadVersion {
                version: version.to_string(),
                detail: format!(
                    "it belongs to another state history (lineage {}, the state's is {})",
                    state.lineage, c.lineage
                ),
            }
            .into());
        }
        Some(c) => Some(c.serial),
        None => None,
    };
    let from = state.serial;
    let serial = loaded.store.write(&mut state, expected)?;
    outln!(
        "Restored version {version} (serial {from}) as serial {serial}; the version it replaced is kept in the history."
    )?;
    Ok(())
}

/// `state migrate --to KIND`: copies the state from the other backend to `to`, both locked, and
/// checks the copy.
fn migrate(to: &str, common: &Common, lock: &LockArgs) -> Result<(), CliError> {
    let with_kind = |kind: &str| {
        let mut target = common.target.clone();
        target.backend = Some(kind.to_string());
        target
    };
    let local = engine::load(&common.stack, &with_kind("local"))?;
    let remote = engine::load(&common.stack, &with_kind("azure_blob"))?;
    let (source, destination) = if to == "local" {
        (&remote, &local)
    } else {
        (&local, &remote)
    };
    let _source_lock = take_lock(source, "state migrate", lock)?;
    let _destination_lock = take_lock(destination, "state migrate", lock)?;
    let from = where_state_is(source);
    let into = where_state_is(destination);
    let (unfinished, _) = crate::state::Journal::read_unfinished(source.store.journal_path())?;
    if !unfinished.is_empty() {
        return Err(StateCommandError::Migrate(format!(
            "{from} has {} unfinished step(s) of an interrupted apply: run `stackform apply` to settle them first",
            unfinished.len()
        ))
        .into());
    }
    let Some(state) = engine::read_state(&source.store)? else {
        return Err(StateCommandError::Migrate(format!("{from} holds no state")).into());
    };
    let same = |a: &crate::state::StateFile, b: &crate::state::StateFile| {
        a.lineage == b.lineage
            && a.resources == b.resources
            && a.outputs == b.outputs
            && a.cloud == b.cloud
    };
    match engine::read_state(&destination.store)? {
        Some(found) if same(&found, &state) => {
            outln!(
                "{into} already holds this state (serial {}); nothing to copy.",
                found.serial
            )?;
            return Ok(());
        }
        Some(found) => {
            return Err(StateCommandError::Migrate(format!(
                "{into} already holds another state (lineage {}, serial {}); it was not overwritten",
                found.lineage, found.serial
            ))
            .into());
        }
        None => {}
    }
    let mut copy = state.clone();
    destination.store.write(&mut copy, None)?;
    // Read the copy back from where it now lives (for a blob: pulled afresh).
    if let Some(session) = &destination.backend {
        session.pull()?;
    }
    let back = engine::read_state(&destination.store)?;
    if !back.as_ref().is_some_and(|b| same(b, &state)) {
        return Err(StateCommandError::Migrate(format!(
            "the copy in {into} does not read back as the state of {from}; the source was left as it was"
        ))
        .into());
    }
    outln!(
        "Moved the state ({} resource(s), serial {}) from {from} to {into} and read it back unchanged.",
        state.resources.len(),
        state.serial
    )?;
    outln!(
        "The state in {from} was left in place. Point the stack at the new backend ({}), then remove the old copy.",
        if to == "local" {
            "remove `backend:` from the stack file or set `kind: local`"
        } else {
            "set `backend: { kind: azure_blob, ... }` in the stack file"
        }
    )?;
    Ok(())
}

/// Where a loaded stack's state is, for messages.
fn where_state_is(loaded: &engine::Loaded) -> String {
    match &loaded.backend {
        Some(session) => session.describe(),
        None => engine::shown(loaded.store.path()),
    }
}
