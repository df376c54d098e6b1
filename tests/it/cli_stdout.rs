//! Standard output and error that cannot be written: a reader that stopped early (`| head`) ends the
//! command quietly with 141, as `git log | head` does; any other failure (a full disk) is a clear error
//! with exit 1; a closed stderr is never a panic.
use std::io::Read as _;
use std::process::{Child, Stdio};

use crate::support::{Cmd, Test};

/// Runs `cmd` with its stdout a pipe whose reader is closed before the command writes (it is dropped
/// as soon as the child starts); returns the exit code and stderr.
fn with_closed_stdout(cmd: Cmd) -> (i32, String) {
    let mut child = cmd.spawn_with(Stdio::piped(), Stdio::piped());
    drop(child.stdout.take());
    finish(child)
}

fn finish(mut child: Child) -> (i32, String) {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).expect("stderr is read");
    }
    let status = child.wait().expect("the binary ends");
    (status.code().unwrap_or(-1), stderr)
}

/// `stackform state history | head -3` panicked with "failed printing to stdout: Broken pipe" and a
/// backtrace: every `println!` panics when the reader of stdout has gone.
#[test]
fn a_closed_stdout_ends_the_command_quietly_with_141() {
    let t = Test::new().example("managed-identity");
    for args in [
        vec!["state", "history"],
        vec!["schema"],
        vec!["graph", "-f", "stack.yaml"],
        vec!["validate", "-f", "stack.yaml"],
    ] {
        let (code, stderr) = with_closed_stdout(t.cmd().args(&args));
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(
            stderr, "",
            "{args:?}: nothing is said, the reader asked for no more"
        );
        assert_eq!(
            code, 141,
            "{args:?}: 128 + SIGPIPE, as the shell reports `git log | head`"
        );
    }
}

/// A stdout that refuses the bytes for another reason (here /dev/full: no space left on device) is an
/// error the user reads, exit 1, never a panic.
#[test]
fn an_unwritable_stdout_is_a_clear_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens for writing");
    let child = Cmd::new()
        .args(["schema"])
        .spawn_with(Stdio::from(full), Stdio::piped());
    let (code, stderr) = finish(child);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr,
        "error: cannot write to standard output: No space left on device (os error 28)\n"
    );
    assert_eq!(code, 1);
}

/// An error reported to a closed stderr panicked in `eprint!` (exit 101); the write is given up and
/// the command still exits with the error's code.
#[test]
fn a_closed_stderr_is_not_a_panic() {
    let t = Test::new();
    let mut child = t
        .cmd()
        .args(["validate", "-f", "missing.yaml"])
        .spawn_with(Stdio::null(), Stdio::piped());
    drop(child.stderr.take());
    let status = child.wait().expect("the binary ends");
    assert_eq!(status.code(), Some(1));
}

/// The fix holds only if nothing prints around it: `println!`, `print!`, `eprintln!` and `eprint!`
/// panic on a stream that cannot be written, so `src/` writes through `report::stdio` instead
/// (unit-test files excepted).
#[test]
fn src_prints_only_through_report_stdio() {
    let mut found = Vec::new();
    let mut stack = vec![crate::support::repo_root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is read") {
            let path = entry.expect("an entry of src/").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs")
                || path.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file is read");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if ["println!(", "print!(", "eprintln!(", "eprint!("]
                    .iter()
                    .any(|m| code.contains(m))
                {
                    found.push(format!("{}:{}: {code}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "write through report::stdio:\n{}",
        found.join("\n")
    );
}
