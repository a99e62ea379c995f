//! Components: the whole instance as one (monolithic), fingerprints for the re-solve cache, and
//! the exact solve of one component (its cheapest option, a min-cost flow when it is a network,
//! else HiGHS).

use super::highs::{solve_component, Mode};
use super::warm::{WarmLp, WARM_MIN_ORDERS};
use super::*;

/// Every order in one component with every row it touches.
pub(super) fn monolith(pre: &Presolve) -> Vec<Component> {
    let inst = pre.inst;
    let orders: Vec<u32> = (0..inst.len() as u32).collect();
    let rows: Vec<usize> = (0..inst.rows()).filter(|&r| pre.contested(r)).collect();
    if orders.is_empty() {
        return Vec::new();
    }
    vec![Component { orders, rows }]
}

pub(super) fn fingerprint(pre: &Presolve, c: &Component) -> u64 {
    let inst = pre.inst;
    let mut h = FxHasher::default();
    for &o in &c.orders {
        o.hash(&mut h);
        for i in inst.option_range(o as usize) {
            if pre.alive[i] {
                let x = &inst.opts[i];
                (x.kind, x.store, x.cost.to_bits()).hash(&mut h);
            }
        }
    }
    // Rows by what they are, not by number: a change elsewhere renumbers cells.
    for &r in &c.rows {
        let id = if r < inst.cells() { inst.cell_keys[r] } else { u64::MAX - (r - inst.cells()) as u64 };
        (id, pre.left[r].to_bits()).hash(&mut h);
    }
    h.finish()
}

/// Solves one component's LP. A component of one order without rows takes its cheapest option;
/// with a `network` solver, a component that is a network is solved as a min-cost flow; a large
/// one that is not is solved in its live HiGHS instance (`warm`, created when `None`), which is
/// returned for the next round.
pub(super) fn solve_exact(
    pre: &Presolve,
    c: &Component,
    network: Option<FlowSolver>,
    warm: Option<WarmLp>,
) -> Result<(ComponentSolution, Option<WarmLp>), PlanError> {
    if c.rows.is_empty() && c.orders.len() == 1 {
        return Ok((cheapest(pre, c.orders[0] as usize), None));
    }
    if let Some(solver) = network {
        if let Some(sol) = solve_flow(pre, c, solver) {
            return Ok((sol, None));
        }
    }
    if warm.is_some() || c.orders.len() >= WARM_MIN_ORDERS {
        let mut lp = warm.unwrap_or_else(WarmLp::new);
        let sol = lp.solve(pre, c)?;
        return Ok((sol, Some(lp)));
    }
    Ok((solve_component(pre, c, Mode::Lp)?, None))
}

/// Solves component `c` as a min-cost flow when its LP is a network: every order has one line
/// of one unit (its whole-store options use one cell and one capacity, each with coefficient 1)
/// and every row bound is integral. Order -> cell (when in the model) -> store capacity (when in
/// the model) -> sink; the DC and "unfilled" go straight to the sink. `None` when `c` is not a
/// network.
pub(super) fn solve_flow(pre: &Presolve, c: &Component, solver: FlowSolver) -> Option<ComponentSolution> {
    let inst = pre.inst;
    let network = c.orders.iter().all(|&o| {
        matches!(inst.lines(o as usize), [(_, 1)])
            && inst.option_range(o as usize).all(|i| !matches!(inst.opts[i].kind, OptKind::Line(_)))
    }) && c.rows.iter().all(|&r| (pre.left[r] - pre.left[r].round()).abs() <= EPS);
    if !network {
        return None;
    }
    let nodes = c.orders.len() + c.rows.len() + 1;
    let arcs = c
        .orders
        .iter()
        .map(|&o| inst.option_range(o as usize).filter(|&i| pre.alive[i]).count())
        .sum::<usize>()
        + c.rows.len();
    let budget = match solver {
        FlowSolver::Simplex => None,
        FlowSolver::ShortestPaths => Some(u64::MAX),
        FlowSolver::Auto => Some(PATHS_WORK_PER_ORDER * c.orders.len() as u64 + PATHS_WORK_BASE),
    };
    if let Some(budget) = budget {
        let mut g = MinCostFlow::new(nodes);
        g.reserve(arcs);
        match build_flow(pre, c, &mut Paths(g, budget)) {
            Ok(sol) => return Some(sol),
            Err(Routed::OverBudget) => {}
            Err(_) => return None,
        }
    }
    let mut g = NetworkSimplex::new(nodes);
    g.reserve(arcs);
    build_flow(pre, c, &mut g).ok()
}

