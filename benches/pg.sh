#!/usr/bin/env bash
# PostgreSQL backend benchmark (issue 5), in one run on one machine:
#   1. `omniroute db import` of 180,000 stores and ~18,000,000 stock rows (wall time, RSS);
#   2. the peer: plain-SQL nearest-store lookups (PostGIS KNN joined with stock, single- and
#      multi-line, 1 and 2 connections) against omniroute's in-memory candidate search
#      (benches/pg_peer.rs);
#   3. route + durable reservation through 3 `omniroute serve --database-url` replicas on one
#      database, driven round-robin by the load generator (benches/load.rs) at fixed rates and
#      flat out.
# Output goes to stdout; BENCHMARKS.md records it.
#
#   benches/pg.sh [all|load] [rates...]   (default: all, rates 5000 10000; `load` reuses the
#                                          imported database and runs step 3 only)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup --postgres
cargo build --release --locked --all-targets -p omniroute >&2
bin=${OMNIROUTE_BIN:-target/release/omniroute}  # OMNIROUTE_BIN: compare another build
data=data/large/n180k
[ -f "$data/orders.jsonl" ] || $bin generate --stores 180000 --skus 2000 --skus-per-store 100 \
  --orders 1000000 --seed 11 --out "$data" >&2
db=omniroute_bench
url="postgres://postgres@127.0.0.1:5432/$db"
newest() { ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -1; }
what=${1:-all}; [ $# -gt 0 ] && shift
if [ "$what" = all ]; then
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db"

echo "== 1. import"
/usr/bin/time -f 'import: wall %e s, max RSS %M KB' $bin db --database-url "$url" import --data "$data"

echo "== 2. peer SQL lookup vs in-memory candidate search"
"$(newest pg_peer)" --database-url "$url" --data "$data" --seconds 10
fi

echo "== 3. route + durable reservation, 3 replicas on one database"
key=pgbenchkey1
pids=(); urls=()
for port in 8191 8192 8193; do
  OMNIROUTE_API_KEYS="checkout:$key" RUST_LOG=warn $bin serve --data "$data" --database-url "$url" \
    --bind "127.0.0.1:$port" > "/tmp/omniroute-pg-$port.log" 2>&1 &
  pids+=($!); urls+=("http://127.0.0.1:$port")
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for port in 8191 8192 8193; do
  for _ in $(seq 1 300); do grep -q listening "/tmp/omniroute-pg-$port.log" && break; sleep 1; done
done
load="$(newest load)"
all=$(IFS=,; echo "${urls[*]}")
rates="${*:-5000 10000}"
for rate in $rates; do
  $load --url "$all" --key "$key" --orders "$data/orders.jsonl" --rate "$rate" --duration 20 \
    --connections 256 --prefix "pg-r$rate-$$"
done
$load --url "$all" --key "$key" --orders "$data/orders.jsonl" --rate 0 --duration 20 \
  --connections 128 --prefix "pg-max-$$"
echo "one replica alone, flat out:"
$load --url "${urls[0]}" --key "$key" --orders "$data/orders.jsonl" --rate 0 --duration 20 \
  --connections 128 --prefix "pg-one-$$"
psql -X -h 127.0.0.1 -U postgres -d "$db" -At -c \
  "SELECT 'orders ' || count(*) FROM orders UNION ALL
   SELECT 'cells promising more than they hold: ' || count(*) FROM stock WHERE reserved > on_hand - safety_stock AND reserved > 0"
