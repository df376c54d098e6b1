//! The stack lock across real processes: this test binary re-runs itself as a lock holder.
//!
//! `lock_holder_child` is a no-op in a normal run. A parent test starts this binary again running only
//! that test (see [`SelfChild`]) with `HOLDER_ENV` naming a lock file; the child takes the lock, prints
//! `LOCKED <pid>`, and holds it until a line (or EOF) arrives on its stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stackform::state::{Lock, LockError, LockRequest, StateStore, TakeoverReason};

use crate::support::child::{SelfChild, test_name};

const HOLDER_ENV: &str = "STACKFORM_TEST_LOCK_HOLDER";

#[test]
fn lock_holder_child() {
    let Ok(path) = std::env::var(HOLDER_ENV) else {
        return;
    };
    let acquired = Lock::acquire(&path, &LockRequest::new("apply")).expect("child takes the lock");
    println!("LOCKED {}", std::process::id());
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    acquired.guard.release().expect("child releases");
    println!("RELEASED");
}

/// A copy of this binary holding the lock, with its pid.
struct Holder {
    child: SelfChild,
    pid: u32,
}

impl Holder {
    /// Starts a child that holds the lock at `path`; returns once it has it.
    fn start(path: &Path) -> Holder {
        let mut child = SelfChild::start(
            &test_name(module_path!(), "lock_holder_child"),
            (HOLDER_ENV, path),
        );
        let line = child.wait_for("LOCKED ");
        let pid = line
            .split_once("LOCKED ")
            .and_then(|(_, pid)| pid.trim().parse().ok())
            .expect("pid after LOCKED");
        assert_eq!(pid, child.child.id());
        Holder { child, pid }
    }

    /// Asks the child to release and waits until it has.
    fn release(mut self) {
        drop(self.child.stdin.take());
        self.child.wait_for("RELEASED");
        assert!(self.child.child.wait().expect("wait").success());
    }
}

fn lock_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::for_stack(dir.path(), "demo").expect("name");
    let path = store.lock_path();
    (dir, path)
}

#[test]
fn lock_held_by_another_process_fails_at_once_naming_the_holder() {
    let (_dir, path) = lock_path();
    let holder = Holder::start(&path);
    let err = Lock::acquire(&path, &LockRequest::new("destroy")).expect_err("held elsewhere");
    let LockError::Held {
        holder: Some(info), ..
    } = &err
    else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(info.pid, holder.pid);
    assert_eq!(info.command, "apply");
    let msg = err.to_string();
    for part in [
        format!("pid {}", holder.pid),
        format!("on host {}", info.host),
        info.holder.clone(),
        String::from("running `apply`"),
        format!("since {}", info.since),
    ] {
        assert!(msg.contains(&part), "{part:?} missing from: {msg}");
    }
    holder.release();
    let acquired = Lock::acquire(&path, &LockRequest::new("destroy")).expect("free again");
    assert!(
        acquired.notice.is_none(),
        "a clean release needs no takeover"
    );
}

#[test]
fn waiter_with_timeout_gets_the_lock_after_release() {
    let (_dir, path) = lock_path();
    let mut holder = Holder::start(&path);
    let holder_pid = holder.pid;
    let mut stdin = holder.child.stdin.take();
    let mut waited_for = None;
    let acquired = Lock::acquire_with(
        &path,
        &LockRequest::new("plan").with_timeout(Duration::from_secs(120)),
        |info| {
            // Called only after a failed attempt: release the holder now, so getting the lock
            // proves the waiter kept polling.
            waited_for = info.map(|i| i.pid);
            if let Some(mut pipe) = stdin.take() {
                let _ = pipe.write_all(b"release\n");
            }
        },
    )
    .expect("gets the lock after the holder releases");
    assert_eq!(waited_for, Some(holder_pid), "on_wait names the holder");
    assert!(acquired.notice.is_none());
    assert_eq!(acquired.guard.info().command, "plan");
    holder.release();
}

#[test]
fn waiter_times_out_while_the_other_process_holds_it() {
    let (_dir, path) = lock_path();
    let holder = Holder::start(&path);
    let err = Lock::acquire(
        &path,
        &LockRequest::new("plan").with_timeout(Duration::from_millis(300)),
    )
    .expect_err("still held");
    assert!(
        matches!(&err, LockError::Timeout { holder: Some(info), .. } if info.pid == holder.pid),
        "{err:?}"
    );
    assert!(err.to_string().contains("after waiting"), "{err}");
    holder.release();
}

#[test]
fn lock_of_a_killed_process_is_taken_over_with_a_notice() {
    let (_dir, path) = lock_path();
    let mut holder = Holder::start(&path);
    holder.child.kill();
    // The kernel released the OS lock; the record naming the dead holder is still in the file.
    let record = Lock::holder(&path)
        .expect("read")
        .expect("record left behind");
    assert_eq!(record.pid, holder.pid);

    let acquired = Lock::acquire(&path, &LockRequest::new("apply")).expect("takeover");
    let notice = acquired.notice.clone().expect("takeover notice");
    assert_eq!(notice.reason, TakeoverReason::HolderDead);
    assert_eq!(notice.previous.as_ref().map(|p| p.pid), Some(holder.pid));
    let text = notice.to_string();
    assert!(
        text.contains(&format!("pid {}", holder.pid)) && text.contains("no longer running"),
        "{text}"
    );
    assert_eq!(
        Lock::holder(&path).expect("read").map(|i| i.pid),
        Some(std::process::id())
    );
}

#[test]
fn force_unlock_frees_a_lock_held_by_a_live_process() {
    let (_dir, path) = lock_path();
    let holder = Holder::start(&path);
    let outcome = Lock::force_unlock(&path).expect("force unlock");
    assert!(
        matches!(&outcome, stackform::state::UnlockOutcome::BrokeHeldLock(Some(info)) if info.pid == holder.pid),
        "{outcome:?}"
    );
    let acquired = Lock::acquire(&path, &LockRequest::new("apply")).expect("lock after force");
    // The old holder's release must not delete the new holder's file.
    holder.release();
    assert!(path.exists());
    assert_eq!(
        Lock::holder(&path).expect("read").map(|i| i.id),
        Some(acquired.guard.info().id)
    );
}
