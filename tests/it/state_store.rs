//! The state file on disk: round trips, serials, backups, permissions, damaged files and secrets.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Value, json};
use stackform::state::{
    FORMAT_VERSION, FieldPath, ResourceState, ResourceStatus, StateError, StateFile, StateStore,
};
use uuid::Uuid;

fn store() -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::for_stack(dir.path().join("state"), "managed-identity").expect("name");
    (dir, store)
}

fn scenario() -> StateFile {
    let mut state = StateFile::new("managed-identity");
    let store_id = "/subscriptions/0000/resourceGroups/demo-rg/providers/Microsoft.Storage/storageAccounts/mistore7f3a";
    let mut store = ResourceState::new(
        "storage_account",
        store_id,
        json!({ "name": "mistore7f3a", "sku": "Standard_LRS" }),
        json!({ "id": store_id, "primary_blob_endpoint": "https://mistore7f3a.blob.core.windows.net/" }),
    );
    store.sensitive = vec![FieldPath::parse("access_key").expect("path")];
    state.record("store", store);
    let mut greeting = ResourceState::new(
        "blob",
        "https://mistore7f3a.blob.core.windows.net/hello/hello.txt",
        json!({ "account": "mistore7f3a", "container": "hello", "name": "hello.txt", "source": "./hello.txt" }),
        json!({}),
    );
    greeting.dependencies = vec![String::from("store")];
    greeting.content_hash = Some(String::from("sha256:2cf24dba5fb0a30e"));
    state.record("greeting", greeting);
    state.outputs.insert(
        String::from("scoring_uri"),
        json!("https://my-sai-endpoint.eastus.inference.ml.azure.com/score"),
    );
    state
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn missing_file_reads_as_none() {
    let (_dir, store) = store();
    assert_eq!(store.read().expect("read"), None);
}

#[test]
fn round_trip_serial_backup_and_mode() {
    let (_dir, store) = store();
    let mut state = scenario();
    assert_eq!(store.write(&mut state, None).expect("first write"), 1);
    assert_eq!(state.serial, 1);
    assert_eq!(mode(store.path()), 0o600);
    assert!(
        !store.backup_path().exists(),
        "no backup before there is a previous version"
    );
    let read = store.read().expect("read").expect("present");
    assert_eq!(read, state);
    assert_eq!(read.version, FORMAT_VERSION);
    let first_bytes = fs::read(store.path()).expect("bytes");

    state.taint("greeting");
    assert_eq!(store.write(&mut state, Some(1)).expect("second write"), 2);
    assert_eq!(fs::read(store.backup_path()).expect("backup"), first_bytes);
    assert_eq!(mode(store.backup_path().as_path()), 0o600);
    assert_eq!(
        store.read_backup().expect("backup").map(|s| s.serial),
        Some(1)
    );
    let read = store
        .read_expecting(state.lineage)
        .expect("read")
        .expect("present");
    assert_eq!(read.serial, 2);
    assert_eq!(read.resources["greeting"].status, ResourceStatus::Tainted);
    assert_eq!(
        read.lineage, state.lineage,
        "lineage is fixed at the first write"
    );
}

#[test]
fn read_or_new_gives_the_serial_to_write_with() {
    let (_dir, store) = store();
    let (mut state, expected) = store.read_or_new("managed-identity").expect("new");
    assert_eq!(
        (expected, state.serial, state.resources.len()),
        (None, 0, 0)
    );
    store.write(&mut state, expected).expect("first write");
    let (mut again, expected) = store.read_or_new("managed-identity").expect("existing");
    assert_eq!(expected, Some(1));
    assert_eq!(again.lineage, state.lineage);
    assert_eq!(store.write(&mut again, expected).expect("second write"), 2);
}

/// The CLI's `state rm` / `state import` flow: lock, read, change, compare-and-write.
#[test]
fn surgery_under_the_lock_persists() {
    let (_dir, store) = store();
    let mut state = scenario();
    store.write(&mut state, None).expect("seed");

    let acquired = store
        .lock(&stackform::state::LockRequest::new("state rm"))
        .expect("lock");
    let (mut state, expected) = store.read_or_new("managed-identity").expect("read");
    let err = state
        .remove("store", false)
        .expect_err("greeting depends on store");
    assert!(err.to_string().contains("`greeting`"), "{err}");
    state.remove("greeting", false).expect("leaf");
    let mut uai = ResourceState::new(
        "user_assigned_identity",
        "/id/uai",
        json!({ "name": "uai" }),
        json!({}),
    );
    uai.dependencies = vec![String::from("store")];
    state.import("uai", uai).expect("import");
    store.write(&mut state, expected).expect("write");
    acquired.guard.release().expect("unlock");

    let read = store.read().expect("read").expect("present");
    let addresses: Vec<&str> = read.list().iter().map(|r| r.address).collect();
    assert_eq!(addresses, vec!["store", "uai"]);
    assert_eq!(read.destroy_order(), vec!["uai", "store"]);
    assert!(!store.lock_path().exists());
}

#[test]
fn a_loose_existing_mode_is_not_inherited() {
    let (_dir, store) = store();
    let mut state = scenario();
    store.write(&mut state, None).expect("write");
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).expect("chmod");
    store.write(&mut state, Some(1)).expect("write");
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(&store.backup_path()), 0o600, "backup of a 0644 file");
}

