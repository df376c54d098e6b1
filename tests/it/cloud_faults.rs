//! Each fault knob of the local cloud, set through the admin API (and at start through flags and
//! environment variables), observed through the answers clients get.
use std::time::{Duration, Instant};

use crate::support::binary;
use crate::support::cloud::{Cloud, READER, STORAGE_SCOPE, answer};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_requires_the_service_principal_and_valid_settings() {
    let c = Cloud::start_in_process().await;
    let anon = answer(
        c.http
            .post(c.url("/_admin/faults"))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(anon.status, 401);
    let storage = c.token_for(STORAGE_SCOPE).await;
    let wrong_aud = answer(
        c.http
            .post(c.url("/_admin/faults"))
            .bearer_auth(storage)
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong_aud.status, 401);
    assert_eq!(c.set_faults(json!({"error_rate": 2.0})).await.status, 400);
    assert_eq!(c.set_faults(json!({"no_such_knob": 1})).await.status, 400);
    let ok = c.set_faults(json!({"lro_ms": 5})).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["lro_ms"], 5);
    assert_eq!(ok.body["error_rate"], 0.0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_answers_5xx_until_cleared() {
    let c = Cloud::start_in_process().await;
    let token = c.token().await;
    c.set_faults(json!({"error_rate": 1.0})).await;
    for _ in 0..5 {
        let a = c.arm_as(&token, Method::GET, &c.rg(), None).await;
        assert!(a.status == 500 || a.status == 503, "{}", a.status);
        assert!(a.body["error"]["code"].is_string());
    }
    c.set_faults(json!({"error_rate": 0.0})).await;
    assert_eq!(
        c.arm_as(&token, Method::GET, &c.rg(), None).await.status,
        200
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_rate_answers_429_with_retry_after() {
    let c = Cloud::start_in_process().await;
    let token = c.token().await;
    c.set_faults(json!({"throttle_rate": 1.0, "throttle_retry_after_s": 7}))
        .await;
    let a = c.arm_as(&token, Method::GET, &c.rg(), None).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after").as_deref(), Some("7"));
    let blob = answer(
        c.http
            .get(c.blob_url("anything", "c/b"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(blob.status, 429, "the blob data plane is throttled too");
    assert_eq!(blob.header("retry-after").as_deref(), Some("7"));
    c.set_faults(json!({"throttle_rate": 0.0})).await;
    assert_eq!(
        c.arm_as(&token, Method::GET, &c.rg(), None).await.status,
        200
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_added_to_each_request() {
    let c = Cloud::start_in_process().await;
    let token = c.token().await;
    c.set_faults(json!({"latency_ms": 300})).await;
    let start = Instant::now();
    assert_eq!(
        c.arm_as(&token, Method::GET, &c.rg(), None).await.status,
        200
    );
    // A lower bound only: the injected sleep guarantees it, whatever the machine's speed.
    assert!(start.elapsed() >= Duration::from_millis(300));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lro_duration_keeps_operations_in_progress() {
    let c = Cloud::start_in_process().await;
    c.set_faults(json!({"lro_ms": 600000, "retry_after_s": 2}))
        .await;
    let path = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/slowacct",
        c.rg()
    );
    let a = c
        .arm(
            Method::PUT,
            &path,
            Some(
                json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}),
            ),
        )
        .await;
    assert_eq!(a.status, 202);
    assert_eq!(a.header("retry-after").as_deref(), Some("2"));
    let poll = c
        .arm(Method::GET, &a.header("location").unwrap(), None)
        .await;
    assert_eq!(poll.status, 202);
    assert_eq!(
        c.arm(Method::GET, &path, None).await.body["properties"]["provisioningState"],
        "Creating"
    );
    let ep = c
        .arm(
            Method::PUT,
            &format!("{}/onlineEndpoints/slow-ep", c.ws()),
            Some(json!({"location": "eastus", "properties": {"authMode": "Key"}})),
        )
        .await;
    let status = c
        .arm(
            Method::GET,
            &ep.header("azure-asyncoperation").unwrap(),
            None,
        )
        .await;
    assert_eq!(status.body["status"], "InProgress");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_replication_delay_gives_principal_not_found() {
    let c = Cloud::start_in_process().await;
    c.create_storage("replacct").await;
    c.set_faults(json!({"principal_replication_s": 3600.0}))
        .await;
    let uai = c
        .arm(
            Method::PUT,
            &format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/fresh",
                c.rg()
            ),
            Some(json!({"location": "eastus"})),
        )
        .await;
    let principal = uai.body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let ra = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/replacct/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        c.rg(),
        uuid::Uuid::new_v4()
    );
    let body = json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"), "principalId": principal, "principalType": "ServicePrincipal"}});
    let early = c.arm(Method::PUT, &ra, Some(body.clone())).await;
    assert_eq!(early.status, 400);
    assert_eq!(early.body["error"]["code"], "PrincipalNotFound");
    c.set_faults(json!({"principal_replication_s": 0.0})).await;
    assert_eq!(c.arm(Method::PUT, &ra, Some(body)).await.status, 201);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_propagation_delay_denies_data_access_for_a_while() {
    let c = Cloud::start_in_process().await;
    c.create_storage("propacct").await;
    let key = c.account_key("propacct").await;
    c.create_container("propacct", &key, "box").await;
    c.put_blob("propacct", &key, "box", "f.txt", b"data".to_vec())
        .await;
    c.set_faults(json!({"role_propagation_s": 3600.0})).await;
    let sp_oid = c.seeded_principal().await;
    let ra = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/propacct/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        c.rg(),
        uuid::Uuid::new_v4()
    );
    let r = c.arm(Method::PUT, &ra, Some(json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"), "principalId": sp_oid}}))).await;
    assert_eq!(r.status, 201);
    let storage = c.token_for(STORAGE_SCOPE).await;
    let get = || {
        c.http
            .get(c.blob_url("propacct", "box/f.txt"))
            .bearer_auth(&storage)
            .header("x-ms-version", "2025-11-05")
            .send()
    };
    let denied = answer(get().await.unwrap()).await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.header("x-ms-error-code").as_deref(),
        Some("AuthorizationPermissionMismatch")
    );
    c.set_faults(json!({"role_propagation_s": 0.0})).await;
    assert_eq!(answer(get().await.unwrap()).await.text, "data");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_can_be_set_by_flags_and_environment_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(binary())
        .args([
            "cloud",
            "up",
            "--detach",
            "--port",
            "0",
            "--lro-ms",
            "1234",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("STACKFORM_CLOUD_FAULT_THROTTLE_RETRY_AFTER_S", "9")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Cloud::attach(dir);
    let t = c.token().await;
    let f = answer(
        c.http
            .get(c.url("/_admin/faults"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(f.body["lro_ms"], 1234);
    assert_eq!(f.body["throttle_retry_after_s"], 9);
    assert_eq!(f.body["error_rate"], 0.0);
}
