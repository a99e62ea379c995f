//! Min-cost flow by successive shortest paths, for the LP components that are networks.
//!
//! A component whose orders are all single-line and one unit is a transportation problem:
//! order -> stock cell -> store -> sink, plus order -> sink for the DC and "unfilled" options.
//! Its LP optimum is integral and equals the min-cost flow that sends one unit out of every
//! order. This module computes that flow directly, one order at a time: a Dijkstra search
//! from the order over the residual graph with reduced costs (Johnson potentials), stopped as
//! soon as the sink is settled, then one unit pushed along the path. Each augmentation keeps
//! the flow optimal for the orders routed so far, so the last one leaves it optimal for all;
//! the final potentials are an optimal dual solution (the shadow prices of the capacity arcs).
//!
//! # Runtime
//! One search per unit of supply; a search settles only the nodes closer (in reduced cost)
//! than the sink, which in a transportation problem is the neighbourhood of stores competing
//! for the order. Costs may be any finite numbers as long as every cycle of the input graph is
//! non-negative (the graphs built here are acyclic).

use radix_heap::RadixHeapMap;
use std::cmp::Reverse;

/// Reduced costs this far below zero are rounding, not a broken invariant.
const SLACK: f64 = 1e-9;

/// A directed graph with capacities and costs, and a flow on it.
#[derive(Clone, Debug, Default)]
pub struct MinCostFlow {
    /// Per arc (forward `2a`, reverse `2a + 1`): head node, residual capacity and cost.
    head: Vec<u32>,
    residual: Vec<i64>,
    cost: Vec<f64>,
    /// Adjacency by tail node (CSR), built by `seal`: each node's arcs are `adj[span.0..]`,
    /// those with residual capacity first, up to `span.1`; `pos` is each arc's place in `adj`.
    /// A search scans only those: a cell's list holds the reverse arc of every order that could
    /// use it, and only the few orders it serves have one with room.
    span: Vec<(u32, u32)>,
    adj: Vec<u32>,
    /// Head and cost of the arc in each slot of `adj`, beside it: a search reads a node's arcs
    /// in one sweep instead of one cache miss per arc.
    slot_head: Vec<u32>,
    slot_cost: Vec<f64>,
    pos: Vec<u32>,
    nodes: usize,
    /// Per node: potential and search scratch, in one record (one cache miss per node).
    node: Vec<NodeState>,
    epoch: u32,
    settled: Vec<u32>,
    /// Nodes to settle, nearest first. A search's distances never decrease, so a radix heap
    /// serves (a non-negative `f64` orders as its bits).
    heap: RadixHeapMap<Reverse<u64>, u32>,
    /// Nodes settled by all searches so far.
    work: u64,
}

/// A node's potential and search scratch (reused across searches: stamped, not cleared).
#[derive(Copy, Clone, Debug, Default)]
struct NodeState {
    potential: f64,
    dist: f64,
    /// The search that last reached the node, and the one that settled it.
    stamp: u32,
    done: u32,
    /// The arc the search reached the node by.
    pred: u32,
}

/// How [`MinCostFlow::route_within`] ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    All,
    /// A source cannot reach the sink.
    Unreachable,
    /// The searches outgrew the budget.
    OverBudget,
}

/// An arc handle returned by [`MinCostFlow::add_arc`] (and by the network simplex's).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Arc(u32);

impl Arc {
    /// The arc's number: arcs are numbered from 0 in the order they were added.
    pub fn index(self) -> u32 {
        self.0
    }
    /// The arc numbered `i`.
    pub fn from_index(i: u32) -> Arc {
        Arc(i)
    }
}

impl MinCostFlow {
    /// An empty graph on `nodes` nodes.
    pub fn new(nodes: usize) -> MinCostFlow {
        MinCostFlow { nodes, ..MinCostFlow::default() }
    }

    /// Room for `arcs` arcs.
    pub fn reserve(&mut self, arcs: usize) {
        self.head.reserve(2 * arcs);
        self.residual.reserve(2 * arcs);
        self.cost.reserve(2 * arcs);
    }

