//! Tests that need a second process (a lock holder, a writer that is killed mid-run) re-run this test
//! binary as that process: the child runs exactly one test whose body does nothing unless an
//! environment variable names its work. This module starts such a child and reads its stdout lines,
//! with a deadline on each so a broken child fails the test instead of hanging it.
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// How long a child may take to print an expected line; only reached if something is broken.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// A running copy of this test binary, running one test.
pub(crate) struct SelfChild {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl SelfChild {
    /// Starts this binary running only `test` (its full path, e.g. `state_lock::lock_holder_child`)
    /// with `env` set; stdin and stdout are piped, stderr is inherited.
    pub(crate) fn start(test: &str, env: (&str, &std::path::Path)) -> SelfChild {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(env.0, env.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a copy of the test binary");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        SelfChild {
            child,
            stdin,
            lines,
        }
    }

    /// The first line containing `marker` (libtest may print `test … ... ` before it on the same line);
    /// kills the child and fails if it goes quiet or exits first.
    pub(crate) fn wait_for(&mut self, marker: &str) -> String {
        loop {
            match self.lines.recv_timeout(CHILD_DEADLINE) {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => {}
                Err(err) => {
                    self.child.kill().ok();
                    panic!("the child never printed {marker:?}: {err}");
                }
            }
        }
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("kill the child");
        self.child.wait().expect("reap the child");
    }
}

impl Drop for SelfChild {
    fn drop(&mut self) {
        // A failed test must not leave a child behind (it exits on its own once its work is done).
        if matches!(self.child.try_wait(), Ok(None)) && self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}

/// The name libtest gives a test function of this binary: its module path without the crate name,
/// e.g. `test_name(module_path!(), "lock_holder_child")` is `state_lock::lock_holder_child`.
pub(crate) fn test_name(module_path: &str, function: &str) -> String {
    let module = module_path.split_once("::").map_or("", |(_, rest)| rest);
    if module.is_empty() {
        function.to_string()
    } else {
        format!("{module}::{function}")
    }
}
