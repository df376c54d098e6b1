//! The CI drift check, run as written (issue 19): `examples/ci/drift.sh` against the local cloud exits 0
//! with clean reports, then, after a change made outside stackform, exits 2 with the JSON report and
//! the JUnit XML report (`drift --format junit`) both naming the changed resource. The XML is read by
//! a real XML parser (python3's `xml.etree`), with markup characters in the drifted value.
use std::path::Path;
use std::process::Command;

use reqwest::Method;

use crate::support::{Test, binary, repo_root};

/// A container with metadata (changed behind stackform's back below) and a blob in it.
const STACK: &str = r#"
stack: nightly
cloud: { kind: local }
resources:
  store: { type: storage_account, name: driftci01 }
  box:
    type: blob_container
    account: ${store.name}
    name: reports
    metadata: { owner: platform }
  note: { type: blob, account: "${store.name}", container: "${box.name}", name: note.txt, content: "hello" }
"#;

/// Runs `examples/ci/drift.sh stack.yaml report` in the test folder with this build as `STACKFORM`;
/// returns its exit code and stderr.
fn drift_sh(t: &Test) -> (i32, String) {
    let mut cmd = Command::new("bash");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STACKFORM_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .arg(repo_root().join("examples/ci/drift.sh"))
        .args(["stack.yaml", "report"])
        .current_dir(t.dir())
        .env("STACKFORM", binary())
        .env("STACKFORM_CLOUD_DIR", t.cloud_dir())
        .env("NO_COLOR", "1")
        .output()
        .expect("bash runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(tests, failures, failed case names, failure texts)` of a JUnit file, as python3's XML parser
/// reads it (a document that is not well-formed fails the parse and the test).
fn junit(path: &Path) -> (String, String, Vec<String>, Vec<String>) {
    const READ: &str = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
cases = list(root.iter("testcase"))
failed = [c for c in cases if c.find("failure") is not None]
print(json.dumps([root.get("tests"), root.get("failures"),
                  [c.get("name") for c in failed],
                  [c.find("failure").get("message") + "\n" + (c.find("failure").text or "") for c in failed]]))
"#;
    let out = Command::new("python3")
        .args(["-c", READ])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the JUnit report does not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).expect("the reader prints JSON")
}

#[test]
fn the_ci_recipe_passes_then_fails_on_drift_with_both_reports_naming_it() {
    let t = Test::new().stack(STACK).local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);

    let (code, stderr) = drift_sh(&t);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&t.read("report/drift.json")).unwrap();
    assert_eq!(json["drift"], serde_json::json!([]), "{json}");
    let (tests, failures, failed, _) = junit(&t.path("report/drift.xml"));
    assert_eq!((tests.as_str(), failures.as_str()), ("3", "0"));
    assert!(failed.is_empty());

    // Out of band: the container's metadata rewritten through ARM, with characters XML must escape.
    let changed = r#"ops <on-call> & "nights""#;
    t.rest(async |c| {
        let path = format!(
            "{}/providers/Microsoft.Storage/storageAccounts/driftci01/blobServices/default/containers/reports?api-version=2025-01-01",
            c.rg()
        );
        let body = serde_json::json!({ "properties": { "metadata": { "owner": changed } } });
        let put = c.arm(Method::PUT, &path, Some(body)).await;
        assert!(put.status.is_success(), "{}", put.text);
    });

    let (code, stderr) = drift_sh(&t);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("changed outside stackform"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&t.read("report/drift.json")).unwrap();
    let drift = json["drift"].as_array().expect("a list");
    assert_eq!(drift.len(), 1, "{json}");
    assert_eq!(drift[0]["address"], "box");
    let (tests, failures, failed, texts) = junit(&t.path("report/drift.xml"));
    assert_eq!((tests.as_str(), failures.as_str()), ("3", "1"));
    assert_eq!(failed, ["box"]);
    assert!(
        texts[0].contains("box (blob_container) changed outside stackform: metadata")
            && texts[0].contains(&serde_json::to_string(changed).unwrap()),
        "{}",
        texts[0]
    );

    // The same report straight from the binary, with the exit code the recipe relies on.
    let out = t.run(["drift", "--format", "junit"]).code(2);
    assert!(
        out.stdout.contains("<failure type=\"drift\""),
        "{}",
        out.stdout
    );
}
