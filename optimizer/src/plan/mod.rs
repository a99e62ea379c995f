//! Batch planning: which store serves which order of a wave so that total delivery cost is least
//! while stock and store capacity hold.
//!
//! * [`Instance::build`] turns orders into priced options from the R-tree: per order the `k`
//!   nearest stores holding every line (a whole shipment), per line the `k` nearest stores holding
//!   it (a split), the DC fallback and "unfilled".
//! * the greedy solver is the checkout router itself, run over the orders in arrival order on a
//!   scratch copy of the stock (`checkout.rs`), so that greedy planning and replay agree;
//!   [`greedy`] (cheapest candidate in arrival order) is where the LP's rounding starts.
//! * [`lp`] solves the LP through good_lp + HiGHS after an exact presolve that fixes orders whose
//!   best option cannot be contested and cuts the rest into independent components, solved in
//!   parallel; fractional solutions (multi-line orders) are rounded and repaired.
//! * [`Planning`] is the pipeline every caller runs: candidates, solve, report, greedy
//!   comparison.
//! * [`validate`] checks a finished plan against the raw network, stock and orders, independent of
//!   the instance the solvers used.

mod checkout;
mod flow;
mod greedy;
mod instance;
pub mod lp;
mod pipeline;
mod report;
mod simplex;
pub mod validate;

#[cfg(test)]
mod tests;

pub(crate) use checkout::price_decision;
pub use checkout::{scratch_engine, Priced};
pub use greedy::greedy;
pub(crate) use instance::Pricer;
pub use instance::{Instance, Opt, OptKind};
pub use lp::{LpCache, LpStats};
pub use pipeline::{PlanOutcome, Planning, SolveOptions};
pub use report::{
    Assignment, CellPrice, Comparison, PlanKpis, PlanReport, ShadowPrices, Shipment, StorePrice, Unfilled,
    Utilization,
};

use crate::ledger::StockLedger;
use crate::model::{Network, SkuIdx, StoreIdx, Timestamp};
use crate::router::RouterConfig;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Money weights of the objective. Every cost is in one currency unit.
///
/// The peers' setting (1 per great-circle km, a flat DC cost of 500, nothing else) is
/// `CostWeights { per_km: 1.0, dc_flat: 500.0, ..CostWeights::zero() }`.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostWeights {
    /// Per kilometre of the travel-cost leg.
    pub per_km: f64,
    /// Per hour of the leg's ETA (handling included), for a delivery-time objective.
    pub per_hour: f64,
    /// Per shipment (picking and packing at the store).
    pub per_shipment: f64,
    /// Per shipment beyond the first of a split order.
    pub split_penalty: f64,
    /// Flat cost of serving an order from a DC.
    pub dc_flat: f64,
    /// Per kilometre from the nearest DC to the customer.
    pub dc_per_km: f64,
    /// Cost of leaving an order unfilled.
    pub unfilled: f64,
}

impl CostWeights {
    /// All weights zero (a base for struct update syntax).
    pub const fn zero() -> CostWeights {
        CostWeights {
            per_km: 0.0,
            per_hour: 0.0,
            per_shipment: 0.0,
            split_penalty: 0.0,
            dc_flat: 0.0,
            dc_per_km: 0.0,
            unfilled: 0.0,
        }
    }

    /// The setting the peers were measured with: 1 per great-circle km, a flat DC cost of 500.
    pub const fn peer() -> CostWeights {
        CostWeights { per_km: 1.0, dc_flat: 500.0, unfilled: 100_000.0, ..CostWeights::zero() }
    }

    /// The largest weight accepted: every cost of a plan of millions of orders over continental
    /// distances then stays a finite number.
    pub const MAX: f64 = 1e9;

    /// Names the first weight that is negative, not finite or above [`CostWeights::MAX`].
    pub fn validate(&self) -> Result<(), PlanError> {
        for (field, v) in [
            ("per_km", self.per_km),
            ("per_hour", self.per_hour),
            ("per_shipment", self.per_shipment),
            ("split_penalty", self.split_penalty),
            ("dc_flat", self.dc_flat),
            ("dc_per_km", self.dc_per_km),
            ("unfilled", self.unfilled),
        ] {
            if !v.is_finite() || !(0.0..=Self::MAX).contains(&v) {
                return Err(PlanError::Weight { field, value: v });
            }
        }
        Ok(())
    }
}

impl Default for CostWeights {
    /// Distance-based money: 1 per km, 2 per shipment, 3 per extra shipment of a split, a DC
    /// shipment 50 plus 0.5 per km line haul, 10,000 for an unfilled order.
    fn default() -> Self {
        CostWeights {
            per_km: 1.0,
            per_hour: 0.0,
            per_shipment: 2.0,
            split_penalty: 3.0,
            dc_flat: 50.0,
            dc_per_km: 0.5,
            unfilled: 10_000.0,
        }
    }
}

/// Planner settings: weights plus candidate generation.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanConfig {
    pub weights: CostWeights,
    /// Candidate stores per order (whole shipments) and per line (splits).
    #[serde(deserialize_with = "crate::model::whole::usize")]
    pub k: usize,
    /// Consider splits for multi-line orders.
    pub allow_split: bool,
    /// Offer the DC fallback to ship orders.
    pub dc_fallback: bool,
    /// Farthest a store may ship from (the checkout router's radius), metres. Set by the
    /// service's routing rules, never by a plan request.
    #[serde(skip)]
    pub ship_radius_m: f64,
    /// Pickup orders: farthest an alternative store may be from the named one, metres (the
    /// checkout router's radius). Set by the routing rules.
    #[serde(skip)]
    pub pickup_radius_m: f64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        let router = RouterConfig::default();
        PlanConfig {
            weights: CostWeights::default(),
            k: 16,
            allow_split: true,
            dc_fallback: true,
            ship_radius_m: router.ship_radius_m,
            pickup_radius_m: router.pickup_radius_m,
        }
    }
}

