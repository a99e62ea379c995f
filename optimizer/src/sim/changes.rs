//! What-if changes to a network and its stock, applied in order to a copy of the base.

use crate::ledger::StockEntry;
use crate::model::{BrandId, CityId, Network, SkuIdx, Store, StoreIdx};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;

/// Which stores a change applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    All,
    Stores(Vec<StoreIdx>),
    City(CityId),
    Brand(BrandId),
    /// A seeded random `fraction` of the city's stores (rounded to the nearest store).
    RandomInCity {
        city: CityId,
        fraction: f64,
        seed: u64,
    },
}

impl Selector {
    /// A mask over the stores of `stores` (the base network's plus any added so far).
    fn mask(&self, stores: &[Store]) -> Vec<bool> {
        match self {
            Selector::All => vec![true; stores.len()],
            Selector::Stores(ids) => {
                let mut m = vec![false; stores.len()];
                for s in ids {
                    m[s.0 as usize] = true;
                }
                m
            }
            Selector::City(c) => stores.iter().map(|s| s.city == *c).collect(),
            Selector::Brand(b) => stores.iter().map(|s| s.brand == *b).collect(),
            Selector::RandomInCity { city, fraction, seed } => {
                let mut in_city: Vec<usize> =
                    (0..stores.len()).filter(|&i| stores[i].city == *city).collect();
                // Store ids, not positions, decide the draw, so that it does not depend on load order.
                in_city.sort_by(|&a, &b| stores[a].id.cmp(&stores[b].id));
                let take = (in_city.len() as f64 * fraction).round() as usize;
                let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                // A partial Fisher-Yates shuffle: the first `take` are a uniform sample.
                for i in 0..take.min(in_city.len()) {
                    let j = rng.random_range(i..in_city.len());
                    in_city.swap(i, j);
                }
                let mut m = vec![false; stores.len()];
                for &i in &in_city[..take.min(in_city.len())] {
                    m[i] = true;
                }
                m
            }
        }
    }
}

/// Stock of a new store.
#[derive(Clone, Debug, PartialEq)]
pub enum NewStock {
    /// The same cells as this store of the base.
    CopyOf(StoreIdx),
    /// (SKU, on hand) rows.
    Rows(Vec<(SkuIdx, u32)>),
}

/// One what-if change.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The stores neither ship nor take pickups; no order is ever routed to them.
    Close(Selector),
    /// Multiplies on-hand stock of the selected stores (of `skus` only, when given), rounding each
    /// cell up or down at random so that the expected total is exact.
    StockScale { stores: Selector, skus: Option<Vec<SkuIdx>>, factor: f64, seed: u64 },
    /// Sets on-hand stock of listed cells (creating the cell when the store lacks it).
    StockSet(Vec<(StoreIdx, SkuIdx, u32)>),
    /// Multiplies (rounded) or sets the daily capacity of the selected stores.
    Capacity { stores: Selector, factor: Option<f64>, value: Option<u32> },
    /// Turns ship-from-store or pickup on or off for the selected stores.
    Modes { stores: Selector, ship: Option<bool>, pickup: Option<bool> },
    /// Keeps only the DCs whose mask entry is true (in the network's DC order).
    Dcs(Vec<bool>),
    /// Adds a store with its stock.
    NewStore { store: Store, stock: NewStock },
}

/// A network and stock with changes applied: what one scenario's engine is built from.
pub struct Changed {
    pub network: Network,
    pub stock: Vec<StockEntry>,
}

/// Why changes could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    #[error("change {index}: {problem}")]
    Invalid { index: usize, problem: String },
}

/// Applies `changes` in order to copies of `network` and `stock`.
///
/// # Errors
/// A change that names a store id twice (new stores) or builds an invalid network.
pub fn apply(network: &Network, stock: &[StockEntry], changes: &[Change]) -> Result<Changed, ChangeError> {
    let mut stores: Vec<Store> = network.stores().to_vec();
    let mut dcs = network.dcs().to_vec();
    let mut stock: Vec<StockEntry> = stock.to_vec();
    for (index, change) in changes.iter().enumerate() {
        let invalid = |problem: String| ChangeError::Invalid { index, problem };
        match change {
            Change::Close(sel) => {
                let mask = sel.mask(&stores);
                for (s, on) in stores.iter_mut().zip(mask) {
                    if on {
                        s.capabilities.ship = false;
                        s.capabilities.pickup = false;
                    }
                }
            }
            Change::StockScale { stores: sel, skus, factor, seed } => {
                let mask = sel.mask(&stores);
                let skus: Option<rustc_hash::FxHashSet<SkuIdx>> =
                    skus.as_ref().map(|v| v.iter().copied().collect());
                let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                for e in stock.iter_mut() {
                    if mask[e.store.0 as usize] && skus.as_ref().is_none_or(|k| k.contains(&e.sku)) {
                        e.on_hand = scale_randomly(e.on_hand, *factor, &mut rng);
                    }
                }
            }
            Change::StockSet(cells) => {
                let at: FxHashMap<(StoreIdx, SkuIdx), usize> =
                    stock.iter().enumerate().map(|(i, e)| ((e.store, e.sku), i)).collect();
                for &(store, sku, on_hand) in cells {
                    match at.get(&(store, sku)) {
                        Some(&i) => stock[i].on_hand = on_hand,
                        None => stock.push(StockEntry { store, sku, on_hand, safety_stock: 0 }),
                    }
                }
            }
            Change::Capacity { stores: sel, factor, value } => {
                let mask = sel.mask(&stores);
                for (s, on) in stores.iter_mut().zip(mask) {
                    if on {
                        if let Some(v) = value {
                            s.capacity_per_day = *v;
                        }
                        if let Some(f) = factor {
                            s.capacity_per_day =
                                (f64::from(s.capacity_per_day) * f).round().min(f64::from(u32::MAX)) as u32;
                        }
                    }
                }
            }
            Change::Modes { stores: sel, ship, pickup } => {
                let mask = sel.mask(&stores);
                for (s, on) in stores.iter_mut().zip(mask) {
                    if on {
                        if let Some(v) = ship {
                            s.capabilities.ship = *v;
                        }
                        if let Some(v) = pickup {
                            s.capabilities.pickup = *v;
                        }
                    }
                }
            }
            Change::Dcs(keep) => {
                let mut i = 0;
                dcs.retain(|_| {
                    i += 1;
                    keep.get(i - 1).copied().unwrap_or(true)
                });
            }
            Change::NewStore { store, stock: new } => {
                if stores.iter().any(|s| s.id == store.id) {
                    return Err(invalid(format!("store {} already exists", store.id)));
                }
                let idx = StoreIdx(stores.len() as u32);
                stores.push(store.clone());
                let rows: Vec<StockEntry> = match new {
                    NewStock::CopyOf(from) => stock
                        .iter()
                        .filter(|e| e.store == *from)
                        .map(|e| StockEntry { store: idx, ..*e })
                        .collect(),
                    NewStock::Rows(rows) => rows
                        .iter()
                        .map(|&(sku, on_hand)| StockEntry { store: idx, sku, on_hand, safety_stock: 0 })
                        .collect(),
                };
                stock.extend(rows);
            }
        }
    }
    let network = Network::new(network.cities().to_vec(), stores, dcs, network.catalog().clone())
        .map_err(|e| ChangeError::Invalid { index: changes.len().saturating_sub(1), problem: e.to_string() })?
        .with_zone(network.zone().clone())
        .with_reach(network.reach_m());
    Ok(Changed { network, stock })
}

