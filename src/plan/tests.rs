use serde_json::{Value, json};

use super::testing::*;
use super::*;
use crate::state::{ResourceStatus, StateFile, sensitive};

fn registry() -> Registry {
    Registry::embedded().expect("embedded specs load")
}

fn plan_of(stack: &Stack, snapshot: &Snapshot, extras: &DesiredExtras, mode: PlanMode) -> Plan {
    let graph = testing::graph_of(stack);
    match plan(stack, &graph, &registry(), snapshot, extras, mode) {
        Ok(p) => p,
        Err(errors) => panic!("planning failed: {errors:?}"),
    }
}

fn actions(p: &Plan) -> Vec<(&str, Action)> {
    p.changes
        .iter()
        .map(|c| (c.address.as_str(), c.action))
        .collect()
}

/// The scenario applied, then refreshed with nothing changed.
fn applied() -> (Stack, DesiredExtras, StateFile) {
    let stack = scenario().build();
    let extras = scenario_extras(HELLO);
    let state = applied_state(&stack, &extras);
    (stack, extras, state)
}

#[test]
fn empty_state_creates_everything_in_dependency_order() {
    let stack = scenario().build();
    let p = plan_of(
        &stack,
        &Snapshot::default(),
        &scenario_extras(HELLO),
        PlanMode::Normal,
    );
    assert_eq!(
        actions(&p),
        vec![
            ("store", Action::Create),
            ("data", Action::Create),
            ("greeting", Action::Create),
            ("endpoint", Action::Create),
            ("reader", Action::Create),
            ("blue", Action::Create),
        ]
    );
    // The endpoint's traffic map is set once its deployment exists: one update of the endpoint
    // (before the map was its own step, the deployment's create set it unseen).
    assert_eq!(
        (p.summary.add, p.summary.change, p.summary.destroy),
        (6, 1, 0)
    );
    let reader = p.change("reader").expect("planned");
    let principal = reader
        .attributes
        .iter()
        .find(|a| a.path == "principal_id")
        .expect("listed");
    assert_eq!(principal.after, PlanValue::Unknown);
    // Known fields of a created resource stay known for those who refer to them.
    let blue = p.change("blue").expect("planned");
    let account = blue
        .attributes
        .iter()
        .find(|a| a.path == "environment_variables.STORAGE_ACCOUNT_NAME")
        .expect("listed");
    assert_eq!(account.after, PlanValue::Known(json!("mistore7f3a")));
    let endpoint_url = blue
        .attributes
        .iter()
        .find(|a| a.path == "environment_variables.STORAGE_BLOB_ENDPOINT")
        .expect("listed");
    assert_eq!(endpoint_url.after, PlanValue::Unknown);
    assert!(p.outputs.iter().all(|o| o.action == Action::Create));
    assert!(p.has_changes());
    assert!(p.prior_state.is_none());
}

#[test]
fn applied_state_plans_no_changes_refreshed_or_not() {
    let (stack, extras, state) = applied();
    for snapshot in [
        refreshed(&state),
        Snapshot {
            state: Some(state.clone()),
            live: Default::default(),
        },
    ] {
        let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
        assert!(!p.has_changes(), "{:#?}", p.changes);
        assert!(p.drift.is_empty(), "{:#?}", p.drift);
        assert!(p.changes.iter().all(|c| c.action.is_noop()));
    }
}

#[test]
fn service_spellings_ids_roles_and_defaults_are_not_changes() {
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    // The cloud spells the scope in another case, the role as a full definition id, leaves out
    // fields that hold their defaults, and adds fields stackform does not own.
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("reader") {
        let scope = inputs["scope"].as_str().expect("scope").to_uppercase();
        inputs["scope"] = json!(scope);
        inputs["role"] = json!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/2A2B9908-6EA1-4AE2-8E65-A410DF84E7D1"
        );
        inputs["principal_id"] = json!(inputs["principal_id"].as_str().expect("id").to_uppercase());
    }
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("store") {
        let obj = inputs.as_object_mut().expect("object");
        obj.remove("access_tier");
        obj.remove("minimum_tls_version");
        obj.insert("location".into(), json!("eastus"));
        obj.insert("kind".into(), json!("storagev2"));
    }
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    assert!(!p.has_changes(), "{:#?}", p.changes);
    assert!(p.drift.is_empty(), "{:#?}", p.drift);
}

#[test]
fn a_real_difference_in_an_id_field_still_counts() {
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("reader") {
        inputs["role"] = json!("Storage Blob Data Contributor");
    }
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    let reader = p.change("reader").expect("planned");
    assert!(reader.action.is_replace());
    assert_eq!(
        reader.reasons,
        vec![ActionReason::ImmutableField {
            field: "role".into(),
            reason: "a role assignment cannot change its role in place".into()
        }]
    );
    assert_eq!(p.drift.len(), 1);
    assert_eq!(p.drift[0].attributes[0].path, "role");
}

