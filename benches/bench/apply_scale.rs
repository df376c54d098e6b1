//! The engine at scale, end to end: the `stackform` binary built with this benchmark (release under
//! `cargo bench`) against a local cloud of its own per case, started with `--retry-after-s 0`, on
//! the synthetic stack of `scripts/gen_stack.py` (storage accounts → blob containers → blobs, a
//! third of each; one account, its container and its blob form a chain of three steps).
//!
//! Figures, each printed on one line, none asserted:
//! * apply and destroy of each size at 0 ms added latency: wall time, time per resource, peak RSS of
//!   the engine (`/usr/bin/time`'s maximum resident set size) and of the local cloud (its `VmHWM`);
//! * plan (with refresh) of the largest size once applied: wall time and requests sent, first as the
//!   cloud's principal is seeded (no blob data role on the stack's accounts: blobs are read with the
//!   accounts' keys), then with Storage Blob Data Reader on the resource group (blobs are read with
//!   the engine's own token, no `listKeys`);
//! * apply of about 2,000 resources at 20 ms added latency with parallelism 10, 32 and 64, next to
//!   the lower bound max(chain × latency, requests × latency / parallelism), where a chain is the
//!   requests of one account, its container and its blob (requests / chains: every chain is
//!   alike). The headline ratio compares the apply itself as its summary times it (`Apply complete
//!   in …`) with the bound of the requests it sent (those after its `run starts` log line); beside
//!   it, the whole command's wall time against the bound of every request it sent (refresh,
//!   preflight and probes included).
//!
//! Requests are counted from the engine's `-v` log (one `http` line per response or transport
//! error). Sizes: `STACKFORM_BENCH_SIZES` (comma-separated; default 1000,5000,10000) and
//! `STACKFORM_BENCH_LATENCY_SIZE` (default 2001); the smoke run under `cargo test` uses 30 and 30.
//! Run: `cargo bench --bench bench -- apply_scale`, or `scripts/bench.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test, built by Cargo alongside this benchmark.
const STACKFORM: &str = env!("CARGO_BIN_EXE_stackform");

/// What one run of the binary took.
struct Run {
    wall: Duration,
    /// Maximum resident set size of the process, from `/usr/bin/time` when it is installed.
    peak_kib: Option<u64>,
    /// Responses and transport errors in its `-v` log.
    requests: usize,
    /// Those sent by the apply or destroy itself, after its refresh, preflight and probes.
    run_requests: Option<usize>,
    /// How long the apply or destroy itself took, as its summary says (`… complete in 1.2s`):
    /// the wall time without loading, refresh and planning.
    run_secs: Option<f64>,
}

/// A local cloud started for one case, stopped on drop.
struct Cloud {
    dir: PathBuf,
    pid: Option<u32>,
    /// What `cloud status --json` says (endpoint, tenant, credentials, CA certificate).
    info: serde_json::Value,
}

