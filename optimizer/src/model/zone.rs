//! Local time: a dataset's time zone as UTC offsets over time.
//!
//! The core keeps no time-zone database (that is data the edges bring): a [`TimeZone`] is a name
//! and the UTC offsets in force from given instants on, which the caller derives from the IANA
//! database (`api` does, with jiff). Local days (store capacity), local times of day (opening
//! hours) and the promise's calendar days all come from it.

use super::ids::Timestamp;
use std::sync::Arc;

/// A time zone: its name and the UTC offset in force from each change on (the first change
/// holds for every earlier instant too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeZone {
    name: Arc<str>,
    /// (from this instant, Unix seconds; offset east of UTC, seconds), sorted by instant, never
    /// empty.
    changes: Arc<[(i64, i32)]>,
}

/// Why a time zone could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("a time zone needs at least one offset")]
    NoOffsets,
    #[error("offset {0} s is not within a day")]
    Offset(i32),
    #[error("offset changes must be in time order")]
    Order,
}

impl TimeZone {
    /// China Standard Time, UTC+8 all year: the default when a dataset names no zone.
    pub fn china() -> TimeZone {
        TimeZone::fixed("Asia/Shanghai", 8 * 3600).expect("valid")
    }

    /// A zone with one offset for all time.
    pub fn fixed(name: &str, offset_s: i32) -> Result<TimeZone, ZoneError> {
        TimeZone::with_changes(name, vec![(i64::MIN, offset_s)])
    }

    /// A zone whose offset changes at the given instants (sorted; the first holds before it too).
    ///
    /// # Examples
    /// ```
    /// use optimizer::model::{TimeZone, Timestamp};
    /// // Central European Time with summer time from 2026-03-29T01:00Z to 2026-10-25T01:00Z.
    /// let berlin = TimeZone::with_changes("Europe/Berlin",
    ///     vec![(0, 3600), (1_774_746_000, 7200), (1_792_890_000, 3600)]).unwrap();
    /// assert_eq!(berlin.offset_s(Timestamp(1_780_000_000)), 7200);
    /// assert_eq!(berlin.rfc3339(Timestamp(1_794_326_400)), "2026-11-10T17:00:00+01:00");
    /// ```
    pub fn with_changes(name: &str, changes: Vec<(i64, i32)>) -> Result<TimeZone, ZoneError> {
        if changes.is_empty() {
            return Err(ZoneError::NoOffsets);
        }
        if let Some(&(_, o)) = changes.iter().find(|(_, o)| o.unsigned_abs() >= 86_400) {
            return Err(ZoneError::Offset(o));
        }
        if !changes.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(ZoneError::Order);
        }
        Ok(TimeZone { name: name.into(), changes: changes.into() })
    }

    /// The zone's name (IANA, such as `Asia/Shanghai`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UTC offset in force at `t`, seconds east of UTC.
    ///
    /// # Runtime
    /// O(1) for a fixed zone, O(log c) for c changes.
    #[inline]
    pub fn offset_s(&self, t: Timestamp) -> i32 {
        if let [(_, o)] = *self.changes {
            return o;
        }
        let i = self.changes.partition_point(|(from, _)| *from <= t.0);
        self.changes[i.saturating_sub(1)].1
    }

    /// Local calendar day number (days since 1970-01-01) of `t`.
    #[inline]
    pub fn local_day(&self, t: Timestamp) -> i64 {
        t.local_day_at(self.offset_s(t))
    }

    /// Seconds since local midnight of `t`, in `0..86_400`.
    #[inline]
    pub fn local_second_of_day(&self, t: Timestamp) -> u32 {
        t.local_second_at(self.offset_s(t))
    }

    /// `t` as RFC 3339 text in this zone's offset at that instant.
    pub fn rfc3339(&self, t: Timestamp) -> String {
        t.rfc3339_at(self.offset_s(t))
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::china()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_their_changes_and_bad_zones_are_refused() {
        let z = TimeZone::with_changes("X", vec![(100, 3600), (200, 7200)]).unwrap();
        assert_eq!(z.offset_s(Timestamp(0)), 3600, "the first offset holds before it too");
        assert_eq!(z.offset_s(Timestamp(199)), 3600);
        assert_eq!(z.offset_s(Timestamp(200)), 7200);
        assert_eq!(TimeZone::with_changes("X", vec![]), Err(ZoneError::NoOffsets));
        assert_eq!(TimeZone::with_changes("X", vec![(0, 0), (0, 1)]), Err(ZoneError::Order));
        assert_eq!(TimeZone::fixed("X", 90_000), Err(ZoneError::Offset(90_000)));
        let china = TimeZone::china();
        assert_eq!(china.local_second_of_day(Timestamp(1_794_326_400)), 0);
        assert_eq!(china.rfc3339(Timestamp(1_794_326_400)), "2026-11-11T00:00:00+08:00");
    }
}
