//! Where state is found, end to end through the real binary (issue 19): beside the stack file from any
//! folder; the former default (`state/` in the current folder) still found with a notice; a plan that
//! would create objects another state made says so, with the commands that adopt them, and apply stops
//! before creating anything; read-only commands never create a folder; a state of another cloud is
//! refused with one error naming both subscriptions.
use crate::support::{Output, Test};

/// A storage account and a container: quick to create, and both found by name.
const STACK: &str = r#"
stack: ux
cloud: { kind: local }
resources:
  store: { type: storage_account, name: uxstore01 }
  box: { type: blob_container, account: "${store.name}", name: things }
"#;

/// A test folder with the stack in `ux-mine/stack.yaml` and an empty folder `elsewhere/`.
fn ux(t: Test) -> Test {
    for dir in ["ux-mine", "elsewhere"] {
        std::fs::create_dir_all(t.path(dir)).expect("create a folder");
    }
    t.write("ux-mine/stack.yaml", STACK);
    t
}

/// Applies `ux-mine/stack.yaml` with its state in `dir`.
fn apply_with_state_dir(t: &Test, dir: &str) {
    t.run([
        "apply",
        "-f",
        "ux-mine/stack.yaml",
        "--state-dir",
        dir,
        "--auto-approve",
    ])
    .code(0);
}

fn run_in(t: &Test, dir: &str, args: &[&str]) -> Output {
    t.cmd().current_dir(t.path(dir)).args(args).run()
}

#[test]
fn state_is_found_beside_the_stack_file_from_any_folder() {
    // `plan -f ux-mine/stack.yaml` from another folder showed every resource "to add" for a live
    // stack: state was looked for in `state/` of the current folder, not beside the stack file.
    let t = ux(Test::new().local_cloud(&[]));
    t.run(["apply", "-f", "ux-mine/stack.yaml", "--auto-approve"])
        .code(0);
    assert!(t.path("ux-mine/state/ux.json").is_file());
    assert!(!t.path("state").exists(), "no state folder where apply ran");
    let out = run_in(
        &t,
        "elsewhere",
        &["plan", "-f", "../ux-mine/stack.yaml", "--detailed-exitcode"],
    )
    .code(0);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    run_in(&t, "ux-mine", &["plan", "--detailed-exitcode"]).code(0);
    assert!(!t.path("elsewhere/state").exists());
}

#[test]
fn the_former_state_folder_is_still_found_with_a_notice() {
    // State kept where stackform used to keep it (`state/` in the folder the run started from) must
    // not be taken for "no state" once state lives beside the stack file.
    let t = ux(Test::new().local_cloud(&[]));
    apply_with_state_dir(&t, "state");
    assert!(t.path("state/ux.json").is_file());
    let out = t
        .run(["plan", "-f", "ux-mine/stack.yaml", "--detailed-exitcode"])
        .code(0);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    assert!(
        out.stderr.contains("note: using state/ux.json")
            && out
                .stderr
                .contains("mkdir -p ux-mine/state && mv state/ux.* ux-mine/state/"),
        "{}",
        out.stderr
    );
    assert!(!t.path("ux-mine/state").exists(), "plan moved nothing");
    // Following the notice: the state is where it now lives, and the notice is gone.
    std::fs::create_dir_all(t.path("ux-mine/state")).unwrap();
    std::fs::rename(t.path("state/ux.json"), t.path("ux-mine/state/ux.json")).unwrap();
    let out = t
        .run(["plan", "-f", "ux-mine/stack.yaml", "--detailed-exitcode"])
        .code(0);
    assert!(!out.stderr.contains("note: using"), "{}", out.stderr);
}

#[test]
fn a_plan_that_would_create_live_objects_says_so_and_apply_creates_nothing() {
    // With the stack applied under another state, `plan` silently showed "2 to add", and `apply`
    // failed halfway with "adopt it with `stackform state import`" (the wrong fix: the objects had a
    // state) and left a stray `state/` folder behind.
    let t = ux(Test::new().local_cloud(&[]));
    apply_with_state_dir(&t, "team-state");

    let plan = t.run(["plan", "-f", "ux-mine/stack.yaml"]).code(0);
    let text = &plan.stdout;
    assert!(
        text.contains("2 object(s) this plan would create already exist in the cloud"),
        "{text}"
    );
    assert!(
        text.contains("another state folder") && text.contains("another `stack:` name"),
        "{text}"
    );
    let imports: Vec<Vec<String>> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("stackform state import -f ux-mine/stack.yaml "))
        .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
        .collect();
    assert_eq!(imports.len(), 2, "{text}");
    assert!(
        imports[0][5].ends_with("/storageAccounts/uxstore01"),
        "{:?}",
        imports[0]
    );
    let json: serde_json::Value = serde_json::from_str(
        &t.run(["plan", "-f", "ux-mine/stack.yaml", "--json"])
            .code(0)
            .stdout,
    )
    .unwrap();
    let found = json["exists_outside_state"].as_array().expect("a list");
    assert_eq!(found.len(), 2, "{json}");
    assert_eq!(found[1]["address"], "box");

    let apply = t
        .run(["apply", "-f", "ux-mine/stack.yaml", "--auto-approve"])
        .code(1);
    assert!(
        apply.stderr.contains("nothing was changed") && !apply.stderr.contains("Rolled back"),
        "{}",
        apply.stderr
    );
    assert!(
        !t.path("ux-mine/state").exists(),
        "a refused apply leaves no state folder"
    );
    // The printed commands adopt the objects into this state.
    for args in &imports {
        t.run(args).code(0);
    }
    let list = t.run(["state", "list", "-f", "ux-mine/stack.yaml"]).code(0);
    assert_eq!(list.stdout.lines().count(), 2, "{}", list.stdout);
}

