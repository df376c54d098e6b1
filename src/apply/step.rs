//! The step runner: one cloud operation, from its journal intent to the provider's answer.
//!
//! It runs inside its own task, never touches the state (the scheduler records results), and
//! reports progress only through events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::event::{ApplyEvent, EventSink, StepFailure, StepKind};
use super::interrupt::Interrupt;
use super::ownership::{OWNED_ELSEWHERE, foreign, refused};
use super::persist::{PersistError, wait_intent, write_intent};
use super::propagation::{PropagationPolicy, is_authorization_failure};
use super::values::ResolveError;
use crate::provider::{
    ErrorKind, MapRequest, Observed, Owner, Preserved, ProgressEvent, ProgressSink, Provider,
    ProviderError, ResourceRequest, ResourceType,
};
use crate::state::{
    Journal, JournalAction, JournalError, NewIntent, Queued, ResourceState, StepId,
};

/// The error code of a create refused because the object exists outside this stack's state; such a
/// failure left nothing behind, so the existing object is never recorded or rolled back.
const EXISTS_OUTSIDE_STATE: &str = "StackformAlreadyExists";

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
    /// The type's spec says an object found where a create goes is this very resource (its name is
    /// derived from what it is: `arm.adopt_existing`), so a create adopts it instead of refusing.
    pub adopt_existing: bool,
    /// The stack this run stamps its objects with (`super::ownership`).
    pub owner: Owner,
    pub propagation: PropagationPolicy,
    pub provider: Arc<dyn Provider>,
    pub events: Arc<dyn EventSink>,
    pub journal: Option<Arc<Journal>>,
    /// The intent the scheduler queued for this step when it started it ([`Job::queue_intent`]),
    /// or why it could not; `None`: the step writes its own.
    pub queued: Option<Result<(StepId, Queued), JournalError>>,
    pub interrupt: Interrupt,
    /// Set when the inputs could not be resolved: the step fails without being sent.
    pub unresolved: Option<ResolveError>,
    /// Set for a map step (an endpoint's traffic map): the whole map to put, instead of a create,
    /// update or delete of the resource.
    pub map: Option<MapRequest>,
}

/// How a step ended.
pub(crate) struct JobDone {
    pub step: Option<StepId>,
    /// The inputs the step sent (resolved desired inputs for creates and updates).
    pub inputs: Map<String, Value>,
    pub duration: Duration,
    pub result: Result<Option<Observed>, JobFailure>,
    /// For a map step that succeeded: the map it replaced.
    pub previous: Option<BTreeMap<String, u64>>,
    /// For an update: what the provider kept of the resource before overwriting it (a blob's
    /// snapshot), for the rollback and to release at the end of the run.
    pub preserved: Option<Preserved>,
    /// A create whose outcome is unknown: its request may have reached the cloud (the connection
    /// was lost after it was sent) and no read could tell whether the object exists. Its journal
    /// intent must stay open for the next run's recovery to settle.
    pub unsettled: bool,
}

pub(crate) struct JobFailure {
    pub error: StepFailure,
    /// What a failed create left in the cloud (read back after the failure), so it is recorded
    /// `Tainted` instead of forgotten.
    pub leftover: Option<Observed>,
    /// Whether the step's request may have reached the cloud. A step that failed before it was
    /// sent (its inputs did not resolve, the previous content could not be kept, the intent could
    /// not be journaled) changed nothing: its resource is neither tainted nor rolled back.
    pub sent: bool,
}

/// A step that failed before reaching the cloud.
fn not_sent(started: Instant, message: String) -> JobDone {
    JobDone {
        step: None,
        inputs: Map::new(),
        duration: started.elapsed(),
        result: Err(JobFailure {
            error: StepFailure::local(message),
            leftover: None,
            sent: false,
        }),
        previous: None,
        preserved: None,
        unsettled: false,
    }
}

impl Job {
    /// Queues this step's intent in the journal, from the scheduler as it starts the step: the
    /// intent goes into the same group write as the commit the scheduler queued just before (and
    /// the intents of the other steps it starts), and the step's task waits for that write before
    /// sending. Nothing is queued for a step that sends nothing (unresolved inputs, a map step).
    pub(crate) fn queue_intent(&mut self) {
        let Some(journal) = &self.journal else {
            return;
        };
        if self.unresolved.is_some() || self.map.is_some() {
            return;
        }
        self.queued = Some(journal.queue_intent(self.new_intent()));
    }

