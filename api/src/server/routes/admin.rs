//! `/v1/admin`: operating the service.

use crate::server::auth::{Action, ManagedKey, Role};
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

/// How a managed key is shown: everything but its hash; times in RFC 3339 (UTC).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brands: Option<Vec<String>>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Whether the key authenticates now.
    pub active: bool,
}

/// A new key: shown once, in this answer only.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NewKey {
    /// The key to send as `Authorization: Bearer <key>`; stored only as its SHA-256.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |x| x.to_string())
}

fn view(k: &ManagedKey, now: i64) -> KeyView {
    KeyView {
        id: k.id.clone(),
        role: k.role.clone(),
        brands: k.brands.clone(),
        created_at: rfc3339(k.created_at),
        expires_at: k.expires_at.map(rfc3339),
        revoked_at: k.revoked_at.map(rfc3339),
        active: k.active(now),
    }
}

/// Longest lifetime and rotation overlap a key may be given: a year.
const MAX_SECONDS: u64 = 366 * 24 * 3600;

mod schemas {
    //! The rules the handlers enforce, stated in the spec.
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

    pub fn role() -> Schema {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .enum_values(Some(["checkout", "store-system", "planner", "marketing", "admin"]))
                .build(),
        )
    }

    pub fn brands() -> Schema {
        Schema::Array(
            ArrayBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
                .items(utoipa::openapi::RefOr::T(crate::server::openapi::id_text_schema()))
                .min_items(Some(1))
                .max_items(Some(1000))
                .description(Some(
                    "Brand ids; only for store-system and planner keys; absent or null: every brand",
                ))
                .build(),
        )
    }

    fn seconds(min: u64) -> Schema {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
                .minimum(Some(min as f64))
                .maximum(Some(super::MAX_SECONDS as f64))
                .build(),
        )
    }

    pub fn expiry() -> Schema {
        seconds(60)
    }

    pub fn overlap() -> Schema {
        seconds(0)
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `checkout`, `store-system`, `planner` or `admin`.
    #[schema(schema_with = schemas::role)]
    role: String,
    /// The brands a `store-system` or `planner` key may act for (1 to 1,000 brand ids); absent:
    /// every brand.
    #[serde(default)]
    #[schema(schema_with = schemas::brands)]
    brands: Option<Vec<String>>,
    /// Seconds until the key stops working (60 to a year); absent: until revoked.
    #[serde(default)]
    #[schema(schema_with = schemas::expiry)]
    expires_in_s: Option<u64>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the old key keeps working beside the new one (0 to a year; default 3,600).
    #[serde(default)]
    #[schema(schema_with = schemas::overlap)]
    overlap_s: Option<u64>,
}

/// Stores `record` durably, then makes it effective here (other replicas read it within seconds).
async fn save(state: &AppState, record: &ManagedKey) -> Result<(), ApiError> {
    let json = serde_json::to_value(record).map_err(|e| ApiError::Internal(e.to_string()))?;
    state.checkout().save_key(&record.id, &json).await?;
    let mut all = state.keys().managed();
    match all.iter_mut().find(|k| k.id == record.id) {
        Some(k) => *k = record.clone(),
        None => all.push(record.clone()),
    }
    state.keys().set_managed(all);
    Ok(())
}

/// The stored managed keys, read from storage (the authority, whichever replica wrote them).
pub async fn load_keys(state: &AppState) -> Result<Vec<ManagedKey>, ApiError> {
    let records = state.checkout().keys().await?;
    records
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| ApiError::Internal(format!("a stored key: {e}"))))
        .collect()
}

fn seconds(field: &str, v: Option<u64>, min: u64) -> Result<Option<i64>, ApiError> {
    match v {
        Some(s) if s < min || s > MAX_SECONDS => {
            Err(ApiError::invalid(field, format!("{field} must be between {min} and {MAX_SECONDS} seconds")))
        }
        Some(s) => Ok(Some(s as i64)),
        None => Ok(None),
    }
}

