#!/usr/bin/env python3
"""Peer for the batch-optimizer benchmark: OR-tools min-cost flow on the instance that
`omniroute optimize --export-mcf FILE` wrote (single-line, one-unit orders).

File format (little-endian int64): nodes, arcs, then tails[arcs], heads[arcs], capacities[arcs],
costs[arcs] (micro-units: cost x 10^6), supplies[nodes]. Node 0 is the sink.

Prints one JSON line: objective (in cost units), orders sent to the fallback, seconds to build
and to solve, peak RSS.
"""
import json
import resource
import sys
import time

import numpy as np
from ortools.graph.python import min_cost_flow


def main(path: str) -> None:
    t0 = time.perf_counter()
    head = np.fromfile(path, dtype="<i8", count=2)
    nodes, arcs = int(head[0]), int(head[1])
    data = np.fromfile(path, dtype="<i8", offset=16)
    tails, heads, caps, costs = (data[i * arcs:(i + 1) * arcs] for i in range(4))
    supplies = data[4 * arcs:4 * arcs + nodes]
    t_read = time.perf_counter() - t0

    t1 = time.perf_counter()
    mcf = min_cost_flow.SimpleMinCostFlow()
    mcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    mcf.set_nodes_supplies(np.arange(nodes), supplies)
    t_build = time.perf_counter() - t1

    t2 = time.perf_counter()
    status = mcf.solve()
    t_solve = time.perf_counter() - t2
    if status != mcf.OPTIMAL:
        sys.exit(f"min-cost flow status {status}")
    flows = mcf.flows(np.arange(arcs))
    # Order -> sink arcs are the fallback (DC or unfilled).
    fallback = int(flows[(heads == 0) & (tails <= int(-supplies[0]))].sum())
    print(json.dumps({
        "peer": "ortools SimpleMinCostFlow " + __import__("ortools").__version__,
        "nodes": nodes,
        "arcs": arcs,
        "objective": mcf.optimal_cost() / 1e6,
        "fallback_orders": fallback,
        "read_s": round(t_read, 3),
        "build_s": round(t_build, 3),
        "solve_s": round(t_solve, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