/// `auto` tries successive shortest paths first and hands the component to the network simplex
/// once the searches have settled more than this many nodes per order (plus the base). Each
/// search settles the nodes nearer than its nearest room: a handful while stock and capacity are
/// loose, more as capacity binds. With the orders swept over the map the searches beat the
/// simplex on every capacity-bound instance measured, up to 366 settled nodes per order at
/// `--capacity-scale 0.02` (BENCHMARKS.md); the simplex is kept for what lies beyond.
const PATHS_WORK_PER_ORDER: u64 = 600;
const PATHS_WORK_BASE: u64 = 100_000;

/// The two min-cost flow solvers, as [`solve_flow`] uses them: arcs are numbered in the order
/// they were added.
pub(super) trait UnitFlow {
    fn arc(&mut self, from: usize, to: usize, cap: i64, cost: f64) -> u32;
    /// One unit from each of `sources` to `sink`.
    fn route(&mut self, sources: std::ops::Range<usize>, sink: usize) -> Routed;
    fn flow_on(&self, a: u32) -> i64;
    fn reduced(&self, a: u32) -> f64;
}

/// Successive shortest paths within a budget of settled nodes.
struct Paths(MinCostFlow, u64);

impl UnitFlow for Paths {
    fn arc(&mut self, from: usize, to: usize, cap: i64, cost: f64) -> u32 {
        self.0.add_arc(from, to, cap, cost).index()
    }
    fn route(&mut self, sources: std::ops::Range<usize>, sink: usize) -> Routed {
        self.0.route_within(sources, sink, self.1)
    }
    fn flow_on(&self, a: u32) -> i64 {
        self.0.flow(flow::Arc::from_index(a))
    }
    fn reduced(&self, a: u32) -> f64 {
        self.0.reduced_cost(flow::Arc::from_index(a))
    }
}

impl UnitFlow for NetworkSimplex {
    fn arc(&mut self, from: usize, to: usize, cap: i64, cost: f64) -> u32 {
        self.add_arc(from, to, cap, cost).index()
    }
    fn route(&mut self, sources: std::ops::Range<usize>, sink: usize) -> Routed {
        if self.route_units(sources, sink) {
            Routed::All
        } else {
            Routed::Unreachable
        }
    }
    fn flow_on(&self, a: u32) -> i64 {
        self.flow(flow::Arc::from_index(a))
    }
    fn reduced(&self, a: u32) -> f64 {
        self.reduced_cost(flow::Arc::from_index(a))
    }
}

