#!/usr/bin/env bash
# A drift check for any CI system or cron: refresh a stack, keep the reports, fail when the cloud no
# longer matches what was last applied.
#
#   examples/ci/drift.sh [STACK_FILE] [REPORT_DIR]
#
# STACK_FILE   the stack to check (default: stack.yaml); its state must be where stackform finds it
#              (beside the stack file, or set STACKFORM_STATE_DIR / STACKFORM_ENV as your runs do)
# REPORT_DIR   where the reports go (default: drift-report): drift.json (`stackform drift --json`)
#              and drift.xml (JUnit XML, one failed test case per drifted resource)
# STACKFORM    the stackform binary (default: stackform on the PATH)
#
# Exit code: 0 no drift, 2 drift (the reports name each drifted resource), 1 error (the check could
# not run: no credentials, no state, the cloud unreachable). Keep REPORT_DIR as your CI's artifact.
set -uo pipefail

stackform="${STACKFORM:-stackform}"
stack="${1:-stack.yaml}"
reports="${2:-drift-report}"
mkdir -p "$reports"

# The JSON report decides the exit code; the JUnit form is for CI pages that show test results.
"$stackform" drift -f "$stack" --json >"$reports/drift.json"
code=$?
if [ "$code" -ne 0 ] && [ "$code" -ne 2 ]; then
  echo "drift check of $stack failed (exit $code); see the error above" >&2
  exit 1
fi
"$stackform" drift -f "$stack" --format junit >"$reports/drift.xml"
junit=$?
if [ "$junit" -ne 0 ] && [ "$junit" -ne 2 ]; then
  echo "could not write the JUnit report of $stack (exit $junit)" >&2
  exit 1
fi

if [ "$code" -eq 2 ]; then
  echo "drift: $stack changed outside stackform; reports in $reports/ (\`stackform plan -f $stack\` shows how apply would restore it)" >&2
  exit 2
fi
echo "no drift: $stack matches what was last applied; reports in $reports/"
