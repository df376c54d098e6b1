use indexmap::IndexMap;

use super::*;
use crate::diag::{SourceFile, Span};
use crate::stack::{CloudSection, Expr, ExprKind, Loc, Reference, Resource, Stack};

fn registry() -> Registry {
    Registry::embedded().expect("embedded specs load")
}

/// A tiny stack builder: each resource is (name, type, [(field, value)]).
struct Builder {
    src: SourceFile,
    resources: IndexMap<String, Resource>,
}

fn loc(src: &SourceFile) -> Loc {
    Loc {
        source: src.clone(),
        span: Span::new(0, 1),
    }
}

impl Builder {
    fn new() -> Self {
        Builder {
            src: SourceFile::new("stack.yaml", "x\n"),
            resources: IndexMap::new(),
        }
    }

    fn res(mut self, name: &str, type_name: &str, inputs: Vec<(&str, ExprKind)>) -> Self {
        let l = loc(&self.src);
        let inputs = inputs
            .into_iter()
            .map(|(k, kind)| {
                (
                    k.to_string(),
                    Expr {
                        kind,
                        loc: l.clone(),
                        sensitive: false,
                    },
                )
            })
            .collect();
        let r = Resource {
            name: name.into(),
            type_name: type_name.into(),
            loc: l,
            inputs,
            depends_on: vec![],
            base_file: None,
            moved_from: None,
            import: None,
        };
        self.resources.insert(name.into(), r);
        self
    }

    fn depends(mut self, name: &str, on: &str) -> Self {
        let l = loc(&self.src);
        self.resources
            .get_mut(name)
            .unwrap()
            .depends_on
            .push((on.into(), l));
        self
    }

    fn r(&self, resource: &str, path: &str) -> ExprKind {
        ExprKind::Ref(Reference {
            resource: resource.into(),
            path: path.into(),
            loc: loc(&self.src),
        })
    }

    fn build(self) -> Stack {
        Stack {
            name: "t".into(),
            dir: ".".into(),
            source: self.src,
            cloud: CloudSection::default(),
            backend: None,
            variables: IndexMap::new(),
            resources: self.resources,
            outputs: IndexMap::new(),
        }
    }
}

fn s(v: &str) -> ExprKind {
    ExprKind::String(v.into())
}

/// The reference scenario:
///
/// ```text
/// store ─▶ data ─▶ greeting
///   │                          
///   └────────▶ reader ┄┄▶ blue      (reader ┄┄▶ blue is inferred)
/// endpoint ──▶ reader
/// endpoint ──────────────▶ blue
/// ```
fn scenario() -> Stack {
    let b = Builder::new();
    let store_name = b.r("store", "name");
    let data_name = b.r("data", "name");
    let store_name2 = b.r("store", "name");
    let principal = b.r("endpoint", "identity.principal_id");
    let scope = b.r("store", "id");
    let ep_name = b.r("endpoint", "name");
    b.res("store", "storage_account", vec![("name", s("mistore1"))])
        .res(
            "data",
            "blob_container",
            vec![("account", store_name), ("name", s("hello"))],
        )
        .res(
            "greeting",
            "blob",
            vec![("account", store_name2), ("container", data_name)],
        )
        .res("endpoint", "online_endpoint", vec![("name", s("ep"))])
        .res(
            "reader",
            "role_assignment",
            vec![("principal_id", principal), ("scope", scope)],
        )
        .res("blue", "online_deployment", vec![("endpoint", ep_name)])
        .build()
}

#[test]
fn reference_scenario_orders_and_infers_the_role_edge() {
    let g = build(&scenario(), &registry()).unwrap();
    assert_eq!(
        g.topo_order(),
        ["store", "data", "greeting", "endpoint", "reader", "blue"]
    );
    assert_eq!(
        g.layers(),
        vec![
            vec!["store", "endpoint"],
            vec!["data", "reader"],
            vec!["greeting", "blue"]
        ]
    );
    let edges = g.edges();
    let inferred: Vec<_> = edges
        .iter()
        .filter(|(_, _, e)| e.is_inferred())
        .map(|(a, b, _)| (*a, *b))
        .collect();
    assert_eq!(inferred, [("reader", "blue")]);
    assert_eq!(g.dependencies("blue"), ["endpoint", "reader"]);
    assert_eq!(g.dependents("store"), ["data", "greeting", "reader"]);
}

