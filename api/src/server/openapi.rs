//! The OpenAPI 3.1 document (`/openapi.json`, browsable at `/docs`).
//!
//! The optimizer's types carry no documentation framework, so the wire shapes are mirrored here
//! as doc-only schemas, with the rules the server enforces (patterns, ranges, enums, required
//! fields, no unknown fields). Unit tests below deserialise real decisions and plans into the
//! response schemas with unknown fields denied; schemathesis checks every response of the served
//! spec (`tests/integration/contract.rs`). A modifier adds what every operation shares: the
//! errors of authentication, bodies and storage.

#![allow(dead_code)] // Fields are read by the schema generator and by tests.

use serde::Deserialize;
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, KnownFormat, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "omniroute", description = "Ship-from-store and pickup routing with live stock. All endpoints but health, metrics and docs need `Authorization: Bearer <key>`; errors are `{code, message, field}` with a stable `code`. Ids (stores, SKUs, DCs, customers) are text of 1 to 64 bytes without control characters, compared exactly; a whole number is read as its decimal text. In paths they are percent-encoded."),
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
        super::routes::stock::audit,
        super::routes::plans::create,
        super::routes::plans::get,
        super::routes::simulations::create,
        super::routes::simulations::get,
        super::routes::admin::backup,
        super::routes::admin::create_key,
        super::routes::admin::list_keys,
        super::routes::admin::revoke_key,
        super::routes::admin::rotate_key,
        super::routes::map::data,
        super::routes::campaigns::create,
        super::routes::campaigns::list,
        super::routes::campaigns::get,
        super::routes::campaigns::pause,
        super::routes::campaigns::resume,
        super::routes::campaigns::end,
        super::routes::campaigns::poster,
        super::routes::campaigns::stats,
        super::routes::coupons::capture,
        super::routes::coupons::public_keys,
        super::routes::coupons::wallet,
        super::routes::recommend::list,
        super::routes::recommend::scan,
        super::routes::recommend::token,
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&Bearer, &SharedResponses, &Links),
    tags((name = "orders"), (name = "stores"), (name = "stock"), (name = "plans"), (name = "simulations"), (name = "admin"), (name = "maps"), (name = "campaigns"), (name = "coupons"), (name = "recommendations"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The responses every operation shares, added where an operation does not name them itself:
/// 401 and 403 for a secured operation, 400 (a path or query that does not parse), 408, 413 and
/// 415 where a body is read, 503 when the state storage is unavailable.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                add_shared(op);
            }
        }
    }
}

fn add_shared(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let mut shared =
        vec![("400", "Malformed JSON, or a field, path or query value that is invalid (`field` names it)")];
    if secured {
        shared.push(("401", "No key, or an unknown one (`unauthorized`)"));
        shared.push(("403", "The key's role may not do this (`forbidden`), or the store is of a brand the key is not scoped to (`brand_out_of_scope`)"));
    }
    if has_body {
        shared.push(("408", "The body did not arrive in time (`request_timeout`)"));
        shared.push(("413", "The body, or a list in it, is larger than allowed"));
        shared.push(("415", "The content type is not `application/json` (`unsupported_media_type`)"));
    }
    shared.push(("503", "The state storage is unavailable (`storage_unavailable`), or stock was contended (`stock_contention`); nothing changed, retry"));
    for (status, description) in shared {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", ContentBuilder::new().schema(Some(error_ref())).build())
                    .build(),
            )
        });
    }
}

/// Links from an answer to the operations that take its ids: what a client does next, and what
/// lets schemathesis's stateful phase chain calls (route, then read, ship or cancel; plan, then
/// poll; feed, then read the level).
struct Links;

/// A link to operation `op` with `parameters` as runtime expressions. utoipa 5 writes a link's
/// operation id as `operation_id`; OpenAPI spells it `operationId`, so the id goes in as that key.
fn link(op: &str, parameters: &[(&str, &str)]) -> Link {
    let mut b = LinkBuilder::new()
        .extensions(Some(utoipa::openapi::extensions::Extensions::from_iter([("operationId", op)])));
    for (name, expression) in parameters {
        b = b.parameter(*name, *expression);
    }
    b.build()
}

