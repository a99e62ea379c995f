//! The JSON shape of one order (a line of `orders.jsonl`, the body of a route call), parsed
//! into a validated [`Order`] with errors that name the field.

use chrono::DateTime;
use optimizer::model::{
    CouponChoice, CustomerId, LonLat, Mode, Order, OrderId, OrderLine, StoreId, Timestamp,
};
use serde::{Deserialize, Serialize};

/// Wire form of an order. Coordinates are degrees; `created_at` is RFC 3339.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderJson {
    pub order_id: OrderId,
    pub created_at: String,
    pub customer: LonLatJson,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_store_id: Option<StoreId>,
    pub lines: Vec<OrderLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// Coupons of the customer's wallet to redeem: campaign ids, or `"best"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupons: Option<CouponChoice>,
}

/// Most coupons one order may list.
pub const MAX_COUPONS: usize = 20;

/// Highest unit price accepted, in cents (ten million in money).
pub const MAX_UNIT_PRICE_CENTS: u64 = 1_000_000_000;

/// `{lat, lon}` in degrees, validated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LonLatJson(pub LonLat);

/// A field-level problem in an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    /// JSON path of the offending field (`lines[2].qty`), or `body` when the JSON is malformed.
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// The error is about the body as a whole (malformed JSON), not one field.
    pub fn field_is_body(&self) -> bool {
        self.field == "body"
    }
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| Timestamp(t.timestamp()))
        .map_err(|e| format!("`{s}` is not an RFC 3339 timestamp ({e})"))
}

impl OrderJson {
    /// The wire form of an order, its time at UTC+8 (the canonical form requests are compared in).
    pub fn from_order(o: &Order) -> OrderJson {
        OrderJson::from_order_in(o, &optimizer::model::TimeZone::china())
    }

    /// The wire form of an order, its time in `zone` (a dataset's own).
    pub fn from_order_in(o: &Order, zone: &optimizer::model::TimeZone) -> OrderJson {
        OrderJson {
            order_id: o.id().clone(),
            created_at: zone.rfc3339(o.created_at()),
            customer: LonLatJson(o.customer()),
            mode: o.mode(),
            pickup_store_id: o.pickup_store().cloned(),
            lines: o.lines().to_vec(),
            customer_id: o.customer_id().cloned(),
            coupons: o.coupons().cloned(),
        }
    }

    /// Checks cross-field rules and builds the order.
    pub fn into_order(self) -> Result<Order, FieldError> {
        let created_at = parse_time(&self.created_at)
            .map_err(|message| FieldError { field: "created_at".into(), message })?;
        let field = |field: String, message: String| FieldError { field, message };
        for (i, l) in self.lines.iter().enumerate() {
            if l.unit_price_cents.is_some_and(|p| p > MAX_UNIT_PRICE_CENTS) {
                return Err(field(
                    format!("lines[{i}].unit_price_cents"),
                    format!("must be at most {MAX_UNIT_PRICE_CENTS}"),
                ));
            }
        }
        let coupons = match self.coupons {
            Some(CouponChoice::Listed(ids)) if ids.is_empty() => None,
            other => other,
        };
        if let Some(c) = &coupons {
            if self.customer_id.is_none() {
                return Err(field("customer_id".into(), "is required when the order redeems coupons".into()));
            }
            if let Some(i) = self.lines.iter().position(|l| l.unit_price_cents.is_none()) {
                return Err(field(
                    format!("lines[{i}].unit_price_cents"),
                    "is required when the order redeems coupons (the discount depends on the order's value) \
                     and the dataset's prices.csv does not price this SKU"
                        .into(),
                ));
            }
            if let CouponChoice::Listed(ids) = c {
                if ids.len() > MAX_COUPONS {
                    return Err(field("coupons".into(), format!("lists more than {MAX_COUPONS} coupons")));
                }
                if let Some(i) = (1..ids.len()).find(|&i| ids[..i].contains(&ids[i])) {
                    return Err(field(
                        format!("coupons[{i}]"),
                        format!("campaign {} is listed twice", ids[i]),
                    ));
                }
            }
        }
        Order::new(self.order_id, created_at, self.customer.0, self.mode, self.pickup_store_id, self.lines)
            .map(|o| o.with_customer_id(self.customer_id).with_coupons(coupons))
            .map_err(|e| FieldError { field: e.field(), message: e.to_string() })
    }
}

/// Parses one order from JSON text; an order that redeems coupons takes the unit price of a line
/// that states none from `prices` (the dataset's catalogue).
pub fn parse_order_priced(text: &str, prices: &super::prices::Prices) -> Result<Order, FieldError> {
    let mut wire: OrderJson = parse_json(text.as_bytes())?;
    if wire.coupons.is_some() && !prices.is_empty() {
        for l in &mut wire.lines {
            if l.unit_price_cents.is_none() {
                l.unit_price_cents = prices.get(&l.sku).copied();
            }
        }
    }
    wire.into_order()
}

/// Parses one order from JSON text.
///
/// # Errors
/// A [`FieldError`] naming the JSON path of the first problem.
pub fn parse_order(text: &str) -> Result<Order, FieldError> {
    let wire: OrderJson = parse_json(text.as_bytes())?;
    wire.into_order()
}

