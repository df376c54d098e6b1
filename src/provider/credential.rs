//! Credentials: where Bearer tokens come from.
//!
//! [`TokenSource`] (defined by the pipeline, which asks it for a token per scope) is what every
//! credential here implements. [`IdentityTokens`] adapts any
//! `azure_identity` credential and caches each scope's token until five minutes before it expires
//! (the Azure CLI credential does not cache on its own). [`azure_credential`] builds the chain for real
//! Azure: it reads the environment once ([`plan_chain`]) into the sources that are configured and the
//! reasons the others are not, then [`ChainTokens`] tries them in order on the first token request —
//! environment service principal (client secret or certificate), workload identity, managed identity
//! (App Service, Azure ML compute, Cloud Shell, or a VM's IMDS when asked for), Azure CLI — falling
//! through a managed identity that does not answer, and says which one it used and why each earlier
//! one was skipped. [`local_cloud_credential`] builds the client-secret credential for a custom
//! authority (the local cloud) over the shared `reqwest::Client`.
//!
//! `azure_identity` 1.0 has no environment or chained credential, no Cloud Shell or Azure ML managed
//! identity, and a certificate credential only with openssl: the certificate assertion
//! ([`CertificateAssertion`]) and the `MSI_ENDPOINT` token calls ([`MsiEndpointCredential`]) are here.
//!
//! Tokens and secrets are never logged and never appear in errors. This module depends on the pipeline
//! (for its HTTP client and the trait it implements), never the other way round.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret as CoreSecret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use url::Url;

use super::contract::Result;
use super::error::{ErrorKind, ProviderError};
use super::pipeline::{BoxFuture, TokenSource};
use super::secret::Secret;

/// Adapts an `azure_identity` credential, with a per-scope cache.
pub(crate) struct IdentityTokens {
    credential: Arc<dyn TokenCredential>,
    name: String,
    cache: Mutex<HashMap<String, (Secret, time::OffsetDateTime)>>,
}

impl fmt::Debug for IdentityTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityTokens")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Tokens are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl IdentityTokens {
    pub(crate) fn new(credential: Arc<dyn TokenCredential>, name: impl Into<String>) -> Self {
        Self {
            credential,
            name: name.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl TokenSource for IdentityTokens {
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<Secret>> {
        Box::pin(async move {
            let mut cache = self.cache.lock().await;
            let now = time::OffsetDateTime::now_utc();
            if let Some((token, expires)) = cache.get(scope)
                && *expires - REFRESH_MARGIN > now
            {
                return Ok(token.clone());
            }
            let token = self
                .credential
                .get_token(&[scope], None)
                .await
                .map_err(|e| {
                    ProviderError::new(
                        ErrorKind::Auth,
                        format!("{} could not get a token for {scope}: {e}", self.name),
                    )
                })?;
            let secret = Secret::new(token.token.secret());
            cache.insert(scope.to_owned(), (secret.clone(), token.expires_on));
            Ok(secret)
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Client options sharing our `reqwest::Client`, with a deliberate retry policy and, for a custom
/// cloud, its authority host.
fn client_options(
    http: &reqwest::Client,
    authority_host: Option<&str>,
    quick: bool,
) -> ClientOptions {
    let mut options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http.clone()))),
        ..ClientOptions::default()
    };
    if quick {
        // A local cloud answers at once or is not running: fail in seconds, not in 80.
        options.retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(100),
            max_retries: 3,
            max_total_elapsed: azure_core::time::Duration::seconds(5),
            max_delay: azure_core::time::Duration::seconds(1),
        });
    }
    if let Some(host) = authority_host {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = host.trim_end_matches('/').to_owned();
        options.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
    }
    options
}

/// A client-secret credential against a custom authority (the local cloud's token endpoint), sending its
/// token requests through `http` (which trusts the local CA).
pub(crate) fn local_cloud_credential(
    http: &reqwest::Client,
    authority_host: &str,
    tenant_id: &str,
    client_id: &str,
    client_secret: &Secret,
) -> Result<IdentityTokens> {
    let options = ClientSecretCredentialOptions {
        client_options: client_options(http, Some(authority_host), true),
    };
    let cred = ClientSecretCredential::new(
        tenant_id,
        client_id.to_owned(),
        CoreSecret::new(client_secret.expose().to_owned()),
        Some(options),
    )
    .map_err(|e| {
        ProviderError::new(
            ErrorKind::Auth,
            format!("invalid local cloud credential: {e}"),
        )
    })?;
    Ok(IdentityTokens::new(cred, "client secret (local cloud)"))
}

/// Which kind of managed-identity endpoint the environment offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsiFlavour {
    /// `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service, Functions, Container Apps).
    AppService,
    /// `MSI_ENDPOINT` + `MSI_SECRET` (Azure ML compute instances and clusters).
    AzureMl,
    /// `MSI_ENDPOINT` alone (Azure Cloud Shell): the signed-in user's token.
    CloudShell,
    /// The VM's instance metadata service, only when `STACKFORM_USE_MANAGED_IDENTITY` asks for it.
    Imds,
}

/// A source of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    ClientSecret,
    ClientCertificate,
    WorkloadIdentity,
    ManagedIdentity(MsiFlavour),
    AzureCli,
}

impl CredentialKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecret => "environment client secret (AZURE_CLIENT_SECRET)",
            Self::ClientCertificate => {
                "environment client certificate (AZURE_CLIENT_CERTIFICATE_PATH)"
            }
            Self::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            Self::ManagedIdentity(MsiFlavour::AppService) => {
                "managed identity (App Service, IDENTITY_ENDPOINT)"
            }
            Self::ManagedIdentity(MsiFlavour::AzureMl) => {
                "managed identity (Azure ML compute, MSI_ENDPOINT)"
            }
            Self::ManagedIdentity(MsiFlavour::CloudShell) => {
                "managed identity (Cloud Shell, MSI_ENDPOINT)"
            }
            Self::ManagedIdentity(MsiFlavour::Imds) => "managed identity (IMDS)",
            Self::AzureCli => "Azure CLI login",
        }
    }

    /// Whether a failure to get a token moves on to the next source. Only a managed identity does: its
    /// endpoint may be there without an identity behind it. A source the user configured explicitly (a
    /// service principal, workload identity) and the last one (the CLI) report their failure.
    fn falls_through(self) -> bool {
        matches!(self, Self::ManagedIdentity(_))
    }
}

