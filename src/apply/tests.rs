//! Engine tests against the in-memory provider.
//!
//! Most use the reference stack (arrows: "is needed by"):
//!
//! ```text
//!   store ──► data ──► greeting ──┐
//!     │  └──────────────┴────────►│
//!     ├──► reader ◄── endpoint    ▼
//!     │      └───────────┴─────► blue
//!     └────────────────────────► blue
//! ```

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Value, json};

use super::memory::{CallKind, MemoryProvider};
use super::steps::{deposed_key, literal_expr};
use super::*;
use crate::diag::{SourceFile, Span};
use crate::plan::{Action, ReplaceOrder};
use crate::provider::{ErrorKind, Provider, ProviderError};
use crate::specs::Registry;
use crate::stack::{Expr, ExprKind, Loc, Reference, TemplatePart};
use crate::state::{ResourceStatus, StateFile, StateStore};

fn registry() -> Registry {
    Registry::embedded().expect("embedded specs load")
}

fn loc() -> Loc {
    Loc {
        source: SourceFile::new("test.yaml", ""),
        span: Span::new(0, 0),
    }
}

fn lit(v: Value) -> Expr {
    literal_expr(&v)
}

fn reference(resource: &str, path: &str) -> Expr {
    Expr {
        kind: ExprKind::Ref(Reference {
            resource: resource.to_owned(),
            path: path.to_owned(),
            loc: loc(),
        }),
        loc: loc(),
        sensitive: false,
    }
}

fn template(prefix: &str, resource: &str, path: &str) -> Expr {
    Expr {
        kind: ExprKind::Template(vec![
            TemplatePart::Text(prefix.to_owned()),
            TemplatePart::Ref(Reference {
                resource: resource.to_owned(),
                path: path.to_owned(),
                loc: loc(),
            }),
        ]),
        loc: loc(),
        sensitive: false,
    }
}

fn step(
    address: &str,
    resource_type: &str,
    action: Action,
    inputs: Vec<(&str, Expr)>,
    deps: &[&str],
) -> PlannedStep {
    PlannedStep {
        address: address.to_owned(),
        resource_type: resource_type.to_owned(),
        action,
        desired: Some(Desired {
            inputs: inputs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            dependencies: deps.iter().map(|d| (*d).to_owned()).collect(),
            content_hash: None,
            sensitive: Vec::new(),
        }),
    }
}

/// The reference stack, every resource with `action` (the container's `public_access` varies so
/// tests can plan an update of it).
fn reference_stack(action: Action, access: &str) -> Vec<PlannedStep> {
    vec![
        step(
            "store",
            "storage_account",
            action,
            vec![
                ("name", lit(json!("mistore7f3a"))),
                ("sku", lit(json!("Standard_LRS"))),
            ],
            &[],
        ),
        step(
            "data",
            "blob_container",
            action,
            vec![
                ("account", reference("store", "name")),
                ("name", lit(json!("hello"))),
                ("public_access", lit(json!(access))),
            ],
            &["store"],
        ),
        step(
            "greeting",
            "blob",
            action,
            vec![
                ("account", reference("store", "name")),
                ("container", reference("data", "name")),
                ("name", lit(json!("hello.txt"))),
            ],
            &["store", "data"],
        ),
        step(
            "endpoint",
            "online_endpoint",
            action,
            vec![
                ("name", lit(json!("my-sai-endpoint"))),
                ("auth_mode", lit(json!("key"))),
            ],
            &[],
        ),
        step(
            "reader",
            "role_assignment",
            action,
            vec![
                (
                    "principal_id",
                    reference("endpoint", "identity.principal_id"),
                ),
                ("role", lit(json!("Storage Blob Data Reader"))),
                ("scope", reference("store", "id")),
            ],
            &["endpoint", "store"],
        ),
        step(
            "blue",
            "online_deployment",
            action,
            vec![
                ("name", lit(json!("blue"))),
                ("endpoint", reference("endpoint", "name")),
                ("traffic", lit(json!(100))),
                (
                    "environment_variables",
                    Expr {
                        kind: ExprKind::Map(IndexMap::from([
                            (
                                String::from("STORAGE_ACCOUNT_NAME"),
                                reference("store", "name"),
                            ),
                            (
                                String::from("STORAGE_BLOB_ENDPOINT"),
                                reference("store", "primary_blob_endpoint"),
                            ),
                            (
                                String::from("BLOB_URL"),
                                template("blob at ", "greeting", "id"),
                            ),
                        ])),
                        loc: loc(),
                        sensitive: false,
                    },
                ),
            ],
            &["endpoint", "store", "data", "greeting", "reader"],
        ),
    ]
}

fn plan_of(steps: Vec<PlannedStep>) -> ApplyPlan {
    ApplyPlan {
        steps,
        maps: Vec::new(),
        outputs: IndexMap::from([(
            String::from("scoring_uri"),
            reference("endpoint", "scoring_uri"),
        )]),
        ..ApplyPlan::default()
    }
}

fn options(parallelism: usize) -> ApplyOptions {
    ApplyOptions {
        parallelism,
        propagation: PropagationPolicy {
            timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        },
        ..ApplyOptions::default()
    }
}

async fn run_with(
    plan: &ApplyPlan,
    state: StateFile,
    provider: &Arc<MemoryProvider>,
    options: ApplyOptions,
) -> (ApplyReport, Vec<ApplyEvent>) {
    let log = EventLog::new();
    let report = apply(
        plan,
        state,
        Persistence::in_memory(),
        provider.clone(),
        &registry(),
        options,
        Arc::new(log.clone()),
        Interrupt::new(),
    )
    .await
    .expect("plan is valid");
    (report, log.events())
}

