//! The live stock ledger: on_hand, reserved and safety stock per store and SKU, daily capacity per
//! store, and reservations that hold stock for an order until they are committed, released or
//! expire.
//!
//! # Concurrency
//! Each store has its own lock. A reservation locks the stores it touches in ascending index
//! order, checks every line, and then applies all of them or none, so two orders can never both
//! take the last unit and no thread can deadlock. Per-SKU availability bitsets (bit set when
//! available > 0) are updated under the store lock and read without locks by the router to skip
//! stores quickly; the final check always happens under the lock.

mod bitset;
mod cell;
mod feed;
mod reservations;

pub use bitset::AtomicBitset;
use cell::{Cell, StoreStock};
pub use feed::{FeedOutcome, FeedRefused, FeedRow, StockChange};
use reservations::Reservations;
pub use reservations::{Hold, Reservation, ReservationState};

use crate::growing::Growing;
use crate::model::{OrderId, SkuIdx, StoreIdx, TimeZone, Timestamp};
use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Ledger settings.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct LedgerConfig {
    /// How long a reservation holds stock unless committed.
    ///
    /// # Units
    /// Seconds.
    pub reservation_ttl_s: u32,
    /// How many reservation records to make room for up front: about the orders expected to be
    /// reserved before the next restart (a record stays after release, commit or expiry, so that
    /// retries find it). Sizing it avoids growing the record tables (a rehash under a shard
    /// lock) in the middle of a peak. 0 grows them on demand.
    pub expected_reservations: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { reservation_ttl_s: 15 * 60, expected_reservations: 0 }
    }
}

/// The most units one cell may hold on hand: the largest value both storage backends keep
/// (PostgreSQL stores stock in 32-bit signed integers).
pub const MAX_ON_HAND: u32 = i32::MAX as u32;

/// One row of initial stock, in dense indexes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StockEntry {
    pub store: StoreIdx,
    pub sku: SkuIdx,
    pub on_hand: u32,
    pub safety_stock: u32,
}

/// A point-in-time view of one stock cell.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StockLevel {
    pub on_hand: u32,
    pub reserved: u32,
    pub safety_stock: u32,
    /// on_hand - reserved - safety_stock, floored at zero.
    pub available: u32,
    /// on_hand fell below reserved (a stock feed reported less than is already promised).
    pub oversubscribed: bool,
}

impl StockLevel {
    /// The level of a cell holding `on_hand`, of which `reserved` is promised and `safety_stock`
    /// is kept back.
    pub fn new(on_hand: u32, reserved: u32, safety_stock: u32) -> StockLevel {
        StockLevel {
            on_hand,
            reserved,
            safety_stock,
            available: on_hand.saturating_sub(reserved).saturating_sub(safety_stock),
            oversubscribed: on_hand < reserved,
        }
    }
}

impl From<Cell> for StockLevel {
    fn from(c: Cell) -> Self {
        StockLevel::new(c.on_hand, c.reserved, c.safety)
    }
}

/// Why one store cannot take a shipment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Shortfall {
    /// Line `line` of the request is short by `missing` units.
    Line { line: usize, missing: u32 },
    /// The store has taken its `capacity_per_day` orders today.
    Capacity { capacity_per_day: u32 },
}

/// Lines for one store in one reservation: (SKU, units).
pub type StoreLines = [(SkuIdx, u32)];

/// Errors of ledger operations. Shortfalls are not errors: see [`Shortfall`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("order {0} already has a reservation")]
    DuplicateOrder(OrderId),
    #[error("order {0} has no reservation")]
    UnknownOrder(OrderId),
    #[error("order {order} is {state:?} and cannot be {action}")]
    WrongState { order: OrderId, state: ReservationState, action: &'static str },
    #[error("delta {delta} would take on_hand {on_hand} below zero")]
    NegativeOnHand { on_hand: u32, delta: i64 },
    #[error("on_hand {0} is larger than the maximum of {max}", max = MAX_ON_HAND)]
    OnHandTooLarge(i64),
}

/// What a release or commit did.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The call changed the reservation.
    Applied,
    /// The reservation was already in the requested end state; nothing changed.
    AlreadyDone,
}

/// A new on_hand/safety value of one cell, with the store's version after the change. Persist
/// with "newest version wins" to survive reordering.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CellChange {
    pub store: StoreIdx,
    pub sku: SkuIdx,
    pub on_hand: u32,
    pub safety_stock: u32,
    pub version: u64,
}

