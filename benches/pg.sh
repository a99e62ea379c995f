#!/usr/bin/env bash
# PostgreSQL backend benchmark (issue 5), in one run on one machine:
#   1. `omniroute db import` of 180,000 stores and ~18,000,000 stock rows (wall time, RSS);
#   2. the peer: plain-SQL nearest-store lookups (PostGIS KNN joined with stock, single- and
#      multi-line, 1 and 2 connections) against omniroute's in-memory candidate search
#      (benches/pg_peer.rs);
#   3. route + durable reservation through 3 `omniroute serve --database-url` replicas on one
#      database, driven round-robin by the load generator (benches/load.rs) at fixed rates and
#      flat out; then through 2 replicas at the same rates, and 1 flat out.
# Output goes to stdout; BENCHMARKS.md records it.
#
#   benches/pg.sh [all|load] [rates...]   (default: all, rates 5000 10000; `load` reuses the
#                                          imported database and runs step 3 only)
#   benches/pg.sh one REPLICAS RATE CONNECTIONS [SECONDS]   (one load run of step 3, rate 0 for
#                                          flat out; to compare builds or settings)
#   benches/pg.sh function [MIGRATION...]  (the reservation function alone: pgbench calls
#                                          omniroute_reserve on one connection with batches of 1,
#                                          32 and 128 one-line orders on random cells, for the
#                                          function as each migration file defines it, default the
#                                          newest, which is put back at the end: wall time and the
#                                          backend's CPU a call, and the CPU each further order
#                                          adds; then the same for the least those orders'
#                                          reservations write, without the function)
#
# Before it starts, the script sets the cluster's write-path settings (ALTER SYSTEM, restarting
# the cluster when one needs it) to those ARCHITECTURE.md recommends for the PostgreSQL backend;
# PG_DEFAULTS=1 resets those five to the server's defaults instead, to compare. Replicas run
# `--db-batchers` 1 each when there are several and 2 when alone (PG_BATCHERS overrides), and the
# default HTTP workers (PG_WORKERS sets `--workers`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup --postgres
sql() { psql -X -q -At -h 127.0.0.1 -U postgres -d "${2:-postgres}" -c "$1"; }
for setting in shared_buffers=4GB max_wal_size=16GB checkpoint_timeout=30min wal_compression=lz4 \
               wal_init_zero=off; do
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
                    'wal_init_zero', 'synchronous_commit']) name")"
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

# The imported state: no reservations, no answered orders, no day counters.
reset_state() {
  sql "UPDATE stock SET reserved = 0 WHERE reserved <> 0" "$db"
  sql "TRUNCATE reservations, orders, store_days" "$db"
  sql "VACUUM ANALYZE stock, store_days, orders, reservations" "$db"
}

if [ "$what" = function ]; then
  newest_sql=$(ls api/migrations/V*.sql | sort -V | tail -1)
  dir=$(mktemp -d)
  trap 'psql -X -q -h 127.0.0.1 -U postgres -d "$db" -f "$newest_sql"; sql "DROP TABLE IF EXISTS bench_cells" "$db"; rm -rf "$dir"' EXIT
  sql "DROP TABLE IF EXISTS bench_cells; CREATE TABLE bench_cells AS
       SELECT row_number() OVER () AS i, store_id AS s, sku AS q FROM stock TABLESAMPLE SYSTEM (2)
       WHERE on_hand - reserved - safety_stock >= 10 LIMIT 100000;
       CREATE UNIQUE INDEX ON bench_cells (i); ANALYZE bench_cells" "$db"
  # :n one-line orders on random cells with stock, fresh order ids.
  cells="SELECT gen_random_uuid()::text AS id, c.s, c.q FROM bench_cells c
         WHERE c.i IN (SELECT (random() * 99999)::int + 1 FROM generate_series(1, :n))"
  cat > "$dir/function.sql" <<SQL
SELECT count(*) FROM omniroute_reserve(
  (SELECT jsonb_agg(jsonb_build_object('id', c.id, 'day', 20000, 'exp', 4000000000,
     'h', jsonb_build_array(jsonb_build_array(c.s, c.q, 1)))) FROM ($cells) c),
  array_fill(repeat('x', 300), ARRAY[:n]), array_fill(repeat('y', 300), ARRAY[:n]));
