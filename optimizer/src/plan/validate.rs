//! An independent plan validator: checks a plan in external ids against the network, the stock
//! view and the orders, without looking at the instance or the solver that made it.

use super::report::{Assignment, Unfilled};
use super::StockView;
use crate::model::{Mode, Network, Order, OrderId, Sku, StoreId};
use rustc_hash::FxHashMap;

/// One way a plan is wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Violation {
    #[error("order {0} is not in the order list")]
    UnknownOrder(OrderId),
    #[error("order {0} appears {1} times")]
    Repeated(OrderId, usize),
    #[error("order {0} is neither assigned nor listed as unfilled")]
    Missing(OrderId),
    #[error("order {order}: shipment {index} names {what}")]
    BadSource { order: OrderId, index: usize, what: String },
    #[error("order {order}: store {store} cannot serve a {mode} order")]
    Incapable { order: OrderId, store: StoreId, mode: &'static str },
    #[error("order {order}: shipments carry {got:?} but the order has {want:?} (sku, qty)")]
    Lines { order: OrderId, got: Vec<(Sku, u32)>, want: Vec<(Sku, u32)> },
    #[error("store {store} sku {sku}: plan uses {used} units, {available} available")]
    Stock { store: StoreId, sku: Sku, used: u64, available: u32 },
    #[error("store {store}: plan sends {used} orders, capacity left {capacity}")]
    Capacity { store: StoreId, used: u64, capacity: u32 },
}

/// Checks that every order is served at most once (exactly once across `assignments` and
/// `unfilled`), each by capable sources carrying exactly its lines, and that stock and store
/// capacity hold. Returns every violation found, empty for a valid plan.
pub fn validate(
    network: &Network,
    view: &dyn StockView,
    orders: &[Order],
    assignments: &[Assignment],
    unfilled: &[Unfilled],
) -> Vec<Violation> {
    let mut out = Vec::new();
    let by_id: FxHashMap<&OrderId, &Order> = orders.iter().map(|o| (o.id(), o)).collect();
    let mut seen: FxHashMap<&OrderId, usize> = FxHashMap::default();
    for id in assignments.iter().map(|a| &a.order_id).chain(unfilled.iter().map(|u| &u.order_id)) {
        if !by_id.contains_key(id) {
            out.push(Violation::UnknownOrder(id.clone()));
        }
        *seen.entry(id).or_default() += 1;
    }
    for o in orders {
        match seen.get(o.id()).copied().unwrap_or(0) {
            0 => out.push(Violation::Missing(o.id().clone())),
            1 => {}
            n => out.push(Violation::Repeated(o.id().clone(), n)),
        }
    }
    let mut cell_use: FxHashMap<(StoreId, Sku), u64> = FxHashMap::default();
    let mut store_use: FxHashMap<StoreId, u64> = FxHashMap::default();
    for a in assignments {
        let Some(order) = by_id.get(&a.order_id) else { continue };
        let mut got: Vec<(&Sku, u32)> = Vec::new();
        for (index, s) in a.shipments.iter().enumerate() {
            let bad =
                |what: &str| Violation::BadSource { order: a.order_id.clone(), index, what: what.into() };
            match (&s.store_id, &s.dc_id) {
                (Some(id), None) => {
                    let Some(idx) = network.store_idx(id) else {
                        out.push(bad(&format!("unknown store {id}")));
                        continue;
                    };
                    let caps = network.store(idx).capabilities;
                    let (ok, mode) = match order.mode() {
                        Mode::Ship => (caps.ship, "ship"),
                        Mode::Pickup => (caps.pickup, "pickup"),
                    };
                    if !ok {
                        out.push(Violation::Incapable { order: a.order_id.clone(), store: id.clone(), mode });
                    }
                    *store_use.entry(id.clone()).or_default() += 1;
                    for l in &s.lines {
                        *cell_use.entry((id.clone(), l.sku.clone())).or_default() += u64::from(l.qty.get());
                    }
                }
                (None, Some(dc)) => {
                    if order.mode() == Mode::Pickup {
                        out.push(bad("a DC for a pickup order"));
                    } else if !network.dcs().iter().any(|d| d.id == *dc) {
                        out.push(bad(&format!("unknown DC {dc}")));
                    }
                }
                _ => out.push(bad("both or neither of store_id and dc_id")),
            }
            got.extend(s.lines.iter().map(|l| (&l.sku, l.qty.get())));
        }
        let mut want: Vec<(&Sku, u32)> = order.lines().iter().map(|l| (&l.sku, l.qty.get())).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            let text = |v: Vec<(&Sku, u32)>| v.into_iter().map(|(k, q)| (k.clone(), q)).collect();
            out.push(Violation::Lines { order: a.order_id.clone(), got: text(got), want: text(want) });
        }
    }
    let mut cells: Vec<_> = cell_use.into_iter().collect();
    cells.sort_unstable();
    for ((store, sku), used) in cells {
        let available = match (network.store_idx(&store), network.catalog().get(&sku)) {
            (Some(s), Some(k)) => view.available(s, k),
            _ => 0,
        };
        if used > u64::from(available) {
            out.push(Violation::Stock { store, sku, used, available });
        }
    }
    let mut stores: Vec<_> = store_use.into_iter().collect();
    stores.sort_unstable();
    for (store, used) in stores {
        let capacity = network.store_idx(&store).map_or(0, |s| view.capacity_left(s));
        if used > u64::from(capacity) {
            out.push(Violation::Capacity { store, used, capacity });
        }
    }
    out
}
