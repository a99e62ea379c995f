//! `dataset.toml`: what a dataset says about itself beyond its files: its time zone and how far
//! a customer may be from every store and DC.
//!
//! ```toml
//! time_zone = "Europe/Berlin"      # IANA name; default Asia/Shanghai (UTC+8 all year)
//! max_customer_distance_km = 2000  # farther from every store and DC: the order is refused
//! ```

use super::DataError;
use optimizer::model::TimeZone;
use serde::Deserialize;
use std::path::Path;

/// The file's name inside a dataset directory.
pub const FILE: &str = "dataset.toml";

/// What `dataset.toml` holds (every key optional).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DatasetToml {
    time_zone: Option<String>,
    max_customer_distance_km: Option<f64>,
}

/// A dataset's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSettings {
    pub zone: TimeZone,
    /// Farthest a customer may be from every store and DC.
    ///
    /// # Units
    /// Metres.
    pub max_customer_distance_m: f64,
}

impl Default for DatasetSettings {
    fn default() -> Self {
        DatasetSettings { zone: TimeZone::china(), max_customer_distance_m: 2_000_000.0 }
    }
}

/// Reads `dir/dataset.toml`; the defaults when there is none.
pub fn read(dir: &Path) -> Result<DatasetSettings, DataError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DatasetSettings::default()),
        Err(e) => return Err(DataError::io(&path, e)),
    };
    parse(&path, &text)
}

/// The settings `text` (the contents of `path`) gives.
pub fn parse(path: &Path, text: &str) -> Result<DatasetSettings, DataError> {
    let toml: DatasetToml = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| text[..s.start].matches('\n').count() as u64 + 1);
        DataError::row(path, line, "toml", e.message())
    })?;
    let mut out = DatasetSettings::default();
    if let Some(name) = toml.time_zone {
        out.zone =
            zone(&name).map_err(|e| DataError::row(path, key_line(text, "time_zone"), "time_zone", e))?;
    }
    if let Some(km) = toml.max_customer_distance_km {
        if !(km.is_finite() && km > 0.0) {
            return Err(DataError::row(
                path,
                key_line(text, "max_customer_distance_km"),
                "max_customer_distance_km",
                format!("{km} is not a positive number of kilometres"),
            ));
        }
        out.max_customer_distance_m = km * 1000.0;
    }
    Ok(out)
}

/// The line a key is on, for error messages.
fn key_line(text: &str, key: &str) -> u64 {
    text.lines().position(|l| l.trim_start().starts_with(key)).map_or(0, |i| i as u64 + 1)
}

/// An IANA time zone as the offsets in force from 1970 to 2100 (jiff's bundled database).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    let tz = jiff::tz::TimeZone::get(name).map_err(|_| format!("`{name}` is not an IANA time zone name"))?;
    let start = jiff::Timestamp::from_second(0).expect("in range");
    let end = jiff::Timestamp::from_second(4_102_444_800).expect("in range"); // 2100-01-01
    let mut changes = vec![(i64::MIN, tz.to_offset(start).seconds())];
    for t in tz.following(start) {
        if t.timestamp() >= end {
            break;
        }
        let offset = t.offset().seconds();
        if changes.last().is_some_and(|(_, o)| *o != offset) {
            changes.push((t.timestamp().as_second(), offset));
        }
    }
    TimeZone::with_changes(name, changes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizer::model::Timestamp;

    #[test]
    fn iana_zones_give_their_offsets_over_the_year() {
        let berlin = zone("Europe/Berlin").unwrap();
        // 2026-07-01 is summer time (UTC+2), 2026-11-11 winter time (UTC+1).
        assert_eq!(berlin.offset_s(Timestamp(1_782_864_000)), 7200);
        assert_eq!(berlin.offset_s(Timestamp(1_794_326_400)), 3600);
        assert_eq!(zone("Asia/Shanghai").unwrap().offset_s(Timestamp(1_794_326_400)), 8 * 3600);
        assert!(zone("Mars/Olympus").unwrap_err().contains("Mars/Olympus"));
    }

    #[test]
    fn a_dataset_toml_is_read_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), DatasetSettings::default());
        std::fs::write(
            dir.path().join(FILE),
            "time_zone = \"America/Sao_Paulo\"\nmax_customer_distance_km = 300\n",
        )
        .unwrap();
        let s = read(dir.path()).unwrap();
        assert_eq!((s.zone.name(), s.max_customer_distance_m), ("America/Sao_Paulo", 300_000.0));
        std::fs::write(dir.path().join(FILE), "\ntime_zone = \"Nowhere/Else\"\n").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("dataset.toml:2: field `time_zone`") && e.contains("Nowhere/Else"), "{e}");
        std::fs::write(dir.path().join(FILE), "colour = 1\n").unwrap();
        assert!(read(dir.path()).unwrap_err().to_string().contains("colour"));
    }
}
