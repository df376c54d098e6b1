//! The scheduler: walks the operation graph with in-degree counters and a bounded number of steps
//! in flight, records each result in state as it lands, stops on the first failure, and hands the
//! completed steps to the rollback.
//!
//! Only this coordinator mutates the state and the known values; step tasks receive owned inputs
//! and send back results, so no mutable state is shared between tasks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::event::{
    ApplyEvent, EventSink, FailureRecord, NotRestored, Outcome, RollbackRecord, StepFailure,
    StepKind, StepRecord, StepResult, Summary,
};
use super::interrupt::Interrupt;
use super::opgraph::{self, MapPhase, OpGraph, PlanShapeError};
use super::ownership::{Owned, owner_of};
use super::persist::{PersistError, Persistence};
use super::propagation::PropagationPolicy;
use super::rollback::{self, Done};
use super::step::{Job, JobDone, JobFailure, observed_of};
use super::steps::{ApplyPlan, ResolvedMap, deposed_key};
use super::values::{Known, KnownValues, ResolveError};
use crate::plan::ReplaceOrder;
use crate::provider::{Observed, Preserved, Provider, ResourceRequest, ResourceType};
use crate::specs::Registry;
use crate::state::{ResourceState, ResourceStatus, StateFile, StepId, Touched};

/// Computes the deterministic cloud id a create will produce, for the journal (optional: without
/// it, recovery finds new objects through their inputs).
pub(crate) type CloudIdFn =
    Arc<dyn Fn(ResourceType, &Map<String, Value>) -> Option<String> + Send + Sync>;

/// How to run.
#[derive(Clone)]
pub struct ApplyOptions {
    /// Most steps in flight at once (at least 1).
    pub parallelism: usize,
    /// Keep partial progress on failure instead of rolling back.
    pub no_rollback: bool,
    pub propagation: PropagationPolicy,
    pub cloud_id: Option<CloudIdFn>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            parallelism: 10,
            no_rollback: false,
            propagation: PropagationPolicy::default(),
            cloud_id: None,
        }
    }
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("parallelism", &self.parallelism)
            .field("no_rollback", &self.no_rollback)
            .field("propagation", &self.propagation)
            .field("cloud_id", &self.cloud_id.is_some())
            .finish()
    }
}

/// Problems found before anything is sent; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] PlanShapeError),
    #[error("`{address}` has resource type `{type_name}`, which stackform does not manage")]
    UnknownType { address: String, type_name: String },
}

/// The result of a run.
#[derive(Debug)]
pub struct ApplyReport {
    pub summary: Summary,
    /// The state as recorded at the end (also on disk with durable persistence).
    pub state: StateFile,
    /// Set when state or journal could not be written; the journal then lists unrecorded steps.
    pub persistence_error: Option<String>,
    /// Whether the journal was removed (false after an abort or a persistence failure: the next
    /// run must call [`super::recover`] first).
    pub journal_cleared: bool,
}

struct Shared {
    pub provider: Arc<dyn Provider>,
    pub events: Arc<dyn EventSink>,
    pub interrupt: Interrupt,
    pub options: ApplyOptions,
}

