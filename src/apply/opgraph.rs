//! The operation graph: the planned steps turned into cloud operations with "must finish before"
//! edges, in-degree counters and critical-path priorities. Built once per run in O(steps + edges).
//!
//! Edge rules (`a → b`: `a` finishes before `b` starts):
//!
//! 1. create/update of `A` → create/update of every `B` that depends on `A` (desired graph);
//! 2. delete of `B` → delete of every `A` that `B` depended on (dependencies recorded in state), so
//!    deletes run in reverse dependency order;
//! 3. a plain update of `B` that no longer needs a deleted `A` → the delete of `A`;
//! 4. replace, delete-before-create: delete(old `A`) → create(new `A`);
//! 5. replace, create-before-delete: create(new `A`) → create/update of `A`'s dependents →
//!    delete(old `A`);
//! 6. a map (an endpoint's traffic): create/update of each member and of the owner → set the map →
//!    delete of each member whose object goes while it holds an entry (`releases`);
//! 7. a map whose member holding an entry is replaced delete-before-create: set the interim map →
//!    delete of each release, and interim → final map (which still waits for the creates, rule 6).
//!
//! Conflicting replace orders can make a cycle; that is refused before anything runs.

use std::collections::HashMap;

use super::event::StepKind;
use super::steps::{ApplyPlan, deposed_key};
use crate::plan::{Action, ReplaceOrder};
use crate::state::StateFile;

/// One cloud operation.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// The resource's address (for events and desired values).
    pub address: String,
    /// The state key the operation's prior record lives under (`address`, or its deposed key for
    /// the old half of a create-before-delete replacement).
    pub state_key: String,
    pub kind: StepKind,
    pub replace: Option<ReplaceOrder>,
    /// Index into `ApplyPlan::steps`, or into `ApplyPlan::maps` for a map op.
    pub step: usize,
    /// Set for the op that sets an owner's map (rules 6 and 7).
    pub map: Option<MapPhase>,
}

/// Which of a map's updates an op is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapPhase {
    /// The map without the replaced members that hold a share, before their deletes.
    Interim,
    /// The planned map.
    Final,
}

/// The frozen operation graph.
#[derive(Debug)]
pub(crate) struct OpGraph {
    pub ops: Vec<Op>,
    pub successors: Vec<Vec<usize>>,
    pub indegree: Vec<usize>,
    /// Length (in operations) of the longest chain starting at each op: the ready queue runs the
    /// op with the longest remaining chain first, so the critical path never waits behind short
    /// branches.
    pub priority: Vec<u32>,
}

/// Why a plan cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanShapeError {
    #[error("planned {action} of `{address}` has no desired inputs")]
    MissingDesired { address: String, action: String },
    #[error("planned {action} of `{address}` has no record in state")]
    MissingPrior { address: String, action: String },
    #[error("`{address}` is planned twice")]
    Duplicate { address: String },
    #[error(
        "the planned replacements wait for each other (involving {addresses:?}); plan them in one order"
    )]
    Cycle { addresses: Vec<String> },
}

