#!/usr/bin/env bash
# Benchmarks of stackform at scale (issue 17). Builds in release (`cargo bench`) and prints, after the
# machine's core count and load: apply and destroy of 1k, 5k and 10k resources of the synthetic stack
# (scripts/gen_stack.py) at 0 ms added latency, plan with refresh of the largest, apply of 2k at 20 ms
# added latency with parallelism 10, 32 and 64 against the lower bound, validate of 10k and 100k, and
# the local cloud's write throughput with a large store. docs/PERFORMANCE.md explains each figure.
#
#   scripts/bench.sh                                   # every figure
#   STACKFORM_BENCH_SIZES=1000,5000 scripts/bench.sh   # other apply/destroy sizes
#   scripts/bench.sh apply_scale                       # some benchmarks only (names: benches/bench/main.rs)
#
# Needs what the tests need (Rust, python3) and, for the engine's peak RSS, /usr/bin/time (Debian
# package `time`). Nothing is asserted: a shared or loaded machine gives slower figures, so say so when
# you publish them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stackform/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== machine: $(nproc) cores, $(uname -sm), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== stackform $(git describe --always --dirty 2>/dev/null || echo '(not a git checkout)')"
if [ ! -x /usr/bin/time ]; then
    echo "note: /usr/bin/time is not installed (Debian package 'time'): the engine's peak RSS shows n/a"
fi
if [ "$#" -eq 0 ]; then
    set -- apply_scale validate_large cloud_throughput
fi
cargo bench --quiet --bench bench -- "$@"
