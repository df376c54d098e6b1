//! What the commands that talk to a cloud share: the flags that choose the cloud and the state file,
//! connecting the provider (starting the local cloud when needed), refresh, and planning.
//!
//! It never prints a result (the commands do) and never turns an error into text: failures are
//! [`CliError`] variants that render themselves.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::common::{self, StackArgs};
use super::error::{CliError, CloudSetupError, Hint};
use crate::apply::{self, EventSink};
use crate::backend::Session;
use crate::backend::config::{AzureBlob, Backend, Overrides};
use crate::graph::ResourceGraph;
use crate::plan::{self, DesiredExtras, Live, Plan, PlanMode, Snapshot};
use crate::provider::{AzureProvider, CloudConfig, CloudKind as ProviderCloud, Provider, Secret};
use crate::report::stdio::errln;
use crate::specs::Registry;
use crate::stack::{CloudKind, Stack};
use crate::state::{StateFile, StateStore};

/// Flags that choose where the stack goes and where its state lives.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Override the stack's `cloud.kind`: local, azure, azure_china, azure_us_government or custom.
    #[arg(long, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(CloudKind::ALL))]
    pub cloud: Option<String>,

    /// Folder of the state files (`<folder>/<stack>.json`; an environment's in
    /// `<folder>/env/NAME/`). Default: `state/` beside the stack file.
    #[arg(long, value_name = "DIR", env = "STACKFORM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Use exactly this state file instead of `<state-dir>/<stack>.json`.
    #[arg(long, value_name = "FILE", conflicts_with = "env")]
    pub state: Option<PathBuf>,

    /// Data folder of the local cloud (started in the background when it is not running).
    #[arg(long, value_name = "DIR", env = "STACKFORM_CLOUD_DIR")]
    pub cloud_dir: Option<PathBuf>,

    /// Where the state is kept: `local` (a state file) or `azure_blob` (a blob, locked by a blob
    /// lease); overrides the stack file's `backend.kind`.
    #[arg(long, value_name = "KIND", env = "STACKFORM_BACKEND", value_parser = clap::builder::PossibleValuesParser::new(crate::stack::BackendKind::ALL))]
    pub backend: Option<String>,

    /// A backend setting (repeatable), over the stack file's `backend:` section and
    /// `STACKFORM_BACKEND_<NAME>`: account, container, key, resource_group, endpoint.
    #[arg(long = "backend-config", value_name = "NAME=VALUE", value_parser = crate::backend::config::parse_setting)]
    pub backend_config: Vec<(String, String)>,

    /// Most cloud operations in flight at once.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,

    /// Pace ARM requests with these token buckets: `arm` (ARM's limits: reads 250 and 25/s, writes
    /// 200 and 10/s, deletes 200 and 10/s), `off`, or `reads=BURST/RATE,writes=…,deletes=…`.
    /// Default: `arm` on Azure clouds; on the local cloud, the buckets it enforces (`cloud up
    /// --arm-throttle`), else off.
    #[arg(long, value_name = "LIMITS", value_parser = parse_pace)]
    pub arm_pace: Option<Pace>,
}

/// What `--arm-pace` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    Off,
    Limits(crate::token_bucket::PaceLimits),
}

fn parse_pace(s: &str) -> Result<Pace, String> {
    match s.trim() {
        "off" => Ok(Pace::Off),
        "arm" => Ok(Pace::Limits(crate::token_bucket::PaceLimits::ARM)),
        t => crate::token_bucket::PaceLimits::parse(t).map(Pace::Limits),
    }
}

/// Flags of the commands that take the stack's write lock.
#[derive(Debug, Clone, clap::Args)]
pub struct LockArgs {
    /// Wait up to this long for another run's lock (e.g. 30s, 5m) instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
}

/// Parses `90`, `90s`, `5m`, `1h`, `500ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError::NotADuration(s.to_string()))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                text: s.to_string(),
            });
        }
    };
    Ok(Duration::from_secs(secs))
}

/// A `--lock-timeout` that is not a duration (clap shows it after "invalid value").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
    #[error("expected a duration such as 30s or 5m, found `{0}`")]
    NotADuration(String),
    #[error("unknown unit `{unit}` in `{text}` (use ms, s, m or h)")]
    UnknownUnit { unit: String, text: String },
}

