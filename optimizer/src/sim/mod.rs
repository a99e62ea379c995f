//! What-if simulations: a whole day of orders replayed against a changed copy of the network
//! under the live checkout rules, with the KPIs planners compare.
//!
//! * [`changes`] turns a base network and stock into a scenario's (stores closed, stock scaled,
//!   capacities, modes, DCs, new stores), copying the base and never touching it.
//! * [`replay`] routes every order on arrival with the checkout router; reservations ship after
//!   a delay, or are abandoned (a seeded share) and expire after the ledger's TTL, as in the
//!   live service. Sequential, so that a run is deterministic.
//! * [`replay_waves`] plans each window of orders together (LP); [`replay_duals`] routes each
//!   order at leg cost plus the shadow prices of a plan over a forecast of the day.
//! * [`Report`] holds the KPIs in planners' units (%, km, orders) and an hourly series.

pub mod changes;
mod duals;

pub use duals::replay_duals;

use crate::engine::Engine;
use crate::model::{Mode, Order, OrderId, Timestamp};
use crate::plan::PlanConfig;
use crate::progress::Progress;
use crate::router::{Decision, LineReason, Router, Source, Status};
use crate::travel::{Promise, TravelCost};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::VecDeque;

/// How orders are handled on arrival (`policy = "checkout"`).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct CheckoutPolicy {
    /// A reservation ships (commits) this long after the order arrived.
    ///
    /// # Units
    /// Seconds.
    pub ship_after_s: u32,
    /// Share of orders abandoned after routing (never paid): their reservations expire after
    /// the ledger's TTL and give the stock back.
    pub abandon_share: f64,
    /// Seed of the abandon draw.
    pub seed: u64,
}

impl CheckoutPolicy {
    /// Every reservation ships as the next order arrives and none is abandoned: the policies
    /// that decide by plan or price (`waves`, `duals`).
    pub const SHIP_AT_ONCE: CheckoutPolicy = CheckoutPolicy { ship_after_s: 0, abandon_share: 0.0, seed: 1 };
}

impl Default for CheckoutPolicy {
    fn default() -> Self {
        CheckoutPolicy { ship_after_s: 300, abandon_share: 0.0, seed: 1 }
    }
}

/// One order's outcome in a replay, compact enough for millions of orders.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status: Status,
    /// The first shipment's store index, or DC index for a DC decision; `u32::MAX` when
    /// unfilled.
    pub source: u32,
    pub shipments: u8,
    /// Summed over shipments.
    ///
    /// # Units
    /// Metres.
    pub distance_m: f32,
}

/// A share of a whole, as a percentage, and the counts it comes from.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct Share {
    pub count: u64,
    /// `count` as a percentage of the whole the field names.
    pub pct: f64,
}

impl Share {
    fn of(count: u64, whole: u64) -> Share {
        Share { count, pct: if whole == 0 { 0.0 } else { round4(count as f64 * 100.0 / whole as f64) } }
    }
}

/// Rounds to 4 decimals: reports stay readable and byte-stable across platforms.
fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Distances of shipments, kilometres.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Distances {
    pub shipments: u64,
    pub p50_km: f64,
    pub p95_km: f64,
    pub mean_km: f64,
}

/// Shares of shipments by delivery promise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Promises {
    pub same_day: Share,
    pub next_day: Share,
    pub later: Share,
}

/// How full stores got: orders served as a percentage of their capacity over the replayed days.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Utilisation {
    pub stores_used: u64,
    pub stores_at_capacity: u64,
    pub p50_pct: f64,
    pub p90_pct: f64,
    pub p99_pct: f64,
    pub max_pct: f64,
    /// The most saturated stores, fullest first.
    pub most_saturated: Vec<SaturatedStore>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SaturatedStore {
    pub store_id: String,
    pub city: String,
    pub orders: u64,
    pub capacity: u64,
    pub utilisation_pct: f64,
}

/// Unfilled orders of one city or lines of one SKU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnfilledBy {
    pub key: String,
    pub count: u64,
}

