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
use crate::plan::{Live, Snapshot};
use crate::provider::{Provider, ResourceRequest, ResourceType};
use crate::state::StateFile;

/// Reads that failed for another reason than "not found".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not read {} resource(s) from the cloud: {}", .failures.len(), describe(.failures))]
pub struct RefreshError {
    pub failures: Vec<(String, StepFailure)>,
    /// How many resources were read successfully (the partial snapshot is not returned).
    pub read: usize,
}

fn describe(failures: &[(String, StepFailure)]) -> String {
    failures
        .iter()
        .map(|(a, e)| format!("`{a}`: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads every resource in `state` and returns the snapshot to plan against (with a copy of
/// `state`). Events: `RefreshStarted`, then one `ResourceRefreshed` per resource as its read
/// finishes. Blob contents are not read (`content` stays empty; the planner then compares the
/// recorded content hash).
pub async fn refresh(
    provider: Arc<dyn Provider>,
    state: &StateFile,
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
        async move {
            let started = Instant::now();
            let result = match req {
                None => Err(StepFailure::local(format!(
                    "resource type `{resource_type}` is not one stackform manages"
                ))),
                Some(req) => match provider.read(&req).await {
                    Ok(Some(o)) => Ok(Live::present(
                        o.id,
                        Value::Object(o.inputs),
                        Value::Object(o.outputs),
                    )),
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
