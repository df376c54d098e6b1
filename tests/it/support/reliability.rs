//! What the reliability suite shares (`tests/it/reliability.rs` and the parts other modules own): its
//! two lengths, seeds, the figures each part prints, the synthetic stack it applies, and the
//! invariant every part ends on: the cloud holds exactly what state records (no orphan, no ghost).
//!
//! Every part runs short in `bash scripts/test.sh` (a few seeds or trials) and long when
//! `STACKFORM_RELIABILITY=long` (what `bash scripts/reliability.sh` sets). Seeds come from
//! `STACKFORM_RELIABILITY_SEED` when set, else from the clock, and are printed, so a failing trial is
//! replayed with the seed it printed. A part prints one `RELIABILITY-FIGURES` line when it passes;
//! the script turns those lines into its table. Nothing here decides a test's outcome by time.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use reqwest::Method;

use super::Test;
use super::cloud::Cloud;
use super::fixtures::repo_root;

/// Whether the long version runs (`STACKFORM_RELIABILITY=long`).
pub(crate) fn long() -> bool {
    std::env::var("STACKFORM_RELIABILITY").is_ok_and(|v| v == "long")
}

/// `short` in the normal test run, `long` in the long one.
pub(crate) fn scale(short: usize, long_: usize) -> usize {
    if long() { long_ } else { short }
}

/// The seeds of one part: `count` consecutive values from `STACKFORM_RELIABILITY_SEED` (or the
/// clock), printed with the command that replays them.
pub(crate) fn seeds(part: &str, count: usize) -> Vec<u64> {
    let base = std::env::var("STACKFORM_RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs() % 1_000_000)
        });
    println!(
        "{part}: {count} seed(s) from {base} (replay: STACKFORM_RELIABILITY_SEED={base}{})",
        if long() {
            " STACKFORM_RELIABILITY=long"
        } else {
            ""
        }
    );
    (base..base + count as u64).collect()
}

/// What one part did, printed as one `RELIABILITY-FIGURES` line once it passed.
#[derive(Default)]
pub(crate) struct Figures {
    /// Independent trials (seeds, cases, races, runs) that ended with the part's invariant checked.
    pub trials: usize,
    /// Faults the part injected or met: kills, failed writes, injected 5xx and 429 answers retried.
    pub faults: usize,
    /// Attacks tried (security parts).
    pub attacks: usize,
    /// Free text: the rates survived, the sizes used.
    pub note: String,
}

impl Figures {
    /// Prints the figures line of part `part` (the script reads `key=value` pairs up to `note=`).
    pub(crate) fn report(&self, part: &str) {
        println!(
            "RELIABILITY-FIGURES part={part} length={} trials={} faults={} attacks={} note={}",
            if long() { "long" } else { "short" },
            self.trials,
            self.faults,
            self.attacks,
            self.note
        );
    }
}

/// `scripts/gen_stack.py`'s synthetic stack: `resources` resources (a third each storage accounts
/// named `<prefix><n>`, containers and blobs), stack name `stack`.
pub(crate) fn synthetic_stack(resources: usize, prefix: &str, stack: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/gen_stack.py"))
        .arg(resources.to_string())
        .args(["--prefix", prefix, "--stack", stack])
        .output()
        .expect("run python3 scripts/gen_stack.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 stack")
}