/// A loaded stack with its graph and state store.
pub(crate) struct Loaded {
    /// The specs the stack was loaded with; the graph, the planner, the engine and the provider all
    /// read this one.
    pub registry: Arc<Registry>,
    pub stack: Stack,
    pub graph: ResourceGraph,
    /// The state file; with a remote backend, the working copy its writes are mirrored from.
    pub store: StateStore,
    /// The remote backend, when the state is kept remotely.
    pub backend: Option<Session>,
}

/// Loads and checks the stack and finds its state file (see [`super::place`]; a notice when it is
/// found where state was kept before). No cloud calls, no folder created.
pub(super) fn load(stack_args: &StackArgs, target: &TargetArgs) -> Result<Loaded, CliError> {
    let registry = common::registry()?;
    let (stack, graph) = common::load_graph(stack_args, &registry)?;
    let located = super::place::locate(
        &stack.name,
        stack_args,
        target.state_dir.as_deref(),
        target.state.as_deref(),
    )?;
    let registry = Arc::new(registry);
    let (store, backend) = match backend_of(&stack, stack_args, target)? {
        Backend::Local => {
            if let Some(notice) = &located.notice {
                errln!("note: {notice}");
            }
            (located.store, None)
        }
        Backend::AzureBlob(blob) => {
            let session = open_remote(blob, &stack, target, &registry)?;
            session.pull()?;
            (session.store().clone(), Some(session))
        }
    };
    Ok(Loaded {
        registry,
        stack,
        graph,
        store,
        backend,
    })
}

/// The backend a command uses: the stack file's `backend:`, the environment and the flags.
pub(crate) fn backend_of(
    stack: &Stack,
    stack_args: &StackArgs,
    target: &TargetArgs,
) -> Result<Backend, CliError> {
    let mut overrides = Overrides {
        kind: target.backend.clone(),
        flags: target.backend_config.clone(),
        env: Vec::new(),
    };
    overrides.read_env();
    Ok(crate::backend::config::resolve(
        stack.backend.as_ref(),
        &overrides,
        &stack.name,
        stack_args.env.as_deref(),
    )?)
}

/// Connects the remote state `blob` with the stack's cloud configuration (the provider's
/// credentials and trust), its working folder under `.stackform/backend/` beside the stack file.
/// Reads nothing yet.
pub(crate) fn open_remote(
    blob: AzureBlob,
    stack: &Stack,
    target: &TargetArgs,
    registry: &Arc<Registry>,
) -> Result<Session, CliError> {
    let cloud = cloud_config(stack, target)?;
    let root = stack.dir.join(".stackform").join("backend");
    Ok(Session::open(
        blob,
        cloud,
        registry.clone(),
        crate::backend::session::access_key_from_env(),
        &root,
        &stack.name,
    )?)
}

/// The stack's write lock: the state file's lock, and with a remote backend the remote lock (the
/// state pulled again under it). Both are held until the guard drops.
pub(crate) struct Held<'a> {
    _local: crate::state::LockGuard,
    remote: Option<&'a Session>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.remote
            && let Err(e) = session.unlock()
        {
            errln!("warning: {e}");
        }
    }
}

/// Takes the stack's write lock for `request` (see [`Held`]), printing a takeover notice.
pub(crate) fn lock<'a>(
    loaded: &'a Loaded,
    request: &crate::state::LockRequest,
) -> Result<Held<'a>, CliError> {
    lock_parts(&loaded.store, loaded.backend.as_ref(), request)
}

/// [`lock`] for a command that owns its stack's state store and backend apart from the loaded
/// stack (apply and destroy free the stack during the run).
pub(crate) fn lock_parts<'a>(
    store: &StateStore,
    backend: Option<&'a Session>,
    request: &crate::state::LockRequest,
) -> Result<Held<'a>, CliError> {
    let acquired = store.lock(request)?;
    if let Some(notice) = &acquired.notice {
        errln!("note: {notice}");
    }
    let remote = match backend {
        Some(session) => {
            if let Some(notice) = session.lock(request)? {
                errln!("note: {notice}");
            }
            Some(session)
        }
        None => None,
    };
    Ok(Held {
        _local: acquired.guard,
        remote,
    })
}