/// What the environment says about one source of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Configured: try it.
    Use(CredentialKind),
    /// Not configured: the source's name and why (names of variables, never their values).
    Skip(&'static str, String),
}

/// The environment the chain reads, so tests can supply their own.
pub(crate) trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Default)]
pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

const SERVICE_PRINCIPAL: &str = "environment service principal";
const WORKLOAD_IDENTITY: &str = "workload identity";
const MANAGED_IDENTITY: &str = "managed identity";

/// Reads the environment into the chain, in order: each source is either used or skipped with the
/// reason. The list stops at the first source whose failure is final (a service principal, workload
/// identity, the CLI), since nothing after it is ever tried.
pub(crate) fn plan_chain(env: &dyn Env) -> Vec<Verdict> {
    let has = |n: &str| env.var(n).is_some();
    let mut out = Vec::new();
    // 1. A service principal from the environment: a secret wins over a certificate, as in the Azure
    //    SDKs' environment credential.
    let ids = has("AZURE_TENANT_ID") && has("AZURE_CLIENT_ID");
    let secret = has("AZURE_CLIENT_SECRET");
    let cert = has("AZURE_CLIENT_CERTIFICATE_PATH");
    match (ids, secret, cert) {
        (true, true, _) => {
            out.push(Verdict::Use(CredentialKind::ClientSecret));
            return out;
        }
        (true, false, true) => {
            out.push(Verdict::Use(CredentialKind::ClientCertificate));
            return out;
        }
        (true, false, false) => out.push(Verdict::Skip(
            SERVICE_PRINCIPAL,
            "AZURE_TENANT_ID and AZURE_CLIENT_ID are set but neither AZURE_CLIENT_SECRET nor \
             AZURE_CLIENT_CERTIFICATE_PATH is"
                .into(),
        )),
        (false, true, _) | (false, _, true) => out.push(Verdict::Skip(
            SERVICE_PRINCIPAL,
            format!(
                "{} is set but not both AZURE_TENANT_ID and AZURE_CLIENT_ID",
                if secret {
                    "AZURE_CLIENT_SECRET"
                } else {
                    "AZURE_CLIENT_CERTIFICATE_PATH"
                }
            ),
        )),
        (false, false, false) => out.push(Verdict::Skip(
            SERVICE_PRINCIPAL,
            "AZURE_CLIENT_SECRET and AZURE_CLIENT_CERTIFICATE_PATH are not set".into(),
        )),
    }
    // 2. Workload identity (a federated token file, e.g. on AKS).
    if has("AZURE_FEDERATED_TOKEN_FILE") {
        if ids {
            out.push(Verdict::Use(CredentialKind::WorkloadIdentity));
            return out;
        }
        out.push(Verdict::Skip(
            WORKLOAD_IDENTITY,
            "AZURE_FEDERATED_TOKEN_FILE is set but not both AZURE_TENANT_ID and AZURE_CLIENT_ID"
                .into(),
        ));
    } else {
        out.push(Verdict::Skip(
            WORKLOAD_IDENTITY,
            "AZURE_FEDERATED_TOKEN_FILE is not set".into(),
        ));
    }
    // 3. A managed identity, as the platform announces its endpoint (the same variables, in the same
    //    order, as azure_identity's own `get_source` and MSAL's managed-identity sources).
    out.push(managed_identity_verdict(env));
    // 4. The Azure CLI login.
    out.push(Verdict::Use(CredentialKind::AzureCli));
    out
}

fn managed_identity_verdict(env: &dyn Env) -> Verdict {
    let has = |n: &str| env.var(n).is_some();
    let skip = |why: &str| Verdict::Skip(MANAGED_IDENTITY, why.to_owned());
    if has("IDENTITY_ENDPOINT") {
        if has("IDENTITY_HEADER") {
            if has("IDENTITY_SERVER_THUMBPRINT") {
                return skip(
                    "Service Fabric's managed identity (IDENTITY_SERVER_THUMBPRINT) is not supported \
                     by azure_identity 1.0",
                );
            }
            return Verdict::Use(CredentialKind::ManagedIdentity(MsiFlavour::AppService));
        }
        if has("IMDS_ENDPOINT") {
            return skip(
                "Azure Arc's managed identity (IMDS_ENDPOINT) is not supported by azure_identity 1.0",
            );
        }
        return skip("IDENTITY_ENDPOINT is set without IDENTITY_HEADER");
    }
    if has("MSI_ENDPOINT") {
        if has("MSI_SECRET") {
            return Verdict::Use(CredentialKind::ManagedIdentity(MsiFlavour::AzureMl));
        }
        if has("AZURE_CLIENT_ID") {
            // MSAL refuses a user-assigned identity in Cloud Shell
            // (AzureAD/microsoft-authentication-library-for-js:
            // lib/msal-node/src/client/ManagedIdentitySources/CloudShell.ts, `tryCreate`).
            return skip(
                "Cloud Shell (MSI_ENDPOINT) serves only the signed-in user, not the user-assigned \
                 identity AZURE_CLIENT_ID names",
            );
        }
        return Verdict::Use(CredentialKind::ManagedIdentity(MsiFlavour::CloudShell));
    }
    if has("STACKFORM_USE_MANAGED_IDENTITY") {
        return Verdict::Use(CredentialKind::ManagedIdentity(MsiFlavour::Imds));
    }
    skip(
        "no managed-identity endpoint in the environment (IDENTITY_ENDPOINT, MSI_ENDPOINT); a VM's \
         IMDS is not probed unless STACKFORM_USE_MANAGED_IDENTITY is set",
    )
}

/// One configured source, ready to ask.
struct Link {
    kind: CredentialKind,
    tokens: Arc<dyn TokenSource>,
}

/// Which source answered, and the reasons for the ones passed over.
#[derive(Default)]
struct ChainState {
    /// Index into `links` of the source in use, once one answered.
    chosen: Option<usize>,
    /// The next link to try.
    next: usize,
    /// `source: reason` for each source passed over, in order.
    skipped: Vec<String>,
}

/// The credential chain: the configured sources in order, the first that answers kept for every later
/// token. Its errors name every source passed over and why (never a secret).
pub(crate) struct ChainTokens {
    links: Vec<Link>,
    state: Mutex<ChainState>,
    name: String,
}

