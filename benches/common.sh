# Sourced by the benchmark scripts (pg.sh, cpu.sh, callgrind.sh) from the repository root: the release build
# of every target, the 180,000-store dataset of BENCHMARKS.md, and the bench binaries cargo built.

# Builds the binary and the bench targets (the load generator, the SQL peer).
build_release() {
  cargo build --release --locked --all-targets -p omniroute >&2
}

# The binary under test: $OMNIROUTE_BIN (a copy of a release build, so that builds meanwhile
# leave it alone), or a fresh release build.
bench_bin() {
  [ -n "${OMNIROUTE_BIN:-}" ] || build_release
  echo "${OMNIROUTE_BIN:-${CARGO_TARGET_DIR:-target}/release/omniroute}"
}

# Generates the 180k network into data/large/n180k with binary $1 unless it is there already.
large_dataset() {
  [ -f data/large/n180k/orders.jsonl ] || "$1" generate --stores 180000 --skus 2000 \
    --skus-per-store 100 --orders 1000000 --seed 11 --out data/large/n180k >&2
}

# The newest build of bench target $1 (cargo names it target/release/deps/$1-<hash>).
newest() {
  ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/"$1"-* | grep -v '\.d$' | head -1
}

# Waits until the server logging to $1 listens (at most $2 seconds, default 300) and prints its
# URL; prints the log and fails if it never does.
server_url() {
  for _ in $(seq 1 "${2:-300}"); do grep -q listening "$1" && break; sleep 1; done
  grep -o 'http://[0-9.:]*' "$1" | head -1 | grep . || { echo "the server did not start:" >&2; cat "$1" >&2; return 1; }
}

# CPU time (user + system, in clock ticks) of the process or thread whose /proc stat file is $1;
# nothing when it has gone.
cpu_ticks() {
  awk '{print $14 + $15}' "$1" 2>/dev/null || true
}
