//! `stackform schema`: a valid JSON Schema that the examples satisfy, kept in step with schema/.
use crate::support::{Cmd, example, repo_root};
use stackform::diag::SourceFile;

fn yaml_to_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let src = SourceFile::new(path, text);
    stackform::yaml::parse(&src, stackform::yaml::Budget::default())
        .unwrap()
        .to_json()
}

#[test]
fn schema_is_valid_and_the_examples_satisfy_it() {
    let out = Cmd::new().args(["schema"]).run().code(0);
    let schema: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("schema output is JSON");
    jsonschema::draft202012::meta::validate(&schema).expect("a valid draft 2020-12 schema");
    let validator = jsonschema::validator_for(&schema).unwrap();
    for name in ["managed-identity", "managed-identity-uai"] {
        let doc = yaml_to_json(&example(name));
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn committed_schema_matches_the_generated_one() {
    // Editors read schema/stack.schema.json; regenerate it with `stackform schema -o schema/stack.schema.json`.
    let out = Cmd::new().args(["schema"]).run().code(0);
    let committed = std::fs::read_to_string(repo_root().join("schema/stack.schema.json")).unwrap();
    assert_eq!(committed, out.stdout, "schema/stack.schema.json is stale");
}

#[test]
fn schema_rejects_a_misspelt_field() {
    let out = Cmd::new().args(["schema"]).run().code(0);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc = serde_json::json!({"stack": "s", "resources": {"store": {"type": "storage_account", "name": "abc", "skuu": "x"}}});
    assert!(!validator.is_valid(&doc));
}
