//! The static network: cities, stores, DCs and the SKU catalogue, with dense indexes.

use super::ids::{DcId, Sku, StoreId};
use super::store::{City, Dc, Store};
use super::zone::TimeZone;
use crate::growing::Growing;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, Ordering};

/// Dense position of a store in [`Network::stores`]; what the index and ledger work with.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreIdx(pub u32);

/// Dense position of a SKU in [`SkuCatalog`]; what the ledger's per-SKU structures use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkuIdx(pub u32);

/// Why a network could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("store_id {0} appears more than once")]
    DuplicateStore(StoreId),
    #[error("dc_id {0} appears more than once")]
    DuplicateDc(DcId),
    #[error("sku {0} appears more than once in the catalogue")]
    DuplicateSku(Sku),
    #[error("city index {0} is not in the city list")]
    UnknownCity(u16),
    #[error("more than {max} stores")]
    TooManyStores { max: usize },
}

/// Why an order does not fit the network it is routed on. The order itself is valid (see
/// [`crate::model::Order::new`]); it names something this network lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderMismatch {
    #[error("sku {sku} is not in the catalogue, which has learned {learned} SKUs since it was loaded, as many as it may")]
    CatalogFull { line: usize, sku: Sku, learned: usize },
    #[error("store {0} does not exist")]
    UnknownPickupStore(StoreId),
}

impl OrderMismatch {
    /// The order field the mismatch is about, as a JSON path (`lines[2].sku`).
    pub fn field(&self) -> String {
        match self {
            OrderMismatch::CatalogFull { line, .. } => format!("lines[{line}].sku"),
            OrderMismatch::UnknownPickupStore(_) => "pickup_store_id".into(),
        }
    }
}

/// The SKUs the network knows, with a dense index for each: those of the load, then those
/// learned while serving ([`SkuCatalog::learn`]: a stock feed or an order named a new SKU).
#[derive(Debug, Default)]
pub struct SkuCatalog {
    skus: Growing<Sku>,
    /// SKUs of the load (never changes: lookups of them take no lock).
    index: FxHashMap<Sku, SkuIdx>,
    /// SKUs learned since, looked up only when `index` misses and `learned_count` is not zero.
    learned: RwLock<FxHashMap<Sku, SkuIdx>>,
    learned_count: AtomicU32,
}

/// The catalogue has learned as many SKUs as it may ([`SkuCatalog::MAX_LEARNED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the catalogue has learned {0} SKUs since it was loaded, as many as it may")]
pub struct CatalogFull(pub usize);

impl Clone for SkuCatalog {
    fn clone(&self) -> SkuCatalog {
        let learned = self.learned.read().clone();
        SkuCatalog {
            skus: self.skus.clone(),
            index: self.index.clone(),
            learned_count: AtomicU32::new(learned.len() as u32),
            learned: RwLock::new(learned),
        }
    }
}

impl SkuCatalog {
    /// At most this many SKUs are learned after load: one costs about 100 bytes plus, once a
    /// store stocks it, one bit per store.
    pub const MAX_LEARNED: usize = 1_000_000;

    /// Builds a catalogue; SKUs must be distinct.
    pub fn new(skus: Vec<Sku>) -> Result<SkuCatalog, NetworkError> {
        let mut index = FxHashMap::default();
        index.reserve(skus.len());
        for (i, sku) in skus.iter().enumerate() {
            if index.insert(sku.clone(), SkuIdx(i as u32)).is_some() {
                return Err(NetworkError::DuplicateSku(sku.clone()));
            }
        }
        Ok(SkuCatalog { skus: Growing::new(skus), index, ..SkuCatalog::default() })
    }

    /// The dense index of `sku` (a [`Sku`] or its text), if the catalogue has it.
    #[inline]
    pub fn get<Q>(&self, sku: &Q) -> Option<SkuIdx>
    where
        Sku: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.index.get(sku) {
            Some(&k) => Some(k),
            None if self.learned_count.load(Ordering::Acquire) == 0 => None,
            None => self.learned.read().get(sku).copied(),
        }
    }

    /// Learns `sku` if the catalogue lacks it and returns its index, with whether it is new.
    /// `prepare(k)` runs before the new index `k` becomes visible to [`SkuCatalog::get`], so that
    /// the per-SKU tables of the caller hold a row for it by then; learning is serialised.
    ///
    /// # Errors
    /// [`CatalogFull`] once [`SkuCatalog::MAX_LEARNED`] SKUs have been learned.
    pub fn learn(&self, sku: &Sku, prepare: impl FnOnce(SkuIdx)) -> Result<(SkuIdx, bool), CatalogFull> {
        if let Some(k) = self.get(sku) {
            return Ok((k, false));
        }
        let mut learned = self.learned.write();
        if let Some(&k) = learned.get(sku) {
            return Ok((k, false));
        }
        if learned.len() >= Self::MAX_LEARNED {
            return Err(CatalogFull(learned.len()));
        }
        let k = SkuIdx(self.skus.len() as u32);
        prepare(k);
        let pushed = self.skus.push(sku.clone());
        debug_assert_eq!(pushed, k.0 as usize);
        learned.insert(sku.clone(), k);
        self.learned_count.store(learned.len() as u32, Ordering::Release);
        Ok((k, true))
    }

    /// SKUs learned since load.
    pub fn learned_len(&self) -> usize {
        self.learned_count.load(Ordering::Acquire) as usize
    }

    /// The SKU at a dense index.
    pub fn sku(&self, idx: SkuIdx) -> &Sku {
        &self.skus[idx.0 as usize]
    }

    pub fn len(&self) -> usize {
        self.skus.len()
    }

    pub fn is_empty(&self) -> bool {
        self.skus.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sku> + '_ {
        self.skus.iter()
    }
}

