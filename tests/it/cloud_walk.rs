//! The done-when checks: the reference scenario walked over plain REST against the real binary
//! started with `cloud up --detach` (with and without the role assignment), and a deployment whose
//! scoring script uses Microsoft's Python SDKs through the local cloud's MSI and blob endpoints.
use std::time::Duration;

use crate::support::cloud::Cloud;
use crate::support::walk::{invoke, logs, walk, walk_with};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_walk_with_role_assignment_scores_each_row() {
    let c = Cloud::start_binary(&[]);
    let w = walk(&c, "code", "conda.yaml", true, Duration::from_secs(120)).await;
    w.assert_succeeded_with_log(&c, "read blob hello.txt: Hello world!")
        .await;
    let out = invoke(&c, &w.endpoint).await;
    let rows = out.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    // weights 0.5..5.0, bias 0.25
    assert_eq!(rows[0].as_f64(), Some(192.75));
    assert_eq!(rows[1].as_f64(), Some(110.25));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_walk_without_role_assignment_fails_with_403_in_logs() {
    let c = Cloud::start_binary(&[]);
    let w = walk(&c, "code", "conda.yaml", false, Duration::from_secs(120)).await;
    assert_eq!(w.deployment_status["status"], "Failed");
    let dep = w.deployment(&c).await;
    assert_eq!(dep.body["properties"]["provisioningState"], "Failed");
    let text = logs(&c, &w.endpoint).await;
    assert!(
        text.contains("HTTP 403 AuthorizationPermissionMismatch"),
        "{text}"
    );
}

/// Installs azure-identity and azure-storage-blob from PyPI into the deployment's venv (needs network
/// the first time; the venv is cached per data folder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_python_sdks_read_the_blob_through_msi() {
    let c = Cloud::start_binary(&[]);
    let w = walk(
        &c,
        "code-sdk",
        "conda-sdk.yaml",
        true,
        Duration::from_secs(600),
    )
    .await;
    w.assert_succeeded_with_log(&c, "sdk read blob: Hello world!")
        .await;
    let out = invoke(&c, &w.endpoint).await;
    assert_eq!(out, json!({"greeting": "Hello world!", "rows": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_assigned_identity_reads_the_blob_by_client_id() {
    let c = Cloud::start_in_process().await;
    let w = walk_with(
        &c,
        "code",
        "conda.yaml",
        true,
        true,
        Duration::from_secs(120),
    )
    .await;
    w.assert_succeeded_with_log(&c, "read blob hello.txt: Hello world!")
        .await;
    c.stop().await;
}
