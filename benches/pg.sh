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
#
# Before it starts, the script sets the cluster's write-path settings (ALTER SYSTEM, restarting
# the cluster when one needs it) to those ARCHITECTURE.md recommends for the PostgreSQL backend;
# PG_DEFAULTS=1 resets those four to the server's defaults instead, to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup --postgres
sql() { psql -X -q -At -h 127.0.0.1 -U postgres -d "${2:-postgres}" -c "$1"; }
for setting in shared_buffers=4GB max_wal_size=16GB checkpoint_timeout=30min wal_compression=lz4; do
  if [ "${PG_DEFAULTS:-0}" = 1 ]; then
    sql "ALTER SYSTEM RESET ${setting%%=*}"
  else
    sql "ALTER SYSTEM SET ${setting%%=*} = '${setting#*=}'"
  fi
done
sql "SELECT pg_reload_conf()" >/dev/null
if [ "$(sql "SELECT count(*) FROM pg_settings WHERE pending_restart")" != 0 ]; then
  pg_ctlcluster 15 main restart
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
echo "PostgreSQL settings: $(sql "SELECT string_agg(name || '=' || current_setting(name), ' ')
  FROM unnest(ARRAY['shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'wal_compression',
                    'synchronous_commit']) name")"
. benches/common.sh
build_release
bin=${OMNIROUTE_BIN:-target/release/omniroute}  # OMNIROUTE_BIN: compare another build
data=data/large/n180k
large_dataset "$bin"
db=omniroute_bench
url="postgres://postgres@127.0.0.1:5432/$db"
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
# Each load run starts from the imported state (no reservations, no answered orders, no day
# counters) with freshly started replicas: otherwise every run inherits the stock the runs before
# it reserved, and the later runs measure more orders that never reach the database.
key=pgbenchkey1
pids=()
stop_replicas() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap stop_replicas EXIT
fresh_replicas() {  # fresh_replicas PORT...: reset the state, start one replica per port
  stop_replicas
  sql "UPDATE stock SET reserved = 0 WHERE reserved <> 0" "$db"
  sql "TRUNCATE reservations, orders, store_days" "$db"
  sql "VACUUM ANALYZE stock, store_days, orders, reservations" "$db"
  urls=()
  for port in "$@"; do
    OMNIROUTE_API_KEYS="checkout:$key" RUST_LOG=warn $bin serve --data "$data" --database-url "$url" \
      --bind "127.0.0.1:$port" > "/tmp/omniroute-pg-$port.log" 2>&1 &
    pids+=($!); urls+=("http://127.0.0.1:$port")
  done
  for port in "$@"; do
    server_url "/tmp/omniroute-pg-$port.log" > /dev/null
  done
  all=$(IFS=,; echo "${urls[*]}")
}
check() {
  sql "SELECT 'orders ' || count(*) FROM orders UNION ALL
       SELECT 'cells promising more than they hold: ' || count(*) FROM stock
       WHERE reserved > on_hand - safety_stock AND reserved > 0" "$db"
}
load="$(newest load)"
rates="${*:-5000 10000}"
for rate in $rates; do
  fresh_replicas 8191 8192 8193
  $load --url "$all" --key "$key" --orders "$data/orders.jsonl" --rate "$rate" --duration 20 \
    --connections 256 --prefix "pg-r$rate-$$"
  check
done
fresh_replicas 8191 8192 8193
$load --url "$all" --key "$key" --orders "$data/orders.jsonl" --rate 0 --duration 20 \
  --connections 128 --prefix "pg-max-$$"
check
echo "one replica alone, flat out:"
fresh_replicas 8191
$load --url "$all" --key "$key" --orders "$data/orders.jsonl" --rate 0 --duration 20 \
  --connections 128 --prefix "pg-one-$$"
check
