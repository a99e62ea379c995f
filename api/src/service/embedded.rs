//! The checkout service of one process: the in-memory ledger is the authority for stock, and a
//! redb file under `--state` its durable log. A change is acknowledged only once redb has
//! fsynced it (group commit folds concurrent writes into one transaction); at start-up the
//! persisted cells, held reservations and the day's order counts are applied over the dataset's
//! stock, and the ids of answered orders are filed in the order book's filter.
//!
//! Memory holds what routing needs, not history: a reservation leaves the ledger once its end
//! (ship, cancel, expiry) is durable, and an answered order leaves the order book. Reads,
//! retries and repeated ships or cancels of such orders are answered from the state file.

use super::core::{Core, Decided, Persist, Persisted};
use super::{
    Answer, AuditEntry, Backup, Checkout, End, FedCell, OpenError, OrderView, ServiceConfig, ServiceError,
};
use crate::coupons::campaign::Campaign;
use crate::coupons::redeem::{Redeemed, Redemption, RedemptionCounts, Refused};
use crate::coupons::wallet::{Captured, IssueCounts, WalletEntry};
use crate::storage::embedded::{IfDamaged, Opened, STATE_FILE};
use crate::storage::{
    CellRecord, ChangeSet, Embedded, NumberedEvents, OrderRecord, Recovered, ReservationRecord, StorageError,
};
use async_trait::async_trait;
use optimizer::ledger::{CellChange, FeedRow, Hold, LedgerError, Reservation, ReservationState, StockLevel};
use optimizer::model::{OrderId, SkuIdx, StoreId, StoreIdx, Timestamp};
use optimizer::EngineConfig;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The embedded checkout service.
pub struct EmbeddedCheckout {
    core: Core,
    store: Embedded,
    state_dir: std::path::PathBuf,
    /// Held from reading a campaign's version to writing its change (one process writes).
    campaign_writes: tokio::sync::Mutex<()>,
    /// Coupons issued per campaign, store and poster, rebuilt from the wallets at open.
    issued: IssueCounts,
    /// A customer's captures run one at a time (by a hash of the customer id), from reading the
    /// wallet to its write being durable: a capture is idempotent per customer and campaign.
    capture_locks: Box<[tokio::sync::Mutex<()>]>,
    /// Live coupon redemptions, rebuilt from the redemption records at open.
    redeemed: RedemptionCounts,
    /// Held from reading a redemption that ends to its record being durable.
    ending_redemptions: tokio::sync::Mutex<()>,
}

/// Shards of [`EmbeddedCheckout::capture_locks`].
const CAPTURE_SHARDS: usize = 4096;

impl EmbeddedCheckout {
    /// Loads the dataset, opens (or creates) the state in `state_dir` and recovers it. A state of
    /// another dataset is refused; an empty or damaged one is refused unless `new_state`.
    pub fn open(
        config: &ServiceConfig,
        state_dir: &Path,
        new_state: bool,
    ) -> Result<EmbeddedCheckout, OpenError> {
        let engine_config = EngineConfig { ledger: config.ledger, ..EngineConfig::default() };
        let (engine, load_s) = crate::data::load_engine(&config.data, engine_config)?;
        let dataset = crate::data::fingerprint(engine.network());
        let if_damaged = if new_state { IfDamaged::StartEmpty } else { IfDamaged::Refuse };
        let (store, opened) =
            Embedded::open(state_dir, &dataset, if_damaged).map_err(|e| OpenError::State(e.0))?;
        match opened {
            Opened::Created => {
                log::info!("no state in {}: starting with an empty state", state_dir.display())
            }
            Opened::ReplacedDamaged(aside) => {
                log::warn!(
                    "the damaged state file was set aside as {}; starting with an empty state",
                    aside.display()
                )
            }
            Opened::Existing => {}
        }
        let core = Core::new(engine, config.routing)
            .with_prices(crate::data::prices::read(&config.data)?)
            .with_recommendations(&config.data)?;
        let service = EmbeddedCheckout {
            core,
            store,
            state_dir: state_dir.to_path_buf(),
            campaign_writes: tokio::sync::Mutex::new(()),
            issued: IssueCounts::default(),
            capture_locks: (0..CAPTURE_SHARDS).map(|_| tokio::sync::Mutex::new(())).collect(),
            redeemed: RedemptionCounts::default(),
            ending_redemptions: tokio::sync::Mutex::new(()),
        };
        service
            .store
            .each_wallet_entry(&mut |b| {
                let e = super::record("wallet entry", b)
                    .map_err(|e| crate::storage::StorageError(e.to_string()))?;
                service.issued.count(&e);
                Ok(())
            })
            .map_err(|e| OpenError::State(e.0))?;
        for json in service.store.redemptions().map_err(|e| OpenError::State(e.0))? {
            let r: Redemption =
                super::record("redemption", &json).map_err(|e| OpenError::State(e.to_string()))?;
            if !r.ended {
                service.redeemed.count(&r);
            }
        }
        let t = Instant::now();
        let (cells, orders) = service.recover().map_err(|e| match e {
            OpenError::Storage(e) => OpenError::State(format!(
                "{}: {}. Restore it from a backup, or start with --new-state to set it aside and begin with an empty state",
                state_dir.join(STATE_FILE).display(),
                e.0
            )),
            other => other,
        })?;
        log::info!(
            "loaded {} stores from {} in {load_s:.2} s; recovered {cells} stock cells and {orders} orders from {} in {:.2} s (answered-order filter: {} MiB)",
            service.core.engine().network().stores().len(),
            config.data.display(),
            state_dir.display(),
            t.elapsed().as_secs_f64(),
            service.core.orders().filter_bytes() >> 20
        );
        Ok(service)
    }

