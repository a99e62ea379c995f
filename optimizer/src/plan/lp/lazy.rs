//! Lazy row generation: components grow as contested rows that a solution violates join the
//! model; only components whose fingerprint changed are solved again.

use super::components::{cheapest, fingerprint, solve_exact};
use super::warm::WarmLp;
use super::*;

/// A solved component and what its solution draws on rows outside the model.
pub(super) struct Solved {
    pub(super) orders: Vec<u32>,
    pub(super) rows: Vec<usize>,
    pub(super) sol: ComponentSolution,
    pub(super) contrib: Vec<(usize, f64)>,
}

/// Lazy row generation over components that grow as rows join the model: a union-find over
/// rows, the orders attached to each root, and the current solution of each component.
pub(super) struct Lazy<'p> {
    pub(super) pre: &'p Presolve<'p>,
    pub(super) parent: Vec<u32>,
    pub(super) members: FxHashMap<u32, Vec<u32>>,
    /// Per order: a model row it touches, or `u32::MAX`.
    pub(super) anchor: Vec<u32>,
    pub(super) in_model: Vec<bool>,
    /// Per row outside the model: what the current solutions use of it.
    pub(super) usage: Vec<f64>,
    /// Component solutions by key: a root row, or `SINGLE + order` for an order touching no
    /// model row.
    pub(super) sols: FxHashMap<u64, Solved>,
    pub(super) solved: usize,
    pub(super) reused: usize,
    /// Solve network components as min-cost flows, with this solver.
    pub(super) network: Option<FlowSolver>,
    /// Components solved as min-cost flows.
    pub(super) flows: usize,
    /// Live HiGHS instances of large non-network components, by root row.
    warm: FxHashMap<u32, WarmLp>,
}

pub(super) const SINGLE: u64 = 1 << 40;

/// A job's result: the solved component, its fingerprint, where the solution came from (0:
/// solved now, 1: solved earlier in this run, 2: from an earlier run), its root row and its
/// live HiGHS instance.
type Outcome = (Solved, u64, u8, u32, Option<WarmLp>);

impl<'p> Lazy<'p> {
    pub(super) fn new(pre: &'p Presolve<'p>, network: Option<FlowSolver>) -> Lazy<'p> {
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
            warm: FxHashMap::default(),
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

    pub(super) fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    pub(super) fn remove(&mut self, key: u64) {
        if let Some(s) = self.sols.remove(&key) {
            for (r, u) in s.contrib {
                self.usage[r] -= u;
            }
        }
    }

    pub(super) fn insert(&mut self, key: u64, s: Solved) {
        for &(r, u) in &s.contrib {
            self.usage[r] += u;
        }
        self.sols.insert(key, s);
    }

    /// Adds `rows` to the model, re-solves the components they touch and returns the rows
    /// outside the model the new solutions overfill.
    pub(super) fn round(
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
        // Each order that may use a new row, once: it joins the component of every model row
        // its live options use (the rows it joined before are in that component already).
        let mut orders: Vec<u32> = rows
            .iter()
            .flat_map(|&r| {
                pre.row_orders[pre.row_start[r] as usize..pre.row_start[r + 1] as usize].iter().copied()
            })
            .filter(|&p| pre.active[p as usize])
            .collect();
        orders.sort_unstable();
        orders.dedup();
        let mut uses: Vec<usize> = Vec::new();
        for p in orders {
            let p = p as usize;
            uses.clear();
            for i in inst.option_range(p) {
                if pre.alive[i] {
                    inst.rows_of(p, &inst.opts[i], |x, _| {
                        if self.in_model[x] {
                            uses.push(x);
                        }
                    });
                }
            }
            for &x in &uses {
                let rr = self.find(x as u32);
                if self.anchor[p] == u32::MAX {
                    self.anchor[p] = x as u32;
                    self.remove(SINGLE + p as u64);
                    self.members.entry(rr).or_default().push(p as u32);
                } else {
                    let a = self.find(self.anchor[p]);
                    if a != rr {
                        self.union(a, rr);
                    }
                }
            }
        }
        let mut dirty: Vec<u32> = rows.iter().map(|&r| self.find(r as u32)).collect();
        dirty.sort_unstable();
        dirty.dedup();
        dirty.retain(|d| self.members.get(d).is_some_and(|m| !m.is_empty()));
        for &d in &dirty {
            self.remove(u64::from(d));
        }
        let in_model = &self.in_model;
        let members = &self.members;
        let mut jobs: Vec<(Component, u64, u32)> = dirty
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
                (c, print, *d)
            })
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.0.orders.len()));
        progress.stage("solve", jobs.len() as u64);
        let network = self.network;
        let jobs: Vec<(Component, u64, u32, Option<WarmLp>)> =
            jobs.into_iter().map(|(c, print, d)| (c, print, d, self.warm.remove(&d))).collect();
        let results: Vec<Result<Outcome, PlanError>> = jobs
            .into_par_iter()
            .with_max_len(1)
            .map(|(c, print, d, warm)| {
                // 0: solved now, 1: solved earlier in this run, 2: from an earlier run.
                let (sol, origin, warm) = match cache.map.get(&print) {
                    Some((s, made)) => (s.clone(), if *made == cache.generation { 1 } else { 2 }, warm),
                    None => {
                        let (s, warm) = solve_exact(pre, &c, network, warm)?;
                        (s, 0, warm)
                    }
                };
                progress.advance(1);
                Ok((self.finish(c.orders, c.rows, sol), print, origin, d, warm))
            })
            .collect();
        let mut touched: Vec<usize> = Vec::new();
        for r in results {
            let (s, print, origin, d, warm) = r?;
            if let Some(warm) = warm {
                self.warm.insert(d, warm);
            }
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

    pub(super) fn union(&mut self, a: u32, b: u32) {
        let (ka, kb) = (self.members.get(&a).map_or(0, Vec::len), self.members.get(&b).map_or(0, Vec::len));
        let (big, small) = if ka >= kb { (a, b) } else { (b, a) };
        self.parent[small as usize] = big;
        if let Some(warm) = self.warm.remove(&small) {
            // The larger component's instance is kept; the smaller one's orders join it anew.
            self.warm.entry(big).or_insert(warm);
        }
        self.remove(u64::from(small));
        self.remove(u64::from(big));
        if let Some(m) = self.members.remove(&small) {
            self.members.entry(big).or_default().extend(m);
        }
    }

    /// Wraps a component solution with its draw on rows outside the model.
    pub(super) fn finish(&self, orders: Vec<u32>, rows: Vec<usize>, sol: ComponentSolution) -> Solved {
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
