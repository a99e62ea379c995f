//! `/v1/campaigns`: coupon campaigns of a brand (marketing) and their store posters.

use super::{parse_json, parse_query, read_json_body};
use crate::coupons::campaign::{
    Budgets, Campaign, CampaignSpec, SpecError, SpecErrorKind, Status, StoreSelection, Window,
};
use crate::coupons::discount::{Discount, Stacking};
use crate::coupons::poster::{self, Poster};
use crate::coupons::token::PosterClaim;
use crate::map::render::Format;
use crate::server::auth::{Action, Caller};
use crate::server::error::ApiError;
use crate::server::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A campaign as answered: everything but the store list, which can hold every store of a brand.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub id: u32,
    pub brand: String,
    pub name: String,
    pub status: Status,
    pub discount: Discount,
    /// The discount in words.
    pub offer: String,
    pub capture: Window,
    pub redemption: Window,
    pub budgets: Budgets,
    pub per_customer: u32,
    pub stacking: Stacking,
    pub posters_per_store: u16,
    /// How the stores were chosen.
    pub selection: StoreSelection,
    /// How many stores take part.
    pub store_count: usize,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    pub created_by: String,
    /// Raised by one with every change.
    pub version: u64,
}

fn view(c: &Campaign) -> CampaignView {
    CampaignView {
        id: c.id,
        brand: c.brand.clone(),
        name: c.name.clone(),
        status: c.status,
        discount: c.discount,
        offer: crate::coupons::describe(&c.discount),
        capture: c.capture,
        redemption: c.redemption,
        budgets: c.budgets,
        per_customer: c.per_customer,
        stacking: c.stacking,
        posters_per_store: c.posters_per_store,
        selection: c.selection.clone(),
        store_count: c.stores.len(),
        created_at: optimizer::model::Timestamp(c.created_at).to_rfc3339(),
        created_by: c.created_by.clone(),
        version: c.version,
    }
}

fn spec_error(e: SpecError) -> ApiError {
    match e.kind {
        SpecErrorKind::Invalid => ApiError::InvalidField { field: e.field, message: e.message },
        SpecErrorKind::Unknown => ApiError::UnknownStore { field: e.field, message: e.message },
        SpecErrorKind::OutOfScope => ApiError::BrandOutOfScope { field: e.field, message: e.message },
    }
}

/// A campaign id from the path; a campaign of a brand the caller may not act for is not found.
/// `Read::Fresh` reads storage (before a change); `Read::Cached` may be a second old (posters of
/// many stores in a row read one large campaign once).
async fn find(state: &AppState, caller: &Caller, raw: &str, read: Read) -> Result<Arc<Campaign>, ApiError> {
    let not_found = || ApiError::NotFound { what: "campaign", field: Some("campaign_id".into()) };
    let id: u32 = raw.parse().map_err(|_| not_found())?;
    let c = match read {
        Read::Fresh => state.checkout().campaign(id).await?.map(Arc::new),
        Read::Cached => state.campaign(id).await?,
    }
    .ok_or_else(not_found)?;
    if !caller.may_act_for(&c.brand) {
        return Err(not_found());
    }
    Ok(c)
}

#[derive(Copy, Clone)]
enum Read {
    Fresh,
    Cached,
}

/// Largest campaign body: a list of every store of a large brand.
const MAX_BODY: usize = 8 << 20;

