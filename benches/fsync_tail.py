#!/usr/bin/env python3
"""How long a durable write waits on this machine's disk, tail included.

Every acknowledged reservation waits for one fdatasync (PostgreSQL's WAL flush, or the embedded
store's log): while one flush stalls, every order in flight waits with it, whatever the CPU.
`pg_test_fsync` reports averages; this reports the tail.

    benches/fsync_tail.py [DIR] [SECONDS]

Writes 8 KB and calls fdatasync in a loop on a scratch file in DIR (default, or empty:
PostgreSQL's WAL directory, else /tmp) for SECONDS (default 20), then prints the percentiles, how
many flushes took over 10 ms and how much of the run they took, and the ten longest with their
time into the run.
"""
import os
import sys
import time


def main() -> int:
    default = "/var/lib/postgresql/15/main/pg_wal"
    directory = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else ""
    if not directory:
        directory = default if os.access(default, os.W_OK) else "/tmp"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    path = os.path.join(directory, f"omniroute-fsync-tail-{os.getpid()}")
    block = b"x" * 8192
    took, slow = [], []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            os.pwrite(fd, block, (len(took) % 1000) * len(block))
            os.fdatasync(fd)
            elapsed = time.perf_counter() - t
            took.append(elapsed)
            if elapsed > 0.010:
                slow.append((t - start, elapsed))
    finally:
        os.close(fd)
        os.unlink(path)
    took.sort()
    n = len(took)

    def pct(p: float) -> float:
        return took[min(n - 1, int(n * p))] * 1e3

    print(f"fdatasync of 8 KB in {directory}: {n} in {seconds:g} s, p50 {pct(0.5):.3f} ms, "
          f"p99 {pct(0.99):.3f} ms, p99.9 {pct(0.999):.3f} ms, max {took[-1] * 1e3:.1f} ms")
    stalled = sum(e for _, e in slow)
    longest = sorted(sorted(slow, key=lambda s: -s[1])[:10])
    print(f"over 10 ms: {len(slow)} flushes, {stalled:.2f} s of the {seconds:g} s"
          + "".join(f"\n  at {at:6.2f} s: {e * 1e3:7.1f} ms" for at, e in longest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
