//! The Singles' Day demand curve outside the midnight spike: relative order volume per local
//! hour (0 = 00:00-01:00). Night is quiet, lunch and the evening are busy, and the last hours
//! before midnight rise again as the sale ends.
pub(super) const HOURLY_WEIGHTS: [f64; 24] = [
    6.0, 3.0, 1.5, 1.0, 0.8, 0.8, 1.2, 2.0, 3.5, 4.5, 5.0, 5.5, 6.0, 5.5, 5.0, 5.0, 5.2, 5.5, 6.0, 7.0, 8.0,
    8.5, 9.0, 10.0,
];