/// (operation id, response status, the links named from that response).
type LinksOf<'a> = (&'a str, &'a str, Vec<(&'a str, Link)>);

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let order = |op: &str| link(op, &[("order_id", "$response.body#/order_id")]);
        let campaign = |op: &str| link(op, &[("campaign_id", "$response.body#/id")]);
        let table: [LinksOf<'_>; 9] = [
            (
                "route_order",
                "200",
                vec![
                    ("get", order("get_order")),
                    ("cancel", order("cancel_order")),
                    ("ship", order("ship_order")),
                ],
            ),
            ("get_order", "200", vec![("cancel", order("cancel_order")), ("ship", order("ship_order"))]),
            ("cancel_order", "200", vec![("get", order("get_order"))]),
            ("ship_order", "200", vec![("get", order("get_order"))]),
            (
                "create_plan",
                "202",
                vec![("poll", link("get_plan", &[("plan_id", "$response.body#/plan_id")]))],
            ),
            (
                "create_simulation",
                "202",
                vec![("poll", link("get_simulation", &[("simulation_id", "$response.body#/simulation_id")]))],
            ),
            (
                "create_campaign",
                "201",
                vec![
                    ("get", campaign("get_campaign")),
                    ("pause", campaign("pause_campaign")),
                    ("resume", campaign("resume_campaign")),
                    ("end", campaign("end_campaign")),
                ],
            ),
            (
                "nearby_stores",
                "200",
                vec![("store", link("get_store", &[("store_id", "$response.body#/0/store_id")]))],
            ),
            (
                "feed_stock",
                "200",
                vec![(
                    "level",
                    link(
                        "get_stock",
                        &[("store_id", "$request.body#/0/store_id"), ("sku", "$request.body#/0/sku")],
                    ),
                )],
            ),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post];
            for op in ops.into_iter().flatten() {
                let Some((_, status, links)) =
                    table.iter().find(|(id, _, _)| op.operation_id.as_deref() == Some(id))
                else {
                    continue;
                };
                if let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) {
                    for (name, l) in links {
                        response.links.insert((*name).to_string(), RefOr::T(l.clone()));
                    }
                }
            }
        }
    }
}

fn error_ref() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))
}

/// Ids as requests may give them: text (1 to 64 bytes, no control characters), or a whole
/// number read as its decimal text.
pub fn id_input() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(id_text())
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Integer))
                    .minimum(Some(0))
                    .maximum(Some(optimizer::model::MAX_WHOLE_NUMBER_ID as f64))
                    .description(Some("A whole number up to 2^53 - 1, read as its decimal text")),
            )
            .description(Some("An id: text of 1 to 64 bytes without control characters, or a whole number"))
            .build(),
    )
}

/// An optional id a request may also give as `null`.
pub fn nullable_id_input() -> Schema {
    let Schema::OneOf(mut one_of) = id_input() else { unreachable!("built as oneOf") };
    one_of.items.push(RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(SchemaType::new(Type::Null)).build(),
    )));
    Schema::OneOf(one_of)
}

fn null_only() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Null))
            .description(Some("Ship orders name no pickup store: absent, or null"))
            .build(),
    )
}

/// Ids as responses give them: always text.
pub fn id_text() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(64))
        .pattern(Some(r"^[^\u0000-\u001F\u007F-\u009F]+$"))
        .description(Some("Text of 1 to 64 bytes (UTF-8) without control characters"))
}

pub fn id_text_schema() -> Schema {
    Schema::Object(id_text().build())
}

fn nullable_id_text() -> Schema {
    Schema::Object(id_text().schema_type(SchemaType::from_iter([Type::String, Type::Null])).build())
}

