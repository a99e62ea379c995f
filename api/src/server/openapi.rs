//! The OpenAPI 3 document (`/openapi.json`, browsable at `/docs`).
//!
//! The optimizer's types carry no documentation framework, so the wire shapes are mirrored here
//! as doc-only schemas.

#![allow(dead_code)] // Fields are read by the schema generator and by tests.

use serde::Deserialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "omniroute", description = "Ship-from-store and pickup routing with live stock. All endpoints but health, metrics and docs need `Authorization: Bearer <key>`; errors are `{code, message, field}`."),
    paths(
        super::routes::orders::route,
        super::routes::orders::route_batch,
        super::routes::orders::get,
        super::routes::orders::cancel,
        super::routes::orders::ship,
        super::routes::stores::nearby,
        super::routes::stores::get,
        super::routes::stock::put,
        super::routes::stock::get,
        super::routes::plans::create,
        super::routes::plans::get,
        super::routes::admin::backup,
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&Bearer),
    tags((name = "orders"), (name = "stores"), (name = "stock"), (name = "plans"), (name = "admin"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// An order, as one line of orders.jsonl.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderDoc {
    /// 1 to 64 characters of `A-Z a-z 0-9 - _ . : /`; the idempotency key.
    order_id: String,
    /// RFC 3339, e.g. `2026-11-11T00:00:05+08:00`; any offset (answers use the dataset's zone).
    created_at: String,
    customer: LonLatDoc,
    /// `ship` or `pickup`.
    mode: String,
    /// A store id (text, 1 to 64 bytes); required for `pickup`, forbidden for `ship`.
    pickup_store_id: Option<String>,
    /// 1 to 100 lines with distinct SKUs.
    lines: Vec<LineDoc>,
    /// The shopper (text, 1 to 64 bytes), stored with the order.
    customer_id: Option<String>,
}

/// A position in degrees.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LonLatDoc {
    lon: f64,
    lat: f64,
}

/// One order line.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDoc {
    /// Text, 1 to 64 bytes without control characters (a whole number is read as its text). A SKU
    /// no store has stocked yet is learned, and ships from a DC.
    sku: String,
    /// 1 to 10,000.
    qty: u32,
}

/// Body of `/v1/orders/route-batch`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchDoc {
    /// Up to 10,000 orders, distinct order ids.
    orders: Vec<OrderDoc>,
}

/// Per-order results, in request order: a decision or `{"error": {code, message, field}}`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResultDoc {
    results: Vec<serde_json::Value>,
}

/// A routing decision.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionDoc {
    order_id: String,
    /// `assigned`, `split`, `dc`, `alternative` (pickup at another store) or `unfulfillable`.
    status: String,
    shipments: Vec<ShipmentDoc>,
    /// Lines that cannot be served, with reasons (unfulfillable only).
    unfulfilled: Vec<LineFailureDoc>,
    explanation: ExplanationDoc,
    /// RFC 3339; held store stock is released then unless the order is shipped. `null` once the
    /// reservation ended, and for a decision that holds nothing.
    reservation_expires_at: Option<String>,
    /// The reservation's state when this answer was given: `held`, or `none` for a decision that
    /// holds nothing; a retry after the reservation ended says `released`, `expired` or
    /// `committed`.
    reservation_state: String,
}

/// One parcel or pickup.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentDoc {
    store_id: Option<String>,
    dc_id: Option<String>,
    lon: f64,
    lat: f64,
    lines: Vec<LineDoc>,
    /// Great-circle distance to the customer, metres.
    distance_m: f64,
    /// Seconds until delivery (ship) or until ready (pickup).
    eta_s: u32,
    /// `same_day`, `next_day` or `later`.
    promise: String,
}

/// A line that cannot be served.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineFailureDoc {
    sku: String,
    /// `unknown_sku`, `no_stock_within_radius` or `unknown_pickup_store`.
    reason: String,
    radius_m: Option<f64>,
    store_id: Option<String>,
}

/// How the decision was reached.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplanationDoc {
    candidates_considered: u32,
    rejected: Vec<RejectedDoc>,
    rejected_not_listed: u32,
    /// `single_store`, `split`, `dc`, `pickup_store`, `alternative`, in order.
    stages: Vec<String>,
}

/// A nearer store that was passed over.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectedDoc {
    store_id: String,
    distance_m: f64,
    /// `short_of_sku`, `capacity_full`, `pickup_disabled`, `ship_disabled` or `outside_radius`.
    reason: String,
    sku: Option<String>,
    missing: Option<u32>,
    capacity_per_day: Option<u32>,
    radius_m: Option<f64>,
}

/// An order's current state.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderViewDoc {
    order_id: String,
    /// `held`, `committed`, `released`, `expired`, or `none` when nothing was reserved.
    state: String,
    reservation_expires_at: Option<String>,
    decision: DecisionDoc,
}

/// Stock of one SKU in one store.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockLevelDoc {
    store_id: String,
    sku: String,
    on_hand: u32,
    reserved: u32,
    safety_stock: u32,
    /// on_hand - reserved - safety_stock, never below zero.
    available: u32,
    /// on_hand is below reserved (a feed reported less than was promised).
    oversubscribed: bool,
}

/// Body of `POST /v1/plans`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequestDoc {
    /// Up to 1,000,000 orders (lines of orders.jsonl), distinct order ids.
    orders: Vec<OrderDoc>,
    /// `lp` (default) or `greedy`.
    solver: Option<String>,
    /// `k` (candidates per order and line, default 16), `allow_split`, `dc_fallback` and
    /// `weights` {per_km, per_hour, per_shipment, split_penalty, dc_flat, dc_per_km, unfilled}.
    config: Option<serde_json::Value>,
}

/// A plan job.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStatusDoc {
    plan_id: String,
    /// `queued`, `running`, `done` or `failed`.
    status: String,
    solver: String,
    orders: usize,
    created_at: String,
    finished_at: Option<String>,
    /// {stage, done, total}: stages are candidates, presolve, solve.
    progress: serde_json::Value,
    /// When done: {solver, kpis, lp, shadow_prices, greedy_comparison, assignments, unfilled}.
    result: Option<serde_json::Value>,
    error: Option<String>,
}

/// A backup written by the server.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupDoc {
    /// Where the copy is, on the server's file system.
    path: String,
    cells: usize,
    reservations: usize,
    orders: usize,
}
