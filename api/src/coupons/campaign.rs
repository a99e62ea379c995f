//! Campaigns: what marketing creates for a brand, checked once at the edge.
//!
//! A [`CampaignSpec`] is the request body; [`Campaign::create`] checks it against the network
//! and the caller's brands and resolves its stores to a fixed list, whose positions are the store
//! numbers that poster tokens carry (so a token stays valid whatever else the network learns).

use super::discount::{Discount, Stacking};
use optimizer::model::{Network, StoreId};
use serde::{Deserialize, Serialize};

/// Which stores take part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreSelection {
    /// Every store of the brand.
    All,
    /// The brand's stores in these cities (names as in the dataset).
    Cities(Vec<String>),
    /// These stores (each of the brand).
    StoreIds(Vec<String>),
}

/// A time window, both ends included: Unix seconds inside, RFC 3339 text in JSON.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-11T00:00:00+08:00")]
    pub from: i64,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-11T23:59:59+08:00")]
    pub until: i64,
}

/// Unix seconds as RFC 3339 text (written in UTC+8; read with any offset).
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&optimizer::model::Timestamp(*t).to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let t: jiff::Timestamp = text.parse().map_err(|e| {
            serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time with an offset: {e}"))
        })?;
        Ok(t.as_second())
    }
}

impl Window {
    pub fn contains(&self, t: i64) -> bool {
        self.from <= t && t <= self.until
    }
}

/// Caps; `None` is no cap. Counts are coupons; `discount_cents` is money given away.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub issued: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub redeemed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub discount_cents: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub issued_per_store: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub redeemed_per_store: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub issued_per_poster: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub redeemed_per_poster: Option<u64>,
}

/// What `POST /v1/campaigns` takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    #[schema(min_length = 1, max_length = 64)]
    pub brand: String,
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    pub stores: StoreSelection,
    pub discount: Discount,
    /// When shoppers may capture; default: from creation until the redemption window ends.
    #[serde(default)]
    pub capture: Option<Window>,
    /// When coupons may be redeemed; default: the next Nov 11, 00:00 to 23:59:59 UTC+8.
    #[serde(default)]
    pub redemption: Option<Window>,
    #[serde(default)]
    pub budgets: Budgets,
    /// Redemptions per customer (keyed on customer id); default 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub per_customer: u32,
    #[serde(default)]
    pub stacking: Stacking,
    /// Posters per store (serials 0..n); default 1.
    #[serde(default = "one_u16")]
    #[schema(minimum = 1, maximum = 1000)]
    pub posters_per_store: u16,
}

fn one() -> u32 {
    1
}
fn one_u16() -> u16 {
    1
}

/// Where a campaign stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    /// No captures or redemptions until resumed.
    Paused,
    /// Over for good.
    Ended,
}

/// A campaign as stored: the spec with its defaults filled in and its stores resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: u32,
    pub brand: String,
    pub name: String,
    pub discount: Discount,
    pub capture: Window,
    pub redemption: Window,
    pub budgets: Budgets,
    pub per_customer: u32,
    pub stacking: Stacking,
    pub posters_per_store: u16,
    pub status: Status,
    /// The participating stores; a store's position is its store number in poster tokens.
    pub stores: Vec<StoreId>,
    /// How the stores were chosen.
    pub selection: StoreSelection,
    pub created_at: i64,
    /// The key that created it.
    pub created_by: String,
    /// Raised by one with every change (1 when created).
    pub version: u64,
}

/// A campaign spec that cannot be accepted: the field (JSON path in the body), why, and whose
/// rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub kind: SpecErrorKind,
    pub field: String,
    pub message: String,
}

/// What kind of problem a [`SpecError`] is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SpecErrorKind {
    /// A value out of its range or inconsistent with another.
    Invalid,
    /// A city or store this network lacks, or a selection with no store.
    Unknown,
    /// A brand the caller may not act for.
    OutOfScope,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { kind: SpecErrorKind::Invalid, field: field.into(), message: message.into() }
}

fn unknown(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { kind: SpecErrorKind::Unknown, field: field.into(), message: message.into() }
}

/// Most redemptions a campaign may allow one customer.
pub const MAX_PER_CUSTOMER: u32 = 1_000_000;