#[test]
fn a_symlinked_state_file_stays_a_symlink() {
    let (dir, store) = store();
    let elsewhere = dir.path().join("vault");
    fs::create_dir_all(&elsewhere).expect("mkdir");
    let real = elsewhere.join("real.json");
    let mut state = scenario();
    StateStore::new(&real)
        .write(&mut state, None)
        .expect("seed");
    fs::create_dir_all(store.path().parent().expect("dir")).expect("mkdir");
    std::os::unix::fs::symlink(&real, store.path()).expect("symlink");

    store
        .write(&mut state, Some(1))
        .expect("write through link");
    assert!(
        fs::symlink_metadata(store.path())
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        StateStore::new(&real)
            .read()
            .expect("read")
            .map(|s| s.serial),
        Some(2)
    );
    assert_eq!(
        store.read_backup().expect("backup").map(|s| s.serial),
        Some(1)
    );
}

#[test]
fn write_refuses_when_the_file_moved() {
    let (_dir, store) = store();
    let mut state = scenario();
    store.write(&mut state, None).expect("write 1");
    let mut other_run = store.read().expect("read").expect("present");
    store
        .write(&mut other_run, Some(1))
        .expect("other run writes serial 2");
    let on_disk = fs::read(store.path()).expect("bytes");

    let err = store.write(&mut state, Some(1)).expect_err("stale serial");
    assert!(
        matches!(
            err,
            StateError::Moved {
                expected: Some(1),
                found: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("expected serial 1, found serial 2") && msg.contains("plan again"),
        "{msg}"
    );
    let err = store.write(&mut state, None).expect_err("expects no file");
    assert!(
        matches!(
            err,
            StateError::Moved {
                expected: None,
                found: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fs::read(store.path()).expect("bytes"), on_disk);
    assert_eq!(
        state.serial, 1,
        "a refused write does not move the caller's serial"
    );

    fs::remove_file(store.path()).expect("remove");
    let err = store.write(&mut state, Some(2)).expect_err("file vanished");
    assert!(err.to_string().contains("found no state file"), "{err}");
}

#[test]
fn wrong_lineage_is_refused_on_read_and_write_without_touching_the_file() {
    let (_dir, store) = store();
    let mut state = scenario();
    store.write(&mut state, None).expect("write");
    let before = fs::read(store.path()).expect("bytes");

    let stranger = Uuid::new_v4();
    let err = store.read_expecting(stranger).expect_err("other lineage");
    assert!(matches!(err, StateError::LineageMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&stranger.to_string()) && msg.contains(&state.lineage.to_string()),
        "{msg}"
    );
    assert!(msg.contains(&store.path().display().to_string()), "{msg}");

    let mut foreign = StateFile::new("managed-identity");
    let err = store
        .write(&mut foreign, Some(1))
        .expect_err("other lineage");
    assert!(matches!(err, StateError::LineageMismatch { .. }), "{err:?}");
    assert_eq!(fs::read(store.path()).expect("bytes"), before);
}

/// Writes `bytes` as the state file, checks the read error with `check`, then checks that neither
/// reading nor an attempted write changed a byte.
fn damaged(bytes: &[u8], check: impl Fn(&StateError)) {
    let (_dir, store) = store();
    let mut good = scenario();
    store.write(&mut good, None).expect("seed");
    fs::write(store.path(), bytes).expect("damage");
    let err = store.read().expect_err("damaged file must not read");
    check(&err);
    let msg = err.to_string();
    assert!(
        msg.contains(&store.path().display().to_string()),
        "message lacks the path: {msg}"
    );
    assert!(
        msg.contains("not changed"),
        "message does not reassure: {msg}"
    );
    let err = store
        .write(&mut good, Some(1))
        .expect_err("must not overwrite damage");
    check(&err);
    assert_eq!(
        fs::read(store.path()).expect("bytes"),
        bytes,
        "file was touched"
    );
}

#[test]
fn corrupt_file_is_a_clear_error_and_untouched() {
    let text = serde_json::to_string_pretty(&scenario()).expect("json");
    let corrupt = text.replacen("\"serial\": 0,", "\"serial\": 0,,", 1);
    damaged(corrupt.as_bytes(), |err| {
        assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("line 4 column 15"), "{err}");
    });
}

#[test]
fn truncated_and_empty_files_are_clear_errors_and_untouched() {
    let text = serde_json::to_string_pretty(&scenario()).expect("json");
    damaged(&text.as_bytes()[..text.len() / 2], |err| {
        assert!(matches!(err, StateError::Truncated { .. }), "{err:?}");
        assert!(err.to_string().contains("truncated"), "{err}");
    });
    damaged(b"", |err| {
        assert!(
            err.to_string().contains("is truncated (the file is empty)"),
            "{err}"
        );
    });
}

#[test]
fn future_version_is_a_clear_error_and_untouched() {
    let future = json!({ "version": 2, "lineage": Uuid::new_v4(), "serial": 9, "stack": "managed-identity",
        "resources": {}, "outputs": {}, "new_field_of_v2": true });
    damaged(&serde_json::to_vec(&future).expect("json"), |err| {
        assert!(
            matches!(
                err,
                StateError::FutureVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("Upgrade stackform"), "{err}");
    });
}

#[test]
fn wrong_shape_is_a_clear_error_and_untouched() {
    damaged(br#"{"version": 1, "serial": 3}"#, |err| {
        assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("missing field"), "{err}");
    });
    damaged(br#"{"serial": 3}"#, |err| {
        assert!(err.to_string().contains("no `version` field"), "{err}");
    });
    damaged(b"[1, 2]", |err| {
        assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("it is not a JSON object"), "{err}");
    });
    damaged(br#"{"version": 0}"#, |err| {
        assert!(
            matches!(err, StateError::UnsupportedVersion { found: 0, .. }),
            "{err:?}"
        );
    });
}

