//! Durable state behind a trait: the embedded redb store now, PostgreSQL/PostGIS next.
//!
//! What is persisted is the state that cannot be rebuilt from the dataset files: stock cells
//! changed by feeds or commits (with the store version that made them, so that "newest version
//! wins" whatever order writes arrive in), and one record per routed order (its canonical request,
//! the response given, and its reservation). A write future resolves only once the change is
//! durable; the HTTP layer answers 2xx only after that.

mod embedded;

pub use embedded::Embedded;

use optimizer::ledger::ReservationState;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// A storage failure. The request that hit it is answered 503 and its in-memory effect undone.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// A persisted stock cell: the latest on_hand and safety stock, by external ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellRecord {
    pub store_id: u32,
    pub sku: u32,
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
    /// (store_id, sku, qty)
    pub holds: Vec<(u32, u32, u32)>,
}

/// A persisted order: enough to answer retries identically and to rebuild its reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: String,
    /// 1 when routed, 2 after its reservation ended (committed, released, expired); the higher
    /// version wins.
    pub version: u32,
    /// The order as canonical JSON (what an identical retry must match).
    pub request: String,
    /// The response body given for it.
    pub response: String,
    /// `None` when nothing was reserved (DC or unfulfillable decisions).
    pub reservation: Option<ReservationRecord>,
}

/// Changes to persist atomically.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    pub cells: Vec<CellRecord>,
    pub orders: Vec<OrderRecord>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.orders.is_empty()
    }
}

/// Everything persisted, read at start-up.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cells: Vec<CellRecord>,
    pub orders: Vec<OrderRecord>,
}

/// A pending durable write.
pub type Durable = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// Where live state is kept durably.
pub trait Storage: Send + Sync + 'static {
    /// Reads everything persisted.
    fn load(&self) -> Result<Snapshot, StorageError>;
    /// Persists `changes` atomically; the future resolves once they are durable.
    fn commit(&self, changes: ChangeSet) -> Durable;
    /// Whether writes are currently going through.
    fn healthy(&self) -> bool;
    /// A short name for logs and /readyz.
    fn kind(&self) -> &'static str;
}
