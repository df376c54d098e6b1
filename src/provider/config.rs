//! Where the provider points: which cloud (public, sovereign, custom or the local cloud), its ARM and
//! login endpoints and its token audiences (given for a named cloud, or discovered from
//! `{arm}/metadata/endpoints`), the subscription, resource group, ML workspace and default location,
//! the API versions, and the retry/polling settings.
//!
//! Nothing here is specific to the local cloud beyond values: it is a URL, a CA file and credentials.
//! A client secret held here is a [`Secret`] and is never printed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::contract::{ResourceType, Result};
use super::error::{ErrorKind, ProviderError};
use super::lro::LroOptions;
use super::pipeline::{Auth, HttpRequest, Pipeline};
use super::retry::RetryPolicy;
use super::secret::Secret;

/// Which cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudKind {
    /// The public cloud (`management.azure.com`).
    Azure,
    AzureChina,
    AzureUSGovernment,
    /// Any other ARM endpoint (Azure Stack, a sovereign cloud not listed here); endpoints discovered.
    Custom,
    /// stackform's built-in local cloud: an HTTPS endpoint with its own CA and a client secret.
    Local,
}

impl CloudKind {
    /// Parses `azure`, `azure-china`/`azurechina`, `azure-us-government`/`azureusgovernment`, `custom`, `local`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "azure" | "azurecloud" | "azurepublic" => Some(Self::Azure),
            "azurechina" | "azurechinacloud" => Some(Self::AzureChina),
            "azureusgovernment" | "azureusgov" | "azuregovernment" => Some(Self::AzureUSGovernment),
            "custom" => Some(Self::Custom),
            "local" => Some(Self::Local),
            _ => None,
        }
    }

    /// The Azure ML data-plane audience (scoring with an Entra token) of a named cloud, as Microsoft's
    /// Azure ML SDK lists it (Azure/azure-sdk-for-python:
    /// sdk/ml/azure-ai-ml/azure/ai/ml/_azure_environments.py, `_environments`, `aml_resource_id`).
    /// Other clouds take it from their metadata ([`ml_audience_from_portal`]).
    pub(crate) fn known_ml_audience(self) -> Option<&'static str> {
        match self {
            Self::Azure => Some(PUBLIC_ML_AUDIENCE),
            Self::AzureChina => Some("https://ml.azure.cn/"),
            Self::AzureUSGovernment => Some("https://ml.azure.us/"),
            _ => None,
        }
    }

    /// The well-known ARM endpoint and authority host of a named cloud.
    pub(crate) fn known_endpoints(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Azure => Some((
                "https://management.azure.com",
                "https://login.microsoftonline.com",
            )),
            Self::AzureChina => Some((
                "https://management.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
            )),
            Self::AzureUSGovernment => Some((
                "https://management.usgovcloudapi.net",
                "https://login.microsoftonline.us",
            )),
            Self::Custom | Self::Local => None,
        }
    }
}

/// The public cloud's Azure ML data-plane audience: the default when a cloud's metadata names none.
pub(crate) const PUBLIC_ML_AUDIENCE: &str = "https://ml.azure.com/";

/// The Azure Storage audience. It is the same in every cloud: the metadata document has no field for it,
/// the Azure CLI asks for this resource whatever cloud it is signed in to (Azure/azure-cli, the storage
/// module's token refresher, `get_raw_token(resource="https://storage.azure.com")`), and the blob
/// service's own 401 challenge names it (`resource_id=https://storage.azure.com`).
pub(crate) const STORAGE_AUDIENCE: &str = "https://storage.azure.com/";

/// `{audience}/.default` with exactly one slash before `.default`.
pub(crate) fn scope_for(audience: &str) -> String {
    format!("{}/.default", audience.trim_end_matches('/'))
}

