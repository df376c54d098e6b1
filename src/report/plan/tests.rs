//! Snapshots of the human and JSON plan for the reference scenario's situations.
use serde_json::json;

use super::*;
use crate::plan::testing::*;
use crate::plan::{DesiredExtras, Live, PlanMode, Snapshot, plan};
use crate::specs::Registry;
use crate::stack::Stack;

fn make(stack: &Stack, snapshot: &Snapshot, extras: &DesiredExtras, mode: PlanMode) -> Plan {
    let graph = graph_of(stack);
    let registry = Registry::embedded().expect("embedded specs load");
    match plan(stack, &graph, &registry, snapshot, extras, mode) {
        Ok(p) => p,
        Err(errors) => panic!("planning failed: {errors:?}"),
    }
}

fn human(p: &Plan) -> String {
    render_plan(p, &RenderOptions { color: false })
}

fn applied() -> (Stack, DesiredExtras, crate::state::StateFile) {
    let stack = scenario().build();
    let extras = scenario_extras(HELLO);
    let state = applied_state(&stack, &extras);
    (stack, extras, state)
}

#[test]
fn full_create_of_the_reference_scenario() {
    let stack = scenario().build();
    let p = make(
        &stack,
        &Snapshot::default(),
        &scenario_extras(HELLO),
        PlanMode::Normal,
    );
    insta::assert_snapshot!("full_create", human(&p));
    insta::assert_json_snapshot!("full_create_json", p.to_json());
}

#[test]
fn no_change() {
    let (stack, extras, state) = applied();
    let p = make(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    assert!(!p.has_changes());
    insta::assert_snapshot!("no_change", human(&p));
    insta::assert_json_snapshot!("no_change_json", p.to_json());
}

#[test]
fn in_place_update_of_blob_content_and_an_environment_variable() {
    let (_, _, state) = applied();
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { content, .. }) = snapshot.live.get_mut("greeting") {
        content.insert("source".into(), text_content(HELLO));
    }
    let stack = scenario()
        .res("blue", "online_deployment", blue_inputs("debug"))
        .build();
    let extras = scenario_extras(
        "hello world\nfrom the managed identity guide, now with a second line\nand a third\n",
    );
    let p = make(&stack, &snapshot, &extras, PlanMode::Normal);
    insta::assert_snapshot!("in_place_update", human(&p));
    insta::assert_json_snapshot!("in_place_update_json", p.to_json());
}

