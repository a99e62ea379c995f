//! Idempotency: one answer per order id, shared by every retry.
//!
//! The first request for an order id becomes its *owner*: it routes, persists, then publishes the
//! answer. Concurrent requests for the same id wait for that answer instead of routing again, so
//! 50 identical requests make one reservation and get byte-identical bodies. If the owner fails
//! (storage down), the slot is freed and the next request tries again.
//!
//! Once answered, an order leaves memory: only a fixed-size Bloom filter of answered ids stays.
//! An id the filter does not know was never answered here, and is routed at once; for one it
//! knows (or seems to: about one in a thousand new ids at the expected load), the owner reads
//! storage first and, when the order is there, answers from it. Memory stays the same however
//! many orders are answered.

use fastbloom::AtomicBloomFilter;
use optimizer::model::OrderId;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// The durable answer to one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The order as canonical JSON: what a retry must match.
    pub request: String,
    /// The response body given.
    pub response: bytes::Bytes,
}

/// An order being routed: its outcome once known, and the requests waiting for it.
#[derive(Default)]
pub struct Pending {
    /// `None` while routing; then `Some(Some(answer))`, or `Some(None)` if the owner gave up.
    outcome: Mutex<Option<Option<Arc<Answer>>>>,
    /// Wakes the waiters once `outcome` is set.
    settled: Notify,
}

impl Pending {
    fn settle(&self, outcome: Option<Arc<Answer>>) {
        *self.outcome.lock() = Some(outcome);
        self.settled.notify_waiters();
    }
}

const SHARDS: usize = 64;

/// Bits of the answered-ids filter per order expected (about 0.05% false positives when full).
const BITS_PER_ORDER: usize = 16;
/// Fewest orders the filter is sized for (4 MiB).
const MIN_ORDERS: usize = 2 << 20;

/// Orders being routed, by id.
type Shard = Mutex<FxHashMap<OrderId, Arc<Pending>>>;

/// Orders being routed, by id (sharded), and a filter of the ids answered.
pub struct OrderBook {
    shards: Box<[Shard]>,
    answered: AtomicBloomFilter,
}

/// What [`OrderBook::claim`] found.
pub enum Claim<'a> {
    /// Nobody is routing this order: the caller must find its stored answer (when
    /// [`Owner::maybe_answered`]) or route it, then call [`Owner::complete`].
    Owner(Owner<'a>),
    /// Another request is routing it right now: wait on this with [`wait`].
    Wait(Arc<Pending>),
}

/// The right (and duty) to answer one order. Dropping it without completing frees the slot.
pub struct Owner<'a> {
    book: &'a OrderBook,
    id: OrderId,
    maybe_answered: bool,
    /// Set until the owner completes; waiters hold it too.
    pending: Option<Arc<Pending>>,
}

impl Owner<'_> {
    pub fn id(&self) -> &OrderId {
        &self.id
    }

    /// Whether the order may have been answered before: its answer must be looked for in
    /// storage before it is routed. `false` means it certainly was not (here).
    pub fn maybe_answered(&self) -> bool {
        self.maybe_answered
    }

    /// Publishes the (durable) answer to waiters and later retries.
    pub fn complete(mut self, answer: Arc<Answer>) {
        {
            // Filed before the slot goes, so that no claim in between finds neither.
            let mut shard = self.book.shard(&self.id).lock();
            self.book.answered.insert(self.id.as_str());
            shard.remove(&self.id);
        }
        if let Some(pending) = self.pending.take() {
            pending.settle(Some(answer));
        }
    }
}

impl Drop for Owner<'_> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            // Not completed: let the next request try.
            self.book.shard(&self.id).lock().remove(&self.id);
            pending.settle(None);
        }
    }
}

impl OrderBook {
    /// A book whose filter stays precise up to about `expected_orders` answered orders (beyond
    /// that, more new orders are looked up in storage first; none is answered twice).
    pub fn new(expected_orders: usize) -> OrderBook {
        let orders = expected_orders.max(MIN_ORDERS);
        let bits = (orders * BITS_PER_ORDER).next_power_of_two();
        OrderBook {
            shards: (0..SHARDS).map(|_| Mutex::new(FxHashMap::default())).collect(),
            answered: AtomicBloomFilter::with_num_bits(bits).expected_items(orders),
        }
    }

    fn shard(&self, id: &OrderId) -> &Shard {
        &self.shards[id.shard(SHARDS)]
    }

