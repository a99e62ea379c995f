//! What both checkout services share: the engine and router, idempotency by order id, metrics,
//! and the one routing driver that turns orders into durable answers.

use super::orderbook::{self, Answer, Claim, OrderBook};
use super::{now, Checkout, ServiceError};
use crate::coupons::campaign::Campaign;
use crate::coupons::redeem::{self, CampaignCache, Offered, Redeemed, Redemption, Refused, Wallet};
use crate::data::order_json::OrderJson;
use crate::metrics::Metrics;
use crate::settings::Routing;
use crate::storage::StorageError;
use optimizer::ledger::{Reservation, ReservationState};
use optimizer::model::{Order, OrderId};
use optimizer::router::{Decision, Router};
use optimizer::travel::TravelCost;
use optimizer::Engine;
use std::future::Future;
use std::sync::Arc;

/// Most times one order is routed again after its storage refused the stores chosen (another
/// replica took that stock; the cache was stale).
const MAX_ATTEMPTS: usize = 8;

/// Engine, router, idempotency and metrics of one service.
pub struct Core {
    engine: Engine,
    router: Router<Box<dyn TravelCost>>,
    /// The service's routing rules (the router above is built from them).
    routing: Routing,
    orders: OrderBook,
    metrics: Metrics,
    /// Whether state changes write events to the outbox (a broker is connected to publish them).
    events: std::sync::atomic::AtomicBool,
    /// Campaigns read in the last second (route calls with coupons and captures read them).
    campaigns: CampaignCache,
    /// The dataset's unit prices (`prices.csv`), for orders with coupons whose lines state none.
    prices: crate::data::prices::Prices,
    /// The dataset's product catalogue (`catalogue.csv`) by SKU.
    catalogue: rustc_hash::FxHashMap<String, crate::recommend::history::Product>,
    /// Magic Mirror's trained model, learning from the orders that ship.
    recommender: Arc<crate::recommend::Recommender>,
}

/// A routed order waiting to become durable: its answer and, when it holds stock, its
/// reservation in the ledger (dense indexes).
pub(crate) struct Decided {
    pub order_id: OrderId,
    pub answer: Arc<Answer>,
    pub reservation: Option<Reservation>,
    /// Local day of the routing time (the capacity day of a decision that holds nothing).
    pub day: i64,
    /// Who placed the order, when it says.
    pub customer_id: Option<optimizer::model::CustomerId>,
    /// Where it goes (its region on a distributed database).
    pub location: optimizer::model::LonLat,
    /// The coupons it redeems, taken with its stock.
    pub redemption: Option<Redemption>,
    /// Each redeemed coupon's campaign budgets and per-customer limit (a replica's database
    /// checks them).
    pub coupon_terms: Vec<(crate::coupons::campaign::Budgets, u32)>,
}

/// What a storage backend did with one decision.
pub(crate) enum Persisted {
    /// Durable as decided.
    Durable,
    /// The stores chosen could not take it any more (their cells are refreshed): route again.
    Refused,
    /// The order was answered before (by another replica): that answer, and the state of its
    /// reservation now.
    Existing(Answer, Option<ReservationState>),
    /// A coupon's budget or limit refused it (the database counts redemptions of every
    /// replica): route again without that coupon.
    CouponRefused(Refused),
}

/// How a storage backend makes decisions durable; [`Core::route_many`] drives it.
pub(crate) trait Persist: Sync {
    /// Makes `decided` durable, each all or nothing: one outcome per decision, in order. Ledger
    /// bookkeeping that depends on the outcome (a cache settling or dropping its in-flight
    /// holds) is done here; on `Err` nothing is durable and the driver drops every hold.
    fn persist(
        &self,
        decided: &[Decided],
    ) -> impl Future<Output = Result<Vec<Persisted>, StorageError>> + Send;

    /// The stored answer of `order` if it was answered before, and the state of its reservation
    /// now.
    fn stored_answer(
        &self,
        order: &OrderId,
    ) -> impl Future<Output = Result<Option<(Answer, Option<ReservationState>)>, ServiceError>> + Send;

    /// Takes the coupons `items` of one order from every budget and limit, all or none, where
    /// this process is the authority; a replica takes them in [`Persist::persist`] instead and
    /// accepts here.
    fn take_coupons(&self, customer: &str, items: &[(Redeemed, &Campaign)]) -> Result<(), Refused>;

    /// Gives back what [`Persist::take_coupons`] took for a decision that did not become durable.
    fn give_back_coupons(&self, redemption: &Redemption);
}

