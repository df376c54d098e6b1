//! [`AzureProvider`]: the [`Provider`] implementation for Azure and for the local cloud, plus the
//! operations the CLI needs beyond the trait (traffic, keys, logs, invoke).
//!
//! Building one: [`AzureProvider::connect`] reads the CA file, builds the one shared `reqwest::Client`,
//! discovers the login endpoint and the ML audience from `{arm}/metadata/endpoints` for a cloud that is
//! not a named one, picks the
//! credential (the local cloud's client secret, or the environment → workload identity → managed
//! identity → Azure CLI chain) and assembles the pipeline. [`AzureProvider::from_parts`] takes a
//! transport, clock and token source directly (tests).
//!
//! It never imports the local cloud: a local cloud is only a [`CloudConfig`] of kind `Local`.

use std::collections::BTreeMap;
use std::sync::Arc;

use url::Url;

use super::arm::Arm;
use super::config::{CloudConfig, CloudKind, discover};
use super::contract::{
    MapRequest, Observed, Preserved, Provider, ProviderFuture, ResourceRequest, ResourceType,
    Result,
};
use super::credential::{ProcessEnv, azure_credential, local_cloud_credential};
use super::error::ProviderError;
use super::pace::{PaceNotices, Pacer};
use super::pipeline::RequestTally;
use super::pipeline::{
    Clock, Pipeline, ReqwestTransport, SystemClock, TokenSource, Transport, build_http_client,
    build_transport_client,
};
use super::resources;
use super::resources::common::{self, Ctx};
use super::resources::online_endpoint::{EndpointKeys, ScoreResponse};
use super::stamp;
use crate::specs::Registry;

/// The one Azure client.
#[derive(Debug, Clone)]
pub struct AzureProvider {
    ctx: Arc<Ctx>,
    credential: String,
}

impl AzureProvider {
    /// Connects to the cloud `config` describes with the specs embedded in the binary: see
    /// `connect_with`.
    pub async fn connect(config: CloudConfig) -> Result<Self> {
        let registry = Registry::embedded()
            .map_err(|e| ProviderError::invalid(format!("internal error: {e}")))?;
        Self::connect_with(config, Arc::new(registry)).await
    }

