#!/usr/bin/env bash
# Coupon captures over HTTP beside plain routing, on the 180,000-store network (BENCHMARKS.md
# "Coupons"): one server, a campaign of every store of the brand with the most stores, poster
# tokens of 1,000 of its stores; then, alternated for two rounds, single routes and captures
# (each by a fresh customer) flat out from 128 connections for 15 s, with the server's CPU per
# request. Captures of three shapes: spread over the 1,000 posters without caps; every capture on
# one poster (its counters hot) with a cap it never reaches; and a campaign whose issue cap of
# 10,000 binds, so that most captures are refused. Then routes that redeem coupons: each order
# by a customer a capture run just filled, asking for her `best` coupon of a campaign open now
# (applied when the store that fulfils the order is one of the brand's; the share applied is
# printed from the campaign's stats), beside plain routes of the same orders.
#
#   OMNIROUTE_BIN=<copy of a release build> benches/coupons.sh
#
# The token verification alone: cargo bench -p omniroute --bench coupons.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN=$(bench_bin)
large_dataset "$BIN"
LOAD=$(ls -t "$CARGO_TARGET_DIR/release/deps"/load-* | grep -v '\.d$' | head -1)
KEY=benchcouponkey1
MKT=benchmarketingkey1
export OMNIROUTE_API_KEYS="checkout:$KEY,marketing:$MKT"
export OMNIROUTE_COUPON_KEYS="1:bench-coupon-secret-0123456789abcdefghij"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" serve --data data/large/n180k --state "$WORK/state" --bind 127.0.0.1:0 \
  --captures-per-customer-per-min 0 --captures-per-address-per-s 0 > "$WORK/out" 2> "$WORK/log" &
PID=$!
URL=$(server_url "$WORK/out")
BRAND=$(tail -n +2 data/large/n180k/stores.csv | cut -d, -f2 | sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}')
STORES=$(awk -F, -v b="$BRAND" 'NR > 1 && $2 == b && n++ < 1000 {print $1}' data/large/n180k/stores.csv)

# Creates a campaign with extra JSON fields "$1" and prints its id.
campaign() {
  curl -sf -H "Authorization: Bearer $MKT" -H 'Content-Type: application/json' "$URL/v1/campaigns" -d "{
    \"brand\": \"$BRAND\", \"name\": \"bench\", \"stores\": \"all\",
    \"discount\": {\"kind\": \"amount_off\", \"off_cents\": 5000, \"min_spend_cents\": 30000}$1}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

# Writes the poster tokens of campaign $1 for the stores on standard input to file $2.
tokens() {
  while read -r store; do
    curl -sf -D - -o /dev/null -H "Authorization: Bearer $MKT" "$URL/v1/campaigns/$1/posters/$store.svg" |
      tr -d '\r' | sed -n 's|^omniroute-capture-url: .*/||Ip'
  done > "$2"
}

SPREAD=$(campaign "")
tokens "$SPREAD" "$WORK/spread" <<< "$STORES"
HOT=$(campaign ', "budgets": {"issued_per_poster": 100000000}')
tokens "$HOT" "$WORK/hot" <<< "$(head -1 <<< "$STORES")"
CAPPED=$(campaign ', "budgets": {"issued": 10000}')
tokens "$CAPPED" "$WORK/capped" <<< "$STORES"
NOW=$(date -u -d '-1 hour' +%FT%TZ)
UNTIL=$(date -u -d '+1 day' +%FT%TZ)
REDEEM=$(campaign ", \"redemption\": {\"from\": \"$NOW\", \"until\": \"$UNTIL\"}")
tokens "$REDEEM" "$WORK/redeem" <<< "$STORES"
echo "brand $BRAND: $(wc -l < "$WORK/spread") posters" >&2

# Runs the load generator with "$@"; prints its line and the server's CPU per request (µs).
load() {
  local s0 out n
  s0=$(cpu_ticks "/proc/$PID/stat")
  out=$("$LOAD" --url "$URL" --key "$KEY" --duration 15 --connections 128 "$@" | grep "requests/s" | tail -1)
  n=$(sed -E 's/.*ok_requests=([0-9]+).*/\1/' <<< "$out")
  awk -v s="$(( $(cpu_ticks "/proc/$PID/stat") - s0 ))" -v n="$n" -v hz="$(getconf CLK_TCK)" -v line="$out" \
    'BEGIN { printf "%s cpu_us_per_ok_request=%.1f\n", line, s / hz * 1e6 / (n > 0 ? n : 1) }'
}

for round in 1 2; do
  echo "round $round, route: $(load --orders data/large/n180k/orders.jsonl --prefix "r$round")"
  echo "round $round, capture spread: $(load --captures "$WORK/spread" --prefix "s$round")"
  echo "round $round, capture hot poster: $(load --captures "$WORK/hot" --prefix "h$round")"
  echo "round $round, capture cap binds: $(load --captures "$WORK/capped" --prefix "c$round")"
  echo "round $round, capture for redemption: $(load --captures "$WORK/redeem" --prefix "w$round")"
  echo "round $round, route plain: $(load --orders data/large/n180k/orders.jsonl --prefix "p$round")"
  echo "round $round, route with coupon: $(load --orders data/large/n180k/orders.jsonl --coupons "w$round" --prefix "q$round")"
  curl -sf -H "Authorization: Bearer $MKT" "$URL/v1/campaigns/$REDEEM/stats" |
    python3 -c 'import json, sys; s = json.load(sys.stdin); print("round", sys.argv[1] + ", redeemed so far:", s["redeemed"], "coupons,", s["discount_cents"], "cents")' "$round"
done
kill -INT "$PID"
wait "$PID" || true
