//! Stores, distribution centres and cities: the static part of the network.

use super::geo::LonLat;
use super::ids::{BrandId, CityId, DcId, StoreId};
use serde::{Deserialize, Serialize};

/// Fulfilment modes a store offers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Shoppers may collect orders in this store.
    pub pickup: bool,
    /// This store packs and ships online orders (ship-from-store).
    pub ship: bool,
}

/// Daily opening hours in local (UTC+8) minutes since midnight. `opens == closes` means open
/// around the clock; `closes < opens` means the store closes after midnight.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningHours {
    pub opens_min: u16,
    pub closes_min: u16,
}

impl OpeningHours {
    /// Open around the clock.
    pub const ALWAYS: OpeningHours = OpeningHours { opens_min: 0, closes_min: 0 };

    /// Builds opening hours; each bound must be below 1440 minutes.
    pub fn new(opens_min: u16, closes_min: u16) -> Option<OpeningHours> {
        (opens_min < 1440 && closes_min < 1440).then_some(OpeningHours { opens_min, closes_min })
    }

    /// Seconds from local second-of-day `sod` until the store is open (0 when open now).
    ///
    /// # Units
    /// Input and output in seconds.
    pub fn wait_s(self, sod: u32) -> u32 {
        let (o, c) = (u32::from(self.opens_min) * 60, u32::from(self.closes_min) * 60);
        let open_now = if o == c {
            true
        } else if o < c {
            (o..c).contains(&sod)
        } else {
            sod >= o || sod < c
        };
        if open_now {
            0
        } else if sod < o {
            o - sod
        } else {
            86_400 - sod + o
        }
    }
}

/// One physical store or booth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Store {
    pub id: StoreId,
    pub brand: BrandId,
    pub city: CityId,
    pub location: LonLat,
    pub capabilities: Capabilities,
    /// Orders (shipments or pickups) the store can take per local day.
    pub capacity_per_day: u32,
    pub hours: OpeningHours,
}

/// A regional distribution centre: the fallback when no store can serve an order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dc {
    pub id: DcId,
    pub city: CityId,
    pub location: LonLat,
}

/// A city: the hubs of the line-haul network and the centres around which stores and orders are
/// generated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct City {
    pub name: String,
    pub province_code: String,
    pub location: LonLat,
    pub population: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_zero_when_open_and_counts_to_opening_otherwise() {
        let h = OpeningHours::new(9 * 60, 22 * 60).unwrap();
        assert_eq!(h.wait_s(10 * 3600), 0);
        assert_eq!(h.wait_s(8 * 3600), 3600);
        assert_eq!(h.wait_s(23 * 3600), 10 * 3600);
        assert_eq!(OpeningHours::ALWAYS.wait_s(3 * 3600), 0);
    }

    #[test]
    fn overnight_hours_wrap_midnight() {
        let h = OpeningHours::new(20 * 60, 2 * 60).unwrap();
        assert_eq!(h.wait_s(3600), 0);
        assert_eq!(h.wait_s(21 * 3600), 0);
        assert_eq!(h.wait_s(3 * 3600), 17 * 3600);
        assert!(OpeningHours::new(1440, 0).is_none());
    }
}
