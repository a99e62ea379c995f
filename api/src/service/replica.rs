//! The checkout service of one replica over PostgreSQL + PostGIS: the database is the authority
//! for stock, reservations and answered orders; the in-memory ledger is a cache of it.
//!
//! A replica routes an order on its cache exactly as the embedded service does (the ledger's
//! reservation is an *in-flight* hold), then asks the database to reserve it
//! (`omniroute_reserve`, folded with concurrent orders into one transaction). A decision the
//! database refuses (another replica took the stock) comes back with the cells' current values:
//! the hold is dropped, the cache takes the values and the order is routed again. The cache
//! follows every change through LISTEN/NOTIFY ([`CacheSink`]), newest version wins.

use super::core::{Core, Decided, Persist, Persisted};
use super::{
    now, Answer, AuditEntry, Backup, Checkout, End, FedCell, OpenError, OrderView, ServiceConfig,
    ServiceError,
};
use crate::coupons::campaign::Campaign;
use crate::coupons::redeem::{Redeemed, Redemption, Refusal, Refused};
use crate::coupons::wallet::{Captured, WalletEntry};
use crate::storage::postgres::{
    DbCell, DbFeedError, FeedChange, Notice, Outcome, Pending, PendingCoupons, Postgres,
};
use crate::storage::{NumberedEvents, StorageError};

/// Why a replica publishes no events.
const NO_OUTBOX: &str = "events out need the embedded store: replicas on PostgreSQL keep no outbox yet";
use async_trait::async_trait;
use optimizer::ledger::{FeedRow, ReservationState, StockChange, StockLevel};
use optimizer::model::{Network, Order, OrderId, SkuIdx, StoreIdx, Timestamp};
use optimizer::{Engine, EngineConfig};
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// The checkout service of one PostgreSQL replica.
pub struct ReplicaCheckout {
    core: Core,
    pg: Postgres,
    regions: crate::data::regions::Regions,
}

impl ReplicaCheckout {
    /// Connects to the database, starts listening for changes, then builds the cache: the network
    /// from the dataset, stock from the database (read after LISTEN is in place, so that no change
    /// is missed). The database must hold the dataset's stores at the same places.
    pub fn connect(
        config: &ServiceConfig,
        url: &str,
        batchers: usize,
    ) -> Result<Arc<ReplicaCheckout>, OpenError> {
        let t = Instant::now();
        let pg = Postgres::connect(url, batchers)?;
        let sink = CacheSink::new();
        pg.listen(sink.callback()).map_err(|e| StorageError(format!("listening for stock changes: {e}")))?;
        let cells = pg.stock_snapshot().map_err(|e| StorageError(format!("reading stock: {e}")))?;
        let loaded = crate::data::load_network_with_stock(
            &config.data,
            cells.iter().map(|c| (c.store_id.as_str(), c.sku.as_str(), c.free, c.safety_stock)),
        )?;
        let regions = crate::data::regions::Regions::load(&config.data, &loaded.network)?;
        check_stores(&pg, &loaded.network, &regions, &config.data)?;
        let engine_config = EngineConfig { ledger: config.ledger, ..EngineConfig::default() };
        let engine = Engine::new(loaded.network, loaded.stock, engine_config);
        for c in cells.iter().filter(|c| c.version > 0) {
            sync_cell(&engine, c);
        }
        let core = Core::new(engine, config.routing)
            .with_prices(crate::data::prices::read(&config.data)?)
            .with_recommendations(&config.data)?;
        let replica = Arc::new(ReplicaCheckout { core, pg, regions });
        sink.go_live(&replica);
        log::info!(
            "loaded {} stores from {} and {} stock cells from the database in {:.2} s",
            replica.core.engine().network().stores().len(),
            config.data.display(),
            cells.len(),
            t.elapsed().as_secs_f64()
        );
        Ok(replica)
    }