#[test]
fn a_renamed_stack_is_pointed_at_the_state_that_records_its_objects() {
    // After a change of `stack:`, the plan wanted to create everything again and named no cause.
    let t = ux(Test::new().local_cloud(&[]));
    t.run(["apply", "-f", "ux-mine/stack.yaml", "--auto-approve"])
        .code(0);
    t.edit("ux-mine/stack.yaml", "stack: ux\n", "stack: ux-renamed\n");
    let out = t.run(["plan", "-f", "ux-mine/stack.yaml"]).code(0);
    assert!(
        out.stdout
            .contains("another state records them: ux-mine/state/ux.json (stack `ux`)"),
        "{}",
        out.stdout
    );
}

#[test]
fn read_only_commands_never_create_a_folder() {
    // `plan -o` took the stack's lock, which made the state folder of a stack never applied.
    let t = ux(Test::new().local_cloud(&[]));
    let f = ["-f", "ux-mine/stack.yaml"];
    let runs: Vec<(Vec<&str>, i32)> = vec![
        (vec!["validate"], 0),
        (vec!["graph"], 0),
        (vec!["plan"], 0),
        (vec!["plan", "-o", "saved.json"], 0),
        (vec!["plan", "--env", "alice"], 0),
        (vec!["drift"], 0),
        (vec!["drift", "--format", "junit"], 0),
        (vec!["output"], 1),
        (vec!["state", "list"], 0),
        (vec!["state", "show", "store"], 1),
        (vec!["env", "list"], 0),
    ];
    for (args, code) in runs {
        let out = t.run(args.iter().chain(f.iter()));
        assert_eq!(out.code, code, "{args:?}\n{}\n{}", out.stdout, out.stderr);
    }
    for dir in ["ux-mine/state", "state", "elsewhere/state"] {
        assert!(!t.path(dir).exists(), "{dir} was created");
    }
    assert!(t.path("saved.json").is_file());
}

#[test]
fn a_state_from_another_cloud_is_refused_with_one_error_naming_both() {
    // A state file of another subscription was refreshed resource by resource: a wall of errors,
    // one per resource, instead of saying the state belongs elsewhere.
    let t = Test::new().stack(STACK).local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);
    let ours = t.cloud().sub();
    let state_before = t.read("state/ux.json");
    assert!(state_before.contains("\"cloud\""), "{state_before}");
    let other = Test::new().local_cloud(&[]);
    let theirs = other.cloud().sub();
    let elsewhere = |args: &[&str]| {
        t.cmd()
            .env("STACKFORM_CLOUD_DIR", other.cloud_dir())
            .args(args)
            .run()
            .code(1)
    };
    for args in [
        &["plan"][..],
        &["drift"],
        &["apply", "--auto-approve"],
        &["destroy", "--auto-approve"],
    ] {
        let out = elsewhere(args);
        let sub = |s: &str| s.trim_start_matches("/subscriptions/").to_string();
        assert!(
            out.stderr
                .contains(&format!("belongs to subscription {} (tenant ", sub(&ours)))
                && out.stderr.contains(&format!(
                    "this run reaches subscription {} (tenant ",
                    sub(&theirs)
                )),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.matches("error").count(), 1, "{}", out.stderr);
        assert_eq!(
            t.read("state/ux.json"),
            state_before,
            "{args:?} changed the state"
        );
    }
    // A state written before the cloud was recorded is known by its ids.
    let mut legacy: serde_json::Value = serde_json::from_str(&state_before).unwrap();
    legacy.as_object_mut().unwrap().remove("cloud");
    t.write(
        "state/ux.json",
        &serde_json::to_string_pretty(&legacy).unwrap(),
    );
    let out = elsewhere(&["plan"]);
    assert!(
        out.stderr.contains("belongs to subscription"),
        "{}",
        out.stderr
    );
    // Its own cloud still plans it.
    t.run(["plan", "--detailed-exitcode"]).code(0);
}
