//! `/v1/stock`: stock feeds from store systems and stock reads.

use super::stores::parse_store;
use super::{parse_json, read_json_body};
use crate::server::auth::{Action, Caller};
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::service::{AuditEntry, Checkout, FedCell, ServiceError};
use actix_web::{web, HttpRequest, HttpResponse};
use optimizer::ledger::{FeedRow, StockChange, MAX_ON_HAND};
use optimizer::model::{whole, Network, Sku, StoreId, StoreIdx};
use serde::{Deserialize, Serialize};

/// One feed row: exactly one of `on_hand` (absolute) or `delta` (relative).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRowJson {
    store_id: StoreId,
    sku: Sku,
    /// New on_hand (absolute feed).
    #[serde(default, deserialize_with = "whole::option_i64")]
    on_hand: Option<i64>,
    /// Change of on_hand, negative for sales (relative feed).
    #[serde(default, deserialize_with = "whole::option_i64")]
    delta: Option<i64>,
    /// New safety stock (absolute feeds only).
    #[serde(default, deserialize_with = "whole::option_i64")]
    safety_stock: Option<i64>,
}

/// A cell left with on_hand below what is reserved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Oversubscribed {
    #[schema(value_type = String)]
    store_id: StoreId,
    #[schema(value_type = String)]
    sku: Sku,
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

#[utoipa::path(
    put, path = "/v1/stock", tag = "stock", operation_id = "feed_stock",
    request_body = [crate::server::openapi::FeedRowDoc],
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
    let caller = state.keys().authorize(&req, Action::WriteStock)?;
    let body = read_json_body(&req, payload, state.limits().max_batch_body_bytes).await?;
    let net = state.network();
    let cells = feed(state.checkout(), &body, state.limits().max_feed_rows, &caller, None).await?;
    let oversubscribed = cells
        .iter()
        .filter(|c| c.level.oversubscribed)
        .map(|c| Oversubscribed {
            store_id: net.store_id(c.store).clone(),
            sku: net.catalog().sku(c.sku).clone(),
            on_hand: c.level.on_hand,
            reserved: c.level.reserved,
        })
        .collect();
    let new_rows = cells.iter().filter(|c| c.new_row).count();
    Ok(HttpResponse::Ok().json(FeedResult { applied: cells.len(), new_rows, oversubscribed }))
}

