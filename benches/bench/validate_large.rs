//! Validate of a large stack file, as `stackform validate` does it (read, parse, resolve, check, build
//! the graph): 10,000 and 100,000 resources of the synthetic shape (storage accounts, their containers
//! and a blob in each, a third of each kind). Each size runs in a fresh process (this binary, re-run
//! with `--validate-child`), so its peak RSS (the kernel's high-water mark, `VmHWM`) is that of the
//! validate alone, not of the benchmarks before it. Prints the file size, wall time and peak RSS.
//! Asserts nothing about speed. Run: `cargo bench --bench bench -- validate_large`.
use std::fmt::Write as _;
use std::time::Instant;

use stackform::specs::Registry;
use stackform::stack::{self, LoadOptions};

/// The flag that makes this binary validate one file and print its figures (see [`child`]).
pub(crate) const CHILD_FLAG: &str = "--validate-child";

/// A stack of `n` resources: storage accounts, each followed by its container and a blob in it.
fn synthetic(n: usize) -> String {
    let mut s = String::from("stack: validate-bench\ncloud:\n  kind: local\nresources:\n");
    for i in 0..n {
        let g = i / 3;
        let _ = match i % 3 {
            0 => write!(
                s,
                "  sa{g}:\n    type: storage_account\n    name: sfb{g:07}\n    sku: Standard_LRS\n"
            ),
            1 => write!(
                s,
                "  c{g}:\n    type: blob_container\n    account: ${{sa{g}.name}}\n    name: data\n"
            ),
            _ => write!(
                s,
                "  b{g}:\n    type: blob\n    account: ${{sa{g}.name}}\n    container: ${{c{g}.name}}\n    \
                 name: b{g}.txt\n    content: hello\n"
            ),
        };
    }
    s
}

/// The peak RSS of this process in MiB, from `/proc/self/status` (Linux).
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// In the child process: validates the file at `path` and prints one line of figures; exits 1 when
/// the file is not valid.
pub(crate) fn child(path: &str) {
    let started = Instant::now();
    let registry = match Registry::embedded() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot load the specs: {e}");
            std::process::exit(1);
        }
    };
    let stack = match stack::load(
        std::path::Path::new(path),
        &LoadOptions::default(),
        &registry,
    ) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("the stack is not valid: {} problem(s)", d.len());
            std::process::exit(1);
        }
    };
    let Ok(graph) = stackform::graph::build(&stack, &registry) else {
        eprintln!("the graph could not be built");
        std::process::exit(1);
    };
    let wall = started.elapsed();
    let peak = peak_mib().map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
    println!(
        "{:>7.2} s wall, peak RSS {peak} ({} in the graph)",
        wall.as_secs_f64(),
        graph.len()
    );
}

/// Runs this benchmark and prints its figures.
pub(crate) fn run(size: crate::Size) {
    let sizes: &[usize] = match size {
        crate::Size::Full => &[10_000, 100_000],
        crate::Size::Smoke => &[300],
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let me = std::env::current_exe().expect("this benchmark's path");
    for &n in sizes {
        let path = dir.path().join(format!("stack-{n}.yaml"));
        let text = synthetic(n);
        std::fs::write(&path, &text).expect("write the stack file");
        let out = std::process::Command::new(&me)
            .arg(CHILD_FLAG)
            .arg(&path)
            .output()
            .expect("run the validate child");
        if !out.status.success() {
            eprintln!(
                "validate of {n} resources failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::process::exit(1);
        }
        print!(
            "validate {n:>7} resources ({:>5.1} MiB file): {}",
            text.len() as f64 / (1024.0 * 1024.0),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
