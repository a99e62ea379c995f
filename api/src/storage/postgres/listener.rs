//! The cache's feed: LISTEN for the stock and store notifications the database's triggers send,
//! reconnecting (and asking for a full reread) when the stream drops.

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
