//! The checkout router: for one order, which store (or stores, or DC) serves it, decided and
//! reserved in one step.
//!
//! * `ship`: the nearest store within `ship_radius_m` that can supply every line, is open for
//!   shipping and has capacity left; else the split with the fewest shipments, then least total
//!   distance, among the nearest stocking stores of each line; else the nearest DC; else
//!   `unfulfillable` with a reason per line.
//! * `pickup`: the store the shopper named, if it can; else the nearest pickup store around it
//!   that can, returned as `alternative` (never a silent switch); else `unfulfillable`.
//!
//! Candidates come from the R-tree in great-circle order; each is checked against lock-free
//! availability bits, then reserved under its store lock. The first store whose reservation
//! succeeds is the decision, so deciding and reserving are one atomic step.

mod decision;
mod priced;
mod split;

pub use decision::{
    Decision, DecisionJson, Explanation, LineFailure, LineReason, Rejected, Rejection, ShipLine, Shipment,
    Source, Stage, Stages, Status,
};
pub use priced::BidPrices;

use crate::engine::Engine;
use crate::ledger::{LedgerError, Shortfall};
use crate::model::{LonLat, Mode, Order, OrderId, SkuIdx, StoreIdx, Timestamp};
use crate::travel::{Origin, Promise, TravelCost};
use std::ops::ControlFlow;

/// Router settings.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RouterConfig {
    /// Farthest a store may be from the customer to ship from it, metres.
    pub ship_radius_m: f64,
    /// Farthest an alternative pickup store may be from the chosen one, metres.
    pub pickup_radius_m: f64,
    /// Per line, how many nearest stocking stores the split search considers.
    pub split_candidates_per_line: usize,
    /// Most shipments a split may have.
    pub max_shipments: usize,
    /// Most stores one search walks before giving up on the single-store stage.
    pub max_walk: u32,
    /// Most rejected stores listed in an explanation.
    pub max_explained: usize,
    /// Time a store needs to prepare a pickup, seconds.
    pub pickup_prep_s: u32,
    /// Ship orders no store can serve go to the nearest DC (else they are unfulfillable).
    pub dc_fallback: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            ship_radius_m: 50_000.0,
            pickup_radius_m: 10_000.0,
            split_candidates_per_line: 8,
            max_shipments: 3,
            max_walk: 20_000,
            max_explained: 10,
            pickup_prep_s: 1800,
            dc_fallback: true,
        }
    }
}

/// Routing failures that are not "cannot serve" (those are a [`Decision`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("order {0} already holds a reservation")]
    AlreadyReserved(OrderId),
}

impl From<LedgerError> for RouteError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::DuplicateOrder(id) => RouteError::AlreadyReserved(id),
            other => unreachable!("reserve only fails with DuplicateOrder, got {other}"),
        }
    }
}

/// Routes orders against an [`Engine`] using a [`TravelCost`] for ETAs.
#[derive(Debug, Clone)]
pub struct Router<C> {
    config: RouterConfig,
    cost: C,
}

/// Per-call working state.
struct Ctx<'a> {
    engine: &'a Engine,
    order: &'a Order,
    lines: Vec<(SkuIdx, u32)>,
    now: Timestamp,
    explanation: Explanation,
    max_explained: usize,
    /// Ship mode, several lines: the first split candidates of the single-store walk's driver
    /// line (see [`DriverCarriers`]), so that the split search need not walk that line again.
    driver: Option<DriverCarriers>,
}

/// The nearest ship-capable stores with `sku` available met by a single-store walk that found
/// no store, at most `split_candidates_per_line` of them. That walk visited the same carriers in
/// the same order, within the same radius and walk limit, as the split search's walk for this
/// line, so this is the list that walk would collect.
struct DriverCarriers {
    sku: SkuIdx,
    stores: Vec<(StoreIdx, f64)>,
}

impl Ctx<'_> {
    fn reject(&mut self, store: StoreIdx, distance_m: f64, rejection: Rejection) {
        if self.explanation.rejected.len() < self.max_explained {
            self.explanation.rejected.push(Rejected { store, distance_m, rejection });
        } else {
            self.explanation.rejected_not_listed += 1;
        }
    }

    fn shortfall(&self, s: Shortfall, lines: &[(SkuIdx, u32)]) -> Rejection {
        match s {
            Shortfall::Line { line, missing } => Rejection::ShortOfSku { sku: lines[line].0, missing },
            Shortfall::Capacity { capacity_per_day } => Rejection::CapacityFull { capacity_per_day },
        }
    }
}

