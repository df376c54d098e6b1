//! Validate of a large stack file, as `stackform validate` does it (read, parse, resolve, check, build
//! the graph), in this process: 10,000 and 100,000 resources of the synthetic shape (storage accounts,
//! their containers and a blob in each, a third of each kind). Prints the file size, the wall time and
//! the peak RSS of the run (the kernel's high-water mark, reset before the run through
//! `/proc/self/clear_refs`; "n/a" where there is no such file). Asserts nothing about speed.
//! Run: `cargo bench --bench bench -- validate_large`.
use std::fmt::Write as _;
use std::time::Instant;

use stackform::specs::Registry;
use stackform::stack::{self, LoadOptions};

/// A stack of `n` resources: `n / 3` storage accounts, each with a container holding one blob.
fn synthetic(n: usize) -> String {
    let mut s = String::from("stack: validate-bench\ncloud:\n  kind: local\nresources:\n");
    for i in 0..n.div_ceil(3) {
        let _ = write!(
            s,
            "  sa{i}:\n    type: storage_account\n    name: sfb{i:07}\n    sku: Standard_LRS\n  \
             c{i}:\n    type: blob_container\n    account: ${{sa{i}.name}}\n    name: data\n  \
             b{i}:\n    type: blob\n    account: ${{sa{i}.name}}\n    container: ${{c{i}.name}}\n    \
             name: b{i}.txt\n    content: hello\n"
        );
    }
    s
}

/// Resets the peak RSS of this process (Linux 4.0 and later); false where that is not possible.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak RSS of this process in MiB, from `/proc/self/status`.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs this benchmark and prints its figures.
pub(crate) fn run(size: crate::Size) {
    let sizes: &[usize] = match size {
        crate::Size::Full => &[10_000, 100_000],
        crate::Size::Smoke => &[300],
    };
    let registry = match Registry::embedded() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot load the specs: {e}");
            std::process::exit(1);
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for &n in sizes {
        let path = dir.path().join(format!("stack-{n}.yaml"));
        let text = synthetic(n);
        std::fs::write(&path, &text).expect("write the stack file");
        let peak_known = reset_peak();
        let started = Instant::now();
        let loaded = stack::load(&path, &LoadOptions::default(), &registry).map_err(|d| d.len());
        let resources = loaded
            .as_ref()
            .ok()
            .and_then(|s| stackform::graph::build(s, &registry).ok())
            .map(|g| g.len());
        let wall = started.elapsed();
        let peak = peak_mib()
            .filter(|_| peak_known)
            .map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
        match (loaded, resources) {
            (Ok(_), Some(count)) => println!(
                "validate {n:>7} resources ({:>5.1} MiB file): {:>7.2} s wall, peak RSS {peak} ({count} in the graph)",
                text.len() as f64 / (1024.0 * 1024.0),
                wall.as_secs_f64()
            ),
            (Err(count), _) => {
                eprintln!("validate of {n} resources failed with {count} problem(s)");
                std::process::exit(1);
            }
            (Ok(_), None) => {
                eprintln!("the graph of {n} resources could not be built");
                std::process::exit(1);
            }
        }
    }
}