#[test]
fn replacement_forced_by_the_endpoint_identity_with_knock_on_effects() {
    let (_, extras, state) = applied();
    let stack = uai_endpoint_scenario().build();
    let p = make(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    insta::assert_snapshot!("replacement", human(&p));
    insta::assert_json_snapshot!("replacement_json", p.to_json());
}

#[test]
fn resource_removed_from_the_file() {
    let (full, extras, state) = applied();
    let mut stack = full;
    stack.resources.shift_remove("reader");
    let p = make(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    insta::assert_snapshot!("removed", human(&p));
    insta::assert_json_snapshot!("removed_json", p.to_json());
}

#[test]
fn drift_made_out_of_band() {
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    let tampered = "hello world\nwritten by someone else\n";
    if let Some(Live::Present {
        content, outputs, ..
    }) = snapshot.live.get_mut("greeting")
    {
        content.insert("source".into(), text_content(tampered));
        outputs["content_sha256"] = json!(sha(tampered));
    }
    snapshot.live.insert("reader".into(), Live::Gone);
    let p = make(&stack, &snapshot, &extras, PlanMode::Normal);
    insta::assert_snapshot!("drift", human(&p));
    insta::assert_json_snapshot!("drift_json", p.to_json());

    let refresh_only = make(&stack, &snapshot, &extras, PlanMode::RefreshOnly);
    insta::assert_snapshot!("drift_refresh_only", human(&refresh_only));
}

#[test]
fn destroy_lists_everything_in_teardown_order() {
    let (stack, extras, state) = applied();
    let p = make(&stack, &refreshed(&state), &extras, PlanMode::Destroy);
    insta::assert_snapshot!("destroy", human(&p));
}

#[test]
fn colour_only_when_asked() {
    let stack = scenario().build();
    let p = make(
        &stack,
        &Snapshot::default(),
        &scenario_extras(HELLO),
        PlanMode::Normal,
    );
    assert!(!human(&p).contains('\x1b'));
    let coloured = render_plan(&p, &RenderOptions { color: true });
    assert!(coloured.contains("\x1b[32m+\x1b[0m"), "{coloured}");
}

#[test]
fn line_diffs_elide_long_unchanged_runs() {
    let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    let new = old
        .replace("line 2\n", "line two\n")
        .replace("line 19\n", "line nineteen\n");
    let d = line_diff(&old, &new, &RenderOptions::default());
    assert!(
        d.contains("- line 2\n") && d.contains("+ line two\n"),
        "{d}"
    );
    assert!(d.contains("  ...\n"), "{d}");
    assert!(!d.contains("line 10\n"), "{d}");
}

#[test]
fn values_render_unknowns_and_secrets() {
    assert_eq!(value_text(&PlanValue::Unknown), "(known after apply)");
    assert_eq!(value_text(&PlanValue::Sensitive), "(sensitive)");
    let list = PlanValue::list(vec![PlanValue::Known(json!("a")), PlanValue::Unknown]);
    assert_eq!(value_text(&list), "[\"a\", (known after apply)]");
}

#[test]
fn content_changes_without_text_show_hashes() {
    let (stack, _, state) = applied();
    let snapshot = Snapshot {
        state: Some(state),
        live: Default::default(),
    };
    let p = make(
        &stack,
        &snapshot,
        &scenario_extras("new text\n"),
        PlanMode::Normal,
    );
    let greeting = p.change("greeting").expect("planned");
    let text = render_change(greeting, &RenderOptions::default());
    let old = sha(HELLO);
    let new = sha("new text\n");
    assert!(
        text.contains(&format!("sha256 {} → {}", &old[..12], &new[..12])),
        "{text}"
    );
    assert!(
        text.contains("source: \"./hello.txt\" (content changed)"),
        "{text}"
    );
}

#[test]
fn inline_multiline_text_is_diffed_line_by_line() {
    let blob = |text: &str| {
        scenario()
            .res(
                "greeting",
                "blob",
                vec![
                    ("account", r("store", "name")),
                    ("container", r("data", "name")),
                    ("name", s("config.yaml")),
                    ("content", s(text)),
                ],
            )
            .build()
    };
    let extras = DesiredExtras::default();
    let before = blob("threshold: 0.5\nlabels:\n  - cat\n  - dog\n");
    let state = applied_state(&before, &extras);
    let after = blob("threshold: 0.7\nlabels:\n  - cat\n  - dog\n");
    let p = make(&after, &refreshed(&state), &extras, PlanMode::Normal);
    let greeting = p.change("greeting").expect("planned");
    assert_eq!(greeting.action, crate::plan::Action::Update);
    let text = render_change(greeting, &RenderOptions::default());
    assert_eq!(
        text,
        "  ~ resource \"greeting\" (blob)\n      content: (text changed)\n        - threshold: 0.5\n        + threshold: 0.7\n          labels:\n            - cat\n            - dog\n"
    );
}

#[test]
fn moves_and_imports_are_shown_as_terraform_shows_them() {
    let (stack, extras, state) = applied();
    let mut p = make(&stack, &refreshed(&state), &extras, PlanMode::Normal);
    p.moved = vec![crate::plan::moves::Moved {
        from: "storage".into(),
        to: "store".into(),
    }];
    let text = human(&p);
    assert!(
        text.starts_with("  # storage has moved to store\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "No changes. Your infrastructure matches the configuration; apply records the new address.\n"
        ),
        "{text}"
    );
    assert_eq!(
        p.to_json()["moved"],
        json!([{ "from": "storage", "to": "store" }])
    );
    p.moved.clear();
    p.imports = vec![crate::plan::moves::PendingImport {
        address: "data".into(),
        type_name: "blob_container".into(),
        id: "/subscriptions/s/x/containers/hello".into(),
        location: "stack.yaml:9:5".into(),
    }];
    let text = human(&p);
    assert!(
        text.contains(
            " <= resource \"data\" (blob_container)\n      # imported from /subscriptions/s/x/containers/hello\n"
        ),
        "{text}"
    );
    assert!(text.contains(" <= import\n"), "{text}");
    assert!(
        text.ends_with("Plan: 1 to import, 0 to add, 0 to change, 0 to destroy.\n"),
        "{text}"
    );
    assert!(p.has_changes() && !p.has_cloud_changes());
}

#[test]
fn a_destroy_plan_made_to_be_shown_reads_as_the_whole_plan() {
    // `plan::plan_with` without the deletions' `before`: the text is the same.
    let (stack, extras, state) = applied();
    let snapshot = refreshed(&state);
    let shown = shown_plan(&stack, &snapshot, &extras, PlanMode::Destroy);
    let whole = make(&stack, &snapshot, &extras, PlanMode::Destroy);
    assert!(shown.changes.iter().all(|c| c.before.is_none()));
    assert!(whole.changes.iter().all(|c| c.before.is_some()));
    assert_eq!(human(&shown), human(&whole));
}

#[test]
fn a_plan_made_to_be_shown_reads_as_the_whole_plan() {
    // `plan::plan_with` without the values of what stays as it is: the text is the same.
    let (stack, extras, state) = applied();
    let mut snapshot = refreshed(&state);
    if let Some(Live::Present { inputs, .. }) = snapshot.live.get_mut("blue") {
        inputs["instance_count"] = json!(3);
    }
    let shown = shown_plan(&stack, &snapshot, &extras, PlanMode::Normal);
    let whole = make(&stack, &snapshot, &extras, PlanMode::Normal);
    assert!(
        shown
            .changes
            .iter()
            .any(|c| c.action.is_noop() && c.after.is_none())
    );
    assert_eq!(human(&shown), human(&whole));
}
