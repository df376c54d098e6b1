//! Throughput of the local cloud on loopback: simple ARM GETs (resource group) and PUTs (blob
//! containers, each a durable store write; once over a fixed set of names, once creating new ones so
//! the store grows) over HTTPS with a bearer token, from concurrent clients.
//! Prints requests per second; asserts nothing about speed. Run: `cargo bench --bench bench -- cloud_throughput`.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stackform::cloud::{CloudOptions, start};

const CONCURRENCY: usize = 64;

async fn measure<F, Fut>(label: &str, duration: Duration, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (f, done, failed) = (f.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while start.elapsed() < duration {
                if f(w * 1_000_000 + i).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{label:<34} {:>8.0} req/s  ({n} ok, {} failed, {CONCURRENCY} concurrent clients, {secs:.1} s)",
        n as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
}

/// Runs this benchmark and prints its figures.
pub(crate) fn run(size: crate::Size) {
    let duration = match size {
        crate::Size::Full => Duration::from_secs(3),
        crate::Size::Smoke => Duration::from_millis(300),
    };
    let rt = crate::runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let cloud = start(CloudOptions {
            data_dir: dir.path().to_path_buf(),
            port: 0,
            faults: Default::default(),
            log_file: None,
            seed: Default::default(),
        })
        .await
        .expect("start cloud");
        let info = cloud.info.clone();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let pem = std::fs::read(&info.ca_cert).expect("ca");
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
            .no_proxy()
            .build()
            .expect("client");
        let token = stackform::cloud::instance::admin_token(&client, &info)
            .await
            .expect("token");
        let base = info.arm_endpoint.trim_end_matches('/').to_string();
        let rg = format!(
            "{base}/subscriptions/{}/resourceGroups/{}",
            info.subscription_id, info.resource_group
        );
        let account = format!("{rg}/providers/Microsoft.Storage/storageAccounts/benchacct");
        let r = client
            .put(format!("{account}?api-version=2025-01-01"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(r#"{"location":"eastus","kind":"StorageV2","sku":{"name":"Standard_LRS"}}"#)
            .send()
            .await
            .expect("create account");
        assert_eq!(r.status(), 202);

        let (c, t, u) = (
            client.clone(),
            token.clone(),
            format!("{rg}?api-version=2025-01-01"),
        );
        measure("ARM GET resource group", duration, move |_| {
            let (c, t, u) = (c.clone(), t.clone(), u.clone());
            async move {
                match c.get(u).bearer_auth(t).send().await {
                    // Read the body: dropping it unread resets the HTTP/2 stream, and too many
                    // resets make the client's own h2 library close the connection.
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    Ok(r) => {
                        eprintln!("GET answered {}", r.status());
                        false
                    }
                    Err(e) => {
                        eprintln!("GET failed: {:?}", std::error::Error::source(&e));
                        false
                    }
                }
            }
        })
        .await;
        for (label, names) in [
            ("ARM PUT container, 50 names (durable)", 50usize),
            ("ARM PUT container, growing store", usize::MAX),
        ] {
            let (c, t, account) = (client.clone(), token.clone(), account.clone());
            measure(label, duration, move |i| {
                let (c, t) = (c.clone(), t.clone());
                let u = format!(
                    "{account}/blobServices/default/containers/cont{}?api-version=2025-01-01",
                    i % names
                );
                async move {
                    match c
                        .put(u)
                        .bearer_auth(t)
                        .header("content-type", "application/json")
                        .body("{}")
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        Ok(r) => {
                            eprintln!("PUT answered {}", r.status());
                            false
                        }
                        Err(e) => {
                            eprintln!("PUT failed: {:?}", std::error::Error::source(&e));
                            false
                        }
                    }
                }
            })
            .await;
        }
        let size = std::fs::metadata(dir.path().join("state.json"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("store size after the run: {} KiB", size / 1024);
        cloud.shutdown().await;
    });
}
