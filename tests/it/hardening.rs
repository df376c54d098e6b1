//! Defects found by attacking stackform on purpose (issue 18): a saved plan applied with another
//! sensitive value, symlinked state files and uploaded folders, a damaged resource id in state, and a
//! full disk under the state folder. Each test opens with the defect it guards against, and runs the
//! real binary against a local cloud of its own.
use crate::support::test::Test;

/// A stack whose blob holds a sensitive variable's value.
const SECRET_BLOB: &str = r#"
stack: secretblob
cloud: { kind: local, location: eastus }
variables:
  apikey: { sensitive: true, description: "written into the blob" }
resources:
  store: { type: storage_account, name: secretblob1, sku: Standard_LRS }
  data: { type: blob_container, account: "${store.name}", name: keys }
  key: { type: blob, account: "${store.name}", container: "${data.name}", name: key.txt, content: "${var.apikey}" }
"#;

/// Nothing was applied: the stack has no state yet.
fn assert_no_state(t: &Test) {
    let out = t.run(["state", "list", "--var", "apikey=x"]).code(0);
    assert!(out.stdout.contains("No state yet"), "{}", out.stdout);
}

#[test]
fn a_saved_plan_refuses_another_value_of_a_sensitive_variable() {
    // The bug: `apply p.json --var apikey=B` applied a plan made with `apikey=A`, since a sensitive
    // value shows as `(sensitive)` in both plans, though the README promises a refusal.
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    t.run(["plan", "--var", "apikey=first-Secret-value", "-o", "p.json"])
        .code(0);
    let saved = t.read("p.json");
    assert!(!saved.contains("first-Secret-value"), "{saved}");
    let out = t
        .run(["apply", "p.json", "--var", "apikey=other-Secret-value"])
        .code(1);
    assert!(
        out.stderr.contains("variable `apikey` is sensitive")
            && out
                .stderr
                .contains("differs from the one this plan was made with"),
        "{}",
        out.stderr
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains("Secret-value"),
            "a value was printed: {text}"
        );
    }
    assert_no_state(&t);
    // The value the plan was made with is accepted.
    t.run(["apply", "p.json", "--var", "apikey=first-Secret-value"])
        .code(0);
    t.run(["destroy", "--auto-approve", "--var", "apikey=x"])
        .code(0);
}

#[test]
fn a_saved_plan_of_another_schema_version_is_refused() {
    // The bug: the saved plan's `schema_version` was never read outside unit tests, so a plan JSON of
    // another version was applied as if this build had written it.
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    t.run(["plan", "--var", "apikey=a", "-o", "p.json"]).code(0);
    let mut saved: serde_json::Value = serde_json::from_str(&t.read("p.json")).unwrap();
    saved["plan"]["schema_version"] = 2.into();
    t.write("p.json", &saved.to_string());
    let out = t.run(["apply", "p.json", "--var", "apikey=a"]).code(1);
    assert!(
        out.stderr
            .contains("the plan file has schema_version 2; this stackform reads version 1")
            && out.stderr.contains("p.json"),
        "{}",
        out.stderr
    );
    assert_no_state(&t);
}

/// The stack of [`SECRET_BLOB`] with its own state file given by `--state`.
fn state_args<'a>(state: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--state", state, "--var", "apikey=k"];
    args.extend_from_slice(more);
    args
}