fn enum_of(values: &[&str], description: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(values.iter().copied()))
            .description(Some(description))
            .build(),
    )
}

fn order_id() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .pattern(Some(r"^[A-Za-z0-9\-_.:/]{1,64}$"))
            .description(Some("1 to 64 characters of `A-Z a-z 0-9 - _ . : /`; the idempotency key"))
            .build(),
    )
}

fn date_time() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, e.g. `2026-11-11T00:00:05+08:00`"))
            .build(),
    )
}

fn nullable_date_time() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 in the dataset's time zone"))
            .build(),
    )
}

fn ship_mode() -> Schema {
    enum_of(&["ship"], "Delivered to the customer")
}

fn pickup_mode() -> Schema {
    enum_of(&["pickup"], "Collected in the named store")
}

fn status() -> Schema {
    enum_of(
        &["assigned", "split", "dc", "alternative", "unfulfillable"],
        "`assigned` (one store), `split` (several), `dc`, `alternative` (pickup at another store) or `unfulfillable`",
    )
}

fn any_mode() -> Schema {
    enum_of(&["ship", "pickup"], "How the shopper receives the goods")
}

fn promise() -> Schema {
    enum_of(&["same_day", "next_day", "later"], "By local calendar day of arrival")
}

fn line_reason() -> Schema {
    enum_of(
        &["unknown_sku", "no_stock_within_radius", "unknown_pickup_store"],
        "Why the line cannot be served",
    )
}

fn rejection() -> Schema {
    enum_of(
        &["short_of_sku", "capacity_full", "pickup_disabled", "ship_disabled", "outside_radius"],
        "Why the store was passed over",
    )
}

fn stages() -> Schema {
    Schema::Array(
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(RefOr::T(enum_of(
                &["single_store", "split", "dc", "pickup_store", "alternative"],
                "A routing stage",
            )))
            .description(Some("The stages tried, in order"))
            .build(),
    )
}

fn reservation_state() -> Schema {
    enum_of(
        &["held", "none", "released", "expired", "committed"],
        "`held`, or `none` for a decision that holds nothing; a retry after the reservation ended says `released`, `expired` or `committed`",
    )
}

fn order_state() -> Schema {
    enum_of(&["held", "committed", "released", "expired", "none"], "The reservation's state now")
}

fn plan_status() -> Schema {
    enum_of(&["queued", "running", "done", "failed"], "Where the job is")
}

fn solver() -> Schema {
    enum_of(&["lp", "greedy"], "`lp` (default) or `greedy`")
}

fn nullable_solver() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .enum_values(Some(["lp", "greedy"].into_iter().map(Some).chain([None])))
            .description(Some("`lp` (default) or `greedy`"))
            .build(),
    )
}

fn unfilled_reason() -> Schema {
    enum_of(&["no_candidate", "candidates_exhausted"], "Why the plan leaves the order unfilled")
}

/// An order, as one line of orders.jsonl: shipped to the customer, or collected in a store.
/// The SKUs of an order's lines are distinct.
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
pub enum OrderDoc {
    Ship(ShipOrderDoc),
    Pickup(PickupOrderDoc),
}

/// An order delivered to the customer.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "order_id": "SD000000002", "created_at": "2026-11-11T00:00:00+08:00",
    "customer": {"lon": 103.904716, "lat": 30.71352}, "mode": "ship",
    "lines": [{"sku": "2", "qty": 2}], "customer_id": "C-1001"
}))]
pub struct ShipOrderDoc {
    #[schema(schema_with = order_id)]
    order_id: String,
    #[schema(schema_with = date_time)]
    created_at: String,
    /// The delivery address.
    customer: LonLatDoc,
    #[schema(schema_with = ship_mode)]
    mode: String,
    #[schema(schema_with = null_only)]
    #[serde(default)]
    pickup_store_id: Option<serde_json::Value>,
    /// 1 to 100 lines with distinct SKUs.
    #[schema(min_items = 1, max_items = 100)]
    lines: Vec<LineInDoc>,
    /// The shopper, stored with the order; required with `coupons`.
    #[schema(schema_with = nullable_id_input)]
    #[serde(default)]
    customer_id: Option<serde_json::Value>,
    #[serde(default)]
    coupons: Option<CouponChoiceDoc>,
}

