//! Views from results: a checkout replay run here, a plan written by `omniroute optimize --out`,
//! the scenario folders written by `omniroute simulate --out`, and the live state of a service.

use super::{Fate, MapData, Site, StoreFig, StoreSite, View, ViewBuilder};
use anyhow::Context;
use optimizer::ledger::StockEntry;
use optimizer::model::{LonLat, Network, Order, StoreIdx, Timestamp};
use optimizer::router::Status;
use optimizer::sim::Outcome;
use optimizer::Engine;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::borrow::Cow;
use std::path::Path;

/// Per store of `engine`: its SKU cells with nothing available now.
pub fn empty_cells(engine: &Engine) -> Vec<u32> {
    let ledger = engine.ledger();
    (0..engine.network().stores().len() as u32).map(|s| ledger.unavailable_count(StoreIdx(s))).collect()
}

/// Per store of a network of `stores` stores: its rows of `stock` with nothing available (what
/// [`empty_cells`] gives of an engine built from them, before any order).
pub fn empty_rows(stores: usize, stock: &[StockEntry]) -> Vec<u32> {
    let mut out = vec![0u32; stores];
    for e in stock {
        if e.on_hand.saturating_sub(e.safety_stock) == 0 {
            out[e.store.0 as usize] += 1;
        }
    }
    out
}

/// The figures of `engine`'s stores before any order (its network is the map's): open, capacity.
fn store_figs(engine: &Engine) -> Vec<StoreFig> {
    network_figs(engine.network())
}

/// The figures of `network`'s stores before any order: open, capacity.
fn network_figs(network: &Network) -> Vec<StoreFig> {
    network
        .stores()
        .iter()
        .map(|s| StoreFig {
            open: s.capabilities.ship || s.capabilities.pickup,
            capacity: s.capacity_per_day,
            orders: 0,
            stockouts: 0,
        })
        .collect()
}

/// The view of a replay's `outcomes` (of `orders`, in that order) on `engine`, whose network is
/// the map's; `empty_before` from [`empty_cells`] before the replay.
pub fn outcomes_view(
    map: &MapData,
    engine: &Engine,
    orders: &[Order],
    outcomes: &[Outcome],
    empty_before: &[u32],
    name: &str,
) -> View {
    let mut figs = store_figs(engine);
    for ((f, after), before) in figs.iter_mut().zip(empty_cells(engine)).zip(empty_before) {
        f.stockouts = after.saturating_sub(*before);
    }
    let mut b = ViewBuilder::new(map, engine.network().zone().clone(), figs);
    let net = engine.network();
    for (o, x) in orders.iter().zip(outcomes) {
        let from = match x.status {
            Status::Unfulfillable => None,
            Status::Dc => Some(Site::Dc(x.source)),
            _ => Some(Site::Store(x.source)),
        };
        let mut skus = o.lines().iter().map(|l| l.sku.as_str());
        b.add(Fate {
            to: o.customer(),
            created_at: o.created_at(),
            from,
            shipments: u32::from(x.shipments),
            km: f64::from(x.distance_m) / 1000.0,
            skus: &mut skus,
        });
    }
    debug_assert!(net.stores().len() <= map.stores.len(), "the map holds the engine's stores first");
    b.finish(name)
}

// A plan file as `omniroute optimize --out` writes it, only what a map reads, borrowed from the
// file's bytes (a million-order plan is a quarter of a gigabyte of JSON).
#[derive(Deserialize)]
struct PlanFile<'a> {
    #[serde(borrow)]
    assignments: Vec<PlanAssignment<'a>>,
    #[serde(borrow)]
    unfilled: Vec<PlanUnfilled<'a>>,
}

#[derive(Deserialize)]
struct PlanAssignment<'a> {
    #[serde(borrow)]
    order_id: Cow<'a, str>,
    #[serde(borrow)]
    shipments: Vec<PlanShipment<'a>>,
}

#[derive(Deserialize)]
struct PlanShipment<'a> {
    #[serde(default, borrow)]
    store_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    dc_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    lines: Vec<PlanLine<'a>>,
    distance_m: f64,
}

#[derive(Deserialize)]
struct PlanLine<'a> {
    #[serde(borrow)]
    sku: Cow<'a, str>,
    qty: u32,
}

#[derive(Deserialize)]
struct PlanUnfilled<'a> {
    #[serde(borrow)]
    order_id: Cow<'a, str>,
}

