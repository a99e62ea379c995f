//! `policy = "duals"`: checkout guided by the shadow prices of a plan over a forecast of the
//! day (bid-price control; see [`crate::router::BidPrices`]).
//!
//! The forecast is a different draw of demand from the same distribution, never the orders
//! being replayed: `draws` days' worth of it. At the first order and then every `refresh_s`,
//! the batch planner (LP) plans what is left of each day of the forecast on the stock and
//! capacity left, and each (store, SKU) row and each store's capacity row is priced at the
//! mean over the days of the LP's dual, the cost that day's plan would save per unit more of
//! it. Averaging the duals of sampled days is the randomized LP of Talluri and van Ryzin ("A
//! Randomized Linear Programming Method for Computing Network Bid Prices", Transportation
//! Science 33(2), 1999): a unit is worth about how often a later customer needs it times what
//! it saves her, where one day's duals are all or nothing and one plan over the expected day
//! (all days at once on as many times the stock) is nothing wherever supply covers the mean.
//! Each real order is then routed on arrival at least leg cost plus those prices of the units
//! and capacity it takes ([`Router::route_priced`]): scarce stock near many future customers is
//! kept for them, and an order that other stores or the DC serve nearly as cheaply goes there.

use super::{replay_with, CheckoutPolicy, Run};
use crate::engine::Engine;
use crate::model::{LonLat, Order, SkuIdx, StoreIdx, Timestamp};
use crate::plan::{LedgerView, PlanConfig, Planning, Pricer, SolveOptions, Solver};
use crate::progress::{NoProgress, Progress};
use crate::router::{BidPrices, Router};
use crate::travel::TravelCost;

/// Leg costs under the planner's weights plus the duals of the last forecast plan.
struct DualPrices<'a> {
    pricer: Pricer<'a>,
    /// Per (store, SKU) key: what one more unit would save the forecast plan.
    stock: rustc_hash::FxHashMap<u64, f64>,
    /// Per store: what one more order of capacity today would save.
    capacity: Vec<f64>,
    /// Stores priced per order: the planner's candidates per order.
    k: usize,
}

fn key(store: StoreIdx, sku: SkuIdx) -> u64 {
    (u64::from(store.0) << 32) | u64::from(sku.0)
}

impl<'a> DualPrices<'a> {
    /// Plans each of the `draws` days of `forecast` (interleaved: order `i` belongs to day
    /// `i % draws`) on what `engine` has left at `now` and keeps the mean of their duals. A day
    /// the LP cannot solve adds nothing (all prices 0 when none solves: routing by leg cost
    /// alone).
    fn plan(
        engine: &'a Engine,
        cost: &'a dyn TravelCost,
        forecast: &[Order],
        draws: u32,
        now: Timestamp,
        config: &PlanConfig,
    ) -> Self {
        let pricer = Pricer { network: engine.network(), cost, weights: config.weights };
        let mut prices = DualPrices {
            pricer,
            stock: rustc_hash::FxHashMap::default(),
            capacity: vec![0.0; engine.network().stores().len()],
            k: config.k,
        };
        let view = LedgerView { network: engine.network(), ledger: engine.ledger(), now };
        let draws = draws.max(1) as usize;
        let weight = 1.0 / draws as f64;
        let options = SolveOptions {
            solver: Solver::Lp,
            lp: crate::plan::lp::LpOptions { integral: false, ..Default::default() },
            compare_with_greedy: false,
            top_prices: 0,
        };
        for d in 0..draws.min(forecast.len()) {
            let day: Vec<Order> = forecast.iter().skip(d).step_by(draws).cloned().collect();
            let planning = Planning::new(engine, &view, cost, &day, config, &NoProgress);
            let Ok(outcome) = planning.solve(options, &NoProgress) else { continue };
            let inst = planning.instance();
            for &(row, dual) in outcome.plan.lp.as_ref().map_or(&[][..], |lp| &lp.duals[..]) {
                let saving = -dual;
                if saving <= 1e-9 {
                    continue;
                }
                if row < inst.cells() {
                    let (s, k) = inst.cell(row);
                    *prices.stock.entry(key(s, k)).or_default() += saving * weight;
                } else if let Some(c) = prices.capacity.get_mut(row - inst.cells()) {
                    *c += saving * weight;
                }
            }
        }
        prices
    }
}

