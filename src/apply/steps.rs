//! What the engine is asked to execute: one [`PlannedStep`] per resource with its planned action,
//! the desired inputs still as expressions (references resolve when the step starts), and the
//! desired dependencies. The prior side of every change comes from the state the run starts from.
//!
//! This is the planner's `Plan` reduced to what execution needs; it holds no I/O and never decides
//! anything itself (the action is taken as given).

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diag::{SourceFile, Span};
use crate::plan::{Action, DesiredExtras, Plan, PlanMode, content_hash_record};
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
                    action: Action::Delete,
                    desired: None,
                })
                .collect(),
            outputs: IndexMap::new(),
            destroy: true,
        }
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
        let steps = plan
            .changes
            .iter()
            .map(|change| {
                let desired = stack.resources.get(&change.address).map(|res| Desired {
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
        let destroy = plan.mode == PlanMode::Destroy;
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
        Self {
            steps,
            outputs,
            destroy,
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
