//! A planning instance: every order's priced options and the rows (stock cells, store
//! capacities) they draw on, in flat arrays sized for a million orders.

use super::{PlanConfig, StockView};
use crate::engine::Engine;
use crate::index::Walk;
use crate::model::{LonLat, Mode, Order, SkuIdx, StoreIdx};
use crate::progress::Progress;
use crate::travel::{Origin, TravelCost};
use rayon::prelude::*;
use std::ops::ControlFlow;

/// What an option does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum OptKind {
    /// All lines from store `Opt::store`.
    Whole,
    /// Line `n` from store `Opt::store`, as part of a split.
    Line(u8),
    /// The whole order from DC `Opt::store`.
    Dc,
    /// Not served.
    Unfilled,
}

/// One priced option of one order.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Opt {
    pub kind: OptKind,
    /// Store index (Whole, Line) or DC index (Dc); 0 for Unfilled.
    pub store: u32,
    /// Money, per [`super::CostWeights`]. For a `Line` option it includes the split penalty of one
    /// extra shipment; the split as a whole gets the penalty back once.
    pub cost: f64,
    /// Length of the delivery leg.
    ///
    /// # Units
    /// Metres.
    pub distance_m: f32,
    /// Start of this option's cell ids in `Instance::opt_cells` (one per line for Whole, one
    /// for Line, none otherwise).
    cells: u32,
}

/// Orders with their options; rows `0..cells()` are stock cells, rows `cells()..rows()` are the
/// store capacities in store-index order.
#[derive(Clone, Debug)]
pub struct Instance {
    pub(super) line_start: Vec<u32>,
    /// (SKU index or `u32::MAX` when not in the catalogue, quantity).
    pub(super) lines: Vec<(u32, u32)>,
    pub(super) opt_start: Vec<u32>,
    pub(super) opts: Vec<Opt>,
    pub(super) opt_cells: Vec<u32>,
    /// Cell keys `store << 32 | sku`, sorted.
    pub(super) cell_keys: Vec<u64>,
    /// Per row: how much may be used (units for cells, orders for capacities).
    pub(super) bound: Vec<f64>,
    /// Order indexes sorted by (created_at, order_id): the greedy's arrival order.
    pub(super) arrival: Vec<u32>,
    pub(super) split_penalty: f64,
    pub(super) stores: usize,
}

/// Prices legs under the planner's weights: the one definition the candidates and the checkout
/// greedy share.
pub(crate) struct Pricer<'a> {
    pub network: &'a crate::model::Network,
    pub cost: &'a dyn TravelCost,
    pub weights: super::CostWeights,
}

impl Pricer<'_> {
    /// Where `order`'s legs are priced to: the customer for ship orders, the named store for
    /// pickup orders (a redirect costs its distance); `None` for a pickup at an unknown store.
    pub fn origin(&self, order: &Order) -> Option<LonLat> {
        match order.mode() {
            Mode::Ship => Some(order.customer()),
            Mode::Pickup => order
                .pickup_store()
                .and_then(|id| self.network.store_idx(id))
                .map(|s| self.network.store(s).location),
        }
    }

    /// (money, metres) of one shipment from `store` to `at`.
    pub fn store(&self, store: StoreIdx, pickup: bool, at: LonLat) -> (f64, f64) {
        let (s, w) = (self.network.store(store), self.weights);
        let leg = if pickup {
            crate::travel::Leg { distance_m: s.location.distance_m(at), eta_s: 0 }
        } else {
            self.cost.leg(Origin { location: s.location, city: s.city }, at)
        };
        let c =
            w.per_km * leg.distance_m / 1000.0 + w.per_hour * f64::from(leg.eta_s) / 3600.0 + w.per_shipment;
        (c, leg.distance_m)
    }

    /// (money, metres) of serving the order from DC `i`.
    pub fn dc(&self, i: usize, at: LonLat) -> (f64, f64) {
        let (dc, w) = (&self.network.dcs()[i], self.weights);
        let leg = self.cost.leg(Origin { location: dc.location, city: dc.city }, at);
        let c = w.dc_flat
            + w.dc_per_km * leg.distance_m / 1000.0
            + w.per_hour * f64::from(leg.eta_s) / 3600.0
            + w.per_shipment;
        (c, leg.distance_m)
    }
}

/// Options of one order before flattening.
#[derive(Default)]
struct Draft {
    opts: Vec<Opt>,
    keys: Vec<u64>,
}