impl BidPrices for DualPrices<'_> {
    fn store(&self, store: StoreIdx, lines: &[(SkuIdx, u32)], pickup: bool, origin: LonLat) -> f64 {
        let units: f64 = lines
            .iter()
            .map(|&(k, q)| self.stock.get(&key(store, k)).copied().unwrap_or(0.0) * f64::from(q))
            .sum();
        self.pricer.store(store, pickup, origin).0 + units + self.capacity[store.0 as usize]
    }

    fn dc(&self, dc: usize, at: LonLat) -> f64 {
        self.pricer.dc(dc, at).0
    }

    fn candidates(&self) -> usize {
        self.k
    }

    fn split_penalty(&self) -> f64 {
        self.pricer.weights.split_penalty
    }
}

/// Replays `orders` (sorted by arrival) under `policy = "duals"`: prices from plans of
/// `forecast` (`draws` days' worth, sorted by arrival; what is still ahead of each refresh) on
/// the stock left, every `refresh_s`; each order routed by [`Router::route_priced`] and
/// shipped at once.
#[allow(clippy::too_many_arguments)]
pub fn replay_duals<C: TravelCost>(
    engine: &Engine,
    router: &Router<C>,
    orders: &[Order],
    forecast: &[Order],
    draws: u32,
    refresh_s: u32,
    plan: &PlanConfig,
    progress: &dyn Progress,
) -> Run {
    let policy = CheckoutPolicy::SHIP_AT_ONCE;
    let mut prices: Option<DualPrices<'_>> = None;
    let mut next = i64::MIN;
    replay_with(engine, router.cost(), orders, &policy, plan, progress, |_, order| {
        let now = order.created_at();
        if now.0 >= next {
            let ahead = forecast.partition_point(|o| o.created_at() < now);
            prices =
                Some(DualPrices::plan(engine, router.cost(), &forecast[ahead..], draws.max(1), now, plan));
            next = now.0 + i64::from(refresh_s.max(1));
        }
        router.route_priced(engine, order, prices.as_ref().expect("priced above"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::ledger::StockEntry;
    use crate::model::{Mode, OrderId, OrderLine, Qty, Sku};
    use crate::progress::NoProgress;
    use crate::router::RouterConfig;
    use crate::testkit;
    use crate::travel::GreatCircle;

    const T0: i64 = 1_762_790_400;

    fn order(id: &str, at_s: i64, lon: f64) -> Order {
        let line = OrderLine::new(Sku::numbered(0), Qty::parse(1).unwrap());
        let at = LonLat::new(lon, 31.0).unwrap();
        Order::new(OrderId::parse(id).unwrap(), Timestamp(T0 + at_s), at, Mode::Ship, None, vec![line])
            .unwrap()
    }

    /// Two stores: S1 at 121.00 with one unit, S2 at 121.10 with two. Customer A (first, at
    /// 121.04) is a little nearer S1; customer B (later, at 120.90) is near S1 only.
    fn engine() -> Engine {
        let stores = vec![testkit::store(1, 121.00, 31.0), testkit::store(2, 121.10, 31.0)];
        let stock = (0..2)
            .map(|s| StockEntry { store: StoreIdx(s), sku: SkuIdx(0), on_hand: s + 1, safety_stock: 0 })
            .collect();
        Engine::new(testkit::network(stores, 1), stock, EngineConfig::default())
    }

    #[test]
    fn prices_from_a_forecast_keep_scarce_stock_for_the_customer_who_needs_it() {
        let orders = [order("a", 0, 121.04), order("b", 100, 120.90)];
        // Another draw of the same day: the same kinds of customers, other ids, other times.
        // (With exactly one B-like customer the duals are degenerate: S1's unit is worth only
        // what A gains from it, a tie.)
        let forecast = [order("f1", 10, 121.04), order("f2", 90, 120.91), order("f3", 95, 120.905)];
        let router = Router::new(RouterConfig::default(), GreatCircle::default());
        let plan = PlanConfig::default();
        let policy = CheckoutPolicy { ship_after_s: 0, ..CheckoutPolicy::default() };
        let greedy = super::super::replay(&engine(), &router, &orders, &policy, &plan, &NoProgress);
        // Prices refreshed every minute: at B's arrival no forecast order is ahead and S1's
        // unit is B's for its leg alone.
        let duals = replay_duals(&engine(), &router, &orders, &forecast, 1, 60, &plan, &NoProgress);
        // Greedy gives A the nearer S1 and sends B 19 km to S2; the prices keep S1 for B.
        assert_eq!((greedy.outcomes[0].source, greedy.outcomes[1].source), (0, 1));
        assert_eq!((duals.outcomes[0].source, duals.outcomes[1].source), (1, 0));
        assert!(duals.report.total_cost < greedy.report.total_cost - 5.0);
        assert_eq!(duals.report.fill_rate_pct, greedy.report.fill_rate_pct);
        // Without a forecast every price is 0: the leg alone decides, as nearest-first does.
        let bare = replay_duals(&engine(), &router, &orders, &[], 1, 3600, &plan, &NoProgress);
        assert_eq!(bare.outcomes, greedy.outcomes);
    }

    /// Prices are the mean over the forecast's days: a unit that only one of two days needs is
    /// worth half what it is worth to that day.
    #[test]
    fn prices_are_the_mean_of_each_days_duals() {
        let e = engine();
        let cost = GreatCircle::default();
        let plan = PlanConfig::default();
        let price = |forecast: &[Order], draws: u32| {
            let p = DualPrices::plan(&e, &cost, forecast, draws, Timestamp(T0), &plan);
            p.stock.get(&key(StoreIdx(0), SkuIdx(0))).copied().unwrap_or(0.0)
        };
        let busy = [order("f1", 10, 121.04), order("f2", 90, 120.91), order("f3", 95, 120.905)];
        let one = price(&busy, 1);
        assert!(one > 5.0, "S1's unit is worth B's detour, got {one}");
        // Interleaved (order i belongs to day i % 2) with a day whose customers are out of both
        // stores' reach: that day leaves S1's unit idle, so the mean is half.
        let far = |id: &str| order(id, 50, 122.5);
        let two_days = [busy[0].clone(), far("g1"), busy[1].clone(), far("g2"), busy[2].clone(), far("g3")];
        let mean = price(&two_days, 2);
        assert!((mean - one / 2.0).abs() < 1e-6, "one day {one}, mean of two {mean}");
    }

    #[test]
    fn the_dc_serves_when_every_store_is_dearer_with_its_price() {
        let prices = |unit: f64| {
            let e = engine();
            let router = Router::new(RouterConfig::default(), GreatCircle::default());
            let cost = GreatCircle::default();
            let mut p = DualPrices {
                pricer: Pricer { network: e.network(), cost: &cost, weights: PlanConfig::default().weights },
                stock: Default::default(),
                capacity: vec![0.0; 2],
                k: 8,
            };
            p.stock.insert(key(StoreIdx(0), SkuIdx(0)), unit);
            p.stock.insert(key(StoreIdx(1), SkuIdx(0)), unit);
            router.route_priced(&e, &order("a", 0, 121.04), &p).status
        };
        assert_eq!(prices(0.0), crate::router::Status::Assigned);
        // A unit worth more than the DC's dearer leg: the DC ships and the stock stays.
        assert_eq!(prices(200.0), crate::router::Status::Dc);
    }
}
