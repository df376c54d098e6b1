//! Refresh: read every resource recorded in state from the cloud, in parallel (at most
//! `parallelism` reads at once), into a [`Snapshot`] the planner compares against.
//!
//! A 404 is an answer ("gone"), not an error. Any other failure is collected; refresh reports every
//! failed read together rather than the first. It never writes state and never prints.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::event::{ApplyEvent, EventSink, RefreshStatus, StepFailure};
use super::values::as_map;
use crate::provider::{Provider, ResourceRequest, ResourceType};
use crate::state::StateFile;

/// What the cloud has for one recorded resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    Present {
        id: String,
        inputs: Map<String, Value>,
        outputs: Map<String, Value>,
    },
    /// The cloud answered 404: deleted outside stackform.
    Gone,
}

/// Live values by address, in state order.
pub type Snapshot = IndexMap<String, Live>;

/// Reads that failed for another reason than "not found".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not read {} resource(s) from the cloud: {}", .failures.len(), describe(.failures))]
pub struct RefreshError {
    pub failures: Vec<(String, StepFailure)>,
    /// Whether every other resource was read (the partial snapshot is not returned).
    pub read: usize,
}

fn describe(failures: &[(String, StepFailure)]) -> String {
    failures
        .iter()
        .map(|(a, e)| format!("`{a}`: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads every resource in `state`. Events: `RefreshStarted`, then one `ResourceRefreshed` per
/// resource as its read finishes.
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
                    Ok(Some(o)) => Ok(Live::Present {
                        id: o.id,
                        inputs: o.inputs,
                        outputs: o.outputs,
                    }),
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
            Ok(Live::Gone) => RefreshStatus::Gone,
            Err(_) => RefreshStatus::Failed,
        };
        events.emit(ApplyEvent::ResourceRefreshed {
            address: address.clone(),
            status,
            duration,
        });
        results.insert(address, result);
    }
    let mut snapshot = Snapshot::with_capacity(results.len());
    let mut failures = Vec::new();
    // State order, not completion order, so output is stable.
    for address in state.resources.keys() {
        match results.shift_remove(address) {
            Some(Ok(live)) => {
                snapshot.insert(address.clone(), live);
            }
            Some(Err(e)) => failures.push((address.clone(), e)),
            None => {}
        }
    }
    if failures.is_empty() {
        Ok(snapshot)
    } else {
        Err(RefreshError {
            read: snapshot.len(),
            failures,
        })
    }
}
