//! The apply journal across a real crash: this test binary re-runs itself as an "apply" that is
//! killed between sending a step and recording it.
//!
//! `journal_writer_child` is a no-op in a normal run. With `WRITER_ENV` naming a journal it records
//! three steps, finishes the first, prints `SENT`, and waits on stdin for the kill.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::Arc;

use stackform::state::{Journal, JournalAction, JournalError, JournalNote, NewIntent, StateStore};

use crate::support::child::{SelfChild, test_name};

const WRITER_ENV: &str = "STACKFORM_TEST_JOURNAL_WRITER";

fn step(address: &str, action: JournalAction) -> NewIntent {
    NewIntent {
        address: address.to_owned(),
        resource_type: String::from("blob_container"),
        action,
        target: format!(
            "/subscriptions/0000/resourceGroups/demo-rg/providers/Microsoft.Storage/storageAccounts/s/blobServices/default/containers/{address}"
        ),
    }
}

#[test]
fn journal_writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else {
        return;
    };
    let journal = Journal::open(&path).expect("open").journal;
    let first = journal
        .intent(step("store", JournalAction::Create))
        .expect("intent");
    journal.done(first).expect("done");
    journal
        .intent(step("data", JournalAction::Create))
        .expect("intent");
    journal
        .intent(step("old", JournalAction::Delete))
        .expect("intent");
    println!("SENT");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn journal_path() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = StateStore::for_stack(dir.path(), "demo")
        .expect("name")
        .journal_path();
    (dir, path)
}

#[test]
fn unfinished_intents_are_found_after_a_killed_run() {
    let (_dir, path) = journal_path();
    let mut writer = SelfChild::start(
        &test_name(module_path!(), "journal_writer_child"),
        (WRITER_ENV, &path),
    );
    writer.wait_for("SENT");
    writer.kill(); // the crash

    let (peeked, notes) = Journal::read_unfinished(&path).expect("peek");
    assert!(notes.is_empty());
    let opened = Journal::open(&path).expect("reopen after crash");
    let unfinished: Vec<(u64, &str, JournalAction)> = opened
        .unfinished
        .iter()
        .map(|i| (i.step, i.address.as_str(), i.action))
        .collect();
    assert_eq!(
        unfinished,
        vec![
            (2, "data", JournalAction::Create),
            (3, "old", JournalAction::Delete)
        ]
    );
    assert_eq!(peeked, opened.unfinished);
    assert!(opened.unfinished[0].target.ends_with("/containers/data"));
    assert!(!opened.unfinished[0].at.is_empty());

    // The next run resolves them (after reading the cloud) and finishes cleanly.
    let journal = opened.journal;
    journal.done(2).expect("resolve data");
    journal.done(3).expect("resolve old");
    journal.finish().expect("finish");
    assert!(!path.exists(), "a clean run removes the journal");
}

#[test]
fn torn_last_line_is_tolerated_with_a_note() {
    let (_dir, path) = journal_path();
    let journal = Journal::open(&path).expect("open").journal;
    journal
        .intent(step("a", JournalAction::Update))
        .expect("intent");
    drop(journal);
    let whole = fs::read(&path).expect("read");
    // A crash in the middle of writing the next record.
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    file.write_all(br#"{"kind":"intent","step":2,"address":"b","ty"#)
        .expect("append torn");
    drop(file);
    let torn = fs::read(&path).expect("read");

    let (unfinished, notes) = Journal::read_unfinished(&path).expect("peek tolerates it");
    assert_eq!(unfinished.len(), 1);
    assert_eq!(
        fs::read(&path).expect("read"),
        torn,
        "peeking changes nothing"
    );
    assert!(matches!(
        notes.as_slice(),
        [JournalNote::TornTail { line: 2, .. }]
    ));
    assert!(
        notes[0]
            .to_string()
            .contains("incomplete last journal line")
    );

    let opened = Journal::open(&path).expect("open tolerates it");
    assert_eq!(opened.unfinished.len(), 1);
    assert_eq!(opened.unfinished[0].address, "a");
    assert_eq!(fs::read(&path).expect("read"), whole, "torn bytes dropped");
    let next = opened
        .journal
        .intent(step("b", JournalAction::Create))
        .expect("append after torn tail");
    assert_eq!(next, 2);
    let reopened = Journal::open(&path).expect("reopen");
    assert!(reopened.notes.is_empty());
    assert_eq!(reopened.unfinished.len(), 2);
}

#[test]
fn damage_in_the_middle_is_an_error_naming_the_line() {
    let (_dir, path) = journal_path();
    let journal = Journal::open(&path).expect("open").journal;
    journal
        .intent(step("a", JournalAction::Update))
        .expect("intent");
    journal
        .intent(step("b", JournalAction::Update))
        .expect("intent");
    drop(journal);
    let text = fs::read_to_string(&path).expect("read");
    let damaged = text.replacen("\"kind\":\"intent\"", "\"kind\":\"intnet\"", 1);
    fs::write(&path, &damaged).expect("write");
    let err = Journal::open(&path).expect_err("damaged");
    assert!(
        matches!(err, JournalError::Corrupt { line: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("line 1"),
        "{msg}"
    );
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        damaged,
        "file touched"
    );
}

#[test]
fn parallel_steps_share_one_journal() {
    let (_dir, path) = journal_path();
    let journal = Arc::new(Journal::open(&path).expect("open").journal);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                let id = journal
                    .intent(step(&format!("r{i}"), JournalAction::Create))
                    .expect("intent");
                if i % 2 == 0 {
                    journal.done(id).expect("done");
                }
                id
            })
        })
        .collect();
    let mut ids: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>(), "ids are unique");
    drop(journal);
    let reopened = Journal::open(&path).expect("reopen");
    assert!(reopened.notes.is_empty(), "no interleaved lines");
    let mut open: Vec<String> = reopened
        .unfinished
        .iter()
        .map(|i| i.address.clone())
        .collect();
    open.sort();
    assert_eq!(open, vec!["r1", "r3", "r5", "r7"]);
}
