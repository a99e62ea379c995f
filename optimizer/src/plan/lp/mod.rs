//! The LP planner: an exact presolve, independent components solved in parallel (as min-cost
//! flows when they are networks, else with good_lp + HiGHS), then rounding and repair where the
//! LP is fractional.
//!
//! # The LP
//! Per order `o`: a column per whole-store option, the DC, "unfilled", and for a split a column
//! `z_o` plus one column per (line, store) option. Rows: `sum(whole, dc, unfilled, z) = 1`;
//! per line `sum(line options) - z = 0`; per stock cell `sum(qty * x) <= available`; per store
//! `sum(x) <= capacity left`. Objective: option costs, `- split_penalty * z`.
//! With single-line, one-unit orders the matrix is a network matrix (order -> cell -> store), so
//! the simplex optimum is integral.
//!
//! # Presolve (exact)
//! A row whose worst-case demand (every order that could use it, at its largest use) fits its
//! bound can never bind: it is dropped. An order whose cheapest option touches only such rows
//! takes it (moving it there never costs more and frees contested rows); options dearer than an
//! order's cheapest uncontested option are dominated and dropped. Both steps shrink demand,
//! which frees more rows; a worklist runs this to a fixpoint. The orders left are cut into
//! components that share contested rows; each is an independent LP.
mod components;
mod highs;
mod lazy;
mod presolve;
mod warm;

use components::{is_integral, monolith};
use highs::{solve_component, solve_within, Mode};
use lazy::{Lazy, Solved};
use presolve::{single_choice, Presolve};

use super::flow::{self, MinCostFlow, Routed};
use super::greedy::{apply, serve, take_if_fits};
use super::instance::{Instance, OptKind};
use super::simplex::NetworkSimplex;
use super::{Choice, Plan, PlanError, Solver, UnfilledReason};
use crate::model::StoreIdx;
use crate::progress::Progress;
use good_lp::constraint::ConstraintReference;
use good_lp::solvers::highs::highs;
use good_lp::{
    variable, DualValues, Expression, ProblemVariables, Solution, SolutionWithDual, SolverModel, Variable,
};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHasher};
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::time::Instant;

const EPS: f64 = 1e-9;
const INT_TOL: f64 = 1e-6;
/// Up to this many LP-fractional orders of larger components get an integral solve of their
/// own.
const MIP_MAX_ORDERS: usize = 20_000;
/// Time limit for one integral solve. The LP-fractional orders of the contested mixed 20k
/// instance (8,989 orders) need 31 s to the optimum; after 20 s their plan was 5.3% to 8.4%
/// above the bound, depending on the load.
const MIP_SECONDS: f64 = 40.0;
/// Lazy-row rounds before every contested row goes into the model at once.
const MAX_LAZY_ROUNDS: usize = 30;

/// How to run the LP planner.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LpOptions {
    /// Presolve and split into components (`false`: one monolithic LP over every row, as a peer
    /// would solve it).
    pub decompose: bool,
    /// Solve components that are networks (single-line, one-unit orders) as a min-cost flow
    /// instead of handing them to HiGHS (`false`: HiGHS for every component).
    pub network: bool,
    /// Which min-cost flow solver takes the network components.
    pub flow: FlowSolver,
    /// Give fractional components an integral solve (branch and bound) before rounding
    /// (`false`: round and repair the LP's values directly; for callers that want the duals
    /// and the bound more than the last bit of the plan's cost).
    pub integral: bool,
    /// Fractional components up to this many orders get an integral solve of all their orders;
    /// larger ones keep their LP-integral orders and solve only the fractional ones. Measured
    /// (BENCHMARKS.md, "Contested mixed"): the whole solve leaves 2.2 to 13 times less above the
    /// LP on components of 2,000 to 3,300 orders, still less at 6,500 but at three times the
    /// time, and far more at 16,000 within the time limit.
    pub whole_integral_max_orders: usize,
}

impl Default for LpOptions {
    fn default() -> Self {
        LpOptions {
            decompose: true,
            network: true,
            flow: FlowSolver::Auto,
            integral: true,
            whole_integral_max_orders: 5_000,
        }
    }
}

/// The min-cost flow solver of network components.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum FlowSolver {
    /// Successive shortest paths for small components, the network simplex for large ones.
    #[default]
    Auto,
    /// Successive shortest paths for every component.
    ShortestPaths,
    /// The network simplex for every component.
    Simplex,
}