#[test]
fn damage_message_points_at_the_backup_when_there_is_one() {
    let (_dir, store) = store();
    let mut state = scenario();
    store.write(&mut state, None).expect("write 1");
    store.write(&mut state, Some(1)).expect("write 2");
    fs::write(store.path(), b"{").expect("damage");
    let msg = store.read().expect_err("damaged").to_string();
    assert!(
        msg.contains(&store.backup_path().display().to_string()),
        "{msg}"
    );
}

#[test]
fn sensitive_values_never_reach_the_disk() {
    let (_dir, store) = store();
    let mut state = scenario();
    // Put the secret in directly, bypassing `record`, to prove the write redacts on its own.
    let resource = state.resources.get_mut("store").expect("store");
    resource.inputs["access_key"] = json!("AccountKey-SUPER-SECRET==");
    resource.outputs["access_key"] = json!("Output-SUPER-SECRET==");
    store.write(&mut state, None).expect("write");
    store
        .write(&mut state, Some(1))
        .expect("write again, creating a backup");
    for path in [store.path().to_owned(), store.backup_path()] {
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            !text.contains("SUPER-SECRET"),
            "secret in {}: {text}",
            path.display()
        );
        assert!(
            text.contains("hmac-sha256:"),
            "no marker in {}",
            path.display()
        );
    }
    let read = store.read().expect("read").expect("present");
    assert!(stackform::state::sensitive::stored_matches(
        &read.lineage,
        &read.resources["store"].inputs["access_key"],
        &json!("AccountKey-SUPER-SECRET==")
    ));
    assert_eq!(read, state, "the caller's copy is redacted like the file");
}

