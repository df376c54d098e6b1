//! Blue/green rollout end to end, through the real binary against a real local cloud: the reference
//! stack's `blue` at 100 → `blue` 50 / `green` 50 → `green` 100 → `blue` removed → destroy, each step
//! one `apply --auto-approve` whose plan shows the endpoint's traffic map before → after, a clean plan
//! after it, and the live map and the scoring URI checked. An endpoint's traffic map is one value that
//! Azure takes only whole (adding up to 100 or empty, naming existing deployments), so stackform sets it
//! in one endpoint update after the deployments exist and before any of them is deleted.
use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;

use crate::support::cloud::Cloud;
use crate::support::{Output, Test};

const ENDPOINT: &str = "my-sai-endpoint-7f3a";

/// `green`: the example's deployment again, under another name, with the given share.
fn green(traffic: u32) -> String {
    format!(
        "  green:
    type: online_deployment
    file: ./deployment.yml
    name: green
    endpoint: ${{endpoint.name}}
    traffic: {traffic}
    environment_variables:
      STORAGE_ACCOUNT_NAME: ${{store.name}}
      STORAGE_BLOB_ENDPOINT: ${{store.primary_blob_endpoint}}
      STORAGE_CONTAINER_NAME: ${{data.name}}
      FILE_NAME: ${{greeting.name}}
"
    )
}

/// The endpoint's traffic map as the cloud holds it (entries at 0 left out).
fn live_traffic(t: &Test) -> BTreeMap<String, u64> {
    t.rest(async |c: &Cloud| {
        let ep = c
            .arm(
                Method::GET,
                &format!(
                    "{}/onlineEndpoints/{ENDPOINT}?api-version=2025-12-01",
                    c.ws()
                ),
                None,
            )
            .await;
        assert_eq!(ep.status, 200, "{}", ep.body);
        ep.body["properties"]["traffic"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_u64().filter(|p| *p > 0).map(|p| (k.clone(), p)))
            .collect()
    })
}

/// Sets the `traffic:` of the deployment `name` in the stack file.
fn set_share(t: &Test, name: &str, share: u32) {
    let stack = t.read("stack.yaml");
    let start = stack
        .find(&format!("  {name}:\n"))
        .unwrap_or_else(|| panic!("{name} in the stack"));
    let at = start
        + stack[start..]
            .find("    traffic: ")
            .unwrap_or_else(|| panic!("{name} has a traffic line"));
    let end = at + stack[at..].find('\n').expect("a line");
    t.write(
        "stack.yaml",
        &format!("{}    traffic: {share}{}", &stack[..at], &stack[end..]),
    );
}

/// Removes the deployment `name` (its block ends where the next resource or `outputs:` starts).
fn remove(t: &Test, name: &str) {
    let stack = t.read("stack.yaml");
    let start = stack
        .find(&format!("  {name}:\n"))
        .unwrap_or_else(|| panic!("{name} in the stack"));
    let rest = &stack[start + 3..];
    let end = start
        + 3
        + rest
            .find("\n  green:\n")
            .or_else(|| rest.find("\noutputs:\n"))
            .expect("a following block")
        + 1;
    t.write(
        "stack.yaml",
        &format!("{}{}", &stack[..start], &stack[end..]),
    );
}

fn map(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Plans (expecting changes), checks the plan shows `line`, applies, and checks the next plan is clean.
fn step(t: &Test, line: &str) -> Output {
    let plan = t.run(["plan", "--detailed-exitcode"]).code(2);
    assert!(
        plan.stdout.contains(line),
        "no `{line}` in\n{}",
        plan.stdout
    );
    let applied = t.run(["apply", "--auto-approve"]).code(0);
    assert!(
        applied.stderr.contains("Apply complete"),
        "{}",
        applied.stderr
    );
    t.run(["plan", "--detailed-exitcode"]).code(0);
    plan
}

fn answers(t: &Test, deployment: Option<&str>) {
    let mut args = vec![
        "invoke",
        "endpoint",
        "--request-file",
        "sample-request.json",
    ];
    if let Some(d) = deployment {
        args.extend(["--deployment", d]);
    }
    let out = t.run(args).code(0);
    let answer: Vec<f64> = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!("{e}: {}", out.stdout);
    });
    assert_eq!(answer.len(), 2);
}

#[test]
fn blue_green_rollout_moves_traffic_in_one_apply_per_step() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);
    assert_eq!(live_traffic(&t), map(&[("blue", 100)]));
    t.run(["plan", "--detailed-exitcode"]).code(0);

    // 1. green joins at 50, blue gives up 50: green is created at 0, then one endpoint update.
    set_share(&t, "blue", 50);
    t.edit(
        "stack.yaml",
        "outputs:\n",
        &format!("{}outputs:\n", green(50)),
    );
    let json = t.run(["plan", "--json"]).code(0);
    let plan: Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    let traffic = &plan["maps"][0];
    assert_eq!(traffic["address"], "endpoint");
    assert_eq!(traffic["field"], "traffic");
    assert_eq!(traffic["action"], "update");
    assert_eq!(traffic["before"], serde_json::json!({"blue": 100}));
    assert_eq!(
        traffic["after"],
        serde_json::json!({"blue": 50, "green": 50})
    );
    let plan = step(&t, "~ endpoint traffic {blue: 100} → {blue: 50, green: 50}");
    assert!(
        plan.stdout.contains("+ resource \"green\""),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("resource \"blue\""),
        "a change of share alone never redeploys blue:\n{}",
        plan.stdout
    );
    assert_eq!(live_traffic(&t), map(&[("blue", 50), ("green", 50)]));
    answers(&t, None);
    answers(&t, Some("green"));

    // 2. All traffic to green: only the map changes.
    set_share(&t, "blue", 0);
    set_share(&t, "green", 100);
    let plan = step(
        &t,
        "~ endpoint traffic {blue: 50, green: 50} → {green: 100}",
    );
    assert!(!plan.stdout.contains("resource \""), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert_eq!(live_traffic(&t), map(&[("green", 100)]));
    answers(&t, None);

    // 3. blue goes; it has no share left, so the map stays as it is.
    remove(&t, "blue");
    let plan = step(&t, "- resource \"blue\" (online_deployment)");
    assert!(!plan.stdout.contains("endpoint traffic"), "{}", plan.stdout);
    assert_eq!(live_traffic(&t), map(&[("green", 100)]));
    answers(&t, None);

    let out = t.run(["destroy", "--auto-approve"]).code(0);
    assert!(out.stderr.contains("Destroy complete"), "{}", out.stderr);
    assert!(t.run(["state", "list"]).code(0).stdout.trim().is_empty());
}

/// Regression: each deployment put its own share into the endpoint's map, so adding `green` at 50
/// while `blue` went to 50 sent `{blue: 100, green: 50}` (or `{blue: 50}` first), which Azure refuses:
/// the apply failed and was rolled back, whatever the parallelism.
#[test]
fn a_fifty_fifty_split_applies_in_one_run() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);
    set_share(&t, "blue", 50);
    t.edit(
        "stack.yaml",
        "outputs:\n",
        &format!("{}outputs:\n", green(50)),
    );
    let out = t.run(["apply", "--auto-approve", "--parallelism", "1"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(live_traffic(&t), map(&[("blue", 50), ("green", 50)]));
    // Deleting one side of the split moves its share first: green takes all of it, then blue goes.
    remove(&t, "blue");
    set_share(&t, "green", 100);
    let out = t.run(["apply", "--auto-approve"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(live_traffic(&t), map(&[("green", 100)]));
    t.run(["plan", "--detailed-exitcode"]).code(0);
}
