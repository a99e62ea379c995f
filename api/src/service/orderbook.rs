//! Idempotency: one answer per order id, shared by every retry.
//!
//! The first request for an order id becomes its *owner*: it routes, persists, then publishes the
//! answer. Concurrent requests for the same id wait for that answer instead of routing again, so
//! 50 identical requests make one reservation and get byte-identical bodies. If the owner fails
//! (storage down), the slot is freed and the next request tries again.
//!
//! Once answered, only a 64-bit fingerprint of the canonical request stays in memory; the
//! response itself is read back from storage when a retry comes (memory stays small at tens of
//! millions of orders).

use optimizer::model::OrderId;
use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};
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

enum Slot {
    Pending(Arc<Pending>),
    /// Answered; the fingerprint of its canonical request.
    Done(u64),
}

/// A stable 64-bit fingerprint of a canonical request.
pub fn fingerprint(request: &str) -> u64 {
    let mut h = FxHasher::default();
    request.hash(&mut h);
    h.finish()
}

const SHARDS: usize = 64;

/// Answers by order id, sharded.
pub struct OrderBook {
    shards: Box<[Mutex<FxHashMap<OrderId, Slot>>]>,
}

/// What [`OrderBook::claim`] found.
pub enum Claim<'a> {
    /// Nobody has routed this order: the caller must, then call [`Owner::complete`].
    Owner(Owner<'a>),
    /// Already answered: the fingerprint of its request (the answer is in storage).
    Done(u64),
    /// Another request is routing it right now: wait on this with [`wait`].
    Wait(Arc<Pending>),
}

/// The right (and duty) to answer one order. Dropping it without completing frees the slot.
pub struct Owner<'a> {
    book: &'a OrderBook,
    id: OrderId,
    /// Set until the owner completes; waiters hold it too.
    pending: Option<Arc<Pending>>,
}

impl Owner<'_> {
    pub fn id(&self) -> &OrderId {
        &self.id
    }

    /// Publishes the (durable) answer to waiters and later retries.
    pub fn complete(mut self, answer: Arc<Answer>) {
        self.book.shard(&self.id).lock().insert(self.id.clone(), Slot::Done(fingerprint(&answer.request)));
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

impl Default for OrderBook {
    fn default() -> Self {
        OrderBook { shards: (0..SHARDS).map(|_| Mutex::new(FxHashMap::default())).collect() }
    }
}

impl OrderBook {
    fn shard(&self, id: &OrderId) -> &Mutex<FxHashMap<OrderId, Slot>> {
        &self.shards[id.shard(SHARDS)]
    }

    /// Finds the answer to `id`, or makes the caller its owner.
    pub fn claim(&self, id: &OrderId) -> Claim<'_> {
        let mut shard = self.shard(id).lock();
        match shard.get(id) {
            Some(Slot::Done(f)) => Claim::Done(*f),
            Some(Slot::Pending(p)) => Claim::Wait(p.clone()),
            None => {
                let pending = Arc::new(Pending::default());
                shard.insert(id.clone(), Slot::Pending(pending.clone()));
                Claim::Owner(Owner { book: self, id: id.clone(), pending: Some(pending) })
            }
        }
    }

    /// Whether `id` has been answered.
    pub fn answered(&self, id: &OrderId) -> bool {
        matches!(self.shard(id).lock().get(id), Some(Slot::Done(_)))
    }

    /// Recovery: records that `id` was answered for `request`.
    pub fn insert(&self, id: OrderId, request: &str) {
        self.shard(&id).lock().insert(id, Slot::Done(fingerprint(request)));
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
    async fn one_owner_others_wait_for_its_answer() {
        let book = OrderBook::default();
        let Claim::Owner(owner) = book.claim(&id("a")) else { panic!("first claim owns") };
        let Claim::Wait(rx) = book.claim(&id("a")) else { panic!("second claim waits") };
        let waiter = tokio::spawn(wait(rx));
        owner.complete(answer("x"));
        assert_eq!(waiter.await.unwrap().unwrap().request, "x");
        assert!(matches!(book.claim(&id("a")), Claim::Done(f) if f == fingerprint("x")));
        assert!(book.answered(&id("a")));
    }

    #[tokio::test]
    async fn waiters_that_came_before_and_after_the_answer_all_get_it() {
        let book = OrderBook::default();
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
    async fn a_failed_owner_frees_the_slot() {
        let book = OrderBook::default();
        let Claim::Owner(owner) = book.claim(&id("b")) else { panic!() };
        let Claim::Wait(rx) = book.claim(&id("b")) else { panic!() };
        drop(owner);
        assert!(wait(rx).await.is_none());
        assert!(matches!(book.claim(&id("b")), Claim::Owner(_)));
    }
}
