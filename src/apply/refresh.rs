//! Refresh: read every resource recorded in state from the cloud into the planner's [`Snapshot`],
//! with as few requests as the provider allows: resources the provider can list together (same
//! [`Provider::list_group`]) are read with one listing per collection, the others one by one; at most
//! `parallelism` reads or listings at once.
//!
//! Reads go in waves by depth in the specs' parent chain (accounts, then their containers, then their
//! blobs), so what a parent's listing taught the provider (an account's endpoint) serves its children,
//! and the number of requests does not depend on timing.
//!
//! A 404 is an answer ("gone"), not an error. Any other failure is collected; refresh reports every
//! failed read together rather than the first. It never writes state and never prints.

use std::sync::Arc;
use std::time::Instant;

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use indexmap::IndexMap;
use serde_json::Value;

use super::event::{ApplyEvent, EventSink, RefreshStatus, StepFailure};
use super::values::as_map;
use crate::plan::{FileContent, Live, Snapshot};
use crate::provider::{Provider, ResourceRequest, ResourceType};
use crate::specs::Registry;
use crate::state::{ResourceState, StateFile};

/// Reads that failed for another reason than "not found".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not read {} resource(s) from the cloud: {}", .failures.len(), describe(.failures))]
pub struct RefreshError {
    pub failures: Vec<(String, StepFailure)>,
    /// How many resources were read successfully (the partial snapshot is not returned).
    pub read: usize,
}

/// One line per failed read; past three, the rest are counted (they usually share one cause, such
/// as a credential for another subscription, and a wall of repeats hides it).
fn describe(failures: &[(String, StepFailure)]) -> String {
    const SHOWN: usize = 3;
    let mut lines: Vec<String> = failures
        .iter()
        .take(SHOWN)
        .map(|(a, e)| format!("\n  `{a}`: {e}"))
        .collect();
    if failures.len() > SHOWN {
        let rest: Vec<&str> = failures[SHOWN..].iter().map(|(a, _)| a.as_str()).collect();
        lines.push(format!("\n  and {} more: {}", rest.len(), rest.join(", ")));
    }
    lines.concat()
}

/// For a resource whose live body no longer matches the local file of its stored-content field (a
/// blob's `source`; the spec's `content_hash`), the live text (when small UTF-8), so the plan can show
/// the change as a line diff. Best effort: a failure only loses the diff.
async fn live_text(
    provider: &dyn Provider,
    req: &ResourceRequest,
    observed: &crate::provider::Observed,
    field: &str,
) -> IndexMap<String, FileContent> {
    let mut content = IndexMap::new();
    let differs = req.inputs.contains_key(field) && !observed.inputs.contains_key(field);
    if differs && let Ok(Some(text)) = provider.read_text(req).await {
        use sha2::Digest as _;
        let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        content.insert(
            field.to_owned(),
            FileContent {
                sha256,
                text: Some(text),
            },
        );
    }
    content
}

/// What refresh reads for one resource of state: its record, whose request is made when its unit is
/// read (a request holds a copy of the inputs; made for every record up front, they were a second
/// copy of the state's inputs through the whole refresh).
struct Item<'s> {
    address: &'s str,
    record: &'s ResourceState,
    /// The field that stores a local file's content and the attribute of its hash.
    stored: Option<(String, String)>,
}

/// The read request of one record of state.
fn request(address: &str, record: &ResourceState) -> Result<ResourceRequest, StepFailure> {
    let resource_type = &record.resource_type;
    ResourceType::parse(resource_type)
        .map(|t| {
            ResourceRequest::new(t, address.to_owned(), as_map(&record.inputs))
                .with_cloud_id(record.id.clone())
        })
        .ok_or_else(|| {
            StepFailure::local(format!(
                "resource type `{resource_type}` is not one stackform manages"
            ))
        })
}

/// How many parents a type has above it in the specs (`arm.parent` naming another type), so parents
/// are read before their children.
fn depth(registry: &Registry, type_name: &str) -> usize {
    let mut depth = 0;
    let mut current = type_name.to_owned();
    while let Some(parent) = registry.get(&current).map(|s| s.arm.parent.clone()) {
        if registry.get(&parent).is_none() || depth > 16 {
            break;
        }
        depth += 1;
        current = parent;
    }
    depth
}

/// One answer of the provider as the planner's [`Live`]: a stored-content field whose live body
/// differs from the local file keeps its path so the planner compares the two by content.
async fn to_live(
    provider: &dyn Provider,
    req: &ResourceRequest,
    stored: Option<&(String, String)>,
    answer: crate::provider::Result<Option<crate::provider::Observed>>,
) -> Result<Live, StepFailure> {
    match answer {
        Ok(Some(mut o)) => {
            let mut content = IndexMap::new();
            if let Some((field, attr)) = stored {
                content = live_text(provider, req, &o, field).await;
                // The live body differs from the local file: keep the path so the planner compares
                // the two by content (live text or the content hash attribute), which is how a blob
                // rewritten out of band shows as drift.
                if let Some(path) = req.inputs.get(field.as_str())
                    && !o.inputs.contains_key(field.as_str())
                    && (!content.is_empty() || o.outputs.contains_key(attr.as_str()))
                {
                    o.inputs.insert(field.clone(), path.clone());
                }
            }
            // Kept until the plan is made: without the spare room its maps grew with.
            let (mut inputs, mut outputs) = (Value::Object(o.inputs), Value::Object(o.outputs));
            crate::state::compact(&mut inputs);
            crate::state::compact(&mut outputs);
            Ok(Live::Present {
                id: o.id,
                inputs,
                outputs,
                content,
            })
        }
        Ok(None) => Ok(Live::Gone),
        Err(e) if e.is_not_found() => Ok(Live::Gone),
        Err(e) => Err(StepFailure::from(&e)),
    }
}