impl fmt::Debug for ChainTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainTokens")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ChainTokens {
    fn new(links: Vec<Link>, skipped: Vec<String>) -> Self {
        let name = links
            .iter()
            .map(|l| l.kind.as_str())
            .collect::<Vec<_>>()
            .join(", then ");
        Self {
            links,
            state: Mutex::new(ChainState {
                skipped,
                ..ChainState::default()
            }),
            name,
        }
    }

    /// The source in use, once one has answered.
    #[cfg(test)]
    async fn chosen(&self) -> Option<CredentialKind> {
        let st = self.state.lock().await;
        st.chosen.and_then(|i| self.links.get(i)).map(|l| l.kind)
    }

    fn with_skipped(e: ProviderError, skipped: &[String]) -> ProviderError {
        if skipped.is_empty() {
            return e;
        }
        let message = format!(
            "{}; sources passed over before it: {}",
            e.message,
            skipped.join("; ")
        );
        ProviderError { message, ..e }
    }
}

impl TokenSource for ChainTokens {
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<Secret>> {
        Box::pin(async move {
            let mut st = self.state.lock().await;
            if let Some(link) = st.chosen.and_then(|i| self.links.get(i)) {
                return link.tokens.token(scope).await;
            }
            while let Some(link) = self.links.get(st.next) {
                match link.tokens.token(scope).await {
                    Ok(token) => {
                        st.chosen = Some(st.next);
                        tracing::debug!(
                            credential = link.kind.as_str(),
                            skipped = %st.skipped.join("; "),
                            "using credential"
                        );
                        return Ok(token);
                    }
                    Err(e) if link.kind.falls_through() => {
                        tracing::debug!(
                            credential = link.kind.as_str(),
                            error = %e.message,
                            "credential unavailable, trying the next"
                        );
                        st.skipped
                            .push(format!("{}: {}", link.kind.as_str(), e.message));
                        st.next += 1;
                    }
                    Err(e) => return Err(Self::with_skipped(e, &st.skipped)),
                }
            }
            Err(ProviderError::new(
                ErrorKind::Auth,
                format!(
                    "no credential could get a token for {scope}: {}",
                    st.skipped.join("; ")
                ),
            ))
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// What the chain is built with besides the environment.
pub(crate) struct ChainOptions<'a> {
    /// The shared client (trusting the cloud's CA) for token calls.
    pub(crate) http: &'a reqwest::Client,
    /// `None` for the public cloud (or `AZURE_AUTHORITY_HOST`).
    pub(crate) authority_host: Option<&'a str>,
    /// A tenant the configuration names, over `AZURE_TENANT_ID`.
    pub(crate) tenant_override: Option<&'a str>,
    /// Runs `az` (tests replace it).
    pub(crate) cli_executor: Option<Arc<dyn azure_identity::Executor>>,
}

/// Builds the credential chain for real (or sovereign/custom) Azure from `env`. A source that is
/// configured but cannot be set up (an unreadable certificate, an invalid tenant id) is an error here,
/// not a silent fall-through: the user asked for it.
pub(crate) fn azure_credential(
    http: &reqwest::Client,
    authority_host: Option<&str>,
    tenant_override: Option<&str>,
    env: &dyn Env,
) -> Result<ChainTokens> {
    build_chain(
        &ChainOptions {
            http,
            authority_host,
            tenant_override,
            cli_executor: None,
        },
        env,
    )
}

pub(crate) fn build_chain(options: &ChainOptions<'_>, env: &dyn Env) -> Result<ChainTokens> {
    let mut links = Vec::new();
    let mut skipped = Vec::new();
    for verdict in plan_chain(env) {
        match verdict {
            Verdict::Skip(source, why) => {
                tracing::debug!(source, reason = %why, "credential skipped");
                skipped.push(format!("{source}: {why}"));
            }
            Verdict::Use(kind) => {
                let tokens = build_source(kind, options, env).map_err(|e| {
                    ProviderError::new(
                        ErrorKind::Auth,
                        format!("cannot set up {}: {}", kind.as_str(), e.message),
                    )
                })?;
                links.push(Link { kind, tokens });
            }
        }
    }
    Ok(ChainTokens::new(links, skipped))
}

/// The user-assigned identity a managed identity should use: `AZURE_CLIENT_ID`, as the Azure SDKs'
/// default credential takes it.
fn user_assigned_client_id(env: &dyn Env) -> Option<String> {
    env.var("AZURE_CLIENT_ID")
}

fn build_source(
    kind: CredentialKind,
    o: &ChainOptions<'_>,
    env: &dyn Env,
) -> Result<Arc<dyn TokenSource>> {
    let opts = || client_options(o.http, o.authority_host, false);
    let core = |e: azure_core::Error| ProviderError::new(ErrorKind::Auth, e.to_string());
    let tenant = || {
        o.tenant_override
            .map(str::to_owned)
            .or_else(|| env.var("AZURE_TENANT_ID"))
            .unwrap_or_default()
    };
    let client_id = || env.var("AZURE_CLIENT_ID").unwrap_or_default();
    let cred: Arc<dyn TokenCredential> = match kind {
        CredentialKind::ClientSecret => ClientSecretCredential::new(
            &tenant(),
            client_id(),
            CoreSecret::new(env.var("AZURE_CLIENT_SECRET").unwrap_or_default()),
            Some(ClientSecretCredentialOptions {
                client_options: opts(),
            }),
        )
        .map_err(core)?,
        CredentialKind::ClientCertificate => {
            let tenant = tenant();
            let authority = o
                .authority_host
                .map(str::to_owned)
                .or_else(|| env.var("AZURE_AUTHORITY_HOST"))
                .unwrap_or_else(|| PUBLIC_AUTHORITY.to_owned());
            let assertion = CertificateAssertion::from_env(env, &authority, &tenant)?;
            ClientAssertionCredential::new(
                tenant,
                client_id(),
                assertion,
                Some(ClientAssertionCredentialOptions {
                    client_options: opts(),
                }),
            )
            .map_err(core)?
        }
        CredentialKind::WorkloadIdentity => {
            let mut w = WorkloadIdentityCredentialOptions::default();
            w.credential_options.client_options = opts();
            w.tenant_id = Some(tenant());
            w.client_id = Some(client_id());
            w.token_file_path = env.var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from);
            WorkloadIdentityCredential::new(Some(w)).map_err(core)?
        }
        CredentialKind::ManagedIdentity(MsiFlavour::AppService | MsiFlavour::Imds) => {
            let m = ManagedIdentityCredentialOptions {
                client_options: opts(),
                user_assigned_id: user_assigned_client_id(env).map(UserAssignedId::ClientId),
            };
            ManagedIdentityCredential::new(Some(m)).map_err(core)?
        }
        CredentialKind::ManagedIdentity(flavour) => {
            Arc::new(MsiEndpointCredential::from_env(o.http, flavour, env)?)
        }
        CredentialKind::AzureCli => {
            let c = AzureCliCredentialOptions {
                tenant_id: o.tenant_override.map(str::to_owned),
                executor: o.cli_executor.clone(),
                ..Default::default()
            };
            AzureCliCredential::new(Some(c)).map_err(core)?
        }
    };
    Ok(Arc::new(IdentityTokens::new(cred, kind.as_str())))
}

/// The public cloud's authority host.
const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Wraps a message as an `azure_core` credential error.
fn credential_error(message: impl Into<String>) -> azure_core::Error {
    azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, message.into())
}

/// A token from the platform's `MSI_ENDPOINT`, which `azure_identity` 1.0 refuses ("Azure ML managed
/// identity isn't supported", "CloudShell managed identity isn't supported"). The two protocols, as
/// MSAL speaks them (AzureAD/microsoft-authentication-library-for-js:
/// lib/msal-node/src/client/ManagedIdentitySources/MachineLearning.ts and CloudShell.ts) and as the
/// local cloud serves the first (src/cloud/identity.rs):
/// - Azure ML: `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=…[&clientid=…]` with headers
///   `secret: {MSI_SECRET}` and `Metadata: true`; the identity is the user-assigned one
///   `AZURE_CLIENT_ID` names, else the compute's default (`DEFAULT_IDENTITY_CLIENT_ID`);
/// - Cloud Shell: `POST {MSI_ENDPOINT}` with `Metadata: true` and the form `resource=…`.
///
/// Both answer `{"access_token", "expires_on"}` (seconds since the epoch, as a string or a number).
pub(crate) struct MsiEndpointCredential {
    http: reqwest::Client,
    flavour: MsiFlavour,
    endpoint: Url,
    secret: Option<Secret>,
    client_id: Option<String>,
}

impl fmt::Debug for MsiEndpointCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsiEndpointCredential")
            .field("flavour", &self.flavour)
            .finish_non_exhaustive()
    }
}