/// `on_hand * factor`, rounded down or up at random with the probability of the fraction.
fn scale_randomly(on_hand: u32, factor: f64, rng: &mut ChaCha8Rng) -> u32 {
    let x = f64::from(on_hand) * factor;
    let floor = x.floor();
    let up = rng.random::<f64>() < x - floor;
    (floor + f64::from(u8::from(up))).min(f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    fn base() -> (Network, Vec<StockEntry>) {
        let stores = (0..10).map(|i| testkit::store(i + 1, 121.4 + f64::from(i) * 0.01, 31.2)).collect();
        let net = testkit::network(stores, 3);
        let stock = (0..10)
            .flat_map(|s| {
                (0..3).map(move |k| StockEntry {
                    store: StoreIdx(s),
                    sku: SkuIdx(k),
                    on_hand: 10,
                    safety_stock: 0,
                })
            })
            .collect();
        (net, stock)
    }

    #[test]
    fn close_scale_set_capacity_modes_and_new_store() {
        let (net, stock) = base();
        let new = Store { id: crate::model::StoreId::numbered(99), ..net.stores()[0].clone() };
        let changes = vec![
            Change::Close(Selector::Stores(vec![StoreIdx(1)])),
            Change::StockScale { stores: Selector::All, skus: Some(vec![SkuIdx(0)]), factor: 2.0, seed: 1 },
            Change::StockSet(vec![(StoreIdx(2), SkuIdx(1), 0)]),
            Change::Capacity { stores: Selector::Stores(vec![StoreIdx(3)]), factor: Some(0.5), value: None },
            Change::Modes { stores: Selector::Stores(vec![StoreIdx(4)]), ship: Some(false), pickup: None },
            Change::NewStore { store: new, stock: NewStock::CopyOf(StoreIdx(0)) },
        ];
        let c = apply(&net, &stock, &changes).unwrap();
        let s = c.network.stores();
        assert!(!s[1].capabilities.ship && !s[1].capabilities.pickup);
        let level = |store: u32, sku: u32| {
            c.stock.iter().find(|e| e.store == StoreIdx(store) && e.sku == SkuIdx(sku)).map(|e| e.on_hand)
        };
        assert_eq!(level(0, 0), Some(20));
        assert_eq!(level(0, 1), Some(10));
        assert_eq!(level(2, 1), Some(0));
        assert_eq!(s[3].capacity_per_day, (f64::from(net.stores()[3].capacity_per_day) * 0.5).round() as u32);
        assert!(!s[4].capabilities.ship && s[4].capabilities.pickup == net.stores()[4].capabilities.pickup);
        assert_eq!(s.len(), 11);
        assert_eq!(level(10, 0), Some(20), "copied after the scale");
        // The base is untouched.
        assert!(net.stores()[1].capabilities.ship);
    }

    #[test]
    fn random_rounding_keeps_the_expected_total_and_is_seeded() {
        let (net, stock) = base();
        let scale = |seed| {
            let ch = [Change::StockScale { stores: Selector::All, skus: None, factor: 0.35, seed }];
            apply(&net, &stock, &ch).unwrap().stock.iter().map(|e| e.on_hand).collect::<Vec<_>>()
        };
        let a = scale(7);
        assert_eq!(a, scale(7));
        assert!(a.iter().all(|&q| q == 3 || q == 4));
        let total: u32 = a.iter().sum();
        assert!((90..=120).contains(&total), "expected about 105, got {total}");
    }

    #[test]
    fn a_random_fraction_of_a_city_closes_that_many_stores() {
        let (net, stock) = base();
        let city = net.stores()[0].city;
        let ch = [Change::Close(Selector::RandomInCity { city, fraction: 0.3, seed: 5 })];
        let c = apply(&net, &stock, &ch).unwrap();
        assert_eq!(c.network.stores().iter().filter(|s| !s.capabilities.ship).count(), 3);
    }
}