    /// Connects to the cloud `config` describes, mapping each type as `registry`'s specs say (the
    /// registry the stack was loaded and planned with): builds the HTTP client (trusting
    /// `ca_cert_pem`), discovers the authority host and audiences of a cloud that is not a named one,
    /// and sets up the credential. Makes
    /// at most one unauthenticated call (metadata); tokens are fetched on first use.
    pub(crate) async fn connect_with(
        mut config: CloudConfig,
        registry: Arc<Registry>,
    ) -> Result<Self> {
        let ca = match &config.ca_cert_pem {
            Some(path) => Some(tokio::fs::read(path).await.map_err(|e| {
                ProviderError::invalid(format!(
                    "cannot read ca certificate {}: {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        // Two clients over the same CA: the transport's applies each request's read timeout (a scoring
        // call may wait longer than an ARM call); the credentials' token calls keep the default one.
        let http = build_http_client(ca.as_deref())?;
        let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport::new(
            build_transport_client(ca.as_deref())?,
        ));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
        // A named cloud's endpoints and audiences are known; any other cloud says them in its metadata.
        if config.authority_host.is_none() || config.kind.known_ml_audience().is_none() {
            let bare = Pipeline::new(transport.clone(), clock.clone(), config.retry.clone(), None);
            match discover(&bare, &config.arm_endpoint).await {
                Ok(endpoints) => config.apply_metadata(&endpoints),
                // The login endpoint was given: the metadata only adds audiences, so do without.
                Err(e) if config.authority_host.is_some() => tracing::debug!(
                    error = %e,
                    ml_scope = %config.ml_scope,
                    "no cloud metadata; using the default audiences"
                ),
                Err(e) => return Err(e),
            }
        }
        let authority = config
            .authority_host
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned());
        let (tokens, name): (Arc<dyn TokenSource>, String) = match config.kind {
            CloudKind::Local => {
                let missing =
                    |what: &str| ProviderError::invalid(format!("the local cloud needs a {what}"));
                let tenant = config
                    .tenant_id
                    .clone()
                    .ok_or_else(|| missing("tenant id"))?;
                let client = config
                    .client_id
                    .clone()
                    .ok_or_else(|| missing("client id"))?;
                let secret = config
                    .client_secret
                    .clone()
                    .ok_or_else(|| missing("client secret"))?;
                let host = authority.clone().ok_or_else(|| missing("login endpoint"))?;
                let t = local_cloud_credential(&http, &host, &tenant, &client, &secret)?;
                let n = t.name().to_owned();
                (Arc::new(t), n)
            }
            CloudKind::Azure => {
                let t = azure_credential(&http, None, config.tenant_id.as_deref(), &ProcessEnv)?;
                let n = t.name().to_owned();
                (Arc::new(t), n)
            }
            _ => {
                let t = azure_credential(
                    &http,
                    authority.as_deref(),
                    config.tenant_id.as_deref(),
                    &ProcessEnv,
                )?;
                let n = t.name().to_owned();
                (Arc::new(t), n)
            }
        };
        Self::from_parts(config, registry, transport, clock, tokens, name)
    }

    /// Assembles a provider from explicit parts (used by tests with a scripted transport).
    pub(crate) fn from_parts(
        config: CloudConfig,
        registry: Arc<Registry>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        tokens: Arc<dyn TokenSource>,
        credential_name: impl Into<String>,
    ) -> Result<Self> {
        // One pacer per process: every request of this principal shares its buckets.
        let pacer = config
            .pace
            .map(|limits| Arc::new(Pacer::new(limits, clock.elapsed())));
        let pipeline = Pipeline::new(transport, clock, config.retry.clone(), Some(tokens))
            .with_arm(config.arm_scope(), pacer);
        let arm = Arm::new(pipeline, config.arm_endpoint.clone(), config.arm_scope());
        Ok(Self {
            ctx: Arc::new(Ctx::new(config, arm, registry)),
            credential: credential_name.into(),
        })
    }

    /// Which credential is in use ("environment client secret …", "Azure CLI login", …), for a
    /// "using … credentials" line.
    pub fn credential_name(&self) -> &str {
        &self.credential
    }

    /// The shared ARM client (for calls no resource type covers).
    pub fn arm(&self) -> &Arm {
        &self.ctx.arm
    }

    /// The configuration in use.
    pub fn config(&self) -> &CloudConfig {
        &self.ctx.config
    }

    /// The requests sent so far (every try), for the run summary and `-v`.
    pub fn requests(&self) -> RequestTally {
        self.ctx.arm.pipeline().counts()
    }

    /// Sends a notice wherever `sink` says each time ARM requests start waiting for their bucket
    /// ("paced: 10 writes/s"); nothing when pacing is off.
    pub fn on_paced(&self, sink: PaceNotices) {
        if let Some(p) = self.ctx.arm.pipeline().pacer() {
            p.set_notices(sink);
        }
    }

    /// The shared context (specs, configuration, ARM client) of the resource modules.
    pub(crate) fn context(&self) -> &Ctx {
        &self.ctx
    }

    /// The live traffic split of an endpoint, `None` if it does not exist.
    pub async fn traffic(&self, endpoint: &str) -> Result<Option<BTreeMap<String, u32>>> {
        resources::online_endpoint::traffic(&self.ctx, endpoint).await
    }

    /// An endpoint's keys (secrets; their `Debug` is redacted).
    pub async fn list_keys(&self, endpoint: &str) -> Result<EndpointKeys> {
        resources::online_endpoint::list_keys(&self.ctx, endpoint).await
    }

    /// The last `tail` lines of a deployment's inference-server log.
    pub async fn get_logs(&self, endpoint: &str, deployment: &str, tail: u32) -> Result<String> {
        resources::online_deployment::get_logs(&self.ctx, endpoint, deployment, tail).await
    }

    /// Calls an endpoint's scoring URI with `body`, like `az ml online-endpoint invoke`.
    pub async fn invoke(
        &self,
        endpoint: &str,
        body: &[u8],
        deployment: Option<&str>,
    ) -> Result<ScoreResponse> {
        resources::online_endpoint::invoke(&self.ctx, endpoint, body, deployment).await
    }

    /// A blob client for a storage account the stack does not manage (a remote state's), in the
    /// configuration's resource group: at `endpoint` when given (an emulator's), else at the
    /// account's `primaryEndpoints.blob` read through ARM. Authenticated with `access_key` when given
    /// (SharedKey), else as the provider reaches every blob: the account's keys when the login may
    /// list them and the account allows shared keys, otherwise a Bearer token for the storage
    /// audience (Azure RBAC: `Storage Blob Data Contributor` on the container). With `endpoint` and
    /// no key, a Bearer token.
    pub async fn blob_client(
        &self,
        account: &str,
        endpoint: Option<Url>,
        access_key: Option<&super::secret::Secret>,
    ) -> Result<super::blob::BlobClient> {
        use super::blob::BlobClient;
        use super::pipeline::Auth;
        use super::shared_key::SharedKeyCredential;
        let ctx = &self.ctx;
        let version = ctx.api_version(ResourceType::Blob)?;
        let (endpoint, auth) = match endpoint {
            Some(endpoint) => (endpoint, Auth::Bearer(ctx.config.storage_scope.clone())),
            None => resources::storage_account::blob_access(ctx, account).await?,
        };
        let auth = match access_key {
            Some(key) => {
                Auth::SharedKey(Arc::new(SharedKeyCredential::new(account, key.expose())?))
            }
            None => auth,
        };
        Ok(BlobClient::new(
            ctx.arm.pipeline().clone(),
            endpoint,
            auth,
            version,
        ))
    }

    /// The blob endpoint of a storage account (its `primaryEndpoints.blob`).
    pub async fn blob_endpoint(&self, account: &str) -> Result<Url> {
        Ok(resources::storage_account::blob_access(&self.ctx, account)
            .await?
            .0)
    }

    async fn do_read(&self, req: &ResourceRequest) -> Result<Option<Observed>> {
        let mut found = self.read_raw(req).await?;
        if let Some(obs) = &mut found {
            self.take_stamp(req, obs)?;
        }
        Ok(found)
    }

    /// The request a create or update sends: its inputs with the owner's stamp where the type's spec
    /// says (`arm.stamp`); the blob data plane writes its stamp from `req.owner` itself.
    fn stamped(&self, req: &ResourceRequest) -> Result<ResourceRequest> {
        let mut out = req.clone();
        if let Some(owner) = &req.owner {
            stamp::stamp_inputs(self.ctx.spec(req.resource_type)?, owner, &mut out.inputs);
        }
        Ok(out)
    }

    /// Moves the stamp the cloud returned out of the observed inputs (see [`stamp::take_stamp`]).
    fn take_stamp(&self, req: &ResourceRequest, obs: &mut Observed) -> Result<()> {
        stamp::take_stamp(self.ctx.spec(req.resource_type)?, &req.inputs, obs);
        Ok(())
    }

    async fn read_raw(&self, req: &ResourceRequest) -> Result<Option<Observed>> {
        let ctx = &self.ctx;
        match req.resource_type {
            ResourceType::StorageAccount => resources::storage_account::read(ctx, req).await,
            ResourceType::BlobContainer | ResourceType::UserAssignedIdentity => {
                common::generic_read(ctx, req).await
            }
            ResourceType::Blob => resources::blob::read(ctx, req).await,
            ResourceType::OnlineEndpoint => resources::online_endpoint::read(ctx, req).await,
            ResourceType::RoleAssignment => resources::role_assignment::read(ctx, req).await,
            ResourceType::OnlineDeployment => resources::online_deployment::read(ctx, req).await,
        }
    }

    /// Create-or-replace by PUT: creating and updating are the same call for every type but the
    /// deployment (whose update may be a scale or a traffic change only).
    async fn do_put(&self, req: &ResourceRequest) -> Result<Observed> {
        let sent = self.stamped(req)?;
        let mut obs = self.put_raw(&sent).await?;
        self.take_stamp(req, &mut obs)?;
        Ok(obs)
    }

    async fn put_raw(&self, req: &ResourceRequest) -> Result<Observed> {
        let ctx = &self.ctx;
        match req.resource_type {
            ResourceType::StorageAccount => resources::storage_account::put(ctx, req).await,
            ResourceType::BlobContainer | ResourceType::UserAssignedIdentity => {
                common::generic_put(ctx, req).await
            }
            ResourceType::Blob => resources::blob::put(ctx, req).await,
            ResourceType::OnlineEndpoint => resources::online_endpoint::put(ctx, req).await,
            ResourceType::RoleAssignment => resources::role_assignment::create(ctx, req).await,
            ResourceType::OnlineDeployment => resources::online_deployment::put(ctx, req).await,
        }
    }

    async fn do_create(&self, req: &ResourceRequest) -> Result<Observed> {
        req.report("Creating");
        self.do_put(req).await
    }

    async fn do_update(&self, req: &ResourceRequest) -> Result<Observed> {
        req.report("Updating");
        match req.resource_type {
            ResourceType::OnlineDeployment => {
                let sent = self.stamped(req)?;
                let mut obs = resources::online_deployment::update(&self.ctx, &sent).await?;
                self.take_stamp(req, &mut obs)?;
                Ok(obs)
            }
            // Role assignments cannot change in place (the planner replaces them); a PUT of the same
            // deterministic assignment is still a correct, idempotent update.
            _ => self.do_put(req).await,
        }
    }

    async fn do_delete(&self, req: &ResourceRequest) -> Result<()> {
        let ctx = &self.ctx;
        req.report("Deleting");
        match req.resource_type {
            ResourceType::StorageAccount => resources::storage_account::delete(ctx, req).await,
            ResourceType::BlobContainer
            | ResourceType::UserAssignedIdentity
            | ResourceType::OnlineEndpoint => common::arm_delete(ctx, req.resource_type, req).await,
            ResourceType::Blob => resources::blob::delete(ctx, req).await,
            ResourceType::RoleAssignment => resources::role_assignment::delete(ctx, req).await,
            ResourceType::OnlineDeployment => resources::online_deployment::delete(ctx, req).await,
        }
    }
}

/// Adds the resource's address to an error that lacks context.
fn at(req: &ResourceRequest, e: ProviderError) -> ProviderError {
    let prefix = format!("{} {}", req.resource_type, req.address);
    let context = match &e.context {
        Some(c) => format!("{prefix}: {c}"),
        None => prefix,
    };
    e.with_context(context)
}

impl Provider for AzureProvider {
    fn read<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<Observed>> {
        Box::pin(async move { self.do_read(req).await.map_err(|e| at(req, e)) })
    }

    fn create<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Observed> {
        Box::pin(async move { self.do_create(req).await.map_err(|e| at(req, e)) })
    }

    /// Azure decides an update against the live resource, which it reads, not against `prior`.
    fn update<'a>(
        &'a self,
        _prior: &'a Observed,
        req: &'a ResourceRequest,
    ) -> ProviderFuture<'a, Observed> {
        Box::pin(async move { self.do_update(req).await.map_err(|e| at(req, e)) })
    }

    fn delete<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, ()> {
        Box::pin(async move { self.do_delete(req).await.map_err(|e| at(req, e)) })
    }

    fn list_group(&self, req: &ResourceRequest) -> Option<String> {
        resources::listing::group(&self.ctx, req)
    }

    fn read_listed<'a>(
        &'a self,
        reqs: &'a [ResourceRequest],
    ) -> ProviderFuture<'a, Vec<Result<Option<Observed>>>> {
        Box::pin(async move {
            let answers = match reqs.first().and_then(|r| self.list_group(r)) {
                Some(_) => {
                    let mut answers = resources::listing::read(&self.ctx, reqs).await?;
                    for (answer, req) in answers.iter_mut().zip(reqs) {
                        if let Ok(Some(obs)) = answer {
                            self.take_stamp(req, obs)?;
                        }
                    }
                    answers
                }
                None => {
                    let mut out = Vec::with_capacity(reqs.len());
                    for r in reqs {
                        out.push(self.do_read(r).await);
                    }
                    out
                }
            };
            Ok(answers
                .into_iter()
                .zip(reqs)
                .map(|(a, req)| a.map_err(|e| at(req, e)))
                .collect())
        })
    }

