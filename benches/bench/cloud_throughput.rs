//! Throughput of the local cloud on loopback: simple ARM GETs (resource group) and PUTs (blob
//! containers, each a store write committed before the answer; once over a fixed set of names, once
//! creating new ones so the store grows) over HTTPS with a bearer token, from concurrent clients; then
//! the same writes once the store holds 100,000 resources (rows added to `store.db` directly, as the
//! `sqlite3` shell could, while the cloud is stopped), with the time the cloud takes to open it.
//! Prints requests per second; asserts nothing about speed. Run: `cargo bench --bench bench -- cloud_throughput`.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stackform::cloud::{CloudOptions, RunningCloud, start};

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

/// Whether a request got a 2xx answer, whose body is then read (dropping it unread resets the HTTP/2
/// stream, and too many resets make the client's own h2 library close the connection); says why not
/// on stderr.
async fn succeeded(what: &str, sent: reqwest::Result<reqwest::Response>) -> bool {
    match sent {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        Ok(r) => {
            eprintln!("{what} answered {}", r.status());
            false
        }
        Err(e) => {
            eprintln!("{what} failed: {:?}", std::error::Error::source(&e));
            false
        }
    }
}

/// A client of one running cloud, with a token, and the ARM URLs the benchmark uses.
#[derive(Clone)]
struct Conn {
    client: reqwest::Client,
    token: String,
    rg: String,
    account: String,
}

async fn start_in(dir: &std::path::Path) -> RunningCloud {
    start(CloudOptions {
        data_dir: dir.to_path_buf(),
        port: 0,
        faults: Default::default(),
        log_file: None,
        seed: Default::default(),
    })
    .await
    .expect("start cloud")
}

async fn connect(cloud: &RunningCloud) -> Conn {
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
    Conn {
        client,
        token,
        rg,
        account,
    }
}

/// PUTs containers `{prefix}{i % names}` for `duration` from concurrent clients.
async fn put_containers(
    label: &str,
    duration: Duration,
    conn: &Conn,
    prefix: &'static str,
    names: usize,
) {
    let (c, t, account) = (
        conn.client.clone(),
        conn.token.clone(),
        conn.account.clone(),
    );
    measure(label, duration, move |i| {
        let (c, t) = (c.clone(), t.clone());
        let u = format!(
            "{account}/blobServices/default/containers/{prefix}{}?api-version=2025-01-01",
            i % names
        );
        async move {
            let sent = c
                .put(u)
                .bearer_auth(t)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await;
            succeeded("PUT", sent).await
        }
    })
    .await;
}

/// Adds `n` container rows under `benchacct` to a stopped cloud's `store.db`, each a copy of the
/// stored body of the container `cont0` with its id and name changed, in one transaction.
fn fill(dir: &std::path::Path, n: usize) {
    let mut db = rusqlite::Connection::open(dir.join("store.db")).expect("open store.db");
    let (key, body): (String, String) = db
        .query_row(
            "SELECT key, body FROM resources WHERE key LIKE '%/benchacct/blobservices/default/containers/cont0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the row of container cont0");
    let template: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    let id = template["id"].as_str().expect("an id").to_string();
    let tx = db.transaction().expect("transaction");
    {
        let mut insert = tx
            .prepare("INSERT OR REPLACE INTO resources (key, body) VALUES (?1, ?2)")
            .expect("prepare");
        for i in 0..n {
            let name = format!("filler{i}");
            let mut b = template.clone();
            b["id"] = id.replace("/cont0", &format!("/{name}")).into();
            b["name"] = name.clone().into();
            insert
                .execute([key.replace("/cont0", &format!("/{name}")), b.to_string()])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn db_size_kib(dir: &std::path::Path) -> u64 {
    ["store.db", "store.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum::<u64>()
        / 1024
}

/// Runs this benchmark and prints its figures.
pub(crate) fn run(size: crate::Size) {
    let (duration, big) = match size {
        crate::Size::Full => (Duration::from_secs(3), 100_000),
        crate::Size::Smoke => (Duration::from_millis(300), 1_000),
    };
    let rt = crate::runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let cloud = start_in(dir.path()).await;
        let conn = connect(&cloud).await;
        let r = conn
            .client
            .put(format!("{}?api-version=2025-01-01", conn.account))
            .bearer_auth(&conn.token)
            .header("content-type", "application/json")
            .body(r#"{"location":"eastus","kind":"StorageV2","sku":{"name":"Standard_LRS"}}"#)
            .send()
            .await
            .expect("create account");
        assert_eq!(r.status(), 202);

        let (c, t, u) = (
            conn.client.clone(),
            conn.token.clone(),
            format!("{}?api-version=2025-01-01", conn.rg),
        );
        measure("ARM GET resource group", duration, move |_| {
            let (c, t, u) = (c.clone(), t.clone(), u.clone());
            async move { succeeded("GET", c.get(u).bearer_auth(t).send().await).await }
        })
        .await;
        // Over 50 names the store keeps its size; over new names it grows by each write.
        let cases = [
            (50, "cont", "50 names"),
            (usize::MAX, "cont", "growing store"),
        ];
        for (names, prefix, what) in cases {
            let label = format!("ARM PUT container, {what}");
            put_containers(&label, duration, &conn, prefix, names).await;
        }
        println!("store size after the run: {} KiB", db_size_kib(dir.path()));
        cloud.shutdown().await;

        fill(dir.path(), big);
        let opened = Instant::now();
        let cloud = start_in(dir.path()).await;
        println!(
            "open a store of {big} more resources: {:.2} s",
            opened.elapsed().as_secs_f64()
        );
        let conn = connect(&cloud).await;
        for (names, prefix, what) in [(50, "cont", "50 names"), (usize::MAX, "new", "new")] {
            let label = format!("ARM PUT container, {what}, +{big}");
            put_containers(&label, duration, &conn, prefix, names).await;
        }
        println!("store size: {} KiB", db_size_kib(dir.path()));
        cloud.shutdown().await;
    });
}