/// Reservation failure: which store of the request could not take its lines.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Position of the store in the request.
    pub shipment: usize,
    pub shortfall: Shortfall,
}

/// `rows` ordered by store, then SKU; rows of one (store, SKU) keep their input order, so the
/// last one wins when the ledger reads them. Loaders hand rows over in that order already.
fn group_by_store(rows: Vec<StockEntry>, stores: usize) -> Vec<StockEntry> {
    if rows.is_sorted_by_key(|r| (r.store, r.sku)) {
        return rows;
    }
    let mut out = crate::model::group_by_bucket(std::slice::from_ref(&rows), stores, |r| r.store.0 as usize);
    for run in out.chunk_by_mut(|a, b| a.store == b.store) {
        run.sort_by_key(|r| r.sku);
    }
    out
}

/// Live stock per store and SKU. See the module docs for the locking discipline.
#[derive(Debug)]
pub struct StockLedger {
    stores: Vec<Mutex<StoreStock>>,
    /// Per SKU of the load, which stores had it available at their last change.
    available: Vec<AtomicBitset>,
    /// The same for SKUs learned since (index minus the load's SKU count); a learned SKU's
    /// bitset is made when a store first has it available.
    learned_available: boxcar::Vec<OnceLock<AtomicBitset>>,
    carriers: Growing<AtomicU32>,
    reservations: Reservations,
    config: LedgerConfig,
    /// Whose calendar days store capacity counts (China's unless set with
    /// [`StockLedger::with_zone`]).
    zone: TimeZone,
}