#[test]
fn changed_blob_file_is_an_update_with_both_texts() {
    let (stack, _, state) = applied();
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { content, .. }) = snapshot.live.get_mut("greeting") {
        content.insert("source".into(), text_content(HELLO));
    }
    let extras = scenario_extras("hello there\nfrom the managed identity guide\n");
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    let greeting = p.change("greeting").expect("planned");
    assert_eq!(greeting.action, Action::Update);
    let source = &greeting.attributes[0];
    assert_eq!(source.path, "source");
    let content = source.content.as_ref().expect("content change");
    assert_eq!(content.before_text.as_deref(), Some(HELLO));
    assert!(
        content
            .after_text
            .as_deref()
            .is_some_and(|t| t.starts_with("hello there"))
    );
    assert_eq!(actions(&p).iter().filter(|(_, a)| !a.is_noop()).count(), 1);
}

#[test]
fn unrefreshed_content_compares_with_the_recorded_hash() {
    let (stack, _, state) = applied();
    let snapshot = Snapshot {
        state: Some(state),
        live: Default::default(),
    };
    let p = plan_of(
        &stack,
        &snapshot,
        &scenario_extras("changed\n"),
        PlanMode::Normal,
    );
    assert_eq!(p.change("greeting").map(|c| c.action), Some(Action::Update));
}

#[test]
fn endpoint_identity_change_replaces_it_and_knocks_on() {
    let (_, extras, state) = applied();
    let stack = uai_endpoint_scenario().build();
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    let endpoint = p.change("endpoint").expect("planned");
    assert_eq!(
        endpoint.action,
        Action::Replace(ReplaceOrder::DeleteBeforeCreate)
    );
    assert!(
        matches!(&endpoint.reasons[0], ActionReason::ImmutableField { field, reason }
        if field == "identity.type" && reason == "identity cannot change after the endpoint is created")
    );
    let reader = p.change("reader").expect("planned");
    assert!(reader.action.is_replace());
    assert!(
        matches!(&reader.reasons[0], ActionReason::KnockOn { upstream, attribute, field, .. }
        if upstream == "endpoint" && attribute == "identity.principal_id" && field == "principal_id")
    );
    let blue = p.change("blue").expect("planned");
    assert!(blue.action.is_replace());
    assert!(blue.reasons.contains(&ActionReason::ParentReplaced {
        parent: "endpoint".into(),
        child_type: "online_deployment".into(),
        parent_created: false,
    }));
    for untouched in ["store", "data", "greeting"] {
        assert_eq!(p.change(untouched).map(|c| c.action), Some(Action::NoOp));
    }
    // The map is emptied on the old endpoint before blue goes, and set on the new one after: one
    // change of its own (an interim and a final update).
    assert_eq!(
        (p.summary.add, p.summary.change, p.summary.destroy),
        (3, 1, 3)
    );
    let scoring = p
        .outputs
        .iter()
        .find(|o| o.name == "scoring_uri")
        .expect("output");
    assert_eq!(scoring.after, PlanValue::Unknown);
    assert_eq!(scoring.action, Action::Update);
}

#[test]
fn renaming_the_storage_account_creates_the_new_one_first_and_replaces_its_children() {
    let (_, extras, state) = applied();
    let stack = scenario()
        .res(
            "store",
            "storage_account",
            vec![("name", s("mistore9999")), ("sku", s("Standard_LRS"))],
        )
        .build();
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    assert_eq!(
        p.change("store").map(|c| c.action),
        Some(Action::Replace(ReplaceOrder::CreateBeforeDelete))
    );
    let data = p.change("data").expect("planned");
    assert_eq!(
        data.action,
        Action::Replace(ReplaceOrder::DeleteBeforeCreate)
    );
    assert!(
        data.reasons
            .iter()
            .any(|r| matches!(r, ActionReason::ParentReplaced { parent, .. } if parent == "store"))
    );
    // The role assignment's scope is the new account's id, known only after apply.
    assert!(p.change("reader").is_some_and(|c| c.action.is_replace()));
    // The deployment only reads the account's name and endpoint: an update, not a replacement.
    assert_eq!(p.change("blue").map(|c| c.action), Some(Action::Update));
}

#[test]
fn removed_resources_are_deleted_first_dependents_before_prerequisites() {
    let (_, extras, state) = applied();
    let mut b = StackBuilder::new();
    for (name, ty, inputs) in [
        (
            "store",
            "storage_account",
            vec![("name", s("mistore7f3a")), ("sku", s("Standard_LRS"))],
        ),
        (
            "endpoint",
            "online_endpoint",
            vec![
                ("name", s("my-sai-endpoint-7f3a")),
                ("auth_mode", s("key")),
                ("identity", map(vec![("type", s("system_assigned"))])),
            ],
        ),
    ] {
        b = b.res(name, ty, inputs);
    }
    let stack = b.build();
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    let deleted: Vec<&str> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| c.address.as_str())
        .collect();
    assert_eq!(deleted, vec!["blue", "reader", "greeting", "data"]);
    assert!(
        p.changes[..4]
            .iter()
            .all(|c| c.reasons == vec![ActionReason::RemovedFromConfig])
    );
    assert_eq!(p.summary.destroy, 4);
    assert!(p.outputs.iter().all(|o| o.action == Action::Delete));
}

