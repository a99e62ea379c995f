//! `/v1/stock`: stock feeds from store systems and stock reads.

use super::stores::parse_store;
use super::{parse_json, read_json_body};
use crate::server::auth::Action;
use crate::server::backend::Backend;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::storage::postgres::{FeedChange, FeedError, Postgres};
use crate::storage::ChangeSet;
use actix_web::{web, HttpRequest, HttpResponse};
use optimizer::ledger::FeedOutcome;
use optimizer::model::{Sku, SkuIdx, StoreId, StoreIdx};
use serde::{Deserialize, Serialize};

/// One feed row: exactly one of `on_hand` (absolute) or `delta` (relative).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedRow {
    store_id: u32,
    sku: u32,
    /// New on_hand (absolute feed).
    #[serde(default)]
    on_hand: Option<i64>,
    /// Change of on_hand, negative for sales (relative feed).
    #[serde(default)]
    delta: Option<i64>,
    /// New safety stock (absolute feeds only).
    #[serde(default)]
    safety_stock: Option<u32>,
}

/// A cell left with on_hand below what is reserved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Oversubscribed {
    store_id: u32,
    sku: u32,
    on_hand: u32,
    reserved: u32,
}

/// What a feed did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FeedResult {
    /// Rows applied.
    applied: usize,
    /// Rows that created a new (store, SKU) stock row.
    new_rows: usize,
    /// Cells whose on_hand is now below their reservations (kept, not clamped).
    oversubscribed: Vec<Oversubscribed>,
}

enum Change {
    Set(i64, Option<u32>),
    Add(i64),
}

#[utoipa::path(
    put, path = "/v1/stock", tag = "stock",
    request_body = [FeedRow],
    responses(
        (status = 200, description = "All rows applied durably", body = FeedResult),
        (status = 400, description = "Malformed JSON or invalid row (nothing applied)", body = crate::server::error::ErrorBody),
        (status = 413, description = "More than 100,000 rows", body = crate::server::error::ErrorBody),
        (status = 422, description = "Unknown store/SKU or on_hand would go negative (nothing applied)", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Bulk stock feed: all rows or none.
pub async fn put(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys.authorize(&req, Action::WriteStock)?;
    let body = read_json_body(&req, payload, state.limits.max_batch_body_bytes).await?;
    let rows: Vec<FeedRow> = parse_json(&body)?;
    let max = state.limits.max_feed_rows;
    if rows.len() > max {
        return Err(ApiError::TooManyItems { field: "rows".into(), got: rows.len(), max });
    }
    let net = state.engine.network();
    // Validate everything before changing anything.
    let mut plan: Vec<(StoreIdx, SkuIdx, Change)> = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let store = net.store_idx(StoreId(r.store_id)).ok_or_else(|| ApiError::UnknownStore {
            field: format!("[{i}].store_id"),
            message: format!("store {} does not exist", r.store_id),
        })?;
        let sku = net.catalog().get(Sku(r.sku)).ok_or_else(|| ApiError::UnknownSku {
            field: format!("[{i}].sku"),
            message: format!("sku {} is not in the catalogue", r.sku),
        })?;
        let change = match (r.on_hand, r.delta, r.safety_stock) {
            (Some(v), None, s) if (0..=i64::from(u32::MAX)).contains(&v) => Change::Set(v, s),
            (Some(v), None, _) => {
                return Err(ApiError::invalid(
                    format!("[{i}].on_hand"),
                    format!("on_hand {v} is outside 0..=4294967295"),
                ))
            }
            (None, Some(d), None) if d.unsigned_abs() <= u64::from(u32::MAX) => Change::Add(d),
            (None, Some(d), None) => {
                return Err(ApiError::invalid(format!("[{i}].delta"), format!("delta {d} is too large")))
            }
            (None, Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    format!("[{i}].safety_stock"),
                    "safety_stock goes with on_hand, not delta",
                ))
            }
            (Some(_), Some(_), _) => {
                return Err(ApiError::invalid(format!("[{i}].delta"), "give on_hand or delta, not both"))
            }
            (None, None, _) => {
                return Err(ApiError::invalid(
                    format!("[{i}].on_hand"),
                    "one of on_hand or delta is required",
                ))
            }
        };
        plan.push((store, sku, change));
    }
    if let Backend::Postgres(pg) = &state.backend {
        return feed_pg(pg, &state, plan).await;
    }
    let ledger = state.engine.ledger();
    let mut applied: Vec<(StoreIdx, SkuIdx, FeedOutcome)> = Vec::with_capacity(plan.len());
    for (i, (store, sku, change)) in plan.iter().enumerate() {
        let out = match change {
            Change::Set(v, s) => state.engine.set_stock(*store, *sku, *v, *s),
            Change::Add(d) => state.engine.add_stock(*store, *sku, *d),
        };
        match out {
            Ok(o) => applied.push((*store, *sku, o)),
            Err(e) => {
                // Undo the rows applied so far, newest first: a rejected feed changes nothing.
                for (s, k, o) in applied.iter().rev() {
                    let _ = ledger.set_on_hand(*s, *k, i64::from(o.previous_on_hand), None);
                }
                // Ranges were validated above, so the only refusal left is a delta below zero.
                return Err(ApiError::NegativeOnHand {
                    field: format!("[{i}].delta"),
                    message: e.to_string(),
                });
            }
        }
    }
    let changes: Vec<_> = applied.iter().map(|(_, _, o)| o.change).collect();
    state.commit(ChangeSet { cells: state.cell_records(&changes), ..ChangeSet::default() }).await?;
    state.metrics.feed_rows.inc_by(applied.len() as u64);
    let oversubscribed = applied
        .iter()
        .filter(|(_, _, o)| o.level.oversubscribed)
        .map(|(s, k, o)| Oversubscribed {
            store_id: net.store(*s).id.0,
            sku: net.catalog().sku(*k).0,
            on_hand: o.level.on_hand,
            reserved: o.level.reserved,
        })
        .collect();
    let new_rows = applied.iter().filter(|(_, _, o)| o.new_row).count();
    Ok(HttpResponse::Ok().json(FeedResult { applied: applied.len(), new_rows, oversubscribed }))
}

