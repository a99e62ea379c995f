//! A plan in external ids, with KPIs and shadow prices: what `omniroute optimize` writes and
//! `GET /v1/plans/{id}` returns.

use super::instance::{Instance, OptKind};
use super::lp::LpStats;
use super::{Choice, Plan, Solver, UnfilledReason};
use crate::model::{DcId, Mode, Network, Order, OrderId, OrderLine, Sku, StoreId};
use crate::travel::{Origin, Promise, TravelCost};
use serde::{Deserialize, Serialize};

/// One shipment of a planned order: from a store or from a DC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<StoreId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_id: Option<DcId>,
    pub lines: Vec<OrderLine>,
    /// Length of the delivery leg, metres.
    pub distance_m: f64,
    /// Where the goods leave from, degrees (set by [`PlanReport::add_legs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Time until delivery (ship) or until ready for collection (pickup), seconds, as checkout
    /// computes it (opening hours included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promise: Option<Promise>,
}

impl Shipment {
    /// No source, no lines, no leg: a base for struct update syntax.
    fn bare() -> Shipment {
        Shipment {
            store_id: None,
            dc_id: None,
            lines: Vec::new(),
            distance_m: 0.0,
            lon: None,
            lat: None,
            mode: None,
            eta_s: None,
            promise: None,
        }
    }
}

/// One served order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub order_id: OrderId,
    pub shipments: Vec<Shipment>,
    pub cost: f64,
}

/// One order left unfilled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unfilled {
    pub order_id: OrderId,
    pub reason: UnfilledReason,
}

/// Distribution of store utilization (orders planned / capacity left) over stores that got any.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Utilization {
    pub stores_used: usize,
    pub stores_at_capacity: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Plan KPIs. Shares are fractions of all orders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanKpis {
    pub orders: usize,
    pub cost: f64,
    pub total_km: f64,
    pub fill_rate: f64,
    pub store_share: f64,
    pub dc_share: f64,
    pub split_rate: f64,
    pub unfilled: usize,
    pub shipments: usize,
    pub utilization: Utilization,
}

/// Where one more unit of a stock cell would save the most.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellPrice {
    pub store_id: StoreId,
    pub sku: Sku,
    /// Money saved per extra unit (from the LP dual).
    pub saving_per_unit: f64,
}

/// Where one more order of capacity would save the most.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorePrice {
    pub store_id: StoreId,
    /// Money saved per extra order of daily capacity (from the LP dual).
    pub saving_per_order: f64,
}

/// Shadow prices from the LP duals, largest savings first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowPrices {
    pub stock: Vec<CellPrice>,
    pub capacity: Vec<StorePrice>,
}

/// A finished plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanReport {
    pub solver: Solver,
    pub kpis: PlanKpis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lp: Option<LpStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_prices: Option<ShadowPrices>,
    pub assignments: Vec<Assignment>,
    pub unfilled: Vec<Unfilled>,
}

