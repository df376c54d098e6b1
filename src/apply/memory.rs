//! An in-memory cloud behind the [`Provider`] trait, for the engine's tests and benchmarks.
//!
//! Objects live in a map keyed by a deterministic id (`mem:/<type>/<name>`); computed outputs are
//! derived from the id, so a re-created object gets the same values. Latency, failures at chosen
//! addresses, half-finished creates, steps that never answer (to simulate a crash), and a
//! deployment that is denied storage access for its first attempts can all be configured.
//! Maps made of `aggregate` entries (an endpoint's traffic) are kept as Azure keeps them, whole: a map
//! must add up to 100 or 0 and name existing members, and a member holding an entry cannot be deleted. Every
//! call is logged with its start and end so tests can check order and parallelism.
//!
//! It is a test double: it never touches the network or the disk and must never be used to
//! manage real resources.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::provider::{
    ErrorKind, MapRequest, Observed, ProgressEvent, Provider, ProviderError, ProviderFuture,
    ResourceRequest, ResourceType,
};
use crate::specs::Registry;

/// A provider operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    Read,
    Create,
    Update,
    Delete,
    /// A map set whole (an endpoint's traffic); logged under the map step's address with the
    /// entries as inputs.
    SetMap,
}

/// One logged call boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub kind: CallKind,
    pub address: String,
    /// True for the start of the call, false for its end.
    pub start: bool,
    /// The inputs the call was given.
    pub inputs: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Failure {
    error: ProviderError,
    /// How many more times to fail (`None`: always).
    remaining: Option<u32>,
    /// For creates: store the object before failing (a create that failed halfway).
    leave_behind: bool,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<String, Observed>,
    failures: HashMap<(CallKind, String), Failure>,
    stall: HashSet<(CallKind, String)>,
    deny: HashMap<String, u32>,
    log: Vec<Call>,
    in_flight: usize,
    max_in_flight: usize,
    counts: HashMap<CallKind, usize>,
    /// Maps made of `aggregate` entries, by (owner type, owner name).
    maps: HashMap<(ResourceType, String), BTreeMap<String, u64>>,
}

/// The in-memory cloud.
#[derive(Debug, Default)]
pub struct MemoryProvider {
    inner: Mutex<Inner>,
    latency: Duration,
    log_calls: bool,
    registry: Option<Registry>,
}

