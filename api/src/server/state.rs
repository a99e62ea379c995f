//! The application state shared by all workers, and the operations handlers build on.

use super::auth::ApiKeys;
use super::backend::{self, Backend};
use super::error::ApiError;
use super::metrics::Metrics;
use super::orderbook::{self, Answer, Claim, OrderBook};
use crate::data::order_json::OrderJson;
use crate::storage::postgres::{Outcome, Pending, Postgres};
use crate::storage::{
    CellRecord, ChangeSet, OrderRecord, Recovery, ReservationRecord, Storage, StorageError,
};
use optimizer::ledger::{CellChange, Hold, Reservation};
use optimizer::model::{Order, OrderId, Sku, StoreId, Timestamp};
use optimizer::router::{Decision, Router};
use optimizer::travel::TravelCost;
use optimizer::Engine;
use std::sync::Arc;

/// Request size limits.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_body_bytes: usize,
    pub max_batch_orders: usize,
    pub max_feed_rows: usize,
    pub max_plan_orders: usize,
    pub max_plan_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_batch_body_bytes: 32 * 1024 * 1024,
            max_batch_orders: 10_000,
            max_feed_rows: 100_000,
            max_plan_orders: 1_000_000,
            max_plan_body_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Everything a handler needs.
pub struct AppState {
    pub engine: Engine,
    pub router: Router<Box<dyn TravelCost>>,
    pub backend: Backend,
    pub orders: OrderBook,
    pub keys: ApiKeys,
    pub metrics: Metrics,
    pub limits: Limits,
    pub plans: super::plans::PlanBook,
}

/// The wall clock, as a [`Timestamp`].
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Timestamp(secs as i64)
}

impl AppState {
    /// The state of a service over `engine` with `backend`.
    pub fn new(engine: Engine, config: &super::ServeConfig, backend: Backend) -> AppState {
        let cost = config.cost.build(&engine);
        AppState {
            engine,
            router: Router::new(config.router, cost),
            backend,
            orders: Default::default(),
            keys: config.keys.clone(),
            metrics: Default::default(),
            limits: config.limits,
            plans: Default::default(),
        }
    }
}

/// Most times one order is routed again after the database refused its store (stale cache).
const MAX_DB_ATTEMPTS: usize = 8;

impl AppState {
    /// The embedded store, when that is the backend.
    fn embedded(&self) -> Option<&dyn Storage> {
        match &self.backend {
            Backend::Embedded(s) => Some(s.as_ref()),
            Backend::Postgres(_) => None,
        }
    }

