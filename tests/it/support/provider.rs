//! The provider (not the CLI) against a local cloud started in this process: one throw-away data
//! folder, the given faults, and the one Azure provider connected to it exactly as the CLI connects
//! (its URL, CA and the seeded service principal), with fast LRO polling. Stopped by the test.
use std::sync::Arc;
use std::time::Duration;

use stackform::cloud::faults::Faults;
use stackform::cloud::{CloudOptions, RunningCloud};
use stackform::provider::{AzureProvider, CloudConfig, Secret};
use url::Url;

/// A running in-process cloud and a provider connected to it.
pub(crate) struct Local {
    pub cloud: Option<RunningCloud>,
    pub provider: Arc<AzureProvider>,
    _dir: tempfile::TempDir,
}

impl Local {
    /// Starts a cloud with `faults` in a fresh folder on a free loopback port and connects to it.
    pub(crate) async fn start(faults: Faults) -> Local {
        let dir = tempfile::tempdir().expect("temp dir");
        let cloud = stackform::cloud::start(CloudOptions {
            limits: Default::default(),
            data_dir: dir.path().join("cloud"),
            port: 0,
            faults,
            log_file: None,
            seed: Default::default(),
        })
        .await
        .expect("local cloud starts");
        let i = &cloud.info;
        let mut config = CloudConfig::local(
            Url::parse(&i.arm_endpoint).expect("arm url"),
            i.ca_cert.clone(),
            &i.tenant_id,
            &i.client_id,
            Secret::new(i.client_secret.clone()),
            &i.subscription_id,
            &i.resource_group,
            &i.workspace,
            &i.location,
        );
        config.lro.default_poll = Duration::from_millis(50);
        let provider = AzureProvider::connect(config)
            .await
            .expect("provider connects");
        Local {
            cloud: Some(cloud),
            provider: Arc::new(provider),
            _dir: dir,
        }
    }

    /// Replaces the running cloud's faults (takes effect on the next request).
    pub(crate) fn set_faults(&self, faults: Faults) {
        if let Some(c) = &self.cloud
            && let Ok(mut f) = c.state.faults.write()
        {
            *f = faults;
        }
    }

    /// Shuts the cloud down and waits until it has.
    pub(crate) async fn stop(mut self) {
        if let Some(c) = self.cloud.take() {
            c.shutdown().await;
        }
    }
}

/// The provider's HTTP pipeline with fast retries, trusting `ca` (a PEM) besides the system roots: for
/// tests that drive a `BlobClient` or raw requests against Azurite or a local cloud.
pub(crate) fn pipeline(ca: Option<&[u8]>) -> stackform::provider::pipeline::Pipeline {
    use stackform::provider::pipeline::{
        Pipeline, ReqwestTransport, SystemClock, build_http_client,
    };
    let client = build_http_client(ca).expect("http client");
    Pipeline::new(
        Arc::new(ReqwestTransport::new(client)),
        Arc::new(SystemClock::default()),
        stackform::provider::retry::RetryPolicy::fast(),
        None,
    )
}
