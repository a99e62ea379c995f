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

/// Buckets of a store's SKU directory (see [`StoreStock::find`]).
const BUCKETS: usize = 16;

/// The directory shift for a catalogue of `sku_count` SKUs: the smallest `s` with
/// `(sku_count - 1) >> s < BUCKETS`, so every SKU index falls into one of the buckets.
pub(crate) fn bucket_shift(sku_count: usize) -> u8 {
    let mut s = 0u8;
    while s < 31 && (sku_count.saturating_sub(1) >> s) >= BUCKETS {
        s += 1;
    }
    s
}

/// Everything the ledger tracks for one store, guarded by that store's lock.
#[derive(Debug, Default)]
pub(crate) struct StoreStock {
    /// SKU indexes, sorted, parallel to `cells`. Add rows with [`StoreStock::push`] or
    /// [`StoreStock::cell_mut_or_insert`], which keep `start` in step.
    skus: Vec<u32>,
    pub cells: Vec<Cell>,
    pub capacity_per_day: u32,
    /// Local day number `orders_today` counts for.
    pub day: i64,
    pub orders_today: u32,
    /// Bumped on every change of an on_hand or safety value, so that writers that persist
    /// those values out of order can keep the newest.
    pub version: u64,
    /// SKU directory: `start[b]` is the position in `skus` of the first SKU whose index shifted
    /// right by `shift` is at least `b`. A lookup reads the store's lock line, one run of about
    /// `skus.len() / BUCKETS` SKU indexes (one cache line) and the cell, instead of the four or
    /// so cache lines a binary search over the whole list touches. Unused (whole-list search)
    /// past `u16::MAX` rows.
    start: [u16; BUCKETS],
    shift: u8,
}

impl StoreStock {
    /// An empty store for a catalogue whose SKU indexes lie below `sku_count`.
    pub fn new(capacity_per_day: u32, sku_count: usize) -> StoreStock {
        StoreStock {
            capacity_per_day,
            day: i64::MIN,
            shift: bucket_shift(sku_count),
            ..StoreStock::default()
        }
    }

    /// The SKU indexes with a row here, ascending.
    pub fn skus(&self) -> &[u32] {
        &self.skus
    }

    /// The range of `skus` that holds `sku` if the store carries it.
    #[inline]
    fn run(&self, sku: u32) -> (usize, usize) {
        let len = self.skus.len();
        if len > usize::from(u16::MAX) {
            return (0, len);
        }
        let b = ((sku >> self.shift) as usize).min(BUCKETS - 1);
        let hi = if b + 1 < BUCKETS { usize::from(self.start[b + 1]) } else { len };
        (usize::from(self.start[b]), hi)
    }

    /// Position of `sku` in `skus` and `cells`.
    #[inline]
    pub fn find(&self, sku: SkuIdx) -> Option<usize> {
        let (lo, hi) = self.run(sku.0);
        if hi > lo {
            // Start loading the run's cells while the SKU indexes arrive (independent loads, so
            // the two cache misses overlap instead of following each other).
            std::hint::black_box((self.cells[lo].reserved, self.cells[hi - 1].reserved));
        }
        self.skus[lo..hi].binary_search(&sku.0).ok().map(|i| lo + i)
    }

    /// Appends a row for a SKU above every SKU held (rows added in ascending order), or
    /// overwrites the last row when `sku` is the last SKU held. Returns whether the row is new.
    pub fn push(&mut self, sku: SkuIdx, cell: Cell) -> bool {
        if self.skus.last() == Some(&sku.0) {
            *self.cells.last_mut().expect("parallel vectors") = cell;
            return false;
        }
        debug_assert!(self.skus.last().is_none_or(|&last| last < sku.0), "rows in ascending order");
        self.skus.push(sku.0);
        self.cells.push(cell);
        self.moved_up(sku.0);
        true
    }