/// Applies the whole reference stack and returns the provider and the state.
async fn created_reference_stack() -> (Arc<MemoryProvider>, StateFile) {
    let provider = Arc::new(MemoryProvider::new());
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let (report, _) = run_with(&plan, StateFile::new("t"), &provider, options(4)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    provider.clear_log();
    (provider, report.state)
}

fn position(log: &[memory::Call], kind: CallKind, address: &str, start: bool) -> usize {
    log.iter()
        .position(|c| c.kind == kind && c.address == address && c.start == start)
        .unwrap_or_else(|| panic!("no {kind:?} {address} start={start} in {log:?}"))
}

/// `first`'s call of `kind` ended before `then`'s call of `then_kind` started.
fn ended_before(
    log: &[memory::Call],
    kind: CallKind,
    first: &str,
    then_kind: CallKind,
    then: &str,
) -> bool {
    position(log, kind, first, false) < position(log, then_kind, then, true)
}

fn cloud_error(code: &str) -> ProviderError {
    let mut e = ProviderError::new(ErrorKind::Failed, "the operation failed").with_code(code);
    e.request_id = Some(String::from("req-42"));
    e
}

/// The inputs every resource of `plan` should have in state, resolved against `state`.
fn assert_state_matches(plan: &ApplyPlan, state: &StateFile) {
    let expected = expected_from_plan(plan, state);
    assert_eq!(
        state.resources.len(),
        plan.steps.len(),
        "extra or missing records: {:?}",
        state.resources.keys().collect::<Vec<_>>()
    );
    for s in &plan.steps {
        let record = &state.resources[&s.address];
        assert_eq!(record.status, ResourceStatus::Ready, "{}", s.address);
        assert_eq!(
            record.inputs,
            Value::Object(expected[&s.address].inputs.clone()),
            "{}",
            s.address
        );
    }
}

#[tokio::test]
async fn creates_follow_dependencies_and_use_values_computed_by_the_cloud() {
    let provider = Arc::new(MemoryProvider::new());
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let (report, _) = run_with(&plan, StateFile::new("t"), &provider, options(4)).await;
    let state = report.state;
    let log = provider.log();
    use CallKind::Create as C;
    for (dep, user) in [
        ("store", "data"),
        ("store", "greeting"),
        ("data", "greeting"),
        ("endpoint", "reader"),
        ("store", "reader"),
        ("reader", "blue"),
        ("greeting", "blue"),
        ("endpoint", "blue"),
    ] {
        assert!(ended_before(&log, C, dep, C, user), "{dep} before {user}");
    }
    let endpoint = &state.resources["endpoint"];
    let principal = endpoint.outputs["identity"]["principal_id"].clone();
    assert!(
        principal.as_str().is_some_and(|p| !p.is_empty()),
        "{principal}"
    );
    assert_eq!(state.resources["reader"].inputs["principal_id"], principal);
    assert_eq!(
        state.resources["reader"].inputs["scope"],
        json!(state.resources["store"].id)
    );
    let blue = &state.resources["blue"];
    assert_eq!(
        blue.inputs["environment_variables"]["STORAGE_BLOB_ENDPOINT"],
        state.resources["store"].outputs["primary_blob_endpoint"]
    );
    assert_eq!(
        blue.inputs["environment_variables"]["BLOB_URL"],
        json!(format!("blob at {}", state.resources["greeting"].id))
    );
    assert_eq!(
        blue.dependencies,
        vec!["endpoint", "store", "data", "greeting", "reader"]
    );
    assert_eq!(
        state.outputs["scoring_uri"],
        endpoint.outputs["scoring_uri"]
    );
    assert_eq!(provider.objects().len(), 6);
}

#[tokio::test]
async fn independent_steps_run_in_parallel_up_to_the_limit() {
    // On the single-threaded test runtime every started step reaches its (simulated) latency
    // before any timer fires, so the number running at once is exactly the limit.
    for limit in [1, 4, 7] {
        let provider = Arc::new(MemoryProvider::new().with_latency(Duration::from_millis(2)));
        let steps: Vec<PlannedStep> = (0..24)
            .map(|i| {
                step(
                    &format!("c{i}"),
                    "blob_container",
                    Action::Create,
                    vec![("name", lit(json!(format!("c{i}"))))],
                    &[],
                )
            })
            .collect();
        let (report, _) = run_with(
            &plan_of(steps),
            StateFile::new("t"),
            &provider,
            options(limit),
        )
        .await;
        assert_eq!(report.summary.outcome, Outcome::Succeeded);
        assert_eq!(provider.count(CallKind::Create), 24);
        assert_eq!(provider.max_in_flight(), limit);
    }
}

#[tokio::test]
async fn a_step_starts_as_soon_as_its_own_dependencies_finish() {
    // slow ──► after_slow        fast ──► after_fast
    // after_fast must not wait for `slow` (no layer-by-layer waves).
    let provider = Arc::new(MemoryProvider::new());
    provider.stall(CallKind::Create, "slow");
    let steps = vec![
        step("slow", "blob_container", Action::Create, vec![], &[]),
        step(
            "after_slow",
            "blob_container",
            Action::Create,
            vec![],
            &["slow"],
        ),
        step("fast", "blob_container", Action::Create, vec![], &[]),
        step(
            "after_fast",
            "blob_container",
            Action::Create,
            vec![],
            &["fast"],
        ),
    ];
    let plan = plan_of(steps);
    let provider2 = provider.clone();
    let task =
        tokio::spawn(
            async move { run_with(&plan, StateFile::new("t"), &provider2, options(4)).await },
        );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !provider
        .started(CallKind::Create)
        .contains(&String::from("after_fast"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "after_fast never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        !provider
            .started(CallKind::Create)
            .contains(&String::from("after_slow"))
    );
    task.abort();
}

#[tokio::test]
async fn failure_rolls_back_completed_steps_in_reverse_order() {
    let provider = Arc::new(MemoryProvider::new());
    provider.fail(CallKind::Create, "blue", cloud_error("DeploymentFailed"));
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let (report, events) = run_with(&plan, StateFile::new("t"), &provider, options(1)).await;
    let summary = &report.summary;
    assert_eq!(summary.outcome, Outcome::RolledBack);
    let failure = summary.failure.as_ref().expect("failure recorded");
    assert_eq!(failure.address, "blue");
    assert_eq!(failure.error.code.as_deref(), Some("DeploymentFailed"));
    assert_eq!(failure.error.request_id.as_deref(), Some("req-42"));
    // Completed in order store, data, greeting, endpoint, reader (parallelism 1, file order among
    // equals is not promised, so compare with the actual completion order).
    let completed: Vec<&str> = summary
        .steps
        .iter()
        .filter(|s| s.result.is_success())
        .map(|s| s.address.as_str())
        .collect();
    let undone: Vec<&str> = summary
        .rollback
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    let mut reversed = completed.clone();
    reversed.reverse();
    assert_eq!(undone, reversed);
    assert!(summary.rollback.iter().all(|r| r.result.is_success()));
    assert!(
        summary.not_restored.is_empty(),
        "{:?}",
        summary.not_restored
    );
    assert!(
        report.state.resources.is_empty(),
        "{:?}",
        report.state.resources
    );
    assert!(provider.objects().is_empty(), "{:?}", provider.objects());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ApplyEvent::RollbackStarted { failed, .. } if failed == "blue"))
    );
    assert!(matches!(events.last(), Some(ApplyEvent::Summary(_))));
}

#[tokio::test]
async fn after_a_rolled_back_apply_the_previous_configuration_has_no_changes() {
    // v1: the reference stack. v2: update `data`, delete `greeting`, replace `endpoint` (and with
    // it its dependents), add `extra`; `extra` fails late.
    let (provider, v1_state) = created_reference_stack().await;
    let v1 = plan_of(reference_stack(Action::NoOp, "none"));
    assert_state_matches(&v1, &v1_state);
    let cloud_before = provider.objects();

    let mut v2 = reference_stack(Action::NoOp, "blob");
    for s in &mut v2 {
        s.action = match s.address.as_str() {
            "data" => Action::Update,
            "greeting" => Action::Delete,
            "blue" => Action::Update,
            _ => Action::NoOp,
        };
        if let Some(d) = &mut s.desired {
            d.dependencies.retain(|x| x != "greeting");
        }
        if s.address == "blue"
            && let Some(d) = &mut s.desired
        {
            d.inputs.shift_remove("environment_variables");
        }
    }
    v2.push(step(
        "extra",
        "blob_container",
        Action::Create,
        vec![("name", lit(json!("extra")))],
        &["data"],
    ));
    provider.fail(CallKind::Create, "extra", cloud_error("Conflict"));
    let (report, _) = run_with(&plan_of(v2), v1_state.clone(), &provider, options(2)).await;
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
    assert!(
        report.summary.not_restored.is_empty(),
        "{:?}",
        report.summary.not_restored
    );
    assert_state_matches(&v1, &report.state);
    for (address, record) in &v1_state.resources {
        assert_eq!(report.state.resources[address].id, record.id, "{address}");
    }
    let inputs = |v: Vec<crate::provider::Observed>| {
        v.into_iter().map(|o| (o.id, o.inputs)).collect::<Vec<_>>()
    };
    assert_eq!(inputs(provider.objects()), inputs(cloud_before));
}

/// The plan as the refresh saw `state`: every resource present, with the values state recorded.
fn refreshed_as_recorded(state: &StateFile) -> std::collections::HashMap<String, Refreshed> {
    state
        .resources
        .iter()
        .map(|(address, r)| {
            (
                address.clone(),
                Refreshed {
                    id: r.id.clone(),
                    inputs: super::values::as_map(&r.inputs),
                    outputs: r.outputs.clone(),
                },
            )
        })
        .collect()
}

/// The bug: a step resolved `${store.primary_blob_endpoint}` of a storage account the run did not
/// change from the outputs state recorded, though the refresh had read another value (the cloud came
/// back on another port) and the plan showed that one; apply sent the stale endpoint.
#[tokio::test]
async fn references_to_unchanged_resources_resolve_to_what_the_refresh_read() {
    let (provider, state) = created_reference_stack().await;
    let mut refreshed = refreshed_as_recorded(&state);
    let store = refreshed.get_mut("store").expect("store");
    store.outputs["primary_blob_endpoint"] = json!("https://127.0.0.1:41877/mistore7f3a/");
    let mut steps = reference_stack(Action::NoOp, "none");
    for s in &mut steps {
        if s.address == "blue" {
            s.action = Action::Update;
        }
    }
    let plan = ApplyPlan {
        refreshed,
        ..plan_of(steps)
    };
    let (report, _) = run_with(&plan, state, &provider, options(2)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    let sent = provider
        .objects()
        .into_iter()
        .find(|o| o.id == report.state.resources["blue"].id)
        .expect("blue");
    assert_eq!(
        sent.inputs["environment_variables"]["STORAGE_BLOB_ENDPOINT"],
        json!("https://127.0.0.1:41877/mistore7f3a/")
    );
}

/// The bug: the rollback of an update sent the inputs state recorded (and, for files, what the local
/// files hold by then) instead of what was live before the run; here the container's access had
/// been changed out of band to `blob`, the run set `container`, and the rollback must put back `blob`.
#[tokio::test]
async fn a_rollback_of_an_update_sends_back_what_was_live_before_the_run() {
    let (provider, state) = created_reference_stack().await;
    let data_id = state.resources["data"].id.clone();
    let mut live = provider.get(&data_id).expect("data");
    live.inputs.insert("public_access".into(), json!("blob"));
    provider.insert(live);
    let mut refreshed = refreshed_as_recorded(&state);
    refreshed
        .get_mut("data")
        .expect("data")
        .inputs
        .insert("public_access".into(), json!("blob"));
    let mut steps = reference_stack(Action::NoOp, "container");
    for s in &mut steps {
        if s.address == "data" || s.address == "blue" {
            s.action = Action::Update;
        }
    }
    provider.fail(CallKind::Update, "blue", cloud_error("DeploymentFailed"));
    let plan = ApplyPlan {
        refreshed,
        ..plan_of(steps)
    };
    let (report, _) = run_with(&plan, state, &provider, options(1)).await;
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
    assert!(
        report
            .summary
            .rollback
            .iter()
            .any(|r| r.address == "data" && r.result.is_success()),
        "{:?}",
        report.summary.rollback
    );
    assert_eq!(
        provider.get(&data_id).expect("data").inputs["public_access"],
        json!("blob")
    );
}

#[tokio::test]
async fn no_rollback_keeps_partial_progress() {
    let provider = Arc::new(MemoryProvider::new());
    provider.fail(CallKind::Create, "blue", cloud_error("DeploymentFailed"));
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let mut opts = options(3);
    opts.no_rollback = true;
    let (report, _) = run_with(&plan, StateFile::new("t"), &provider, opts).await;
    assert_eq!(report.summary.outcome, Outcome::Failed);
    assert!(report.summary.rollback.is_empty());
    let mut kept: Vec<&str> = report.state.resources.keys().map(String::as_str).collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        vec!["data", "endpoint", "greeting", "reader", "store"]
    );
    assert_eq!(provider.objects().len(), 5);
}

