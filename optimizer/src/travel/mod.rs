//! Travel cost strategies: how far and how long a delivery leg is.
//!
//! The router ranks candidates by great-circle distance (the R-tree's order) and asks a
//! [`TravelCost`] for each chosen leg's distance and ETA; the batch optimizer turns the same legs
//! into money.

mod great_circle;
mod hub_network;

pub use great_circle::GreatCircle;
pub use hub_network::{HubNetwork, HubNetworkConfig};

use crate::model::{CityId, LonLat, TimeZone, Timestamp};
use serde::{Deserialize, Serialize};

/// Where a leg starts: a store or DC, with the city whose hub it uses.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Origin {
    pub location: LonLat,
    pub city: CityId,
}

/// One delivery leg.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    /// Great-circle distance from origin to destination.
    ///
    /// # Units
    /// Metres.
    pub distance_m: f64,
    /// Time from dispatch to delivery, handling included.
    ///
    /// # Units
    /// Seconds.
    pub eta_s: u32,
}

/// A way to estimate delivery legs. Implementations are cheap to call and thread-safe.
pub trait TravelCost: Send + Sync {
    /// The leg from `from` to the customer at `to`.
    fn leg(&self, from: Origin, to: LonLat) -> Leg;
}

impl<T: TravelCost + ?Sized> TravelCost for &T {
    fn leg(&self, from: Origin, to: LonLat) -> Leg {
        (**self).leg(from, to)
    }
}

impl<T: TravelCost + ?Sized> TravelCost for Box<T> {
    fn leg(&self, from: Origin, to: LonLat) -> Leg {
        (**self).leg(from, to)
    }
}

/// The delivery promise shown at checkout, by local (UTC+8) calendar day of arrival.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promise {
    SameDay,
    NextDay,
    Later,
}

impl Promise {
    /// The promise for goods ready `eta_s` seconds after an order placed at `at`, by calendar
    /// days of `zone`.
    ///
    /// # Examples
    /// ```
    /// use optimizer::model::{TimeZone, Timestamp};
    /// use optimizer::travel::Promise;
    /// let china = TimeZone::china();
    /// let midnight = Timestamp(1_794_326_400); // 2026-11-11T00:00+08:00
    /// assert_eq!(Promise::for_eta(&china, midnight, 5 * 3600), Promise::SameDay);
    /// assert_eq!(Promise::for_eta(&china, midnight, 30 * 3600), Promise::NextDay);
    /// assert_eq!(Promise::for_eta(&china, midnight, 50 * 3600), Promise::Later);
    /// ```
    pub fn for_eta(zone: &TimeZone, at: Timestamp, eta_s: u32) -> Promise {
        match zone.local_day(at.plus(i64::from(eta_s))) - zone.local_day(at) {
            0 => Promise::SameDay,
            1 => Promise::NextDay,
            _ => Promise::Later,
        }
    }
}