#[utoipa::path(
    post, path = "/v1/campaigns", tag = "campaigns", operation_id = "create_campaign",
    request_body = CampaignSpec,
    responses(
        (status = 201, description = "Created; the Location names it", body = CampaignView),
        (status = 400, description = "Malformed JSON or an invalid field (named)", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not marketing, or a brand the key may not act for", body = crate::server::error::ErrorBody),
        (status = 413, description = "Body too large", body = crate::server::error::ErrorBody),
        (status = 422, description = "A city or store the network lacks, or no store selected", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Create a coupon campaign for a brand: its stores, discount, windows, budgets and stacking.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Market)?;
    let body = read_json_body(&req, payload, MAX_BODY).await?;
    let spec: CampaignSpec = parse_json(&body)?;
    let now = crate::service::now().0;
    let net = state.network();
    loop {
        let id = rand::random::<u32>() % 1_000_000_000 + 1;
        let c = Campaign::create(spec.clone(), net, &|b| caller.may_act_for(b), id, now, &caller.key_id)
            .map_err(spec_error)?;
        // A random id; another campaign holding it already is a retry with the next.
        if state.checkout().put_campaign(&c, None).await? {
            log::info!("campaign {} created for brand {} by {}", c.id, c.brand, caller.key_id);
            return Ok(HttpResponse::Created()
                .insert_header((actix_web::http::header::LOCATION, format!("/v1/campaigns/{}", c.id)))
                .json(view(&c)));
        }
    }
}

#[utoipa::path(
    get, path = "/v1/campaigns", tag = "campaigns", operation_id = "list_campaigns",
    responses(
        (status = 200, description = "The campaigns of the key's brands, by id", body = [CampaignView]),
        (status = 403, description = "Not marketing", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// The campaigns of the brands the key may act for.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Market)?;
    let all = state.checkout().campaigns().await?;
    let views: Vec<CampaignView> = all.iter().filter(|c| caller.may_act_for(&c.brand)).map(view).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(
    get, path = "/v1/campaigns/{campaign_id}", tag = "campaigns", operation_id = "get_campaign",
    params(("campaign_id" = u32, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 403, description = "Not marketing", body = crate::server::error::ErrorBody),
        (status = 404, description = "No such campaign of the key's brands", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// One campaign.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Market)?;
    let c = find(&state, &caller, &path, Read::Fresh).await?;
    Ok(HttpResponse::Ok().json(view(&c)))
}

/// Moves a campaign to `to` from the version read; a concurrent change is read again.
async fn transition(
    req: HttpRequest,
    raw: &str,
    state: web::Data<AppState>,
    to: Status,
) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Market)?;
    loop {
        let mut c = Arc::unwrap_or_clone(find(&state, &caller, raw, Read::Fresh).await?);
        let read = c.version;
        c.transition(to).map_err(|message| ApiError::InvalidState { message })?;
        if c.version == read || state.checkout().put_campaign(&c, Some(read)).await? {
            state.campaign_changed(c.id);
            if c.version != read {
                log::info!("campaign {} is now {:?} ({})", c.id, c.status, caller.key_id);
            }
            return Ok(HttpResponse::Ok().json(view(&c)));
        }
    }
}

macro_rules! transition_endpoint {
    ($name:ident, $path:literal, $op:literal, $to:expr, $doc:literal) => {
        #[utoipa::path(
            post, path = $path, tag = "campaigns", operation_id = $op,
            params(("campaign_id" = u32, Path, description = "The campaign's id")),
            responses(
                (status = 200, description = "The campaign as it is now", body = CampaignView),
                (status = 403, description = "Not marketing", body = crate::server::error::ErrorBody),
                (status = 404, description = "No such campaign of the key's brands", body = crate::server::error::ErrorBody),
                (status = 409, description = "The campaign has ended", body = crate::server::error::ErrorBody),
            ),
            security(("bearer" = []))
        )]
        #[doc = $doc]
        pub async fn $name(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
            transition(req, &path, state, $to).await
        }
    };
}

transition_endpoint!(
    pause,
    "/v1/campaigns/{campaign_id}/pause",
    "pause_campaign",
    Status::Paused,
    "Pause a campaign: no captures or redemptions until it is resumed."
);
transition_endpoint!(
    resume,
    "/v1/campaigns/{campaign_id}/resume",
    "resume_campaign",
    Status::Active,
    "Resume a paused campaign."
);
transition_endpoint!(
    end,
    "/v1/campaigns/{campaign_id}/end",
    "end_campaign",
    Status::Ended,
    "End a campaign for good."
);

/// Query of a poster.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PosterQuery {
    /// The poster's serial, from 0 to the campaign's `posters_per_store` - 1 (default 0).
    #[param(value_type = Option<u16>, minimum = 0)]
    serial: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/campaigns/{campaign_id}/posters/{poster}", tag = "campaigns", operation_id = "campaign_poster",
    params(
        ("campaign_id" = u32, Path, description = "The campaign's id"),
        ("poster" = String, Path, description = "`<store_id>.svg` or `<store_id>.png`"),
        PosterQuery,
    ),
    responses(
        (status = 200, description = "The store's poster with its QR code; the header `Omniroute-Capture-Url` repeats what the code encodes", content((String = "image/svg+xml"), (String = "image/png"))),
        (status = 400, description = "Not `.svg` or `.png`, or a serial out of range", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not marketing", body = crate::server::error::ErrorBody),
        (status = 404, description = "No such campaign, or the store does not take part", body = crate::server::error::ErrorBody),
        (status = 501, description = "No coupon signing keys configured", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// A store's poster for a campaign: its signed capture URL as a QR code, with the offer in
/// words, as SVG or PNG. The token expires when the capture window closes.
pub async fn poster(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Market)?;
    let (raw_id, file) = path.into_inner();
    let (store, format, mime) = if let Some(s) = file.strip_suffix(".svg") {
        (s, Format::Svg, "image/svg+xml")
    } else if let Some(s) = file.strip_suffix(".png") {
        (s, Format::Png, "image/png")
    } else {
        return Err(ApiError::invalid("poster", "a poster is `<store_id>.svg` or `<store_id>.png`"));
    };
    let q: PosterQuery = parse_query(&req)?;
    let c = find(&state, &caller, &raw_id, Read::Cached).await?;
    let serial: u16 = match q.serial.as_deref() {
        None => 0,
        Some(s) => s.parse().ok().filter(|n| *n < c.posters_per_store).ok_or_else(|| {
            ApiError::invalid(
                "serial",
                format!("must be a whole number from 0 to {}", c.posters_per_store - 1),
            )
        })?,
    };
    let number = c
        .store_number(store)
        .ok_or(ApiError::NotFound { what: "store in this campaign", field: Some("poster".into()) })?;
    let coupons = &state.coupons()?.config;
    let claim =
        PosterClaim { campaign: c.id, store_number: number, serial, expires_at: c.capture.until as u32 };
    let url = format!("{}/C/{}", coupons.public_url, coupons.keys.sign(&claim));
    let offer = crate::coupons::describe(&c.discount);
    let time = |t: i64| optimizer::model::Timestamp(t).to_rfc3339().replacen('T', " ", 1);
    let footer = format!(
        "Store {store} · poster {serial}\nRedeem from {} to {}",
        time(c.redemption.from),
        time(c.redemption.until)
    );
    let body = poster::render(&Poster { title: &c.name, offer: &offer, footer: &footer, url: &url }, format)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type(mime).insert_header(("Omniroute-Capture-Url", url)).body(body))
}

/// Query of a campaign's stats.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// `store` (default) or `city`: what the rows are.
    #[param(value_type = Option<String>, pattern = "^(store|city)$")]
    by: Option<String>,
    /// `json` (default), `csv`, or `geojson` (a layer of points for the maps).
    #[param(value_type = Option<String>, pattern = "^(json|csv|geojson)$")]
    format: Option<String>,
}

/// A campaign's stats (`format=json`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsView {
    campaign_id: u32,
    captured: u64,
    /// Coupons redeemed with orders held or shipped (a cancelled or expired order's coupon went
    /// back).
    redeemed: u64,
    discount_cents: u64,
    /// Redeemed per captured, in percent.
    conversion_pct: f64,
    /// `store` or `city`.
    by: String,
    /// Per store (or city) whose posters coupons were captured from, most redeemed first.
    rows: Vec<StatsRowView>,
}

