//! A large non-network component kept in one HiGHS instance across lazy rounds: each round adds
//! the orders that joined the component and the rows that joined the model, and the dual
//! simplex restarts from the last optimal basis instead of from scratch.
//!
//! Rows only join and orders only join (components grow by union), so the instance is brought
//! up to date by additions alone. Columns are generated: an order starts with a few cheap ones
//! and the rest join when the duals price them in. A split is one column per pattern (a store
//! for every line, its cost the lines' costs less the split penalty) under the order's one
//! convexity row, so no line row enters the basis; the patterns' convex hull is the same set as
//! the line columns tied to `z` of the other solvers, so the LP and its bound are the same. The
//! solution reads back in build order: a line option's value is the sum of its patterns', `z`
//! the sum of all the order's patterns.

use super::*;
use highs_sys::{
    kHighsModelStatusOptimal, kHighsStatusError, HighsInt, Highs_addCols, Highs_addRows, Highs_create,
    Highs_destroy, Highs_getModelStatus, Highs_getSolution, Highs_run,
};
use std::ffi::{c_void, CString};

/// Components of at least this many orders keep their HiGHS instance between rounds (in tests,
/// nearly every component, so that the property tests run this path).
#[cfg(not(test))]
pub(super) const WARM_MIN_ORDERS: usize = 2_000;
#[cfg(test)]
pub(super) const WARM_MIN_ORDERS: usize = 2;
/// Whole-store options each order starts with (its cheapest); the rest join when they price out.
const START_WHOLE: usize = 3;
/// A left-out option joins when its reduced cost is below minus this.
const PRICE_TOL: f64 = 1e-7;

/// One component's LP in a live HiGHS instance.
pub(super) struct WarmLp {
    highs: *mut c_void,
    /// HiGHS column of each whole-store, DC or "unfilled" option in the model (by option index).
    col_of: FxHashMap<u32, u32>,
    /// Per order in the model: its convexity row.
    order_at: FxHashMap<u32, u32>,
    /// Per order that may split: its pattern columns with the line option of each line.
    patterns: FxHashMap<u32, Vec<(u32, Vec<u32>)>>,
    /// HiGHS row of each capacity row in the model.
    row_at: FxHashMap<usize, u32>,
    cols: u32,
    rows: u32,
}

// SAFETY: the HiGHS instance is owned by this value alone and only used through `&mut self`
// (a shared reference can do nothing with it); HiGHS keeps no thread-local state tied to an
// instance.
unsafe impl Send for WarmLp {}
// SAFETY: as above: no method that uses the instance takes `&self`, but `solution`, which
// only reads.
unsafe impl Sync for WarmLp {}

impl Drop for WarmLp {
    fn drop(&mut self) {
        // SAFETY: `highs` came from `Highs_create` and is destroyed once.
        unsafe { Highs_destroy(self.highs) }
    }
}

/// Sparse columns or rows under construction, in HiGHS's compressed form.
#[derive(Default)]
struct Sparse {
    cost: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    start: Vec<HighsInt>,
    index: Vec<HighsInt>,
    value: Vec<f64>,
}

impl Sparse {
    fn open(&mut self, cost: f64, lower: f64, upper: f64) {
        self.cost.push(cost);
        self.lower.push(lower);
        self.upper.push(upper);
        self.start.push(self.index.len() as HighsInt);
    }
    fn entry(&mut self, at: u32, value: f64) {
        self.index.push(at as HighsInt);
        self.value.push(value);
    }
    fn len(&self) -> usize {
        self.start.len()
    }
}

fn error(c: &Component, message: impl Into<String>) -> PlanError {
    PlanError::Solver { orders: c.orders.len(), message: message.into() }
}

impl WarmLp {
    pub(super) fn new() -> WarmLp {
        // SAFETY: plain constructor; the pointer is owned by the returned value.
        let highs = unsafe { Highs_create() };
        let mut lp = WarmLp {
            highs,
            col_of: FxHashMap::default(),
            order_at: FxHashMap::default(),
            patterns: FxHashMap::default(),
            row_at: FxHashMap::default(),
            cols: 0,
            rows: 0,
        };
        lp.option_bool("output_flag", false);
        lp.option_int("threads", 1);
        lp.option_str("presolve", "off");
        // Unlike the small components (`highs.rs`, devex): on the contested mixed 20k x 100k
        // instance steepest edge takes 82 to 83 s against devex's 97.5 s and Dantzig's 122 s.
        lp.option_int("simplex_dual_edge_weight_strategy", 2);
        lp
    }

