//! Refresh: read every resource recorded in state from the cloud, in parallel (at most
//! `parallelism` reads at once), into the planner's [`Snapshot`].
//!
//! A 404 is an answer ("gone"), not an error. Any other failure is collected; refresh reports every
//! failed read together rather than the first. It never writes state and never prints.

use std::sync::Arc;
use std::time::Instant;

use std::collections::HashMap;

use futures::StreamExt;
use indexmap::IndexMap;
use serde_json::Value;

use super::event::{ApplyEvent, EventSink, RefreshStatus, StepFailure};
use super::values::as_map;
use crate::plan::{FileContent, Live, Snapshot};
use crate::provider::{Provider, ResourceRequest, ResourceType};
use crate::specs::Registry;
use crate::state::StateFile;

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

/// Reads every resource in `state` and returns the snapshot to plan against (with a copy of
/// `state`). Events: `RefreshStarted`, then one `ResourceRefreshed` per resource as its read
/// finishes. Stored contents are read only when they no longer match the local file (see
/// `live_text`); otherwise `content` stays empty and the planner compares the recorded content hash.
/// `registry` says which types store a file's bytes (`content_hash`).
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
    events.emit(ApplyEvent::RefreshStarted {
        resources: state.resources.len(),
    });
    let reads = state.resources.iter().map(|(address, record)| {
        let provider = provider.clone();
        let address = address.clone();
        let resource_type = record.resource_type.clone();
        let req = ResourceType::parse(&resource_type).map(|t| {
            ResourceRequest::new(t, address.clone(), as_map(&record.inputs))
                .with_cloud_id(record.id.clone())
        });
        let stored = registry
            .get(&resource_type)
            .and_then(|spec| spec.stored_content())
            .map(|(field, attr)| (field.to_owned(), attr.to_owned()));
        async move {
            let started = Instant::now();
            let result = match req {
                None => Err(StepFailure::local(format!(
                    "resource type `{resource_type}` is not one stackform manages"
                ))),
                Some(req) => match provider.read(&req).await {
                    Ok(Some(mut o)) => {
                        let mut content = IndexMap::new();
                        if let Some((field, attr)) = &stored {
                            content = live_text(provider.as_ref(), &req, &o, field).await;
                            // The live body differs from the local file: keep the path so the
                            // planner compares the two by content (live text or the content hash
                            // attribute), which is how a blob rewritten out of band shows as drift.
                            if let Some(path) = req.inputs.get(field.as_str())
                                && !o.inputs.contains_key(field.as_str())
                                && (!content.is_empty() || o.outputs.contains_key(attr.as_str()))
                            {
                                o.inputs.insert(field.clone(), path.clone());
                            }
                        }
                        Ok(Live::Present {
                            id: o.id,
                            inputs: Value::Object(o.inputs),
                            outputs: Value::Object(o.outputs),
                            content,
                        })
                    }
                    Ok(None) => Ok(Live::Gone),
                    Err(e) if e.is_not_found() => Ok(Live::Gone),
                    Err(e) => Err(StepFailure::from(&e)),
                },
            };
            (address, result, started.elapsed())
        }
    });
    let mut results: IndexMap<String, Result<Live, StepFailure>> =
        IndexMap::with_capacity(state.resources.len());
    let mut stream = futures::stream::iter(reads).buffer_unordered(parallelism.max(1));
    while let Some((address, result, duration)) = stream.next().await {
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
    let mut live = HashMap::with_capacity(results.len());
    let mut failures = Vec::new();
    // State order, not completion order, so errors are listed stably.
    for address in state.resources.keys() {
        match results.shift_remove(address) {
            Some(Ok(found)) => {
                live.insert(address.clone(), found);
            }
            Some(Err(e)) => failures.push((address.clone(), e)),
            None => {}
        }
    }
    if failures.is_empty() {
        Ok(Snapshot {
            state: Some(state.clone()),
            live,
        })
    } else {
        Err(RefreshError {
            read: live.len(),
            failures,
        })
    }
}
