//! The LP planner: an exact presolve, independent components solved in parallel with good_lp +
//! HiGHS, then rounding and repair where the LP is fractional.
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

use super::greedy::{apply, serve, take_if_fits};
use super::instance::{Instance, OptKind};
use super::{Choice, Plan, PlanError, Solver, UnfilledReason};
use crate::generate::Progress;
use crate::model::StoreIdx;
use good_lp::constraint::ConstraintReference;
use good_lp::solvers::highs::highs;
use good_lp::{
    variable, Constraint, DualValues, Expression, ProblemVariables, Solution, SolutionWithDual, SolverModel,
    Variable,
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

/// How to run the LP planner.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LpOptions {
    /// Presolve and split into components (`false`: one monolithic LP over every row, as a peer
    /// would solve it).
    pub decompose: bool,
}

impl Default for LpOptions {
    fn default() -> Self {
        LpOptions { decompose: true }
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
    /// Components solved by HiGHS in this run (the rest came from the re-solve cache or were a
    /// single order solved directly).
    pub components_solved: usize,
    pub components_reused: usize,
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
    map: FxHashMap<u64, ComponentSolution>,
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
    let components = if options.decompose { components(&pre) } else { monolith(&pre) };
    let presolve_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    progress.stage("solve", components.len() as u64);
    let prints: Vec<u64> = components.par_iter().map(|c| fingerprint(&pre, c)).collect();
    let cached: Vec<Option<ComponentSolution>> = match &cache {
        Some(cache) => prints.iter().map(|p| cache.map.get(p).cloned()).collect(),
        None => vec![None; components.len()],
    };
    let mut order: Vec<usize> = (0..components.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(components[i].orders.len()));
    let results: Vec<(usize, Result<(ComponentSolution, bool), PlanError>)> = order
        .par_iter()
        .with_max_len(1)
        .map(|&i| {
            let c = &components[i];
            let r = match &cached[i] {
                Some(s) => Ok((s.clone(), false)),
                None => solve_component(&pre, c, false)
                    .and_then(|lp| {
                        if lp.values.iter().all(|v| (v - v.round()).abs() <= INT_TOL) {
                            return Ok(lp);
                        }
                        // Fractional: branch and bound on the same model, keeping the LP bound
                        // and duals. Past the size limit or time limit, rounding repairs it.
                        if c.orders.len() > MIP_MAX_ORDERS {
                            return Ok(lp);
                        }
                        match solve_component(&pre, c, true) {
                            Ok(mip) => Ok(ComponentSolution { values: mip.values, ..lp }),
                            Err(_) => Ok(lp),
                        }
                    })
                    .map(|s| (s, true)),
            };
            progress.advance(1);
            (i, r)
        })
        .collect();
    let mut solutions: Vec<Option<ComponentSolution>> = vec![None; components.len()];
    let (mut solved, mut reused) = (0, 0);
    for (i, r) in results {
        let (s, fresh) = r?;
        if fresh {
            solved += 1;
        } else {
            reused += 1;
        }
        solutions[i] = Some(s);
    }
    if let Some(cache) = cache {
        for (p, s) in prints.iter().zip(&solutions) {
            cache.map.insert(*p, s.clone().expect("every component solved"));
        }
    }

    // Read the LP solutions back: integral orders take their choice, the rest are repaired.
    let mut choices: Vec<Option<Choice>> = pre.fixed.clone();
    let mut lower_bound: f64 =
        choices.iter().enumerate().filter_map(|(o, c)| c.as_ref().and_then(|c| inst.cost_of(o, c))).sum();
    let mut left = pre.left.clone();
    let mut fractional: Vec<(usize, Vec<(f64, Choice)>)> = Vec::new();
    let mut duals = Vec::new();
    let (mut lp_columns, mut lp_rows) = (0, 0);
    for (c, s) in components.iter().zip(&solutions) {
        let s = s.as_ref().expect("solved");
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
            let (cands, used) = read_order(&pre, o, &s.values[at..]);
            at += used;
            match cands.first() {
                Some((v, choice)) if *v >= 1.0 - INT_TOL => {
                    apply(inst, o, choice, &mut left);
                    choices[o] = Some(choice.clone());
                }
                _ => fractional.push((o, cands)),
            }
        }
    }
    let fractional_orders = fractional.len();
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

/// Components of the active orders joined by contested rows (union-find over rows).
fn components(pre: &Presolve) -> Vec<Component> {
    let inst = pre.inst;
    let rows = inst.rows();
    let mut parent: Vec<u32> = (0..rows as u32).collect();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    let mut anchor = vec![u32::MAX; inst.len()];
    for o in 0..inst.len() {
        if !pre.active[o] {
            continue;
        }
        for i in inst.option_range(o) {
            if !pre.alive[i] {
                continue;
            }
            inst.rows_of(o, &inst.opts[i], |r, _| {
                if pre.contested(r) {
                    if anchor[o] == u32::MAX {
                        anchor[o] = r as u32;
                    } else {
                        let (a, b) = (find(&mut parent, anchor[o]), find(&mut parent, r as u32));
                        if a != b {
                            parent[a.max(b) as usize] = a.min(b);
                        }
                    }
                }
            });
        }
    }
    let mut by_root: FxHashMap<u32, usize> = FxHashMap::default();
    let mut out: Vec<Component> = Vec::new();
    for o in 0..inst.len() {
        if !pre.active[o] {
            continue;
        }
        // Every active order contests a row, or the presolve would have fixed it.
        let root = find(&mut parent, anchor[o]);
        let k = *by_root.entry(root).or_insert_with(|| {
            out.push(Component { orders: Vec::new(), rows: Vec::new() });
            out.len() - 1
        });
        out[k].orders.push(o as u32);
    }
    for c in &mut out {
        let mut rows: Vec<usize> = Vec::new();
        for &o in &c.orders {
            let o = o as usize;
            for i in inst.option_range(o) {
                if pre.alive[i] {
                    inst.rows_of(o, &inst.opts[i], |r, _| {
                        if pre.contested(r) {
                            rows.push(r);
                        }
                    });
                }
            }
        }
        rows.sort_unstable();
        rows.dedup();
        c.rows = rows;
    }
    out
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

/// Builds and solves one component's LP (or, with `integer`, its integer program).
fn solve_component(pre: &Presolve, c: &Component, integer: bool) -> Result<ComponentSolution, PlanError> {
    let inst = pre.inst;
    let mut vars = ProblemVariables::new();
    let mut objective = Expression::with_capacity(c.orders.len() * 4);
    let mut columns: Vec<Variable> = Vec::new();
    let mut row_expr: FxHashMap<usize, Expression> = FxHashMap::default();
    let mut equalities: Vec<Constraint> = Vec::with_capacity(c.orders.len());
    for &o in &c.orders {
        let o = o as usize;
        let n_lines = inst.lines(o).len();
        let mut convex = Expression::with_capacity(4);
        let mut lines: Vec<Expression> = vec![Expression::default(); n_lines];
        let mut has_split = false;
        for i in inst.option_range(o) {
            if !pre.alive[i] {
                continue;
            }
            let x = &inst.opts[i];
            let v = vars.add(variable().min(0.0).max(1.0).integer_if(integer));
            columns.push(v);
            objective.add_mul(x.cost, v);
            match x.kind {
                OptKind::Line(n) => {
                    has_split = true;
                    lines[usize::from(n)].add_mul(1.0, v);
                }
                _ => convex.add_mul(1.0, v),
            }
            inst.rows_of(o, x, |r, coef| {
                if pre.contested(r) {
                    row_expr.entry(r).or_default().add_mul(coef, v);
                }
            });
        }
        if has_split {
            let z = vars.add(variable().min(0.0).max(1.0).integer_if(integer));
            columns.push(z);
            objective.add_mul(-inst.split_penalty, z);
            convex.add_mul(1.0, z);
            for mut e in lines {
                e.add_mul(-1.0, z);
                equalities.push(e.eq(0.0));
            }
        }
        equalities.push(convex.eq(1.0));
    }
    let mut model = vars.minimise(objective.clone()).using(highs).set_threads(1);
    if integer {
        model = model.set_option("mip_rel_gap", 1e-7).set_time_limit(MIP_SECONDS);
    }
    for e in equalities {
        model.add_constraint(e);
    }
    let refs: Vec<ConstraintReference> = c
        .rows
        .iter()
        .map(|r| {
            let e = row_expr.remove(r).unwrap_or_default();
            model.add_constraint(e.leq(pre.left[*r]))
        })
        .collect();
    let mut sol =
        model.solve().map_err(|e| PlanError::Solver { orders: c.orders.len(), message: e.to_string() })?;
    let values: Vec<f64> = columns.iter().map(|&v| sol.value(v)).collect();
    let objective = sol.eval(&objective);
    if integer {
        return Ok(ComponentSolution { values, objective, duals: Vec::new() });
    }
    let dual = sol.compute_dual();
    let duals = refs.into_iter().map(|r| dual.dual(r)).collect();
    Ok(ComponentSolution { values, objective, duals })
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