impl MemoryProvider {
    /// No latency; calls are logged.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            latency: Duration::ZERO,
            log_calls: true,
            registry: Registry::embedded().ok(),
        }
    }

    /// Every create, update and delete takes `latency` (reads take none).
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Stops logging call boundaries (benchmarks with many calls).
    #[must_use]
    pub fn without_log(mut self) -> Self {
        self.log_calls = false;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `kind` on `address` fails with `error` every time.
    pub fn fail(&self, kind: CallKind, address: &str, error: ProviderError) {
        self.add_failure(kind, address, error, None, false);
    }

    /// `kind` on `address` fails with `error` the next `times` times.
    #[cfg(test)]
    pub(crate) fn fail_times(
        &self,
        kind: CallKind,
        address: &str,
        error: ProviderError,
        times: u32,
    ) {
        self.add_failure(kind, address, error, Some(times), false);
    }

    /// A create of `address` stores the object and then fails (a create that failed halfway).
    #[cfg(test)]
    pub(crate) fn fail_after_create(&self, address: &str, error: ProviderError) {
        self.add_failure(CallKind::Create, address, error, None, true);
    }

    fn add_failure(
        &self,
        kind: CallKind,
        address: &str,
        error: ProviderError,
        remaining: Option<u32>,
        leave_behind: bool,
    ) {
        self.lock().failures.insert(
            (kind, address.to_owned()),
            Failure {
                error,
                remaining,
                leave_behind,
            },
        );
    }

    /// `kind` on `address` does its work in the cloud and then never answers (the process
    /// "dies" while waiting for it).
    #[cfg(test)]
    pub(crate) fn stall(&self, kind: CallKind, address: &str) {
        self.lock().stall.insert((kind, address.to_owned()));
    }

    /// The first `attempts` creates of the deployment at `address` end `Failed` because its
    /// identity is denied storage access (a role assignment that has not propagated).
    #[cfg(test)]
    pub(crate) fn deny_storage_until(&self, address: &str, attempts: u32) {
        self.lock().deny.insert(address.to_owned(), attempts);
    }

    /// Puts an object in the cloud directly.
    pub fn insert(&self, object: Observed) {
        self.lock().objects.insert(object.id.clone(), object);
    }

    /// Removes an object from the cloud directly (an out-of-band delete).
    pub fn remove(&self, id: &str) -> Option<Observed> {
        self.lock().objects.remove(id)
    }

    /// The object with this id.
    pub fn get(&self, id: &str) -> Option<Observed> {
        self.lock().objects.get(id).cloned()
    }

    /// Every object, sorted by id.
    pub fn objects(&self) -> Vec<Observed> {
        let mut v: Vec<Observed> = self.lock().objects.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every call boundary, in order.
    pub fn log(&self) -> Vec<Call> {
        self.lock().log.clone()
    }

    /// Forgets the logged calls and counts (not the objects).
    #[cfg(test)]
    pub(crate) fn clear_log(&self) {
        let mut inner = self.lock();
        inner.log.clear();
        inner.counts.clear();
        inner.max_in_flight = 0;
    }

    /// Addresses of the calls of `kind` that started, in order.
    pub fn started(&self, kind: CallKind) -> Vec<String> {
        self.lock()
            .log
            .iter()
            .filter(|c| c.start && c.kind == kind)
            .map(|c| c.address.clone())
            .collect()
    }

    /// How many calls of `kind` were made.
    pub fn count(&self, kind: CallKind) -> usize {
        self.lock().counts.get(&kind).copied().unwrap_or(0)
    }

    /// The most create/update/delete calls that were running at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// The deterministic id of a resource: `mem:/<type>/<name>`, or, for a type without a `name`
    /// input (a role assignment), `mem:/<type>/<address>-<digest of the inputs>` — like Azure's
    /// role-assignment names, which are derived from scope, role and principal.
    pub(crate) fn id_for(
        resource_type: ResourceType,
        address: &str,
        inputs: &Map<String, Value>,
    ) -> String {
        match inputs.get("name").and_then(Value::as_str) {
            Some(name) => format!("mem:/{resource_type}/{name}"),
            None => {
                let digest = Value::Object(inputs.clone())
                    .to_string()
                    .bytes()
                    .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
                format!("mem:/{resource_type}/{address}-{digest:08x}")
            }
        }
    }

    /// Computed outputs: every attribute the type's spec declares (nested for dotted names),
    /// derived from the id so they are the same each time the object is created. The hash of stored
    /// content (the spec's `content_hash` attribute) is left out: the in-memory cloud keeps no content.
    fn outputs(&self, resource_type: ResourceType, id: &str) -> Map<String, Value> {
        let tag: String = id
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            .to_string();
        let mut out = Value::Object(Map::new());
        let names: Vec<String> = self
            .registry
            .as_ref()
            .and_then(|r| r.get(resource_type.as_str()))
            .map(|spec| {
                let stored = spec.stored_content().map(|(_, attr)| attr);
                spec.attributes
                    .keys()
                    .filter(|name| Some(name.as_str()) != stored)
                    .cloned()
                    .collect()
            })
            .unwrap_or_else(|| vec![String::from("id")]);
        for name in names {
            let value = match name.as_str() {
                "id" => json!(id),
                "provisioning_state" => json!("Succeeded"),
                n if n.ends_with("uri") || n.ends_with("url") || n.ends_with("endpoint") => {
                    json!(format!("https://{tag}.local/{n}"))
                }
                n => json!(format!("{n}-{tag}")),
            };
            set_path(&mut out, &name, value);
        }
        match out {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The map of an owner, as set so far.
    pub fn map(&self, owner_type: ResourceType, owner: &str) -> BTreeMap<String, u64> {
        self.lock()
            .maps
            .get(&(owner_type, owner.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// For a resource holding `aggregate` entries: (field, owner type, owner, key) of each.
    fn entries_of(
        &self,
        resource_type: ResourceType,
        inputs: &Map<String, Value>,
    ) -> Vec<(String, ResourceType, String, String)> {
        let Some(spec) = self
            .registry
            .as_ref()
            .and_then(|r| r.get(resource_type.as_str()))
        else {
            return Vec::new();
        };
        spec.aggregates()
            .filter_map(|(field, _, agg)| {
                let owner_type = spec.fields.get(&agg.owner)?.parent_ref.as_deref()?;
                Some((
                    field.to_owned(),
                    ResourceType::parse(owner_type)?,
                    inputs.get(&agg.owner)?.as_str()?.to_owned(),
                    inputs.get(&agg.key)?.as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    /// The object as the cloud reports it: each `aggregate` entry read from its owner's map.
    fn with_entries(&self, mut object: Observed, resource_type: ResourceType) -> Observed {
        for (field, owner_type, owner, key) in self.entries_of(resource_type, &object.inputs) {
            let share = self.map(owner_type, &owner).get(&key).copied().unwrap_or(0);
            object.inputs.insert(field, json!(share));
        }
        object
    }

    fn begin(&self, kind: CallKind, req: &ResourceRequest) -> Option<Failure> {
        let mut inner = self.lock();
        *inner.counts.entry(kind).or_default() += 1;
        if kind != CallKind::Read {
            inner.in_flight += 1;
            inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        }
        if self.log_calls {
            inner.log.push(Call {
                kind,
                address: req.address.clone(),
                start: true,
                inputs: req.inputs.clone(),
            });
        }
        let key = (kind, req.address.clone());
        let failure = inner.failures.get(&key).cloned();
        if let Some(f) = inner.failures.get_mut(&key)
            && let Some(n) = &mut f.remaining
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.failures.remove(&key);
            }
        }
        failure
    }

    fn end(&self, kind: CallKind, req: &ResourceRequest) {
        let mut inner = self.lock();
        if kind != CallKind::Read {
            inner.in_flight = inner.in_flight.saturating_sub(1);
        }
        if self.log_calls {
            inner.log.push(Call {
                kind,
                address: req.address.clone(),
                start: false,
                inputs: Map::new(),
            });
        }
    }

    fn stalls(&self, kind: CallKind, address: &str) -> bool {
        self.lock().stall.contains(&(kind, address.to_owned()))
    }

    async fn put(&self, kind: CallKind, req: &ResourceRequest) -> Result<Observed, ProviderError> {
        let failure = self.begin(kind, req);
        if let Some(sink) = &req.progress {
            sink(ProgressEvent {
                address: req.address.clone(),
                status: String::from(if kind == CallKind::Create {
                    "Creating"
                } else {
                    "Updating"
                }),
            });
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let id = match (&req.cloud_id, kind) {
            (Some(id), CallKind::Update) => id.clone(),
            _ => Self::id_for(req.resource_type, &req.address, &req.inputs),
        };
        let object = Observed {
            id: id.clone(),
            inputs: req.inputs.clone(),
            outputs: self.outputs(req.resource_type, &id),
            owner: req.owner.clone(),
        };
        if let Some(f) = &failure {
            if f.leave_behind {
                self.insert(object);
            }
            self.end(kind, req);
            return Err(f.error.clone());
        }
        let denied = {
            let mut inner = self.lock();
            match inner.deny.get_mut(&req.address) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        self.insert(object.clone());
        if denied {
            self.end(kind, req);
            return Err(ProviderError::new(
                ErrorKind::Failed,
                "init() failed: 403 AuthorizationPermissionMismatch: this request is not authorized to perform this operation using this permission",
            )
            .with_code("DeploymentFailed"));
        }
        if self.stalls(kind, &req.address) {
            std::future::pending::<()>().await;
        }
        self.end(kind, req);
        Ok(self.with_entries(object, req.resource_type))
    }
}

impl Provider for MemoryProvider {
    fn set_map<'a>(&'a self, req: &'a MapRequest) -> ProviderFuture<'a, BTreeMap<String, u64>> {
        Box::pin(self.put_map(req))
    }

    fn read<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<Observed>> {
        Box::pin(async move {
            let failure = self.begin(CallKind::Read, req);
            let id = req
                .cloud_id
                .clone()
                .unwrap_or_else(|| Self::id_for(req.resource_type, &req.address, &req.inputs));
            let found = self
                .get(&id)
                .map(|o| self.with_entries(o, req.resource_type));
            self.end(CallKind::Read, req);
            match failure {
                Some(f) => Err(f.error),
                None => Ok(found),
            }
        })
    }

    fn create<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Observed> {
        Box::pin(self.put(CallKind::Create, req))
    }

    fn update<'a>(
        &'a self,
        _prior: &'a Observed,
        req: &'a ResourceRequest,
    ) -> ProviderFuture<'a, Observed> {
        Box::pin(self.put(CallKind::Update, req))
    }

    fn delete<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let failure = self.begin(CallKind::Delete, req);
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            if let Some(f) = failure {
                self.end(CallKind::Delete, req);
                return Err(f.error);
            }
            let id = req
                .cloud_id
                .clone()
                .unwrap_or_else(|| Self::id_for(req.resource_type, &req.address, &req.inputs));
            let inputs = self.get(&id).map(|o| o.inputs).unwrap_or_default();
            for (_, owner_type, owner, key) in self.entries_of(req.resource_type, &inputs) {
                if self
                    .map(owner_type, &owner)
                    .get(&key)
                    .is_some_and(|s| *s > 0)
                {
                    self.end(CallKind::Delete, req);
                    return Err(ProviderError::new(
                        ErrorKind::Invalid,
                        format!("{key} still has a share of {owner}'s map"),
                    ));
                }
            }
            self.remove(&id);
            if self.stalls(CallKind::Delete, &req.address) {
                std::future::pending::<()>().await;
            }
            self.end(CallKind::Delete, req);
            Ok(())
        })
    }
}

impl MemoryProvider {
    async fn put_map(&self, req: &MapRequest) -> Result<BTreeMap<String, u64>, ProviderError> {
        let call = ResourceRequest::new(
            req.owner_type,
            req.address.clone(),
            req.entries
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        );
        let failure = self.begin(CallKind::SetMap, &call);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let result = match failure {
            Some(f) => Err(f.error),
            None => self.check_map(req),
        };
        if result.is_ok() {
            let entries = req.entries.iter().filter(|(_, v)| **v > 0);
            let entries = entries.map(|(k, v)| (k.clone(), *v)).collect();
            let key = (req.owner_type, req.owner.clone());
            let previous = self.lock().maps.insert(key, entries);
            self.end(CallKind::SetMap, &call);
            return Ok(previous.unwrap_or_default());
        }
        self.end(CallKind::SetMap, &call);
        result.map(|()| BTreeMap::new())
    }

    /// A whole map adds up to 100 or 0 and names only members that exist.
    fn check_map(&self, req: &MapRequest) -> Result<(), ProviderError> {
        let total: u64 = req.entries.values().sum();
        if total != 0 && total != 100 {
            return Err(ProviderError::new(
                ErrorKind::Invalid,
                format!("the map of {} adds up to {total}", req.owner),
            ));
        }
        let objects = self.objects();
        for (key, share) in &req.entries {
            let exists = objects.iter().any(|o| {
                ResourceType::ALL.into_iter().any(|t| {
                    self.entries_of(t, &o.inputs)
                        .iter()
                        .any(|(_, ot, owner, k)| {
                            *ot == req.owner_type && *owner == req.owner && k == key
                        })
                        && o.id.starts_with(&format!("mem:/{t}/"))
                })
            });
            if *share > 0 && !exists {
                return Err(ProviderError::new(
                    ErrorKind::Invalid,
                    format!("the map of {} names {key}, which does not exist", req.owner),
                ));
            }
        }
        Ok(())
    }
}

/// Sets `value` at a dotted path, creating objects on the way.
fn set_path(target: &mut Value, path: &str, value: Value) {
    let mut cur = target;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Value::Object(map) = cur else {
            return;
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        cur = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
