#!/usr/bin/env bash
# Runs the whole stackform test suite on a fresh machine of this kind (Rust toolchain, python3, node).
# Everything else the tests need (Azurite from npm, Python packages for deployments) is installed by the
# tests' own helpers into folders they own. Cargo's build folder may live outside the clone so repeated
# runs are quick: set CARGO_TARGET_DIR to choose it.
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
