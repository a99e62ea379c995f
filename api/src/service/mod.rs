//! The checkout service: what `omniroute serve` does with orders and stock, behind one trait with
//! one implementation per storage backend.
//!
//! * [`EmbeddedCheckout`]: one process; the in-memory ledger is the authority and a redb file
//!   its durable log (group commit).
//! * [`ReplicaCheckout`]: one of several replicas over PostgreSQL + PostGIS; the database is the
//!   authority and the in-memory ledger a cache kept fresh by notifications.
//!
//! Both hold a [`Core`] (engine, router, idempotency by order id, metrics) and route through the
//! same driver, [`Core::route_many`]; they differ only in how a decision becomes durable and
//! where finished orders, feeds and reads go. The HTTP layer sees [`Checkout`] only: it never
//! knows which backend runs, and every capability added here is added once for both.
//!
//! Values crossing this boundary are typed: dense indexes (`StoreIdx`, `SkuIdx`) parsed at the
//! edge, reservation states as [`ReservationState`], errors as [`ServiceError`] variants.

mod core;
mod embedded;
pub mod events;
mod orderbook;
mod replica;

pub use self::core::Core;
pub use embedded::EmbeddedCheckout;
pub use orderbook::Answer;
pub use replica::ReplicaCheckout;

use crate::coupons::campaign::Campaign;
use crate::coupons::wallet::{Captured, WalletEntry};
use crate::data::DataError;
use crate::storage::{NumberedEvents, StorageError};
use async_trait::async_trait;
use optimizer::ledger::{FeedRow, LedgerConfig, ReservationState, StockLevel};
use optimizer::model::{Order, OrderId, SkuIdx, StoreIdx, Timestamp};
use std::path::PathBuf;
use std::sync::Arc;

/// How a held reservation ends on request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The order shipped (or was collected): stock leaves the store.
    Ship,
    /// The order was cancelled: stock goes back.
    Cancel,
}

impl End {
    /// The state the reservation ends in.
    pub fn target(self) -> ReservationState {
        match self {
            End::Ship => ReservationState::Committed,
            End::Cancel => ReservationState::Released,
        }
    }
}

/// An answered order as it stands now.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderView {
    pub order_id: OrderId,
    /// The reservation's state; `None` when the decision reserved nothing (a DC, unfulfillable).
    pub state: Option<ReservationState>,
    pub expires_at: Option<Timestamp>,
    /// The decision exactly as it was answered (JSON).
    pub decision: bytes::Bytes,
}

/// What a stock feed row left in its cell.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FedCell {
    pub store: StoreIdx,
    pub sku: SkuIdx,
    pub level: StockLevel,
    /// The row created the (store, SKU) cell.
    pub new_row: bool,
}