/// Largest budget a campaign may state (counts or cents); the databases count in 64-bit signed
/// integers.
pub const MAX_BUDGET: u64 = 1_000_000_000_000_000;

/// Longest name accepted, in bytes.
pub const MAX_NAME: usize = 200;

/// The default redemption window: Nov 11 00:00:00 to 23:59:59 UTC+8 of the year in which it
/// has not ended yet at `now`.
pub fn singles_day(now: i64) -> Window {
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
    let year = jiff::Timestamp::from_second(now).map_or(2026, |t| t.to_zoned_datetime(tz.clone()).year());
    let window = |y: i16| {
        let start =
            jiff::civil::date(y, 11, 11).at(0, 0, 0, 0).to_zoned_datetime(tz.clone()).expect("a valid date");
        let from = start.timestamp().as_second();
        Window { from, until: from + 86_399 }
    };
    let this = window(year);
    if this.until >= now {
        this
    } else {
        window(year + 1)
    }
}

impl Campaign {
    /// Checks `spec` and resolves its stores in `net`; `may_act_for` says which brands the
    /// caller may act for. `id`, `now` (Unix seconds) and `by` (key id) come from the service.
    pub fn create(
        spec: CampaignSpec,
        net: &Network,
        may_act_for: &dyn Fn(&str) -> bool,
        id: u32,
        now: i64,
        by: &str,
    ) -> Result<Campaign, SpecError> {
        if spec.brand.is_empty() {
            return Err(bad("brand", "must not be empty"));
        }
        if !may_act_for(&spec.brand) {
            return Err(SpecError {
                kind: SpecErrorKind::OutOfScope,
                field: "brand".into(),
                message: format!("this key may not act for brand {}", spec.brand),
            });
        }
        if spec.name.trim().is_empty() || spec.name.len() > MAX_NAME {
            return Err(bad("name", format!("must be 1 to {MAX_NAME} bytes")));
        }
        spec.discount.check().map_err(|e| bad(format!("discount.{}", e.field), e.message))?;
        let redemption = spec.redemption.unwrap_or_else(|| singles_day(now));
        if redemption.from > redemption.until {
            return Err(bad("redemption.until", "must not be before redemption.from"));
        }
        let capture = spec.capture.unwrap_or(Window { from: now, until: redemption.until });
        if capture.from > capture.until {
            return Err(bad("capture.until", "must not be before capture.from"));
        }
        if capture.until > redemption.until {
            return Err(bad(
                "capture.until",
                "must not be after redemption.until (a coupon captured then could never be used)",
            ));
        }
        if !(0..=i64::from(u32::MAX)).contains(&capture.until) {
            return Err(bad(
                "capture.until",
                "must be between 1970 and 2106 (tokens carry expiry as u32 seconds)",
            ));
        }
        if !(1..=MAX_PER_CUSTOMER).contains(&spec.per_customer) {
            return Err(bad("per_customer", "must be between 1 and 1,000,000"));
        }
        if !(1..=1000).contains(&spec.posters_per_store) {
            return Err(bad("posters_per_store", "must be between 1 and 1,000"));
        }
        let b = &spec.budgets;
        for (field, v) in [
            ("issued", b.issued),
            ("redeemed", b.redeemed),
            ("discount_cents", b.discount_cents),
            ("issued_per_store", b.issued_per_store),
            ("redeemed_per_store", b.redeemed_per_store),
            ("issued_per_poster", b.issued_per_poster),
            ("redeemed_per_poster", b.redeemed_per_poster),
        ] {
            if v == Some(0) {
                return Err(bad(format!("budgets.{field}"), "must be at least 1 (leave it out for no cap)"));
            }
            if v.is_some_and(|v| v > MAX_BUDGET) {
                return Err(bad(
                    format!("budgets.{field}"),
                    "must be at most 10^15 (leave it out for no cap)",
                ));
            }
        }
        let of_brand = |s: &&optimizer::model::Store| s.brand.as_str() == spec.brand;
        let stores: Vec<StoreId> = match &spec.stores {
            StoreSelection::All => net.stores().iter().filter(of_brand).map(|s| s.id.clone()).collect(),
            StoreSelection::Cities(names) => {
                let mut wanted = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let Some(c) = net.cities().iter().position(|c| &c.name == name) else {
                        return Err(unknown(
                            format!("stores.cities[{i}]"),
                            format!("no city named {name:?}"),
                        ));
                    };
                    wanted.push(c as u16);
                }
                net.stores()
                    .iter()
                    .filter(of_brand)
                    .filter(|s| wanted.contains(&s.city.0))
                    .map(|s| s.id.clone())
                    .collect()
            }
            StoreSelection::StoreIds(ids) => {
                let mut out = Vec::with_capacity(ids.len());
                let mut seen = std::collections::HashSet::new();
                for (i, id) in ids.iter().enumerate() {
                    let field = || format!("stores.store_ids[{i}]");
                    let Some(idx) = net.store_idx(id.as_str()) else {
                        return Err(unknown(field(), format!("unknown store {id}")));
                    };
                    let store = net.store(idx);
                    if store.brand.as_str() != spec.brand {
                        return Err(unknown(
                            field(),
                            format!("store {id} belongs to brand {}, not {}", store.brand, spec.brand),
                        ));
                    }
                    if !seen.insert(idx) {
                        return Err(bad(field(), format!("store {id} is listed twice")));
                    }
                    out.push(store.id.clone());
                }
                out
            }
        };
        if stores.is_empty() {
            return Err(unknown("stores", format!("selects no store of brand {}", spec.brand)));
        }
        Ok(Campaign {
            id,
            brand: spec.brand,
            name: spec.name,
            discount: spec.discount,
            capture,
            redemption,
            budgets: spec.budgets,
            per_customer: spec.per_customer,
            stacking: spec.stacking,
            posters_per_store: spec.posters_per_store,
            status: Status::Active,
            stores,
            selection: spec.stores,
            created_at: now,
            created_by: by.to_string(),
            version: 1,
        })
    }

    /// The store number of `store` (its position in the campaign's list).
    pub fn store_number(&self, store: &str) -> Option<u32> {
        self.stores.iter().position(|s| s.as_str() == store).map(|i| i as u32)
    }

    /// Moves the campaign to `to`: active and paused switch back and forth; ended is final.
    pub fn transition(&mut self, to: Status) -> Result<(), String> {
        match (self.status, to) {
            (Status::Ended, _) => Err(format!("campaign {} has ended", self.id)),
            (from, to) if from == to => Ok(()),
            _ => {
                self.status = to;
                self.version += 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn singles_day_is_nov_11_in_china_this_year_or_next() {
        // 2026-06-01T00:00:00Z.
        let w = singles_day(1_780_272_000);
        assert_eq!(jiff::Timestamp::from_second(w.from).unwrap().to_string(), "2026-11-10T16:00:00Z");
        assert_eq!(w.until - w.from, 86_399);
        let after = singles_day(w.until + 1);
        assert_eq!(jiff::Timestamp::from_second(after.from).unwrap().to_string(), "2027-11-10T16:00:00Z");
        assert_eq!(singles_day(w.until), w, "the last second still belongs to this year's");
    }

    /// An active campaign of store `S1`, open from 0 to 100 (Unix seconds), for tests.
    pub(crate) fn test_campaign(
        id: u32,
        discount: Discount,
        stacking: Stacking,
        budgets: Budgets,
    ) -> Campaign {
        Campaign {
            id,
            brand: "b".into(),
            name: "n".into(),
            discount,
            capture: Window { from: 0, until: 100 },
            redemption: Window { from: 0, until: 100 },
            budgets,
            per_customer: 1,
            stacking,
            posters_per_store: 1,
            status: Status::Active,
            stores: vec![StoreId::parse("S1").unwrap()],
            selection: StoreSelection::All,
            created_at: 0,
            created_by: "k".into(),
            version: 1,
        }
    }

    #[test]
    fn ended_is_final_and_pause_resumes() {
        let discount = Discount::AmountOff { off_cents: 1, min_spend_cents: 0 };
        let mut c = test_campaign(1, discount, Stacking::Exclusive, Budgets::default());
        assert_eq!(c.store_number("S1"), Some(0));
        assert_eq!(c.store_number("S2"), None);
        c.transition(Status::Paused).unwrap();
        c.transition(Status::Active).unwrap();
        c.transition(Status::Ended).unwrap();
        assert!(c.transition(Status::Active).is_err());
        assert_eq!(c.status, Status::Ended);
    }
}