pub(crate) fn read_state(store: &StateStore) -> Result<Option<StateFile>, CliError> {
    Ok(store.read()?)
}

/// [`read_state`] for a command that will act on the recorded ids (plan, apply, destroy): a state
/// whose ids do not point at what their records describe is refused before any cloud call (see
/// [`crate::plan::check_state_ids`]). The `state` commands read it unchecked, to repair it.
pub(crate) fn read_state_to_act(
    store: &StateStore,
    registry: &Registry,
) -> Result<Option<StateFile>, CliError> {
    let state = read_state(store)?;
    if let Some(s) = &state {
        crate::plan::check_state_ids(s, registry).map_err(CliError::DamagedIds)?;
    }
    Ok(state)
}

/// A current-thread-free runtime for one command.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

fn kind_of(stack: &Stack, target: &TargetArgs) -> CloudKind {
    target
        .cloud
        .as_deref()
        .and_then(CloudKind::parse)
        .unwrap_or(stack.cloud.kind)
}

/// Builds the provider configuration for the stack's cloud. For the local cloud this starts it in the
/// background when it is not running (and says so on stderr).
pub(crate) fn cloud_config(
    stack: &Stack,
    target: &TargetArgs,
) -> Result<CloudConfig, CloudSetupError> {
    let mut config = kind_config(stack, target)?;
    config.api_versions.extend(stack.cloud.api_versions.clone());
    Ok(config)
}

fn kind_config(stack: &Stack, target: &TargetArgs) -> Result<CloudConfig, CloudSetupError> {
    let c = &stack.cloud;
    match kind_of(stack, target) {
        CloudKind::Local => {
            let dir = match &target.cloud_dir {
                Some(d) => d.clone(),
                None => crate::cloud::default_data_dir().map_err(CloudSetupError::DataDir)?,
            };
            let info = crate::cloud::ensure_running(&dir).map_err(CloudSetupError::LocalStart)?;
            let arm =
                url::Url::parse(&info.arm_endpoint).map_err(CloudSetupError::LocalEndpoint)?;
            // The stack may name its own resource group, workspace and location; the local cloud
            // serves the ones it seeded, so those are used unless the stack says otherwise.
            let mut config = CloudConfig::local(
                arm,
                info.ca_cert.clone(),
                &info.tenant_id,
                &info.client_id,
                Secret::new(info.client_secret.clone()),
                c.subscription.as_deref().unwrap_or(&info.subscription_id),
                c.resource_group.as_deref().unwrap_or(&info.resource_group),
                c.workspace.as_deref().unwrap_or(&info.workspace),
                c.location.as_deref().unwrap_or(&info.location),
            );
            // A cloud that enforces ARM's buckets is paced with the same ones.
            config.pace = crate::cloud::throttle_limits(&info.arm_throttle)
                .ok()
                .flatten();
            Ok(config)
        }
        kind => {
            let need = |v: &Option<String>,
                        field: &'static str,
                        env: &'static str|
             -> Result<String, CloudSetupError> {
                v.clone()
                    .or_else(|| std::env::var(env).ok().filter(|s| !s.is_empty()))
                    .ok_or(CloudSetupError::Missing {
                        kind: kind.as_str(),
                        field,
                        env,
                    })
            };
            let subscription = need(&c.subscription, "subscription", "AZURE_SUBSCRIPTION_ID")?;
            let resource_group = need(&c.resource_group, "resource_group", "AZURE_RESOURCE_GROUP")?;
            let workspace = need(&c.workspace, "workspace", "AZUREML_WORKSPACE")?;
            let location = need(&c.location, "location", "AZURE_LOCATION")?;
            let mut config = if kind == CloudKind::Custom {
                let arm = c
                    .arm_endpoint
                    .as_deref()
                    .ok_or(CloudSetupError::CustomWithoutArmEndpoint)?;
                let arm =
                    url::Url::parse(arm).map_err(|source| CloudSetupError::BadArmEndpoint {
                        url: arm.to_string(),
                        source,
                    })?;
                CloudConfig::custom(arm, &subscription, &resource_group, &workspace, &location)
            } else {
                let pk = match kind {
                    CloudKind::AzureChina => ProviderCloud::AzureChina,
                    CloudKind::AzureUsGovernment => ProviderCloud::AzureUSGovernment,
                    _ => ProviderCloud::Azure,
                };
                CloudConfig::azure(pk, &subscription, &resource_group, &workspace, &location)
                    .map_err(|e| CloudSetupError::Endpoints(Box::new(e)))?
            };
            if let Some(host) = &c.authority_host {
                config.authority_host =
                    Some(url::Url::parse(host).map_err(CloudSetupError::BadAuthorityHost)?);
            }
            config.tenant_id = c.tenant.clone().or(config.tenant_id);
            Ok(config)
        }
    }
}

