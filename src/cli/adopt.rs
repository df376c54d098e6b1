//! `moved:` and `import:` for the commands that plan: the stack's moves followed in the state as
//! read (in memory; apply writes them), and the objects its `import:`s name read from the cloud
//! and put into the snapshot, so the plan compares the file with them (`<= import`). The reading
//! of one object to adopt is shared with `stackform state import`.
//!
//! It never writes state (apply and `state import` do, under the lock) and never changes the
//! cloud: an import only reads.
use serde_json::{Map, Value};

use super::engine::Loaded;
use super::error::{CliError, StateCommandError};
use crate::plan::moves::{self, Moved, PendingImport};
use crate::plan::{Live, Snapshot};
use crate::provider::{Provider, ResourceRequest, ResourceType};
use crate::state::{ResourceState, StateFile};

/// Follows the stack's `moved:` keys in `state` (in memory).
pub(super) fn follow_moves(
    loaded: &Loaded,
    state: Option<&mut StateFile>,
) -> Result<Vec<Moved>, CliError> {
    match state {
        Some(state) => moves::apply_moves(&loaded.stack, state).map_err(CliError::Addresses),
        None => Ok(Vec::new()),
    }
}

/// The stack's `import:`s that state does not record yet.
pub(super) fn pending(
    loaded: &Loaded,
    state: Option<&StateFile>,
) -> Result<Vec<PendingImport>, CliError> {
    moves::pending_imports(&loaded.stack, state).map_err(CliError::Addresses)
}

/// Reads the object at `id` as the stack's resource `address` would see it, and makes its state
/// record. Refused before the cloud is read when the id is not an id of the resource's type (or
/// names another object than the file's inputs do); refused when nothing exists there.
pub(super) async fn read_object(
    provider: &dyn Provider,
    loaded: &Loaded,
    state: Option<&StateFile>,
    address: &str,
    id: &str,
) -> Result<ResourceState, CliError> {
    let res =
        loaded
            .stack
            .resources
            .get(address)
            .ok_or_else(|| StateCommandError::UnknownResource {
                address: address.to_string(),
                hint: super::error::Hint::closest(
                    address,
                    loaded.stack.resources.keys().map(String::as_str),
                ),
            })?;
    let rtype =
        ResourceType::parse(&res.type_name).ok_or_else(|| StateCommandError::CannotImport {
            type_name: res.type_name.clone(),
        })?;
    // The stack file's inputs (references resolved from what state records) help the provider
    // find the object; the id decides.
    let lookup = |r: &crate::stack::Reference| -> Option<Value> {
        let rec = state?.resources.get(&r.resource)?;
        let at = |v: &Value| {
            r.path
                .split('.')
                .try_fold(v.clone(), |cur, k| cur.get(k).cloned())
        };
        at(&rec.outputs).or_else(|| at(&rec.inputs))
    };
    let inputs: Map<String, Value> = res
        .inputs
        .iter()
        .filter_map(|(k, e)| Some((k.clone(), e.resolve(&lookup)?)))
        .collect();
    if let Some(spec) = loaded.registry.get(&res.type_name) {
        crate::plan::check_import_id(spec, id, &Value::Object(inputs.clone())).map_err(
            |reason| StateCommandError::NotThisResource {
                address: address.to_string(),
                id: id.to_string(),
                reason,
            },
        )?;
    }
    let request = ResourceRequest::new(rtype, address, inputs).with_cloud_id(id);
    let observed = provider.read(&request).await.map_err(|source| {
        CliError::from(StateCommandError::Read {
            id: id.to_string(),
            source: Box::new(source),
        })
    })?;
    let observed = observed.ok_or_else(|| StateCommandError::NothingAt { id: id.to_string() })?;
    let mut record = ResourceState::new(
        rtype.as_str(),
        observed.id,
        Value::Object(observed.inputs),
        Value::Object(observed.outputs),
    );
    record.dependencies = loaded
        .graph
        .dependencies(address)
        .into_iter()
        .filter(|d| state.is_some_and(|s| s.resources.contains_key(*d)))
        .map(str::to_string)
        .collect();
    Ok(record)
}

/// Reads every pending import and puts it into `snapshot` as if state recorded it (and the refresh
/// had read it), so the plan compares the file with the object. Returns the records to adopt.
pub(super) async fn read_imports(
    provider: &dyn Provider,
    loaded: &Loaded,
    pending: &[PendingImport],
    snapshot: &mut Snapshot,
) -> Result<Vec<(String, ResourceState)>, CliError> {
    let mut adopted = Vec::new();
    for p in pending {
        let record =
            read_object(provider, loaded, snapshot.state.as_ref(), &p.address, &p.id).await?;
        let state = snapshot
            .state
            .get_or_insert_with(|| StateFile::new(&loaded.stack.name));
        // Another import of this run may have read the same object.
        if let Some(other) = state.tracked_at(&record.id) {
            return Err(crate::state::SurgeryError::IdTracked {
                address: p.address.clone(),
                id: record.id.clone(),
                other: other.to_string(),
            }
            .into());
        }
        snapshot.live.insert(
            p.address.clone(),
            Live::present(
                record.id.clone(),
                record.inputs.clone(),
                record.outputs.clone(),
            ),
        );
        state.record(p.address.clone(), record.clone());
        adopted.push((p.address.clone(), record));
    }
    Ok(adopted)
}