/// Why a service call failed. A call that fails changes no state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    // The caller asked for something that cannot be done.
    #[error("order {order_id} was already routed with a different body")]
    IdempotencyMismatch { order_id: OrderId },
    #[error("order {0} not found")]
    UnknownOrder(OrderId),
    #[error("order {order_id} has nothing reserved (it was served by a DC or not at all)")]
    NoReservation { order_id: OrderId },
    #[error("order {order_id} is {} and cannot be {action}", .state.as_str())]
    InvalidState { order_id: OrderId, state: ReservationState, action: &'static str },
    #[error("row {row}: delta {delta} would take on_hand below zero; nothing was applied")]
    NegativeOnHand { row: usize, delta: i64 },
    #[error("row {row}: on_hand would exceed {max}; nothing was applied", max = optimizer::ledger::MAX_ON_HAND)]
    OnHandTooLarge { row: usize },
    // The service cannot do it right now.
    #[error("order {order_id}: every store chosen for it was taken by other replicas meanwhile; nothing is reserved, retry")]
    Contention { order_id: OrderId },
    #[error("state storage is unavailable: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Unsupported(&'static str),
    /// A broker message that another replica applied meanwhile: nothing changed.
    #[error("message {0} was applied before")]
    DuplicateMessage(String),
    // A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the checkout service does. One implementation per storage backend; handlers authorise,
/// parse, call one of these and render.
#[async_trait]
pub trait Checkout: Send + Sync + 'static {
    /// Engine (network, index, ledger or its cache), router and metrics: what reads that need no
    /// storage use (order checks, nearby stores, store details, plans on a snapshot).
    fn core(&self) -> &Core;

    /// A short name of the storage backend, for logs and `/readyz`.
    fn storage(&self) -> &'static str;

    /// Routes and reserves `orders` (distinct ids, each checked against the network) with
    /// idempotency by order id: one result per order, in order. A retry with the same canonical
    /// request gets the answer given before, byte for byte; with another body
    /// [`ServiceError::IdempotencyMismatch`].
    async fn route_many(&self, orders: &[Order]) -> Vec<Result<Arc<Answer>, ServiceError>>;

    /// Ends an order's held reservation (idempotent) and returns the order as it stands.
    async fn finish(&self, order: &OrderId, end: End) -> Result<OrderView, ServiceError>;

    /// Applies a stock feed, every row or none, durably, with its audit entries in the same
    /// commit (one per brand of the feed's stores), and, when it came in a broker message, that
    /// message's id (see [`Checkout::messages_seen`]).
    async fn apply_feed(
        &self,
        rows: &[FeedRow],
        audit: &[AuditEntry],
        message: Option<&str>,
    ) -> Result<Vec<FedCell>, ServiceError>;

    /// Records audit entries of a refused feed (nothing else changes), durably.
    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), ServiceError>;

    /// For each broker message id, whether a feed it carried was applied: a redelivered message
    /// is then acknowledged without being applied again.
    async fn messages_seen(&self, ids: &[&str]) -> Result<Vec<bool>, ServiceError>;

    /// Outbox rows after `after` (a row's key), oldest first, at most `rows`: each row's key and
    /// its events with their sequence numbers. [`ServiceError::Unsupported`] where the backend
    /// keeps no outbox.
    async fn outbox(
        &self,
        after: Option<u64>,
        rows: usize,
    ) -> Result<Vec<(u64, NumberedEvents)>, ServiceError>;

    /// Marks outbox rows up to key `upto` published: they are deleted with a later commit (a
    /// crash before it publishes them again).
    async fn outbox_published(&self, upto: u64) -> Result<(), ServiceError>;

    /// The id of this state's event stream (sequence numbers begin again under a new one), and
    /// what wakes when events are written.
    fn event_stream(&self) -> Result<(String, Arc<tokio::sync::Notify>), ServiceError>;

    /// Audit entries after sequence number `after`, oldest first, at most `limit`, of `brands`
    /// only when given.
    async fn audit_log(
        &self,
        brands: Option<&[String]>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ServiceError>;

    /// The stock of one cell as the authority holds it; `None` when the store has no row for it.
    async fn stock_level(&self, store: StoreIdx, sku: SkuIdx) -> Result<Option<StockLevel>, ServiceError>;

    /// Orders counted against `store`'s capacity on the local day of `at`, as the authority
    /// counts them (a replica's cache may count cancelled orders until it restarts).
    async fn orders_on_day(&self, store: StoreIdx, at: Timestamp) -> Result<u32, ServiceError>;

    /// An answered order as it stands; `None` when it was never answered.
    async fn order(&self, order: &OrderId) -> Result<Option<OrderView>, ServiceError>;

    /// Releases held reservations whose TTL has passed at `now`; returns how many.
    async fn expire_due(&self, now: Timestamp) -> Result<u64, ServiceError>;

    /// Whether state writes go through (a round trip to the database for a replica).
    async fn ready(&self) -> Result<(), ServiceError>;

    /// Stores an API key record (JSON, by key id; insert or replace) durably.
    async fn save_key(&self, id: &str, record: &serde_json::Value) -> Result<(), ServiceError>;

    /// Every stored API key record.
    async fn keys(&self) -> Result<Vec<serde_json::Value>, ServiceError>;

    /// Writes `campaign` durably: with `expect` `None` only if its id is new, else only over the
    /// stored campaign of version `expect` (so concurrent changes, on any replica, never undo one
    /// another). Whether it was written.
    async fn put_campaign(&self, campaign: &Campaign, expect: Option<u64>) -> Result<bool, ServiceError>;

    /// One stored campaign.
    async fn campaign(&self, id: u32) -> Result<Option<Campaign>, ServiceError>;

    /// Every stored campaign, by id.
    async fn campaigns(&self) -> Result<Vec<Campaign>, ServiceError>;

    /// Adds `entry` (a capture of one of `campaign`'s posters) to `customer`'s wallet unless the
    /// customer holds that campaign's coupon already, taking one coupon from each of the
    /// campaign's issue budgets (all or none), durably before it answers. On any backend and
    /// across replicas no budget is ever exceeded and a customer holds one coupon per campaign.
    async fn capture(
        &self,
        campaign: &Campaign,
        customer: &str,
        entry: WalletEntry,
    ) -> Result<Captured, ServiceError>;

    /// A customer's captured coupons, by campaign id, each with its live redemptions.
    async fn wallet(&self, customer: &str) -> Result<Vec<WalletEntry>, ServiceError>;

    /// A campaign's coupons captured and redeemed (live), by capture store number, as the
    /// authority counts them.
    async fn campaign_tally(
        &self,
        campaign: u32,
    ) -> Result<rustc_hash::FxHashMap<u32, crate::coupons::stats::StoreTally>, ServiceError>;

    /// Writes a consistent copy of the durable state while serving and says where. The embedded
    /// store writes a state file under its state directory (`backups/`); PostgreSQL is backed up
    /// with its own tools, and a replica answers [`ServiceError::Unsupported`].
    async fn backup(&self) -> Result<Backup, ServiceError>;
}

