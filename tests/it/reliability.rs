//! The reliability suite of issue 18 (item 14), end to end through the real binary and a local cloud
//! of each test's own: kill -9 of `apply` and `destroy` at seeded moments, kill -9 of the cloud
//! mid-apply, the rollback invariant over random change sets of every mutable field of the seven
//! types, fault storms of 30 % 5xx + 20 % 429, a full disk made by a file-size limit (under the state
//! folder and under the cloud), and a scan of everything a full journey prints, logs and writes for
//! every secret. Each part runs short here (a few seeds) and long with `STACKFORM_RELIABILITY=long`
//! (`bash scripts/reliability.sh`); each prints its seeds and, once it passed, its figures
//! ([`crate::support::reliability`]). Racing stacks live in `ownership.rs`, the attacks in
//! `cloud_security.rs` and `hardening.rs`, the tmpfs full-disk tests in `hardening.rs` and
//! `cloud_store.rs`; `docs/RELIABILITY.md` lists them all.
use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::Value;

use crate::support::cloud::Cloud;
use crate::support::reliability::{
    Figures, assert_cloud_is_state, assert_same, cloud_objects, scale, seeds, state_objects,
    synthetic_stack,
};
use crate::support::{Cmd, Output, Test, drain, finished, wait_until_blocking};

/// How long a background run may take to reach a point or end; only reached when something hangs.
const DEADLINE: Duration = Duration::from_secs(10 * 60);

/// Lines in the journal `rel` of `t` (0 when there is none).
fn journal_lines(t: &Test, rel: &str) -> usize {
    std::fs::read_to_string(t.path(rel)).map_or(0, |s| s.lines().count())
}

/// Starts `stackform <args>` in `t`, waits until its journal has `lines` lines (or the run ended),
/// waits `extra_ms` more and kills it with SIGKILL. Returns whether it was still running when killed.
fn kill_9_at(t: &Test, args: &[&str], journal: &str, lines: usize, extra_ms: u64) -> bool {
    let mut child = t.cmd().args(args).spawn();
    // Its output is small (a 60-resource stack), but drain it so it can never block on a pipe.
    let drains = drain(&mut child);
    wait_until_blocking("the journal reaches the kill point", DEADLINE, || {
        let ended = matches!(child.try_wait(), Ok(Some(_)));
        (ended || journal_lines(t, journal) >= lines).then_some(())
    });
    std::thread::sleep(Duration::from_millis(extra_ms));
    let running = matches!(child.try_wait(), Ok(None));
    if running {
        child.kill().expect("kill -9");
    }
    child.wait().expect("reap");
    for drain in drains {
        let _ = drain.join();
    }
    running
}

#[test]
fn kill_9_of_apply_and_destroy_at_seeded_moments_then_the_next_run_converges() {
    // Each seed: apply from empty killed after a seeded number of journal lines (plus a seeded delay,
    // at a seeded parallelism), a full apply, then destroy killed the same way and a full destroy;
    // after every full run the cloud holds exactly what state records.
    let prefix = "sfkl";
    let t = Test::new()
        .stack(&synthetic_stack(60, prefix, "killed"))
        .local_cloud(&["--latency-ms", "100", "--retry-after-s", "0"]);
    let (state, journal) = ("state/killed.json", "state/killed.journal");
    let mut figures = Figures::default();
    for seed in seeds("kill_apply_destroy", scale(3, 20)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let parallelism = rng.random_range(1..=16).to_string();
        // 60 steps write 60 intents and up to 60 commits (steps finishing together share one); a kill
        // point past the run's last line lets it end first.
        for (cmd, full) in [("apply", 60), ("destroy", 0)] {
            let lines = rng.random_range(1..=110);
            let extra = rng.random_range(0..300);
            let args = [cmd, "--auto-approve", "--parallelism", &parallelism];
            let killed = kill_9_at(&t, &args, journal, lines, extra);
            println!(
                "seed {seed}: {cmd} at parallelism {parallelism} killed after {lines} journal lines + {extra} ms: {}",
                if killed { "killed" } else { "had ended" }
            );
            figures.faults += usize::from(killed);
            let out = t.run(args);
            assert_eq!(
                out.code, 0,
                "seed {seed}: {cmd} after the kill\n{}\n{}",
                out.stdout, out.stderr
            );
            assert!(
                !t.path(journal).exists(),
                "seed {seed}: a clean run leaves no journal"
            );
            let objects =
                assert_cloud_is_state(&t, state, prefix, &format!("seed {seed} after {cmd}"));
            assert_eq!(objects, full, "seed {seed} after {cmd}");
            if cmd == "apply" {
                t.run(["plan", "--detailed-exitcode"]).code(0);
            }
            figures.trials += 1;
        }
    }
    figures.note = "60 resources, --latency-ms 100, parallelism 1-16 by seed".into();
    figures.report("kill -9 of apply and destroy");
}