    /// Pending form of a decision for the database (external ids).
    fn pending(&self, d: &Decided) -> Pending {
        let net = self.core.engine().network();
        let (day, expires_at, holds) = match &d.reservation {
            Some(r) => (
                r.day,
                r.expires_at.0,
                r.holds
                    .iter()
                    .map(|h| (net.store_id(h.store).clone(), net.catalog().sku(h.sku).clone(), h.qty))
                    .collect(),
            ),
            None => (d.day, 0, Vec::new()),
        };
        Pending {
            order_id: d.order_id.to_string(),
            request: d.answer.request.clone(),
            response: d.answer.response.clone(),
            day,
            expires_at,
            holds,
            customer_id: d.customer_id.clone(),
            // Regions key the rows on Citus only; plain PostgreSQL has no use for them.
            region: if self.pg.citus() {
                self.regions.of_location(d.location).to_owned()
            } else {
                String::new()
            },
            hold_regions: match &d.reservation {
                Some(r) if self.pg.citus() => {
                    let mut regions: Vec<String> =
                        r.holds.iter().map(|h| self.regions.of_store(net, h.store).to_owned()).collect();
                    regions.sort_unstable();
                    regions.dedup();
                    regions
                }
                _ => Vec::new(),
            },
            coupons: d.redemption.as_ref().map(|r| PendingCoupons {
                customer: r.customer.clone(),
                at: r.at,
                items: r
                    .coupons
                    .iter()
                    .zip(&d.coupon_terms)
                    .map(|(c, (b, per_customer))| {
                        (
                            c.campaign,
                            c.store_number,
                            c.serial,
                            c.off_cents,
                            b.redeemed,
                            b.discount_cents,
                            b.redeemed_per_store,
                            b.redeemed_per_poster,
                            *per_customer,
                        )
                    })
                    .collect(),
            }),
        }
    }

    fn view(&self, id: &OrderId, stored: crate::storage::postgres::StoredOrder) -> OrderView {
        OrderView {
            order_id: id.clone(),
            state: stored.reservation.map(|(s, _)| s),
            expires_at: stored.reservation.map(|(_, e)| Timestamp(e)),
            decision: stored.response.into(),
        }
    }
}

impl Persist for ReplicaCheckout {
    async fn persist(&self, decided: &[Decided]) -> Result<Vec<Persisted>, StorageError> {
        let engine = self.core.engine();
        let ledger = engine.ledger();
        let outcomes = self.pg.reserve(decided.iter().map(|d| self.pending(d)).collect()).await?;
        let mut out = Vec::with_capacity(decided.len());
        for (d, outcome) in decided.iter().zip(outcomes) {
            out.push(match outcome {
                Outcome::Reserved { cells } => {
                    for c in &cells {
                        sync_cell(engine, c);
                    }
                    ledger.settle(&d.order_id);
                    Persisted::Durable
                }
                Outcome::Refused { cells, full } => {
                    ledger.abandon(&d.order_id);
                    for c in &cells {
                        sync_cell(engine, c);
                    }
                    let net = engine.network();
                    let day = net.zone().local_day(now());
                    for (store_id, count) in full {
                        if let Some(store) = net.store_idx(&store_id) {
                            ledger.sync_orders(store, day, count);
                        }
                    }
                    Persisted::Refused
                }
                Outcome::Existing { request, response } => {
                    ledger.abandon(&d.order_id);
                    // Answered before, perhaps by another replica: the state of its reservation now.
                    let state =
                        self.pg.order(d.order_id.as_str()).await?.and_then(|o| o.reservation).map(|(s, _)| s);
                    Persisted::Existing(Answer { request, response: response.into() }, state)
                }
                Outcome::CouponRefused { campaign, reason } => {
                    ledger.abandon(&d.order_id);
                    let reason = match reason.as_str() {
                        "customer_limit_reached" => Refusal::CustomerLimitReached,
                        _ => Refusal::BudgetSpent,
                    };
                    Persisted::CouponRefused((campaign, reason))
                }
            });
        }
        Ok(out)
    }

    async fn stored_answer(
        &self,
        id: &OrderId,
    ) -> Result<Option<(Answer, Option<ReservationState>)>, ServiceError> {
        let Some(stored) = self.pg.order(id.as_str()).await? else { return Ok(None) };
        let state = stored.reservation.map(|(s, _)| s);
        Ok(Some((Answer { request: stored.request, response: stored.response.into() }, state)))
    }

    /// The database takes them, with the stock ([`Persist::persist`]).
    fn take_coupons(&self, _: &str, _: &[(Redeemed, &Campaign)]) -> Result<(), Refused> {
        Ok(())
    }

