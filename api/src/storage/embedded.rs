//! The embedded store: one redb file under `--state`, written by a single thread that commits
//! whatever has queued up in one transaction (group commit), fsynced (redb's default
//! `Durability::Immediate`) before any caller is told the write is done.
//!
//! Why redb: a pure-Rust, ACID, copy-on-write B-tree in one file, whose crash safety does not
//! depend on a log we would have to replay ourselves; no C toolchain and no server to run.

use super::{CellRecord, ChangeSet, OrderRecord, Recovered, ReservationRecord, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// (store_id, sku) -> (on_hand, safety_stock, version)
const CELLS: TableDefinition<(u32, u32), (u32, u32, u64)> = TableDefinition::new("cells");
/// order_id -> `frame(request, response)`, written once
const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
/// order_id -> (version, reservation JSON)
const RESERVATIONS: TableDefinition<&str, (u32, &[u8])> = TableDefinition::new("reservations");

/// Most queued change sets folded into one transaction.
const MAX_GROUP: usize = 4096;
/// redb's page cache.
const CACHE_BYTES: usize = 256 << 20;

/// A change set encoded on the caller's thread, so the single writer only inserts.
struct WriteJob {
    cells: Vec<CellRecord>,
    orders: Vec<(String, Vec<u8>)>,
    reservations: Vec<(String, u32, Vec<u8>)>,
    done: oneshot::Sender<Result<(), StorageError>>,
}

/// Request and response as raw bytes (no JSON escaping): `[u32 len][request][response]`.
fn frame(request: &str, response: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + request.len() + response.len());
    out.extend_from_slice(&(request.len() as u32).to_le_bytes());
    out.extend_from_slice(request.as_bytes());
    out.extend_from_slice(response);
    out
}

fn unframe(order_id: &str, bytes: &[u8]) -> Result<(String, bytes::Bytes), StorageError> {
    let bad = || StorageError(format!("order {order_id}: corrupt record"));
    let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
    let request = std::str::from_utf8(bytes.get(4..4 + len).ok_or_else(bad)?).map_err(|_| bad())?;
    let response = std::str::from_utf8(&bytes[4 + len..]).map_err(|_| bad())?;
    Ok((request.to_owned(), bytes::Bytes::copy_from_slice(response.as_bytes())))
}

/// The embedded store: one redb file, written by a group-commit thread.
pub struct Embedded {
    db: Arc<Database>,
    queue: Option<mpsc::Sender<WriteJob>>,
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
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        // Make sure every table exists so that readers never see "table does not exist".
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(CELLS).map_err(err)?;
        txn.open_table(ORDERS).map_err(err)?;
        txn.open_table(RESERVATIONS).map_err(err)?;
        txn.commit().map_err(err)?;
        let db = Arc::new(db);
        let (queue, jobs) = mpsc::channel::<WriteJob>();
        let healthy = Arc::new(AtomicBool::new(true));
        let (writer_db, writer_healthy) = (db.clone(), healthy.clone());
        let writer = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || writer(&writer_db, &jobs, &writer_healthy))
            .map_err(err)?;
        Ok(Embedded { db, queue: Some(queue), writer: Some(writer), healthy })
    }
}

fn writer(db: &Database, jobs: &mpsc::Receiver<WriteJob>, healthy: &AtomicBool) {
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

// Kept out of line so that profiles (benches/callgrind.sh) can name the writer's work.
#[inline(never)]
fn write_group(db: &Database, group: &[WriteJob]) -> Result<(), StorageError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let mut cells = txn.open_table(CELLS).map_err(err)?;
        let mut orders = txn.open_table(ORDERS).map_err(err)?;
        let mut reservations = txn.open_table(RESERVATIONS).map_err(err)?;
        for job in group {
            for c in &job.cells {
                let newer =
                    cells.get((c.store_id, c.sku)).map_err(err)?.is_none_or(|old| old.value().2 < c.version);
                if newer {
                    cells.insert((c.store_id, c.sku), (c.on_hand, c.safety_stock, c.version)).map_err(err)?;
                }
            }
            for (id, bytes) in &job.orders {
                orders.insert(id.as_str(), bytes.as_slice()).map_err(err)?;
            }
            for (id, version, bytes) in &job.reservations {
                let newer =
                    reservations.get(id.as_str()).map_err(err)?.is_none_or(|old| old.value().0 < *version);
                if newer {
                    reservations.insert(id.as_str(), (*version, bytes.as_slice())).map_err(err)?;
                }
            }
        }
    }
    txn.commit().map_err(err)
}

