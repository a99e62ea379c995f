//! The greedy solver: the checkout router itself, order by order in arrival order, on a scratch
//! copy of the stock and capacity the plan may use. Greedy planning and a replay of the same
//! orders on the same stock therefore make the same decisions.

use super::instance::Pricer;
use super::{Choice, Plan, PlanConfig, Solver, StockView, UnfilledReason};
use crate::engine::{Engine, EngineConfig};
use crate::ledger::{LedgerConfig, StockEntry};
use crate::model::{Order, StoreIdx};
use crate::progress::Progress;
use crate::router::{Decision, Router, Source, Status};
use crate::travel::TravelCost;
use rayon::prelude::*;

/// What one order of a plan costs and how far each of its shipments travels, when the solver
/// priced it itself (the checkout greedy may choose stores beyond an order's candidates).
#[derive(Clone, Debug, PartialEq)]
pub struct Priced {
    pub cost: f64,
    /// Per shipment: (store index, or DC index for a DC shipment; metres).
    pub legs: Vec<(u32, f64)>,
}

/// A new engine over `engine`'s network whose stock is what `view` says is available (safety
/// stock and reservations already taken off) and whose capacity is what is left of the day.
///
/// # Runtime
/// O(r + n log n) for r stock rows and n stores; parallel over stores.
pub fn scratch_engine(engine: &Engine, view: &dyn StockView, expected_orders: usize) -> Engine {
    let (net, ledger) = (engine.network(), engine.ledger());
    let stores = net.stores().len() as u32;
    let stock: Vec<StockEntry> = (0..stores)
        .into_par_iter()
        .flat_map_iter(|s| {
            let s = StoreIdx(s);
            ledger.skus_of(s).into_iter().map(move |k| StockEntry {
                store: s,
                sku: k,
                on_hand: view.available(s, k),
                safety_stock: 0,
            })
        })
        .collect();
    let capacities: Vec<u32> = (0..stores).map(|s| view.capacity_left(StoreIdx(s))).collect();
    let config = EngineConfig {
        ledger: LedgerConfig { expected_reservations: expected_orders, ..LedgerConfig::default() },
        ..EngineConfig::default()
    };
    Engine::with_capacities(net.clone(), stock, &capacities, config)
}

/// Routes `orders` in `arrival` order with the checkout router under `config`'s rules on a
/// scratch copy of `view`, each reservation shipped at once; returns the plan with each order
/// priced under `config`'s weights.
pub fn greedy(
    engine: &Engine,
    view: &dyn StockView,
    cost: &dyn TravelCost,
    config: &PlanConfig,
    orders: &[Order],
    arrival: &[u32],
    progress: &dyn Progress,
) -> Plan {
    progress.stage("greedy (checkout router)", orders.len() as u64);
    let scratch = scratch_engine(engine, view, orders.len());
    let router = Router::new(config.router_config(), cost);
    let pricer = Pricer { network: engine.network(), cost, weights: config.weights };
    let mut choices = vec![Choice::Unfilled(UnfilledReason::NoCandidate); orders.len()];
    let mut priced = vec![Priced { cost: config.weights.unfilled, legs: Vec::new() }; orders.len()];
    for (i, &o) in arrival.iter().enumerate() {
        let order = &orders[o as usize];
        // Every order of a plan is its own: a repeated id is routed again, not refused.
        let decision = router.route_anew(&scratch, order);
        if decision.reservation_expires_at.is_some() {
            scratch.ledger().commit(order.id()).expect("a reservation just made commits");
            scratch.ledger().forget_ended(order.id());
        }
        let (choice, p) = to_choice(&pricer, config, order, &decision);
        choices[o as usize] = choice;
        priced[o as usize] = p;
        if i % 1024 == 1023 {
            progress.advance(1024);
        }
    }
    progress.advance(orders.len() as u64 % 1024);
    Plan { solver: Solver::Greedy, choices, lp: None, priced: Some(priced) }
}

/// What decision `d` for `order` costs under `config`'s weights.
pub(crate) fn price_decision(pricer: &Pricer<'_>, config: &PlanConfig, order: &Order, d: &Decision) -> f64 {
    to_choice(pricer, config, order, d).1.cost
}

/// A router decision as a plan choice, priced.
fn to_choice(pricer: &Pricer<'_>, config: &PlanConfig, order: &Order, d: &Decision) -> (Choice, Priced) {
    let w = config.weights;
    let pickup = order.mode() == crate::model::Mode::Pickup;
    let Some(at) = pricer.origin(order) else {
        return (
            Choice::Unfilled(UnfilledReason::NoCandidate),
            Priced { cost: w.unfilled, legs: Vec::new() },
        );
    };
    match d.status {
        Status::Assigned | Status::Alternative | Status::Split => {
            let mut legs = Vec::with_capacity(d.shipments.len());
            for s in &d.shipments {
                let store = s.store().expect("store decisions ship from stores");
                legs.push((store.0, pricer.store(store, pickup, at)));
            }
            let choice = if d.shipments.len() == 1 {
                let (c, m) = legs[0].1;
                return (Choice::Whole(StoreIdx(legs[0].0)), Priced { cost: c, legs: vec![(legs[0].0, m)] });
            } else {
                let catalog = pricer.network.catalog();
                let stores = order
                    .lines()
                    .iter()
                    .map(|l| {
                        let k = catalog.get(&l.sku).expect("routed lines are in the catalogue");
                        d.shipments
                            .iter()
                            .find(|s| s.lines.iter().any(|x| x.sku == k))
                            .and_then(|s| s.store())
                            .expect("every line of a split ships")
                    })
                    .collect();
                Choice::Split(stores)
            };
            // Priced as the planner's model prices a split (see `Instance::cost_of`): each line
            // as its own shipment from its store, plus the split penalty per line but one, so
            // that greedy and LP costs are on one objective.
            let Choice::Split(per_line) = &choice else { unreachable!("built above") };
            let mut cost = -w.split_penalty;
            for s in per_line {
                let (c, _) = legs.iter().find(|l| l.0 == s.0).expect("a line's store ships").1;
                cost += c + w.split_penalty;
            }
            (choice, Priced { cost, legs: legs.into_iter().map(|(s, (_, m))| (s, m)).collect() })
        }
        Status::Dc => {
            let Source::Dc(i) = d.shipments[0].source else { unreachable!("a DC decision ships from a DC") };
            let (c, m) = pricer.dc(i as usize, at);
            (Choice::Dc(i), Priced { cost: c, legs: vec![(i, m)] })
        }
        Status::Unfulfillable => {
            let reason = if d.explanation.candidates_considered > 0 {
                UnfilledReason::CandidatesExhausted
            } else {
                UnfilledReason::NoCandidate
            };
            (Choice::Unfilled(reason), Priced { cost: w.unfilled, legs: Vec::new() })
        }
    }
}