impl Cloud {
    fn start(dir: &Path, latency_ms: u64) -> Result<Cloud, String> {
        let latency = latency_ms.to_string();
        let out = Command::new(STACKFORM)
            .args([
                "cloud",
                "up",
                "--detach",
                "--port",
                "0",
                "--retry-after-s",
                "0",
            ])
            .args(["--latency-ms", &latency, "--data-dir"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot start the local cloud: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the local cloud did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let status = Command::new(STACKFORM)
            .args(["cloud", "status", "--json", "--data-dir"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot ask the local cloud's status: {e}"))?;
        let info: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        let pid = info["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        Ok(Cloud {
            dir: dir.to_owned(),
            pid,
            info,
        })
    }

    /// Gives the cloud's own principal (the one the engine signs in as) Storage Blob Data Reader on
    /// its resource group, as a user grants themselves a data role: refresh then lists blobs with the
    /// engine's own token, without `listKeys`.
    fn grant_blob_reader(&self) -> Result<(), String> {
        let field = |k: &str| {
            self.info[k]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("`cloud status --json` has no `{k}`"))
        };
        let (arm, tenant) = (field("arm_endpoint")?, field("tenant_id")?);
        let (client, secret) = (field("client_id")?, field("client_secret")?);
        let sub = format!("/subscriptions/{}", field("subscription_id")?);
        let rg = format!("{sub}/resourceGroups/{}", field("resource_group")?);
        let pem = std::fs::read(field("ca_cert")?).map_err(|e| e.to_string())?;
        let arm = arm.trim_end_matches('/').to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
            let http = reqwest::Client::builder()
                .tls_certs_only([cert])
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())?;
            let json = async |r: reqwest::RequestBuilder| -> Result<serde_json::Value, String> {
                let r = r.send().await.map_err(|e| e.to_string())?;
                let status = r.status();
                let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(format!("{status}: {body}"))
                }
            };
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &client)
                .append_pair("client_secret", &secret)
                .append_pair("scope", "https://management.azure.com/.default")
                .finish();
            let token = json(
                http.post(format!("{arm}/{tenant}/oauth2/v2.0/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form),
            )
            .await?;
            let token = token["access_token"].as_str().unwrap_or_default().to_owned();
            let assignments = format!(
                "{arm}{sub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
            );
            let seeded = json(http.get(assignments).bearer_auth(&token)).await?;
            let me = seeded["value"][0]["properties"]["principalId"].clone();
            let reader = format!(
                "{sub}/providers/Microsoft.Authorization/roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
            );
            let put = format!(
                "{arm}{rg}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
                uuid::Uuid::new_v4()
            );
            let body = serde_json::json!({"properties": {"roleDefinitionId": reader, "principalId": me, "principalType": "ServicePrincipal"}});
            json(http.put(put).bearer_auth(&token).json(&body)).await?;
            Ok(())
        })
    }

    /// The cloud's peak RSS so far, in KiB (Linux).
    fn peak_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = Command::new(STACKFORM)
            .args(["cloud", "down", "--data-dir"])
            .arg(&self.dir)
            .output();
    }
}

/// Writes the synthetic stack of `resources` resources to `path` (accounts `<prefix><n>`).
fn write_stack(path: &Path, resources: usize, prefix: &str) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen_stack.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(resources.to_string())
        .args(["--prefix", prefix, "--out"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run python3 scripts/gen_stack.py: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs `stackform -v <args>` in `work`, timed, with its peak RSS when `/usr/bin/time` exists.
fn run_binary(work: &Path, cloud: &Cloud, args: &[&str]) -> Result<Run, String> {
    let time = Path::new("/usr/bin/time");
    let peak_file = work.join("peak.txt");
    let log_file = work.join("run.log");
    let log = std::fs::File::create(&log_file).map_err(|e| e.to_string())?;
    let mut command = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "%M", "-o"]).arg(&peak_file).arg(STACKFORM);
        c
    } else {
        Command::new(STACKFORM)
    };
    command
        .arg("-v")
        .args(args)
        .args(["--state-dir", "state", "--cloud-dir"])
        .arg(&cloud.dir)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("cannot run stackform: {e}"))?;
    let wall = started.elapsed();
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(format!(
            "stackform {} failed ({status}): {}",
            args.join(" "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let log = strip_ansi(&log);
    let run_secs = log.lines().find_map(|l| {
        let rest = &l[l.find(" complete in ")? + " complete in ".len()..];
        rest[..rest.find("s:")?].parse().ok()
    });
    let is_request = |l: &&str| l.contains(" request_id=") || l.contains("http transport error");
    let requests = log.lines().filter(is_request).count();
    // The run's own requests: those after the `run starts` line an apply or destroy logs.
    let run_requests = log
        .lines()
        .position(|l| l.contains("run starts"))
        .map(|at| log.lines().skip(at).filter(is_request).count());
    let peak_kib = std::fs::read_to_string(&peak_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()));
    Ok(Run {
        wall,
        peak_kib,
        requests,
        run_requests,
        run_secs,
    })
}

/// `text` without the terminal colour sequences (`ESC [ … m`) the log is written with.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for end in chars.by_ref() {
                if end == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || String::from("n/a"),
        |k| format!("{:.0} MiB", k as f64 / 1024.0),
    )
}

