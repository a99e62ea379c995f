//! The cache's feed: LISTEN for the stock and store notifications the database's triggers send,
//! reconnecting (and asking for a full reread) when the stream drops. On Citus (no triggers: a
//! NOTIFY cannot commit in two phases) the region functions log their changes in `stock_changes`,
//! and the feed reads the recent rows a few times a second.

use super::{err, DbCell, Notice, Postgres, StorageError};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

impl Postgres {
    /// Starts listening for stock and store changes; `apply` runs on the backend's runtime for
    /// every notice, in commit order. Returns once the first LISTEN is in place, so that a
    /// snapshot read afterwards misses nothing.
    pub fn listen(&self, apply: Arc<dyn Fn(Notice) + Send + Sync>) -> Result<(), StorageError> {
        if self.inner.citus {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            self.handle().spawn(poll_changes(self.inner.clone(), apply, ready_tx));
            return ready_rx.recv().map_err(err)?;
        }
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
                for item in n.payload().split(super::ITEM) {
                    match DbCell::parse(item) {
                        Some(cell) => apply(Notice::Stock(cell)),
                        None => log::warn!("unreadable stock notification item `{item}`"),
                    }
                }
            }
            "omniroute_stores" => {
                if let Ok(id) = optimizer::model::StoreId::parse(n.payload()) {
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

/// How often a replica on Citus reads the change log.
const POLL: Duration = Duration::from_millis(250);
/// Each read goes this far back before the previous one (a transaction that wrote its row
/// before that read began but committed after it is read the next time; versions make a second
/// reading harmless).
const OVERLAP_S: f64 = 1.0;
/// Change rows older than this are pruned; a replica cut off longer rereads all stock.
const KEEP_S: f64 = 60.0;

async fn poll_changes(
    inner: Arc<super::Inner>,
    apply: Arc<dyn Fn(Notice) + Send + Sync>,
    ready: std::sync::mpsc::Sender<Result<(), StorageError>>,
) {
    let mut ready = Some(ready);
    let mut since: Option<f64> = None;
    let mut last_ok = std::time::Instant::now();
    let mut last_prune = std::time::Instant::now();
    let mut failing = false;
    loop {
        match poll_once(&inner, since).await {
            Ok((now, items)) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(()));
                }
                if failing {
                    log::info!("stock change log readable again");
                    failing = false;
                    if last_ok.elapsed().as_secs_f64() > KEEP_S - 2.0 * OVERLAP_S {
                        apply(Notice::Resync);
                    }
                }
                for item in items.iter().flat_map(|i| i.split(super::ITEM)) {
                    match DbCell::parse(item) {
                        Some(cell) => apply(Notice::Stock(cell)),
                        None => log::warn!("unreadable stock change item `{item}`"),
                    }
                }
                since = Some(now - OVERLAP_S);
                last_ok = std::time::Instant::now();
                if last_prune.elapsed() > Duration::from_secs(10) {
                    last_prune = std::time::Instant::now();
                    if let Ok(client) = inner.pool.get().await {
                        let sql = format!(
                            "DELETE FROM stock_changes WHERE at < now() - interval '{KEEP_S} seconds'"
                        );
                        if let Err(e) = client.batch_execute(&sql).await {
                            log::warn!("pruning the stock change log: {}", super::chain(&e));
                        }
                    }
                }
            }
            Err(e) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(e));
                    return;
                }
                if !failing {
                    log::warn!("reading the stock change log: {e}; retrying");
                    failing = true;
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The database's clock (Unix seconds) and the change rows written since `since`.
async fn poll_once(inner: &super::Inner, since: Option<f64>) -> Result<(f64, Vec<String>), StorageError> {
    let client = inner.pool.get().await.map_err(|e| super::chain(&e))?;
    let now: f64 = client
        .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
        .await
        .map_err(|e| super::chain(&e))?
        .get(0);
    let Some(since) = since else { return Ok((now, Vec::new())) };
    let rows = client
        .query("SELECT items FROM stock_changes WHERE at > to_timestamp($1)", &[&since])
        .await
        .map_err(|e| super::chain(&e))?;
    Ok((now, rows.iter().map(|r| r.get(0)).collect()))
}
