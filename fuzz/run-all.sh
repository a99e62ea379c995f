#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS each (default 600) and prints one summary line per
# target: executions, executions a second, coverage and features reached, corpus size, peak
# memory, and whether it found a crash (the run stops at the first one; the input is kept under
# artifacts/NAME). Exit status 1 when any target crashed.
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}; [ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/omniroute/fuzz-target}
cargo +nightly fuzz build --sanitizer none -O >&2 || exit 1
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" --sanitizer none -O -- \
    -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="artifacts/$t/" > "$log" 2>&1
  rc=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<< "$last")
  verdict="no crash"
  if [ $rc -ne 0 ]; then
    verdict="CRASH (exit $rc): $(grep -m1 -E 'panicked|ERROR' "$log")"
    failed=1
  fi
  printf '%-14s %4ss  execs=%-10s execs/s=%-7s cov=%-5s ft=%-6s corpus=%-10s peak_rss=%sMB  %s\n' \
    "$t" "$seconds" "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
    "$cov" "$ft" "$corp" "$(stat peak_rss_mb)" "$verdict"
  rm -f "$log"
done
exit $failed
