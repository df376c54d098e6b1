//! `stackform cloud up|down|status|reset`: run and manage the built-in local cloud. It reaches the
//! cloud only through `crate::cloud`'s public lifecycle functions and never touches a stack's state.
use std::path::PathBuf;
use std::process::ExitCode;

use super::engine;
use super::error::CliError;
use super::exit;
use crate::cloud::faults::{Faults, FaultsPatch};
use crate::cloud::instance::{self, CloudError};
use crate::cloud::{CloudOptions, SeedProfile, default_data_dir};
use crate::report::stdio::outln;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: CloudCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CloudCommand {
    /// Start the local cloud (in the foreground, or in the background with --detach).
    Up(UpArgs),
    /// Stop the running local cloud and its scoring processes.
    Down(DirArgs),
    /// Show the running local cloud's endpoints and credentials.
    Status(StatusArgs),
    /// Delete the local cloud's resources and blobs (keeps its CA and Python environment cache).
    Reset(DirArgs),
}

#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// Data folder [default: $STACKFORM_CLOUD_DIR or <data dir>/stackform/cloud].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Print the connection facts as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Run in the background and return once it answers.
    #[arg(long)]
    pub detach: bool,
    /// HTTPS port on 127.0.0.1 (0 picks a free one) [default: the last port used, else 48443].
    #[arg(long)]
    pub port: Option<u16>,
    /// Where a detached instance writes its log (set by --detach).
    #[arg(long, hide = true)]
    pub log_file: Option<PathBuf>,
    /// Fault: milliseconds added to every ARM and blob request.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Fault: how long long-running operations take, in milliseconds.
    #[arg(long)]
    pub lro_ms: Option<u64>,
    /// Fault: Retry-After seconds on long-running operations.
    #[arg(long)]
    pub retry_after_s: Option<u64>,
    /// Fault: fraction (0-1) of ARM/blob requests answered 500/503.
    #[arg(long)]
    pub error_rate: Option<f64>,
    /// Fault: fraction (0-1) of ARM/blob requests answered 429 with Retry-After.
    #[arg(long)]
    pub throttle_rate: Option<f64>,
    /// Fault: seconds a new role assignment takes to reach the blob data plane.
    #[arg(long)]
    pub role_propagation_s: Option<f64>,
    /// Fault: seconds a new identity stays unknown to role assignments (PrincipalNotFound).
    #[arg(long)]
    pub principal_replication_s: Option<f64>,
    /// Faults also hit the deployments' own requests (made with managed-identity tokens, e.g. a
    /// scoring script's init() reading its blob); by default they hit only everyone else's.
    #[arg(long)]
    pub faults_include_deployments: bool,
    /// Seed a new data folder the way security-conscious tenants run workspaces: the workspace's
    /// storage account refuses shared keys and its default datastore is identity-based, so uploads use
    /// your own token (the seeded principal holds Storage Blob Data Contributor there).
    #[arg(long)]
    pub hardened: bool,
    /// Enforce ARM's throttling per principal: `arm` for ARM's token buckets (reads 250 and 25/s,
    /// writes 200 and 10/s, deletes 200 and 10/s), or `reads=BURST/RATE,writes=…,deletes=…`.
    /// Clients of this cloud then pace with the same buckets.
    #[arg(long, value_name = "LIMITS")]
    pub arm_throttle: Option<String>,
}