    fn new_intent(&self) -> NewIntent {
        NewIntent {
            address: self.address.clone(),
            resource_type: self.resource_type.as_str().to_owned(),
            action: self.journal_action(),
            target: self.target.clone(),
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

    pub(super) async fn run(mut self) -> JobDone {
        let started = Instant::now();
        if let Some(message) = &self.unresolved {
            return not_sent(started, message.to_string());
        }
        if let Some(map) = self.map.take() {
            return self.set_map(map, started).await;
        }
        // A queued intent is finished by the commit of this step's outcome, whatever it is.
        let queued_step = match &self.queued {
            Some(Ok((step, _))) => Some(*step),
            _ => None,
        };
        // Before an update overwrites what its inputs cannot bring back (a blob's bytes, when the
        // local file has changed since), the provider keeps it, so a rollback restores what was live.
        // Nothing is sent if that fails: a change that could not be undone is not made.
        let preserved = if self.kind == StepKind::Update {
            match self
                .provider
                .preserve(&self.request(self.inputs.clone()))
                .await
            {
                Ok(kept) => kept,
                Err(e) => {
                    return JobDone {
                        step: queued_step,
                        ..not_sent(
                            started,
                            format!("could not keep the previous content before the update: {e}"),
                        )
                    };
                }
            }
        } else {
            None
        };
        let inputs = std::mem::take(&mut self.inputs);
        let req = self.request(inputs);
        // The intent is durable before anything that changes the cloud goes out. A create's check
        // that its object does not exist yet only reads, so it is sent while the intent is being
        // written: the journal's sync overlaps a round trip instead of preceding it.
        let queued = self.queued.take();
        let write = async {
            match (queued, &self.journal) {
                (Some(Ok((step, queued))), Some(journal)) => wait_intent(journal, queued)
                    .await
                    .map(|()| Some(step))
                    .map_err(|e| (Some(step), e.to_string())),
                (Some(Err(e)), _) => Err((None, PersistError::Intent(e).to_string())),
                _ => write_intent(self.journal.clone(), self.new_intent())
                    .await
                    .map_err(|e| (None, e.to_string())),
            }
        };
        let creates = matches!(
            (self.kind, &self.prior),
            (StepKind::Create, _) | (StepKind::Update, None)
        );
        let (written, checked) = if creates {
            let (written, checked) = tokio::join!(write, self.refuse_existing(&req));
            (written, Some(checked))
        } else {
            (write.await, None)
        };
        let step = match written {
            Ok(step) => step,
            Err((step, message)) => {
                return JobDone {
                    step,
                    preserved,
                    ..not_sent(started, message)
                };
            }
        };
        self.events.emit(ApplyEvent::StepStarted {
            address: self.address.clone(),
            kind: self.kind,
            replace: self.replace,
        });
        let result = match (self.kind, checked) {
            (_, Some(Err(refused))) => Err(refused),
            (StepKind::Create | StepKind::Update, checked) => {
                self.put(&req, checked.is_some()).await.map(Some)
            }
            (StepKind::Delete, _) => delete_gone_ok(self.provider.as_ref(), &req)
                .await
                .map(|()| None),
        };
        let mut unsettled = false;
        let result = match result {
            Ok(observed) => Ok(observed),
            Err(err) => {
                let refused = matches!(
                    err.code.as_deref(),
                    Some(EXISTS_OUTSIDE_STATE | OWNED_ELSEWHERE)
                );
                let leftover = if self.kind == StepKind::Create && !refused {
                    // A create that failed halfway may have left an object; never forget it.
                    match self.provider.read(&req).await {
                        Ok(found) => found,
                        Err(e) if e.is_not_found() => None,
                        // Nothing settles whether the object exists. An answer of the cloud
                        // (an HTTP error, a failed operation) did; a lost connection did not,
                        // unless the create never reached the cloud: then the journal keeps the
                        // step for a read to settle.
                        Err(_) => {
                            unsettled =
                                matches!(err.kind, ErrorKind::Transport | ErrorKind::Timeout)
                                    && !err.unsent;
                            None
                        }
                    }
                } else {
                    None
                };
                Err(JobFailure {
                    error: StepFailure::from(&err),
                    leftover,
                    sent: true,
                })
            }
        };
        JobDone {
            step,
            duration: started.elapsed(),
            inputs: req.inputs,
            result,
            previous: None,
            preserved,
            unsettled,
        }
    }

    /// A map step: one update of the owner that puts the whole map. It creates no object, so it is not
    /// journaled: a run that dies leaves the map as the cloud has it, and the next plan reads it live and
    /// sets it again.
    async fn set_map(self, mut map: MapRequest, started: Instant) -> JobDone {
        self.events.emit(ApplyEvent::StepStarted {
            address: self.address.clone(),
            kind: self.kind,
            replace: false,
        });
        let events = self.events.clone();
        map.progress = Some(Arc::new(move |p: ProgressEvent| {
            events.emit(ApplyEvent::StepProgress {
                address: p.address,
                status: p.status,
            });
        }));
        let (result, previous) = match self.provider.set_map(&map).await {
            Ok(previous) => (Ok(None), Some(previous)),
            Err(err) => (
                Err(JobFailure {
                    error: StepFailure::from(&err),
                    leftover: None,
                    sent: true,
                }),
                None,
            ),
        };
        JobDone {
            step: None,
            inputs: Map::new(),
            duration: started.elapsed(),
            result,
            previous,
            preserved: None,
            unsettled: false,
        }
    }

    /// Create or update, retried while a role assignment of this run propagates. `checked`: a
    /// create's object was already found absent (checked while the intent was written).
    async fn put(&self, req: &ResourceRequest, checked: bool) -> Result<Observed, ProviderError> {
        let mut result = self.put_once(req, checked).await;
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
            let retry_in = policy
                .backoff(attempt)
                .min(policy.timeout.saturating_sub(waited));
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
            result = self.redeploy(req).await;
        }
        result
    }

    /// A retry: the failed object usually exists (a deployment in `Failed` state), so it is updated
    /// in place, which redeploys it; if it does not, it is created.
    async fn redeploy(&self, req: &ResourceRequest) -> Result<Observed, ProviderError> {
        match self.provider.read(req).await? {
            Some(current) => self.provider.update(&current, req).await,
            None => self.provider.create(req).await,
        }
    }

    async fn put_once(
        &self,
        req: &ResourceRequest,
        checked: bool,
    ) -> Result<Observed, ProviderError> {
        match (self.kind, &self.prior) {
            (StepKind::Update, Some(prior)) => self.provider.update(prior, req).await,
            _ => {
                if !checked {
                    self.refuse_existing(req).await?;
                }
                self.provider.create(req).await
            }
        }
    }

    /// A create must not take over an object that this stack's state does not know: a PUT would
    /// silently adopt (and a rollback then delete) something another stack or person owns. What a
    /// crashed run of this stack created is settled from the journal before any step runs, so an
    /// object found here belongs to someone else. Types whose spec says `adopt_existing` (a role
    /// assignment, named after what it grants) are exempt: an existing one is the same resource and is
    /// adopted, as ARM does.
    async fn refuse_existing(&self, req: &ResourceRequest) -> Result<(), ProviderError> {
        if self.adopt_existing {
            // Adopted as ARM does, unless another stack's stamp says it is that stack's.
            return match self.provider.read(req).await? {
                Some(found) => match foreign(&self.owner, &found) {
                    Some(other) => Err(refused(
                        req,
                        other,
                        "this stack will not adopt what another stack owns",
                    )),
                    None => Ok(()),
                },
                None => Ok(()),
            };
        }
        match self.provider.read(req).await? {
            None => Ok(()),
            Some(found) => {
                let mut err = ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} `{}` already exists in the cloud ({}) but is not in this stack's state: if another state manages it (another state folder, --env or `stack:` name), run with that state; to adopt it into this one, `stackform state import {} {}`; or give it another name",
                        req.resource_type, req.address, found.id, req.address, found.id
                    ),
                );
                err.code = Some(EXISTS_OUTSIDE_STATE.to_owned());
                Err(err)
            }
        }
    }
}

/// Deletes a resource; already gone (404) is success. A resource holding an entry of another's map
/// (a deployment's traffic share) lost it in the map step ordered before this delete.
pub(crate) async fn delete_gone_ok(
    provider: &dyn Provider,
    req: &ResourceRequest,
) -> Result<(), ProviderError> {
    match provider.delete(req).await {
        Err(err) if err.is_not_found() => Ok(()),
        other => other,
    }
}

/// A state record seen as an observed object.
pub(crate) fn observed_of(record: &ResourceState) -> Observed {
    Observed {
        id: record.id.clone(),
        inputs: super::values::as_map(&record.inputs),
        outputs: super::values::as_map(&record.outputs),
        owner: None,
    }
}