#[test]
fn tainted_resources_are_replaced() {
    let (stack, extras, mut state) = applied();
    state.taint("greeting");
    assert_eq!(state.resources["greeting"].status, ResourceStatus::Tainted);
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    let greeting = p.change("greeting").expect("planned");
    assert_eq!(
        greeting.action,
        Action::Replace(ReplaceOrder::DeleteBeforeCreate)
    );
    assert_eq!(greeting.reasons, vec![ActionReason::Tainted]);
    assert_eq!(p.change("blue").map(|c| c.action), Some(Action::NoOp));
}

#[test]
fn gone_resources_are_created_again_and_reported_as_drift() {
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    snapshot.live.insert("reader".into(), Live::Gone);
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    let reader = p.change("reader").expect("planned");
    assert_eq!(reader.action, Action::Create);
    assert_eq!(reader.reasons, vec![ActionReason::GoneFromCloud]);
    // A parent found gone is created again, and what lived in it with it.
    let mut snapshot = refreshed(&state);
    snapshot.live.insert("data".into(), Live::Gone);
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    assert_eq!(p.change("data").map(|c| c.action), Some(Action::Create));
    let greeting = p.change("greeting").expect("planned");
    assert!(greeting.action.is_replace());
    assert_eq!(
        greeting.reasons[0].message(),
        "`data` is created anew, so the blobs in it are created again"
    );
    assert_eq!(p.drift.len(), 1);
    assert!(p.drift[0].gone);
    assert_eq!(p.change("blue").map(|c| c.action), Some(Action::NoOp));
}

#[test]
fn destroy_mode_deletes_everything_in_reverse_dependency_order() {
    let (stack, extras, state) = applied();
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Destroy);
    assert_eq!(
        actions(&p),
        vec![
            ("blue", Action::Delete),
            ("reader", Action::Delete),
            ("endpoint", Action::Delete),
            ("greeting", Action::Delete),
            ("data", Action::Delete),
            ("store", Action::Delete),
        ]
    );
    assert_eq!(p.summary.destroy, 6);
    assert!(p.drift.is_empty());
}

#[test]
fn refresh_only_reports_drift_and_plans_nothing() {
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("blue") {
        inputs["instance_count"] = json!(3);
    }
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::RefreshOnly);
    assert!(p.changes.is_empty());
    assert!(!p.has_changes());
    assert_eq!(p.drift.len(), 1);
    let a = &p.drift[0].attributes[0];
    assert_eq!(a.path, "instance_count");
    assert_eq!(a.before.as_deref(), Some(&PlanValue::Known(json!(1))));
    assert_eq!(a.after, PlanValue::Known(json!(3)));
    assert!(!a.forces_replacement);
}

#[test]
fn sensitive_values_compare_through_state_markers_and_are_never_in_the_plan() {
    let (mut stack, extras, mut state) = applied();
    let secret = "s3cr3t-value";
    let blue = stack.resources.get_mut("blue").expect("blue");
    if let Some(crate::stack::ExprKind::Map(env)) = blue
        .inputs
        .get_mut("environment_variables")
        .map(|e| &mut e.kind)
    {
        let mut v = e(s(secret));
        v.sensitive = true;
        env.insert("API_KEY".into(), v);
    }
    let rec = state.resources.get_mut("blue").expect("blue");
    rec.inputs["environment_variables"]["API_KEY"] = json!(secret);
    rec.sensitive =
        vec![crate::state::FieldPath::parse("environment_variables.API_KEY").expect("path")];
    rec.redact(&LINEAGE);
    assert!(sensitive::is_redacted(
        &rec.inputs["environment_variables"]["API_KEY"]
    ));
    let snapshot = Snapshot {
        state: Some(state.clone()),
        live: Default::default(),
    };
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    assert!(!p.has_changes(), "{:#?}", p.change("blue"));

    if let Some(crate::stack::ExprKind::Map(env)) = stack
        .resources
        .get_mut("blue")
        .and_then(|b| b.inputs.get_mut("environment_variables"))
        .map(|e| &mut e.kind)
        && let Some(v) = env.get_mut("API_KEY")
    {
        v.kind = s("rotated-secret");
    }
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    let blue = p.change("blue").expect("planned");
    assert_eq!(blue.action, Action::Update);
    assert_eq!(blue.attributes.len(), 1);
    assert!(blue.attributes[0].sensitive);
    assert_eq!(blue.attributes[0].after, PlanValue::Sensitive);
    let text = p.to_json().to_string();
    assert!(
        !text.contains("rotated-secret") && !text.contains(secret),
        "{text}"
    );
}