/// An order the shopper collects in a store.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "order_id": "SD000000001", "created_at": "2026-11-11T00:00:00+08:00",
    "customer": {"lon": 113.514787, "lat": 24.738352}, "mode": "pickup", "pickup_store_id": "1160",
    "lines": [{"sku": "1", "qty": 2}]
}))]
pub struct PickupOrderDoc {
    #[schema(schema_with = order_id)]
    order_id: String,
    #[schema(schema_with = date_time)]
    created_at: String,
    /// Where the order was placed.
    customer: LonLatDoc,
    #[schema(schema_with = pickup_mode)]
    mode: String,
    /// The store the shopper collects from.
    #[schema(schema_with = id_input)]
    pickup_store_id: serde_json::Value,
    /// 1 to 100 lines with distinct SKUs.
    #[schema(min_items = 1, max_items = 100)]
    lines: Vec<LineInDoc>,
    /// The shopper, stored with the order; required with `coupons`.
    #[schema(schema_with = nullable_id_input)]
    #[serde(default)]
    customer_id: Option<serde_json::Value>,
    #[serde(default)]
    coupons: Option<CouponChoiceDoc>,
}

/// Coupons of the customer's wallet to redeem with the order (every line then needs
/// `unit_price_cents`): campaign ids in the order the shopper applies them, or `"best"` for
/// whichever of her coupons take most off.
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
pub enum CouponChoiceDoc {
    Listed(Vec<u32>),
    Best(BestDoc),
}

/// The coupons worth most.
#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestDoc {
    Best,
}

/// What the order's coupons did (present when the order redeems coupons).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponsOutcomeDoc {
    /// The order's value: the lines' unit prices times quantities.
    value_cents: u64,
    discount_cents: u64,
    /// What the shopper pays: value less discount.
    pay_cents: u64,
    /// Every coupon asked for (every coupon of the wallet for `best`), in the order asked.
    coupons: Vec<CouponLineDoc>,
}

/// One coupon of an order.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponLineDoc {
    campaign: u32,
    applied: bool,
    off_cents: u64,
    /// Why it was not applied.
    #[schema(schema_with = coupon_refusal)]
    #[serde(default)]
    reason: Option<String>,
}

fn coupon_refusal() -> Schema {
    enum_of(
        &[
            "not_in_wallet",
            "campaign_paused",
            "campaign_ended",
            "outside_redemption_window",
            "store_not_in_campaign",
            "below_minimum_spend",
            "budget_spent",
            "customer_limit_reached",
            "not_combinable",
            "nothing_left",
            "not_best",
        ],
        "Why the coupon was not applied",
    )
}

/// A position in degrees.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LonLatDoc {
    #[schema(minimum = -180.0, maximum = 180.0)]
    lon: f64,
    #[schema(minimum = -90.0, maximum = 90.0)]
    lat: f64,
}

/// One order line as a request gives it.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineInDoc {
    /// A SKU no store has stocked yet is learned, and ships from a DC.
    #[schema(schema_with = id_input)]
    sku: serde_json::Value,
    #[schema(minimum = 1, maximum = 10000)]
    qty: u32,
    /// The price of one unit in cents (required on every line when the order redeems coupons).
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(default)]
    unit_price_cents: Option<u64>,
}

/// One line of a shipment.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDoc {
    #[schema(schema_with = id_text_schema)]
    sku: String,
    #[schema(minimum = 1, maximum = 10000)]
    qty: u32,
}

