//! Min-cost flow by the primal network simplex, for the large network components of the LP.
//!
//! The same problem as [`super::flow`] (one unit out of each source, every unit to the sink, at
//! least cost) solved another way. Successive shortest paths pushes one unit per search, and when
//! store capacity binds each search has to walk back through the orders that already filled
//! nearby stores: on a component of 100,000 orders that is most of the component per search. The
//! network simplex instead keeps a spanning tree of the residual graph and its node potentials,
//! and pivots one arc with a negative reduced cost into the tree at a time; a pivot touches one
//! cycle and the subtree it re-hangs, whatever binds.
//!
//! The implementation follows LEMON's `NetworkSimplex` (Kovács, "Minimum-cost flow algorithms:
//! an experimental evaluation", 2015): an artificial root joined to every node, block search
//! for the entering arc (blocks of about `sqrt(arcs)`), and the leaving arc chosen so that the
//! tree stays strongly feasible (Cunningham's rule: the last blocking arc of the cycle, walked
//! from the join node in the direction of flow), which rules out cycling on the degenerate
//! pivots transportation problems are full of. The tree is kept as parent pointers, depths and
//! child lists; a pivot re-roots the path it cuts and shifts the potentials of the re-hung
//! subtree. Costs are `f64`; when no reduced cost is below `-EPS` the flow is optimal and the
//! potentials, recomputed along the final tree, are an optimal dual solution.

use super::flow::Arc;

/// Reduced costs above `-EPS` do not price an arc in: rounding, not an improvement.
const EPS: f64 = 1e-9;
const NONE: u32 = u32::MAX;
/// Arc states: at its lower bound, at its upper bound, in the tree.
const LOWER: i8 = 1;
const UPPER: i8 = -1;
const TREE: i8 = 0;
/// Capacity of the artificial arcs.
const INF: i64 = i64::MAX / 4;

/// A directed graph with capacities and costs, and a flow on it.
#[derive(Clone, Debug, Default)]
pub struct NetworkSimplex {
    nodes: usize,
    /// Arcs: the real ones as added, then one artificial arc per node (to or from the root).
    source: Vec<u32>,
    target: Vec<u32>,
    cap: Vec<i64>,
    cost: Vec<f64>,
    flow: Vec<i64>,
    state: Vec<i8>,
    /// Per node (the root is `nodes`): potential, tree parent, the tree arc to it, whether that
    /// arc points up (node -> parent), depth, and the child lists.
    pi: Vec<f64>,
    parent: Vec<u32>,
    pred: Vec<u32>,
    up: Vec<bool>,
    depth: Vec<u32>,
    first_child: Vec<u32>,
    next_sib: Vec<u32>,
    prev_sib: Vec<u32>,
    stack: Vec<u32>,
    path: Vec<u32>,
}

impl NetworkSimplex {
    /// An empty graph on `nodes` nodes.
    pub fn new(nodes: usize) -> NetworkSimplex {
        NetworkSimplex { nodes, ..NetworkSimplex::default() }
    }

    /// Room for `arcs` arcs.
    pub fn reserve(&mut self, arcs: usize) {
        self.source.reserve(arcs + self.nodes);
        self.target.reserve(arcs + self.nodes);
        self.cap.reserve(arcs + self.nodes);
        self.cost.reserve(arcs + self.nodes);
    }

    /// Adds an arc `from -> to` with capacity `cap` and cost per unit `cost`.
    pub fn add_arc(&mut self, from: usize, to: usize, cap: i64, cost: f64) -> Arc {
        debug_assert!(from < self.nodes && to < self.nodes && cap >= 0 && cost.is_finite());
        let a = Arc::from_index(self.source.len() as u32);
        self.source.push(from as u32);
        self.target.push(to as u32);
        self.cap.push(cap);
        self.cost.push(cost);
        a
    }

    /// Sends one unit from each of `sources` to `sink` at least total cost. Returns `false` when
    /// some unit cannot reach the sink.
    pub fn route_units(&mut self, sources: impl IntoIterator<Item = usize>, sink: usize) -> bool {
        let mut supply = vec![0i64; self.nodes];
        for s in sources {
            supply[s] += 1;
            supply[sink] -= 1;
        }
        self.solve(&supply)
    }

