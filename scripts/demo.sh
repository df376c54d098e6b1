#!/usr/bin/env bash
# The main job, from a fresh clone: build stackform and walk the reference stack
# (examples/managed-identity): validate it and show its dependency graph.
# (Planning and applying it against the local cloud arrive with the plan/apply work; see README.)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stackform/target}"
echo "== building stackform (first build takes a few minutes)"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/stackform"
stack=examples/managed-identity/stack.yaml
echo
echo "== stackform validate -f $stack"
"$bin" validate -f "$stack"
echo
echo "== stackform graph -f $stack --format json (order and layers)"
"$bin" graph -f "$stack" --format json | python3 -c '
import json, sys
g = json.load(sys.stdin)
print("apply order:", " → ".join(g["order"]))
for i, layer in enumerate(g["layers"]):
    print(f"  layer {i}: {", ".join(layer)}")
for e in g["edges"]:
    if e["inferred"]:
        print(f"  inferred: {e["from"]} ┄▶ {e["to"]}: {e["reasons"][0]["reason"]}")
'
echo
echo "== stackform graph -f $stack (Graphviz DOT; pipe it to \`dot -Tsvg\` to draw it)"
"$bin" graph -f "$stack"
echo
echo "Next: try a mistake and see the diagnostic, e.g."
echo "  $bin validate -f $stack --var suffix=Not_Valid"