impl Core {
    /// A core over `engine`, routing under `routing`'s rules (which plans and simulations
    /// default to).
    pub fn new(engine: Engine, routing: Routing) -> Core {
        let router = Router::new(routing.router_config(), routing.travel_cost(engine.network().cities()));
        let orders = OrderBook::new(engine.ledger().config().expected_reservations);
        Core {
            engine,
            router,
            routing,
            orders,
            metrics: Metrics::new(),
            events: Default::default(),
            campaigns: CampaignCache::default(),
            prices: Default::default(),
            catalogue: Default::default(),
            recommender: Default::default(),
        }
    }

    /// The same core recommending from the dataset's history (`history.csv`, trained here) and
    /// naming products from its `catalogue.csv`.
    pub fn with_recommendations(mut self, dir: &std::path::Path) -> Result<Core, crate::data::DataError> {
        let (r, t) = crate::recommend::Recommender::load(dir, self.engine.network(), Default::default())?;
        if t.purchases > 0 {
            log::info!(
                "recommendations: trained on {} purchases of {} customers in {:.1} s ({} rows name SKUs no store stocks; left out)",
                t.purchases,
                t.customers,
                t.seconds,
                t.skipped
            );
        }
        self.recommender = Arc::new(r);
        self.catalogue = crate::recommend::history::read_catalogue(dir)?;
        Ok(self)
    }

    /// Magic Mirror's model.
    pub fn recommender(&self) -> &crate::recommend::Recommender {
        &self.recommender
    }

    /// The dataset's product catalogue by SKU (empty without `catalogue.csv`).
    pub fn catalogue(&self) -> &rustc_hash::FxHashMap<String, crate::recommend::history::Product> {
        &self.catalogue
    }

    /// The same core with the dataset's unit prices.
    pub fn with_prices(mut self, prices: crate::data::prices::Prices) -> Core {
        self.prices = prices;
        self
    }

    /// The dataset's unit prices by SKU.
    pub fn prices(&self) -> &crate::data::prices::Prices {
        &self.prices
    }

    /// A campaign with its stores resolved, as stored at most [`redeem::CAMPAIGN_CACHE`] ago.
    pub async fn campaign<C: Checkout + ?Sized>(
        &self,
        store: &C,
        id: u32,
    ) -> Result<Option<Arc<Offered>>, ServiceError> {
        if let Some(c) = self.campaigns.fresh(id) {
            return Ok(Some(c));
        }
        let Some(c) = store.campaign(id).await? else { return Ok(None) };
        let c = Arc::new(Offered::new(c, self.engine.network()));
        self.campaigns.keep(c.clone());
        Ok(Some(c))
    }

    /// Forgets a campaign this service just changed.
    pub fn campaign_changed(&self, id: u32) {
        self.campaigns.forget(id);
    }

    /// A customer's coupons with their campaigns.
    async fn coupon_wallet<C: Checkout + ?Sized>(
        &self,
        store: &C,
        customer: &str,
    ) -> Result<Wallet, ServiceError> {
        let mut coupons = Vec::new();
        for entry in store.wallet(customer).await? {
            if let Some(c) = self.campaign(store, entry.campaign).await? {
                coupons.push((entry, c));
            }
        }
        Ok(Wallet { customer: customer.to_string(), coupons })
    }