#[test]
fn explicit_edge_is_not_marked_inferred() {
    // blue ◀── reader written by hand, and also inferred: the edge counts as written.
    let st = scenario();
    let mut st2 = st.clone();
    let l = st.resources["blue"].loc.clone();
    st2.resources
        .get_mut("blue")
        .unwrap()
        .depends_on
        .push(("reader".into(), l));
    let g = build(&st2, &registry()).unwrap();
    let (_, _, e) = g
        .edges()
        .into_iter()
        .find(|(a, b, _)| *a == "reader" && *b == "blue")
        .unwrap();
    assert!(!e.is_inferred());
    assert_eq!(e.why.len(), 2);
}

#[test]
fn user_assigned_identity_principal_is_inferred_too() {
    // uai ─▶ endpoint (identity list), uai ─▶ reader, reader ┄┄▶ blue
    let b = Builder::new();
    let uai_id = b.r("uai", "id");
    let identity = ExprKind::Map(
        [(
            "user_assigned_identities".to_string(),
            Expr {
                kind: ExprKind::List(vec![Expr {
                    kind: uai_id,
                    loc: loc(&b.src),
                    sensitive: false,
                }]),
                loc: loc(&b.src),
                sensitive: false,
            },
        )]
        .into_iter()
        .collect(),
    );
    let principal = b.r("uai", "principal_id");
    let st = b
        .res("uai", "user_assigned_identity", vec![("name", s("id1"))])
        .res(
            "endpoint",
            "online_endpoint",
            vec![("name", s("ep")), ("identity", identity)],
        )
        .res(
            "reader",
            "role_assignment",
            vec![("principal_id", principal)],
        )
        .res("blue", "online_deployment", vec![("endpoint", s("ep"))])
        .build();
    let g = build(&st, &registry()).unwrap();
    let inferred: Vec<_> = g
        .edges()
        .into_iter()
        .filter(|(_, _, e)| e.is_inferred())
        .map(|(a, b, _)| (a, b))
        .collect();
    assert_eq!(inferred, [("reader", "blue")]);
}

#[test]
fn every_cycle_is_reported_with_its_whole_path() {
    // a ─▶ b ─▶ c ─▶ a   and   x ─▶ y ─▶ x
    let b = Builder::new();
    let (ra, rb, rc) = (b.r("c", "id"), b.r("a", "id"), b.r("b", "id"));
    let st = b
        .res("a", "blob_container", vec![("account", ra)])
        .res("b", "blob_container", vec![("account", rb)])
        .res("c", "blob_container", vec![("account", rc)])
        .res("x", "blob_container", vec![])
        .res("y", "blob_container", vec![])
        .depends("x", "y")
        .depends("y", "x")
        .build();
    let errs = build(&st, &registry()).unwrap_err();
    let messages: Vec<_> = errs.iter().map(|d| d.message.clone()).collect();
    assert!(
        messages.contains(&"dependency cycle: a → b → c → a".to_string()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"dependency cycle: x → y → x".to_string()),
        "{messages:?}"
    );
}

#[test]
fn self_dependency_is_an_error() {
    let st = Builder::new()
        .res("a", "blob", vec![])
        .depends("a", "a")
        .build();
    let errs = build(&st, &registry()).unwrap_err();
    assert_eq!(errs[0].message, "resource `a` depends on itself");
}

#[test]
fn dot_marks_inferred_edges_dashed() {
    let g = build(&scenario(), &registry()).unwrap();
    let dot = g.to_dot("managed-identity");
    assert!(
        dot.contains("\"reader\" -> \"blue\" [label=\"inferred\", style=dashed];"),
        "{dot}"
    );
    assert!(
        dot.contains("\"endpoint\" -> \"reader\" [label=\"identity.principal_id\"];"),
        "{dot}"
    );
    let json = g.to_json("managed-identity");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["order"][0], "store");
}

#[test]
fn wide_graph_builds_and_orders_every_node() {
    // 2,000 resources in a chain of fans: no quadratic behaviour, every node ordered once.
    let mut b = Builder::new();
    for i in 0..2000 {
        let inputs = if i == 0 {
            vec![]
        } else {
            vec![("account", b.r(&format!("r{}", i / 2), "name"))]
        };
        b = b.res(&format!("r{i}"), "blob_container", inputs);
    }
    let g = build(&b.build(), &registry()).unwrap();
    assert_eq!(g.topo_order().len(), 2000);
    assert_eq!(g.layers().len(), 12); // r0, then depth floor(log2 i) + 1
}
