//! Reservation records, sharded by order id so that routing threads rarely meet on one lock.

use crate::model::{OrderId, SkuIdx, StoreIdx, Timestamp};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
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

#[derive(Default, Debug)]
struct Shard {
    records: FxHashMap<OrderId, Reservation>,
    /// Held orders in expiry order (the TTL is fixed, so insertion order is expiry order when
    /// time only moves forward; out-of-order entries are found by the full check below).
    by_expiry: VecDeque<(Timestamp, OrderId)>,
}

#[derive(Debug)]
pub(crate) struct Reservations {
    shards: Box<[Mutex<Shard>]>,
}

impl Reservations {
    /// Room for about `expected` records in all (0: grow on demand).
    pub fn with_capacity(expected: usize) -> Self {
        let per_shard = expected.div_ceil(SHARDS);
        let shard = || Shard {
            records: FxHashMap::with_capacity_and_hasher(per_shard, Default::default()),
            by_expiry: VecDeque::with_capacity(per_shard),
        };
        Reservations { shards: (0..SHARDS).map(|_| Mutex::new(shard())).collect() }
    }

    fn shard(&self, order: &OrderId) -> &Mutex<Shard> {
        &self.shards[order.shard(SHARDS)]
    }

    pub fn get(&self, order: &OrderId) -> Option<Reservation> {
        self.shard(order).lock().records.get(order).cloned()
    }

    /// Inserts a new record; gives it back when the order already has one.
    pub fn insert(&self, order: OrderId, record: Reservation) -> Result<(), Reservation> {
        let mut shard = self.shard(&order).lock();
        match shard.records.entry(order) {
            std::collections::hash_map::Entry::Occupied(_) => Err(record),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let order = slot.key().clone();
                let expires_at = record.expires_at;
                slot.insert(record);
                shard.by_expiry.push_back((expires_at, order));
                Ok(())
            }
        }
    }

    /// Removes the record of `order` (its expiry entry goes when it comes due).
    pub fn remove(&self, order: &OrderId) -> Option<Reservation> {
        self.shard(order).lock().records.remove(order)
    }

    /// Runs `f` on the record of `order` while its shard is locked.
    pub fn with_mut<R>(&self, order: &OrderId, f: impl FnOnce(Option<&mut Reservation>) -> R) -> R {
        let mut shard = self.shard(order).lock();
        f(shard.records.get_mut(order))
    }

    /// Marks held records due at `now` as expired, calling `release` on each first.
    pub fn expire(&self, now: Timestamp, release: impl Fn(&Reservation)) -> Vec<OrderId> {
        let mut expired = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let Shard { records, by_expiry } = &mut *shard;
            while by_expiry.front().is_some_and(|(t, _)| *t <= now) {
                let (_, order) = by_expiry.pop_front().expect("front exists");
                if let Some(r) = records.get_mut(&order) {
                    if r.state == ReservationState::Held && r.expires_at <= now {
                        release(r);
                        r.state = ReservationState::Expired;
                        expired.push(order);
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
                    (s.records.capacity(), s.by_expiry.capacity())
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