impl MsiEndpointCredential {
    fn from_env(http: &reqwest::Client, flavour: MsiFlavour, env: &dyn Env) -> Result<Self> {
        let endpoint = env
            .var("MSI_ENDPOINT")
            .and_then(|e| Url::parse(&e).ok())
            .ok_or_else(|| ProviderError::invalid("MSI_ENDPOINT is not a URL"))?;
        let (secret, client_id) = match flavour {
            MsiFlavour::AzureMl => (
                env.var("MSI_SECRET").map(Secret::new),
                user_assigned_client_id(env).or_else(|| env.var("DEFAULT_IDENTITY_CLIENT_ID")),
            ),
            _ => (None, None),
        };
        Ok(Self {
            http: http.clone(),
            flavour,
            endpoint,
            secret,
            client_id,
        })
    }

    async fn fetch(&self, scope: &str) -> azure_core::Result<AccessToken> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let request = match self.flavour {
            MsiFlavour::CloudShell => {
                let form = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("resource", resource)
                    .finish();
                self.http
                    .post(self.endpoint.clone())
                    .header("metadata", "true")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
            }
            _ => {
                let mut url = self.endpoint.clone();
                url.query_pairs_mut()
                    .append_pair("api-version", "2017-09-01")
                    .append_pair("resource", resource);
                if let Some(id) = &self.client_id {
                    url.query_pairs_mut().append_pair("clientid", id);
                }
                let mut r = self.http.get(url).header("metadata", "true");
                if let Some(s) = &self.secret {
                    r = r.header("secret", s.expose());
                }
                r
            }
        };
        let resp = request.send().await.map_err(|e| {
            credential_error(format!(
                "the managed-identity endpoint did not answer: {}",
                if e.is_connect() {
                    "connection failed"
                } else if e.is_timeout() {
                    "timed out"
                } else {
                    "request failed"
                }
            ))
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|_| credential_error("the managed-identity endpoint's answer was cut off"))?;
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !(200..300).contains(&status) {
            let detail = doc
                .get("error_description")
                .or_else(|| doc.get("message"))
                .or_else(|| doc.get("error"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no detail");
            return Err(credential_error(format!(
                "the managed-identity endpoint answered {status}: {detail}"
            )));
        }
        parse_msi_token(&doc).map_err(credential_error)
    }
}

/// `{"access_token", "expires_on" | "expires_in"}` as the MSI endpoints answer it.
fn parse_msi_token(doc: &serde_json::Value) -> std::result::Result<AccessToken, String> {
    let token = doc
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .ok_or("the managed-identity endpoint returned no access_token")?;
    let number = |k: &str| {
        doc.get(k).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let expires_on = match (number("expires_on"), number("expires_in")) {
        (Some(at), _) => time::OffsetDateTime::from_unix_timestamp(at)
            .map_err(|_| "the managed-identity endpoint returned a bad expires_on".to_owned())?,
        (None, Some(secs)) => time::OffsetDateTime::now_utc() + time::Duration::seconds(secs),
        (None, None) => return Err("the managed-identity endpoint returned no expiry".into()),
    };
    Ok(AccessToken::new(token.to_owned(), expires_on))
}

// `TokenCredential` is declared with `async_trait`; this is its expanded form.
impl TokenCredential for MsiEndpointCredential {
    fn get_token<'a, 'b, 'c, 'd, 'e>(
        &'a self,
        scopes: &'b [&'c str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'d>>,
    ) -> Pin<Box<dyn Future<Output = azure_core::Result<AccessToken>> + Send + 'e>>
    where
        'a: 'e,
        'b: 'e,
        'c: 'e,
        'd: 'e,
        Self: 'e,
    {
        Box::pin(async move {
            match scopes {
                [scope] => self.fetch(scope).await,
                _ => Err(credential_error(
                    "a managed identity takes exactly one scope",
                )),
            }
        })
    }
}

/// The signed client assertion of a service principal's certificate (`AZURE_CLIENT_CERTIFICATE_PATH`),
/// for `ClientAssertionCredential`: a JWT with header `{"alg": "PS256", "typ": "JWT", "x5t#S256": …}`
/// (and `x5c` when `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN` is true) and claims `aud` (the token URL),
/// `iss` = `sub` = the client id, `jti`, `nbf`, `iat`, `exp` (10 minutes), as Entra ID's certificate
/// credentials are documented (learn.microsoft.com/entra/identity-platform/certificate-credentials,
/// "Assertion format"). The file is PEM holding the certificate and its unencrypted RSA private key
/// (PKCS#8 or PKCS#1); a PKCS#12 (`.pfx`) file or a password is refused with how to convert it.
pub(crate) struct CertificateAssertion {
    client_id: String,
    token_url: String,
    thumbprint: String,
    chain: Option<Vec<String>>,
    key: Arc<dyn rustls::sign::SigningKey>,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

const PFX_HINT: &str = "stackform reads a PEM file with the certificate and its unencrypted private key; \
     convert a .pfx with `openssl pkcs12 -in cert.pfx -out cert.pem -nodes`";

impl CertificateAssertion {
    fn from_env(env: &dyn Env, authority: &str, tenant: &str) -> Result<Self> {
        let path = env.var("AZURE_CLIENT_CERTIFICATE_PATH").unwrap_or_default();
        if env.var("AZURE_CLIENT_CERTIFICATE_PASSWORD").is_some() {
            return Err(ProviderError::invalid(format!(
                "AZURE_CLIENT_CERTIFICATE_PASSWORD is set: password-protected certificates are not \
                 supported; {PFX_HINT}"
            )));
        }
        let pem = std::fs::read(&path).map_err(|e| {
            ProviderError::invalid(format!(
                "cannot read AZURE_CLIENT_CERTIFICATE_PATH {path}: {e}"
            ))
        })?;
        let send_chain = env
            .var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let token_url = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            authority.trim_end_matches('/')
        );
        Self::from_pem(
            &pem,
            &path,
            env.var("AZURE_CLIENT_ID").unwrap_or_default(),
            token_url,
            send_chain,
        )
    }

    fn from_pem(
        pem: &[u8],
        path: &str,
        client_id: String,
        token_url: String,
        send_chain: bool,
    ) -> Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str| ProviderError::invalid(format!("{path}: {what}; {PFX_HINT}"));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("not a PEM file"))?;
        let leaf = certs
            .first()
            .ok_or_else(|| bad("no CERTIFICATE in the file"))?;
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|_| bad("no unencrypted PRIVATE KEY in the file"))?;
        let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
            .map_err(|_| bad("the private key cannot be read"))?;
        if key.algorithm() != rustls::SignatureAlgorithm::RSA {
            return Err(bad(
                "the key is not RSA (Entra ID signs certificate assertions with RSA)",
            ));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Self {
            client_id,
            token_url,
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(leaf.as_ref())),
            chain: send_chain.then(|| certs.iter().map(|c| b64.encode(c.as_ref())).collect()),
            key,
        })
    }

    /// A fresh signed assertion.
    fn sign(&self) -> std::result::Result<String, String> {
        let mut header =
            serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint});
        if let Some(chain) = &self.chain {
            header["x5c"] = serde_json::json!(chain);
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "aud": self.token_url,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = self
            .key
            .choose_scheme(&[rustls::SignatureScheme::RSA_PSS_SHA256])
            .ok_or("the certificate's key cannot sign PS256")?;
        let signature = signer
            .sign(signing_input.as_bytes())
            .map_err(|_| "signing the client assertion failed".to_owned())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

// `ClientAssertion` is declared with `async_trait`; this is its expanded form.
impl ClientAssertion for CertificateAssertion {
    fn secret<'a, 'b, 'e>(
        &'a self,
        _options: Option<azure_core::http::ClientMethodOptions<'b>>,
    ) -> Pin<Box<dyn Future<Output = azure_core::Result<String>> + Send + 'e>>
    where
        'a: 'e,
        'b: 'e,
        Self: 'e,
    {
        Box::pin(async move { self.sign().map_err(credential_error) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of its own, so tests never touch the process's.
    struct MapEnv(Vec<(&'static str, String)>);

    impl MapEnv {
        fn of(pairs: &[(&'static str, &str)]) -> Self {
            Self(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
        }
    }

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn used(plan: &[Verdict]) -> Vec<CredentialKind> {
        plan.iter()
            .filter_map(|v| match v {
                Verdict::Use(k) => Some(*k),
                Verdict::Skip(..) => None,
            })
            .collect()
    }

    fn reasons(plan: &[Verdict]) -> String {
        plan.iter()
            .filter_map(|v| match v {
                Verdict::Skip(s, why) => Some(format!("{s}: {why}")),
                Verdict::Use(_) => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every branch of the chain as the environment decides it. The bugs: a certificate service
    /// principal fell through to the CLI; `MSI_ENDPOINT` picked a source azure_identity refuses; and
    /// `AZURE_CLIENT_ID` never chose a user-assigned identity.
    #[test]
    fn the_environment_decides_each_source_in_order() {
        use CredentialKind::*;
        use MsiFlavour::*;
        let ids = [("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")];
        let with = |extra: &[(&'static str, &str)]| {
            let mut all = ids.to_vec();
            all.extend_from_slice(extra);
            plan_chain(&MapEnv::of(&all))
        };
        let cases: Vec<(Vec<Verdict>, Vec<CredentialKind>, &str)> = vec![
            (
                with(&[
                    ("AZURE_CLIENT_SECRET", "s"),
                    ("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem"),
                ]),
                vec![ClientSecret],
                "",
            ),
            (
                with(&[
                    ("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem"),
                    ("MSI_ENDPOINT", "http://x"),
                ]),
                vec![ClientCertificate],
                "",
            ),
            (
                with(&[("AZURE_FEDERATED_TOKEN_FILE", "/f")]),
                vec![WorkloadIdentity],
                "neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH",
            ),
            (
                plan_chain(&MapEnv::of(&[("AZURE_FEDERATED_TOKEN_FILE", "/f")])),
                vec![AzureCli],
                "AZURE_FEDERATED_TOKEN_FILE is set but not both",
            ),
            (
                plan_chain(&MapEnv::of(&[("AZURE_CLIENT_SECRET", "s")])),
                vec![AzureCli],
                "AZURE_CLIENT_SECRET is set but not both AZURE_TENANT_ID and AZURE_CLIENT_ID",
            ),
            (
                plan_chain(&MapEnv::of(&[
                    ("MSI_ENDPOINT", "http://x"),
                    ("MSI_SECRET", "m"),
                ])),
                vec![ManagedIdentity(AzureMl), AzureCli],
                "AZURE_FEDERATED_TOKEN_FILE is not set",
            ),
            (
                plan_chain(&MapEnv::of(&[("MSI_ENDPOINT", "http://x")])),
                vec![ManagedIdentity(CloudShell), AzureCli],
                "",
            ),
            (
                plan_chain(&MapEnv::of(&[
                    ("MSI_ENDPOINT", "http://x"),
                    ("AZURE_CLIENT_ID", "u"),
                ])),
                vec![AzureCli],
                "Cloud Shell (MSI_ENDPOINT) serves only the signed-in user",
            ),
            (
                plan_chain(&MapEnv::of(&[
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                ])),
                vec![ManagedIdentity(AppService), AzureCli],
                "",
            ),
            (
                plan_chain(&MapEnv::of(&[
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                    ("IDENTITY_SERVER_THUMBPRINT", "t"),
                ])),
                vec![AzureCli],
                "Service Fabric",
            ),
            (
                plan_chain(&MapEnv::of(&[
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IMDS_ENDPOINT", "http://y"),
                ])),
                vec![AzureCli],
                "Azure Arc",
            ),
            (
                plan_chain(&MapEnv::of(&[("IDENTITY_ENDPOINT", "http://x")])),
                vec![AzureCli],
                "without IDENTITY_HEADER",
            ),
            (
                plan_chain(&MapEnv::of(&[("STACKFORM_USE_MANAGED_IDENTITY", "1")])),
                vec![ManagedIdentity(Imds), AzureCli],
                "",
            ),
            (
                plan_chain(&MapEnv::of(&[])),
                vec![AzureCli],
                "no managed-identity endpoint in the environment",
            ),
        ];
        for (plan, want, why) in cases {
            assert_eq!(used(&plan), want, "{plan:?}");
            assert!(
                reasons(&plan).contains(why),
                "{why:?} not in:\n{}",
                reasons(&plan)
            );
        }
        // The reasons name variables, never their values.
        let plan = plan_chain(&MapEnv::of(&[("AZURE_CLIENT_SECRET", "TOP-SECRET-VALUE")]));
        assert!(!reasons(&plan).contains("TOP-SECRET-VALUE"));
    }

    /// A scripted `az`: answers with a token, or fails as a CLI that is not signed in.
    #[derive(Debug)]
    struct FakeCli {
        token: Option<&'static str>,
    }

    // `Executor` is declared with `async_trait`; this is its expanded form.
    impl azure_identity::Executor for FakeCli {
        fn run<'a, 'b, 'c, 'd, 'e>(
            &'a self,
            _program: &'b std::ffi::OsStr,
            _args: &'c [&'d std::ffi::OsStr],
        ) -> Pin<Box<dyn Future<Output = std::io::Result<std::process::Output>> + Send + 'e>>
        where
            'a: 'e,
            'b: 'e,
            'c: 'e,
            'd: 'e,
            Self: 'e,
        {
            use std::os::unix::process::ExitStatusExt;
            let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
            let out = match self.token {
                Some(t) => std::process::Output {
                    status: std::process::ExitStatus::from_raw(0),
                    stdout: format!(
                        r#"{{"accessToken":"{t}","expires_on":{expires},"tokenType":"Bearer"}}"#
                    )
                    .into_bytes(),
                    stderr: Vec::new(),
                },
                None => std::process::Output {
                    status: std::process::ExitStatus::from_raw(1 << 8),
                    stdout: Vec::new(),
                    stderr: b"ERROR: Please run 'az login' to setup account.".to_vec(),
                },
            };
            Box::pin(async move { Ok(out) })
        }
    }

    fn chain(
        http: &reqwest::Client,
        authority: Option<&str>,
        env: &MapEnv,
        cli: Option<&'static str>,
    ) -> ChainTokens {
        build_chain(
            &ChainOptions {
                http,
                authority_host: authority,
                tenant_override: None,
                cli_executor: Some(Arc::new(FakeCli { token: cli })),
            },
            env,
        )
        .unwrap()
    }

    /// What a loopback token endpoint saw: method, path, query and form pairs, and the headers it
    /// checks.
    #[derive(Debug, Clone, Default)]
    struct Seen {
        method: String,
        path: String,
        params: HashMap<String, String>,
        secret_header: Option<String>,
        metadata_header: Option<String>,
    }

    type SeenLog = Arc<std::sync::Mutex<Vec<Seen>>>;

    async fn record(
        axum::extract::State(log): axum::extract::State<SeenLog>,
        method: axum::http::Method,
        uri: axum::http::Uri,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut params: HashMap<String, String> =
            url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        params.extend(url::form_urlencoded::parse(&body).into_owned());
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let seen = Seen {
            method: method.to_string(),
            path: uri.path().to_owned(),
            params,
            secret_header: header("secret"),
            metadata_header: header("metadata"),
        };
        log.lock().unwrap().push(seen);
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        axum::Json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "expires_on": expires.to_string(),
            "access_token": "tok-from-loopback"
        }))
        .into_response()
    }

    fn router(log: &SeenLog) -> axum::Router {
        axum::Router::new().fallback(record).with_state(log.clone())
    }

    /// A plain-HTTP loopback endpoint (the MSI endpoints are plain HTTP on the machine).
    async fn http_endpoint() -> (String, SeenLog) {
        let log = SeenLog::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = router(&log);
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://127.0.0.1:{port}"), log)
    }

    /// An HTTPS loopback Entra token endpoint with its own CA (azure_identity refuses an http
    /// authority); returns the authority, a client trusting the CA, and the log.
    async fn https_authority() -> (String, reqwest::Client, SeenLog) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, &ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let http = crate::provider::pipeline::build_http_client(Some(ca.pem().as_bytes())).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
            )
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = SeenLog::default();
        let server = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
        )
        .unwrap();
        let app = router(&log);
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        (format!("https://127.0.0.1:{port}"), http, log)
    }

    const ARM: &str = "https://management.azure.com/.default";

    /// The bug: on Azure ML compute (`MSI_ENDPOINT` + `MSI_SECRET`) the chain chose a managed
    /// identity azure_identity 1.0 refuses, and `AZURE_CLIENT_ID` did not pick the user-assigned one.
    #[tokio::test]
    async fn azure_ml_compute_managed_identity_with_a_user_assigned_id() {
        let (base, log) = http_endpoint().await;
        let http = crate::provider::pipeline::build_http_client(None).unwrap();
        let env = MapEnv::of(&[
            ("MSI_ENDPOINT", &format!("{base}/msi/token")),
            ("MSI_SECRET", "MSI-SECRET-VALUE"),
            ("AZURE_CLIENT_ID", "uai-client-id"),
        ]);
        let tokens = chain(&http, None, &env, None);
        assert_eq!(
            tokens.token(ARM).await.unwrap().expose(),
            "tok-from-loopback"
        );
        assert_eq!(
            tokens.chosen().await,
            Some(CredentialKind::ManagedIdentity(MsiFlavour::AzureMl))
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            ("GET", "/msi/token")
        );
        assert_eq!(seen.params["api-version"], "2017-09-01");
        assert_eq!(seen.params["resource"], "https://management.azure.com");
        assert_eq!(seen.params["clientid"], "uai-client-id");
        assert_eq!(seen.secret_header.as_deref(), Some("MSI-SECRET-VALUE"));
        // Without AZURE_CLIENT_ID, the compute's default identity.
        let env = MapEnv::of(&[
            ("MSI_ENDPOINT", &format!("{base}/msi/token")),
            ("MSI_SECRET", "m"),
            ("DEFAULT_IDENTITY_CLIENT_ID", "compute-default"),
        ]);
        chain(&http, None, &env, None).token(ARM).await.unwrap();
        assert_eq!(log.lock().unwrap()[1].params["clientid"], "compute-default");
    }

    /// The bug, in Cloud Shell: `MSI_ENDPOINT` alone chose a source azure_identity 1.0 refuses.
    #[tokio::test]
    async fn cloud_shell_managed_identity() {
        let (base, log) = http_endpoint().await;
        let http = crate::provider::pipeline::build_http_client(None).unwrap();
        let env = MapEnv::of(&[("MSI_ENDPOINT", &format!("{base}/oauth2/token"))]);
        let tokens = chain(&http, None, &env, None);
        assert_eq!(
            tokens.token(ARM).await.unwrap().expose(),
            "tok-from-loopback"
        );
        assert_eq!(
            tokens.chosen().await,
            Some(CredentialKind::ManagedIdentity(MsiFlavour::CloudShell))
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.params["resource"], "https://management.azure.com");
        assert_eq!(seen.metadata_header.as_deref(), Some("true"));
    }

    /// The bug: a managed identity that does not answer had no fallback. Now the chain moves on to the
    /// CLI, says so, and when nothing works names every source passed over (never a secret).
    #[test]
    fn an_unavailable_managed_identity_falls_through_to_the_cli() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let http = crate::provider::pipeline::build_http_client(None).unwrap();
        let env = MapEnv::of(&[
            (
                "MSI_ENDPOINT",
                &format!("http://127.0.0.1:{port}/msi/token"),
            ),
            ("MSI_SECRET", "MSI-SECRET-VALUE"),
        ]);
        let tokens = chain(&http, None, &env, Some("tok-from-cli"));
        let logs = crate::provider::testlog::capture_logs(|| {
            assert_eq!(
                rt.block_on(tokens.token(ARM)).unwrap().expose(),
                "tok-from-cli"
            );
        });
        assert!(logs.contains("credential=\"Azure CLI login\""), "{logs}");
        assert!(logs.contains("Azure ML compute"), "{logs}");
        assert!(logs.contains("connection failed"), "{logs}");
        assert!(!logs.contains("MSI-SECRET-VALUE"));
        // The CLI is not signed in either: the error lists why each source was passed over.
        let tokens = chain(&http, None, &env, None);
        let err = rt.block_on(tokens.token(ARM)).unwrap_err();
        let text = err.to_string();
        for needle in [
            "az login",
            "environment service principal: AZURE_CLIENT_SECRET and AZURE_CLIENT_CERTIFICATE_PATH are not set",
            "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set",
            "managed identity (Azure ML compute, MSI_ENDPOINT): ",
            "connection failed",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
        assert!(!text.contains("MSI-SECRET-VALUE"));
        assert_eq!(err.kind, ErrorKind::Auth);
    }

    #[tokio::test]
    async fn nothing_configured_uses_the_cli_and_says_why() {
        let http = crate::provider::pipeline::build_http_client(None).unwrap();
        let tokens = chain(&http, None, &MapEnv::of(&[]), Some("tok-from-cli"));
        assert_eq!(tokens.name(), "Azure CLI login");
        assert_eq!(tokens.token(ARM).await.unwrap().expose(), "tok-from-cli");
        assert_eq!(tokens.chosen().await, Some(CredentialKind::AzureCli));
    }

    #[tokio::test]
    async fn client_secret_from_the_environment() {
        let (authority, http, log) = https_authority().await;
        let env = MapEnv::of(&[
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_CLIENT_SECRET", "SP-SECRET"),
        ]);
        let tokens = chain(&http, Some(&authority), &env, None);
        assert_eq!(
            tokens.token(ARM).await.unwrap().expose(),
            "tok-from-loopback"
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.path, "/tenant-1/oauth2/v2.0/token");
        assert_eq!(seen.params["client_secret"], "SP-SECRET");
        assert_eq!(seen.params["client_id"], "app-1");
        assert!(!format!("{tokens:?}").contains("SP-SECRET"));
    }

    #[tokio::test]
    async fn workload_identity_sends_the_federated_token() {
        let (authority, http, log) = https_authority().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "federated-token-from-kubernetes").unwrap();
        let env = MapEnv::of(&[
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
        ]);
        let tokens = chain(&http, Some(&authority), &env, None);
        tokens.token(ARM).await.unwrap();
        assert_eq!(
            tokens.chosen().await,
            Some(CredentialKind::WorkloadIdentity)
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(
            seen.params["client_assertion"],
            "federated-token-from-kubernetes"
        );
    }

    /// The bug: a service principal with `AZURE_CLIENT_CERTIFICATE_PATH` silently fell through to the
    /// Azure CLI. Now the certificate signs a client assertion that Entra can verify.
    #[tokio::test]
    async fn client_certificate_signs_a_verifiable_assertion() {
        use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA256};
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
        let cert = CertificateParams::new(vec!["app-1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sp.pem");
        std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        let (authority, http, log) = https_authority().await;
        let env = MapEnv::of(&[
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", path.to_str().unwrap()),
        ]);
        let tokens = chain(&http, Some(&authority), &env, Some("tok-from-cli"));
        assert_eq!(
            tokens.token(ARM).await.unwrap().expose(),
            "tok-from-loopback"
        );
        assert_eq!(
            tokens.chosen().await,
            Some(CredentialKind::ClientCertificate)
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(
            seen.params["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        let jwt = &seen.params["client_assertion"];
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let header = decode(parts[0]);
        let claims = decode(parts[1]);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(
            header["x5t#S256"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(cert.der().as_ref()))
        );
        assert_eq!(
            claims["aud"],
            format!("{authority}/tenant-1/oauth2/v2.0/token")
        );
        assert_eq!(
            (&claims["iss"], &claims["sub"]),
            (&claims["sub"], &serde_json::json!("app-1"))
        );
        assert!(claims["exp"].as_i64().unwrap() > claims["nbf"].as_i64().unwrap());
        // The signature verifies with the certificate's public key (RSA-PSS, SHA-256).
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let message = format!("{}.{}", parts[0], parts[1]);
        let verify = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == rustls::SignatureScheme::RSA_PSS_SHA256)
            .map(|(_, algs)| algs[0])
            .unwrap();
        verify
            .verify_signature(key.public_key_raw(), message.as_bytes(), &signature)
            .expect("the assertion's signature verifies");
    }

    #[test]
    fn an_unusable_certificate_is_an_error_not_a_fall_through() {
        let http = crate::provider::pipeline::build_http_client(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pfx = dir.path().join("sp.pfx");
        std::fs::write(&pfx, [0x30u8, 0x82, 0x01, 0x00]).unwrap();
        let base = [("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")];
        for (extra, needle) in [
            (
                vec![("AZURE_CLIENT_CERTIFICATE_PATH", pfx.to_str().unwrap())],
                "openssl pkcs12",
            ),
            (
                vec![("AZURE_CLIENT_CERTIFICATE_PATH", "/no/such/file.pem")],
                "cannot read AZURE_CLIENT_CERTIFICATE_PATH",
            ),
            (
                vec![
                    ("AZURE_CLIENT_CERTIFICATE_PATH", pfx.to_str().unwrap()),
                    ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "PFX-PASSWORD"),
                ],
                "password-protected",
            ),
        ] {
            let mut all = base.to_vec();
            all.extend(extra);
            let err = build_chain(
                &ChainOptions {
                    http: &http,
                    authority_host: None,
                    tenant_override: None,
                    cli_executor: Some(Arc::new(FakeCli { token: Some("t") })),
                },
                &MapEnv::of(&all),
            )
            .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(needle), "{needle:?} not in {text}");
            assert!(text.contains("environment client certificate"), "{text}");
            assert!(!text.contains("PFX-PASSWORD"));
        }
    }

    #[test]
    fn msi_token_answers() {
        let t =
            parse_msi_token(&serde_json::json!({"access_token": "a", "expires_on": "1900000000"}))
                .unwrap();
        assert_eq!(t.expires_on.unix_timestamp(), 1_900_000_000);
        let t =
            parse_msi_token(&serde_json::json!({"access_token": "a", "expires_on": 1900000000}))
                .unwrap();
        assert_eq!(t.expires_on.unix_timestamp(), 1_900_000_000);
        assert!(
            parse_msi_token(&serde_json::json!({"access_token": "a", "expires_in": "3599"}))
                .is_ok()
        );
        assert!(parse_msi_token(&serde_json::json!({"access_token": "a"})).is_err());
        assert!(parse_msi_token(&serde_json::json!({"expires_on": 1})).is_err());
    }

    /// Counts calls; hands out a token expiring after `lifetime`.
    #[derive(Debug)]
    struct Counting {
        calls: std::sync::atomic::AtomicUsize,
        lifetime: time::Duration,
    }

    // `TokenCredential` is declared with `async_trait`; this is its expanded form.
    impl TokenCredential for Counting {
        fn get_token<'a, 'b, 'c, 'd, 'e>(
            &'a self,
            _scopes: &'b [&'c str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'d>>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = azure_core::Result<azure_core::credentials::AccessToken>,
                    > + Send
                    + 'e,
            >,
        >
        where
            'a: 'e,
            'b: 'e,
            'c: 'e,
            'd: 'e,
            Self: 'e,
        {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(azure_core::credentials::AccessToken::new(
                    format!("token-{n}"),
                    time::OffsetDateTime::now_utc() + self.lifetime,
                ))
            })
        }
    }

    #[tokio::test]
    async fn tokens_are_cached_per_scope_until_near_expiry() {
        let long = Arc::new(Counting {
            calls: Default::default(),
            lifetime: time::Duration::hours(1),
        });
        let tokens = IdentityTokens::new(long.clone(), "test");
        assert_eq!(
            tokens.token("a/.default").await.unwrap().expose(),
            "token-0"
        );
        assert_eq!(
            tokens.token("a/.default").await.unwrap().expose(),
            "token-0"
        );
        assert_eq!(
            tokens.token("b/.default").await.unwrap().expose(),
            "token-1"
        );
        assert_eq!(long.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A token inside the refresh margin is fetched again.
        let short = Arc::new(Counting {
            calls: Default::default(),
            lifetime: time::Duration::seconds(60),
        });
        let tokens = IdentityTokens::new(short.clone(), "test");
        tokens.token("a/.default").await.unwrap();
        tokens.token("a/.default").await.unwrap();
        assert_eq!(short.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(!format!("{tokens:?}").contains("token-"));
    }

    #[test]
    fn client_secret_credential_builds_for_a_custom_https_authority() {
        let http = crate::provider::pipeline::build_http_client(None).unwrap();
        let t = local_cloud_credential(
            &http,
            "https://127.0.0.1:1/",
            "tenant-1",
            "client",
            &Secret::new("s"),
        )
        .unwrap();
        assert!(t.name().contains("client secret"));
        assert!(!format!("{t:?}").contains("\"s\""));
    }
}
