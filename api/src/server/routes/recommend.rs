//! Magic Mirror: `/v1/stores/{store_id}/recommendations`, `/v1/stores/{store_id}/scan` and
//! `/v1/customers/{customer_id}/token`.

use super::coupons::{coupon, customer_id, WalletCoupon};
use super::stores::parse_store;
use super::{parse_json, parse_query, read_json_body};
use crate::coupons::campaign::Status;
use crate::recommend::MAX_K;
use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use optimizer::model::{SkuIdx, StoreIdx};
use serde::{Deserialize, Serialize};

/// How long a customer token lets a screen read her list and coupons.
const TOKEN_TTL_S: i64 = 15 * 60;

/// Query of the recommendations call.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecommendQuery {
    /// The shopper's customer id; without it, what is popular in this store.
    #[param(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    customer_id: Option<String>,
    /// How many items, 1 to 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    k: Option<String>,
}

/// One recommended item.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Recommended {
    pub sku: String,
    /// From the dataset's `catalogue.csv`, when it lists the SKU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<crate::recommend::history::Product>,
    /// Units the store can hand over now (after reservations and safety stock), at least 1.
    pub available: u32,
    /// The model's score (higher first; comparable within one list only).
    pub score: f32,
    /// `habit`, `bought_before`, `bought_with`, `like_you`, `popular_in_store`,
    /// `popular_in_city`, `popular` or `in_stock`.
    pub reason: &'static str,
    /// The reason in words ("you buy this about every 30 days").
    pub reason_text: String,
}

/// A store's list for one shopper.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Recommendations {
    pub store_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Whether her history (or an order shipped since) is known; if not, the list is what is
    /// popular here.
    pub known_customer: bool,
    /// Shorter than k only when the store has fewer items available.
    pub items: Vec<Recommended>,
}

fn recommendations(state: &AppState, store: StoreIdx, customer: Option<&str>, k: usize) -> Recommendations {
    let core = state.checkout().core();
    let net = state.network();
    let ledger = core.engine().ledger();
    let rec = core.recommender();
    let picks = rec.recommend(customer, store, k, ledger);
    let sku_name = |i: u32| net.catalog().sku(SkuIdx(i)).as_str().to_owned();
    let city = |c: u32| net.cities().get(c as usize).map_or_else(|| "this city".into(), |c| c.name.clone());
    let items = picks
        .into_iter()
        .map(|p| {
            let sku = sku_name(p.item);
            Recommended {
                product: core.catalogue().get(&sku).cloned(),
                available: ledger.level(store, SkuIdx(p.item)).map_or(0, |l| l.available),
                score: p.score,
                reason: p.reason.kind(),
                reason_text: p.reason.text(sku_name, city),
                sku,
            }
        })
        .collect();
    let known = customer.is_some_and(|c| rec.knows(c));
    state.metrics().recommendations.with_label_values(&[if known { "known" } else { "anonymous" }]).inc();
    Recommendations {
        store_id: net.store_id(store).as_str().to_owned(),
        customer_id: customer.map(str::to_owned),
        known_customer: known,
        items,
    }
}

#[utoipa::path(
    get, path = "/v1/stores/{store_id}/recommendations", tag = "recommendations", operation_id = "store_recommendations",
    params(("store_id" = String, Path, description = "The store id, percent-encoded"), RecommendQuery),
    responses(
        (status = 200, description = "Items this store can hand over now, best first, each with its reason", body = Recommendations),
        (status = 400, description = "Invalid customer id or k", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not a key that acts for shoppers", body = crate::server::error::ErrorBody),
        (status = 404, description = "Unknown store", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// A shopper's recommendations in one store: from her history, only items in stock there.
pub async fn list(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Coupons)?;
    let (_, store) = parse_store(&state, &path)?;
    let q: RecommendQuery = parse_query(&req)?;
    if let Some(c) = &q.customer_id {
        customer_id(c, "customer_id")?;
    }
    let k = match q.k.as_deref() {
        None => 10,
        Some(raw) => raw.parse::<usize>().ok().filter(|k| (1..=MAX_K).contains(k)).ok_or_else(|| {
            ApiError::invalid("k", format!("`{raw}` is not a whole number between 1 and {MAX_K}"))
        })?,
    };
    Ok(HttpResponse::Ok().json(recommendations(&state, store, q.customer_id.as_deref(), k)))
}

/// What a screen sends when a shopper scans.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The token the shopper's app shows (from `POST /v1/customers/{customer_id}/token`).
    #[schema(min_length = 1, max_length = 200)]
    pub customer_token: String,
}

/// The Magic Mirror's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScanResponse {
    #[serde(flatten)]
    pub recommendations: Recommendations,
    /// Her captured coupons usable in this store: the campaign runs, this store takes part,
    /// its redemption has not ended and she has redemptions left.
    pub coupons: Vec<ScannedCoupon>,
}