#[test]
fn kill_9_of_the_cloud_mid_apply_then_a_restart_and_the_next_apply_converge() {
    // Each seed: the cloud (long operations of 1.5 s, 100 ms latency) is killed with SIGKILL after a
    // seeded number of journal lines; the run ends on its own, the cloud starts again on its data
    // folder (another port), and the next apply converges with the cloud equal to state; destroy
    // empties both.
    let prefix = "sfck";
    let flags = [
        "--latency-ms",
        "100",
        "--lro-ms",
        "1500",
        "--retry-after-s",
        "0",
    ];
    let mut t = Test::new()
        .stack(&synthetic_stack(60, prefix, "crashed"))
        .local_cloud(&flags);
    let (state, journal) = ("state/crashed.json", "state/crashed.journal");
    let mut figures = Figures::default();
    for seed in seeds("kill_cloud", scale(1, 8)) {
        let mut rng = StdRng::seed_from_u64(seed);
        // 60 intents are written before the run's last step starts (commits of steps finishing
        // together share a line), so the kill point is always reached while the run goes on.
        let lines = rng.random_range(1..=60);
        let mut child = t.cmd().args(["apply", "--auto-approve"]).spawn();
        wait_until_blocking("the journal reaches the kill point", DEADLINE, || {
            let ended = matches!(child.try_wait(), Ok(Some(_)));
            (ended || journal_lines(&t, journal) >= lines).then_some(())
        });
        let ended_first = matches!(child.try_wait(), Ok(Some(_)));
        let dir = t.kill_9_cloud();
        let out = finished(child);
        println!(
            "seed {seed}: cloud killed after {lines} journal lines{}; the run ended with {}",
            if ended_first {
                " (the run had ended)"
            } else {
                ""
            },
            out.code
        );
        if !ended_first {
            assert_ne!(
                out.code, 0,
                "seed {seed}: the run cannot succeed without its cloud\n{}",
                out.stderr
            );
            figures.faults += 1;
        }
        t.start_cloud_again(dir, &flags);
        let out = t.run(["apply", "--auto-approve"]);
        assert_eq!(
            out.code, 0,
            "seed {seed}: apply after the restart\n{}\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(
            assert_cloud_is_state(&t, state, prefix, &format!("seed {seed}")),
            60
        );
        t.run(["plan", "--detailed-exitcode"]).code(0);
        t.run(["destroy", "--auto-approve"]).code(0);
        assert_eq!(
            assert_cloud_is_state(&t, state, prefix, &format!("seed {seed} destroyed")),
            0
        );
        figures.trials += 1;
    }
    figures.note = "60 resources, --lro-ms 1500, restart on another port".into();
    figures.report("kill -9 of the local cloud");
}

/// Counts the retried injected faults in a `-v` run's log: (429s, 5xx).
fn retried_faults(out: &Output) -> (usize, usize) {
    let retries = out.stderr.lines().filter(|l| l.contains("http retry"));
    retries.fold((0, 0), |(t, e), l| {
        if l.contains("status=429") {
            (t + 1, e)
        } else if l.contains("status=50") {
            (t, e + 1)
        } else {
            (t, e)
        }
    })
}

/// The failure a stormed run reported, when the storm caused it: the report from its first `error:`
/// line on, without the `-v` log lines, when it names one of the local cloud's injected faults, or
/// the 500, 503 or 429 status one ended on, that the retries did not outlast. `None` for a failure
/// of any other kind.
fn storm_failure(out: &Output) -> Option<String> {
    let report: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" INFO ") && !l.contains(" WARN "))
        .skip_while(|l| !l.trim_start().starts_with("error:"))
        .collect();
    let report = report.join("\n");
    // A HEAD's answer has no body, so its failure names only the status the retries ended on.
    let named = ["injected transient failure", "injected throttling"];
    let statuses = ["transient (500 ", "transient (503 ", "transient (429 "];
    named
        .iter()
        .chain(&statuses)
        .any(|s| report.contains(s))
        .then_some(report)
}