/// Body of `/v1/orders/route-batch`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchDoc {
    /// Up to 10,000 orders (each as `OrderDoc`), distinct order ids. Each is checked on its own:
    /// an item that is not a valid order gets an error in its place of the results, and the
    /// others are routed.
    #[schema(max_items = 10000)]
    orders: Vec<serde_json::Value>,
}

/// Per-order results, in request order: a decision or `{"error": {code, message, field}}`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResultDoc {
    results: Vec<BatchItemDoc>,
}

/// One order's result in a batch.
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
pub enum BatchItemDoc {
    Decision(Box<DecisionDoc>),
    Error(BatchErrorDoc),
}

/// An order of a batch that was refused; the others are unaffected.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchErrorDoc {
    #[schema(value_type = super::error::ErrorBody)]
    error: serde_json::Value,
}

/// A routing decision.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionDoc {
    #[schema(schema_with = order_id)]
    order_id: String,
    #[schema(schema_with = status)]
    status: String,
    shipments: Vec<ShipmentDoc>,
    /// Lines that cannot be served, with reasons (unfulfillable only).
    unfulfilled: Vec<LineFailureDoc>,
    explanation: ExplanationDoc,
    #[serde(default)]
    coupons: Option<CouponsOutcomeDoc>,
    /// Held store stock is released then unless the order is shipped; `null` once the
    /// reservation ended, and for a decision that holds nothing.
    #[schema(schema_with = nullable_date_time)]
    reservation_expires_at: Option<String>,
    #[schema(schema_with = reservation_state)]
    reservation_state: String,
}

/// One parcel or pickup: from a store (`store_id`) or a DC (`dc_id`).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentDoc {
    #[schema(schema_with = id_text_schema)]
    store_id: Option<String>,
    #[schema(schema_with = id_text_schema)]
    dc_id: Option<String>,
    lon: f64,
    lat: f64,
    lines: Vec<LineDoc>,
    /// Great-circle distance to the customer, metres.
    distance_m: f64,
    /// Seconds until delivery (ship) or until ready (pickup).
    eta_s: u32,
    #[schema(schema_with = promise)]
    promise: String,
}

/// A line that cannot be served.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineFailureDoc {
    #[schema(schema_with = id_text_schema)]
    sku: String,
    #[schema(schema_with = line_reason)]
    reason: String,
    radius_m: Option<f64>,
    #[schema(schema_with = id_text_schema)]
    store_id: Option<String>,
}

/// How the decision was reached.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplanationDoc {
    candidates_considered: u32,
    rejected: Vec<RejectedDoc>,
    rejected_not_listed: u32,
    #[schema(schema_with = stages)]
    stages: Vec<String>,
}

/// A nearer store that was passed over.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectedDoc {
    #[schema(schema_with = id_text_schema)]
    store_id: String,
    distance_m: f64,
    #[schema(schema_with = rejection)]
    reason: String,
    #[schema(schema_with = id_text_schema)]
    sku: Option<String>,
    missing: Option<u32>,
    capacity_per_day: Option<u32>,
    radius_m: Option<f64>,
}

/// An order's current state.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderViewDoc {
    #[schema(schema_with = order_id)]
    order_id: String,
    #[schema(schema_with = order_state)]
    state: String,
    #[schema(schema_with = nullable_date_time)]
    reservation_expires_at: Option<String>,
    decision: DecisionDoc,
}

/// Stock of one SKU in one store.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockLevelDoc {
    #[schema(schema_with = id_text_schema)]
    store_id: String,
    #[schema(schema_with = id_text_schema)]
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
    /// 1 to 1,000,000 orders (lines of orders.jsonl), distinct order ids.
    #[schema(min_items = 1, max_items = 1000000)]
    orders: Vec<OrderDoc>,
    #[schema(schema_with = nullable_solver)]
    #[serde(default)]
    solver: Option<String>,
    #[serde(default)]
    config: Option<PlanConfigDoc>,
}

