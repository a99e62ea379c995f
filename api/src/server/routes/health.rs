//! Liveness, readiness and metrics.

use crate::server::state::AppState;
use actix_web::{web, HttpResponse};

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the network is loaded (it is, once the server listens) and state writes succeed.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let storage = state.checkout().storage();
    match state.checkout().ready().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({
            "stores": state.network().stores().len(),
            "skus": state.network().catalog().len(),
            "skus_learned": state.network().catalog().learned_len(),
            "storage": storage,
        })),
        Err(e) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "code": "storage_unavailable", "message": e.to_string(), "storage": storage,
        })),
    }
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics().render())
}
