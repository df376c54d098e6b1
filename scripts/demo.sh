#!/usr/bin/env bash
# The main job in one command, on a fresh machine: build stackform, start the local cloud when it is not
# running, and bring examples/managed-identity up: the plan, the apply with progress, the outputs, the
# endpoint invoked with the sample request (one prediction per row), and the log lines where the scoring
# script's init() read the blob through the endpoint's managed identity. Running it again is quick and
# reports no changes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stackform/target}"
# The demo's local cloud lives in this clone, like its state (examples/managed-identity/state/): another clone's demo objects can
# never collide with this one's.
export STACKFORM_CLOUD_DIR="${STACKFORM_CLOUD_DIR:-$PWD/.stackform/cloud}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '\033[2m$ %s\033[0m\n' "$*"; }

step "building stackform (the first build takes a few minutes)"
cargo build --release --quiet
sf="$CARGO_TARGET_DIR/release/stackform"
stack=examples/managed-identity/stack.yaml
started=$(date +%s)

step "the local cloud"
if ! "$sf" cloud status >/dev/null 2>&1; then
  say "stackform cloud up --detach"
  # Its usual port may be taken by another clone's cloud: then any free port will do.
  "$sf" cloud up --detach 2>/dev/null || "$sf" cloud up --detach --port 0
fi
say "stackform cloud status"
"$sf" cloud status

step "plan: what apply would do"
say "stackform plan -f $stack"
"$sf" plan -f "$stack"

step "apply: storage, blob, endpoint with its identity, role assignment, deployment"
say "stackform apply -f $stack --auto-approve"
"$sf" apply -f "$stack" --auto-approve

step "invoke the endpoint with the sample request (one prediction per row)"
say "stackform invoke endpoint -f $stack --request-file examples/managed-identity/sample-request.json"
"$sf" invoke endpoint -f "$stack" --request-file examples/managed-identity/sample-request.json

step "the deployment's log: init() read the blob through the endpoint's managed identity"
say "stackform logs blue -f $stack | grep 'read blob'"
"$sf" logs blue -f "$stack" | grep 'read blob'

printf '\nDone in %ss (after the build).\n' "$(( $(date +%s) - started ))"
cat <<NEXT

Next, try (stackform is $sf; this demo's local cloud is in $STACKFORM_CLOUD_DIR):
  export STACKFORM_CLOUD_DIR=$STACKFORM_CLOUD_DIR
  stackform plan -f $stack       # no changes; edit examples/managed-identity/hello.txt to see a line diff
  stackform invoke endpoint -f $stack --request-file examples/managed-identity/sample-request.json
  stackform logs -f $stack --tail 20
  stackform drift -f $stack      # changes made outside stackform (exit 2 when there are any)
  stackform graph -f $stack      # the dependency graph (Graphviz DOT)
  stackform destroy -f $stack --auto-approve
  stackform cloud down
NEXT
