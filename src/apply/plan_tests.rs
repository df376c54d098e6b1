//! Apply driven by the real planner, on the reference scenario: what apply records must be what the
//! planner expects, and after a rolled-back apply the previous configuration plans no changes.

use std::sync::Arc;

use super::memory::{CallKind, MemoryProvider};
use super::*;
use crate::plan::testing::{blue_inputs, graph_of, scenario, scenario_extras};
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
