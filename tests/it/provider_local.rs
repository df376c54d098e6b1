//! The provider end to end against the local cloud, started in-process on a free loopback port with
//! its own data folder: create → read → update → read → delete of every resource type, with computed
//! outputs asserted and the read-back inputs compared with what was asked (the planner's no-change
//! property). The same lifecycle runs again with 30 % 5xx and 10 % 429 injected and a principal that
//! replicates late, which the provider must absorb through its retries.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use stackform::cloud::faults::Faults;
use stackform::provider::ids::role_assignment_name;
use stackform::provider::{
    AzureProvider, MapRequest, Observed, ProgressEvent, Provider, ResourceRequest, ResourceType,
};

use crate::support::example_dir;
use crate::support::provider::Local;

/// Everything the provider logged at debug level in this test binary (all threads, every test that
/// drives the provider once one of these tests has installed the subscriber).
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("stackform::provider=debug")
        .with_ansi(false)
        .with_writer(|| LogSink)
        .try_init();
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn example(rel: &str) -> String {
    example_dir("managed-identity")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

/// Turns injected faults off (`true`) or back to `saved` (`false`). The deployment's own scoring
/// script reads the blob once in `init()` without retrying, so faults are paused while it starts:
/// that read is the sample script's, not the provider's.
fn pause_faults(local: &Local, pause: bool, saved: &Faults) {
    local.set_faults(if pause {
        Faults {
            retry_after_s: 0,
            ..Faults::default()
        }
    } else {
        saved.clone()
    });
}

/// Every input we sent comes back the same (the planner would see no change).
fn assert_reads_back(what: &str, desired: &Map<String, Value>, observed: &Observed) {
    for (k, v) in desired {
        assert_eq!(
            observed.inputs.get(k),
            Some(v),
            "{what}: input `{k}` read back as {:?}",
            observed.inputs.get(k)
        );
    }
}

fn req(t: ResourceType, address: &str, inputs: Map<String, Value>) -> ResourceRequest {
    ResourceRequest::new(t, address, inputs)
}

async fn create_read(p: &AzureProvider, r: &ResourceRequest) -> Observed {
    let created = p
        .create(r)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", r.address));
    let read = p
        .read(r)
        .await
        .unwrap_or_else(|e| panic!("read {}: {e}", r.address))
        .expect("exists after create");
    assert_reads_back(&r.address, &r.inputs, &read);
    assert_eq!(created.id, read.id);
    read
}

/// Puts an endpoint's whole traffic map; returns the one it replaced.
async fn set_traffic(
    p: &AzureProvider,
    endpoint: &str,
    entries: &[(&str, u64)],
) -> std::collections::BTreeMap<String, u64> {
    p.set_map(&MapRequest {
        address: "endpoint.traffic".into(),
        owner_type: ResourceType::OnlineEndpoint,
        owner: endpoint.to_owned(),
        map: "properties.traffic".into(),
        entries: entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        progress: None,
    })
    .await
    .unwrap_or_else(|e| panic!("set the traffic of {endpoint}: {e}"))
}

async fn update_read(p: &AzureProvider, prior: &Observed, r: &ResourceRequest) -> Observed {
    let updated = p
        .update(prior, r)
        .await
        .unwrap_or_else(|e| panic!("update {}: {e}", r.address));
    let read = p.read(r).await.unwrap().expect("exists after update");
    assert_reads_back(&r.address, &r.inputs, &read);
    assert_eq!(updated.id, read.id);
    read
}

async fn delete_gone(p: &AzureProvider, r: &ResourceRequest) {
    p.delete(r)
        .await
        .unwrap_or_else(|e| panic!("delete {}: {e}", r.address));
    assert_eq!(
        p.read(r).await.unwrap(),
        None,
        "{} still there after delete",
        r.address
    );
    p.delete(r)
        .await
        .unwrap_or_else(|e| panic!("second delete of {} (already gone): {e}", r.address));
}

/// A string output by dotted path (`identity.principal_id`).
fn s(o: &Observed, path: &str) -> String {
    let mut cur = Value::Object(o.outputs.clone());
    for part in path.split('.') {
        cur = cur.get(part).cloned().unwrap_or(Value::Null);
    }
    cur.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("output {path} missing in {:?}", o.outputs))
}