SQL
  # The least any reservation of those orders writes, in one statement without the function: the
  # order row, a conditional update of its stock row (whose trigger announces it), a day slot
  # and the reservation row. No lock order, no refusal path, no answer: a floor, not a design.
  cat > "$dir/floor.sql" <<SQL
WITH c AS MATERIALIZED ($cells),
o AS (INSERT INTO orders (order_id, request, response)
      SELECT c.id, repeat('x', 300), repeat('y', 300) FROM c RETURNING 1),
u AS (UPDATE stock k SET reserved = k.reserved + 1, version = k.version + 1
      FROM c WHERE k.store_id = c.s AND k.sku = c.q AND k.on_hand - k.reserved - k.safety_stock >= 1
      RETURNING 1),
d AS (INSERT INTO store_days AS d (store_id, day, orders)
      SELECT DISTINCT c.s, 20000, 1 FROM c ON CONFLICT (store_id, day) DO UPDATE SET orders = d.orders + 1
      RETURNING 1),
r AS (INSERT INTO reservations (order_id, state, day, expires_at, stores, skus, qtys)
      SELECT c.id, 1, 20000, 4000000000, ARRAY[c.s], ARRAY[c.q], ARRAY[1] FROM c RETURNING 1)
SELECT (SELECT count(*) FROM o), (SELECT count(*) FROM u), (SELECT count(*) FROM d), (SELECT count(*) FROM r);
SQL
  # pgbench SCRIPT N: 10 s on one connection; wall ms a call, and the backend's CPU a call (/proc,
  # user + system, over seconds 2 to 9, divided by the calls pgbench reports for those seconds;
  # the statement pgbench sends is planned on every call, a few hundred µs that the replicas'
  # prepared call does not pay).
  bench() {
    local out=$dir/out pid t0 t1
    "${OMNIROUTE_PG_BIN:-/usr/lib/postgresql/15/bin}/pgbench" -n -h 127.0.0.1 -U postgres -c 1 -T 10 -P 1 \
      -D n="$2" -f "$1" "$db" > "$out" 2>&1 &
    sleep 2
    pid=$(sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND datname = '$db'" "$db")
    t0=$(cpu_ticks "/proc/$pid/stat")
    sleep 7
    t1=$(cpu_ticks "/proc/$pid/stat")
    wait $!
    awk -v n="$2" -v cpu="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" '
      /^progress:/ && $2 + 0 > 2 && $2 + 0 <= 9 {calls += $4}
      /latency average/ {l = $4}
      END {if (!calls) {print "pgbench reported no calls:" > "/dev/stderr"; system("cat " FILENAME " >&2"); exit 1}
           c = cpu / hz / calls * 1e6; printf "batches of %3d: %7.3f ms a call, %8.0f µs CPU a call, %6.1f µs CPU an order\n", n, l, c, c / n}' "$out"
  }
  # measure SCRIPT: batches of 1, 32 and 128 orders, and the CPU each further order adds from
  # 32 to 128.
  measure() {
    local a b
    bench "$1" 1
    a=$(bench "$1" 32); echo "$a"
    b=$(bench "$1" 128); echo "$b"
    awk -v a="$(awk '{print $8}' <<< "$a")" -v b="$(awk '{print $8}' <<< "$b")" \
      'BEGIN {printf "  => each further order: %.1f µs of CPU\n", (b - a) / 96}'
  }
  for migration in "${@:-$newest_sql}"; do
    reset_state
    psql -X -q -h 127.0.0.1 -U postgres -d "$db" -f "$migration"
    echo "$(basename "$migration"):"
    measure "$dir/function.sql"
  done
  reset_state
  echo "floor (the rows alone, no function):"
  measure "$dir/floor.sql"
  exit 0
fi

# Every acknowledged order waits for a WAL flush; a disk whose flushes stall holds up every order
# in flight, whatever the CPU. Its tail, first, so that each run records the disk it had.
benches/fsync_tail.py "" 5
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
  reset_state
  urls=()
  # Reservation transactions at once across all replicas: about the 2 cores (PG_BATCHERS: per
  # replica, to compare).
  local batchers=${PG_BATCHERS:-$(( $# >= 2 ? 1 : 2 ))}
  for port in "$@"; do
    OMNIROUTE_API_KEYS="checkout:$key" RUST_LOG=warn $bin serve --data "$data" --database-url "$url" \
      --db-batchers "$batchers" ${PG_WORKERS:+--workers "$PG_WORKERS"} --bind "127.0.0.1:$port" > "/tmp/omniroute-pg-$port.log" 2>&1 &
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
# CPU per order by process while a load runs (/proc, user + system): the replicas, the load
# generator, PostgreSQL's reservation batchers, its notification listeners and the rest of the
# cluster (other backends, WAL writer, checkpointer). One line, figures in µs of CPU per order.
# A backend is named by its last statement when the load ends: a pool connection that last ran
# something else (the expiry tick) counts as pg-other, so PostgreSQL's share is both together.
ticks() {  # "pid ticks" for every process
  for s in /proc/[0-9]*/stat; do
    s=${s#/proc/}; echo "${s%/stat} $(cpu_ticks "/proc/$s")"
  done | sort -k1,1
}
roles() {  # "pid role" for the processes a load run involves
  for p in "${pids[@]}"; do echo "$p replicas"; done
  sql "SELECT pid, CASE WHEN query LIKE 'LISTEN%' THEN 'pg-listeners'
                        WHEN query LIKE '%omniroute_reserve%' THEN 'pg-batchers' ELSE 'pg-other' END
       FROM pg_stat_activity WHERE datname = '$db'" "$db" | tr '|' ' '
  for p in $(pgrep -x postgres); do echo "$p pg-other"; done
}
run_load() {  # run_load ARGS...: the load generator, then CPU per order by role
  local before after out line n
  before=$(ticks)
  out=$( { TIMEFORMAT='%U %S'; time "$load" "$@" 2>&1 | tail -1; } 2>&1 )
  after=$(ticks)
  line=$(head -1 <<< "$out")
  echo "$line"
  n=$(grep -o 'ok_requests=[0-9]*' <<< "$line" | cut -d= -f2)
  awk -v n="${n:-0}" -v hz="$(getconf CLK_TCK)" -v gen="$(tail -1 <<< "$out")" '
    part == "roles" { if (!($1 in role)) role[$1] = $2; next }
    part == "before" { t0[$1] = $2; next }
    $1 in role { s[role[$1]] += $2 - t0[$1] }  # a backend that connected during the run: all of it
    END {
      split(gen, g, " "); s["loadgen"] = (g[1] + g[2]) * hz
      printf "# cpu µs/order:"
      for (k in s) if (n > 0) printf " %s=%.1f", k, s[k] * 1e6 / hz / n
      print ""
    }' part=roles <(roles) part=before <(echo "$before") part=after <(echo "$after")
}
load="$(newest load)"
# drive RATE CONNECTIONS SECONDS PREFIX: one load through the running replicas (RATE 0: flat
# out), its CPU per order, then the state check.
drive() {
  run_load --url "$all" --key "$key" --orders "$data/orders.jsonl" --rate "$1" --connections "$2" \
    --duration "$3" --prefix "$4"
  check
}
if [ "$what" = one ]; then  # one REPLICAS RATE CONNECTIONS [SECONDS]: a single load run
  ports=(); for i in $(seq 1 "$1"); do ports+=($((8190 + i))); done
  fresh_replicas "${ports[@]}"
  drive "$2" "$3" "${4:-20}" "pg-one-$$-$RANDOM"
  exit 0
fi
rates="${*:-5000 10000}"
for rate in $rates; do
  fresh_replicas 8191 8192 8193
  drive "$rate" 256 20 "pg-r$rate-$$"
done
for rate in $rates; do
  echo "two replicas, $rate/s:"
  fresh_replicas 8191 8192
  drive "$rate" 256 20 "pg-two-r$rate-$$"
done
fresh_replicas 8191 8192 8193
drive 0 128 20 "pg-max-$$"
echo "one replica alone, flat out:"
fresh_replicas 8191
drive 0 128 20 "pg-one-$$"
