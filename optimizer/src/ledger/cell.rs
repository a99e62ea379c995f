//! Stock of one store: its SKU cells and its daily capacity counter.

use crate::model::SkuIdx;

/// Stock of one SKU in one store.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cell {
    pub on_hand: u32,
    pub reserved: u32,
    pub safety: u32,
    /// Cache mode only: the database version of the value held (see `StockLedger::sync_cell`).
    pub version: u32,
}

impl Cell {
    /// Units that may be promised: on_hand - reserved - safety, never below zero.
    #[inline]
    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reserved).saturating_sub(self.safety)
    }
}

/// Everything the ledger tracks for one store, guarded by that store's lock.
#[derive(Debug, Default)]
pub(crate) struct StoreStock {
    /// SKU indexes, sorted, parallel to `cells`.
    pub skus: Vec<u32>,
    pub cells: Vec<Cell>,
    pub capacity_per_day: u32,
    /// Local day number `orders_today` counts for.
    pub day: i64,
    pub orders_today: u32,
    /// Bumped on every change of an on_hand or safety value, so that writers that persist
    /// those values out of order can keep the newest.
    pub version: u64,
}

impl StoreStock {
    #[inline]
    pub fn find(&self, sku: SkuIdx) -> Option<usize> {
        self.skus.binary_search(&sku.0).ok()
    }

    /// Orders taken on local day `day` (a new day starts from zero).
    #[inline]
    pub fn orders_on(&self, day: i64) -> u32 {
        if self.day == day {
            self.orders_today
        } else {
            0
        }
    }

    /// Counts one more order on `day`. A later day starts a new count; an earlier day (a
    /// record restored out of order) no longer matters and is not counted.
    pub fn take_order(&mut self, day: i64) {
        if day > self.day {
            self.day = day;
            self.orders_today = 0;
        }
        if day == self.day {
            self.orders_today += 1;
        }
    }

    /// Gives back an order slot counted on `day` (no-op once that day is over).
    pub fn return_order(&mut self, day: i64) {
        if self.day == day {
            self.orders_today = self.orders_today.saturating_sub(1);
        }
    }

    /// The cell of `sku`, created empty when missing. Returns its position and whether it is new.
    pub fn cell_mut_or_insert(&mut self, sku: SkuIdx) -> (usize, bool) {
        match self.skus.binary_search(&sku.0) {
            Ok(i) => (i, false),
            Err(i) => {
                self.skus.insert(i, sku.0);
                self.cells.insert(i, Cell::default());
                (i, true)
            }
        }
    }
}
