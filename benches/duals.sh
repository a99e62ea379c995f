#!/usr/bin/env bash
# Checkout guided by a forecast plan's prices (issue 27 §3): on contested instances (200 SKUs,
# 50 a store, stock scaled to a tenth) one day of orders replayed under `checkout` (greedy
# nearest-first), `duals` and a day-long wave (the LP plan of the actual orders, known
# afterwards: the optimum). Single-line: 20,000 stores, 100,000 orders; mixed (1 to 5 lines):
# 5,000 stores, 25,000 orders (the same orders per store; the day-long LP of contested mixed
# orders at 20,000 stores did not finish in 25 minutes). Prints each comparison table and the
# share of the greedy-to-optimum cost gap `duals` closes.
#
#   benches/duals.sh [single|mixed|all]     (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
. benches/common.sh
bin=$(bench_bin)
for n in 20000 5000; do
  d=data/large/d$((n / 1000))k
  [ -f $d/stores.csv ] || "$bin" generate --stores $n --orders 1000 --skus 200 \
    --skus-per-store 50 --stock-scale 0.1 --pickup-share 0 --seed 11 --out $d >&2
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for tag in single mixed; do
  [ "$which" = all ] || [ "$which" = "$tag" ] || continue
  /usr/bin/time -f "$tag: wall %e s, peak %M KiB" "$bin" simulate benches/scenarios/duals/$tag-checkout.toml \
    benches/scenarios/duals/$tag-duals.toml benches/scenarios/duals/$tag-optimum.toml --out "$out/$tag" \
    2> >(grep -E "wall|replayed" >&2) > "$out/$tag.md"
  cat "$out/$tag.md"
  python3 - "$out/$tag" "$tag" <<'PY'
import json, sys, pathlib
d, tag = pathlib.Path(sys.argv[1]), sys.argv[2]
k = {p: json.loads((d / f"{tag}-{p}" / "report.json").read_text())["kpis"] for p in ("checkout", "duals", "optimum")}
g, u, o = (k[p]["total_cost"] for p in ("checkout", "duals", "optimum"))
print(f"{tag}: greedy {g:.1f}, duals {u:.1f}, optimum {o:.1f}; gap closed {100 * (g - u) / (g - o):.1f}%; "
      f"fill rate {k['checkout']['fill_rate_pct']} / {k['duals']['fill_rate_pct']} / {k['optimum']['fill_rate_pct']} %")
PY
done
