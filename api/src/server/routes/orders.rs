//! `/v1/orders`: route (single and batch), cancel, ship, read.

use super::{parse_json, read_json_body};
use crate::data::order_json::{parse_order, FieldError};
use crate::server::auth::Action;
use crate::server::backend::Backend;
use crate::server::error::ApiError;
use crate::server::orderbook::Answer;
use crate::server::state::AppState;
use crate::storage::postgres::Postgres;
use actix_web::{web, HttpRequest, HttpResponse};
use optimizer::ledger::{LedgerError, ReservationState};
use optimizer::model::{Mode, Order, OrderId, Timestamp};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A field error of an order inside a batch: its path gets the order's prefix.
fn field_error(mut e: FieldError, prefix: &str) -> ApiError {
    if !prefix.is_empty() && !e.field_is_body() {
        e.field = format!("{prefix}.{}", e.field);
    }
    ApiError::from(e)
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
    let o = parse_order(raw).map_err(|e| field_error(e, &prefix))?;
    validate(state, &o, &prefix)?;
    if !seen.insert(o.id().clone()) {
        return Err(ApiError::invalid(
            format!("{prefix}.order_id"),
            format!("order {} appears twice in this {list}", o.id()),
        ));
    }
    Ok(o)
}

/// Checks an order against the network: every SKU and the pickup store must exist.
fn validate(state: &AppState, order: &Order, prefix: &str) -> Result<(), ApiError> {
    let net = state.engine.network();
    let at = |f: String| if prefix.is_empty() { f } else { format!("{prefix}.{f}") };
    for (i, line) in order.lines().iter().enumerate() {
        if net.catalog().get(line.sku).is_none() {
            return Err(ApiError::UnknownSku {
                field: at(format!("lines[{i}].sku")),
                message: format!("sku {} is not in the catalogue", line.sku),
            });
        }
    }
    if let (Mode::Pickup, Some(store)) = (order.mode(), order.pickup_store()) {
        if net.store_idx(store).is_none() {
            return Err(ApiError::UnknownStore {
                field: at("pickup_store_id".into()),
                message: format!("store {store} does not exist"),
            });
        }
    }
    Ok(())
}

fn json_response(answer: &Answer) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(answer.response.clone())
}

#[utoipa::path(
    post, path = "/v1/orders/route", tag = "orders",
    request_body = crate::server::openapi::OrderDoc,
    responses(
        (status = 200, description = "The decision (identical for retries)", body = crate::server::openapi::DecisionDoc),
        (status = 400, description = "Malformed JSON or an invalid field", body = crate::server::error::ErrorBody),
        (status = 409, description = "Same order_id, different body (idempotency_mismatch)", body = crate::server::error::ErrorBody),
        (status = 422, description = "Unknown SKU or store", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Route one order and reserve its stock. Idempotent by `order_id`.
pub async fn route(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys.authorize(&req, Action::Checkout)?;
    let body = read_json_body(&req, payload, state.limits.max_body_bytes).await?;
    let text = std::str::from_utf8(&body).map_err(|e| ApiError::MalformedJson { message: e.to_string() })?;
    let order = parse_order(text).map_err(|e| field_error(e, ""))?;
    validate(&state, &order, "")?;
    let mut results = state.route_many(std::slice::from_ref(&order)).await;
    let answer = results.pop().expect("one result per order")?;
    Ok(json_response(&answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(borrow)]
    orders: Vec<&'a RawValue>,
}

#[utoipa::path(
    post, path = "/v1/orders/route-batch", tag = "orders",
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
    state.keys.authorize(&req, Action::Checkout)?;
    let body = read_json_body(&req, payload, state.limits.max_batch_body_bytes).await?;
    let batch: BatchBody<'_> = parse_json(&body)?;
    let max = state.limits.max_batch_orders;
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
    let answers = state.route_many(&valid).await;
    let mut out = Vec::with_capacity(64 * slots.len() + 16);
    out.extend_from_slice(b"{\"results\":[");
    for (n, slot) in slots.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match slot.and_then(|i| answers[i].clone()) {
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

fn state_name(s: Option<ReservationState>) -> &'static str {
    match s {
        None => "none",
        Some(ReservationState::Held) => "held",
        Some(ReservationState::Committed) => "committed",
        Some(ReservationState::Released) => "released",
        Some(ReservationState::Expired) => "expired",
    }
}

fn view(
    id: &OrderId,
    response: &[u8],
    state: &str,
    expires_at: Option<i64>,
) -> Result<HttpResponse, ApiError> {
    let decision: &RawValue =
        serde_json::from_slice(response).map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = serde_json::json!({
        "order_id": id,
        "state": state,
        "reservation_expires_at": expires_at.map(Timestamp),
        "decision": decision,
    });
    Ok(HttpResponse::Ok().json(body))
}

/// The stored state name of a reservation (PostgreSQL backend: 1 held .. 4 expired).
fn db_state_name(state: i16) -> &'static str {
    match state {
        1 => "held",
        2 => "committed",
        3 => "released",
        4 => "expired",
        _ => "none",
    }
}

/// The order's view, or 404 when it was never answered.
async fn order_view(state: &AppState, id: &OrderId) -> Result<HttpResponse, ApiError> {
    if let Backend::Postgres(pg) = &state.backend {
        let stored = pg
            .order(id.as_str())
            .await?
            .ok_or(ApiError::NotFound { what: "order", field: Some("order_id".into()) })?;
        let (st, exp) = stored.reservation.map_or(("none", None), |(s, e)| (db_state_name(s), Some(e)));
        return view(id, stored.response.as_bytes(), st, exp);
    }
    if !state.orders.answered(id) {
        return Err(ApiError::NotFound { what: "order", field: Some("order_id".into()) });
    }
    let answer = state.answer(id).await?;
    let reservation = state.engine.ledger().reservation(id);
    view(
        id,
        &answer.response,
        state_name(reservation.as_ref().map(|r| r.state)),
        reservation.as_ref().map(|r| r.expires_at.0),
    )
}

#[utoipa::path(
    get, path = "/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = String, Path, description = "The order id")),
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
    state.keys.authorize(&req, Action::ReadOrders)?;
    let id = parse_id(&path)?;
    order_view(&state, &id).await
}

#[utoipa::path(
    post, path = "/v1/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = String, Path, description = "The order id")),
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
    transition(req, path, state, false).await
}