/// The orders of one city: the customer's (pickup: the named store's), the nearest city.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct City {
    pub city: String,
    pub orders: u64,
    pub fill_rate_pct: f64,
    pub from_dcs_pct: f64,
    pub unfilled: u64,
    pub mean_distance_km: f64,
}

/// One local hour of the replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hour {
    /// Hours since local midnight of the first order's day.
    pub hour: u32,
    pub orders: u64,
    pub fill_rate_pct: f64,
    pub from_dcs_pct: f64,
    pub unfilled: u64,
    pub split_pct: f64,
    pub mean_distance_km: f64,
    /// Stores that reached their day's capacity during this hour.
    pub stores_saturated: u64,
}

/// What a replay measured. Shares say what they are shares of: `of_orders` fields are of all
/// orders, promises of all shipments.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub orders: u64,
    pub fill_rate_pct: f64,
    pub of_orders: OrderShares,
    pub distance: Distances,
    pub promises_of_shipments: Promises,
    pub store_utilisation: Utilisation,
    /// Per city with orders, most orders first.
    pub by_city: Vec<City>,
    /// Unfilled orders by the customer's city (pickup: the named store's city), most first.
    pub unfilled_by_city: Vec<UnfilledBy>,
    /// Unfilled order lines by SKU, most first.
    pub unfilled_by_sku: Vec<UnfilledBy>,
    /// Cost of the decisions under the planner's weights (money units).
    pub total_cost: f64,
    pub hourly: Vec<Hour>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderShares {
    pub from_stores: Share,
    pub from_dcs: Share,
    pub unfilled: Share,
    pub split: Share,
    pub pickup_alternative: Share,
}

/// A replay's outcomes (in the order of the `orders` given) and report.
pub struct Run {
    pub outcomes: Vec<Outcome>,
    pub report: Report,
}

/// How many entries the top lists keep.
const TOP: usize = 20;

#[derive(Default, Clone)]
struct CityAcc {
    orders: u64,
    unfilled: u64,
    dc: u64,
    shipments: u64,
    distance_m: f64,
}

/// Nearest city of a point: an R-tree over the cities' locations (degrees; near enough for
/// attribution).
struct CityFinder(rstar::RTree<rstar::primitives::GeomWithData<[f64; 2], usize>>);

impl CityFinder {
    fn new(cities: &[crate::model::City]) -> CityFinder {
        CityFinder(rstar::RTree::bulk_load(
            cities
                .iter()
                .enumerate()
                .map(|(i, c)| rstar::primitives::GeomWithData::new([c.location.lon(), c.location.lat()], i))
                .collect(),
        ))
    }

    fn nearest(&self, at: crate::model::LonLat) -> Option<usize> {
        self.0.nearest_neighbor(&[at.lon(), at.lat()]).map(|g| g.data)
    }
}

#[derive(Default, Clone)]
struct HourAcc {
    orders: u64,
    unfilled: u64,
    dc: u64,
    split: u64,
    shipments: u64,
    distance_m: f64,
    saturated: u64,
}

/// Replays `orders` (sorted by arrival) on `engine` with `router` under `policy`; prices the
/// decisions with `plan`'s weights.
pub fn replay<C: TravelCost>(
    engine: &Engine,
    router: &Router<C>,
    orders: &[Order],
    policy: &CheckoutPolicy,
    plan: &PlanConfig,
    progress: &dyn Progress,
) -> Run {
    replay_with(engine, router.cost(), orders, policy, plan, progress, |_, order| {
        router.route_anew(engine, order)
    })
}

