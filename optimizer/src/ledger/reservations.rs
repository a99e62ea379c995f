//! Reservation records, sharded by order id so that routing threads rarely meet on one lock.

use crate::model::{OrderId, SkuIdx, StoreIdx, Timestamp};
use hashbrown::hash_table::{Entry, HashTable};
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Lifecycle of a reservation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Stock is held until `expires_at`.
    Held,
    /// Shipped or collected: stock left the store.
    Committed,
    /// Cancelled: stock went back.
    Released,
    /// Not committed before `expires_at`: stock went back.
    Expired,
}

impl ReservationState {
    /// The state's name on the wire (`held`, `committed`, `released`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Held => "held",
            ReservationState::Committed => "committed",
            ReservationState::Released => "released",
            ReservationState::Expired => "expired",
        }
    }

    /// What ending a reservation in this state as `target` does: a ship ends it `Committed`, a
    /// cancel `Released`. From `Held` the change applies; a reservation already in `target` (or,
    /// for a cancel, already expired) is done and the call is a no-op. Otherwise it is refused,
    /// with the action's past participle (`committed`, `released`) for the message.
    pub fn finish_as(self, target: ReservationState) -> Result<super::Transition, &'static str> {
        use ReservationState::*;
        match (self, target) {
            (Held, Committed | Released) => Ok(super::Transition::Applied),
            (s, t) if s == t => Ok(super::Transition::AlreadyDone),
            (Expired, Released) => Ok(super::Transition::AlreadyDone),
            (_, Committed) => Err("committed"),
            _ => Err("released"),
        }
    }
}

/// Units of one SKU held at one store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub store: StoreIdx,
    pub sku: SkuIdx,
    pub qty: u32,
}

/// Stock held for one order, sorted by store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub holds: Vec<Hold>,
    /// Local day whose capacity the reservation counts against.
    pub day: i64,
    pub expires_at: Timestamp,
    pub state: ReservationState,
}

const SHARDS: usize = 64;

/// One shard's records. The records themselves sit in insertion order in a vector, so filing
/// one writes where the last one was written (no cache miss); the table that finds them by
/// order id holds only their 4-byte positions, a sixteenth of the bytes a map of whole records
/// spreads its writes over. A removal moves the last record into the hole.
#[derive(Default, Debug)]
struct Shard {
    records: Vec<(OrderId, Reservation)>,
    index: HashTable<u32>,
    /// Every reservation filed, in expiry order (the TTL is fixed, so insertion order is expiry
    /// order when time only moves forward; out-of-order entries are found by the full check
    /// below), by the hash of its order id: 16 bytes each, and no id kept alive once its record
    /// is forgotten. An entry stays until it comes due, whatever became of its record.
    by_expiry: VecDeque<(Timestamp, u64)>,
}

impl Shard {
    fn with_capacity(n: usize) -> Shard {
        Shard {
            records: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
            by_expiry: VecDeque::with_capacity(n),
        }
    }

    fn position(&self, order: &OrderId) -> Option<usize> {
        let records = &self.records;
        self.index.find(order.fx_hash(), |&i| records[i as usize].0 == *order).map(|&i| i as usize)
    }

    fn get_mut(&mut self, order: &OrderId) -> Option<&mut Reservation> {
        let i = self.position(order)?;
        Some(&mut self.records[i].1)
    }

    fn insert(&mut self, order: OrderId, record: Reservation) -> Result<(), Reservation> {
        let Shard { records, index, by_expiry } = self;
        let at = u32::try_from(records.len()).expect("fewer than 2^32 records per shard");
        match index.entry(
            order.fx_hash(),
            |&i| records[i as usize].0 == order,
            |&i| records[i as usize].0.fx_hash(),
        ) {
            Entry::Occupied(_) => Err(record),
            Entry::Vacant(slot) => {
                slot.insert(at);
                by_expiry.push_back((record.expires_at, order.fx_hash()));
                records.push((order, record));
                Ok(())
            }
        }
    }