impl PlanReport {
    /// Turns `plan` over `inst` (built from `orders`) into external ids with KPIs; `top` shadow
    /// prices of each kind.
    pub fn new(network: &Network, orders: &[Order], inst: &Instance, plan: &Plan, top: usize) -> PlanReport {
        let mut assignments = Vec::new();
        let mut unfilled = Vec::new();
        let mut used = vec![0u32; network.stores().len()];
        let (mut total_m, mut shipments, mut from_stores, mut from_dc, mut split) =
            (0.0, 0usize, 0usize, 0usize, 0usize);
        let mut cost = 0.0;
        for (o, (order, choice)) in orders.iter().zip(&plan.choices).enumerate() {
            let priced = plan.priced.as_ref().map(|p| &p[o]);
            let c = match priced {
                Some(p) => p.cost,
                None => inst.cost_of(o, choice).unwrap_or(0.0),
            };
            cost += c;
            let opts = inst.options(o);
            let leg = |kind: OptKind, store: u32| match priced {
                Some(p) => p.legs.iter().find(|l| l.0 == store).map_or(0.0, |l| l.1),
                None => opts
                    .iter()
                    .find(|x| x.kind == kind && x.store == store)
                    .map_or(0.0, |x| f64::from(x.distance_m)),
            };
            let ships: Vec<Shipment> = match choice {
                Choice::Unfilled(reason) => {
                    unfilled.push(Unfilled { order_id: order.id().clone(), reason: *reason });
                    continue;
                }
                Choice::Whole(s) => {
                    used[s.0 as usize] += 1;
                    from_stores += 1;
                    vec![Shipment {
                        store_id: Some(network.store(*s).id.clone()),
                        dc_id: None,
                        lines: order.lines().to_vec(),
                        distance_m: leg(OptKind::Whole, s.0),
                        ..Shipment::bare()
                    }]
                }
                Choice::Split(stores) => {
                    from_stores += 1;
                    let mut out: Vec<Shipment> = Vec::new();
                    for (n, (s, line)) in stores.iter().zip(order.lines()).enumerate() {
                        let id = &network.store(*s).id;
                        match out.iter_mut().find(|x| x.store_id.as_ref() == Some(id)) {
                            Some(x) => x.lines.push(line.clone()),
                            None => {
                                used[s.0 as usize] += 1;
                                out.push(Shipment {
                                    store_id: Some(id.clone()),
                                    dc_id: None,
                                    lines: vec![line.clone()],
                                    distance_m: leg(OptKind::Line(n as u8), s.0),
                                    ..Shipment::bare()
                                })
                            }
                        }
                    }
                    if out.len() > 1 {
                        split += 1;
                    }
                    out
                }
                Choice::Dc(i) => {
                    from_dc += 1;
                    vec![Shipment {
                        store_id: None,
                        dc_id: Some(network.dcs()[*i as usize].id.clone()),
                        lines: order.lines().to_vec(),
                        distance_m: leg(OptKind::Dc, *i),
                        ..Shipment::bare()
                    }]
                }
            };
            shipments += ships.len();
            total_m += ships.iter().map(|s| s.distance_m).sum::<f64>();
            assignments.push(Assignment { order_id: order.id().clone(), shipments: ships, cost: c });
        }
        let n = orders.len().max(1) as f64;
        let caps = &inst.bounds()[inst.cells()..];
        let mut util: Vec<f64> = used
            .iter()
            .zip(caps)
            .filter(|(u, _)| **u > 0)
            .map(|(&u, &cap)| if cap > 0.0 { f64::from(u) / cap } else { f64::INFINITY })
            .collect();
        util.sort_by(f64::total_cmp);
        let q =
            |p: f64| if util.is_empty() { 0.0 } else { util[((util.len() - 1) as f64 * p).round() as usize] };
        let utilization = Utilization {
            stores_used: util.len(),
            stores_at_capacity: util.iter().filter(|&&u| u >= 1.0 - 1e-9).count(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: util.last().copied().unwrap_or(0.0),
        };
        let kpis = PlanKpis {
            orders: orders.len(),
            cost,
            total_km: total_m / 1000.0,
            fill_rate: (from_stores + from_dc) as f64 / n,
            store_share: from_stores as f64 / n,
            dc_share: from_dc as f64 / n,
            split_rate: split as f64 / n,
            unfilled: unfilled.len(),
            shipments,
            utilization,
        };
        let shadow_prices = plan.lp.as_ref().map(|lp| shadow_prices(network, inst, lp, top));
        PlanReport { solver: plan.solver, kpis, lp: plan.lp.clone(), shadow_prices, assignments, unfilled }
    }
}

impl PlanReport {
    /// Fills each shipment's source coordinates, mode, ETA and promise as checkout computes
    /// them: opening hours of the store at the order's time, then the leg (ship) or the pickup
    /// preparation time.
    pub fn add_legs(
        &mut self,
        network: &Network,
        cost: &dyn TravelCost,
        orders: &[Order],
        pickup_prep_s: u32,
    ) {
        let zone = network.zone();
        let mut next = self.assignments.iter_mut().peekable();
        for order in orders {
            let Some(a) = next.next_if(|a| &a.order_id == order.id()) else { continue };
            let now = order.created_at();
            for s in &mut a.shipments {
                let (location, eta_s) =
                    if let Some(idx) = s.store_id.as_ref().and_then(|id| network.store_idx(id)) {
                        let st = network.store(idx);
                        let wait = st.hours.wait_s(zone.local_second_of_day(now));
                        let eta = match order.mode() {
                            Mode::Ship => {
                                let leg = cost
                                    .leg(Origin { location: st.location, city: st.city }, order.customer());
                                wait.saturating_add(leg.eta_s)
                            }
                            Mode::Pickup => wait.saturating_add(pickup_prep_s),
                        };
                        (st.location, eta)
                    } else if let Some(dc) =
                        s.dc_id.as_ref().and_then(|id| network.dcs().iter().find(|d| &d.id == id))
                    {
                        (
                            dc.location,
                            cost.leg(Origin { location: dc.location, city: dc.city }, order.customer()).eta_s,
                        )
                    } else {
                        continue;
                    };
                s.lon = Some(location.lon());
                s.lat = Some(location.lat());
                s.mode = Some(order.mode());
                s.eta_s = Some(eta_s);
                s.promise = Some(Promise::for_eta(zone, now, eta_s));
            }
        }
    }
}

fn shadow_prices(network: &Network, inst: &Instance, lp: &LpStats, top: usize) -> ShadowPrices {
    let mut out = ShadowPrices::default();
    for &(r, d) in &lp.duals {
        let saving = -d;
        if saving <= 1e-9 {
            continue;
        }
        if r < inst.cells() {
            let (s, k) = inst.cell(r);
            out.stock.push(CellPrice {
                store_id: network.store(s).id.clone(),
                sku: network.catalog().sku(k).clone(),
                saving_per_unit: saving,
            });
        } else {
            out.capacity.push(StorePrice {
                store_id: network.stores()[r - inst.cells()].id.clone(),
                saving_per_order: saving,
            });
        }
    }
    out.stock.sort_by(|a, b| {
        b.saving_per_unit
            .total_cmp(&a.saving_per_unit)
            .then((&a.store_id, &a.sku).cmp(&(&b.store_id, &b.sku)))
    });
    out.capacity
        .sort_by(|a, b| b.saving_per_order.total_cmp(&a.saving_per_order).then(a.store_id.cmp(&b.store_id)));
    out.stock.truncate(top);
    out.capacity.truncate(top);
    out
}

/// The greedy plan on the same instance, measured against another plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub greedy_cost: f64,
    pub greedy_dc_share: f64,
    pub greedy_unfilled: usize,
    /// Seconds the greedy took.
    pub greedy_s: f64,
    /// (greedy cost - this plan's cost) / this plan's cost.
    pub greedy_excess: f64,
}

impl Comparison {
    /// Compares the greedy plan `g` (made in `greedy_s` seconds) with `report`.
    pub fn against_greedy(
        network: &Network,
        orders: &[Order],
        inst: &Instance,
        report: &PlanReport,
        g: &Plan,
        greedy_s: f64,
    ) -> Comparison {
        let gr = PlanReport::new(network, orders, inst, g, 0);
        let cost = report.kpis.cost;
        Comparison {
            greedy_cost: gr.kpis.cost,
            greedy_dc_share: gr.kpis.dc_share,
            greedy_unfilled: gr.kpis.unfilled,
            greedy_s,
            greedy_excess: if cost > 0.0 { (gr.kpis.cost - cost) / cost } else { 0.0 },
        }
    }
}
