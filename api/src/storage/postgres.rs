//! PostgreSQL + PostGIS: one database shared by several replicas, the authority for stock.
//!
//! Each replica routes against its in-memory cache (R-tree and ledger) and then asks the database
//! to reserve: a batch of decisions goes to `omniroute_reserve` in one transaction of conditional
//! updates (`on_hand - reserved - safety_stock >= qty`), so no replica can oversell; a decision the
//! database refuses comes back with the cells' current values and is routed again. Concurrent
//! requests are folded into one batch per round trip (group commit). The cache follows the
//! database through LISTEN/NOTIFY: a trigger announces every stock row change with its version.
//!
//! All database I/O runs on this module's own small tokio runtime, so callers on any runtime
//! (actix workers, CLI) just await the results.

use super::StorageError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use serde::Serialize;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};
use tokio_postgres::{AsyncMessage, NoTls};

mod migrations {
    refinery::embed_migrations!("migrations");
}

/// Most orders folded into one reservation transaction.
const MAX_BATCH: usize = 512;
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

/// A routing decision to make durable (external ids).
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    #[serde(rename = "id")]
    pub order_id: String,
    /// Sent as a separate text array (the database does not parse it).
    #[serde(skip)]
    pub request: String,
    #[serde(skip)]
    pub response: String,
    pub day: i64,
    #[serde(rename = "exp")]
    pub expires_at: i64,
    /// (store_id, sku, qty); empty for a decision that holds nothing (DC, unfulfillable).
    #[serde(rename = "h")]
    pub holds: Vec<(u32, u32, u32)>,
}

/// A stock row as the database holds it; `free` is on_hand - reserved (never below zero here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbCell {
    pub store_id: u32,
    pub sku: u32,
    pub free: u32,
    pub safety_stock: u32,
    pub version: u32,
}

impl DbCell {
    fn new(store_id: i64, sku: i64, free: i64, safety_stock: i64, version: i64) -> DbCell {
        let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        DbCell {
            store_id: clamp(store_id),
            sku: clamp(sku),
            free: clamp(free),
            safety_stock: clamp(safety_stock),
            version: clamp(version),
        }
    }

    /// Parses a notification item `store_id,sku,free,safety_stock,version`.
    pub fn parse(item: &str) -> Option<DbCell> {
        DbCell::parse_separated(item, ',')
    }

    /// Parses five integers separated by `sep` (`,` in notifications, tab in COPY output).
    fn parse_separated(item: &str, sep: char) -> Option<DbCell> {
        let mut it = item.split(sep).map(i64::from_str);
        let mut next = || it.next()?.ok();
        Some(DbCell::new(next()?, next()?, next()?, next()?, next()?))
    }
}

/// What the database did with one pending decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Durable; the cells as they are now.
    Reserved { cells: Vec<DbCell> },
    /// Stock or capacity was no longer there; nothing changed. The cells as they are, and the
    /// stores that were full with their day's count.
    Refused { cells: Vec<DbCell>, full: Vec<(u32, u32)> },
    /// The order was answered before (by any replica): that answer.
    Existing { request: String, response: String },
}

/// A change announced by the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Stock(DbCell),
    Store(u32),
    /// The notification stream was interrupted: changes may have been missed.
    Resync,
}

/// One stock feed row for the database.
#[derive(Debug, Clone, Copy)]
pub enum FeedChange {
    Set { on_hand: u32, safety_stock: Option<u32> },
    Add(i64),
}

/// A stock feed row's result.
#[derive(Debug, Clone, Copy)]
pub struct FeedRowResult {
    pub on_hand: u32,
    pub reserved: u32,
    pub safety_stock: u32,
    pub version: u32,
    pub new_row: bool,
}

/// Why a feed was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeedError {
    #[error("row {row}: on_hand would go below zero")]
    Negative { row: usize },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A reservation's state as stored: 0 none, 1 held, 2 committed, 3 released, 4 expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub state: i16,
    pub expires_at: Option<i64>,
    pub changed: bool,
}

/// An answered order as stored.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub request: String,
    pub response: String,
    /// (state 1..4, expires_at) when the decision reserved something.
    pub reservation: Option<(i16, i64)>,
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, StorageError>>;
/// Queued reservation work: one caller's orders and where to send their outcomes.
type Job = (Vec<Pending>, Reply);

struct Inner {
    url: String,
    pool: Pool,
    batches: mpsc::UnboundedSender<Job>,
    healthy: AtomicBool,
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

/// Connects once, outside any pool (migrations, import, the listener).
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, StorageError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| StorageError(format!("connecting to {url}: {}", chain(&e).0)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::warn!("database connection closed: {e}");
        }
    });
    Ok(client)
}

