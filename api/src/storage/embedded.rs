//! The embedded store: one redb file under `--state`, written by a single thread that commits
//! whatever has queued up in one transaction (group commit), fsynced (redb's default
//! `Durability::Immediate`) before any caller is told the write is done.
//!
//! Why redb: a pure-Rust, ACID, copy-on-write B-tree in one file, whose crash safety does not
//! depend on a log we would have to replay ourselves; no C toolchain and no server to run.

use super::{CellRecord, ChangeSet, OrderRecord, Recovered, ReservationRecord, StorageError};
use optimizer::model::{Sku, StoreId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// (store_id, sku) -> (on_hand, safety_stock, version)
const CELLS: TableDefinition<(&str, &str), (u32, u32, u64)> = TableDefinition::new("stock_cells");
/// The cells of state files written when ids were numbers; moved into [`CELLS`] (as the numbers'
/// decimal text) when such a file is opened.
const NUMBERED_CELLS: TableDefinition<(u32, u32), (u32, u32, u64)> = TableDefinition::new("cells");
/// order_id -> `frame(request, response)`, written once
const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
/// order_id -> (version, reservation JSON), one row for every answered order: its reservation
/// in its latest state (version 1 held, 2 ended), or `(0, [])` when it reserved nothing. What
/// start-up reads: every id, and the held reservations (a scan of [`ORDERS`] would read every
/// body's pages).
const RESERVATIONS: TableDefinition<&str, (u32, &[u8])> = TableDefinition::new("reservations");
/// Version of the [`RESERVATIONS`] row of an order that reserved nothing.
const NO_RESERVATION: u32 = 0;
/// (local day, store_id) -> orders the store took that day (held and committed reservations)
const STORE_DAYS: TableDefinition<(i64, &str), u32> = TableDefinition::new("store_days");
/// "dataset" -> the fingerprint of the dataset the state belongs to; "layout" -> [`LAYOUT`]
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// The stock audit log: entries (JSON) by sequence number, from 1.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("stock_audit");
/// API keys managed over the API, by key id: the record as JSON (the key's hash, never the key).
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// Coupon campaigns by id: the record as JSON.
const CAMPAIGNS: TableDefinition<u32, &[u8]> = TableDefinition::new("campaigns");
/// Customers' captured coupons: (customer id, campaign id) -> the wallet entry as JSON.
const WALLETS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("wallets");
/// Coupons redeemed with orders: order id -> the redemption as JSON (written with the order's
/// reservation, rewritten as ended with its cancel or expiry).
const REDEMPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("redemptions");
/// Events not yet published, one row per write group that had any: the first event's sequence
/// number, and the group's events framed ([`frame_events`]).
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Broker messages applied, by message id: when (unix seconds).
const FEED_MESSAGES: TableDefinition<&str, i64> = TableDefinition::new("feed_messages");
/// [`META`] keys: the next event's sequence number, and this state's event source id.
const NEXT_EVENT: &str = "next_event_seq";
const EVENT_SOURCE: &str = "event_source";

/// The layout of the tables: "4" since every answered order has a [`RESERVATIONS`] row and
/// [`STORE_DAYS`] exists. A file of another layout is brought up to it when opened.
const LAYOUT: &str = "4";
/// Tables an earlier layout derived from the records, dropped when such a file is opened.
const DERIVED: [&str; 3] = ["held", "answered", "store_days"];

/// The state file's name inside `--state`.
pub const STATE_FILE: &str = "state.redb";

/// Most queued change sets folded into one transaction.
const MAX_GROUP: usize = 4096;
/// redb's page cache.
const CACHE_BYTES: usize = 256 << 20;

/// A change set encoded on the caller's thread, so the single writer only inserts.
struct WriteJob {
    cells: Vec<CellRecord>,
    orders: Vec<(String, Vec<u8>)>,
    reservations: Vec<ReservationJob>,
    /// Key records to insert or replace (id, JSON).
    keys: Vec<(String, Vec<u8>)>,
    /// Campaign records to insert or replace (id, JSON).
    campaigns: Vec<(u32, Vec<u8>)>,
    /// Wallet entries to insert or replace (customer id, campaign id, JSON).
    wallet: Vec<(String, u32, Vec<u8>)>,
    /// Redemptions to insert or replace (order id, JSON).
    redemptions: Vec<(String, Vec<u8>)>,
    /// Audit entries to append (JSON).
    audit: Vec<Vec<u8>>,
    /// Outbox events, framed ([`frame_events`]).
    events: Vec<u8>,
    /// A broker message id to record as applied.
    message: Option<String>,
    done: oneshot::Sender<Result<(), StorageError>>,
}

impl WriteJob {
    fn empty(done: oneshot::Sender<Result<(), StorageError>>) -> WriteJob {
        WriteJob {
            cells: Vec::new(),
            orders: Vec::new(),
            reservations: Vec::new(),
            keys: Vec::new(),
            campaigns: Vec::new(),
            wallet: Vec::new(),
            redemptions: Vec::new(),
            audit: Vec::new(),
            events: Vec::new(),
            message: None,
            done,
        }
    }
}

/// The next event's sequence number (1 in a new state).
fn next_event(meta: &redb::Table<&str, &str>) -> Result<u64, StorageError> {
    match meta.get(NEXT_EVENT).map_err(err)? {
        None => Ok(1),
        Some(v) => v.value().parse().map_err(|_| err(format!("meta {NEXT_EVENT} is not a number"))),
    }
}

/// One reservation record to write, with what the writer needs to keep [`STORE_DAYS`] in step.
struct ReservationJob {
    order_id: String,
    version: u32,
    json: Vec<u8>,
    day: i64,
    stores: Vec<String>,
    takes_slot: bool,
}

impl ReservationJob {
    /// The row of an answered order that reserved nothing.
    fn none(order_id: String) -> ReservationJob {
        ReservationJob {
            order_id,
            version: NO_RESERVATION,
            json: vec![],
            day: 0,
            stores: vec![],
            takes_slot: false,
        }
    }

    fn new(order_id: String, r: &ReservationRecord) -> ReservationJob {
        ReservationJob {
            order_id,
            version: r.version(),
            json: serde_json::to_vec(r).expect("serialisable"),
            day: r.day,
            stores: r.stores().into_iter().map(|s| s.to_string()).collect(),
            takes_slot: r.takes_slot(),
        }
    }
}

/// Changes to the orders stores took, by (local day, store_id), summed over a transaction so
/// that each row is written once however many of its orders the transaction carries.
#[derive(Default)]
struct DayCounts(rustc_hash::FxHashMap<(i64, String), i32>);

impl DayCounts {
    /// Adds `delta` (+1 or -1) to the orders each of `stores` took on `day`.
    fn add<'a>(&mut self, day: i64, stores: impl Iterator<Item = &'a str>, delta: i32) {
        for store in stores {
            *self.0.entry((day, store.to_owned())).or_default() += delta;
        }
    }

    fn write(self, days: &mut redb::Table<(i64, &str), u32>) -> Result<(), StorageError> {
        for ((day, store), delta) in self.0 {
            let key = (day, store.as_str());
            let n = days.get(key).map_err(err)?.map_or(0, |v| v.value());
            days.insert(key, n.saturating_add_signed(delta)).map_err(err)?;
        }
        Ok(())
    }
}

