//! The resource dependency graph: one node per resource, an edge from each prerequisite to the resource
//! that needs it. Edges come from references (`${store.id}`), from `depends_on`, and from one rule nobody
//! writes by hand, marked as inferred and driven by the specs (no type is named here): a resource whose
//! code `runs_as` the identity of another (an online deployment, its endpoint's) waits for every grant
//! whose `grantee` is one of that identity's `principal`s, its own or an `attached_identities` one (its
//! scoring code uses that access in `init()`).
//!
//! [`build`] is the only constructor, and it refuses cycles, so a [`ResourceGraph`] is a DAG: code after
//! that point relies on it (topological order always exists). Nothing here does I/O.
use std::collections::{BTreeSet, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::diag::Diagnostic;
use crate::specs::Registry;
use crate::stack::{ExprKind, Loc, Reference, Resource, Stack, TemplatePart};

mod render;

/// Why one resource waits for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    /// The dependent refers to the prerequisite (`${store.id}`); `path` is the referenced attribute.
    Reference { path: String },
    /// Written in `depends_on`.
    DependsOn,
    /// Added by stackform: the deployment's scoring code needs the role its endpoint identity is given.
    Inferred { reason: String },
}

impl EdgeKind {
    pub(crate) fn is_inferred(&self) -> bool {
        matches!(self, EdgeKind::Inferred { .. })
    }

    fn label(&self) -> String {
        match self {
            EdgeKind::Reference { path } => path.clone(),
            EdgeKind::DependsOn => "depends_on".to_string(),
            EdgeKind::Inferred { .. } => "inferred".to_string(),
        }
    }
}

/// One edge: `from` must be applied before `to`. `why` lists each reason (several references may join
/// the same pair); `loc` is where the first reason is written.
#[derive(Debug, Clone)]
pub struct Edge {
    pub why: Vec<EdgeKind>,
    pub loc: Loc,
}

impl Edge {
    /// An edge is inferred only when nothing the user wrote also asks for it.
    pub(crate) fn is_inferred(&self) -> bool {
        self.why.iter().all(EdgeKind::is_inferred)
    }
}

/// A node of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub type_name: String,
}

/// The checked, acyclic resource graph of a stack.
#[derive(Debug, Clone)]
pub struct ResourceGraph {
    graph: DiGraph<Node, Edge>,
    index: HashMap<String, NodeIndex>,
    /// A topological order, ties broken by file order, so output is stable.
    order: Vec<NodeIndex>,
}

/// Builds the graph of a loaded stack; `registry` holds the specs that drive the inferred edges (the
/// registry the stack was loaded with). References to unknown resources were already refused by the
/// loader; this reports every dependency cycle (each printed in full) and self-dependency.
pub fn build(stack: &Stack, registry: &Registry) -> Result<ResourceGraph, Vec<Diagnostic>> {
    let mut graph: DiGraph<Node, Edge> = DiGraph::new();
    let mut index = HashMap::new();
    for (name, res) in &stack.resources {
        let ix = graph.add_node(Node {
            name: name.clone(),
            type_name: res.type_name.clone(),
        });
        index.insert(name.clone(), ix);
    }
    let mut errors = Vec::new();
    // petgraph's `find_edge` scans a node's edges; a hub such as the storage account has thousands in
    // large stacks, so existing edges are looked up here instead.
    let mut edge_of: HashMap<(NodeIndex, NodeIndex), petgraph::graph::EdgeIndex> = HashMap::new();
    let mut add = |graph: &mut DiGraph<Node, Edge>,
                   from: &str,
                   to: &str,
                   kind: EdgeKind,
                   loc: &Loc| {
        let (Some(&a), Some(&b)) = (index.get(from), index.get(to)) else {
            return;
        };
        if a == b {
            if !kind.is_inferred() {
                errors.push(
                    Diagnostic::new(&loc.source, loc.span, format!("resource `{to}` depends on itself"))
                        .label("refers to the resource it is written in")
                        .help("a resource cannot depend on itself; refer to another resource or remove this"),
                );
            }
            return;
        }
        match edge_of.get(&(a, b)).copied() {
            Some(e) => {
                if !graph[e].why.contains(&kind) {
                    graph[e].why.push(kind);
                }
            }
            None => {
                let e = graph.add_edge(
                    a,
                    b,
                    Edge {
                        why: vec![kind],
                        loc: loc.clone(),
                    },
                );
                edge_of.insert((a, b), e);
            }
        }
    };
    for (name, res) in &stack.resources {
        for r in res.references() {
            add(
                &mut graph,
                &r.resource,
                name,
                EdgeKind::Reference {
                    path: r.path.clone(),
                },
                &r.loc,
            );
        }
        for (dep, loc) in &res.depends_on {
            add(&mut graph, dep, name, EdgeKind::DependsOn, loc);
        }
    }
    for (deployment, assignment, reason, loc) in inferred_edges(stack, registry) {
        add(
            &mut graph,
            &assignment,
            &deployment,
            EdgeKind::Inferred { reason },
            &loc,
        );
    }
    errors.extend(cycle_errors(&graph));
    if !errors.is_empty() {
        crate::diag::sort(&mut errors);
        return Err(errors);
    }
    let order = stable_topo_order(&graph);
    Ok(ResourceGraph {
        graph,
        index,
        order,
    })
}

