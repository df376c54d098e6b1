//! Addresses through the real binary against a local cloud of each test's own: `state mv`, a rename
//! in the file with `moved: { from: … }` (no delete, no create), `import: ID` on a resource (shown as
//! `<= import`, adopted at apply, refused for an id of another type, of nothing, or already tracked),
//! `state import` of an id another address tracks, and `for_each:` over a list or a mapping (one
//! address per instance in plan, state and apply; removing a key destroys that instance only;
//! moving a resource into an instance). Storage accounts, containers and blobs only: no deployment
//! runs, so each test takes seconds.
use serde_json::Value;

use crate::support::{Output, Test};

/// An account and a container in it.
const PAIR: &str = "stack: moves
resources:
  store: { type: storage_account, name: ACCOUNT }
  box:
    type: blob_container
    account: ${store.name}
    name: box
";

fn pair(account: &str) -> Test {
    Test::new()
        .stack(&PAIR.replace("ACCOUNT", account))
        .local_cloud(&[])
}

fn show(t: &Test, address: &str) -> Value {
    let out = t.run(["state", "show", address]).code(0);
    serde_json::from_str(&out.stdout).expect("state show prints JSON")
}

fn id_of(t: &Test, address: &str) -> String {
    show(t, address)["id"].as_str().expect("an id").to_string()
}

