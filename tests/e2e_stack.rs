//! End-to-end tests of the real binary against a real local cloud: the reference stack from empty to
//! applied and back to empty, rollback, --no-rollback, invoke errors, role propagation, concurrent runs,
//! and a kill -9 in the middle of an apply.
#[path = "cloud_support/mod.rs"]
mod cloud_support;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloud_support::Cloud;
use common::{Cmd, Output, repo_root};
use reqwest::Method;
use serde_json::Value;

/// A copy of an example in a throw-away folder (its own `state/`), bound to one local cloud.
struct Stack {
    dir: tempfile::TempDir,
    cloud: Cloud,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Stack {
    fn new(cloud_flags: &[&str]) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_root().join("examples/managed-identity"), dir.path());
        Stack {
            dir,
            cloud: Cloud::start_binary(cloud_flags),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self) -> Cmd {
        Cmd::new()
            .current_dir(self.dir.path())
            .env("STACKFORM_CLOUD_DIR", self.cloud.dir.path())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).run()
    }

    fn apply(&self) -> Output {
        self.run(&["apply", "--auto-approve"])
    }

    fn rest<T>(&self, f: impl AsyncFnOnce(&Cloud) -> T) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f(&self.cloud))
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

    fn state_list(&self) -> String {
        self.run(&["state", "list"]).code(0).stdout
    }
}

/// The model's own predictions for the sample request, computed from model.json.
fn expected_predictions() -> Vec<f64> {
    let model: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("examples/managed-identity/model/model.json"))
            .unwrap(),
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
    let s = Stack::new(&[]);
    let out = s.apply().code(0);
    assert!(out.stderr.contains("Apply complete"), "{}", out.stderr);
    assert!(
        out.stdout.contains("scoring_uri = https://127.0.0.1:"),
        "{}",
        out.stdout
    );

    let out = s
        .run(&[
            "invoke",
            "endpoint",
            "--request-file",
            "sample-request.json",
        ])
        .code(0);
    let answer: Vec<f64> = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(answer, expected_predictions());

    let out = s.run(&["logs", "blue"]).code(0);
    assert!(
        out.stdout
            .contains("init: read blob hello.txt: 'Hello world!'"),
        "{}",
        out.stdout
    );
    // `logs` with no resource names the stack's only deployment.
    assert!(
        s.run(&["logs"])
            .code(0)
            .stdout
            .contains("read blob hello.txt")
    );

    // A second apply has nothing to do; plan agrees.
    let out = s.apply().code(0);
    assert!(out.stdout.contains("No changes."), "{}", out.stdout);
    s.run(&["plan", "--detailed-exitcode"]).code(0);
    assert_eq!(
        s.run(&["output", "scoring_uri"])
            .code(0)
            .stdout
            .trim_end()
            .matches("/score")
            .count(),
        1
    );

    // A changed file is an in-place update of the blob.
    std::fs::write(s.path("hello.txt"), "Hello again!").unwrap();
    let out = s.run(&["plan", "--detailed-exitcode"]).code(2);
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
    let out = s.run(&["destroy", "--auto-approve"]).code(0);
    assert!(out.stderr.contains("Destroy complete"), "{}", out.stderr);
    assert_eq!(
        s.cloud_inventory(),
        (vec![], vec![]),
        "the local cloud still holds what the stack created"
    );
    assert!(s.state_list().trim().is_empty());
}

#[test]
fn failed_update_rolls_back_to_exactly_the_previous_state() {
    let s = Stack::new(&[]);
    s.apply().code(0);
    // Break init() and change an environment variable: the deployment update fails.
    let good = std::fs::read_to_string(s.path("onlinescoring/score.py")).unwrap();
    std::fs::write(
        s.path("onlinescoring/score.py"),
        good.replace(
            "    model = _load_model()",
            "    raise RuntimeError('broken on purpose')",
        ),
    )
    .unwrap();
    let out = s.apply().code(1);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Failed: ~ update `blue`"),
        "{}",
        out.stderr
    );
    // The invariant: with the previous stack file, plan shows no changes.
    std::fs::write(s.path("onlinescoring/score.py"), good).unwrap();
    let out = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let answer = s
        .run(&[
            "invoke",
            "endpoint",
            "--request-file",
            "sample-request.json",
        ])
        .code(0);
    assert!(answer.stdout.starts_with('['));
    s.run(&["destroy", "--auto-approve"]).code(0);
}

