//! `/v1/simulations`: what-if scenarios run as background jobs on a snapshot of the live
//! network and stock (never the live stock), with the results `omniroute simulate` writes.

use super::{parse_json, read_json_body};
use crate::scenario::{Demand, Scenario};
use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::plans::JobKind;
use crate::server::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// Most orders one simulation job may generate.
pub const MAX_SIMULATED_ORDERS: usize = 10_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulationBody {
    scenario: String,
}

#[utoipa::path(
    post, path = "/v1/simulations", tag = "simulations", operation_id = "create_simulation",
    request_body = crate::server::openapi::SimulationRequestDoc,
    responses(
        (status = 202, description = "Simulation job accepted; poll the Location", body = crate::server::openapi::SimulationStatusDoc),
        (status = 400, description = "Malformed JSON, or a scenario the job cannot run (the message names the line and key)", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not a planner", body = crate::server::error::ErrorBody),
        (status = 413, description = "Too many orders to generate or too large a body", body = crate::server::error::ErrorBody),
        (status = 429, description = "Too many jobs queued; retry after Retry-After seconds", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Start a what-if simulation: a scenario (TOML text, without `base`, with generated demand)
/// replayed on a snapshot of the live network and stock. Reserves nothing.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Plan)?;
    let body = read_json_body(&req, payload, state.limits().max_plan_body_bytes).await?;
    let parsed: SimulationBody = parse_json(&body)?;
    let rules = *state.checkout().core().routing();
    let scenario = Scenario::parse(std::path::Path::new("scenario"), parsed.scenario, false, rules)
        .map_err(|e| ApiError::invalid("scenario", e.to_string()))?;
    // Changes name stores, cities and SKUs of the live network: check them now, not in the job.
    scenario
        .resolve(state.checkout().core().engine().network())
        .map_err(|e| ApiError::invalid("scenario", e.to_string()))?;
    let orders = match &scenario.demand {
        Demand::Generate(g) => g.orders,
        Demand::File(_) => unreachable!("a scenario without files generates its demand"),
    };
    if orders > MAX_SIMULATED_ORDERS {
        return Err(ApiError::TooManyItems {
            field: "scenario.demand.generate.orders".into(),
            got: orders,
            max: MAX_SIMULATED_ORDERS,
        });
    }
    if orders == 0 {
        return Err(ApiError::invalid("scenario", "demand.generate.orders must be at least 1"));
    }
    let job = state
        .plans()
        .submit_simulation(scenario, orders)
        .map_err(|_| ApiError::TooManyRequests { what: "the simulation", retry_after_s: 30 })?;
    let location = format!("/v1/simulations/{}", job.id);
    Ok(HttpResponse::Accepted().insert_header(("Location", location)).json(job.view()))
}

#[utoipa::path(
    get, path = "/v1/simulations/{simulation_id}", tag = "simulations", operation_id = "get_simulation",
    params(("simulation_id" = String, Path, description = "The id POST /v1/simulations returned")),
    responses(
        (status = 200, description = "Status, progress and, when done, the results", body = crate::server::openapi::SimulationStatusDoc),
        (status = 404, description = "Unknown (or forgotten) simulation", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// A simulation job's status, progress and results.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::plans::job_status(&req, &path, &state, JobKind::Simulation)
}