    /// Solves for node supplies summing to zero (positive: units leave the node).
    fn solve(&mut self, supply: &[i64]) -> bool {
        let n = self.nodes;
        let m = self.source.len();
        let root = n as u32;
        self.pi = vec![0.0; n + 1];
        self.parent = vec![root; n + 1];
        self.pred = vec![NONE; n + 1];
        self.up = vec![true; n + 1];
        self.depth = vec![1; n + 1];
        self.first_child = vec![NONE; n + 1];
        self.next_sib = vec![NONE; n + 1];
        self.prev_sib = vec![NONE; n + 1];
        self.parent[n] = NONE;
        self.depth[n] = 0;
        if !self.warm_start(supply) {
            self.cold_start(supply);
        }
        let block = ((m as f64).sqrt() as usize).max(10);
        let mut next = 0;
        while let Some(e) = self.entering(m, block, &mut next) {
            self.pivot(e);
        }
        self.set_from_root();
        let feasible = self.flow[m..].iter().all(|&f| f == 0);
        // Leave the arrays holding the real arcs only.
        self.source.truncate(m);
        self.target.truncate(m);
        self.cap.truncate(m);
        self.cost.truncate(m);
        self.flow.truncate(m);
        self.state.truncate(m);
        feasible
    }

    /// LEMON's start: every unit on an artificial arc through the root, dearer than any simple
    /// path of real arcs, so that units leave them as soon as a real path exists.
    fn cold_start(&mut self, supply: &[i64]) {
        let (n, m, root) = (self.nodes, self.source.len(), self.nodes as u32);
        let max_cost = self.cost.iter().fold(0.0f64, |a, &c| a.max(c.abs()));
        let art = (max_cost + 1.0) * (n as f64 + 1.0);
        self.flow = vec![0; m];
        self.state = vec![LOWER; m];
        for (u, &b) in supply.iter().enumerate().take(n) {
            let e = self.source.len() as u32;
            self.pred[u] = e;
            self.flow.push(b.abs());
            self.state.push(TREE);
            self.cap.push(INF);
            if b >= 0 {
                self.source.push(u as u32);
                self.target.push(root);
                self.cost.push(0.0);
                self.up[u] = true;
            } else {
                self.source.push(root);
                self.target.push(u as u32);
                self.cost.push(art);
                self.up[u] = false;
                self.pi[u] = art;
            }
            self.link(u as u32, root);
        }
    }

