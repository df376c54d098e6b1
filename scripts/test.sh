#!/usr/bin/env bash
# Runs the whole stackform test suite on a fresh machine of this kind (Rust toolchain, python3, node).
# Everything else the tests need (Azurite from npm, Python packages for deployments) is installed by the
# tests' own helpers into folders they own. Cargo's build folder may live outside the clone so repeated
# runs are quick: set CARGO_TARGET_DIR to choose it.
# The integration tests are one binary (tests/it, filter with `cargo test --test it MODULE::`) and the
# benchmarks another (benches/bench). A snapshot that no longer matches fails its test and leaves the
# new output beside it as `tests/it/snapshots/*.snap.new`: review it by eye, then rename it over the
# `.snap` only if it shows the right behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stackform/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
# Built once up front, so the test runs below start together.
cargo test --all-targets --no-run --quiet
# Most integration tests wait (for a lease to run out, a slow local cloud's operations, a child
# process) far more than they compute: with libtest's default of one test per core, a run on 2 cores
# kept them about a quarter busy. Three tests per core keep them busy; RUST_TEST_THREADS overrides.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-$(($(nproc) * 3))}"
# libtest starts tests in name order, so the short reliability suite (tests/it/reliability.rs, the
# longest tests, a minute or more each) would start last and finish alone; the unit tests hold a
# property test of a minute too. Both run from the start instead, beside the other integration tests
# (the reliability tests one more than the cores at a time, the unit tests, which compute, one per
# core), and their output is printed after.
background() {
    local log="$CARGO_TARGET_DIR/test-$1.log" threads=$2
    shift 2
    RUST_TEST_THREADS=$threads "$@" >"$log" 2>&1 &
}
background reliability $(($(nproc) + 1)) cargo test --test it --no-fail-fast -- reliability::
reliability=$!
background unit "$(nproc)" cargo test --lib --bins --benches --no-fail-fast
unit=$!
status=0
cargo test --test it --no-fail-fast -- --skip reliability:: --skip pacing:: || status=1
wait "$unit" || status=1
wait "$reliability" || status=1
echo "== cargo test --lib --bins --benches"
cat "$CARGO_TARGET_DIR/test-unit.log"
echo "== cargo test --test it -- reliability::"
cat "$CARGO_TARGET_DIR/test-reliability.log"
# The pacing tests check that a client pacing itself to the cloud's request buckets (a burst of 2)
# is never answered 429: requests held up on cores shared with a dozen other tests reach the cloud
# bunched, so these few seconds of tests run last, alone.
echo "== cargo test --test it -- pacing::"
cargo test --test it --no-fail-fast -- pacing:: || status=1
exit "$status"
