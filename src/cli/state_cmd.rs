//! `stackform state ...`: inspect and repair the state file (list, show, rm, mv, import, unlock).
//!
//! It never changes the cloud (`rm` forgets, `mv` renames, `import` only reads), never writes state without the
//! stack's lock, and never shows a sensitive value.
use std::process::ExitCode;

use serde_json::Value;

use super::common::StackArgs;
use super::engine::{self, LockArgs, TargetArgs};
use super::error::{CliError, Hint, StateCommandError};
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
                println!("No state yet for stack `{}`.", loaded.stack.name);
                return Ok(ExitCode::SUCCESS);
            };
            for r in state.list() {
                println!(
                    "{:<20} {:<24} {:<8} {}",
                    r.address,
                    r.resource_type,
                    r.status.to_string(),
                    r.id
                );
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
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        StateCommand::Rm {
            resource,
            force,
            common,
            lock,
        } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            let _guard = take_lock(&loaded.store, "state rm", &lock)?;
            let mut state = engine::read_state(&loaded.store)?
                .ok_or(StateCommandError::NoState { action: "remove" })?;
            let serial = state.serial;
            let removed = state.remove(&resource, force)?;
            loaded.store.write(&mut state, Some(serial))?;
            println!(
                "Removed `{}` ({}) from state; it still exists in the cloud: {}",
                removed.address, removed.resource.resource_type, removed.resource.id
            );
            if !removed.detached.is_empty() {
                println!("Detached from it: {}", removed.detached.join(", "));
            }
        }
        StateCommand::Mv {
            source,
            destination,
            common,
            lock,
        } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            let _guard = take_lock(&loaded.store, "state mv", &lock)?;
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
            println!("Move \"{source}\" to \"{destination}\"");
            println!("Successfully moved 1 object(s).");
        }
        StateCommand::Import {
            resource,
            id,
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
            let _guard = take_lock(&loaded.store, "state import", &lock)?;
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
                super::adopt::read_object(provider.as_ref(), &loaded, Some(&state), &resource, &id)
                    .await
            })?;
            let observed_id = record.id.clone();
            state.import(&resource, record)?;
            loaded.store.write(&mut state, serial)?;
            println!(
                "Imported {observed_id} as `{resource}`. Run `stackform plan` to see how it compares with the stack file."
            );
        }
        StateCommand::Unlock { force, common } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            if !force {
                return Err(match Lock::holder(&loaded.store.lock_path())? {
                    Some(info) => StateCommandError::LockHeld(Box::new(info)),
                    None => StateCommandError::NotLocked,
                }
                .into());
            }
            match Lock::force_unlock(loaded.store.lock_path())? {
                UnlockOutcome::NotLocked => println!("The stack was not locked."),
                UnlockOutcome::RemovedStale(info) => {
                    println!("Removed a stale lock left by {info:?}.")
                }
                UnlockOutcome::BrokeHeldLock(info) => {
                    println!(
                        "Broke the lock held by {info:?}. If that run is still going, state may be overwritten."
                    )
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn take_lock(
    store: &crate::state::StateStore,
    command: &str,
    lock: &LockArgs,
) -> Result<crate::state::LockGuard, CliError> {
    let mut req = LockRequest::new(command);
    if let Some(t) = lock.lock_timeout {
        req = req.with_timeout(t);
    }
    let acquired = store.lock(&req)?;
    if let Some(n) = acquired.notice {
        eprintln!("note: {n}");
    }
    Ok(acquired.guard)
}
