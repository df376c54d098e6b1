//! What belongs to another state, found before anything is changed:
//!
//! * a state file of another cloud (its subscription or tenant is not the one this run reaches) is
//!   refused with one error naming both, before any request that would answer 403 or 404 for each of
//!   its resources;
//! * objects a plan would create that already exist under the names the stack gives them, found
//!   when the stack's state knows no resources (the state was not found: another state folder,
//!   another `--env`, another `stack:` name), are named in the plan with the commands that adopt
//!   them, and stop `apply` before its first step.
//!
//! It never changes the cloud or the state: it reads, and returns what it found.
use std::collections::{HashMap, HashSet};
use std::path::Path;

use futures::StreamExt;
use serde_json::{Map, Value};

use super::common::StackArgs;
use super::engine::{Loaded, TargetArgs, shown};
use super::error::CliError;
use crate::plan::{Action, Change, Plan, PlanValue};
use crate::provider::{CloudConfig, Provider, ResourceRequest, ResourceType};
use crate::state::{CloudBinding, StateFile};

/// The cloud this run reaches, as a state records it.
pub(crate) fn binding(config: &CloudConfig) -> CloudBinding {
    CloudBinding {
        subscription: config.subscription_id.clone(),
        tenant: current_tenant(config),
    }
}

/// The tenant the run signs in to, when it is named: the local cloud's, `cloud.tenant`, or
/// `AZURE_TENANT_ID` (an Azure CLI login's tenant is not known without asking, so it is not compared).
fn current_tenant(config: &CloudConfig) -> Option<String> {
    config.tenant_id.clone().or_else(|| {
        std::env::var("AZURE_TENANT_ID")
            .ok()
            .filter(|t| !t.is_empty())
    })
}

/// Refuses a state whose resources live in another subscription or tenant than the one `config`
/// reaches.
pub(crate) fn check_cloud(
    path: &Path,
    state: &StateFile,
    config: &CloudConfig,
) -> Result<(), CliError> {
    let Some(subscription) = state.subscription() else {
        return Ok(());
    };
    let recorded = CloudBinding {
        subscription,
        tenant: state.cloud.as_ref().and_then(|b| b.tenant.clone()),
    };
    let current = binding(config);
    let other_sub = !recorded
        .subscription
        .eq_ignore_ascii_case(&current.subscription);
    let other_tenant = match (&recorded.tenant, &current.tenant) {
        (Some(a), Some(b)) => !a.eq_ignore_ascii_case(b),
        _ => false,
    };
    if other_sub || other_tenant {
        return Err(CliError::ForeignState {
            state_file: shown(path),
            recorded: describe(&recorded),
            current: describe(&current),
        });
    }
    Ok(())
}

fn describe(b: &CloudBinding) -> String {
    match &b.tenant {
        Some(t) => format!("subscription {} (tenant {t})", b.subscription),
        None => format!("subscription {}", b.subscription),
    }
}

/// An object a plan would create that already exists in the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Existing {
    pub address: String,
    pub type_name: String,
    pub id: String,
}