/// Everything the provider needs to know about its cloud.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    pub kind: CloudKind,
    /// ARM base URL, e.g. `https://management.azure.com`.
    pub arm_endpoint: Url,
    /// Entra authority host, e.g. `https://login.microsoftonline.com`; discovered when `None`.
    pub authority_host: Option<Url>,
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace: String,
    /// Default location for tracked resources that do not name one.
    pub location: String,
    /// Tenant to authenticate in (required for the local cloud; optional for Azure).
    pub tenant_id: Option<String>,
    /// Client id and secret for the local cloud (Azure reads its own from the environment).
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Extra CA certificate (PEM) to trust, e.g. the local cloud's.
    pub ca_cert_pem: Option<PathBuf>,
    /// API version overrides of the specs' defaults, keyed by resource type name (`storage_account`,
    /// `blob` for the data plane `x-ms-version`) or by ARM namespace (`Microsoft.Storage`).
    pub api_versions: BTreeMap<String, String>,
    /// Scope for ARM tokens; defaults to `{arm_endpoint}/.default`.
    pub arm_scope: Option<String>,
    /// Scope for blob data-plane tokens.
    pub storage_scope: String,
    /// Scope for Azure ML data-plane tokens (scoring an endpoint whose auth mode is `aad_token`): the
    /// named cloud's audience, or the one its metadata gives, else the public cloud's.
    pub ml_scope: String,
    /// Retry policy for every call.
    pub retry: RetryPolicy,
    /// Polling defaults (the timeout is overridden per type by [`CloudConfig::lro_for`]).
    pub lro: LroOptions,
    /// Per-type timeouts overriding the built-in ones.
    pub lro_timeouts: BTreeMap<ResourceType, Duration>,
    /// How long to keep retrying `PrincipalNotFound` on a role assignment.
    pub principal_wait: Duration,
    /// The token buckets ARM requests are paced with ([`crate::provider::pace`]); `None` sends them
    /// as fast as the parallelism allows. ARM's own limits for Azure and custom clouds; none for the
    /// local cloud unless it enforces buckets itself.
    pub pace: Option<crate::token_bucket::PaceLimits>,
}

impl CloudConfig {
    /// A named cloud (Azure, China, US Government) with its well-known endpoints.
    pub fn azure(
        kind: CloudKind,
        subscription_id: &str,
        resource_group: &str,
        workspace: &str,
        location: &str,
    ) -> Result<Self> {
        let (arm, login) = kind.known_endpoints().ok_or_else(|| {
            ProviderError::invalid("a custom or local cloud needs an explicit arm endpoint")
        })?;
        let mut c = Self::base(
            kind,
            parse_url(arm)?,
            subscription_id,
            resource_group,
            workspace,
            location,
        );
        c.authority_host = Some(parse_url(login)?);
        Ok(c)
    }

    /// A custom cloud: ARM endpoint given, login endpoint discovered from its metadata.
    pub fn custom(
        arm_endpoint: Url,
        subscription_id: &str,
        resource_group: &str,
        workspace: &str,
        location: &str,
    ) -> Self {
        Self::base(
            CloudKind::Custom,
            arm_endpoint,
            subscription_id,
            resource_group,
            workspace,
            location,
        )
    }