#[tokio::test]
async fn a_half_failed_create_is_recorded_tainted_with_its_id() {
    let provider = Arc::new(MemoryProvider::new());
    provider.fail_after_create("blue", cloud_error("DeploymentFailed"));
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let mut opts = options(3);
    opts.no_rollback = true;
    let (report, _) = run_with(&plan, StateFile::new("t"), &provider, opts).await;
    let blue = &report.state.resources["blue"];
    assert_eq!(blue.status, ResourceStatus::Tainted);
    assert!(
        provider.get(&blue.id).is_some(),
        "id {} is the cloud's",
        blue.id
    );

    // With rollback, the leftover is deleted like everything else.
    let provider = Arc::new(MemoryProvider::new());
    provider.fail_after_create("blue", cloud_error("DeploymentFailed"));
    let (report, _) = run_with(&plan, StateFile::new("t"), &provider, options(3)).await;
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
    assert_eq!(report.summary.rollback[0].address, "blue");
    assert!(provider.objects().is_empty());
    assert!(report.state.resources.is_empty());
}

#[tokio::test]
async fn a_compensation_that_fails_is_named_and_what_it_needs_is_kept() {
    let provider = Arc::new(MemoryProvider::new());
    provider.fail(CallKind::Create, "blue", cloud_error("DeploymentFailed"));
    provider.fail(CallKind::Delete, "greeting", cloud_error("LeaseIdMissing"));
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let (report, _) = run_with(&plan, StateFile::new("t"), &provider, options(1)).await;
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
    let named: Vec<&str> = report
        .summary
        .not_restored
        .iter()
        .map(|n| n.address.as_str())
        .collect();
    // greeting could not be deleted; data and store, which it needs, are kept for it.
    assert!(
        named.contains(&"greeting") && named.contains(&"data") && named.contains(&"store"),
        "{named:?}"
    );
    assert!(
        report.summary.not_restored[0]
            .reason
            .contains("LeaseIdMissing")
    );
    for kept in ["greeting", "data", "store"] {
        assert!(
            report.state.resources.contains_key(kept),
            "{kept} must stay in state"
        );
    }
    assert!(!report.state.resources.contains_key("endpoint"));
    assert_eq!(provider.objects().len(), 3);
}

#[tokio::test]
async fn destroy_goes_in_reverse_dependency_order() {
    let (provider, state) = created_reference_stack().await;
    let plan = ApplyPlan::destroy(&state);
    let (report, events) = run_with(&plan, state, &provider, options(4)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    assert!(report.state.resources.is_empty() && report.state.outputs.is_empty());
    assert!(provider.objects().is_empty());
    let log = provider.log();
    use CallKind::Delete as D;
    assert_eq!(provider.count(CallKind::Update), 0);
    let finished = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ApplyEvent::StepFinished {
                    kind: StepKind::Delete,
                    ..
                }
            )
        })
        .count();
    assert_eq!(finished, 6);
    for (first, then) in [
        ("blue", "endpoint"),
        ("blue", "reader"),
        ("reader", "endpoint"),
        ("reader", "store"),
        ("greeting", "data"),
        ("data", "store"),
        ("greeting", "store"),
    ] {
        assert!(
            ended_before(&log, D, first, D, then),
            "{first} before {then}"
        );
    }
}

