//! The step runner: one cloud operation, from its journal intent to the provider's answer.
//!
//! It runs inside its own task, never touches the state (the scheduler records results), and
//! reports progress only through events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::event::{ApplyEvent, EventSink, StepFailure, StepKind};
use super::interrupt::Interrupt;
use super::persist::write_intent;
use super::propagation::{PropagationPolicy, is_authorization_failure};
use crate::provider::{
    Observed, ProgressEvent, ProgressSink, Provider, ProviderError, ResourceRequest, ResourceType,
};
use crate::state::{Journal, JournalAction, NewIntent, ResourceState, StepId};

/// Everything a step needs, owned, so it can run in its own task.
pub(crate) struct Job {
    pub kind: StepKind,
    pub replace: bool,
    pub address: String,
    pub resource_type: ResourceType,
    /// Resolved desired inputs (create, update) or the recorded inputs (delete).
    pub inputs: Map<String, Value>,
    /// The object as recorded (update, delete).
    pub prior: Option<Observed>,
    /// The cloud id the journal names: the recorded id, or the deterministic id of a new object
    /// when the caller can compute it (empty when unknown; recovery then uses the inputs).
    pub target: String,
    /// Role assignments this run created that the resource waits for (see `propagation`).
    pub waiting_for: Vec<String>,
    pub propagation: PropagationPolicy,
    pub provider: Arc<dyn Provider>,
    pub events: Arc<dyn EventSink>,
    pub journal: Option<Arc<Journal>>,
    pub interrupt: Interrupt,
    /// Set when the inputs could not be resolved: the step fails without being sent.
    pub unresolved: Option<String>,
}

/// How a step ended.
pub(crate) struct JobDone {
    pub step: Option<StepId>,
    /// The inputs the step sent (resolved desired inputs for creates and updates).
    pub inputs: Map<String, Value>,
    pub duration: Duration,
    pub result: Result<Option<Observed>, JobFailure>,
}

pub(crate) struct JobFailure {
    pub error: StepFailure,
    /// What a failed create left in the cloud (read back after the failure), so it is recorded
    /// `Tainted` instead of forgotten.
    pub leftover: Option<Observed>,
}

impl Job {
    fn fail(&self, started: Instant, step: Option<StepId>, message: String) -> JobDone {
        JobDone {
            step,
            inputs: Map::new(),
            duration: started.elapsed(),
            result: Err(JobFailure {
                error: StepFailure::local(message),
                leftover: None,
            }),
        }
    }

    fn journal_action(&self) -> JournalAction {
        match self.kind {
            StepKind::Create => JournalAction::Create,
            StepKind::Update => JournalAction::Update,
            StepKind::Delete => JournalAction::Delete,
        }
    }

    fn request(&self, inputs: Map<String, Value>) -> ResourceRequest {
        let events = self.events.clone();
        let sink: ProgressSink = Arc::new(move |p: ProgressEvent| {
            events.emit(ApplyEvent::StepProgress {
                address: p.address,
                status: p.status,
            });
        });
        let mut req = ResourceRequest::new(self.resource_type, self.address.clone(), inputs)
            .with_progress(sink);
        if let Some(prior) = &self.prior {
            req.cloud_id = Some(prior.id.clone());
        }
        req
    }

