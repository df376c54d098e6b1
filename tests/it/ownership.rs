//! Ownership of cloud objects, end to end through the real binary and a real local cloud: two stacks
//! racing to create one storage account never both own it (stamps, checked after the create and
//! before any delete; one race here, one per seed in the reliability suite's long version), the stamp never shows as a change, and a cloud killed with SIGKILL during a
//! create leaves no orphan (an unknown outcome stays in the journal until a read settles it).
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::Value;

use crate::support::cloud::Cloud;
use crate::support::reliability::{Figures, long, scale, seeds};
use crate::support::{Test, finished, wait_until};

const MINUTE: Duration = Duration::from_secs(60);

/// A stack with a storage account named `account` and a container; `broken` adds a blob in a
/// container that does not exist, so the run fails after the account is created.
fn stack(name: &str, account: &str, broken: bool) -> String {
    let mut text = format!(
        "stack: {name}\ncloud:\n  kind: local\nresources:\n  store:\n    type: storage_account\n    name: {account}\n  data:\n    type: blob_container\n    account: ${{store.name}}\n    name: {name}\n"
    );
    if broken {
        text.push_str("  broken:\n    type: blob\n    account: ${store.name}\n    container: nosuchcontainer\n    name: x.txt\n    content: hello\n    depends_on: [data]\n");
    }
    text
}

/// The storage account `name` as the cloud has it, `None` when it does not exist.
async fn account_in(c: &Cloud, name: &str) -> Option<Value> {
    let a = c
        .arm(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/{name}?api-version=2025-01-01",
                c.rg()
            ),
            None,
        )
        .await;
    a.status.is_success().then_some(a.body)
}

fn account(t: &Test, name: &str) -> Option<Value> {
    t.rest(async |c: &Cloud| account_in(c, name).await)
}

#[test]
fn two_stacks_racing_for_one_storage_account_never_both_own_it() {
    // Two stacks naming the same storage account, applied at once, both "created" it (ARM's PUT is
    // create-or-update); the one that failed elsewhere deleted it in its rollback, and the other
    // reported success over an empty cloud. One race here (700 ms of latency, both started
    // together); the reliability suite's long version races once per seed, the latency (300-1000 ms)
    // and the second stack's head start (0-500 ms) drawn from the seed.
    let mut figures = Figures::default();
    let trials = seeds("racing_stacks", scale(1, 10));
    for (n, seed) in trials.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(seed);
        let (latency, head_start) = if n == 0 && !long() {
            (700, 0)
        } else {
            (rng.random_range(300..=1000), rng.random_range(0..=500))
        };
        println!("seed {seed}: latency {latency} ms, beta starts {head_start} ms after alpha");
        let beta_won = race(latency, head_start);
        figures.trials += 1;
        figures.faults += usize::from(beta_won);
    }
    figures.note = "two stacks, one account name; faults = races the second stack won".into();
    figures.report("two stacks racing for one name");
}

/// One race of [`two_stacks_racing_for_one_storage_account_never_both_own_it`]; returns whether
/// beta (the stack without a broken blob) won it.
fn race(latency: u64, head_start: u64) -> bool {
    let latency = latency.to_string();
    let alpha = Test::new()
        .stack(&stack("alpha", "sharedacct01", true))
        .local_cloud(&["--latency-ms", &latency, "--lro-ms", "1000"]);
    let beta = Test::new().stack(&stack("beta", "sharedacct01", false));
    let run = |t: &Test| {
        t.cmd()
            .env("STACKFORM_CLOUD_DIR", alpha.cloud_dir())
            .args(["apply", "--auto-approve"])
            .spawn()
    };
    let a = run(&alpha);
    std::thread::sleep(Duration::from_millis(head_start));
    let b = run(&beta);
    let (a, b) = (finished(a), finished(b));
    assert_ne!(a.code, 0, "alpha has a broken blob: {}", a.stderr);
    let live = account(&alpha, "sharedacct01");
    if b.code == 0 {
        // beta owns the account: it exists, carries beta's stamp, and beta's plan is clean.
        let live = live.unwrap_or_else(|| {
            panic!(
                "beta reported success but the account is gone\nalpha:\n{}\nbeta:\n{}",
                a.stderr, b.stderr
            )
        });
        assert_eq!(live["tags"]["stackform_stack"], "beta", "{live}");
        beta.cmd()
            .env("STACKFORM_CLOUD_DIR", alpha.cloud_dir())
            .args(["plan", "--detailed-exitcode"])
            .run()
            .code(0);
        beta.cmd()
            .env("STACKFORM_CLOUD_DIR", alpha.cloud_dir())
            .args(["destroy", "--auto-approve"])
            .run()
            .code(0);
    } else {
        // beta lost the race, and says so: the account is alpha's (its stamp came back after beta's
        // create, or beta's checks before the create found it). Any other failure is beta's work
        // pulled out from under it.
        assert!(
            [
                "belongs to stack `alpha`",
                "already exists in the cloud",
                "is already taken"
            ]
            .iter()
            .any(|why| b.stderr.contains(why)),
            "beta failed for another reason:\n{}\nalpha:\n{}",
            b.stderr,
            a.stderr
        );
    }
    assert!(
        account(&alpha, "sharedacct01").is_none(),
        "nothing is left once both stacks are gone"
    );
    b.code == 0
}