/// Captures and redemptions credited to one store (or city).
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsRowView {
    /// The store's id, or the city's name.
    key: String,
    city: String,
    lon: f64,
    lat: f64,
    captured: u64,
    redeemed: u64,
    discount_cents: u64,
    conversion_pct: f64,
}

#[utoipa::path(
    get, path = "/v1/campaigns/{campaign_id}/stats", tag = "campaigns", operation_id = "campaign_stats",
    params(("campaign_id" = u32, Path, description = "The campaign's id"), StatsQuery),
    responses(
        (status = 200, description = "Captures, redemptions, discount and conversion, credited to the store (or city) where each coupon was captured", content((StatsView = "application/json"), (String = "text/csv"), (String = "application/geo+json"))),
        (status = 400, description = "An unknown `by` or `format`", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not marketing", body = crate::server::error::ErrorBody),
        (status = 404, description = "No such campaign of the key's brands", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// What a campaign's coupons did: captured, redeemed, discount value and conversion, credited
/// to the store whose poster each coupon was captured from (the O2O link), by store or city;
/// as JSON, CSV, or a GeoJSON layer for the maps.
pub async fn stats(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    use crate::coupons::stats::{self, By};
    let caller = state.keys().authorize(&req, Action::Market)?;
    let q: StatsQuery = parse_query(&req)?;
    let by = match q.by.as_deref() {
        None | Some("store") => By::Store,
        Some("city") => By::City,
        Some(_) => return Err(ApiError::invalid("by", "must be `store` or `city`")),
    };
    let c = find(&state, &caller, &path, Read::Cached).await?;
    let tally = state.checkout().campaign_tally(c.id).await?;
    let s = stats::stats(&c, state.network(), &tally, by);
    match q.format.as_deref() {
        None | Some("json") => Ok(HttpResponse::Ok().json(s)),
        Some("csv") => Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(stats::csv(&s))),
        Some("geojson") => {
            Ok(HttpResponse::Ok().content_type("application/geo+json").body(stats::geojson(&s).to_string()))
        }
        Some(_) => Err(ApiError::invalid("format", "must be `json`, `csv` or `geojson`")),
    }
}
