//! The engine: the static network, its spatial index and the live stock ledger, built together
//! so that the index always knows which stores carry which SKU.

use crate::index::{IndexConfig, StoreIndex};
use crate::ledger::{FeedOutcome, LedgerConfig, LedgerError, StockEntry, StockLedger, StockLevel};
use crate::model::{Network, Sku, SkuIdx, StoreId, StoreIdx};

/// Settings for [`Engine::new`].
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct EngineConfig {
    pub index: IndexConfig,
    pub ledger: LedgerConfig,
}

/// Why a stock lookup by external ids failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("store_id {0} is not in the network")]
    UnknownStore(StoreId),
    #[error("sku {0} is not in the catalogue")]
    UnknownSku(Sku),
}

/// Network + index + ledger. Shared by reference between routing threads.
#[derive(Debug)]
pub struct Engine {
    network: Network,
    index: StoreIndex,
    ledger: StockLedger,
}

impl Engine {
    /// Builds the index and ledger for `network` from initial stock rows (dense indexes; rows
    /// must refer to stores and SKUs of the network).
    ///
    /// # Runtime
    /// O(r log r + n log n) for r stock rows and n stores.
    pub fn new(network: Network, stock: Vec<StockEntry>, config: EngineConfig) -> Engine {
        let mut carriers: Vec<Vec<StoreIdx>> = vec![Vec::new(); network.catalog().len()];
        for row in &stock {
            carriers[row.sku.0 as usize].push(row.store);
        }
        for c in &mut carriers {
            c.sort_unstable();
            c.dedup();
        }
        let (index, ledger) = rayon::join(
            || StoreIndex::build(&network, &carriers, config.index),
            || {
                let capacities: Vec<u32> = network.stores().iter().map(|s| s.capacity_per_day).collect();
                StockLedger::new(&capacities, network.catalog().len(), stock, config.ledger)
            },
        );
        Engine { network, index, ledger }
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

    fn resolve(&self, store: StoreId, sku: Sku) -> Result<(StoreIdx, SkuIdx), FeedError> {
        let s = self.network.store_idx(store).ok_or(FeedError::UnknownStore(store))?;
        let k = self.network.catalog().get(sku).ok_or(FeedError::UnknownSku(sku))?;
        Ok((s, k))
    }

    fn after_feed(&self, store: StoreIdx, sku: SkuIdx, out: FeedOutcome) -> FeedOutcome {
        if out.new_row {
            self.index.add_carrier(sku, store);
        }
        out
    }

    /// Absolute stock feed row: on_hand (and optionally safety stock) for one store and SKU.
    /// A new (store, SKU) row also enters the SKU's carrier index.
    pub fn set_stock(
        &self,
        store: StoreIdx,
        sku: SkuIdx,
        on_hand: i64,
        safety_stock: Option<u32>,
    ) -> Result<FeedOutcome, LedgerError> {
        let out = self.ledger.set_on_hand(store, sku, on_hand, safety_stock)?;
        Ok(self.after_feed(store, sku, out))
    }

    /// Relative stock feed row: add `delta` to on_hand.
    pub fn add_stock(&self, store: StoreIdx, sku: SkuIdx, delta: i64) -> Result<FeedOutcome, LedgerError> {
        let out = self.ledger.add_on_hand(store, sku, delta)?;
        Ok(self.after_feed(store, sku, out))
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

    /// The current stock of one store and SKU (`None` when the store has no row for it).
    pub fn stock_level(&self, store: StoreId, sku: Sku) -> Result<Option<StockLevel>, FeedError> {
        let (s, k) = self.resolve(store, sku)?;
        Ok(self.ledger.level(s, k))
    }
}
