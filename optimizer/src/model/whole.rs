//! Whole numbers from JSON as JSON Schema counts them: `7`, `7.0` and `7e0` are the same integer.
//! serde reads `7.0` as a float and refuses it for an integer field; these helpers take any
//! whole number in range (`#[serde(deserialize_with = "whole::i64")]`).

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct Whole;

impl Visitor<'_> for Whole {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // Every whole f64 in (-2^63, 2^63) converts exactly.
        if v.fract() == 0.0 && v.abs() < 9.223_372_036_854_775e18 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not a whole number in range")))
        }
    }
}

/// A whole number as `i64`.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Whole)
}

/// An optional whole number as `i64`.
pub fn option_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Maybe;
    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
            i64(d).map(Some)
        }
    }
    d.deserialize_option(Maybe)
}

/// A non-negative whole number as `usize`.
pub fn usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = i64(d)?;
    ::core::primitive::usize::try_from(v).map_err(|_| de::Error::custom(format!("{v} is negative")))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(deserialize_with = "super::i64")]
        a: i64,
        #[serde(default, deserialize_with = "super::option_i64")]
        b: Option<i64>,
        #[serde(default, deserialize_with = "super::usize")]
        c: usize,
    }

    #[test]
    fn whole_numbers_in_any_json_form_and_nothing_else() {
        let t: T = serde_json::from_str(r#"{"a": -7.0, "b": 3e2, "c": 16.0}"#).unwrap();
        assert_eq!(t, T { a: -7, b: Some(300), c: 16 });
        let t: T = serde_json::from_str(r#"{"a": 5, "b": null}"#).unwrap();
        assert_eq!(t, T { a: 5, b: None, c: 0 });
        for bad in [
            r#"{"a": 1.5}"#,
            r#"{"a": 1e300}"#,
            r#"{"a": "1"}"#,
            r#"{"a": 1, "c": -1}"#,
            r#"{"a": 18446744073709551615}"#,
        ] {
            assert!(serde_json::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
