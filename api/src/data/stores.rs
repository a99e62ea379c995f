//! `stores.csv` and `dcs.csv`.

use super::cities::CityList;
use super::DataError;
use optimizer::model::{BrandId, Capabilities, CityId, Dc, DcId, LonLat, OpeningHours, Store, StoreId};
use rustc_hash::FxHashMap;
use std::path::Path;

pub(super) const STORE_COLUMNS: [&str; 10] =
    ["store_id", "brand", "city", "lat", "lon", "pickup", "ship", "capacity_per_day", "opens", "closes"];
pub(super) const DC_COLUMNS: [&str; 4] = ["dc_id", "city", "lat", "lon"];

/// One CSV record with its columns looked up by header name.
pub(super) struct Row<'a> {
    record: &'a csv::StringRecord,
    pos: &'a FxHashMap<&'a str, usize>,
}

impl<'a> Row<'a> {
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.pos.get(name).and_then(|&i| self.record.get(i))
    }
}

/// The bytes of a file, or an error naming it.
pub(super) fn file_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Reads CSV text (`path` names it in errors) whose header must have the `required` columns
/// (`optional` ones are used when present); calls `row` with each record and its line number.
pub(super) fn read_csv<T>(
    path: &Path,
    bytes: &[u8],
    required: &[&'static str],
    optional: &[&'static str],
    mut row: impl FnMut(&Row<'_>, u64) -> Result<T, DataError>,
) -> Result<Vec<T>, DataError> {
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
    let headers = rdr.headers().map_err(|e| DataError::file(path, e))?.clone();
    let mut pos: FxHashMap<&'static str, usize> = FxHashMap::default();
    for name in required.iter().chain(optional) {
        if let Some(i) = headers.iter().position(|h| h == *name) {
            pos.insert(name, i);
        } else if required.contains(name) {
            return Err(DataError::row(path, 1, *name, "missing column in the header"));
        }
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(DataError::row(path, line, "row", e));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        out.push(row(&Row { record: &record, pos: &pos }, line)?);
    }
    Ok(out)
}

pub(super) fn parse<T: std::str::FromStr>(
    path: &Path,
    line: u64,
    field: &str,
    raw: Option<&str>,
) -> Result<T, DataError>
where
    T::Err: std::fmt::Display,
{
    let raw = raw.ok_or_else(|| DataError::row(path, line, field, "missing value"))?;
    raw.parse::<T>().map_err(|e| DataError::row(path, line, field, format!("`{raw}`: {e}")))
}

fn parse_bool(path: &Path, line: u64, field: &str, raw: Option<&str>) -> Result<bool, DataError> {
    match raw {
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        other => {
            Err(DataError::row(path, line, field, format!("`{}` is not true/false", other.unwrap_or(""))))
        }
    }
}

fn parse_hhmm(path: &Path, line: u64, field: &str, raw: Option<&str>) -> Result<Option<u16>, DataError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(None) };
    let bad = || DataError::row(path, line, field, format!("`{raw}` is not a time HH:MM"));
    let (h, m) = raw.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h >= 24 || m >= 60 {
        return Err(bad());
    }
    Ok(Some(h * 60 + m))
}

pub(super) fn location(
    path: &Path,
    line: u64,
    lat: Option<&str>,
    lon: Option<&str>,
) -> Result<LonLat, DataError> {
    let lat: f64 = parse(path, line, "lat", lat)?;
    let lon: f64 = parse(path, line, "lon", lon)?;
    LonLat::new(lon, lat).map_err(|e| {
        let field = if matches!(e, optimizer::model::GeoError::Lat(_)) { "lat" } else { "lon" };
        DataError::row(path, line, field, e)
    })
}

/// A text id in column `field`.
pub(super) fn text_id<T>(
    path: &Path,
    line: u64,
    field: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<T, optimizer::model::IdError>,
) -> Result<T, DataError> {
    parse(raw.unwrap_or("")).map_err(|e| DataError::row(path, line, field, e))
}

/// The city a row names, or `None` for an empty city (the caller places the store by distance).
fn named_city(
    path: &Path,
    line: u64,
    cities: &CityList,
    raw: Option<&str>,
) -> Result<Option<CityId>, DataError> {
    let name = raw.unwrap_or("");
    if name.is_empty() {
        return Ok(None);
    }
    cities.find(name).map(Some).ok_or_else(|| {
        DataError::row(path, line, "city", format!("`{name}` is not in the dataset's city list"))
    })
}

/// Stores, and how many had no city and were given the nearest one.
pub(super) fn read_stores(path: &Path, cities: &CityList) -> Result<(Vec<Store>, usize), DataError> {
    parse_stores(path, &file_bytes(path)?, cities)
}

/// As [`read_stores`], from the file's bytes.
pub(crate) fn parse_stores(
    path: &Path,
    bytes: &[u8],
    cities: &CityList,
) -> Result<(Vec<Store>, usize), DataError> {
    let mut seen: FxHashMap<StoreId, u64> = FxHashMap::default();
    let mut placed = 0;
    let stores = read_csv(path, bytes, &STORE_COLUMNS[..8], &STORE_COLUMNS[8..], |r, line| {
        let id = text_id(path, line, "store_id", r.get("store_id"), StoreId::parse)?;
        if let Some(first) = seen.insert(id.clone(), line) {
            return Err(DataError::row(
                path,
                line,
                "store_id",
                format!("{id} already defined on line {first}"),
            ));
        }
        let location = location(path, line, r.get("lat"), r.get("lon"))?;
        let city = match named_city(path, line, cities, r.get("city"))? {
            Some(c) => c,
            None => {
                placed += 1;
                cities.nearest(location)
            }
        };
        let opens = parse_hhmm(path, line, "opens", r.get("opens"))?;
        let closes = parse_hhmm(path, line, "closes", r.get("closes"))?;
        let hours = match (opens, closes) {
            (Some(o), Some(c)) => OpeningHours::new(o, c).expect("validated above"),
            (None, None) => OpeningHours::ALWAYS,
            _ => return Err(DataError::row(path, line, "closes", "opens and closes must be given together")),
        };
        let capacity_per_day = parse(path, line, "capacity_per_day", r.get("capacity_per_day"))?;
        let capabilities = Capabilities {
            pickup: parse_bool(path, line, "pickup", r.get("pickup"))?,
            ship: parse_bool(path, line, "ship", r.get("ship"))?,
        };
        Ok(Store {
            id,
            brand: text_id(path, line, "brand", r.get("brand"), BrandId::parse)?,
            city,
            location,
            capabilities,
            capacity_per_day,
            hours,
        })
    })?;
    Ok((stores, placed))
}

pub(super) fn read_dcs(path: &Path, cities: &CityList) -> Result<Vec<Dc>, DataError> {
    parse_dcs(path, &file_bytes(path)?, cities)
}

/// As [`read_dcs`], from the file's bytes.
pub(crate) fn parse_dcs(path: &Path, bytes: &[u8], cities: &CityList) -> Result<Vec<Dc>, DataError> {
    let mut seen: FxHashMap<DcId, u64> = FxHashMap::default();
    read_csv(path, bytes, &DC_COLUMNS, &[], |r, line| {
        let id = text_id(path, line, "dc_id", r.get("dc_id"), DcId::parse)?;
        if let Some(first) = seen.insert(id.clone(), line) {
            return Err(DataError::row(path, line, "dc_id", format!("{id} already defined on line {first}")));
        }
        let location = location(path, line, r.get("lat"), r.get("lon"))?;
        let city = named_city(path, line, cities, r.get("city"))?.unwrap_or_else(|| cities.nearest(location));
        Ok(Dc { id, city, location })
    })
}