#[test]
fn foreign_state_is_refused() {
    let (stack, extras, mut state) = applied();
    state.stack = "other".into();
    let graph = graph_of(&stack);
    let snapshot = Snapshot {
        state: Some(state),
        live: Default::default(),
    };
    let err = plan(
        &stack,
        &graph,
        &registry(),
        &snapshot,
        &extras,
        PlanMode::Normal,
    )
    .expect_err("foreign state");
    assert_eq!(
        err[0].to_string(),
        "the state belongs to stack `other`, not `managed-identity`"
    );
}

#[test]
fn json_form_is_versioned_and_marks_unknowns() {
    let stack = scenario().build();
    let p = plan_of(
        &stack,
        &Snapshot::default(),
        &scenario_extras(HELLO),
        PlanMode::Normal,
    );
    let j = p.to_json();
    assert_eq!(j["schema_version"], json!(1));
    assert_eq!(j["changes"][0]["action"], json!("create"));
    let reader = &j["changes"][4];
    assert_eq!(reader["address"], json!("reader"));
    assert_eq!(reader["after"]["principal_id"], json!({"$unknown": true}));
    assert_eq!(reader["after"]["role"], json!("Storage Blob Data Reader"));
    assert_eq!(j["outputs"][0]["after"], json!({"$unknown": true}));
    assert!(j["prior_state"].is_null());
    let _: &Value = &j["summary"];
}

mod property {
    //! For any stack, planning against the state its own apply would record gives no changes.
    use proptest::prelude::*;

    use super::*;
    use crate::specs::{FieldSpec, FieldType};
    use crate::stack::ExprKind;

    /// A deterministic stream of choices drawn by proptest.
    struct Choices<'a> {
        values: &'a [u32],
        at: usize,
    }

    impl Choices<'_> {
        fn next(&mut self) -> u32 {
            let v = self
                .values
                .get(self.at % self.values.len().max(1))
                .copied()
                .unwrap_or(0);
            self.at += 1;
            v.wrapping_add(self.at as u32 * 7919)
        }
    }

    /// A string value: a literal, a reference to an earlier resource's attribute or string field,
    /// or a template around one.
    fn string_value(c: &mut Choices<'_>, earlier: &[(String, Vec<String>)]) -> ExprKind {
        if !earlier.is_empty() && c.next().is_multiple_of(3) {
            let (res, names) = &earlier[c.next() as usize % earlier.len()];
            let attr = names[c.next() as usize % names.len()].clone();
            if c.next().is_multiple_of(2) {
                return r(res, &attr);
            }
            return tpl(&[("pre-", Some((res, &attr))), ("-post", None)]);
        }
        s(&format!("v{}", c.next() % 1000))
    }

    fn value(
        f: &FieldSpec,
        c: &mut Choices<'_>,
        earlier: &[(String, Vec<String>)],
    ) -> Option<ExprKind> {
        Some(match f.kind {
            FieldType::String => match &f.allowed {
                Some(words) => s(&words[c.next() as usize % words.len()]),
                None => string_value(c, earlier),
            },
            FieldType::Integer => {
                let lo = f.minimum.unwrap_or(0);
                let hi = f.maximum.unwrap_or(lo + 50);
                int(lo + i64::from(c.next()) % (hi - lo + 1))
            }
            FieldType::Number => ExprKind::Float(f64::from(c.next() % 100) / 4.0),
            FieldType::Boolean => ExprKind::Bool(c.next().is_multiple_of(2)),
            FieldType::Path => path(&format!("files/f{}", c.next() % 5)),
            FieldType::Map => map((0..c.next() % 3)
                .map(|i| {
                    let key: &'static str = ["A", "B", "C"][i as usize];
                    (key, string_value(c, earlier))
                })
                .collect()),
            FieldType::List => ExprKind::List(
                (0..c.next() % 3)
                    .map(|_| e(string_value(c, earlier)))
                    .collect(),
            ),
            FieldType::Object => {
                if f.string_form.is_some() && c.next().is_multiple_of(4) {
                    s(&format!("azureml:thing:{}", c.next() % 9))
                } else {
                    let nested = f.fields.as_ref()?;
                    let mut entries = Vec::new();
                    for (name, nf) in nested {
                        if (nf.required || c.next().is_multiple_of(2))
                            && let Some(v) = value(nf, c, earlier)
                        {
                            entries.push((name.as_str(), v));
                        }
                    }
                    map(entries)
                }
            }
        })
    }

    fn random_stack(blocks: &[(usize, Vec<u32>)]) -> (Stack, DesiredExtras) {
        let registry = registry();
        let types: Vec<&str> = registry.type_names().collect();
        let mut b = StackBuilder::new();
        let mut earlier: Vec<(String, Vec<String>)> = Vec::new();
        for (i, (t, values)) in blocks.iter().enumerate() {
            let type_name = types[t % types.len()];
            let spec = registry.get(type_name).expect("known type");
            let mut c = Choices { values, at: 0 };
            let mut inputs = Vec::new();
            let mut string_fields = Vec::new();
            for (name, f) in &spec.fields {
                if (f.required || c.next().is_multiple_of(2))
                    && let Some(v) = value(f, &mut c, &earlier)
                {
                    if f.kind == FieldType::String {
                        string_fields.push(name.clone());
                    }
                    inputs.push((name.as_str(), v));
                }
            }
            let name = format!("r{i}");
            b = b.res(&name, type_name, inputs);
            let mut names: Vec<String> = spec.attributes.keys().cloned().collect();
            names.extend(string_fields);
            earlier.push((name, names));
        }
        let stack = b.build();
        let mut extras = DesiredExtras::default();
        for (address, res) in &stack.resources {
            let spec = registry.get(&res.type_name).expect("known type");
            let mut found = Vec::new();
            content::path_exprs(&spec.fields, "", &res.inputs, &mut found);
            let files: IndexMap<String, FileContent> = found
                .into_iter()
                .map(|(field, p)| (field, text_content(&p.display().to_string())))
                .collect();
            if !files.is_empty() {
                extras.resources.insert(address.clone(), files);
            }
        }
        (stack, extras)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn planning_against_its_own_applied_state_changes_nothing(
            blocks in proptest::collection::vec(
                (0usize..7, proptest::collection::vec(any::<u32>(), 1..24)),
                1..9,
            )
        ) {
            let (stack, extras) = random_stack(&blocks);
            // References go only to earlier resources, but a literal can equal a later resource's
            // name and infer a dependency back (a deployment's endpoint name, a blob's account):
            // such a stack is a circle that `validate` refuses, not one that can be planned.
            prop_assume!(crate::graph::build(&stack, &registry()).is_ok());
            let state = applied_state(&stack, &extras);
            for snapshot in [
                refreshed(&state),
                Snapshot { state: Some(state.clone()), live: Default::default() },
            ] {
                let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
                let changed: Vec<&Change> =
                    p.changes.iter().filter(|c| !c.action.is_noop()).collect();
                prop_assert!(changed.is_empty(), "{:#?}", changed);
                prop_assert!(p.drift.is_empty(), "{:#?}", p.drift);
                prop_assert!(!p.has_changes(), "{:#?}", p.outputs);
            }
            // And against nothing, everything is created.
            let fresh = plan_of(&stack, &Snapshot::default(), &extras, PlanMode::Normal);
            prop_assert_eq!(fresh.summary.add, stack.resources.len());
        }
    }
}

