#!/usr/bin/env bash
# Maps at full size (issue 28 §6): the 180,000-store network with the 1,000,000-order greedy plan
# of its order file. Times `omniroute map` writing the GeoJSON layers and the HTML map (stage
# times from its log), the HTML's size, and Chromium (headless, network blocked) opening it
# until the first drawing is done, three times each. Two shapes: one plan; the plan and the
# checkout replay of the same orders (two views, change layers, twice the per-store data).
#
#   benches/map.sh          (OMNIROUTE_BIN: the binary under test, else a fresh release build)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
bin=$(bench_bin)
large_dataset "$bin"
work="${CARGO_TARGET_DIR:-$HOME/.cache/omniroute/target}/bench-map"
mkdir -p "$work"
plan="$work/n180k-greedy.json"
[ -s "$plan" ] || "$bin" optimize --data data/large/n180k --solver greedy --no-compare --out "$plan" >/dev/null
chromium=${OMNIROUTE_CHROMIUM:-/usr/bin/chromium}

open_page() { # $1: html file; prints page_ms and the process's wall seconds
  local t0 t1 status
  t0=$(date +%s.%N)
  status=$("$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --host-resolver-rules="MAP * ~NOTFOUND" --proxy-server=127.0.0.1:9 \
    --virtual-time-budget=60000 --window-size=1400,1000 --dump-dom "file://$1" 2>/dev/null |
    grep -o '<pre id="status"[^<]*</pre>' | sed 's/<[^>]*>//g')
  t1=$(date +%s.%N)
  python3 - "$status" "$t0" "$t1" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
d = s["drawn"]
wall = float(sys.argv[3]) - float(sys.argv[2])
print(f"ready={s['ready']} page_ms={s['page_ms']:.0f} script_ms={s['ms']:.0f} chromium_wall_s={wall:.2f} drawn:",
      " ".join(f"{k}={v}" for k, v in d.items()))
PY
}

for shape in plan plan+replay; do
  args=(--plan "greedy=$plan")
  [ "$shape" = plan+replay ] && args+=(--replay)
  for run in 1 2 3; do
    rm -rf "$work/layers"
    /usr/bin/time -f "$shape run $run: map wall %e s, peak %M KiB" "$bin" map --data data/large/n180k "${args[@]}" \
      --out "$work/layers" --html "$work/map.html" 2> >(grep -E "wall|INFO" | sed 's/^\[[^]]*\] */  /' >&2) >/dev/null
  done
  echo "$shape: map.html $(stat -c %s "$work/map.html") bytes; layers $(du -sb "$work/layers" | cut -f1) bytes"
  hash=""
  [ "$shape" = plan+replay ] && hash="#view=1&compare=0"
  for run in 1 2 3; do
    echo "$shape chromium run $run: $(open_page "$work/map.html$hash")"
  done
done
