//! Prometheus metrics, exposed at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    /// Request latency by method, route pattern and status.
    pub http: HistogramVec,
    /// Routing decisions by status (assigned, split, dc, alternative, unfulfillable).
    pub routes: IntCounterVec,
    /// Reservations made.
    pub reservations: IntCounter,
    /// Stores passed over while routing, by reason.
    pub rejections: IntCounterVec,
    /// Retries answered from the idempotency record.
    pub replays: IntCounter,
    /// Stock feed rows applied.
    pub feed_rows: IntCounter,
    /// Reservations expired by the TTL.
    pub expired: IntCounter,
    /// Orders known to the service.
    pub orders: IntGauge,
    /// Plan jobs finished, by solver and status (done, failed).
    pub plans: IntCounterVec,
    /// PostgreSQL backend: decisions the database refused (stale cache), routed again.
    pub db_refusals: IntCounter,
    /// PostgreSQL backend: cache cells updated from database notifications.
    pub cache_updates: IntCounter,
    /// Broker feed messages by outcome (applied, duplicate, dead, retried).
    pub broker_messages: IntCounterVec,
    /// Events published to the broker.
    pub events_published: IntCounter,
    /// Coupon captures by outcome (new, already, refused, rate_limited).
    pub captures: IntCounterVec,
    /// Recommendation lists served, by whether the shopper was known (known, anonymous).
    pub recommendations: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let buckets = vec![
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ];
        let http = HistogramVec::new(
            HistogramOpts::new("omniroute_http_request_duration_seconds", "HTTP request latency")
                .buckets(buckets),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let routes = IntCounterVec::new(
            Opts::new("omniroute_routes_total", "Routing decisions by status"),
            &["status"],
        )
        .expect("valid metric");
        let rejections = IntCounterVec::new(
            Opts::new("omniroute_rejections_total", "Stores passed over while routing, by reason"),
            &["reason"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let m = Metrics {
            http,
            routes,
            reservations: counter("omniroute_reservations_total", "Reservations made"),
            rejections,
            replays: counter(
                "omniroute_idempotent_replays_total",
                "Retries answered from the stored response",
            ),
            feed_rows: counter("omniroute_stock_feed_rows_total", "Stock feed rows applied"),
            expired: counter("omniroute_reservations_expired_total", "Reservations released by their TTL"),
            orders: IntGauge::new("omniroute_orders", "Orders known to the service").expect("valid metric"),
            plans: IntCounterVec::new(
                Opts::new("omniroute_plans_total", "Plan jobs finished by solver and status"),
                &["solver", "status"],
            )
            .expect("valid metric"),
            db_refusals: counter(
                "omniroute_db_refusals_total",
                "Decisions the database refused because the cache was stale; each was routed again",
            ),
            broker_messages: IntCounterVec::new(
                Opts::new("omniroute_broker_feed_messages_total", "Broker feed messages by outcome"),
                &["outcome"],
            )
            .expect("valid metric"),
            events_published: counter("omniroute_events_published_total", "Events published to the broker"),
            captures: IntCounterVec::new(
                Opts::new("omniroute_coupon_captures_total", "Coupon captures by outcome"),
                &["outcome"],
            )
            .expect("valid metric"),
            recommendations: IntCounterVec::new(
                Opts::new("omniroute_recommendations_total", "Recommendation lists served by shopper"),
                &["shopper"],
            )
            .expect("valid metric"),
            cache_updates: counter(
                "omniroute_cache_updates_total",
                "Cache cells updated from database notifications",
            ),
            registry,
        };
        for c in [
            Box::new(m.http.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.routes.clone()),
            Box::new(m.reservations.clone()),
            Box::new(m.rejections.clone()),
            Box::new(m.replays.clone()),
            Box::new(m.feed_rows.clone()),
            Box::new(m.expired.clone()),
            Box::new(m.orders.clone()),
            Box::new(m.plans.clone()),
            Box::new(m.db_refusals.clone()),
            Box::new(m.cache_updates.clone()),
            Box::new(m.broker_messages.clone()),
            Box::new(m.events_published.clone()),
            Box::new(m.captures.clone()),
            Box::new(m.recommendations.clone()),
        ] {
            m.registry.register(c).expect("unique metric names");
        }
        m
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("encodable");
        String::from_utf8(out).expect("utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