    /// Persists `changes` in the embedded store (the PostgreSQL backend writes through its own
    /// calls and has nothing to do here).
    pub async fn commit(&self, changes: ChangeSet) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Embedded(s) => s.commit(changes).await,
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Applies persisted state on top of the freshly loaded dataset (embedded store; a
    /// PostgreSQL replica builds its cache from the database instead).
    pub fn recover(&self) -> Result<(usize, usize), ApiError> {
        let Some(storage) = self.embedded() else { return Ok((0, 0)) };
        struct Apply<'a> {
            state: &'a AppState,
            cells: usize,
            orders: usize,
            error: Option<ApiError>,
        }
        impl Recovery for Apply<'_> {
            fn cell(&mut self, c: CellRecord) {
                let net = self.state.engine.network();
                let (Some(store), Some(sku)) =
                    (net.store_idx(StoreId(c.store_id)), net.catalog().get(Sku(c.sku)))
                else {
                    log::warn!(
                        "state has stock for store {} sku {} that the dataset lacks; skipped",
                        c.store_id,
                        c.sku
                    );
                    return;
                };
                self.state.engine.restore_cell(store, sku, c.on_hand, c.safety_stock, c.version);
                self.cells += 1;
            }
            fn reservation(&mut self, order_id: &str, r: ReservationRecord) {
                let net = self.state.engine.network();
                let Ok(id) = OrderId::parse(order_id) else { return };
                let holds = r
                    .holds
                    .iter()
                    .filter_map(|&(store, sku, qty)| {
                        Some(Hold {
                            store: net.store_idx(StoreId(store))?,
                            sku: net.catalog().get(Sku(sku))?,
                            qty,
                        })
                    })
                    .collect();
                let record =
                    Reservation { holds, day: r.day, expires_at: Timestamp(r.expires_at), state: r.state };
                if let Err(e) = self.state.engine.ledger().restore_reservation(id, record) {
                    self.error.get_or_insert(ApiError::Internal(e.to_string()));
                }
            }
            fn order(&mut self, order_id: &str, request: &str) {
                match OrderId::parse(order_id) {
                    Ok(id) => {
                        self.state.orders.insert(id, request);
                        self.orders += 1;
                    }
                    Err(e) => {
                        self.error
                            .get_or_insert(ApiError::Internal(format!("stored order id {order_id}: {e}")));
                    }
                }
            }
        }
        let mut apply = Apply { state: self, cells: 0, orders: 0, error: None };
        storage.recover(&mut apply)?;
        if let Some(e) = apply.error {
            return Err(e);
        }
        self.metrics.orders.set(apply.orders as i64);
        Ok((apply.cells, apply.orders))
    }

    /// The persisted form of an order's current reservation.
    pub fn reservation_record(&self, id: &OrderId) -> Option<ReservationRecord> {
        let net = self.engine.network();
        self.engine.ledger().reservation(id).map(|r| ReservationRecord {
            state: r.state,
            day: r.day,
            expires_at: r.expires_at.0,
            holds: r
                .holds
                .iter()
                .map(|h| (net.store(h.store).id.0, net.catalog().sku(h.sku).0, h.qty))
                .collect(),
        })
    }

    /// The stored answer of an answered order.
    pub async fn answer(&self, id: &OrderId) -> Result<Answer, ApiError> {
        if let Backend::Postgres(pg) = &self.backend {
            let stored = pg.order(id.as_str()).await?.ok_or_else(|| {
                ApiError::Internal(format!("order {id} is answered but not in the database"))
            })?;
            return Ok(Answer { request: stored.request, response: stored.response.into() });
        }
        let storage = self.embedded().expect("embedded when not postgres");
        let record = storage
            .order(id.as_str())?
            .ok_or_else(|| ApiError::Internal(format!("order {id} is answered but not in storage")))?;
        Ok(Answer { request: record.request, response: record.response.into() })
    }

    pub fn cell_records(&self, changes: &[CellChange]) -> Vec<CellRecord> {
        let net = self.engine.network();
        changes
            .iter()
            .map(|c| CellRecord {
                store_id: net.store(c.store).id.0,
                sku: net.catalog().sku(c.sku).0,
                on_hand: c.on_hand,
                safety_stock: c.safety_stock,
                version: c.version,
            })
            .collect()
    }

    fn count(&self, d: &Decision) {
        self.metrics.routes.with_label_values(&[d.status.as_str()]).inc();
        if d.reservation_expires_at.is_some() {
            self.metrics.reservations.inc();
        }
        // One counter lookup per reason, not per rejected store.
        let mut by_reason: Vec<(&'static str, u64)> = Vec::new();
        for r in &d.explanation.rejected {
            let reason = r.rejection.reason();
            match by_reason.iter_mut().find(|(name, _)| *name == reason) {
                Some((_, n)) => *n += 1,
                None => by_reason.push((reason, 1)),
            }
        }
        for (reason, n) in by_reason {
            self.metrics.rejections.with_label_values(&[reason]).inc_by(n);
        }
    }

    /// Routes and reserves one order now; returns the answer, what to persist and the decision
    /// (for [`AppState::count`] once the answer is final).
    fn decide(&self, order: &Order, request: String) -> Result<(Arc<Answer>, ChangeSet, Decision), ApiError> {
        let decision = self
            .router
            .route_at(&self.engine, order, now())
            .map_err(|e| ApiError::Internal(format!("routing {}: {e}", order.id())))?;
        let response = serde_json::to_string(&decision).map_err(|e| ApiError::Internal(e.to_string()))?;
        let id = order.id().as_str().to_owned();
        let record =
            OrderRecord { order_id: id.clone(), request: request.clone(), response: response.clone() };
        let reservations = self.reservation_record(order.id()).map(|r| (id, r)).into_iter().collect();
        let answer = Arc::new(Answer { request, response: response.into() });
        Ok((answer, ChangeSet { cells: vec![], orders: vec![record], reservations }, decision))
    }

    /// An answered order's stored answer, if `request` matches it.
    async fn replay(&self, fingerprint: u64, request: &str, id: &OrderId) -> Result<Arc<Answer>, ApiError> {
        if fingerprint != orderbook::fingerprint(request) {
            return Err(ApiError::IdempotencyMismatch { order_id: id.to_string() });
        }
        self.check(Arc::new(self.answer(id).await?), request, id)
    }

    /// `answer` if it was given for `request` (a counted replay); otherwise a conflict.
    fn check(&self, answer: Arc<Answer>, request: &str, id: &OrderId) -> Result<Arc<Answer>, ApiError> {
        if answer.request != request {
            return Err(ApiError::IdempotencyMismatch { order_id: id.to_string() });
        }
        self.metrics.replays.inc();
        Ok(answer)
    }

    /// Routes a batch of validated orders with idempotency, persisting all new decisions in one
    /// durable write. Order ids must be distinct within the batch.
    pub async fn route_many(&self, orders: &[Order]) -> Vec<Result<Arc<Answer>, ApiError>> {
        let storage = match &self.backend {
            Backend::Embedded(s) => s.as_ref(),
            Backend::Postgres(pg) => return self.route_many_pg(pg, orders).await,
        };
        let requests: Vec<String> = orders.iter().map(canonical).collect();
        let mut results: Vec<Option<Result<Arc<Answer>, ApiError>>> = vec![None; orders.len()];
        let mut pending = Vec::new();
        loop {
            let mut owners = Vec::new();
            let mut changes = ChangeSet::default();
            for (i, order) in orders.iter().enumerate() {
                if results[i].is_some() || pending.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                match self.orders.claim(order.id()) {
                    Claim::Done(f) => results[i] = Some(self.replay(f, &requests[i], order.id()).await),
                    Claim::Wait(rx) => pending.push((i, rx)),
                    Claim::Owner(owner) => match self.decide(order, requests[i].clone()) {
                        Ok((answer, change, decision)) => {
                            self.count(&decision);
                            changes.orders.extend(change.orders);
                            changes.reservations.extend(change.reservations);
                            owners.push((i, owner, answer));
                        }
                        Err(e) => results[i] = Some(Err(e)),
                    },
                }
            }
            if !owners.is_empty() {
                match storage.commit(changes).await {
                    Ok(()) => {
                        self.metrics.orders.add(owners.len() as i64);
                        for (i, owner, answer) in owners {
                            owner.complete(answer.clone());
                            results[i] = Some(Ok(answer));
                        }
                    }
                    Err(e) => {
                        for (i, owner, _) in owners {
                            // Not durable: undo the reservation so that nothing unacknowledged holds stock.
                            let _ = self.engine.ledger().release(owner.id());
                            results[i] = Some(Err(ApiError::from(e.clone())));
                        }
                    }
                }
            }
            let mut retry = false;
            for (i, rx) in std::mem::take(&mut pending) {
                match orderbook::wait(rx).await {
                    Some(a) => results[i] = Some(self.check(a, &requests[i], orders[i].id())),
                    None => retry = true,
                }
            }
            if !retry {
                break;
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ApiError::Internal("order left unanswered".into()))))
            .collect()
    }

    /// PostgreSQL backend: routes on the cache, then lets the database reserve (folded with
    /// other requests into one transaction). A decision the database refuses (another replica
    /// took that stock) is routed again against the refreshed cells; an order another replica
    /// answered gets that answer.
    async fn route_many_pg(&self, pg: &Postgres, orders: &[Order]) -> Vec<Result<Arc<Answer>, ApiError>> {
        let requests: Vec<String> = orders.iter().map(canonical).collect();
        let mut results: Vec<Option<Result<Arc<Answer>, ApiError>>> = vec![None; orders.len()];
        let mut todo = Vec::new();
        let mut waits = Vec::new();
        for (i, order) in orders.iter().enumerate() {
            match self.orders.claim(order.id()) {
                Claim::Done(f) => results[i] = Some(self.replay(f, &requests[i], order.id()).await),
                Claim::Wait(rx) => waits.push((i, rx)),
                Claim::Owner(owner) => todo.push((i, owner)),
            }
        }
        let ledger = self.engine.ledger();
        for _ in 0..MAX_DB_ATTEMPTS {
            if todo.is_empty() {
                break;
            }
            let mut batch = Vec::with_capacity(todo.len());
            let mut routed = Vec::with_capacity(todo.len());
            for (i, owner) in std::mem::take(&mut todo) {
                match self.decide(&orders[i], requests[i].clone()) {
                    Ok((answer, mut change, decision)) => {
                        let (day, expires_at, holds) = match change.reservations.pop() {
                            Some((_, r)) => (r.day, r.expires_at, r.holds),
                            None => (now().local_day(), 0, Vec::new()),
                        };
                        let order_id = owner.id().to_string();
                        let response = change.orders.pop().map(|o| o.response).unwrap_or_default();
                        batch.push(Pending {
                            order_id,
                            request: requests[i].clone(),
                            response,
                            day,
                            expires_at,
                            holds,
                        });
                        routed.push((i, owner, answer, decision));
                    }
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
            if batch.is_empty() {
                break;
            }
            let outcomes = match pg.reserve(batch).await {
                Ok(o) => o,
                Err(e) => {
                    for (i, owner, _, _) in routed {
                        ledger.abandon(owner.id());
                        results[i] = Some(Err(ApiError::from(e.clone())));
                    }
                    break;
                }
            };
            for ((i, owner, answer, decision), outcome) in routed.into_iter().zip(outcomes) {
                let id = owner.id().clone();
                match outcome {
                    Outcome::Reserved { cells } => {
                        for c in &cells {
                            backend::sync_cell(&self.engine, c);
                        }
                        ledger.settle(&id);
                        self.count(&decision);
                        self.metrics.orders.inc();
                        owner.complete(answer.clone());
                        results[i] = Some(Ok(answer));
                    }
                    Outcome::Refused { cells, full } => {
                        ledger.abandon(&id);
                        for c in &cells {
                            backend::sync_cell(&self.engine, c);
                        }
                        let net = self.engine.network();
                        let day = now().local_day();
                        for (store_id, count) in full {
                            if let Some(store) = net.store_idx(StoreId(store_id)) {
                                ledger.sync_orders(store, day, count);
                            }
                        }
                        self.metrics.db_refusals.inc();
                        todo.push((i, owner));
                    }
                    Outcome::Existing { request, response } => {
                        ledger.abandon(&id);
                        let stored = Arc::new(Answer { request, response: response.into() });
                        owner.complete(stored.clone());
                        results[i] = Some(self.check(stored, &requests[i], &id));
                    }
                }
            }
        }
        for (i, owner) in todo {
            results[i] = Some(Err(ApiError::Contention { order_id: owner.id().to_string() }));
        }
        for (i, rx) in waits {
            results[i] = Some(match orderbook::wait(rx).await {
                Some(a) => self.check(a, &requests[i], orders[i].id()),
                None => Err(ApiError::StorageUnavailable(format!(
                    "order {}: a concurrent request for it failed; retry",
                    orders[i].id()
                ))),
            });
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ApiError::Internal("order left unanswered".into()))))
            .collect()
    }

    /// Persists the current reservation of an order (after cancel or ship) with changed cells.
    pub async fn persist_reservation(&self, id: &OrderId, cells: Vec<CellRecord>) -> Result<(), ApiError> {
        let reservations = self.reservation_record(id).map(|r| (id.to_string(), r)).into_iter().collect();
        self.commit(ChangeSet { cells, orders: vec![], reservations }).await.map_err(ApiError::from)
    }

    /// Releases reservations whose TTL has passed and persists their new state.
    pub async fn expire_due(&self) {
        if let Backend::Postgres(pg) = &self.backend {
            match pg.expire(now().0).await {
                Ok(n) => self.metrics.expired.inc_by(n),
                Err(e) => log::error!("expiring reservations in the database failed: {e}"),
            }
            return;
        }
        let expired = self.engine.ledger().expire(now());
        if expired.is_empty() {
            return;
        }
        self.metrics.expired.inc_by(expired.len() as u64);
        let reservations = expired
            .iter()
            .filter_map(|id| self.reservation_record(id).map(|r| (id.to_string(), r)))
            .collect();
        if let Err(e) = self.commit(ChangeSet { cells: vec![], orders: vec![], reservations }).await {
            log::error!("persisting {} expired reservations failed: {e}", expired.len());
        }
    }
}

/// The canonical JSON of an order: what identical retries share.
pub fn canonical(order: &Order) -> String {
    serde_json::to_string(&OrderJson::from_order(order)).expect("orders serialise")
}