#[utoipa::path(
    post, path = "/v1/orders/{order_id}/ship", tag = "orders",
    params(("order_id" = String, Path, description = "The order id")),
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
    transition(req, path, state, true).await
}

async fn transition(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    commit: bool,
) -> Result<HttpResponse, ApiError> {
    state.keys.authorize(&req, Action::Checkout)?;
    let id = parse_id(&path)?;
    if let Backend::Postgres(pg) = &state.backend {
        return transition_pg(pg, &state, &id, commit).await;
    }
    if !state.orders.answered(&id) {
        return Err(ApiError::NotFound { what: "order", field: Some("order_id".into()) });
    }
    let ledger = state.engine.ledger();
    let result =
        if commit { ledger.commit_with_changes(&id) } else { ledger.release(&id).map(|t| (t, vec![])) };
    // The transition itself (applied now or already done) does not change the answer.
    let (_, changes) = match result {
        Ok(r) => r,
        Err(LedgerError::UnknownOrder(_)) => {
            return Err(ApiError::NoReservation { order_id: id.to_string() })
        }
        Err(LedgerError::WrongState { state: s, action, .. }) => {
            return Err(ApiError::InvalidState {
                message: format!("order {id} is {} and cannot be {action}", state_name(Some(s))),
            })
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    // Persist even when this call changed nothing (`AlreadyDone`): an earlier, unacknowledged
    // change then becomes durable before this answer.
    state.persist_reservation(&id, state.cell_records(&changes)).await?;
    order_view(&state, &id).await
}

/// Cancel or ship against the database (the reservation may have been made by any replica);
/// the caches follow through the stock notifications.
async fn transition_pg(
    pg: &Postgres,
    state: &AppState,
    id: &OrderId,
    commit: bool,
) -> Result<HttpResponse, ApiError> {
    let target = if commit { 2 } else { 3 };
    let done = pg.finish(id.as_str(), target).await?;
    if done.state == 0 {
        // No reservation: an unknown order (404) or one that reserved nothing (409).
        return match pg.order(id.as_str()).await? {
            None => Err(ApiError::NotFound { what: "order", field: Some("order_id".into()) }),
            Some(_) => Err(ApiError::NoReservation { order_id: id.to_string() }),
        };
    }
    // Already in the target state, or released and then expired: the call is a no-op.
    let fine = done.state == target || (!commit && done.state == 4);
    if !fine {
        let action = if commit { "committed" } else { "released" };
        return Err(ApiError::InvalidState {
            message: format!("order {id} is {} and cannot be {action}", db_state_name(done.state)),
        });
    }
    order_view(state, id).await
}