#[test]
fn no_rollback_keeps_partial_progress_recorded() {
    let s = Stack::new(&[]);
    let good = std::fs::read_to_string(s.path("onlinescoring/score.py")).unwrap();
    std::fs::write(
        s.path("onlinescoring/score.py"),
        good.replace(
            "    model = _load_model()",
            "    raise RuntimeError('broken on purpose')",
        ),
    )
    .unwrap();
    let out = s.run(&["apply", "--auto-approve", "--no-rollback"]).code(1);
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
    s.run(&["plan", "--detailed-exitcode"]).code(0);
    s.run(&["destroy", "--auto-approve"]).code(0);
}

#[test]
fn invoke_of_a_failing_run_exits_1_with_the_log_tail_and_never_prints_the_key() {
    let s = Stack::new(&[]);
    let good = std::fs::read_to_string(s.path("onlinescoring/score.py")).unwrap();
    std::fs::write(
        s.path("onlinescoring/score.py"),
        good.replace(
            "    rows = json.loads(raw_data)[\"data\"]",
            "    raise ValueError('run() is broken')",
        ),
    )
    .unwrap();
    s.apply().code(0);
    let out = s
        .run(&[
            "invoke",
            "endpoint",
            "--request-file",
            "sample-request.json",
        ])
        .code(1);
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
    let verbose = s.run(&[
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
    s.run(&["destroy", "--auto-approve"]).code(0);
}

#[test]
fn apply_waits_for_role_propagation_without_user_sleeps() {
    let s = Stack::new(&["--role-propagation-s", "4"]);
    let start = Instant::now();
    let out = s.apply();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("waiting for access to propagate"),
        "{}",
        out.stderr
    );
    assert!(start.elapsed() >= Duration::from_secs(4));
    let answer = s
        .run(&[
            "invoke",
            "endpoint",
            "--request-file",
            "sample-request.json",
        ])
        .code(0);
    assert!(answer.stdout.starts_with('['));
    s.run(&["destroy", "--auto-approve"]).code(0);
}

#[test]
fn a_second_apply_fails_at_once_naming_the_holder_or_waits_with_a_timeout() {
    let s = Stack::new(&["--lro-ms", "3000"]);
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_stackform"))
        .args(["apply", "--auto-approve"])
        .current_dir(s.dir.path())
        .env("STACKFORM_CLOUD_DIR", s.cloud.dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock (its lock file records it).
    let lock = s.path("state/managed-identity.lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("apply")) {
        assert!(
            Instant::now() < deadline,
            "the first apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = s.apply().code(1);
    assert!(out.stderr.contains("apply"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&first.id().to_string()),
        "the holder's pid is named: {}",
        out.stderr
    );
    // With a timeout the second run waits for the first and then finds nothing to do.
    let out = s.run(&["apply", "--auto-approve", "--lock-timeout", "5m"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(first.wait().unwrap().success());
    assert!(out.stdout.contains("No changes."), "{}", out.stdout);
    s.run(&["destroy", "--auto-approve"]).code(0);
}

#[test]
fn kill_9_during_apply_then_apply_again_converges_with_nothing_untracked() {
    let s = Stack::new(&["--lro-ms", "1500"]);
    for delay_ms in [300, 1800] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stackform"))
            .args(["apply", "--auto-approve"])
            .current_dir(s.dir.path())
            .env("STACKFORM_CLOUD_DIR", s.cloud.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    let out = s.apply();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    s.run(&["plan", "--detailed-exitcode"]).code(0);
    let list = s.state_list();
    assert_eq!(list.lines().count(), 6, "{list}");
    let (accounts, endpoints) = s.cloud_inventory();
    assert_eq!(
        (accounts.len(), endpoints.len()),
        (1, 1),
        "untracked objects in the cloud"
    );
    s.run(&["destroy", "--auto-approve"]).code(0);
    assert_eq!(s.cloud_inventory(), (vec![], vec![]));
}

#[test]
fn apply_refuses_to_prompt_without_a_terminal() {
    let s = Stack::new(&[]);
    let out = s.run(&["apply"]).code(1);
    assert!(out.stderr.contains("pass --auto-approve"), "{}", out.stderr);
    assert!(s.state_list().contains("No state yet"));
}

#[test]
fn saved_plan_applies_and_is_refused_once_stale() {
    let s = Stack::new(&[]);
    s.run(&["plan", "-o", "plan.json"]).code(0);
    let saved = std::fs::read_to_string(s.path("plan.json")).unwrap();
    assert!(saved.contains("\"format\": \"stackform-saved-plan\""));
    s.run(&["apply", "plan.json"]).code(0);
    // The state moved: the same saved plan is refused and nothing changes.
    let out = s.run(&["apply", "plan.json"]).code(1);
    assert!(
        out.stderr
            .contains("the state changed since this plan was made"),
        "{}",
        out.stderr
    );
    s.run(&["destroy", "--auto-approve"]).code(0);
}
