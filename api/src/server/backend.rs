//! Where state lives: the embedded store (the in-memory ledger is the authority, redb its durable
//! log) or PostgreSQL (the database is the authority, the ledger a cache kept fresh by
//! notifications).

use super::state::AppState;
use crate::storage::postgres::{DbCell, Notice, Postgres};
use crate::storage::Storage;
use optimizer::model::{Sku, StoreId};
use optimizer::Engine;
use parking_lot::Mutex;
use std::sync::{Arc, Weak};

/// The state backend of one replica.
pub enum Backend {
    Embedded(Box<dyn Storage>),
    Postgres(Postgres),
}

impl Backend {
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Embedded(s) => s.kind(),
            Backend::Postgres(_) => "postgres",
        }
    }

    pub fn healthy(&self) -> bool {
        match self {
            Backend::Embedded(s) => s.healthy(),
            Backend::Postgres(p) => p.healthy(),
        }
    }
}

/// Applies a database cell to the cache. Unknown stores or SKUs (changed behind the service's
/// back) are skipped: the replica's network comes from its dataset.
pub fn sync_cell(engine: &Engine, c: &DbCell) -> bool {
    let net = engine.network();
    match (net.store_idx(StoreId(c.store_id)), net.catalog().get(Sku(c.sku))) {
        (Some(store), Some(sku)) => engine.sync_cell(store, sku, c.free, c.safety_stock, c.version),
        _ => {
            log::debug!("stock change for store {} sku {} outside this replica's network", c.store_id, c.sku);
            false
        }
    }
}

enum SinkState {
    /// Start-up: the cache is not built yet; notices wait.
    Buffering(Vec<Notice>),
    Live(Weak<AppState>),
}

/// Receives the database's notifications and applies them to the cache once it exists.
pub struct CacheSink {
    state: Mutex<SinkState>,
}

impl CacheSink {
    pub fn new() -> Arc<CacheSink> {
        Arc::new(CacheSink { state: Mutex::new(SinkState::Buffering(Vec::new())) })
    }

    /// The callback for [`Postgres::listen`].
    pub fn callback(self: &Arc<Self>) -> Arc<dyn Fn(Notice) + Send + Sync> {
        let sink = self.clone();
        Arc::new(move |n| sink.notice(n))
    }

    /// Starts applying notices to `state`'s cache, first the ones that arrived meanwhile.
    pub fn go_live(&self, state: &Arc<AppState>) {
        let mut s = self.state.lock();
        if let SinkState::Buffering(buffered) = &mut *s {
            let buffered = std::mem::take(buffered);
            for n in buffered {
                apply(state, n);
            }
        }
        *s = SinkState::Live(Arc::downgrade(state));
    }

    fn notice(&self, n: Notice) {
        let mut s = self.state.lock();
        match &mut *s {
            SinkState::Buffering(v) => v.push(n),
            SinkState::Live(weak) => {
                if let Some(state) = weak.upgrade() {
                    apply(&state, n);
                }
            }
        }
    }
}

fn apply(state: &Arc<AppState>, n: Notice) {
    match n {
        Notice::Stock(cell) => {
            if sync_cell(&state.engine, &cell) {
                state.metrics.cache_updates.inc();
            }
        }
        Notice::Store(id) => log::warn!(
            "store {id} changed in the database; store attributes come from the dataset: restart replicas to pick them up"
        ),
        Notice::Resync => {
            // Changes may have been missed while the stream was down: reread every cell (the
            // versions keep newer values already applied).
            let weak = Arc::downgrade(state);
            std::thread::spawn(move || {
                let Some(state) = weak.upgrade() else { return };
                let Backend::Postgres(pg) = &state.backend else { return };
                match pg.stock_snapshot() {
                    Ok(cells) => {
                        let n = cells.iter().filter(|c| sync_cell(&state.engine, c)).count();
                        log::info!("cache resynchronised: {n} of {} cells changed", cells.len());
                    }
                    Err(e) => log::error!("cache resync failed: {e}"),
                }
            });
        }
    }
}
