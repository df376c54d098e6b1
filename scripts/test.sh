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
cargo test --all-targets --no-fail-fast
