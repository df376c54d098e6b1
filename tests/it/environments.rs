//! Demo environments, end to end through the real binary (issue 19): `--env NAME` (or `STACKFORM_ENV`)
//! gives the same stack file a state of its own and `${stack.env}` for unique names, so a workshop
//! host's loop makes independent copies; `env list` shows them with resource counts and ages;
//! `destroy --env NAME` removes one and leaves the others untouched.
use reqwest::Method;

use crate::support::Test;

/// Names made unique by the environment: a storage account (3 to 24 lowercase letters and digits) and
/// a container in it.
const WORKSHOP: &str = r#"
stack: workshop
cloud: { kind: local }
resources:
  store: { type: storage_account, name: "ws${stack.env}01" }
  box: { type: blob_container, account: "${store.name}", name: "notes-${stack.env}" }
outputs:
  account: ${store.name}
"#;

/// Whether the test's cloud holds the storage account `name`.
fn account_exists(t: &Test, name: &str) -> bool {
    t.rest(async |c| {
        let path = format!(
            "{}/providers/Microsoft.Storage/storageAccounts/{name}?api-version=2025-01-01",
            c.rg()
        );
        c.arm(Method::GET, &path, None).await.status == 200
    })
}

#[test]
fn a_workshop_makes_independent_copies_and_destroys_one() {
    // There was no way to run one stack file several times side by side: a second apply planned
    // against the first one's state.
    let t = Test::new().stack(WORKSHOP).local_cloud(&[]);
    for u in ["alice", "bob"] {
        t.run(["apply", "--env", u, "--auto-approve"]).code(0);
    }
    // The environment variable chooses it too.
    t.cmd()
        .env("STACKFORM_ENV", "carol")
        .args(["apply", "--auto-approve"])
        .run()
        .code(0);
    for u in ["alice", "bob", "carol"] {
        assert!(
            t.path(&format!("state/env/{u}/workshop.json")).is_file(),
            "{u}"
        );
        assert!(account_exists(&t, &format!("ws{u}01")), "{u}");
        let out = t.run(["output", "account", "--env", u]).code(0);
        assert_eq!(out.stdout.trim(), format!("ws{u}01"));
    }
    assert!(!t.path("state/workshop.json").exists(), "no shared state");

    let list = t.run(["env", "list"]).code(0);
    let rows: Vec<Vec<&str>> = list
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(names, ["alice", "bob", "carol"], "{}", list.stdout);
    assert!(rows.iter().all(|r| r[1] == "2"), "{}", list.stdout);
    assert!(list.stdout.starts_with("ENV"), "{}", list.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&t.run(["env", "list", "--json"]).code(0).stdout).unwrap();
    assert_eq!(json[0]["name"], "alice");
    assert_eq!(json[0]["resources"], 2);
    assert!(json[0]["created"].is_string(), "{json}");

    let out = t.run(["destroy", "--env", "bob", "--auto-approve"]).code(0);
    assert!(
        out.stderr.contains("Removed environment `bob`"),
        "{}",
        out.stderr
    );
    assert!(!account_exists(&t, "wsbob01"));
    assert!(!t.path("state/env/bob").exists());
    let list = t.run(["env", "list"]).code(0);
    assert!(
        list.stdout.contains("alice")
            && list.stdout.contains("carol")
            && !list.stdout.contains("bob"),
        "{}",
        list.stdout
    );
    for u in ["alice", "carol"] {
        assert!(account_exists(&t, &format!("ws{u}01")), "{u}");
        t.run(["plan", "--env", u, "--detailed-exitcode"]).code(0);
    }
}

#[test]
fn stack_env_needs_an_environment_and_a_valid_name() {
    let t = Test::new().stack(WORKSHOP);
    let out = t.run(["validate"]).code(1);
    assert!(
        out.stderr
            .contains("`${stack.env}` is used but no environment was chosen")
            && out.stderr.contains("pass --env NAME"),
        "{}",
        out.stderr
    );
    let out = t.run(["validate", "--env", "dave"]).code(0);
    assert!(out.stdout.contains("is valid"), "{}", out.stdout);
    let out = t.run(["validate", "--env", "Dave_1"]).code(1);
    assert!(
        out.stderr.contains("not an environment name"),
        "{}",
        out.stderr
    );
    let out = t
        .run(["plan", "--env", "dave", "--state", "x.json"])
        .code(1);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    // `env list` needs only the stack's name, not an environment.
    let out = t.run(["env", "list"]).code(0);
    assert!(out.stdout.contains("No environments"), "{}", out.stdout);
}

#[test]
fn a_saved_plan_keeps_its_environment() {
    let t = Test::new().stack(WORKSHOP).local_cloud(&[]);
    t.run(["plan", "--env", "erin", "-o", "erin.plan"]).code(0);
    let out = t.run(["apply", "erin.plan", "--env", "frank"]).code(1);
    assert!(
        out.stderr.contains("made for --env erin, not --env frank"),
        "{}",
        out.stderr
    );
    t.run(["apply", "erin.plan"]).code(0);
    assert!(t.path("state/env/erin/workshop.json").is_file());
    assert!(account_exists(&t, "wserin01"));
}
