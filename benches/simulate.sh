#!/usr/bin/env bash
# What-if simulation speed (issue 27 §4) on the 180k network of BENCHMARKS.md:
#   1. a whole day of 10,000,000 orders under `checkout`, on ample stock and on stock scaled to
#      10% (it runs out in places, so later orders walk farther);
#   2. four scenarios of 2,000,000 orders each, compared in one run.
# Each line: wall time and peak memory of the whole command (loading included), then the
# command's own per-phase log lines.
#
#   benches/simulate.sh [day|four|all]     (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
. benches/common.sh
bin=$(bench_bin)
large_dataset "$bin"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

measure() { # label, scenario files...
  local label=$1
  shift
  /usr/bin/time -f "$label: wall %e s, peak %M KiB" "$bin" simulate "$@" --out "$out/$label" \
    2> >(grep -E "wall|INFO" >&2) > "$out/$label.md"
  sed -n '1,12p' "$out/$label.md"
}

if [ "$which" = day ] || [ "$which" = all ]; then
  measure day-10m benches/scenarios/day-10m.toml
  measure day-10m-scarce benches/scenarios/day-10m-scarce.toml
fi
if [ "$which" = four ] || [ "$which" = all ]; then
  measure four-2m benches/scenarios/2m-baseline.toml benches/scenarios/2m-shanghai-drop.toml \
    benches/scenarios/2m-south-stock.toml benches/scenarios/2m-radius-30.toml
fi
