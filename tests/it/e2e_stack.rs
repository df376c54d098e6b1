//! End-to-end tests of the real binary against a real local cloud: the reference stack from empty to
//! applied and back to empty, rollback, --no-rollback, invoke errors, role propagation, concurrent runs,
//! a kill -9 in the middle of an apply, drift, state surgery and damaged state; and the CLI's human and
//! JSON output of plan, apply, drift and destroy as redacted snapshots (`snapshots/it__e2e_stack__*`).
use std::process::Child;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::support::cloud::Cloud;
use crate::support::{Output, Redactor, Test, example_dir, wait_until_blocking};

/// The reference example in a throw-away folder (its own `state/`), bound to a local cloud of its own
/// started with the given `cloud up` flags.
fn reference(cloud_flags: &[&str]) -> Test {
    Test::new()
        .example("managed-identity")
        .local_cloud(cloud_flags)
}

/// What these tests do with the reference stack, on top of [`Test`].
trait Reference {
    fn apply(&self) -> Output;
    fn cloud_inventory(&self) -> (Vec<String>, Vec<String>);
    fn invoke(&self) -> Output;
    fn assert_answers(&self);
    fn edit_score(&self, from: &str, to: &str) -> String;
    fn break_init(&self) -> String;
    fn spawn_apply(&self) -> Child;
    fn recorded(&self) -> usize;
    fn state_list(&self) -> String;
}

impl Reference for Test {
    fn apply(&self) -> Output {
        self.run(["apply", "--auto-approve"])
    }

