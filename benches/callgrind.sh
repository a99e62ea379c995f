#!/usr/bin/env bash
# Instructions per order of the checkout service (issue 3), counted by callgrind: repeatable for
# the same binary and input whatever else the machine is doing, so two builds can be told apart
# on a shared VM where wall-clock runs swing by a quarter. Starts `omniroute serve` on the bundled
# sample under valgrind with a fresh embedded state, sends 4 batches of 1,000 orders and 200
# single routes (fixed ids, the first orders of data/sample/orders.jsonl), stops it, and prints
# the instructions per order of the HTTP workers (everything under actix's dispatcher), of the
# service's own handling (`Core::route_many`), of routing alone (`Router::route_at`) and of
# the storage writer (`write_group`).
#
#   benches/callgrind.sh [BIN]     (default: build, then target/release/omniroute; needs valgrind)
#   KEEP=FILE benches/callgrind.sh  (also keeps the callgrind output, for callgrind_annotate)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
[ $# -gt 0 ] || build_release
bin=${1:-target/release/omniroute}
command -v valgrind > /dev/null || { echo "callgrind.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'pkill -INT -f "callgrind-out-file=$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
lines = open("data/sample/orders.jsonl").read().splitlines()
for b in range(4):
    orders = [dict(json.loads(l), order_id=f"cg-{b}-{i}") for i, l in enumerate(lines[b * 1000:(b + 1) * 1000])]
    open(f"{work}/batch{b}.json", "w").write(json.dumps({"orders": orders}))
for i, l in enumerate(lines[5000:5200]):
    open(f"{work}/single{i}.json", "w").write(json.dumps(dict(json.loads(l), order_id=f"cgs-{i}")))
PY
key=callgrindkey1
OMNIROUTE_API_KEYS="checkout:$key" RUST_LOG=warn valgrind --tool=callgrind \
  --callgrind-out-file="$work/callgrind.out" "$bin" serve --data data/sample --state "$work/state" \
  --bind 127.0.0.1:0 > "$work/log" 2>&1 &
url=$(server_url "$work/log")
post() {
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -H "authorization: Bearer $key" --data-binary @"$2" "$url$1")
  [ "$code" = 200 ] || { echo "$1 answered $code" >&2; exit 1; }
}
for b in 0 1 2 3; do post /v1/orders/route-batch "$work/batch$b.json"; done
for i in $(seq 0 199); do post /v1/orders/route "$work/single$i.json"; done
pkill -INT -f "callgrind-out-file=$work/"
wait
[ -z "${KEEP:-}" ] || cp "$work/callgrind.out" "$KEEP"
orders=4200
callgrind_annotate --inclusive=yes "$work/callgrind.out" 2> /dev/null | awk -v n=$orders '
  function count(s) { gsub(",", "", s); return s + 0 }
  function max(a, b) { return a > b ? a : b }
  /PROGRAM TOTALS/ { total = count($1) }
  # The largest inclusive count of each function (callgrind also lists inlined parts apart).
  /Dispatcher<T,S,B,X,U> as core::future::future::Future>::poll \[/ { http = max(http, count($1)) }
  /(AppState::route_many|as omniroute::service::Checkout>::route_many)::\{\{closure\}\}/ { service = max(service, count($1)) }
  /Router<C>::route_at \[/ { routing = max(routing, count($1)) }
  /embedded::write_group \[/ { writer = max(writer, count($1)) }
  END {
    printf "instructions per order (%d orders): http workers %.0f, of which route_many %.0f, of which routing %.0f; writer %.0f; whole run (with start-up) %.0f\n",
      n, http / n, service / n, routing / n, writer / n, total / n
  }'