    fn option_bool(&mut self, name: &str, value: bool) {
        let name = CString::new(name).expect("option names have no NUL");
        // SAFETY: valid instance and NUL-terminated name.
        unsafe { highs_sys::Highs_setBoolOptionValue(self.highs, name.as_ptr(), HighsInt::from(value)) };
    }
    fn option_int(&mut self, name: &str, value: HighsInt) {
        let name = CString::new(name).expect("option names have no NUL");
        // SAFETY: valid instance and NUL-terminated name.
        unsafe { highs_sys::Highs_setIntOptionValue(self.highs, name.as_ptr(), value) };
    }
    fn option_str(&mut self, name: &str, value: &str) {
        let name = CString::new(name).expect("option names have no NUL");
        let value = CString::new(value).expect("option values have no NUL");
        // SAFETY: valid instance and NUL-terminated strings.
        unsafe { highs_sys::Highs_setStringOptionValue(self.highs, name.as_ptr(), value.as_ptr()) };
    }

    /// Adds `cols` as columns; their indices follow the ones before.
    fn add_cols(&mut self, c: &Component, cols: &Sparse) -> Result<(), PlanError> {
        self.add(c, cols, true)
    }

    /// Adds `rows` as rows; their indices follow the ones before.
    fn add_rows(&mut self, c: &Component, rows: &Sparse) -> Result<(), PlanError> {
        self.add(c, rows, false)
    }

    /// Adds `s` as columns (with their costs) or as rows (costs unused).
    fn add(&mut self, c: &Component, s: &Sparse, columns: bool) -> Result<(), PlanError> {
        if s.len() == 0 {
            return Ok(());
        }
        let (n, nz) = (s.len() as HighsInt, s.index.len() as HighsInt);
        let (lower, upper, start, index, value) =
            (s.lower.as_ptr(), s.upper.as_ptr(), s.start.as_ptr(), s.index.as_ptr(), s.value.as_ptr());
        // SAFETY: arrays of the lengths HiGHS reads (n bounds, costs and starts; nz entries).
        let status = unsafe {
            if columns {
                Highs_addCols(self.highs, n, s.cost.as_ptr(), lower, upper, nz, start, index, value)
            } else {
                Highs_addRows(self.highs, n, lower, upper, nz, start, index, value)
            }
        };
        if status == kHighsStatusError {
            return Err(error(
                c,
                if columns { "HiGHS refused new columns" } else { "HiGHS refused new rows" },
            ));
        }
        *(if columns { &mut self.cols } else { &mut self.rows }) += n as u32;
        Ok(())
    }

    /// Opens the column of whole-store, DC or "unfilled" option `i` of order `o` in `cols`,
    /// with its entries in the order's convexity row (when it exists) and in the capacity rows in
    /// the model.
    fn open_option(&mut self, pre: &Presolve, o: u32, i: usize, cols: &mut Sparse) {
        let inst = pre.inst;
        let x = &inst.opts[i];
        cols.open(x.cost, 0.0, 1.0);
        if let Some(&row) = self.order_at.get(&o) {
            cols.entry(row, 1.0);
        }
        inst.rows_of(o as usize, x, |r, coef| {
            if let Some(&row) = self.row_at.get(&r) {
                cols.entry(row, coef);
            }
        });
        self.col_of.insert(i as u32, self.cols + cols.len() as u32 - 1);
    }

    /// Opens the column of the split of order `o` that takes line `n` by option `lines[n]`.
    fn open_pattern(&mut self, pre: &Presolve, o: u32, lines: Vec<u32>, cols: &mut Sparse) {
        let inst = pre.inst;
        let cost = lines.iter().map(|&i| inst.opts[i as usize].cost).sum::<f64>() - inst.split_penalty;
        cols.open(cost, 0.0, 1.0);
        if let Some(&row) = self.order_at.get(&o) {
            cols.entry(row, 1.0);
        }
        let mut entries: Vec<(u32, f64)> = Vec::new();
        for &i in &lines {
            inst.rows_of(o as usize, &inst.opts[i as usize], |r, coef| {
                if let Some(&row) = self.row_at.get(&r) {
                    entries.push((row, coef));
                }
            });
        }
        // Two lines from one store: one entry per row, their coefficients summed.
        entries.sort_unstable_by_key(|e| e.0);
        for (k, &(row, coef)) in entries.iter().enumerate() {
            if k > 0 && entries[k - 1].0 == row {
                *cols.value.last_mut().expect("an entry before") += coef;
            } else {
                cols.entry(row, coef);
            }
        }
        let at = self.cols + cols.len() as u32 - 1;
        self.patterns.entry(o).or_default().push((at, lines));
    }