/// The objects `plan` would create that already exist, read through `provider` (at most
/// `parallelism` reads at once), in plan order. Only when `state` knows no resources: with a state
/// that knows the stack, an unknown object is someone else's and the create says so.
///
/// Objects are asked about in waves, in dependency order, and one whose prerequisite the plan also
/// creates and was found absent is not asked about (a container cannot exist in an account that does
/// not): a new stack costs one read per object it starts from (its storage accounts, endpoints), not
/// one per object. Types whose spec adopts an existing object (`arm.adopt_existing`) are left out, as
/// is a create whose identifying inputs are known only after apply; a read that fails is left to
/// apply, whose create checks again. The creates in `free` are known absent without a read (the
/// preflight found their globally unique names free: `preflight::cloud::free_names`).
pub(crate) async fn existing_objects(
    provider: &dyn Provider,
    loaded: &Loaded,
    state: Option<&StateFile>,
    plan: &Plan,
    parallelism: usize,
    free: &HashSet<String>,
) -> Vec<Existing> {
    if state.is_some_and(|s| !s.resources.is_empty()) {
        return Vec::new();
    }
    // Creates in the plan's (topological) order, each with its wave: one more than its latest
    // prerequisite that is created too.
    let mut wave_of: HashMap<&str, usize> = HashMap::new();
    let mut creates: Vec<(&Change, usize)> = Vec::new();
    for c in plan.changes.iter().filter(|c| c.action == Action::Create) {
        let wave = c
            .dependencies
            .iter()
            .filter_map(|d| wave_of.get(d.as_str()))
            .max()
            .map_or(0, |w| w + 1);
        wave_of.insert(&c.address, wave);
        creates.push((c, wave));
    }
    let waves = creates.iter().map(|(_, w)| w + 1).max().unwrap_or(0);
    let mut absent: HashSet<&str> = HashSet::new();
    let mut found = Vec::new();
    for wave in 0..waves {
        let mut requests = Vec::new();
        for (c, _) in creates.iter().filter(|(_, w)| *w == wave) {
            if free.contains(&c.address)
                || c.dependencies.iter().any(|d| absent.contains(d.as_str()))
            {
                absent.insert(&c.address);
                continue;
            }
            if let Some(req) = probe_request(loaded, c) {
                requests.push(req);
            }
        }
        let answers: Vec<(String, Option<Existing>)> = futures::stream::iter(requests)
            .map(|req| async move {
                let answer = match provider.read(&req).await {
                    Ok(Some(observed)) => Some(Some(Existing {
                        address: req.address.clone(),
                        type_name: req.resource_type.as_str().to_string(),
                        id: observed.id,
                    })),
                    Ok(None) => Some(None),
                    Err(e) => {
                        tracing::debug!(address = %req.address, error = %e, "could not check whether it exists");
                        None
                    }
                };
                answer.map(|a| (req.address, a))
            })
            .buffer_unordered(parallelism.max(1))
            .filter_map(|a| async move { a })
            .collect()
            .await;
        for (address, answer) in answers {
            match answer {
                Some(e) => found.push(e),
                None => {
                    if let Some((c, _)) = creates.iter().find(|(c, _)| c.address == address) {
                        absent.insert(&c.address);
                    }
                }
            }
        }
    }
    let order = |a: &str| plan.changes.iter().position(|c| c.address == a);
    found.sort_by_key(|e: &Existing| order(&e.address));
    found
}

/// The read that finds a planned create's object by its known inputs, when its type is one to ask.
fn probe_request(loaded: &Loaded, c: &Change) -> Option<ResourceRequest> {
    let spec = loaded.registry.get(&c.type_name)?;
    if spec.arm.adopt_existing {
        return None;
    }
    let rtype = ResourceType::parse(&c.type_name)?;
    Some(ResourceRequest::new(
        rtype,
        c.address.clone(),
        known_inputs(c.after.as_ref()?),
    ))
}

/// The inputs of a planned value that are known now (a name, an account), as a request's inputs.
fn known_inputs(after: &PlanValue) -> Map<String, Value> {
    match after {
        PlanValue::Known(Value::Object(m)) => m.clone(),
        PlanValue::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.known()?.clone())))
            .collect(),
        _ => Map::new(),
    }
}

/// The flags that point a command at the same stack and state as this run (`-f`, `--env`,
/// `--state-dir`, `--state`), for the commands the report suggests.
fn same_stack_flags(stack: &StackArgs, target: &TargetArgs) -> String {
    let mut flags = String::new();
    if stack.file != Path::new("stack.yaml") {
        flags.push_str(&format!(" -f {}", shown(&stack.file)));
    }
    if let Some(env) = &stack.env {
        flags.push_str(&format!(" --env {env}"));
    }
    if let Some(dir) = &target.state_dir {
        flags.push_str(&format!(" --state-dir {}", shown(dir)));
    }
    if let Some(file) = &target.state {
        flags.push_str(&format!(" --state {}", shown(file)));
    }
    flags
}

/// The report on `found` for this run: [`render_existing`] with the flags that reach the same stack
/// and the state files nearby that record the objects.
pub(crate) fn report_existing(
    found: &[Existing],
    loaded: &Loaded,
    stack: &StackArgs,
    target: &TargetArgs,
) -> String {
    if found.is_empty() {
        return String::new();
    }
    let (folder, _) = super::place::state_folder(stack, target.state_dir.as_deref());
    let owners = recorded_in(found, &[folder, "state".into()], loaded.store.path());
    render_existing(
        found,
        &loaded.stack.name,
        loaded.store.path(),
        &same_stack_flags(stack, target),
        &owners,
    )
}