    /// A start from a greedy flow, when the graph has the transportation shape the planner
    /// builds: sources whose arcs lead to nodes with at most one arc on each (order -> cell ->
    /// store -> sink). Each unit takes its cheapest path with room left; the tree hangs every
    /// node by an arc that can still carry more toward the root (strongly feasible), or by an
    /// artificial arc to the root that no flow can use (the root has no arc out). Returns
    /// `false`, changing nothing, when the graph has another shape.
    fn warm_start(&mut self, supply: &[i64]) -> bool {
        let (n, m, root) = (self.nodes, self.source.len(), self.nodes as u32);
        let mut first = vec![0u32; n + 1];
        for &s in &self.source {
            first[s as usize + 1] += 1;
        }
        for u in 0..n {
            first[u + 1] += first[u];
        }
        let mut at = first.clone();
        let mut out = vec![0u32; m];
        for (e, &s) in self.source.iter().enumerate() {
            out[at[s as usize] as usize] = e as u32;
            at[s as usize] += 1;
        }
        // The one way on from each node without supply, and the cost of the chain from it.
        let mut next = vec![NONE; n];
        for u in 0..n {
            if supply[u] <= 0 {
                match first[u + 1] - first[u] {
                    0 => {}
                    1 => next[u] = out[first[u] as usize],
                    _ => return false,
                }
            } else if (first[u]..first[u + 1])
                .any(|k| supply[self.target[out[k as usize] as usize] as usize] > 0)
            {
                return false;
            }
        }
        if self.target.iter().any(|&t| supply[t as usize] > 0) {
            return false; // An arc into a source.
        }
        let mut chain = vec![f64::NAN; n];
        for u in 0..n {
            if supply[u] > 0 || !chain[u].is_nan() {
                continue;
            }
            // Walk to the chain's end (or a node already costed), then cost it backwards.
            let mut walk = vec![u];
            let mut v = u;
            while next[v] != NONE {
                v = self.target[next[v] as usize] as usize;
                if !chain[v].is_nan() {
                    break;
                }
                if walk.len() > n {
                    return false; // A cycle of nodes without supply.
                }
                walk.push(v);
            }
            for &w in walk.iter().rev() {
                chain[w] = match next[w] {
                    NONE => 0.0,
                    a => self.cost[a as usize] + chain[self.target[a as usize] as usize],
                };
            }
        }
        // Greedy, cheapest paths first over all sources: each unit takes the cheapest path
        // with room left among those not yet taken by cheaper units.
        let mut flow = vec![0i64; m];
        let mut demand: Vec<i64> = supply.iter().map(|&b| (-b).max(0)).collect();
        let mut left: Vec<i64> = supply.iter().map(|&b| b.max(0)).collect();
        let room = |flow: &[i64], demand: &[i64], mut v: usize| loop {
            match next[v] {
                NONE => return demand[v] > 0,
                a if flow[a as usize] >= self.cap[a as usize] => return false,
                a => v = self.target[a as usize] as usize,
            }
        };
        let mut by_cost: Vec<(f64, u32)> = (0..m)
            .filter(|&e| supply[self.source[e] as usize] > 0)
            .map(|e| (self.cost[e] + chain[self.target[e] as usize], e as u32))
            .collect();
        by_cost.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, e) in &by_cost {
            let e = e as usize;
            let u = self.source[e] as usize;
            while left[u] > 0 && flow[e] < self.cap[e] && room(&flow, &demand, self.target[e] as usize) {
                left[u] -= 1;
                let mut a = e;
                loop {
                    flow[a] += 1;
                    let h = self.target[a] as usize;
                    match next[h] {
                        NONE => {
                            demand[h] -= 1;
                            break;
                        }
                        x => a = x as usize,
                    }
                }
            }
        }
        if left.iter().any(|&l| l != 0) {
            return false;
        }
        if demand.iter().any(|&d| d != 0) {
            return false;
        }
        // Tree arcs: chains where they have room, each source by its cheapest arc with room.
        for u in 0..n {
            let a = if supply[u] > 0 {
                (first[u]..first[u + 1])
                    .map(|k| out[k as usize] as usize)
                    .filter(|&e| flow[e] < self.cap[e])
                    .min_by(|&x, &y| {
                        let kx = self.cost[x] + chain[self.target[x] as usize];
                        let ky = self.cost[y] + chain[self.target[y] as usize];
                        kx.total_cmp(&ky)
                    })
                    .map_or(NONE, |e| e as u32)
            } else {
                match next[u] {
                    a if a != NONE && flow[a as usize] < self.cap[a as usize] => a,
                    _ => NONE,
                }
            };
            self.pred[u] = a;
        }
        // Every arc off the tree must sit at a bound.
        let mut in_tree = vec![false; m];
        for u in 0..n {
            if self.pred[u] != NONE {
                in_tree[self.pred[u] as usize] = true;
            }
        }
        if (0..m).any(|e| !in_tree[e] && flow[e] != 0 && flow[e] != self.cap[e]) {
            self.pred.iter_mut().for_each(|p| *p = NONE);
            return false;
        }
        self.state = (0..m)
            .map(|e| {
                if in_tree[e] {
                    TREE
                } else if flow[e] == 0 {
                    LOWER
                } else {
                    UPPER
                }
            })
            .collect();
        self.flow = flow;
        for u in 0..n {
            let e = self.source.len() as u32;
            self.source.push(u as u32);
            self.target.push(root);
            self.cost.push(0.0);
            self.cap.push(INF);
            self.flow.push(0);
            if self.pred[u] == NONE {
                self.pred[u] = e;
                self.state.push(TREE);
            } else {
                self.state.push(LOWER);
            }
            self.up[u] = true;
        }
        for u in 0..n {
            let p = self.target[self.pred[u] as usize];
            self.link(u as u32, p);
        }
        self.set_from_root();
        true
    }

    /// The reduced cost of arc `e` signed so that negative means "pricing it in pays".
    fn reduced(&self, e: usize) -> f64 {
        f64::from(self.state[e])
            * (self.cost[e] + self.pi[self.source[e] as usize] - self.pi[self.target[e] as usize])
    }

    /// Block search: the most negative reduced cost in the first block (from `next`, cyclically)
    /// that has one.
    fn entering(&self, m: usize, block: usize, next: &mut usize) -> Option<usize> {
        let mut best = -EPS;
        let mut pick = None;
        let mut left = block;
        for k in 0..m {
            let mut e = *next + k;
            if e >= m {
                e -= m;
            }
            let c = self.reduced(e);
            if c < best {
                best = c;
                pick = Some(e);
            }
            left -= 1;
            if left == 0 {
                if pick.is_some() {
                    *next = if e + 1 == m { 0 } else { e + 1 };
                    return pick;
                }
                left = block;
            }
        }
        pick
    }

    /// Adds `v` to `p`'s children.
    fn link(&mut self, v: u32, p: u32) {
        let f = self.first_child[p as usize];
        self.next_sib[v as usize] = f;
        self.prev_sib[v as usize] = NONE;
        if f != NONE {
            self.prev_sib[f as usize] = v;
        }
        self.first_child[p as usize] = v;
        self.parent[v as usize] = p;
    }

    /// Removes `v` from its parent's children.
    fn unlink(&mut self, v: u32) {
        let (prev, next) = (self.prev_sib[v as usize], self.next_sib[v as usize]);
        if prev != NONE {
            self.next_sib[prev as usize] = next;
        } else {
            self.first_child[self.parent[v as usize] as usize] = next;
        }
        if next != NONE {
            self.prev_sib[next as usize] = prev;
        }
    }

    /// Residual room along the cycle on the tree arc above `u`, when the cycle's flow runs
    /// down into `u` (`down`) or up out of it.
    fn room(&self, u: usize, down: bool) -> i64 {
        let e = self.pred[u] as usize;
        // Flow running the arc's way grows it; the other way shrinks it.
        if self.up[u] != down {
            self.cap[e] - self.flow[e]
        } else {
            self.flow[e]
        }
    }

    /// Prices arc `e` into the tree: pushes flow around its cycle and hangs the cut-off subtree
    /// from it.
    fn pivot(&mut self, e: usize) {
        let (src, tgt) = (self.source[e] as usize, self.target[e] as usize);
        // Flow runs first -> second on the entering arc, then second up to the join, and down
        // from the join to first.
        let (first, second) = if self.state[e] == LOWER { (src, tgt) } else { (tgt, src) };
        let join = {
            let (mut a, mut b) = (first, second);
            while self.depth[a] > self.depth[b] {
                a = self.parent[a] as usize;
            }
            while self.depth[b] > self.depth[a] {
                b = self.parent[b] as usize;
            }
            while a != b {
                a = self.parent[a] as usize;
                b = self.parent[b] as usize;
            }
            a
        };
        // The leaving arc: the last blocking one from the join in the direction of flow
        // (strictly smaller on the first side, ties taken on the second).
        let mut delta = self.cap[e];
        let mut out = NONE as usize;
        let mut side = 0;
        let mut u = first;
        while u != join {
            let d = self.room(u, true);
            if d < delta {
                delta = d;
                out = u;
                side = 1;
            }
            u = self.parent[u] as usize;
        }
        let mut u = second;
        while u != join {
            let d = self.room(u, false);
            if d <= delta {
                delta = d;
                out = u;
                side = 2;
            }
            u = self.parent[u] as usize;
        }
        if delta > 0 {
            let val = i64::from(self.state[e]) * delta;
            self.flow[e] += val;
            // Tree arcs on the source side carry flow toward the source, on the target side
            // away from the target.
            let mut u = src;
            while u != join {
                let a = self.pred[u] as usize;
                self.flow[a] += if self.up[u] { -val } else { val };
                u = self.parent[u] as usize;
            }
            let mut u = tgt;
            while u != join {
                let a = self.pred[u] as usize;
                self.flow[a] += if self.up[u] { val } else { -val };
                u = self.parent[u] as usize;
            }
        }
        if side == 0 {
            // The entering arc blocks itself: it moves to its other bound.
            self.state[e] = -self.state[e];
            return;
        }
        let leaving = self.pred[out] as usize;
        self.state[leaving] = if self.flow[leaving] == 0 { LOWER } else { UPPER };
        self.state[e] = TREE;
        let (u_in, v_in) = if side == 1 { (first, second) } else { (second, first) };
        // Shift that makes the entering arc's reduced cost zero, applied to the re-hung subtree.
        let rc = self.cost[e] + self.pi[src] - self.pi[tgt];
        let sigma = if u_in == src { -rc } else { rc };
        // Re-root the path u_in .. out: each node hangs from the one before it.
        self.path.clear();
        let mut u = u_in;
        loop {
            self.path.push(u as u32);
            if u == out {
                break;
            }
            u = self.parent[u] as usize;
        }
        let (mut new_parent, mut new_pred, mut new_up) = (v_in as u32, e as u32, src == u_in);
        for k in 0..self.path.len() {
            let w = self.path[k];
            let (old_pred, old_up) = (self.pred[w as usize], self.up[w as usize]);
            self.unlink(w);
            self.link(w, new_parent);
            self.pred[w as usize] = new_pred;
            self.up[w as usize] = new_up;
            new_parent = w;
            new_pred = old_pred;
            new_up = !old_up;
        }
        // Potentials and depths of the subtree now under v_in.
        self.stack.clear();
        self.stack.push(u_in as u32);
        while let Some(w) = self.stack.pop() {
            let w = w as usize;
            self.pi[w] += sigma;
            self.depth[w] = self.depth[self.parent[w] as usize] + 1;
            let mut c = self.first_child[w];
            while c != NONE {
                self.stack.push(c);
                c = self.next_sib[c as usize];
            }
        }
    }

    /// Potentials and depths set from the root down along the tree: at a warm start, and at the
    /// end, free of the rounding that pivots accumulated (the root's potential is zero).
    fn set_from_root(&mut self) {
        let root = self.nodes;
        self.pi[root] = 0.0;
        self.stack.clear();
        self.stack.push(root as u32);
        while let Some(w) = self.stack.pop() {
            let w = w as usize;
            if w != root {
                let (a, p) = (self.pred[w] as usize, self.parent[w] as usize);
                // Tree arcs have zero reduced cost: cost + pi[source] - pi[target] = 0.
                self.pi[w] = if self.up[w] { self.pi[p] - self.cost[a] } else { self.pi[p] + self.cost[a] };
                self.depth[w] = self.depth[p] + 1;
            }
            let mut c = self.first_child[w];
            while c != NONE {
                self.stack.push(c);
                c = self.next_sib[c as usize];
            }
        }
    }

    /// Units flowing on arc `a`.
    pub fn flow(&self, a: Arc) -> i64 {
        self.flow[a.index() as usize]
    }

    /// The reduced cost of arc `a` under the final potentials: non-negative when the arc has
    /// room left, non-positive when it is full. For a full capacity arc it is the dual value of
    /// its capacity (`-` the saving of one more unit).
    pub fn reduced_cost(&self, a: Arc) -> f64 {
        let e = a.index() as usize;
        let r = self.cost[e] + self.pi[self.source[e] as usize] - self.pi[self.target[e] as usize];
        if r.abs() <= EPS * (1.0 + self.cost[e].abs()) {
            0.0
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::flow::MinCostFlow;
    use super::*;
    use crate::testkit;
    use proptest::prelude::*;

    /// A transportation instance: sources with arcs to middle nodes (cap 1) and a fallback to
    /// the sink, middle nodes to the sink with capacities, and optionally arcs between middle
    /// nodes (a shape the greedy start does not take: the simplex starts from the artificial
    /// tree).
    #[derive(Debug, Clone)]
    struct Case {
        caps: Vec<i64>,
        /// Per source: (middle node, cost) arcs and the fallback's cost.
        sources: Vec<(Vec<(usize, f64)>, f64)>,
        /// Middle -> middle arcs: (from, to, capacity, cost).
        links: Vec<(usize, usize, i64, f64)>,
    }

    fn case() -> impl Strategy<Value = Case> {
        (1usize..12, 1usize..40, 0usize..2).prop_flat_map(|(m, n, linked)| {
            // Costs drawn from few values make ties (degenerate pivots) common.
            let cost = prop_oneof![(0u8..4).prop_map(|c| f64::from(c) * 5.0), 0.0f64..100.0];
            (
                prop::collection::vec(0i64..4, m),
                prop::collection::vec(
                    (
                        prop::collection::vec((0..m, cost.clone()), 0..5),
                        prop_oneof![Just(500.0), 0.0f64..150.0],
                    ),
                    n,
                ),
                prop::collection::vec((0..m, 0..m, 0i64..3, cost), linked * 6),
            )
                .prop_map(|(caps, sources, links)| Case { caps, sources, links })
        })
    }

    /// Builds `c` into a graph; returns each arc with its cost and ends.
    fn build<G>(
        c: &Case,
        g: &mut G,
        mut add: impl FnMut(&mut G, usize, usize, i64, f64) -> u32,
    ) -> Vec<(u32, f64, usize, usize, i64)> {
        let (n, m) = (c.sources.len(), c.caps.len());
        let sink = n + m;
        let mut arcs = Vec::new();
        let mut push = |g: &mut G, from: usize, to: usize, cap: i64, cost: f64| {
            arcs.push((add(g, from, to, cap, cost), cost, from, to, cap));
        };
        for (i, (list, fallback)) in c.sources.iter().enumerate() {
            push(g, i, sink, 1, *fallback);
            for &(k, cost) in list {
                push(g, i, n + k, 1, cost);
            }
        }
        for (k, &cap) in c.caps.iter().enumerate() {
            push(g, n + k, sink, cap, 0.0);
        }
        for &(a, b, cap, cost) in &c.links {
            push(g, n + a, n + b, cap, cost);
        }
        arcs
    }

    /// Solves `c` with both solvers; checks the simplex's flow (bounds, conservation) and its
    /// duals (complementary slackness); returns the two optimal costs and the simplex's
    /// capacity duals.
    fn both(c: &Case) -> Result<(f64, f64, Vec<f64>), TestCaseError> {
        let (n, m) = (c.sources.len(), c.caps.len());
        let sink = n + m;
        let mut ns = NetworkSimplex::new(n + m + 1);
        let arcs = build(c, &mut ns, |g, a, b, cap, cost| g.add_arc(a, b, cap, cost).index());
        let mut ssp = MinCostFlow::new(n + m + 1);
        let paths = build(c, &mut ssp, |g, a, b, cap, cost| g.add_arc(a, b, cap, cost).index());
        prop_assert!(ns.route_units(0..n, sink));
        prop_assert!(ssp.route_units(0..n, sink));
        let mut out = vec![0i64; n + m + 1];
        let mut inflow = vec![0i64; n + m + 1];
        let (mut a_cost, mut b_cost) = (0.0, 0.0);
        let mut duals = Vec::new();
        for (&(a, cost, from, to, cap), &(b, ..)) in arcs.iter().zip(&paths) {
            let a = Arc::from_index(a);
            let f = ns.flow(a);
            prop_assert!(f >= 0 && f <= cap, "flow {f} out of bounds");
            out[from] += f;
            inflow[to] += f;
            a_cost += f as f64 * cost;
            b_cost += ssp.flow(Arc::from_index(b)) as f64 * cost;
            // Complementary slackness: negative reduced cost only on a full arc, positive only
            // on an empty one.
            let r = ns.reduced_cost(a);
            prop_assert!(r >= 0.0 || f == cap, "full arc check: {r} at flow {f}");
            prop_assert!(r <= 0.0 || f == 0, "empty arc check: {r} at flow {f}");
            if from >= n && to == sink {
                duals.push(r.min(0.0));
            }
        }
        // Conservation: one unit out of every source, all of them into the sink.
        for i in 0..n {
            prop_assert_eq!(out[i] - inflow[i], 1);
        }
        for k in n..n + m {
            prop_assert_eq!(out[k], inflow[k]);
        }
        prop_assert_eq!(inflow[sink], n as i64);
        Ok((a_cost, b_cost, duals))
    }

    proptest! {
        #![proptest_config(testkit::seeded(256))]

        #[test]
        fn same_optimum_as_successive_shortest_paths_with_exact_duals(c in case()) {
            let (ns, ssp, duals) = both(&c)?;
            prop_assert!((ns - ssp).abs() <= 1e-9 * ssp.max(1.0), "simplex {ns} vs shortest paths {ssp}");
            // Each capacity's dual is a subgradient of the optimum in that capacity: one unit
            // more saves at most -dual, one unit less costs at least -dual. (Optimal duals are
            // not unique where the flow is degenerate, so they are checked by re-solving.)
            for (k, &dual) in duals.iter().enumerate() {
                let mut more = c.clone();
                more.caps[k] += 1;
                let (up, ..) = both(&more)?;
                prop_assert!(up >= ns + dual - 1e-6, "cap {k}: one more unit {up} below {ns} + {dual}");
                if c.caps[k] > 0 {
                    let mut less = c.clone();
                    less.caps[k] -= 1;
                    let (down, ..) = both(&less)?;
                    prop_assert!(down >= ns - dual - 1e-6, "cap {k}: one less unit {down} below {ns} - {dual}");
                }
            }
        }
    }

    #[test]
    fn zero_capacity_and_a_single_candidate() {
        // Source 0 has one candidate whose capacity is zero: it takes its fallback.
        let mut g = NetworkSimplex::new(3);
        let x = g.add_arc(0, 1, 1, 1.0);
        let fb = g.add_arc(0, 2, 1, 9.0);
        let cap = g.add_arc(1, 2, 0, 0.0);
        assert!(g.route_units([0], 2));
        assert_eq!((g.flow(x), g.flow(fb), g.flow(cap)), (0, 1, 0));
        assert!((g.reduced_cost(cap) + 8.0).abs() < 1e-9, "{}", g.reduced_cost(cap));
    }
}
