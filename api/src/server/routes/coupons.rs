//! `/v1/coupons/capture` and `/v1/customers/{customer_id}/wallet`: shoppers' captured coupons.

use super::{parse_json, read_json_body};
use crate::coupons::campaign::Status;
use crate::coupons::limit::Limited;
use crate::coupons::wallet::{self, Captured, WalletEntry};
use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

/// What a capture takes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// The token of the poster's QR code (52 base32 characters; 128 when signed with Ed25519).
    #[schema(min_length = 1, max_length = 160)]
    pub token: String,
    /// The shopper's customer id.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub customer_id: String,
}

/// A coupon in a wallet, as answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WalletCoupon {
    pub campaign_id: u32,
    pub campaign: String,
    pub brand: String,
    /// The discount in words.
    pub offer: String,
    pub discount: crate::coupons::discount::Discount,
    pub redemption: crate::coupons::campaign::Window,
    /// The store whose poster it was captured from.
    pub store_id: String,
    pub serial: u16,
    #[schema(value_type = String, format = DateTime)]
    pub captured_at: String,
    /// Redemptions so far, and how many the campaign allows a customer.
    pub redeemed: u32,
    pub per_customer: u32,
    /// Whether the campaign runs (not paused or ended).
    pub active: bool,
}

/// The answer to a capture.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CaptureResponse {
    /// `false` when the customer held this campaign's coupon already (nothing changed).
    pub new: bool,
    pub coupon: WalletCoupon,
}

pub(crate) fn coupon(c: &crate::coupons::campaign::Campaign, e: &WalletEntry) -> WalletCoupon {
    WalletCoupon {
        campaign_id: c.id,
        campaign: c.name.clone(),
        brand: c.brand.clone(),
        offer: crate::coupons::describe(&c.discount),
        discount: c.discount,
        redemption: c.redemption,
        store_id: e.store_id.clone(),
        serial: e.serial,
        captured_at: optimizer::model::Timestamp(e.captured_at).to_rfc3339(),
        redeemed: e.redeemed,
        per_customer: c.per_customer,
        active: c.status == Status::Active,
    }
}

/// A customer id: 1 to 64 bytes of printable ASCII without spaces.
pub(crate) fn customer_id(raw: &str, field: &str) -> Result<(), ApiError> {
    if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            field,
            "a customer id is 1 to 64 printable ASCII characters, no spaces",
        ));
    }
    Ok(())
}

fn seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[utoipa::path(
    post, path = "/v1/coupons/capture", tag = "coupons", operation_id = "capture_coupon",
    request_body = CaptureRequest,
    responses(
        (status = 200, description = "In the customer's wallet (now, or before: `new` says)", body = CaptureResponse),
        (status = 400, description = "Malformed JSON or customer id", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not a checkout key", body = crate::server::error::ErrorBody),
        (status = 422, description = "`invalid_coupon`, whatever the reason (forged, tampered, expired, campaign not running, budget spent)", body = crate::server::error::ErrorBody),
        (status = 429, description = "Too many captures from this customer or address; retry after Retry-After seconds", body = crate::server::error::ErrorBody),
        (status = 501, description = "No coupon signing keys configured", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Capture a poster's coupon into a customer's wallet: idempotent per customer and campaign.
pub async fn capture(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Coupons)?;
    let outcome = captured(&req, payload, &state).await;
    let label = match &outcome {
        Ok(r) if r.new => "new",
        Ok(_) => "already",
        Err(ApiError::InvalidCoupon) => "refused",
        Err(ApiError::RateLimited { .. }) => "rate_limited",
        Err(_) => "error",
    };
    state.metrics().captures.with_label_values(&[label]).inc();
    Ok(HttpResponse::Ok().json(outcome?))
}

async fn captured(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<CaptureResponse, ApiError> {
    let coupons = state.coupons()?;
    let body = read_json_body(req, payload, 4 << 10).await?;
    let r: CaptureRequest = parse_json(&body)?;
    customer_id(&r.customer_id, "customer_id")?;
    // The connection's own address: forwarding headers are the client's to invent, and a script
    // guessing codes would name a new address in each request.
    let address = req.peer_addr().map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
    coupons.limiter.check(&r.customer_id, &address).map_err(|l| match l {
        Limited::Customer { retry_after } => {
            ApiError::RateLimited { what: "captures by this customer", retry_after_s: seconds(retry_after) }
        }
        Limited::Address { retry_after } => {
            ApiError::RateLimited { what: "captures from this address", retry_after_s: seconds(retry_after) }
        }
    })?;
    let now = crate::service::now().0;
    let claim = coupons.config.keys.verify(&r.token, now).map_err(|_| ApiError::InvalidCoupon)?;
    let c = state.campaign(claim.campaign).await?.ok_or(ApiError::InvalidCoupon)?;
    if c.status != Status::Active || !c.capture.contains(now) || claim.serial >= c.posters_per_store {
        return Err(ApiError::InvalidCoupon);
    }
    let entry = wallet::entry(&c, claim.store_number, claim.serial, now).ok_or(ApiError::InvalidCoupon)?;
    let (new, entry) = match state.checkout().capture(&c, &r.customer_id, entry).await? {
        Captured::New(e) => (true, e),
        Captured::Already(e) => (false, e),
        Captured::OverBudget => return Err(ApiError::InvalidCoupon),
    };
    Ok(CaptureResponse { new, coupon: coupon(&c, &entry) })
}

/// A public key devices check Ed25519 poster tokens with.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicKey {
    /// The key id tokens carry.
    pub key_id: u8,
    /// `ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte public key, in lower-case hex.
    pub public_key: String,
}

#[utoipa::path(
    get, path = "/v1/coupons/keys", tag = "coupons", operation_id = "coupon_public_keys",
    responses(
        (status = 200, description = "The public keys of the Ed25519 signing keys (none when posters are signed with HMAC keys only, whose secrets never leave the server)", body = [PublicKey]),
        (status = 501, description = "No coupon signing keys configured", body = crate::server::error::ErrorBody),
    )
)]
/// The public keys a store device checks Ed25519 poster tokens with, offline: no key needed (they
/// are public), so that devices can fetch them before going offline.
pub async fn public_keys(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = state.coupons()?.config.keys.public_keys();
    let out: Vec<PublicKey> = keys
        .iter()
        .map(|(id, k)| PublicKey {
            key_id: *id,
            algorithm: "ed25519",
            public_key: data_encoding::HEXLOWER.encode(k),
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(
    get, path = "/v1/customers/{customer_id}/wallet", tag = "coupons", operation_id = "customer_wallet",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "The customer's coupons, by campaign id", body = [WalletCoupon]),
        (status = 400, description = "Not a valid customer id", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not a checkout key", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// A customer's captured coupons.
pub async fn wallet(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Coupons)?;
    customer_id(&path, "customer_id")?;
    let entries = state.checkout().wallet(&path).await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in &entries {
        if let Some(c) = state.campaign(e.campaign).await? {
            out.push(coupon(&c, e));
        }
    }
    Ok(HttpResponse::Ok().json(out))
}
