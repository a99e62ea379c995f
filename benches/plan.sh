#!/usr/bin/env bash
# Batch-optimizer benchmark, side by side in one run: omniroute LP and greedy against OR-tools
# min-cost flow (benches/peer_mcf.py) and HiGHS on the monolithic LP (omniroute --monolithic),
# on generated instances. Results go to stdout as one JSON line per run; BENCHMARKS.md records
# them.
#
#   benches/plan.sh [small|large|capacity|capacity-large|mixed-contested|all]
#     small: the 20,000-store instances (default); large: the 180,000-store ones;
#     capacity: 20,000 stores where store capacity binds; capacity-large: the same at 180,000;
#     mixed-contested: 20,000 stores, 1 to 5 lines, a tenth of the default stock
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-small}
scripts/setup
. benches/common.sh
bin=$(bench_bin)
venv=${CARGO_TARGET_DIR:-target}/peer-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import ortools, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ortools==9.15.6755" "numpy>=1.26"
fi

# Single-line instances are contested: 50 of 200 SKUs per store, a tenth of the default stock.
# Mixed-line instances keep the default stock, except b20k-mixc (a tenth, as the single-line).
gen() { # dir stores orders lines max_qty stock_scale [capacity_scale]
  [ -f "$1/orders.jsonl" ] && return
  $bin generate --stores "$2" --orders "$3" --skus 200 --skus-per-store 50 --stock-scale "$6" \
    --capacity-scale "${7:-1}" --lines "$4" --max-qty "$5" --pickup-share 0 --out "$1" >&2
}
measure() { # label, command...
  local label=$1; shift
  local t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o /tmp/plan-bench-rss "$@" > /tmp/plan-bench-out
  local t1=$(date +%s.%N)
  python3 - "$label" "$t0" "$t1" <<'PY'
import json, sys
label, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
out = open("/tmp/plan-bench-out").read().strip()
rss = int(open("/tmp/plan-bench-rss").read().split()[-1]) / 1024
try:
    j = json.loads(out.splitlines()[-1] if out.startswith("{\"peer") else out)
except Exception:
    j = {"raw": out[-500:]}
row = {"run": label, "wall_s": round(t1 - t0, 2), "peak_rss_mib": round(rss)}
if "violations" in j:
    row["violations"] = j["violations"]
if "kpis" in j:
    row.update(cost=j["kpis"]["cost"], dc_share=j["kpis"]["dc_share"], split_rate=j["kpis"]["split_rate"],
               load_s=round(j["load_s"], 2), candidates_s=round(j["candidates_s"], 2), solve_s=round(j["solve_s"], 2))
    if j.get("lp"):
        lp = j["lp"]
        row.update(lp_bound=lp["lower_bound"], gap=lp["gap"], fixed=lp["fixed_by_presolve"],
                   components=lp["components"], largest=lp["largest_component"], rounds=lp["lazy_rounds"],
                   fractional=lp["fractional_orders"])
    if j.get("greedy_comparison"):
        g = j["greedy_comparison"]
        row.update(greedy_cost=g["greedy_cost"], greedy_dc_share=g["greedy_dc_share"], greedy_excess=g["greedy_excess"])
else:
    row.update(j)
print(json.dumps(row), flush=True)
PY
}

run_set() { # dir single(1/0) monolithic(1/0) [capacity-bound: 1 runs each flow solver, 2 no
  # more, and neither runs HiGHS on every component]
  # The peers' rules: great-circle legs and no radius but what the weights imply (a store farther
  # than the DC fallback's cost never pays). Single-line runs use the peers' weights (1 per km,
  # DC 500); mixed runs the default weights.
  local d=$1 rules=(--cost great-circle --ship-radius-km 20000 --pickup-radius-km 20000)
  local w=("${rules[@]}")
  [ "$2" = 1 ] && w+=(--peer-weights)
  measure "$d lp" $bin optimize --data "$d" "${w[@]}" --check --json
  measure "$d greedy" $bin optimize --data "$d" "${w[@]}" --solver greedy --json
  if [ "${4:-0}" = 1 ]; then
    # Each min-cost flow solver alone on the network components (auto picks between them).
    measure "$d lp-flow-paths" $bin optimize --data "$d" "${w[@]}" --flow paths --no-compare --json
    measure "$d lp-flow-simplex" $bin optimize --data "$d" "${w[@]}" --flow simplex --no-compare --json
  fi
  if [ "$2" = 1 ]; then
    # The same LP planner with HiGHS on every component (no min-cost flow for the networks).
    if [ "${4:-0}" = 0 ]; then
      measure "$d lp-highs-only" $bin optimize --data "$d" "${w[@]}" --highs-only --no-compare --json
    fi
    $bin optimize --data "$d" "${w[@]}" --export-mcf "$d/instance.mcf" >&2
    measure "$d ortools-mcf" "$venv/bin/python" benches/peer_mcf.py "$d/instance.mcf"
  fi
  if [ "$3" = 1 ]; then
    measure "$d highs-monolithic" $bin optimize --data "$d" "${rules[@]}" --peer-weights --monolithic --no-compare --json
  fi
}

if [ "$which" = small ] || [ "$which" = all ]; then
  gen data/large/b20k-1 20000 100000 1 1 0.1
  gen data/large/b20k-mixd 20000 100000 mixed 3 1
  run_set data/large/b20k-1 1 1
  run_set data/large/b20k-mixd 0 0
fi
# Capacity-bound: default stock, every store's daily capacity scaled to 3% (median 6 orders), so
# that about 12,700 of 20,000 stores end the plan at capacity.
if [ "$which" = capacity ] || [ "$which" = all ]; then
  gen data/large/c20k-1 20000 100000 1 1 1 0.03
  run_set data/large/c20k-1 1 0 1
fi
if [ "$which" = capacity-large ] || [ "$which" = all ]; then
  gen data/large/c180k-1 180000 1000000 1 1 1 0.03
  run_set data/large/c180k-1 1 0 2
fi
if [ "$which" = mixed-contested ] || [ "$which" = all ]; then
  gen data/large/b20k-mixc 20000 100000 mixed 3 0.1
  run_set data/large/b20k-mixc 0 0
fi
if [ "$which" = large ] || [ "$which" = all ]; then
  gen data/large/b180k-1 180000 1000000 1 1 0.1
  gen data/large/b180k-mixd 180000 1000000 mixed 3 1
  run_set data/large/b180k-1 1 0
  run_set data/large/b180k-mixd 0 0
fi
