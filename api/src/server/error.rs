//! The one error shape of the HTTP API, `{code, message, field}`, and the one table that maps each
//! error to its HTTP status and stable snake_case code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Every way a request can fail. Variants are grouped by who is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    // The caller sent something wrong (4xx).
    #[error("{message}")]
    MalformedJson { message: String },
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("{message}")]
    UnknownSku { field: String, message: String },
    #[error("{message}")]
    UnknownStore { field: String, message: String },
    #[error("{message}")]
    OutOfArea { field: String, message: String },
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{field} has {got} entries, more than the maximum of {max}")]
    TooManyItems { field: String, got: usize, max: usize },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("a bearer token is required (Authorization: Bearer <key>)")]
    Unauthorized,
    #[error("the {role} role may not {action}")]
    Forbidden { role: &'static str, action: &'static str },
    #[error("{message}")]
    BrandOutOfScope { field: String, message: String },
    #[error("{what} not found")]
    NotFound { what: &'static str, field: Option<String> },
    #[error("order {order_id} was already routed with a different body")]
    IdempotencyMismatch { order_id: String },
    #[error("{message}")]
    InvalidState { message: String },
    #[error("order {order_id} has nothing reserved (it was served by a DC or not at all)")]
    NoReservation { order_id: String },
    #[error("{message}")]
    NegativeOnHand { field: String, message: String },
    /// A broker message applied before (the broker consumer acknowledges it; never over HTTP).
    #[error("message {message_id} was applied before")]
    DuplicateMessage { message_id: String },
    #[error("this resource answers {allow} only")]
    MethodNotAllowed { allow: String },
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout { seconds: u64 },
    #[error("{what} queue is full; retry after {retry_after_s} s")]
    TooManyRequests { what: &'static str, retry_after_s: u64 },
    #[error("too many {what}; retry after {retry_after_s} s")]
    RateLimited { what: &'static str, retry_after_s: u64 },
    /// Every refused coupon capture, whatever the reason: the answer must not help guess codes.
    #[error("the coupon code is not valid")]
    InvalidCoupon,
    /// A customer token that is forged, altered or expired.
    #[error(
        "the customer token is not valid (forged, altered or expired): ask the shopper's app for a new one"
    )]
    InvalidCustomerToken,
    // The service cannot do it (5xx).
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("state storage is unavailable: {0}")]
    StorageUnavailable(String),
    #[error("order {order_id}: every store chosen for it was taken by other replicas meanwhile; nothing is reserved, retry")]
    Contention { order_id: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code (see the table in `ApiError::status_and_code`).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The offending input field as a JSON path (`lines[0].qty`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// The table: HTTP status and stable code of each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ApiError::*;
        match self {
            MalformedJson { .. } => (StatusCode::BAD_REQUEST, "malformed_json"),
            InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            UnknownSku { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_sku"),
            UnknownStore { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_store"),
            OutOfArea { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "out_of_area"),
            PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            TooManyItems { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_items"),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            BrandOutOfScope { .. } => (StatusCode::FORBIDDEN, "brand_out_of_scope"),
            NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            IdempotencyMismatch { .. } => (StatusCode::CONFLICT, "idempotency_mismatch"),
            InvalidState { .. } => (StatusCode::CONFLICT, "invalid_state"),
            NoReservation { .. } => (StatusCode::CONFLICT, "no_reservation"),
            NegativeOnHand { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "negative_on_hand"),
            DuplicateMessage { .. } => (StatusCode::CONFLICT, "duplicate_message"),
            MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            RequestTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            InvalidCoupon => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_coupon"),
            InvalidCustomerToken => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_customer_token"),
            Unsupported(_) => (StatusCode::NOT_IMPLEMENTED, "unsupported"),
            StorageUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Contention { .. } => (StatusCode::SERVICE_UNAVAILABLE, "stock_contention"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<String> {
        use ApiError::*;
        match self {
            MalformedJson { .. } => Some("body".into()),
            InvalidField { field, .. }
            | UnknownSku { field, .. }
            | UnknownStore { field, .. }
            | OutOfArea { field, .. }
            | TooManyItems { field, .. }
            | BrandOutOfScope { field, .. }
            | NegativeOnHand { field, .. } => Some(field.clone()),
            NotFound { field, .. } => field.clone(),
            InvalidCustomerToken => Some("customer_token".into()),
            _ => None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.status_and_code().1, message: self.to_string(), field: self.field() }
    }

    /// The same error about an item of a list: its field path gets `prefix` (`orders[3]`).
    pub fn within(mut self, prefix: &str) -> ApiError {
        use ApiError::*;
        if let InvalidField { field, .. }
        | UnknownSku { field, .. }
        | UnknownStore { field, .. }
        | OutOfArea { field, .. }
        | TooManyItems { field, .. }
        | NegativeOnHand { field, .. } = &mut self
        {
            *field = format!("{prefix}.{field}");
        }
        self
    }

    /// A field-level input error.
    pub fn invalid(field: impl Into<String>, message: impl ToString) -> ApiError {
        ApiError::InvalidField { field: field.into(), message: message.to_string() }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(
            self,
            ApiError::Internal(_) | ApiError::StorageUnavailable(_) | ApiError::Contention { .. }
        ) {
            if let Some(more) = SERVER_ERROR_LOG.admit(log_clock_s()) {
                match more {
                    0 => log::error!("{self}"),
                    n => {
                        log::error!("{self} (and {n} more server errors in the previous seconds, not logged)")
                    }
                }
            }
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::MethodNotAllowed { allow } => {
                res.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
            }
            ApiError::TooManyRequests { retry_after_s, .. } | ApiError::RateLimited { retry_after_s, .. } => {
                res.insert_header((actix_web::http::header::RETRY_AFTER, retry_after_s.to_string()));
            }
            _ => {}
        }
        res.json(self.body())
    }
}

/// At most one line a second: an outage of the database fails every request, and one line a
/// second with a count says so without flooding the log (every error is counted in the metrics).
#[derive(Default)]
struct LogLimiter {
    /// The second of the last line written, plus one (0: none yet).
    last: AtomicU64,
    /// Errors not written since that line.
    held_back: AtomicU64,
}

impl LogLimiter {
    /// Whether to write a line at second `now`; if so, how many were held back before it.
    fn admit(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if last != now + 1
            && self.last.compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

static SERVER_ERROR_LOG: LogLimiter = LogLimiter { last: AtomicU64::new(0), held_back: AtomicU64::new(0) };

/// Seconds since the first error was logged (a monotonic clock).
fn log_clock_s() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// The stable code of an error response raised outside the handlers (by actix itself), by its
/// status; the same codes the table above gives.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "malformed_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "too_many_requests",
        431 => "headers_too_large",
        503 => "storage_unavailable",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

impl From<crate::data::order_json::FieldError> for ApiError {
    fn from(e: crate::data::order_json::FieldError) -> Self {
        if e.field_is_body() {
            ApiError::MalformedJson { message: e.message }
        } else {
            ApiError::InvalidField { field: e.field, message: e.message }
        }
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError as S;
        let message = e.to_string();
        match e {
            S::IdempotencyMismatch { order_id } => {
                ApiError::IdempotencyMismatch { order_id: order_id.to_string() }
            }
            S::UnknownOrder(_) => ApiError::NotFound { what: "order", field: Some("order_id".into()) },
            S::NoReservation { order_id } => ApiError::NoReservation { order_id: order_id.to_string() },
            S::InvalidState { .. } => ApiError::InvalidState { message },
            S::NegativeOnHand { row, .. } => {
                ApiError::NegativeOnHand { field: format!("[{row}].delta"), message }
            }
            S::OnHandTooLarge { row } => ApiError::InvalidField { field: format!("[{row}].delta"), message },
            S::Contention { order_id } => ApiError::Contention { order_id: order_id.to_string() },
            S::Storage(e) => ApiError::StorageUnavailable(e.0),
            S::Unsupported(m) => ApiError::Unsupported(m),
            S::DuplicateMessage(message_id) => ApiError::DuplicateMessage { message_id },
            S::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<optimizer::model::OrderMismatch> for ApiError {
    fn from(e: optimizer::model::OrderMismatch) -> Self {
        use optimizer::model::OrderMismatch as M;
        let (field, message) = (e.field(), e.to_string());
        match e {
            M::CatalogFull { .. } => ApiError::UnknownSku { field, message },
            M::UnknownPickupStore(_) => ApiError::UnknownStore { field, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_logged_once_a_second_with_a_count_of_the_rest() {
        let l = LogLimiter::default();
        assert_eq!(l.admit(0), Some(0));
        assert_eq!(l.admit(0), None);
        assert_eq!(l.admit(0), None);
        assert_eq!(l.admit(1), Some(2));
        assert_eq!(l.admit(1), None);
        assert_eq!(l.admit(5), Some(1));
        assert_eq!(l.admit(6), Some(0));
    }

    #[test]
    fn codes_are_unique_snake_case_and_statuses_are_errors() {
        let all = [
            ApiError::MalformedJson { message: String::new() },
            ApiError::invalid("f", "m"),
            ApiError::UnknownSku { field: "f".into(), message: String::new() },
            ApiError::UnknownStore { field: "f".into(), message: String::new() },
            ApiError::OutOfArea { field: "f".into(), message: String::new() },
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::TooManyItems { field: "f".into(), got: 2, max: 1 },
            ApiError::UnsupportedMediaType,
            ApiError::Unauthorized,
            ApiError::Forbidden { role: "planner", action: "x" },
            ApiError::BrandOutOfScope { field: "f".into(), message: String::new() },
            ApiError::NotFound { what: "order", field: None },
            ApiError::IdempotencyMismatch { order_id: "o".into() },
            ApiError::InvalidState { message: String::new() },
            ApiError::NoReservation { order_id: "o".into() },
            ApiError::NegativeOnHand { field: "f".into(), message: String::new() },
            ApiError::DuplicateMessage { message_id: "m".into() },
            ApiError::MethodNotAllowed { allow: "GET".into() },
            ApiError::RequestTimeout { seconds: 1 },
            ApiError::TooManyRequests { what: "plan", retry_after_s: 1 },
            ApiError::RateLimited { what: "captures", retry_after_s: 1 },
            ApiError::InvalidCoupon,
            ApiError::InvalidCustomerToken,
            ApiError::StorageUnavailable(String::new()),
            ApiError::Contention { order_id: "o".into() },
            ApiError::Unsupported("x"),
            ApiError::Internal(String::new()),
        ];
        let mut codes: Vec<&str> = all.iter().map(|e| e.status_and_code().1).collect();
        assert!(all.iter().all(|e| e.status_code().is_client_error() || e.status_code().is_server_error()));
        assert!(codes.iter().all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')));
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