    /// Reduced cost of option `i` of order `o` under the capacity rows' duals (its own row's
    /// dual not included).
    fn reduced(&self, pre: &Presolve, o: u32, i: usize, row_dual: &[f64]) -> f64 {
        let inst = pre.inst;
        let x = &inst.opts[i];
        let mut reduced = x.cost;
        inst.rows_of(o as usize, x, |r, coef| {
            if let Some(&row) = self.row_at.get(&r) {
                reduced -= coef * row_dual[row as usize];
            }
        });
        reduced
    }

    /// The split of order `o` with the least reduced cost (each line by its best option) and
    /// that reduced cost (its own row's dual not included); `None` when the order cannot split.
    fn best_pattern(&self, pre: &Presolve, o: u32, row_dual: Option<&[f64]>) -> Option<(f64, Vec<u32>)> {
        let inst = pre.inst;
        let mut best = vec![(f64::INFINITY, u32::MAX); inst.lines(o as usize).len()];
        for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
            if let OptKind::Line(n) = inst.opts[i].kind {
                let rc = match row_dual {
                    Some(d) => self.reduced(pre, o, i, d),
                    None => inst.opts[i].cost,
                };
                let b = &mut best[usize::from(n)];
                if rc < b.0 {
                    *b = (rc, i as u32);
                }
            }
        }
        if best.is_empty() || best.iter().any(|b| b.1 == u32::MAX) {
            return None;
        }
        let rc = best.iter().map(|b| b.0).sum::<f64>() - inst.split_penalty;
        Some((rc, best.into_iter().map(|b| b.1).collect()))
    }

    /// Brings the model up to `c` (its new orders and rows), solves it from the last basis and
    /// prices the columns left out until none would lower the cost.
    pub(super) fn solve(&mut self, pre: &Presolve, c: &Component) -> Result<ComponentSolution, PlanError> {
        let inst = pre.inst;
        // New orders: their cheapest whole-store options, the DC, "unfilled" and their cheapest
        // split, with entries in the capacity rows already in the model; their convexity rows
        // follow once the columns exist.
        let mut cols = Sparse::default();
        let mut new_orders: Vec<(u32, usize, usize)> = Vec::new();
        let mut whole: Vec<(f64, usize)> = Vec::new();
        for &o in &c.orders {
            if self.order_at.contains_key(&o) {
                continue;
            }
            let first = cols.len();
            whole.clear();
            for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
                match inst.opts[i].kind {
                    OptKind::Whole => whole.push((inst.opts[i].cost, i)),
                    OptKind::Dc | OptKind::Unfilled => self.open_option(pre, o, i, &mut cols),
                    OptKind::Line(_) => {}
                }
            }
            whole.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(_, i) in whole.iter().take(START_WHOLE) {
                self.open_option(pre, o, i, &mut cols);
            }
            if let Some((_, lines)) = self.best_pattern(pre, o, None) {
                self.open_pattern(pre, o, lines, &mut cols);
            }
            new_orders.push((o, first, cols.len()));
        }
        self.add_cols(c, &cols)?;
        // Their convexity rows, over the columns just added.
        let mut rows = Sparse::default();
        for &(o, first, end) in &new_orders {
            self.order_at.insert(o, self.rows + rows.len() as u32);
            rows.open(0.0, 1.0, 1.0);
            for k in first..end {
                rows.entry(self.cols - cols.len() as u32 + k as u32, 1.0);
            }
        }
        // Capacity rows that joined the model, over every column in the model that uses them.
        let first_capacity = self.rows + rows.len() as u32;
        let mut new_rows: Vec<usize> = Vec::new();
        for &r in &c.rows {
            if self.row_at.contains_key(&r) {
                continue;
            }
            new_rows.push(r);
            rows.open(0.0, f64::NEG_INFINITY, pre.left[r]);
            for &p in &pre.row_orders[pre.row_start[r] as usize..pre.row_start[r + 1] as usize] {
                for i in inst.option_range(p as usize) {
                    if let Some(&at) = self.col_of.get(&(i as u32)) {
                        inst.rows_of(p as usize, &inst.opts[i], |x, coef| {
                            if x == r {
                                rows.entry(at, coef);
                            }
                        });
                    }
                }
                for (at, lines) in self.patterns.get(&p).map_or(&[][..], Vec::as_slice) {
                    let mut sum = 0.0;
                    for &i in lines {
                        inst.rows_of(p as usize, &inst.opts[i as usize], |x, coef| {
                            if x == r {
                                sum += coef;
                            }
                        });
                    }
                    if sum != 0.0 {
                        rows.entry(*at, sum);
                    }
                }
            }
        }
        self.add_rows(c, &rows)?;
        for (k, &r) in new_rows.iter().enumerate() {
            self.row_at.insert(r, first_capacity + k as u32);
        }

        // Solve, then price every column left out (each whole-store option, the best split);
        // repeat until none has a negative reduced cost (then the restricted LP's optimum is the
        // whole LP's, duals included).
        loop {
            // SAFETY: valid instance.
            let (status, model) = unsafe { (Highs_run(self.highs), Highs_getModelStatus(self.highs)) };
            if status == kHighsStatusError || model != kHighsModelStatusOptimal {
                return Err(error(c, format!("HiGHS stopped with model status {model}")));
            }
            let (col_value, row_dual) = self.solution();
            let mut cols = Sparse::default();
            for &o in &c.orders {
                let own = row_dual[self.order_at[&o] as usize];
                for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
                    if !matches!(inst.opts[i].kind, OptKind::Line(_))
                        && !self.col_of.contains_key(&(i as u32))
                        && self.reduced(pre, o, i, &row_dual) - own < -PRICE_TOL
                    {
                        self.open_option(pre, o, i, &mut cols);
                    }
                }
                if let Some((rc, lines)) = self.best_pattern(pre, o, Some(&row_dual)) {
                    let known = self.patterns.get(&o).is_some_and(|p| p.iter().any(|(_, l)| *l == lines));
                    if rc - own < -PRICE_TOL && !known {
                        self.open_pattern(pre, o, lines, &mut cols);
                    }
                }
            }
            if cols.len() == 0 {
                return Ok(self.read(pre, c, &col_value, &row_dual));
            }
            self.add_cols(c, &cols)?;
        }
    }

    /// The current primal column values and row duals.
    fn solution(&self) -> (Vec<f64>, Vec<f64>) {
        let mut col_value = vec![0.0; self.cols as usize];
        let mut col_dual = vec![0.0; self.cols as usize];
        let mut row_value = vec![0.0; self.rows as usize];
        let mut row_dual = vec![0.0; self.rows as usize];
        // SAFETY: arrays sized to the model's columns and rows.
        unsafe {
            Highs_getSolution(
                self.highs,
                col_value.as_mut_ptr(),
                col_dual.as_mut_ptr(),
                row_value.as_mut_ptr(),
                row_dual.as_mut_ptr(),
            )
        };
        (col_value, row_dual)
    }

    /// The component's solution in build order (options left out are 0; a line option is the
    /// sum of its patterns, `z` the sum of the order's patterns).
    fn read(&self, pre: &Presolve, c: &Component, col_value: &[f64], row_dual: &[f64]) -> ComponentSolution {
        let inst = pre.inst;
        let mut values = Vec::new();
        let mut objective = 0.0;
        let mut line_value: FxHashMap<u32, f64> = FxHashMap::default();
        for &o in &c.orders {
            line_value.clear();
            let mut z = 0.0;
            for (at, lines) in self.patterns.get(&o).map_or(&[][..], Vec::as_slice) {
                let v = col_value[*at as usize];
                z += v;
                for &i in lines {
                    *line_value.entry(i).or_default() += v;
                }
            }
            let mut split = false;
            for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
                let v = match inst.opts[i].kind {
                    OptKind::Line(_) => {
                        split = true;
                        line_value.get(&(i as u32)).copied().unwrap_or(0.0)
                    }
                    _ => self.col_of.get(&(i as u32)).map_or(0.0, |&at| col_value[at as usize]),
                };
                objective += inst.opts[i].cost * v;
                values.push(v);
            }
            if split {
                objective -= inst.split_penalty * z;
                values.push(z);
            }
        }
        let duals = c.rows.iter().map(|r| row_dual[self.row_at[r] as usize]).collect();
        ComponentSolution { values, objective, duals, by_flow: false }
    }
}
