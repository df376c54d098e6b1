//! The reference scenario of the local cloud walked over plain REST, as the Azure guide does it by hand:
//! storage account, container and blob, endpoint (system- or user-assigned identity), the optional role
//! assignment, the code/model/environment assets uploaded to the workspace datastore, and the deployment;
//! then traffic, keys and the sample request. Used by the cloud tests that judge the emulator itself, not
//! the engine (those drive the CLI through [`super::Test`]).
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::cloud::{Answer, Cloud, READER};
use super::fixtures::fixture;

/// The workspace's default datastore: its storage account and container.
async fn workspace_datastore(c: &Cloud) -> (String, String) {
    let ds = c
        .arm(
            Method::GET,
            &format!("{}/datastores/workspaceblobstore", c.ws()),
            None,
        )
        .await;
    assert_eq!(ds.status, 200, "{}", ds.text);
    let field = |name: &str| {
        ds.body["properties"][name]
            .as_str()
            .unwrap_or_else(|| panic!("the datastore has no {name}"))
            .to_string()
    };
    (field("accountName"), field("containerName"))
}

/// Uploads every file of a local folder under `prefix/` of the workspace default datastore.
pub(crate) async fn upload_folder(c: &Cloud, local: &Path, prefix: &str) {
    let (account, container) = workspace_datastore(c).await;
    let secrets = c
        .arm(
            Method::POST,
            &format!("{}/datastores/workspaceblobstore/listSecrets", c.ws()),
            None,
        )
        .await;
    let key = secrets.body["key"].as_str().expect("key").to_string();
    for entry in walkdir::WalkDir::new(local) {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            let rel = entry
                .path()
                .strip_prefix(local)
                .expect("rel")
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(entry.path()).expect("read");
            c.put_blob(
                &account,
                &key,
                &container,
                &format!("{prefix}/{rel}"),
                bytes,
            )
            .await;
        }
    }
}

/// Where a walk ended: the endpoint it made and its deployment's terminal operation status.
pub(crate) struct Walk {
    pub endpoint: String,
    pub deployment_status: Value,
}

impl Walk {
    /// Asserts the deployment succeeded (showing its status and log when not) and that its log holds
    /// `line`.
    pub(crate) async fn assert_succeeded_with_log(&self, c: &Cloud, line: &str) {
        let log = logs(c, &self.endpoint).await;
        assert_eq!(
            self.deployment_status["status"], "Succeeded",
            "{}\n{log}",
            self.deployment_status
        );
        assert!(log.contains(line), "{log}");
    }

    /// The deployment `blue` as ARM answers for it.
    pub(crate) async fn deployment(&self, c: &Cloud) -> Answer {
        c.arm(
            Method::GET,
            &format!("{}/deployments/blue", self.endpoint),
            None,
        )
        .await
    }
}

/// token → storage account → container → Put Blob hello.txt → endpoint → (role assignment) → assets →
/// deployment. Returns the endpoint path and the deployment's terminal operation status.
pub(crate) async fn walk(
    c: &Cloud,
    code: &str,
    conda: &str,
    with_role: bool,
    limit: Duration,
) -> Walk {
    walk_with(c, code, conda, with_role, false, limit).await
}

/// [`walk`], optionally with a user-assigned identity on the endpoint (its client id is passed to the
/// deployment as `UAI_CLIENT_ID`, as in the guide's second half).
pub(crate) async fn walk_with(
    c: &Cloud,
    code: &str,
    conda: &str,
    with_role: bool,
    uai: bool,
    limit: Duration,
) -> Walk {
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
        std::fs::read(fixture("cloud").join("hello.txt")).expect("hello.txt"),
    )
    .await;

    let endpoint = format!("{}/onlineEndpoints/ep-{}", c.ws(), &account[4..]);
    let mut identity = json!({"type": "SystemAssigned"});
    let mut uai_client = None;
    if uai {
        let u = c
            .arm(
                Method::PUT,
                &format!(
                    "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-{}",
                    c.rg(),
                    &account[4..]
                ),
                Some(json!({"location": "eastus"})),
            )
            .await;
        assert_eq!(u.status, 201, "{}", u.text);
        uai_client = Some((
            u.body["properties"]["clientId"]
                .as_str()
                .expect("clientId")
                .to_string(),
            u.body["properties"]["principalId"]
                .as_str()
                .expect("principalId")
                .to_string(),
        ));
        identity = json!({"type": "UserAssigned", "userAssignedIdentities": {u.body["id"].as_str().expect("id"): {}}});
    }
    let ep = c
        .arm(Method::PUT, &endpoint, Some(json!({"location": "eastus", "identity": identity, "properties": {"authMode": "Key"}})))
        .await;
    assert_eq!(ep.status, 201, "{}", ep.text);
    let op = c.wait_async(&ep, Duration::from_secs(60)).await;
    assert_eq!(op["status"], "Succeeded");
    let got = c.arm(Method::GET, &endpoint, None).await;
    assert_eq!(got.body["identity"]["tenantId"], c.info.tenant_id.as_str());
    let principal = match &uai_client {
        Some((_, p)) => p.clone(),
        None => got.body["identity"]["principalId"]
            .as_str()
            .expect("principalId")
            .to_string(),
    };

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
        &fixture("cloud").join(code),
        &format!("LocalUpload/{tag}/code"),
    )
    .await;
    upload_folder(
        c,
        &fixture("cloud").join("model"),
        &format!("LocalUpload/{tag}/model"),
    )
    .await;
    let (ws_account, ws_container) = workspace_datastore(c).await;
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
    let conda_text = std::fs::read_to_string(fixture("cloud").join(conda)).expect("conda");
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
                        "STORAGE_CONTAINER_NAME": "hello", "FILE_NAME": "hello.txt",
                        "UAI_CLIENT_ID": uai_client.as_ref().map(|(c, _)| c.clone()).unwrap_or_default()
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
    let status = c.wait_async(&dep, limit).await;
    Walk {
        endpoint,
        deployment_status: status,
    }
}

pub(crate) async fn logs(c: &Cloud, endpoint: &str) -> String {
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
pub(crate) async fn invoke(c: &Cloud, endpoint: &str) -> Value {
    let ep = c
        .arm(Method::PUT, endpoint, Some(json!({"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {"authMode": "Key", "traffic": {"blue": 100}}})))
        .await;
    assert_eq!(ep.status, 200, "{}", ep.text);
    let op = c.wait_async(&ep, Duration::from_secs(60)).await;
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
