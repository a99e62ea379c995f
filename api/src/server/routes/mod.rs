//! HTTP handlers, one file per resource.

pub mod admin;
pub mod campaigns;
pub mod coupons;
pub mod health;
pub mod map;
pub mod orders;
pub mod plans;
pub mod recommend;
pub mod simulations;
pub mod stock;
pub mod stores;

use super::error::ApiError;
use super::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::Deserialize;
use std::time::Duration;

/// Reads a JSON request body of at most `limit` bytes within the body timeout, refusing other
/// content types. A declared `Content-Length` over the limit is refused before anything is read.
pub async fn read_json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let headers = req.headers();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(is_json) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let timeout =
        req.app_data::<web::Data<AppState>>().map_or(Duration::from_secs(60), |s| s.limits().body_timeout);
    let read = async {
        // Grows as bytes arrive: a declared length is a claim, not memory to hand out up front.
        let mut body = bytes::BytesMut::with_capacity(declared.map_or(0, |n| (n as usize).min(1 << 20)));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::MalformedJson { message: format!("reading the body: {e}") })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    actix_web::rt::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::RequestTimeout { seconds: timeout.as_secs() })?
}

/// `application/json`, with parameters (`; charset=utf-8`) or without, and nothing else.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Parses a request's query string into `T`, naming an unknown parameter as the field.
pub fn parse_query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        let m = e.to_string();
        let field = m
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
            .unwrap_or("query")
            .to_string();
        ApiError::invalid(field, m)
    })
}

/// Parses JSON, naming the field of the first problem (`[3].sku`, `orders`...).
pub fn parse_json<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    crate::data::order_json::parse_json(bytes).map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_application_json_is_json() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("application/json-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