/// Replays `orders` under `policy = "waves"`: the orders of each `wave_s` window, from the first
/// order's arrival, are planned together by the batch planner (LP) at the window's close on the
/// stock left, and shipped at once; an order the plan serves but whose stock is gone meanwhile
/// falls back to the checkout router.
pub fn replay_waves<C: TravelCost>(
    engine: &Engine,
    router: &Router<C>,
    orders: &[Order],
    wave_s: u32,
    plan: &PlanConfig,
    progress: &dyn Progress,
) -> Run {
    let policy = CheckoutPolicy::SHIP_AT_ONCE;
    let mut planned: VecDeque<Decision> = VecDeque::new();
    replay_with(engine, router.cost(), orders, &policy, plan, progress, |i, order| {
        if planned.is_empty() {
            let close = Timestamp(order.created_at().0 + i64::from(wave_s.max(1)));
            let end = i + orders[i..].partition_point(|o| o.created_at() < close);
            planned = plan_wave(engine, router, &orders[i..end], close, plan);
        }
        planned.pop_front().expect("one decision per order of the wave")
    })
}

/// Plans one wave on the engine's stock at `close` and makes each order's reservations
/// (shipped at once); returns the decisions in the wave's order.
fn plan_wave<C: TravelCost>(
    engine: &Engine,
    router: &Router<C>,
    wave: &[Order],
    close: Timestamp,
    plan: &PlanConfig,
) -> VecDeque<Decision> {
    use crate::plan::{Choice, LedgerView, Planning, SolveOptions, Solver};
    let (net, ledger) = (engine.network(), engine.ledger());
    let view = LedgerView { network: net, ledger, now: close };
    let planning = Planning::new(engine, &view, router.cost(), wave, plan, &crate::progress::NoProgress);
    let options = SolveOptions {
        solver: Solver::Lp,
        compare_with_greedy: false,
        top_prices: 0,
        ..SolveOptions::default()
    };
    let outcome = match planning.solve(options, &crate::progress::NoProgress) {
        Ok(o) => o,
        // A wave the LP cannot solve is routed by checkout instead.
        Err(_) => return wave.iter().map(|o| router.route_anew(engine, o)).collect(),
    };
    let mut shipments = outcome.report.assignments.iter().peekable();
    let catalog = net.catalog();
    wave.iter()
        .zip(&outcome.plan.choices)
        .map(|(order, choice)| {
            let a = shipments.next_if(|a| &a.order_id == order.id());
            let lines: Vec<(crate::model::SkuIdx, u32)> =
                order.lines().iter().filter_map(|l| catalog.get(&l.sku).map(|k| (k, l.qty.get()))).collect();
            let parts: Vec<(crate::model::StoreIdx, Vec<(crate::model::SkuIdx, u32)>)> = match choice {
                Choice::Whole(s) => vec![(*s, lines.clone())],
                Choice::Split(per_line) => {
                    let mut by_store: Vec<(crate::model::StoreIdx, Vec<(crate::model::SkuIdx, u32)>)> =
                        Vec::new();
                    for (s, l) in per_line.iter().zip(&lines) {
                        match by_store.iter_mut().find(|x| x.0 == *s) {
                            Some(x) => x.1.push(*l),
                            None => by_store.push((*s, vec![*l])),
                        }
                    }
                    by_store.sort_by_key(|x| x.0);
                    by_store
                }
                Choice::Dc(_) | Choice::Unfilled(_) => Vec::new(),
            };
            if !parts.is_empty() {
                let refs: Vec<(crate::model::StoreIdx, &crate::ledger::StoreLines)> =
                    parts.iter().map(|(s, l)| (*s, l.as_slice())).collect();
                ledger.forget_ended(order.id());
                match ledger.reserve(order.id(), &refs, close) {
                    Ok(Ok(_)) => {
                        let _ = ledger.commit(order.id());
                        ledger.forget_ended(order.id());
                    }
                    // Stock or capacity went meanwhile: checkout decides.
                    _ => return router.route_anew(engine, order),
                }
            }
            planned_decision(net, order, choice, a)
        })
        .collect()
}

