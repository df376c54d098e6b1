//! Shared by the integration tests that drive the provider (not the CLI) against an in-process local
//! cloud: start one in a throw-away folder with the given faults and connect the one Azure provider to it
//! exactly as the CLI does (its URL, CA and the seeded service principal), with fast LRO polling.
use std::time::Duration;

use stackform::cloud::faults::Faults;
use stackform::cloud::{CloudOptions, RunningCloud};
use stackform::provider::{AzureProvider, CloudConfig, Secret};
use url::Url;

pub struct Started {
    pub cloud: RunningCloud,
    pub provider: AzureProvider,
    pub dir: tempfile::TempDir,
}

pub async fn start_local(faults: Faults) -> Started {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = stackform::cloud::start(CloudOptions {
        data_dir: dir.path().join("cloud"),
        port: 0,
        faults,
        log_file: None,
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
    Started {
        cloud,
        provider,
        dir,
    }
}