/// Connects the provider for the stack's cloud, mapping types as `registry` says.
pub(super) async fn connect(
    stack: &Stack,
    registry: &Arc<Registry>,
    target: &TargetArgs,
) -> Result<Arc<AzureProvider>, CliError> {
    // Starting the local cloud blocks (and runs its own small runtime): keep it off the async workers.
    let mut config = tokio::task::block_in_place(|| cloud_config(stack, target))?;
    match target.arm_pace {
        Some(Pace::Off) => config.pace = None,
        Some(Pace::Limits(l)) => config.pace = Some(l),
        None => {}
    }
    let provider = AzureProvider::connect_with(config, registry.clone())
        .await
        .map_err(|e| CloudSetupError::Connect(Box::new(e)))?;
    tracing::debug!(credential = provider.credential_name(), "connected");
    Ok(Arc::new(provider))
}

/// One `-v` line with the requests sent so far (`what`: "refresh done", "run done").
pub(super) fn log_requests(what: &str, sent: &crate::provider::pipeline::RequestTally) {
    tracing::debug!(
        requests = sent.total(),
        arm = sent.arm,
        other = sent.other,
        throttled = sent.throttled,
        "{what}"
    );
}

/// Reads every resource in state (when there is any and `refresh` is on); otherwise plans against the
/// recorded state alone. `registry` holds the specs of the recorded types.
pub(super) async fn snapshot(
    provider: Option<Arc<dyn Provider>>,
    state: Option<StateFile>,
    registry: &Registry,
    parallelism: usize,
    events: &dyn EventSink,
) -> Result<Snapshot, CliError> {
    match (provider, state) {
        (Some(provider), Some(state)) if !state.resources.is_empty() => {
            // The state moves into the snapshot (a copy of a large state is not held beside it).
            let live = apply::refresh_live(provider, &state, registry, parallelism, events).await?;
            Ok(Snapshot {
                state: Some(state),
                live,
            })
        }
        (_, state) => {
            let live = state
                .iter()
                .flat_map(|s| s.resources.keys())
                .map(|a| (a.clone(), Live::NotRefreshed))
                .collect();
            Ok(Snapshot { state, live })
        }
    }
}

/// Hashes the local files the stack names (blob sources, code and model folders).
pub(super) fn extras(loaded: &Loaded) -> Result<DesiredExtras, CliError> {
    plan::content::desired_extras(&loaded.stack, &loaded.registry).map_err(CliError::StackFiles)
}

/// Runs the pure planner. `as_json`: the plan is written as JSON (printed, saved or compared with
/// a saved one), so what stays as it is keeps its values (see [`plan::plan_with`]).
pub(crate) fn make_plan(
    loaded: &Loaded,
    snapshot: &Snapshot,
    extras: &DesiredExtras,
    mode: PlanMode,
    as_json: bool,
) -> Result<Plan, CliError> {
    plan::plan_with(
        &loaded.stack,
        &loaded.graph,
        &loaded.registry,
        snapshot,
        extras,
        mode,
        as_json,
    )
    .map_err(CliError::Plan)
}

/// The state a plan is made against, as the saved-plan check compares it.
pub(crate) fn state_ref(state: Option<&StateFile>) -> Option<plan::StateRef> {
    state.map(|s| plan::StateRef {
        lineage: s.lineage,
        serial: s.serial,
    })
}