/// Parses any JSON value, naming the JSON path of the first problem (`lines[0].qty`; the name of
/// an unknown or missing field; `body` when the text is not JSON at all).
pub fn parse_json<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, FieldError> {
    // Valid input (nearly all of it) takes plain serde_json; only a failure is parsed again
    // with the path tracked, which costs about a third more per document.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p).and_then(|rest| rest.split('`').next()));
        let field = match named {
            _ if inner.is_syntax() || inner.is_eof() => "body".to_string(),
            Some(name) if path == "." => name.to_string(),
            Some(name) if path == name || path.ends_with(&format!(".{name}")) => path,
            Some(name) => format!("{path}.{name}"),
            None if path == "." => "body".to_string(),
            None => path,
        };
        FieldError { field, message }
    })?;
    // Plain serde_json refused it only for what follows the value (`{...} junk`).
    de.end().map_err(|e| FieldError { field: "body".into(), message: e.to_string() })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"order_id":"A1","created_at":"2026-11-11T00:00:05+08:00","customer":{"lat":31.2,"lon":121.4},"mode":"ship","lines":[{"sku":"3","qty":2}]}"#;

    /// Coordinates with more digits than a double holds read to the nearest double, so that an
    /// order written back reads to the same order (found by the order_json fuzz harness).
    #[test]
    fn long_coordinates_round_trip_exactly() {
        let text = OK.replace("121.4", "103.9900719925474099304716");
        let o = parse_order(&text).unwrap();
        let back = parse_order(&serde_json::to_string(&OrderJson::from_order(&o)).unwrap()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn parses_and_round_trips() {
        let o = parse_order(OK).unwrap();
        assert_eq!(o.created_at(), Timestamp(1_794_326_405));
        let back = serde_json::to_string(&OrderJson::from_order(&o)).unwrap();
        assert_eq!(parse_order(&back).unwrap(), o);
    }

    #[test]
    fn text_ids_and_a_customer_are_taken_as_they_are() {
        let text = OK.replace(r#""sku":"3""#, r#""sku":"SKU-8834-RED""#).replace(
            r#""mode":"ship""#,
            r#""mode":"pickup","pickup_store_id":"上海徐汇店","customer_id":"c-0001""#,
        );
        let o = parse_order(&text).unwrap();
        assert_eq!(o.lines()[0].sku.as_str(), "SKU-8834-RED");
        assert_eq!(o.pickup_store().map(|s| s.as_str()), Some("上海徐汇店"));
        assert_eq!(o.customer_id().map(|c| c.as_str()), Some("c-0001"));
        let back = serde_json::to_string(&OrderJson::from_order(&o)).unwrap();
        assert!(back.contains(r#""customer_id":"c-0001""#), "{back}");
        // A numbered SKU sent as a number is its decimal text.
        assert_eq!(
            parse_order(&OK.replace(r#""sku":"3""#, r#""sku":3"#)).unwrap().lines()[0].sku.as_str(),
            "3"
        );
    }

    #[test]
    fn coupons_need_a_customer_and_priced_lines() {
        let priced = OK.replace(r#""qty":2}"#, r#""qty":2,"unit_price_cents":15000}"#);
        let with = |extra: &str| priced.replace(r#""mode""#, &format!(r#"{extra},"mode""#));
        let o = parse_order(&with(r#""customer_id":"c1","coupons":[7,3]"#)).unwrap();
        assert_eq!(o.coupons(), Some(&CouponChoice::Listed(vec![7, 3])));
        assert_eq!(o.value_cents(), Some(30_000));
        let back = serde_json::to_string(&OrderJson::from_order(&o)).unwrap();
        assert_eq!(parse_order(&back).unwrap(), o, "coupons and prices are part of the request");
        let best = parse_order(&with(r#""customer_id":"c1","coupons":"best""#)).unwrap();
        assert!(matches!(best.coupons(), Some(CouponChoice::Best(_))));
        assert_eq!(parse_order(&with(r#""customer_id":"c1","coupons":[]"#)).unwrap().coupons(), None);
        for (text, field) in [
            (with(r#""coupons":"best""#), "customer_id"),
            (with(r#""customer_id":"c1","coupons":[7,7]"#), "coupons[1]"),
            (with(r#""customer_id":"c1","coupons":"all""#), "coupons"),
            (
                OK.replace(r#""mode""#, r#""customer_id":"c1","coupons":[1],"mode""#),
                "lines[0].unit_price_cents",
            ),
            (priced.replace("15000", "1000000001"), "lines[0].unit_price_cents"),
        ] {
            assert_eq!(parse_order(&text).unwrap_err().field, field, "{text}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (OK.replace("\"qty\":2", "\"qty\":0"), "lines[0].qty"),
            (OK.replace("\"lat\":31.2", "\"lat\":91"), "customer"),
            (OK.replace("\"mode\":\"ship\"", "\"mode\":\"fly\""), "mode"),
            (OK.replace("+08:00", "+8"), "created_at"),
            (OK.replace("\"sku\":\"3\"", "\"sku\":-3"), "lines[0].sku"),
            (OK.replace("\"sku\":\"3\"", "\"sku\":\"\""), "lines[0].sku"),
            (OK.replace("\"sku\":\"3\"", &format!("\"sku\":\"{}\"", "x".repeat(65))), "lines[0].sku"),
            (OK.replace("\"mode\"", "\"customer_id\":\"\",\"mode\""), "customer_id"),
            (OK.replace("\"lines\":[{\"sku\":\"3\",\"qty\":2}]", "\"lines\":[]"), "lines"),
            (OK.replace("\"mode\"", "\"colour\":1,\"mode\""), "colour"),
            (OK.replace("\"mode\":\"ship\"", "\"mode\":\"pickup\""), "pickup_store_id"),
            ("{\"order_id\":".to_string(), "body"),
            (format!("{OK} {{}}"), "body"),
        ];
        for (text, field) in cases {
            let e = parse_order(&text).unwrap_err();
            assert!(
                e.field == field || e.field.starts_with(field) || e.message.contains(field),
                "{text} -> {e:?}"
            );
        }
    }
}
