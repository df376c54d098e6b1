//! Shared helpers of the local-cloud integration tests: start a cloud (the real binary detached, or
//! in-process on port 0) in a throw-away data folder, get tokens, call ARM and blob REST, poll LROs.
#![allow(dead_code, reason = "each test crate uses a subset of these helpers")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use stackform::cloud::{CloudInfo, CloudOptions, RunningCloud};

pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
pub const READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
pub const CONTRIBUTOR_DATA: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloud")
}

pub struct Cloud {
    pub info: CloudInfo,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    running: Option<RunningCloud>,
    binary: bool,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

fn client(info: &CloudInfo) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pem = std::fs::read(&info.ca_cert).expect("ca.pem");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_stackform")
}

impl Cloud {
    /// The real binary, started with `cloud up --detach` in a fresh data folder on a free port.
    pub fn start_binary(extra: &[&str]) -> Cloud {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_binary_in(dir, extra)
    }

    pub fn start_binary_in(dir: tempfile::TempDir, extra: &[&str]) -> Cloud {
        let out = std::process::Command::new(binary())
            .args(["cloud", "up", "--detach", "--port", "0", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .output()
            .expect("run stackform");
        assert!(
            out.status.success(),
            "cloud up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::attach(dir)
    }

    /// Attaches to the instance running in `dir` (from `cloud status --json`); it is stopped on drop.
    pub fn attach(dir: tempfile::TempDir) -> Cloud {
        let status = std::process::Command::new(binary())
            .args(["cloud", "status", "--json", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("status");
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stdout)
        );
        let info: CloudInfo = serde_json::from_slice(&status.stdout).expect("status json");
        let http = client(&info);
        Cloud {
            info,
            http,
            dir,
            running: None,
            binary: true,
        }
    }

    /// In this process, on a free port (needs a multi-thread tokio runtime).
    pub async fn start_in_process() -> Cloud {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in_process_in(dir).await
    }

    pub async fn start_in_process_in(dir: tempfile::TempDir) -> Cloud {
        Self::start_in_process_on(dir, 0).await
    }

    /// In this process on a given port (a restart keeps URLs stored in deployments valid).
    pub async fn start_in_process_on(dir: tempfile::TempDir, port: u16) -> Cloud {
        // A fixed port may still be held for a moment by the instance that just stopped (or taken by
        // another test's port-0 listener in between): retry for a while before giving up.
        let deadline = Instant::now() + Duration::from_secs(20);
        let running = loop {
            let started = stackform::cloud::start(CloudOptions {
                data_dir: dir.path().to_path_buf(),
                port,
                faults: Default::default(),
                log_file: None,
            })
            .await;
            match started {
                Err(e)
                    if port != 0
                        && e.to_string().contains("in use")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other.expect("start cloud"),
            }
        };
        let info = running.info.clone();
        let http = client(&info);
        Cloud {
            info,
            http,
            dir,
            running: Some(running),
            binary: false,
        }
    }

    /// Stops the cloud and hands back its data folder (for restart tests).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if self.binary {
            self.down();
            self.binary = false;
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    fn down(&self) {
        let _ = std::process::Command::new(binary())
            .args(["cloud", "down", "--data-dir"])
            .arg(self.dir.path())
            .output();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.info.arm_endpoint.trim_end_matches('/'), path)
    }

    pub async fn token_for(&self, scope: &str) -> String {
        let r = self
            .http
            .post(self.url(&format!("/{}/oauth2/v2.0/token", self.info.tenant_id)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", &self.info.client_id)
                    .append_pair("client_secret", &self.info.client_secret)
                    .append_pair("scope", scope)
                    .finish(),
            )
            .send()
            .await
            .expect("token call");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("token json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn token(&self) -> String {
        self.token_for(ARM_SCOPE).await
    }

    pub fn sub(&self) -> String {
        format!("/subscriptions/{}", self.info.subscription_id)
    }

    pub fn rg(&self) -> String {
        format!("{}/resourceGroups/{}", self.sub(), self.info.resource_group)
    }

    pub fn ws(&self) -> String {
        format!(
            "{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.rg(),
            self.info.workspace
        )
    }

    /// An ARM call with the given token; `api-version=2025-01-01` is added when the path has none.
    pub async fn arm_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut url = if path.starts_with("https://") {
            path.to_string()
        } else {
            self.url(path)
        };
        if !url.contains("api-version=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("api-version=2025-01-01");
        }
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        answer(req.send().await.expect("arm call")).await
    }

    pub async fn arm(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let t = self.token().await;
        self.arm_as(&t, method, path, body).await
    }

    /// Creates a storage account through pattern A and returns its final body.
    pub async fn create_storage(&self, name: &str) -> Value {
        let path = format!(
            "{}/providers/Microsoft.Storage/storageAccounts/{name}",
            self.rg()
        );
        let a = self
            .arm(Method::PUT, &path, Some(json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})))
            .await;
        assert_eq!(a.status, 202, "{}", a.text);
        let loc = a.header("location").expect("Location");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = self.arm(Method::GET, &loc, None).await;
            if p.status == 200 {
                assert_eq!(p.body["properties"]["provisioningState"], "Succeeded");
                return p.body;
            }
            assert_eq!(p.status, 202, "{}", p.text);
            assert!(
                Instant::now() < deadline,
                "storage account creation did not finish"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls an Azure-AsyncOperation URL until a terminal status; returns it.
    pub async fn wait_async(&self, url: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let p = self.arm(Method::GET, url, None).await;
            assert_eq!(p.status, 200, "{}", p.text);
            let s = p.body["status"].as_str().unwrap_or_default().to_string();
            if ["Succeeded", "Failed", "Canceled"].contains(&s.as_str()) {
                return p.body;
            }
            assert!(
                Instant::now() < deadline,
                "operation {url} did not finish: {}",
                p.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a pattern-C Location URL until it stops answering 202.
    pub async fn wait_location(&self, url: &str) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = self.arm(Method::GET, url, None).await;
            if p.status != 202 {
                return p;
            }
            assert!(Instant::now() < deadline, "operation {url} did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn account_key(&self, account: &str) -> String {
        let a = self
            .arm(
                Method::POST,
                &format!(
                    "{}/providers/Microsoft.Storage/storageAccounts/{account}/listKeys",
                    self.rg()
                ),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["keys"][0]["value"]
            .as_str()
            .expect("key")
            .to_string()
    }

    pub fn blob_url(&self, account: &str, rest: &str) -> String {
        format!(
            "{}{rest}",
            self.info
                .blob_endpoint_template
                .replace("{account}", account)
        )
    }

    /// A blob request signed with SharedKey.
    pub async fn blob_shared_key(
        &self,
        method: Method,
        account: &str,
        key: &str,
        rest: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let url = self.blob_url(account, rest);
        let parsed = url::Url::parse(&url).expect("url");
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let mut headers: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), "2025-11-05".into()),
        ];
        for (k, v) in extra {
            headers.push((k.to_string(), v.to_string()));
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let len = if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        };
        let mut sts = [
            method.as_str().to_string(),
            get("content-encoding"),
            get("content-language"),
            len,
            get("content-md5"),
            get("content-type"),
            String::new(),
            get("if-modified-since"),
            get("if-match"),
            get("if-none-match"),
            get("if-unmodified-since"),
            get("range"),
        ]
        .join("\n");
        sts.push('\n');
        let mut xms: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        xms.sort();
        for (k, v) in xms {
            sts.push_str(&format!("{k}:{v}\n"));
        }
        sts.push_str(&format!("/{account}{}", parsed.path()));
        let mut q: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect();
        q.sort();
        for (k, v) in q {
            sts.push_str(&format!("\n{k}:{v}"));
        }
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&B64.decode(key).expect("key b64")).expect("hmac");
        mac.update(sts.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        let mut req = self
            .http
            .request(method, url)
            .header("authorization", format!("SharedKey {account}:{sig}"));
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        answer(req.body(body).send().await.expect("blob call")).await
    }

    pub async fn put_blob(
        &self,
        account: &str,
        key: &str,
        container: &str,
        name: &str,
        bytes: Vec<u8>,
    ) {
        let a = self
            .blob_shared_key(
                Method::PUT,
                account,
                key,
                &format!("{container}/{name}"),
                bytes,
                &[("x-ms-blob-type", "BlockBlob")],
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }

    pub async fn set_faults(&self, faults: Value) -> Answer {
        let t = self.token().await;
        let r = self
            .http
            .post(self.url("/_admin/faults"))
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body(faults.to_string())
            .send()
            .await
            .expect("faults");
        answer(r).await
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if self.binary {
            self.down();
        }
    }
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

/// Uploads every file of a local folder under `prefix/` of the workspace default datastore.
pub async fn upload_folder(c: &Cloud, local: &Path, prefix: &str) {
    let ds = c
        .arm(
            Method::GET,
            &format!("{}/datastores/workspaceblobstore", c.ws()),
            None,
        )
        .await;
    assert_eq!(ds.status, 200, "{}", ds.text);
    let account = ds.body["properties"]["accountName"]
        .as_str()
        .expect("accountName")
        .to_string();
    let container = ds.body["properties"]["containerName"]
        .as_str()
        .expect("containerName")
        .to_string();
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

pub struct Walk {
    pub endpoint: String,
    pub deployment_status: Value,
    pub account: String,
    pub principal: String,
}

/// token → storage account → container → Put Blob hello.txt → endpoint → (role assignment) → assets →
/// deployment. Returns the endpoint path and the deployment's terminal operation status.
pub async fn walk(c: &Cloud, code: &str, conda: &str, with_role: bool, limit: Duration) -> Walk {
    walk_with(c, code, conda, with_role, false, limit).await
}

/// [`walk`], optionally with a user-assigned identity on the endpoint (its client id is passed to the
/// deployment as `UAI_CLIENT_ID`, as in the guide's second half).
pub async fn walk_with(
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
        std::fs::read(fixtures().join("hello.txt")).expect("hello.txt"),
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
    let op = c
        .wait_async(
            &ep.header("azure-asyncoperation")
                .expect("Azure-AsyncOperation"),
            Duration::from_secs(60),
        )
        .await;
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
        account,
        principal,
    }
}

pub async fn logs(c: &Cloud, endpoint: &str) -> String {
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
pub async fn invoke(c: &Cloud, endpoint: &str) -> Value {
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
