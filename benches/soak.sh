#!/usr/bin/env bash
# Soaks (issue 25): mixed load (routes, ships, cancels, stock feeds of which a tenth are invalid
# and must be refused whole, reads) with failures injected, every acknowledged write checked
# after each one by benches/soak.rs (see its header for what is checked).
#
#   benches/soak.sh kill   [CYCLES] [SECONDS] [SERVE ARGS...]
#                                               kill -9 of the embedded-store server at a random
#                                               moment of each cycle's load (default 100, 3 s);
#                                               e.g. `kill 100 5 --quick-repair`
#   benches/soak.sh pg     [CYCLES] [SECONDS]   immediate stops of a dedicated PostgreSQL cluster
#                                               under a running service (default 20, 3 s)
#   benches/soak.sh memory [SECONDS] [RATE]     one server under load for SECONDS (default 1800)
#                                               at RATE operations/s (default 2000), resident
#                                               memory sampled every 10 s
#
# The dataset is small and contested on purpose (300 stores in 3 cities, 40 SKUs, 0.3 of the
# usual stock): most orders have many stores in reach and stock binds, so lost or doubled writes
# show in the stock arithmetic. Exit status 1 when
# any check failed. Output goes to stdout; BENCHMARKS.md records it.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
target=${CARGO_TARGET_DIR:-target}
build_release
bin=$target/release/omniroute
soak=$(ls -t "$target"/release/deps/soak-* | grep -v '\.d$' | head -1)
data=data/soak
work=$(mktemp -d /tmp/omniroute-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ ! -f $data/orders.jsonl ]; then
  # Three cities (the first of the bundled German sample's list), about 100 stores each.
  head -n 4 data/sample_de/cities.csv > "$work/cities.csv"
  "$bin" generate --stores 300 --skus 40 --skus-per-store 20 --orders 20000 --stock-scale 0.3 \
    --dcs 2 --seed 5 --cities "$work/cities.csv" --time-zone Europe/Berlin --out $data >&2
  # Daily capacity 50 times the generated one: the 300 stores' own (about 94,000 orders a day)
  # would be used up in two minutes of load, after which no order holds store stock.
  awk -F, -v OFS=, 'NR > 1 { $8 = $8 * 50 } 1' $data/stores.csv > "$work/stores.csv"
  mv "$work/stores.csv" $data/stores.csv
fi
mode=${1:-kill}
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty) machine $(nproc) cores"
case "$mode" in
  kill)
    extra=()
    for arg in "${@:4}"; do extra+=(--server-arg "$arg"); done
    "$soak" --mode kill --bin "$bin" --data $data --state "$work/state" \
      --cycles "${2:-100}" --seconds "${3:-3}" "${extra[@]}" ;;
  memory)
    "$soak" --mode memory --bin "$bin" --data $data --state "$work/state" \
      --seconds "${2:-1800}" --rate "${3:-2000}" --verify-every 600 ;;
  pg)
    # A cluster of its own, so that stopping it touches nothing else.
    pgbin=$(scripts/setup --postgres | awk '{print $2}')
    port=55439
    as_pg=()
    if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$work"; fi
    "${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -A trust -U postgres --no-sync >/dev/null
    ctl=("${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w)
    opts="-p $port -k $work -c listen_addresses=127.0.0.1"
    "${ctl[@]}" -o "$opts" start >/dev/null
    trap '"${ctl[@]}" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    url="postgres://postgres@127.0.0.1:$port/postgres"
    "$bin" db import --database-url "$url" --data $data >&2
    "$soak" --mode pg --bin "$bin" --data $data --database-url "$url" \
      --pg-stop "${ctl[*]} -m immediate stop >/dev/null" \
      --pg-start "${ctl[*]} -o '$opts' start >/dev/null" \
      --cycles "${2:-20}" --seconds "${3:-3}" ;;
  *) echo "usage: benches/soak.sh kill|pg|memory [...]" >&2; exit 2 ;;
esac