fn dir_of(d: &DirArgs) -> Result<PathBuf, CliError> {
    match &d.data_dir {
        Some(p) => Ok(p.clone()),
        None => Ok(default_data_dir()?),
    }
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    match args.command {
        CloudCommand::Up(a) => up(a),
        CloudCommand::Down(d) => {
            let dir = dir_of(&d)?;
            match instance::stop(&dir) {
                Ok(_) => {
                    outln!("the local cloud stopped (data: {})", dir.display())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(CloudError::NotRunning(_)) => {
                    outln!("the local cloud is not running (data: {})", dir.display())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(e.into()),
            }
        }
        CloudCommand::Status(s) => {
            let dir = dir_of(&s.dir)?;
            match instance::status(&dir) {
                Some(info) if s.json => {
                    let mut v = serde_json::to_value(&info)?;
                    v["running"] = true.into();
                    outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
                    Ok(ExitCode::SUCCESS)
                }
                Some(info) => {
                    outln!("the local cloud is running (pid {})", info.pid)?;
                    outln!("  arm endpoint:   {}", info.arm_endpoint)?;
                    outln!("  tenant:         {}", info.tenant_id)?;
                    outln!("  subscription:   {}", info.subscription_id)?;
                    outln!("  resource group: {}", info.resource_group)?;
                    outln!("  workspace:      {}", info.workspace)?;
                    outln!("  client id:      {}", info.client_id)?;
                    outln!("  ca certificate: {}", info.ca_cert.display())?;
                    outln!("  data folder:    {}", info.data_dir.display())?;
                    outln!("(cloud status --json also shows the local client secret)")?;
                    Ok(ExitCode::SUCCESS)
                }
                None if s.json => {
                    outln!("{}", serde_json::json!({"running": false, "data_dir": dir}))?;
                    Ok(ExitCode::from(exit::ERROR))
                }
                None => Err(CliError::CloudNotRunning { data_dir: dir }),
            }
        }
        CloudCommand::Reset(d) => {
            let dir = dir_of(&d)?;
            if instance::status(&dir).is_some() {
                instance::stop(&dir)?;
                outln!("stopped the running local cloud")?;
            }
            instance::reset(&dir)?;
            outln!(
                "the local cloud's state was deleted (data: {})",
                dir.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn faults(a: &UpArgs) -> Result<Faults, CliError> {
    let mut f = Faults::from_env()?;
    f.apply(FaultsPatch {
        latency_ms: a.latency_ms,
        lro_ms: a.lro_ms,
        retry_after_s: a.retry_after_s,
        error_rate: a.error_rate,
        throttle_rate: a.throttle_rate,
        throttle_retry_after_s: None,
        role_propagation_s: a.role_propagation_s,
        principal_replication_s: a.principal_replication_s,
        include_deployments: a.faults_include_deployments.then_some(true),
        arm_throttle: a.arm_throttle.clone(),
    })?;
    Ok(f)
}

const DEFAULT_PORT: u16 = 48443;

fn up(a: UpArgs) -> Result<ExitCode, CliError> {
    let dir = dir_of(&a.dir)?;
    let faults = faults(&a)?;
    if a.detach {
        let exe = std::env::current_exe().map_err(CliError::CurrentExe)?;
        let mut extra = Vec::new();
        let flags: [(&str, Option<String>); 8] = [
            ("--arm-throttle", a.arm_throttle.clone()),
            ("--latency-ms", a.latency_ms.map(|v| v.to_string())),
            ("--lro-ms", a.lro_ms.map(|v| v.to_string())),
            ("--retry-after-s", a.retry_after_s.map(|v| v.to_string())),
            ("--error-rate", a.error_rate.map(|v| v.to_string())),
            ("--throttle-rate", a.throttle_rate.map(|v| v.to_string())),
            (
                "--role-propagation-s",
                a.role_propagation_s.map(|v| v.to_string()),
            ),
            (
                "--principal-replication-s",
                a.principal_replication_s.map(|v| v.to_string()),
            ),
        ];
        for (flag, value) in flags {
            if let Some(v) = value {
                extra.push(flag.to_string());
                extra.push(v);
            }
        }
        if a.faults_include_deployments {
            extra.push("--faults-include-deployments".to_string());
        }
        if a.hardened {
            extra.push("--hardened".to_string());
        }
        let info = instance::spawn_detached(&exe, &dir, a.port, &extra)?;
        outln!(
            "the local cloud is running in the background (pid {}) at {}",
            info.pid,
            info.arm_endpoint
        )?;
        outln!(
            "data: {}  log: {}",
            dir.display(),
            dir.join(instance::LOG_FILE).display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let explicit = a.port.is_some();
    let port = a.port.unwrap_or_else(|| {
        std::fs::read_to_string(dir.join("last_port"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(DEFAULT_PORT)
    });
    let seed = if a.hardened {
        SeedProfile::Hardened
    } else {
        SeedProfile::Standard
    };
    // This process serves the cloud: everything it and its scoring processes create (store, blob
    // files, deployment logs, environments) is its user's only, whichever module writes it.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let rt = engine::runtime()?;
    rt.block_on(async move {
        // Listening before the cloud writes its status file: a `cloud down` (SIGTERM) that comes as
        // soon as the status file names this process must stop it cleanly, not kill it outright.
        let mut stops = StopSignals::listen();
        let opts = CloudOptions {
            limits: Default::default(),
            data_dir: dir.clone(),
            port,
            faults: faults.clone(),
            log_file: a.log_file.clone(),
            seed,
        };
        let running = match crate::cloud::start(opts).await {
            Err(CloudError::Start(_)) if !explicit && port != 0 => {
                crate::cloud::start(CloudOptions {
                    limits: Default::default(),
                    data_dir: dir.clone(),
                    port: 0,
                    faults,
                    log_file: a.log_file,
                    seed,
                })
                .await
            }
            other => other,
        }?;
        let announced = outln!(
            "the local cloud is listening on {} (data: {})",
            running.info.arm_endpoint,
            dir.display()
        );
        if let Err(e) = announced {
            // Nobody can learn where it listens: stop the cloud cleanly rather than serve unseen.
            running.shutdown().await;
            return Err(e.into());
        }
        tokio::select! {
            _ = stops.recv() => {}
            _ = running.shutdown_requested() => {}
        }
        running.shutdown().await;
        outln!("the local cloud stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGINT and SIGTERM, registered when made (signals that come before the first wait are kept).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Registers both; a signal that cannot be registered is never waited for.
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Resolves on the first SIGINT or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = one(&mut self.term) => {}
                _ = one(&mut self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
