#!/usr/bin/env bash
# Citus against one PostgreSQL server (issue 32), in one run on this machine: the 180,000-store
# dataset imported into both; then, for each, route + durable reservation through 2 replicas,
# flat out, from the load generator (benches/load.rs): orders/s, and CPU per order of the
# database processes (all instances of the cluster) and of the replicas (/proc, user + system);
# then the share of orders whose reservation touches a region other than the order's own.
#
#   benches/citus.sh [SECONDS]   (default 30 s a run; OMNIROUTE_BIN: the binary to measure)
#
# The Citus cluster (a coordinator and two workers, scripts/citus) runs under /var/tmp on ports
# 9750 to 9752; PostgreSQL is the server scripts/setup runs, with the settings benches/pg.sh sets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup --postgres > /dev/null
. benches/common.sh
bin=$(bench_bin)
secs=${1:-30}
data=data/large/n180k
large_dataset "$bin"
load="$(newest load)"
key=citusbenchkey1
db=omniroute_citus_bench
citus_dir=/var/tmp/omniroute-bench-citus
coord=$(scripts/citus start "$citus_dir" 9750 | tail -n 1)
ports=(9750 9751 9752)
pg_url="postgres://postgres@127.0.0.1:5432/$db"
# The same write path everywhere: durable (the test cluster runs with fsync off), the settings
# ARCHITECTURE.md recommends, 4 GB of buffers for the one server and 2 GB for each worker.
for p in 5432 "${ports[@]}"; do
  u="postgres://postgres@127.0.0.1:$p/postgres"
  buffers=4GB; [ "$p" != 5432 ] && buffers=2GB; [ "$p" = 9750 ] && buffers=512MB
  for setting in fsync=on full_page_writes=on synchronous_commit=on shared_buffers=$buffers \
                 max_wal_size=16GB checkpoint_timeout=30min wal_compression=lz4 wal_init_zero=off; do
    psql -X -q -At "$u" -c "ALTER SYSTEM SET ${setting%%=*} = '${setting#*=}'"
  done
  psql -X -q -At "$u" -c "SELECT pg_reload_conf()" > /dev/null
  if [ "$(psql -X -q -At "$u" -c "SELECT count(*) FROM pg_settings WHERE pending_restart")" != 0 ]; then
    if [ "$p" = 5432 ]; then
      pg_ctlcluster 15 main restart
    else
      d="$citus_dir/n$((p - 9750))"
      as=(); [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
      "${as[@]}" "$(pg_config --bindir)/pg_ctl" -D "$d" -l "$d/server.log" -w restart > /dev/null
    fi
  fi
done
citus_url="postgres://postgres@127.0.0.1:9750/$db"
sql() { psql -X -q -At "$1" -c "$2"; }
node() { echo "postgres://postgres@127.0.0.1:$1/postgres"; }

if [ "$(sql "$pg_url" 'SELECT count(*) FROM stores' 2>/dev/null)" != 180000 ]; then
  sql "$(node 5432)" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  sql "$(node 5432)" "CREATE DATABASE $db"
  echo "== import into PostgreSQL"
  /usr/bin/time -f 'import: wall %e s, max RSS %M KB' "$bin" db --database-url "$pg_url" import --data "$data"
fi
if [ "$(sql "$citus_url" 'SELECT count(*) FROM stores' 2>/dev/null)" != 180000 ]; then
  for p in "${ports[@]}"; do
    sql "$(node "$p")" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    sql "$(node "$p")" "CREATE DATABASE $db"
    sql "postgres://postgres@127.0.0.1:$p/$db" "CREATE EXTENSION citus; CREATE EXTENSION postgis"
  done
  sql "$citus_url" "SELECT citus_set_coordinator_host('127.0.0.1', 9750)" > /dev/null
  sql "$citus_url" "SELECT citus_add_node('127.0.0.1', 9751); SELECT citus_add_node('127.0.0.1', 9752)" > /dev/null
  echo "== import into Citus (coordinator + 2 workers)"
  /usr/bin/time -f 'import: wall %e s, max RSS %M KB' "$bin" db --database-url "$citus_url" import --data "$data"
fi

pids=()
stop_replicas() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap stop_replicas EXIT
reset_state() {  # reset_state URL: no reservations, answered orders, day counters or change log
  sql "$1" "UPDATE stock SET reserved = 0 WHERE reserved <> 0"
  sql "$1" "TRUNCATE reservations, orders, store_days"
  sql "$1" "DO \$\$ BEGIN IF to_regclass('stock_changes') IS NOT NULL THEN TRUNCATE stock_changes; END IF; END \$\$"
  sql "$1" "VACUUM ANALYZE stock, store_days, orders, reservations"
}
# PIDs of the database instances: each postmaster and its children.
db_pids() {  # db_pids PORT...
  local p pm
  for p in "$@"; do
    pm=$(head -1 "$(sql "$(node "$p")" 'SHOW data_directory')/postmaster.pid")
    echo "$pm"; pgrep -P "$pm" || true
  done
}
ticks_of() { local t=0 x; for p in "$@"; do x=$(cpu_ticks "/proc/$p/stat"); t=$((t + ${x:-0})); done; echo "$t"; }
run() {  # run NAME URL PORT...: 2 replicas on URL, flat out for $secs, CPU per order
  local name=$1 url=$2; shift 2
  stop_replicas
  reset_state "$url"
  local urls=()
  for port in 8291 8292; do
    OMNIROUTE_API_KEYS="checkout:$key" RUST_LOG=warn "$bin" serve --data "$data" --database-url "$url" \
      --db-batchers 1 --bind "127.0.0.1:$port" > "/tmp/omniroute-citus-$port.log" 2>&1 &
    pids+=($!); urls+=("http://127.0.0.1:$port")
  done
  for port in 8291 8292; do server_url "/tmp/omniroute-citus-$port.log" > /dev/null; done
  local dbp d0 r0 d1 r1 out n hz p
  declare -A p0 p1
  dbp=$(db_pids "$@")
  d0=$(ticks_of $dbp); r0=$(ticks_of "${pids[@]}")
  for p in "$@"; do p0[$p]=$(ticks_of $(db_pids "$p")); done
  out=$("$load" --url "$(IFS=,; echo "${urls[*]}")" --key "$key" --orders "$data/orders.jsonl" --rate 0 \
        --connections 128 --duration "$secs" --prefix "$name-$$" 2>&1 | tail -1)
  for p in "$@"; do p1[$p]=$(ticks_of $(db_pids "$p")); done
  dbp="$dbp $(db_pids "$@")"
  d1=$(ticks_of $(tr ' ' '\n' <<< "$dbp" | sort -u)); r1=$(ticks_of "${pids[@]}")
  n=$(grep -o 'ok_requests=[0-9]*' <<< "$out" | cut -d= -f2)
  hz=$(getconf CLK_TCK)
  echo "$name: $out"
  awk -v n="$n" -v d="$((d1 - d0))" -v r="$((r1 - r0))" -v hz="$hz" -v name="$name" \
    'BEGIN {printf "%s: cpu µs/order: database=%.1f replicas=%.1f\n", name, d / hz / n * 1e6, r / hz / n * 1e6}'
  for p in "$@"; do
    awk -v n="$n" -v d="$((p1[$p] - p0[$p]))" -v hz="$hz" -v p="$p" \
      'BEGIN {printf "  port %s: %.1f µs CPU/order (processes alive at both ends)\n", p, d / hz / n * 1e6}'
  done
  sql "$url" "SELECT 'orders ' || count(*) FROM orders"
  sql "$url" "SELECT 'cells promising more than they hold: ' || count(*) FROM stock
              WHERE reserved > on_hand - safety_stock AND reserved > 0"
}
run postgres "$pg_url" 5432
run citus "$citus_url" "${ports[@]}"
stop_replicas
# Orders whose holds are all in the order's own region commit on one worker.
sql "$citus_url" "WITH s AS MATERIALIZED (SELECT store_id, region FROM stores), h AS MATERIALIZED (SELECT order_id, region AS g, unnest(stores) AS store FROM reservations) SELECT 'orders with holds: ' || count(DISTINCT h.order_id) || ', all holds in the order''s region (one node): ' || round(100.0 - 100.0 * count(DISTINCT h.order_id) FILTER (WHERE s.region <> h.g) / greatest(count(DISTINCT h.order_id), 1), 2) || '%' FROM h JOIN s ON s.store_id = h.store"
echo "regions: $(sql "$citus_url" 'SELECT count(DISTINCT region) FROM stores'), shards per table: $(sql "$citus_url" "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'stock'::regclass")"
