//! The remote state backend (`backend: { kind: azure_blob, … }`) through the real binary: the
//! demo stack's whole journey with its state in a blob of the local cloud, an ETag conflict from a
//! write behind stackform's back, history and restore, a migration local → remote → local, an
//! apply killed with SIGKILL recovered from the remote journal, the state on Azurite, and a bad
//! `backend:` block.
use reqwest::Method;
use serde_json::Value;

use crate::support::cloud::Cloud;
use crate::support::{Output, Test};

const ACCOUNT: &str = "sfstate";
const CONTAINER: &str = "tfstate";
const BLOB: &str = "managed-identity.json";

/// The reference example with a local cloud that has a state account and container.
fn remote() -> Test {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
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

/// A blob of the state container: its bytes and `serial` metadata, or `None`.
async fn get_blob(c: &Cloud, name: &str) -> Option<(Vec<u8>, Value)> {
    let key = c.account_key(ACCOUNT).await;
    let a = c
        .blob_shared_key(
            Method::GET,
            ACCOUNT,
            &key,
            &format!("{CONTAINER}/{name}"),
            vec![],
            &[],
        )
        .await;
    (a.status == 200).then(|| {
        let serial = a.header("x-ms-meta-serial").unwrap_or_default();
        (a.text.into_bytes(), serde_json::json!({ "serial": serial }))
    })
}

fn blob(t: &Test, name: &str) -> Option<(Vec<u8>, Value)> {
    t.rest(async |c: &Cloud| get_blob(c, name).await)
}

/// Until the remote lock is part of the build, a command that writes the remote state is refused
/// (never run unlocked) and writes nothing, while a read-only command reads the remote state.
#[test]
fn writes_are_refused_without_the_remote_lock() {
    let t = remote();
    let out = run(&t, &["apply", "--auto-approve"]).code(1);
    assert!(out.stderr.contains("cannot lock"), "{}", out.stderr);
    assert!(blob(&t, BLOB).is_none(), "nothing written");
    assert!(!t.path("state").exists());
    let out = run(&t, &["state", "list"]).code(0);
    assert!(out.stdout.contains("No state yet"), "{}", out.stdout);
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
