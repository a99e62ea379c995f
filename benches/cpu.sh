#!/usr/bin/env bash
# CPU per order of the checkout service (issue 3), by thread, at a fixed request rate: starts
# `omniroute serve` on the 180k network with a fresh embedded state, drives it with the load
# generator (benches/load.rs) at RATE single routes/s, and divides each server thread group's CPU
# time (from /proc, user + system) by the orders answered. On a shared VM whose throughput swings
# between runs, CPU per order at a fixed rate tells two builds apart where flat-out runs cannot.
#
#   benches/cpu.sh [RATE] [SECONDS]      (default: 15000 routes/s for 15 s)
#   OMNIROUTE_BIN=/tmp/omni_a benches/cpu.sh 15000    (another build; build and copy it first)
#   BATCH=1000 benches/cpu.sh 0 12     (the batch endpoint instead, 4 connections, flat out)
#
# Prints the load generator's line (latency from each request's scheduled send time), then
# "cpu µs/order:" with one figure per thread name (actix-rt|system: HTTP workers; redb-writer).
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-15000} seconds=${2:-15}
. benches/common.sh
build_release
bin=${OMNIROUTE_BIN:-target/release/omniroute}
data=data/large/n180k
large_dataset "$bin"
load=$(newest load)
state=$(mktemp -d)
log="$state.log"
key=cpubenchkey1
OMNIROUTE_API_KEYS="checkout:$key" RUST_LOG=warn $bin serve --data "$data" --state "$state" \
  --bind 127.0.0.1:0 > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$state" "$log"' EXIT
url=$(server_url "$log" 120)
cpu() {  # clock ticks per thread name
  for t in /proc/"$pid"/task/[0-9]*; do
    echo "$(tr ' ' _ < "$t/comm") $(cpu_ticks "$t/stat")"
  done | awk '{s[$1] += $2} END {for (k in s) print k, s[k]}' | sort
}
before=$(cpu)
batch=${BATCH:-1}
if [ "$batch" -gt 1 ]; then shape=(--batch "$batch" --connections 4); else shape=(--connections 128); fi
line=$($load --url "$url" --key "$key" --orders "$data/orders.jsonl" --rate "$rate" \
  --duration "$seconds" "${shape[@]}" --prefix "cpu-$$" 2>&1 | tail -1)
after=$(cpu)
echo "$line"
orders=$(( $(grep -o 'ok_requests=[0-9]*' <<< "$line" | cut -d= -f2) * batch ))
join <(echo "$before") <(echo "$after") | awk -v n="$orders" -v hz="$(getconf CLK_TCK)" '
  BEGIN { printf "cpu µs/order:" }
  n > 0 && $3 > $2 { printf " %s=%.1f", $1, ($3 - $2) * 1e6 / hz / n }
  END { print "" }'