    fn remove(&mut self, order: &OrderId) -> Option<Reservation> {
        let Shard { records, index, .. } = self;
        let Ok(found) = index.find_entry(order.fx_hash(), |&i| records[i as usize].0 == *order) else {
            return None;
        };
        let (i, _) = found.remove();
        let (i, last) = (i as usize, records.len() - 1);
        if i != last {
            // The last record moves into the hole: point its entry there.
            let moved = index
                .find_mut(records[last].0.fx_hash(), |&j| j as usize == last)
                .expect("every record has an entry");
            *moved = i as u32;
        }
        Some(records.swap_remove(i).1)
    }
}

#[derive(Debug)]
pub(crate) struct Reservations {
    shards: Box<[Mutex<Shard>]>,
}

impl Reservations {
    /// Room for about `expected` records in all (0: grow on demand).
    pub fn with_capacity(expected: usize) -> Self {
        let per_shard = expected.div_ceil(SHARDS);
        Reservations { shards: (0..SHARDS).map(|_| Mutex::new(Shard::with_capacity(per_shard))).collect() }
    }

    fn shard(&self, order: &OrderId) -> &Mutex<Shard> {
        &self.shards[order.shard(SHARDS)]
    }

    pub fn get(&self, order: &OrderId) -> Option<Reservation> {
        let shard = self.shard(order).lock();
        shard.position(order).map(|i| shard.records[i].1.clone())
    }

    /// Inserts a new record; gives it back when the order already has one.
    pub fn insert(&self, order: OrderId, record: Reservation) -> Result<(), Reservation> {
        self.shard(&order).lock().insert(order, record)
    }

    /// Removes the record of `order` (its expiry entry goes when it comes due).
    pub fn remove(&self, order: &OrderId) -> Option<Reservation> {
        self.shard(order).lock().remove(order)
    }

    /// Removes the record of `order` if `ended` says so, under one lock; returns whether it went.
    pub fn remove_if(&self, order: &OrderId, ended: impl FnOnce(&Reservation) -> bool) -> bool {
        let mut shard = self.shard(order).lock();
        match shard.position(order) {
            Some(i) if ended(&shard.records[i].1) => shard.remove(order).is_some(),
            _ => false,
        }
    }

    /// Runs `f` on the record of `order` while its shard is locked.
    pub fn with_mut<R>(&self, order: &OrderId, f: impl FnOnce(Option<&mut Reservation>) -> R) -> R {
        let mut shard = self.shard(order).lock();
        f(shard.get_mut(order))
    }