/// What the LP planner did and the bound it proved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LpStats {
    /// A lower bound on any plan's cost: the LP optimum of every component plus the cost of the
    /// orders the presolve fixed.
    pub lower_bound: f64,
    /// The cost of the returned (integral) plan.
    pub plan_cost: f64,
    /// `(plan_cost - lower_bound) / lower_bound`.
    pub gap: f64,
    pub orders: usize,
    /// Orders whose best option could not be contested, fixed before any LP.
    pub fixed_by_presolve: usize,
    pub components: usize,
    /// Orders in the largest component.
    pub largest_component: usize,
    /// Components solved in this run (the rest came from the re-solve cache or were a single
    /// order solved directly).
    pub components_solved: usize,
    /// Of those, the ones solved as a min-cost flow (networks); HiGHS solved the others.
    pub components_by_flow: usize,
    pub components_reused: usize,
    /// Rounds of lazy row generation.
    pub lazy_rounds: usize,
    pub lp_columns: usize,
    pub lp_rows: usize,
    /// Orders the LP left fractional, rounded and repaired.
    pub fractional_orders: usize,
    pub presolve_s: f64,
    pub solve_s: f64,
    pub monolithic: bool,
    /// Non-zero row duals as (row, dual): the change of the optimum per unit more of the row's
    /// bound (negative: more of it saves money).
    #[serde(skip)]
    pub duals: Vec<(usize, f64)>,
}

/// Solutions of components by fingerprint (orders, their options and the bounds of the rows
/// they contest), so that a re-solve after a small change solves only what changed.
#[derive(Default, Debug)]
pub struct LpCache {
    /// Fingerprint -> (solution, the solve that made it).
    map: FxHashMap<u64, (ComponentSolution, u64)>,
    generation: u64,
}