pub(crate) fn build(plan: &ApplyPlan, state: &StateFile) -> Result<OpGraph, PlanShapeError> {
    let mut ops: Vec<Op> = Vec::new();
    // Per address: the op that produces its desired object, and the op that deletes its old one.
    let mut produce: HashMap<&str, usize> = HashMap::new();
    let mut remove: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, step) in plan.steps.iter().enumerate() {
        let address = step.address.as_str();
        if seen.insert(address, index).is_some() {
            return Err(PlanShapeError::Duplicate {
                address: address.to_owned(),
            });
        }
        let action_name = format!("{:?}", step.action).to_lowercase();
        let needs_desired = matches!(
            step.action,
            Action::Create | Action::Update | Action::Replace(_)
        );
        if needs_desired && step.desired.is_none() {
            return Err(PlanShapeError::MissingDesired {
                address: address.to_owned(),
                action: action_name,
            });
        }
        let needs_prior = matches!(
            step.action,
            Action::Update | Action::Replace(_) | Action::Delete
        );
        if needs_prior && !state.resources.contains_key(address) {
            return Err(PlanShapeError::MissingPrior {
                address: address.to_owned(),
                action: action_name,
            });
        }
        let mut push = |kind, replace, state_key: String| {
            ops.push(Op {
                address: address.to_owned(),
                state_key,
                kind,
                replace,
                step: index,
                map: None,
            });
            ops.len() - 1
        };
        match step.action {
            Action::NoOp => {}
            Action::Create => {
                produce.insert(address, push(StepKind::Create, None, address.to_owned()));
            }
            Action::Update => {
                produce.insert(address, push(StepKind::Update, None, address.to_owned()));
            }
            Action::Delete => {
                remove.insert(address, push(StepKind::Delete, None, address.to_owned()));
            }
            Action::Replace(order) => {
                let old_key = match order {
                    ReplaceOrder::DeleteBeforeCreate => address.to_owned(),
                    ReplaceOrder::CreateBeforeDelete => deposed_key(address),
                };
                remove.insert(address, push(StepKind::Delete, Some(order), old_key));
                produce.insert(
                    address,
                    push(StepKind::Create, Some(order), address.to_owned()),
                );
            }
        }
    }

    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); ops.len()];
    let edge = |from: usize, to: usize, successors: &mut Vec<Vec<usize>>| {
        if from != to {
            successors[from].push(to);
        }
    };
    for step in &plan.steps {
        let address = step.address.as_str();
        let prior_deps = state
            .resources
            .get(address)
            .map(|r| r.dependencies.as_slice())
            .unwrap_or_default();
        if let Some(&own) = produce.get(address) {
            let desired_deps = step
                .desired
                .as_ref()
                .map(|d| d.dependencies.as_slice())
                .unwrap_or_default();
            for dep in desired_deps {
                if let Some(&producer) = produce.get(dep.as_str()) {
                    edge(producer, own, &mut successors); // rule 1
                }
                if let Some(&old) = remove.get(dep.as_str())
                    && plan.steps[seen[dep.as_str()]].action
                        == Action::Replace(ReplaceOrder::CreateBeforeDelete)
                {
                    edge(own, old, &mut successors); // rule 5
                }
            }
            if step.action == Action::Update {
                for dep in prior_deps {
                    if let Some(&old) = remove.get(dep.as_str())
                        && plan.steps[seen[dep.as_str()]].action == Action::Delete
                        && !desired_deps.contains(dep)
                    {
                        edge(own, old, &mut successors); // rule 3
                    }
                }
            }
        }
        if let Some(&own_delete) = remove.get(address) {
            for dep in prior_deps {
                if let Some(&dep_delete) = remove.get(dep.as_str()) {
                    edge(own_delete, dep_delete, &mut successors); // rule 2
                }
            }
            if let (Some(&create), Action::Replace(order)) = (produce.get(address), step.action) {
                match order {
                    ReplaceOrder::DeleteBeforeCreate => edge(own_delete, create, &mut successors), // rule 4
                    ReplaceOrder::CreateBeforeDelete => edge(create, own_delete, &mut successors), // rule 5
                }
            }
        }
    }
    for (index, m) in plan.maps.iter().enumerate() {
        if seen.insert(m.address.as_str(), usize::MAX).is_some() {
            return Err(PlanShapeError::Duplicate {
                address: m.address.clone(),
            });
        }
        let mut push = |phase| {
            ops.push(Op {
                address: m.address.clone(),
                state_key: m.address.clone(),
                kind: StepKind::Update,
                replace: None,
                step: index,
                map: Some(phase),
            });
            successors.push(Vec::new());
            ops.len() - 1
        };
        let interim = m.interim.as_ref().map(|_| push(MapPhase::Interim));
        let last = push(MapPhase::Final);
        let waits_for = m.members.iter().chain(m.owner_address.as_ref());
        for address in waits_for {
            if let Some(&producer) = produce.get(address.as_str()) {
                edge(producer, last, &mut successors); // rule 6
            }
        }
        let release_from = match interim {
            Some(first) => {
                edge(first, last, &mut successors); // rule 7
                first
            }
            None => last,
        };
        for address in &m.releases {
            if let Some(&delete) = remove.get(address.as_str()) {
                edge(release_from, delete, &mut successors); // rules 6 and 7
            }
        }
    }
    for list in &mut successors {
        list.sort_unstable();
        list.dedup();
    }
    let mut indegree = vec![0usize; ops.len()];
    for list in &successors {
        for &to in list {
            indegree[to] += 1;
        }
    }

    // Kahn's order (also the cycle check), then longest chains from the sinks back.
    let mut remaining = indegree.clone();
    let mut order = Vec::with_capacity(ops.len());
    let mut stack: Vec<usize> = (0..ops.len()).filter(|&i| remaining[i] == 0).collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        for &next in &successors[i] {
            remaining[next] -= 1;
            if remaining[next] == 0 {
                stack.push(next);
            }
        }
    }
    if order.len() != ops.len() {
        let mut addresses: Vec<String> = (0..ops.len())
            .filter(|&i| remaining[i] > 0)
            .map(|i| ops[i].address.clone())
            .collect();
        addresses.sort();
        addresses.dedup();
        return Err(PlanShapeError::Cycle { addresses });
    }
    let mut priority = vec![1u32; ops.len()];
    for &i in order.iter().rev() {
        let longest = successors[i]
            .iter()
            .map(|&s| priority[s])
            .max()
            .unwrap_or(0);
        priority[i] = longest.saturating_add(1);
    }
    Ok(OpGraph {
        ops,
        successors,
        indegree,
        priority,
    })
}
