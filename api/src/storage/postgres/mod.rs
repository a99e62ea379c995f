//! PostgreSQL + PostGIS: one database shared by several replicas, the authority for stock.
//!
//! Each replica routes against its in-memory cache (R-tree and ledger) and then asks the database
//! to reserve: a batch of decisions goes to `omniroute_reserve` in one transaction of conditional
//! updates (`on_hand - reserved - safety_stock >= qty`), so no replica can oversell; a decision the
//! database refuses comes back with the cells' current values and is routed again. Concurrent
//! requests are folded into one batch per round trip (group commit, [`batcher`]). The cache
//! follows the database through LISTEN/NOTIFY ([`listener`]): a trigger announces every stock row
//! change with its version. Feeds, cancels, ships, expiry and reads are single calls
//! ([`queries`]); `omniroute db` prepares a database ([`import`]).
//!
//! All database I/O runs on this module's own small tokio runtime, so callers on any runtime
//! (actix workers, CLI) just await the results.

mod batcher;
pub mod import;
mod listener;
mod queries;

pub use batcher::{Outcome, Pending, PendingCoupons};
pub use queries::{DbFeedError, FeedChange, FeedRowResult, Finished, StoredOrder};

use super::StorageError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use optimizer::model::{Sku, StoreId};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex as AsyncMutex};
use tokio_postgres::NoTls;

/// Connections that run reservation batches concurrently, by default (`serve --db-batchers`).
pub const DEFAULT_BATCHERS: usize = 2;
/// Pool connections beyond the batchers: feeds, reads and expiry.
const OTHER_CONNECTIONS: usize = 8;

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

/// An error with its causes ("db error" alone says nothing; the server's message is the source).
fn chain(e: &(dyn std::error::Error + 'static)) -> StorageError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    StorageError(text)
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// A stock row as the database holds it; `free` is on_hand - reserved (never below zero here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCell {
    pub store_id: StoreId,
    pub sku: Sku,
    pub free: u32,
    pub safety_stock: u32,
    pub version: u32,
}

/// Unit separator: between the fields of a notification item (ids never hold control characters).
const FIELD: char = '\u{1f}';
/// Record separator: between the items of a notification.
pub(super) const ITEM: char = '\u{1e}';

impl DbCell {
    fn new(store_id: &str, sku: &str, free: i64, safety_stock: i64, version: i64) -> Option<DbCell> {
        let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        Some(DbCell {
            store_id: StoreId::parse(store_id).ok()?,
            sku: Sku::parse(sku).ok()?,
            free: clamp(free),
            safety_stock: clamp(safety_stock),
            version: clamp(version),
        })
    }

    /// Parses a notification item: store_id, sku, free, safety_stock, version separated by the
    /// unit separator.
    pub fn parse(item: &str) -> Option<DbCell> {
        let mut it = item.split(FIELD);
        let (store, sku) = (it.next()?, it.next()?);
        let mut num = || it.next()?.parse::<i64>().ok();
        let (free, safety, version) = (num()?, num()?, num()?);
        DbCell::new(store, sku, free, safety, version)
    }
}

/// A change announced by the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Stock(DbCell),
    Store(StoreId),
    /// The notification stream was interrupted: changes may have been missed.
    Resync,
}

struct Inner {
    url: String,
    pool: Pool,
    batches: mpsc::UnboundedSender<batcher::ReserveJob>,
    healthy: AtomicBool,
    /// The database is a Citus coordinator with the tables distributed by region.
    citus: bool,
    /// Citus: the shard of each region's rows (read at start; a region missing, or a shard split
    /// since, only sends its orders through the per-region path).
    shards: rustc_hash::FxHashMap<String, i64>,
}

impl Inner {
    fn shard_of(&self, region: &str) -> Option<i64> {
        self.shards.get(region).copied()
    }
}

impl Inner {
    /// Records a failed call and turns it into a [`StorageError`].
    fn failed(&self, e: tokio_postgres::Error) -> StorageError {
        if e.is_closed() || e.as_db_error().is_none() {
            self.healthy.store(false, Ordering::Relaxed);
        }
        chain(&e)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(|e| {
            self.healthy.store(false, Ordering::Relaxed);
            chain(&e)
        })
    }
}

