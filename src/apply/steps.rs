//! What the engine is asked to execute: one [`PlannedStep`] per resource with its planned action,
//! the desired inputs still as expressions (references resolve when the step starts), and the
//! desired dependencies. The prior side of every change comes from the state the run starts from.
//!
//! This is the planner's `Plan` reduced to what execution needs; it holds no I/O and never decides
//! anything itself (the action is taken as given).

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diag::{SourceFile, Span};
use crate::graph::ResourceGraph;
use crate::stack::{Expr, ExprKind, Loc, Stack};
use crate::state::{FieldPath, StateFile};

/// In which order the two halves of a replacement run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplaceOrder {
    /// Delete the old object (after its dependents' deletes), then create the new one. Needed when
    /// both would have the same cloud name.
    DeleteBeforeCreate,
    /// Create the new object, let dependents move to it, then delete the old one.
    CreateBeforeDelete,
}

/// The planned action for one resource (mirrors the planner's `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlannedAction {
    NoOp,
    Create,
    Update,
    Replace(ReplaceOrder),
    Delete,
}

impl PlannedAction {
    pub fn is_replace(self) -> bool {
        matches!(self, PlannedAction::Replace(_))
    }
}

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
    pub action: PlannedAction,
    /// Required for `Create`, `Update` and `Replace`; unused for `Delete`. For `NoOp` it is optional.
    pub desired: Option<Desired>,
}

/// A plan ready to execute.
#[derive(Debug, Clone, Default)]
pub struct ApplyPlan {
    pub steps: Vec<PlannedStep>,
    /// Stack outputs to record in state after a successful run (sensitive outputs must be left out
    /// by the caller).
    pub outputs: IndexMap<String, Expr>,
    /// A destroy run: state's stack outputs are cleared at the end.
    pub destroy: bool,
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
                    action: PlannedAction::Delete,
                    desired: None,
                })
                .collect(),
            outputs: IndexMap::new(),
            destroy: true,
        }
    }

    /// Builds the steps for `actions` (address → action) from the loaded stack and its graph.
    /// Addresses that are not in the stack (resources removed from the file) take their type from
    /// `state` and must be `Delete`s. Stack resources missing from `actions` are `NoOp`.
    pub fn from_stack(
        stack: &Stack,
        graph: &ResourceGraph,
        state: &StateFile,
        actions: &IndexMap<String, PlannedAction>,
    ) -> Self {
        let mut steps = Vec::with_capacity(stack.resources.len() + actions.len());
        for (address, resource) in &stack.resources {
            let action = actions.get(address).copied().unwrap_or(PlannedAction::NoOp);
            let prior = state.resources.get(address);
            steps.push(PlannedStep {
                address: address.clone(),
                resource_type: resource.type_name.clone(),
                action,
                desired: Some(Desired {
                    inputs: resource.inputs.clone(),
                    dependencies: graph
                        .dependencies(address)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    content_hash: prior.and_then(|p| p.content_hash.clone()),
                    sensitive: prior.map(|p| p.sensitive.clone()).unwrap_or_default(),
                }),
            });
        }
        for (address, action) in actions {
            if stack.resources.contains_key(address) {
                continue;
            }
            if let Some(record) = state.resources.get(address) {
                steps.push(PlannedStep {
                    address: address.clone(),
                    resource_type: record.resource_type.clone(),
                    action: *action,
                    desired: None,
                });
            }
        }
        let outputs = stack
            .outputs
            .iter()
            .filter(|(_, o)| !o.sensitive && !o.value.is_sensitive())
            .map(|(k, o)| (k.clone(), o.value.clone()))
            .collect();
        Self {
            steps,
            outputs,
            destroy: false,
        }
    }
}

/// The state key under which the old object of a create-before-delete replacement is kept while
/// both exist (Terraform calls it "deposed"). A plan sees it as a resource removed from the stack
/// and deletes it, so even an interrupted replacement leaves nothing untracked.
pub fn deposed_key(address: &str) -> String {
    format!("{address}#deposed")
}

/// An expression holding a plain JSON value (no references).
pub fn literal_expr(value: &Value) -> Expr {
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