/// A planned choice as a decision (for the KPIs): shipments from the plan's report.
fn planned_decision(
    net: &crate::model::Network,
    order: &Order,
    choice: &crate::plan::Choice,
    a: Option<&crate::plan::Assignment>,
) -> Decision {
    use crate::plan::Choice;
    use crate::router::{Explanation, LineFailure, ShipLine, Shipment};
    let status = match choice {
        Choice::Whole(s) => match order.pickup_store().and_then(|id| net.store_idx(id)) {
            Some(named) if order.mode() == Mode::Pickup && named != *s => Status::Alternative,
            _ => Status::Assigned,
        },
        Choice::Split(_) => Status::Split,
        Choice::Dc(_) => Status::Dc,
        Choice::Unfilled(_) => Status::Unfulfillable,
    };
    let catalog = net.catalog();
    let shipments = a
        .map(|a| {
            a.shipments
                .iter()
                .map(|s| {
                    let source = match (&s.store_id, &s.dc_id) {
                        (Some(id), _) => Source::Store(net.store_idx(id).expect("planned stores exist")),
                        (None, Some(id)) => Source::Dc(
                            net.dcs().iter().position(|d| &d.id == id).expect("planned DCs exist") as u32,
                        ),
                        (None, None) => unreachable!("a shipment has a source"),
                    };
                    Shipment {
                        source,
                        lon: s.lon.unwrap_or_default(),
                        lat: s.lat.unwrap_or_default(),
                        lines: s
                            .lines
                            .iter()
                            .filter_map(|l| {
                                catalog.get(&l.sku).map(|k| ShipLine { sku: k, qty: l.qty.get() })
                            })
                            .collect(),
                        distance_m: s.distance_m,
                        eta_s: s.eta_s.unwrap_or_default(),
                        promise: s.promise.unwrap_or(Promise::Later),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let unfulfilled = if status == Status::Unfulfillable {
        order
            .lines()
            .iter()
            .map(|l| LineFailure {
                sku: l.sku.clone(),
                reason: LineReason::NoStockWithinRadius { radius_m: 0.0 },
            })
            .collect()
    } else {
        Vec::new()
    };
    Decision {
        order_id: order.id().clone(),
        status,
        shipments,
        unfulfilled,
        explanation: Explanation::default(),
        reservation_expires_at: None,
    }
}

/// The replay loop under a decision rule: `decide(i, order)` gives order `i`'s decision
/// (reserving what it holds); held reservations ship after `policy.ship_after_s` or, abandoned,
/// expire; every decision is tallied.
fn replay_with(
    engine: &Engine,
    cost: &dyn TravelCost,
    orders: &[Order],
    policy: &CheckoutPolicy,
    plan: &PlanConfig,
    progress: &dyn Progress,
    mut decide: impl FnMut(usize, &Order) -> Decision,
) -> Run {
    let net = engine.network();
    let ledger = engine.ledger();
    let zone = net.zone();
    let pricer = crate::plan::Pricer { network: net, cost, weights: plan.weights };
    progress.stage("replay", orders.len() as u64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(policy.seed);
    let mut pending: VecDeque<(Timestamp, OrderId)> = VecDeque::new();
    let mut outcomes = Vec::with_capacity(orders.len());
    let stores = net.stores().len();
    let mut served = vec![0u32; stores];
    let first_day = orders.first().map_or(0, |o| zone.local_day(o.created_at()));
    let last_day = orders.last().map_or(0, |o| zone.local_day(o.created_at()));
    let days = (last_day - first_day + 1).max(1) as u64;
    let mut hours: Vec<HourAcc> = Vec::new();
    let (mut from_stores, mut from_dcs, mut unfilled, mut split, mut alternative) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut distances: Vec<f32> = Vec::with_capacity(orders.len());
    let mut promises = [0u64; 3];
    let finder = CityFinder::new(net.cities());
    let mut cities = vec![CityAcc::default(); net.cities().len()];
    let mut by_sku: rustc_hash::FxHashMap<String, u64> = rustc_hash::FxHashMap::default();
    let mut total_cost = 0.0;
    let mut day_orders = vec![0u32; stores];
    let mut day = first_day;
    for (i, order) in orders.iter().enumerate() {
        let now = order.created_at();
        while pending.front().is_some_and(|(due, _)| *due <= now) {
            let (_, id) = pending.pop_front().expect("checked");
            if ledger.commit(&id).is_ok() {
                ledger.forget_ended(&id);
            }
        }
        if i % 256 == 0 {
            for id in ledger.expire(now) {
                ledger.forget_ended(&id);
            }
        }
        let d = decide(i, order);
        if d.reservation_expires_at.is_some() {
            let abandon = policy.abandon_share > 0.0 && rng.random::<f64>() < policy.abandon_share;
            if !abandon {
                pending.push_back((Timestamp(now.0 + i64::from(policy.ship_after_s)), order.id().clone()));
            }
        }
        // KPIs.
        let today = zone.local_day(now);
        if today != day {
            day = today;
            day_orders.iter_mut().for_each(|c| *c = 0);
        }
        let hour = ((today - first_day) * 24 + i64::from(zone.local_second_of_day(now) / 3600)) as usize;
        if hours.len() <= hour {
            hours.resize(hour + 1, HourAcc::default());
        }
        let h = &mut hours[hour];
        h.orders += 1;
        let mut dist = 0.0f64;
        for s in &d.shipments {
            dist += s.distance_m;
            distances.push(s.distance_m as f32);
            promises[match s.promise {
                Promise::SameDay => 0,
                Promise::NextDay => 1,
                Promise::Later => 2,
            }] += 1;
            if let Source::Store(st) = s.source {
                served[st.0 as usize] += 1;
                let c = &mut day_orders[st.0 as usize];
                *c += 1;
                if *c == net.store(st).capacity_per_day {
                    h.saturated += 1;
                }
            }
        }
        h.shipments += d.shipments.len() as u64;
        h.distance_m += dist;
        let city = finder.nearest(pricer.origin(order).unwrap_or(order.customer())).map(|c| &mut cities[c]);
        let mut city_unfilled = false;
        let mut city_dc = false;
        match d.status {
            Status::Assigned => from_stores += 1,
            Status::Alternative => {
                from_stores += 1;
                alternative += 1;
            }
            Status::Split => {
                from_stores += 1;
                split += 1;
                h.split += 1;
            }
            Status::Dc => {
                from_dcs += 1;
                h.dc += 1;
                city_dc = true;
            }
            Status::Unfulfillable => {
                unfilled += 1;
                h.unfilled += 1;
                city_unfilled = true;
                for l in &d.unfulfilled {
                    if !matches!(l.reason, LineReason::UnknownPickupStore { .. }) {
                        *by_sku.entry(l.sku.to_string()).or_default() += 1;
                    }
                }
            }
        }
        if let Some(c) = city {
            c.orders += 1;
            c.unfilled += u64::from(city_unfilled);
            c.dc += u64::from(city_dc);
            c.shipments += d.shipments.len() as u64;
            c.distance_m += dist;
        }
        total_cost += crate::plan::price_decision(&pricer, plan, order, &d);
        outcomes.push(Outcome {
            status: d.status,
            source: match d.shipments.first().map(|s| s.source) {
                Some(Source::Store(s)) => s.0,
                Some(Source::Dc(i)) => i,
                None => u32::MAX,
            },
            shipments: d.shipments.len().min(255) as u8,
            distance_m: dist as f32,
        });
        if i % 4096 == 4095 {
            progress.advance(4096);
        }
    }
    progress.advance(orders.len() as u64 % 4096);
    // The day ends: what is still waiting ships.
    for (_, id) in pending {
        if ledger.commit(&id).is_ok() {
            ledger.forget_ended(&id);
        }
    }

    let n = orders.len() as u64;
    distances.sort_by(f32::total_cmp);
    let q = |p: f64| {
        if distances.is_empty() {
            0.0
        } else {
            round4(f64::from(distances[((distances.len() - 1) as f64 * p).round() as usize]) / 1000.0)
        }
    };
    let shipments: u64 = promises.iter().sum();
    let mean_km = if distances.is_empty() {
        0.0
    } else {
        round4(distances.iter().map(|&d| f64::from(d)).sum::<f64>() / distances.len() as f64 / 1000.0)
    };
    let mut util: Vec<(f64, usize)> = served
        .iter()
        .enumerate()
        .filter(|(_, &u)| u > 0)
        .map(|(s, &u)| {
            let cap = u64::from(net.stores()[s].capacity_per_day) * days;
            (if cap == 0 { f64::INFINITY } else { f64::from(u) * 100.0 / cap as f64 }, s)
        })
        .collect();
    util.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let uq = |p: f64| {
        if util.is_empty() {
            0.0
        } else {
            round4(util[((util.len() - 1) as f64 * p).round() as usize].0)
        }
    };
    let most_saturated = util
        .iter()
        .rev()
        .take(TOP)
        .map(|&(pct, s)| {
            let st = &net.stores()[s];
            SaturatedStore {
                store_id: st.id.to_string(),
                city: net.cities()[usize::from(st.city.0)].name.clone(),
                orders: u64::from(served[s]),
                capacity: u64::from(st.capacity_per_day) * days,
                utilisation_pct: round4(pct),
            }
        })
        .collect();
    let top = |v: Vec<(String, u64)>| {
        let mut v: Vec<UnfilledBy> =
            v.into_iter().filter(|x| x.1 > 0).map(|(key, count)| UnfilledBy { key, count }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        v.truncate(TOP);
        v
    };
    let report = Report {
        orders: n,
        fill_rate_pct: Share::of(n - unfilled, n).pct,
        of_orders: OrderShares {
            from_stores: Share::of(from_stores, n),
            from_dcs: Share::of(from_dcs, n),
            unfilled: Share::of(unfilled, n),
            split: Share::of(split, n),
            pickup_alternative: Share::of(alternative, n),
        },
        distance: Distances { shipments, p50_km: q(0.5), p95_km: q(0.95), mean_km },
        promises_of_shipments: Promises {
            same_day: Share::of(promises[0], shipments),
            next_day: Share::of(promises[1], shipments),
            later: Share::of(promises[2], shipments),
        },
        store_utilisation: Utilisation {
            stores_used: util.len() as u64,
            stores_at_capacity: util.iter().filter(|u| u.0 >= 100.0 - 1e-9).count() as u64,
            p50_pct: uq(0.5),
            p90_pct: uq(0.9),
            p99_pct: uq(0.99),
            max_pct: util.last().map_or(0.0, |u| round4(u.0)),
            most_saturated,
        },
        by_city: {
            let mut v: Vec<City> = cities
                .iter()
                .enumerate()
                .filter(|(_, c)| c.orders > 0)
                .map(|(i, c)| City {
                    city: net.cities()[i].name.clone(),
                    orders: c.orders,
                    fill_rate_pct: Share::of(c.orders - c.unfilled, c.orders).pct,
                    from_dcs_pct: Share::of(c.dc, c.orders).pct,
                    unfilled: c.unfilled,
                    mean_distance_km: if c.shipments == 0 {
                        0.0
                    } else {
                        round4(c.distance_m / c.shipments as f64 / 1000.0)
                    },
                })
                .collect();
            v.sort_by(|a, b| b.orders.cmp(&a.orders).then_with(|| a.city.cmp(&b.city)));
            v
        },
        unfilled_by_city: top(cities
            .iter()
            .enumerate()
            .map(|(c, x)| (net.cities()[c].name.clone(), x.unfilled))
            .collect()),
        unfilled_by_sku: top(by_sku.into_iter().collect()),
        total_cost: round4(total_cost),
        hourly: hours
            .iter()
            .enumerate()
            .map(|(hour, h)| Hour {
                hour: hour as u32,
                orders: h.orders,
                fill_rate_pct: Share::of(h.orders - h.unfilled, h.orders).pct,
                from_dcs_pct: Share::of(h.dc, h.orders).pct,
                unfilled: h.unfilled,
                split_pct: Share::of(h.split, h.orders).pct,
                mean_distance_km: if h.shipments == 0 {
                    0.0
                } else {
                    round4(h.distance_m / h.shipments as f64 / 1000.0)
                },
                stores_saturated: h.saturated,
            })
            .collect(),
    };
    Run { outcomes, report }
}