#[test]
fn the_stamp_is_written_but_never_shown_as_a_change_and_a_second_stack_may_not_import_it() {
    let s = Test::new()
        .stack(&stack("solo", "soloacct01", false))
        .local_cloud(&[]);
    s.run(["apply", "--auto-approve"]).code(0);
    let state: Value = serde_json::from_str(&s.read("state/solo.json")).unwrap();
    let lineage = state["lineage"].as_str().unwrap().to_string();
    let live = account(&s, "soloacct01").expect("the account exists");
    assert_eq!(
        live["tags"]["stackform_lineage"],
        lineage.as_str(),
        "{live}"
    );
    assert_eq!(live["tags"]["stackform_stack"], "solo", "{live}");
    let plan = s.run(["plan", "--detailed-exitcode"]).code(0);
    assert!(!plan.stdout.contains("stackform_"), "{}", plan.stdout);
    // Another stack may not adopt what this one stamped.
    let other = Test::new().stack(&stack("other", "soloacct01", false));
    let out = other
        .cmd()
        .env("STACKFORM_CLOUD_DIR", s.cloud_dir())
        .args(["state", "import", "store", live["id"].as_str().unwrap()])
        .run()
        .code(1);
    assert!(
        out.stderr.contains("belongs to stack `solo`"),
        "{}",
        out.stderr
    );
    // Unless it says so explicitly.
    other
        .cmd()
        .env("STACKFORM_CLOUD_DIR", s.cloud_dir())
        .args([
            "state",
            "import",
            "store",
            live["id"].as_str().unwrap(),
            "--take-over",
        ])
        .run()
        .code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn a_cloud_killed_during_a_create_leaves_no_orphan() {
    // With long operations, kill -9 of the local cloud two seconds into apply: apply reported
    // "rolled back" and removed its journal while the account existed, and the next apply failed
    // with StackformAlreadyExists.
    let mut s = Test::new()
        .stack(&stack("crash", "crashacct01", false))
        .local_cloud(&["--lro-ms", "6000"]);
    let child = s.cmd().args(["apply", "--auto-approve"]).spawn();
    s.rest(async |c: &Cloud| {
        wait_until("the account's create was accepted", MINUTE, async || {
            account_in(c, "crashacct01").await.map(|_| ())
        })
        .await
    });
    let dir = s.kill_9_cloud();
    let out = finished(child);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("Outcome unknown"), "{}", out.stderr);
    assert!(!out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(
        s.path("state/crash.journal").exists(),
        "the journal keeps the unsettled create"
    );
    s.start_cloud_again(dir, &[]);
    let out = s.run(["apply", "--auto-approve"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("already exists"), "{}", out.stderr);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    let list = s.run(["state", "list"]).code(0).stdout;
    assert_eq!(
        list.lines().filter(|l| !l.trim().is_empty()).count(),
        2,
        "{list}"
    );
    s.run(["destroy", "--auto-approve"]).code(0);
    assert!(account(&s, "crashacct01").is_none());
}
