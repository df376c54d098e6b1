//! The benchmarks of stackform, as one binary: the crate and its dependencies are linked once instead
//! of once per benchmark. Each module prints its figures and asserts nothing about speed.
//!
//! Run all of them with `cargo bench --bench bench`, or some by name:
//! `cargo bench --bench bench -- apply_local cloud_throughput`. The names are those of the modules:
//! `apply_scheduler`, `apply_local`, `cloud_throughput`, `validate_large`, `apply_scale`. Under
//! `cargo test --all-targets` (no `--bench` argument) each runs once at a small size, as a smoke
//! test.

mod apply_local;
mod apply_scale;
mod apply_scheduler;
mod cloud_throughput;
mod validate_large;

/// How much work a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    /// `cargo bench`: the sizes whose figures the benchmarks document.
    Full,
    /// `cargo test --all-targets` runs this binary without `--bench`: every benchmark runs once at a
    /// small size, so it is known to work, without spending CI minutes on figures that a shared
    /// machine makes meaningless (Criterion does the same in test mode).
    Smoke,
}

/// A benchmark's entry point.
type Bench = fn(Size);

/// Every benchmark, by name, in the order a run without names goes through them.
const BENCHES: [(&str, Bench); 5] = [
    ("apply_scheduler", apply_scheduler::run),
    ("apply_local", apply_local::run),
    ("cloud_throughput", cloud_throughput::run),
    ("validate_large", validate_large::run),
    ("apply_scale", apply_scale::run),
];

/// A multi-threaded tokio runtime for a benchmark; exits with a message when none can be made.
fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == validate_large::CHILD_FLAG) {
        match args.get(at + 1) {
            Some(path) => validate_large::child(path),
            None => {
                eprintln!("{} needs a file", validate_large::CHILD_FLAG);
                std::process::exit(2);
            }
        }
        return;
    }
    // `cargo bench` adds `--bench`; other libtest-style flags mean nothing here.
    let size = if std::env::args().any(|a| a == "--bench") {
        Size::Full
    } else {
        Size::Smoke
    };
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for name in &names {
        if !BENCHES.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = BENCHES.iter().map(|(n, _)| *n).collect();
            eprintln!("unknown benchmark `{name}`; known: {}", known.join(", "));
            std::process::exit(2);
        }
    }
    for (name, run) in BENCHES {
        if names.is_empty() || names.iter().any(|n| n == name) {
            match size {
                Size::Full => println!("== {name}"),
                Size::Smoke => println!(
                    "== {name} (smoke run at a small size: `cargo bench` gives the figures)"
                ),
            }
            run(size);
        }
    }
}