#[tokio::test]
async fn deleting_what_is_already_gone_succeeds() {
    let (provider, state) = created_reference_stack().await;
    provider.fail(
        CallKind::Delete,
        "greeting",
        ProviderError::new(ErrorKind::NotFound, "gone"),
    );
    let plan = ApplyPlan::destroy(&state);
    let (report, _) = run_with(&plan, state, &provider, options(4)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    assert!(report.state.resources.is_empty());
}

#[tokio::test]
async fn replacements_run_in_the_planned_order() {
    // delete-before-create: the old object goes first (after its dependents' deletes).
    let (provider, state) = created_reference_stack().await;
    let mut steps = reference_stack(Action::NoOp, "none");
    steps[1].action = Action::Replace(ReplaceOrder::DeleteBeforeCreate); // data
    steps[2].action = Action::Replace(ReplaceOrder::DeleteBeforeCreate); // greeting
    steps[5].action = Action::Update; // blue
    let (report, _) = run_with(&plan_of(steps), state, &provider, options(4)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    let log = provider.log();
    use CallKind::{Create as C, Delete as D, Update as U};
    assert!(ended_before(&log, D, "greeting", D, "data"));
    assert!(ended_before(&log, D, "data", C, "data"));
    assert!(ended_before(&log, C, "data", C, "greeting"));
    assert!(ended_before(&log, C, "greeting", U, "blue"));
    assert!(!report.state.resources.contains_key(&deposed_key("data")));

    // create-before-delete: new object, then dependents, then the old one.
    let (provider, state) = created_reference_stack().await;
    let mut steps = reference_stack(Action::NoOp, "none");
    steps[3].action = Action::Replace(ReplaceOrder::CreateBeforeDelete); // endpoint
    if let Some(d) = &mut steps[3].desired {
        d.inputs
            .insert(String::from("name"), lit(json!("my-new-endpoint")));
    }
    steps[4].action = Action::Replace(ReplaceOrder::CreateBeforeDelete); // reader
    steps[5].action = Action::Update; // blue
    let old_endpoint = state.resources["endpoint"].id.clone();
    let (report, _) = run_with(&plan_of(steps), state, &provider, options(4)).await;
    assert_eq!(
        report.summary.outcome,
        Outcome::Succeeded,
        "{:?}",
        report.summary
    );
    let log = provider.log();
    assert!(ended_before(&log, C, "endpoint", C, "reader"));
    assert!(ended_before(&log, C, "reader", U, "blue"));
    assert!(ended_before(&log, U, "blue", D, "endpoint"));
    assert!(provider.get(&old_endpoint).is_none());
    assert!(
        report
            .state
            .resources
            .keys()
            .all(|k| !k.ends_with("#deposed"))
    );
    assert_eq!(
        report.state.resources["blue"].inputs["endpoint"],
        json!("my-new-endpoint")
    );
}

#[tokio::test]
async fn a_reference_without_a_value_fails_the_step_before_sending_it() {
    let provider = Arc::new(MemoryProvider::new());
    let steps = vec![
        step(
            "a",
            "blob_container",
            Action::Create,
            vec![("name", lit(json!("a")))],
            &[],
        ),
        step(
            "b",
            "blob_container",
            Action::Create,
            vec![("name", reference("a", "no_such_output"))],
            &["a"],
        ),
    ];
    let (report, _) = run_with(&plan_of(steps), StateFile::new("t"), &provider, options(2)).await;
    let failure = report.summary.failure.expect("b fails");
    assert_eq!(failure.address, "b");
    assert!(
        failure.error.message.contains("${a.no_such_output}"),
        "{}",
        failure.error.message
    );
    assert_eq!(provider.count(CallKind::Create), 1);
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
}

#[tokio::test]
async fn a_deployment_waits_for_a_new_role_assignment_to_propagate() {
    let provider = Arc::new(MemoryProvider::new());
    provider.deny_storage_until("blue", 2);
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let (report, events) = run_with(&plan, StateFile::new("t"), &provider, options(4)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    let waits: Vec<(u32, Vec<String>)> = events
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::WaitingForPropagation {
                attempt,
                waiting_for,
                address,
                ..
            } if address == "blue" => Some((*attempt, waiting_for.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        waits,
        vec![
            (1, vec![String::from("reader")]),
            (2, vec![String::from("reader")])
        ]
    );
}

#[tokio::test]
async fn a_403_without_a_new_role_assignment_fails_at_once() {
    let (provider, state) = created_reference_stack().await;
    provider.deny_storage_until("blue", 1);
    let mut steps = reference_stack(Action::NoOp, "none");
    steps[5].action = Action::Update;
    let (report, events) = run_with(&plan_of(steps), state, &provider, options(4)).await;
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ApplyEvent::WaitingForPropagation { .. }))
    );
}

#[tokio::test]
async fn propagation_wait_gives_up_after_its_timeout() {
    let provider = Arc::new(MemoryProvider::new());
    provider.deny_storage_until("blue", u32::MAX);
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let mut opts = options(4);
    opts.propagation.timeout = Duration::from_millis(20);
    let (report, _) = run_with(&plan, StateFile::new("t"), &provider, opts).await;
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
    let failure = report.summary.failure.expect("blue fails");
    assert!(
        failure
            .error
            .message
            .contains("AuthorizationPermissionMismatch")
    );
}

#[tokio::test]
async fn first_interrupt_finishes_in_flight_steps_and_starts_no_more() {
    let provider = Arc::new(MemoryProvider::new().with_latency(Duration::from_millis(2)));
    let interrupt = Interrupt::new();
    let signal = interrupt.clone();
    let sink = move |e: ApplyEvent| {
        if matches!(&e, ApplyEvent::StepStarted { address, .. } if address == "store") {
            signal.signal();
        }
    };
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let report = apply(
        &plan,
        StateFile::new("t"),
        Persistence::in_memory(),
        provider.clone(),
        &registry(),
        options(1),
        Arc::new(sink),
        interrupt,
    )
    .await
    .expect("valid");
    assert_eq!(report.summary.outcome, Outcome::Interrupted);
    let recorded: Vec<&String> = report.state.resources.keys().collect();
    assert_eq!(recorded, vec!["store"]);
    assert_eq!(provider.count(CallKind::Create), 1);
    assert_eq!(report.summary.not_started.len(), 5);
}

#[tokio::test]
async fn second_interrupt_abandons_in_flight_steps_and_keeps_the_journal() {
    let (_dir, store, journal) = durable_store();
    let provider = Arc::new(MemoryProvider::new());
    provider.stall(CallKind::Create, "store");
    let interrupt = Interrupt::new();
    let signal = interrupt.clone();
    let sink = move |e: ApplyEvent| {
        if matches!(&e, ApplyEvent::StepStarted { address, .. } if address == "store") {
            signal.signal();
            signal.signal();
        }
    };
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let report = apply(
        &plan,
        StateFile::new("t"),
        Persistence::durable(store.clone(), journal),
        provider.clone(),
        &registry(),
        options(1),
        Arc::new(sink),
        interrupt,
    )
    .await
    .expect("valid");
    assert_eq!(report.summary.outcome, Outcome::Aborted);
    assert!(!report.journal_cleared);
    let reopened = store.open_journal().expect("journal");
    let pending: Vec<&str> = reopened
        .unfinished
        .iter()
        .map(|i| i.address.as_str())
        .collect();
    assert_eq!(pending, vec!["store"]);
}

#[tokio::test]
async fn a_durable_run_records_every_step_and_clears_its_journal() {
    let (_dir, store, journal) = durable_store();
    let provider = Arc::new(MemoryProvider::new());
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let report = apply(
        &plan,
        StateFile::new("t"),
        Persistence::durable(store.clone(), journal),
        provider.clone(),
        &registry(),
        options(3),
        Arc::new(NoEvents),
        Interrupt::new(),
    )
    .await
    .expect("valid");
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    assert!(report.journal_cleared);
    assert!(!store.journal_path().exists());
    let on_disk = store.read().expect("read").expect("state exists");
    assert_eq!(on_disk.resources, report.state.resources);
    assert_eq!(on_disk.serial, report.state.serial);
}

/// Starts a durable run of `plan` from no state, one step at a time, in a task of its own (so a
/// test can stop it midway, as a crash would).
fn spawn_durable(
    plan: ApplyPlan,
    store: &StateStore,
    journal: crate::state::Journal,
    provider: &Arc<MemoryProvider>,
) -> tokio::task::JoinHandle<Result<ApplyReport, ApplyError>> {
    spawn_recorded(plan, Persistence::durable(store.clone(), journal), provider)
}

/// [`spawn_durable`] recording through `persistence`.
fn spawn_recorded(
    plan: ApplyPlan,
    persistence: Persistence,
    provider: &Arc<MemoryProvider>,
) -> tokio::task::JoinHandle<Result<ApplyReport, ApplyError>> {
    let provider = provider.clone();
    tokio::spawn(async move {
        apply(
            &plan,
            StateFile::new("t"),
            persistence,
            provider,
            &registry(),
            options(1),
            Arc::new(NoEvents),
            Interrupt::new(),
        )
        .await
    })
}

/// A state store for stack `t` in a fresh temporary folder (kept alive by the first value) and its
/// open journal.
fn durable_store() -> (tempfile::TempDir, StateStore, crate::state::Journal) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::for_stack(dir.path(), "t").expect("name");
    let journal = store.open_journal().expect("journal").journal;
    (dir, store, journal)
}