/// Applies the versioned migrations that are missing; returns the versions applied.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<String>, StorageError> {
    let report = migrations::migrations::runner().run_async(client).await.map_err(|e| chain(&e))?;
    Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
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
        let (tx, rx) = mpsc::unbounded_channel();
        let inner =
            Arc::new(Inner { url: url.to_owned(), pool, batches: tx, healthy: AtomicBool::new(true) });
        let rx = Arc::new(AsyncMutex::new(rx));
        for _ in 0..batchers {
            rt.spawn(batcher(inner.clone(), rx.clone()));
        }
        let pg = Postgres { inner, rt: Some(rt) };
        // Fail at start-up, not on the first order, when the database is unreachable or unmigrated.
        pg.block_on(|inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            client.query_one("SELECT count(*) FROM stores", &[]).await.map_err(|e| {
                err(format!("{e}: run `omniroute db migrate` and `omniroute db import` first"))
            })?;
            Ok(())
        })?;
        Ok(pg)
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

    /// Whether the last database call went through.
    pub fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.run(|inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            client.simple_query("SELECT 1").await.map_err(|e| inner.failed(e))?;
            inner.healthy.store(true, Ordering::Relaxed);
            Ok(())
        })
        .await
    }

    /// Every store's id and location (lon, lat) as the database holds it (PostGIS geography, read
    /// as EWKB through the `postgis` crate). Blocks (start-up).
    pub fn store_locations(&self) -> Result<Vec<(u32, f64, f64)>, StorageError> {
        self.block_on(|inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            let rows = client
                .query("SELECT store_id, geom::geometry FROM stores", &[])
                .await
                .map_err(|e| chain(&e))?;
            Ok(rows
                .iter()
                .map(|r| {
                    let p: postgis::ewkb::Point = r.get(1);
                    (r.get::<_, i32>(0) as u32, p.x, p.y)
                })
                .collect())
        })
    }

    /// Every stock row (external ids), read in one COPY. Blocks (start-up and resync).
    pub fn stock_snapshot(&self) -> Result<Vec<DbCell>, StorageError> {
        self.block_on(|inner| async move { snapshot(&inner).await })
    }

    /// Starts listening for stock and store changes; `apply` runs on the backend's runtime for
    /// every notice, in commit order. Returns once the first LISTEN is in place, so that a
    /// snapshot read afterwards misses nothing.
    pub fn listen(&self, apply: Arc<dyn Fn(Notice) + Send + Sync>) -> Result<(), StorageError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let url = self.inner.url.clone();
        self.handle().spawn(async move {
            let mut ready = Some(ready_tx);
            let mut first = true;
            loop {
                match listen_once(&url, &apply, &mut ready, first).await {
                    Ok(()) => log::warn!("notification stream ended; reconnecting"),
                    Err(e) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(Err(e));
                            return;
                        }
                        log::warn!("notification stream lost ({e}); reconnecting");
                    }
                }
                first = false;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ready_rx.recv().map_err(err)?
    }

    /// Makes `orders` durable (each all or nothing), folded with other callers' orders into as few
    /// transactions as possible. One outcome per order, in order.
    pub async fn reserve(&self, orders: Vec<Pending>) -> Result<Vec<Outcome>, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.inner.batches.send((orders, tx)).map_err(|_| err("reservation batchers stopped"))?;
        rx.await.map_err(|_| err("reservation batch dropped"))?
    }

    /// Applies a stock feed, all rows or none. `rows` are (store_id, sku, change).
    pub async fn feed(&self, rows: Vec<(u32, u32, FeedChange)>) -> Result<Vec<FeedRowResult>, FeedError> {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(store, sku, change)| match change {
                FeedChange::Set { on_hand, safety_stock } => {
                    serde_json::json!([store, sku, on_hand, serde_json::Value::Null, safety_stock])
                }
                FeedChange::Add(d) => serde_json::json!([store, sku, serde_json::Value::Null, d, null]),
            })
            .collect();
        let json = serde_json::to_string(&json).map_err(err)?;
        self.run(move |inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            let sql = "SELECT on_hand, reserved, safety_stock, version, new_row FROM omniroute_feed($1::text::jsonb)";
            Ok(match client.query(sql, &[&json]).await {
                Ok(rows) => Ok(rows
                    .iter()
                    .map(|r| FeedRowResult {
                        on_hand: r.get::<_, i32>(0).max(0) as u32,
                        reserved: r.get::<_, i32>(1).max(0) as u32,
                        safety_stock: r.get::<_, i32>(2).max(0) as u32,
                        version: r.get::<_, i64>(3).clamp(0, i64::from(u32::MAX)) as u32,
                        new_row: r.get(4),
                    })
                    .collect()),
                Err(e) if sqlstate(&e) == Some("OR001") => {
                    let row = e.as_db_error().and_then(|d| d.detail()).and_then(|d| d.parse().ok()).unwrap_or(0);
                    Err(FeedError::Negative { row })
                }
                Err(e) => Err(FeedError::Storage(inner.failed(e))),
            })
        })
        .await?
    }

    /// Ends a held reservation: 2 committed, 3 released. Idempotent.
    pub async fn finish(&self, order_id: &str, target: i16) -> Result<Finished, StorageError> {
        let order_id = order_id.to_owned();
        self.run(move |inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            let row = client
                .query_one(
                    "SELECT state, expires_at, changed FROM omniroute_finish($1, $2)",
                    &[&order_id, &target],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(Finished { state: row.get(0), expires_at: row.get(1), changed: row.get(2) })
        })
        .await
    }

    /// Reads an answered order and its reservation state.
    pub async fn order(&self, order_id: &str) -> Result<Option<StoredOrder>, StorageError> {
        let order_id = order_id.to_owned();
        self.run(move |inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            let row = client
                .query_opt(
                    "SELECT o.request, o.response, r.state, r.expires_at
                     FROM orders o LEFT JOIN reservations r USING (order_id) WHERE o.order_id = $1",
                    &[&order_id],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(row.map(|r| StoredOrder {
                request: r.get(0),
                response: r.get(1),
                reservation: r.get::<_, Option<i16>>(2).zip(r.get::<_, Option<i64>>(3)),
            }))
        })
        .await
    }

    /// One stock row: (on_hand, reserved, safety_stock).
    pub async fn stock_level(
        &self,
        store_id: u32,
        sku: u32,
    ) -> Result<Option<(u32, u32, u32)>, StorageError> {
        self.run(move |inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            let row = client
                .query_opt(
                    "SELECT on_hand, reserved, safety_stock FROM stock WHERE store_id = $1 AND sku = $2",
                    &[&(store_id as i32), &(sku as i32)],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(row.map(|r| {
                let v = |i| r.get::<_, i32>(i).max(0) as u32;
                (v(0), v(1), v(2))
            }))
        })
        .await
    }

    /// Expires held reservations due at `now`; returns how many.
    pub async fn expire(&self, now: i64) -> Result<u64, StorageError> {
        self.run(move |inner| async move {
            let client = inner.pool.get().await.map_err(|e| chain(&e))?;
            let mut total = 0u64;
            loop {
                let row = client
                    .query_one("SELECT omniroute_expire($1, 1000)", &[&now])
                    .await
                    .map_err(|e| inner.failed(e))?;
                let n = row.get::<_, i32>(0).max(0) as u64;
                total += n;
                if n < 1000 {
                    return Ok(total);
                }
            }
        })
        .await
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
}