impl LpCache {
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[derive(Clone, Debug)]
struct ComponentSolution {
    /// Column values in build order.
    values: Vec<f64>,
    objective: f64,
    /// Duals of the component's capacity rows, in build order.
    duals: Vec<f64>,
    /// Solved as a min-cost flow rather than by HiGHS.
    by_flow: bool,
}

/// An order and its LP candidates, best first.
type Fractional = (usize, Vec<(f64, Choice)>);

/// An order of a component solved whole by branch and bound: its integral choice and its LP
/// candidates.
type Deferred = (usize, Option<Choice>, Vec<(f64, Choice)>);

/// One component: its orders, their live options and the rows they contest.
struct Component {
    orders: Vec<u32>,
    rows: Vec<usize>,
}

/// Solves `inst` with the LP planner. With a `cache`, components whose fingerprint was solved
/// before are not solved again.
pub fn solve(
    inst: &Instance,
    options: LpOptions,
    cache: Option<&mut LpCache>,
    progress: &dyn Progress,
) -> Result<Plan, PlanError> {
    let t0 = Instant::now();
    let n = inst.len();
    progress.stage("presolve", n as u64);
    let mut pre = Presolve::new(inst);
    if options.decompose {
        pre.run();
    } else {
        // Monolithic: every row an option touches is a constraint.
        for r in 0..inst.rows() {
            if pre.demand[r] > 0.0 {
                pre.demand[r] = f64::INFINITY;
            }
        }
    }
    progress.advance(n as u64);
    let fixed_by_presolve = pre.fixed.iter().filter(|f| f.is_some()).count();
    let presolve_s = t0.elapsed().as_secs_f64();

    // Lazy rows: solve with only the contested rows some solution so far violated, add the rows
    // the new solution violates, repeat. Only components whose fingerprint changed are solved
    // again. The last round's solution is feasible for every row and optimal for a relaxation,
    // hence optimal.
    let t1 = Instant::now();
    let mut local = LpCache::default();
    let cache = cache.unwrap_or(&mut local);
    cache.generation += 1;
    let (components, solutions, solved, by_flow, reused, rounds) = if !options.decompose {
        let components = monolith(&pre);
        progress.stage("solve", components.len() as u64);
        let solutions = components
            .iter()
            .map(|c| solve_component(&pre, c, Mode::Monolithic))
            .collect::<Result<Vec<_>, _>>()?;
        let n = components.len();
        (components, solutions, n, 0, 0, 1)
    } else {
        let mut lazy = Lazy::new(&pre, options.network.then_some(options.flow));
        let mut added: Vec<usize> = Vec::new();
        if options.network && (0..n).all(|o| !pre.active[o] || matches!(inst.lines(o), [(_, 1)])) {
            // A network instance: every contested row joins the model at once. Rows cost a
            // min-cost flow one node each, while each lazy round re-solves the components it
            // grew (9 to 11 rounds of the whole component where capacity binds).
            added.extend((0..inst.rows()).filter(|&r| pre.contested(r)));
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > MAX_LAZY_ROUNDS {
                // Converging slowly: every contested row joins the model at once.
                added.extend((0..inst.rows()).filter(|&r| pre.contested(r) && !lazy.in_model[r]));
            }
            let violated = lazy.round(&added, cache, progress)?;
            if violated.is_empty() {
                break;
            }
            added = violated;
        }
        let (solved, by_flow, reused) = (lazy.solved, lazy.flows, lazy.reused);
        let mut keyed: Vec<(u64, Solved)> = lazy.sols.into_iter().collect();
        keyed.sort_unstable_by_key(|e| e.0);
        let (components, solutions): (Vec<Component>, Vec<ComponentSolution>) =
            keyed.into_iter().map(|(_, s)| (Component { orders: s.orders, rows: s.rows }, s.sol)).unzip();
        (components, solutions, solved, by_flow, reused, rounds)
    };

    // Fractional components up to `whole_integral_max_orders` get an integral solve of all
    // their orders (branch and bound on the same rows, within the time limit); its choices are
    // taken where they fit.
    progress.stage("integral", 0);
    let whole: Vec<Option<Vec<f64>>> = components
        .par_iter()
        .zip(&solutions)
        .with_max_len(1)
        .map(|(c, s)| {
            (options.integral
                && !is_integral(&s.values)
                && !c.rows.is_empty()
                && c.orders.len() <= options.whole_integral_max_orders)
                .then(|| solve_component(&pre, c, Mode::Integer).ok().map(|m| m.values))
                .flatten()
        })
        .collect();

    // Read the solutions back: LP-integral orders take their choice (they fit: the LP's
    // solution is feasible for every row), the rest wait for an integral solve.
    let mut choices: Vec<Option<Choice>> = pre.fixed.clone();
    let mut lower_bound: f64 =
        choices.iter().enumerate().filter_map(|(o, c)| c.as_ref().and_then(|c| inst.cost_of(o, c))).sum();
    let mut left = pre.left.clone();
    let mut duals = Vec::new();
    let (mut lp_columns, mut lp_rows) = (0, 0);
    let mut fractional_orders = 0;
    // Per component, its LP-fractional orders with their LP candidates.
    let mut open: Vec<Vec<Fractional>> = Vec::with_capacity(components.len());
    let mut deferred: Vec<Deferred> = Vec::new();
    for ((c, s), mip) in components.iter().zip(&solutions).zip(&whole) {
        lower_bound += s.objective;
        lp_columns += s.values.len();
        lp_rows += c.rows.len() + c.orders.len();
        for (&r, &d) in c.rows.iter().zip(&s.duals) {
            if d.abs() > EPS {
                duals.push((r, d));
            }
        }
        let mut at = 0;
        let mut frac = Vec::new();
        for &o in &c.orders {
            let o = o as usize;
            let (mut cands, used) = read_order(&pre, o, &s.values[at..]);
            let lp_integral = cands.first().is_some_and(|(v, _)| *v >= 1.0 - INT_TOL);
            fractional_orders += usize::from(!lp_integral);
            if let Some(m) = mip {
                // After every LP-integral order: the integral solution may use rows outside
                // the model differently, so its choices are taken only where they fit.
                let first = read_order(&pre, o, &m[at..]).0.into_iter().next().map(|(_, c)| c);
                deferred.push((o, first, cands));
                at += used;
                continue;
            }
            at += used;
            if lp_integral {
                let (_, choice) = cands.swap_remove(0);
                apply(inst, o, &choice, &mut left);
                choices[o] = Some(choice);
            } else {
                frac.push((o, cands));
            }
        }
        open.push(frac);
    }
    let mut fractional: Vec<Fractional> = Vec::new();
    for (o, first, cands) in deferred {
        match first {
            Some(choice) if take_if_fits(inst, o, &choice, &mut left) => choices[o] = Some(choice),
            _ => fractional.push((o, cands)),
        }
    }

    // The LP-fractional orders of larger components get one integral solve of their own:
    // branch and bound over what the LP-integral orders left of every contested row they could
    // fill (the LP's integral part is kept, as in RINS). One solve for all of them, so that
    // rows two components share outside their models are bounded once. Its choices fit; the
    // rest are repaired like any fractional order.
    let mut open: Vec<Fractional> = open.into_iter().flatten().collect();
    open.sort_unstable_by_key(|f| f.0);
    let mip = (options.integral && !open.is_empty() && open.len() <= MIP_MAX_ORDERS)
        .then(|| {
            progress.stage("fractional", 1);
            let m = residual_mip(&pre, &open, &left);
            progress.advance(1);
            m
        })
        .flatten();
    for (k, (o, cands)) in open.into_iter().enumerate() {
        match mip.as_ref().and_then(|m| m[k].clone()) {
            Some(choice) if take_if_fits(inst, o, &choice, &mut left) => choices[o] = Some(choice),
            _ => fractional.push((o, cands)),
        }
    }
    fractional.sort_by(|a, b| {
        let va = a.1.first().map_or(0.0, |c| c.0);
        let vb = b.1.first().map_or(0.0, |c| c.0);
        vb.total_cmp(&va).then(a.0.cmp(&b.0))
    });
    for (o, cands) in fractional {
        let taken = cands.into_iter().find_map(|(_, c)| take_if_fits(inst, o, &c, &mut left).then_some(c));
        choices[o] = Some(taken.unwrap_or_else(|| serve(inst, o, &mut left)));
    }
    let choices: Vec<Choice> = choices.into_iter().map(|c| c.expect("every order decided")).collect();
    let plan_cost: f64 = choices.iter().enumerate().map(|(o, c)| inst.cost_of(o, c).unwrap_or(0.0)).sum();
    let stats = LpStats {
        lower_bound,
        plan_cost,
        gap: if lower_bound > 0.0 { (plan_cost - lower_bound) / lower_bound } else { 0.0 },
        orders: n,
        fixed_by_presolve,
        components: components.len(),
        largest_component: components.iter().map(|c| c.orders.len()).max().unwrap_or(0),
        components_solved: solved,
        components_by_flow: by_flow,
        lazy_rounds: rounds,
        components_reused: reused,
        lp_columns,
        lp_rows,
        fractional_orders,
        presolve_s,
        solve_s: t1.elapsed().as_secs_f64(),
        monolithic: !options.decompose,
        duals,
    };
    Ok(Plan { solver: Solver::Lp, choices, lp: Some(stats), priced: None })
}

/// The integral solve of `frac`'s orders (sorted by order) with every contested row they could
/// fill bounded by `left`: each order's choice, `None` where the solve failed or chose nothing.
fn residual_mip(pre: &Presolve, frac: &[Fractional], left: &[f64]) -> Option<Vec<Option<Choice>>> {
    let inst = pre.inst;
    let orders: Vec<u32> = frac.iter().map(|f| f.0 as u32).collect();
    // Every contested row they touch with the most they could use of it (each option's use
    // added up, at least what one order takes); rows that fit that much cannot bind.
    let mut uses: Vec<(usize, f64)> = Vec::new();
    for &o in &orders {
        for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
            inst.rows_of(o as usize, &inst.opts[i], |r, coef| {
                if pre.contested(r) {
                    uses.push((r, coef));
                }
            });
        }
    }
    uses.sort_unstable_by_key(|u| u.0);
    let mut rows: Vec<usize> = Vec::new();
    for group in uses.chunk_by(|a, b| a.0 == b.0) {
        let r = group[0].0;
        if group.iter().map(|u| u.1).sum::<f64>() > left[r] + EPS {
            rows.push(r);
        }
    }
    let c = Component { orders, rows };
    let m = solve_within(pre, &c, Mode::Integer, left).ok()?;
    let mut at = 0;
    Some(
        c.orders
            .iter()
            .map(|&o| {
                let (cands, used) = read_order(pre, o as usize, &m.values[at..]);
                at += used;
                cands.into_iter().next().map(|(_, c)| c)
            })
            .collect(),
    )
}