/// The scheduler used to wait for each batch's journal commit before it started any other step, so
/// a slot the batch freed stayed empty for every fsync. A ready step that waits for nothing the batch
/// records now starts while the commit is synced (the batch's successors still wait for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_steps_start_while_a_commit_is_synced() {
    let (_dir, store, journal) = durable_store();
    let persistence = Persistence::durable(store.clone(), journal);
    let journal = persistence.journal().expect("a durable run has a journal");
    let gate = journal.commit_gate();
    gate.hold();
    // Independent creates, one at a time: while a commit is held, a step that is not among the
    // steps it finishes can only have started during the commit.
    let steps = (0..6)
        .map(|i| {
            step(
                &format!("s{i}"),
                "storage_account",
                Action::Create,
                vec![("name", lit(json!(format!("sfgate{i}"))))],
                &[],
            )
        })
        .collect();
    let provider = Arc::new(MemoryProvider::new());
    let run = spawn_recorded(plan_of(steps), persistence, &provider);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let overlapped = loop {
        let held = gate.steps_waiting();
        if held > 0 && journal.unfinished().len() > held {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    gate.release();
    let report = run.await.expect("the run's task").expect("the plan runs");
    assert!(
        overlapped,
        "no step started while a journal commit was held"
    );
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    assert_eq!(report.state.resources.len(), 6);
}

/// A batch's commit and the intents of the steps that start after it share one fsync: the scheduler
/// queues the commit, starts the successors at once (their intents queued behind it) and a step
/// waits for its intent's group write before it sends anything. The rule this relies on: a step
/// never reaches the cloud before its own intent, and so the commit recording what it depends on,
/// is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_is_sent_only_once_its_intent_and_its_predecessors_commit_are_durable() {
    let (_dir, store, journal) = durable_store();
    let persistence = Persistence::durable(store.clone(), journal);
    let journal = persistence.journal().expect("a durable run has a journal");
    let gate = journal.commit_gate();
    let provider = Arc::new(MemoryProvider::new());
    // `a`, then `b` that depends on it. The run's first write is a checkpoint (written alone), so a
    // third step comes first to take it.
    let steps = vec![
        step(
            "first",
            "storage_account",
            Action::Create,
            vec![("name", lit(json!("sffirst")))],
            &[],
        ),
        step(
            "a",
            "storage_account",
            Action::Create,
            vec![("name", lit(json!("sfa")))],
            &["first"],
        ),
        step(
            "b",
            "storage_account",
            Action::Create,
            vec![("name", lit(json!("sfb")))],
            &["a"],
        ),
    ];
    // Every group write holding a commit is held: `first` is recorded in the run's first write, a
    // checkpoint of the state file, so `a`'s commit is the first one.
    gate.hold();
    let run = spawn_recorded(plan_of(steps), persistence, &provider);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // `a` finishes; its commit is queued and held, and `b` starts behind it: its intent is queued
    // (unfinished) but not written, and `b` is not sent.
    let started_b = loop {
        let queued_b = journal.unfinished().iter().any(|i| i.address == "b");
        if queued_b && gate.steps_waiting() > 0 {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent_while_held = provider.count(CallKind::Create);
    let on_disk = std::fs::read_to_string(store.journal_path()).unwrap_or_default();
    gate.release();
    let report = run.await.expect("the run's task").expect("the plan runs");
    assert!(started_b, "`b` did not start while `a`'s commit was queued");
    assert_eq!(
        sent_while_held, 2,
        "`b` was sent before its intent was durable"
    );
    assert!(
        !on_disk.contains(r#""address":"b""#),
        "`b`'s intent was written before the commit it follows:\n{on_disk}"
    );
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    assert_eq!(provider.count(CallKind::Create), 3);
}

/// Every finished step used to rewrite and fsync the whole state file (and its backup): O(n) per
/// step. Now a step's result is one journal commit, and the file is rewritten as a checkpoint only
/// at the run's first write, every few seconds and at the end; reading the state replays the
/// commits, so nothing recorded is lost in between.
#[tokio::test]
async fn finished_steps_are_journaled_and_the_state_file_is_only_checkpointed() {
    let (_dir, store, journal) = durable_store();
    let provider = Arc::new(MemoryProvider::new());
    // The deployment comes last (it needs the five others) and never answers.
    provider.stall(CallKind::Create, "blue");
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let run = spawn_durable(plan, &store, journal, &provider);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while provider.count(CallKind::Create) < 6 {
        assert!(std::time::Instant::now() < deadline, "blue never sent");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The five finished steps are recorded before `blue` starts: the first in the checkpoint the
    // run wrote first, the other four only as journal commits.
    let file: StateFile =
        serde_json::from_slice(&std::fs::read(store.path()).expect("state file")).expect("parse");
    assert_eq!(file.resources.len(), 1, "{:?}", file.resources.keys());
    let journal_text = std::fs::read_to_string(store.journal_path()).expect("journal");
    assert_eq!(
        journal_text.matches("\"kind\":\"commit\"").count(),
        4,
        "{journal_text}"
    );
    let read = store.read().expect("read").expect("state");
    assert_eq!(read.resources.len(), 5, "{:?}", read.resources.keys());
    assert_eq!(
        read.serial,
        file.serial + 4,
        "each commit counts as a write"
    );
    run.abort();
    let _ = run.await;
}

#[tokio::test]
async fn recovery_after_a_crash_records_what_exists_and_drops_what_does_not() {
    let (_dir, store, journal) = durable_store();
    let provider = Arc::new(MemoryProvider::new());
    // The endpoint is created in the cloud but the answer never comes; the process "dies".
    provider.stall(CallKind::Create, "endpoint");
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let run = spawn_durable(plan.clone(), &store, journal, &provider);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while provider
        .get("mem:/online_endpoint/my-sai-endpoint")
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "endpoint never created"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    run.abort();
    let _ = run.await;

    // Next run: the lock holder opens the journal and resolves it before planning.
    let opened = store.open_journal().expect("journal");
    let pending: Vec<&str> = opened
        .unfinished
        .iter()
        .map(|i| i.address.as_str())
        .collect();
    assert_eq!(pending, vec!["endpoint"]);
    // Also a step that was journaled but never reached the cloud.
    opened
        .journal
        .intent(crate::state::NewIntent {
            address: String::from("ghost"),
            resource_type: String::from("blob_container"),
            action: crate::state::JournalAction::Create,
            target: String::from("mem:/blob_container/ghost"),
        })
        .expect("intent");
    let mut state = store
        .read()
        .expect("read")
        .unwrap_or_else(|| StateFile::new("t"));
    let mut persistence = Persistence::durable(store.clone(), opened.journal);
    let expected = expected_from_plan(&plan, &state);
    let report = recover(provider.as_ref(), &mut state, &mut persistence, &expected)
        .await
        .expect("recovered");
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        report.resolved,
        vec![
            (
                String::from("endpoint"),
                crate::state::JournalAction::Create,
                RecoveryOutcome::Recorded(ResourceStatus::Ready)
            ),
            (
                String::from("ghost"),
                crate::state::JournalAction::Create,
                RecoveryOutcome::Dropped
            ),
        ]
    );
    let endpoint = &state.resources["endpoint"];
    assert_eq!(endpoint.id, "mem:/online_endpoint/my-sai-endpoint");
    assert!(endpoint.outputs["identity"]["principal_id"].is_string());
    assert!(persistence.finish().expect("finish"), "journal cleared");
    let on_disk = store.read().expect("read").expect("state");
    assert!(on_disk.resources.contains_key("endpoint"));
}

#[tokio::test]
async fn recovery_taints_an_object_that_differs_from_the_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::for_stack(dir.path(), "t").expect("name");
    let opened = store.open_journal().expect("journal");
    let provider = MemoryProvider::new();
    provider.insert(crate::provider::Observed {
        id: String::from("mem:/blob_container/half"),
        inputs: serde_json::Map::from_iter([(String::from("name"), json!("half"))]),
        outputs: serde_json::Map::new(),
        owner: None,
    });
    opened
        .journal
        .intent(crate::state::NewIntent {
            address: String::from("half"),
            resource_type: String::from("blob_container"),
            action: crate::state::JournalAction::Create,
            target: String::new(),
        })
        .expect("intent");
    let mut expected = std::collections::HashMap::new();
    expected.insert(
        String::from("half"),
        Expected {
            inputs: serde_json::Map::from_iter([
                (String::from("name"), json!("half")),
                (String::from("public_access"), json!("blob")),
            ]),
            dependencies: vec![],
        },
    );
    let mut state = StateFile::new("t");
    let mut persistence = Persistence::durable(store.clone(), opened.journal);
    let report = recover(&provider, &mut state, &mut persistence, &expected)
        .await
        .expect("recovered");
    assert_eq!(
        report.resolved[0].2,
        RecoveryOutcome::Recorded(ResourceStatus::Tainted)
    );
    assert_eq!(state.resources["half"].status, ResourceStatus::Tainted);
}

#[tokio::test]
async fn refresh_reads_everything_and_treats_404_as_gone() {
    let (provider, state) = created_reference_stack().await;
    provider.remove(&state.resources["greeting"].id);
    let log = EventLog::new();
    let snapshot = refresh(provider.clone(), &state, &registry(), 3, &log)
        .await
        .expect("refresh");
    assert_eq!(snapshot.live.len(), 6);
    assert_eq!(snapshot.state.as_ref(), Some(&state));
    assert_eq!(snapshot.live["greeting"], crate::plan::Live::Gone);
    assert!(
        matches!(&snapshot.live["store"], crate::plan::Live::Present { id, .. } if *id == state.resources["store"].id)
    );
    let refreshed = log
        .events()
        .iter()
        .filter(|e| matches!(e, ApplyEvent::ResourceRefreshed { .. }))
        .count();
    assert_eq!(refreshed, 6);

    provider.fail(CallKind::Read, "data", cloud_error("InternalError"));
    provider.fail(
        CallKind::Read,
        "blue",
        ProviderError::new(ErrorKind::NotFound, "gone"),
    );
    let err = refresh(provider.clone(), &state, &registry(), 3, &NoEvents)
        .await
        .expect_err("one read fails");
    assert_eq!(err.failures.len(), 1);
    assert_eq!(err.failures[0].0, "data");
    assert_eq!(err.read, 5);
}

#[test]
fn conflicting_replace_orders_are_refused_before_anything_runs() {
    // `b` (create-before-delete) needs `a` (delete-before-create): a's delete waits for b's old
    // delete, which waits for b's new create, which waits for a's create, which waits for a's delete.
    let mut state = StateFile::new("t");
    state.record(
        "a",
        crate::state::ResourceState::new("blob_container", "id-a", json!({}), json!({})),
    );
    let mut b = crate::state::ResourceState::new("blob_container", "id-b", json!({}), json!({}));
    b.dependencies = vec![String::from("a")];
    state.record("b", b);
    let plan = plan_of(vec![
        step(
            "a",
            "blob_container",
            Action::Replace(ReplaceOrder::DeleteBeforeCreate),
            vec![],
            &[],
        ),
        step(
            "b",
            "blob_container",
            Action::Replace(ReplaceOrder::CreateBeforeDelete),
            vec![],
            &["a"],
        ),
    ]);
    let err = opgraph::build(&plan, &state).expect_err("cycle");
    assert!(matches!(err, PlanShapeError::Cycle { .. }), "{err}");
}

#[test]
fn plans_that_do_not_match_state_are_refused() {
    let plan = plan_of(vec![step(
        "a",
        "blob_container",
        Action::Update,
        vec![],
        &[],
    )]);
    let err = opgraph::build(&plan, &StateFile::new("t")).expect_err("no prior");
    assert!(matches!(err, PlanShapeError::MissingPrior { .. }), "{err}");
}

#[tokio::test]
async fn unknown_resource_types_are_refused() {
    let provider: Arc<dyn Provider> = Arc::new(MemoryProvider::new());
    let plan = plan_of(vec![step(
        "vm",
        "virtual_machine",
        Action::Create,
        vec![],
        &[],
    )]);
    let err = apply(
        &plan,
        StateFile::new("t"),
        Persistence::in_memory(),
        provider,
        &registry(),
        options(1),
        Arc::new(NoEvents),
        Interrupt::new(),
    )
    .await
    .expect_err("unknown type");
    assert!(matches!(err, ApplyError::UnknownType { .. }));
}

#[tokio::test]
async fn a_state_file_that_moved_stops_the_run_and_keeps_the_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::for_stack(dir.path(), "t").expect("name");
    let mut stale = StateFile::new("t");
    store.write(&mut stale, None).expect("first write");
    let mut newer = stale.clone();
    store
        .write(&mut newer, Some(stale.serial))
        .expect("someone else writes");
    let journal = store.open_journal().expect("journal").journal;
    let provider = Arc::new(MemoryProvider::new());
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let report = apply(
        &plan,
        stale,
        Persistence::durable(store.clone(), journal),
        provider.clone(),
        &registry(),
        options(1),
        Arc::new(NoEvents),
        Interrupt::new(),
    )
    .await
    .expect("valid");
    assert_eq!(report.summary.outcome, Outcome::Failed);
    let error = report.persistence_error.expect("write refused");
    assert!(error.contains("could not record"), "{error}");
    assert!(!report.journal_cleared);
    // The one step that ran is still listed for recovery; nothing else was started.
    let reopened = store.open_journal().expect("journal");
    assert_eq!(reopened.unfinished.len(), 1);
    assert_eq!(provider.count(CallKind::Create), 1);
}

#[tokio::test]
async fn every_step_reports_start_progress_and_finish_and_the_summary_comes_last() {
    let provider = Arc::new(MemoryProvider::new());
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let (report, events) = run_with(&plan, StateFile::new("t"), &provider, options(3)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    assert!(matches!(
        events.first(),
        Some(ApplyEvent::ApplyStarted {
            steps: 6,
            parallelism: 3
        })
    ));
    for address in ["store", "data", "greeting", "endpoint", "reader", "blue"] {
        let at = |want: fn(&ApplyEvent, &str) -> bool| {
            events
                .iter()
                .position(|e| want(e, address))
                .unwrap_or_else(|| panic!("missing event for {address}: {events:?}"))
        };
        let started =
            at(|e, a| matches!(e, ApplyEvent::StepStarted { address, .. } if address == a));
        let progress = at(
            |e, a| matches!(e, ApplyEvent::StepProgress { address, status } if address == a && status == "Creating"),
        );
        let finished = at(
            |e, a| matches!(e, ApplyEvent::StepFinished { address, result: StepResult::Succeeded, .. } if address == a),
        );
        assert!(started < progress && progress < finished, "{address}");
    }
    assert!(matches!(events.last(), Some(ApplyEvent::Summary(s)) if s.steps.len() == 6));
}

#[test]
fn events_serialize_as_tagged_json_with_seconds() {
    let event = ApplyEvent::StepFinished {
        address: String::from("blue"),
        kind: StepKind::Create,
        replace: false,
        duration: Duration::from_millis(1500),
        result: StepResult::Failed {
            error: StepFailure {
                message: String::from("operation failed"),
                code: Some(String::from("DeploymentFailed")),
                status: None,
                request_id: Some(String::from("r-1")),
            },
        },
    };
    let json = serde_json::to_value(&event).expect("serializes");
    assert_eq!(
        json,
        json!({
            "event": "step_finished",
            "address": "blue",
            "kind": "create",
            "replace": false,
            "duration": 1.5,
            "result": {
                "status": "failed",
                "error": {
                    "message": "operation failed",
                    "code": "DeploymentFailed",
                    "status": null,
                    "request_id": "r-1"
                }
            }
        })
    );
}

#[tokio::test]
async fn recovery_removes_what_a_delete_took_and_keeps_what_an_update_never_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::for_stack(dir.path(), "t").expect("name");
    let (provider, mut state) = created_reference_stack().await;
    store.write(&mut state, None).expect("state on disk");
    let opened = store.open_journal().expect("journal");
    let greeting_id = state.resources["greeting"].id.clone();
    let data_id = state.resources["data"].id.clone();
    // The process died after sending the blob's delete (which happened) and the container's
    // update (which never reached the cloud).
    for (address, action, target) in [
        (
            "greeting",
            crate::state::JournalAction::Delete,
            &greeting_id,
        ),
        ("data", crate::state::JournalAction::Update, &data_id),
    ] {
        opened
            .journal
            .intent(crate::state::NewIntent {
                address: address.to_owned(),
                resource_type: state.resources[address].resource_type.clone(),
                action,
                target: target.clone(),
            })
            .expect("intent");
    }
    provider.remove(&greeting_id);
    let mut persistence = Persistence::durable(store.clone(), opened.journal);
    let report = recover(
        provider.as_ref(),
        &mut state,
        &mut persistence,
        &std::collections::HashMap::new(),
    )
    .await
    .expect("recovered");
    assert_eq!(
        report
            .resolved
            .iter()
            .map(|(a, _, o)| (a.as_str(), o.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("greeting", RecoveryOutcome::Removed),
            ("data", RecoveryOutcome::Recorded(ResourceStatus::Ready)),
        ]
    );
    let on_disk = store.read().expect("read").expect("state");
    assert!(!on_disk.resources.contains_key("greeting"));
    assert_eq!(on_disk.resources["data"].status, ResourceStatus::Ready);
    assert!(persistence.finish().expect("finish"));
}

#[tokio::test]
async fn a_resource_is_deleted_only_after_its_former_dependents_stopped_using_it() {
    // Before: a ◄── b (b uses a). After: b no longer uses a, a is removed from the stack.
    let provider = Arc::new(MemoryProvider::new());
    let before = plan_of(vec![
        step(
            "a",
            "blob_container",
            Action::Create,
            vec![("name", lit(json!("aaa")))],
            &[],
        ),
        step(
            "b",
            "blob_container",
            Action::Create,
            vec![
                ("name", lit(json!("bbb"))),
                ("account", reference("a", "name")),
            ],
            &["a"],
        ),
    ]);
    let (created, _) = run_with(&before, StateFile::new("t"), &provider, options(4)).await;
    assert_eq!(created.summary.outcome, Outcome::Succeeded);
    provider.clear_log();
    let mut a = step("a", "blob_container", Action::Delete, vec![], &[]);
    a.desired = None;
    let after = plan_of(vec![
        a,
        step(
            "b",
            "blob_container",
            Action::Update,
            vec![("name", lit(json!("bbb"))), ("account", lit(json!("aaa")))],
            &[],
        ),
    ]);
    let (report, _) = run_with(&after, created.state, &provider, options(4)).await;
    assert_eq!(report.summary.outcome, Outcome::Succeeded);
    let log = provider.log();
    assert!(ended_before(
        &log,
        CallKind::Update,
        "b",
        CallKind::Delete,
        "a"
    ));
    assert!(report.state.resources["b"].dependencies.is_empty());
}

mod properties {
    //! Random graphs, random limits, a random failing step: order, limit and rollback hold.
    use proptest::prelude::*;

    use super::*;

    /// Node `i` may depend on any node before it.
    fn graphs() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..24).prop_flat_map(|n| {
            (0..n)
                .map(|i| proptest::collection::vec(0..i.max(1), 0..=i.min(3)))
                .collect::<Vec<_>>()
                .prop_map(|deps| {
                    deps.into_iter()
                        .enumerate()
                        .map(|(i, mut d)| {
                            d.retain(|&x| x < i);
                            d.sort_unstable();
                            d.dedup();
                            d
                        })
                        .collect()
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn creates_respect_dependencies_and_limits_and_failures_roll_back(
            graph in graphs(),
            limit in 1usize..6,
            fail_at in proptest::option::of(0usize..24),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let names: Vec<String> = (0..graph.len()).map(|i| format!("n{i:02}")).collect();
            let steps: Vec<PlannedStep> = graph
                .iter()
                .enumerate()
                .map(|(i, deps)| {
                    let deps: Vec<&str> = deps.iter().map(|&d| names[d].as_str()).collect();
                    step(&names[i], "blob_container", Action::Create, vec![("name", lit(json!(names[i])))], &deps)
                })
                .collect();
            let provider = Arc::new(MemoryProvider::new().with_latency(Duration::from_micros(200)));
            let failing = fail_at.filter(|&f| f < graph.len()).map(|f| names[f].clone());
            if let Some(f) = &failing {
                provider.fail(CallKind::Create, f, cloud_error("Boom"));
            }
            let (report, _) = runtime.block_on(run_with(&plan_of(steps), StateFile::new("t"), &provider, options(limit)));
            let log = provider.log();
            for (i, deps) in graph.iter().enumerate() {
                if !log.iter().any(|c| c.start && c.kind == CallKind::Create && c.address == names[i]) {
                    continue;
                }
                for &d in deps {
                    prop_assert!(ended_before(&log, CallKind::Create, &names[d], CallKind::Create, &names[i]));
                }
            }
            prop_assert!(provider.max_in_flight() <= limit);
            match failing {
                None => {
                    prop_assert_eq!(report.summary.outcome, Outcome::Succeeded);
                    prop_assert_eq!(report.state.resources.len(), graph.len());
                }
                Some(_) => {
                    prop_assert_eq!(report.summary.outcome, Outcome::RolledBack);
                    prop_assert!(report.state.resources.is_empty());
                    prop_assert!(provider.objects().is_empty());
                }
            }
        }
    }
}

#[tokio::test]
async fn a_failed_create_before_delete_replacement_puts_the_old_objects_back_under_their_addresses()
{
    let (provider, state) = created_reference_stack().await;
    let cloud_before: Vec<String> = provider.objects().into_iter().map(|o| o.id).collect();
    let mut steps = reference_stack(Action::NoOp, "none");
    steps[3].action = Action::Replace(ReplaceOrder::CreateBeforeDelete); // endpoint
    if let Some(d) = &mut steps[3].desired {
        d.inputs
            .insert(String::from("name"), lit(json!("my-new-endpoint")));
    }
    steps[4].action = Action::Replace(ReplaceOrder::CreateBeforeDelete); // reader
    steps[5].action = Action::Update; // blue
    provider.fail_times(CallKind::Update, "blue", cloud_error("DeploymentFailed"), 1);
    let (report, _) = run_with(&plan_of(steps), state.clone(), &provider, options(4)).await;
    assert_eq!(
        report.summary.outcome,
        Outcome::RolledBack,
        "{:?}",
        report.summary
    );
    assert!(
        report.summary.not_restored.is_empty(),
        "{:?}",
        report.summary.not_restored
    );
    let ids = |s: &StateFile| {
        s.resources
            .iter()
            .map(|(a, r)| (a.clone(), (r.id.clone(), r.inputs.to_string())))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(ids(&report.state), ids(&state));
    let cloud_after: Vec<String> = provider.objects().into_iter().map(|o| o.id).collect();
    assert_eq!(cloud_after, cloud_before);
}

/// The registry handed to `apply` decides whether a create may take over an object it finds where
/// it goes (`arm.adopt_existing`), not the type's name: the same storage account is refused under
/// the embedded specs and adopted under specs that say it may be.
/// A plan that creates one storage account, `store`.
fn one_store_plan() -> ApplyPlan {
    ApplyPlan {
        steps: vec![step(
            "store",
            "storage_account",
            Action::Create,
            vec![("name", lit(json!("mistore7f3a")))],
            &[],
        )],
        ..ApplyPlan::default()
    }
}

/// The specs, with storage accounts adopted like role assignments (`arm.adopt_existing`).
fn adopting_registry() -> Registry {
    let mut adopting = registry();
    adopting
        .get_mut("storage_account")
        .expect("spec")
        .arm
        .adopt_existing = true;
    adopting
}

/// A cloud that already holds the account of [`one_store_plan`], stamped by `owner`.
fn existing_store(owner: Option<crate::provider::Owner>) -> Arc<MemoryProvider> {
    let provider = Arc::new(MemoryProvider::new());
    provider.insert(crate::provider::Observed {
        id: String::from("mem:/storage_account/mistore7f3a"),
        inputs: serde_json::Map::new(),
        outputs: serde_json::Map::new(),
        owner,
    });
    provider
}

#[tokio::test]
async fn the_registry_given_to_apply_decides_whether_a_create_adopts_an_existing_object() {
    let plan = one_store_plan();
    let existing = || existing_store(None);
    let run = |registry: Registry| {
        let provider = existing();
        let plan = plan.clone();
        async move {
            apply(
                &plan,
                StateFile::new("t"),
                Persistence::in_memory(),
                provider,
                &registry,
                options(1),
                Arc::new(NoEvents),
                Interrupt::new(),
            )
            .await
            .expect("plan is valid")
        }
    };

    let refused = run(registry()).await;
    assert_eq!(refused.summary.outcome, Outcome::RolledBack);
    let failure = refused.summary.failure.expect("the create failed");
    assert!(
        failure
            .error
            .to_string()
            .contains("already exists in the cloud"),
        "{}",
        failure.error
    );
    assert!(refused.state.resources.is_empty());

    let adopting = adopting_registry();
    let adopted = run(adopting).await;
    assert_eq!(adopted.summary.outcome, Outcome::Succeeded);
    assert_eq!(
        adopted.state.resources["store"].id,
        "mem:/storage_account/mistore7f3a"
    );
}

/// What the cloud does to the create of one address; everything else goes through unchanged.
enum Interference {
    /// Another stack's PUT of the same name lands right after this stack's (ARM's PUT is
    /// create-or-update): the object this stack "created" comes back carrying that stack's stamp.
    LosesTheRace(crate::provider::Owner),
    /// The connection is lost around the create and no read gets through afterwards: after the
    /// cloud accepted the create, or (`before_sending`) before it was sent (a refused connect).
    LosesTheConnection { before_sending: bool },
}

struct Interfering {
    inner: Arc<MemoryProvider>,
    address: &'static str,
    how: Interference,
    lost: std::sync::atomic::AtomicBool,
}

impl Interfering {
    fn new(inner: &Arc<MemoryProvider>, how: Interference) -> Arc<Self> {
        Arc::new(Self {
            inner: inner.clone(),
            address: "store",
            how,
            lost: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

fn connection_lost(unsent: bool) -> ProviderError {
    let mut e = ProviderError::new(ErrorKind::Transport, "connection lost");
    e.unsent = unsent;
    e
}

impl Provider for Interfering {
    fn read<'a>(
        &'a self,
        req: &'a crate::provider::ResourceRequest,
    ) -> crate::provider::ProviderFuture<'a, Option<crate::provider::Observed>> {
        Box::pin(async move {
            if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(connection_lost(true));
            }
            self.inner.read(req).await
        })
    }

    fn create<'a>(
        &'a self,
        req: &'a crate::provider::ResourceRequest,
    ) -> crate::provider::ProviderFuture<'a, crate::provider::Observed> {
        Box::pin(async move {
            if req.address != self.address {
                return self.inner.create(req).await;
            }
            match &self.how {
                Interference::LosesTheRace(winner) => {
                    let mut made = self.inner.create(req).await?;
                    made.owner = Some(winner.clone());
                    self.inner.insert(made.clone());
                    Ok(made)
                }
                Interference::LosesTheConnection { before_sending } => {
                    if !before_sending {
                        self.inner.create(req).await?;
                    }
                    self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    Err(connection_lost(*before_sending))
                }
            }
        })
    }

    fn update<'a>(
        &'a self,
        prior: &'a crate::provider::Observed,
        req: &'a crate::provider::ResourceRequest,
    ) -> crate::provider::ProviderFuture<'a, crate::provider::Observed> {
        self.inner.update(prior, req)
    }

    fn delete<'a>(
        &'a self,
        req: &'a crate::provider::ResourceRequest,
    ) -> crate::provider::ProviderFuture<'a, ()> {
        self.inner.delete(req)
    }
}