impl Embedded {
    /// Streams everything persisted into `visit`: cells, then reservations, then orders.
    pub fn recover(&self, visit: &mut dyn FnMut(Recovered<'_>)) -> Result<(), StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        for row in txn.open_table(CELLS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let ((store_id, sku), (on_hand, safety_stock, version)) = (k.value(), v.value());
            visit(Recovered::Cell(CellRecord { store_id, sku, on_hand, safety_stock, version }));
        }
        for row in txn.open_table(RESERVATIONS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let r: ReservationRecord = serde_json::from_slice(v.value().1).map_err(err)?;
            visit(Recovered::Reservation { order_id: k.value(), reservation: r });
        }
        for row in txn.open_table(ORDERS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let (request, _) = unframe(k.value(), v.value())?;
            visit(Recovered::Order { order_id: k.value(), request: &request });
        }
        Ok(())
    }

    /// Persists `changes` atomically; the future resolves once they are durable (fsynced).
    pub fn commit(
        &self,
        changes: ChangeSet,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (done, wait) = oneshot::channel();
        let orders =
            changes.orders.iter().map(|o| (o.order_id.clone(), frame(&o.request, &o.response))).collect();
        let reservations = changes
            .reservations
            .iter()
            .map(|(id, r)| (id.clone(), r.version(), serde_json::to_vec(r).expect("serialisable")))
            .collect();
        let job = WriteJob { cells: changes.cells, orders, reservations, done };
        let sent = match &self.queue {
            Some(q) => q.send(job).map_err(|_| ()),
            None => Err(()),
        };
        async move {
            sent.map_err(|_| StorageError("the state writer has stopped".into()))?;
            wait.await.map_err(|_| StorageError("the state writer has stopped".into()))?
        }
    }

    /// Reads one answered order.
    pub fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(ORDERS).map_err(err)?;
        let Some(v) = table.get(order_id).map_err(err)? else { return Ok(None) };
        let (request, response) = unframe(order_id, v.value())?;
        Ok(Some(OrderRecord { order_id: order_id.to_owned(), request, response }))
    }

    /// Whether the last write went through.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizer::ledger::ReservationState;

    #[derive(Default)]
    struct Collect {
        cells: Vec<CellRecord>,
        reservations: Vec<(String, ReservationRecord)>,
        orders: Vec<(String, String)>,
    }

    impl Collect {
        fn add(&mut self, item: Recovered<'_>) {
            match item {
                Recovered::Cell(c) => self.cells.push(c),
                Recovered::Reservation { order_id, reservation } => {
                    self.reservations.push((order_id.into(), reservation))
                }
                Recovered::Order { order_id, request } => self.orders.push((order_id.into(), request.into())),
            }
        }
    }

    fn reservation(state: ReservationState) -> ReservationRecord {
        ReservationRecord { state, day: 1, expires_at: 2, holds: vec![(1, 2, 3)] }
    }

    fn order(id: &str) -> OrderRecord {
        OrderRecord {
            order_id: id.into(),
            request: format!("{{\"id\":\"{id}\"}}"),
            response: bytes::Bytes::from_static(b"{\"q\":\"\\\"\"}"),
        }
    }

    #[test]
    fn frames_round_trip_and_corruption_is_detected() {
        let (rq, rs) = unframe("x", &frame("{\"a\":1}", b"{\"b\":\"\\\"\"}")).unwrap();
        assert_eq!((rq.as_str(), &rs[..]), ("{\"a\":1}", &b"{\"b\":\"\\\"\"}"[..]));
        assert!(unframe("x", &[9, 0, 0, 0, b'a']).is_err());
    }

    #[tokio::test]
    async fn writes_survive_reopening_and_newest_version_wins() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Embedded::open(dir.path()).unwrap();
            let c = |v, on_hand| CellRecord { store_id: 1, sku: 2, on_hand, safety_stock: 0, version: v };
            // Written out of order: the newer versions first, then the older ones.
            s.commit(ChangeSet {
                cells: vec![c(5, 50)],
                orders: vec![order("a")],
                reservations: vec![("a".into(), reservation(ReservationState::Committed))],
            })
            .await
            .unwrap();
            s.commit(ChangeSet {
                cells: vec![c(3, 30)],
                reservations: vec![("a".into(), reservation(ReservationState::Held))],
                ..Default::default()
            })
            .await
            .unwrap();
            let many: Vec<_> = (0..100)
                .map(|i| s.commit(ChangeSet { orders: vec![order(&format!("o{i}"))], ..Default::default() }))
                .collect();
            for m in many {
                m.await.unwrap();
            }
        }
        let s = Embedded::open(dir.path()).unwrap();
        let mut got = Collect::default();
        s.recover(&mut |item| got.add(item)).unwrap();
        assert_eq!(got.cells.len(), 1);
        assert_eq!((got.cells[0].on_hand, got.cells[0].version), (50, 5));
        assert_eq!(got.reservations, vec![("a".to_string(), reservation(ReservationState::Committed))]);
        assert_eq!(got.orders.len(), 101);
        assert_eq!(s.order("a").unwrap().unwrap(), order("a"));
        assert!(s.order("nope").unwrap().is_none());
        assert!(s.healthy());
    }
}
