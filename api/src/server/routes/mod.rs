//! HTTP handlers, one file per resource.

pub mod health;
pub mod orders;
pub mod plans;
pub mod stock;
pub mod stores;

use super::error::ApiError;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::Deserialize;

/// Reads a JSON request body of at most `limit` bytes, refusing other content types.
pub async fn read_json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let content_type = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json")) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::MalformedJson { message: format!("reading the body: {e}") })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses JSON, naming the field of the first problem (`[3].sku`, `orders`...).
pub fn parse_json<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    crate::data::order_json::parse_json(bytes).map_err(ApiError::from)
}