    /// See [`Embedded::set_quick_repair`].
    pub fn set_quick_repair(&self, on: bool) {
        self.store.set_quick_repair(on);
    }

    /// Applies persisted state over the freshly loaded dataset: (cells, orders) recovered.
    fn recover(&self) -> Result<(usize, usize), OpenError> {
        let engine = self.core.engine();
        let net = engine.network();
        let (mut cells, mut orders) = (0, 0);
        let mut error = None;
        // Yesterday too: a reservation made just before midnight counts on its own day.
        let since_day = net.zone().local_day(super::now()) - 1;
        self.store.recover(since_day, &mut |item| match item {
            Recovered::Cell(c) => {
                // A SKU a feed brought after the dataset's stock.csv is learned again.
                let (Some(store), Ok(sku)) = (net.store_idx(&c.store_id), engine.learn_sku(&c.sku)) else {
                    log::warn!(
                        "state has stock for store {} sku {} that the dataset lacks; skipped",
                        c.store_id,
                        c.sku
                    );
                    return;
                };
                engine.restore_cell(store, sku, c.on_hand, c.safety_stock, c.version);
                cells += 1;
            }
            Recovered::Reservation { order_id, reservation: r } => {
                let Ok(id) = OrderId::parse(order_id) else { return };
                let holds = r
                    .holds
                    .iter()
                    .filter_map(|(store, sku, qty)| {
                        Some(Hold {
                            store: net.store_idx(store)?,
                            sku: engine.learn_sku(sku).ok()?,
                            qty: *qty,
                        })
                    })
                    .collect();
                let record =
                    Reservation { holds, day: r.day, expires_at: Timestamp(r.expires_at), state: r.state };
                if let Err(e) = engine.ledger().restore_reservation(id, record) {
                    error.get_or_insert(format!("stored reservation of {order_id}: {e}"));
                }
            }
            Recovered::StoreDay { day, store_id, orders } => {
                // After the held reservations: the count includes them.
                if let Some(store) = StoreId::parse(store_id).ok().and_then(|s| net.store_idx(&s)) {
                    engine.ledger().sync_orders(store, day, orders);
                }
            }
            Recovered::Order { order_id } => {
                self.core.orders().insert(order_id);
                orders += 1;
            }
        })?;
        if let Some(e) = error {
            return Err(OpenError::State(e));
        }
        self.core.metrics().orders.set(orders as i64);
        Ok((cells, orders))
    }

    /// The persisted form of an order's current reservation (external ids).
    fn reservation_record(&self, r: &Reservation) -> ReservationRecord {
        let net = self.core.engine().network();
        ReservationRecord {
            state: r.state,
            day: r.day,
            expires_at: r.expires_at.0,
            holds: r
                .holds
                .iter()
                .map(|h| (net.store_id(h.store).clone(), net.catalog().sku(h.sku).clone(), h.qty))
                .collect(),
        }
    }

