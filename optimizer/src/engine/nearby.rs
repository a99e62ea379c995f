//! The k stores nearest to a point, optionally only those that can hand over a SKU now.

use super::Engine;
use crate::index::Walk;
use crate::model::{LonLat, SkuIdx, StoreIdx};
use std::ops::ControlFlow;

/// A store near a point.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct NearbyStore {
    pub store: StoreIdx,
    /// Great-circle distance from the point.
    ///
    /// # Units
    /// Metres.
    pub distance_m: f64,
    pub pickup: bool,
    pub ship: bool,
    /// Units of the SKU asked for that the store may promise now (present when a SKU was asked
    /// for; never 0 then).
    pub available: Option<u32>,
}

impl Engine {
    /// The `k` stores nearest to `at`, nearest first (great-circle order). With `sku`, only the
    /// stores with at least one unit of it available now (after reservations and safety stock),
    /// counted before the `k` are taken, so the list is short only when fewer stores have it.
    ///
    /// # Runtime
    /// O(log n) per store visited; with `sku`, the walk follows the SKU's own R-tree when it is
    /// sparse, and skips stores without it through the availability bits.
    ///
    /// # Examples
    /// ```
    /// # use optimizer::{Engine, EngineConfig};
    /// # use optimizer::ledger::StockEntry;
    /// # use optimizer::model::*;
    /// let city = City { name: "Shanghai".into(), region: "31".into(),
    ///                   location: LonLat::new(121.46, 31.22).unwrap(), population: 1 };
    /// let store = |id, lon| Store { id: StoreId::numbered(id), brand: BrandId::numbered(1), city: CityId(0),
    ///     location: LonLat::new(lon, 31.2).unwrap(), capabilities: Capabilities { pickup: true, ship: true },
    ///     capacity_per_day: 10, hours: OpeningHours::ALWAYS };
    /// let catalog = SkuCatalog::new(vec![Sku::parse("SKU-5").unwrap()]).unwrap();
    /// let net = Network::new(vec![city], vec![store(1, 121.40), store(2, 121.41)], vec![], catalog).unwrap();
    /// // Only store 2 (dense index 1) holds SKU-5.
    /// let stock = vec![StockEntry { store: StoreIdx(1), sku: SkuIdx(0), on_hand: 3, safety_stock: 0 }];
    /// let engine = Engine::new(net, stock, EngineConfig::default());
    /// let at = LonLat::new(121.40, 31.2).unwrap();
    /// assert_eq!(engine.nearby(at, 2, None).len(), 2);
    /// let with = engine.nearby(at, 2, Some(SkuIdx(0)));
    /// assert_eq!((with.len(), with[0].store, with[0].available), (1, StoreIdx(1), Some(3)));
    /// ```
    pub fn nearby(&self, at: LonLat, k: usize, sku: Option<SkuIdx>) -> Vec<NearbyStore> {
        let ledger = self.ledger();
        let mut out = Vec::with_capacity(k.min(1024));
        if k == 0 {
            return out;
        }
        let visit = |c: crate::index::Candidate| {
            let available = match sku {
                Some(s) if !ledger.maybe_available(c.store, s) => return ControlFlow::Continue(()),
                Some(s) => match ledger.level(c.store, s).map_or(0, |l| l.available) {
                    0 => return ControlFlow::Continue(()),
                    n => Some(n),
                },
                None => None,
            };
            out.push(NearbyStore {
                store: c.store,
                distance_m: c.distance_m(),
                pickup: c.pickup,
                ship: c.ship,
                available,
            });
            if out.len() == k {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        match sku {
            Some(s) => self.walk_stocked::<()>(s, at, 0.0, f64::INFINITY, visit),
            None => self.index().walk::<()>(Walk::All, at, 0.0, f64::INFINITY, visit),
        };
        out
    }
}