    fn preserve<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<Preserved>> {
        Box::pin(async move {
            match req.resource_type {
                ResourceType::Blob => resources::blob::preserve(&self.ctx, req)
                    .await
                    .map_err(|e| at(req, e)),
                _ => Ok(None),
            }
        })
    }

    fn restore<'a>(
        &'a self,
        req: &'a ResourceRequest,
        kept: &'a Preserved,
    ) -> ProviderFuture<'a, Observed> {
        Box::pin(async move {
            req.report("Restoring");
            let result = match req.resource_type {
                ResourceType::Blob => resources::blob::restore(&self.ctx, req, kept).await,
                other => Err(super::contract::nothing_to_restore(other)),
            };
            result.map_err(|e| at(req, e))
        })
    }

    fn release<'a>(
        &'a self,
        req: &'a ResourceRequest,
        kept: &'a Preserved,
    ) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            match req.resource_type {
                ResourceType::Blob => resources::blob::release(&self.ctx, req, kept)
                    .await
                    .map_err(|e| at(req, e)),
                _ => Ok(()),
            }
        })
    }

    fn read_text<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<String>> {
        Box::pin(async move {
            match req.resource_type {
                ResourceType::Blob => resources::blob::read_text(&self.ctx, req)
                    .await
                    .map_err(|e| at(req, e)),
                _ => Ok(None),
            }
        })
    }

    fn set_map<'a>(&'a self, req: &'a MapRequest) -> ProviderFuture<'a, BTreeMap<String, u64>> {
        Box::pin(async move {
            let result = match req.owner_type {
                ResourceType::OnlineEndpoint => {
                    resources::online_endpoint::set_map(&self.ctx, req).await
                }
                other => Err(ProviderError::invalid(format!(
                    "{other} holds no map stackform can set"
                ))),
            };
            result.map_err(|e| {
                let context = format!("{} {}", req.owner_type, req.address);
                e.with_context(context)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::pipeline::fake::{FakeClock, FakeTransport, StaticTokens, reply};
    use crate::provider::resources::common::tests::azure_config;
    use serde_json::json;

    fn provider(t: &Arc<FakeTransport>) -> AzureProvider {
        let c = Arc::new(FakeClock::default());
        AzureProvider::from_parts(
            azure_config(),
            Arc::new(crate::provider::resources::common::tests::registry()),
            t.clone(),
            c,
            Arc::new(StaticTokens("tok")),
            "static",
        )
        .unwrap()
    }

    fn store() -> ResourceRequest {
        ResourceRequest::new(
            ResourceType::StorageAccount,
            "store",
            serde_json::from_value(json!({"name": "acct"})).unwrap(),
        )
    }

    #[tokio::test]
    async fn gone_is_none_and_failures_name_the_resource() {
        let t = FakeTransport::new(vec![
            reply(
                404,
                &[],
                r#"{"error":{"code":"ResourceNotFound","message":"no"}}"#,
            ),
            reply(
                409,
                &[("x-ms-request-id", "r9")],
                r#"{"error":{"code":"StorageAccountAlreadyTaken","message":"taken"}}"#,
            ),
        ]);
        let p = provider(&t);
        assert_eq!(p.read(&store()).await.unwrap(), None);
        let e = p.create(&store()).await.unwrap_err();
        assert!(e.is_conflict());
        assert!(e.has_code("StorageAccountAlreadyTaken"));
        let text = e.to_string();
        assert!(
            text.starts_with(
                "storage_account store: PUT https://management.azure.com/subscriptions/sub/"
            ),
            "{text}"
        );
        assert!(text.contains("[request id r9]"), "{text}");
    }

    /// The outcome of a create is known not to have happened only when its PUT never connected; a
    /// connection lost while polling an accepted PUT is an unknown outcome (the bug: both read as a
    /// plain failure, and apply took the accepted create for nothing).
    #[tokio::test]
    async fn a_create_lost_after_its_put_was_answered_is_not_unsent() {
        let p = provider(&FakeTransport::new(vec![]));
        let e = p.create(&store()).await.unwrap_err();
        assert!(e.unsent, "{e}");
        let loc = "https://management.azure.com/subscriptions/sub/providers/Microsoft.Storage/locations/eastus/asyncoperations/1";
        let p = provider(&FakeTransport::new(vec![reply(
            202,
            &[("location", loc), ("retry-after", "1")],
            "",
        )]));
        let e = p.create(&store()).await.unwrap_err();
        assert!(!e.unsent, "{e}");
    }

    #[tokio::test]
    async fn writes_carry_the_owners_stamp_and_reads_take_it_out() {
        let done = json!({"id": "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
            "name": "acct", "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
            "tags": {"team": "ml", "stackform_lineage": "l-1", "stackform_stack": "shop"},
            "properties": {"provisioningState": "Succeeded"}});
        let t = FakeTransport::new(vec![
            reply(200, &[], &done.to_string()),
            reply(200, &[], &done.to_string()),
        ]);
        let p = provider(&t);
        let owner = crate::provider::Owner {
            lineage: "l-1".into(),
            stack: "shop".into(),
        };
        let mut req = store();
        req.inputs.insert("tags".into(), json!({"team": "ml"}));
        let req = req.with_owner(owner.clone());
        let made = p.create(&req).await.unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&t.requests()[0].body).unwrap();
        assert_eq!(
            sent["tags"],
            json!({"team": "ml", "stackform_lineage": "l-1", "stackform_stack": "shop"})
        );
        assert_eq!(made.owner, Some(owner.clone()));
        assert_eq!(made.inputs["tags"], json!({"team": "ml"}));
        let read = p.read(&store()).await.unwrap().unwrap();
        assert_eq!(read.owner, Some(owner));
        assert_eq!(read.inputs["tags"], json!({"team": "ml"}));
    }

    #[tokio::test]
    async fn storage_account_create_follows_pattern_a() {
        let loc = "https://management.azure.com/subscriptions/sub/providers/Microsoft.Storage/locations/eastus/asyncoperations/1";
        let done = json!({"id": "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
            "name": "acct", "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
            "properties": {"provisioningState": "Succeeded", "primaryEndpoints": {"blob": "https://acct.blob.core.windows.net/"}}});
        let t = FakeTransport::new(vec![
            reply(202, &[("location", loc), ("retry-after", "1")], ""),
            reply(202, &[("location", loc)], ""),
            reply(200, &[], &done.to_string()),
        ]);
        let p = provider(&t);
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        let req = store().with_progress(Arc::new(move |e| sink.lock().unwrap().push(e.status)));
        let obs = p.create(&req).await.unwrap();
        assert_eq!(
            obs.outputs["primary_blob_endpoint"],
            "https://acct.blob.core.windows.net/"
        );
        assert_eq!(obs.inputs["location"], "eastus");
        let sent: serde_json::Value = serde_json::from_slice(&t.requests()[0].body).unwrap();
        assert_eq!(sent["properties"]["supportsHttpsTrafficOnly"], true);
        assert_eq!(
            sent["location"], "eastus",
            "location defaults to the cloud's"
        );
        assert_eq!(
            events.lock().unwrap().first().map(String::as_str),
            Some("Creating")
        );
    }
}