fn other_stack() -> crate::provider::Owner {
    crate::provider::Owner {
        lineage: String::from("00000000-0000-4000-8000-0000000000b2"),
        stack: String::from("other"),
    }
}

async fn run_on(
    plan: &ApplyPlan,
    state: StateFile,
    persistence: Persistence,
    provider: Arc<dyn Provider>,
) -> ApplyReport {
    run_with_specs(plan, state, persistence, provider, &registry()).await
}

async fn run_with_specs(
    plan: &ApplyPlan,
    state: StateFile,
    persistence: Persistence,
    provider: Arc<dyn Provider>,
    specs: &Registry,
) -> ApplyReport {
    apply(
        plan,
        state,
        persistence,
        provider,
        specs,
        options(1),
        Arc::new(NoEvents),
        Interrupt::new(),
    )
    .await
    .expect("plan is valid")
}

#[tokio::test]
async fn a_create_another_stack_won_is_refused_left_alone_and_never_recorded() {
    // Two stacks that created the same storage account both thought they owned it, and the one
    // that failed elsewhere deleted it in its rollback, under the other.
    let inner = Arc::new(MemoryProvider::new());
    let racing = Interfering::new(&inner, Interference::LosesTheRace(other_stack()));
    inner.fail(CallKind::Create, "blue", cloud_error("DeploymentFailed"));
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let report = run_on(&plan, StateFile::new("t"), Persistence::in_memory(), racing).await;
    let failure = report.summary.failure.as_ref().expect("a failure");
    assert_eq!(failure.address, "store");
    assert_eq!(
        failure.error.code.as_deref(),
        Some(super::ownership::OWNED_ELSEWHERE)
    );
    assert!(
        failure.error.message.contains("stack `other`"),
        "{}",
        failure.error.message
    );
    assert!(!report.state.resources.contains_key("store"));
    // The account is still there, the other stack's; nothing of this run is left.
    let objects = inner.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].id, "mem:/storage_account/mistore7f3a");
    assert_eq!(objects[0].owner, Some(other_stack()));
}

