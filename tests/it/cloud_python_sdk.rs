//! Microsoft's azure-storage-blob (Python) as a judge of the blob data plane: SharedKey signing on the
//! path-style endpoint, container creation, uploads, listing, ranged download, properties, delete.
//! Installs azure-storage-blob from PyPI into a throw-away venv (network needed the first time).
use crate::support::cloud::Cloud;
use crate::support::fixture;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_storage_blob_with_an_account_key() {
    let c = Cloud::start_in_process().await;
    c.create_storage("sdkacct").await;
    let key = c.account_key("sdkacct").await;
    let venv = tempfile::tempdir().unwrap();
    let python = venv.path().join("bin/python");
    let url = c.blob_url("sdkacct", "").trim_end_matches('/').to_string();
    let ca = c.info.ca_cert.clone();
    let venv_path = venv.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv_path)
            .status()
            .unwrap();
        assert!(made.success());
        let pip = std::process::Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "azure-storage-blob",
            ])
            .status()
            .unwrap();
        assert!(pip.success(), "pip install azure-storage-blob failed");
        std::process::Command::new(&python)
            .arg(fixture("cloud/sdk/shared_key.py"))
            .env("ACCOUNT_URL", url)
            .env("ACCOUNT_NAME", "sdkacct")
            .env("ACCOUNT_KEY", key)
            .env("REQUESTS_CA_BUNDLE", ca)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen,
        json!({"names": ["b.txt", "dir/a.txt"], "data": "hello from the sdk", "size": 6, "after": ["dir/a.txt"]})
    );
    c.stop().await;
}