/// The feed against the database: all rows or none, in one transaction; the cache takes the
/// new values at once (other replicas through the notifications).
async fn feed_pg(
    pg: &Postgres,
    state: &AppState,
    plan: Vec<(StoreIdx, SkuIdx, Change)>,
) -> Result<HttpResponse, ApiError> {
    let net = state.engine.network();
    let ids = |store: StoreIdx, sku: SkuIdx| (net.store(store).id.0, net.catalog().sku(sku).0);
    let rows = plan
        .iter()
        .map(|(store, sku, change)| {
            let (s, k) = ids(*store, *sku);
            let change = match *change {
                // Ranges were validated by the caller.
                Change::Set(v, safety_stock) => FeedChange::Set { on_hand: v as u32, safety_stock },
                Change::Add(d) => FeedChange::Add(d),
            };
            (s, k, change)
        })
        .collect();
    let results = match pg.feed(rows).await {
        Ok(r) => r,
        Err(FeedError::Negative { row }) => {
            return Err(ApiError::NegativeOnHand {
                field: format!("[{row}].delta"),
                message: format!("row {row}: on_hand would go below zero; nothing was applied"),
            })
        }
        Err(FeedError::Storage(e)) => return Err(e.into()),
    };
    let mut oversubscribed = Vec::new();
    for ((store, sku, _), r) in plan.iter().zip(&results) {
        let (store_id, sku_id) = ids(*store, *sku);
        let free = r.on_hand.saturating_sub(r.reserved);
        state.engine.sync_cell(*store, *sku, free, r.safety_stock, r.version);
        if r.on_hand < r.reserved {
            oversubscribed.push(Oversubscribed {
                store_id,
                sku: sku_id,
                on_hand: r.on_hand,
                reserved: r.reserved,
            });
        }
    }
    state.metrics.feed_rows.inc_by(results.len() as u64);
    let new_rows = results.iter().filter(|r| r.new_row).count();
    Ok(HttpResponse::Ok().json(FeedResult { applied: results.len(), new_rows, oversubscribed }))
}

#[utoipa::path(
    get, path = "/v1/stock/{store_id}/{sku}", tag = "stock",
    params(("store_id" = u32, Path, description = "Store"), ("sku" = u32, Path, description = "SKU")),
    responses(
        (status = 200, description = "The stock level", body = crate::server::openapi::StockLevelDoc),
        (status = 404, description = "Unknown store or SKU, or no stock row", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// One store's stock of one SKU.
pub async fn get(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys.authorize(&req, Action::Read)?;
    let (store_raw, sku_raw) = path.into_inner();
    let (store_id, _) = parse_store(&state, &store_raw)?;
    let sku = sku_raw
        .parse::<u32>()
        .map(Sku)
        .map_err(|_| ApiError::invalid("sku", format!("`{sku_raw}` is not a SKU")))?;
    if let Backend::Postgres(pg) = &state.backend {
        if state.engine.network().catalog().get(sku).is_none() {
            return Err(ApiError::NotFound { what: "sku", field: Some("sku".into()) });
        }
        let Some((on_hand, reserved, safety_stock)) = pg.stock_level(store_id.0, sku.0).await? else {
            return Err(ApiError::NotFound { what: "stock row", field: Some("sku".into()) });
        };
        let available = on_hand.saturating_sub(reserved).saturating_sub(safety_stock);
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "store_id": store_id, "sku": sku,
            "on_hand": on_hand, "reserved": reserved, "safety_stock": safety_stock,
            "available": available, "oversubscribed": on_hand < reserved,
        })));
    }
    match state.engine.stock_level(store_id, sku) {
        Ok(Some(level)) => Ok(HttpResponse::Ok().json(serde_json::json!({
            "store_id": store_id, "sku": sku,
            "on_hand": level.on_hand, "reserved": level.reserved, "safety_stock": level.safety_stock,
            "available": level.available, "oversubscribed": level.oversubscribed,
        }))),
        Ok(None) => Err(ApiError::NotFound { what: "stock row", field: Some("sku".into()) }),
        Err(_) => Err(ApiError::NotFound { what: "sku", field: Some("sku".into()) }),
    }
}