    /// A row for `sku` was added: the runs after its bucket start one place later.
    fn moved_up(&mut self, sku: u32) {
        let b = ((sku >> self.shift) as usize).min(BUCKETS - 1);
        for s in &mut self.start[b + 1..] {
            *s = s.wrapping_add(1);
        }
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
        let (lo, hi) = self.run(sku.0);
        match self.skus[lo..hi].binary_search(&sku.0) {
            Ok(i) => (lo + i, false),
            Err(i) => {
                let i = lo + i;
                self.skus.insert(i, sku.0);
                self.cells.insert(i, Cell::default());
                self.moved_up(sku.0);
                (i, true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A cell that names its SKU, to check that cells stay beside their SKU indexes.
    fn tagged(sku: u32) -> Cell {
        Cell { on_hand: sku, ..Cell::default() }
    }

    /// Every SKU below `sku_count` is found exactly where the sorted list has it, or not at all.
    fn check_all(st: &StoreStock, sku_count: u32, held: &std::collections::BTreeSet<u32>) {
        assert!(st.skus().is_sorted());
        assert_eq!(st.skus().len(), held.len());
        for sku in 0..sku_count {
            match st.find(SkuIdx(sku)) {
                Some(i) => {
                    assert!(held.contains(&sku), "found {sku}, never added");
                    assert_eq!((st.skus()[i], st.cells[i].on_hand), (sku, sku));
                }
                None => assert!(!held.contains(&sku), "lost {sku}"),
            }
        }
    }

    #[test]
    fn the_shift_puts_every_sku_of_the_catalogue_in_a_bucket() {
        for (count, shift) in [(0, 0), (1, 0), (16, 0), (17, 1), (32, 1), (33, 2), (2_000, 7), (2_048, 7)] {
            assert_eq!(bucket_shift(count), shift, "{count} SKUs");
        }
        for count in [1usize, 15, 16, 17, 1_000, 65_537, 1 << 24] {
            let s = bucket_shift(count);
            assert!((count - 1) >> s < BUCKETS, "{count}: last SKU outside the buckets");
            assert!(s == 0 || (count - 1) >> (s - 1) >= BUCKETS, "{count}: shift {s} is not the smallest");
        }
    }

    #[test]
    fn past_u16_max_rows_the_whole_list_is_searched() {
        let count = 200_000u32;
        let mut st = StoreStock::new(10, count as usize);
        let mut held = std::collections::BTreeSet::new();
        for sku in (0..count).step_by(2).take(70_000) {
            assert!(st.push(SkuIdx(sku), tagged(sku)));
            held.insert(sku);
        }
        for sku in [1u32, 99_999, 139_999, 150_001] {
            let (i, new_row) = st.cell_mut_or_insert(SkuIdx(sku));
            assert!(new_row);
            st.cells[i] = tagged(sku);
            held.insert(sku);
        }
        check_all(&st, count, &held);
    }

    proptest! {
        #![proptest_config(crate::testkit::seeded(300))]

        /// Rows loaded in order, then rows added by feeds in any order (some repeated): every
        /// lookup through the directory agrees with the sorted list.
        #[test]
        fn the_directory_finds_what_a_binary_search_finds(
            sku_count in 1u32..5_000,
            loaded in proptest::collection::vec(0u32..5_000, 0..300),
            fed in proptest::collection::vec(0u32..5_000, 0..300),
        ) {
            let mut st = StoreStock::new(10, sku_count as usize);
            let mut held = std::collections::BTreeSet::new();
            let mut loaded: Vec<u32> = loaded.into_iter().map(|s| s % sku_count).collect();
            loaded.sort_unstable();
            for &sku in &loaded {
                prop_assert_eq!(st.push(SkuIdx(sku), tagged(sku)), held.insert(sku));
            }
            for sku in fed.into_iter().map(|s| s % sku_count) {
                let (i, new_row) = st.cell_mut_or_insert(SkuIdx(sku));
                prop_assert_eq!(new_row, held.insert(sku));
                st.cells[i] = tagged(sku);
            }
            check_all(&st, sku_count, &held);
        }
    }
}
