//! `/v1/orders`: route (single and batch), cancel, ship, read.

use super::{parse_json, read_json_body};
use crate::data::order_json::{parse_order_priced, FieldError};
use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::service::{End, OrderView};
use actix_web::{web, HttpRequest, HttpResponse};
use optimizer::model::{Order, OrderId};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Parses an order and checks it against the network (`prefix` names it inside a list).
fn parse_checked(state: &AppState, raw: &str, prefix: &str) -> Result<Order, ApiError> {
    let within = |e: ApiError| if prefix.is_empty() { e } else { e.within(prefix) };
    let core = state.checkout().core();
    let order = parse_order_priced(raw, core.prices()).map_err(|e: FieldError| within(ApiError::from(e)))?;
    let engine = core.engine();
    if !engine.within_reach(order.customer()) {
        return Err(within(ApiError::OutOfArea {
            field: "customer".into(),
            message: format!(
                "the customer is more than {:.0} km from every store and DC of this network",
                engine.network().reach_m() / 1000.0
            ),
        }));
    }
    // A SKU no store has stocked yet is learned: the order ships from a DC.
    engine.admit(&order).map_err(|e| within(e.into()))?;
    Ok(order)
}

/// Parses and checks item `i` of a list of orders (`orders[i]...` in error fields), refusing an
/// order id already in `seen`; `list` names the list in that message ("batch", "plan").
pub(super) fn parse_listed(
    state: &AppState,
    raw: &str,
    i: usize,
    seen: &mut rustc_hash::FxHashSet<OrderId>,
    list: &str,
) -> Result<Order, ApiError> {
    let prefix = format!("orders[{i}]");
    let o = parse_checked(state, raw, &prefix)?;
    if !seen.insert(o.id().clone()) {
        return Err(ApiError::invalid(
            format!("{prefix}.order_id"),
            format!("order {} appears twice in this {list}", o.id()),
        ));
    }
    Ok(o)
}

#[utoipa::path(
    post, path = "/v1/orders/route", tag = "orders", operation_id = "route_order",
    request_body = crate::server::openapi::OrderDoc,
    responses(
        (status = 200, description = "The decision (identical for retries)", body = crate::server::openapi::DecisionDoc),
        (status = 400, description = "Malformed JSON or an invalid field", body = crate::server::error::ErrorBody),
        (status = 409, description = "Same order_id, different body (idempotency_mismatch)", body = crate::server::error::ErrorBody),
        (status = 422, description = "Unknown pickup store (`unknown_store`), customer out of the network's area (`out_of_area`) or a SKU the catalogue can no longer learn (`unknown_sku`)", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Route one order and reserve its stock. Idempotent by `order_id`.
pub async fn route(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Checkout)?;
    let body = read_json_body(&req, payload, state.limits().max_body_bytes).await?;
    let text = std::str::from_utf8(&body).map_err(|e| ApiError::MalformedJson { message: e.to_string() })?;
    let order = parse_checked(&state, text, "")?;
    let mut results = state.checkout().route_many(std::slice::from_ref(&order)).await;
    let answer = results.pop().expect("one result per order")?;
    Ok(HttpResponse::Ok().content_type("application/json").body(answer.response.clone()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(borrow)]
    orders: Vec<&'a RawValue>,
}

#[utoipa::path(
    post, path = "/v1/orders/route-batch", tag = "orders", operation_id = "route_orders",
    request_body = crate::server::openapi::BatchDoc,
    responses(
        (status = 200, description = "One result per order, in order: a decision, or {error}", body = crate::server::openapi::BatchResultDoc),
        (status = 400, description = "Malformed JSON", body = crate::server::error::ErrorBody),
        (status = 413, description = "More than 10,000 orders or too large a body", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Route up to 10,000 orders in one call, with the same per-order semantics as `/v1/orders/route`.
pub async fn route_batch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Checkout)?;
    let body = read_json_body(&req, payload, state.limits().max_batch_body_bytes).await?;
    let batch: BatchBody<'_> = parse_json(&body)?;
    let max = state.limits().max_batch_orders;
    if batch.orders.len() > max {
        return Err(ApiError::TooManyItems { field: "orders".into(), got: batch.orders.len(), max });
    }
    let mut slots: Vec<Result<usize, ApiError>> = Vec::with_capacity(batch.orders.len());
    let mut valid: Vec<Order> = Vec::with_capacity(batch.orders.len());
    let mut seen = rustc_hash::FxHashSet::default();
    for (i, raw) in batch.orders.iter().enumerate() {
        let parsed = parse_listed(&state, raw.get(), i, &mut seen, "batch");
        slots.push(parsed.map(|o| {
            valid.push(o);
            valid.len() - 1
        }));
    }
    let answers = state.checkout().route_many(&valid).await;
    let mut out = Vec::with_capacity(64 * slots.len() + 16);
    out.extend_from_slice(b"{\"results\":[");
    for (n, slot) in slots.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match slot.and_then(|i| answers[i].clone().map_err(ApiError::from)) {
            Ok(a) => out.extend_from_slice(&a.response),
            Err(e) => {
                out.extend_from_slice(b"{\"error\":");
                serde_json::to_writer(&mut out, &e.body()).map_err(|e| ApiError::Internal(e.to_string()))?;
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b"]}");
    Ok(HttpResponse::Ok().content_type("application/json").body(out))
}

fn parse_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|e| ApiError::invalid("order_id", e))
}

/// `{order_id, state, reservation_expires_at, decision}`, the decision exactly as answered.
fn render(view: &OrderView) -> Result<HttpResponse, ApiError> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        order_id: &'a OrderId,
        state: &'static str,
        reservation_expires_at: Option<optimizer::model::Timestamp>,
        decision: &'a RawValue,
    }
    let text = std::str::from_utf8(&view.decision).map_err(|e| ApiError::Internal(e.to_string()))?;
    let decision: &RawValue = serde_json::from_str(text).map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Body {
        order_id: &view.order_id,
        state: view.state.map_or("none", |s| s.as_str()),
        reservation_expires_at: view.expires_at,
        decision,
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type("application/json").body(bytes))
}