    /// Marks held records due at `now` as expired, calling `release` on each first.
    pub fn expire(&self, now: Timestamp, release: impl Fn(&Reservation)) -> Vec<OrderId> {
        let mut expired = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let Shard { records, index, by_expiry } = &mut *shard;
            while by_expiry.front().is_some_and(|(t, _)| *t <= now) {
                let (_, hash) = by_expiry.pop_front().expect("front exists");
                // Every record whose id has this hash (nearly always one, or none any more).
                for &i in index.iter_hash(hash) {
                    let (order, r) = &mut records[i as usize];
                    if order.fx_hash() == hash && r.state == ReservationState::Held && r.expires_at <= now {
                        release(r);
                        r.state = ReservationState::Expired;
                        expired.push(order.clone());
                    }
                }
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_a_held_reservation_changes_and_ending_it_again_is_a_no_op() {
        use super::super::Transition::{AlreadyDone, Applied};
        use ReservationState::*;
        let (ship, cancel) = (Committed, Released);
        assert_eq!(Held.finish_as(ship), Ok(Applied));
        assert_eq!(Held.finish_as(cancel), Ok(Applied));
        assert_eq!(Committed.finish_as(ship), Ok(AlreadyDone));
        assert_eq!(Released.finish_as(cancel), Ok(AlreadyDone));
        assert_eq!(Expired.finish_as(cancel), Ok(AlreadyDone));
        assert_eq!(Committed.finish_as(cancel), Err("released"));
        assert_eq!(Released.finish_as(ship), Err("committed"));
        assert_eq!(Expired.finish_as(ship), Err("committed"));
    }

    proptest! {
        #![proptest_config(crate::testkit::seeded(200))]

        /// Inserts, removals (each moving the last record of a shard into the hole), lookups and
        /// expiry agree with a plain map. Expiry times follow insertion order (a fixed TTL on a
        /// clock that only moves forward), as the ledger files them.
        #[test]
        fn records_behave_like_a_map(ops in proptest::collection::vec((0u8..4, 0u32..300, 0i64..100), 1..400)) {
            let r = Reservations::with_capacity(0);
            let mut model: std::collections::HashMap<OrderId, Reservation> = Default::default();
            let mut clock = 0i64;
            for (op, id, t) in ops {
                let id = OrderId::parse(&format!("o{id}")).unwrap();
                match op {
                    0 => {
                        clock += t % 3;
                        let rec = Reservation { day: t, expires_at: Timestamp(clock), ..record() };
                        let fresh = !model.contains_key(&id);
                        prop_assert_eq!(r.insert(id.clone(), rec.clone()).is_ok(), fresh);
                        if fresh {
                            model.insert(id, rec);
                        }
                    }
                    1 => prop_assert_eq!(r.remove(&id), model.remove(&id)),
                    2 => {
                        r.with_mut(&id, |rec| if let Some(rec) = rec { rec.day += 1 });
                        if let Some(m) = model.get_mut(&id) {
                            m.day += 1;
                        }
                    }
                    _ => {
                        let now = clock - t % 5;
                        let mut got = r.expire(Timestamp(now), |_| {});
                        let mut want: Vec<OrderId> = model
                            .iter_mut()
                            .filter(|(_, m)| m.state == ReservationState::Held && m.expires_at.0 <= now)
                            .map(|(id, m)| {
                                m.state = ReservationState::Expired;
                                id.clone()
                            })
                            .collect();
                        got.sort();
                        want.sort();
                        prop_assert_eq!(got, want);
                    }
                }
            }
            for i in 0..300 {
                let id = OrderId::parse(&format!("o{i}")).unwrap();
                prop_assert_eq!(r.get(&id), model.get(&id).cloned());
            }
        }
    }

    fn record() -> Reservation {
        Reservation { holds: Vec::new(), day: 0, expires_at: Timestamp(60), state: ReservationState::Held }
    }

    #[test]
    fn sized_tables_take_the_expected_records_without_growing() {
        let r = Reservations::with_capacity(10_000);
        let capacity = |r: &Reservations| -> Vec<(usize, usize)> {
            r.shards
                .iter()
                .map(|s| {
                    let s = s.lock();
                    (s.index.capacity().min(s.records.capacity()), s.by_expiry.capacity())
                })
                .collect()
        };
        let before = capacity(&r);
        assert!(before.iter().all(|&(m, q)| m >= 10_000 / SHARDS && q >= 10_000 / SHARDS));
        // Ids hash unevenly across shards: stay under what the fullest shard has room for.
        for i in 0..5_000 {
            r.insert(OrderId::parse(&format!("o{i}")).unwrap(), record()).unwrap();
        }
        assert_eq!(capacity(&r), before);
        assert_eq!(r.get(&OrderId::parse("o4999").unwrap()), Some(record()));
    }

    #[test]
    fn unsized_tables_start_empty_and_grow() {
        let r = Reservations::with_capacity(0);
        assert!(r.shards.iter().all(|s| s.lock().records.capacity() == 0));
        r.insert(OrderId::parse("a").unwrap(), record()).unwrap();
        assert!(r.insert(OrderId::parse("a").unwrap(), record()).is_err());
    }
}