/// Request and response as raw bytes (no JSON escaping): `[u32 len][request][response]`.
/// Frames events for the outbox: per event the subject's length (u16), the subject, the JSON's
/// length (u32) and the JSON, little-endian.
fn frame_events(events: &[super::OutboxEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(|e| 6 + e.subject.len() + e.json.len()).sum());
    for e in events {
        out.extend_from_slice(&(e.subject.len() as u16).to_le_bytes());
        out.extend_from_slice(e.subject.as_bytes());
        out.extend_from_slice(&(e.json.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.json);
    }
    out
}

/// The events of one outbox row, numbered from `first`.
fn unframe_events(first: u64, mut bytes: &[u8], out: &mut super::NumberedEvents) -> Result<(), StorageError> {
    let damaged = || err(format!("outbox row {first} is damaged"));
    let mut seq = first;
    while !bytes.is_empty() {
        let take = |bytes: &mut &[u8], n: usize| -> Result<Vec<u8>, StorageError> {
            let (head, rest) = bytes.split_at_checked(n).ok_or_else(damaged)?;
            *bytes = rest;
            Ok(head.to_vec())
        };
        let len = u16::from_le_bytes(take(&mut bytes, 2)?.try_into().map_err(|_| damaged())?) as usize;
        let subject = String::from_utf8(take(&mut bytes, len)?).map_err(|_| damaged())?;
        let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().map_err(|_| damaged())?) as usize;
        let json = take(&mut bytes, len)?;
        out.push((seq, super::OutboxEvent { subject, json }));
        seq += 1;
    }
    Ok(())
}

/// How many events an outbox row holds.
fn count_events(bytes: &[u8]) -> u64 {
    let mut n = 0;
    let mut at = 0;
    while at + 2 <= bytes.len() {
        at += 2 + u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
        let Some(len) = bytes.get(at..at + 4) else { break };
        at += 4 + u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        n += 1;
    }
    n
}

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
    quick_repair: Arc<AtomicBool>,
    /// Woken after a commit that wrote events.
    events_written: Arc<tokio::sync::Notify>,
    /// Outbox rows up to this key are published: the writer deletes them with its next commit.
    published: Arc<AtomicU64>,
}

impl Drop for Embedded {
    /// Lets the writer finish what is queued, then closes the database.
    fn drop(&mut self) {
        if self.published.load(Ordering::Relaxed) > 0 {
            // One last commit takes the published events out of the outbox.
            let (done, _) = oneshot::channel();
            drop(self.send(WriteJob::empty(done)));
        }
        drop(self.queue.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

/// How to treat the state file when it cannot be used.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IfDamaged {
    /// Refuse to open it, saying what to do.
    Refuse,
    /// Set it aside (`state.redb.damaged-<unix time>`) and start with an empty state.
    StartEmpty,
}

/// What [`Embedded::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The existing state of this dataset.
    Existing,
    /// No state file: a new, empty one.
    Created,
    /// The file could not be used and was set aside at this path; a new, empty one was made.
    ReplacedDamaged(std::path::PathBuf),
}

/// Runs `f`, turning a panic inside redb (it panics on some damaged pages) into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what =
            p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
        Err(err(format!("damaged ({})", what.unwrap_or_else(|| "redb stopped on it".into()))))
    })
}

/// Opens an existing state file: refuses an empty file (redb would silently make a new database
/// in it) and any file redb cannot read.
fn open_existing(path: &Path) -> Result<Database, StorageError> {
    let len = std::fs::metadata(path).map_err(err)?.len();
    if len == 0 {
        return Err(err("it is empty (0 bytes): truncated?"));
    }
    guarded(|| {
        let logged = std::sync::atomic::AtomicI64::new(-1);
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_repair_callback(move |session| {
                // Called often while it lasts: one line per tenth.
                let tenth = (session.progress() * 10.0) as i64;
                if tenth > logged.fetch_max(tenth, Ordering::Relaxed) {
                    log::warn!(
                        "the state file was not closed cleanly (the process stopped without shutting down): checking it, {}% done",
                        tenth * 10
                    );
                }
            })
            .open(path)
            .map_err(err)
    })
}

/// Makes sure every table exists, so that readers never see "table does not exist", moves the
/// cells of an older state file to text ids, and brings a file of an older layout up to
/// [`LAYOUT`]: a [`RESERVATIONS`] row for each order without one, [`STORE_DAYS`] rebuilt.
fn ensure_tables(db: &Database) -> Result<(), StorageError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let mut cells = txn.open_table(CELLS).map_err(err)?;
        let numbered = txn.list_tables().map_err(err)?.any(|t| t.name() == NUMBERED_CELLS.name());
        if numbered {
            let old = txn.open_table(NUMBERED_CELLS).map_err(err)?;
            for row in old.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                let (store, sku) = k.value();
                cells
                    .insert((store.to_string().as_str(), sku.to_string().as_str()), v.value())
                    .map_err(err)?;
            }
            drop(old);
            txn.delete_table(NUMBERED_CELLS).map_err(err)?;
        }
    }
    let layout = txn.open_table(META).map_err(err)?.get("layout").map_err(err)?.map(|v| v.value().to_owned());
    if layout.as_deref() != Some(LAYOUT) {
        for derived in DERIVED {
            if txn.list_tables().map_err(err)?.any(|t| t.name() == derived) {
                txn.delete_table(TableDefinition::<&str, ()>::new(derived)).map_err(err)?;
            }
        }
    }
    {
        let mut meta = txn.open_table(META).map_err(err)?;
        if meta.get(EVENT_SOURCE).map_err(err)?.is_none() {
            let source = format!("{:016x}", rand::random::<u64>());
            meta.insert(EVENT_SOURCE, source.as_str()).map_err(err)?;
        }
        let orders = txn.open_table(ORDERS).map_err(err)?;
        let mut reservations = txn.open_table(RESERVATIONS).map_err(err)?;
        let mut days = txn.open_table(STORE_DAYS).map_err(err)?;
        if layout.as_deref() != Some(LAYOUT) {
            let mut counts = DayCounts::default();
            for row in reservations.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                let (version, json) = v.value();
                if version == NO_RESERVATION {
                    continue;
                }
                let r: ReservationRecord = serde_json::from_slice(json)
                    .map_err(|e| err(format!("reservation of {}: {e}", k.value())))?;
                if r.takes_slot() {
                    counts.add(r.day, r.stores().iter().map(|s| s.as_str()), 1);
                }
            }
            counts.write(&mut days)?;
            for row in orders.iter().map_err(err)? {
                let (k, _) = row.map_err(err)?;
                if reservations.get(k.value()).map_err(err)?.is_none() {
                    reservations.insert(k.value(), (NO_RESERVATION, &[][..])).map_err(err)?;
                }
            }
            meta.insert("layout", LAYOUT).map_err(err)?;
        }
    }
    txn.commit().map_err(err)
}