/// A stock feed from a store system (a `PUT /v1/stock` body, or a broker message with its id):
/// parsed, checked against `caller`'s brands and applied whole, or refused whole. The audit log
/// records it either way; a refused feed changes nothing else.
pub(crate) async fn feed(
    checkout: &dyn Checkout,
    body: &[u8],
    max_rows: usize,
    caller: &Caller,
    message: Option<&str>,
) -> Result<Vec<FedCell>, ApiError> {
    let net = checkout.core().engine().network();
    let now = crate::service::now().0;
    let feed = match parse_feed(checkout.core().engine(), body, max_rows, caller) {
        Ok(feed) => feed,
        Err(e @ ApiError::BrandOutOfScope { .. }) => {
            // Refused for its scope: the audit log says who tried what.
            let rows: Vec<FeedRowJson> = parse_json(body)?;
            let stores = rows.iter().filter_map(|r| net.store_idx(&r.store_id));
            let audit = audit_entries(net, stores, caller, now, Some(e.to_string()));
            checkout.record_audit(&audit).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let accepted = audit_entries(net, feed.iter().map(|r| r.store), caller, now, None);
    match checkout.apply_feed(&feed, &accepted, message).await {
        Ok(cells) => Ok(cells),
        Err(e @ (ServiceError::NegativeOnHand { .. } | ServiceError::OnHandTooLarge { .. })) => {
            let reason = ApiError::from(e.clone()).to_string();
            let refused = audit_entries(net, feed.iter().map(|r| r.store), caller, now, Some(reason));
            checkout.record_audit(&refused).await?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// One audit entry per brand of the feed's `stores` (a store per row), oldest brand id first.
fn audit_entries(
    net: &Network,
    stores: impl Iterator<Item = StoreIdx>,
    caller: &Caller,
    at: i64,
    refused: Option<String>,
) -> Vec<AuditEntry> {
    let mut rows: std::collections::BTreeMap<&str, u32> = Default::default();
    for s in stores {
        *rows.entry(net.store(s).brand.as_str()).or_default() += 1;
    }
    rows.into_iter()
        .map(|(brand, rows)| AuditEntry {
            seq: 0,
            at,
            key_id: caller.key_id.to_string(),
            brand: brand.to_string(),
            rows,
            accepted: refused.is_none(),
            reason: refused.clone(),
        })
        .collect()
}

/// Parses and checks a feed body against `engine`'s network: every row valid and of a store of
/// `caller`'s brands, then the SKUs no store has had yet are learned (`[i].field` in errors).
pub(crate) fn parse_feed(
    engine: &optimizer::Engine,
    body: &[u8],
    max_rows: usize,
    caller: &Caller,
) -> Result<Vec<FeedRow>, ApiError> {
    let rows: Vec<FeedRowJson> = parse_json(body)?;
    if rows.len() > max_rows {
        return Err(ApiError::TooManyItems { field: "rows".into(), got: rows.len(), max: max_rows });
    }
    let net = engine.network();
    let checked = rows.iter().enumerate().map(|(i, r)| r.parse(net, i)).collect::<Result<Vec<_>, _>>()?;
    // A row of another brand's store refuses the whole feed, before anything is learned.
    for (i, (store, _)) in checked.iter().enumerate() {
        caller.check_store(net.store(*store), &format!("[{i}].store_id"))?;
    }
    let mut feed = Vec::with_capacity(rows.len());
    for (i, (r, (store, change))) in rows.iter().zip(checked).enumerate() {
        let sku = engine.learn_sku(&r.sku).map_err(|e| ApiError::UnknownSku {
            field: format!("[{i}].sku"),
            message: format!("sku {} is not in the catalogue: {e}", r.sku),
        })?;
        feed.push(FeedRow { store, sku, change });
    }
    Ok(feed)
}

impl FeedRowJson {
    /// The row's store and change, with every value in range (`[i].field` in errors).
    fn parse(&self, net: &Network, i: usize) -> Result<(StoreIdx, StockChange), ApiError> {
        let store = net.store_idx(&self.store_id).ok_or_else(|| ApiError::UnknownStore {
            field: format!("[{i}].store_id"),
            message: format!("store {} does not exist", self.store_id),
        })?;
        let units = |field: &str, v: i64| {
            u32::try_from(v).ok().filter(|v| *v <= MAX_ON_HAND).ok_or_else(|| {
                ApiError::invalid(
                    format!("[{i}].{field}"),
                    format!("{field} {v} is outside 0..={MAX_ON_HAND}"),
                )
            })
        };
        let change = match (self.on_hand, self.delta, self.safety_stock) {
            (Some(v), None, s) => StockChange::Set {
                on_hand: units("on_hand", v)?,
                safety_stock: s.map(|s| units("safety_stock", s)).transpose()?,
            },
            (None, Some(d), None) if d.unsigned_abs() <= u64::from(MAX_ON_HAND) => StockChange::Add(d),
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
        Ok((store, change))
    }
}

#[utoipa::path(
    get, path = "/v1/stock/{store_id}/{sku}", tag = "stock", operation_id = "get_stock",
    params(
        ("store_id" = String, Path, description = "Store id, percent-encoded", min_length = 1, max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
        ("sku" = String, Path, description = "SKU, percent-encoded", min_length = 1, max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
    ),
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
    let caller = state.keys().authorize(&req, Action::Read)?;
    let (store_raw, sku_raw) = path.into_inner();
    let (store_id, store) = parse_store(&state, &store_raw)?;
    caller.check_store(state.network().store(store), "store_id")?;
    let sku_id = Sku::parse(&sku_raw).map_err(|e| ApiError::invalid("sku", e))?;
    let sku = state
        .network()
        .catalog()
        .get(&sku_id)
        .ok_or(ApiError::NotFound { what: "sku", field: Some("sku".into()) })?;
    let level = state
        .checkout()
        .stock_level(store, sku)
        .await?
        .ok_or(ApiError::NotFound { what: "stock row", field: Some("sku".into()) })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "store_id": store_id, "sku": sku_id,
        "on_hand": level.on_hand, "reserved": level.reserved, "safety_stock": level.safety_stock,
        "available": level.available, "oversubscribed": level.oversubscribed,
    })))
}

/// Query of the stock audit log.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this sequence number (the `next_after` of the previous page); default 0.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many entries (1 to 10,000; default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// Only this brand's entries (a scoped key: one of its brands).
    #[param(min_length = 1, max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")]
    brand: Option<String>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<String>, pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// A page of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page (the last entry's sequence number, or `after` itself).
    next_after: u64,
}

#[utoipa::path(
    get, path = "/v1/audit/stock", tag = "stock", operation_id = "stock_audit", params(AuditQuery),
    responses(
        (status = 200, description = "Stock feeds accepted and refused, oldest first: sequence number, time, key id, brand, rows, accepted, reason. JSON, or CSV with `format=csv`", content((AuditPage = "application/json"), (String = "text/csv"))),
    ),
    security(("bearer" = []))
)]
/// The stock audit log: every stock feed, accepted or refused, per brand, with the key that sent
/// it. Admin reads every brand; a store system its own brands.
pub async fn audit(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::ReadAudit)?;
    let q: AuditQuery = super::parse_query(&req)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 10000"));
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::invalid("format", format!("format `{other}`: json or csv"))),
    };
    let brands: Option<Vec<String>> = match (&q.brand, caller.brands()) {
        (Some(b), _) => {
            optimizer::model::BrandId::parse(b).map_err(|e| ApiError::invalid("brand", e))?;
            if !caller.may_act_for(b) {
                return Err(ApiError::BrandOutOfScope {
                    field: "brand".into(),
                    message: format!("brand {b} is outside this key's brands"),
                });
            }
            Some(vec![b.clone()])
        }
        (None, Some(mine)) => Some(mine.to_vec()),
        (None, None) => None,
    };
    let after = u64::try_from(q.after.unwrap_or(0))
        .map_err(|_| ApiError::invalid("after", "after must be 0 or more"))?;
    let entries = state.checkout().audit_log(brands.as_deref(), after, limit).await?;
    let next_after = entries.last().map_or(after, |e| e.seq);
    if !csv {
        return Ok(HttpResponse::Ok().json(AuditPage { entries, next_after }));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| ApiError::Internal(e.to_string());
    w.write_record(["seq", "at", "key_id", "brand", "rows", "accepted", "reason"]).map_err(io)?;
    for e in &entries {
        let at = jiff::Timestamp::from_second(e.at).map_or_else(|_| e.at.to_string(), |t| t.to_string());
        w.write_record([
            e.seq.to_string().as_str(),
            &at,
            &e.key_id,
            &e.brand,
            &e.rows.to_string(),
            if e.accepted { "true" } else { "false" },
            e.reason.as_deref().unwrap_or(""),
        ])
        .map_err(io)?;
    }
    let body = w.into_inner().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(body))
}