/// The view of a plan file (`omniroute optimize --out`) of `orders` on `network` and `stock` (as
/// the plan found them; the map's network). A split order counts at its first shipment's
/// source.
pub fn plan_view(
    map: &MapData,
    network: &Network,
    stock: &[StockEntry],
    orders: &[Order],
    path: &Path,
    name: &str,
) -> anyhow::Result<View> {
    let bytes = std::fs::read(path).with_context(|| format!("reading plan {}", path.display()))?;
    let plan: PlanFile = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
        .map_err(|e| anyhow::anyhow!("plan {}: {}: {}", path.display(), e.path(), e.inner()))?;
    let net = network;
    let by_id: FxHashMap<&str, &Order> = orders.iter().map(|o| (o.id().as_str(), o)).collect();
    let dcs: FxHashMap<&str, u32> =
        net.dcs().iter().enumerate().map(|(i, d)| (d.id.as_str(), i as u32)).collect();
    let order_of = |id: &str| {
        by_id.get(id).copied().with_context(|| {
            format!(
                "plan {}: order {id} is not in the order file (plans map with the orders they planned)",
                path.display()
            )
        })
    };
    let mut fates: Vec<(&Order, Option<Site>, u32, f64)> = Vec::with_capacity(orders.len());
    let mut used: FxHashMap<(u32, u32), u64> = FxHashMap::default();
    for a in &plan.assignments {
        let o = order_of(&a.order_id)?;
        let mut from = None;
        for s in &a.shipments {
            let site = match (&s.store_id, &s.dc_id) {
                (Some(id), _) => {
                    let idx = net.store_idx(id.as_ref()).with_context(|| {
                        format!(
                            "plan {}: order {}: store {id} is not in the dataset",
                            path.display(),
                            a.order_id
                        )
                    })?;
                    for l in &s.lines {
                        if let Some(k) = net.catalog().get(l.sku.as_ref()) {
                            *used.entry((idx.0, k.0)).or_default() += u64::from(l.qty);
                        }
                    }
                    Site::Store(idx.0)
                }
                (None, Some(id)) => Site::Dc(*dcs.get(id.as_ref()).with_context(|| {
                    format!("plan {}: order {}: DC {id} is not in the dataset", path.display(), a.order_id)
                })?),
                (None, None) => {
                    anyhow::bail!("plan {}: order {}: a shipment has no source", path.display(), a.order_id)
                }
            };
            from.get_or_insert(site);
        }
        let km = a.shipments.iter().map(|s| s.distance_m).sum::<f64>() / 1000.0;
        fates.push((o, from, a.shipments.len() as u32, km));
    }
    for u in &plan.unfilled {
        fates.push((order_of(&u.order_id)?, None, 0, 0.0));
    }
    drop(plan);
    fates.sort_by(|x, y| x.0.created_at().cmp(&y.0.created_at()).then_with(|| x.0.id().cmp(y.0.id())));
    let mut figs = network_figs(net);
    // A cell ran out when the plan took all that was available in it.
    for e in stock {
        if let Some(&units) = used.get(&(e.store.0, e.sku.0)) {
            let available = e.on_hand.saturating_sub(e.safety_stock);
            if available > 0 && units >= u64::from(available) {
                figs[e.store.0 as usize].stockouts += 1;
            }
        }
    }
    let mut b = ViewBuilder::new(map, net.zone().clone(), figs);
    for (o, from, shipments, km) in fates {
        let mut skus = o.lines().iter().map(|l| l.sku.as_str());
        b.add(Fate { to: o.customer(), created_at: o.created_at(), from, shipments, km, skus: &mut skus });
    }
    Ok(b.finish(name))
}

/// One row of a scenario's stores.csv (written by `omniroute simulate`).
#[derive(Deserialize)]
struct SimStore {
    store_id: String,
    city: String,
    lon: f64,
    lat: f64,
    open: bool,
    capacity: u32,
    stockouts: u32,
}

/// One row of a scenario's orders.csv.
#[derive(Deserialize)]
struct SimOrder {
    status: String,
    source: String,
    shipments: u32,
    distance_km: f64,
    created_at_unix: i64,
    lon: f64,
    lat: f64,
    #[serde(default)]
    skus: String,
}

/// The scenarios of a simulation's results folder, baseline first.
pub fn scenario_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Comparison {
        baseline: String,
        scenarios: std::collections::BTreeMap<String, serde_json::Value>,
    }
    let path = dir.join("comparison.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (a folder `omniroute simulate --out` wrote)", path.display()))?;
    let c: Comparison = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut names = vec![c.baseline.clone()];
    names.extend(c.scenarios.into_keys().filter(|n| *n != c.baseline));
    Ok(names)
}

