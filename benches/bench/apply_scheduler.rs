//! Scheduler benchmark: applies synthetic wide-and-deep stacks of 10,000 resources against the
//! in-memory provider with a fixed latency per operation, and prints the measured wall time next
//! to the lower bound max(critical path × latency, operations × latency / parallelism).
//!
//! Run with `cargo bench --bench bench -- apply_scheduler` (add `--profile dev` to reuse the debug build).
//! The figures are printed, never asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use stackform::apply::memory::MemoryProvider;
use stackform::apply::{
    ApplyOptions, ApplyPlan, Desired, Interrupt, NoEvents, Outcome, Persistence, PlannedStep, apply,
};
use stackform::plan::Action;
use stackform::specs::Registry;
use stackform::state::StateFile;

/// One synthetic resource: its name and what it depends on.
struct Node {
    name: String,
    deps: Vec<usize>,
}

/// `width` chains of `depth` resources; each also depends on a neighbour chain's previous node.
fn grid(width: usize, depth: usize) -> Vec<Node> {
    let mut nodes = Vec::with_capacity(width * depth);
    for d in 0..depth {
        for w in 0..width {
            let deps = if d == 0 {
                Vec::new()
            } else {
                let prev = (d - 1) * width;
                let mut v = vec![prev + w, prev + (w * 7 + 3) % width];
                v.dedup();
                v
            };
            nodes.push(Node {
                name: format!("g{d}x{w}"),
                deps,
            });
        }
    }
    nodes
}

/// A deep spine of `spine` resources with `leaves` resources hanging off it (leaf `i` depends on
/// spine node `i % spine`): the critical path must not wait behind the leaves.
fn spine(spine: usize, leaves: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = (0..spine)
        .map(|i| Node {
            name: format!("s{i}"),
            deps: if i == 0 { Vec::new() } else { vec![i - 1] },
        })
        .collect();
    nodes.extend((0..leaves).map(|i| Node {
        name: format!("l{i}"),
        deps: vec![(i * 7919) % spine],
    }));
    nodes
}

fn plan(nodes: &[Node]) -> ApplyPlan {
    let steps = nodes
        .iter()
        .map(|n| {
            let mut inputs = Map::new();
            inputs.insert(String::from("name"), Value::String(n.name.clone()));
            inputs.insert(String::from("public_access"), json!("none"));
            PlannedStep {
                address: n.name.clone(),
                resource_type: String::from("blob_container"),
                action: Action::Create,
                desired: Some(Desired::from_json(
                    inputs,
                    n.deps.iter().map(|&d| nodes[d].name.clone()).collect(),
                )),
            }
        })
        .collect();
    ApplyPlan {
        steps,
        ..ApplyPlan::default()
    }
}

/// Longest chain, in operations (nodes are in dependency order).
fn critical_path(nodes: &[Node]) -> usize {
    let mut depth = vec![1usize; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &d in &n.deps {
            depth[i] = depth[i].max(depth[d] + 1);
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

/// What a timer sleep of `latency` really takes on this machine (timers round up).
async fn effective_latency(latency: Duration) -> Duration {
    let rounds = 50u32;
    let started = Instant::now();
    for _ in 0..rounds {
        tokio::time::sleep(latency).await;
    }
    started.elapsed() / rounds
}

async fn case(label: &str, nodes: &[Node], latency: Duration, parallelism: usize) {
    let plan = plan(nodes);
    let ops = nodes.len();
    let path = critical_path(nodes);
    let provider = Arc::new(MemoryProvider::new().with_latency(latency).without_log());
    let Ok(registry) = Registry::embedded() else {
        println!("{label}: the embedded specs do not load");
        return;
    };
    let options = ApplyOptions {
        parallelism,
        ..ApplyOptions::default()
    };
    let started = Instant::now();
    let report = apply(
        &plan,
        StateFile::new("bench"),
        Persistence::in_memory(),
        provider.clone(),
        &registry,
        options,
        Arc::new(NoEvents),
        Interrupt::new(),
    )
    .await;
    let wall = started.elapsed();
    let ok = matches!(&report, Ok(r) if r.summary.outcome == Outcome::Succeeded);
    let bound = |l: Duration| {
        let by_path = l.mul_f64(path as f64);
        let by_width = l.mul_f64(ops as f64 / parallelism as f64);
        by_path.max(by_width)
    };
    let nominal = bound(latency);
    let effective = bound(effective_latency(latency).await);
    println!(
        "{label:<34} ops {ops:>6}  critical path {path:>4}  parallelism {parallelism:>4}  \
         max in flight {:>4}  wall {:>8.3}s  bound {:>7.3}s (nominal) {:>7.3}s (effective sleep)  \
         ratio {:>5.3} / {:>5.3}{}",
        provider.max_in_flight(),
        wall.as_secs_f64(),
        nominal.as_secs_f64(),
        effective.as_secs_f64(),
        wall.as_secs_f64() / nominal.as_secs_f64(),
        wall.as_secs_f64() / effective.as_secs_f64(),
        if ok { "" } else { "  (RUN FAILED)" },
    );
}

/// Runs this benchmark and prints its figures.
pub(crate) fn run(size: crate::Size) {
    let runtime = crate::runtime();
    // 20 ms keeps the timer's rounding (about 1 ms per sleep) small against the latency.
    let latency = Duration::from_millis(20);
    runtime.block_on(async {
        if size == crate::Size::Smoke {
            case("grid 10x10, balanced", &grid(10, 10), latency, 10).await;
            case("spine 15 + 85 leaves", &spine(15, 85), latency, 8).await;
            return;
        }
        let g = grid(100, 100);
        case("grid 100x100, balanced", &g, latency, 100).await;
        case("grid 100x100, width-bound", &g, latency, 50).await;
        let s = spine(150, 9_850);
        case("spine 150 + 9850 leaves", &s, latency, 64).await;
        if std::env::var_os("APPLY_BENCH_OVERHEAD").is_some() {
            case("grid 100x100, no latency", &g, Duration::ZERO, 100).await;
        }
    });
}