/// Planner settings; every field has a default.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfigDoc {
    /// Candidate stores per order and per line, 1 to 256 (default 16).
    #[schema(minimum = 1, maximum = 256, nullable = false)]
    k: Option<u32>,
    /// Consider splits for multi-line orders (default true).
    #[schema(nullable = false)]
    allow_split: Option<bool>,
    /// Offer the DC fallback to ship orders (default true).
    #[schema(nullable = false)]
    dc_fallback: Option<bool>,
    #[schema(nullable = false)]
    weights: Option<WeightsDoc>,
}

/// Money weights of the objective, each 0 to 1e9.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsDoc {
    #[schema(minimum = 0.0, maximum = 1e9, nullable = false)]
    per_km: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1e9, nullable = false)]
    per_hour: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1e9, nullable = false)]
    per_shipment: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1e9, nullable = false)]
    split_penalty: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1e9, nullable = false)]
    dc_flat: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1e9, nullable = false)]
    dc_per_km: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1e9, nullable = false)]
    unfilled: Option<f64>,
}

/// A plan job.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStatusDoc {
    plan_id: String,
    #[schema(schema_with = plan_status)]
    status: String,
    #[schema(schema_with = solver)]
    solver: String,
    orders: usize,
    #[schema(schema_with = date_time)]
    created_at: String,
    #[schema(schema_with = date_time)]
    finished_at: Option<String>,
    progress: ProgressDoc,
    /// When done.
    result: Option<PlanResultDoc>,
    /// When failed.
    error: Option<String>,
}

/// How far a plan job got.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressDoc {
    /// The stage running (candidates, presolve, solve, ...).
    stage: String,
    done: u64,
    total: u64,
}

/// A finished plan.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanResultDoc {
    #[schema(schema_with = solver)]
    solver: String,
    kpis: PlanKpisDoc,
    /// The LP's bound and work (LP plans).
    lp: Option<LpDoc>,
    /// Where one more unit of stock or capacity would save the most (LP plans).
    shadow_prices: Option<ShadowPricesDoc>,
    assignments: Vec<AssignmentDoc>,
    unfilled: Vec<UnfilledDoc>,
    /// The checkout logic in arrival order on the same orders, for comparison (LP plans).
    greedy_comparison: Option<GreedyComparisonDoc>,
}

/// Plan KPIs; shares are fractions of all orders.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanKpisDoc {
    orders: usize,
    cost: f64,
    total_km: f64,
    fill_rate: f64,
    store_share: f64,
    dc_share: f64,
    split_rate: f64,
    unfilled: usize,
    shipments: usize,
    utilization: UtilizationDoc,
}

/// Store utilization (orders planned over capacity left) over the stores used.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtilizationDoc {
    stores_used: usize,
    stores_at_capacity: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// What the LP planner did and the bound it proved.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LpDoc {
    lower_bound: f64,
    plan_cost: f64,
    gap: f64,
    orders: usize,
    fixed_by_presolve: usize,
    components: usize,
    largest_component: usize,
    components_solved: usize,
    components_by_flow: usize,
    components_reused: usize,
    lazy_rounds: usize,
    lp_columns: usize,
    lp_rows: usize,
    fractional_orders: usize,
    presolve_s: f64,
    solve_s: f64,
    monolithic: bool,
}

/// Shadow prices from the LP duals, largest savings first.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowPricesDoc {
    stock: Vec<CellPriceDoc>,
    capacity: Vec<StorePriceDoc>,
}

/// Money saved per extra unit of a stock cell.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellPriceDoc {
    #[schema(schema_with = id_text_schema)]
    store_id: String,
    #[schema(schema_with = id_text_schema)]
    sku: String,
    saving_per_unit: f64,
}

/// Money saved per extra order of a store's daily capacity.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorePriceDoc {
    #[schema(schema_with = id_text_schema)]
    store_id: String,
    saving_per_order: f64,
}

/// One served order of a plan.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentDoc {
    #[schema(schema_with = order_id)]
    order_id: String,
    shipments: Vec<PlanShipmentDoc>,
    cost: f64,
}

