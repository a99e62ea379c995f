//! Checkout guided by prices: of the nearest stores that can take the whole order, the one
//! whose leg plus the worth of the stock and capacity it uses is least, or the DC when that is
//! cheaper still. This is bid-price control for online fulfilment (Acimovic and Graves,
//! "Making Better Fulfillment Decisions on the Fly in an Online Retail Environment", MSOM 2015):
//! a unit of scarce stock is worth what a later order near it would pay to have it, which the
//! duals of a plan over a forecast of the day estimate. The `duals` simulation policy prices
//! with those duals ([`crate::sim::replay_duals`]).

use super::{all_lines, split, Decision, Router, Stage, Status};
use crate::engine::Engine;
use crate::model::{LonLat, Mode, Order, SkuIdx, StoreIdx};
use crate::travel::TravelCost;
use std::ops::ControlFlow;

/// What serving an order from a store or a DC costs, the worth of what it uses included, in the
/// planner's money.
pub trait BidPrices {
    /// Serving `lines` from `store` to `origin` (the customer; for a pickup, the named store):
    /// the leg plus what the units and the capacity it takes are worth to later orders. A
    /// store's fixed part (`lines` empty) plus one part per line: splits are priced line by
    /// line.
    fn store(&self, store: StoreIdx, lines: &[(SkuIdx, u32)], pickup: bool, origin: LonLat) -> f64;
    /// Serving the order from DC `dc` to the customer at `at`.
    fn dc(&self, dc: usize, at: LonLat) -> f64;
    /// How many stores that can take the whole order are priced (the nearest ones).
    fn candidates(&self) -> usize {
        8
    }
    /// What each shipment of a split beyond the first costs.
    fn split_penalty(&self) -> f64 {
        0.0
    }
}

impl<C: TravelCost> Router<C> {
    /// Decides and reserves for `order` by `prices`: of the nearest [`BidPrices::candidates`]
    /// stores within the mode's radius that can take every line now, the cheapest, unless
    /// the DC (ship orders, with the DC fallback on) is cheaper than all of them. A ship order
    /// no single store can take is split by the cover of least price (each part's price, plus
    /// [`BidPrices::split_penalty`] per extra shipment) when that is below the DC's, else goes
    /// to the DC; other orders no single store can take go the router's usual way
    /// ([`Router::route_anew`]).
    /// Like `route_anew`, an id that already holds a record is routed as a new order.
    pub fn route_priced(&self, engine: &Engine, order: &Order, prices: &dyn BidPrices) -> Decision {
        let network = engine.network();
        let catalog = network.catalog();
        let lines: Option<Vec<(SkuIdx, u32)>> =
            order.lines().iter().map(|l| catalog.get(&l.sku).map(|k| (k, l.qty.get()))).collect();
        let Some(lines) = lines else { return self.route_anew(engine, order) };
        let named = order.pickup_store().and_then(|id| network.store_idx(id));
        let (origin, radius, pickup) = match (order.mode(), named) {
            (Mode::Ship, _) => (order.customer(), self.config.ship_radius_m, false),
            (Mode::Pickup, Some(s)) => (network.store(s).location, self.config.pickup_radius_m, true),
            (Mode::Pickup, None) => return self.route_anew(engine, order),
        };
        let (ledger, now) = (engine.ledger(), order.created_at());
        ledger.forget_ended(order.id());
        let driver = super::scarcest(ledger, &lines);
        let k = prices.candidates().max(1);
        let mut found: Vec<(f64, StoreIdx)> = Vec::with_capacity(k);
        let mut walked = 0u32;
        engine.walk_stocked::<()>(driver, origin, 0.0, radius, |c| {
            walked += 1;
            if walked > self.config.max_walk {
                return ControlFlow::Break(());
            }
            let capable = if pickup { c.pickup } else { c.ship };
            if capable
                && lines.iter().all(|(sku, _)| ledger.maybe_available(c.store, *sku))
                && ledger.check(c.store, &lines, now).is_ok()
            {
                found.push((prices.store(c.store, &lines, pickup, origin), c.store));
            }
            if found.len() == k {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        let dc = if pickup { None } else { self.nearest_dc(engine, origin).map(|i| prices.dc(i, origin)) };
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut ctx = self.ctx(engine, order, lines, now);
        ctx.explanation.stages.push(Stage::SingleStore);
        ctx.explanation.candidates_considered = walked.min(self.config.max_walk);
        if found.is_empty() {
            // A split priced against the DC; splits do not compete with a store that can take
            // the whole order (letting them split more and cost more on the contested mixed
            // instance).
            if let Some(dc) = dc.filter(|_| ctx.lines.len() > 1 && self.config.max_shipments > 1) {
                ctx.explanation.stages.push(Stage::Split);
                return match self.priced_split(&mut ctx, dc, prices) {
                    Ok(Some((parts, expires_at))) => self.split_decision(ctx, &parts, expires_at),
                    Ok(None) => self.dc_or_nothing(ctx),
                    Err(_) => self.route_anew(engine, order),
                };
            }
            return self.route_anew(engine, order);
        }
        if dc.is_some_and(|dc| dc < found[0].0) {
            return self.dc_or_nothing(ctx);
        }
        for &(_, store) in &found {
            if let Ok(Ok(expires_at)) = ledger.reserve(order.id(), &[(store, &ctx.lines)], now) {
                let mode = if pickup { Mode::Pickup } else { Mode::Ship };
                let status =
                    if pickup && Some(store) != named { Status::Alternative } else { Status::Assigned };
                let shipment = self.store_shipment(&ctx, store, all_lines(&ctx), mode);
                return self.decision(ctx, status, vec![shipment], Some(expires_at));
            }
        }
        // Every priced store was taken meanwhile (another thread): the usual way.
        self.route_anew(engine, order)
    }

    /// The split of least price (each part's leg and the worth of what it takes, plus the
    /// split penalty per extra shipment), reserved, when that price is below `below`.
    fn priced_split(
        &self,
        ctx: &mut super::Ctx<'_>,
        below: f64,
        prices: &dyn BidPrices,
    ) -> Result<Option<(split::Parts, crate::model::Timestamp)>, super::RouteError> {
        let origin = ctx.order.customer();
        let max = self.config.max_shipments;
        let price = |store: StoreIdx, part: &[(SkuIdx, u32)]| prices.store(store, part, false, origin);
        let choose = |candidates: &[split::Candidate], lines: &[(SkuIdx, u32)]| {
            split::priced_cover(candidates, lines, max, price, prices.split_penalty(), below)
        };
        split::find_by(self, ctx, choose)
    }
}
