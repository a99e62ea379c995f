//! `/v1/stores`: nearby search and store details.

use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::service::now;
use actix_web::{web, HttpRequest, HttpResponse};
use optimizer::model::{LonLat, Sku, StoreId, StoreIdx};
use serde::{Deserialize, Serialize};

/// Query of `/v1/stores/nearby` (all values as text, parsed with field-named errors).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NearbyQuery {
    /// Latitude, degrees.
    #[param(value_type = f64, minimum = -90.0, maximum = 90.0, required = true)]
    lat: Option<String>,
    /// Longitude, degrees.
    #[param(value_type = f64, minimum = -180.0, maximum = 180.0, required = true)]
    lon: Option<String>,
    /// How many stores, 1 to 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    k: Option<String>,
    /// Only stores with this SKU available (a SKU the catalogue lacks is `unknown_sku`).
    #[param(schema_with = crate::server::openapi::id_text_schema)]
    sku: Option<String>,
}

/// A store near a point.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NearbyStore {
    #[schema(value_type = String)]
    store_id: StoreId,
    lon: f64,
    lat: f64,
    distance_m: f64,
    pickup: bool,
    ship: bool,
    /// Units of the requested SKU available (present when `sku` was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    available: Option<u32>,
}

fn number<T: std::str::FromStr>(field: &str, raw: Option<&String>) -> Result<Option<T>, ApiError> {
    raw.map(|r| r.parse::<T>().map_err(|_| ApiError::invalid(field, format!("`{r}` is not a valid number"))))
        .transpose()
}

#[utoipa::path(
    get, path = "/v1/stores/nearby", tag = "stores", operation_id = "nearby_stores", params(NearbyQuery),
    responses(
        (status = 200, description = "Nearest stores first", body = [NearbyStore]),
        (status = 400, description = "Invalid or missing lat/lon/k", body = crate::server::error::ErrorBody),
        (status = 422, description = "Unknown SKU", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// The k stores nearest to a point, optionally only those with a SKU available.
pub async fn nearby(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Read)?;
    let q: NearbyQuery = super::parse_query(&req)?;
    let lat: f64 =
        number("lat", q.lat.as_ref())?.ok_or_else(|| ApiError::invalid("lat", "lat is required"))?;
    let lon: f64 =
        number("lon", q.lon.as_ref())?.ok_or_else(|| ApiError::invalid("lon", "lon is required"))?;
    let at = LonLat::new(lon, lat).map_err(|e| {
        let field = if matches!(e, optimizer::model::GeoError::Lat(_)) { "lat" } else { "lon" };
        ApiError::invalid(field, e)
    })?;
    // A whole number in any form (`5`, `5.0`), as JSON Schema counts integers.
    let k: f64 = number("k", q.k.as_ref())?.unwrap_or(10.0);
    if k.fract() != 0.0 || !(1.0..=100.0).contains(&k) {
        return Err(ApiError::invalid("k", "k must be a whole number between 1 and 100"));
    }
    let k = k as usize;
    let net = state.network();
    let sku = match q.sku.as_deref() {
        Some(raw) => {
            let s = Sku::parse(raw).map_err(|e| ApiError::invalid("sku", e))?;
            Some(net.catalog().get(&s).ok_or_else(|| ApiError::UnknownSku {
                field: "sku".into(),
                message: format!("sku {s} is not in the catalogue"),
            })?)
        }
        None => None,
    };
    // A key scoped to brands sees their stores only: the k nearest of those.
    let engine = state.checkout().core().engine();
    let mut want = k;
    let found = loop {
        let found = engine.nearby(at, want, sku);
        let exhausted = found.len() < want || want >= net.stores().len();
        let mine: Vec<_> =
            found.into_iter().filter(|n| caller.may_act_for(net.store(n.store).brand.as_str())).collect();
        if mine.len() >= k || exhausted {
            break mine;
        }
        want = want.saturating_mul(8).min(net.stores().len());
    };
    let out: Vec<NearbyStore> = found
        .into_iter()
        .take(k)
        .map(|n| {
            let store = net.store(n.store);
            NearbyStore {
                store_id: store.id.clone(),
                lon: store.location.lon(),
                lat: store.location.lat(),
                distance_m: n.distance_m,
                pickup: n.pickup,
                ship: n.ship,
                available: n.available,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// One store.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreView {
    #[schema(value_type = String)]
    store_id: StoreId,
    #[schema(value_type = String)]
    brand: optimizer::model::BrandId,
    city: String,
    lon: f64,
    lat: f64,
    pickup: bool,
    ship: bool,
    capacity_per_day: u32,
    /// Orders counted against today's capacity (local day, UTC+8).
    orders_today: u32,
    /// Local opening hours `HH:MM`, absent when open around the clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    opens: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closes: Option<String>,
    /// SKUs with a stock row in this store.
    skus_stocked: usize,
}

pub fn parse_store(state: &AppState, raw: &str) -> Result<(StoreId, StoreIdx), ApiError> {
    let id = StoreId::parse(raw).map_err(|e| ApiError::invalid("store_id", e))?;
    let idx = state
        .network()
        .store_idx(&id)
        .ok_or(ApiError::NotFound { what: "store", field: Some("store_id".into()) })?;
    Ok((id, idx))
}

#[utoipa::path(
    get, path = "/v1/stores/{store_id}", tag = "stores", operation_id = "get_store",
    params(("store_id" = String, Path, description = "The store id, percent-encoded", min_length = 1, max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses(
        (status = 200, description = "The store", body = StoreView),
        (status = 404, description = "Unknown store", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// One store's details and today's order count.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.keys().authorize(&req, Action::Read)?;
    let (_, idx) = parse_store(&state, &path)?;
    caller.check_store(state.network().store(idx), "store_id")?;
    let net = state.network();
    let ledger = state.checkout().core().engine().ledger();
    let s = net.store(idx);
    let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let always = s.hours.opens_min == s.hours.closes_min;
    Ok(HttpResponse::Ok().json(StoreView {
        store_id: s.id.clone(),
        brand: s.brand.clone(),
        city: net.cities()[usize::from(s.city.0)].name.clone(),
        lon: s.location.lon(),
        lat: s.location.lat(),
        pickup: s.capabilities.pickup,
        ship: s.capabilities.ship,
        capacity_per_day: s.capacity_per_day,
        orders_today: state.checkout().orders_on_day(idx, now()).await?,
        opens: (!always).then(|| hhmm(s.hours.opens_min)),
        closes: (!always).then(|| hhmm(s.hours.closes_min)),
        skus_stocked: ledger.skus_of(idx).len(),
    }))
}
