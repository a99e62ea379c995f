//! The engine: the static network, its spatial index and the live stock ledger, built together
//! so that the index always knows which stores carry which SKU.

use crate::index::{IndexConfig, StoreIndex};
use crate::ledger::{FeedOutcome, FeedRefused, FeedRow, LedgerConfig, StockEntry, StockLedger};
use crate::model::{CatalogFull, Network, Order, OrderMismatch, Sku, SkuIdx, StoreIdx};

mod nearby;
mod reach;
pub use nearby::NearbyStore;

/// Settings for [`Engine::new`].
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct EngineConfig {
    pub index: IndexConfig,
    pub ledger: LedgerConfig,
}

/// Network + index + ledger. Shared by reference between routing threads.
pub struct Engine {
    network: Network,
    index: StoreIndex,
    ledger: StockLedger,
    /// Built on the first [`Engine::within_reach`].
    reach: std::sync::OnceLock<reach::ReachGrid>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("network", &self.network).finish_non_exhaustive()
    }
}

/// Per SKU, the stores with a row for it, ascending. Each thread lists one contiguous share of
/// the rows, and the shares are joined per SKU in order: rows grouped by store (as loaders give
/// them) come out sorted without sorting.
fn carriers_by_sku(stock: &[StockEntry], skus: usize) -> Vec<Vec<StoreIdx>> {
    use rayon::prelude::*;
    let share = stock.len().div_ceil(rayon::current_num_threads()).max(1);
    let shares: Vec<Vec<Vec<StoreIdx>>> = stock
        .par_chunks(share)
        .map(|rows| {
            let mut carriers = vec![Vec::new(); skus];
            for row in rows {
                carriers[row.sku.0 as usize].push(row.store);
            }
            carriers
        })
        .collect();
    (0..skus)
        .into_par_iter()
        .map(|k| {
            let mut c: Vec<StoreIdx> = shares.iter().flat_map(|s| s[k].iter().copied()).collect();
            if !c.is_sorted() {
                c.sort_unstable();
            }
            c.dedup();
            c
        })
        .collect()
}

impl Engine {
    /// Builds the index and ledger for `network` from initial stock rows (dense indexes; rows
    /// must refer to stores and SKUs of the network).
    ///
    /// # Runtime
    /// O(r log r + n log n) for r stock rows and n stores.
    pub fn new(network: Network, stock: Vec<StockEntry>, config: EngineConfig) -> Engine {
        let capacities: Vec<u32> = network.stores().iter().map(|s| s.capacity_per_day).collect();
        Engine::with_capacities(network, stock, &capacities, config)
    }

    /// Like [`Engine::new`], with each store's orders per day taken from `capacities` (in store
    /// index order) instead of the network: a scratch engine for what is left of a day.
    pub fn with_capacities(
        network: Network,
        stock: Vec<StockEntry>,
        capacities: &[u32],
        config: EngineConfig,
    ) -> Engine {
        assert_eq!(capacities.len(), network.stores().len(), "one capacity per store");
        let carriers = carriers_by_sku(&stock, network.catalog().len());
        let (index, ledger) = rayon::join(
            || StoreIndex::build(&network, &carriers, config.index),
            || {
                StockLedger::new(capacities, network.catalog().len(), stock, config.ledger)
                    .with_zone(network.zone().clone())
            },
        );
        Engine { network, index, ledger, reach: std::sync::OnceLock::new() }
    }

    pub fn network(&self) -> &Network {
        &self.network
    }
    pub fn index(&self) -> &StoreIndex {
        &self.index
    }
    pub fn ledger(&self) -> &StockLedger {
        &self.ledger
    }

    /// The index of `sku`, learning it first when the catalogue lacks it (a stock feed or an
    /// order named a new SKU): the catalogue, the ledger and the index each get a row for it,
    /// carried by no store until a feed gives it one. An order for it then ships from a DC.
    ///
    /// # Errors
    /// [`CatalogFull`] when the catalogue may learn no more SKUs.
    pub fn learn_sku(&self, sku: &Sku) -> Result<SkuIdx, CatalogFull> {
        let (k, _) = self.network.catalog().learn(sku, |k| {
            let (a, b) = (self.ledger.learn_sku(), self.index.learn_sku());
            assert!(a == k && b == k, "per-SKU tables in step with the catalogue");
        })?;
        Ok(k)
    }

    /// Admits `order` to this network: its pickup store must exist, and the SKUs the catalogue
    /// lacks are learned (see [`Engine::learn_sku`]). One lookup per line.
    ///
    /// # Errors
    /// [`OrderMismatch::UnknownPickupStore`], or [`OrderMismatch::CatalogFull`] for the first
    /// line whose SKU could not be learned.
    pub fn admit(&self, order: &Order) -> Result<(), OrderMismatch> {
        if let (crate::model::Mode::Pickup, Some(store)) = (order.mode(), order.pickup_store()) {
            if self.network.store_idx(store).is_none() {
                return Err(OrderMismatch::UnknownPickupStore(store.clone()));
            }
        }
        let catalog = self.network.catalog();
        for (line, l) in order.lines().iter().enumerate() {
            if catalog.get(&l.sku).is_none() {
                self.learn_sku(&l.sku).map_err(|CatalogFull(learned)| OrderMismatch::CatalogFull {
                    line,
                    sku: l.sku.clone(),
                    learned,
                })?;
            }
        }
        Ok(())
    }

