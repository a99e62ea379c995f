//! `/v1/plans`: batch plans for planners, run as background jobs.

use super::orders::parse_listed;
use super::{parse_json, read_json_body};
use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use optimizer::plan::{PlanConfig, PlanError, Solver};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody<'a> {
    #[serde(borrow)]
    orders: Vec<&'a RawValue>,
    #[serde(default)]
    solver: Option<Solver>,
    #[serde(default)]
    config: Option<PlanConfig>,
}

fn config_error(e: PlanError) -> ApiError {
    let field = match &e {
        PlanError::Weight { field, .. } => format!("config.weights.{field}"),
        PlanError::K(_) => "config.k".into(),
        PlanError::Solver { .. } => "config".into(),
    };
    ApiError::invalid(field, e.to_string())
}

#[utoipa::path(
    post, path = "/v1/plans", tag = "plans", operation_id = "create_plan",
    request_body = crate::server::openapi::PlanRequestDoc,
    responses(
        (status = 202, description = "Plan job accepted; poll the Location", body = crate::server::openapi::PlanStatusDoc),
        (status = 400, description = "Malformed JSON, invalid order or config field", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not a planner", body = crate::server::error::ErrorBody),
        (status = 413, description = "Too many orders or too large a body", body = crate::server::error::ErrorBody),
        (status = 422, description = "Unknown SKU or pickup store", body = crate::server::error::ErrorBody),
        (status = 429, description = "Too many plans queued; retry after Retry-After seconds", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Start a batch plan (greedy or LP) for a wave of orders against live stock. Reserves nothing.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Plan)?;
    let body = read_json_body(&req, payload, state.limits().max_plan_body_bytes).await?;
    let parsed: PlanBody<'_> = parse_json(&body)?;
    let max = state.limits().max_plan_orders;
    if parsed.orders.len() > max {
        return Err(ApiError::TooManyItems { field: "orders".into(), got: parsed.orders.len(), max });
    }
    if parsed.orders.is_empty() {
        return Err(ApiError::invalid("orders", "orders must not be empty"));
    }
    let config = state.checkout().core().plan_config(parsed.config);
    config.validate().map_err(config_error)?;
    let mut orders = Vec::with_capacity(parsed.orders.len());
    let mut seen = rustc_hash::FxHashSet::default();
    for (i, raw) in parsed.orders.iter().enumerate() {
        orders.push(parse_listed(&state, raw.get(), i, &mut seen, "plan")?);
    }
    let job = state
        .plans()
        .submit(orders, parsed.solver.unwrap_or(Solver::Lp), config)
        .map_err(|_| ApiError::TooManyRequests { what: "the plan", retry_after_s: 30 })?;
    let location = format!("/v1/plans/{}", job.id);
    Ok(HttpResponse::Accepted().insert_header(("Location", location)).json(job.view()))
}

#[utoipa::path(
    get, path = "/v1/plans/{plan_id}", tag = "plans", operation_id = "get_plan",
    params(("plan_id" = String, Path, description = "The id POST /v1/plans returned")),
    responses(
        (status = 200, description = "Status, progress and, when done, the plan", body = crate::server::openapi::PlanStatusDoc),
        (status = 404, description = "Unknown (or forgotten) plan", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// A plan job's status, progress and result.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    job_status(&req, &path, &state, crate::server::plans::JobKind::Plan)
}

/// The status document of a plan or simulation job, for a planner; 404 naming the id's field
/// when there is no such job of that kind.
pub(super) fn job_status(
    req: &HttpRequest,
    id: &str,
    state: &AppState,
    kind: crate::server::plans::JobKind,
) -> Result<HttpResponse, ApiError> {
    use crate::server::plans::JobKind;
    state.keys().authorize(req, Action::Plan)?;
    let (what, field) = match kind {
        JobKind::Plan => ("plan", "plan_id"),
        JobKind::Simulation => ("simulation", "simulation_id"),
    };
    let job = state.plans().get(id, kind).ok_or(ApiError::NotFound { what, field: Some(field.into()) })?;
    Ok(HttpResponse::Ok().json(job.view()))
}
