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
# longest tests, a minute or more each) would start last and finish alone. It runs from the start
# instead, beside the rest (one more test than cores at a time), and its output is printed after.
reliability_log="$CARGO_TARGET_DIR/test-reliability.log"
RUST_TEST_THREADS=$(($(nproc) + 1)) cargo test --test it --no-fail-fast -- reliability:: \
    >"$reliability_log" 2>&1 &
reliability=$!
status=0
cargo test --lib --bins --benches --no-fail-fast || status=1
cargo test --test it --no-fail-fast -- --skip reliability:: || status=1
wait "$reliability" || status=1
echo "== cargo test --test it -- reliability::"
cat "$reliability_log"
exit "$status"
