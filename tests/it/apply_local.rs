//! The apply engine end to end against the local cloud (started in-process on a loopback port with
//! its own data folder) through the real Azure provider: the reference stack is loaded from
//! `examples/managed-identity`, planned, applied, planned again (no changes), and destroyed; a failing
//! deployment is rolled back to the previous configuration; a role assignment that propagates late
//! is waited for.

use std::sync::Arc;
use std::time::Duration;

use stackform::apply::{
    self, ApplyEvent, ApplyOptions, ApplyPlan, ApplyReport, EventLog, Interrupt, NoEvents, Outcome,
    Persistence, PropagationPolicy,
};
use stackform::cloud::faults::Faults;
use stackform::graph;
use stackform::plan::{self, Plan, PlanMode, Snapshot};
use stackform::provider::{AzureProvider, Provider};
use stackform::specs::Registry;
use stackform::stack::{self, LoadOptions, Stack};
use stackform::state::StateFile;

use crate::support::fixtures::copy_example;
use crate::support::provider::Local;

/// Faults for these tests. Long-running operations take 300 ms: with 0 ms, the local cloud can
/// settle an endpoint's operation between registering it and storing the endpoint (a concurrent
/// request runs `settle_due` in that gap), leaving it `Creating` forever; parallel steps make that
/// likely. Reported to the local cloud's owner.
fn faults() -> Faults {
    Faults {
        retry_after_s: 0,
        lro_ms: 300,
        ..Faults::default()
    }
}

fn registry() -> Registry {
    Registry::embedded().expect("embedded specs")
}

/// The example stack with `suffix` (so global names differ between tests) and optional overrides
/// written into a copy of the example folder.
fn load(dir: &std::path::Path, suffix: &str, edit: impl Fn(String) -> String) -> Stack {
    copy_example("managed-identity", dir);
    let text = std::fs::read_to_string(dir.join("stack.yaml")).expect("read stack");
    std::fs::write(dir.join("stack.yaml"), edit(text)).expect("write stack");
    let opts = LoadOptions {
        vars: vec![(String::from("suffix"), suffix.to_owned())],
        ..LoadOptions::default()
    };
    stack::load(&dir.join("stack.yaml"), &opts, &registry())
        .unwrap_or_else(|d| panic!("stack loads: {d:?}"))
}

fn plan_for(stack: &Stack, snapshot: &Snapshot, mode: PlanMode) -> (Plan, ApplyPlan) {
    let registry = registry();
    let graph = graph::build(stack, &registry).expect("no cycles");
    let extras = plan::content::desired_extras(stack, &registry).expect("content hashes");
    let planned = plan::plan(stack, &graph, &registry, snapshot, &extras, mode)
        .unwrap_or_else(|e| panic!("plan: {e:?}"));
    let steps = ApplyPlan::from_plan(&planned, stack, &registry, &extras);
    (planned, steps)
}

async fn refreshed(provider: &Arc<AzureProvider>, state: &StateFile) -> Snapshot {
    let p: Arc<dyn Provider> = provider.clone();
    apply::refresh(p, state, &registry(), 4, &NoEvents)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e}"))
}

fn options() -> ApplyOptions {
    ApplyOptions {
        parallelism: 4,
        propagation: PropagationPolicy {
            timeout: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(2),
        },
        ..ApplyOptions::default()
    }
}

async fn run(
    provider: &Arc<AzureProvider>,
    steps: &ApplyPlan,
    state: StateFile,
    events: &EventLog,
) -> ApplyReport {
    apply::apply(
        steps,
        state,
        Persistence::in_memory(),
        provider.clone(),
        &registry(),
        options(),
        Arc::new(events.clone()),
        Interrupt::new(),
    )
    .await
    .expect("plan is executable")
}

/// Plans `stack` against an empty cloud and applies it; asserts the run succeeded.
async fn create_all(
    provider: &Arc<AzureProvider>,
    stack: &Stack,
    events: &EventLog,
) -> ApplyReport {
    let (_, steps) = plan_for(stack, &Snapshot::default(), PlanMode::Normal);
    let report = run(provider, &steps, StateFile::new(&stack.name), events).await;
    assert_eq!(
        report.summary.outcome,
        Outcome::Succeeded,
        "{:#?}",
        report.summary
    );
    report
}

