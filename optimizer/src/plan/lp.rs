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

use super::flow::{self, MinCostFlow};
use super::greedy::{apply, serve, take_if_fits};
use super::instance::{Instance, OptKind};
use super::{Choice, Plan, PlanError, Solver, UnfilledReason};
use crate::generate::Progress;
use crate::model::StoreIdx;
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
/// Fractional components up to this many orders get an integral solve (HiGHS branch and bound).
const MIP_MAX_ORDERS: usize = 20_000;
/// Time limit for one component's integral solve.
const MIP_SECONDS: f64 = 20.0;
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
}

impl Default for LpOptions {
    fn default() -> Self {
        LpOptions { decompose: true, network: true }
    }
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

/// Presolve state over the whole instance.
struct Presolve<'a> {
    inst: &'a Instance,
    alive: Vec<bool>,
    active: Vec<bool>,
    left: Vec<f64>,
    demand: Vec<f64>,
    /// Row -> orders that touch it (CSR).
    row_start: Vec<u32>,
    row_orders: Vec<u32>,
    fixed: Vec<Option<Choice>>,
}

impl<'a> Presolve<'a> {
    fn new(inst: &'a Instance) -> Presolve<'a> {
        let n = inst.len();
        let rows = inst.rows();
        let per_order: Vec<Vec<(usize, f64)>> =
            (0..n).into_par_iter().with_min_len(1024).map(|o| max_use(inst, o, |_| true)).collect();
        let mut demand = vec![0.0; rows];
        let mut count = vec![0u32; rows + 1];
        for uses in &per_order {
            for &(r, c) in uses {
                demand[r] += c;
                count[r + 1] += 1;
            }
        }
        for r in 0..rows {
            count[r + 1] += count[r];
        }
        let mut fill = count.clone();
        let mut row_orders = vec![0u32; count[rows] as usize];
        for (o, uses) in per_order.iter().enumerate() {
            for &(r, _) in uses {
                row_orders[fill[r] as usize] = o as u32;
                fill[r] += 1;
            }
        }
        Presolve {
            inst,
            alive: vec![true; inst.option_count()],
            active: vec![true; n],
            left: inst.bounds().to_vec(),
            demand,
            row_start: count,
            row_orders,
            fixed: vec![None; n],
        }
    }

    fn contested(&self, r: usize) -> bool {
        self.demand[r] > self.left[r] + EPS
    }

    fn free(&self, o: usize, i: usize) -> bool {
        let mut free = true;
        self.inst.rows_of(o, &self.inst.opts[i], |r, _| free &= !self.contested(r));
        free
    }

    /// Runs the worklist to its fixpoint.
    fn run(&mut self) {
        let inst = self.inst;
        let mut queue: std::collections::VecDeque<u32> = inst.arrival.iter().copied().collect();
        let mut queued = vec![true; inst.len()];
        while let Some(o) = queue.pop_front() {
            let o = o as usize;
            queued[o] = false;
            if !self.active[o] {
                continue;
            }
            let before = max_use(inst, o, |i| self.alive[i]);
            self.step(o);
            let after = if self.active[o] { max_use(inst, o, |i| self.alive[i]) } else { Vec::new() };
            // Lower demand on rows this order no longer (fully) draws on.
            let mut j = 0;
            for &(r, c) in &before {
                while j < after.len() && after[j].0 < r {
                    j += 1;
                }
                let now = if j < after.len() && after[j].0 == r { after[j].1 } else { 0.0 };
                if now < c {
                    let was = self.contested(r);
                    self.demand[r] -= c - now;
                    if was && !self.contested(r) {
                        for &p in &self.row_orders[self.row_start[r] as usize..self.row_start[r + 1] as usize]
                        {
                            if self.active[p as usize] && !queued[p as usize] {
                                queued[p as usize] = true;
                                queue.push_back(p);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Fixes order `o` or drops its dominated options.
    fn step(&mut self, o: usize) {
        let inst = self.inst;
        let range = inst.option_range(o);
        let n_lines = inst.lines(o).len();
        let mut best_any = f64::INFINITY;
        let mut best_free = (f64::INFINITY, usize::MAX);
        let mut line_min = vec![f64::INFINITY; n_lines];
        let mut line_free = vec![(f64::INFINITY, usize::MAX); n_lines];
        for i in range.clone() {
            if !self.alive[i] {
                continue;
            }
            let x = &inst.opts[i];
            let free = self.free(o, i);
            match x.kind {
                OptKind::Line(n) => {
                    let n = usize::from(n);
                    line_min[n] = line_min[n].min(x.cost);
                    if free && x.cost < line_free[n].0 {
                        line_free[n] = (x.cost, i);
                    }
                }
                _ => {
                    best_any = best_any.min(x.cost);
                    if free && x.cost < best_free.0 {
                        best_free = (x.cost, i);
                    }
                }
            }
        }
        let p = inst.split_penalty;
        let has_split = n_lines > 1 && line_min.iter().all(|c| c.is_finite());
        let split_lb = if has_split { line_min.iter().sum::<f64>() - p } else { f64::INFINITY };
        let free_split = if has_split && line_free.iter().all(|c| c.0.is_finite()) {
            line_free.iter().map(|c| c.0).sum::<f64>() - p
        } else {
            f64::INFINITY
        };
        let threshold = best_free.0.min(free_split);
        if threshold <= best_any.min(split_lb) + EPS {
            let choice = if best_free.0 <= free_split {
                single_choice(inst, o, best_free.1)
            } else {
                Choice::Split(line_free.iter().map(|&(_, i)| StoreIdx(inst.opts[i].store)).collect())
            };
            apply(inst, o, &choice, &mut self.left);
            self.fixed[o] = Some(choice);
            self.active[o] = false;
            return;
        }
        for i in range {
            if !self.alive[i] || i == best_free.1 {
                continue;
            }
            let x = &inst.opts[i];
            let dominated = match x.kind {
                OptKind::Line(n) => split_lb - line_min[usize::from(n)] + x.cost > threshold + EPS,
                _ => x.cost > threshold + EPS,
            };
            if dominated {
                self.alive[i] = false;
            }
        }
        // A split missing a line is no split.
        if n_lines > 1 {
            let mut covered = vec![false; n_lines];
            for i in inst.option_range(o) {
                if let (true, OptKind::Line(n)) = (self.alive[i], inst.opts[i].kind) {
                    covered[usize::from(n)] = true;
                }
            }
            if !covered.iter().all(|&c| c) {
                for i in inst.option_range(o) {
                    if matches!(inst.opts[i].kind, OptKind::Line(_)) {
                        self.alive[i] = false;
                    }
                }
            }
        }
    }
}

/// The choice of one single-column option (Whole, Dc or Unfilled).
fn single_choice(inst: &Instance, o: usize, i: usize) -> Choice {
    let x = &inst.opts[i];
    match x.kind {
        OptKind::Whole => Choice::Whole(StoreIdx(x.store)),
        OptKind::Dc => Choice::Dc(x.store),
        OptKind::Unfilled => Choice::Unfilled(unfilled_reason(inst, o)),
        OptKind::Line(_) => unreachable!("lines are not single options"),
    }
}

fn unfilled_reason(inst: &Instance, o: usize) -> UnfilledReason {
    if inst.options(o).iter().any(|x| x.kind != OptKind::Unfilled) {
        UnfilledReason::CandidatesExhausted
    } else {
        UnfilledReason::NoCandidate
    }
}

/// Largest use per row of order `o` over the options `keep` accepts, sorted by row: whole
/// options are alternatives (max), a split's lines add up.
fn max_use(inst: &Instance, o: usize, keep: impl Fn(usize) -> bool) -> Vec<(usize, f64)> {
    let mut entries: Vec<(usize, f64, bool)> = Vec::new();
    for i in inst.option_range(o) {
        if !keep(i) {
            continue;
        }
        let x = &inst.opts[i];
        let line = matches!(x.kind, OptKind::Line(_));
        inst.rows_of(o, x, |r, c| entries.push((r, c, line)));
    }
    entries.sort_unstable_by_key(|e| e.0);
    let mut out: Vec<(usize, f64)> = Vec::with_capacity(entries.len());
    let mut i = 0;
    while i < entries.len() {
        let r = entries[i].0;
        let (mut whole, mut split) = (0.0f64, 0.0f64);
        while i < entries.len() && entries[i].0 == r {
            if entries[i].2 {
                split += entries[i].1;
            } else {
                whole = whole.max(entries[i].1);
            }
            i += 1;
        }
        out.push((r, whole.max(split)));
    }
    out
}

/// An order of an integrally solved component: its integral choice and its LP candidates.
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
        let mut lazy = Lazy::new(&pre, options.network);
        let mut added: Vec<usize> = Vec::new();
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

    // Fractional components get an integral solve (branch and bound on the same rows); its
    // choices are taken where they fit, the rest are repaired like any fractional order.
    progress.stage("integral", 0);
    let mips: Vec<Option<Vec<f64>>> = components
        .par_iter()
        .zip(&solutions)
        .with_max_len(1)
        .map(|(c, s)| {
            (!is_integral(&s.values) && !c.rows.is_empty() && c.orders.len() <= MIP_MAX_ORDERS)
                .then(|| solve_component(&pre, c, Mode::Integer).ok().map(|m| m.values))
                .flatten()
        })
        .collect();

    // Read the solutions back: integral orders take their choice, the rest are repaired.
    let mut choices: Vec<Option<Choice>> = pre.fixed.clone();
    let mut lower_bound: f64 =
        choices.iter().enumerate().filter_map(|(o, c)| c.as_ref().and_then(|c| inst.cost_of(o, c))).sum();
    let mut left = pre.left.clone();
    let mut fractional: Vec<(usize, Vec<(f64, Choice)>)> = Vec::new();
    let mut duals = Vec::new();
    let (mut lp_columns, mut lp_rows) = (0, 0);
    let mut fractional_orders = 0;
    let mut deferred: Vec<Deferred> = Vec::new();
    for ((c, s), mip) in components.iter().zip(&solutions).zip(&mips) {
        lower_bound += s.objective;
        lp_columns += s.values.len();
        lp_rows += c.rows.len() + c.orders.len();
        for (&r, &d) in c.rows.iter().zip(&s.duals) {
            if d.abs() > EPS {
                duals.push((r, d));
            }
        }
        let mut at = 0;
        for &o in &c.orders {
            let o = o as usize;
            let (mut cands, used) = read_order(&pre, o, &s.values[at..]);
            let lp_integral = cands.first().is_some_and(|(v, _)| *v >= 1.0 - INT_TOL);
            if !lp_integral {
                fractional_orders += 1;
            }
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
                fractional.push((o, cands));
            }
        }
    }
    for (o, first, cands) in deferred {
        match first {
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
    Ok(Plan { solver: Solver::Lp, choices, lp: Some(stats) })
}

/// A solved component and what its solution draws on rows outside the model.
struct Solved {
    orders: Vec<u32>,
    rows: Vec<usize>,
    sol: ComponentSolution,
    contrib: Vec<(usize, f64)>,
}

/// Lazy row generation over components that grow as rows join the model: a union-find over
/// rows, the orders attached to each root, and the current solution of each component.
struct Lazy<'p> {
    pre: &'p Presolve<'p>,
    parent: Vec<u32>,
    members: FxHashMap<u32, Vec<u32>>,
    /// Per order: a model row it touches, or `u32::MAX`.
    anchor: Vec<u32>,
    in_model: Vec<bool>,
    /// Per row outside the model: what the current solutions use of it.
    usage: Vec<f64>,
    /// Component solutions by key: a root row, or `SINGLE + order` for an order touching no
    /// model row.
    sols: FxHashMap<u64, Solved>,
    solved: usize,
    reused: usize,
    /// Solve network components as min-cost flows.
    network: bool,
    /// Components solved as min-cost flows.
    flows: usize,
}

const SINGLE: u64 = 1 << 40;

impl<'p> Lazy<'p> {
    fn new(pre: &'p Presolve<'p>, network: bool) -> Lazy<'p> {
        let rows = pre.inst.rows();
        let mut lazy = Lazy {
            pre,
            parent: (0..rows as u32).collect(),
            members: FxHashMap::default(),
            anchor: vec![u32::MAX; pre.inst.len()],
            in_model: vec![false; rows],
            usage: vec![0.0; rows],
            sols: FxHashMap::default(),
            solved: 0,
            reused: 0,
            network,
            flows: 0,
        };
        let singles: Vec<u32> = (0..pre.inst.len() as u32).filter(|&o| pre.active[o as usize]).collect();
        let solved: Vec<Solved> = singles
            .par_iter()
            .with_min_len(1024)
            .map(|&o| lazy.finish(vec![o], Vec::new(), cheapest(pre, o as usize)))
            .collect();
        for (o, s) in singles.into_iter().zip(solved) {
            lazy.insert(SINGLE + u64::from(o), s);
        }
        lazy
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    fn remove(&mut self, key: u64) {
        if let Some(s) = self.sols.remove(&key) {
            for (r, u) in s.contrib {
                self.usage[r] -= u;
            }
        }
    }

    fn insert(&mut self, key: u64, s: Solved) {
        for &(r, u) in &s.contrib {
            self.usage[r] += u;
        }
        self.sols.insert(key, s);
    }

    /// Adds `rows` to the model, re-solves the components they touch and returns the rows
    /// outside the model the new solutions overfill.
    fn round(
        &mut self,
        rows: &[usize],
        cache: &mut LpCache,
        progress: &dyn Progress,
    ) -> Result<Vec<usize>, PlanError> {
        let pre = self.pre;
        let inst = pre.inst;
        for &r in rows {
            self.in_model[r] = true;
        }
        let mut dirty: Vec<u32> = Vec::new();
        for &r in rows {
            for k in pre.row_start[r] as usize..pre.row_start[r + 1] as usize {
                let p = pre.row_orders[k] as usize;
                if !pre.active[p] || !touches(pre, p, r) {
                    continue;
                }
                let rr = self.find(r as u32);
                if self.anchor[p] == u32::MAX {
                    self.anchor[p] = r as u32;
                    self.remove(SINGLE + p as u64);
                    self.members.entry(rr).or_default().push(p as u32);
                } else {
                    let a = self.find(self.anchor[p]);
                    if a != rr {
                        self.union(a, rr);
                    }
                }
            }
            let root = self.find(r as u32);
            dirty.push(root);
        }
        let mut dirty: Vec<u32> = dirty.into_iter().map(|d| self.find(d)).collect();
        dirty.sort_unstable();
        dirty.dedup();
        dirty.retain(|d| self.members.get(d).is_some_and(|m| !m.is_empty()));
        for &d in &dirty {
            self.remove(u64::from(d));
        }
        let in_model = &self.in_model;
        let members = &self.members;
        let mut jobs: Vec<(Component, u64)> = dirty
            .par_iter()
            .map(|d| {
                let mut orders = members[d].clone();
                orders.sort_unstable();
                let mut rows: Vec<usize> = Vec::new();
                for &o in &orders {
                    for i in inst.option_range(o as usize) {
                        if pre.alive[i] {
                            inst.rows_of(o as usize, &inst.opts[i], |r, _| {
                                if in_model[r] && pre.contested(r) {
                                    rows.push(r);
                                }
                            });
                        }
                    }
                }
                rows.sort_unstable();
                rows.dedup();
                let c = Component { orders, rows };
                let print = fingerprint(pre, &c);
                (c, print)
            })
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.0.orders.len()));
        progress.stage("solve", jobs.len() as u64);
        let network = self.network;
        let results: Vec<Result<(Solved, u64, u8), PlanError>> = jobs
            .into_par_iter()
            .with_max_len(1)
            .map(|(c, print)| {
                // 0: solved now, 1: solved earlier in this run, 2: from an earlier run.
                let (sol, origin) = match cache.map.get(&print) {
                    Some((s, made)) => (s.clone(), if *made == cache.generation { 1 } else { 2 }),
                    None => (solve_exact(pre, &c, network)?, 0),
                };
                progress.advance(1);
                Ok((self.finish(c.orders, c.rows, sol), print, origin))
            })
            .collect();
        let mut touched: Vec<usize> = Vec::new();
        for r in results {
            let (s, print, origin) = r?;
            if origin == 0 {
                self.solved += 1;
                self.flows += usize::from(s.sol.by_flow);
                cache.map.entry(print).or_insert_with(|| (s.sol.clone(), cache.generation));
            } else if origin == 2 {
                self.reused += 1;
            }
            touched.extend(s.contrib.iter().map(|c| c.0));
            let root = self.find(self.anchor[s.orders[0] as usize]);
            self.insert(u64::from(root), s);
        }
        if rows.is_empty() {
            // First round: the singles' usage.
            touched = self.usage.iter().enumerate().filter(|(_, &u)| u > 0.0).map(|(r, _)| r).collect();
        }
        touched.sort_unstable();
        touched.dedup();
        Ok(touched
            .into_iter()
            .filter(|&r| !self.in_model[r] && pre.contested(r) && self.usage[r] > pre.left[r] + 1e-7)
            .collect())
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ka, kb) = (self.members.get(&a).map_or(0, Vec::len), self.members.get(&b).map_or(0, Vec::len));
        let (big, small) = if ka >= kb { (a, b) } else { (b, a) };
        self.parent[small as usize] = big;
        self.remove(u64::from(small));
        self.remove(u64::from(big));
        if let Some(m) = self.members.remove(&small) {
            self.members.entry(big).or_default().extend(m);
        }
    }

    /// Wraps a component solution with its draw on rows outside the model.
    fn finish(&self, orders: Vec<u32>, rows: Vec<usize>, sol: ComponentSolution) -> Solved {
        let pre = self.pre;
        let inst = pre.inst;
        let mut contrib: Vec<(usize, f64)> = Vec::new();
        let mut at = 0;
        for &o in &orders {
            let o = o as usize;
            let mut has_split = false;
            for i in inst.option_range(o) {
                if !pre.alive[i] {
                    continue;
                }
                let v = sol.values[at];
                at += 1;
                has_split |= matches!(inst.opts[i].kind, OptKind::Line(_));
                if v > EPS {
                    inst.rows_of(o, &inst.opts[i], |r, coef| {
                        if !self.in_model[r] && pre.contested(r) {
                            contrib.push((r, coef * v));
                        }
                    });
                }
            }
            if has_split {
                at += 1;
            }
        }
        Solved { orders, rows, sol, contrib }
    }
}

/// Whether a live option of order `o` uses row `r`.
fn touches(pre: &Presolve, o: usize, r: usize) -> bool {
    let inst = pre.inst;
    let mut hit = false;
    for i in inst.option_range(o) {
        if pre.alive[i] {
            inst.rows_of(o, &inst.opts[i], |x, _| hit |= x == r);
        }
    }
    hit
}

/// Every order in one component with every row it touches.
fn monolith(pre: &Presolve) -> Vec<Component> {
    let inst = pre.inst;
    let orders: Vec<u32> = (0..inst.len() as u32).collect();
    let rows: Vec<usize> = (0..inst.rows()).filter(|&r| pre.contested(r)).collect();
    if orders.is_empty() {
        return Vec::new();
    }
    vec![Component { orders, rows }]
}

fn fingerprint(pre: &Presolve, c: &Component) -> u64 {
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

trait IntegerIf {
    fn integer_if(self, integer: bool) -> Self;
}

impl IntegerIf for good_lp::VariableDefinition {
    fn integer_if(self, integer: bool) -> Self {
        if integer {
            self.integer()
        } else {
            self
        }
    }
}

/// Solves one component's LP. A component of one order without rows takes its cheapest option;
/// with `network`, a component that is a network is solved as a min-cost flow.
fn solve_exact(pre: &Presolve, c: &Component, network: bool) -> Result<ComponentSolution, PlanError> {
    if c.rows.is_empty() && c.orders.len() == 1 {
        return Ok(cheapest(pre, c.orders[0] as usize));
    }
    if network {
        if let Some(sol) = solve_flow(pre, c) {
            return Ok(sol);
        }
    }
    solve_component(pre, c, Mode::Lp)
}

/// Solves component `c` as a min-cost flow when its LP is a network: every order has one line
/// of one unit (its whole-store options use one cell and one capacity, each with coefficient 1)
/// and every row bound is integral. Order -> cell (when in the model) -> store capacity (when in
/// the model) -> sink; the DC and "unfilled" go straight to the sink. `None` when `c` is not a
/// network.
fn solve_flow(pre: &Presolve, c: &Component) -> Option<ComponentSolution> {
    let inst = pre.inst;
    let network = c.orders.iter().all(|&o| {
        matches!(inst.lines(o as usize), [(_, 1)])
            && inst.option_range(o as usize).all(|i| !matches!(inst.opts[i].kind, OptKind::Line(_)))
    }) && c.rows.iter().all(|&r| (pre.left[r] - pre.left[r].round()).abs() <= EPS);
    if !network {
        return None;
    }
    let n = c.orders.len();
    let m = c.rows.len();
    let sink = n + m;
    let row_node = |r: usize| c.rows.binary_search(&r).ok().map(|j| n + j);
    let mut g = MinCostFlow::new(n + m + 1);
    let mut arcs: Vec<(flow::Arc, f64)> = Vec::new();
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
            arcs.push((g.add_arc(k, head, 1, x.cost - base), x.cost - base));
        }
    }
    let caps: Vec<flow::Arc> = c
        .rows
        .iter()
        .enumerate()
        .map(|(j, &r)| {
            let next = if r < inst.cells() {
                row_node(inst.capacity_row(inst.cell(r).0 .0)).unwrap_or(sink)
            } else {
                sink
            };
            g.add_arc(n + j, next, pre.left[r].round().max(0.0) as i64, 0.0)
        })
        .collect();
    // Every order has its "unfilled" option straight to the sink, so every unit gets there.
    if !g.route_units(0..n, sink) {
        return None;
    }
    let values: Vec<f64> = arcs.iter().map(|&(a, _)| g.flow(a) as f64).collect();
    objective += arcs.iter().map(|&(a, cost)| g.flow(a) as f64 * cost).sum::<f64>();
    let duals = caps.iter().map(|&a| g.reduced_cost(a).min(0.0)).collect();
    Some(ComponentSolution { values, objective, duals, by_flow: true })
}

fn is_integral(values: &[f64]) -> bool {
    values.iter().all(|v| (v - v.round()).abs() <= INT_TOL)
}

/// The cheapest live option of order `o` as column values (an order with no constraints).
fn cheapest(pre: &Presolve, o: usize) -> ComponentSolution {
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

/// Builds and solves one component's LP (or, with `integer`, its integer program).
/// How to hand a component to HiGHS.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Mode {
    /// The LP with settings tuned for small sparse components.
    Lp,
    /// The integer program (branch and bound).
    Integer,
    /// The LP with HiGHS's default settings, as a peer would run it.
    Monolithic,
}

/// One column of a component: an option of an order, or the order's split column `z`.
#[derive(Copy, Clone)]
struct Col {
    order: usize,
    /// The option index, `None` for `z`.
    opt: Option<usize>,
}

/// Solves one component: every live option of its orders is a column.
fn solve_component(pre: &Presolve, c: &Component, mode: Mode) -> Result<ComponentSolution, PlanError> {
    let inst = pre.inst;
    let mut cols: Vec<Col> = Vec::new();
    for &o in &c.orders {
        let o = o as usize;
        let mut has_split = false;
        for i in inst.option_range(o).filter(|&i| pre.alive[i]) {
            has_split |= matches!(inst.opts[i].kind, OptKind::Line(_));
            cols.push(Col { order: o, opt: Some(i) });
        }
        if has_split {
            cols.push(Col { order: o, opt: None });
        }
    }
    solve_columns(pre, c, mode, &cols)
}

/// Builds the LP (or integer program) over `cols` and solves it with HiGHS.
fn solve_columns(
    pre: &Presolve,
    c: &Component,
    mode: Mode,
    cols: &[Col],
) -> Result<ComponentSolution, PlanError> {
    let integer = mode == Mode::Integer;
    let inst = pre.inst;
    let mut vars = ProblemVariables::new();
    let mut objective = Expression::with_capacity(cols.len());
    let mut columns: Vec<Variable> = Vec::with_capacity(cols.len());
    let mut row_expr: Vec<Expression> = vec![Expression::default(); c.rows.len()];
    let mut convex: Vec<Expression> = vec![Expression::default(); c.orders.len()];
    let mut line_start = Vec::with_capacity(c.orders.len());
    let mut lines: Vec<Expression> = Vec::new();
    let mut split_of: Vec<Option<Variable>> = vec![None; c.orders.len()];
    let mut k = usize::MAX;
    let mut at_order = usize::MAX;
    for col in cols {
        if col.order != at_order {
            at_order = col.order;
            k = k.wrapping_add(1);
            line_start.push(lines.len());
            lines.extend((0..inst.lines(col.order).len()).map(|_| Expression::default()));
        }
        let v = vars.add(variable().min(0.0).max(1.0).integer_if(integer));
        columns.push(v);
        match col.opt {
            None => {
                objective.add_mul(-inst.split_penalty, v);
                convex[k].add_mul(1.0, v);
                split_of[k] = Some(v);
            }
            Some(i) => {
                let x = &inst.opts[i];
                objective.add_mul(x.cost, v);
                match x.kind {
                    OptKind::Line(n) => lines[line_start[k] + usize::from(n)].add_mul(1.0, v),
                    _ => convex[k].add_mul(1.0, v),
                }
                inst.rows_of(col.order, x, |r, coef| {
                    if let Ok(at) = c.rows.binary_search(&r) {
                        row_expr[at].add_mul(coef, v);
                    }
                });
            }
        }
    }
    let mut model = vars.minimise(objective.clone()).using(highs);
    if mode != Mode::Monolithic {
        // Components are small and sparse: HiGHS's presolve costs more than it saves, and
        // devex pricing beats steepest edge here (measured on the 20k x 100k instances).
        model = model
            .set_threads(1)
            .set_option("presolve", "off")
            .set_option("simplex_dual_edge_weight_strategy", 1);
    }
    if integer {
        model = model.set_option("mip_rel_gap", 1e-7).set_time_limit(MIP_SECONDS);
    }
    for e in convex {
        model.add_constraint(e.eq(1.0));
    }
    for (k, &start) in line_start.iter().enumerate() {
        let end = line_start.get(k + 1).copied().unwrap_or(lines.len());
        if let Some(z) = split_of[k] {
            for e in &mut lines[start..end] {
                let mut e = std::mem::take(e);
                e.add_mul(-1.0, z);
                model.add_constraint(e.eq(0.0));
            }
        }
    }
    let refs: Vec<ConstraintReference> =
        row_expr.into_iter().zip(&c.rows).map(|(e, r)| model.add_constraint(e.leq(pre.left[*r]))).collect();
    let mut sol =
        model.solve().map_err(|e| PlanError::Solver { orders: c.orders.len(), message: e.to_string() })?;
    let values: Vec<f64> = columns.iter().map(|&v| sol.value(v)).collect();
    let objective = sol.eval(&objective);
    if integer {
        return Ok(ComponentSolution { values, objective, duals: Vec::new(), by_flow: false });
    }
    let dual = sol.compute_dual();
    let duals = refs.into_iter().map(|r| dual.dual(r)).collect();
    Ok(ComponentSolution { values, objective, duals, by_flow: false })
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
