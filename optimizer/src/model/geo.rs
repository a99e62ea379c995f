//! Coordinates on the WGS84 sphere and the great-circle metric.
//!
//! Axis order is **(lon, lat)** everywhere a coordinate crosses a boundary, as in GeoJSON and
//! `geo::Point`; file formats that list `lat, lon` convert at the edge.

use geo::{Distance, Haversine, Point};
use serde::{Deserialize, Serialize};

/// Mean Earth radius used by `geo::Haversine`, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Why a coordinate was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("lon must be a finite number in [-180, 180], got {0}")]
    Lon(f64),
    #[error("lat must be a finite number in [-90, 90], got {0}")]
    Lat(f64),
}

/// A validated WGS84 position in degrees, (lon, lat) order.
///
/// # Examples
/// ```
/// use optimizer::model::LonLat;
/// let shanghai = LonLat::new(121.458, 31.222).unwrap();
/// let beijing = LonLat::new(116.397, 39.908).unwrap();
/// let d = shanghai.distance_m(beijing);
/// assert!((d - 1_067_000.0).abs() < 5_000.0);
/// assert!(LonLat::new(f64::NAN, 0.0).is_err());
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct LonLat {
    lon: f64,
    lat: f64,
}

impl LonLat {
    /// Builds a position, refusing NaN, infinities and out-of-range degrees.
    pub fn new(lon: f64, lat: f64) -> Result<LonLat, GeoError> {
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::Lon(lon));
        }
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Lat(lat));
        }
        Ok(LonLat { lon, lat })
    }

    /// Longitude in degrees.
    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Latitude in degrees.
    pub fn lat(self) -> f64 {
        self.lat
    }

    /// Great-circle distance to `other`.
    ///
    /// # Units
    /// Metres, on a sphere of radius [`EARTH_RADIUS_M`].
    pub fn distance_m(self, other: LonLat) -> f64 {
        Haversine.distance(Point::new(self.lon, self.lat), Point::new(other.lon, other.lat))
    }

    /// The position as a point on the unit sphere (x towards lon 0 on the equator, z north).
    /// Straight-line (chord) distance between unit vectors grows strictly with great-circle
    /// distance, so a Euclidean R-tree over them ranks stores in true great-circle order.
    pub fn unit_vector(self) -> [f64; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }

    /// The position of a unit vector made by [`LonLat::unit_vector`].
    pub fn from_unit_vector(v: &[f64; 3]) -> LonLat {
        let lat = v[2].clamp(-1.0, 1.0).asin().to_degrees();
        let lon = v[1].atan2(v[0]).to_degrees();
        LonLat { lon, lat }
    }

    /// The position `north_m` metres north and `east_m` metres east of this one (local flat
    /// approximation, clamped to valid ranges); used by the generator.
    pub fn offset_m(self, east_m: f64, north_m: f64) -> LonLat {
        let dlat = (north_m / EARTH_RADIUS_M).to_degrees();
        let coslat = self.lat.to_radians().cos().max(1e-6);
        let dlon = (east_m / (EARTH_RADIUS_M * coslat)).to_degrees();
        LonLat { lon: (self.lon + dlon).clamp(-180.0, 180.0), lat: (self.lat + dlat).clamp(-90.0, 90.0) }
    }
}

impl<'de> Deserialize<'de> for LonLat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            lon: f64,
            lat: f64,
        }
        let raw = Raw::deserialize(d)?;
        LonLat::new(raw.lon, raw.lat).map_err(serde::de::Error::custom)
    }
}

/// Converts a squared chord length between unit vectors into a great-circle distance.
///
/// # Units
/// Input: squared chord on the unit sphere. Output: metres.
pub fn chord2_to_m(chord2: f64) -> f64 {
    let half = (chord2.max(0.0).sqrt() / 2.0).min(1.0);
    2.0 * EARTH_RADIUS_M * half.asin()
}

/// Converts a great-circle distance into the squared chord between unit vectors.
///
/// # Units
/// Input: metres. Output: squared chord on the unit sphere.
pub fn m_to_chord2(m: f64) -> f64 {
    let angle = (m / EARTH_RADIUS_M).min(std::f64::consts::PI);
    let chord = 2.0 * (angle / 2.0).sin();
    chord * chord
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_out_of_range_and_non_finite() {
        assert_eq!(LonLat::new(181.0, 0.0), Err(GeoError::Lon(181.0)));
        assert!(matches!(LonLat::new(0.0, f64::INFINITY), Err(GeoError::Lat(_))));
        assert!(LonLat::new(-180.0, -90.0).is_ok());
    }

    proptest! {
        #![proptest_config(crate::testkit::seeded(256))]
        #[test]
        fn chord_conversion_matches_haversine(
            lon1 in 70.0f64..135.0, lat1 in 18.0f64..53.0,
            lon2 in 70.0f64..135.0, lat2 in 18.0f64..53.0,
        ) {
            let a = LonLat::new(lon1, lat1).unwrap();
            let b = LonLat::new(lon2, lat2).unwrap();
            let (u, v) = (a.unit_vector(), b.unit_vector());
            let c2: f64 = (0..3).map(|i| (u[i] - v[i]).powi(2)).sum();
            let via_chord = chord2_to_m(c2);
            prop_assert!((via_chord - a.distance_m(b)).abs() < 0.01 + 1e-9 * via_chord);
            prop_assert!((m_to_chord2(via_chord) - c2).abs() < 1e-12);
        }
    }
}