fn key(store: StoreIdx, sku: u32) -> u64 {
    (u64::from(store.0) << 32) | u64::from(sku)
}

impl Instance {
    /// Builds the options of `orders` over the engine's index and `view`'s stock.
    ///
    /// # Runtime
    /// O(n k log s) for n orders, k candidates and s stores; parallel over orders.
    pub fn build(
        engine: &Engine,
        view: &dyn StockView,
        cost: &dyn TravelCost,
        orders: &[Order],
        config: &PlanConfig,
        progress: &dyn Progress,
    ) -> Instance {
        let net = engine.network();
        let w = config.weights;
        progress.stage("candidates", orders.len() as u64);
        let resolved: Vec<Vec<(u32, u32)>> = orders
            .iter()
            .map(|o| {
                o.lines()
                    .iter()
                    .map(|l| (net.catalog().get(&l.sku).map_or(u32::MAX, |k| k.0), l.qty.get()))
                    .collect()
            })
            .collect();
        let drafts: Vec<Draft> = orders
            .par_iter()
            .zip(&resolved)
            .with_min_len(256)
            .map(|(o, lines)| {
                let d = Self::draft(engine, view, cost, o, lines, config);
                progress.advance(1);
                d
            })
            .collect();

        // Number the cells: sort every (key, position) once, then give each distinct key the
        // next row number and write it back at each position (one sort instead of a binary
        // search per key).
        let total: usize = drafts.iter().map(|d| d.keys.len()).sum();
        let mut tagged: Vec<(u64, u32)> = Vec::with_capacity(total);
        tagged.extend(drafts.iter().flat_map(|d| d.keys.iter()).enumerate().map(|(at, &k)| (k, at as u32)));
        tagged.par_sort_unstable();
        let mut cell_keys: Vec<u64> = Vec::new();
        let mut opt_cells = vec![0u32; total];
        for &(k, at) in &tagged {
            if cell_keys.last() != Some(&k) {
                cell_keys.push(k);
            }
            opt_cells[at as usize] = (cell_keys.len() - 1) as u32;
        }
        drop(tagged);

        let mut line_start = Vec::with_capacity(orders.len() + 1);
        let mut lines = Vec::with_capacity(resolved.iter().map(Vec::len).sum());
        let mut opt_start = Vec::with_capacity(orders.len() + 1);
        let mut opts = Vec::with_capacity(drafts.iter().map(|d| d.opts.len()).sum());
        line_start.push(0);
        opt_start.push(0);
        // Each option's cells are the next keys of its draft, in order.
        let mut at = 0;
        for (d, l) in drafts.into_iter().zip(resolved) {
            let n_lines = l.len();
            lines.extend(l);
            line_start.push(lines.len() as u32);
            let end = at + d.keys.len();
            for mut opt in d.opts {
                opt.cells = at as u32;
                at += match opt.kind {
                    OptKind::Whole => n_lines,
                    OptKind::Line(_) => 1,
                    OptKind::Dc | OptKind::Unfilled => 0,
                };
                opts.push(opt);
            }
            debug_assert_eq!(at, end, "every key belongs to one option");
            at = end;
            opt_start.push(opts.len() as u32);
        }
        let mut bound: Vec<f64> = cell_keys
            .par_iter()
            .map(|&k| f64::from(view.available(StoreIdx((k >> 32) as u32), SkuIdx(k as u32))))
            .collect();
        bound.extend((0..net.stores().len() as u32).map(|s| f64::from(view.capacity_left(StoreIdx(s)))));
        let mut arrival: Vec<u32> = (0..orders.len() as u32).collect();
        arrival.sort_by(|&a, &b| {
            let (a, b) = (&orders[a as usize], &orders[b as usize]);
            a.created_at().cmp(&b.created_at()).then_with(|| a.id().cmp(b.id()))
        });
        Instance {
            line_start,
            lines,
            opt_start,
            opts,
            opt_cells,
            cell_keys,
            bound,
            arrival,
            split_penalty: w.split_penalty,
            stores: net.stores().len(),
        }
    }