    /// Applies a stock feed, all rows or none, atomically with respect to routing and other
    /// feeds (see [`StockLedger::apply_feed`]). A row that creates a (store, SKU) pair also enters
    /// the SKU's carrier index.
    ///
    /// # Errors
    /// The first row that cannot apply; nothing changed.
    pub fn apply_feed(&self, rows: &[FeedRow]) -> Result<Vec<FeedOutcome>, FeedRefused> {
        let out = self.ledger.apply_feed(rows)?;
        for (r, o) in rows.iter().zip(&out) {
            if o.new_row {
                self.index.add_carrier(r.sku, r.store);
            }
        }
        Ok(out)
    }

    /// Visits, nearest first within `[min_m, max_m]` of `at`, the stores that may have `sku`
    /// available now: every store that has it, and possibly some drained ones (see
    /// [`StoreIndex::walk_stocked`]), until `visit` breaks. The checkout walk.
    pub fn walk_stocked<B>(
        &self,
        sku: SkuIdx,
        at: crate::model::LonLat,
        min_m: f64,
        max_m: f64,
        visit: impl FnMut(crate::index::Candidate) -> std::ops::ControlFlow<B>,
    ) -> Option<B> {
        self.index.walk_stocked(sku, self.ledger.available_bits(sku), at, min_m, max_m, visit)
    }

    /// Great-circle distance from `at` to the nearest store or DC (infinite for an empty
    /// network): a customer farther than [`Network::reach_m`] is out of the network's area.
    ///
    /// # Units
    /// Metres.
    ///
    /// # Runtime
    /// O(log n) for the nearest store, O(d) over the DCs.
    pub fn nearest_site_m(&self, at: crate::model::LonLat) -> f64 {
        let store = self.index.walk(crate::index::Walk::All, at, 0.0, f64::INFINITY, |c| {
            std::ops::ControlFlow::Break(c.distance_m())
        });
        let dc = self.network.dcs().iter().map(|d| d.location.distance_m(at)).fold(f64::INFINITY, f64::min);
        store.unwrap_or(f64::INFINITY).min(dc)
    }

    /// Recovery: sets a persisted cell value (see [`StockLedger::restore_cell`]).
    pub fn restore_cell(&self, store: StoreIdx, sku: SkuIdx, on_hand: u32, safety_stock: u32, version: u64) {
        if self.ledger.restore_cell(store, sku, on_hand, safety_stock, version) {
            self.index.add_carrier(sku, store);
        }
    }

    /// Cache mode: sets a cell to a database value if newer (see [`StockLedger::sync_cell`]).
    /// Returns whether it applied.
    pub fn sync_cell(
        &self,
        store: StoreIdx,
        sku: SkuIdx,
        free: u32,
        safety_stock: u32,
        version: u32,
    ) -> bool {
        let (applied, new_row) = self.ledger.sync_cell(store, sku, free, safety_stock, version);
        if new_row {
            self.index.add_carrier(sku, store);
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(mode: crate::model::Mode, pickup: Option<u32>, skus: &[&str]) -> Order {
        use crate::model::{LonLat, OrderId, OrderLine, Qty, StoreId, Timestamp};
        let lines =
            skus.iter().map(|&s| OrderLine::new(Sku::parse(s).unwrap(), Qty::parse(1).unwrap())).collect();
        let at = LonLat::new(121.4, 31.2).unwrap();
        Order::new(
            OrderId::parse("o1").unwrap(),
            Timestamp(0),
            at,
            mode,
            pickup.map(StoreId::numbered),
            lines,
        )
        .unwrap()
    }

    #[test]
    fn admitting_an_order_learns_its_new_skus_and_checks_its_pickup_store() {
        use crate::model::Mode;
        let net = crate::testkit::network(vec![crate::testkit::store(7, 121.4, 31.2)], 2);
        let engine = Engine::new(net, Vec::new(), EngineConfig::default());
        assert_eq!(engine.admit(&order(Mode::Ship, None, &["0", "NEW-1", "1"])), Ok(()));
        assert_eq!(engine.network().catalog().get("NEW-1"), Some(SkuIdx(2)));
        assert_eq!(engine.admit(&order(Mode::Pickup, Some(7), &["NEW-1", "NEW-2"])), Ok(()));
        assert_eq!(engine.network().catalog().len(), 4);
        // An unknown pickup store is refused before anything is learned.
        let e = engine.admit(&order(Mode::Pickup, Some(9), &["NEW-3"])).unwrap_err();
        assert_eq!(e, OrderMismatch::UnknownPickupStore(crate::model::StoreId::numbered(9)));
        assert_eq!(e.field(), "pickup_store_id");
        assert_eq!(engine.network().catalog().get("NEW-3"), None);
        assert_eq!(
            OrderMismatch::CatalogFull { line: 2, sku: Sku::numbered(1), learned: 5 }.field(),
            "lines[2].sku"
        );
    }

    #[test]
    fn carriers_are_listed_once_per_store_in_ascending_order_whatever_the_row_order() {
        let row = |store: u32, sku: u32| StockEntry {
            store: StoreIdx(store),
            sku: SkuIdx(sku),
            on_hand: 1,
            safety_stock: 0,
        };
        // Shuffled stores, a repeated (store, SKU), enough rows for every thread to get a share.
        let mut rows: Vec<StockEntry> = (0..1000u32).map(|i| row((i * 7919) % 500, i % 3)).collect();
        rows.push(row(3, 0));
        rows.push(row(3, 0));
        let carriers = carriers_by_sku(&rows, 4);
        for (k, c) in carriers.iter().enumerate() {
            let mut expected: Vec<StoreIdx> =
                rows.iter().filter(|r| r.sku.0 as usize == k).map(|r| r.store).collect();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(c, &expected, "sku {k}");
        }
        assert!(carriers[3].is_empty());
        assert!(carriers_by_sku(&[], 2).iter().all(Vec::is_empty));
    }
}