/// The state files in `folders` and their environments' folders (other than `skip`) that record
/// one of `found`'s ids, shown as paths: the state the objects most likely belong to. Files that
/// cannot be read as state are passed over.
fn recorded_in(found: &[Existing], folders: &[std::path::PathBuf], skip: &Path) -> Vec<String> {
    let skip = std::fs::canonicalize(skip).ok();
    let mut seen = HashSet::new();
    let mut owners = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for folder in folders {
        dirs.push(folder.clone());
        if let Ok(envs) = std::fs::read_dir(folder.join("env")) {
            dirs.extend(envs.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            let Ok(real) = std::fs::canonicalize(&path) else {
                continue;
            };
            if path.extension().is_none_or(|x| x != "json")
                || Some(&real) == skip.as_ref()
                || !seen.insert(real)
            {
                continue;
            }
            let Ok(Some(state)) = crate::state::StateStore::new(&path).read() else {
                continue;
            };
            let records = |e: &Existing| {
                state
                    .resources
                    .values()
                    .any(|r| r.id.eq_ignore_ascii_case(&e.id))
            };
            if found.iter().any(records) {
                owners.push(format!("{} (stack `{}`)", shown(&path), state.stack));
            }
        }
    }
    owners.sort();
    owners
}

/// The report of [`existing_objects`]: what exists, why this state does not know it (`owners`: the
/// state files found that record them), and the commands that adopt each object. Empty when
/// nothing was found.
fn render_existing(
    found: &[Existing],
    stack_name: &str,
    state_file: &Path,
    flags: &str,
    owners: &[String],
) -> String {
    if found.is_empty() {
        return String::new();
    }
    let width = found
        .iter()
        .map(|e| e.address.len() + e.type_name.len() + 3)
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "\nWarning: {} object(s) this plan would create already exist in the cloud under the names the stack gives them:\n",
        found.len()
    );
    for e in found {
        let what = format!("{} ({})", e.address, e.type_name);
        out.push_str(&format!("  {what:<width$}  {}\n", e.id));
    }
    out.push_str(&format!(
        "The state of stack `{stack_name}` ({}) does not know them, so apply would fail to create them.\n",
        shown(state_file)
    ));
    if owners.is_empty() {
        out.push_str(
            "Likely cause: they were created with another state:\n  \
- another state folder (--state-dir, STACKFORM_STATE_DIR, or `state/` where an earlier run started),\n  \
- another --env, or another `stack:` name.\n\
Run with that state, or adopt them into this one:\n",
        );
    } else {
        out.push_str(&format!(
            "Likely cause: another state records them: {}.\nRun with that state (--state FILE), or adopt them into this one:\n",
            owners.join(", ")
        ));
    }
    for e in found {
        out.push_str(&format!(
            "  stackform state import{flags} {} {} --take-over\n",
            e.address, e.id
        ));
    }
    out
}

/// `plan --json`'s list of [`Existing`] objects.
pub(crate) fn existing_json(found: &[Existing]) -> Value {
    Value::Array(
        found
            .iter()
            .map(|e| serde_json::json!({ "address": e.address, "type": e.type_name, "id": e.id }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_object_and_the_command_that_adopts_it() {
        let found = vec![
            Existing {
                address: "store".into(),
                type_name: "storage_account".into(),
                id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/mistore".into(),
            },
            Existing {
                address: "endpoint".into(),
                type_name: "online_endpoint".into(),
                id: "/subscriptions/s/x/onlineEndpoints/ep".into(),
            },
        ];
        let text = render_existing(
            &found,
            "demo",
            Path::new("ux-mine/state/demo.json"),
            " -f ux-mine/stack.yaml",
            &[],
        );
        assert!(
            text.contains("2 object(s) this plan would create already exist"),
            "{text}"
        );
        assert!(text.contains("ux-mine/state/demo.json"), "{text}");
        assert!(text.contains("another state folder"), "{text}");
        assert!(
            text.contains("stackform state import -f ux-mine/stack.yaml store /subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/mistore --take-over\n"),
            "{text}"
        );
        assert!(render_existing(&[], "demo", Path::new("x"), "", &[]).is_empty());
        let owned = render_existing(
            &found,
            "demo",
            Path::new("x"),
            "",
            &["team/state/old.json (stack `old`)".to_string()],
        );
        assert!(
            owned.contains("another state records them: team/state/old.json (stack `old`)"),
            "{owned}"
        );
    }

    #[test]
    fn only_the_known_inputs_identify_an_object() {
        let mut entries = indexmap::IndexMap::new();
        entries.insert("name".to_string(), PlanValue::Known(Value::from("c")));
        entries.insert("account".to_string(), PlanValue::Unknown);
        let inputs = known_inputs(&PlanValue::Map(entries));
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs["name"], "c");
    }
}