impl PlanConfig {
    /// The checkout router's settings under the same rules: radii, DC fallback, splits. The
    /// greedy solver routes with them.
    pub fn router_config(&self) -> RouterConfig {
        RouterConfig {
            ship_radius_m: self.ship_radius_m,
            pickup_radius_m: self.pickup_radius_m,
            dc_fallback: self.dc_fallback,
            max_shipments: if self.allow_split { RouterConfig::default().max_shipments } else { 1 },
            ..RouterConfig::default()
        }
    }

    pub fn validate(&self) -> Result<(), PlanError> {
        self.weights.validate()?;
        if !(1..=256).contains(&self.k) {
            return Err(PlanError::K(self.k));
        }
        Ok(())
    }
}

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("weights.{field} must be a number from 0 to 1e9, got {value}")]
    Weight { field: &'static str, value: f64 },
    #[error("k must be between 1 and 256, got {0}")]
    K(usize),
    #[error("the LP solver failed on a component of {orders} orders: {message}")]
    Solver { orders: usize, message: String },
}

/// Which solver made a plan.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    Greedy,
    Lp,
}

impl Solver {
    pub fn as_str(self) -> &'static str {
        match self {
            Solver::Greedy => "greedy",
            Solver::Lp => "lp",
        }
    }
}

/// How one order is served, in dense indexes of the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// All lines from one store.
    Whole(StoreIdx),
    /// Line `i` from store `i` of the vector.
    Split(Vec<StoreIdx>),
    /// From the nearest DC (index into the network's DCs).
    Dc(u32),
    Unfilled(UnfilledReason),
}

/// Why an order was left unfilled.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnfilledReason {
    /// No store holds the lines within reach and no DC may serve the order (pickup orders, or
    /// the DC fallback is off).
    NoCandidate,
    /// Candidates existed but their stock or capacity went to orders that gain more from it.
    CandidatesExhausted,
}

/// A plan: one choice per order of the instance, in instance order.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub solver: Solver,
    pub choices: Vec<Choice>,
    /// LP statistics (`None` for greedy).
    pub lp: Option<LpStats>,
    /// Per order, its cost and legs when the solver priced them itself (the checkout greedy,
    /// whose stores need not be among the instance's candidates); else the options' prices.
    pub priced: Option<Vec<Priced>>,
}

/// Read access to what stock and capacity a plan may use.
pub trait StockView: Sync {
    /// Units of `sku` `store` may still promise (on hand - reserved - safety stock).
    fn available(&self, store: StoreIdx, sku: SkuIdx) -> u32;
    /// Whether `store` may promise `qty` units of `sku`.
    fn has(&self, store: StoreIdx, sku: SkuIdx, qty: u32) -> bool {
        self.available(store, sku) >= qty
    }
    /// Orders `store` may still take today.
    fn capacity_left(&self, store: StoreIdx) -> u32;
}

/// The live ledger as a [`StockView`] on the local day of `now`.
pub struct LedgerView<'a> {
    pub network: &'a Network,
    pub ledger: &'a StockLedger,
    pub now: Timestamp,
}

impl StockView for LedgerView<'_> {
    fn available(&self, store: StoreIdx, sku: SkuIdx) -> u32 {
        if !self.ledger.maybe_available(store, sku) {
            return 0;
        }
        self.ledger.level(store, sku).map_or(0, |l| l.available)
    }
    fn has(&self, store: StoreIdx, sku: SkuIdx, qty: u32) -> bool {
        // The lock-free availability bit answers "at least one" without the store's lock; it is
        // exact while nothing routes, and a plan over a live ledger bounds every cell by its
        // `available` anyway.
        if qty == 1 {
            return self.ledger.maybe_available(store, sku);
        }
        self.available(store, sku) >= qty
    }
    fn capacity_left(&self, store: StoreIdx) -> u32 {
        self.network.store(store).capacity_per_day.saturating_sub(self.ledger.orders_today(store, self.now))
    }
}

/// A what-if overlay: changed stock cells and capacities over a base view.
pub struct Overlay<'a, V: ?Sized> {
    pub base: &'a V,
    pub available: FxHashMap<(StoreIdx, SkuIdx), u32>,
    pub capacity: FxHashMap<StoreIdx, u32>,
}

impl<V: StockView + ?Sized> StockView for Overlay<'_, V> {
    fn available(&self, store: StoreIdx, sku: SkuIdx) -> u32 {
        self.available.get(&(store, sku)).copied().unwrap_or_else(|| self.base.available(store, sku))
    }
    fn has(&self, store: StoreIdx, sku: SkuIdx, qty: u32) -> bool {
        match self.available.get(&(store, sku)) {
            Some(&a) => a >= qty,
            None => self.base.has(store, sku, qty),
        }
    }
    fn capacity_left(&self, store: StoreIdx) -> u32 {
        self.capacity.get(&store).copied().unwrap_or_else(|| self.base.capacity_left(store))
    }
}