#[tokio::test]
async fn destroy_refuses_to_delete_what_another_stack_stamped_and_names_it() {
    // Before any delete (destroy or rollback), the object is read: one another stack's PUT took
    // over since this stack recorded it belongs to that stack now and was deleted anyway.
    let (provider, state) = created_reference_stack().await;
    let id = state.resources["store"].id.clone();
    let mut taken = provider.get(&id).expect("the account exists");
    assert!(
        taken
            .owner
            .as_ref()
            .is_some_and(|o| o.lineage == state.lineage.to_string()),
        "this stack's creates carry its stamp: {taken:?}"
    );
    taken.owner = Some(other_stack());
    provider.insert(taken);
    let plan = ApplyPlan::destroy(&state);
    let report = run_on(&plan, state, Persistence::in_memory(), provider.clone()).await;
    let failure = report.summary.failure.as_ref().expect("a failure");
    assert_eq!(failure.address, "store");
    assert!(
        failure.error.message.contains("stack `other`")
            && failure.error.message.contains("will not delete"),
        "{}",
        failure.error.message
    );
    assert!(
        provider.get(&id).is_some(),
        "the other stack's account survives"
    );
    assert_eq!(
        provider.count(CallKind::Delete),
        5,
        "every other object went"
    );
}

/// A durable run of the reference stack from no state whose create of `store` loses the connection
/// (see [`Interference::LosesTheConnection`]).
async fn durable_run_losing_the_connection(
    before_sending: bool,
) -> (
    tempfile::TempDir,
    StateStore,
    Arc<MemoryProvider>,
    ApplyPlan,
    ApplyReport,
) {
    let (dir, store, journal) = durable_store();
    let inner = Arc::new(MemoryProvider::new());
    let provider = Interfering::new(&inner, Interference::LosesTheConnection { before_sending });
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let report = run_on(
        &plan,
        StateFile::new("t"),
        Persistence::durable(store.clone(), journal),
        provider,
    )
    .await;
    (dir, store, inner, plan, report)
}