/// Names of the storage accounts in the cloud's resource group that start with `prefix`, from ARM's
/// list (every `nextLink` page).
pub(crate) async fn account_names(c: &Cloud, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut next = Some(format!(
        "{}/providers/Microsoft.Storage/storageAccounts?api-version=2025-01-01",
        c.rg()
    ));
    while let Some(path) = next.take() {
        let page = c.arm(Method::GET, &path, None).await;
        assert_eq!(page.status.as_u16(), 200, "{}", page.text);
        names.extend(
            page.body["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["name"].as_str())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_owned),
        );
        next = page.body["nextLink"].as_str().map(str::to_owned);
    }
    names
}

/// The `<Name>` values of a List Blobs answer.
fn xml_names(xml: &str) -> Vec<String> {
    xml.split("<Name>")
        .skip(1)
        .filter_map(|s| s.split_once("</Name>").map(|(n, _)| n.to_string()))
        .collect()
}

/// What the cloud holds under storage accounts whose name starts with `prefix`, as
/// `account:<a>`, `container:<a>/<c>` and `blob:<a>/<c>/<b>`: accounts from ARM's list (every page),
/// containers from ARM's list of each account, blobs from the data plane's List Blobs.
pub(crate) async fn cloud_objects(c: &Cloud, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let accounts = account_names(c, prefix).await;
    for account in accounts {
        out.insert(format!("account:{account}"));
        let list = c
            .arm(
                Method::GET,
                &format!(
                    "{}/providers/Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers?api-version=2025-01-01",
                    c.rg()
                ),
                None,
            )
            .await;
        assert_eq!(list.status.as_u16(), 200, "{}", list.text);
        let containers: Vec<String> = list.body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
        let key = c.account_key(&account).await;
        for container in containers {
            out.insert(format!("container:{account}/{container}"));
            let blobs = c
                .blob_shared_key(
                    Method::GET,
                    &account,
                    &key,
                    &format!("{container}?restype=container&comp=list"),
                    vec![],
                    &[],
                )
                .await;
            assert_eq!(blobs.status.as_u16(), 200, "{}", blobs.text);
            for blob in xml_names(&blobs.text) {
                out.insert(format!("blob:{account}/{container}/{blob}"));
            }
        }
    }
    out
}

/// The same names for what the state `rel` of `t` records (storage accounts, containers and blobs
/// only; none when there is no state yet), read as every reader of state reads it: the file with the
/// commits of a journal beside it replayed over it (`StateStore::read`).
pub(crate) fn state_objects(t: &Test, rel: &str) -> BTreeSet<String> {
    let path = t.path(rel);
    let stack = path
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a state file name");
    let store = stackform::state::StateStore::for_stack(path.parent().expect("a folder"), stack)
        .expect("a state store");
    let Some(state) = store.read().expect("the state reads") else {
        return BTreeSet::new();
    };
    let state = serde_json::to_value(&state).expect("state as JSON");
    let mut out = BTreeSet::new();
    for r in state["resources"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        let i = &r["inputs"];
        let s = |k: &str| i[k].as_str().unwrap_or("?").to_string();
        match r["type"].as_str() {
            Some("storage_account") => out.insert(format!("account:{}", s("name"))),
            Some("blob_container") => {
                out.insert(format!("container:{}/{}", s("account"), s("name")))
            }
            Some("blob") => out.insert(format!(
                "blob:{}/{}/{}",
                s("account"),
                s("container"),
                s("name")
            )),
            _ => false,
        };
    }
    out
}

/// Asserts that the cloud holds exactly what the state file `rel` records under accounts named
/// `prefix…`, naming the orphans (in the cloud only) and the ghosts (in state only); returns how many
/// objects that is.
pub(crate) fn assert_cloud_is_state(t: &Test, rel: &str, prefix: &str, context: &str) -> usize {
    let cloud = t.rest(async |c: &Cloud| cloud_objects(c, prefix).await);
    assert_same(&cloud, &state_objects(t, rel), context)
}

/// Asserts that `cloud` (from [`cloud_objects`]) and `state` (from [`state_objects`]) are the same
/// objects, naming the orphans and the ghosts; returns how many objects that is.
pub(crate) fn assert_same(
    cloud: &BTreeSet<String>,
    state: &BTreeSet<String>,
    context: &str,
) -> usize {
    if cloud != state {
        let mut why = String::new();
        for o in cloud.difference(state) {
            let _ = writeln!(why, "  orphan (in the cloud, not in state): {o}");
        }
        for g in state.difference(cloud) {
            let _ = writeln!(why, "  ghost (in state, not in the cloud): {g}");
        }
        panic!("{context}: the cloud is not what state records\n{why}");
    }
    cloud.len()
}
