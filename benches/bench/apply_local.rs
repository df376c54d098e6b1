//! Apply benchmark against the local cloud (in-process, loopback, its own data folder) through the
//! real Azure provider, with latency added to every request: one storage account and many blob
//! containers in it. Prints the wall time next to the lower bound computed from the steps' own
//! measured durations: max(account + longest container, total step time / parallelism).
//!
//! Run with `cargo bench --bench bench -- apply_local`. The figures are printed, never asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use stackform::apply::{
    ApplyOptions, ApplyPlan, Desired, Interrupt, NoEvents, Outcome, Persistence, PlannedStep, apply,
};
use stackform::cloud::CloudOptions;
use stackform::cloud::faults::Faults;
use stackform::plan::Action;
use stackform::provider::{AzureProvider, CloudConfig, Secret};
use stackform::specs::Registry;
use stackform::state::StateFile;
use url::Url;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn plan(containers: usize) -> ApplyPlan {
    let mut steps = vec![PlannedStep {
        address: String::from("store"),
        resource_type: String::from("storage_account"),
        action: Action::Create,
        desired: Some(Desired::from_json(
            obj(json!({"name": "sfbench1", "sku": "Standard_LRS"})),
            Vec::new(),
        )),
    }];
    steps.extend((0..containers).map(|i| PlannedStep {
        address: format!("c{i}"),
        resource_type: String::from("blob_container"),
        action: Action::Create,
        desired: Some(Desired::from_json(
            obj(json!({"account": "sfbench1", "name": format!("cont{i:04}")})),
            vec![String::from("store")],
        )),
    }));
    ApplyPlan {
        steps,
        ..ApplyPlan::default()
    }
}

async fn one_case(latency_ms: u64, containers: usize, parallelism: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cloud = stackform::cloud::start(CloudOptions {
        data_dir: dir.path().join("cloud"),
        port: 0,
        faults: Faults {
            latency_ms,
            lro_ms: 300,
            retry_after_s: 0,
            ..Faults::default()
        },
        log_file: None,
        seed: Default::default(),
    })
    .await
    .map_err(|e| e.to_string())?;
    let i = &cloud.info;
    let mut config = CloudConfig::local(
        Url::parse(&i.arm_endpoint).map_err(|e| e.to_string())?,
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
    let provider = Arc::new(
        AzureProvider::connect(config)
            .await
            .map_err(|e| e.to_string())?,
    );
    let started = Instant::now();
    let report = apply(
        &plan(containers),
        StateFile::new("bench"),
        Persistence::in_memory(),
        provider,
        &Registry::embedded().map_err(|e| e.to_string())?,
        ApplyOptions {
            parallelism,
            ..ApplyOptions::default()
        },
        Arc::new(NoEvents),
        Interrupt::new(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let wall = started.elapsed();
    cloud.shutdown().await;
    if report.summary.outcome != Outcome::Succeeded {
        return Err(format!("run did not succeed: {:?}", report.summary.failure));
    }
    let durations: Vec<(String, Duration)> = report
        .summary
        .steps
        .iter()
        .map(|s| (s.address.clone(), s.duration))
        .collect();
    let account = durations
        .iter()
        .find(|(a, _)| a == "store")
        .map(|(_, d)| *d)
        .unwrap_or_default();
    let longest = durations
        .iter()
        .filter(|(a, _)| a != "store")
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    let total: Duration = durations.iter().map(|(_, d)| *d).sum();
    let bound = (account + longest).max(account + (total - account) / parallelism as u32);
    println!(
        "local cloud, +{latency_ms} ms per request: 1 account + {containers} containers, parallelism {parallelism}: \
         wall {:.3}s  bound {:.3}s  ratio {:.3}",
        wall.as_secs_f64(),
        bound.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64()
    );
    Ok(())
}

/// Runs this benchmark and prints its figures.
pub(crate) fn run(size: crate::Size) {
    let runtime = crate::runtime();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    runtime.block_on(async {
        let cases: &[(u64, usize, usize)] = match size {
            crate::Size::Full => &[(20, 200, 10), (20, 200, 40)],
            crate::Size::Smoke => &[(20, 20, 10)],
        };
        for &(latency, containers, parallelism) in cases {
            if let Err(e) = one_case(latency, containers, parallelism).await {
                eprintln!("benchmark failed: {e}");
                std::process::exit(1);
            }
        }
    });
}