    /// Makes the caller the owner of `id`, or finds the request that is.
    pub fn claim(&self, id: &OrderId) -> Claim<'_> {
        let mut shard = self.shard(id).lock();
        if let Some(p) = shard.get(id) {
            return Claim::Wait(p.clone());
        }
        let pending = Arc::new(Pending::default());
        shard.insert(id.clone(), pending.clone());
        let maybe_answered = self.answered.contains(id.as_str());
        Claim::Owner(Owner { book: self, id: id.clone(), maybe_answered, pending: Some(pending) })
    }

    /// Whether `id` may have been answered (storage tells for sure); `false` while it is being
    /// routed, and for every id never answered here (but one in a thousand or so).
    pub fn maybe_answered(&self, id: &OrderId) -> bool {
        let shard = self.shard(id).lock();
        !shard.contains_key(id) && self.answered.contains(id.as_str())
    }

    /// Recovery: records that `order_id` was answered.
    pub fn insert(&self, order_id: &str) {
        self.answered.insert(order_id);
    }

    /// Bytes the filter takes (fixed when made).
    pub fn filter_bytes(&self) -> usize {
        self.answered.num_bits() / 8
    }
}

/// Waits for a pending answer; `None` when its owner gave up (the caller should claim again).
pub async fn wait(pending: Arc<Pending>) -> Option<Arc<Answer>> {
    loop {
        let settled = pending.settled.notified();
        tokio::pin!(settled);
        // Registered before the check, so a settle between the two still wakes us.
        settled.as_mut().enable();
        if let Some(outcome) = pending.outcome.lock().clone() {
            return outcome;
        }
        settled.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> OrderId {
        OrderId::parse(s).unwrap()
    }

    fn answer(r: &str) -> Arc<Answer> {
        Arc::new(Answer { request: r.into(), response: bytes::Bytes::from_static(b"{}") })
    }

    #[tokio::test]
    async fn one_owner_others_wait_for_its_answer_and_later_claims_look_in_storage() {
        let book = OrderBook::new(0);
        let Claim::Owner(owner) = book.claim(&id("a")) else { panic!("first claim owns") };
        assert!(!owner.maybe_answered());
        assert!(!book.maybe_answered(&id("a")), "not answered while it is routed");
        let Claim::Wait(rx) = book.claim(&id("a")) else { panic!("second claim waits") };
        let waiter = tokio::spawn(wait(rx));
        owner.complete(answer("x"));
        assert_eq!(waiter.await.unwrap().unwrap().request, "x");
        assert!(book.maybe_answered(&id("a")));
        let Claim::Owner(again) = book.claim(&id("a")) else { panic!("answered: owned again") };
        assert!(again.maybe_answered(), "a later claim reads storage first");
    }

    #[tokio::test]
    async fn waiters_that_came_before_and_after_the_answer_all_get_it() {
        let book = OrderBook::new(0);
        let Claim::Owner(owner) = book.claim(&id("c")) else { panic!() };
        let early: Vec<_> = (0..3)
            .map(|_| match book.claim(&id("c")) {
                Claim::Wait(p) => tokio::spawn(wait(p)),
                _ => panic!("claims while routing wait"),
            })
            .collect();
        let Claim::Wait(late) = book.claim(&id("c")) else { panic!() };
        tokio::task::yield_now().await;
        owner.complete(answer("y"));
        for w in early {
            assert_eq!(w.await.unwrap().unwrap().request, "y");
        }
        assert_eq!(wait(late).await.unwrap().request, "y");
    }

    #[tokio::test]
    async fn a_failed_owner_frees_the_slot_and_files_nothing() {
        let book = OrderBook::new(0);
        let Claim::Owner(owner) = book.claim(&id("b")) else { panic!() };
        let Claim::Wait(rx) = book.claim(&id("b")) else { panic!() };
        drop(owner);
        assert!(wait(rx).await.is_none());
        assert!(matches!(book.claim(&id("b")), Claim::Owner(o) if !o.maybe_answered()));
    }

    /// The filter never forgets an answered id, and at its expected load sends few new ids to
    /// storage; its size does not change with the orders filed.
    #[test]
    fn answered_ids_are_never_missed_and_new_ones_rarely_look_in_storage() {
        let book = OrderBook::new(0);
        let bytes = book.filter_bytes();
        assert_eq!(bytes, 4 << 20);
        for i in 0..MIN_ORDERS {
            book.insert(&format!("order-{i}"));
        }
        assert!((0..MIN_ORDERS).step_by(97).all(|i| book.maybe_answered(&id(&format!("order-{i}")))));
        let probes = 200_000;
        let false_positives = (0..probes).filter(|i| book.maybe_answered(&id(&format!("new-{i}")))).count();
        assert!(false_positives * 500 < probes, "{false_positives} of {probes} new ids looked answered");
        assert_eq!(book.filter_bytes(), bytes);
    }
}