    fn give_back_coupons(&self, _: &Redemption) {}
}

#[async_trait]
impl Checkout for ReplicaCheckout {
    fn core(&self) -> &Core {
        &self.core
    }

    fn storage(&self) -> &'static str {
        "postgres"
    }

    async fn route_many(&self, orders: &[Order]) -> Vec<Result<Arc<Answer>, ServiceError>> {
        self.core.route_many(orders, self).await
    }

    /// Against the database: the reservation may have been made by any replica; the caches
    /// follow through the stock notifications.
    async fn finish(&self, id: &OrderId, end: End) -> Result<OrderView, ServiceError> {
        let target = end.target();
        let done = self.pg.finish(id.as_str(), target).await?;
        let Some(state) = done.state else {
            // No reservation: an unknown order, or one that reserved nothing.
            return match self.pg.order(id.as_str()).await? {
                None => Err(ServiceError::UnknownOrder(id.clone())),
                Some(_) => Err(ServiceError::NoReservation { order_id: id.clone() }),
            };
        };
        // The state after the call: ending it again (or cancelling an expired one) is fine.
        if let Err(action) = state.finish_as(target) {
            return Err(ServiceError::InvalidState { order_id: id.clone(), state, action });
        }
        self.order(id).await?.ok_or_else(|| ServiceError::Internal(format!("order {id} vanished")))
    }

    /// All rows or none, in one transaction; the cache takes the new values at once (other
    /// replicas through the notifications).
    async fn apply_feed(
        &self,
        rows: &[FeedRow],
        audit: &[AuditEntry],
        message: Option<&str>,
    ) -> Result<Vec<FedCell>, ServiceError> {
        let engine = self.core.engine();
        let net = engine.network();
        let external = rows
            .iter()
            .map(|r| {
                let change = match r.change {
                    StockChange::Set { on_hand, safety_stock } => FeedChange::Set { on_hand, safety_stock },
                    StockChange::Add(d) => FeedChange::Add(d),
                };
                (net.store_id(r.store).clone(), net.catalog().sku(r.sku).clone(), change)
            })
            .collect();
        let results = self.pg.feed(external, audit, message).await.map_err(|e| match e {
            DbFeedError::Negative { row } => {
                let delta = match rows.get(row).map(|r| r.change) {
                    Some(StockChange::Add(d)) => d,
                    _ => 0,
                };
                ServiceError::NegativeOnHand { row, delta }
            }
            DbFeedError::TooLarge { row } => ServiceError::OnHandTooLarge { row },
            DbFeedError::Duplicate => ServiceError::DuplicateMessage(message.unwrap_or_default().to_string()),
            DbFeedError::Storage(e) => e.into(),
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (r, res) in rows.iter().zip(&results) {
            engine.sync_cell(
                r.store,
                r.sku,
                res.on_hand.saturating_sub(res.reserved),
                res.safety_stock,
                res.version,
            );
            let level = StockLevel::new(res.on_hand, res.reserved, res.safety_stock);
            out.push(FedCell { store: r.store, sku: r.sku, level, new_row: res.new_row });
        }
        self.core.metrics().feed_rows.inc_by(results.len() as u64);
        Ok(out)
    }

    async fn stock_level(&self, store: StoreIdx, sku: SkuIdx) -> Result<Option<StockLevel>, ServiceError> {
        let net = self.core.engine().network();
        let level = self.pg.stock_level(net.store_id(store), net.catalog().sku(sku)).await?;
        Ok(level.map(|(on_hand, reserved, safety)| StockLevel::new(on_hand, reserved, safety)))
    }

    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), ServiceError> {
        Ok(self.pg.record_audit(entries).await?)
    }

    async fn messages_seen(&self, ids: &[&str]) -> Result<Vec<bool>, ServiceError> {
        Ok(self.pg.messages_seen(ids).await?)
    }

    async fn outbox(
        &self,
        _after: Option<u64>,
        _rows: usize,
    ) -> Result<Vec<(u64, NumberedEvents)>, ServiceError> {
        Err(ServiceError::Unsupported(NO_OUTBOX))
    }

    async fn outbox_published(&self, _upto: u64) -> Result<(), ServiceError> {
        Err(ServiceError::Unsupported(NO_OUTBOX))
    }

    fn event_stream(&self) -> Result<(String, Arc<tokio::sync::Notify>), ServiceError> {
        Err(ServiceError::Unsupported(NO_OUTBOX))
    }

    async fn audit_log(
        &self,
        brands: Option<&[String]>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        Ok(self.pg.audit_log(brands, after, limit).await?)
    }

    async fn save_key(&self, id: &str, record: &serde_json::Value) -> Result<(), ServiceError> {
        Ok(self.pg.save_key(id, record).await?)
    }

    async fn keys(&self) -> Result<Vec<serde_json::Value>, ServiceError> {
        Ok(self.pg.keys().await?)
    }

    async fn put_campaign(&self, c: &Campaign, expect: Option<u64>) -> Result<bool, ServiceError> {
        let json = serde_json::to_value(c).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(self.pg.put_campaign(c.id, &c.brand, &json, expect).await?)
    }

    async fn capture(
        &self,
        c: &Campaign,
        customer: &str,
        entry: WalletEntry,
    ) -> Result<Captured, ServiceError> {
        let json = serde_json::to_value(&entry).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let b = &c.budgets;
        let caps = [b.issued, b.issued_per_store, b.issued_per_poster];
        let (outcome, held) =
            self.pg.capture(customer, c.id, entry.store_number, entry.serial, &json, caps).await?;
        match (outcome.as_str(), held) {
            ("new", _) => Ok(Captured::New(entry)),
            ("already", Some(held)) => Ok(Captured::Already(super::record_value("wallet entry", held)?)),
            ("over_budget", _) => Ok(Captured::OverBudget),
            (other, _) => Err(ServiceError::Internal(format!("omniroute_capture answered {other}"))),
        }
    }

    async fn wallet(&self, customer: &str) -> Result<Vec<WalletEntry>, ServiceError> {
        self.pg.wallet(customer).await?.into_iter().map(|v| super::record_value("wallet entry", v)).collect()
    }

    async fn campaign_tally(
        &self,
        campaign: u32,
    ) -> Result<rustc_hash::FxHashMap<u32, crate::coupons::stats::StoreTally>, ServiceError> {
        let mut out: rustc_hash::FxHashMap<u32, crate::coupons::stats::StoreTally> = Default::default();
        for (store, captured, redeemed, cents) in self.pg.campaign_tally(campaign).await? {
            let t = out.entry(store).or_default();
            t.captured += captured;
            t.redeemed += redeemed;
            t.discount_cents += cents;
        }
        Ok(out)
    }

    async fn campaign(&self, id: u32) -> Result<Option<Campaign>, ServiceError> {
        let Some(v) = self.pg.campaign(id).await? else { return Ok(None) };
        super::record_value("campaign", v).map(Some)
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, ServiceError> {
        self.pg.campaigns().await?.into_iter().map(|v| super::record_value("campaign", v)).collect()
    }

    async fn orders_on_day(&self, store: StoreIdx, at: Timestamp) -> Result<u32, ServiceError> {
        let net = self.core.engine().network();
        Ok(self.pg.orders_on_day(net.store_id(store), net.zone().local_day(at)).await?)
    }

    async fn order(&self, id: &OrderId) -> Result<Option<OrderView>, ServiceError> {
        Ok(self.pg.order(id.as_str()).await?.map(|stored| self.view(id, stored)))
    }

    async fn expire_due(&self, at: Timestamp) -> Result<u64, ServiceError> {
        let n = self.pg.expire(at.0).await?;
        self.core.metrics().expired.inc_by(n);
        Ok(n)
    }

    async fn ready(&self) -> Result<(), ServiceError> {
        Ok(self.pg.ping().await?)
    }

    async fn backup(&self) -> Result<Backup, ServiceError> {
        Err(ServiceError::Unsupported(
            "the state is in PostgreSQL: back it up with the database's own tools (pg_dump, pg_basebackup)",
        ))
    }
}

/// The database must hold the dataset's stores, at the same places: the replica routes on the
/// dataset's network and reserves in the database by store id.
fn check_stores(
    pg: &Postgres,
    network: &Network,
    regions: &crate::data::regions::Regions,
    data: &std::path::Path,
) -> Result<(), OpenError> {
    let import =
        || format!("import this dataset with `omniroute db import --data {} --replace`", data.display());
    let located = pg.store_locations().map_err(|e| StorageError(format!("reading stores: {e}")))?;
    if located.len() != network.stores().len() {
        return Err(OpenError::State(format!(
            "the database holds {} stores but {} has {}: {}",
            located.len(),
            data.display(),
            network.stores().len(),
            import()
        )));
    }
    for (id, lon, lat, region) in located {
        // On Citus a store's region places its stock: the dataset's regions must be the database's.
        let same = network.store_idx(id.as_str()).is_some_and(|i| {
            let at = network.store(i).location;
            (at.lon() - lon).abs() < 1e-6
                && (at.lat() - lat).abs() < 1e-6
                && (!pg.citus() || regions.of_store(network, i) == region)
        });
        if !same {
            return Err(OpenError::State(format!(
                "store {id} in the database is missing from {} or elsewhere (or in another region): {}",
                data.display(),
                import()
            )));
        }
    }
    Ok(())
}

/// Applies a database cell to the cache; a SKU another replica's feed brought is learned.
/// Unknown stores (changed behind the service's back) are skipped: the replica's stores come
/// from its dataset.
fn sync_cell(engine: &Engine, c: &DbCell) -> bool {
    let net = engine.network();
    match (net.store_idx(&c.store_id), engine.learn_sku(&c.sku)) {
        (Some(store), Ok(sku)) => engine.sync_cell(store, sku, c.free, c.safety_stock, c.version),
        _ => {
            log::debug!("stock change for store {} sku {} outside this replica's network", c.store_id, c.sku);
            false
        }
    }
}

enum SinkState {
    /// Start-up: the cache is not built yet; notices wait.
    Buffering(Vec<Notice>),
    Live(Weak<ReplicaCheckout>),
}

/// Receives the database's notifications and applies them to the cache once it exists.
struct CacheSink {
    state: Mutex<SinkState>,
}

impl CacheSink {
    fn new() -> Arc<CacheSink> {
        Arc::new(CacheSink { state: Mutex::new(SinkState::Buffering(Vec::new())) })
    }

    /// The callback for [`Postgres::listen`].
    fn callback(self: &Arc<Self>) -> Arc<dyn Fn(Notice) + Send + Sync> {
        let sink = self.clone();
        Arc::new(move |n| sink.notice(n))
    }

    /// Starts applying notices to `replica`'s cache, first the ones that arrived meanwhile.
    fn go_live(&self, replica: &Arc<ReplicaCheckout>) {
        let mut s = self.state.lock();
        if let SinkState::Buffering(buffered) = &mut *s {
            for n in std::mem::take(buffered) {
                apply(replica, n);
            }
        }
        *s = SinkState::Live(Arc::downgrade(replica));
    }

    fn notice(&self, n: Notice) {
        let mut s = self.state.lock();
        match &mut *s {
            SinkState::Buffering(v) => v.push(n),
            SinkState::Live(weak) => {
                if let Some(replica) = weak.upgrade() {
                    apply(&replica, n);
                }
            }
        }
    }
}

fn apply(replica: &Arc<ReplicaCheckout>, n: Notice) {
    match n {
        Notice::Stock(cell) => {
            if sync_cell(replica.core.engine(), &cell) {
                replica.core.metrics().cache_updates.inc();
            }
        }
        Notice::Store(id) => log::warn!(
            "store {id} changed in the database; store attributes come from the dataset: restart replicas to pick them up"
        ),
        Notice::Resync => {
            // Changes may have been missed while the stream was down: reread every cell (the
            // versions keep newer values already applied).
            let weak = Arc::downgrade(replica);
            std::thread::spawn(move || {
                let Some(replica) = weak.upgrade() else { return };
                match replica.pg.stock_snapshot() {
                    Ok(cells) => {
                        let n = cells.iter().filter(|c| sync_cell(replica.core.engine(), c)).count();
                        log::info!("cache resynchronised: {n} of {} cells changed", cells.len());
                    }
                    Err(e) => log::error!("cache resync failed: {e}"),
                }
            });
        }
    }
}
