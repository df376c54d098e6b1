//! What the engine is asked to execute: one [`PlannedStep`] per resource with its planned action,
//! the desired inputs still as expressions (references resolve when the step starts), and the
//! desired dependencies. The prior side of every change comes from the state the run starts from.
//!
//! This is the planner's `Plan` reduced to what execution needs; it holds no I/O and never decides
//! anything itself (the action is taken as given).

use std::collections::{BTreeMap, HashMap, HashSet};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diag::{SourceFile, Span};
use crate::plan::{Action, DesiredExtras, Live, Plan, PlanMode, content_hash_record};
use crate::specs::Registry;
use crate::stack::{Expr, ExprKind, Loc, Resource, Stack};
use crate::state::{FieldPath, StateFile};

/// The desired side of a resource: its inputs as written (references unresolved) and what it
/// depends on in the desired graph.
#[derive(Debug, Clone)]
pub struct Desired {
    pub inputs: IndexMap<String, Expr>,
    /// Direct prerequisites in the desired graph (references, `depends_on`, inferred edges).
    pub dependencies: Vec<String>,
    /// Hash of local content the inputs name (a blob's `source`), recorded in state.
    pub content_hash: Option<String>,
    /// Paths of inputs and outputs that are secret, recorded in state so they are stored as markers.
    pub sensitive: Vec<FieldPath>,
}

impl Desired {
    /// Desired inputs that are plain values (no references), for callers that already resolved them.
    pub fn from_json(inputs: Map<String, Value>, dependencies: Vec<String>) -> Self {
        Self {
            inputs: inputs
                .into_iter()
                .map(|(k, v)| (k, literal_expr(&v)))
                .collect(),
            dependencies,
            content_hash: None,
            sensitive: Vec::new(),
        }
    }
}

/// One resource's planned change.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// The resource's address: its key in the stack, or in state for a resource removed from it.
    pub address: String,
    /// Type name as in `specs/`.
    pub resource_type: String,
    /// The planner's action; a replacement runs as its two halves in the planned order.
    pub action: Action,
    /// Required for `Create`, `Update` and `Replace`; unused for `Delete`. For `NoOp` it is optional.
    pub desired: Option<Desired>,
}

/// One owner's map to set (an endpoint's traffic map), as its own step: after the creates and
/// updates of its members, before the deletes of `releases`. See `plan::maps`. The map itself is made
/// when the step starts, from the members' resolved inputs, so an owner, key or share that was known
/// only after apply at plan time is known by then.
#[derive(Debug, Clone)]
pub struct PlannedMap {
    /// The step's address: the owner's address and the members' field (`endpoint.traffic`).
    pub address: String,
    /// The owner's type.
    pub owner_type: String,
    /// ARM path of the map in the owner's body.
    pub map: String,
    /// The members' field (`traffic`).
    pub field: String,
    /// The map set first, before the deletes, when a member holding a share is replaced.
    pub interim: Option<BTreeMap<String, u64>>,
    /// The owner's name when it leaves with its members (a deletion has no desired inputs to give it).
    pub owner: Option<String>,
    /// The owner's address, when the plan holds it: the map waits for its create or update.
    pub owner_address: Option<String>,
    /// Members of the stack: the map waits for their creates and updates and is made of their entries.
    pub members: Vec<String>,
    /// Members leaving the stack, with their key: the map leaves them out, and state records that.
    pub leaving: Vec<(String, String)>,
    /// Members whose delete waits for the map.
    pub releases: Vec<String>,
}

/// A map as a step computes it: whose it is and its entries, with each member's key.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedMap {
    pub owner: String,
    pub entries: BTreeMap<String, u64>,
    /// (member address, key).
    pub keys: Vec<(String, String)>,
}

impl PlannedMap {
    /// The request that puts `entries` as the whole map.
    pub(crate) fn request(
        &self,
        owner_type: crate::provider::ResourceType,
        owner: &str,
        entries: BTreeMap<String, u64>,
    ) -> crate::provider::MapRequest {
        crate::provider::MapRequest {
            address: self.address.clone(),
            owner_type,
            owner: owner.to_owned(),
            map: self.map.clone(),
            entries,
            progress: None,
        }
    }
}

