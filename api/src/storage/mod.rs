//! Durable state: the embedded redb store ([`Embedded`]) and PostgreSQL + PostGIS
//! ([`postgres::Postgres`]). Each is used by its own checkout service
//! (`crate::service`); this module knows records and queries, not routing.
//!
//! What the embedded store persists is the state that cannot be rebuilt from the dataset files: stock cells
//! changed by feeds or commits (with the store version that made them, so that "newest version
//! wins" whatever order writes arrive in), one record per answered order (its canonical request
//! and the response given, written once), and each order's reservation in its latest state. A
//! write future resolves only once the change is durable; the HTTP layer answers 2xx only after
//! that. Order bodies are read back on demand (retries, reads), never kept in memory in bulk.

pub mod embedded;
pub mod postgres;

pub use embedded::Embedded;

use optimizer::ledger::ReservationState;
use optimizer::model::{Sku, StoreId};
use serde::{Deserialize, Serialize};

/// A storage failure. The request that hit it is answered 503 and its in-memory effect undone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// A persisted stock cell: the latest on_hand and safety stock, by external ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellRecord {
    pub store_id: StoreId,
    pub sku: Sku,
    pub on_hand: u32,
    pub safety_stock: u32,
    /// The store's ledger version after this change; the highest version wins.
    pub version: u64,
}

/// A persisted reservation (external ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRecord {
    pub state: ReservationState,
    /// Local day whose capacity it counts against.
    pub day: i64,
    pub expires_at: i64,
    /// (store_id, sku, qty); records written when ids were numbers read back as their text.
    pub holds: Vec<(StoreId, Sku, u32)>,
}

impl ReservationRecord {
    /// Whether it counts against its stores' capacity on its day: held and committed ones do,
    /// released and expired ones gave their slot back.
    pub fn takes_slot(&self) -> bool {
        matches!(self.state, ReservationState::Held | ReservationState::Committed)
    }

    /// The stores it holds stock at, each once.
    pub fn stores(&self) -> Vec<&StoreId> {
        let mut stores: Vec<&StoreId> = self.holds.iter().map(|(s, _, _)| s).collect();
        stores.sort();
        stores.dedup();
        stores
    }

    /// 1 while held, 2 once ended (committed, released, expired); the higher version wins.
    pub fn version(&self) -> u32 {
        if self.state == ReservationState::Held {
            1
        } else {
            2
        }
    }
}

/// A persisted order answer, written once: enough to answer retries identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub order_id: String,
    /// The order as canonical JSON (what an identical retry must match).
    pub request: String,
    /// The response body given for it (JSON, UTF-8).
    pub response: bytes::Bytes,
}

/// Changes to persist atomically.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    pub cells: Vec<CellRecord>,
    pub orders: Vec<OrderRecord>,
    /// (order_id, reservation) in its current state.
    pub reservations: Vec<(String, ReservationRecord)>,
    /// Stock audit entries (JSON), appended in order.
    pub audit: Vec<Vec<u8>>,
    /// Coupon redemptions (order id, JSON), inserted or replaced.
    pub redemptions: Vec<(String, Vec<u8>)>,
    /// Events for downstream systems, appended to the outbox in order (each numbered by the
    /// storage when written).
    pub events: Vec<OutboxEvent>,
    /// The id of the broker message this change applies: recorded with it, so that a redelivery
    /// is recognised ([`Embedded::messages_seen`]).
    pub message: Option<String>,
}

/// An event for downstream systems, written to the outbox with the state change it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The subject below the events root (`orders`, `stock.<brand>`).
    pub subject: String,
    /// The event as a JSON object, without its sequence number (the publisher adds it).
    pub json: Vec<u8>,
}

/// Outbox events read back: (sequence number, event), oldest first.
pub type NumberedEvents = Vec<(u64, OutboxEvent)>;

/// One item of persisted state, as [`Embedded::recover`] streams it at start-up (nothing is
/// held in bulk). Only what routing needs comes back: ended reservations and the bodies of
/// answered orders stay on disk and are read when a call asks for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered<'a> {
    Cell(CellRecord),
    /// A reservation that still holds stock.
    Reservation {
        order_id: &'a str,
        reservation: ReservationRecord,
    },
    /// How many orders a store took on a local day (held and committed reservations).
    StoreDay {
        day: i64,
        store_id: &'a str,
        orders: u32,
    },
    /// The id of an answered order.
    Order {
        order_id: &'a str,
    },
}
