//! A kill -9 in the middle of a large apply, through the real binary against a local cloud of its
//! own that finishes long-running operations at once (`--retry-after-s 0`): the synthetic stack of
//! `scripts/gen_stack.py` with 2,001 resources (667 storage accounts, each with a blob container
//! holding one blob). The run is killed while hundreds of steps are journaled and others are in
//! flight; the next apply must converge with nothing untracked in the cloud (no orphan) and
//! nothing recorded that is not there (no ghost): `plan` is then clean.
use std::time::Duration;

use serde_json::Value;

use crate::support::cloud::Cloud;
use crate::support::reliability::{account_names, synthetic_stack};
use crate::support::{Test, drain, wait_until_blocking};

#[test]
fn kill_9_in_the_middle_of_a_2000_resource_apply_then_apply_converges() {
    let s = Test::new()
        .stack(&synthetic_stack(2001, "sfkill", "bench"))
        .local_cloud(&["--retry-after-s", "0"]);
    let journal = s.path("state/bench.journal");
    let journaled = |kind: &str| {
        std::fs::read_to_string(&journal)
            .map_or(0, |t| t.matches(&format!("\"kind\":\"{kind}\"")).count())
    };
    let mut child = s
        .cmd()
        .args(["apply", "--auto-approve", "--parallelism", "32"])
        .spawn();
    // Its plan and progress are thousands of lines: drain the pipes so it never blocks on them.
    let drains = drain(&mut child);
    // In the middle: hundreds of steps recorded as journal commits, others in flight.
    wait_until_blocking(
        "600 steps are journaled",
        Duration::from_secs(20 * 60),
        || (journaled("intent") >= 600 && journaled("commit") > 0).then_some(()),
    );
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    for drain in drains {
        let _ = drain.join();
    }
    assert!(
        journaled("intent") < 2001,
        "the run was killed before it finished"
    );

    let out = s.run(["apply", "--auto-approve", "--parallelism", "32"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!journal.exists(), "a clean run removes the journal");
    let state: Value = serde_json::from_str(&s.read("state/bench.json"))
        .expect("the state file is one JSON document");
    assert_eq!(
        state["resources"].as_object().map(serde_json::Map::len),
        Some(2001)
    );
    s.run(["plan", "--detailed-exitcode"]).code(0);
    let accounts = s.rest(async |c: &Cloud| account_names(c, "sfkill").await);
    assert_eq!(accounts.len(), 667, "untracked accounts in the cloud");
}