/// Executes `plan` starting from `state`, recording through `persistence`, and reports how it
/// went. See the module documentation of [`crate::apply`] for the order, rollback and interrupts.
/// `registry` holds the specs of the plan's types (what waits for propagation, what a create may
/// adopt, what a rollback restores).
///
/// Step failures, interrupts and state-write failures are outcomes in the returned report, not
/// errors.
///
/// # Errors
///
/// [`ApplyError`] when the plan cannot be executed at all (it does not match `state`, names an
/// unknown type, or its replacement orders wait for each other); nothing was sent then.
#[expect(
    clippy::too_many_arguments,
    reason = "each is a separate collaborator of the run; a bundle would only rename them"
)]
pub async fn apply(
    plan: &ApplyPlan,
    state: StateFile,
    persistence: Persistence,
    provider: Arc<dyn Provider>,
    registry: &Registry,
    options: ApplyOptions,
    events: Arc<dyn EventSink>,
    interrupt: Interrupt,
) -> Result<ApplyReport, ApplyError> {
    let graph = opgraph::build(plan, &state)?;
    let mut types = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let Some(t) = ResourceType::parse(&step.resource_type) else {
            return Err(ApplyError::UnknownType {
                address: step.address.clone(),
                type_name: step.resource_type.clone(),
            });
        };
        types.push(t);
    }
    let mut map_types = Vec::with_capacity(plan.maps.len());
    for m in &plan.maps {
        let Some(t) = ResourceType::parse(&m.owner_type) else {
            return Err(ApplyError::UnknownType {
                address: m.address.clone(),
                type_name: m.owner_type.clone(),
            });
        };
        map_types.push(t);
    }
    // Every write of the run carries the stack's stamp, and nothing another stack stamped is
    // claimed or deleted (`ownership`).
    let provider = Owned::wrap(provider, owner_of(&state));
    let shared = Shared {
        provider,
        events,
        interrupt,
        options,
    };
    let run = Run {
        plan,
        registry,
        // Only what the plan's references read (a destroy resolves nothing: a delete sends the
        // recorded inputs), with the live values the refresh read, not a second copy of every record.
        known: KnownValues::for_plan(plan, &state),
        state,
        persist: persistence,
        types,
        map_types,
        history: Vec::new(),
        preserved: Vec::new(),
        records: Vec::new(),
        failure: None,
        persistence_error: None,
        unsettled: Vec::new(),
        changed: HashSet::new(),
        started: vec![false; graph.ops.len()],
        graph,
        shared,
    };
    Ok(run.execute().await)
}

/// The scheduler's queue: ops whose predecessors are all done and durable, highest priority first,
/// the steps in flight, and the journal commits queued but not yet known durable.
struct Queue {
    ready: BinaryHeap<(u32, Reverse<usize>)>,
    tasks: JoinSet<(usize, JobDone)>,
    task_ops: HashMap<tokio::task::Id, usize>,
    parallelism: usize,
    /// One waiter per journal commit the scheduler went on from without waiting (see
    /// [`Run::record_batch`]); a failure stops the run.
    commits: JoinSet<Result<(), PersistError>>,
}

/// What the provider kept of one resource before an update, with the request that names it.
struct Kept {
    address: String,
    resource_type: ResourceType,
    inputs: Map<String, Value>,
    id: Option<String>,
    kept: Preserved,
}

struct Run<'a> {
    plan: &'a ApplyPlan,
    registry: &'a Registry,
    graph: OpGraph,
    state: StateFile,
    known: KnownValues,
    persist: Persistence,
    types: Vec<ResourceType>,
    /// The owner type of each of `plan.maps`.
    map_types: Vec<ResourceType>,
    history: Vec<Done>,
    /// What the provider kept before each update of this run (a blob's snapshot), released when the
    /// run ends.
    preserved: Vec<Kept>,
    records: Vec<StepRecord>,
    failure: Option<FailureRecord>,
    persistence_error: Option<String>,
    /// Creates whose outcome is unknown; their journal intents stay open (see `JobDone::unsettled`).
    unsettled: Vec<String>,
    /// Addresses created or updated successfully in this run.
    changed: HashSet<String>,
    started: Vec<bool>,
    shared: Shared,
}

