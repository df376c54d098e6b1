//! The remote state backend (`backend: { kind: azure_blob, … }`) through the real binary: the
//! demo stack's whole journey with its state in a blob of the local cloud, an ETag conflict from a
//! write behind stackform's back, history and restore, a migration local → remote → local, an
//! apply killed with SIGKILL recovered from the remote journal, the state on Azurite, and a bad
//! `backend:` block.
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::support::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use crate::support::cloud::Cloud;
use crate::support::reliability::account_names;
use crate::support::{Output, Test, wait_until};

const ACCOUNT: &str = "sfstate";
const CONTAINER: &str = "tfstate";
const BLOB: &str = "managed-identity.json";
const MINUTE: Duration = Duration::from_secs(60);

/// The reference example with a local cloud that has a state account and container.
fn remote() -> Test {
    remote_with(&[])
}

/// [`remote`] with a local cloud started with `cloud up` flags (`--lro-ms 1500`: a slow cloud).
fn remote_with(flags: &[&str]) -> Test {
    let t = Test::new().example("managed-identity").local_cloud(flags);
    t.rest(async |c: &Cloud| {
        c.create_storage(ACCOUNT).await;
        let key = c.account_key(ACCOUNT).await;
        c.create_container(ACCOUNT, &key, CONTAINER).await;
    });
    t
}

/// Runs the binary with the azure_blob backend of the test's local cloud (from the environment, as
/// a CI job would set it).
fn run(t: &Test, args: &[&str]) -> Output {
    t.cmd()
        .env("STACKFORM_BACKEND", "azure_blob")
        .env("STACKFORM_BACKEND_ACCOUNT", ACCOUNT)
        .env("STACKFORM_BACKEND_CONTAINER", CONTAINER)
        .args(args)
        .run()
}

/// Starts the binary with the azure_blob backend of [`run`], without waiting for it.
fn spawn(t: &Test, args: &[&str]) -> std::process::Child {
    t.cmd()
        .env("STACKFORM_BACKEND", "azure_blob")
        .env("STACKFORM_BACKEND_ACCOUNT", ACCOUNT)
        .env("STACKFORM_BACKEND_CONTAINER", CONTAINER)
        .args(args)
        .spawn()
}

/// A blob of the state container: its bytes and `serial` metadata, or `None`.
async fn get_blob(c: &Cloud, name: &str) -> Option<(Vec<u8>, Value)> {
    let a = get(c, &format!("{CONTAINER}/{name}")).await;
    (a.status == 200).then(|| {
        let serial = a.header("x-ms-meta-serial").unwrap_or_default();
        (a.text.into_bytes(), serde_json::json!({ "serial": serial }))
    })
}

/// A GET of the state account's blob service (`rest`: the path and query after the account).
async fn get(c: &Cloud, rest: &str) -> crate::support::cloud::Answer {
    let key = c.account_key(ACCOUNT).await;
    c.blob_shared_key(Method::GET, ACCOUNT, &key, rest, vec![], &[])
        .await
}

fn blob(t: &Test, name: &str) -> Option<(Vec<u8>, Value)> {
    t.rest(async |c: &Cloud| get_blob(c, name).await)
}

fn state_of(t: &Test) -> Value {
    state_of_blob(t, BLOB)
}

fn state_of_blob(t: &Test, name: &str) -> Value {
    let (bytes, _) = blob(t, name).expect("the state blob");
    serde_json::from_slice(&bytes).expect("the state blob is JSON")
}

