//! Identifiers and quantities. Each is a newtype so that a store id can never be passed where a
//! SKU is expected; the ones that come from untrusted input have a `parse` constructor.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest id a request may give as a JSON number (2^53 - 1, the largest integer every JSON
/// parser reads exactly); larger ones are sent as strings.
pub const MAX_WHOLE_NUMBER_ID: u64 = (1 << 53) - 1;

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// Text chosen by the retailer: 1 to 64 bytes of UTF-8 without control characters,
        /// compared exactly (`0001` and `1` are different ids). Cloning is cheap (shared,
        /// immutable text); the engine itself works with dense indexes and meets these only at
        /// its edges.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// What the id names, for error messages.
            pub const WHAT: &'static str = $what;

            /// Parses an id, refusing empty, over-long and control-charactered text.
            pub fn parse(s: &str) -> Result<$name, IdError> {
                check_text_id($what, s)?;
                Ok($name(s.into()))
            }

            /// The id of a numbered thing: the decimal text of `n` (what the generator writes).
            pub fn numbered(n: u32) -> $name {
                $name(n.to_string().into())
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        /// From a JSON string, or (for clients of numbered ids) a whole number, taken as its
        /// decimal text.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} as a string", $what)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        $name::parse(s).map_err(E::custom)
                    }
                    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<$name, E> {
                        if n > MAX_WHOLE_NUMBER_ID {
                            return Err(E::custom(format!(
                                "a {} given as a number must be at most 2^53 - 1; send larger ones as strings",
                                $what
                            )));
                        }
                        $name::parse(&n.to_string()).map_err(E::custom)
                    }
                    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<$name, E> {
                        match u64::try_from(n) {
                            Ok(n) => self.visit_u64(n),
                            Err(_) => Err(E::custom(format!("{} must be a string, not {n}", $what))),
                        }
                    }
                    // JSON does not tell 7 from 7.0: a whole number is one whatever its form.
                    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<$name, E> {
                        if n.fract() == 0.0 && (0.0..=MAX_WHOLE_NUMBER_ID as f64).contains(&n) {
                            self.visit_u64(n as u64)
                        } else {
                            Err(E::custom(format!("{} must be a string or a whole number, not {n}", $what)))
                        }
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

/// Longest accepted text id, in bytes.
pub const MAX_ID_LEN: usize = 64;

fn check_text_id(what: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { what, max: MAX_ID_LEN });
    }
    if s.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter { what });
    }
    Ok(())
}

text_id!(
    /// A store, as `stores.csv` names it (`store_id`).
    StoreId,
    "store_id"
);
text_id!(
    /// A stock-keeping unit (product variant), as `stock.csv` and orders name it.
    Sku,
    "sku"
);
text_id!(
    /// A regional distribution centre, as `dcs.csv` names it.
    DcId,
    "dc_id"
);
text_id!(
    /// A brand (chain) that operates stores.
    BrandId,
    "brand"
);
text_id!(
    /// A shopper, as the marketplace names her (orders, coupons, purchase histories).
    CustomerId,
    "customer_id"
);

/// Index of a city in [`crate::model::Network::cities`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CityId(pub u16);

/// Seconds since the Unix epoch (UTC). Serialises as an RFC 3339 string in UTC+8
/// (`2026-11-11T00:15:00+08:00`), the canonical form; [`crate::model::TimeZone::rfc3339`] writes
/// it in a dataset's own zone.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 25];
        match self.rfc3339_into(Self::CHINA_OFFSET_S as i32, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&self.to_rfc3339()),
        }
    }
}

impl Timestamp {
    /// China Standard Time offset (no daylight saving): the canonical form's offset.
    pub const CHINA_OFFSET_S: i64 = 8 * 3600;

    /// RFC 3339 text in UTC+8 (the canonical form).
    ///
    /// # Examples
    /// ```
    /// use optimizer::model::Timestamp;
    /// assert_eq!(Timestamp(1_794_326_400).to_rfc3339(), "2026-11-11T00:00:00+08:00");
    /// assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T08:00:00+08:00");
    /// ```
    pub fn to_rfc3339(self) -> String {
        self.rfc3339_at(Self::CHINA_OFFSET_S as i32)
    }

