//! Apply driven by the real planner, on the reference scenario: what apply records must be what the
//! planner expects, and after a rolled-back apply the previous configuration plans no changes.

use std::sync::Arc;

use super::memory::{CallKind, MemoryProvider};
use super::*;
use crate::plan::testing::{
    blue_inputs, deployment_inputs, graph_of, green_only, scenario, scenario_extras,
};
use crate::plan::{self, DesiredExtras, Plan, PlanMode, Snapshot};
use crate::provider::{ErrorKind, ProviderError};
use crate::specs::Registry;
use crate::stack::Stack;
use crate::state::StateFile;

fn registry() -> Registry {
    Registry::embedded().expect("embedded specs load")
}

fn plan_for(stack: &Stack, snapshot: &Snapshot, extras: &DesiredExtras, mode: PlanMode) -> Plan {
    plan::plan(stack, &graph_of(stack), &registry(), snapshot, extras, mode)
        .unwrap_or_else(|e| panic!("planning failed: {e:?}"))
}

async fn refreshed(provider: &Arc<MemoryProvider>, state: &StateFile) -> Snapshot {
    refresh(provider.clone(), state, &registry(), 4, &NoEvents)
        .await
        .expect("refresh")
}

async fn execute(
    plan: &Plan,
    stack: &Stack,
    extras: &DesiredExtras,
    state: StateFile,
    provider: &Arc<MemoryProvider>,
) -> ApplyReport {
    let steps = ApplyPlan::from_plan(plan, stack, &registry(), extras);
    apply(
        &steps,
        state,
        Persistence::in_memory(),
        provider.clone(),
        &registry(),
        ApplyOptions::default(),
        Arc::new(NoEvents),
        Interrupt::new(),
    )
    .await
    .expect("plan is executable")
}

fn changes(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| !c.action.is_noop())
        .map(|c| format!("{} {}", c.action.as_str(), c.address))
        .chain(
            plan.outputs
                .iter()
                .filter(|o| !o.action.is_noop())
                .map(|o| format!("output {}", o.name)),
        )
        .collect()
}

#[tokio::test]
async fn what_apply_records_plans_no_changes_and_a_rollback_restores_it() {
    let provider = Arc::new(MemoryProvider::new());
    let v1 = scenario().build();
    let extras = scenario_extras("hello");

    // Create everything.
    let first = plan_for(&v1, &Snapshot::default(), &extras, PlanMode::Normal);
    assert_eq!(changes(&first).len(), 6 + 3, "{:?}", changes(&first));
    let created = execute(&first, &v1, &extras, StateFile::new(&v1.name), &provider).await;
    assert_eq!(created.summary.outcome, Outcome::Succeeded);
    let v1_state = created.state;
    let again = plan_for(
        &v1,
        &refreshed(&provider, &v1_state).await,
        &extras,
        PlanMode::Normal,
    );
    assert!(!again.has_changes(), "{:?}", changes(&again));

    // v2 changes the deployment and the container; the deployment fails: everything goes back.
    let mut builder = scenario();
    builder = builder.res("blue", "online_deployment", blue_inputs("debug"));
    let v2 = builder.build();
    let second = plan_for(
        &v2,
        &refreshed(&provider, &v1_state).await,
        &extras,
        PlanMode::Normal,
    );
    assert!(second.has_resource_changes(), "{:?}", changes(&second));
    provider.fail_times(
        CallKind::Update,
        "blue",
        ProviderError::new(ErrorKind::Failed, "init() failed").with_code("DeploymentFailed"),
        1,
    );
    let failed = execute(&second, &v2, &extras, v1_state.clone(), &provider).await;
    assert_eq!(failed.summary.outcome, Outcome::RolledBack);
    assert!(
        failed.summary.not_restored.is_empty(),
        "{:?}",
        failed.summary.not_restored
    );
    let after = plan_for(
        &v1,
        &refreshed(&provider, &failed.state).await,
        &extras,
        PlanMode::Normal,
    );
    assert!(!after.has_changes(), "{:?}", changes(&after));
    assert!(!after.has_drift(), "{:?}", after.drift);
}

#[tokio::test]
async fn a_destroy_plan_removes_everything_in_reverse_order() {
    let provider = Arc::new(MemoryProvider::new());
    let stack = scenario().build();
    let extras = scenario_extras("hello");
    let first = plan_for(&stack, &Snapshot::default(), &extras, PlanMode::Normal);
    let created = execute(
        &first,
        &stack,
        &extras,
        StateFile::new(&stack.name),
        &provider,
    )
    .await;
    provider.clear_log();
    let destroy = plan_for(
        &stack,
        &refreshed(&provider, &created.state).await,
        &extras,
        PlanMode::Destroy,
    );
    let report = execute(&destroy, &stack, &extras, created.state, &provider).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    assert!(report.state.resources.is_empty());
    assert!(report.state.outputs.is_empty());
    assert!(provider.objects().is_empty());
    let deletes = provider.started(CallKind::Delete);
    assert_eq!(deletes.first().map(String::as_str), Some("blue"));
    assert_eq!(deletes.last().map(String::as_str), Some("store"));
}