fn pending(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| !c.action.is_noop())
        .map(|c| format!("{} {}", c.action.as_str(), c.address))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_stack_applies_plans_clean_and_destroys() {
    let local = Local::start(faults()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = load(dir.path(), "e2e1", |t| t);

    let created = create_all(&local.provider, &stack, &EventLog::new()).await;
    let state = created.state;
    assert_eq!(state.resources.len(), 6);
    assert!(
        state.outputs["scoring_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    assert_eq!(
        state.resources["reader"].inputs["principal_id"],
        state.resources["endpoint"].outputs["identity"]["principal_id"]
    );

    let snapshot = refreshed(&local.provider, &state).await;
    let (again, _) = plan_for(&stack, &snapshot, PlanMode::Normal);
    assert!(pending(&again).is_empty(), "{:?}", pending(&again));

    let (_, destroy) = plan_for(&stack, &snapshot, PlanMode::Destroy);
    let destroyed = run(&local.provider, &destroy, state.clone(), &EventLog::new()).await;
    assert_eq!(
        destroyed.summary.outcome,
        Outcome::Succeeded,
        "{:#?}",
        destroyed.summary
    );
    assert!(destroyed.state.resources.is_empty());
    let after = refreshed(&local.provider, &state).await;
    assert!(
        after.live.values().all(|l| matches!(l, plan::Live::Gone)),
        "{:?}",
        after.live
    );
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_deployment_is_rolled_back_to_the_previous_configuration() {
    let local = Local::start(faults()).await;
    // v1: everything but the deployment.
    let dir1 = tempfile::tempdir().expect("temp dir");
    let v1 = load(dir1.path(), "e2e2", without_deployment);
    let v1_state = create_all(&local.provider, &v1, &EventLog::new())
        .await
        .state;

    // v2 adds the deployment, whose init() reads a blob that does not exist: it fails.
    let dir2 = tempfile::tempdir().expect("temp dir");
    let v2 = load(dir2.path(), "e2e2", |t| {
        t.replace("FILE_NAME: ${greeting.name}", "FILE_NAME: missing.txt")
    });
    let (_, steps) = plan_for(
        &v2,
        &refreshed(&local.provider, &v1_state).await,
        PlanMode::Normal,
    );
    let events = EventLog::new();
    let failed = run(&local.provider, &steps, v1_state.clone(), &events).await;
    assert_eq!(
        failed.summary.outcome,
        Outcome::RolledBack,
        "{:#?}",
        failed.summary
    );
    let failure = failed.summary.failure.as_ref().expect("a failure");
    assert_eq!(failure.address, "blue");
    assert!(
        failed.summary.not_restored.is_empty(),
        "{:?}",
        failed.summary.not_restored
    );
    assert!(
        events
            .events()
            .iter()
            .any(|e| matches!(e, ApplyEvent::RollbackStarted { .. }))
    );

    // The previous configuration plans no changes against what the rollback left.
    let snapshot = refreshed(&local.provider, &failed.state).await;
    let (after, _) = plan_for(&v1, &snapshot, PlanMode::Normal);
    assert!(pending(&after).is_empty(), "{:?}", pending(&after));
    local.stop().await;
}

fn without_deployment(text: String) -> String {
    let start = text.find("  blue:").expect("blue in the example");
    let end = text.find("outputs:").expect("outputs in the example");
    let mut out = String::new();
    out.push_str(&text[..start]);
    out.push_str(&text[end..]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_waits_for_its_role_assignment_to_propagate() {
    let local = Local::start(Faults {
        // Long enough to be met even on a loaded machine: at 8 s, a run beside a dozen other
        // tests started the deployment's scoring process only after the propagation was over.
        role_propagation_s: 20.0,
        ..faults()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = load(dir.path(), "e2e3", |t| t);
    let events = EventLog::new();
    create_all(&local.provider, &stack, &events).await;
    let waits = events
        .events()
        .into_iter()
        .filter(
            |e| matches!(e, ApplyEvent::WaitingForPropagation { address, .. } if address == "blue"),
        )
        .count();
    assert!(waits >= 1, "no propagation wait was needed");
    local.stop().await;
}