/// Apply, plan (when `plan`) and destroy of `n` resources at 0 ms added latency.
fn size_case(n: usize, plan: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cloud = Cloud::start(&dir.path().join("cloud"), 0)?;
    write_stack(&dir.path().join("stack.yaml"), n, "sfbench")?;
    let per = |run: &Run| run.wall.as_secs_f64() * 1000.0 / n as f64;
    let apply = run_binary(dir.path(), &cloud, &["apply", "--auto-approve"])?;
    println!(
        "apply   {n:>6} resources: {:>7.2} s wall, {:>5.2} ms/resource, engine peak {}, cloud peak {}, {} requests",
        apply.wall.as_secs_f64(),
        per(&apply),
        mib(apply.peak_kib),
        mib(cloud.peak_kib()),
        apply.requests
    );
    if plan {
        // Without a blob data role (one refused trial, then `listKeys` per account), then with one.
        for with_role in [false, true] {
            if with_role {
                cloud.grant_blob_reader()?;
            }
            let run = run_binary(dir.path(), &cloud, &["plan"])?;
            println!(
                "plan    {n:>6} resources (refresh, {}): {:>7.2} s wall, {} requests ({:.2} per resource), engine peak {}",
                if with_role {
                    "blob data role"
                } else {
                    "no data role"
                },
                run.wall.as_secs_f64(),
                run.requests,
                run.requests as f64 / n as f64,
                mib(run.peak_kib)
            );
        }
    }
    let destroy = run_binary(dir.path(), &cloud, &["destroy", "--auto-approve"])?;
    println!(
        "destroy {n:>6} resources: {:>7.2} s wall, {:>5.2} ms/resource, engine peak {}, cloud peak {}",
        destroy.wall.as_secs_f64(),
        per(&destroy),
        mib(destroy.peak_kib),
        mib(cloud.peak_kib())
    );
    Ok(())
}

/// Apply of `n` resources at `latency_ms` added latency with `parallelism`, next to the bound.
fn latency_case(n: usize, latency_ms: u64, parallelism: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cloud = Cloud::start(&dir.path().join("cloud"), latency_ms)?;
    write_stack(&dir.path().join("stack.yaml"), n, "sflat")?;
    let p = parallelism.to_string();
    let run = run_binary(
        dir.path(),
        &cloud,
        &["apply", "--auto-approve", "--parallelism", &p],
    )?;
    let latency = latency_ms as f64 / 1000.0;
    let chains = (n / 3).max(1) as f64;
    // The lower bound of `requests` sent `parallelism` at a time in chains of `requests / chains`.
    let bound =
        |requests: f64| (requests / chains * latency).max(requests * latency / parallelism as f64);
    let ran = run.run_secs.unwrap_or(run.wall.as_secs_f64());
    let sent = run.run_requests.unwrap_or(run.requests);
    let wall = run.wall.as_secs_f64();
    println!(
        "apply   {n:>6} resources at +{latency_ms} ms, parallelism {parallelism:>2}: apply {ran:.2} s, {sent} requests, bound {:.2} s, ratio {:.2}; whole command {wall:.2} s, {} requests, ratio {:.2}",
        bound(sent as f64),
        ran / bound(sent as f64),
        run.requests,
        wall / bound(run.requests as f64),
    );
    Ok(())
}

fn sizes_from_env(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// Runs this benchmark and prints its figures.
pub(crate) fn run(size: crate::Size) {
    let (sizes, latency_size) = match size {
        crate::Size::Full => (
            sizes_from_env("STACKFORM_BENCH_SIZES", &[1000, 5000, 10_000]),
            sizes_from_env("STACKFORM_BENCH_LATENCY_SIZE", &[2001])[0],
        ),
        crate::Size::Smoke => (vec![30], 30),
    };
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut result = Ok(());
    for &n in &sizes {
        result = result.and_then(|()| size_case(n, n == largest));
    }
    for parallelism in [10, 32, 64] {
        result = result.and_then(|()| latency_case(latency_size, 20, parallelism));
    }
    if let Err(e) = result {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