/// A resource as the refresh before the plan read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refreshed {
    pub id: String,
    /// The live inputs, as the provider's read maps them back to the stack's field names (kept for a
    /// resource the plan updates, deletes or replaces; empty otherwise, see
    /// [`ApplyPlan::with_refreshed`]).
    pub inputs: Map<String, Value>,
    /// The live computed attributes.
    pub outputs: Value,
}

/// A plan ready to execute.
#[derive(Debug, Clone, Default)]
pub struct ApplyPlan {
    pub steps: Vec<PlannedStep>,
    /// Maps to set, each its own step (only those that change).
    pub maps: Vec<PlannedMap>,
    /// Stack outputs to record in state after a successful run (sensitive outputs must be left out
    /// by the caller).
    pub outputs: IndexMap<String, Expr>,
    /// A destroy run: state's stack outputs are cleared at the end.
    pub destroy: bool,
    /// What the refresh read, by address (empty without a refresh). A reference to a resource the run
    /// does not change resolves against these values, as the plan did, not against outputs recorded in
    /// state that may be stale (an endpoint that moved); a rollback of an update sends back the inputs
    /// that were live before the run, not those recomputed from local files that may have changed.
    pub refreshed: HashMap<String, Refreshed>,
}

impl ApplyPlan {
    /// The plan of `stackform destroy`: every resource recorded in state is deleted, in reverse
    /// dependency order (the order comes from the dependencies recorded in state).
    pub fn destroy(state: &StateFile) -> Self {
        Self {
            steps: state
                .resources
                .iter()
                .map(|(address, r)| PlannedStep {
                    address: address.clone(),
                    resource_type: r.resource_type.clone(),
                    action: Action::Delete,
                    desired: None,
                })
                .collect(),
            maps: Vec::new(),
            outputs: IndexMap::new(),
            destroy: true,
            refreshed: HashMap::new(),
        }
    }

    /// The same plan with what the refresh read (`live`, the snapshot's; see
    /// [`ApplyPlan::refreshed`]), kept only where the run needs it, so a large stack does not hold a
    /// second copy of every resource for the whole run: the id and outputs of a resource whose live
    /// ones differ from those `recorded` (the state the plan was made against), and the live inputs
    /// of a resource the plan updates, deletes or replaces (what its rollback restores). What is kept
    /// is moved out of `live`, not copied.
    #[must_use]
    pub fn with_refreshed(mut self, live: HashMap<String, Live>, recorded: &StateFile) -> Self {
        let changed: HashSet<&str> = self
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s.action,
                    Action::Update | Action::Delete | Action::Replace(_)
                )
            })
            .map(|s| s.address.as_str())
            .collect();
        // Sized up front: grown by doubling, a destroy's map (every resource) was held twice over
        // while it grew, at the engine's peak memory.
        let mut refreshed = HashMap::with_capacity(changed.len());
        for (address, live) in live {
            let Live::Present {
                id,
                inputs,
                outputs,
                ..
            } = live
            else {
                continue;
            };
            let change = changed.contains(address.as_str());
            let moved = recorded
                .resources
                .get(&address)
                .is_none_or(|r| r.id != id || r.outputs != outputs);
            if !change && !moved {
                continue;
            }
            refreshed.insert(
                address,
                Refreshed {
                    id,
                    inputs: match inputs {
                        Value::Object(map) if change => map,
                        _ => Map::new(),
                    },
                    outputs,
                },
            );
        }
        self.refreshed = refreshed;
        self
    }

    /// The steps of a plan made by [`crate::plan::plan`] for `stack` (its desired inputs, still as
    /// expressions), with the content hashes of the files it names (`extras`, as given to the
    /// planner) and the sensitive paths of the specs in `registry`.
    pub fn from_plan(
        plan: &Plan,
        stack: &Stack,
        registry: &Registry,
        extras: &DesiredExtras,
    ) -> Self {
        let destroy = plan.mode == PlanMode::Destroy;
        let steps = plan
            .changes
            .iter()
            .map(|change| {
                // A destroy's steps are deletes, which need no desired inputs: no copy of the stack.
                let wanted = (!destroy).then(|| stack.resources.get(&change.address));
                let desired = wanted.flatten().map(|res| Desired {
                    inputs: res.inputs.clone(),
                    dependencies: change.dependencies.clone(),
                    content_hash: extras
                        .resources
                        .get(&change.address)
                        .and_then(content_hash_record),
                    sensitive: sensitive_paths(res, registry),
                });
                PlannedStep {
                    address: change.address.clone(),
                    resource_type: change.type_name.clone(),
                    action: change.action,
                    desired,
                }
            })
            .collect();
        let outputs = if destroy {
            IndexMap::new()
        } else {
            stack
                .outputs
                .iter()
                .filter(|(_, o)| !o.sensitive && !o.value.is_sensitive())
                .map(|(k, o)| (k.clone(), o.value.clone()))
                .collect()
        };
        let addresses: std::collections::HashSet<&str> =
            plan.changes.iter().map(|c| c.address.as_str()).collect();
        let maps = plan
            .maps
            .iter()
            .filter(|m| !m.action.is_noop())
            .map(|m| PlannedMap {
                address: format!("{}.{}", m.address, m.field),
                owner_type: m.owner_type.clone(),
                map: m.map.clone(),
                field: m.field.clone(),
                interim: m.interim.clone(),
                owner: m.owner.clone(),
                owner_address: addresses
                    .contains(m.address.as_str())
                    .then(|| m.address.clone()),
                members: m
                    .members
                    .iter()
                    .filter(|x| x.stays)
                    .map(|x| x.address.clone())
                    .collect(),
                leaving: m
                    .members
                    .iter()
                    .filter(|x| !x.stays)
                    .filter_map(|x| Some((x.address.clone(), x.key.clone()?)))
                    .collect(),
                releases: m.releases.clone(),
            })
            .collect();
        Self {
            steps,
            maps,
            outputs,
            destroy,
            refreshed: HashMap::new(),
        }
    }
}