/// The PostgreSQL backend of one replica.
pub struct Postgres {
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Postgres {
    /// Connects a pool to `url` and starts `batchers` reservation batchers (at least one): each
    /// runs one reservation transaction at a time, folding the orders queued meanwhile into the
    /// next. Across all replicas of one database, about as many batchers as the database has cores
    /// keeps it busy; more make smaller batches that contend for the same rows.
    pub fn connect(url: &str, batchers: usize) -> Result<Postgres, StorageError> {
        let batchers = batchers.max(1);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("omniroute-pg")
            .enable_all()
            .build()
            .map_err(err)?;
        let pg_config =
            tokio_postgres::Config::from_str(url).map_err(|e| err(format!("database url: {e}")))?;
        let manager =
            Manager::from_config(pg_config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = {
            let _guard = rt.enter();
            Pool::builder(manager)
                .max_size(batchers + OTHER_CONNECTIONS)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(err)?
        };
        // Fail at start-up, not on the first order, when the database is unreachable or unmigrated.
        let probe = {
            let pool = pool.clone();
            async move {
                let client = pool.get().await.map_err(|e| chain(&e))?;
                client.query_one("SELECT count(*) FROM stores", &[]).await.map_err(|e| {
                    err(format!("{e}: run `omniroute db migrate` and `omniroute db import` first"))
                })?;
                let citus = import::distributed(&client).await?;
                let mut shards = rustc_hash::FxHashMap::default();
                if citus {
                    client.query_one("SELECT 'omniroute_reserve_s'::regproc", &[]).await.map_err(|e| {
                        err(format!("{e}: run `omniroute db migrate` on the Citus coordinator"))
                    })?;
                    let rows = client
                        .query(
                            "SELECT region, get_shard_id_for_distribution_column('stock', region) \
                             FROM (SELECT DISTINCT region FROM stores) r",
                            &[],
                        )
                        .await
                        .map_err(|e| chain(&e))?;
                    shards = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).collect();
                }
                Ok::<_, StorageError>((citus, shards))
            }
        };
        let handle = rt.handle().clone();
        let (citus, shards) = std::thread::scope(|s| {
            s.spawn(|| handle.block_on(probe)).join().map_err(|_| err("start-up task panicked"))?
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            url: url.to_owned(),
            pool,
            batches: tx,
            healthy: AtomicBool::new(true),
            citus,
            shards,
        });
        let rx = Arc::new(AsyncMutex::new(rx));
        for _ in 0..batchers {
            rt.spawn(batcher::run(inner.clone(), rx.clone()));
        }
        Ok(Postgres { inner, rt: Some(rt) })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.as_ref().expect("runtime lives as long as the backend").handle()
    }

    /// Runs `f` on the backend's runtime and awaits it from any runtime.
    async fn run<T, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        self.handle().spawn(fut).await.map_err(err)?
    }

    /// Runs `f` on the backend's runtime, blocking the calling thread (start-up only).
    fn block_on<T, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        let handle = self.handle().clone();
        std::thread::scope(|s| {
            s.spawn(|| handle.block_on(fut)).join().map_err(|_| err("start-up task panicked"))?
        })
    }

    /// Whether the database is a Citus cluster (tables distributed by region).
    pub fn citus(&self) -> bool {
        self.inner.citus
    }

    /// Whether the last database call went through.
    pub fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.run(|inner| async move {
            let client = inner.client().await?;
            client.simple_query("SELECT 1").await.map_err(|e| inner.failed(e))?;
            inner.healthy.store(true, Ordering::Relaxed);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(fields: &[&str]) -> String {
        fields.join("\u{1f}")
    }

    #[test]
    fn notification_items_parse_and_clamp() {
        assert_eq!(
            DbCell::parse(&item(&["SH,0042", "SKU;7", "5", "1", "3"])),
            Some(DbCell {
                store_id: StoreId::parse("SH,0042").unwrap(),
                sku: Sku::parse("SKU;7").unwrap(),
                free: 5,
                safety_stock: 1,
                version: 3
            })
        );
        // An oversubscribed row (on_hand below reserved) can promise nothing.
        assert_eq!(DbCell::parse(&item(&["12", "7", "-2", "0", "9"])).map(|c| c.free), Some(0));
        assert_eq!(DbCell::parse(&item(&["12", "7", "5", "1"])), None);
        assert_eq!(DbCell::parse(&item(&["12", "7", "x", "1", "3"])), None);
        assert_eq!(DbCell::parse(&item(&["", "7", "5", "1", "3"])), None);
    }
}
