//! The embedded store: one redb file under `--state`, written by a single thread that commits
//! whatever has queued up in one transaction (group commit), fsynced (redb's default
//! `Durability::Immediate`) before any caller is told the write is done.
//!
//! Why redb: a pure-Rust, ACID, copy-on-write B-tree in one file, with crash safety that does not
//! depend on a write-ahead log we would have to replay ourselves; no C toolchain and no server.

use super::{CellRecord, ChangeSet, Durable, OrderRecord, Snapshot, Storage, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// (store_id, sku) -> (on_hand, safety_stock, version)
const CELLS: TableDefinition<(u32, u32), (u32, u32, u64)> = TableDefinition::new("cells");
/// order_id -> JSON of `OrderRecord`
const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");

/// Most queued change sets folded into one transaction.
const MAX_GROUP: usize = 4096;

struct Job {
    changes: ChangeSet,
    done: oneshot::Sender<Result<(), StorageError>>,
}

/// The redb-backed [`Storage`].
pub struct Embedded {
    db: Arc<Database>,
    queue: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    healthy: Arc<AtomicBool>,
}

impl Drop for Embedded {
    /// Lets the writer finish what is queued, then closes the database.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

impl Embedded {
    /// Opens (or creates) `state.redb` in `dir` and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Embedded, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        // Make sure both tables exist so that readers never see "table does not exist".
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(CELLS).map_err(err)?;
        txn.open_table(ORDERS).map_err(err)?;
        txn.commit().map_err(err)?;
        let db = Arc::new(db);
        let (queue, jobs) = mpsc::channel::<Job>();
        let healthy = Arc::new(AtomicBool::new(true));
        let (writer_db, writer_healthy) = (db.clone(), healthy.clone());
        let writer = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || writer(&writer_db, &jobs, &writer_healthy))
            .map_err(err)?;
        Ok(Embedded { db, queue: Some(queue), writer: Some(writer), healthy })
    }
}

fn writer(db: &Database, jobs: &mpsc::Receiver<Job>, healthy: &AtomicBool) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let result = write_group(db, &group);
        healthy.store(result.is_ok(), Ordering::Relaxed);
        if let Err(e) = &result {
            log::error!("state write of {} change sets failed: {e}", group.len());
        }
        for job in group {
            let _ = job.done.send(result.clone());
        }
    }
}

fn write_group(db: &Database, group: &[Job]) -> Result<(), StorageError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let mut cells = txn.open_table(CELLS).map_err(err)?;
        let mut orders = txn.open_table(ORDERS).map_err(err)?;
        for job in group {
            for c in &job.changes.cells {
                let newer =
                    cells.get((c.store_id, c.sku)).map_err(err)?.is_none_or(|old| old.value().2 < c.version);
                if newer {
                    cells.insert((c.store_id, c.sku), (c.on_hand, c.safety_stock, c.version)).map_err(err)?;
                }
            }
            for o in &job.changes.orders {
                let newer = match orders.get(o.order_id.as_str()).map_err(err)? {
                    None => true,
                    Some(old) => {
                        serde_json::from_slice::<OrderRecord>(old.value()).map_err(err)?.version < o.version
                    }
                };
                if newer {
                    let bytes = serde_json::to_vec(o).map_err(err)?;
                    orders.insert(o.order_id.as_str(), bytes.as_slice()).map_err(err)?;
                }
            }
        }
    }
    txn.commit().map_err(err)
}

impl Storage for Embedded {
    fn load(&self) -> Result<Snapshot, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let mut snapshot = Snapshot::default();
        for row in txn.open_table(CELLS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let ((store_id, sku), (on_hand, safety_stock, version)) = (k.value(), v.value());
            snapshot.cells.push(CellRecord { store_id, sku, on_hand, safety_stock, version });
        }
        for row in txn.open_table(ORDERS).map_err(err)?.iter().map_err(err)? {
            let (_, v) = row.map_err(err)?;
            snapshot.orders.push(serde_json::from_slice(v.value()).map_err(err)?);
        }
        Ok(snapshot)
    }

    fn commit(&self, changes: ChangeSet) -> Durable {
        let (done, wait) = oneshot::channel();
        let sent = match &self.queue {
            Some(q) => q.send(Job { changes, done }).map_err(|_| ()),
            None => Err(()),
        };
        Box::pin(async move {
            sent.map_err(|_| StorageError("the state writer has stopped".into()))?;
            wait.await.map_err(|_| StorageError("the state writer has stopped".into()))?
        })
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ReservationRecord;
    use optimizer::ledger::ReservationState;

    fn order(id: &str, version: u32, state: ReservationState) -> OrderRecord {
        OrderRecord {
            order_id: id.into(),
            version,
            request: "{}".into(),
            response: format!("{{\"v\":{version}}}"),
            reservation: Some(ReservationRecord { state, day: 1, expires_at: 2, holds: vec![(1, 2, 3)] }),
        }
    }

    #[tokio::test]
    async fn writes_survive_reopening_and_newest_version_wins() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Embedded::open(dir.path()).unwrap();
            let c = |v, on_hand| CellRecord { store_id: 1, sku: 2, on_hand, safety_stock: 0, version: v };
            // Written out of order: version 5 first, then the older version 3.
            s.commit(ChangeSet {
                cells: vec![c(5, 50)],
                orders: vec![order("a", 2, ReservationState::Committed)],
            })
            .await
            .unwrap();
            s.commit(ChangeSet {
                cells: vec![c(3, 30)],
                orders: vec![order("a", 1, ReservationState::Held)],
            })
            .await
            .unwrap();
            let many: Vec<_> = (0..100)
                .map(|i| {
                    s.commit(ChangeSet {
                        orders: vec![order(&format!("o{i}"), 1, ReservationState::Held)],
                        ..Default::default()
                    })
                })
                .collect();
            for m in many {
                m.await.unwrap();
            }
        }
        let s = Embedded::open(dir.path()).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.cells.len(), 1);
        assert_eq!((snap.cells[0].on_hand, snap.cells[0].version), (50, 5));
        assert_eq!(snap.orders.len(), 101);
        let a = snap.orders.iter().find(|o| o.order_id == "a").unwrap();
        assert_eq!(a.reservation.as_ref().unwrap().state, ReservationState::Committed);
        assert!(s.healthy());
    }
}