/// The demo stack's journey (apply, invoke, drift, output, destroy) with its state in a blob:
/// nothing is written beside the stack file, the blob carries its serial, the journal blob is gone
/// after a clean run, and each overwritten version is listed by `state history`.
#[test]
fn the_demo_journey_keeps_its_state_in_a_blob() {
    let t = remote();
    let out = run(&t, &["apply", "--auto-approve"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!t.path("state").exists(), "no local state folder");
    let state = state_of(&t);
    assert_eq!(state["resources"].as_object().map(|r| r.len()), Some(6));
    let (_, meta) = blob(&t, BLOB).unwrap();
    assert_eq!(meta["serial"], state["serial"].to_string());
    assert!(
        blob(&t, &format!("{BLOB}.journal")).is_none(),
        "journal removed"
    );

    let out = run(
        &t,
        &[
            "invoke",
            "endpoint",
            "--request-file",
            "sample-request.json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    run(&t, &["drift"]).code(0);
    run(&t, &["plan", "--detailed-exitcode"]).code(0);
    let listed = run(&t, &["state", "list"]).code(0).stdout;
    assert_eq!(listed.lines().count(), 6, "{listed}");
    let out = run(&t, &["output"]).code(0);
    assert!(out.stdout.contains("scoring_uri"), "{}", out.stdout);
    let history = run(&t, &["state", "history"]).code(0).stdout;
    assert!(
        history
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("current")),
        "{history}"
    );
    assert!(
        history.lines().count() >= 3,
        "the replaced versions are listed: {history}"
    );

    run(&t, &["destroy", "--auto-approve"]).code(0);
    assert_eq!(state_of(&t)["resources"], serde_json::json!({}));
    assert!(run(&t, &["state", "list"]).code(0).stdout.trim().is_empty());
    assert!(
        std::fs::read_dir(t.path(".stackform/backend"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "the working folders are removed"
    );
}

/// A write behind stackform's back (the blob changed after the run read or wrote it) is detected
/// by the ETag: the run fails saying so, and the other writer's version is not overwritten.
#[test]
fn a_state_changed_behind_its_back_is_never_overwritten() {
    let t = remote_with(&["--lro-ms", "1500"]);
    let child = spawn(&t, &["apply", "--auto-approve"]);
    // Once the run has written its first state and journaled its first steps, another writer
    // replaces the state blob.
    let theirs = br#"{"version":1,"lineage":"00000000-0000-4000-8000-000000000000","serial":99,"stack":"managed-identity","resources":{},"outputs":{}}"#.to_vec();
    let written = theirs.clone();
    t.rest(async move |c: &Cloud| {
        let journal = format!("{BLOB}.journal");
        wait_until("the run journaled its first steps", MINUTE, async || {
            (get_blob(c, BLOB).await.is_some() && get_blob(c, &journal).await.is_some())
                .then_some(())
        })
        .await;
        let key = c.account_key(ACCOUNT).await;
        c.put_blob(ACCOUNT, &key, CONTAINER, BLOB, written).await;
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("changed behind stackform's back"),
        "{stderr}"
    );
    assert_eq!(blob(&t, BLOB).unwrap().0, theirs, "their version stays");
}

/// Two applies of the same stack at once: exactly one proceeds; the other fails at once naming the
/// holder (its user, host, pid and command), or with `--lock-timeout` waits and then finds nothing
/// left to do.
#[test]
fn two_applies_at_once_exactly_one_proceeds() {
    let t = remote_with(&["--lro-ms", "1500"]);
    let first = spawn(&t, &["apply", "--auto-approve"]);
    let pid = first.id().to_string();
    t.rest(async |c: &Cloud| {
        let journal = format!("{BLOB}.journal");
        wait_until("the first apply is under way", MINUTE, async || {
            get_blob(c, &journal).await.map(drop)
        })
        .await;
    });
    let out = run(&t, &["apply", "--auto-approve"]).code(1);
    assert!(out.stderr.contains("state is locked by"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&pid) && out.stderr.contains("apply"),
        "the holder is named: {}",
        out.stderr
    );
    let waited = spawn(&t, &["apply", "--auto-approve", "--lock-timeout", "5m"]);
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let waited = waited.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&waited.stdout);
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(
        stdout.contains("No changes"),
        "the waiting run found the work done: {stdout}"
    );
    run(&t, &["destroy", "--auto-approve"]).code(0);
}

/// An environment (`--env NAME`) keeps its state in its own blob, `env/NAME/<key>`, and the
/// stack's own state is not touched.
#[test]
fn an_environment_keeps_its_own_blob() {
    let t = remote();
    let out = run(
        &t,
        &[
            "apply",
            "--auto-approve",
            "--target",
            "store",
            "--env",
            "pr-7",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(blob(&t, &format!("env/pr-7/{BLOB}")).is_some());
    assert!(
        blob(&t, BLOB).is_none(),
        "the stack's own state is untouched"
    );
    let listed = run(&t, &["state", "list", "--env", "pr-7"]).code(0).stdout;
    assert!(listed.starts_with("store "), "{listed}");
    let listed = run(&t, &["state", "list"]).code(0).stdout;
    assert!(listed.contains("No state yet"), "{listed}");
}

/// The names of the state container's blobs under `prefix` (List Blobs, current blobs only).
fn listed(t: &Test, prefix: &str) -> Vec<String> {
    let prefix = prefix.to_string();
    t.rest(async move |c: &Cloud| {
        let a = get(
            c,
            &format!("{CONTAINER}?restype=container&comp=list&prefix={prefix}"),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.text
            .split("<Name>")
            .skip(1)
            .filter_map(|s| s.split("</Name>").next())
            .map(str::to_string)
            .collect()
    })
}

/// The snapshot times `state history` lists (every row but the current one).
fn snapshots(history: &str) -> Vec<String> {
    history
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "current")
        .map(str::to_string)
        .collect()
}

/// `destroy --env NAME` with the azure_blob backend left the environment's (empty) state blob,
/// its snapshots, history index and lock blob behind, while the local backend removes the
/// environment's state folder: now every blob of the environment goes, snapshots included, and
/// the stack's own state is not touched; a destroy of only some resources keeps them.
#[test]
fn destroying_an_environment_removes_its_blobs() {
    let t = remote();
    let env = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--env", "pr-7"]);
        run(&t, &all)
    };
    env(&["apply", "--auto-approve", "--target", "store"]).code(0);
    let with_store = state_of_blob(&t, &format!("env/pr-7/{BLOB}"))["serial"].to_string();
    // More versions of the environment's state: snapshots listed in a history index.
    env(&["state", "rm", "store"]).code(0);
    env(&["state", "restore", &with_store]).code(0);
    let kept = snapshots(&env(&["state", "history"]).code(0).stdout);
    assert!(!kept.is_empty(), "the replaced versions are kept");
    let prefix = format!("env/pr-7/{BLOB}");
    let before = listed(&t, "env/pr-7/");
    for name in [
        prefix.clone(),
        format!("{prefix}.history"),
        format!("{prefix}.lock"),
    ] {
        assert!(before.contains(&name), "{name} in {before:?}");
    }
    // A destroy of some resources only keeps the environment, even when it is left empty.
    env(&["destroy", "--auto-approve", "--target", "store"]).code(0);
    assert!(listed(&t, "env/pr-7/").contains(&prefix));

    let out = env(&["destroy", "--auto-approve"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("Removed environment `pr-7`"),
        "{}",
        out.stderr
    );
    assert_eq!(listed(&t, "env/pr-7/"), Vec::<String>::new());
    for snapshot in kept {
        let status = t.rest(async |c: &Cloud| {
            get(c, &format!("{CONTAINER}/{prefix}?snapshot={snapshot}"))
                .await
                .status
        });
        assert_eq!(status, 404, "snapshot {snapshot} is deleted");
    }
    let listed_state = env(&["state", "list"]).code(0).stdout;
    assert!(listed_state.contains("No state yet"), "{listed_state}");
}

/// `env list` showed only the local backend's environments, even with the state in blobs: with
/// azure_blob (from the environment or the stack file's `backend:`) it lists each environment whose
/// state blob `env/NAME/<key>` exists, with its resources and last change, leaves out blobs that are
/// not an environment's state, needs no `--env` for a stack whose resources use `${stack.env}`,
/// and says so when the container cannot be reached.
#[test]
fn env_list_shows_the_remote_environments() {
    let t = remote();
    let out = run(&t, &["env", "list"]).code(0);
    assert!(out.stdout.contains("No environments"), "{}", out.stdout);
    let apply = ["apply", "--auto-approve", "--target", "store"];
    run(&t, &[&apply[..], &["--env", "pr-7"]].concat()).code(0);
    let empty = br#"{"version":1,"lineage":"00000000-0000-4000-8000-000000000000","serial":3,"stack":"managed-identity","resources":{},"outputs":{}}"#;
    t.rest(async |c: &Cloud| {
        let key = c.account_key(ACCOUNT).await;
        for (name, bytes) in [
            (format!("env/pr-8/{BLOB}"), empty.to_vec()),
            (format!("env/broken/{BLOB}"), b"not json".to_vec()),
            (format!("env/Bad_Name/{BLOB}"), empty.to_vec()),
            ("env/pr-9/other.json".to_string(), empty.to_vec()),
            (format!("env/a/b/{BLOB}"), empty.to_vec()),
        ] {
            c.put_blob(ACCOUNT, &key, CONTAINER, &name, bytes).await;
        }
    });
    let out = run(&t, &["env", "list"]).code(0);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{}", out.stdout);
    assert_eq!(rows[1][0], "broken", "{}", out.stdout);
    assert!(out.stdout.contains("unreadable"), "{}", out.stdout);
    assert_eq!((rows[2][0], rows[2][1]), ("pr-7", "1"), "{}", out.stdout);
    assert_eq!((rows[3][0], rows[3][1]), ("pr-8", "0"), "{}", out.stdout);
    let listed: Value =
        serde_json::from_str(&run(&t, &["env", "list", "--json"]).code(0).stdout).unwrap();
    let pr7 = &listed[1];
    assert_eq!(pr7["name"], "pr-7");
    assert_eq!(pr7["resources"], 1);
    assert!(
        pr7["updated"].is_string() && pr7["created"].is_string(),
        "{pr7}"
    );
    assert!(
        pr7["state_file"]
            .as_str()
            .is_some_and(|f| f.ends_with(&format!("{CONTAINER}/env/pr-7/{BLOB}"))),
        "{pr7}"
    );
    // The local backend's environments are still the local ones.
    let out = t.run(["env", "list"]).code(0);
    assert!(out.stdout.contains("No environments"), "{}", out.stdout);
    // The stack file's `backend:` is read, without the resources: they need `${stack.env}`.
    let stack = t
        .read("stack.yaml")
        .replace("name: mistore${var.suffix}", "name: mistore${stack.env}");
    t.write(
        "stack.yaml",
        &format!("{stack}\nbackend:\n  kind: azure_blob\n  account: {ACCOUNT}\n  container: {CONTAINER}\n"),
    );
    let out = t.run(["env", "list"]).code(0);
    assert!(out.stdout.contains("pr-8"), "{}", out.stdout);
    // A container that does not exist is a clear error.
    let out = t
        .cmd()
        .env("STACKFORM_BACKEND_CONTAINER", "missing")
        .args(["env", "list"])
        .run()
        .code(1);
    assert!(
        out.stderr.contains("container does not exist"),
        "{}",
        out.stderr
    );
}

/// `state history` lists the versions each write replaced; `state restore` brings one back as a
/// new write, keeping the history (the version it replaced is listed too).
#[test]
fn history_lists_the_versions_and_restore_brings_one_back() {
    let t = remote();
    run(&t, &["apply", "--auto-approve", "--target", "store"]).code(0);
    let before = state_of(&t);
    assert!(before["resources"]["store"].is_object(), "{before}");
    run(&t, &["state", "rm", "store"]).code(0);
    let after = state_of(&t);
    assert!(after["resources"]["store"].is_null());
    let history = run(&t, &["state", "history"]).code(0).stdout;
    // The version with the store, as `state history` names it (its serial).
    let serial = before["serial"].to_string();
    let row = history
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(serial.as_str()))
        .unwrap_or_else(|| panic!("serial {serial} is listed: {history}"));
    let version = row.split_whitespace().next().unwrap().to_string();
    assert_ne!(version, "current", "{history}");
    let out = run(&t, &["state", "restore", &version]).code(0);
    assert!(out.stdout.contains("Restored version"), "{}", out.stdout);
    let restored = state_of(&t);
    assert_eq!(restored["resources"], before["resources"]);
    assert_eq!(restored["lineage"], before["lineage"]);
    assert!(restored["serial"].as_u64() > after["serial"].as_u64());
    let again = run(&t, &["state", "history"]).code(0).stdout;
    assert!(
        again.lines().count() > history.lines().count(),
        "the restore kept what it replaced: {again}"
    );
    let out = run(&t, &["state", "restore", "no-such-version"]).code(1);
    assert!(
        out.stderr.contains("no version `no-such-version`"),
        "{}",
        out.stderr
    );
    run(&t, &["destroy", "--auto-approve"]).code(0);
}

/// With the local backend, history is the one version before the last write: `state history`
/// lists it as `backup` and `state restore backup` brings it back as a new write.
#[test]
fn the_local_backend_keeps_one_earlier_version() {
    let t = remote();
    t.run(["apply", "--auto-approve", "--target", "store"])
        .code(0);
    t.run(["state", "rm", "store"]).code(0);
    let history = t.run(["state", "history"]).code(0).stdout;
    let names: Vec<&str> = history
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["current", "backup"], "{history}");
    let out = t.run(["state", "restore", "backup"]).code(0);
    assert!(
        out.stdout.contains("Restored version backup"),
        "{}",
        out.stdout
    );
    let listed = t.run(["state", "list"]).code(0).stdout;
    assert!(listed.starts_with("store "), "{listed}");
    let out = t.run(["state", "restore", "7"]).code(1);
    assert!(
        out.stderr.contains("keeps one earlier version, `backup`"),
        "{}",
        out.stderr
    );
}

/// `state migrate` moves the state from the local file into the blob and back, locked on both
/// sides and read back: the state (lineage, resources, outputs) is unchanged by the round trip, and
/// a destination that holds another state is never overwritten.
#[test]
fn migrate_local_to_remote_and_back_keeps_the_state() {
    let t = remote();
    // Applied with the local backend: the state file beside the stack file.
    t.run(["apply", "--auto-approve", "--target", "store"])
        .code(0);
    let local: Value = serde_json::from_str(&t.read("state/managed-identity.json")).unwrap();
    let out = run(&t, &["state", "migrate", "--to", "azure_blob"]).code(0);
    assert!(
        out.stdout.contains("read it back unchanged"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("left in place"), "{}", out.stdout);
    let remote_state = state_of(&t);
    for k in ["lineage", "resources", "outputs", "cloud"] {
        assert_eq!(remote_state[k], local[k], "{k}");
    }
    // The remote state works as the stack's state.
    let listed = run(&t, &["state", "list"]).code(0).stdout;
    assert!(listed.starts_with("store "), "{listed}");
    // Back to a fresh local file.
    std::fs::remove_dir_all(t.path("state")).unwrap();
    let out = run(&t, &["state", "migrate", "--to", "local"]).code(0);
    assert!(
        out.stdout.contains("read it back unchanged"),
        "{}",
        out.stdout
    );
    let back: Value = serde_json::from_str(&t.read("state/managed-identity.json")).unwrap();
    for k in ["lineage", "resources", "outputs", "cloud"] {
        assert_eq!(back[k], local[k], "{k}");
    }
    // A destination with another state is refused.
    let mut other = back.clone();
    other["lineage"] = Value::String("00000000-0000-4000-8000-000000000001".into());
    t.write(
        "state/managed-identity.json",
        &serde_json::to_string(&other).unwrap(),
    );
    let out = run(&t, &["state", "migrate", "--to", "local"]).code(1);
    assert!(
        out.stderr.contains("already holds another state"),
        "{}",
        out.stderr
    );
    assert_eq!(
        serde_json::from_str::<Value>(&t.read("state/managed-identity.json")).unwrap(),
        other
    );
}

/// An apply killed with SIGKILL mid-run, its journal in the append blob, is recovered by the next
/// run (on any machine: it reads the journal blob) with no orphan left in the cloud; on this host the
/// next run takes the dead run's lock at once, without waiting for its lease to run out.
#[test]
fn a_killed_apply_is_recovered_from_the_remote_journal() {
    let t = remote_with(&["--lro-ms", "1500"]);
    let mut child = spawn(&t, &["apply", "--auto-approve"]);
    t.rest(async |c: &Cloud| {
        let journal = format!("{BLOB}.journal");
        wait_until("the run journaled steps in flight", MINUTE, async || {
            let (bytes, _) = get_blob(c, &journal).await?;
            let text = String::from_utf8_lossy(&bytes);
            (text.contains("\"kind\":\"intent\"")).then_some(())
        })
        .await;
    });
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        blob(&t, &format!("{BLOB}.journal")).is_some(),
        "the journal survives"
    );
    // The killed run's pid on this host is not running: the next run, with no `--lock-timeout`,
    // takes its lock over at once (its 60 s lease is not waited out; before, this run failed as
    // locked) with a notice naming the killed holder.
    let out = run(&t, &["apply", "--auto-approve"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("took over the lock")
            && out
                .stderr
                .contains(&format!("pid {pid} on this host is not running")),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("interrupted") || out.stderr.contains("interrupted"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    run(&t, &["plan", "--detailed-exitcode"]).code(0);
    assert!(
        blob(&t, &format!("{BLOB}.journal")).is_none(),
        "journal removed"
    );
    let left = std::fs::read_dir(t.path(".stackform/backend")).map_or(0, Iterator::count);
    assert_eq!(left, 0, "the killed run's working folder was swept");
    let accounts = t.rest(async |c: &Cloud| account_names(c, "mistore").await.len());
    assert_eq!(accounts, 1, "no orphan storage account");
    run(&t, &["destroy", "--auto-approve"]).code(0);
}

/// The state on Azurite (an explicit endpoint and the account key from ARM_ACCESS_KEY, as for
/// Terraform), the stack on the local cloud: the same writes with preconditions work there, and
/// a write behind stackform's back is caught the same way.
#[test]
fn the_state_on_azurite() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    let azurite = crate::support::wait::block_on(Azurite::start());
    crate::support::wait::block_on(async {
        let client = azurite_client(&azurite);
        client.create_container(CONTAINER).await.unwrap();
    });
    let az = |args: &[&str]| on_azurite(&t, &azurite, args).run();
    let out = az(&["apply", "--auto-approve", "--target", "store"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains(DEV_KEY) && !out.stdout.contains(DEV_KEY));
    let listed = az(&["state", "list"]).code(0).stdout;
    assert!(listed.contains("store"), "{listed}");
    az(&["state", "rm", "store"]).code(0);
    let history = az(&["state", "history"]).code(0).stdout;
    assert!(history.lines().count() >= 3, "{history}");
    let (state, _) = crate::support::wait::block_on(async {
        azurite_client(&azurite)
            .get_blob(CONTAINER, BLOB)
            .await
            .unwrap()
            .unwrap()
    });
    let state: Value = serde_json::from_slice(&state).unwrap();
    assert!(state["resources"]["store"].is_null(), "{state}");
}

/// [`destroying_an_environment_removes_its_blobs`] with the state on Azurite: the service deletes
/// the state blob with its snapshots (`x-ms-delete-snapshots: include`) and the lock blob under its
/// lease.
#[test]
fn destroying_an_environment_on_azurite_removes_its_blobs() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    let azurite = crate::support::wait::block_on(Azurite::start());
    let client = azurite_client(&azurite);
    {
        let c = client.clone();
        crate::support::wait::block_on(async move { c.create_container(CONTAINER).await.unwrap() });
    }
    let az = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--env", "pr-7"]);
        on_azurite(&t, &azurite, &all).run()
    };
    az(&["apply", "--auto-approve", "--target", "store"]).code(0);
    az(&["state", "rm", "store"]).code(0);
    let kept = snapshots(&az(&["state", "history"]).code(0).stdout);
    assert!(!kept.is_empty());
    let names = |c: stackform::provider::blob::BlobClient| {
        crate::support::wait::block_on(async move {
            c.list_blobs(CONTAINER, Some("env/pr-7/"))
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
        })
    };
    assert!(names(client.clone()).len() >= 3);
    let out = on_azurite(&t, &azurite, &["env", "list"]).run().code(0);
    let row: Vec<&str> = out
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.get(..2), Some(&["pr-7", "0"][..]), "{}", out.stdout);
    let out = az(&["destroy", "--auto-approve"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("Removed environment `pr-7`"));
    assert_eq!(names(client.clone()), Vec::<String>::new());
    let blob = format!("env/pr-7/{BLOB}");
    for snapshot in kept {
        let c = client.clone();
        let (b, s) = (blob.clone(), snapshot.clone());
        let found =
            crate::support::wait::block_on(
                async move { c.get_blob_at(CONTAINER, &b, Some(&s)).await },
            )
            .unwrap();
        assert!(found.is_none(), "snapshot {snapshot} is deleted");
    }
    let out = on_azurite(&t, &azurite, &["env", "list"]).run().code(0);
    assert!(out.stdout.contains("No environments"), "{}", out.stdout);
    // Storage that cannot be reached is a clear error.
    let out = t
        .cmd()
        .env("STACKFORM_BACKEND", "azure_blob")
        .env("ARM_ACCESS_KEY", DEV_KEY)
        .args([
            "env",
            "list",
            "--backend-config",
            &format!("account={DEV_ACCOUNT}"),
        ])
        .args(["--backend-config", &format!("container={CONTAINER}")])
        .args([
            "--backend-config",
            &format!("endpoint=http://127.0.0.1:9/{DEV_ACCOUNT}/"),
        ])
        .run()
        .code(1);
    assert!(out.stderr.contains("cannot read"), "{}", out.stderr);
}

/// The binary with its state on Azurite: the endpoint and names as `--backend-config` flags, the
/// account key from `ARM_ACCESS_KEY` (as for Terraform).
fn on_azurite(t: &Test, azurite: &Azurite, args: &[&str]) -> crate::support::Cmd {
    t.cmd()
        .env("STACKFORM_BACKEND", "azure_blob")
        .env("ARM_ACCESS_KEY", DEV_KEY)
        .args(args)
        .args([
            "--backend-config",
            &format!("account={DEV_ACCOUNT}"),
            "--backend-config",
            &format!("container={CONTAINER}"),
            "--backend-config",
            &format!("endpoint={}", azurite.endpoint()),
        ])
}

/// The ETag conflict of [`a_state_changed_behind_its_back_is_never_overwritten`] with the state on
/// Azurite: the service's own `If-Match` refusal stops the run, and the other writer's version stays.
#[test]
fn a_state_changed_behind_its_back_on_azurite_is_never_overwritten() {
    let t = Test::new()
        .example("managed-identity")
        .local_cloud(&["--lro-ms", "1500"]);
    let azurite = crate::support::wait::block_on(Azurite::start());
    let client = azurite_client(&azurite);
    let child = {
        let c = client.clone();
        crate::support::wait::block_on(async move { c.create_container(CONTAINER).await.unwrap() });
        on_azurite(&t, &azurite, &["apply", "--auto-approve"]).spawn()
    };
    let theirs = br#"{"version":1,"lineage":"00000000-0000-4000-8000-000000000000","serial":99,"stack":"managed-identity","resources":{},"outputs":{}}"#.to_vec();
    let written = bytes::Bytes::from(theirs.clone());
    crate::support::wait::block_on(async {
        let journal = format!("{BLOB}.journal");
        wait_until("the run journaled its first steps", MINUTE, async || {
            let state = client.get_blob(CONTAINER, BLOB).await.ok().flatten();
            let journal = client.get_blob(CONTAINER, &journal).await.ok().flatten();
            (state.is_some() && journal.is_some()).then_some(())
        })
        .await;
        client
            .put_blob(CONTAINER, BLOB, written, None, &Default::default())
            .await
            .unwrap();
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("changed behind stackform's back"),
        "{stderr}"
    );
    let (now, _) = crate::support::wait::block_on(client.get_blob(CONTAINER, BLOB))
        .unwrap()
        .unwrap();
    assert_eq!(now.to_vec(), theirs, "their version stays");
}

fn azurite_client(azurite: &Azurite) -> stackform::provider::blob::BlobClient {
    use stackform::provider::pipeline::{
        Pipeline, ReqwestTransport, SystemClock, build_http_client,
    };
    let pipeline = Pipeline::new(
        std::sync::Arc::new(ReqwestTransport::new(build_http_client(None).unwrap())),
        std::sync::Arc::new(SystemClock::default()),
        stackform::provider::retry::RetryPolicy::fast(),
        None,
    );
    stackform::provider::blob::BlobClient::with_shared_key(
        pipeline,
        azurite.endpoint(),
        stackform::provider::shared_key::SharedKeyCredential::new(DEV_ACCOUNT, DEV_KEY).unwrap(),
        "2025-11-05",
    )
}

/// A bad `backend:` block is a located error (file, line, column) for each problem, exit 1, and
/// nothing is read or written: an unknown key with a suggestion, an unknown kind, an account name
/// Azure refuses, and an access key, which never belongs in a stack file.
#[test]
fn a_bad_backend_block_is_a_located_error() {
    let t = Test::new().example("managed-identity");
    let stack = t.read("stack.yaml");
    t.write(
        "stack.yaml",
        &format!(
            "{stack}\nbackend:\n  kind: azure_blobs\n  acount: x\n  account: Bad_Name\n  access_key: hunter2\n"
        ),
    );
    let line = |n: usize| stack.lines().count() + 1 + n;
    let out = t.run(["plan"]).code(1);
    let e = &out.stderr;
    assert!(
        e.contains("unknown backend kind `azure_blobs`") && e.contains("azure_blob"),
        "{e}"
    );
    assert!(e.contains("unknown key `acount` in `backend`"), "{e}");
    assert!(
        e.contains("`Bad_Name` is not a storage account name"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "`backend.access_key` (line {}) would put a secret in the stack file",
            line(5)
        )),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the secret is never shown: {e}");
    assert!(
        e.contains(&format!("stack.yaml:{}:1", line(1))),
        "at `backend:`: {e}"
    );
    for n in 2..=4 {
        assert!(
            e.contains(&format!("stack.yaml:{}:", line(n))),
            "line {}: {e}",
            line(n)
        );
    }
    // A flag that names an unknown setting is refused by the argument parser.
    let out = t.run(["plan", "--backend-config", "acess_key=x"]).code(1);
    assert!(
        out.stderr.contains("unknown backend setting `acess_key`"),
        "{}",
        out.stderr
    );
    // A kind without its required settings names what is missing and where to set it.
    let t = Test::new().example("managed-identity");
    let out = t.run(["plan", "--backend", "azure_blob"]).code(1);
    assert!(
        out.stderr
            .contains("the azure_blob backend needs `account`"),
        "{}",
        out.stderr
    );
}
