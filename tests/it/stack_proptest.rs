//! Property: the stack loader never panics, whatever the input — random bytes, random edits of a valid
//! stack, or random structured stacks built from the real vocabulary (sections, resource types, field
//! names, `${...}` forms). A panic fails the test; the result itself may be anything.
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use stackform::specs::Registry;
use stackform::stack::{self, LoadOptions};

use crate::support::fixtures::{copy_dir, fixture};

fn demo_dir() -> PathBuf {
    fixture("stack/demo")
}

fn opts() -> LoadOptions {
    LoadOptions {
        vars: vec![("n".into(), "3".into()), ("suffix".into(), "x".into())],
        env: [("AZURE_SUBSCRIPTION_ID".to_string(), "sub".to_string())]
            .into_iter()
            .collect(),
        ..LoadOptions::default()
    }
}

static REGISTRY: std::sync::LazyLock<Registry> =
    std::sync::LazyLock::new(|| Registry::embedded().expect("specs"));

/// Loads `text` as a stack file in the demo folder's copy, so relative paths and `file:` bases resolve.
fn load_text(dir: &Path, text: &[u8]) {
    let path = dir.join("stack.yaml");
    std::fs::write(&path, text).expect("write stack");
    let _ = stack::load(&path, &opts(), &REGISTRY);
}

fn workdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    copy_dir(&demo_dir(), tmp.path());
    tmp
}

/// The vocabulary: section and setting names, names used by the demo, every type, field and attribute.
/// Built once: `prop_recursive` rebuilds its strategies for every case.
static WORDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    let registry = Registry::embedded().expect("specs");
    let mut words: Vec<String> = vec![
        "stack",
        "cloud",
        "variables",
        "resources",
        "outputs",
        "$schema",
        "type",
        "depends_on",
        "file",
        "kind",
        "default",
        "sensitive",
        "description",
        "value",
        "local",
        "azure",
        "store",
        "data",
        "endpoint",
        "blue",
        "greeting",
        "n",
        "suffix",
        "x",
        "",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for spec in registry.iter() {
        words.push(spec.type_name.clone());
        words.extend(spec.fields.keys().cloned());
        words.extend(spec.attributes.keys().cloned());
    }
    words
});

fn word() -> impl Strategy<Value = String> {
    (0..WORDS.len()).prop_map(|i| WORDS[i].clone())
}

fn scalar_string() -> impl Strategy<Value = String> {
    prop_oneof![
        word(),
        (word(), word()).prop_map(|(a, b)| format!("${{{a}.{b}}}")),
        (word(), word()).prop_map(|(a, b)| format!("pre-${{{a}.{b}}}-post")),
        word().prop_map(|w| format!("${{var.{w}}}")),
        word().prop_map(|w| format!("${{env.{w}}}")),
        Just("${".to_string()),
        Just("$${x}".to_string()),
        Just("${}".to_string()),
        Just("./hello.txt".to_string()),
        Just("./blue.yml".to_string()),
        Just("azureml:m:1".to_string()),
        Just("../../../../etc".to_string()),
        "\\PC{0,12}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        scalar_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn resource() -> impl Strategy<Value = Value> {
    (word(), prop::collection::vec((word(), value()), 0..8)).prop_map(|(ty, fields)| {
        let mut m: Map<String, Value> = fields.into_iter().collect();
        m.insert("type".into(), Value::String(ty));
        Value::Object(m)
    })
}

fn stack_value() -> impl Strategy<Value = Value> {
    (
        prop::option::of(scalar_string()),
        prop::option::of(value()),
        prop::option::of(prop::collection::vec((word(), value()), 0..4)),
        prop::collection::vec((word(), resource()), 0..6),
        prop::option::of(value()),
        prop::collection::vec((word(), value()), 0..2),
    )
        .prop_map(|(name, cloud, vars, resources, outputs, junk)| {
            let mut top = Map::new();
            if let Some(n) = name {
                top.insert("stack".into(), Value::String(n));
            }
            if let Some(c) = cloud {
                top.insert("cloud".into(), c);
            }
            if let Some(v) = vars {
                top.insert(
                    "variables".into(),
                    Value::Object(
                        v.into_iter()
                            .map(|(k, d)| (k, json!({ "default": d })))
                            .collect(),
                    ),
                );
            }
            top.insert(
                "resources".into(),
                Value::Object(resources.into_iter().collect()),
            );
            if let Some(o) = outputs {
                top.insert("outputs".into(), o);
            }
            for (k, v) in junk {
                top.entry(k).or_insert(v);
            }
            Value::Object(top)
        })
}

/// A simple block-style YAML writer, so the block scanner is exercised as well as flow (JSON) style.
fn to_block_yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                out.push_str(&format!(
                    "\n{pad}{}:",
                    serde_json::to_string(k).unwrap_or_default()
                ));
                match v {
                    Value::Object(x) if !x.is_empty() => to_block_yaml(v, indent + 2, out),
                    Value::Array(x) if !x.is_empty() => to_block_yaml(v, indent + 2, out),
                    other => {
                        out.push(' ');
                        out.push_str(&other.to_string());
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("\n{pad}- "));
                out.push_str(&item.to_string());
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = workdir();
        load_text(dir.path(), &bytes);
    }

    #[test]
    fn random_text_never_panics(text in "[a-z:{}\\[\\],$ \n\\-&*!|>'\"#.]{0,300}") {
        let dir = workdir();
        load_text(dir.path(), text.as_bytes());
    }

    #[test]
    fn edited_demo_stack_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[\\PC\n ]{0,3}"), 1..6)
    ) {
        let dir = workdir();
        let mut text: Vec<char> = std::fs::read_to_string(dir.path().join("stack.yaml"))
            .expect("demo stack")
            .chars()
            .collect();
        for (at, op, insert) in edits {
            if text.is_empty() {
                break;
            }
            let i = at.index(text.len());
            match op {
                0 => { text.remove(i); }
                1 => { for (k, c) in insert.chars().enumerate() { text.insert(i + k, c); } }
                _ => { text.truncate(i); }
            }
        }
        let s: String = text.into_iter().collect();
        load_text(dir.path(), s.as_bytes());
    }

    #[test]
    fn structured_stacks_never_panic(stack in stack_value(), block in any::<bool>()) {
        let dir = workdir();
        let text = if block {
            let mut s = String::new();
            to_block_yaml(&stack, 0, &mut s);
            s
        } else {
            stack.to_string()
        };
        load_text(dir.path(), text.as_bytes());
    }
}