/// A wallet coupon, and whether it can be redeemed right now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScannedCoupon {
    #[serde(flatten)]
    pub coupon: WalletCoupon,
    pub redeemable_now: bool,
}

#[utoipa::path(
    post, path = "/v1/stores/{store_id}/scan", tag = "recommendations", operation_id = "scan",
    params(("store_id" = String, Path, description = "The store id, percent-encoded")),
    request_body = ScanRequest,
    responses(
        (status = 200, description = "Her ten recommendations in this store and her coupons usable here", body = ScanResponse),
        (status = 400, description = "Malformed JSON", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not a key that reads stores", body = crate::server::error::ErrorBody),
        (status = 404, description = "Unknown store", body = crate::server::error::ErrorBody),
        (status = 422, description = "`invalid_customer_token`: forged, altered or expired", body = crate::server::error::ErrorBody),
        (status = 501, description = "No coupon signing keys configured (they sign customer tokens)", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// The Magic Mirror: a shopper scans her token at a store's screen and gets her list and coupons.
pub async fn scan(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Read)?;
    let (_, store) = parse_store(&state, &path)?;
    caller.check_store(state.network().store(store), "store_id")?;
    let body = read_json_body(&req, payload, 4 << 10).await?;
    let r: ScanRequest = parse_json(&body)?;
    let now = crate::service::now().0;
    let customer = state
        .coupons()?
        .config
        .keys
        .verify_customer(&r.customer_token, now)
        .map_err(|_| ApiError::InvalidCustomerToken)?;
    let recommendations = recommendations(&state, store, Some(&customer), 10);
    let core = state.checkout().core();
    let mut coupons = Vec::new();
    for e in state.checkout().wallet(&customer).await? {
        let Some(offered) = core.campaign(state.checkout(), e.campaign).await? else { continue };
        let c = &offered.campaign;
        if c.status == Status::Active
            && offered.stores.contains(&store)
            && c.redemption.until >= now
            && e.redeemed < c.per_customer
        {
            coupons.push(ScannedCoupon { coupon: coupon(c, &e), redeemable_now: c.redemption.contains(now) });
        }
    }
    Ok(HttpResponse::Ok().json(ScanResponse { recommendations, coupons }))
}

/// A customer token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerToken {
    pub customer_token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: String,
}

#[utoipa::path(
    post, path = "/v1/customers/{customer_id}/token", tag = "recommendations", operation_id = "customer_token",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "A token for her app to show a store's screen, valid 15 minutes", body = CustomerToken),
        (status = 400, description = "Not a valid customer id", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not a key that acts for shoppers", body = crate::server::error::ErrorBody),
        (status = 501, description = "No coupon signing keys configured", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// A short-lived token that lets a store's screen read a shopper's list and coupons.
pub async fn token(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Coupons)?;
    customer_id(&path, "customer_id")?;
    let expires = crate::service::now().0 + TOKEN_TTL_S;
    let t = state.coupons()?.config.keys.sign_customer(&path, expires);
    Ok(HttpResponse::Ok().json(CustomerToken {
        customer_token: t,
        expires_at: optimizer::model::Timestamp(expires).to_rfc3339(),
    }))
}
