//! The table of running scoring processes: each deployment's child process and port, the
//! managed-identity secrets handed to them, the generation of each deployment's latest start, and the
//! per-environment build locks.
//!
//! It only keeps these facts; starting and stopping processes is the runner's job. It must never
//! import another module of the cloud (the shared state holds it).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) struct Proc {
    pub(crate) child: tokio::process::Child,
    pub(crate) port: u16,
    pub(crate) secret: String,
}

/// Running scoring processes, MSI secrets and in-flight deploy generations.
#[derive(Default)]
pub(crate) struct Procs {
    pub(crate) running: Mutex<HashMap<String, Proc>>,
    pub(crate) secrets: Mutex<HashMap<String, String>>,
    pub(crate) generations: Mutex<HashMap<String, u64>>,
    pub(crate) env_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Set on shutdown: processes that finish starting afterwards are stopped at once.
    pub(crate) closed: std::sync::atomic::AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Procs {
    /// The endpoint (lowercase id) a managed-identity secret belongs to.
    pub(crate) fn endpoint_for_secret(&self, secret: &str) -> Option<String> {
        if secret.is_empty() {
            return None;
        }
        lock(&self.secrets).get(secret).cloned()
    }

    pub(crate) fn port(&self, dep_key: &str) -> Option<u16> {
        lock(&self.running).get(dep_key).map(|p| p.port)
    }
}
