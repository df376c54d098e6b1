//! Running the real `stackform` binary (`CARGO_BIN_EXE_stackform`) and reading what it did: a small
//! command builder, `Cmd::new().args(["validate", "-f", path]).run()`, that returns the exit code and
//! both output streams. Its environment is cleaned of every `STACKFORM_*` variable and colour is off, so a
//! developer's shell never changes a result; a test that writes anything runs it in a [`super::Test`]
//! folder instead of the repository.
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::fixtures::repo_root;

/// The path of the binary under test.
pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_stackform")
}

/// One invocation of the binary, built up and then run once.
pub(crate) struct Cmd {
    command: Command,
}

/// What a finished invocation left: exit code (-1 when killed by a signal) and its output as text.
pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cmd {
    /// The binary with no arguments, in the repository root (for commands that only read: `validate`,
    /// `graph`, `schema`, `--help`).
    pub(crate) fn new() -> Self {
        Self::cleaned(Command::new(binary()))
    }

    /// The binary run by `sh -c` after the shell commands `setup` (e.g. `trap '' XFSZ; ulimit -f 8`:
    /// limits and signal dispositions it inherits), otherwise as [`Cmd::new`].
    pub(crate) fn after_shell(setup: &str) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{setup}; exec \"$0\" \"$@\""))
            .arg(binary());
        Self::cleaned(command)
    }

    fn cleaned(mut command: Command) -> Self {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STACKFORM_") {
                command.env_remove(key);
            }
        }
        command.env("NO_COLOR", "1").current_dir(repo_root());
        Cmd { command }
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Runs to the end and captures the output.
    pub(crate) fn run(mut self) -> Output {
        self.command
            .output()
            .expect("the stackform binary runs")
            .into()
    }

    /// Starts it with the given stdout and stderr (a pipe whose reader the test closes, `/dev/full`),
    /// stdin empty.
    pub(crate) fn spawn_with(mut self, stdout: Stdio, stderr: Stdio) -> Child {
        self.command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("the stackform binary starts")
    }

    /// Starts it in the background with both streams piped, for tests that interrupt it.
    pub(crate) fn spawn(mut self) -> Child {
        self.command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the stackform binary starts")
    }
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Waits for a run started with [`Cmd::spawn`] to end and returns what it printed.
pub(crate) fn finished(child: Child) -> Output {
    child.wait_with_output().expect("the run ends").into()
}

/// Reads both pipes of a run started with [`Cmd::spawn`] to the end, in threads, so a run that
/// prints a lot never blocks on a full pipe; join the threads once the run is reaped.
pub(crate) fn drain(child: &mut Child) -> Vec<std::thread::JoinHandle<()>> {
    let pipes: [Option<Box<dyn std::io::Read + Send>>; 2] = [
        child.stdout.take().map(|o| Box::new(o) as _),
        child.stderr.take().map(|e| Box::new(e) as _),
    ];
    pipes
        .into_iter()
        .flatten()
        .map(|mut pipe| {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            })
        })
        .collect()
}

impl Output {
    /// The numbers on the stderr line that starts with `prefix` (a summary's `Requests: 12 request(s)
    /// (ARM 9, blob and other 3).` gives `[12, 9, 3]`); panics when there is no such line.
    pub(crate) fn numbers_on(&self, prefix: &str) -> Vec<u64> {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in\n{}", self.stderr));
        line.split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Asserts the exit code, showing all output when it differs.
    pub(crate) fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}