/// The dataset fingerprint recorded in `db`, if any.
fn recorded_dataset(db: &Database) -> Result<Option<String>, StorageError> {
    let txn = db.begin_read().map_err(err)?;
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    Ok(table.get("dataset").map_err(err)?.map(|v| v.value().to_owned()))
}

fn record_dataset(db: &Database, fingerprint: &str) -> Result<(), StorageError> {
    let txn = db.begin_write().map_err(err)?;
    txn.open_table(META).map_err(err)?.insert("dataset", fingerprint).map_err(err)?;
    txn.commit().map_err(err)
}

impl Embedded {
    /// Opens the state in `dir` (creating the directory and an empty state when it holds no state
    /// file) and starts the writer thread. The state is bound to the dataset whose fingerprint is
    /// `dataset`: a state file of another dataset is refused, and a new one records it. An empty
    /// or unreadable file is refused, or set aside with [`IfDamaged::StartEmpty`].
    pub fn open(
        dir: &Path,
        dataset: &str,
        if_damaged: IfDamaged,
    ) -> Result<(Embedded, Opened), StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let path = dir.join(STATE_FILE);
        let (db, opened) = if path.exists() {
            match open_existing(&path) {
                Ok(db) => (db, Opened::Existing),
                Err(problem) if if_damaged == IfDamaged::StartEmpty => {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    let aside = dir.join(format!("{STATE_FILE}.damaged-{now}"));
                    std::fs::rename(&path, &aside).map_err(|e| err(format!("moving {} aside: {e}", path.display())))?;
                    log::warn!("{}: {}; set aside as {} and starting with an empty state", path.display(), problem.0, aside.display());
                    (Self::create(&path)?, Opened::ReplacedDamaged(aside))
                }
                Err(problem) => {
                    return Err(err(format!(
                        "{}: {}. Restore it from a backup (`omniroute state backup`), or start with --new-state to set it aside and begin with an empty state (the reservations and answered orders in it are then lost)",
                        path.display(),
                        problem.0
                    )))
                }
            }
        } else {
            (Self::create(&path)?, Opened::Created)
        };
        guarded(|| ensure_tables(&db))?;
        match guarded(|| recorded_dataset(&db))? {
            Some(recorded) if recorded != dataset => {
                return Err(err(format!(
                    "{} belongs to another dataset (its stores and DCs are not the ones served now): serve the dataset it was written for, or give another --state directory",
                    path.display()
                )))
            }
            Some(_) => {}
            None => record_dataset(&db, dataset)?,
        }
        let db = Arc::new(db);
        let (queue, jobs) = mpsc::channel::<WriteJob>();
        let healthy = Arc::new(AtomicBool::new(true));
        let quick_repair = Arc::new(AtomicBool::new(false));
        let events_written = Arc::new(tokio::sync::Notify::new());
        let published = Arc::new(AtomicU64::new(0));
        let (writer_db, writer_healthy, writer_quick, writer_events, writer_published) =
            (db.clone(), healthy.clone(), quick_repair.clone(), events_written.clone(), published.clone());
        let writer = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || {
                writer(&writer_db, &jobs, &writer_healthy, &writer_quick, &writer_events, &writer_published)
            })
            .map_err(err)?;
        let store = Embedded {
            db,
            queue: Some(queue),
            writer: Some(writer),
            healthy,
            quick_repair,
            events_written,
            published,
        };
        Ok((store, opened))
    }

    fn create(path: &Path) -> Result<Database, StorageError> {
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| err(format!("{}: {e}", path.display())))
    }
}

fn writer(
    db: &Database,
    jobs: &mpsc::Receiver<WriteJob>,
    healthy: &AtomicBool,
    quick_repair: &AtomicBool,
    events_written: &tokio::sync::Notify,
    published: &AtomicU64,
) {
    let mut purged = 0;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // Published events leave the outbox with the next commit, whatever it carries: no commit
        // of their own (if one is lost in a crash they are published again, at least once).
        let upto = published.load(Ordering::Relaxed);
        let purge = (upto > purged).then_some(upto);
        let result = write_group(db, &group, quick_repair.load(Ordering::Relaxed), purge);
        if result.is_ok() {
            purged = purged.max(upto);
        }
        healthy.store(result.is_ok(), Ordering::Relaxed);
        if result.is_ok() && group.iter().any(|j| !j.events.is_empty()) {
            events_written.notify_one();
        }
        if let Err(e) = &result {
            log::error!("state write of {} change sets failed: {e}", group.len());
        }
        for job in group {
            let _ = job.done.send(result.clone());
        }
    }
}