#[test]
fn apply_and_destroy_converge_under_30_percent_5xx_and_20_percent_429() {
    // Every ARM and blob request of the engine has a 30 % chance of a 500/503 and a 20 % chance of a
    // 429 (Retry-After 1 s). Apply and destroy must end with the cloud equal to state; a run the
    // storm defeats (a request failing 11 times in a row) must fail cleanly and a later run converge.
    // A run of 30 resources sends one to three hundred requests, each defeated with odds 0.5^11 (1 in
    // 2,048), so one run in seven to fifteen is defeated; five attempts leave this test to chance
    // with odds below 1 in 10,000 (three attempts failed once in a loaded run of the suite).
    let prefix = "sfst";
    let size = scale(30, 60);
    let t = Test::new()
        .stack(&synthetic_stack(size, prefix, "storm"))
        .local_cloud(&["--retry-after-s", "0"]);
    // The storm blows during the runs only: the test's own reads of the cloud are not its subject.
    let storm = |on: bool| {
        let (error_rate, throttle_rate) = if on { (0.3, 0.2) } else { (0.0, 0.0) };
        let set = t.rest(async |c: &Cloud| {
            c.set_faults(
                serde_json::json!({"error_rate": error_rate, "throttle_rate": throttle_rate}),
            )
            .await
        });
        assert_eq!(set.status, 200, "{}", set.text);
    };
    let state = "state/storm.json";
    let mut figures = Figures::default();
    let (mut throttled, mut errors, mut reruns) = (0, 0, 0);
    for trial in 0..scale(1, 5) {
        for (cmd, full) in [("apply", size), ("destroy", 0)] {
            // What each failed attempt reported, without the `-v` log around it.
            let mut failures: Vec<String> = Vec::new();
            loop {
                storm(true);
                let out = t.run([cmd, "--auto-approve", "-v"]);
                storm(false);
                let (t429, t5xx) = retried_faults(&out);
                throttled += t429;
                errors += t5xx;
                if out.code == 0 {
                    break;
                }
                let reported = storm_failure(&out).unwrap_or_else(|| {
                    panic!(
                        "trial {trial}: {cmd} failed for another reason than the storm\n{}",
                        out.stderr
                    )
                });
                failures.push(reported);
                assert!(
                    failures.len() < 5,
                    "trial {trial}: {cmd} failed {} times:\n{}\nthe last one's log:\n{}",
                    failures.len(),
                    failures.join("\n"),
                    out.stderr
                );
                reruns += 1;
            }
            assert_eq!(
                assert_cloud_is_state(&t, state, prefix, &format!("trial {trial} {cmd}")),
                full
            );
            figures.trials += 1;
        }
    }
    assert!(
        throttled > 0 && errors > 0,
        "the storm was met: {throttled} 429s, {errors} 5xx"
    );
    figures.faults = throttled + errors;
    figures.note = format!(
        "{size} resources; 30% 5xx + 20% 429 survived: {errors} 5xx and {throttled} 429 retried; {reruns} run(s) the storm defeated, each converged on a later run"
    );
    figures.report("fault storm (apply and destroy)");
}

/// `stackform <args>` in `t` with SIGXFSZ ignored and a file-size limit of `blocks` 512-byte blocks
/// (`ulimit -f`): a write that would make any file longer fails with EFBIG, as a full disk fails it
/// with ENOSPC.
fn run_with_file_limit(t: &Test, blocks: u64, args: &[&str]) -> Output {
    Cmd::after_shell(&format!("trap '' XFSZ; ulimit -f {blocks}"))
        .current_dir(t.dir())
        .env("STACKFORM_CLOUD_DIR", t.cloud_dir())
        .args(args)
        .run()
}

#[test]
fn a_write_limit_under_the_state_folder_fails_apply_clearly_and_keeps_the_state_whole() {
    // A disk that fills up while stackform writes its lock, journal or state, simulated without root
    // by a file-size limit on the run (`ulimit -f`, seeded from 0 to 20 blocks): each run either
    // succeeds or fails naming the file-size error; the state file is always one whole JSON document
    // with no temp file left, and once the limit is gone the next run converges.
    let prefix = "sffd";
    let t = Test::new()
        .stack(&synthetic_stack(12, prefix, "full"))
        .local_cloud(&[]);
    let state = "state/full.json";
    let mut figures = Figures::default();
    for seed in seeds("state_disk_full", scale(3, 20)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let blocks = rng.random_range(0..=20);
        // Half the seeds start from empty, half change every blob of an applied stack.
        let content = format!("hello {seed} ");
        let stack = synthetic_stack(12, prefix, "full").replace("hello ", &content);
        t.write("stack.yaml", &stack);
        let out = run_with_file_limit(&t, blocks, &["apply", "--auto-approve"]);
        println!(
            "seed {seed}: apply under a limit of {blocks} blocks: exit {}",
            out.code
        );
        if out.code != 0 {
            assert!(
                out.stderr.contains("File too large"),
                "seed {seed}: failed for another reason\n{}",
                out.stderr
            );
            figures.faults += 1;
        }
        if let Ok(text) = std::fs::read_to_string(t.path(state)) {
            serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("seed {seed}: a half-written state file: {e}"));
        }
        let leftovers: Vec<String> = std::fs::read_dir(t.path("state"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            leftovers.iter().all(|f| !f.contains("tmp")),
            "seed {seed}: temp files left: {leftovers:?}"
        );
        let out = t.run(["apply", "--auto-approve"]);
        assert_eq!(
            out.code, 0,
            "seed {seed}: apply once the limit is gone\n{}",
            out.stderr
        );
        assert_eq!(
            assert_cloud_is_state(&t, state, prefix, &format!("seed {seed}")),
            12
        );
        t.run(["plan", "--detailed-exitcode"]).code(0);
        if rng.random_bool(0.5) {
            t.run(["destroy", "--auto-approve"]).code(0);
        }
        figures.trials += 1;
    }
    t.run(["destroy", "--auto-approve"]).code(0);
    figures.note = "file-size limit of 0-20 blocks on the run (EFBIG, as ENOSPC)".into();
    figures.report("full disk under the state folder");
}

