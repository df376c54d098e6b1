//! The done-when checks: the reference scenario walked over plain REST against the real binary
//! started with `cloud up --detach` (with and without the role assignment), and a deployment whose
//! scoring script uses Microsoft's Python SDKs through the local cloud's MSI and blob endpoints.
mod cloud_support;

use std::time::Duration;

use cloud_support::{Cloud, READER, fixtures, upload_folder};
use reqwest::Method;
use serde_json::{Value, json};

struct Walk {
    endpoint: String,
    deployment_status: Value,
}

/// token → storage account → container → Put Blob hello.txt → endpoint → (role assignment) → assets →
/// deployment. Returns the endpoint path and the deployment's terminal operation status.
async fn walk(c: &Cloud, code: &str, conda: &str, with_role: bool, limit: Duration) -> Walk {
    let account = format!("walk{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let acct = c.create_storage(&account).await;
    let blob_endpoint = acct["properties"]["primaryEndpoints"]["blob"]
        .as_str()
        .expect("blob endpoint")
        .to_string();
    let acct_id = acct["id"].as_str().expect("id").to_string();
    let cont = c
        .arm(
            Method::PUT,
            &format!("{acct_id}/blobServices/default/containers/hello"),
            Some(json!({})),
        )
        .await;
    assert_eq!(cont.status, 201, "{}", cont.text);
    let key = c.account_key(&account).await;
    c.put_blob(
        &account,
        &key,
        "hello",
        "hello.txt",
        std::fs::read(fixtures().join("hello.txt")).expect("hello.txt"),
    )
    .await;

    let endpoint = format!("{}/onlineEndpoints/ep-{}", c.ws(), &account[4..]);
    let ep = c
        .arm(Method::PUT, &endpoint, Some(json!({"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {"authMode": "Key"}})))
        .await;
    assert_eq!(ep.status, 201, "{}", ep.text);
    let op = c
        .wait_async(
            &ep.header("azure-asyncoperation")
                .expect("Azure-AsyncOperation"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(op["status"], "Succeeded");
    let got = c.arm(Method::GET, &endpoint, None).await;
    let principal = got.body["identity"]["principalId"]
        .as_str()
        .expect("principalId")
        .to_string();
    assert_eq!(got.body["identity"]["tenantId"], c.info.tenant_id.as_str());

    if with_role {
        let ra = format!(
            "{acct_id}/providers/Microsoft.Authorization/roleAssignments/{}",
            uuid::Uuid::new_v4()
        );
        let r = c
            .arm(
                Method::PUT,
                &format!("{ra}?api-version=2022-04-01"),
                Some(json!({"properties": {"roleDefinitionId": format!("{}/providers/Microsoft.Authorization/roleDefinitions/{READER}", c.sub()), "principalId": principal, "principalType": "ServicePrincipal"}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    let tag = uuid::Uuid::new_v4().simple().to_string();
    upload_folder(
        c,
        &fixtures().join(code),
        &format!("LocalUpload/{tag}/code"),
    )
    .await;
    upload_folder(
        c,
        &fixtures().join("model"),
        &format!("LocalUpload/{tag}/model"),
    )
    .await;
    let ds = c
        .arm(
            Method::GET,
            &format!("{}/datastores/workspaceblobstore", c.ws()),
            None,
        )
        .await;
    let ws_account = ds.body["properties"]["accountName"]
        .as_str()
        .expect("account")
        .to_string();
    let ws_container = ds.body["properties"]["containerName"]
        .as_str()
        .expect("container")
        .to_string();
    let code_id = format!("{}/codes/score-{tag}/versions/1", c.ws());
    let code_uri = c.blob_url(
        &ws_account,
        &format!("{ws_container}/LocalUpload/{tag}/code"),
    );
    let r = c
        .arm(
            Method::PUT,
            &code_id,
            Some(json!({"properties": {"codeUri": code_uri}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let model_id = format!("{}/models/linear-{tag}/versions/1", c.ws());
    let model_uri = format!(
        "azureml://subscriptions/{}/resourcegroups/{}/workspaces/{}/datastores/workspaceblobstore/paths/LocalUpload/{tag}/model",
        c.info.subscription_id, c.info.resource_group, c.info.workspace
    );
    let r = c
        .arm(
            Method::PUT,
            &model_id,
            Some(json!({"properties": {"modelUri": model_uri, "modelType": "custom_model"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["properties"]["flavors"].is_object());
    let env_id = format!("{}/environments/env-{tag}/versions/1", c.ws());
    let conda_text = std::fs::read_to_string(fixtures().join(conda)).expect("conda");
    let r = c
        .arm(Method::PUT, &env_id, Some(json!({"properties": {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest", "condaFile": conda_text}})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let dep = c
        .arm(
            Method::PUT,
            &format!("{endpoint}/deployments/blue"),
            Some(json!({
                "location": "eastus", "sku": {"name": "Default", "capacity": 1},
                "properties": {
                    "endpointComputeType": "Managed", "instanceType": "Standard_DS3_v2",
                    "model": model_id, "environmentId": env_id,
                    "codeConfiguration": {"codeId": code_id, "scoringScript": "score.py"},
                    "environmentVariables": {
                        "STORAGE_ACCOUNT_NAME": account, "STORAGE_BLOB_ENDPOINT": blob_endpoint,
                        "STORAGE_CONTAINER_NAME": "hello", "FILE_NAME": "hello.txt"
                    }
                }
            })),
        )
        .await;
    assert_eq!(dep.status, 201, "{}", dep.text);
    assert_eq!(
        dep.body["properties"]["scaleSettings"]["scaleType"],
        "Default"
    );
    let status = c
        .wait_async(
            &dep.header("azure-asyncoperation")
                .expect("Azure-AsyncOperation"),
            limit,
        )
        .await;
    Walk {
        endpoint,
        deployment_status: status,
    }
}

async fn logs(c: &Cloud, endpoint: &str) -> String {
    let l = c
        .arm(
            Method::POST,
            &format!("{endpoint}/deployments/blue/getLogs"),
            Some(json!({"tail": 200})),
        )
        .await;
    assert_eq!(l.status, 200, "{}", l.text);
    l.body["content"].as_str().unwrap_or_default().to_string()
}

/// Sets traffic to blue, lists keys, and POSTs the sample request; returns the response body.
async fn invoke(c: &Cloud, endpoint: &str) -> Value {
    let ep = c
        .arm(Method::PUT, endpoint, Some(json!({"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {"authMode": "Key", "traffic": {"blue": 100}}})))
        .await;
    assert_eq!(ep.status, 200, "{}", ep.text);
    let op = c
        .wait_async(
            &ep.header("azure-asyncoperation")
                .expect("Azure-AsyncOperation"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(op["status"], "Succeeded");
    let keys = c
        .arm(Method::POST, &format!("{endpoint}/listKeys"), None)
        .await;
    let key = keys.body["primaryKey"]
        .as_str()
        .expect("primaryKey")
        .to_string();
    let scoring = c.arm(Method::GET, endpoint, None).await.body["properties"]["scoringUri"]
        .as_str()
        .expect("scoringUri")
        .to_string();
    let sample =
        json!({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]});
    let r = c
        .http
        .post(&scoring)
        .bearer_auth(&key)
        .json(&sample)
        .send()
        .await
        .expect("score");
    assert_eq!(r.status(), 200);
    let unauth = c
        .http
        .post(&scoring)
        .bearer_auth("wrong")
        .json(&sample)
        .send()
        .await
        .expect("score");
    assert_eq!(unauth.status(), 401);
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_walk_with_role_assignment_scores_each_row() {
    let c = Cloud::start_binary(&[]);
    let w = walk(&c, "code", "conda.yaml", true, Duration::from_secs(120)).await;
    assert_eq!(
        w.deployment_status["status"],
        "Succeeded",
        "{}\n{}",
        w.deployment_status,
        logs(&c, &w.endpoint).await
    );
    assert!(
        logs(&c, &w.endpoint)
            .await
            .contains("read blob hello.txt: Hello world!")
    );
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
    let dep = c
        .arm(
            Method::GET,
            &format!("{}/deployments/blue", w.endpoint),
            None,
        )
        .await;
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
    assert_eq!(
        w.deployment_status["status"],
        "Succeeded",
        "{}",
        logs(&c, &w.endpoint).await
    );
    assert!(
        logs(&c, &w.endpoint)
            .await
            .contains("sdk read blob: Hello world!")
    );
    let out = invoke(&c, &w.endpoint).await;
    assert_eq!(out, json!({"greeting": "Hello world!", "rows": 2}));
}