async fn snapshot(inner: &Inner) -> Result<Vec<DbCell>, StorageError> {
    let client = inner.pool.get().await.map_err(|e| chain(&e))?;
    let stream = client
        .copy_out(
            "COPY (SELECT store_id, sku, on_hand - reserved, safety_stock, version FROM stock) TO STDOUT",
        )
        .await
        .map_err(|e| chain(&e))?;
    futures_util::pin_mut!(stream);
    let mut cells = Vec::new();
    let mut rest: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| chain(&e))?;
        rest.extend_from_slice(&chunk);
        let end = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in rest[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = std::str::from_utf8(line).map_err(err)?;
            let cell = DbCell::parse_separated(text, '\t')
                .ok_or_else(|| err(format!("unreadable stock row `{text}`")))?;
            cells.push(cell);
        }
        rest.drain(..end);
    }
    Ok(cells)
}

async fn listen_once(
    url: &str,
    apply: &Arc<dyn Fn(Notice) + Send + Sync>,
    ready: &mut Option<std::sync::mpsc::Sender<Result<(), StorageError>>>,
    first: bool,
) -> Result<(), StorageError> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.map_err(err)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let pump = tokio::spawn(async move {
        futures_util::pin_mut!(messages);
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    log::warn!("listener connection: {e}");
                    break;
                }
            }
        }
    });
    client.batch_execute("LISTEN omniroute_stock; LISTEN omniroute_stores").await.map_err(err)?;
    if let Some(tx) = ready.take() {
        let _ = tx.send(Ok(()));
    }
    if !first {
        apply(Notice::Resync);
    }
    while let Some(n) = rx.recv().await {
        match n.channel() {
            "omniroute_stock" => {
                for item in n.payload().split(';') {
                    match DbCell::parse(item) {
                        Some(cell) => apply(Notice::Stock(cell)),
                        None => log::warn!("unreadable stock notification item `{item}`"),
                    }
                }
            }
            "omniroute_stores" => {
                if let Ok(id) = n.payload().parse() {
                    apply(Notice::Store(id));
                }
            }
            _ => {}
        }
    }
    pump.abort();
    drop(client);
    Ok(())
}

