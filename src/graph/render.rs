//! Text forms of the graph: Graphviz DOT (inferred edges dashed) and a stable JSON document.
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{EdgeKind, ResourceGraph};

/// Version of the JSON produced by [`ResourceGraph::to_json`]; bumped on incompatible changes.
pub(crate) const GRAPH_JSON_VERSION: u32 = 1;

impl ResourceGraph {
    /// Graphviz DOT: one box per resource (name and type), an arrow from each prerequisite to what needs
    /// it, labelled with the referenced attribute; inferred edges are dashed.
    pub(crate) fn to_dot(&self, stack_name: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", quote(stack_name));
        out.push_str("  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
        out.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
        for node in self.nodes() {
            let label = format!("{}\\n{}", escape(&node.name), escape(&node.type_name));
            let _ = writeln!(out, "  {} [label=\"{label}\"];", quote(&node.name));
        }
        for (from, to, edge) in self.edges() {
            let label = edge
                .why
                .iter()
                .map(EdgeKind::label)
                .collect::<Vec<_>>()
                .join(", ");
            let style = if edge.is_inferred() {
                ", style=dashed"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"{}\"{style}];",
                quote(from),
                quote(to),
                escape(&label)
            );
        }
        out.push_str("}\n");
        out
    }

    /// JSON: nodes with their layer, edges with their reasons, the topological order and the layers.
    pub fn to_json(&self, stack_name: &str) -> Value {
        let layers = self.layers();
        let layer_of = |name: &str| layers.iter().position(|l| l.contains(&name)).unwrap_or(0);
        let nodes: Vec<Value> = self
            .nodes()
            .map(|n| json!({ "name": n.name, "type": n.type_name, "layer": layer_of(&n.name) }))
            .collect();
        let edges: Vec<Value> = self
            .edges()
            .into_iter()
            .map(|(from, to, e)| {
                let reasons: Vec<Value> = e
                    .why
                    .iter()
                    .map(|k| match k {
                        EdgeKind::Reference { path } => {
                            json!({ "kind": "reference", "attribute": path })
                        }
                        EdgeKind::DependsOn => json!({ "kind": "depends_on" }),
                        EdgeKind::Inferred { reason } => {
                            json!({ "kind": "inferred", "reason": reason })
                        }
                    })
                    .collect();
                json!({ "from": from, "to": to, "inferred": e.is_inferred(), "reasons": reasons })
            })
            .collect();
        json!({
            "schema_version": GRAPH_JSON_VERSION,
            "stack": stack_name,
            "nodes": nodes,
            "edges": edges,
            "order": self.topo_order(),
            "layers": layers,
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}
