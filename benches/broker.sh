#!/usr/bin/env bash
# Broker benchmarks on the 180,000-store network (BENCHMARKS.md "Store systems through a broker"):
#
#   benches/broker.sh feeds    stock feeds through NATS JetStream: a backlog published while
#                              the server is down, then drained by a fresh server; rows/s for
#                              1,000-, 100- and 1-row messages spread over the brands, and
#                              1,000-row messages on 20 hot cells; events on and off
#   benches/broker.sh events   routing throughput with events published against without: the
#                              batch endpoint (1,000 orders per request, 4 connections) and single
#                              routes (128 connections), alternated, a fresh state each run
#
# Needs the NATS server (scripts/setup --broker). Prints one line per run; raw output in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
scripts/setup --broker
BIN=$(bench_bin)
large_dataset "$BIN"
deps="$CARGO_TARGET_DIR/release/deps"
FEEDS=$(ls -t "$deps"/feeds-* | grep -v '\.d$' | head -1)
LOAD=$(ls -t "$deps"/load-* | grep -v '\.d$' | head -1)
NATS=nats://127.0.0.1:4222
KEY=benchbrokerkey1
export OMNIROUTE_API_KEYS="admin:$KEY,checkout:$KEY"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Starts a server on a fresh state with extra flags "$@"; sets PID and URL.
start() {
  rm -rf "$WORK/state"
  "$BIN" serve --data data/large/n180k --state "$WORK/state" --bind 127.0.0.1:0 "$@" > "$WORK/out" 2> "$WORK/log" &
  PID=$!
  URL=$(server_url "$WORK/out")
}

stop() { kill -INT "$PID"; wait "$PID" || true; }

# "messages rows hot-cells" per run; FEED_SHAPES (one string, shapes separated by commas) picks others.
IFS=, read -r -a SHAPES <<< "${FEED_SHAPES:-2000 1000 0,20000 100 0,60000 1 0,2000 1000 20}"

feeds() {
  local run=0
  for events in on off; do
    for shape in "${SHAPES[@]}"; do
      read -r messages rows hot <<< "$shape"
      run=$((run + 1))
      local prefix="bench$$-$run"
      flags=(--nats-url "$NATS" --nats-prefix "$prefix")
      [ "$events" = on ] || flags+=(--no-events)
      "$FEEDS" --data data/large/n180k --nats-url "$NATS" --prefix "$prefix" --messages "$messages" \
        --rows "$rows" --hot-cells "$hot" --publish-only --run "r$run" | tail -1 >&2
      start "${flags[@]}"
      result=$("$FEEDS" --data data/large/n180k --url "$URL" --key "$KEY" --wait-rows $((messages * rows)) | tail -1)
      echo "events $events, $messages messages x $rows rows, hot cells $hot: $result"
      stop
    done
  done
}

# Runs the load generator with "$@" against $URL; prints its line and the CPU the server and the
# NATS server spent per order (µs, from /proc).
load() {
  local nats_pid s0 n0 out orders
  nats_pid=$(pgrep -x nats-server | head -1)
  s0=$(cpu_ticks "/proc/$PID/stat"); n0=$(cpu_ticks "/proc/$nats_pid/stat")
  out=$("$LOAD" --url "$URL" --key "$KEY" --orders data/large/n180k/orders.jsonl --duration 15 "$@" | grep "orders/s" | tail -1)
  orders=$(sed -E 's/.*ok_requests=([0-9]+).*/\1/' <<< "$out")
  orders=$((orders * $(sed -E 's/.*batch=([0-9]+).*/\1/' <<< "$out")))
  awk -v s="$(( $(cpu_ticks "/proc/$PID/stat") - s0 ))" -v n="$(( $(cpu_ticks "/proc/$nats_pid/stat") - n0 ))" \
    -v o="$orders" -v hz="$(getconf CLK_TCK)" -v line="$out" \
    'BEGIN { printf "%s cpu_us_per_order server=%.1f nats=%.1f\n", line, s / hz * 1e6 / o, n / hz * 1e6 / o }'
}

events() {
  for round in 1 2 3; do
    for mode in without with; do
      flags=()
      [ "$mode" = with ] && flags=(--nats-url "$NATS" --nats-prefix "bench$$-ev$round")
      start "${flags[@]}"
      echo "round $round, events $mode, batch: $(load --batch 1000 --connections 4 --prefix "b$round$mode")"
      stop
      start "${flags[@]}"
      echo "round $round, events $mode, single: $(load --connections 128 --prefix "s$round$mode")"
      stop
    done
  done
}

case "${1:-}" in
  feeds) feeds ;;
  events) events ;;
  *) echo "usage: benches/broker.sh feeds|events" >&2; exit 2 ;;
esac