/// A stored JSON record read back (`what` names it in the error).
fn record<T: serde::de::DeserializeOwned>(what: &str, json: &[u8]) -> Result<T, ServiceError> {
    serde_json::from_slice(json).map_err(|e| ServiceError::Internal(format!("a stored {what}: {e}")))
}

/// A stored JSON record read back from the database.
fn record_value<T: serde::de::DeserializeOwned>(
    what: &str,
    json: serde_json::Value,
) -> Result<T, ServiceError> {
    serde_json::from_value(json).map_err(|e| ServiceError::Internal(format!("a stored {what}: {e}")))
}

/// One entry of the stock audit log: a stock feed (its rows of one brand) accepted or refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Assigned by the storage when written: increasing, per state file or database.
    #[serde(default)]
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// The key's id (`bootstrap-<n>` for the n-th key of the environment or file; never the key).
    pub key_id: String,
    pub brand: String,
    /// Rows of this brand's stores in the feed.
    pub rows: u32,
    pub accepted: bool,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A backup written by [`Checkout::backup`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Backup {
    /// Where the copy is, on the server's file system.
    pub path: PathBuf,
    pub cells: usize,
    pub reservations: usize,
    pub orders: usize,
}

/// Where durable state lives.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// The embedded store in this directory (created if missing). With `new_state`, an empty or
    /// damaged state file is set aside and an empty state begun instead of refusing to start;
    /// with `quick_repair`, each commit also saves what a start after a crash needs (see
    /// `Embedded::set_quick_repair`).
    Embedded { state_dir: PathBuf, new_state: bool, quick_repair: bool },
    /// A PostgreSQL + PostGIS database shared by replicas, with this many concurrent reservation
    /// transactions from this replica.
    Postgres { url: String, batchers: usize },
}

/// Everything needed to open a checkout service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The dataset directory (stores, DCs, cities; and stock for the embedded store).
    pub data: PathBuf,
    /// The routing rules: the router's, and the defaults of plans and simulations (a plan
    /// request may change the weights, k, splits and DC fallback, never the radii).
    pub routing: crate::settings::Routing,
    pub ledger: LedgerConfig,
    pub storage: StorageConfig,
}

/// Why a service could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Durable state that belongs to another dataset, or cannot be read back.
    #[error("{0}")]
    State(String),
}

/// Opens the checkout service `config` describes: loads the dataset, opens the storage and
/// recovers (embedded) or reads the stock from the database (replica).
pub fn open(config: &ServiceConfig) -> Result<Arc<dyn Checkout>, OpenError> {
    Ok(match &config.storage {
        StorageConfig::Embedded { state_dir, new_state, quick_repair } => {
            let service = EmbeddedCheckout::open(config, state_dir, *new_state)?;
            service.set_quick_repair(*quick_repair);
            Arc::new(service)
        }
        StorageConfig::Postgres { url, batchers } => ReplicaCheckout::connect(config, url, *batchers)?,
    })
}

/// The wall clock, as a [`Timestamp`]: the service routes, counts capacity days and expires
/// reservations at the server's time.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Timestamp(secs as i64)
}
