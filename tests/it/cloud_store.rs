//! The local cloud's store (`store.db`, SQLite) through the real binary: writes acknowledged before a
//! `kill -9` in the middle of a burst are all there after a restart and the database is intact; a data
//! folder of the former format (`state.json`) is migrated on its first start, or refused with a
//! message naming the file.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;

use crate::support::bin::binary;
use crate::support::cloud::Cloud;
use crate::support::fixtures::copy_dir;
use crate::support::wait::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_in_the_middle_of_a_burst() {
    let c = Cloud::start_binary(&[]);
    c.create_storage("burst1").await;
    let token = c.token().await;
    let account = c.url(&format!(
        "{}/providers/Microsoft.Storage/storageAccounts/burst1",
        c.rg()
    ));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..16 {
        let (http, token, account) = (c.http.clone(), token.clone(), account.clone());
        let (acked, unexpected, killed) = (acked.clone(), unexpected.clone(), killed.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}n{i}");
                let sent = http
                    .put(format!(
                        "{account}/blobServices/default/containers/{name}?api-version=2025-01-01"
                    ))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => acked.lock().unwrap().push(name),
                    Ok(r) => unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{name}: {}", r.status())),
                    // The cloud is gone: this write was never acknowledged.
                    Err(_) if killed.load(Ordering::SeqCst) => return,
                    Err(e) => unexpected.lock().unwrap().push(format!("{name}: {e}")),
                }
            }
        }));
    }
    wait_until(
        "the burst has 300 acknowledged writes",
        Duration::from_secs(120),
        async || (acked.lock().unwrap().len() >= 300).then_some(()),
    )
    .await;
    killed.store(true, Ordering::SeqCst);
    let dir = c.kill_9().await;
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("the workers stop once the cloud is gone")
            .unwrap();
    }
    assert_eq!(*unexpected.lock().unwrap(), Vec::<String>::new());
    let c = Cloud::start_binary_in(dir, &[]);
    let acked = acked.lock().unwrap().clone();
    let listed = c
        .arm(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/burst1/blobServices/default/containers?api-version=2025-01-01",
                c.rg()
            ),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let names: std::collections::BTreeSet<&str> = listed.body["value"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged before kill -9, then lost: {lost:?}"
    );
    // What `sqlite3 store.db 'PRAGMA integrity_check'` says.
    let db = rusqlite::Connection::open(c.dir.path().join("store.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// A copy of `tests/fixtures/cloud/legacy-data` (written by the store before `store.db`: a storage
/// account `legacystore1` with container `box` and blob `dir/hello.txt`, an endpoint and a role
/// assignment, applied by `stackform apply` and stopped with `cloud down`).
fn legacy_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloud/legacy-data"),
        dir.path(),
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_of_the_former_format_is_migrated_on_first_start() {
    let c = Cloud::start_binary_in(legacy_folder(), &[]);
    assert_eq!(c.info.tenant_id, "2e777a56-ace5-4b29-bdb2-a70dbeb2d7b5");
    let acct = c
        .arm(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/legacystore1?api-version=2025-01-01",
                c.rg()
            ),
            None,
        )
        .await;
    assert_eq!(acct.status, 200, "{}", acct.text);
    let endpoint = c
        .arm(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.MachineLearningServices/workspaces/{}/onlineEndpoints/legacy-endpoint?api-version=2025-12-01",
                c.rg(),
                c.info.workspace
            ),
            None,
        )
        .await;
    assert_eq!(endpoint.status, 200, "{}", endpoint.text);
    let key = c.account_key("legacystore1").await;
    let blob = c
        .blob_shared_key(
            Method::GET,
            "legacystore1",
            &key,
            "box/dir/hello.txt",
            vec![],
            &[],
        )
        .await;
    assert_eq!(blob.status, 200, "{}", blob.text);
    assert_eq!(blob.text, "hello from the old format\n");
    let d = c.dir.path();
    assert!(d.join("store.db").exists() && d.join("state.json.migrated").exists());
    assert!(!d.join("state.json").exists());
}

#[test]
fn an_unreadable_former_store_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), "{\"seed\": ").unwrap();
    let out = std::process::Command::new(binary())
        .args(["cloud", "up", "--detach", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("state.json") && stderr.contains("cannot migrate"),
        "{stderr}"
    );
    assert!(
        dir.path().join("state.json").exists(),
        "the file is left as it is"
    );
}
