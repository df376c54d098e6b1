//! Credentials: where Bearer tokens come from.
//!
//! [`TokenSource`] (defined by the pipeline, which asks it for a token per scope) is what every
//! credential here implements. [`IdentityTokens`] adapts any
//! `azure_identity` credential and caches each scope's token until five minutes before it expires
//! (the Azure CLI credential does not cache on its own). [`azure_credential`] picks the credential for real
//! Azure in the usual order — environment client secret, workload identity, managed identity, Azure CLI —
//! and says which one it chose; [`local_cloud_credential`] builds the client-secret credential for a
//! custom authority (the local cloud) over the shared `reqwest::Client`.
//!
//! Tokens and secrets are never logged and never appear in errors. This module depends on the pipeline
//! (for its HTTP client and the trait it implements), never the other way round.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret as CoreSecret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use tokio::sync::Mutex;

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

/// Which credential the chain picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    ClientSecret,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

impl CredentialKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecret => "environment client secret (AZURE_CLIENT_SECRET)",
            Self::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            Self::ManagedIdentity => "managed identity",
            Self::AzureCli => "Azure CLI login",
        }
    }
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

/// Decides which credential to use for real Azure, in the usual order: a client secret from
/// `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`; workload identity when
/// `AZURE_FEDERATED_TOKEN_FILE` is set; managed identity when `IDENTITY_ENDPOINT`/`MSI_ENDPOINT` or
/// `STACKFORM_USE_MANAGED_IDENTITY` say one is there; the Azure CLI otherwise.
pub(crate) fn choose_credential(env: &dyn Env) -> CredentialKind {
    let has = |n: &str| env.var(n).is_some();
    if has("AZURE_TENANT_ID") && has("AZURE_CLIENT_ID") && has("AZURE_CLIENT_SECRET") {
        CredentialKind::ClientSecret
    } else if has("AZURE_FEDERATED_TOKEN_FILE") && has("AZURE_TENANT_ID") && has("AZURE_CLIENT_ID")
    {
        CredentialKind::WorkloadIdentity
    } else if has("IDENTITY_ENDPOINT")
        || has("MSI_ENDPOINT")
        || has("STACKFORM_USE_MANAGED_IDENTITY")
    {
        CredentialKind::ManagedIdentity
    } else {
        CredentialKind::AzureCli
    }
}

/// Builds the credential for real (or sovereign/custom) Azure and reports which was chosen.
/// `authority_host` is `None` for the public cloud.
pub(crate) fn azure_credential(
    http: &reqwest::Client,
    authority_host: Option<&str>,
    tenant_override: Option<&str>,
    env: &dyn Env,
) -> Result<(IdentityTokens, CredentialKind)> {
    let kind = choose_credential(env);
    let opts = || client_options(http, authority_host, false);
    let fail = |e: azure_core::Error| {
        ProviderError::new(
            ErrorKind::Auth,
            format!("cannot set up {}: {e}", kind.as_str()),
        )
    };
    let cred: Arc<dyn TokenCredential> = match kind {
        CredentialKind::ClientSecret => {
            let tenant = tenant_override
                .map(str::to_owned)
                .or_else(|| env.var("AZURE_TENANT_ID"))
                .unwrap_or_default();
            let client = env.var("AZURE_CLIENT_ID").unwrap_or_default();
            let secret = env.var("AZURE_CLIENT_SECRET").unwrap_or_default();
            ClientSecretCredential::new(
                &tenant,
                client,
                CoreSecret::new(secret),
                Some(ClientSecretCredentialOptions {
                    client_options: opts(),
                }),
            )
            .map_err(fail)?
        }
        CredentialKind::WorkloadIdentity => {
            let mut o = WorkloadIdentityCredentialOptions::default();
            o.credential_options.client_options = opts();
            o.tenant_id = tenant_override.map(str::to_owned);
            WorkloadIdentityCredential::new(Some(o)).map_err(fail)?
        }
        CredentialKind::ManagedIdentity => {
            let o = ManagedIdentityCredentialOptions {
                client_options: opts(),
                ..Default::default()
            };
            ManagedIdentityCredential::new(Some(o)).map_err(fail)?
        }
        CredentialKind::AzureCli => {
            let o = AzureCliCredentialOptions {
                tenant_id: tenant_override.map(str::to_owned),
                ..Default::default()
            };
            AzureCliCredential::new(Some(o)).map_err(fail)?
        }
    };
    tracing::debug!(credential = kind.as_str(), "using credential");
    Ok((IdentityTokens::new(cred, kind.as_str()), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct MapEnv(Vec<(&'static str, &'static str)>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn chain_order() {
        let all = MapEnv(vec![
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ("IDENTITY_ENDPOINT", "http://x"),
        ]);
        assert_eq!(choose_credential(&all), CredentialKind::ClientSecret);
        let wi = MapEnv(vec![
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ]);
        assert_eq!(choose_credential(&wi), CredentialKind::WorkloadIdentity);
        let mi = MapEnv(vec![("AZURE_CLIENT_ID", "c"), ("MSI_ENDPOINT", "http://x")]);
        assert_eq!(choose_credential(&mi), CredentialKind::ManagedIdentity);
        assert_eq!(choose_credential(&MapEnv(vec![])), CredentialKind::AzureCli);
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