/// Writes `group` in one transaction; with `purge`, also deletes the outbox rows up to that key.
// Kept out of line so that profiles (benches/callgrind.sh) can name the writer's work.
#[inline(never)]
fn write_group(
    db: &Database,
    group: &[WriteJob],
    quick_repair: bool,
    purge: Option<u64>,
) -> Result<(), StorageError> {
    let mut txn = db.begin_write().map_err(err)?;
    txn.set_quick_repair(quick_repair);
    {
        let mut cells = txn.open_table(CELLS).map_err(err)?;
        let mut orders = txn.open_table(ORDERS).map_err(err)?;
        let mut reservations = txn.open_table(RESERVATIONS).map_err(err)?;
        let mut days = txn.open_table(STORE_DAYS).map_err(err)?;
        let mut keys = txn.open_table(KEYS).map_err(err)?;
        let mut audit = txn.open_table(AUDIT).map_err(err)?;
        let mut seq = audit.last().map_err(err)?.map_or(0, |(k, _)| k.value());
        let mut counts = DayCounts::default();
        let events: Vec<&[u8]> =
            group.iter().map(|j| j.events.as_slice()).filter(|e| !e.is_empty()).collect();
        if !events.is_empty() {
            let mut meta = txn.open_table(META).map_err(err)?;
            let first = next_event(&meta)?;
            let blob = events.concat();
            let next = first + count_events(&blob);
            txn.open_table(OUTBOX).map_err(err)?.insert(first, blob.as_slice()).map_err(err)?;
            meta.insert(NEXT_EVENT, next.to_string().as_str()).map_err(err)?;
        }
        if let Some(upto) = purge {
            txn.open_table(OUTBOX).map_err(err)?.retain_in(..=upto, |_, _| false).map_err(err)?;
        }
        if group.iter().any(|j| j.message.is_some()) {
            let mut messages = txn.open_table(FEED_MESSAGES).map_err(err)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            for id in group.iter().filter_map(|j| j.message.as_deref()) {
                messages.insert(id, now).map_err(err)?;
            }
        }
        for job in group {
            for entry in &job.audit {
                seq += 1;
                audit.insert(seq, entry.as_slice()).map_err(err)?;
            }
            for (id, record) in &job.keys {
                keys.insert(id.as_str(), record.as_slice()).map_err(err)?;
            }
            if !job.wallet.is_empty() {
                let mut wallets = txn.open_table(WALLETS).map_err(err)?;
                for (customer, campaign, entry) in &job.wallet {
                    wallets.insert((customer.as_str(), *campaign), entry.as_slice()).map_err(err)?;
                }
            }
            if !job.redemptions.is_empty() {
                let mut redemptions = txn.open_table(REDEMPTIONS).map_err(err)?;
                for (order, record) in &job.redemptions {
                    redemptions.insert(order.as_str(), record.as_slice()).map_err(err)?;
                }
            }
            if !job.campaigns.is_empty() {
                let mut campaigns = txn.open_table(CAMPAIGNS).map_err(err)?;
                for (id, record) in &job.campaigns {
                    campaigns.insert(*id, record.as_slice()).map_err(err)?;
                }
            }
            for c in &job.cells {
                let key = (c.store_id.as_str(), c.sku.as_str());
                let newer = cells.get(key).map_err(err)?.is_none_or(|old| old.value().2 < c.version);
                if newer {
                    cells.insert(key, (c.on_hand, c.safety_stock, c.version)).map_err(err)?;
                }
            }
            for (id, bytes) in &job.orders {
                orders.insert(id.as_str(), bytes.as_slice()).map_err(err)?;
            }
            for r in &job.reservations {
                let id = r.order_id.as_str();
                let old = reservations.get(id).map_err(err)?.map(|old| old.value().0);
                if old.is_some_and(|old| old >= r.version) {
                    continue;
                }
                reservations.insert(id, (r.version, r.json.as_slice())).map_err(err)?;
                // Only a held record (version 1) is ever replaced: it took a slot.
                let took = old == Some(1);
                if took != r.takes_slot {
                    counts.add(r.day, r.stores.iter().map(String::as_str), if r.takes_slot { 1 } else { -1 });
                }
            }
        }
        counts.write(&mut days)?;
    }
    txn.commit().map_err(err)
}

impl Embedded {
    /// Streams what start-up needs into `visit`: cells, then held reservations, then the orders
    /// stores took on `since_day` and later, then the ids of answered orders. A damaged page is
    /// an error naming the problem, not a panic.
    pub fn recover(&self, since_day: i64, visit: &mut dyn FnMut(Recovered<'_>)) -> Result<(), StorageError> {
        guarded(|| read_live(&self.db, since_day, visit))
    }

    /// Writes a consistent copy of the state (one read transaction's snapshot, taken while writes
    /// go on) to `to`: written beside it under a temporary name, fsynced, then renamed. Returns
    /// the work, to be run on a thread that may block.
    pub fn backup(
        &self,
        to: std::path::PathBuf,
    ) -> impl FnOnce() -> Result<StateSummary, StorageError> + Send + 'static {
        let db = self.db.clone();
        move || guarded(|| copy_state(&db, &to))
    }

    /// Persists `changes` atomically; the future resolves once they are durable (fsynced).
    pub fn commit(
        &self,
        changes: ChangeSet,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (done, _) = oneshot::channel();
        let orders =
            changes.orders.iter().map(|o| (o.order_id.clone(), frame(&o.request, &o.response))).collect();
        let mut reservations: Vec<ReservationJob> =
            changes.reservations.iter().map(|(id, r)| ReservationJob::new(id.clone(), r)).collect();
        if !changes.orders.is_empty() {
            let reserved: rustc_hash::FxHashSet<&str> =
                changes.reservations.iter().map(|(id, _)| id.as_str()).collect();
            for o in changes.orders.iter().filter(|o| !reserved.contains(o.order_id.as_str())) {
                reservations.push(ReservationJob::none(o.order_id.clone()));
            }
        }
        let job = WriteJob {
            cells: changes.cells,
            orders,
            reservations,
            keys: Vec::new(),
            campaigns: Vec::new(),
            wallet: Vec::new(),
            redemptions: changes.redemptions,
            audit: changes.audit,
            events: frame_events(&changes.events),
            message: changes.message,
            done,
        };
        self.send(job)
    }

    /// Persists an API key record (insert or replace by `id`); resolves once durable.
    pub fn save_key(
        &self,
        id: String,
        record: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (done, _) = oneshot::channel();
        let job = WriteJob { keys: vec![(id, record)], ..WriteJob::empty(done) };
        self.send(job)
    }

    /// Persists a campaign record (insert or replace by `id`); resolves once durable.
    pub fn save_campaign(
        &self,
        id: u32,
        record: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (done, _) = oneshot::channel();
        let job = WriteJob { campaigns: vec![(id, record)], ..WriteJob::empty(done) };
        self.send(job)
    }

    /// Persists a wallet entry (insert or replace by customer and campaign); resolves once durable.
    pub fn save_wallet_entry(
        &self,
        customer: String,
        campaign: u32,
        entry: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (done, _) = oneshot::channel();
        let job = WriteJob { wallet: vec![(customer, campaign, entry)], ..WriteJob::empty(done) };
        self.send(job)
    }