/// Builds component `c`'s network into `g` and solves it.
fn build_flow(pre: &Presolve, c: &Component, g: &mut impl UnitFlow) -> Result<ComponentSolution, Routed> {
    let inst = pre.inst;
    let n = c.orders.len();
    let m = c.rows.len();
    let sink = n + m;
    // Node numbers follow the map, so that a search reads nearby records: orders by the store
    // of their cheapest store option, rows by store (its cells, then its capacity).
    let near_store = |o: usize| {
        inst.option_range(o)
            .filter(|&i| pre.alive[i] && inst.opts[i].kind == OptKind::Whole)
            .min_by(|&a, &b| inst.opts[a].cost.total_cmp(&inst.opts[b].cost))
            .map_or(u32::MAX, |i| inst.opts[i].store)
    };
    let mut by_place: Vec<(u32, u32)> =
        c.orders.iter().enumerate().map(|(k, &o)| (near_store(o as usize), k as u32)).collect();
    by_place.sort_unstable();
    let mut order_node = vec![0u32; n];
    for (at, &(_, k)) in by_place.iter().enumerate() {
        order_node[k as usize] = at as u32;
    }
    let row_place = |r: usize| {
        if r < inst.cells() {
            (inst.cell(r).0 .0, 0, r)
        } else {
            ((r - inst.cells()) as u32, 1, r)
        }
    };
    let mut rows_by_place: Vec<u32> = (0..m as u32).collect();
    rows_by_place.sort_unstable_by_key(|&j| row_place(c.rows[j as usize]));
    let mut row_node_of = vec![0u32; m];
    for (at, &j) in rows_by_place.iter().enumerate() {
        row_node_of[j as usize] = (n + at) as u32;
    }
    // Row -> node: a dense map for a component holding a good share of the rows (a binary
    // search per option costs more there), a binary search for the many small ones (a map of
    // every row each would cost more).
    let dense = c.rows.len() >= inst.rows() / 64;
    let mut node_of: Vec<u32> = Vec::new();
    if dense {
        node_of = vec![u32::MAX; inst.rows()];
        for (j, &r) in c.rows.iter().enumerate() {
            node_of[r] = row_node_of[j];
        }
    }
    let row_node = |r: usize| {
        if dense {
            (node_of[r] != u32::MAX).then(|| node_of[r] as usize)
        } else {
            c.rows.binary_search(&r).ok().map(|j| row_node_of[j] as usize)
        }
    };
    let mut arcs: Vec<(u32, f64)> = Vec::with_capacity(n * 8);

    let mut objective = 0.0;
    for (k, &o) in c.orders.iter().enumerate() {
        let o = o as usize;
        // Costs shifted by the order's cheapest option: every order takes exactly one option,
        // so the optimum is the same, and every arc cost is non-negative.
        let base = inst
            .option_range(o)
            .filter(|&i| pre.alive[i])
            .map(|i| inst.opts[i].cost)
            .fold(f64::INFINITY, f64::min);
        objective += base;
        for i in inst.option_range(o).filter(|&i| pre.alive[i]) {
            let x = &inst.opts[i];
            let mut head = sink;
            if x.kind == OptKind::Whole {
                let mut first = None;
                inst.rows_of(o, x, |r, _| first = first.or_else(|| row_node(r)));
                head = first.unwrap_or(sink);
            }
            let a = g.arc(order_node[k] as usize, head, 1, x.cost - base);
            arcs.push((a, x.cost - base));
        }
    }
    let caps: Vec<u32> = c
        .rows
        .iter()
        .enumerate()
        .map(|(j, &r)| {
            let next = if r < inst.cells() {
                row_node(inst.capacity_row(inst.cell(r).0 .0)).unwrap_or(sink)
            } else {
                sink
            };
            g.arc(row_node_of[j] as usize, next, pre.left[r].round().max(0.0) as i64, 0.0)
        })
        .collect();
    // Every order has its "unfilled" option straight to the sink, so every unit gets there.
    // Orders are routed in node order, a sweep over the map: each search then starts beside the
    // last one's, and settles fewer nodes than in the order of the input (BENCHMARKS.md).
    match g.route(0..n, sink) {
        Routed::All => {}
        other => return Err(other),
    }
    let values: Vec<f64> = arcs.iter().map(|&(a, _)| g.flow_on(a) as f64).collect();
    objective += arcs.iter().map(|&(a, cost)| g.flow_on(a) as f64 * cost).sum::<f64>();
    let duals = caps.iter().map(|&a| g.reduced(a).min(0.0)).collect();
    Ok(ComponentSolution { values, objective, duals, by_flow: true })
}

pub(super) fn is_integral(values: &[f64]) -> bool {
    values.iter().all(|v| (v - v.round()).abs() <= INT_TOL)
}

/// The cheapest live option of order `o` as column values (an order with no constraints).
pub(super) fn cheapest(pre: &Presolve, o: usize) -> ComponentSolution {
    let inst = pre.inst;
    let n_lines = inst.lines(o).len();
    let live: Vec<usize> = inst.option_range(o).filter(|&i| pre.alive[i]).collect();
    let mut values = vec![0.0; live.len()];
    let single = live
        .iter()
        .enumerate()
        .filter(|(_, &i)| !matches!(inst.opts[i].kind, OptKind::Line(_)))
        .min_by(|a, b| inst.opts[*a.1].cost.total_cmp(&inst.opts[*b.1].cost));
    let mut best_line: Vec<Option<usize>> = vec![None; n_lines];
    for (j, &i) in live.iter().enumerate() {
        if let OptKind::Line(n) = inst.opts[i].kind {
            let b = &mut best_line[usize::from(n)];
            if b.is_none_or(|k| inst.opts[live[k]].cost > inst.opts[i].cost) {
                *b = Some(j);
            }
        }
    }
    let has_split = best_line.iter().any(Option::is_some);
    let split = (has_split && best_line.iter().all(Option::is_some)).then(|| {
        best_line.iter().map(|j| inst.opts[live[j.expect("all lines")]].cost).sum::<f64>()
            - inst.split_penalty
    });
    if has_split {
        values.push(0.0);
    }
    let single_cost = single.map_or(f64::INFINITY, |(_, &i)| inst.opts[i].cost);
    let objective = match split {
        Some(cost) if cost < single_cost => {
            for j in best_line.iter().flatten() {
                values[*j] = 1.0;
            }
            *values.last_mut().expect("z column") = 1.0;
            cost
        }
        _ => {
            let (j, _) = single.expect("every order has the unfilled option");
            values[j] = 1.0;
            single_cost
        }
    };
    ComponentSolution { values, objective, duals: Vec::new(), by_flow: false }
}
