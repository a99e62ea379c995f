#!/usr/bin/env bash
# Paired A/B of two omniroute builds on a noisy machine: both run `bench` at the same time, one
# pinned to each core, swapping cores every round, so that a slow spell of the host hits both.
# Prints each round's 1-line routes/s on one thread (the case runs twice per process) for A and B.
#
#   benches/pair.sh ROUNDS BIN_A BIN_B [DATA]     (DATA default: data/large/n180k)
#   CASE="omniroute 3-line" benches/pair.sh ...    (another case of `omniroute bench`)
#
# Build each side first and copy its binary away, e.g. `cp target/release/omniroute /tmp/omni_a`.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1 a=$2 b=$3 data=${4:-data/large/n180k}
run() {  # run BIN CORE
  taskset -c "$2" "$1" bench --data "$data" --orders 400000 --only "${CASE:-omniroute 1-line}" --threads 1 2>&1 |
    awk -F'|' '/^\| omniroute/ { printf "%s ", $5 }'
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then ca=0 cb=1; else ca=1 cb=0; fi
  run "$a" $ca > "$out/a" &
  run "$b" $cb > "$out/b"
  wait
  echo "round $r  A: $(cat "$out/a")  B: $(cat "$out/b")"
done
