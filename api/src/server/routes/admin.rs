//! `/v1/admin`: operating the service.

use crate::server::auth::Action;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

#[utoipa::path(
    post, path = "/v1/admin/backup", tag = "admin", operation_id = "backup_state",
    responses(
        (status = 200, description = "A consistent copy of the state was written on the server", body = crate::server::openapi::BackupDoc),
        (status = 401, description = "No or unknown key", body = crate::server::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::server::error::ErrorBody),
        (status = 501, description = "The state is in PostgreSQL: use its own tools", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Write a consistent copy of the durable state while serving (embedded store: a state file under
/// the state directory's `backups/`).
pub async fn backup(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Operate)?;
    let done = state.checkout().backup().await?;
    Ok(HttpResponse::Ok().json(done))
}