/// Regression: a kept resource's computed attribute that the cloud reported as null was treated as
/// unknown, so an immutable field referring to it forced a replacement on every plan.
#[test]
fn a_null_attribute_of_a_kept_resource_is_known() {
    let stack = StackBuilder::new()
        .res(
            "b0",
            "blob",
            vec![
                ("account", s("acct")),
                ("container", s("c")),
                ("name", s("a.txt")),
                ("content", s("inline")),
            ],
        )
        .res(
            "b1",
            "blob",
            vec![
                ("account", s("acct")),
                ("container", r("b0", "content_sha256")),
                ("name", s("b.txt")),
                ("content", s("inline")),
            ],
        )
        .build();
    let extras = DesiredExtras::default();
    let state = applied_state(&stack, &extras);
    assert_eq!(state.resources["b0"].outputs["content_sha256"], Value::Null);
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    assert!(!p.has_changes(), "{:#?}", p.changes);
}

#[test]
fn sensitive_outputs_are_hidden_and_not_a_perpetual_change() {
    let mut b = scenario();
    b = b.output("storage", r("store", "name"));
    let mut stack = b.build();
    if let Some(o) = stack.outputs.get_mut("storage") {
        o.sensitive = true;
    }
    let extras = scenario_extras(HELLO);
    let mut state = applied_state(&stack, &extras);
    state.outputs.shift_remove("storage");
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    assert!(!p.has_changes(), "{:#?}", p.outputs);
    let fresh = plan_of(&stack, &Snapshot::default(), &extras, PlanMode::Normal);
    let storage = fresh
        .outputs
        .iter()
        .find(|o| o.name == "storage")
        .expect("planned");
    assert_eq!(storage.action, Action::Create);
    assert_eq!(storage.after, PlanValue::Sensitive);
    let j = fresh.to_json();
    assert_eq!(j["outputs"][3]["name"], json!("storage"));
    assert_eq!(j["outputs"][3]["after"], json!("(sensitive)"));
}