    /// Adds an arc `from -> to` with capacity `cap` and cost per unit `cost`.
    pub fn add_arc(&mut self, from: usize, to: usize, cap: i64, cost: f64) -> Arc {
        debug_assert!(from < self.nodes && to < self.nodes && cap >= 0 && cost.is_finite());
        let a = Arc((self.head.len() / 2) as u32);
        self.head.extend([to as u32, from as u32]);
        self.residual.extend([cap, 0]);
        self.cost.extend([cost, -cost]);
        a
    }

    /// Builds the adjacency lists; no arc may be added afterwards.
    fn seal(&mut self) {
        let mut count = vec![0u32; self.nodes + 1];
        for e in 0..self.head.len() {
            count[self.tail(e) + 1] += 1;
        }
        for v in 0..self.nodes {
            count[v + 1] += count[v];
        }
        let mut at = count.clone();
        let mut adj = vec![0u32; self.head.len()];
        for e in 0..self.head.len() {
            let t = self.tail(e);
            adj[at[t] as usize] = e as u32;
            at[t] += 1;
        }
        // Arcs with room first in each node's list.
        let mut span = vec![(0u32, 0u32); self.nodes];
        let mut pos = vec![0u32; self.head.len()];
        for v in 0..self.nodes {
            let (lo, hi) = (count[v] as usize, count[v + 1] as usize);
            adj[lo..hi].sort_by_key(|&e| self.residual[e as usize] <= 0);
            span[v] = (
                lo as u32,
                lo as u32 + adj[lo..hi].iter().filter(|&&e| self.residual[e as usize] > 0).count() as u32,
            );
            for k in lo..hi {
                pos[adj[k] as usize] = k as u32;
            }
        }
        self.slot_head = adj.iter().map(|&e| self.head[e as usize]).collect();
        self.slot_cost = adj.iter().map(|&e| self.cost[e as usize]).collect();
        self.span = span;
        self.adj = adj;
        self.pos = pos;
        let n = self.nodes;
        self.node = vec![NodeState::default(); n];
    }

    fn tail(&self, e: usize) -> usize {
        self.head[e ^ 1] as usize
    }

    /// Sends one unit from each of `sources` (in that order) to `sink`, each along a cheapest
    /// path of the residual graph. Returns `false` (and stops) when a source cannot reach the
    /// sink. The arc costs must be non-negative: potentials start at zero.
    #[cfg(test)]
    pub fn route_units(&mut self, sources: impl IntoIterator<Item = usize>, sink: usize) -> bool {
        self.route_within(sources, sink, u64::MAX) == Routed::All
    }

    /// [`Self::route_units`], giving up once the searches have settled more than `budget`
    /// nodes in all (the flow is then partial and of no use).
    pub fn route_within(
        &mut self,
        sources: impl IntoIterator<Item = usize>,
        sink: usize,
        budget: u64,
    ) -> Routed {
        debug_assert!(self.cost.iter().step_by(2).all(|&c| c >= 0.0));
        self.seal();
        for s in sources {
            if !self.augment(s, sink) {
                return Routed::Unreachable;
            }
            if self.work > budget {
                return Routed::OverBudget;
            }
        }
        Routed::All
    }