/// Cities, stores, DCs and SKUs, immutable once built.
#[derive(Clone, Debug)]
pub struct Network {
    cities: Vec<City>,
    stores: Vec<Store>,
    dcs: Vec<Dc>,
    catalog: SkuCatalog,
    by_id: FxHashMap<StoreId, StoreIdx>,
    /// Local time of the network's stores and customers.
    zone: TimeZone,
    /// Farthest a customer may be from every store and DC, metres.
    reach_m: f64,
}

impl Network {
    /// Assembles a network in China's time zone (see [`Network::with_zone`]), checking ids are
    /// unique and cities exist.
    pub fn new(
        cities: Vec<City>,
        stores: Vec<Store>,
        dcs: Vec<Dc>,
        catalog: SkuCatalog,
    ) -> Result<Network, NetworkError> {
        if stores.len() > u32::MAX as usize / 2 {
            return Err(NetworkError::TooManyStores { max: u32::MAX as usize / 2 });
        }
        let mut by_id = FxHashMap::default();
        by_id.reserve(stores.len());
        for (i, s) in stores.iter().enumerate() {
            if usize::from(s.city.0) >= cities.len() {
                return Err(NetworkError::UnknownCity(s.city.0));
            }
            if by_id.insert(s.id.clone(), StoreIdx(i as u32)).is_some() {
                return Err(NetworkError::DuplicateStore(s.id.clone()));
            }
        }
        for (i, d) in dcs.iter().enumerate() {
            if usize::from(d.city.0) >= cities.len() {
                return Err(NetworkError::UnknownCity(d.city.0));
            }
            if dcs[..i].iter().any(|o| o.id == d.id) {
                return Err(NetworkError::DuplicateDc(d.id.clone()));
            }
        }
        Ok(Network {
            cities,
            stores,
            dcs,
            catalog,
            by_id,
            zone: TimeZone::china(),
            reach_m: Self::DEFAULT_REACH_M,
        })
    }

    /// The same network in time zone `zone`.
    pub fn with_zone(mut self, zone: TimeZone) -> Network {
        self.zone = zone;
        self
    }

    /// The network's time zone: local days, opening hours and promises follow it.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// How far a customer may be from every store and DC by default: 2,000 km.
    pub const DEFAULT_REACH_M: f64 = 2_000_000.0;

    /// The same network with customers allowed up to `reach_m` metres from the nearest store or
    /// DC (farther ones are refused as out of the area, see
    /// [`crate::Engine::nearest_site_m`]).
    pub fn with_reach(mut self, reach_m: f64) -> Network {
        self.reach_m = reach_m;
        self
    }

    /// Farthest a customer may be from every store and DC.
    ///
    /// # Units
    /// Metres.
    pub fn reach_m(&self) -> f64 {
        self.reach_m
    }

    pub fn cities(&self) -> &[City] {
        &self.cities
    }
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }
    pub fn dcs(&self) -> &[Dc] {
        &self.dcs
    }
    pub fn catalog(&self) -> &SkuCatalog {
        &self.catalog
    }

    /// The store at a dense index.
    pub fn store(&self, idx: StoreIdx) -> &Store {
        &self.stores[idx.0 as usize]
    }

    /// The id of the store at a dense index.
    pub fn store_id(&self, idx: StoreIdx) -> &StoreId {
        &self.stores[idx.0 as usize].id
    }

    /// The dense index of a store id (a [`StoreId`] or its text).
    #[inline]
    pub fn store_idx<Q>(&self, id: &Q) -> Option<StoreIdx>
    where
        StoreId: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.by_id.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_learned_from_many_threads_get_one_dense_index_each() {
        let catalog = SkuCatalog::new(vec![Sku::numbered(0), Sku::numbered(1)]).unwrap();
        let prepared = parking_lot::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..4 {
                let (catalog, prepared) = (&catalog, &prepared);
                s.spawn(move || {
                    for i in 0..200 {
                        let sku = Sku::parse(&format!("N-{}", (i * (t + 1)) % 300)).unwrap();
                        let (k, _) = catalog.learn(&sku, |k| prepared.lock().push(k)).unwrap();
                        assert_eq!(catalog.sku(k), &sku);
                    }
                });
            }
        });
        let learned = catalog.learned_len();
        assert_eq!(catalog.len(), 2 + learned);
        let mut prepared = prepared.into_inner();
        prepared.sort_unstable();
        assert_eq!(prepared, (2..2 + learned as u32).map(SkuIdx).collect::<Vec<_>>());
        for k in 2..catalog.len() as u32 {
            assert_eq!(catalog.get(catalog.sku(SkuIdx(k))), Some(SkuIdx(k)));
        }
        // The load's SKUs are never learned again; a clone knows what was learned.
        assert_eq!(catalog.learn(&Sku::numbered(1), |_| unreachable!()).unwrap(), (SkuIdx(1), false));
        assert_eq!(catalog.clone().get("N-7"), catalog.get("N-7"));
    }
}