#[utoipa::path(
    get, path = "/v1/orders/{order_id}", tag = "orders", operation_id = "get_order",
    params(("order_id" = String, Path, description = "The order id", pattern = r"^[A-Za-z0-9\-_.:/]{1,64}$")),
    responses(
        (status = 200, description = "The order's reservation state and its decision", body = crate::server::openapi::OrderViewDoc),
        (status = 404, description = "Unknown order", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Read an order: its reservation state and the decision it got.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::ReadOrders)?;
    let id = parse_id(&path)?;
    let view = state
        .checkout()
        .order(&id)
        .await?
        .ok_or(ApiError::NotFound { what: "order", field: Some("order_id".into()) })?;
    render(&view)
}

#[utoipa::path(
    post, path = "/v1/orders/{order_id}/cancel", tag = "orders", operation_id = "cancel_order",
    params(("order_id" = String, Path, description = "The order id", pattern = r"^[A-Za-z0-9\-_.:/]{1,64}$")),
    responses(
        (status = 200, description = "Released (or already released/expired)", body = crate::server::openapi::OrderViewDoc),
        (status = 404, description = "Unknown order", body = crate::server::error::ErrorBody),
        (status = 409, description = "Already shipped (invalid_state) or nothing reserved (no_reservation)", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Cancel an order: release its reservation. Idempotent.
pub async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    finish(req, path, state, End::Cancel).await
}

#[utoipa::path(
    post, path = "/v1/orders/{order_id}/ship", tag = "orders", operation_id = "ship_order",
    params(("order_id" = String, Path, description = "The order id", pattern = r"^[A-Za-z0-9\-_.:/]{1,64}$")),
    responses(
        (status = 200, description = "Committed: stock left the store (or was already committed)", body = crate::server::openapi::OrderViewDoc),
        (status = 404, description = "Unknown order", body = crate::server::error::ErrorBody),
        (status = 409, description = "Released or expired (invalid_state) or nothing reserved (no_reservation)", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Ship an order: commit its reservation (on_hand and reserved both drop). Idempotent.
pub async fn ship(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    finish(req, path, state, End::Ship).await
}

async fn finish(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    end: End,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Checkout)?;
    let id = parse_id(&path)?;
    let view = state.checkout().finish(&id, end).await?;
    state.checkout().core().recommender().ended(&id, end == End::Ship, crate::service::now().0);
    render(&view)
}
