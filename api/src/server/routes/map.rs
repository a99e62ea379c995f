//! `GET /map`: the HTML map of the live state (planner role), and `GET /v1/map/data`, its data.
//!
//! Browsers cannot attach a bearer token to a page they navigate to, so both also take the key as
//! the password of HTTP Basic authentication (any user name): `GET /map` without a key answers
//! 401 with a Basic challenge, the browser asks for the key once and sends it with the page's
//! data request too.

use crate::map::{html, source, MapData};
use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

/// Side of the unfilled-demand grid cells of the live map, kilometres (the live map has none;
/// the page's format has the field).
const GRID_KM: f64 = 25.0;

/// `None` when the caller is a planner, else the response to send.
fn refused(req: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    match state.keys().authorize(req, Action::Plan) {
        Ok(_) => None,
        Err(e @ ApiError::Unauthorized) => {
            let mut r = e.error_response();
            r.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static(
                    "Basic realm=\"omniroute\", charset=\"UTF-8\"",
                ),
            );
            Some(r)
        }
        Err(e) => Some(e.error_response()),
    }
}

/// The page; its data comes from `/v1/map/data`.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(r) = refused(&req, &state) {
        return r;
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html::live_page("omniroute: live stores", "/v1/map/data"))
}

#[utoipa::path(
    get, path = "/v1/map/data", tag = "maps", operation_id = "get_map_data",
    responses(
        (status = 200, description = "The live map's data: `stores` (ids, coordinates and cities as base64 typed arrays), `dcs`, `cities`, the land outline, and one view `live` with each store's orders today, capacity and stock-outs (base64 typed arrays, aligned with `stores`)", body = Object),
    ),
    security(("bearer" = []))
)]
/// The live state as the page's data: every store with the orders it took today, its capacity
/// and its SKUs with nothing available; the DCs.
pub async fn data(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(r) = refused(&req, &state) {
        return r;
    }
    let s = state.clone();
    let built = web::block(move || {
        let engine = s.checkout().core().engine();
        let mut map = MapData::new("omniroute: live stores", engine.network(), GRID_KM);
        let view = source::live_view(&map, engine, crate::service::now());
        map.views.push(view);
        serde_json::to_vec(&html::data_json(&map))
    })
    .await;
    match built {
        Ok(Ok(body)) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("Cache-Control", "no-store"))
            .body(body),
        _ => ApiError::Internal("could not build the map".into()).error_response(),
    }
}