    /// One shortest-path search from `s` and one unit pushed to `t`.
    fn augment(&mut self, s: usize, t: usize) -> bool {
        self.epoch += 1;
        let epoch = self.epoch;
        self.settled.clear();
        let mut heap = std::mem::take(&mut self.heap);
        heap.clear();
        self.node[s].dist = 0.0;
        self.node[s].stamp = epoch;
        self.node[s].pred = u32::MAX;
        heap.push(Reverse(0f64.to_bits()), s as u32);
        let mut reached = false;
        // The sink's best distance so far: reduced costs are non-negative, so a node no nearer
        // cannot shorten it, and is settled (and re-priced) only after the sink.
        let mut to_sink = f64::INFINITY;
        while let Some((Reverse(bits), u)) = heap.pop() {
            let (d, u) = (f64::from_bits(bits), u as usize);
            let nu = &mut self.node[u];
            if nu.done == epoch || d > nu.dist {
                continue;
            }
            nu.done = epoch;
            let pu = nu.potential;
            self.settled.push(u as u32);
            self.work += 1;
            if u == t {
                reached = true;
                break;
            }
            let (lo, hi) = self.span[u];
            for k in lo as usize..hi as usize {
                let v = self.slot_head[k] as usize;
                let nv = &mut self.node[v];
                if nv.done == epoch {
                    continue;
                }
                let nd = d + (self.slot_cost[k] + pu - nv.potential).max(0.0);
                if nd >= to_sink {
                    continue;
                }
                if nv.stamp != epoch || nd < nv.dist {
                    nv.stamp = epoch;
                    nv.dist = nd;
                    nv.pred = self.adj[k];
                    if v == t {
                        to_sink = nd;
                    }
                    heap.push(Reverse(nd.to_bits()), v as u32);
                }
            }
        }
        self.heap = heap;
        if !reached {
            return false;
        }
        // Johnson potentials, shifted so that only settled nodes move.
        let dt = self.node[t].dist;
        for &v in &self.settled {
            let nv = &mut self.node[v as usize];
            nv.potential += nv.dist - dt;
        }
        let mut v = t;
        while v != s {
            let e = self.node[v].pred as usize;
            self.residual[e] -= 1;
            if self.residual[e] == 0 {
                self.set_live(e, false);
            }
            self.residual[e ^ 1] += 1;
            if self.residual[e ^ 1] == 1 {
                self.set_live(e ^ 1, true);
            }
            v = self.tail(e);
        }
        true
    }

    /// Moves arc `e` into (`live`) or out of its tail's arcs with room.
    fn set_live(&mut self, e: usize, live: bool) {
        let t = self.tail(e);
        let k = self.pos[e] as usize;
        let j = if live {
            let j = self.span[t].1 as usize;
            self.span[t].1 += 1;
            j
        } else {
            self.span[t].1 -= 1;
            self.span[t].1 as usize
        };
        let other = self.adj[j];
        self.adj.swap(j, k);
        self.slot_head.swap(j, k);
        self.slot_cost.swap(j, k);
        self.pos[other as usize] = k as u32;
        self.pos[e] = j as u32;
    }

    /// Units flowing on arc `a`.
    pub fn flow(&self, a: Arc) -> i64 {
        self.residual[2 * a.0 as usize + 1]
    }