/// The addresses in state, sorted (a parallel apply records them in the order they finish).
fn addresses(t: &Test) -> Vec<String> {
    let mut out: Vec<String> = t
        .run(["state", "list"])
        .code(0)
        .stdout
        .lines()
        .filter(|l| !l.starts_with("No state"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    out.sort();
    out
}

fn stderr_says(out: &Output, text: &str) {
    assert!(out.stderr.contains(text), "{}", out.stderr);
}

fn stdout_says(out: &Output, text: &str) {
    assert!(out.stdout.contains(text), "{}", out.stdout);
}

fn plan(t: &Test) -> Output {
    t.run(["plan", "--detailed-exitcode"])
}

#[test]
fn state_mv_renames_a_record_and_refuses_a_missing_source_or_a_taken_target() {
    let t = pair("mvacct01");
    t.run(["apply", "--auto-approve"]).code(0);
    let id = id_of(&t, "store");
    // Renamed in the file: without a move the plan would delete and create the account.
    t.edit("stack.yaml", "  store:", "  storage:");
    t.edit("stack.yaml", "${store.name}", "${storage.name}");
    let out = t.run(["state", "mv", "stor", "storage"]).code(1);
    stderr_says(
        &out,
        "cannot move `stor`: it does not match anything in the current state; did you mean `store`?",
    );
    let out = t.run(["state", "mv", "store", "box"]).code(1);
    stderr_says(
        &out,
        "cannot move `store` to `box`: there is already a resource at that address",
    );
    let out = t.run(["state", "mv", "store", "storage"]).code(0);
    assert!(
        out.stdout.contains("Move \"store\" to \"storage\"")
            && out.stdout.contains("Successfully moved 1 object(s)."),
        "{}",
        out.stdout
    );
    assert_eq!(id_of(&t, "storage"), id);
    assert_eq!(
        show(&t, "box")["dependencies"],
        serde_json::json!(["storage"])
    );
    let out = plan(&t).code(0);
    stdout_says(&out, "No changes");
}

#[test]
fn a_rename_with_moved_plans_no_changes_and_apply_records_the_new_address() {
    let t = pair("mvacct02");
    t.run(["apply", "--auto-approve"]).code(0);
    let id = id_of(&t, "store");
    t.edit(
        "stack.yaml",
        "  store: { type: storage_account, name: mvacct02 }",
        "  storage: { type: storage_account, name: mvacct02, moved: { from: store } }",
    );
    t.edit("stack.yaml", "${store.name}", "${storage.name}");
    let out = plan(&t).code(0);
    stdout_says(&out, "# store has moved to storage");
    stdout_says(&out, "No changes.");
    assert!(!out.stdout.contains("resource \"store\""), "{}", out.stdout);
    let json: Value =
        serde_json::from_str(&t.run(["plan", "--json"]).code(0).stdout).expect("plan JSON");
    assert_eq!(
        json["moved"],
        serde_json::json!([{ "from": "store", "to": "storage" }])
    );
    let out = t.run(["apply", "--auto-approve"]).code(0);
    stderr_says(&out, "store moved to storage in state");
    assert_eq!(addresses(&t), ["box", "storage"]);
    assert_eq!(id_of(&t, "storage"), id, "the account was not recreated");
    // The key may stay in the file: once moved, it does nothing.
    let out = plan(&t).code(0);
    assert!(!out.stdout.contains("has moved"), "{}", out.stdout);
    // A `moved.from` still declared in the file is refused, located.
    t.write(
        "stack.yaml",
        "stack: moves\nresources:\n  store: { type: storage_account, name: mvacct02 }\n  other: { type: storage_account, name: mvacct03, moved: { from: store } }\n",
    );
    let out = t.run(["validate"]).code(1);
    assert!(
        out.stderr
            .contains("`other` is moved from `store`, which is still in the stack")
            && out.stderr.contains("stack.yaml:4:"),
        "{}",
        out.stderr
    );
}

#[test]
fn import_on_a_resource_is_planned_as_an_import_and_adopted_at_apply() {
    // Also the regression of `state import`'s spurious diff: an imported container planned
    // `metadata: {} → null` because the cloud reports the metadata nobody set as `{}`.
    let t = pair("impacct01");
    t.run(["apply", "--auto-approve"]).code(0);
    let box_id = id_of(&t, "box");
    let store_id = id_of(&t, "store");
    t.run(["state", "rm", "box"]).code(0);
    let with_import = |id: &str| {
        t.write(
            "stack.yaml",
            &format!("{}    import: {id}\n", PAIR.replace("ACCOUNT", "impacct01")),
        );
    };
    // The id of another type (an account no record tracks) is refused before anything is read or
    // changed.
    with_import(&store_id.replace("impacct01", "otheracct01"));
    let out = plan(&t).code(1);
    assert!(
        out.stderr.contains("cannot import") && out.stderr.contains("a blob_container id"),
        "{}",
        out.stderr
    );
    // So is an id where nothing exists (a container named as the file names it, never created).
    with_import(&box_id.replace("/containers/box", "/containers/ghost"));
    t.edit("stack.yaml", "name: box", "name: ghost");
    let out = t.run(["apply", "--auto-approve"]).code(1);
    stderr_says(&out, "nothing exists at");
    assert_eq!(
        addresses(&t),
        ["store"],
        "a refused import changed the state"
    );
    // The real one: `<= import`, no other change, adopted at apply.
    with_import(&box_id);
    let out = plan(&t).code(2);
    stdout_says(&out, "<= resource \"box\"");
    stdout_says(&out, "# imported from");
    stdout_says(
        &out,
        "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy.",
    );
    assert!(!out.stdout.contains("metadata"), "{}", out.stdout);
    t.run(["apply", "--auto-approve"]).code(0);
    assert_eq!(id_of(&t, "box"), box_id);
    plan(&t).code(0);
    // `state import` of the same object leaves no diff either.
    t.run(["state", "rm", "box"]).code(0);
    t.write("stack.yaml", &PAIR.replace("ACCOUNT", "impacct01"));
    t.run(["state", "import", "box", &box_id]).code(0);
    plan(&t).code(0);
    // A record that holds the `{}` the cloud reports for metadata nobody set (as imports recorded
    // it) is no change either, also when planned from the record alone.
    let state_file = "state/moves.json";
    let mut state: Value = serde_json::from_str(&t.read(state_file)).expect("state JSON");
    state["resources"]["box"]["inputs"]["metadata"] = serde_json::json!({});
    t.write(state_file, &state.to_string());
    for args in [
        &["plan", "--detailed-exitcode"][..],
        &["plan", "--detailed-exitcode", "--refresh=false"],
    ] {
        t.run(args).code(0);
    }
}

#[test]
fn an_id_another_address_tracks_is_not_imported_again() {
    // The bug: `state import` recorded an object a second address already tracked, so two records
    // (and a later destroy of each) named one container.
    let t = pair("impacct02");
    t.run(["apply", "--auto-approve"]).code(0);
    let box_id = id_of(&t, "box");
    t.write(
        "stack.yaml",
        &format!(
            "{}  copy:\n    type: blob_container\n    account: ${{store.name}}\n    name: copy\n",
            PAIR.replace("ACCOUNT", "impacct02")
        ),
    );
    let out = t.run(["state", "import", "copy", &box_id]).code(1);
    stderr_says(&out, "is already tracked as `box`");
    // The same through `import:` in the file, refused before any change.
    t.write(
        "stack.yaml",
        &format!(
            "{}  copy:\n    type: blob_container\n    account: ${{store.name}}\n    name: box2\n    import: {box_id}\n",
            PAIR.replace("ACCOUNT", "impacct02")
        ),
    );
    let out = t.run(["apply", "--auto-approve"]).code(1);
    stderr_says(&out, "state already tracks as `box`");
    assert_eq!(addresses(&t), ["box", "store"]);
}

/// Containers for a list, blobs for a mapping; one blob refers to one container instance.
const INSTANCES: &str = "stack: instances
resources:
  store: { type: storage_account, name: feacct01 }
  boxes:
    type: blob_container
    for_each: [a, b, c]
    account: ${store.name}
    name: box-${each.key}
  notes:
    type: blob
    for_each: { a: hello a, c: hello c }
    account: ${store.name}
    container: ${boxes[\"a\"].name}
    name: note-${each.key}.txt
    content: ${each.value}
";

#[test]
fn for_each_makes_one_address_per_instance_and_removing_a_key_destroys_only_it() {
    let t = Test::new().stack(INSTANCES).local_cloud(&[]);
    let graph: Value = serde_json::from_str(&t.run(["graph", "--format", "json"]).code(0).stdout)
        .expect("graph JSON");
    let mut order: Vec<&str> = graph["order"]
        .as_array()
        .expect("order")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(order.first(), Some(&"store"));
    order.sort_unstable();
    assert_eq!(
        order,
        [
            "boxes[\"a\"]",
            "boxes[\"b\"]",
            "boxes[\"c\"]",
            "notes[\"a\"]",
            "notes[\"c\"]",
            "store"
        ]
    );
    let out = plan(&t).code(2);
    stdout_says(&out, "+ resource boxes[\"b\"] (blob_container)");
    t.run(["apply", "--auto-approve"]).code(0);
    assert_eq!(
        addresses(&t),
        [
            "boxes[\"a\"]",
            "boxes[\"b\"]",
            "boxes[\"c\"]",
            "notes[\"a\"]",
            "notes[\"c\"]",
            "store"
        ]
    );
    let note = show(&t, "notes[\"c\"]");
    assert_eq!(note["inputs"]["name"], "note-c.txt");
    assert_eq!(note["inputs"]["container"], "box-a");
    let deps = note["dependencies"].as_array().expect("dependencies");
    assert!(
        deps.contains(&Value::from("boxes[\"a\"]")) && deps.contains(&Value::from("store")),
        "{deps:?}"
    );
    plan(&t).code(0);
    // One key less: that instance alone is destroyed.
    t.edit("stack.yaml", "for_each: [a, b, c]", "for_each: [a, c]");
    let out = plan(&t).code(2);
    assert!(
        out.stdout
            .contains("- resource boxes[\"b\"] (blob_container)")
            && out
                .stdout
                .contains("Plan: 0 to add, 0 to change, 1 to destroy."),
        "{}",
        out.stdout
    );
    t.run(["apply", "--auto-approve", "--target", "boxes[\"b\"]"])
        .code(0);
    assert!(!addresses(&t).contains(&"boxes[\"b\"]".to_string()));
    plan(&t).code(0);
    t.run(["destroy", "--auto-approve"]).code(0);
    assert!(addresses(&t).is_empty(), "{:?}", addresses(&t));
}

#[test]
fn a_resource_moves_into_an_instance_of_a_for_each() {
    let t = pair("feacct02");
    t.run(["apply", "--auto-approve"]).code(0);
    let id = id_of(&t, "box");
    // `box` becomes the instance `main` of `boxes` (same container), and `extra` is new.
    t.write(
        "stack.yaml",
        "stack: moves
resources:
  store: { type: storage_account, name: feacct02 }
  boxes:
    type: blob_container
    for_each: { main: box, extra: extra-box }
    moved: { from: { main: box } }
    account: ${store.name}
    name: ${each.value}
",
    );
    let out = plan(&t).code(2);
    stdout_says(&out, "# box has moved to boxes[\"main\"]");
    stdout_says(&out, "Plan: 1 to add, 0 to change, 0 to destroy.");
    t.run(["apply", "--auto-approve"]).code(0);
    assert_eq!(id_of(&t, "boxes[\"main\"]"), id);
    assert_eq!(
        addresses(&t),
        ["boxes[\"extra\"]", "boxes[\"main\"]", "store"]
    );
}

#[test]
fn for_each_errors_name_the_instance_and_the_place() {
    let t = Test::new().stack(
        "stack: instances
resources:
  store: { type: storage_account, name: feacct03 }
  boxes:
    type: blob_container
    for_each: { good: box-good, bad: [not, a, name] }
    account: ${store.name}
    name: ${each.value}
  other:
    type: blob_container
    account: ${store.name}
    name: ${boxes.name}
",
    );
    let out = t.run(["validate"]).code(1);
    stderr_says(&out, "blob_container `boxes[\"bad\"]`");
    stderr_says(&out, "stack.yaml:8:");
    stderr_says(
        &out,
        "`boxes` has `for_each`: `${boxes.name}` must name one instance",
    );
    stderr_says(&out, "stack.yaml:12:");
}

#[test]
fn a_failed_apply_rolls_back_each_instance_it_created() {
    // The blob's container is not the stack's and does not exist: its create fails after both
    // container instances were created, and the rollback deletes each of them by its address.
    let t = Test::new()
        .stack(
            "stack: rollback
resources:
  store: { type: storage_account, name: rbacct01 }
  boxes:
    type: blob_container
    for_each: [a, b]
    account: ${store.name}
    name: box-${each.key}
  note:
    type: blob
    account: ${store.name}
    container: missing
    name: n.txt
    content: hi
    depends_on: [boxes]
",
        )
        .local_cloud(&[]);
    let out = t.run(["apply", "--auto-approve"]).code(1);
    for instance in ["boxes[\"a\"]", "boxes[\"b\"]"] {
        stderr_says(&out, instance);
    }
    assert!(addresses(&t).is_empty(), "{:?}", addresses(&t));
}