#[tokio::test]
async fn a_create_whose_outcome_is_unknown_stays_in_the_journal_until_a_read_settles_it() {
    // The cloud died during a create: apply took the failed read-back for "nothing was created",
    // reported "rolled back" and removed its journal, and the account it had created was orphaned.
    let (_dir, store, inner, plan, report) = durable_run_losing_the_connection(false).await;
    assert_eq!(report.summary.outcome, Outcome::Failed);
    assert_eq!(report.summary.unsettled, vec![String::from("store")]);
    assert!(!report.journal_cleared);
    assert!(inner.get("mem:/storage_account/mistore7f3a").is_some());
    // The next run, with the cloud back, settles it by reading: recorded, nothing orphaned.
    let opened = store.open_journal().expect("journal");
    let pending: Vec<&str> = opened
        .unfinished
        .iter()
        .map(|i| i.address.as_str())
        .collect();
    assert_eq!(pending, vec!["store"]);
    let mut state = store.read().expect("read").expect("state");
    let mut persistence = Persistence::durable(store.clone(), opened.journal);
    let expected = expected_from_plan(&plan, &state);
    let recovered = recover(inner.as_ref(), &mut state, &mut persistence, &expected)
        .await
        .expect("recovered");
    assert!(recovered.is_complete(), "{recovered:?}");
    assert_eq!(
        state.resources["store"].id,
        "mem:/storage_account/mistore7f3a"
    );
}

#[tokio::test]
async fn a_create_that_never_reached_the_cloud_did_not_happen() {
    // A connection refused before the create was sent proves nothing was created: the run rolls
    // back as for any failure and clears its journal.
    let (_dir, _store, inner, _plan, report) = durable_run_losing_the_connection(true).await;
    assert_eq!(report.summary.outcome, Outcome::RolledBack);
    assert!(report.summary.unsettled.is_empty());
    assert!(report.journal_cleared);
    assert!(inner.objects().is_empty(), "{:?}", inner.objects());
}

#[tokio::test]
async fn recovery_never_records_an_object_another_stack_stamped() {
    // A run killed during a create left its intent in the journal; by the next run another stack's
    // PUT had taken the name, and recovery recorded that stack's object as this one's.
    let (_dir, store, journal) = durable_store();
    let mut state = StateFile::new("t");
    store.write(&mut state, None).expect("state");
    journal
        .intent(crate::state::NewIntent {
            address: String::from("store"),
            resource_type: String::from("storage_account"),
            action: crate::state::JournalAction::Create,
            target: String::from("mem:/storage_account/mistore7f3a"),
        })
        .expect("intent");
    let provider = MemoryProvider::new();
    provider.insert(crate::provider::Observed {
        id: String::from("mem:/storage_account/mistore7f3a"),
        inputs: serde_json::Map::from_iter([(String::from("name"), json!("mistore7f3a"))]),
        outputs: serde_json::Map::new(),
        owner: Some(other_stack()),
    });
    let plan = plan_of(reference_stack(Action::Create, "none"));
    let expected = expected_from_plan(&plan, &state);
    let mut persistence = Persistence::durable(store.clone(), journal);
    let report = recover(&provider, &mut state, &mut persistence, &expected)
        .await
        .expect("recovered");
    assert_eq!(
        report.resolved,
        vec![(
            String::from("store"),
            crate::state::JournalAction::Create,
            RecoveryOutcome::Dropped
        )]
    );
    assert!(state.resources.is_empty(), "{:?}", state.resources);
    assert!(provider.get("mem:/storage_account/mistore7f3a").is_some());
}

#[tokio::test]
async fn a_create_that_adopts_existing_objects_never_adopts_another_stacks() {
    // A type whose name is derived from what it is (a role assignment) adopts an existing object,
    // but one another stack stamped stays that stack's.
    let adopting = adopting_registry();
    let plan = one_store_plan();
    let provider = existing_store(Some(other_stack()));
    let report = run_with_specs(
        &plan,
        StateFile::new("t"),
        Persistence::in_memory(),
        provider.clone(),
        &adopting,
    )
    .await;
    let failure = report.summary.failure.expect("the create was refused");
    assert!(
        failure.error.message.contains("stack `other`"),
        "{}",
        failure.error.message
    );
    assert!(report.state.resources.is_empty());
    assert_eq!(
        provider.count(CallKind::Create),
        0,
        "nothing was sent over it"
    );
    assert_eq!(
        provider
            .get("mem:/storage_account/mistore7f3a")
            .and_then(|o| o.owner),
        Some(other_stack())
    );
}

/// A destroy of 10,000 resources peaked while it prepared its run: what the refresh read was copied
/// into the apply plan beside the snapshot it came from (a delete keeps the live inputs for its
/// rollback). The apply plan takes them from the snapshot, without a copy.
#[test]
fn the_apply_plan_takes_what_the_refresh_read_without_a_copy() {
    let mut state = StateFile::new("t");
    state.record(
        "a",
        crate::state::ResourceState::new("blob_container", "id-a", json!({"name": "a"}), json!({})),
    );
    let id = String::from("id-a");
    let inputs = json!({"name": "a", "metadata": {"k": "a value the live side holds"}});
    let (id_at, name_at) = (id.as_ptr(), inputs["name"].as_str().map(str::as_ptr));
    let live = std::collections::HashMap::from([(
        "a".to_owned(),
        crate::plan::Live::present(id, inputs, json!({})),
    )]);
    let plan = ApplyPlan::destroy(&state).with_refreshed(live, &state);
    let kept = &plan.refreshed["a"];
    assert_eq!(kept.inputs["metadata"]["k"], "a value the live side holds");
    assert_eq!(kept.id.as_ptr(), id_at, "the id is the snapshot's");
    assert_eq!(
        kept.inputs["name"].as_str().map(str::as_ptr),
        name_at,
        "the inputs are the snapshot's"
    );
}