    fn current_record(&self, id: &OrderId) -> Option<(String, ReservationRecord)> {
        let r = self.core.engine().ledger().reservation(id)?;
        Some((id.to_string(), self.reservation_record(&r)))
    }

    /// The state and expiry of an order's reservation: from the ledger while it is there, else
    /// (it ended and was forgotten) from the state file.
    fn reservation_state(&self, id: &OrderId) -> Result<Option<(ReservationState, Timestamp)>, ServiceError> {
        if let Some(r) = self.core.engine().ledger().reservation(id) {
            return Ok(Some((r.state, r.expires_at)));
        }
        Ok(self.store.reservation(id.as_str())?.flatten().map(|r| (r.state, Timestamp(r.expires_at))))
    }

    fn cell_records(&self, changes: &[CellChange]) -> Vec<CellRecord> {
        let net = self.core.engine().network();
        changes
            .iter()
            .map(|c| CellRecord {
                store_id: net.store_id(c.store).clone(),
                sku: net.catalog().sku(c.sku).clone(),
                on_hand: c.on_hand,
                safety_stock: c.safety_stock,
                version: c.version,
            })
            .collect()
    }
}

impl Persist for EmbeddedCheckout {
    async fn persist(&self, decided: &[Decided]) -> Result<Vec<Persisted>, crate::storage::StorageError> {
        let mut changes = ChangeSet::default();
        let (events, at) = (self.core.events(), super::now().0);
        for d in decided {
            if events {
                changes.events.push(super::events::routed(&d.order_id, at, &d.answer.response));
            }
            changes.orders.push(OrderRecord {
                order_id: d.order_id.to_string(),
                request: d.answer.request.clone(),
                response: d.answer.response.clone(),
            });
            if let Some(r) = &d.reservation {
                changes.reservations.push((d.order_id.to_string(), self.reservation_record(r)));
            }
            if let Some(r) = &d.redemption {
                let json = serde_json::to_vec(r).map_err(|e| StorageError(e.to_string()))?;
                changes.redemptions.push((d.order_id.to_string(), json));
            }
        }
        self.store.commit(changes).await?;
        Ok(decided.iter().map(|_| Persisted::Durable).collect())
    }

    async fn stored_answer(
        &self,
        id: &OrderId,
    ) -> Result<Option<(Answer, Option<ReservationState>)>, ServiceError> {
        let Some(record) = self.store.order(id.as_str())? else { return Ok(None) };
        let state = self.reservation_state(id)?.map(|(s, _)| s);
        Ok(Some((Answer { request: record.request, response: record.response }, state)))
    }

    fn take_coupons(&self, customer: &str, items: &[(Redeemed, &Campaign)]) -> Result<(), Refused> {
        self.redeemed.try_take(customer, items)
    }

    fn give_back_coupons(&self, redemption: &Redemption) {
        self.redeemed.give_back(redemption);
    }
}

impl EmbeddedCheckout {
    /// The live redemptions of `orders`.
    fn live_redemptions(&self, orders: &[&OrderId]) -> Result<Vec<(String, Redemption)>, ServiceError> {
        let mut live = Vec::new();
        for id in orders {
            let Some(json) = self.store.redemption(id.as_str())? else { continue };
            let r: Redemption = super::record("redemption", &json)?;
            if !r.ended {
                live.push((id.to_string(), r));
            }
        }
        Ok(live)
    }

    /// Commits `changes`, which end the reservations of `ended` (cancelled or expired): their
    /// coupons' records are marked ended in the same commit and, once it is durable, the coupons
    /// go back to every budget and limit (a write that fails gives nothing back; a repeat of
    /// the call finishes it).
    async fn commit_ending(&self, ended: &[&OrderId], mut changes: ChangeSet) -> Result<(), ServiceError> {
        if self.live_redemptions(ended)?.is_empty() {
            return Ok(self.store.commit(changes).await?);
        }
        // One ending of redemptions at a time, read again under the lock: each goes back once.
        let _one = self.ending_redemptions.lock().await;
        let live = self.live_redemptions(ended)?;
        for (id, r) in &live {
            let r = Redemption { ended: true, ..r.clone() };
            let json = serde_json::to_vec(&r).map_err(|e| ServiceError::Internal(e.to_string()))?;
            changes.redemptions.push((id.clone(), json));
        }
        self.store.commit(changes).await?;
        for (_, r) in &live {
            self.redeemed.give_back(r);
        }
        Ok(())
    }
}

