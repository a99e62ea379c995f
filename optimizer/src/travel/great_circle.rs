use super::{Leg, Origin, TravelCost};
use crate::model::LonLat;

/// Straight-line distance at courier speed, plus a fixed handling time.
///
/// # Examples
/// ```
/// use optimizer::model::{CityId, LonLat};
/// use optimizer::travel::{GreatCircle, Origin, TravelCost};
/// let from = Origin { location: LonLat::new(121.40, 31.20).unwrap(), city: CityId(0) };
/// let leg = GreatCircle::default().leg(from, LonLat::new(121.50, 31.20).unwrap());
/// assert!((leg.distance_m - 9_510.0).abs() < 20.0);
/// assert_eq!(leg.eta_s, 3_600 + (leg.distance_m / GreatCircle::default().speed_mps) as u32);
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct GreatCircle {
    /// Courier speed.
    ///
    /// # Units
    /// Metres per second.
    pub speed_mps: f64,
    /// Picking and packing before the courier leaves.
    ///
    /// # Units
    /// Seconds.
    pub handling_s: u32,
}

impl Default for GreatCircle {
    fn default() -> Self {
        // 25 km/h through city traffic, one hour to pick and pack.
        GreatCircle { speed_mps: 25_000.0 / 3600.0, handling_s: 3600 }
    }
}

impl TravelCost for GreatCircle {
    fn leg(&self, from: Origin, to: LonLat) -> Leg {
        let distance_m = from.location.distance_m(to);
        let travel = (distance_m / self.speed_mps).min(f64::from(u32::MAX / 2)) as u32;
        Leg { distance_m, eta_s: self.handling_s.saturating_add(travel) }
    }
}