/// Reads one unit of work (a collection's members, or one resource) and answers per resource.
async fn read_unit(
    provider: Arc<dyn Provider>,
    items: Vec<Item<'_>>,
) -> Vec<(String, Result<Live, StepFailure>, std::time::Duration)> {
    let started = Instant::now();
    let mut reqs = Vec::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    let mut rest = Vec::with_capacity(items.len());
    for item in items {
        match request(item.address, item.record) {
            Ok(req) => {
                reqs.push(req);
                rest.push((item.address.to_owned(), item.stored));
            }
            Err(e) => out.push((item.address.to_owned(), Err(e), started.elapsed())),
        }
    }
    let answers = match reqs.len() {
        0 => Vec::new(),
        1 => vec![provider.read(&reqs[0]).await],
        _ => match provider.read_listed(&reqs).await {
            Ok(answers) => answers,
            Err(e) => reqs.iter().map(|_| Err(e.clone())).collect(),
        },
    };
    for ((req, (address, stored)), answer) in reqs.iter().zip(rest).zip(answers) {
        let live = to_live(provider.as_ref(), req, stored.as_ref(), answer).await;
        out.push((address, live, started.elapsed()));
    }
    out
}

/// Reads every resource in `state` and returns the snapshot to plan against (with a copy of
/// `state`; [`refresh_live`] reads without copying it). Events: `RefreshStarted`, then one `ResourceRefreshed` per resource as its read
/// finishes. Stored contents are read only when they no longer match the local file (see
/// `live_text`); otherwise `content` stays empty and the planner compares the recorded content hash.
/// `registry` says which types store a file's bytes (`content_hash`) and each type's parents.
///
/// # Errors
///
/// [`RefreshError`] listing every read that failed for another reason than "not found".
pub async fn refresh(
    provider: Arc<dyn Provider>,
    state: &StateFile,
    registry: &Registry,
    parallelism: usize,
    events: &dyn EventSink,
) -> Result<Snapshot, RefreshError> {
    let live = refresh_live(provider, state, registry, parallelism, events).await?;
    Ok(Snapshot {
        state: Some(state.clone()),
        live,
    })
}

/// What [`refresh`] reads, by address, without the copy of `state`: a caller that owns the state
/// moves it into the [`Snapshot`] itself, so a large state is not held twice while the plan is made.
///
/// # Errors
///
/// As [`refresh`].
pub(crate) async fn refresh_live(
    provider: Arc<dyn Provider>,
    state: &StateFile,
    registry: &Registry,
    parallelism: usize,
    events: &dyn EventSink,
) -> Result<HashMap<String, Live>, RefreshError> {
    events.emit(ApplyEvent::RefreshStarted {
        resources: state.resources.len(),
    });
    // Waves by depth; in each, one unit per collection (in state order) and one per lone resource.
    let mut waves: BTreeMap<usize, IndexMap<String, Vec<Item>>> = BTreeMap::new();
    for (address, record) in &state.resources {
        let resource_type = &record.resource_type;
        let unit = request(address, record)
            .ok()
            .and_then(|r| provider.list_group(&r))
            .unwrap_or_else(|| format!("\u{0}{address}"));
        let stored = registry
            .get(resource_type)
            .and_then(|spec| spec.stored_content())
            .map(|(field, attr)| (field.to_owned(), attr.to_owned()));
        waves
            .entry(depth(registry, resource_type))
            .or_default()
            .entry(unit)
            .or_default()
            .push(Item {
                address,
                record,
                stored,
            });
    }
    // Keyed, not ordered: the snapshot and the failures are put in state order below. (An ordered
    // map's shift_remove there moved every later entry: quadratic in the size of the state.)
    let mut results: HashMap<String, Result<Live, StepFailure>> =
        HashMap::with_capacity(state.resources.len());
    for units in waves.into_values() {
        let reads = units
            .into_values()
            .map(|items| read_unit(provider.clone(), items));
        let mut stream = futures::stream::iter(reads).buffer_unordered(parallelism.max(1));
        while let Some(answers) = stream.next().await {
            for (address, result, duration) in answers {
                let status = match &result {
                    Ok(Live::Present { .. }) => RefreshStatus::Present,
                    Ok(_) => RefreshStatus::Gone,
                    Err(_) => RefreshStatus::Failed,
                };
                events.emit(ApplyEvent::ResourceRefreshed {
                    address: address.clone(),
                    status,
                    duration,
                });
                results.insert(address, result);
            }
        }
    }
    let mut live = HashMap::with_capacity(results.len());
    let mut failures = Vec::new();
    // State order, not completion order, so errors are listed stably.
    for address in state.resources.keys() {
        match results.remove(address) {
            Some(Ok(found)) => {
                live.insert(address.clone(), found);
            }
            Some(Err(e)) => failures.push((address.clone(), e)),
            None => {}
        }
    }
    if failures.is_empty() {
        Ok(live)
    } else {
        Err(RefreshError {
            read: live.len(),
            failures,
        })
    }
}
