//! A large non-network component kept in one HiGHS instance across lazy rounds: each round adds
//! the orders that joined the component (columns) and the rows that joined the model, and the
//! dual simplex restarts from the last optimal basis instead of from scratch.
//!
//! Rows only join and orders only join (components grow by union), so the instance is brought
//! up to date by additions alone. Columns of one order are contiguous, in the order the rest of
//! the planner builds them (its live options, then the split column `z`), so a solution reads
//! back in build order.

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
/// Options per line each order that may split starts with.
const START_LINE: usize = 2;
/// A left-out option joins when its reduced cost is below minus this.
const PRICE_TOL: f64 = 1e-7;

/// One component's LP in a live HiGHS instance.
pub(super) struct WarmLp {
    highs: *mut c_void,
    /// HiGHS column of each option in the model (by option index).
    col_of: FxHashMap<u32, u32>,
    /// Per order in the model: its first row (convexity; its line rows follow) and its split
    /// column `z`, if it may split.
    order_at: FxHashMap<u32, (u32, Option<u32>)>,
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
            row_at: FxHashMap::default(),
            cols: 0,
            rows: 0,
        };
        lp.option_bool("output_flag", false);
        lp.option_int("threads", 1);
        lp.option_str("presolve", "off");
        // As for every component (`highs.rs`): devex pricing beats steepest edge here.
        lp.option_int("simplex_dual_edge_weight_strategy", 1);
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
        if cols.len() == 0 {
            return Ok(());
        }
        // SAFETY: arrays of the lengths HiGHS reads (len columns, as many entries as indices).
        let status = unsafe {
            Highs_addCols(
                self.highs,
                cols.len() as HighsInt,
                cols.cost.as_ptr(),
                cols.lower.as_ptr(),
                cols.upper.as_ptr(),
                cols.index.len() as HighsInt,
                cols.start.as_ptr(),
                cols.index.as_ptr(),
                cols.value.as_ptr(),
            )
        };
        if status == kHighsStatusError {
            return Err(error(c, "HiGHS refused new columns"));
        }
        self.cols += cols.len() as u32;
        Ok(())
    }

    /// Adds `rows` as rows; their indices follow the ones before.
    fn add_rows(&mut self, c: &Component, rows: &Sparse) -> Result<(), PlanError> {
        if rows.len() == 0 {
            return Ok(());
        }
        // SAFETY: arrays of the lengths HiGHS reads (len rows, as many entries as indices).
        let status = unsafe {
            Highs_addRows(
                self.highs,
                rows.len() as HighsInt,
                rows.lower.as_ptr(),
                rows.upper.as_ptr(),
                rows.index.len() as HighsInt,
                rows.start.as_ptr(),
                rows.index.as_ptr(),
                rows.value.as_ptr(),
            )
        };
        if status == kHighsStatusError {
            return Err(error(c, "HiGHS refused new rows"));
        }
        self.rows += rows.len() as u32;
        Ok(())
    }

    /// Opens the column of option `i` of order `o` in `cols` (number `at`), with its entries in
    /// the order's own rows (when they exist) and in the capacity rows in the model.
    fn open_option(&mut self, pre: &Presolve, o: u32, i: usize, at: u32, cols: &mut Sparse) {
        let inst = pre.inst;
        let x = &inst.opts[i];
        cols.open(x.cost, 0.0, 1.0);
        if let Some(&(first, _)) = self.order_at.get(&o) {
            match x.kind {
                OptKind::Line(n) => cols.entry(first + 1 + u32::from(n), 1.0),
                _ => cols.entry(first, 1.0),
            }
        }
        inst.rows_of(o as usize, x, |r, coef| {
            if let Some(&row) = self.row_at.get(&r) {
                cols.entry(row, coef);
            }
        });
        self.col_of.insert(i as u32, at);
    }

    /// Brings the model up to `c` (its new orders and rows), solves it from the last basis and
    /// prices the options left out until none would lower the cost.
    pub(super) fn solve(&mut self, pre: &Presolve, c: &Component) -> Result<ComponentSolution, PlanError> {
        let inst = pre.inst;
        // New orders: a starting set of columns (their cheapest whole-store options, the DC and
        // "unfilled", the cheapest options of each line and the split column), with entries in
        // the capacity rows already in the model; their own rows follow once the columns exist.
        let mut cols = Sparse::default();
        let mut new_orders: Vec<(u32, u32, Option<u32>)> = Vec::new();
        let mut whole: Vec<(f64, usize)> = Vec::new();
        let mut lines: Vec<Vec<(f64, usize)>> = Vec::new();
        for &o in &c.orders {
            if self.order_at.contains_key(&o) {
                continue;
            }
            whole.clear();
            lines.clear();
            lines.resize(inst.lines(o as usize).len(), Vec::new());
            for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
                let x = &inst.opts[i];
                match x.kind {
                    OptKind::Line(n) => lines[usize::from(n)].push((x.cost, i)),
                    OptKind::Whole => whole.push((x.cost, i)),
                    OptKind::Dc | OptKind::Unfilled => {
                        let at = self.cols + cols.len() as u32;
                        self.open_option(pre, o, i, at, &mut cols);
                    }
                }
            }
            whole.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(_, i) in whole.iter().take(START_WHOLE) {
                let at = self.cols + cols.len() as u32;
                self.open_option(pre, o, i, at, &mut cols);
            }
            let split = lines.iter().any(|l| !l.is_empty());
            for l in &mut lines {
                l.sort_by(|a, b| a.0.total_cmp(&b.0));
                for &(_, i) in l.iter().take(START_LINE) {
                    let at = self.cols + cols.len() as u32;
                    self.open_option(pre, o, i, at, &mut cols);
                }
            }
            let z = split.then(|| {
                cols.open(-inst.split_penalty, 0.0, 1.0);
                self.cols + cols.len() as u32 - 1
            });
            new_orders.push((o, inst.lines(o as usize).len() as u32, z));
        }
        self.add_cols(c, &cols)?;
        // Their rows: convexity (whole options, DC, unfilled, z) and, when they may split, one
        // per line (its line options minus z).
        let mut rows = Sparse::default();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for &(o, n_lines, z) in &new_orders {
            let first = self.rows + rows.len() as u32;
            members.clear();
            members.resize(1 + n_lines as usize, Vec::new());
            for i in inst.option_range(o as usize) {
                if let Some(&at) = self.col_of.get(&(i as u32)) {
                    match inst.opts[i].kind {
                        OptKind::Line(n) => members[1 + usize::from(n)].push(at),
                        _ => members[0].push(at),
                    }
                }
            }
            rows.open(0.0, 1.0, 1.0);
            for &k in &members[0] {
                rows.entry(k, 1.0);
            }
            if let Some(z) = z {
                rows.entry(z, 1.0);
                for m in &members[1..] {
                    rows.open(0.0, 0.0, 0.0);
                    for &k in m {
                        rows.entry(k, 1.0);
                    }
                    rows.entry(z, -1.0);
                }
            }
            self.order_at.insert(o, (first, z));
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
            }
        }
        self.add_rows(c, &rows)?;
        for (k, &r) in new_rows.iter().enumerate() {
            self.row_at.insert(r, first_capacity + k as u32);
        }

        // Solve, then price every option left out; repeat until none has a negative reduced
        // cost (then the restricted LP's optimum is the whole LP's, duals included).
        loop {
            // SAFETY: valid instance.
            let (status, model) = unsafe { (Highs_run(self.highs), Highs_getModelStatus(self.highs)) };
            if status == kHighsStatusError || model != kHighsModelStatusOptimal {
                return Err(error(c, format!("HiGHS stopped with model status {model}")));
            }
            let (col_value, row_dual) = self.solution();
            let mut cols = Sparse::default();
            for &o in &c.orders {
                let (first, _) = self.order_at[&o];
                for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
                    if self.col_of.contains_key(&(i as u32)) {
                        continue;
                    }
                    let x = &inst.opts[i];
                    let own = match x.kind {
                        OptKind::Line(n) => first + 1 + u32::from(n),
                        _ => first,
                    };
                    let mut reduced = x.cost - row_dual[own as usize];
                    inst.rows_of(o as usize, x, |r, coef| {
                        if let Some(&row) = self.row_at.get(&r) {
                            reduced -= coef * row_dual[row as usize];
                        }
                    });
                    if reduced < -PRICE_TOL {
                        let at = self.cols + cols.len() as u32;
                        self.open_option(pre, o, i, at, &mut cols);
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

    /// The component's solution in build order (options left out are 0).
    fn read(&self, pre: &Presolve, c: &Component, col_value: &[f64], row_dual: &[f64]) -> ComponentSolution {
        let inst = pre.inst;
        let mut values = Vec::new();
        let mut objective = 0.0;
        for &o in &c.orders {
            for i in inst.option_range(o as usize).filter(|&i| pre.alive[i]) {
                let v = self.col_of.get(&(i as u32)).map_or(0.0, |&at| col_value[at as usize]);
                objective += inst.opts[i].cost * v;
                values.push(v);
            }
            if let (_, Some(z)) = self.order_at[&o] {
                let v = col_value[z as usize];
                objective -= inst.split_penalty * v;
                values.push(v);
            }
        }
        let duals = c.rows.iter().map(|r| row_dual[self.row_at[r] as usize]).collect();
        ComponentSolution { values, objective, duals, by_flow: false }
    }
}