#[test]
fn nothing_is_left_beside_the_state_but_file_and_backup() {
    let (_dir, store) = store();
    let mut state = scenario();
    for expected in [None, Some(1), Some(2)] {
        store.write(&mut state, expected).expect("write");
    }
    let dir = store.path().parent().expect("dir");
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["managed-identity.json", "managed-identity.json.backup"]
    );
}

/// Floats read back from state must equal those written, or plan would show phantom updates; serde_json
/// only guarantees this with its `float_roundtrip` feature (this value came back one ulp off without it).
#[test]
fn floats_round_trip_exactly() {
    let (_dir, store) = store();
    let mut state = scenario();
    state
        .outputs
        .insert(String::from("f"), json!(-9.26399700964486e279));
    state.outputs.insert(String::from("g"), json!(0.1 + 0.2));
    store.write(&mut state, None).expect("write");
    assert_eq!(
        store.read().expect("read").expect("present").outputs,
        state.outputs
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("json numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn resource() -> impl Strategy<Value = ResourceState> {
    (
        "[a-z_]{1,20}",
        ".{0,40}",
        any::<bool>(),
        prop::collection::vec((".{0,6}", json_value()), 0..4),
        json_value(),
        prop::collection::vec("[a-z]{1,6}", 0..3),
        prop::option::of("[0-9a-f]{8}"),
    )
        .prop_map(|(ty, id, tainted, inputs, outputs, deps, hash)| {
            let mut r =
                ResourceState::new(ty, id, Value::Object(inputs.into_iter().collect()), outputs);
            if tainted {
                r.status = ResourceStatus::Tainted;
            }
            r.dependencies = deps;
            r.content_hash = hash;
            r
        })
}

fn state_file() -> impl Strategy<Value = StateFile> {
    (
        "[a-z][a-z0-9-]{0,15}",
        any::<u128>(),
        0..u64::MAX / 2,
        prop::collection::vec(("[a-z][a-z0-9_-]{0,10}", resource()), 0..5),
        prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..3),
    )
        .prop_map(|(stack, lineage, serial, resources, outputs)| {
            let mut state = StateFile::new(stack);
            state.lineage = Uuid::from_u128(lineage);
            state.serial = serial;
            state.resources = resources.into_iter().collect();
            state.outputs = outputs.into_iter().collect();
            state
        })
}

proptest! {
    // Failures are kept beside this file, in `state_store.proptest-regressions` (proptest's default
    // would be `tests/proptest-regressions/state_store.txt`, as `tests/it` holds a `main.rs`).
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// Any state survives a write and a read unchanged (apart from the serial the write assigns).
    #[test]
    fn any_state_round_trips_through_the_store(mut state in state_file()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = StateStore::new(dir.path().join("s.json"));
        let serial = store.write(&mut state, None).expect("write");
        prop_assert_eq!(state.serial, serial);
        let read = store.read().expect("read").expect("present");
        prop_assert_eq!(read, state);
    }
}

/// Benchmark, not a check: prints how long a 100,000-resource state takes to write and read.
#[test]
#[ignore = "benchmark; run with `cargo test --release --test it state_store::bench_large_state -- --ignored --nocapture`"]
fn bench_large_state() {
    let (_dir, store) = store();
    let mut state = StateFile::new("big");
    for i in 0..100_000 {
        let mut r = ResourceState::new(
            "blob",
            format!("https://acct.blob.core.windows.net/c/blob-{i}"),
            json!({ "account": "acct", "container": "c", "name": format!("blob-{i}"), "source": "./f" }),
            json!({ "etag": format!("0x{i:016x}") }),
        );
        r.dependencies = vec![String::from("store")];
        state.resources.insert(format!("blob{i}"), r);
    }
    let started = std::time::Instant::now();
    store.write(&mut state, None).expect("write");
    let wrote = started.elapsed();
    let started = std::time::Instant::now();
    let read = store.read().expect("read").expect("present");
    let read_time = started.elapsed();
    let bytes = fs::metadata(store.path()).expect("meta").len();
    println!(
        "100000 resources, {:.1} MiB: write {wrote:?}, read {read_time:?}",
        bytes as f64 / 1_048_576.0
    );
    assert_eq!(read.resources.len(), 100_000);
}