    /// RFC 3339 text at a UTC offset of `offset_s` seconds (whole minutes).
    pub fn rfc3339_at(self, offset_s: i32) -> String {
        let mut buf = [0u8; 25];
        if let Some(text) = self.rfc3339_into(offset_s, &mut buf) {
            return text.to_owned();
        }
        let (year, month, day) = Self::civil(self.local_day_at(offset_s));
        let sod = self.local_second_at(offset_s);
        let (sign, off) = if offset_s < 0 { ('-', -offset_s) } else { ('+', offset_s) };
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60,
            off / 3600,
            off / 60 % 60
        )
    }

    /// [`Timestamp::rfc3339_at`] into `buf` without allocating or going through `fmt`, for years
    /// 0 to 9999 (every time an order can carry); `None` outside them.
    pub fn rfc3339_into(self, offset_s: i32, buf: &mut [u8; 25]) -> Option<&str> {
        let (year, month, day) = Self::civil(self.local_day_at(offset_s));
        if !(0..=9999).contains(&year) {
            return None;
        }
        let sod = i64::from(self.local_second_at(offset_s));
        *buf = *b"0000-00-00T00:00:00+00:00";
        let mut put = |at: usize, value: i64, width: usize| {
            let mut v = value;
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        let off = i64::from(offset_s.unsigned_abs());
        put(0, year, 4);
        put(5, month, 2);
        put(8, day, 2);
        put(11, sod / 3600, 2);
        put(14, sod / 60 % 60, 2);
        put(17, sod % 60, 2);
        put(20, off / 3600, 2);
        put(23, off / 60 % 60, 2);
        if offset_s < 0 {
            buf[19] = b'-';
        }
        Some(std::str::from_utf8(buf).expect("ASCII"))
    }

    /// Calendar day number since 1970-01-01 at a UTC offset of `offset_s` seconds.
    pub fn local_day_at(self, offset_s: i32) -> i64 {
        (self.0 + i64::from(offset_s)).div_euclid(86_400)
    }

    /// Seconds since local midnight at a UTC offset of `offset_s` seconds, in `0..86_400`.
    pub fn local_second_at(self, offset_s: i32) -> u32 {
        (self.0 + i64::from(offset_s)).rem_euclid(86_400) as u32
    }

    /// The civil date (year, month 1-12, day 1-31) of a day number (Howard Hinnant's algorithm).
    fn civil(day: i64) -> (i64, i64, i64) {
        let z = day + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    /// This timestamp moved by `secs` seconds.
    pub fn plus(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs))
    }
}

/// Why an id or a [`Qty`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} must not contain control characters")]
    ControlCharacter { what: &'static str },
    #[error("order_id must not be empty")]
    EmptyOrderId,
    #[error("order_id is longer than {max} bytes")]
    OrderIdTooLong { max: usize },
    #[error("order_id may contain only ASCII letters, digits and - _ . : /")]
    OrderIdCharacters,
    #[error("qty must be at least 1")]
    QtyZero,
    #[error("qty {got} exceeds the maximum of {max} units per line")]
    QtyTooLarge { got: u64, max: u32 },
}

/// A client-chosen order identifier: 1 to 64 bytes of `[A-Za-z0-9-_.:/]`. Cloning is cheap
/// (shared, immutable text).
///
/// # Examples
/// ```
/// use optimizer::model::OrderId;
/// assert!(OrderId::parse("SD-2026-000001").is_ok());
/// assert!(OrderId::parse("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(std::sync::Arc<str>);