#[utoipa::path(
    post, path = "/v1/admin/keys", tag = "admin", operation_id = "create_key",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The new key (shown only here) and its record", body = NewKey),
        (status = 400, description = "Unknown role, brands on a role that cannot be scoped, bad expiry", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Create an API key for a role, optionally scoped to brands and with an expiry. Stored durably
/// as its SHA-256; the key itself is in this answer only.
pub async fn create_key(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Operate)?;
    let body = super::read_json_body(&req, payload, 64 << 10).await?;
    let c: CreateKey = super::parse_json(&body)?;
    let role = Role::parse(&c.role).ok_or_else(|| {
        ApiError::invalid(
            "role",
            format!("unknown role `{}` (checkout, store-system, planner, marketing, admin)", c.role),
        )
    })?;
    if let Some(b) = &c.brands {
        if !matches!(role, Role::StoreSystem | Role::Planner | Role::Marketing) {
            return Err(ApiError::invalid(
                "brands",
                "only store-system, marketing and planner keys can be scoped to brands",
            ));
        }
        if b.is_empty() || b.len() > 1000 {
            return Err(ApiError::invalid("brands", "brands names 1 to 1,000 brand ids"));
        }
        for (i, id) in b.iter().enumerate() {
            optimizer::model::BrandId::parse(id).map_err(|e| ApiError::invalid(format!("brands[{i}]"), e))?;
        }
    }
    let now = crate::service::now().0;
    let expires = seconds("expires_in_s", c.expires_in_s, 60)?.map(|s| now + s);
    let (record, key) = ManagedKey::create(role, c.brands, now, expires);
    save(&state, &record).await?;
    log::info!("created key {} for role {}", record.id, record.role);
    Ok(HttpResponse::Created().json(NewKey { key, view: view(&record, now) }))
}

#[utoipa::path(
    get, path = "/v1/admin/keys", tag = "admin", operation_id = "list_keys",
    responses((status = 200, description = "Every managed key (never the keys themselves)", body = [KeyView])),
    security(("bearer" = []))
)]
/// List the keys managed over the API, revoked and expired ones included.
pub async fn list_keys(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Operate)?;
    let keys = load_keys(&state).await?;
    state.keys().set_managed(keys.clone());
    let now = crate::service::now().0;
    let mut views: Vec<KeyView> = keys.iter().map(|k| view(k, now)).collect();
    views.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(HttpResponse::Ok().json(views))
}

async fn find(state: &AppState, id: &str) -> Result<ManagedKey, ApiError> {
    load_keys(state)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or(ApiError::NotFound { what: "key", field: Some("key_id".into()) })
}

#[utoipa::path(
    post, path = "/v1/admin/keys/{key_id}/revoke", tag = "admin", operation_id = "revoke_key",
    params(("key_id" = String, Path, description = "The id POST /v1/admin/keys returned", max_length = 64)),
    responses(
        (status = 200, description = "The key, revoked (idempotent)", body = KeyView),
        (status = 404, description = "No such key", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Revoke a managed key at once (idempotent): it stops working on every replica within seconds.
pub async fn revoke_key(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Operate)?;
    let mut k = find(&state, &path).await?;
    let now = crate::service::now().0;
    if k.revoked_at.is_none() {
        k.revoked_at = Some(now);
        save(&state, &k).await?;
        log::info!("revoked key {}", k.id);
    }
    Ok(HttpResponse::Ok().json(view(&k, now)))
}

#[utoipa::path(
    post, path = "/v1/admin/keys/{key_id}/rotate", tag = "admin", operation_id = "rotate_key",
    params(("key_id" = String, Path, description = "The id of the key to replace", max_length = 64)),
    request_body = RotateKey,
    responses(
        (status = 201, description = "The new key (same role and brands); the old one works until the overlap ends", body = NewKey),
        (status = 404, description = "No such key", body = crate::server::error::ErrorBody),
        (status = 409, description = "The key is revoked or expired", body = crate::server::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
/// Replace a managed key: a new key with the same role and brands; the old one keeps working for
/// `overlap_s` seconds (default an hour), so that its holders can switch without an outage.
pub async fn rotate_key(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys().authorize(&req, Action::Operate)?;
    let body = super::read_json_body(&req, payload, 64 << 10).await?;
    let r: RotateKey = super::parse_json(&body)?;
    let overlap = seconds("overlap_s", r.overlap_s, 0)?.unwrap_or(3600);
    let mut old = find(&state, &path).await?;
    let now = crate::service::now().0;
    if !old.active(now) {
        return Err(ApiError::InvalidState { message: format!("key {} is revoked or expired", old.id) });
    }
    let role = Role::parse(&old.role)
        .ok_or_else(|| ApiError::Internal(format!("key {}: role {}", old.id, old.role)))?;
    let (new, key) = ManagedKey::create(role, old.brands.clone(), now, old.expires_at);
    save(&state, &new).await?;
    old.expires_at = Some(old.expires_at.map_or(now + overlap, |e| e.min(now + overlap)));
    save(&state, &old).await?;
    log::info!("rotated key {} to {}; the old one works until {}", old.id, new.id, rfc3339(now + overlap));
    Ok(HttpResponse::Created().json(NewKey { key, view: view(&new, now) }))
}
