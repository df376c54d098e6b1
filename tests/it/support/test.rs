//! The builder every CLI test starts from: a temporary working folder of its own (optionally a copy of an
//! example, or a stack written by the test) and, when asked for, a local cloud of its own (the real
//! binary, detached, port 0 on 127.0.0.1, its own data folder), stopped when the test ends.
//!
//! ```text
//! let t = Test::new().example("managed-identity").local_cloud(&[]);
//! t.run(["apply", "--auto-approve"]).code(0);
//! ```
//!
//! Every run of the binary through a `Test` points `STACKFORM_CLOUD_DIR` at the test's own cloud folder,
//! so a run can never reach (or start) a cloud another test or the developer uses.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::bin::{Cmd, Output, binary};
use super::cloud::Cloud;
use super::fixtures::copy_example;
use super::wait::block_on;

/// A working folder and (optionally) a local cloud, both removed when the test ends.
pub(crate) struct Test {
    dir: tempfile::TempDir,
    cloud: Option<Cloud>,
    /// The cloud's data folder while no cloud is started: a run that would start one starts it here,
    /// and it is stopped on drop.
    cloud_dir: tempfile::TempDir,
}

impl Test {
    /// An empty working folder, no cloud.
    pub(crate) fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            cloud: None,
            cloud_dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Copies `examples/<name>` (its stack and the files it uploads) into the working folder, without
    /// the state a developer's own run of the example keeps beside it (`state/`).
    pub(crate) fn example(self, name: &str) -> Test {
        copy_example(name, self.dir.path());
        self
    }

    /// Writes `text` as the working folder's `stack.yaml`.
    pub(crate) fn stack(self, text: &str) -> Test {
        self.write("stack.yaml", text);
        self
    }

    /// Starts a local cloud for this test with extra `cloud up` flags (faults, e.g. `--lro-ms 1500`).
    pub(crate) fn local_cloud(mut self, flags: &[&str]) -> Test {
        self.cloud = Some(Cloud::start_binary(flags));
        self
    }

    /// Kills the test's cloud with SIGKILL (no shutdown of any kind) and hands back its data folder,
    /// for [`Test::start_cloud_again`]; panics when [`Test::local_cloud`] was not called.
    pub(crate) fn kill_9_cloud(&mut self) -> tempfile::TempDir {
        let cloud = self.cloud.take().expect("the test started a local cloud");
        block_on(cloud.kill_9())
    }

    /// Starts the cloud again on its data folder (on a new port) with `cloud up` flags.
    pub(crate) fn start_cloud_again(&mut self, dir: tempfile::TempDir, flags: &[&str]) {
        self.cloud = Some(Cloud::start_binary_in(dir, flags));
    }

    /// Stops the test's cloud and starts it again with the same data folder on another free port
    /// (`cloud up` flags `flags`), as a developer's emulator comes back after a restart; returns the
    /// ARM endpoint before and after. Panics when [`Test::local_cloud`] was not called.
    pub(crate) fn restart_cloud(&mut self, flags: &[&str]) -> (String, String) {
        let cloud = self.cloud.take().expect("the test started a local cloud");
        let before = cloud.info.arm_endpoint.clone();
        let dir = block_on(cloud.stop());
        let cloud = Cloud::start_binary_in(dir, flags);
        let after = cloud.info.arm_endpoint.clone();
        self.cloud = Some(cloud);
        (before, after)
    }

    /// The test's cloud; panics when [`Test::local_cloud`] was not called.
    pub(crate) fn cloud(&self) -> &Cloud {
        self.cloud.as_ref().expect("the test started a local cloud")
    }

    /// The working folder.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the working folder.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Reads a file of the working folder (it must exist).
    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).expect("read a file of the test folder")
    }

    /// Writes a file of the working folder (its folder must exist).
    pub(crate) fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).expect("write a file of the test folder");
    }

    /// Replaces `from` by `to` in a file of the working folder; returns the file as it was.
    pub(crate) fn edit(&self, rel: &str, from: &str, to: &str) -> String {
        let before = self.read(rel);
        assert!(before.contains(from), "{rel} has no `{from}`");
        self.write(rel, &before.replace(from, to));
        before
    }

    /// The data folder of the cloud the binary uses when run from this test.
    pub(crate) fn cloud_dir(&self) -> &Path {
        match &self.cloud {
            Some(c) => c.dir.path(),
            None => self.cloud_dir.path(),
        }
    }

    /// The binary in the working folder, bound to this test's cloud; add arguments and run it.
    pub(crate) fn cmd(&self) -> Cmd {
        Cmd::new()
            .current_dir(self.dir.path())
            .env("STACKFORM_CLOUD_DIR", self.cloud_dir())
    }

    /// Runs the binary with `args` in the working folder.
    pub(crate) fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args).run()
    }

    /// Calls the test's cloud over REST from a synchronous test.
    pub(crate) fn rest<T>(&self, f: impl AsyncFnOnce(&Cloud) -> T) -> T {
        block_on(f(self.cloud()))
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        // Only a cloud a run started by itself is left to stop here; a started one stops itself.
        if self.cloud.is_none() && self.cloud_dir.path().join("cloud.json").exists() {
            std::process::Command::new(binary())
                .args(["cloud", "down", "--data-dir"])
                .arg(self.cloud_dir.path())
                .output()
                .ok();
        }
    }
}