    pub async fn run(mut self) -> JobDone {
        let started = Instant::now();
        if let Some(message) = &self.unresolved {
            return self.fail(started, None, message.clone());
        }
        let intent = NewIntent {
            address: self.address.clone(),
            resource_type: self.resource_type.as_str().to_owned(),
            action: self.journal_action(),
            target: self.target.clone(),
        };
        let step = match write_intent(self.journal.clone(), intent).await {
            Ok(step) => step,
            Err(message) => return self.fail(started, None, message),
        };
        self.events.emit(ApplyEvent::StepStarted {
            address: self.address.clone(),
            kind: self.kind,
            replace: self.replace,
        });
        let inputs = std::mem::take(&mut self.inputs);
        let req = self.request(inputs);
        let result = match self.kind {
            StepKind::Create | StepKind::Update => self.put(&req).await.map(Some),
            StepKind::Delete => delete_with_drain(
                self.provider.as_ref(),
                self.events.as_ref(),
                self.prior.as_ref(),
                &req,
            )
            .await
            .map(|()| None),
        };
        let result = match result {
            Ok(observed) => Ok(observed),
            Err(err) => {
                let leftover = if self.kind == StepKind::Create {
                    // A create that failed halfway may have left an object; never forget it.
                    self.provider.read(&req).await.ok().flatten()
                } else {
                    None
                };
                Err(JobFailure {
                    error: StepFailure::from(&err),
                    leftover,
                })
            }
        };
        JobDone {
            step,
            duration: started.elapsed(),
            inputs: req.inputs,
            result,
        }
    }

    /// Create or update, retried while a role assignment of this run propagates.
    async fn put(&self, req: &ResourceRequest) -> Result<Observed, ProviderError> {
        let mut result = self.put_once(req).await;
        if self.waiting_for.is_empty() {
            return result;
        }
        let policy = self.propagation;
        let started = Instant::now();
        let mut attempt = 0u32;
        while let Err(err) = &result {
            if !is_authorization_failure(err) {
                break;
            }
            let waited = started.elapsed();
            if waited >= policy.timeout {
                break;
            }
            attempt += 1;
            let retry_in = policy.backoff(attempt).min(policy.timeout - waited);
            self.events.emit(ApplyEvent::WaitingForPropagation {
                address: self.address.clone(),
                waiting_for: self.waiting_for.clone(),
                attempt,
                waited,
                retry_in,
                reason: err.to_string(),
            });
            tokio::select! {
                () = tokio::time::sleep(retry_in) => {}
                () = self.interrupt.reached(1) => break,
            }
            result = self.put_once(req).await;
        }
        result
    }

    async fn put_once(&self, req: &ResourceRequest) -> Result<Observed, ProviderError> {
        match (self.kind, &self.prior) {
            (StepKind::Update, Some(prior)) => self.provider.update(prior, req).await,
            _ => self.provider.create(req).await,
        }
    }
}

/// Deletes a resource; an online deployment that still receives traffic is first set to 0 %
/// (Azure refuses to delete a deployment with traffic). Already gone is success.
pub(crate) async fn delete_with_drain(
    provider: &dyn Provider,
    events: &dyn EventSink,
    prior: Option<&Observed>,
    req: &ResourceRequest,
) -> Result<(), ProviderError> {
    if let Some(prior) = prior
        && needs_drain(req.resource_type, &req.inputs)
    {
        events.emit(ApplyEvent::StepProgress {
            address: req.address.clone(),
            status: String::from("setting traffic to 0"),
        });
        let mut drained = req.clone();
        drained
            .inputs
            .insert(String::from("traffic"), Value::from(0));
        match provider.update(prior, &drained).await {
            Ok(_) => {}
            Err(err) if err.is_not_found() => return Ok(()),
            Err(err) => return Err(err),
        }
    }
    match provider.delete(req).await {
        Err(err) if err.is_not_found() => Ok(()),
        other => other,
    }
}

/// An online deployment with a traffic share above 0.
pub(crate) fn needs_drain(resource_type: ResourceType, inputs: &Map<String, Value>) -> bool {
    resource_type == ResourceType::OnlineDeployment
        && inputs
            .get("traffic")
            .and_then(Value::as_f64)
            .is_some_and(|t| t > 0.0)
}

/// A state record seen as an observed object.
pub(crate) fn observed_of(record: &ResourceState) -> Observed {
    Observed {
        id: record.id.clone(),
        inputs: super::values::as_map(&record.inputs),
        outputs: super::values::as_map(&record.outputs),
    }
}