/// Takes queued batches and runs them, folding concurrent callers into one transaction.
async fn batcher(inner: Arc<Inner>, rx: Arc<AsyncMutex<mpsc::UnboundedReceiver<Job>>>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut n = first.0.len();
            jobs.push(first);
            while n < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.0.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let orders: Vec<&Pending> = jobs.iter().flat_map(|(o, _)| o.iter()).collect();
        let result = reserve_batch(&inner, &orders).await;
        match result {
            Ok(mut outcomes) => {
                inner.healthy.store(true, Ordering::Relaxed);
                for (orders, reply) in jobs.into_iter().rev() {
                    let mine = outcomes.split_off(outcomes.len() - orders.len());
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                for (_, reply) in jobs {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One `omniroute_reserve` call, retried when the database aborts it for a deadlock or
/// serialization failure (nothing was applied then).
async fn reserve_batch(inner: &Inner, orders: &[&Pending]) -> Result<Vec<Outcome>, StorageError> {
    let json = serde_json::to_string(orders).map_err(err)?;
    let requests: Vec<&str> = orders.iter().map(|o| o.request.as_str()).collect();
    let responses: Vec<&str> = orders.iter().map(|o| o.response.as_str()).collect();
    let client = inner.pool.get().await.map_err(|e| {
        inner.healthy.store(false, Ordering::Relaxed);
        err(e)
    })?;
    let sql = "SELECT ord, outcome, cells::text, full_stores::text, request, response \
               FROM omniroute_reserve($1::text::jsonb, $2, $3)";
    let stmt = client.prepare_cached(sql).await.map_err(|e| inner.failed(e))?;
    let mut attempt = 0;
    let rows = loop {
        match client.query(&stmt, &[&json, &requests, &responses]).await {
            Ok(rows) => break rows,
            Err(e) if matches!(sqlstate(&e), Some("40P01" | "40001")) && attempt < 5 => {
                attempt += 1;
                log::warn!("reservation batch retried after {e}");
            }
            Err(e) => return Err(inner.failed(e)),
        }
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; orders.len()];
    for r in rows {
        let ord = r.get::<_, i32>(0) as usize;
        let outcome = match r.get::<_, &str>(1) {
            "existing" => Outcome::Existing { request: r.get(4), response: r.get(5) },
            kind => {
                let cells: Vec<(i64, i64, i64, i64, i64)> =
                    serde_json::from_str(r.get::<_, &str>(2)).map_err(err)?;
                let cells = cells.into_iter().map(|(a, b, c, d, e)| DbCell::new(a, b, c, d, e)).collect();
                if kind == "reserved" {
                    Outcome::Reserved { cells }
                } else {
                    let full: Vec<(u32, u32)> = serde_json::from_str(r.get::<_, &str>(3)).map_err(err)?;
                    Outcome::Refused { cells, full }
                }
            }
        };
        if let Some(slot) = outcomes.get_mut(ord) {
            *slot = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.ok_or_else(|| err(format!("the database gave no outcome for order {}", orders[i].order_id)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_items_parse_and_clamp() {
        assert_eq!(
            DbCell::parse("12,7,5,1,3"),
            Some(DbCell { store_id: 12, sku: 7, free: 5, safety_stock: 1, version: 3 })
        );
        // An oversubscribed row (on_hand below reserved) can promise nothing.
        assert_eq!(DbCell::parse("12,7,-2,0,9").map(|c| c.free), Some(0));
        assert_eq!(DbCell::parse("12,7,5,1"), None);
        assert_eq!(DbCell::parse("12,x,5,1,3"), None);
    }

    #[test]
    fn pending_json_leaves_requests_and_responses_out() {
        let p = Pending {
            order_id: "o1".into(),
            request: "{\"big\":1}".into(),
            response: "{\"bigger\":2}".into(),
            day: 20_000,
            expires_at: 99,
            holds: vec![(1, 2, 3)],
        };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"id":"o1","day":20000,"exp":99,"h":[[1,2,3]]}"#);
    }
}