impl Serialize for OrderId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl OrderId {
    /// Longest accepted identifier, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Parses an identifier, refusing empty, over-long or oddly-charactered ones.
    pub fn parse(s: &str) -> Result<OrderId, IdError> {
        if s.is_empty() {
            return Err(IdError::EmptyOrderId);
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::OrderIdTooLong { max: Self::MAX_LEN });
        }
        let ok =
            s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
        if !ok {
            return Err(IdError::OrderIdCharacters);
        }
        Ok(OrderId(s.into()))
    }

    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Which of `shards` tables (hashbrown tables hashing the id with [`OrderId::fx_hash`], one
    /// per shard) holds this id.
    ///
    /// Takes bits 32 and up of the id's `FxHash`, which the shard's own table does not look at:
    /// hashbrown picks a bucket from the low bits and a tag from the top seven. Sharding on the
    /// low bits (`hash % shards`) would give every id of a shard the same low bits, so a table
    /// of that shard would start its probes at only one bucket in `shards`: long probe runs,
    /// each a cache miss.
    pub fn shard(&self, shards: usize) -> usize {
        ((self.fx_hash() >> 32) as usize) % shards.max(1)
    }

    /// The id's `FxHash`, as an `FxHashMap` keyed by order id computes it.
    pub fn fx_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        self.hash(&mut h);
        h.finish()
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OrderId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number of units on an order line: `1..=Qty::MAX`.
///
/// # Examples
/// ```
/// use optimizer::model::Qty;
/// assert_eq!(Qty::parse(3).unwrap().get(), 3);
/// assert!(Qty::parse(0).is_err());
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Qty(u32);

impl Qty {
    /// The largest quantity one order line may ask for.
    pub const MAX: u32 = 10_000;

    /// Parses a quantity from any integer width (so that `-1` or `2^40` are refused, not wrapped).
    pub fn parse(v: i64) -> Result<Qty, IdError> {
        if v <= 0 {
            return Err(IdError::QtyZero);
        }
        if v > i64::from(Self::MAX) {
            return Err(IdError::QtyTooLarge { got: v as u64, max: Self::MAX });
        }
        Ok(Qty(v as u32))
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Qty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = super::whole::i64(d)?;
        Qty::parse(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_day_and_second_follow_the_offset() {
        // 2026-11-10T16:00:00Z is 2026-11-11T00:00:00+08:00.
        let t = Timestamp(1_794_326_400);
        assert_eq!(t.local_second_at(8 * 3600), 0);
        assert_eq!(t.plus(-1).local_second_at(8 * 3600), 86_399);
        assert_eq!(t.plus(-1).local_day_at(8 * 3600) + 1, t.local_day_at(8 * 3600));
        assert_eq!(t.local_second_at(0), 16 * 3600);
        assert_eq!(t.rfc3339_at(-5 * 3600 - 1800), "2026-11-10T10:30:00-05:30");
        assert_eq!(t.rfc3339_at(3600), "2026-11-10T17:00:00+01:00");
    }

    #[test]
    fn rfc3339_matches_a_calendar_across_leap_years() {
        assert_eq!(Timestamp(951_782_400 - 8 * 3600).to_rfc3339(), "2000-02-29T00:00:00+08:00");
        assert_eq!(Timestamp(1_709_164_799).to_rfc3339(), "2024-02-29T07:59:59+08:00");
        assert_eq!(
            serde_json::to_string(&Timestamp(1_794_326_400)).unwrap(),
            "\"2026-11-11T00:00:00+08:00\""
        );
    }

    proptest::proptest! {
        #![proptest_config(crate::testkit::seeded(512))]
        /// The hand-written formatter agrees with chrono over years 0 to 9999, and the JSON
        /// form is the same text.
        #[test]
        fn rfc3339_agrees_with_chrono(secs in -62_167_219_200i64..253_402_271_999) {
            let t = Timestamp(secs);
            let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
            let want = chrono::DateTime::from_timestamp(secs, 0).unwrap().with_timezone(&offset);
            proptest::prop_assert_eq!(t.to_rfc3339(), want.format("%Y-%m-%dT%H:%M:%S+08:00").to_string());
            let west = chrono::FixedOffset::west_opt(3 * 3600 + 1800).unwrap();
            let want = chrono::DateTime::from_timestamp(secs, 0).unwrap().with_timezone(&west);
            proptest::prop_assert_eq!(t.rfc3339_at(-(3 * 3600 + 1800)), want.format("%Y-%m-%dT%H:%M:%S%:z").to_string());
            let json = serde_json::to_string(&t).unwrap();
            proptest::prop_assert_eq!(json, format!("\"{}\"", t.to_rfc3339()));
        }
    }

    #[test]
    fn rfc3339_outside_four_digit_years_still_formats() {
        assert_eq!(Timestamp(253_402_300_800).to_rfc3339(), "10000-01-01T08:00:00+08:00");
        assert_eq!(Timestamp(-62_167_334_400).to_rfc3339(), "-001-12-31T00:00:00+08:00");
    }

    #[test]
    fn text_ids_are_compared_exactly_and_bad_ones_are_named() {
        assert_ne!(StoreId::parse("0001").unwrap(), StoreId::parse("1").unwrap());
        assert_eq!(StoreId::numbered(7).as_str(), "7");
        for ok in ["SH-0042", "上海徐汇店", "a/b c", &"x".repeat(64)] {
            assert_eq!(Sku::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(StoreId::parse(""), Err(IdError::Empty { what: "store_id" }));
        assert_eq!(Sku::parse(&"x".repeat(65)), Err(IdError::TooLong { what: "sku", max: 64 }));
        assert_eq!(DcId::parse("a\tb"), Err(IdError::ControlCharacter { what: "dc_id" }));
        // 64 bytes, not 64 characters.
        assert!(Sku::parse(&"店".repeat(22)).is_err());
        let s: Sku = serde_json::from_str("\"SKU-8834-RED\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"SKU-8834-RED\"");
        // Whole numbers are their decimal text (numbered ids of older clients); nothing else.
        assert_eq!(serde_json::from_str::<Sku>("42").unwrap().as_str(), "42");
        assert!(serde_json::from_str::<Sku>("-4").is_err());
        assert!(serde_json::from_str::<Sku>("4.5").is_err());
        assert!(serde_json::from_str::<Sku>("null").is_err());
        // JSON's 42.0 is 42; past 2^53 - 1 a number is refused (send it as a string).
        assert_eq!(serde_json::from_str::<Sku>("42.0").unwrap().as_str(), "42");
        assert_eq!(serde_json::from_str::<Sku>("9007199254740991").unwrap().as_str(), "9007199254740991");
        assert!(serde_json::from_str::<Sku>("9007199254740992").is_err());
        assert!(serde_json::from_str::<Sku>("1e300").is_err());
    }

    #[test]
    fn order_id_rejects_bad_characters_and_length() {
        assert_eq!(OrderId::parse("a b"), Err(IdError::OrderIdCharacters));
        assert!(OrderId::parse(&"x".repeat(64)).is_ok());
        assert!(matches!(OrderId::parse(&"x".repeat(65)), Err(IdError::OrderIdTooLong { .. })));
    }

    #[test]
    fn ids_of_one_shard_still_spread_over_a_table() {
        // The ids one shard holds must not agree on the low hash bits a hashbrown table picks
        // buckets with (they all did when shards were picked by `hash % 64`).
        let low_bits = |id: &OrderId| id.fx_hash() % 64;
        let in_shard_3: Vec<OrderId> = (0..20_000)
            .map(|i| OrderId::parse(&format!("SD-{i}")).unwrap())
            .filter(|id| id.shard(64) == 3)
            .collect();
        assert!(in_shard_3.len() > 200, "{} ids in shard 3 of 64", in_shard_3.len());
        let distinct: std::collections::HashSet<u64> = in_shard_3.iter().map(low_bits).collect();
        assert!(distinct.len() > 48, "only {} distinct low-bit patterns", distinct.len());
        // Every shard gets a share.
        let mut counts = [0usize; 64];
        for i in 0..20_000 {
            counts[OrderId::parse(&format!("o{i}")).unwrap().shard(64)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 200), "{counts:?}");
    }

    #[test]
    fn qty_refuses_zero_negative_and_huge() {
        assert_eq!(Qty::parse(0), Err(IdError::QtyZero));
        assert_eq!(Qty::parse(-5), Err(IdError::QtyZero));
        assert!(matches!(Qty::parse(1 << 40), Err(IdError::QtyTooLarge { .. })));
        assert_eq!(Qty::parse(10_000).unwrap().get(), 10_000);
        let q: Result<Qty, _> = serde_json::from_str("0");
        assert!(q.is_err());
    }
}
