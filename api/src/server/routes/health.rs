//! Liveness, readiness and metrics.

use crate::server::backend::Backend;
use crate::server::state::AppState;
use actix_web::{web, HttpResponse};

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the network is loaded (it is, once the server listens) and state writes succeed.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let storage = state.backend.kind();
    let body = serde_json::json!({
        "stores": state.engine.network().stores().len(),
        "skus": state.engine.network().catalog().len(),
        "storage": storage,
    });
    let healthy = match &state.backend {
        Backend::Postgres(pg) => pg.ping().await.is_ok(),
        Backend::Embedded(_) => state.backend.healthy(),
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"code": "storage_unavailable", "message": "state writes are failing", "storage": storage}))
    }
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
