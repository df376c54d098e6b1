//! A local cloud for one test and a REST client for it: start one (the real binary with `cloud up
//! --detach`, or in this process) on port 0 of 127.0.0.1 with its own data folder, stop it when the
//! test ends, get tokens, call ARM and the blob data plane (SharedKey-signed), and poll long-running
//! operations. A test never shares a cloud with another test, and never reaches one it did not start.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stackform::cloud::{CloudInfo, CloudOptions, RunningCloud};

use super::bin::binary;
use super::wait::wait_until;

pub(crate) const ARM_SCOPE: &str = "https://management.azure.com/.default";
pub(crate) const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
pub(crate) const READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
pub(crate) const CONTRIBUTOR_DATA: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";

pub(crate) struct Cloud {
    pub info: CloudInfo,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    running: Option<RunningCloud>,
    binary: bool,
}

pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
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

impl Cloud {
    /// The real binary, started with `cloud up --detach` in a fresh data folder on a free port.
    pub(crate) fn start_binary(extra: &[&str]) -> Cloud {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_binary_in(dir, extra)
    }

    pub(crate) fn start_binary_in(dir: tempfile::TempDir, extra: &[&str]) -> Cloud {
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
    pub(crate) fn attach(dir: tempfile::TempDir) -> Cloud {
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
    pub(crate) async fn start_in_process() -> Cloud {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in_process_in(dir).await
    }

    pub(crate) async fn start_in_process_in(dir: tempfile::TempDir) -> Cloud {
        Self::start_in_process_on(dir, 0).await
    }

    /// In this process on a given port (a restart keeps URLs stored in deployments valid).
    pub(crate) async fn start_in_process_on(dir: tempfile::TempDir, port: u16) -> Cloud {
        // A fixed port may still be held for a moment by the instance that just stopped (or taken by
        // another test's port-0 listener in between): retry for a while before giving up.
        let running = wait_until(
            "the port is free for a restart",
            Duration::from_secs(20),
            async || {
                let started = stackform::cloud::start(CloudOptions {
                    data_dir: dir.path().to_path_buf(),
                    port,
                    faults: Default::default(),
                    log_file: None,
                    seed: Default::default(),
                })
                .await;
                match started {
                    Err(e) if port != 0 && e.to_string().contains("in use") => None,
                    other => Some(other.expect("start cloud")),
                }
            },
        )
        .await;
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
    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if self.binary {
            self.down();
            self.binary = false;
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// Kills the cloud's process with SIGKILL (no shutdown of any kind), waits until its instance lock
    /// is free, and hands back its data folder (to start it again).
    pub(crate) async fn kill_9(self) -> tempfile::TempDir {
        let killed = std::process::Command::new("kill")
            .args(["-9", &self.info.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success());
        wait_until(
            "the killed cloud no longer holds its lock",
            Duration::from_secs(30),
            async || {
                stackform::cloud::status(self.dir.path())
                    .is_none()
                    .then_some(())
            },
        )
        .await;
        std::mem::replace(&mut { self }.dir, tempfile::tempdir().expect("tempdir"))
    }

    fn down(&self) {
        let _ = std::process::Command::new(binary())
            .args(["cloud", "down", "--data-dir"])
            .arg(self.dir.path())
            .output();
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.info.arm_endpoint.trim_end_matches('/'), path)
    }

    pub(crate) async fn token_for(&self, scope: &str) -> String {
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

    pub(crate) async fn token(&self) -> String {
        self.token_for(ARM_SCOPE).await
    }

    pub(crate) fn sub(&self) -> String {
        format!("/subscriptions/{}", self.info.subscription_id)
    }

    pub(crate) fn rg(&self) -> String {
        format!("{}/resourceGroups/{}", self.sub(), self.info.resource_group)
    }

    pub(crate) fn ws(&self) -> String {
        format!(
            "{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.rg(),
            self.info.workspace
        )
    }

    /// An ARM call with the given token; `api-version=2025-01-01` is added when the path has none.
    pub(crate) async fn arm_as(
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

    pub(crate) async fn arm(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let t = self.token().await;
        self.arm_as(&t, method, path, body).await
    }

    /// Creates a storage account through pattern A and returns its final body.
    pub(crate) async fn create_storage(&self, name: &str) -> Value {
        let path = format!(
            "{}/providers/Microsoft.Storage/storageAccounts/{name}",
            self.rg()
        );
        let a = self
            .arm(Method::PUT, &path, Some(json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})))
            .await;
        assert_eq!(a.status, 202, "{}", a.text);
        let loc = a.header("location").expect("Location");
        let done = self.wait_location(&loc).await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
        done.body
    }

    /// Polls the Azure-AsyncOperation URL that `started` (the answer to a PUT or DELETE) names until the
    /// operation reaches a terminal status; returns that status document.
    pub(crate) async fn wait_async(&self, started: &Answer, limit: Duration) -> Value {
        let url = started
            .header("azure-asyncoperation")
            .expect("an Azure-AsyncOperation header");
        wait_until(&format!("operation {url} finishes"), limit, async || {
            let p = self.arm(Method::GET, &url, None).await;
            assert_eq!(p.status, 200, "{}", p.text);
            let s = p.body["status"].as_str().unwrap_or_default();
            ["Succeeded", "Failed", "Canceled"]
                .contains(&s)
                .then_some(p.body)
        })
        .await
    }

    /// Polls a pattern-A or pattern-C Location URL until it stops answering 202.
    pub(crate) async fn wait_location(&self, url: &str) -> Answer {
        wait_until(
            &format!("operation {url} finishes"),
            Duration::from_secs(60),
            async || {
                let p = self.arm(Method::GET, url, None).await;
                (p.status != 202).then_some(p)
            },
        )
        .await
    }

    /// The object id of the service principal the cloud is seeded with (the one the tests' tokens
    /// are for), read from its role assignment at the subscription.
    pub(crate) async fn seeded_principal(&self) -> String {
        let sp = self
            .arm(
                Method::GET,
                &format!(
                    "{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
                    self.sub()
                ),
                None,
            )
            .await;
        assert_eq!(sp.status, 200, "{}", sp.text);
        sp.body["value"][0]["properties"]["principalId"]
            .as_str()
            .expect("the seeded principal's role assignment")
            .to_string()
    }

    pub(crate) async fn account_key(&self, account: &str) -> String {
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

    pub(crate) fn blob_url(&self, account: &str, rest: &str) -> String {
        format!(
            "{}{rest}",
            self.info
                .blob_endpoint_template
                .replace("{account}", account)
        )
    }

    /// A blob request signed with SharedKey.
    pub(crate) async fn blob_shared_key(
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
        let query: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let auth = super::raw::shared_key(
            account,
            key,
            method.as_str(),
            parsed.path(),
            &query,
            &headers,
            body.len(),
        );
        let mut req = self.http.request(method, url).header("authorization", auth);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        answer(req.body(body).send().await.expect("blob call")).await
    }

    pub(crate) async fn put_blob(
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

    /// Creates a blob container over the data plane (SharedKey), asserting it is new.
    pub(crate) async fn create_container(&self, account: &str, key: &str, container: &str) {
        let a = self
            .blob_shared_key(
                Method::PUT,
                account,
                key,
                &format!("{container}?restype=container"),
                vec![],
                &[],
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }

    pub(crate) async fn set_faults(&self, faults: Value) -> Answer {
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

pub(crate) async fn answer(r: reqwest::Response) -> Answer {
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
