#!/usr/bin/env bash
# Magic Mirror (BENCHMARKS.md "Recommendations"): a history of 1,000,000 customers and about
# 12.7 million purchases over 100,000 SKUs and 5,000 stores (generated once into
# data/large/rec1m), then
#  1. `omniroute recommend evaluate` on it: training time and peak memory, every model's figures;
#  2. the service on it (training at start), and GET /v1/stores/{id}/recommendations?k=10 over
#     HTTP from 1 and then 8 keep-alive connections (a Python client), 20,000 calls each: p50,
#     p99, max and calls per second; once for history customers at a store they bought in (pairs
#     from the first 2 million rows: her own items compete for the list) and once for random
#     customers at random stores.
#
#   OMNIROUTE_BIN=<copy of a release build> benches/recommend.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN=$(bench_bin)
DATA=data/large/rec1m
[ -f "$DATA/history.csv" ] || "$BIN" generate --stores 5000 --skus 100000 --skus-per-store 300 --orders 1000 \
  --customers 1000000 --purchases 11000000 --seed 11 --out "$DATA" >&2
echo "== recommend evaluate"
/usr/bin/time -f "evaluate: %e s wall, %M KiB peak" "$BIN" recommend evaluate --data "$DATA" 2>&1 | grep -v '^\s*$'

KEY=benchcheckoutkey1
export OMNIROUTE_API_KEYS="checkout:$KEY"
export OMNIROUTE_COUPON_KEYS="1:bench-coupon-secret-0123456789abcdefghij"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" serve --data "$DATA" --state "$WORK/state" --bind 127.0.0.1:0 > "$WORK/out" 2> "$WORK/log" &
URL=$(server_url "$WORK/out" 600)
grep -o 'recommendations: trained.*' "$WORK/log" || true
echo "== GET /v1/stores/{id}/recommendations?customer_id=..&k=10 at $URL"
python3 - "$URL" "$KEY" "$DATA" <<'PY'
import http.client, random, sys, threading, time, urllib.parse
url, key, data = sys.argv[1], sys.argv[2], sys.argv[3]
host = urllib.parse.urlparse(url).netloc
stores = [l.split(',')[0] for l in open(f"{data}/stores.csv").read().splitlines()[1:]]
regulars = []
with open(f"{data}/history.csv") as f:
    next(f)
    for i, line in enumerate(f):
        if i >= 2_000_000:
            break
        c, _, _, channel, store = line.rstrip("\n").split(",")
        if channel == "store":
            regulars.append((c, store))
rng = random.Random(11)
def home(r):
    return r.choice(regulars)
def anyone(r):
    return (f"C-{r.randint(1, 1000000):07d}", r.choice(stores))
def run(conns, calls, pick):
    lat, errors = [], []
    def worker(n, seed):
        r = random.Random(seed)
        c = http.client.HTTPConnection(host)
        h = {"Authorization": f"Bearer {key}"}
        for _ in range(n):
            customer, store = pick(r)
            path = f"/v1/stores/{urllib.parse.quote(store)}/recommendations?customer_id={customer}&k=10"
            t = time.perf_counter()
            c.request("GET", path, headers=h)
            res = c.getresponse(); body = res.read()
            lat.append(time.perf_counter() - t)
            if res.status != 200 or body.count(b'"sku"') != 10:
                errors.append((res.status, body[:200]))
    ts = [threading.Thread(target=worker, args=(calls // conns, rng.random())) for _ in range(conns)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3
    print(f"{pick.__name__:>6}, {conns} connection(s): {len(lat)} calls, {len(lat)/wall:.0f}/s, p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1]*1e3:.2f} ms, {len(errors)} not 200 with 10 items {errors[:2]}")
run(1, 2000, home)  # warm-up
for pick in (home, anyone):
    for conns in (1, 8):
        run(conns, 20000, pick)
PY
