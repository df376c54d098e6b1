//! A small builder for driving the real `stackform` binary in integration tests:
//! `Cmd::new().args(["validate", "-f", path]).run()` returns its exit code and output.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this helper"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name).join("stack.yaml")
}

pub struct Cmd {
    command: Command,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cmd {
    pub fn new() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stackform"));
        command
            .env("NO_COLOR", "1")
            .env_remove("STACKFORM_LOG")
            .current_dir(repo_root());
        Cmd { command }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn arg_path(mut self, path: impl AsRef<Path>) -> Self {
        self.command.arg(path.as_ref());
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn run(mut self) -> Output {
        let out = self.command.output().expect("the stackform binary runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    /// Asserts the exit code, showing all output when it differs.
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}