/// Prints how long planning a large stack takes (creates, then no changes). A benchmark, not a test
/// of speed: run with `cargo test --release --lib plan_scale -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; prints figures"]
fn plan_scale() {
    let n: usize = std::env::var("PLAN_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut b =
        StackBuilder::new().res("store", "storage_account", vec![("name", s("mistore7f3a"))]);
    for i in 0..n {
        let c = format!("c{i}");
        b = b
            .res(
                &c,
                "blob_container",
                vec![
                    ("account", r("store", "name")),
                    ("name", s(&format!("c{i}"))),
                ],
            )
            .res(
                &format!("b{i}"),
                "blob",
                vec![
                    ("account", s("mistore7f3a")),
                    ("container", r(&c, "name")),
                    ("name", s("x.txt")),
                    ("content", s("hello")),
                ],
            );
    }
    let stack = b.build();
    let extras = DesiredExtras::default();
    let started = std::time::Instant::now();
    let graph = graph_of(&stack);
    let built = started.elapsed();
    let reg = registry();
    let started = std::time::Instant::now();
    let fresh = plan(
        &stack,
        &graph,
        &reg,
        &Snapshot::default(),
        &extras,
        PlanMode::Normal,
    )
    .expect("plans");
    let create = started.elapsed();
    let state = applied_state(&stack, &extras);
    let snapshot = refreshed(&state);
    let started = std::time::Instant::now();
    let again = plan(&stack, &graph, &reg, &snapshot, &extras, PlanMode::Normal).expect("plans");
    let noop = started.elapsed();
    assert_eq!(fresh.summary.add, 2 * n + 1);
    assert!(!again.has_changes());
    println!(
        "{} resources: graph {built:?}, plan from nothing {create:?}, plan with no changes {noop:?}",
        2 * n + 1
    );
}

// ---------------------------------------------------------------------------------------------------
// Maps of `aggregate` entries: an endpoint's traffic

fn split(blue: i64, green: Option<i64>) -> Stack {
    let b = scenario().res("blue", "online_deployment", deployment_inputs("blue", blue));
    match green {
        Some(g) => b
            .res("green", "online_deployment", deployment_inputs("green", g))
            .build(),
        None => b.build(),
    }
}

fn shares(entries: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn traffic(p: &Plan) -> &MapChange {
    p.map_change("endpoint")
        .expect("a traffic change of the endpoint")
}

#[test]
fn a_new_deployment_joins_the_map_after_its_create() {
    let extras = scenario_extras(HELLO);
    let state = applied_state(&split(100, None), &extras);
    let p = plan_of(
        &split(50, Some(50)),
        &refreshed(&state),
        &extras,
        PlanMode::Normal,
    );
    // A changed share alone never updates the deployment: only green is created (at 0) ...
    let changed: Vec<(&str, Action)> = actions(&p)
        .into_iter()
        .filter(|(_, a)| !a.is_noop())
        .collect();
    assert_eq!(changed, vec![("green", Action::Create)]);
    // ... and the endpoint's whole map follows, waiting for both members.
    let m = traffic(&p);
    assert_eq!(m.action, Action::Update);
    assert_eq!(m.owner.as_deref(), Some("my-sai-endpoint-7f3a"));
    assert_eq!(m.map, "properties.traffic");
    assert_eq!(m.before, shares(&[("blue", 100)]));
    assert_eq!(m.after, Some(shares(&[("blue", 50), ("green", 50)])));
    let members: Vec<&str> = m.members.iter().map(|x| x.address.as_str()).collect();
    assert_eq!(members, vec!["blue", "green"]);
    assert!(m.releases.is_empty() && m.interim.is_none());
    assert_eq!(p.summary.add, 1);
    assert_eq!(p.summary.change, 1, "the map is one change");
    // Applied (the map recorded), the same stack plans nothing.
    let after = applied_state(&split(50, Some(50)), &extras);
    let again = plan_of(
        &split(50, Some(50)),
        &refreshed(&after),
        &extras,
        PlanMode::Normal,
    );
    assert!(!again.has_changes(), "{:#?}", again.maps);
    assert_eq!(traffic(&again).action, Action::NoOp);
}

#[test]
fn a_removed_deployment_gives_up_its_share_before_its_delete() {
    let extras = scenario_extras(HELLO);
    let state = applied_state(&split(50, Some(50)), &extras);
    let stack = green_only(100);
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    assert_eq!(p.change("blue").map(|c| c.action), Some(Action::Delete));
    let m = traffic(&p);
    assert_eq!(m.before, shares(&[("blue", 50), ("green", 50)]));
    assert_eq!(m.after, Some(shares(&[("green", 100)])));
    assert_eq!(
        m.releases,
        vec!["blue".to_owned()],
        "blue's delete waits for the map"
    );
    assert!(m.interim.is_none());
    // Destroy empties the map before the deletes.
    let d = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Destroy);
    let m = traffic(&d);
    assert_eq!(m.after, Some(shares(&[])));
    let mut releases = m.releases.clone();
    releases.sort();
    assert_eq!(releases, vec!["blue".to_owned(), "green".to_owned()]);
    assert_eq!(
        d.summary.change, 1,
        "emptying the map is one endpoint update"
    );
}

#[test]
fn a_deployment_replaced_while_it_serves_is_taken_out_of_the_map_and_back() {
    let extras = scenario_extras(HELLO);
    let state = applied_state(&split(50, Some(50)), &extras);
    let mut blue = deployment_inputs("blue", 50);
    for (k, v) in &mut blue {
        if *k == "instance_type" {
            *v = s("Standard_F4s_v2");
        }
    }
    let stack = scenario()
        .res("blue", "online_deployment", blue)
        .res("green", "online_deployment", deployment_inputs("green", 50))
        .build();
    let p = plan_of(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    assert_eq!(
        p.change("blue").map(|c| c.action),
        Some(Action::Replace(ReplaceOrder::DeleteBeforeCreate))
    );
    let m = traffic(&p);
    // Green serves alone while blue is replaced, then the split comes back.
    assert_eq!(m.interim, Some(shares(&[("green", 100)])));
    assert_eq!(m.after, Some(shares(&[("blue", 50), ("green", 50)])));
    assert_eq!(m.releases, vec!["blue".to_owned()]);
}

#[test]
fn shares_that_change_only_in_the_cloud_are_drift_and_a_map_change() {
    let extras = scenario_extras(HELLO);
    let stack = split(50, Some(50));
    let state = applied_state(&stack, &extras);
    let mut snapshot = refreshed(&state);
    for (name, share) in [("blue", 100), ("green", 0)] {
        if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut(name) {
            inputs["traffic"] = json!(share);
        }
    }
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    let drifted: Vec<&str> = p.drift.iter().map(|d| d.address.as_str()).collect();
    assert_eq!(drifted, vec!["blue", "green"]);
    assert!(actions(&p).iter().all(|(_, a)| a.is_noop()));
    let m = traffic(&p);
    assert_eq!(m.before, shares(&[("blue", 100)]));
    assert_eq!(m.after, Some(shares(&[("blue", 50), ("green", 50)])));
}

#[test]
fn a_changed_traffic_default_reaches_the_map() {
    let mut reg = registry();
    let dep = reg.get_mut("online_deployment").expect("spec");
    assert!(dep.set_default("traffic", json!(100)));
    // The loader fills defaults in; a member without the field falls back to the spec's default.
    let mut stack = scenario().build();
    if let Some(blue) = stack.resources.get_mut("blue") {
        blue.inputs.shift_remove("traffic");
    }
    let p = plan(
        &stack,
        &graph_of(&stack),
        &reg,
        &Snapshot::default(),
        &scenario_extras(HELLO),
        PlanMode::Normal,
    )
    .expect("plans");
    assert_eq!(traffic(&p).after, Some(shares(&[("blue", 100)])));
}

#[test]
fn an_empty_map_read_back_from_the_cloud_is_not_a_removal() {
    // The bug: after `state import` of a container, its record held `metadata: {}` as the cloud
    // reported it, and the plan showed `metadata: {} → null` for a stack file that sets none.
    let (stack, extras, mut state) = applied();
    if let Some(r) = state.resources.get_mut("data") {
        r.inputs["metadata"] = json!({});
    }
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("data") {
        inputs["metadata"] = json!({});
    }
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    assert_eq!(p.change("data").map(|c| c.action), Some(Action::NoOp));
    assert!(!p.has_changes(), "{:#?}", p.changes);
    // A map the record holds with entries is still removed when the file drops it.
    if let Some(r) = state.resources.get_mut("data") {
        r.inputs["metadata"] = json!({ "team": "ml" });
    }
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("data") {
        inputs["metadata"] = json!({ "team": "ml" });
    }
    let p = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    assert_eq!(p.change("data").map(|c| c.action), Some(Action::Update));
}

#[test]
fn a_moved_record_plans_no_change_at_its_new_address() {
    // `store` renamed `storage` in the file with `moved: { from: store }`: once the move is
    // followed in state, nothing is deleted or created.
    let (stack, extras, mut state) = applied();
    let mut renamed = stack.clone();
    let store = renamed.resources.shift_remove("store").expect("store");
    renamed.resources.insert_before(
        0,
        "storage".to_string(),
        Resource {
            name: "storage".into(),
            moved_from: Some(("store".into(), store.loc.clone())),
            ..store
        },
    );
    for r in renamed.resources.values_mut() {
        for e in r.inputs.values_mut() {
            rename_refs(e, "store", "storage");
        }
    }
    let moved = moves::apply_moves(&renamed, &mut state).expect("moved");
    assert_eq!(moved.len(), 1);
    let extras = DesiredExtras {
        resources: extras
            .resources
            .into_iter()
            .map(|(a, c)| (if a == "store" { "storage".into() } else { a }, c))
            .collect(),
    };
    let p = plan_of(&renamed, &refreshed(&state), &extras, PlanMode::Normal);
    assert!(!p.has_changes(), "{:#?}", p.changes);
    assert_eq!(p.change("storage").map(|c| c.action), Some(Action::NoOp));
    assert!(p.change("store").is_none());
}

fn rename_refs(e: &mut Expr, from: &str, to: &str) {
    use crate::stack::{ExprKind, TemplatePart};
    match &mut e.kind {
        ExprKind::Ref(r) if r.resource == from => r.resource = to.to_string(),
        ExprKind::Template(parts) => {
            for p in parts {
                if let TemplatePart::Ref(r) = p
                    && r.resource == from
                {
                    r.resource = to.to_string();
                }
            }
        }
        ExprKind::List(items) => items.iter_mut().for_each(|i| rename_refs(i, from, to)),
        ExprKind::Map(m) => m.values_mut().for_each(|i| rename_refs(i, from, to)),
        _ => {}
    }
}

/// A plan of 10,000 resources held 31 MB of attribute lists (75 MB at its peak): each list kept up
/// to half its room spare (grown by doubling, or collected in the place of the larger diff items)
/// and each attribute took 290 bytes, mostly for a before and a content a creation never has. The
/// lists (of a creation, an update and drift) are exact and an attribute is small.
#[test]
fn attribute_lists_hold_no_spare_room_and_attributes_stay_small() {
    let stack = scenario().build();
    let created = plan_of(
        &stack,
        &Snapshot::default(),
        &scenario_extras(HELLO),
        PlanMode::Normal,
    );
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("blue") {
        inputs["instance_count"] = json!(3);
    }
    let updated = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    assert_eq!(
        updated.change("blue").map(|c| c.action),
        Some(Action::Update)
    );
    let lists = created
        .changes
        .iter()
        .chain(&updated.changes)
        .map(|c| (&c.address, &c.attributes))
        .chain(updated.drift.iter().map(|d| (&d.address, &d.attributes)));
    let mut seen = 0;
    for (address, attributes) in lists {
        assert_eq!(attributes.capacity(), attributes.len(), "`{address}`");
        seen += attributes.len();
    }
    assert!(seen > 20, "the plans list attributes ({seen})");
    assert!(
        std::mem::size_of::<AttributeChange>() <= 128,
        "an attribute takes {} bytes",
        std::mem::size_of::<AttributeChange>()
    );
}

/// A destroy plan held, at a destroy's peak memory, a copy of every recorded input as its deletions'
/// `before`, which only the JSON plan shows. A destroy plan made to be shown keeps none; the rest is
/// the same (`report::plan`'s tests check that it reads the same).
#[test]
fn a_destroy_plan_to_show_keeps_no_values_of_what_it_deletes() {
    let (stack, extras, state) = applied();
    let snapshot = refreshed(&state);
    let shown = shown_plan(&stack, &snapshot, &extras, PlanMode::Destroy);
    let whole = plan_of(&stack, &snapshot, &extras, PlanMode::Destroy);
    assert!(!whole.changes.is_empty());
    assert_eq!(shown.changes.len(), whole.changes.len());
    for (lean, full) in shown.changes.iter().zip(&whole.changes) {
        assert_eq!(lean.action, Action::Delete);
        assert!(full.before.is_some(), "{}", full.address);
        assert_eq!(lean.before, None, "{}", lean.address);
        let mut full = full.clone();
        full.before = None;
        assert_eq!(*lean, full);
    }
    assert_eq!(shown.outputs, whole.outputs);
}

/// A plan with refresh of 10,000 unchanged resources held two copies of every input (each no-op
/// change's `before` and `after`) that only the JSON plan shows. A plan made to be shown keeps them
/// only for what changes (`report::plan`'s tests check that it reads the same).
#[test]
fn a_plan_to_show_keeps_no_values_of_what_stays() {
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("blue") {
        inputs["instance_count"] = json!(3);
    }
    let shown = shown_plan(&stack, &snapshot, &extras, PlanMode::Normal);
    let whole = plan_of(&stack, &snapshot, &extras, PlanMode::Normal);
    assert!(whole.changes.iter().all(|c| c.before.is_some()));
    for (lean, full) in shown.changes.iter().zip(&whole.changes) {
        if lean.action.is_noop() {
            assert_eq!(
                (&lean.before, &lean.after),
                (&None, &None),
                "{}",
                lean.address
            );
        } else {
            assert_eq!(lean, full);
        }
    }
    assert!(shown.changes.iter().any(|c| c.action.is_noop()));
}