/// `(resource, attribute)` of every principal the code of `address` may run as: the resource's own
/// `principal` attributes, and those of each identity its `attached_identities` fields list by reference.
fn principals(registry: &Registry, stack: &Stack, address: &str) -> Vec<(String, String)> {
    let own = |at: &str| -> Vec<(String, String)> {
        stack
            .resources
            .get(at)
            .and_then(|r| registry.get(&r.type_name))
            .map(|spec| {
                spec.attributes
                    .iter()
                    .filter(|(_, a)| a.principal)
                    .map(|(name, _)| (at.to_string(), name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = own(address);
    let (Some(res), Some(spec)) = (
        stack.resources.get(address),
        stack
            .resources
            .get(address)
            .and_then(|r| registry.get(&r.type_name)),
    ) else {
        return out;
    };
    let lists = spec
        .all_fields()
        .into_iter()
        .filter(|(_, f)| f.attached_identities);
    for (path, _) in lists {
        if let Some(ExprKind::List(items)) = input_at(res, &path).map(|e| &e.kind) {
            for r in items.iter().flat_map(|item| item.references()) {
                out.extend(own(&r.resource));
            }
        }
    }
    out
}

/// The expression at a dotted input path (`identity.user_assigned_identities`).
fn input_at<'a>(res: &'a Resource, path: &str) -> Option<&'a crate::stack::Expr> {
    let mut parts = path.split('.');
    let mut expr = res.input(parts.next()?)?;
    for part in parts {
        expr = match &expr.kind {
            ExprKind::Map(m) => m.get(part)?,
            _ => return None,
        };
    }
    Some(expr)
}

/// The resource of type `parent_type` that `field` of `res` names: by reference (`${endpoint.name}`) or
/// by literal name.
fn named_parent(stack: &Stack, res: &Resource, field: &str, parent_type: &str) -> Option<String> {
    let expr = res.inputs.get(field)?;
    let single_ref = |r: &Reference| {
        stack
            .resources
            .get(&r.resource)
            .filter(|e| e.type_name == parent_type)
            .map(|_| r.resource.clone())
    };
    match &expr.kind {
        ExprKind::Ref(r) => single_ref(r),
        ExprKind::Template(parts) => parts.iter().find_map(|p| match p {
            TemplatePart::Ref(r) => single_ref(r),
            TemplatePart::Text(_) => None,
        }),
        ExprKind::String(name) => stack.resources.iter().find_map(|(key, r)| {
            let is_named = r.type_name == parent_type
                && matches!(r.inputs.get("name").map(|e| &e.kind), Some(ExprKind::String(n)) if n == name);
            is_named.then(|| key.clone())
        }),
        _ => None,
    }
}

/// `(runner, grant, reason, where the grant names the principal)` for every pair the inference rule
/// joins: a resource whose spec says its code `runs_as` the identity of the resource a field names, and
/// a grant whose `grantee` field refers to one of that identity's principals.
fn inferred_edges(stack: &Stack, registry: &Registry) -> Vec<(String, String, String, Loc)> {
    let grantee_field = |r: &Resource| {
        registry
            .get(&r.type_name)
            .and_then(|spec| spec.fields.iter().find(|(_, f)| f.grantee))
            .map(|(name, _)| name.clone())
    };
    let grants: Vec<(&String, &Resource, String)> = stack
        .resources
        .iter()
        .filter_map(|(name, r)| grantee_field(r).map(|field| (name, r, field)))
        .collect();
    let mut out = Vec::new();
    for (dname, dep) in &stack.resources {
        let Some(spec) = registry.get(&dep.type_name) else {
            continue;
        };
        for (field, f) in spec.fields.iter().filter(|(_, f)| f.runs_as) {
            let Some(endpoint) = f
                .parent_ref
                .as_deref()
                .and_then(|parent| named_parent(stack, dep, field, parent))
            else {
                continue;
            };
            let principals = principals(registry, stack, &endpoint);
            for (aname, ra, grantee) in &grants {
                let Some(principal) = ra.inputs.get(grantee) else {
                    continue;
                };
                let hit = principal.references().into_iter().find(|r| {
                    principals
                        .iter()
                        .any(|(res, path)| &r.resource == res && &r.path == path)
                });
                if let Some(r) = hit {
                    let reason = format!(
                        "`{dname}` runs as `{endpoint}`'s identity, which `{aname}` grants a role to; its scoring code needs that access in init()"
                    );
                    out.push((dname.clone(), (*aname).clone(), reason, r.loc.clone()));
                }
            }
        }
    }
    out
}

/// One diagnostic per strongly connected component that holds a cycle, with the cycle printed in full.
fn cycle_errors(graph: &DiGraph<Node, Edge>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for scc in tarjan_scc(graph) {
        if scc.len() < 2 {
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = members.iter().min() else {
            continue;
        };
        let cycle = find_cycle(graph, start, &members);
        let names: Vec<&str> = cycle.iter().map(|&ix| graph[ix].name.as_str()).collect();
        let mut path = names.join(" → ");
        path.push_str(" → ");
        path.push_str(names[0]);
        // Point at the edge that closes the cycle back to its first resource.
        let mut diag: Option<Diagnostic> = None;
        for pair in 0..cycle.len() {
            let (a, b) = (cycle[pair], cycle[(pair + 1) % cycle.len()]);
            let Some(e) = graph.find_edge(a, b) else {
                continue;
            };
            let edge = &graph[e];
            let why = edge
                .why
                .iter()
                .map(EdgeKind::label)
                .collect::<Vec<_>>()
                .join(", ");
            let text = format!("`{}` needs `{}` ({why})", graph[b].name, graph[a].name);
            diag = Some(match diag {
                None => Diagnostic::new(
                    &edge.loc.source,
                    edge.loc.span,
                    format!("dependency cycle: {path}"),
                )
                .label(text),
                Some(d) => d.note(&edge.loc.source, edge.loc.span, text),
            });
        }
        if let Some(d) = diag {
            out.push(
                d.help("break the cycle by removing one of these references or depends_on entries"),
            );
        }
    }
    out
}

/// A simple cycle through `start` inside one strongly connected component (depth-first, iterative).
fn find_cycle(
    graph: &DiGraph<Node, Edge>,
    start: NodeIndex,
    members: &BTreeSet<NodeIndex>,
) -> Vec<NodeIndex> {
    let mut path = vec![start];
    let mut visited = BTreeSet::from([start]);
    let mut iters = vec![sorted_successors(graph, start, members)];
    while let Some(succ) = iters.last_mut() {
        match succ.pop() {
            Some(next) if next == start => return path,
            Some(next) if visited.insert(next) => {
                path.push(next);
                iters.push(sorted_successors(graph, next, members));
            }
            Some(_) => {}
            None => {
                iters.pop();
                path.pop();
            }
        }
    }
    vec![start]
}

fn sorted_successors(
    graph: &DiGraph<Node, Edge>,
    ix: NodeIndex,
    members: &BTreeSet<NodeIndex>,
) -> Vec<NodeIndex> {
    let mut v: Vec<NodeIndex> = graph
        .edges(ix)
        .map(|e| e.target())
        .filter(|t| members.contains(t))
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a)); // popped from the end: lowest index (file order) first
    v
}

/// Kahn's algorithm with a min-heap on file order, so equal-rank resources keep the order they were written.
fn stable_topo_order(graph: &DiGraph<Node, Edge>) -> Vec<NodeIndex> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut indegree: Vec<usize> = graph
        .node_indices()
        .map(|ix| graph.neighbors_directed(ix, petgraph::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<NodeIndex>> = graph
        .node_indices()
        .filter(|ix| indegree[ix.index()] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some(Reverse(ix)) = ready.pop() {
        order.push(ix);
        for next in graph.neighbors(ix) {
            indegree[next.index()] -= 1;
            if indegree[next.index()] == 0 {
                ready.push(Reverse(next));
            }
        }
    }
    order
}

impl ResourceGraph {
    /// Resource names in dependency order (prerequisites first).
    pub(crate) fn topo_order(&self) -> Vec<&str> {
        self.order
            .iter()
            .map(|&ix| self.graph[ix].name.as_str())
            .collect()
    }

    /// Resources grouped by depth: layer 0 needs nothing, layer n needs something in layer n-1.
    pub(crate) fn layers(&self) -> Vec<Vec<&str>> {
        let mut depth = vec![0usize; self.graph.node_count()];
        for &ix in &self.order {
            for pred in self.graph.neighbors_directed(ix, petgraph::Incoming) {
                depth[ix.index()] = depth[ix.index()].max(depth[pred.index()] + 1);
            }
        }
        let mut layers: Vec<Vec<&str>> = Vec::new();
        for &ix in &self.order {
            let d = depth[ix.index()];
            if layers.len() <= d {
                layers.resize_with(d + 1, Vec::new);
            }
            layers[d].push(self.graph[ix].name.as_str());
        }
        layers
    }

    /// Direct prerequisites of a resource.
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.neighbors(name, petgraph::Incoming)
    }

    /// Resources that directly need this one.
    #[cfg(test)]
    pub(crate) fn dependents(&self, name: &str) -> Vec<&str> {
        self.neighbors(name, petgraph::Outgoing)
    }

    fn neighbors(&self, name: &str, dir: petgraph::Direction) -> Vec<&str> {
        let Some(&ix) = self.index.get(name) else {
            return Vec::new();
        };
        let mut v: Vec<NodeIndex> = self.graph.neighbors_directed(ix, dir).collect();
        v.sort_unstable();
        v.into_iter().map(|n| self.graph[n].name.as_str()).collect()
    }

    /// Every edge as `(from, to, edge)`, in a stable order.
    pub fn edges(&self) -> Vec<(&str, &str, &Edge)> {
        let mut v: Vec<_> = self
            .graph
            .edge_references()
            .map(|e| (e.source(), e.target(), e.weight()))
            .collect();
        v.sort_by_key(|(a, b, _)| (b.index(), a.index()));
        v.into_iter()
            .map(|(a, b, e)| (self.graph[a].name.as_str(), self.graph[b].name.as_str(), e))
            .collect()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.order.iter().map(|&ix| &self.graph[ix])
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }
}

#[cfg(test)]
mod tests;