    /// Names of the storage accounts and online endpoints the local cloud holds.
    fn cloud_inventory(&self) -> (Vec<String>, Vec<String>) {
        self.rest(async |c: &Cloud| {
            let names = |v: &Value| -> Vec<String> {
                v["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["name"].as_str().map(str::to_string))
                    .collect()
            };
            let sa = c
                .arm(
                    Method::GET,
                    &format!(
                        "{}/providers/Microsoft.Storage/storageAccounts?api-version=2025-01-01",
                        c.rg()
                    ),
                    None,
                )
                .await;
            let ep = c
                .arm(
                    Method::GET,
                    &format!("{}/onlineEndpoints?api-version=2025-12-01", c.ws()),
                    None,
                )
                .await;
            // The workspace's own storage account is seeded by the local cloud and not the stack's.
            let accounts = names(&sa.body)
                .into_iter()
                .filter(|n| n.starts_with("mistore"))
                .collect();
            (accounts, names(&ep.body))
        })
    }

    /// Calls the endpoint with the example's sample request.
    fn invoke(&self) -> Output {
        self.run([
            "invoke",
            "endpoint",
            "--request-file",
            "sample-request.json",
        ])
    }

    /// Asserts the endpoint answers the sample request with a JSON list.
    fn assert_answers(&self) {
        assert!(self.invoke().code(0).stdout.starts_with('['));
    }

    /// Replaces `from` by `to` in the scoring script; returns the script as it was.
    fn edit_score(&self, from: &str, to: &str) -> String {
        self.edit("onlinescoring/score.py", from, to)
    }

    /// Makes the scoring script's `init()` raise, so the deployment's update fails; returns the script
    /// as it was.
    fn break_init(&self) -> String {
        self.edit_score(
            "    model = _load_model()",
            "    raise RuntimeError('broken on purpose')",
        )
    }

    /// `apply --auto-approve` in the background (output captured), for tests that interrupt it.
    fn spawn_apply(&self) -> Child {
        self.cmd().args(["apply", "--auto-approve"]).spawn()
    }

    /// Resources recorded in the state file so far (0 when there is none yet).
    fn recorded(&self) -> usize {
        std::fs::read_to_string(self.path("state/managed-identity.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["resources"].as_object().map(serde_json::Map::len))
            .unwrap_or(0)
    }

    fn state_list(&self) -> String {
        self.run(["state", "list"]).code(0).stdout
    }
}

/// How long a test waits for a run it started in the background to reach a point.
const MINUTE: Duration = Duration::from_secs(60);

/// The model's own predictions for the sample request, computed from model.json.
fn expected_predictions() -> Vec<f64> {
    let model: Value = serde_json::from_str(
        &std::fs::read_to_string(example_dir("managed-identity").join("model/model.json")).unwrap(),
    )
    .unwrap();
    let w: Vec<f64> = model["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let b = model["bias"].as_f64().unwrap();
    let rows = [
        [1., 2., 3., 4., 5., 6., 7., 8., 9., 10.],
        [10., 9., 8., 7., 6., 5., 4., 3., 2., 1.],
    ];
    rows.iter()
        .map(|r| b + r.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>())
        .collect()
}

#[test]
fn reference_stack_applies_answers_and_destroys_to_nothing() {
    let s = reference(&[]);
    let out = s.apply().code(0);
    assert!(out.stderr.contains("Apply complete"), "{}", out.stderr);
    assert!(
        out.stdout.contains("scoring_uri = https://127.0.0.1:"),
        "{}",
        out.stdout
    );

    let out = s.invoke().code(0);
    let answer: Vec<f64> = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(answer, expected_predictions());

    let out = s.run(["logs", "blue"]).code(0);
    assert!(
        out.stdout
            .contains("init: read blob hello.txt: 'Hello world!'"),
        "{}",
        out.stdout
    );
    // `logs` with no resource names the stack's only deployment.
    assert!(
        s.run(["logs"])
            .code(0)
            .stdout
            .contains("read blob hello.txt")
    );

    // A second apply has nothing to do; plan agrees.
    let out = s.apply().code(0);
    assert!(out.stdout.contains("No changes."), "{}", out.stdout);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    assert_eq!(
        s.run(["output", "scoring_uri"])
            .code(0)
            .stdout
            .trim_end()
            .matches("/score")
            .count(),
        1
    );

    // A changed file is an in-place update of the blob.
    std::fs::write(s.path("hello.txt"), "Hello again!").unwrap();
    let args = ["plan", "--detailed-exitcode"];
    let out = s.run(args).code(2);
    insta::assert_snapshot!(
        "plan_update_of_a_changed_file",
        Redactor::for_test(&s).transcript(&args, &out)
    );
    assert!(
        out.stdout.contains("~ resource \"greeting\" (blob)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        out.stdout
    );

    let (accounts, endpoints) = s.cloud_inventory();
    assert_eq!((accounts.len(), endpoints.len()), (1, 1));
    let out = s.run(["destroy", "--auto-approve"]).code(0);
    assert!(out.stderr.contains("Destroy complete"), "{}", out.stderr);
    assert_eq!(
        s.cloud_inventory(),
        (vec![], vec![]),
        "the local cloud still holds what the stack created"
    );
    assert!(s.state_list().trim().is_empty());
}

/// The model version the deployment `blue` runs, and every registered version of its model.
fn model_versions(s: &Test) -> (String, Vec<String>) {
    s.rest(async |c: &Cloud| {
        let eps = c
            .arm(
                Method::GET,
                &format!("{}/onlineEndpoints?api-version=2025-12-01", c.ws()),
                None,
            )
            .await;
        let ep = eps.body["value"][0]["name"]
            .as_str()
            .expect("an endpoint")
            .to_string();
        let dep = c
            .arm(
                Method::GET,
                &format!(
                    "{}/onlineEndpoints/{ep}/deployments/blue?api-version=2025-12-01",
                    c.ws()
                ),
                None,
            )
            .await;
        let model = dep.body["properties"]["model"]
            .as_str()
            .expect("a model id")
            .to_string();
        let (container, running) = model.rsplit_once("/versions/").expect("a version id");
        let listed = c
            .arm(
                Method::GET,
                &format!("{container}/versions?api-version=2025-12-01"),
                None,
            )
            .await;
        let mut all: Vec<String> = listed.body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();
        all.sort();
        (running.to_string(), all)
    })
}

#[test]
fn model_versions_are_integers_chosen_by_content() {
    // Bug: models were registered under a hex content hash as version; Azure only accepts positive
    // integers (ModelVersionOutOfRange), so the first apply against Azure failed. A single-file code
    // path was registered as a file URI, while a code version names a folder.
    let s = reference(&[]);
    s.apply().code(0);
    assert_eq!(model_versions(&s), ("1".into(), vec!["1".into()]));
    s.run(["plan", "--detailed-exitcode"]).code(0);

    // New model content: the next integer; the plan saw the change by content, not by a version id.
    let original = s.read("model/model.json");
    s.write("model/extra.txt", "a second file in the model folder");
    let out = s.run(["plan", "--detailed-exitcode"]).code(2);
    assert!(out.stdout.contains("~ resource \"blue\""), "{}", out.stdout);
    s.apply().code(0);
    assert_eq!(
        model_versions(&s),
        ("2".into(), vec!["1".into(), "2".into()])
    );
    s.run(["plan", "--detailed-exitcode"]).code(0);

    // Back to the first content: version 1 is found by its recorded hash and reused.
    std::fs::remove_file(s.path("model/extra.txt")).unwrap();
    assert_eq!(s.read("model/model.json"), original);
    s.apply().code(0);
    assert_eq!(
        model_versions(&s),
        ("1".into(), vec!["1".into(), "2".into()])
    );
    s.run(["plan", "--detailed-exitcode"]).code(0);

    // The code as one file: uploaded into a folder of its own, the script still found and run.
    std::fs::create_dir_all(s.path("single")).unwrap();
    let script = s.read("onlinescoring/score.py");
    s.write(
        "single/score.py",
        &format!("# the scoring script as a single file\n{script}"),
    );
    s.edit(
        "deployment.yml",
        "code: ./onlinescoring",
        "code: ./single/score.py",
    );
    s.apply().code(0);
    s.assert_answers();
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn failed_update_rolls_back_to_exactly_the_previous_state() {
    let s = reference(&[]);
    s.apply().code(0);
    // Break init() and change an environment variable: the deployment update fails.
    let good = s.break_init();
    let out = s.apply().code(1);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Failed: ~ update `blue`"),
        "{}",
        out.stderr
    );
    // The invariant: with the previous stack file, plan shows no changes.
    std::fs::write(s.path("onlinescoring/score.py"), good).unwrap();
    let out = s.run(["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    s.assert_answers();
    s.run(["destroy", "--auto-approve"]).code(0);
}

/// The bug: a rollback sent the blob's previous inputs again, so it uploaded `hello.txt` as it was on
/// disk by then (the failed run's new text) while state recorded the old hash, and the next plan of the
/// previous files reported the blob changed outside stackform. The rollback now puts back the content
/// that was live, from the snapshot taken before the update, and removes the snapshot.
#[test]
fn rollback_puts_back_the_blob_content_that_was_live_not_the_changed_file() {
    let s = reference(&[]);
    s.apply().code(0);
    let hello = s.edit("hello.txt", "Hello world!", "Hello, changed world!");
    let good = s.break_init();
    let out = s.apply().code(1);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("↺ greeting: restore the previous inputs"),
        "the blob was updated before the deployment failed, then restored:\n{}",
        out.stderr
    );
    // The greeting blob over the data plane, with the account key.
    let greeting = |method: Method| {
        s.rest(async |c: &Cloud| {
            let key = c.account_key("mistore7f3a").await;
            c.blob_shared_key(
                method,
                "mistore7f3a",
                &key,
                "hello/hello.txt",
                Vec::new(),
                &[],
            )
            .await
        })
    };
    let blob = greeting(Method::GET);
    assert_eq!(blob.status, 200, "{}", blob.text);
    assert_eq!(blob.text, "Hello world!", "the blob holds the old text");
    // The invariant: with the previous files, plan shows no changes.
    s.write("hello.txt", &hello);
    std::fs::write(s.path("onlinescoring/score.py"), good).unwrap();
    let out = s.run(["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    s.assert_answers();
    // The snapshot is gone: a delete without `x-ms-delete-snapshots` is not refused.
    let deleted = greeting(Method::DELETE);
    assert_eq!(deleted.status, 202, "{}", deleted.text);
    s.run(["destroy", "--auto-approve"]).code(0);
}

/// The bug: after the local cloud came back on another port, `plan` showed the deployment's
/// `STORAGE_BLOB_ENDPOINT` moving to the new port, but apply resolved `${store.primary_blob_endpoint}`
/// from the outputs state recorded for the unchanged storage account (the old port), so init() failed
/// on every run. Apply resolves references against what the refresh read, as the plan did.
#[test]
fn apply_sends_what_the_plan_showed_after_the_cloud_moved_to_another_port() {
    let mut s = reference(&[]);
    s.apply().code(0);
    let (before, after) = s.restart_cloud(&[]);
    assert_ne!(before, after, "the cloud came back on another port");
    let port = |url: &str| {
        url.rsplit(':')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned()
    };
    let plan = s.run(["plan", "--detailed-exitcode"]).code(2);
    assert!(
        plan.stdout.contains("STORAGE_BLOB_ENDPOINT") && plan.stdout.contains(&port(&after)),
        "{}",
        plan.stdout
    );
    let out = s.apply();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.assert_answers();
    s.run(["destroy", "--auto-approve"]).code(0);
}

/// The bug: the journal was created when apply opened it, so an apply with nothing to do left an
/// empty `<stack>.journal` beside the state.
#[test]
fn an_apply_with_nothing_to_do_leaves_no_journal() {
    let s = Test::new()
        .stack(
            "stack: quiet\ncloud: { kind: local, location: eastus }\nresources:\n  store:\n    type: storage_account\n    name: quietstore1\n    sku: Standard_LRS\n",
        )
        .local_cloud(&[]);
    s.run(["apply", "--auto-approve"]).code(0);
    let journal = s.path("state/quiet.journal");
    assert!(!journal.exists(), "a clean run removes the journal");
    let out = s.run(["apply", "--auto-approve"]).code(0);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    assert!(
        !journal.exists(),
        "a run that sent nothing leaves no journal"
    );
}

#[test]
fn no_rollback_keeps_partial_progress_recorded() {
    let s = reference(&[]);
    let good = s.break_init();
    let out = s.run(["apply", "--auto-approve", "--no-rollback"]).code(1);
    assert!(
        out.stderr.contains("partial progress is kept"),
        "{}",
        out.stderr
    );
    let list = s.state_list();
    for address in ["store", "data", "greeting", "endpoint", "reader"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(address) && l.contains("ready")),
            "{address} missing:\n{list}"
        );
    }
    // Fixing the script and applying again converges.
    std::fs::write(s.path("onlinescoring/score.py"), good).unwrap();
    s.apply().code(0);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn invoke_of_a_failing_run_exits_1_with_the_log_tail_and_never_prints_the_key() {
    let s = reference(&[]);
    s.edit_score(
        "    rows = json.loads(raw_data)[\"data\"]",
        "    raise ValueError('run() is broken')",
    );
    s.apply().code(0);
    let out = s.invoke().code(1);
    assert!(out.stderr.contains("run() is broken"), "{}", out.stderr);
    assert!(
        out.stderr.contains("last lines of deployment `blue`'s log"),
        "{}",
        out.stderr
    );
    let keys = s.rest(async |c: &Cloud| {
        let path = format!(
            "{}/onlineEndpoints/my-sai-endpoint-7f3a/listKeys?api-version=2025-12-01",
            c.ws()
        );
        c.arm(Method::POST, &path, None).await.body
    });
    let key = keys["primaryKey"].as_str().expect("a key");
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(key), "the endpoint key leaked");
    }
    let verbose = s.run([
        "-vv",
        "invoke",
        "endpoint",
        "--request-file",
        "sample-request.json",
    ]);
    assert!(
        !verbose.stderr.contains(key) && !verbose.stdout.contains(key),
        "the key leaked into debug logs"
    );
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn apply_waits_for_role_propagation_without_user_sleeps() {
    let s = reference(&["--role-propagation-s", "8"]);
    let start = Instant::now();
    let out = s.apply();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("waiting for access to propagate"),
        "{}",
        out.stderr
    );
    assert!(start.elapsed() >= Duration::from_secs(8));
    s.assert_answers();
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn a_second_apply_fails_at_once_naming_the_holder_or_waits_with_a_timeout() {
    let s = reference(&["--lro-ms", "3000"]);
    let mut first = s.spawn_apply();
    // Wait until the first run holds the lock (its lock file records it).
    let lock = s.path("state/managed-identity.lock");
    wait_until_blocking("the first apply holds the lock", MINUTE, || {
        std::fs::read_to_string(&lock)
            .is_ok_and(|t| t.contains("apply"))
            .then_some(())
    });
    let out = s.apply().code(1);
    assert!(out.stderr.contains("apply"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&first.id().to_string()),
        "the holder's pid is named: {}",
        out.stderr
    );
    // With a timeout the second run waits for the first and then finds nothing to do.
    let out = s.run(["apply", "--auto-approve", "--lock-timeout", "5m"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(first.wait().unwrap().success());
    assert!(out.stdout.contains("No changes."), "{}", out.stdout);
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn kill_9_during_apply_then_apply_again_converges_with_nothing_untracked() {
    let s = reference(&["--lro-ms", "1500"]);
    // Killed once right after the first steps were journaled (nothing recorded yet), once in the
    // middle (some recorded, others in flight), each followed by a run that is killed again or converges.
    let journal = s.path("state/managed-identity.journal");
    let points: [(&str, &dyn Fn() -> bool); 2] = [
        ("the first steps are journaled", &|| {
            std::fs::metadata(&journal).map_or(0, |m| m.len()) > 0
        }),
        ("three resources are recorded", &|| s.recorded() >= 3),
    ];
    for (what, point) in points {
        let mut child = s.spawn_apply();
        wait_until_blocking(what, MINUTE, || point().then_some(()));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let out = s.apply();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    let list = s.state_list();
    assert_eq!(list.lines().count(), 6, "{list}");
    let (accounts, endpoints) = s.cloud_inventory();
    assert_eq!(
        (accounts.len(), endpoints.len()),
        (1, 1),
        "untracked objects in the cloud"
    );
    s.run(["destroy", "--auto-approve"]).code(0);
    assert_eq!(s.cloud_inventory(), (vec![], vec![]));
}

#[test]
fn apply_refuses_to_prompt_without_a_terminal() {
    let s = reference(&[]);
    let out = s.run(["apply"]).code(1);
    assert!(out.stderr.contains("pass --auto-approve"), "{}", out.stderr);
    assert!(s.state_list().contains("No state yet"));
}

#[test]
fn saved_plan_applies_and_is_refused_once_stale() {
    let s = reference(&[]);
    s.run(["plan", "-o", "plan.json"]).code(0);
    let saved = std::fs::read_to_string(s.path("plan.json")).unwrap();
    assert!(saved.contains("\"format\": \"stackform-saved-plan\""));
    s.run(["apply", "plan.json"]).code(0);
    // The state moved: the same saved plan is refused and nothing changes.
    let out = s.run(["apply", "plan.json"]).code(1);
    assert!(
        out.stderr
            .contains("the state changed since this plan was made"),
        "{}",
        out.stderr
    );
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn a_create_never_takes_over_an_object_another_stack_owns() {
    // Two copies of the example share resource names: the second must refuse, and the first stack's
    // objects must survive. The second copy has no state, so its plan finds the objects before any
    // step runs (issue 19): the plan names them with the import commands and nothing is created.
    let s = reference(&[]);
    s.apply().code(0);
    let other = Test::new().example("managed-identity");
    let out = other
        .cmd()
        .env("STACKFORM_CLOUD_DIR", s.cloud_dir())
        .args(["apply", "--auto-approve"])
        .run()
        .code(1);
    assert!(
        out.stdout.contains("already exist in the cloud")
            && out.stderr.contains("already exist in the cloud"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("stackform state import"),
        "{}",
        out.stdout
    );
    assert!(
        !other.path("state").exists(),
        "a refused first apply leaves no state folder"
    );
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.assert_answers();
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn drift_made_out_of_band_is_reported_then_restored_by_apply() {
    let s = reference(&[]);
    // One step at a time: drift is listed in the order the state recorded the resources, which after
    // a parallel apply is the order the steps happened to finish in, and the snapshots below show it.
    s.run(["apply", "--auto-approve", "--parallelism", "1"])
        .code(0);
    s.run(["drift"]).code(0);
    // Out of band: rewrite the blob with the account key, delete the role assignment.
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(s.path("state/managed-identity.json")).unwrap(),
    )
    .unwrap();
    let reader_id = state["resources"]["reader"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.rest(async |c: &Cloud| {
        let key = c.account_key("mistore7f3a").await;
        c.put_blob(
            "mistore7f3a",
            &key,
            "hello",
            "hello.txt",
            b"Changed by hand\n".to_vec(),
        )
        .await;
        let a = c
            .arm(
                Method::DELETE,
                &format!("{reader_id}?api-version=2022-04-01"),
                None,
            )
            .await;
        assert!(a.status.is_success(), "{}", a.text);
    });
    let args = ["drift"];
    let out = s.run(args).code(2);
    assert!(out.stdout.contains("greeting"), "{}", out.stdout);
    assert!(out.stdout.contains("reader"), "{}", out.stdout);
    insta::assert_snapshot!(
        "drift_made_out_of_band",
        Redactor::for_test(&s).transcript(&args, &out)
    );
    let args = ["drift", "--json"];
    let out = s.run(args).code(2);
    insta::assert_json_snapshot!(
        "drift_made_out_of_band_json",
        Redactor::for_test(&s).json_transcript(&args, &out)
    );
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let drifted: Vec<&str> = json["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["address"].as_str().unwrap())
        .collect();
    assert!(
        drifted.contains(&"greeting") && drifted.contains(&"reader"),
        "{drifted:?}"
    );
    // The plan restores both; the blob's change is shown as a line diff against the live text.
    let args = ["plan", "--detailed-exitcode"];
    let plan = s.run(args).code(2);
    insta::assert_snapshot!(
        "plan_restoring_drift",
        Redactor::for_test(&s).transcript(&args, &plan)
    );
    assert!(plan.stdout.contains("- Changed by hand"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("+ resource \"reader\" (role_assignment)"),
        "{}",
        plan.stdout
    );
    s.apply().code(0);
    s.run(["drift"]).code(0);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn state_surgery_list_show_rm_import() {
    let s = reference(&[]);
    s.apply().code(0);
    let list = s.state_list();
    assert_eq!(list.lines().count(), 6, "{list}");
    let show: Value =
        serde_json::from_str(&s.run(["state", "show", "reader"]).code(0).stdout).unwrap();
    assert_eq!(show["type"], "role_assignment");
    assert_eq!(show["inputs"]["role"], "Storage Blob Data Reader");
    let out = s.run(["state", "show", "reeder"]).code(1);
    assert!(
        out.stderr.contains("did you mean `reader`?"),
        "{}",
        out.stderr
    );
    // `greeting` is used by `blue`: removing it needs --force.
    let out = s.run(["state", "rm", "greeting"]).code(1);
    assert!(out.stderr.contains("blue"), "{}", out.stderr);
    let blue_id = show_id(&s, "blue");
    let out = s.run(["state", "rm", "blue"]).code(0);
    assert!(
        out.stdout.contains("still exists in the cloud"),
        "{}",
        out.stdout
    );
    // Forgotten but still there: apply refuses to create it over the live one, and import adopts it.
    let plan = s.run(["plan", "--detailed-exitcode"]).code(2);
    assert!(
        plan.stdout.contains("+ resource \"blue\""),
        "{}",
        plan.stdout
    );
    let out = s.apply().code(1);
    assert!(
        out.stderr.contains("already exists in the cloud"),
        "{}",
        out.stderr
    );
    s.run(["state", "import", "blue", &blue_id]).code(0);
    let out = s.run(["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    s.run(["destroy", "--auto-approve"]).code(0);
}

fn show_id(s: &Test, address: &str) -> String {
    let show: Value =
        serde_json::from_str(&s.run(["state", "show", address]).code(0).stdout).unwrap();
    show["id"].as_str().unwrap().to_string()
}

#[test]
fn damaged_state_is_an_error_and_is_left_untouched() {
    let s = reference(&[]);
    std::fs::create_dir_all(s.path("state")).unwrap();
    for (what, text) in [
        ("corrupt", "{ this is not json"),
        ("truncated", "{\"version\": 1, \"lineage\": \"6f1e"),
        (
            "future",
            "{\"version\": 99, \"lineage\": \"6f1e8f5e-8d43-4c1c-9d55-7e0b4a0c8a11\", \"serial\": 3, \"stack\": \"managed-identity\", \"resources\": {}, \"outputs\": {}}",
        ),
    ] {
        std::fs::write(s.path("state/managed-identity.json"), text).unwrap();
        for args in [
            &["plan", "--detailed-exitcode"][..],
            &["apply", "--auto-approve"][..],
            &["destroy", "--auto-approve"][..],
        ] {
            let out = s.run(args).code(1);
            assert!(
                out.stderr.contains("managed-identity.json"),
                "{what} {args:?}: {}",
                out.stderr
            );
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
            assert_eq!(
                std::fs::read_to_string(s.path("state/managed-identity.json")).unwrap(),
                text,
                "{what}: the file changed"
            );
        }
    }
    assert_eq!(
        s.cloud_inventory(),
        (vec![], vec![]),
        "nothing may be created from a damaged state"
    );
}

#[test]
fn target_limits_plan_and_apply_to_a_resource_and_its_dependencies() {
    let s = reference(&[]);
    let out = s.run(["plan", "--target", "data"]).code(0);
    insta::assert_snapshot!(
        "plan_with_a_target",
        Redactor::for_test(&s).transcript(&["plan", "--target", "data"], &out)
    );
    assert!(
        out.stdout
            .contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{}",
        out.stdout
    );
    s.run(["apply", "--auto-approve", "--target", "data"])
        .code(0);
    assert_eq!(s.state_list().lines().count(), 2);
    let out = s.run(["plan", "--target", "dta"]).code(1);
    assert!(
        out.stderr.contains("did you mean `data`?"),
        "{}",
        out.stderr
    );
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn ctrl_c_stops_scheduling_saves_state_and_exits_130() {
    let s = reference(&["--lro-ms", "2500"]);
    let child = s.spawn_apply();
    // Interrupt once the run has journaled its first steps.
    let journal = s.path("state/managed-identity.journal");
    wait_until_blocking("the first steps are journaled", MINUTE, || {
        (std::fs::metadata(&journal).map_or(0, |m| m.len()) > 0).then_some(())
    });
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("stackform apply` to continue"), "{stderr}");
    // What finished is recorded; a second apply completes the stack.
    s.apply().code(0);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn api_version_overrides_in_the_stack_reach_the_wire() {
    let s = reference(&[]);
    let text = std::fs::read_to_string(s.path("stack.yaml")).unwrap();
    let text = text.replacen(
        "  kind: local",
        "  kind: local\n  api_versions: { storage_account: \"2024-01-01\" }",
        1,
    );
    std::fs::write(s.path("stack.yaml"), text).unwrap();
    s.run(["apply", "--auto-approve", "--target", "store"])
        .code(0);
    let out = s.run(["-v", "plan", "--target", "store"]).code(0);
    assert!(
        out.stderr
            .contains("storageAccounts/mistore7f3a?api-version=2024-01-01"),
        "{}",
        out.stderr
    );
    s.run(["destroy", "--auto-approve"]).code(0);
}

/// The CLI's human and JSON output for a whole run of the reference stack, as snapshots: plan, apply,
/// drift and destroy in both forms. One step at a time (`--parallelism 1`) so the order of the progress
/// lines is the plan's; everything that varies between runs goes through the [`Redactor`].
#[test]
fn run_output_in_human_and_json_form() {
    let s = reference(&[]);
    let snap = |name: &str, args: &[&str], code: i32| {
        let out = s.run(args).code(code);
        insta::assert_snapshot!(name, Redactor::for_test(&s).transcript(args, &out));
        out
    };
    let snap_json = |name: &str, args: &[&str], code: i32| {
        let out = s.run(args).code(code);
        insta::assert_json_snapshot!(name, Redactor::for_test(&s).json_transcript(args, &out));
        out
    };
    let one = ["--parallelism", "1"];
    let with = |args: &[&'static str]| -> Vec<&'static str> { [args, &one[..]].concat() };

    snap(
        "run_plan_create",
        &with(&["plan", "--detailed-exitcode"]),
        2,
    );
    snap_json("run_plan_create_json", &with(&["plan", "--json"]), 0);
    let out = snap("run_apply", &with(&["apply", "--auto-approve"]), 0);
    assert!(out.stderr.contains("Apply complete"), "{}", out.stderr);
    snap("run_drift_none", &with(&["drift"]), 0);
    snap_json("run_drift_none_json", &with(&["drift", "--json"]), 0);
    snap_json(
        "run_destroy_json",
        &with(&["destroy", "--auto-approve", "--json"]),
        0,
    );
    assert_eq!(s.cloud_inventory(), (vec![], vec![]));
    snap_json(
        "run_apply_json",
        &with(&["apply", "--auto-approve", "--json"]),
        0,
    );
    snap_json(
        "run_plan_none_json",
        &with(&["plan", "--json", "--detailed-exitcode"]),
        0,
    );
    let out = snap("run_destroy", &with(&["destroy", "--auto-approve"]), 0);
    assert!(out.stderr.contains("Destroy complete"), "{}", out.stderr);
    assert_eq!(s.cloud_inventory(), (vec![], vec![]));
}