    /// One wallet entry (JSON).
    pub fn wallet_entry(&self, customer: &str, campaign: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, WALLETS)? else { return Ok(None) };
        Ok(table.get((customer, campaign)).map_err(err)?.map(|v| v.value().to_vec()))
    }

    /// A customer's wallet entries (JSON), by campaign id.
    pub fn wallet(&self, customer: &str) -> Result<Vec<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, WALLETS)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for row in table.range((customer, 0)..=(customer, u32::MAX)).map_err(err)? {
            out.push(row.map_err(err)?.1.value().to_vec());
        }
        Ok(out)
    }

    /// Calls `f` with every wallet entry (JSON), in key order.
    pub fn each_wallet_entry(
        &self,
        f: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, WALLETS)? else { return Ok(()) };
        for row in table.iter().map_err(err)? {
            f(row.map_err(err)?.1.value())?;
        }
        Ok(())
    }

    /// The redemption recorded with an order (JSON).
    pub fn redemption(&self, order: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, REDEMPTIONS)? else { return Ok(None) };
        Ok(table.get(order).map_err(err)?.map(|v| v.value().to_vec()))
    }

    /// Every redemption record (JSON), by order id.
    pub fn redemptions(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        self.values(REDEMPTIONS)
    }

    /// One campaign record (JSON).
    pub fn campaign(&self, id: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, CAMPAIGNS)? else { return Ok(None) };
        Ok(table.get(id).map_err(err)?.map(|v| v.value().to_vec()))
    }

    /// Every campaign record (JSON), by id.
    pub fn campaigns(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        self.values(CAMPAIGNS)
    }

    /// Every value of a table of JSON records, in key order.
    fn values<K: redb::Key + 'static>(
        &self,
        table: TableDefinition<K, &[u8]>,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, table)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            out.push(row.map_err(err)?.1.value().to_vec());
        }
        Ok(out)
    }

    /// Marks the outbox rows up to `upto` published: the next commit deletes them.
    pub fn outbox_published(&self, upto: u64) {
        self.published.fetch_max(upto, Ordering::Relaxed);
    }

    /// Outbox rows after `after` (a row's key: its first event's number), oldest first, at most
    /// `rows` of them: each row's key and its events, numbered.
    pub fn outbox(
        &self,
        after: Option<u64>,
        rows: usize,
    ) -> Result<Vec<(u64, super::NumberedEvents)>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, OUTBOX)? else { return Ok(Vec::new()) };
        let range = match after {
            Some(a) => table.range(a.saturating_add(1)..),
            None => table.range(0..),
        };
        let mut out = Vec::new();
        for row in range.map_err(err)?.take(rows) {
            let (k, v) = row.map_err(err)?;
            let mut events = Vec::new();
            unframe_events(k.value(), v.value(), &mut events)?;
            out.push((k.value(), events));
        }
        Ok(out)
    }

    /// This state's event source: a random id made when the state was created, naming its event
    /// stream (sequence numbers start again in a new state).
    pub fn event_source(&self) -> Result<String, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let meta = txn.open_table(META).map_err(err)?;
        let v = meta.get(EVENT_SOURCE).map_err(err)?.map(|v| v.value().to_owned());
        v.ok_or_else(|| err("the state has no event source id"))
    }

    /// Resolves whenever a commit wrote events.
    pub fn events_written(&self) -> Arc<tokio::sync::Notify> {
        self.events_written.clone()
    }

    /// For each message id, whether a change applying it was recorded.
    pub fn messages_seen(&self, ids: &[&str]) -> Result<Vec<bool>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, FEED_MESSAGES)? else { return Ok(vec![false; ids.len()]) };
        ids.iter().map(|id| Ok(table.get(*id).map_err(err)?.is_some())).collect()
    }

    /// Audit entries (sequence number, JSON) after `after`, oldest first, that `keep` accepts,
    /// at most `limit`.
    pub fn audit(
        &self,
        after: u64,
        limit: usize,
        keep: &dyn Fn(&[u8]) -> bool,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let Some(table) = open_if_there(&txn, AUDIT)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for row in table.range(after.saturating_add(1)..).map_err(err)? {
            let (k, v) = row.map_err(err)?;
            if keep(v.value()) {
                out.push((k.value(), v.value().to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every API key record (JSON), by id.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        self.values(KEYS)
    }

    /// Queues `job` for the writer; the future resolves once it is durable.
    fn send(&self, mut job: WriteJob) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (done, wait) = oneshot::channel();
        job.done = done;
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

    /// What the state file holds of one order, without reading its body: `None` when it was
    /// never answered, `Some(None)` when it was answered without reserving anything, else its
    /// reservation in its latest state.
    pub fn reservation(&self, order_id: &str) -> Result<Option<Option<ReservationRecord>>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(RESERVATIONS).map_err(err)?;
        let Some(v) = table.get(order_id).map_err(err)? else { return Ok(None) };
        let (version, json) = v.value();
        if version == NO_RESERVATION {
            return Ok(Some(None));
        }
        let r = serde_json::from_slice(json).map_err(|e| err(format!("reservation of {order_id}: {e}")))?;
        Ok(Some(Some(r)))
    }

    /// Quick repair (redb's): every commit from now on also saves the file's allocation state
    /// and commits in two phases (a second fsync), so that opening the file after a crash reads
    /// that state instead of walking the whole file. Off by default: the walk takes about 1.8 s
    /// per GB of state, the second fsync adds to every commit (BENCHMARKS.md, "Hardening").
    pub fn set_quick_repair(&self, on: bool) {
        self.quick_repair.store(on, Ordering::Relaxed);
    }

    /// Whether the last write went through.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// What a state holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateSummary {
    pub cells: usize,
    pub reservations: usize,
    pub orders: usize,
    /// The fingerprint of the dataset it belongs to (absent in states written before it was
    /// recorded).
    pub dataset: Option<String>,
}

/// Reads every record of `db`, decoding each (a record that does not decode is an error), into
/// `visit`; returns the counts.
fn read_all(db: &Database, visit: &mut dyn FnMut(Recovered<'_>)) -> Result<StateSummary, StorageError> {
    let mut summary = StateSummary { dataset: recorded_dataset(db)?, ..StateSummary::default() };
    let txn = db.begin_read().map_err(err)?;
    summary.cells = read_cells(&txn, visit)?;
    for row in txn.open_table(RESERVATIONS).map_err(err)?.iter().map_err(err)? {
        let (k, v) = row.map_err(err)?;
        let (version, json) = v.value();
        if version == NO_RESERVATION {
            continue;
        }
        let r: ReservationRecord =
            serde_json::from_slice(json).map_err(|e| err(format!("reservation of {}: {e}", k.value())))?;
        visit(Recovered::Reservation { order_id: k.value(), reservation: r });
        summary.reservations += 1;
    }
    for row in txn.open_table(ORDERS).map_err(err)?.iter().map_err(err)? {
        let (k, v) = row.map_err(err)?;
        unframe(k.value(), v.value())?;
        visit(Recovered::Order { order_id: k.value() });
        summary.orders += 1;
    }
    Ok(summary)
}

/// Streams what start-up needs (see [`Embedded::recover`]); nothing in it grows with the
/// orders that ended, except the [`RESERVATIONS`] rows (ids and small records; no body is read).
fn read_live(
    db: &Database,
    since_day: i64,
    visit: &mut dyn FnMut(Recovered<'_>),
) -> Result<(), StorageError> {
    let txn = db.begin_read().map_err(err)?;
    read_cells(&txn, visit)?;
    // Held reservations before the day counts, which include them.
    for row in txn.open_table(RESERVATIONS).map_err(err)?.iter().map_err(err)? {
        let (k, v) = row.map_err(err)?;
        let (version, json) = v.value();
        if version == 1 {
            let r: ReservationRecord = serde_json::from_slice(json)
                .map_err(|e| err(format!("reservation of {}: {e}", k.value())))?;
            visit(Recovered::Reservation { order_id: k.value(), reservation: r });
        }
        visit(Recovered::Order { order_id: k.value() });
    }
    for row in txn.open_table(STORE_DAYS).map_err(err)?.range((since_day, "")..).map_err(err)? {
        let (k, v) = row.map_err(err)?;
        let (day, store_id) = k.value();
        visit(Recovered::StoreDay { day, store_id, orders: v.value() });
    }
    Ok(())
}

/// Streams every stock cell; returns how many.
fn read_cells(
    txn: &redb::ReadTransaction,
    visit: &mut dyn FnMut(Recovered<'_>),
) -> Result<usize, StorageError> {
    let mut n = 0;
    for row in txn.open_table(CELLS).map_err(err)?.iter().map_err(err)? {
        let (k, v) = row.map_err(err)?;
        let ((store, sku), (on_hand, safety_stock, version)) = (k.value(), v.value());
        let (Ok(store_id), Ok(sku)) = (StoreId::parse(store), Sku::parse(sku)) else {
            return Err(err(format!("a stock cell with an invalid id ({store:?}, {sku:?})")));
        };
        visit(Recovered::Cell(CellRecord { store_id, sku, on_hand, safety_stock, version }));
        n += 1;
    }
    Ok(n)
}

/// Copies one table of a snapshot into a write transaction; returns how many rows. A table the
/// snapshot lacks (a file of an older layout, not opened since) copies as empty.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &redb::ReadTransaction,
    dst: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<usize, StorageError> {
    let Some(from) = open_if_there(src, table)? else { return Ok(0) };
    let mut t = dst.open_table(table).map_err(err)?;
    let mut n = 0;
    for row in from.iter().map_err(err)? {
        let (k, v) = row.map_err(err)?;
        t.insert(k.value(), v.value()).map_err(err)?;
        n += 1;
    }
    Ok(n)
}

/// `table` of a read transaction, or `None` when the file has never had it (a state file of an
/// earlier version).
fn open_if_there<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StorageError> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(err(e)),
    }
}

/// Copies every table of `db` (one snapshot) into a new state file at `to`, durably.
fn copy_state(db: &Database, to: &Path) -> Result<StateSummary, StorageError> {
    let tmp = to.with_extension("redb.partial");
    let _ = std::fs::remove_file(&tmp);
    let out = Database::create(&tmp).map_err(|e| err(format!("{}: {e}", tmp.display())))?;
    let mut summary = StateSummary { dataset: recorded_dataset(db)?, ..StateSummary::default() };
    {
        let src = db.begin_read().map_err(err)?;
        let dst = out.begin_write().map_err(err)?;
        {
            summary.cells = copy_table(&src, &dst, CELLS)?;
            copy_table(&src, &dst, RESERVATIONS)?;
            for row in src.open_table(RESERVATIONS).map_err(err)?.iter().map_err(err)? {
                if row.map_err(err)?.1.value().0 != NO_RESERVATION {
                    summary.reservations += 1;
                }
            }
            summary.orders = copy_table(&src, &dst, ORDERS)?;
            copy_table(&src, &dst, STORE_DAYS)?;
            copy_table(&src, &dst, META)?;
            // A copy numbers its events on under an event source of its own (made when it is
            // opened): events after the copy was taken were published under the old one.
            dst.open_table(META).map_err(err)?.remove(EVENT_SOURCE).map_err(err)?;
            copy_table(&src, &dst, KEYS)?;
            copy_table(&src, &dst, CAMPAIGNS)?;
            copy_table(&src, &dst, WALLETS)?;
            copy_table(&src, &dst, REDEMPTIONS)?;
            copy_table(&src, &dst, AUDIT)?;
            copy_table(&src, &dst, OUTBOX)?;
            copy_table(&src, &dst, FEED_MESSAGES)?;
        }
        dst.commit().map_err(err)?;
    }
    drop(out);
    std::fs::rename(&tmp, to).map_err(|e| err(format!("{}: {e}", to.display())))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    }
    Ok(summary)
}

/// Checks a state file no process has open: refuses an empty or unreadable file, runs redb's
/// integrity check, and decodes every record.
pub fn verify_file(path: &Path) -> Result<StateSummary, StorageError> {
    let mut db = open_existing(path)?;
    let intact = guarded(|| db.check_integrity().map_err(err))?;
    if !intact {
        return Err(err(
            "redb's integrity check found damage and repaired what it could; verify a backup too",
        ));
    }
    guarded(|| read_all(&db, &mut |_| {}))
}

/// Writes a consistent copy of a state file no process has open to `to`.
pub fn backup_file(from: &Path, to: &Path) -> Result<StateSummary, StorageError> {
    let db = open_existing(from)?;
    guarded(|| copy_state(&db, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizer::ledger::ReservationState;

    #[derive(Default)]
    struct Collect {
        cells: Vec<CellRecord>,
        reservations: Vec<(String, ReservationRecord)>,
        store_days: Vec<(i64, String, u32)>,
        orders: Vec<String>,
    }

    impl Collect {
        fn add(&mut self, item: Recovered<'_>) {
            match item {
                Recovered::Cell(c) => self.cells.push(c),
                Recovered::Reservation { order_id, reservation } => {
                    self.reservations.push((order_id.into(), reservation))
                }
                Recovered::StoreDay { day, store_id, orders } => {
                    self.store_days.push((day, store_id.into(), orders))
                }
                Recovered::Order { order_id } => self.orders.push(order_id.into()),
            }
        }
    }

    fn recovered(s: &Embedded, since_day: i64) -> Collect {
        let mut got = Collect::default();
        s.recover(since_day, &mut |item| got.add(item)).unwrap();
        got
    }

    fn reservation(state: ReservationState) -> ReservationRecord {
        ReservationRecord {
            state,
            day: 1,
            expires_at: 2,
            holds: vec![(StoreId::parse("S-1").unwrap(), Sku::numbered(2), 3)],
        }
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
            let (s, _) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
            let c = |v, on_hand| CellRecord {
                store_id: StoreId::parse("上海徐汇店").unwrap(),
                sku: Sku::parse("SKU-8834-RED").unwrap(),
                on_hand,
                safety_stock: 0,
                version: v,
            };
            // Written out of order: the newer versions first, then the older ones.
            s.commit(ChangeSet {
                cells: vec![c(5, 50)],
                orders: vec![order("a")],
                reservations: vec![("a".into(), reservation(ReservationState::Committed))],
                ..ChangeSet::default()
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
        let (s, _) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
        let got = recovered(&s, 0);
        assert_eq!(got.cells.len(), 1);
        assert_eq!((got.cells[0].on_hand, got.cells[0].version), (50, 5));
        // Ended: not read back at start-up, but still there for the calls that ask.
        assert!(got.reservations.is_empty());
        assert_eq!(s.reservation("a").unwrap(), Some(Some(reservation(ReservationState::Committed))));
        assert_eq!(got.store_days, vec![(1, "S-1".to_string(), 1)]);
        assert_eq!(got.orders.len(), 101);
        assert_eq!((s.reservation("o99").unwrap(), s.reservation("o100").unwrap()), (Some(None), None));
        assert_eq!(s.order("a").unwrap().unwrap(), order("a"));
        assert!(s.order("nope").unwrap().is_none());
        assert!(s.healthy());
    }

    fn event(n: usize) -> super::super::OutboxEvent {
        super::super::OutboxEvent {
            subject: format!("s.{}", n % 2),
            json: format!("{{\"n\":{n}}}").into_bytes(),
        }
    }

    #[actix_rt::test]
    async fn events_are_numbered_in_commit_order_and_survive_until_published_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Embedded::open(dir.path(), "d", IfDamaged::Refuse).unwrap();
        let source = s.event_source().unwrap();
        // Concurrent commits fold into groups; numbering follows the order they were queued in.
        for wave in [0..25, 25..50] {
            let commits: Vec<_> = wave
                .map(|i| {
                    s.commit(ChangeSet {
                        events: vec![event(2 * i), event(2 * i + 1)],
                        ..ChangeSet::default()
                    })
                })
                .collect();
            futures_util::future::join_all(commits).await.into_iter().collect::<Result<Vec<_>, _>>().unwrap();
        }
        let rows = s.outbox(None, 1000).unwrap();
        assert!(rows.len() >= 2, "one row per group at least per wave");
        let events: Vec<(u64, super::super::OutboxEvent)> =
            rows.iter().flat_map(|(_, e)| e.clone()).collect();
        assert_eq!(events.len(), 100);
        for (i, (seq, e)) in events.iter().enumerate() {
            assert_eq!((*seq, e), (i as u64 + 1, &event(i)));
        }
        // Rows up to a key go once published; the rest, and the numbering, outlive a restart.
        let cut = rows[0].0;
        s.outbox_published(cut);
        s.commit(ChangeSet::default()).await.unwrap();
        let left: Vec<u64> =
            s.outbox(None, 1000).unwrap().iter().flat_map(|(_, e)| e.iter().map(|(n, _)| *n)).collect();
        assert!(left.first().is_some_and(|f| *f > cut) && left.last() == Some(&100), "{left:?}");
        s.outbox_published(1000);
        s.commit(ChangeSet::default()).await.unwrap();
        assert!(s.outbox(None, 10).unwrap().is_empty());
        drop(s);
        let (s, _) = Embedded::open(dir.path(), "d", IfDamaged::Refuse).unwrap();
        assert_eq!(s.event_source().unwrap(), source);
        s.commit(ChangeSet { events: vec![event(0)], ..ChangeSet::default() }).await.unwrap();
        assert_eq!(s.outbox(None, 10).unwrap()[0].1[0].0, 101, "numbers go on after the outbox emptied");
        // A backup numbers on under a source of its own.
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        tokio::task::spawn_blocking(s.backup(copy.join(STATE_FILE))).await.unwrap().unwrap();
        let (c, _) = Embedded::open(&copy, "d", IfDamaged::Refuse).unwrap();
        assert_ne!(c.event_source().unwrap(), source);
    }

    #[actix_rt::test]
    async fn an_applied_message_id_is_recorded_with_its_change() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Embedded::open(dir.path(), "d", IfDamaged::Refuse).unwrap();
        assert_eq!(s.messages_seen(&["m1", "m2"]).unwrap(), [false, false]);
        s.commit(ChangeSet { message: Some("m1".into()), ..ChangeSet::default() }).await.unwrap();
        drop(s);
        let (s, _) = Embedded::open(dir.path(), "d", IfDamaged::Refuse).unwrap();
        assert_eq!(s.messages_seen(&["m1", "m2"]).unwrap(), [true, false]);
    }

    #[test]
    fn damaged_outbox_rows_are_errors_and_counts_agree_with_frames() {
        let framed = frame_events(&[event(1), event(2), event(3)]);
        assert_eq!(count_events(&framed), 3);
        let mut out = Vec::new();
        unframe_events(7, &framed, &mut out).unwrap();
        assert_eq!(out.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [7, 8, 9]);
        let mut out = Vec::new();
        assert!(unframe_events(7, &framed[..framed.len() - 1], &mut out).is_err());
    }

    fn many_orders(s: &Embedded, n: usize) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for i in 0..n {
                s.commit(ChangeSet { orders: vec![order(&format!("o{i}"))], ..Default::default() })
                    .await
                    .unwrap();
            }
        });
    }

    #[test]
    fn a_state_of_another_dataset_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (s, opened) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
        assert_eq!(opened, Opened::Created);
        drop(s);
        let e = Embedded::open(dir.path(), "ds2", IfDamaged::Refuse).err().unwrap();
        assert!(e.0.contains("belongs to another dataset"), "{e}");
        let (_, opened) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
        assert_eq!(opened, Opened::Existing);
    }

    #[test]
    fn an_empty_or_unreadable_state_file_is_refused_unless_a_new_state_is_asked_for() {
        for content in [&b""[..], &b"not a redb file at all, just text that happens to be here"[..]] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(STATE_FILE), content).unwrap();
            let e = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).err().unwrap();
            assert!(e.0.contains(STATE_FILE) && e.0.contains("--new-state"), "{e}");
            // Refusing changed nothing.
            assert_eq!(std::fs::read(dir.path().join(STATE_FILE)).unwrap(), content);
            let (_, opened) = Embedded::open(dir.path(), "ds1", IfDamaged::StartEmpty).unwrap();
            let Opened::ReplacedDamaged(aside) = opened else { panic!("set aside: {opened:?}") };
            assert_eq!(std::fs::read(aside).unwrap(), content);
        }
    }

    #[test]
    fn a_backup_holds_everything_and_verifies_and_a_damaged_copy_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
        many_orders(&s, 300);
        let copy = dir.path().join("copy.redb");
        let summary = s.backup(copy.clone())().unwrap();
        assert_eq!((summary.orders, summary.dataset.as_deref()), (300, Some("ds1")));
        assert_eq!(verify_file(&copy).unwrap(), summary);
        drop(s);
        let offline = dir.path().join("offline.redb");
        assert_eq!(backup_file(&dir.path().join(STATE_FILE), &offline).unwrap(), summary);
        // Overwrite the middle of the copy.
        let mut bytes = std::fs::read(&copy).unwrap();
        let n = bytes.len();
        for b in &mut bytes[n / 4..3 * n / 4] {
            *b = 0x5a;
        }
        std::fs::write(&copy, bytes).unwrap();
        assert!(verify_file(&copy).is_err());
    }

    /// A state file written when ids were numbers opens with its cells as text ids, and its
    /// reservations' numbered holds read back as text too.
    #[test]
    fn a_state_file_with_numbered_ids_opens_with_text_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(NUMBERED_CELLS).unwrap().insert((7, 42), (5, 1, 9)).unwrap();
            let old = br#"{"state":"held","day":1,"expires_at":2,"holds":[[7,42,3]]}"#;
            txn.open_table(RESERVATIONS).unwrap().insert("o1", (1, &old[..])).unwrap();
            txn.commit().unwrap();
        }
        let (s, opened) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
        assert_eq!(opened, Opened::Existing);
        let got = recovered(&s, 0);
        // The held reservation and its day's count, filled in from the older layout.
        assert_eq!(got.store_days, vec![(1, "7".to_string(), 1)]);
        assert_eq!(
            (got.cells[0].store_id.as_str(), got.cells[0].sku.as_str(), got.cells[0].on_hand),
            ("7", "42", 5)
        );
        assert_eq!(got.reservations[0].1.holds, vec![(StoreId::numbered(7), Sku::numbered(42), 3)]);
    }

    /// Start-up reads back only held reservations and the recent days' counts: a reservation
    /// leaves the held table when it ends, and its slot is given back when it was released or
    /// expired (not when committed), whatever order the writes arrive in.
    #[tokio::test]
    async fn start_up_reads_held_reservations_and_the_day_counts_they_leave() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
        let at = |state, day, stores: &[&str]| ReservationRecord {
            state,
            day,
            expires_at: 9,
            holds: stores.iter().map(|st| (StoreId::parse(st).unwrap(), Sku::numbered(1), 1)).collect(),
        };
        let write = |rs: Vec<(&str, ReservationRecord)>| {
            s.commit(ChangeSet {
                reservations: rs.into_iter().map(|(id, r)| (id.to_string(), r)).collect(),
                ..Default::default()
            })
        };
        use ReservationState::*;
        write(vec![
            ("kept", at(Held, 5, &["A", "B", "A"])),
            ("shipped", at(Held, 5, &["A"])),
            ("cancelled", at(Held, 5, &["B"])),
            ("expired", at(Held, 4, &["A"])),
        ])
        .await
        .unwrap();
        write(vec![("shipped", at(Committed, 5, &["A"])), ("cancelled", at(Released, 5, &["B"]))])
            .await
            .unwrap();
        write(vec![("expired", at(Expired, 4, &["A"])), ("cancelled", at(Held, 5, &["B"]))]).await.unwrap();
        let got = recovered(&s, 0);
        assert_eq!(got.reservations, vec![("kept".to_string(), at(Held, 5, &["A", "B", "A"]))]);
        let want = vec![(4, "A".to_string(), 0), (5, "A".to_string(), 2), (5, "B".to_string(), 1)];
        assert_eq!(got.store_days, want);
        assert_eq!(recovered(&s, 5).store_days, want[1..].to_vec());
        // A backup carries the tables start-up reads.
        let copy = dir.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        s.backup(copy.join(STATE_FILE))().unwrap();
        let (c, _) = Embedded::open(&copy, "ds1", IfDamaged::Refuse).unwrap();
        assert_eq!(recovered(&c, 0).store_days, want);
        assert_eq!(recovered(&c, 0).reservations.len(), 1);
    }

    /// A file of an older layout has the tables start-up reads rebuilt from the records, whatever
    /// they held before.
    #[tokio::test]
    async fn tables_of_an_older_layout_are_rebuilt_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
            s.commit(ChangeSet {
                orders: vec![order("a"), order("b")],
                reservations: vec![("a".into(), reservation(ReservationState::Held))],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        {
            // As a file of layout 3 would have it: no row for an order without a reservation,
            // derived tables with anything in them.
            let db = Database::open(dir.path().join(STATE_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("layout", "3").unwrap();
            txn.open_table(RESERVATIONS).unwrap().remove("b").unwrap();
            let held: TableDefinition<&str, &[u8]> = TableDefinition::new("held");
            txn.open_table(held).unwrap().insert("stale", &b"not json"[..]).unwrap();
            txn.open_table(STORE_DAYS).unwrap().insert((1, "S-1"), 40).unwrap();
            txn.commit().unwrap();
        }
        let (s, _) = Embedded::open(dir.path(), "ds1", IfDamaged::Refuse).unwrap();
        let got = recovered(&s, 0);
        assert_eq!(got.reservations, vec![("a".to_string(), reservation(ReservationState::Held))]);
        assert_eq!(got.store_days, vec![(1, "S-1".to_string(), 1)]);
        assert_eq!(got.orders, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(s.reservation("b").unwrap(), Some(None));
    }
}