async fn lifecycle(local: &Local, suffix: &str, faults: &Faults) {
    let p = &local.provider;
    let events: Arc<Mutex<Vec<ProgressEvent>>> = Arc::default();
    let sink = events.clone();
    let progress: stackform::provider::ProgressSink =
        Arc::new(move |e| sink.lock().unwrap().push(e));

    // storage_account
    let account = format!("sfstore{suffix}");
    let sa_inputs = obj(json!({
        "name": account, "location": p.config().location, "sku": "Standard_LRS", "kind": "StorageV2",
        "access_tier": "Hot", "allow_blob_public_access": false, "allow_shared_key_access": true,
        "minimum_tls_version": "TLS1_2",
    }));
    let sa = req(ResourceType::StorageAccount, "store", sa_inputs.clone())
        .with_progress(progress.clone());
    let store = create_read(p, &sa).await;
    assert!(
        store
            .id
            .to_ascii_lowercase()
            .ends_with(&format!("/storageaccounts/{account}")),
        "{}",
        store.id
    );
    assert_eq!(s(&store, "provisioning_state"), "Succeeded");
    assert!(s(&store, "primary_blob_endpoint").starts_with("https://127.0.0.1:"));
    let mut sa2 = sa_inputs.clone();
    sa2.insert("access_tier".into(), json!("Cool"));
    sa2.insert("tags".into(), json!({"env": "test"}));
    let store = update_read(p, &store, &req(ResourceType::StorageAccount, "store", sa2)).await;

    // blob_container
    let c_inputs = obj(json!({"account": account, "name": "hello", "public_access": "None"}));
    let c = req(ResourceType::BlobContainer, "data", c_inputs.clone());
    let container = create_read(p, &c).await;
    assert!(
        container
            .id
            .ends_with("/blobServices/default/containers/hello"),
        "{}",
        container.id
    );
    let mut c2 = c_inputs.clone();
    c2.insert("metadata".into(), json!({"owner": "stackform"}));
    update_read(p, &container, &req(ResourceType::BlobContainer, "data", c2)).await;

    // blob
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("hello.txt");
    std::fs::write(&src, "Hello world!").unwrap();
    let b_inputs = obj(
        json!({"account": account, "container": "hello", "name": "hello.txt", "source": src.to_string_lossy()}),
    );
    let b = req(ResourceType::Blob, "greeting", b_inputs.clone());
    let blob = create_read(p, &b).await;
    assert_eq!(s(&blob, "content_md5"), "hvsmnRkNLIX24EaM7KQqIA==");
    assert!(
        s(&blob, "url").ends_with(&format!("/{account}/hello/hello.txt")),
        "{}",
        s(&blob, "url")
    );
    assert_eq!(blob.id, s(&blob, "url"));
    let first_sha = s(&blob, "content_sha256");
    std::fs::write(&src, "Hello again!").unwrap();
    // A changed local file no longer matches the live blob: `source` is not echoed (the planner sees a change).
    let drifted = p.read(&b).await.unwrap().unwrap();
    assert_eq!(drifted.inputs.get("source"), None);
    assert_eq!(
        s(&drifted, "content_sha256"),
        first_sha,
        "the live hash is still the old content's"
    );
    let blob2 = update_read(p, &blob, &b).await;
    assert_ne!(s(&blob2, "content_sha256"), first_sha);
    assert_ne!(s(&blob2, "etag"), s(&blob, "etag"));

    // user_assigned_identity
    let u_inputs =
        obj(json!({"name": format!("sf-uai-{suffix}"), "location": p.config().location}));
    let u = req(ResourceType::UserAssignedIdentity, "uai", u_inputs.clone());
    let uai = create_read(p, &u).await;
    for out in ["principal_id", "client_id", "tenant_id"] {
        assert!(!s(&uai, out).is_empty(), "uai {out}");
    }
    let mut u2 = u_inputs.clone();
    u2.insert("tags".into(), json!({"team": "ml"}));
    let uai = update_read(
        p,
        &uai,
        &req(ResourceType::UserAssignedIdentity, "uai", u2.clone()),
    )
    .await;

    // online_endpoint (user-assigned): the identity's client id is an output for UAI_CLIENT_ID.
    let ue_inputs = obj(json!({
        "name": format!("sf-uep-{suffix}"), "auth_mode": "aml_token",
        "identity": {"type": "user_assigned", "user_assigned_identities": [uai.id.to_uppercase()]},
    }));
    let ue = req(ResourceType::OnlineEndpoint, "uai-endpoint", ue_inputs);
    let uep = create_read(p, &ue).await;
    assert_eq!(s(&uep, "identity.client_id"), s(&uai, "client_id"));
    assert_eq!(s(&uep, "identity.principal_id"), s(&uai, "principal_id"));
    delete_gone(p, &ue).await;

    // online_endpoint (system-assigned)
    let endpoint = format!("sf-ep-{suffix}");
    let e_inputs = obj(json!({
        "name": endpoint, "auth_mode": "key", "identity": {"type": "system_assigned"},
        "public_network_access": "enabled",
    }));
    let e = req(ResourceType::OnlineEndpoint, "endpoint", e_inputs.clone())
        .with_progress(progress.clone());
    let ep = create_read(p, &e).await;
    let principal = s(&ep, "identity.principal_id");
    assert!(!s(&ep, "identity.tenant_id").is_empty());
    assert!(
        s(&ep, "scoring_uri").starts_with("https://"),
        "{}",
        s(&ep, "scoring_uri")
    );
    assert_eq!(s(&ep, "provisioning_state"), "Succeeded");
    let mut e2 = e_inputs.clone();
    e2.insert("description".into(), json!("managed identity demo"));
    let ep = update_read(
        p,
        &ep,
        &req(ResourceType::OnlineEndpoint, "endpoint", e2.clone()),
    )
    .await;
    assert_eq!(
        s(&ep, "identity.principal_id"),
        principal,
        "an update keeps the identity"
    );

    // role_assignment: deterministic name, idempotent create
    let r_inputs = obj(json!({
        "principal_id": principal, "role": "Storage Blob Data Reader", "scope": store.id,
        "principal_type": "ServicePrincipal",
    }));
    let r = req(ResourceType::RoleAssignment, "reader", r_inputs.clone())
        .with_progress(progress.clone());
    let ra = create_read(p, &r).await;
    let expected_name = role_assignment_name(
        &store.id,
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        &principal,
    )
    .to_string();
    assert_eq!(s(&ra, "name"), expected_name);
    assert!(
        s(&ra, "role_definition_id")
            .to_ascii_lowercase()
            .ends_with("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1")
    );
    let again = p
        .create(&r)
        .await
        .expect("re-creating the same assignment is idempotent");
    assert_eq!(again.id, ra.id);

    // RoleAssignmentExists: the same grant made elsewhere under a random name is adopted, not duplicated.
    let uai_principal = s(&uai, "principal_id");
    let random = uuid::Uuid::new_v4().to_string();
    let raw_path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{random}",
        store.id
    );
    let raw_body = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7", p.config().subscription_id),
        "principalId": uai_principal, "principalType": "ServicePrincipal"}});
    p.arm()
        .put(&raw_path, "2022-04-01", &raw_body, &p.config().lro, &|_| {})
        .await
        .expect("out-of-band assignment");
    let adopt_inputs = obj(
        json!({"principal_id": uai_principal, "role": "Reader", "scope": store.id, "principal_type": "ServicePrincipal"}),
    );
    let adopt = req(
        ResourceType::RoleAssignment,
        "uai-reader",
        adopt_inputs.clone(),
    );
    let adopted = p
        .create(&adopt)
        .await
        .expect("adopts the existing assignment");
    assert!(
        adopted.id.ends_with(&random),
        "adopted {} instead of {random}",
        adopted.id
    );
    let adopt = adopt.with_cloud_id(adopted.id.clone());
    let read_back = p
        .read(&adopt)
        .await
        .unwrap()
        .expect("adopted assignment reads by its id");
    assert_reads_back("uai-reader", &adopt_inputs, &read_back);
    delete_gone(p, &adopt).await;

    // online_deployment
    let d_inputs = obj(json!({
        "name": "blue", "endpoint": endpoint,
        "model": {"path": example("model")},
        "code_configuration": {"code": example("onlinescoring"), "scoring_script": "score.py"},
        "environment": {"conda_file": example("environment/conda.yaml"), "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"},
        "instance_type": "Standard_DS3_v2", "instance_count": 1, "traffic": 100,
        "request_settings": {"request_timeout_ms": 3000, "max_concurrent_requests_per_instance": 2, "max_queue_wait_ms": 500},
        "liveness_probe": {"initial_delay": 5, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 3},
        "environment_variables": {
            "STORAGE_ACCOUNT_NAME": account, "STORAGE_BLOB_ENDPOINT": s(&store, "primary_blob_endpoint"),
            "STORAGE_CONTAINER_NAME": "hello", "FILE_NAME": "hello.txt",
        },
    }));
    // A deployment's create never moves traffic (Azure keeps the endpoint's map as it is, and the map
    // must name existing deployments): it is created at 0, and the endpoint's whole map is set next.
    let mut at_zero = d_inputs.clone();
    at_zero.insert("traffic".into(), json!(0));
    let d = req(ResourceType::OnlineDeployment, "blue", at_zero).with_progress(progress.clone());
    pause_faults(local, true, faults);
    let dep = create_read(p, &d).await;
    pause_faults(local, false, faults);
    assert_eq!(
        p.traffic(&endpoint).await.unwrap().unwrap().get("blue"),
        None
    );
    let previous = set_traffic(p, &endpoint, &[("blue", 100)]).await;
    assert!(previous.is_empty(), "{previous:?}");
    let d = req(ResourceType::OnlineDeployment, "blue", d_inputs.clone())
        .with_progress(progress.clone());
    assert_reads_back("blue", &d.inputs, &p.read(&d).await.unwrap().unwrap());
    assert_eq!(s(&dep, "provisioning_state"), "Succeeded");
    for (out, kind) in [
        ("model_id", "/models/"),
        ("code_id", "/codes/"),
        ("environment_id", "/environments/"),
    ] {
        assert!(s(&dep, out).contains(kind), "{out} = {}", s(&dep, out));
    }
    assert_eq!(
        p.traffic(&endpoint).await.unwrap().unwrap().get("blue"),
        Some(&100)
    );
    // An endpoint update keeps the traffic the deployments set.
    let mut e3 = e2.clone();
    e3.insert("tags".into(), json!({"stage": "demo"}));
    update_read(p, &ep, &req(ResourceType::OnlineEndpoint, "endpoint", e3)).await;
    assert_eq!(
        p.traffic(&endpoint).await.unwrap().unwrap().get("blue"),
        Some(&100),
        "endpoint update moved traffic"
    );
    // Scale only: PATCH of sku.capacity; asset ids unchanged.
    let mut d2 = d_inputs.clone();
    d2.insert("instance_count".into(), json!(2));
    let dep2 = update_read(
        p,
        &dep,
        &req(ResourceType::OnlineDeployment, "blue", d2).with_progress(progress.clone()),
    )
    .await;
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.address == "blue" && e.status == "Scaling"),
        "a change of instance_count alone is a scale (PATCH), not a redeploy"
    );
    assert_eq!(s(&dep2, "model_id"), s(&dep, "model_id"));
    assert_eq!(s(&dep2, "code_id"), s(&dep, "code_id"));
    // Keys are secrets; the endpoint answers with them.
    let keys = p.list_keys(&endpoint).await.unwrap();
    assert!(!format!("{keys:?}").contains(keys.primary.expose()));
    let logs = p.get_logs(&endpoint, "blue", 50).await.unwrap();
    assert!(!logs.trim().is_empty(), "deployment log is empty");
    pause_faults(local, true, faults);
    let scored = p
        .invoke(
            &endpoint,
            br#"{"data": [[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}"#,
            None,
        )
        .await
        .unwrap();
    assert_eq!(scored.status, 200, "{}", scored.body);
    let answer: Value = serde_json::from_str(&scored.body).unwrap();
    assert_eq!(answer.as_array().map(Vec::len), Some(2), "{answer}");
    pause_faults(local, false, faults);

    // Teardown in reverse order; each delete waits until gone and is idempotent. Traffic goes first:
    // Azure refuses to delete a deployment that still has a share.
    let refused = p.delete(&d).await.expect_err("blue still has traffic");
    assert!(
        refused.to_string().contains("still receives traffic"),
        "{refused}"
    );
    let previous = set_traffic(p, &endpoint, &[]).await;
    assert_eq!(previous.get("blue"), Some(&100));
    delete_gone(p, &d).await;
    delete_gone(p, &r).await;
    delete_gone(p, &e).await;
    delete_gone(p, &req(ResourceType::UserAssignedIdentity, "uai", u2)).await;
    delete_gone(p, &b).await;
    delete_gone(p, &c).await;
    delete_gone(p, &sa).await;

    let seen = events.lock().unwrap().clone();
    if faults.principal_replication_s > 0.0 {
        assert!(
            seen.iter()
                .any(|e| e.address == "reader" && e.status == "WaitingForPrincipal"),
            "{seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|e| e.address == "endpoint" && e.status == "Creating"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.address == "blue" && e.status == "Succeeded"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_against_the_local_cloud() {
    capture_logs();
    let faults = Faults {
        retry_after_s: 0,
        ..Faults::default()
    };
    let local = Local::start(faults.clone()).await;
    assert!(local.provider.credential_name().contains("client secret"));
    lifecycle(&local, "a1", &faults).await;
    // The debug log names every call and carries no secret.
    let client_secret = local.cloud.as_ref().unwrap().info.client_secret.clone();
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    for needle in [
        "method=PUT",
        "method=GET",
        "method=DELETE",
        "status=201",
        "duration_ms=",
        "request_id=",
        "storageAccounts/sfstorea1",
    ] {
        assert!(logs.contains(needle), "debug log lacks {needle}");
    }
    // The server's x-ms-request-id is logged (not just our client request id).
    let server_ids = logs
        .lines()
        .filter(|l| l.contains(" request_id=") && !l.contains(" request_id=- "))
        .count();
    assert!(server_ids > 0, "no x-ms-request-id in the debug log");
    for secret in [
        client_secret.as_str(),
        "Bearer ",
        "SharedKey ",
        "access_token",
        "client_secret=",
    ] {
        assert!(!logs.contains(secret), "debug log leaks {secret}");
    }
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_with_injected_faults() {
    // A quarter of the requests fail. The provider tries a request 11 times against the local cloud,
    // so one is defeated with odds 0.25^11 (about 1 in 4 million) and the few hundred of this
    // lifecycle leave the test to chance with odds about 1 in 10,000. At 0.3 + 0.1 (0.4^11, 1 in
    // 24,000 per request) a loaded run of the suite failed once, on a PUT whose last try was answered
    // an injected 500.
    let faults = Faults {
        retry_after_s: 0,
        error_rate: 0.15,
        throttle_rate: 0.1,
        throttle_retry_after_s: 0,
        // Long enough that the role assignment is always attempted inside it, even when retries
        // of the injected errors slow the steps before it on a loaded machine.
        principal_replication_s: 15.0,
        ..Faults::default()
    };
    capture_logs();
    let local = Local::start(faults.clone()).await;
    lifecycle(&local, "f1", &faults).await;
    // The faults were met and absorbed by retries (log lines of this test name its `f1` resources).
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    let retries: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("http retry") && l.contains("f1"))
        .collect();
    assert!(
        retries.iter().any(|l| l.contains("status=429")),
        "no 429 was retried"
    );
    assert!(
        retries
            .iter()
            .any(|l| l.contains("status=503") || l.contains("status=500")),
        "no 5xx was retried"
    );
    local.stop().await;
}

/// The failure users meet in Azure when the role assignment is missing: the scoring script's `init()`
/// gets 403 reading the blob, the deployment ends `Failed`, and the error carries the log tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_without_its_role_fails_with_the_log_tail() {
    let local = Local::start(Faults {
        retry_after_s: 0,
        ..Faults::default()
    })
    .await;
    let p = &local.provider;
    let account = "sfnorole1";
    let sa = req(
        ResourceType::StorageAccount,
        "store",
        obj(json!({"name": account})),
    );
    let store = p.create(&sa).await.unwrap();
    p.create(&req(
        ResourceType::BlobContainer,
        "data",
        obj(json!({"account": account, "name": "hello"})),
    ))
    .await
    .unwrap();
    let blob = obj(
        json!({"account": account, "container": "hello", "name": "hello.txt", "content": "Hello world!"}),
    );
    p.create(&req(ResourceType::Blob, "greeting", blob))
        .await
        .unwrap();
    let e = req(
        ResourceType::OnlineEndpoint,
        "endpoint",
        obj(json!({"name": "sf-norole", "auth_mode": "key"})),
    );
    p.create(&e).await.unwrap();
    let d = req(
        ResourceType::OnlineDeployment,
        "blue",
        obj(json!({
            "name": "blue", "endpoint": "sf-norole",
            "model": {"path": example("model")},
            "code_configuration": {"code": example("onlinescoring"), "scoring_script": "score.py"},
            "environment": {"conda_file": example("environment/conda.yaml")},
            "instance_count": 1, "traffic": 100,
            "environment_variables": {
                "STORAGE_ACCOUNT_NAME": account, "STORAGE_BLOB_ENDPOINT": s(&store, "primary_blob_endpoint"),
                "STORAGE_CONTAINER_NAME": "hello", "FILE_NAME": "hello.txt",
            },
        })),
    );
    let err = p
        .create(&d)
        .await
        .expect_err("init() cannot read the blob without a data role");
    assert_eq!(err.kind, stackform::provider::ErrorKind::Failed, "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("online_deployment blue"), "{text}");
    assert!(text.contains("deployment log (tail)"), "{text}");
    assert!(
        text.contains("403") || text.contains("AuthorizationPermissionMismatch"),
        "{text}"
    );
    // The failed deployment exists; once the role is granted, an update with the same inputs redeploys it.
    let failed = p
        .read(&d)
        .await
        .unwrap()
        .expect("a failed deployment still exists");
    assert_eq!(s(&failed, "provisioning_state"), "Failed");
    let principal = s(&p.read(&e).await.unwrap().unwrap(), "identity.principal_id");
    let role = obj(
        json!({"principal_id": principal, "role": "Storage Blob Data Reader", "scope": store.id}),
    );
    p.create(&req(ResourceType::RoleAssignment, "reader", role))
        .await
        .unwrap();
    let fixed = p
        .update(&failed, &d)
        .await
        .expect("redeploys after the role is granted");
    assert_eq!(s(&fixed, "provisioning_state"), "Succeeded");
    p.delete(&d).await.unwrap();
    p.delete(&e).await.unwrap();
    p.delete(&sa).await.unwrap();
    local.stop().await;
}