#[test]
fn an_apply_whose_last_state_write_fails_is_not_reported_a_success() {
    // The bug: when the state file could not be written at the end of a run (a full disk), apply
    // printed "Apply complete" and exited 0 while the state file recorded only the run's first step
    // (the journal held the rest).
    let mut stack = synthetic_stack(12, "sflw", "lastwrite");
    // An output far larger than the journal of 12 steps: only the final state file outgrows the limit.
    stack.push_str(&format!(
        "outputs:\n  padding: \"{}\"\n",
        "x".repeat(24 << 10)
    ));
    let t = Test::new().stack(&stack).local_cloud(&[]);
    let out = run_with_file_limit(&t, 32, &["apply", "--auto-approve"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("State could not be written") && out.stderr.contains("File too large"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Apply complete"), "{}", out.stderr);
    assert!(
        t.path("state/lastwrite.journal").exists(),
        "the journal keeps what state lacks"
    );
    let out = t.run(["apply", "--auto-approve"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        assert_cloud_is_state(&t, "state/lastwrite.json", "sflw", "after the limit"),
        12
    );
    t.run(["plan", "--detailed-exitcode"]).code(0);
    t.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn an_update_that_failed_before_it_was_sent_is_neither_rolled_back_nor_distrusted() {
    // The bug: a blob update whose snapshot of the previous content was refused (the account's
    // shared-key access had just been turned off by the same run, and the deployer holds no data
    // role: 403, as on Azure) changed nothing, yet the rollback tried to restore the blob (failing
    // again) and state marked it tainted, so `plan` of the previous files replaced it.
    let stack = "stack: unsent\ncloud: { kind: local, location: eastus }\nresources:\n  store: { type: storage_account, name: sfunsent1, allow_shared_key_access: true }\n  data: { type: blob_container, account: \"${store.name}\", name: box }\n  note: { type: blob, account: \"${store.name}\", container: \"${data.name}\", name: note.txt, content: first }\n";
    let t = Test::new().stack(stack).local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);
    t.write(
        "stack.yaml",
        &stack
            .replace(
                "allow_shared_key_access: true",
                "allow_shared_key_access: false",
            )
            .replace("content: first", "content: second"),
    );
    let out = t.run(["apply", "--auto-approve"]).code(1);
    assert!(
        out.stderr.contains("could not keep the previous content")
            && out.stderr.contains("rolled back"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Not restored"), "{}", out.stderr);
    t.write("stack.yaml", stack);
    let plan = t.run(["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);
    t.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn a_write_limit_on_the_cloud_fails_its_writes_and_it_recovers_when_lifted() {
    // The bug: a detached cloud whose log could not be written (its data folder's disk full)
    // panicked in every request that logged an error (tracing-subscriber reports a failed write
    // with `eprintln!`, which panics when stderr, the log file, cannot be written), so clients lost
    // the connection with no answer instead of the 500 a full disk gives. The tmpfs test in
    // `cloud_store.rs` missed it: the log's last page still had room.
    // The cloud's disk fills up mid-life, simulated without root by lowering the running cloud's
    // file-size limit to 0 (`prlimit --pid`; SIGXFSZ ignored from its start): apply fails cleanly
    // with the cloud's 500s, and once the limit is lifted (no restart) the next apply converges with
    // the cloud equal to state.
    let prefix = "sfcf";
    let t = Test::new();
    let dir = tempfile::tempdir().expect("temp dir");
    // SIGXFSZ ignored from the start, so a write over the limit fails instead of killing it.
    Cmd::after_shell("trap '' XFSZ")
        .args("cloud up --detach --port 0 --retry-after-s 0 --data-dir".split(' '))
        .arg(dir.path())
        .run()
        .code(0);
    let cloud = Cloud::attach(dir);
    let pid = cloud.info.pid.to_string();
    let limit = |value: &str| {
        let out = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--fsize={value}:")])
            .output()
            .expect("run prlimit");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let run = |args: &[&str]| {
        t.cmd()
            .env("STACKFORM_CLOUD_DIR", cloud.dir.path())
            .args(args)
            .run()
    };
    let mut figures = Figures::default();
    for trial in 0..scale(1, 5) {
        let stack = synthetic_stack(12, prefix, "cloudfull");
        t.write(
            "stack.yaml",
            &stack.replace("hello ", &format!("hello {trial} ")),
        );
        limit("0");
        let out = run(&["apply", "--auto-approve"]);
        assert_eq!(
            out.code, 1,
            "trial {trial}: apply against a cloud that cannot write\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("InternalServerError") || out.stderr.contains("InternalError"),
            "trial {trial}: failed for another reason\n{}",
            out.stderr
        );
        limit("unlimited");
        let out = run(&["apply", "--auto-approve"]);
        assert_eq!(
            out.code, 0,
            "trial {trial}: apply once the cloud can write\n{}",
            out.stderr
        );
        let objects = crate::support::wait::block_on(cloud_objects(&cloud, prefix));
        assert_eq!(
            assert_same(
                &objects,
                &state_objects(&t, "state/cloudfull.json"),
                &format!("trial {trial}")
            ),
            12
        );
        run(&["plan", "--detailed-exitcode"]).code(0);
        figures.trials += 1;
        figures.faults += 1;
    }
    run(&["destroy", "--auto-approve"]).code(0);
    figures.note = "file-size limit 0 on the running cloud, lifted without a restart".into();
    figures.report("full disk under the cloud");
}

/// Every mutable field of the seven types (from `specs/*.yaml`) as the rollback test varies it: a
/// name, and its values (the first is the base). `role` is the role assignment's, whose fields are
/// all immutable: changing it replaces the assignment.
const FIELDS: &[(&str, &[&str])] = &[
    ("sa_sku", &["Standard_LRS", "Standard_GRS"]),
    ("sa_tier", &["Hot", "Cool"]),
    ("sa_public", &["false", "true"]),
    ("sa_shared_key", &["true", "false"]),
    ("sa_tls", &["TLS1_2", "TLS1_1"]),
    ("sa_tag", &["a", "b"]),
    ("c_public", &["None", "Blob"]),
    ("c_meta", &["one", "two"]),
    ("blob_text", &["Hello world!", "Hello again!"]),
    ("blob_type", &["text/plain", "application/json"]),
    ("uai_tag", &["a", "b"]),
    ("role", &["Reader", "Storage Blob Data Reader"]),
    ("ep_auth", &["key", "aml_token"]),
    ("ep_desc", &["first", "second"]),
    ("ep_tag", &["a", "b"]),
    ("ep_pna", &["enabled", "disabled"]),
    ("d_count", &["1", "2"]),
    ("d_env", &["one", "two"]),
    ("d_desc", &["first", "second"]),
    ("d_tag", &["a", "b"]),
    ("d_timeout", &["5000", "9000"]),
    ("d_live", &["10", "20"]),
    ("d_ready", &["10", "5"]),
    ("d_insights", &["false", "true"]),
    ("d_model", &["1", "2"]),
];

/// The rollback test's stack: all seven types, every field above set from `v`; the deployment
/// depends on everything, so its update (whose `init()` the test breaks) is the run's last step.
/// `deployer` gives the principal stackform runs as (`v["deployer"]`) a data role on the account,
/// as Azure requires once shared-key access is off.
fn rollback_stack(v: &BTreeMap<&str, &str>) -> String {
    let mut text = r#"stack: rollprop
cloud: { kind: local, location: eastus }
resources:
  store:
    type: storage_account
    name: sfrollprop1
    sku: {sa_sku}
    access_tier: {sa_tier}
    allow_blob_public_access: {sa_public}
    allow_shared_key_access: {sa_shared_key}
    minimum_tls_version: {sa_tls}
    tags: { tier: "{sa_tag}" }
  data:
    type: blob_container
    account: ${store.name}
    name: hello
    public_access: {c_public}
    metadata: { note: "{c_meta}" }
  deployer:
    type: role_assignment
    principal_id: {deployer}
    role: Storage Blob Data Contributor
    scope: ${store.id}
  greeting:
    type: blob
    account: ${store.name}
    container: ${data.name}
    name: hello.txt
    source: ./hello.txt
    content_type: {blob_type}
    depends_on: [deployer]
  uai:
    type: user_assigned_identity
    name: sf-rollprop-uai
    tags: { tier: "{uai_tag}" }
  uai_role:
    type: role_assignment
    principal_id: ${uai.principal_id}
    role: {role}
    scope: ${store.id}
  endpoint:
    type: online_endpoint
    name: sf-rollprop-ep
    auth_mode: {ep_auth}
    description: "{ep_desc}"
    public_network_access: {ep_pna}
    tags: { tier: "{ep_tag}" }
    identity: { type: system_assigned }
  reader:
    type: role_assignment
    principal_id: ${endpoint.identity.principal_id}
    role: Storage Blob Data Reader
    scope: ${store.id}
  blue:
    type: online_deployment
    file: ./deployment.yml
    endpoint: ${endpoint.name}
    traffic: 100
    instance_count: {d_count}
    description: "{d_desc}"
    tags: { tier: "{d_tag}" }
    app_insights_enabled: {d_insights}
    request_settings: { request_timeout_ms: {d_timeout} }
    liveness_probe: { initial_delay: {d_live} }
    readiness_probe: { period: {d_ready} }
    environment_variables:
      STORAGE_ACCOUNT_NAME: ${store.name}
      STORAGE_BLOB_ENDPOINT: ${store.primary_blob_endpoint}
      STORAGE_CONTAINER_NAME: ${data.name}
      FILE_NAME: ${greeting.name}
      EXTRA: "{d_env}"
    depends_on: [reader, uai_role, greeting]
"#
    .to_string();
    for (k, value) in v {
        text = text.replace(&format!("{{{k}}}"), value);
    }
    assert!(!text.contains("{sa_") && !text.contains("{d_"), "{text}");
    text
}

/// Writes the stack and the files it uploads for the values `v`; `broken` makes `init()` raise.
fn write_rollback_files(
    t: &Test,
    v: &BTreeMap<&str, &str>,
    broken: bool,
    score: &str,
    model: &str,
) {
    t.write("stack.yaml", &rollback_stack(v));
    t.write("hello.txt", v["blob_text"]);
    let model = model.replacen('{', &format!("{{\n  \"revision\": {},", v["d_model"]), 1);
    t.write("model/model.json", &model);
    let score = if broken {
        score.replace(
            "    model = _load_model()",
            "    raise RuntimeError('broken on purpose')",
        )
    } else {
        score.to_string()
    };
    t.write("onlinescoring/score.py", &score);
}

/// Drops what changes on every write whatever its content (etags, times, system data, the URL of
/// the write's own asynchronous operation).
fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| {
                !matches!(
                    k.as_str(),
                    "etag"
                        | "systemData"
                        | "createdOn"
                        | "updatedOn"
                        | "lastModifiedTime"
                        | "creationTime"
                        | "lastModified"
                        | "createdTime"
                        | "lastModifiedAt"
                        | "createdAt"
                        | "AzureAsyncOperationUri"
                )
            });
            m.values_mut().for_each(normalize);
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// What the cloud holds for each resource state records, content included: the ARM body of every
/// ARM resource (role assignments without their generated id and name), and a blob's bytes, content
/// type and metadata.
fn cloud_snapshot(t: &Test, state: &str) -> BTreeMap<String, Value> {
    let state: Value = serde_json::from_str(&t.read(state)).expect("state JSON");
    let resources = state["resources"].as_object().expect("resources").clone();
    t.rest(async |c: &Cloud| {
        let mut out = BTreeMap::new();
        for (address, r) in &resources {
            let id = r["id"].as_str().expect("an id");
            let mut seen = if r["type"] == "blob" {
                let account = r["inputs"]["account"].as_str().expect("account");
                let key = c.account_key(account).await;
                let path = id
                    .split_once(&format!("/{account}/"))
                    .expect("a blob URL")
                    .1;
                let a = c
                    .blob_shared_key(Method::GET, account, &key, path, vec![], &[])
                    .await;
                let mut headers: BTreeMap<String, String> = a
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        k.as_str().starts_with("x-ms-meta-") || k.as_str() == "content-type"
                    })
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                    .collect();
                headers.insert("status".into(), a.status.to_string());
                serde_json::json!({"bytes": a.text, "headers": headers})
            } else {
                c.arm(Method::GET, id, None).await.body
            };
            if r["type"] == "role_assignment"
                && let Some(m) = seen.as_object_mut()
            {
                m.remove("id");
                m.remove("name");
            }
            normalize(&mut seen);
            out.insert(address.clone(), seen);
        }
        out
    })
}

#[test]
fn a_failed_last_step_rolls_every_changed_field_of_every_type_back_to_what_was_live() {
    // Each case: from the applied base, a seeded random change set over every mutable field of the
    // seven types (FIELDS), with the deployment's init() broken so the run's last step fails. After
    // the rollback the cloud equals what it was (ARM bodies, blob bytes, content type and metadata,
    // the deployment's model and code versions), and `plan` of the previous files has no changes.
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    let score = t.read("onlinescoring/score.py");
    let model = t.read("model/model.json");
    let deployer = t.rest(async |c: &Cloud| c.seeded_principal().await);
    let mut base: BTreeMap<&str, &str> = FIELDS.iter().map(|(k, vals)| (*k, vals[0])).collect();
    base.insert("deployer", &deployer);
    write_rollback_files(&t, &base, false, &score, &model);
    let state = "state/rollprop.json";
    let out = t.run(["apply", "--auto-approve"]);
    assert_eq!(
        out.code, 0,
        "the base applies\n{}\n{}",
        out.stdout, out.stderr
    );
    let before = cloud_snapshot(&t, state);
    let mut figures = Figures::default();
    let mut changed_fields = 0;
    for seed in seeds("rollback_property", scale(2, 12)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut case = base.clone();
        for (k, vals) in FIELDS {
            if rng.random_bool(0.4) {
                case.insert(k, vals[1]);
            }
        }
        // Azure refuses public access on a container of an account that disallows it.
        if case["sa_public"] == "false" {
            case.insert("c_public", "None");
        }
        let changed: Vec<&str> = case
            .iter()
            .filter(|(k, v)| base[*k] != **v)
            .map(|(k, _)| *k)
            .collect();
        println!("seed {seed}: changing {changed:?} with init() broken");
        write_rollback_files(&t, &case, true, &score, &model);
        let out = t.run(["apply", "--auto-approve"]);
        assert_eq!(
            out.code, 1,
            "seed {seed}: the broken init() fails the run\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("rolled back") && out.stderr.contains("Failed: ~ update `blue`"),
            "seed {seed}: the last step, the deployment's update, fails and the run rolls back\n{}",
            out.stderr
        );
        let after = cloud_snapshot(&t, state);
        for (address, was) in &before {
            assert_eq!(
                after.get(address),
                Some(was),
                "seed {seed} ({changed:?}): `{address}` is not what it was before the run"
            );
        }
        assert_eq!(after.len(), before.len(), "seed {seed}");
        write_rollback_files(&t, &base, false, &score, &model);
        let plan = t.run(["plan", "--detailed-exitcode"]);
        assert_eq!(
            plan.code, 0,
            "seed {seed} ({changed:?}): plan of the previous files\n{}",
            plan.stdout
        );
        figures.trials += 1;
        figures.faults += 1;
        changed_fields += changed.len();
    }
    t.run(["destroy", "--auto-approve"]).code(0);
    figures.note = format!(
        "7 types, {} mutable fields, {changed_fields} field changes rolled back",
        FIELDS.len()
    );
    figures.report("rollback invariant (property)");
}

/// Where a secret was found: `(secret's label, source, byte offset)`; never the secret itself.
fn find_secrets(secrets: &[(&str, String)], source: &str, bytes: &[u8], found: &mut Vec<String>) {
    for (label, secret) in secrets {
        let needle = secret.as_bytes();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            found.push(format!("the {label} is in {source} at byte {at}"));
        }
    }
    // Bearer tokens the engine or the cloud handled: a JWT's header and payload segments.
    let jwt =
        regex::bytes::Regex::new(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}").expect("regex");
    if let Some(m) = jwt.find(bytes) {
        found.push(format!(
            "a bearer token is in {source} at byte {}",
            m.start()
        ));
    }
}

/// Every file below `dir` whose name passes `keep`, as (path, bytes).
fn files_below(dir: &std::path::Path, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && keep(&e.file_name().to_string_lossy()))
        .filter_map(|e| {
            Some((
                e.path().display().to_string(),
                std::fs::read(e.path()).ok()?,
            ))
        })
        .collect()
}

#[test]
fn no_secret_is_printed_logged_or_written_during_a_full_journey() {
    // The demo stack with a sensitive variable (in a blob and a deployment's environment), through
    // plan -o, apply of the saved plan, invoke, logs, a run killed mid-way (its journal), a recovering
    // apply, drift, state show, output and destroy, each at -v where it has progress: every stdout,
    // stderr, file of the stack folder (state, backup, journal, saved plan) and log of the cloud
    // (its own and the deployments') is scanned for the variable's value, the storage account key,
    // the endpoint's keys, the cloud's client secret and any bearer token.
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    t.edit(
        "stack.yaml",
        "\nvariables:\n",
        "\nvariables:\n  apikey: { sensitive: true, description: \"a secret\" }\n",
    );
    t.edit(
        "stack.yaml",
        "      FILE_NAME: ${greeting.name}\n",
        "      FILE_NAME: ${greeting.name}\n      API_KEY: ${var.apikey}\n  secret:\n    type: blob\n    account: ${store.name}\n    container: ${data.name}\n    name: secret.txt\n    content: ${var.apikey}\n",
    );
    let value = format!("sf-Secret-{}", uuid::Uuid::new_v4().simple());
    let var = format!("apikey={value}");
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let run = |args: &[&str], outputs: &mut Vec<(String, Output)>| {
        let mut all = args.to_vec();
        all.extend(["--var", var.as_str()]);
        let out = t.run(&all);
        let code = out.code;
        if code != 0 && code != 2 {
            // Shown with the variable's value masked, should it be there.
            println!(
                "`{}` exited {code}\n{}",
                args.join(" "),
                out.stderr.replace(&value, "<the secret>")
            );
        }
        outputs.push((args.join(" "), out));
        code
    };
    assert_eq!(run(&["plan", "-o", "p.json"], &mut outputs), 0);
    files.push((
        "the saved plan".into(),
        std::fs::read(t.path("p.json")).expect("p.json"),
    ));
    assert_eq!(run(&["apply", "p.json", "-v"], &mut outputs), 0);
    let invoke = [
        "invoke",
        "endpoint",
        "--request-file",
        "sample-request.json",
        "-v",
    ];
    assert_eq!(run(&invoke, &mut outputs), 0);
    assert_eq!(run(&["logs", "blue"], &mut outputs), 0);
    files.extend(files_below(t.cloud_dir(), |n| n.ends_with(".log")));
    // A run killed mid-way leaves its journal: a changed blob and scoring script (the deployment's
    // update takes seconds, so the run is still going when its first journal line is written).
    t.write("hello.txt", "Hello from a killed run!");
    t.edit(
        "onlinescoring/score.py",
        "def init():",
        "# changed by the killed run\ndef init():",
    );
    let mut args = vec!["apply", "--auto-approve", "-v", "--var"];
    args.push(&var);
    assert!(
        kill_9_at(&t, &args, "state/managed-identity.journal", 1, 0),
        "the run ended before it was killed"
    );
    files.extend(files_below(&t.path("state"), |_| true));
    // The killed run's deployment update may still be in progress in the cloud: until it ends, an
    // update answers 409 "another operation is in progress" (as Azure does) and the run rolls back.
    // Known limit (docs/RELIABILITY.md): the next apply does not wait for it.
    let recovered = wait_until_blocking("an apply after the killed one succeeds", DEADLINE, || {
        let code = run(&["apply", "--auto-approve", "-v"], &mut outputs);
        let busy = outputs
            .last()
            .is_some_and(|(_, o)| o.stderr.contains("another operation"));
        if code != 0 && busy {
            std::thread::sleep(Duration::from_secs(1));
            return None;
        }
        Some(code)
    });
    assert_eq!(recovered, 0);
    files.extend(files_below(&t.path("state"), |_| true));
    let drift = run(&["drift", "-v"], &mut outputs);
    assert!(drift == 0 || drift == 2, "drift exits {drift}");
    assert_eq!(run(&["state", "show", "secret"], &mut outputs), 0);
    assert_eq!(run(&["output"], &mut outputs), 0);
    // The secrets the cloud holds for this stack.
    let (account_key, endpoint_keys) = t.rest(async |c: &Cloud| {
        let key = c.account_key("mistore7f3a").await;
        let ep = format!("{}/onlineEndpoints/my-sai-endpoint-7f3a/listKeys", c.ws());
        let keys = c.arm(Method::POST, &ep, None).await;
        assert_eq!(keys.status, 200, "{}", keys.text);
        let k = |name: &str| {
            keys.body[name]
                .as_str()
                .expect("an endpoint key")
                .to_string()
        };
        (key, [k("primaryKey"), k("secondaryKey")])
    });
    let client_secret = t.cloud().info.client_secret.clone();
    files.extend(files_below(t.cloud_dir(), |n| n.ends_with(".log")));
    assert_eq!(run(&["destroy", "--auto-approve", "-v"], &mut outputs), 0);
    files.extend(files_below(t.dir(), |_| true));
    files.extend(files_below(t.cloud_dir(), |n| n.ends_with(".log")));

    let secrets = [
        ("sensitive variable's value", value.clone()),
        ("storage account key", account_key),
        ("endpoint's primary key", endpoint_keys[0].clone()),
        ("endpoint's secondary key", endpoint_keys[1].clone()),
        ("cloud's client secret", client_secret),
    ];
    // What must have been scanned: the journal of the killed run, the saved plan, the state, the
    // cloud's own log and a deployment's logs.
    for must in [
        ".journal",
        "the saved plan",
        "managed-identity.json",
        "cloud.log",
        "inference-server.log",
    ] {
        assert!(
            files.iter().any(|(path, _)| path.ends_with(must)),
            "nothing scanned ends with {must}"
        );
    }
    let mut found = Vec::new();
    let mut scanned = 0;
    for (cmd, out) in &outputs {
        find_secrets(
            &secrets,
            &format!("the stdout of `{cmd}`"),
            out.stdout.as_bytes(),
            &mut found,
        );
        find_secrets(
            &secrets,
            &format!("the stderr of `{cmd}`"),
            out.stderr.as_bytes(),
            &mut found,
        );
        scanned += 2;
    }
    for (path, bytes) in &files {
        find_secrets(&secrets, path, bytes, &mut found);
        scanned += 1;
    }
    found.sort();
    found.dedup();
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    // The scan can see a secret: the blob holds the value, as it should.
    let mut control = Vec::new();
    find_secrets(
        &secrets,
        "a control",
        format!("x{value}x").as_bytes(),
        &mut control,
    );
    assert_eq!(control.len(), 1);
    let figures = Figures {
        trials: 1,
        note: format!(
            "{} commands; {scanned} outputs and files scanned for {} secrets and any bearer token",
            outputs.len(),
            secrets.len()
        ),
        ..Figures::default()
    };
    figures.report("secret scan of a full journey");
}
