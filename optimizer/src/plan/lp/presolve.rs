//! The exact presolve: drops rows that can never bind, fixes orders whose cheapest option
//! touches only such rows, drops options dominated by an order's cheapest uncontested one, to a
//! fixpoint.

use super::*;

/// Presolve state over the whole instance.
pub(super) struct Presolve<'a> {
    pub(super) inst: &'a Instance,
    pub(super) alive: Vec<bool>,
    pub(super) active: Vec<bool>,
    pub(super) left: Vec<f64>,
    pub(super) demand: Vec<f64>,
    /// Row -> orders that touch it (CSR).
    pub(super) row_start: Vec<u32>,
    pub(super) row_orders: Vec<u32>,
    pub(super) fixed: Vec<Option<Choice>>,
}

impl<'a> Presolve<'a> {
    pub(super) fn new(inst: &'a Instance) -> Presolve<'a> {
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

    pub(super) fn contested(&self, r: usize) -> bool {
        self.demand[r] > self.left[r] + EPS
    }

    pub(super) fn free(&self, o: usize, i: usize) -> bool {
        let mut free = true;
        self.inst.rows_of(o, &self.inst.opts[i], |r, _| free &= !self.contested(r));
        free
    }

    /// Runs the worklist to its fixpoint.
    pub(super) fn run(&mut self) {
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
    pub(super) fn step(&mut self, o: usize) {
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
pub(super) fn single_choice(inst: &Instance, o: usize, i: usize) -> Choice {
    let x = &inst.opts[i];
    match x.kind {
        OptKind::Whole => Choice::Whole(StoreIdx(x.store)),
        OptKind::Dc => Choice::Dc(x.store),
        OptKind::Unfilled => Choice::Unfilled(unfilled_reason(inst, o)),
        OptKind::Line(_) => unreachable!("lines are not single options"),
    }
}

pub(super) fn unfilled_reason(inst: &Instance, o: usize) -> UnfilledReason {
    if inst.options(o).iter().any(|x| x.kind != OptKind::Unfilled) {
        UnfilledReason::CandidatesExhausted
    } else {
        UnfilledReason::NoCandidate
    }
}

/// Largest use per row of order `o` over the options `keep` accepts, sorted by row: whole
/// options are alternatives (max), a split's lines add up.
pub(super) fn max_use(inst: &Instance, o: usize, keep: impl Fn(usize) -> bool) -> Vec<(usize, f64)> {
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