    /// The local cloud: its HTTPS endpoint, its CA, and the client credentials it issued. Short retry and
    /// polling intervals, since it answers at once.
    #[expect(
        clippy::too_many_arguments,
        reason = "a plain constructor of the local cloud's settings"
    )]
    pub fn local(
        arm_endpoint: Url,
        ca_cert_pem: PathBuf,
        tenant_id: &str,
        client_id: &str,
        client_secret: Secret,
        subscription_id: &str,
        resource_group: &str,
        workspace: &str,
        location: &str,
    ) -> Self {
        let mut c = Self::base(
            CloudKind::Local,
            arm_endpoint,
            subscription_id,
            resource_group,
            workspace,
            location,
        );
        c.ca_cert_pem = Some(ca_cert_pem);
        c.tenant_id = Some(tenant_id.to_owned());
        c.client_id = Some(client_id.to_owned());
        c.client_secret = Some(client_secret);
        c.retry = RetryPolicy::fast();
        c.lro = LroOptions {
            timeout: Duration::from_secs(300),
            default_poll: Duration::from_millis(200),
            max_poll: Duration::from_secs(2),
        };
        c.principal_wait = Duration::from_secs(60);
        // The local cloud throttles only when started with `--arm-throttle`; the CLI then paces with
        // the limits it advertises.
        c.pace = None;
        c
    }

    fn base(
        kind: CloudKind,
        arm_endpoint: Url,
        subscription_id: &str,
        resource_group: &str,
        workspace: &str,
        location: &str,
    ) -> Self {
        Self {
            kind,
            arm_endpoint,
            authority_host: None,
            subscription_id: subscription_id.to_owned(),
            resource_group: resource_group.to_owned(),
            workspace: workspace.to_owned(),
            location: location.to_owned(),
            tenant_id: None,
            client_id: None,
            client_secret: None,
            ca_cert_pem: None,
            api_versions: BTreeMap::new(),
            arm_scope: None,
            storage_scope: scope_for(STORAGE_AUDIENCE),
            ml_scope: scope_for(kind.known_ml_audience().unwrap_or(PUBLIC_ML_AUDIENCE)),
            retry: RetryPolicy::default(),
            lro: LroOptions::default(),
            lro_timeouts: BTreeMap::new(),
            principal_wait: Duration::from_secs(300),
            pace: Some(crate::token_bucket::PaceLimits::ARM),
        }
    }

    /// The ARM token scope.
    pub(crate) fn arm_scope(&self) -> String {
        self.arm_scope.clone().unwrap_or_else(|| {
            format!(
                "{}/.default",
                self.arm_endpoint.as_str().trim_end_matches('/')
            )
        })
    }

    /// Takes what the cloud's metadata says: the login endpoint when none was given, and the ML
    /// audience when the metadata names one (a named cloud keeps its well-known audience, which its
    /// metadata would give too).
    pub(crate) fn apply_metadata(&mut self, endpoints: &CloudEndpoints) {
        if self.authority_host.is_none() {
            self.authority_host = Some(endpoints.login_endpoint.clone());
        }
        if self.kind.known_ml_audience().is_none() {
            match &endpoints.ml_audience {
                Some(audience) => self.ml_scope = scope_for(audience),
                None => tracing::debug!(
                    ml_scope = %self.ml_scope,
                    "the cloud metadata names no Azure ML audience; using the public cloud's"
                ),
            }
        }
    }

    /// Long-running-operation options for a type: deployments take longest.
    pub(crate) fn lro_for(&self, t: ResourceType) -> LroOptions {
        let default_timeout = match t {
            ResourceType::OnlineDeployment => Duration::from_secs(90 * 60),
            ResourceType::OnlineEndpoint => Duration::from_secs(30 * 60),
            _ => Duration::from_secs(10 * 60),
        };
        // The local cloud finishes quickly: its single configured timeout applies to every type.
        let fallback = if self.kind == CloudKind::Local {
            self.lro.timeout
        } else {
            default_timeout
        };
        let timeout = self.lro_timeouts.get(&t).copied().unwrap_or(fallback);
        LroOptions {
            timeout,
            ..self.lro.clone()
        }
    }

    /// `/subscriptions/{sub}/resourceGroups/{rg}`.
    pub(crate) fn resource_group_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.subscription_id, self.resource_group
        )
    }

    /// The ML workspace's ARM id.
    pub(crate) fn workspace_id(&self) -> String {
        format!(
            "{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.resource_group_id(),
            self.workspace
        )
    }
}

fn parse_url(s: &str) -> Result<Url> {
    Url::parse(s).map_err(|e| ProviderError::invalid(format!("invalid url {s}: {e}")))
}

/// What a cloud's metadata document says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudEndpoints {
    /// `resourceManager`.
    pub resource_manager: Option<Url>,
    /// `authentication.loginEndpoint`.
    pub login_endpoint: Url,
    /// `authentication.audiences`.
    pub audiences: Vec<String>,
    /// `suffixes.storage`.
    pub storage_suffix: Option<String>,
    /// The Azure ML data-plane audience, from `portal` ([`ml_audience_from_portal`]).
    pub ml_audience: Option<String>,
}

