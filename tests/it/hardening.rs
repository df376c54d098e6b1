//! Defects found by attacking stackform on purpose (issue 18): a saved plan applied with another
//! sensitive value, symlinked state files and uploaded folders, a damaged resource id in state, and a
//! full disk under the state folder. Each test opens with the defect it guards against, and runs the
//! real binary against a local cloud of its own.
use crate::support::test::Test;

/// A stack whose blob holds a sensitive variable's value.
const SECRET_BLOB: &str = r#"
stack: secretblob
cloud: { kind: local, location: eastus }
variables:
  apikey: { sensitive: true, description: "written into the blob" }
resources:
  store: { type: storage_account, name: secretblob1, sku: Standard_LRS }
  data: { type: blob_container, account: "${store.name}", name: keys }
  key: { type: blob, account: "${store.name}", container: "${data.name}", name: key.txt, content: "${var.apikey}" }
"#;

/// Nothing was applied: the stack has no state yet.
fn assert_no_state(t: &Test) {
    let out = t.run(["state", "list", "--var", "apikey=x"]).code(0);
    assert!(out.stdout.contains("No state yet"), "{}", out.stdout);
}

#[test]
fn a_saved_plan_refuses_another_value_of_a_sensitive_variable() {
    // The bug: `apply p.json --var apikey=B` applied a plan made with `apikey=A`, since a sensitive
    // value shows as `(sensitive)` in both plans, though the README promises a refusal.
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    t.run(["plan", "--var", "apikey=first-Secret-value", "-o", "p.json"])
        .code(0);
    let saved = t.read("p.json");
    assert!(!saved.contains("first-Secret-value"), "{saved}");
    let out = t
        .run(["apply", "p.json", "--var", "apikey=other-Secret-value"])
        .code(1);
    assert!(
        out.stderr.contains("variable `apikey` is sensitive")
            && out
                .stderr
                .contains("differs from the one this plan was made with"),
        "{}",
        out.stderr
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains("Secret-value"),
            "a value was printed: {text}"
        );
    }
    assert_no_state(&t);
    // The value the plan was made with is accepted.
    t.run(["apply", "p.json", "--var", "apikey=first-Secret-value"])
        .code(0);
    t.run(["destroy", "--auto-approve", "--var", "apikey=x"])
        .code(0);
}

#[test]
fn a_saved_plan_of_another_schema_version_is_refused() {
    // The bug: the saved plan's `schema_version` was never read outside unit tests, so a plan JSON of
    // another version was applied as if this build had written it.
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    t.run(["plan", "--var", "apikey=a", "-o", "p.json"]).code(0);
    let mut saved: serde_json::Value = serde_json::from_str(&t.read("p.json")).unwrap();
    saved["plan"]["schema_version"] = 2.into();
    t.write("p.json", &saved.to_string());
    let out = t.run(["apply", "p.json", "--var", "apikey=a"]).code(1);
    assert!(
        out.stderr
            .contains("the plan file has schema_version 2; this stackform reads version 1")
            && out.stderr.contains("p.json"),
        "{}",
        out.stderr
    );
    assert_no_state(&t);
}