#[async_trait]
impl Checkout for EmbeddedCheckout {
    fn core(&self) -> &Core {
        &self.core
    }

    fn storage(&self) -> &'static str {
        "embedded"
    }

    async fn route_many(&self, orders: &[optimizer::model::Order]) -> Vec<Result<Arc<Answer>, ServiceError>> {
        self.core.route_many(orders, self).await
    }

    async fn finish(&self, id: &OrderId, end: End) -> Result<OrderView, ServiceError> {
        // A ledger record of an order no longer being routed is durable: the state file is read
        // only when the ledger has none.
        if !self.core.orders().maybe_answered(id) {
            return Err(ServiceError::UnknownOrder(id.clone()));
        }
        let ledger = self.core.engine().ledger();
        let result = match end {
            End::Ship => ledger.commit_with_changes(id),
            End::Cancel => ledger.release(id).map(|t| (t, vec![])),
        };
        // The transition itself (applied now or already done) does not change the answer.
        let changes = match result {
            Ok((_, changes)) => changes,
            Err(LedgerError::UnknownOrder(_)) => {
                // No record in memory: the order was not answered (the filter erred), reserved
                // nothing, or its reservation ended durably and was forgotten; the state file
                // says which, and in what state.
                let stored = match self.store.reservation(id.as_str())? {
                    None => return Err(ServiceError::UnknownOrder(id.clone())),
                    Some(None) => return Err(ServiceError::NoReservation { order_id: id.clone() }),
                    Some(Some(stored)) => stored,
                };
                if let Err(action) = stored.state.finish_as(end.target()) {
                    return Err(ServiceError::InvalidState {
                        order_id: id.clone(),
                        state: stored.state,
                        action,
                    });
                }
                return self
                    .order(id)
                    .await?
                    .ok_or_else(|| ServiceError::Internal(format!("order {id} vanished")));
            }
            Err(LedgerError::WrongState { state, action, .. }) => {
                return Err(ServiceError::InvalidState { order_id: id.clone(), state, action })
            }
            Err(e) => return Err(ServiceError::Internal(e.to_string())),
        };
        // The ledger still holds the reservation: its end is not yet known to be durable (a
        // repeat of a call whose write failed lands here too), so the event goes with it.
        let mut events = Vec::new();
        if self.core.events() {
            let how = match end {
                End::Ship => super::events::Ended::Shipped,
                End::Cancel => super::events::Ended::Cancelled,
            };
            events.push(super::events::ended(id, how, super::now().0));
        }
        // Persisted even when this call changed nothing: an earlier, unacknowledged change then
        // becomes durable before this answer.
        let changes = ChangeSet {
            cells: self.cell_records(&changes),
            reservations: self.current_record(id).into_iter().collect(),
            events,
            ..ChangeSet::default()
        };
        match end {
            End::Ship => self.store.commit(changes).await?,
            End::Cancel => self.commit_ending(&[id], changes).await?,
        }
        // Durable now: the state file answers for it from here on.
        ledger.forget_ended(id);
        self.order(id).await?.ok_or_else(|| ServiceError::Internal(format!("order {id} vanished")))
    }

    async fn apply_feed(
        &self,
        rows: &[FeedRow],
        audit: &[AuditEntry],
        message: Option<&str>,
    ) -> Result<Vec<FedCell>, ServiceError> {
        let outcomes = self.core.engine().apply_feed(rows).map_err(|e| match e.error {
            LedgerError::NegativeOnHand { delta, .. } => ServiceError::NegativeOnHand { row: e.row, delta },
            LedgerError::OnHandTooLarge(_) => ServiceError::OnHandTooLarge { row: e.row },
            other => ServiceError::Internal(other.to_string()),
        })?;
        let changes: Vec<CellChange> = outcomes.iter().map(|o| o.change).collect();
        let cells = self.cell_records(&changes);
        let events = if self.core.events() {
            let net = self.core.engine().network();
            let brand_of = |c: &CellRecord| {
                net.store_idx(&c.store_id).map(|s| net.store(s).brand.to_string()).unwrap_or_default()
            };
            let key_id = audit.first().map_or("", |a| a.key_id.as_str());
            super::events::stock_fed(&cells, &brand_of, key_id, message, super::now().0)
        } else {
            Vec::new()
        };
        let audit = audit.iter().map(audit_json).collect::<Result<_, _>>()?;
        let message = message.map(str::to_string);
        self.store.commit(ChangeSet { cells, audit, events, message, ..ChangeSet::default() }).await?;
        self.core.metrics().feed_rows.inc_by(rows.len() as u64);
        Ok(rows
            .iter()
            .zip(outcomes)
            .map(|(r, o)| FedCell { store: r.store, sku: r.sku, level: o.level, new_row: o.new_row })
            .collect())
    }

    async fn stock_level(&self, store: StoreIdx, sku: SkuIdx) -> Result<Option<StockLevel>, ServiceError> {
        Ok(self.core.engine().ledger().level(store, sku))
    }

    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), ServiceError> {
        let audit = entries.iter().map(audit_json).collect::<Result<_, _>>()?;
        Ok(self.store.commit(ChangeSet { audit, ..ChangeSet::default() }).await?)
    }

    async fn messages_seen(&self, ids: &[&str]) -> Result<Vec<bool>, ServiceError> {
        Ok(self.store.messages_seen(ids)?)
    }

    async fn outbox(
        &self,
        after: Option<u64>,
        rows: usize,
    ) -> Result<Vec<(u64, NumberedEvents)>, ServiceError> {
        Ok(self.store.outbox(after, rows)?)
    }

    async fn outbox_published(&self, upto: u64) -> Result<(), ServiceError> {
        self.store.outbox_published(upto);
        Ok(())
    }

    fn event_stream(&self) -> Result<(String, Arc<tokio::sync::Notify>), ServiceError> {
        Ok((self.store.event_source()?, self.store.events_written()))
    }

    async fn audit_log(
        &self,
        brands: Option<&[String]>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        let keep = |json: &[u8]| match brands {
            None => true,
            Some(b) => serde_json::from_slice::<AuditEntry>(json).is_ok_and(|e| b.contains(&e.brand)),
        };
        self.store
            .audit(after, limit, &keep)?
            .into_iter()
            .map(|(seq, json)| {
                let mut e: AuditEntry = serde_json::from_slice(&json)
                    .map_err(|e| ServiceError::Internal(format!("audit entry {seq}: {e}")))?;
                e.seq = seq;
                Ok(e)
            })
            .collect()
    }

    async fn save_key(&self, id: &str, record: &serde_json::Value) -> Result<(), ServiceError> {
        let bytes = serde_json::to_vec(record).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(self.store.save_key(id.to_string(), bytes).await?)
    }

    async fn keys(&self) -> Result<Vec<serde_json::Value>, ServiceError> {
        self.store.keys()?.iter().map(|b| super::record("key", b)).collect()
    }

    async fn put_campaign(&self, c: &Campaign, expect: Option<u64>) -> Result<bool, ServiceError> {
        let _writing = self.campaign_writes.lock().await;
        let stored: Option<Campaign> =
            self.store.campaign(c.id)?.map(|b| super::record("campaign", &b)).transpose()?;
        if stored.map(|s| s.version) != expect {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(c).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store.save_campaign(c.id, bytes).await?;
        Ok(true)
    }

    async fn capture(
        &self,
        c: &Campaign,
        customer: &str,
        entry: WalletEntry,
    ) -> Result<Captured, ServiceError> {
        let shard = rustc_hash::FxBuildHasher.hash_one(customer) as usize % CAPTURE_SHARDS;
        let _one_at_a_time = self.capture_locks[shard].lock().await;
        if let Some(held) = self.store.wallet_entry(customer, c.id)? {
            return Ok(Captured::Already(super::record("wallet entry", &held)?));
        }
        if !self.issued.try_issue(&c.budgets, &entry) {
            return Ok(Captured::OverBudget);
        }
        let json = serde_json::to_vec(&entry).map_err(|e| ServiceError::Internal(e.to_string()))?;
        if let Err(e) = self.store.save_wallet_entry(customer.to_string(), c.id, json).await {
            self.issued.undo(&entry);
            return Err(e.into());
        }
        Ok(Captured::New(entry))
    }

    async fn wallet(&self, customer: &str) -> Result<Vec<WalletEntry>, ServiceError> {
        let mut entries: Vec<WalletEntry> = self
            .store
            .wallet(customer)?
            .iter()
            .map(|b| super::record("wallet entry", b))
            .collect::<Result<_, _>>()?;
        for e in &mut entries {
            e.redeemed = self.redeemed.of_customer(customer, e.campaign);
        }
        Ok(entries)
    }

    async fn campaign_tally(
        &self,
        campaign: u32,
    ) -> Result<rustc_hash::FxHashMap<u32, crate::coupons::stats::StoreTally>, ServiceError> {
        let mut out: rustc_hash::FxHashMap<u32, crate::coupons::stats::StoreTally> = Default::default();
        for (store, n) in self.issued.issued(campaign).1 {
            out.entry(store).or_default().captured = n;
        }
        for (store, (n, cents)) in self.redeemed.tally(campaign).per_store {
            let t = out.entry(store).or_default();
            t.redeemed = n;
            t.discount_cents = cents;
        }
        Ok(out)
    }

    async fn campaign(&self, id: u32) -> Result<Option<Campaign>, ServiceError> {
        self.store.campaign(id)?.map(|b| super::record("campaign", &b)).transpose()
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, ServiceError> {
        self.store.campaigns()?.iter().map(|b| super::record("campaign", b)).collect()
    }

    async fn orders_on_day(&self, store: StoreIdx, at: Timestamp) -> Result<u32, ServiceError> {
        Ok(self.core.engine().ledger().orders_today(store, at))
    }

    async fn order(&self, id: &OrderId) -> Result<Option<OrderView>, ServiceError> {
        if !self.core.orders().maybe_answered(id) {
            return Ok(None);
        }
        let Some(record) = self.store.order(id.as_str())? else { return Ok(None) };
        let reservation = self.reservation_state(id)?;
        Ok(Some(OrderView {
            order_id: id.clone(),
            state: reservation.map(|(s, _)| s),
            expires_at: reservation.map(|(_, at)| at),
            decision: record.response,
        }))
    }

    async fn expire_due(&self, at: Timestamp) -> Result<u64, ServiceError> {
        let expired = self.core.engine().ledger().expire(at);
        if expired.is_empty() {
            return Ok(0);
        }
        self.core.metrics().expired.inc_by(expired.len() as u64);
        let reservations = expired.iter().filter_map(|id| self.current_record(id)).collect();
        let events = if self.core.events() {
            expired.iter().map(|id| super::events::ended(id, super::events::Ended::Expired, at.0)).collect()
        } else {
            Vec::new()
        };
        let changes = ChangeSet { reservations, events, ..ChangeSet::default() };
        self.commit_ending(&expired.iter().collect::<Vec<_>>(), changes).await?;
        let ledger = self.core.engine().ledger();
        for id in &expired {
            ledger.forget_ended(id);
        }
        Ok(expired.len() as u64)
    }

    async fn backup(&self) -> Result<Backup, ServiceError> {
        let dir = self.state_dir.join("backups");
        std::fs::create_dir_all(&dir).map_err(|e| StorageError(format!("{}: {e}", dir.display())))?;
        let path = dir.join(format!("state-{}.redb", super::now().0));
        // A large state takes a while to copy: off the HTTP worker.
        let summary = tokio::task::spawn_blocking(self.store.backup(path.clone()))
            .await
            .map_err(|e| ServiceError::Internal(format!("backup: {e}")))??;
        Ok(Backup { path, cells: summary.cells, reservations: summary.reservations, orders: summary.orders })
    }

    async fn ready(&self) -> Result<(), ServiceError> {
        if self.store.healthy() {
            Ok(())
        } else {
            Err(StorageError("state writes are failing".into()).into())
        }
    }
}

fn audit_json(e: &AuditEntry) -> Result<Vec<u8>, ServiceError> {
    serde_json::to_vec(e).map_err(|x| ServiceError::Internal(x.to_string()))
}