    /// The reduced cost of arc `a` under the final potentials: non-negative when the arc has
    /// room left, non-positive when it is full. For a full capacity arc it is the dual value of
    /// its capacity (`-` the saving of one more unit).
    pub fn reduced_cost(&self, a: Arc) -> f64 {
        let e = 2 * a.0 as usize;
        let r = self.cost[e] + self.node[self.tail(e)].potential - self.node[self.head[e] as usize].potential;
        if r.abs() <= SLACK {
            0.0
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use proptest::prelude::*;

    /// Brute force: every way of giving each source one of its arcs, within capacities.
    /// Graph shape: source i -> middle node (cap 1, cost) or -> sink (fallback); middle -> sink
    /// with a capacity.
    fn brute(costs: &[Vec<(usize, f64)>], fallback: &[f64], caps: &[i64]) -> f64 {
        fn go(i: usize, costs: &[Vec<(usize, f64)>], fallback: &[f64], left: &mut [i64], acc: f64) -> f64 {
            if i == costs.len() {
                return acc;
            }
            let mut best = go(i + 1, costs, fallback, left, acc + fallback[i]);
            for &(m, c) in &costs[i] {
                if left[m] > 0 {
                    left[m] -= 1;
                    best = best.min(go(i + 1, costs, fallback, left, acc + c));
                    left[m] += 1;
                }
            }
            best
        }
        go(0, costs, fallback, &mut caps.to_vec(), 0.0)
    }

    proptest! {
        #![proptest_config(testkit::seeded(64))]

        #[test]
        fn routes_every_unit_at_least_cost_with_consistent_duals(
            caps in prop::collection::vec(0i64..3, 1..5),
            raw in prop::collection::vec((prop::collection::vec((0usize..5, 0.0f64..100.0), 0..4), 0.0f64..150.0), 1..7),
        ) {
            let m = caps.len();
            let costs: Vec<Vec<(usize, f64)>> =
                raw.iter().map(|(arcs, _)| arcs.iter().map(|&(k, c)| (k % m, c)).collect()).collect();
            let fallback: Vec<f64> = raw.iter().map(|r| r.1).collect();
            let n = costs.len();
            let sink = n + m;
            let mut g = MinCostFlow::new(n + m + 1);
            let mut arcs = Vec::new();
            for (i, list) in costs.iter().enumerate() {
                g.add_arc(i, sink, 1, fallback[i]);
                for &(k, c) in list {
                    arcs.push((g.add_arc(i, n + k, 1, c), c));
                }
            }
            let cap_arcs: Vec<Arc> = caps.iter().enumerate().map(|(k, &c)| g.add_arc(n + k, sink, c, 0.0)).collect();
            prop_assert!(g.route_units(0..n, sink));
            let mut total: f64 = arcs.iter().map(|&(a, c)| g.flow(a) as f64 * c).sum();
            // The sources with no flow on their middle arcs took the fallback.
            let mut k = 0;
            for (i, list) in costs.iter().enumerate() {
                let served: i64 = arcs[k..k + list.len()].iter().map(|(a, _)| g.flow(*a)).sum();
                prop_assert!(served <= 1);
                if served == 0 {
                    total += fallback[i];
                }
                k += list.len();
            }
            for (k, &a) in cap_arcs.iter().enumerate() {
                prop_assert!(g.flow(a) <= caps[k]);
                let r = g.reduced_cost(a);
                // Complementary slackness: a negative reduced cost only on a full arc.
                prop_assert!(r >= 0.0 || g.flow(a) == caps[k], "arc {k}: {r}");
            }
            let best = brute(&costs, &fallback, &caps);
            prop_assert!((total - best).abs() <= 1e-6 * best.max(1.0), "flow {total} vs brute force {best}");
        }
    }

    /// Runs `$body` with `$g` a fresh graph of each solver on `$n` nodes.
    macro_rules! each_solver {
        ($g:ident, $n:expr, $body:block) => {{
            {
                let mut $g = MinCostFlow::new($n);
                $body
            }
            {
                let mut $g = super::super::simplex::NetworkSimplex::new($n);
                $body
            }
        }};
    }

    /// Two sources both nearest to a middle node of capacity 1; the second pays 10 more
    /// elsewhere, so one more unit of capacity saves 10: the capacity arc's reduced cost is -10.
    #[test]
    fn full_arc_reduced_cost_is_the_saving_of_one_more_unit() {
        each_solver!(g, 5, {
            let (near, far, sink) = (2, 3, 4);
            for s in 0..2 {
                g.add_arc(s, near, 1, 1.0);
                g.add_arc(s, far, 1, 11.0);
                g.add_arc(s, sink, 1, 500.0);
            }
            let a = g.add_arc(near, sink, 1, 0.0);
            let b = g.add_arc(far, sink, 5, 0.0);
            assert!(g.route_units([0, 1], sink));
            assert_eq!((g.flow(a), g.flow(b)), (1, 1));
            assert!((g.reduced_cost(a) + 10.0).abs() < 1e-9, "{}", g.reduced_cost(a));
            assert_eq!(g.reduced_cost(b), 0.0);
        });
    }

    #[test]
    fn a_source_that_cannot_reach_the_sink_is_reported() {
        each_solver!(g, 3, {
            g.add_arc(0, 1, 1, 0.0);
            assert!(!g.route_units([0], 2));
        });
        // A chain that ends short of the sink (the simplex's greedy start takes this shape).
        each_solver!(g, 4, {
            g.add_arc(0, 1, 1, 0.0);
            g.add_arc(1, 2, 1, 0.0);
            assert!(!g.route_units([0], 3));
        });
    }
}
