//! What every handler can reach: the checkout service, the keys, the request limits and the plan
//! jobs. Nothing here knows which storage backend runs.

use super::auth::ApiKeys;
use super::plans::PlanBook;
use crate::coupons::campaign::Campaign;
use crate::metrics::Metrics;
use crate::service::Checkout;
use optimizer::model::Network;
use std::sync::Arc;
use std::time::Duration;

/// Request limits: sizes, times and queues, each holding before memory is spent.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_body_bytes: usize,
    pub max_batch_orders: usize,
    pub max_feed_rows: usize,
    pub max_plan_orders: usize,
    pub max_plan_body_bytes: usize,
    /// Plans waiting behind the running one; past it `POST /v1/plans` is 429.
    pub max_queued_plans: usize,
    /// Time for a request's headers to arrive.
    pub header_timeout: Duration,
    /// Time for a request's whole body to arrive once its headers have.
    pub body_timeout: Duration,
    /// Connections the kernel queues before the server accepts them.
    pub listen_backlog: u32,
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
            max_queued_plans: 8,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(60),
            listen_backlog: 4096,
        }
    }
}

/// The state shared by all workers.
pub struct AppState {
    checkout: Arc<dyn Checkout>,
    keys: ApiKeys,
    limits: Limits,
    plans: PlanBook,
    coupons: Option<crate::coupons::Coupons>,
}

impl AppState {
    pub fn new(checkout: Arc<dyn Checkout>, keys: ApiKeys, limits: Limits) -> AppState {
        let plans = PlanBook::new(checkout.clone(), limits.max_queued_plans);
        AppState { checkout, keys, limits, plans, coupons: None }
    }

    /// With posters signed by `coupons`.
    pub fn with_coupons(mut self, coupons: Option<crate::coupons::CouponConfig>) -> AppState {
        self.coupons = coupons.map(crate::coupons::Coupons::new);
        self
    }

    /// A campaign, as stored at most [`crate::coupons::redeem::CAMPAIGN_CACHE`] ago.
    pub async fn campaign(&self, id: u32) -> Result<Option<Arc<Campaign>>, crate::service::ServiceError> {
        let c = self.checkout.core().campaign(self.checkout(), id).await?;
        Ok(c.map(|c| c.campaign.clone()))
    }

    /// Forgets a campaign this replica just changed.
    pub fn campaign_changed(&self, id: u32) {
        self.checkout.core().campaign_changed(id);
    }

    /// Poster signing and capture limits; `None`: no signing keys were configured.
    pub fn coupons(&self) -> Result<&crate::coupons::Coupons, super::error::ApiError> {
        self.coupons.as_ref().ok_or(super::error::ApiError::Unsupported(
            "coupons need signing keys: start the server with --coupon-keys or OMNIROUTE_COUPON_KEYS",
        ))
    }

    /// Closes what the state holds, in order: the plan worker, then the checkout service (its
    /// storage closes cleanly, so that the next start need not repair it) if this was its last
    /// holder; returns whether it was.
    pub fn close(self) -> bool {
        let AppState { checkout, plans, .. } = self;
        plans.close();
        // The last holder drops it here, on this thread.
        Arc::strong_count(&checkout) == 1
    }

    /// The checkout service.
    pub fn checkout(&self) -> &dyn Checkout {
        &*self.checkout
    }

    /// The network the service routes on (stores, DCs, catalogue).
    pub fn network(&self) -> &Network {
        self.checkout.core().engine().network()
    }

    pub fn metrics(&self) -> &Metrics {
        self.checkout.core().metrics()
    }

    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn plans(&self) -> &PlanBook {
        &self.plans
    }
}
