//! The backend's own tokio runtime: one thread that makes every remote call, so the state's hooks
//! (called synchronously from the journal's group commit, on async workers and plain threads alike)
//! and the lock's heartbeat reach the storage service the same way, whatever runtime the caller is
//! on, and connections are never shared between runtimes.
//!
//! It never decides anything: it runs the futures it is given and hands back their output.
use std::future::Future;
use std::sync::mpsc;

/// A runtime with one worker thread, kept for the backend's life; shut down in the background when
/// dropped (dropping it may happen inside another runtime).
pub(crate) struct Worker {
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Worker")
    }
}

impl Worker {
    pub(crate) fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stackform-backend")
            .enable_all()
            .build()?;
        Ok(Self { rt: Some(rt) })
    }

    /// Runs `fut` on the backend's thread and waits for its output, blocking the calling thread
    /// (from inside another runtime too: the future runs elsewhere).
    pub(crate) fn call<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let Some(rt) = &self.rt else {
            unreachable!("the runtime lives until the worker is dropped")
        };
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        match rx.recv() {
            Ok(out) => out,
            // The task panicked: carry the panic to the caller rather than invent an answer.
            Err(_) => panic!("a remote state call panicked"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call made from inside another runtime's task runs on the worker's thread and returns.
    #[test]
    fn calls_work_from_inside_another_runtime() {
        let worker = std::sync::Arc::new(Worker::new().unwrap());
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let w = worker.clone();
        let name = outer.block_on(async move {
            w.call(async { std::thread::current().name().map(str::to_owned) })
        });
        assert_eq!(name.as_deref(), Some("stackform-backend"));
        drop(outer);
        assert_eq!(worker.call(async { 2 + 2 }), 4);
    }
}