/// Adds one view per scenario of a simulation's results folder to `map` (whose network is the
/// scenarios' base; stores a scenario adds join the map).
pub fn add_simulation(
    map: &mut MapData,
    zone: &optimizer::model::TimeZone,
    dir: &Path,
) -> anyhow::Result<()> {
    let names = scenario_names(dir)?;
    // Every scenario's stores first: one store table for all views (a store a scenario adds
    // joins the map's table).
    let mut index: FxHashMap<String, u32> =
        map.stores.iter().enumerate().map(|(i, s)| (s.id.clone(), i as u32)).collect();
    let mut stores = Vec::new();
    for name in &names {
        let path = dir.join(name).join("stores.csv");
        let mut rows = Vec::new();
        let mut r = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
        for (line, row) in r.deserialize::<SimStore>().enumerate() {
            let row = row.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
            let at = LonLat::new(row.lon, row.lat)
                .map_err(|e| anyhow::anyhow!("{}: line {}: lon/lat: {e}", path.display(), line + 2))?;
            let idx = *index.entry(row.store_id.clone()).or_insert_with(|| {
                map.stores.push(StoreSite {
                    id: row.store_id.clone(),
                    city: row.city.clone(),
                    lon: at.lon(),
                    lat: at.lat(),
                });
                (map.stores.len() - 1) as u32
            });
            rows.push((idx, row));
        }
        stores.push(rows);
    }
    let dcs: FxHashMap<String, u32> =
        map.dcs.iter().enumerate().map(|(i, d)| (d.id.clone(), i as u32)).collect();
    // Views already on the map get a figure for each store a scenario added.
    for v in &mut map.views {
        v.stores.resize(map.stores.len(), StoreFig::default());
    }
    for (name, rows) in names.iter().zip(stores) {
        let mut figs = vec![StoreFig::default(); map.stores.len()];
        for (idx, row) in rows {
            figs[idx as usize] =
                StoreFig { open: row.open, capacity: row.capacity, orders: 0, stockouts: row.stockouts };
        }
        let path = dir.join(name).join("orders.csv");
        let mut b = ViewBuilder::new(map, zone.clone(), figs);
        let mut r = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
        for (line, row) in r.deserialize::<SimOrder>().enumerate() {
            let at = || format!("{}: line {}", path.display(), line + 2);
            let row = row.with_context(at)?;
            let from = match row.status.as_str() {
                "unfulfillable" => None,
                "dc" => {
                    let id = row.source.strip_prefix("DC:").unwrap_or(&row.source);
                    Some(Site::Dc(
                        *dcs.get(id).with_context(|| format!("{}: DC {id} is not in the dataset", at()))?,
                    ))
                }
                _ => Some(Site::Store(
                    *index
                        .get(&row.source)
                        .with_context(|| format!("{}: store {} is unknown", at(), row.source))?,
                )),
            };
            let to = LonLat::new(row.lon, row.lat).map_err(|e| anyhow::anyhow!("{}: lon/lat: {e}", at()))?;
            let mut skus = row.skus.split(';').filter(|s| !s.is_empty());
            b.add(Fate {
                to,
                created_at: Timestamp(row.created_at_unix),
                from,
                shipments: row.shipments,
                km: row.distance_km,
                skus: &mut skus,
            });
        }
        map.views.push(b.finish(name));
    }
    Ok(())
}

/// The live state of a service's engine as a view: stores with the orders they took on the day
/// of `now`, their capacity and their SKUs with nothing available. Flows and unfilled demand
/// come from results (plans, replays, simulations), not from the live state.
pub fn live_view(map: &MapData, engine: &Engine, now: Timestamp) -> View {
    let mut figs = store_figs(engine);
    let ledger = engine.ledger();
    for ((i, f), empty) in figs.iter_mut().enumerate().zip(empty_cells(engine)) {
        f.orders = ledger.orders_today(StoreIdx(i as u32), now);
        f.stockouts = empty;
    }
    // `finish` counts the stores used and at capacity from the figures.
    ViewBuilder::new(map, engine.network().zone().clone(), figs).finish("live")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_rows_of_the_stock_are_the_engines_empty_cells() {
        let dir = crate::cli::default_data_dir();
        let loaded = crate::data::load_network(&dir).unwrap();
        let mut stock = loaded.stock.clone();
        // Some rows with nothing available: no units, or all kept back as safety stock.
        for (i, e) in stock.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
            if i % 2 == 0 {
                e.on_hand = 0;
            } else {
                e.safety_stock = e.on_hand;
            }
        }
        let rows = empty_rows(loaded.network.stores().len(), &stock);
        assert!(rows.iter().sum::<u32>() > 0);
        let engine = Engine::new(loaded.network, stock, optimizer::EngineConfig::default());
        assert_eq!(empty_cells(&engine), rows);
    }
}