/// Paths of a resource whose values are secret: fields its spec marks sensitive (nested too) and
/// values that come from sensitive variables.
fn sensitive_paths(res: &Resource, registry: &Registry) -> Vec<FieldPath> {
    fn from_spec(
        fields: &IndexMap<String, crate::specs::FieldSpec>,
        prefix: &str,
        out: &mut Vec<String>,
    ) {
        for (name, f) in fields {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if f.sensitive {
                out.push(path);
            } else if let Some(nested) = &f.fields {
                from_spec(nested, &path, out);
            }
        }
    }
    fn from_expr(expr: &Expr, path: &str, out: &mut Vec<String>) {
        if expr.sensitive {
            out.push(path.to_owned());
        } else if let ExprKind::Map(entries) = &expr.kind {
            for (k, e) in entries {
                from_expr(e, &format!("{path}.{k}"), out);
            }
        } else if expr.is_sensitive() {
            out.push(path.to_owned());
        }
    }
    let mut paths = Vec::new();
    if let Some(spec) = registry.get(&res.type_name) {
        from_spec(&spec.fields, "", &mut paths);
    }
    for (name, expr) in &res.inputs {
        from_expr(expr, name, &mut paths);
    }
    paths.sort();
    paths.dedup();
    paths
        .iter()
        .filter_map(|p| FieldPath::parse(p).ok())
        .collect()
}

/// The state key under which the old object of a create-before-delete replacement is kept while
/// both exist (Terraform calls it "deposed"). A plan sees it as a resource removed from the stack
/// and deletes it, so even an interrupted replacement leaves nothing untracked.
pub(crate) fn deposed_key(address: &str) -> String {
    format!("{address}#deposed")
}

/// An expression holding a plain JSON value (no references).
pub(crate) fn literal_expr(value: &Value) -> Expr {
    let kind = match value {
        Value::Null => ExprKind::Null,
        Value::Bool(b) => ExprKind::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ExprKind::Int(i),
            None => ExprKind::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => ExprKind::String(s.clone()),
        Value::Array(items) => ExprKind::List(items.iter().map(literal_expr).collect()),
        Value::Object(map) => ExprKind::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), literal_expr(v)))
                .collect(),
        ),
    };
    Expr {
        kind,
        loc: Loc {
            source: SourceFile::new("<engine>", ""),
            span: Span::new(0, 0),
        },
        sensitive: false,
    }
}