/// Every line of the order, as shipment lines.
fn all_lines(ctx: &Ctx<'_>) -> Vec<ShipLine> {
    ctx.lines.iter().map(|&(sku, qty)| ShipLine { sku, qty }).collect()
}

/// The line a store walk follows: the one the fewest stores have available now.
fn scarcest(ledger: &crate::ledger::StockLedger, lines: &[(SkuIdx, u32)]) -> SkuIdx {
    lines.iter().map(|l| l.0).min_by_key(|k| ledger.stocked_count(*k)).expect("orders have lines")
}

/// A store found by the single-store search, already reserved.
struct Found {
    store: StoreIdx,
    expires_at: Timestamp,
}

impl<C: TravelCost> Router<C> {
    pub fn new(config: RouterConfig, cost: C) -> Self {
        Router { config, cost }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    pub fn cost(&self) -> &C {
        &self.cost
    }

    /// Decides and reserves for one order at its `created_at` time.
    ///
    /// # Errors
    /// [`RouteError::AlreadyReserved`] when the order id already holds a reservation.
    pub fn route(&self, engine: &Engine, order: &Order) -> Result<Decision, RouteError> {
        self.route_at(engine, order, order.created_at())
    }

    /// Like [`Router::route`], for streams in which every order is its own (replays, plans,
    /// simulations): an id that already holds a record is forgotten and routed as a new order.
    pub fn route_anew(&self, engine: &Engine, order: &Order) -> Decision {
        match self.route(engine, order) {
            Ok(d) => d,
            Err(_) => {
                engine.ledger().forget_ended(order.id());
                self.route(engine, order).expect("a forgotten id routes")
            }
        }
    }

    /// Like [`Router::route`], at an explicit time (capacity day, opening hours, promise).
    pub fn route_at(&self, engine: &Engine, order: &Order, now: Timestamp) -> Result<Decision, RouteError> {
        let catalog = engine.network().catalog();
        let mut lines = Vec::with_capacity(order.lines().len());
        let mut unknown = Vec::new();
        for l in order.lines() {
            match catalog.get(&l.sku) {
                Some(k) => lines.push((k, l.qty.get())),
                None => unknown.push(LineFailure { sku: l.sku.clone(), reason: LineReason::UnknownSku }),
            }
        }
        let ctx = self.ctx(engine, order, lines, now);
        if !unknown.is_empty() {
            return Ok(self.unfulfillable(ctx, unknown));
        }
        match order.mode() {
            Mode::Ship => self.route_ship(ctx),
            Mode::Pickup => self.route_pickup(ctx),
        }
    }

    /// A fresh decision context for `order`'s known `lines` at `now`.
    fn ctx<'a>(
        &self,
        engine: &'a Engine,
        order: &'a Order,
        lines: Vec<(SkuIdx, u32)>,
        now: Timestamp,
    ) -> Ctx<'a> {
        Ctx {
            engine,
            order,
            lines,
            now,
            explanation: Explanation::default(),
            max_explained: self.config.max_explained,
            driver: None,
        }
    }

    fn route_ship(&self, mut ctx: Ctx<'_>) -> Result<Decision, RouteError> {
        let at = ctx.order.customer();
        ctx.explanation.stages.push(Stage::SingleStore);
        if let Some(f) = self.find_single(&mut ctx, at, Mode::Ship, self.config.ship_radius_m)? {
            let shipment = self.store_shipment(&ctx, f.store, all_lines(&ctx), Mode::Ship);
            return Ok(self.decision(ctx, Status::Assigned, vec![shipment], Some(f.expires_at)));
        }
        if ctx.lines.len() > 1 && self.config.max_shipments > 1 {
            ctx.explanation.stages.push(Stage::Split);
            if let Some((parts, expires_at)) = split::find(self, &mut ctx)? {
                return Ok(self.split_decision(ctx, &parts, expires_at));
            }
        }
        Ok(self.dc_or_nothing(ctx))
    }

    /// The decision of a split reserved as `parts` until `expires_at`.
    fn split_decision(&self, ctx: Ctx<'_>, parts: &split::Parts, expires_at: Timestamp) -> Decision {
        let shipments = parts
            .iter()
            .map(|(store, line_ix)| {
                let lines =
                    line_ix.iter().map(|&i| ShipLine { sku: ctx.lines[i].0, qty: ctx.lines[i].1 }).collect();
                self.store_shipment(&ctx, *store, lines, Mode::Ship)
            })
            .collect();
        self.decision(ctx, Status::Split, shipments, Some(expires_at))
    }

    /// The nearest DC to the customer, when the DC fallback is on.
    fn nearest_dc(&self, engine: &Engine, at: LonLat) -> Option<usize> {
        let dcs = engine.network().dcs().iter().enumerate().filter(|_| self.config.dc_fallback);
        dcs.min_by(|(_, a), (_, b)| a.location.distance_m(at).total_cmp(&b.location.distance_m(at)))
            .map(|(i, _)| i)
    }

    /// The ship order goes to its nearest DC, or is unfulfillable without one.
    fn dc_or_nothing(&self, mut ctx: Ctx<'_>) -> Decision {
        ctx.explanation.stages.push(Stage::Dc);
        let at = ctx.order.customer();
        if let Some(i) = self.nearest_dc(ctx.engine, at) {
            let dc = &ctx.engine.network().dcs()[i];
            let leg = self.cost.leg(Origin { location: dc.location, city: dc.city }, at);
            let zone = ctx.engine.network().zone();
            let shipment = Shipment {
                source: Source::Dc(i as u32),
                lon: dc.location.lon(),
                lat: dc.location.lat(),
                lines: all_lines(&ctx),
                distance_m: leg.distance_m,
                eta_s: leg.eta_s,
                promise: Promise::for_eta(zone, ctx.now, leg.eta_s),
            };
            return self.decision(ctx, Status::Dc, vec![shipment], None);
        }
        let failures = self.no_stock(&ctx, self.config.ship_radius_m);
        self.unfulfillable(ctx, failures)
    }

    fn route_pickup(&self, mut ctx: Ctx<'_>) -> Result<Decision, RouteError> {
        let named = ctx.order.pickup_store().expect("pickup orders name a store");
        let Some(store) = ctx.engine.network().store_idx(named) else {
            let failures = ctx
                .order
                .lines()
                .iter()
                .map(|l| LineFailure {
                    sku: l.sku.clone(),
                    reason: LineReason::UnknownPickupStore { store_id: named.clone() },
                })
                .collect();
            return Ok(self.unfulfillable(ctx, failures));
        };
        ctx.explanation.stages.push(Stage::PickupStore);
        let here = ctx.engine.network().store(store).location;
        let distance = ctx.order.customer().distance_m(here);
        ctx.explanation.candidates_considered += 1;
        if !ctx.engine.network().store(store).capabilities.pickup {
            ctx.reject(store, distance, Rejection::PickupDisabled);
        } else {
            match ctx.engine.ledger().reserve(ctx.order.id(), &[(store, &ctx.lines)], ctx.now)? {
                Ok(expires_at) => {
                    let shipment = self.store_shipment(&ctx, store, all_lines(&ctx), Mode::Pickup);
                    return Ok(self.decision(ctx, Status::Assigned, vec![shipment], Some(expires_at)));
                }
                Err(refused) => {
                    let r = ctx.shortfall(refused.shortfall, &ctx.lines);
                    ctx.reject(store, distance, r);
                }
            }
        }
        ctx.explanation.stages.push(Stage::Alternative);
        if let Some(f) = self.find_single(&mut ctx, here, Mode::Pickup, self.config.pickup_radius_m)? {
            let shipment = self.store_shipment(&ctx, f.store, all_lines(&ctx), Mode::Pickup);
            return Ok(self.decision(ctx, Status::Alternative, vec![shipment], Some(f.expires_at)));
        }
        let failures = self.no_stock(&ctx, self.config.pickup_radius_m);
        Ok(self.unfulfillable(ctx, failures))
    }

    /// Walks stores nearest first from `at` and reserves the first that can take every line.
    fn find_single(
        &self,
        ctx: &mut Ctx<'_>,
        at: LonLat,
        mode: Mode,
        radius_m: f64,
    ) -> Result<Option<Found>, RouteError> {
        let engine = ctx.engine;
        let ledger = engine.ledger();
        let driver = scarcest(ledger, &ctx.lines);
        let lines = std::mem::take(&mut ctx.lines);
        let mut walked = 0u32;
        // A multi-line ship order may go on to the split search, which wants this line's nearest
        // stocking stores: note them on the way.
        let k = self.config.split_candidates_per_line;
        let mut noted = (mode == Mode::Ship && lines.len() > 1).then(Vec::new);
        let outcome = engine.walk_stocked(driver, at, 0.0, radius_m, |c| {
            walked += 1;
            if walked > self.config.max_walk {
                return ControlFlow::Break(Ok(None));
            }
            let (store, capable) = match mode {
                Mode::Ship => (c.store, c.ship),
                Mode::Pickup => (c.store, c.pickup),
            };
            if let Some(noted) = noted.as_mut().filter(|n| capable && n.len() < k) {
                if ledger.maybe_available(store, driver) {
                    noted.push((store, c.distance_m()));
                }
            }
            if !capable {
                let r = if mode == Mode::Ship { Rejection::ShipDisabled } else { Rejection::PickupDisabled };
                ctx.reject(store, c.distance_m(), r);
                return ControlFlow::Continue(());
            }
            if let Some((sku, qty)) = lines.iter().find(|(sku, _)| !ledger.maybe_available(store, *sku)) {
                ctx.reject(store, c.distance_m(), Rejection::ShortOfSku { sku: *sku, missing: *qty });
                return ControlFlow::Continue(());
            }
            match ledger.reserve(ctx.order.id(), &[(store, &lines)], ctx.now) {
                Ok(Ok(expires_at)) => ControlFlow::Break(Ok(Some(Found { store, expires_at }))),
                Ok(Err(refused)) => {
                    let r = ctx.shortfall(refused.shortfall, &lines);
                    ctx.reject(store, c.distance_m(), r);
                    ControlFlow::Continue(())
                }
                Err(e) => ControlFlow::Break(Err(RouteError::from(e))),
            }
        });
        ctx.explanation.candidates_considered += walked.min(self.config.max_walk);
        ctx.lines = lines;
        let found = outcome.unwrap_or(Ok(None))?;
        if let Some(stores) = noted.filter(|_| found.is_none()) {
            ctx.driver = Some(DriverCarriers { sku: driver, stores });
        }
        if found.is_none() && walked <= self.config.max_walk {
            // Nothing within the radius: name the nearest carrier beyond it.
            let beyond = engine.walk_stocked(driver, at, radius_m, f64::INFINITY, |c| {
                ControlFlow::Break((c.store, c.distance_m()))
            });
            if let Some((store, d)) = beyond {
                ctx.reject(store, d, Rejection::OutsideRadius { radius_m });
            }
        }
        Ok(found)
    }

    fn store_shipment(&self, ctx: &Ctx<'_>, store: StoreIdx, lines: Vec<ShipLine>, mode: Mode) -> Shipment {
        let network = ctx.engine.network();
        let s = network.store(store);
        let wait = s.hours.wait_s(network.zone().local_second_of_day(ctx.now));
        let (distance_m, eta_s) = match mode {
            Mode::Ship => {
                let leg = self.cost.leg(Origin { location: s.location, city: s.city }, ctx.order.customer());
                (leg.distance_m, wait.saturating_add(leg.eta_s))
            }
            Mode::Pickup => (ctx.order.customer().distance_m(s.location), wait + self.config.pickup_prep_s),
        };
        Shipment {
            source: Source::Store(store),
            lon: s.location.lon(),
            lat: s.location.lat(),
            lines,
            distance_m,
            eta_s,
            promise: Promise::for_eta(network.zone(), ctx.now, eta_s),
        }
    }

    fn no_stock(&self, ctx: &Ctx<'_>, radius_m: f64) -> Vec<LineFailure> {
        ctx.order
            .lines()
            .iter()
            .map(|l| LineFailure { sku: l.sku.clone(), reason: LineReason::NoStockWithinRadius { radius_m } })
            .collect()
    }

    fn decision(
        &self,
        ctx: Ctx<'_>,
        status: Status,
        shipments: Vec<Shipment>,
        expires: Option<Timestamp>,
    ) -> Decision {
        Decision {
            order_id: ctx.order.id().clone(),
            status,
            shipments,
            unfulfilled: Vec::new(),
            explanation: ctx.explanation,
            reservation_expires_at: expires,
        }
    }

    fn unfulfillable(&self, ctx: Ctx<'_>, unfulfilled: Vec<LineFailure>) -> Decision {
        Decision {
            order_id: ctx.order.id().clone(),
            status: Status::Unfulfillable,
            shipments: Vec::new(),
            unfulfilled,
            explanation: ctx.explanation,
            reservation_expires_at: None,
        }
    }
}

#[cfg(test)]
mod tests;
