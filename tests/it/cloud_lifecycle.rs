//! Running the local cloud: `cloud up --detach|down|status|reset` on the real binary, the data-folder
//! lock, `ensure_running`, and state that survives a clean restart, `kill -9`, and deployments that
//! come back with the cloud.
use std::time::Duration;

use crate::support::cloud::Cloud;
use crate::support::walk::{invoke, walk};
use crate::support::{Cmd, Output, binary, wait_until};
use reqwest::Method;
use serde_json::{Value, json};
use stackform::cloud::{CloudError, CloudOptions};

fn run(args: &[&str], dir: &std::path::Path) -> Output {
    Cmd::new().args(args).arg("--data-dir").arg(dir).run()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_up_status_down_and_reset() {
    let c = Cloud::start_binary(&[]);
    let dir = c.dir.path().to_path_buf();
    let second = run(&["cloud", "up", "--detach", "--port", "0"], &dir);
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );
    let status = run(&["cloud", "status", "--json"], &dir);
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    for field in [
        "arm_endpoint",
        "authority_host",
        "tenant_id",
        "client_id",
        "client_secret",
        "subscription_id",
        "resource_group",
        "workspace",
        "location",
        "ca_cert",
        "blob_endpoint_template",
        "metadata_endpoint",
        "pid",
    ] {
        assert!(!v[field].is_null(), "status --json lacks {field}");
    }
    assert!(
        v["arm_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    let text = run(&["cloud", "status"], &dir).stdout;
    assert!(
        text.contains("running") && !text.contains(&c.info.client_secret),
        "human status hides the secret"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("cloud.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    c.create_storage("keepme1").await;
    run(&["cloud", "down"], &dir).code(0);
    let stopped = run(&["cloud", "status", "--json"], &dir).code(1);
    assert_eq!(
        serde_json::from_str::<Value>(&stopped.stdout).unwrap()["running"],
        false
    );
    run(&["cloud", "reset"], &dir).code(0);
    assert!(!dir.join("store.db").exists(), "reset deletes the store");
    assert!(dir.join("ca.pem").exists(), "reset keeps the CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_down_up_and_kill_9() {
    let c = Cloud::start_binary(&[]);
    let tenant = c.info.tenant_id.clone();
    c.create_storage("durable1").await;
    let key = c.account_key("durable1").await;
    c.create_container("durable1", &key, "box").await;
    c.put_blob("durable1", &key, "box", "a.txt", b"persisted".to_vec())
        .await;
    let dir = c.stop().await;

    let c = Cloud::start_binary_in(dir, &[]);
    assert_eq!(c.info.tenant_id, tenant);
    let got = c
        .blob_shared_key(Method::GET, "durable1", &key, "box/a.txt", vec![], &[])
        .await;
    assert_eq!(got.text, "persisted");
    c.create_storage("durable2").await;
    let c = Cloud::start_binary_in(c.kill_9().await, &[]);
    let a = c
        .arm(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/durable2",
                c.rg()
            ),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["properties"]["provisioningState"], "Succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_restart_with_the_cloud() {
    let c = Cloud::start_in_process().await;
    let w = walk(&c, "code", "conda.yaml", true, Duration::from_secs(120)).await;
    assert_eq!(w.deployment_status["status"], "Succeeded");
    invoke(&c, &w.endpoint).await;
    let port = c.info.port;
    let dir = c.stop().await;
    // Same port, as `cloud up` does by default: the deployment's environment names the blob endpoint.
    let c = Cloud::start_in_process_on(dir, port).await;
    let keys = c
        .arm(Method::POST, &format!("{}/listKeys", w.endpoint), None)
        .await;
    let key = keys.body["primaryKey"].as_str().unwrap().to_string();
    let scoring = c.arm(Method::GET, &w.endpoint, None).await.body["properties"]["scoringUri"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = wait_until(
        "the deployment serves again",
        Duration::from_secs(60),
        async || {
            let r = c
                .http
                .post(&scoring)
                .bearer_auth(&key)
                .json(&json!({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                return Some(r.json::<Value>().await.unwrap());
            }
            assert_eq!(r.status(), 424, "not serving yet is a 424");
            let dep = w.deployment(&c).await;
            assert_ne!(
                dep.body["properties"]["provisioningState"],
                "Failed",
                "{}",
                c.arm(
                    Method::POST,
                    &format!("{}/deployments/blue/getLogs", w.endpoint),
                    Some(json!({}))
                )
                .await
                .text
            );
            None
        },
    )
    .await;
    assert_eq!(answer, json!([192.75]));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_cannot_share_a_data_folder() {
    let c = Cloud::start_in_process().await;
    let second = stackform::cloud::start(CloudOptions {
        limits: Default::default(),
        data_dir: c.dir.path().to_path_buf(),
        port: 0,
        faults: Default::default(),
        log_file: None,
        seed: Default::default(),
    })
    .await;
    assert!(matches!(second, Err(CloudError::AlreadyRunning(_))));
    c.stop().await;
}

#[test]
fn ensure_running_starts_the_cloud_once() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(binary());
    let first = stackform::cloud::instance::ensure_running_with(exe, dir.path()).unwrap();
    let again = stackform::cloud::instance::ensure_running_with(exe, dir.path()).unwrap();
    assert_eq!(first.pid, again.pid);
    assert_eq!(first.data_dir, dir.path());
    stackform::cloud::instance::stop(dir.path()).unwrap();
    assert!(stackform::cloud::status(dir.path()).is_none());
}

/// `cloud up` listened for SIGTERM only after writing its status file, so a `cloud down` sent as
/// soon as the status file named it killed it outright (exit by signal, status file left behind):
/// the signal is sent here the moment the status file appears.
#[test]
fn foreground_up_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(binary())
        .args(["cloud", "up", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while stackform::cloud::status(dir.path()).is_none() {
        assert!(child.try_wait().unwrap().is_none(), "cloud up exited early");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cloud up did not come up"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!dir.path().join("cloud.json").exists());
    assert!(stackform::cloud::status(dir.path()).is_none());
}