/// One shipment of a planned order: from a store or from a DC.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanShipmentDoc {
    #[schema(schema_with = id_text_schema)]
    store_id: Option<String>,
    #[schema(schema_with = id_text_schema)]
    dc_id: Option<String>,
    lines: Vec<LineDoc>,
    distance_m: f64,
    /// Where the goods leave from, degrees.
    lon: Option<f64>,
    lat: Option<f64>,
    #[schema(schema_with = any_mode)]
    mode: Option<String>,
    /// Time until delivery (ship) or until ready for collection (pickup), seconds, opening
    /// hours included.
    eta_s: Option<u32>,
    #[schema(schema_with = promise)]
    promise: Option<String>,
}

/// Body of `POST /v1/simulations`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationRequestDoc {
    /// A scenario file's text (TOML, see scenarios/README.md) without `base` (the job runs on a
    /// snapshot of the live network and stock) and with `[demand.generate]`; any policy
    /// (`checkout`, `waves`, `duals` with a drawn forecast: `forecast_orders` names a file and is
    /// refused here).
    scenario: String,
}

/// A simulation job.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationStatusDoc {
    simulation_id: String,
    #[schema(schema_with = plan_status)]
    status: String,
    /// Orders the scenario replays.
    orders: usize,
    #[schema(schema_with = date_time)]
    created_at: String,
    #[schema(schema_with = date_time)]
    finished_at: Option<String>,
    progress: ProgressDoc,
    /// When done: what `omniroute simulate` writes to the scenario's report.json
    /// (`{scenario, policy, routing, kpis}`).
    #[schema(value_type = Option<Object>)]
    result: Option<serde_json::Value>,
    /// When failed.
    error: Option<String>,
}

/// An order the plan leaves unfilled.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnfilledDoc {
    #[schema(schema_with = order_id)]
    order_id: String,
    #[schema(schema_with = unfilled_reason)]
    reason: String,
}

/// The greedy plan on the same orders.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreedyComparisonDoc {
    greedy_cost: f64,
    greedy_dc_share: f64,
    greedy_unfilled: usize,
    greedy_s: f64,
    /// (greedy cost - plan cost) / plan cost.
    greedy_excess: f64,
}

/// One row of a stock feed: an absolute level (`on_hand`, optionally `safety_stock`) or a
/// relative change (`delta`). A row for a (store, SKU) pair without stock creates it; a SKU the
/// catalogue lacks is learned.
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
pub enum FeedRowDoc {
    Set(FeedSetDoc),
    Add(FeedAddDoc),
}

/// on_hand becomes this (and safety stock, when given).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSetDoc {
    #[schema(schema_with = id_input)]
    store_id: serde_json::Value,
    #[schema(schema_with = id_input)]
    sku: serde_json::Value,
    #[schema(minimum = 0, maximum = 2147483647)]
    on_hand: i64,
    #[schema(minimum = 0, maximum = 2147483647)]
    #[serde(default)]
    safety_stock: Option<i64>,
}

