//! Stock feeds: absolute and relative on_hand changes from store systems, applied all rows or
//! none.
//!
//! # Atomicity
//! A feed locks every store it touches, in ascending index order (the order reservations use, so
//! the two cannot deadlock), checks every row against the values it finds there (rows of one cell
//! see the rows before them), and only then applies them all before releasing any lock. A
//! reservation or another feed therefore sees either none of a feed or all of it; a refused feed
//! changes nothing, not even for a moment.

use super::cell::{Cell, StoreStock};
use super::{CellChange, LedgerError, StockLedger, StockLevel, MAX_ON_HAND};
use crate::model::{SkuIdx, StoreIdx};
use parking_lot::MutexGuard;
use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering;

/// What one feed row does to a cell.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StockChange {
    /// Absolute: on_hand becomes this (and safety stock, when given). A value below what is
    /// reserved is kept and reported as `oversubscribed`, never clamped.
    Set { on_hand: u32, safety_stock: Option<u32> },
    /// Relative: on_hand changes by this (negative for sales). A change that would take on_hand
    /// below zero, or past [`MAX_ON_HAND`], refuses the whole feed.
    Add(i64),
}

/// One feed row in dense indexes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FeedRow {
    pub store: StoreIdx,
    pub sku: SkuIdx,
    pub change: StockChange,
}

/// What a stock feed row did.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FeedOutcome {
    pub level: StockLevel,
    /// on_hand before this row (0 for a new row).
    pub previous_on_hand: u32,
    /// The (store, SKU) pair had no stock row before this row.
    pub new_row: bool,
    #[serde(skip)]
    pub change: CellChange,
}

/// Why a feed was refused: the first row that cannot apply. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row}: {error}")]
pub struct FeedRefused {
    /// Position of the row in the feed.
    pub row: usize,
    pub error: LedgerError,
}

impl StockChange {
    /// The cell after this change, or why it cannot apply.
    fn apply(self, mut cell: Cell) -> Result<Cell, LedgerError> {
        match self {
            StockChange::Set { on_hand, safety_stock } => {
                if on_hand > MAX_ON_HAND {
                    return Err(LedgerError::OnHandTooLarge(on_hand.into()));
                }
                cell.on_hand = on_hand;
                if let Some(s) = safety_stock {
                    cell.safety = s;
                }
            }
            StockChange::Add(delta) => {
                let next = i64::from(cell.on_hand) + delta;
                if next < 0 {
                    return Err(LedgerError::NegativeOnHand { on_hand: cell.on_hand, delta });
                }
                if next > i64::from(MAX_ON_HAND) {
                    return Err(LedgerError::OnHandTooLarge(next));
                }
                cell.on_hand = next as u32;
            }
        }
        Ok(cell)
    }
}

impl StockLedger {
    /// Applies a feed: every row, in order, or none (see the module docs). Returns one outcome
    /// per row; each row that changes a cell bumps its store's version, so that persisting the
    /// changes with "newest version wins" keeps the last row of a cell.
    ///
    /// # Errors
    /// The first row that cannot apply; nothing changed.
    ///
    /// # Runtime
    /// O(r + s log s) for r rows over s stores, plus the row lookups; holds the s store locks
    /// for the whole apply.
    pub fn apply_feed(&self, rows: &[FeedRow]) -> Result<Vec<FeedOutcome>, FeedRefused> {
        let mut stores: Vec<StoreIdx> = rows.iter().map(|r| r.store).collect();
        stores.sort_unstable();
        stores.dedup();
        let mut guards: Vec<MutexGuard<'_, StoreStock>> =
            stores.iter().map(|s| self.stores[s.0 as usize].lock()).collect();
        let slot = |store: StoreIdx| stores.binary_search(&store).expect("every row's store is locked");

        // Check every row against the cells as the rows before it leave them.
        let mut scratch: FxHashMap<(StoreIdx, SkuIdx), Cell> = FxHashMap::default();
        for (row, r) in rows.iter().enumerate() {
            let st = &guards[slot(r.store)];
            let cell = scratch
                .get(&(r.store, r.sku))
                .copied()
                .unwrap_or_else(|| st.find(r.sku).map_or_else(Cell::default, |i| st.cells[i]));
            let next = r.change.apply(cell).map_err(|error| FeedRefused { row, error })?;
            scratch.insert((r.store, r.sku), next);
        }

        // Apply: nothing below can fail.
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let st = &mut guards[slot(r.store)];
            let existing = st.find(r.sku);
            let before = existing.map_or_else(Cell::default, |i| st.cells[i]);
            let cell = r.change.apply(before).expect("checked above against the same values");
            let (i, new_row) = st.cell_mut_or_insert(r.sku);
            st.cells[i] = cell;
            st.version += 1;
            if new_row {
                self.carriers[r.sku.0 as usize].fetch_add(1, Ordering::Relaxed);
            }
            self.refresh_bit(r.store, r.sku.0, &cell);
            let change = CellChange {
                store: r.store,
                sku: r.sku,
                on_hand: cell.on_hand,
                safety_stock: cell.safety,
                version: st.version,
            };
            out.push(FeedOutcome { level: cell.into(), previous_on_hand: before.on_hand, new_row, change });
        }
        drop(guards);
        Ok(out)
    }

    /// A feed of one absolute row (see [`StockChange::Set`]). `on_hand` outside
    /// `0..=MAX_ON_HAND` is refused.
    pub fn set_on_hand(
        &self,
        store: StoreIdx,
        sku: SkuIdx,
        on_hand: i64,
        safety_stock: Option<u32>,
    ) -> Result<FeedOutcome, LedgerError> {
        if on_hand < 0 {
            return Err(LedgerError::NegativeOnHand { on_hand: 0, delta: on_hand });
        }
        if on_hand > i64::from(MAX_ON_HAND) {
            return Err(LedgerError::OnHandTooLarge(on_hand));
        }
        let on_hand = on_hand as u32;
        self.apply_one(FeedRow { store, sku, change: StockChange::Set { on_hand, safety_stock } })
    }

    /// A feed of one relative row (see [`StockChange::Add`]).
    pub fn add_on_hand(&self, store: StoreIdx, sku: SkuIdx, delta: i64) -> Result<FeedOutcome, LedgerError> {
        self.apply_one(FeedRow { store, sku, change: StockChange::Add(delta) })
    }

    fn apply_one(&self, row: FeedRow) -> Result<FeedOutcome, LedgerError> {
        let mut out = self.apply_feed(std::slice::from_ref(&row)).map_err(|e| e.error)?;
        Ok(out.pop().expect("one outcome per row"))
    }
}