#[test]
fn a_state_file_reached_through_a_symlink_is_locked_at_its_real_path() {
    // The bug: with `--state link.json` a symlink to the real state file, the lock was taken beside
    // the link (`link.lock`), so a run through the link and a run on the real file changed the cloud
    // at once.
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    std::fs::create_dir(t.path("real")).unwrap();
    let mut apply = vec!["apply", "--auto-approve"];
    apply.extend(state_args("real/s.json", &[]));
    t.run(&apply).code(0);
    std::os::unix::fs::symlink("real/s.json", t.path("link.json")).unwrap();
    // Another run holds the real file's lock.
    let held = stackform::state::Lock::acquire(
        t.path("real/s.lock"),
        &stackform::state::LockRequest::new("apply"),
    )
    .expect("take the lock");
    let mut through_link = vec!["apply", "--auto-approve"];
    through_link.extend(state_args("link.json", &[]));
    let out = t.run(&through_link).code(1);
    assert!(out.stderr.contains("lock"), "{}", out.stderr);
    assert!(!t.path("link.lock").exists(), "a lock beside the link");
    drop(held);
    // Once free, a run through the link works on the real file and leaves the link a link.
    t.edit("stack.yaml", "name: keys", "name: keys2");
    t.run(&through_link).code(0);
    let link = std::fs::symlink_metadata(t.path("link.json")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    assert!(t.read("real/s.json").contains("keys2"));
    let mut destroy = vec!["destroy", "--auto-approve"];
    destroy.extend(state_args("link.json", &[]));
    t.run(&destroy).code(0);
}

#[test]
fn a_dangling_state_link_is_refused_naming_the_link_and_its_target() {
    // The bug: a state file that is a dangling symlink was read as "no state", so plan showed every
    // resource as new and apply started a new state over the good backup.
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    std::fs::create_dir(t.path("state")).unwrap();
    std::os::unix::fs::symlink("../moved/secretblob.json", t.path("state/secretblob.json"))
        .unwrap();
    t.write("state/secretblob.json.backup", "the good backup\n");
    for cmd in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let mut args = cmd.to_vec();
        args.extend(["--var", "apikey=k"]);
        let out = t.run(&args).code(1);
        assert!(
            out.stderr.contains("state/secretblob.json")
                && out.stderr.contains("../moved/secretblob.json")
                && out.stderr.contains("symbolic link"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(t.read("state/secretblob.json.backup"), "the good backup\n");
    let accounts = t.rest(async |c: &crate::support::cloud::Cloud| {
        c.arm(
            reqwest::Method::GET,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/secretblob1?api-version=2025-01-01",
                c.rg()
            ),
            None,
        )
        .await
        .status
    });
    assert_eq!(accounts, 404, "nothing may be created");
}

#[test]
fn symlinked_files_in_a_deployment_folder_are_uploaded_and_announced() {
    // The bug: symlinked files in code and model folders were skipped silently (by the hash and by
    // the upload), so the deployment failed in init() with FileNotFoundError.
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    std::fs::create_dir(t.path("shared")).unwrap();
    for (inside, outside) in [
        ("onlinescoring/score.py", "shared/score.py"),
        ("model/model.json", "shared/model.json"),
    ] {
        std::fs::rename(t.path(inside), t.path(outside)).unwrap();
        std::os::unix::fs::symlink(t.path(outside), t.path(inside)).unwrap();
    }
    let out = t.run(["apply", "--auto-approve", "-v"]).code(0);
    for link in ["onlinescoring/score.py", "model/model.json"] {
        assert!(
            out.stderr.contains("following the symbolic link") && out.stderr.contains(link),
            "{link} not announced: {}",
            out.stderr
        );
    }
    let answer = t
        .run([
            "invoke",
            "endpoint",
            "--request-file",
            "sample-request.json",
        ])
        .code(0);
    assert!(answer.stdout.starts_with('['), "{}", answer.stdout);
    // Nothing differs between what was hashed and what was uploaded.
    t.run(["plan", "--detailed-exitcode"]).code(0);
    t.run(["destroy", "--auto-approve"]).code(0);
}

#[test]
fn a_dangling_link_or_a_loop_in_a_deployment_folder_is_refused_by_name() {
    // The bug: a dangling link in a code folder was skipped silently (the deployment then missed
    // the file), and nothing stopped a link back up the folder.
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    std::os::unix::fs::symlink("helpers_moved.py", t.path("onlinescoring/helpers.py")).unwrap();
    let out = t.run(["plan"]).code(1);
    assert!(
        out.stderr.contains("onlinescoring/helpers.py")
            && out.stderr.contains("helpers_moved.py")
            && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(t.path("onlinescoring/helpers.py")).unwrap();
    std::os::unix::fs::symlink("..", t.path("model/up")).unwrap();
    let out = t.run(["plan"]).code(1);
    assert!(
        out.stderr.contains("model/up") && out.stderr.contains("a loop"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_damaged_id_in_state_stops_apply_before_any_step() {
    // The bug: a state whose storage account id was damaged made apply act on what the id pointed
    // at (nothing), so it replaced the account and deleted healthy blobs before failing.
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    t.run(["apply", "--auto-approve", "--var", "apikey=k"])
        .code(0);
    let path = "state/secretblob.json";
    let mut state: serde_json::Value = serde_json::from_str(&t.read(path)).unwrap();
    let good = state["resources"]["store"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let damaged = good.replace("secretblob1", "secretblob9");
    state["resources"]["store"]["id"] = damaged.clone().into();
    t.write(path, &serde_json::to_string_pretty(&state).unwrap());
    let before = t.read(path);
    for cmd in [
        &["plan"][..],
        &["apply", "--auto-approve"][..],
        &["destroy", "--auto-approve"][..],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--var", "apikey=k"]);
        let out = t.run(&args).code(1);
        assert!(
            out.stderr.contains("`store`") && out.stderr.contains(&damaged),
            "{cmd:?}: {}",
            out.stderr
        );
    }
    assert_eq!(t.read(path), before, "the state was changed");
    // The healthy blob is still there.
    let status = t.rest(async |c: &crate::support::cloud::Cloud| {
        let key = c.account_key("secretblob1").await;
        c.blob_shared_key(
            reqwest::Method::GET,
            "secretblob1",
            &key,
            "keys/key.txt",
            vec![],
            &[],
        )
        .await
        .status
    });
    assert_eq!(status, 200);
    // Repaired, the stack converges.
    state["resources"]["store"]["id"] = good.into();
    t.write(path, &serde_json::to_string_pretty(&state).unwrap());
    t.run(["plan", "--detailed-exitcode", "--var", "apikey=k"])
        .code(0);
    t.run(["destroy", "--auto-approve", "--var", "apikey=k"])
        .code(0);
}

#[test]
fn a_full_disk_under_the_state_folder_fails_apply_clearly_and_changes_no_state() {
    // The attack: the state folder's disk filled up; apply must stop with an error that says so,
    // leave the state file as it was (no half-written or temp file), and converge once space returns.
    let Some(disk) = crate::support::disk::TinyDisk::mount("2m") else {
        return;
    };
    let t = Test::new().stack(SECRET_BLOB).local_cloud(&[]);
    let state_dir = disk.path().join("state");
    let dir = state_dir.to_str().unwrap();
    let run = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.extend(["--state-dir", dir, "--var", "apikey=k"]);
        t.run(&args)
    };
    run(&["apply", "--auto-approve"]).code(0);
    let state_file = state_dir.join("secretblob.json");
    let before = std::fs::read(&state_file).unwrap();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&state_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let files_before = listing();
    t.edit("stack.yaml", "name: key.txt", "name: key2.txt");
    disk.fill();
    let out = run(&["apply", "--auto-approve"]).code(1);
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        before,
        "the state changed"
    );
    let files_after = listing();
    assert!(
        files_after
            .iter()
            .all(|f| !f.contains("tmp") && files_before.contains(f) || f.ends_with(".journal")),
        "files left in the state folder: {files_after:?} (before: {files_before:?})"
    );
    // Room for the lock and a little more, not for the state: the run fails later, once the cloud
    // has changed, and still leaves the state file whole (the journal tells the next run what it did).
    for room in [8 << 10, 16 << 10] {
        disk.leave(room);
        let out = run(&["apply", "--auto-approve"]);
        if out.code == 0 {
            break; // it had room enough after all
        }
        assert!(
            out.stderr.contains("No space left on device"),
            "{}",
            out.stderr
        );
        let now = std::fs::read(&state_file).unwrap();
        assert!(
            now == before || serde_json::from_slice::<serde_json::Value>(&now).is_ok(),
            "a half-written state file"
        );
    }
    disk.free();
    run(&["apply", "--auto-approve"]).code(0);
    run(&["plan", "--detailed-exitcode"]).code(0);
    run(&["destroy", "--auto-approve"]).code(0);
    drop(t);
    drop(disk);
}
