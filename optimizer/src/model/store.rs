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

/// Orders stores along a Hilbert curve over longitude and latitude (a grid of 2^16 x 2^16 cells,
/// about 600 m by 300 m), ties by id.
///
/// Loaders call this before building a [`Network`](super::Network), so that the dense indexes
/// of stores near each other on the map are near each other too. A checkout walk looks at a few
/// stores around one customer; with indexes in map order, their availability bits share cache
/// lines (a bitset line spans 512 consecutive stores) and so do their ledger entries, where file
/// order would scatter them over the whole table.
///
/// # Runtime
/// O(n log n).
pub fn sort_spatially(stores: &mut [Store]) {
    stores.sort_by_cached_key(|s| (hilbert_key(s.location), s.id.clone()));
}

/// Position of `p` along a Hilbert curve over a 2^16 x 2^16 longitude/latitude grid.
fn hilbert_key(p: LonLat) -> u64 {
    const N: u32 = 1 << 16;
    let cell = |v: f64, lo: f64, span: f64| (((v - lo) / span * f64::from(N)) as u32).min(N - 1);
    let (mut x, mut y) = (cell(p.lon(), -180.0, 360.0), cell(p.lat(), -90.0, 180.0));
    let mut d = 0u64;
    let mut s = N / 2;
    while s > 0 {
        let (rx, ry) = (u32::from(x & s != 0), u32::from(y & s != 0));
        d += u64::from(s) * u64::from(s) * u64::from((3 * rx) ^ ry);
        // Rotate the quadrant so that the curve stays continuous.
        if ry == 0 {
            if rx == 1 {
                x = N - 1 - x;
                y = N - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    d
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
    /// The region the city belongs to (a province or state; empty when the dataset names none).
    pub region: String,
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

    use crate::testkit;

    #[test]
    fn hilbert_keys_of_the_four_quadrants_follow_the_curve() {
        // The first-order curve visits (0,0), (0,1), (1,1), (1,0) in grid terms.
        let at = |lon, lat| hilbert_key(LonLat::new(lon, lat).unwrap());
        let (sw, nw, ne, se) = (at(-90.0, -45.0), at(-90.0, 45.0), at(90.0, 45.0), at(90.0, -45.0));
        assert!(sw < nw && nw < ne && ne < se, "{sw} {nw} {ne} {se}");
    }

    #[test]
    fn stores_of_one_neighbourhood_end_up_next_to_each_other() {
        // Three tight clusters (Shanghai, Beijing, Chengdu), interleaved in the input.
        let centres = [(121.47, 31.23), (116.40, 39.90), (104.07, 30.67)];
        let mut stores: Vec<Store> = (0..30u32)
            .map(|i| {
                let (lon, lat) = centres[i as usize % 3];
                let j = f64::from(i / 3) * 0.001;
                testkit::store(i, lon + j, lat + j)
            })
            .collect();
        sort_spatially(&mut stores);
        let mut ids: Vec<u32> = stores.iter().map(|s| s.id.as_str().parse().unwrap()).collect();
        for run in stores.chunks(10) {
            let num = |s: &Store| s.id.as_str().parse::<u32>().unwrap();
            let cluster = num(&run[0]) % 3;
            assert!(run.iter().all(|s| num(s) % 3 == cluster), "a cluster was split: {ids:?}");
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..30).collect::<Vec<_>>(), "a permutation");
    }
}