/// Puts the moves and imports decided before planning into the plan. The plan stays made against
/// `prior`, the state as read: an import into a stack never applied plans against an in-memory
/// state only, which is not what a saved plan must match.
pub(crate) fn adopted(
    plan: &mut Plan,
    prior: Option<plan::StateRef>,
    moved: Vec<plan::moves::Moved>,
    imports: Vec<plan::moves::PendingImport>,
) {
    plan.prior_state = prior;
    if plan.mode == PlanMode::Normal {
        plan.moved = moved;
        plan.imports = imports;
    }
}

/// Keeps only the changes of `targets` and what they need: their dependencies for a normal plan, their
/// dependents for a destroy (a resource cannot be removed before what uses it). Unknown targets are
/// errors with a suggestion.
pub(crate) fn restrict(plan: &mut Plan, targets: &[String]) -> Result<(), CliError> {
    if targets.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
    for t in targets {
        if !known.contains(&t.as_str()) {
            return Err(CliError::UnknownTarget {
                target: t.clone(),
                hint: Hint::closest(t, known.iter().copied()),
            });
        }
    }
    let mut keep: std::collections::HashSet<String> = targets.iter().cloned().collect();
    let mut frontier: Vec<String> = targets.to_vec();
    while let Some(addr) = frontier.pop() {
        let next: Vec<String> = if plan.mode == PlanMode::Destroy {
            plan.changes
                .iter()
                .filter(|c| c.dependencies.contains(&addr))
                .map(|c| c.address.clone())
                .collect()
        } else {
            plan.change(&addr)
                .map(|c| c.dependencies.clone())
                .unwrap_or_default()
        };
        for n in next {
            if keep.insert(n.clone()) {
                frontier.push(n);
            }
        }
    }
    plan.changes.retain(|c| keep.contains(&c.address));
    plan.drift.retain(|d| keep.contains(&d.address));
    plan.imports.retain(|i| keep.contains(&i.address));
    // A map goes with any of its members (it names them all).
    plan.maps.retain(|m| {
        keep.contains(&m.address) || m.members.iter().any(|x| keep.contains(&x.address))
    });
    plan.summary = crate::plan::Summary::of_plan(plan);
    Ok(())
}

/// Whether the state has resources that need the cloud to refresh.
pub(crate) fn needs_cloud(state: Option<&StateFile>) -> bool {
    state.is_some_and(|s| !s.resources.is_empty())
}

/// `path` relative to the current folder when it is inside it.
pub(super) fn shown(path: &Path) -> String {
    crate::diag::display_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan or destroy of 10,000 resources held the state twice through refresh and planning: the
    /// refresh put a copy of the state it read into the snapshot. The snapshot holds the state it
    /// was given.
    #[tokio::test]
    async fn the_snapshot_holds_the_state_it_was_given_not_a_copy() {
        let registry = Registry::embedded().expect("embedded specs load");
        let provider: Arc<dyn Provider> = Arc::new(crate::apply::memory::MemoryProvider::new());
        let mut state = StateFile::new("t");
        state.record(
            "a",
            crate::state::ResourceState::new(
                "blob_container",
                "mem:/blob_container/a",
                serde_json::json!({"name": "a"}),
                serde_json::json!({}),
            ),
        );
        let at = state.resources["a"].id.as_ptr();
        let snapshot = snapshot(Some(provider), Some(state), &registry, 2, &apply::NoEvents)
            .await
            .expect("refreshed");
        assert_eq!(snapshot.live.len(), 1, "the record was read");
        let kept = snapshot
            .state
            .as_ref()
            .map(|s| s.resources["a"].id.as_ptr());
        assert_eq!(kept, Some(at), "the snapshot's state is the one given");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("soon").map_err(|e| e.to_string()),
            Err("expected a duration such as 30s or 5m, found `soon`".to_string())
        );
        assert_eq!(
            parse_duration("5d").map_err(|e| e.to_string()),
            Err("unknown unit `d` in `5d` (use ms, s, m or h)".to_string())
        );
    }
}