impl StockLedger {
    /// Builds a ledger for `capacities.len()` stores and `sku_count` SKUs from initial rows.
    /// Rows may come in any order; a repeated (store, SKU) keeps the last row.
    ///
    /// # Runtime
    /// O(rows + stores) to group the rows by store, O(k log k) to order a store's k rows by
    /// SKU, plus O(skus * stores / 64) for the bitsets.
    pub fn new(
        capacities: &[u32],
        sku_count: usize,
        rows: Vec<StockEntry>,
        config: LedgerConfig,
    ) -> StockLedger {
        let n = capacities.len();
        let rows = group_by_store(rows, n);
        let available: Vec<AtomicBitset> = (0..sku_count).map(|_| AtomicBitset::new(n)).collect();
        let carriers: Vec<AtomicU32> = (0..sku_count).map(|_| AtomicU32::new(0)).collect();
        let mut stores: Vec<StoreStock> = capacities.iter().map(|&c| StoreStock::new(c, sku_count)).collect();
        for r in rows {
            let st = &mut stores[r.store.0 as usize];
            let cell = Cell { on_hand: r.on_hand, reserved: 0, safety: r.safety_stock, version: 0 };
            if st.push(r.sku, cell) {
                carriers[r.sku.0 as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        for (i, st) in stores.iter().enumerate() {
            for (sku, cell) in st.skus().iter().zip(&st.cells) {
                available[*sku as usize].set(i as u32, cell.available() > 0);
            }
        }
        StockLedger {
            stores: stores.into_iter().map(Mutex::new).collect(),
            available,
            learned_available: boxcar::Vec::new(),
            carriers: Growing::new(carriers),
            reservations: Reservations::with_capacity(config.expected_reservations),
            config,
            zone: TimeZone::china(),
        }
    }

    /// The same ledger counting store capacity by the calendar days of `zone`.
    pub fn with_zone(mut self, zone: TimeZone) -> StockLedger {
        self.zone = zone;
        self
    }

    /// The local day of `now`, whose capacity counts.
    #[inline]
    fn day(&self, now: Timestamp) -> i64 {
        self.zone.local_day(now)
    }

    pub fn config(&self) -> LedgerConfig {
        self.config
    }

    /// Number of stores.
    pub fn store_count(&self) -> usize {
        self.stores.len()
    }

    /// Adds the per-SKU rows of a SKU the catalogue is learning (see [`SkuCatalog::learn`]): no
    /// store carries it yet. Returns its index, which must be the catalogue's new index.
    ///
    /// [`SkuCatalog::learn`]: crate::model::SkuCatalog::learn
    pub fn learn_sku(&self) -> SkuIdx {
        let k = self.available.len() + self.learned_available.push(OnceLock::new());
        let c = self.carriers.push(AtomicU32::new(0));
        debug_assert_eq!(k, c);
        SkuIdx(k as u32)
    }

    /// Lock-free hint: whether `store` had `sku` available (> 0) at the last change.
    #[inline]
    pub fn maybe_available(&self, store: StoreIdx, sku: SkuIdx) -> bool {
        self.available_bits(sku).is_some_and(|bits| bits.get(store.0))
    }

    /// Which stores had `sku` available (> 0) at their last change; `None` for a learned SKU
    /// no store has had available yet.
    #[inline]
    pub fn available_bits(&self, sku: SkuIdx) -> Option<&AtomicBitset> {
        match self.available.get(sku.0 as usize) {
            Some(bits) => Some(bits),
            None => self.learned_bits(sku.0).get(),
        }
    }

    /// The availability bitset slot of a learned SKU.
    #[cold]
    fn learned_bits(&self, sku: u32) -> &OnceLock<AtomicBitset> {
        &self.learned_available[sku as usize - self.available.len()]
    }

    /// How many stores have `sku` available now (a hint, like the bits it counts).
    #[inline]
    pub fn stocked_count(&self, sku: SkuIdx) -> u64 {
        self.available_bits(sku).map_or(0, AtomicBitset::count)
    }

    /// How many stores have a stock row for `sku` (whether or not it is available now).
    pub fn carrier_count(&self, sku: SkuIdx) -> u32 {
        self.carriers[sku.0 as usize].load(Ordering::Relaxed)
    }

    /// The SKUs `store` has a stock row for.
    pub fn skus_of(&self, store: StoreIdx) -> Vec<SkuIdx> {
        self.stores[store.0 as usize].lock().skus().iter().map(|&s| SkuIdx(s)).collect()
    }

    /// How many of `store`'s stock rows have nothing available now (one lock).
    pub fn unavailable_count(&self, store: StoreIdx) -> u32 {
        let st = self.stores[store.0 as usize].lock();
        st.cells.iter().filter(|&&c| StockLevel::from(c).available == 0).count() as u32
    }

    /// The current level of one cell, or `None` when the store has no row for the SKU.
    pub fn level(&self, store: StoreIdx, sku: SkuIdx) -> Option<StockLevel> {
        let st = self.stores[store.0 as usize].lock();
        st.find(sku).map(|i| st.cells[i].into())
    }

    /// Orders counted against `store`'s capacity on the local day of `now`.
    pub fn orders_today(&self, store: StoreIdx, now: Timestamp) -> u32 {
        self.stores[store.0 as usize].lock().orders_on(self.day(now))
    }

    /// Checks, under the store's lock, whether `store` could take `lines` now.
    pub fn check(&self, store: StoreIdx, lines: &StoreLines, now: Timestamp) -> Result<(), Shortfall> {
        let st = self.stores[store.0 as usize].lock();
        Self::check_locked(&st, lines, self.day(now))
    }

    /// For each line, whether `store` alone could supply it now (ignoring capacity): bit `i` of
    /// the mask is line `i`. Lines past 64 are never reported.
    pub fn coverage(&self, store: StoreIdx, lines: &StoreLines, now: Timestamp) -> (u64, bool) {
        let st = self.stores[store.0 as usize].lock();
        let mut mask = 0u64;
        for (i, (sku, qty)) in lines.iter().enumerate().take(64) {
            if st.find(*sku).is_some_and(|c| st.cells[c].available() >= *qty) {
                mask |= 1 << i;
            }
        }
        let has_capacity = st.orders_on(self.day(now)) < st.capacity_per_day;
        (mask, has_capacity)
    }

    fn check_locked(st: &StoreStock, lines: &StoreLines, day: i64) -> Result<(), Shortfall> {
        for (i, (sku, qty)) in lines.iter().enumerate() {
            let available = st.find(*sku).map_or(0, |c| st.cells[c].available());
            if available < *qty {
                return Err(Shortfall::Line { line: i, missing: qty - available });
            }
        }
        if st.orders_on(day) >= st.capacity_per_day {
            return Err(Shortfall::Capacity { capacity_per_day: st.capacity_per_day });
        }
        Ok(())
    }

    fn refresh_bit(&self, store: StoreIdx, sku: u32, cell: &Cell) {
        let on = cell.available() > 0;
        if let Some(bits) = self.available.get(sku as usize) {
            return bits.set(store.0, on);
        }
        let slot = self.learned_bits(sku);
        match slot.get() {
            Some(bits) => bits.set(store.0, on),
            None if on => slot.get_or_init(|| AtomicBitset::new(self.stores.len())).set(store.0, true),
            None => {}
        }
    }

    /// Reserves `shipments` (one entry per distinct store) for `order`: all lines at all stores,
    /// or nothing. On success returns when the reservation expires.
    ///
    /// # Errors
    /// `Ok(Err(Refused))` when a store is short (nothing changed); `Err(DuplicateOrder)` when the
    /// order already has a reservation (nothing changed).
    ///
    /// # Runtime
    /// O(s log s + l log k): s stores, l lines, k SKUs per store.
    pub fn reserve(
        &self,
        order: &OrderId,
        shipments: &[(StoreIdx, &StoreLines)],
        now: Timestamp,
    ) -> Result<Result<Timestamp, Refused>, LedgerError> {
        // No pre-check for a duplicate id: the insert below detects it and gives the stock back,
        // which keeps one shard lookup off the hot path.
        let day = self.day(now);
        if let [(store, lines)] = shipments {
            // One store (nearly every checkout): no lock ordering to arrange.
            let mut st = self.stores[store.0 as usize].lock();
            if let Err(shortfall) = Self::check_locked(&st, lines, day) {
                return Ok(Err(Refused { shipment: 0, shortfall }));
            }
            self.take(*store, &mut st, lines, day);
            drop(st);
            let holds = lines.iter().map(|(sku, qty)| Hold { store: *store, sku: *sku, qty: *qty }).collect();
            return self.record(order, holds, day, now);
        }
        // Lock in ascending store order so that concurrent multi-store reservations cannot deadlock.
        let mut order_of: Vec<usize> = (0..shipments.len()).collect();
        order_of.sort_by_key(|&i| shipments[i].0);
        let mut guards: Vec<(usize, MutexGuard<'_, StoreStock>)> = Vec::with_capacity(shipments.len());
        for &i in &order_of {
            let st = self.stores[shipments[i].0 .0 as usize].lock();
            if let Err(shortfall) = Self::check_locked(&st, shipments[i].1, day) {
                return Ok(Err(Refused { shipment: i, shortfall }));
            }
            guards.push((i, st));
        }
        for (i, st) in guards.iter_mut() {
            let (store, lines) = shipments[*i];
            self.take(store, st, lines, day);
        }
        drop(guards);
        let mut holds: Vec<Hold> = shipments
            .iter()
            .flat_map(|(store, lines)| {
                lines.iter().map(|(sku, qty)| Hold { store: *store, sku: *sku, qty: *qty })
            })
            .collect();
        holds.sort_by_key(|h| h.store);
        self.record(order, holds, day, now)
    }

    /// Holds checked `lines` at `store` (locked as `st`) and counts the order against its day.
    fn take(&self, store: StoreIdx, st: &mut StoreStock, lines: &StoreLines, day: i64) {
        for (sku, qty) in lines {
            let c = st.find(*sku).expect("checked under the same lock");
            st.cells[c].reserved += qty;
            self.refresh_bit(store, sku.0, &st.cells[c]);
        }
        st.take_order(day);
    }

    /// Files the record of stock already held for `order`; gives the stock back when another
    /// thread reserved the same order id meanwhile.
    fn record(
        &self,
        order: &OrderId,
        holds: Vec<Hold>,
        day: i64,
        now: Timestamp,
    ) -> Result<Result<Timestamp, Refused>, LedgerError> {
        let expires_at = now.plus(i64::from(self.config.reservation_ttl_s));
        let record = Reservation { holds, day, expires_at, state: ReservationState::Held };
        if let Err(record) = self.reservations.insert(order.clone(), record) {
            // Another thread reserved the same order id meanwhile: give our stock back.
            let _ = self.undo(&record.holds, record.day, false);
            return Err(LedgerError::DuplicateOrder(order.clone()));
        }
        Ok(Ok(expires_at))
    }

    /// Gives held stock back (`commit == false`) or ships it (`commit == true`).
    /// `holds` are sorted by store, so stores are locked in ascending order. Returns the cells
    /// whose on_hand changed (commit only).
    fn undo(&self, holds: &[Hold], day: i64, commit: bool) -> Vec<CellChange> {
        let mut changes = Vec::new();
        for group in holds.chunk_by(|a, b| a.store == b.store) {
            let store = group[0].store;
            let mut st = self.stores[store.0 as usize].lock();
            if commit {
                st.version += 1;
            }
            let version = st.version;
            for h in group {
                let c = st.find(h.sku).expect("held cells are never removed");
                let cell = &mut st.cells[c];
                cell.reserved -= h.qty;
                if commit {
                    cell.on_hand = cell.on_hand.saturating_sub(h.qty);
                    changes.push(CellChange {
                        store,
                        sku: h.sku,
                        on_hand: cell.on_hand,
                        safety_stock: cell.safety,
                        version,
                    });
                }
                let cell = *cell;
                self.refresh_bit(store, h.sku.0, &cell);
            }
            if !commit {
                st.return_order(day);
            }
        }
        changes
    }

    /// Releases a held reservation (order cancelled). Releasing twice is a no-op.
    pub fn release(&self, order: &OrderId) -> Result<Transition, LedgerError> {
        self.finish(order, ReservationState::Released, |r| {
            let _ = self.undo(&r.holds, r.day, false);
        })
    }

    /// Commits a held reservation (order shipped or collected): on_hand and reserved both drop.
    /// Committing twice is a no-op.
    pub fn commit(&self, order: &OrderId) -> Result<Transition, LedgerError> {
        self.commit_with_changes(order).map(|(t, _)| t)
    }

    /// Like [`StockLedger::commit`], also returning the cells whose on_hand changed.
    pub fn commit_with_changes(&self, order: &OrderId) -> Result<(Transition, Vec<CellChange>), LedgerError> {
        let mut changes = Vec::new();
        let t = self.finish(order, ReservationState::Committed, |r| {
            changes = self.undo(&r.holds, r.day, true);
        })?;
        Ok((t, changes))
    }

    fn finish(
        &self,
        order: &OrderId,
        target: ReservationState,
        apply: impl FnOnce(&Reservation),
    ) -> Result<Transition, LedgerError> {
        self.reservations.with_mut(order, |r| {
            let Some(r) = r else {
                return Err(LedgerError::UnknownOrder(order.clone()));
            };
            match r.state.finish_as(target) {
                Ok(Transition::Applied) => {
                    apply(r);
                    r.state = target;
                    Ok(Transition::Applied)
                }
                Ok(Transition::AlreadyDone) => Ok(Transition::AlreadyDone),
                Err(action) => Err(LedgerError::WrongState { order: order.clone(), state: r.state, action }),
            }
        })
    }

    /// Releases every held reservation whose expiry is at or before `now`. Returns their orders.
    pub fn expire(&self, now: Timestamp) -> Vec<OrderId> {
        self.reservations.expire(now, |r| {
            let _ = self.undo(&r.holds, r.day, false);
        })
    }

    /// Recovery: puts back a reservation record as it was persisted. A held one holds its
    /// stock again (without checks: it was granted before); held and committed ones count against
    /// their day's capacity (released and expired ones gave their slot back).
    pub fn restore_reservation(&self, order: OrderId, mut record: Reservation) -> Result<(), LedgerError> {
        record.holds.sort_by_key(|h| h.store);
        let held = record.state == ReservationState::Held;
        if held || record.state == ReservationState::Committed {
            for group in record.holds.chunk_by(|a, b| a.store == b.store) {
                let store = group[0].store;
                let mut st = self.stores[store.0 as usize].lock();
                if held {
                    for h in group {
                        let (c, new_row) = st.cell_mut_or_insert(h.sku);
                        if new_row {
                            self.carriers[h.sku.0 as usize].fetch_add(1, Ordering::Relaxed);
                        }
                        st.cells[c].reserved += h.qty;
                        let cell = st.cells[c];
                        self.refresh_bit(store, h.sku.0, &cell);
                    }
                }
                st.take_order(record.day);
            }
        }
        self.reservations.insert(order.clone(), record).map_err(|_| LedgerError::DuplicateOrder(order))
    }

    /// Recovery: sets a cell's on_hand and safety stock as persisted, keeping the store's version
    /// at least `version`. Returns whether the row is new.
    pub fn restore_cell(
        &self,
        store: StoreIdx,
        sku: SkuIdx,
        on_hand: u32,
        safety_stock: u32,
        version: u64,
    ) -> bool {
        let mut st = self.stores[store.0 as usize].lock();
        let (i, new_row) = st.cell_mut_or_insert(sku);
        if new_row {
            self.carriers[sku.0 as usize].fetch_add(1, Ordering::Relaxed);
        }
        st.cells[i].on_hand = on_hand;
        st.cells[i].safety = safety_stock;
        st.version = st.version.max(version);
        let cell = st.cells[i];
        self.refresh_bit(store, sku.0, &cell);
        new_row
    }

    /// Cache mode (a database is the authority and this ledger caches it): sets a cell to the
    /// database's value when `version` is newer than the one held, or the row is new. `free` is the
    /// database's on_hand minus reserved: holds of other replicas count as stock gone, and this
    /// ledger's own reservations are in-flight only (see [`StockLedger::settle`]). Returns
    /// (applied, new row).
    pub fn sync_cell(
        &self,
        store: StoreIdx,
        sku: SkuIdx,
        free: u32,
        safety_stock: u32,
        version: u32,
    ) -> (bool, bool) {
        let mut st = self.stores[store.0 as usize].lock();
        let (i, new_row) = st.cell_mut_or_insert(sku);
        if new_row {
            self.carriers[sku.0 as usize].fetch_add(1, Ordering::Relaxed);
        } else if st.cells[i].version >= version {
            return (false, false);
        }
        let cell = &mut st.cells[i];
        cell.on_hand = free;
        cell.safety = safety_stock;
        cell.version = version;
        let cell = *cell;
        self.refresh_bit(store, sku.0, &cell);
        (true, new_row)
    }

    /// Cache mode: the database confirmed the in-flight reservation of `order`. The local record
    /// goes and its holds stop counting as reserved here (sync the cells from the database first:
    /// from then on the database's `free` counts them); its capacity slot stays taken.
    pub fn settle(&self, order: &OrderId) -> Option<Reservation> {
        self.forget(order, false)
    }

    /// Cache mode: the database refused the in-flight reservation of `order`, or answered the
    /// order before: the local record goes, its stock and capacity slot come back, and the order
    /// may be routed again.
    pub fn abandon(&self, order: &OrderId) -> Option<Reservation> {
        self.forget(order, true)
    }

    fn forget(&self, order: &OrderId, give_back_slot: bool) -> Option<Reservation> {
        let r = self.reservations.remove(order)?;
        if r.state == ReservationState::Held {
            for group in r.holds.chunk_by(|a, b| a.store == b.store) {
                let store = group[0].store;
                let mut st = self.stores[store.0 as usize].lock();
                for h in group {
                    let c = st.find(h.sku).expect("held cells are never removed");
                    let cell = &mut st.cells[c];
                    cell.reserved -= h.qty;
                    let cell = *cell;
                    self.refresh_bit(store, h.sku.0, &cell);
                }
                if give_back_slot {
                    st.return_order(r.day);
                }
            }
        }
        Some(r)
    }

    /// Sets the orders `store` took on local `day` to at least `orders`: a cache learning the
    /// database's count (when it refused a reservation for capacity), or recovery restoring the
    /// count of reservations whose records are no longer in memory.
    pub fn sync_orders(&self, store: StoreIdx, day: i64, orders: u32) {
        let mut st = self.stores[store.0 as usize].lock();
        if day > st.day {
            st.day = day;
            st.orders_today = orders;
        } else if day == st.day {
            st.orders_today = st.orders_today.max(orders);
        }
    }

    /// Drops the record of `order` once its reservation has ended (committed, released or
    /// expired) and that end is durable elsewhere: memory then holds only the reservations that
    /// hold stock, however many orders came before. A held record stays. Returns whether it went.
    pub fn forget_ended(&self, order: &OrderId) -> bool {
        self.reservations.remove_if(order, |r| r.state != ReservationState::Held)
    }

    /// A copy of the reservation of `order`.
    pub fn reservation(&self, order: &OrderId) -> Option<Reservation> {
        self.reservations.get(order)
    }

    /// Sums over all cells: (on_hand, reserved). For conservation checks and metrics.
    ///
    /// # Runtime
    /// O(rows); locks each store in turn.
    pub fn totals(&self) -> (u64, u64) {
        self.stores.iter().fold((0, 0), |(h, r), st| {
            let st = st.lock();
            st.cells.iter().fold((h, r), |(h, r), c| (h + u64::from(c.on_hand), r + u64::from(c.reserved)))
        })
    }
}

#[cfg(test)]
mod tests;