/// Where in the provider's log the call `kind` on `address` starts (`start`) or ends.
fn at(log: &[memory::Call], kind: CallKind, address: &str, start: bool) -> usize {
    log.iter()
        .position(|c| c.kind == kind && c.address == address && c.start == start)
        .unwrap_or_else(|| panic!("no {kind:?} of {address} in {log:#?}"))
}

fn succeeded(report: &ApplyReport) {
    assert_eq!(
        report.summary.outcome,
        Outcome::Succeeded,
        "{:?}",
        report.summary.failure
    );
}

fn traffic_of(provider: &MemoryProvider) -> std::collections::BTreeMap<String, u64> {
    provider.map(
        crate::provider::ResourceType::OnlineEndpoint,
        "my-sai-endpoint-7f3a",
    )
}

fn shares(entries: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Blue/green through the planner and the engine, against a provider that keeps the endpoint's map
/// as Azure does (whole, adding up to 100 or 0, naming existing deployments, no delete while a
/// deployment has a share): each step succeeds in one run, the map is set once per step after the
/// creates and before the deletes, a failed step puts the previous map back, and destroy empties it.
#[tokio::test]
async fn blue_green_moves_traffic_in_one_map_step_per_run() {
    let provider = Arc::new(MemoryProvider::new());
    let extras = scenario_extras("hello");
    let run = async |stack: &Stack, state: StateFile| {
        let snapshot = refreshed(&provider, &state).await;
        let plan = plan_for(stack, &snapshot, &extras, PlanMode::Normal);
        provider.clear_log();
        execute(&plan, stack, &extras, state, &provider).await
    };
    let v1 = scenario().build();
    let done = run(&v1, StateFile::new(&v1.name)).await;
    assert_eq!(done.summary.outcome, Outcome::Succeeded);
    assert_eq!(traffic_of(&provider), shares(&[("blue", 100)]));

    // blue 50 / green 50: green is created (at 0), then the whole map is set once.
    let v2 = scenario()
        .res("blue", "online_deployment", deployment_inputs("blue", 50))
        .res("green", "online_deployment", deployment_inputs("green", 50))
        .build();
    let done = run(&v2, done.state).await;
    succeeded(&done);
    let log = provider.log();
    assert!(
        at(&log, CallKind::Create, "green", false)
            < at(&log, CallKind::SetMap, "endpoint.traffic", true)
    );
    assert_eq!(provider.count(CallKind::SetMap), 1);
    assert_eq!(
        provider.count(CallKind::Update),
        0,
        "a share alone never updates blue"
    );
    assert_eq!(
        traffic_of(&provider),
        shares(&[("blue", 50), ("green", 50)])
    );
    assert_eq!(done.state.resources["green"].inputs["traffic"], 50);

    // green 100 and blue removed, in one run: the map is set before blue's delete. The delete fails
    // once: the rollback re-creates nothing (blue was not deleted) and puts the previous map back.
    let v3 = green_only(100);
    provider.fail_times(
        CallKind::Delete,
        "blue",
        ProviderError::new(ErrorKind::Failed, "the delete failed"),
        1,
    );
    let failed = run(&v3, done.state.clone()).await;
    assert_eq!(failed.summary.outcome, Outcome::RolledBack);
    assert!(
        failed.summary.not_restored.is_empty(),
        "{:?}",
        failed.summary.not_restored
    );
    assert_eq!(
        traffic_of(&provider),
        shares(&[("blue", 50), ("green", 50)])
    );
    let log = provider.log();
    let sets: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == CallKind::SetMap && c.start)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(sets.len(), 2, "the map, then its rollback");
    assert!(sets[0] < at(&log, CallKind::Delete, "blue", true));
    let again = plan_for(
        &v2,
        &refreshed(&provider, &failed.state).await,
        &extras,
        PlanMode::Normal,
    );
    assert!(
        !again.has_changes(),
        "{:?} {:#?}",
        changes(&again),
        again.maps
    );

    let done = run(&v3, failed.state).await;
    succeeded(&done);
    let log = provider.log();
    assert!(
        at(&log, CallKind::SetMap, "endpoint.traffic", false)
            < at(&log, CallKind::Delete, "blue", true)
    );
    assert_eq!(traffic_of(&provider), shares(&[("green", 100)]));

    // Destroy: the map is emptied before green's delete.
    let destroy = plan_for(
        &v3,
        &refreshed(&provider, &done.state).await,
        &extras,
        PlanMode::Destroy,
    );
    provider.clear_log();
    let report = execute(&destroy, &v3, &extras, done.state, &provider).await;
    succeeded(&report);
    let log = provider.log();
    assert!(
        at(&log, CallKind::SetMap, "endpoint.traffic", false)
            < at(&log, CallKind::Delete, "green", true)
    );
    assert!(provider.objects().is_empty());
}