    fn draft(
        engine: &Engine,
        view: &dyn StockView,
        cost: &dyn TravelCost,
        order: &Order,
        lines: &[(u32, u32)],
        config: &PlanConfig,
    ) -> Draft {
        let net = engine.network();
        let w = config.weights;
        let mut d = Draft {
            opts: Vec::with_capacity(config.k * (1 + lines.len()) + 2),
            keys: Vec::with_capacity(config.k * 2 * lines.len()),
        };
        let unfilled = w.unfilled;
        let pricer = Pricer { network: net, cost, weights: w };
        let pickup = order.mode() == Mode::Pickup;
        let Some(at) = pricer.origin(order) else {
            // A pickup at a store the network lacks: nothing can serve it.
            d.opts.push(Opt { kind: OptKind::Unfilled, store: 0, cost: unfilled, distance_m: 0.0, cells: 0 });
            return d;
        };
        let price = |store: StoreIdx| pricer.store(store, pickup, at);
        let mut fallback = unfilled;
        if !pickup && config.dc_fallback {
            let best = (0..net.dcs().len())
                .map(|i| {
                    let (c, dist) = pricer.dc(i, at);
                    (c, dist, i)
                })
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((c, dist, i)) = best {
                if c < fallback {
                    fallback = c;
                }
                d.opts.push(Opt {
                    kind: OptKind::Dc,
                    store: i as u32,
                    cost: c,
                    distance_m: dist as f32,
                    cells: 0,
                });
            }
        }
        d.opts.push(Opt { kind: OptKind::Unfilled, store: 0, cost: unfilled, distance_m: 0.0, cells: 0 });
        if lines.iter().any(|l| l.0 == u32::MAX) {
            return d;
        }
        // Legs are never shorter than the great circle, so nothing past this distance can beat
        // the fallback; and no store beyond the checkout router's radius is a candidate.
        let max_m = if w.per_km > 0.0 {
            ((fallback - w.per_shipment) / w.per_km * 1000.0).max(0.0)
        } else {
            f64::INFINITY
        };
        let max_m = max_m.min(if pickup { config.pickup_radius_m } else { config.ship_radius_m });
        let capable = |c: &crate::index::Candidate| if pickup { c.pickup } else { c.ship };
        let k = config.k;
        let visit_cap = 64 * k;
        // Whole-order candidates: walk the rarest SKU's carriers, keep stores holding every line.
        let rarest = lines
            .iter()
            .min_by_key(|l| engine.ledger().carrier_count(SkuIdx(l.0)))
            .map(|l| SkuIdx(l.0))
            .expect("orders have lines");
        let mut found = 0;
        let mut visited = 0;
        engine.index().walk::<()>(Walk::Carriers(rarest), at, 0.0, max_m, |c| {
            visited += 1;
            if capable(&c) && lines.iter().all(|&(sku, q)| view.has(c.store, SkuIdx(sku), q)) {
                let (cost, dist) = price(c.store);
                if cost < fallback {
                    d.opts.push(Opt {
                        kind: OptKind::Whole,
                        store: c.store.0,
                        cost,
                        distance_m: dist as f32,
                        cells: 0,
                    });
                    d.keys.extend(lines.iter().map(|l| key(c.store, l.0)));
                    found += 1;
                }
            }
            if found == k || visited >= visit_cap {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if lines.len() > 1 && config.allow_split && !pickup {
            for (n, &(sku, q)) in lines.iter().enumerate() {
                let mut found = 0;
                let mut visited = 0;
                engine.index().walk::<()>(Walk::Carriers(SkuIdx(sku)), at, 0.0, max_m, |c| {
                    visited += 1;
                    if capable(&c) && view.has(c.store, SkuIdx(sku), q) {
                        let (cost, dist) = price(c.store);
                        let cost = cost + w.split_penalty;
                        if cost < fallback {
                            d.opts.push(Opt {
                                kind: OptKind::Line(n as u8),
                                store: c.store.0,
                                cost,
                                distance_m: dist as f32,
                                cells: 0,
                            });
                            d.keys.push(key(c.store, sku));
                            found += 1;
                        }
                    }
                    if found == k || visited >= visit_cap {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
            }
            // A split needs every line covered.
            let covered = (0..lines.len()).all(|n| d.opts.iter().any(|o| o.kind == OptKind::Line(n as u8)));
            if !covered {
                let mut keys = Vec::with_capacity(d.keys.len());
                let mut it = d.keys.iter();
                d.opts.retain(|o| match o.kind {
                    OptKind::Whole => {
                        keys.extend(it.by_ref().take(lines.len()));
                        true
                    }
                    OptKind::Line(_) => {
                        it.next();
                        false
                    }
                    _ => true,
                });
                d.keys = keys;
            }
        }
        d
    }

    /// Number of orders.
    pub fn len(&self) -> usize {
        self.opt_start.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of stock-cell rows.
    pub fn cells(&self) -> usize {
        self.cell_keys.len()
    }

    /// Number of rows (cells, then one capacity row per store).
    pub fn rows(&self) -> usize {
        self.bound.len()
    }

    /// Total options over all orders.
    pub fn option_count(&self) -> usize {
        self.opts.len()
    }

    /// The options of order `o`, in the order they were found.
    pub fn options(&self, o: usize) -> &[Opt] {
        &self.opts[self.opt_start[o] as usize..self.opt_start[o + 1] as usize]
    }

    pub(super) fn option_range(&self, o: usize) -> std::ops::Range<usize> {
        self.opt_start[o] as usize..self.opt_start[o + 1] as usize
    }

    /// The lines of order `o` as (SKU index, quantity).
    pub fn lines(&self, o: usize) -> &[(u32, u32)] {
        &self.lines[self.line_start[o] as usize..self.line_start[o + 1] as usize]
    }

    /// The (store, SKU) of a cell row.
    pub fn cell(&self, row: usize) -> (StoreIdx, SkuIdx) {
        let k = self.cell_keys[row];
        (StoreIdx((k >> 32) as u32), SkuIdx(k as u32))
    }

    /// The row of a stock cell, when some option uses it.
    pub fn cell_row(&self, store: StoreIdx, sku: SkuIdx) -> Option<usize> {
        self.cell_keys.binary_search(&key(store, sku.0)).ok()
    }

    /// The capacity row of a store.
    pub fn capacity_row(&self, store: u32) -> usize {
        self.cells() + store as usize
    }

    /// The bound of every row.
    pub fn bounds(&self) -> &[f64] {
        &self.bound
    }

    /// Calls `f(row, coefficient)` for each row option `opt` of order `o` uses.
    #[inline]
    pub fn rows_of(&self, o: usize, opt: &Opt, mut f: impl FnMut(usize, f64)) {
        let lines = self.lines(o);
        match opt.kind {
            OptKind::Whole => {
                for (n, l) in lines.iter().enumerate() {
                    f(self.opt_cells[opt.cells as usize + n] as usize, f64::from(l.1));
                }
                f(self.capacity_row(opt.store), 1.0);
            }
            OptKind::Line(n) => {
                f(self.opt_cells[opt.cells as usize] as usize, f64::from(lines[usize::from(n)].1));
                f(self.capacity_row(opt.store), 1.0);
            }
            OptKind::Dc | OptKind::Unfilled => {}
        }
    }

    /// Cost of serving order `o` by `choice`, with the options' prices (`None` when the choice
    /// uses a store that is not among the order's options).
    pub fn cost_of(&self, o: usize, choice: &super::Choice) -> Option<f64> {
        use super::Choice;
        let opts = self.options(o);
        match choice {
            Choice::Whole(s) => {
                opts.iter().find(|x| x.kind == OptKind::Whole && x.store == s.0).map(|x| x.cost)
            }
            Choice::Split(stores) => {
                let mut total = -self.split_penalty;
                for (n, s) in stores.iter().enumerate() {
                    total += opts
                        .iter()
                        .find(|x| x.kind == OptKind::Line(n as u8) && x.store == s.0)
                        .map(|x| x.cost)?;
                }
                Some(total)
            }
            Choice::Dc(i) => opts.iter().find(|x| x.kind == OptKind::Dc && x.store == *i).map(|x| x.cost),
            Choice::Unfilled(_) => opts.iter().find(|x| x.kind == OptKind::Unfilled).map(|x| x.cost),
        }
    }

    /// The cheapest uncapacitated option of order `o` (its DC or leaving it unfilled).
    pub fn fallback_cost(&self, o: usize) -> f64 {
        self.options(o)
            .iter()
            .filter(|x| matches!(x.kind, OptKind::Dc | OptKind::Unfilled))
            .map(|x| x.cost)
            .fold(f64::INFINITY, f64::min)
    }

    /// The split penalty the line options include.
    pub fn split_penalty(&self) -> f64 {
        self.split_penalty
    }

    /// Number of stores in the network.
    pub fn store_count(&self) -> usize {
        self.stores
    }
}