    /// Turns writing events to the outbox on or off (on while a publisher drains it).
    pub fn set_events(&self, on: bool) {
        self.events.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether state changes write events to the outbox.
    pub fn events(&self) -> bool {
        self.events.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The service's routing rules.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// The planner's settings: `requested` (weights, k, splits, DC fallback) or the service's
    /// defaults, always with the router's radii.
    pub fn plan_config(&self, requested: Option<optimizer::plan::PlanConfig>) -> optimizer::plan::PlanConfig {
        let mut c = requested.unwrap_or(self.routing.plan_config());
        c.ship_radius_m = self.router.config().ship_radius_m;
        c.pickup_radius_m = self.router.config().pickup_radius_m;
        c
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn router(&self) -> &Router<Box<dyn TravelCost>> {
        &self.router
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn orders(&self) -> &OrderBook {
        &self.orders
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

    /// Routes and reserves one order now, with its coupons when it has a `wallet`.
    fn decide<P: Persist>(
        &self,
        order: &Order,
        request: &str,
        coupons: Option<(&Wallet, &[Refused])>,
        store: &P,
    ) -> Result<(Decided, Decision), ServiceError> {
        let at = now();
        let decision = self
            .router
            .route_at(&self.engine, order, at)
            .map_err(|e| ServiceError::Internal(format!("routing {}: {e}", order.id())))?;
        let network = self.engine.network();
        let mut response = serde_json::to_string(&decision.on(network))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let reservation = self.engine.ledger().reservation(order.id());
        let mut redemption = None;
        let mut coupon_terms = Vec::new();
        if let (Some(choice), Some((wallet, refused))) = (order.coupons(), coupons) {
            let mut stores: Vec<optimizer::model::StoreIdx> =
                reservation.iter().flat_map(|r| r.holds.iter().map(|h| h.store)).collect();
            stores.sort_unstable();
            stores.dedup();
            let value = order.value_cents().unwrap_or(0);
            let mut take = |items: &[(Redeemed, &Campaign)]| {
                coupon_terms = items.iter().map(|(_, c)| (c.budgets, c.per_customer)).collect();
                store.take_coupons(&wallet.customer, items)
            };
            let (outcome, taken) = redeem::evaluate(choice, value, at.0, &stores, wallet, refused, &mut take);
            let json = serde_json::to_string(&outcome).map_err(|e| ServiceError::Internal(e.to_string()))?;
            // Before the expiry and state, which `in_state` restates.
            let key = r#","reservation_expires_at":"#;
            let at = response.rfind(key).unwrap_or(response.len() - 1);
            response.insert_str(at, &format!(r#","coupons":{json}"#));
            redemption = taken;
        }
        // The reservation's state goes last, after its expiry, so that a retry can restate both.
        response.pop();
        response.push_str(if decision.reservation_expires_at.is_some() {
            r#","reservation_state":"held"}"#
        } else {
            r#","reservation_state":"none"}"#
        });
        let answer = Arc::new(Answer { request: request.to_owned(), response: response.into() });
        let decided = Decided {
            order_id: order.id().clone(),
            answer,
            reservation,
            day: network.zone().local_day(at),
            customer_id: order.customer_id().cloned(),
            location: order.customer(),
            redemption,
            coupon_terms,
        };
        Ok((decided, decision))
    }

    /// `answer` if it was given for `request` (a counted replay); otherwise a conflict.
    fn check(&self, answer: Arc<Answer>, request: &str, id: &OrderId) -> Result<Arc<Answer>, ServiceError> {
        if answer.request != request {
            return Err(ServiceError::IdempotencyMismatch { order_id: id.clone() });
        }
        self.metrics.replays.inc();
        Ok(answer)
    }

    /// Routes `orders` with idempotency and makes the new decisions durable through `store`, in
    /// as few writes as it allows (see [`super::Checkout::route_many`]).
    ///
    /// Each order is claimed in the order book: one being routed by a concurrent request waits
    /// for that answer; one that may have been answered before is looked up in `store` and, when
    /// found, gets its stored answer (if the request matches); the rest are routed and handed to
    /// `store` together. A decision `store` refuses is routed
    /// again against the refreshed cells, at most [`MAX_ATTEMPTS`] times in all.
    pub(crate) async fn route_many<P: Persist + Checkout>(
        &self,
        orders: &[Order],
        store: &P,
    ) -> Vec<Result<Arc<Answer>, ServiceError>> {
        let requests: Vec<String> = orders.iter().map(canonical).collect();
        let mut results: Vec<Option<Result<Arc<Answer>, ServiceError>>> = vec![None; orders.len()];
        let ledger = self.engine.ledger();
        // The wallets of orders that redeem coupons, and the coupons an authority refused.
        let mut wallets: Vec<Option<Wallet>> = Vec::new();
        let mut refused: Vec<Vec<Refused>> = Vec::new();
        loop {
            let mut todo = Vec::new();
            let mut waits = Vec::new();
            for (i, order) in orders.iter().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                match self.orders.claim(order.id()) {
                    Claim::Wait(pending) => waits.push((i, pending)),
                    Claim::Owner(owner) if owner.maybe_answered() => {
                        match store.stored_answer(order.id()).await {
                            Ok(Some((stored, state))) => {
                                let stored = in_state(&Arc::new(stored), state);
                                owner.complete(stored.clone());
                                results[i] = Some(self.check(stored, &requests[i], order.id()));
                            }
                            // Not answered after all (the filter's false positive).
                            Ok(None) => todo.push((i, owner)),
                            Err(e) => results[i] = Some(Err(e)),
                        }
                    }
                    Claim::Owner(owner) => todo.push((i, owner)),
                }
            }
            if wallets.is_empty() && orders.iter().any(|o| o.coupons().is_some()) {
                wallets = orders.iter().map(|_| None).collect();
                refused = vec![Vec::new(); orders.len()];
            }
            let mut kept = Vec::with_capacity(todo.len());
            for (i, owner) in std::mem::take(&mut todo) {
                let order = &orders[i];
                if let (Some(customer), Some(_), None) =
                    (order.customer_id(), order.coupons(), wallets.get(i).and_then(|w| w.as_ref()))
                {
                    match self.coupon_wallet(store, customer.as_str()).await {
                        Ok(w) => wallets[i] = Some(w),
                        Err(e) => {
                            results[i] = Some(Err(e));
                            continue;
                        }
                    }
                }
                kept.push((i, owner));
            }
            todo = kept;
            for _ in 0..MAX_ATTEMPTS {
                if todo.is_empty() {
                    break;
                }
                let mut decided = Vec::with_capacity(todo.len());
                let mut routed = Vec::with_capacity(todo.len());
                for (i, owner) in std::mem::take(&mut todo) {
                    let coupons = wallets.get(i).and_then(|w| w.as_ref()).map(|w| (w, &refused[i][..]));
                    match self.decide(&orders[i], &requests[i], coupons, store) {
                        Ok((d, decision)) => {
                            decided.push(d);
                            routed.push((i, owner, decision));
                        }
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
                if decided.is_empty() {
                    break;
                }
                let outcomes = match store.persist(&decided).await {
                    Ok(o) => o,
                    Err(e) => {
                        // Not durable: nothing unacknowledged may hold stock. Dropping the owners
                        // frees the orders for the next request.
                        for (d, (i, _, _)) in decided.iter().zip(routed) {
                            ledger.abandon(&d.order_id);
                            if let Some(r) = &d.redemption {
                                store.give_back_coupons(r);
                            }
                            results[i] = Some(Err(e.clone().into()));
                        }
                        break;
                    }
                };
                for ((d, (i, owner, decision)), outcome) in decided.into_iter().zip(routed).zip(outcomes) {
                    match outcome {
                        Persisted::Durable => {
                            if let (Some(c), Some(r)) = (&d.customer_id, &d.reservation) {
                                self.recommender.routed(&d.order_id, c.as_str(), &r.holds);
                            }
                            self.count(&decision);
                            self.metrics.orders.inc();
                            owner.complete(d.answer.clone());
                            results[i] = Some(Ok(d.answer));
                        }
                        Persisted::Refused => {
                            self.metrics.db_refusals.inc();
                            todo.push((i, owner));
                        }
                        Persisted::CouponRefused(r) => {
                            refused[i].push(r);
                            todo.push((i, owner));
                        }
                        Persisted::Existing(stored, state) => {
                            let stored = in_state(&Arc::new(stored), state);
                            owner.complete(stored.clone());
                            results[i] = Some(self.check(stored, &requests[i], &d.order_id));
                        }
                    }
                }
            }
            for (i, owner) in todo {
                results[i] = Some(Err(ServiceError::Contention { order_id: owner.id().clone() }));
            }
            // Orders a concurrent request was routing: its answer, or (when it failed) another
            // round in which this request may route them itself.
            let mut again = false;
            for (i, pending) in waits {
                match orderbook::wait(pending).await {
                    Some(answer) => results[i] = Some(self.check(answer, &requests[i], orders[i].id())),
                    None => again = true,
                }
            }
            if !again {
                break;
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ServiceError::Internal("order left unanswered".into()))))
            .collect()
    }
}

/// A stored answer as it stands now: while its reservation is held (or it never had one), the
/// stored bytes; once it ended (released, expired, committed), the same decision with the state
/// it is in and no expiry. The answer's last two fields are the expiry and the state, as
/// [`Core::route_many`] writes them.
pub(crate) fn in_state(answer: &Arc<Answer>, state: Option<ReservationState>) -> Arc<Answer> {
    let Some(state) = state.filter(|s| *s != ReservationState::Held) else { return answer.clone() };
    let body = &answer.response[..];
    let key = br#","reservation_expires_at":"#;
    let Some(at) = body.windows(key.len()).rposition(|w| w == key) else { return answer.clone() };
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(
        format!(r#","reservation_expires_at":null,"reservation_state":"{}"}}"#, state.as_str()).as_bytes(),
    );
    Arc::new(Answer { request: answer.request.clone(), response: out.into() })
}

/// The canonical JSON of an order: what identical retries share.
pub fn canonical(order: &Order) -> String {
    serde_json::to_string(&OrderJson::from_order(order)).expect("orders serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Arc<Answer> {
        Arc::new(Answer { request: "r".into(), response: body.to_owned().into() })
    }

    #[test]
    fn an_ended_reservation_restates_expiry_and_state_and_keeps_the_decision_byte_for_byte() {
        let held = answer(
            r#"{"order_id":"a","shipments":[{"distance_m":1293.9912345678}],"reservation_expires_at":"2026-11-11T00:15:00+08:00","reservation_state":"held"}"#,
        );
        assert!(Arc::ptr_eq(&in_state(&held, Some(ReservationState::Held)), &held));
        let released = in_state(&held, Some(ReservationState::Released));
        assert_eq!(
            std::str::from_utf8(&released.response).unwrap(),
            r#"{"order_id":"a","shipments":[{"distance_m":1293.9912345678}],"reservation_expires_at":null,"reservation_state":"released"}"#
        );
        let dc = answer(r#"{"order_id":"b","reservation_expires_at":null,"reservation_state":"none"}"#);
        assert!(Arc::ptr_eq(&in_state(&dc, None), &dc));
    }
}