/// on_hand changes by `delta` (negative for sales); the whole feed is refused if a row would
/// take on_hand below zero.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedAddDoc {
    #[schema(schema_with = id_input)]
    store_id: serde_json::Value,
    #[schema(schema_with = id_input)]
    sku: serde_json::Value,
    #[schema(minimum = -2147483647, maximum = 2147483647)]
    delta: i64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use optimizer::model::{Mode, Order, OrderId, OrderLine, Qty, Sku, Timestamp};
    use optimizer::router::{Router, RouterConfig};
    use optimizer::travel::GreatCircle;

    fn strict<T: for<'de> Deserialize<'de>>(json: &str) -> T {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    fn engine() -> optimizer::Engine {
        crate::data::load_engine(&crate::cli::default_data_dir(), optimizer::EngineConfig::default())
            .unwrap()
            .0
    }

    fn order(i: usize, at: (f64, f64), mode: Mode, skus: &[&str]) -> Order {
        let lines =
            skus.iter().map(|s| OrderLine::new(Sku::parse(s).unwrap(), Qty::parse(2).unwrap())).collect();
        let pickup = (mode == Mode::Pickup).then(|| optimizer::model::StoreId::parse("1886").unwrap());
        Order::new(
            OrderId::parse(&format!("DOC-{i}")).unwrap(),
            Timestamp(1_794_326_400 + 36_000),
            optimizer::model::LonLat::new(at.0, at.1).unwrap(),
            mode,
            pickup,
            lines,
        )
        .unwrap()
    }

    /// Decisions of every kind (store, split, DC, pickup, unknown SKU, nothing nearby) fit the
    /// documented schema exactly.
    #[test]
    fn real_decisions_fit_the_decision_schema() {
        let engine = engine();
        let router = Router::new(RouterConfig::default(), GreatCircle::default());
        let chengdu = (103.904716, 30.71352);
        let orders = [
            order(0, chengdu, Mode::Ship, &["2"]),
            order(1, chengdu, Mode::Ship, &["2", "3", "5", "7", "11"]),
            order(2, (87.6, 43.8), Mode::Ship, &["199"]),
            order(3, chengdu, Mode::Pickup, &["1"]),
            order(4, chengdu, Mode::Ship, &["NO-SUCH-SKU"]),
        ];
        for o in &orders {
            let d = router.route(&engine, o).unwrap();
            let mut json = serde_json::to_string(&d.on(engine.network())).unwrap();
            json.pop();
            json.push_str(r#","reservation_state":"held"}"#);
            let _: DecisionDoc = strict(&json);
        }
    }

    /// An LP plan with its bound, shadow prices and greedy comparison fits the plan schema.
    #[test]
    fn a_real_plan_fits_the_plan_result_schema() {
        use optimizer::plan::{LedgerView, PlanConfig, Planning, SolveOptions, Solver};
        let engine = engine();
        let text = std::fs::read_to_string(crate::cli::default_data_dir().join("orders.jsonl")).unwrap();
        let orders: Vec<Order> =
            text.lines().take(300).map(|l| crate::data::order_json::parse_order(l).unwrap()).collect();
        let view =
            LedgerView { network: engine.network(), ledger: engine.ledger(), now: Timestamp(1_794_326_400) };
        let cost = GreatCircle::default();
        let none = optimizer::progress::NoProgress;
        let planning = Planning::new(&engine, &view, &cost, &orders, &PlanConfig::default(), &none);
        let outcome =
            planning.solve(SolveOptions { solver: Solver::Lp, ..SolveOptions::default() }, &none).unwrap();
        let json = crate::server::plans::result_json(&outcome).unwrap();
        let doc: PlanResultDoc = strict(json.get());
        assert!(doc.lp.is_some() && doc.greedy_comparison.is_some());
    }

    #[test]
    fn the_document_is_valid_and_every_operation_has_its_own_id() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no id"));
                assert!(ids.insert(id.to_string()), "{id} twice");
                let responses = op["responses"].as_object().unwrap();
                // Public operations (the coupon public keys) answer no 401 or 403.
                let secured: &[&str] = if op.get("security").is_some() { &["401", "403"] } else { &[] };
                for status in ["400", "503"].iter().chain(secured) {
                    assert!(responses.contains_key(*status), "{method} {path} lacks {status}");
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let inside = p["in"].as_str().unwrap();
                    assert!(
                        inside != "path" || path.contains(&format!("{{{}}}", p["name"].as_str().unwrap()))
                    );
                }
            }
        }
        assert_eq!(ids.len(), 34);
        let link = &spec["paths"]["/v1/orders/route"]["post"]["responses"]["200"]["links"]["get"];
        assert_eq!(link["operationId"], "get_order", "{link}");
        assert!(link.get("operation_id").is_none());
    }
}
