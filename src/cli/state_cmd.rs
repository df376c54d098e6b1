//! `stackform state ...`: inspect and repair the state file (list, show, rm, import, unlock).
//!
//! It never changes the cloud (`rm` forgets, `import` only reads), never writes state without the
//! stack's lock, and never shows a sensitive value.
use std::process::ExitCode;

use serde_json::Value;

use super::common::StackArgs;
use super::engine::{self, LockArgs, TargetArgs};
use super::error::{CliError, Hint, StateCommandError};
use crate::provider::{Provider, ResourceRequest, ResourceType};
use crate::state::{Lock, LockRequest, ResourceState, UnlockOutcome};

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
        StateCommand::Import {
            resource,
            id,
            common,
            lock,
        } => {
            let loaded = engine::load(&common.stack, &common.target)?;
            let res = loaded.stack.resources.get(&resource).ok_or_else(|| {
                StateCommandError::UnknownResource {
                    address: resource.clone(),
                    hint: Hint::closest(
                        &resource,
                        loaded.stack.resources.keys().map(String::as_str),
                    ),
                }
            })?;
            let rtype = ResourceType::parse(&res.type_name).ok_or_else(|| {
                StateCommandError::CannotImport {
                    type_name: res.type_name.clone(),
                }
            })?;
            let _guard = take_lock(&loaded.store, "state import", &lock)?;
            let (mut state, serial) = loaded.store.read_or_new(&loaded.stack.name)?;
            // The stack file's inputs (references resolved from what state records) help the provider
            // find the object; the id decides.
            let lookup = |r: &crate::stack::Reference| -> Option<Value> {
                let rec = state.resources.get(&r.resource)?;
                let at = |v: &Value| {
                    r.path
                        .split('.')
                        .try_fold(v.clone(), |cur, k| cur.get(k).cloned())
                };
                at(&rec.outputs).or_else(|| at(&rec.inputs))
            };
            let inputs: serde_json::Map<String, Value> = res
                .inputs
                .iter()
                .filter_map(|(k, e)| Some((k.clone(), e.resolve(&lookup)?)))
                .collect();
            let request =
                ResourceRequest::new(rtype, resource.clone(), inputs).with_cloud_id(id.clone());
            let rt = engine::runtime()?;
            let observed = rt.block_on(async {
                let provider =
                    engine::connect(&loaded.stack, &loaded.registry, &common.target).await?;
                provider.read(&request).await.map_err(|source| {
                    CliError::from(StateCommandError::Read {
                        id: id.clone(),
                        source: Box::new(source),
                    })
                })
            })?;
            let observed =
                observed.ok_or_else(|| StateCommandError::NothingAt { id: id.clone() })?;
            // Import only reads: it never stamps. An object without a stamp is stamped by this
            // stack's next update of it; one another stack stamped stays that stack's.
            if let Some(owner) = observed
                .owner
                .as_ref()
                .filter(|o| !o.lineage.eq_ignore_ascii_case(&state.lineage.to_string()))
            {
                return Err(StateCommandError::OwnedElsewhere {
                    id: id.clone(),
                    owner: owner.to_string(),
                }
                .into());
            }
            let mut record = ResourceState::new(
                rtype.as_str(),
                observed.id.clone(),
                Value::Object(observed.inputs),
                Value::Object(observed.outputs),
            );
            record.dependencies = loaded
                .graph
                .dependencies(&resource)
                .into_iter()
                .filter(|d| state.resources.contains_key(*d))
                .map(str::to_string)
                .collect();
            state.import(&resource, record)?;
            loaded.store.write(&mut state, serial)?;
            println!(
                "Imported {} as `{resource}`. Run `stackform plan` to see how it compares with the stack file.",
                observed.id
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