impl Run<'_> {
    async fn execute(mut self) -> ApplyReport {
        let begun = Instant::now();
        let parallelism = self.shared.options.parallelism.max(1);
        self.shared.events.emit(ApplyEvent::ApplyStarted {
            steps: self.graph.ops.len(),
            parallelism,
        });
        let mut indegree = self.graph.indegree.clone();
        let mut queue = Queue {
            ready: (0..self.graph.ops.len())
                .filter(|&i| indegree[i] == 0)
                .map(|i| (self.graph.priority[i], Reverse(i)))
                .collect(),
            tasks: JoinSet::new(),
            task_ops: HashMap::new(),
            parallelism,
            commits: JoinSet::new(),
        };
        let mut stopping = false;
        let mut seen_level = self.shared.interrupt.level();
        let mut aborted = false;
        if seen_level >= 1 {
            stopping = true;
        }
        if let Err(e) = self.persist.ensure_lineage(&mut self.state).await {
            self.persistence_error = Some(e.to_string());
            stopping = true;
        }
        loop {
            if !stopping {
                self.start_ready(&mut queue);
            }
            if queue.tasks.is_empty() {
                break;
            }
            let interrupt = self.shared.interrupt.clone();
            tokio::select! {
                Some(written) = queue.commits.join_next(), if !queue.commits.is_empty() => {
                    if !self.commit_written(written) {
                        stopping = true;
                    }
                }
                () = interrupt.reached(seen_level + 1) => {
                    seen_level = interrupt.level();
                    self.shared.events.emit(ApplyEvent::Interrupted {
                        level: seen_level,
                        in_flight: queue.tasks.len(),
                    });
                    stopping = true;
                    if seen_level >= 2 {
                        queue.tasks.abort_all();
                        aborted = true;
                        break;
                    }
                }
                Some(first) = queue.tasks.join_next_with_id() => {
                    let mut batch = vec![first];
                    while let Some(more) = queue.tasks.try_join_next_with_id() {
                        batch.push(more);
                    }
                    let mut finished = Vec::with_capacity(batch.len());
                    for joined in batch {
                        match joined {
                            Ok((id, (i, done))) => {
                                queue.task_ops.remove(&id);
                                finished.push((i, done));
                            }
                            Err(err) => {
                                let i = queue.task_ops.remove(&err.id());
                                if let Some(i) = i {
                                    finished.push((i, JobDone {
                                        step: None,
                                        inputs: Map::new(),
                                        duration: Duration::ZERO,
                                        result: Err(JobFailure {
                                            error: StepFailure::local(format!("the step's task stopped unexpectedly: {err}")),
                                            leftover: None,
                                            sent: true,
                                        }),
                                        previous: None,
                                        preserved: None,
                                        unsettled: false,
                                    }));
                                }
                            }
                        }
                    }
                    if !self
                        .record_batch(finished, &mut queue, &mut indegree, stopping)
                        .await
                    {
                        stopping = true;
                    }
                }
            }
        }
        // Whatever ended the loop, what was journaled is durable (or its failure known) before the
        // run goes on to roll back, checkpoint or report.
        self.drain_commits(&mut queue).await;
        drop(queue);

        let not_started: Vec<String> = (0..self.graph.ops.len())
            .filter(|&i| !self.started[i])
            .map(|i| self.graph.ops[i].address.clone())
            .collect();
        let mut rollback_records: Vec<RollbackRecord> = Vec::new();
        let mut not_restored: Vec<NotRestored> = Vec::new();
        let outcome = if aborted {
            Outcome::Aborted
        } else if seen_level >= 1 {
            // The user asked to stop: keep what was done, roll nothing back.
            Outcome::Interrupted
        } else if self.persistence_error.is_some() {
            // Nothing can be compensated if it cannot be recorded; the journal lists the rest.
            Outcome::Failed
        } else if self.failure.is_some() {
            if self.shared.options.no_rollback {
                Outcome::Failed
            } else {
                let failed = self
                    .failure
                    .as_ref()
                    .map(|f| f.address.clone())
                    .unwrap_or_default();
                let history = std::mem::take(&mut self.history);
                let cx = rollback::Context {
                    provider: self.shared.provider.as_ref(),
                    registry: self.registry,
                    events: self.shared.events.as_ref(),
                    interrupt: &self.shared.interrupt,
                };
                let result = rollback::run(
                    &cx,
                    &mut self.state,
                    &mut self.known,
                    &mut self.persist,
                    &failed,
                    history,
                )
                .await;
                rollback_records = result.records;
                not_restored = result.not_restored;
                if let Some(e) = result.persistence_error {
                    self.persistence_error.get_or_insert(e);
                }
                if result.aborted {
                    Outcome::Aborted
                } else if !self.unsettled.is_empty() {
                    // What may exist in the cloud is not known: not "rolled back".
                    Outcome::Failed
                } else {
                    Outcome::RolledBack
                }
            }
        } else {
            self.record_outputs().await;
            Outcome::Succeeded
        };

        // What was kept before the updates is no longer needed once the run is over, except where the
        // rollback could not restore from it (it then holds the only copy of the previous content).
        // An aborted run leaves it: it goes with its resource (a blob's delete includes its snapshots).
        if outcome != Outcome::Aborted {
            let keep: HashSet<&str> = not_restored.iter().map(|n| n.address.as_str()).collect();
            self.release_preserved(&keep).await;
        }

        // The state file becomes one document again: whatever the outcome, what was journaled is
        // checkpointed (unless recording already failed: then the journal keeps it).
        if self.persistence_error.is_none()
            && let Err(e) = self.persist.flush(&mut self.state).await
        {
            self.persistence_error = Some(e.to_string());
        }
        // Every step succeeded but the state file could not be written at the end: the run did not
        // record what it did (the journal keeps it), so it is not a success.
        let outcome = if outcome == Outcome::Succeeded && self.persistence_error.is_some() {
            Outcome::Failed
        } else {
            outcome
        };
        let summary = Summary {
            outcome,
            steps: self.records,
            failure: self.failure,
            rollback: rollback_records,
            not_restored,
            not_started,
            unsettled: std::mem::take(&mut self.unsettled),
            persistence_error: self.persistence_error.clone(),
            duration: begun.elapsed(),
        };
        self.shared
            .events
            .emit(ApplyEvent::Summary(summary.clone()));
        let journal_cleared = if outcome == Outcome::Aborted || self.persistence_error.is_some() {
            false
        } else {
            match self.persist.finish() {
                Ok(cleared) => cleared,
                Err(e) => {
                    self.persistence_error = Some(e.to_string());
                    false
                }
            }
        };
        ApplyReport {
            summary,
            state: self.state,
            persistence_error: self.persistence_error,
            journal_cleared,
        }
    }

    /// Makes the successors of the finished ops `released` ready once all their predecessors are.
    fn release(&self, released: &[usize], queue: &mut Queue, indegree: &mut [usize]) {
        for &i in released {
            for &next in &self.graph.successors[i] {
                indegree[next] -= 1;
                if indegree[next] == 0 {
                    queue.ready.push((self.graph.priority[next], Reverse(next)));
                }
            }
        }
    }

    /// Starts ready ops, highest priority first, while fewer than `parallelism` are in flight; each
    /// one's intent is queued in the journal now, behind what was queued before (see
    /// [`Job::queue_intent`]).
    fn start_ready(&mut self, queue: &mut Queue) {
        while queue.tasks.len() < queue.parallelism {
            let Some((_, Reverse(i))) = queue.ready.pop() else {
                break;
            };
            let mut job = self.job(i);
            job.queue_intent();
            self.started[i] = true;
            let handle = queue.tasks.spawn(async move { (i, job.run().await) });
            queue.task_ops.insert(handle.id(), i);
        }
    }

    /// Releases what the provider kept before this run's updates, but for the addresses in `keep`. A
    /// failure only leaves the kept copy behind (it goes with its resource); it is logged, not
    /// reported as a failure of the run.
    async fn release_preserved(&mut self, keep: &HashSet<&str>) {
        for k in std::mem::take(&mut self.preserved) {
            if keep.contains(k.address.as_str()) {
                continue;
            }
            let mut req = ResourceRequest::new(k.resource_type, k.address.clone(), k.inputs);
            req.cloud_id = k.id;
            if let Err(e) = self.shared.provider.release(&req, &k.kept).await {
                tracing::warn!(address = %k.address, error = %e, "could not remove what was kept before the update");
            }
        }
    }

    /// The job for op `i`, with its inputs resolved from the values known right now.
    fn job(&self, i: usize) -> Job {
        let op = &self.graph.ops[i];
        if let Some(phase) = op.map {
            return self.map_job(i, phase);
        }
        let step = &self.plan.steps[op.step];
        let resource_type = self.types[op.step];
        let prior_record = match op.kind {
            StepKind::Create => None,
            StepKind::Update | StepKind::Delete => self.state.resources.get(&op.state_key),
        };
        let mut unresolved = None;
        let inputs = match (op.kind, &step.desired) {
            (StepKind::Delete, _) => prior_record
                .map(|r| super::values::as_map(&r.inputs))
                .unwrap_or_default(),
            (_, Some(desired)) => self.known.resolve(desired).unwrap_or_else(|e| {
                unresolved = Some(e);
                Map::new()
            }),
            (_, None) => Map::new(),
        };
        let target = match (op.kind, prior_record) {
            (StepKind::Create, _) => self
                .shared
                .options
                .cloud_id
                .as_ref()
                .and_then(|f| f(resource_type, &inputs))
                .unwrap_or_default(),
            (_, Some(r)) => r.id.clone(),
            (_, None) => String::new(),
        };
        let waiting_for = if op.kind == StepKind::Delete {
            Vec::new()
        } else {
            step.desired
                .iter()
                .flat_map(|d| d.dependencies.iter())
                .filter(|dep| {
                    self.changed.contains(dep.as_str())
                        && self
                            .state
                            .resources
                            .get(dep.as_str())
                            .and_then(|r| self.registry.get(&r.resource_type))
                            .is_some_and(|spec| spec.waits_for_propagation())
                })
                .cloned()
                .collect()
        };
        Job {
            kind: op.kind,
            replace: op.replace.is_some(),
            address: op.address.clone(),
            resource_type,
            inputs,
            prior: prior_record.map(observed_of),
            target,
            waiting_for,
            adopt_existing: self
                .registry
                .get(&step.resource_type)
                .is_some_and(|spec| spec.arm.adopt_existing),
            owner: owner_of(&self.state),
            propagation: self.shared.options.propagation,
            provider: self.shared.provider.clone(),
            events: self.shared.events.clone(),
            journal: self.persist.journal(),
            queued: None,
            interrupt: self.shared.interrupt.clone(),
            unresolved,
            map: None,
        }
    }

    /// The map `plan.maps[index]` as it stands now: the owner and the entries its members' inputs give,
    /// resolved from the values known now (every member's create or update is done).
    fn resolve_map(&self, index: usize) -> Result<ResolvedMap, String> {
        let m = &self.plan.maps[index];
        let mut owner = m.owner.clone();
        let mut entries = BTreeMap::new();
        let mut keys = Vec::new();
        for address in &m.members {
            let Some(step) = self.plan.steps.iter().find(|s| &s.address == address) else {
                continue;
            };
            let Some(desired) = &step.desired else {
                continue;
            };
            let Some((field, spec, agg)) = self
                .registry
                .get(&step.resource_type)
                .and_then(|spec| spec.aggregates().find(|(f, _, _)| *f == m.field))
            else {
                continue;
            };
            let inputs = self.known.resolve(desired).map_err(|e| e.to_string())?;
            let text = |name: &str| {
                inputs
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("`{address}` has no `{name}` to place its `{field}` by"))
            };
            let key = text(&agg.key)?;
            owner = Some(text(&agg.owner)?);
            let share = inputs
                .get(field)
                .filter(|v| !v.is_null())
                .or(spec.default.as_ref())
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if share > 0 {
                entries.insert(key.clone(), share);
            }
            keys.push((address.clone(), key));
        }
        keys.extend(m.leaving.iter().cloned());
        let owner = owner.ok_or_else(|| format!("the owner of `{}` is unknown", m.address))?;
        Ok(ResolvedMap {
            owner,
            entries,
            keys,
        })
    }

    /// The job of map op `i`: the whole map of its phase.
    fn map_job(&self, i: usize, phase: MapPhase) -> Job {
        let op = &self.graph.ops[i];
        let m = &self.plan.maps[op.step];
        let owner_type = self.map_types[op.step];
        let (request, unresolved) = match self.resolve_map(op.step) {
            Ok(resolved) => {
                let entries = match phase {
                    MapPhase::Interim => m.interim.clone().unwrap_or_default(),
                    MapPhase::Final => resolved.entries,
                };
                (Some(m.request(owner_type, &resolved.owner, entries)), None)
            }
            Err(message) => (None, Some(ResolveError::Map(message))),
        };
        Job {
            kind: op.kind,
            replace: false,
            address: op.address.clone(),
            resource_type: owner_type,
            inputs: Map::new(),
            prior: None,
            target: String::new(),
            waiting_for: Vec::new(),
            adopt_existing: false,
            owner: owner_of(&self.state),
            propagation: self.shared.options.propagation,
            provider: self.shared.provider.clone(),
            events: self.shared.events.clone(),
            journal: None,
            queued: None,
            interrupt: self.shared.interrupt.clone(),
            unresolved,
            map: request,
        }
    }

    /// Records a map op that succeeded: the members' entries in state, and the map it replaced for a
    /// rollback.
    fn record_map(&mut self, i: usize, previous: BTreeMap<String, u64>) {
        let op = self.graph.ops[i].clone();
        let Ok(resolved) = self.resolve_map(op.step) else {
            return;
        };
        let m = &self.plan.maps[op.step];
        let entries = match op.map {
            Some(MapPhase::Interim) => m.interim.clone().unwrap_or_default(),
            _ => resolved.entries,
        };
        rollback::record_entries(
            m,
            &mut self.state,
            &mut self.known,
            &resolved.keys,
            &entries,
        );
        self.history.push(Done::MapSet {
            address: op.address.clone(),
            map: m.clone(),
            owner: resolved.owner,
            keys: resolved.keys,
            owner_type: self.map_types[op.step],
            previous,
        });
    }

    /// Records finished steps in state (one write for the batch), emits their events and makes
    /// the successors of those that succeeded ready (none once a step failed). Returns false when
    /// the run must stop because the state could not be written.
    ///
    /// When the batch's record is a journal commit (not a checkpoint) and the run goes on (not
    /// `stopping`, no step failed), the commit is only queued, the successors are made ready and
    /// the freed slots are filled at once: the intents of the steps started then are queued behind
    /// the commit, so the one group write that makes an intent durable — which a step waits for
    /// before it sends anything — makes the commit durable too. A step therefore never reaches the
    /// cloud before the record of what it depends on is durable, and the commit and the intents
    /// after it share one fsync. The batch's events are emitted before any step starts in its
    /// place.
    async fn record_batch(
        &mut self,
        finished: Vec<(usize, JobDone)>,
        queue: &mut Queue,
        indegree: &mut [usize],
        stopping: bool,
    ) -> bool {
        let mut released = Vec::new();
        let mut steps: Vec<StepId> = Vec::new();
        let mut events = Vec::with_capacity(finished.len());
        let mut touched = Touched::default();
        for (i, done) in finished {
            let op = self.graph.ops[i].clone();
            if done.unsettled {
                // The journal keeps the intent open: the next run reads the cloud to settle it.
                self.unsettled.push(op.address.clone());
            } else {
                steps.extend(done.step);
            }
            if let Some(kept) = done.preserved.clone() {
                self.preserved.push(Kept {
                    address: op.address.clone(),
                    resource_type: self.types[op.step],
                    inputs: done.inputs.clone(),
                    id: self
                        .state
                        .resources
                        .get(&op.state_key)
                        .map(|r| r.id.clone()),
                    kept,
                });
            }
            for key in [&op.address, &op.state_key, &deposed_key(&op.address)] {
                touched.watch(&self.state, key);
            }
            // A map op records its entries in its members' records.
            if op.map.is_some()
                && let Ok(resolved) = self.resolve_map(op.step)
            {
                for (member, _) in &resolved.keys {
                    touched.watch(&self.state, member);
                }
            }
            let result = match done.result {
                Ok(_) if op.map.is_some() => {
                    self.record_map(i, done.previous.unwrap_or_default());
                    released.push(i);
                    StepResult::Succeeded
                }
                Ok(observed) => {
                    self.record_success(i, observed, done.inputs, done.preserved);
                    released.push(i);
                    StepResult::Succeeded
                }
                Err(failure) => {
                    // A step that failed before it was sent changed nothing to undo or distrust.
                    if op.map.is_none() && failure.sent {
                        self.record_failure(i, failure.leftover, done.inputs, done.preserved);
                    }
                    if self.failure.is_none() {
                        self.failure = Some(FailureRecord {
                            address: op.address.clone(),
                            kind: op.kind,
                            error: failure.error.clone(),
                        });
                    }
                    StepResult::Failed {
                        error: failure.error,
                    }
                }
            };
            self.records.push(StepRecord {
                address: op.address.clone(),
                kind: op.kind,
                replace: op.replace.is_some(),
                duration: done.duration,
                result: result.clone(),
            });
            events.push(ApplyEvent::StepFinished {
                address: op.address,
                kind: op.kind,
                replace: op.replace.is_some(),
                duration: done.duration,
                result,
            });
        }
        let commit = self.persist.start_commit(&mut self.state, steps, &touched);
        let overlap = commit.is_under_way() && !stopping && self.failure.is_none();
        if overlap {
            // Reported before any step starts in their place, so progress reads in order.
            for event in events {
                self.shared.events.emit(event);
            }
            self.release(&released, queue, indegree);
            self.start_ready(queue);
            // The scheduler does not wait for the commit: the steps just started wait for their
            // intents, queued behind it, so none of them sends anything before the commit is
            // durable; steps that finish meanwhile are recorded in the next commit, queued behind
            // this one. A waiter of its own makes it durable when no intent follows it.
            queue.commits.spawn(commit.durable());
            return true;
        }
        // Alone (a checkpoint, or the run is stopping): every commit queued before is durable first.
        if !self.drain_commits(queue).await {
            return false;
        }
        let written = self.persist.finish_commit(&mut self.state, commit).await;
        for event in events {
            self.shared.events.emit(event);
        }
        if let Err(e) = written {
            self.persistence_error.get_or_insert_with(|| e.to_string());
            return false;
        }
        if self.failure.is_none() {
            self.release(&released, queue, indegree);
        }
        true
    }

    /// Takes the answer of a commit's waiter; false when the commit could not be made durable (the
    /// run must stop).
    fn commit_written(
        &mut self,
        written: Result<Result<(), PersistError>, tokio::task::JoinError>,
    ) -> bool {
        let failed = match written {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e.to_string(),
            Err(e) => PersistError::StateWriter(e).to_string(),
        };
        self.persistence_error.get_or_insert(failed);
        false
    }

    /// Waits until every commit queued without waiting is durable; false when one failed.
    async fn drain_commits(&mut self, queue: &mut Queue) -> bool {
        let mut ok = true;
        while let Some(written) = queue.commits.join_next().await {
            ok &= self.commit_written(written);
        }
        ok
    }

    fn record_success(
        &mut self,
        i: usize,
        observed: Option<Observed>,
        sent: Map<String, Value>,
        preserved: Option<Preserved>,
    ) {
        let op = self.graph.ops[i].clone();
        let step = &self.plan.steps[op.step];
        match (op.kind, observed) {
            (StepKind::Create | StepKind::Update, Some(observed)) => {
                let desired = step.desired.as_ref();
                let inputs = if desired.is_some() {
                    sent
                } else {
                    observed.inputs.clone()
                };
                let mut record = ResourceState::new(
                    step.resource_type.clone(),
                    observed.id.clone(),
                    Value::Object(inputs.clone()),
                    Value::Object(observed.outputs.clone()),
                );
                if let Some(d) = desired {
                    record.dependencies = d.dependencies.clone();
                    record.content_hash = d.content_hash.clone();
                    record.sensitive = d.sensitive.clone();
                }
                if op.replace == Some(ReplaceOrder::CreateBeforeDelete)
                    && let Some(old) = self.state.resources.shift_remove(&op.address)
                {
                    self.state.record(deposed_key(&op.address), old);
                }
                let prior = self.state.resources.get(&op.address).cloned();
                self.state.record(op.address.clone(), record);
                self.known.set(
                    &op.address,
                    Known {
                        id: observed.id,
                        inputs: Value::Object(inputs),
                        outputs: Value::Object(observed.outputs),
                    },
                );
                self.changed.insert(op.address.clone());
                let live = self.live_inputs(&op.address);
                self.history.push(match (op.kind, prior) {
                    (StepKind::Update, Some(prior)) => Done::Updated {
                        live,
                        address: op.address,
                        prior,
                        preserved,
                    },
                    _ => Done::Created {
                        address: op.address,
                    },
                });
            }
            (StepKind::Delete, _) | (_, None) => {
                let prior = self.state.resources.shift_remove(&op.state_key);
                if op.replace.is_none() {
                    self.known.remove(&op.address);
                }
                if let Some(prior) = prior {
                    let live = self.live_inputs(&op.address);
                    self.history.push(Done::Deleted {
                        live,
                        address: op.address,
                        state_key: op.state_key,
                        prior,
                    });
                }
            }
        }
    }

    fn record_failure(
        &mut self,
        i: usize,
        leftover: Option<Observed>,
        sent: Map<String, Value>,
        preserved: Option<Preserved>,
    ) {
        let op = self.graph.ops[i].clone();
        let step = &self.plan.steps[op.step];
        match op.kind {
            StepKind::Create => {
                let Some(left) = leftover else {
                    return;
                };
                if op.replace == Some(ReplaceOrder::CreateBeforeDelete)
                    && let Some(old) = self.state.resources.shift_remove(&op.address)
                {
                    self.state.record(deposed_key(&op.address), old);
                }
                let inputs = if sent.is_empty() { left.inputs } else { sent };
                let mut record = ResourceState::new(
                    step.resource_type.clone(),
                    left.id,
                    Value::Object(inputs),
                    Value::Object(left.outputs),
                );
                record.status = ResourceStatus::Tainted;
                if let Some(d) = &step.desired {
                    record.dependencies = d.dependencies.clone();
                    record.content_hash = d.content_hash.clone();
                    record.sensitive = d.sensitive.clone();
                }
                self.state.record(op.address.clone(), record);
                self.history.push(Done::Created {
                    address: op.address,
                });
            }
            StepKind::Update => {
                if let Some(prior) = self.state.resources.get(&op.address).cloned() {
                    self.state.taint(&op.address);
                    let live = self.live_inputs(&op.address);
                    self.history.push(Done::Updated {
                        live,
                        address: op.address,
                        prior,
                        preserved,
                    });
                }
            }
            // The object is still recorded as it was; a later plan deletes it again.
            StepKind::Delete => {}
        }
    }

    /// The inputs the refresh read of `address` before the run, which a rollback of its update or
    /// delete sends back.
    fn live_inputs(&self, address: &str) -> Option<Map<String, Value>> {
        self.plan.refreshed.get(address).map(|r| r.inputs.clone())
    }

    /// Records the stack's outputs (those whose values are known) after a successful run.
    async fn record_outputs(&mut self) {
        let mut outputs = indexmap::IndexMap::new();
        if !self.plan.destroy {
            for (name, expr) in &self.plan.outputs {
                let lookup = |r: &crate::stack::Reference| self.known.lookup(r);
                if let Some(value) = expr.resolve(&lookup) {
                    outputs.insert(name.clone(), value);
                }
            }
        }
        if outputs == self.state.outputs {
            return;
        }
        self.state.outputs = outputs;
        if let Err(e) = self.persist.checkpoint(&mut self.state, Vec::new()).await {
            self.persistence_error.get_or_insert_with(|| e.to_string());
        }
    }
}