/// The Azure ML audience of a cloud whose portal is `https://portal.azure.{suffix}`:
/// `https://ml.azure.{suffix}/`. This is how Microsoft's Azure ML SDK reads a cloud it does not know
/// from the same metadata document (Azure/azure-sdk-for-python:
/// sdk/ml/azure-ai-ml/azure/ai/ml/_azure_environments.py, `_convert_arm_to_cli`); the document has no
/// field of its own for it. `None` for a portal of any other shape (the local cloud's).
pub(crate) fn ml_audience_from_portal(portal: &str) -> Option<String> {
    let url = Url::parse(portal).ok()?;
    let suffix = url.host_str()?.strip_prefix("portal.azure.")?;
    if suffix.is_empty() || url.scheme() != "https" {
        return None;
    }
    Some(format!("https://ml.azure.{suffix}/"))
}

/// Reads `GET {arm}/metadata/endpoints?api-version=2022-09-01` (no auth). Newer versions answer one
/// object; older ones an array of clouds, from which the one whose `resourceManager` is `arm` is taken.
pub(crate) async fn discover(pipeline: &Pipeline, arm: &Url) -> Result<CloudEndpoints> {
    let mut url = arm
        .join("/metadata/endpoints")
        .map_err(|e| ProviderError::invalid(format!("bad arm endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("api-version", "2022-09-01");
    let resp = pipeline
        .send_ok(HttpRequest::new(Method::GET, url), &Auth::None)
        .await?;
    parse_metadata(&resp.json()?, arm).map_err(|e| e.with_context("reading cloud metadata"))
}

/// Parses a metadata document (object or array form).
pub(crate) fn parse_metadata(doc: &Value, arm: &Url) -> Result<CloudEndpoints> {
    let same_host = |v: &Value| {
        v.get("resourceManager")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok())
            .is_some_and(|u| {
                u.host_str() == arm.host_str()
                    && u.port_or_known_default() == arm.port_or_known_default()
            })
    };
    let cloud = match doc {
        Value::Array(items) => items
            .iter()
            .find(|v| same_host(v))
            .or_else(|| items.first())
            .ok_or_else(|| ProviderError::new(ErrorKind::Failed, "metadata lists no cloud"))?,
        other => other,
    };
    let login = cloud
        .pointer("/authentication/loginEndpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Failed,
                "metadata has no authentication.loginEndpoint",
            )
        })?;
    let login_endpoint = Url::parse(login)
        .map_err(|e| ProviderError::new(ErrorKind::Failed, format!("bad login endpoint: {e}")))?;
    let audiences = cloud
        .pointer("/authentication/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(CloudEndpoints {
        resource_manager: cloud
            .get("resourceManager")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok()),
        login_endpoint,
        audiences,
        storage_suffix: cloud
            .pointer("/suffixes/storage")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ml_audience: cloud
            .get("portal")
            .and_then(Value::as_str)
            .and_then(ml_audience_from_portal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_object_and_array() {
        let arm = Url::parse("https://127.0.0.1:8443").unwrap();
        let obj = json!({"name":"Local","resourceManager":"https://127.0.0.1:8443/","authentication":{"loginEndpoint":"https://127.0.0.1:8443/login","audiences":["https://127.0.0.1:8443/"]},"suffixes":{"storage":"blob.local"}});
        let e = parse_metadata(&obj, &arm).unwrap();
        assert_eq!(e.login_endpoint.as_str(), "https://127.0.0.1:8443/login");
        assert_eq!(e.storage_suffix.as_deref(), Some("blob.local"));
        let arr = json!([
            {"resourceManager":"https://management.azure.com/","authentication":{"loginEndpoint":"https://login.microsoftonline.com"}},
            obj
        ]);
        let e = parse_metadata(&arr, &arm).unwrap();
        assert_eq!(e.login_endpoint.host_str(), Some("127.0.0.1"));
        assert!(parse_metadata(&json!({"name":"x"}), &arm).is_err());
    }

    /// The bug: the ML scope was fixed to the public cloud, so scoring an `aad_token` endpoint in a
    /// sovereign cloud asked Entra for a token no endpoint there accepts.
    #[test]
    fn ml_scope_follows_the_cloud() {
        let scope = |kind| {
            CloudConfig::azure(kind, "s", "rg", "ws", "l")
                .unwrap()
                .ml_scope
        };
        assert_eq!(scope(CloudKind::Azure), "https://ml.azure.com/.default");
        assert_eq!(scope(CloudKind::AzureChina), "https://ml.azure.cn/.default");
        assert_eq!(
            scope(CloudKind::AzureUSGovernment),
            "https://ml.azure.us/.default"
        );
        // A cloud known only by its metadata: an air-gapped one here.
        let arm = Url::parse("https://management.azure.eaglex.ic.gov").unwrap();
        let doc = json!({
            "portal": "https://portal.azure.eaglex.ic.gov",
            "resourceManager": "https://management.azure.eaglex.ic.gov/",
            "authentication": {"loginEndpoint": "https://login.microsoftonline.eaglex.ic.gov",
                               "audiences": ["https://management.azure.eaglex.ic.gov/"]},
            "suffixes": {"storage": "core.eaglex.ic.gov"}
        });
        let endpoints = parse_metadata(&doc, &arm).unwrap();
        let mut c = CloudConfig::custom(arm, "s", "rg", "ws", "l");
        assert_eq!(
            c.ml_scope, "https://ml.azure.com/.default",
            "before discovery"
        );
        c.apply_metadata(&endpoints);
        assert_eq!(c.ml_scope, "https://ml.azure.eaglex.ic.gov/.default");
        assert_eq!(
            c.authority_host.as_ref().map(Url::as_str),
            Some("https://login.microsoftonline.eaglex.ic.gov/")
        );
        assert_eq!(c.storage_scope, "https://storage.azure.com/.default");
        // Metadata without a portal of the known shape (the local cloud's) keeps the public default.
        let local = json!({"portal": "https://127.0.0.1:8443/", "authentication": {"loginEndpoint": "https://127.0.0.1:8443"}});
        let arm = Url::parse("https://127.0.0.1:8443").unwrap();
        let mut c = CloudConfig::custom(arm.clone(), "s", "rg", "ws", "l");
        c.apply_metadata(&parse_metadata(&local, &arm).unwrap());
        assert_eq!(c.ml_scope, "https://ml.azure.com/.default");
        for (portal, want) in [
            ("https://portal.azure.cn/", Some("https://ml.azure.cn/")),
            ("https://portal.azure.com", Some("https://ml.azure.com/")),
            ("http://portal.azure.com", None),
            ("https://portal.azure.", None),
            ("https://example.com", None),
            ("not a url", None),
        ] {
            assert_eq!(ml_audience_from_portal(portal).as_deref(), want, "{portal}");
        }
    }

    #[test]
    fn named_clouds_and_scopes() {
        let c = CloudConfig::azure(CloudKind::Azure, "s", "rg", "ws", "eastus").unwrap();
        assert_eq!(c.arm_scope(), "https://management.azure.com/.default");
        assert_eq!(
            c.authority_host.as_ref().unwrap().as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(
            c.workspace_id(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
        );
        assert!(
            c.lro_for(ResourceType::OnlineDeployment).timeout
                > c.lro_for(ResourceType::StorageAccount).timeout
        );
        assert_eq!(
            CloudKind::parse("azure-us-government"),
            Some(CloudKind::AzureUSGovernment)
        );
        assert_eq!(CloudKind::parse("LOCAL"), Some(CloudKind::Local));
        assert!(CloudConfig::azure(CloudKind::Local, "s", "rg", "ws", "l").is_err());
    }
}
