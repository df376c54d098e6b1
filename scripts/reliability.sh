#!/usr/bin/env bash
# Runs the long reliability suite of docs/RELIABILITY.md and prints its figures.
#
#   bash scripts/reliability.sh                 # the long version (STACKFORM_RELIABILITY=long)
#   STACKFORM_RELIABILITY_SEED=123 bash scripts/reliability.sh   # replay the seeds a run printed
#   bash scripts/reliability.sh --short         # the short version CI runs, same table
#
# It runs exactly the suite's tests (tests/it: reliability::, the racing stacks of ownership::, the
# attacks of cloud_security:: and hardening::, and the tmpfs full-disk test of cloud_store::, which
# print "SKIPPED" where mounting a tmpfs is not allowed) one at a time, so no two of them share the
# machine's cores, then prints one row per part: trials run, faults injected or met, attacks tried,
# failed tests. The whole log is kept in $LOG (default: target folder/reliability.log).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stackform/target}"
export CARGO_TERM_COLOR=never
if [[ "${1:-}" == "--short" ]]; then
    unset STACKFORM_RELIABILITY
else
    export STACKFORM_RELIABILITY=long
fi
LOG="${LOG:-$CARGO_TARGET_DIR/reliability.log}"
mkdir -p "$(dirname "$LOG")"
FILTERS=(reliability:: ownership::two_stacks_racing cloud_security:: hardening::
    cloud_store::a_full_disk)
echo "== reliability suite (${STACKFORM_RELIABILITY:-short}), log: $LOG"
set +e
cargo test --test it -- "${FILTERS[@]}" --nocapture --test-threads=1 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e

python3 - "$LOG" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
rows = []
for line in text.splitlines():
    i = line.find("RELIABILITY-FIGURES ")
    if i < 0:
        continue
    body = line[i + len("RELIABILITY-FIGURES "):]
    note = body.split(" note=", 1)[1] if " note=" in body else ""
    fields = dict(re.findall(r"(\w+)=(\S+)", body.split(" note=", 1)[0]))
    part = re.search(r"part=(.*?) length=", body).group(1)
    rows.append((part, fields.get("length", "?"), fields.get("trials", "0"),
                 fields.get("faults", "0"), fields.get("attacks", "0"), note))
# With --nocapture a test's "ok" may come lines after its "test NAME ... ": count the tests started,
# and take the failed ones from the list libtest prints at the end.
started = re.findall(r"^test (\S+) \.\.\. ", text, re.M)
failed = []
if "\nfailures:\n" in text:
    tail = text.rsplit("\nfailures:\n", 1)[1]
    failed = re.findall(r"^    (\S+)$", tail, re.M)
summary = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", text)
skipped = [l for l in text.splitlines() if "SKIPPED" in l]
print()
print(f"{'part':36} {'length':6} {'trials':>6} {'faults':>7} {'attacks':>7}  notes")
for part, length, trials, faults, attacks, note in rows:
    print(f"{part:36} {length:6} {trials:>6} {faults:>7} {attacks:>7}  {note}")
attack_tests = [t for t in started if t.startswith(("cloud_security::", "hardening::")) and t not in failed]
print(f"{'attack and hardening tests':36} {'-':6} {len(attack_tests):>6} {'-':>7} {len(attack_tests):>7}  "
      "cloud_security:: and hardening:: (attacks of issue 18 items 6-13), passed")
if summary:
    print(f"\ntests passed: {summary.group(1)}, failed: {summary.group(2)}, skipped parts: {len(skipped)}")
else:
    print(f"\nthe run did not finish: {len(started)} test(s) started, failed so far: {len(failed)}")
for t in failed:
    print(f"  FAILED {t}")
for s in skipped:
    print(f"  {s.strip()}")
EOF
exit "$status"