/// The candidate choices of order `o` from its LP column values (in build order), best first,
/// and how many columns the order had.
fn read_order(pre: &Presolve, o: usize, values: &[f64]) -> (Vec<(f64, Choice)>, usize) {
    let inst = pre.inst;
    let n_lines = inst.lines(o).len();
    let mut out: Vec<(f64, Choice)> = Vec::new();
    let mut best_line: Vec<(f64, u32)> = vec![(-1.0, 0); n_lines];
    let mut used = 0;
    let mut has_split = false;
    for i in inst.option_range(o) {
        if !pre.alive[i] {
            continue;
        }
        let x = &inst.opts[i];
        let v = values[used];
        used += 1;
        match x.kind {
            OptKind::Line(n) => {
                has_split = true;
                let b = &mut best_line[usize::from(n)];
                if v > b.0 {
                    *b = (v, x.store);
                }
            }
            _ => {
                if v > INT_TOL {
                    out.push((v, single_choice(inst, o, i)));
                }
            }
        }
    }
    if has_split {
        let z = values[used];
        used += 1;
        if z > INT_TOL {
            let v = best_line.iter().map(|b| b.0).fold(z, f64::min);
            out.push((v, Choice::Split(best_line.iter().map(|b| StoreIdx(b.1)).collect())));
        }
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    (out, used)
}
